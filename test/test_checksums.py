"""Checksums a store verifies and keeps: CRCs sent with uploads, stored CRCs checking downloads.

Most of these run through the fault proxy with ``proxy.checksums`` set: a store that
verifies ``x-amz-checksum-*`` on arrival, echoes it, keeps a full-object checksum and
returns it on a whole GET with checksum mode, as S3 does (moto does almost none of it;
see s3po.testing.checksumstore). The rest show the MD5 fallback on a store that keeps
none (moto's PutObject, as it is).
"""

from __future__ import annotations

import base64
import io
import logging
import os
import subprocess
import sys
import textwrap
import tracemalloc
import zlib

import pytest
from s3po_fixtures import BUCKET, SMALL_PARTS, MiB, make_connection

import s3po
from s3po import checksums, storechecks
from s3po.checksums import available, by_name
from s3po.storechecks import StoreChecks, check_checksum_setting
from s3po.testing.checksumstore import ChecksumStore

CRC_KINDS = ["crc64nvme", "crc32c", "crc32"]


def crc_of(name: str, data: bytes) -> str:
    algorithm = by_name(name)
    return algorithm.encode(algorithm.compute(data, 0))


def puts(proxy):
    return [r for r in proxy.requests if r.method == "PUT"]


def gets(proxy):
    return [r for r in proxy.requests if r.method == "GET"]


def leftovers(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".s3po-part"))


@pytest.fixture
def verifying(proxy):
    """The proxy as a store that verifies and keeps checksums, as S3 does."""
    proxy.checksums = ChecksumStore()
    return proxy.checksums


@pytest.fixture
def checked(caplog):
    """What checked each download, from s3po's DEBUG log: ["CRC64NVME", "MD5", ...]."""
    caplog.set_level(logging.DEBUG, logger="s3po.downloads")

    def kinds():
        return [record.getMessage().rpartition("checked by ")[2] for record in caplog.records
                if "checked by" in record.getMessage()]

    return kinds


# -- the algorithms -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(available()))
def test_crcs_combine_from_pieces_exactly_as_computed_whole(name):
    algorithm = by_name(name)
    data = os.urandom(300_001)
    whole = algorithm.compute(data, 0)
    for cut in (0, 1, 4096, 150_000, 300_001):
        first, second = data[:cut], data[cut:]
        combined = algorithm.combine(algorithm.compute(first, 0), algorithm.compute(second, 0), len(second))
        assert combined == whole, cut


def test_the_standard_librarys_crc32_is_combined_without_awscrt():
    # The pure-Python combination is what a machine without awscrt uses.
    combine = checksums._combiner(0xEDB88320, 32)
    data = os.urandom(10_000)
    assert combine(zlib.crc32(data[:3333]), zlib.crc32(data[3333:]), len(data) - 3333) == zlib.crc32(data)


def test_an_awscrt_without_combine_functions_is_combined_in_python(monkeypatch):
    crt = pytest.importorskip("awscrt.checksums")
    for name in ("crc32c", "crc64nvme"):
        monkeypatch.delattr(crt, "combine_" + name)
    monkeypatch.setattr(checksums, "_available", None)
    try:
        found = checksums.available()
        data = os.urandom(100_000)
        for name in ("crc32c", "crc64nvme"):
            algorithm = found[name]
            combined = algorithm.combine(algorithm.compute(data[:777], 0), algorithm.compute(data[777:], 0),
                                         len(data) - 777)
            assert combined == algorithm.compute(data, 0), name
    finally:
        checksums._available = None  # the next call finds the real awscrt again


def test_checksums_are_encoded_as_s3_sends_them():
    # Base64 of the CRC's big-endian bytes: the CRC32 of "Hello, World!" is 0xec4ac3d0.
    assert crc_of("crc32", b"Hello, World!") == base64.b64encode(bytes.fromhex("ec4ac3d0")).decode() == "7ErD0A=="
    assert by_name("crc32").decode("7ErD0A==") == 0xEC4AC3D0
    assert by_name("crc32").decode("not base64!") is None
    assert len(base64.b64decode(crc_of("crc64nvme", b"x"))) == 8


