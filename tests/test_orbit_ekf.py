"""Orbit EKF on seeded truth scenarios (ground.simulate.orbits), and its algebra against filterpy.

Scenario: 500 km, i = 97.4 deg, truth = brahe (EGM2008 40x40, NRLMSISE-00 drag, Sun/Moon,
SRP with shadow, relativity; ground.simulate.orbits); GPS 10 m / 0.01 m/s 1-sigma per axis every
25 s; 3 h (each scenario ~2 s truth + ~0.3 s filter).

The filtered estimates are the flight processor's (OrbitProcessor over the fixes, a sample
every 5 s: :func:`ground.replay.orbit_filter.run_orbit_processor`); the smoothed ones, and the
information floor's, the ground batch filter's (:func:`ground.replay.orbit_filter.run_orbit_filter`),
which gives the processor's estimates to a few centimetres
(test_the_batch_filter_gives_the_processors_estimates).

Thresholds are the figures measured on these seeded (deterministic) scenarios x1.3, a
margin for tuning changes (bench/bench_orbit.py prints the figures over more seeds).  The
information floor (a filter whose dynamics *are* the truth's, zero process noise) is tested
too, and the flight filter (EGM2008 34x34 since issue 47) within 1.6x of it; with the EGM96
8x8 field it pays for the gravity beyond (test_near_exact_dynamics_with_small_dmc).
Consistency over independent realisations: tests/test_orbit_processor.py.
"""

import math

import numpy as np
import pytest
from covariance_checks import assert_symmetric_positive_definite

from ground.replay import orbit_filter as ob
from ground.simulate import orbits as sim
from pygnc import timebase
from pygnc.estimation import chi2
from pygnc.estimation import orbit_ekf as oe
from pygnc.estimation.gps_fix import GpsFix, fix_to_gcrs

SETTLE_S = 1800.0


def _truth_kw(seed, hours=3.0, **kw):
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
    return sim.propagate_truth(r0, v0, t0, hours * 3600.0, seed=seed, **kw)


def _truth(seed, hours=3.0):
    return _truth_kw(seed, hours)


def _errors(truth, res, settle_s=SETTLE_S):
    idx = np.searchsorted(truth["t_gps_s"], res["t_gps_s"])
    er = res["r_gcrs_m"] - truth["r_gcrs_m"][idx]
    ev = res["v_gcrs_m_s"] - truth["v_gcrs_m_s"][idx]
    keep = res["t_gps_s"] - truth["t_gps_s"][0] >= settle_s
    e6 = np.concatenate([er, ev], axis=1)[keep]
    p6 = res["cov"][keep][:, :6, :6]
    nees = np.einsum("ni,ni->n", e6, np.linalg.solve(p6, e6[..., None])[..., 0])
    return {
        "rms_r": float(np.sqrt(np.mean(np.sum(er[keep] ** 2, axis=1)))),
        "rms_v": float(np.sqrt(np.mean(np.sum(ev[keep] ** 2, axis=1)))),
        "nees": nees,
        "er": er,
        "keep": keep,
    }


@pytest.fixture(scope="module")
def truth0():
    return _truth(0)


@pytest.fixture(scope="module")
def truth1():
    return _truth(1)


@pytest.fixture(scope="module")
def nominal(truth0):
    fixes = sim.simulate_gps_fixes(truth0, rng=np.random.default_rng(100))
    t_out = truth0["t_gps_s"][::5]
    return fixes, ob.run_orbit_processor(fixes, t_out), ob.run_orbit_filter(fixes, t_out, smooth=True)


