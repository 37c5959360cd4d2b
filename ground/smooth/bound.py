"""The information bound of the smoother's data: what an estimator that knew every orbit's
dynamics exactly would make of the same fixes and ranges.

A Cramér-Rao bound for the joint parameters - every spacecraft's position and velocity at the
first epoch, a range bias per link and a range time-tag lateness per observer - from every
GPS fix of every spacecraft and every range in both directions, with the smoother's
measurement model and priors (:class:`ground.smooth.core.SmoothConfig`).  The dynamics are
the truth's, without process noise (an inverse crime on purpose: a lower bound the model
error keeps any estimator above); the transition matrices are the flight model's variational
equations evaluated along the truth (:func:`pygnc.estimation.orbit_dynamics.propagate_step`
from the truth's state at each step), which is what an exact-dynamics estimator linearises.

Because the problem is linear about the truth, the optimal estimator's error on *these* data
is linear in their actual errors: :func:`information_bound` returns it beside the bound's
sigma, so a smoother's error can be compared with the best these very measurements allow.
The range time-tag lateness is a constant and a rate per observer (the smoother's is a
random walk).  Pure arrays in and out (GCRS, SI, ``t_gps_s``).
"""

from __future__ import annotations

import math

import numpy as np

from pygnc.estimation import orbit_dynamics as od
from pygnc.estimation.gps_fix import GpsFix, fix_sigmas, fix_to_gcrs

__all__ = ["consistent_coverage", "information_bound", "truth_states"]


def truth_states(t_truth, r_m, v_m_s, t):
    """(r (n, 3), v (n, 3)) of a truth sampled at *t_truth* (1-Hz grid) at times *t*: cubic
    Hermite position and its derivative."""
    tt = np.asarray(t_truth, dtype=float)
    t = np.atleast_1d(np.asarray(t, dtype=float))
    h = tt[1] - tt[0]
    i = np.clip(np.floor((t - tt[0]) / h).astype(np.int64), 0, tt.size - 2)
    s = ((t - tt[i]) / h)[:, None]
    r0, r1, v0, v1 = r_m[i], r_m[i + 1], v_m_s[i], v_m_s[i + 1]
    s2, s3 = s * s, s * s * s
    pos = (2 * s3 - 3 * s2 + 1) * r0 + (s3 - 2 * s2 + s) * h * v0 + (3 * s2 - 2 * s3) * r1 + (s3 - s2) * h * v1
    vel = (6 * s2 - 6 * s) / h * r0 + (3 * s2 - 4 * s + 1) * v0 + (6 * s - 6 * s2) / h * r1 + (3 * s2 - 2 * s) * v1
    return pos, vel


