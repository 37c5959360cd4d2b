"""``python -m ground montecarlo CAMPAIGN.toml --out DIR``: run a campaign on Dask.

Each run (one seed: a dispersed scenario, simulated once and replayed with every estimator
configuration) is one Dask task (:func:`ground.montecarlo.worker.run_one`).  By default a
local cluster of worker processes, one per core (``--workers``), on 127.0.0.1 with no
dashboard; ``--scheduler tcp://HOST:PORT`` sends the same tasks to a running
``dask.distributed`` scheduler instead, once it has answered as one within
:data:`CONNECT_TIMEOUT_S` (its workers need pygnc installed; Dask ships tasks
and results with pickle, so give it only a scheduler you trust).

As each run finishes, this process writes its record to ``DIR/runs/<run_id>.json``
(atomically) and releases the run's result on the cluster, so that a worker lost later
does not make the scheduler compute a finished run again.  Started again, a campaign skips every run whose record
is there with the
same spec hash, so an interrupted campaign resumes where it stopped and a changed campaign
re-runs only the runs it changed; ``--retry-failed`` runs the failed ones again.  At the
end (and after an interrupt, for what finished) ``results.csv``, ``report.md``,
``report.json`` and ``plots/`` are written from the records.

Results of different code never mix silently: every record names the code that computed it
(:mod:`ground.montecarlo.provenance`), a campaign whose DIR holds results of other code is
refused before anything runs, and so is a cluster with a worker that runs other code
(asked before the runs are sent, and checked by each worker for its run);
``--allow-mixed-code`` accepts both, every row of the table then naming its code.

Exit status: 0 the campaign finished (runs that failed are recorded, listed and counted),
1 every run failed, no scheduler answers at the address or a worker runs other code, 2 bad
usage (an address Dask cannot use), campaign file, or a DIR holding results of other code,
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
from collections import Counter
from pathlib import Path

from ground.montecarlo import results as rs
from ground.montecarlo.campaign import Campaign, CampaignError, RunSpec, load_campaign, run_spec, run_specs
from pygnc.atomic import write_atomic

#: Seconds to wait for a scheduler given by address to answer.
CONNECT_TIMEOUT_S = 30.0
#: Seconds to wait for a local cluster to shut down.
CLOSE_TIMEOUT_S = 20.0
#: Dask configuration of a local cluster: its HTTP servers serve nothing (no dashboard).
NO_HTTP_ROUTES = {f"distributed.{node}.http.routes": [] for node in ("scheduler", "worker", "nanny")}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("campaign", metavar="CAMPAIGN.toml", type=Path, help="campaign file (docs/interface.md)")
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="campaign directory: run records, results.csv, report (the same DIR resumes an interrupted campaign)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a running dask.distributed scheduler (e.g. tcp://10.0.0.5:8786) instead of a local cluster",
    )
    where.add_argument(
        "--workers", type=int, metavar="N", help="worker processes of the local cluster (default: one per core)"
    )
    p.add_argument("--retry-failed", action="store_true", help="run again the runs whose record holds an error")
    p.add_argument(
        "--allow-mixed-code",
        action="store_true",
        help="keep the runs DIR holds from other code (another "
        "pygnc version or source tree) and accept workers that run other code; each row names its code",
    )
    p.add_argument(
        "--keep-csv",
        action="store_true",
        help="also keep every run's CSVs, OEM and summary.json in DIR/runs/<run_id>/<estimator>/",
    )
    p.add_argument(
        "--rerun",
        type=int,
        metavar="SEED",
        help="run the one run of this seed here, without Dask, "
        "keeping its scenario and replay outputs with plots in DIR/rerun/<run_id>/",
    )
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
    return {
        "format_version": rs.RUN_RECORD_VERSION,
        "campaign": spec.campaign,
        "run_id": spec.run_id,
        "seed": spec.seed,
        "spec_hash": spec.spec_hash,
        "dispersed": spec.dispersed,
        "worker": None,
        "code": None,
        "error": {"stage": "worker", "message": f"{type(exc).__name__}: {exc}"},
        "simulate_s": None,
        "estimators": rs.blank_estimators(spec.estimators),
    }


def current_records(out: Path, specs: list[RunSpec]) -> list[dict]:
    """The records in *out* that answer *specs* (same hash), in the campaign's seed order."""
    recs = []
    for spec in specs:
        rec = rs.load_record(_record_path(out, spec))
        if rec is not None and rec.get("spec_hash") == spec.spec_hash:
            recs.append(rec)
    return recs


