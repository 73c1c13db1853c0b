"""The Key record: what s3po tells you about a stored object."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Optional

__all__ = ["Key", "strip_etag"]


@dataclass(frozen=True)
class Key:
    """An object on S3, as far as the call that produced it knows.

    ``size`` is the stored byte count (compressed, when the object was stored
    compressed). ``etag`` has no quotes. Fields a call does not learn stay None:
    ``upload`` knows no ``last_modified``; only ``head`` fills ``content_type``,
    ``content_encoding`` and ``metadata``.
    """

    bucket: str
    key: str
    size: Optional[int] = None
    etag: Optional[str] = None
    last_modified: Optional[datetime] = None
    storage_class: Optional[str] = None
    content_type: Optional[str] = None
    content_encoding: Optional[str] = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    version_id: Optional[str] = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def strip_etag(etag: Optional[str]) -> Optional[str]:
    """ETags arrive wrapped in double quotes (and sometimes a W/ prefix)."""
    if etag is None:
        return None
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')


def from_listing(bucket: str, entry: Mapping[str, Any]) -> Key:
    return Key(
        bucket=bucket,
        key=entry["Key"],
        size=entry.get("Size"),
        etag=strip_etag(entry.get("ETag")),
        last_modified=entry.get("LastModified"),
        storage_class=entry.get("StorageClass") or "STANDARD",
    )


def from_head(bucket: str, key: str, response: Mapping[str, Any]) -> Key:
    return Key(
        bucket=bucket,
        key=key,
        size=response.get("ContentLength"),
        etag=strip_etag(response.get("ETag")),
        last_modified=response.get("LastModified"),
        storage_class=response.get("StorageClass") or "STANDARD",
        content_type=response.get("ContentType"),
        content_encoding=response.get("ContentEncoding"),
        metadata=dict(response.get("Metadata") or {}),
        version_id=response.get("VersionId"),
    )
