"""Ground: the flight formation processor run over arrays of fixes and ranges.

:class:`pygnc.processors.formation.FormationProcessor`, as it flies with the partner's fixes
relayed, on one partner's data already on the GPS time axis
(:func:`ground.replay.array_stream.stream_from_arrays`): the estimates the accuracy tests judge
are the ones the spacecraft would publish.
"""

from __future__ import annotations

import numpy as np

from ground.replay.array_stream import stream_from_arrays
from pygnc.config import Config
from pygnc.estimation.formation_filter import N_STATES, FormationFilterConfig
from pygnc.processors.formation import FormationProcessor

__all__ = ["run_formation_processor"]

#: Partner fixes relayed, an estimate at every sensor sample.
CONFIG = Config(range_gps_source="peer", batch_decimate_estimates=False)


def run_formation_processor(
    own_fixes,
    peer_fixes,
    ranges,
    output_times_gps_s,
    filter_config: FormationFilterConfig | None = None,
    peer_id: int = 0x4B,
    config: Config | None = None,
) -> dict:
    """The processor's estimates of partner *peer_id* at *output_times_gps_s* (sensor samples).

    *own_fixes*, *peer_fixes*: structured arrays or dicts of arrays with ``t_gps_s``,
    ``pos_ecef_m``, ``vel_ecef_m_s``, ``pos_sigma_m``, ``vel_sigma_m_s`` (n, 3) and ``valid``;
    *ranges*: ``t_gps_s`` and ``range_m`` (and optionally ``valid``); *filter_config*: the
    filter's tunables (default: *config*'s).

    Returns a dict of arrays over the output times, NaN where nothing was published (before
    the filter starts): ``t_gps_s`` (m,), ``dr_gcrs_m``, ``dv_gcrs_m_s`` (m, 3), ``cov_rel``
    (m, 6, 6) the relative state's GCRS covariance, ``range_bias_m``, ``sigma_range_bias_m``
    (m,), ``quality`` (m,) the words published; the filter's covariance after each message that changed it (``p_filter``
    (k, n, n)); the filter at the end (``t_end``, ``x_end`` (n,), ``p_end`` (n, n); n = ``N_STATES``) and
    its counters;
    ``counters``: the processor's.
    """
    proc = FormationProcessor(config or CONFIG, filter_config)
    t_out = np.asarray(output_times_gps_s, dtype=float).ravel()
    messages, _ = stream_from_arrays(own_fixes, t_out, peer_fixes, ranges, peer_id)
    published, p_filter, p_last = {}, [], None
    for msg_type, body in messages:
        if msg_type in proc.consumes:
            for kind, b in proc.handle(msg_type, body):
                if kind == "formation_estimate" and b["peer_id"] == peer_id and not b["propagated"]:
                    published[b["t_gps_s"]] = b
            peer = proc.peers.get(peer_id)
            if peer is not None and peer.filter.initialized and peer.filter.p is not p_last:
                p_last = peer.filter.p  # (every step and update makes a new array)
                p_filter.append(p_last.copy())
    m = t_out.size
    dr, dv = np.full((m, 3), np.nan), np.full((m, 3), np.nan)
    cov = np.full((m, 6, 6), np.nan)
    bias, sig_bias = np.full(m, np.nan), np.full(m, np.nan)
    quality = np.full(m, "", dtype=object)
    for j, t in enumerate(t_out.tolist()):
        b = published.get(t)
        if b is not None:
            quality[j] = b["quality"]
            dr[j], dv[j] = b["dr_gcrs_m"], b["dv_gcrs_m_s"]
            cov[j] = np.reshape(b["cov_rel_gcrs"], (6, 6))
            bias[j], sig_bias[j] = b["range_bias_m"], b["sigma_range_bias_m"]
    res = {
        "t_gps_s": t_out,
        "dr_gcrs_m": dr,
        "dv_gcrs_m_s": dv,
        "cov_rel": cov,
        "range_bias_m": bias,
        "sigma_range_bias_m": sig_bias,
        "quality": quality,
        "counters": proc.counters(),
        "p_filter": np.array(p_filter).reshape(-1, N_STATES, N_STATES),
    }
    peer = proc.peers.get(peer_id)
    f = None if peer is None else peer.filter
    res["t_end"] = None if f is None or not f.initialized else f.t_gps_s
    res["x_end"] = None if f is None or not f.initialized else f.x.copy()
    res["p_end"] = None if f is None or not f.initialized else f.p.copy()
    for k in (
        "n_own_used",
        "n_own_rejected",
        "n_peer_used",
        "n_peer_rejected",
        "n_ranges_used",
        "n_ranges_rejected",
        "n_reinit",
        "n_bias_resets",
        "n_ranges_held",
    ):
        res[k] = 0 if f is None else int(getattr(f, k))
    return res