def test_a_checksum_setting_is_checked_before_any_request(monkeypatch):
    with pytest.raises(ValueError, match="checksum must be one of"):
        s3po.Connection(checksum="sha256")
    with pytest.raises(ValueError, match="checksum must be one of"):
        s3po.Connection(checksum=None)
    assert s3po.Connection(checksum="CRC32").checksum == "crc32"
    # Without awscrt, only CRC32 (zlib) is at hand: asking for CRC32C says what to install.
    monkeypatch.setattr(checksums, "_available", {"crc32": available()["crc32"]})
    with pytest.raises(ValueError, match=r"awscrt .*s3po\[crt\]"):
        check_checksum_setting("crc32c")
    assert StoreChecks("auto", None).algorithm.name == "crc32"


def test_what_a_connection_starts_out_knowing_of_its_store():
    aws = StoreChecks("auto", "https://s3.eu-west-1.amazonaws.com")
    assert aws.for_upload("put_object").md5 is False and aws.whole_first_get()
    custom = StoreChecks("auto", "http://127.0.0.1:9000")
    both = custom.for_upload("put_object")
    assert both.md5 is True and both.crc is not None  # not yet known: both digests, to learn
    custom.learn_upload("put_object", echoed=False)
    assert custom.for_upload("put_object").crc is None  # a store that ignores them: Content-MD5 alone
    assert custom.for_upload("upload_part").crc is not None  # parts are learned on their own
    custom.learn_download(had_checksum=False)
    assert not custom.whole_first_get()
    custom.learn_upload("upload_part", echoed=True)  # an echo after all: it keeps checksums too
    assert custom.whole_first_get() and custom.for_upload("upload_part") == storechecks.UploadChecks(
        md5=False, crc=custom.algorithm)
    md5 = StoreChecks("md5", None)
    assert md5.for_upload("put_object").crc is None and not md5.whole_first_get()
    explicit = StoreChecks("crc32", "http://127.0.0.1:9000")
    explicit.learn_upload("put_object", echoed=False)  # trusted all the same
    assert explicit.for_upload("put_object") == storechecks.UploadChecks(md5=False, crc=by_name("crc32"))
    mocked = StoreChecks("auto", None, keeps_checksums=False)
    assert not mocked.whole_first_get() and mocked.for_upload("put_object").md5


# -- uploads --------------------------------------------------------------------------


def test_a_store_that_echoes_checksums_gets_them_alone_after_the_first_upload(wire_conn, proxy, verifying):
    first, second = os.urandom(1000), os.urandom(1000)
    wire_conn.upload(BUCKET, "first", first)
    wire_conn.upload(BUCKET, "second", second)
    sent = puts(proxy)
    assert "Content-MD5" in sent[0].headers  # not yet known: both digests
    assert sent[0].headers["x-amz-checksum-crc64nvme"] == crc_of("crc64nvme", first)
    assert "Content-MD5" not in sent[1].headers  # known to verify: the CRC alone
    assert sent[1].headers["x-amz-checksum-crc64nvme"] == crc_of("crc64nvme", second)
    assert verifying.stored(f"/{BUCKET}/second") == crc_of("crc64nvme", second)


def test_a_store_that_ignores_checksums_gets_content_md5_alone_after_the_first_upload(wire_conn, proxy):
    wire_conn.upload(BUCKET, "first", b"one")
    wire_conn.upload(BUCKET, "second", b"two")
    sent = puts(proxy)
    assert "Content-MD5" in sent[0].headers and "x-amz-checksum-crc64nvme" in sent[0].headers
    assert "Content-MD5" in sent[1].headers and not any(
        name.lower().startswith("x-amz-checksum-") for name in sent[1].headers)


@pytest.mark.parametrize("learned", [False, True], ids=["first upload", "store known"])
def test_a_put_damaged_on_the_way_is_refused_by_the_store_and_sent_again(wire_conn, proxy, verifying, learned):
    if learned:
        wire_conn.upload(BUCKET, "teach", b"x")
        proxy.clear()
        proxy.checksums = verifying
    data = os.urandom(100_000)
    proxy.add_fault("flip_request", count=1, method="PUT")
    wire_conn.upload(BUCKET, "k", data)
    assert verifying.refused == 1 and len(puts(proxy)) == 2
    assert wire_conn.download(BUCKET, "k") == data


