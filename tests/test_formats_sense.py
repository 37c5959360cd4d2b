"""sense.bin: worked vector, real captures, round trips, quantisers, corruption fuzzing."""

import numpy as np
import pytest
from _formats_corrupt import Corrupted, corruptions
from conftest import PY4_DATA
from hypothesis import given, settings
from hypothesis import strategies as st

from pygnc.config import Config
from pygnc.formats.gps import GPS_SEGMENT_DTYPE, decode_gps_segments
from pygnc.formats.sense import (
    OPT3001_MAX_LUX,
    RECORD_SIZE,
    SENSOR_DTYPE,
    SENSOR_SEGMENT_DTYPE,
    SENSOR_SEGMENT_SIZE,
    decode_sense,
    encode_sense_records,
    gyro_raw_from_deg_s,
    mag_raw_from_ut,
    opt3001_lux_from_raw,
    opt3001_raw_from_lux,
    read_sense_file,
)
from pygnc.formats.settings import DecodeSettings
from pygnc.timebase import GPS_EPOCH_UNIX_S

DATA = PY4_DATA
EXAMPLE = DATA / "pygnc_example" / "sense.bin"
UNITTEST = DATA / "pygnc_unittest" / "sense.bin"
SENSOR_HEX = "654b95349d00160433000000e002da001d0004bf4dacac355c030000bfff"


def test_sizes():
    assert SENSOR_SEGMENT_SIZE == SENSOR_SEGMENT_DTYPE.itemsize == 30
    assert RECORD_SIZE == 251


def test_sensor_worked_vector():
    raw = np.frombuffer(bytes.fromhex(SENSOR_HEX), SENSOR_SEGMENT_DTYPE)[0]
    assert raw["t_sc_s"] == 1699452212
    assert raw["mag"].tolist() == [157, 1046, 51]
    assert raw["hall"] == 0
    assert raw["gyro"].tolist() == [736, 218, 29]
    assert raw["sun"].tolist() == [1215, 19884, 44085, 23555, 0, 49151]
    # Through the whole decoder, in a record with a zero-filled GPS segment.
    data = encode_sense_records(np.repeat(raw[None, None], 5, axis=1), np.zeros(1, GPS_SEGMENT_DTYPE))
    batch = decode_sense(data)
    assert batch.stats.bytes_skipped == 0 and batch.stats.records == 1
    s = batch.sensors[0]
    assert s["t_sc_s"] == 1699452212
    assert s["mag_ut"].tolist() == [157 / 16, 1046 / 16, 51 / 16]
    assert s["hall_raw"] == 0
    np.testing.assert_allclose(s["gyro_deg_s"], np.array([736, 218, 29]) / 65.6, rtol=1e-15)
    np.testing.assert_allclose(s["sun_lux"], [12.15, 560, 32000, 984, 0, 83865.6], rtol=1e-12)
    assert s["sun_saturated"].tolist() == [False] * 5 + [True]
    assert batch.sensors["record_index"].tolist() == [0] * 5


def test_example_capture():
    for config in (Config(), Config(accepted_solution_status=(0, 1))):
        batch = read_sense_file(EXAMPLE, DecodeSettings.from_config(config))
        assert batch.stats.as_dict() == {
            "bytes_total": 8283,
            "bytes_skipped": 0,
            "records": 33,
            "records_skipped": 0,
            "skip_events": 0,
        }
        assert batch.sensors.shape == (165,) and batch.fixes.shape == (33,)
        assert not batch.fixes["valid"].any()
    assert set(batch.fixes["time_status"].tolist()) <= {20, 120}
    assert (batch.fixes["solution_status"] == 1).all()
    assert (batch.sensors["sun_lux"] < 50).all()  # indoor lux "0-40"
    assert abs(batch.sensors["gyro_deg_s"].mean(axis=0)).max() < 2
    # Spacecraft clock unset: year 2000.
    assert (batch.sensors["t_sc_s"] < 946_800_000).all()


