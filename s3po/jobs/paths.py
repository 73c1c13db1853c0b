"""Where a key lands on disk, and the keys that must never land anywhere.

One small function, so that it can give way to a shared key-to-path rule.
"""

from __future__ import annotations

import os

__all__ = ["UnsafeKey", "local_path"]


class UnsafeKey(ValueError):
    """A key whose name would put its file outside the target folder, or nowhere sane."""


def local_path(root: str, prefix: str, key: str) -> str:
    """The file for ``key`` under ``root``: its name after ``prefix``, "/" as the separator.

    Refused (UnsafeKey): names with an empty, "." or ".." segment (``a//b``, ``/etc``,
    ``../x``), a NUL, or the platform's other separator, and any path that symbolic
    links already on disk would lead outside ``root``. A folder marker (a key ending in
    "/") has no file: callers skip it before asking.
    """
    relative = key[len(prefix):] if key.startswith(prefix) else key
    parts = relative.split("/")
    bad = [part for part in parts if part in ("", ".", "..") or "\0" in part
           or (os.sep != "/" and os.sep in part) or (os.altsep is not None and os.altsep != "/" and os.altsep in part)]
    if not relative or bad:
        raise UnsafeKey(f"key {key!r} cannot be a file under {root!r}: its name has the segment(s) {bad!r}")
    path = os.path.join(root, *parts)
    real_root = os.path.realpath(root)
    real_parent = os.path.realpath(os.path.dirname(path))
    if os.path.commonpath([real_root, real_parent]) != real_root:
        raise UnsafeKey(f"key {key!r} would be written outside {root!r} (through a symbolic link)")
    return path
