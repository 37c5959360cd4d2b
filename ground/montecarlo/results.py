"""Run records and the campaign's results table.

A **run record** (``OUT/runs/<run_id>.json``, written atomically by the client as each run
finishes) holds one run's spec hash, the values drawn for it, the code that computed it
(``code``: :func:`ground.montecarlo.provenance.code_identity` of the worker), and per
estimator either the metrics and the NEES on the campaign's time grid, or the error that
stopped it.  The
**results table** (``OUT/results.csv``) is built from the records: one row per run and
estimator, columns in :func:`table_columns` order, and is the same table whichever cluster
ran the runs but for :data:`VOLATILE_COLUMNS` (timings and worker names).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from pygnc.partners import partner_id

#: Version of the run-record layout.
RUN_RECORD_VERSION = 1
#: Columns that say who ran a row and how long it took, not what it found.
VOLATILE_COLUMNS = ("simulate_s", "replay_s", "worker")
#: Columns naming the code that computed a row (:mod:`ground.montecarlo.provenance`).
CODE_COLUMNS = ("pygnc_version", "commit", "commit_dirty", "code_sha256")
ID_COLUMNS = (
    ("campaign", "run_id", "seed", "estimator", "config", "status", "stage", "error", "spec_hash")
    + CODE_COLUMNS
    + VOLATILE_COLUMNS
)
#: Prefix of the columns holding a run's drawn dispersion values.
SET_PREFIX = "set."

#: (summary section, summary key, metric suffix) for orbit and attitude.
_SECTION_METRICS = {
    "orbit": [
        ("position_3d_rms_m", "position_3d_rms_m"),
        ("position_3d_max_m", "position_3d_max_m"),
        ("velocity_3d_rms_m_s", "velocity_3d_rms_m_s"),
    ],
    "attitude": [
        ("angle_rms_deg", "angle_rms_deg"),
        ("angle_max_deg", "angle_max_deg"),
        ("gyro_bias_3d_rms_deg_s", "gyro_bias_3d_rms_deg_s"),
    ],
}
_PEER_METRICS = [("relative_position_3d_rms_m", "position_3d_rms_m"), ("line_of_sight_rms_m", "line_of_sight_rms_m")]
#: The fixed metric columns, in table order (per-peer columns follow them).
METRIC_COLUMNS = (
    "orbit_position_3d_rms_m",
    "orbit_position_3d_max_m",
    "orbit_velocity_3d_rms_m_s",
    "orbit_nees_mean",
    "orbit_nees_frac_inside_95",
    "attitude_angle_rms_deg",
    "attitude_angle_max_deg",
    "attitude_gyro_bias_3d_rms_deg_s",
    "attitude_nees_mean",
    "attitude_nees_frac_inside_95",
    "formation_position_3d_rms_m",
    "formation_line_of_sight_rms_m",
    "formation_nees_mean",
    "formation_nees_frac_inside_95",
    "n_valid_fixes",
    "orbit_rows",
    "attitude_rows",
    "formation_rows",
)


#: Meaning of every column of results.csv (docs/interface.md is generated from it).
COLUMN_MEANINGS = {
    "campaign": "campaign name",
    "run_id": "`s` + the seed in five digits: the record `runs/<run_id>.json`",
    "seed": "scenario seed of the run (every draw of the run derives from it)",
    "estimator": "estimator configuration name",
    "config": "that configuration: JSON of its flight `config` overrides and `smooth`",
    "status": "`ok`, or `failed` (the run's simulation or this configuration's replay raised, or its worker died)",
    "stage": "where it failed: `simulate`, `replay` or `worker` (`code`: the worker ran other code; never saved)",
    "error": "the error (type: message); the record holds the traceback",
    "spec_hash": "hash of everything the campaign asks of the run (settings, estimators, settle, grid)",
    "pygnc_version": "pygnc version of the worker that computed the row",
    "commit": "git commit of the source tree that worker imports (`unknown`: not a git checkout)",
    "commit_dirty": "1: that tree had uncommitted changes or no commit, 0: clean",
    "code_sha256": "SHA-256 of that tree's `pygnc` and `ground` sources: rows of one campaign agree",
    "simulate_s": "seconds the worker spent simulating the run (shared by its configurations)",
    "replay_s": "seconds the worker spent replaying this configuration",
    "worker": "host:pid of the worker process",
    "set.<key>": "the value drawn for dispersed setting `<key>` (JSON for lists)",
    "orbit_position_3d_rms_m": "orbit position error, 3D RMS after settling, m",
    "orbit_position_3d_max_m": "orbit position error, largest 3D after settling, m",
    "orbit_velocity_3d_rms_m_s": "orbit velocity error, 3D RMS, m/s",
    "orbit_nees_mean": "mean NEES of the orbit (6 dof) after settling",
    "orbit_nees_frac_inside_95": "fraction of the orbit's epochs with NEES inside its two-sided 95 % χ² bounds",
    "attitude_angle_rms_deg": "attitude error angle, RMS, deg",
    "attitude_angle_max_deg": "attitude error angle, largest, deg",
    "attitude_gyro_bias_3d_rms_deg_s": "gyro bias error, 3D RMS, deg/s",
    "attitude_nees_mean": "mean NEES of the attitude (3 dof)",
    "attitude_nees_frac_inside_95": "as the orbit's, attitude",
    "formation_position_3d_rms_m": (
        "relative position error, 3D RMS, of the worst partner, m (rows `acquiring` - a range-only "
        "partner's prior, not an estimate - left out; empty when no row is left)"
    ),
    "formation_line_of_sight_rms_m": "relative position error along the line of sight, RMS, worst partner, m",
    "formation_nees_mean": "largest partner's mean NEES (3 dof)",
    "formation_nees_frac_inside_95": "smallest partner's fraction of epochs inside the 95 % bounds",
    "n_valid_fixes": "valid own GPS fixes in the run's files",
    "orbit_rows": "rows of the replay's orbit.csv (likewise `attitude_rows`, `formation_rows`)",
    "formation_peer<id>_*": "the formation columns of each partner (`<id>` as written: `0x4B`)",
}


def _nees(d: dict, prefix: str) -> dict:
    n = d.get("nees") or {}
    return {f"{prefix}_nees_mean": n.get("mean"), f"{prefix}_nees_frac_inside_95": n.get("frac_inside_95")}


def metrics_from_summary(summary: dict) -> dict:
    """The flat metrics of one replay's ``summary.json`` (None where it has none).  The
    ``formation_*`` columns are the worst peer's (largest error and NEES mean, smallest
    fraction inside); ``formation_peer<id>_*`` each peer's."""
    out: dict = {}
    for section, keys in _SECTION_METRICS.items():
        d = summary.get(section) or {}
        for key, suffix in keys:
            out[f"{section}_{suffix}"] = d.get(key)
        out.update(_nees(d, section))
    peers = (summary.get("formation") or {}).get("peers") or {}
    for pid, d in sorted(peers.items(), key=lambda kv: partner_id(kv[0])):
        for key, suffix in _PEER_METRICS:
            out[f"formation_peer{pid}_{suffix}"] = d.get(key)
        out.update(_nees(d, f"formation_peer{pid}"))

    def worst(suffix, pick):
        vals = [v for pid in peers if (v := out.get(f"formation_peer{pid}_{suffix}")) is not None]
        return pick(vals) if vals else None

    for _, suffix in _PEER_METRICS:
        out[f"formation_{suffix}"] = worst(suffix, max)
    out["formation_nees_mean"] = worst("nees_mean", max)
    out["formation_nees_frac_inside_95"] = worst("nees_frac_inside_95", min)
    out["n_valid_fixes"] = summary.get("n_valid_fixes")
    rows = summary.get("rows") or {}
    for kind in ("orbit", "attitude", "formation"):
        if kind in rows:
            out[f"{kind}_rows"] = rows[kind]
    return out


