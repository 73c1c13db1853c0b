"""Batches and background calls: semantics on both backends, limits over the wire."""

import gc
import logging
import time
import weakref

import gevent
import pytest

import s3po
from s3po_fixtures import BUCKET, make_connection


def test_results_come_back_in_submission_order(conn):
    with conn.batch(8) as batch:
        handles = [batch.upload(BUCKET, f"k{n}", str(n) * n) for n in range(1, 30)]
        assert all(isinstance(h, gevent.Greenlet) for h in handles)
    assert batch.success()
    assert [key.key for key in batch.results()] == [f"k{n}" for n in range(1, 30)]
    with conn.batch(8) as batch:
        downloads = [batch.download(BUCKET, f"k{n}") for n in range(1, 30)]
    assert [h.get() for h in downloads] == [(str(n) * n).encode() for n in range(1, 30)]
    assert all(h.ready() and h.successful() and h.exception is None for h in downloads)


def test_every_operation_is_offered(conn, tmp_path):
    source = tmp_path / "f.txt"
    source.write_text("file")
    with conn.batch(4, raise_errors=True) as batch:
        batch.upload(BUCKET, "a", "A").get()
        batch.upload_file(BUCKET, "f", source).get()
        batch.copy(BUCKET, "a", BUCKET, "b").get()
        assert batch.download(BUCKET, "b").get() == b"A"
        batch.download_file(BUCKET, "f", tmp_path / "g").get()
        assert batch.head(BUCKET, "a").get().size == 1
        assert batch.exists(BUCKET, "a").get() is True
        batch.delete(BUCKET, "a").get()
        assert batch.delete_many(BUCKET, ["b"]).get() == 1
        assert batch.delete_prefix(BUCKET, "", whole_bucket=True).get() == 1
    assert (tmp_path / "g").read_text() == "file"


def test_callbacks_get_the_result_and_a_raising_callback_is_a_failure(conn):
    seen = []
    with conn.batch(4) as batch:
        batch.upload(BUCKET, "a", "x", callback=lambda key: seen.append(key.key))
        bad = batch.upload(BUCKET, "b", "y", callback=lambda key: 1 / 0)
    assert seen == ["a"]
    assert not batch.success()
    assert isinstance(bad.exception, ZeroDivisionError)
    [error] = batch.errors()
    assert (error.operation, error.bucket, error.key) == ("upload", BUCKET, "b")


def test_failures_are_collected_logged_and_never_silent(conn, caplog):
    with caplog.at_level(logging.ERROR, logger="s3po"):
        with conn.batch(4) as batch:
            ok = batch.upload(BUCKET, "fine", "x")
            missing = batch.download(BUCKET, "missing")
    assert ok.successful() and not missing.successful()
    assert isinstance(missing.exception, s3po.NotFound)
    with pytest.raises(s3po.NotFound):
        missing.get()
    assert batch.results()[1] is None
    assert not batch.success()
    [error] = batch.errors()
    assert (error.operation, error.key) == ("download", "missing")
    assert "s3://s3po-test/missing" in caplog.text


def test_raise_errors_lists_every_failure(conn):
    with pytest.raises(s3po.BatchError) as caught:
        with conn.batch(4, raise_errors=True) as batch:
            for n in range(3):
                batch.download(BUCKET, f"missing{n}")
            batch.upload(BUCKET, "fine", "x")
    assert len(caught.value.errors) == 3
    assert "missing0" in str(caught.value) and "missing2" in str(caught.value)


def test_wrong_arguments_raise_at_the_call_site(conn):
    with conn.batch(2) as batch:
        with pytest.raises(TypeError):
            batch.upload(BUCKET)
        with pytest.raises(TypeError):
            batch.upload(BUCKET, "k", "v", colour="blue")
        with pytest.raises(TypeError):
            batch.upload(BUCKET, "k", "v", callback="not callable")
    with pytest.raises(RuntimeError, match="ended"):
        batch.upload(BUCKET, "k", "v")


