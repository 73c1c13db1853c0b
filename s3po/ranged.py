"""The one download engine: an object version fetched as byte ranges, verified whole.

The first request learns the size and the ETag without a HEAD; a small object arrives
whole in it. Where the store may keep checksums (see storechecks.py) it asks for the
object whole, with ``x-amz-checksum-mode: ENABLED``, since S3 returns the stored
full-object checksum only then; otherwise it asks for the first ``chunk`` bytes. A
larger object is fetched range by range, concurrently (the first answer serves the
first range, then is closed), each range pinned to that ETag with If-Match (and its
answer's ETag compared too, for stores that ignore If-Match) and received straight
into a sink (see sinks.py). Each range is retried on its own and resumes where it
broke. When the object changes meanwhile, the download starts once more from the new
version; a second change is an error.

Content is checked wherever the store gives something to check against (see
``learn_layout``): the stored CRC, combined from the ranges' own CRCs as they finish,
or the ETag's MD5s; failing to learn what to check against is an error like any
other, never a quiet fall back to sizes alone. Each range is hashed as it lands,
while the others are on the wire: never a second pass, but for an object whose only
check is the MD5 of all its bytes in order (read back from the sink as the ranges
line up).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional

from .checksums import Crc, combine_all
from .context import CallContext
from .errors import ChecksumMismatch, DownloadException, error_code, http_status, s3_url
from .integrity import BodyCheck, Layout, layout_from_etag, verify_checksum
from .parts import ByteRange, ContentRange, multipart_etag, parse_content_range, split
from .progress import Progress
from .records import strip_etag
from .retry import Budget, SharedBudget, is_transient
from .sinks import Sink
from .storechecks import StoredChecksum, carries_checksum, stored_checksum
from .units import MiB

__all__ = [
    "FirstAnswer",
    "Fetched",
    "FetchedRange",
    "RangePlan",
    "VersionChanged",
    "check_pinned",
    "copy_body",
    "fetch",
    "fetch_range",
    "first_answer",
    "get_first",
    "learn_layout",
    "pinned_get",
    "plan_ranges",
]

logger = logging.getLogger(__name__)

# Bytes asked of a body per read: the call's cancellation is checked between reads.
READ_CHUNK = 1 * MiB


class VersionChanged(Exception):
    """A response came from another version than the one pinned (If-Match was ignored)."""


class RangeIgnored(Exception):
    """A ranged GET was answered with the whole object: the store ignores Range."""


@dataclass(frozen=True)
class Fetched:
    """What a finished fetch learned of the object, and what checked its bytes."""

    size: int
    etag: Optional[str]
    content_encoding: Optional[str]
    check: str  # "CRC64NVME", "MD5", "part MD5s" or "size"


@dataclass(frozen=True)
class FetchedRange:
    """A range fetched and written, with the digest of its bytes when one was wanted."""

    span: ByteRange
    digest: Any  # a hashlib MD5 or a Crc, or None


@dataclass(frozen=True)
class FirstAnswer:
    """What the answer to a download's first GET carries."""

    total: Optional[int]  # the object's size, where the answer tells it
    whole: bool  # the whole object: read it to its end, here


def first_answer(response: Mapping[str, Any], asked_whole: bool, chunk: int, ignores_range: bool) -> FirstAnswer:
    """Whether the first GET's answer is the whole object, or the start of one fetched in ranges.

    An object asked for whole but larger than ``chunk`` is fetched in ranges all the
    same (its answer serves the first one), unless the store is known to ignore Range.
    A 200 to a ranged GET is such a store: that answer is read to its end.
    """
    answered = parse_content_range(response.get("ContentRange"))
    if answered is None:
        length = response.get("ContentLength")
        in_ranges = asked_whole and not ignores_range and length is not None and length > chunk
        return FirstAnswer(length, whole=not in_ranges)
    whole = answered.first == 0 and answered.total is not None and answered.last + 1 >= answered.total
    return FirstAnswer(answered.total, whole)