def test_a_damaged_upload_part_is_refused_and_only_that_part_is_sent_again(proxy, verifying):
    conn = make_connection(proxy.url, retries=3, **SMALL_PARTS)
    conn.create_bucket(BUCKET)
    conn.upload(BUCKET, "teach", os.urandom(6 * MiB))  # its parts' echoes: parts now carry CRCs alone
    proxy.clear()
    proxy.checksums = verifying
    data = os.urandom(12 * MiB)
    proxy.add_fault("flip_request", count=1, method="PUT", query_contains="partNumber=2")
    conn.upload(BUCKET, "big", data)
    parts = [r for r in puts(proxy) if "partNumber" in r.query]
    assert len(parts) == 4 and sum("partNumber=2" in r.query for r in parts) == 2
    assert all("Content-MD5" not in r.headers and "x-amz-checksum-crc64nvme" in r.headers for r in parts)
    assert verifying.refused == 1
    assert conn.download(BUCKET, "big") == data


def test_a_multipart_upload_declares_a_full_object_checksum_that_verifies_end_to_end(
        proxy, verifying, checked, tmp_path):
    conn = make_connection(proxy.url, retries=3, **SMALL_PARTS)
    conn.create_bucket(BUCKET)
    data = os.urandom(13 * MiB + 5)
    conn.upload(BUCKET, "big", data)
    create = next(r for r in proxy.requests if r.method == "POST" and "uploads" in r.query)
    assert create.headers["x-amz-checksum-algorithm"] == "CRC64NVME"
    assert create.headers["x-amz-checksum-type"] == "FULL_OBJECT"
    complete = next(r for r in proxy.requests if r.method == "POST" and "uploadId" in r.query)
    assert complete.headers["x-amz-checksum-crc64nvme"] == crc_of("crc64nvme", data)  # combined from the parts
    assert verifying.stored(f"/{BUCKET}/big") == crc_of("crc64nvme", data)
    proxy.clear()
    proxy.checksums = verifying
    target = tmp_path / "out.bin"
    conn.download_file(BUCKET, "big", str(target))
    assert target.read_bytes() == data
    assert checked() == ["CRC64NVME"]
    first = gets(proxy)[0]
    assert "Range" not in first.headers and first.headers["x-amz-checksum-mode"] == "ENABLED"
    assert proxy.count("HEAD") == 0  # no part-size HEAD: the CRC needs no part layout


class _CompletionOnly(ChecksumStore):
    """A store that checks no part, only the full-object checksum at completion."""

    def begin(self, method, path, query, headers):
        arrival = super().begin(method, path, query, headers)
        if "partNumber" in query:
            arrival._claimed = None
        return arrival


def test_a_completion_whose_checksum_is_not_the_parts_is_refused(proxy):
    conn = make_connection(proxy.url, retries=1, checksum="crc64nvme", **SMALL_PARTS)  # parts carry no MD5
    conn.create_bucket(BUCKET)
    proxy.checksums = _CompletionOnly()
    data = os.urandom(11 * MiB)
    proxy.add_fault("flip_request", count=1, method="PUT", query_contains="partNumber=3")
    with pytest.raises(s3po.UploadException, match="BadDigest"):
        conn.upload(BUCKET, "big", data)
    assert not conn.exists(BUCKET, "big")
    assert conn.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_an_echo_that_is_not_the_checksum_sent_fails_the_upload_and_removes_the_object(wire_conn, proxy, verifying):
    proxy.response_headers = {"x-amz-checksum-crc64nvme": crc_of("crc64nvme", b"other bytes")}
    with pytest.raises(s3po.UploadException, match="CRC64NVME"):
        wire_conn.upload(BUCKET, "k", os.urandom(1000), retries=1)
    proxy.response_headers = {}
    assert not wire_conn.exists(BUCKET, "k")


@pytest.mark.parametrize("name", CRC_KINDS)
def test_each_checksum_kind_goes_up_and_checks_the_way_down(proxy, verifying, checked, name, tmp_path):
    conn = make_connection(proxy.url, retries=3, checksum=name, **SMALL_PARTS)
    conn.create_bucket(BUCKET)
    proxy.clear()
    proxy.checksums = verifying
    small, big = os.urandom(4000), os.urandom(12 * MiB)
    conn.upload(BUCKET, "small", small)
    conn.upload(BUCKET, "big", big)
    header = f"x-amz-checksum-{name}"
    assert all(header in r.headers and "Content-MD5" not in r.headers for r in puts(proxy))
    assert verifying.stored(f"/{BUCKET}/small") == crc_of(name, small)
    assert verifying.stored(f"/{BUCKET}/big") == crc_of(name, big)
    proxy.add_fault("flip", count=1, method="GET", header_contains=("Range", f"bytes={10 * MiB}-"))
    assert conn.download(BUCKET, "small") == small
    conn.download_file(BUCKET, "big", str(tmp_path / "big"))
    assert (tmp_path / "big").read_bytes() == big
    assert checked() == [name.upper()] * 2


