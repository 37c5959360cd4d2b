"""``python -m ground replay SCENARIO_DIR --out OUT_DIR``: run the flight estimators on a
scenario's files and write what they estimated.

In-process (default): :func:`pygnc.tasks.ingest.build_message_stream` reads the batch
exactly as the flight ingest does; every message, in order, goes to each processor
(:mod:`pygnc.processors`: orbit, attitude, formation; :mod:`ground.replay_core`) whose
``consumes`` names its type; what a processor returns goes on to the
*later* processors that consume it (orbit_estimate -> attitude).  Same code as flight, no
processes, no sockets.  ``--pipeline`` runs the real process tree (``python -m pygnc``, the
same program as ``flight/main.py``) on a
copy of the files instead and reads the estimates back from its bus log
(:mod:`ground.replay_pipeline`).

Outputs in OUT_DIR (columns: :data:`ground.outputs.tables.COLUMNS`, docs/interface.md):

* ``orbit.csv``, ``attitude.csv``, ``formation.csv`` - one row per sensor sample time (per
  peer for formation), from the estimates with ``propagated == False``, each with its
  quality word;
* ``partner_orbit.csv`` - each orbit a range-only partner keeps, while it keeps more than
  one, at the same times;
* ``orbit.oem`` - CCSDS OEM 2.0 (KVN) of the orbit estimate (not written without rows);
* ``summary.json`` - row counts, estimator notes, timings; with truth (``truth.npz`` of a
  simulated scenario) RMS / max errors after ``--settle`` and NEES statistics; without
  truth, GPS-fix and range residual statistics;
* ``plots/*.png`` - errors with ±3σ bounds (truth) or residuals (no truth).

``--smooth`` replaces the orbit by the RTS-smoothed batch solution
(:func:`ground.orbit_batch.run_orbit_filter`) at the same sensor times, and the
attitude by the attitude smoother (:mod:`ground.attitude_smoother`).  ``--accept-status`` sets
the fix solution-status values taken as valid (as ``decode``; the flight team's simulated
files need ``0,1``) over ``--config``.

Every argument is checked before anything runs (an existing file as ``--out``, a truth file
that is not one, a ``--spacecraft`` the truth lacks): a message and exit status 2 (1 for an
unreadable truth file), never a traceback after the work.

A directory with none of the inputs (``sense.bin``, ``range/``, ``range.bin``) is refused,
saying what it holds instead (batch files: decode or serve them).

Exit status: 0 replayed (even without a valid fix: orbit.csv then has no rows and a
message says so), 1 unreadable scenario or truth, or failed pipeline, 2 bad usage (a
directory with no input of a replay).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import math
import sys
from pathlib import Path

import numpy as np

from ground.decode import accept_status_list
from ground.outputs import tables as tb
from ground.outputs.residuals import range_residuals
from ground.replay_core import ReplayRun, run_in_process
from pygnc.atomic import write_atomic
from pygnc.partners import partner_name
from pygnc.processors import clock_map_from_body


# --------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "scenario",
        metavar="SCENARIO_DIR",
        type=Path,
        help="directory with sense.bin and/or range/ (a simulated scenario, or the host's inputs "
        "as the Pi read them; downlinked batch files are pygnc's estimates: 'ground decode' them)",
    )
    p.add_argument("--out", required=True, type=Path, metavar="OUT_DIR", help="directory for the outputs")
    p.add_argument(
        "--pipeline",
        action="store_true",
        help="run the real process tree (python -m pygnc, as flight/main.py) and read its bus log "
        "instead of running in-process",
    )
    p.add_argument(
        "--pipeline-timeout",
        default="30m",
        metavar="DURATION",
        help="give up on the process tree after this long (default 30m; e.g. 600, 10m)",
    )
    p.add_argument(
        "--smooth", action="store_true", help="RTS-smoothed orbit (and attitude, if its module has a smoother)"
    )
    p.add_argument("--config", type=Path, metavar="TOML", help="flight configuration overrides (as PYGNC_CONFIG)")
    p.add_argument(
        "--accept-status",
        type=accept_status_list,
        default=None,
        metavar="LIST",
        help="comma-separated NovAtel solution-status values accepted as valid fixes (default 0, "
        "or --config's; the flight team's simulated files need 0,1)",
    )
    p.add_argument("--truth", type=Path, metavar="NPZ", help="truth file (default: SCENARIO_DIR/truth.npz if present)")
    p.add_argument("--no-truth", action="store_true", help="ignore any truth: residual plots and statistics only")
    p.add_argument(
        "--spacecraft",
        metavar="NAME",
        help="which spacecraft of the truth the files belong to (default: "
        "the top-level one, or the sub-directory's name)",
    )
    p.add_argument(
        "--settle",
        default=None,
        metavar="DURATION",
        help="leave the first DURATION of each estimator out of the error statistics "
        "(default 30m, or 10%% of the run when it is shorter than 3h)",
    )
    p.add_argument(
        "--oem-frame", choices=("ITRF", "GCRF"), default="ITRF", help="REF_FRAME of orbit.oem (default ITRF = ECEF)"
    )
    p.add_argument("--oem-covariance", action="store_true", help="add a COVARIANCE block per epoch to orbit.oem")
    p.add_argument(
        "--object-name",
        metavar="NAME",
        help="OBJECT_NAME (and OBJECT_ID) of orbit.oem "
        "(default: the truth's spacecraft name, else the scenario directory's name)",
    )
    p.add_argument("--no-plots", action="store_true", help="do not draw plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar, print nothing but errors")


# --------------------------------------------------------------------------- smoothing
def _stream_parts(stream):
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
    defaults)."""
    from ground.orbit_batch import run_orbit_filter
    from pygnc import frames
    from pygnc.config import Config
    from pygnc.frames import covariance_gcrs_to_ecef
    from pygnc.timebase import utc_unix_from_gps
    from pygnc.validity import orbit_word

    config = config or Config()

    fixes, t_sc, _, clock = _stream_parts(stream)
    if clock is None or not any(f["valid"] for f in fixes) or t_sc.size == 0:
        return tb.empty_table("orbit"), np.zeros((0, 6, 6))
    cm = clock_map_from_body(clock)
    arr = {
        k: np.asarray([f[k] for f in fixes], dtype=bool if k == "valid" else float)
        for k in ("t_gps_s", "pos_ecef_m", "vel_ecef_m_s", "pos_sigma_m", "vel_sigma_m_s", "valid")
    }
    t_gps = np.asarray(cm.gps_from_sc(t_sc), dtype=float)
    res = run_orbit_filter(arr, t_gps, smooth=True)
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
            "quality": orbit_word(sig[i, :3], config),
        }
        for i in range(t_gps.size)
    ]
    return tb.orbit_table(bodies), cov


