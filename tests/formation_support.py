"""Relative-navigation errors against truth, shared by the formation tests and bench."""

from __future__ import annotations

import numpy as np

from ground.simulate.sensors import hermite_position


def relative_errors(truth, est: list[dict], settle_s: float) -> dict:
    """Errors of ``formation_estimate`` bodies (one peer) against ``truth.npz`` arrays.

    GCRS relative position/velocity errors after *settle_s*; the peer's truth index comes
    from its radio id.  Returns arrays ``er``, ``ev`` (m, m/s), ``nees`` (3-dof, from the
    estimate's full covariance), the truth separation ``dr_true`` and the scalars
    ``rms_r``, ``rms_v``, ``rms_los`` (line-of-sight component of the position error).
    """
    k = int(np.flatnonzero(truth["radio_id"] == est[0]["peer_id"])[0])
    tg = np.array([b["t_gps_s"] for b in est])
    tt = truth["t_gps_s"]
    dr_t = hermite_position(tt, truth["r_gcrs_m"][k], truth["v_gcrs_m_s"][k], tg) - hermite_position(
        tt, truth["r_gcrs_m"][0], truth["v_gcrs_m_s"][0], tg
    )
    dv_t = np.stack(
        [np.interp(tg, tt, truth["v_gcrs_m_s"][k][:, a] - truth["v_gcrs_m_s"][0][:, a]) for a in range(3)], 1
    )
    keep = tg - tt[0] >= settle_s
    er = (np.array([b["dr_gcrs_m"] for b in est]) - dr_t)[keep]
    ev = (np.array([b["dv_gcrs_m_s"] for b in est]) - dv_t)[keep]
    p3 = np.array([np.reshape(b["cov_rel_gcrs"], (6, 6))[:3, :3] for b in est])[keep]
    u = dr_t[keep] / np.linalg.norm(dr_t[keep], axis=1)[:, None]
    nees = np.einsum("ni,ni->n", er, np.linalg.solve(p3, er[..., None])[..., 0])
    return {
        "er": er,
        "ev": ev,
        "nees": nees,
        "dr_true": dr_t,
        "rms_r": float(np.sqrt(np.mean(np.sum(er**2, 1)))),
        "rms_v": float(np.sqrt(np.mean(np.sum(ev**2, 1)))),
        "rms_los": float(np.sqrt(np.mean(np.einsum("ni,ni->n", er, u) ** 2))),
    }


def sides_from(outputs) -> list:
    """Every orbit a range-only partner's published estimates (not propagated) held, from
    the processor's outputs *outputs* ((type, body) pairs): a list of (peer_id, t_gps_s,
    filter dr_gcrs (3,), [each alternative's dr_gcrs], weights: the filter's first, then
    each alternative's)."""
    sides = []
    for kind, b in outputs:
        if kind == "formation_estimate" and not b["propagated"]:
            dr = [np.asarray(d, dtype=float) for d in b["hyp_dr_gcrs_m"]]
            sides.append((b["peer_id"], b["t_gps_s"], dr[0], dr[1:], tuple(b["hyp_weights"])))
    return sides


def true_side_weight(truth, k: int, sides: list, peer_id: int) -> float:
    """The weight the last recorded mixture of partner index *k* gives the orbit nearest the
    truth (1: the published estimate is that orbit alone; NaN: nothing recorded).  Over
    many runs, a calibrated mixture is wrong about the side (this weight below 1/2) about
    as often as the sum of its doubts, 1 - (the largest weight), says."""
    tt = truth["t_gps_s"]
    last = [s for s in sides if s[0] == peer_id]
    if not last:
        return float("nan")
    _, t, dr_f, dr_a, w = last[-1]
    i = min(int(np.searchsorted(tt, t)), tt.size - 1)
    rel = truth["r_gcrs_m"][k][i] - truth["r_gcrs_m"][0][i]
    d = [np.linalg.norm(x - rel) for x in [dr_f] + list(dr_a)]
    return float(w[int(np.argmin(d))]) if len(w) == len(d) else float("nan")


def side_resolved_errors(truth, k: int, sides: list, peer_id: int, settle_s: float):
    """(3D errors (n,), line-of-sight errors (n,), alternatives still kept at the end) of the
    orbit nearest the truth of partner index *k* at every recorded estimate after
    *settle_s*: what the ranges determined, the ambiguity aside."""
    tt = truth["t_gps_s"]
    e3, el, open_end = [], [], 0
    for pid, t, dr_f, dr_a, _w in sides:
        if pid != peer_id or t - tt[0] < settle_s:
            continue
        i = min(int(np.searchsorted(tt, t)), tt.size - 1)
        rel = truth["r_gcrs_m"][k][i] - truth["r_gcrs_m"][0][i]
        best = min([dr_f] + list(dr_a), key=lambda d: np.linalg.norm(d - rel))
        u = rel / np.linalg.norm(rel)
        e3.append(np.linalg.norm(best - rel))
        el.append(abs(u @ (best - rel)))
        open_end = len(dr_a)
    return np.array(e3), np.array(el), open_end
