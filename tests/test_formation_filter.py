"""Formation filter on seeded two-spacecraft truth, and its algebra against filterpy.

The accuracy figures are the flight processor's estimates: FormationProcessor run over the
scenario's arrays (:func:`formation_batch.run_formation_processor`), an estimate at
every output time as at sensor samples.

Scenarios: the simulator's formation geometry (ground.simulate.simulator.deputy_elements: 500 km SSO,
peer ~3 km behind with 400-m radial / 600-m cross-track oscillations, or 10 km behind),
truth from ground.simulate.orbits (EGM96 12x12, bulge drag with a per-spacecraft seeded density
factor, Sun/Moon, SRP; ballistic coefficients 50 and 42 kg/m^2 while the filter assumes 50
for both), GPS 10 m / 0.01 m/s per axis every 25 s for each receiver (independent), one or
two ranges 0.5-4 s after each fix pair with sigma 0.5 m and a 1-m bias, time-tagged 0.1 s
late (what the simulator's clock chain leaves once the whole-second clock map is applied:
-0.13..+0.42 s on the formation bench's scenarios, mean 0.10; the filter's prior is 0 +- 0.4
s); 3 h (each ~0.5 s truth + ~0.6 s filter).  A lateness far from the prior: its own test.

The issue's targets after 30 min: 2.0 m 3D (met on every seed: asserted on the declared
set ``SEEDS``) and 0.5 m along the line of sight, which **no estimator meets on every run**
with these measurements.  The information bound (``bench/bench_formation.py``:
``information_bound``, the optimal filter when both orbits' dynamics are the truth's, no
process noise, the flight filter's priors): a constant range bias and the mean along-track
separation are degenerate for ranges (the formation's 400/600-m oscillation at 3 km adds
no measurable range-curvature information), so the line of sight is as good as the GPS
fixes' average of the peer's along-track position, 10 m / sqrt(n): bias sigma 1.05 m at 30
min, 0.45 m at 3 h, line-of-sight sigma 0.69 m RMS over the run.  The per-run RMS is then
a one-draw quantity: over 300 noise draws its median is 0.48 m, its 90 % point 0.94 m, and
it is <= 0.5 m in 53 % of runs (checked against 24 simulated realisations: median 0.48,
54 %).  On ``SEEDS`` the bound is 0.31 0.35 0.51 0.59 0.58 0.39 0.29 0.51 m (median 0.45,
worst 0.59) and the filter 0.37 0.37 0.45 0.58 0.57 0.42 0.27 0.50 m: it sits on the
bound (24 realisations: within 0.045 m of it on every run, RMS over runs 0.634 vs 0.632
m), so the line-of-sight assertions are the achieved figures, not the issue's 0.5 m.
"""

import copy
import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from covariance_checks import assert_symmetric_positive_definite
from formation_batch import run_formation_processor

from ground.simulate import orbits as sim
from ground.simulate import scenario as scn
from ground.simulate.sensors import hermite_position
from ground.simulate.simulator import deputy_elements
from pygnc import timebase
from pygnc.estimation import chi2
from pygnc.estimation import formation_filter as ff
from pygnc.estimation import orbit_dynamics as od
from pygnc.estimation.gps_fix import GpsFix
from pygnc.estimation.tunables import RangeOnlyConfig
from pygnc.processors.formation_peer import range_only_filter_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_formation as bench  # the information bound (bench/ is not a package)

SETTLE_S = 1800.0
#: The declared seed set of the 3-km accuracy statistics (all of them, none dropped).
SEEDS = (1, 2, 3, 4, 5, 6, 7, 8)
CHI2_3_95 = chi2.quantile(0.95, 3)
LATE_S = 0.1


def _truth(seed, hours=3.0, dlambda_m=-3000.0, tweak=None, **truth_kw):
    """Truth of the simulator's default pair (own, peer) with a seeded orbit plane and start
    (*tweak*: changes the scenario settings first)."""
    rng = np.random.default_rng(seed)
    s = scn.ScenarioSettings()
    if tweak is not None:
        tweak(s)
    s.orbit.raan_deg = float(rng.uniform(0, 360))
    s.orbit.true_anomaly_deg = float(rng.uniform(0, 360))
    s.spacecraft[1].dlambda_m = dlambda_m
    t0 = math.floor(timebase.gps_from_utc_unix(1.74e9 + rng.uniform(0, 3e6)))
    truth = []
    for k, sc in enumerate(s.spacecraft):
        r0, v0 = sim.initial_state_from_elements(*deputy_elements(s.orbit, sc))
        truth.append(
            sim.propagate_truth(
                r0,
                v0,
                t0,
                hours * 3600.0,
                ballistic_coeff_kg_m2=sc.ballistic_coeff_kg_m2,
                seed=seed * 10 + k,
                **truth_kw,
            )
        )
    return truth


def _measure(truth, seed, bias_m=1.0, range_outliers=0.0, peer_outliers=0.0, bias_jump=None):
    """GPS fixes of both receivers and ranges (tags LATE_S late) from *truth*."""
    rng = np.random.default_rng(seed + 3000)
    own = sim.simulate_gps_fixes(truth[0], rng=np.random.default_rng(seed + 1000))
    peer, flags = sim.simulate_gps_fixes(
        truth[1], rng=np.random.default_rng(seed + 2000), outlier_fraction=peer_outliers, with_flags=True
    )
    t_fix = own["t_gps_s"]
    t0 = truth[0]["t_gps_s"][0]
    n_r = np.where(rng.random(t_fix.size) < 0.5, 2, 1)
    t_meas = np.concatenate([t + rng.uniform(0.5, 3.0) + np.arange(n) for t, n in zip(t_fix, n_r)])
    t_meas = t_meas[t_meas < truth[0]["t_gps_s"][-1]]
    tt = truth[0]["t_gps_s"]
    true_range = np.linalg.norm(
        hermite_position(tt, truth[1]["r_gcrs_m"], truth[1]["v_gcrs_m_s"], t_meas)
        - hermite_position(tt, truth[0]["r_gcrs_m"], truth[0]["v_gcrs_m_s"], t_meas),
        axis=1,
    )
    bias = np.full(t_meas.size, bias_m)
    if bias_jump is not None:
        bias[t_meas - t0 >= bias_jump[0]] += bias_jump[1]
    meas = true_range + bias + 0.5 * rng.standard_normal(t_meas.size)
    outlier = rng.random(t_meas.size) < range_outliers
    meas[outlier] += rng.choice([-1.0, 1.0], outlier.sum()) * rng.uniform(50.0, 500.0, outlier.sum())
    ranges = {"t_gps_s": t_meas + LATE_S, "range_m": meas}
    return {
        "truth": truth,
        "own": own,
        "peer": peer,
        "peer_outlier": flags["outlier"],
        "ranges": ranges,
        "range_outlier": outlier,
        "t0": t0,
    }


def _scenario(seed, hours=3.0, dlambda_m=-3000.0, tweak=None, **kw):
    return _measure(_truth(seed, hours, dlambda_m, tweak), seed, **kw)


