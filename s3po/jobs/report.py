"""What a job reports, like S3 Batch Operations' completion report.

Each task returns a ShardResult (its counts, and one FailedKey per key that failed);
the driver adds them into a JobReport and writes it as JSON lines (a totals line, then
one line per failed key) or CSV (one row per failed key, the totals beside it in
``<path>.totals.json``). Rows go to disk as shards finish: a job with many failures
keeps only the first ``KEPT_IN_MEMORY`` of them in the returned report.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from typing import IO, Any, Iterator, Optional

from ..atomicfile import AtomicFile
from ..errors import code_and_message

__all__ = ["FailedKey", "JobReport", "ReportWriter", "ShardResult", "failure"]

KEPT_IN_MEMORY = 10_000
COLUMNS = ("bucket", "key", "version_id", "error_code", "message")


@dataclass(frozen=True)
class FailedKey:
    """One key the job could not process, and why."""

    bucket: str
    key: str
    version_id: Optional[str]
    error_code: str
    message: str


def failure(bucket: str, key: str, version_id: Optional[str], exc: BaseException) -> FailedKey:
    """The report row of ``exc`` (see errors.code_and_message)."""
    code, message = code_and_message(exc)
    return FailedKey(bucket, key, version_id, code, message)


@dataclass
class ShardResult:
    """What one task did with one shard."""

    shard_id: str
    shard: str  # a description, for people
    objects: int = 0  # keys the task found in the shard
    succeeded: int = 0
    skipped: int = 0  # keys that needed nothing (already identical, a folder marker...)
    bytes: int = 0
    failed: list[FailedKey] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "ShardResult":
        data = json.loads(text)
        data["failed"] = [FailedKey(**row) for row in data.get("failed", ())]
        return cls(**data)


@dataclass
class JobReport:
    """Totals of a job and the keys that failed (see the module's docstring)."""

    operation: str
    bucket: str
    prefix: str
    shards: int = 0  # shards finished, in this run or (``shards_from_ledger``) earlier ones
    shards_from_ledger: int = 0
    shards_failed: int = 0  # tasks that failed even after their retries (not in the ledger)
    objects: int = 0
    succeeded: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    path: Optional[str] = None
    failures: list[FailedKey] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.shards_failed

    def totals(self) -> dict[str, Any]:
        totals = asdict(self)
        del totals["failures"]
        return totals

    def add(self, result: ShardResult, *, from_ledger: bool = False) -> None:
        self.shards += 1
        self.shards_from_ledger += from_ledger
        self.objects += result.objects
        self.succeeded += result.succeeded
        self.skipped += result.skipped
        self.bytes += result.bytes
        self.failed += len(result.failed)
        room = KEPT_IN_MEMORY - len(self.failures)
        if room > 0:
            self.failures.extend(result.failed[:room])


class ReportWriter:
    """Writes a job's failed keys as they come, and the whole report at the end."""

    def __init__(self, path: Optional[str], report: JobReport, fmt: Optional[str] = None) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.report = report
        self.format = fmt or _format_of(self.path)
        if self.format not in ("csv", "jsonl"):
            raise ValueError(f"report format must be 'csv' or 'jsonl', not {self.format!r}")
        self._rows: Optional[IO[str]] = None
        if self.path is not None:
            folder = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(folder, exist_ok=True)
            self._rows = tempfile.NamedTemporaryFile("w+", dir=folder, prefix=".s3po-report-", suffix=".rows",
                                                     encoding="utf-8", newline="")
            report.path = self.path

    def add(self, result: ShardResult, *, from_ledger: bool = False) -> None:
        self.report.add(result, from_ledger=from_ledger)
        if self._rows is not None:
            for row in result.failed:
                self._rows.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")

    def add_failed_shard(self, bucket: str, shard: str, exc: BaseException) -> None:
        """A task that failed after its retries: one row naming the shard (``key``)."""
        self.report.shards_failed += 1
        row = failure(bucket, shard, None, exc)
        if len(self.report.failures) < KEPT_IN_MEMORY:
            self.report.failures.append(row)
        if self._rows is not None:
            self._rows.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")

    def close(self) -> JobReport:
        """Write the report file (atomically) and return the report."""
        rows = self._rows
        if rows is None or self.path is None:
            return self.report
        try:
            rows.seek(0)
            with _text_file(self.path) as out:
                if self.format == "jsonl":
                    out.write(json.dumps({"totals": self.report.totals()}, ensure_ascii=False) + "\n")
                    for line in rows:
                        out.write(line)
                else:
                    writer = csv.writer(out)
                    writer.writerow(COLUMNS)
                    for line in rows:
                        data = json.loads(line)
                        writer.writerow([data[column] if data[column] is not None else "" for column in COLUMNS])
            if self.format == "csv":
                with _text_file(self.path + ".totals.json") as totals:
                    json.dump(self.report.totals(), totals, indent=2)
        finally:
            rows.close()
        return self.report


@contextlib.contextmanager
def _text_file(path: str) -> Iterator[io.TextIOWrapper]:
    """UTF-8 text that appears at ``path`` whole, or not at all (AtomicFile)."""
    with AtomicFile(path) as target:
        text = io.TextIOWrapper(target.file, encoding="utf-8", newline="")
        try:
            yield text
        finally:
            text.detach()  # flushed; the file itself is AtomicFile's to close


def _format_of(path: Optional[str]) -> str:
    return "csv" if path is not None and path.lower().endswith(".csv") else "jsonl"
