"""Range files (the real PY4 layout): the capture, round trips, resync, corrupt data,
directory order, fuzz."""

import math

import numpy as np
import pytest
from _formats_corrupt import Corrupted, corruptions
from conftest import PY4_DATA
from hypothesis import given, settings
from hypothesis import strategies as st

from pygnc.config import Config
from pygnc.formats.gps import GPS_FIX_DTYPE
from pygnc.formats.range_file import (
    GPS_PACKET_SIZE,
    RANGE_DTYPE,
    RANGE_GPS_DTYPE,
    RANGE_PACKET_DTYPE,
    RANGE_PACKET_SIZE,
    RAW_MAX,
    SYNC,
    decode_range,
    encode_gps_packet,
    encode_range_group,
    encode_range_packets,
    range_file_number,
    read_range_dir,
)
from pygnc.formats.settings import DecodeSettings

CAPTURE = PY4_DATA / "pygnc_range_example" / "rng00000.bin"


def gps_fix(
    week=2300,
    ms_of_week=86_400_000,
    solution_status=0,
    vel_status=0,
    pos=(6_800_000.0, 100.0, -200.0),
    vel=(0.0, 5_000.0, 5_000.0),
    sats=9,
):
    f = np.zeros(1, dtype=GPS_FIX_DTYPE)
    f["week"], f["ms_of_week"] = week, ms_of_week
    f["solution_status"], f["vel_status"] = solution_status, vel_status
    f["pos_ecef_m"], f["vel_ecef_m_s"] = pos, vel
    f["sats_tracked"], f["sats_in_solution"] = sats + 2, sats
    return f


GPS = encode_gps_packet(gps_fix())


def test_the_real_capture_decodes_as_the_flight_team_reads_it():
    """PY4 bench capture: 23 GPS packets, 20 ranges to 0x4A of about 1.0-1.1 km, nothing
    skipped; the first four fixes are from a receiver without a week (not valid), the fifth
    INSUFFICIENT_OBS, the rest SOL_COMPUTED in week 2278; the clock was unset (2000)."""
    b = decode_range(CAPTURE.read_bytes(), file_index=0)
    assert b.stats.as_dict() == {
        "bytes_total": 2586,
        "bytes_skipped": 0,
        "records": 20,
        "records_skipped": 0,
        "skip_events": 0,
    }
    assert len(b.gps_fixes) == 23 and len(b.ranges) == 20
    r = b.ranges
    assert set(r["peer_id"].tolist()) == {0x4A} and r["valid"].all()
    assert 930.0 < r["range_m"].min() and r["range_m"].max() < 1130.0
    assert np.median(r["range_m"]) == pytest.approx(1050.0, abs=60.0)
    assert -54.5 <= r["rssi_dbm"].min() and r["rssi_dbm"].max() <= -23.0
    assert 140.0 < r["fei_hz"].min() and r["fei_hz"].max() < 200.0
    assert (r["t_sc_s"] < 946_771_200).all()  # 2000-01-02: the PyCubed clock was never set
    f = b.gps_fixes
    assert f["week"].tolist()[:4] == [0] * 4 and (f["week"][4:] == 2278).all()
    assert f["valid"].tolist() == [False] * 5 + [True] * 18
    assert (f["solution_status"][5:] == 0).all() and f["solution_status"][4] == 1


def test_the_example_packet_of_the_interface_document():
    """4a6b386d49420000f8005a94: partner 0x4A, -53.5 dBm, 2000-01-01 00:24:34, FEI 248 =
    195.2 Hz and raw 23188 = 1045.1 m at 812.5 kHz (bandwidth code 0x18)."""
    data = GPS + bytes.fromhex("4a6b386d49420000f8005a94")
    r = decode_range(data).ranges[0]
    assert r["peer_id"] == 0x4A and r["rssi_dbm"] == -53.5 and r["t_sc_s"] == 946_686_274
    assert r["fei_raw"] == 248 and r["fei_hz"] == pytest.approx(195.2, abs=0.05)
    assert r["range_raw"] == 23188 and r["range_m"] == pytest.approx(1045.1, abs=0.05)
    assert encode_range_packets(decode_range(data).ranges) == data[GPS_PACKET_SIZE:]


