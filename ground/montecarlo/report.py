"""The campaign report: accuracy distributions per estimator configuration, Monte Carlo
consistency, paired comparisons, the worst runs and the failures.

Per configuration and metric (runs that finished): median, 95th percentile (linear
interpolation between order statistics) and worst, with the worst run's seed.

Consistency, two ways:

* per run, the fraction of its epochs whose NEES lies inside the two-sided 95 % χ² bounds
  (``*_nees_frac_inside_95``; successive epochs are correlated, so one run says little);
* across runs, the Monte Carlo test on the average NEES (Bar-Shalom, Li & Kirubarajan,
  *Estimation with Applications to Tracking and Navigation*, 2001, §5.4.2): at each epoch
  of the campaign's grid, N runs' NEES averaged; for a consistent filter N·ANEES is χ² with
  N·dof degrees of freedom, so ANEES should lie inside
  [χ²_{0.025}(N·dof)/N, χ²_{0.975}(N·dof)/N] at about 95 % of the epochs.  The runs are
  independent, so this test has the power the per-run one lacks.  Formation pools every
  partner of every run (each is its own filter).

Paired comparison: every configuration replays the same simulated runs, so its metric is
divided by the first configuration's run by run, and the median ratio reported.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from pygnc.atomic import write_atomic

#: (column, label, unit) of the accuracy metrics reported.
REPORT_METRICS = (
    ("orbit_position_3d_rms_m", "Orbit position error, 3D RMS", "m"),
    ("orbit_velocity_3d_rms_m_s", "Orbit velocity error, 3D RMS", "m/s"),
    ("attitude_angle_rms_deg", "Attitude error angle, RMS", "deg"),
    ("attitude_gyro_bias_3d_rms_deg_s", "Gyro bias error, 3D RMS", "deg/s"),
    ("formation_position_3d_rms_m", "Relative position error, 3D RMS (worst partner)", "m"),
    ("formation_line_of_sight_rms_m", "Relative position error along the line of sight, RMS (worst partner)", "m"),
)
#: Estimators whose consistency is tested, with their NEES degrees of freedom.
CONSISTENCY_KINDS = {"orbit": 6, "attitude": 3, "formation": 3}
#: Worst runs listed per configuration and metric.
N_WORST = 3


def _finite(values) -> list:
    return [v for v in values if v is not None and isinstance(v, (int, float)) and math.isfinite(v)]


def distribution(rows: list[dict], column: str) -> dict | None:
    """n, median, p95, worst and the worst run's seed of *column* over *rows*."""
    pairs = [(r[column], r["seed"]) for r in rows if r.get(column) is not None and math.isfinite(r[column])]
    if not pairs:
        return None
    v = np.array([p[0] for p in pairs], dtype=float)
    k = int(np.argmax(v))
    return {
        "n": int(v.size),
        "median": float(np.median(v)),
        "p95": float(np.percentile(v, 95)),
        "worst": float(v[k]),
        "worst_seed": int(pairs[k][1]),
    }


def monte_carlo_anees(nees: list[list], dof: int) -> dict | None:
    """The average-NEES test over runs (*nees*: one list per run, None where it has no
    value, all on the same grid): per epoch the ANEES and its bounds, and the fraction of
    epochs (with at least two runs) inside them."""
    from scipy.stats import chi2

    if not nees:
        return None
    m = np.array([[np.nan if v is None else v for v in run] for run in nees], dtype=float)
    n = np.sum(np.isfinite(m), axis=0)
    use = n >= 2
    if not use.any():
        return None
    with np.errstate(invalid="ignore"):
        a = np.where(use, np.nansum(m, axis=0) / np.maximum(n, 1), np.nan)
    lo = np.where(use, chi2.ppf(0.025, np.maximum(n, 1) * dof) / np.maximum(n, 1), np.nan)
    hi = np.where(use, chi2.ppf(0.975, np.maximum(n, 1) * dof) / np.maximum(n, 1), np.nan)
    inside = (a >= lo) & (a <= hi)
    return {
        "dof": int(dof),
        "n_epochs": int(use.sum()),
        "runs_median": float(np.median(n[use])),
        "anees_mean": float(np.nanmean(a[use])),
        "frac_epochs_inside_95": float(np.mean(inside[use])),
        "frac_epochs_above": float(np.mean(a[use] > hi[use])),
        "epoch_index": np.flatnonzero(use).tolist(),
        "anees": a[use].tolist(),
        "lower": lo[use].tolist(),
        "upper": hi[use].tolist(),
    }


