"""99-byte GPS segment: worked vector, round trips, plausibility vs validity, stats."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pygnc.config import Config
from pygnc.formats.common import DecodeStats
from pygnc.formats.gps import (
    GPS_FIX_DTYPE,
    GPS_SEGMENT_DTYPE,
    GPS_SEGMENT_SIZE,
    TIME_STATUS_VALUES,
    decode_gps_segments,
    encode_gps_segment,
    encode_gps_segments,
    fix_is_valid,
    gps_raw_from_fixes,
    gps_segment_plausible,
)
from pygnc.formats.settings import DecodeSettings
from pygnc.timebase import GPS_EPOCH_UNIX_S

# protocols.md §3.5 worked vector (PyGNC test_data_parsing.py).
VECTOR_HEX = (
    "654b9534a0ef0861337712010000000080842e410000000080843e410000000060e34641"
    "000000000000000000000000010000000000909a400000000000209c400000000000b09d40"
    "0000000000000000000000000000000000000000000000000a08"
)


def test_dtype_sizes():
    assert GPS_SEGMENT_SIZE == GPS_SEGMENT_DTYPE.itemsize == 99
    assert GPS_SEGMENT_DTYPE.fields["week"][1] == 5
    assert GPS_SEGMENT_DTYPE.fields["solution_status"][1] == 11
    assert GPS_SEGMENT_DTYPE.fields["vel_status"][1] == 48
    assert GPS_SEGMENT_DTYPE.fields["sats_in_solution"][1] == 98


def test_worked_vector_exact():
    raw = bytes.fromhex(VECTOR_HEX)
    assert len(raw) == 99
    fix = decode_gps_segments(raw)[0]
    assert fix["t_sc_s"] == 1699452212
    assert fix["time_status"] == 160
    assert fix["week"] == 2287
    assert fix["ms_of_week"] == 309801825
    assert fix["t_gps_s"] == 2287 * 604800 + 309801.825
    assert fix["unix_time_s"] == pytest.approx(GPS_EPOCH_UNIX_S + 2287 * 604800 + 309801.825 - 18, abs=1e-6)
    assert fix["solution_status"] == 1
    assert list(fix["pos_ecef_m"]) == [1e6, 2e6, 3e6]
    assert list(fix["pos_sigma_m"]) == [0, 0, 0]
    assert fix["vel_status"] == 1
    assert list(fix["vel_ecef_m_s"]) == [1700, 1800, 1900]
    assert list(fix["vel_sigma_m_s"]) == [0, 0, 0]
    assert fix["v_latency_s"] == fix["diff_age_s"] == fix["sol_age_s"] == 0
    assert fix["sats_tracked"] == 10 and fix["sats_in_solution"] == 8
    # |r| = 3.74e6 m is inside the Earth: never valid, whatever statuses are accepted.
    assert not fix["valid"]
    assert not decode_gps_segments(raw, DecodeSettings.from_config(Config(accepted_solution_status=(0, 1))))[0]["valid"]
    assert gps_segment_plausible(raw).tolist() == [True]
    assert encode_gps_segments(decode_gps_segments(raw)) == raw


def test_encode_gps_segment_matches_vector():
    raw = encode_gps_segment(
        t_sc_s=1699452212,
        time_status=160,
        week=2287,
        ms_of_week=309801825,
        solution_status=1,
        pos_ecef_m=(1e6, 2e6, 3e6),
        vel_status=1,
        vel_ecef_m_s=(1700, 1800, 1900),
        sats_tracked=10,
        sats_in_solution=8,
    )
    assert raw == bytes.fromhex(VECTOR_HEX)


f32 = st.floats(width=32, allow_nan=False)
f64 = st.floats(allow_nan=False)
u8 = st.integers(0, 255)


@st.composite
def raw_segments(draw, n=None):
    count = draw(st.integers(0, 20) if n is None else n)
    seg = np.zeros(count, dtype=GPS_SEGMENT_DTYPE)
    for i in range(count):
        seg[i] = (
            draw(st.integers(0, 2**32 - 1)),
            draw(u8),
            draw(st.integers(0, 2**16 - 1)),
            draw(st.integers(0, 2**32 - 1)),
            draw(u8),
            draw(st.tuples(f64, f64, f64)),
            draw(st.tuples(f32, f32, f32)),
            draw(u8),
            draw(st.tuples(f64, f64, f64)),
            draw(st.tuples(f32, f32, f32)),
            draw(f32),
            draw(f32),
            draw(f32),
            draw(u8),
            draw(u8),
        )
    return seg


@settings(max_examples=100, deadline=None)
@given(raw_segments())
def test_round_trip_raw_decode_encode(seg):
    raw = seg.tobytes()
    fixes = decode_gps_segments(np.frombuffer(raw, np.uint8).reshape(-1, 99) if raw else np.zeros((0, 99), np.uint8))
    assert fixes.dtype == GPS_FIX_DTYPE and fixes.shape == seg.shape
    assert encode_gps_segments(fixes) == raw
    for name in GPS_SEGMENT_DTYPE.names:
        np.testing.assert_array_equal(fixes[name], seg[name])
    np.testing.assert_array_equal(fixes["t_gps_s"], seg["week"] * 604800.0 + seg["ms_of_week"] * 1e-3)
    np.testing.assert_array_equal(fixes["valid"], fix_is_valid(fixes, DecodeSettings.from_config(Config())))


def _good_fix(**kw):
    fields = dict(
        t_sc_s=1_700_000_000,
        time_status=180,
        week=2300,
        ms_of_week=123_456_789,
        solution_status=0,
        pos_ecef_m=(6_778_000.0, 0.0, 0.0),
        vel_status=0,
        vel_ecef_m_s=(0.0, 7_000.0, 1_000.0),
        sats_tracked=12,
        sats_in_solution=9,
    )
    fields.update(kw)
    return decode_gps_segments(encode_gps_segment(**fields))[0]


@pytest.mark.parametrize(
    "change, valid",
    [
        ({}, True),
        ({"solution_status": 1}, False),
        ({"vel_status": 1}, False),
        ({"sats_in_solution": 3}, False),
        ({"sats_in_solution": 4}, True),
        ({"pos_ecef_m": (6_000_000.0, 0, 0)}, False),
        ({"pos_ecef_m": (9_000_000.0, 0, 0)}, False),
        ({"pos_ecef_m": (float("nan"), 0, 0)}, False),
        ({"vel_ecef_m_s": (0, 9_500.0, 0)}, False),
        ({"vel_ecef_m_s": (0, float("inf"), 0)}, False),
        ({"time_status": 20}, True),  # time status is not part of validity
    ],
)
def test_validity_rules(change, valid):
    assert bool(_good_fix(**change)["valid"]) is valid


def test_accepted_status_is_configuration():
    fix = _good_fix(solution_status=1, vel_status=1)
    assert not fix_is_valid(fix[None], DecodeSettings.from_config(Config()))[0]
    assert fix_is_valid(fix[None], DecodeSettings.from_config(Config(accepted_solution_status=(0, 1))))[0]


def test_plausibility():
    assert gps_segment_plausible(bytes(99)).tolist() == [True]  # GPS absent, zero-filled
    for ts in TIME_STATUS_VALUES:
        assert gps_segment_plausible(encode_gps_segment(time_status=ts))[0]
    assert not gps_segment_plausible(encode_gps_segment(time_status=0, week=1))[0]
    assert not gps_segment_plausible(encode_gps_segment(time_status=21))[0]
    assert not gps_segment_plausible(encode_gps_segment(solution_status=23))[0]
    assert not gps_segment_plausible(encode_gps_segment(vel_status=200))[0]
    assert not gps_segment_plausible(encode_gps_segment(ms_of_week=604_800_000))[0]
    # Bench fix: UNKNOWN time, INSUFFICIENT_OBS, zero position -> plausible, not valid.
    bench = encode_gps_segment(t_sc_s=946696536, time_status=20, ms_of_week=43000, solution_status=1, vel_status=1)
    assert gps_segment_plausible(bench)[0]
    assert not decode_gps_segments(bench)[0]["valid"]


def test_raw_from_fixes_rounds_sc_time():
    fix = _good_fix()
    fix["t_sc_s"] = 1_700_000_000.4
    assert gps_raw_from_fixes(fix[None])["t_sc_s"][0] == 1_700_000_000


def test_decode_rejects_wrong_length():
    with pytest.raises(ValueError):
        decode_gps_segments(bytes(100))


def test_decode_stats_merge_and_dict():
    a = DecodeStats(10, 2, 3, 1, 1)
    b = DecodeStats(5, 0, 1, 0, 0)
    assert a.merge(b).as_dict() == {
        "bytes_total": 15,
        "bytes_skipped": 2,
        "records": 4,
        "records_skipped": 1,
        "skip_events": 1,
    }
    assert a.as_dict()["bytes_total"] == 10  # merge does not mutate
