"""Ground: the message stream ingest would publish, from arrays already on the GPS time axis.

For running the flight processors (:mod:`pygnc.processors`) on data that are not batch
files - the estimator tests and the benchmarks.  Every spacecraft clock reads GPS time (an
identity ``clock_map``); messages are merged by time with ingest's ties (sensor, own fix,
peer fix, range) and end with ``batch_end``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["IDENTITY_CLOCK_MAP", "stream_from_arrays"]

#: A ``clock_map`` body whose map is the identity: spacecraft time = GPS time.
IDENTITY_CLOCK_MAP = {
    "gps_minus_sc_s": 0.0,
    "drift": 0.0,
    "t_ref_sc_s": 0.0,
    "n_pairs": 0,
    "residual_rms_s": 0.0,
    "utc_minus_sc_s": 0.0,
}

_SENSOR, _OWN, _PEER, _RANGE = 0, 1, 2, 3


def _fix_bodies(fixes, peer_id: int) -> list[dict]:
    t = np.asarray(fixes["t_gps_s"], dtype=float)
    cols = [
        np.asarray(fixes[k], dtype=float).reshape(-1, 3).tolist()
        for k in ("pos_ecef_m", "vel_ecef_m_s", "pos_sigma_m", "vel_sigma_m_s")
    ]
    valid = np.asarray(fixes["valid"], dtype=bool).tolist()
    return [
        {
            "peer_id": peer_id,
            "t_gps_s": float(t[i]),
            "t_sc_s": float(t[i]),
            "valid": valid[i],
            "pos_ecef_m": cols[0][i],
            "vel_ecef_m_s": cols[1][i],
            "pos_sigma_m": cols[2][i],
            "vel_sigma_m_s": cols[3][i],
        }
        for i in range(t.size)
    ]


def stream_from_arrays(
    own_fixes, sample_times_gps_s, peer_fixes=None, ranges=None, peer_id: int = 0x4B
) -> tuple[list, np.ndarray]:
    """(messages, the stream position of each own fix) from *own_fixes* and *peer_fixes*
    (structured arrays or dicts of arrays with ``t_gps_s``, ``pos_ecef_m``,
    ``vel_ecef_m_s``, ``pos_sigma_m``, ``vel_sigma_m_s`` (n, 3) and ``valid``; e.g.
    ``pygnc.formats.gps.GPS_FIX_DTYPE``), *ranges* (``t_gps_s``, ``range_m``, optionally
    ``valid``) of partner *peer_id*, and sensor samples at *sample_times_gps_s*."""
    parts = [(np.asarray(sample_times_gps_s, dtype=float).ravel(), _SENSOR, "sensor", None)]
    parts.append((np.asarray(own_fixes["t_gps_s"], dtype=float), _OWN, "gps_fix", _fix_bodies(own_fixes, 0)))
    if peer_fixes is not None:
        parts.append(
            (np.asarray(peer_fixes["t_gps_s"], dtype=float), _PEER, "gps_fix", _fix_bodies(peer_fixes, peer_id))
        )
    if ranges is not None:
        t_r = np.asarray(ranges["t_gps_s"], dtype=float)
        r_m = np.asarray(ranges["range_m"], dtype=float).tolist()
        ok = np.asarray(ranges.get("valid", np.ones(t_r.size, bool)), dtype=bool).tolist()
        parts.append(
            (
                t_r,
                _RANGE,
                "range",
                [
                    {"peer_id": peer_id, "t_sc_s": float(t_r[i]), "range_m": r_m[i], "valid": ok[i]}
                    for i in range(t_r.size)
                ],
            )
        )
    t = np.concatenate([p[0] for p in parts])
    kind = np.concatenate([np.full(p[0].size, p[1]) for p in parts])
    idx = np.concatenate([np.arange(p[0].size) for p in parts])
    order = np.lexsort((kind, t))  # stable: arrival order within a time and kind
    by_kind = {p[1]: p for p in parts}
    messages = [("clock_map", dict(IDENTITY_CLOCK_MAP))]
    own_at = np.empty(parts[1][0].size, dtype=np.int64)
    for k, i in zip(kind[order].tolist(), idx[order].tolist()):
        t_k, _, msg_type, bodies = by_kind[k]
        if k == _OWN:
            own_at[i] = len(messages)
        messages.append((msg_type, {"t_sc_s": float(t_k[i])} if bodies is None else bodies[i]))
    n_peer = by_kind[_PEER][0].size if _PEER in by_kind else 0
    n_range = by_kind[_RANGE][0].size if _RANGE in by_kind else 0
    messages.append(
        (
            "batch_end",
            {
                "n_sensor": parts[0][0].size,
                "n_gps_fix": parts[1][0].size,
                "n_peer_fix": n_peer,
                "n_range": n_range,
                "t_sc_first_s": float(np.nanmin(t)) if t.size else float("nan"),
                "t_sc_last_s": float(np.nanmax(t)) if t.size else float("nan"),
            },
        )
    )
    return messages, own_at
