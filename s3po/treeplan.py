"""The plan of a tree transfer: two sorted streams merged into steps, in bounded memory.

The source and the destination arrive as streams of Items sorted by the UTF-8 bytes of
their relative paths (S3's listing order; localtree sorts the local walk the same way).
Walking both at once tells, for each relative path, whether it is only in the source
(transfer), in both (transfer, or skip when ``sync`` finds them the same) or only in the
destination (delete, when asked): no dict of all keys is ever built. A stream that is
not in order stops the plan with TreeOrderError, since a mis-ordered merge would plan
wrong deletions.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Union

from .parts import choose_part_size, multipart_part_count

__all__ = ["COMPARES", "Bad", "Item", "Step", "TreeOrderError", "checksum_of_file", "plan", "sort_key"]

COMPARES = ("size-mtime", "size", "checksum")


@dataclass(frozen=True)
class Item:
    """One file or object of a tree: where it is (a path or a key), its size, mtime, ETag."""

    relative: str
    location: str
    size: int
    mtime: float  # seconds since the epoch (an object's LastModified)
    etag: Optional[str] = None


@dataclass(frozen=True)
class Bad:
    """An entry of the source that cannot be transferred (an unsafe key, a conflict...)."""

    relative: str
    location: str
    reason: str
    code: str = "Unsafe"


@dataclass(frozen=True)
class Step:
    """What to do with one relative path: "transfer", "skip", "delete" or "fail"."""

    action: str
    relative: str
    source: Optional[Item] = None
    destination: Optional[Item] = None
    bad: Optional[Bad] = None


class TreeOrderError(RuntimeError):
    """A listing or walk was not in UTF-8 byte order: comparing it could plan wrong steps."""


Entry = Union[Item, Bad]
Same = Callable[[Item, Item], bool]


def sort_key(relative: str) -> bytes:
    return relative.encode("utf-8", "surrogatepass")


def plan(source: Iterator[Entry], destination: Iterator[Entry], *, sync: bool, delete: bool,
         same: Same, wanted: Callable[[str], bool]) -> Iterator[Step]:
    """The steps that make the destination hold the source (see the module docstring).

    Entries ``wanted`` rejects (include/exclude) are on neither side. Without ``sync``
    the destination is not read at all: every source item is transferred.
    """
    sources = _ordered(_filtered(source, wanted), "source")
    if not sync:
        for entry in sources:
            yield _from_source(entry, None, same, sync)
        return
    destinations = _ordered(_filtered(destination, wanted), "destination")
    theirs = next(destinations, None)
    for entry in sources:
        mine = sort_key(entry.relative)
        while theirs is not None and sort_key(theirs.relative) < mine:
            if delete and isinstance(theirs, Item):
                yield Step("delete", theirs.relative, destination=theirs)
            theirs = next(destinations, None)
        if theirs is not None and theirs.relative == entry.relative:
            yield _from_source(entry, theirs if isinstance(theirs, Item) else None, same, sync)
            theirs = next(destinations, None)
        else:
            yield _from_source(entry, None, same, sync)
    while theirs is not None:
        if delete and isinstance(theirs, Item):
            yield Step("delete", theirs.relative, destination=theirs)
        theirs = next(destinations, None)


def _from_source(entry: Entry, theirs: Optional[Item], same: Same, sync: bool) -> Step:
    if isinstance(entry, Bad):
        return Step("fail", entry.relative, bad=entry)
    if sync and theirs is not None and same(entry, theirs):
        return Step("skip", entry.relative, source=entry, destination=theirs)
    return Step("transfer", entry.relative, source=entry, destination=theirs)


def _filtered(entries: Iterator[Entry], wanted: Callable[[str], bool]) -> Iterator[Entry]:
    for entry in entries:
        if wanted(entry.relative.rstrip("/") if entry.relative.endswith("/") else entry.relative):
            yield entry


def _ordered(entries: Iterator[Entry], side: str) -> Iterator[Entry]:
    previous: Optional[bytes] = None
    for entry in entries:
        key = sort_key(entry.relative)
        if previous is not None and key <= previous:
            raise TreeOrderError(
                f"the {side} did not come in UTF-8 byte order ({entry.relative!r} after "
                f"{previous.decode('utf-8', 'replace')!r}); nothing more is planned, as comparing "
                "it could plan wrong transfers or deletions"
            )
        previous = key
        yield entry


# -- when two items are the same ------------------------------------------------------------


def same_size(source: Item, destination: Item) -> bool:
    return source.size == destination.size


def newer_or_same_age(mine: float, theirs: float) -> bool:
    """``theirs`` is at least as new as ``mine``, to the second (S3 keeps whole seconds)."""
    return math.floor(theirs) >= math.floor(mine)


def checksum_of_file(path: str, etag: Optional[str], part_size: Optional[int]) -> Optional[str]:
    """The ETag the file at ``path`` would have if stored as ``etag``'s object was.

    A plain ETag is an MD5 of the bytes; a multipart one (``<md5>-N``) the MD5 of the
    parts' MD5s, computed with the part size s3po uploads with (``part_size``, or the one
    chosen for this size). None when that part size cannot give N parts.
    """
    import os

    size = os.path.getsize(path)
    parts = multipart_part_count(etag)
    piece = choose_part_size(size, part_size) if parts is not None else 1024 * 1024
    if parts is not None and max(1, math.ceil(size / piece)) != parts:
        return None
    whole = hashlib.md5()
    digests: list[bytes] = []
    with open(path, "rb") as source:
        while True:
            chunk = source.read(piece)
            if not chunk:
                break
            if parts is not None:
                digests.append(hashlib.md5(chunk).digest())
            else:
                whole.update(chunk)
    if parts is None:
        return whole.hexdigest()
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"
