"""A pytest plugin with S3 fixtures for tests of programs that use s3po.

Installed with s3po, it is registered through the ``pytest11`` entry point, so tests
get the fixtures without writing them (``-p no:s3po`` turns it off). It only defines
fixtures and a marker: nothing runs, and nothing heavy is imported, until a test asks
for a fixture.

- ``s3po_mock``: a Connection on moto's in-memory S3 (``pip install "s3po[mock]"``),
  with the buckets named by ``@pytest.mark.s3po_buckets("a", "b")``, or by
  ``@pytest.mark.parametrize("s3po_mock", [["a", "b"]], indirect=True)``; every
  Connection of the process goes to the mock meanwhile.
- ``s3_server``: moto's standalone server on 127.0.0.1 for the whole session
  (``pip install "moto[server]"``); the fixture is its endpoint URL. Give clients
  any credentials and region (``us-east-1``); ``s3_server_reset`` empties it.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest

MARKER = "s3po_buckets"
FAKE_CREDENTIALS: dict[str, Any] = {"aws_access_key_id": "s3po-testing", "aws_secret_access_key": "s3po-testing",
                    "region_name": "us-east-1"}


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", f"{MARKER}(*names): buckets the s3po_mock fixture creates")


@pytest.fixture
def s3po_mock(request: Any) -> Iterator[Any]:
    """A Connection on moto's in-memory S3 with the buckets the test asked for."""
    import s3po

    buckets: list[str] = []
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        buckets += list(marker.args)
    param = getattr(request, "param", None)
    if param is not None:
        buckets += [param] if isinstance(param, str) else list(param)
    connection = s3po.Connection(**FAKE_CREDENTIALS)
    with connection.mock(buckets=buckets):
        yield connection


@pytest.fixture(scope="session")
def _s3po_moto_server() -> Iterator[Any]:
    import os

    from .server import MotoServer

    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="s3po-testing", AWS_SECRET_ACCESS_KEY="s3po-testing",
               AWS_DEFAULT_REGION="us-east-1")
    with MotoServer(env=env) as server:
        yield server


@pytest.fixture(scope="session")
def s3_server(_s3po_moto_server: Any) -> str:
    """The endpoint URL (``http://127.0.0.1:PORT``) of moto's S3 server, shared by the session."""
    return str(_s3po_moto_server.url)


@pytest.fixture
def s3_server_reset(_s3po_moto_server: Any) -> str:
    """Like ``s3_server``, emptied (every bucket gone) for this test."""
    _s3po_moto_server.reset()
    return str(_s3po_moto_server.url)