def test_sizes_and_layout():
    assert RANGE_PACKET_DTYPE.itemsize == RANGE_PACKET_SIZE == 12
    assert RANGE_GPS_DTYPE.itemsize == GPS_PACKET_SIZE == 102
    assert GPS[:3] == SYNC and GPS[-2:] == b"\r\n"
    pk = encode_range_packets([(0x4B, 0x01020304, -5, -10.0, -3)])
    assert pk == bytes.fromhex("4b 14 01020304 0ffffd fffffb")
    b = decode_range(GPS + pk, file_index=7)
    r = b.ranges[0]
    assert (r["peer_id"], r["t_sc_s"], r["range_raw"], r["fei_raw"], r["rssi_dbm"]) == (0x4B, 0x01020304, -5, -3, -10.0)
    assert not r["valid"] and r["group"] == 0 and r["file_index"] == 7
    fx = b.gps_fixes[0]
    assert fx["valid"] and fx["peer_id"] == 0x4B and fx["t_sc_s"] == 0x01020304 and fx["week"] == 2300


def _settings(**config) -> DecodeSettings:
    """The decoders' settings of a configuration with these keys."""
    return DecodeSettings.from_config(Config(**config))


def test_conversion_follows_configuration():
    pk = encode_range_packets([(0x4A, 100, 23188)])
    base = decode_range(GPS + pk).ranges["range_m"][0]
    assert base == pytest.approx(23188 * 150 / (4096 * 0.8125))
    wide = decode_range(GPS + pk, _settings(sx1280_ranging_bandwidth_code=0x0A)).ranges["range_m"][0]
    assert wide == pytest.approx(base / 2)
    filt = decode_range(GPS + pk, _settings(sx1280_ranging_filtered=True)).ranges["range_m"][0]
    assert filt == pytest.approx(base * 0.2)
    cal = decode_range(GPS + pk, _settings(range_calibration_m={"0x4A": 12.5, "75": -3.0})).ranges["range_m"][0]
    assert cal == pytest.approx(base - 12.5)
    with pytest.raises(ValueError, match="bandwidth code"):
        Config(sx1280_ranging_bandwidth_code=0x19)
    with pytest.raises(ValueError, match="partner id"):
        Config(range_calibration_m={"sc1": 1.0})


def test_raw_results_at_the_24_bit_extremes_are_decoded_and_not_valid():
    pks = [(0x4A, 1, RAW_MAX), (0x4A, 1, -(1 << 23)), (0x4A, 1, 0), (0x4A, 1, -1), (0x4A, 1, RAW_MAX - 1)]
    r = decode_range(GPS + encode_range_packets(pks)).ranges
    assert r["range_raw"].tolist() == [RAW_MAX, -(1 << 23), 0, -1, RAW_MAX - 1]
    assert r["valid"].tolist() == [False, False, False, False, True]
    assert np.isfinite(r["range_m"]).all()


def test_a_gps_packet_without_ranges_has_no_time_and_no_partner():
    b = decode_range(GPS + GPS + encode_range_packets([(0x4C, 5, 100)]))
    assert math.isnan(b.gps_fixes["t_sc_s"][0]) and b.gps_fixes["peer_id"][0] == 0
    assert b.gps_fixes["t_sc_s"][1] == 5 and b.gps_fixes["peer_id"][1] == 0x4C
    assert b.ranges["group"].tolist() == [1]


packet = st.tuples(
    st.integers(0, 255),
    st.integers(0, 2**32 - 1),
    st.integers(-(1 << 23), (1 << 23) - 1),
    st.integers(0, 255).map(lambda c: -c / 2.0),
    st.integers(-(1 << 19), (1 << 19) - 1),
)