def _attitude_smoother(run: ReplayRun):
    """The attitude smoother for an in-process run (``ground.attitude_smoother``), or None
    (a pipeline run keeps no processor objects)."""
    from ground.attitude_smoother import smoothed_messages

    proc = run.extra.get("processor_objects", {}).get("attitude")
    return None if proc is None else (lambda: smoothed_messages(proc))


# --------------------------------------------------------------------------- outputs
def _orbit_state(table: dict, frame: str) -> np.ndarray:
    names = (
        ([f"{a}_ecef_m" for a in "xyz"] + [f"v{a}_ecef_m_s" for a in "xyz"])
        if frame == "ITRF"
        else ([f"{a}_gcrs_m" for a in "xyz"] + [f"v{a}_gcrs_m_s" for a in "xyz"])
    )
    return np.stack([table[n] for n in names], axis=1) if table["unix_time_s"].size else np.zeros((0, 6))


def _oem_covariances(table: dict, cov_gcrs: np.ndarray, frame: str) -> np.ndarray:
    if frame == "GCRF":
        return cov_gcrs
    from pygnc import frames
    from pygnc.frames import covariance_gcrs_to_ecef

    m = frames.gcrs_from_itrs_matrix(table["t_gps_s"])
    return np.array([covariance_gcrs_to_ecef(c, mi) for c, mi in zip(cov_gcrs, m)]).reshape(-1, 6, 6)


