"""One upload request (PutObject or UploadPart) sent so that what the store keeps is checked.

The request carries the digests the Connection's knowledge of its store asks for (see
storechecks.py): the CRC it verifies, or Content-MD5, or both while it is not known.

- A store not known to verify that refuses the checksum headers outright gets the
  request again, at once, without them; once it takes it so, it is known not to verify.
- The CRC the store echoes is compared with the one sent: another value means it kept
  other bytes (ChecksumMismatch). A request that carried the CRC alone and got no echo
  is sent again with Content-MD5, computed then: otherwise nothing would check what the
  store kept. Only a checksum the caller chose is trusted without an echo.
- With Content-MD5 sent, the ETag is compared with the MD5 where it is one.

All within one attempt of the caller's retry loop: these resends are how a store is
learned, at most once per Connection and operation, not retries of a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .checksums import Digests
from .context import CallContext
from .errors import s3_url
from .integrity import etag_is_md5, verify_echo, verify_upload_etag
from .records import strip_etag

__all__ = ["Sent", "send_checked"]


@dataclass(frozen=True)
class Sent:
    """A request the store took: its answer, the digests it went with, what checked it."""

    response: Mapping[str, Any]
    digests: Digests
    crc_confirmed: bool  # the store echoed the CRC sent
    check: str  # "CRC64NVME", "MD5", "CRC64NVME and MD5", or "size"


def send_checked(ctx: CallContext, operation: str, request: Mapping[str, Any], digests: Digests, *,
                 rewind: Callable[[], None], md5: Callable[[], Any], whole_object: bool, bucket: str,
                 key: str) -> Sent:
    """Send ``operation`` with ``request`` and the headers of ``digests``; check what the store kept.

    ``rewind`` puts the body back for a resend; ``md5`` computes the body's MD5 when it
    must be sent after all. ``whole_object``: the request stores an object (PutObject),
    so a mismatch means damaged bytes are stored (see uploads.DamagedVersions).
    """
    def send(carried: Digests) -> Mapping[str, Any]:
        return ctx.send(operation, **request, **carried.params())  # type: ignore[no-any-return]

    try:
        response = send(digests)
    except Exception as exc:
        if digests.crc is None or digests.md5_hex is None or not ctx.checks.may_refuse(exc):
            raise
        digests = digests.without_crc()
        rewind()
        response = send(digests)
        ctx.checks.learn_refused()
    crc_confirmed = False
    if digests.crc is not None:
        algorithm = digests.crc.algorithm
        echoed = response.get(algorithm.parameter)
        ctx.checks.learn_upload(operation, echoed is not None)
        crc_confirmed = verify_echo(algorithm, echoed, algorithm.encode(digests.crc.value), response,
                                    stored=whole_object, what="the bytes sent")
        if not crc_confirmed and digests.md5_hex is None:
            if ctx.checks.explicit:
                ctx.connection._say_once(f"upload:no-echo:{algorithm.name}", f"upload {s3_url(bucket, key)}: the "
                                         f"store did not confirm its {algorithm.declared} checksum; it may not "
                                         "verify it")
            else:
                digests = digests.with_md5(md5())
                rewind()
                response = send(digests)
    checks = [digests.crc.algorithm.declared] if crc_confirmed and digests.crc is not None else []
    md5_hex = digests.md5_hex
    if md5_hex is not None and ctx.verify_etag:
        etag = strip_etag(response.get("ETag"))
        verify_upload_etag(md5_hex, etag, response, whole_object=whole_object)
        if etag_is_md5(etag, response):
            checks.append("MD5")
    return Sent(response, digests, crc_confirmed, " and ".join(checks) or "size")
