"""upload / download in all their forms, on moto in-process and over HTTP."""

import gzip
import hashlib
import io
import os
import zlib

import pytest

import s3po
from s3po_fixtures import BUCKET, OneWayStream

MiB = 1024 * 1024


class WriteOnlySink(io.RawIOBase):
    """A destination that cannot seek: every byte written is final."""

    def __init__(self):
        self.received = bytearray()

    def writable(self):
        return True

    def write(self, data):
        self.received += data
        return len(data)


@pytest.mark.parametrize("data, stored", [
    ("héllo wörld", "héllo wörld".encode()),
    (b"\x00\x01binary", b"\x00\x01binary"),
    (bytearray(b"a bytearray"), b"a bytearray"),
    (memoryview(b"a memoryview"), b"a memoryview"),
    (memoryview(bytearray(b"0123456789"))[::2], b"02468"),
    (b"", b""),
])
def test_upload_in_memory_data(conn, data, stored):
    key = conn.upload(BUCKET, "thing", data)
    assert isinstance(key, s3po.Key)
    assert (key.bucket, key.key, key.size) == (BUCKET, "thing", len(stored))
    assert key.etag == hashlib.md5(stored).hexdigest()
    assert conn.download(BUCKET, "thing") == stored


def test_upload_file_objects(conn, tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("línea uno\nline two\n", encoding="utf-8")
    with open(path, "rb") as binary:
        binary.read(3)  # uploads from where the caller left the file
        assert conn.upload(BUCKET, "binary", binary).size == len("línea uno\nline two\n".encode()) - 3
    with open(path, "r", encoding="utf-8") as text:
        conn.upload(BUCKET, "text", text)
    assert conn.download(BUCKET, "text") == path.read_bytes()
    conn.upload(BUCKET, "stream", OneWayStream(b"from a pipe"))
    assert conn.download(BUCKET, "stream") == b"from a pipe"


@pytest.mark.parametrize("kind", ["seekable", "one-way"])
def test_large_streams_upload_whole(conn, kind):
    data = os.urandom(9 * MiB)  # past the in-memory limit: streamed or spooled
    source = io.BytesIO(data) if kind == "seekable" else OneWayStream(data)
    key = conn.upload(BUCKET, "big", source)
    assert key.size == len(data) and key.etag == hashlib.md5(data).hexdigest()
    assert conn.download(BUCKET, "big") == data


@pytest.mark.parametrize("codec, decode", [("gzip", gzip.decompress), ("deflate", zlib.decompress)])
def test_compressed_upload_sets_content_encoding_and_downloads_decompressed(conn, codec, decode):
    data = b"compress me please " * 5000
    key = conn.upload(BUCKET, "c.txt", data, compress=codec)
    raw = conn.download(BUCKET, "c.txt", decompress=False)
    assert key.size == len(raw) < len(data)
    assert decode(raw) == data
    assert conn.head(BUCKET, "c.txt").content_encoding == codec
    assert conn.download(BUCKET, "c.txt") == data
    with conn.open(BUCKET, "c.txt") as stream:
        assert stream.read() == data


def test_large_file_compresses_streaming(conn, tmp_path):
    path = tmp_path / "big.log"
    with open(path, "wb") as out:
        for n in range(400_000):
            out.write(b"%d some log line that repeats\n" % n)
    key = conn.upload_file(BUCKET, "big.log", path, compress="gzip")
    assert key.size < path.stat().st_size / 4
    assert conn.download(BUCKET, "big.log") == path.read_bytes()


def test_headers_are_stored_and_content_type_guessed(conn):
    conn.upload(BUCKET, "page.html", "<p>hi</p>", headers={
        "Cache-Control": "max-age=60",
        "Content-Disposition": "inline",
        "Content-Language": "en",
        "x-amz-meta-Owner": "alice",
        "x-amz-storage-class": "STANDARD_IA",
    })
    head = conn.head(BUCKET, "page.html")
    assert head.content_type == "text/html"
    assert head.metadata == {"owner": "alice"}
    assert head.storage_class == "STANDARD_IA"
    response = conn.conn.head_object(Bucket=BUCKET, Key="page.html")
    assert response["CacheControl"] == "max-age=60"
    assert response["ContentDisposition"] == "inline"
    assert response["ContentLanguage"] == "en"
    conn.upload(BUCKET, "data.bin.gz", b"x", headers={"content-type": "application/x-custom"})
    assert conn.head(BUCKET, "data.bin.gz").content_type == "application/x-custom"
    assert conn.head(BUCKET, "data.bin.gz").content_encoding is None


def test_download_into_file_objects(conn):
    data = os.urandom(300_000)
    conn.upload(BUCKET, "obj", data)
    seekable = io.BytesIO(b"prefix:")
    seekable.seek(0, io.SEEK_END)
    assert conn.download(BUCKET, "obj", seekable) is None
    assert seekable.getvalue() == b"prefix:" + data
    sink = WriteOnlySink()
    conn.download(BUCKET, "obj", sink)
    assert bytes(sink.received) == data


def test_download_refuses_text_files(conn, tmp_path):
    with open(tmp_path / "t.txt", "w") as text, pytest.raises(TypeError, match="binary"):
        conn.download(BUCKET, "obj", text)


def test_download_file_creates_folders_and_replaces_atomically(conn, tmp_path):
    conn.upload(BUCKET, "a/b.txt", "contents")
    target = tmp_path / "x" / "y" / "b.txt"
    assert conn.download_file(BUCKET, "a/b.txt", target) is None
    assert target.read_bytes() == b"contents"
    conn.upload(BUCKET, "a/b.txt", "new contents")
    conn.download_file(BUCKET, "a/b.txt", str(target))
    assert target.read_bytes() == b"new contents"
    assert sorted(os.listdir(target.parent)) == ["b.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not the temp file's 0o600


def test_download_file_of_a_missing_key_leaves_nothing(conn, tmp_path):
    target = tmp_path / "new" / "folder" / "file"
    with pytest.raises(s3po.NotFound):
        conn.download_file(BUCKET, "missing", target)
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "keep.txt"
    existing.write_text("precious")
    with pytest.raises(s3po.NotFound):
        conn.download_file(BUCKET, "missing", existing)
    assert existing.read_text() == "precious"
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_upload_file_deletes_only_after_success(conn, tmp_path):
    path = tmp_path / "up.txt"
    path.write_text("bye")
    conn.upload_file(BUCKET, "up.txt", path, delete=True)
    assert not path.exists()
    assert conn.download(BUCKET, "up.txt") == b"bye"
    path.write_text("stays")
    with pytest.raises(s3po.UploadException):
        conn.upload_file("no-such-bucket-s3po", "up.txt", path, delete=True)
    assert path.read_text() == "stays"


def test_upload_to_a_missing_bucket(conn):
    with pytest.raises(s3po.UploadException) as caught:
        conn.upload("no-such-bucket-s3po", "k", "v")
    assert caught.value.code == "NoSuchBucket"
    assert "s3://no-such-bucket-s3po/k" in str(caught.value)


def test_missing_key_raises_not_found_with_code_no_such_key(conn):
    for call in (lambda: conn.download(BUCKET, "nope"), lambda: conn.head(BUCKET, "nope"),
                 lambda: conn.open(BUCKET, "nope")):
        with pytest.raises(s3po.NotFound) as caught:
            call()
        error = caught.value
        assert isinstance(error, s3po.DownloadException)
        assert (error.bucket, error.key, error.code) == (BUCKET, "nope", "NoSuchKey")
        assert error.__cause__ is not None
    assert not conn.exists(BUCKET, "nope")


def test_head_and_exists(conn):
    conn.upload(BUCKET, "h.json", '{"a": 1}', headers={"x-amz-meta-a": "1"})
    head = conn.head(BUCKET, "h.json")
    assert head.size == 8 and head.content_type == "application/json"
    assert head.etag == hashlib.md5(b'{"a": 1}').hexdigest()
    assert head.last_modified.tzinfo is not None
    assert head.metadata == {"a": "1"}
    assert conn.exists(BUCKET, "h.json")


def test_open_streams_reads_lines_and_chunks(conn):
    lines = b"".join(b"line %d\n" % n for n in range(10_000))
    conn.upload(BUCKET, "lines.txt", lines)
    with conn.open(BUCKET, "lines.txt") as stream:
        assert stream.info.size == len(lines)
        assert stream.read(5) == b"line "
        buffer = bytearray(3)
        assert stream.readinto(buffer) == 3 and bytes(buffer) == b"0\nl"
        rest = list(stream)
    assert rest[0] == b"ine 1\n" and rest[-1] == b"line 9999\n" and len(rest) == 9999
    assert stream.closed


def test_copy(conn):
    conn.upload(BUCKET, "src", "copied bytes")
    key = conn.copy(BUCKET, "src", BUCKET, "dst")
    assert key.etag == hashlib.md5(b"copied bytes").hexdigest()
    assert conn.download(BUCKET, "dst") == b"copied bytes"
    assert key.size == len(b"copied bytes")
    with pytest.raises(s3po.NotFound) as caught:
        conn.copy(BUCKET, "missing", BUCKET, "dst2")
    assert (caught.value.bucket, caught.value.key, caught.value.code) == (BUCKET, "missing", "NoSuchKey")
    # Each side's missing bucket is named as such.
    with pytest.raises(s3po.UploadException) as caught:
        conn.copy(BUCKET, "src", "no-such-bucket-s3po", "dst")
    assert isinstance(caught.value, s3po.NotFound)
    assert (caught.value.bucket, caught.value.code) == ("no-such-bucket-s3po", "NoSuchBucket")
    with pytest.raises(s3po.NotFound) as caught:
        conn.copy("no-such-bucket-s3po", "src", BUCKET, "dst")
    assert (caught.value.bucket, caught.value.code) == ("no-such-bucket-s3po", "NoSuchBucket")


def test_deprecated_names_still_work_and_warn(conn, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"file data")
    with pytest.warns(DeprecationWarning, match="uploadString"):
        conn.uploadString(BUCKET, "s", "string data")
    with pytest.warns(DeprecationWarning, match="uploadFile"):
        conn.uploadFile(BUCKET, "f", str(path))
    with pytest.warns(DeprecationWarning, match="downloadString"):
        assert conn.downloadString(BUCKET, "s") == b"string data"
    with pytest.warns(DeprecationWarning, match="downloadFile"):
        conn.downloadFile(BUCKET, "f", str(tmp_path / "g"))
    assert (tmp_path / "g").read_bytes() == b"file data"


def test_directories_are_refused_by_name(conn, tmp_path):
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        conn.upload_file(BUCKET, "k", tmp_path)
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        conn.download_file(BUCKET, "k", tmp_path)


def test_deprecated_names_accept_file_objects(conn):
    with pytest.warns(DeprecationWarning):
        conn.uploadFile(BUCKET, "fo", io.BytesIO(b"from a file object"))
    sink = io.BytesIO()
    with pytest.warns(DeprecationWarning):
        conn.downloadFile(BUCKET, "fo", sink)
    assert sink.getvalue() == b"from a file object"


def test_create_bucket_checks_the_name_and_wait_without_background_work(conn):
    with pytest.raises(ValueError, match="'x'"):
        conn.create_bucket("x")
    assert conn.wait() is True  # no background work: nothing to wait for
