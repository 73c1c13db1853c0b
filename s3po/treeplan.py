"""The plan of a tree transfer: two sorted streams merged into steps, in bounded memory.

The source and the destination arrive as streams of Items sorted by the UTF-8 bytes of
their relative paths (S3's listing order; localtree sorts the local walk the same way,
with ``sort_key``). Walking both at once tells, for each relative path, whether it is
only in the source (transfer), in both (transfer, or skip when ``sync`` finds them the
same) or only in the destination (delete, when asked): no dict of all keys is ever
built. A stream that is not in order stops the plan with TreeOrderError, since a
mis-ordered merge would plan wrong deletions. A folder of the source that could not be
read (a Bad with ``fence`` set) is a fence: nothing below it is deleted
from the destination, since what the source holds there is not known; that holds even
when include/exclude leave the folder out, as they cannot tell what it holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, TypeVar, Union

from .parts import choose_part_size, multipart_part_count

__all__ = ["COMPARES", "Bad", "Entry", "Item", "Step", "TreeOrderError", "checksum_of_file", "ordered", "pairs", "plan",
           "sort_key"]

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
    """An entry of the source that cannot be transferred (an unsafe key, a conflict...).

    ``fence``: a folder whose contents are not known (it could not be read, is a
    symlink not followed, or may be a folder); its relative path ends with "/", and
    nothing below it is deleted from the destination. ``said``: "failure" (the tree
    fails), "notice" (reported, not a failure: a symlink to a folder) or "nothing" (a
    fence include/exclude left out, or one reported under another name).
    """

    relative: str
    location: str
    reason: str
    code: str = "Unsafe"
    fence: bool = False
    said: str = "failure"


@dataclass(frozen=True)
class Step:
    """What to do with one relative path: "transfer", "skip", "delete", "fail" or "notice"."""

    action: str
    relative: str
    source: Optional[Item] = None
    destination: Optional[Item] = None
    bad: Optional[Bad] = None


class TreeOrderError(RuntimeError):
    """A listing or walk was not in UTF-8 byte order: comparing it could plan wrong steps."""


Entry = Union[Item, Bad]
Same = Callable[[Item, Item], bool]
A = TypeVar("A")
B = TypeVar("B")


def sort_key(relative: str) -> bytes:
    """The bytes a relative path sorts by: its UTF-8 (S3's order), or for a local name
    that is not UTF-8, the bytes it has on disk (its surrogate escapes undone)."""
    try:
        return relative.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate no byte stands for (a Windows name)
        return relative.encode("utf-8", "surrogatepass")


def plan(source: Iterator[Entry], destination: Iterator[Entry], *, sync: bool, delete: bool,
         same: Same, wanted: Callable[[str], bool],
         excluded: Optional[Callable[[str], bool]] = None) -> Iterator[Step]:
    """The steps that make the destination hold the source (see the module docstring).

    Entries ``wanted`` rejects (include/exclude) are on neither side. An unreadable
    folder of the source is reported unless ``excluded`` says so of its path
    ("private/", which "private/*" excludes), and fences deletions either way: what an
    include pattern would choose inside it cannot be known. Without ``sync`` the
    destination is not read at all: every source item is transferred.
    """
    sources = ordered(_filtered(source, wanted, excluded), lambda entry: entry.relative, "source")
    if not sync:
        for entry in sources:
            step = _from_source(entry, None, same, sync)
            if step is not None:
                yield step
        return
    destinations = ordered(_filtered(destination, wanted, excluded), lambda entry: entry.relative,
                           "destination")
    fence: Optional[str] = None  # the folder of the source last found unreadable
    for mine, theirs in pairs(sources, destinations, lambda entry: entry.relative, lambda entry: entry.relative):
        if mine is None:
            assert theirs is not None
            fenced = fence is not None and theirs.relative.startswith(fence)
            if delete and isinstance(theirs, Item) and not fenced:
                yield Step("delete", theirs.relative, destination=theirs)
            continue
        if isinstance(mine, Bad) and mine.fence:
            fence = mine.relative
        step = _from_source(mine, theirs if isinstance(theirs, Item) else None, same, sync)
        if step is not None:
            yield step


def pairs(source: Iterator[A], destination: Iterator[B], source_name: Callable[[A], str],
          destination_name: Callable[[B], str]) -> Iterator[tuple[Optional[A], Optional[B]]]:
    """Two streams sorted by name (``sort_key``) walked side by side, in that order.

    ``(a, b)`` for a name both have, ``(a, None)`` for one only the source has,
    ``(None, b)`` for one only the destination has. Each stream is read one item
    ahead at most.
    """
    theirs = next(destination, None)
    for mine in source:
        name = sort_key(source_name(mine))
        while theirs is not None and sort_key(destination_name(theirs)) < name:
            yield None, theirs
            theirs = next(destination, None)
        if theirs is not None and sort_key(destination_name(theirs)) == name:
            yield mine, theirs
            theirs = next(destination, None)
        else:
            yield mine, None
    while theirs is not None:
        yield None, theirs
        theirs = next(destination, None)


def _from_source(entry: Entry, theirs: Optional[Item], same: Same, sync: bool) -> Optional[Step]:
    if isinstance(entry, Bad):
        said = {"failure": "fail", "notice": "notice"}.get(entry.said)
        return Step(said, entry.relative, bad=entry) if said is not None else None
    if sync and theirs is not None and same(entry, theirs):
        return Step("skip", entry.relative, source=entry, destination=theirs)
    return Step("transfer", entry.relative, source=entry, destination=theirs)


def _filtered(entries: Iterator[Entry], wanted: Callable[[str], bool],
              excluded: Optional[Callable[[str], bool]]) -> Iterator[Entry]:
    for entry in entries:
        relative = entry.relative
        if isinstance(entry, Bad) and entry.fence:
            # Kept whatever the patterns say, as a fence; said only when not excluded.
            yield entry if excluded is None or not excluded(relative) else dataclasses.replace(entry, said="nothing")
            continue
        if wanted(relative.rstrip("/") if relative.endswith("/") else relative):
            yield entry


def ordered(entries: Iterator[A], name: Callable[[A], str], side: str) -> Iterator[A]:
    """``entries`` as they come; TreeOrderError at the first one not after the one before."""
    previous: Optional[bytes] = None
    for entry in entries:
        key = sort_key(name(entry))
        if previous is not None and key <= previous:
            raise TreeOrderError(
                f"the {side} did not come in UTF-8 byte order ({name(entry)!r} after "
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
