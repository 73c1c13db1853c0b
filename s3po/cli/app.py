"""The ``s3po`` command: parsing, the Connection it makes, and one function per command.

Exit status, one meaning each: 0 everything succeeded; 1 some operation failed (each
named on standard error, or in the JSON lines); 2 the command line is wrong; 130
interrupted (Ctrl-C): calls in flight are stopped, multipart uploads aborted,
temporary files removed, and a summary of what was done is printed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any, Callable, Iterator, Optional, Sequence

import s3po

from .. import trees
from ..deletestream import DeleteStream
from ..errors import S3POException, code_and_message, s3_url
from ..records import Prefix
from ..treeplan import COMPARES, TreeOrderError
from ..trees import TreeAction, TreeFailure, TreeProgress, TreeReport
from ..units import MiB
from .output import Output, human_bytes
from .selection import Selection, select
from .urls import Local, Location, S3Url, Stdio, UsageError, has_wildcard, parse

__all__ = ["main"]

OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130
READERS = frozenset({"ls", "cat", "du", "stat"})  # commands whose output is all they do
CLEANUP_TIMEOUT_S = 60  # the most a run waits, once stopped, for its lines to clean up
DEFAULT_MAX_DELETE = 1000
CHUNK = MiB

# Options of the whole invocation: its one Connection, its one output. Every command
# takes them; a line of ``run`` cannot (the run has one of each).
CONNECTION_OPTIONS = frozenset({"endpoint_url", "profile", "region", "jobs", "part_workers", "retries"})
OUTPUT_OPTIONS = frozenset({"json", "progress", "quiet", "verbose"})
_TREE = frozenset({"recursive", "include", "exclude"})
_UPLOAD = frozenset({"compress", "content_type"})
# What else each command takes; anything more is refused rather than silently ignored.
TAKES: dict[str, frozenset[str]] = {
    "ls": _TREE,
    "du": _TREE,
    "rm": _TREE | {"dry_run", "force"},
    "cp": _TREE | _UPLOAD | {"dry_run"},
    "mv": _TREE | _UPLOAD | {"dry_run"},
    "sync": _TREE | _UPLOAD | {"dry_run", "delete", "compare", "max_delete", "force"},
    "cat": frozenset(),
    "stat": frozenset(),
    "mb": frozenset({"dry_run"}),
    # For its lines; not --delete, --max-delete or --force: a line that deletes says so itself.
    "run": _TREE | _UPLOAD | {"dry_run", "compare"},
}
# What a line's command takes only from the line itself, never from the run: each would
# make it delete more than it names (-r turns ``rm s3://b/k`` into every key below k/,
# and ``mv`` into a move of all of them).
OWN_LINE_ONLY: dict[str, frozenset[str]] = {"rm": frozenset({"recursive"}), "mv": frozenset({"recursive"})}


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so ``run`` can name the line."""

    def error(self, message: str) -> Any:
        raise UsageError(message)


def _options() -> "_Parser":
    """The options every command takes, before or after its name (defaults filled in later)."""
    common = _Parser(add_help=False, argument_default=argparse.SUPPRESS)
    connection = common.add_argument_group("connection")
    connection.add_argument("--endpoint-url", help="the S3 endpoint (default: AWS, or AWS_ENDPOINT_URL)")
    connection.add_argument("--profile", help="a profile of ~/.aws/config")
    connection.add_argument("--region", help="the region (default: the profile's, or AWS_REGION)")
    connection.add_argument("-j", "--jobs", type=_positive, help="requests in flight (default 64)")
    connection.add_argument("--part-workers", type=_positive, help="parts or ranges in flight per large file (8)")
    connection.add_argument("--retries", type=_non_negative, help="retries of each request (3)")
    transfer = common.add_argument_group("transfers")
    transfer.add_argument("-r", "--recursive", action="store_true", help="whole prefixes and folders")
    transfer.add_argument("--include", action="append", metavar="GLOB", help="only relative paths matching GLOB")
    transfer.add_argument("--exclude", action="append", metavar="GLOB", help="not those matching GLOB (wins)")
    transfer.add_argument("--compress", choices=("gzip", "deflate"), help="compress uploads")
    transfer.add_argument("--content-type", help="Content-Type of uploads (default: guessed from the name)")
    transfer.add_argument("--dry-run", action="store_true", help="say what would be done, do nothing")
    transfer.add_argument("--delete", action="store_true", help="sync: delete what the source has not")
    transfer.add_argument("--compare", choices=COMPARES,
                          help="sync: what makes two files the same (default size-mtime)")
    transfer.add_argument("--max-delete", type=_non_negative,
                          help=f"sync --delete: refuse to delete more than N (default {DEFAULT_MAX_DELETE})")
    transfer.add_argument("--force", action="store_true",
                          help="allow rm -r of a whole bucket, and sync --delete beyond --max-delete")
    display = common.add_argument_group("output")
    display.add_argument("--json", action="store_true", help="one JSON object per operation per line, "
                                                            "then a summary line")
    display.add_argument("--progress", choices=("auto", "bar", "log", "none"),
                         help="a bar on a terminal, plain lines otherwise (auto)")
    display.add_argument("-q", "--quiet", action="store_true", help="errors only")
    display.add_argument("-v", "--verbose", action="store_true", help="a line per operation")
    return common