def blank_estimators(estimators: list[dict]) -> dict:
    """A record's ``estimators`` entry for a run that computed nothing (each configuration
    without metrics or error of its own)."""
    return {
        e["name"]: {
            "config": e.get("config", {}),
            "smooth": bool(e.get("smooth")),
            "error": None,
            "replay_s": None,
            "metrics": None,
            "nees": None,
        }
        for e in estimators
    }


def rows_from_record(record: dict) -> list[dict]:
    """One table row per estimator of a run record."""
    rows = []
    code = record.get("code") or {}
    base = {
        "campaign": record["campaign"],
        "run_id": record["run_id"],
        "seed": record["seed"],
        "spec_hash": record["spec_hash"],
        "simulate_s": record.get("simulate_s"),
        "worker": record.get("worker"),
        "pygnc_version": code.get("pygnc_version"),
        "commit": code.get("commit"),
        "commit_dirty": None if "dirty" not in code else int(bool(code["dirty"])),
        "code_sha256": code.get("source_sha256"),
    }
    base.update({SET_PREFIX + k: v for k, v in record.get("dispersed", {}).items()})
    run_error = record.get("error")
    for name, est in record.get("estimators", {}).items():
        err = run_error or est.get("error")
        row = dict(
            base,
            estimator=name,
            config={"config": est.get("config", {}), "smooth": est.get("smooth", False)},
            status="failed" if err else "ok",
            stage=(err or {}).get("stage"),
            error=(err or {}).get("message"),
            replay_s=est.get("replay_s"),
        )
        row.update(est.get("metrics") or {})
        rows.append(row)
    return rows


def table_columns(rows: list[dict]) -> list[str]:
    present = set().union(*rows) if rows else set()
    sets = sorted(c for c in present if c.startswith(SET_PREFIX))
    fixed = [c for c in METRIC_COLUMNS if c in present]
    peers = sorted(c for c in present if c.startswith("formation_peer"))
    rest = sorted(present - set(ID_COLUMNS) - set(sets) - set(fixed) - set(peers))
    return list(ID_COLUMNS) + sets + fixed + peers + rest


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def table_text(rows: list[dict]) -> str:
    """CSV text of *rows*, in the order given (the campaign's seeds, then its configurations)."""
    import io

    cols = table_columns(rows)
    buf = io.StringIO()
    # RFC 4180 line ends: a cell holding a carriage return or newline (an error message) is
    # then quoted, and read back whole.
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in cols])
    return buf.getvalue()


def read_table(path: str | Path) -> list[dict]:
    """The rows of a results table, numbers as floats (empty cells None)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k, v in r.items():
            if v == "":
                r[k] = None
            elif k == "config":
                r[k] = json.loads(v)
            elif k not in (
                "campaign",
                "run_id",
                "estimator",
                "status",
                "stage",
                "error",
                "spec_hash",
                "worker",
                "pygnc_version",
                "commit",
                "code_sha256",
            ):
                try:
                    r[k] = float(v)
                except ValueError:
                    pass
    return rows


def load_record(path: Path) -> dict | None:
    """A run record, or None if it is missing or unreadable (it is then run again)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format_version") == RUN_RECORD_VERSION else None


def record_has_results(record: dict) -> bool:
    """Whether any configuration of the run has metrics (a failed run has none to mix)."""
    return any(e.get("metrics") is not None for e in record.get("estimators", {}).values())


def record_failed(record: dict) -> bool:
    return bool(record.get("error")) or any(e.get("error") for e in record.get("estimators", {}).values())