def default_object_name(scenario: Path, truth) -> str:
    if truth is not None:
        return truth.name
    name = Path(scenario).resolve().name
    return name or "PYGNC"


def _settle_s(args, span_s: float) -> float:
    from ground.outputs.summary import default_settle_s
    from ground.simulate import parse_duration_s

    return default_settle_s(span_s) if args.settle is None else parse_duration_s(args.settle)


def _span_s(tables: dict) -> float:
    ts = [t["unix_time_s"] for t in tables.values() if t["unix_time_s"].size]
    if not ts:
        return 0.0
    return float(max(np.nanmax(t) for t in ts) - min(np.nanmin(t) for t in ts))


def _stack(table, fmt, axes="xyz"):
    return np.stack([table[fmt.format(a)] for a in axes], axis=1)


def _no_position_line(table: dict) -> str | None:
    """How many attitude rows lacked an orbit estimate, or None if all had one."""
    n = int(table["unix_time_s"].size)
    without = int(n - table["has_position"].sum()) if n else 0
    if not without:
        return None
    if without == n:
        return (
            f"  attitude: no orbit estimate for any of the {n} samples: rates and gyro bias only, "
            "no attitude [no_position]"
        )
    return (
        f"  attitude: {without} of {n} samples had no orbit estimate (rates and gyro bias only for those; "
        f"the other {n - without} used the field and sun models) [no_position]"
    )


