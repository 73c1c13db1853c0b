"""Multipart uploads: parts sent concurrently, each verified and retried on its own.

On any failure, or when the call is interrupted or cancelled, the upload is aborted,
so the store keeps neither a half object nor the parts already sent (which it would
otherwise store, and bill, until a lifecycle rule removes them).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Union

from .context import CallContext
from .errors import ChecksumMismatch, UploadException, describe, error_code, s3_url, translate
from .integrity import multipart_etag_checkable, verify_upload_etag
from .parts import MAX_PARTS, ByteRange, multipart_etag
from .payload import Parts
from .progress import Progress
from .records import strip_etag

__all__ = ["SentPart", "upload_parts"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SentPart:
    """A part the store confirmed: its number, ETag as returned, MD5 digest and size."""

    number: int
    etag: str
    digest: bytes
    size: int


def upload_parts(ctx: CallContext, bucket: str, key: str, params: Mapping[str, Any], body: Parts,
                 part_size: int, progress: Progress) -> tuple[Mapping[str, Any], int]:
    """Store ``body`` at bucket/key in parts of ``part_size``.

    Returns the completion's answer and the number of bytes stored.
    Raises ChecksumMismatch with ``stored=True`` when the completed object's ETag is not
    the one its parts make: the damaged object then exists and must be removed.
    """
    url = s3_url(bucket, key)
    created = ctx.request("create_multipart_upload", what=f"upload {url}: start multipart upload",
                          Bucket=bucket, Key=key, **params)
    upload_id = created["UploadId"]
    sent: dict[int, SentPart] = {}

    def tasks() -> Iterator[Callable[[], SentPart]]:
        for number, piece in enumerate(body.pieces(part_size), start=1):
            if number > MAX_PARTS:
                raise ValueError(
                    f"upload {url}: the stream needs more than {MAX_PARTS} parts of {part_size} "
                    f"bytes; set a larger part_size on the Connection"
                )
            yield functools.partial(_send_part, ctx, bucket, key, upload_id, number, part_size, piece,
                                    functools.partial(body.recycle, part_size=part_size))

    def on_done(part: SentPart) -> None:
        sent[part.number] = part
        progress.advance(part.size)

    expected = math.ceil(body.size / part_size) if body.size is not None else None
    try:
        ctx.parallel(tasks(), on_done, expected)
        if not sent:
            # A file that shrank to nothing after it was measured: S3 needs one part.
            on_done(_send_part(ctx, bucket, key, upload_id, 1, part_size, b"", lambda piece: None))
        ordered = [sent[number] for number in sorted(sent)]
        expected_etag = multipart_etag(part.digest for part in ordered)
        response = _complete(ctx, bucket, key, upload_id, ordered, expected_etag)
    except BaseException:
        _abort(ctx.for_cleanup(), bucket, key, upload_id)
        raise
    etag = strip_etag(response.get("ETag"))
    if ctx.verify_etag and etag is not None and multipart_etag_checkable(etag, params, response):
        if etag.lower() != expected_etag:
            raise ChecksumMismatch(
                f"the server's ETag {etag} is not {expected_etag}, the ETag of the parts sent",
                stored=True, version_id=response.get("VersionId"), etag=etag,
            )
    elif ctx.verify_etag:
        ctx.connection._say_once("upload:multipart-etag", f"upload {url}: its multipart ETag {etag!r} cannot "
                                 "check the whole object (encrypted, or the store's own shape)")
    return response, sum(part.size for part in ordered)


def _send_part(ctx: CallContext, bucket: str, key: str, upload_id: str, number: int, part_size: int,
               piece: Union[bytes, bytearray], recycle: Callable[[Any], None]) -> SentPart:
    md5 = ctx.off_hub(hashlib.md5, piece)
    md5_hex = md5.hexdigest()
    content_md5 = base64.b64encode(md5.digest()).decode("ascii")
    span = ByteRange((number - 1) * part_size, (number - 1) * part_size + len(piece))

    def attempt() -> str:
        response = ctx.send("upload_part", Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                            Body=piece, ContentMD5=content_md5)
        etag = response.get("ETag")
        if ctx.verify_etag:
            verify_upload_etag(md5_hex, strip_etag(etag), response, whole_object=False)
        return etag  # type: ignore[no-any-return]

    detail = f"part {number} (bytes {span.start}-{max(span.start, span.end - 1)})"
    try:
        etag = ctx.retrying(attempt, what=f"upload {detail} of {s3_url(bucket, key)}")
    except Exception as exc:
        raise translate(exc, UploadException, "upload", bucket, key, detail=detail) from exc
    recycle(piece)  # confirmed: its buffer can take the next part
    return SentPart(number, etag, md5.digest(), len(piece))


def _complete(ctx: CallContext, bucket: str, key: str, upload_id: str,
              parts: list[SentPart], expected_etag: str) -> Mapping[str, Any]:
    request = {"Parts": [{"ETag": part.etag, "PartNumber": part.number} for part in parts]}
    attempts = [0]

    def attempt() -> Mapping[str, Any]:
        attempts[0] += 1
        try:
            response = ctx.send("complete_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id,
                                MultipartUpload=request)
            if not response.get("ETag"):
                # Whatever the store did, it did not confirm this object: ask again.
                raise ChecksumMismatch("the answer to CompleteMultipartUpload carried no ETag")
            return response  # type: ignore[no-any-return]
        except Exception as exc:
            # The answer to an earlier attempt may have been lost after S3 completed the
            # upload; the upload is then gone, and the object tells whether it is ours.
            if attempts[0] > 1 and error_code(exc) == "NoSuchUpload":
                head = ctx.send("head_object", Bucket=bucket, Key=key)
                if strip_etag(head.get("ETag")) == expected_etag:
                    return head  # type: ignore[no-any-return]
            raise

    return ctx.retrying(attempt, what=f"upload {s3_url(bucket, key)}: complete multipart upload")


def _abort(ctx: CallContext, bucket: str, key: str, upload_id: str) -> None:
    """Abort the upload; a failure to do so is logged, never raised over the first error."""
    def attempt() -> None:
        try:
            ctx.send("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception as exc:
            if error_code(exc) != "NoSuchUpload":  # already gone: nothing left behind
                raise

    try:
        ctx.retrying(attempt, what=f"upload {s3_url(bucket, key)}: abort multipart upload")
    except Exception as exc:
        logger.warning("upload %s: could not abort multipart upload %s; its parts stay stored until "
                       "aborted: %s", s3_url(bucket, key), upload_id, describe(exc))
