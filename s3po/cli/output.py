"""What the command line shows: one-line errors, JSON lines, progress, the summary."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Any, Optional, Union

from ..trees import TreeAction, TreeProgress

__all__ = ["Output", "Tally", "human_bytes"]

BAR_EVERY_S = 0.1
BAR_WIDTH = 24


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass(frozen=True)
class Listed:
    """How far a listing has gone (du, ls -r): objects and bytes seen so far."""

    objects: int
    bytes: int


@dataclass
class Tally:
    """Everything done so far, across all the operations of one invocation."""

    transferred: int = 0
    transferred_bytes: int = 0
    skipped: int = 0
    deleted: int = 0
    failed: int = 0
    not_followed: int = 0  # symlinks to folders a walk did not enter: notices, not failures

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class Output:
    """Standard output carries results (listings, bytes, JSON lines); standard error the rest.

    ``progress`` is "bar" (redrawn in place), "log" (a plain line every ``interval_s``) or
    "none"; "auto" means a bar on a terminal and plain lines otherwise.
    """

    def __init__(self, *, json_lines: bool, progress: str, quiet: bool, verbose: bool,
                 stdout: Optional[IO[str]] = None, stderr: Optional[IO[str]] = None) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.json_lines = json_lines
        self.quiet = quiet
        self.verbose = verbose
        if quiet:
            progress = "none"
        elif progress == "auto":
            progress = "bar" if self.stderr.isatty() else "log"
        self.progress = progress
        self.interval_s = float(os.environ.get("S3PO_PROGRESS_INTERVAL", "5"))
        self.tally = Tally()
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._last_shown = self.started if self.progress == "log" else 0.0
        self._bar_shown = False
        self._snapshot: Optional[Union[TreeProgress, Listed]] = None

    # -- lines --

    def error(self, message: str) -> None:
        """One line on standard error, always (even with -q)."""
        with self._lock:
            self._clear_bar()
            print(f"s3po: {message}", file=self.stderr, flush=True)

    def info(self, message: str) -> None:
        if not self.quiet:
            with self._lock:
                self._clear_bar()
                print(message, file=self.stderr, flush=True)

    def result(self, text: str, record: dict[str, Any]) -> None:
        """A result (a listing line, a stat): as text, or as a JSON line with --json."""
        with self._lock:
            self._clear_bar()
            if self.json_lines:
                print(json.dumps(record, default=str), file=self.stdout, flush=False)
            else:
                print(text, file=self.stdout, flush=False)

    # -- operations --

    def done(self, action: TreeAction) -> None:
        """One operation ended (successfully, skipped, or failed): count it and say so."""
        with self._lock:
            if action.error is not None:
                self.tally.failed += 1
            elif action.action == "skip":
                self.tally.skipped += 1
            elif action.action == "delete":
                self.tally.deleted += 1
            else:
                self.tally.transferred += 1
                self.tally.transferred_bytes += action.size or 0
        if action.error is not None:
            failure = action.error
            said = failure.message if failure.what in failure.message else \
                f"{action.action} {failure.what} failed: {failure.message}"
            self.error(said)
        if self.json_lines:
            record: dict[str, Any] = {"operation": action.action, "source": action.source,
                                      "destination": action.destination, "size": action.size,
                                      "ok": action.error is None}
            if action.error is not None:
                record.update(error=action.error.message, code=action.error.code)
            with self._lock:
                self._clear_bar()
                print(json.dumps(record), file=self.stdout, flush=True)
        elif self.verbose and action.error is None and action.action != "skip":
            with self._lock:
                self._clear_bar()
                arrow = f"{action.source} -> {action.destination}" if action.source else f"{action.destination}"
                print(f"{action.action}: {arrow}", file=self.stdout, flush=True)

    def not_followed(self, what: str, reason: str) -> None:
        """A symlink to a folder a walk did not enter: a notice (a JSON record with --json)."""
        with self._lock:
            self.tally.not_followed += 1
        if self.json_lines:
            with self._lock:
                self._clear_bar()
                print(json.dumps({"notice": "not followed", "path": what, "message": reason}),
                      file=self.stdout, flush=True)
        else:
            self.info(f"s3po: not followed: {what} ({reason}: nothing below it was copied or deleted)")

    def planned(self, action: TreeAction) -> None:
        """A step of a dry run."""
        if self.json_lines:
            print(json.dumps({"operation": action.action, "source": action.source,
                              "destination": action.destination, "size": action.size, "dry_run": True}),
                  file=self.stdout)
        else:
            arrow = f"{action.source} -> {action.destination}" if action.source else f"{action.destination}"
            print(f"(dry run) {action.action}: {arrow}", file=self.stdout)

    def tree_progress(self, snapshot: TreeProgress) -> None:
        """``progress=`` of a tree call: each event, then the display."""
        if snapshot.event is not None:
            self.done(snapshot.event)
        self._snapshot = snapshot
        self.show()

    def bytes_progress(self, done: int, total: Optional[int]) -> None:
        """``progress=`` of a single transfer."""
        self._snapshot = TreeProgress(0, 1, done, total or done, 0, 0, 0, True)
        self.show()

    def listing_progress(self, objects: int, nbytes: int) -> None:
        """A listing went on: ``objects`` and ``nbytes`` seen so far."""
        self._snapshot = Listed(objects, nbytes)
        self.show()

    def end_progress(self) -> None:
        """A command that prints no summary is done: the bar goes."""
        with self._lock:
            self._clear_bar()
            self.stderr.flush()

    # -- the display --

    def show(self, final: bool = False) -> None:
        if self.progress == "none":
            return
        now = time.monotonic()
        every = BAR_EVERY_S if self.progress == "bar" else self.interval_s
        if not final and now - self._last_shown < every:
            return
        self._last_shown = now
        text = self._progress_text(now)
        if text is None:
            return
        with self._lock:
            if self.progress == "bar":
                self.stderr.write("\r" + text + "\x1b[K")
                self._bar_shown = True
                if final:
                    self.stderr.write("\n")
                    self._bar_shown = False
            elif not final:
                self.stderr.write(f"progress: {text}\n")
            self.stderr.flush()

    def _progress_text(self, now: float) -> Optional[str]:
        snapshot = self._snapshot
        if snapshot is None:
            return None
        elapsed = max(now - self.started, 1e-6)
        if isinstance(snapshot, Listed):
            rate = snapshot.objects / elapsed
            return f"listed {snapshot.objects} objects, {human_bytes(snapshot.bytes)}, {rate:.0f}/s"
        rate = snapshot.bytes_done / elapsed
        more = "" if snapshot.planning_done else "+"
        left = snapshot.bytes_total - snapshot.bytes_done
        eta = _duration(left / rate) if rate > 0 and snapshot.planning_done else "?"
        share = snapshot.bytes_done / snapshot.bytes_total if snapshot.bytes_total else (
            1.0 if snapshot.planning_done and snapshot.objects_done >= snapshot.objects_total else 0.0)
        text = (f"{snapshot.objects_done}/{snapshot.objects_total}{more} objects, "
                f"{human_bytes(snapshot.bytes_done)}/{human_bytes(snapshot.bytes_total)}{more}, "
                f"{human_bytes(rate)}/s, ETA {eta}")
        if snapshot.skipped:
            text += f", {snapshot.skipped} skipped"
        if snapshot.failed:
            text += f", {snapshot.failed} failed"
        if self.progress == "bar":
            filled = int(BAR_WIDTH * min(1.0, share))
            text = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {text}"
        return text

    def _clear_bar(self) -> None:
        if self._bar_shown:
            self.stderr.write("\r\x1b[K")
            self._bar_shown = False

    # -- the end --

    def summary(self, *, interrupted: bool = False) -> None:
        self.show(final=True)
        seconds = time.monotonic() - self.started
        tally = self.tally
        if self.json_lines:
            record = {"summary": {**tally.as_dict(), "seconds": round(seconds, 3), "interrupted": interrupted}}
            print(json.dumps(record), file=self.stdout, flush=True)
            if not interrupted:
                return
        word = "interrupted after" if interrupted else "done in"
        line = (f"{word} {seconds:.1f} s: {tally.transferred} transferred "
                f"({human_bytes(tally.transferred_bytes)}), {tally.skipped} skipped, {tally.deleted} deleted, "
                f"{tally.failed} failed")
        if interrupted or not self.quiet:
            with self._lock:
                self._clear_bar()
                print(line, file=self.stderr, flush=True)
