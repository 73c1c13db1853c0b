"""Batch: many Connection calls at once in a gevent pool, with handles and collected errors."""

from __future__ import annotations

import functools
import inspect
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

import gevent
from gevent.pool import Pool

from .concurrency import Call, Cancelled, Executor
from .errors import BatchError, S3POException, s3_url
from .progress import BatchProgress, TransferTotals, check_progress

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["Batch", "CallError", "OPERATIONS", "TRANSFERS"]

logger = logging.getLogger(__name__)

# The Connection methods a batch offers, each returning a Greenlet instead of a result.
OPERATIONS = (
    "copy",
    "delete",
    "delete_many",
    "delete_prefix",
    "download",
    "download_file",
    "exists",
    "head",
    "upload",
    "upload_file",
)
# The operations that move bytes: they take progress= and count in Batch.progress.
TRANSFERS = frozenset({"download", "download_file", "upload", "upload_file"})


@dataclass(frozen=True)
class CallError:
    """A failed call of a batch: what was asked, and what went wrong."""

    operation: str
    bucket: Optional[str]
    key: Optional[str]
    exception: BaseException

    def __str__(self) -> str:
        if isinstance(self.exception, S3POException):
            return str(self.exception)  # already names the operation and s3://bucket/key
        return f"{self.operation} {s3_url(self.bucket, self.key)}: {type(self.exception).__name__}: {self.exception}"