def test_unittest_capture_valid_only_with_status_1_accepted():
    batch = read_sense_file(UNITTEST)
    assert batch.stats.records == 5 and batch.stats.bytes_skipped == 0
    assert not batch.fixes["valid"].any()
    batch = read_sense_file(UNITTEST, DecodeSettings(accepted_solution_status=(0, 1)))
    assert batch.fixes["valid"].all()
    # The simulator's quirk: its week/ms are the spacecraft time minus 10 s, read on the
    # GPS axis (no leap seconds), so as UTC the fix is 28 s before the spacecraft time.
    np.testing.assert_array_equal(batch.fixes["t_gps_s"], batch.fixes["t_sc_s"] - GPS_EPOCH_UNIX_S - 10)
    np.testing.assert_array_equal(batch.fixes["unix_time_s"], batch.fixes["t_sc_s"] - 28)


# --------------------------------------------------------------------------- round trips
@st.composite
def raw_records(draw, min_n=0, max_n=12):
    """Random raw records with coherent spacecraft times (as a real writer makes)."""
    n = draw(st.integers(min_n, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sensors = np.zeros((n, 5), SENSOR_SEGMENT_DTYPE)
    t0 = draw(st.integers(0, 2**32 - 10_000)) + np.cumsum(rng.integers(0, 100, n))
    t0 = np.minimum(t0, 2**32 - 3000)
    sensors["t_sc_s"] = t0[:, None] + np.cumsum(rng.integers(0, 600, (n, 5)), axis=1)
    sensors["mag"] = rng.integers(-32768, 32768, (n, 5, 3))
    sensors["hall"] = rng.integers(-32768, 32768, (n, 5))
    sensors["gyro"] = rng.integers(-32768, 32768, (n, 5, 3))
    sensors["sun"] = rng.integers(0, 65536, (n, 5, 6))
    gps = np.zeros(n, GPS_SEGMENT_DTYPE)
    gps["t_sc_s"] = sensors["t_sc_s"][:, -1]
    gps["time_status"] = rng.choice([20, 120, 160, 180], n)
    gps["week"] = rng.integers(0, 4000, n)
    gps["ms_of_week"] = rng.integers(0, 604_800_000, n)
    gps["solution_status"] = rng.integers(0, 23, n)
    gps["vel_status"] = rng.integers(0, 23, n)
    gps["pos_ecef_m"] = rng.normal(0, 7e6, (n, 3))
    gps["vel_ecef_m_s"] = rng.normal(0, 5e3, (n, 3))
    gps["pos_sigma_m"] = rng.random((n, 3))
    gps["sats_tracked"] = rng.integers(0, 30, n)
    gps["sats_in_solution"] = rng.integers(0, 30, n)
    return sensors, gps


def expected_sensors(sensors: np.ndarray, config=None) -> np.ndarray:
    """Independent per-sample decode of raw segments, in Python scalars."""
    config = Config() if config is None else config
    out = np.zeros(sensors.size, SENSOR_DTYPE)
    for k, seg in enumerate(sensors.reshape(-1)):
        out[k]["t_sc_s"] = int(seg["t_sc_s"])
        out[k]["mag_ut"] = [int(v) * config.mag_lsb_ut for v in seg["mag"]]
        out[k]["hall_raw"] = int(seg["hall"])
        out[k]["gyro_deg_s"] = [int(v) * config.gyro_lsb_deg_s for v in seg["gyro"]]
        lux = [0.01 * (int(r) & 0xFFF) * 2 ** (int(r) >> 12) for r in seg["sun"]]
        out[k]["sun_lux"] = lux
        out[k]["sun_saturated"] = [x >= OPT3001_MAX_LUX for x in lux]
        out[k]["record_index"] = k // sensors.shape[1]
    return out


def assert_sensors_equal(got, want):
    for name in ("t_sc_s", "mag_ut", "hall_raw", "gyro_deg_s", "sun_saturated", "record_index"):
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    np.testing.assert_allclose(got["sun_lux"], want["sun_lux"], rtol=1e-15, atol=0)


@settings(max_examples=60, deadline=None)
@given(raw_records())
def test_round_trip(records):
    sensors, gps = records
    data = encode_sense_records(sensors, gps)
    assert len(data) == RECORD_SIZE * len(gps)
    batch = decode_sense(memoryview(data))
    assert batch.stats.bytes_skipped == 0 and batch.stats.records == len(gps)
    assert_sensors_equal(batch.sensors, expected_sensors(sensors))
    want_fixes = decode_gps_segments(gps)
    for name in want_fixes.dtype.names:
        np.testing.assert_array_equal(batch.fixes[name], want_fixes[name], err_msg=name)


def test_chunked_decode_matches_unchunked(monkeypatch):
    import pygnc.formats.gps as gps_mod
    import pygnc.formats.sense as sense_mod

    sensors, gps = _fixed_records(50, 9)
    data = encode_sense_records(sensors, gps)
    whole = decode_sense(data)
    monkeypatch.setattr(sense_mod, "DECODE_CHUNK", 7)
    monkeypatch.setattr(gps_mod, "DECODE_CHUNK", 3)
    chunked = decode_sense(data)
    assert whole.sensors.tobytes() == chunked.sensors.tobytes()
    assert whole.fixes.tobytes() == chunked.fixes.tobytes()


# --------------------------------------------------------------------------- quantisers
@settings(max_examples=100, deadline=None)
@given(st.integers(0, 0xBFFF))
def test_opt3001_quantiser_inverts_valid_codes(raw):
    # Codes decode to lux; re-encoding gives a code with the same lux (codes are not
    # unique: 0x1002 and 0x0004 are both 0.04 lux).
    lux = opt3001_lux_from_raw(np.array([raw]))[0]
    again = opt3001_raw_from_lux(lux)
    assert opt3001_lux_from_raw(again) == pytest.approx(lux, rel=1e-12, abs=0)
    assert (int(again) >> 12) <= 11


@settings(max_examples=100, deadline=None)
@given(st.floats(0, 83_865.6))
def test_opt3001_quantiser_error_bound(lux):
    raw = int(opt3001_raw_from_lux(lux))
    e = raw >> 12
    assert abs(opt3001_lux_from_raw(np.array([raw]))[0] - lux) <= 0.005 * 2**e * (1 + 1e-9)
    if e:  # best resolution: a smaller exponent would overflow the 12-bit mantissa
        assert round(lux / 0.01 / 2 ** (e - 1)) > 0x0FFF


def test_opt3001_saturation_and_edges():
    assert opt3001_raw_from_lux([1e9, np.inf, OPT3001_MAX_LUX]).tolist() == [0xBFFF] * 3
    assert opt3001_raw_from_lux([-5.0, np.nan, 0.0]).tolist() == [0, 0, 0]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(-2047.9, 2047.9), min_size=3, max_size=3),
    st.lists(st.floats(-499.4, 499.4), min_size=3, max_size=3),
)
def test_imu_quantisers(mag_ut, gyro_deg_s):
    c = Config()
    mag = mag_raw_from_ut(mag_ut)
    gyro = gyro_raw_from_deg_s(gyro_deg_s)
    assert mag.dtype == gyro.dtype == np.int16
    np.testing.assert_allclose(mag * c.mag_lsb_ut, mag_ut, atol=c.mag_lsb_ut / 2 + 1e-12)
    np.testing.assert_allclose(gyro * c.gyro_lsb_deg_s, gyro_deg_s, atol=c.gyro_lsb_deg_s / 2 + 1e-12)
    assert mag_raw_from_ut([1e9, -1e9]).tolist() == [32767, -32768]