def write_outputs(
    args, run: ReplayRun, stream, out: Path, say, truth=None, nees_series: dict | None = None, config=None
) -> dict:
    """Tables, CSVs, OEM, truth comparison (*truth*: from :func:`ground.outputs.truth.find_truth`)
    or residuals, plots and summary.json (*config*: the flight configuration replayed, for
    the smoothed orbit's quality words).  With truth, a *nees_series* dict receives each
    estimator's NEES per row: ``{"orbit" | "attitude" | "formation/<partner, 0x4B>": (unix_time_s,
    nees, dof)}`` (the Monte Carlo campaign's consistency test pools them over runs)."""
    from ground.outputs import oem

    out.mkdir(parents=True, exist_ok=True)
    tables = {kind: tb.BUILDERS[kind](run.estimates[mt]) for mt, kind in tb.KIND_OF_TYPE.items()}
    cov = tb.orbit_covariances_gcrs(run.estimates["orbit_estimate"])
    att_cov = tb.attitude_covariances(run.estimates["attitude_estimate"])
    smoothing = {"orbit": False, "attitude": False}
    if args.smooth:
        tables["orbit"], cov = smoothed_orbit(stream, config)
        smoothing["orbit"] = True
        smoother = _attitude_smoother(run)
        if smoother is not None:
            bodies = [b for t, b in smoother() if t == "attitude_estimate" and not b.get("propagated", False)]
            tables["attitude"] = tb.attitude_table(bodies)
            att_cov = tb.attitude_covariances(bodies)
            smoothing["attitude"] = True
        elif "attitude" in run.processors:
            say("  --smooth: the attitude module offers no smoother; attitude.csv is the filtered estimate")

    rows = {kind: tb.write_csv(t, out / f"{kind}.csv") for kind, t in tables.items()}
    # Each orbit a range-only partner keeps, while it keeps more than one (as downlinked).
    kept = tb.partner_orbit_table(tb.partner_orbit_bodies(run.estimates["formation_estimate"]))
    rows["partner_orbit"] = tb.write_csv(kept, out / "partner_orbit.csv")
    say("  " + ", ".join(f"{kind}.csv {n} rows" for kind, n in rows.items()))
    smoothed = [k for k, v in smoothing.items() if v]
    if args.smooth:
        say(
            f"  --smooth: {', '.join(smoothed) or 'nothing'} RTS-smoothed (fixed-interval smoother over the whole "
            "batch)" + ("" if "attitude" in smoothed or "attitude" not in run.processors else "; attitude filtered")
        )
    for kind, why in run.missing.items():
        say(f"  {kind}: estimator {why}: {kind}.csv has a header and no rows")
    for note in run.notes:
        if note.get("estimator") == "attitude" and note.get("code") == "no_position":
            continue  # said with counts below: the note is sent at the first such sample only
        say(f"  {note['estimator']}: {note['text']} [{note['code']}]")
    line = _no_position_line(tables["attitude"])
    if line:
        say(line)
    fixes, _, ranges, _ = _stream_parts(stream)
    n_valid = sum(bool(f["valid"]) for f in fixes)
    range_res = range_residuals(tables["formation"], ranges)
    to_unix = tb.sc_to_unix(*tables.values())
    rows["range_residuals"] = tb.write_csv(tb.range_residual_table(range_res, to_unix), out / "range_residuals.csv")
    if rows["orbit"] == 0:
        why = "no valid GPS fix in the batch" if n_valid == 0 else "the orbit estimator produced none"
        say(f"  orbit: {why}: orbit.csv has no rows and orbit.oem is not written")

    # ---- OEM ------------------------------------------------------------------------------
    oem_path = out / "orbit.oem"
    if oem_path.exists():
        oem_path.unlink()
    n_oem = 0
    if rows["orbit"]:
        name = args.object_name or default_object_name(args.scenario, truth)
        covs = _oem_covariances(tables["orbit"], cov, args.oem_frame) if args.oem_covariance else None
        frame_note = (
            (
                "ITRF here is the ITRS of pygnc.frames (IAU 2006/2000B, no polar motion, UT1 = UTC), "
                "which GPS (WGS-84) matches at the cm level"
            )
            if args.oem_frame == "ITRF"
            else (
                "GCRF here is the GCRS of pygnc.frames with UT1 = UTC (up to ~0.5 km along-track "
                "offset from the true GCRS; the ECEF solution is unaffected)"
            )
        )
        what = "RTS-smoothed" if smoothing["orbit"] else "filtered"
        comments = [
            f"pygnc replay of {Path(args.scenario).resolve().name} ({run.mode}, {what}); epochs are sensor "
            + "sample times",
            frame_note,
        ]
        n_oem = oem.write_oem(
            oem_path,
            tables["orbit"]["unix_time_s"],
            _orbit_state(tables["orbit"], args.oem_frame),
            ref_frame=args.oem_frame,
            object_name=name,
            covariances_m=covs,
            comments=comments,
        )

    # ---- truth or residuals ------------------------------------------------------------
    span = _span_s(tables)
    settle = _settle_s(args, span)
    summary: dict = {
        "format_version": 1,
        "scenario": str(Path(args.scenario).resolve()),
        "mode": run.mode,
        "created_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "processors": run.processors,
        "missing_processors": run.missing,
        "smoothed": smoothing,
        "rows": rows,
        "oem": {
            "written": bool(n_oem),
            "lines": n_oem,
            "ref_frame": args.oem_frame,
            "covariance": bool(args.oem_covariance and n_oem),
        },
        "notes": run.notes,
        "handle_errors": run.handle_errors,
        "n_messages": run.n_messages,
        "n_valid_fixes": n_valid,
        "span_s": span,
        "settle_s": settle,
        "timings_s": {k: round(v, 6) for k, v in run.timings_s.items()},
        "truth": None,
    }
    plot_jobs = []
    if truth is not None:
        summary["truth"] = {"path": str(truth.path), "spacecraft": truth.name}
        summary.update(
            _truth_stats(truth, tables, cov, settle, plot_jobs, att_cov, {} if nees_series is None else nees_series)
        )
    summary["residuals"] = _residual_stats(tables, fixes, range_res, to_unix, plot_jobs if truth is None else None)

    # ---- plots ---------------------------------------------------------------------------
    plots = []
    if not args.no_plots and plot_jobs:
        from ground.outputs import plots as pl

        t0 = min(t["unix_time_s"].min() for t in tables.values() if t["unix_time_s"].size)
        axis = pl.TimeAxis(t0)
        for job in plot_jobs:
            plots.append(str(job(pl, axis, out / "plots").relative_to(out)))
    summary["plots"] = plots
    write_atomic(out / "summary.json", (json.dumps(summary, indent=2, default=_json_default) + "\n").encode())
    return summary


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def _truth_stats(truth, tables, cov, settle, plot_jobs, att_cov, nees_series: dict) -> dict:
    from ground.outputs import summary as sm
    from ground.outputs import truth as tr

    out = {}
    o = tables["orbit"]
    if o["unix_time_s"].size:
        e = tr.orbit_errors(truth, o["t_gps_s"], _stack(o, "{}_ecef_m"), _stack(o, "v{}_ecef_m_s"), cov)
        out["orbit"] = sm.orbit_summary(o, e, settle)
        sr, sv = _stack(o, "sigma_{}_ecef_m"), _stack(o, "sigma_v{}_ecef_m_s")
        plot_jobs.append(
            lambda pl, ax, d, e=e, o=o, sr=sr: pl.errors_with_bounds(
                d / "orbit_position_error.png",
                ax(o["unix_time_s"]),
                e["dr_ecef_m"],
                sr,
                "Orbit position error (estimate - truth), ECEF",
                ["x", "y", "z"],
                "m",
                ax.label,
            )
        )
        plot_jobs.append(
            lambda pl, ax, d, e=e, o=o, sv=sv: pl.errors_with_bounds(
                d / "orbit_velocity_error.png",
                ax(o["unix_time_s"]),
                e["dv_ecef_m_s"],
                sv,
                "Orbit velocity error (estimate - truth), ECEF",
                ["vx", "vy", "vz"],
                "m/s",
                ax.label,
            )
        )
        nees_o = ("orbit (6 dof)", o["unix_time_s"], e["nees"], 6)
        nees_series["orbit"] = (o["unix_time_s"], e["nees"], 6)
    else:
        out["orbit"] = {"n_rows": 0}
        nees_o = None
    a = tables["attitude"]
    nees_a = None
    if a["unix_time_s"].size:
        sa, sb = _stack(a, "sigma_att_{}_rad"), _stack(a, "sigma_gyro_bias_{}_rad_s")
        e = tr.attitude_errors(
            truth,
            a["unix_time_s"],
            _stack(a, "q{}", "wxyz"),
            _stack(a, "gyro_bias_{}_rad_s"),
            sa,
            sb,
            t_gps_s=a["t_gps_s"],
            cov6=att_cov,
        )
        out["attitude"] = sm.attitude_summary(a, e, settle)
        # y-range from the rows after --settle: the initial 3-sigma (~180 deg) would flatten
        # the converged error (~1 deg) to a line.
        conv = sm.settled_mask(a["unix_time_s"], settle) & a["valid_attitude"].astype(bool)
        plot_jobs.append(
            lambda pl, ax, d, e=e, a=a, sa=sa, conv=conv: pl.errors_with_bounds(
                d / "attitude_error.png",
                ax(a["unix_time_s"]),
                np.degrees(e["dtheta_rad"]),
                np.degrees(sa),
                "Attitude error (rotation vector of q_true* ⊗ q_est), body axes",
                ["x", "y", "z"],
                "deg",
                ax.label,
                ylim_rows=conv,
            )
        )
        plot_jobs.append(
            lambda pl, ax, d, e=e, a=a, sb=sb, conv=conv: pl.errors_with_bounds(
                d / "gyro_bias_error.png",
                ax(a["unix_time_s"]),
                np.degrees(e["dbias_rad_s"]),
                np.degrees(sb),
                "Gyro bias error (estimate - truth), body axes",
                ["x", "y", "z"],
                "deg/s",
                ax.label,
                ylim_rows=conv,
            )
        )
        nees_a = ("attitude (3 dof)", a["unix_time_s"], e["nees"], 3)
        nees_series["attitude"] = (a["unix_time_s"], e["nees"], 3)
    else:
        out["attitude"] = {"n_rows": 0}
    f = tables["formation"]
    nees_f = None
    if f["unix_time_s"].size:
        sd = _stack(f, "sigma_d{}_m")
        e = tr.formation_errors(truth, f["unix_time_s"], f["peer_id"], _stack(f, "d{}_ecef_m"), sd)
        out["formation"] = sm.formation_summary(f, e, settle)
        for p in np.unique(f["peer_id"].astype(int)):
            sel = f["peer_id"].astype(int) == p
            name = partner_name(p)
            nees_series[f"formation/{name}"] = (f["unix_time_s"][sel], e["nees"][sel], 3)
            plot_jobs.append(
                lambda pl, ax, d, e=e, f=f, sd=sd, sel=sel, p=name: pl.errors_with_bounds(
                    d / f"formation_error_{p}.png",
                    ax(f["unix_time_s"][sel]),
                    np.column_stack([e["dr_err_m"][sel], e["los_err_m"][sel]]),
                    np.column_stack([sd[sel], np.full(int(sel.sum()), np.nan)]),
                    f"Relative position error, partner {p} (estimate - truth), ECEF and line of sight",
                    ["dx", "dy", "dz", "LOS"],
                    "m",
                    ax.label,
                )
            )
        nees_f = ("formation (3 dof)", f["unix_time_s"], e["nees"], 3)
    else:
        out["formation"] = {"n_rows": 0}
    panels = [pnl for pnl in (nees_o, nees_a, nees_f) if pnl is not None and np.isfinite(pnl[2]).any()]
    if panels:
        plot_jobs.append(
            lambda pl, ax, d, panels=panels: pl.nees_panels(
                d / "nees.png", [(n, ax(t), v, k) for n, t, v, k in panels], ax.label
            )
        )
    return out