# --------------------------------------------------------------------------- Dask
class SchedulerUnreachable(Exception):
    """No Dask scheduler answers at the address (the message says what happened)."""


def probe_scheduler(address: str, timeout_s: float) -> None:
    """Ask *address* who it is, all within *timeout_s*; :class:`SchedulerUnreachable` unless
    a Dask scheduler answers.  ``Client`` alone waits forever on a peer that accepts the
    connection and never answers, and fails with whatever the bytes of another service
    decode to (an HTTP server's reply read as a frame length: "Unable to allocate 3 EiB")."""
    import asyncio

    from distributed.comm import connect

    async def ask():
        comm = await connect(address, timeout=timeout_s)
        try:
            await comm.write({"op": "identity"})
            return await comm.read()
        finally:
            comm.abort()

    try:
        answer = asyncio.run(asyncio.wait_for(ask(), timeout_s))
    except TimeoutError:
        raise SchedulerUnreachable(f"no answer within {timeout_s:g} s") from None
    except OSError as exc:
        raise SchedulerUnreachable(str(exc)) from None
    except (Exception, MemoryError) as exc:  # noqa: BLE001 - another service's bytes, decoded as Dask's
        raise SchedulerUnreachable(
            f"something else answers there, not a Dask scheduler ({type(exc).__name__}: {exc})"
        ) from None
    if not (isinstance(answer, dict) and answer.get("type") == "Scheduler"):
        raise SchedulerUnreachable(f"it answered as {str(answer)[:80]!r}, not as a Dask scheduler")


def check_address(address: str) -> None:
    """ValueError unless *address* is one Dask can connect to (``tcp://HOST:PORT``, ...)."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    scheme, location = parse_address(address)
    get_backend(scheme)
    if not location:
        raise ValueError("no host in the address")
    if scheme in ("tcp", "tls", "ws", "wss"):
        try:
            parse_host_port(location, default_port=8786)
        except ValueError:
            raise ValueError(f"{location!r} is not HOST:PORT") from None


class DaskCluster:
    """A Dask client: on a local cluster of *n_workers* processes, or on *address*."""

    def __init__(self, address: str | None, n_workers: int | None):
        import dask
        from dask.distributed import Client, LocalCluster

        self.cluster = None
        if address:
            probe_scheduler(address, CONNECT_TIMEOUT_S)
            self.client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
        else:
            # Ctrl-C in a terminal reaches the whole process group: the worker processes are
            # started with SIGINT ignored (inherited; Python then installs no handler), so
            # only this process sees it, and it closes the cluster in order.  Worker logs are
            # kept to CRITICAL: at close, a heartbeat in flight when the scheduler goes logs an
            # ERROR with a traceback (seen in CI) that is no failure; a failed task reaches the
            # client as its exception and is recorded with its run.
            # No dashboard: Dask's scheduler, nannies and workers each start an HTTP server
            # whatever the options (the scheduler's on port 8787 unless told otherwise, with
            # a warning on every run when that port is taken); they listen on 127.0.0.1, on
            # any free port, and serve no route at all.
            dask.config.set(NO_HTTP_ROUTES)
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                self.cluster = LocalCluster(
                    n_workers=n_workers or os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",
                    scheduler_kwargs={"dashboard": False},
                    silence_logs=logging.CRITICAL,
                )
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


def task_key(spec: RunSpec) -> str:
    """The Dask key of a run's task (its campaign, run and question)."""
    return f"pygnc-{spec.campaign}-{spec.run_id}-{spec.spec_hash}"


class CodeMismatch(Exception):
    """A worker runs other code than this client (the message names it and both codes)."""


