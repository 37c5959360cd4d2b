"""Ground: the fixed-interval RTS smoother of the attitude MEKF (``replay --smooth``).

The flight estimator records what the smoother needs when ``record_history`` is on (off in
flight); the smoothing itself is ground-only and is not shipped to the spacecraft.
"""

from __future__ import annotations

import math

import numpy as np

from pygnc.estimation.attitude_mekf import AttitudeEstimator, AttitudeOutput, misalignment_of
from pygnc.estimation.quaternion import (
    quat_conj,
    quat_from_rotvec,
    quat_multiply,
    rotation_matrix,
    rotvec_from_quat,
)
from pygnc.processors.attitude import AttitudeProcessor

__all__ = ["smooth_estimator", "smoothed_messages"]


def smoothed_messages(proc: AttitudeProcessor) -> list[tuple[str, dict]]:
    """The fixed-interval RTS-smoothed estimates of every sample *proc* processed while
    ``record_history`` was on, as ``attitude_estimate`` outputs (``propagated`` False, same
    fields as the filtered ones; samples without a valid attitude as filtered).  Call after
    the batch (samples still waiting for their orbit estimate are not in it)."""
    est = proc.est
    if not (len(est.history) == len(proc._steps) == est.n_steps):
        raise RuntimeError("attitude smoothing: record_history was not on for the whole run")
    outs = smooth_estimator(est)
    n = proc.n_outputs
    msgs = [
        proc._message(o, t_sc, t_gps, has_pos, propagated=False) for o, (t_sc, t_gps, has_pos) in zip(outs, proc._steps)
    ]
    proc.n_outputs = n  # counts what was sent in flight
    return msgs


def smooth_estimator(est: AttitudeEstimator) -> list[AttitudeOutput]:
    """Fixed-interval RTS smoother over the recorded steps (``record_history``): one
    output per step, same fields as the filtered ones; steps without a valid attitude
    are returned as filtered.

    Multiplicative error-state form.  Per step the record holds the prior (after
    propagation: reference ``q-``, biases ``b-``, ``P-`` and the error-state transition
    ``F`` from the previous posterior, and what the consider parameters add to the
    cross-covariance ``P+ F^T``) and the posterior (``q+``, ``b+``, ``P+``).  Going
    backwards from the last posterior, the smoothed state at k+1 is expressed as an
    error state about the *prior* reference at k+1 (the reference the filter's
    prediction was linearised about): ``e = [rotvec(q-^-1 q_s), b_s - b-]``; then
    ``C = P+_k F^T (P-_{k+1})^-1``, ``dx = C e``, ``q_s,k = q+_k (x) exp(dx_att)``,
    ``b_s,k = b+_k + dx_bias``, ``P_s,k = P+_k + C (P_s,k+1 - P-_{k+1}) C^T``.  A
    re-initialisation (TRIAD) or an invalid step starts a new interval.  The published
    covariance adds the stated epoch's uncertainty as the filtered one does."""
    hist = est.history
    n = len(hist)
    outs = [h.out for h in hist]
    k = n - 1
    while k >= 0:
        if hist[k].prior is None:
            k -= 1
            continue
        end = k
        start = k
        while start > 0 and hist[start].prior[0] and hist[start - 1].prior is not None:
            start -= 1
        outs[start : end + 1] = _smooth_interval(hist[start : end + 1], est.mekf.turns)
        k = start - 1
    return outs


def _smooth_interval(recs: list, turns: dict[str, int]) -> list[AttitudeOutput]:
    last = recs[-1]
    q_s, b_s, p_s = last.out.q_body_to_gcrs.copy(), last.x_post, last.p_post
    res = [_smoothed_output(last, q_s, b_s, p_s, turns)]
    for j in range(len(recs) - 2, -1, -1):
        r, nxt = recs[j], recs[j + 1]
        _, f, p_pred, q_pred, b_pred, cross_extra = nxt.prior
        d = quat_multiply(quat_conj(q_pred), q_s)
        if d[0] < 0:
            d = -d
        e = np.concatenate([rotvec_from_quat(d), b_s - b_pred])
        pf = r.p_post if f is None else r.p_post @ f.T
        if cross_extra is not None:  # the consider parameters' share of cov(x_k, x_k+1)
            pf = pf + cross_extra
        try:
            c = np.linalg.solve(p_pred, pf.T).T  # P+ F^T (P-)^-1, P- symmetric
        except np.linalg.LinAlgError:
            c = pf @ np.linalg.pinv(p_pred)
        dx = c @ e
        q_s = quat_multiply(r.out.q_body_to_gcrs, quat_from_rotvec(dx[:3]))
        q_s /= math.sqrt(float(q_s @ q_s))
        if q_s[0] < 0:
            q_s = -q_s
        b_s = r.x_post + dx[3:]
        p_s = r.p_post + c @ (p_s - p_pred) @ c.T
        p_s = 0.5 * (p_s + p_s.T)
        res.append(_smoothed_output(r, q_s, b_s, p_s, turns))
    res.reverse()
    return res


def _smoothed_output(r, q, b, p, turns: dict[str, int]) -> AttitudeOutput:
    o = r.out
    rate = r.w_meas - b[:3]
    i = turns.get("gyro")
    if r.bmx160 and i is not None:  # the BMX160's rate turned into the body's axes by the smoothed turn
        rate = rotation_matrix(-b[i - 3 : i]) @ rate
    cov = p[:9, :9].copy()
    cov[:3, :3] += (r.time_tag_sigma_s**2) * np.outer(rate, rate)
    return AttitudeOutput(
        o.t_s,
        q.copy(),
        rate,
        b[:3].copy(),
        b[3:6].copy(),
        cov,
        True,
        o.in_eclipse,
        o.sun_faces_used,
        *misalignment_of(turns, "mag", b, p),
        *misalignment_of(turns, "gyro", b, p),
    )
