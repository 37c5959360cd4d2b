"""Ground: the orbit EKF run over a whole batch of fixes, and its RTS smoother; and the flight
orbit processor run over arrays.

The flight software runs the filter (:class:`pygnc.estimation.orbit_ekf.OrbitEKF`) message
by message in :class:`pygnc.processors.orbit.OrbitProcessor`: :func:`run_orbit_processor`
runs that processor on arrays (what the accuracy tests judge).  :func:`run_orbit_filter`
steps the same filter from output to output instead, keeping every step for the RTS
smoother (``replay --smooth``, the benchmarks); without smoothing it gives the processor's
estimates to ~1 mm (tests/test_orbit_ekf.py says why not to the bit).  Not shipped to the
spacecraft.
"""

from __future__ import annotations

import math

import numpy as np

from ground.replay.array_stream import stream_from_arrays
from pygnc import frames, timebase
from pygnc.config import Config
from pygnc.estimation.gps_fix import GpsFix
from pygnc.estimation.orbit_ekf import OrbitEKF, OrbitFilterConfig
from pygnc.processors.orbit import OrbitProcessor

__all__ = ["gps_times_from_sc", "rts_smooth", "run_orbit_filter", "run_orbit_processor"]


def rts_smooth(history):
    """Rauch-Tung-Striebel smoother over an :class:`OrbitEKF` history (``record=True``).

    Extended form: x_s[k] = x[k] + C_k (x_s[k+1] - x_pred[k+1]), C_k = P[k] Phi^T P_pred[k+1]^-1,
    P_s[k] = P[k] + C_k (P_s[k+1] - P_pred[k+1]) C_k^T, with Phi the filter's own linearised
    transition and x_pred the nonlinear prediction.  Returns (t_gps_s (m,), x_s (m, n),
    P_s (m, n, n)).  A re-initialisation breaks the chain: the smoother restarts there.
    """
    m = len(history)
    n = history[0].x_post.size
    t = np.array([h.t_gps_s for h in history])
    xs = np.empty((m, n))
    ps = np.empty((m, n, n))
    xs[-1] = history[-1].x_post
    ps[-1] = history[-1].p_post
    for k in range(m - 2, -1, -1):
        nxt = history[k + 1]
        cur = history[k]
        if nxt.phi is None:  # re-initialised at k+1: no link back
            xs[k] = cur.x_post
            ps[k] = cur.p_post
            continue
        # C = P Phi^T Ppred^-1  ->  solve(Ppred, Phi P)^T  (Ppred symmetric)
        c = np.linalg.solve(nxt.p_pred, nxt.phi @ cur.p_post).T
        xs[k] = cur.x_post + c @ (xs[k + 1] - nxt.x_pred)
        pk = cur.p_post + c @ (ps[k + 1] - nxt.p_pred) @ c.T
        ps[k] = 0.5 * (pk + pk.T)
    return t, xs, ps


def gps_times_from_sc(fixes, t_sc_s):
    """Map spacecraft times *t_sc_s* to GPS time with a ClockMap fitted on the valid fixes.

    Returns (t_gps_s array, :class:`pygnc.timebase.ClockMap` or None when no valid fix).
    """
    valid = np.asarray(fixes["valid"], dtype=bool)
    cmap = timebase.fit_clock_map(np.asarray(fixes["t_sc_s"])[valid], np.asarray(fixes["t_gps_s"])[valid])
    if cmap is None:
        return None, None
    return cmap.gps_from_sc(np.asarray(t_sc_s, dtype=float)), cmap


def _fix_arrays(fixes):
    """(t_gps_s, pos, vel, pos_sigma, vel_sigma, usable) arrays of a batch of fixes."""
    t_fix = np.asarray(fixes["t_gps_s"], dtype=float)
    pos = np.asarray(fixes["pos_ecef_m"], dtype=float).reshape(-1, 3)
    vel = np.asarray(fixes["vel_ecef_m_s"], dtype=float).reshape(-1, 3)
    psig = np.asarray(fixes["pos_sigma_m"], dtype=float).reshape(-1, 3)
    vsig = np.asarray(fixes["vel_sigma_m_s"], dtype=float).reshape(-1, 3)
    usable = np.asarray(fixes["valid"], dtype=bool) & np.isfinite(t_fix)
    usable &= np.all(np.isfinite(pos), axis=1) & np.all(np.isfinite(vel), axis=1)
    return t_fix, pos, vel, psig, vsig, usable


