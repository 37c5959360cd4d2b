"""``python -m ground montecarlo CAMPAIGN.toml --out DIR``: run a campaign on Dask.

Each run (one seed: a dispersed scenario, simulated once and replayed with every estimator
configuration) is one Dask task (:func:`ground.montecarlo.worker.run_one`).  By default a
local cluster of worker processes, one per core (``--workers``), on 127.0.0.1 with no
dashboard; ``--scheduler tcp://HOST:PORT`` sends the same tasks to a running
``dask.distributed`` scheduler instead (its workers need pygnc installed; Dask ships tasks
and results with pickle, so give it only a scheduler you trust).

As each run finishes, this process writes its record to ``DIR/runs/<run_id>.json``
(atomically).  Started again, a campaign skips every run whose record is there with the
same spec hash, so an interrupted campaign resumes where it stopped and a changed campaign
re-runs only the runs it changed; ``--retry-failed`` runs the failed ones again.  At the
end (and after an interrupt, for what finished) ``results.csv``, ``report.md``,
``report.json`` and ``plots/`` are written from the records.

Exit status: 0 the campaign finished (runs that failed are recorded, listed and counted),
1 every run failed or the scheduler could not be reached, 2 bad usage or campaign file,
130 interrupted (run the same command again to resume).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import shlex
import signal
import sys
import time
from pathlib import Path

from ground.montecarlo import results as rs
from ground.montecarlo.campaign import Campaign, CampaignError, RunSpec, load_campaign, run_spec, run_specs
from pygnc.atomic import write_atomic

#: Seconds to wait for a scheduler given by address to answer.
CONNECT_TIMEOUT_S = 30.0
#: Seconds to wait for a local cluster to shut down.
CLOSE_TIMEOUT_S = 20.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("campaign", metavar="CAMPAIGN.toml", type=Path, help="campaign file (docs/interface.md)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="campaign directory: run records, "
                   "results.csv, report (the same DIR resumes an interrupted campaign)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="a running dask.distributed scheduler "
                       "(e.g. tcp://10.0.0.5:8786) instead of a local cluster")
    where.add_argument("--workers", type=int, metavar="N", help="worker processes of the local cluster "
                       "(default: one per core)")
    p.add_argument("--retry-failed", action="store_true", help="run again the runs whose record holds an error")
    p.add_argument("--keep-csv", action="store_true", help="also keep every run's CSVs, OEM and summary.json "
                   "in DIR/runs/<run_id>/<estimator>/")
    p.add_argument("--rerun", type=int, metavar="SEED", help="run the one run of this seed here, without Dask, "
                   "keeping its scenario and replay outputs with plots in DIR/rerun/<run_id>/")
    p.add_argument("--no-plots", action="store_true", help="no report plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar, print nothing but errors")


# --------------------------------------------------------------------------- records
def _record_path(out: Path, spec: RunSpec) -> Path:
    return out / "runs" / f"{spec.run_id}.json"


def pending_specs(out: Path, specs: list[RunSpec], retry_failed: bool) -> list[RunSpec]:
    """The specs without a usable record in *out* (none, another spec hash, or failed with
    *retry_failed*)."""
    todo = []
    for spec in specs:
        rec = rs.load_record(_record_path(out, spec))
        if rec is None or rec.get("spec_hash") != spec.spec_hash or (retry_failed and rs.record_failed(rec)):
            todo.append(spec)
    return todo


def save_record(out: Path, spec: RunSpec, record: dict) -> None:
    files = record.pop("files", None) or {}
    for estimator, named in files.items():
        d = out / "runs" / spec.run_id / estimator
        d.mkdir(parents=True, exist_ok=True)
        for name, data in named.items():
            write_atomic(d / name, data)
    write_atomic(_record_path(out, spec), (json.dumps(record, indent=1) + "\n").encode())


def _lost_record(spec: RunSpec, exc: BaseException) -> dict:
    """The record of a run whose worker died or whose task could not run at all."""
    return {"format_version": rs.RUN_RECORD_VERSION, "campaign": spec.campaign, "run_id": spec.run_id,
            "seed": spec.seed, "spec_hash": spec.spec_hash, "dispersed": spec.dispersed, "worker": None,
            "error": {"stage": "worker", "message": f"{type(exc).__name__}: {exc}"}, "simulate_s": None,
            "estimators": {e["name"]: {"config": e.get("config", {}), "smooth": bool(e.get("smooth")), "error": None,
                                       "replay_s": None, "metrics": None, "nees": None} for e in spec.estimators}}


def current_records(out: Path, specs: list[RunSpec]) -> list[dict]:
    """The records in *out* that answer *specs* (same hash), in the campaign's seed order."""
    recs = []
    for spec in specs:
        rec = rs.load_record(_record_path(out, spec))
        if rec is not None and rec.get("spec_hash") == spec.spec_hash:
            recs.append(rec)
    return recs


