"""Multipart uploads: parts, concurrency, per-part retries, aborts, sources, compression."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest
from s3po_fixtures import BUCKET, MiB, OneWayStream, make_connection

import s3po
from s3po.parts import multipart_etag

DATA = os.urandom(16 * MiB + 7)  # four parts of 5 MiB (the last one 1 MiB + 7 bytes)


def expected_etag(data, part_size=5 * MiB):
    pieces = [data[i:i + part_size] for i in range(0, len(data), part_size)]
    return multipart_etag(hashlib.md5(piece).digest() for piece in pieces)


def no_uploads_left(connection):
    return not connection.conn.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


@pytest.mark.parametrize("source", ["bytes", "path", "seekable", "one-way"])
def test_large_bodies_go_up_in_parts_and_come_back_whole(parts_conn, tmp_path, source):
    path = tmp_path / "big.bin"
    path.write_bytes(DATA)
    if source == "bytes":
        stored = parts_conn.upload(BUCKET, "big", DATA)
    elif source == "path":
        stored = parts_conn.upload_file(BUCKET, "big", str(path))
    elif source == "seekable":
        with open(path, "rb") as fobj:
            stored = parts_conn.upload(BUCKET, "big", fobj)
    else:
        stored = parts_conn.upload(BUCKET, "big", OneWayStream(DATA))
    assert stored.etag == expected_etag(DATA)
    assert stored.size == len(DATA)
    assert parts_conn.download(BUCKET, "big") == DATA
    assert no_uploads_left(parts_conn)


def test_a_seekable_file_is_sent_from_where_it_stands(parts_conn, tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(DATA)
    with open(path, "rb") as fobj:
        fobj.seek(1000)
        parts_conn.upload(BUCKET, "tail", fobj)
    assert parts_conn.download(BUCKET, "tail") == DATA[1000:]


def test_a_body_at_the_threshold_goes_up_in_one_request(wire_parts_conn, proxy):
    wire_parts_conn.upload(BUCKET, "edge", DATA[: 5 * MiB])
    assert proxy.count("PUT") == 1 and proxy.count("POST") == 0
    proxy.clear()
    wire_parts_conn.upload(BUCKET, "over", DATA[: 5 * MiB + 1])
    assert proxy.count("POST") == 2  # CreateMultipartUpload, CompleteMultipartUpload
    assert proxy.count("PUT") == 2


@pytest.mark.parametrize("codec", ["gzip", "deflate"])
def test_a_compressed_large_file_streams_into_parts_and_round_trips(parts_conn, tmp_path, codec):
    path = tmp_path / "big.bin"
    path.write_bytes(DATA)  # random bytes: the compressed form is as large, so multipart
    stored = parts_conn.upload_file(BUCKET, "big.bin", str(path), compress=codec)
    assert stored.etag.endswith("-4")
    head = parts_conn.head(BUCKET, "big.bin")
    assert head.content_encoding == codec
    assert parts_conn.download(BUCKET, "big.bin") == DATA
    out = tmp_path / "out.bin"
    parts_conn.download_file(BUCKET, "big.bin", str(out))
    assert out.read_bytes() == DATA
    assert parts_conn.download(BUCKET, "big.bin", decompress=False) != DATA


def test_headers_and_metadata_apply_to_a_multipart_object(parts_conn):
    parts_conn.upload(BUCKET, "big.csv", DATA, headers={"x-amz-meta-origin": "test",
                                                          "Cache-Control": "no-cache"})
    head = parts_conn.head(BUCKET, "big.csv")
    assert head.metadata == {"origin": "test"}
    assert head.content_type == "text/csv"


def test_parts_go_up_concurrently_over_the_wire(wire_parts_conn, proxy):
    proxy.latency_s = 0.3
    started = time.monotonic()
    wire_parts_conn.upload(BUCKET, "big", DATA)
    elapsed = time.monotonic() - started
    assert proxy.count("PUT") == 4
    assert proxy.max_in_flight >= 3
    # Sequential parts alone would take 4 x 0.3 s, plus create and complete.
    assert elapsed < 4 * 0.3 + 2 * 0.3, f"{elapsed:.2f} s"


def test_one_part_failing_twice_is_retried_alone(wire_parts_conn, proxy):
    proxy.add_fault("status", count=2, method="PUT", query_contains="partNumber=2", status=500)
    stored = wire_parts_conn.upload(BUCKET, "big", DATA)
    assert stored.etag == expected_etag(DATA)
    sent = {n: sum(1 for r in proxy.requests if r.method == "PUT" and f"partNumber={n}&" in r.query + "&")
            for n in (1, 2, 3, 4)}
    assert sent == {1: 1, 2: 3, 3: 1, 4: 1}
    assert wire_parts_conn.download(BUCKET, "big") == DATA


def test_a_part_cut_short_or_flipped_on_the_way_up_is_sent_again(wire_parts_conn, proxy):
    proxy.add_fault("flip_request", count=1, method="PUT", query_contains="partNumber=3")
    proxy.add_fault("reset", count=1, method="PUT", query_contains="partNumber=1")
    stored = wire_parts_conn.upload(BUCKET, "big", DATA)
    assert stored.etag == expected_etag(DATA)
    assert proxy.count("PUT") == 6
    assert wire_parts_conn.download(BUCKET, "big") == DATA


def test_a_part_that_keeps_failing_aborts_the_upload(wire_parts_conn, proxy):
    proxy.add_fault("status", count=100, method="PUT", query_contains="partNumber=2", status=503)
    with pytest.raises(s3po.UploadException) as caught:
        wire_parts_conn.upload(BUCKET, "big", DATA, retries=2)
    assert caught.value.code == "SlowDown"
    assert sum(1 for r in proxy.requests if "partNumber=2&" in r.query + "&") == 3
    assert proxy.count("DELETE") == 1  # AbortMultipartUpload
    assert no_uploads_left(wire_parts_conn)
    assert not wire_parts_conn.exists(BUCKET, "big")


def test_an_interrupted_upload_is_aborted(wire_parts_conn, proxy):
    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        wire_parts_conn.upload(BUCKET, "big", DATA, progress=interrupt)
    assert no_uploads_left(wire_parts_conn)
    assert not wire_parts_conn.exists(BUCKET, "big")


def test_a_failing_one_way_source_aborts_the_upload(parts_conn):
    class Breaks(OneWayStream):
        def readinto(self, buffer):
            if self._data.tell() > 11 * MiB:
                raise OSError("the pipe broke")
            return super().readinto(buffer)

    with pytest.raises(s3po.UploadException, match="the pipe broke") as caught:
        parts_conn.upload(BUCKET, "big", Breaks(DATA))
    assert isinstance(caught.value.__cause__, OSError)
    assert no_uploads_left(parts_conn)


def test_a_damaged_part_that_stays_damaged_fails_and_leaves_the_previous_object(wire_parts_conn, proxy):
    wire_parts_conn.upload(BUCKET, "big", b"the previous version")
    proxy.add_fault("flip_request", count=100, method="PUT", query_contains="partNumber=4")
    with pytest.raises(s3po.UploadException, match="ETag"):
        wire_parts_conn.upload(BUCKET, "big", DATA, retries=1)
    assert no_uploads_left(wire_parts_conn)
    # The upload was aborted before anything replaced the object: it stays as it was.
    assert wire_parts_conn.download(BUCKET, "big") == b"the previous version"


def test_progress_counts_every_part_and_ends_at_the_total(parts_conn):
    calls = []
    parts_conn.upload(BUCKET, "big", DATA, progress=lambda done, total: calls.append((done, total)))
    assert len(calls) >= 4
    assert calls[-1] == (len(DATA), len(DATA))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert all(total == len(DATA) for _, total in calls)
    assert len(set(calls)) == len(calls)  # the end is reported once


def test_progress_of_a_stream_learns_its_total_at_the_end(parts_conn):
    calls = []
    parts_conn.upload(BUCKET, "big", OneWayStream(DATA), progress=lambda d, t: calls.append((d, t)))
    assert all(total is None for _, total in calls[:-1])
    assert calls[-1] == (len(DATA), len(DATA))


def test_progress_calls_come_from_the_calling_thread(parts_conn):
    threads = set()
    parts_conn.upload(BUCKET, "big", DATA, progress=lambda d, t: threads.add(threading.get_ident()))
    assert threads == {threading.get_ident()}


def test_an_object_too_large_for_the_part_size_is_refused_before_any_request(tmp_path, proxy):
    sparse = tmp_path / "sparse.bin"
    with open(sparse, "wb") as fobj:
        fobj.truncate(10_001 * 5 * MiB)  # takes no disk space
    connection = make_connection(proxy.url, part_size=5 * MiB)
    proxy.clear()
    with pytest.raises(ValueError, match="at most 10000"):
        connection.upload_file(BUCKET, "huge", str(sparse))
    assert proxy.requests == []


@pytest.mark.parametrize("bad", [0, "5", 1.5, -1])
def test_a_bad_progress_or_workers_value_is_refused(parts_conn, bad):
    with pytest.raises(TypeError, match="progress"):
        parts_conn.upload(BUCKET, "k", b"x", progress=bad)
    with pytest.raises(ValueError, match="workers"):
        make_connection(workers=bad if not isinstance(bad, str) else 0)


def test_a_completion_whose_answer_was_lost_is_recognised_on_retry(wire_parts_conn, proxy):
    # The server completes the upload, but its answer never arrives; the retry finds the
    # upload gone (NoSuchUpload) and the object there with the ETag of the parts sent.
    proxy.add_fault("drop_after_headers", count=1, method="POST", query_contains="uploadId=")
    stored = wire_parts_conn.upload(BUCKET, "big", DATA)
    assert stored.etag == expected_etag(DATA)
    assert proxy.count("POST") == 3  # create, complete (answer lost), complete again
    assert wire_parts_conn.download(BUCKET, "big") == DATA


def test_a_large_upload_runs_in_the_background_with_its_progress(parts_conn):
    calls = []
    handle = parts_conn.upload(BUCKET, "big", DATA, background=True,
                               progress=lambda done, total: calls.append((done, total)))
    assert parts_conn.wait() is True
    assert handle.get().etag == expected_etag(DATA)
    assert calls[-1] == (len(DATA), len(DATA)) and len(calls) >= 4
    assert no_uploads_left(parts_conn)
