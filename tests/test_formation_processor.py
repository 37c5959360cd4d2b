"""FormationProcessor through the real pipeline: simulator files -> build_message_stream -> processor.

One seeded 3-spacecraft scenario (own sc0 = 0x4A, peers sc1 = 0x4B ~3 km and sc2 = 0x4C ~6 km
behind; 3 h; spacecraft clocks up to 30 s off each other), written to disk and read back
by ingest's stream builder, so peer fixes arrive stamped with the peers' clocks exactly as
in flight.  Variants (missing range files, unknown ids, a peer without valid fixes, a peer
clock far off) are made by editing that stream or directory, not by simulating again.
"""

import math
import shutil

import numpy as np
import pytest
from formation_support import relative_errors
from processor_support import downlink_records

from ground.simulate import scenario as scn
from ground.simulate.simulator import _extra_spacecraft, simulate, write_scenario
from pygnc.bus.messages import DecodeCounters, Encoder, decode
from pygnc.config import Config, Paths
from pygnc.processors.formation import FormationProcessor
from pygnc.tasks.ingest import build_message_stream
from pygnc.timebase import gps_from_utc_unix

SETTLE_S = 1800.0


def PEER_CONFIG(**kw) -> Config:
    """The configuration of a formation whose range files carry the partners' fixes, with an
    estimate at every sensor sample (as a ground replay: the tests judge every one), and the
    largest handler budget (a call that runs out of the flight's 0.5 s of wall time leaves
    its events queued for the next: a loaded machine would change where a run's work ends)."""
    kw.setdefault("batch_decimate_estimates", False)
    kw.setdefault("handler_budget_s", 5.0)
    return Config(range_gps_source="peer", **kw)


PEERS = (0x4B, 0x4C)


@pytest.fixture(scope="module")
def scenario_dir(tmp_path_factory):
    s = scn.ScenarioSettings(seed=21, duration_s=10800.0)
    s.spacecraft = s.spacecraft + [_extra_spacecraft(2)]
    s.attitude.max_step_s = 30.0  # attitude is irrelevant here; keep the simulation quick
    s.environment.albedo = 0.0
    s.ranging.gps_source = "peer"  # these tests fuse partner fixes; range-only: test_range_only.py
    out = tmp_path_factory.mktemp("formation3")
    write_scenario(simulate(s), out)
    return out


@pytest.fixture(scope="module")
def stream(scenario_dir):
    return build_message_stream(Paths(scenario_dir), PEER_CONFIG()).messages


@pytest.fixture(scope="module")
def truth(scenario_dir):
    with np.load(scenario_dir / "truth.npz") as z:
        return {k: z[k] for k in z.files}


def _run(messages, config=None, propagate_after_s=None):
    p = FormationProcessor(config or PEER_CONFIG())
    out = []
    for t, b in messages:
        if t in p.consumes:
            out += p.handle(t, b)
    if propagate_after_s is not None:
        last = [b for t, b in messages if t == "sensor"][-1]["t_sc_s"]
        out += p.propagate_to_sc(last + propagate_after_s)
    return p, out


@pytest.fixture(scope="module")
def nominal(stream):
    return _run(stream, propagate_after_s=600.0)


def _estimates(out, peer_id=None, propagated=False):
    return [
        b
        for t, b in out
        if t == "formation_estimate" and b["propagated"] == propagated and (peer_id is None or b["peer_id"] == peer_id)
    ]


def _notes(out):
    return [b for t, b in out if t == "estimator_note"]


def _errors(truth, est):
    """Errors of the GCRS relative position against truth (peer index from its radio id)."""
    return relative_errors(truth, est, SETTLE_S)


def test_every_peer_estimated_at_every_sensor_time(stream, nominal):
    p, out = nominal
    sensors = [b["t_sc_s"] for t, b in stream if t == "sensor"]
    assert _notes(out) == []
    for pid in PEERS:
        est = _estimates(out, pid)
        t_sc = [b["t_sc_s"] for b in est]
        # From the first fix pair on (the first 4 samples precede it), in order, one per sample.
        assert t_sc == sensors[len(sensors) - len(t_sc) :] and len(t_sc) >= len(sensors) - 4
        # The gate (chi-square 0.9999) may reject a tail range or two: the seeded stream has
        # ~650 ranges per partner, and whole-second range stamps add up to 0.5 s x rate.
        assert est[-1]["n_ranges_used"] > 200 and est[-1]["n_ranges_rejected"] <= 2
        assert est[-1]["n_peer_fixes_used"] == 432 and est[-1]["n_peer_fixes_rejected"] == 0
    c = p.counters()
    assert c["peers"] == 2 and c["pending"] == 0 and c["peer_fixes_late"] == 0 and c["unknown_peer_msgs"] == 0
    # Every body is a valid bus message.
    enc, dc = Encoder("formation_estimator"), DecodeCounters()
    for _, b in out[:50] + out[-50:]:
        assert decode(enc.encode("formation_estimate", b), dc) is not None
    assert dc.dropped == 0


