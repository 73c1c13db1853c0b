"""The checksums S3 verifies for us: CRC64NVME, CRC32C and CRC32, computed and combined.

S3 (and MinIO, and other modern stores) checks an ``x-amz-checksum-<algorithm>`` header
against the bytes that arrive and refuses a mismatch, and returns an object's stored
full-object checksum on a whole GET or a HEAD with ``x-amz-checksum-mode: ENABLED``.
These CRCs cost a fraction of an MD5: with AWS's C runtime (``awscrt``, which botocore
also uses when installed) CRC64NVME and CRC32C run at memory speed; without it only
CRC32 is at hand (the standard library's zlib), at a few GB/s.

A CRC of a whole object is combined from the CRCs of its pieces, in any order of
arrival, without reading a byte twice.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Optional

__all__ = ["ALGORITHMS", "Algorithm", "Crc", "Digests", "available", "best", "by_name", "combine_all", "parameter"]


@dataclass(frozen=True)
class Algorithm:
    """One CRC as S3 names and encodes it."""

    name: str  # "crc64nvme"
    width: int  # bits
    compute: Callable[[Any, int], int]  # (bytes-like, previous) -> crc
    combine: Callable[[int, int, int], int]  # (crc of A, crc of B, len(B)) -> crc of A+B

    @property
    def header(self) -> str:
        """The request and response header: ``x-amz-checksum-crc64nvme``."""
        return f"x-amz-checksum-{self.name}"

    @property
    def parameter(self) -> str:
        """botocore's parameter and answer field: ``ChecksumCRC64NVME``."""
        return parameter(self.name)

    @property
    def declared(self) -> str:
        """The value of ``ChecksumAlgorithm``: ``CRC64NVME``."""
        return self.name.upper()

    def encode(self, crc: int) -> str:
        return base64.b64encode(crc.to_bytes(self.width // 8, "big")).decode("ascii")

    def decode(self, text: str) -> Optional[int]:
        try:
            raw = base64.b64decode(text, validate=True)
        except (ValueError, TypeError):
            return None
        return int.from_bytes(raw, "big") if len(raw) == self.width // 8 else None


def parameter(name: str) -> str:
    """botocore's parameter and answer field for the algorithm ``name``: ``ChecksumCRC64NVME``."""
    return "Checksum" + name.upper()


def combine_all(algorithm: Algorithm, pieces: Any) -> int:
    """The CRC of consecutive pieces, given each one's ``(crc, length)`` in order."""
    value = 0  # the CRC of no bytes: combining onto it gives the first piece's own
    for crc, length in pieces:
        value = algorithm.combine(value, crc, length)
    return value


class Crc:
    """A running CRC of bytes fed in order; ``update`` has the hashlib shape."""

    def __init__(self, algorithm: Algorithm) -> None:
        self.algorithm = algorithm
        self.value = 0
        self.length = 0

    def update(self, data: Any) -> None:
        self.value = self.algorithm.compute(data, self.value)
        self.length += len(data)


class Digests:
    """The digests an upload sends, fed together in one pass over its bytes.

    ``md5`` for Content-MD5 and the ETag, ``crc`` for ``x-amz-checksum-<crc>``: either,
    both, or (for an empty choice) neither.
    """

    def __init__(self, md5: bool, crc: Optional[Algorithm], data: Any = b"") -> None:
        self._md5: Any = hashlib.md5() if md5 else None
        self._crc = Crc(crc) if crc is not None else None
        if data:
            self.update(data)

    def update(self, data: Any) -> None:
        if self._md5 is not None:
            self._md5.update(data)
        if self._crc is not None:
            self._crc.update(data)

    @property
    def md5_hex(self) -> Optional[str]:
        return self._md5.hexdigest() if self._md5 is not None else None

    @property
    def md5_digest(self) -> Optional[bytes]:
        return self._md5.digest() if self._md5 is not None else None

    @property
    def crc(self) -> Optional[Crc]:
        return self._crc

    def without_crc(self) -> "Digests":
        """These digests but the CRC (the MD5 already computed is kept, not recomputed)."""
        copy = Digests(False, None)
        copy._md5 = self._md5
        return copy

    def with_md5(self, md5: Any) -> "Digests":
        """These digests and ``md5`` (a hashlib MD5 of the same bytes, computed since)."""
        copy = Digests(False, None)
        copy._md5, copy._crc = md5, self._crc
        return copy

    def params(self) -> dict[str, str]:
        """The request parameters that carry these digests (ContentMD5, ChecksumCRC64NVME...)."""
        params = {}
        if self._md5 is not None:
            params["ContentMD5"] = base64.b64encode(self._md5.digest()).decode("ascii")
        if self._crc is not None:
            params[self._crc.algorithm.parameter] = self._crc.algorithm.encode(self._crc.value)
        return params


# -- combining, for the standard library's CRC32 ------------------------------------------
# A CRC of A followed by B is the CRC of A "shifted" over len(B) zero bytes, xor the
# CRC of B: the shift is a multiplication by x^(8 * len(B)) modulo the polynomial,
# in the reflected bit order these CRCs use. awscrt does the same in C.


def _multiply(a: int, b: int, polynomial: int, top: int) -> int:
    """a * b modulo the polynomial (reflected: bit ``top`` is x^0)."""
    product = 0
    bit = top
    while a:
        if a & bit:
            product ^= b
            a ^= bit
        bit >>= 1
        b = (b >> 1) ^ polynomial if b & 1 else b >> 1
    return product


def _combiner(polynomial: int, width: int) -> Callable[[int, int, int], int]:
    top = 1 << (width - 1)
    powers = [top >> 1]  # x^1, then x^2, x^4, x^8 ...: x^(2^k)
    for _ in range(63):
        powers.append(_multiply(powers[-1], powers[-1], polynomial, top))

    def combine(first: int, second: int, second_length: int) -> int:
        shift = top  # x^0
        bits = second_length * 8
        k = 0
        while bits:
            if bits & 1:
                shift = _multiply(powers[k], shift, polynomial, top)
            bits >>= 1
            k += 1
        return _multiply(shift, first, polynomial, top) ^ second

    return combine


def _zlib_crc32(data: Any, previous: int) -> int:
    return zlib.crc32(data, previous)


# The reflected polynomials, for combining where awscrt has no combine of its own.
_POLYNOMIALS = {"crc32": (0xEDB88320, 32), "crc32c": (0x82F63B78, 32), "crc64nvme": (0x9A6C9329AC4BC9B5, 64)}


def _algorithms() -> dict[str, Algorithm]:
    found = {"crc32": Algorithm("crc32", 32, _zlib_crc32, _combiner(*_POLYNOMIALS["crc32"]))}
    try:
        from awscrt import checksums as crt
    except ImportError:
        return found
    for name in ("crc32c", "crc64nvme"):
        compute = getattr(crt, name, None)
        if compute is None:  # an awscrt older than this algorithm
            continue
        # awscrt's combine functions are recent (2025); before them, the pure-Python one.
        combine = getattr(crt, "combine_" + name, None) or _combiner(*_POLYNOMIALS[name])
        found[name] = Algorithm(name, _POLYNOMIALS[name][1], compute, combine)
    return found


ALGORITHMS = ("crc64nvme", "crc32c", "crc32")  # the strongest and cheapest first
_available: Optional[dict[str, Algorithm]] = None


def available() -> dict[str, Algorithm]:
    """The algorithms this machine can compute, by name (awscrt is looked for once)."""
    global _available
    if _available is None:
        _available = _algorithms()
    return _available


def best() -> Algorithm:
    """CRC64NVME with awscrt, else CRC32."""
    found = available()
    return next(found[name] for name in ALGORITHMS if name in found)


def by_name(name: str) -> Algorithm:
    found = available()
    if name not in found:
        raise ValueError(f"checksum {name!r} needs awscrt (pip install \"s3po[crt]\"); this machine has "
                         f"{', '.join(sorted(found))}")
    return found[name]
