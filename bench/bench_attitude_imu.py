"""Attitude with a live 100-Hz gyro: the accuracy gained over the 5-s BMX160 samples, and the
CPU the IMU stream costs the attitude task.

    .venv/bin/python bench/bench_attitude_imu.py [--seeds 3] [--wrap-seeds 1]

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
IMU sample, and per 5-s step (ms).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from pygnc.config import Config

from ground import simulate as sim

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import attitude_support as asup  # noqa: E402  (shared with the tests)
import processor_support as ps  # noqa: E402


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
    ap.add_argument("--wrap-seeds", type=int, default=1)
    args = ap.parse_args(argv)
    head = ("seed  gyro     rms_deg  sun    eclipse  max    bias_err_deg_s  NEES  in95  imu_steps  cpu_s")
    per_sample_us, ratios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for title, drift, seeds in (("issue scenario", None, range(1, args.seeds + 1)),
                                    ("clock 400 ppm fast (stamp phase wraps)", 400.0, range(1, args.wrap_seeds + 1))):
            print(f"{title}:\n{head}")
            for seed in seeds:
                s = asup.issue_settings(seed, 3 * 3600.0)
                if drift is not None:
                    s.spacecraft[0].clock_drift_ppm = drift
                base, imu, n = one(s, seed, Path(tmp))
                for name, r in (("bmx160", base), ("imu", imu)):
                    print(f"{seed:4d}  {name:7s}  {r['rms_deg']:7.3f}  {r['rms_sun_deg']:5.3f}  {r['rms_eclipse_deg']:7.3f}  "
                          f"{r['max_deg']:5.2f}  {r['bias_err_max_deg_s']:14.4f}  {r['nees_mean']:4.2f}  {r['in95']:4.2f}  "
                          f"{r['counters']['imu_steps']:9d}  {r['cpu_s']:5.2f}"
                          + (f"  offset {r['counters']['imu_offset_s']:+.3f} +- {r['counters']['imu_offset_sigma_s']:.3f} s" if name == "imu" else ""))
                ratios.append(base["rms_deg"] / imu["rms_deg"])
                per_sample_us.append((imu["cpu_s"] - base["cpu_s"]) / n * 1e6)
                steps = base["counters"]["steps"]
                print(f"      rms ratio {ratios[-1]:.2f}x; IMU cost {per_sample_us[-1]:.2f} us per sample "
                      f"({(imu['cpu_s'] - base['cpu_s']) / steps * 1e3:.2f} ms per 5-s step; "
                      f"without {base['cpu_s'] / steps * 1e3:.2f} ms)")
    print(f"median rms ratio (BMX160 / IMU) {statistics.median(ratios):.2f}x; median IMU cost "
          f"{statistics.median(per_sample_us):.2f} us per sample = {statistics.median(per_sample_us) * 100 / 1e4:.3f} % "
          f"of a core at 100 Hz here")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
