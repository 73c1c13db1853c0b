"""Keys <-> relative paths of a tree, and the rules that keep downloads inside their folder.

A tree's key is the prefix (a folder: it ends with "/" unless empty) plus the relative
path with "/" separators. Going the other way, a key's relative part becomes a path
only when every component is a plain name: nothing absolute, no "." or "..", no empty
component, no NUL, no component longer than a file name may be.
"""

from __future__ import annotations

import fnmatch
import os
import re
from typing import Iterable, Optional

__all__ = ["MAX_NAME_BYTES", "Filter", "check_apart", "folder_prefix", "inside", "join_key", "unsafe_reason"]

MAX_NAME_BYTES = 255  # NAME_MAX of every common file system
# Separators of this platform's paths other than "/" (a backslash on Windows): in a key they are
# plain characters, but joined onto a folder they would split the name.
OTHER_SEPARATORS = tuple(sep for sep in (os.sep, os.altsep) if sep and sep != "/")


def folder_prefix(prefix: str) -> str:
    """``prefix`` as a folder: "data" and "data/" both mean the folder "data/"; "" is the root."""
    if prefix and not prefix.endswith("/"):
        return prefix + "/"
    return prefix


def join_key(prefix: str, relative: str) -> str:
    return prefix + relative


def check_apart(src_bucket: str, src_prefix: str, dst_bucket: str, dst_prefix: str) -> None:
    """ValueError when, in one bucket, one folder prefix holds the other (or they are the same).

    A copy into a prefix inside its source would list (and copy again) its own copies;
    a copy onto a prefix holding its source would make a sync of the destination see
    the source's keys as its own.
    """
    src_prefix, dst_prefix = folder_prefix(src_prefix), folder_prefix(dst_prefix)
    if src_bucket == dst_bucket and src_prefix == dst_prefix:
        raise ValueError(f"cannot copy s3://{src_bucket}/{src_prefix} onto itself: give another bucket or prefix")
    if src_bucket == dst_bucket and (src_prefix.startswith(dst_prefix) or dst_prefix.startswith(src_prefix)):
        raise ValueError(f"cannot copy s3://{src_bucket}/{src_prefix} to s3://{dst_bucket}/{dst_prefix}: "
                         "one is inside the other")


def unsafe_reason(relative: str) -> Optional[str]:
    """Why ``relative`` (a key less its prefix) must not become a path, or None if it may.

    A trailing "/" (a folder marker) is allowed: it names a folder.
    """
    if not relative:
        return "empty name"
    if "\x00" in relative:
        return "NUL in the name"
    if relative.startswith("/") or (os.name == "nt" and re.match(r"^([A-Za-z]:|\\\\)", relative)):
        return "absolute path"
    body = relative[:-1] if relative.endswith("/") else relative
    for part in body.split("/"):
        if part == "":
            return "empty path component"
        if part in (".", ".."):
            return f"'{part}' path component"
        if any(sep in part for sep in OTHER_SEPARATORS):
            return "a path separator of this system inside a name"
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            return f"path component longer than {MAX_NAME_BYTES} bytes"
    return None


def inside(root_real: str, path: str) -> bool:
    """True when ``path``'s folder, symlinks resolved, is ``root_real`` or below it.

    ``root_real`` is the target folder's realpath. The file itself may be a symlink:
    downloads replace a file by renaming over it, which never follows a link.
    """
    folder = os.path.realpath(os.path.dirname(path))
    return folder == root_real or folder.startswith(root_real.rstrip(os.sep) + os.sep)


class Filter:
    """``include=`` / ``exclude=`` glob patterns on relative paths; exclude wins.

    Patterns match the whole relative path with "/" separators; ``*`` also crosses
    "/", as in ``aws s3``. No include patterns means everything is included.
    ``pattern`` (a wildcard's part after its folder, on the command line) must match
    as well: it narrows what the includes choose, never widens it.
    """

    def __init__(self, include: Optional[Iterable[str]] = None, exclude: Optional[Iterable[str]] = None, *,
                 pattern: Optional[str] = None) -> None:
        self._include = _compiled("include", include)
        self._exclude = _compiled("exclude", exclude)
        self._pattern = _compiled("pattern", pattern)

    def __call__(self, relative: str) -> bool:
        if self.excludes(relative):
            return False
        if self._pattern is not None and not self._pattern.match(relative):
            return False
        return self._include is None or bool(self._include.match(relative))

    def excludes(self, relative: str) -> bool:
        """True when an exclude pattern matches ``relative``."""
        return self._exclude is not None and bool(self._exclude.match(relative))


def _compiled(name: str, patterns: Optional[Iterable[str]]) -> Optional["re.Pattern[str]"]:
    if patterns is None:
        return None
    if isinstance(patterns, str):
        patterns = [patterns]
    listed = list(patterns)
    for pattern in listed:
        if not isinstance(pattern, str):
            raise TypeError(f"{name} must be glob patterns (str), not {type(pattern).__name__}")
    if not listed:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in listed))
