"""Random-instant Ctrl-C trial: the host's Ctrl-C at any moment of a run, N times.

Each run starts ``flight/main.py`` in a fresh pseudo-terminal (as the host does, through
``tests/flight_harness.py``) on a copy of a scenario, waits a time drawn uniformly in
[0, ``--window``) seconds (default 4 s) after the start, types Ctrl-C (byte 0x03) into the
terminal, and measures:

* stop time: Ctrl-C -> the last process of the run's session gone (every process whose
  session id is main.py's, polled every 5 ms, so orphans count too);
* main.py's exit status;
* the final ``pygnc_status.bin``: present, valid (CRC) and carrying ``stopping``; the info
  file ends in ``STOP``; no temporary file left next to them;
* no "Traceback" on the terminal, and no task killed by the supervisor ("killing it",
  "did not die" in supervisor.log).

The phase the Ctrl-C fell in is read from the status file just before it: ``start`` (no
status yet), ``batch`` (status, batch not yet done), ``steady`` (batch done) - and
``interp`` when the evidence shows the Ctrl-C came while the Python interpreter itself was
still starting, before the first line of main.py (killed by SIGINT or SIGHUP with no log
directory, or Python's own KeyboardInterrupt traceback - which Python's site module prints
and swallows when it comes while a ``.pth`` file's line runs, and then starts main.py as if
nothing had happened): no pygnc code has run then, so nothing in pygnc can handle it.
Those runs are listed and counted apart, with the interpreter's start-up time measured
here (``python script.py`` to its first statement).

The default scenario is a 3-h two-spacecraft formation (simulated once into a temporary
directory, ~20 s), so the 4-s window covers start-up, the batch and the steady state.
``--second S`` types a second Ctrl-C S seconds after the first (an impatient host): the
exit status must still report the stop.  ``--hangup`` closes the host's side of the
terminal instead of typing Ctrl-C (the kernel hangs it up: SIGHUP).  ``--load N`` runs N
busy processes (a pure-Python loop each, at the bench's own niceness) for the whole bench:
a machine loaded with N runnable processes besides pygnc (the load average then reads
about N + pygnc's); without it the machine is as quiet as it is.

    .venv/bin/python bench/bench_ctrl_c.py [--runs 100] [--window 4] [--seed 1] [--scenario DIR]
                                           [--second 0.05] [--hangup] [--load N] [--record]

Prints one line per run - for a run over the target, when each process logged its last
line after the Ctrl-C - and a summary: median, p95 and worst stop time (overall and by
phase), exit codes, final-status checks, and the load average seen during the runs.  Exit
status 1 if any run failed a check or took 0.3 s or more to stop (the target).
``--record`` writes the summary figures to bench/results/ctrl_c.json (``ctrl_c_second``
with ``--second``, ``hangup`` with ``--hangup``, and ``_loadN`` after either with
``--load N``; docs/performance.md).
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from flight_harness import FlightRun, make_home  # noqa: E402
from results import figure, record  # noqa: E402

from pygnc.formats import status as S  # noqa: E402
from pygnc.formats.sense import decode_sense  # noqa: E402

#: Stop-time target, s: every Ctrl-C stops the tree in under 0.3 s, in every phase.
TARGET_S = 0.3


def session_pids(sid: int, names: dict | None = None) -> set[int]:
    """Every live (non-zombie) process of session *sid* (their names into *names*)."""
    out = set()
    for pid in psutil.pids():
        try:
            if os.getsid(pid) == sid:
                p = psutil.Process(pid)
                if p.status() != psutil.STATUS_ZOMBIE:
                    out.add(pid)
                    if names is not None and pid not in names:
                        names[pid] = p.name()
        except (OSError, psutil.Error):
            pass
    return out


def interpreter_startup_s(n: int = 10) -> list[float]:
    """Time from starting ``python script.py`` to the script's first statement, s (n runs)."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "first_line.py"
        script.write_text("import time\nprint(time.monotonic())\n")
        for _ in range(n):
            t0 = time.monotonic()
            p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
            out.append(float(p.stdout) - t0)
    return out