def _residual_stats(tables, fixes, r, to_unix, plot_jobs) -> dict:
    """*r*: the range residuals (:func:`ground.outputs.residuals.range_residuals`);
    *to_unix*: spacecraft clock -> UTC (:func:`ground.outputs.tables.sc_to_unix`)."""
    from ground.outputs import residuals as rs
    from ground.outputs.summary import norm_stats

    out = {}
    g = rs.gps_fix_residuals(tables["orbit"], fixes)
    out["gps_fix"] = {
        "n": int(g["t_gps_s"].size),
        **norm_stats(np.linalg.norm(g["dr_m"], axis=1), None, "position_3d_", "m"),
        **norm_stats(np.linalg.norm(g["dv_m_s"], axis=1), None, "velocity_3d_", "m_s"),
    }
    out["range"] = {"n": int(r["residual_m"].size), **norm_stats(r["residual_m"], None, "", "m")}
    if plot_jobs is not None and g["t_gps_s"].size:
        plot_jobs.append(
            lambda pl, ax, d, g=g: pl.residuals(
                d / "gps_fix_residuals.png",
                ax(g["unix_time_s"]),
                np.column_stack([g["dr_m"], g["dv_m_s"] * 100.0]),
                "GPS fix residuals (fix - orbit estimate), ECEF, with the fix's ±3σ",
                ["x", "y", "z", "vx", "vy", "vz"],
                pl.POS_VEL_UNITS,
                ax.label,
                sigma=np.column_stack([g["sigma_r_m"], g["sigma_v_m_s"] * 100.0]),
            )
        )
    if plot_jobs is not None and r["residual_m"].size:
        if to_unix is not None:
            plot_jobs.append(
                lambda pl, ax, d, r=r, conv=to_unix: pl.residuals(
                    d / "range_residuals.png",
                    ax(conv(r["t_sc_s"])),
                    r["residual_m"][:, None],
                    "Range residuals (measured - |Δr| - bias), all peers",
                    ["range"],
                    "m",
                    ax.label,
                )
            )
    return out