# -- downloads ------------------------------------------------------------------------


@pytest.fixture
def crc_object(proxy, verifying):
    """A 16 MiB object with a stored CRC64NVME, and a Connection (5 MiB ranges) to fetch it."""
    conn = make_connection(proxy.url, retries=3, **SMALL_PARTS)
    conn.create_bucket(BUCKET)
    data = os.urandom(16 * MiB + 7)
    conn.upload(BUCKET, "big", data)
    proxy.clear()
    proxy.checksums = verifying
    return conn, data


@pytest.mark.parametrize("offset", [5 * MiB + 10, 15 * MiB + 3], ids=["a middle range", "the last range"])
def test_a_flipped_byte_in_a_range_is_caught_by_the_crc_and_never_written(crc_object, proxy, checked, offset,
                                                                         tmp_path):
    conn, data = crc_object
    start = offset - offset % (5 * MiB)
    proxy.add_fault("flip", count=1, method="GET", header_contains=("Range", f"bytes={start}-"),
                    offset=offset - start)
    target = tmp_path / "out.bin"
    conn.download_file(BUCKET, "big", str(target))
    assert target.read_bytes() == data and checked() == ["CRC64NVME"]
    # The whole object was fetched again (which range was damaged is not known).
    assert len(gets(proxy)) == 2 * 4


def test_a_range_damaged_every_time_fails_and_leaves_nothing(crc_object, proxy, tmp_path):
    conn, _ = crc_object
    proxy.add_fault("flip", count=100, method="GET", header_contains=("Range", f"bytes={10 * MiB}-"))
    target = tmp_path / "out.bin"
    with pytest.raises(s3po.DownloadException, match="CRC64NVME") as caught:
        conn.download_file(BUCKET, "big", str(target), retries=1)
    assert not target.exists() and leftovers(tmp_path) == []
    with pytest.raises(s3po.DownloadException, match="CRC64NVME"):
        conn.download(BUCKET, "big", retries=1)
    fobj = io.BytesIO(b"untouched")
    with pytest.raises(s3po.DownloadException):
        conn.download(BUCKET, "big", fobj, retries=1)
    assert fobj.getvalue() == b"untouched"
    assert "bytes received" in str(caught.value)


def test_a_stream_is_checked_by_the_crc_at_its_end(crc_object, proxy):
    conn, data = crc_object
    with conn.open(BUCKET, "big") as stream:
        assert stream.read() == data
    proxy.add_fault("flip", count=100, method="GET", header_contains=("Range", f"bytes={5 * MiB}-"))
    with conn.open(BUCKET, "big", retries=0) as stream:
        with pytest.raises(s3po.DownloadException, match="CRC64NVME"):
            stream.read()


def test_a_small_object_comes_whole_in_one_get_checked_by_its_crc(wire_conn, proxy, verifying, checked):
    data = os.urandom(50_000)
    wire_conn.upload(BUCKET, "small", data)
    proxy.clear()
    proxy.checksums = verifying
    proxy.add_fault("flip", count=1, method="GET")
    assert wire_conn.download(BUCKET, "small") == data
    assert len(gets(proxy)) == 2 and proxy.count("HEAD") == 0
    assert checked() == ["CRC64NVME"]


def test_the_botocore_path_checks_the_same_crc(proxy, verifying, checked, tmp_path):
    conn = make_connection(proxy.url, retries=3, request_path="botocore", **SMALL_PARTS)
    conn.create_bucket(BUCKET)
    data = os.urandom(11 * MiB)
    conn.upload(BUCKET, "big", data)
    conn.upload(BUCKET, "small", data[:1000])
    proxy.add_fault("flip", count=1, method="GET", header_contains=("Range", f"bytes={5 * MiB}-"))
    proxy.add_fault("flip", count=1, method="GET", path_contains="small")
    assert conn.download(BUCKET, "big") == data
    assert conn.download(BUCKET, "small") == data[:1000]
    assert checked() == ["CRC64NVME", "CRC64NVME"]