def start_load(n: int) -> list[subprocess.Popen]:
    """*n* busy processes (each a pure-Python loop that never sleeps)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop_load(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait(timeout=10)


def make_scenario(dest: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ground",
            "simulate",
            str(dest),
            "--settings",
            str(REPO / "data" / "scenarios" / "formation_3h.toml"),
            "--quiet",
        ],
        check=True,
        cwd=REPO,
        timeout=600,
    )
    return dest


def last_log_lines(log_dir: Path, t0_wall: float) -> dict[str, float]:
    """Per log file of the run: when its last line was logged, s after *t0_wall* (the
    logs' wall-clock stamps have millisecond resolution)."""
    out = {}
    for f in sorted(log_dir.glob("*.log")):
        lines = f.read_text(errors="replace").splitlines()
        for line in reversed(lines):
            try:
                t = datetime.datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
            except ValueError:
                continue
            out[f.stem] = t - t0_wall
            break
    return out


def one_run(
    tmp: Path,
    scenario: Path,
    t_sc: float,
    delay_s: float,
    second_s: float | None = None,
    keep_failed: Path | None = None,
    hangup: bool = False,
) -> dict:
    home = make_home(tmp, scenario)
    run = FlightRun(home, timeout_min=5.0, spacecraft_time_s=t_sc)
    res = {"delay_s": delay_s}
    try:
        time.sleep(max(0.0, run.t_start + delay_s - time.monotonic()))
        st = run.status()
        res["phase"] = "start" if st is None else ("steady" if st["flags"] & S.FLAG_BATCH_DONE else "batch")
        if hangup:
            t0 = run.hang_up()
        else:
            t0 = run.ctrl_c()
        t0_wall = time.time() - (time.monotonic() - t0)
        res["load_average"] = os.getloadavg()[0]
        sid = run.proc.pid  # the session leader (start_new_session)
        t_end = t0 + 15.0
        second_at = None if second_s is None else t0 + second_s
        names: dict[int, str] = {}
        gone_at: dict[int, float] = {}
        alive: set[int] = set()
        while time.monotonic() < t_end:
            if second_at is not None and time.monotonic() >= second_at:
                run.ctrl_c()
                second_at = None
            now_alive = session_pids(sid, names)
            for pid in alive - now_alive:
                gone_at[pid] = time.monotonic() - t0
            alive = now_alive
            if run.proc.poll() is not None and not alive:
                break
            time.sleep(0.005 if second_at is None else min(0.005, max(0.0, second_at - time.monotonic())))
        res["stop_s"] = time.monotonic() - t0
        try:
            res["rc"] = run.wait_exit(1.0)
        except subprocess.TimeoutExpired:
            res["rc"] = None
        left = session_pids(sid)
        res["left"] = len(left)
        checks = {}
        final = run.status()
        checks["status_stopping"] = final is not None and bool(final["flags"] & S.FLAG_STOPPING)
        info = home / "pygnc_info.txt"
        checks["info_stop"] = info.is_file() and b"STOP" in info.read_bytes()
        checks["no_temp"] = not list(home.glob(".*.tmp*"))
        time.sleep(0.05)  # the reader thread collects the last output
        checks["no_traceback"] = "Traceback" not in run.text
        sup = ""
        logs = sorted((home / "pygnc_logs").glob("run_*"))
        if logs and (logs[-1] / "supervisor.log").is_file():
            sup = (logs[-1] / "supervisor.log").read_text(errors="replace")
        res["last_lines"] = last_log_lines(logs[-1], t0_wall) if logs else {}
        res["gone"] = sorted((t, names.get(pid, str(pid))) for pid, t in gone_at.items())
        checks["none_killed"] = "killing it" not in sup and "did not die" not in sup
        res["checks"] = checks
        res["text"] = run.text[-2000:]
        if hangup:  # the terminal is gone: no output to look at after the hang-up
            checks["no_traceback"] = "Traceback" not in (logs[-1] / "supervisor.log").read_text() if logs else True
        failing = res["stop_s"] >= TARGET_S or res["rc"] != 0 or res["left"] or not all(checks.values())
        if keep_failed is not None and failing and logs:
            dest = keep_failed / f"delay_{delay_s:.3f}"
            shutil.copytree(logs[-1], dest, dirs_exist_ok=True)
            (dest / "terminal.txt").write_text(run.text)
            for name in ("pygnc_status.bin", "pygnc_info.txt"):  # the final ones, as the host found them
                if (home / name).is_file():
                    shutil.copy(home / name, dest / name)
            res["kept"] = dest
        no_logs = not (home / "pygnc_logs").exists()
        # Before main.py's first line: Python's own start-up.  (A KeyboardInterrupt raised
        # while Python's site module runs a .pth file's line is printed and swallowed: the
        # interpreter goes on into main.py, which never knew of the Ctrl-C.)
        if (no_logs and res["rc"] in (-signal.SIGINT, -signal.SIGHUP)) or "KeyboardInterrupt" in run.text:
            res["phase"] = "interp"
    finally:
        run.close()
    return res


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--window", type=float, default=4.0, help="Ctrl-C uniformly in [0, WINDOW) s after start")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scenario", type=Path, help="scenario directory (default: simulate the 3-h formation)")
    ap.add_argument("--second", type=float, default=None, help="type a second Ctrl-C this many seconds after the first")
    ap.add_argument("--hangup", action="store_true", help="hang the terminal up instead of typing Ctrl-C")
    ap.add_argument("--load", type=int, default=0, help="run this many busy processes during the runs")
    ap.add_argument("--verbose", action="store_true", help="print the terminal output of failed runs")
    ap.add_argument(
        "--keep-failed",
        type=Path,
        help="copy the logs and final status files of runs over the target or failing a check here",
    )
    ap.add_argument("--record", action="store_true", help="record the figures in bench/results (the performance page)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    startup = interpreter_startup_s()
    what = "hang-up" if args.hangup else "Ctrl-C"
    with tempfile.TemporaryDirectory(prefix="bench_ctrl_c_") as tmp:
        scenario = args.scenario or make_scenario(Path(tmp) / "scenario")
        t_sc = float(decode_sense((scenario / "sense.bin").read_bytes()).sensors["t_sc_s"][-1]) + 1.0
        results = []
        load = start_load(args.load)
        try:
            for i in range(args.runs):
                delay = rng.uniform(0.0, args.window)
                with tempfile.TemporaryDirectory(dir=tmp) as run_tmp:
                    r = one_run(Path(run_tmp), scenario, t_sc, delay, args.second, args.keep_failed, args.hangup)
                results.append(r)
                _print_run(i, r, delay, args)
        finally:
            stop_load(load)
    stops = [r["stop_s"] for r in results]
    loads = [r["load_average"] for r in results]
    print()
    print(
        f"{len(results)} runs, {what} uniformly in [0, {args.window:g}) s after start, seed {args.seed}"
        + (f", a second Ctrl-C {args.second * 1000:.0f} ms after the first" if args.second is not None else "")
        + f"; {args.load} busy processes, load average {min(loads):.1f}-{max(loads):.1f} at the {what}s"
    )
    return _summary(results, stops, loads, startup, args, what)


def _print_run(i: int, r: dict, delay: float, args) -> None:
    what = "hang-up" if args.hangup else "Ctrl-C"
    bad = [k for k, ok in r["checks"].items() if not ok]
    print(
        f"run {i + 1:3d}: {what} at {delay:5.3f} s ({r['phase']:6s}) stop {r['stop_s'] * 1000:7.1f} ms "
        f"exit {r['rc']}" + (f"  FAILED {bad}" if bad else "") + (f"  {r['left']} left" if r["left"] else ""),
        flush=True,
    )
    if r["stop_s"] >= TARGET_S and r["last_lines"]:
        print(
            f"    last log line after the {what}: "
            + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in sorted(r["last_lines"].items(), key=lambda kv: kv[1]))
        )
        print(f"    processes gone after the {what}: " + ", ".join(f"{n} {t * 1000:.0f} ms" for t, n in r["gone"]))
    if (bad or r["rc"] != 0) and args.verbose:
        print("    " + r["text"].replace("\n", "\n    "))


