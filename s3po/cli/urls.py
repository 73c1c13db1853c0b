"""The command line's locations: ``s3://bucket/key`` URLs, local paths, ``-`` for a pipe."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from ..arguments import parse_s3_url

__all__ = ["Local", "Location", "S3Url", "Stdio", "UsageError", "has_wildcard", "literal_prefix", "parse"]

WILDCARD = re.compile(r"[*?\[]")


class UsageError(Exception):
    """A command line that cannot be run as written (exit status 2)."""


@dataclass(frozen=True)
class S3Url:
    bucket: str
    key: str  # "" for the whole bucket

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def is_folder(self) -> bool:
        return self.key == "" or self.key.endswith("/")


@dataclass(frozen=True)
class Local:
    path: str

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True)
class Stdio:
    """``-``: standard input as a source, standard output as a destination."""

    def __str__(self) -> str:
        return "-"


Location = Union[S3Url, Local, Stdio]


def parse(text: str) -> Location:
    """A location from the command line; UsageError for a malformed ``s3:`` URL."""
    if text == "-":
        return Stdio()
    if not text.lower().startswith("s3:"):
        return Local(text)
    try:
        bucket, key = parse_s3_url(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return S3Url(bucket, key)


def has_wildcard(key: str) -> bool:
    return WILDCARD.search(key) is not None


def literal_prefix(key: str) -> str:
    """The part of ``key`` before its first wildcard: what can be listed."""
    found = WILDCARD.search(key)
    return key if found is None else key[:found.start()]
