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
    assert aws.for_upload().md5 is False and aws.whole_first_get()
    custom = StoreChecks("auto", "http://127.0.0.1:9000")
    assert custom.for_upload().md5 is True and custom.for_upload().crc is not None  # both, to learn
    custom.learn_upload(echoed=False)
    assert custom.for_upload().crc is None  # a store that ignores them: Content-MD5 alone
    custom.learn_download(had_checksum=False)
    assert not custom.whole_first_get()
    md5 = StoreChecks("md5", None)
    assert md5.for_upload().crc is None and not md5.whole_first_get()
    explicit = StoreChecks("crc32", "http://127.0.0.1:9000")
    explicit.learn_upload(echoed=False)  # trusted all the same
    assert explicit.for_upload() == storechecks.UploadChecks(md5=False, crc=by_name("crc32"))


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
    conn.upload(BUCKET, "teach", b"x")  # the store is known to verify: parts carry CRCs alone
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


def test_an_opaque_etag_is_not_settled_for_when_a_stored_checksum_can_be_asked_for(proxy, checked, tmp_path):
    conn = make_connection(proxy.url, retries=3, **SMALL_PARTS)
    conn.create_bucket(BUCKET)
    conn.client.put_object(Bucket=BUCKET, Key="old", Body=b"no checksum kept")
    assert conn.download(BUCKET, "old") == b"no checksum kept"  # teaches: ranged first GETs from now on
    proxy.checksums = ChecksumStore()
    data = os.urandom(7 * MiB)
    conn.upload(BUCKET, "new", data)
    proxy.response_headers = {"ETag": '"opaque-etag-of-its-own"'}
    proxy.ignored_request_headers = {"If-Match"}  # the ETag is not the one the store compares with
    conn.download_file(BUCKET, "new", str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == data
    assert checked()[-1] == "CRC64NVME"
    head = [r for r in proxy.requests if r.method == "HEAD"][-1]
    assert head.headers["x-amz-checksum-mode"] == "ENABLED"


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


def test_a_checksum_you_chose_is_never_dropped(wire_conn, proxy):
    conn = make_connection(proxy.url, retries=3, checksum="crc32")
    proxy.add_fault("status", count=1, method="PUT", status=400, code="InvalidArgument")
    with pytest.raises(s3po.UploadException, match="InvalidArgument"):
        conn.upload(BUCKET, "k", b"abc")
    assert len(puts(proxy)) == 1
