"""Mock mode: while a mock is active, every Connection's calls go to moto's in-memory S3.

moto's mock is process-wide, and so is s3po's: a Connection that was not the one the
mock was started on must never reach the network with real credentials meanwhile. So
every Connection of the process asks ``client_for`` first. moto is imported lazily.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any, Iterable, Optional

from .arguments import check_bucket

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["MockS3", "client_for"]

MOTO_HINT = 'mock mode needs moto: pip install "s3po[mock]"'

# moto patches botocore for the whole process, so two mocks at once would share (and
# wipe) each other's state. One at a time, enforced here.
_lock = threading.Lock()
_active: Optional["MockS3"] = None


def client_for(connection: "Connection") -> Any:
    """The mocked client ``connection`` must use now, or None when no mock is active."""
    active = _active
    if active is None:
        return None
    return active.client_for(connection)


def _load_mock_aws() -> Any:
    try:
        from moto import mock_aws
    except ImportError as exc:
        raise ImportError(MOTO_HINT) from exc
    return mock_aws


class MockS3:
    """While started, every Connection's client is a client of moto's in-memory S3.

    Use it as ``with conn.mock(buckets=['b']):`` (the ``with`` gives back the
    connection) or call ``start()`` / ``stop()``. Stopping restores the real clients
    and drops everything stored, even when the block raised.
    """

    def __init__(self, connection: "Connection", buckets: Iterable[str] = ()) -> None:
        if isinstance(buckets, str):
            raise TypeError("buckets must be a list of bucket names, not a single str")
        self._buckets = [check_bucket(bucket) for bucket in buckets]
        self._mock_aws = _load_mock_aws()
        self._connection = connection
        self._moto: Any = None
        self._clients: "weakref.WeakKeyDictionary[Connection, Any]" = weakref.WeakKeyDictionary()
        self._clients_lock = threading.Lock()

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
            self._moto = self._mock_aws()
            self._moto.start()
            _active = self
        try:
            for bucket in self._buckets:
                self._connection.create_bucket(bucket)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        global _active
        with _lock:
            if _active is not self:
                return
            _active = None
            try:
                self._moto.stop()
            finally:
                self._moto = None
                self._clients = weakref.WeakKeyDictionary()

    def client_for(self, connection: "Connection") -> Any:
        with self._clients_lock:
            client = self._clients.get(connection)
            if client is None:
                client = self._clients[connection] = _mocked_client(connection)
            return client

    def __enter__(self) -> "Connection":
        self.start()
        return self._connection

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def _mocked_client(connection: "Connection") -> Any:
    """A client like ``connection``'s, aimed at moto.

    Built with the connection's settings but no endpoint_url (moto answers only
    requests aimed at AWS's own endpoints) and fixed fake credentials (the user's real
    ones must never be needed, nor sent).
    """
    import boto3

    from ._client import build_client

    user_config = connection._client_kwargs.get("config")
    region = connection._client_kwargs.get("region_name") or getattr(connection._session, "region_name", None)
    session = boto3.session.Session(
        aws_access_key_id="s3po-mock",
        aws_secret_access_key="s3po-mock",
        region_name=region or "us-east-1",
    )
    client = build_client(session, connection.max_connections, {"config": user_config} if user_config else {})
    # Registered first, so that it runs before moto's own handler answers the request.
    client.meta.events.register_first("before-send.s3", _body_as_bytes)
    return client


def _body_as_bytes(request: Any, **kwargs: Any) -> None:
    """moto's in-process server takes bytes bodies only; parts go out as bytearrays."""
    if isinstance(request.body, bytearray):
        request.body = bytes(request.body)
