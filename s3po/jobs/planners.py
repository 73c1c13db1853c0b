"""Planners: cut a bucket's key space into shards without any process holding all keys.

A planner is called as ``planner(conn, bucket, prefix)`` and yields shards lazily, so a
job can start on the first shards while later ones are still being found. Each
planner is a small frozen value: its repr names the plan (a ledger checks a rerun is
the same job by it).

- ``whole()``: the prefix as one shard.
- ``by_delimiter(depth)``: walk "folders" to ``depth`` levels; one shard per folder
  there, and one per level for the keys that sit beside the folders.
- ``by_fanout(depth)``: one shard per character that follows the prefix (found by
  listing with StartAfter, one request per character), ``depth`` characters deep.
- ``by_sampling(keys_per_shard)``: key ranges of about ``keys_per_shard`` keys, split
  at points estimated from one page of keys per character after the prefix.
- ``from_key_file(source)``: slices of a file of keys (local path or s3://bucket/key).
- ``from_inventory(manifest)``: one shard per data file of an S3 Inventory (CSV).

Listing-based planners give shards that hold every key under the prefix exactly once,
whatever the estimates: the estimates only decide where ranges are cut.
"""

from __future__ import annotations

import bisect
import io
import itertools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator, Optional, Protocol

from ..arguments import parse_s3_url
from ..records import Prefix
from .shards import AnyShard, InventoryFile, KeyList, Shard

if TYPE_CHECKING:
    from ..connection import Connection

__all__ = [
    "Planner",
    "by_delimiter",
    "by_fanout",
    "by_sampling",
    "from_inventory",
    "from_key_file",
    "whole",
]

PAGE = 1000  # keys in one ListObjectsV2 page: what one probe costs one request for
# Sorts after every character a key can hold: a probe starting after prefix + c + TOP
# skips the keys that continue with c (a key that holds TOP itself is seen again and
# skipped by its exact name: see _groups).
TOP = "\U0010ffff"


class Planner(Protocol):
    def __call__(self, conn: "Connection", bucket: str, prefix: str) -> Iterable[AnyShard]: ...


@dataclass(frozen=True)
class whole:
    """The prefix as one shard (small jobs, or a test)."""

    def __call__(self, conn: "Connection", bucket: str, prefix: str) -> Iterator[AnyShard]:
        yield Shard(bucket, prefix)


@dataclass(frozen=True)
class by_delimiter:
    """One shard per "folder" ``depth`` levels below the prefix, found with ``delimiter``.

    Keys that sit beside the folders at a shallower level get a shard of their own,
    listed with the delimiter (so it holds only them). Suits keys laid out in folders
    of similar size (dates, tenants).
    """

    depth: int = 1
    delimiter: str = "/"

    def __post_init__(self) -> None:
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"depth must be an integer >= 1, not {self.depth!r}")
        if not self.delimiter:
            raise ValueError("delimiter must not be empty")

    def __call__(self, conn: "Connection", bucket: str, prefix: str) -> Iterator[AnyShard]:
        return self._walk(conn, bucket, prefix, 0)

    def _walk(self, conn: "Connection", bucket: str, prefix: str, level: int) -> Iterator[AnyShard]:
        if level == self.depth:
            yield Shard(bucket, prefix)
            return
        keys_here = False
        for entry in conn.entries(bucket, prefix, delimiter=self.delimiter):
            if isinstance(entry, Prefix):
                yield from self._walk(conn, bucket, entry.prefix, level + 1)
            else:
                keys_here = True
        if keys_here:
            yield Shard(bucket, prefix, delimiter=self.delimiter)


@dataclass
class _Group:
    """The keys a planning listing saw that continue the prefix with ``char``."""

    char: str  # "" for a key equal to the prefix itself
    names: list[str]
    complete: bool  # True when every key continuing with ``char`` is in ``names``


