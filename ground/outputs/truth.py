"""Truth of a simulated scenario (``truth.npz``) at estimate times, and estimate errors.

Times: an ``orbit_estimate`` states its epoch in GPS time (``t_gps_s``); attitude and
formation estimates state ``unix_time_s`` (UTC), converted to GPS time here.  Truth is on
a 1 Hz grid and is interpolated:

* positions with a cubic Hermite spline on position *and* velocity (error ~1e-5 m at 1 s
  spacing in LEO; linear interpolation would be off by up to ~1 m), velocities with its
  derivative;
* attitude by spherical linear interpolation of the quaternions (rates of a few deg/s);
* gyro biases linearly.

Errors are estimate minus truth.  Orbit errors are in ECEF (the frame the fixes and the
CSV use; pygnc's GCRS takes UT1 = UTC, so absolute GCRS coordinates carry a common
rotation that ECEF does not).  The attitude error is the rotation vector of
``conj(q_true) ⊗ q_est`` (body axes, rad); formation errors are (estimated - true) of
``r_peer - r_own`` in ECEF, and its component along the true line of sight.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pygnc import frames
from pygnc.estimation.quaternion import quat_conj, quat_multiply_array, rotvec_from_quat_array
from pygnc.frames import covariance_gcrs_to_ecef
from pygnc.timebase import gps_from_utc_unix


class TruthError(ValueError):
    """A truth file that cannot be read (message names it and why)."""


class UnknownSpacecraft(ValueError):
    """``--spacecraft`` names a spacecraft the truth does not have (message lists those it has)."""


@dataclass
class Truth:
    arrays: dict
    #: index of the spacecraft whose files were replayed
    index: int
    path: Path

    @property
    def name(self) -> str:
        return str(self.arrays["spacecraft_name"][self.index])

    @property
    def t_gps_s(self) -> np.ndarray:
        return self.arrays["t_gps_s"]

    def peer_index(self, peer_id: int) -> int | None:
        hits = np.flatnonzero(self.arrays["radio_id"].astype(int) == int(peer_id))
        return int(hits[0]) if hits.size else None


def find_truth(scenario_dir: Path, truth_path: Path | None = None, spacecraft: str | None = None) -> Truth | None:
    """The truth of *scenario_dir*: ``truth.npz`` in it (spacecraft 0), or in its parent when
    *scenario_dir* is another spacecraft's sub-directory; *truth_path* / *spacecraft*
    override.  ``None`` when there is no truth."""
    from ground.simulate.scenario import load_truth

    scenario_dir = Path(scenario_dir)
    candidates = [truth_path] if truth_path else [scenario_dir / "truth.npz", scenario_dir.parent / "truth.npz"]
    if truth_path is not None and not Path(truth_path).is_file():
        raise TruthError(f"truth file {truth_path} does not exist or is not a file")
    for path in candidates:
        if path is None or not Path(path).is_file():
            continue
        if not zipfile.is_zipfile(path):
            raise TruthError(f"{path} is not a truth file of a simulated scenario (not an .npz archive)")
        try:
            arrays = load_truth(path)
            names = [str(n) for n in arrays["spacecraft_name"]]
            arrays["t_gps_s"]
        except Exception as exc:  # noqa: BLE001 - any unreadable file: one clear message
            raise TruthError(
                f"{path} is not a truth file of a simulated scenario ({type(exc).__name__}: {exc})"
            ) from None
        if spacecraft is not None:
            if spacecraft not in names:
                raise UnknownSpacecraft(f"spacecraft {spacecraft!r} is not in {path} (it has {', '.join(names)})")
            return Truth(arrays, names.index(spacecraft), Path(path))
        if Path(path).parent.resolve() == scenario_dir.resolve():
            return Truth(arrays, 0, Path(path))
        if scenario_dir.name in names:
            return Truth(arrays, names.index(scenario_dir.name), Path(path))
    return None


# --------------------------------------------------------------------------- interpolation
def _inside(grid: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.isfinite(t) & (t >= grid[0] - 1e-9) & (t <= grid[-1] + 1e-9)


def hermite_rv(grid, r, v, t):
    """Position and velocity at *t* from samples (grid, r, v); NaN outside the grid."""
    from scipy.interpolate import CubicHermiteSpline

    t = np.asarray(t, dtype=float)
    out_r = np.full(t.shape + (3,), np.nan)
    out_v = np.full(t.shape + (3,), np.nan)
    ok = _inside(grid, t)
    if ok.any() and grid.size >= 2:
        spline = CubicHermiteSpline(grid, r, v, axis=0)
        tc = np.clip(t[ok], grid[0], grid[-1])
        out_r[ok] = spline(tc)
        out_v[ok] = spline.derivative()(tc)
    return out_r, out_v


def slerp(grid, q, t):
    """Quaternions (scalar first) at *t* by spherical linear interpolation; NaN outside."""
    t = np.asarray(t, dtype=float)
    out = np.full(t.shape + (4,), np.nan)
    ok = _inside(grid, t)
    if not ok.any():
        return out
    tc = np.clip(t[ok], grid[0], grid[-1])
    i = np.clip(np.searchsorted(grid, tc, side="right") - 1, 0, grid.size - 2)
    f = ((tc - grid[i]) / (grid[i + 1] - grid[i]))[:, None]
    q0, q1 = q[i], q[i + 1].copy()
    dot = np.sum(q0 * q1, axis=1)
    q1[dot < 0] *= -1.0
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))[:, None]
    small = theta[:, 0] < 1e-9
    s = np.sin(theta)
    with np.errstate(invalid="ignore", divide="ignore"):
        w0 = np.where(small[:, None], 1.0 - f, np.sin((1.0 - f) * theta) / s)
        w1 = np.where(small[:, None], f, np.sin(f * theta) / s)
    qi = w0 * q0 + w1 * q1
    out[ok] = qi / np.linalg.norm(qi, axis=1, keepdims=True)
    return out


def linear(grid, y, t):
    t = np.asarray(t, dtype=float)
    out = np.full(t.shape + y.shape[1:], np.nan)
    ok = _inside(grid, t)
    for j in range(y.shape[1]):
        out[ok, j] = np.interp(t[ok], grid, y[:, j])
    return out


# --------------------------------------------------------------------------- errors
def orbit_errors(truth: Truth, t_gps_s, r_ecef_m, v_ecef_m_s, cov_gcrs=None) -> dict:
    """ECEF errors (n, 3) of position and velocity; NEES (6 dof) with the ECEF covariance."""
    a, k = truth.arrays, truth.index
    t = np.asarray(t_gps_s, dtype=float)
    r_t, v_t = hermite_rv(a["t_gps_s"], a["r_ecef_m"][k], a["v_ecef_m_s"][k], t)
    dr = np.asarray(r_ecef_m, dtype=float) - r_t
    dv = np.asarray(v_ecef_m_s, dtype=float) - v_t
    nees = np.full(t.size, np.nan)
    if cov_gcrs is not None and t.size:
        m = frames.gcrs_from_itrs_matrix(t)
        e = np.concatenate([dr, dv], axis=1)
        for i in range(t.size):
            if not np.all(np.isfinite(e[i])):
                continue
            p = covariance_gcrs_to_ecef(cov_gcrs[i], m[i])
            try:
                nees[i] = float(e[i] @ np.linalg.solve(p, e[i]))
            except np.linalg.LinAlgError:
                pass
    return {"dr_ecef_m": dr, "dv_ecef_m_s": dv, "nees": nees, "dof": 6}


def attitude_errors(
    truth: Truth, unix_time_s, q_est, bias_est_rad_s, sigma_att_rad=None, sigma_bias_rad_s=None, t_gps_s=None, cov6=None
) -> dict:
    """Attitude error rotation vector (n, 3, body axes, rad), its angle, gyro-bias error
    (n, 3, body axes, rad/s) and NEES (3 dof each) with *cov6* (n, 6, 6: attitude, bias)
    when given, else with the diagonal sigmas.  The epoch is *t_gps_s* where finite, else
    *unix_time_s* converted to GPS time."""
    a, k = truth.arrays, truth.index
    t = gps_from_utc_unix(np.asarray(unix_time_s, dtype=float))
    if t_gps_s is not None:
        t_gps_s = np.asarray(t_gps_s, dtype=float)
        t = np.where(np.isfinite(t_gps_s), t_gps_s, t)
    q_true = slerp(a["t_gps_s"], a["q_body_to_gcrs"][k], t)
    q_est = np.asarray(q_est, dtype=float).reshape(-1, 4)
    q_est = q_est / np.linalg.norm(q_est, axis=1, keepdims=True)
    dtheta = rotvec_from_quat_array(quat_multiply_array(quat_conj(q_true), q_est))
    bias_true_body = np.radians(a["gyro_bias_imu_deg_s"][k] @ np.asarray(a["imu_to_body"]).T)
    db = np.asarray(bias_est_rad_s, dtype=float).reshape(-1, 3) - linear(a["t_gps_s"], bias_true_body, t)
    out = {"dtheta_rad": dtheta, "angle_rad": np.linalg.norm(dtheta, axis=1), "dbias_rad_s": db, "dof": 3}
    with np.errstate(invalid="ignore", divide="ignore"):
        out["nees"] = (
            np.sum((dtheta / sigma_att_rad) ** 2, axis=1) if sigma_att_rad is not None else np.full(t.size, np.nan)
        )
        out["nees_bias"] = (
            np.sum((db / sigma_bias_rad_s) ** 2, axis=1) if sigma_bias_rad_s is not None else np.full(t.size, np.nan)
        )
    if cov6 is not None:
        out["nees"] = _quadratic(dtheta, cov6[:, :3, :3])
        out["nees_bias"] = _quadratic(db, cov6[:, 3:6, 3:6])
    return out


def _quadratic(e, p) -> np.ndarray:
    """e_i^T P_i^-1 e_i per row; NaN where e or P is not usable."""
    out = np.full(e.shape[0], np.nan)
    for i in range(e.shape[0]):
        if np.all(np.isfinite(e[i])) and np.all(np.isfinite(p[i])):
            try:
                out[i] = float(e[i] @ np.linalg.solve(p[i], e[i]))
            except np.linalg.LinAlgError:
                pass
    return out


def formation_errors(truth: Truth, unix_time_s, peer_id, dr_est_m, sigma_dr_m=None) -> dict:
    """Relative-position error (n, 3, ECEF, m), its line-of-sight component and NEES (3 dof,
    diagonal sigmas).  Rows whose peer is not in the truth are NaN."""
    a, k = truth.arrays, truth.index
    t = gps_from_utc_unix(np.asarray(unix_time_s, dtype=float))
    peer_id = np.asarray(peer_id, dtype=int)
    dr_true = np.full((t.size, 3), np.nan)
    grid = a["t_gps_s"]
    r_own, _ = hermite_rv(grid, a["r_ecef_m"][k], a["v_ecef_m_s"][k], t)
    for pid in np.unique(peer_id):
        j = truth.peer_index(pid)
        if j is None:
            continue
        sel = peer_id == pid
        r_peer, _ = hermite_rv(grid, a["r_ecef_m"][j], a["v_ecef_m_s"][j], t[sel])
        dr_true[sel] = r_peer - r_own[sel]
    err = np.asarray(dr_est_m, dtype=float).reshape(-1, 3) - dr_true
    with np.errstate(invalid="ignore", divide="ignore"):
        u = dr_true / np.linalg.norm(dr_true, axis=1, keepdims=True)
        nees = np.sum((err / sigma_dr_m) ** 2, axis=1) if sigma_dr_m is not None else np.full(t.size, np.nan)
    return {"dr_err_m": err, "los_err_m": np.sum(err * u, axis=1), "dr_true_m": dr_true, "nees": nees, "dof": 3}