def test_a_store_that_keeps_no_checksums_falls_back_to_md5_and_says_which(proxy, checked, tmp_path):
    conn = make_connection(proxy.url, retries=3, **SMALL_PARTS)
    conn.create_bucket(BUCKET)
    single = os.urandom(3 * MiB)
    conn.upload(BUCKET, "single", single)  # moto keeps no checksum for a PutObject
    assert conn.download(BUCKET, "single") == single
    first = gets(proxy)[-1]
    assert first.headers.get("x-amz-checksum-mode") == "ENABLED" and "Range" not in first.headers
    proxy.clear()
    # Known now to keep none: the next download starts with a range, checked by MD5s.
    multipart = os.urandom(12 * MiB)
    conn.client.put_object(Bucket=BUCKET, Key="multipart-less", Body=multipart)
    proxy.add_fault("flip", count=1, method="GET", header_contains=("Range", f"bytes={5 * MiB}-"))
    conn.download_file(BUCKET, "multipart-less", str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == multipart
    assert all("Range" in r.headers for r in gets(proxy))
    assert checked() == ["MD5", "MD5"]


def test_a_stream_asks_a_head_for_the_stored_checksum_and_is_checked_by_it(crc_object, proxy):
    conn, data = crc_object
    with conn.open(BUCKET, "big") as stream:
        assert stream.read() == data
    assert "Range" in gets(proxy)[0].headers  # a stream reads ahead in ranges from the start
    head = [r for r in proxy.requests if r.method == "HEAD"]
    assert len(head) == 1 and head[0].headers["x-amz-checksum-mode"] == "ENABLED"


def test_an_opaque_etag_is_not_settled_for_when_a_stored_checksum_can_be_asked_for(wire_conn, proxy, verifying):
    data = os.urandom(100_000)
    wire_conn.upload(BUCKET, "k", data)
    proxy.clear()
    proxy.checksums = verifying
    proxy.response_headers = {"ETag": '"opaque-etag-of-its-own"'}
    proxy.ignored_request_headers = {"If-Match"}  # the ETag is not the one the store compares with
    with wire_conn.open(BUCKET, "k") as stream:
        assert stream.read() == data
    assert [r.headers.get("x-amz-checksum-mode") for r in proxy.requests if r.method == "HEAD"] == ["ENABLED"]
    proxy.add_fault("flip", count=1, method="GET")
    with wire_conn.open(BUCKET, "k") as stream:  # a stream cannot take bytes back: it raises at its end
        with pytest.raises(s3po.DownloadException, match="CRC64NVME"):
            stream.read()


def test_a_store_known_to_keep_no_checksums_is_not_asked_again_and_again(proxy, checked):
    conn = make_connection(proxy.url, retries=3, verify_etag=False, **SMALL_PARTS)
    conn.create_bucket(BUCKET)
    for name in ("a", "b", "c"):
        conn.client.put_object(Bucket=BUCKET, Key=name, Body=b"x" * 1000)
    proxy.clear()
    for name in ("a", "b", "c"):
        assert conn.download(BUCKET, name) == b"x" * 1000
    assert proxy.count("HEAD") == 0 and len(gets(proxy)) == 3
    assert [r.headers.get("x-amz-checksum-mode") for r in gets(proxy)] == ["ENABLED", None, None]


def test_a_store_that_ignores_range_is_read_as_one_checked_stream(crc_object, proxy, verifying, checked, tmp_path):
    conn, data = crc_object
    proxy.ignored_request_headers = {"Range"}
    target = tmp_path / "out.bin"
    conn.download_file(BUCKET, "big", str(target))
    assert target.read_bytes() == data and checked() == ["CRC64NVME"]
    asked = len(gets(proxy))
    assert asked <= 2 + 4  # the first whole answer, the ranges that came back whole, the whole again
    proxy.clear()
    proxy.checksums = verifying
    proxy.ignored_request_headers = {"Range"}
    assert conn.download(BUCKET, "big") == data
    assert len(gets(proxy)) == 1  # learned: one GET, read whole


def test_a_byte_flipped_in_the_first_range_of_a_whole_first_answer_is_caught(crc_object, proxy, checked):
    conn, data = crc_object
    proxy.add_fault("flip", count=1, method="GET", offset=1000)
    assert conn.download(BUCKET, "big") == data
    assert "Range" not in gets(proxy)[0].headers and checked() == ["CRC64NVME"]


def test_a_small_download_allocates_nothing_near_a_part_size(wire_conn, proxy, verifying, tmp_path):
    wire_conn.upload(BUCKET, "small", b"s" * 1000)
    for fetch in (lambda: wire_conn.download(BUCKET, "small"),
                  lambda: wire_conn.download_file(BUCKET, "small", str(tmp_path / "small")),
                  lambda: wire_conn.download(BUCKET, "small", io.BytesIO())):
        fetch()  # warm: the client and its connections are made
        tracemalloc.start()
        try:
            fetch()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 1 * MiB, peak


def test_one_pwrite_per_range_and_bodies_received_with_readinto(crc_object, monkeypatch, tmp_path):
    conn, data = crc_object
    writes = []
    real_pwrite = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, view, offset: writes.append(len(view)) or real_pwrite(fd, view, offset))
    conn.download_file(BUCKET, "big", str(tmp_path / "out.bin"))
    assert (tmp_path / "out.bin").read_bytes() == data
    assert sorted(writes) == sorted([5 * MiB] * 3 + [MiB + 7])  # 16 MiB + 7 in 5 MiB ranges


