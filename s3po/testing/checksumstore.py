"""What S3 does with checksums, for a proxy in front of a store that does nothing with them.

moto and rclone serve s3 neither verify ``x-amz-checksum-*`` on upload nor keep a
full-object checksum for every object; S3 does both. A proxy between a client and such
a store can behave like S3 with a ``ChecksumStore``:

- PutObject and UploadPart: the body's CRC is computed as it passes and compared with
  the ``x-amz-checksum-<crc>`` the request claims; a mismatch is refused with 400
  BadDigest (before the store sees it, where the proxy holds the body). The answer
  echoes the checksum. PutObject without one gets CRC64NVME, as S3 does by default.
- CreateMultipartUpload declares the algorithm and type (S3's default: CRC64NVME,
  FULL_OBJECT); CompleteMultipartUpload combines the parts' CRCs into the
  full-object one, compares it with the one the request claims, and answers with it.
- A whole GET or a HEAD with ``x-amz-checksum-mode: ENABLED`` gets the object's stored
  checksum; a ranged GET gets none (S3 returns none for ranges).

Objects are known by request path (path-style addressing); the last
CreateMultipartUpload of a path is the one its parts belong to. Only for tests and
benchmarks: it keeps what it learns in memory and trusts its client.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from ..checksums import Algorithm, Crc, available, combine_all

__all__ = ["Arrival", "ChecksumStore", "Refusal"]

Headers = Iterable[tuple[str, str]]

DEFAULT_ALGORITHM = "crc64nvme"  # what S3 computes for an upload that names none
_CHECKSUM_HEADER = re.compile(r"^x-amz-checksum-(crc64nvme|crc32c|crc32|sha1|sha256)$")


@dataclass(frozen=True)
class Refusal:
    """An answer in place of the store's: ``status`` with an S3 error ``code``."""

    status: int
    code: str
    message: str


@dataclass
class _Upload:
    algorithm: Algorithm
    kind: str  # FULL_OBJECT or COMPOSITE
    parts: dict[int, tuple[int, int]] = field(default_factory=dict)  # number -> (crc, size)


@dataclass(frozen=True)
class _Stored:
    algorithm: Algorithm
    value: str
    kind: str


