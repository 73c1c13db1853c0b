"""Where a key of a job lands on disk, and the keys that must never land anywhere.

The rule is the trees' (treepaths.unsafe_reason and inside): one rule for every
download of many keys.
"""

from __future__ import annotations

import os

from ..treepaths import folder_prefix, inside, unsafe_reason

__all__ = ["UnsafeKey", "local_path"]


class UnsafeKey(ValueError):
    """A key whose name would put its file outside the target folder, or nowhere sane."""


def local_path(root: str, prefix: str, key: str) -> str:
    """The file for ``key`` under ``root``: its name after ``prefix`` (a folder: "data"
    means "data/"), "/" as the separator.

    Refused (UnsafeKey): a key not under ``prefix``; names that are absolute, have an
    empty, "." or ".." segment (``a//b``, ``/etc``, ``../x``), a NUL, this system's
    other path separator, or a segment over 255 bytes; a folder marker (a key ending
    in "/": it has no file); and any path that symbolic links already on disk would
    lead outside ``root``.
    """
    prefix = folder_prefix(prefix)
    if not key.startswith(prefix):
        raise UnsafeKey(f"key {key!r} is not under the prefix {prefix!r}")
    relative = key[len(prefix):]
    reason = unsafe_reason(relative) or ("a folder marker, not a file" if relative.endswith("/") else None)
    if reason is not None:
        raise UnsafeKey(f"key {key!r} cannot be a file under {root!r}: {reason}")
    path = os.path.join(root, *relative.split("/"))
    if not inside(os.path.realpath(root), path):
        raise UnsafeKey(f"key {key!r} would be written outside {root!r} (through a symbolic link)")
    return path
