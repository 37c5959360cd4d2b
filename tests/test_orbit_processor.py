"""Orbit processor on the message stream ingest builds: outputs, time tags, errors vs truth."""

import dataclasses
import math

import numpy as np
from conftest import PY4_DATA
from flight_harness import REPO
from processor_support import EVERY, downlink_records

from pygnc import frames
from pygnc.config import Config, Paths
from pygnc.frames import covariance_gcrs_to_ecef
from pygnc.processors.orbit import OrbitProcessor
from pygnc.tasks.ingest import build_message_stream

SAMPLE = REPO / "data" / "sample_5min"
BENCH = PY4_DATA / "pygnc_example"


def _run(stream, proc):
    out = []
    for t, b in stream.messages:
        if t in proc.consumes:
            out += proc.handle(t, b)
    return out


def test_estimate_at_every_sensor_time_after_the_first_fix():
    stream = build_message_stream(Paths(SAMPLE), Config())
    proc = OrbitProcessor(EVERY)
    out = _run(stream, proc)
    est = [b for t, b in out if t == "orbit_estimate"]
    sensors = [b["t_sc_s"] for t, b in stream.messages if t == "sensor"]
    first_fix = min(b["t_sc_s"] for t, b in stream.messages if t == "gps_fix" and b["peer_id"] == 0 and b["valid"])
    assert [e["t_sc_s"] for e in est] == [t for t in sensors if t >= first_fix]
    assert all(not e["propagated"] for e in est)
    assert est[-1]["n_used"] == 12 and est[-1]["n_rejected"] == 0

    # against truth: GPS time of the estimate -> truth sample (1 Hz grid)
    truth = np.load(SAMPLE / "truth.npz")
    t_truth = truth["t_gps_s"]
    errs = []
    for e in est:
        i = int(np.argmin(np.abs(t_truth - e["t_gps_s"])))
        dt = e["t_gps_s"] - t_truth[i]
        r_true = truth["r_ecef_m"][0, i] + dt * truth["v_ecef_m_s"][0, i]
        errs.append(math.dist(e["r_ecef_m"], r_true))
        assert abs(e["unix_time_s"] - (e["t_gps_s"] + 315964800 - 18)) < 1e-6
    assert max(errs) < 40.0  # 5 minutes of 10 m fixes: the filter is still converging
    assert errs[-1] < 3 * math.sqrt(sum(s * s for s in est[-1]["sigma_r_m"])) + 5.0


def test_replayed_stream_adds_no_stale_estimates_and_propagation_moves_forward():
    stream = build_message_stream(Paths(SAMPLE), Config())
    proc = OrbitProcessor(Config(handler_budget_s=5.0))  # (the first pass finishes its work on a loaded machine)
    n1 = len(_run(stream, proc))
    n2 = len(_run(stream, proc))  # what a restarted ingest would publish
    assert n1 > 0 and n2 == 0 and proc.n_stale > 0 and proc.n_out_of_order == 12
    t_last = max(b["t_sc_s"] for t, b in stream.messages if t == "sensor")
    p1 = proc.propagate_to_sc(t_last + 60)[0][1]
    p2 = proc.propagate_to_sc(t_last + 600)[0][1]
    assert p1["propagated"] and p2["t_gps_s"] - p1["t_gps_s"] == 540.0
    assert sum(p2["sigma_r_m"]) > sum(p1["sigma_r_m"])  # uncertainty grows


def test_no_valid_fix_gives_a_note_and_no_state():
    stream = build_message_stream(Paths(BENCH), Config())
    proc = OrbitProcessor()
    out = _run(stream, proc)
    assert out == [
        (
            "estimator_note",
            {
                "estimator": "orbit",
                "code": "no_fix",
                "peer_id": 0,
                "text": "no valid GPS fix in the batch: no orbit estimate",
            },
        )
    ]
    assert proc.propagate_to_sc(1e9) == []
    assert proc.filter.n_invalid == 33


