"""Shared pytest fixtures for s3po's tests.

The environment is made safe at import time, before any test module is
imported: fake AWS credentials, no developer profile or config file, and
loopback excluded from any HTTP proxy.

Sections below, each free to grow:
  * over the wire: a moto server subprocess, and fault proxies in front of it,
    one speaking HTTP and one HTTPS (moto itself speaks only HTTP)
"""

from __future__ import annotations

import contextlib
import os

import pytest
from faultproxy import FaultProxy
from s3server import isolated_aws_environment, isolated_moto_server
from tlsca import SessionCA, register


def _isolate_from_developer_aws_config() -> None:
    # Done at import rather than in a fixture: test modules are imported
    # (and may build clients) before any fixture runs.
    isolated = isolated_aws_environment(os.environ)
    for name in set(os.environ) - set(isolated):
        del os.environ[name]
    os.environ.update(isolated)


_isolate_from_developer_aws_config()


# -- over the wire: moto server and fault proxies ---------------------------


@pytest.fixture(scope="session")
def moto_server():
    """moto's S3 server on 127.0.0.1, shared by the whole session (state is not reset)."""
    with isolated_moto_server() as server:
        yield server


@pytest.fixture
def server_url(moto_server) -> str:
    """The URL of the moto server, emptied for this test; no proxy in between (plain HTTP)."""
    moto_server.reset()
    return moto_server.url


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory) -> SessionCA:
    """The session's certificate authority; https clients trust it through `tls_ca.bundle`."""
    ca = SessionCA(tmp_path_factory.mktemp("tls-ca"))
    register(ca)  # so that make_connection() and tlsca.tls_options() find it from a URL
    yield ca
    register(None)


@pytest.fixture(scope="session")
def shared_fault_proxies(moto_server, tls_ca) -> dict[str, FaultProxy]:
    """The session's FaultProxies by scheme; tests should use `fault_proxy`, which cleans them."""
    upstream = (moto_server.host, moto_server.port)
    with FaultProxy(*upstream) as plain, FaultProxy(*upstream, tls=tls_ca.server_context()) as tls:
        yield {"http": plain, "https": tls}


@contextlib.contextmanager
def _cleaned(proxy: FaultProxy, moto_server):
    """`proxy` in front of an emptied server, with no faults and an empty log."""
    moto_server.reset()
    proxy.clear()
    yield proxy
    proxy.clear()


@pytest.fixture(params=["http", "https"])
def scheme(request) -> str:
    """How the client speaks to the fault proxy; every test using the proxy runs with each."""
    return request.param


@pytest.fixture
def fault_proxy(scheme, shared_fault_proxies, moto_server):
    """A FaultProxy (`scheme`) in front of an emptied moto server, with no faults and an empty log."""
    with _cleaned(shared_fault_proxies[scheme], moto_server) as proxy:
        yield proxy


@pytest.fixture
def tls_server_url(shared_fault_proxies, moto_server) -> str:
    """Like `server_url` over HTTPS: through the TLS proxy, with no faults, to an emptied server."""
    with _cleaned(shared_fault_proxies["https"], moto_server) as proxy:
        yield proxy.url


# -- s3po connections on each backend (in-process moto, the server, the proxy) ----

pytest_plugins = ["s3po_fixtures"]
