"""A day's batch through the real process tree, started as the host starts it.

    .venv/bin/python bench/bench_batch.py [--settings data/scenarios/formation_24h.toml]
        [--duration 24h] [--runs 3] [--scenario DIR] [--no-one-core | --one-core-only] [--no-uplink]
        [--base TREE] [--versus DIR] [--handler-times | --profile DIR] [--record NAME]

1. ``python -m ground simulate`` of the scenario (default: the 24-h, own + two partners
   scenario ``data/scenarios/formation_24h.toml``) into a temporary directory, unless
   ``--scenario`` names one already simulated.
2. ``--runs`` times: a fresh ``PYGNC_HOME`` with the batch's ``sense.bin`` and range
   files and the scenario's ``pygnc_config.toml`` (the partner priors a ground team
   uplinks; ``--no-uplink``: without it, the defaults with no partner priors),
   ``flight/main.py <timeout_min> <spacecraft_time_s>`` in a pseudo-terminal (the
   host's way: tests/flight_harness.py), the spacecraft time one second after the batch's
   last sample.  The figure is the time from starting ``main.py`` to the first status file
   that holds estimates of the batch's last sample from every estimator (the batch is done
   and each estimator has published past the batch's last spacecraft time - the criterion
   of ``ground.replay.pipeline.estimators_done``).  The peak summed PSS of the tree is
   sampled every 0.5 s (and each process's own peak); each process's CPU seconds (user +
   system) are read just before the Ctrl-C that ends the run, and those of the processes
   the supervisor has reaped by then (the zygote, which exits once every task is forked).
3. The same with the tree pinned to one core (``taskset -c 0``; a Pi Zero 2 W core is
   roughly 10-20x slower than one of this machine's).
4. ``--handler-times``: the live-mode view instead - every estimator's ``handle()`` calls
   on the batch in this process (one call per message, outputs passed on as the tree
   does), their p50 / p99 / max and the message type of the slowest, and the longest stretch
   of a call without a look at the processor's ``interrupt`` (where the flight task answers
   pings and sees a stop).
5. ``--profile DIR``: one run with every task under cProfile (``PYGNC_PROFILE_DIR``), the
   statistics kept in DIR, each estimator's top functions printed.
6. ``--base TREE``: another checkout of pygnc (e.g. a worktree of an older commit) run side
   by side - each run of this tree followed by one of TREE's ``flight/main.py``, on the same
   scenario and the same machine load - and the ratio of the medians printed (its status
   file is read with TREE's own decoder: the layout may differ).
7. ``--versus DIR``: another simulated scenario run through this tree side by side with
   ``--scenario``'s (each run followed by one on DIR), e.g. the same day with partner fixes
   relayed against range-only (``data/scenarios/two_sc_24h_*.toml``), and the ratio.

Prints each run's time to done and what it wrote (bus log, batch files), the median time,
the median per-task CPU seconds and the peak PSS.  Needs the bench extra (psutil).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from flight_harness import FLIGHT_MAIN, FlightRun, make_home  # noqa: E402
from results import figure, record  # noqa: E402

from ground.__main__ import main as ground_main  # noqa: E402
from ground.replay.pipeline import TASK_OF, estimators_done  # noqa: E402
from pygnc.config import Paths, config_for_home  # noqa: E402
from pygnc.formats import status as S  # noqa: E402
from pygnc.formats.sense import decode_sense  # noqa: E402
from pygnc.tasks.table import TASKS, enabled_tasks, process_name  # noqa: E402

_FORKED_NAMES = {process_name(t): t.name for t in TASKS}
#: The uplinked configuration's file name in a home (and in a simulated scenario).
UPLINK = Paths(Path(".")).config_file.name
DEFAULT_SETTINGS = REPO / "data" / "scenarios" / "formation_24h.toml"


def _task_name(p: psutil.Process, root_pid: int) -> str:
    if p.pid == root_pid:
        return "supervisor"
    try:
        cmd, comm = p.cmdline(), p.name()
    except psutil.Error:
        return "?"
    if "pygnc.tasks" in cmd:  # spawned
        return cmd[cmd.index("pygnc.tasks") + 1]
    if comm in _FORKED_NAMES:  # forked from the zygote: its process name
        return _FORKED_NAMES[comm]
    if "pygnc.zygote" in cmd:
        return "zygote"
    return " ".join(cmd[:3])


def _pss_of(procs: list[psutil.Process], root_pid: int | None = None, per_task: dict | None = None) -> int:
    """Summed PSS of *procs* [bytes]; with *per_task*, each task's peak kept there too."""
    total = 0
    for p in procs:
        try:
            pss = p.memory_full_info().pss
        except psutil.Error:
            continue
        total += pss
        if per_task is not None:
            name = _task_name(p, root_pid)
            per_task[name] = max(per_task.get(name, 0), pss)
    return total


