"""Information bounds of the orbit and attitude estimators on the simulator's truth.

What the measurements themselves allow, so that an estimator's error can be read as a
ratio to it (``bench/bench_orbit.py``, ``bench/bench_attitude.py``).  Each bound is the
Kalman filter of the linear-Gaussian problem about the truth - for a linear-Gaussian
problem the posterior Cramer-Rao bound, attained by that filter - with the truth's own
dynamics and sensor statistics, the unknowns a flight filter cannot know as states with
their priors, and nothing else.  Both the *expected* error (the filter's covariance, the
bound proper) and the *realised* one (the same filter driven by the scenario's own
measurement errors: what a perfect estimator would have made of this very data, which
scatters from seed to seed as an estimator's error does) are returned.

* :func:`orbit_bound`: GPS fixes (position and velocity in ECEF, the covariance the fix
  states) and the truth's dynamics (the error's transition is the flight model's about
  the truth trajectory: its gravity gradient is the truth's to ~1e-9 s^-2), with a drag
  scale and an SRP scale on the truth's own drag (NRLMSISE-00) and radiation pressure
  (:func:`ground.simulate.orbits.truth_nongravitational`) as unknown constants of prior sigma
  *drag_scale_sigma* and *srp_scale_sigma*: no estimator knows the spacecraft's ballistic
  coefficient or the day's density to better than that.  Both at 0 it is the floor of an
  estimator that knows the dynamics exactly.
* :func:`attitude_bound`: the gyro samples integrated exactly (the truth's rotation
  between samples, with the samples' white noise the only error - and its correlation:
  each sample enters the two steps either side of it), constant gyro and magnetometer
  biases, the magnetometer's field and noise, and each lit, unsaturated sun face's direct
  light with its noise (the albedo taken as known: it carries no information here).
"""

from __future__ import annotations

import math

import numpy as np

from pygnc.estimation import orbit_dynamics as od
from pygnc.estimation.gps_fix import GpsFix, fix_to_gcrs

__all__ = ["attitude_bound", "kalman_predict", "kalman_update", "orbit_bound"]

#: The OPT3001's full scale [lux]: a saturated face is a bound, no measurement.
_OPT3001_FULL_SCALE_LUX = 83_865.6


def kalman_predict(p, e, f, q=None, w=None):
    """The covariance *p* (n, n) and error *e* (n,) or (n, draws) across the transition *f*,
    with process noise of covariance *q* whose realisation is *w*: (p, e)."""
    p = f @ p @ f.T
    e = f @ e
    if q is not None:
        p = p + q
    if w is not None:
        e = e + w
    return p, e


def kalman_update(p, e, h, r, v):
    """The covariance *p* and error *e* after the measurement rows *h* (m, n) of noise
    covariance *r* (m, m) whose realisation is *v* (m,) or (m, draws) - Joseph form, so that
    the covariance stays that of the error for any gain: (p, e)."""
    gain = np.linalg.solve(h @ p @ h.T + r, h @ p).T
    ikh = np.eye(p.shape[0]) - gain @ h
    p = ikh @ p @ ikh.T + gain @ r @ gain.T
    return 0.5 * (p + p.T), ikh @ e + gain @ v


def _rms_after(x: np.ndarray, keep: np.ndarray) -> float:
    return float(math.sqrt(np.mean(x[keep]))) if keep.any() else math.nan