DEFAULTS: dict[str, Any] = {
    "endpoint_url": None, "profile": None, "region": None, "jobs": 64, "part_workers": 8, "retries": None,
    "recursive": False, "include": None, "exclude": None, "compress": None, "content_type": None,
    "dry_run": False, "delete": False, "compare": "size-mtime", "max_delete": None, "force": False,
    "json": False, "progress": "auto", "quiet": False, "verbose": False,
}


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = _options()
    parser = _Parser(prog="s3po", parents=[common],
                     description="Your friendly neighborhood S3 helper, on the command line.",
                     epilog="Exit status: 0 success, 1 some operation failed, 2 usage error, 130 interrupted.")
    parser.add_argument("--version", action="version", version=f"s3po {s3po.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], help=help_text, description=help_text)

    command("ls", "list buckets, or the keys and folders of s3://bucket[/prefix]").add_argument(
        "url", nargs="?")
    for name, help_text in (("cp", "copy a file, a key, a pipe (-), or with -r a tree"),
                            ("mv", "move: copy, then delete each source that arrived"),
                            ("sync", "make DST hold what SRC holds, transferring only what differs")):
        sub = command(name, help_text)
        sub.add_argument("source")
        sub.add_argument("destination")
    command("rm", "delete a key, keys matching a wildcard, or with -r a prefix").add_argument("url")
    command("cat", "write an object (decompressed) to standard output").add_argument("url")
    command("du", "the number of objects and bytes under s3://bucket[/prefix]").add_argument("url")
    command("stat", "an object's size, ETag, dates, type, metadata").add_argument("url")
    command("mb", "make a bucket").add_argument("url")
    command("run", "run the commands of FILE (one a line; - for standard input) together").add_argument("file")
    return parser


def parse_arguments(argv: Sequence[str], parser: Optional[argparse.ArgumentParser] = None,
                    base: Optional[argparse.Namespace] = None) -> argparse.Namespace:
    """The options of ``argv``, checked against what its command takes (UsageError otherwise).

    ``base``: the options of a ``run``, for one of its lines: the line's own options
    win; those of the run fill in the rest where the line's command takes them; a line
    may not set the run's connection or output. ``args.given`` names the options
    written out. ``--delete``, ``--max-delete`` and ``--force`` are refused on ``run``,
    and ``-r`` never fills in for ``rm`` or ``mv``: what deletes more than a line names
    is written on that line.
    """
    parser = parser or build_parser()
    args = parser.parse_args(list(argv), namespace=argparse.Namespace())
    given = frozenset(name for name in DEFAULTS if hasattr(args, name))
    takes = TAKES[args.command]
    ignored = sorted(given - CONNECTION_OPTIONS - OUTPUT_OPTIONS - takes)
    if ignored:
        raise UsageError(f"{args.command} does not take {_flags(ignored)}")
    if base is not None:
        whole_run = sorted(given & (CONNECTION_OPTIONS | OUTPUT_OPTIONS))
        if whole_run:
            raise UsageError(f"{_flags(whole_run)} apply to the whole run: give them to run itself, not to a line")
    for name, value in DEFAULTS.items():
        if name in given:
            continue
        inherited = base is not None and name not in OWN_LINE_ONLY.get(args.command, frozenset()) and (
            name in takes or name in CONNECTION_OPTIONS | OUTPUT_OPTIONS)
        setattr(args, name, getattr(base, name) if inherited else value)
    args.given = given
    return args


def _flags(names: Sequence[str]) -> str:
    return ", ".join("-r" if name == "recursive" else "--" + name.replace("_", "-") for name in names)


# -- the program ----------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    try:
        args = parse_arguments(argv, parser)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"s3po: usage error: {exc}", file=sys.stderr)
        return USAGE
    output = Output(json_lines=args.json, progress=args.progress, quiet=args.quiet, verbose=args.verbose)
    try:
        app = App(args, output, parser)
        status = app.dispatch(args)
    except KeyboardInterrupt:
        output.summary(interrupted=True)
        return INTERRUPTED
    except BrokenPipeError:
        _quiet_broken_pipe()
        # ``cat ... | head`` read what it wanted; a transfer whose output went away stopped
        # before it was done.
        return OK if args.command in READERS else FAILED
    except Exception as exc:
        expected = _expected(exc)
        if expected is None:
            raise
        status, message = expected
        output.error(f"usage error: {message}" if status == USAGE else message)
        return status
    return status