def information_bound(truth, fixes, ranges, t_grid, cfg, models, pairs):
    """The bound and the exact-dynamics estimator's error on the same data.

    *truth*: ``t_gps_s`` (T,), ``r_gcrs_m``, ``v_gcrs_m_s`` (N, T, 3) in the smoother's
    spacecraft order; *fixes*: per spacecraft the arrays :class:`~ground.smooth.core.SmootherInput`
    takes; *ranges*: ``t_gps_s`` (tags), ``t_true_gps_s`` (when each was measured),
    ``observer``, ``peer``, ``range_m``, ``bias_m`` (the link's true bias) (m,);
    *t_grid* (K,) a regular grid covering every measurement, starting inside the truth;
    *cfg* the smoother's
    configuration, *models* per spacecraft its dynamics; *pairs* [(i, j), ...].

    Returns ``err`` (K, P, 3): the estimator's relative-position error of each pair
    (j minus i), ``cov`` (K, P, 3, 3) its covariance (the bound), ``los`` (K, P, 3) the
    true line of sight, and for :func:`consistent_coverage` ``param_cov`` (n, n) the
    covariance of the parameters and ``phi_at`` (N, K, 6, 6) each orbit's transition from
    the first epoch.  The time-tag lateness is a straight line in time per observer (its
    fit on these data: the clock map's misfit moves it over a day); each range's departure
    from it is part of its error, as for the smoother.
    """
    n_sc = len(fixes)
    tg = np.asarray(t_grid, dtype=float)
    kk = tg.size
    h = float(tg[1] - tg[0])
    tt = np.asarray(truth["t_gps_s"], dtype=float)
    # Transition of each orbit's [r, v] along its truth, grid epoch to grid epoch.
    phi_at = np.empty((n_sc, kk, 6, 6))
    phi_step = np.empty((n_sc, kk, 6, 6))
    inside = (tg >= tt[0]) & (tg <= tt[-1])
    for i in range(n_sc):
        r, v = truth_states(tt, truth["r_gcrs_m"][i], truth["v_gcrs_m_s"][i], tg)
        cum = np.eye(6)
        s1 = None
        for k in range(kk):
            phi_at[i, k] = cum
            # (past the truth's end: carried on by the model)
            s = np.concatenate((r[k], v[k], np.zeros(3), [1.0])) if inside[k] or s1 is None else s1
            s1, p, _ = od.propagate_step(s, h, models[i], float(tg[k]))
            phi_step[i, k] = p[0:6, 0:6]
            cum = phi_step[i, k] @ cum
    obs = sorted({int(o) for o in ranges["observer"]})
    links = sorted({(int(o), int(p)) for o, p in zip(ranges["observer"], ranges["peer"])})
    n = 6 * n_sc + len(links) + 2 * len(obs)
    il = {lk: 6 * n_sc + q for q, lk in enumerate(links)}
    io = {o: 6 * n_sc + len(links) + 2 * q for q, o in enumerate(obs)}  # lateness, then its rate
    info = np.zeros((n, n))
    g = np.zeros(n)

    def phi_t(i, t):
        k = min(int((t - tg[0]) // h), kk - 1)
        f = (t - tg[k]) / h
        return ((1.0 - f) * np.eye(6) + f * phi_step[i, k]) @ phi_at[i, k]

    for i, fx in enumerate(fixes):
        t = np.asarray(fx["t_gps_s"], dtype=float)
        r, v = truth_states(tt, truth["r_gcrs_m"][i], truth["v_gcrs_m_s"][i], t)
        for q in range(t.size):
            fix = GpsFix.from_table(fx, q)
            z, rr = fix_to_gcrs(fix, *fix_sigmas(cfg.orbit, fix))
            e = z - np.concatenate((r[q], v[q]))
            a = phi_t(i, float(t[q]))
            w = np.linalg.inv(rr)
            sl = slice(6 * i, 6 * i + 6)
            info[sl, sl] += a.T @ w @ a
            g[sl] += a.T @ (w @ e)
    tag = np.asarray(ranges["t_gps_s"], dtype=float)
    late = tag - np.asarray(ranges["t_true_gps_s"], dtype=float)
    o_arr = np.asarray(ranges["observer"], dtype=int)
    t_mid = 0.5 * (tg[0] + tg[-1])
    # The lateness's straight line per observer on these data (the clock map's misfit moves it).
    late_fit = {}
    for o in obs:
        sel = o_arr == o
        dt = tag[sel] - t_mid
        late_fit[o] = (
            np.polyfit(dt, late[sel], 1)[::-1] if sel.sum() > 2 and np.ptp(dt) > 0 else (float(np.mean(late[sel])), 0.0)
        )
    for q in range(tag.size):
        i, j = int(ranges["observer"][q]), int(ranges["peer"][q])
        dt = float(tag[q] - t_mid)
        tq = float(tag[q] - (late_fit[i][0] + late_fit[i][1] * dt))
        ri, vi = truth_states(tt, truth["r_gcrs_m"][i], truth["v_gcrs_m_s"][i], tq)
        rj, vj = truth_states(tt, truth["r_gcrs_m"][j], truth["v_gcrs_m_s"][j], tq)
        p = rj[0] - ri[0]
        rho = float(np.sqrt(p @ p))
        u = p / rho
        rate = float(u @ (vj[0] - vi[0]))
        hrow = np.zeros(n)
        hrow[6 * j : 6 * j + 6] = u @ phi_t(j, tq)[0:3]
        hrow[6 * i : 6 * i + 6] = -(u @ phi_t(i, tq)[0:3])
        hrow[il[(i, j)]] = 1.0
        hrow[io[i]] = -rate
        hrow[io[i] + 1] = -rate * dt
        var = cfg.range_sigma_m**2 + (rate * cfg.range_tag_resolution_s) ** 2 / 12.0
        e = float(ranges["range_m"][q]) - rho - float(ranges["bias_m"][q])
        info += np.outer(hrow, hrow) / var
        g += hrow * e / var
    prior = np.zeros(n)
    prior_err = np.zeros(n)
    bias_true = {}
    for q in range(tag.size):
        bias_true[(int(ranges["observer"][q]), int(ranges["peer"][q]))] = float(ranges["bias_m"][q])
    for lk, idx in il.items():
        prior[idx] = 1.0 / cfg.range_bias_sigma_m**2
        prior_err[idx] = 0.0 - bias_true[lk]
    span = max(float(tg[-1] - tg[0]), 1.0)
    for o, idx in io.items():
        prior[idx] = 1.0 / cfg.time_offset_sigma_s**2
        prior_err[idx] = cfg.time_offset_prior_s - late_fit[o][0]
        # its rate: the smoother's random walk over the span, as a prior on a straight line
        prior[idx + 1] = 1.0 / (cfg.time_offset_walk_s_sqrt_s**2 / span + 1e-12)
        prior_err[idx + 1] = 0.0 - late_fit[o][1]
    total = info + np.diag(prior)
    d = np.sqrt(np.diag(total))
    cov = np.linalg.inv(total / np.outer(d, d)) / np.outer(d, d)
    err = cov @ (g + prior * prior_err)
    out_e = np.empty((kk, len(pairs), 3))
    out_c = np.empty((kk, len(pairs), 3, 3))
    out_u = np.empty((kk, len(pairs), 3))
    rs = [truth_states(tt, truth["r_gcrs_m"][i], truth["v_gcrs_m_s"][i], tg)[0] for i in range(n_sc)]
    for k in range(kk):
        for q, (i, j) in enumerate(pairs):
            a = np.zeros((3, n))
            a[:, 6 * j : 6 * j + 6] = phi_at[j, k][0:3]
            a[:, 6 * i : 6 * i + 6] = -phi_at[i, k][0:3]
            out_e[k, q] = a @ err
            out_c[k, q] = a @ cov @ a.T
            p = rs[j][k] - rs[i][k]
            out_u[k, q] = p / math.sqrt(float(p @ p))
    return {"err": out_e, "cov": out_c, "los": out_u, "param_cov": cov, "phi_at": phi_at}


def consistent_coverage(bound, pairs, epochs, share=0.95, nees_max=9.0, draws=1000, seed=0):
    """How often an estimator whose covariance is exactly right leaves a pair short: per pair
    the probability that fewer than *share* of *epochs* (indices of the grid) have the
    relative-position NEES within *nees_max*.  The errors of the exact-dynamics estimator
    are one draw of its parameters' error, carried to every epoch, so they are correlated
    over the whole arc and a pair is covered or short as a whole; this draws that error
    *draws* times from ``bound["param_cov"]`` (``bound``: :func:`information_bound`'s result).
    Returns an array (P,) in the order of *pairs* (NaN with no epoch)."""
    epochs = np.asarray(epochs, dtype=np.int64)
    if epochs.size == 0:
        return np.full(len(pairs), np.nan)
    pc = np.asarray(bound["param_cov"], dtype=float)
    n = pc.shape[0]
    w, v = np.linalg.eigh(0.5 * (pc + pc.T))
    root = v * np.sqrt(np.clip(w, 0.0, None))  # (a Cholesky factor may fail on a tiny eigenvalue)
    z = root @ np.random.default_rng(seed).standard_normal((n, int(draws)))
    phi = bound["phi_at"]
    out = np.empty(len(pairs))
    for q, (i, j) in enumerate(pairs):
        a = np.zeros((epochs.size, 3, n))
        a[:, :, 6 * j : 6 * j + 6] = phi[j, epochs][:, 0:3]
        a[:, :, 6 * i : 6 * i + 6] = -phi[i, epochs][:, 0:3]
        white = np.linalg.solve(np.linalg.cholesky(bound["cov"][epochs, q]), a)  # (E, 3, n)
        inside = np.zeros(z.shape[1])
        for c in range(0, epochs.size, 256):  # (E, 3, draws) in slices: memory
            e = np.einsum("kan,nd->kad", white[c : c + 256], z)
            inside += np.sum(np.einsum("kad,kad->kd", e, e) <= nees_max, axis=0)
        out[q] = float(np.mean(inside / epochs.size < share))
    return out