def test_checksum_md5_never_sends_nor_asks_for_a_crc(proxy, verifying, checked):
    conn = make_connection(proxy.url, retries=3, checksum="md5")
    conn.create_bucket(BUCKET)
    conn.upload(BUCKET, "k", b"abc")
    assert conn.download(BUCKET, "k") == b"abc"
    assert not any(name.lower().startswith("x-amz-checksum") for r in proxy.requests for name in r.headers)
    assert checked() == ["MD5"]


# -- stores that refuse checksum headers ---------------------------------------------


def test_a_store_that_refuses_checksum_headers_gets_the_upload_with_content_md5_alone(wire_conn, proxy):
    proxy.add_fault("status", count=1, method="PUT", status=400, code="InvalidArgument",
                    header_contains=("x-amz-checksum-crc64nvme", ""))
    wire_conn.upload(BUCKET, "first", b"one", retries=0)  # the fallback is no retry
    wire_conn.upload(BUCKET, "second", b"two")
    sent = puts(proxy)
    assert len(sent) == 3
    assert all("Content-MD5" in r.headers for r in sent)
    assert [any(n.lower().startswith("x-amz-checksum") for n in r.headers) for r in sent] == [True, False, False]
    assert wire_conn.download(BUCKET, "first") == b"one"


def test_a_store_that_refuses_a_declared_algorithm_gets_a_plain_multipart_upload(proxy):
    conn = make_connection(proxy.url, retries=3, **SMALL_PARTS)
    conn.create_bucket(BUCKET)
    proxy.clear()
    proxy.add_fault("status", count=1, method="POST", status=400, code="InvalidRequest",
                    header_contains=("x-amz-checksum-algorithm", ""))
    data = os.urandom(11 * MiB)
    conn.upload(BUCKET, "big", data)
    parts = [r for r in puts(proxy) if "partNumber" in r.query]
    assert len(parts) == 3 and all("Content-MD5" in r.headers and "x-amz-checksum-crc64nvme" not in r.headers
                                   for r in parts)
    assert conn.download(BUCKET, "big") == data


def test_a_store_that_takes_the_declared_algorithm_but_refuses_it_on_parts(proxy):
    conn = make_connection(proxy.url, retries=3, **SMALL_PARTS)
    conn.create_bucket(BUCKET)
    proxy.clear()
    proxy.add_fault("status", count=100, method="PUT", status=400, code="InvalidArgument",
                    query_contains="partNumber", header_contains=("x-amz-checksum-crc64nvme", ""))
    data = os.urandom(11 * MiB)
    conn.upload(BUCKET, "big", data)  # each part goes again with Content-MD5 alone
    completion = [r for r in proxy.requests if r.method == "POST" and "uploadId" in r.query]
    assert completion and not any(n.lower().startswith("x-amz-checksum") for n in completion[-1].headers)
    assert conn.download(BUCKET, "big") == data


def test_a_checksum_you_chose_is_never_dropped(wire_conn, proxy):
    conn = make_connection(proxy.url, retries=3, checksum="crc32")
    proxy.add_fault("status", count=1, method="PUT", status=400, code="InvalidArgument")
    with pytest.raises(s3po.UploadException, match="InvalidArgument"):
        conn.upload(BUCKET, "k", b"abc")
    assert len(puts(proxy)) == 1


# -- learning, under concurrency and per operation ------------------------------------