def _nees_runs(records: list[dict], estimator: str, kind: str) -> list[list]:
    runs = []
    for rec in records:
        est = rec.get("estimators", {}).get(estimator) or {}
        for name, s in (est.get("nees") or {}).items():
            if name == kind or name.startswith(kind + "/"):
                runs.append(s["values"])
    return runs


def campaign_statistics(rows: list[dict], records: list[dict], estimators: list[str]) -> dict:
    """Everything the report says, as data (``OUT/report.json``)."""
    stats = {"n_runs": len(records), "estimators": {}}
    first = estimators[0] if estimators else None
    by_est = {e: [r for r in rows if r["estimator"] == e] for e in estimators}
    for e in estimators:
        ok = [r for r in by_est[e] if r["status"] == "ok"]
        s: dict = {
            "n_rows": len(by_est[e]),
            "n_ok": len(ok),
            "n_failed": len(by_est[e]) - len(ok),
            "metrics": {},
            "consistency": {},
            "paired_ratio_median": {},
            "worst": {},
        }
        for col, _, _ in REPORT_METRICS:
            d = distribution(ok, col)
            if d is None:
                continue
            s["metrics"][col] = d
            ranked = sorted((r for r in ok if r.get(col) is not None), key=lambda r: -r[col])[:N_WORST]
            s["worst"][col] = [{"seed": int(r["seed"]), "run_id": r["run_id"], "value": r[col]} for r in ranked]
            if first and e != first:
                base = {r["seed"]: r.get(col) for r in by_est[first] if r["status"] == "ok"}
                ratios = _finite(
                    [r[col] / base[r["seed"]] for r in ok if r.get(col) is not None and base.get(r["seed"])]
                )
                if ratios:
                    s["paired_ratio_median"][col] = {"n": len(ratios), "median": float(np.median(ratios))}
        for kind, dof in CONSISTENCY_KINDS.items():
            c: dict = {}
            per_run = _finite([r.get(f"{kind}_nees_frac_inside_95") for r in ok])
            means = _finite([r.get(f"{kind}_nees_mean") for r in ok])
            if per_run:
                c["per_run_frac_inside_95_median"] = float(np.median(per_run))
                c["per_run_nees_mean_median"] = float(np.median(means)) if means else None
            mc = monte_carlo_anees(_nees_runs(records, e, kind), dof)
            if mc is not None:
                c["monte_carlo"] = mc
            if c:
                s["consistency"][kind] = c
        stats["estimators"][e] = s
    stats["failures"] = [
        {
            "run_id": r["run_id"],
            "seed": int(r["seed"]),
            "estimator": r["estimator"],
            "stage": r.get("stage"),
            "error": r.get("error"),
        }
        for r in rows
        if r["status"] != "ok"
    ]
    return stats


def code_summary(records: list[dict], code: dict | None) -> dict:
    """The code of this campaign: *code* (the client's) and, per code found in the records,
    its description and number of runs (more than one entry: the campaign mixes code)."""
    from ground.montecarlo.provenance import describe

    counts: dict[str, int] = {}
    for r in records:
        if r.get("code") is not None or r.get("worker") is not None:  # lost runs have no code
            d = describe(r.get("code"))
            counts[d] = counts.get(d, 0) + 1
    return {
        "client": code,
        "runs": [{"code": d, "n_runs": n} for d, n in sorted(counts.items(), key=lambda kv: -kv[1])],
    }


def _fmt(v, spec=".3g") -> str:
    return "–" if v is None else format(v, spec)