def _truth_rel(sc, t):
    tt = sc["truth"][0]["t_gps_s"]
    r = [hermite_position(tt, x["r_gcrs_m"], x["v_gcrs_m_s"], t) for x in sc["truth"]]
    v = [np.stack([np.interp(t, tt, x["v_gcrs_m_s"][:, k]) for k in range(3)], 1) for x in sc["truth"]]
    return r[1] - r[0], v[1] - v[0], r[0], v[0]


def _errors(sc, res, settle_s=SETTLE_S):
    t = res["t_gps_s"]
    dr, dv, _, _ = _truth_rel(sc, t)
    keep = (t - sc["t0"] >= settle_s) & np.isfinite(res["dr_gcrs_m"][:, 0])
    er = (res["dr_gcrs_m"] - dr)[keep]
    ev = (res["dv_gcrs_m_s"] - dv)[keep]
    u = dr[keep] / np.linalg.norm(dr[keep], axis=1)[:, None]
    p3 = res["cov_rel"][keep][:, :3, :3]
    nees = np.einsum("ni,ni->n", er, np.linalg.solve(p3, er[..., None])[..., 0])
    los = np.einsum("ni,ni->n", er, u)
    sig_los = np.sqrt(np.einsum("ni,nij,nj->n", u, p3, u))
    return {
        "rms_r": float(np.sqrt(np.mean(np.sum(er**2, 1)))),
        "rms_v": float(np.sqrt(np.mean(np.sum(ev**2, 1)))),
        "rms_los": float(np.sqrt(np.mean(los**2))),
        "los_z_rms": float(np.sqrt(np.mean((los / sig_los) ** 2))),
        "nees": nees,
        "err": np.linalg.norm(er, axis=1),
        "keep": keep,
    }


def _run(sc, config=None, step_s=5.0):
    """The flight processor's estimates every *step_s* (sensor samples)."""
    t_out = np.arange(sc["t0"] + 3.0, sc["truth"][0]["t_gps_s"][-1], step_s)
    return run_formation_processor(sc["own"], sc["peer"], sc["ranges"], t_out, config)


@pytest.fixture(scope="module")
def seed_set():
    """SEEDS: 3-km scenarios (seeded orbit plane, phase, epoch and noise), outputs every 25 s."""
    out = []
    for seed in SEEDS:
        sc = _scenario(seed)
        out.append((sc, _run(sc, step_s=25.0)))
    return out


@pytest.fixture(scope="module")
def near(seed_set):
    """The first of SEEDS."""
    return seed_set[0]


def test_accuracy_and_consistency_3km(near):
    sc, res = near
    e = _errors(sc, res)
    differenced = np.linalg.norm(
        sc["peer"]["pos_ecef_m"]
        - sc["own"]["pos_ecef_m"]
        - (
            sim.simulate_gps_fixes(sc["truth"][1], pos_sigma_m=0, vel_sigma_m_s=0)["pos_ecef_m"]
            - sim.simulate_gps_fixes(sc["truth"][0], pos_sigma_m=0, vel_sigma_m_s=0)["pos_ecef_m"]
        ),
        axis=1,
    )
    assert 20.0 < np.sqrt(np.mean(differenced**2)) < 28.0  # what differencing the fixes gives (~24 m)
    assert e["rms_r"] < 2.0  # measured 0.74 m
    assert e["rms_los"] < 0.45  # measured 0.37 m; the information bound on these data 0.31 m
    assert e["rms_v"] < 0.003  # measured 0.9 mm/s
    # One run's time-averaged NEES is dominated by a few slowly varying errors (the range
    # bias above all), so only a loose check here; test_nees_monte_carlo is the real one.
    assert 0.7 < e["nees"].mean() < 5.0  # measured 1.73 (3 dof)
    assert np.mean(e["nees"] < CHI2_3_95) > 0.9
    assert 0.2 < e["los_z_rms"] < 1.5  # measured 0.61
    assert res["n_own_rejected"] == res["n_peer_rejected"] == res["n_ranges_rejected"] == 0
    # The first range waits for a second that agrees (here the second fix pair moved the
    # line of sight between the first two, so the second waited too); all others are used.
    assert 1 <= res["n_ranges_held"] <= 2  # measured 2
    assert res["n_ranges_used"] == sc["ranges"]["t_gps_s"].size - res["n_ranges_held"]
    # The range bias (true 1 m) and the time-tag lateness (true 0.1 s) within 3 sigma.
    x, p = res["x_end"], res["p_end"]
    assert abs(x[ff.I_RANGE_BIAS] - 1.0) < 3.0 * math.sqrt(p[ff.I_RANGE_BIAS, ff.I_RANGE_BIAS]) < 1.5
    assert abs(x[ff.I_RANGE_DT] - LATE_S) < 3.0 * math.sqrt(p[ff.I_RANGE_DT, ff.I_RANGE_DT])


def test_accuracy_10km():
    sc = _scenario(14, dlambda_m=-10_000.0)
    e = _errors(sc, _run(sc, step_s=25.0))
    assert e["rms_r"] < 2.0  # measured 0.98 m
    assert e["rms_los"] < 0.42  # measured 0.36 m; the information bound on these data 0.33 m
    assert e["rms_v"] < 0.003  # measured 1.3 mm/s
    assert 0.7 < e["nees"].mean() < 5.0  # measured 1.3


def test_accuracy_over_declared_seeds(seed_set):
    """3D: the issue's 2.0 m on every seed.  Line of sight: median and worst of the
    declared set at the achieved figures (the issue's 0.5 m is met on 5 of the 8, as
    the information bound is on these data; see the module docstring)."""
    e = [_errors(sc, res) for sc, res in seed_set]
    r3 = np.array([x["rms_r"] for x in e])
    los = np.array([x["rms_los"] for x in e])
    assert r3.max() < 2.0  # measured worst 1.36 m, median 0.91 m
    assert np.median(los) < 0.5  # measured 0.44 m (bound 0.45 m)
    assert los.max() < 0.66  # measured 0.58 m (bound 0.59 m)
    assert np.all([x["rms_v"] < 0.003 for x in e])
    nees = np.array([x["nees"].mean() for x in e])
    assert 1.0 < nees.mean() < 3.5  # measured 1.8 (3 dof; the conservative differential acceleration)


def _low_and_unequal(s):
    """400 km up, ballistic coefficients 35 and 65 kg/m^2: a relative drag of ~1e-6 m/s^2."""
    s.orbit.semi_major_axis_m = 6_778_137.0
    s.spacecraft[0].ballistic_coeff_kg_m2 = 35.0
    s.spacecraft[1].ballistic_coeff_kg_m2 = 65.0


