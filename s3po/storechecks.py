"""Which check protects a transfer: what one Connection knows of its store's checksums.

S3 verifies an ``x-amz-checksum-<crc>`` header on every upload, answers with the same
header (its echo is the proof), and returns an object's full-object CRC on a whole GET
with ``x-amz-checksum-mode: ENABLED``. Many S3-compatible stores do too; some (moto,
rclone serve s3, older MinIO) ignore the headers, and there only Content-MD5 and the
ETag check anything. So, per Connection (``checksum="auto"``, the default):

- AWS endpoints are known to verify: uploads send the CRC alone, no MD5 is computed.
- Any other endpoint is unknown until its first upload answers: that upload sends both
  Content-MD5 and the CRC; an echo of the CRC means the store verifies (later uploads
  send the CRC alone), no echo means it does not (later uploads send Content-MD5 alone).
  A store that refuses the checksum headers outright (400 InvalidArgument and the
  like, which no store known to verify would answer) has the request sent again at
  once without them; if it takes it, it is known not to verify.
- PutObject and UploadPart are learned each on its own. A request sent with the CRC
  alone that gets no echo (the store was thought to verify) is sent again with
  Content-MD5, and that operation is known not to verify from then on.
- Downloads ask for the stored checksum with their first GET, sent whole (S3 returns
  no checksum for a ranged GET). An object that has one is checked by its CRC; one
  that has none is checked by its ETag, as before. A custom endpoint whose first
  answers carry no checksum, and whose uploads were not echoed, is taken for a store
  that keeps none: its later downloads start with a ranged GET again.

``checksum="crc64nvme"`` (or "crc32c", "crc32") fixes the algorithm and trusts the
store to verify it, saying once at INFO when it does not echo; ``checksum="md5"``
keeps to Content-MD5 and ETags, never sending a CRC.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional

from .checksums import ALGORITHMS, Algorithm, available, best, by_name, parameter
from .errors import error_code, http_status

__all__ = ["CHECKSUM_SETTINGS", "StoreChecks", "StoredChecksum", "UploadChecks", "carries_checksum",
           "check_checksum_setting", "stored_checksum"]

CHECKSUM_SETTINGS = ("auto", "md5") + ALGORITHMS
# What stores that know nothing of x-amz-checksum-* or x-amz-checksum-algorithm answer.
_REFUSALS = frozenset({"InvalidArgument", "InvalidRequest", "NotImplemented", "UnsupportedHeader"})


def check_checksum_setting(setting: Any) -> str:
    """The ``checksum`` argument of a Connection, checked before any request."""
    if not isinstance(setting, str) or setting.lower() not in CHECKSUM_SETTINGS:
        raise ValueError(f"checksum must be one of {', '.join(map(repr, CHECKSUM_SETTINGS))}, not {setting!r}")
    chosen = setting.lower()
    if chosen in ALGORITHMS:
        by_name(chosen)  # ValueError now when this machine cannot compute it
    return chosen


def is_aws_endpoint(endpoint_url: Optional[str]) -> bool:
    """True for S3 itself (``*.amazonaws.com``, ``*.amazonaws.com.cn``)."""
    host = (urllib.parse.urlsplit(endpoint_url or "").hostname or "").lower()
    return host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn")


@dataclass(frozen=True)
class UploadChecks:
    """The digests one upload computes and sends."""

    md5: bool  # send Content-MD5 (and compare the ETag)
    crc: Optional[Algorithm]  # send x-amz-checksum-<crc>


@dataclass(frozen=True)
class StoredChecksum:
    """An object's full-object checksum, as its store returned it."""

    algorithm: Algorithm
    value: str  # base64, as on the wire


def carries_checksum(response: Mapping[str, Any]) -> bool:
    """True when a GET or HEAD answer carries any stored checksum (usable here or not)."""
    return any(response.get(parameter(name)) for name in ALGORITHMS)


