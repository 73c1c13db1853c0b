"""Fixtures that give tests an s3po Connection on each backend.

- ``conn`` runs every test four times: on moto in-process (``conn.mock()``), over
  HTTP against the moto server on 127.0.0.1, over HTTPS through a fault-free TLS
  proxy to that server (these two on the default, lean request path), and over HTTP
  again with every request through botocore (``request_path="botocore"``).
- ``wire_conn`` talks to that server through the fault-injecting proxy (``proxy``), so
  tests can break the network on command and count what reached the wire; it runs
  once over HTTP and once over HTTPS (the ``scheme`` fixture).
A Connection made some other way gets the session CA it needs for https from
``make_connection(url)``, or ``endpoint_options(url)`` in a program run apart.
Retries back off by zero seconds here, so retry tests never really sleep.
"""

from __future__ import annotations

import io
import signal

import pytest
from tlsca import tls_options

import s3po

BUCKET = "s3po-test"
FAKE_SECRET = "SECRET-do-not-print-7f3a9c"
FAKE_TOKEN = "TOKEN-do-not-print-b21e44"


def make_connection(endpoint_url=None, **kwargs) -> s3po.Connection:
    """A Connection with fake credentials and no backoff; an https endpoint trusts the session CA."""
    options = dict(
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=FAKE_SECRET,
        aws_session_token=FAKE_TOKEN,
        backoff_base=0.0,
    )
    if endpoint_url:
        options.update(endpoint_options(endpoint_url))
    options.update(kwargs)
    return s3po.Connection(**options)


def interruptible() -> None:
    """``preexec_fn`` of a child a test interrupts: SIGINT delivered as a terminal's Ctrl-C.

    A shell without job control starts background commands (``make test &``) with
    SIGINT ignored, and children inherit that: Python then installs no KeyboardInterrupt
    handler, and the test's Ctrl-C would go unheard.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def endpoint_options(endpoint_url: str) -> dict:
    """The Connection keywords that reach `endpoint_url`: it, and for https the CA to trust."""
    return {"endpoint_url": endpoint_url, **tls_options(endpoint_url)}


# The fixture that gives each backend over the wire its emptied server's URL, and the
# request path its Connection takes.
_URL_FIXTURES = {"http": ("server_url", "lean"), "https": ("tls_server_url", "lean"),
                 "http-botocore": ("server_url", "botocore")}


@pytest.fixture(params=["inprocess", *_URL_FIXTURES])
def backend(request):
    return request.param


def _connection_on(backend, request, **kwargs):
    """Yield a Connection on `backend` with the empty bucket BUCKET (for a fixture)."""
    if backend == "inprocess":
        connection = make_connection(**kwargs)
        with connection.mock(buckets=[BUCKET]):
            yield connection
    else:
        url_fixture, request_path = _URL_FIXTURES[backend]
        connection = make_connection(request.getfixturevalue(url_fixture), request_path=request_path, **kwargs)
        connection.create_bucket(BUCKET)
        yield connection


@pytest.fixture
def conn(backend, request):
    """A Connection with the empty bucket BUCKET, on each backend in turn."""
    yield from _connection_on(backend, request)


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
    yield from _connection_on(backend, request, **SMALL_PARTS)


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
