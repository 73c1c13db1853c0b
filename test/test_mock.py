"""Mock mode: moto in-process for users' unit tests."""

import subprocess
import sys

import pytest

import s3po
from s3po_fixtures import make_connection


def test_mock_routes_calls_to_moto_and_restores_the_real_client():
    conn = make_connection("http://127.0.0.1:9")  # nothing listens there
    real = conn.conn
    with conn.mock(buckets=["mocked-bucket"]) as mocked:
        assert mocked is conn
        assert conn.conn is not real
        conn.upload("mocked-bucket", "k", "v")
        assert conn.download("mocked-bucket", "k") == b"v"
        conn.conn.create_bucket(Bucket="made-directly")
        conn.upload("made-directly", "k", "v")
        # Built like the real client: same pool, retries and checksum settings.
        config = conn.conn.meta.config
        assert config.max_pool_connections == conn.max_connections
        assert config.retries == {"total_max_attempts": 1, "mode": "standard"}
        assert config.request_checksum_calculation == "when_required"
    assert conn.conn is real


def test_start_and_stop_and_nothing_leaks_between_uses():
    conn = make_connection()
    mock = conn.mock(buckets=["leak-check"])
    mock.start()
    try:
        conn.upload("leak-check", "left-behind", "x")
    finally:
        mock.stop()
    mock.stop()  # stopping twice is harmless
    with conn.mock(buckets=["leak-check"]):
        assert list(conn.list("leak-check")) == []


def test_leaving_restores_the_client_when_the_block_raises():
    conn = make_connection()
    real = conn.conn
    with pytest.raises(KeyError):
        with conn.mock():
            raise KeyError("boom")
    assert conn.conn is real
    with conn.mock(buckets=["after-error"]):  # and a new mock starts cleanly
        conn.upload("after-error", "k", "v")


def test_only_one_mock_at_a_time():
    first, second = make_connection(), make_connection()
    with first.mock():
        with pytest.raises(RuntimeError, match="already active"):
            second.mock().start()
        with pytest.raises(RuntimeError):
            first.mock().start()
    with second.mock():
        pass


def test_mock_needs_no_credentials(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    conn = s3po.Connection(region_name="us-east-1")
    with conn.mock(buckets=["no-creds"]):
        conn.upload("no-creds", "k", b"v")
        assert conn.download("no-creds", "k") == b"v"


def test_mock_works_in_batches_and_background_calls():
    conn = make_connection()
    with conn.mock(buckets=["mock-batch"]):
        with conn.batch(8, raise_errors=True) as batch:
            for n in range(20):
                batch.upload("mock-batch", f"k{n}", str(n))
        handle = conn.upload("mock-batch", "bg", "background", background=True)
        conn.wait()
        assert handle.get().key == "bg"
        assert len(list(conn.list("mock-batch"))) == 21


def test_bucket_names_are_checked():
    with pytest.raises(ValueError, match="Bad_Name"):
        make_connection().mock(buckets=["Bad_Name"])


def test_without_moto_the_error_says_what_to_install():
    code = (
        "import sys; sys.modules['moto'] = None\n"
        "import s3po\n"
        "conn = s3po.Connection(region_name='us-east-1')\n"
        "try:\n"
        "    conn.mock()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 'pip install "s3po[mock]"' in out.stdout


def test_while_a_mock_is_active_every_connection_goes_to_it_and_none_to_the_network(proxy):
    made_before = make_connection(proxy.url)
    mocking = make_connection()
    with mocking.mock(buckets=["shared-bucket"]):
        made_during = make_connection(proxy.url)
        made_before.upload("shared-bucket", "from-before", b"1")
        made_during.upload("shared-bucket", "from-during", b"2")
        made_during.upload("shared-bucket", "in-the-background", b"3", background=True)
        made_during.wait()
        with made_before.batch(4) as batch:
            batch.upload("shared-bucket", "from-a-batch", b"4")
        assert sorted(mocking.list("shared-bucket")) == ["from-a-batch", "from-before", "from-during",
                                                         "in-the-background"]
        assert made_before.download("shared-bucket", "from-during") == b"2"
        assert made_before.client.meta.endpoint_url == mocking.client.meta.endpoint_url  # AWS's, for moto
    assert proxy.requests == []  # no request left the process
    made_before.create_bucket("after-the-mock")  # afterwards, the real store again
    assert proxy.count("PUT") == 1
