"""Ranged downloads: concurrent ranges pinned to the ETag, verified, written in place.

These run with ``checksum="md5"``: the checks are the ETag's MD5 and part MD5s, the
ones for stores that keep no checksum (moto's PutObject, rclone). The same engine
checked by stored CRCs is in test_checksums.py.
"""

from __future__ import annotations

import hashlib
import os
import time

import pytest
from s3po_fixtures import BUCKET, SMALL_PARTS, MiB, make_connection

import s3po

DATA = os.urandom(16 * MiB + 7)
PART = 5 * MiB


def ranges_asked(proxy):
    return [r.headers.get("Range") for r in proxy.requests if r.method == "GET"]


def leftovers(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".s3po-part"))


@pytest.fixture
def wire_parts_conn(proxy):
    """Through the fault proxy, 3 retries, 5 MiB parts, 4 workers; ETag checks only."""
    connection = make_connection(proxy.url, retries=3, checksum="md5", **SMALL_PARTS)
    connection.create_bucket(BUCKET)
    proxy.clear()
    return connection


@pytest.fixture
def multipart_object(wire_parts_conn, proxy):
    stored = wire_parts_conn.upload(BUCKET, "big", DATA)
    assert stored.etag.endswith("-4")
    proxy.clear()
    return stored


@pytest.fixture
def single_part_object(wire_parts_conn, proxy):
    wire_parts_conn.conn.put_object(Bucket=BUCKET, Key="single", Body=DATA)
    proxy.clear()


def test_a_multipart_object_comes_as_ranges_aligned_to_its_parts(wire_parts_conn, proxy, multipart_object,
                                                                tmp_path):
    target = tmp_path / "out.bin"
    wire_parts_conn.download_file(BUCKET, "big", str(target))
    assert target.read_bytes() == DATA
    asked = ranges_asked(proxy)
    assert sorted(asked) == sorted([f"bytes=0-{PART - 1}", f"bytes={PART}-{2 * PART - 1}",
                                    f"bytes={2 * PART}-{3 * PART - 1}", f"bytes={3 * PART}-{len(DATA) - 1}"])
    # One HEAD learns the part size; the first GET told the size and the ETag.
    assert proxy.count("HEAD") == 1
    later = [r for r in proxy.requests if r.method == "GET"][1:]
    assert all(r.headers.get("If-Match") == f'"{multipart_object.etag}"' for r in later)
    assert leftovers(tmp_path) == []


def test_a_single_part_object_comes_as_ranges_and_is_checked_against_its_md5(
        wire_parts_conn, proxy, single_part_object, tmp_path):
    target = tmp_path / "out.bin"
    wire_parts_conn.download_file(BUCKET, "single", str(target))
    assert target.read_bytes() == DATA
    assert proxy.count("GET") == 4 and proxy.count("HEAD") == 0


def test_ranges_are_fetched_concurrently(wire_parts_conn, proxy, multipart_object, tmp_path):
    proxy.latency_s = 0.3
    started = time.monotonic()
    wire_parts_conn.download_file(BUCKET, "big", str(tmp_path / "out.bin"))
    elapsed = time.monotonic() - started
    assert proxy.max_in_flight >= 3
    # first GET, HEAD, then three ranges at once: far less than five round trips
    assert elapsed < 5 * 0.3, f"{elapsed:.2f} s"


def test_download_into_memory_uses_ranges_too(wire_parts_conn, proxy, multipart_object):
    assert wire_parts_conn.download(BUCKET, "big") == DATA
    assert proxy.count("GET") == 4


@pytest.mark.parametrize("kind, params", [("flip", {}), ("truncate", {}), ("reset", {}),
                                          ("status", {"status": 503})])