def _groups(conn: "Connection", bucket: str, prefix: str, budget: Optional[list[int]] = None) -> Iterator[_Group]:
    """The characters that follow ``prefix`` in key names, in order, with the keys seen.

    One page per character (fewer when a page reaches several): after a full page the
    listing skips the rest of its last character's keys with StartAfter, and that
    group is incomplete. Every other group is complete: a later key, or the end of the
    listing, was seen in the same page. Each page spends one of ``budget[0]``.

    Some stores (rclone's, for one) honour StartAfter only when it names a key that
    exists, and list from the start otherwise. Seen once, the listing goes on after
    real keys only: every group comes out complete, at the cost of listing them all
    (with a ``budget``, until it runs out: the last group is then incomplete).
    """
    after: Optional[str] = None
    seen_last: Optional[str] = None
    skipping = True
    current: Optional[_Group] = None
    skipped: Optional[_Group] = None  # the group whose rest the last request skipped
    while True:
        page = [key.key for key in itertools.islice(conn.objects(bucket, prefix, start_after=after), PAGE)]
        if budget is not None:
            budget[0] -= 1
        if skipped is not None:
            if page and after is not None and page[0] <= after:
                skipping = False  # StartAfter was ignored: go on after the last key seen
                current, skipped, after = skipped, None, seen_last
                continue
            yield skipped  # incomplete: the rest of its keys were skipped
            skipped = None
        for name in page:
            char = name[len(prefix):len(prefix) + 1]
            if current is not None and char == current.char:
                current.names.append(name)
                continue
            if current is not None:
                current.complete = True
                yield current
            current = _Group(char, [name], False)
        if len(page) < PAGE:
            if current is not None:
                current.complete = True
                yield current
            return
        assert current is not None
        last = seen_last = page[-1]
        if not skipping:
            if budget is not None and budget[0] <= 0:
                yield current  # incomplete: what follows is left to the last, open-ended shard
                return
            after = last
            continue
        skipped, current = current, None
        skip = prefix + last[len(prefix):len(prefix) + 1] + TOP
        # Should a key itself hold TOP there, go on after the last key seen instead,
        # which always moves forward (that character then shows up as a second group).
        after = skip if skip > last else last


def _end_of(prefix: str, char: str) -> str:
    """A `last` boundary after every key that continues ``prefix`` with ``char``."""
    return prefix + char + TOP if char else prefix


@dataclass(frozen=True)
class by_fanout:
    """One shard per character that follows the prefix, ``depth`` characters deep.

    The characters are found by listing (one request each), not assumed: hashed or
    numbered keys (``logs/3fa9...``) spread evenly over them.
    """

    depth: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"depth must be an integer >= 1, not {self.depth!r}")

    def __call__(self, conn: "Connection", bucket: str, prefix: str) -> Iterator[AnyShard]:
        return self._fan(conn, bucket, prefix, 0)

    def _fan(self, conn: "Connection", bucket: str, prefix: str, level: int) -> Iterator[AnyShard]:
        chars = list(dict.fromkeys(group.char for group in _groups(conn, bucket, prefix)))
        for char in chars:
            if not char:
                yield Shard(bucket, prefix, last=prefix)  # the key equal to the prefix, alone
            elif level + 1 == self.depth:
                yield Shard(bucket, prefix + char)
            else:
                yield from self._fan(conn, bucket, prefix + char, level + 1)


@dataclass(frozen=True)
class by_sampling:
    """Key ranges of about ``keys_per_shard`` keys each, cut where a sample says.

    The sample is a partial listing: one page (1,000 keys) at each character that
    follows the prefix. A character whose keys fit in the page is counted exactly and
    cut at real keys. A larger one is sampled the same way one character deeper, while
    the ``probes`` budget of listing requests lasts; past it, the page's first and last
    keys tell how densely keys fill that part of the key space (names read as numbers
    over the characters seen), which gives its size and evenly spaced cut points.
    Hashed, numbered and dated keys come out close to even; a lopsided layout gives
    uneven shards (some empty), never wrong ones.
    """

    keys_per_shard: int = 10_000
    probes: int = 100

    def __post_init__(self) -> None:
        for name in ("keys_per_shard", "probes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, not {value!r}")

    def __call__(self, conn: "Connection", bucket: str, prefix: str) -> Iterator[AnyShard]:
        per_shard = self.keys_per_shard
        cuts: list[str] = []  # `last` boundaries, ascending
        pending = 0  # keys (counted or estimated) since the last cut
        end: Optional[str] = None  # a boundary after every key seen or estimated so far
        for start, group in self._pieces(conn, bucket, prefix, [self.probes]):
            if group.complete:
                for name in group.names:
                    pending += 1
                    if pending >= per_shard:
                        cuts.append(name)
                        pending = 0
                end = group.names[-1]
                continue
            estimate, points = _split(start, group.names, per_shard)
            if points and pending and end is not None:
                cuts.append(end)  # a large group starts a shard of its own
                pending = 0
            cuts.extend(points)
            pending = estimate // (len(points) + 1) if points else pending + estimate
            end = start + TOP
        after: Optional[str] = None
        for cut in cuts:
            if after is None or cut > after:
                yield Shard(bucket, prefix, start_after=after, last=cut)
                after = cut
        yield Shard(bucket, prefix, start_after=after)

    def _pieces(self, conn: "Connection", bucket: str, prefix: str,
                budget: list[int]) -> Iterator[tuple[str, _Group]]:
        """(prefix + char, group) in key order: complete groups, and sampled large ones."""
        for group in _groups(conn, bucket, prefix, budget):
            start = prefix + group.char
            if group.complete or budget[0] <= 0:
                yield start, group
            else:
                yield from self._pieces(conn, bucket, start, budget)


