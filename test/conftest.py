"""Shared pytest fixtures for s3po's tests.

The environment is made safe at import time, before any test module is
imported: fake AWS credentials, no developer profile or config file, and
loopback excluded from any HTTP proxy.

Sections below, each free to grow:
  * over the wire: a moto server subprocess, and a fault proxy in front of it
"""

from __future__ import annotations

import os

import pytest
from faultproxy import FaultProxy
from s3server import isolated_aws_environment, isolated_moto_server


def _isolate_from_developer_aws_config() -> None:
    # Done at import rather than in a fixture: test modules are imported
    # (and may build clients) before any fixture runs.
    isolated = isolated_aws_environment(os.environ)
    for name in set(os.environ) - set(isolated):
        del os.environ[name]
    os.environ.update(isolated)


_isolate_from_developer_aws_config()


# -- over the wire: moto server and fault proxy -----------------------------


@pytest.fixture(scope="session")
def moto_server():
    """moto's S3 server on 127.0.0.1, shared by the whole session (state is not reset)."""
    with isolated_moto_server() as server:
        yield server


@pytest.fixture
def server_url(moto_server) -> str:
    """The URL of the moto server, emptied for this test; no proxy in between."""
    moto_server.reset()
    return moto_server.url


@pytest.fixture(scope="session")
def shared_fault_proxy(moto_server):
    """The session's one FaultProxy; tests should use `fault_proxy`, which cleans it."""
    with FaultProxy(moto_server.host, moto_server.port) as proxy:
        yield proxy


@pytest.fixture
def fault_proxy(shared_fault_proxy, moto_server):
    """A FaultProxy in front of an emptied moto server, with no faults and an empty log."""
    moto_server.reset()
    shared_fault_proxy.clear()
    yield shared_fault_proxy
    shared_fault_proxy.clear()


# -- s3po connections on each backend (in-process moto, the server, the proxy) ----

pytest_plugins = ["s3po_fixtures"]
