"""HTTPS on loopback for tests: a certificate authority made for the session with trustme.

The `tls_ca` fixture (conftest.py) makes the session's SessionCA and registers it
here, so that code holding only a URL (make_connection, the programs the tests
run in subprocesses) can find the CA bundle an https endpoint needs.
Nothing trusts this CA unless told to: clients get it as botocore's `verify=`.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.parse
from pathlib import Path

import trustme

_session_ca: SessionCA | None = None


class SessionCA:
    """A fresh CA, a server certificate for 127.0.0.1 and localhost, and the CA's PEM file."""

    def __init__(self, folder: Path):
        self._ca = trustme.CA()
        self._server_cert = self._ca.issue_cert("127.0.0.1", "localhost")
        self.bundle = str(folder / "ca.pem")  # a file: botocore's verify= and subprocesses want one
        self._ca.cert_pem.write_to_path(self.bundle)

    def server_context(self) -> ssl.SSLContext:
        """A context for a server presenting the certificate (a FaultProxy's `tls=`)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this CA and nothing else."""
        return ssl.create_default_context(cafile=self.bundle)


def register(ca: SessionCA | None) -> None:
    global _session_ca
    _session_ca = ca


def session_ca() -> SessionCA:
    if _session_ca is None:
        raise RuntimeError("no session CA: an https test must request the tls_ca fixture")
    return _session_ca


def tls_options(endpoint_url: str) -> dict:
    """The client keywords an endpoint needs: `verify=` the CA bundle for https, none for http."""
    if urllib.parse.urlsplit(endpoint_url).scheme != "https":
        return {}
    return {"verify": session_ca().bundle}


def http_connection(url: str, timeout: float = 10.0) -> http.client.HTTPConnection:
    """An http.client connection to `url`'s host and port; over TLS when it is https."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        return http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=session_ca().client_context()
        )
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
