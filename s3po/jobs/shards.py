"""Shards: slices of the key space that a task lists (or reads) by itself.

A job never ships key lists around: it ships shards, and each task finds its own keys.
Three kinds, one protocol (``id``, ``bucket``, ``keys(conn)``, ``ordered``):

- ``Shard``: keys listed from S3, a prefix and optionally a key range. The range is
  ``(start_after, last]``: after ``start_after`` (exclusive, exactly S3's StartAfter, so
  the listing starts there with no request spent on earlier keys) up to and including
  ``last``. Consecutive boundaries b1 < b2 < ... cut a prefix into disjoint shards
  ``(None, b1], (b1, b2], ..., (bn, None)`` that together hold every key once.
- ``KeyList``: keys named in advance (a slice of a file of keys); nothing is listed.
- ``InventoryFile``: one data file of an S3 Inventory (CSV, gzipped); its rows are the keys.

Strings compare by code point, which is the UTF-8 byte order S3 lists in.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Iterator, Optional, Protocol, Union
from urllib.parse import unquote_plus

from ..records import Key, strip_etag, utc

if TYPE_CHECKING:
    from ..connection import Connection

__all__ = ["AnyShard", "InventoryFile", "KeyList", "Shard", "ShardLike"]


def _digest(kind: str, fields: object) -> str:
    text = json.dumps([kind, fields], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


class ShardLike(Protocol):
    """What a task needs of a shard."""

    @property
    def bucket(self) -> str: ...

    @property
    def id(self) -> str: ...

    @property
    def ordered(self) -> bool: ...

    def keys(self, conn: "Connection") -> Iterator[Key]: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Shard:
    """Keys under ``prefix`` after ``start_after`` and up to ``last`` (both optional).

    With ``delimiter``, only the keys at that level (not those in deeper "folders").
    The ``id`` is a digest of the fields: the same slice has the same id in every run.
    """

    bucket: str
    prefix: str = ""
    start_after: Optional[str] = None
    last: Optional[str] = None
    delimiter: Optional[str] = None

    @property
    def id(self) -> str:
        return _digest("shard", asdict(self))

    @property
    def ordered(self) -> bool:
        return True  # listed: keys arrive in S3's order

    def keys(self, conn: "Connection") -> Iterator[Key]:
        for key in conn.objects(self.bucket, self.prefix, delimiter=self.delimiter, start_after=self.start_after):
            if self.start_after is not None and key.key <= self.start_after:
                continue  # a store that honours StartAfter only for a key that exists
            if self.last is not None and key.key > self.last:
                return  # past the range: no further page is asked for
            yield key

    def describe(self) -> str:
        parts = [f"s3://{self.bucket}/{self.prefix}*"]
        if self.start_after is not None:
            parts.append(f"after {self.start_after!r}")
        if self.last is not None:
            parts.append(f"through {self.last!r}")
        if self.delimiter is not None:
            parts.append(f"at one level of {self.delimiter!r}")
        return " ".join(parts)


@dataclass(frozen=True)
class KeyList:
    """Keys named in advance: slice ``index`` of ``source`` (a file of keys)."""

    bucket: str
    names: tuple[str, ...]
    source: str = ""
    index: int = 0

    @property
    def id(self) -> str:
        return _digest("keys", [self.bucket, self.source, self.index, list(self.names)])

    @property
    def ordered(self) -> bool:
        return False

    def keys(self, conn: "Connection") -> Iterator[Key]:
        for name in self.names:
            yield Key(self.bucket, name)

    def describe(self) -> str:
        return f"{len(self.names)} keys of {self.source or 'a key list'} (slice {self.index})"


@dataclass(frozen=True)
class InventoryFile:
    """One CSV data file of an S3 Inventory report; its rows name the keys of ``bucket``.

    ``location`` is where the data file lives (``inventory_bucket``, ``file_key``);
    ``schema`` the manifest's fileSchema (Bucket, Key, Size, ETag, VersionId...). Keys
    in the file are URL-encoded, as S3 Inventory writes them. An inventory of all
    versions has a row per version: only the current version of each key is taken
    (IsLatest), and never a delete marker, so each key is processed once.
    """

    bucket: str
    inventory_bucket: str
    file_key: str
    schema: tuple[str, ...]
    prefix: str = ""  # keys outside it are left out

    @property
    def id(self) -> str:
        return _digest("inventory", asdict(self))

    @property
    def ordered(self) -> bool:
        return False

    def keys(self, conn: "Connection") -> Iterator[Key]:
        with conn.open(self.inventory_bucket, self.file_key, decompress=False) as stream:
            raw = gzip.GzipFile(fileobj=stream) if self.file_key.endswith(".gz") else stream
            for row in csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline="")):
                if row and _current(self.schema, row):
                    key = inventory_key(self.bucket, self.schema, row)
                    if key.key.startswith(self.prefix):
                        yield key

    def describe(self) -> str:
        return f"inventory file s3://{self.inventory_bucket}/{self.file_key}"


def _current(schema: tuple[str, ...], row: list[str]) -> bool:
    """False for a row of an older version, or of a delete marker (inventories of all versions)."""
    fields = dict(zip((name.strip() for name in schema), row))
    return fields.get("IsLatest", "true").lower() != "false" and fields.get("IsDeleteMarker", "false").lower() != "true"


def inventory_key(bucket: str, schema: tuple[str, ...], row: list[str]) -> Key:
    """A Key record from one row of an S3 Inventory CSV file."""
    fields = dict(zip((name.strip() for name in schema), row))
    size = fields.get("Size")
    modified = fields.get("LastModifiedDate")
    return Key(
        bucket=fields.get("Bucket") or bucket,
        key=unquote_plus(fields["Key"]),
        size=int(size) if size else None,
        etag=strip_etag(fields.get("ETag")) or None,
        last_modified=utc(datetime.fromisoformat(modified.replace("Z", "+00:00"))) if modified else None,
        storage_class=fields.get("StorageClass") or None,
        version_id=fields.get("VersionId") or None,
    )


AnyShard = Union[Shard, KeyList, InventoryFile]
