"""Keys deleted as they come, through a batch of their own, with each key's outcome told.

Trees deleting what a sync found gone, and the command line's ``rm -r`` and ``mv``,
have keys one at a time and want to hear, key by key, what S3 did: DeleteObjects
deletes some keys of a request and refuses others, and a request may fail whole. A
DeleteStream gathers the keys into requests of DELETE_BATCH, runs a few at once,
and tells each key's outcome to its callbacks (deleting.outcome reads it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from .deleting import DELETE_BATCH, outcome
from .errors import Cancelled

if TYPE_CHECKING:
    from .batch import Batch
    from .calls import Call
    from .connection import Connection

__all__ = ["DeleteStream"]

MAX_JOBS = 16  # DeleteObjects requests in flight, at most: each deletes up to DELETE_BATCH keys

Deleted = Callable[[list[str]], Any]
Refused = Callable[[str, str, str], Any]


class DeleteStream:
    """``with DeleteStream(conn, bucket, deleted=..., refused=...) as deletes: deletes.add(key)``

    ``deleted(keys)`` hears the keys S3 deleted, ``refused(key, code, message)`` each
    key it did not, in the thread that calls ``add``, ``tell`` or ends the block:
    outcomes are passed on each time a request is sent, when ``tell()`` is called,
    and at the end of the block, which waits for every request. ``jobs`` requests
    (at most MAX_JOBS) run at once. A block that raises cancels the requests not yet sent.
    """

    def __init__(self, connection: "Connection", bucket: str, *, deleted: Deleted, refused: Refused,
                 jobs: int = 4) -> None:
        self._connection = connection
        self._bucket = bucket
        self._deleted = deleted
        self._refused = refused
        self._jobs = min(jobs, MAX_JOBS)
        self._batch: Optional["Batch"] = None
        self._pending: list[str] = []
        # Requests sent and not yet told: at most ``jobs`` in flight, plus those just ended.
        self._sent: list[tuple["Call[Any]", list[str]]] = []

    def __enter__(self) -> "DeleteStream":
        self._batch = self._connection.batch(self._jobs, keep_results=False).__enter__()
        return self

    def add(self, key: str) -> None:
        self._pending.append(key)
        if len(self._pending) >= DELETE_BATCH:
            self._send()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        batch = self._batch
        assert batch is not None
        try:
            if exc_type is None:
                if self._pending:
                    self._send()
                batch.wait()
                self.tell()
        finally:
            batch.__exit__(exc_type, exc, tb)

    def _send(self) -> None:
        assert self._batch is not None
        keys, self._pending = self._pending, []
        self._sent.append((self._batch.delete_many(self._bucket, keys), keys))
        self.tell()

    def tell(self) -> None:
        """Pass on the outcomes of the requests that ended."""
        assert self._batch is not None
        # The failures are this stream's to tell, key by key: the batch need not log them.
        self._batch.take_errors()
        waiting = []
        for call, keys in self._sent:
            if not call.ready():
                waiting.append((call, keys))
                continue
            error = call.exception
            if isinstance(error, Cancelled):
                continue  # the block is ending with an exception: nothing more is told
            deleted, refused = outcome(keys, error)
            if deleted:
                self._deleted(deleted)
            for key, code, message in refused:
                self._refused(key, code, message)
        self._sent = waiting
