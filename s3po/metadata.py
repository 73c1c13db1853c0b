"""What is known of an object without its bytes: head, exists, and the bucket behind a 404.

A HEAD has no body, so its 404 cannot say whether the key or the whole bucket is
missing; one more request, made only then, tells them apart.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from .context import CallContext
from .errors import DownloadException, http_status, s3_url, translate
from .records import Key, from_head
from .storechecks import stored_value

__all__ = ["bucket_exists", "exists", "head", "head_response", "stored_checksum_of"]


def head_response(ctx: CallContext, bucket: str, key: str, operation: str = "head",
                  error_class: type = DownloadException, **params: Any) -> Mapping[str, Any]:
    """HeadObject's answer; a 404 raises NotFound with code NoSuchKey or NoSuchBucket."""
    try:
        response: Mapping[str, Any] = ctx.request("head_object", what=f"{operation} {s3_url(bucket, key)}",
                                                  Bucket=bucket, Key=key, **params)
        return response
    except Exception as exc:
        if http_status(exc) != 404:
            raise
        code = "NoSuchKey" if bucket_exists(ctx, bucket) else "NoSuchBucket"
        raise translate(exc, error_class, operation, bucket, key, code=code) from exc


def head(ctx: CallContext, bucket: str, key: str) -> Key:
    return from_head(bucket, key, head_response(ctx, bucket, key))


def stored_checksum_of(ctx: CallContext, bucket: str, key: str) -> Optional[tuple[str, str]]:
    """The object's full-object checksum as the store keeps it, (algorithm, base64 value), or None.

    A HEAD with checksum mode; what it carries is read by ``storechecks.stored_value``.
    """
    return stored_value(head_response(ctx, bucket, key, ChecksumMode="ENABLED"))


def exists(ctx: CallContext, bucket: str, key: str) -> bool:
    """True if the object exists, False if the key does not; a missing bucket raises NotFound."""
    from .errors import NotFound

    try:
        head_response(ctx, bucket, key, "exists")
    except NotFound as exc:
        if exc.code == "NoSuchBucket":
            raise
        return False
    return True


def bucket_exists(ctx: CallContext, bucket: str) -> bool:
    """True unless HeadBucket answers 404 (a bucket of someone else's answers 403: it exists)."""
    try:
        ctx.request("head_bucket", what=f"head {s3_url(bucket, None)}", Bucket=bucket)
    except Exception as exc:
        if http_status(exc) == 404:
            return False
        if http_status(exc) == 403:
            return True
        raise
    return True
