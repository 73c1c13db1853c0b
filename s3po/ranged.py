"""Ranged downloads: one object version fetched as concurrent byte ranges, verified whole.

The first request asks for the first ``chunk`` bytes and so learns the size and the
ETag without a HEAD. Larger objects are then fetched range by range, each pinned to
that ETag with If-Match and written in place (``os.pwrite`` into a preallocated file,
or into a preallocated buffer). Each range is retried on its own. When the object
changes meanwhile (412), the download starts once more from the new version; a
second change is an error. Content is checked wherever S3 gives something to check
against: the MD5 ETag of single-part objects (hashed in order as ranges complete),
and for multipart objects, ranges aligned to the parts, whose MD5s are combined into
the multipart ETag.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional, Protocol

from .errors import ChecksumMismatch, DownloadException, error_code, http_status, s3_url
from .integrity import BodyCheck, sse_hides_md5
from .parts import (
    ByteRange,
    TransferSettings,
    multipart_etag,
    multipart_part_count,
    parse_content_range,
    split,
)
from .progress import Progress
from .records import strip_etag

__all__ = ["FetchedRange", "get_first", "whole_object", "FileSink", "Fetched", "MemorySink", "RangePlan", "fetch", "fetch_range", "plan_ranges"]

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
READ_CHUNK = 1 * MiB
# Hashing at least this much is worth a trip to another thread under gevent (~0.4 ms).
OFF_HUB_MIN_BYTES = 256 * 1024


class FileSink:
    """Writes ranges in place into an open file, by offset (safe from many workers)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def allocate(self, size: int) -> None:
        # Reserving the blocks up front fails early on a full disk and keeps the file in
        # one piece; not every filesystem can, and the size is what matters.
        try:
            os.posix_fallocate(self.fd, 0, max(size, 1))
        except (AttributeError, OSError):
            pass
        os.ftruncate(self.fd, size)

    def write_at(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, offset)
            view = view[written:]
            offset += written

    def read_at(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)


