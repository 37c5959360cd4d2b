"""Restart trial: kill each task at several instants of a batch, compare the downlink with a clean run's.

Each run starts ``flight/main.py`` in a fresh pseudo-terminal (as the host does, through
``tests/flight_harness.py``) on a copy of a scenario (its ``sense.bin``, ``range/`` and the
uplinked ``pygnc_config.toml``), with the spacecraft time one second after the batch.  A
killed run sends SIGKILL to one task once the orbit estimate in the status file has
reached a given fraction of the batch (``--at``, default 0.2 0.5 0.8), waits until the
supervisor has restarted it and every estimator has published past the batch, then types
Ctrl-C; a clean run only waits and stops.  The downlink (every batch file) is then compared
record for record with the first clean run's (``flight_harness.downlink``: the estimates at
sample times - not those propagated to "now" - the measurements, and the on-change kinds by
value): records missing, extra, or with a different payload.  A second clean run measures
how much two runs without a fault differ (the data's own processing order).

    .venv/bin/python bench/bench_restarts.py [--scenario DIR] [--tasks ingest orbit_estimator ...]
                                             [--at 0.2 0.5 0.8] [--clean 2] [--record]

Without ``--scenario`` the 3-h two-spacecraft formation (data/scenarios/formation_3h.toml)
is simulated into a temporary directory first (~20 s).  Prints one line per run and a table
of records lost (missing + differing) per restart, per task.

``--stall N`` instead stops (SIGSTOP) the status reporter N times, once per run of the
sample batch (data/sample_5min) after the batch is done, and measures how long the status file
stays frozen: from the SIGSTOP to the first file with another ``seq`` (polled every 5 ms).

    .venv/bin/python bench/bench_restarts.py --stall 5 [--record]

``--record`` writes the summary figures to bench/results/restarts.json (``status_stall.json``
with ``--stall``; docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from bench_ctrl_c import make_scenario  # noqa: E402
from flight_harness import FlightRun, batch_end_sc, compare_downlinks, downlink, estimators_done, make_home  # noqa: E402
from results import figure, record  # noqa: E402

from pygnc.config import Config  # noqa: E402
from pygnc.formats import status as S  # noqa: E402
from pygnc.tasks.table import enabled_tasks  # noqa: E402

#: Longest a run may take from start to the batch processed, s.
RUN_TIMEOUT_S = 300.0


def _home(tmp: Path, scenario: Path) -> Path:
    home = make_home(tmp, scenario)
    if (scenario / "pygnc_config.toml").is_file():  # what the ground uplinked
        shutil.copy(scenario / "pygnc_config.toml", home / "pygnc_config.toml")
    return home


def _peers(scenario: Path) -> int:
    return len(list((scenario / "range").glob("rng*.bin"))) and 1


def one_run(tmp: Path, scenario: Path, task: str | None = None, at: float = 0.5) -> dict:
    """Run the tree on *scenario*; with *task*, SIGKILL it when the orbit estimate has
    reached fraction *at* of the batch.  Returns the downlink and what happened."""
    t_first, t_last = batch_end_sc(scenario)
    home = _home(tmp, scenario)
    res: dict = {"task": task, "at": at}
    t0 = time.monotonic()
    with FlightRun(home, timeout_min=30, spacecraft_time_s=t_last + 1.0) as run:
        names = [s.name for s in enabled_tasks(Config())]
        if task is not None:
            k = names.index(task)
            target = t_first + at * (t_last - t_first)
            st = run.wait_status(
                lambda s: s["orbit_t_sc_s"] >= target or s["flags"] & S.FLAG_BATCH_DONE,
                timeout_s=RUN_TIMEOUT_S,
                period_s=0.005,
            )
            res["killed_at"] = (
                (st["orbit_t_sc_s"] - t_first) / (t_last - t_first)
                if st["orbit_t_sc_s"] == st["orbit_t_sc_s"]
                else float("nan")
            )
            os.kill(run.task_pid(task), signal.SIGKILL)
            run.wait_status(lambda s: s[f"task{k}_restarts"] >= 1, timeout_s=RUN_TIMEOUT_S)
        run.wait_status(lambda s: estimators_done(s, t_last, _peers(scenario)), timeout_s=RUN_TIMEOUT_S)
        res["done_s"] = time.monotonic() - t0
        run.ctrl_c()
        res["rc"] = run.wait_exit(30)
        sup = (run.log_dir() / "supervisor.log").read_text(errors="replace")
        res["restarts"] = sup.count("restart 1 of")
        res["attitude"] = attitude_counters(run.log_dir() / "bus.log")
    res["downlink"] = downlink(home)
    return res


def attitude_counters(bus_log: Path) -> dict:
    """The attitude estimator's pairing counters in the run's last health message: samples
    processed without a position, and why (``overflow``: its wait for orbit estimates)."""
    from pygnc.bus.messages import DecodeCounters, decode
    from pygnc.formats.buslog import decode_frames

    last = None
    for fr in decode_frames(bus_log.read_bytes()).frames:
        if fr.channel == "health":
            last = decode(fr.message, DecodeCounters()) or last
    for t in last.body["tasks"] if last is not None else ():
        if t["name"] == "attitude_estimator":
            return {k: t["counters"].get(k) for k in ("without_position", "overflow")}
    return {}


def status_stall(tmp: Path) -> float:
    """Seconds the status file stays frozen after the status reporter is stopped (SIGSTOP)."""
    sample = REPO / "data" / "sample_5min"
    _, t_last = batch_end_sc(sample)
    names = [s.name for s in enabled_tasks(Config())]
    with FlightRun(make_home(tmp, sample), timeout_min=5, spacecraft_time_s=t_last + 1.0) as run:
        run.wait_status(
            lambda s: (
                s["flags"] & S.FLAG_BATCH_DONE
                and all(S.TASK_STATES[s[f"task{i}_state"]] == "running" for i in range(len(names)))
            )
        )
        seq = run.status()["seq"]
        os.kill(run.task_pid("status_reporter"), signal.SIGSTOP)
        t0 = time.monotonic()
        run.wait_status(lambda s: s["seq"] != seq, timeout_s=60, period_s=0.005)
        frozen = time.monotonic() - t0
        run.ctrl_c()
        run.wait_exit(30)
    return frozen


def lost(cmp: dict) -> int:
    return sum(c["missing"] + c["differ"] for c in cmp.values())


def summary(cmp: dict) -> str:
    parts = [
        f"{k} -{c['missing']}/~{c['differ']}/+{c['extra']}"
        for k, c in sorted(cmp.items())
        if c["missing"] or c["differ"] or c["extra"]
    ]
    return ", ".join(parts) or "identical"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", type=Path, help="scenario directory (default: simulate the 3-h formation)")
    ap.add_argument("--tasks", nargs="*", help="tasks to kill (default: every task of the default run)")
    ap.add_argument(
        "--at",
        nargs="*",
        type=float,
        default=[0.2, 0.5, 0.8],
        help="fractions of the batch (by the orbit estimate's epoch) at which to kill",
    )
    ap.add_argument("--clean", type=int, default=2, help="clean runs (the first is the reference)")
    ap.add_argument("--stall", type=int, default=0, help="only: stop the status reporter this many times")
    ap.add_argument("--record", action="store_true", help="record the figures in bench/results (the performance page)")
    args = ap.parse_args()
    if args.stall:
        xs = []
        for i in range(args.stall):
            with tempfile.TemporaryDirectory(prefix="bench_restarts_") as tmp:
                xs.append(status_stall(Path(tmp)))
            print(f"run {i + 1}: status file frozen {xs[-1]:.2f} s", flush=True)
        print(
            f"status reporter stopped: the status file frozen median {statistics.median(xs):.2f} s, "
            f"worst {max(xs):.2f} s ({len(xs)} runs)"
        )
        if args.record:
            record(
                "status_stall",
                f"The status reporter stopped (SIGSTOP) on the sample batch: {len(xs)} runs",
                [
                    figure(
                        "frozen_median_s",
                        "status file frozen after the status reporter stops: median",
                        statistics.median(xs),
                        "s",
                    ),
                    figure("frozen_worst_s", "... worst", max(xs), "s"),
                ],
                notes="From the SIGSTOP to the first status file with another sequence number (polled every 5 ms).",
            )
        return 0
    tasks = args.tasks or [s.name for s in enabled_tasks(Config())]
    with tempfile.TemporaryDirectory(prefix="bench_restarts_") as tmp:
        scenario = args.scenario or make_scenario(Path(tmp) / "scenario")
        ref = None
        rows: dict[str, list[int]] = {}
        for i in range(args.clean):
            with tempfile.TemporaryDirectory(dir=tmp) as run_tmp:
                r = one_run(Path(run_tmp), scenario)
            if ref is None:
                ref = r["downlink"]
                n = compare_downlinks(ref, ref)
                per_kind = ", ".join(f"{k} {c['records']}" for k, c in sorted(n.items()))
                print(
                    f"clean 1: {sum(c['records'] for c in n.values())} records ({per_kind}), "
                    f"batch processed in {r['done_s']:.1f} s, exit {r['rc']}; attitude {r['attitude']}",
                    flush=True,
                )
                continue
            cmp = compare_downlinks(ref, r["downlink"])
            rows.setdefault("(clean)", []).append(lost(cmp))
            print(
                f"clean {i + 1}: {summary(cmp)}; {r['done_s']:.1f} s, exit {r['rc']}; attitude {r['attitude']}",
                flush=True,
            )
        for task in tasks:
            for at in args.at:
                with tempfile.TemporaryDirectory(dir=tmp) as run_tmp:
                    r = one_run(Path(run_tmp), scenario, task, at)
                cmp = compare_downlinks(ref, r["downlink"])
                rows.setdefault(task, []).append(lost(cmp))
                print(
                    f"{task:22s} killed at {r['killed_at']:5.2f} of the batch: lost {lost(cmp):5d} "
                    f"({summary(cmp)}); {r['done_s']:.1f} s, exit {r['rc']}; attitude {r['attitude']}",
                    flush=True,
                )
    total = sum(c["records"] for c in compare_downlinks(ref, ref).values())
    print()
    print(f"records lost per restart (missing or different, of {total}), killed at {args.at} of the batch:")
    for task, xs in rows.items():
        print(f"  {task:22s} " + " ".join(f"{x:6d}" for x in xs) + f"   worst {max(xs)}")
    if args.record:
        killed = [x for task, xs in rows.items() if task != "(clean)" for x in xs]
        figs = [figure("records", "downlink records of a clean run", total)]
        if "(clean)" in rows:
            figs.append(
                figure("clean_differ", "records lost or different between two clean runs, worst", max(rows["(clean)"]))
            )
        if killed:
            figs += [
                figure(
                    "kills", f"task kills (SIGKILL at {', '.join(f'{a:g}' for a in args.at)} of the batch)", len(killed)
                ),
                figure(
                    "lost_worst", "downlink records lost or different after a restart, worst of all kills", max(killed)
                ),
            ]
        figs += [
            figure(f"lost_worst_{task}", f"... {task} killed, worst", max(xs))
            for task, xs in rows.items()
            if task != "(clean)"
        ]
        on = "the 3-h two-spacecraft formation" if args.scenario is None else f"scenario {args.scenario.name}"
        record(
            "restarts",
            f"Restarts lose nothing: each task killed during the batch of {on}",
            figs,
            notes=(
                "flight/main.py in a pseudo-terminal as the host starts it; one task SIGKILLed once the orbit estimate "
                "reaches the given fraction of the batch, the supervisor restarts it, the run is stopped once every "
                "estimator has published past the batch; its downlink (every batch file) compared record for record "
                "with a clean run's."
            ),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
