"""``Connection.open``: a read-only stream of one object.

A small object streams from one GET that resumes where it broke. A large one (larger
than the first range asked for) is fetched ahead as concurrent ranges, a bounded
window of them, and handed out in order.
"""

from __future__ import annotations

import bisect
import functools
import io
import logging
import threading
from typing import Any, Callable, Iterator, Mapping, Optional

from .compression import CHUNK, CorruptBody, Decoder, codec_of
from .errors import ChecksumMismatch, DownloadException, describe, s3_url, translate
from .integrity import BodyCheck
from .parts import ByteRange, TransferSettings, parse_content_range
from .ranged import FetchedRange, fetch_range, get_first, plan_ranges, whole_object
from .records import Key, from_head, strip_etag
from .retry import RetryPolicy, is_transient

__all__ = ["ObjectStream", "open_stream"]

logger = logging.getLogger(__name__)


class ObjectStream(io.BufferedReader):
    """A buffered binary stream of an S3 object; ``info`` is the object's Key record."""

    info: Key


def open_stream(settings: TransferSettings, bucket: str, key: str, decompress: bool, chunk: int) -> ObjectStream:
    """Send the first GET (retried like any call) and wrap its body in a stream."""
    client, policy = settings.client, settings.policy
    what = f"open {s3_url(bucket, key)}"
    try:
        response = policy.call(lambda: get_first(client, bucket, key, ByteRange(0, chunk)), what=what)
    except Exception as exc:
        raise translate(exc, DownloadException, "open", bucket, key) from exc
    info = dict(response)
    answered = parse_content_range(response.get("ContentRange"))
    if whole_object(response) or answered is None or answered.total is None:
        raw: io.RawIOBase = _ResumingReader(client, bucket, key, policy, response)
    else:
        info["ContentLength"] = answered.total
        raw = _PrefetchingReader(settings, bucket, key, response, answered.total, chunk)
    codec = codec_of(response.get("ContentEncoding")) if decompress else None
    if codec:
        raw = _DecodingReader(raw, codec, bucket, key)
    stream = ObjectStream(raw, buffer_size=CHUNK)
    stream.info = from_head(bucket, key, info)
    return stream


class _ResumingReader(io.RawIOBase):
    """The raw bytes of one object version.

    When the connection breaks mid-body, it asks again with ``Range`` from the current
    offset and ``If-Match`` on the ETag, so a resume can never splice two versions
    together. Each resume spends one of the call's retries. Size and MD5 are verified
    when the body ends.
    """

    def __init__(self, client: Any, bucket: str, key: str, policy: RetryPolicy, response: Any) -> None:
        super().__init__()
        self._client = client
        self._bucket = bucket
        self._key = key
        self._policy = policy
        self._body = response["Body"]
        self._etag_header = response.get("ETag")
        self._size = response.get("ContentLength")
        self._check = BodyCheck(strip_etag(self._etag_header), self._size, response)
        self._offset = 0
        self._retries_used = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._ended or len(buffer) == 0:
            return 0
        while True:
            try:
                chunk = self._body.read(min(len(buffer), CHUNK))
                break
            except Exception as exc:
                if not is_transient(exc):
                    raise translate(exc, DownloadException, "read", self._bucket, self._key) from exc
                self._resume(exc)
        if not chunk:
            self._end()
            return 0
        self._check.update(chunk)
        self._offset += len(chunk)
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def _resume(self, cause: BaseException) -> None:
        while True:
            if self._retries_used >= self._policy.retries:
                raise translate(cause, DownloadException, "read", self._bucket, self._key) from cause
            self._retries_used += 1
            wait = self._policy.delay(self._retries_used)
            logger.warning(
                "read %s: stream broke at byte %d (%s); resuming, attempt %d of %d, in %.2f s",
                s3_url(self._bucket, self._key),
                self._offset,
                describe(cause),
                self._retries_used + 1,
                self._policy.attempts,
                wait,
            )
            self._policy.sleep(wait)
            self._close_body()
            try:
                response = self._client.get_object(
                    Bucket=self._bucket,
                    Key=self._key,
                    Range=f"bytes={self._offset}-",
                    IfMatch=self._etag_header,
                )
            except Exception as exc:
                if not is_transient(exc):
                    raise translate(exc, DownloadException, "read", self._bucket, self._key) from exc
                cause = exc
                continue
            content_range = response.get("ContentRange") or ""
            if not content_range.startswith(f"bytes {self._offset}-"):
                # A server that ignored Range sent the object from its start: reading on
                # would splice the beginning in after the bytes already handed out.
                response["Body"].close()
                raise DownloadException(
                    f"read {s3_url(self._bucket, self._key)} failed: asked to resume at byte "
                    f"{self._offset} but the server answered {content_range or 'without a range'}",
                    bucket=self._bucket, key=self._key, operation="read",
                ) from cause
            self._body = response["Body"]
            return

    def _end(self) -> None:
        self._ended = True
        self._close_body()
        try:
            self._check.verify()
        except ChecksumMismatch as exc:
            raise translate(exc, DownloadException, "read", self._bucket, self._key) from exc

    def _close_body(self) -> None:
        try:
            self._body.close()
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
        self.error: Optional[BaseException] = None


