"""The work of each job on one key: map a function, copy, download, delete, audit.

Each action is a small picklable value (it travels to the workers with its shards).
``items`` turns a shard into what the threads of a task pull one at a time (keys,
key pairs, chunks of keys); ``run`` does the work of one and counts it in the
task's Tally, failures included: a failed key never fails the task.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional

from ..deleting import chunked, outcome
from ..errors import DownloadException, NotFound
from ..identical import identical
from ..records import Key
from ..treepaths import check_apart, folder_prefix
from ..treeplan import ordered, pairs
from .paths import local_path
from .report import FailedKey
from .shards import Shard, ShardLike
from .work import Tally

if TYPE_CHECKING:
    from ..connection import Connection

__all__ = ["SKIPPED", "Audit", "Copy", "Delete", "Download", "MapKeys"]

MiB = 1024 * 1024


class _Skipped:
    def __repr__(self) -> str:
        return "s3po.jobs.SKIPPED"

    def __reduce__(self) -> str:
        return "SKIPPED"  # one sentinel in every process


#: What a ``map_keys`` function returns for a key that needed nothing (counted as skipped).
SKIPPED = _Skipped()


@dataclass(frozen=True)
class MapKeys:
    """``fn(conn, key)`` for every key; a raise is that key's failure."""

    fn: Callable[["Connection", Key], Any]
    name: str = "map_keys"

    def items(self, conn: "Connection", shard: ShardLike) -> Iterator[Key]:
        return shard.keys(conn)

    def run(self, conn: "Connection", key: Key, tally: Tally) -> None:
        try:
            result = self.fn(conn, key)
        except Exception as exc:
            tally.fail(key, exc)
            return
        if result is SKIPPED:
            tally.skip(key)
        else:
            tally.done(key)


@dataclass(frozen=True)
class Copy:
    """Server-side copies to ``dst_bucket``, ``src_prefix`` replaced by ``dst_prefix``.

    With ``skip_identical``, an object already at the destination with the same size
    and ETag is left alone. For a listed shard the destination's matching range is
    listed beside it (one request per 1,000 keys, not a HEAD per key); keys from a
    file or an inventory are looked up with a HEAD each. A source uploaded in parts
    has an ETag its copy never has (the copy is one part): for such a pair, their
    stored full-object checksums decide (s3po.identical).
    """

    src_prefix: str
    dst_bucket: str
    dst_prefix: str
    skip_identical: bool = True
    name: str = "copy"

    def __post_init__(self) -> None:
        # Prefixes are folders, as in every job ("data" is "data/").
        object.__setattr__(self, "src_prefix", folder_prefix(self.src_prefix))
        object.__setattr__(self, "dst_prefix", folder_prefix(self.dst_prefix))

    def target(self, key: str) -> str:
        return self.dst_prefix + key[len(self.src_prefix):]

    def items(self, conn: "Connection", shard: ShardLike) -> Iterator[tuple[Key, Optional[Key], bool]]:
        check_apart(shard.bucket, self.src_prefix, self.dst_bucket, self.dst_prefix)  # never its own copies
        keys = shard.keys(conn)
        mirror = self._mirror(shard) if self.skip_identical else None
        if mirror is None:
            return ((key, None, False) for key in keys)
        return _merged(keys, mirror.keys(conn), self.target)

    def _mirror(self, shard: ShardLike) -> Optional[Shard]:
        """The destination's shard that holds the copies of ``shard``'s keys, if it can be said."""
        if not isinstance(shard, Shard):
            return None
        bounds = [shard.prefix, shard.start_after, shard.last]
        if any(bound is not None and not bound.startswith(self.src_prefix) for bound in bounds):
            return None
        # Replacing a common prefix keeps the order of names: the copies of a range
        # are a range, in the same order.
        mapped = [None if bound is None else self.target(bound) for bound in bounds]
        return Shard(self.dst_bucket, mapped[0] or "", mapped[1], mapped[2], shard.delimiter)

    def run(self, conn: "Connection", item: tuple[Key, Optional[Key], bool], tally: Tally) -> None:
        source, existing, looked = item
        target = self.target(source.key)
        try:
            if self.skip_identical:
                if not looked:
                    existing = _head_or_none(conn, self.dst_bucket, target)
                    if existing is not None and source.etag is None:
                        source = conn.head(source.bucket, source.key)
                if existing is not None and identical(conn, source, existing):
                    tally.skip(source)
                    return
            copied = conn.copy(source.bucket, source.key, self.dst_bucket, target)
            tally.done(source, copied.size)
        except Exception as exc:
            tally.fail(source, exc)