def test_covariance_transform_matches_finite_differences():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(6, 6))
    p = a @ a.T
    t = 1.4e9
    m = frames.gcrs_from_itrs_matrix(t)
    r, v = rng.normal(size=3) * 7e6, rng.normal(size=3) * 7e3
    x0 = np.concatenate(frames.gcrs_to_itrs(r, v, t))
    j = np.zeros((6, 6))
    for k in range(6):
        d = np.zeros(6)
        d[k] = 1.0
        x1 = np.concatenate(frames.gcrs_to_itrs(r + d[:3], v + d[3:], t))
        j[:, k] = x1 - x0
    np.testing.assert_allclose(covariance_gcrs_to_ecef(p, m), j @ p @ j.T, rtol=1e-6, atol=1e-9)


def test_peer_fix_without_ranges_is_never_taken_for_an_own_fix(tmp_path):
    """A range-file group with no range packets, with partner fixes configured: its GPS
    packet has no spacecraft time (that comes from the next range) and no partner id, so
    it is never published, least of all as an own fix (peer_id 0)."""
    from pygnc.formats.range_file import encode_range_group
    from pygnc.formats.sense import decode_sense

    own = decode_sense((SAMPLE / "sense.bin").read_bytes()).fixes
    peer = own[3].copy()
    peer["pos_ecef_m"] = [7.0e6, 0.0, 0.0]  # would wreck the own orbit if used as one
    (tmp_path / "range").mkdir()
    (tmp_path / "range" / "rng00000.bin").write_bytes(encode_range_group(peer, []))
    (tmp_path / "sense.bin").write_bytes((SAMPLE / "sense.bin").read_bytes())
    stream = build_message_stream(Paths(tmp_path), Config(range_gps_source="peer"))
    assert not [b for t, b in stream.messages if t == "gps_fix" and b["pos_ecef_m"][0] == 7.0e6]
    proc = OrbitProcessor()
    _run(stream, proc)
    assert proc.filter.n_used == 12 and proc.filter.n_rejected == 0


def test_filter_tunables_come_from_the_configuration(tmp_path):
    import pytest

    from pygnc.config import load_config

    cfg_file = tmp_path / "pygnc.toml"
    cfg_file.write_text("[orbit_filter]\ntesseral_degree = 0\ndmc_tau_s = 300.0\n")
    proc = OrbitProcessor(load_config(cfg_file))
    assert proc.filter.config.tesseral_degree == 0 and proc.filter.config.dmc_tau_s == 300.0
    assert proc.filter.model.tesseral_degree == 0
    cfg_file.write_text("[orbit_filter]\ntesseral_degre = 0\n")
    with pytest.raises(ValueError, match="tesseral_degre"):
        OrbitProcessor(load_config(cfg_file))


def test_unreadable_inputs_are_reported_not_raised(tmp_path):
    (tmp_path / "sense.bin").mkdir()  # a directory where the file should be
    (tmp_path / "range").mkdir()
    (tmp_path / "range" / "rng00001.bin").mkdir()
    stream = build_message_stream(Paths(tmp_path), Config())
    stats = {b["source"]: b for t, b in stream.messages if t == "ingest_stats"}
    assert not stats["sense"]["present"] and "unreadable" in stats["sense"]["note"]
    assert stream.messages[-1][0] == "batch_end"


def test_corrupt_times_cannot_hijack_the_filter():
    """A fix whose GPS week/ms disagrees with its stamp, or a sample stamped days ahead,
    is not used: the filter stays where the data is and no long propagation happens."""
    import time as _time

    stream = build_message_stream(Paths(SAMPLE), Config())
    msgs = [(t, dict(b)) for t, b in stream.messages]
    fixes = [b for t, b in msgs if t == "gps_fix" and b["peer_id"] == 0]
    fixes[5]["t_gps_s"] += 262144.0  # a flipped bit in the ms of week
    sensors = [b for t, b in msgs if t == "sensor"]
    sensors[30]["t_sc_s"] += 30 * 86400.0  # a flipped bit in a sample's stamp
    proc = OrbitProcessor()
    t0 = _time.thread_time()  # (CPU: a busy machine's wait for a core is not the calls')
    out = []
    for t, b in msgs:
        if t in proc.consumes:
            out += proc.handle(t, b)
    assert _time.thread_time() - t0 < 5.0
    assert proc.n_time_outliers == 2 and proc.filter.n_used == 11
    assert all(e["t_sc_s"] < sensors[-1]["t_sc_s"] + 1 for t, e in out if t == "orbit_estimate")


