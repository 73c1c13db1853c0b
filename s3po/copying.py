"""Server-side copies, pinned to the version of the source they were asked about."""

from __future__ import annotations

from typing import Any, Mapping

from .context import CallContext
from .errors import UploadException, error_code, http_status, s3_url, translate
from .metadata import head_response
from .records import Key, from_head, strip_etag, utc

__all__ = ["copy"]


def copy(ctx: CallContext, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> Key:
    """Copy src to dst; returns the new object's Key (size and type from the source).

    A HEAD of the source comes first: it gives the size and content type the new
    object has, a missing source or source bucket its own NotFound, and the ETag that
    pins the copy (``x-amz-copy-source-if-match``) to the version the HEAD saw. A
    source replaced in between is looked at once more; the HEAD and the copy each
    make at most ``retries`` + 1 requests per look.
    """
    url = f"{s3_url(src_bucket, src_key)} -> {s3_url(dst_bucket, dst_key)}"

    def attempt() -> Key:
        source = head_response(ctx, src_bucket, src_key, "copy", UploadException)
        try:
            response = ctx.request("copy_object", what=f"copy {url}", Bucket=dst_bucket, Key=dst_key,
                                   CopySource={"Bucket": src_bucket, "Key": src_key},
                                   CopySourceIfMatch=source["ETag"])
        except Exception as exc:
            if error_code(exc) == "NoSuchBucket":
                # The source's bucket answered the HEAD: the destination's is missing.
                raise translate(exc, UploadException, "copy", dst_bucket, dst_key) from exc
            raise
        return _copied(dst_bucket, dst_key, source, response)

    try:
        return attempt()
    except Exception as exc:
        if not (error_code(exc) == "PreconditionFailed" or http_status(exc) == 412):
            raise
    # The source was replaced between its HEAD and the copy: once more, from the new one.
    return attempt()


def _copied(bucket: str, key: str, source: Mapping[str, Any], response: Mapping[str, Any]) -> Key:
    result = response.get("CopyObjectResult", {})
    record = from_head(bucket, key, source)
    return Key(bucket, key, size=record.size, etag=strip_etag(result.get("ETag")),
               last_modified=utc(result.get("LastModified")), storage_class=record.storage_class,
               content_type=record.content_type, content_encoding=record.content_encoding,
               metadata=record.metadata, version_id=response.get("VersionId"))