def test_accuracy_and_consistency_3h(truth0, nominal):
    fixes, res, smoothed = nominal
    e = _errors(truth0, res)
    # Measured 2.21 m and 2.7 mm/s (1.69 m and 2.1 mm/s with the fixes taken as independent,
    # as this truth draws them: the price of the slowly varying fix-error states).
    assert e["rms_r"] < 2.6
    assert e["rms_v"] < 0.0032
    # NEES (6 dof) at epochs 20 min apart (the DMC correlation time is 300 s, so ~independent):
    # mean x n is chi-square(6 n) for a consistent filter; the 99.5 % upper bound.  Below, the
    # filter is cautious by design on fixes this truth draws independent (measured 3.1 of 6).
    _assert_nees_at_spaced_epochs(res, e, lo=2.0)
    assert res["n_fixes_used"] == fixes["t_gps_s"].size
    assert res["n_fixes_rejected"] == 0 and res["n_fixes_invalid"] == 0
    es = _errors(truth0, smoothed)
    assert es["rms_r"] < 0.8 * e["rms_r"] and es["rms_r"] < 1.4  # measured 1.15 m
    assert es["rms_v"] < 0.0015  # measured 1.2 mm/s
    # The smoother's error is correlated over hours (the drag scale, the orbit's memory), not
    # 20 min: its sigma must cover it (the upper bound), and not be loose by more than 2x.
    _assert_nees_at_spaced_epochs(smoothed, es, lo=1.5)


def test_the_batch_filter_gives_the_processors_estimates(truth0, nominal):
    """run_orbit_filter (the smoother's forward pass, and the bench's filtered figures) against
    the flight processor on the same fixes and samples.  Not to the bit, by design: the
    batch filter predicts to every sample (5-s steps), so a fix's prediction is five steps;
    the processor's filter takes the fix from its output cursor's one step of the fix
    interval (25 s) and interpolates the samples inside that step
    (OrbitEKF.estimate_in); and at a fix's own time the processor publishes the prediction
    (ingest hands the sample over before the fix) where the batch filter gives the update.
    Away from the fixes: position within 8 cm, velocity 2e-4 m/s, sigmas 0.5 % (seen 6.2 cm,
    1.2e-4 m/s, 0.2 %); the same fixes used and rejected, NIS within 0.05 (seen 0.018); the
    3-h figures within 1 % and 3 % (seen 0.5 %, 1.5 %)."""
    fixes, res, _ = nominal
    batch = ob.run_orbit_filter(fixes, res["t_gps_s"])
    ok = np.isfinite(res["x"][:, 0]) & ~np.isin(res["t_gps_s"], fixes["t_gps_s"])
    assert ok.sum() > 1500
    assert np.abs(batch["x"][ok, :3] - res["x"][ok, :3]).max() < 0.08
    assert np.abs(batch["x"][ok, 3:6] - res["x"][ok, 3:6]).max() < 2e-4
    assert np.abs(batch["sigma"][ok, :6] / res["sigma"][ok, :6] - 1.0).max() < 5e-3
    np.testing.assert_array_equal(batch["fix_status"], res["fix_status"])
    assert all(batch[k] == res[k] for k in ("n_fixes_used", "n_fixes_rejected", "n_fixes_invalid", "n_reinit"))
    assert np.nanmax(np.abs(batch["nis"] - res["nis"])) < 0.05
    eb, ep = _errors(truth0, batch), _errors(truth0, res)
    assert abs(eb["rms_r"] / ep["rms_r"] - 1.0) < 0.01 and abs(eb["rms_v"] / ep["rms_v"] - 1.0) < 0.03


def _assert_nees_at_spaced_epochs(res, e, lo=None):
    t_rel = res["t_gps_s"][e["keep"]] - res["t_gps_s"][0]
    idx = [int(np.argmin(np.abs(t_rel - t))) for t in np.arange(SETTLE_S, 10800.0, 1200.0)]
    n = len(idx)
    lo, hi = chi2.quantile(0.005, 6 * n) / n if lo is None else lo, chi2.quantile(0.995, 6 * n) / n
    assert lo < e["nees"][idx].mean() < hi, (e["nees"][idx].mean(), lo, hi)


def test_covariance_symmetric_positive_definite(nominal):
    _, res, smoothed = nominal
    for cov in (res["cov"], smoothed["cov"]):
        c = cov[np.isfinite(cov[:, 0, 0])]
        assert_symmetric_positive_definite(c, min_eig=1e-9)


def test_outliers_rejected_and_counted(truth1):
    fixes, flags = sim.simulate_gps_fixes(
        truth1, rng=np.random.default_rng(7), outlier_fraction=0.05, outlier_m=1000.0, with_flags=True
    )
    res = ob.run_orbit_processor(fixes, truth1["t_gps_s"][::5])
    st = res["fix_status"]
    assert flags["outlier"].sum() >= 15
    assert np.all(st[flags["outlier"]] == 1)  # every 1-km outlier rejected
    assert np.mean(st[~flags["outlier"]] == 1) < 0.01  # almost no good fix lost
    assert res["n_fixes_rejected"] == np.sum(st == 1)
    e = _errors(truth1, res)
    assert e["rms_r"] < 3.9 and e["rms_v"] < 0.0098  # measured 2.99 m, 7.7 mm/s


