"""sense.bin and range files read in bounded pieces (issue 39 item 8): the piecewise decoders
find exactly what the whole-buffer decoders find, whatever the piece boundaries, and a
file over its limit costs only its newest bytes."""

from __future__ import annotations

import random

import pytest
from _formats_corrupt import Corrupted, corruptions
from hypothesis import given, settings
from hypothesis import strategies as st
from test_formats_range import _groups, gps_fix
from test_formats_sense import _fixed_records

from pygnc.formats.common import GapTally, TailReader, gap_stats
from pygnc.formats.range_file import (
    GPS_PACKET_SIZE,
    RANGE_PACKET_SIZE,
    RangeStreamDecoder,
    decode_range,
    encode_gps_packet,
    encode_range_packets,
    read_range_dir,
)
from pygnc.formats.sense import RECORD_SIZE, SenseStreamDecoder, decode_sense, encode_sense_records, read_sense_file


def _pieces(data: bytes, seed: int, max_piece: int) -> list[bytes]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(data):
        k = rng.randint(1, max_piece)
        out.append(data[i : i + k])
        i += k
    return out


def _sense_bytes(n: int, seed: int, ops) -> bytes:
    sensors, gps = _fixed_records(n, seed)
    units = [encode_sense_records(sensors[i : i + 1], gps[i : i + 1]) for i in range(n)]
    c = Corrupted.from_units(units)
    for op in ops:
        c.apply(*op)
    return bytes(c.data)


def _assert_same_sense(got, want) -> None:
    assert got.stats == want.stats
    assert got.record_offsets.tolist() == want.record_offsets.tolist()
    assert got.sensors.tobytes() == want.sensors.tobytes()
    assert got.fixes.tobytes() == want.fixes.tobytes()


def _stream_sense(pieces, base=0):
    dec = SenseStreamDecoder(expected_bytes=sum(map(len, pieces)), base_offset=base)
    for p in pieces:
        dec.feed(p)
    return dec.result()


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.integers(1, 30),
    st.integers(0, 1000),
    st.lists(
        st.tuples(
            st.sampled_from(
                ("flip", "insert", "delete", "truncate", "prefix", "suffix", "drop_crlf", "garbage_middle")
            ),
            st.floats(0.0, 1.0, exclude_max=True),
            st.integers(1, 600),
            st.integers(0, 2**32 - 1),
        ),
        max_size=5,
    ),
    st.integers(0, 2**16),
    st.sampled_from((37, 251, 700, 2000)),
)
def test_sense_pieces_decode_as_the_whole(n, seed, ops, split_seed, max_piece):
    data = _sense_bytes(n, seed, ops)
    _assert_same_sense(_stream_sense(_pieces(data, split_seed, max_piece)), decode_sense(data))


def test_sense_clean_file_in_record_aligned_pieces_takes_the_fast_path():
    data = _sense_bytes(40, 1, [])
    dec = SenseStreamDecoder(expected_bytes=len(data))
    for i in range(0, len(data), 7 * RECORD_SIZE):
        dec.feed(data[i : i + 7 * RECORD_SIZE])
    _assert_same_sense(dec.result(), decode_sense(data))


def _range_bytes(n_groups: int, seed: int, ops) -> bytes:
    units = []
    for f, pks in _groups(n_groups, seed):
        units.append(encode_gps_packet(f))
        units += [encode_range_packets([p]) for p in pks]
    c = Corrupted.from_units(units)
    for op in ops:
        c.apply(*op)
    return bytes(c.data)


def _assert_same_range(got, want) -> None:
    assert got.stats == want.stats
    assert got.gps_fixes.tobytes() == want.gps_fixes.tobytes()
    assert got.ranges.tobytes() == want.ranges.tobytes()


def _stream_range(pieces, base=0):
    dec = RangeStreamDecoder(file_index=7, base_offset=base)
    for p in pieces:
        dec.feed(p)
    return dec.result()


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.integers(0, 12),
    st.integers(0, 1000),
    corruptions | st.just([]),
    st.integers(0, 2**16),
    st.sampled_from((7, 102, 300, 1000)),
)
def test_range_pieces_decode_as_the_whole(n_groups, seed, ops, split_seed, max_piece):
    data = _range_bytes(n_groups, seed, ops)
    _assert_same_range(_stream_range(_pieces(data, split_seed, max_piece)), decode_range(data, file_index=7))


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.binary(max_size=3000), st.integers(0, 2**16), st.sampled_from((1, 50, 250, 1000)))
def test_range_pieces_of_arbitrary_bytes(data, split_seed, max_piece):
    _assert_same_range(_stream_range(_pieces(data, split_seed, max_piece)), decode_range(data, file_index=7))


def test_one_long_group_is_cut_on_its_grid():
    """A GPS packet followed by many range packets: no sync to cut at, so the pieces are
    cut on the group's grid; every packet keeps its group, and the fix its time."""
    pks = [(0x4A, 1_700_000_000 + i, 1000 + i) for i in range(5000)]
    data = encode_gps_packet(gps_fix()) + encode_range_packets(pks)
    got = _stream_range(_pieces(data, 3, 4096))
    _assert_same_range(got, decode_range(data, file_index=7))
    assert got.ranges.size == 5000 and set(got.ranges["group"].tolist()) == {0}
    assert got.gps_fixes["t_sc_s"].tolist() == [1_700_000_000.0]