def fetch(ctx: CallContext, bucket: str, key: str, sink: Sink, chunk: int, progress: Progress) -> Fetched:
    """Fetch the current version of bucket/key into ``sink``; returns what it learned."""
    try:
        return _fetch_version(ctx, bucket, key, sink, chunk, progress)
    except RangeIgnored:
        # Learned once per Connection: from now on a whole first answer is read whole.
        ctx.checks.ignores_range = True
        logger.info("download %s: the store ignores Range; reading the object as one stream",
                    s3_url(bucket, key))
        progress.restart(None)
        return _fetch_version(ctx, bucket, key, sink, chunk, progress)
    except Exception as exc:
        if not changed(exc):
            raise
        logger.warning("download %s: the object changed during the download; starting again "
                       "from its new version", s3_url(bucket, key))
    progress.restart(None)
    try:
        return _fetch_version(ctx, bucket, key, sink, chunk, progress)
    except RangeIgnored:
        raise  # not a change; both times would not have been asked
    except Exception as exc:
        if not changed(exc):
            raise
        raise DownloadException(
            f"download {s3_url(bucket, key)} failed: the object changed during the download, "
            "twice; nothing was written", bucket=bucket, key=key, code="PreconditionFailed",
            operation="download",
        ) from exc


def changed(exc: BaseException) -> bool:
    """True when ``exc`` says the pinned version is gone (412, or another ETag came)."""
    return isinstance(exc, VersionChanged) or error_code(exc) == "PreconditionFailed" or http_status(exc) == 412


def _fetch_version(ctx: CallContext, bucket: str, key: str, sink: Sink, chunk: int,
                   progress: Progress) -> Fetched:
    url = s3_url(bucket, key)
    first_range = ByteRange(0, chunk)
    asks_whole = ctx.checks.whole_first_get()
    first_budget = Budget()
    layouts: dict[str, Layout] = {}  # learned once, kept across retries of the first GET

    def first_get() -> Mapping[str, Any]:
        response = get_first(ctx, bucket, key, first_range, whole=asks_whole)
        if first_answer(response, asks_whole, chunk, ctx.checks.ignores_range).whole:
            # The whole object came (a small one, an empty one, or a store that ignores
            # Range): read and check it here, where a broken body is retried with the request.
            try:
                size = response.get("ContentLength") or 0
                if "whole" not in layouts:
                    # Asked once in this attempt: the attempt itself is what retries.
                    layouts["whole"] = learn_layout(ctx, bucket, key, response, size, asked_checksum=asks_whole,
                                                    retried=False)
                sink.allocate(size)
                check = BodyCheck(response.get("ContentLength"), layouts["whole"])
                copy_body(ctx, response["Body"], sink, Position(), None, check, response.get("ContentLength"))
                check.verify()
            finally:
                response["Body"].close()
        return response

    first = ctx.retrying(first_get, what=f"download {url}", budget=first_budget)
    etag_header = first.get("ETag")
    etag = strip_etag(etag_header)
    answer = first_answer(first, asks_whole, chunk, ctx.checks.ignores_range)
    if answer.whole:
        size = first.get("ContentLength") or 0
        progress.total = size
        progress.advance(size)
        return Fetched(size, etag, first.get("ContentEncoding"), layouts["whole"].check)
    preopened: dict[int, Mapping[str, Any]] = {0: first}
    try:
        total = answer.total
        content_range = parse_content_range(first.get("ContentRange"))
        if total is None or (content_range is not None and content_range.first != 0):
            raise DownloadException(
                f"download {url} failed: asked for {first_range.header}, the server answered "
                f"{first.get('ContentRange')}", bucket=bucket, key=key, operation="download")
        sink.allocate(total)
        progress.total = total
        plan = plan_ranges(ctx, bucket, key, first, total, chunk, asked_checksum=asks_whole)
        budgets = {span.start: Budget() for span in plan.ranges}
        budgets[0].used = first_budget.used
        get_range = functools.partial(fetch_range, ctx, bucket, key, etag_header, total, sink, plan.digest)

        def fetch_all() -> None:
            verifier = plan.verifier(sink)

            def tasks() -> Iterator[Callable[[], FetchedRange]]:
                for span in plan.ranges:
                    yield functools.partial(get_range, span, preopened.pop(span.start, None), budgets[span.start])

            def on_done(done: FetchedRange) -> None:
                verifier.add(done)
                progress.advance(done.span.size)

            ctx.parallel(tasks(), on_done, len(plan.ranges))
            verifier.verify()

        # Which range was damaged is not known: all of them are fetched again, and that
        # counts as a retry of each, so no range is ever asked for more than retries + 1 times.
        ctx.retrying(fetch_all, what=f"download {url}", on_retry=lambda: progress.restart(total),
                     budget=SharedBudget(list(budgets.values())),
                     retryable=lambda exc: isinstance(exc, ChecksumMismatch))
        return Fetched(total, etag, first.get("ContentEncoding"), plan.check)
    finally:
        for response in preopened.values():
            response["Body"].close()