def _summary(results: list[dict], stops: list[float], loads: list[float], startup: list[float], args, what) -> int:
    print(
        f"stop time ({what} -> last process gone): median {statistics.median(stops) * 1000:.0f} ms, "
        f"p95 {pct(stops, 0.95) * 1000:.0f} ms, worst {max(stops) * 1000:.0f} ms; "
        f"{sum(s >= TARGET_S for s in stops)} at or over {TARGET_S:g} s"
    )
    for phase in ("interp", "start", "batch", "steady"):
        xs = [r["stop_s"] for r in results if r["phase"] == phase]
        if xs:
            print(
                f"  {phase:6s}: {len(xs):3d} runs, median {statistics.median(xs) * 1000:.0f} ms, "
                f"p95 {pct(xs, 0.95) * 1000:.0f} ms, worst {max(xs) * 1000:.0f} ms"
            )
    codes: dict = {}
    for r in results:
        codes[r["rc"]] = codes.get(r["rc"], 0) + 1
    print("exit codes: " + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items(), key=lambda kv: str(kv[0]))))
    names = list(results[0]["checks"])
    print(
        "final-status checks (runs passing): "
        + ", ".join(f"{n} {sum(r['checks'][n] for r in results)}/{len(results)}" for n in names)
    )
    print(
        f"processes left after 15 s: {sum(r['left'] for r in results if r['phase'] != 'interp')} "
        f"(and {sum(r['left'] for r in results if r['phase'] == 'interp')} of runs whose {what} Python's start-up took)"
    )
    interp = [r for r in results if r["phase"] == "interp"]
    at = ", ".join(f"{r['delay_s'] * 1000:.0f} ms" for r in interp) or "-"
    print(
        f"interpreter start-up (python script.py -> first statement): median "
        f"{statistics.median(startup) * 1000:.0f} ms, worst {max(startup) * 1000:.0f} ms of {len(startup)}; "
        f"{len(interp)} {what}s fell in it (at {at}: "
        "handled by Python itself - an exit, or a KeyboardInterrupt swallowed by its site module - "
        "before any pygnc code)"
    )
    failed = [
        r
        for r in results
        if r["phase"] != "interp" and (r["rc"] != 0 or not all(r["checks"].values()) or r["stop_s"] >= TARGET_S)
    ]
    print(f"runs after main.py's first line failing a check or the {TARGET_S:g}-s target: {len(failed)}")
    if args.record:
        _record(results, stops, loads, startup, interp, failed, codes, args, what)
    return 1 if failed else 0