class Tree(NamedTuple):
    """A pygnc checkout whose ``flight/main.py`` a run starts, and its status decoder (a
    NamedTuple: tests/test_docs.py loads this file as a module of no package)."""

    label: str
    main: Path
    decode: object  # bytes -> status dict


def tree_of(root: Path) -> Tree:
    """*root*'s tree: its ``flight/main.py`` and its own status decoder (loaded from its
    ``flight/pygnc`` as a package of another name, so that two layouts can be read in one
    process), labelled by its commit."""
    import hashlib
    import importlib.util
    import subprocess

    root = root.resolve()
    flight = root / "flight"
    name = "_pygnc_" + hashlib.sha1(str(root).encode()).hexdigest()[:10]
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, flight / "pygnc" / "__init__.py", submodule_search_locations=[str(flight / "pygnc")]
        )
        pkg = importlib.util.module_from_spec(spec)
        sys.modules[name] = pkg
        spec.loader.exec_module(pkg)
    status = importlib.import_module(f"{name}.formats.status")
    git = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    commit = git.stdout.strip() or root.name
    return Tree(f"{commit} ({root})", flight / "main.py", status.decode_status)


def _status(run: FlightRun, decode) -> dict | None:
    try:
        return decode(run.status_path.read_bytes())
    except Exception:  # noqa: BLE001 - being written, or not yet there
        return None


def one_run(
    scenario: Path,
    tmp: Path,
    t_last_sc_s: float,
    prefix: list[str] | None,
    timeout_s: float = 900.0,
    uplink: bool = True,
    env: dict | None = None,
    tree: Tree | None = None,
) -> dict:
    home = make_home(tmp, scenario)
    if uplink and (scenario / UPLINK).is_file():  # what the ground team sent: partner priors
        shutil.copy(scenario / UPLINK, home / UPLINK)
    tasks = {spec.name for spec in enabled_tasks(config_for_home(home))} & set(TASK_OF.values())
    main = FLIGHT_MAIN if tree is None else tree.main
    run = FlightRun(home, timeout_min=60, spacecraft_time_s=t_last_sc_s + 1.0, prefix=prefix, env=env, main=main)
    decode = S.decode_status if tree is None else tree.decode
    peak = [0]
    peak_task: dict[str, int] = {}
    stop = threading.Event()

    def sample_pss():
        while not stop.wait(0.5):
            peak[0] = max(peak[0], _pss_of(run.tree(), run.proc.pid, peak_task))

    sampler = threading.Thread(target=sample_pss, daemon=True)
    sampler.start()
    try:
        t_end = time.monotonic() + timeout_s
        while True:
            st = _status(run, decode)
            if st is not None and st["flags"] & S.FLAG_BATCH_DONE and estimators_done(st, tasks, t_last_sc_s):
                t_done = time.monotonic() - run.t_start
                break
            if run.proc.poll() is not None:
                raise SystemExit(f"main.py exited ({run.proc.returncode}) before the batch was done:\n{run.text}")
            if time.monotonic() > t_end:
                raise SystemExit(f"not done after {timeout_s:.0f} s; last status {st}")
            time.sleep(0.02)
        cpu: dict[str, float] = {}
        for p in run.tree():
            try:
                c = p.cpu_times()
                name = _task_name(p, run.proc.pid)
                cpu[name] = cpu.get(name, 0.0) + c.user + c.system
                if p.pid == run.proc.pid:  # the processes it has reaped: the zygote (it exits once
                    # every task is forked), and any task restarted
                    cpu["reaped (zygote)"] = c.children_user + c.children_system
            except psutil.Error:
                pass
        peak[0] = max(peak[0], _pss_of(run.tree(), run.proc.pid, peak_task))
        try:  # (taskset narrows the tree's affinity; main.py's is the tree's)
            cpus = len(psutil.Process(run.proc.pid).cpu_affinity() or [])
        except (psutil.Error, AttributeError):
            cpus = psutil.cpu_count() or 1
        run.ctrl_c()
        rc = run.wait_exit(15)
        try:  # what the run wrote to the Pi's card: the bus log and the downlink files
            bus_log_b = (run.log_dir() / "bus.log").stat().st_size
        except (OSError, IndexError):  # (IndexError: no run directory)
            bus_log_b = -1
        batch_b = sum(p.stat().st_size for p in (home / "pygnc_batches").glob("*.bin"))
    finally:
        stop.set()
        sampler.join()
        run.close()
    return {
        "t_done_s": t_done,
        "cpu_s": cpu,
        "peak_pss_mib": peak[0] / 2**20,
        "exit": rc,
        "bus_log_mb": bus_log_b / 1e6,
        "batch_kb": batch_b / 1e3,
        "peak_pss_task_mib": {k: v / 2**20 for k, v in peak_task.items()},
        "cpus": cpus,
    }


