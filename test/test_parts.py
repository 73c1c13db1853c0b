"""Part sizes, ranges, multipart ETags and Content-Range: pure arithmetic, no network."""

import hashlib

import pytest

from s3po.parts import (
    DEFAULT_PART_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    ByteRange,
    choose_part_size,
    multipart_etag,
    multipart_part_count,
    parse_content_range,
    split,
)
from s3po.progress import BatchProgress, Progress

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB


@pytest.mark.parametrize("size, expected", [
    (None, DEFAULT_PART_SIZE),
    (11 * MiB, DEFAULT_PART_SIZE),
    (MAX_PARTS * DEFAULT_PART_SIZE, DEFAULT_PART_SIZE),      # exactly 10,000 parts of 8 MiB
    (MAX_PARTS * DEFAULT_PART_SIZE + 1, 9 * MiB),            # one byte more: the part grows
    (5 * TiB, 525 * MiB),
])
def test_the_default_part_size_keeps_every_object_within_10000_parts(size, expected):
    part = choose_part_size(size, None)
    assert part == expected
    assert MIN_PART_SIZE <= part <= MAX_PART_SIZE
    if size:
        assert -(-size // part) <= MAX_PARTS


def test_a_configured_part_size_is_used_when_it_fits_and_refused_when_it_cannot():
    assert choose_part_size(100 * MiB, 16 * MiB) == 16 * MiB
    assert choose_part_size(None, 16 * MiB) == 16 * MiB
    with pytest.raises(ValueError, match=r"10001 parts.*at most 10000.*at least 5243"):
        choose_part_size(10_001 * 5 * MiB, 5 * MiB)


def test_objects_over_5_tib_are_refused():
    with pytest.raises(ValueError, match="5 TiB"):
        choose_part_size(5 * TiB + 1, None)


def test_split_covers_every_byte_once():
    assert split(10, 4) == [ByteRange(0, 4), ByteRange(4, 8), ByteRange(8, 10)]
    assert split(10, 4, first=6) == [ByteRange(0, 6), ByteRange(6, 10)]
    assert split(0, 4) == []
    assert ByteRange(5, 10).header == "bytes=5-9" and ByteRange(5, 10).size == 5


def test_multipart_etag_is_the_md5_of_the_part_md5s():
    parts = [b"a" * 10, b"b" * 3]
    digests = [hashlib.md5(p).digest() for p in parts]
    assert multipart_etag(digests) == hashlib.md5(b"".join(digests)).hexdigest() + "-2"
    assert multipart_part_count(multipart_etag(digests)) == 2
    assert multipart_part_count('"' + multipart_etag(digests) + '"') == 2
    assert multipart_part_count(hashlib.md5(b"x").hexdigest()) is None
    assert multipart_part_count(None) is None


@pytest.mark.parametrize("value, expected", [
    ("bytes 0-9/100", (0, 9, 100)),
    ("bytes 5-5/*", (5, 5, None)),
    (None, None),
    ("bytes */100", None),
    ("items 0-1/2", None),
])
def test_content_range_parsing(value, expected):
    parsed = parse_content_range(value)
    assert (parsed and (parsed.first, parsed.last, parsed.total)) == expected


def test_progress_reports_the_end_once_and_learns_an_unknown_total():
    calls = []
    progress = Progress(lambda d, t: calls.append((d, t)))
    progress.advance(3)
    progress.advance(4)
    progress.finish()
    progress.finish()
    assert calls == [(3, None), (7, None), (7, 7)]


def test_batch_progress_sums_calls_and_follows_restarts():
    totals = BatchProgress()
    seen = []
    first = totals.start_call(lambda d, t: seen.append((d, t)))
    second = totals.start_call(None)
    first(10, 100)
    second(5, None)
    assert (totals.totals().bytes_done, totals.totals().bytes_total) == (15, 100)
    first(0, 120)  # the object changed: counted again from zero, with its new size
    second(50, 50)
    totals.end_call()
    assert totals.totals() == type(totals.totals())(50, 170, 1, 2)
    assert seen == [(10, 100), (0, 120)]