def test_gap_invalid_fixes_and_clock_offset(truth1):
    """10-min gap, 3 % invalid records, spacecraft clock 37.6 s + 20 ppm off GPS time."""
    gap = (5400.0, 6000.0)
    fixes, flags = sim.simulate_gps_fixes(
        truth1,
        rng=np.random.default_rng(8),
        gaps=[gap],
        invalid_fraction=0.03,
        sc_minus_utc_s=37.6,
        clock_rate_error=2e-5,
        with_flags=True,
    )
    # Sensor samples every 5 s on the spacecraft clock, mapped to GPS time with the ClockMap.
    t0 = truth1["t_gps_s"][0]
    t_sc = np.arange(fixes["t_sc_s"][0], fixes["t_sc_s"][-1], 5.0)
    t_out, cmap = ob.gps_times_from_sc(fixes, t_sc)
    assert cmap is not None and cmap.residual_rms_s < 0.6
    t_true = timebase.gps_from_utc_unix(t_sc - 37.6)  # ignoring the 20-ppm drift (< 0.22 s)
    assert np.abs(t_out - t_true).max() < 1.0
    t_out = t_out[(t_out >= t0) & (t_out <= truth1["t_gps_s"][-1])]
    t_out = np.round(t_out)  # compare against the 1-Hz truth
    res = ob.run_orbit_processor(fixes, t_out)
    assert res["n_fixes_invalid"] == flags["invalid"].sum() > 0
    assert np.all(res["fix_status"][flags["invalid"]] == 2)
    assert res["n_fixes_rejected"] == 0 and res["n_reinit"] == 0
    e = _errors(truth1, res)
    assert e["rms_r"] < 4.5 and e["rms_v"] < 0.012  # measured 3.7 m, 8.2 mm/s (gap included)
    # Inside the gap the error grows but stays within 3 sigma of the filter's own covariance.
    rel = res["t_gps_s"] - t0
    in_gap = (rel >= gap[0]) & (rel < gap[1])
    err = np.linalg.norm(e["er"][in_gap], axis=1)
    sig = np.sqrt(np.sum(res["sigma"][in_gap, :3] ** 2, axis=1))
    assert np.all(err < 3.0 * sig)
    assert err.max() < 25.0


def test_a_bad_first_fix_is_replaced_by_the_next(truth0):
    """A 5-km-wrong first fix: the second contradicts it, so the filter starts again from the
    second (one of the two is wrong; the third confirms); until then its estimates say
    ``acquiring``, and none is ``ok``."""
    fixes = sim.simulate_gps_fixes(truth0, rng=np.random.default_rng(9))
    fixes["pos_ecef_m"][0] += np.array([5000.0, 0.0, 0.0])
    t_out = truth0["t_gps_s"][::5]
    res = ob.run_orbit_processor(fixes, t_out)
    assert res["n_start_refused"] == 1 and res["n_reinit"] == 0 and res["n_fixes_rejected"] == 0
    assert list(res["fix_status"][:3]) == [3, 3, 0]
    t_fix = fixes["t_gps_s"]
    published = res["quality"] != ""
    assert set(res["quality"][published & (t_out < t_fix[2])]) == {"acquiring"}
    assert set(res["quality"][t_out > t_fix[2]]) == {"ok"}
    assert _errors(truth0, res)["rms_r"] < 3.0
    for smooth in (False, True):  # the ground's batch filter judges its rows alike
        batch = ob.run_orbit_filter(fixes, t_out, smooth=smooth)
        assert batch["n_start_refused"] == 1
        started = np.isfinite(batch["x"][:, 0])
        assert not batch["confirmed"][started & (t_out < t_fix[1])].any()
        assert batch["confirmed"][t_out > t_fix[2]].all()