def report_markdown(stats: dict, campaign_name: str, rerun_command: str) -> str:
    lines = [
        f"# Monte Carlo campaign {campaign_name}",
        "",
        f"{stats['n_runs']} runs; per configuration, over the runs that finished.",
        "",
    ]
    codes = (stats.get("code") or {}).get("runs") or []
    if len(codes) == 1:
        lines += [f"Computed by {codes[0]['code']}.", ""]
    elif codes:
        lines += [
            "**Mixed code** (`--allow-mixed-code`): "
            + "; ".join(f"{c['n_runs']} runs by {c['code']}" for c in codes)
            + ".",
            "",
        ]
    for e, s in stats["estimators"].items():
        lines += [
            f"## {e}: {s['n_ok']} ok, {s['n_failed']} failed",
            "",
            "| metric | n | median | 95th pct | worst | worst seed | vs first (median ratio) |",
            "|---|---|---|---|---|---|---|",
        ]
        for col, label, unit in REPORT_METRICS:
            d = s["metrics"].get(col)
            if d is None:
                continue
            ratio = s["paired_ratio_median"].get(col)
            lines.append(
                f"| {label} ({unit}) | {d['n']} | {_fmt(d['median'])} | {_fmt(d['p95'])} | "
                f"{_fmt(d['worst'])} | {d['worst_seed']} | {_fmt(ratio['median']) if ratio else '–'} |"
            )
        lines += [
            "",
            "| consistency | per-run NEES mean (median) | per-run epochs inside 95 % (median) | "
            "ANEES mean | epochs with ANEES inside 95 % | runs per epoch |",
            "|---|---|---|---|---|---|",
        ]
        for kind, c in s["consistency"].items():
            mc = c.get("monte_carlo") or {}
            lines.append(
                f"| {kind} (dof {CONSISTENCY_KINDS[kind]}) | {_fmt(c.get('per_run_nees_mean_median'))} | "
                f"{_fmt(c.get('per_run_frac_inside_95_median'), '.0%')} | {_fmt(mc.get('anees_mean'))} | "
                f"{_fmt(mc.get('frac_epochs_inside_95'), '.0%')} | {_fmt(mc.get('runs_median'), '.0f')} |"
            )
        lines += ["", "Worst runs (replay one with the command below, SEED replaced):", ""]
        for col, label, unit in REPORT_METRICS:
            worst = s["worst"].get(col)
            if worst:
                lines.append(f"- {label}: " + ", ".join(f"seed {w['seed']} ({_fmt(w['value'])} {unit})" for w in worst))
        lines.append("")
    lines += [f"    {rerun_command}", ""]
    if stats["failures"]:
        lines += ["## Failed runs", "", "| run | estimator | stage | error |", "|---|---|---|---|"]
        lines += [
            f"| {f['run_id']} | {f['estimator']} | {f['stage']} | {(f['error'] or '').replace('|', '/')} |"
            for f in stats["failures"]
        ]
        lines.append("")
    return "\n".join(lines)


def write_report(
    out: Path, stats: dict, rows: list[dict], campaign_name: str, rerun_command: str, grid_s: float, plots: bool = True
) -> list[Path]:
    """report.md, report.json and (with *plots*) plots/*.png in *out*; the paths written."""
    written = [out / "report.json", out / "report.md"]
    write_atomic(written[0], (json.dumps(stats, indent=1) + "\n").encode())
    write_atomic(written[1], report_markdown(stats, campaign_name, rerun_command).encode())
    if not plots:
        return written
    from ground.outputs import plots as pl

    estimators = list(stats["estimators"])
    for col, label, unit in REPORT_METRICS:
        samples = {
            e: _finite([r.get(col) for r in rows if r["estimator"] == e and r["status"] == "ok"]) for e in estimators
        }
        if any(samples.values()):
            written.append(pl.distributions(out / "plots" / f"cdf_{col}.png", samples, label, unit))
    for kind, dof in CONSISTENCY_KINDS.items():
        curves = {}
        for e in estimators:
            mc = stats["estimators"][e]["consistency"].get(kind, {}).get("monte_carlo")
            if mc:
                t_h = np.asarray(mc["epoch_index"], dtype=float) * grid_s / 3600.0
                curves[e] = (t_h, mc["anees"], mc["lower"], mc["upper"], dof)
        if curves:
            written.append(
                pl.anees(
                    out / "plots" / f"anees_{kind}.png",
                    curves,
                    f"{kind}: Monte Carlo average NEES over runs",
                    "hours since the scenario start",
                )
            )
    return written
