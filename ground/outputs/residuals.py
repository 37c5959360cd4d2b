"""Measurement residuals of the estimates, for runs without truth.

* GPS fix residual: valid own fix minus the orbit estimate at the fix's GPS time (the
  estimate rows are at sensor times; a cubic Hermite spline on position and velocity
  carries them to the fix time, ~1e-5 m at 5-s spacing).  Post-fit in the sense that the
  nearby estimates have used the fix; shown with the fix's own ±3σ.
* Range residual: measured range minus |peer - own| of the formation estimate at the
  range's spacecraft time, minus the estimated range bias; with the quality of the estimate
  it is taken against - ``acquiring`` where either estimate it lies between is a range-only
  partner's prior (:data:`ground.outputs.tables.PLACEHOLDER_QUALITY`), which the ranges are
  not yet fitted to: such residuals are not the estimator's and are left out of statistics.
"""

from __future__ import annotations

import numpy as np

from .tables import PLACEHOLDER_QUALITY
from .truth import hermite_rv


def _unique_sorted(t):
    order = np.argsort(t, kind="stable")
    keep = np.concatenate(([True], np.diff(t[order]) > 0)) if t.size else np.zeros(0, bool)
    return order[keep]


def gps_fix_residuals(orbit: dict, fixes: list[dict]) -> dict:
    """*fixes*: own ``gps_fix`` bodies.  Returns t_gps_s, unix_time_s, dr (n, 3), dv (n, 3),
    sigma_r, sigma_v (the fixes' own) for the valid fixes inside the estimate span."""
    fx = [f for f in fixes if f["valid"] and f["peer_id"] == 0]
    empty = {
        "t_gps_s": np.zeros(0),
        "unix_time_s": np.zeros(0),
        "dr_m": np.zeros((0, 3)),
        "dv_m_s": np.zeros((0, 3)),
        "sigma_r_m": np.zeros((0, 3)),
        "sigma_v_m_s": np.zeros((0, 3)),
    }
    if not fx or orbit["t_gps_s"].size < 2:
        return empty
    idx = _unique_sorted(orbit["t_gps_s"])
    grid = orbit["t_gps_s"][idx]
    r = np.stack([orbit[f"{a}_ecef_m"] for a in "xyz"], axis=1)[idx]
    v = np.stack([orbit[f"v{a}_ecef_m_s"] for a in "xyz"], axis=1)[idx]
    t = np.array([f["t_gps_s"] for f in fx], dtype=float)
    r_est, v_est = hermite_rv(grid, r, v, t)
    ok = np.isfinite(r_est[:, 0])
    return {
        "t_gps_s": t[ok],
        "unix_time_s": np.array([f["unix_time_s"] for f in fx], dtype=float)[ok],
        "dr_m": (np.array([f["pos_ecef_m"] for f in fx]) - r_est)[ok],
        "dv_m_s": (np.array([f["vel_ecef_m_s"] for f in fx]) - v_est)[ok],
        "sigma_r_m": np.array([f["pos_sigma_m"] for f in fx], dtype=float)[ok],
        "sigma_v_m_s": np.array([f["vel_sigma_m_s"] for f in fx], dtype=float)[ok],
    }


def range_residuals(formation: dict, ranges: list[dict]) -> dict:
    """*ranges*: ``range`` bodies.  Returns t_sc_s, peer_id, residual_m and quality (the word
    of the estimate it is taken against; "" where *formation* has no quality column) of the
    valid ranges inside the span of their peer's estimates."""
    out_t, out_p, out_r, out_q = [], [], [], []
    n = formation["peer_id"].size
    words = np.asarray(formation.get("quality", np.full(n, "")), dtype=object)
    if words.size != n:
        words = np.full(n, "", dtype=object)
    pid = formation["peer_id"].astype(int) if formation["peer_id"].size else np.zeros(0, int)
    for p in np.unique(pid):
        sel = np.flatnonzero(pid == p)
        idx = sel[_unique_sorted(formation["t_sc_s"][sel])]
        if idx.size < 2:
            continue
        grid = formation["t_sc_s"][idx]
        dr = np.stack([formation[f"d{a}_ecef_m"] for a in "xyz"], axis=1)[idx]
        dv = np.stack([formation[f"dv{a}_ecef_m_s"] for a in "xyz"], axis=1)[idx]
        bias = formation["range_bias_m"][idx]
        rs = [b for b in ranges if b["valid"] and int(b["peer_id"]) == p]
        if not rs:
            continue
        t = np.array([b["t_sc_s"] for b in rs], dtype=float)
        dr_t, _ = hermite_rv(grid, dr, dv, t)
        ok = np.isfinite(dr_t[:, 0])
        b_t = np.interp(t, grid, bias)
        res = np.array([b["range_m"] for b in rs]) - np.linalg.norm(dr_t, axis=1) - b_t
        out_t.append(t[ok])
        out_p.append(np.full(int(ok.sum()), p))
        out_r.append(res[ok])
        out_q.append(_words_at(grid, words[idx], t[ok]))

    def cat(xs, dt=float):
        return np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)

    return {"t_sc_s": cat(out_t), "peer_id": cat(out_p, int), "residual_m": cat(out_r), "quality": cat(out_q, object)}


def _words_at(grid: np.ndarray, words: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The quality word at each of *t* of estimates at *grid* (sorted): the nearer one's,
    the placeholder's where either neighbour is a placeholder."""
    j = np.clip(np.searchsorted(grid, t, side="right") - 1, 0, grid.size - 2)
    left, right = words[j], words[j + 1]
    out = np.where(t - grid[j] <= grid[j + 1] - t, left, right)
    out[(left == PLACEHOLDER_QUALITY) | (right == PLACEHOLDER_QUALITY)] = PLACEHOLDER_QUALITY
    return out.astype(object)


def estimated(residuals: dict) -> np.ndarray:
    """Which range residuals are taken against an estimate, not a placeholder."""
    return np.asarray(residuals.get("quality", np.full(residuals["residual_m"].size, "")), dtype=object) != (
        PLACEHOLDER_QUALITY
    )
