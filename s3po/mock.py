"""Mock mode: a Connection's calls go to moto's in-memory S3 (moto imported lazily)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Iterable, Optional

import boto3

from ._client import build_client
from .arguments import check_bucket

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["MockS3"]

MOTO_HINT = 'mock mode needs moto: pip install "s3po[mock]"'

# moto patches botocore for the whole process, so two mocks at once would share (and
# wipe) each other's state. One at a time, enforced here.
_lock = threading.Lock()
_active: Optional["MockS3"] = None


def _load_mock_aws():
    try:
        from moto import mock_aws
    except ImportError as exc:
        raise ImportError(MOTO_HINT) from exc
    return mock_aws


class MockS3:
    """While started, ``connection.conn`` is a client of moto's in-memory S3.

    Use it as ``with conn.mock(buckets=['b']):`` (the ``with`` gives back the
    connection) or call ``start()`` / ``stop()``. Stopping restores the real client and
    drops everything stored, even when the block raised.
    """

    def __init__(self, connection: "Connection", buckets: Iterable[str] = ()) -> None:
        if isinstance(buckets, str):
            raise TypeError("buckets must be a list of bucket names, not a single str")
        self._buckets = [check_bucket(bucket) for bucket in buckets]
        self._mock_aws = _load_mock_aws()
        self._connection = connection
        self._moto: Any = None
        self._real_client: Any = None

    @property
    def active(self) -> bool:
        return _active is self

    def start(self) -> "MockS3":
        global _active
        with _lock:
            if _active is not None:
                raise RuntimeError(
                    "an s3po mock is already active; moto's mock is process-wide, so stop it "
                    "before starting another"
                )
            _active = self
        try:
            self._moto = self._mock_aws()
            self._moto.start()
            self._real_client = self._connection.conn
            self._connection.conn = self._mocked_client()
            for bucket in self._buckets:
                self._connection.create_bucket(bucket)
        except BaseException:
            self._release()
            raise
        return self

    def stop(self) -> None:
        if not self.active:
            return
        self._release()

    def _release(self) -> None:
        global _active
        try:
            if self._real_client is not None:
                self._connection.conn = self._real_client
                self._real_client = None
            if self._moto is not None:
                self._moto.stop()
                self._moto = None
        finally:
            with _lock:
                if _active is self:
                    _active = None

    def _mocked_client(self) -> Any:
        # Built like the real one, with its settings, but with no endpoint_url (moto
        # answers only requests aimed at AWS's own endpoints) and fixed fake
        # credentials (the user's real ones must never be needed, nor sent).
        meta = self._real_client.meta
        session = boto3.session.Session(
            aws_access_key_id="s3po-mock",
            aws_secret_access_key="s3po-mock",
            region_name=meta.region_name or "us-east-1",
        )
        client = build_client(session, self._connection.max_connections, {"config": meta.config})
        # Registered first, so that it runs before moto's own handler answers the request.
        client.meta.events.register_first("before-send.s3", _body_as_bytes)
        return client

    def __enter__(self) -> "Connection":
        self.start()
        return self._connection

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def _body_as_bytes(request: Any, **kwargs: Any) -> None:
    """moto's in-process server takes bytes bodies only; parts go out as bytearrays."""
    if isinstance(request.body, bytearray):
        request.body = bytes(request.body)