def check_workers(cluster: DaskCluster, expected: dict) -> None:
    """Raise :class:`CodeMismatch` unless every worker runs the *expected* code."""
    from ground.montecarlo.provenance import code_identity, describe, same_code

    try:
        found = cluster.client.run(code_identity)
    except Exception as exc:  # noqa: BLE001 - e.g. a worker without pygnc installed
        raise CodeMismatch(f"cannot ask the workers which code they run: {type(exc).__name__}: {exc}") from None
    odd = {addr: code for addr, code in found.items() if not same_code(code, expected)}
    if odd:
        raise CodeMismatch(
            "; ".join(f"worker {addr} runs {describe(code)}" for addr, code in sorted(odd.items()))
            + f", this client {describe(expected)}"
        )


def execute(
    out: Path, todo: list[RunSpec], cluster: DaskCluster, keep_csv: bool, quiet: bool, expected_code: dict | None = None
) -> int:
    """Run *todo* on *cluster*, saving each record as it arrives; the number saved.

    Each run's future is released as soon as its record is on disk: the scheduler then
    forgets the result, so a worker lost later does not make it compute the run again.
    With *expected_code*, each worker refuses a run if its code differs, and the first
    refusal raises :class:`CodeMismatch` (nothing of it saved).  ``KeyboardInterrupt``
    cancels what is left and propagates."""
    from dask.distributed import as_completed
    from tqdm import tqdm

    from ground.montecarlo.worker import run_one

    by_key = {task_key(s): s for s in todo}
    payload = [dict(s.as_dict(), code=expected_code) for s in todo]
    pending = dict(zip(by_key, cluster.client.map(run_one, payload, keep_csv=keep_csv, key=list(by_key))))
    done = 0
    bar = tqdm(total=len(todo), desc="runs", unit="run", disable=quiet, file=sys.stderr)
    try:
        for fut in as_completed(list(pending.values())):
            spec = by_key[fut.key]
            try:
                record = fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker that died, a task that could not run
                record = _lost_record(spec, exc)
            if (record.get("error") or {}).get("stage") == "code":
                raise CodeMismatch(f"worker {record.get('worker')}: {record['error']['message']}")
            save_record(out, spec, record)
            del pending[fut.key]
            fut.release()
            done += 1
            bar.update(1)
            if rs.record_failed(record):
                bar.write(f"  {spec.run_id}: failed ({_first_error(record)})", file=sys.stderr)
    except BaseException:
        cluster.client.cancel(list(pending.values()))
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


def write_results(
    out: Path, campaign: Campaign, specs: list[RunSpec], plots: bool, code: dict | None = None
) -> tuple[list[dict], dict]:
    from ground.montecarlo.report import campaign_statistics, code_summary, write_report

    records = current_records(out, specs)
    rows = [row for rec in records for row in rs.rows_from_record(rec)]
    write_atomic(out / "results.csv", rs.table_text(rows).encode())
    stats = campaign_statistics(rows, records, [e.name for e in campaign.estimators])
    stats["n_planned"] = len(specs)
    stats["code"] = code_summary(records, code)
    write_report(out, stats, rows, campaign.name, rerun_command(campaign, out), campaign.nees_grid_s, plots=plots)
    return rows, stats


def _say_summary(stats: dict, say) -> None:
    for e, s in stats["estimators"].items():
        parts = []
        for col, key in (
            ("orbit_position_3d_rms_m", "orbit"),
            ("attitude_angle_rms_deg", "attitude"),
            ("formation_position_3d_rms_m", "formation"),
        ):
            d = s["metrics"].get(col)
            if d:
                unit = "deg" if "deg" in col else "m"
                parts.append(
                    f"{key} median {d['median']:.3g} {unit} (p95 {d['p95']:.3g}, worst {d['worst']:.3g} "
                    f"seed {d['worst_seed']})"
                )
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
        say(
            f"  {row['estimator']}: {row['status']}"
            + (
                f" ({row['stage']}: {row['error']})"
                if row["error"]
                else f"; orbit {row.get('orbit_position_3d_rms_m')} m, "
                f"attitude {row.get('attitude_angle_rms_deg')} deg, "
                f"formation {row.get('formation_position_3d_rms_m')} m"
            )
        )
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

    if not args.no_plots:  # (the report's plots come after the whole campaign)
        import matplotlib  # noqa: F401

    if args.scheduler:
        try:
            check_address(args.scheduler)
        except ValueError as exc:
            print(f"montecarlo: --scheduler {args.scheduler}: {exc} (e.g. tcp://10.0.0.5:8786)", file=sys.stderr)
            return 2

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


