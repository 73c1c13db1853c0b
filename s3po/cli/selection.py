"""Which keys an ``s3://`` URL names, with ``--include`` / ``--exclude``: one rule for every command.

``rm -r``, ``du``, ``ls -r`` and the tree commands (``cp -r``, ``mv -r``, ``sync``) all
choose keys the same way. A URL without a wildcard names a folder (``s3://b/logs``
means everything under ``logs/``, never ``logs-archive/``). A URL with a wildcard
lists only from its literal part (``logs/2026-`` for ``logs/2026-*.gz``), and the
wildcard must match the rest of each key, relative to the folder it sits in. The
patterns of ``--include`` and ``--exclude`` match that same relative path, and they
narrow the wildcard's choice, never widen it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

from ..records import Key
from ..treepaths import Filter, folder_prefix
from .urls import S3Url, has_wildcard, literal_prefix

if TYPE_CHECKING:
    from ..connection import Connection

__all__ = ["Selection", "select"]


@dataclass(frozen=True)
class Selection:
    """The keys of ``bucket`` listed from ``list_from`` whose path relative to ``folder``
    matches ``pattern`` (the wildcard, if any) and the include and exclude patterns."""

    bucket: str
    folder: str  # "" or ending with "/"
    list_from: str  # the folder, or the literal part of a wildcard below it
    pattern: Optional[str]
    include: Optional[Sequence[str]] = None
    exclude: Optional[Sequence[str]] = None
    wanted: Filter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "wanted", Filter(self.include, self.exclude, pattern=self.pattern))

    @property
    def whole_bucket(self) -> bool:
        """True when every key of the bucket may be chosen: nothing literal narrows the listing."""
        return self.list_from == ""

    def keys(self, conn: "Connection") -> Iterator[Key]:
        for record in conn.objects(self.bucket, self.list_from):
            relative = record.key[len(self.folder):]
            # A folder marker ("a/") is matched by its name, as trees match it.
            if self.wanted(relative[:-1] if relative.endswith("/") else relative):
                yield record


def select(url: S3Url, include: Optional[Sequence[str]] = None,
           exclude: Optional[Sequence[str]] = None) -> Selection:
    if has_wildcard(url.key):
        literal = literal_prefix(url.key)
        folder = literal[:literal.rfind("/") + 1]
        return Selection(url.bucket, folder, literal, url.key[len(folder):], include, exclude)
    folder = folder_prefix(url.key)
    return Selection(url.bucket, folder, folder, None, include, exclude)
