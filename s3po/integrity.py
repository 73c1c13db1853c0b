"""End-to-end checks that the bytes stored or received are the bytes meant.

S3's ETag is the MD5 of the object only for single-part uploads without SSE-KMS,
DSSE-KMS or SSE-C; elsewhere it is opaque and no check is possible from it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Mapping, Optional

from .errors import ChecksumMismatch
from .parts import multipart_etag, multipart_part_count

__all__ = ["BodyCheck", "etag_is_md5", "multipart_etag_checkable", "sse_hides_md5", "verify_upload_etag"]

_MD5_HEX = re.compile(r"^[0-9a-f]{32}$")
_OPAQUE_SSE = frozenset({"aws:kms", "aws:kms:dsse"})


def sse_hides_md5(response: Mapping[str, Any]) -> bool:
    """True when the object's encryption (SSE-KMS, DSSE-KMS, SSE-C) makes its ETag opaque."""
    return response.get("ServerSideEncryption") in _OPAQUE_SSE or bool(response.get("SSECustomerAlgorithm"))


def etag_is_md5(etag: Optional[str], response: Mapping[str, Any]) -> bool:
    """True when ``etag`` (unquoted) is the plain MD5 of the object's bytes."""
    if not etag or not _MD5_HEX.match(etag.lower()):
        # Multipart ETags look like "<hex>-<parts>"; other stores use other shapes.
        return False
    return not sse_hides_md5(response)


def multipart_etag_checkable(etag: Optional[str], *responses: Mapping[str, Any]) -> bool:
    """True when ``etag`` is the MD5 of part MD5s S3 computes for plainly stored parts."""
    return multipart_part_count(etag) is not None and not any(sse_hides_md5(r) for r in responses)


def verify_upload_etag(md5_hex: str, etag: Optional[str], response: Mapping[str, Any], *,
                       whole_object: bool = True) -> None:
    """Raise ChecksumMismatch when the server stored something other than what we sent.

    ``whole_object`` is False for a part of a multipart upload: its damage is in the
    upload, not yet in the object.
    """
    if etag is not None and etag_is_md5(etag, response) and etag.lower() != md5_hex:
        raise ChecksumMismatch(
            f"the server's ETag {etag} is not the MD5 {md5_hex} of the bytes sent",
            stored=whole_object, version_id=response.get("VersionId"),
        )


class BodyCheck:
    """Counts and hashes a whole object's body as it streams; ``verify`` compares at the end.

    The ETag to compare with is the MD5 of the bytes, or for an object uploaded as a
    single part, the MD5 of that MD5 followed by "-1".
    """

    def __init__(self, etag: Optional[str], content_length: Optional[int], response: Mapping[str, Any]) -> None:
        self._single_part = multipart_part_count(etag) == 1 and multipart_etag_checkable(etag, response)
        checkable = etag is not None and (etag_is_md5(etag, response) or self._single_part)
        self.expected_md5 = etag.lower() if etag is not None and checkable else None
        self.expected_size = content_length
        self.size = 0
        self._md5 = hashlib.md5() if self.expected_md5 else None

    def update(self, chunk: Any) -> None:
        self.size += len(chunk)
        if self._md5 is not None:
            self._md5.update(chunk)

    def verify(self) -> None:
        if self.expected_size is not None and self.size != self.expected_size:
            raise ChecksumMismatch(
                f"received {self.size} bytes where Content-Length promised {self.expected_size}"
            )
        if self._md5 is None:
            return
        digest = multipart_etag([self._md5.digest()]) if self._single_part else self._md5.hexdigest()
        if digest != self.expected_md5:
            raise ChecksumMismatch(f"the MD5 {digest} of the bytes received is not the ETag {self.expected_md5}")