def get_first(ctx: CallContext, bucket: str, key: str, first_range: ByteRange, *, whole: bool) -> Mapping[str, Any]:
    """GET the object ``whole`` with its stored checksum, or ``first_range`` of it.

    An empty object has no byte 0 to give (416): it is asked for whole.
    """
    if whole:
        return ctx.send("get_object", Bucket=bucket, Key=key, ChecksumMode="ENABLED")  # type: ignore[no-any-return]
    try:
        return ctx.send("get_object", Bucket=bucket, Key=key, Range=first_range.header)  # type: ignore[no-any-return]
    except Exception as exc:
        if http_status(exc) != 416:
            raise
    # Only an empty object has no byte 0 to give: ask for it whole.
    return ctx.send("get_object", Bucket=bucket, Key=key)  # type: ignore[no-any-return]


def _hash(ctx: CallContext, digest: Any, data: Any) -> None:
    ctx.off_hub(digest.update, data, size=len(data))


class Position:
    """Where the next byte of a body goes; moved on as bytes land, even if the body breaks."""

    def __init__(self, at: int = 0) -> None:
        self.at = at


def copy_body(ctx: CallContext, body: Any, sink: Sink, position: Position, limit: Optional[int],
              digest: Any, length: Optional[int] = None) -> int:
    """Receive ``body`` into ``sink`` at ``position``; stops after ``limit`` bytes if given.

    ``length``: the body's announced length, when it is read to its end (no ``limit``),
    so that landings are no larger than what is to come.

    Returns the bytes received. Each landing (up to ``ctx.chunk`` bytes) is filled by
    ``readinto`` a megabyte at a time, the call's cancellation checked in between,
    then hashed by ``digest`` (anything with ``update``, or None) and committed. Bytes
    received before a failure are committed too, and hashed: ``position`` and the
    digest then agree on what a resume must continue from. Reads the body to its end
    whenever it holds no more than ``limit``, so that the connection goes back to the
    pool; otherwise the caller closes it (the rest is not wanted).
    """
    start = position.at
    readinto = getattr(body, "readinto", None)
    while limit is None or position.at - start < limit:
        done = position.at - start
        if limit is not None:
            want = min(ctx.chunk, limit - done)
        elif length is None:
            want = READ_CHUNK
        else:
            # Past the announced length only the end is expected: one byte finds it.
            want = min(ctx.chunk, length - done) if length > done else 1
        landing = sink.landing(position.at, want)
        filled = 0
        try:
            while filled < want:
                ctx.cancellation.check()
                piece = landing[filled:filled + READ_CHUNK]
                count = _receive(body, readinto, piece)
                piece.release()
                if not count:
                    break
                filled += count
        except BaseException:
            if filled and digest is not None:
                digest.update(landing[:filled])  # here, not off the hub: the call is unwinding
            sink.commit(position.at, landing, filled)
            position.at += filled
            raise
        if filled and digest is not None:
            _hash(ctx, digest, landing[:filled])
        if sink.writes_out:
            # A file's write may wait on the disk: off the hub, like hashing.
            ctx.off_hub(sink.commit, position.at, landing, filled, size=filled)
        else:
            sink.commit(position.at, landing, filled)
        position.at += filled
        if filled < want:
            return position.at - start  # the body ended
    # One more read finds the end of the body, which hands the connection back to the
    # pool. If bytes remain instead, they belong to another range.
    body.read(1)
    return position.at - start