# --------------------------------------------------------------------------- Dask
class DaskCluster:
    """A Dask client: on a local cluster of *n_workers* processes, or on *address*."""

    def __init__(self, address: str | None, n_workers: int | None):
        from dask.distributed import Client, LocalCluster

        self.cluster = None
        if address:
            self.client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
        else:
            # Ctrl-C in a terminal reaches the whole process group: the worker processes are
            # started with SIGINT ignored (inherited; Python then installs no handler), so
            # only this process sees it, and it closes the cluster in order.  Worker logs are
            # kept to CRITICAL: at close, a heartbeat in flight when the scheduler goes logs an
            # ERROR with a traceback (seen in CI) that is no failure; a failed task reaches the
            # client as its exception and is recorded with its run.
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                self.cluster = LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1,
                                            processes=True, host="127.0.0.1", dashboard_address=None,
                                            silence_logs=logging.CRITICAL)
            finally:
                signal.signal(signal.SIGINT, previous)
            self.client = Client(self.cluster)

    def describe(self) -> str:
        n = len(self.client.scheduler_info(n_workers=-1).get("workers", {}))
        where = "local cluster" if self.cluster is not None else f"scheduler {self.client.scheduler.address}"
        return f"{where}, {n} worker{'s' if n != 1 else ''}"

    def close(self) -> None:
        try:
            self.client.close(timeout=CLOSE_TIMEOUT_S)
        finally:
            if self.cluster is not None:
                self.cluster.close(timeout=CLOSE_TIMEOUT_S)


def execute(out: Path, todo: list[RunSpec], cluster: DaskCluster, keep_csv: bool, quiet: bool) -> int:
    """Run *todo* on *cluster*, saving each record as it arrives; the number saved.
    ``KeyboardInterrupt`` cancels what is left and propagates."""
    from dask.distributed import as_completed
    from tqdm import tqdm

    from ground.montecarlo.worker import run_one

    by_key = {f"pygnc-{s.campaign}-{s.run_id}-{s.spec_hash}": s for s in todo}
    futures = cluster.client.map(run_one, [s.as_dict() for s in todo], keep_csv=keep_csv, key=list(by_key))
    done = 0
    bar = tqdm(total=len(todo), desc="runs", unit="run", disable=quiet, file=sys.stderr)
    try:
        for fut in as_completed(futures):
            spec = by_key[fut.key]
            try:
                record = fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker that died, a task that could not run
                record = _lost_record(spec, exc)
            save_record(out, spec, record)
            done += 1
            bar.update(1)
            if rs.record_failed(record):
                bar.write(f"  {spec.run_id}: failed ({_first_error(record)})", file=sys.stderr)
    except BaseException:
        cluster.client.cancel(futures)
        raise
    finally:
        bar.close()
    return done


def _first_error(record: dict) -> str:
    err = record.get("error") or next((e["error"] for e in record["estimators"].values() if e.get("error")), {})
    return f"{err.get('stage')}: {err.get('message')}"


# --------------------------------------------------------------------------- outputs
def rerun_command(campaign: Campaign, out: Path) -> str:
    return f"python -m ground montecarlo {shlex.quote(str(campaign.path))} --out {shlex.quote(str(out))} --rerun SEED"


def write_results(out: Path, campaign: Campaign, specs: list[RunSpec], plots: bool) -> tuple[list[dict], dict]:
    from ground.montecarlo.report import campaign_statistics, write_report

    records = current_records(out, specs)
    rows = [row for rec in records for row in rs.rows_from_record(rec)]
    write_atomic(out / "results.csv", rs.table_text(rows).encode())
    stats = campaign_statistics(rows, records, [e.name for e in campaign.estimators])
    stats["n_planned"] = len(specs)
    write_report(out, stats, rows, campaign.name, rerun_command(campaign, out), campaign.nees_grid_s, plots=plots)
    return rows, stats


def _say_summary(stats: dict, say) -> None:
    for e, s in stats["estimators"].items():
        parts = []
        for col, key in (("orbit_position_3d_rms_m", "orbit"), ("attitude_angle_rms_deg", "attitude"),
                         ("formation_position_3d_rms_m", "formation")):
            d = s["metrics"].get(col)
            if d:
                unit = "deg" if "deg" in col else "m"
                parts.append(f"{key} median {d['median']:.3g} {unit} (p95 {d['p95']:.3g}, worst {d['worst']:.3g} "
                             f"seed {d['worst_seed']})")
        say(f"  {e}: {s['n_ok']} ok, {s['n_failed']} failed; " + "; ".join(parts))


