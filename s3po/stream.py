"""``Connection.open``: a read-only stream of one object version.

A small object streams from its first GET and resumes where it broke. A large one
(larger than the first range asked for) is fetched ahead as concurrent ranges, a
bounded window of them, and handed out in order. Both use the download engine's
pieces (ranged.py) and the one retry loop; both check the content at the end.
"""

from __future__ import annotations

import bisect
import functools
import io
import logging
from typing import Any, Callable, Iterator, Mapping, Optional

from .compression import CHUNK, CorruptBody, Decoder, codec_of
from .context import CallContext
from .errors import ChecksumMismatch, DownloadException, S3POException, s3_url, translate
from .integrity import BodyCheck
from .parts import ByteRange
from .ranged import (
    FetchedRange,
    changed,
    check_pinned,
    fetch_range,
    first_answer,
    get_first,
    learn_layout,
    pinned_get,
    plan_ranges,
)
from .records import Key, from_head
from .retry import Budget

__all__ = ["ObjectStream", "open_stream"]

logger = logging.getLogger(__name__)


class ObjectStream(io.BufferedReader):
    """A buffered binary stream of an S3 object; ``info`` is the object's Key record."""

    info: Key


def open_stream(ctx: CallContext, bucket: str, key: str, decompress: bool, chunk: int) -> ObjectStream:
    """Send the first GET (retried like any request) and wrap its body in a stream."""
    # A stream starts with a range, whatever the store: a large object is read ahead in
    # ranges (its stored checksum then comes with a HEAD, see learn_layout).
    response = ctx.retrying(lambda: get_first(ctx, bucket, key, ByteRange(0, chunk), whole=False),
                            what=f"open {s3_url(bucket, key)}")
    info = dict(response)
    try:
        answer = first_answer(response, False, chunk, ctx.checks.ignores_range)
        if answer.whole or answer.total is None:
            size = response.get("ContentLength") or 0
            layout = learn_layout(ctx, bucket, key, response, size, asked_checksum=False)
            raw: io.RawIOBase = _ResumingReader(ctx, bucket, key, response, BodyCheck(response.get("ContentLength"),
                                                                                      layout))
        else:
            info["ContentLength"] = answer.total
            raw = _PrefetchingReader(ctx.detached(), bucket, key, response, answer.total, chunk)
    except BaseException:
        response["Body"].close()
        raise
    codec = codec_of(response.get("ContentEncoding")) if decompress else None
    if codec:
        raw = _DecodingReader(raw, codec, bucket, key)
    stream = ObjectStream(raw, buffer_size=CHUNK)
    stream.info = from_head(bucket, key, info)
    return stream


def _read_error(exc: BaseException, bucket: str, key: str) -> S3POException:
    if isinstance(exc, S3POException):
        return exc
    if changed(exc):
        return DownloadException(
            f"read {s3_url(bucket, key)} failed: the object changed while it was being read",
            bucket=bucket, key=key, code="PreconditionFailed", operation="read")
    return translate(exc, DownloadException, "read", bucket, key)


class _ResumingReader(io.RawIOBase):
    """The raw bytes of one object version, from one GET that resumes where it broke.

    A resume asks with ``Range`` from the current offset and ``If-Match`` on the ETag
    (and compares the answer's ETag), so a resume can never splice two versions
    together. Each resume spends one of the call's retries. Size and content are
    verified when the body ends.
    """

    def __init__(self, ctx: CallContext, bucket: str, key: str, response: Any, check: BodyCheck) -> None:
        super().__init__()
        self._ctx = ctx
        self._bucket = bucket
        self._key = key
        self._body: Optional[Any] = response["Body"]
        self._etag_header = response.get("ETag")
        self._check = check
        self._offset = 0
        self._budget = Budget()
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._ended or len(buffer) == 0:
            return 0
        want = min(len(buffer), CHUNK)

        def attempt() -> bytes:
            if self._body is None:
                self._resume()
            assert self._body is not None
            try:
                return self._body.read(want)  # type: ignore[no-any-return]
            except BaseException:
                self._close_body()
                raise

        try:
            chunk = self._ctx.retrying(attempt, what=f"read {s3_url(self._bucket, self._key)} at byte {self._offset}",
                                       budget=self._budget)
        except Exception as exc:
            raise _read_error(exc, self._bucket, self._key) from exc
        if not chunk:
            self._end()
            return 0
        self._check.update(chunk)
        self._offset += len(chunk)
        if self._offset == self._check.expected_size:
            # The last byte is here: checked before it is handed out, so that a reader
            # who stops at the size, without asking for the end, still gets the check.
            self._end()
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def _resume(self) -> None:
        response = pinned_get(self._ctx, self._bucket, self._key, self._etag_header, start=self._offset)
        try:
            check_pinned(response, self._bucket, self._key, self._etag_header, self._offset)
        except BaseException:
            response["Body"].close()
            raise
        self._body = response["Body"]

    def _end(self) -> None:
        self._ended = True
        self._close_body()
        try:
            self._check.verify()
        except ChecksumMismatch as exc:
            raise translate(exc, DownloadException, "read", self._bucket, self._key) from exc

    def _close_body(self) -> None:
        body, self._body = self._body, None
        if body is None:
            return
        try:
            body.close()
        except Exception:  # closing a broken connection may itself fail; it is gone either way
            pass

    def close(self) -> None:
        if not self.closed:
            self._close_body()
        super().close()


