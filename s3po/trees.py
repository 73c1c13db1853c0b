"""Whole trees: a folder to a prefix, a prefix to a folder, a prefix to a prefix.

Each direction turns its two sides into sorted streams (localtree's walk, the
listings), lets treeplan merge them into steps, and runs the steps as calls of one
batch of the Connection: the batch bounds what is in flight (so the plan is made only
as fast as it is carried out, and memory stays bounded), and the batch's cancellation
makes an interrupted tree leave what interrupted calls leave: no temporary file, no
partial file, no multipart upload.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterator, Mapping, Optional

from .deletestream import DeleteStream
from .errors import code_and_message, s3_url
from .identical import identical
from .localtree import walk
from .records import Key
from .treepaths import Filter, check_apart, folder_prefix, inside, unsafe_reason
from .treeplan import (
    COMPARES,
    Bad,
    Entry,
    Item,
    Same,
    Step,
    checksum_of_file,
    newer_or_same_age,
    plan,
    same_size,
)

if TYPE_CHECKING:
    from .batch import Batch, CallError
    from .connection import Connection

__all__ = ["TreeAction", "TreeFailure", "TreeProgress", "TreeReport", "copy_tree", "download_tree",
           "upload_tree"]

PROGRESS_EVERY_S = 0.1  # byte progress of transfers in flight is passed on at most this often
# A file's mtime within this of its object's LastModified is the stamp a download left
# (what a float round trip through the file system can blur, not what an edit leaves).
STAMP_TOLERANCE_S = 0.001


@dataclass(frozen=True)
class TreeFailure:
    """One thing of a tree that failed: the key's URL or the file's path, a code, a message."""

    what: str
    code: Optional[str]
    message: str

    def __str__(self) -> str:
        return f"{self.what}: {self.message}"


@dataclass(frozen=True)
class TreeAction:
    """One step of a tree: "upload", "download", "copy", "delete", "mkdir" or "skip".

    ``source`` and ``destination`` are paths or ``s3://`` URLs; ``error`` is set when it failed.
    """

    action: str
    source: Optional[str]
    destination: Optional[str]
    size: Optional[int] = None
    error: Optional[TreeFailure] = None


@dataclass
class TreeReport:
    """What a tree call did: counts, bytes, failures, and a dry run's planned actions.

    ``deletes_refused`` counts deletions not made because more than ``max_delete`` were
    planned (then none is made). ``not_followed``: symlinks to folders the walk of an
    upload did not enter (nothing below them was uploaded or deleted); they do not make
    the report fail.
    """

    dry_run: bool = False
    transferred: int = 0
    transferred_bytes: int = 0
    skipped: int = 0
    skipped_bytes: int = 0
    deleted: int = 0
    deletes_refused: int = 0
    failed: list[TreeFailure] = field(default_factory=list)
    planned: list[TreeAction] = field(default_factory=list)
    not_followed: list[TreeFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed and no deletion was refused."""
        return not self.failed and not self.deletes_refused


@dataclass(frozen=True)
class TreeProgress:
    """A tree's progress so far, given to ``progress=`` after each step and as bytes move.

    Totals grow while the plan is being made (``planning_done`` False). ``event`` is the
    step that just ended, when one did.
    """

    objects_done: int
    objects_total: int
    bytes_done: int
    bytes_total: int
    skipped: int
    deleted: int
    failed: int
    planning_done: bool
    event: Optional[TreeAction] = None


TreeProgressCallback = Callable[[TreeProgress], Any]


@dataclass(frozen=True)
class Options:
    """The options every direction takes, checked once."""

    wanted: Filter
    sync: bool
    compare: str
    delete: bool
    dry_run: bool
    progress: Optional[TreeProgressCallback]
    jobs: int
    max_delete: Optional[int]