def _lock(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    f = open(out / ".lock", "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


def _rerun(campaign: Campaign, out: Path, seed: int, say) -> int:
    from ground.montecarlo.worker import run_one

    spec = run_spec(campaign, seed)
    where = out / "rerun" / spec.run_id
    where.mkdir(parents=True, exist_ok=True)
    say(f"montecarlo: rerunning {spec.run_id} (seed {seed}) in {where}/ ...")
    record = run_one(spec.as_dict(), keep_dir=str(where))
    write_atomic(where / "record.json", (json.dumps(record, indent=1) + "\n").encode())
    for row in rs.rows_from_record(record):
        say(f"  {row['estimator']}: {row['status']}" + (f" ({row['stage']}: {row['error']})" if row["error"] else
            f"; orbit {row.get('orbit_position_3d_rms_m')} m, attitude {row.get('attitude_angle_rms_deg')} deg, "
            f"formation {row.get('formation_position_3d_rms_m')} m"))
    say(f"  scenario in {where / 'scenario'}, replays (CSV, plots, summary.json) in {where / 'replay'}/")
    return 1 if rs.record_failed(record) else 0


def run(args) -> int:
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    if args.workers is not None and args.workers < 1:
        print("montecarlo: --workers must be >= 1", file=sys.stderr)
        return 2
    if args.out.exists() and not args.out.is_dir():
        print(f"montecarlo: --out {args.out} exists and is not a directory", file=sys.stderr)
        return 2
    try:
        campaign = load_campaign(args.campaign)
    except CampaignError as exc:
        print(f"montecarlo: {args.campaign}: {exc}", file=sys.stderr)
        return 2
    import dask.distributed  # noqa: F401 - the ground extra, checked before any work

    # Ctrl-C (and a batch system's SIGTERM) interrupts the campaign, whatever disposition
    # this process inherited: a job started in the background by a script has SIGINT
    # ignored, and Python then installs no handler of its own.
    previous = {sig: signal.signal(sig, signal.default_int_handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    lock = _lock(args.out)
    try:
        if lock is None:
            print(f"montecarlo: another campaign is running in {args.out}", file=sys.stderr)
            return 2
        if args.rerun is not None:
            return _rerun(campaign, args.out, args.rerun, say)
        return _run_campaign(args, campaign, say)
    except OSError as exc:  # a full disk, an unwritable DIR: what finished is on disk
        print(f"montecarlo: {exc}", file=sys.stderr)
        return 1
    finally:
        if lock is not None:
            lock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_campaign(args, campaign: Campaign, say) -> int:
    out: Path = args.out
    specs = run_specs(campaign)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    write_atomic(out / "campaign.toml", Path(args.campaign).read_bytes())
    todo = pending_specs(out, specs, args.retry_failed)
    n_est = len(campaign.estimators)
    say(f"montecarlo {campaign.name}: {len(specs)} runs x {n_est} estimator configuration{'s' if n_est > 1 else ''}; "
        f"{len(specs) - len(todo)} already done, {len(todo)} to run")
    interrupted = False
    t_start = time.perf_counter()
    if todo:
        cluster = None
        try:
            try:
                cluster = DaskCluster(args.scheduler, args.workers)
            except (OSError, TimeoutError) as exc:
                print(f"montecarlo: cannot reach the scheduler {args.scheduler}: {exc}", file=sys.stderr)
                return 1
            say(f"  on {cluster.describe()}")
            execute(out, todo, cluster, args.keep_csv, args.quiet)
        except KeyboardInterrupt:  # while starting the cluster or running: what finished is saved
            interrupted = True
        finally:
            if cluster is not None:
                cluster.close()
    elapsed = time.perf_counter() - t_start
    rows, stats = write_results(out, campaign, specs, plots=not args.no_plots)
    n_done = len(current_records(out, specs))
    if interrupted:
        print(f"montecarlo: interrupted: {n_done} of {len(specs)} runs done; run the same command to resume",
              file=sys.stderr)
        return 130
    say(f"  {len(todo)} runs in {elapsed:.1f} s; results.csv ({len(rows)} rows), report.md in {out}/")
    _say_summary(stats, say)
    if stats["failures"]:
        say(f"  {len(stats['failures'])} failed (run, estimator): see report.md; --retry-failed runs them again")
    all_failed = rows and all(r["status"] != "ok" for r in rows)
    return 1 if all_failed else 0
