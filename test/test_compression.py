"""gzip and deflate codecs: streaming both ways, bounded output, damage detected."""

import gzip
import hashlib
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


# Edge cases of decoding, tried at every way of cutting the body into feeds: a
# network read may end anywhere, even between the two magic bytes of a gzip member.

PART_A = b"".join(b"%d: the first part; " % i for i in range(24))
PART_B = hashlib.sha256(b"s3po").digest() * 2 + b"and a second part"


def gz(data):
    return gzip.compress(data, mtime=0)


def raw_deflate(data):
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    return raw.compress(data) + raw.flush()


def feed_in(codec, body, cuts):
    """Decode ``body`` fed as the pieces between ``cuts``, checking each output's size."""
    decoder = Decoder(codec)
    out = []
    edges = [0, *cuts, len(body)]
    for start, end in zip(edges, edges[1:]):
        for chunk in decoder.feed(body[start:end]):
            assert len(chunk) <= CHUNK
            out.append(chunk)
    decoder.finish()
    return b"".join(out)


def ways_to_cut(body):
    """Every split into two feeds (either may be empty), every split into three with a
    one-byte middle feed, a few other three-way splits, and one-byte feeds."""
    n = len(body)
    for i in range(n + 1):
        yield [i]
    for i in range(n):
        yield [i, i + 1]
    yield [n // 3, 2 * n // 3]
    yield [1, n - 1]
    yield [0, 0]
    yield list(range(1, n))


DECODES = {
    "gzip": ("gzip", gz(PART_A), PART_A),
    "gzip-of-nothing": ("gzip", gz(b""), b""),
    "gzip-2-members": ("gzip", gz(PART_A) + gz(PART_B), PART_A + PART_B),
    "gzip-3-members-empty-middle": ("gzip", gz(PART_A) + gz(b"") + gz(PART_B), PART_A + PART_B),
    "gzip-zero-padding": ("gzip", gz(PART_A) + bytes(7), PART_A),
    "gzip-2-members-zero-padding": ("gzip", gz(PART_A) + gz(PART_B) + bytes(3), PART_A + PART_B),
    "deflate-zlib": ("deflate", zlib.compress(PART_A), PART_A),
    "deflate-raw": ("deflate", raw_deflate(PART_A), PART_A),
    "deflate-zero-padding": ("deflate", zlib.compress(PART_A) + bytes(5), PART_A),
}


@pytest.mark.parametrize("name", DECODES)
def test_decodes_exactly_however_the_body_is_cut(name):
    codec, body, expected = DECODES[name]
    assert len(body) <= 200
    failures = []
    for cuts in ways_to_cut(body):
        try:
            if feed_in(codec, body, cuts) != expected:
                failures.append((cuts, "wrong output"))
        except CorruptBody as exc:
            failures.append((cuts, str(exc)))
    assert not failures, f"{len(failures)} ways of cutting fail, first: {failures[0]}"


@pytest.mark.parametrize("codec", ["gzip", "deflate"])
def test_an_empty_body_decodes_to_nothing(codec):
    # S3 stores a 0-byte object with Content-Encoding gzip (or deflate) as is.
    Decoder(codec).finish()
    decoder = Decoder(codec)
    assert list(decoder.feed(b"")) == []
    decoder.finish()
    out = io.BytesIO()
    decode_into(io.BytesIO(b"").read, out.write, codec)
    assert out.getvalue() == b""


# Member boundaries are where a cut body is still a whole (shorter) gzip file.
def member_ends(*parts):
    ends, end = {}, 0
    for decoded_so_far, part in enumerate(parts):
        end += len(gz(part))
        ends[end] = b"".join(parts[: decoded_so_far + 1])
    return ends


TRUNCATES = {
    "gzip": ("gzip", gz(PART_A), {}),
    "gzip-2-members": ("gzip", gz(PART_A) + gz(PART_B), member_ends(PART_A, PART_B)),
    "gzip-3-members-empty-middle": (
        "gzip", gz(PART_A) + gz(b"") + gz(PART_B), member_ends(PART_A, b"", PART_B)),
    "deflate-zlib": ("deflate", zlib.compress(PART_A), {}),
    "deflate-raw": ("deflate", raw_deflate(PART_A), {}),
}


@pytest.mark.parametrize("name", TRUNCATES)
def test_a_body_cut_short_anywhere_raises(name):
    codec, body, whole_at = TRUNCATES[name]
    for length in range(1, len(body)):
        cut = body[:length]
        for cuts in ([], [length // 2], list(range(1, length))):
            if length in whole_at:
                assert feed_in(codec, cut, cuts) == whole_at[length]
                continue
            with pytest.raises(CorruptBody):
                feed_in(codec, cut, cuts)


GARBAGE = {
    "gzip-junk": ("gzip", gz(PART_A) + b"trailing junk"),
    "gzip-2-members-junk": ("gzip", gz(PART_A) + gz(PART_B) + b"trailing junk"),
    "gzip-lone-magic-byte": ("gzip", gz(PART_A) + b"\x1f"),
    "gzip-magic-then-junk": ("gzip", gz(PART_A) + b"\x1fjunk"),
    "gzip-header-cut-short": ("gzip", gz(PART_A) + gz(PART_B)[:5]),
    "gzip-padding-then-junk": ("gzip", gz(PART_A) + bytes(4) + b"junk"),
    # gzip(1) calls anything after zero padding trailing garbage, another member too.
    "gzip-padding-then-member": ("gzip", gz(PART_A) + bytes(4) + gz(PART_B)),
    "not-gzip": ("gzip", b"this is not gzip at all"),
    "deflate-zlib-junk": ("deflate", zlib.compress(PART_A) + b"trailing junk"),
    "deflate-raw-junk": ("deflate", raw_deflate(PART_A) + b"trailing junk"),
    "deflate-one-byte": ("deflate", zlib.compress(PART_A)[:1]),
}


@pytest.mark.parametrize("name", GARBAGE)
def test_garbage_raises_however_the_body_is_cut(name):
    codec, body = GARBAGE[name]
    for cuts in ways_to_cut(body):
        with pytest.raises(CorruptBody):
            feed_in(codec, body, cuts)


def test_a_multi_member_bomb_inflates_in_bounded_chunks_across_feeds():
    member = gz(bytes(16 * 1024 * 1024))
    bomb = member * 2
    # Cut between the second member's magic bytes, and through the first one's body.
    cuts = [len(member) // 2, len(member) + 1]
    decoder = Decoder("gzip")
    total = largest = 0
    edges = [0, *cuts, len(bomb)]
    for start, end in zip(edges, edges[1:]):
        for chunk in decoder.feed(bomb[start:end]):
            total += len(chunk)
            largest = max(largest, len(chunk))
    decoder.finish()
    assert total == 32 * 1024 * 1024
    assert largest <= CHUNK
