"""A file that appears at its path complete, or not at all.

Written beside the target under a temporary name and renamed into place once done;
on any failure (an exception, Ctrl-C, a cancelled batch) the temporary files are
removed, the folders made for it too, and whatever was at the path stays as it was.
Downloads land this way, and so do the files of a job (its ledger, its report).
"""

from __future__ import annotations

import errno
import os
import secrets
import threading
from typing import IO, Any, Optional

from .treepaths import MAX_NAME_BYTES

__all__ = ["AtomicFile", "temporary_name"]

TEMPORARY_SUFFIX = ".s3po-part"

# Folders made for downloads and not yet known to hold a finished file. Several
# downloads may share one (a batch into a new folder): whichever fails last finds it
# empty and removes it, whoever made it.
_made_folders: set[str] = set()
_made_folders_lock = threading.Lock()


class AtomicFile:
    """``with AtomicFile(path) as target:`` write ``target.file``; it becomes ``path`` at the end.

    ``replacement()`` opens another temporary file to write a transformed version
    (decompressed bytes, say) that becomes ``path`` instead. Errors about the target
    (a folder there, a file where a parent folder should be) name ``path`` and are
    raised before anything is written.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._folder, self._name = os.path.split(os.path.abspath(path))
        self._temporaries: list[str] = []
        self._files: list[IO[bytes]] = []

    @property
    def file(self) -> IO[bytes]:
        return self._files[-1]

    def __enter__(self) -> "AtomicFile":
        if os.path.isdir(self.path):
            raise IsADirectoryError(errno.EISDIR, "a folder is where the file would go", self.path)
        try:
            _make_folders(self._folder)
        except (FileExistsError, NotADirectoryError) as exc:
            raise NotADirectoryError(
                errno.ENOTDIR, f"a parent of the target is a file, not a folder ({exc.filename})", self.path
            ) from exc
        try:
            self._open("r+b", os.O_RDWR)
        except BaseException:
            self._clean_up()
            raise
        return self

    def replacement(self) -> IO[bytes]:
        """A new temporary file that replaces the current one as the result."""
        return self._open("wb", os.O_WRONLY)

    def _open(self, mode: str, flags: int) -> IO[bytes]:
        temporary = os.path.join(self._folder, temporary_name(self._name))
        try:
            # os.open honours the umask, so the final file gets the usual permissions.
            fd = os.open(temporary, flags | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot write beside the target: {exc.strerror}", self.path) from exc
        self._temporaries.append(temporary)
        handle = os.fdopen(fd, mode)
        self._files.append(handle)
        return handle

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self._clean_up()
            return
        try:
            for handle in self._files:
                handle.close()
            os.replace(self._temporaries[-1], self.path)
            self._temporaries.pop()
        except BaseException:
            self._clean_up()
            raise
        for temporary in self._temporaries:
            _remove_quietly(temporary)
        with _made_folders_lock:
            folder = self._folder
            while folder in _made_folders:  # it holds a finished file now: it stays
                _made_folders.discard(folder)
                folder = os.path.dirname(folder)

    def _clean_up(self) -> None:
        for handle in self._files:
            try:
                handle.close()
            except OSError:
                pass
        for temporary in self._temporaries:
            _remove_quietly(temporary)
        folder = self._folder
        while True:
            with _made_folders_lock:
                if folder not in _made_folders:
                    return
                try:
                    os.rmdir(folder)
                except OSError:
                    return  # other downloads' files (or temporary files) are in it
                _made_folders.discard(folder)
            folder = os.path.dirname(folder)


def temporary_name(name: str) -> str:
    """``.{name}.{random}.s3po-part``, with ``name`` cut short (by whole characters)
    where the whole would pass the longest name a file system takes."""
    tag = secrets.token_hex(6)
    room = MAX_NAME_BYTES - len(f"..{tag}{TEMPORARY_SUFFIX}")
    while len(os.fsencode(name)) > room:
        name = name[:-1]
    return f".{name}.{tag}{TEMPORARY_SUFFIX}"


def _make_folders(folder: str) -> None:
    """Create ``folder`` and missing parents, noting those made for downloads."""
    missing = []
    current: Optional[str] = folder
    while current and not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    created = []
    for path in reversed(missing):
        try:
            os.mkdir(path)
            created.append(path)
        except FileExistsError:
            if not os.path.isdir(path):
                raise
    with _made_folders_lock:
        _made_folders.update(created)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