def _expected(exc: BaseException) -> Optional[tuple[int, str]]:
    """(exit status, one line) for a failure the command expects; None for a bug (a traceback).

    A ValueError is s3po refusing an argument, always before any request (copying a
    prefix into itself, say): a usage error, as argparse's own are.
    """
    if isinstance(exc, UsageError):
        return USAGE, str(exc)
    if isinstance(exc, (S3POException, OSError, TreeOrderError)):
        return FAILED, code_and_message(exc)[1]
    if isinstance(exc, ValueError) and not isinstance(exc, UnicodeError):
        return USAGE, code_and_message(exc)[1].removeprefix("ValueError: ")
    if type(exc).__module__.split(".")[0] in ("botocore", "boto3", "urllib3"):
        return FAILED, code_and_message(exc)[1]  # no credentials, a profile not found, a bad endpoint
    return None


def _quiet_broken_pipe() -> None:
    # The reader went away (``s3po cat ... | head``): say nothing, and keep Python from
    # complaining when it flushes standard output at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


class App:
    """One invocation: its Connection and its output (``self.args`` holds their options),
    and the commands, each run with its own options (a line of ``run`` has its own)."""

    def __init__(self, args: argparse.Namespace, output: Output, parser: argparse.ArgumentParser) -> None:
        self.args = args
        self.output = output
        self.parser = parser
        self._conn: Optional[s3po.Connection] = None

    @property
    def conn(self) -> s3po.Connection:
        if self._conn is None:
            self._conn = _connect(self.args)
        return self._conn

    def dispatch(self, args: argparse.Namespace) -> int:
        handler: Callable[[argparse.Namespace], int] = getattr(self, f"do_{args.command}")
        return handler(args)

    # -- small commands --

    def do_mb(self, args: argparse.Namespace) -> int:
        url = _s3(args.url)
        if url.key:
            raise UsageError(f"mb takes a bucket, not a key: {args.url}")
        if args.dry_run:
            self.output.planned(TreeAction("mb", None, str(url)))
            return OK
        self.conn.create_bucket(url.bucket)
        self.output.result(f"made bucket {url}", {"operation": "mb", "bucket": url.bucket, "ok": True})
        return OK

    def do_stat(self, args: argparse.Namespace) -> int:
        url = _s3_key(args.url)
        record = self.conn.head(url.bucket, url.key)
        fields = {"url": str(url), "size": record.size, "etag": record.etag,
                  "last_modified": record.last_modified.isoformat() if record.last_modified else None,
                  "content_type": record.content_type, "content_encoding": record.content_encoding,
                  "storage_class": record.storage_class, "metadata": dict(record.metadata),
                  "version_id": record.version_id}
        text = "\n".join(f"{name + ':':<17} {value}" for name, value in fields.items() if value not in (None, {}))
        self.output.result(text, fields)
        return OK

    def do_cat(self, args: argparse.Namespace) -> int:
        url = _s3_key(args.url)
        sink = sys.stdout.buffer
        with self.conn.open(url.bucket, url.key) as stream:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                sink.write(chunk)
        sink.flush()
        return OK

    def do_du(self, args: argparse.Namespace) -> int:
        url = _s3(args.url)
        count = total = 0
        for record in self._listed(_selection(args, url)):
            count += 1
            total += record.size or 0
        self.output.result(f"{human_bytes(total)} ({total} bytes) in {count} objects: {url}",
                           {"url": str(url), "objects": count, "bytes": total})
        return OK

    def do_ls(self, args: argparse.Namespace) -> int:
        if args.url is None:
            for name, created in self.conn.list_buckets():
                when = f"{created:%Y-%m-%d %H:%M:%S}" if created else ""
                self.output.result(f"{when}  s3://{name}", {"bucket": name, "created": str(created)})
            return OK
        url = _s3(args.url)
        if has_wildcard(url.key) or args.recursive:
            entries: Iterator[Any] = self._listed(_selection(args, url))
        else:
            _no_filters(args, "ls lists one level; with -r, everything below")
            entries = self.conn.entries(url.bucket, url.key, delimiter="/")
        for entry in entries:
            if isinstance(entry, Prefix):
                self.output.result(f"{'PRE':>32} {entry.prefix}", {"type": "prefix", "url": entry.url})
            else:
                when = f"{entry.last_modified:%Y-%m-%d %H:%M:%S}" if entry.last_modified else " " * 19
                self.output.result(f"{when} {entry.size:>12} {entry.key}", {
                    "type": "object", "url": entry.url, "size": entry.size, "etag": entry.etag,
                    "last_modified": entry.last_modified.isoformat() if entry.last_modified else None})
        return OK

    def _listed(self, selection: Selection) -> Iterator[Any]:
        """The selection's keys, with the progress of the listing shown as it goes."""
        count = total = 0
        for record in selection.keys(self.conn):
            count += 1
            total += record.size or 0
            self.output.listing_progress(count, total)
            yield record
        self.output.end_progress()

    # -- rm --

    def do_rm(self, args: argparse.Namespace) -> int:
        url = _s3(args.url)
        if not args.recursive and not has_wildcard(url.key):
            _no_filters(args, "rm deletes one key; with -r or a wildcard, many")
            if "force" in args.given:
                raise UsageError("--force lets rm -r or a wildcard delete a whole bucket; rm of one key needs none")
            if url.is_folder:
                raise UsageError(f"rm {url}: that is a prefix; add -r to delete everything under it")
            if args.dry_run:
                self.output.planned(TreeAction("delete", None, str(url)))
                return OK
            self.conn.delete(url.bucket, url.key)
            self.output.done(TreeAction("delete", None, str(url)))
            self.output.summary()
            return OK
        selection = _selection(args, url)
        if selection.whole_bucket and not args.force:
            raise UsageError(f"rm {url} may delete every object in bucket {url.bucket}: add --force to do that")
        if args.dry_run:
            for record in selection.keys(self.conn):
                self.output.planned(TreeAction("delete", None, record.url))
            return OK
        failed = self._delete_all(selection)
        self.output.summary()
        return FAILED if failed else OK

    def _delete_all(self, selection: Selection) -> int:
        """Delete the selection's keys as they are listed; returns how many failed."""
        bucket, output = selection.bucket, self.output
        counts = {"listed": 0, "deleted": 0, "failed": 0}

        def shown(finished: bool) -> None:
            output.tree_progress(TreeProgress(counts["deleted"] + counts["failed"], counts["listed"], 0, 0, 0,
                                              counts["deleted"], counts["failed"], finished))

        def deleted(keys: list[str]) -> None:
            counts["deleted"] += len(keys)
            for key in keys:
                output.done(TreeAction("delete", None, s3_url(bucket, key)))
            shown(False)

        def refused(key: str, code: str, message: str) -> None:
            counts["failed"] += 1
            url = s3_url(bucket, key)
            output.done(TreeAction("delete", None, url, error=TreeFailure(url, code, message)))

        with DeleteStream(self.conn, bucket, deleted=deleted, refused=refused,
                          jobs=self.args.jobs) as deletes:
            for record in selection.keys(self.conn):
                counts["listed"] += 1
                deletes.add(record.key)
                shown(False)
        shown(True)
        return counts["failed"]

    # -- cp, mv, sync --

    def do_cp(self, args: argparse.Namespace) -> int:
        return self._transfer(args, move=False, sync=False)

    def do_mv(self, args: argparse.Namespace) -> int:
        return self._transfer(args, move=True, sync=False)

    def do_sync(self, args: argparse.Namespace) -> int:
        given = sorted(args.given & {"max_delete", "force"})
        if given and not args.delete:
            raise UsageError(f"{_flags(given)} bound what --delete deletes: add --delete, or leave them out")
        return self._transfer(args, move=False, sync=True)

    def _transfer(self, args: argparse.Namespace, *, move: bool, sync: bool) -> int:
        source, destination = parse(args.source), parse(args.destination)
        if args.given & {"compress", "content_type"} and not isinstance(source, (Local, Stdio)):
            raise UsageError("--compress and --content-type are for uploads: a local file, a folder or -")
        if isinstance(source, Stdio) or isinstance(destination, Stdio):
            if sync or move or args.recursive:
                raise UsageError(f"{args.command} does not take '-'; cp does")
            _no_filters(args, "a pipe is one object")
            return self._pipe(args, source, destination)
        if isinstance(source, Local) and isinstance(destination, Local):
            raise UsageError("one of SRC and DST must be an s3:// URL")
        whole = sync or args.recursive
        if isinstance(source, S3Url) and has_wildcard(source.key):
            if sync:
                raise UsageError("sync takes no wildcards; use --include/--exclude")
            whole = True
        if not whole:
            _no_filters(args, f"{args.command} of one file or key")
            return self._one(args, source, destination, move)
        return self._tree(args, source, destination, move=move, sync=sync)

    def _pipe(self, args: argparse.Namespace, source: Location, destination: Location) -> int:
        if isinstance(source, Stdio) and isinstance(destination, S3Url):
            if destination.is_folder:
                raise UsageError(f"cp - needs a key to write to, not {destination}")
            if args.dry_run:
                self.output.planned(TreeAction("upload", "-", str(destination)))
                return OK
            stored = self.conn.upload(destination.bucket, destination.key, sys.stdin.buffer,
                                      compress=args.compress, headers=_headers(args),
                                      progress=self.output.bytes_progress)
            self.output.done(TreeAction("upload", "-", str(destination), stored.size))
        elif isinstance(source, S3Url) and isinstance(destination, Stdio):
            if args.dry_run:
                self.output.planned(TreeAction("download", str(source), "-"))
                return OK
            self.do_cat(argparse.Namespace(url=str(source)))
            return OK
        else:
            raise UsageError("'-' goes with an s3:// URL on the other side")
        self.output.summary()
        return OK

    def _one(self, args: argparse.Namespace, source: Location, destination: Location, move: bool) -> int:
        """One file or one key, to a file, a key, or into a folder or prefix."""
        conn, output = self.conn, self.output
        if isinstance(source, Local):
            assert isinstance(destination, S3Url)
            if os.path.isdir(source.path):
                raise UsageError(f"{source.path} is a folder: add -r to copy it whole")
            key = destination.key + os.path.basename(source.path) if destination.is_folder else destination.key
            action = TreeAction("upload", source.path, f"s3://{destination.bucket}/{key}",
                                os.path.getsize(source.path))
            if args.dry_run:
                output.planned(action)
                return OK
            conn.upload_file(destination.bucket, key, source.path, compress=args.compress, headers=_headers(args),
                             delete=move, progress=output.bytes_progress)
        else:
            assert isinstance(source, S3Url)
            if source.is_folder:
                raise UsageError(f"{source} is a prefix: add -r to copy everything under it")
            name = source.key.rsplit("/", 1)[-1]
            if isinstance(destination, Local):
                path = destination.path
                if os.path.isdir(path) or path.endswith(os.sep) or path.endswith("/"):
                    path = os.path.join(path, name)
                action = TreeAction("download", str(source), path, None)
                if args.dry_run:
                    output.planned(action)
                    return OK
                conn.download_file(source.bucket, source.key, path, progress=output.bytes_progress)
                if move:
                    conn.delete(source.bucket, source.key)
            else:
                assert isinstance(destination, S3Url)
                key = destination.key + name if destination.is_folder else destination.key
                action = TreeAction("copy", str(source), f"s3://{destination.bucket}/{key}", None)
                if args.dry_run:
                    output.planned(action)
                    return OK
                copied = conn.copy(source.bucket, source.key, destination.bucket, key)
                action = TreeAction("copy", action.source, action.destination, copied.size)
                if move:
                    conn.delete(source.bucket, source.key)
        output.done(action if action.size is not None or action.action != "download"
                    else TreeAction(action.action, action.source, action.destination,
                                    os.path.getsize(action.destination or "")))
        output.summary()
        return OK

    def _tree(self, args: argparse.Namespace, source: Location, destination: Location, *, move: bool,
              sync: bool) -> int:
        conn, output = self.conn, self.output
        list_from: Optional[str] = None
        pattern: Optional[str] = None
        if isinstance(source, S3Url):
            chosen = _selection(args, source)
            source, list_from, pattern = S3Url(source.bucket, chosen.folder), chosen.list_from, chosen.pattern
        max_delete = None if args.force else (args.max_delete if args.max_delete is not None else DEFAULT_MAX_DELETE)
        with _Mover(conn, output, source, self.args.jobs, move) as mover:
            options = trees.check_options(conn, args.include, args.exclude, sync, args.compare, args.delete,
                                          args.dry_run, mover.progress, args.jobs,
                                          max_delete if args.delete else None, pattern=pattern)
            if isinstance(source, Local):
                assert isinstance(destination, S3Url)
                if not os.path.isdir(source.path):
                    raise UsageError(f"{source.path} is not a folder")
                report = trees.upload_tree(conn, destination.bucket, destination.key, source.path, options,
                                           headers=_headers(args), compress=args.compress)
            elif isinstance(destination, Local):
                assert isinstance(source, S3Url)
                report = trees.download_tree(conn, source.bucket, source.key, destination.path, options,
                                             decompress=True, list_from=list_from)
            else:
                assert isinstance(source, S3Url) and isinstance(destination, S3Url)
                report = trees.copy_tree(conn, source.bucket, source.key, destination.bucket, destination.key,
                                         options, list_from=list_from)
        return self._ended(args, report)

    def _ended(self, args: argparse.Namespace, report: TreeReport) -> int:
        for action in report.planned:
            self.output.planned(action)
        for notice in report.not_followed:
            self.output.not_followed(notice.what, notice.message)
        if report.deletes_refused:
            self.output.error(
                f"refused to delete {report.deletes_refused} objects: more than --max-delete "
                f"{args.max_delete if args.max_delete is not None else DEFAULT_MAX_DELETE}; "
                "add --force to delete them")
        if not report.dry_run:
            self.output.summary()
        return OK if report.ok and not self.output.tally.failed else FAILED

    # -- run --

    def do_run(self, args: argparse.Namespace) -> int:
        import gevent.pool

        commands = []
        for number, line in _lines_of(args.file):
            if not line or line.startswith("#"):
                continue
            try:
                words = shlex.split(line)
                if words and words[0] == "s3po":
                    words = words[1:]
                if words and words[0] == "run":
                    raise UsageError("run cannot run run")
                line_args = parse_arguments(words, self.parser, args)
                for name in ("url", "source", "destination"):  # bad URLs stop the run before it starts
                    if getattr(line_args, name, None) is not None and isinstance(
                            parse(getattr(line_args, name)), Stdio):
                        # Lines run together: one standard input (or output) cannot serve them.
                        raise UsageError("'-' (standard input or output) cannot be used in a line of run")
                commands.append((number, line, line_args))
            except (UsageError, ValueError) as exc:
                raise UsageError(f"{args.file}, line {number}: {exc}") from None
        failures = [0]

        def one(number: int, line: str, line_args: argparse.Namespace) -> None:
            try:
                status = self.dispatch(line_args)
            except Exception as exc:
                expected = _expected(exc)
                if expected is None:
                    raise
                status, message = expected
                self.output.error(f"line {number}: {line}: {message}" if status == USAGE else
                                  f"line {number}: {message}")
            if status != OK:
                failures[0] += 1

        # The commands quiet their own summaries: the run prints one for all.
        summary, self.output.summary = self.output.summary, lambda **_: None  # type: ignore[method-assign]
        try:
            pool = gevent.pool.Pool(max(1, args.jobs))
            try:
                for number, line, line_args in commands:
                    pool.spawn(one, number, line, line_args)
                pool.join(raise_error=True)
            except BaseException:
                # Ctrl-C reaches this greenlet alone: the lines' greenlets are stopped so
                # that their calls are cancelled as a batch's are (multipart uploads
                # aborted, temporary files removed) before the run ends.
                pool.kill(block=True, timeout=CLEANUP_TIMEOUT_S)
                raise
        finally:
            self.output.summary = summary  # type: ignore[method-assign]
        self.output.summary()
        return FAILED if failures[0] or self.output.tally.failed else OK


