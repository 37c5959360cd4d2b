"""Monte Carlo bench: runs per minute on this machine with 1 and 2 Dask workers, the
scaling, and the overhead per run that Dask adds.

    .venv/bin/python bench/bench_montecarlo.py [--runs 8] [--duration 30m] [--repeats 3] [--record]

A campaign of ``--runs`` dispersed runs of the 3-h formation scenario cut to ``--duration``
(one estimator configuration) is done three ways, each ``--repeats`` times, medians printed:

1. **serial**: :func:`ground.montecarlo.worker.run_one` in a loop in this process (no Dask;
   imports warmed by one run first) - the work itself;
2. **Dask, 1 worker** and 3. **Dask, 2 workers**: a fresh local cluster each time, as
   ``python -m ground montecarlo`` makes it; the campaign's tasks through
   :func:`ground.montecarlo.cli.execute` (records written as they arrive).  Cluster start-up
   is timed apart from the runs.

Dask's overhead per run = (1-worker wall time for the runs - serial time) / runs: task
shipping, result transfer, record writing and the first import of the ground tools in the
worker process (paid once per worker, so it falls with more runs per worker).  The 2-worker
scaling is bounded by this machine's two cores, shared with whatever else runs.

``--record`` writes the summary figures to bench/results/montecarlo.json (docs/performance.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE = REPO / "data" / "scenarios" / "formation_3h.toml"
sys.path.insert(0, str(REPO / "bench"))

from results import figure, record  # noqa: E402


def campaign_file(d: Path, runs: int, duration: str) -> Path:
    p = d / "bench_campaign.toml"
    p.write_text(f"""
name = "bench"
base_scenario = "{BASE}"
duration = "{duration}"
runs = {runs}
first_seed = 101
[dispersions]
"spacecraft.1.dlambda_m" = {{ uniform = [-8000.0, -1000.0] }}
"sensors.gyro_noise_deg_s" = {{ loguniform = [0.02, 0.08] }}
"spacecraft.0.sc_minus_utc_s" = {{ uniform = [-0.9, 0.9] }}
""")
    return p


def serial(specs) -> float:
    from ground.montecarlo.worker import run_one

    t0 = time.perf_counter()
    for s in specs:
        rec = run_one(s.as_dict())
        assert not rec["error"], rec["error"]
    return time.perf_counter() - t0


def dask_run(specs, n_workers: int, out: Path) -> tuple[float, float, float]:
    """(cluster start-up s, runs wall s, shutdown s) on a fresh local cluster."""
    from ground.montecarlo.cli import DaskCluster, execute

    t0 = time.perf_counter()
    cluster = DaskCluster(None, n_workers)
    cluster.client.wait_for_workers(n_workers, timeout=60)
    t1 = time.perf_counter()
    try:
        (out / "runs").mkdir(parents=True, exist_ok=True)
        assert execute(out, specs, cluster, keep_csv=False, quiet=True) == len(specs)
        t2 = time.perf_counter()
    finally:
        cluster.close()
    return t1 - t0, t2 - t1, time.perf_counter() - t2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--duration", default="30m")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--record", action="store_true", help="record the figures in bench/results (the performance page)")
    args = ap.parse_args(argv)

    from ground.montecarlo.campaign import load_campaign, run_spec, run_specs

    with tempfile.TemporaryDirectory(prefix="bench-mc-") as tmp:
        tmp = Path(tmp)
        campaign = load_campaign(campaign_file(tmp, args.runs, args.duration))
        specs = run_specs(campaign)
        serial([run_spec(campaign, 1)])  # warm this process's imports
        t_serial, t1, t2 = [], [], []
        start1, start2, stop = [], [], []
        for k in range(args.repeats):
            t_serial.append(serial(specs))
            s, w, c = dask_run(specs, 1, tmp / f"w1_{k}")
            start1.append(s), t1.append(w), stop.append(c)
            s, w, c = dask_run(specs, 2, tmp / f"w2_{k}")
            start2.append(s), t2.append(w), stop.append(c)
            print(
                f"repeat {k + 1}: serial {t_serial[-1]:.1f} s, 1 worker {t1[-1]:.1f} s, 2 workers {t2[-1]:.1f} s",
                flush=True,
            )
    n = args.runs
    ms, m1, m2 = (statistics.median(x) for x in (t_serial, t1, t2))
    print(f"\n{n} runs of {args.duration} (simulate + replay, one configuration), medians of {args.repeats}:")
    print(f"  serial, no Dask   {ms:6.1f} s  {60 * n / ms:5.1f} runs/min  ({ms / n:.2f} s per run)")
    print(
        f"  Dask, 1 worker    {m1:6.1f} s  {60 * n / m1:5.1f} runs/min  (cluster start "
        f"{statistics.median(start1):.1f} s)"
    )
    print(
        f"  Dask, 2 workers   {m2:6.1f} s  {60 * n / m2:5.1f} runs/min  (cluster start "
        f"{statistics.median(start2):.1f} s)"
    )
    print(
        f"  scaling 1 -> 2 workers: {m1 / m2:.2f}x;  Dask overhead per run: {(m1 - ms) / n:.2f} s "
        f"({100 * (m1 - ms) / ms:.0f} % of the serial time); cluster shutdown {statistics.median(stop):.1f} s"
    )
    if args.record:
        record(
            "montecarlo",
            f"Monte Carlo campaigns on Dask: {n} runs of {args.duration}, medians of {args.repeats}",
            [
                figure("serial_runs_min", "serial, in this process (no Dask)", 60 * n / ms, "runs/min"),
                figure("one_worker_runs_min", "Dask, 1 worker", 60 * n / m1, "runs/min"),
                figure("two_workers_runs_min", "Dask, 2 workers", 60 * n / m2, "runs/min"),
                figure("scaling", "1 -> 2 workers: speed-up", m1 / m2),
                figure("overhead_per_run_s", "Dask's overhead per run (1 worker - serial)", (m1 - ms) / n, "s"),
                figure("cluster_start_s", "a local cluster's start-up (2 workers)", statistics.median(start2), "s"),
            ],
            notes="Dispersed runs of the 3-h formation scenario cut to the duration (simulate + replay, one "
            "estimator configuration); a fresh local cluster each time, as python -m ground montecarlo "
            "makes it; the scaling is bounded by the machine's cores, shared with whatever else runs.",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
