"""Range files: layout, round trips, spurious syncs, corrupt packets, directory order, fuzz."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _formats_corrupt import Corrupted, corruptions
from pygnc.config import Config
from pygnc.formats.gps import GPS_SEGMENT_DTYPE, decode_gps_segments, encode_gps_segment
from pygnc.formats.range_file import (
    PEER_GPS_PACKET_SIZE,
    RANGE_DTYPE,
    RANGE_PACKET_DTYPE,
    RANGE_PACKET_SIZE,
    SYNC,
    decode_range,
    encode_range_group,
    encode_range_packets,
    range_file_number,
    range_packets_from_ranges,
    read_range_dir,
)

PEER_GPS = encode_gps_segment(
    t_sc_s=1_700_000_020, time_status=180, week=2300, ms_of_week=86_400_000, solution_status=0,
    pos_ecef_m=(6_800_000.0, 100.0, -200.0), vel_status=0, vel_ecef_m_s=(0.0, 5_000.0, 5_000.0),
    sats_tracked=11, sats_in_solution=9,
)


def test_sizes_and_layout():
    assert RANGE_PACKET_DTYPE.itemsize == RANGE_PACKET_SIZE == 12
    assert PEER_GPS_PACKET_SIZE == 102
    pk = encode_range_packets([(0x01020304, 999, 0x4A, 0x03, 0x0A0B0C0D)])
    assert pk == bytes.fromhex("01020304 03e7 4a 03 0a0b0c0d")
    group = encode_range_group(PEER_GPS, [(0x01020304, 999, 0x4A, 0x03, 0x0A0B0C0D)])
    assert group == SYNC + PEER_GPS + pk
    b = decode_range(group, file_index=7)
    r = b.ranges[0]
    assert r["t_sc_s"] == 0x01020304 + 0.999
    assert r["peer_id"] == 0x4A and r["valid"] and r["filtered"]
    assert r["range_m"] == 0x0A0B0C0D / 1000
    assert r["group"] == 0 and r["file_index"] == 7
    assert b.peer_fixes.shape == (1,) and b.peer_fixes[0]["peer_id"] == 0x4A
    assert b.peer_fixes[0]["valid"]
    assert b.peer_fixes[0]["t_sc_s"] == 1_700_000_020
    assert b.stats.as_dict() == {"bytes_total": 114, "bytes_skipped": 0, "records": 1, "records_skipped": 0, "skip_events": 0}


packet = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 999), st.integers(0, 255), st.integers(0, 3), st.integers(0, 2**32 - 1))


@st.composite
def range_files(draw, max_groups=6):
    groups = []
    for _ in range(draw(st.integers(0, max_groups))):
        seg = np.zeros(1, GPS_SEGMENT_DTYPE)
        seg["t_sc_s"] = draw(st.integers(0, 2**32 - 1))
        seg["time_status"] = draw(st.sampled_from([20, 120, 160, 180]))
        seg["week"] = draw(st.integers(0, 4000))
        seg["ms_of_week"] = draw(st.integers(0, 604_799_999))
        seg["solution_status"] = draw(st.integers(0, 22))
        seg["vel_status"] = draw(st.integers(0, 22))
        seg["pos_ecef_m"] = draw(st.tuples(*[st.floats(-1e7, 1e7)] * 3))
        seg["sats_in_solution"] = draw(st.integers(0, 20))
        groups.append((seg, draw(st.lists(packet, max_size=8))))
    return groups


@settings(max_examples=80, deadline=None)
@given(range_files())
def test_round_trip(groups):
    data = b"".join(encode_range_group(seg, pks) for seg, pks in groups)
    b = decode_range(data, file_index=3)
    assert b.stats.bytes_skipped == 0 and b.stats.bytes_total == len(data)
    all_pk = [p for _, pks in groups for p in pks]
    assert b.stats.records == len(all_pk) == b.ranges.size
    assert b.peer_fixes.size == len(groups)
    want_fix = decode_gps_segments(np.concatenate([g for g, _ in groups]) if groups else np.zeros(0, GPS_SEGMENT_DTYPE))
    for name in want_fix.dtype.names:
        np.testing.assert_array_equal(b.peer_fixes[name], want_fix[name])
    for r, (t, ms, pid, flags, mm) in zip(b.ranges, all_pk):
        assert r["t_sc_s"] == t + ms / 1000 and r["peer_id"] == pid and r["range_m"] == mm / 1000
        assert r["valid"] == bool(flags & 1) and r["filtered"] == bool(flags & 2)
    assert b.ranges["group"].tolist() == [i for i, (_, pks) in enumerate(groups) for _ in pks]
    assert b.peer_fixes["peer_id"].tolist() == [pks[0][2] if pks else 0 for _, pks in groups]
    # Decoded ranges re-encode to the same bytes.
    if b.ranges.size:
        assert range_packets_from_ranges(b.ranges).tobytes() == encode_range_packets(all_pk)


def test_spurious_sync_inside_range_data_is_ignored():
    # 0x00AA4412 mm = 11.2 km: the sync bytes at packet offset 9; the "GPS segment" after
    # them starts with the next packets, whose ms high byte is no NovAtel time status.
    pks = [(1_700_000_000, 1, 0x4B, 1, 0xAA4412)] + [(1_700_000_000 + k, 999, 0x4B, 1, 0) for k in range(12)]
    data = encode_range_group(PEER_GPS, pks) + encode_range_group(PEER_GPS, pks[:2])
    assert data[PEER_GPS_PACKET_SIZE + 9 : PEER_GPS_PACKET_SIZE + 12] == SYNC
    b = decode_range(data)
    assert b.peer_fixes.size == 2 and b.ranges.size == 15 and b.stats.bytes_skipped == 0


def test_off_grid_sync_after_corruption_starts_a_group():
    g1 = encode_range_group(PEER_GPS, [(1_700_000_000, 0, 0x4B, 1, 5)] * 2)
    g2 = encode_range_group(PEER_GPS, [(1_700_000_001, 0, 0x4B, 1, 6)])
    b = decode_range(g1[:-5] + g2)  # last packet of group 1 torn
    assert b.ranges["group"].tolist() == [0, 1] and b.stats.bytes_skipped == 7


def test_truncated_gps_packet_loses_to_the_next_sync():
    g1 = encode_range_group(PEER_GPS, [])
    g2 = encode_range_group(PEER_GPS, [(1_700_000_001, 0, 0x4B, 1, 6)])
    b = decode_range(g1[:60] + g1[61:] + g2)  # a byte lost inside group 1's GPS segment
    assert b.peer_fixes.size == 1 and b.ranges.size == 1 and b.stats.bytes_skipped == 101


def test_corrupt_packet_resyncs_to_next_group():
    good = [(1_700_000_000, 5, 0x4C, 1, 1000)] * 3
    bad_ms = [(1_700_000_000, 5, 0x4C, 1, 1000), (1_700_000_000, 1000, 0x4C, 1, 1000), (1, 2, 3, 1, 4)]
    bad_flags = [(1_700_000_000, 5, 0x4C, 1, 1000), (1_700_000_000, 5, 0x4C, 0x05, 1000), (1, 2, 3, 1, 4)]
    for bad in (bad_ms, bad_flags):
        data = encode_range_group(PEER_GPS, bad) + encode_range_group(PEER_GPS, good)
        b = decode_range(data)
        assert b.ranges["group"].tolist() == [0, 1, 1, 1]
        assert b.stats.bytes_skipped == 24 and b.stats.records_skipped == 2 and b.stats.skip_events == 1


def test_sync_without_plausible_gps_is_not_a_group():
    fake = SYNC + encode_gps_segment(time_status=7)  # 7 is no NovAtel time status
    data = encode_range_group(PEER_GPS, [(1, 2, 3, 1, 4)]) + fake + encode_range_group(PEER_GPS, [])
    b = decode_range(data)
    assert b.peer_fixes.size == 2
    assert b.stats.bytes_skipped == len(fake)


def test_degenerate_inputs():
    for data in (b"", SYNC, SYNC + bytes(50), b"\xaa" * 1000, bytes(range(256)) * 20, SYNC * 200):
        b = decode_range(data)
        assert b.stats.bytes_total == len(data)
    b = decode_range(SYNC + bytes(99) + bytes(7))  # zero GPS segment, then a partial packet
    assert b.peer_fixes.size == 1 and b.ranges.size == 0 and b.stats.bytes_skipped == 7
    assert b.ranges.dtype == RANGE_DTYPE


def _groups(n_groups, seed):
    rng = np.random.default_rng(seed)
    out = []
    for g in range(n_groups):
        seg = np.frombuffer(PEER_GPS, GPS_SEGMENT_DTYPE).copy()
        seg["ms_of_week"] = rng.integers(0, 604_800_000)
        pks = [
            (1_700_000_000 + g, int(rng.integers(0, 1000)), 0x4A + g % 4, int(rng.integers(0, 4)), int(rng.integers(0, 2**32)))
            for _ in range(int(rng.integers(0, 6)))
        ]
        out.append((seg, pks))
    return out


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.integers(1, 8), st.integers(0, 1000), corruptions)
def test_fuzz_corruption_keeps_intact_groups(n_groups, seed, ops):
    groups = _groups(n_groups, seed)
    units, sizes, layout = [], [], []  # layout: (header uid, [packet uids]) per group
    for seg, pks in groups:
        h = len(units)
        units.append(SYNC + seg.tobytes())
        uids = []
        for p in pks:
            uids.append(len(units))
            units.append(encode_range_packets([p]))
        layout.append((h, uids))
    sizes = [len(u) for u in units]
    c = Corrupted.from_units(units)
    for op in ops:
        c.apply(*op)
    data = bytes(c.data)
    b = decode_range(data)  # must not raise
    s = b.stats
    assert s.bytes_total == len(data)
    assert s.records == b.ranges.size
    consumed = b.peer_fixes.size * PEER_GPS_PACKET_SIZE + b.ranges.size * RANGE_PACKET_SIZE
    assert s.bytes_total == consumed + s.bytes_skipped
    assert (s.skip_events == 0) == (s.bytes_skipped == 0)
    assert np.all(np.diff(b.ranges["group"]) >= 0)

    intact = c.intact(sizes)
    by_ms = {int(ms): k for k, ms in enumerate(b.peer_fixes["ms_of_week"])}
    for (h, uids), (seg, pks) in zip(layout, groups):
        if h not in intact:
            continue
        k = by_ms.get(int(seg["ms_of_week"][0]))
        assert k is not None, f"intact peer GPS packet lost; ops={ops}"
        # Leading packets that are intact and still right behind the GPS packet.
        expect, end = [], intact[h] + PEER_GPS_PACKET_SIZE
        for uid, p in zip(uids, pks):
            if intact.get(uid) != end:
                break
            expect.append(p)
            end += RANGE_PACKET_SIZE
        got = b.ranges[b.ranges["group"] == k]
        assert got.size >= len(expect), f"ops={ops}"
        for r, (t, ms, pid, flags, mm) in zip(got, expect):
            assert (r["t_sc_s"], r["peer_id"], r["range_m"]) == (t + ms / 1000, pid, mm / 1000)


def test_read_range_dir_numeric_order(tmp_path):
    for num in (10, 9, 100, 2):
        pk = [(1_700_000_000 + num, 0, 0x4A, 1, num)]
        (tmp_path / f"rng{num:05d}.bin").write_bytes(encode_range_group(PEER_GPS, pk))
    (tmp_path / "rng7.bin").write_bytes(encode_range_group(PEER_GPS, [(1, 0, 0x4D, 1, 7)]))
    (tmp_path / "rng00011.bin.tmp").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "rngabc.bin").write_bytes(b"")
    (tmp_path / "rng00012.bin").mkdir()
    b = read_range_dir(tmp_path)
    assert b.ranges["file_index"].tolist() == [2, 7, 9, 10, 100]
    assert b.ranges["range_m"].tolist() == [0.002, 0.007, 0.009, 0.010, 0.100]
    assert b.ranges["group"].tolist() == [0, 1, 2, 3, 4]
    assert b.peer_fixes.size == 5
    assert sorted(b.ignored_files) == ["notes.txt", "rng00011.bin.tmp", "rng00012.bin", "rngabc.bin"]
    assert [p.rsplit("/", 1)[-1] for p in b.files] == ["rng00002.bin", "rng7.bin", "rng00009.bin", "rng00010.bin", "rng00100.bin"]
    assert b.stats.records == 5 and b.stats.bytes_skipped == 0


def test_read_range_dir_empty(tmp_path):
    b = read_range_dir(tmp_path)
    assert b.ranges.size == 0 and b.peer_fixes.size == 0 and b.stats.bytes_total == 0


def test_range_file_number():
    assert range_file_number("rng00042.bin") == 42
    assert range_file_number("rng42.bin.part") is None
    assert range_file_number("xrng1.bin") is None


def test_peer_fix_validity_uses_config():
    seg = encode_gps_segment(time_status=160, week=2300, solution_status=1, vel_status=1,
                             pos_ecef_m=(7e6, 0, 0), vel_ecef_m_s=(0, 7e3, 0), sats_in_solution=8)
    data = encode_range_group(seg, [])
    assert not decode_range(data).peer_fixes["valid"][0]
    assert decode_range(data, Config(accepted_solution_status=(0, 1))).peer_fixes["valid"][0]


def test_absurd_range_file_name_is_ignored_not_fatal(tmp_path):
    from pygnc.formats.range_file import read_range_dir

    (tmp_path / "rng99999999999.bin").write_bytes(b"\xAA\x44\x12" + b"\x00" * 99)
    rb = read_range_dir(tmp_path)
    assert len(rb.peer_fixes) == 0 and any("rng99999999999.bin" in str(f) for f in rb.ignored_files)


def test_a_bad_entry_never_costs_the_other_range_files(tmp_path):
    """Hardening trial: one symlink loop named rngNNNNN.bin discarded every range file."""
    import os

    (tmp_path / "rng00001.bin").write_bytes(encode_range_group(PEER_GPS, [(1_700_000_001, 0, 0x4A, 1, 1000)]))
    os.symlink("rng00002.bin", tmp_path / "rng00002.bin")            # a loop onto itself
    os.symlink(tmp_path / "nowhere.bin", tmp_path / "rng00003.bin")  # dangling
    os.mkfifo(tmp_path / "rng00004.bin")                              # never blocks
    (tmp_path / "rng00005.bin").write_bytes(encode_range_group(PEER_GPS, [(1_700_000_005, 0, 0x4B, 1, 5000)]))
    b = read_range_dir(tmp_path)
    assert b.ranges["file_index"].tolist() == [1, 5]
    assert sorted(b.ignored_files) == ["rng00002.bin", "rng00003.bin", "rng00004.bin"]


def test_only_ascii_digits_make_a_file_number():
    assert range_file_number("rng\uff10\uff11.bin") is None  # full-width 01
    assert range_file_number("rng\u0661\u0662.bin") is None  # Arabic-Indic 12
    assert range_file_number("rng01.bin") == 1


def test_ingest_counts_the_range_files_it_decoded(tmp_path):
    """The status's range_files is the number of files decoded, whatever else the directory holds."""
    import os

    from pygnc.config import Paths
    from pygnc.tasks.ingest import build_message_stream

    rd = tmp_path / "range"
    rd.mkdir()
    for k in (1, 2):
        (rd / f"rng{k:05d}.bin").write_bytes(encode_range_group(PEER_GPS, [(1_700_000_000 + k, 0, 0x4A, 1, 1000)]))
    os.symlink("rng00003.bin", rd / "rng00003.bin")
    (rd / "rng00004.bin.tmp").write_bytes(b"x")
    (rd / "rngX.bin").write_bytes(b"x")
    (rd / "notes.txt").write_text("x")
    stats = [b for t, b in build_message_stream(Paths(tmp_path), Config()).messages
             if t == "ingest_stats" and b["source"] == "range"]
    assert stats[0]["files"] == 2