def _merged(sources: Iterable[Key], targets: Iterable[Key],
            target: Callable[[str], str]) -> Iterator[tuple[Key, Optional[Key], bool]]:
    """Each source key with its copy's listed record (or None), both listings in order."""
    walked = pairs(ordered(iter(sources), lambda key: key.key, "source listing"),
                   ordered(iter(targets), lambda key: key.key, "destination listing"),
                   lambda key: target(key.key), lambda key: key.key)
    for source, copy in walked:
        if source is not None:
            yield source, copy, True


def _head_or_none(conn: "Connection", bucket: str, key: str) -> Optional[Key]:
    try:
        return conn.head(bucket, key)
    except NotFound as exc:
        if exc.code == "NoSuchBucket":
            raise
        return None



@dataclass(frozen=True)
class Download:
    """Each key into a file under ``target``: its name after ``prefix``, "/" as separator.

    ``target`` may hold ``{host}`` and ``{pid}``, filled in by each worker: a folder per
    machine or per worker process instead of a shared one. Every file lands
    atomically (Connection.download_file). Folder markers (keys ending in "/") are
    skipped; keys that cannot be a file under the target (see paths.local_path) fail
    with the code UnsafeKey, and nothing is written for them.
    """

    prefix: str
    target: str
    decompress: bool = True
    name: str = "download"

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", folder_prefix(self.prefix))  # a folder, as in every job

    def items(self, conn: "Connection", shard: ShardLike) -> Iterator[Key]:
        return shard.keys(conn)

    def root(self) -> str:
        return self.target.format(host=socket.gethostname(), pid=os.getpid())

    def run(self, conn: "Connection", key: Key, tally: Tally) -> None:
        if key.key.endswith("/") and not key.size:
            tally.skip(key)
            return
        try:
            path = local_path(self.root(), self.prefix, key.key)
            conn.download_file(key.bucket, key.key, path, decompress=self.decompress)
            tally.done(key)
        except Exception as exc:
            tally.fail(key, exc)


@dataclass(frozen=True)
class Delete:
    """Every key deleted, 1,000 a DeleteObjects request; keys S3 refused are reported."""

    name: str = "delete"

    def items(self, conn: "Connection", shard: ShardLike) -> Iterator[list[Key]]:
        return chunked(shard.keys(conn))

    def run(self, conn: "Connection", chunk: list[Key], tally: Tally) -> None:
        names = [key.key for key in chunk]
        error: Optional[Exception] = None
        try:
            conn.delete_many(chunk[0].bucket, names)
        except Exception as exc:
            error = exc
        _, refused = outcome(names, error)
        reasons = {name: (code, message) for name, code, message in refused}
        for key in chunk:
            if key.key in reasons:
                code, message = reasons[key.key]
                tally.refused(FailedKey(key.bucket, key.key, key.version_id, code, message))
            else:
                tally.done(key)


@dataclass(frozen=True)
class Audit:
    """Every object read to its end and verified (MD5 or multipart ETag, and size).

    The bytes are read through Connection.open and thrown away; s3po checks them as
    they end. An object whose ETag is no longer the one listed changed meanwhile: it
    is reported (code ObjectChanged), since the object audited is not the one listed.
    """

    name: str = "audit"

    def items(self, conn: "Connection", shard: ShardLike) -> Iterator[Key]:
        return shard.keys(conn)

    def run(self, conn: "Connection", key: Key, tally: Tally) -> None:
        try:
            read = 0
            with conn.open(key.bucket, key.key, decompress=False) as stream:
                while True:
                    chunk = stream.read(MiB)
                    if not chunk:
                        break
                    read += len(chunk)
                seen = stream.info.etag
            if key.etag is not None and seen is not None and seen != key.etag:
                raise DownloadException(
                    f"audit {key.url}: the object changed since it was listed (ETag {key.etag} -> {seen})",
                    bucket=key.bucket, key=key.key, code="ObjectChanged", operation="audit")
            tally.done(key, read)
        except Exception as exc:
            tally.fail(key, exc)
