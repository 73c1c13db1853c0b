"""The ``s3po`` command: parsing, the Connection it makes, and one function per command.

Exit status, one meaning each: 0 everything succeeded; 1 some operation failed (each
named on standard error, or in the JSON lines); 2 the command line is wrong; 130
interrupted (Ctrl-C): calls in flight are stopped, multipart uploads aborted,
temporary files removed, and a summary of what was done is printed.
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import os
import shlex
import sys
from typing import Any, Callable, Iterator, Optional, Sequence

import s3po

from .. import trees
from ..errors import S3POException
from ..records import Key, Prefix
from ..treeplan import COMPARES
from ..trees import TreeAction, TreeFailure, TreeReport
from .output import Output, human_bytes
from .urls import Local, Location, S3Url, Stdio, UsageError, has_wildcard, literal_prefix, parse

__all__ = ["main"]

OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130
COMMANDS = ("ls", "cp", "sync", "mv", "rm", "cat", "du", "stat", "mb", "run")
DEFAULT_MAX_DELETE = 1000
CHUNK = 1024 * 1024


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
    parser = parser or build_parser()
    namespace = copy.copy(base) if base is not None else argparse.Namespace()
    args = parser.parse_args(list(argv), namespace=namespace)
    for name, value in DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    return args


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
    except UsageError as exc:
        output.error(f"usage error: {exc}")
        return USAGE
    except KeyboardInterrupt:
        output.summary(interrupted=True)
        return INTERRUPTED
    except BrokenPipeError:
        _quiet_broken_pipe()
        return OK
    except (S3POException, OSError) as exc:
        output.error(_one_line(exc))
        return FAILED
    except Exception as exc:  # botocore's own: no credentials, a profile not found, a bad endpoint
        if type(exc).__module__.split(".")[0] in ("botocore", "boto3", "urllib3"):
            output.error(_one_line(exc))
            return FAILED
        raise
    return status


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    text = str(exc).strip() or type(exc).__name__
    line = text.splitlines()[0]
    if not isinstance(exc, S3POException) and type(exc).__name__ not in line:
        line = f"{type(exc).__name__}: {line}"
    return line


def _quiet_broken_pipe() -> None:
    # The reader went away (``s3po cat ... | head``): say nothing, and keep Python from
    # complaining when it flushes standard output at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


class App:
    """One invocation: its Connection, its output, and the commands."""

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
        for record in self._matching(url, recursive=True):
            count += 1
            total += record.size or 0
        self.output.result(f"{human_bytes(total)} ({total} bytes) in {count} objects: {url}",
                           {"url": str(url), "objects": count, "bytes": total})
        return OK

    def do_ls(self, args: argparse.Namespace) -> int:
        if args.url is None:
            for bucket in self.conn.client.list_buckets().get("Buckets", []):
                created = bucket.get("CreationDate")
                when = f"{created:%Y-%m-%d %H:%M:%S}" if created else ""
                self.output.result(f"{when}  s3://{bucket['Name']}", {"bucket": bucket["Name"],
                                                                       "created": str(created)})
            return OK
        url = _s3(args.url)
        if has_wildcard(url.key) or args.recursive:
            entries: Iterator[Any] = self._matching(url, recursive=True)
        else:
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

    def _matching(self, url: S3Url, recursive: bool) -> Iterator[Key]:
        """The objects ``url`` names: under its prefix, or matching its wildcard (listed
        from the literal part before the first wildcard)."""
        if not has_wildcard(url.key):
            yield from self.conn.objects(url.bucket, url.key)
            return
        for record in self.conn.objects(url.bucket, literal_prefix(url.key)):
            if fnmatch.fnmatchcase(record.key, url.key):
                yield record

    # -- rm --

    def do_rm(self, args: argparse.Namespace) -> int:
        url = _s3(args.url)
        if not url.key and not args.force:
            raise UsageError(f"rm {url} would delete every object in bucket {url.bucket}: add --force to do that")
        if not args.recursive and not has_wildcard(url.key):
            if not url.key or url.key.endswith("/"):
                raise UsageError(f"rm {url}: that is a prefix; add -r to delete everything under it")
            if args.dry_run:
                self.output.planned(TreeAction("delete", None, str(url)))
                return OK
            self.conn.delete(url.bucket, url.key)
            self.output.done(TreeAction("delete", None, str(url)))
            self.output.summary()
            return OK
        if args.dry_run:
            for record in self._matching(url, recursive=True):
                self.output.planned(TreeAction("delete", None, record.url))
            return OK
        failed = self._delete_keys(url.bucket, (record.key for record in self._matching(url, recursive=True)))
        self.output.summary()
        return FAILED if failed else OK

    def _delete_keys(self, bucket: str, keys: Iterator[str]) -> int:
        """Delete ``keys`` 1,000 a request, several requests at once; returns how many failed."""
        failed = 0
        chunk: list[str] = []

        def deleted(names: list[str]) -> Callable[[Any], None]:
            def report(_: Any) -> None:
                for name in names:
                    self.output.done(TreeAction("delete", None, f"s3://{bucket}/{name}"))
            return report

        with self.conn.batch(max(1, min(self.args.jobs, 16)), keep_results=False) as batch:
            for key in keys:
                chunk.append(key)
                if len(chunk) == 1000:
                    batch.delete_many(bucket, chunk, callback=deleted(chunk))
                    chunk = []
            if chunk:
                batch.delete_many(bucket, chunk, callback=deleted(chunk))
            batch.wait()
            for error in batch.take_errors():
                refused = getattr(error.exception, "failed", None) or [(None, error.exception, None)]
                for key, code, message in refused:
                    failed += 1
                    what = f"s3://{bucket}/{key}" if key else f"s3://{bucket}/"
                    self.output.done(TreeAction("delete", None, what, error=TreeFailure(
                        what, str(code) if key else None, message or _one_line(error.exception))))
        return failed

    # -- cp, mv, sync --

    def do_cp(self, args: argparse.Namespace) -> int:
        return self._transfer(args, move=False, sync=False)

    def do_mv(self, args: argparse.Namespace) -> int:
        return self._transfer(args, move=True, sync=False)

    def do_sync(self, args: argparse.Namespace) -> int:
        return self._transfer(args, move=False, sync=True)

    def _transfer(self, args: argparse.Namespace, *, move: bool, sync: bool) -> int:
        source, destination = parse(args.source), parse(args.destination)
        if args.delete and not sync:
            raise UsageError("--delete is for sync")
        if isinstance(source, Stdio) or isinstance(destination, Stdio):
            if sync or move or args.recursive:
                raise UsageError(f"{args.command} does not take '-'; cp does")
            return self._pipe(source, destination)
        if isinstance(source, Local) and isinstance(destination, Local):
            raise UsageError("one of SRC and DST must be an s3:// URL")
        whole = sync or args.recursive
        if isinstance(source, S3Url) and has_wildcard(source.key):
            if sync:
                raise UsageError("sync takes no wildcards; use --include/--exclude")
            whole = True
        elif not whole:
            return self._one(source, destination, move)
        return self._tree(source, destination, move=move, sync=sync)

    def _pipe(self, source: Location, destination: Location) -> int:
        if isinstance(source, Stdio) and isinstance(destination, S3Url):
            if destination.is_folder:
                raise UsageError(f"cp - needs a key to write to, not {destination}")
            stored = self.conn.upload(destination.bucket, destination.key, sys.stdin.buffer,
                                      compress=self.args.compress, headers=self._headers(),
                                      progress=self.output.bytes_progress)
            self.output.done(TreeAction("upload", "-", str(destination), stored.size))
        elif isinstance(source, S3Url) and isinstance(destination, Stdio):
            self.do_cat(argparse.Namespace(url=str(source)))
            return OK
        else:
            raise UsageError("'-' goes with an s3:// URL on the other side")
        self.output.summary()
        return OK

    def _one(self, source: Location, destination: Location, move: bool) -> int:
        """One file or one key, to a file, a key, or into a folder or prefix."""
        args, conn, output = self.args, self.conn, self.output
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
            conn.upload_file(destination.bucket, key, source.path, compress=args.compress, headers=self._headers(),
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

    def _tree(self, source: Location, destination: Location, *, move: bool, sync: bool) -> int:
        args, conn, output = self.args, self.conn, self.output
        include = list(args.include or [])
        list_from: Optional[str] = None
        if isinstance(source, S3Url) and has_wildcard(source.key):
            literal = literal_prefix(source.key)
            folder = literal[:literal.rfind("/") + 1]
            include.append(source.key[len(folder):])
            list_from = literal
            source = S3Url(source.bucket, folder)
        max_delete = None if args.force else (args.max_delete if args.max_delete is not None else DEFAULT_MAX_DELETE)
        moved = _Mover(conn, output) if move else None
        progress = output.tree_progress if moved is None else moved.progress
        options = trees.check_options(conn, include or None, args.exclude, sync, args.compare, args.delete,
                                      args.dry_run, progress, args.jobs, max_delete if args.delete else None)
        if isinstance(source, Local):
            assert isinstance(destination, S3Url)
            if not os.path.isdir(source.path):
                raise UsageError(f"{source.path} is not a folder")
            report = trees.upload_tree(conn, destination.bucket, destination.key, source.path, options,
                                       headers=self._headers(), compress=args.compress)
        elif isinstance(destination, Local):
            assert isinstance(source, S3Url)
            report = trees.download_tree(conn, source.bucket, source.key, destination.path, options,
                                         decompress=True, list_from=list_from)
        else:
            assert isinstance(source, S3Url) and isinstance(destination, S3Url)
            report = trees.copy_tree(conn, source.bucket, source.key, destination.bucket, destination.key, options,
                                     list_from=list_from)
        if moved is not None:
            moved.finish()
        return self._ended(report)

    def _ended(self, report: TreeReport) -> int:
        for action in report.planned:
            self.output.planned(action)
        if report.deletes_refused:
            self.output.error(
                f"refused to delete {report.deletes_refused} objects: more than --max-delete "
                f"{self.args.max_delete if self.args.max_delete is not None else DEFAULT_MAX_DELETE}; "
                "add --force to delete them")
        if not report.dry_run:
            self.output.summary()
        return OK if report.ok and not self.output.tally.failed else FAILED

    def _headers(self) -> Optional[dict[str, str]]:
        return {"Content-Type": self.args.content_type} if self.args.content_type else None

    # -- run --

    def do_run(self, args: argparse.Namespace) -> int:
        import gevent.pool

        source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")
        with source:
            lines = [(number, line.strip()) for number, line in enumerate(source, 1)]
        commands = []
        base = copy.copy(args)
        for name in ("command", "file", "url", "source", "destination"):
            if hasattr(base, name):
                delattr(base, name)
        for number, line in lines:
            if not line or line.startswith("#"):
                continue
            try:
                words = shlex.split(line)
                if words and words[0] == "s3po":
                    words = words[1:]
                if words and words[0] == "run":
                    raise UsageError("run cannot run run")
                line_args = parse_arguments(words, self.parser, base)
                for name in ("url", "source", "destination"):  # bad URLs stop the run before it starts
                    if getattr(line_args, name, None) is not None:
                        parse(getattr(line_args, name))
                commands.append((number, line, line_args))
            except (UsageError, ValueError) as exc:
                raise UsageError(f"{args.file}, line {number}: {exc}") from None
        failures = [0]

        def one(number: int, line: str, line_args: argparse.Namespace) -> None:
            try:
                status = self.dispatch(line_args)
            except UsageError as exc:
                self.output.error(f"line {number}: {line}: {exc}")
                status = FAILED
            except (S3POException, OSError) as exc:
                self.output.error(f"line {number}: {_one_line(exc)}")
                status = FAILED
            if status != OK:
                failures[0] += 1

        # The commands quiet their own summaries: the run prints one for all.
        summary, self.output.summary = self.output.summary, lambda **_: None  # type: ignore[method-assign]
        try:
            pool = gevent.pool.Pool(max(1, args.jobs))
            for number, line, line_args in commands:
                pool.spawn(one, number, line, line_args)
            pool.join(raise_error=True)
        finally:
            self.output.summary = summary  # type: ignore[method-assign]
        self.output.summary()
        return FAILED if failures[0] or self.output.tally.failed else OK


class _Mover:
    """mv of a tree: each source that arrived is deleted (keys 1,000 a request, at the end)."""

    def __init__(self, conn: s3po.Connection, output: Output) -> None:
        self._conn = conn
        self._output = output
        self._keys: dict[str, list[str]] = {}

    def progress(self, snapshot: trees.TreeProgress) -> None:
        event = snapshot.event
        self._output.tree_progress(snapshot)
        if event is None or event.error is not None or event.action not in ("upload", "download", "copy"):
            return
        source = event.source or ""
        if source.startswith("s3://"):
            bucket, _, key = source[len("s3://"):].partition("/")
            self._keys.setdefault(bucket, []).append(key)
        else:
            os.remove(source)

    def finish(self) -> None:
        for bucket, keys in self._keys.items():
            for start in range(0, len(keys), 1000):
                self._conn.delete_many(bucket, keys[start:start + 1000])


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