def test_keep_results_false_keeps_no_handles(conn):
    with conn.batch(4, keep_results=False) as batch:
        handle = batch.upload(BUCKET, "a", "x")
        batch.download(BUCKET, "missing")
        ref = weakref.ref(handle)
        del handle
    gc.collect()
    assert ref() is None
    with pytest.raises(RuntimeError, match="keep_results"):
        batch.results()
    assert batch.counts == {"submitted": 2, "finished": 2, "failed": 1, "cancelled": 0}
    assert [e.key for e in batch.errors()] == ["missing"]


def test_background_calls_and_wait(conn, tmp_path):
    handle = conn.upload(BUCKET, "bg", "data", background=True)
    assert isinstance(handle, gevent.Greenlet)
    path = tmp_path / "f"
    path.write_text("file")
    file_handle = conn.upload_file(BUCKET, "f", path, background=True, delete=True)
    assert conn.wait() is True
    assert handle.get().key == "bg" and file_handle.successful()
    assert not path.exists()
    kept = tmp_path / "kept"
    kept.write_text("stays")
    conn.upload_file("no-such-bucket-s3po", "f", kept, background=True, delete=True)
    conn.download(BUCKET, "missing", background=True)
    with pytest.raises(s3po.BatchError) as caught:
        conn.wait()
    assert len(caught.value.errors) == 2
    assert kept.read_text() == "stays"
    assert conn.wait() is True  # failures are reported once


def test_callback_needs_background():
    with pytest.raises(TypeError, match="background"):
        make_connection().upload(BUCKET, "k", "v", callback=print)


# -- over the wire --------------------------------------------------------------------------

def test_back_pressure_blocks_the_caller_while_the_pool_is_full(wire_conn, proxy):
    proxy.latency_s = 0.05
    handles = []
    with wire_conn.batch(4) as batch:
        for n in range(12):
            handles.append(batch.upload(BUCKET, f"k{n}", "x"))
            assert sum(not h.ready() for h in handles) <= 4


def test_requests_in_flight_never_exceed_max_connections(proxy, caplog):
    conn = make_connection(proxy.url, max_connections=4)
    conn.create_bucket(BUCKET)
    proxy.clear()
    proxy.latency_s = 0.1
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        with conn.batch(16, raise_errors=True) as batch:
            for n in range(16):
                batch.upload(BUCKET, f"k{n}", "x")
            conn.upload(BUCKET, "bg", "x", background=True)
        conn.wait()
    assert proxy.max_in_flight == 4
    assert time.monotonic() - started >= 4 * 0.1  # 17 requests, 4 at a time, 0.1 s each
    assert "Connection pool is full" not in caplog.text


def test_a_big_batch_uses_many_connections_without_pool_warnings(wire_conn, proxy, caplog):
    proxy.latency_s = 0.1
    with caplog.at_level(logging.WARNING):
        with wire_conn.batch(64, raise_errors=True) as batch:
            for n in range(128):
                batch.upload(BUCKET, f"k{n}", "x")
    assert proxy.max_in_flight > 32
    assert "Connection pool is full" not in caplog.text


def test_cancelling_when_the_block_raises(proxy):
    conn = make_connection(proxy.url, max_connections=2)
    conn.create_bucket(BUCKET)
    proxy.clear()
    proxy.latency_s = 0.3
    with pytest.raises(KeyError):
        with conn.batch(8) as batch:
            handles = [batch.upload(BUCKET, f"k{n}", "x") for n in range(8)]
            raise KeyError("stop")
    assert all(h.ready() for h in handles)
    time.sleep(0.4)
    # Two calls held the connections; the six waiting for one never started.
    assert proxy.count("PUT") <= 2
    assert sum(h.successful() for h in handles) == proxy.count("PUT")
    assert batch.errors() == []
