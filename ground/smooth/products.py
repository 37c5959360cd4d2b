"""The smoother's products as tables: each orbit (``orbit_<id>.csv``) and every pair in both
directions (``formation.csv``), each row with its quality; and the comparison of on-board
estimates with the smoother's.  Arrays in, column tables out (:mod:`ground.outputs.tables`
writes them); the layouts are :data:`ground.outputs.tables.COLUMNS` ``smoothed_orbit`` and
``smoothed_formation``.

Quality of a row (never confidently wrong: the sigmas cover the error wherever the data
reach; where they do not, the row says so):

* ``ok`` - every spacecraft of the row had a fix used within :data:`FIX_REACH_S` (or three
  fix spacings), and, for a pair, a range between them was used within
  :data:`RANGE_REACH_S` (or three range spacings);
* ``gps_only`` - a pair whose ranges do not reach this epoch: the relative state is the
  difference of the GPS-fitted orbits (metres, not decimetres; the sigma says so);
* ``extrapolated`` - a spacecraft of the row has no fix that near: its orbit is carried by
  the dynamics from data further away (the sigma grows with the distance);
* ``suspect`` - its data disagree with the model more than their noise allows (an orbit
  whose used fixes' mean chi-square is over twice its 6 degrees of freedom, a pair whose
  used ranges' residuals have an RMS over twice their sigma, or more than 10 % of its
  measurements left out as outliers): look at the report before trusting it.
"""

from __future__ import annotations

import math

import numpy as np

from ground.outputs.tables import iso_utc
from ground.smooth.core import EDITED, FIX, HELD, RANGE, REJECTED, USED
from pygnc import frames
from pygnc.estimation.formation_filter import line_of_sight_sigma
from pygnc.timebase import utc_unix_from_gps

__all__ = ["compare_formation", "compare_orbit", "formation_table", "orbit_table", "span_mask", "summaries"]

FIX_REACH_S = 600.0
RANGE_REACH_S = 1800.0
QUALITY = ("ok", "gps_only", "extrapolated", "suspect")


def span_mask(result) -> np.ndarray:
    """Grid epochs inside the span of the measurements (the grid's padding past the last one
    left out)."""
    t = result.meas_t_gps_s
    return (result.t_gps_s >= t.min() - 1e-6) & (result.t_gps_s <= t.max() + 1e-6)


def _reach(t_used: np.ndarray, floor_s: float) -> float:
    if t_used.size < 2:
        return floor_s
    return max(floor_s, 3.0 * float(np.median(np.diff(np.sort(t_used)))))


def _near(t_grid: np.ndarray, t_used: np.ndarray, reach: float) -> np.ndarray:
    """Whether each grid time has a used measurement within *reach* s."""
    if t_used.size == 0:
        return np.zeros(t_grid.size, dtype=bool)
    t_used = np.sort(t_used)
    k = np.clip(np.searchsorted(t_used, t_grid), 1, t_used.size - 1) if t_used.size > 1 else np.zeros(t_grid.size, int)
    d = np.abs(t_used[k] - t_grid)
    if t_used.size > 1:
        d = np.minimum(d, np.abs(t_used[k - 1] - t_grid))
    return d <= reach