def _receive(body: Any, readinto: Optional[Callable[[Any], int]], into: memoryview) -> int:
    """Read from ``body`` straight into ``into``; returns the count, 0 at the end."""
    if readinto is not None:
        return int(readinto(into) or 0)
    data = body.read(len(into))  # a body without readinto (a test double, say)
    into[:len(data)] = data
    return len(data)


def fetch_range(ctx: CallContext, bucket: str, key: str, etag_header: Optional[str], total: int,
                sink: Sink, new_digest: Optional[Callable[[], Any]], span: ByteRange,
                preopened: Optional[Mapping[str, Any]], budget: Budget) -> FetchedRange:
    """Fetch ``span`` (continuing ``preopened`` when given) with its own retries.

    A retry resumes where the last attempt stopped: the bytes before it are in the
    sink already, and the range's digest (``new_digest()``, if given) has seen exactly them.
    """
    pending = [preopened] if preopened is not None else []
    digest = new_digest() if new_digest is not None else None
    position = Position(span.start)

    def attempt() -> FetchedRange:
        while position.at < span.end:
            # The first response, already open, serves the start of the first range.
            response = pending.pop() if pending else pinned_get(
                ctx, bucket, key, etag_header, ByteRange(position.at, span.end))
            try:
                answered = check_pinned(response, bucket, key, etag_header, position.at, total)
                until = min(answered.last + 1, span.end)
                wanted = until - position.at
                copied = copy_body(ctx, response["Body"], sink, position, wanted, digest)
                if copied != wanted:
                    raise ChecksumMismatch(f"bytes {position.at - copied}-{until - 1} ended after {copied} bytes")
            finally:
                response["Body"].close()
        return FetchedRange(span, digest)

    return ctx.retrying(
        attempt, what=f"download bytes {span.start}-{span.end - 1} of {s3_url(bucket, key)}", budget=budget)


def pinned_get(ctx: CallContext, bucket: str, key: str, etag_header: Optional[str],
               span: Optional[ByteRange] = None, start: int = 0) -> Mapping[str, Any]:
    """GET ``span`` (or everything from ``start``) of the version ``etag_header`` names."""
    if_match = {"IfMatch": etag_header} if etag_header else {}
    wanted = span.header if span is not None else f"bytes={start}-"
    return ctx.send("get_object", Bucket=bucket, Key=key, Range=wanted, **if_match)  # type: ignore[no-any-return]


def check_pinned(response: Mapping[str, Any], bucket: str, key: str, etag_header: Optional[str], start: int,
                 total: Optional[int] = None) -> ContentRange:
    """The range ``response`` carries, once it is shown to be of the pinned version, from ``start``.

    A store that ignores If-Match answers with another version's ETag: that is
    VersionChanged, as a 412 would have been. A store that ignores Range answers
    from byte 0, or without a range: reading on would splice bytes in the wrong place.
    """
    if strip_etag(response.get("ETag")) != strip_etag(etag_header):
        raise VersionChanged(f"asked for ETag {etag_header}, the answer has {response.get('ETag')}")
    answered = parse_content_range(response.get("ContentRange"))
    if answered is None and start == 0 and total and response.get("ContentLength") == total:
        answered = ContentRange(0, total - 1, total)  # a whole first GET, serving the first range
    elif answered is None and start > 0 and total is not None and response.get("ContentLength") == total:
        raise RangeIgnored(f"asked for bytes from {start}, the server answered with all {total}")
    if answered is None or answered.first != start or (total is not None and answered.total != total):
        raise DownloadException(
            f"download {s3_url(bucket, key)} failed: asked for bytes from {start}, the server answered "
            f"{response.get('ContentRange') or 'without a range'}", bucket=bucket, key=key, operation="download")
    return answered