@pytest.mark.parametrize("which", ["big", "single"])
def test_a_damaged_range_is_caught_and_never_written(wire_parts_conn, proxy, multipart_object,
                                                     single_part_object, tmp_path, kind, params, which):
    proxy.add_fault(kind, count=1, method="GET", header_contains=("Range", f"bytes={2 * PART}-"), **params)
    target = tmp_path / "out.bin"
    wire_parts_conn.download_file(BUCKET, which, str(target))
    assert target.read_bytes() == DATA
    assert leftovers(tmp_path) == []
    asked = ranges_asked(proxy)
    if kind == "flip":
        # Caught only by the whole object's checksum: every range comes again, once.
        assert len(asked) == 8
    elif kind == "truncate":
        # Caught on the spot: that range alone comes again, resumed where it broke.
        again = [r for r in asked if r.endswith(f"-{3 * PART - 1}")]
        assert len(asked) == 5 and len(again) == 2
        assert again[0] != again[1] and int(again[1].split("=")[1].split("-")[0]) > 2 * PART
    else:
        # Caught on the spot: that range alone comes again.
        assert asked.count(f"bytes={2 * PART}-{3 * PART - 1}") == 2 and len(asked) == 5


def test_a_range_that_keeps_failing_fails_the_download_and_leaves_nothing(
        wire_parts_conn, proxy, multipart_object, tmp_path):
    (tmp_path / "out.bin").write_bytes(b"the previous version")
    proxy.add_fault("status", count=100, method="GET", header_contains=("Range", f"bytes={PART}-"),
                    status=500)
    with pytest.raises(s3po.DownloadException) as caught:
        wire_parts_conn.download_file(BUCKET, "big", str(tmp_path / "out.bin"), retries=2)
    assert caught.value.code == "InternalError"
    assert ranges_asked(proxy).count(f"bytes={PART}-{2 * PART - 1}") == 3
    assert (tmp_path / "out.bin").read_bytes() == b"the previous version"
    assert leftovers(tmp_path) == []


def test_retries_never_multiply_when_every_range_is_damaged(wire_parts_conn, proxy, multipart_object,
                                                           tmp_path):
    proxy.add_fault("flip", count=1000, method="GET")
    with pytest.raises(s3po.DownloadException, match="ETag"):
        wire_parts_conn.download_file(BUCKET, "big", str(tmp_path / "out.bin"), retries=2)
    asked = ranges_asked(proxy)
    assert max(asked.count(value) for value in set(asked)) <= 3
    assert not (tmp_path / "out.bin").exists() and leftovers(tmp_path) == []


def replace_on_progress(proxy, moto_server, times):
    """A progress callback that stores a new version of "big" on its first call, ``times`` times.

    The new version goes straight to the server; ranges asked with If-Match reach it
    through the proxy 1 s late, time for the new version to land.
    """
    connection = make_connection(moto_server.url, **SMALL_PARTS)
    proxy.add_fault("hold", count=100, method="GET", header_contains=("If-Match", '"'), seconds=1.0)
    state = {"replaced": 0, "armed": True}

    def progress(done, total):
        if done == 0:
            state["armed"] = True  # the download started again
            return
        if state["armed"] and state["replaced"] < times:
            state["armed"] = False
            state["replaced"] += 1
            connection.upload(BUCKET, "big", NEW[state["replaced"]])

    return progress, state


NEW = {1: os.urandom(len(DATA)), 2: os.urandom(len(DATA) - 100)}


def test_an_object_replaced_mid_download_is_fetched_again_from_the_new_version(
        wire_parts_conn, proxy, multipart_object, moto_server, tmp_path):
    progress, state = replace_on_progress(proxy, moto_server, times=1)
    target = tmp_path / "out.bin"
    wire_parts_conn.download_file(BUCKET, "big", str(target), progress=progress)
    assert state["replaced"] == 1
    assert target.read_bytes() == NEW[1]
    assert any(r.status == 412 for r in proxy.requests)