def _print_truth_lines(summary: dict, say) -> None:
    o, a, f = summary.get("orbit", {}), summary.get("attitude", {}), summary.get("formation", {})

    def fmt(v, spec=".2f"):
        return "-" if v is None else format(v, spec)

    settle_min = summary["settle_s"] / 60.0
    say(f"  truth {summary['truth']['spacecraft']} (statistics after {settle_min:.1f} min):")
    if o.get("n_rows"):
        say(
            f"    orbit: position 3D RMS {fmt(o['position_3d_rms_m'])} m (max {fmt(o['position_3d_max_m'])}), "
            f"velocity 3D RMS {fmt(o['velocity_3d_rms_m_s'], '.4f')} m/s, NEES mean {fmt(o['nees']['mean'])} "
            f"(dof 6), {fmt(o['nees']['frac_inside_95'], '.0%')} inside 95 % bounds"
        )
    if a.get("n_rows"):
        say(
            f"    attitude: angle RMS {fmt(a['angle_rms_deg'], '.3f')} deg (max {fmt(a['angle_max_deg'], '.3f')}), "
            f"gyro bias RMS {fmt(a['gyro_bias_3d_rms_deg_s'], '.4f')} deg/s, NEES mean {fmt(a['nees']['mean'])} (dof 3)"
        )
    if not (o.get("n_rows") or a.get("n_rows") or f.get("n_rows")):
        say("    no estimates to compare")
    for p, d in f.get("peers", {}).items():
        say(
            f"    formation partner {p}: relative position 3D RMS {fmt(d['relative_position_3d_rms_m'])} m, "
            f"line of sight RMS {fmt(d['line_of_sight_rms_m'])} m, NEES mean {fmt(d['nees']['mean'])} (dof 3)"
        )