def test_propagation_to_a_far_now_is_budgeted_and_capped(monkeypatch):
    """Carried a month on, each call stops when its budget is spent (the budget's clock ticks
    10 ms per look: work counted, not timed), and successive calls reach the horizon."""
    import types

    from pygnc.processors import admission

    stream = build_message_stream(Paths(SAMPLE), Config())
    proc = OrbitProcessor()
    _run(stream, proc)
    t_last = max(b["t_sc_s"] for t, b in stream.messages if t == "sensor")
    now = t_last + 30 * 86400.0  # "now" a month after the batch
    ticks = iter(range(10**9))
    with monkeypatch.context() as m:
        m.setattr(admission, "time", types.SimpleNamespace(perf_counter=lambda: 0.01 * next(ticks)))
        out = proc.propagate_to_sc(now, budget_s=0.02)
    est = [b for t, b in out if t == "orbit_estimate"][0]
    assert est["propagated"] and est["t_sc_s"] < now  # partway, with its own epoch
    assert est["t_gps_s"] < proc.filter.t_gps_s + 3600.0  # a few steps, not a month's
    for _ in range(2000):  # successive calls advance, up to the 2-day horizon
        out = proc.propagate_to_sc(now, budget_s=0.02)
        if not out:
            break
        est = [b for t, b in out if t == "orbit_estimate"][0]
    assert abs(est["t_gps_s"] - (proc.filter.t_gps_s + Config().max_propagation_s)) < 1.0
    notes = [b["code"] for t, b in proc.propagate_to_sc(now) if t == "estimator_note"]
    assert notes == []  # the horizon note is sent once, already
    assert proc.horizon_noted


# --------------------------------------------------------------------------- accuracy where it flies
def _orbit_run(single_sc_3h):
    import processor_support as ps

    _, d = single_sc_3h
    truth = dict(np.load(d / "truth.npz"))
    msgs = ps.stream_of(d)
    return truth, msgs


def test_processor_accuracy_on_three_hours(single_sc_3h):
    """OrbitProcessor, as the task runs it, on the seeded 3-h scenario (brahe truth: EGM2008
    40x40, NRLMSISE-00, SRP, Sun/Moon, relativity; GPS 10 m / 1 cm/s per axis every 25 s),
    after 30 min.  Measured 2.69 m / 7.2 mm/s 3D RMS (bench_orbit, 3 seeds: 2.56 m median,
    2.92 m worst).  Deterministic (seeded): x1.3 absorbs tuning changes; echoing the raw
    fixes would give 17 m / 17 mm/s, the exact-dynamics floor is 1.4 m / 1.7 mm/s."""
    import processor_support as ps

    truth, msgs = _orbit_run(single_sc_3h)
    proc = OrbitProcessor(EVERY)
    out = _run(type("S", (), {"messages": msgs}), proc)
    est = [b for t, b in out if t == "orbit_estimate"]
    first_fix = min(b["t_sc_s"] for t, b in msgs if t == "gps_fix" and b["peer_id"] == 0 and b["valid"])
    assert [b["t_sc_s"] for b in est] == [b["t_sc_s"] for t, b in msgs if t == "sensor" and b["t_sc_s"] >= first_fix]
    tg, e, _ = ps.orbit_errors(truth, est)
    s = tg - truth["t_gps_s"][0] >= 1800.0
    rms_r = math.sqrt(np.mean(np.sum(e[s, :3] ** 2, 1)))
    rms_v = math.sqrt(np.mean(np.sum(e[s, 3:] ** 2, 1)))
    assert rms_r < 3.5 and rms_v < 0.0094, (rms_r, rms_v)
    # Gate at 99.99 %: 1 of 432 fixes rejected (measured; the truth's unmodelled forces
    # widen the innovations a little); more would mean a mistuned filter.
    assert proc.n_time_outliers == 0 and proc.filter.n_rejected <= 2


