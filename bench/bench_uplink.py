"""``ground uplink`` priors against the truth: are their covariances honest?

Seeded three-spacecraft formations (the simulator's defaults: 500-km sun-synchronous,
partners ~3 and ~6 km behind; truth from brahe: EGM2008 40x40, NRLMSISE-00 drag with a
seeded density factor, SRP, Sun and Moon).  For each seed:

* **TLE**: ``tle.txt`` as ``ground simulate --tle`` makes it (a 1-day fit to the truth
  ending at the TLE epoch, 6 h before the scenario start, plus TLE-class errors drawn from
  the uplink's model), and the uplink's TLE prior of each partner (SGP4, TEME -> ECEF,
  :func:`ground.uplink.tle_covariance.tle_covariance_rtn`) at the start + 0, 6, 12 and 24 h
  (TLE ages 6-30 h).
* **downlink**: the flight's orbit EKF on GPS fixes every 30 s (10 m / 1 cm/s) over the
  scenario's first day, its estimates every 60 s as the batch files carry them (ECEF,
  per-axis sigmas), and the uplink's prediction (:func:`ground.uplink.orbit_prediction.fit_and_predict`,
  drag fitted over the last 24 h) 0.5, 3, 6 and 12 h after the last one.

Printed per mode and age: the number of priors, the NEES (6 dof: position and inertial
velocity, the prior's own covariance) median and mean (6 when the covariance is right,
less when conservative), the fraction inside the 99.9 % chi-square bound (22.46), and per
RTN axis the RMS position error against the RMS of the published sigma.

    python bench/bench_uplink.py [--seeds 10] [--first-seed 1] [--jobs 1] [--tle-error-scale 0] [--record]

``--tle-error-scale 0``: the TLEs as fitted, no error drawn (what SGP4 itself costs).
``--record`` writes the summary figures to bench/results/uplink.json (``uplink_tle_scale_S.json``
with another ``--tle-error-scale``; docs/performance.md).

~1 min of CPU per seed (the truth: a day backwards for the TLE fits, 36 h forwards).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import figure, record  # noqa: E402

CHI2_6_999 = 22.458
TLE_EPOCHS_H = (0.0, 6.0, 12.0, 24.0)
DOWNLINK_DAY_H = 24.0
DOWNLINK_AHEAD_H = (0.5, 3.0, 6.0, 12.0)


def _settings(seed: int, tle_error_scale: float = 1.0):
    from ground.simulate import scenario as scn
    from ground.simulate import simulator as sim

    s = scn.ScenarioSettings(seed=seed)
    s.spacecraft = s.spacecraft + [sim._extra_spacecraft(2)]
    s.tle.enabled = True
    s.tle.error_scale = tle_error_scale
    return scn.resolve(s)


def _rtn_error(r, v, r_true, v_true):
    from ground.uplink.tle_covariance import rtn_axes

    ax = rtn_axes(r, v)
    return np.concatenate([ax @ (r - r_true), ax @ (v - v_true)])


def run_seed(seed: int, tle_error_scale: float = 1.0, downlink: bool = True) -> list:
    """[(mode, age h, error RTN (6,), covariance RTN (6, 6))] of every prior of the seed."""
    from ground.replay.orbit_filter import run_orbit_filter
    from ground.simulate import orbits
    from ground.simulate import simulator as sim
    from ground.uplink import orbit_prediction as op
    from ground.uplink import tle as tl
    from ground.uplink.tle_covariance import tle_covariance_rtn
    from pygnc import frames
    from pygnc.timebase import gps_from_utc_unix

    s = _settings(seed, tle_error_scale)
    t0 = float(gps_from_utc_unix(sim.parse_utc(s.start_utc)))
    sets = tl.parse_tle_text(sim._tles(s, t0, lambda m: None), f"seed {seed}")
    out = []
    span_s = (DOWNLINK_DAY_H + max(DOWNLINK_AHEAD_H)) * 3600.0
    for k in (1, 2):
        r0, v0, dseed = sim._truth_start(s, k)
        tr = orbits.propagate_truth(
            r0, v0, t0, span_s, step_s=30.0, ballistic_coeff_kg_m2=s.spacecraft[k].ballistic_coeff_kg_m2, seed=dseed
        )
        t = tr["t_gps_s"]
        rg_t, vg_t = frames.itrs_to_gcrs(tr["r_ecef_m"], tr["v_ecef_m_s"], t)
        # TLE priors.
        tle = sets[k]
        for h in TLE_EPOCHS_H:
            j = int(round(h * 120))
            r_t, v_t = tl.sgp4_teme(tle, t[j])
            r_e, v_e = tl.teme_to_itrs(r_t, v_t, t[j])
            r_g, v_g = frames.itrs_to_gcrs(r_e, v_e, t[j])
            out.append(
                (
                    "tle",
                    (t[j] - tle.epoch_gps_s) / 3600.0,
                    _rtn_error(r_g, v_g, rg_t[j], vg_t[j]),
                    tle_covariance_rtn(tle, t[j]),
                )
            )
        if not downlink:
            continue
        # Downlink priors: the flight EKF's estimates of the first day.
        fixes = orbits.simulate_gps_fixes(tr, period_s=30.0, rng=np.random.default_rng(1000 * seed + k))
        day = t[t - t0 <= DOWNLINK_DAY_H * 3600.0 + 1e-6]
        ekf = run_orbit_filter(fixes, day[::2])
        ok = np.isfinite(ekf["r_ecef_m"][:, 0])
        m = frames.gcrs_from_itrs_matrix(ekf["t_gps_s"][ok])

        def diag_ecef(c, m=m):
            return np.sqrt(np.einsum("nii->ni", np.einsum("nji,njk,nkl->nil", m, c, m)))

        sr, sv = diag_ecef(ekf["cov"][ok, :3, :3]), diag_ecef(ekf["cov"][ok, 3:6, 3:6])
        for h in DOWNLINK_AHEAD_H:
            te = day[-1] + h * 3600.0
            j = int(round((te - t0) / 30.0))
            p = op.fit_and_predict(ekf["t_gps_s"][ok], ekf["r_ecef_m"][ok], ekf["v_ecef_m_s"][ok], sr, sv, te)
            e = _rtn_error(p.r_gcrs_m, p.v_gcrs_m_s, rg_t[j], vg_t[j])
            out.append(("downlink", h, e, p.cov_rtn))
    return out


def report(rows) -> list[dict]:
    """Print the table and the summary; returns the summary's figures."""
    figs = []
    print(
        f"{'mode':9s} {'age h':>6s} {'n':>3s} {'NEES med':>9s} {'mean':>6s} {'<99.9%':>7s}   "
        f"{'RMS err R/T/N m':>24s}   {'RMS sigma R/T/N m':>24s}"
    )
    keys = sorted({(m, round(a, 1)) for m, a, _, _ in rows})
    for mode, age in keys:
        sel = [(e, c) for m, a, e, c in rows if m == mode and round(a, 1) == age]
        nees = np.array([float(e @ np.linalg.solve(c, e)) for e, c in sel])
        err = np.array([e[:3] for e, _ in sel])
        sig = np.array([np.sqrt(np.diag(c)[:3]) for _, c in sel])
        rms_e = np.sqrt(np.mean(err**2, axis=0))
        rms_s = np.sqrt(np.mean(sig**2, axis=0))
        print(
            f"{mode:9s} {age:6.1f} {nees.size:3d} {np.median(nees):9.2f} {nees.mean():6.2f} "
            f"{np.mean(nees <= CHI2_6_999):7.0%}   {' / '.join(f'{x:7.0f}' for x in rms_e):>24s}   "
            f"{' / '.join(f'{x:7.0f}' for x in rms_s):>24s}"
        )
        k = f"{mode}_{age:g}h".replace(".", "_")
        figs += [
            figure(
                f"{k}_nees_median",
                f"{mode} priors {age:g} h old ({nees.size}): NEES median (6 dof)",
                float(np.median(nees)),
            ),
            figure(
                f"{k}_inside",
                f"{mode} priors {age:g} h old: NEES inside the 99.9 % bound",
                100.0 * float(np.mean(nees <= CHI2_6_999)),
                "%",
            ),
        ]
    for mode in ("tle", "downlink"):
        nees = np.array([float(e @ np.linalg.solve(c, e)) for m, _, e, c in rows if m == mode])
        if nees.size:
            print(
                f"{mode}: all ages: {nees.size} priors, NEES median {np.median(nees):.2f}, mean {nees.mean():.2f}, "
                f"{np.mean(nees <= CHI2_6_999):.0%} inside the 99.9 % bound, max {nees.max():.1f}"
            )
            figs += [
                figure(f"{mode}_priors", f"{mode} priors, all ages", int(nees.size)),
                figure(
                    f"{mode}_nees_median",
                    f"{mode}, all ages: NEES median (6 dof: 6 when the covariance is right, less when conservative)",
                    float(np.median(nees)),
                ),
                figure(f"{mode}_nees_mean", f"{mode}, all ages: NEES mean", float(nees.mean())),
                figure(
                    f"{mode}_inside",
                    f"{mode}, all ages: NEES inside the 99.9 % bound",
                    100.0 * float(np.mean(nees <= CHI2_6_999)),
                    "%",
                ),
                figure(f"{mode}_nees_max", f"{mode}, all ages: NEES largest", float(nees.max())),
            ]
    return figs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument(
        "--tle-error-scale",
        type=float,
        default=1.0,
        help="scale of the TLE errors drawn (0: the fit's own error only, no downlink part)",
    )
    ap.add_argument("--record", action="store_true", help="record the figures in bench/results (the performance page)")
    a = ap.parse_args(argv)
    seeds = list(range(a.first_seed, a.first_seed + a.seeds))
    rows = []
    if a.jobs > 1:
        with concurrent.futures.ProcessPoolExecutor(a.jobs) as ex:
            for r in ex.map(run_seed, seeds, [a.tle_error_scale] * len(seeds), [a.tle_error_scale > 0] * len(seeds)):
                rows.extend(r)
    else:
        for sd in seeds:
            rows.extend(run_seed(sd, a.tle_error_scale, a.tle_error_scale > 0))
            print(f"seed {sd} done", file=sys.stderr)
    figs = report(rows)
    if a.record:
        scale = a.tle_error_scale
        record(
            "uplink" if scale == 1.0 else f"uplink_tle_scale_{scale:g}".replace(".", "_"),
            f"Uplinked priors against the truth: {a.seeds} seeds x 2 partners"
            + ("" if scale == 1.0 else f", TLE errors x {scale:g}"),
            figs,
            notes=(
                "Three-spacecraft formations (truth from brahe).  'tle': SGP4 on a TLE fitted to the truth with "
                "TLE-class errors, 6-30 h after its epoch, with the uplink's TLE covariance; 'downlink': the "
                "flight orbit EKF's estimates of a day propagated 0.5-12 h ahead by the ground's fit.  NEES over "
                "position and velocity (6 dof) with the prior's own covariance."
            ),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