def stored_values(response: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """The full-object checksums a GET or HEAD answer carries: (algorithm's name, base64).

    A composite checksum (a multipart upload's checksum of part checksums, shaped
    ``<base64>-<parts>``) is not of the whole object's bytes: left out (to the ETag).
    """
    if response.get("ChecksumType") not in (None, "FULL_OBJECT"):
        return
    for name in ALGORITHMS:
        value = response.get(parameter(name))
        if isinstance(value, str) and value and "-" not in value:
            yield name, value


def stored_value(response: Mapping[str, Any]) -> Optional[tuple[str, str]]:
    """The first of ``stored_values``, or None."""
    return next(stored_values(response), None)


def stored_checksum(response: Mapping[str, Any]) -> Optional[StoredChecksum]:
    """The full-object checksum a GET or HEAD answer carries that this machine can compute."""
    found = available()
    return next((StoredChecksum(found[name], value) for name, value in stored_values(response) if name in found),
                None)


# The uploads whose checksums a store verifies, each learned on its own: a store may
# verify PutObject's and not UploadPart's.
UPLOAD_OPERATIONS = ("put_object", "upload_part")


class StoreChecks:
    """What one Connection (per client: a mock's is its own) knows of its store.

    Written by concurrent calls without a lock: each write is one assignment, and a
    call that read an older state only sends one digest more, or asks once more.
    """

    def __init__(self, setting: str, endpoint_url: Optional[str], keeps_checksums: bool = True) -> None:
        self.setting = setting
        self.algorithm: Optional[Algorithm] = None
        if setting == "auto":
            self.algorithm = best()
        elif setting != "md5":
            self.algorithm = by_name(setting)
        self.explicit = setting not in ("auto", "md5")
        known = True if (self.explicit or is_aws_endpoint(endpoint_url)) else None
        start = known if self.algorithm is not None else False
        # Does the store verify (and echo) checksums on upload, per operation? None: not yet known.
        self._verifies: dict[str, Optional[bool]] = {operation: start for operation in UPLOAD_OPERATIONS}
        # Does it return stored checksums on a whole GET? None: not yet known. A store
        # whose checksums are not trusted (a mock's) is never asked, whatever it echoes.
        self._keeps = keeps_checksums
        self.returns: Optional[bool] = start if keeps_checksums else False
        # Does it answer a ranged GET with the whole object? Learned when it does.
        self.ignores_range = False
        self._aws = is_aws_endpoint(endpoint_url)

    def for_upload(self, operation: str) -> UploadChecks:
        verifies = self._verifies[operation]
        if self.algorithm is None or verifies is False:
            return UploadChecks(md5=True, crc=None)
        return UploadChecks(md5=verifies is None, crc=self.algorithm)

    def learn_upload(self, operation: str, echoed: bool) -> None:
        """An upload that sent a CRC was answered; ``echoed``: the answer carried it back.

        No echo means the store (or something before it) does not verify: only a
        checksum the caller chose is trusted all the same.
        """
        if echoed:
            self._verifies[operation] = True
            if self._keeps and (self.returns is None or (self.returns is False and not self._aws)):
                self.returns = True  # a store that verifies keeps them too (S3, MinIO)
        elif not self.explicit:
            self._verifies[operation] = False

    def may_refuse(self, exc: BaseException) -> bool:
        """True when ``exc`` may be a store that knows nothing of checksums refusing their
        headers: the request is worth sending again without them (see ``learn_refused``).

        Never for a checksum the caller chose, nor for a store known to verify.
        """
        if self.explicit or any(self._verifies.values()):
            return False
        return http_status(exc) in (400, 501) and error_code(exc) in _REFUSALS

    def learn_refused(self) -> None:
        """The request refused with checksum headers was taken without them."""
        for operation in UPLOAD_OPERATIONS:
            self._verifies[operation] = False
        self.returns = False

    def whole_first_get(self) -> bool:
        """Should a download's first GET ask for the object whole, for its stored checksum?"""
        return self.algorithm is not None and self.returns is not False

    def learn_download(self, had_checksum: bool) -> None:
        """A whole first GET was answered, with or without a stored checksum.

        One object without a checksum on a store whose uploads were never echoed is
        enough to stop asking (each large download would pay for it); an echo later
        makes s3po ask again.
        """
        if had_checksum and self._keeps:
            self.returns = True
        elif self.returns is None and not any(self._verifies.values()) and not self._aws:
            self.returns = False