def test_an_object_replaced_twice_fails_with_precondition_failed_and_leaves_nothing(
        wire_parts_conn, proxy, multipart_object, moto_server, tmp_path):
    progress, state = replace_on_progress(proxy, moto_server, times=2)
    with pytest.raises(s3po.DownloadException) as caught:
        wire_parts_conn.download_file(BUCKET, "big", str(tmp_path / "out.bin"), progress=progress)
    assert caught.value.code == "PreconditionFailed"
    assert state["replaced"] == 2
    assert os.listdir(tmp_path) == []


def test_an_empty_object_falls_back_to_a_plain_get(wire_parts_conn, proxy, tmp_path):
    wire_parts_conn.upload(BUCKET, "empty", b"")
    proxy.clear()
    wire_parts_conn.download_file(BUCKET, "empty", str(tmp_path / "empty"))
    assert (tmp_path / "empty").read_bytes() == b""
    assert [r.status for r in proxy.requests] == [416, 200]
    assert wire_parts_conn.download(BUCKET, "empty") == b""


def test_a_server_that_ignores_range_still_gives_a_verified_file(wire_parts_conn, proxy,
                                                                 single_part_object, tmp_path):
    # Stripping the Range header stands for a store without range support.
    original = proxy._answer_counted

    def without_range(request, *rest):
        request.headers = [(k, v) for k, v in request.headers if k.lower() != "range"]
        return original(request, *rest)

    proxy._answer_counted = without_range
    try:
        wire_parts_conn.download_file(BUCKET, "single", str(tmp_path / "out.bin"))
    finally:
        del proxy._answer_counted
    assert (tmp_path / "out.bin").read_bytes() == DATA
    assert proxy.count("GET") == 1


def test_progress_reports_each_range_and_ends_at_the_size(parts_conn, tmp_path):
    parts_conn.upload(BUCKET, "big", DATA)
    calls = []
    parts_conn.download_file(BUCKET, "big", str(tmp_path / "out"), progress=lambda d, t: calls.append((d, t)))
    assert len(calls) >= 4
    assert calls[-1] == (len(DATA), len(DATA))
    assert all(total == len(DATA) for _, total in calls)
    assert hashlib.md5((tmp_path / "out").read_bytes()).digest() == hashlib.md5(DATA).digest()


