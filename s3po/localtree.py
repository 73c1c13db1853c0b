"""A folder's files as a stream sorted the way S3 lists keys (UTF-8 bytes of the relative path).

Each folder's entries are sorted with folders compared as ``name + "/"``: then every
file below a folder sorts between the folder's neighbours, and a depth-first walk
comes out in global byte order while holding one folder's listing per level, never
the whole tree (a single folder's listing is held whole, to be sorted).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Iterator

from .treeplan import Bad, Entry, Item, sort_key

__all__ = ["walk"]


def walk(root: str) -> Iterator[Entry]:
    """Every regular file under ``root`` as an Item (its path as location), in S3's order.

    What cannot be part of the tree comes as a Bad in its place in the order: a name
    that is not UTF-8 (code NotUTF8), a folder or file that cannot be looked at
    (Unreadable), a symlink to a folder (Symlink, a notice: symlinks to files are
    followed, to folders not, so a link loop cannot trap the walk). A folder among them,
    whose contents are not known, is a fence, so that nothing below it is taken for gone.
    """
    yield from _walk(root, "")


def _walk(folder: str, relative_folder: str) -> Iterator[Entry]:
    try:
        with os.scandir(folder) as found:
            entries = list(found)
    except OSError as exc:
        if relative_folder:
            yield Bad(relative_folder, folder, f"cannot read folder: {exc.strerror}", "Unreadable", fence=True)
            return
        raise
    listed: "list[tuple[bytes, os.DirEntry[str], str | OSError]]" = []
    for entry in entries:
        kind = _kind(entry)
        name = entry.name + "/" if kind in FOLDERS else entry.name
        listed.append((sort_key(name), entry, kind))
        if isinstance(kind, OSError):
            # Neither a file nor a folder for sure: reported under its bare name (which
            # keeps an object of that name), and fenced as a folder too, in that place in
            # the order (right before what it would hold), so that a sync deletes nothing
            # below it either.
            listed.append((sort_key(entry.name + "/"), entry, UNKNOWN_FOLDER))
    listed.sort(key=lambda item: item[0])
    del entries
    for _, entry, kind in listed:
        relative = relative_folder + entry.name + ("/" if kind in FOLDERS else "")
        if kind == UNKNOWN_FOLDER:
            yield Bad(relative + "/", entry.path, "its kind is not known", "Unreadable", fence=True, said="nothing")
        elif not _is_utf8(entry.name):
            yield Bad(relative, entry.path, "name is not valid UTF-8", "NotUTF8", fence=kind in FOLDERS)
        elif isinstance(kind, OSError):
            yield Bad(relative, entry.path, f"cannot look at it: {kind.strerror}", "Unreadable")
        elif kind == "folder":
            yield from _walk(entry.path, relative)
        elif kind == "linked folder":
            yield Bad(relative, entry.path, "a symlink to a folder", "Symlink", fence=True, said="notice")
        else:
            info = _file_stat(entry)
            if isinstance(info, OSError):
                yield Bad(relative, entry.path, f"cannot look at it: {info.strerror}", "Unreadable")
            elif info is not None:
                yield Item(relative, entry.path, info.st_size, info.st_mtime)


FOLDERS = ("folder", "linked folder")
UNKNOWN_FOLDER = "unknown folder"  # the fence of an entry whose kind is not known


def _kind(entry: "os.DirEntry[str]") -> "str | OSError":
    """"folder", "linked folder" (a symlink to one), "file" (anything else, looked at
    later), or the error that kept the entry from being looked at."""
    try:
        if entry.is_dir(follow_symlinks=False):
            return "folder"
        if entry.is_symlink() and entry.is_dir(follow_symlinks=True):
            return "linked folder"
    except OSError as exc:
        if not _gone(exc):
            return exc
    return "file"


def _file_stat(entry: "os.DirEntry[str]") -> "os.stat_result | OSError | None":
    """The stat of a regular file, or of the file a symlink points at; None for anything
    that is not a regular file or is gone; the error when it cannot be looked at."""
    try:
        info = entry.stat(follow_symlinks=True)
    except OSError as exc:
        return None if _gone(exc) else exc
    return info if stat.S_ISREG(info.st_mode) else None


def _gone(exc: OSError) -> bool:
    """The entry is not there to be looked at: gone meanwhile, a dangling symlink, or a
    symlink loop. Any other error (no permission) hides an entry that may exist."""
    return isinstance(exc, FileNotFoundError) or exc.errno == errno.ELOOP


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
