"""Fixtures that give tests an s3po Connection on each backend.

- ``conn`` runs every test twice: on moto in-process (``conn.mock()``) and over HTTP
  against the moto server on 127.0.0.1.
- ``wire_conn`` talks to that server through the fault-injecting proxy (``proxy``), so
  tests can break the network on command and count what reached the wire.
Retries back off by zero seconds here, so retry tests never really sleep.
"""

from __future__ import annotations

import io

import pytest

import s3po

BUCKET = "s3po-test"
FAKE_SECRET = "SECRET-do-not-print-7f3a9c"
FAKE_TOKEN = "TOKEN-do-not-print-b21e44"


def make_connection(endpoint_url=None, **kwargs) -> s3po.Connection:
    options = dict(
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=FAKE_SECRET,
        aws_session_token=FAKE_TOKEN,
        backoff_base=0.0,
    )
    options.update(kwargs)
    if endpoint_url:
        options["endpoint_url"] = endpoint_url
    return s3po.Connection(**options)


@pytest.fixture(params=["inprocess", "server"])
def backend(request):
    return request.param


@pytest.fixture
def conn(backend, request):
    """A Connection with the empty bucket BUCKET, on each backend in turn."""
    if backend == "inprocess":
        connection = make_connection()
        with connection.mock(buckets=[BUCKET]):
            yield connection
    else:
        connection = make_connection(request.getfixturevalue("server_url"))
        connection.create_bucket(BUCKET)
        yield connection


@pytest.fixture
def proxy(fault_proxy):
    return fault_proxy


@pytest.fixture
def wire_conn(proxy):
    """A Connection through the fault proxy, with the empty bucket BUCKET; 3 retries."""
    connection = make_connection(proxy.url, retries=3)
    connection.create_bucket(BUCKET)
    proxy.clear()
    return connection


MiB = 1024 * 1024
# Small parts keep large-object tests quick: 5 MiB is S3's smallest part.
SMALL_PARTS = dict(multipart_threshold=5 * MiB, part_size=5 * MiB, workers=4)


@pytest.fixture
def parts_conn(backend, request):
    """Like ``conn``, with 5 MiB parts and threshold and 4 workers, on each backend."""
    if backend == "inprocess":
        connection = make_connection(**SMALL_PARTS)
        with connection.mock(buckets=[BUCKET]):
            yield connection
    else:
        connection = make_connection(request.getfixturevalue("server_url"), **SMALL_PARTS)
        connection.create_bucket(BUCKET)
        yield connection


@pytest.fixture
def wire_parts_conn(proxy):
    """Like ``wire_conn`` (through the fault proxy, 3 retries), with 5 MiB parts and 4 workers."""
    connection = make_connection(proxy.url, retries=3, **SMALL_PARTS)
    connection.create_bucket(BUCKET)
    proxy.clear()
    return connection


class OneWayStream(io.RawIOBase):
    """A binary stream that cannot seek, read in 64 KiB pieces, like a pipe or a socket."""

    def __init__(self, data):
        self._data = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, buffer):
        chunk = self._data.read(min(len(buffer), 65536))
        buffer[: len(chunk)] = chunk
        return len(chunk)
