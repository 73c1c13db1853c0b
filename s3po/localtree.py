"""A folder's files as a stream sorted the way S3 lists keys (UTF-8 bytes of the relative path).

Each folder's entries are sorted with folders compared as ``name + "/"``: then every
file below a folder sorts between the folder's neighbours, and a depth-first walk
comes out in global byte order while holding one folder's listing per level, never
the whole tree (a single folder's listing is held whole, to be sorted).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Iterator, Optional

from .treeplan import sort_key

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
    """An entry that cannot be part of the tree, reported as a failure in its place in the
    order: a name that is not UTF-8 (code NotUTF8), a folder that cannot be read
    (Unreadable), a symlink to a folder (Symlink). ``folder``: it is a folder (its
    relative path ends with "/"), whose contents are not known."""

    relative: str
    path: str
    reason: str
    code: str = "Unreadable"
    folder: bool = False


def walk(root: str) -> Iterator["LocalFile | Unreadable"]:
    """Every regular file under ``root``, in S3's order. Symlinks to files are followed;
    symlinks to folders are not entered (a link loop cannot trap the walk): each is
    reported, so that nothing below it is taken for gone."""
    yield from _walk(root, "")


def _walk(folder: str, relative_folder: str) -> Iterator["LocalFile | Unreadable"]:
    try:
        with os.scandir(folder) as found:
            entries = list(found)
    except OSError as exc:
        if relative_folder:
            yield Unreadable(relative_folder, folder, f"cannot read folder: {exc.strerror}", folder=True)
            return
        raise
    listed: list[tuple[bytes, os.DirEntry[str], str]] = []
    for entry in entries:
        kind = _kind(entry)
        name = entry.name + "/" if kind != "file" else entry.name
        listed.append((sort_key(name), entry, kind))
    listed.sort(key=lambda item: item[0])
    del entries
    for _, entry, kind in listed:
        relative = relative_folder + entry.name + ("/" if kind != "file" else "")
        if not _is_utf8(entry.name):
            yield Unreadable(relative, entry.path, "name is not valid UTF-8", "NotUTF8", folder=kind != "file")
        elif kind == "folder":
            yield from _walk(entry.path, relative)
        elif kind == "linked folder":
            yield Unreadable(relative, entry.path, "a symlink to a folder: not followed", "Symlink", folder=True)
        else:
            info = _file_stat(entry)
            if info is not None:
                yield LocalFile(relative, entry.path, info.st_size, info.st_mtime)


def _kind(entry: "os.DirEntry[str]") -> str:
    """"folder", "linked folder" (a symlink to one) or "file" (anything else, looked at later)."""
    try:
        if entry.is_dir(follow_symlinks=False):
            return "folder"
        if entry.is_symlink() and entry.is_dir(follow_symlinks=True):
            return "linked folder"
    except OSError:
        pass
    return "file"


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
