"""Attitude scenario and error helpers shared by the attitude tests and bench/bench_attitude.py.

The issue's scenario (gyro noise 0.025 deg/s and bias up to 1 deg/s, magnetometer noise
0.6 µT and bias up to 5 µT, OPT3001 faces with saturation and albedo, tumbling at 2-5
deg/s); the core driven at the samples' stated epochs; errors at those epochs.
"""

from __future__ import annotations

import math

import numpy as np
from processor_support import EVERY
from scipy.spatial.transform import Rotation, Slerp

from ground.simulate import scenario as scn
from pygnc import frames
from pygnc.estimation import attitude_mekf as am
from pygnc.estimation.attitude_environment import environment_at
from pygnc.formats.sense import decode_sense
from pygnc.formats.settings import DecodeSettings
from pygnc.timebase import fit_clock_map


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


#: The filter without consider parameters (scale factors, sun-face normals): for the tests
#: that hold it to the simulator's truth, whose sensors have no such errors (the consider
#: parameters would only make it conservative there); tests/test_attitude_processor.py
#: covers them.  The misalignments stay estimated (states, not consider parameters).
NO_SENSOR_ERRORS = {"mag_scale_sigma": 0.0, "gyro_scale_sigma": 0.0, "sun_face_normal_sigma_rad": 0.0}
CLEAN = am.AttitudeFilterConfig(**NO_SENSOR_ERRORS)
#: The 9-state filter (no misalignments estimated): for the tests of the propagation's own
#: covariance terms, which a misalignment's uncertainty would add to.
NINE_STATES = {"mag_misalignment_sigma_rad": 0.0, "gyro_misalignment_sigma_rad": 0.0}


def run_core(
    scenario, cfg: am.AttitudeFilterConfig | None = None, time_tag_sigma_s: float | None = None, sensors=None, keep=None
):
    """Drive AttitudeEstimator with the decoded sensors (or *sensors*, the same records
    altered; *keep*: a mask of the samples given to it, the rest lost) at their stated
    epochs (stamps through the clock map) and truth positions at the true sample times.
    *cfg* default: :data:`CLEAN` (the simulator's sensors have no scale-factor errors)."""
    z = scenario.truth
    config = EVERY
    batch = decode_sense(scenario.files["sc0"]["sense.bin"], DecodeSettings.from_config(config))
    sens = batch.sensors if sensors is None else sensors
    rib = np.asarray(config.imu_to_body, dtype=float).reshape(3, 3)
    idx = np.rint(z["sensor_t_gps_s"] - z["t_gps_s"][0]).astype(int)
    assert len(sens) == idx.size
    t_stated, sigma_t = stated_times(batch)
    sigma_t = sigma_t if time_tag_sigma_s is None else time_tag_sigma_s
    est = am.AttitudeEstimator(cfg or CLEAN)
    outs = []
    for k in range(len(sens)):
        if keep is not None and not keep[k]:
            continue
        i = idx[k]
        t = float(t_stated[k])
        env = environment_at(
            t,
            z["r_ecef_m"][0][i],
            z["r_gcrs_m"][0][i],
            frames.gcrs_from_itrs_matrix(t),
            config.sun_lux_at_1au,
            config.albedo_reflectivity,
        )
        w = rib @ np.radians(sens["gyro_deg_s"][k])
        m = rib @ sens["mag_ut"][k]
        outs.append(est.step(t, w, m, sens["sun_lux"][k], sens["sun_saturated"][k], env, sigma_t))
    return est, outs, idx if keep is None else idx[keep]


def truth_attitude_at(z, t_gps_s):
    """Truth body-to-GCRS rotation (scipy) at GPS times (slerp on the 1-Hz grid)."""
    s = Slerp(z["t_gps_s"], Rotation.from_quat(z["q_body_to_gcrs"][0][:, [1, 2, 3, 0]]))
    return s(np.clip(t_gps_s, z["t_gps_s"][0], z["t_gps_s"][-1]))