def test_cursor_steps_once_per_fix_and_interpolates_the_samples_between(single_sc_3h, monkeypatch):
    """The output cursor takes one step per fix interval (its length is the last interval),
    the next fix starts from that step's end, and the samples in between are interpolated
    in the step: one propagation per 25-s fix interval where stepping sample to sample
    took five.  The interpolated estimates agree with the filter state propagated to each
    sample on its own (in 5-s steps from the same fix) within 5 mm and 1e-4 m/s (seen 2 mm,
    5e-5 m/s; the filter's velocity error is 7 mm/s), their covariance within 1e-3."""
    from pygnc.estimation import orbit_ekf

    _, msgs = _orbit_run(single_sc_3h)
    calls = {"step": 0, "predict": 0}
    real_step, real_predict = orbit_ekf.OrbitEKF.predict_step, orbit_ekf.OrbitEKF.predict

    def counted_step(self, h):
        calls["step"] += 1
        return real_step(self, h)

    def counted_predict(self, dt):
        calls["predict"] += dt > 0.0
        return real_predict(self, dt)

    monkeypatch.setattr(orbit_ekf.OrbitEKF, "predict_step", counted_step)
    monkeypatch.setattr(orbit_ekf.OrbitEKF, "predict", counted_predict)
    proc = OrbitProcessor(EVERY)
    checked = 0
    fine = dataclasses.replace(proc.filter.config, max_step_s=5.0)
    for t, b in msgs:
        if t not in proc.consumes:
            continue
        for mt, body in proc.handle(t, b):
            if mt != "orbit_estimate" or checked >= 40 or proc.span is None:
                continue
            span = proc.span
            if not span.t0_gps_s < body["t_gps_s"] < span.t0_gps_s + span.h_s:
                continue
            ref = orbit_ekf.OrbitEKF(fine)
            ref.t_gps_s, ref.x, ref.p = span.t0_gps_s, span.x0.copy(), span.p0.copy()
            ref.predict_to(body["t_gps_s"])
            assert np.abs(np.array(body["r_gcrs_m"]) - ref.x[:3]).max() < 5e-3
            assert np.abs(np.array(body["v_gcrs_m_s"]) - ref.x[3:6]).max() < 1e-4
            cov = np.array(body["cov_gcrs"]).reshape(6, 6)
            np.testing.assert_allclose(cov, ref.p[:6, :6], rtol=1e-3, atol=1e-3 * np.abs(ref.p[:6, :6]).max())
            checked += 1
    n_fix = proc.filter.n_used
    assert checked == 40
    assert calls["step"] <= 1.05 * n_fix, (calls, n_fix)
    # The fix's own prediction is the cursor's step end in all but a few intervals (the
    # first, and around rejected or missing fixes); the reference filters above count too.
    assert calls["predict"] - 40 <= 0.05 * n_fix, (calls, n_fix)


def test_processor_nees_over_independent_receivers(single_sc_3h):
    """Consistency proper: 8 independent realisations of the receiver noise on the same
    orbit, NEES (6 dof, GCRS) at 1.5 h and at the end (16 values; the filter's error
    correlation time is minutes, so the two epochs are independent).  Their mean times 16 is
    chi-square with 96 dof for a consistent filter: two-sided 99 % bounds 4.00-8.46.
    Measured 4.70 (the tuning is slightly conservative)."""
    import processor_support as ps

    from pygnc.estimation import chi2

    truth, msgs = _orbit_run(single_sc_3h)
    values = []
    for k in range(8):
        proc = OrbitProcessor(EVERY)
        out = _run(type("S", (), {"messages": ps.renoised(msgs, truth, 0, 10.0, 0.01, seed=100 + k)}), proc)
        tg, e, cov = ps.orbit_errors(truth, [b for t, b in out if t == "orbit_estimate"])
        for t_rel in (5400.0, 10700.0):
            i = int(np.argmin(np.abs(tg - truth["t_gps_s"][0] - t_rel)))
            values.append(float(ps.nees(e[i : i + 1], cov[i : i + 1])[0]))
    n = len(values)
    lo, hi = chi2.quantile(0.005, 6 * n) / n, chi2.quantile(0.995, 6 * n) / n
    assert lo < np.mean(values) < hi, (np.mean(values), lo, hi)


