"""One Monte Carlo run, as a Dask worker executes it: simulate the run's scenario into a
private temporary directory, replay it in-process with every estimator configuration
(the same code as ``python -m ground replay``), and return a run record
(:mod:`ground.montecarlo.results`) - plain data, no paths of the worker's machine that the
client would need.

Every record carries the identity of the code that computed it
(:func:`ground.montecarlo.provenance.code_identity`); a spec that names the code it expects
(``code``) and meets other code here is refused before any work, its record saying why
(stage ``code``).

Nothing escapes as an exception for a bad run: a scenario the simulator refuses or an
estimator that raises is recorded with its stage, message and traceback, and the other
estimators of the run still run.  The function is deterministic in its spec (seeded
simulation, deterministic replay), which is what makes the campaign's results independent
of how many workers ran it.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from ground.montecarlo.provenance import code_identity, describe, same_code
from ground.montecarlo.results import RUN_RECORD_VERSION, blank_estimators, metrics_from_summary

#: Files of a replay's output directory a run returns with ``keep_csv``.
KEPT_FILES = ("orbit.csv", "attitude.csv", "formation.csv", "orbit.oem", "summary.json")


def _error(stage: str, exc: BaseException) -> dict:
    return {
        "stage": stage,
        "message": f"{type(exc).__name__}: {exc}",
        "traceback": "".join(traceback.format_exception(exc))[-4000:],
    }


def simulate_into(spec: dict, scenario_dir: Path) -> None:
    """Write the scenario of *spec* into *scenario_dir* (raises what the simulator raises)."""
    from ground.simulate import scenario as scn
    from ground.simulate.simulator import check_settings, simulate, write_scenario

    if spec.get("error"):
        raise ValueError(spec["error"])
    settings = scn.settings_from_dict(spec["scenario"])
    check_settings(settings)
    write_scenario(simulate(settings), scenario_dir)


def replay_estimator(
    scenario_dir: Path, out_dir: Path, estimator: dict, settle: str | None, plots: bool = False
) -> tuple[dict, dict]:
    """(summary, NEES series) of one estimator configuration replayed on *scenario_dir*,
    outputs written to *out_dir* (as ``python -m ground replay``)."""
    from ground.outputs.truth import find_truth
    from ground.replay.in_process import run_in_process
    from ground.replay.outputs import OutputOptions, write_outputs
    from pygnc.config import config_for_home, with_overrides

    options = OutputOptions(
        scenario=scenario_dir, smooth=bool(estimator.get("smooth")), settle=settle, no_plots=not plots
    )
    config = with_overrides(
        config_for_home(scenario_dir), estimator.get("config", {}), f"estimator {estimator['name']!r}"
    )
    truth = find_truth(scenario_dir)
    result = run_in_process(scenario_dir, config, quiet=True, record_history=bool(estimator.get("smooth")))
    series: dict = {}
    summary = write_outputs(
        options, result, result.extra["stream"], out_dir, lambda *a: None, truth, series, config=config
    )
    return summary, series


def nees_on_grid(series: dict, t0_unix_s: float, duration_s: float, grid_s: float, settle_s: float) -> dict:
    """Each estimator's NEES at ``t0 + k grid_s`` (the row nearest in time, within half a grid
    step; None where there is none or before *settle_s*): ``{name: {"dof", "values"}}``."""
    n = int(np.floor(duration_s / grid_s)) + 1
    grid = t0_unix_s + grid_s * np.arange(n)
    out = {}
    for name, (t, nees, dof) in series.items():
        t = np.asarray(t, dtype=float)
        v = np.asarray(nees, dtype=float)
        values: list = [None] * n
        if t.size:
            order = np.argsort(t)
            t, v = t[order], v[order]
            j = np.clip(np.searchsorted(t, grid), 1, max(t.size - 1, 1))
            left = np.clip(j - 1, 0, t.size - 1)
            right = np.clip(j, 0, t.size - 1)
            pick = np.where(np.abs(t[right] - grid) < np.abs(t[left] - grid), right, left)
            ok = (np.abs(t[pick] - grid) <= grid_s / 2) & np.isfinite(v[pick]) & (grid >= t[0] + settle_s)
            values = [float(v[pick[k]]) if ok[k] else None for k in range(n)]
        out[name] = {"dof": int(dof), "values": values}
    return out


def run_one(spec: dict, keep_csv: bool = False, keep_dir: str | None = None) -> dict:
    """Run *spec* (:class:`ground.montecarlo.campaign.RunSpec` as a dict) and return its
    record.  *keep_csv*: the record's ``files`` holds each estimator's CSVs, OEM and summary
    (bytes).  *keep_dir*: simulate and replay there, with plots, and keep everything
    (``montecarlo --rerun``); otherwise a temporary directory removed afterwards."""
    from ground.simulate.simulator import parse_utc

    record = {
        "format_version": RUN_RECORD_VERSION,
        "campaign": spec["campaign"],
        "run_id": spec["run_id"],
        "seed": spec["seed"],
        "spec_hash": spec["spec_hash"],
        "dispersed": spec["dispersed"],
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "code": code_identity(),
        "started_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "error": None,
        "simulate_s": None,
        "estimators": {},
    }
    expected = spec.get("code")
    if expected is not None and not same_code(expected, record["code"]):
        record["error"] = {
            "stage": "code",
            "message": f"this worker runs {describe(record['code'])}, the campaign {describe(expected)}",
        }
        record["estimators"] = blank_estimators(spec["estimators"])
        return record
    with tempfile.TemporaryDirectory(prefix="pygnc-mc-") as tmp:
        home = Path(keep_dir) if keep_dir else Path(tmp)
        scenario_dir = home / "scenario"
        t_start = time.perf_counter()
        try:
            simulate_into(spec, scenario_dir)
        except Exception as exc:  # noqa: BLE001 - any failure is this run's result
            record["error"] = _error("simulate", exc)
        record["simulate_s"] = round(time.perf_counter() - t_start, 3)
        files = {}
        for est in spec["estimators"]:
            entry: dict = {
                "config": est.get("config", {}),
                "smooth": bool(est.get("smooth")),
                "error": None,
                "replay_s": None,
                "metrics": None,
                "nees": None,
            }
            record["estimators"][est["name"]] = entry
            if record["error"]:
                continue
            out_dir = home / "replay" / est["name"]
            t_start = time.perf_counter()
            try:
                summary, series = replay_estimator(scenario_dir, out_dir, est, spec["settle"], plots=bool(keep_dir))
                entry["metrics"] = metrics_from_summary(summary)
                sc = spec["scenario"]
                entry["nees"] = nees_on_grid(
                    series,
                    parse_utc(sc["start_utc"]),
                    float(sc["duration_s"]),
                    float(spec["nees_grid_s"]),
                    float(summary["settle_s"]),
                )
                if keep_csv:
                    files[est["name"]] = {n: (out_dir / n).read_bytes() for n in KEPT_FILES if (out_dir / n).is_file()}
            except Exception as exc:  # noqa: BLE001
                entry["error"] = _error("replay", exc)
            entry["replay_s"] = round(time.perf_counter() - t_start, 3)
        if keep_csv:
            record["files"] = files
    return record