def test_concurrent_uploads_to_a_store_that_refuses_checksum_headers_all_succeed(wire_conn, proxy):
    proxy.add_fault("status", count=8, method="PUT", status=400, code="InvalidArgument",
                    header_contains=("x-amz-checksum-crc64nvme", ""))
    with wire_conn.batch(8, raise_errors=True) as batch:
        for n in range(8):
            batch.upload(BUCKET, f"k{n}", f"body {n}")
    assert all(wire_conn.download(BUCKET, f"k{n}") == f"body {n}".encode() for n in range(8))


def test_an_unrelated_invalid_argument_does_not_turn_checksums_off(wire_conn, proxy, verifying):
    proxy.add_fault("status", count=2, method="PUT", status=400, code="InvalidArgument")
    with pytest.raises(s3po.UploadException, match="InvalidArgument"):
        wire_conn.upload(BUCKET, "k", b"abc")
    wire_conn.upload(BUCKET, "k", b"abc")
    assert "x-amz-checksum-crc64nvme" in puts(proxy)[-1].headers  # still asked: the store was never learned


class _PutsOnly(ChecksumStore):
    """A store that verifies PutObject's checksum but does nothing with UploadPart's."""

    def begin(self, method, path, query, headers):
        if "partNumber" in query:
            headers = [(name, value) for name, value in headers if not name.lower().startswith("x-amz-checksum")]
        return super().begin(method, path, query, headers)


def test_parts_are_learned_apart_from_puts_and_a_part_without_echo_goes_again_with_md5(proxy, checked):
    conn = make_connection(proxy.url, retries=3, **SMALL_PARTS)
    conn.create_bucket(BUCKET)
    proxy.clear()
    proxy.checksums = _PutsOnly()
    conn.upload(BUCKET, "small", b"echoed")  # PutObject is learned to verify; parts are not known yet
    data = os.urandom(11 * MiB)
    proxy.add_fault("flip_request", count=1, method="PUT", query_contains="partNumber=2")
    conn.upload(BUCKET, "big", data)  # the damaged part is caught by its MD5 (its CRC is ignored)
    parts = [r for r in puts(proxy) if "partNumber" in r.query]
    assert all("Content-MD5" in r.headers for r in parts)
    assert conn.download(BUCKET, "big") == data
    # A store that stops echoing what it echoed before: the part goes again with Content-MD5.
    proxy.clear()
    proxy.checksums = ChecksumStore()
    conn.upload(BUCKET, "teach", os.urandom(6 * MiB))
    conn._checks_for(conn.client)._verifies["upload_part"] = True  # as if every part had been echoed
    proxy.clear()
    proxy.checksums = _PutsOnly()
    proxy.add_fault("flip_request", count=1, method="PUT", query_contains="partNumber=1")
    conn.upload(BUCKET, "again", data)
    first = [r for r in puts(proxy) if "partNumber=1" in r.query]
    assert "Content-MD5" not in first[0].headers and "Content-MD5" in first[-1].headers
    assert conn.download(BUCKET, "again") == data


def test_once_parts_go_unechoed_the_next_ones_carry_content_md5_at_once(proxy):
    conn = make_connection(proxy.url, retries=3, **{**SMALL_PARTS, "workers": 1})
    conn.create_bucket(BUCKET)
    proxy.checksums = ChecksumStore()
    conn.upload(BUCKET, "teach", os.urandom(11 * MiB))  # parts echoed: the store verifies them
    proxy.clear()
    proxy.checksums = _PutsOnly()  # and then it stops
    data = os.urandom(21 * MiB)  # 5 parts, one at a time
    conn.upload(BUCKET, "big", data)
    parts = [r for r in puts(proxy) if "partNumber" in r.query]
    assert len(parts) == 5 + 1  # the first part again with its MD5; the others with it from the start
    assert conn.download(BUCKET, "big") == data


def test_checksum_crc32c_in_mock_mode_round_trips(tmp_path):
    conn = s3po.Connection(checksum="crc32c", multipart_threshold=5 * MiB, part_size=5 * MiB)
    with conn.mock(["mocked"]):
        data = os.urandom(11 * MiB)
        conn.upload("mocked", "big", data)
        assert conn.download("mocked", "big") == data
        conn.download_file("mocked", "big", str(tmp_path / "big"))
        assert (tmp_path / "big").read_bytes() == data


class _WrongCompletion(ChecksumStore):
    """A store whose completion answers with another object's checksum."""

    def begin(self, method, path, query, headers):
        arrival = super().begin(method, path, query, headers)
        answer_body = arrival.answer_body

        def wrong(status, body):
            body = answer_body(status, body)
            return body.replace(b"<ChecksumCRC64NVME>", b"<ChecksumCRC64NVME>AAAA")
        arrival.answer_body = wrong
        return arrival