@pytest.mark.parametrize("seed", [4, 9])
def test_consistent_where_the_relative_drag_is_large(seed):
    """Beyond the tuned scenarios: low and with very different ballistic coefficients the
    differential acceleration grows with the relative drag the filter estimates, so the
    sigma still covers the error (the exponential atmosphere with the old fixed 2e-7 m/s^2 on
    the same data: NEES mean 2.21 and 7.07, inside the 95 % bound 100 % and 58 % of the time)."""
    sc = _scenario(seed, tweak=_low_and_unequal)
    e = _errors(sc, _run(sc, step_s=25.0))
    assert e["rms_r"] < 2.5  # measured 1.07 m (seed 4), 1.77 m (seed 9)
    assert e["nees"].mean() < 3.5  # measured 1.58, 2.66
    assert np.mean(e["nees"] < CHI2_3_95) > 0.85  # measured 1.00, 0.91


def _bound_on_the_same_data(sc, res, late_s: float) -> dict:
    """The information bound's statistics (bench_formation.bound_stats) on scenario *sc*'s own
    measurement errors (range tags *late_s* late, bias 1 m), with the flight filter's priors,
    at *res*'s output times."""
    tr = sc["truth"]
    resid = bench.bound_residuals(tr[0], tr[1], sc["own"], sc["peer"], sc["ranges"], 1.0, late_s)
    b = bench.information_bound(
        tr[0],
        tr[1],
        sc["own"]["t_gps_s"],
        sc["peer"]["t_gps_s"],
        sc["ranges"]["t_gps_s"],
        res["t_gps_s"],
        lateness_s=late_s,
        residuals=resid,
        lateness_error_s=ff.FormationFilterConfig().range_time_offset_s - late_s,
    )
    return bench.bound_stats(res["t_gps_s"], sc["t0"], b)


def test_line_of_sight_at_the_information_bound(seed_set):
    """The filter against the optimal filter with the truth's dynamics on the same data
    (seed 1): the line of sight within a few centimetres of the bound, 3D within 80 %
    (the truth's differential accelerations - brahe's NRLMSISE-00 drag on two ballistic
    coefficients, EGM2008 beyond 8x8 - are real; the bound ignores them);
    and the bound's own physics: the bias sigma is the GPS average of the along-track
    position, 10 m / sqrt(n) (~1.1 m at 30 min, ~0.45 m at 3 h)."""
    sc, res = seed_set[0]
    s = _bound_on_the_same_data(sc, res, LATE_S)
    e = _errors(sc, res)
    assert e["rms_los"] - s["los"][0] < 0.08  # measured 0.374 vs 0.305 m
    # Measured 0.73 vs 0.48 m (1.55x; in-house truth: 0.67 m, 1.4x); 1.8x leaves ~15 %
    # for tuning changes, far below what a broken relative model costs (> 3x).
    assert e["rms_r"] < 1.8 * s["rms3"][0]
    assert 0.95 < s["sig_bias_30"] < 1.15 and 0.40 < s["sig_bias_end"] < 0.50  # 1.04, 0.45 m
    assert 0.6 < s["sig_los"] < 0.8  # 0.68 m: the expected LOS RMS of any filter
    n_fix = np.sum(sc["peer"]["t_gps_s"] <= sc["t0"] + SETTLE_S)
    assert s["sig_bias_30"] == pytest.approx(10.0 / math.sqrt(n_fix), rel=0.15)


def test_a_lateness_far_from_its_prior_stays_consistent(monkeypatch):
    """Range tags 0.6 s late, 1.5 sigma from the filter's prior (0 +- 0.4 s): the lateness is
    weakly observable (the estimate moves a third of the way), so the line of sight pays a
    little - and the published sigma still covers the error."""
    monkeypatch.setattr(sys.modules[__name__], "LATE_S", 0.6)
    sc = _scenario(1)
    res = _run(sc, step_s=25.0)
    e = _errors(sc, res)
    s = _bound_on_the_same_data(sc, res, 0.6)
    assert e["rms_los"] - s["los"][0] < 0.15  # measured 0.50 vs 0.42 m (0.37 vs 0.31 at 0.1 s)
    assert e["rms_r"] < 1.0  # measured 0.79 m
    assert e["nees"].mean() < 3.0 and np.mean(e["nees"] < CHI2_3_95) > 0.95  # measured 1.91, 0.994
    x, p = res["x_end"], res["p_end"]
    assert abs(x[ff.I_RANGE_DT] - 0.6) < 3.0 * math.sqrt(p[ff.I_RANGE_DT, ff.I_RANGE_DT])  # 0.33 +- 0.35


def test_nees_monte_carlo():
    """Consistency proper: one realistic truth (75 min), 12 independent realisations of
    both receivers' noise and the ranges; NEES of the relative position and velocity at
    the end, pooled.  Bounds: the two-sided 95 % interval of the mean of 12 chi-square
    variables above, room below for the deliberately conservative tuning."""
    truth = _truth(30, hours=1.25)
    t_end = truth[0]["t_gps_s"][-1] - 2.0
    n3, n6, los_z = [], [], []
    for k in range(12):
        sc = _measure(truth, 100 + k)
        res = run_formation_processor(sc["own"], sc["peer"], sc["ranges"], np.array([t_end]))
        dr, dv, _, _ = _truth_rel(sc, np.array([t_end]))
        e6 = np.concatenate([res["dr_gcrs_m"][0] - dr[0], res["dv_gcrs_m_s"][0] - dv[0]])
        p6 = res["cov_rel"][0]
        n6.append(e6 @ np.linalg.solve(p6, e6))
        n3.append(e6[:3] @ np.linalg.solve(p6[:3, :3], e6[:3]))
        u = dr[0] / np.linalg.norm(dr[0])
        los_z.append((u @ e6[:3]) / math.sqrt(u @ p6[:3, :3] @ u))
    assert 1.2 < np.mean(n3) < chi2.quantile(0.975, 36) / 12  # measured 2.1 (3 dof)
    assert 2.5 < np.mean(n6) < chi2.quantile(0.975, 72) / 12  # measured 3.6 (6 dof)
    assert 0.4 < math.sqrt(np.mean(np.square(los_z))) < 1.5  # measured 1.06


def test_covariance_symmetric_positive_definite(near):
    _, res = near
    c = res["cov_rel"][np.isfinite(res["cov_rel"][:, 0, 0])]
    assert len(c) > 400
    assert_symmetric_positive_definite(c, min_eig=1e-9)  # every published covariance
    # Every state of the filter after each message that changed it, the nearly unobservable range-time offset and
    # drag scale included; the bound is far below the smallest correlation eigenvalue
    # measured (printed on failure).
    assert len(res["p_filter"]) > 800  # (431 own fixes, ~650 ranges: most make a new covariance)
    assert_symmetric_positive_definite(res["p_filter"], min_eig=1e-9)


def test_relative_far_better_than_independent_information():
    """The point of the common/differential split: with the differential acceleration
    allowed to be as large as the common one, the relative state forgets as fast as an
    absolute orbit filter, and the error grows."""
    sc = _scenario(13, hours=1.5)
    good = _errors(sc, _run(sc, step_s=25.0))
    o = ff.FormationFilterConfig()
    loose = ff.FormationFilterConfig(diff_dmc_sigma_m_s2=o.own_dmc_sigma_m_s2, diff_dmc_tau_s=o.own_dmc_tau_s)
    bad = _errors(sc, _run(sc, loose, step_s=25.0))
    assert good["rms_r"] < 2.0 and bad["rms_r"] > 1.5 * good["rms_r"]