def _lines_of(file: str) -> list[tuple[int, str]]:
    """The numbered lines of a ``run`` file (``-``: standard input), which must be UTF-8 text."""
    if file == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(file, "rb") as source:
            data = source.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UsageError(f"{file}, line {line}: not UTF-8 text (byte {data[exc.start]:#04x})") from None
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1)]


class _Mover:
    """How a tree command follows its transfers: a progress callback for the tree.

    For ``mv``, each source that arrived is deleted at once, and each deletion is said
    and counted: objects through a DeleteStream (DELETE_BATCH a request), files one
    by one. Nothing waits for the end, so nothing piles up.
    """

    def __init__(self, conn: s3po.Connection, output: Output, source: Location, jobs: int, move: bool) -> None:
        self._output = output
        self._move = move
        self._bucket = source.bucket if move and isinstance(source, S3Url) else None
        self._deletes = DeleteStream(conn, self._bucket, deleted=self._deleted, refused=self._refused,
                                     jobs=jobs) if self._bucket is not None else None

    def __enter__(self) -> "_Mover":
        if self._deletes is not None:
            self._deletes.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._deletes is not None:
            self._deletes.__exit__(exc_type, exc, tb)

    def progress(self, snapshot: TreeProgress) -> None:
        event = snapshot.event
        self._output.tree_progress(snapshot)
        # What arrived, and a folder marker whose folder is already there: each source goes.
        arrived = event is not None and event.error is None and (
            event.action in ("upload", "download", "copy", "mkdir")
            or (event.action == "skip" and (event.source or "").endswith("/")))
        if not self._move or not arrived:
            return
        assert event is not None
        source = event.source or ""
        if self._deletes is not None:
            self._deletes.add(source[len(s3_url(self._bucket, "")):])
            return
        try:
            os.remove(source)
        except OSError as exc:
            self._output.done(TreeAction("delete", None, source,
                                         error=TreeFailure(source, "LocalError", f"cannot delete: {exc.strerror}")))
            return
        self._output.done(TreeAction("delete", None, source))

    def _deleted(self, keys: list[str]) -> None:
        for key in keys:
            self._output.done(TreeAction("delete", None, s3_url(self._bucket, key)))

    def _refused(self, key: str, code: str, message: str) -> None:
        url = s3_url(self._bucket, key)
        self._output.done(TreeAction("delete", None, url, error=TreeFailure(url, code, message)))