def _split(start: str, keys: list[str], per_shard: int) -> tuple[int, list[str]]:
    """(estimated keys under ``start``, cut points) from a sample of its first keys."""
    suffixes = [name[len(start):] for name in keys]
    alphabet = sorted(set("".join(suffixes)))
    if len(suffixes) < 2 or len(alphabet) < 2:
        return len(keys), []
    first, last = _fraction(suffixes[0], alphabet), _fraction(suffixes[-1], alphabet)
    if last <= first:
        return len(keys), []
    estimate = max(len(keys), int(len(keys) * (1.0 - first) / (last - first)))
    # A guess past the sample: keys rarely fill the whole space their characters span
    # (dates, counters), so it errs large. Capped, an overshoot costs a few empty shards.
    parts = min(-(-estimate // per_shard), MAX_PARTS)
    points: list[str] = []
    for index in range(1, parts):
        point = start + _name_at(first + (1.0 - first) * index / parts, alphabet)
        if not points or point > points[-1]:
            points.append(point)
    return estimate, points


MAX_PARTS = 256  # ranges one sampled character is cut into, at most
DIGITS = 8  # characters of a name read as a number: enough to tell 10^12 keys apart


def _fraction(suffix: str, alphabet: list[str]) -> float:
    """``suffix`` read as a number in [0, 1) whose digits are the alphabet's characters."""
    base = len(alphabet)
    value, scale = 0.0, 1.0
    for char in suffix[:DIGITS]:
        scale /= base
        value += bisect.bisect_left(alphabet, char) * scale
    return value


def _name_at(fraction: float, alphabet: list[str]) -> str:
    """The name made of alphabet characters that reads as ``fraction`` (see _fraction)."""
    base = len(alphabet)
    chars = []
    for _ in range(DIGITS):
        fraction *= base
        digit = min(int(fraction), base - 1)
        chars.append(alphabet[digit])
        fraction -= digit
    return "".join(chars).rstrip(alphabet[0]) or alphabet[0]


@dataclass(frozen=True)
class from_key_file:
    """Slices of ``keys_per_shard`` keys from a file of key names, one a line.

    ``source`` is a local path or ``s3://bucket/key``; lines may also be CSV rows
    ``bucket,key`` (an S3 Batch Operations manifest), keys then URL-encoded. The file
    is read as a stream and each shard carries its own keys: the planner holds one
    slice at a time, and a job only as many as it has tasks in flight. Keys outside
    the job's prefix are left out.
    """

    source: str
    keys_per_shard: int = 10_000

    def __call__(self, conn: "Connection", bucket: str, prefix: str) -> Iterator[AnyShard]:
        names: list[str] = []
        index = 0
        for name in self._names(conn, bucket):
            if not name.startswith(prefix):
                continue
            names.append(name)
            if len(names) == self.keys_per_shard:
                yield KeyList(bucket, tuple(names), self.source, index)
                names, index = [], index + 1
        if names:
            yield KeyList(bucket, tuple(names), self.source, index)

    def _names(self, conn: "Connection", bucket: str) -> Iterator[str]:
        from urllib.parse import unquote_plus

        for line in _lines(conn, self.source):
            line = line.rstrip("\r\n")
            if not line:
                continue
            if "," in line and line.split(",", 1)[0] == bucket:
                yield unquote_plus(line.split(",", 2)[1].strip('"'))
            else:
                yield line


def _lines(conn: "Connection", source: str) -> Iterator[str]:
    if source.startswith("s3://"):
        bucket, key = parse_s3_url(source, "key file")
        with conn.open(bucket, key) as stream:
            yield from io.TextIOWrapper(stream, encoding="utf-8", newline="")
    else:
        with open(source, encoding="utf-8", newline="") as lines:
            yield from lines


@dataclass(frozen=True)
class from_inventory:
    """One shard per data file of an S3 Inventory report in CSV format.

    ``manifest`` is the report's ``s3://.../manifest.json``. Nothing is listed: each task
    streams its data file (keys, sizes, ETags, versions). Keys outside the job's prefix
    are left out by the task; the inventory must be of the job's bucket.
    """

    manifest: str

    def __call__(self, conn: "Connection", bucket: str, prefix: str) -> Iterator[AnyShard]:
        where, key = parse_s3_url(self.manifest, "manifest")
        manifest = json.loads(conn.download(where, key))
        if manifest.get("fileFormat", "CSV").upper() != "CSV":
            raise ValueError(f"only CSV inventories can be read, not {manifest.get('fileFormat')!r}")
        source = manifest.get("sourceBucket")
        if source and source != bucket:
            raise ValueError(f"the inventory {self.manifest} lists bucket {source!r}, not {bucket!r}")
        schema = tuple(name.strip() for name in manifest["fileSchema"].split(","))
        destination = manifest.get("destinationBucket", "")
        inventory_bucket = destination.rsplit(":", 1)[-1] if destination else where
        for entry in manifest["files"]:
            yield InventoryFile(bucket, inventory_bucket, entry["key"], schema, prefix)