def test_reinitialises_after_too_many_rejections(truth0):
    """Every fix from the 40th on from an orbit turned 0.001 rad about the Earth's axis (7 km
    off, and a true orbit): the confirmed filter refuses them, then gives itself up as lost,
    starts from one and is confirmed by the next."""
    fixes = sim.simulate_gps_fixes(truth0, rng=np.random.default_rng(9))
    c, s = math.cos(1e-3), math.sin(1e-3)
    turn = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    for k in ("pos_ecef_m", "vel_ecef_m_s"):
        fixes[k][40:] = fixes[k][40:] @ turn.T
    res = ob.run_orbit_processor(fixes, truth0["t_gps_s"][::25])
    n_max = oe.OrbitFilterConfig().max_consecutive_rejections
    assert res["n_reinit"] == 1 and res["n_start_refused"] == 0
    assert res["n_fixes_rejected"] == n_max
    assert np.all(res["fix_status"][40 : 40 + n_max] == 1) and res["fix_status"][40 + n_max] == 3
    assert np.all(res["fix_status"][41 + n_max :] == 0)


@pytest.mark.parametrize("n_glitch", [8, 20])
def test_a_receiver_glitch_of_agreeing_fixes_is_never_ok(truth0, n_glitch):
    """*n_glitch* fixes in a row 300 m off the same way (a receiver's glitch): the converged
    filter refuses six, gives itself up as lost and starts from the seventh - but that state
    is not confirmed until it has outlived the run of rejections, the good fixes after the
    glitch restart it, and no ``ok`` estimate is off by more than 4.5 sigma (the glitch
    was taken as ``ok`` with its fixes' few-metre sigma: 1 800 s of rows 300 m off)."""
    fixes = sim.simulate_gps_fixes(truth0, rng=np.random.default_rng(9))
    fixes["pos_ecef_m"][200 : 200 + n_glitch] += np.array([0.0, 180.0, 240.0])
    t_out = truth0["t_gps_s"][::5]
    res = ob.run_orbit_processor(fixes, t_out)
    assert res["n_reinit"] >= 1
    e = _errors(truth0, res, settle_s=0.0)
    ok = res["quality"] == "ok"
    assert np.all(np.abs(e["er"][ok]) < 4.5 * res["sigma"][ok, :3])
    t_fix = fixes["t_gps_s"]
    back = (t_out > t_fix[200 + n_glitch] + 450.0) & (t_out < t_fix[200 + n_glitch] + 900.0)
    assert set(res["quality"][back]) == {"ok"}  # and the track is back within minutes


def test_the_simulated_slowly_varying_fix_error():
    """The simulator's fix error: of 10 m per axis, 7 m Gauss-Markov over 30 min, the rest
    white; and 0 leaves every draw as it was (the bundled sample's bytes)."""
    t = 1.4e9 + 25.0 * np.arange(20_000)
    truth = {"t_gps_s": t, "r_ecef_m": np.zeros((t.size, 3)), "v_ecef_m_s": np.zeros((t.size, 3))}
    fx = sim.simulate_gps_fixes(truth, rng=np.random.default_rng(4), correlated_sigma_m=7.0, correlation_s=1800.0)
    e = fx["pos_ecef_m"]
    assert np.std(e) == pytest.approx(10.0, rel=0.05)
    lag = 72  # 1800 s: exp(-1) of the slow part's 49 m^2, nothing of the white 51
    c = np.mean(e[lag:] * e[:-lag]) / np.mean(e * e)
    assert c == pytest.approx(0.49 * math.exp(-1.0), abs=0.05)
    assert np.all(fx["pos_sigma_m"] == 10.0)  # the receiver reports the whole
    for bad in (-1.0, 11.0):
        with pytest.raises(ValueError, match="correlated_sigma_m"):
            sim.simulate_gps_fixes(truth, correlated_sigma_m=bad)
    plain = sim.simulate_gps_fixes(truth, rng=np.random.default_rng(4))
    again = sim.simulate_gps_fixes(truth, rng=np.random.default_rng(4), correlated_sigma_m=0.0)
    np.testing.assert_array_equal(plain["pos_ecef_m"], again["pos_ecef_m"])