def other_code_records(out: Path, specs: list[RunSpec], todo: list[RunSpec], code: dict) -> list[dict]:
    """The records in *out* that stay (not in *todo*), hold results, and were computed by
    other code than *code*."""
    from ground.montecarlo.provenance import same_code

    redo = {s.run_id for s in todo}
    return [
        r
        for r in current_records(out, specs)
        if r["run_id"] not in redo and rs.record_has_results(r) and not same_code(r.get("code"), code)
    ]


def _run_campaign(args, campaign: Campaign, say) -> int:
    from ground.montecarlo.provenance import code_identity, describe

    out: Path = args.out
    specs = run_specs(campaign)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    todo = pending_specs(out, specs, args.retry_failed)
    mine = code_identity()
    other = other_code_records(out, specs, todo, mine) if todo else []
    if other and not args.allow_mixed_code:
        codes = Counter(describe(r.get("code")) for r in other)
        print(
            f"montecarlo: {out} holds {len(other)} finished run{'s' if len(other) > 1 else ''} computed by other "
            f"code ({'; '.join(f'{n} by {c}' for c, n in codes.most_common())}) than this one ({describe(mine)}): "
            "new results would mix with theirs. Give another --out DIR, or --allow-mixed-code to keep them "
            "(results.csv names the code of every row)",
            file=sys.stderr,
        )
        return 2
    write_atomic(out / "campaign.toml", Path(args.campaign).read_bytes())
    n_est = len(campaign.estimators)
    say(
        f"montecarlo {campaign.name}: {len(specs)} runs x {n_est} estimator configuration{'s' if n_est > 1 else ''}; "
        f"{len(specs) - len(todo)} already done, {len(todo)} to run; {describe(mine)}"
    )
    if other:
        say(f"  --allow-mixed-code: keeping {len(other)} runs computed by other code")
    expected = None if args.allow_mixed_code else mine
    interrupted = mismatch = False
    t_start = time.perf_counter()
    if todo:
        cluster = None
        try:
            try:
                cluster = DaskCluster(args.scheduler, args.workers)
            except (OSError, TimeoutError, SchedulerUnreachable) as exc:
                print(f"montecarlo: cannot reach the scheduler {args.scheduler}: {exc}", file=sys.stderr)
                return 1
            say(f"  on {cluster.describe()}")
            if expected is not None:
                check_workers(cluster, expected)
            execute(out, todo, cluster, args.keep_csv, args.quiet, expected)
        except KeyboardInterrupt:  # while starting the cluster or running: what finished is saved
            interrupted = True
        except CodeMismatch as exc:
            print(
                f"montecarlo: {exc}: results of different code would mix. Install the same pygnc on every "
                "worker (or give --allow-mixed-code)",
                file=sys.stderr,
            )
            mismatch = True
        finally:
            if cluster is not None:
                cluster.close()
    elapsed = time.perf_counter() - t_start
    rows, stats = write_results(out, campaign, specs, plots=not args.no_plots, code=mine)
    n_done = len(current_records(out, specs))
    if interrupted:
        print(
            f"montecarlo: interrupted: {n_done} of {len(specs)} runs done; run the same command to resume",
            file=sys.stderr,
        )
        return 130
    if mismatch:
        return 1
    say(f"  {len(todo)} runs in {elapsed:.1f} s; results.csv ({len(rows)} rows), report.md in {out}/")
    _say_summary(stats, say)
    if stats["failures"]:
        say(f"  {len(stats['failures'])} failed (run, estimator): see report.md; --retry-failed runs them again")
    all_failed = rows and all(r["status"] != "ok" for r in rows)
    return 1 if all_failed else 0