def summaries(result) -> dict:
    """Per spacecraft (index) and per link (observer, peer): counts of the measurements by
    state, and the used ones' residual statistics; per unordered pair the quality verdict
    inputs.  ``orbit[i]``: used, rejected (gated or edited), fix_chi2_mean, suspect;
    ``link[(o, p)]``: used, rejected, held, resid_rms_m, norm_rms, bias_m, sigma_bias_m;
    ``pair[(i, j)]``: suspect."""
    lay = result.layout
    k, s, st = result.meas_kind, result.meas_sc, result.meas_state
    res, sig, peer = result.meas_residual, result.meas_sigma, result.meas_peer
    out = {"orbit": {}, "link": {}, "pair": {}}
    for i in range(lay.n_sc):
        m = (k == FIX) & (s == i)
        used = m & (st == USED)
        bad = int(np.sum(m & ((st == REJECTED) | (st == EDITED))))
        chi = float(np.mean(res[used])) if used.any() else math.nan
        out["orbit"][i] = {
            "used": int(used.sum()),
            "rejected": bad,
            "fix_chi2_mean": chi,
            "suspect": bool((chi > 12.0) or bad > 0.1 * max(1, int(m.sum()))),
        }
    for lk in lay.links:
        o, p = lk
        m = (k == RANGE) & (s == o) & (peer == p)
        used = m & (st == USED)
        r = res[used]
        l_ = lay.links.index(lk)
        out["link"][lk] = {
            "used": int(used.sum()),
            "rejected": int(np.sum(m & ((st == REJECTED) | (st == EDITED)))),
            "held": int(np.sum(m & (st == HELD))),
            "n": int(m.sum()),
            "resid_rms_m": float(np.sqrt(np.mean(r**2))) if r.size else math.nan,
            "norm_rms": float(np.sqrt(np.mean((r / sig[used]) ** 2))) if r.size else math.nan,
            "bias_m": float(result.x[-1, lay.link_index[lk]]),
            "sigma_bias_m": float(math.sqrt(max(0.0, result.var_bias[-1, l_]))),
        }
    for i, j in result.pairs:
        bad = False
        for lk in ((i, j), (j, i)):
            li = out["link"].get(lk)
            if li is not None and li["n"]:
                bad |= bool(li["norm_rms"] > 2.0) or li["rejected"] > 0.1 * li["n"]
        out["pair"][(i, j)] = {"suspect": bad}
    return out


def _quality(codes: np.ndarray) -> np.ndarray:
    return np.array(QUALITY, dtype=object)[codes]


def _ecef(t_gps_s: np.ndarray, rv: np.ndarray, cov: np.ndarray):
    """[r, v] (n, 6) and covariances (n, 6, 6), GCRS -> ECEF, epoch by epoch (the map is linear:
    also for differences)."""
    out = np.empty_like(rv)
    pc = np.empty_like(cov)
    for n, t in enumerate(t_gps_s):
        j = frames.rv_gcrs_to_ecef_matrix(frames.gcrs_from_itrs_matrix(float(t)))
        out[n] = j @ rv[n]
        pc[n] = j @ cov[n] @ j.T
    return out, pc


def _times(t_gps_s: np.ndarray, clock) -> dict:
    unix = np.asarray(utc_unix_from_gps(t_gps_s), dtype=float)
    t_sc = np.asarray(clock.sc_from_gps(t_gps_s), dtype=float) if clock is not None else np.full(t_gps_s.size, np.nan)
    return {"unix_time_s": unix, "utc": iso_utc(unix), "t_sc_s": t_sc}