# -- what to check the bytes against -------------------------------------------------


def learn_layout(ctx: CallContext, bucket: str, key: str, response: Mapping[str, Any], total: int, *,
                 asked_checksum: bool, retried: bool = True) -> Layout:
    """What the object's bytes can be checked against, asking the store if need be.

    The stored full-object CRC, when the first answer (``asked_checksum``: it was
    asked for) carries one. A first answer that did not ask (a ranged GET) is followed
    by a HEAD with checksum mode where the store may keep checksums and the ETag
    alone would cost an MD5 of a large object, or check nothing. Otherwise the ETag: a
    multipart ETag needs the part size: one HEAD with PartNumber=1. Each HEAD is
    retried like any request (``retried=False``: sent once, inside a loop that
    retries), raising when its retries run out. Settling for sizes alone is logged
    once per Connection, at INFO.
    """
    etag = strip_etag(response.get("ETag"))
    by_etag = layout_from_etag(etag, response, ctx.verify_etag)
    if asked_checksum:
        ctx.checks.learn_download(carries_checksum(response))
        stored = stored_checksum(response)
    elif ctx.checks.algorithm is not None and ctx.checks.returns is not False and (
            by_etag.kind == "size" or total > ctx.chunk):
        head = _ask(ctx, retried, f"download {s3_url(bucket, key)}: its stored checksum", Bucket=bucket,
                    Key=key, ChecksumMode="ENABLED", **({"IfMatch": response["ETag"]} if response.get("ETag") else {}))
        ctx.checks.learn_download(carries_checksum(head))  # a store that keeps none is not asked again
        stored = stored_checksum(head)
    else:
        stored = None
    if stored is not None:
        return Layout("crc", etag, checksum=stored)
    layout = by_etag
    if layout.kind == "parts":
        layout = layout.with_part_size(*_first_part_size(ctx, bucket, key, layout, retried))
        if not layout.fits(total):
            layout = Layout("size", layout.etag, reason="the part size the store gave does not fit the object",
                            topic="part-size-misfit")
    if layout.kind == "size" and ctx.verify_etag:
        ctx.connection._say_once(f"download:{layout.topic}", f"download {s3_url(bucket, key)}: only its size "
                                 f"can be checked: {layout.reason}")
    return layout


def _ask(ctx: CallContext, retried: bool, what: str, **params: Any) -> Any:
    """A HEAD learning the layout: retried like any request, or sent once inside a loop that retries."""
    if retried:
        return ctx.request("head_object", what=what, **params)
    return ctx.send("head_object", **params)


def _first_part_size(ctx: CallContext, bucket: str, key: str, layout: Layout,
                     retried: bool) -> tuple[Optional[int], str, str]:
    """The size of part 1 (HEAD with PartNumber=1), or None and why it is not known.

    Not pinned with If-Match: moto compares it with the part's ETag, not the object's.
    An object replaced meanwhile is caught by the ranges, which are pinned.
    """
    try:
        head = _ask(ctx, retried, f"download {s3_url(bucket, key)}: size of part 1", Bucket=bucket, Key=key,
                    PartNumber=1)
    except Exception as exc:
        if is_transient(exc) or changed(exc) or http_status(exc) in (403, 404):
            raise  # not a store that cannot tell: the request itself failed
        return None, f"the store refuses HEAD with PartNumber ({exc})", "part-size-refused"
    if head.get("PartsCount") != layout.parts:
        return None, "the store ignores HEAD with PartNumber, so its part sizes are unknown", "part-size-ignored"
    return head.get("ContentLength"), "", ""


