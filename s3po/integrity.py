"""End-to-end checks that the bytes stored or received are the bytes meant.

S3's ETag is the MD5 of the object only for single-part uploads without SSE-KMS,
DSSE-KMS or SSE-C; elsewhere it is opaque and no check is possible from it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Mapping, Optional

from .errors import ChecksumMismatch

__all__ = ["BodyCheck", "etag_is_md5", "verify_upload_etag"]

_MD5_HEX = re.compile(r"^[0-9a-f]{32}$")
_OPAQUE_SSE = frozenset({"aws:kms", "aws:kms:dsse"})


def etag_is_md5(etag: Optional[str], response: Mapping[str, Any]) -> bool:
    """True when ``etag`` (unquoted) is the plain MD5 of the object's bytes."""
    if not etag or not _MD5_HEX.match(etag.lower()):
        # Multipart ETags look like "<hex>-<parts>"; other stores use other shapes.
        return False
    if response.get("ServerSideEncryption") in _OPAQUE_SSE:
        return False
    return not response.get("SSECustomerAlgorithm")


def verify_upload_etag(md5_hex: str, etag: Optional[str], response: Mapping[str, Any]) -> None:
    """Raise ChecksumMismatch when the server stored something other than what we sent."""
    if etag is not None and etag_is_md5(etag, response) and etag.lower() != md5_hex:
        raise ChecksumMismatch(
            f"the server's ETag {etag} is not the MD5 {md5_hex} of the bytes sent",
            version_id=response.get("VersionId"),
        )


class BodyCheck:
    """Counts and hashes a response body as it streams; ``verify`` compares at the end."""

    def __init__(self, etag: Optional[str], content_length: Optional[int], response: Mapping[str, Any]) -> None:
        self.expected_md5 = etag.lower() if etag is not None and etag_is_md5(etag, response) else None
        self.expected_size = content_length
        self.size = 0
        self._md5 = hashlib.md5() if self.expected_md5 else None

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._md5 is not None:
            self._md5.update(chunk)

    def verify(self) -> None:
        if self.expected_size is not None and self.size != self.expected_size:
            raise ChecksumMismatch(
                f"received {self.size} bytes where Content-Length promised {self.expected_size}"
            )
        if self._md5 is not None and self._md5.hexdigest() != self.expected_md5:
            raise ChecksumMismatch(
                f"the MD5 {self._md5.hexdigest()} of the bytes received is not the ETag {self.expected_md5}"
            )
