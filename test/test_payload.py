"""Preparing upload bodies: memory stays bounded whatever the file's size. No network."""

import hashlib
import io
import os
import tracemalloc

import pytest

from s3po.payload import Parts, Payload, prepare

MiB = 1024 * 1024


class Pipe(io.RawIOBase):
    """A one-way stream of ``size`` pseudo-random bytes, made as it is read."""

    def __init__(self, size):
        self.left = size
        self.md5 = hashlib.md5()

    def readable(self):
        return True

    def readinto(self, buffer):
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def read(self, size=-1):
        # Overridden so that a read makes one copy, as a socket's does, not
        # RawIOBase's three: the tests measure s3po's memory, not this class's.
        n = self.left if size is None or size < 0 else min(size, self.left)
        chunk = os.urandom(n)
        self.md5.update(chunk)
        self.left -= n
        return chunk


@pytest.mark.parametrize("codec", [None, "gzip"])
def test_a_large_one_way_stream_is_spooled_in_bounded_memory(codec):
    source = Pipe(48 * MiB)  # incompressible: the gzip output is as large
    tracemalloc.start()
    try:
        payload = prepare(source, codec, 64 * MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with payload:
        assert not isinstance(payload.body, bytes)  # on disk, not in memory
        assert payload.size >= 48 * MiB
        assert peak < 20 * MiB, f"peak {peak / MiB:.1f} MiB for a 48 MiB body"
        digest = hashlib.md5()
        for chunk in iter(lambda: payload.body.read(MiB), b""):
            digest.update(chunk)
        assert digest.hexdigest() == payload.digests.md5_hex
        if codec is None:
            assert payload.digests.md5_hex == source.md5.hexdigest()


def test_small_bodies_are_bytes_and_rewindable_files_are_not_copied(tmp_path):
    assert prepare(b"abc", None, 10 * MiB).body == b"abc"
    path = tmp_path / "big"
    path.write_bytes(os.urandom(10 * MiB))
    with open(path, "rb") as fobj:
        fobj.seek(MiB)
        payload = prepare(fobj, None, 10 * MiB)
        assert payload.body is fobj and fobj.tell() == MiB
        assert payload.size == 9 * MiB
        fobj.read(10)
        payload.rewind()
        assert fobj.tell() == MiB


@pytest.mark.parametrize("codec", [None, "gzip"])
def test_a_one_way_stream_past_the_threshold_becomes_parts_read_in_bounded_memory(codec):
    source = Pipe(40 * MiB)
    tracemalloc.start()
    try:
        body = prepare(source, codec, 6 * MiB)
        assert isinstance(body, Parts) and body.size is None
        digest, total, peak = hashlib.md5(), 0, 0
        for piece in body.pieces(5 * MiB):
            digest.update(piece)
            total += len(piece)
            assert len(piece) == 5 * MiB or total >= 40 * MiB
            del piece
            peak = max(peak, tracemalloc.get_traced_memory()[1])
        body.close()
    finally:
        tracemalloc.stop()
    # The kept head (6 MiB), the piece being filled and one read: about 16 MiB.
    assert peak < 20 * MiB, f"peak {peak / MiB:.1f} MiB while cutting 40 MiB into parts"
    if codec is None:
        assert total == 40 * MiB and digest.hexdigest() == source.md5.hexdigest()


def test_bytes_and_files_past_the_threshold_become_parts_of_known_size(tmp_path):
    data = os.urandom(12 * MiB + 7)
    body = prepare(data, None, 10 * MiB)
    assert isinstance(body, Parts) and body.size == len(data)
    assert b"".join(body.pieces(5 * MiB)) == data
    path = tmp_path / "big"
    path.write_bytes(data)
    with open(path, "rb") as fobj:
        fobj.seek(100)
        body = prepare(fobj, None, 10 * MiB)
        assert isinstance(body, Parts) and body.size == len(data) - 100
        assert [len(p) for p in body.pieces(5 * MiB)] == [5 * MiB, 5 * MiB, 2 * MiB - 93]
    with open(path, "rb") as fobj:  # a small threshold, a file under it: one body
        assert isinstance(prepare(fobj, None, 13 * MiB), Payload)


def test_a_text_file_is_read_as_utf8_even_when_characters_span_reads():
    text = "é€😀" * 700_000  # 2-, 3- and 4-byte characters: about 6.3 MB of UTF-8
    body = prepare(io.StringIO(text), None, 5 * MiB)
    assert isinstance(body, Parts)
    pieces = list(body.pieces(5 * MiB))
    assert len(pieces[0]) == 5 * MiB
    assert b"".join(pieces) == text.encode("utf-8")
