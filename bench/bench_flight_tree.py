"""Process-tree figures: start -> first status file, Ctrl-C -> last process gone, memory.

Runs ``flight/main.py`` in a pseudo-terminal on the bundled sample scenario, exactly as the
integration tests do, N times (default 20), and prints median and worst of:

* time from ``main.py`` starting to the first complete status file;
* time from Ctrl-C (0x03 typed into the terminal) to the last process of the tree gone;
* summed PSS (proportional set size) of the whole tree once the batch is processed.

    .venv/bin/python bench/bench_flight_tree.py [--runs 20] [--record]

``--record`` writes the summary figures to bench/results/flight_tree.json (docs/performance.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from flight_harness import FlightRun, gone, make_home  # noqa: E402
from results import figure, record  # noqa: E402

from pygnc.formats import status as S  # noqa: E402
from pygnc.formats.sense import decode_sense  # noqa: E402

SAMPLE = REPO / "data" / "sample_5min"


def one_run(tmp: Path, env: dict | None = None) -> tuple[float, float, float, int]:
    home = make_home(tmp, SAMPLE)
    t_sc = float(decode_sense((SAMPLE / "sense.bin").read_bytes()).sensors["t_sc_s"][-1])
    run = FlightRun(home, spacecraft_time_s=t_sc, env=env)
    try:
        while run.status() is None:
            time.sleep(0.001)
        t_first = time.monotonic() - run.t_start
        run.wait_status(lambda s: s["flags"] & S.FLAG_BATCH_DONE and s["flags"] & S.FLAG_ORBIT_VALID)
        time.sleep(0.5)
        procs = run.tree()
        pss = 0
        for p in procs:
            try:
                pss += p.memory_full_info().pss
            except psutil.Error:
                pass
        pids = [p.pid for p in procs]
        t0 = run.ctrl_c()
        while not gone(pids):
            time.sleep(0.001)
        t_stop = time.monotonic() - t0
        rc = run.wait_exit(10)
        assert rc == 0, run.text
        return t_first, t_stop, pss / 2**20, len(pids)
    finally:
        run.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--record", action="store_true", help="record the figures in bench/results (the performance page)")
    args = ap.parse_args()
    firsts, stops, psss = [], [], []
    n_procs = 0
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            f, s, m, n_procs = one_run(Path(tmp))
        firsts.append(f)
        stops.append(s)
        psss.append(m)
        print(
            f"run {i + 1:2d}: first status {f * 1000:6.1f} ms, shutdown {s * 1000:6.1f} ms, "
            f"PSS {m:6.1f} MiB ({n_procs} processes)",
            flush=True,
        )
    print()
    print(f"processes in the tree        : {n_procs}")
    print(
        f"start -> first status file   : median {statistics.median(firsts) * 1000:.0f} ms, "
        f"worst {max(firsts) * 1000:.0f} ms  (target < 1000 ms)"
    )
    print(
        f"Ctrl-C -> last process gone  : median {statistics.median(stops) * 1000:.0f} ms, "
        f"worst {max(stops) * 1000:.0f} ms of {args.runs}  (target worst < 1000 ms; host allows 10 s)"
    )
    print(
        f"summed PSS of the tree       : median {statistics.median(psss):.0f} MiB, "
        f"worst {max(psss):.0f} MiB  (target < 250 MiB)"
    )
    if args.record:
        record(
            "flight_tree",
            f"The process tree on the sample batch: {args.runs} runs",
            [
                figure("processes", "processes in the tree", n_procs),
                figure(
                    "first_status_median_ms",
                    "start -> first status file: median",
                    statistics.median(firsts) * 1000,
                    "ms",
                ),
                figure("first_status_worst_ms", "... worst", max(firsts) * 1000, "ms"),
                figure("stop_median_ms", "Ctrl-C -> last process gone: median", statistics.median(stops) * 1000, "ms"),
                figure("stop_worst_ms", "... worst", max(stops) * 1000, "ms"),
                figure(
                    "pss_median_mib",
                    "summed PSS of the tree once the batch is processed: median",
                    statistics.median(psss),
                    "MiB",
                ),
                figure("pss_worst_mib", "... worst", max(psss), "MiB"),
            ],
            notes="flight/main.py in a pseudo-terminal on data/sample_5min, as the integration tests start it.",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
