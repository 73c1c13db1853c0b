"""A Connection's background calls (``background=True``): one batch any thread or greenlet adds to.

``Connection.wait`` waits for them from any thread or greenlet; at exit, calls still
pending are finished first, and failures nobody waited for are reported.
"""

from __future__ import annotations

import atexit
import logging
import weakref
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from .batch import Batch
from .calls import Call
from .errors import BatchError
from .runtime import native

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["BackgroundCalls"]

logger = logging.getLogger(__name__)


class BackgroundCalls:
    """The background calls of one Connection, at most ``max_connections`` in flight."""

    def __init__(self, connection: "Connection") -> None:
        self._connection = connection
        self._batch: Optional[Batch] = None
        self._lock = native().lock()  # held only to make the batch, never across a switch

    def submit(self, operation: str, args: tuple[Any, ...], kwargs: Mapping[str, Any],
               callback: Optional[Callable[[Any], Any]]) -> Call[Any]:
        batch = self._batch
        if batch is None:
            with self._lock:
                if self._batch is None:
                    connection = self._connection
                    self._batch = Batch(connection, connection.max_connections, keep_results=False,
                                        _background=True)
                    _pending_at_exit.add(self)
                batch = self._batch
        return batch.submit(operation, args, kwargs, callback)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for every background call; raise BatchError listing those that failed."""
        batch = self._batch
        if batch is None:
            return True
        done = batch.wait(timeout)
        failed = batch.take_errors()
        if failed:
            raise BatchError(failed)
        return done

    def cancel(self) -> None:
        if self._batch is not None:
            self._batch.cancel()

    def finish_at_exit(self) -> None:
        batch = self._batch
        if batch is None:
            return
        if batch.pending:
            logger.warning("finishing %d background call(s) before exit", batch.pending)
        batch.wait()
        batch.report_errors()
        batch.report_unseen("background calls")


_pending_at_exit: "weakref.WeakSet[BackgroundCalls]" = weakref.WeakSet()


@atexit.register
def _finish_background_work() -> None:
    """At exit, finish background calls still pending rather than drop them."""
    for background in list(_pending_at_exit):
        background.finish_at_exit()