def test_two_processes_share_the_partners_and_give_each_the_same_estimates(stream, nominal):
    """Config.formation_split: part (k, 2) estimates the partners heard 1st, 3rd ... (k = 0)
    or 2nd, 4th ... (k = 1) - each gets one of the two here - with the estimates one
    processor gives: one partner's to the bit, the other's within 6e-5 m and 7e-8 m/s (the
    own steps the two partners' filters shared in one process are first-order carries of a
    full propagation, formation_filter.own_step); the batch-wide notes come from part 0 only."""
    _, whole = nominal
    peers_seen = []
    for k in (0, 1):
        proc = FormationProcessor(PEER_CONFIG(), part=(k, 2))
        out = []
        for t, b in stream:
            if t in proc.consumes:
                out += proc.handle(t, b)
        last = [b for t, b in stream if t == "sensor"][-1]["t_sc_s"]
        out += proc.propagate_to_sc(last + 600.0)
        assert len(proc.peers) == 1 and proc.counters()["other_part_msgs"] > 0 and _notes(out) == []
        (pid,) = proc.peers
        peers_seen.append(pid)
        mine, ref = _estimates(out), _estimates(whole, pid)
        assert [b["t_sc_s"] for b in mine] == [b["t_sc_s"] for b in ref]
        for key, tol in (("dr_gcrs_m", 1e-3), ("dv_gcrs_m_s", 1e-6), ("sigma_dr_m", 1e-5)):
            np.testing.assert_allclose([b[key] for b in mine], [b[key] for b in ref], rtol=0, atol=tol)
    assert sorted(peers_seen) == sorted(PEERS)
    stranger = (
        "range",
        {
            "t_sc_s": stream[-2][1].get("t_sc_s", 0.0),
            "peer_id": 0x99,
            "range_m": 3000.0,
            "range_raw": 0,
            "rssi_dbm": -80.0,
            "fei_hz": 0.0,
            "valid": True,
            "file_index": 0,
            "group": 0,
        },
    )
    for k, n_notes in ((0, 1), (1, 0)):
        proc = FormationProcessor(PEER_CONFIG(), part=(k, 2))
        assert len(proc.handle(*stranger)) == n_notes
    with pytest.raises(ValueError):
        FormationProcessor(PEER_CONFIG(), part=(2, 2))


def test_multi_peer_accuracy(truth, nominal):
    """Relative navigation as flown, 3 h, after 30 min, against the brahe truth.  Measured
    (seed 21): 3D 1.47 / 1.24 m, velocity 1.5 / 1.5 mm/s, line of sight 0.52 / 0.89 m for
    0x4B / 0x4C (in-house truth before: 1.46 / 1.21 m, 0.52 / 0.89 m).  Deterministic
    (seeded): x1.3 absorbs tuning changes.  The line of sight is as good as the range bias,
    which only the GPS fixes pin (the peer's along-track position averaged, 10 m / sqrt(n):
    1.05 m at 30 min, 0.45 m at 3 h even with exact dynamics; the optimal filter's per-run
    RMS has median 0.57 m and 90 % point 1.0 m - bench_formation's bound), so 0x4C's 0.89 m
    is this realisation, not a defect.  NEES (3 dof) at 8 epochs 20 min apart (the bias
    error correlates over the whole run, so these are not independent: the bounds are the
    chi-square(24) two-sided 99 % interval widened to 99.99 %)."""
    from pygnc.estimation import chi2

    _, out = nominal
    for pid, rms_r_max, los_max in ((0x4B, 1.9, 0.68), (0x4C, 1.6, 1.16)):
        est = _estimates(out, pid)
        e = _errors(truth, est)
        assert e["rms_r"] < rms_r_max, (pid, e["rms_r"])
        assert e["rms_v"] < 0.002, (pid, e["rms_v"])
        assert e["rms_los"] < los_max, (pid, e["rms_los"])
        tg = np.array([b["t_gps_s"] for b in est])
        tg = tg[tg - truth["t_gps_s"][0] >= SETTLE_S]
        idx = [int(np.argmin(np.abs(tg - truth["t_gps_s"][0] - t))) for t in np.arange(SETTLE_S, 10800.0, 1200.0)]
        n = len(idx)
        lo, hi = chi2.quantile(0.00005, 3 * n) / n, chi2.quantile(0.99995, 3 * n) / n
        assert lo < e["nees"][idx].mean() < hi, (pid, e["nees"][idx].mean(), lo, hi)