def orbit_bound(
    truth: dict,
    fixes: dict,
    *,
    drag_scale_sigma: float = 1.0,
    srp_scale_sigma: float = 0.3,
    step_s: int = 5,
    settle_s: float = 1800.0,
    seed: int = 0,
) -> dict:
    """The bound of the position and velocity from *fixes* (``simulate_gps_fixes``, valid
    ones only) on the brahe *truth* (1-s grid), after *settle_s*: ``expected_pos_m``,
    ``realised_pos_m`` (3D RMS), ``expected_vel_m_s``, ``realised_vel_m_s``, and
    ``t_gps_s``, ``pos_sigma_m`` (3D), ``nees`` (of the realised position and velocity, 6
    dof) at every *step_s* epoch.  The realised run starts
    the unknown scales off by a draw from their priors (*seed*)."""
    t_all = np.asarray(truth["t_gps_s"])
    t0 = float(t_all[0])
    idx = np.arange(0, t_all.size, int(step_s))
    times = t_all[idx]
    xt = np.concatenate([truth["r_gcrs_m"], truth["v_gcrs_m_s"]], axis=1)
    drag, srp = (np.zeros((idx.size, 3)), np.zeros((idx.size, 3)))
    if drag_scale_sigma or srp_scale_sigma:
        from ground.simulate.orbits import truth_nongravitational

        drag, srp = truth_nongravitational(truth, idx)
    model = od.DynamicsModel(zonal_j=od.ZONAL_J_EGM96, ballistic_coeff_kg_m2=None, tesseral_degree=8, dmc_tau_s=1e9)
    valid = np.asarray(fixes["valid"], dtype=bool)
    fix_at = {int(round(float(t) - t0)): i for i, t in enumerate(np.asarray(fixes["t_gps_s"])) if valid[i]}

    def meas(i):  # the fix with its reported sigmas, squared as the table holds them (float32)
        return fix_to_gcrs(GpsFix.from_table(fixes, i), fixes["pos_sigma_m"][i], fixes["vel_sigma_m_s"][i])

    first = min(fix_at)
    z, r_cov = meas(fix_at[first])
    n = 8
    p = np.zeros((n, n))
    p[:6, :6] = r_cov
    p[6, 6], p[7, 7] = drag_scale_sigma**2, srp_scale_sigma**2
    rng = np.random.default_rng(seed)
    e = np.concatenate([z - xt[first], rng.standard_normal(2) * [drag_scale_sigma, srp_scale_sigma]])
    eye = np.eye(n)
    h_fix = eye[:6]
    out_t, sig_p, err_p, sig_v, err_v, nees = [], [], [], [], [], []
    for k in range(1, idx.size):
        if times[k] - t0 < first:
            continue
        h = float(times[k] - times[k - 1])
        i0 = int(idx[k - 1])
        _, phi = od.propagate(np.concatenate([xt[i0], np.zeros(3)]), h, model, t_gps_s=float(times[k - 1]))
        f = eye.copy()
        f[:6, :6] = phi[:6, :6]
        for j, a in ((6, drag), (7, srp)):
            am = 0.5 * (a[k - 1] + a[k])
            f[:3, j] = 0.5 * h * h * am
            f[3:6, j] = h * am
        p, e = kalman_predict(p, e, f)
        rel = int(idx[k])
        if rel in fix_at:
            z, r_cov = meas(fix_at[rel])
            p, e = kalman_update(p, e, h_fix, r_cov, z - xt[rel])
        out_t.append(times[k])
        sig_p.append(np.trace(p[:3, :3]))
        err_p.append(float(e[:3] @ e[:3]))
        sig_v.append(np.trace(p[3:6, 3:6]))
        err_v.append(float(e[3:6] @ e[3:6]))
        nees.append(float(e[:6] @ np.linalg.solve(p[:6, :6], e[:6])))
    out_t = np.array(out_t)
    keep = out_t - t0 >= settle_s
    sig_p, err_p, sig_v, err_v = (np.array(v) for v in (sig_p, err_p, sig_v, err_v))
    return {
        "expected_pos_m": _rms_after(sig_p, keep),
        "realised_pos_m": _rms_after(err_p, keep),
        "expected_vel_m_s": _rms_after(sig_v, keep),
        "realised_vel_m_s": _rms_after(err_v, keep),
        "t_gps_s": out_t,
        "pos_sigma_m": np.sqrt(sig_p),
        "nees": np.array(nees),
    }