class _Outputs:
    """The filter state recorded at the output times, taken in time order."""

    def __init__(self, ekf: OrbitEKF, t_out: np.ndarray):
        self.ekf = ekf
        self.t = t_out
        self.order = np.argsort(t_out, kind="stable")
        self.i = 0
        m, n = t_out.size, ekf.n
        self.x = np.full((m, n), np.nan)
        self.p = np.full((m, n, n), np.nan)
        self.record = np.full(m, -1, dtype=np.int64)  # history index per output (smoothing)
        self.start = np.full(m, -1, dtype=np.int64)  # the filter start each output stands on
        self.confirmed = np.zeros(m, dtype=bool)  # ... and whether later fixes confirmed it then
        self.n_starts = 0

    def _next(self):
        return self.t[self.order[self.i]] if self.i < self.t.size else math.inf

    def skip_before(self, t_s: float) -> None:
        """Outputs before the filter starts stay NaN."""
        while self._next() < t_s - 1e-9:
            self.i += 1

    def take_before(self, t_s: float, inclusive: bool = False) -> None:
        """Predict to and record every output before *t_s* (at it too, if *inclusive*)."""
        while self._next() < t_s - 1e-9 or (inclusive and self._next() <= t_s + 1e-9):
            j = self.order[self.i]
            if self.t[j] > self.ekf.t_gps_s + 1e-9:  # at the filter's instant: no step
                self.ekf.predict_to(self.t[j])
            self.x[j], self.p[j] = self.ekf.x, self.ekf.p
            self.record[j] = len(self.ekf.history) - 1
            self.start[j], self.confirmed[j] = self.n_starts, self.ekf.confirmed
            self.i += 1

    def take_rest(self) -> None:
        self.take_before(math.inf)


def run_orbit_filter(fixes, output_times_gps_s, config: OrbitFilterConfig | None = None, smooth: bool = False):
    """Run the orbit EKF over a batch of GPS fixes; report the state at every output time.

    *fixes*: any structured array (or dict of arrays) with the fields ``t_gps_s``,
    ``pos_ecef_m`` (n, 3), ``vel_ecef_m_s`` (n, 3), ``pos_sigma_m`` (n, 3),
    ``vel_sigma_m_s`` (n, 3), ``valid`` (e.g. ``pygnc.formats.gps.GPS_FIX_DTYPE``); a sigma
    of 0 means "not given".  Fixes are processed in GPS-time order; invalid or non-finite
    ones are skipped and counted.  *output_times_gps_s*: 1-D array (any order; e.g. the
    5-s sensor sample times mapped with :func:`gps_times_from_sc`).  The filter starts at
    the first valid fix; output times before it are NaN.  Between events the filter
    predicts in steps of at most ``config.max_step_s``.

    With *smooth*, an RTS pass replaces the filtered values by smoothed ones.

    Returns a dict: ``t_gps_s`` (m,), ``r_gcrs_m``, ``v_gcrs_m_s``, ``r_ecef_m``,
    ``v_ecef_m_s`` (m, 3), ``sigma`` (m, n) 1-sigma of every state (GCRS), ``cov``
    (m, n, n), ``x`` (m, n) the full state, ``n_fixes_used``, ``n_fixes_rejected``,
    ``n_fixes_invalid``, ``n_reinit``, ``nis`` (per fix, NaN when not evaluated),
    ``fix_status`` (per fix: 0 used, 1 rejected, 2 invalid, 3 reinit/initialise, 4 before
    start), ``smoothed`` (bool), ``confirmed`` (m,): the output stands on a start later fixes
    confirmed (:attr:`OrbitEKF.confirmed`; when filtered, by then; when smoothed, ever - the
    smoother carries the confirming fixes back to the start).
    """
    config = config or OrbitFilterConfig()
    t_fix, pos, vel, psig, vsig, usable = _fix_arrays(fixes)
    t_out = np.asarray(output_times_gps_s, dtype=float).ravel()
    ekf = OrbitEKF(config, record=smooth)
    outs = _Outputs(ekf, t_out)
    nis = np.full(t_fix.size, np.nan)
    status = np.full(t_fix.size, 4, dtype=np.int8)
    for i in np.argsort(t_fix, kind="stable"):
        if not usable[i]:
            status[i] = 2
            ekf.skip_invalid()
            continue
        tf = t_fix[i]
        fix = GpsFix(tf, pos[i], vel[i], psig[i], vsig[i])
        if not ekf.initialized:
            ekf.start(fix)
            outs.n_starts += 1
            status[i] = 3
            outs.skip_before(tf)
            continue
        # Outputs before the fix, then the fix, then outputs at its instant (posterior).
        outs.take_before(tf)
        ekf.predict_to(tf)
        res = ekf.update_gps(fix)
        nis[i] = ekf.last_nis
        status[i] = {"used": 0, "rejected": 1, "reinit": 3}[res.decision]
        outs.n_starts += res.decision == "reinit"
        outs.take_before(tf, inclusive=True)
    if ekf.initialized:
        outs.take_rest()
    smoothed = bool(smooth and ekf.history)
    confirmed = outs.confirmed
    if smoothed:
        _, xs, ps = rts_smooth(ekf.history)
        ok = outs.record >= 0
        outs.x[ok] = xs[outs.record[ok]]
        outs.p[ok] = ps[outs.record[ok]]
        confirmed = np.isin(outs.start, outs.start[outs.confirmed])
    res_out = _result(t_out, outs.x, outs.p, ekf, nis, status, smoothed)
    res_out["confirmed"] = confirmed
    return res_out