def test_a_large_gzip_object_is_decompressed_after_the_ranged_fetch(parts_conn, tmp_path):
    parts_conn.upload(BUCKET, "big.bin", DATA, compress="gzip")
    parts_conn.download_file(BUCKET, "big.bin", str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == DATA
    assert leftovers(tmp_path) == []
    assert parts_conn.download(BUCKET, "big.bin") == DATA


def test_a_missing_key_is_not_found_and_leaves_nothing(parts_conn, tmp_path):
    with pytest.raises(s3po.NotFound):
        parts_conn.download_file(BUCKET, "nope", str(tmp_path / "sub" / "out"))
    assert os.listdir(tmp_path) == []


# -- open(): read-ahead of ranges -------------------------------------------------------


def test_open_reads_a_large_object_ahead_in_concurrent_ranges(wire_parts_conn, proxy, multipart_object):
    proxy.latency_s = 0.2
    with wire_parts_conn.open(BUCKET, "big") as stream:
        assert stream.info.size == len(DATA)
        assert stream.read() == DATA
    assert len(ranges_asked(proxy)) == 4
    assert proxy.max_in_flight >= 3


@pytest.mark.parametrize("which", ["big", "single"])
def test_open_retries_a_cut_range_and_reports_a_flipped_one_at_the_end(
        wire_parts_conn, proxy, multipart_object, single_part_object, which):
    proxy.add_fault("truncate", count=1, method="GET", header_contains=("Range", f"bytes={PART}-"))
    with wire_parts_conn.open(BUCKET, which) as stream:
        assert stream.read() == DATA
    proxy.clear()
    proxy.add_fault("flip", count=1, method="GET", header_contains=("Range", f"bytes={2 * PART}-"))
    with pytest.raises(s3po.DownloadException, match="ETag"):
        with wire_parts_conn.open(BUCKET, which) as stream:
            while stream.read(MiB):
                pass


def test_open_closed_early_stops_reading_ahead(wire_parts_conn, proxy, multipart_object):
    big = os.urandom(40 * MiB)
    wire_parts_conn.upload(BUCKET, "bigger", big)
    proxy.clear()
    proxy.latency_s = 0.2
    with wire_parts_conn.open(BUCKET, "bigger") as stream:
        assert stream.read(1000) == big[:1000]
    time.sleep(0.5)
    # 8 ranges in all; the window (4 workers + 1) never lets all of them go out unread.
    assert len(ranges_asked(proxy)) <= 6


def test_open_decompresses_a_large_gzip_object(parts_conn):
    parts_conn.upload(BUCKET, "big.bin", DATA, compress="gzip")
    with parts_conn.open(BUCKET, "big.bin") as stream:
        assert stream.read() == DATA


def test_idle_streams_hold_no_connections_and_starve_nothing(proxy):
    # Three streams of a 40 MiB object read one byte each, then sit idle with their
    # read-ahead windows full. With 8 connections and 4 workers each, a stream that
    # kept a connection while waiting for room would leave the third one nothing.
    conn = make_connection(proxy.url, max_connections=8, workers=4, multipart_threshold=5 * MiB,
                           part_size=5 * MiB)
    conn.create_bucket(BUCKET)
    big = os.urandom(40 * MiB)
    conn.upload(BUCKET, "big", big)
    results = {}

    def job():
        streams = [conn.open(BUCKET, "big") for _ in range(3)]
        results["first bytes"] = [stream.read(1) for stream in streams]
        time.sleep(0.5)  # every window fills up
        with conn.batch(8) as batch:  # other calls of the same connection still run
            handles = [batch.upload(BUCKET, f"small{n}", b"x") for n in range(16)]
        results["others"] = all(handle.successful() for handle in handles)
        results["rest"] = [stream.read() for stream in streams]
        for stream in streams:
            stream.close()

    import threading

    worker = threading.Thread(target=job, daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), f"stuck; got so far: {sorted(results)}"
    assert results["first bytes"] == [big[:1]] * 3
    assert results["others"]
    assert results["rest"] == [big[1:]] * 3


def test_a_stream_whose_range_fails_after_its_window_filled_raises_without_hanging(proxy):
    conn = make_connection(proxy.url, workers=2, multipart_threshold=5 * MiB, part_size=5 * MiB, retries=0)
    conn.create_bucket(BUCKET)
    big = os.urandom(40 * MiB)
    conn.upload(BUCKET, "big", big)
    proxy.clear()
    # The second range fails late, after the others filled the window.
    proxy.add_fault("status", count=100, method="GET", header_contains=("Range", f"bytes={5 * MiB}-"),
                    status=500, seconds=1.0)
    results = {}

    def read():
        with conn.open(BUCKET, "big") as stream:
            results["first"] = stream.read(5 * MiB)
            try:
                stream.read(1)
            except s3po.DownloadException as exc:
                results["error"] = exc

    import threading

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(60)
    assert not reader.is_alive(), "the reader hangs"
    assert results["first"] == big[:5 * MiB]
    assert results["error"].code == "InternalError"


@pytest.mark.parametrize("size", [100_000, 12 * MiB])
def test_a_stream_read_exactly_to_its_size_is_verified_before_the_last_bytes(wire_parts_conn, proxy, size):
    data = os.urandom(size)
    wire_parts_conn.upload(BUCKET, "s", data)
    proxy.clear()
    proxy.add_fault("flip", count=100, method="GET", offset=10)
    with wire_parts_conn.open(BUCKET, "s", retries=0) as stream:
        with pytest.raises(s3po.DownloadException, match="ETag"):
            read = 0
            while read < size:  # never asks beyond the size
                read += len(stream.read(min(65536, size - read)))
