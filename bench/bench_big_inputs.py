"""Huge input files through the real process tree: what ingest costs while it reads them.

Starts ``flight/main.py`` (this repository's, or another checkout's with ``--main``) in a
pseudo-terminal on a copy of the sample scenario plus a huge file - by default a 2-GiB
``~/range/rng00001.bin`` (sparse: zeros, as a runaway writer or a corrupt copy leaves it;
``--random`` writes random bytes instead) and/or a huge ``sense.bin`` (``--sense-mib``: the
sample's records repeated, times advancing) - and for ``--seconds`` samples every 50 ms:

* ingest's resident memory (a restarted one's too; shared pages of the zygote's imports
  included): peak, MiB;
* the age of ingest's last health reply as the status file shows it (``taskK_age_ds``) and
  its state: the longest age seen, how often it was ``late``, its restarts;
* when the status first said ``batch_done``.

    .venv/bin/python bench/bench_big_inputs.py [--range-gib 2] [--sense-mib 0] [--seconds 40]
        [--random] [--sense-max-mib M] [--main /path/to/flight/main.py] [--runs 1] [--record]

Prints one line per run and the median of each figure over the runs.  ``--record`` writes the
medians to bench/results/big_inputs.json (docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from flight_harness import FLIGHT_MAIN, FlightRun, make_home  # noqa: E402
from results import figure, record  # noqa: E402

from pygnc.formats import status as S  # noqa: E402
from pygnc.formats.sense import RECORD_SIZE, SENSOR_SEGMENT_SIZE, decode_sense  # noqa: E402
from pygnc.tasks.table import TASKS_BY_NAME, process_name  # noqa: E402

SAMPLE = REPO / "data" / "sample_5min"
INGEST_ID = TASKS_BY_NAME["ingest"].task_id
INGEST_COMM = process_name(TASKS_BY_NAME["ingest"])
MIB = 1 << 20


def _huge_range(path: Path, size: int, random_bytes: bool) -> None:
    with open(path, "wb") as f:
        if not random_bytes:
            f.truncate(size)
            return
        chunk = 16 * MIB
        for _ in range(size // chunk):
            f.write(os.urandom(chunk))


def _huge_sense(path: Path, size: int) -> float:
    """The sample's records repeated to *size* bytes, each copy 300 s later; returns the
    last sample time."""
    one = (SAMPLE / "sense.bin").read_bytes()
    span = 300
    n = max(1, size // len(one))
    per = len(one) // RECORD_SIZE
    with open(path, "wb") as f:
        for k in range(n):
            b = bytearray(one)
            for r in range(per):
                for s in range(5):
                    off = r * RECORD_SIZE + s * SENSOR_SEGMENT_SIZE
                    t = int.from_bytes(b[off : off + 4], "big") + k * span
                    b[off : off + 4] = t.to_bytes(4, "big")
                off = r * RECORD_SIZE + 5 * SENSOR_SEGMENT_SIZE
                t = int.from_bytes(b[off : off + 4], "big")
                if t:
                    b[off : off + 4] = (t + k * span).to_bytes(4, "big")
            f.write(b)
    return float(decode_sense(one).sensors["t_sc_s"][-1]) + (n - 1) * span


def _ingest_slot(st: dict) -> int | None:
    return next((k for k in range(S.MAX_TASKS) if st[f"task{k}_id"] == INGEST_ID), None)


def one_run(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_big_") as tmp:
        home = make_home(Path(tmp), SAMPLE)
        t_end_sc = float(decode_sense((SAMPLE / "sense.bin").read_bytes()).sensors["t_sc_s"][-1])
        if args.range_gib > 0:
            _huge_range(home / "range" / "rng00001.bin", int(args.range_gib * 1024 * MIB), args.random)
        if args.sense_mib > 0:
            t_end_sc = _huge_sense(home / "sense.bin", int(args.sense_mib * MIB))
        env = {}
        if args.sense_max_mib:
            cfg = Path(tmp) / "pygnc.toml"
            cfg.write_text(f"sense_file_max_bytes = {int(args.sense_max_mib * MIB)}\n")
            env["PYGNC_CONFIG"] = str(cfg)
        peak_rss, max_age, late, restarts, t_done = 0, 0.0, 0, 0, None
        with FlightRun(home, spacecraft_time_s=t_end_sc + 1.0, main=Path(args.main), env=env) as run:
            t0 = time.monotonic()
            while time.monotonic() - t0 < args.seconds:
                rss = 0
                for p in run.tree():
                    try:
                        if p.name() == INGEST_COMM or "ingest" in p.cmdline():  # not imu_ingest
                            rss += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak_rss = max(peak_rss, rss)
                st = run.status()
                k = _ingest_slot(st) if st else None
                if k is not None:
                    max_age = max(max_age, st[f"task{k}_age_ds"] / 10.0)
                    late += S.TASK_STATES[st[f"task{k}_state"]] == "late"
                    restarts = max(restarts, st[f"task{k}_restarts"])
                    if t_done is None and st["flags"] & S.FLAG_BATCH_DONE:
                        t_done = time.monotonic() - t0
                time.sleep(0.05)
            run.ctrl_c()
            rc = run.wait_exit(30)
        return {
            "peak_rss_mib": peak_rss / MIB,
            "max_age_s": max_age,
            "late_samples": late,
            "restarts": restarts,
            "batch_done_s": t_done,
            "exit": rc,
        }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--range-gib", type=float, default=2.0, help="size of ~/range/rng00001.bin, GiB (0: none)")
    p.add_argument("--sense-mib", type=float, default=0.0, help="size of sense.bin, MiB (0: the sample's)")
    p.add_argument(
        "--sense-max-mib",
        type=float,
        default=0.0,
        help="set sense_file_max_bytes to this, MiB (0: the default; a checkout without the key "
        "refuses the configuration)",
    )
    p.add_argument("--random", action="store_true", help="random bytes in the range file instead of zeros")
    p.add_argument("--seconds", type=float, default=40.0, help="how long to watch each run, s")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--record", action="store_true", help="record the figures in bench/results (the performance page)")
    p.add_argument(
        "--main", type=lambda s: str(Path(s).resolve()), default=str(FLIGHT_MAIN), help="the flight/main.py to run"
    )
    args = p.parse_args()
    print(
        f"main {args.main}; range file {args.range_gib:g} GiB{' random' if args.random else ' sparse'}; "
        f"sense.bin {args.sense_mib:g} MiB; {args.seconds:g} s per run"
    )
    rows = []
    for i in range(args.runs):
        r = one_run(args)
        rows.append(r)
        done = "never" if r["batch_done_s"] is None else f"{r['batch_done_s']:.1f} s"
        print(
            f"run {i + 1}: ingest peak RSS {r['peak_rss_mib']:.0f} MiB, longest health-reply age "
            f"{r['max_age_s']:.1f} s, late in {r['late_samples']} samples, restarts {r['restarts']}, "
            f"batch_done {done}, exit {r['exit']}"
        )
    if args.runs > 1:
        med = {k: statistics.median(r[k] for r in rows) for k in ("peak_rss_mib", "max_age_s", "restarts")}
        print(
            f"median: peak RSS {med['peak_rss_mib']:.0f} MiB, longest age {med['max_age_s']:.1f} s, "
            f"restarts {med['restarts']:g}"
        )
    if args.record:
        done = [r["batch_done_s"] for r in rows if r["batch_done_s"] is not None]
        figs = [
            figure(
                "ingest_peak_rss_mib",
                "ingest's peak resident memory, median of runs",
                statistics.median(r["peak_rss_mib"] for r in rows),
                "MiB",
            ),
            figure(
                "ingest_max_age_s",
                "ingest's longest health-reply age, median of runs",
                statistics.median(r["max_age_s"] for r in rows),
                "s",
            ),
            figure("ingest_restarts", "ingest's restarts, most in a run", max(r["restarts"] for r in rows)),
            figure("batch_done", "runs whose batch was done", f"{len(done)} of {len(rows)}"),
        ]
        if done:
            figs.append(figure("batch_done_s", "start -> batch done, median", statistics.median(done), "s"))
        what = (
            " + ".join(
                x
                for x in (
                    f"a {args.range_gib:g}-GiB {'random' if args.random else 'sparse'} range file"
                    if args.range_gib > 0
                    else "",
                    f"a {args.sense_mib:g}-MiB sense.bin" if args.sense_mib > 0 else "",
                )
                if x
            )
            or "no huge file"
        )
        record(
            "big_inputs",
            f"Huge input files through the process tree: the sample batch with {what}, "
            f"{args.runs} run(s) of {args.seconds:g} s",
            figs,
            notes="Ingest's resident memory and the age of its last health reply in the status file, sampled "
            "every 50 ms while it reads.",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