@st.composite
def range_files(draw, max_groups=6):
    groups = []
    for _ in range(draw(st.integers(0, max_groups))):
        f = gps_fix(
            week=draw(st.integers(0, 4000)),
            ms_of_week=draw(st.integers(0, 604_799_999)),
            solution_status=draw(st.integers(0, 22)),
            vel_status=draw(st.integers(0, 22)),
            pos=draw(st.tuples(*[st.floats(-1e7, 1e7)] * 3)),
            sats=draw(st.integers(0, 20)),
        )
        groups.append((f, draw(st.lists(packet, max_size=8))))
    return groups


@settings(max_examples=80, deadline=None)
@given(range_files())
def test_round_trip(groups):
    data = b"".join(encode_range_group(f, pks) for f, pks in groups)
    b = decode_range(data, file_index=3)
    assert b.stats.bytes_skipped == 0 and b.stats.bytes_total == len(data)
    all_pk = [p for _, pks in groups for p in pks]
    assert b.stats.records == len(all_pk) == b.ranges.size
    assert b.gps_fixes.size == len(groups)
    for name in ("week", "ms_of_week", "solution_status", "vel_status", "pos_ecef_m", "sats_in_solution"):
        if groups:
            np.testing.assert_array_equal(b.gps_fixes[name], np.concatenate([f[name] for f, _ in groups]))
    for r, (pid, t, raw, rssi, fei) in zip(b.ranges, all_pk):
        assert (r["peer_id"], r["t_sc_s"], r["range_raw"], r["rssi_dbm"], r["fei_raw"]) == (pid, t, raw, rssi, fei)
        assert r["valid"] == (0 < raw < RAW_MAX)
    assert b.ranges["group"].tolist() == [i for i, (_, pks) in enumerate(groups) for _ in pks]
    assert b.gps_fixes["peer_id"].tolist() == [pks[0][0] if pks else 0 for _, pks in groups]
    if b.ranges.size:  # decoded ranges re-encode to the same bytes
        assert encode_range_packets(b.ranges) == encode_range_packets(all_pk)


def test_spurious_sync_inside_range_data_is_ignored():
    # Sync bytes as a raw result (0xAA4412 is a 24-bit value): the would-be GPS packet
    # after them does not end in CR LF where it must.
    pks = [(0x4B, 1_700_000_000, 0)] + [(0x4B, 1_700_000_000 + k, 1000) for k in range(12)]
    data = bytearray(encode_range_group(GPS, pks) + encode_range_group(GPS, pks[:2]))
    data[GPS_PACKET_SIZE + 9 : GPS_PACKET_SIZE + 12] = SYNC
    b = decode_range(bytes(data))
    assert b.gps_fixes.size == 2 and b.ranges.size == 15 and b.stats.bytes_skipped == 0


def test_torn_range_packet_is_skipped_and_the_next_group_found():
    g1 = encode_range_group(GPS, [(0x4B, 1_700_000_000, 5)] * 2)
    g2 = encode_range_group(GPS, [(0x4B, 1_700_000_001, 6)])
    b = decode_range(g1[:-5] + g2)  # last packet of group 1 torn
    assert b.ranges["group"].tolist() == [0, 1] and b.stats.bytes_skipped == 7
    assert b.stats.records_skipped == 1 and b.stats.skip_events == 1


def test_truncated_gps_packet_loses_to_the_next_sync():
    g1 = encode_range_group(GPS, [])
    g2 = encode_range_group(GPS, [(0x4B, 1_700_000_001, 6)])
    b = decode_range(g1[:60] + g1[61:] + g2)  # a byte lost inside group 1's GPS packet
    assert b.gps_fixes.size == 1 and b.ranges.size == 1 and b.stats.bytes_skipped == 101


