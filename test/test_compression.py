"""gzip and deflate codecs: streaming both ways, bounded output, damage detected."""

import gzip
import io
import os
import zlib

import pytest

from s3po.compression import (
    CHUNK,
    CorruptBody,
    Decoder,
    check_codec,
    codec_of,
    CompressingReader,
    compress_bytes,
    decode_into,
)

DATA = os.urandom(50_000) + b"s3po " * 400_000


def decode_all(codec, body, piece=4096):
    decoder = Decoder(codec)
    out = []
    for i in range(0, len(body), piece):
        for chunk in decoder.feed(body[i:i + piece]):
            assert len(chunk) <= CHUNK
            out.append(chunk)
    decoder.finish()
    return b"".join(out)


@pytest.mark.parametrize("codec", ["gzip", "deflate"])
def test_round_trip_in_pieces(codec):
    body = compress_bytes(DATA, codec)
    assert len(body) < len(DATA) / 10
    assert decode_all(codec, body) == DATA


def test_gzip_output_is_standard_and_reproducible():
    assert gzip.decompress(compress_bytes(DATA, "gzip")) == DATA
    assert compress_bytes(DATA, "gzip") == compress_bytes(DATA, "gzip")
    assert zlib.decompress(compress_bytes(DATA, "deflate")) == DATA


@pytest.mark.parametrize("codec", ["gzip", "deflate"])
@pytest.mark.parametrize("piece", [1, 1000, 64 * 1024, 3 * 1024 * 1024])
def test_compressing_reader_matches_one_shot_whatever_the_read_size(codec, piece):
    reader = CompressingReader(io.BytesIO(DATA).read, codec)
    pieces = list(iter(lambda: reader.read(piece), b""))
    assert all(len(p) <= piece for p in pieces)
    assert b"".join(pieces) == compress_bytes(DATA, codec)


def test_compressing_reader_never_holds_much_of_a_large_input():
    # 64 MiB of zeros compresses to almost nothing; what waits in the reader stays
    # bounded by one input chunk's output, not by the input.
    source = io.BytesIO(bytes(64 * 1024 * 1024))
    reader = CompressingReader(source.read, "gzip")
    first = reader.read(10)
    assert len(first) == 10
    assert source.tell() <= CHUNK


@pytest.mark.parametrize("codec", ["gzip", "deflate"])
def test_decode_into_streams_and_rejects_a_cut_stream(codec):
    body = compress_bytes(DATA, codec)
    out = io.BytesIO()
    decode_into(io.BytesIO(body).read, out.write, codec)
    assert out.getvalue() == DATA
    with pytest.raises(CorruptBody):
        decode_into(io.BytesIO(body[: len(body) // 2]).read, io.BytesIO().write, codec)


def test_raw_deflate_and_multi_member_gzip_decode():
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = raw.compress(b"hello raw") + raw.flush()
    assert decode_all("deflate", body) == b"hello raw"
    assert decode_all("gzip", gzip.compress(b"ab") + gzip.compress(b"cd")) == b"abcd"


def test_truncated_and_damaged_bodies_raise_corrupt_body():
    body = compress_bytes(DATA, "gzip")
    with pytest.raises(CorruptBody, match="ends before"):
        decode_all("gzip", body[: len(body) // 2])
    with pytest.raises(CorruptBody):
        decode_all("gzip", b"this is not gzip at all")
    with pytest.raises(CorruptBody, match="unexpected bytes"):
        decode_all("gzip", body + b"trailing junk")


def test_a_bomb_inflates_in_bounded_chunks():
    bomb = compress_bytes(b"\0" * (64 * 1024 * 1024), "gzip")
    decoder = Decoder("gzip")
    largest = max(len(chunk) for chunk in decoder.feed(bomb))
    decoder.finish()
    assert largest <= CHUNK


def test_codec_names():
    assert check_codec(None) is None
    assert check_codec("gzip") == "gzip"
    with pytest.raises(ValueError, match="'lz4'.*'deflate', 'gzip'"):
        check_codec("lz4")
    assert codec_of("GZIP") == "gzip" and codec_of("x-gzip") == "gzip"
    assert codec_of("deflate") == "deflate"
    assert codec_of("br") is None and codec_of(None) is None and codec_of("") is None
