"""The smoother's estimates against a simulator's truth (``truth.npz``,
:data:`ground.simulate.scenario.TRUTH_ARRAYS`): errors, their consistency with the published
sigmas, and the information bound of the same data (:mod:`ground.smooth.bound`).

Statistics per spacecraft (absolute orbit) and per pair (relative position, j minus i) over
the grid epochs at least *settle_s* after the first: 3-D RMS, line-of-sight RMS, the RMS of
the published sigmas, the mean NEES (3 dof: 3 when consistent), the fraction of epochs
inside the 3-sigma ellipsoid (NEES <= 9, 97.1 % when consistent) and the fraction whose
line-of-sight error is within 3 sigma (99.7 %).  Pure arrays in, dicts out.
"""

from __future__ import annotations

import numpy as np

from ground.smooth.bound import consistent_coverage, information_bound, truth_states

__all__ = ["bound_stats", "match_truth_ranges", "truth_for", "truth_stats"]


def truth_for(truth: dict, ids) -> dict:
    """The truth's orbits in the order of the radio ids *ids* (KeyError naming a missing id),
    ``index`` the truth's index of each, and its range arrays as they are."""
    order = []
    radio = [int(r) for r in truth["radio_id"]]
    for sid in ids:
        if int(sid) not in radio:
            raise KeyError(
                f"the truth has no spacecraft 0x{int(sid):02X} (it has {', '.join(f'0x{r:02X}' for r in radio)})"
            )
        order.append(radio.index(int(sid)))
    out = {
        "t_gps_s": np.asarray(truth["t_gps_s"], dtype=float),
        "r_gcrs_m": np.asarray(truth["r_gcrs_m"])[order],
        "v_gcrs_m_s": np.asarray(truth["v_gcrs_m_s"])[order],
        "index": order,
    }
    for k in ("range_t_gps_s", "range_observer", "range_peer", "range_measured_m", "range_valid"):
        if k in truth:
            out[k] = np.asarray(truth[k])  # (indices of the truth's order)
    return out


def _stats(e, p, u):
    """e (n, 3) errors, p (n, 3, 3) covariances, u (n, 3) lines of sight (n = 0: NaN)."""
    if e.shape[0] == 0:
        keys = ("rms3d_m", "rms_los_m", "sigma3d_m", "sigma_los_m", "nees_mean", "inside_3sigma", "los_inside_3sigma")
        return {"n": 0, **dict.fromkeys(keys, float("nan"))}
    el = np.einsum("ni,ni->n", u, e)
    sl2 = np.einsum("ni,nij,nj->n", u, p, u)
    nees = np.einsum("ni,ni->n", e, np.linalg.solve(p, e[..., None])[..., 0])
    return {
        "n": int(e.shape[0]),
        "rms3d_m": float(np.sqrt(np.mean(np.sum(e**2, 1)))),
        "rms_los_m": float(np.sqrt(np.mean(el**2))),
        "sigma3d_m": float(np.sqrt(np.mean(np.trace(p, axis1=1, axis2=2)))),
        "sigma_los_m": float(np.sqrt(np.mean(sl2))),
        "nees_mean": float(np.mean(nees)),
        "inside_3sigma": float(np.mean(nees <= 9.0)),
        "los_inside_3sigma": float(np.mean(np.abs(el) <= 3.0 * np.sqrt(sl2))),
    }


def truth_stats(result, truth: dict, settle_s: float = 1800.0) -> dict:
    """Errors of a :class:`~ground.smooth.core.SmootherResult` against ``truth_for(truth,
    ids)`` after *settle_s*: ``orbit`` per spacecraft index, ``pairs`` per (i, j)."""
    t = result.t_gps_s
    tt = truth["t_gps_s"]
    sel = (t >= t[0] + settle_s) & (t >= tt[0]) & (t <= tt[-1])
    ts = t[sel]
    r_true = [truth_states(tt, truth["r_gcrs_m"][i], truth["v_gcrs_m_s"][i], ts)[0] for i in range(len(truth["index"]))]
    out = {"orbit": {}, "pairs": {}}
    for i in range(len(r_true)):
        r, _, p = result.orbit(i)
        e = r[sel] - r_true[i]
        u = r_true[i] / np.linalg.norm(r_true[i], axis=1)[:, None]  # (radial for an orbit)
        out["orbit"][i] = _stats(e, p[sel][:, 0:3, 0:3], u)
    for i, j in result.pairs:
        dr, _, p = result.relative(i, j)
        d_true = r_true[j] - r_true[i]
        u = d_true / np.linalg.norm(d_true, axis=1)[:, None]
        out["pairs"][(i, j)] = _stats(dr[sel] - d_true, p[sel][:, 0:3, 0:3], u)
    return out


