"""The records s3po returns: Key (an object, as far as a call knows it) and Prefix."""

from __future__ import annotations

import email.utils
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

__all__ = ["Key", "Prefix", "from_head", "from_listing", "from_stored", "strip_etag", "utc"]


@dataclass(frozen=True)
class Key:
    """An object on S3, as far as the call that produced it knows.

    ``size`` is the stored byte count (compressed, when the object was stored
    compressed). ``etag`` has no quotes. Every datetime is timezone-aware UTC. Fields a
    call does not learn stay None: ``upload`` knows what it sent (content type and
    encoding, metadata) and when the store answered (``last_modified``, from the
    response's Date); a listing knows no content type; ``head`` knows everything.
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


@dataclass(frozen=True)
class Prefix:
    """A common prefix of a listing with a delimiter: a "folder", not an object.

    A folder-marker object ``data/`` is a Key; the prefix ``data/`` under which keys
    are grouped is a Prefix, even when both have the same name.
    """

    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def strip_etag(etag: Optional[str]) -> Optional[str]:
    """ETags arrive wrapped in double quotes (and sometimes a W/ prefix)."""
    if etag is None:
        return None
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')


def utc(moment: Optional[datetime]) -> Optional[datetime]:
    """``moment`` in UTC; naive ones are taken as UTC (S3 speaks nothing else)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _answered_at(response: Mapping[str, Any]) -> Optional[datetime]:
    """When the store answered: the response's Date header, in UTC."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not date:
        return None
    try:
        return utc(email.utils.parsedate_to_datetime(date))
    except (TypeError, ValueError):
        return None


def from_listing(bucket: str, entry: Mapping[str, Any]) -> Key:
    return Key(
        bucket=bucket,
        key=entry["Key"],
        size=entry.get("Size"),
        etag=strip_etag(entry.get("ETag")),
        last_modified=utc(entry.get("LastModified")),
        storage_class=entry.get("StorageClass") or "STANDARD",
    )


def from_head(bucket: str, key: str, response: Mapping[str, Any]) -> Key:
    return Key(
        bucket=bucket,
        key=key,
        size=response.get("ContentLength"),
        etag=strip_etag(response.get("ETag")),
        last_modified=utc(response.get("LastModified")),
        storage_class=response.get("StorageClass") or "STANDARD",
        content_type=response.get("ContentType"),
        content_encoding=response.get("ContentEncoding"),
        metadata=dict(response.get("Metadata") or {}),
        version_id=response.get("VersionId"),
    )


def from_stored(bucket: str, key: str, response: Mapping[str, Any], size: int,
                params: Mapping[str, Any]) -> Key:
    """The Key of an object an upload just stored, from what it sent and what came back."""
    return Key(
        bucket=bucket,
        key=key,
        size=size,
        etag=strip_etag(response.get("ETag")),
        last_modified=_answered_at(response),
        storage_class=params.get("StorageClass") or "STANDARD",
        content_type=params.get("ContentType"),
        content_encoding=params.get("ContentEncoding"),
        metadata=dict(params.get("Metadata") or {}),
        version_id=response.get("VersionId"),
    )
