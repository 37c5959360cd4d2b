"""Batch-writer figures: bytes of a 24-h batch at the default cadence, write cost per record,
and Ctrl-C -> last process gone with and without the writer in the tree.

    .venv/bin/python bench/bench_batch_writer.py [--duration 24h] [--settings TOML]
                                                 [--session 10m] [--runs 20] [--no-tree] [--record]

1. ``python -m ground simulate`` of ``data/scenarios/formation_24h.toml`` (three spacecraft,
   the usual faults) into a temporary directory, and the in-process replay of spacecraft 0
   collecting every message in the order the writer would receive it: the measurement
   stream and every estimator output (exactly the bodies the flight tasks publish).
2. The writer's core (:class:`~pygnc.tasks.batch_writer.BatchRecorder` on a real
   :class:`~pygnc.batch_store.BatchStore` in a temporary directory) fed that stream at the
   default configuration, then a session of ``--session`` after the batch (health at 2 Hz,
   propagated estimates once a second, as the tasks publish them): bytes and files, per
   record kind, split into the batch's data and the session's.
3. Cost: wall time of the recorder per message at the default cadence, per record with
   every message recorded (period 0 for every kind: encode + frame + write(2)), and the
   median fsync of the open file (once a second while records flow; a Pi's SD card is slower
   than a development machine's SSD).
4. ``--runs`` Ctrl-C -> last process gone measurements of the real tree on the sample
   scenario (``bench/bench_flight_tree.py``'s method), alternating with and without the
   writer (``batch_writer_enabled = false``).

``--record`` writes the summary figures to bench/results/batch_writer.json (docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import results  # noqa: E402  (bench/results.py: the performance page's figures)

from ground.__main__ import main as ground_main  # noqa: E402
from ground.replay.in_process import published_messages  # noqa: E402
from ground.simulate.simulator import parse_duration_s  # noqa: E402
from pygnc.batch_store import BatchStore  # noqa: E402
from pygnc.config import Config  # noqa: E402
from pygnc.formats import batch as B  # noqa: E402
from pygnc.tasks.batch_writer import BatchRecorder, kind_selection  # noqa: E402


def message_stream(scenario: Path) -> list[tuple[str, dict]]:
    return published_messages(scenario, Config())


def session_messages(stream, t0_sc: float, seconds: float) -> list[tuple[str, dict]]:
    """What follows the batch for *seconds*: health at 2 Hz, propagated estimates at 1 Hz."""
    last = {}
    for t, b in stream:
        if t in ("orbit_estimate", "attitude_estimate", "formation_estimate"):
            last[(t, b.get("peer_id", 0))] = b
    tasks = [
        {"name": n, "state": "running", "restarts": 0}
        for n in (
            "status_reporter",
            "ingest",
            "orbit_estimator",
            "attitude_estimator",
            "formation_estimator",
            "batch_writer",
        )
    ]
    out = []
    for k in range(int(seconds * 2)):
        t = t0_sc + 0.5 * k
        out.append(("health", {"tasks": tasks, "t_sc_s": t, "uptime_s": 0.5 * k, "stopping": False}))
        if k % 2 == 0:
            out.extend((mt, {**b, "t_sc_s": t, "propagated": True}) for (mt, _), b in last.items())
    return out


def record(stream, directory: Path, periods=None, t_now: float = 0.0):
    kinds, default_periods = kind_selection(Config())
    periods = default_periods if periods is None else periods
    now = [t_now]
    rec = None
    store = BatchStore(directory, 1, "bench", 0x4A, context=lambda: rec.context_records())
    store.open()
    rec = BatchRecorder(kinds, periods, store, lambda: now[0])
    t0 = time.perf_counter()
    for t, b in stream:
        rec.handle(t, b)
    dt = time.perf_counter() - t0
    return rec, store, dt


def _size(d: Path) -> tuple[int, int]:
    files = list(d.glob("batch_*.bin"))
    return sum(f.stat().st_size for f in files), len(files)


def per_kind(d: Path) -> dict[str, tuple[int, int]]:
    out: dict[str, list[int]] = {}
    for f in sorted(d.glob("batch_*.bin")):
        for r in B.decode_batch(f.read_bytes()).records:
            n = out.setdefault(r.kind.name, [0, 0])
            n[0] += 1
            n[1] += len(r.raw)
    return {k: (a, b) for k, (a, b) in out.items()}


def fsync_cost(directory: Path, n: int = 200) -> float:
    rec = B.encode_record(B.KINDS_BY_NAME["orbit"], 1.7e9, {})
    path = directory / "fsync_probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    times = []
    try:
        for _ in range(n):
            os.write(fd, rec * 3)  # ~ a second's worth at the default cadence after the batch
            t0 = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", default="24h")
    ap.add_argument("--settings", type=Path, default=REPO / "data" / "scenarios" / "formation_24h.toml")
    ap.add_argument("--session", default="10m", help="wall time after the batch (health, propagated estimates)")
    ap.add_argument("--runs", type=int, default=20, help="Ctrl-C measurements with and without the writer")
    ap.add_argument("--no-tree", action="store_true", help="skip the process-tree measurement")
    ap.add_argument("--tree-only", action="store_true", help="only the process-tree measurement")
    ap.add_argument("--record", action="store_true", help="record the figures in bench/results (the performance page)")
    args = ap.parse_args(argv)
    session_s = parse_duration_s(args.session)
    figs: list = []
    if not args.tree_only:
        batch_figures(args, session_s, figs)
    if not args.no_tree and args.runs > 0:
        tree_figures(args.runs, figs)
    if args.record:
        results.record(
            "batch_writer",
            f"Batch writer: a {args.duration} scenario's downlink ({args.settings.name}), "
            "the cost per record, Ctrl-C with and without the writer",
            figs,
            notes=(
                "The writer's core on a real batch store fed spacecraft 0's messages of the simulated "
                "scenario in the order the tree publishes them, at the default cadence, then a session "
                f"of {args.session} after the batch (health at 2 Hz, propagated estimates at 1 Hz).  "
                "Ctrl-C: the sample batch through the real tree, with and without the writer, "
                "alternating."
            ),
        )
    return 0


def batch_figures(args, session_s: float, figs: list) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        assert (
            ground_main(
                ["simulate", str(tmp / "scn"), "--settings", str(args.settings), "--duration", args.duration, "--quiet"]
            )
            == 0
        )
        t_sim = time.perf_counter() - t0
        t0 = time.perf_counter()
        stream = message_stream(tmp / "scn")
        t_rep = time.perf_counter() - t0
        counts: dict[str, int] = {}
        for t, _ in stream:
            counts[t] = counts.get(t, 0) + 1
        t_sc = [b["t_sc_s"] for t, b in stream if t == "sensor"]
        span_h = (t_sc[-1] - t_sc[0]) / 3600.0
        print(
            f"scenario {args.settings.name} {args.duration}: simulate {t_sim:.0f} s, replay {t_rep:.0f} s; "
            f"{len(stream)} messages over {span_h:.2f} h of data: "
            + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        )

        # ---- bytes at the default cadence -------------------------------------------------
        d = tmp / "default"
        t_end = t_sc[-1] + 60.0
        rec, store, dt = record(stream, d, t_now=t_end)
        store.sync()
        data_bytes = store.counters.bytes_written
        sess = session_messages(stream, t_end, session_s)
        for t, b in sess:
            rec.handle(t, b)
        rec.finish()
        store.close()
        total, n_files = _size(d)
        print(f"\ndefault cadence ({', '.join(f'{k}@{v}' for k, v in kind_selection(Config())[1].items())}):")
        print(f"  {span_h:.1f}-h batch: {data_bytes} bytes ({data_bytes / span_h * 24 / 1024:.1f} kB per 24 h of data)")
        print(
            f"  + {args.session} session after it (health, propagated estimates): {total - data_bytes} bytes "
            f"({(total - data_bytes) / (session_s / 60):.0f} bytes per minute)"
        )
        print(f"  = {total} bytes in {n_files} files (bound {Config().batch_file_max_bytes} bytes each)")
        print("  per kind (records, bytes, bytes per record):")
        for k, (n, b) in sorted(per_kind(d).items(), key=lambda kv: -kv[1][1]):
            print(f"    {k:14s} {n:6d} {b:8d}  {b / n:5.1f}")
        print(f"  headers: {n_files * B.HEADER_SIZE} bytes; context records repeated per file included above")
        figs += [
            results.figure("messages", f"messages offered ({span_h:.1f} h of data)", len(stream)),
            results.figure("batch_bytes", "bytes of the batch's data at the default cadence", data_bytes, "bytes"),
            results.figure("day_kb", "... per 24 h of data", data_bytes / span_h * 24 / 1024, "kB"),
            results.figure(
                "session_bytes_per_min",
                "+ a session after the batch (health, propagated estimates), per minute",
                (total - data_bytes) / (session_s / 60),
                "bytes",
            ),
            results.figure("total_bytes", f"batch + {args.session} session: total", total, "bytes"),
            results.figure("files", "... in files", n_files),
        ]
        figs += [
            results.figure(f"kind_{k}_bytes", f"of which {k} records ({n})", b, "bytes")
            for k, (n, b) in sorted(per_kind(d).items(), key=lambda kv: -kv[1][1])
        ]

        # ---- cost -------------------------------------------------------------------------
        per_msg_us = dt / len(stream) * 1e6
        every = {k.name: 0.0 for k in B.current_kinds()}
        rec0, store0, dt0 = record(stream, tmp / "every", periods=every, t_now=t_end)
        store0.close()
        n0 = store0.counters.records_written
        fs = fsync_cost(tmp)
        print("\ncost (this machine; the Pi is slower, see the docstring):")
        print(
            f"  default cadence: {per_msg_us:.1f} µs per message offered ({len(stream)} messages, "
            f"{store.counters.records_written} records, {dt:.2f} s for the whole batch)"
        )
        print(
            f"  every message recorded: {dt0 / n0 * 1e6:.1f} µs per record written "
            f"({n0} records, {store0.counters.bytes_written} bytes, {dt0:.2f} s)"
        )
        print(f"  fsync of the open file: median {fs * 1e3:.2f} ms (one per second while records flow)")
        figs += [
            results.figure(
                "per_message_us", "recorder time per message offered at the default cadence", per_msg_us, "µs"
            ),
            results.figure(
                "per_record_us",
                "recorder time per record written, every message recorded (encode, frame, write(2))",
                dt0 / n0 * 1e6,
                "µs",
            ),
            results.figure(
                "fsync_ms", "fsync of the open file, median (one per second while records flow)", fs * 1e3, "ms"
            ),
        ]


def tree_figures(runs: int, figs: list) -> None:
    """Ctrl-C -> gone with and without the writer, alternating."""
    from bench_flight_tree import one_run

    off = Path(tempfile.mkstemp(suffix=".toml")[1])
    off.write_text("batch_writer_enabled = false\n")
    stops = {"with writer": [], "without writer": []}
    procs = {}
    try:
        for i in range(runs):
            for label, env in (("with writer", None), ("without writer", {"PYGNC_CONFIG": str(off)})):
                with tempfile.TemporaryDirectory() as t:
                    _, s, _, n = one_run(Path(t), env=env)
                stops[label].append(s)
                procs[label] = n
            print(
                f"run {i + 1:2d}: Ctrl-C -> gone {stops['with writer'][-1] * 1e3:6.1f} ms with the writer, "
                f"{stops['without writer'][-1] * 1e3:6.1f} ms without",
                flush=True,
            )
    finally:
        off.unlink()
    print()
    for label, v in stops.items():
        print(
            f"Ctrl-C -> last process gone, {label:14s} ({procs[label]} processes): median "
            f"{statistics.median(v) * 1e3:.0f} ms, "
            f"worst {max(v) * 1e3:.0f} ms of {len(v)}  (target worst < 1000 ms)"
        )
        key = "with" if label == "with writer" else "without"
        figs += [
            results.figure(
                f"stop_{key}_median_ms",
                f"Ctrl-C -> last process gone, {label} ({procs[label]} processes): median of {len(v)}",
                statistics.median(v) * 1e3,
                "ms",
            ),
            results.figure(f"stop_{key}_worst_ms", "... worst", max(v) * 1e3, "ms"),
        ]


if __name__ == "__main__":
    sys.exit(main())
