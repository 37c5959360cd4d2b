"""Time outliers (issue 39 item 4): a stamp that jumps away from its neighbours and back is
dropped at ingest; gaps and genuine clock steps are kept."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import PY4_DATA
from flight_harness import REPO
from hypothesis import given, settings
from hypothesis import strategies as st
from test_formats_range import gps_fix

from pygnc.config import Config, Paths
from pygnc.formats.range_file import encode_gps_packet, encode_range_packets
from pygnc.formats.sense import RECORD_SIZE, SENSOR_SEGMENT_SIZE, read_sense_file
from pygnc.tasks.ingest import build_message_stream, sense_time_outliers
from pygnc.timeorder import JUMP_FACTOR, jump_threshold_s, time_outliers

SAMPLE = REPO / "data" / "sample_5min"
RUN = Config().sensors_per_record + 1  # one record's stamps: its samples and its fix


def _sense_like(n_records: int, t0: float = 1.7e9, period_s: float = 5.0) -> np.ndarray:
    """Stamps as ingest judges them: per record 5 samples, then the fix at the last one."""
    t = t0 + period_s * np.arange(n_records * 5)
    seq = np.empty((n_records, 6))
    seq[:, :5] = t.reshape(n_records, 5)
    seq[:, 5] = seq[:, 4]
    return seq.reshape(-1)


def test_gaps_and_clock_steps_are_kept():
    t = _sense_like(40)
    for k, step in ((60, 600.0), (120, -1760.0), (180, 7.7e8), (200, 86_400.0)):
        t[k:] += step  # a gap, a step back (the PY4 capture has one), the clock set, a day's gap
    assert not time_outliers(t, RUN, 60.0).any()


def test_the_real_captures_have_none():
    for d in ("pygnc_example", "pygnc_unittest"):
        b = read_sense_file(PY4_DATA / d / "sense.bin")
        s, f = sense_time_outliers(b.sensors, b.fixes, Config())
        assert not s.any() and not f.any(), d


@settings(max_examples=600, deadline=None, derandomize=True)
@given(
    st.integers(0, 239),
    st.integers(0, 31),
    st.integers(0, 10),
    st.sampled_from((3600.0, -1760.0, 7.7e8, 61.0, -61.0, 130.0, -200.0)),
)
def test_a_flipped_bit_is_caught_and_nothing_else_is(pos, bit, gap_at, step):
    """One stamp with one of its uint32 bits flipped, in data with a gap or a clock step
    (forward, backward, just over the threshold): never is another stamp taken for an
    outlier; a flip of 128 s or more (bit 7 up, at a 5-s cadence) is caught wherever it is,
    ends included - except right beside the step, where a stamp may be kept (0.6 % of such
    flips in an exhaustive run: a kept stamp is safer than a good one dropped)."""
    t = _sense_like(40)
    k = gap_at * 24
    t[k:] += step if gap_at else 0.0
    bad = t.copy()
    bad[pos] = float(int(bad[pos]) ^ (1 << bit))
    got = np.flatnonzero(time_outliers(bad, RUN, 60.0)).tolist()
    assert got in ([], [pos])
    jump = jump_threshold_s(t, 60.0)
    lo, hi = sorted((t[max(pos - 1, 0)], t[min(pos + 1, t.size - 1)]))
    beside_step = gap_at and k - 2 <= pos <= k + 1
    if bit >= 7 and not lo - jump <= bad[pos] <= hi + jump and not beside_step:
        assert got == [pos]


def test_islands_up_to_one_record():
    t = _sense_like(20)
    a = t.copy()
    a[30:36] += 8192.0  # one whole record's stamps (samples and fix)
    assert np.flatnonzero(time_outliers(a, RUN, 60.0)).tolist() == list(range(30, 36))
    b = t.copy()
    b[30:37] += 8192.0  # more than a record: kept (a clock set forward and back again?)
    assert not time_outliers(b, RUN, 60.0).any()
    c = t.copy()
    c[30] += 8192.0
    c[31] -= 1e6  # two neighbouring outliers, each its own way
    assert np.flatnonzero(time_outliers(c, RUN, 60.0)).tolist() == [30, 31]


def test_ends_take_one_stamp_only():
    """At an end there is no neighbour to return to: a single stamp away from data that
    hangs together is an outlier; more (a new pass after a clock step) are kept."""
    t = _sense_like(10)
    for k, sign in ((0, 1), (-1, 1), (0, -1), (-1, -1)):
        a = t.copy()
        a[k] += sign * 8192.0
        assert np.flatnonzero(time_outliers(a, RUN, 60.0)).tolist() == [k % t.size]
    b = t.copy()
    b[-2:] += 8192.0
    assert not time_outliers(b, RUN, 60.0).any()


def test_threshold_follows_the_cadence():
    slow = 1.7e9 + 120.0 * np.arange(50)  # a sample every 2 minutes
    assert jump_threshold_s(slow, 60.0) == JUMP_FACTOR * 120.0
    bad = slow.copy()
    bad[20] += 4096.0
    assert np.flatnonzero(time_outliers(bad, RUN, 60.0)).tolist() == [20]
    bad[20] = slow[20] + 600.0  # 5 steps: not a jump at this cadence
    assert not time_outliers(bad, RUN, 60.0).any()
    assert not time_outliers(np.array([1.0, 1e9, 2.0]), RUN, 60.0)[[0, 2]].any()
    assert not time_outliers(np.array([np.nan, 5.0, 1e9, 15.0, 20.0]), RUN, 60.0)[0]
    assert not time_outliers(np.zeros(0), RUN, 60.0).size


def test_fixes_without_gps_are_not_judged():
    b = read_sense_file(SAMPLE / "sense.bin")
    fixes = b.fixes.copy()
    fixes["t_sc_s"][3] = 0.0  # an all-zero GPS segment: no stamp
    s, f = sense_time_outliers(b.sensors, fixes, Config())
    assert not s.any() and not f.any()
    fixes["t_sc_s"][3] += 1e6  # a stamp far from its record's samples
    s, f = sense_time_outliers(b.sensors, fixes, Config())
    assert not s.any() and np.flatnonzero(f).tolist() == [3]


def _home_with(tmp_path, sense: bytes | None = None, range_bytes: bytes | None = None):
    home = tmp_path / "home"
    home.mkdir(parents=True)
    (home / "sense.bin").write_bytes(sense if sense is not None else (SAMPLE / "sense.bin").read_bytes())
    shutil.copytree(SAMPLE / "range", home / "range")
    if range_bytes is not None:
        (home / "range" / "rng00001.bin").write_bytes(range_bytes)
    return home


def _stats(msgs, source):
    return next(b for t, b in msgs if t == "ingest_stats" and b["source"] == source)


def test_ingest_drops_a_sample_outlier_before_ordering(tmp_path):
    data = bytearray((SAMPLE / "sense.bin").read_bytes())
    off = 7 * RECORD_SIZE + 2 * SENSOR_SEGMENT_SIZE
    t = int.from_bytes(data[off : off + 4], "big")
    data[off : off + 4] = (t + 8192).to_bytes(4, "big")
    clean = build_message_stream(Paths(_home_with(tmp_path / "a")), Config()).messages
    msgs = build_message_stream(Paths(_home_with(tmp_path / "b", bytes(data))), Config()).messages
    end, end0 = msgs[-1][1], clean[-1][1]
    assert (end["t_sc_first_s"], end["t_sc_last_s"]) == (end0["t_sc_first_s"], end0["t_sc_last_s"])
    assert end["n_sensor"] == end0["n_sensor"] - 1
    assert all(b["t_sc_s"] != t + 8192 for k, b in msgs if k == "sensor")
    assert _stats(msgs, "sense")["time_outliers"] == 1 and _stats(clean, "sense")["time_outliers"] == 0
    assert "1 time outliers dropped" in _stats(msgs, "sense")["note"]


def test_ingest_drops_a_range_outlier_and_retimes_its_fix(tmp_path):
    """A range packet's stamp far from the others of its file: dropped; a relayed fix that took
    its time from it takes the next range's."""
    pks = [[(0x4B, 1_742_450_500 + 10 * g + i, 20_000 + i) for i in range(3)] for g in range(8)]
    pks[4][0] = (0x4B, pks[4][0][1] + (1 << 20), pks[4][0][2])  # a flipped bit: +12 days
    data = b"".join(
        encode_gps_packet(gps_fix(ms_of_week=86_400_000 + 1000 * g)) + encode_range_packets(p)
        for g, p in enumerate(pks)
    )
    cfg = Config(range_gps_source="peer")
    msgs = build_message_stream(Paths(_home_with(tmp_path, range_bytes=data)), cfg).messages
    assert _stats(msgs, "range")["time_outliers"] == 1
    assert max(b["t_sc_s"] for k, b in msgs if k in ("range", "gps_fix")) < 1_742_460_000
    peer = sorted(b["t_sc_s"] for k, b in msgs if k == "gps_fix" and b["peer_id"] == 0x4B)
    assert pks[4][1][1] in peer  # the fix of group 4 takes its second range's time


