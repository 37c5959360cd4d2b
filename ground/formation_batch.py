"""Ground: one partner's formation filter run over a whole batch of fixes and ranges.

The flight software runs the same filter (:class:`pygnc.estimation.formation_filter.FormationFilter`)
message by message in :class:`pygnc.processors.formation.FormationProcessor`; this batch
driver serves the estimator tests and the benchmarks and is not shipped to the spacecraft.
"""

from __future__ import annotations

import numpy as np

from pygnc.estimation.formation_filter import I_DR, I_DV, N_STATES, FormationFilter, FormationFilterConfig

__all__ = ["run_formation_filter"]

_EV_OWN, _EV_PEER, _EV_RANGE, _EV_OUT = 0, 1, 2, 3


def run_formation_filter(own_fixes, peer_fixes, ranges, output_times_gps_s,
                         config: FormationFilterConfig | None = None):
    """Run one peer's filter over a batch; report the relative state at every output time.

    *own_fixes*, *peer_fixes*: structured arrays or dicts of arrays with ``t_gps_s``,
    ``pos_ecef_m``, ``vel_ecef_m_s``, ``pos_sigma_m``, ``vel_sigma_m_s`` (n, 3) and ``valid``
    (e.g. ``pygnc.formats.gps.GPS_FIX_DTYPE``).  *ranges*: dict with ``t_gps_s`` (range tags
    already on the GPS axis) and ``range_m`` (and optionally ``valid``).  Events are
    processed in GPS-time order (own fix, peer fix, range, output at equal times).  The
    filter starts at the first valid peer fix with a valid own fix at most
    ``config.max_init_pair_gap_s`` earlier; outputs before that are NaN.

    Returns a dict of arrays over the outputs: ``t_gps_s`` (m,), ``x`` (m, 21),
    ``cov`` (m, 21, 21), ``dr_gcrs_m``, ``dv_gcrs_m_s`` (m, 3), and counters.
    """
    config = config or FormationFilterConfig()
    f = FormationFilter(config)
    events = []

    def add_fixes(fx, kind):
        t = np.asarray(fx["t_gps_s"], dtype=float)
        pos = np.asarray(fx["pos_ecef_m"], dtype=float).reshape(-1, 3)
        vel = np.asarray(fx["vel_ecef_m_s"], dtype=float).reshape(-1, 3)
        ps = np.asarray(fx["pos_sigma_m"], dtype=float).reshape(-1, 3)
        vs = np.asarray(fx["vel_sigma_m_s"], dtype=float).reshape(-1, 3)
        ok = np.asarray(fx["valid"], dtype=bool) & np.isfinite(t) & np.isfinite(pos).all(1) & np.isfinite(vel).all(1)
        for i in np.flatnonzero(ok):
            events.append((t[i], kind, (pos[i], vel[i], ps[i], vs[i])))

    add_fixes(own_fixes, _EV_OWN)
    add_fixes(peer_fixes, _EV_PEER)
    t_r = np.asarray(ranges["t_gps_s"], dtype=float)
    rng_m = np.asarray(ranges["range_m"], dtype=float)
    r_ok = np.asarray(ranges.get("valid", np.ones(t_r.size, bool)), dtype=bool) & np.isfinite(t_r) & np.isfinite(rng_m)
    for i in np.flatnonzero(r_ok):
        events.append((t_r[i], _EV_RANGE, rng_m[i]))
    t_out = np.asarray(output_times_gps_s, dtype=float).ravel()
    for j in range(t_out.size):
        events.append((t_out[j], _EV_OUT, j))
    events.sort(key=lambda e: (e[0], e[1]))

    m = t_out.size
    x_out = np.full((m, N_STATES), np.nan)
    p_out = np.full((m, N_STATES, N_STATES), np.nan)
    last_own = None
    for t, kind, data in events:
        if kind == _EV_OWN:
            if f.initialized and not f.needs_reinit:
                f.predict_to(t)
                f.update_own_fix(t, *data)
            last_own = (t, data)
        elif kind == _EV_PEER:
            if not f.initialized or f.needs_reinit:
                if last_own is not None and t - last_own[0] <= config.max_init_pair_gap_s:
                    if f.initialized:
                        f.n_reinit += 1
                    f.initialize_from_fixes(last_own[0], *last_own[1], t, *data)
                    f.n_own_used += 1
                    f.n_peer_used += 1
                continue
            f.predict_to(t)
            f.update_peer_fix(t, *data)
        elif kind == _EV_RANGE:
            if f.initialized and t >= f.t_gps_s - 1e-9:
                f.predict_to(t)
                f.update_range(t, data)
        elif f.initialized and t >= f.t_gps_s - 1e-9:
            f.predict_to(t)
            x_out[data], p_out[data] = f.x, f.p
    return {
        "t_gps_s": t_out, "x": x_out, "cov": p_out,
        "dr_gcrs_m": x_out[:, I_DR].copy(), "dv_gcrs_m_s": x_out[:, I_DV].copy(),
        "n_own_used": f.n_own_used, "n_own_rejected": f.n_own_rejected,
        "n_peer_used": f.n_peer_used, "n_peer_rejected": f.n_peer_rejected,
        "n_ranges_used": f.n_ranges_used, "n_ranges_rejected": f.n_ranges_rejected,
        "n_reinit": f.n_reinit, "n_bias_resets": f.n_bias_resets, "n_ranges_held": f.n_ranges_held,
    }