class MemorySink:
    """Writes ranges in place into one preallocated buffer."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def allocate(self, size: int) -> None:
        self.buffer = bytearray(size)

    def write_at(self, offset: int, data: bytes) -> None:
        self.buffer[offset:offset + len(data)] = data

    def read_at(self, offset: int, size: int) -> memoryview:
        return memoryview(self.buffer)[offset:offset + size]


class Sink(Protocol):
    """Where fetched ranges are written, by offset, and read back to be hashed."""

    def allocate(self, size: int) -> None: ...

    def write_at(self, offset: int, data: bytes) -> None: ...

    def read_at(self, offset: int, size: int) -> Any: ...


@dataclass(frozen=True)
class Fetched:
    """What a finished fetch learned of the object: its size and its headers."""

    size: int
    etag: Optional[str]
    content_encoding: Optional[str]
    headers: Mapping[str, Any]


@dataclass(frozen=True)
class FetchedRange:
    """A range fetched and written, with the MD5 of its bytes when one was wanted."""

    span: ByteRange
    digest: Optional[bytes]


def fetch(settings: TransferSettings, bucket: str, key: str, sink: Sink, chunk: int,
          progress: Progress) -> Fetched:
    """Fetch the current version of bucket/key into ``sink``; returns what it learned."""
    try:
        return _fetch_version(settings, bucket, key, sink, chunk, progress)
    except Exception as exc:
        if not _changed(exc):
            raise
        logger.warning("download %s: the object changed during the download; starting again "
                       "from its new version", s3_url(bucket, key))
    progress.restart(None)
    try:
        return _fetch_version(settings, bucket, key, sink, chunk, progress)
    except Exception as exc:
        if not _changed(exc):
            raise
        raise DownloadException(
            f"download {s3_url(bucket, key)} failed: the object changed during the download, "
            "twice; nothing was written", bucket=bucket, key=key, code="PreconditionFailed",
            operation="download",
        ) from exc


def _changed(exc: BaseException) -> bool:
    return error_code(exc) == "PreconditionFailed" or http_status(exc) == 412


def _fetch_version(settings: TransferSettings, bucket: str, key: str, sink: Sink, chunk: int,
                   progress: Progress) -> Fetched:
    client, policy = settings.client, settings.policy
    url = s3_url(bucket, key)
    first_range = ByteRange(0, chunk)
    first_used = [0]

    def first_get() -> Mapping[str, Any]:
        response = get_first(client, bucket, key, first_range)
        if whole_object(response):
            # The whole object came (a small one, an empty one, or a store that ignores
            # Range): read it here, where a broken body is retried with the request.
            sink.allocate(response.get("ContentLength") or 0)
            _read_whole(response, sink)
        return response

    def count_retry() -> None:
        first_used[0] += 1

    first = policy.call(first_get, what=f"download {url}", on_retry=count_retry)
    etag_header = first.get("ETag")
    etag = strip_etag(etag_header)
    if whole_object(first):
        size = first.get("ContentLength") or 0
        progress.total = size
        progress.advance(size)
        return Fetched(size, etag, first.get("ContentEncoding"), first)
    content_range = parse_content_range(first.get("ContentRange"))
    assert content_range is not None  # whole_object() says so otherwise
    total = content_range.total
    if content_range.first != 0 or total is None:
        first["Body"].close()
        raise DownloadException(
            f"download {url} failed: asked for {first_range.header}, the server answered "
            f"{first.get('ContentRange')}", bucket=bucket, key=key, operation="download")
    from .concurrency import run_parallel  # gevent: imported on first use, see __init__

    sink.allocate(total)
    progress.total = total
    plan = plan_ranges(settings, bucket, key, first, total, chunk)
    used = {span.start: 0 for span in plan.ranges}
    used[0] = first_used[0]
    preopened: dict[int, Mapping[str, Any]] = {0: first}
    get_range = functools.partial(fetch_range, settings, bucket, key, etag_header, total, sink, plan.hashing)
    redo = 0
    while True:
        verifier = plan.verifier(sink)

        def tasks() -> Iterator[Callable[[], FetchedRange]]:
            for span in plan.ranges:
                yield functools.partial(get_range, span, preopened.pop(span.start, None), used)

        def on_done(done: FetchedRange) -> None:
            verifier.add(done)
            progress.advance(done.span.size)

        try:
            run_parallel(tasks(), settings.workers, settings.limiters(), on_done, len(plan.ranges))
        finally:
            for response in preopened.values():
                response["Body"].close()
            preopened.clear()
        try:
            verifier.verify(etag)
            return Fetched(total, etag, first.get("ContentEncoding"), first)
        except ChecksumMismatch:
            # Which range was damaged is not known: all of them are fetched again, and
            # that counts as a retry of each, so no range ever exceeds its retries.
            if redo >= policy.retries or any(count >= policy.retries for count in used.values()):
                raise
            redo += 1
            for start in used:
                used[start] += 1
            wait = policy.delay(redo)
            logger.warning("download %s: the bytes received do not match the ETag; fetching "
                           "every range again in %.2f s", url, wait)
            policy.sleep(wait)
            progress.restart(total)


def get_first(client: Any, bucket: str, key: str, first_range: ByteRange) -> Mapping[str, Any]:
    """GET ``first_range`` of the object; an empty object (416) is asked for whole."""
    try:
        return client.get_object(Bucket=bucket, Key=key, Range=first_range.header)
    except Exception as exc:
        if http_status(exc) != 416:
            raise
    # Only an empty object has no byte 0 to give: ask for it whole.
    return client.get_object(Bucket=bucket, Key=key)


def whole_object(response: Mapping[str, Any]) -> bool:
    """True when a response to the first GET carries the whole object."""
    answered = parse_content_range(response.get("ContentRange"))
    if answered is None:
        return True  # a 200: an empty object, or a store that ignores Range
    return answered.first == 0 and answered.total is not None and answered.last + 1 >= answered.total


def _read_whole(response: Mapping[str, Any], sink: Sink) -> None:
    """Read a complete object's body into ``sink``, checking its size and MD5."""
    check = BodyCheck(strip_etag(response.get("ETag")), response.get("ContentLength"), response)
    _copy_body(response["Body"], sink, 0, None, check)
    check.verify()


def _hash(digest: Any, data: Any) -> None:
    if len(data) < OFF_HUB_MIN_BYTES:
        digest.update(data)  # less work than handing it to another thread
        return
    from .concurrency import off_hub  # gevent: imported on first use, see __init__

    off_hub(digest.update, data)


def _copy_body(body: Any, sink: Sink, offset: int, limit: Optional[int], digest: Any) -> int:
    """Copy ``body`` into ``sink`` from ``offset``; stops after ``limit`` bytes if given.

    ``digest`` (anything with ``update``, or None) sees every byte copied.
    Reads the body to its end whenever it holds no more than ``limit``, so that the
    connection goes back to the pool; otherwise closes it (the rest is not wanted).
    """
    copied = 0
    try:
        while limit is None or copied < limit:
            want = READ_CHUNK if limit is None else min(READ_CHUNK, limit - copied)
            data = body.read(want)
            if not data:
                return copied
            sink.write_at(offset + copied, data)
            if digest is not None:
                _hash(digest, data)
            copied += len(data)
        # One more read finds the end of the body, which hands the connection back to
        # the pool. If bytes remain instead, they belong to another range: closing
        # drops the connection, cheaper than reading bytes nobody wants.
        body.read(1)
        return copied
    finally:
        body.close()