def test_a_record_without_gps_does_not_start_the_batch_at_zero(tmp_path):
    """An all-zero GPS segment decodes to an own fix stamped 0: it is no time, and the
    batch's span (batch_end, the status's batch_t_sc_first_s) is the data's."""
    data = bytearray((SAMPLE / "sense.bin").read_bytes())
    off = 3 * RECORD_SIZE + 5 * SENSOR_SEGMENT_SIZE
    data[off : off + 99] = bytes(99)
    clean = build_message_stream(Paths(_home_with(tmp_path / "a")), Config()).messages[-1][1]
    end = build_message_stream(Paths(_home_with(tmp_path / "b", bytes(data))), Config()).messages[-1][1]
    assert (end["t_sc_first_s"], end["t_sc_last_s"]) == (clean["t_sc_first_s"], clean["t_sc_last_s"])
    assert end["n_gps_fix"] == clean["n_gps_fix"]


# --------------------------------------------------------------------------- issue 48 item 7
ISLAND = 4 * RUN  # ingest's ISLAND_RECORDS records


def test_islands_of_up_to_four_records_are_judged_by_their_neighbourhood():
    """Issue 48 item 7: two adjacent records a day off were kept (islands were one record at
    most).  The neighbourhood rule finds islands of up to four records that leave the data
    and come back; a longer one, or one at an end, is the clock map's to judge."""
    t = _sense_like(40)
    for start, length in ((30, 2 * RUN), (60, 4 * RUN), (100, 3 * RUN), (200, RUN + 1)):
        a = t.copy()
        a[start : start + length] += 86_400.0
        assert np.flatnonzero(time_outliers(a, RUN, 60.0, ISLAND)).tolist() == list(range(start, start + length))
    b = t.copy()
    b[-2 * RUN :] += 86_400.0  # at the end: a new pass after a clock step, as far as the stamps tell
    assert not time_outliers(b, RUN, 60.0, ISLAND).any()
    c = t.copy()
    for k, step in ((60, 600.0), (120, -1760.0), (180, 7.7e8)):
        c[k:] += step  # gaps and clock steps are kept, as by the rules of one record
    assert not time_outliers(c, RUN, 60.0, ISLAND).any()


