"""Fixed-interval RTS smoother of the attitude MEKF (ground use): better than the filter on
the issue's 3-h scenario, consistent, off by default in flight, and what replay --smooth
writes to attitude.csv."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from attitude_support import errors, run_core

from ground.__main__ import main as ground_main
from ground.outputs import tables as tb
from ground.replay import cli as replay
from ground.replay.attitude_smoother import smooth_estimator, smoothed_messages
from pygnc.config import Config
from pygnc.estimation import attitude_mekf as am
from pygnc.formats.sense import decode_sense
from pygnc.formats.settings import DecodeSettings
from pygnc.processors.attitude import AttitudeProcessor

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample_5min"


@pytest.fixture(scope="module")
def smoothed_3h(single_sc_3h):
    """Seed 21, 3 h (the scenario of test_attitude_mekf), the filter run with recording on."""
    scenario, _ = single_sc_3h
    orig = am.AttitudeEstimator.__init__
    with pytest.MonkeyPatch.context() as mp:  # run_core builds its own estimator
        mp.setattr(am.AttitudeEstimator, "__init__", lambda self, cfg=None, record_history=False: orig(self, cfg, True))
        est, outs, idx = run_core(scenario)
    sm = smooth_estimator(est)
    return scenario, est, outs, sm, errors(scenario, outs, idx), errors(scenario, sm, idx)


def _rms(x):
    return math.sqrt(float(np.mean(np.square(x))))


def test_smoother_beats_filter_on_3h_issue_scenario(smoothed_3h):
    _, est, outs, sm, ef, es = smoothed_3h
    assert len(sm) == len(outs) == est.n_steps
    settled = ef["t_s"] >= 1800.0
    assert es["valid"][settled].all()
    ecl = settled & ef["eclipse"]
    # Measured (seed 21, after 30 min): filtered 0.716 deg RMS, smoothed 0.475 deg.  In eclipse
    # the smoother is not always better on other seeds: the eclipse error is dominated by
    # correlated field-model and time-tag errors, which no smoother removes.
    rms_f, rms_s = _rms(ef["angle_deg"][settled]), _rms(es["angle_deg"][settled])
    assert rms_s < 0.8 * rms_f
    assert _rms(es["angle_deg"][ecl]) < _rms(ef["angle_deg"][ecl])
    # Gyro bias: smoothed max below the filtered one.  Its RMS per axis is not always lower: with
    # the gyro's misalignment estimated, the bias and the turn's [w]x d trade off on a steady
    # tumble (RMS filtered -> smoothed, deg/s: seed 21 0.0019 -> 0.0021, bias NEES 3.0; seeds 5
    # and 7 0.0021 -> 0.0011 and 0.0016 -> 0.0011; without the turns 0.0018 -> 0.0010 on 21).
    assert np.abs(es["dbias_deg_s"][settled]).max() < np.abs(ef["dbias_deg_s"][settled]).max()
    assert _rms(es["dbias_deg_s"][settled]) < 1.25 * _rms(ef["dbias_deg_s"][settled])
    # Consistency: smoothed attitude NEES mean 2.11 (filtered 2.10), 98.9 % of epochs inside the
    # 95 % bound (filtered 99.2 %); bias NEES mean 1.31 (filtered 1.82).
    nees = es["nees"][settled]
    assert 1.5 <= nees.mean() <= 4.5
    assert np.mean(nees < 7.815) >= 0.88
    assert 1.0 <= es["nees_bias"][settled].mean() <= 8.0
    # The smoothed covariance is never larger than the filtered one.
    tr_f = np.array([np.trace(o.cov[:3, :3]) for o in outs])[settled]
    tr_s = np.array([np.trace(o.cov[:3, :3]) for o in sm])[settled]
    assert np.all(tr_s <= tr_f * (1 + 1e-9))


def test_smoother_with_the_consider_parameters(single_sc_3h):
    """With the default scale-factor consider parameters the smoother takes their share of
    each step's cross-covariance: still better than the filter, and its covariance covers
    its error.  Measured (seed 21, after 30 min): smoothed 0.48 deg RMS against filtered
    0.79, NEES mean 2.1, gyro bias within 0.0058 deg/s (the filter's 0.0066).  Without that
    share (the plain ``P+ F^T``; with a 1-% gyro sigma) the smoothed gyro bias was 0.083
    deg/s off, ten times the filter's."""
    scenario, _ = single_sc_3h
    orig = am.AttitudeEstimator.__init__
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(am.AttitudeEstimator, "__init__", lambda self, cfg=None, record_history=False: orig(self, cfg, True))
        # the scale factors' (in the propagation); the sun faces' normals (updates alone) off:
        # on the simulator's exact faces they make any NEES small
        est, outs, idx = run_core(scenario, am.AttitudeFilterConfig(sun_face_normal_sigma_rad=0.0))
    assert est.mekf.p_xc is not None
    sm = smooth_estimator(est)
    ef, es = errors(scenario, outs, idx), errors(scenario, sm, idx)
    settled = ef["t_s"] >= 1800.0
    rms_f, rms_s = _rms(ef["angle_deg"][settled]), _rms(es["angle_deg"][settled])
    assert rms_s < 0.8 * rms_f
    assert np.abs(es["dbias_deg_s"][settled]).max() < 2.0 * np.abs(ef["dbias_deg_s"][settled]).max()
    nees = es["nees"][settled]
    assert 1.0 <= nees.mean() <= 4.5 and np.mean(nees < 7.815) >= 0.9


def test_a_reopened_hard_iron_splits_the_interval(single_sc_3h):
    """The magnetometer's hard iron stepped by 3 uT an hour in: the filter re-opens the bias
    inside that step's update.  Smoothed across it, the data after the step carried the new
    bias back over the hour before with the old confidence (398 of 713 smoothed estimates
    there past the 99.9 % bound, up to 6.6 deg off, the bias 3 uT off with a 0.02-uT sigma);
    the step's record now starts a new interval: none."""
    scenario, _ = single_sc_3h
    config = Config()
    sens = decode_sense(scenario.files["sc0"]["sense.bin"], DecodeSettings.from_config(config)).sensors.copy()
    sens["mag_ut"][720:] += np.array([2.0, -2.0, 1.0])
    orig = am.AttitudeEstimator.__init__
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(am.AttitudeEstimator, "__init__", lambda self, cfg=None, record_history=False: orig(self, cfg, True))
        est, outs, idx = run_core(scenario, sensors=sens)
    assert est.mekf.n_mag_bias_reopened >= 1
    sm = smooth_estimator(est)
    for e in (errors(scenario, outs, idx), errors(scenario, sm, idx)):
        before = e["valid"] & (np.arange(len(outs)) < 720)
        assert before.sum() > 600 and int(np.sum(e["nees"][before] > 16.27)) == 0


def test_last_step_is_the_filtered_one_and_fields_match(smoothed_3h):
    _, _, outs, sm, _, _ = smoothed_3h
    a, b = outs[-1], sm[-1]
    np.testing.assert_allclose(b.q_body_to_gcrs, a.q_body_to_gcrs, atol=1e-12)
    np.testing.assert_allclose(b.cov, a.cov, atol=1e-15)
    np.testing.assert_allclose(b.rate_body_rad_s, a.rate_body_rad_s, atol=1e-15)
    for o, s in zip(outs, sm):
        assert (o.t_s, o.valid_attitude, o.in_eclipse, o.sun_faces_used) == (
            s.t_s,
            s.valid_attitude,
            s.in_eclipse,
            s.sun_faces_used,
        )
        assert abs(np.linalg.norm(s.q_body_to_gcrs) - 1.0) < 1e-12


def test_recording_is_off_by_default_and_does_not_change_the_filter(smoothed_3h):
    scenario, _, outs_rec, _, _, _ = smoothed_3h
    assert am.AttitudeEstimator().record_history is False
    p = AttitudeProcessor(Config())
    assert p.record_history is False and p.est.record_history is False
    est, outs, _ = run_core(scenario)
    assert est.history == []
    for a, b in zip(outs, outs_rec):
        np.testing.assert_array_equal(a.q_body_to_gcrs, b.q_body_to_gcrs)


def test_processor_smooth_without_recording_refuses():
    run = replay.run_in_process(SAMPLE, Config())
    proc = run.extra["processor_objects"]["attitude"]
    with pytest.raises(RuntimeError, match="record_history"):
        smoothed_messages(proc)


def test_replay_smooth_attitude_rows_come_from_the_smoother(tmp_path):
    assert ground_main(["replay", str(SAMPLE), "--out", str(tmp_path / "f"), "--quiet", "--no-plots"]) == 0
    assert ground_main(["replay", str(SAMPLE), "--out", str(tmp_path / "s"), "--quiet", "--no-plots", "--smooth"]) == 0
    s = json.loads((tmp_path / "s" / "summary.json").read_text())
    f = json.loads((tmp_path / "f" / "summary.json").read_text())
    assert s["smoothed"]["attitude"] is True and f["smoothed"]["attitude"] is False
    csv_f, csv_s = tb.read_csv(tmp_path / "f" / "attitude.csv"), tb.read_csv(tmp_path / "s" / "attitude.csv")
    # One row per processed sample, same times as the filtered rows.
    np.testing.assert_array_equal(csv_s["t_sc_s"], csv_f["t_sc_s"])
    # The rows are the smoother's outputs.
    run = replay.run_in_process(SAMPLE, Config(), record_history=True)
    msgs = smoothed_messages(run.extra["processor_objects"]["attitude"])
    assert all(t == "attitude_estimate" and not b["propagated"] for t, b in msgs)
    direct = tb.attitude_table([b for _, b in msgs])
    for col in ("qw", "qx", "qy", "qz", "gyro_bias_x_rad_s"):
        np.testing.assert_allclose(csv_s[col], direct[col], rtol=1e-12, atol=1e-12)
    # ... and not the filtered ones (except the last, where the two agree).
    assert np.max(np.abs(csv_s["qx"][:-1] - csv_f["qx"][:-1])) > 1e-4
    np.testing.assert_allclose(csv_s["qx"][-1], csv_f["qx"][-1], atol=1e-9)
    # Measured on data/sample_5min (54 evaluated rows): filtered 0.81 deg RMS, gyro bias 0.031 deg/s
    # RMS; smoothed 0.40 deg, 0.0049 deg/s.
    assert s["attitude"]["angle_rms_deg"] < f["attitude"]["angle_rms_deg"]
    assert s["attitude"]["gyro_bias_3d_rms_deg_s"] < f["attitude"]["gyro_bias_3d_rms_deg_s"]


def test_an_invalid_step_splits_the_interval(smoothed_3h):
    """A step without a valid attitude (lost filter, no position before the start) ends one
    interval: the step before it is its interval's last (= filtered), the later steps are
    smoothed exactly as before."""
    import dataclasses

    _, est, outs, sm, _, _ = smoothed_3h
    k = 1000
    saved = est.history
    try:
        est.history = list(saved)
        est.history[k] = dataclasses.replace(saved[k], prior=None, p_post=None)
        sm2 = smooth_estimator(est)
    finally:
        est.history = saved
    np.testing.assert_allclose(sm2[k - 1].q_body_to_gcrs, outs[k - 1].q_body_to_gcrs, atol=1e-12)
    assert sm2[k] is saved[k].out
    for a, b in zip(sm2[k + 1 :], sm[k + 1 :]):
        np.testing.assert_array_equal(a.q_body_to_gcrs, b.q_body_to_gcrs)
    assert not np.allclose(sm2[k - 2].q_body_to_gcrs, outs[k - 2].q_body_to_gcrs, atol=1e-9)
