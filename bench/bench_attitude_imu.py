"""Attitude with a live 100-Hz gyro: the accuracy gained over the 5-s BMX160 samples, and the
CPU the IMU stream costs the attitude task.

    .venv/bin/python bench/bench_attitude_imu.py [--seeds 3] [--wrap-seeds 2] [--record]

The issue's 3-h attitude scenario (bench_attitude.py: one spacecraft tumbling at 2-5 deg/s,
BMX160 gyro noise 0.025 deg/s and bias up to 1 deg/s, magnetometer, six sun faces, 5-s
samples with whole-second stamps), run through the flight orbit and attitude processors as
the task tree runs them, once as today and once with a simulated IMU380-class gyro
(tests/attitude_support.imu_samples: 100 Hz, 0.005 deg/s/sqrt(Hz), bias up to 0.3 deg/s,
the S1 packet's LSB, mounted turned 90 deg) streamed in 0.1-s ``imu_samples`` blocks.
Statistics after 30 min against truth at the stated epochs; NEES of the 3x3 attitude
covariance (mean 3 and 95 % inside for a consistent filter).  Second set: the spacecraft
clock 400 ppm fast, so the BMX160 stamps' phase wraps and the stated epochs are ~0.29 s
off: the gyro cannot fix that (the magnetometer and sun faces were sampled at another
instant than stated), so it bounds what any gyro gains there.

CPU: the attitude processor's process time with and without the IMU, the difference per
IMU sample, and per 5-s step (ms).  ``--record`` writes the summary figures to
bench/results/attitude_imu.json (docs/performance.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from ground.simulate import simulator as sim
from pygnc.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import attitude_support as asup  # noqa: E402  (shared with the tests)
import processor_support as ps  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import figure, record  # noqa: E402


def one(settings, seed: int, tmp: Path) -> tuple[dict, dict, int]:
    d = tmp / f"scn{seed}_{settings.spacecraft[0].clock_drift_ppm}"
    sim.write_scenario(sim.simulate(settings), d)
    truth = dict(np.load(d / "truth.npz"))
    msgs = ps.stream_of(d)
    config = dataclasses.replace(Config(), imu_device_to_body=asup.IMU_DEVICE_TO_BODY)
    t_sc, w, bias = asup.imu_samples(truth, seed=seed)
    r_db = np.asarray(asup.IMU_DEVICE_TO_BODY).reshape(3, 3)
    base = asup.processor_accuracy(truth, msgs, config)
    imu = asup.processor_accuracy(truth, asup.with_imu(msgs, t_sc, w), config, imu_bias_body_rad_s=r_db @ bias)
    return base, imu, t_sc.size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--wrap-seeds", type=int, default=2)
    ap.add_argument("--record", action="store_true", help="record the figures in bench/results (the performance page)")
    args = ap.parse_args(argv)
    head = "seed  gyro     rms_deg  sun    eclipse  max    bias_err_deg_s  NEES  in95  imu_steps  cpu_s"
    per_sample_us, ratios = [], []
    issue_rows = []  # (BMX160, IMU) accuracy of the issue scenario's seeds
    wrap_rows = []  # the same, clock 400 ppm fast
    with tempfile.TemporaryDirectory() as tmp:
        for title, drift, seeds in (
            ("issue scenario", None, range(1, args.seeds + 1)),
            ("clock 400 ppm fast (stamp phase wraps)", 400.0, range(1, args.wrap_seeds + 1)),
        ):
            print(f"{title}:\n{head}")
            for seed in seeds:
                s = asup.issue_settings(seed, 3 * 3600.0)
                if drift is not None:
                    s.spacecraft[0].clock_drift_ppm = drift
                base, imu, n = one(s, seed, Path(tmp))
                for name, r in (("bmx160", base), ("imu", imu)):
                    print(
                        f"{seed:4d}  {name:7s}  {r['rms_deg']:7.3f}  {r['rms_sun_deg']:5.3f}  "
                        f"{r['rms_eclipse_deg']:7.3f}  "
                        f"{r['max_deg']:5.2f}  {r['bias_err_max_deg_s']:14.4f}  {r['nees_mean']:4.2f}  "
                        f"{r['in95']:4.2f}  "
                        f"{r['counters']['imu_steps']:9d}  {r['cpu_s']:5.2f}"
                        + (
                            f"  offset {r['counters']['imu_offset_s']:+.3f} +- "
                            f"{r['counters']['imu_offset_sigma_s']:.3f} s"
                            if name == "imu"
                            else ""
                        )
                    )
                ratios.append(base["rms_deg"] / imu["rms_deg"])
                (issue_rows if drift is None else wrap_rows).append((base, imu))
                per_sample_us.append((imu["cpu_s"] - base["cpu_s"]) / n * 1e6)
                steps = base["counters"]["steps"]
                print(
                    f"      rms ratio {ratios[-1]:.2f}x; IMU cost {per_sample_us[-1]:.2f} us per sample "
                    f"({(imu['cpu_s'] - base['cpu_s']) / steps * 1e3:.2f} ms per 5-s step; "
                    f"without {base['cpu_s'] / steps * 1e3:.2f} ms)"
                )
    print(
        f"median rms ratio (BMX160 / IMU) {statistics.median(ratios):.2f}x; median IMU cost "
        f"{statistics.median(per_sample_us):.2f} us per sample = {statistics.median(per_sample_us) * 100 / 1e4:.3f} % "
        f"of a core at 100 Hz here"
    )
    if args.record:
        figs = []
        if issue_rows:
            imu_rms = [i["rms_deg"] for _, i in issue_rows]
            bmx_rms = [b["rms_deg"] for b, _ in issue_rows]
            figs += [
                figure(
                    "imu_rms_best_deg",
                    f"with the 100-Hz IMU: attitude error RMS after 30 min, best of {len(issue_rows)} seeds",
                    min(imu_rms),
                    "deg",
                ),
                figure("imu_rms_worst_deg", "... worst seed", max(imu_rms), "deg"),
                figure(
                    "imu_eclipse_worst_deg",
                    "... in eclipse, worst seed",
                    max(i["rms_eclipse_deg"] for _, i in issue_rows),
                    "deg",
                ),
                figure(
                    "imu_nees_worst",
                    "... NEES mean, worst seed (3 dof: 3 when consistent)",
                    max(i["nees_mean"] for _, i in issue_rows),
                ),
                figure("bmx160_rms_best_deg", "the BMX160's 5-s samples alone, same seeds: best", min(bmx_rms), "deg"),
                figure("bmx160_rms_worst_deg", "... worst", max(bmx_rms), "deg"),
            ]
        if wrap_rows:
            figs += [
                figure(
                    "wrap_imu_nees_worst",
                    f"clock 400 ppm fast (stamps wrap), with the IMU: NEES mean, worst of {len(wrap_rows)} seeds",
                    max(i["nees_mean"] for _, i in wrap_rows),
                ),
                figure(
                    "wrap_imu_in95_worst",
                    "... share of estimates inside the 95 % bound, worst seed",
                    100.0 * min(i["in95"] for _, i in wrap_rows),
                    "%",
                ),
                figure(
                    "wrap_imu_rms_worst_deg",
                    "... attitude error RMS, worst seed",
                    max(i["rms_deg"] for _, i in wrap_rows),
                    "deg",
                ),
            ]
        figs += [
            figure(
                "rms_ratio_median",
                "attitude RMS BMX160 alone / with the IMU, median over all seeds",
                statistics.median(ratios),
            ),
            figure(
                "imu_cost_us",
                "CPU the IMU stream adds to the attitude task per IMU sample, median",
                statistics.median(per_sample_us),
                "µs",
            ),
        ]
        record(
            "attitude_imu",
            f"Attitude with a live 100-Hz IMU against the BMX160 alone: {args.seeds} seeds "
            f"(+ {args.wrap_seeds} with the clock 400 ppm fast), 3 h",
            figs,
            notes=(
                "bench_attitude.py's scenario through the flight orbit and attitude processors, once as today and "
                "once with a simulated IMU380-class gyro at 100 Hz (0.005 deg/s/sqrt(Hz), bias up to 0.3 deg/s, "
                "mounted turned 90 deg); errors after 30 min at the stated epochs."
            ),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