def _record(results, stops, loads, startup, interp, failed, codes, args, what) -> None:
    n = len(results)
    loaded = f" with {args.load} busy processes (load average {statistics.median(loads):.1f})" if args.load else ""
    figs = [
        figure("runs", f"{what}s at random instants in the first {args.window:g} s{loaded}", n),
        figure(
            "stop_median_ms", f"{what} -> last process of the tree gone: median", statistics.median(stops) * 1000, "ms"
        ),
        figure("stop_p95_ms", "... 95th percentile", pct(stops, 0.95) * 1000, "ms"),
        figure("stop_worst_ms", "... worst", max(stops) * 1000, "ms"),
        figure(
            "over_target", f"runs at or over the {TARGET_S:g}-s target", f"{sum(s >= TARGET_S for s in stops)} of {n}"
        ),
    ]
    for phase in ("start", "batch", "steady"):
        xs = [r["stop_s"] for r in results if r["phase"] == phase]
        if xs:
            figs.append(
                figure(
                    f"stop_worst_{phase}_ms",
                    f"worst stop with the {what} in phase '{phase}' ({len(xs)} runs)",
                    max(xs) * 1000,
                    "ms",
                )
            )
    figs += [
        figure("exit_zero", "runs where main.py exited 0", f"{codes.get(0, 0)} of {n}"),
        figure(
            "checks_passed",
            "runs whose final status says stopping, info file ends in STOP, no temporary "
            "file, no traceback, no task killed",
            f"{sum(all(r['checks'].values()) for r in results)} of {n}",
        ),
        figure(
            "processes_left",
            "processes left 15 s after the stop, runs after main.py's first line",
            sum(r["left"] for r in results if r["phase"] != "interp"),
        ),
        figure(
            "interpreter_ctrl_c",
            f"{what}s that fell in Python's own start-up (before main.py's first line)",
            len(interp),
        ),
        figure(
            "interpreter_startup_ms",
            "Python's start-up (python script.py -> first statement), median",
            statistics.median(startup) * 1000,
            "ms",
        ),
        figure(
            "failed",
            f"runs after main.py's first line failing a check or the {TARGET_S:g}-s target",
            f"{len(failed)} of {n - len(interp)}",
        ),
    ]
    if args.load:
        figs.append(figure("load_average", "load average at the stops: median", statistics.median(loads)))
    second = "" if args.second is None else f", a second Ctrl-C {args.second * 1000:.0f} ms after the first"
    on = "the 3-h two-spacecraft formation" if args.scenario is None else f"scenario {args.scenario.name}"
    name = ("hangup" if args.hangup else "ctrl_c" if args.second is None else "ctrl_c_second") + (
        f"_load{args.load}" if args.load else ""
    )
    record(
        name,
        f"{what} at a random instant: {n} runs on {on}{second}{loaded}",
        figs,
        notes=(
            "flight/main.py in a fresh pseudo-terminal as the host starts it; "
            + (
                "the terminal hung up (its host side closed)"
                if args.hangup
                else "Ctrl-C (0x03) typed into the terminal"
            )
            + f" at a uniformly random instant in the first {args.window:g} s (start-up, the batch, the "
            "steady state); stop time until the last process of main.py's session is gone"
            + (
                f"; {args.load} busy processes (pure-Python loops, the bench's niceness) ran meanwhile on "
                f"{os.cpu_count()} CPUs."
                if args.load
                else "; nothing else running on purpose (a quiet machine)."
            )
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