def _check_arguments(args):
    """(truth or None, exit status or None): everything that can be wrong with the
    arguments, found before any work."""
    from ground.outputs.truth import TruthError, UnknownSpacecraft, find_truth

    if args.out.exists() and not args.out.is_dir():
        print(f"replay: --out {args.out} exists and is not a directory", file=sys.stderr)
        return None, 2
    if args.no_truth:
        return None, None
    try:
        truth = find_truth(args.scenario, args.truth, args.spacecraft)
    except UnknownSpacecraft as exc:
        print(f"replay: --spacecraft: {exc}", file=sys.stderr)
        return None, 2
    except TruthError as exc:
        print(f"replay: --truth: {exc}", file=sys.stderr)
        return None, 1
    if truth is None and args.spacecraft is not None:
        print(
            f"replay: --spacecraft {args.spacecraft}: there is no truth.npz for {args.scenario} (give --truth)",
            file=sys.stderr,
        )
        return None, 2
    return truth, None


#: What the flight ingest reads in a home (a scenario directory has the same layout).
INPUTS = ("sense.bin", "range/", "range.bin")


def no_inputs_message(scenario: Path) -> str | None:
    """Why *scenario* is no input of a replay (None: it holds one of :data:`INPUTS`): what
    is there instead - downlinked batch files (pygnc's estimates, which ``decode`` and
    ``serve`` read), spacecraft sub-directories to replay one by one - or that it is empty."""
    from pygnc.formats import batch as fmt

    if (scenario / "sense.bin").exists() or (scenario / "range.bin").exists() or (scenario / "range").is_dir():
        return None
    try:
        entries = sorted(scenario.iterdir())
    except OSError as exc:
        return f"cannot list it: {exc.strerror or exc}"
    text = f"no input of a replay in it ({', '.join(INPUTS)})"
    batches = [p for p in entries if fmt.FILE_RE.match(p.name) or fmt.PART_RE.match(p.name)]
    subdirs = [p for p in entries if p.is_dir() and no_inputs_message(p) is None]
    if batches:
        return (
            f"{text}: its batch files ({len(batches)}) hold pygnc's downlinked estimates, not inputs - "
            f"decode them (python -m ground decode {scenario} --out OUT_DIR) "
            f"or watch them (python -m ground serve {scenario})"
        )
    if subdirs:
        return f"{text}; replay each of its inputs: " + ", ".join(str(p) for p in subdirs[:8])
    return text + ("; it is empty" if not entries else "")


