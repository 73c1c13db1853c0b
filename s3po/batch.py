"""Batch: many Connection calls at once, with handles, collected errors and progress.

The same machinery runs a Connection's background calls (``background=True``): a
batch that any thread or greenlet may add to and that ``Connection.wait`` waits for.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import traceback
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable, Mapping, Optional, TypeVar, Union, overload

from .calls import Call, Outcome
from .context import InCall, in_call
from .errors import BatchError, Cancelled, S3POException, s3_url
from .progress import BatchProgress, TransferTotals, check_progress
from .records import Key
from .runtime import Cancellation, current

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .connection import Connection
    from .options import (
        CopyOptions,
        DeleteOptions,
        DeletePrefixOptions,
        DownloadFileOptions,
        DownloadOptions,
        HeadOptions,
        UploadData,
        UploadFileOptions,
        UploadOptions,
    )

__all__ = ["Batch", "CallError", "OPERATIONS", "TRANSFERS"]

logger = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
# How long a cancelled batch lets its greenlets reach a safe point before killing them.
CANCEL_GRACE_S = 5.0
Callback = Optional[Callable[[T], Any]]

# The Connection methods a batch offers, each returning a started Call instead of a result.
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


@dataclass
class _Failure:
    error: CallError
    report: "_Report"


@dataclass
class _Report:
    """What reporting a failure needs, and nothing more.

    Kept for the report when the batch is collected: the exception itself (its
    traceback reaches the batch's frames) must not keep the batch alive till then.
    """

    message: str
    seen: list[bool]  # shared with the call's handle: the program looked at the failure
    logged: bool = False  # logged at ERROR when the batch ended


class Batch:
    """Runs Connection calls concurrently, at most ``poolsize`` at once.

    Every operation method (upload, download, ... see OPERATIONS) takes the same
    arguments as on Connection plus ``callback=`` (called with the result, as part of
    the call: a callback that raises makes the call fail), and returns a started Call
    handle at once; while ``poolsize`` calls are in flight it blocks first.

    Used as a context manager, the batch waits for all its calls on exit and logs
    each failure at ERROR on the ``s3po`` logger; ``raise_errors=True`` also raises a
    BatchError listing them. A failed call never makes the block raise otherwise:
    look at ``success()``, ``errors()`` or the handles. A failure the program never
    looked at is reported when the batch is garbage-collected (or the program ends),
    on stderr if the program configured no logging, as asyncio does for a task
    exception never retrieved.

    If the block raises (Ctrl-C included), calls not started are cancelled and calls
    in flight are stopped at their next safe point: multipart uploads are aborted and
    temporary files removed. The block's exception propagates.
    """

    def __init__(self, connection: "Connection", poolsize: int = 20, *, raise_errors: bool = False,
                 keep_results: bool = True, _background: bool = False) -> None:
        if isinstance(poolsize, bool) or not isinstance(poolsize, int) or poolsize < 1:
            raise ValueError(f"poolsize must be an integer >= 1, not {poolsize!r}")
        self._connection = connection
        self._runtime = current()
        self._size = poolsize
        self._room = self._runtime.semaphore(poolsize)
        self._lock = self._runtime.lock()
        self._idle = self._runtime.event()
        self._idle.set()
        self._cancellation = Cancellation(self._runtime)
        self._raise_errors = raise_errors
        self._keep_results = keep_results
        self._calls: list[Call[Any]] = []
        self._running: set[Call[Any]] = set()
        self._holding_room: set[Call[Any]] = set()
        self._failures: list[_Failure] = []
        self._reports: list[_Report] = []
        self._submitted = 0
        self._finished = 0
        self._cancelled = 0
        self._closed = False
        self._progress = BatchProgress()
        what = "background calls" if _background else "a batch"
        finalizer = weakref.finalize(self, _report_unseen, self._reports, what)
        # At exit, the Connection finishes its background calls first, then reports them.
        finalizer.atexit = not _background

    def __repr__(self) -> str:
        return (f"<s3po.Batch poolsize={self._size} submitted={self._submitted} "
                f"finished={self._finished} failed={len(self._failures)}>")

    @property
    def size(self) -> int:
        return self._size

    # -- the operations ----------------------------------------------------------------

    def upload(self, bucket: str, key: str, data: "UploadData", *, callback: Callback[Key] = None,
               **options: "Unpack[UploadOptions]") -> Call[Key]:
        """Connection.upload in this batch; returns its started handle."""
        return self.submit("upload", (bucket, key, data), options, callback)

    def upload_file(self, bucket: str, key: str, path: Any, *, callback: Callback[Key] = None,
                    **options: "Unpack[UploadFileOptions]") -> Call[Key]:
        """Connection.upload_file in this batch; returns its started handle."""
        return self.submit("upload_file", (bucket, key, path), options, callback)

    @overload
    def download(self, bucket: str, key: str, fobj: None = None, *, callback: Callback[bytes] = None,
                 **options: "Unpack[DownloadOptions]") -> Call[bytes]: ...

    @overload
    def download(self, bucket: str, key: str, fobj: BinaryIO, *, callback: Callback[None] = None,
                 **options: "Unpack[DownloadOptions]") -> Call[None]: ...

    def download(self, bucket: str, key: str, fobj: Optional[BinaryIO] = None, *, callback: Any = None,
                 **options: "Unpack[DownloadOptions]") -> Call[Any]:
        """Connection.download in this batch; returns its started handle."""
        return self.submit("download", (bucket, key, fobj), options, callback)

    def download_file(self, bucket: str, key: str, path: Any, *, callback: Callback[None] = None,
                      **options: "Unpack[DownloadFileOptions]") -> Call[None]:
        """Connection.download_file in this batch; returns its started handle."""
        return self.submit("download_file", (bucket, key, path), options, callback)

    def head(self, bucket: str, key: str, *, callback: Callback[Key] = None,
             **options: "Unpack[HeadOptions]") -> Call[Key]:
        """Connection.head in this batch; returns its started handle."""
        return self.submit("head", (bucket, key), options, callback)

    def exists(self, bucket: str, key: str, *, callback: Callback[bool] = None,
               **options: "Unpack[HeadOptions]") -> Call[bool]:
        """Connection.exists in this batch; returns its started handle."""
        return self.submit("exists", (bucket, key), options, callback)

    def delete(self, bucket: str, key: str, *, callback: Callback[None] = None,
               **options: "Unpack[DeleteOptions]") -> Call[None]:
        """Connection.delete in this batch; returns its started handle."""
        return self.submit("delete", (bucket, key), options, callback)

    def delete_many(self, bucket: str, keys: Iterable[str], *, callback: Callback[int] = None,
                    **options: "Unpack[DeleteOptions]") -> Call[int]:
        """Connection.delete_many in this batch; returns its started handle."""
        return self.submit("delete_many", (bucket, keys), options, callback)

    def delete_prefix(self, bucket: str, prefix: str, *, callback: Callback[int] = None,
                      **options: "Unpack[DeletePrefixOptions]") -> Call[int]:
        """Connection.delete_prefix in this batch; returns its started handle."""
        return self.submit("delete_prefix", (bucket, prefix), options, callback)

    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str, *,
             callback: Callback[Key] = None, **options: "Unpack[CopyOptions]") -> Call[Key]:
        """Connection.copy in this batch; returns its started handle."""
        return self.submit("copy", (src_bucket, src_key, dst_bucket, dst_key), options, callback)

    # -- scheduling ---------------------------------------------------------------------

    def submit(self, operation: str, args: tuple[Any, ...], kwargs: Mapping[str, Any],
               callback: Optional[Callable[[Any], Any]] = None) -> Call[Any]:
        """Schedule ``connection.<operation>(*args, **kwargs)``; returns its started handle."""
        if operation not in OPERATIONS:
            raise ValueError(f"a batch cannot run {operation!r}; it runs {', '.join(OPERATIONS)}")
        if self._closed:
            raise RuntimeError("this batch has ended; start a new one with conn.batch()")
        self._connection._check_open()
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        kwargs = dict(kwargs)
        for reserved in ("background", "callback"):
            if reserved in kwargs:
                raise TypeError(f"{operation}() in a batch takes no {reserved}= (it is already a batch call)")
        # Wrong arguments are a bug at the call site: say so now, not when the call runs.
        bucket, key = _check_arguments(type(self._connection), operation, args, kwargs)
        if operation in TRANSFERS:
            kwargs["progress"] = self._progress.start_call(check_progress(kwargs.get("progress")))
        method = getattr(self._connection, operation)
        self._wait_for_room()
        call: Call[Any] = Call((operation, bucket, key), self._settled)
        with self._lock:
            self._submitted += 1
            self._idle.clear()
            self._holding_room.add(call)
            if self._keep_results:
                self._calls.append(call)
        work = functools.partial(self._execute, call, operation, method, args, kwargs, callback)
        with self._lock:
            self._running.add(call)
        try:
            self._runtime.start_call(call, work, self._connection._workers)
        except BaseException as exc:  # the connection closed meanwhile: this call never runs
            call._settle(Outcome(error=Cancelled(f"{operation}: not started: {exc}", operation=operation)))
            raise
        return call

    def _wait_for_room(self) -> None:
        # From a callback on one of the Connection's threads, the room may be held by
        # calls queued behind it: the threads make room for one more while it waits.
        workers = self._connection._native_workers
        with workers.waiting() if workers is not None else contextlib.nullcontext():
            _plainly_interrupted(self._room.acquire)

    def _return_room(self, call: Call[Any]) -> None:
        """Give back the room ``call`` took in the batch; once, whoever asks first."""
        with self._lock:
            if call not in self._holding_room:
                return
            self._holding_room.discard(call)
        self._room.release()

    def _execute(self, call: Call[Any], operation: str, method: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any], callback: Optional[Callable[[Any], Any]]) -> Outcome:
        """Run one call, then its callback, in its greenlet or on a worker thread. Never raises.

        The call's room in the batch is given back before the callback runs, so that a
        callback may add calls to a full batch.
        """
        runtime = self._runtime
        try:
            try:
                result = self._holding_a_slot(method, args, kwargs)
            finally:
                self._return_room(call)
            if callback is not None:
                callback(result)
            return Outcome(value=result)
        except Cancelled as exc:
            return Outcome(error=_lightened(exc))
        except BaseException as exc:
            if not isinstance(exc, Exception):
                # A kill (GreenletExit): the batch stopped this call where it was. A Ctrl-C
                # or an exit that landed in this call belongs to the program.
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    runtime.hand_over(exc)
                exc = Cancelled(f"{operation}: cancelled", operation=operation)
            return Outcome(error=_lightened(exc))

    def _holding_a_slot(self, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``method(*args, **kwargs)`` within the Connection's cap on requests in flight.

        While it runs, the call's context says it holds a slot (its first part or range
        uses it) and which cancellation stops it; its callback runs outside of both.
        """
        runtime, slots = self._runtime, self._connection._slots
        token = in_call.set(InCall(self._cancellation))
        try:
            slots.acquire(runtime, self._cancellation)
            try:
                self._cancellation.check()  # calls queued when the batch was cancelled never start
                return method(*args, **kwargs)
            finally:
                slots.release(runtime)
        finally:
            in_call.reset(token)

    def _settled(self, call: Call[Any], outcome: Outcome) -> None:
        """Count a finished call and keep its failure (from whichever thread ran it)."""
        operation, bucket, key = call.description
        with self._lock:
            self._finished += 1
            self._running.discard(call)
            if isinstance(outcome.error, Cancelled):
                self._cancelled += 1
            elif outcome.error is not None:
                error = CallError(operation, bucket, key, outcome.error)
                report = _Report(str(error), call.seen)
                self._failures.append(_Failure(error, report))
                self._reports.append(report)
            if self._finished >= self._submitted:
                self._idle.set()
        if operation in TRANSFERS:
            self._progress.end_call()
        self._return_room(call)

    # -- waiting and results ------------------------------------------------------------

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for every call so far; True when all are done (False on timeout)."""
        return bool(_plainly_interrupted(self._idle.wait, timeout))

    def results(self) -> list[Any]:
        """Each call's value in submission order; None for calls that failed."""
        if not self._keep_results:
            raise RuntimeError("this batch was made with keep_results=False and kept no results")
        return [call.value for call in self._calls]

    def success(self) -> bool:
        """True only if every call has finished, none failed and none was cancelled."""
        with self._lock:
            for failure in self._failures:
                failure.report.seen[0] = True
            return self._finished >= self._submitted and not self._failures and not self._cancelled

    def errors(self) -> list[CallError]:
        """A CallError (operation, bucket, key, exception) for each call that failed.

        Cancelled calls are not failures: ``counts["cancelled"]`` says how many there were.
        """
        with self._lock:
            for failure in self._failures:
                failure.report.seen[0] = True
            return [failure.error for failure in self._failures]

    def take_errors(self) -> list[CallError]:
        """The failures so far, forgotten once taken (each is reported once)."""
        with self._lock:
            taken, self._failures[:] = list(self._failures), []
            self._reports[:] = []
        for failure in taken:
            failure.report.seen[0] = True
        return [failure.error for failure in taken]

    @property
    def counts(self) -> dict[str, int]:
        return {"submitted": self._submitted, "finished": self._finished, "failed": len(self._failures),
                "cancelled": self._cancelled}

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
        """Stop every call: those not started never do, those in flight stop at their next
        safe point (a multipart upload is aborted, a download leaves no file).

        A request already on the wire is let finish, and its call reports what
        happened: an object stored by a PUT that went out is the call's success, never
        a cancelled call's leftover. Greenlets that have not reached a safe point after
        a few seconds (a request that hangs) are killed.
        """
        self._cancellation.cancel()
        if not _plainly_interrupted(self._idle.wait, CANCEL_GRACE_S):
            with self._lock:
                running = list(self._running)
            self._runtime.stop(running)  # greenlets are killed; threads, waited for
        _plainly_interrupted(self._idle.wait)

    def close(self) -> None:
        """Wait for everything, log each failure once at ERROR."""
        if self._closed:
            return
        self.wait()
        self._closed = True
        self.report_errors()

    def report_errors(self) -> None:
        """Log each failure not logged yet at ERROR."""
        _log_fresh(self._reports)

    def report_unseen(self, what: str) -> None:
        """Report the failures nobody looked at (see the class docstring)."""
        _report_unseen(self._reports, what)

    def __enter__(self) -> "Batch":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            try:
                self.close()
            except BaseException:  # interrupted while waiting (Ctrl-C): stop, then say so
                self._stop()
                raise
            if self._raise_errors and self._failures:
                raise BatchError(self.errors())
            return None
        self._stop()
        return None  # the block's own exception propagates

    def _stop(self) -> None:
        try:
            self.cancel()
        finally:
            self._closed = True


# A position among an operation's positional arguments, a keyword's name, or nowhere.
_Place = Union[int, str, None]
# For each way of calling an operation (its class, name, number of positional
# arguments and keyword names): where its bucket and key are among them.
_call_shapes: dict[tuple[Any, str, int, frozenset[str]], tuple[_Place, _Place]] = {}


def _check_arguments(connection_class: Any, operation: str, args: tuple[Any, ...],
                     kwargs: Mapping[str, Any]) -> tuple[Any, Any]:
    """TypeError for arguments ``Connection.<operation>`` would refuse; its bucket and key.

    The signature is bound once per way of calling it (a batch of a million uploads
    calls it one way), not once per call.
    """
    shape = (connection_class, operation, len(args), frozenset(kwargs))
    places = _call_shapes.get(shape)
    if places is None:
        signature = inspect.signature(getattr(connection_class, operation))
        signature.bind(None, *args, **kwargs)  # raises TypeError, as the call itself would
        names = list(signature.parameters)[1:]  # without self
        places = (_place(("bucket", "dst_bucket"), names, args, kwargs),
                  _place(("key", "dst_key", "prefix"), names, args, kwargs))
        _call_shapes[shape] = places
    return _at(places[0], args, kwargs), _at(places[1], args, kwargs)


def _place(candidates: tuple[str, ...], names: list[str], args: tuple[Any, ...],
           kwargs: Mapping[str, Any]) -> _Place:
    for name in candidates:
        if name in kwargs:
            return name
        if name in names and names.index(name) < len(args):
            return names.index(name)
    return None


def _at(place: _Place, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    if place is None:
        return None
    return args[place] if isinstance(place, int) else kwargs[place]


def _log_fresh(reports: list[_Report]) -> None:
    for report in list(reports):
        if not report.logged:
            report.logged = True
            logger.error("batch call failed: %s", report.message)


def _report_unseen(reports: list[_Report], what: str) -> None:
    """Tell the program of failures it never looked at, even when it configured no logging.

    Each is logged at ERROR if it was not yet (a batch never closed). Without a
    logging handler, s3po's NullHandler would swallow them: they go to the
    interpreter's last-resort handler (stderr), as logging itself would do for a
    library that had no NullHandler.
    """
    unseen = [report for report in reports if not report.seen[0]]
    if not unseen:
        return
    _log_fresh(unseen)
    if _has_handler(logger):
        for report in unseen:
            report.seen[0] = True
        return
    messages = [report.message for report in unseen]
    failures = unseen
    shown = "".join(f"\n  {message}" for message in messages[:20])
    more = f"\n  ... and {len(messages) - 20} more" if len(messages) > 20 else ""
    record = logger.makeRecord(
        logger.name, logging.ERROR, __file__, 0,
        f"{len(messages)} call(s) of {what} failed and the program never looked at them:{shown}{more}",
        (), None,
    )
    last_resort = logging.lastResort
    if last_resort is not None:
        last_resort.handle(record)
    for report in failures:
        report.seen[0] = True


def _plainly_interrupted(wait: Callable[..., R], *args: Any) -> R:
    """``wait(*args)``; a Ctrl-C that lands in it is raised again from here, so that the
    traceback the program shows does not end inside the hub that was waiting."""
    try:
        return wait(*args)
    except KeyboardInterrupt:
        raise KeyboardInterrupt from None


def _lightened(error: BaseException) -> BaseException:
    """``error``, its traceback's frames cleared of their variables (and its causes').

    A failed call's exception is kept for the program; the frames it ran through
    must not keep what they held (a whole download's buffer) alive with it.
    """
    seen: set[int] = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__
    return error


def _has_handler(start: logging.Logger) -> bool:
    """True when a record of ``start`` at ERROR would reach a handler other than a NullHandler."""
    node: Optional[logging.Logger] = start
    while node is not None:
        if any(not isinstance(handler, logging.NullHandler) and handler.level <= logging.ERROR
               for handler in node.handlers):
            return True
        if not node.propagate:
            return False
        node = node.parent
    return False