def test_outliers_rejected_and_counted():
    sc = _scenario(14, hours=1.5, range_outliers=0.05, peer_outliers=0.05)
    res = _run(sc, step_s=25.0)
    n_po, n_ro = int(sc["peer_outlier"].sum()), int(sc["range_outlier"].sum())
    assert n_po >= 5 and n_ro >= 10
    # The first peer fix is an outlier here: the filter starts from it, rejects the next
    # two (good) fixes, re-initialises, and then rejects every 1-km outlier and nothing else.
    assert sc["peer_outlier"][0]
    assert res["n_reinit"] == 1
    assert res["n_peer_rejected"] == (n_po - 1) + 2
    # The 50-500 m range outliers (a held one is not counted), plus the few good ranges
    # that met the bad initial state before the re-initialisation.
    assert n_ro - 1 <= res["n_ranges_rejected"] <= n_ro + 4
    assert res["n_bias_resets"] == 0
    e = _errors(sc, res)
    assert e["rms_r"] < 2.0 and e["rms_los"] < 0.6


def test_range_bias_jump_is_reacquired():
    """The radio's bias jumps by 20 m after 1 h: the ranges are rejected until the bias
    is re-opened, then the line of sight is good again."""
    sc = _scenario(15, hours=2.5, bias_jump=(3600.0, 20.0))
    res = _run(sc, step_s=25.0)
    assert res["n_bias_resets"] == 1
    assert res["n_ranges_rejected"] == ff.FormationFilterConfig().max_consecutive_range_rejections
    x, p = res["x_end"], res["p_end"]
    assert abs(x[ff.I_RANGE_BIAS] - 21.0) < 3.0 * math.sqrt(p[ff.I_RANGE_BIAS, ff.I_RANGE_BIAS])
    e = _errors(sc, res, settle_s=6000.0)
    assert e["rms_r"] < 2.0 and e["rms_los"] < 1.0


def test_initialisation_from_fixes_at_different_times():
    """Own fix 20 s before the peer fix: the own fix is propagated; the initial relative
    error is consistent with the initial covariance (R_own + R_peer)."""
    sc = _scenario(16, hours=0.2)
    own = sc["own"]
    f = ff.FormationFilter()
    f.initialize_from_fixes(GpsFix.from_table(own, 0), _peer_fix_at(sc, own["t_gps_s"][0] + 20.0))
    assert f.t_gps_s == own["t_gps_s"][0] + 20.0
    dr, dv, _, _ = _truth_rel(sc, np.array([f.t_gps_s]))
    e = np.concatenate([f.x[ff.I_DR] - dr[0], f.x[ff.I_DV] - dv[0]])
    p = f.p[9:15, 9:15]
    assert float(e @ np.linalg.solve(p, e)) < 22.5  # chi-square 6 dof, 99.9 %
    assert np.all(np.sqrt(np.diag(p))[:3] > 14.0)  # two 10-m receivers


def _peer_fix_at(sc, t):
    """A noisy peer fix at GPS time t (between truth samples)."""
    tr = sc["truth"][1]
    i = round(t - tr["t_gps_s"][0])
    rng = np.random.default_rng(5)
    return GpsFix(
        t,
        tr["r_ecef_m"][i] + 10.0 * rng.standard_normal(3),
        tr["v_ecef_m_s"][i] + 0.01 * rng.standard_normal(3),
        np.full(3, 10.0),
        np.full(3, 0.01),
    )


def test_reinitialises_after_persistent_rejections():
    """A peer fix 5 km wrong starts the filter: the good fixes after it are rejected, then
    the filter re-initialises from the next pair (after 2 rejections, as it had just
    started; later it takes max_consecutive_rejections)."""
    sc = _scenario(17, hours=0.5)
    sc["peer"]["pos_ecef_m"][0] += np.array([5000.0, 0.0, 0.0])
    res = _run(sc, step_s=25.0)
    assert res["n_reinit"] == 1 and res["n_peer_rejected"] == 2  # 2 in a row right after init
    assert np.linalg.norm(res["dr_gcrs_m"][-1] - _truth_rel(sc, res["t_gps_s"][-1:])[0][0]) < 15.0


@pytest.mark.parametrize("receiver", ["own", "peer"])
def test_a_start_on_an_outlier_is_never_ok(receiver):
    """A start on a pair of fixes one of which is 1 km off: the fix-level sigma the filter
    starts with does not cover it, so until a later fix of each receiver passes the gate the
    estimates say ``acquiring``; no ``ok`` one is off by more than 4 sigma on any axis (each
    was ``ok`` 1 km wrong for 50-75 s)."""
    sc = _scenario(17, hours=0.5)
    sc[receiver]["pos_ecef_m"][0] += np.array([0.0, 600.0, 800.0])
    res = _run(sc, step_s=5.0)
    dr = _truth_rel(sc, res["t_gps_s"])[0]
    sig = np.sqrt(np.einsum("nii->ni", res["cov_rel"][:, :3, :3]))
    z = np.max(np.abs(res["dr_gcrs_m"] - dr) / sig, axis=1)
    ok = res["quality"] == "ok"
    assert res["n_reinit"] == 1 and ok.sum() > 300
    assert not np.any(z[ok] > 4.0)
    wrong = np.linalg.norm(res["dr_gcrs_m"] - dr, axis=1) > 500.0
    assert wrong.any() and set(res["quality"][wrong]) == {"acquiring"}


@pytest.mark.parametrize("receiver", ["own", "peer"])
@pytest.mark.parametrize("n_glitch", [12, 16])
def test_a_receiver_glitch_of_agreeing_fixes_is_never_ok(receiver, n_glitch):
    """12 or 16 fixes of one receiver 300 m off the same way (a glitch): the filter refuses
    six, starts again from a glitched pair - and that start is confirmed only once later
    fixes of each receiver outnumber the run that condemned the old state, and the last of
    them is ``restart_confirm_min_span_s`` after the start, two refusals in a row restarting
    it until then; no ``ok`` estimate is past the 99.9 % NEES bound (the glitch was ``ok``
    with its fixes' sigma: 3 seeds, 160 of 2 115 rows past; 16 fixes without the span: 40)."""
    sc = _scenario(18, hours=1.0)
    k = len(sc[receiver]["pos_ecef_m"]) // 2
    sc[receiver]["pos_ecef_m"][k : k + n_glitch] += np.array([0.0, 180.0, 240.0])
    res = _run(sc, step_s=5.0)
    e = res["dr_gcrs_m"] - _truth_rel(sc, res["t_gps_s"])[0]
    nees = np.einsum("ni,ni->n", e, np.linalg.solve(res["cov_rel"][:, :3, :3], e[..., None])[..., 0])
    ok = res["quality"] == "ok"
    assert res["n_reinit"] >= 1 and ok.sum() > 500
    assert not np.any(nees[ok] > chi2.quantile(0.999, 3)), float(nees[ok].max())