def errors(scenario, outs, idx, keep=None):
    """Errors at each estimate's stated epoch (what a user of the estimate compares with);
    *keep*: run_core's mask, when it was given one."""
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
    t = t if keep is None else t[keep]
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


#: The live IMU the attitude tests and bench simulate: IMU380-class gyro (angular random walk
#: 0.3 deg/sqrt(h) = 0.005 deg/s/sqrt(Hz); the S1 packet's 1260/2^16 deg/s LSB), 100 Hz,
#: mounted turned 90 deg about body z (so the device-to-body rotation is exercised).
IMU_RATE_HZ = 100.0
IMU_NOISE_DENSITY_DEG_S_SQRT_HZ = 0.005
IMU_LSB_DEG_S = 1260.0 / 65536.0
IMU_DEVICE_TO_BODY = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def imu_samples(
    truth,
    k: int = 0,
    seed: int = 0,
    bias_max_deg_s: float = 0.3,
    rate_hz: float = IMU_RATE_HZ,
    noise_density_deg_s_sqrt_hz: float = IMU_NOISE_DENSITY_DEG_S_SQRT_HZ,
    device_to_body=IMU_DEVICE_TO_BODY,
    gaps_s=(),
    calibration_error=None,
):
    """A live IMU's samples from spacecraft *k*'s truth: ``(t_sc_s (n,), rate_imu_rad_s (n, 3),
    bias_imu_rad_s (3,))``.  Rates: the truth body rate (cubic spline of the 1-Hz grid) in the
    device's axes, plus a constant bias drawn in +-*bias_max_deg_s*, white noise of the
    given density, quantised to the IMU380's LSB.  Times: the spacecraft clock (truth's
    unrounded reading) less a fixed 0.4 s (the Pi's clock is set from a whole-second stamp).
    *gaps_s*: (start, end) pairs, seconds from the start, without samples (an unplugged IMU).
    *calibration_error*: ``M`` (3 x 3, device axes): the IMU reads ``(I + M)`` times the true
    rate (scale factors' errors on the diagonal, misalignments off it)."""
    from scipy.interpolate import CubicSpline

    rng = np.random.default_rng(seed)
    tt = truth["t_gps_s"]
    t = np.arange(tt[0], tt[-1], 1.0 / rate_hz)
    keep = np.ones(t.size, bool)
    for a, b in gaps_s:
        keep &= ~((t - tt[0] >= a) & (t - tt[0] < b))
    t = t[keep]
    w_body = CubicSpline(tt, truth["w_body_rad_s"][k], axis=0)(t)
    r_db = np.asarray(device_to_body, dtype=float).reshape(3, 3)
    bias = np.radians(rng.uniform(-bias_max_deg_s, bias_max_deg_s, 3))
    sigma = math.radians(noise_density_deg_s_sqrt_hz) * math.sqrt(rate_hz)
    w_dev = w_body @ r_db  # (R^T w)^T = w^T R
    if calibration_error is not None:
        w_dev = w_dev @ (np.eye(3) + np.asarray(calibration_error, dtype=float)).T
    w_dev = w_dev + bias + sigma * rng.standard_normal(w_body.shape)
    lsb = math.radians(IMU_LSB_DEG_S)
    w_dev = np.round(w_dev / lsb) * lsb
    t_sc = np.interp(t, tt, truth["t_sc_s"][k]) - 0.4
    return t_sc, w_dev, bias


