"""Jobs over every key under a prefix, run as Dask tasks, one shard per task.

The driver (the process that calls a job) plans shards lazily and keeps only a
window of tasks in flight, so its memory does not grow with the number of keys. Each
task lists (or reads) its own shard and runs s3po's calls on native threads
(s3po.jobs.work.run_shard). Results come back per shard: counts and failed keys, which
go into the ledger and the report as they arrive.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import pickle
import re
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..arguments import check_bucket, check_positive_int, check_prefix, parse_s3_url
from ..jobs.actions import Audit, Copy, Delete, Download, MapKeys
from ..jobs.ledger import Ledger
from ..jobs.planners import Planner, by_sampling
from ..jobs.report import JobReport, ReportWriter, ShardResult
from ..jobs.shards import ShardLike
from ..jobs.work import Action, refuse_patched, run_shard, shared_connection
from ..records import Key
from ..treepaths import check_apart, folder_prefix

if TYPE_CHECKING:
    from ..connection import Connection

__all__ = ["JobProgress", "audit_prefix", "copy_prefix", "delete_prefix", "download_prefix", "map_keys"]


@dataclass(frozen=True)
class JobProgress:
    """How a job stands, as told to ``progress=`` each time a shard finishes.

    The totals are those known so far: shards are planned as the job goes
    (``planning_done`` says when all are), and a shard's objects and bytes are known
    once it has finished.
    """

    shards_done: int
    shards_planned: int
    planning_done: bool
    objects_done: int
    bytes_done: int
    failed: int
    elapsed_s: float


def map_keys(client: Any, conn: "Connection", bucket: str, prefix: str, fn: Callable[["Connection", Key], Any], *,
             planner: Optional[Planner] = None, jobs_per_worker: int = 16, max_in_flight: Optional[int] = None,
             retries: int = 2, ledger: Optional[str] = None, report: Optional[str] = None,
             report_format: Optional[str] = None, progress: Optional[Callable[[JobProgress], Any]] = None,
             tasks_in_flight: Optional[int] = None) -> JobReport:
    """Run ``fn(conn, key)`` for every key under ``prefix``, on the cluster of ``client``.

    ``prefix`` is a folder, as in every job: "logs" means "logs/" (keys under
    "logs-archive/" are not the job's). ``key`` is a Key record (bucket, key, size, etag, last_modified...); ``conn`` a
    copy of ``conn`` in the worker (see Connection.__reduce__ for what travels). ``fn``
    returns anything (``s3po.jobs.SKIPPED`` counts the key as skipped); an exception is
    that key's failure, reported, never retried by the job (s3po's calls inside ``fn``
    retry on their own). Options, for every job:

    - ``planner``: how the prefix is cut into shards (``s3po.jobs.planners``;
      default ``by_sampling()``, shards of about 10,000 keys).
    - ``jobs_per_worker`` (16): keys processed at once in each task, so calls in flight.
    - ``max_in_flight``: a cap on the requests in flight across the whole cluster, held
      by a ``distributed.Semaphore`` (each of a task's threads holds a lease while its
      call runs; with a cap, a call moves one part or range at a time).
    - ``retries`` (2): Dask's retries of a task that failed (its listing failed after
      s3po's retries). A task lost with its worker is rerun by Dask anyway.
    - ``ledger``: a folder or ``s3://bucket/prefix`` (not inside the job's prefix)
      recording finished shards; a rerun of the same job skips them and its report
      still covers them. A shard with failed keys is not recorded: a rerun does it
      again, all its keys (the work must bear being done twice, as copies, downloads
      and deletes do). The same job means the same operation, bucket, prefix,
      planner and options (``fn`` by its qualified name and a digest of its code,
      defaults and closure).
    - ``report``: where to write the report (``.csv``, else JSON lines; or
      ``report_format="csv"``/``"jsonl"``).
    - ``progress``: called with a JobProgress in this process as each shard finishes.
    - ``tasks_in_flight``: tasks submitted at once (default: twice the cluster's threads).

    Returns the JobReport: totals, and the failed keys (bucket, key, version, error
    code, message). A task that failed even after its retries is one row naming its
    shard, and is left out of the ledger so that a rerun does it again.
    """
    return _run(client, conn, bucket, _folder(prefix), MapKeys(fn), planner=planner, jobs_per_worker=jobs_per_worker,
                max_in_flight=max_in_flight, retries=retries, ledger=ledger, report=report,
                report_format=report_format, progress=progress, tasks_in_flight=tasks_in_flight)


def copy_prefix(client: Any, conn: "Connection", bucket: str, prefix: str, dst_bucket: str,
                dst_prefix: Optional[str] = None, *, skip_identical: bool = True, **options: Any) -> JobReport:
    """Copy every object under ``prefix`` to ``dst_bucket`` (server-side), under ``dst_prefix``.

    ``dst_prefix`` (default: ``prefix``; a folder, as ``prefix`` is) replaces ``prefix``
    in each key; in the same bucket, neither may hold the other. Objects already at
    the destination with the same size and ETag are skipped (``skip_identical``).
    Other options as for ``map_keys``.
    """
    check_bucket(dst_bucket)
    prefix = _folder(prefix)
    dst_prefix = prefix if dst_prefix is None else _folder(dst_prefix, "dst_prefix")
    check_apart(bucket, prefix, dst_bucket, dst_prefix)
    return _run(client, conn, bucket, prefix, Copy(prefix, dst_bucket, dst_prefix, skip_identical), **options)


def download_prefix(client: Any, conn: "Connection", bucket: str, prefix: str, target: str, *,
                    decompress: bool = True, **options: Any) -> JobReport:
    """Download every object under ``prefix`` into files under the folder ``target``.

    Each file lands atomically, at its key's name after ``prefix``. ``target`` is a
    folder every worker can write (a shared filesystem), or a per-worker one: it may
    hold ``{host}`` and ``{pid}``, filled in on each worker. Keys that cannot be a file
    under ``target`` (``..``, empty segments...) fail with code UnsafeKey. Other options
    as for ``map_keys``.
    """
    if not isinstance(target, str) or not target:
        raise TypeError(f"target must be a folder's path (str), not {target!r}")
    try:
        target.format(host="host", pid=0)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"target {target!r} may name {{host}} and {{pid}} only (double other braces): "
                         f"{exc!r}") from None
    prefix = _folder(prefix)
    return _run(client, conn, bucket, prefix, Download(prefix, target, decompress), **options)


def delete_prefix(client: Any, conn: "Connection", bucket: str, prefix: str, *, whole_bucket: bool = False,
                  **options: Any) -> JobReport:
    """Delete every object under ``prefix`` (1,000 a request); keys S3 refused are reported.

    An empty prefix (every object in the bucket) needs ``whole_bucket=True``. Other
    options as for ``map_keys``.
    """
    prefix = _folder(prefix)
    if not prefix and not whole_bucket:
        raise ValueError(f"delete_prefix({bucket!r}, '') would delete every object in bucket {bucket!r}; "
                         "pass whole_bucket=True to do that")
    return _run(client, conn, bucket, prefix, Delete(), **options)


def audit_prefix(client: Any, conn: "Connection", bucket: str, prefix: str, **options: Any) -> JobReport:
    """Read every object under ``prefix`` to its end and verify it; report those that fail.

    Checks are s3po's own (MD5 ETags, multipart ETags part by part, sizes); an object
    that changed since it was listed is reported with code ObjectChanged. Other
    options as for ``map_keys``.
    """
    return _run(client, conn, bucket, _folder(prefix), Audit(), **options)


def _folder(prefix: Any, name: str = "prefix") -> str:
    """A job's prefix is a folder, as a tree's is: "data" and "data/" both mean "data/"."""
    return folder_prefix(check_prefix(prefix, name))


# -- the driver ---------------------------------------------------------------------------


def _run(client: Any, conn: "Connection", bucket: str, prefix: str, action: Action, *,
         planner: Optional[Planner] = None, jobs_per_worker: int = 16, max_in_flight: Optional[int] = None,
         retries: int = 2, ledger: Optional[str] = None, report: Optional[str] = None,
         report_format: Optional[str] = None, progress: Optional[Callable[[JobProgress], Any]] = None,
         tasks_in_flight: Optional[int] = None) -> JobReport:
    refuse_patched("s3po.dask")
    distributed: Any = importlib.import_module("distributed")

    check_bucket(bucket)
    check_positive_int("jobs_per_worker", jobs_per_worker)
    if max_in_flight is not None:
        check_positive_int("max_in_flight", max_in_flight)
    if tasks_in_flight is not None:
        check_positive_int("tasks_in_flight", tasks_in_flight)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0, not {retries!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable, not {type(progress).__name__}")
    try:
        pickle.dumps(conn)
    except TypeError as exc:
        raise TypeError(f"the Connection must travel to the workers: {exc}") from None
    planner = planner if planner is not None else by_sampling()
    if ledger is not None:
        _check_ledger_outside(ledger, bucket, prefix)
    started = time.monotonic()
    run_id = uuid.uuid4().hex[:12]
    book = Ledger(ledger, conn) if ledger is not None else None
    finished = book.begin(_identity(action, bucket, prefix, planner)) if book is not None else {}
    writer = ReportWriter(report, JobReport(action.name, bucket, prefix), report_format)
    lease_name = f"s3po-{action.name}-{run_id}" if max_in_flight is not None else None
    window = tasks_in_flight or max(2, 2 * sum(client.nthreads().values()))
    shards = iter(planner(conn, bucket, prefix))
    running: dict[Any, ShardLike] = {}
    submitted: set[str] = set()  # shard ids of this run: ids only, not keys
    task_conn = _one_request_a_call(conn) if max_in_flight is not None else conn
    completed = distributed.as_completed()
    state = {"planned": 0, "planning_done": False}

    def tell() -> None:
        if progress is not None:
            done = writer.report
            progress(JobProgress(done.shards, state["planned"], bool(state["planning_done"]), done.objects,
                                 done.bytes, done.failed + done.shards_failed, time.monotonic() - started))

    def submit_more() -> None:
        while len(running) < window and not state["planning_done"]:
            shard = next(shards, None)
            if shard is None:
                state["planning_done"] = True
                return
            if shard.id in submitted:
                continue  # a planner that gave the same shard twice: its keys once
            submitted.add(shard.id)
            state["planned"] += 1
            earlier = finished.pop(shard.id, None)
            if earlier is not None:
                writer.add(earlier, from_ledger=True)
                tell()
                continue
            future = client.submit(_task, task_conn, shard, action, jobs_per_worker, lease_name, max_in_flight,
                                   key=f"s3po-{action.name}-{shard.id}-{run_id}", retries=retries, pure=False)
            running[future] = shard
            completed.add(future)

    try:
        submit_more()
        for future in completed:
            shard = running.pop(future)
            try:
                result: ShardResult = future.result()
            except Exception as exc:  # failed after its retries, or its workers kept dying
                writer.add_failed_shard(bucket, shard.describe(), exc)
            else:
                if book is not None and not result.failed:
                    book.record(result)  # one with failed keys is done again by a rerun
                writer.add(result)
            future.release()
            tell()
            submit_more()
    except BaseException:
        client.cancel(list(running))  # stopped (Ctrl-C, a progress callback raised): no task outlives us
        raise
    finally:
        if lease_name is not None:
            _close_semaphore(client, lease_name)
    writer.report.seconds = round(time.monotonic() - started, 3)
    return writer.close()


def _identity(action: Action, bucket: str, prefix: str, planner: Any) -> dict[str, Any]:
    """What makes a job the same job again, for its ledger: every setting of its action too."""
    job: dict[str, Any] = {"operation": action.name, "bucket": bucket, "prefix": prefix,
                           "planner": _stable(planner)}
    if dataclasses.is_dataclass(action):
        for setting in dataclasses.fields(action):
            if setting.name != "name":
                job[setting.name] = _stable(getattr(action, setting.name))
    return job


def _stable(value: Any, seen: frozenset[int] = frozenset()) -> Any:
    """``value`` described the same way in every run of every process.

    A function: its qualified name and a digest of what it does (code, constants,
    defaults, closure), so that two lambdas of one module, or two closures of one
    factory, are two jobs. Sets by their sorted members (their order follows the
    process's hash seed); anything else by its repr, less the memory addresses a repr
    may hold. ``seen``: the functions being described, so a recursive one ends.
    """
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (set, frozenset)):
        return sorted(repr(_stable(member, seen)) for member in value)
    if isinstance(value, (list, tuple)):
        return [_stable(member, seen) for member in value]
    if isinstance(value, dict):
        return sorted((repr(_stable(key, seen)), repr(_stable(item, seen))) for key, item in value.items())
    if callable(value) and hasattr(value, "__qualname__"):
        name = f"{getattr(value, '__module__', '')}.{value.__qualname__}"
        code = getattr(value, "__code__", None)
        if code is None or id(value) in seen:
            return name
        seen = seen | {id(value)}
        captured = [_cell(cell, seen) for cell in getattr(value, "__closure__", None) or ()]
        defaults = [_stable(getattr(value, "__defaults__", None), seen),
                    _stable(getattr(value, "__kwdefaults__", None), seen)]
        return f"{name} {_code_digest(code, repr([captured, defaults]))}"
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))


def _cell(cell: Any, seen: frozenset[int]) -> Any:
    try:
        return _stable(cell.cell_contents, seen)
    except ValueError:  # a cell not filled yet
        return None


def _code_digest(code: Any, around: str) -> str:
    """What a function does, as a short digest: its bytecode, constants (nested functions'
    code included), names, and ``around`` (its defaults and closure); not its file's line
    numbers, so that moving it does not make another job. Bytecode differs between
    Python versions: a job rerun under another one is another job."""
    digest = hashlib.sha256()

    def add(code: Any) -> None:
        digest.update(code.co_code)
        digest.update(repr(code.co_names + code.co_varnames).encode())
        for constant in code.co_consts:
            if hasattr(constant, "co_code"):
                add(constant)
            else:
                digest.update(repr(_stable(constant)).encode())

    add(code)
    digest.update(around.encode())
    return digest.hexdigest()[:16]


def _check_ledger_outside(ledger: Any, bucket: str, prefix: str) -> None:
    """ValueError for a ledger under the job's own prefix: the job would take its files for keys."""
    location = str(ledger)
    if not location.startswith("s3://"):
        return
    ledger_bucket, ledger_prefix = parse_s3_url(location, "ledger")
    if ledger_bucket == bucket and folder_prefix(ledger_prefix).startswith(prefix):
        raise ValueError(f"the ledger {location} is inside the job's prefix s3://{bucket}/{prefix}: "
                         "the job would process its own ledger; keep it elsewhere")


def _close_semaphore(client: Any, name: str) -> None:
    with warnings.catch_warnings():
        # Leases of tasks lost with their worker expire by themselves; closing early says so.
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            client.run(_forget_semaphore, name, on_error="ignore")
        except Exception:  # a worker went away with its handles: the scheduler is told below
            pass
        try:
            client.sync(client.scheduler.semaphore_close, name=name)
        except Exception:  # the scheduler went away: nothing left to clean
            pass


# -- on the workers ---------------------------------------------------------------------------

_semaphores: dict[str, Any] = {}
_semaphores_lock = threading.Lock()


def _semaphore(name: str, leases: int) -> Any:
    """This worker's handle on the job's cluster-wide semaphore, made in a task thread.

    Made here, not shipped: a Semaphore must be made where it finds its worker, or it
    never refreshes its leases and the scheduler takes them back while they are held.
    One per job and process, shared by its tasks.
    """
    distributed: Any = importlib.import_module("distributed")
    with _semaphores_lock:
        found = _semaphores.get(name)
        if found is None:
            found = _semaphores[name] = distributed.Semaphore(max_leases=leases, name=name)
        return found


def _forget_semaphore(name: str) -> None:
    """On each worker as a job ends: its handle on the job's semaphore goes (it would
    otherwise stay, refreshing leases no task holds, for as long as the worker lives)."""
    with _semaphores_lock:
        found = _semaphores.pop(name, None)
    callback = getattr(found, "refresh_callback", None)
    if callback is not None:
        callback.stop()


def _one_request_a_call(conn: "Connection") -> "Connection":
    """``conn`` moving one part or range at a time: under a cluster-wide cap each call
    holds one lease, so a call fetching ranges (or sending parts) side by side would
    make the cap count calls, not the requests in flight it promises."""
    if conn.workers == 1:
        return conn
    return type(conn)(**{**conn._arguments, "workers": 1})


def _task(conn: "Connection", shard: ShardLike, action: Action, jobs: int, lease_name: Optional[str],
          leases: Optional[int]) -> ShardResult:
    limiter = _semaphore(lease_name, leases) if lease_name is not None and leases is not None else None
    return run_shard(shared_connection(conn), shard, action, jobs=jobs, limiter=limiter)