def orbit_table(result, i: int, clock, counts: dict, summary: dict) -> dict:
    """``orbit_<id>.csv`` of spacecraft index *i* (COLUMNS['smoothed_orbit'])."""
    keep = span_mask(result)
    t = result.t_gps_s[keep]
    r, v, p = result.orbit(i)
    rv = np.concatenate((r[keep], v[keep]), axis=1)
    e, pe = _ecef(t, rv, p[keep])
    tm = _times(t, clock)
    out = {"unix_time_s": tm["unix_time_s"], "utc": tm["utc"], "t_gps_s": t, "t_sc_s": tm["t_sc_s"]}
    sd = np.sqrt(np.maximum(0.0, np.diagonal(pe, axis1=1, axis2=2)))
    for j, ax in enumerate("xyz"):
        out[f"{ax}_ecef_m"] = e[:, j]
    for j, ax in enumerate("xyz"):
        out[f"v{ax}_ecef_m_s"] = e[:, 3 + j]
    for j, ax in enumerate("xyz"):
        out[f"sigma_{ax}_ecef_m"] = sd[:, j]
    for j, ax in enumerate("xyz"):
        out[f"sigma_v{ax}_ecef_m_s"] = sd[:, 3 + j]
    for j, ax in enumerate("xyz"):
        out[f"{ax}_gcrs_m"] = rv[:, j]
    for j, ax in enumerate("xyz"):
        out[f"v{ax}_gcrs_m_s"] = rv[:, 3 + j]
    n = t.size
    orb = summary["orbit"][i]
    out["n_fixes_used"] = np.full(n, orb["used"], dtype=np.int64)
    out["n_fixes_rejected"] = np.full(n, orb["rejected"], dtype=np.int64)
    out["n_fixes_invalid"] = np.full(n, max(0, counts.get("fixes", 0) - counts.get("fixes_valid", 0)), dtype=np.int64)
    b = result.layout.sc(i) + 9
    out["drag_scale"] = result.x[keep, b]
    out["sigma_drag_scale"] = np.sqrt(np.maximum(0.0, result.var_drag[keep, i]))
    used_t = result.meas_t_gps_s[(result.meas_kind == FIX) & (result.meas_sc == i) & (result.meas_state == USED)]
    covered = _near(t, used_t, _reach(used_t, FIX_REACH_S))
    code = np.where(covered, 3 if orb["suspect"] else 0, 2)
    out["quality"] = _quality(code)
    return out


def _fix_coverage(result, t):
    out = []
    for i in range(result.layout.n_sc):
        used_t = result.meas_t_gps_s[(result.meas_kind == FIX) & (result.meas_sc == i) & (result.meas_state == USED)]
        out.append(_near(t, used_t, _reach(used_t, FIX_REACH_S)))
    return out


def formation_table(result, ids, clocks, summary: dict) -> dict:
    """``formation.csv``: every ordered pair (own, peer) at every grid epoch
    (COLUMNS['smoothed_formation']), rows by time, then own, then peer."""
    keep = span_mask(result)
    t = result.t_gps_s[keep]
    lay = result.layout
    cover = _fix_coverage(result, t)
    blocks = []
    for i in range(lay.n_sc):
        for j in range(lay.n_sc):
            if i == j:
                continue
            dr, dv, p = result.relative(i, j)
            rv = np.concatenate((dr[keep], dv[keep]), axis=1)
            e, pe = _ecef(t, rv, p[keep])
            sd = np.sqrt(np.maximum(0.0, np.diagonal(pe, axis1=1, axis2=2)))
            tm = _times(t, clocks[i])
            b = {"unix_time_s": tm["unix_time_s"], "utc": tm["utc"], "t_sc_s": tm["t_sc_s"]}
            b["peer_id"] = np.full(t.size, ids[j], dtype=np.int64)
            for a, ax in enumerate("xyz"):
                b[f"d{ax}_ecef_m"] = e[:, a]
            for a, ax in enumerate("xyz"):
                b[f"dv{ax}_ecef_m_s"] = e[:, 3 + a]
            for a, ax in enumerate("xyz"):
                b[f"sigma_d{ax}_m"] = sd[:, a]
            for a, ax in enumerate("xyz"):
                b[f"sigma_dv{ax}_m_s"] = sd[:, 3 + a]
            link = summary["link"].get((i, j))
            if link is not None:
                li = lay.links.index((i, j))
                b["range_bias_m"] = result.x[keep, lay.link_index[(i, j)]]
                sig_b = np.sqrt(np.maximum(0.0, result.var_bias[keep, li]))
            else:
                b["range_bias_m"] = np.full(t.size, np.nan)
                sig_b = np.full(t.size, np.nan)
            b["n_ranges_used"] = np.full(t.size, link["used"] if link else 0, dtype=np.int64)
            b["n_ranges_rejected"] = np.full(t.size, link["rejected"] if link else 0, dtype=np.int64)
            b["own_id"] = np.full(t.size, ids[i], dtype=np.int64)
            b["t_gps_s"] = t
            pr = p[keep][:, 0:3, 0:3]
            b["sigma_los_m"] = np.array([line_of_sight_sigma(dr[keep][n], pr[n]) for n in range(t.size)])
            b["sigma_range_bias_m"] = sig_b
            used_t = result.meas_t_gps_s[
                (result.meas_kind == RANGE)
                & (result.meas_state == USED)
                & (
                    ((result.meas_sc == i) & (result.meas_peer == j))
                    | ((result.meas_sc == j) & (result.meas_peer == i))
                )
            ]
            ranged = _near(t, used_t, _reach(used_t, RANGE_REACH_S))
            suspect = summary["pair"][(min(i, j), max(i, j))]["suspect"]
            code = np.where(ranged, 3 if suspect else 0, 1)
            code = np.where(cover[i] & cover[j], code, 2)
            b["quality"] = _quality(code)
            blocks.append(b)
    names = list(blocks[0]) if blocks else []
    out = {n: np.concatenate([b[n] for b in blocks]) for n in names}
    if names:
        order = np.lexsort((out["peer_id"], out["own_id"], out["t_gps_s"]))
        out = {n: v[order] for n, v in out.items()}
    return out


