"""A Connection's cap on requests in flight, and the runner of one transfer's parts or ranges.

Every request that runs beside others (a call of a batch or in the background, a part
or a range of a large transfer) holds one of the Connection's ``max_connections``
slots while it is on the wire, and only then: work that waits for anything else
(room in a read-ahead window, the next piece of a source) waits without a slot, so
an idle consumer can never starve the others.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterator, Optional, TypeVar

from .runtime import POLL_S, Cancellation, Runtime

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
        """Take a slot; False when ``stop()`` says it is no longer wanted. Raises Cancelled.

        A greenlet with nothing else to watch simply waits: cancelling kills it. A
        native thread cannot be killed, so it looks at its cancellation now and then.
        """
        semaphore = self._semaphore(runtime)
        if stop is None and runtime.patched:
            semaphore.acquire()
            return True
        while not semaphore.acquire(timeout=POLL_S):
            cancellation.check()
            if stop is not None and stop():
                return False
        return True

    def release(self, runtime: Runtime) -> None:
        self._semaphore(runtime).release()


class _Run:
    """What the workers of one run_parallel share."""

    def __init__(self, tasks: Iterator[Callable[[], Any]], runtime: Runtime) -> None:
        self.tasks = tasks
        self.stopped = False  # a task failed, or the caller was interrupted
        self.exhausted = False
        self.lock = runtime.lock()
        self.results = runtime.queue()

    def next_task(self) -> Optional[Callable[[], Any]]:
        # One worker at a time pulls, holding no slot: a source read part after part
        # stays in order, at most one part per worker is in memory, and a pull that
        # waits (for room in a window) keeps no connection from anyone.
        with self.lock:
            if self.stopped or self.exhausted:
                return None
            task = next(self.tasks, None)
            if task is None:
                self.exhausted = True
            return task

    def finished(self) -> bool:
        return self.stopped


_WORKER_EXITED = object()


def run_parallel(tasks: Iterator[Callable[[], R]], on_done: Callable[[R], Any], *, workers: int,
                 runtime: Runtime, slots: Slots, cancellation: Cancellation, holds_slot: bool,
                 expected: Optional[int] = None) -> None:
    """Run ``tasks`` (pulled one by one) on up to ``workers`` workers; ``on_done`` each result.

    Each task holds a slot of the Connection while it runs. A call that already holds
    one (a call of a batch) lends it to its first worker, so no call ever waits for a
    slot it holds itself. ``on_done`` runs in the caller's thread or greenlet, in
    completion order. The first failure stops new tasks from starting and is raised
    once the running ones have ended. An interruption of the caller (Ctrl-C, a killed
    greenlet) cancels the running tasks at their next safe point and propagates.
    """
    run = _Run(tasks, runtime)
    count = max(1, min(workers, expected if expected is not None else workers))

    def work(lent_slot: bool) -> None:
        try:
            while True:
                task = run.next_task()
                if task is None:
                    return
                if not lent_slot and not slots.acquire(runtime, cancellation, run.finished):
                    return
                try:
                    run.results.put((True, task()))
                finally:
                    if not lent_slot:
                        slots.release(runtime)
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
