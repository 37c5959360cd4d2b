"""Relative-navigation errors against truth, shared by the formation tests and bench."""

from __future__ import annotations

import numpy as np

from ground.sim.sensors import hermite_position


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
    dr_t = (hermite_position(tt, truth["r_gcrs_m"][k], truth["v_gcrs_m_s"][k], tg)
            - hermite_position(tt, truth["r_gcrs_m"][0], truth["v_gcrs_m_s"][0], tg))
    dv_t = np.stack([np.interp(tg, tt, truth["v_gcrs_m_s"][k][:, a] - truth["v_gcrs_m_s"][0][:, a])
                     for a in range(3)], 1)
    keep = tg - tt[0] >= settle_s
    er = (np.array([b["dr_gcrs_m"] for b in est]) - dr_t)[keep]
    ev = (np.array([b["dv_gcrs_m_s"] for b in est]) - dv_t)[keep]
    p3 = np.array([np.reshape(b["cov_rel_gcrs"], (6, 6))[:3, :3] for b in est])[keep]
    u = dr_t[keep] / np.linalg.norm(dr_t[keep], axis=1)[:, None]
    nees = np.einsum("ni,ni->n", er, np.linalg.solve(p3, er[..., None])[..., 0])
    return {"er": er, "ev": ev, "nees": nees, "dr_true": dr_t,
            "rms_r": float(np.sqrt(np.mean(np.sum(er**2, 1)))),
            "rms_v": float(np.sqrt(np.mean(np.sum(ev**2, 1)))),
            "rms_los": float(np.sqrt(np.mean(np.einsum("ni,ni->n", er, u) ** 2)))}