class Batch:
    """Runs Connection calls concurrently, at most ``poolsize`` at once.

    Every operation method (upload, download, ... see OPERATIONS) takes the same
    arguments as on Connection plus ``callback=``, and returns a started Greenlet as
    soon as a slot is free: the call blocks while ``poolsize`` calls are in flight.
    Used as a context manager, the batch waits for all its calls on exit, logs each
    failure at ERROR, and raises BatchError if ``raise_errors``. If the block raises,
    calls not yet started are cancelled and the block's exception propagates.
    """

    def __init__(self, connection: "Connection", poolsize: int = 20, *, raise_errors: bool = False,
                 keep_results: bool = True) -> None:
        if isinstance(poolsize, bool) or not isinstance(poolsize, int) or poolsize < 1:
            raise ValueError(f"poolsize must be an integer >= 1, not {poolsize!r}")
        self._connection = connection
        self._pool = Pool(poolsize)
        self._executor = Executor(poolsize, connection._limiters())
        self._raise_errors = raise_errors
        self._keep_results = keep_results
        self._calls: list[Call] = []
        self._errors: list[CallError] = []
        self._submitted = 0
        self._finished = 0
        self._reported = 0
        self._closed = False
        self._progress = BatchProgress()

    def __repr__(self) -> str:
        return (f"<s3po.Batch poolsize={self._pool.size} submitted={self._submitted} "
                f"finished={self._finished} failed={len(self._errors)}>")

    @property
    def size(self) -> int:
        return self._pool.size

    def submit(self, operation: str, args: tuple, kwargs: dict,
               callback: Optional[Callable[[Any], Any]] = None) -> Call:
        """Schedule ``connection.<operation>(*args, **kwargs)``; returns its started handle."""
        if operation not in OPERATIONS:
            raise ValueError(f"a batch cannot run {operation!r}; it runs {', '.join(OPERATIONS)}")
        if self._closed:
            raise RuntimeError("this batch has ended; start a new one with conn.batch()")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        method = getattr(self._connection, operation)
        # Wrong arguments are a bug at the call site: say so now, not at the end.
        bound = _signature(operation).bind(None, *args, **kwargs)
        bucket = bound.arguments.get("bucket", bound.arguments.get("dst_bucket"))
        key = bound.arguments.get("key", bound.arguments.get("dst_key", bound.arguments.get("prefix")))
        if operation in TRANSFERS:
            kwargs = dict(kwargs, progress=self._progress.start_call(check_progress(kwargs.get("progress"))))
        self._pool.wait_available()
        call = self._executor.start(lambda: method(*args, **kwargs), callback, (operation, bucket, key))
        call.rawlink(self._on_done)
        self._submitted += 1
        if self._keep_results:
            self._calls.append(call)
        self._pool.start(call)
        return call

    def _on_done(self, call: Call) -> None:
        self._finished += 1
        if call.description[0] in TRANSFERS:
            self._progress.end_call()
        error = call.exception
        if error is not None and not isinstance(error, Cancelled):
            operation, bucket, key = call.description
            self._errors.append(CallError(operation, bucket, key, error))

    # -- waiting and results ------------------------------------------------------------

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for every call so far; True when all are done (False on timeout)."""
        done = self._pool.join(timeout=timeout)
        # Links run from the hub's loop; one more turn lets the last of them land.
        gevent.sleep(0)
        return bool(done) and self._finished >= self._submitted

    def results(self) -> list:
        """Each call's value in submission order; None for calls that failed."""
        if not self._keep_results:
            raise RuntimeError("this batch was made with keep_results=False and kept no results")
        return [call.value if call.successful() else None for call in self._calls]

    def success(self) -> bool:
        """True only if every call has finished and none failed."""
        return self._finished >= self._submitted and not self._errors

    def errors(self) -> list[CallError]:
        """A CallError (operation, bucket, key, exception) for each call that failed."""
        return list(self._errors)

    def take_errors(self) -> list[CallError]:
        """The failures so far, forgotten once taken (each is reported once)."""
        taken, self._errors = self._errors, []
        self._reported = 0
        return taken

    @property
    def counts(self) -> dict[str, int]:
        return {"submitted": self._submitted, "finished": self._finished, "failed": len(self._errors)}

    @property
    def progress(self) -> TransferTotals:
        """Bytes and objects of this batch's transfers: done, and the totals known so far.

        ``bytes_total`` grows as each transfer learns its size (a download after its
        first response); ``objects_done`` counts transfers finished, failed ones too.
        """
        return self._progress.totals()

    @property
    def pending(self) -> int:
        """Calls submitted and not yet finished."""
        return self._submitted - self._finished

    # -- ending ----------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop calls that have not started; calls already sending finish or are killed."""
        self._executor.cancelled = True
        if self._executor.patched:
            self._pool.kill(block=True)
        else:
            # Threads cannot be interrupted safely; the queued ones see the flag and
            # return at once, the running ones finish their request.
            self._pool.join()

    def close(self) -> None:
        """Wait for everything, log each failure once, release the threads."""
        if self._closed:
            return
        try:
            self.wait()
        finally:
            self._release()
        self.report_errors()

    def _release(self) -> None:
        self._closed = True
        self._executor.close()

    def report_errors(self) -> None:
        """Log each failure not logged yet at ERROR."""
        for error in self._errors[self._reported:]:
            logger.error("batch call failed: %s", error)
        self._reported = len(self._errors)

    def __enter__(self) -> "Batch":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            try:
                self.cancel()
            finally:
                self._release()
            return None  # the block's own exception propagates
        self.close()
        if self._raise_errors and self._errors:
            raise BatchError(self._errors)
        return None


@functools.lru_cache(maxsize=None)
def _signature(operation: str) -> inspect.Signature:
    """The signature of ``Connection.<operation>`` (with ``self``), computed once."""
    from .connection import Connection

    return inspect.signature(getattr(Connection, operation))


def _operation(name: str) -> Callable[..., Call]:
    def schedule(self: Batch, *args: Any, callback: Optional[Callable[[Any], Any]] = None,
                 **kwargs: Any) -> Call:
        return self.submit(name, args, kwargs, callback)

    schedule.__name__ = name
    schedule.__qualname__ = f"Batch.{name}"
    schedule.__doc__ = f"Schedule Connection.{name}(...) in this batch; returns a started Greenlet."
    return schedule


for _name in OPERATIONS:
    setattr(Batch, _name, _operation(_name))
del _name