def test_a_completion_echoing_another_checksum_fails_and_removes_the_object(proxy):
    conn = make_connection(proxy.url, retries=0, **SMALL_PARTS)
    conn.create_bucket(BUCKET)
    proxy.checksums = _WrongCompletion()
    with pytest.raises(s3po.UploadException, match="CRC64NVME"):
        conn.upload(BUCKET, "big", os.urandom(11 * MiB))
    assert not conn.exists(BUCKET, "big")


def test_uploads_say_what_checked_them(wire_conn, proxy, verifying, caplog):
    caplog.set_level(logging.DEBUG, logger="s3po.uploads")
    wire_conn.upload(BUCKET, "first", b"one")
    wire_conn.upload(BUCKET, "second", b"two")
    said = [r.getMessage().rpartition("checked by ")[2] for r in caplog.records if "checked by" in r.getMessage()]
    assert said == ["CRC64NVME and MD5", "CRC64NVME"]


def test_a_checksum_chosen_on_a_store_that_never_echoes_is_said_once(proxy, caplog):
    caplog.set_level(logging.INFO, logger="s3po")
    conn = make_connection(proxy.url, retries=3, checksum="crc32")
    conn.create_bucket(BUCKET)
    conn.upload(BUCKET, "a", b"a")
    conn.upload(BUCKET, "b", b"b")
    said = [r.getMessage() for r in caplog.records if "did not confirm its CRC32" in r.getMessage()]
    assert len(said) == 1


def test_without_awscrt_crc32_is_sent_and_checked_and_other_crcs_fall_back_to_the_etag(
        proxy, verifying, checked, monkeypatch):
    with_crt = make_connection(proxy.url, retries=3)
    with_crt.create_bucket(BUCKET)
    with_crt.upload(BUCKET, "crc64", os.urandom(3000))
    monkeypatch.setattr(checksums, "_available", {"crc32": available()["crc32"]})
    conn = make_connection(proxy.url, retries=3)
    conn.upload(BUCKET, "crc32", b"z" * 3000)
    assert "x-amz-checksum-crc32" in puts(proxy)[-1].headers
    assert conn.download(BUCKET, "crc32") == b"z" * 3000
    conn.download(BUCKET, "crc64")
    assert checked() == ["CRC32", "MD5"]


@pytest.mark.parametrize("path", ["lean", "botocore"])
def test_both_request_paths_learn_and_fall_back_alike(proxy, verifying, path):
    conn = make_connection(proxy.url, retries=3, request_path=path)
    conn.create_bucket(BUCKET)
    proxy.clear()
    proxy.checksums = verifying
    conn.upload(BUCKET, "a", b"a")
    conn.upload(BUCKET, "b", b"b")
    assert ["Content-MD5" in r.headers for r in puts(proxy)] == [True, False]
    proxy.clear()
    other = make_connection(proxy.url, retries=3, request_path=path)
    proxy.add_fault("status", count=1, method="PUT", status=400, code="InvalidArgument",
                    header_contains=("x-amz-checksum-crc64nvme", ""))
    other.upload(BUCKET, "c", b"c")
    assert len(puts(proxy)) == 2 and other.download(BUCKET, "c") == b"c"


def test_a_patched_program_moves_a_large_object_checked_by_crcs(wire_conn, proxy, verifying, tls_ca):
    program = f"""
        from gevent import monkey; monkey.patch_all()
        import logging, os, s3po
        logging.basicConfig(level=logging.DEBUG, format="%(message)s")
        for name in ("botocore", "urllib3", "s3po.retry"):
            logging.getLogger(name).setLevel(logging.WARNING)
        conn = s3po.Connection(endpoint_url={proxy.url!r}, region_name="us-east-1", aws_access_key_id="a",
                               aws_secret_access_key="b", part_size=5 * 2**20, multipart_threshold=5 * 2**20,
                               verify={tls_ca.bundle if proxy.scheme == "https" else None!r})
        data = os.urandom(13 * 2**20)
        conn.upload({BUCKET!r}, "patched", data)
        assert conn.download({BUCKET!r}, "patched") == data
        print("patched" if monkey.is_module_patched("socket") else "threads")
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(program)], capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "patched"
    assert "checked by CRC64NVME" in result.stderr and "download s3://s3po-test/patched" in result.stderr
