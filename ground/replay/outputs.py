"""What ``python -m ground replay`` writes in its output directory, from a run's estimates:
the CSV tables, ``orbit.oem``, ``summary.json`` and the plots.  :class:`OutputOptions` says
which (the command's options; a Monte Carlo worker makes one without a command line)."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from pathlib import Path

import numpy as np

from ground.outputs import tables as tb
from ground.outputs.residuals import range_residuals
from ground.replay.in_process import ReplayRun
from ground.replay.smoothing import attitude_smoother, smoothed_orbit, stream_parts
from ground.replay.statistics import residual_stats, truth_stats
from pygnc.atomic import write_atomic


@dataclasses.dataclass(frozen=True)
class OutputOptions:
    """The outputs asked for: *scenario* (the replayed directory, named in the OEM and the
    summary), *smooth* (RTS-smoothed orbit and attitude), *settle* (a duration text, None:
    the default), the OEM's *oem_frame* ("ITRF" or "GCRF"), *oem_covariance* and
    *object_name* (None: the truth's spacecraft, else the directory's name), *no_plots*."""

    scenario: Path
    smooth: bool = False
    settle: str | None = None
    oem_frame: str = "ITRF"
    oem_covariance: bool = False
    object_name: str | None = None
    no_plots: bool = False

    @classmethod
    def from_args(cls, args) -> OutputOptions:
        """From the replay command's parsed arguments."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


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


def _settle_s(options: OutputOptions, span_s: float) -> float:
    from ground.outputs.summary import default_settle_s
    from ground.simulate.simulator import parse_duration_s

    return default_settle_s(span_s) if options.settle is None else parse_duration_s(options.settle)


def _span_s(tables: dict) -> float:
    ts = [t["unix_time_s"] for t in tables.values() if t["unix_time_s"].size]
    if not ts:
        return 0.0
    return float(max(np.nanmax(t) for t in ts) - min(np.nanmin(t) for t in ts))


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
    options: OutputOptions,
    run: ReplayRun,
    stream,
    out: Path,
    say,
    truth=None,
    nees_series: dict | None = None,
    config=None,
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
    if options.smooth:
        tables["orbit"], cov = smoothed_orbit(stream, config)
        smoothing["orbit"] = True
        smoother = attitude_smoother(run)
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
    if options.smooth:
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
    fixes, _, ranges, _ = stream_parts(stream)
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
        name = options.object_name or default_object_name(options.scenario, truth)
        covs = _oem_covariances(tables["orbit"], cov, options.oem_frame) if options.oem_covariance else None
        frame_note = (
            (
                "ITRF here is the ITRS of pygnc.frames (IAU 2006/2000B, no polar motion, UT1 = UTC), "
                "which GPS (WGS-84) matches at the cm level"
            )
            if options.oem_frame == "ITRF"
            else (
                "GCRF here is the GCRS of pygnc.frames with UT1 = UTC (up to ~0.5 km along-track "
                "offset from the true GCRS; the ECEF solution is unaffected)"
            )
        )
        what = "RTS-smoothed" if smoothing["orbit"] else "filtered"
        comments = [
            f"pygnc replay of {Path(options.scenario).resolve().name} ({run.mode}, {what}); epochs are sensor "
            + "sample times",
            frame_note,
        ]
        n_oem = oem.write_oem(
            oem_path,
            tables["orbit"]["unix_time_s"],
            _orbit_state(tables["orbit"], options.oem_frame),
            ref_frame=options.oem_frame,
            object_name=name,
            covariances_m=covs,
            comments=comments,
            quality=tables["orbit"].get("quality"),
        )

    # ---- truth or residuals ------------------------------------------------------------
    span = _span_s(tables)
    settle = _settle_s(options, span)
    summary: dict = {
        "format_version": 1,
        "scenario": str(Path(options.scenario).resolve()),
        "mode": run.mode,
        "created_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "processors": run.processors,
        "missing_processors": run.missing,
        "smoothed": smoothing,
        "rows": rows,
        "oem": {
            "written": bool(n_oem),
            "lines": n_oem,
            "ref_frame": options.oem_frame,
            "covariance": bool(options.oem_covariance and n_oem),
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
            truth_stats(truth, tables, cov, settle, plot_jobs, att_cov, {} if nees_series is None else nees_series)
        )
    summary["residuals"] = residual_stats(tables, fixes, range_res, to_unix, plot_jobs if truth is None else None)

    # ---- plots ---------------------------------------------------------------------------
    plots = []
    if not options.no_plots and plot_jobs:
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