def reference_loop_ms(repeat: int = 5) -> float:
    """Median time of a fixed pure-Python loop (10^6 additions) [ms]: this machine's speed
    at the moment, printed beside the figures: a shared machine's speed swings several-fold
    with its other users, so only figures of one session compare, and this says how fast that
    session's machine was."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        s = 0
        for i in range(1_000_000):
            s += i
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def series(
    scenario: Path,
    runs: int,
    t_last: float,
    prefix: list[str] | None,
    label: str,
    uplink: bool = True,
    base: Tree | None = None,
    versus: tuple[Path, float, bool] | None = None,
) -> dict:
    """*runs* runs of this tree (and, with *base*, each followed by one of that tree; with
    *versus* = (scenario, its last sample's t_sc_s, its uplink), by one of this tree on that
    scenario: side by side, under the same load); their medians, and *base*'s under
    ``"base"``, *versus*'s under ``"versus"``."""
    results, base_results, versus_results = [], [], []
    legs = [(scenario, t_last, uplink, None, results, "")]
    if base is not None:
        legs.append((scenario, t_last, uplink, base, base_results, f" [{base.label}]"))
    if versus is not None:
        legs.append((versus[0], versus[1], versus[2], None, versus_results, f" [{versus[0].name}]"))
    for i in range(runs):
        for scen, t_end, up, tree, rs, who in legs:
            with tempfile.TemporaryDirectory(prefix="bench-batch-run-") as tmp:
                r = one_run(scen, Path(tmp), t_end, prefix, uplink=up, tree=tree)
            r["load"] = psutil.getloadavg()[0]
            rs.append(r)
            print(
                f"  {label} run {i + 1}{who}: done in {r['t_done_s']:.2f} s, peak PSS {r['peak_pss_mib']:.0f} MiB, "
                f"exit {r['exit']}; bus log {r['bus_log_mb']:.1f} MB, batch files {r['batch_kb']:.0f} kB, "
                f"load {r['load']:.1f}",
                flush=True,
            )
    out = _summary(results, runs, label)
    if base is not None:
        out["base"] = _summary(base_results, runs, f"{label} [{base.label}]")
        print(
            f"{label}: {base.label} / this tree, median times: {out['base']['median_s'] / out['median_s']:.2f}; "
            f"load average during the runs: median {statistics.median(r['load'] for r in results + base_results):.1f}"
        )
    if versus is not None:
        out["versus"] = _summary(versus_results, runs, f"{label} [{versus[0].name}]")
        ratio = out["median_s"] / out["versus"]["median_s"]
        print(f"{label}: {scenario.name} / {versus[0].name}, median times: {ratio:.2f}")
    return out


def _summary(results: list, runs: int, label: str) -> dict:
    """Print a series' medians; {"median_s", "results"}."""
    names = sorted(
        {n for r in results for n in r["cpu_s"]},
        key=lambda n: -statistics.median(r["cpu_s"].get(n, 0.0) for r in results),
    )
    med = statistics.median(r["t_done_s"] for r in results)
    each = ", ".join(f"{r['t_done_s']:.2f}" for r in results)
    print(
        f"{label}: start -> estimates of the last sample, median of {runs}: {med:.2f} s "
        f"(runs {each}); peak summed PSS "
        f"{max(r['peak_pss_mib'] for r in results):.0f} MiB"
    )
    total = statistics.median(sum(r["cpu_s"].values()) for r in results)
    print(
        f"  cores kept busy on average (the tree's CPU / its time to done), median: {busy_cores(results):.2f} "
        f"of {usable_cpus_of(results)}"
    )
    print(f"  CPU seconds (median) and peak PSS (largest) per process, total {total:.1f} s:")
    for n in names:
        pss = max(r["peak_pss_task_mib"].get(n, 0.0) for r in results)
        print(f"    {n:22s} {statistics.median(r['cpu_s'].get(n, 0.0) for r in results):7.2f} s  {pss:6.1f} MiB")
    return {"median_s": med, "results": results}


def busy_cores(results: list) -> float:
    """The median over *results* of the tree's CPU seconds over its seconds to done: how many
    cores the tree kept busy on average (the rest of the run's cores idled)."""
    return statistics.median(sum(r["cpu_s"].values()) / r["t_done_s"] for r in results)


def usable_cpus_of(results: list) -> int:
    """The CPUs the runs of *results* could use (recorded per run)."""
    return max(r.get("cpus", 1) for r in results)


def profile_run(scenario: Path, t_last: float, uplink: bool, out_dir: Path, top: int = 12) -> None:
    """One run on all cores with every task under cProfile (``PYGNC_PROFILE_DIR``); the
    statistics stay in *out_dir* (``<task>.prof``); prints each estimator's top functions
    by own time.  Profiling slows the tasks: for where the time goes, not for figures."""
    import pstats

    from pygnc.tasks.base import PROFILE_DIR_ENV

    out_dir = out_dir.resolve()  # (the tasks run in flight/)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-batch-run-") as tmp:
        r = one_run(scenario, Path(tmp), t_last, None, uplink=uplink, env={PROFILE_DIR_ENV: str(out_dir)})
    print(f"profiled run: done in {r['t_done_s']:.2f} s; statistics in {out_dir}")
    for f in sorted(out_dir.glob("*.prof")):
        if f.stem not in set(TASK_OF.values()):
            continue
        print(f"--- {f.stem}: top {top} by own time")
        pstats.Stats(str(f)).sort_stats("tottime").print_stats(top)


def _looking(proc, name: str, unlooked: dict):
    """An ``interrupt`` for *proc* that never stops it and keeps in *unlooked[name]* the
    longest time [s] its handle() calls went without asking (handle() wrapped to mark each
    call's start and end)."""
    mark = [0.0]
    handle = proc.handle

    def look() -> None:
        now = time.perf_counter()
        unlooked[name] = max(unlooked[name], now - mark[0])
        mark[0] = now

    def timed_handle(msg_type, body):
        mark[0] = time.perf_counter()
        try:
            return handle(msg_type, body)
        finally:
            look()

    proc.handle = timed_handle
    return lambda: look() or False


def handler_times(scenario: Path) -> None:
    """Print each estimator's handle() call times over the batch, in process."""
    from ground.replay.in_process import PROCESSORS, feed, quiet_logger
    from pygnc.tasks.ingest import build_message_stream

    # Live mode: every sample processed as it comes (no batch of samples processed together).
    config = dataclasses.replace(config_for_home(scenario), attitude_batch_samples=0)
    stream = build_message_stream(Paths(scenario), config, quiet_logger()).messages
    names = list(PROCESSORS)
    times: dict[str, list] = {n: [] for n in names}
    # Outputs are passed on, not kept (a day's estimates kept would put the collector's
    # pauses into the calls' times).
    discard = SimpleNamespace(collect=lambda msg_type, body: None, timings_s={}, handle_errors={})
    processors = [cls(config) for cls in PROCESSORS.values()]
    # The longest stretch of a handle() call without a look at ``interrupt`` (where the flight
    # task answers pings and sees a stop): from the call's start, between looks, to its end.
    unlooked = {n: 0.0 for n in names}
    for n, proc in zip(names, processors):
        proc.interrupt = _looking(proc, n, unlooked)
    feed(processors, names, stream, discard, on_call=lambda name, msg_type, dt: times[name].append((dt, msg_type)))
    print("handle() per message, in process (live mode: one call per message):")
    for n in names:
        ms = sorted(dt * 1e3 for dt, _ in times[n])
        if not ms:
            continue
        slowest = max(times[n])[1]
        print(
            f"  {n:10s} {len(ms):6d} calls: p50 {ms[len(ms) // 2]:.3f} ms, p99 {ms[int(0.99 * (len(ms) - 1))]:.3f} ms, "
            f"max {ms[-1]:.1f} ms ({slowest}), total {sum(ms) / 1e3:.1f} s; "
            f"longest stretch without a look at the stop {unlooked[n] * 1e3:.1f} ms"
        )
        for t in sorted({m for _, m in times[n]}):
            mt = sorted(dt * 1e3 for dt, m in times[n] if m == t)
            if len(mt) >= 100:
                print(
                    f"      {t:18s} {len(mt):6d} calls: p50 {mt[len(mt) // 2]:.3f} ms, "
                    f"p99 {mt[int(0.99 * (len(mt) - 1))]:.3f} ms"
                )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", type=Path, default=DEFAULT_SETTINGS)
    ap.add_argument("--duration", default="24h")
    ap.add_argument("--seed", default=None, help="override the scenario's seed")
    ap.add_argument("--scenario", type=Path, help="an already simulated scenario directory (skip simulate)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-one-core", action="store_true", help="skip the taskset -c 0 series")
    ap.add_argument("--one-core-only", action="store_true", help="only the taskset -c 0 series")
    ap.add_argument(
        "--no-uplink",
        action="store_true",
        help=f"leave the scenario's {UPLINK} (the partner priors a ground team uplinks) out of the "
        "home: the defaults, no partner priors",
    )
    ap.add_argument(
        "--base",
        type=Path,
        metavar="TREE",
        help="another pygnc checkout (e.g. a worktree of an older commit) run side by side with this one",
    )
    ap.add_argument(
        "--versus",
        type=Path,
        metavar="DIR",
        help="another simulated scenario (e.g. the same day with partner fixes) run through this tree "
        "side by side with --scenario's",
    )
    ap.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="one run with every task under cProfile, statistics into DIR, estimators' top functions",
    )
    ap.add_argument(
        "--record",
        metavar="NAME",
        help="record the figures as bench/results/NAME.json (the performance page), e.g. batch_day_4sc",
    )
    ap.add_argument(
        "--handler-times",
        action="store_true",
        help="only the estimators' handle() call times in process (p50/p99/max), not the tree",
    )
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        scenario = args.scenario
        if scenario is None:
            scenario = tmp / "scenario"
            cmd = ["simulate", str(scenario), "--settings", str(args.settings), "--duration", args.duration, "--quiet"]
            if args.seed is not None:
                cmd += ["--seed", args.seed]
            t0 = time.perf_counter()
            if ground_main(cmd) != 0:
                return 1
            print(f"simulate {args.settings.name} {args.duration}: {time.perf_counter() - t0:.1f} s")
        ref_ms = reference_loop_ms()
        sense = decode_sense((scenario / "sense.bin").read_bytes())
        t_last = float(sense.sensors["t_sc_s"].max())
        n_rng = len(list((scenario / "range").glob("rng*.bin"))) if (scenario / "range").is_dir() else 0
        print(
            f"batch: {len(sense.sensors)} sensor samples, {len(sense.fixes)} GPS records, {n_rng} range files; "
            f"machine: {psutil.cpu_count()} cores, load {psutil.getloadavg()[0]:.2f}, "
            f"reference loop {ref_ms:.0f} ms"
        )
        if args.handler_times:
            handler_times(scenario)
            return 0
        uplink = not args.no_uplink and (scenario / UPLINK).is_file()
        print(f"uplinked configuration: {scenario / UPLINK if uplink else 'none (defaults, no partner priors)'}")
        if args.profile is not None:
            profile_run(scenario, t_last, uplink, args.profile)
            return 0
        base = tree_of(args.base) if args.base is not None else None
        versus = None
        if args.versus is not None:
            v_sense = decode_sense((args.versus / "sense.bin").read_bytes())
            v_uplink = not args.no_uplink and (args.versus / UPLINK).is_file()
            versus = (args.versus, float(v_sense.sensors["t_sc_s"].max()), v_uplink)
        two = (
            None if args.one_core_only else series(scenario, args.runs, t_last, None, "all cores", uplink, base, versus)
        )
        one = None
        if not args.no_one_core and shutil.which("taskset"):
            one = series(
                scenario, args.runs, t_last, ["taskset", "-c", "0"], "one core (taskset -c 0)", uplink, base, versus
            )
            if two is not None:
                print(f"one core / all cores: {one['median_s'] / two['median_s']:.2f}")
        if args.record:
            _record(args, scenario, two, one, sense, n_rng, base, ref_ms)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _key(name: str) -> str:
    """A figure key's part from a process name ("reaped (zygote)" -> "reaped_zygote")."""
    return "_".join("".join(c if c.isalnum() else " " for c in name).split())