class _DecodingReader(io.RawIOBase):
    """Decompresses another raw stream on the fly, in bounded chunks."""

    def __init__(self, raw: io.RawIOBase, codec: str, bucket: str, key: str) -> None:
        super().__init__()
        self._raw = raw
        self._decoder = Decoder(codec)
        self._bucket = bucket
        self._key = key
        self._outputs: Iterator[bytes] = iter(())
        self._pending = b""
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            while not self._pending:
                self._pending = next(self._outputs, b"")
                if self._pending:
                    break
                if self._ended:
                    return 0
                chunk = self._raw.read(CHUNK)
                if chunk:
                    self._outputs = self._decoder.feed(chunk)
                else:
                    self._ended = True
                    self._decoder.finish()
        except CorruptBody as exc:
            raise translate(exc, DownloadException, "read", self._bucket, self._key) from exc
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _Slot:
    """One range of the read-ahead window: its bytes once fetched, or the failure."""

    def __init__(self, span: ByteRange, ready: Any) -> None:
        self.span = span
        self.buffer: Optional[bytearray] = None
        self.ready = ready  # an Event of the program's concurrency mode


class _PrefetchingReader(io.RawIOBase):
    """A large object's bytes, fetched ahead as concurrent ranges, handed out in order.

    At most ``workers`` + 1 ranges are held at once (fetched or being fetched), so
    memory stays bounded whatever the object's size and however slowly it is read.
    A range waiting for room in the window holds no connection slot, so idle streams
    never starve other calls. Each range is pinned to the first response's ETag and
    retried on its own; the content is verified as in a ranged download, and a
    mismatch raises when the stream reaches its end. A stream cannot take back bytes
    it handed out, so an object that changes meanwhile raises rather than restarting.
    """

    def __init__(self, ctx: CallContext, bucket: str, key: str, first: Mapping[str, Any],
                 total: int, chunk: int) -> None:
        super().__init__()
        self._ctx = ctx
        self._bucket = bucket
        self._key = key
        runtime = ctx.runtime
        plan = plan_ranges(ctx, bucket, key, first, total, chunk, asked_checksum=False)
        self._slots = [_Slot(span, runtime.event()) for span in plan.ranges]
        self._starts = [slot.span.start for slot in self._slots]
        # Unbounded: close() releases it once per range to wake a fetcher waiting for room.
        self._window = runtime.semaphore(ctx.workers + 1, bounded=False)
        self._verifier = plan.verifier(self)
        self._index = 0
        self._position = 0  # within the current slot
        self._stopped = False
        self._finished = runtime.event()
        self._failure: Optional[BaseException] = None
        get = functools.partial(fetch_range, ctx, bucket, key, first.get("ETag"), total, self, plan.digest)
        self._runner = runtime.spawn(lambda: self._fetch_all(get, first), "s3po-read-ahead")

    # -- fetching, in the background ---------------------------------------------------

    def _fetch_all(self, get: Callable[..., FetchedRange], first: Mapping[str, Any]) -> None:
        preopened: Optional[Mapping[str, Any]] = first

        def tasks() -> Iterator[Callable[[], FetchedRange]]:
            nonlocal preopened
            for slot in self._slots:
                self._window.acquire()  # released as the reader finishes a range
                if self._stopped:
                    return
                slot.buffer = bytearray(slot.span.size)
                opened, preopened = preopened, None
                yield functools.partial(self._fetch_range, get, slot.span, opened)

        def on_done(done: FetchedRange) -> None:
            self._verifier.add(done)  # before the reader may see, and free, the range
            self._slot_at(done.span.start).ready.set()

        try:
            self._ctx.parallel(tasks(), on_done, len(self._slots))
            self._verifier.verify()
        except BaseException as exc:  # handed to the reader, which raises it in its own thread
            self._fail(exc)
        finally:
            if preopened is not None:
                preopened["Body"].close()
            for slot in self._slots:
                slot.ready.set()  # nobody waits for a range that will never come
            self._finished.set()

    def _fetch_range(self, get: Callable[..., FetchedRange], span: ByteRange,
                     opened: Optional[Mapping[str, Any]]) -> FetchedRange:
        try:
            return get(span, opened, Budget())
        except BaseException as exc:
            self._fail(exc)  # at once: the reader may be waiting for this very range
            raise

    def _fail(self, exc: BaseException) -> None:
        """Stop the read-ahead and tell the reader now, not once every worker has ended.

        A worker may be waiting for room in the window, which only the reader makes;
        the reader may be waiting for the range that failed.
        """
        if self._failure is None:
            self._failure = exc
        self._stopped = True
        for slot in self._slots:
            slot.ready.set()
        for _ in self._slots:
            self._window.release()

    # -- the sink fetch_range writes into, and the verifier reads back -----------------

    def allocate(self, size: int) -> None:
        pass  # each range gets its buffer as it is asked for

    def _slot_at(self, offset: int) -> _Slot:
        return self._slots[bisect.bisect_right(self._starts, offset) - 1]

    writes_out = False  # ranges land in place, in their slots

    def landing(self, offset: int, size: int) -> memoryview:
        slot = self._slot_at(offset)
        start = offset - slot.span.start
        assert slot.buffer is not None and start + size <= len(slot.buffer)
        return memoryview(slot.buffer)[start:start + size]  # in place: ranges never cross slots

    def commit(self, offset: int, landing: memoryview, filled: int) -> None:
        landing.release()

    def read_at(self, offset: int, size: int) -> memoryview:
        slot = self._slot_at(offset)
        assert slot.buffer is not None
        start = offset - slot.span.start
        return memoryview(slot.buffer)[start:start + size]

    # -- reading, in the caller's thread ------------------------------------------------

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._index >= len(self._slots):
            return self._end()
        slot = self._slots[self._index]
        slot.ready.wait()
        if self._index == len(self._slots) - 1:
            # The last range is handed out only once the whole object verified.
            self._finished.wait()
        if slot.buffer is None or self._failure is not None:
            # Once anything failed, nothing more is handed out: the end could not be
            # verified, and the reader learns it at once.
            return self._raise()
        view = memoryview(slot.buffer)[self._position:self._position + len(buffer)]
        size = len(view)
        buffer[:size] = view
        view.release()
        self._position += size
        if self._position >= slot.span.size:
            slot.buffer = None
            self._index += 1
            self._position = 0
            self._window.release()
        return size

    def _end(self) -> int:
        self._finished.wait()
        if self._failure is not None:
            return self._raise()
        return 0

    def _raise(self) -> int:
        if isinstance(self._failure, (KeyboardInterrupt, SystemExit)):
            raise self._failure  # it landed in the read-ahead; it is the program's
        failure = self._failure or DownloadException(
            f"read {s3_url(self._bucket, self._key)} failed: the read-ahead stopped",
            bucket=self._bucket, key=self._key, operation="read")
        if isinstance(failure, S3POException):
            raise failure
        raise _read_error(failure, self._bucket, self._key) from failure

    def close(self) -> None:
        if not self.closed:
            self._ctx.cancellation.cancel()
            self._fail(DownloadException(
                f"read {s3_url(self._bucket, self._key)} failed: the stream was closed",
                bucket=self._bucket, key=self._key, operation="read"))
            self._ctx.runtime.stop([self._runner])
        super().close()