def test_ecef_and_gcrs_fields_agree(truth, nominal):
    from pygnc import frames

    _, out = nominal
    b = _estimates(out, 0x4B)[-1]
    dr_e, dv_e = frames.gcrs_to_itrs(np.array(b["dr_gcrs_m"]), np.array(b["dv_gcrs_m_s"]), b["t_gps_s"])
    np.testing.assert_allclose(dr_e, b["dr_ecef_m"], atol=1e-6)
    np.testing.assert_allclose(dv_e, b["dv_ecef_m_s"], atol=1e-9)
    assert b["range_m"] == pytest.approx(np.linalg.norm(b["dr_ecef_m"]), abs=1e-6)
    assert b["sigma_los_m"] < min(b["sigma_dr_m"]) * 1.01 + 1.0
    assert b["unix_time_s"] == pytest.approx(b["t_gps_s"] + 315_964_800 - 18, abs=1e-6)
    # RTN: cross-track and radial components bounded by the formation's geometry.
    assert abs(b["dr_rtn_m"][0]) < 1000.0 and abs(b["dr_rtn_m"][2]) < 1500.0


def test_propagated_after_the_batch(nominal):
    _, out = nominal
    prop = _estimates(out, propagated=True)
    assert {b["peer_id"] for b in prop} == set(PEERS)
    for b in prop:
        last = _estimates(out, b["peer_id"])[-1]
        assert b["t_sc_s"] == pytest.approx(last["t_sc_s"] + 600.0, abs=1e-6)
        assert b["t_gps_s"] > last["t_gps_s"] + 599.0
        assert max(b["sigma_dr_m"]) > max(last["sigma_dr_m"])  # uncertainty grows