@dataclass(frozen=True)
class RangePlan:
    """The ranges to fetch an object in, and what checks them."""

    ranges: list[ByteRange]
    digest: Optional[Callable[[], Any]]  # each range hashes its own bytes with a new one of these
    verifier: Callable[[Sink], Any]
    check: str  # what protects the bytes, for the caller to tell (Layout.check)


def plan_ranges(ctx: CallContext, bucket: str, key: str, first: Mapping[str, Any], total: int,
                chunk: int, *, asked_checksum: bool) -> RangePlan:
    """Ranges of ``chunk`` bytes (aligned to the parts where part MD5s are the check), and
    the verifier that fits what the object can be checked against."""
    layout = learn_layout(ctx, bucket, key, first, total, asked_checksum=asked_checksum)
    if layout.checksum is not None:
        stored = layout.checksum
        return RangePlan(split(total, chunk), functools.partial(Crc, stored.algorithm),
                         lambda sink: _CombinedCrc(stored), layout.check)
    if layout.kind == "parts":
        assert layout.part_size is not None
        return RangePlan(split(total, layout.part_size), hashlib.md5, lambda sink: _PartDigests(layout),
                         layout.check)
    check_layout = layout

    def in_order(sink: Sink) -> Any:
        return _InOrderDigest(ctx, sink, BodyCheck(total, check_layout))

    return RangePlan(split(total, chunk), None, in_order, layout.check)


class _CombinedCrc:
    """Each range's CRC, combined by offset into the whole object's and compared at the end."""

    def __init__(self, stored: StoredChecksum) -> None:
        self._stored = stored
        self._ranges: dict[int, tuple[int, int]] = {}  # start -> (crc, size)

    def add(self, done: FetchedRange) -> None:
        self._ranges[done.span.start] = (done.digest.value, done.span.size)

    def verify(self) -> None:
        pieces = (self._ranges[start] for start in sorted(self._ranges))
        verify_checksum(self._stored, combine_all(self._stored.algorithm, pieces))


class _PartDigests:
    """Collects each part's MD5; the multipart ETag is recomputed from them at the end."""

    def __init__(self, layout: Layout) -> None:
        self._layout = layout
        self._digests: dict[int, bytes] = {}

    def add(self, done: FetchedRange) -> None:
        assert done.digest is not None
        self._digests[done.span.start] = done.digest.digest()

    def verify(self) -> None:
        combined = multipart_etag(self._digests[start] for start in sorted(self._digests))
        if combined != self._layout.etag:
            raise ChecksumMismatch(f"the parts received make the ETag {combined}, not {self._layout.etag}")


class _InOrderDigest:
    """The whole object's check, hashed from the sink as ranges complete in order.

    Ranges finish in any order; each time the next one in line is there, it is read
    back (from the page cache, for a file) and fed to the BodyCheck.
    """

    def __init__(self, ctx: CallContext, sink: Sink, check: BodyCheck) -> None:
        self._ctx = ctx
        self._sink = sink
        self._check = check
        self._next = 0
        self._waiting: dict[int, int] = {}

    def add(self, done: FetchedRange) -> None:
        self._waiting[done.span.start] = done.span.end
        while self._next in self._waiting:
            end = self._waiting.pop(self._next)
            position = self._next
            if not self._check.needs_bytes:
                self._check.count(end - position)
                position = end
            while position < end:
                size = min(self._ctx.chunk, end - position)
                _hash(self._ctx, self._check, self._sink.read_at(position, size))
                position += size
            self._next = end

    def verify(self) -> None:
        self._check.verify()