# --------------------------------------------------------------------------- robustness
def _fixed_records(n, seed):
    rng = np.random.default_rng(seed)
    sensors = np.zeros((n, 5), SENSOR_SEGMENT_DTYPE)
    t0 = 1_700_000_000 + 25 * np.arange(n)
    sensors["t_sc_s"] = t0[:, None] + 5 * np.arange(5)
    sensors["mag"] = rng.integers(-32768, 32768, (n, 5, 3))
    sensors["gyro"] = rng.integers(-32768, 32768, (n, 5, 3))
    sensors["sun"] = rng.integers(0, 65536, (n, 5, 6))
    gps = np.zeros(n, GPS_SEGMENT_DTYPE)
    gps["t_sc_s"] = t0 + 20
    gps["time_status"] = 180
    gps["week"] = 2300
    gps["ms_of_week"] = rng.integers(0, 604_800_000, n)
    gps["pos_ecef_m"] = rng.normal(0, 7e6, (n, 3))
    gps["sats_in_solution"] = 9
    return sensors, gps


def check_recovers_intact(sensors, gps, ops):
    units = [encode_sense_records(sensors[i : i + 1], gps[i : i + 1]) for i in range(len(gps))]
    c = Corrupted.from_units(units)
    for op in ops:
        c.apply(*op)
    data = bytes(c.data)
    batch = decode_sense(data)  # must not raise
    st_ = batch.stats
    assert st_.bytes_total == len(data)
    assert st_.bytes_total == st_.records * RECORD_SIZE + st_.bytes_skipped
    assert st_.records == batch.fixes.size == batch.sensors.size // 5
    assert (st_.skip_events == 0) == (st_.bytes_skipped == 0)
    assert st_.skip_events <= st_.records_skipped
    assert -(-st_.bytes_skipped // RECORD_SIZE) <= st_.records_skipped
    offsets = batch.record_offsets.tolist()
    assert offsets == sorted(offsets)
    assert all(b - a >= RECORD_SIZE for a, b in zip(offsets, offsets[1:]))
    assert np.all(np.diff(batch.sensors["record_index"]) >= 0)
    where = {off: k for k, off in enumerate(offsets)}
    for uid, off in c.intact([RECORD_SIZE] * len(units)).items():
        assert off in where, f"intact record {uid} at offset {off} lost; ops={ops}"
        k = where[off]
        got = batch.sensors[5 * k : 5 * k + 5]
        want = expected_sensors(sensors[uid : uid + 1])
        want["record_index"] = k
        assert_sensors_equal(got, want)
        assert batch.fixes[k]["ms_of_week"] == gps[uid]["ms_of_week"]
    return batch


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.integers(1, 14), st.integers(0, 1000), corruptions)
def test_fuzz_corruption_keeps_intact_records(n, seed, ops):
    sensors, gps = _fixed_records(n, seed)
    check_recovers_intact(sensors, gps, ops)