@pytest.mark.parametrize("period_s, correlated_m, correlation_s", [(25.0, 7.0, 1800.0), (1.0, 3.0, 600.0)])
def test_slowly_varying_fix_errors_stay_covered(truth0, period_s, correlated_m, correlation_s):
    """Fixes whose 10-m error is partly a slowly varying one (a receiver's ionosphere and
    ephemeris): no ``ok`` estimate past the 99.9 % NEES bound (3 dof, position).  Taking the
    fixes as independent left 70 % of the rows past at 25-s fixes (7 m over 30 min) and 88 %
    at 1-s fixes (3 m over 10 min), sigma 2.2 m against 7 m of error."""
    fixes = sim.simulate_gps_fixes(
        truth0,
        rng=np.random.default_rng(21),
        period_s=period_s,
        correlated_sigma_m=correlated_m,
        correlation_s=correlation_s,
    )
    t_out = truth0["t_gps_s"][::5]

    def past(config):
        res = ob.run_orbit_processor(fixes, t_out, config)
        e = _errors(truth0, res)
        ok = (res["quality"] == "ok")[e["keep"]]
        p3 = res["cov"][e["keep"]][:, :3, :3]
        er = e["er"][e["keep"]]
        nees = np.einsum("ni,ni->n", er, np.linalg.solve(p3, er[..., None])[..., 0])
        return int(np.sum(ok & (nees > chi2.quantile(0.999, 3)))), int(ok.sum())

    n_past, n_ok = past(None)
    assert n_ok > 1500 and n_past == 0
    n_past, n_ok = past(oe.OrbitFilterConfig(fix_error_correlated_sigma_m=0.0))
    assert n_past > 0.1 * n_ok  # what the states are for


def test_after_a_glitch_one_hertz_fixes_with_outliers_confirm_the_good_track(truth0):
    """1-Hz fixes, 5 % of them 1 km off, and a 500-s glitch 300 m off: the state restarted
    after it is confirmed within minutes, the outliers taken as outliers (with a refusal
    restarting it, 150 fixes in a row without an outlier were needed: ``acquiring`` for the
    remaining 2 h of the run); no ``ok`` estimate past 4.5 sigma."""
    fixes = sim.simulate_gps_fixes(truth0, rng=np.random.default_rng(3), period_s=1.0, outlier_fraction=0.05)
    t_fix = fixes["t_gps_s"]
    glitch = (t_fix >= t_fix[0] + 3600.0) & (t_fix < t_fix[0] + 4100.0)
    fixes["pos_ecef_m"][glitch] += np.array([0.0, 180.0, 240.0])
    t_out = truth0["t_gps_s"][::5]
    res = ob.run_orbit_processor(fixes, t_out)
    e = _errors(truth0, res, settle_s=0.0)
    ok = res["quality"] == "ok"
    assert np.all(np.abs(e["er"][ok]) < 4.5 * res["sigma"][ok, :3])
    after = t_out > t_fix[0] + 4100.0 + 600.0
    assert np.mean(ok[after]) > 0.99


def test_a_storm_tenfold_density_in_an_hour_stays_covered():
    """The density rising tenfold over an hour from the 60th minute (a geomagnetic storm;
    the truth's ballistic coefficient divided in twelve steps): the drag scale follows
    (``drag_scale_tau_s`` 3 h, ``drag_scale_sigma`` 10), and no ``ok`` estimate is past the
    99.9 % NEES bound on position.  With a day's correlation and sigma 3 the scale lagged
    and 21 % of the `ok` rows were (an independent sweep, 5 seeds)."""
    base = _truth(1)
    keys = ("t_gps_s", "r_gcrs_m", "v_gcrs_m_s", "r_ecef_m", "v_ecef_m_s")
    k0 = 3600
    truth = {k: base[k][: k0 + 1] for k in keys}
    for i in range(12):
        seg = sim.propagate_truth(
            truth["r_gcrs_m"][-1],
            truth["v_gcrs_m_s"][-1],
            truth["t_gps_s"][-1],
            300.0 if i < 11 else 10800.0 - k0 - 3300.0,
            ballistic_coeff_kg_m2=base["ballistic_coeff_kg_m2"] / 10.0 ** ((i + 1) / 12),
            seed=1,
        )
        truth = {k: np.concatenate([truth[k], seg[k][1:]]) for k in keys}
    fixes = sim.simulate_gps_fixes(truth, rng=np.random.default_rng(5))
    t_out = truth["t_gps_s"][::5]
    res = ob.run_orbit_processor(fixes, t_out)
    er = _errors(truth, res, settle_s=0.0)["er"]
    ok = (res["quality"] == "ok") & (t_out - t_out[0] >= 1800.0)
    p3 = res["cov"][ok][:, :3, :3]
    nees = np.einsum("ni,ni->n", er[ok], np.linalg.solve(p3, er[ok][..., None])[..., 0])
    past = int((nees > chi2.quantile(0.999, 3)).sum())
    assert ok.sum() > 1500 and past <= 2, (past, float(nees.max()))