def test_missing_range_files_reported_not_fatal(scenario_dir, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(scenario_dir / "sense.bin", home / "sense.bin")
    msgs = build_message_stream(Paths(home), PEER_CONFIG()).messages
    p, out = _run(msgs, propagate_after_s=60.0)
    assert _estimates(out) == [] and _estimates(out, propagated=True) == []
    assert [n["code"] for n in _notes(out)] == ["no_range_data"]
    assert p.counters()["peers"] == 0


def _first_minutes(stream, minutes):
    """The stream cut after *minutes* of sensor time (batch_end kept)."""
    t0 = next(b["t_sc_s"] for t, b in stream if t == "sensor")
    head = [
        (t, b)
        for t, b in stream
        if t in ("ingest_stats", "clock_map")
        or (t != "batch_end" and "t_sc_s" in b and b["t_sc_s"] - t0 < 60.0 * minutes)
    ]
    return head + [m for m in stream if m[0] == "batch_end"]


def test_unknown_peer_reported_once_and_ignored(stream):
    head = _first_minutes(stream, 20)
    _, ref = _run(head)
    bogus = []
    for t, b in head:
        bogus.append((t, b))
        if t == "range" and b["peer_id"] == 0x4B:
            bogus.append(("range", {**b, "peer_id": 0x99, "range_m": 123.0}))
        if t == "gps_fix" and b["peer_id"] == 0x4B:
            bogus.append(("gps_fix", {**b, "peer_id": 0x07}))
    p, out = _run(bogus)
    notes = _notes(out)
    assert sorted(n["code"] for n in notes) == ["unknown_peer", "unknown_peer"]
    assert any("0x99" in n["text"] for n in notes) and any("0x07" in n["text"] for n in notes)
    assert p.counters()["unknown_peer_msgs"] > 50
    a, b = _estimates(ref), _estimates(out)
    assert len(a) == len(b) and a[-1]["dr_ecef_m"] == b[-1]["dr_ecef_m"]


def test_peer_without_valid_fix_reported(stream):
    head = _first_minutes(stream, 20)
    msgs = [(t, {**b, "valid": False} if t == "gps_fix" and b["peer_id"] == 0x4C else b) for t, b in head]
    p, out = _run(msgs)
    notes = _notes(out)
    assert [n["code"] for n in notes] == ["peer_no_valid_fix"] and "0x4C" in notes[0]["text"]
    assert {b["peer_id"] for b in _estimates(out)} == {0x4B}
    assert p.counters()["peer_fixes_invalid"] == sum(1 for t, b in head if t == "gps_fix" and b["peer_id"] == 0x4C)


def test_no_valid_own_fix_reported(stream):
    head = _first_minutes(stream, 10)
    msgs = [
        (t, {**b, "valid": False} if t == "gps_fix" and b["peer_id"] == 0 else b) for t, b in head if t != "clock_map"
    ]
    _, out = _run(msgs, propagate_after_s=60.0)
    assert _estimates(out) == [] and _estimates(out, propagated=True) == []
    codes = [n["code"] for n in _notes(out)]
    assert "no_own_fix" in codes


def _resorted(messages, peer_clock_shift_s):
    """The stream as ingest would order it had the peers' clocks been *shift* s later."""
    kind = {"sensor": 0, "gps_fix": 1, "range": 3}
    head = [m for m in messages if m[0] in ("ingest_stats", "clock_map")]
    body = []
    for t, b in messages:
        if t not in kind:
            continue
        k = kind[t]
        if t == "gps_fix" and b["peer_id"]:
            b, k = {**b, "t_sc_s": b["t_sc_s"] + peer_clock_shift_s}, 2
        body.append((b["t_sc_s"], k, len(body), t, b))
    body.sort()
    return head + [(t, b) for _, _, _, t, b in body] + [m for m in messages if m[0] == "batch_end"]


def test_peer_clock_ahead_first_fixes_late_then_fine(stream, truth):
    """Peer clocks 200 s ahead of the own one: their first fixes arrive after the filter has
    moved on (dropped, counted, one note per peer); the hold then grows past the lateness
    and every later fix is used."""
    msgs = _resorted(_first_minutes(stream, 45), 200.0)
    p, out = _run(msgs)
    c = p.counters()
    assert 0 < c["peer_fixes_late"] <= 2 * 8 and c["hold_s"] > 200.0
    assert sorted(n["code"] for n in _notes(out)) == ["peer_fix_late", "peer_fix_late"]
    for pid in PEERS:
        est = _estimates(out, pid)
        assert len(est) > 300 and est[-1]["n_peer_fixes_rejected"] == 0


def test_peer_clock_unset_year_2000(stream):
    """An unset peer clock (year 2000): its fixes come first in the stream; all are held
    until their GPS time and used, none is late."""
    shift = float(gps_from_utc_unix(946_684_800.0)) - float(gps_from_utc_unix(1_742_450_400.0))
    head = _first_minutes(stream, 20)
    p, out = _run(_resorted(head, shift))
    _, ref = _run(head)
    assert p.counters()["peer_fixes_late"] == 0 and _notes(out) == []
    a, b = _estimates(ref), _estimates(out)
    assert len(a) == len(b)
    np.testing.assert_allclose(a[-1]["dr_ecef_m"], b[-1]["dr_ecef_m"], atol=1e-6)


def test_task_and_table_wiring():
    from pygnc.tasks import formation_estimator
    from pygnc.tasks.table import TASKS_BY_NAME

    spec = TASKS_BY_NAME["formation_estimator"]
    assert spec.task_id == 5 and spec.subscribes == ("meas",) and spec.publishes == ("formation",)
    assert formation_estimator.TASK_CLASS.processor_class is FormationProcessor
    assert formation_estimator.TASK_CLASS.channel == "formation"
    assert not math.isinf(FormationProcessor().order.hold_s)


def test_the_second_formation_process_runs_only_with_a_second_core(monkeypatch):
    """formation_estimator_2 runs with Config.formation_split and at least
    formation_split_min_cpus usable CPUs (2 by default); the first process then takes part
    (0, 2), else every partner (0, 1)."""
    from types import SimpleNamespace

    from pygnc.tasks import formation_estimator, formation_estimator_2, table

    two = table.TASKS_BY_NAME["formation_estimator_2"]
    assert two.publishes == ("formation_2",) and formation_estimator_2.TASK_CLASS.channel == "formation_2"
    for cpus, split, min_cpus, parts in (
        (2, True, 3, 1),
        (3, True, 3, 2),
        (4, True, 3, 2),
        (1, True, 3, 1),
        (4, False, 3, 1),
        (2, True, 2, 2),
        (1, True, 2, 1),
        (1, True, 1, 2),
    ):
        monkeypatch.setattr(table, "usable_cpus", lambda cpus=cpus: cpus)
        config = Config(formation_split=split, formation_split_min_cpus=min_cpus)
        assert two.enabled(config) == (two in table.enabled_tasks(config)) == (parts == 2)
        first = formation_estimator.TASK_CLASS.make_processor(SimpleNamespace(config=config))
        assert (first.part, first.n_parts) == (0, parts)
        if parts == 2:
            second = formation_estimator_2.TASK_CLASS.make_processor(SimpleNamespace(config=config))
            assert (second.part, second.n_parts) == (1, 2)
    for cpus, parts in ((1, 1), (2, 2)):  # the defaults: two processes from two CPUs
        monkeypatch.setattr(table, "usable_cpus", lambda cpus=cpus: cpus)
        assert two.enabled(Config()) == (parts == 2)


def _counters_but_stale(p):
    return {k: v for k, v in p.counters().items() if k != "stale"}


def test_replayed_stream_adds_nothing(stream, nominal):
    """A restarted ingest replays the whole stream: no output, note or counter changes
    (only ``stale`` counts the dropped events), and the own-fix memory does not regress."""
    p, _ = _run(stream)
    before, last_own = _counters_but_stale(p), p.last_own_fix.t_gps_s
    again = []
    for t, b in stream:
        if t in p.consumes:
            again += p.handle(t, b)
    assert again == [] and _counters_but_stale(p) == before and p.last_own_fix.t_gps_s == last_own
    assert p.counters()["stale"] > 2000
    # A restart in the middle of the batch: the replay joins up with the rest of it.
    head = _first_minutes(stream, 30)
    _, ref = _run(head)
    q = FormationProcessor(PEER_CONFIG())
    out2 = []
    for t, b in head[: len(head) // 2] + head:
        if t in q.consumes:
            out2 += q.handle(t, b)
    a, b = _estimates(ref), _estimates(out2)
    assert [(e["peer_id"], e["t_gps_s"]) for e in a] == [(e["peer_id"], e["t_gps_s"]) for e in b]
    assert a[-1]["dr_ecef_m"] == b[-1]["dr_ecef_m"] and _notes(out2) == _notes(ref) == []


def _after_batch(stream, config=None, minutes=20):
    head = _first_minutes(stream, minutes)
    p, out = _run(head, config)
    last_sc = [b["t_sc_s"] for t, b in head if t == "sensor"][-1]
    return p, out, last_sc


def test_budgeted_propagation_continues_across_calls(stream):
    p, _, last_sc = _after_batch(stream)
    target_sc = last_sc + 3600.0
    target_gps = float(p.clock.gps_from_sc(target_sc))
    first = _estimates(p.propagate_to_sc(target_sc, budget_s=1e-6), propagated=True)
    assert {b["peer_id"] for b in first} == set(PEERS)
    for b in first:  # a step or so: short of the target, stamped with its own epoch
        assert b["t_gps_s"] < target_gps - 60.0
        assert b["t_sc_s"] == pytest.approx(float(p.clock.sc_from_gps(b["t_gps_s"])), abs=1e-6)
    last = {b["peer_id"]: b for b in first}
    n_calls = 1
    while n_calls < 1000:
        step = p.propagate_to_sc(target_sc, budget_s=1e-6)
        assert _notes(step) == []
        step = _estimates(step, propagated=True)
        if not step:
            break
        n_calls += 1
        for b in step:
            assert b["propagated"] and b["t_gps_s"] > last[b["peer_id"]]["t_gps_s"]
            last[b["peer_id"]] = b
    assert n_calls > 10
    # Reached: the requested spacecraft time, and the same estimate as one unbudgeted call.
    q, _, _ = _after_batch(stream)
    ref = {b["peer_id"]: b for b in _estimates(q.propagate_to_sc(target_sc), propagated=True)}
    for pid in PEERS:
        assert last[pid]["t_gps_s"] == pytest.approx(target_gps, abs=1e-6) and last[pid]["t_sc_s"] == target_sc
        assert ref[pid]["t_gps_s"] == pytest.approx(target_gps, abs=1e-6)
        np.testing.assert_allclose(last[pid]["dr_ecef_m"], ref[pid]["dr_ecef_m"], atol=0.01)


def test_three_day_gap_within_budget(stream, monkeypatch):
    """A call to carry the estimates three days on stops when its budget is spent and says so
    by how far it got; the clock the budget reads ticks 10 ms per look (work counted, not
    timed: a busy machine's waits are not the call's)."""
    import types

    from pygnc.processors import admission

    p, _, last_sc = _after_batch(stream)
    target_sc = last_sc + 3 * 86400.0
    ticks = iter(range(10**9))
    monkeypatch.setattr(admission, "time", types.SimpleNamespace(perf_counter=lambda: 0.01 * next(ticks)))
    out = p.propagate_to_sc(target_sc, budget_s=0.05)
    est = _estimates(out, propagated=True)
    assert {b["peer_id"] for b in est} == set(PEERS)
    t_last_gps = max(q.t_meas_gps_s for q in p.peers.values())
    assert all(b["t_gps_s"] <= t_last_gps + 10 * admission.CHUNK_S for b in est)  # a few chunks, not 3 days
    # Beyond the 2-day horizon: one note, once.
    assert [n["code"] for n in _notes(out)] == ["propagation_horizon"]
    assert _notes(p.propagate_to_sc(target_sc, budget_s=0.05)) == []


def test_propagation_stops_at_the_horizon(stream):
    p, _, last_sc = _after_batch(stream, PEER_CONFIG(max_propagation_s=600.0))
    out = p.propagate_to_sc(last_sc + 3 * 86400.0)
    est = _estimates(out, propagated=True)
    assert [n["code"] for n in _notes(out)] == ["propagation_horizon"]
    for b in est:
        assert b["t_gps_s"] == pytest.approx(p.peers[b["peer_id"]].t_meas_gps_s + 600.0, abs=1e-6)
    assert p.propagate_to_sc(last_sc + 4 * 86400.0) == []  # no progress, nothing new, no second note


def test_absurd_sensor_time_skipped(stream):
    head = _first_minutes(stream, 20)
    _, ref = _run(head)
    i = [k for k, (t, _) in enumerate(head) if t == "sensor"][100]
    bad = head[:i] + [("sensor", {**head[i][1], "t_sc_s": head[i][1]["t_sc_s"] + 10 * 86400.0})] + head[i:]
    p, out = _run(bad)
    assert p.counters()["time_outliers"] == 1 and p.counters()["peer_fixes_late"] == 0
    a, b = _estimates(ref), _estimates(out)
    assert len(a) == len(b) and a[-1]["dr_ecef_m"] == b[-1]["dr_ecef_m"] and _notes(out) == []


# --------------------------------------------------------------------------- admission
def _week_high_byte_offsets(sense_bytes):
    """File offsets of the high byte of each record's GPS week field (issue 15 item 13)."""
    from pygnc.formats.gps import GPS_SEGMENT_DTYPE
    from pygnc.formats.sense import RECORD_SIZE, SENSOR_SEGMENT_SIZE

    week_at = Config().sensors_per_record * SENSOR_SEGMENT_SIZE + GPS_SEGMENT_DTYPE.fields["week"][1]
    return [k * RECORD_SIZE + week_at + 1 for k in range(len(sense_bytes) // RECORD_SIZE)]


def test_one_flipped_week_bit_in_an_own_fix_is_a_time_outlier(scenario_dir, tmp_path, stream, nominal):
    """Issue 15 item 13: bit 5 of the week's high byte of one own fix (week + 8192: the fix
    says 157 years later) made the filters predict 604 675 s ahead inside a handler and
    crash in frames._q_nodes.  The file still decodes; the fix is rejected against the
    clock map and every estimate is as without it."""
    data = bytearray((scenario_dir / "sense.bin").read_bytes())
    off = _week_high_byte_offsets(data)[356]
    data[off] ^= 1 << 5
    home = tmp_path / "flip"
    shutil.copytree(scenario_dir / "range", home / "range")
    (home / "sense.bin").write_bytes(bytes(data))
    msgs = build_message_stream(Paths(home), PEER_CONFIG()).messages
    own = [b for t, b in msgs if t == "gps_fix" and b["peer_id"] == 0]
    ref_own = [b for t, b in stream if t == "gps_fix" and b["peer_id"] == 0]
    changed = [(a["t_gps_s"], b["t_gps_s"]) for a, b in zip(own, ref_own) if a["t_gps_s"] != b["t_gps_s"]]
    assert len(own) == len(ref_own) and len(changed) == 1
    assert changed[0][0] - changed[0][1] == 8192 * 604800.0  # decodable, and 157 years off
    p, out = _run(msgs, propagate_after_s=600.0)
    assert p.counters()["time_outliers"] == 1
    _, ref = nominal
    for pid in PEERS:
        a, b = _estimates(ref, pid), _estimates(out, pid)
        assert [e["t_gps_s"] for e in a] == [e["t_gps_s"] for e in b]
        # The fix is missing from the filter: the estimates differ, slightly.
        assert math.dist(a[-1]["dr_gcrs_m"], b[-1]["dr_gcrs_m"]) < 0.5


def test_a_peer_fix_far_in_the_future_is_a_time_outlier(stream, nominal):
    """The same flipped bit in a peer's fix (its stamp is the peer's clock, so only its GPS
    time can be judged): held, then counted at the end of the batch, never processed."""
    i = [k for k, (t, b) in enumerate(stream) if t == "gps_fix" and b["peer_id"] == 0x4B][200]
    msgs = list(stream)
    msgs[i] = ("gps_fix", {**msgs[i][1], "t_gps_s": msgs[i][1]["t_gps_s"] + 8192 * 604800.0})
    p, out = _run(msgs, propagate_after_s=600.0)
    assert p.counters()["time_outliers"] == 1 and p.counters()["pending"] == 0
    _, ref = nominal
    for pid in PEERS:
        assert [e["t_gps_s"] for e in _estimates(ref, pid)] == [e["t_gps_s"] for e in _estimates(out, pid)]


_COPIES = {0x4B: 0x4D, 0x4C: 0x4E}


def _four_peers_with_a_gap(stream, gap_s):
    """The first 40 minutes with peers 0x4D and 0x4E copied from 0x4B and 0x4C, and every
    message after minute 20 moved *gap_s* later (a data gap; the clock map still holds)."""
    head = _first_minutes(stream, 40)
    t0 = next(b["t_sc_s"] for t, b in head if t == "sensor")
    out = []
    for t, b in head:
        if "t_sc_s" in b and t != "batch_end" and b["t_sc_s"] - t0 >= 1200.0:
            b = {**b, "t_sc_s": b["t_sc_s"] + gap_s}
            if "t_gps_s" in b:
                b["t_gps_s"] = b["t_gps_s"] + gap_s
        out.append((t, b))
        if t in ("gps_fix", "range") and b["peer_id"] in _COPIES:
            out.append((t, {**b, "peer_id": _COPIES[b["peer_id"]]}))
    return out


def test_twelve_hour_gap_with_four_peers_reinitialises_within_budget(stream):
    """A 12-h data gap with 4 peers: without the gap limit every peer's filter was
    predicted 8640 steps inside one handler (~17 s of CPU here; the supervisor kills a task
    silent for 8 s).  Now no filter is propagated across the gap: each peer re-initialises
    from the first fix pair after it, and estimates resume."""
    import time

    cfg = PEER_CONFIG(formation_peer_ids=(0x4A, 0x4B, 0x4C, 0x4D, 0x4E))
    msgs = _four_peers_with_a_gap(stream, 12 * 3600.0)
    p = FormationProcessor(cfg)
    out, worst_s = [], 0.0
    for t, b in msgs:
        if t in p.consumes:
            t0 = time.thread_time()
            out += p.handle(t, b)
            worst_s = max(worst_s, time.thread_time() - t0)
    # Correctness bound, not a benchmark: the CPU of one call (not the clock's time, which a
    # busy machine stretches) under half the supervisor's kill limit (measured worst ~0.05 s).
    assert worst_s < cfg.health_fatal_s / 2
    c = p.counters()
    assert c["peers"] == 4 and c["gap_reinit"] == 4 and c["pending"] == 0
    for pid in (0x4B, 0x4C, 0x4D, 0x4E):
        est = _estimates(out, pid)
        dt = np.diff([e["t_gps_s"] for e in est])
        assert dt.max() > 12 * 3600.0  # nothing invented across the gap
        assert sum(e["t_gps_s"] > est[0]["t_gps_s"] + 12 * 3600.0 for e in est) > 100  # resumed
        assert est[-1]["sigma_los_m"] < 5.0


def test_estimates_between_measurements_match_predicting_to_each(stream, nominal, monkeypatch):
    """Outputs wait for the filter's propagation to the next measurement and are interpolated
    there (FormationFilter.tap; steps of up to 30 s); predicting the filter to every output
    instead (the waiting limit below zero: a node at each output, steps of 5 s) gives the same
    estimates: seen 0.18 mm, 2.5e-6 m/s, sigmas 0.02 % apart over the 3 h (compared here
    over the first ~80 min).  Ranges are applied at their own times in both runs here (an
    estimate would otherwise include the ranges up to its step's end, which differ between
    the two: test_ranges_applied_ahead_of_the_filter_match_stepping_to_each)."""
    from pygnc.processors import formation_outputs

    head = stream[: int(0.45 * len(stream))]  # the first ~80 min (keeps the suite short)
    _, deferred = _run(head, PEER_CONFIG(formation_filter={"range_extrapolate_max_s": 0.0}))
    monkeypatch.setattr(formation_outputs, "OUTPUT_DEFER_MAX_S", -1.0)
    _, direct = _run(head, PEER_CONFIG(formation_filter={"range_extrapolate_max_s": 0.0}))
    for pid in PEERS:
        a = {b["t_gps_s"]: b for b in _estimates(deferred, pid)}
        b = {b["t_gps_s"]: b for b in _estimates(direct, pid)}
        # (the deferred run's last few outputs still wait for a measurement at the cut)
        assert len(b) > 500 and len(b.keys() - a.keys()) <= 10
        b = {t: b[t] for t in b if t in a}
        a = {t: a[t] for t in b}
        d = np.array([np.subtract(a[t]["dr_gcrs_m"], b[t]["dr_gcrs_m"]) for t in a])
        dv = np.array([np.subtract(a[t]["dv_gcrs_m_s"], b[t]["dv_gcrs_m_s"]) for t in a])
        s = np.array([np.divide(a[t]["sigma_dr_m"], b[t]["sigma_dr_m"]) for t in a])
        assert np.abs(d).max() < 2e-3 and np.abs(dv).max() < 2e-5
        assert np.abs(s - 1.0).max() < 2e-3


def test_ranges_applied_ahead_of_the_filter_match_stepping_to_each(stream, nominal, truth):
    """The flight default applies a range up to 30 s after the filter time there, the relative
    state carried to the range's time in closed form (the filter steps between own fixes
    only); stepping the filter to every range instead gives the same accuracy against the
    truth (seen: RMS within 0.04 %, NEES equal to 3 digits over the 3 h) and estimates
    within half a sigma of each other (an estimate between two steps now includes the
    ranges up to the step's end: seen up to 0.45 sigma, its sigmas up to 4.5 % smaller)."""
    p, each = _run(stream, PEER_CONFIG(formation_filter={"range_extrapolate_max_s": 0.0}))
    q = nominal[0]
    assert q.counters()["peers"] == p.counters()["peers"] == 2
    for pid in PEERS:
        a = {b["t_gps_s"]: b for b in _estimates(nominal[1], pid)}
        b = {b["t_gps_s"]: b for b in _estimates(each, pid)}
        assert a.keys() == b.keys() and len(a) > 2000
        late = [t for t in a if t > min(a) + 600.0]
        d = np.array([np.subtract(a[t]["dr_gcrs_m"], b[t]["dr_gcrs_m"]) for t in late])
        sig = np.array([b[t]["sigma_dr_m"] for t in late])
        assert np.abs(d / sig).max() < 0.6
        ra = relative_errors(truth, list(a.values()), SETTLE_S)
        rb = relative_errors(truth, list(b.values()), SETTLE_S)
        for k in ("rms_r", "rms_v", "rms_los"):
            assert abs(ra[k] / rb[k] - 1.0) < 0.02, (hex(pid), k, ra[k], rb[k])
        assert abs(np.mean(ra["nees"]) / np.mean(rb["nees"]) - 1.0) < 0.02


def test_a_batch_publishes_what_the_downlink_records(stream, nominal):
    """batch_decimate_estimates (the flight default): during the batch, per peer, the first
    estimate of each 60-s bin and the newest before batch_end; after it every one.  The
    estimates published are the very ones published without it, and the batch writer makes
    the same records of them."""
    full_p, full = nominal
    dec_p, dec = _run(stream, PEER_CONFIG(batch_decimate_estimates=True), propagate_after_s=600.0)
    t_end = next(b for t, b in stream if t == "batch_end")
    full_est = [b for t, b in full if t == "formation_estimate"]
    dec_est = [b for t, b in dec if t == "formation_estimate"]
    by_key = {(b["peer_id"], b["t_sc_s"], b["propagated"]): b for b in full_est}
    assert all(by_key[(b["peer_id"], b["t_sc_s"], b["propagated"])] == b for b in dec_est)
    assert sum(not b["propagated"] for b in dec_est) < sum(not b["propagated"] for b in full_est) / 8
    assert dec_p.counters()["outputs_decimated"] == len(full_est) - len(dec_est)
    assert full_p.counters()["outputs_decimated"] == 0
    # Each peer: every 60-s bin of the full output has its first estimate published, and the
    # tail after the batch's end (the flush of the last hold, propagation to now) in full.
    for pid in PEERS:
        f = [b["t_sc_s"] for b in full_est if b["peer_id"] == pid and not b["propagated"]]
        d = [b["t_sc_s"] for b in dec_est if b["peer_id"] == pid and not b["propagated"]]
        firsts = sorted({int(t // 60.0): t for t in reversed(f)}.values())
        assert set(firsts) <= set(d)
        assert d == sorted(d) and f[-1] == d[-1]
        tail = [t for t in f if t > t_end["t_sc_last_s"] - 75.0]  # still held at batch_end
        assert tail and set(tail) <= set(d)
        assert [b for b in dec_est if b["peer_id"] == pid and b["propagated"]] == [
            b for b in full_est if b["peer_id"] == pid and b["propagated"]
        ]
    assert downlink_records(dec, "formation") == downlink_records(full, "formation")


def test_a_batch_stopped_part_way_ends_with_its_newest_estimates(stream):
    """A stop in the middle of the batch (Ctrl-C): the estimates held back by the
    decimation go out (EstimatorTask.on_stop -> flush_held), so the batch writer records the
    same newest estimate of each peer as without decimation."""
    part = stream[: int(0.6 * len(stream))]
    runs = []
    for decimate in (False, True):
        p, out = _run(part, PEER_CONFIG(batch_decimate_estimates=decimate))
        runs.append(out + p.flush_held())
    assert downlink_records(runs[1], "formation") == downlink_records(runs[0], "formation")
    assert FormationProcessor(PEER_CONFIG()).flush_held() == []