# --------------------------------------------------------------------------- comparisons
def _interp_state(result, i: int | None, j: int | None, t: np.ndarray):
    """The smoother's [r, v] (or j minus i) and its covariance at times *t* inside the grid:
    cubic Hermite on position and velocity, the covariance linearly."""
    tg = result.t_gps_s
    if j is None:
        r, v, p = result.orbit(i)
    else:
        r, v, p = result.relative(i, j)
    h = np.diff(tg)
    k = np.clip(np.searchsorted(tg, t, side="right") - 1, 0, tg.size - 2)
    hh = h[k][:, None]
    s = ((t - tg[k]) / h[k])[:, None]
    s2, s3 = s * s, s * s * s
    a0, a1, a2, a3 = 2 * s3 - 3 * s2 + 1, (s3 - 2 * s2 + s) * hh, 3 * s2 - 2 * s3, (s3 - s2) * hh
    pos = a0 * r[k] + a1 * v[k] + a2 * r[k + 1] + a3 * v[k + 1]
    vel = (
        (6 * s2 - 6 * s) / hh * r[k]
        + (3 * s2 - 4 * s + 1) * v[k]
        + (6 * s - 6 * s2) / hh * r[k + 1]
        + (3 * s2 - 2 * s) * v[k + 1]
    )
    w = s[:, :, None]
    cov = (1 - w) * p[k] + w * p[k + 1]
    return np.concatenate((pos, vel), axis=1), cov


def _inside(result, t):
    keep = span_mask(result)
    tg = result.t_gps_s[keep]
    return np.isfinite(t) & (t >= tg[0]) & (t <= tg[-1])


def compare_orbit(result, i: int, onboard: dict) -> dict | None:
    """On-board orbit estimates (a table with ``t_gps_s`` and the ECEF columns) against the
    smoother's at their times: n, the position difference's 3-D RMS and its median, the
    median 3-D sigma of each, and the fraction of estimates whose every axis is within 3
    sigma (on-board's alone; then both combined).  None without estimates in the span."""
    t = np.asarray(onboard["t_gps_s"], dtype=float)
    ok = _inside(result, t)
    if not ok.any():
        return None
    t = t[ok]
    est = np.stack([np.asarray(onboard[f"{a}_ecef_m"], dtype=float)[ok] for a in "xyz"], 1)
    sig = np.stack([np.asarray(onboard[f"sigma_{a}_ecef_m"], dtype=float)[ok] for a in "xyz"], 1)
    rv, cov = _interp_state(result, i, None, t)
    e, pe = _ecef(t, rv, cov)
    d = est - e[:, 0:3]
    s_sm = np.sqrt(np.maximum(0.0, np.diagonal(pe, axis1=1, axis2=2)[:, 0:3]))
    comb = np.sqrt(sig**2 + s_sm**2)
    n3 = np.linalg.norm(d, axis=1)
    return {
        "n": int(t.size),
        "rms3d_m": float(np.sqrt(np.mean(n3**2))),
        "median3d_m": float(np.median(n3)),
        "onboard_sigma3d_m": float(np.median(np.linalg.norm(sig, axis=1))),
        "smoother_sigma3d_m": float(np.median(np.linalg.norm(s_sm, axis=1))),
        "within_onboard_3sigma": float(np.mean(np.all(np.abs(d) <= 3 * sig, axis=1))),
        "within_3sigma": float(np.mean(np.all(np.abs(d) <= 3 * comb, axis=1))),
    }