@pytest.fixture(scope="module")
def windowed():
    """5 h of truth, GPS on for 5 min every 90 (each window a restart: the gap is over
    ``max_gap_propagation_s``), fixes every 25 s."""
    tr = _truth(2, hours=5.0)
    t_rel = tr["t_gps_s"] - tr["t_gps_s"][0]
    windows = [(k * 5400.0, k * 5400.0 + 300.0) for k in range(4)]
    gaps = [(b, a2) for (_, b), (a2, _) in zip(windows, windows[1:])] + [(windows[-1][1], t_rel[-1] + 1.0)]
    return tr, windows, sim.simulate_gps_fixes(tr, rng=np.random.default_rng(4), gaps=gaps)


@pytest.mark.parametrize("glitched, outlier_first", [((2,), None), ((2, 3), None), ((2,), 1)])
def test_a_glitched_window_after_a_long_gap_is_never_ok(windowed, glitched, outlier_first):
    """A receiver's glitch covering whole windows 300 m off (and a 1-km outlier at a clean
    window's first fix): the last confirmed track, carried to a window's first fix, refuses
    it, so the new state must hold 300 s before it is confirmed - longer than the window -
    and a glitched window's fixes never become ``ok`` (they were ``ok`` 300 m off from the
    second fix until the next window).  The track is kept until a start is confirmed (a
    second glitched window is asked too) and asked again at a refused start (an outlier
    first fix costs one fix, not the window).  Clean windows confirm at their second fix."""
    tr, windows, fixes = windowed
    fixes = {k: np.array(v, copy=True) for k, v in fixes.items()}
    f_rel = fixes["t_gps_s"] - tr["t_gps_s"][0]
    for w in glitched:
        fixes["pos_ecef_m"][(f_rel >= windows[w][0]) & (f_rel < windows[w][1])] += np.array([0.0, 180.0, 240.0])
    if outlier_first is not None:
        fixes["pos_ecef_m"][int(np.searchsorted(f_rel, windows[outlier_first][0]))] += np.array([1000.0, 0.0, 0.0])
    t_out = tr["t_gps_s"][::5]
    res = ob.run_orbit_processor(fixes, t_out)
    e = _errors(tr, res, settle_s=0.0)
    ok = res["quality"] == "ok"
    assert res["counters"]["gap_reinit"] == 3 and res["counters"]["gap_doubted"] >= len(glitched)
    assert not np.any(np.abs(e["er"][ok]) > 4.5 * res["sigma"][ok, :3])
    out_rel = t_out - tr["t_gps_s"][0]
    for k, (a, b) in enumerate(windows[1:], start=1):
        if k not in glitched:  # ok within a minute (two fixes; three after an outlier)
            assert ok[(out_rel > a + 75.0) & (out_rel < b)].all()


def test_an_outlier_after_a_long_gap_is_never_ok(truth0):
    """A GPS gap longer than ``max_gap_propagation_s`` (the filter starts again) ended by a fix
    1 km off: the estimates stand on it only as ``acquiring``; every ``ok`` one is within
    4.5 sigma of the truth on every axis."""
    gap = (3600.0, 3600.0 + 1900.0)
    fixes = sim.simulate_gps_fixes(truth0, rng=np.random.default_rng(12), gaps=[gap])
    after = int(np.searchsorted(fixes["t_gps_s"] - truth0["t_gps_s"][0], gap[1]))
    fixes["pos_ecef_m"][after] += np.array([0.0, 600.0, 800.0])
    t_out = truth0["t_gps_s"][::5]
    res = ob.run_orbit_processor(fixes, t_out)
    assert res["n_start_refused"] == 1
    e = _errors(truth0, res, settle_s=0.0)
    ok = res["quality"] == "ok"
    sig = res["sigma"][:, :3]
    assert np.all(np.abs(e["er"][ok]) < 4.5 * sig[ok])
    wrong = np.linalg.norm(e["er"], axis=1) > 500.0
    assert wrong.any() and set(res["quality"][wrong]) == {"acquiring"}