def fetch_range(settings: TransferSettings, bucket: str, key: str, etag_header: Optional[str], total: int,
                 sink: Sink, hashing: bool, span: ByteRange, preopened: Optional[Mapping[str, Any]],
                 used: dict[int, int]) -> FetchedRange:
    """Fetch ``span`` (continuing ``preopened`` when given) with its own retries."""
    client = settings.client
    pending = [preopened] if preopened is not None else []

    def attempt() -> FetchedRange:
        md5 = hashlib.md5() if hashing else None
        position = span.start
        while position < span.end:
            # The first response, already open, serves the start of the first range.
            response = pending.pop() if pending else None
            if response is None:
                response = client.get_object(
                    Bucket=bucket, Key=key, Range=ByteRange(position, span.end).header, IfMatch=etag_header
                )
            answered = parse_content_range(response.get("ContentRange"))
            if answered is None or answered.first != position or answered.total != total:
                response["Body"].close()
                raise DownloadException(
                    f"download {s3_url(bucket, key)} failed: asked for bytes {position}-{span.end - 1}, "
                    f"the server answered {response.get('ContentRange') or 'without a range'}",
                    bucket=bucket, key=key, operation="download")
            until = min(answered.last + 1, span.end)
            copied = _copy_body(response["Body"], sink, position, until - position, md5)
            if copied != until - position:
                raise ChecksumMismatch(
                    f"bytes {position}-{until - 1} ended after {copied} bytes"
                )
            position = until
        return FetchedRange(span, md5.digest() if md5 is not None else None)

    def on_retry() -> None:
        used[span.start] += 1

    return settings.policy.call(
        attempt, what=f"download bytes {span.start}-{span.end - 1} of {s3_url(bucket, key)}",
        on_retry=on_retry, retries_used=used[span.start],
    )


# -- what to check the bytes against -------------------------------------------------


@dataclass(frozen=True)
class RangePlan:
    """The ranges to fetch an object in, and what checks them."""

    ranges: list[ByteRange]
    hashing: bool  # each range hashes its own bytes (they are the object's parts)
    verifier: Callable[[Sink], Any]


def plan_ranges(settings: TransferSettings, bucket: str, key: str, first: Mapping[str, Any], total: int,
                chunk: int) -> RangePlan:
    """Ranges aligned to the parts of a multipart object (when its part size can be
    learned), else of ``chunk`` bytes; and the verifier that fits the ETag."""
    etag = strip_etag(first.get("ETag"))
    parts = multipart_part_count(etag)
    by_chunk = split(total, chunk)
    if BodyCheck(etag, total, first).expected_md5 is not None:  # the bytes' MD5, or one part's
        return RangePlan(by_chunk, False, lambda sink: _InOrderDigest(sink, BodyCheck(etag, total, first)))
    if parts is not None and not sse_hides_md5(first):
        part_size = _first_part_size(settings, bucket, key, parts)
        if part_size and (parts - 1) * part_size < total <= parts * part_size:
            return RangePlan(split(total, part_size), True, lambda sink: _PartDigests())
        logger.debug("download %s: part sizes unknown; only the size can be checked", s3_url(bucket, key))
    return RangePlan(by_chunk, False, lambda sink: _SizeOnly())


def _first_part_size(settings: TransferSettings, bucket: str, key: str, parts: int) -> Optional[int]:
    """The size of part 1 of a multipart object (HEAD with PartNumber=1), or None."""
    def attempt() -> Mapping[str, Any]:
        return settings.client.head_object(Bucket=bucket, Key=key, PartNumber=1)

    try:
        head = settings.policy.call(attempt, what=f"download {s3_url(bucket, key)}: size of part 1")
    except Exception as exc:
        # A store that cannot tell: the download goes on, checked by size alone.
        logger.debug("download %s: HEAD of part 1 failed (%s)", s3_url(bucket, key), exc)
        return None
    if head.get("PartsCount") not in (None, parts):
        return None
    return head.get("ContentLength")


class _SizeOnly:
    def add(self, done: FetchedRange) -> None:
        pass

    def verify(self, etag: Optional[str]) -> None:
        pass  # every range already had exactly its bytes


class _PartDigests:
    """Collects each part's MD5; the multipart ETag is recomputed from them at the end."""

    def __init__(self) -> None:
        self._digests: dict[int, bytes] = {}

    def add(self, done: FetchedRange) -> None:
        assert done.digest is not None
        self._digests[done.span.start] = done.digest

    def verify(self, etag: Optional[str]) -> None:
        combined = multipart_etag(self._digests[start] for start in sorted(self._digests))
        if etag is None or combined != etag.lower():
            raise ChecksumMismatch(f"the parts received make the ETag {combined}, not {etag}")


class _InOrderDigest:
    """The whole object's check, hashed from the sink as ranges complete in order.

    Ranges finish in any order; each time the next one in line is there, it is read
    back (from the page cache, for a file) and fed to the BodyCheck.
    """

    def __init__(self, sink: Sink, check: BodyCheck) -> None:
        self._sink = sink
        self._check = check
        self._next = 0
        self._waiting: dict[int, int] = {}

    def add(self, done: FetchedRange) -> None:
        self._waiting[done.span.start] = done.span.end
        while self._next in self._waiting:
            end = self._waiting.pop(self._next)
            position = self._next
            while position < end:
                size = min(READ_CHUNK * 8, end - position)
                _hash(self._check, self._sink.read_at(position, size))
                position += size
            self._next = end

    def verify(self, etag: Optional[str]) -> None:
        self._check.verify()