@pytest.mark.parametrize("seed", range(3))
def test_thousands_of_flipped_bits_leave_no_stamp_far_off(seed):
    """Issue 48 item 7: with 5 000 random bit flips in a day of stamps the span's end was
    hours late (an outlier beside another is not anchored).  Judged against the median of
    their neighbours, none further than the jump threshold is kept and almost no good stamp
    is dropped."""
    rng = np.random.default_rng(seed)
    t = _sense_like(3456)  # a day at 5 s
    bad = t.astype(np.uint32)
    for pos, bit in zip(rng.integers(0, t.size, 5000), rng.integers(0, 32, 5000)):
        bad[pos] ^= np.uint32(1 << int(bit))
    bad = bad.astype(float)
    mask = time_outliers(bad, RUN, 60.0, ISLAND)
    kept = bad[~mask]
    assert t.min() - 128.0 <= kept.min() and kept.max() <= t.max() + 128.0
    assert (np.abs(bad - t)[~mask] > 128.0).sum() <= 1  # (bits up to 7 may stay: minutes, not hours)
    assert (mask & (bad == t)).sum() <= 2


def _shifted_records(records, shift_s: float):
    """The sample's sensors and fixes with every stamp of *records* moved by *shift_s*."""
    b = read_sense_file(SAMPLE / "sense.bin")
    sensors, fixes = b.sensors.copy(), b.fixes.copy()
    per = Config().sensors_per_record
    for r in records:
        sensors["t_sc_s"][r * per : (r + 1) * per] += shift_s
        fixes["t_sc_s"][r] += shift_s
    return sensors, fixes


@pytest.mark.parametrize(
    "records", [(0, 1), (5, 6), (10, 11), (3, 4, 5, 6, 7)], ids=["first", "middle", "last", "five"]
)
def test_records_the_clock_map_places_elsewhere_are_dropped(records):
    """Issue 48 item 7: the stamps of records whose own fix's GPS time says they belong
    elsewhere are dropped - two records at either end (no neighbour to return to), five in
    the middle (more than the neighbourhood rule's islands)."""
    sensors, fixes = _shifted_records(records, 86_400.0)
    s, f = sense_time_outliers(sensors, fixes, Config())
    per = Config().sensors_per_record
    assert np.flatnonzero(f).tolist() == list(records)
    assert np.flatnonzero(s).tolist() == [r * per + k for r in records for k in range(per)]


def test_a_corrupt_gps_time_drops_no_record():
    """A fix whose GPS time is off (a flipped millisecond bit) says nothing of its record's
    stamps: its GPS time is an outlier among the fixes', and nothing is dropped."""
    sensors, fixes = _shifted_records((), 0.0)
    for bit_s in (128.0, 86_400.0 * 7):
        f2 = fixes.copy()
        f2["t_gps_s"][6] += bit_s
        s, f = sense_time_outliers(sensors, f2, Config())
        assert not s.any() and not f.any(), bit_s