def test_sigma_zero_means_configured_noise(truth0):
    fixes = sim.simulate_gps_fixes(truth0, rng=np.random.default_rng(10), report_sigma=False)
    assert np.all(fixes["pos_sigma_m"] == 0)
    cfg = oe.OrbitFilterConfig(pos_sigma_m=10.0, vel_sigma_m_s=0.01)
    ekf = oe.OrbitEKF(cfg)
    ekf.initialize_from_fix(GpsFix.from_table(fixes, 0))
    b = cfg.fix_error_correlated_sigma_m  # the slowly varying error's prior comes on top
    assert np.allclose(np.sqrt(np.diag(ekf.p)[:3]), math.hypot(10.0, b), rtol=1e-6)
    assert np.allclose(np.sqrt(np.diag(ekf.p)[3:6]), 0.01, rtol=0.05)  # + omega x r coupling


def test_state_ecef_round_trip(truth0):
    fixes = sim.simulate_gps_fixes(truth0, rng=np.random.default_rng(11), pos_sigma_m=0.0, vel_sigma_m_s=0.0)
    ekf = oe.OrbitEKF()
    ekf.initialize_from_fix(GpsFix(fixes["t_gps_s"][3], fixes["pos_ecef_m"][3], fixes["vel_ecef_m_s"][3]))
    r_e, v_e = ekf.state_ecef()
    np.testing.assert_allclose(r_e, fixes["pos_ecef_m"][3], atol=1e-6)
    np.testing.assert_allclose(v_e, fixes["vel_ecef_m_s"][3], atol=1e-9)


def test_joseph_update_matches_filterpy():
    import filterpy.kalman

    filterpy = filterpy.kalman
    rng = np.random.default_rng(3)
    ekf = oe.OrbitEKF()
    t = 1.4e9
    r_e = np.array([4.0e6, 3.0e6, 4.0e6])
    v_e = np.array([-4000.0, 5000.0, 1500.0])
    ekf.initialize_from_fix(GpsFix(t, r_e, v_e, [10, 10, 10], [0.01, 0.01, 0.01]))
    n = ekf.p.shape[0]  # r, v, w, drag scale, the fixes' slowly varying error
    assert n == 13
    a = rng.normal(size=(n, n))
    ekf.p = ekf.p + 1e-3 * (a @ a.T) * np.outer(np.sqrt(np.diag(ekf.p)), np.sqrt(np.diag(ekf.p)))
    ekf.x[6:9] = [2e-7, -1e-7, 3e-7]  # every state away from zero, the fix-error states too
    ekf.x[ekf.nd :] = [1.5, -2.0, 0.7]
    x0, p0 = ekf.x.copy(), ekf.p.copy()
    meas_r, meas_v = r_e + rng.normal(size=3) * 5, v_e + rng.normal(size=3) * 0.005
    z, r = fix_to_gcrs(GpsFix(t, meas_r, meas_v), np.full(3, 10.0), np.full(3, 0.01))
    assert ekf.update_gps(GpsFix(t, meas_r, meas_v, [10, 10, 10], [0.01, 0.01, 0.01])).decision == "used"
    kf = filterpy.KalmanFilter(dim_x=n, dim_z=6)
    kf.x, kf.P, kf.R = x0.copy(), p0.copy(), r
    kf.H = np.hstack([np.eye(6), np.zeros((6, n - 6))])
    kf.H[:3, ekf.nd :] = np.eye(3)  # the fixes' slowly varying error states
    kf.update(z)
    # Per state: its change by the update to 1e-9 of its prior sigma.
    np.testing.assert_array_less(np.abs(ekf.x - kf.x), 1e-9 * np.sqrt(np.diag(p0)))
    np.testing.assert_allclose(ekf.p, kf.P, rtol=1e-8, atol=1e-12 * np.abs(kf.P).max())


