"""What one task does with one shard: its keys through an action, a few at a time.

Engine-neutral: a Dask task calls ``run_shard``, and so could a Ray task or a plain
process. The task's keys are found by the shard itself (listing, or reading a file),
lazily, and handed to ``jobs`` native threads, each running the action on one key (or
one chunk of keys) at a time: at most ``jobs`` calls are in flight, and at most one
page of the listing is held. A ``limiter`` shared by every task of the job (a
cluster-wide semaphore) lends each thread a lease before it starts, so the job's
calls in flight stay within the cap whatever the number of tasks.
"""

from __future__ import annotations

import pickle
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Optional, Protocol

from .. import runtime
from ..records import Key
from .report import FailedKey, ShardResult, failure
from .shards import ShardLike

if TYPE_CHECKING:
    from ..connection import Connection

__all__ = ["Action", "Limiter", "Tally", "refuse_patched", "run_shard", "shared_connection"]

# How long the task's thread waits for a lease or a finished worker before looking again.
LEASE_WAIT_S = 0.25
# Modules whose patching breaks Dask: its threads and locks, its event loop's waits and
# clocks, its sockets. A program may patch some and not others (patch_all(socket=False)).
ENGINE_MODULES = ("socket", "ssl", "threading", "_thread", "select", "selectors", "time", "queue")
# Connections a worker process keeps for its tasks, one per set of arguments.
SHARED_CONNECTIONS = 8


def refuse_patched(what: str) -> None:
    """RuntimeError in a gevent-patched process: Dask (and Ray) need native threads."""
    patched = runtime.patched_modules(ENGINE_MODULES)
    if patched:
        raise RuntimeError(
            f"{what} cannot run in a gevent-patched process: gevent.monkey patched {', '.join(patched)}, "
            "which Dask's client, scheduler and workers use for their threads, locks, waits and sockets. "
            "Run the job from a program that does not patch; s3po then runs every call on native threads."
        )


class Limiter(Protocol):
    """A cap shared by the tasks of a job (``distributed.Semaphore`` has this shape)."""

    def acquire(self, timeout: Optional[float] = None) -> bool: ...

    def release(self) -> Any: ...


@dataclass
class Tally:
    """What the threads of one task did, added up under a lock."""

    objects: int = 0
    succeeded: int = 0
    skipped: int = 0
    bytes: int = 0
    failed: list[FailedKey] = field(default_factory=list)
    lock: Any = field(default_factory=threading.Lock, repr=False)

    def done(self, key: Key, nbytes: Optional[int] = None) -> None:
        with self.lock:
            self.objects += 1
            self.succeeded += 1
            self.bytes += (key.size or 0) if nbytes is None else nbytes

    def skip(self, key: Key) -> None:
        with self.lock:
            self.objects += 1
            self.skipped += 1

    def fail(self, key: Key, exc: BaseException) -> None:
        self.refused(failure(key.bucket, key.key, key.version_id, exc))

    def refused(self, row: FailedKey) -> None:
        with self.lock:
            self.objects += 1
            self.failed.append(row)


class Action(Protocol):
    """A job's work: the items a shard gives, and what is done with each."""

    @property
    def name(self) -> str: ...

    def items(self, conn: "Connection", shard: ShardLike) -> Iterator[Any]: ...

    def run(self, conn: "Connection", item: Any, tally: Tally) -> None:
        """Do the work of one item and count it in ``tally`` (failures too: never raise)."""


class _Source:
    """The shard's items, pulled by one thread at a time."""

    def __init__(self, items: Iterator[Any]) -> None:
        self._items = items
        self._lock = threading.Lock()
        self.exhausted = False
        self.error: Optional[BaseException] = None

    def next(self) -> Any:
        with self._lock:
            if self.exhausted:
                return _END
            try:
                return next(self._items)
            except StopIteration:
                self.exhausted = True
                return _END
            except BaseException as exc:  # the listing failed (after its retries): the task fails
                self.exhausted = True
                self.error = exc
                return _END

    def stop(self, exc: BaseException) -> None:
        with self._lock:
            self.exhausted = True
            self.error = self.error or exc


_END = object()


def run_shard(conn: "Connection", shard: ShardLike, action: Action, *, jobs: int,
              limiter: Optional[Limiter] = None) -> ShardResult:
    """Run ``action`` over every item of ``shard``, ``jobs`` at a time; the shard's result.

    A key that fails is a row of the result, not an exception. The task itself raises
    only when its keys cannot be found (the listing or the key file failed after its
    retries): then the engine retries the whole task.
    """
    refuse_patched("an s3po job")
    started = time.monotonic()
    tally = Tally()
    source = _Source(action.items(conn, shard))
    native = runtime.native()
    finished = native.queue()

    def work() -> None:
        try:
            while True:
                item = source.next()
                if item is _END:
                    return
                action.run(conn, item, tally)
        except BaseException as exc:  # a bug in the action, not a failed key: the task fails
            source.stop(exc)
        finally:
            finished.put(None)

    threads: list[Any] = []
    running = held = 0
    try:
        while True:
            if running < jobs and not source.exhausted:
                # The first lease is waited for; more are taken as they come free.
                if limiter is None or limiter.acquire(timeout=None if running == 0 else 0):
                    held += limiter is not None
                    threads.append(native.spawn(work, "s3po-job"))
                    running += 1
                    continue
            if running == 0:
                break
            try:
                finished.get(timeout=LEASE_WAIT_S)
            except queue.Empty:
                continue
            running -= 1
            if held:  # a thread is done with its lease: another task may use it now
                held -= 1
                assert limiter is not None
                limiter.release()
    finally:
        for thread in threads:
            thread.join()
        for _ in range(held):
            assert limiter is not None
            limiter.release()
    if source.error is not None:
        raise source.error
    return ShardResult(shard.id, shard.describe(), tally.objects, tally.succeeded, tally.skipped, tally.bytes,
                       tally.failed, round(time.monotonic() - started, 3))


_connections: "OrderedDict[bytes, Connection]" = OrderedDict()
_connections_lock = threading.Lock()


def shared_connection(conn: "Connection") -> "Connection":
    """One Connection per process for each set of arguments, shared by its tasks.

    A task receives its Connection pickled, so each would otherwise build a client (and
    a connection pool) of its own; tasks that run one after another in a worker share
    one instead, with its warm connections. The last SHARED_CONNECTIONS used are kept:
    a long-lived worker running jobs with ever new arguments does not grow for it (a
    Connection let go is still used by the tasks that hold it, then collected).
    """
    identity = pickle.dumps(conn)
    with _connections_lock:
        found = _connections.get(identity)
        if found is None:
            found = _connections[identity] = conn
            while len(_connections) > SHARED_CONNECTIONS:
                _connections.popitem(last=False)
        _connections.move_to_end(identity)
        return found