def test_gap_tally_merges_touching_regions_like_gap_stats():
    t = GapTally(12)
    for lo, hi in ((0, 5), (5, 30), (40, 41), (50, 50), (60, 85)):
        t.add(lo, hi)
    starts, ends = [30, 41, 85], [40, 60, 100]
    assert t.stats(100, 3) == gap_stats(starts, ends, 100, 12, 3)


def test_tail_reader_reads_only_the_newest_bytes(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(bytes(range(256)) * 40)
    with TailReader(p, 1000) as r:
        assert (r.size, r.start, r.bytes_over_limit) == (10240, 9240, 9240)
        got = b"".join(iter(lambda: r.read(333), b""))
    assert got == p.read_bytes()[-1000:]
    with TailReader(p, None) as r:
        assert r.start == 0 and r.read(1 << 30) == p.read_bytes()


def test_sense_file_over_its_limit_keeps_its_newest_records(tmp_path):
    data = _sense_bytes(100, 5, [])
    p = tmp_path / "sense.bin"
    p.write_bytes(data)
    limit = 30 * RECORD_SIZE + 100  # 30 whole records and a partial one
    b = read_sense_file(p, max_bytes=limit)
    whole = decode_sense(data)
    assert b.bytes_over_limit == len(data) - limit
    assert b.fixes.size == 30
    assert b.fixes.tobytes() == whole.fixes[-30:].tobytes()
    assert b.record_offsets.tolist() == whole.record_offsets[-30:].tolist()
    s = b.stats
    # The head not read and the partial record after it: one skipped region.
    assert (s.bytes_total, s.bytes_skipped, s.skip_events) == (len(data), len(data) - 30 * RECORD_SIZE, 1)
    assert s.records_skipped == 70
    assert read_sense_file(p, max_bytes=len(data)).stats == whole.stats


def test_range_file_over_its_limit_keeps_its_newest_groups(tmp_path):
    data = _range_bytes(40, 2, [])
    (tmp_path / "rng00001.bin").write_bytes(data)
    whole = decode_range(data, file_index=1)
    b = read_range_dir(tmp_path, max_file_bytes=len(data) // 2)
    assert b.bytes_over_limit == len(data) - len(data) // 2
    assert b.files_over_limit == [str(tmp_path / "rng00001.bin")]
    assert 0 < b.gps_fixes.size < whole.gps_fixes.size
    assert b.gps_fixes.tobytes() == whole.gps_fixes[-b.gps_fixes.size :].tobytes()
    assert b.stats.bytes_total == len(data)
    assert b.stats.bytes_total == (
        b.gps_fixes.size * GPS_PACKET_SIZE + b.ranges.size * RANGE_PACKET_SIZE + b.stats.bytes_skipped
    )
    full = read_range_dir(tmp_path, max_file_bytes=len(data))
    assert full.bytes_over_limit == 0 and full.stats == whole.stats


@pytest.mark.parametrize("size", [0, 1, RECORD_SIZE - 1])
def test_tiny_sense_files(tmp_path, size):
    p = tmp_path / "sense.bin"
    p.write_bytes(b"\x00" * size)
    b = read_sense_file(p, max_bytes=10)
    assert b.fixes.size == 0 and b.stats.bytes_total == size and b.stats.bytes_skipped == size


def test_ingest_reads_in_pieces_it_can_pause_between(tmp_path):
    """The ingest task reads between health pings: its reader yields after every piece of
    at most READ_CHUNK_BYTES (so a loop turn is bounded), and what it builds is what the
    whole read builds."""
    from pygnc.config import Config, Paths
    from pygnc.formats.common import READ_CHUNK_BYTES
    from pygnc.tasks.ingest import build_message_stream, iter_message_stream

    data = _sense_bytes(200, 9, [])
    reps = 5 * READ_CHUNK_BYTES // len(data) + 1
    (tmp_path / "sense.bin").write_bytes(data * reps)  # each copy's times step back: kept, no outliers
    (tmp_path / "range").mkdir()
    (tmp_path / "range" / "rng00001.bin").write_bytes(_range_bytes(12, 3, []) * 400)
    size = len(data) * reps + (tmp_path / "range" / "rng00001.bin").stat().st_size
    gen = iter_message_stream(Paths(tmp_path), Config())
    yields = 0
    try:
        while True:
            next(gen)
            yields += 1
    except StopIteration as done:
        built = done.value
    assert yields >= size // READ_CHUNK_BYTES
    whole = build_message_stream(Paths(tmp_path), Config())
    assert len(built.messages) == len(whole.messages) and built.messages[-1] == whole.messages[-1]
    stats = [b for t, b in built.messages if t == "ingest_stats"]
    assert [b["bytes_over_limit"] for b in stats] == [0, 0] and stats[0]["records"] == 200 * reps
    assert [b["time_outliers"] for b in stats] == [0, 0]