def match_truth_ranges(truth: dict, inp, index, bias_m) -> dict:
    """The smoother's ranges (``inp.ranges``) with when each was truly measured and its link's
    true bias, for :func:`ground.smooth.bound.information_bound`: each matched to the truth's
    range of the same observer and partner within 2.5 s of its tag whose value is nearest.
    *index*: the truth's index of each smoother spacecraft; *bias_m*: per truth index."""
    rg = inp.ranges
    tr_t = np.asarray(truth["range_t_gps_s"], dtype=float)
    tr_o = np.asarray(truth["range_observer"])
    tr_p = np.asarray(truth["range_peer"])
    tr_m = np.asarray(truth["range_measured_m"], dtype=float)
    tr_v = np.asarray(truth["range_valid"], dtype=bool)
    t_true = np.full(rg["t_gps_s"].size, np.nan)
    groups = {}
    for q in range(rg["t_gps_s"].size):
        o, p = index[int(rg["observer"][q])], index[int(rg["peer"][q])]
        g = groups.get((o, p))
        if g is None:
            c = np.flatnonzero((tr_o == o) & (tr_p == p) & tr_v)
            g = groups[(o, p)] = (tr_t[c], tr_m[c])
        tq = float(rg["t_gps_s"][q])
        lo, hi = np.searchsorted(g[0], tq - 2.5), np.searchsorted(g[0], tq + 2.5)
        if hi > lo:
            t_true[q] = g[0][lo + int(np.argmin(np.abs(g[1][lo:hi] - rg["range_m"][q])))]
    ok = np.isfinite(t_true)
    return {
        "t_gps_s": rg["t_gps_s"][ok],
        "t_true_gps_s": t_true[ok],
        "observer": rg["observer"][ok],
        "peer": rg["peer"][ok],
        "range_m": rg["range_m"][ok],
        "bias_m": np.array([bias_m[index[int(o)]] for o in rg["observer"][ok]], dtype=float),
        "unmatched": int((~ok).sum()),
    }


def bound_stats(result, truth: dict, inp, cfg, bias_m, settle_s: float = 1800.0, coverage_draws: int = 0) -> dict:
    """The information bound of the data the smoother used (:func:`information_bound`: its
    measurements in *inp* whose state in *result* is USED) per pair after *settle_s*, in
    :func:`truth_stats`' terms: ``rms*`` the exact-dynamics estimator's error on these data,
    ``sigma*`` the bound; with *coverage_draws*, also ``p_short``: how often an estimator
    with exactly this covariance has fewer than 95 % of the epochs inside 3 sigma
    (:func:`~ground.smooth.bound.consistent_coverage`)."""
    from ground.smooth.core import FIX, RANGE, USED, SmootherInput

    idx = truth["index"]
    # The measurements the smoother used (the outliers it left out are not information).
    used = result.meas_state == USED
    fixes, n0 = [], 0
    for fx in inp.fixes:
        n = len(fx["t_gps_s"])
        keep = used[n0 : n0 + n] & (result.meas_kind[n0 : n0 + n] == FIX)
        fixes.append({k: np.asarray(v)[keep] for k, v in fx.items()})
        n0 += n
    keep = used[n0:] & (result.meas_kind[n0:] == RANGE)
    kept = SmootherInput(inp.ids, fixes, {k: np.asarray(v)[keep] for k, v in inp.ranges.items()})
    ranges = match_truth_ranges(truth, kept, idx, bias_m)
    bcs = inp.ballistic_coeff_kg_m2 or (None,) * len(inp.ids)
    models = [cfg.model(b) for b in bcs]
    b = information_bound(truth, fixes, ranges, result.t_gps_s, cfg, models, result.pairs)
    t = result.t_gps_s
    sel = (t >= t[0] + settle_s) & (t <= truth["t_gps_s"][-1])
    out = {}
    for q, pair in enumerate(result.pairs):
        out[pair] = _stats(b["err"][sel, q], b["cov"][sel, q], b["los"][sel, q])
    if coverage_draws:
        p_short = consistent_coverage(b, result.pairs, np.flatnonzero(sel), draws=coverage_draws)
        for q, pair in enumerate(result.pairs):
            out[pair]["p_short"] = float(p_short[q])
    return out