class _PrefetchingReader(io.RawIOBase):
    """A large object's bytes, fetched ahead as concurrent ranges, handed out in order.

    At most ``workers`` + 1 ranges are held at once (fetched or being fetched), so
    memory stays bounded whatever the object's size and however slowly it is read.
    Each range is pinned to the first response's ETag and retried on its own; the
    content is verified against the ETag as in a ranged download, and a mismatch
    raises when the stream reaches its end. A stream cannot take back bytes it handed
    out, so an object that changes meanwhile raises rather than starting again.
    """

    def __init__(self, settings: TransferSettings, bucket: str, key: str, first: Mapping[str, Any],
                 total: int, chunk: int) -> None:
        super().__init__()
        from .concurrency import sockets_are_patched

        self._bucket = bucket
        self._key = key
        self._patched = sockets_are_patched()
        plan = plan_ranges(settings, bucket, key, first, total, chunk)
        self._slots = [_Slot(span, self._event()) for span in plan.ranges]
        self._starts = [slot.span.start for slot in self._slots]
        self._window = self._semaphore(settings.workers + 1)
        self._verifier = plan.verifier(self)
        self._index = 0
        self._position = 0  # within the current slot
        self._stopped = False
        self._finished = self._event()
        self._failure: Optional[BaseException] = None
        get = functools.partial(fetch_range, settings, bucket, key, first.get("ETag"), total, self,
                                plan.hashing)
        used = {slot.span.start: 0 for slot in self._slots}
        self._runner = self._start(lambda: self._fetch_all(settings, get, first, used, strip_etag(first.get("ETag"))))

    # -- the concurrency mode's primitives ------------------------------------------

    def _event(self) -> Any:
        if self._patched:
            import gevent.event

            return gevent.event.Event()
        return threading.Event()

    def _semaphore(self, size: int) -> Any:
        if self._patched:
            import gevent.lock

            return gevent.lock.Semaphore(size)
        return threading.Semaphore(size)

    def _start(self, work: Callable[[], None]) -> Any:
        if self._patched:
            import gevent

            return gevent.spawn(work)
        thread = threading.Thread(target=work, name="s3po-read-ahead", daemon=True)
        thread.start()
        return thread

    # -- fetching, in the background ---------------------------------------------------

    def _fetch_all(self, settings: TransferSettings, get: Callable[..., FetchedRange],
                   first: Mapping[str, Any], used: dict[int, int], etag: Optional[str]) -> None:
        from .concurrency import run_parallel

        preopened: Optional[Mapping[str, Any]] = first

        def tasks() -> Iterator[Callable[[], FetchedRange]]:
            nonlocal preopened
            for slot in self._slots:
                self._window.acquire()  # released as the reader finishes a range
                if self._stopped:
                    return
                slot.buffer = bytearray(slot.span.size)
                opened, preopened = preopened, None
                yield functools.partial(get, slot.span, opened, used)

        def on_done(done: FetchedRange) -> None:
            self._verifier.add(done)  # before the reader may see, and free, the range
            self._slot_at(done.span.start).ready.set()

        try:
            run_parallel(tasks(), settings.workers, settings.limiters(), on_done, len(self._slots))
            self._verifier.verify(etag)
        except BaseException as exc:  # handed to the reader, which raises it in its own thread
            self._failure = exc
        finally:
            if preopened is not None:
                preopened["Body"].close()
            for slot in self._slots:
                slot.ready.set()  # nobody waits for a range that will never come
            self._finished.set()

    # -- the sink fetch_range writes into, and the verifier reads back -----------------

    def allocate(self, size: int) -> None:
        pass  # each range gets its buffer as it is asked for

    def _slot_at(self, offset: int) -> _Slot:
        return self._slots[bisect.bisect_right(self._starts, offset) - 1]

    def write_at(self, offset: int, data: bytes) -> None:
        slot = self._slot_at(offset)
        start = offset - slot.span.start
        assert slot.buffer is not None
        slot.buffer[start:start + len(data)] = data

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
        failure = self._failure or DownloadException(
            f"read {s3_url(self._bucket, self._key)} failed: the read-ahead stopped",
            bucket=self._bucket, key=self._key, operation="read")
        if isinstance(failure, DownloadException):
            raise failure
        raise translate(failure, DownloadException, "read", self._bucket, self._key) from failure

    def close(self) -> None:
        if not self.closed:
            self._stopped = True
            for _ in self._slots:
                self._window.release()  # wakes the fetcher if it waits for room
            if self._patched:
                self._runner.kill(block=True)
            else:
                self._runner.join()
        super().close()
