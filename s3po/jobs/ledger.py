"""The ledger of a job: which shards are finished, so that a rerun skips them.

A local folder (reachable by the process that drives the job) or an S3 prefix
(``s3://bucket/prefix``). It holds ``job.json``, what the job is, and one small file
per finished shard, ``shards/<shard id>.json``, with that shard's result (its counts
and failed keys), so the report of a rerun still covers the whole job. Only the
driver writes it, once a shard's result has reached it: a task that dies after its
work but before its result arrived is run again, never skipped. A rerun of another
job (another operation, bucket, prefix, planner or setting) is refused. Shards whose
result has failed keys are not recorded (the driver decides), so a rerun does them again.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Mapping

from ..arguments import parse_s3_url
from ..atomicfile import AtomicFile
from ..errors import NotFound
from ..treepaths import folder_prefix
from .report import ShardResult

if TYPE_CHECKING:
    from ..connection import Connection

__all__ = ["Ledger"]


class Ledger:
    """Finished shards of one job, in a local folder or under an S3 prefix."""

    def __init__(self, location: str, conn: "Connection") -> None:
        location = os.fspath(location)
        self.location = location
        self._conn = conn
        if location.startswith("s3://"):
            bucket, prefix = parse_s3_url(location, "ledger")
            self._bucket: str | None = bucket
            self._prefix = folder_prefix(prefix)
        else:
            self._bucket = None
            self._prefix = location

    def __repr__(self) -> str:
        return f"<s3po.jobs.Ledger {self.location}>"

    def begin(self, job: Mapping[str, Any]) -> dict[str, ShardResult]:
        """Check this ledger is ``job``'s (or new) and return the shards it has finished."""
        found = self._read("job.json")
        wanted = json.loads(json.dumps(job))
        if found is None:
            self._write("job.json", json.dumps(wanted, indent=2, ensure_ascii=False))
        elif json.loads(found) != wanted:
            raise ValueError(f"the ledger {self.location} belongs to another job: {found.strip()} "
                             f"(this one is {json.dumps(wanted, ensure_ascii=False)})")
        return {result.shard_id: result for result in self._finished()}

    def record(self, result: ShardResult) -> None:
        self._write(f"shards/{result.shard_id}.json", result.to_json())

    # -- where the files are -------------------------------------------------------------

    def _read(self, name: str) -> str | None:
        if self._bucket is None:
            try:
                with open(os.path.join(self._prefix, name), encoding="utf-8") as file:
                    return file.read()
            except FileNotFoundError:
                return None
        try:
            return self._conn.download(self._bucket, self._prefix + name).decode("utf-8")
        except NotFound as exc:
            if exc.code == "NoSuchBucket":
                raise
            return None

    def _write(self, name: str, text: str) -> None:
        if self._bucket is not None:
            self._conn.upload(self._bucket, self._prefix + name, text.encode("utf-8"),
                              headers={"Content-Type": "application/json"})
            return
        # Written whole, then renamed: a driver killed mid-write leaves no half entry.
        with AtomicFile(os.path.join(self._prefix, name)) as target:
            target.file.write(text.encode("utf-8"))

    def _finished(self) -> list[ShardResult]:
        if self._bucket is None:
            folder = os.path.join(self._prefix, "shards")
            if not os.path.isdir(folder):
                return []
            results = []
            for entry in os.scandir(folder):
                if entry.name.endswith(".json") and not entry.name.startswith("."):
                    with open(entry.path, encoding="utf-8") as file:
                        results.append(ShardResult.from_json(file.read()))
            return results
        names = list(self._conn.list(self._bucket, self._prefix + "shards/"))
        with self._conn.batch(32) as batch:
            calls = [batch.download(self._bucket, name) for name in names if name.endswith(".json")]
        return [ShardResult.from_json(call.get().decode("utf-8")) for call in calls]