def run(args) -> int:
    from pygnc.config import config_for_home, load_config

    say = (lambda *a: None) if args.quiet else print
    scenario = args.scenario
    if not scenario.is_dir():
        print(f"replay: {scenario}: not a directory", file=sys.stderr)
        return 1
    why = no_inputs_message(scenario)
    if why is not None:
        print(f"replay: {scenario}: {why}", file=sys.stderr)
        return 2
    try:
        # Without --config: the configuration the spacecraft had (its pygnc_config.toml).
        config = load_config(args.config) if args.config else config_for_home(scenario)
    except (OSError, ValueError) as exc:
        print(f"replay: bad configuration {args.config or scenario / 'pygnc_config.toml'}: {exc}", file=sys.stderr)
        return 2
    if args.accept_status is not None:
        config = dataclasses.replace(config, accepted_solution_status=tuple(args.accept_status))
    truth, status = _check_arguments(args)
    if status is not None:
        return status
    # The ground extra, checked before any work (ground.__main__ names what to install).
    import scipy  # noqa: F401
    import tqdm  # noqa: F401

    if not args.no_plots:
        import matplotlib  # noqa: F401
    try:
        from ground.simulate import parse_duration_s

        if args.settle is not None:
            parse_duration_s(args.settle)
        pipeline_timeout_s = parse_duration_s(args.pipeline_timeout)
    except ValueError as exc:
        print(f"replay: bad duration: {exc}", file=sys.stderr)
        return 2
    if not (scenario / "sense.bin").exists():
        say(f"replay: warning: no sense.bin in {scenario}: no sensor data, no own fixes")
    try:
        if args.pipeline:
            from ground.replay_pipeline import PipelineError, run_pipeline

            try:
                result = run_pipeline(
                    scenario,
                    config_path=args.config,
                    timeout_s=pipeline_timeout_s,
                    logs_to=args.out / "pipeline_logs",
                    say=say,
                    overrides={"accepted_solution_status": list(args.accept_status)}
                    if args.accept_status is not None
                    else None,
                )
            except PipelineError as exc:
                print(f"replay: pipeline failed: {exc}", file=sys.stderr)
                return 1
            stream = result.extra["stream"]
        else:
            result = run_in_process(scenario, config, quiet=args.quiet, record_history=args.smooth)
            stream = result.extra["stream"]
    except OSError as exc:
        print(f"replay: {scenario}: {exc}", file=sys.stderr)
        return 1
    say(
        f"replay {scenario} ({result.mode.replace('_', '-')}; estimators: {', '.join(result.processors) or 'none'}): "
        f"{result.n_messages} messages in {result.timings_s.get('total', math.nan):.2f} s"
    )
    summary = write_outputs(args, result, stream, args.out, say, truth, config=config)
    if summary["truth"] is not None:
        _print_truth_lines(summary, say)
    elif not args.no_truth:
        say("  no truth.npz: residual statistics only")
    say(
        f"  wrote {args.out}/: {', '.join(sorted(p.name for p in args.out.iterdir() if p.is_file()))}"
        + (f" and {len(summary['plots'])} plots in plots/" if summary["plots"] else "")
    )
    return 0