def attitude_bound(scenario, k: int = 0, settle_s: float = 1800.0, seed: int = 0) -> dict:
    """The attitude bound of spacecraft *k* of a simulated *scenario*
    (:func:`ground.simulate.simulate`) from its own sensor samples (decoded from its
    sense.bin, as the flight reads them), at the samples' true instants: ``expected_deg``,
    ``realised_deg`` (RMS of the rotation angle after *settle_s*) and both in and out of
    eclipse (``*_eclipse_deg``, ``*_sun_deg``), and per sample ``t_s`` (from the start),
    ``sigma_deg`` (sqrt of the attitude covariance's trace), ``eclipse``, ``nees`` (of the
    realised attitude error, 3 dof).  The realised run
    starts from a draw of the prior (*seed*)."""
    from ground.simulate.sensors import FACE_NORMALS_BODY
    from pygnc.config import Config
    from pygnc.estimation.quaternion import dcm_from_quat_array as dcm_from_quat
    from pygnc.estimation.quaternion import quat_multiply, rotation_matrix, rotvec_from_quat, skew
    from pygnc.formats.sense import decode_sense
    from pygnc.formats.settings import DecodeSettings

    z = scenario.truth
    s = scenario.settings
    name = str(z["spacecraft_name"][k])
    config = Config(
        mag_lsb_ut=s.sensors.mag_lsb_ut,
        gyro_lsb_deg_s=s.sensors.gyro_lsb_deg_s,
        imu_to_body=tuple(float(v) for v in s.sensors.imu_to_body),
        sensors_per_record=s.sensors.per_record,
    )
    sens = decode_sense(scenario.files[name]["sense.bin"], DecodeSettings.from_config(config)).sensors
    rib = np.asarray(z["imu_to_body"], dtype=float)
    t0 = float(z["t_gps_s"][0])
    t_s = np.asarray(z["sensor_t_gps_s"], dtype=float)
    idx = np.rint(t_s - t0).astype(int)
    if len(sens) != idx.size:
        raise ValueError(f"{name}: {len(sens)} decoded samples for {idx.size} in the truth")
    q = np.asarray(z["q_body_to_gcrs"][k])[idx]
    w_true = np.asarray(z["w_body_rad_s"][k])[idx]
    bias_b = np.radians(np.asarray(z["gyro_bias_imu_deg_s"][k])[idx] @ rib.T)
    n_gyro = np.radians(np.asarray(sens["gyro_deg_s"], dtype=float)) @ rib.T - bias_b - w_true
    hb = np.asarray(z["mag_body_ut"][k])[idx]
    v_mag = np.asarray(sens["mag_ut"], dtype=float) @ rib.T - hb - rib @ np.asarray(z["mag_bias_imu_ut"][k])
    lux = np.asarray(sens["sun_lux"], dtype=float)
    sat = np.asarray(sens["sun_saturated"], dtype=bool)
    lux_true = np.asarray(z["sun_lux_true"][k])
    direct = lux_true - np.asarray(z["albedo_lux"][k])
    r = np.asarray(z["r_gcrs_m"][k])[idx]
    to_sun = np.asarray(z["sun_gcrs_m"])[idx] - r
    to_sun /= np.linalg.norm(to_sun, axis=1)[:, None]
    s_body = np.einsum("nji,nj->ni", dcm_from_quat(q), to_sun)
    frac = np.asarray(z["sun_fraction"][k])[idx]
    eclipse = np.asarray(z["eclipse"][k])[idx]
    sg = math.radians(math.hypot(s.sensors.gyro_noise_deg_s, s.sensors.gyro_lsb_deg_s / math.sqrt(12.0)))
    sm2 = s.sensors.mag_noise_ut**2 + s.sensors.mag_lsb_ut**2 / 12.0
    n = 12  # attitude, gyro bias, magnetometer bias, the last gyro sample's noise
    eye = np.eye(n)
    p = np.diag([math.radians(10.0) ** 2] * 3 + [math.radians(2.0) ** 2] * 3 + [20.0**2] * 3 + [sg**2] * 3)
    e = np.random.default_rng(seed).multivariate_normal(np.zeros(n), p)
    e[9:] = -n_gyro[0]
    sig = np.zeros(idx.size)
    err = np.zeros(idx.size)
    nees = np.zeros(idx.size)
    for i in range(idx.size):
        if i > 0:
            dt = float(t_s[i] - t_s[i - 1])
            dq = quat_multiply(q[i - 1] * [1.0, -1.0, -1.0, -1.0], q[i])
            phi = rotvec_from_quat(dq)
            c, ch = rotation_matrix(-phi), rotation_matrix(-0.5 * phi)
            # Error of the two-sample rotation in the rates at its ends (trapezoid + coning).
            j0 = 0.5 * dt * np.eye(3) - dt * dt / 12.0 * skew(w_true[i])
            j1 = 0.5 * dt * np.eye(3) + dt * dt / 12.0 * skew(w_true[i - 1])
            f = eye.copy()
            f[:3, :3] = c
            f[:3, 3:6] = -dt * ch
            f[:3, 9:] = -ch @ j0
            f[9:, 9:] = 0.0
            g = np.zeros((n, 3))
            g[:3] = -ch @ j1
            g[9:] = np.eye(3)
            p, e = kalman_predict(p, e, f, (sg * sg) * (g @ g.T), -g @ n_gyro[i])
        rows, res, rv = [], [], []
        h = np.zeros((3, n))
        h[:, :3] = skew(hb[i])
        h[:, 6:9] = np.eye(3)
        rows.append(h)
        res.append(v_mag[i])
        rv += [sm2] * 3
        if frac[i] >= 0.05:
            cosines = FACE_NORMALS_BODY @ s_body[i]
            sb_x = skew(s_body[i])
            for f_i in range(6):
                if cosines[f_i] <= 0.0 or sat[i, f_i] or lux_true[i, f_i] >= _OPT3001_FULL_SCALE_LUX:
                    continue
                h = np.zeros((1, n))
                h[0, :3] = direct[i, f_i] / cosines[f_i] * (FACE_NORMALS_BODY[f_i] @ sb_x)
                rows.append(h)
                res.append([lux[i, f_i] - lux_true[i, f_i]])
                rv.append((s.sensors.lux_noise_fraction * lux_true[i, f_i]) ** 2 + s.sensors.lux_noise_floor_lux**2)
        p, e = kalman_update(p, e, np.vstack(rows), np.diag(rv), np.concatenate(res))
        sig[i] = np.trace(p[:3, :3])
        err[i] = float(e[:3] @ e[:3])
        nees[i] = float(e[:3] @ np.linalg.solve(p[:3, :3], e[:3]))
    t_rel = t_s - t_s[0]
    keep = t_rel >= settle_s
    deg = math.degrees
    return {
        "expected_deg": deg(_rms_after(sig, keep)),
        "realised_deg": deg(_rms_after(err, keep)),
        "expected_eclipse_deg": deg(_rms_after(sig, keep & eclipse)),
        "realised_eclipse_deg": deg(_rms_after(err, keep & eclipse)),
        "expected_sun_deg": deg(_rms_after(sig, keep & ~eclipse)),
        "realised_sun_deg": deg(_rms_after(err, keep & ~eclipse)),
        "t_s": t_rel,
        "sigma_deg": np.degrees(np.sqrt(sig)),
        "eclipse": eclipse,
        "nees": nees,
    }