def _result(t_out, x_out, p_out, ekf, nis, status, smoothed) -> dict:
    r_g = x_out[:, :3]
    v_g = x_out[:, 3:6]
    r_e = np.full(r_g.shape, np.nan)
    v_e = np.full(v_g.shape, np.nan)
    ok = np.isfinite(r_g[:, 0])
    if ok.any():
        r_e[ok], v_e[ok] = frames.gcrs_to_itrs(r_g[ok], v_g[ok], t_out[ok])
    return {
        "t_gps_s": t_out,
        "x": x_out,
        "r_gcrs_m": r_g.copy(),
        "v_gcrs_m_s": v_g.copy(),
        "r_ecef_m": r_e,
        "v_ecef_m_s": v_e,
        "sigma": np.sqrt(np.abs(np.diagonal(p_out, axis1=1, axis2=2))),
        "cov": p_out,
        "n_fixes_used": ekf.n_used,
        "n_fixes_rejected": ekf.n_rejected,
        "n_fixes_invalid": ekf.n_invalid,
        "n_reinit": ekf.n_reinit,
        "n_start_refused": ekf.n_start_refused,
        "nis": nis,
        "fix_status": status,
        "smoothed": smoothed,
    }


def run_orbit_processor(fixes, output_times_gps_s, config: OrbitFilterConfig | None = None) -> dict:
    """The flight :class:`OrbitProcessor` over a batch of GPS fixes (*fixes* as for
    :func:`run_orbit_filter`), with a sensor sample at every one of *output_times_gps_s*;
    an estimate at every sample (no decimation).

    Returns the dict of :func:`run_orbit_filter` (``smoothed`` False), its state and
    covariance those the processor publishes: ``x`` (m, 6) GCRS position and velocity,
    ``cov`` (m, 6, 6); NaN where nothing was published.  ``fix_status`` (0 used, 1 rejected,
    2 invalid, 3 initialise/re-initialise, 4 not used: before the start or out of order) and
    ``nis`` per fix from the filter's counters after each fix; ``quality`` (m,) the words
    published ("" where nothing was); ``counters``: the processor's at the end.
    """
    t_fix = np.asarray(fixes["t_gps_s"], dtype=float)
    t_out = np.asarray(output_times_gps_s, dtype=float).ravel()
    order = np.argsort(t_out, kind="stable")
    proc = OrbitProcessor(Config(batch_decimate_estimates=False), config)
    messages, own_at = stream_from_arrays(fixes, t_out[order])
    fix_of = {int(k): i for i, k in enumerate(own_at)}
    m = t_out.size
    x_out, p_out = np.full((m, 6), np.nan), np.full((m, 6, 6), np.nan)
    r_e, v_e = np.full((m, 3), np.nan), np.full((m, 3), np.nan)
    quality = np.full(m, "", dtype=object)
    nis = np.full(t_fix.size, np.nan)
    status = np.full(t_fix.size, 4, dtype=np.int8)
    f = proc.filter
    j = 0  # samples handed over
    for k, (msg_type, body) in enumerate(messages):
        if msg_type not in proc.consumes:
            continue
        before = (f.initialized, f.n_used, f.n_rejected, f.n_invalid, f.n_reinit, f.n_start_refused)
        out = proc.handle(msg_type, body)
        if msg_type == "sensor":
            for kind, b in out:
                if kind == "orbit_estimate":
                    i = order[j]
                    x_out[i] = b["r_gcrs_m"] + b["v_gcrs_m_s"]
                    p_out[i] = np.reshape(b["cov_gcrs"], (6, 6))
                    r_e[i], v_e[i] = b["r_ecef_m"], b["v_ecef_m_s"]
                    quality[i] = b["quality"]
            j += 1
        elif k in fix_of:
            i = fix_of[k]
            if f.n_invalid > before[3]:
                status[i] = 2
            elif f.n_reinit > before[4] or f.n_start_refused > before[5] or (f.n_used > before[1] and not before[0]):
                status[i] = 3
            elif f.n_rejected > before[2]:
                status[i], nis[i] = 1, f.last_nis
            elif f.n_used > before[1]:
                status[i], nis[i] = 0, f.last_nis
    res = _result(t_out, x_out, p_out, f, nis, status, False)
    res["r_ecef_m"], res["v_ecef_m_s"] = r_e, v_e  # as published
    res["quality"] = quality
    res["counters"] = proc.counters()
    return res
