"""Preparing upload bodies: memory stays bounded whatever the file's size. No network."""

import hashlib
import io
import os
import tracemalloc

import pytest

from s3po.payload import prepare

MiB = 1024 * 1024


class Pipe(io.RawIOBase):
    """A one-way stream of ``size`` pseudo-random bytes, made as it is read."""

    def __init__(self, size):
        self.left = size
        self.md5 = hashlib.md5()

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left)
        chunk = os.urandom(n)
        self.md5.update(chunk)
        buffer[:n] = chunk
        self.left -= n
        return n


@pytest.mark.parametrize("codec", [None, "gzip"])
def test_a_large_one_way_stream_is_spooled_in_bounded_memory(codec):
    source = Pipe(48 * MiB)  # incompressible: the gzip output is as large
    tracemalloc.start()
    try:
        payload = prepare(source, codec)
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
        assert digest.hexdigest() == payload.md5_hex
        if codec is None:
            assert payload.md5_hex == source.md5.hexdigest()


def test_small_bodies_are_bytes_and_rewindable_files_are_not_copied(tmp_path):
    assert prepare(b"abc", None).body == b"abc"
    path = tmp_path / "big"
    path.write_bytes(os.urandom(10 * MiB))
    with open(path, "rb") as fobj:
        fobj.seek(MiB)
        payload = prepare(fobj, None)
        assert payload.body is fobj and fobj.tell() == MiB
        assert payload.size == 9 * MiB
        fobj.read(10)
        payload.rewind()
        assert fobj.tell() == MiB
