"""A backlog of range files: what ingest costs while it reads thousands of them.

The host may leave ~/range/ uncleared for weeks: a backlog of 20 000 range files (the
sample's 1.45-kB file, hard-linked: 29 MB) beside the sample's sense.bin.  Measured:

* in this process, ingest's reader (``pygnc.tasks.ingest.iter_message_stream``): the time to
  build the stream, and the longest stretch between two of its yields - the loop answers
  health pings only there;
* through the real process tree (``flight/main.py`` in a pseudo-terminal, this repository's
  or another checkout's with ``--main``), sampling the status every 50 ms: the start ->
  ``batch_done`` time, ingest's longest health-reply age and its restarts, and whether the
  orbit (from sense.bin) became valid.

    .venv/bin/python bench/bench_range_backlog.py [--files 20000] [--seconds 240] [--runs 1]
        [--main /path/to/flight/main.py] [--record]

``--record`` writes the medians to bench/results/range_backlog.json (docs/performance.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from flight_harness import FLIGHT_MAIN, FlightRun, make_home  # noqa: E402
from results import figure, record  # noqa: E402

from pygnc.config import Config, Paths  # noqa: E402
from pygnc.formats import status as S  # noqa: E402
from pygnc.formats.sense import decode_sense  # noqa: E402
from pygnc.tasks.table import TASKS_BY_NAME  # noqa: E402

SAMPLE = REPO / "data" / "sample"
INGEST_ID = TASKS_BY_NAME["ingest"].task_id


def backlog_home(tmp: Path, n_files: int) -> Path:
    """A home with the sample's sense.bin and *n_files* copies of its range file."""
    home = make_home(tmp, SAMPLE)
    one = home / "range" / "rng00000.bin"
    for k in range(1, n_files):
        os.link(one, home / "range" / f"rng{k:05d}.bin")
    return home


def in_process(home: Path) -> dict:
    from pygnc.tasks.ingest import iter_message_stream

    gen = iter_message_stream(Paths(home), Config(), logging.getLogger("bench"), lazy=True)
    t0 = last = time.perf_counter()
    longest, yields = 0.0, 0
    try:
        while True:
            next(gen)
            now = time.perf_counter()
            longest, last, yields = max(longest, now - last), now, yields + 1
    except StopIteration as done:
        out = done.value
    now = time.perf_counter()
    return {
        "read_s": now - t0,
        "longest_step_s": max(longest, now - last),
        "yields": yields,
        "messages": len(out.messages),
    }


def tree(home: Path, main: str, seconds: float) -> dict:
    t_sc = float(decode_sense((SAMPLE / "sense.bin").read_bytes()).sensors["t_sc_s"][-1]) + 1.0
    max_age, restarts, t_done, orbit_valid = 0.0, 0, None, False
    with FlightRun(home, spacecraft_time_s=t_sc, main=Path(main)) as run:
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            st = run.status()
            k = next((k for k in range(S.MAX_TASKS) if st and st[f"task{k}_id"] == INGEST_ID), None)
            if k is not None:
                max_age = max(max_age, st[f"task{k}_age_ds"] / 10.0)
                restarts = max(restarts, st[f"task{k}_restarts"])
                if t_done is None and st["flags"] & S.FLAG_BATCH_DONE:
                    t_done = time.monotonic() - t0
                orbit_valid = orbit_valid or bool(st["flags"] & S.FLAG_ORBIT_VALID)
                if t_done is not None and orbit_valid:
                    break
                if S.TASK_STATES[st[f"task{k}_state"]] == "failed":
                    break
            time.sleep(0.05)
        run.ctrl_c()
        rc = run.wait_exit(30)
    return {"batch_done_s": t_done, "max_age_s": max_age, "restarts": restarts, "orbit_valid": orbit_valid, "exit": rc}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=20_000, help="range files in ~/range/ (copies of the sample's)")
    p.add_argument("--seconds", type=float, default=240.0, help="longest wait for batch_done per run, s")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--record", action="store_true", help="record the figures in bench/results (the performance page)")
    p.add_argument(
        "--main", type=lambda s: str(Path(s).resolve()), default=str(FLIGHT_MAIN), help="the flight/main.py to run"
    )
    args = p.parse_args()
    print(f"main {args.main}; {args.files} range files of {(SAMPLE / 'range' / 'rng00000.bin').stat().st_size} bytes")
    rows = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench_backlog_") as tmp:
            home = backlog_home(Path(tmp), args.files)
            r = {**in_process(home), **tree(home, args.main, args.seconds)}
        rows.append(r)
        done = "never" if r["batch_done_s"] is None else f"{r['batch_done_s']:.1f} s"
        print(
            f"run {i + 1}: in process {r['read_s']:.1f} s to read ({r['messages']} messages), longest step "
            f"{r['longest_step_s']:.2f} s; tree: batch_done {done}, ingest's longest health-reply age "
            f"{r['max_age_s']:.1f} s, restarts {r['restarts']}, orbit valid {r['orbit_valid']}, exit {r['exit']}"
        )
    if args.record:
        med = lambda k: statistics.median(r[k] for r in rows)  # noqa: E731
        done = [r["batch_done_s"] for r in rows if r["batch_done_s"] is not None]
        figs = [
            figure("read_s", "ingest's reader, in process: the stream built, median", med("read_s"), "s"),
            figure("longest_step_s", "... its longest stretch without answering, median", med("longest_step_s"), "s"),
            figure("ingest_max_age_s", "tree: ingest's longest health-reply age, median", med("max_age_s"), "s"),
            figure("ingest_restarts", "tree: ingest's restarts, most in a run", max(r["restarts"] for r in rows)),
            figure(
                "orbit_valid",
                "tree: runs whose orbit (sense.bin) became valid",
                f"{sum(r['orbit_valid'] for r in rows)} of {len(rows)}",
            ),
        ]
        if done:
            figs.append(figure("batch_done_s", "tree: start -> batch done, median", statistics.median(done), "s"))
        record(
            "range_backlog",
            f"a backlog of {args.files} range files (29 MB at 20 000) beside the sample's sense.bin, "
            f"{len(rows)} run(s) through the process tree",
            figs,
            notes="Ingest reads the files in pieces, merges them in slices (linear in the file count) and "
            "judges their time outliers in slices, answering health pings between them; before issue 48 the "
            "merge was quadratic and did not answer (22.7 s at 20 000 files): ingest was killed three times "
            "and the sense data never used.",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
