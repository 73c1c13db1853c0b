"""No damaged byte kept or handed over, no caller's data lost, every failure named.

Over the wire, through the fault proxy, unless the behaviour is the same on every
backend (then on each of them).
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os

import pytest
from s3po_fixtures import BUCKET, SMALL_PARTS, MiB, make_connection

import s3po
from s3po.parts import multipart_etag

DATA = os.urandom(300_000)


def leftovers(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".s3po-part"))


# -- uploads ------------------------------------------------------------------------------


def test_damaged_bytes_stored_by_one_attempt_are_removed_whatever_the_last_error(wire_conn, proxy):
    # The first attempt's body is damaged on the way and stored so (its ETag says so);
    # every later attempt fails otherwise. The damaged object must not stay.
    proxy.add_fault("flip_request", count=1, method="PUT")
    proxy.add_fault("status", count=100, method="PUT", status=503)
    with pytest.raises(s3po.UploadException) as caught:
        wire_conn.upload(BUCKET, "k", DATA, retries=2)
    assert caught.value.code == "SlowDown"
    assert proxy.count("PUT") == 3
    assert proxy.count("DELETE") == 1  # the damaged object, looked at and removed
    proxy.clear()
    assert not wire_conn.exists(BUCKET, "k")


def test_damaged_bytes_are_removed_only_if_the_key_still_holds_them(wire_conn, proxy, moto_server):
    wire_conn.upload(BUCKET, "k", b"the good version")
    proxy.clear()
    proxy.add_fault("flip_request", count=1, method="PUT")
    proxy.add_fault("status", count=100, method="PUT", status=503)

    def someone_else_writes(**kwargs):
        # Between the damaged attempt and the cleanup, another writer stores its object.
        if proxy.count("PUT") == 2 and not written:
            written.append(True)
            # Straight to the server: the proxy fails every PUT but the first.
            make_connection(moto_server.url).client.put_object(Bucket=BUCKET, Key="k", Body=b"another writer")

    written = []
    wire_conn.client.meta.events.register("before-send.s3.PutObject", someone_else_writes)
    with pytest.raises(s3po.UploadException):
        wire_conn.upload(BUCKET, "k", DATA, retries=2)
    assert wire_conn.download(BUCKET, "k") == b"another writer"


def test_a_failed_multipart_upload_names_the_failing_part_and_its_bytes(wire_parts_conn, proxy):
    proxy.add_fault("status", count=100, method="PUT", query_contains="partNumber=2", status=500)
    with pytest.raises(s3po.UploadException) as caught:
        wire_parts_conn.upload(BUCKET, "big", os.urandom(12 * MiB), retries=1)
    message = str(caught.value)
    assert f"part 2 (bytes {5 * MiB}-{10 * MiB - 1})" in message, message
    assert caught.value.code == "InternalError"
    assert proxy.count("DELETE", path_contains="/big") == 1  # aborted


# -- downloads into the caller's file object -------------------------------------------------


@pytest.mark.parametrize("position", [0, 3, 8])
def test_a_failed_download_leaves_the_callers_file_object_as_it_was(conn, position):
    precious = io.BytesIO(b"precious")
    precious.seek(position)
    with pytest.raises(s3po.NotFound):
        conn.download(BUCKET, "missing", precious)
    assert precious.getvalue() == b"precious"
    assert precious.tell() == position


def test_a_large_download_into_a_file_object_comes_in_ranges_and_lands_whole(wire_parts_conn, proxy):
    big = os.urandom(12 * MiB)
    wire_parts_conn.upload(BUCKET, "big", big)
    proxy.clear()
    sink = io.BytesIO(b"kept before")
    sink.seek(0, io.SEEK_END)
    wire_parts_conn.download(BUCKET, "big", sink)
    assert sink.getvalue() == b"kept before" + big
    assert proxy.count("GET") == 3


# -- compressed objects ------------------------------------------------------------------------


def test_an_empty_object_stored_as_gzip_downloads_as_nothing(conn, tmp_path):
    conn.client.put_object(Bucket=BUCKET, Key="empty.gz", Body=b"", ContentEncoding="gzip")
    assert conn.download(BUCKET, "empty.gz") == b""
    conn.download_file(BUCKET, "empty.gz", str(tmp_path / "empty"))
    assert (tmp_path / "empty").read_bytes() == b""
    with conn.open(BUCKET, "empty.gz") as stream:
        assert stream.read() == b""


def test_a_multi_member_gzip_object_decodes_whole(conn):
    body = gzip.compress(b"first member\n") + gzip.compress(b"second member\n")
    conn.client.put_object(Bucket=BUCKET, Key="two.gz", Body=body, ContentEncoding="gzip")
    assert conn.download(BUCKET, "two.gz") == b"first member\nsecond member\n"


# -- local files -----------------------------------------------------------------------------


def test_a_full_disk_fails_at_once_naming_the_target_and_leaves_nothing(wire_parts_conn, proxy, tmp_path,
                                                                       monkeypatch):
    wire_parts_conn.upload(BUCKET, "big", os.urandom(12 * MiB))
    proxy.clear()
    target = tmp_path / "out.bin"
    target.write_bytes(b"the previous file")

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    with pytest.raises(OSError) as caught:
        wire_parts_conn.download_file(BUCKET, "big", str(target))
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(target)
    assert not isinstance(caught.value, s3po.S3POException)
    assert proxy.count("GET") == 1  # failed as soon as the size was known
    assert target.read_bytes() == b"the previous file"
    assert leftovers(tmp_path) == []


def test_a_target_whose_parent_is_a_file_is_named_in_the_error(wire_conn, proxy, tmp_path):
    (tmp_path / "a-file").write_bytes(b"x")
    target = tmp_path / "a-file" / "sub" / "out.bin"
    with pytest.raises(NotADirectoryError) as caught:
        wire_conn.download_file(BUCKET, "k", str(target))
    assert caught.value.filename == str(target)
    assert proxy.requests == []


# -- deleting --------------------------------------------------------------------------------


def test_delete_prefix_of_the_whole_bucket_needs_an_explicit_yes(wire_conn, proxy):
    wire_conn.upload(BUCKET, "a", b"1")
    proxy.clear()
    with pytest.raises(ValueError, match="every object in bucket"):
        wire_conn.delete_prefix(BUCKET, "")
    assert proxy.requests == []
    assert wire_conn.delete_prefix(BUCKET, "", whole_bucket=True) == 1
    assert list(wire_conn.list(BUCKET)) == []


# -- content checks that must not quietly fall back to sizes --------------------------------


def _store_in_parts(client, key, parts):
    created = client.create_multipart_upload(Bucket=BUCKET, Key=key)
    sent = []
    for number, body in enumerate(parts, start=1):
        answer = client.upload_part(Bucket=BUCKET, Key=key, UploadId=created["UploadId"], PartNumber=number,
                                    Body=body)
        sent.append({"ETag": answer["ETag"], "PartNumber": number})
    client.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=created["UploadId"],
                                     MultipartUpload={"Parts": sent})
    return multipart_etag(hashlib.md5(body).digest() for body in parts)


def test_a_small_multipart_object_arriving_whole_is_checked_part_by_part(wire_conn, proxy, tmp_path):
    # 7 MiB stored as 5 + 2 MiB parts, as the Go SDK and rclone write them: it comes
    # whole in the first GET (8 MiB asked), and its multipart ETag still checks it.
    parts = [os.urandom(5 * MiB), os.urandom(2 * MiB)]
    etag = _store_in_parts(wire_conn.client, "seven", parts)
    whole = b"".join(parts)
    for fetch in (lambda: wire_conn.download(BUCKET, "seven"),
                  lambda: _read_file(wire_conn, tmp_path),
                  lambda: _read_stream(wire_conn)):
        proxy.clear()
        proxy.add_fault("flip", count=1, method="GET", offset=6 * MiB)
        assert fetch() == whole
        assert proxy.count("GET") == 2  # the damaged answer was caught and asked again
    assert wire_conn.head(BUCKET, "seven").etag == etag


def _read_file(conn, folder):
    conn.download_file(BUCKET, "seven", str(folder / "seven"))
    return (folder / "seven").read_bytes()


def _read_stream(conn):
    for attempt in range(2):
        try:
            with conn.open(BUCKET, "seven") as stream:
                return stream.read()
        except s3po.DownloadException:
            if attempt:
                raise  # a stream cannot take back bytes: it says so at the end; once more
    raise AssertionError("unreachable")


def test_when_the_part_layout_cannot_be_learned_the_download_fails(proxy, tmp_path):
    wire_parts_conn = make_connection(proxy.url, retries=3, checksum="md5", **SMALL_PARTS)  # ETag checks only
    wire_parts_conn.create_bucket(BUCKET)
    big = os.urandom(12 * MiB)
    wire_parts_conn.upload(BUCKET, "big", big)
    proxy.clear()
    proxy.add_fault("status", count=100, method="HEAD", status=503)
    proxy.add_fault("flip", count=1, method="GET", header_contains=("Range", f"bytes={5 * MiB}-"))
    target = tmp_path / "out.bin"
    for fetch in (lambda: wire_parts_conn.download(BUCKET, "big", retries=1),
                  lambda: wire_parts_conn.download_file(BUCKET, "big", str(target), retries=1),
                  lambda: wire_parts_conn.open(BUCKET, "big", retries=1).read()):
        with pytest.raises(s3po.DownloadException) as caught:
            fetch()
        assert caught.value.code == "503"  # a HEAD's error has no body: botocore names it by status
    assert not target.exists() and leftovers(tmp_path) == []


def test_learning_the_layout_of_a_whole_arriving_object_never_multiplies_retries(wire_conn, proxy):
    parts = [os.urandom(5 * MiB), os.urandom(2 * MiB)]
    _store_in_parts(wire_conn.client, "seven", parts)
    for fetch in (lambda: wire_conn.download(BUCKET, "seven", retries=2),
                  lambda: wire_conn.open(BUCKET, "seven", retries=2)):
        proxy.clear()
        proxy.add_fault("status", count=100, method="HEAD", status=503)
        with pytest.raises(s3po.DownloadException):
            fetch()
        assert proxy.count("HEAD") <= 3 and proxy.count("GET") <= 3, (proxy.count("HEAD"), proxy.count("GET"))


def test_a_failed_download_keeps_no_buffer_alive_in_the_error_it_leaves(conn):
    import gc
    import tracemalloc

    big = os.urandom(24 * MiB)
    conn.upload(BUCKET, "big", big)
    real_get = conn.client.get_object
    conn.client.get_object  # built
    conn.verify_etag = True
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        with conn.batch(2) as batch:
            # A multipart-sized download into memory that fails at its end: its size is wrong.
            handle = batch.download(BUCKET, "big", retries=0, progress=_fail_at_the_end)
        gc.collect()
        assert handle.exception is not None
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 4 * MiB, f"{kept / MiB:.0f} MiB kept alive by a failed call"
    del real_get


def _fail_at_the_end(done, total):
    if total and done >= total:
        raise RuntimeError("the last progress report fails the call")