def test_sync_without_a_plausible_gps_packet_is_not_a_group():
    bad_status = encode_gps_packet(gps_fix(solution_status=23))
    no_crlf = GPS[:-2] + b"\n\n"
    for fake in (bad_status, no_crlf):
        data = encode_range_group(GPS, [(3, 1, 4)]) + fake + encode_range_group(GPS, [])
        b = decode_range(data)
        assert b.gps_fixes.size == 2
        assert b.ranges.size == 1 + len(fake) // 12 and b.stats.bytes_skipped == len(fake) % 12


def test_degenerate_inputs():
    for data in (b"", SYNC, SYNC + bytes(50), b"\xaa" * 1000, bytes(range(256)) * 20, SYNC * 200, GPS[:-1]):
        b = decode_range(data)
        assert b.stats.bytes_total == len(data)
        assert b.stats.bytes_total == b.gps_fixes.size * GPS_PACKET_SIZE + b.ranges.size * 12 + b.stats.bytes_skipped
    b = decode_range(GPS + bytes(7))  # a partial packet
    assert b.gps_fixes.size == 1 and b.ranges.size == 0 and b.stats.bytes_skipped == 7
    assert b.ranges.dtype == RANGE_DTYPE


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(data):
    b = decode_range(data)
    s = b.stats
    assert s.bytes_total == b.gps_fixes.size * GPS_PACKET_SIZE + b.ranges.size * 12 + s.bytes_skipped


def _groups(n_groups, seed):
    rng = np.random.default_rng(seed)
    out = []
    for g in range(n_groups):
        f = gps_fix(ms_of_week=int(rng.integers(0, 604_800_000)))
        pks = [
            (0x4A + g % 4, 1_700_000_000 + g, int(rng.integers(-(1 << 23), 1 << 23)))
            for _ in range(int(rng.integers(0, 6)))
        ]
        out.append((f, pks))
    return out


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.integers(1, 8), st.integers(0, 1000), corruptions)
def test_fuzz_corruption_keeps_intact_groups(n_groups, seed, ops):
    groups = _groups(n_groups, seed)
    units, layout = [], []  # layout: (header uid, [packet uids]) per group
    for f, pks in groups:
        h = len(units)
        units.append(encode_gps_packet(f))
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
    assert s.bytes_total == b.gps_fixes.size * GPS_PACKET_SIZE + b.ranges.size * RANGE_PACKET_SIZE + s.bytes_skipped
    assert (s.skip_events == 0) == (s.bytes_skipped == 0)
    assert np.all(np.diff(b.ranges["group"]) >= 0)

    intact = c.intact(sizes)
    by_ms = {int(ms): k for k, ms in enumerate(b.gps_fixes["ms_of_week"])}
    for (h, uids), (f, pks) in zip(layout, groups):
        if h not in intact:
            continue
        k = by_ms.get(int(f["ms_of_week"][0]))
        assert k is not None, f"intact GPS packet lost; ops={ops}"
        # Leading packets that are intact and still right behind the GPS packet.
        expect, end = [], intact[h] + GPS_PACKET_SIZE
        for uid, p in zip(uids, pks):
            if intact.get(uid) != end:
                break
            expect.append(p)
            end += RANGE_PACKET_SIZE
        got = b.ranges[b.ranges["group"] == k]
        assert got.size >= len(expect), f"ops={ops}"
        for r, (pid, t, raw) in zip(got, expect):
            assert (r["peer_id"], r["t_sc_s"], r["range_raw"]) == (pid, t, raw)