def _selection(args: argparse.Namespace, url: S3Url) -> Selection:
    return select(url, args.include, args.exclude)


def _no_filters(args: argparse.Namespace, what: str) -> None:
    """UsageError for --include or --exclude written out where they would choose nothing.

    (Those a line of ``run`` inherits from the run are defaults: used where they apply.)
    """
    if args.given & {"include", "exclude"}:
        raise UsageError(f"--include and --exclude choose among many keys or files, and {what}: add -r")


def _headers(args: argparse.Namespace) -> Optional[dict[str, str]]:
    return {"Content-Type": args.content_type} if args.content_type else None


def _s3(text: str) -> S3Url:
    location = parse(text)
    if not isinstance(location, S3Url):
        raise UsageError(f"expected an s3:// URL, not {text!r}")
    return location


def _s3_key(text: str) -> S3Url:
    url = _s3(text)
    if url.is_folder:
        raise UsageError(f"expected s3://bucket/key, not {text!r}")
    return url


def _connect(args: argparse.Namespace) -> s3po.Connection:
    import boto3

    session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
    options: dict[str, Any] = {}
    if args.endpoint_url:
        options["endpoint_url"] = args.endpoint_url
    if args.retries is not None:
        options["retries"] = args.retries
    return s3po.Connection(session, max_connections=args.jobs, workers=args.part_workers, **options)