def test_rts_recursion_matches_filterpy_on_a_linear_model():
    """rts_smooth on a linear-Gaussian history equals filterpy's rts_smoother."""
    import filterpy.kalman

    filterpy = filterpy.kalman
    rng = np.random.default_rng(4)
    dt = 1.0
    f = np.array([[1.0, dt], [0.0, 1.0]])
    q = np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]]) * 0.01
    h = np.array([[1.0, 0.0]])
    kf = filterpy.KalmanFilter(dim_x=2, dim_z=1)
    kf.x, kf.P, kf.F, kf.Q, kf.H, kf.R = np.zeros(2), np.eye(2) * 10, f, q, h, np.array([[0.5]])
    xs, ps, hist = [], [], []
    for k in range(40):
        if k:
            kf.predict()
        x_pred, p_pred = kf.x.copy(), kf.P.copy()
        kf.update(np.array([0.3 * k + rng.normal() * 0.7]))
        xs.append(kf.x.copy())
        ps.append(kf.P.copy())
        hist.append(oe.FilterStep(float(k), f if k else None, x_pred, p_pred, kf.x.copy(), kf.P.copy(), True))
    ref_x, ref_p, _, _ = kf.rts_smoother(np.array(xs), np.array(ps), Fs=[f] * 40, Qs=[q] * 40)
    _, sx, sp = ob.rts_smooth(hist)
    np.testing.assert_allclose(sx, ref_x, atol=1e-10)
    np.testing.assert_allclose(sp, ref_p, atol=1e-10)


def test_information_floor_is_below_the_targets(truth0, nominal, monkeypatch):
    """Truth dynamics + zero process noise: what 10 m / 1 cm/s fixes every 25 s support."""
    fixes, res, _ = nominal
    monkeypatch.setattr(ob, "OrbitEKF", sim.truth_anchored_ekf(truth0))
    cfg = oe.OrbitFilterConfig(
        dmc_sigma_m_s2=1e-12,
        init_dmc_sigma_m_s2=1e-12,
        dmc_tau_s=1e6,
        estimate_drag_scale=False,
        fix_error_correlated_sigma_m=0.0,  # the truth's fixes are independent
    )
    t_out = truth0["t_gps_s"][::5]
    floor = _errors(truth0, ob.run_orbit_filter(fixes, t_out, cfg))
    floor_s = _errors(truth0, ob.run_orbit_filter(fixes, t_out, cfg, smooth=True))
    assert floor["rms_r"] < 1.75 and floor_s["rms_r"] < 0.56  # measured 1.33 m, 0.43 m
    assert floor["rms_v"] < 0.002  # measured 1.3 mm/s
    assert 2.0 < floor["nees"].mean() < 9.0  # measured 3.6
    # The flight filter (EGM2008 34x34, a drag scale, small DMC, the fixes' slowly varying
    # error this truth does not draw) comes within 1.8x of it (measured 1.66x).
    assert _errors(truth0, res)["rms_r"] < 1.8 * floor["rms_r"]


def test_near_exact_dynamics_with_small_dmc():
    """Truth with gravity cut at EGM2008 8x8 (+ NRLMSISE-00 drag, Sun/Moon, SRP): the filter
    with the EGM96 8x8 field (``gravity_degree`` 0; Sun and Moon modelled, drag model wrong
    by the atmosphere, activity and B) and a 30x smaller DMC meets the issue's targets - its
    gap on the full truth is the gravity field beyond 8x8."""
    tr = _truth_kw(0, gravity_degree=8)
    fixes = sim.simulate_gps_fixes(tr, rng=np.random.default_rng(1000))
    cfg = oe.OrbitFilterConfig(
        dmc_sigma_m_s2=1e-6,
        init_dmc_sigma_m_s2=1e-6,
        dmc_tau_s=600.0,
        gravity_degree=0,
        estimate_drag_scale=False,
        fix_error_correlated_sigma_m=0.0,  # the truth's fixes are independent
    )
    t_out = tr["t_gps_s"][::5]
    e = _errors(tr, ob.run_orbit_processor(fixes, t_out, cfg))
    es = _errors(tr, ob.run_orbit_filter(fixes, t_out, cfg, smooth=True))
    assert e["rms_r"] < 1.9 and es["rms_r"] < 1.2  # measured 1.46 m, 0.90 m
    assert e["rms_v"] < 0.0025  # measured 1.7 mm/s
    assert 1.5 < e["nees"].mean() < 9.0
