"""Uploads: a body up to the multipart threshold in one PutObject, larger ones in parts.

The flow: the caller's data becomes a rewindable Payload or Parts (payload.py), then
goes out verified: with the CRC the store checks on arrival (its echo compared), or
with Content-MD5 (the ETag compared), or both while the store is not yet known (see
storechecks.py). Bytes a store kept damaged are removed (see ``DamagedVersions``), so
a failed upload never leaves wrong bytes behind, whatever its last error was.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Optional

from .context import CallContext
from .errors import ChecksumMismatch, describe, error_code, s3_url
from .checkedsend import send_checked
from .integrity import layout_from_etag
from .multipart import upload_parts
from .parts import choose_part_size
from .payload import Parts, Payload, prepare
from .progress import Progress
from .records import Key, from_stored, strip_etag

__all__ = ["DamagedVersions", "upload", "upload_file"]

logger = logging.getLogger(__name__)


def upload(ctx: CallContext, bucket: str, key: str, data: Any, *, params: Mapping[str, Any],
           codec: Optional[str], multipart_threshold: int, progress: Progress) -> Key:
    """Store ``data`` at bucket/key; ``params`` are the PutObject parameters (headers)."""
    damaged = DamagedVersions(ctx, bucket, key)
    checks = ctx.checks.for_upload("put_object")
    with prepare(data, codec, multipart_threshold, md5=checks.md5, crc=checks.crc) as payload, damaged:
        if isinstance(payload, Parts):
            # Chosen before the first request, so a size S3 cannot take fails at once.
            part_size = choose_part_size(payload.size_hint, ctx.part_size)
            progress.total = payload.size
            response, size, check = upload_parts(ctx, bucket, key, params, payload, part_size, progress)
        else:
            response, check = _put(ctx, bucket, key, params, payload, damaged)
            size = payload.size
            progress.total = size
            progress.advance(size)
    progress.finish()
    logger.debug("upload %s: %d bytes, checked by %s", s3_url(bucket, key), size, check)
    return from_stored(bucket, key, response, size, params)


def _put(ctx: CallContext, bucket: str, key: str, params: Mapping[str, Any], payload: Payload,
         damaged: "DamagedVersions") -> tuple[Mapping[str, Any], str]:
    """PutObject, retried; returns the answer and what checked the bytes stored."""
    def attempt() -> tuple[Mapping[str, Any], str]:
        try:
            sent = send_checked(ctx, "put_object", {"Bucket": bucket, "Key": key, "Body": payload.body, **params},
                                payload.digests, rewind=payload.rewind, md5=payload.md5, whole_object=True,
                                bucket=bucket, key=key)
        except ChecksumMismatch as exc:
            damaged.note(exc)  # whatever the next attempts do, these bytes must go
            raise
        if sent.check == "size" and ctx.verify_etag:
            etag = strip_etag(sent.response.get("ETag"))
            say_unverified(ctx, "upload", bucket, key, etag, sent.response)
        return sent.response, sent.check

    return ctx.retrying(attempt, what=f"upload {s3_url(bucket, key)}", on_retry=payload.rewind)


def upload_file(ctx: CallContext, bucket: str, key: str, path: str, *, params: Mapping[str, Any],
                codec: Optional[str], multipart_threshold: int, progress: Progress, delete: bool) -> Key:
    """Upload the file at ``path``; ``delete`` removes it once the upload is confirmed."""
    with open(path, "rb") as fobj:
        stored = upload(ctx, bucket, key, fobj, params=params, codec=codec,
                        multipart_threshold=multipart_threshold, progress=progress)
    if delete:
        os.remove(path)
    return stored


def say_unverified(ctx: CallContext, what: str, bucket: str, key: str, etag: Optional[str],
                   response: Mapping[str, Any]) -> None:
    """Say once per Connection (at INFO) that the store's ETags cannot check what was sent."""
    layout = layout_from_etag(etag, response, ctx.verify_etag)
    ctx.connection._say_once(f"{what}:{layout.topic}", f"{what} {s3_url(bucket, key)}: only its size can be "
                             f"checked: {layout.reason}")


class DamagedVersions:
    """Objects an upload stored damaged (its ETag disagreed), removed when it ends.

    Used around the whole upload, every attempt included. If the upload fails, each
    damaged object is removed if it is what the key still holds (by VersionId where
    the store gave one, else when the key's ETag is still the damaged one). If a later
    attempt succeeded, only damaged versions kept in a versioned bucket are removed:
    the new object replaced the damaged one.
    """

    def __init__(self, ctx: CallContext, bucket: str, key: str) -> None:
        self._ctx = ctx
        self._bucket = bucket
        self._key = key
        self._found: list[ChecksumMismatch] = []

    def note(self, damage: ChecksumMismatch) -> None:
        if damage.stored and damage not in self._found:
            self._found.append(damage)

    def __enter__(self) -> "DamagedVersions":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if isinstance(exc, ChecksumMismatch):
            self.note(exc)
        failed = exc_type is not None
        for damage in self._found:
            if damage.version_id or failed:
                self._remove(damage)

    def _remove(self, damage: ChecksumMismatch) -> None:
        cleanup = self._ctx.for_cleanup()
        url = s3_url(self._bucket, self._key)
        try:
            if damage.version_id:
                cleanup.request("delete_object", what=f"upload {url}: remove damaged version",
                                Bucket=self._bucket, Key=self._key, VersionId=damage.version_id)
                return
            head = cleanup.request("head_object", what=f"upload {url}: look at the damaged object",
                                   Bucket=self._bucket, Key=self._key)
            if strip_etag(head.get("ETag")) == damage.etag:
                cleanup.request("delete_object", what=f"upload {url}: remove damaged object",
                                Bucket=self._bucket, Key=self._key)
        except Exception as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NoSuchVersion"):
                return  # already gone
            logger.warning("upload %s: could not remove the damaged object: %s", url, describe(exc))