class ChecksumStore:
    """The checksums of the objects and multipart uploads seen through one proxy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, _Stored] = {}
        self._uploads: dict[str, _Upload] = {}
        self.refused = 0  # uploads refused for a checksum that did not match

    def begin(self, method: str, path: str, query: str, headers: Headers) -> "Arrival":
        """A request arrives: feed its body to ``update``, then ask ``verdict``."""
        return Arrival(self, method.upper(), urllib.parse.unquote(path), urllib.parse.parse_qs(
            query, keep_blank_values=True), {name.lower(): value.strip() for name, value in headers})

    def stored(self, path: str) -> Optional[str]:
        """The full-object checksum kept for ``path``, base64, if any."""
        with self._lock:
            found = self._objects.get(urllib.parse.unquote(path))
        return found.value if found is not None else None


class Arrival:
    """One request passing through, and what S3 would make of it."""

    def __init__(self, store: ChecksumStore, method: str, path: str, query: dict[str, list[str]],
                 headers: dict[str, str]) -> None:
        self._store = store
        self._method = method
        self._path = path
        self._headers = headers
        self._upload_id = query.get("uploadId", [None])[0]
        number = query.get("partNumber", [None])[0]
        self._part = int(number) if number and number.isdigit() else None
        self._creates = method == "POST" and "uploads" in query
        self._completes = method == "POST" and self._upload_id is not None
        self._aborts = method == "DELETE" and self._upload_id is not None
        self._copy = "x-amz-copy-source" in headers
        self._claimed: Optional[tuple[Algorithm, str]] = None
        self._crc: Optional[Crc] = None
        self._verdict: Optional[Refusal] = None
        self._stored: Optional[_Stored] = None
        found = available()
        for name, value in headers.items():
            match = _CHECKSUM_HEADER.match(name)
            if match and match.group(1) in found:
                self._claimed = (found[match.group(1)], value)
        if method == "PUT" and not self._copy:
            if self._part is not None and self._upload_id is not None:
                with store._lock:
                    upload = store._uploads.get(path)
                algorithm = upload.algorithm if upload is not None else found.get(DEFAULT_ALGORITHM)
            else:
                algorithm = self._claimed[0] if self._claimed else found.get(DEFAULT_ALGORITHM)
            if self._claimed is not None and algorithm is not None and self._claimed[0] is not algorithm:
                algorithm = self._claimed[0]
            self._crc = Crc(algorithm) if algorithm is not None else None

    def update(self, chunk: Any) -> None:
        if self._crc is not None:
            self._crc.update(chunk)

    def verdict(self) -> Optional[Refusal]:
        """None when S3 would take the request; otherwise what it would answer instead."""
        if self._verdict is not None:
            return self._verdict
        if self._crc is not None and self._claimed is not None:
            algorithm, claimed = self._claimed
            if algorithm.encode(self._crc.value) != claimed:
                self._verdict = Refusal(400, "BadDigest", f"The {algorithm.declared} you specified did not match "
                                                          "the calculated checksum.")
        elif self._completes:
            self._verdict = self._complete()
        if self._verdict is not None:
            with self._store._lock:
                self._store.refused += 1
        return self._verdict

    def _complete(self) -> Optional[Refusal]:
        with self._store._lock:
            upload = self._store._uploads.get(self._path)
        if upload is None:
            return None
        value = combine_all(upload.algorithm, (upload.parts[number] for number in sorted(upload.parts)))
        whole = upload.algorithm.encode(value)
        if upload.kind != "FULL_OBJECT":
            return None  # a checksum of the parts' checksums: not emulated
        if self._claimed is not None and self._claimed[0] is upload.algorithm and self._claimed[1] != whole:
            return Refusal(400, "BadDigest", f"The {upload.algorithm.declared} you specified did not match the "
                                             "checksum of the parts.")
        self._stored = _Stored(upload.algorithm, whole, upload.kind)
        return None

    def answer_headers(self, status: int, headers: Headers) -> list[tuple[str, str]]:
        """The answer's headers as S3 would send them; records what a 2xx answer stored."""
        kept = [(name, value) for name, value in headers if not name.lower().startswith("x-amz-checksum-")]
        if not 200 <= status < 300:
            return kept
        store = self._store
        with store._lock:
            if self._creates:
                name = self._headers.get("x-amz-checksum-algorithm", DEFAULT_ALGORITHM).lower()
                algorithm = available().get(name)
                if algorithm is not None:
                    kind = self._headers.get("x-amz-checksum-type", "FULL_OBJECT").upper()
                    store._uploads[self._path] = _Upload(algorithm, kind)
                    kept += [("x-amz-checksum-algorithm", algorithm.declared), ("x-amz-checksum-type", kind)]
            elif self._method == "PUT" and self._crc is not None and self._part is not None:
                upload = store._uploads.get(self._path)
                if upload is not None:
                    upload.parts[self._part] = (self._crc.value, self._crc.length)
                if self._claimed is not None:
                    kept.append((self._crc.algorithm.header, self._crc.algorithm.encode(self._crc.value)))
            elif self._method == "PUT" and self._crc is not None:
                made = _Stored(self._crc.algorithm, self._crc.algorithm.encode(self._crc.value), "FULL_OBJECT")
                store._objects[self._path] = made
                kept += [(made.algorithm.header, made.value), ("x-amz-checksum-type", made.kind)]
            elif self._method == "PUT" and self._copy:
                store._objects.pop(self._path, None)  # its checksum is not known here
            elif self._completes and self._stored is not None:
                store._objects[self._path] = self._stored
                store._uploads.pop(self._path, None)
            elif self._aborts:
                store._uploads.pop(self._path, None)
            elif self._method == "DELETE":
                store._objects.pop(self._path, None)
            elif self._method in ("GET", "HEAD") and self._returns_checksum():
                stored = store._objects.get(self._path)
                if stored is not None:
                    kept += [(stored.algorithm.header, stored.value), ("x-amz-checksum-type", stored.kind)]
        return kept

    def _returns_checksum(self) -> bool:
        return (self._headers.get("x-amz-checksum-mode", "").upper() == "ENABLED" and "range" not in self._headers
                and self._part is None)

    def answer_body(self, status: int, body: bytes) -> bytes:
        """The answer's body as S3 would send it: a completion names the object's checksum."""
        if not (self._completes and self._stored is not None and 200 <= status < 300):
            return body
        end = body.rfind(b"</CompleteMultipartUploadResult>")
        if end < 0:
            return body
        tag = self._stored.algorithm.parameter
        added = f"<{tag}>{self._stored.value}</{tag}><ChecksumType>{self._stored.kind}</ChecksumType>".encode()
        return body[:end] + added + body[end:]