def test_read_range_dir_numeric_order(tmp_path):
    for num in (10, 9, 100, 2):
        (tmp_path / f"rng{num:05d}.bin").write_bytes(encode_range_group(GPS, [(0x4A, 1_700_000_000 + num, num)]))
    (tmp_path / "rng7.bin").write_bytes(encode_range_group(GPS, [(0x4D, 1, 7)]))
    (tmp_path / "rng00011.bin.tmp").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "rngabc.bin").write_bytes(b"")
    (tmp_path / "rng00012.bin").mkdir()
    b = read_range_dir(tmp_path)
    assert b.ranges["file_index"].tolist() == [2, 7, 9, 10, 100]
    assert b.ranges["range_raw"].tolist() == [2, 7, 9, 10, 100]
    assert b.ranges["group"].tolist() == [0, 1, 2, 3, 4]
    assert b.gps_fixes.size == 5
    assert sorted(b.ignored_files) == ["notes.txt", "rng00011.bin.tmp", "rng00012.bin", "rngabc.bin"]
    assert [p.rsplit("/", 1)[-1] for p in b.files] == [
        "rng00002.bin",
        "rng7.bin",
        "rng00009.bin",
        "rng00010.bin",
        "rng00100.bin",
    ]
    assert b.stats.records == 5 and b.stats.bytes_skipped == 0


def test_read_range_dir_empty(tmp_path):
    b = read_range_dir(tmp_path)
    assert b.ranges.size == 0 and b.gps_fixes.size == 0 and b.stats.bytes_total == 0


def test_range_file_number():
    assert range_file_number("rng00042.bin") == 42
    assert range_file_number("rng42.bin.part") is None
    assert range_file_number("xrng1.bin") is None


def test_range_bin_is_read_after_the_numbered_files(tmp_path):
    rd = tmp_path / "range"
    rd.mkdir()
    (rd / "rng00003.bin").write_bytes(encode_range_group(GPS, [(0x4A, 3, 3)]))
    (tmp_path / "range.bin").write_bytes(encode_range_group(GPS, [(0x4B, 9, 9)]))
    b = read_range_dir(rd, single_file=tmp_path / "range.bin")
    assert b.ranges["file_index"].tolist() == [3, -1] and b.ranges["group"].tolist() == [0, 1]
    b = read_range_dir(tmp_path / "absent", single_file=tmp_path / "range.bin")
    assert b.ranges["peer_id"].tolist() == [0x4B]


def test_gps_fix_validity_uses_config():
    data = encode_range_group(gps_fix(solution_status=1, vel_status=1, pos=(7e6, 0, 0), vel=(0, 7e3, 0), sats=8), [])
    assert not decode_range(data).gps_fixes["valid"][0]
    assert decode_range(data, _settings(accepted_solution_status=(0, 1))).gps_fixes["valid"][0]


def test_absurd_range_file_name_is_ignored_not_fatal(tmp_path):
    from pygnc.formats.range_file import read_range_dir

    (tmp_path / "rng99999999999.bin").write_bytes(GPS)
    rb = read_range_dir(tmp_path)
    assert len(rb.gps_fixes) == 0 and any("rng99999999999.bin" in str(f) for f in rb.ignored_files)


def test_a_bad_entry_never_costs_the_other_range_files(tmp_path):
    """Hardening trial: one symlink loop named rngNNNNN.bin discarded every range file."""
    import os

    (tmp_path / "rng00001.bin").write_bytes(encode_range_group(GPS, [(0x4A, 1_700_000_001, 1000)]))
    os.symlink("rng00002.bin", tmp_path / "rng00002.bin")  # a loop onto itself
    os.symlink(tmp_path / "nowhere.bin", tmp_path / "rng00003.bin")  # dangling
    os.mkfifo(tmp_path / "rng00004.bin")  # never blocks
    (tmp_path / "rng00005.bin").write_bytes(encode_range_group(GPS, [(0x4B, 1_700_000_005, 5000)]))
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
        (rd / f"rng{k:05d}.bin").write_bytes(encode_range_group(GPS, [(0x4A, 1_700_000_000 + k, 1000)]))
    os.symlink("rng00003.bin", rd / "rng00003.bin")
    (rd / "rng00004.bin.tmp").write_bytes(b"x")
    (rd / "rngX.bin").write_bytes(b"x")
    (rd / "notes.txt").write_text("x")
    stats = [
        b
        for t, b in build_message_stream(Paths(tmp_path), Config()).messages
        if t == "ingest_stats" and b["source"] == "range"
    ]
    assert stats[0]["files"] == 2
