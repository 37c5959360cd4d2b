"""Attitude scenario and error helpers shared by the attitude tests and bench/bench_attitude.py.

The issue's scenario (gyro noise 0.025 deg/s and bias up to 1 deg/s, magnetometer noise
0.6 µT and bias up to 5 µT, OPT3001 faces with saturation and albedo, tumbling at 2-5
deg/s); the core driven at the samples' stated epochs; errors at those epochs.
"""

from __future__ import annotations

import numpy as np
from pygnc import frames
from pygnc.config import Config
from pygnc.estimation import attitude_mekf as am
from pygnc.formats.sense import decode_sense
from pygnc.timebase import fit_clock_map
from scipy.spatial.transform import Rotation, Slerp

from ground.sim import scenario as scn


def issue_settings(seed: int, duration_s: float) -> scn.ScenarioSettings:
    s = scn.ScenarioSettings()
    s.seed = seed
    s.duration_s = duration_s
    s.spacecraft = s.spacecraft[:1]
    s.sensors.gyro_bias_max_deg_s = 1.0
    s.sensors.mag_bias_max_ut = 5.0
    assert s.sensors.gyro_noise_deg_s == 0.025 and s.sensors.mag_noise_ut == 0.6
    assert (s.attitude.rate_min_deg_s, s.attitude.rate_max_deg_s) == (2.0, 5.0)
    return s


def stated_times(batch):
    """The flight time base: each sample's whole-second stamp mapped to GPS time by the clock
    map fitted to the batch's valid fixes (as ingest does), and that epoch's 1-sigma
    uncertainty (the map's residual RMS, as the processor uses it)."""
    v = batch.fixes[batch.fixes["valid"]]
    cm = fit_clock_map(v["t_sc_s"], v["t_gps_s"])
    return np.asarray(cm.gps_from_sc(batch.sensors["t_sc_s"].astype(float)), dtype=float), cm.residual_rms_s


def run_core(scenario, cfg: am.AttitudeFilterConfig | None = None, time_tag_sigma_s: float | None = None):
    """Drive AttitudeEstimator with the decoded sensors at their stated epochs (stamps through
    the clock map) and truth positions at the true sample times."""
    z = scenario.truth
    config = Config()
    batch = decode_sense(scenario.files["sc0"]["sense.bin"], config)
    sens = batch.sensors
    rib = np.asarray(config.imu_to_body, dtype=float).reshape(3, 3)
    idx = np.rint(z["sensor_t_gps_s"] - z["t_gps_s"][0]).astype(int)
    assert len(sens) == idx.size
    t_stated, sigma_t = stated_times(batch)
    sigma_t = sigma_t if time_tag_sigma_s is None else time_tag_sigma_s
    est = am.AttitudeEstimator(cfg)
    outs = []
    for k in range(len(sens)):
        i = idx[k]
        t = float(t_stated[k])
        env = am.environment_at(t, z["r_ecef_m"][0][i], z["r_gcrs_m"][0][i], frames.gcrs_from_itrs_matrix(t),
                                config.sun_lux_at_1au, config.albedo_reflectivity)
        w = rib @ np.radians(sens["gyro_deg_s"][k])
        m = rib @ sens["mag_ut"][k]
        outs.append(est.step(t, w, m, sens["sun_lux"][k], sens["sun_saturated"][k], env, sigma_t))
    return est, outs, idx


def truth_attitude_at(z, t_gps_s):
    """Truth body-to-GCRS rotation (scipy) at GPS times (slerp on the 1-Hz grid)."""
    s = Slerp(z["t_gps_s"], Rotation.from_quat(z["q_body_to_gcrs"][0][:, [1, 2, 3, 0]]))
    return s(np.clip(t_gps_s, z["t_gps_s"][0], z["t_gps_s"][-1]))


def errors(scenario, outs, idx):
    """Errors at each estimate's stated epoch (what a user of the estimate compares with)."""
    z = scenario.truth
    rib = np.asarray(z["imu_to_body"])
    rt = truth_attitude_at(z, np.array([o.t_s for o in outs]))
    qe = np.array([o.q_body_to_gcrs for o in outs])
    err = (rt.inv() * Rotation.from_quat(qe[:, [1, 2, 3, 0]])).as_rotvec()
    cov = np.array([o.cov[:3, :3] for o in outs])
    bias_true = np.radians(z["gyro_bias_imu_deg_s"][0][idx] @ rib.T)
    db = np.array([o.gyro_bias_rad_s for o in outs]) - bias_true
    sig_b = np.array([np.sqrt(np.diag(o.cov)[3:6]) for o in outs])
    t = z["sensor_t_gps_s"] - z["sensor_t_gps_s"][0]
    return {
        "angle_deg": np.degrees(np.linalg.norm(err, axis=1)),
        "nees": np.einsum("ni,ni->n", err, np.linalg.solve(cov, err[:, :, None])[:, :, 0]),
        "nees_bias": np.sum((db / sig_b) ** 2, axis=1),
        "dbias_deg_s": np.degrees(db),
        "eclipse": z["eclipse"][0][idx],
        "t_s": t,
        "valid": np.array([o.valid_attitude for o in outs]),
        "mag_bias_err_ut": np.array([o.mag_bias_ut for o in outs]) - rib @ z["mag_bias_imu_ut"][0],
    }
