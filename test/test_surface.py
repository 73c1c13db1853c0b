"""The public surface: keyword-only options, configuration by value, documentation of every argument."""

from __future__ import annotations

import inspect
import io
import pydoc

import pytest
from s3po_fixtures import BUCKET, make_connection

import s3po
from s3po.batch import OPERATIONS

CALLS_WITH_OPTIONS_BY_POSITION = {
    "open(b, k, 3)": lambda conn: conn.open(BUCKET, "k", 3),
    "upload(b, k, d, headers)": lambda conn: conn.upload(BUCKET, "k", b"x", {"Cache-Control": "no"}),
    "download(b, k, None, 2)": lambda conn: conn.download(BUCKET, "k", None, 2),
    "download_file(b, k, p, 2)": lambda conn: conn.download_file(BUCKET, "k", "p", 2),
    "upload_file(b, k, p, headers)": lambda conn: conn.upload_file(BUCKET, "k", "p", {}),
    "copy(..., 2)": lambda conn: conn.copy(BUCKET, "a", BUCKET, "b", 2),
    "list(b, p, '/')": lambda conn: conn.list(BUCKET, "p", "/"),
    "batch.upload(b, k, d, headers)": lambda conn: conn.batch(2).upload(BUCKET, "k", b"x", {}),
}


@pytest.mark.parametrize("call", sorted(CALLS_WITH_OPTIONS_BY_POSITION))
def test_options_after_bucket_key_and_data_are_keyword_only(call):
    conn = make_connection("http://127.0.0.1:9")  # nothing listens: nothing may be sent
    with pytest.raises(TypeError):
        CALLS_WITH_OPTIONS_BY_POSITION[call](conn)


def test_the_earlier_names_keep_what_old_releases_accepted(conn):
    with pytest.warns(DeprecationWarning):
        conn.uploadString(BUCKET, "old", "text", {"Cache-Control": "no-cache"}, None, 1)
    with pytest.warns(DeprecationWarning):
        assert conn.downloadString(BUCKET, "old", 1, True) == b"text"
    sink = io.BytesIO()
    with pytest.warns(DeprecationWarning):
        conn.downloadFile(BUCKET, "old", sink, 1)
    assert sink.getvalue() == b"text"
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="at most"):
        conn.uploadString(BUCKET, "old", "text", None, None, 1, "one too many")


def test_a_retry_policy_is_given_by_value_or_by_its_parts():
    policy = s3po.RetryPolicy(retries=5, backoff_base_s=0.2, backoff_cap_s=3.0)
    assert s3po.Connection(retry_policy=policy).retry_policy is policy
    by_parts = s3po.Connection(retries=5, backoff_base_s=0.2, backoff_cap_s=3.0).retry_policy
    assert by_parts == policy
    assert s3po.Connection(retries=5, backoff_base=0.2, backoff_cap=3.0).retry_policy == policy  # earlier names
    assert s3po.Connection().retry_policy == s3po.RetryPolicy()
    for conflicting in ({"retry_policy": policy, "retries": 1}, {"backoff_base": 1, "backoff_base_s": 1},
                        {"backoff_cap": 1, "backoff_cap_s": 2}):
        with pytest.raises(TypeError):
            s3po.Connection(**conflicting)
    with pytest.raises(TypeError):
        s3po.Connection(retry_policy={"retries": 1})
    with pytest.raises(ValueError, match="backoff_cap_s"):
        s3po.Connection(backoff_cap_s=-1)


def test_help_explains_every_argument():
    text = pydoc.render_doc(s3po.Connection, renderer=pydoc.plaintext)
    for name in inspect.signature(s3po.Connection).parameters:
        if name != "client_kwargs":
            assert f"``{name}``" in s3po.Connection.__doc__, name
    assert "endpoint_url" in text and "max_connections" in text
    for operation in OPERATIONS:
        method = getattr(s3po.Connection, operation)
        parameters = inspect.signature(method).parameters
        assert "background" in parameters and "callback" in parameters, operation
        assert "``background``" in method.__doc__, operation  # its own docstring names it


def test_a_connection_does_not_show_its_secrets():
    conn = make_connection("http://127.0.0.1:9")
    shown = repr(conn) + str(conn)
    assert "SECRET" not in shown and "TOKEN" not in shown
    conn.client  # built
    assert "SECRET" not in repr(conn)
