"""Large objects: part sizes, byte ranges, Content-Range, multipart ETags."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Iterable, Optional

from .units import GiB, MiB, TiB

__all__ = [
    "ByteRange",
    "DEFAULT_PART_SIZE",
    "MAX_OBJECT_SIZE",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "choose_part_size",
    "multipart_etag",
    "multipart_part_count",
    "parse_content_range",
    "split",
]

MIN_PART_SIZE = 5 * MiB  # S3's floor for every part but the last
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 5 * TiB
# The size boto3 and the AWS CLI use too: objects they upload download with ranges that
# line up with their parts, so every part's MD5 can be checked against the ETag.
DEFAULT_PART_SIZE = 8 * MiB

_MULTIPART_ETAG = re.compile(r"^[0-9a-f]{32}-([0-9]+)$")
_CONTENT_RANGE = re.compile(r"^bytes ([0-9]+)-([0-9]+)/([0-9]+|\*)$")


def choose_part_size(size: Optional[int], configured: Optional[int]) -> int:
    """The part size for an upload of ``size`` bytes (None when not known in advance).

    ``configured`` wins when it keeps the part count within S3's 10,000; otherwise the
    default 8 MiB grows, in whole MiB, until the object fits. ValueError names the
    limit broken, before any request is made.
    """
    if size is not None and size > MAX_OBJECT_SIZE:
        raise ValueError(f"S3 objects are at most 5 TiB ({MAX_OBJECT_SIZE} bytes); this one has {size} bytes")
    if configured is not None:
        if size is not None and math.ceil(size / configured) > MAX_PARTS:
            smallest = math.ceil(size / MAX_PARTS)
            raise ValueError(
                f"part_size={configured} would cut this {size}-byte object into "
                f"{math.ceil(size / configured)} parts; S3 allows at most {MAX_PARTS}: use a "
                f"part_size of at least {smallest} bytes, or leave it None to have one chosen"
            )
        return configured
    if size is None:
        return DEFAULT_PART_SIZE
    needed = math.ceil(size / MAX_PARTS)
    return max(DEFAULT_PART_SIZE, math.ceil(needed / MiB) * MiB)


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``start`` up to (not including) ``end`` of an object."""

    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def header(self) -> str:
        """The HTTP Range header value asking for exactly these bytes."""
        return f"bytes={self.start}-{self.end - 1}"


def split(total: int, piece: int, first: Optional[int] = None) -> list[ByteRange]:
    """``total`` bytes cut into ranges of ``piece`` bytes (the first may be ``first`` long)."""
    if piece < 1:
        raise ValueError(f"piece must be >= 1, not {piece!r}")
    ranges = []
    start = 0
    size = first or piece
    while start < total:
        end = min(start + size, total)
        ranges.append(ByteRange(start, end))
        start = end
        size = piece
    return ranges


@dataclass(frozen=True)
class ContentRange:
    """A parsed ``Content-Range: bytes first-last/total`` (``last`` inclusive)."""

    first: int
    last: int
    total: Optional[int]


def parse_content_range(value: Optional[str]) -> Optional[ContentRange]:
    """The range a 206 response says it carries; None for no or an unreadable header."""
    if not value:
        return None
    match = _CONTENT_RANGE.match(value.strip())
    if match is None:
        return None
    first, last, total = match.groups()
    return ContentRange(int(first), int(last), None if total == "*" else int(total))


def multipart_part_count(etag: Optional[str]) -> Optional[int]:
    """N for a multipart ETag ``<md5 of the part MD5s>-N``; None for any other shape."""
    if not etag:
        return None
    match = _MULTIPART_ETAG.match(etag.strip('"').lower())
    return int(match.group(1)) if match else None


def multipart_etag(part_digests: Iterable[bytes]) -> str:
    """The ETag S3 gives a multipart object: MD5 of the parts' MD5 digests, then ``-N``."""
    digests = list(part_digests)
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"