def compare_formation(result, i: int, j: int, onboard: dict, valid_max_sigma_m: float = 50.0) -> dict | None:
    """On-board relative estimates of partner j by i (a formation table's rows of that peer)
    against the smoother's j minus i.  Over all estimates: n, the difference's 3-D RMS; over
    the *valid* ones (3-D sigma within *valid_max_sigma_m*, the status file's bound): n_valid,
    3-D and line-of-sight RMS, median line-of-sight sigma of each (on-board: its
    ``sigma_los_m``, or from its per-axis sigmas without correlations), the fraction whose
    line-of-sight difference is within 3 sigma (on-board's; combined), and the fraction more
    than 3 combined sigma off in some axis (**far off**: an estimate on the wrong side of a
    mirror ambiguity is hundreds of sigma off).  None without estimates in the span."""
    t = np.asarray(onboard["t_gps_s"], dtype=float)
    ok = _inside(result, t)
    if not ok.any():
        return None
    t = t[ok]
    est = np.stack([np.asarray(onboard[f"d{a}_ecef_m"], dtype=float)[ok] for a in "xyz"], 1)
    sig = np.stack([np.asarray(onboard[f"sigma_d{a}_m"], dtype=float)[ok] for a in "xyz"], 1)
    rv, cov = _interp_state(result, i, j, t)
    e, pe = _ecef(t, rv, cov)
    d = est - e[:, 0:3]
    u = e[:, 0:3] / np.linalg.norm(e[:, 0:3], axis=1)[:, None]
    d_los = np.einsum("ni,ni->n", u, d)
    if "sigma_los_m" in onboard:
        s_ob = np.asarray(onboard["sigma_los_m"], dtype=float)[ok]
    else:
        s_ob = np.sqrt(np.einsum("ni,ni->n", u**2, sig**2))
    s_sm = np.sqrt(np.maximum(0.0, np.einsum("ni,nij,nj->n", u, pe[:, 0:3, 0:3], u)))
    comb = np.sqrt(s_ob**2 + s_sm**2)
    s3 = np.sqrt(sig**2 + np.diagonal(pe, axis1=1, axis2=2)[:, 0:3])
    v = np.linalg.norm(sig, axis=1) <= valid_max_sigma_m
    out = {
        "n": int(t.size),
        "rms3d_m": float(np.sqrt(np.mean(np.sum(d**2, 1)))),
        "n_valid": int(v.sum()),
        "valid_max_sigma_m": valid_max_sigma_m,
        "smoother_sigma_los_m": float(np.median(s_sm)),
    }
    nan = math.nan
    if v.any():
        out.update(
            rms3d_valid_m=float(np.sqrt(np.mean(np.sum(d[v] ** 2, 1)))),
            rms_los_valid_m=float(np.sqrt(np.mean(d_los[v] ** 2))),
            onboard_sigma_los_m=float(np.median(s_ob[v])),
            within_onboard_3sigma=float(np.mean(np.abs(d_los[v]) <= 3 * s_ob[v])),
            within_3sigma=float(np.mean(np.abs(d_los[v]) <= 3 * comb[v])),
            far_off=float(np.mean(np.any(np.abs(d[v]) > 3 * s3[v], axis=1))),
        )
    else:
        out.update(
            rms3d_valid_m=nan,
            rms_los_valid_m=nan,
            onboard_sigma_los_m=nan,
            within_onboard_3sigma=nan,
            within_3sigma=nan,
            far_off=nan,
        )
    return out