def test_a_long_gap_reinitialises_instead_of_propagating():
    """A data gap longer than Config.max_gap_propagation_s (here 12 h, clock map intact):
    the filter is re-initialised from the first fix after it, not predicted 8640 steps
    inside one handler, and estimates resume there."""
    stream = build_message_stream(Paths(SAMPLE), Config())
    t0 = next(b["t_sc_s"] for t, b in stream.messages if t == "sensor")
    gap = 12 * 3600.0
    msgs = []
    for t, b in stream.messages:
        if t != "batch_end" and "t_sc_s" in b and b["t_sc_s"] - t0 >= 150.0:
            b = {**b, "t_sc_s": b["t_sc_s"] + gap}
            if "t_gps_s" in b:
                b["t_gps_s"] = b["t_gps_s"] + gap
        msgs.append((t, b))
    proc = OrbitProcessor()
    out = _run(type("S", (), {"messages": msgs}), proc)
    c = proc.counters()
    assert c["gap_reinit"] == 1 and c["reinit"] == 1 and c["time_outliers"] == 0
    est = [b for t, b in out if t == "orbit_estimate"]
    t_fix = next(b["t_sc_s"] for t, b in msgs if t == "gps_fix" and b["t_sc_s"] - t0 >= gap)
    before_fix = [b for b in est if gap <= b["t_sc_s"] - t0 and b["t_sc_s"] < t_fix]
    after = [b for b in est if b["t_sc_s"] >= t_fix]
    assert after and after[0]["n_used"] > 0
    # Samples between the gap and its first fix are 12-h predictions and say so (sigma of km);
    # right after the re-initialisation the estimate is as good as a fix.
    assert all(min(b["sigma_r_m"]) > 300.0 for b in before_fix)
    assert max(after[0]["sigma_r_m"]) < 30.0


def test_a_batch_publishes_full_estimates_where_the_downlink_records_them(single_sc_3h):
    """Config.batch_decimate_estimates (the flight default): during the batch a sample's
    estimate goes out in full only as the first of its 60-s bin (and the newest at
    batch_end), otherwise as an orbit_position with the same epoch and position; after
    batch_end every one in full.  The batch writer makes the same records, the attitude
    estimator gets the same positions, and a run stopped part-way ends with its newest
    estimate (flush_held)."""
    _, msgs = _orbit_run(single_sc_3h)
    end = next(i for i, (t, _) in enumerate(msgs) if t == "batch_end")
    last = next(b for t, b in reversed(msgs[:end]) if t == "sensor")
    live = [("sensor", dict(last, t_sc_s=last["t_sc_s"] + 5.0 * k)) for k in range(1, 9)]
    stream = type("S", (), {"messages": msgs[: end + 1] + live})
    full_p, dec_p = OrbitProcessor(EVERY), OrbitProcessor(Config())
    full, dec = _run(stream, full_p), _run(stream, dec_p)
    f = {b["t_sc_s"]: b for t, b in full if t == "orbit_estimate"}
    d = [(t, b) for t, b in dec if t in ("orbit_estimate", "orbit_position")]
    times = [b["t_sc_s"] for _, b in d]
    twice = [i for i in range(1, len(d)) if times[i] == times[i - 1]]
    # one message per sample, in order; the batch's last left out also in full at batch_end
    assert [t for i, t in enumerate(times) if i not in twice] == list(f)
    assert len(twice) == 1 and [d[twice[0] - 1][0], d[twice[0]][0]] == ["orbit_position", "orbit_estimate"]
    n_live = len(live)
    assert all(t == "orbit_estimate" for t, _ in d[-n_live:])
    for t, b in d:
        ref = f[b["t_sc_s"]]
        if t == "orbit_estimate":
            assert b == ref
        else:
            assert set(b) == {"t_sc_s", "t_gps_s", "r_ecef_m", "r_gcrs_m"}
            assert b["t_gps_s"] == ref["t_gps_s"] and b["r_gcrs_m"] == ref["r_gcrs_m"]
            assert b["r_ecef_m"] == ref["r_ecef_m"]
    n_full = sum(t == "orbit_estimate" for t, _ in d[:-n_live])
    assert n_full < len(d) / 8 and dec_p.counters()["positions_only"] == len(d) - n_full - n_live - 1
    assert downlink_records(dec, "orbit") == downlink_records(full, "orbit")
    # stopped part-way through the batch
    part = type("S", (), {"messages": msgs[: end // 2]})
    runs = []
    for config in (EVERY, Config()):
        proc = OrbitProcessor(config)
        runs.append(_run(part, proc) + proc.flush_held())
    assert downlink_records(runs[1], "orbit") == downlink_records(runs[0], "orbit")
    assert runs[1][-1] == runs[0][-1]
