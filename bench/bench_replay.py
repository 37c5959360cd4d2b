"""Replay bench: simulation and replay time of a 24-hour scenario, and the share of the
replay spent in each estimator.

    .venv/bin/python bench/bench_replay.py [--duration 24h] [--runs 3] [--settings TOML] [--pipeline] [--record]

1. ``python -m ground simulate`` (in-process, default settings: two spacecraft, GPS every
   25 s -> 3456 own fixes in 24 h) into a temporary directory (deleted afterwards).
2. The in-process replay (:func:`ground.replay.in_process.run_in_process`) ``--runs`` times: wall
   time of building the message stream (ingest), of each processor's ``handle`` calls
   (timed around every call, so a processor's time excludes the processors it feeds), and
   of the whole feed; medians are printed.
3. One full ``python -m ground replay`` (CSV, OEM, truth statistics, plots) for the cost
   of the outputs.
4. With ``--pipeline``, one ``--pipeline`` replay (the real process tree).

``--record`` writes the summary figures to bench/results/replay.json (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ground.__main__ import main as ground_main
from ground.replay import cli as replay
from pygnc.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import figure, record  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", default="24h")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--settings", type=Path, help="scenario TOML (default: the simulator's defaults)")
    ap.add_argument("--seed", default="1")
    ap.add_argument("--pipeline", action="store_true", help="also time one --pipeline replay")
    ap.add_argument("--record", action="store_true", help="record the figures in bench/results (the performance page)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        scen, out = Path(tmp) / "scenario", Path(tmp) / "out"
        cmd = ["simulate", str(scen), "--duration", args.duration, "--seed", args.seed, "--quiet"]
        if args.settings:
            cmd += ["--settings", str(args.settings)]
        t0 = time.perf_counter()
        assert ground_main(cmd) == 0
        t_sim = time.perf_counter() - t0
        print(f"simulate {args.duration}{' ' + str(args.settings) if args.settings else ''}: {t_sim:.1f} s")

        runs = []
        for k in range(args.runs):
            r = replay.run_in_process(scen, Config(), quiet=True)
            runs.append(r)
            print(f"  replay run {k + 1}: " + ", ".join(f"{n} {v:.2f} s" for n, v in r.timings_s.items()))
        r0 = runs[0]
        stream = r0.extra["stream"]
        n_fix = sum(1 for m, b in stream.messages if m == "gps_fix" and b["peer_id"] == 0)
        n_sensor = sum(1 for m, _ in stream.messages if m == "sensor")
        med = {key: statistics.median(r.timings_s[key] for r in runs) for key in r0.timings_s}
        print(
            f"batch: {r0.n_messages} messages, {n_sensor} sensor samples, {n_fix} own GPS fixes; "
            f"estimators: {', '.join(r0.processors)}"
        )
        print(
            f"in-process replay, median of {len(runs)}: total {med['total']:.2f} s = ingest {med['ingest']:.2f} s"
            f" + estimators {med['processors']:.2f} s ({100 * med['processors'] / med['total']:.1f} %)"
            f" + dispatch {med['total'] - med['ingest'] - med['processors']:.2f} s"
        )
        figs = [
            figure("simulate_s", f"simulate {args.duration}", t_sim, "s"),
            figure("replay_s", f"in-process replay, median of {len(runs)}: total", med["total"], "s"),
            figure(
                "estimators_share",
                "... of which the estimators' handle() calls",
                100 * med["processors"] / med["total"],
                "%",
            ),
        ]
        for name in r0.processors:
            print(
                f"  {name:<10} {med[name]:7.2f} s  {100 * med[name] / med['total']:5.1f} % of the replay"
                f"  ({1e3 * med[name] / max(n_sensor, 1):.3f} ms per sensor sample)"
            )
            figs.append(
                figure(
                    f"{name}_ms_per_sample", f"{name}: ms per sensor sample", 1e3 * med[name] / max(n_sensor, 1), "ms"
                )
            )

        t0 = time.perf_counter()
        assert ground_main(["replay", str(scen), "--out", str(out), "--quiet"]) == 0
        t_full = time.perf_counter() - t0
        s_in = json.loads((out / "summary.json").read_text())
        t_feed = s_in["timings_s"]["total"]
        print(
            f"full 'python -m ground replay' (CSV, OEM, truth statistics, plots): {t_full:.1f} s "
            f"= replay {t_feed:.1f} s + outputs {t_full - t_feed:.1f} s; rows {s_in['rows']}"
        )
        figs.append(
            figure("full_replay_s", "a full python -m ground replay (CSV, OEM, truth statistics, plots)", t_full, "s")
        )
        if args.pipeline:
            t0 = time.perf_counter()
            assert (
                ground_main(["replay", str(scen), "--out", str(out / "pipe"), "--quiet", "--pipeline", "--no-plots"])
                == 0
            )
            s_pipe = json.loads((out / "pipe" / "summary.json").read_text())
            t_pipe = time.perf_counter() - t0
            print(
                f"--pipeline replay: {t_pipe:.1f} s (process tree "
                f"{s_pipe['timings_s']['processed']:.1f} s to process the batch); rows {s_pipe['rows']}"
            )
            figs += [
                figure("pipeline_replay_s", "a --pipeline replay (the real process tree)", t_pipe, "s"),
                figure(
                    "pipeline_processed_s",
                    "... the tree's time to process the batch",
                    s_pipe["timings_s"]["processed"],
                    "s",
                ),
            ]
    if args.record:
        record(
            "replay",
            f"Simulate and replay a {args.duration} scenario: {n_sensor} sensor samples, {n_fix} own GPS fixes",
            figs,
            notes=(
                "python -m ground simulate in process (default settings unless the command names a TOML), then "
                "the in-process replay: each processor's handle() calls timed (a processor's time excludes the "
                "processors it feeds)."
            ),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