def _prior_filter():
    sc = _scenario(18, hours=0.25)
    res = _run(sc, step_s=25.0)
    f = ff.FormationFilter()
    f.t_gps_s, f.x, f.p = res["t_end"], res["x_end"], res["p_end"]
    # Inflate the relative position so the range update has something to do.
    f.p[9:12, 9:12] += np.diag([30.0, 20.0, 10.0])
    return f


def test_range_update_matches_filterpy_ukf():
    """The EKF range update against filterpy's UKF on the same prior and measurement."""
    from filterpy.kalman import MerweScaledSigmaPoints, UnscentedKalmanFilter

    f = _prior_filter()
    f.range_acquired = True
    # No time-tag spread: the UKF below gets the plain 0.5 m noise.
    f.config = dataclasses.replace(f.config, range_tag_resolution_s=0.0)
    z = f.range_model()[0] + 3.0
    n = ff.N_STATES

    def hx(x):
        g = ff.FormationFilter()
        g.x = x
        return np.array([g.range_model()[0]])

    ukf = UnscentedKalmanFilter(
        dim_x=n,
        dim_z=1,
        dt=1.0,
        hx=hx,
        fx=lambda x, dt: x,
        points=MerweScaledSigmaPoints(n, alpha=1.0, beta=2.0, kappa=0.0),
    )
    ukf.x, ukf.P, ukf.R, ukf.Q = f.x.copy(), f.p.copy(), np.array([[0.25]]), np.zeros((n, n))
    ukf.predict()  # identity process, no noise: only draws the sigma points of the prior
    ukf.update(np.array([z]))
    result = f.update_range(f.t_gps_s, z)  # one result type, as the other filters' updates
    assert result.used and result.n_used == 1 and result.innovation.shape == (1,)
    assert result.innovation_cov.shape == (1, 1) and result.nis == pytest.approx(f.last_nis)
    # They differ by the range's curvature, sigma_perp^2 / (2 range) = 7 mm for this
    # deliberately loose 50 m^2 prior at 3.6 km (< 1 mm once converged): the EKF's
    # linearisation costs nothing measurable.
    np.testing.assert_allclose(f.x[9:12], ukf.x[9:12], atol=0.01)  # metres
    np.testing.assert_allclose(f.x[ff.I_RANGE_BIAS], ukf.x[ff.I_RANGE_BIAS], atol=0.01)
    np.testing.assert_allclose(f.p[9:12, 9:12], ukf.P[9:12, 9:12], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("ahead_s", [5.0, 17.0, 30.0])
def test_range_applied_ahead_equals_predicting_to_it(ahead_s):
    """A range up to ``range_extrapolate_max_s`` after the filter time, applied there (the
    relative state carried to it in closed form), then the step to the range's time: the
    same prediction, the same state and covariance as stepping first and updating there
    (3.6 km: range within 5 mm - seen 0.06 / 0.8 / 2.7 mm at 5 / 17 / 30 s ahead, the J2
    gradient's share -, state within 1 cm and 1e-4 m/s, covariance within 1 %);
    and the range's H row is the derivative of its prediction (central differences)."""
    f = _prior_filter()
    f.range_acquired = True
    t = f.t_gps_s + ahead_s
    assert f.range_base_time(t) == f.t_gps_s and f.range_ahead_s(t) == ahead_s
    g = copy.deepcopy(f)
    g.predict_to(t)
    assert g.range_base_time(t) == t  # (at the filter time: no lead)
    pred_ahead, h = f.range_model(ahead_s)
    assert pred_ahead == pytest.approx(g.range_model()[0], abs=5e-3)
    for i in [9, 10, 11, 12, 13, 14, 15, ff.I_RANGE_BIAS, ff.I_RANGE_DT]:
        # (the differential accelerations: 1e-6 m/s^2 moves the range ~1e-5 m, well above its
        # rounding, 1e-12 m at 3.6 km; the range is linear in them)
        eps = 1e-3 if i < 15 else (1e-6 if i < 18 else 1e-3)
        up, dn = copy.deepcopy(f), copy.deepcopy(f)
        up.x[i] += eps
        dn.x[i] -= eps
        d = (up.range_model(ahead_s)[0] - dn.range_model(ahead_s)[0]) / (2 * eps)
        assert h[0, i] == pytest.approx(d, rel=1e-5, abs=1e-6), i
    z = g.range_model()[0] + 2.0
    assert f.update_range(t, z).decision == "used" and g.update_range(t, z).decision == "used"
    f.predict_to(t)
    np.testing.assert_allclose(f.x[9:12], g.x[9:12], atol=0.01)
    np.testing.assert_allclose(f.x[12:15], g.x[12:15], atol=1e-4)
    assert f.x[ff.I_RANGE_BIAS] == pytest.approx(g.x[ff.I_RANGE_BIAS], abs=0.01)
    np.testing.assert_allclose(np.diag(f.p)[9:15], np.diag(g.p)[9:15], rtol=0.01)
    # Beyond the reach, or behind the filter: the caller must predict to the range first.
    late = f.t_gps_s + f.config.range_extrapolate_max_s + 1.0
    assert f.range_base_time(late) == late
    with pytest.raises(ValueError):
        f.update_range(late, z)


def test_scalar_range_update_is_filterpys_kalman_update():
    """The range's update (outer products, no inverse) against filterpy's KalmanFilter
    (Joseph form) with the same H, noise and innovation; a non-positive innovation
    variance or a NaN innovation is refused and leaves the filter as it was."""
    from filterpy.kalman import KalmanFilter

    f = _prior_filter()
    hv = f.range_model()[1][0]
    nu, var = 2.5, 0.3
    kf = KalmanFilter(dim_x=ff.N_STATES, dim_z=1)
    kf.x, kf.P, kf.R, kf.H = f.x.copy(), f.p.copy(), np.array([[var]]), hv[None, :].copy()
    kf.update(np.array([hv @ f.x + nu]))
    ok, nis = f._update_scalar(hv, nu, var, gate=1e9)
    assert ok
    assert nis == pytest.approx(nu * nu / kf.S[0, 0], rel=1e-12)
    np.testing.assert_allclose(f.x, kf.x, rtol=0, atol=1e-9 * (1 + np.abs(kf.x)).max())
    np.testing.assert_allclose(f.p, kf.P, rtol=1e-6, atol=1e-12)
    x0, p0 = f.x.copy(), f.p.copy()
    for h, y, v in ((np.zeros(ff.N_STATES), 1.0, 0.0), (hv, math.nan, var), (hv, 1e3, var)):
        ok, _ = f._update_scalar(h, y, v, gate=chi2.quantile(0.9999, 1))
        assert not ok
        assert np.array_equal(f.x, x0) and np.array_equal(f.p, p0)


def test_a_range_absorbed_into_the_covariance_is_filterpys_update_of_p_alone():
    """absorb_range_covariance: filterpy's KalmanFilter covariance update with the range's
    H (at the current state) and its noise (sigma and the time-tag spread); the state is
    not moved."""
    from filterpy.kalman import KalmanFilter

    f = _prior_filter()
    f.config = dataclasses.replace(f.config, range_tag_resolution_s=0.0)
    hv = f.range_model()[1][0]
    kf = KalmanFilter(dim_x=ff.N_STATES, dim_z=1)
    kf.x, kf.P, kf.R, kf.H = f.x.copy(), f.p.copy(), np.array([[f.config.range_sigma_m**2]]), hv[None, :].copy()
    kf.update(np.array([hv @ f.x]))
    x0 = f.x.copy()
    f.absorb_range_covariance(f.t_gps_s)
    assert np.array_equal(f.x, x0)
    np.testing.assert_allclose(f.p, kf.P, rtol=1e-6, atol=1e-12)
    assert_symmetric_positive_definite(f.p, idx=np.arange(9, 15))


def test_peer_fix_update_matches_filterpy_kalman():
    from filterpy.kalman import KalmanFilter

    f = _prior_filter()
    tr_fix = _peer_fix_at_filter(f)
    z, r = f.fix_gcrs(tr_fix)
    kf = KalmanFilter(dim_x=ff.N_STATES, dim_z=6)
    kf.x, kf.P, kf.R = f.x.copy(), f.p.copy(), r
    kf.H = np.zeros((6, ff.N_STATES))
    kf.H[:, 0:6] = np.eye(6)
    kf.H[:, 9:15] = np.eye(6)
    kf.update(z)
    assert f.update_peer_fix(tr_fix).decision == "used"
    np.testing.assert_allclose(f.x, kf.x, rtol=0, atol=1e-9 * (1 + np.abs(kf.x)).max())
    np.testing.assert_allclose(f.p, kf.P, rtol=1e-6, atol=1e-12)


def _peer_fix_at_filter(f):
    from pygnc import frames

    r_e, v_e = frames.gcrs_to_itrs(f.x[0:3] + f.x[9:12] + 5.0, f.x[3:6] + f.x[12:15] + 0.01, f.t_gps_s)
    return GpsFix(f.t_gps_s, r_e, v_e, np.full(3, 10.0), np.full(3, 0.01))


def test_transition_matrix_against_finite_differences(monkeypatch):
    """Phi of one 5-s step (own + relative blocks) against central differences of the
    nonlinear step (the own step propagated in full: its shared form is linear by design,
    test_shared_own_step_is_the_full_step_to_first_order)."""
    monkeypatch.setattr(ff, "SHARE_MAX_DR_M", -1.0)
    f = _prior_filter()
    x0 = f.x.copy()
    n = ff.N_STATES

    def step(x):
        f.x = x
        return f.transition(5.0)[0]

    scales = np.array([1.0] * 3 + [1e-2] * 3 + [1e-4] * 3 + [1.0] * 3 + [1e-2] * 3 + [1e-4] * 3 + [0.1, 1.0, 0.1])
    phi_fd = np.zeros((n, n))
    for i in range(n):
        d = np.zeros(n)
        d[i] = scales[i]
        phi_fd[:, i] = (step(x0 + d) - step(x0 - d)) / (2.0 * scales[i])
    f.x = x0
    phi = f.transition(5.0)[1]
    # Column-wise: the finite differences resolve ~1e-9 m / (2 * scale) per element.
    tol = 2e-8 / scales[None, :] + 1e-7 * np.abs(phi)
    assert np.all(np.abs(phi - phi_fd) < tol)
    np.testing.assert_allclose(phi[9:12, 12:15], 5.0 * np.eye(3), atol=2e-3)  # d dr / d dv ~ dt
    assert np.abs(phi[9:15, 0:6]).max() < 1e-4  # relative barely depends on the own orbit
    assert np.abs(phi[9:15, 9:15] - phi[0:6, 0:6]).max() < 1e-5  # 3 km: nearly the own Phi


def test_shared_own_step_is_the_full_step_to_first_order():
    """A filter whose own state is within SHARE_MAX_* of another's at the same instant takes
    that filter's own step carried through Phi: against its own full propagation, the
    difference is the second-order rest (here < 1e-6 m, < 1e-8 m/s for 10 m / 1 cm/s; the 5-s
    step's own process noise is 4e-5 m and 2e-5 m/s per axis)."""
    f = _prior_filter()
    g = _prior_filter()
    g.x[0:3] += np.array([7.0, -7.0, 4.0])
    g.x[3:6] += np.array([0.005, 0.008, -0.005])
    f.own_steps = g.own_steps = {}  # as the filters of one processor
    n0 = dict(ff.OWN_STEP_COUNTS)
    x_f, phi_f = f.transition(5.0)
    x_g, phi_g = g.transition(5.0)
    assert ff.OWN_STEP_COUNTS["shared"] == n0["shared"] + 1
    assert phi_g is not phi_f and np.array_equal(phi_g[0:9, 0:9], phi_f[0:9, 0:9])
    full, _ = od.propagate(g.x[0:9], 5.0, g.own_model, t_gps_s=g.t_gps_s)
    assert np.abs(x_g[0:3] - full[0:3]).max() < 1e-6
    assert np.abs(x_g[3:6] - full[3:6]).max() < 1e-8
    # the relative state takes the same own step (peer minus own): the same bound
    peer = np.concatenate((g.x[0:6] + g.x[9:15], g.x[6:9] + g.x[15:18], [g.x[ff.I_DRAG_SCALE]]))
    peer_new, _ = od.propagate(peer, 5.0, g.peer_model, t_gps_s=g.t_gps_s)
    assert np.abs(x_g[9:12] - (peer_new[0:3] - full[0:3])).max() < 1e-6
    # beyond the bound, a full propagation
    h = _prior_filter()
    h.own_steps = f.own_steps
    h.x[0] += 2.0 * ff.SHARE_MAX_DR_M
    n1 = ff.OWN_STEP_COUNTS["propagated"]
    h.transition(5.0)
    assert ff.OWN_STEP_COUNTS["propagated"] == n1 + 1


def test_tapped_estimates_between_steps_match_a_step_ending_there():
    """FormationFilter.tap: an estimate inside a 30-s step (the longest), interpolated, against
    a prediction that ends there.  Relative state within 1e-4 m / 2e-6 m/s (seen: 1.5e-5 m,
    5e-7 m/s at mid-step), its sigmas and line-of-sight sigma within 0.1 % (seen 0.03 %); the
    own absolute state within 5 cm / 1 mm/s (the tesseral and third-body accelerations, held
    constant over a step, are not in the interpolation's end derivatives; the own state only
    orients the RTN frame of the outputs: < 1e-7 rad)."""
    f = _prior_filter()
    h = f.config.max_step_s
    assert h == 30.0
    t0 = f.t_gps_s
    g = copy.deepcopy(f)
    taus = (0.1 * h, 0.5 * h, 0.79 * h, h, h + 4.0)
    for tau in taus:
        g.tap(t0 + tau)
    g.predict(h)
    assert sorted(g.tapped) == [t0 + tau for tau in taus[:4]]  # the last one waits
    assert g._taps == [t0 + h + 4.0]
    for tau in taus[:4]:
        d = copy.deepcopy(f)
        d.predict(tau)
        xr, pr = g.tap_estimate(g.tapped[t0 + tau], t0 + tau, reported=True)
        x, p = g.take_tapped(t0 + tau)
        # What an output takes: the same state, the reported block of the same covariance.
        np.testing.assert_array_equal(xr, x)
        np.testing.assert_allclose(pr, ff.reported_block(p), rtol=1e-12, atol=0)
        e = x - d.x
        assert np.abs(e[9:12]).max() < 1e-4 and np.abs(e[12:15]).max() < 2e-6
        assert np.abs(e[0:3]).max() < 0.05 and np.abs(e[3:6]).max() < 1e-3
        assert np.abs(e[np.r_[6:9, 15 : ff.N_STATES]]).max() < 1e-6
        assert np.allclose(np.sqrt(np.diag(p)[9:15]), np.sqrt(np.diag(d.p)[9:15]), rtol=1e-3, atol=0)
        u = d.x[9:12] / np.linalg.norm(d.x[9:12])
        assert math.sqrt(u @ p[9:12, 9:12] @ u) == pytest.approx(math.sqrt(u @ d.p[9:12, 9:12] @ u), rel=1e-3)
        assert_symmetric_positive_definite(p, idx=np.arange(9, 15))
    g.predict(10.0)  # the waiting tap is the end of a later step's
    x, p = g.take_tapped(t0 + h + 4.0)
    d = copy.deepcopy(f)
    d.predict(h)
    d.predict(4.0)
    assert np.abs(x[9:15] - d.x[9:15]).max() < 1e-4
    g.initialize(t0, f.x[0:6], f.p[0:6, 0:6], f.x[0:6] + f.x[9:15], f.p[9:15, 9:15])
    assert not g._taps and not g.tapped  # a restart forgets what was asked


def test_predict_splits_long_intervals_and_keeps_time():
    f = _prior_filter()
    t = f.t_gps_s
    f.predict(12.3)
    assert f.t_gps_s == pytest.approx(t + 12.3, abs=1e-9)
    with pytest.raises(ValueError):
        f.update_range(t, 3000.0)


def test_process_noise_interpolation_close_to_exact():
    f = ff.FormationFilter()
    c = f.config
    for h in (0.37, 1.234, 2.5, 4.99):
        q = f._q(h)
        exact_c = od.dmc_process_noise(h, c.own_dmc_tau_s, c.own_dmc_sigma_m_s2)
        exact_d = od.dmc_process_noise(h, c.diff_dmc_tau_s, c.diff_dmc_sigma_m_s2)
        np.testing.assert_allclose(q[[0, 3, 6], :][:, [0, 3, 6]], exact_c, rtol=0.06)
        np.testing.assert_allclose(q[[9, 12, 15], :][:, [9, 12, 15]], exact_d, rtol=0.06)
        np.testing.assert_allclose(q[6, 6], exact_c[2, 2], rtol=0.01)
        np.testing.assert_allclose(q[3, 3], exact_c[1, 1], rtol=0.02)
        assert np.all(np.linalg.eigvalsh(q) > -1e-30)


def test_differential_process_noise_grows_with_the_drift():
    """diff_dmc_sigma_per_km_da_m_s2: the differential chain's Q is that of the steady-state sigma
    sqrt(s0^2 + (k * da_km)^2), da the semi-major axis difference; the common chain untouched,
    the reported Q likewise; no drift, no growth."""
    c = ff.FormationFilterConfig(diff_dmc_sigma_per_km_da_m_s2=5e-6)
    f = ff.FormationFilter(c)
    f.x = np.zeros_like(f.x)
    r = 6878e3
    v = math.sqrt(od.GM_EARTH_M3_S2 / r)
    f.t_gps_s = 1.4e9
    f.x[0:6] = [r, 0.0, 0.0, 0.0, v, 0.0]
    f.x[ff.I_DRAG_SCALE] = 1.0
    f.x[9:12] = [200.0, -30e3, 0.0]  # 200 m higher, 30 km behind
    da_m = od.semi_major_axis_difference_m(f.x[0:3], f.x[3:6], f.x[9:12], f.x[12:15])
    # the same speed 265 m further from the centre (200 m up, 65 m of the 30 km chord): da = 2 dr
    assert abs(da_m) == pytest.approx(530.0, abs=5.0)
    f.refresh_relative_drag()  # (a step does at its start)
    s2 = (
        c.diff_dmc_sigma_m_s2**2
        + (5e-6 * da_m / 1e3) ** 2
        + (c.diff_dmc_relative_drag_fraction * f.relative_drag_m_s2()) ** 2
    )
    h = 2.5
    q = f._q(h)
    exact_d = od.dmc_process_noise(h, c.diff_dmc_tau_s, math.sqrt(s2))
    exact_c = od.dmc_process_noise(h, c.own_dmc_tau_s, c.own_dmc_sigma_m_s2)
    np.testing.assert_allclose(q[[10, 13, 16], :][:, [10, 13, 16]], exact_d, rtol=0.06)
    np.testing.assert_allclose(q[[1, 4, 7], :][:, [1, 4, 7]], exact_c, rtol=0.06)
    np.testing.assert_allclose(f._q(h, reported=True), ff.reported_block(q), rtol=1e-12)
    f.x[9:15] = 0.0  # no drift (and the same drag): the constant sigma alone
    f.refresh_relative_drag()
    np.testing.assert_allclose(f._q(h), ff.FormationFilter(ff.FormationFilterConfig())._q(h), rtol=1e-12)


def test_differential_process_noise_grows_with_the_relative_drag():
    """diff_dmc_relative_drag_fraction: the differential chain's steady-state sigma is
    sqrt(s0^2 + (f |a_peer - a_own|)^2) with both drags from the models (Harris-Priester,
    the partner's at its drag scale), checked against the drag computed apart; none when the
    two drags are equal, and range-only partners keep none and the exponential atmosphere."""
    c = ff.FormationFilterConfig(peer_ballistic_coeff_kg_m2=25.0)
    f = ff.FormationFilter(c)
    f.t_gps_s = 1.4e9
    f.x = np.zeros_like(f.x)
    r = 6778e3
    v = math.sqrt(od.GM_EARTH_M3_S2 / r)
    f.x[0:6] = [r, 0.0, 0.0, 0.0, v, 0.0]
    f.x[9:12] = [0.0, -3e3, 0.0]
    f.x[ff.I_DRAG_SCALE] = 1.2
    bulge = od.density_bulge_apex(f.t_gps_s)
    a_own = od.drag_acceleration(f.x[0:3], f.x[3:6], 50.0, 1.0, bulge)
    a_peer = od.drag_acceleration(f.x[0:3] + f.x[9:12], f.x[3:6], 25.0, 1.2, bulge)
    rel = float(np.linalg.norm(a_peer - a_own))
    assert f.relative_drag_m_s2() == pytest.approx(rel, rel=1e-12)
    assert rel > 1e-7  # a real relative drag at 400 km: the term matters
    h = 2.5
    f.refresh_relative_drag()  # (a step does at its start)
    s2 = c.diff_dmc_sigma_m_s2**2 + (0.25 * rel) ** 2
    exact_d = od.dmc_process_noise(h, c.diff_dmc_tau_s, math.sqrt(s2))
    np.testing.assert_allclose(f._q(h)[[10, 13, 16], :][:, [10, 13, 16]], exact_d, rtol=0.06)
    equal = ff.FormationFilter(ff.FormationFilterConfig())
    equal.t_gps_s, equal.x = f.t_gps_s, f.x.copy()
    equal.x[9:15], equal.x[ff.I_DRAG_SCALE] = 0.0, 1.0
    assert equal.relative_drag_m_s2() == 0.0
    ro = range_only_filter_config(c, RangeOnlyConfig())
    assert ro.diff_dmc_relative_drag_fraction == 0.0 and ro.atmosphere == "exponential"
    assert c.atmosphere == "harris_priester" and ff.FormationFilter(c).own_model.diurnal


def test_kept_relative_drag_noise_sums_follow_each_refresh_and_each_copy():
    """_q's kept sums (grid + the relative drag's share, interpolated in h) equal the terms
    added apart, for the full and the reported block, after the relative drag changes, and
    for a shallow copy that kept the old drag while the original moved on, and a deep copy
    (which shares the read-only sums until its own drag changes)."""
    c = ff.FormationFilterConfig()
    f = ff.FormationFilter(c)

    def apart(flt, h, reported):
        k = h / ff.Q_GRID_S
        i, a = int(k), k - int(k)
        grid = flt._q_grid_reported if reported else flt._q_grid
        s2 = (c.diff_dmc_relative_drag_fraction * flt._relative_drag_at_step) ** 2
        return sum(
            w * (grid(j) + s2 * flt._q_diff_unit(j, reported)) for j, w in ((i, 1.0 - a), (i + 1, a)) if w > 1e-12
        )

    for drag in (0.0, 3e-7, 1e-6):
        f._relative_drag_at_step = drag
        for h in (0.7, 2.5, 4.37, 5.0):
            for reported in (False, True):
                np.testing.assert_allclose(f._q(h, reported), apart(f, h, reported), rtol=1e-12, atol=1e-30)
    old = copy.copy(f)  # holds 1e-6 and its sums
    f._relative_drag_at_step = 2e-7
    np.testing.assert_allclose(f._q(4.37), apart(f, 4.37, False), rtol=1e-12, atol=1e-30)
    np.testing.assert_allclose(old._q(4.37), apart(old, 4.37, False), rtol=1e-12, atol=1e-30)
    assert not np.allclose(old._q(4.37), f._q(4.37), rtol=1e-6, atol=0.0)
    deep = copy.deepcopy(f)  # shares the sums (read-only), and replaces them when its drag changes
    assert deep._q_sums_by_step is f._q_sums_by_step and not f._q(5.0).flags.writeable
    deep._relative_drag_at_step = 5e-7
    np.testing.assert_allclose(deep._q(4.37), apart(deep, 4.37, False), rtol=1e-12, atol=1e-30)
    np.testing.assert_allclose(f._q(4.37), apart(f, 4.37, False), rtol=1e-12, atol=1e-30)


def test_relative_drag_noise_is_taken_by_the_steps_and_forgotten_by_a_restart():
    """The relative drag of the noise is taken at a step once a minute of filter time has
    passed (or when time went back), a re-initialisation forgets the old state's value, and a
    non-finite state's value is taken as 0 (a lost filter re-initialises; its NaN must not
    poison the next start's Q)."""
    own, peer = _scenario(3, hours=0.2)["truth"]
    c = ff.FormationFilterConfig(peer_ballistic_coeff_kg_m2=25.0)
    f = ff.FormationFilter(c)
    rv = [np.concatenate((t["r_gcrs_m"][0], t["v_gcrs_m_s"][0])) for t in (own, peer)]
    eye = np.eye(6)
    t0 = float(own["t_gps_s"][0])
    f.initialize(t0, rv[0], eye, rv[1], eye)
    f.predict(5.0)
    first = f._relative_drag_at_step
    assert first == pytest.approx(f.relative_drag_m_s2(), rel=0.05) and first > 0.0
    f.x[ff.I_DRAG_SCALE] = 20.0  # a wild drag scale: not seen until a minute has passed
    f.predict(30.0)
    f.predict(30.0)  # steps from 5 and 35 s after the first: within its minute
    assert f._relative_drag_at_step == first
    f.predict(5.0)  # a step from 65 s
    assert f._relative_drag_at_step > 10.0 * first
    f.initialize(t0 + 80.0, rv[0], eye, rv[1], eye)  # a restart forgets it
    assert f._relative_drag_at_step == 0.0
    f.predict(5.0)
    assert f._relative_drag_at_step < 2.0 * first
    f.x[12] = math.nan
    f.refresh_relative_drag()
    assert f._relative_drag_at_step == 0.0
    f.initialize(t0, rv[0], eye, rv[1], eye)  # earlier than the last refresh: taken again
    f.predict(5.0)
    assert np.isfinite(f.p).all() and f._relative_drag_at_step > 0.0


def test_semi_major_axis_difference_is_the_drift_not_the_wobble():
    """Two circular orbits 100 m apart in radius at the same phase: da 100 m; the same orbit
    30 km further along (J2 included in the energy): da ~0, where the osculating elements
    differ by metres."""
    r = np.array([6878e3, 0.0, 0.0])
    v = np.array([0.0, math.sqrt(od.GM_EARTH_M3_S2 / 6878e3), 0.0])
    r2 = np.array([6878.1e3, 0.0, 0.0])
    v2 = np.array([0.0, math.sqrt(od.GM_EARTH_M3_S2 / 6878.1e3), 0.0])
    assert od.semi_major_axis_difference_m(r, v, r2 - r, v2 - v) == pytest.approx(100.0, abs=1.0)
    assert od.semi_major_axis_difference_m(r, v, np.zeros(3), np.zeros(3)) == 0.0


def test_line_of_sight_sigma_without_a_line_of_sight_is_the_largest_sigma():
    """Found by the processor fuzz test (a corrupt time bit, then a zero range): a relative
    position of exactly zero gave NaN; now the largest sigma of any direction."""
    import numpy as np

    from pygnc.estimation.formation_filter import FormationFilter

    f = FormationFilter()
    f.x = np.zeros_like(f.x)
    f.p = np.eye(f.p.shape[0])
    f.p[9:12, 9:12] = np.diag([4.0, 9.0, 1.0])
    assert f.line_of_sight_sigma_m() == 3.0
    f.x[9:12] = [0.0, 5.0, 0.0]
    assert f.line_of_sight_sigma_m() == 3.0
    f.x[9:12] = [1.0, 0.0, 0.0]
    assert f.line_of_sight_sigma_m() == 2.0
