"""``replay --smooth``: the orbit of the RTS-smoothed batch filter
(:mod:`ground.replay.orbit_filter`) at the replay's sensor times, and the attitude smoother
(:mod:`ground.replay.attitude_smoother`) of an in-process run."""

from __future__ import annotations

import numpy as np

from ground.outputs import tables as tb
from ground.replay.in_process import ReplayRun
from pygnc.processors import clock_map_from_body


def stream_parts(stream):
    fixes, sensors_t_sc, ranges, clock = [], [], [], None
    for msg_type, body in stream.messages:
        if msg_type == "sensor":
            sensors_t_sc.append(body["t_sc_s"])
        elif msg_type == "gps_fix" and body["peer_id"] == 0:
            fixes.append(body)
        elif msg_type == "range":
            ranges.append(body)
        elif msg_type == "clock_map":
            clock = body
    return fixes, np.asarray(sensors_t_sc, dtype=float), ranges, clock


def smoothed_orbit(stream, config=None) -> tuple[dict, np.ndarray]:
    """Orbit table (and GCRS covariances) from the RTS-smoothed batch filter, at the sensor
    times of *stream* mapped to GPS time with its clock map.  Rows before the first valid
    fix are left out, as in the filtered replay.  ``n_fixes_*`` are whole-batch counts; each
    row's quality is judged as the flight judges its estimates, under *config* (default: the
    defaults), whose ``[orbit_filter]`` tunables the filter takes, as the flight's did."""
    from ground.replay.orbit_filter import run_orbit_filter
    from pygnc import frames
    from pygnc.config import Config
    from pygnc.frames import covariance_gcrs_to_ecef
    from pygnc.processors.orbit import orbit_filter_config
    from pygnc.timebase import utc_unix_from_gps
    from pygnc.validity import orbit_word

    config = config or Config()

    fixes, t_sc, _, clock = stream_parts(stream)
    if clock is None or not any(f["valid"] for f in fixes) or t_sc.size == 0:
        return tb.empty_table("orbit"), np.zeros((0, 6, 6))
    cm = clock_map_from_body(clock)
    arr = {
        k: np.asarray([f[k] for f in fixes], dtype=bool if k == "valid" else float)
        for k in ("t_gps_s", "pos_ecef_m", "vel_ecef_m_s", "pos_sigma_m", "vel_sigma_m_s", "valid")
    }
    t_gps = np.asarray(cm.gps_from_sc(t_sc), dtype=float)
    res = run_orbit_filter(arr, t_gps, orbit_filter_config(config), smooth=True)
    ok = np.isfinite(res["r_ecef_m"][:, 0])
    t_gps, t_sc = t_gps[ok], t_sc[ok]
    cov = res["cov"][ok][:, :6, :6]
    m = frames.gcrs_from_itrs_matrix(t_gps) if t_gps.size else np.zeros((0, 3, 3))
    sig = np.array([np.sqrt(np.clip(np.diag(covariance_gcrs_to_ecef(c, mi)), 0.0, None)) for c, mi in zip(cov, m)])
    sig = sig.reshape(-1, 6)
    bodies = [
        {
            "t_sc_s": float(t_sc[i]),
            "t_gps_s": float(t_gps[i]),
            "unix_time_s": float(utc_unix_from_gps(t_gps[i])),
            "r_ecef_m": res["r_ecef_m"][ok][i],
            "v_ecef_m_s": res["v_ecef_m_s"][ok][i],
            "r_gcrs_m": res["r_gcrs_m"][ok][i],
            "v_gcrs_m_s": res["v_gcrs_m_s"][ok][i],
            "sigma_r_m": sig[i, :3],
            "sigma_v_m_s": sig[i, 3:],
            "n_used": res["n_fixes_used"],
            "n_rejected": res["n_fixes_rejected"],
            "n_invalid": res["n_fixes_invalid"],
            "quality": orbit_word(sig[i, :3], config, bool(res["confirmed"][ok][i])),
        }
        for i in range(t_gps.size)
    ]
    return tb.orbit_table(bodies), cov


def attitude_smoother(run: ReplayRun):
    """The attitude smoother for an in-process run (``ground.replay.attitude_smoother``), or None
    (a pipeline run keeps no processor objects)."""
    from ground.replay.attitude_smoother import smoothed_messages

    proc = run.extra.get("processor_objects", {}).get("attitude")
    return None if proc is None else (lambda: smoothed_messages(proc))
