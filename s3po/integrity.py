"""End-to-end checks that the bytes stored or received are the bytes meant.

The strongest check is the object's full-object CRC, where the store keeps one and
returns it (see storechecks.py): a CRC of the bytes received, combined from the ranges
in any order, compared with it. Otherwise the ETag: S3's is the MD5 of the object for
single-part uploads without SSE-KMS, DSSE-KMS or SSE-C; for a multipart upload it is
the MD5 of the parts' MD5s followed by ``-<parts>``, which can be recomputed once the
part size is known. Elsewhere it is opaque and no content check is possible from it:
then only sizes are checked.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .checksums import Algorithm, Crc
from .errors import ChecksumMismatch
from .parts import multipart_etag, multipart_part_count
from .records import strip_etag
from .storechecks import StoredChecksum

__all__ = [
    "BodyCheck",
    "Layout",
    "verify_checksum",
    "verify_echo",
    "etag_is_md5",
    "layout_from_etag",
    "multipart_etag_checkable",
    "sse_hides_md5",
    "verify_upload_etag",
]

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
            stored=whole_object, version_id=response.get("VersionId"), etag=etag,
        )


@dataclass(frozen=True)
class Layout:
    """What an object's bytes can be checked against.

    ``kind`` is "crc" (the store's full-object checksum, ``checksum``), "md5" (the ETag
    is the MD5 of the bytes, or of that MD5 for a single part), "parts" (a multipart
    ETag, checked part by part: ``part_size`` is needed), or "size" (nothing but the
    size; ``reason`` says why).
    """

    kind: str
    etag: Optional[str] = None
    parts: Optional[int] = None
    part_size: Optional[int] = None
    reason: Optional[str] = None
    topic: Optional[str] = None  # the kind of reason, said once per Connection
    checksum: Optional[StoredChecksum] = None

    @property
    def check(self) -> str:
        """What protects the bytes, in a few words: "CRC64NVME", "MD5", "part MD5s", "size"."""
        if self.checksum is not None:
            return self.checksum.algorithm.declared
        return {"md5": "MD5", "parts": "part MD5s"}.get(self.kind, "size")

    def with_part_size(self, part_size: Optional[int], reason: str, topic: str) -> "Layout":
        if part_size:
            return Layout("parts", self.etag, self.parts, part_size)
        return Layout("size", self.etag, reason=reason, topic=topic)

    def fits(self, total: int) -> bool:
        """True when ``parts`` parts of ``part_size`` make an object of ``total`` bytes."""
        if self.kind != "parts":
            return True
        assert self.parts is not None and self.part_size is not None
        return (self.parts - 1) * self.part_size < total <= self.parts * self.part_size or (
            total == 0 and self.parts == 1)


def layout_from_etag(etag: Optional[str], response: Mapping[str, Any], verify_etag: bool) -> Layout:
    """The check an object's ETag allows; a multipart one still needs its part size."""
    if not verify_etag:
        return Layout("size", etag, reason="ETag checks are off (verify_etag=False)", topic="off")
    if etag is None:
        return Layout("size", reason="the store sent no ETag", topic="no-etag")
    if sse_hides_md5(response):
        return Layout("size", etag, reason="its encryption (SSE-KMS, DSSE-KMS or SSE-C) makes the ETag opaque",
                      topic="encrypted")
    if etag_is_md5(etag, response):
        return Layout("md5", etag.lower())
    parts = multipart_part_count(etag)
    if parts == 1:
        return Layout("md5", etag.lower(), parts=1)
    if parts is not None:
        return Layout("parts", etag.lower(), parts=parts)
    return Layout("size", etag, reason=f"its ETag {etag!r} is neither an MD5 nor a multipart ETag",
                  topic="opaque-etag")


class BodyCheck:
    """Counts and hashes a whole object's body as it streams; ``verify`` compares at the end.

    Per ``layout``: the store's full-object CRC, or the MD5 of the bytes (or, for a
    single part, the MD5 of that MD5 with "-1"), or each part's MD5 combined into the
    multipart ETag, or the size alone.
    """

    def __init__(self, content_length: Optional[int], layout: Layout) -> None:
        if layout.kind == "parts" and not layout.part_size:
            raise ValueError("a part-by-part check needs the part size")
        self.layout = layout
        self.expected_size = content_length
        self.size = 0
        self._crc = Crc(layout.checksum.algorithm) if layout.checksum is not None else None
        self._md5: Any = hashlib.md5() if layout.kind in ("md5", "parts") else None
        self._part_digests: list[bytes] = []
        self._part_left = layout.part_size or 0

    @property
    def needs_bytes(self) -> bool:
        """False when only the size is checked: counting is enough."""
        return self._crc is not None or self._md5 is not None

    def count(self, size: int) -> None:
        """Count ``size`` bytes not shown to the check (only for a check that needs no bytes)."""
        assert not self.needs_bytes
        self.size += size

    def update(self, chunk: Any) -> None:
        self.size += len(chunk)
        if self._crc is not None:
            self._crc.update(chunk)
        if self._md5 is None:
            return
        if self.layout.kind == "md5":
            self._md5.update(chunk)
            return
        view = memoryview(chunk).cast("B")
        while view:
            piece, view = view[:self._part_left], view[self._part_left:]
            self._md5.update(piece)
            self._part_left -= len(piece)
            if self._part_left == 0:
                self._end_part()

    def _end_part(self) -> None:
        self._part_digests.append(self._md5.digest())
        self._md5 = hashlib.md5()
        self._part_left = self.layout.part_size or 0

    def verify(self) -> None:
        if self.expected_size is not None and self.size != self.expected_size:
            raise ChecksumMismatch(
                f"received {self.size} bytes where Content-Length promised {self.expected_size}"
            )
        if self._crc is not None:
            assert self.layout.checksum is not None
            verify_checksum(self.layout.checksum, self._crc.value)
        if self._md5 is None:
            return
        if self.layout.kind == "md5":
            digest = (multipart_etag([self._md5.digest()]) if self.layout.parts == 1
                      else self._md5.hexdigest())
        else:
            if self._part_left != self.layout.part_size or not self._part_digests:
                self._end_part()  # the last, shorter part
            digest = multipart_etag(self._part_digests)
        if digest != self.layout.etag:
            raise ChecksumMismatch(f"the bytes received make the ETag {digest}, not {self.layout.etag}")


def verify_checksum(stored: StoredChecksum, value: int) -> None:
    """Raise ChecksumMismatch when ``value``, the CRC of the bytes received, is not the stored one."""
    received = stored.algorithm.encode(value)
    if received != stored.value:
        raise ChecksumMismatch(f"the bytes received have the {stored.algorithm.declared} {received}, "
                               f"not the stored {stored.value}")


def verify_echo(algorithm: Algorithm, echoed: Optional[str], sent: str, response: Mapping[str, Any], *,
                stored: bool, what: str) -> bool:
    """Compare the checksum a store echoed with ``sent``, the one of ``what``.

    True when they agree; False when there is no echo to compare (none, or a composite
    ``<base64>-<parts>``). An echo is what the store computed from the bytes it
    received: another value means it kept other bytes, and ChecksumMismatch says so
    (``stored``: they are an object now, which must be removed).
    """
    if echoed is None or "-" in echoed:
        return False
    if echoed != sent:
        raise ChecksumMismatch(
            f"the server's {algorithm.declared} {echoed} is not {sent}, the checksum of {what}",
            stored=stored, version_id=response.get("VersionId"), etag=strip_etag(response.get("ETag")),
        )
    return True
