"""A folder's files as a stream sorted the way S3 lists keys (UTF-8 bytes of the relative path).

Each folder's entries are sorted with folders compared as ``name + "/"``: then every
file below a folder sorts between the folder's neighbours, and a depth-first walk
comes out in global byte order while holding one folder's listing per level, never
the whole tree.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Iterator, Optional

__all__ = ["LocalFile", "Unreadable", "walk"]


@dataclass(frozen=True)
class LocalFile:
    """A regular file of the tree: its relative path ("/" separators), path, size, mtime."""

    relative: str
    path: str
    size: int
    mtime: float


@dataclass(frozen=True)
class Unreadable:
    """An entry that cannot be part of the tree (a name that is not UTF-8, a folder that
    cannot be read); reported as a failure, in its place in the order."""

    relative: str
    path: str
    reason: str


def walk(root: str) -> Iterator["LocalFile | Unreadable"]:
    """Every regular file under ``root`` (symlinks to files followed, symlinks to folders not
    entered, so a link loop cannot trap the walk), in S3's order."""
    yield from _walk(root, "")


def _walk(folder: str, relative_folder: str) -> Iterator["LocalFile | Unreadable"]:
    try:
        with os.scandir(folder) as found:
            entries = list(found)
    except OSError as exc:
        if relative_folder:
            yield Unreadable(relative_folder, folder, f"cannot read folder: {exc.strerror}")
            return
        raise
    listed: list[tuple[bytes, os.DirEntry[str], bool]] = []
    for entry in entries:
        is_folder = _is_real_folder(entry)
        name = os.fsencode(entry.name)
        listed.append((name + b"/" if is_folder else name, entry, is_folder))
    listed.sort(key=lambda item: item[0])
    del entries
    for _, entry, is_folder in listed:
        relative = relative_folder + entry.name
        if not _is_utf8(entry.name):
            yield Unreadable(os.fsdecode(os.fsencode(relative)), entry.path, "name is not valid UTF-8")
            continue
        if is_folder:
            yield from _walk(entry.path, relative + "/")
            continue
        info = _file_stat(entry)
        if info is not None:
            yield LocalFile(relative, entry.path, info.st_size, info.st_mtime)


def _is_real_folder(entry: "os.DirEntry[str]") -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _file_stat(entry: "os.DirEntry[str]") -> Optional[os.stat_result]:
    """The stat of a regular file, or of the file a symlink points at; None for anything else."""
    try:
        info = entry.stat(follow_symlinks=True)
    except OSError:
        return None  # a dangling symlink, or a file gone meanwhile
    return info if stat.S_ISREG(info.st_mode) else None


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