def check_options(connection: "Connection", include: Any, exclude: Any, sync: Any, compare: Any, delete: Any,
                  dry_run: Any, progress: Any, jobs: Any, max_delete: Any, *,
                  pattern: Optional[str] = None) -> Options:
    """ValueError/TypeError for bad options, before any request.

    ``pattern``: a glob every relative path must match as well (see treepaths.Filter).
    """
    for name, value in (("sync", sync), ("delete", delete), ("dry_run", dry_run)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, not {value!r}")
    if compare not in COMPARES:
        raise ValueError(f"compare must be one of {', '.join(map(repr, COMPARES))}, not {compare!r}")
    if delete and not sync:
        raise ValueError("delete=True needs sync=True: only a sync knows what the destination should not hold")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable taking a TreeProgress, not {type(progress).__name__}")
    if jobs is None:
        jobs = connection.max_connections
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, not {jobs!r}")
    if max_delete is not None and (isinstance(max_delete, bool) or not isinstance(max_delete, int) or max_delete < 0):
        raise ValueError(f"max_delete must be None or an integer >= 0, not {max_delete!r}")
    return Options(Filter(include, exclude, pattern=pattern), sync, compare, delete, dry_run, progress, jobs,
                   max_delete)


# -- the three directions ------------------------------------------------------------------


def upload_tree(connection: "Connection", bucket: str, prefix: str, directory: str, options: Options, *,
                headers: Optional[Mapping[str, Any]], compress: Optional[str]) -> TreeReport:
    prefix = folder_prefix(prefix)
    if not os.path.isdir(directory):
        raise NotADirectoryError(20, "not a folder to upload", directory)
    if compress is not None and options.sync and options.compare != "size-mtime":
        raise ValueError(f"compare={options.compare!r} cannot see a file and its compressed object as the same "
                         "(their sizes and checksums differ): sync compressed uploads with compare='size-mtime'")
    run = _Run(connection, options, delete_bucket=bucket)
    source = walk(directory)
    destination = _remote_items(connection, bucket, prefix) if options.sync else iter(())
    same = _same(options.compare, local_is_source=True, part_size=connection.part_size,
                 resized=compress is not None)
    upload_options: dict[str, Any] = {"headers": headers, "compress": compress}

    def transfer(batch: "Batch", step: Step) -> None:
        assert step.source is not None
        key = prefix + step.relative
        run.submit(batch, "upload", step.source.location, s3_url(bucket, key), step.source.size,
                   lambda done: batch.upload_file(bucket, key, step.source.location,  # type: ignore[union-attr]
                                                  progress=run.tick, callback=done, **upload_options),
                   failure_key=key)

    def remove(item: Item) -> None:
        run.delete_remote(bucket, prefix + item.relative)

    return run.execute(_planned(source, destination, options, same), transfer, remove,
                       describe=lambda step: ("upload", step.source.location if step.source else None,
                                              s3_url(bucket, prefix + step.relative)),
                       describe_delete=lambda item: s3_url(bucket, prefix + item.relative))


def download_tree(connection: "Connection", bucket: str, prefix: str, directory: str, options: Options, *,
                  decompress: bool, list_from: Optional[str] = None) -> TreeReport:
    prefix = folder_prefix(prefix)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise NotADirectoryError(20, "the download target is not a folder", directory)
    root_real = os.path.realpath(directory)
    run = _Run(connection, options)
    source = _checked_keys(_remote_items(connection, bucket, prefix, list_from), bucket, prefix)
    destination = walk(directory) if options.sync and os.path.isdir(directory) else iter(())
    same = _same(options.compare, local_is_source=False, part_size=connection.part_size, resized=decompress)

    def path_of(relative: str) -> str:
        return os.path.join(directory, *relative.rstrip("/").split("/"))

    def transfer(batch: "Batch", step: Step) -> None:
        assert step.source is not None
        item = step.source
        path = path_of(step.relative)
        url = item.location
        if not inside(root_real, path):
            run.fail("download", url, path, "Unsafe", "a symlink inside the target points outside it")
            return
        if step.relative.endswith("/"):
            run.make_folder(url, path)
            return
        mtime = item.mtime

        def stamped(done: Callable[[Any], None]) -> Callable[[Any], None]:
            def downloaded(result: Any) -> None:
                os.utime(path, (time.time(), mtime))  # so that the next sync finds it the same
                done(result)
            return downloaded

        run.submit(batch, "download", url, path, item.size,
                   lambda done: batch.download_file(bucket, prefix + step.relative, path, decompress=decompress,
                                                    progress=run.tick, callback=stamped(done)),
                   failure_key=prefix + step.relative)

    def remove(item: Item) -> None:
        run.delete_local(item.location)

    return run.execute(_planned(source, destination, options, same), transfer, remove,
                       describe=lambda step: ("mkdir" if step.relative.endswith("/") else "download",
                                              s3_url(bucket, prefix + step.relative), path_of(step.relative)),
                       describe_delete=lambda item: item.location)


def copy_tree(connection: "Connection", src_bucket: str, src_prefix: str, dst_bucket: str, dst_prefix: str,
              options: Options, *, list_from: Optional[str] = None) -> TreeReport:
    src_prefix, dst_prefix = folder_prefix(src_prefix), folder_prefix(dst_prefix)
    check_apart(src_bucket, src_prefix, dst_bucket, dst_prefix)
    run = _Run(connection, options, delete_bucket=dst_bucket)
    source = _remote_items(connection, src_bucket, src_prefix, list_from)
    destination = _remote_items(connection, dst_bucket, dst_prefix) if options.sync else iter(())
    same = _same_objects(options.compare, connection, src_bucket, src_prefix, dst_bucket, dst_prefix)

    def transfer(batch: "Batch", step: Step) -> None:
        assert step.source is not None
        key = dst_prefix + step.relative
        run.submit(batch, "copy", step.source.location, s3_url(dst_bucket, key), step.source.size,
                   lambda done: batch.copy(src_bucket, src_prefix + step.relative, dst_bucket, key, callback=done),
                   failure_key=key)

    def remove(item: Item) -> None:
        run.delete_remote(dst_bucket, dst_prefix + item.relative)

    return run.execute(_planned(source, destination, options, same), transfer, remove,
                       describe=lambda step: ("copy", s3_url(src_bucket, src_prefix + step.relative),
                                              s3_url(dst_bucket, dst_prefix + step.relative)),
                       describe_delete=lambda item: s3_url(dst_bucket, dst_prefix + item.relative))


def _planned(source: Iterator[Entry], destination: Iterator[Entry], options: Options, same: Same) -> Iterator[Step]:
    return plan(source, destination, sync=options.sync, delete=options.delete, same=same, wanted=options.wanted,
                excluded=options.wanted.excludes)


# -- the two sides as sorted streams -----------------------------------------------------------


def _remote_items(connection: "Connection", bucket: str, prefix: str, list_from: Optional[str] = None) -> Iterator[Item]:
    """The keys under ``prefix`` (listed from ``list_from``, a longer prefix, when given: the
    literal part of a wildcard) as Items relative to ``prefix``."""
    for record in connection.objects(bucket, list_from or prefix):
        relative = record.key[len(prefix):]
        if not relative:
            continue  # the folder marker of the prefix itself
        yield _remote_item(record, relative)


def _remote_item(record: Key, relative: str) -> Item:
    stamp = record.last_modified.timestamp() if record.last_modified is not None else 0.0
    return Item(relative, record.url, record.size or 0, stamp, record.etag)


def _checked_keys(items: Iterator[Item], bucket: str, prefix: str) -> Iterator[Entry]:
    """Keys that may become paths; the rest as Bad: unsafe names, and names that are both a
    file and a folder (``a`` and ``a/b``: the later one is the conflict).

    In S3's order every key below ``a/`` comes after ``a`` and before any key that does
    not start with ``a``, so a stack of the file keys that prefix the current one is all
    the memory this needs.
    """
    files: list[str] = []  # file keys (relative) that are prefixes of the keys to come
    for item in items:
        relative = item.relative
        reason = unsafe_reason(relative)
        if reason is not None:
            yield Bad(relative, item.location, f"not downloaded: {reason}")
            continue
        while files and not relative.startswith(files[-1]):
            files.pop()
        clash = next((name for name in files if relative.startswith(name + "/")), None)
        if clash is not None:
            yield Bad(relative, item.location,
                      f"conflict: {s3_url(bucket, prefix + clash)} is a file where this needs a folder", "Conflict")
            continue
        if not relative.endswith("/"):
            files.append(relative)
        yield item


def _same(compare: str, *, local_is_source: bool, part_size: Optional[int], resized: bool) -> Same:
    """When a file and its object are the same, by ``compare``.

    ``resized``: the file's bytes are not the object's (uploaded compressed, or
    downloaded decompressed), so their sizes cannot be compared. An upload is then the
    same when the object is not older than the file. A download is the same when it
    is by size and age, or when the file carries exactly the object's LastModified:
    s3po stamps every file it downloads so, and a file changed since has a new mtime.
    """
    if compare == "size":
        return same_size
    if compare == "checksum":
        def same_content(source: Item, destination: Item) -> bool:
            local, remote = (source, destination) if local_is_source else (destination, source)
            if local.size != remote.size or not remote.etag:
                return False
            try:
                return checksum_of_file(local.location, remote.etag, part_size) == remote.etag.lower()
            except OSError:
                return False
        return same_content

    def same_size_and_age(source: Item, destination: Item) -> bool:
        return source.size == destination.size and newer_or_same_age(source.mtime, destination.mtime)

    if not resized:
        return same_size_and_age
    if local_is_source:
        return lambda source, destination: newer_or_same_age(source.mtime, destination.mtime)
    return lambda source, destination: (same_size_and_age(source, destination)
                                        or abs(source.mtime - destination.mtime) < STAMP_TOLERANCE_S)


def _same_objects(compare: str, connection: "Connection", src_bucket: str, src_prefix: str, dst_bucket: str,
                  dst_prefix: str) -> Same:
    if compare == "size":
        return same_size
    if compare == "checksum":
        def same_content(source: Item, destination: Item) -> bool:
            return identical(connection, Key(src_bucket, src_prefix + source.relative, source.size, source.etag),
                             Key(dst_bucket, dst_prefix + destination.relative, destination.size, destination.etag))
        return same_content
    return lambda source, destination: (source.size == destination.size
                                        and newer_or_same_age(source.mtime, destination.mtime))


# -- running the steps ---------------------------------------------------------------------


class _Run:
    """One tree call: its batch, its counters, its report, its progress.

    ``delete_bucket``: where deletions of objects go (through a DeleteStream of their
    own, which tells each key's outcome); local deletions are made at once.
    """

    def __init__(self, connection: "Connection", options: Options, *, delete_bucket: Optional[str] = None) -> None:
        self._connection = connection
        self._options = options
        self._delete_bucket = delete_bucket
        self.report = TreeReport(dry_run=options.dry_run)
        self._lock = threading.Lock()
        self._notify_lock = threading.Lock()
        self._objects_total = 0
        self._objects_done = 0
        self._bytes_total = 0
        self._bytes_finished = 0
        self._planning_done = False
        self._last_tick = 0.0
        self._batch: Optional["Batch"] = None
        # The first exception of the progress callback: it stops the tree (from the
        # thread running it), and is never taken for a failure of the transfer it reported.
        self._callback_error: Optional[BaseException] = None
        self._deletes: Optional[DeleteStream] = None
        # Calls in flight by the key their failure names: at most the batch's size of them.
        self._in_flight: dict[str, TreeAction] = {}
        self._held_deletes: list[Item] = []
        self._deletes_planned = 0

    # -- the loop --

    def execute(self, steps: Iterator[Step], transfer: Callable[["Batch", Step], None],
                remove: Callable[[Item], None],
                describe: Callable[[Step], tuple[str, Optional[str], Optional[str]]],
                describe_delete: Callable[[Item], str]) -> TreeReport:
        options = self._options
        # Without a limit, deletions are made as they are planned; with one, they wait
        # (at most max_delete of them) until the plan is known to stay within it.
        hold_deletes = options.max_delete is not None
        with self._connection.batch(options.jobs, keep_results=False) as batch:
            self._batch = batch
            with self._delete_stream() as deletes:
                self._deletes = deletes
                for step in steps:
                    self._drain_failures()
                    if step.action in ("fail", "notice"):
                        assert step.bad is not None
                        failure = TreeFailure(step.bad.location, step.bad.code, step.bad.reason)
                        if step.action == "notice":
                            with self._lock:
                                self.report.not_followed.append(failure)
                            continue
                        action, source, destination = describe(step)
                        self._failed(TreeAction(action, source, destination), failure)
                    elif step.action == "skip":
                        assert step.source is not None
                        with self._lock:
                            self.report.skipped += 1
                            self.report.skipped_bytes += step.source.size
                        action, source, destination = describe(step)
                        self._notify(TreeAction("skip", source, destination, step.source.size))
                    elif step.action == "transfer":
                        assert step.source is not None
                        if options.dry_run:
                            action, source, destination = describe(step)
                            self.report.planned.append(TreeAction(action, source, destination, step.source.size))
                            continue
                        transfer(batch, step)
                    elif step.action == "delete":
                        assert step.destination is not None
                        self._deletes_planned += 1
                        if options.dry_run:
                            self.report.planned.append(TreeAction("delete", None,
                                                                  describe_delete(step.destination)))
                        elif not hold_deletes:
                            remove(step.destination)
                        elif self._deletes_planned <= (options.max_delete or 0):
                            self._held_deletes.append(step.destination)
                        else:
                            self._held_deletes = []  # refused: none is made
                self._planning_done = True
                if options.max_delete is not None and self._deletes_planned > options.max_delete:
                    self.report.deletes_refused = self._deletes_planned
                else:
                    for item in self._held_deletes:
                        remove(item)
                self._held_deletes = []
                self._notify(None)
            self._deletes = None  # every deletion has been told
            while not batch.wait(0.2):
                self._drain_failures()
            self._drain_failures()  # taken here, each failure is in the report, not logged by the batch
        self._notify(None)
        self._raise_callback_error()
        return self.report

    def _raise_callback_error(self) -> None:
        """Raise what the progress callback raised: here, the batch's block ends on it,
        and its calls in flight are stopped as on Ctrl-C."""
        if self._callback_error is not None:
            raise self._callback_error

    def _delete_stream(self) -> ContextManager[Optional[DeleteStream]]:
        options = self._options
        if self._delete_bucket is None or not options.delete or options.dry_run:
            return contextlib.nullcontext()
        return DeleteStream(self._connection, self._delete_bucket, deleted=self._remote_deleted,
                            refused=self._remote_refused, jobs=options.jobs)

    # -- steps --

    def submit(self, batch: "Batch", action: str, source: str, destination: str, size: int,
               start: Callable[[Callable[[Any], None]], Any], *, failure_key: str) -> None:
        described = TreeAction(action, source, destination, size)
        with self._lock:
            self._objects_total += 1
            self._bytes_total += size
            self._in_flight[failure_key] = described

        def done(result: Any) -> None:
            with self._lock:
                self._in_flight.pop(failure_key, None)
                self._objects_done += 1
                self._bytes_finished += size
                self.report.transferred += 1
                self.report.transferred_bytes += size
            self._notify(described)

        start(done)

    def make_folder(self, url: str, path: str) -> None:
        described = TreeAction("mkdir", url, path)
        try:
            if os.path.isdir(path):
                with self._lock:
                    self.report.skipped += 1
                self._notify(TreeAction("skip", url, path, 0))
                return
            with self._lock:
                self._objects_total += 1
            os.makedirs(path)
        except OSError as exc:
            with self._lock:
                self._objects_done += 1
            self._failed(described, TreeFailure(url, "LocalError", f"cannot make folder {path}: {exc.strerror}"))
            return
        with self._lock:
            self._objects_done += 1
            self.report.transferred += 1
        self._notify(described)

    def delete_remote(self, bucket: str, key: str) -> None:
        assert self._deletes is not None and bucket == self._delete_bucket
        with self._lock:
            self._objects_total += 1
        self._deletes.add(key)

    def _remote_deleted(self, keys: list[str]) -> None:
        with self._lock:
            self._objects_done += len(keys)
            self.report.deleted += len(keys)
        for key in keys:
            self._notify(TreeAction("delete", None, s3_url(self._delete_bucket, key)))

    def _remote_refused(self, key: str, code: str, message: str) -> None:
        url = s3_url(self._delete_bucket, key)
        with self._lock:
            self._objects_done += 1
        self._failed(TreeAction("delete", None, url), TreeFailure(url, code, message))

    def delete_local(self, path: str) -> None:
        described = TreeAction("delete", None, path)
        with self._lock:
            self._objects_total += 1
            self._objects_done += 1
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            self._failed(described, TreeFailure(path, "LocalError", f"cannot delete: {exc.strerror}"))
            return
        with self._lock:
            self.report.deleted += 1
        self._notify(described)

    def fail(self, action: str, source: str, destination: str, code: str, message: str) -> None:
        self._failed(TreeAction(action, source, destination), TreeFailure(source, code, message))

    # -- outcomes --

    def _failed(self, described: TreeAction, failure: TreeFailure) -> None:
        with self._lock:
            self.report.failed.append(failure)
        self._notify(TreeAction(described.action, described.source, described.destination, described.size, failure))

    def _drain_failures(self) -> None:
        self._raise_callback_error()
        if self._deletes is not None:
            self._deletes.tell()
        batch = self._batch
        if batch is None:
            return
        for error in batch.take_errors():
            self._call_failed(error)

    def _call_failed(self, error: "CallError") -> None:
        """A transfer of the batch failed: its failure in the report, under the key or file at fault."""
        exception = error.exception
        with self._lock:
            described = self._in_flight.pop(error.key or "", None)
            self._objects_done += 1
        if described is None:
            described = TreeAction(error.operation, None, s3_url(error.bucket, error.key))
        # The object's URL (the one read from, for a download), or the local file at fault.
        what = (described.source if described.action == "download" else described.destination) or ""
        if isinstance(exception, OSError) and exception.filename:
            what = str(exception.filename)
        code, message = code_and_message(exception)
        self._failed(described, TreeFailure(what, code, message))

    # -- progress --

    def tick(self, done: int, total: Optional[int]) -> None:
        """A transfer in flight moved bytes: passed on at most every PROGRESS_EVERY_S."""
        now = time.monotonic()
        if now - self._last_tick < PROGRESS_EVERY_S:
            return
        self._last_tick = now
        self._notify(None)

    def _notify(self, event: Optional[TreeAction]) -> None:
        callback = self._options.progress
        if callback is None:
            return
        with self._lock:
            in_flight = self._batch.progress if self._batch is not None else None
            moving = 0
            if in_flight is not None:
                # Bytes of transfers still running: what the batch counted less what finished.
                moving = max(0, in_flight.bytes_done - self._bytes_finished)
            snapshot = TreeProgress(
                objects_done=self._objects_done, objects_total=self._objects_total,
                bytes_done=min(self._bytes_total, self._bytes_finished + moving), bytes_total=self._bytes_total,
                skipped=self.report.skipped, deleted=self.report.deleted, failed=len(self.report.failed),
                planning_done=self._planning_done, event=event)
        with self._notify_lock:
            if self._callback_error is not None:
                return  # stopping: it is not called again
            try:
                callback(snapshot)
            except Exception as exc:
                self._callback_error = exc