@pytest.mark.parametrize(
    "ops",
    [
        [("truncate", 0.0, 100, 1)],
        [("insert", 0.5, 17, 2)],
        [("delete", 0.5, 5, 3)],
        [("flip", 0.3, 1, 4)],
        [("prefix", 0.0, 300, 5)],
        [("suffix", 0.0, 300, 6)],
        [("garbage_middle", 0.4, 260, 7)],
        [("drop_crlf", 0.5, 1, 8)],
        [("drop_crlf", 0.0, 1, 8), ("drop_crlf", 0.99, 1, 9)],
    ],
)
def test_each_corruption_kind(ops):
    sensors, gps = _fixed_records(10, 11)
    batch = check_recovers_intact(sensors, gps, ops)
    assert batch.stats.records >= 8
    # A bit flip inside sensor data leaves the record framed: it is decoded, flip and all.
    assert batch.stats.skip_events >= (0 if ops[0][0] == "flip" else 1)


def test_degenerate_inputs():
    for data in (b"", b"\r\n", b"\x00" * 250, bytes(range(256)) * 10, b"\r\n" * 1000):
        batch = decode_sense(data)
        assert batch.stats.bytes_total == len(data)
        assert batch.stats.records * RECORD_SIZE + batch.stats.bytes_skipped == len(data)
    rng = np.random.default_rng(0)
    garbage = rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    batch = decode_sense(garbage)
    assert batch.stats.records == 0 and batch.stats.bytes_skipped == len(garbage)
    assert batch.stats.skip_events == 1 and batch.stats.records_skipped == -(-len(garbage) // RECORD_SIZE)
    assert decode_sense(b"").sensors.dtype == SENSOR_DTYPE


def test_zero_filled_gps_segment_is_framed():
    sensors, gps = _fixed_records(3, 1)
    gps[1] = np.zeros(1, GPS_SEGMENT_DTYPE)
    data = b"xyz" + encode_sense_records(sensors, gps)
    batch = decode_sense(data)
    assert batch.stats.records == 3 and batch.stats.bytes_skipped == 3


def test_clock_jump_record_kept_next_to_corruption():
    # Record 2 spans a clock set (times go backwards): framed but not coherent.  It is
    # kept both in a clean file and when corruption sits right after it.
    sensors, gps = _fixed_records(5, 2)
    sensors["t_sc_s"][2, 3:] = 946_700_000
    clean = encode_sense_records(sensors, gps)
    assert decode_sense(clean).stats.records == 5
    data = clean[: 3 * RECORD_SIZE] + b"\x99" * 40 + clean[3 * RECORD_SIZE :]
    batch = decode_sense(data)
    assert batch.record_offsets.tolist() == [0, 251, 502, 793, 1044]
    assert batch.stats.bytes_skipped == 40 and batch.stats.skip_events == 1 and batch.stats.records_skipped == 1


def test_spurious_terminator_inside_data_is_ignored():
    sensors, gps = _fixed_records(6, 4)
    sensors["mag"][2, 1, 0] = 0x0A0D  # bytes 0D 0A little-endian inside record 2
    sensors["sun"][3, 0, 0] = 0x0D0A
    data = b"\x0d" + encode_sense_records(sensors, gps)[:-5]
    batch = decode_sense(data)
    assert batch.record_offsets.tolist() == [1 + 251 * k for k in range(5)]


def test_big_clean_file_uses_zero_copy_path():
    sensors, gps = _fixed_records(2000, 5)
    data = encode_sense_records(sensors, gps)
    batch = decode_sense(data)
    assert batch.stats.records == 2000 and batch.stats.bytes_skipped == 0
    assert_sensors_equal(batch.sensors[:50], expected_sensors(sensors[:10]))


def test_record_with_bytes_inserted_in_its_head_is_dropped():
    # Record 2 gets 8 bytes inserted among its sensor segments: its terminator and GPS
    # segment still line up 251 bytes back, but its sensor segments are misaligned, so it
    # must not be decoded (it is not chained from the left).
    sensors, gps = _fixed_records(5, 6)
    clean = encode_sense_records(sensors, gps)
    cut = 2 * RECORD_SIZE + 40
    batch = decode_sense(clean[:cut] + b"garbage!" + clean[cut:])
    assert batch.record_offsets.tolist() == [0, 251, 761, 1012]
    assert batch.stats.bytes_skipped == RECORD_SIZE + 8 and batch.stats.skip_events == 1


def test_a_fifo_is_refused_without_blocking(tmp_path):
    """Issue 15 item 17: sense.bin as a FIFO blocked ingest at open until it was killed."""
    import os

    import pytest

    from pygnc.formats.sense import read_sense_file

    fifo = tmp_path / "sense.bin"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="FIFO"):
        read_sense_file(fifo)  # no writer: a plain open() would wait forever (pytest-timeout)
    with pytest.raises(OSError, match="directory"):
        read_sense_file(tmp_path)
