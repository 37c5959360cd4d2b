"""python -m ground replay: promised columns, UTC times, truth statistics, plots, OEM, the
no-fix and no-truth paths, smoothing, processor wiring, and in-process == pipeline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ground.__main__ import main as ground_main
from ground.outputs import oem
from ground.outputs import tables as tb
from ground.outputs import truth as tr
from ground.replay import in_process as replay_core
from ground.simulate.scenario import load_truth
from pygnc.config import Config, Paths
from pygnc.estimation.quaternion import quat_multiply_array
from pygnc.tasks.ingest import build_message_stream
from pygnc.timebase import GPS_EPOCH_UNIX_S, utc_unix_from_gps

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample_5min"

#: Columns the issue promises (the CSVs have more).
PROMISED = {
    "orbit": [
        "unix_time_s",
        "x_ecef_m",
        "y_ecef_m",
        "z_ecef_m",
        "vx_ecef_m_s",
        "vy_ecef_m_s",
        "vz_ecef_m_s",
        "sigma_x_ecef_m",
        "sigma_y_ecef_m",
        "sigma_z_ecef_m",
        "sigma_vx_ecef_m_s",
        "sigma_vy_ecef_m_s",
        "sigma_vz_ecef_m_s",
    ],
    "attitude": ["unix_time_s", "qw", "qx", "qy", "qz", "gyro_bias_x_rad_s", "gyro_bias_y_rad_s", "gyro_bias_z_rad_s"],
    "formation": ["unix_time_s", "peer_id", "dx_ecef_m", "dy_ecef_m", "dz_ecef_m"],
}


def _replay(out: Path, *extra: str, scenario: Path = SAMPLE) -> dict:
    assert ground_main(["replay", str(scenario), "--out", str(out), "--quiet", *extra]) == 0
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def sample_out(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("replay")
    return out, _replay(out)


@pytest.fixture(scope="module")
def pipeline_out(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("replay_pipeline")
    return out, _replay(out, "--pipeline", "--no-plots", "--pipeline-timeout", "120")


def _header(path: Path) -> list[str]:
    return path.read_text().splitlines()[0].split(",")


# --------------------------------------------------------------------------- outputs
@pytest.mark.parametrize("kind", ["orbit", "attitude", "formation"])
def test_csv_has_promised_columns(sample_out, kind):
    out, _ = sample_out
    header = _header(out / f"{kind}.csv")
    assert header == [name for name, _ in tb.COLUMNS[kind]]
    assert set(PROMISED[kind]) <= set(header)


def test_orbit_rows_at_sensor_times_in_utc(sample_out):
    out, summary = sample_out
    t = tb.read_csv(out / "orbit.csv")
    stream = build_message_stream(Paths(SAMPLE), Config())
    sensor_t_sc = [b["t_sc_s"] for m, b in stream.messages if m == "sensor"]
    first_fix_sc = min(b["t_sc_s"] for m, b in stream.messages if m == "gps_fix" and b["peer_id"] == 0 and b["valid"])
    expected = [s for s in sensor_t_sc if s > first_fix_sc]  # ties: sensor before fix
    np.testing.assert_array_equal(t["t_sc_s"], expected)
    assert summary["rows"]["orbit"] == len(expected) > 40
    # unix_time_s is UTC: GPS - UTC = 18 s in 2025, and the ISO column says the same.
    np.testing.assert_allclose(t["unix_time_s"], t["t_gps_s"] + GPS_EPOCH_UNIX_S - 18, rtol=0, atol=1e-6)
    np.testing.assert_allclose(t["unix_time_s"], utc_unix_from_gps(t["t_gps_s"]), rtol=0, atol=1e-6)
    assert t["utc"][0].startswith("2025-03-20T06:0") and t["utc"][0].endswith("Z")
    truth = load_truth(SAMPLE / "truth.npz")
    assert truth["t_utc_unix_s"][0] <= t["unix_time_s"][0] and t["unix_time_s"][-1] <= truth["t_utc_unix_s"][-1]


def test_summary_truth_statistics(sample_out):
    out, s = sample_out
    assert s["truth"]["spacecraft"] == "sc0"
    assert s["settle_s"] == pytest.approx(0.1 * s["span_s"])  # a 5-min run settles for 10 %
    o = s["orbit"]
    for key in ("position_3d_rms_m", "position_3d_max_m", "velocity_3d_rms_m_s", "velocity_3d_max_m_s"):
        assert o[key] is not None and o[key] > 0
    assert o["position_3d_rms_m"] <= o["position_3d_max_m"]
    # Seeded and deterministic: measured 6.88 m / 11.7 mm/s (5 minutes, 12 fixes of 10 m /
    # 1 cm/s per axis); x1.2 absorbs tuning changes and stays far below what echoing the
    # raw fixes gives (17 m / 17 mm/s 3D).  Accuracy proper: tests/test_orbit_processor.py.
    assert o["position_3d_rms_m"] < 8.3 and o["velocity_3d_rms_m_s"] < 0.014
    lo, hi = o["nees"]["bounds_95"]  # two-sided 95 % of one chi-square(6) value
    assert o["nees"]["dof"] == 6
    assert lo == pytest.approx(1.2373, abs=1e-3) and hi == pytest.approx(14.4494, abs=1e-3)
    # Measured: all 50 epochs inside (they share 12 fixes, so they are far from
    # independent); a covariance optimistic by 3x in sigma puts most of them outside.
    assert o["nees"]["frac_inside_95"] >= 0.8
    assert o["n_evaluated"] < o["n_rows"]  # the settle time left rows out
    assert {"orbit", "attitude", "formation", "residuals", "timings_s", "rows", "oem", "plots"} <= set(s)
    for png in s["plots"]:
        assert (out / png).stat().st_size > 5000
    assert "plots/orbit_position_error.png" in s["plots"]


def test_summary_splits_the_statistics_by_quality(sample_out):
    """The headline figures take every settled row; ``by_quality`` says what the ``ok`` rows
    alone give and what the others would have (an attitude 2 deg off where it says ``ok`` and
    60 deg where it says ``uncertain`` reads 18 deg in the headline)."""
    from ground.outputs import summary as sm

    _, s = sample_out
    for est, key in (("orbit", "position_3d_rms_m"), ("attitude", "angle_rms_deg")):
        groups = s[est]["by_quality"]
        assert next(iter(groups)) == "ok" and groups["ok"][key] is not None
        assert sum(g["n_evaluated"] for g in groups.values()) == s[est]["n_evaluated"]
        assert groups["ok"]["n_past_999"] <= s[est]["nees"]["n_past_999"]
    n = 6
    table = {"quality": np.array(["uncertain", "ok", "ok", "uncertain", "ok", "acquiring"])}
    err = np.array([60.0, 1.0, 2.0, 80.0, 2.0, 5.0])
    nees = np.array([0.5, 1.0, 30.0, 0.2, 2.0, 1.0])
    g = sm.by_quality(table, np.ones(n, bool), err, nees, 3, "angle_", "deg")
    assert list(g) == ["ok", "acquiring", "uncertain"]
    assert g["ok"]["n_evaluated"] == 3 and g["ok"]["angle_max_deg"] == 2.0 and g["ok"]["n_past_999"] == 1
    assert g["ok"]["angle_rms_deg"] == pytest.approx(np.sqrt(3.0))
    assert g["uncertain"]["angle_rms_deg"] == pytest.approx(np.sqrt(5000.0)) and g["uncertain"]["n_past_999"] == 0
    assert sm.by_quality({}, np.ones(n, bool), err, nees, 3, "angle_", "deg") == {}


def test_oem_parses_back_to_the_csv(sample_out):
    out, _ = sample_out
    t = tb.read_csv(out / "orbit.csv")
    parsed = oem.read_oem((out / "orbit.oem").read_text())
    for seg in parsed.segments:
        assert seg.metadata["REF_FRAME"] == "ITRF" and seg.metadata["TIME_SYSTEM"] == "UTC"
        assert seg.metadata["OBJECT_NAME"] == "sc0" and seg.metadata["CENTER_NAME"] == "EARTH"
    # One segment per run of one quality word: the orbit acquiring until its second fix, then ok.
    words = [seg.comments[0].removeprefix("quality ").split(":")[0] for seg in parsed.segments]
    assert words[:2] == ["acquiring", "ok"]
    runs = [str(w) for k, w in enumerate(t["quality"]) if k == 0 or w != t["quality"][k - 1]]
    assert words == runs
    times = np.concatenate([seg.unix_time_s for seg in parsed.segments])
    np.testing.assert_allclose(times, t["unix_time_s"], atol=1e-6, rtol=0)
    state = np.concatenate([seg.state_km for seg in parsed.segments]) * 1e3
    csv_state = np.column_stack([t[c] for c in PROMISED["orbit"][1:7]])
    np.testing.assert_allclose(state, csv_state, atol=2e-6, rtol=0)


def test_oem_covariance_matches_csv_sigmas(tmp_path):
    _replay(tmp_path, "--oem-covariance", "--no-plots", "--no-truth")
    t = tb.read_csv(tmp_path / "orbit.csv")
    covs = [c for seg in oem.read_oem((tmp_path / "orbit.oem").read_text()).segments for c in seg.covariances]
    assert len(covs) == len(t["unix_time_s"])
    sig = np.sqrt(np.array([np.diag(c) for _, _, c in covs])) * 1e3
    csv_sig = np.column_stack([t[c] for c in PROMISED["orbit"][7:13]])
    np.testing.assert_allclose(sig, csv_sig, rtol=1e-6)


# --------------------------------------------------------------------------- other paths
def test_no_valid_fix_still_replays(tmp_path, capsys):
    scen = tmp_path / "scen"
    assert (
        ground_main(["simulate", str(scen), "--duration", "300", "--seed", "3", "--gps-drop-fraction", "1", "--quiet"])
        == 0
    )
    out = tmp_path / "out"
    assert ground_main(["replay", str(scen), "--out", str(out), "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "no valid GPS fix" in text and "orbit.csv has no rows" in text
    assert (out / "orbit.csv").read_text().splitlines() == [",".join(n for n, _ in tb.COLUMNS["orbit"])]
    assert not (out / "orbit.oem").exists()
    s = json.loads((out / "summary.json").read_text())
    assert s["rows"]["orbit"] == 0 and s["n_valid_fixes"] == 0
    assert any(n["code"] == "no_fix" for n in s["notes"])
    for kind in ("attitude", "formation"):
        assert _header(out / f"{kind}.csv") == [n for n, _ in tb.COLUMNS[kind]]


def test_without_truth_residuals(tmp_path):
    scen = tmp_path / "batch"
    shutil.copytree(SAMPLE, scen, ignore=shutil.ignore_patterns("truth.npz", "sc1"))
    s = _replay(tmp_path / "out", scenario=scen)
    assert s["truth"] is None and "orbit" not in s
    g = s["residuals"]["gps_fix"]
    assert g["n"] >= 10
    # Residual = fix noise (10 m per axis) mostly: 3D RMS ~ 17 m.
    assert 5.0 < g["position_3d_rms_m"] < 35.0
    assert "plots/gps_fix_residuals.png" in s["plots"]
    assert all(p.endswith("_residuals.png") for p in s["plots"])
    if s["rows"]["formation"]:
        # Range-only (the sample's own-GPS range files) over 5 min: the window is too short to
        # fit, so every formation row is the uplinked prior (`acquiring`): the residuals against
        # it are written with that word, and left out of the statistics and the plot.
        r = s["residuals"]["range"]
        res = tb.read_csv(tmp_path / "out" / "range_residuals.csv")
        assert list(res) == [n for n, _ in tb.COLUMNS["range_residuals"]]
        assert res["residual_m"].size == r["n"] + r["n_acquiring"] == s["rows"]["range_residuals"] > 0
        assert set(res["quality"]) == {"acquiring"} and r["n"] == 0 and r["rms_m"] is None
        assert "plots/range_residuals.png" not in s["plots"]


def test_empty_inputs_replay_with_headers(tmp_path):
    """An empty sense.bin (and no range file) replays: every table its header, no rows.
    (A directory with no input at all is refused: tests/test_ground_cli.py.)"""
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "sense.bin").write_bytes(b"")
    s = _replay(tmp_path / "out", "--no-plots", scenario=tmp_path / "empty")
    assert s["rows"] == {"orbit": 0, "attitude": 0, "formation": 0, "partner_orbit": 0, "range_residuals": 0}


def test_missing_directory_is_an_error(tmp_path, capsys):
    assert ground_main(["replay", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_smooth_orbit_same_times_and_no_worse(sample_out, tmp_path):
    out, filt = sample_out
    s = _replay(tmp_path, "--smooth", "--no-plots")
    assert s["smoothed"]["orbit"] is True
    a, b = tb.read_csv(out / "orbit.csv"), tb.read_csv(tmp_path / "orbit.csv")
    # The smoother has rows at every sensor time from the first fix on (the filter's first
    # row comes after the first fix).
    assert set(a["t_sc_s"]) <= set(b["t_sc_s"])
    assert s["orbit"]["position_3d_rms_m"] <= filt["orbit"]["position_3d_rms_m"]  # measured 6.65 vs 6.88 m
    # (the filter's last rows are interpolated inside its cursor's step: within ~1e-5 of
    # the smoother's end, which propagates there)
    assert np.all(b["sigma_x_ecef_m"][-5:] <= a["sigma_x_ecef_m"][-5:] * (1.0 + 1e-4))


def test_the_smoothed_orbit_takes_the_configured_tunables():
    """The smoothed orbit filters with the replayed configuration's ``[orbit_filter]``, as
    the flight did (it took the defaults): without the fixes' slowly varying error states the
    sigmas shrink."""
    from ground.replay.smoothing import smoothed_orbit

    stream = build_message_stream(Paths(SAMPLE), Config())
    plain, _ = smoothed_orbit(stream, Config())
    independent, _ = smoothed_orbit(stream, Config(orbit_filter={"fix_error_correlated_sigma_m": 0.0}))
    assert len(plain["sigma_x_ecef_m"]) == len(independent["sigma_x_ecef_m"]) > 0
    assert np.median(np.asarray(independent["sigma_x_ecef_m"]) / np.asarray(plain["sigma_x_ecef_m"])) < 0.95


@pytest.mark.parametrize("kind", ["orbit", "attitude", "formation"])
def test_pipeline_agrees_with_in_process(sample_out, pipeline_out, kind):
    (a_dir, a_sum), (b_dir, b_sum) = sample_out, pipeline_out
    assert b_sum["mode"] == "pipeline" and a_sum["mode"] == "in_process"
    assert (b_dir / "pipeline_logs" / "bus.log").is_file()
    a, b = tb.read_csv(a_dir / f"{kind}.csv"), tb.read_csv(b_dir / f"{kind}.csv")
    assert list(a) == list(b)
    assert kind in b_sum["processors"] and kind in a_sum["processors"]
    assert a_sum["rows"][kind] == b_sum["rows"][kind] > 0
    for col in a:
        if col in tb.TEXT_COLUMNS:
            assert list(a[col]) == list(b[col])
        else:
            np.testing.assert_allclose(b[col], a[col], rtol=1e-12, atol=1e-9, err_msg=f"{kind}.{col}")


# --------------------------------------------------------------------------- wiring
class _Src:
    consumes = frozenset({"sensor"})

    def __init__(self):
        self.seen = []

    def handle(self, t, b):
        self.seen.append(t)
        return [("orbit_estimate", {"propagated": False, "k": b["k"]}), ("orbit_estimate", {"propagated": True})]


class _Sink:
    consumes = frozenset({"sensor", "orbit_estimate"})

    def __init__(self):
        self.seen = []

    def handle(self, t, b):
        self.seen.append((t, b.get("k")))
        if b.get("k") == 1:
            raise RuntimeError("bad message")
        return [("estimator_note", {"estimator": "x", "code": "c", "text": "t"})] if t == "sensor" else []


def test_feed_routes_outputs_onward_only(capsys):
    src, sink = _Src(), _Sink()
    run = replay_core.ReplayRun("in_process", ["src", "sink"], {})
    replay_core.feed([sink, src], ["sink", "src"], [("sensor", {"k": 0})], run)
    assert sink.seen == [("sensor", 0)]  # an earlier processor never sees a later one's output
    src2, sink2 = _Src(), _Sink()
    run = replay_core.ReplayRun("in_process", ["src", "sink"], {})
    replay_core.feed([src2, sink2], ["src", "sink"], [("sensor", {"k": 0}), ("sensor", {"k": 1})], run)
    # The estimate made at a sample reaches the next processor before the sample itself.
    assert sink2.seen == [
        ("orbit_estimate", 0),
        ("orbit_estimate", None),
        ("sensor", 0),
        ("orbit_estimate", 1),
        ("orbit_estimate", None),
        ("sensor", 1),
    ]
    assert [b["k"] for b in run.estimates["orbit_estimate"]] == [0, 1]  # propagated ones dropped
    assert run.handle_errors == {"src": 0, "sink": 2}
    assert len(run.notes) == 1
    assert "sink failed" in capsys.readouterr().err


def test_every_processor_runs_in_process(sample_out):
    """No processor is optional: all three run, none is reported missing (an import error
    is a failure of this build, not a skipped estimator)."""

    _, s = sample_out
    assert list(replay_core.PROCESSORS) == ["orbit", "attitude", "formation"]
    assert s["processors"] == ["orbit", "attitude", "formation"] and s["missing_processors"] == {}


# --------------------------------------------------------------------------- truth maths
def test_truth_interpolation_and_perfect_estimates_have_zero_error():
    truth = tr.find_truth(SAMPLE)
    a = truth.arrays
    t = a["t_gps_s"][10:200:7] + 0.37
    r, _ = tr.hermite_rv(a["t_gps_s"], a["r_ecef_m"][0], a["v_ecef_m_s"][0], a["t_gps_s"][10:200:7])
    np.testing.assert_allclose(r, a["r_ecef_m"][0][10:200:7], atol=1e-6)
    # Between grid points Hermite agrees with a 2-s-step interpolation of the same truth.
    r_half, _ = tr.hermite_rv(a["t_gps_s"][::2], a["r_ecef_m"][0][::2], a["v_ecef_m_s"][0][::2], a["t_gps_s"][1:-1:2])
    assert np.max(np.abs(r_half - a["r_ecef_m"][0][1:-1:2])) < 1e-3
    r_t, v_t = tr.hermite_rv(a["t_gps_s"], a["r_ecef_m"][0], a["v_ecef_m_s"][0], t)
    e = tr.orbit_errors(truth, t, r_t, v_t)
    assert np.all(e["dr_ecef_m"] == 0) and np.all(e["dv_ecef_m_s"] == 0)
    # Attitude: slerp hits the grid; a perfect estimate has zero error; a known small error is recovered.
    q = tr.slerp(a["t_gps_s"], a["q_body_to_gcrs"][0], t)
    unix = utc_unix_from_gps(t)
    bias_body = np.radians(a["gyro_bias_imu_deg_s"][0][0] @ a["imu_to_body"].T)
    ea = tr.attitude_errors(truth, unix, q, np.tile(bias_body, (t.size, 1)))
    assert np.max(ea["angle_rad"]) < 1e-12 and np.max(np.abs(ea["dbias_rad_s"])) < 1e-12
    d = np.array([1e-3, -2e-3, 0.5e-3])
    dq = np.concatenate([[np.cos(np.linalg.norm(d) / 2)], np.sin(np.linalg.norm(d) / 2) * d / np.linalg.norm(d)])
    q_est = quat_multiply_array(q, dq)
    ea = tr.attitude_errors(
        truth, unix, q_est, np.tile(bias_body, (t.size, 1)), sigma_att_rad=np.full((t.size, 3), 1e-3)
    )
    np.testing.assert_allclose(ea["dtheta_rad"], np.tile(d, (t.size, 1)), atol=1e-12)
    np.testing.assert_allclose(ea["nees"], np.sum((d / 1e-3) ** 2), rtol=1e-9)
    # Formation: peer 1's true relative position has zero error; a 1-m along-LOS offset shows in LOS.
    pid = int(a["radio_id"][1])
    r1, _ = tr.hermite_rv(a["t_gps_s"], a["r_ecef_m"][1], a["v_ecef_m_s"][1], t)
    dr = r1 - r_t
    ef = tr.formation_errors(truth, unix, np.full(t.size, pid), dr + dr / np.linalg.norm(dr, axis=1, keepdims=True))
    np.testing.assert_allclose(ef["los_err_m"], 1.0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(ef["dr_err_m"], axis=1), 1.0, atol=1e-6)


def test_truth_lookup_for_a_sub_spacecraft(tmp_path):
    assert tr.find_truth(SAMPLE / "sc1").index == 1
    assert tr.find_truth(SAMPLE, spacecraft="sc1").index == 1
    assert tr.find_truth(tmp_path) is None
    with pytest.raises(ValueError):
        tr.find_truth(SAMPLE, spacecraft="nope")


def test_an_in_process_replay_publishes_the_same_whatever_the_machine_stalls(monkeypatch):
    """A handler call that runs out of its wall-clock budget leaves work for the next call
    and publishes other epochs; with the flight's 0.5 s a stall of the machine changed what
    a replay published (a Monte Carlo campaign's one-worker and two-worker tables differed).
    In process the budget is the configuration's largest: stalls of 2 s all through the
    replay change nothing."""
    import time as real_time

    import msgpack

    from pygnc.config import config_for_home
    from pygnc.processors import admission

    scen = SAMPLE
    calm = replay_core.run_in_process(scen, config_for_home(scen)).estimates
    calls = {"n": 0}

    class StallingClock:
        """time for admission.Budget: 2 s lost at every 20th reading."""

        def __getattr__(self, name):
            return getattr(real_time, name)

        @staticmethod
        def perf_counter():
            calls["n"] += 1
            return real_time.perf_counter() + 2.0 * (calls["n"] // 20)

    monkeypatch.setattr(admission, "time", StallingClock())
    stalled = replay_core.run_in_process(scen, config_for_home(scen)).estimates
    assert calls["n"] > 100
    assert {k: len(v) for k, v in stalled.items()} == {k: len(v) for k, v in calm.items()}
    for kind in calm:  # (bytes: NaN fields compare unequal as floats)
        assert msgpack.packb(stalled[kind]) == msgpack.packb(calm[kind]), kind


def test_formation_statistics_leave_the_acquiring_placeholders_out():
    """A range-only partner's rows of quality ``acquiring`` are its prior standing in, not an
    estimate: the truth statistics leave them out and count them (a 10-minute scenario's
    partner, never out of acquisition, read 2.3 km of "relative position 3D RMS")."""
    from ground.outputs.summary import formation_summary

    n = 6
    table = {
        "unix_time_s": np.arange(n, dtype=float) * 60.0,
        "peer_id": np.full(n, 0x4B),
        "quality": np.array(["acquiring"] * 3 + ["ok"] * 3),
    }
    err = {
        "dr_err_m": np.array([[2000.0, 0, 0]] * 3 + [[3.0, 4.0, 0]] * 3),
        "los_err_m": np.array([2000.0] * 3 + [3.0] * 3),
        "nees": np.array([1e6] * 3 + [3.0] * 3),
        "dof": 3,
    }
    d = formation_summary(table, err, 0.0)["peers"]["0x4B"]
    assert d["n_rows"] == 6 and d["n_acquiring"] == 3 and d["n_evaluated"] == 3
    assert d["relative_position_3d_rms_m"] == pytest.approx(5.0) and d["nees"]["mean"] == pytest.approx(3.0)


def test_range_residuals_carry_the_word_of_the_estimate_they_are_taken_against():
    """A range between a prior's row (``acquiring``) and an estimate's is taken against the
    prior in part: it says ``acquiring``, and the statistics leave it out (a replay's range
    residuals read 8.58 m RMS with them, 0.58 m without)."""
    from ground.outputs import residuals as rs
    from ground.replay.statistics import residual_stats

    t = np.arange(6, dtype=float) * 10.0
    formation = {
        "t_sc_s": t,
        "peer_id": np.full(6, 0x4B),
        "quality": np.array(["acquiring"] * 3 + ["ok", "ambiguous", "ok"], dtype=object),
        "range_bias_m": np.zeros(6),
        **{f"d{a}_ecef_m": np.full(6, 1000.0 if a == "x" else 0.0) for a in "xyz"},
        **{f"dv{a}_ecef_m_s": np.zeros(6) for a in "xyz"},
    }
    ranges = [{"t_sc_s": s, "peer_id": 0x4B, "valid": True, "range_m": 1001.0} for s in (5.0, 25.0, 31.0, 39.0)]
    r = rs.range_residuals(formation, ranges)
    assert list(r["quality"]) == ["acquiring", "acquiring", "ok", "ambiguous"]
    assert list(rs.estimated(r)) == [False, False, True, True]
    np.testing.assert_allclose(r["residual_m"], 1.0)
    table = tb.range_residual_table(r, None)
    assert list(table) == [n for n, _ in tb.COLUMNS["range_residuals"]]
    stats = residual_stats({"orbit": {"t_gps_s": np.zeros(0)}}, [], r, None, None)["range"]
    assert stats["n"] == 2 and stats["n_acquiring"] == 2
