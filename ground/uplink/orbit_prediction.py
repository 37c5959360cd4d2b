"""A spacecraft's own orbit estimates carried to another epoch, with an honest covariance.

What ``python -m ground uplink --downlink`` does with a partner's downlinked orbit records
(its GPS-based orbit EKF, :mod:`pygnc.processors.orbit`), as pure numerics: records in, a
state and its covariance out.  Everything is SI, GCRS (:mod:`pygnc.frames`), ``t_gps_s``.

Anchor.  The record nearest the epoch, with the per-axis sigmas the spacecraft published
for it (position and velocity, ECEF axes), is what is carried to the epoch.

Drag.  What the anchor cannot say is how fast drag will take the orbit down: a drag
scale k on the nominal ballistic coefficient (the flight's
``[formation_filter] peer_ballistic_coeff_kg_m2``) is fitted to the records of the ``fit_span_s``
before the anchor - least squares on their positions for the state at the anchor and k,
Gauss-Newton on the transition matrices, a weak prior k ~ N(1, ``drag_scale_prior_sigma``)
for arcs too short to see drag.  The records are outputs of a filter, so their errors are
correlated in time: each counts as ``record_spacing / record_correlation_s`` of an
independent observation, and their weight is divided by the fit's reduced chi-square when
that exceeds 1 (the prior keeps its own).  The drag ahead is not the drag of the arc:
k's variance gets a relative forecast error ``drag_forecast_sigma`` (the density changes
with solar and geomagnetic activity from one day to the next; empirical density models
are good to ~15 % with measured indices - Hedin 1988, NASA TM-100707 - and worse with
forecast ones), which grows the along-track error as 0.75 n |da/dt| dk dt^2.

Dynamics.  The flight's own :mod:`pygnc.estimation.orbit_dynamics` with zonals to J8,
EGM96 tesserals to 8x8, Sun and Moon, and drag through its exponential atmosphere - not
the simulator's truth model (EGM2008 40x40, NRLMSISE-00, SRP).  The covariance of the
anchor (r, v, k) is carried along its transition matrix; what these dynamics leave out
(gravity beyond 8x8, SRP, the density's day-night structure) is added in RTN:
``model_error_rtn_m`` one hour into the propagation, growing as sqrt(dt / 1 h) before and
(dt / 1 h)^(1/4) after, velocity n x (T, 2 R, N) - the spread of these dynamics started on
the simulator's truth and run for 10 min to 12 h (docs/uplink.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ground.uplink.tle_covariance import rtn_axes
from pygnc import frames
from pygnc.estimation import orbit_dynamics as od

__all__ = ["Prediction", "PredictionModel", "fit_and_predict"]


@dataclass(frozen=True)
class PredictionModel:
    """Tunables of :func:`fit_and_predict` (see the module docstring)."""

    ballistic_coeff_kg_m2: float = 50.0
    drag_scale_prior_sigma: float = 1.0
    drag_forecast_sigma: float = 0.3
    #: 1-sigma R, T, N position error of the ground dynamics one hour into a propagation, m.
    model_error_rtn_m: tuple[float, float, float] = (25.0, 150.0, 25.0)
    record_correlation_s: float = 1200.0
    fit_span_s: float = 24 * 3600.0
    max_step_s: float = 10.0
    iterations: int = 6

    def dynamics(self) -> od.DynamicsModel:
        return od.DynamicsModel(
            zonal_j=od.ZONAL_J_EGM96[:9],
            ballistic_coeff_kg_m2=self.ballistic_coeff_kg_m2,
            dmc_tau_s=600.0,
            drag_scale_tau_s=1.0e15,
            max_step_s=self.max_step_s,
            tesseral_degree=8,
            third_body=True,
        )


@dataclass(frozen=True)
class Prediction:
    """The state at the epoch (GCRS and ECEF), its covariance (GCRS, and RTN with inertial
    velocity in the axes of the state), the fitted drag scale and how the fit went."""

    t_gps_s: float
    r_gcrs_m: np.ndarray
    v_gcrs_m_s: np.ndarray
    r_ecef_m: np.ndarray
    v_ecef_m_s: np.ndarray
    cov_gcrs: np.ndarray
    cov_rtn: np.ndarray
    drag_scale: float
    drag_scale_sigma: float
    fit_rms_m: float
    n_records: int
    arc_start_gps_s: float
    arc_end_gps_s: float
    anchor_gps_s: float


def select_arc(t: np.ndarray, t_epoch: float, span_s: float) -> tuple[np.ndarray, int]:
    """Indices (time order) of the records of the arc and the index of its anchor: the
    records within *span_s* of the one nearest the epoch, on the side that has more of them
    (the data's past when the epoch follows them, even if the last record is a few seconds
    past the epoch; their future when the epoch precedes them)."""
    order = np.argsort(t, kind="stable")
    ts = t[order]
    k = int(np.argmin(np.abs(ts - t_epoch)))
    back = (ts >= ts[k] - span_s) & (ts <= ts[k])
    ahead = (ts >= ts[k]) & (ts <= ts[k] + span_s)
    sel = order[back] if back.sum() >= ahead.sum() else order[ahead]
    return sel, int(order[k])


def fit_drag_scale(
    t_gps_s, r_gcrs_m, sigma_m, t_anchor_gps_s: float, r0, v0, model: PredictionModel, dyn: od.DynamicsModel
) -> tuple[float, float, float]:
    """Fit (r, v at *t_anchor_gps_s*, drag scale) to the positions *r_gcrs_m* (n, 3) of
    1-sigma *sigma_m* (n,) at *t_gps_s* (n,), starting from *r0*, *v0*: (drag scale, its
    1-sigma - the data down-weighted by the reduced chi-square when above 1 -, RMS residual m)."""
    t = np.asarray(t_gps_s, dtype=float)
    x = np.zeros(10)
    x[0:3], x[3:6], x[9] = r0, v0, 1.0
    order = np.argsort(t, kind="stable")
    after = [i for i in order if t[i] >= t_anchor_gps_s]
    before = [i for i in order[::-1] if t[i] < t_anchor_gps_s]
    spacing = float(np.median(np.diff(t[order]))) if t.size > 1 else model.record_correlation_s
    weight_scale = min(1.0, spacing / model.record_correlation_s)
    w = weight_scale / np.asarray(sigma_m, dtype=float) ** 2
    cols = [0, 1, 2, 3, 4, 5, 9]
    kp = 1.0 / model.drag_scale_prior_sigma**2
    prior = np.zeros((7, 7))
    prior[6, 6] = kp
    nmat, chi2, ss = np.eye(7), 0.0, 0.0
    for _ in range(model.iterations):
        nmat, rhs = np.zeros((7, 7)), np.zeros(7)
        chi2 = ss = 0.0
        for seq in (after, before):
            xs, tc, phi_acc = x.copy(), float(t_anchor_gps_s), np.eye(10)
            for i in seq:
                xs, phi = od.propagate(xs, float(t[i]) - tc, dyn, want_phi=True, t_gps_s=tc)
                phi_acc = phi @ phi_acc
                tc = float(t[i])
                h = phi_acc[0:3][:, cols]
                res = r_gcrs_m[i] - xs[0:3]
                nmat += w[i] * h.T @ h
                rhs += w[i] * h.T @ res
                chi2 += float(w[i] * res @ res)
                ss += float(res @ res)
        rhs[6] += kp * (1.0 - x[9])  # the prior k ~ N(1, drag_scale_prior_sigma)
        dx = np.linalg.solve(nmat + prior, rhs)
        x[cols] += dx
        if np.all(np.abs(dx[0:3]) < 1e-3) and np.all(np.abs(dx[3:6]) < 1e-6) and abs(dx[6]) < 1e-6:
            break
    n_obs = 3 * t.size
    # Residuals larger than the records' sigmas say: the data weigh less (the prior does not).
    red = max(1.0, chi2 / (weight_scale * max(1, n_obs - 7)))
    p7 = np.linalg.inv(nmat / red + prior)
    return float(x[9]), float(math.sqrt(p7[6, 6])), math.sqrt(ss / max(1, n_obs))


def model_error_rtn(dt_s: float, n_rad_s: float, model: PredictionModel) -> np.ndarray:
    """Diagonal RTN covariance (position, inertial velocity) of what the ground dynamics
    leaves out, *dt_s* into a propagation (module docstring)."""
    f = math.sqrt(min(abs(dt_s), 3600.0) / 3600.0) * (max(abs(dt_s), 3600.0) / 3600.0) ** 0.25
    s_r, s_t, s_n = model.model_error_rtn_m[0] * f, model.model_error_rtn_m[1] * f, model.model_error_rtn_m[2] * f
    n = float(n_rad_s)
    return np.diag([s_r**2, s_t**2, s_n**2, (n * s_t) ** 2, (2.0 * n * s_r) ** 2, (n * s_n) ** 2])


def fit_and_predict(
    t_gps_s, r_ecef_m, v_ecef_m_s, sigma_r_m, sigma_v_m_s, t_epoch_gps_s: float, model: PredictionModel | None = None
) -> Prediction:
    """Carry the record nearest *t_epoch_gps_s* to it, with the drag scale fitted to an arc
    of records ending there (module docstring).  Records: GPS times (n,), ECEF positions and
    velocities (n, 3), their 1-sigma per ECEF axis (n, 3)."""
    model = model or PredictionModel()
    dyn = model.dynamics()
    t = np.asarray(t_gps_s, dtype=float)
    r_e = np.asarray(r_ecef_m, dtype=float).reshape(-1, 3)
    v_e = np.asarray(v_ecef_m_s, dtype=float).reshape(-1, 3)
    sr = np.asarray(sigma_r_m, dtype=float).reshape(-1, 3)
    sv = np.asarray(sigma_v_m_s, dtype=float).reshape(-1, 3)
    sel, anchor = select_arc(t, t_epoch_gps_s, model.fit_span_s)
    t_a = float(t[anchor])
    # GCRS with the flight's frames (UT1 = UTC: a common rotation the way back to ECEF undoes).
    r_g = np.asarray(frames.itrs_to_gcrs(r_e[sel], v_e[sel], t[sel])[0])
    ra, va = (np.asarray(c) for c in frames.itrs_to_gcrs(r_e[anchor], v_e[anchor], t_a))
    sig = np.sqrt(np.mean(sr[sel] ** 2, axis=1))
    k, sk, rms = fit_drag_scale(t[sel], r_g, sig, t_a, ra, va, model, dyn)
    # The anchor: the record itself, with its own per-axis sigmas (ECEF axes turned to GCRS).
    m = np.asarray(frames.gcrs_from_itrs_matrix(t_a))
    p = np.zeros((10, 10))
    p[0:3, 0:3] = m @ np.diag(sr[anchor] ** 2) @ m.T
    p[3:6, 3:6] = m @ np.diag(sv[anchor] ** 2) @ m.T
    p[9, 9] = sk**2 + (model.drag_forecast_sigma * k) ** 2  # the drag ahead is another drag
    x = np.zeros(10)
    x[0:3], x[3:6], x[9] = ra, va, k
    xe, phi = od.propagate(x, float(t_epoch_gps_s) - t_a, dyn, want_phi=True, t_gps_s=t_a)
    pe = (phi @ p @ phi.T)[0:6, 0:6]
    r_ge, v_ge = xe[0:3], xe[3:6]
    axes = rtn_axes(r_ge, v_ge)
    rot = np.zeros((6, 6))
    rot[0:3, 0:3] = rot[3:6, 3:6] = axes
    n_rad_s = math.sqrt(od.GM_EARTH_M3_S2 / float(np.linalg.norm(r_ge)) ** 3)
    cov_rtn = rot @ pe @ rot.T + model_error_rtn(float(t_epoch_gps_s) - t_a, n_rad_s, model)
    cov_rtn = 0.5 * (cov_rtn + cov_rtn.T)
    r_ee, v_ee = frames.gcrs_to_itrs(r_ge, v_ge, float(t_epoch_gps_s))
    return Prediction(
        t_gps_s=float(t_epoch_gps_s),
        r_gcrs_m=r_ge,
        v_gcrs_m_s=v_ge,
        r_ecef_m=np.asarray(r_ee),
        v_ecef_m_s=np.asarray(v_ee),
        cov_gcrs=rot.T @ cov_rtn @ rot,
        cov_rtn=cov_rtn,
        drag_scale=k,
        drag_scale_sigma=sk,
        fit_rms_m=rms,
        n_records=int(sel.size),
        arc_start_gps_s=float(t[sel].min()),
        arc_end_gps_s=float(t[sel].max()),
        anchor_gps_s=t_a,
    )
