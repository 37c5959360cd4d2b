"""Orbit EKF bench: speed (ms per predict / update, 24-h batch) and 3-h accuracy on seeded truth.

    .venv/bin/python bench/bench_orbit.py [--seeds 5] [--skip-24h] [--bound-seeds 1] [--record]

Scenarios: 500 km, i = 97.4 deg, random node/phase per seed, truth = ground.simulate.orbits
(brahe: EGM2008 40x40, NRLMSISE-00 drag with a seeded solar-activity factor, Sun/Moon, SRP
with conical shadow, relativity); GPS fixes 10 m /
0.01 m/s 1-sigma per ECEF axis every 25 s; 3 h; statistics after the first 30 min on the 5-s
output grid.  NEES is over the 6 position+velocity states; "in95" is the fraction of epochs
with NEES below the chi-square(6) 95 % bound (0.95 for a consistent filter).

Speed: the default model and the EGM96 8x8 model it replaced (issue 47) timed interleaved,
run by run, and the ratio of their CPU per 5-s step recorded: a loaded machine slows both.

Also printed, for honesty about what the data support:

* the information floor: an EKF whose dynamics are exactly the truth's (truth-anchored error
  propagation), zero process noise - what the fixes alone support;
* the EGM96 8x8 filter (DMC 1e-6) on a truth with gravity cut at EGM2008 8x8: the cost of
  drag, Sun/Moon and SRP modelling errors and of the EGM96/EGM2008 coefficient differences;
* the information bound of each nominal seed (:func:`ground.simulate.bounds.orbit_bound`): the
  Kalman filter of the linear-Gaussian problem about the truth, with the truth's dynamics
  and a drag scale (prior sigma 1) and an SRP scale (0.3) as unknown constants - the
  posterior Cramer-Rao bound of an estimator that knows the force models but not the day's
  density or the spacecraft's coefficients; the filter/bound ratios are on the page;
* a Bayesian bound (``--bound-seeds``): the linear MMSE filter/smoother that knows the form
  of unmodelled degrees 9-12 and their per-degree RMS, estimating the 88 coefficients.  It
  needs a truth whose unmodelled field is exactly those coefficients, so it runs on the
  in-house EGM96 12x12 truth (``ground.simulate.orbits.propagate_in_house``), not on brahe's.

``--record`` writes the summary figures to bench/results/orbit.json (docs/performance.md).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from ground.replay import orbit_filter as ob
from ground.simulate import bounds as sim_bounds
from ground.simulate import orbits as sim
from pygnc import frames, timebase
from pygnc.estimation import chi2
from pygnc.estimation import orbit_dynamics as od
from pygnc.estimation import orbit_ekf as oe
from pygnc.estimation.gps_fix import GpsFix, fix_to_gcrs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import figure, record  # noqa: E402

CHI2_6_95 = chi2.quantile(0.95, 6)


def make_truth(seed, hours=3.0, in_house=False, **kw):
    rng = np.random.default_rng(seed)
    t0 = math.floor(timebase.gps_from_utc_unix(1.74e9 + rng.uniform(0, 3e6)))
    r0, v0 = sim.initial_state_from_elements(
        6_878_137.0,
        0.001,
        math.radians(97.4),
        rng.uniform(0, 2 * math.pi),
        rng.uniform(0, 2 * math.pi),
        rng.uniform(0, 2 * math.pi),
    )
    propagate = sim.propagate_in_house if in_house else sim.propagate_truth
    return propagate(r0, v0, t0, hours * 3600.0, seed=seed, **kw)


def stats(truth, res, settle_s=1800.0):
    idx = np.searchsorted(truth["t_gps_s"], res["t_gps_s"])
    er = res["r_gcrs_m"] - truth["r_gcrs_m"][idx]
    ev = res["v_gcrs_m_s"] - truth["v_gcrs_m_s"][idx]
    keep = (res["t_gps_s"] - truth["t_gps_s"][0] >= settle_s) & np.isfinite(er[:, 0])
    e6 = np.concatenate([er, ev], axis=1)[keep]
    p6 = res["cov"][keep][:, :6, :6]
    nees = np.einsum("ni,ni->n", e6, np.linalg.solve(p6, e6[..., None])[..., 0])
    return (
        float(np.sqrt(np.mean(np.sum(er[keep] ** 2, 1)))),
        float(np.sqrt(np.mean(np.sum(ev[keep] ** 2, 1)))),
        float(nees.mean()),
        float(np.mean(nees < CHI2_6_95)),
    )


#: The force model before issue 47 (EGM96 8x8, no drag scale, its DMC): the per-step CPU
#: the default model must not exceed (timed interleaved with it).
EGM96_CONFIG = oe.OrbitFilterConfig(
    gravity_degree=0,
    estimate_drag_scale=False,
    drag_scale_sigma=0.5,
    dmc_sigma_m_s2=3e-5,
    dmc_tau_s=150.0,
    init_dmc_sigma_m_s2=3e-5,
)


def bench_speed(truth, n_repeat=9):
    """{config name: (predict, update, predict + update/5) [ms]}: medians over *n_repeat*
    runs of each run's median, the default and the EGM96 model interleaved run by run (a
    loaded machine slows both alike)."""
    out = {}
    runs = {"default": oe.OrbitFilterConfig(), "egm96": EGM96_CONFIG}
    for name, p, u in (r for _ in range(n_repeat) for r in ((k, *_speed_run(truth, c)) for k, c in runs.items())):
        out.setdefault(name, []).append((p, u, p + u / 5.0))
    return {k: tuple(1e3 * float(np.median([r[i] for r in v])) for i in range(3)) for k, v in out.items()}


def _speed_run(truth, config):
    """(median predict, median update) [s] of one run of *config* over an hour of fixes."""
    fixes = sim.simulate_gps_fixes(truth, rng=np.random.default_rng(1))
    ekf = oe.OrbitEKF(config)
    ekf.initialize_from_fix(GpsFix.from_table(fixes, 0))
    tp, tu = [], []
    for i in range(1, fixes["t_gps_s"].size):
        for _ in range(5):
            t0 = time.perf_counter()
            ekf.predict(5.0)
            tp.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ekf.update_gps(GpsFix.from_table(fixes, i))  # the fix's conversion timed with it, as a processor's
        tu.append(time.perf_counter() - t0)
    return float(np.median(tp)), float(np.median(tu))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--skip-24h", action="store_true")
    ap.add_argument("--bound-seeds", type=int, default=1, help="seeds for the Bayesian bound (~40 s each)")
    ap.add_argument("--record", action="store_true", help="record the figures in bench/results (the performance page)")
    args = ap.parse_args()
    figs = []

    print("== speed (this machine) ==")
    tr = make_truth(0, hours=1.0)
    sp = bench_speed(tr)
    for name, (p, u, step) in sp.items():
        print(
            f"{name:8s} predict (5-s step): {p:.3f} ms   update: {u:.3f} ms   per 5-s step with a fix every 25 s: "
            f"{step:.4f} ms (median of 9 runs, the two models interleaved)"
        )
    (p, u, step), step0 = sp["default"], sp["egm96"][2]
    print(f"per-step CPU, default / the EGM96 8x8 model before issue 47: {step / step0:.3f}")
    figs += [
        figure("predict_ms", "one 5-s predict, median of 9 runs", p, "ms"),
        figure("update_ms", "one GPS-fix update, median of 9 runs", u, "ms"),
        figure(
            "step_cpu_ratio",
            "CPU per 5-s step (a fix every 25 s) against the EGM96 8x8 model before issue 47, timed interleaved",
            step / step0,
        ),
    ]
    if not args.skip_24h:
        t0 = time.perf_counter()
        tr24 = make_truth(0, hours=24.0)
        t_truth = time.perf_counter() - t0
        fixes = sim.simulate_gps_fixes(tr24, rng=np.random.default_rng(2))
        t_out = tr24["t_gps_s"][::5]
        t0 = time.perf_counter()
        res = ob.run_orbit_filter(fixes, t_out)
        t_f = time.perf_counter() - t0
        t0 = time.perf_counter()
        res_s = ob.run_orbit_filter(fixes, t_out, smooth=True)
        t_s = time.perf_counter() - t0
        print(
            f"24-h batch ({fixes['t_gps_s'].size} fixes, {t_out.size} 5-s outputs): filter {t_f:.2f} s, "
            f"filter+RTS smoother {t_s:.2f} s (truth generation {t_truth:.1f} s, not included)"
        )
        r, v, nees, in95 = stats(tr24, res)
        rs, vs, _, _ = stats(tr24, res_s)
        print(
            f"24-h accuracy: filtered {r:.2f} m / {1e3 * v:.1f} mm/s, NEES {nees:.2f} in95 {in95:.2f}; "
            f"smoothed {rs:.2f} m / {1e3 * vs:.1f} mm/s"
        )
        figs += [
            figure("day_filter_s", "a 24-h batch (5-s outputs): filter", t_f, "s"),
            figure("day_smoother_s", "... filter + RTS smoother", t_s, "s"),
            figure("day_pos_m", "24 h, one seed: position 3D RMS after 30 min, filtered", r, "m"),
            figure("day_smoothed_pos_m", "... smoothed", rs, "m"),
        ]

    scenarios = {
        "nominal": {},
        "5% x 1 km outliers": {"outlier_fraction": 0.05, "outlier_m": 1000.0},
        "10-min gap at 90 min": {"gaps": [(5400.0, 6000.0)]},
        "clock offset 37.6 s + 3% invalid": {"sc_minus_utc_s": 37.6, "invalid_fraction": 0.03},
    }
    keys = {
        "nominal": "nominal",
        "5% x 1 km outliers": "outliers",
        "10-min gap at 90 min": "gap",
        "clock offset 37.6 s + 3% invalid": "clock",
    }
    print(f"\n== 3-h accuracy after 30 min, {args.seeds} seeds (3D RMS; NEES over 6 pos+vel states) ==")
    truths = [make_truth(s) for s in range(args.seeds)]
    crb = []
    for name, kw in scenarios.items():
        rows, rows_s, rej = [], [], 0
        for s, tr in enumerate(truths):
            fixes = sim.simulate_gps_fixes(tr, rng=np.random.default_rng(1000 + s), **kw)
            t_out = tr["t_gps_s"][::5]
            res = ob.run_orbit_filter(fixes, t_out)
            res_s = ob.run_orbit_filter(fixes, t_out, smooth=True)
            rows.append(stats(tr, res))
            rows_s.append(stats(tr, res_s))
            rej += res["n_fixes_rejected"]
            if name == "nominal":
                crb.append(sim_bounds.orbit_bound(tr, fixes, seed=s))
        a, b = np.array(rows), np.array(rows_s)
        pos, vel = np.sqrt(np.mean(a[:, 0] ** 2)), 1e3 * np.sqrt(np.mean(a[:, 1] ** 2))
        pos_s = np.sqrt(np.mean(b[:, 0] ** 2))
        print(
            f"{name:34s} filtered pos {pos:.2f} m (worst {a[:, 0].max():.2f})  "
            f"vel {vel:.1f} mm/s  NEES {a[:, 2].mean():.2f}  in95 {a[:, 3].mean():.2f}"
            f"  | smoothed pos {pos_s:.2f} m  vel {1e3 * np.sqrt(np.mean(b[:, 1] ** 2)):.1f} mm/s"
            f"  | rejected {rej}"
        )
        k = keys[name]
        if k == "nominal":
            figs += [
                figure(
                    "nominal_pos_m",
                    f"3 h, {args.seeds} seeds: position 3D RMS after 30 min (RMS over seeds)",
                    float(pos),
                    "m",
                ),
                figure("nominal_pos_worst_m", "... worst seed", float(a[:, 0].max()), "m"),
                figure("nominal_vel_mm_s", "... velocity 3D RMS", float(vel), "mm/s"),
                figure("nominal_nees", "... NEES mean (6 dof: 6 when consistent)", float(a[:, 2].mean())),
                figure(
                    "nominal_in95",
                    "... fraction of epochs inside the 95 % NEES bound (0.95 when consistent)",
                    float(a[:, 3].mean()),
                ),
                figure("nominal_smoothed_pos_m", "... smoothed position 3D RMS", float(pos_s), "m"),
            ]
            figs += _bound_figures(crb, a, float(pos), float(vel))
        else:
            figs.append(figure(f"{k}_pos_m", f"3 h, {name}: position 3D RMS after 30 min", float(pos), "m"))

    print("\n== information floor: EKF whose dynamics ARE the truth's (truth-anchored), zero process noise ==")
    cfg0 = oe.OrbitFilterConfig(
        dmc_sigma_m_s2=1e-12,
        init_dmc_sigma_m_s2=1e-12,
        dmc_tau_s=1e6,
        estimate_drag_scale=False,
        fix_error_correlated_sigma_m=0.0,  # the fixes as these truths draw them: independent
    )
    rows, rows_s, sig = [], [], []
    orig = ob.OrbitEKF
    for s, tr in enumerate(truths):
        fixes = sim.simulate_gps_fixes(tr, rng=np.random.default_rng(1000 + s))
        ob.OrbitEKF = sim.truth_anchored_ekf(tr)
        try:
            res = ob.run_orbit_filter(fixes, tr["t_gps_s"][::5], cfg0)
            rows.append(stats(tr, res))
            rows_s.append(stats(tr, ob.run_orbit_filter(fixes, tr["t_gps_s"][::5], cfg0, smooth=True)))
        finally:
            ob.OrbitEKF = orig
        keep = res["t_gps_s"] - tr["t_gps_s"][0] >= 1800.0
        sig.append(np.mean(np.sum(res["sigma"][keep, :3] ** 2, axis=1)))
    pos, _, pos_s = _print_rows("floor (exact dynamics, Q = 0)", rows, rows_s)
    print(f"{'':34s} covariance says {math.sqrt(np.mean(sig)):.2f} m 3D (filtered)")
    figs += [
        figure("floor_pos_m", "information floor (the truth's dynamics, no process noise): position 3D RMS", pos, "m"),
        figure("floor_smoothed_pos_m", "... smoothed", pos_s, "m"),
    ]

    print(
        "\n== the realistic gap: truth with gravity cut at EGM2008 8x8 (+ drag, Sun/Moon, SRP), EGM96 8x8, DMC 1e-6 =="
    )
    cfg1 = oe.OrbitFilterConfig(
        dmc_sigma_m_s2=1e-6,
        init_dmc_sigma_m_s2=1e-6,
        dmc_tau_s=600.0,
        gravity_degree=0,
        estimate_drag_scale=False,
        fix_error_correlated_sigma_m=0.0,
    )
    rows, rows_s = [], []
    for s in range(args.seeds):
        tr = make_truth(s, gravity_degree=8)
        fixes = sim.simulate_gps_fixes(tr, rng=np.random.default_rng(1000 + s))
        rows.append(stats(tr, ob.run_orbit_filter(fixes, tr["t_gps_s"][::5], cfg1)))
        rows_s.append(stats(tr, ob.run_orbit_filter(fixes, tr["t_gps_s"][::5], cfg1, smooth=True)))
    pos, _, _ = _print_rows("8x8 truth, flight filter", rows, rows_s)
    figs.append(
        figure(
            "truth_8x8_pos_m",
            "the EGM96 8x8 filter (DMC 1e-6) on a truth with gravity cut at 8x8: position 3D RMS",
            pos,
            "m",
        )
    )

    print("\n== fixes with a slowly varying error (a receiver's ionosphere and ephemeris), ok rows after 30 min ==")
    independent = oe.OrbitFilterConfig(fix_error_correlated_sigma_m=0.0)
    for tag, period_s, corr_m, corr_s in (("gm7_25s", 25.0, 7.0, 1800.0), ("gm3_1s", 1.0, 3.0, 600.0)):
        for ctag, cfg in (("flight", None), ("independent", independent)):
            n_ok = n_past = 0
            se = 0.0
            for s, tr in enumerate(truths):
                kw = {"period_s": period_s, "correlated_sigma_m": corr_m, "correlation_s": corr_s}
                fixes = sim.simulate_gps_fixes(tr, rng=np.random.default_rng(1000 + s), **kw)
                res = ob.run_orbit_processor(fixes, tr["t_gps_s"][::5], cfg)
                k, e, nees = _ok_nees3(tr, res)
                n_ok += int(k.sum())
                n_past += int(np.sum(nees[k] > NEES3_999))
                se += float(np.sum(e[k] ** 2))
            rms = math.sqrt(se / max(n_ok, 1))
            print(
                f"{corr_m:.0f} m of 10 over {corr_s / 60:.0f} min, fixes every {period_s:.0f} s, {ctag:11s}: "
                f"position 3D RMS {rms:.2f} m, ok rows past the 99.9 % NEES bound {100 * n_past / max(n_ok, 1):.1f} %"
            )
            figs += [
                figure(
                    f"{tag}_{ctag}_pos_m",
                    f"{corr_m:.0f} m of 10 correlated over {corr_s / 60:.0f} min, "
                    f"{period_s:.0f}-s fixes, {ctag}: position 3D RMS",
                    rms,
                    "m",
                ),
                figure(
                    f"{tag}_{ctag}_past_pct", "... ok rows past the 99.9 % NEES bound", 100 * n_past / max(n_ok, 1), "%"
                ),
            ]

    if args.bound_seeds:
        print(f"\n== Bayesian bound, {args.bound_seeds} seed(s): optimal filter that knows the form of degrees 9-12 ==")
        print("   (88 unknown EGM96 coefficients with the per-degree RMS as prior, estimated as states; slow)")
        print("   (on the in-house EGM96 12x12 truth, whose unmodelled field is exactly those coefficients)")
        bounds = []
        for s in range(args.bound_seeds):
            tr = make_truth(s, in_house=True)
            b = bayesian_bound(tr, sim.simulate_gps_fixes(tr, rng=np.random.default_rng(1000 + s)))
            bounds.append(b)
            print(
                f"seed {s}: filtered {b[0]:.2f} m expected (this realisation {b[1]:.2f} m), smoothed {b[2]:.2f} m "
                f"expected; velocity {b[3]:.1f} / {b[4]:.1f} mm/s"
            )
        figs += [
            figure(
                "bound_pos_m",
                f"Bayesian bound (knows the form of degrees 9-12), {args.bound_seeds} seed(s): "
                "expected position 3D RMS, filtered (median)",
                float(np.median([b[0] for b in bounds])),
                "m",
            ),
            figure("bound_smoothed_pos_m", "... smoothed", float(np.median([b[2] for b in bounds])), "m"),
        ]
    if args.record:
        record(
            "orbit",
            f"Orbit EKF: speed and 3-h accuracy on {args.seeds} seeded scenarios",
            figs,
            notes=(
                "500 km, i = 97.4 deg; truth from brahe (EGM2008 40x40, NRLMSISE-00 drag, Sun/Moon, SRP); the flight "
                "filter's field EGM2008 34x34 with an estimated drag scale; GPS fixes "
                "10 m / 0.01 m/s per ECEF axis every 25 s; statistics after the first 30 min on the 5-s output grid "
                "(the ground batch driver of the flight EKF)."
            ),
        )


#: The 99.9 % quantile of chi-square with 3 degrees of freedom (a position's NEES).
NEES3_999 = chi2.quantile(0.999, 3)


def _ok_nees3(tr, res):
    """(ok rows after 30 min, their position errors, position NEES) of a processor run."""
    idx = np.searchsorted(tr["t_gps_s"], res["t_gps_s"])
    e = res["r_gcrs_m"] - tr["r_gcrs_m"][idx]
    keep = (res["quality"] == "ok") & (res["t_gps_s"] - tr["t_gps_s"][0] >= 1800.0)
    p3 = res["cov"][:, :3, :3]
    nees = np.full(len(e), np.nan)
    nees[keep] = np.einsum("ni,ni->n", e[keep], np.linalg.solve(p3[keep], e[keep][..., None])[..., 0])
    return keep, e, nees


def _bound_figures(crb, a, pos, vel):
    """Print the nominal seeds' information bounds beside the filter (rows *a* of
    :func:`stats`; *pos* [m] and *vel* [mm/s] their RMS over seeds); their figures."""

    def rms(key, scale=1.0):
        return scale * float(np.sqrt(np.mean([b[key] ** 2 for b in crb])))

    print(
        "\n   information bound (ground.simulate.bounds.orbit_bound: the truth's dynamics, drag scale +-1, SRP +-0.3):"
    )
    for s, b in enumerate(crb):
        print(
            f"   seed {s}: filter {a[s, 0]:.2f} m / {1e3 * a[s, 1]:.1f} mm/s; bound {b['expected_pos_m']:.2f} m / "
            f"{1e3 * b['expected_vel_m_s']:.1f} mm/s expected, {b['realised_pos_m']:.2f} m / "
            f"{1e3 * b['realised_vel_m_s']:.1f} mm/s on this data (NEES {np.mean(b['nees']):.2f})"
        )
    bp, bv = rms("expected_pos_m"), rms("expected_vel_m_s", 1e3)
    print(
        f"   over seeds: bound {bp:.2f} m / {bv:.1f} mm/s (realised {rms('realised_pos_m'):.2f} m / "
        f"{rms('realised_vel_m_s', 1e3):.1f} mm/s); filter/bound {pos / bp:.2f} (position), {vel / bv:.2f} (velocity)"
    )
    return [
        figure(
            "crb_pos_m",
            "information bound (the truth's dynamics, unknown drag and SRP scales): expected position 3D RMS",
            bp,
            "m",
        ),
        figure("crb_realised_pos_m", "... its error on the same fixes (RMS over seeds)", rms("realised_pos_m"), "m"),
        figure("crb_vel_mm_s", "... expected velocity 3D RMS", bv, "mm/s"),
        figure("crb_ratio_pos", "filter / bound: position", pos / bp),
        figure("crb_ratio_vel", "filter / bound: velocity", vel / bv),
    ]


def _print_rows(name, rows, rows_s):
    """Print a summary row; returns (filtered position, velocity (mm/s), smoothed position) 3D RMS."""
    a, b = np.array(rows), np.array(rows_s)
    pos, vel, pos_s = (
        float(np.sqrt(np.mean(a[:, 0] ** 2))),
        float(1e3 * np.sqrt(np.mean(a[:, 1] ** 2))),
        float(np.sqrt(np.mean(b[:, 0] ** 2))),
    )
    print(
        f"{name:34s} filtered pos {pos:.2f} m  vel "
        f"{vel:.1f} mm/s  NEES {a[:, 2].mean():.2f}  in95 {a[:, 3].mean():.2f}  | "
        f"smoothed pos {pos_s:.2f} m  vel {1e3 * np.sqrt(np.mean(b[:, 1] ** 2)):.1f} mm/s"
    )
    return pos, vel, pos_s


def bayesian_bound(truth, fixes, step_s=5.0, settle_s=1800.0, nmin=9, nmax=12):
    """Linear MMSE filter + RTS smoother on [dr, dv, the EGM96 coefficients of degrees nmin..nmax].

    The coefficients are unknown constants with prior N(0, rms_n^2), rms_n the RMS of the
    normalised coefficients of degree n (a degree-variance, Kaula-type prior); the
    dynamics are otherwise exact.  No filter that does not know those coefficients can do
    better on average.  Returns (filtered expected 3D RMS [m], filtered error of this
    realisation [m], smoothed expected [m], filtered / smoothed expected velocity [mm/s]),
    all after *settle_s*.
    """
    coefs = []
    for n, m, c, s in sim.EGM96_NORMALIZED:
        if nmin <= n <= nmax:
            coefs.append((n, m, 0, c))
            if m:
                coefs.append((n, m, 1, s))
    rms = {n: math.sqrt(np.mean([q[3] ** 2 for q in coefs if q[0] == n])) for n in range(nmin, nmax + 1)}
    p_true = np.array([q[3] for q in coefs])
    nst = 6 + len(coefs)
    unit_tables = []
    for n, m, kind, _ in coefs:
        c = [[0.0] * (nmax + 1) for _ in range(nmax + 1)]
        s = [[0.0] * (nmax + 1) for _ in range(nmax + 1)]
        (c if kind == 0 else s)[n][m] = math.sqrt(
            (2.0 if m else 1.0) * (2 * n + 1) * math.factorial(n - m) / math.factorial(n + m)
        )
        unit_tables.append((c, s))
    t0 = truth["t_gps_s"][0]
    k_step = int(step_s)
    times = truth["t_gps_s"][::k_step]
    xt = np.concatenate([truth["r_gcrs_m"], truth["v_gcrs_m_s"]], axis=1)
    basis = []
    for t, r in zip(times, truth["r_gcrs_m"][::k_step]):
        mat = frames.gcrs_from_itrs_matrix(t)
        ri = mat.T @ r
        basis.append(
            mat @ np.column_stack([sim.spherical_harmonic_acceleration_itrs(ri, nmax, tb) for tb in unit_tables])
        )
    model = od.DynamicsModel(zonal_j=od.ZONAL_J_EGM96, ballistic_coeff_kg_m2=None, tesseral_degree=8, dmc_tau_s=1e9)
    fix_at = {int(round(t - t0)): i for i, t in enumerate(fixes["t_gps_s"])}

    def meas(i):  # the fix with its reported sigmas, squared as the table holds them (float32)
        return fix_to_gcrs(GpsFix.from_table(fixes, i), fixes["pos_sigma_m"][i], fixes["vel_sigma_m_s"][i])

    z, r_cov = meas(fix_at[0])
    p = np.zeros((nst, nst))
    p[:6, :6] = r_cov
    p[6:, 6:] = np.diag([rms[q[0]] ** 2 for q in coefs])
    e = np.concatenate([z - xt[0], -p_true])
    hist, f_sig, f_err = [], [], []
    for k in range(1, len(times)):
        h = times[k] - times[k - 1]
        _, phi = od.propagate(
            np.concatenate([xt[int(round(times[k - 1] - t0))], np.zeros(3)]), h, model, t_gps_s=times[k - 1]
        )
        f = np.eye(nst)
        f[:6, :6] = phi[:6, :6]
        bm = 0.5 * (basis[k - 1] + basis[k])
        f[:3, 6:] = 0.5 * h * h * bm
        f[3:6, 6:] = h * bm
        p = f @ p @ f.T
        e = f @ e
        p_pred = p.copy()
        rel = int(round(times[k] - t0))
        if rel in fix_at:
            z, r_cov = meas(fix_at[rel])
            gain = np.linalg.solve(p[:6, :6] + r_cov, p[:6, :]).T
            ikh = np.eye(nst)
            ikh[:, :6] -= gain
            p = ikh @ p @ ikh.T + gain @ r_cov @ gain.T
            p = 0.5 * (p + p.T)
            e = ikh @ e + gain @ (z - xt[rel])
        hist.append((f, p_pred, p.copy(), rel))
        if rel >= settle_s:
            f_sig.append(np.trace(p[:3, :3]))
            f_err.append(np.sum(e[:3] ** 2))
    ps = hist[-1][2]
    s_sig, s_vel, f_vel = [], [], []
    for k in range(len(hist) - 2, -1, -1):
        f1, pp1 = hist[k + 1][0], hist[k + 1][1]
        _, _, pk, rel = hist[k]
        c = np.linalg.solve(pp1, f1 @ pk).T
        ps = pk + c @ (ps - pp1) @ c.T
        if rel >= settle_s:
            s_sig.append(np.trace(ps[:3, :3]))
            s_vel.append(np.trace(ps[3:6, 3:6]))
            f_vel.append(np.trace(pk[3:6, 3:6]))
    return (
        math.sqrt(np.mean(f_sig)),
        math.sqrt(np.mean(f_err)),
        math.sqrt(np.mean(s_sig)),
        1e3 * math.sqrt(np.mean(f_vel)),
        1e3 * math.sqrt(np.mean(s_vel)),
    )


if __name__ == "__main__":
    main()
