"""Multipart uploads: parts sent concurrently, each verified and retried on its own.

On any failure, or when the call is interrupted or cancelled, the upload is aborted,
so the store keeps neither a half object nor the parts already sent (which it would
otherwise store, and bill, until a lifecycle rule removes them).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional, Union

from .checkedsend import Sent, send_checked
from .checksums import Algorithm, Digests, combine_all
from .context import CallContext
from .errors import ChecksumMismatch, UploadException, describe, error_code, s3_url, translate
from .integrity import multipart_etag_checkable, verify_echo
from .parts import MAX_PARTS, ByteRange, multipart_etag
from .payload import Parts
from .progress import Progress
from .records import strip_etag
from .storechecks import UploadChecks

__all__ = ["SentPart", "upload_parts"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SentPart:
    """A part the store confirmed: its number, ETag as returned, digests and size."""

    number: int
    etag: str
    digests: Digests
    size: int
    confirmed: bool  # the store echoed the part's CRC


def upload_parts(ctx: CallContext, bucket: str, key: str, params: Mapping[str, Any], body: Parts,
                 part_size: int, progress: Progress) -> tuple[Mapping[str, Any], int, str]:
    """Store ``body`` at bucket/key in parts of ``part_size``.

    Each part carries the digests the store checks (its CRC, its Content-MD5, or both
    while the store is not yet known); with a CRC, the upload declares a FULL_OBJECT
    checksum, the CRC of the whole object combined from the parts', which the store
    checks at completion. Returns the completion's answer and the number of bytes
    stored. Raises ChecksumMismatch with ``stored=True`` when the completed object's
    checksum or ETag is not the one its parts make: the damaged object then exists and
    must be removed. Also returns what checked the bytes (see ``_WholeObject.verify``).
    """
    url = s3_url(bucket, key)
    checks = ctx.checks.for_upload("upload_part")
    declared = ({"ChecksumAlgorithm": checks.crc.declared, "ChecksumType": "FULL_OBJECT"}
                if checks.crc is not None else {})
    try:
        created = ctx.request("create_multipart_upload", what=f"upload {url}: start multipart upload",
                              Bucket=bucket, Key=key, **declared, **params)
    except Exception as exc:
        if not declared or not checks.md5 or not ctx.checks.may_refuse(exc):
            raise
        # A store that knows nothing of checksums: parts go with Content-MD5 alone.
        checks, declared = UploadChecks(md5=True, crc=None), {}
        created = ctx.request("create_multipart_upload", what=f"upload {url}: start multipart upload",
                              Bucket=bucket, Key=key, **params)
        ctx.checks.learn_refused()
    upload_id = created["UploadId"]
    sent: dict[int, SentPart] = {}
    send_part = functools.partial(_send_part, ctx, bucket, key, upload_id, part_size, checks)

    def tasks() -> Iterator[Callable[[], SentPart]]:
        for number, piece in enumerate(body.pieces(part_size), start=1):
            if number > MAX_PARTS:
                raise ValueError(
                    f"upload {url}: the stream needs more than {MAX_PARTS} parts of {part_size} "
                    f"bytes; set a larger part_size on the Connection"
                )
            yield functools.partial(send_part, number, piece, functools.partial(body.recycle, part_size=part_size))

    def on_done(part: SentPart) -> None:
        sent[part.number] = part
        progress.advance(part.size)

    expected = math.ceil(body.size / part_size) if body.size is not None else None
    try:
        ctx.parallel(tasks(), on_done, expected)
        if not sent:
            # A file that shrank to nothing after it was measured: S3 needs one part.
            on_done(send_part(1, b"", lambda piece: None))
        whole = _WholeObject([sent[number] for number in sorted(sent)], checks.crc)
        response = _complete(ctx, bucket, key, upload_id, whole)
    except BaseException:
        _abort(ctx.for_cleanup(), bucket, key, upload_id)
        raise
    check = whole.verify(ctx, bucket, key, params, response)
    return response, whole.size, check


class _WholeObject:
    """What the parts sent make together: the multipart ETag, the full-object CRC."""

    def __init__(self, parts: list[SentPart], crc: Optional[Algorithm]) -> None:
        self.parts = parts
        self.size = sum(part.size for part in parts)
        md5s = [part.digests.md5_digest for part in parts]
        self.etag = multipart_etag(d for d in md5s if d is not None) if None not in md5s else None
        self.crc: Optional[str] = None
        # The whole object's CRC, where every part carries one: a part the store refused
        # with its CRC went again with Content-MD5 alone.
        self._algorithm = crc if all(part.digests.crc is not None for part in parts) else None
        if self._algorithm is not None:
            self.crc = self._algorithm.encode(combine_all(self._algorithm, (
                (part.digests.crc.value, part.size) for part in parts)))  # type: ignore[union-attr]

    def complete_params(self) -> dict[str, Any]:
        listed = []
        for part in self.parts:
            entry: dict[str, Any] = {"ETag": part.etag, "PartNumber": part.number}
            entry.update((name, value) for name, value in part.digests.params().items() if name != "ContentMD5")
            listed.append(entry)
        params: dict[str, Any] = {"MultipartUpload": {"Parts": listed}}
        if self._algorithm is not None:
            params[self._algorithm.parameter] = self.crc
            params["ChecksumType"] = "FULL_OBJECT"
        return params

    def is_ours(self, head: Mapping[str, Any]) -> bool:
        """True when ``head`` (HEAD with ChecksumMode) describes the object these parts make."""
        if self._algorithm is not None and head.get(self._algorithm.parameter) is not None:
            return bool(head.get(self._algorithm.parameter) == self.crc)
        return self.etag is not None and strip_etag(head.get("ETag")) == self.etag

    def verify(self, ctx: CallContext, bucket: str, key: str, params: Mapping[str, Any],
               response: Mapping[str, Any]) -> str:
        """Compare the completed object's checksum, and its ETag, with what the parts make.

        Returns what checked the object: its full CRC as the store confirmed it, the
        multipart ETag, or the parts alone (each verified on arrival: "CRC32C parts").
        """
        url = s3_url(bucket, key)
        etag = strip_etag(response.get("ETag"))
        version = response.get("VersionId")
        checks = []
        if self._algorithm is not None and self.crc is not None and verify_echo(
                self._algorithm, response.get(self._algorithm.parameter), self.crc, response, stored=True,
                what="the parts sent"):
            checks.append(self._algorithm.declared)
        if ctx.verify_etag and self.etag is not None:
            if etag is not None and multipart_etag_checkable(etag, params, response):
                if etag.lower() != self.etag:
                    raise ChecksumMismatch(
                        f"the server's ETag {etag} is not {self.etag}, the ETag of the parts sent",
                        stored=True, version_id=version, etag=etag,
                    )
                checks.append("part MD5s")
            elif not checks:
                ctx.connection._say_once("upload:multipart-etag", f"upload {url}: its multipart ETag {etag!r} "
                                         "cannot check the whole object (encrypted, or the store's own shape)")
        if checks:
            return " and ".join(checks)
        if self._algorithm is not None and all(part.confirmed for part in self.parts):
            ctx.connection._say_once("upload:multipart-unconfirmed", f"upload {url}: the store did not confirm "
                                     "the object's full checksum; each part's was confirmed as it arrived")
            return f"{self._algorithm.declared} of each part"
        ctx.connection._say_once("upload:multipart-size", f"upload {url}: the store confirmed neither the "
                                 "object's checksum nor its ETag: its size alone checks it")
        return "size"


def _send_part(ctx: CallContext, bucket: str, key: str, upload_id: str, part_size: int, checks: UploadChecks,
               number: int, piece: Union[bytes, bytearray], recycle: Callable[[Any], None]) -> SentPart:
    # MD5 while the store is not known to verify parts' CRCs, as it stands when this part
    # goes: the first parts' echoes may teach it, and a store that stops echoing unteaches it.
    md5 = checks.crc is None or ctx.checks.for_upload("upload_part").md5
    digests = ctx.off_hub(Digests, md5, checks.crc, piece, size=len(piece))
    span = ByteRange((number - 1) * part_size, (number - 1) * part_size + len(piece))
    request = {"Bucket": bucket, "Key": key, "UploadId": upload_id, "PartNumber": number, "Body": piece}

    def attempt() -> Sent:
        return send_checked(ctx, "upload_part", request, digests, rewind=lambda: None,
                            md5=lambda: ctx.off_hub(hashlib.md5, piece, size=len(piece)), whole_object=False,
                            bucket=bucket, key=key)

    detail = f"part {number} (bytes {span.start}-{max(span.start, span.end - 1)})"
    try:
        sent = ctx.retrying(attempt, what=f"upload {detail} of {s3_url(bucket, key)}")
    except Exception as exc:
        raise translate(exc, UploadException, "upload", bucket, key, detail=detail) from exc
    recycle(piece)  # confirmed: its buffer can take the next part
    return SentPart(number, sent.response.get("ETag") or "", sent.digests, len(piece), sent.crc_confirmed)


def _complete(ctx: CallContext, bucket: str, key: str, upload_id: str, whole: _WholeObject) -> Mapping[str, Any]:
    request = whole.complete_params()
    attempts = [0]

    def attempt() -> Mapping[str, Any]:
        attempts[0] += 1
        try:
            response = ctx.send("complete_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id, **request)
            if not response.get("ETag"):
                # Whatever the store did, it did not confirm this object: ask again.
                raise ChecksumMismatch("the answer to CompleteMultipartUpload carried no ETag")
            return response  # type: ignore[no-any-return]
        except Exception as exc:
            # The answer to an earlier attempt may have been lost after S3 completed the
            # upload; the upload is then gone, and the object tells whether it is ours.
            if attempts[0] > 1 and error_code(exc) == "NoSuchUpload":
                head = ctx.send("head_object", Bucket=bucket, Key=key, ChecksumMode="ENABLED")
                if whole.is_ours(head):
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