def _mode(scenario: Path, uplink: bool = True) -> str:
    """How the scenario's spacecraft navigate to their partners: its uplinked range_gps_source
    (*uplink* False: the runs left the uplink out - the default, range-only)."""
    import tomllib

    up = scenario / UPLINK
    source = tomllib.loads(up.read_text()).get("range_gps_source", "own") if uplink and up.is_file() else "own"
    return "partner fixes relayed" if source == "peer" else "range-only"


def _tasks_by_cpu(rs: list) -> list[str]:
    """The processes of the runs *rs*, the most CPU first (the three estimators always)."""
    names = {"formation_estimator", "attitude_estimator", "orbit_estimator"} | {n for r in rs for n in r["cpu_s"]}
    return sorted(names, key=lambda n: -statistics.median(r["cpu_s"].get(n, 0.0) for r in rs))


def _record(
    args, scenario: Path, two, one, sense, n_rng: int, base: Tree | None = None, ref_ms: float | None = None
) -> None:
    """The series' medians, for docs/performance.md (with *base*: its figures beside them;
    *ref_ms*: :func:`reference_loop_ms` at the start, how fast the machine was)."""
    import tomllib

    settings = tomllib.loads((scenario / "scenario.toml").read_text())
    n_sc = len(settings.get("spacecraft", []))
    figs = []
    if ref_ms is not None:
        figs.append(
            figure(
                "reference_loop_ms",
                "this machine's speed at the start: a fixed pure-Python loop (10^6 additions), median of 5",
                ref_ms,
                "ms",
            )
        )
    for label, s in (("all cores", two), ("one core", one)):
        if s is None:
            continue
        rs = s["results"]
        key = "all" if label == "all cores" else "one"
        figs += [
            figure(
                f"{key}_done_s",
                f"{label}: start to estimates of the last sample, median of {len(rs)}",
                s["median_s"],
                "s",
            ),
            figure(
                f"{key}_peak_pss_mib",
                f"{label}: peak summed PSS of the tree",
                max(r["peak_pss_mib"] for r in rs),
                "MiB",
            ),
        ]
        for task in _tasks_by_cpu(rs):
            figs.append(
                figure(
                    f"{key}_cpu_{_key(task)}",
                    f"{label}: CPU of {task}, median",
                    statistics.median(r["cpu_s"].get(task, 0.0) for r in rs),
                    "s",
                )
            )
        total = statistics.median(sum(r["cpu_s"].values()) for r in rs)
        figs.append(figure(f"{key}_cpu_total", f"{label}: CPU of the whole tree, median", total, "s"))
        figs.append(
            figure(
                f"{key}_busy_cores",
                f"{label}: cores kept busy on average (the tree's CPU / its time to done), median; "
                f"of {usable_cpus_of(rs)}",
                busy_cores(rs),
                "",
            )
        )
        b = s.get("base")
        if b is not None:
            brs = b["results"]
            commit = base.label.split()[0]
            figs += [
                figure(
                    f"{key}_base_done_s",
                    f"{label}: the same on {commit}, run side by side, median of {len(brs)}",
                    b["median_s"],
                    "s",
                ),
                figure(
                    f"{key}_base_peak_pss_mib",
                    f"{label}: {commit}'s peak summed PSS",
                    max(r["peak_pss_mib"] for r in brs),
                    "MiB",
                ),
                *(
                    figure(
                        f"{key}_base_cpu_{_key(task)}",
                        f"{label}: {commit}'s CPU of {task}, median",
                        statistics.median(r["cpu_s"].get(task, 0.0) for r in brs),
                        "s",
                    )
                    for task in _tasks_by_cpu(brs)
                ),
                figure(
                    f"{key}_base_cpu_total",
                    f"{label}: {commit}'s CPU of the whole tree, median",
                    statistics.median(sum(r["cpu_s"].values()) for r in brs),
                    "s",
                ),
                figure(
                    f"{key}_base_busy_cores", f"{label}: {commit}'s cores kept busy on average", busy_cores(brs), ""
                ),
                figure(f"{key}_speedup", f"{label}: {commit}'s time / this tree's", b["median_s"] / s["median_s"], "x"),
                figure(
                    f"{key}_load",
                    f"{label}: load average during the runs, median",
                    statistics.median(r["load"] for r in rs + brs),
                    "",
                ),
            ]
        v = s.get("versus")
        if v is not None:
            vrs, name = v["results"], args.versus.name
            figs += [
                figure(
                    f"{key}_versus_done_s",
                    f"{label}: the same tree on {_mode(args.versus, not args.no_uplink)} ({name}), run side by side, "
                    f"median of {len(vrs)}",
                    v["median_s"],
                    "s",
                ),
                *(
                    figure(
                        f"{key}_versus_cpu_{_key(task)}",
                        f"{label}: ... its CPU of {task}, median",
                        statistics.median(r["cpu_s"].get(task, 0.0) for r in vrs),
                        "s",
                    )
                    for task in _tasks_by_cpu(vrs)[:3]
                ),
                figure(
                    f"{key}_versus_ratio",
                    f"{label}: this scenario's time / {name}'s",
                    s["median_s"] / v["median_s"],
                    "x",
                ),
            ]
        if key == "one":  # one core here vs one Pi Zero 2 W core: the rough 10-20x
            figs.append(
                figure(
                    "pi_estimate_min",
                    "estimate on a Raspberry Pi Zero 2 W (one core here x 10-20: a ratio for this machine at "
                    "full speed - the reference loop says how fast it was)",
                    f"{10 * s['median_s'] / 60:.1f}-{20 * s['median_s'] / 60:.1f}",
                    "min",
                )
            )
    record(
        args.record,
        f"A day's batch through the process tree: {n_sc} spacecraft "
        f"({n_sc - 1} partner{'s' if n_sc != 2 else ''}, {_mode(scenario, not args.no_uplink)}), "
        f"{len(sense.sensors)} sensor samples, {n_rng} range files",
        figs,
        notes="The host's way: main.py in a pseudo-terminal, the partners' uplinked priors in the home; "
        "'done' is the first status file with estimates of the batch's last sample from every "
        "estimator.  A Raspberry Pi Zero 2 W core is roughly 10-20x slower than one here."
        + (
            f"  Beside it, {base.label.split()[0]}'s tree on the same scenario, each of its runs right after "
            "one of this tree's (the machine is shared: only figures of one session compare)."
            if base is not None
            else ""
        )
        + (
            f"  Beside it, the same tree on {args.versus.name} ({_mode(args.versus, not args.no_uplink)}), each of "
            "its runs right after one on this scenario."
            if args.versus is not None
            else ""
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