def with_imu(
    messages, t_sc_s, rate_imu_rad_s, block_s: float = 0.1, lead_s: float = 1.0, replugged_at_s: float | None = None
) -> list:
    """*messages* with ``imu_samples`` blocks of *block_s* inserted in spacecraft-time order, as
    they reach the attitude task live: every block whose last sample is at most *lead_s* after
    a sensor sample's (whole-second) stamp comes before that sample.  *replugged_at_s*: from
    this spacecraft time on the blocks are of a second connection."""
    edges = np.flatnonzero(np.diff(np.floor((t_sc_s - t_sc_s[0]) / block_s))) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [t_sc_s.size]))
    blocks = [
        (
            float(t_sc_s[e - 1]),
            {
                "device": "sim",
                "connection": 1 if replugged_at_s is None or t_sc_s[s] < replugged_at_s else 2,
                "first_index": int(s),
                "lost": 0,
                "t_sc_s": t_sc_s[s:e].tolist(),
                "t_device_s": t_sc_s[s:e].tolist(),
                "t_rx_sc_s": t_sc_s[s:e].tolist(),
                "rate_imu_rad_s": rate_imu_rad_s[s:e].tolist(),
                "accel_imu_m_s2": [[0.0, 0.0, 0.0]] * int(e - s),
                "temp_c": [20.0] * int(e - s),
                "status": [0] * int(e - s),
            },
        )
        for s, e in zip(starts, ends)
    ]
    out, j = [], 0
    for t, b in messages:
        if t == "sensor":
            while j < len(blocks) and blocks[j][0] <= b["t_sc_s"] + lead_s:
                out.append(("imu_samples", blocks[j][1]))
                j += 1
        out.append((t, b))
    out += [("imu_samples", blk) for _, blk in blocks[j:]]
    return out


def processor_accuracy(truth, messages, config, imu_bias_body_rad_s=None, settle_s: float = 1800.0) -> dict:
    """Orbit and attitude processors over *messages* as the task tree runs them; attitude
    statistics after *settle_s* against spacecraft 0's truth, the processor's counters and its
    CPU seconds.  The gyro-bias error is against the BMX160's truth bias, or against
    *imu_bias_body_rad_s* (body axes) when the live IMU propagates."""
    import time

    import processor_support as ps

    from pygnc.estimation import chi2
    from pygnc.processors.attitude import AttitudeProcessor
    from pygnc.processors.orbit import OrbitProcessor

    op, ap = OrbitProcessor(config), AttitudeProcessor(config)
    att, cpu = [], 0.0
    for t, b in messages:
        if t in op.consumes:
            for t2, b2 in op.handle(t, b):
                if t2 in ap.consumes:
                    tic = time.process_time()
                    att += ap.handle(t2, b2)
                    cpu += time.process_time() - tic
        if t in ap.consumes:
            tic = time.process_time()
            att += ap.handle(t, b)
            cpu += time.process_time() - tic
    est = [b for t, b in att if t == "attitude_estimate" and b["valid_attitude"]]
    tg, err, cov, db = ps.attitude_errors(truth, est)
    if imu_bias_body_rad_s is not None:
        db = np.array([b["gyro_bias_rad_s"] for b in est]) - np.asarray(imu_bias_body_rad_s)
    rel = tg - truth["t_gps_s"][0]
    s = rel >= settle_s
    ang = np.degrees(np.linalg.norm(err, axis=1))
    ecl = truth["eclipse"][0][np.clip(np.rint(rel).astype(int), 0, truth["t_gps_s"].size - 1)]
    nees = ps.nees(err, cov)
    return {
        "rel_s": rel,
        "angle_deg": ang,
        "nees": nees,
        "quality": np.array([b.get("quality", "") for b in est]),
        "counters": ap.counters(),
        "cpu_s": cpu,
        "rms_deg": float(np.sqrt(np.mean(ang[s] ** 2))),
        "rms_sun_deg": float(np.sqrt(np.mean(ang[s & ~ecl] ** 2))),
        "rms_eclipse_deg": float(np.sqrt(np.mean(ang[s & ecl] ** 2))),
        "max_deg": float(ang[s].max()),
        "bias_err_max_deg_s": float(np.degrees(np.abs(db[s]).max())),
        "nees_mean": float(nees[s].mean()),
        "in95": float(np.mean(nees[s] < chi2.quantile(0.95, 3))),
    }
