"""A Connection's cap on requests in flight, and the runner of one transfer's parts or ranges.

Every request that runs beside others (a call of a batch or in the background, a part
or a range of a large transfer) holds one of the Connection's ``max_connections``
slots while it is on the wire, and only then: work that waits for anything else
(room in a read-ahead window, the next piece of a source) waits without a slot, so
an idle consumer can never starve the others.
"""

from __future__ import annotations

import collections
import functools
from typing import Any, Callable, Iterator, Optional, TypeVar

from .runtime import Cancellation, Runtime

__all__ = ["Slots", "run_parallel"]

R = TypeVar("R")


class Slots:
    """A Connection's ``max_connections`` slots, one semaphore per concurrency mode.

    A native semaphore would block every greenlet at once in a patched program, and a
    gevent one cannot be shared by native threads: hence one of each, made on first use.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._semaphores: dict[bool, Any] = {}

    def _semaphore(self, runtime: Runtime) -> Any:
        # setdefault is atomic: two first users at once share one semaphore.
        semaphore = self._semaphores.get(runtime.patched)
        if semaphore is None:
            semaphore = self._semaphores.setdefault(runtime.patched, runtime.semaphore(self.size))
        return semaphore

    def acquire(self, runtime: Runtime, cancellation: Cancellation,
                stop: Optional[Callable[[], bool]] = None) -> bool:
        """Take a slot; False when ``stop()`` says it is no longer wanted. Raises Cancelled."""
        return runtime.acquire(self._semaphore(runtime), cancellation, stop)

    def release(self, runtime: Runtime) -> None:
        self._semaphore(runtime).release()


class _Run:
    """What the workers of one run_parallel share.

    Tasks are pulled one at a time, holding no slot (a pull may wait, for room in a
    read-ahead window), into ``ready``, where any worker holding a slot takes them:
    the lent slot's worker too, so a call whose other workers find no free slot
    still gets through its tasks on the slot it holds.
    """

    def __init__(self, tasks: Iterator[Callable[[], Any]], runtime: Runtime) -> None:
        self.tasks = tasks
        self.stopped = False  # a task failed, or the caller was interrupted
        self.exhausted = False
        self.lock = runtime.lock()
        self.results = runtime.queue()
        self.ready: collections.deque[Callable[[], Any]] = collections.deque()

    def pull(self) -> bool:
        """Pull the next task into ``ready``; False when there is none left (or the run stopped).

        One worker at a time pulls: a source read part after part stays in order, and
        at most one task per worker waits in ``ready``, so memory stays bounded.
        """
        with self.lock:
            if self.stopped or self.exhausted:
                return False
            task = next(self.tasks, None)
            if task is None:
                self.exhausted = True
                return False
            self.ready.append(task)
            return True

    def take(self) -> Optional[Callable[[], Any]]:
        try:
            return self.ready.popleft()
        except IndexError:
            return None

    def nothing_to_run(self) -> bool:
        return self.stopped or not self.ready


_WORKER_EXITED = object()


def run_parallel(tasks: Iterator[Callable[[], R]], on_done: Callable[[R], Any], *, workers: int,
                 runtime: Runtime, slots: Slots, cancellation: Cancellation, holds_slot: bool,
                 expected: Optional[int] = None) -> None:
    """Run ``tasks`` (pulled one by one) on up to ``workers`` workers; ``on_done`` each result.

    Each task holds a slot of the Connection while it runs. A call that already holds
    one (a call of a batch) lends it to its first worker, which runs tasks for as long
    as any are left, so no call ever waits for a slot it holds itself. ``on_done``
    runs in the caller's thread or greenlet, in completion order. The first failure
    stops new tasks from starting and is raised once the running ones have ended. An
    interruption of the caller (Ctrl-C, a killed greenlet) cancels the call's running
    tasks at their next safe point and propagates.
    """
    run = _Run(tasks, runtime)
    count = max(1, min(workers, expected if expected is not None else workers))

    def with_lent_slot() -> None:
        while not run.stopped:
            task = run.take()
            if task is None:
                if not run.pull() and not run.ready:
                    return
                continue
            run.results.put((True, task()))

    def with_own_slots() -> None:
        while not run.stopped:
            if not run.ready and not run.pull():
                return
            # Something waits to run (this worker's pull, or another's): a slot for it.
            if not slots.acquire(runtime, cancellation, run.nothing_to_run):
                continue
            try:
                task = run.take()
                if task is not None:
                    run.results.put((True, task()))
            finally:
                slots.release(runtime)

    def work(lent_slot: bool) -> None:
        try:
            (with_lent_slot if lent_slot else with_own_slots)()
        except BaseException as exc:  # handed to the caller, who raises it
            run.stopped = True
            run.results.put((False, exc))
        finally:
            run.results.put(_WORKER_EXITED)

    handles = [runtime.spawn(functools.partial(work, index == 0 and holds_slot), "s3po-transfer")
               for index in range(count)]
    failure: Optional[BaseException] = None
    exited = 0
    try:
        while exited < count:
            item = run.results.get()
            if item is _WORKER_EXITED:
                exited += 1
                continue
            ok, value = item
            if failure is not None:
                continue
            if ok:
                on_done(value)
            else:
                failure = value
    except BaseException:
        run.stopped = True
        cancellation.cancel()
        runtime.stop(handles)
        raise
    if failure is not None:
        raise failure
