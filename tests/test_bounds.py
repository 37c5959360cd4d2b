"""The information bounds of ground.simulate.bounds: the linear core against analytic answers, the
orbit bound against a filter whose dynamics are the truth's (it is that filter), and the
attitude bound's consistency and its place below the flight MEKF.
"""

import math

import numpy as np
import pytest
from attitude_support import errors, issue_settings, run_core

from ground.replay import orbit_filter as ob
from ground.simulate import bounds
from ground.simulate import orbits as sim
from ground.simulate import simulator as simulate
from pygnc import timebase
from pygnc.estimation import chi2
from pygnc.estimation import orbit_ekf as oe


def test_a_constant_measured_n_times_has_the_analytic_variance():
    """x constant, prior variance 4, N measurements of variance 1: 1 / (1/4 + N); the error
    of each of many draws follows the same algebra, so their mean square is that variance."""
    draws = 20_000
    rng = np.random.default_rng(1)
    p, e = np.array([[4.0]]), 2.0 * rng.standard_normal((1, draws))
    for n in range(1, 11):
        p, e = bounds.kalman_predict(p, e, np.eye(1))
        p, e = bounds.kalman_update(p, e, np.eye(1), np.eye(1), rng.standard_normal((1, draws)))
        assert p[0, 0] == pytest.approx(1.0 / (0.25 + n), rel=1e-12)
    assert np.mean(e**2) == pytest.approx(p[0, 0], rel=0.05)


def test_a_random_walk_settles_at_the_riccati_answer():
    """x_k+1 = x_k + w (variance q), measured with variance r every step: the prior variance
    settles at M = (q + sqrt(q^2 + 4 q r)) / 2, the posterior at M r / (M + r)."""
    q, r = 0.3, 2.0
    m = 0.5 * (q + math.sqrt(q * q + 4 * q * r))
    rng = np.random.default_rng(2)
    draws = 20_000
    p, e = np.array([[10.0]]), math.sqrt(10.0) * rng.standard_normal((1, draws))
    for _ in range(200):
        p, e = bounds.kalman_predict(p, e, np.eye(1), np.array([[q]]), math.sqrt(q) * rng.standard_normal((1, draws)))
        p, e = bounds.kalman_update(p, e, np.eye(1), np.array([[r]]), math.sqrt(r) * rng.standard_normal((1, draws)))
    assert p[0, 0] == pytest.approx(m * r / (m + r), rel=1e-9)
    assert np.mean(e**2) == pytest.approx(p[0, 0], rel=0.05)


def test_a_two_state_update_matches_the_information_form():
    """Correlated states, one row measured: the Joseph update equals (P^-1 + H' R^-1 H)^-1."""
    p0 = np.array([[4.0, 1.5], [1.5, 2.0]])
    h, r = np.array([[1.0, -0.5]]), np.array([[0.7]])
    p, _ = bounds.kalman_update(p0, np.zeros(2), h, r, np.zeros(1))
    np.testing.assert_allclose(p, np.linalg.inv(np.linalg.inv(p0) + h.T @ h / r[0, 0]), rtol=1e-12)


def _truth(seed, hours):
    rng = np.random.default_rng(seed)
    t0 = math.floor(timebase.gps_from_utc_unix(1.74e9 + rng.uniform(0, 3e6)))
    r0, v0 = sim.initial_state_from_elements(6_878_137.0, 0.001, math.radians(97.4), *rng.uniform(0, 2 * math.pi, 3))
    return sim.propagate_truth(r0, v0, t0, hours * 3600.0, seed=seed)


def test_the_orbit_bound_is_the_filter_with_the_truths_dynamics(monkeypatch):
    """With no unknown force scales the bound is what the flight EKF does when its dynamics
    are the truth's (truth-anchored, no process noise): the same covariance and, on the same
    fixes, the same error; an unknown drag and SRP scale raise it."""
    tr = _truth(3, 1.0)
    fixes = sim.simulate_gps_fixes(tr, rng=np.random.default_rng(3))
    settle = 1200.0
    b0 = bounds.orbit_bound(tr, fixes, drag_scale_sigma=0.0, srp_scale_sigma=0.0, settle_s=settle)
    monkeypatch.setattr(ob, "OrbitEKF", sim.truth_anchored_ekf(tr))
    cfg = oe.OrbitFilterConfig(
        dmc_sigma_m_s2=1e-12,
        init_dmc_sigma_m_s2=1e-12,
        dmc_tau_s=1e6,
        estimate_drag_scale=False,
        fix_error_correlated_sigma_m=0.0,  # the bound's fixes are independent, as drawn
    )
    res = ob.run_orbit_filter(fixes, b0["t_gps_s"], cfg)
    keep = b0["t_gps_s"] - tr["t_gps_s"][0] >= settle
    i = np.searchsorted(tr["t_gps_s"], res["t_gps_s"][keep])
    err = res["r_gcrs_m"][keep] - tr["r_gcrs_m"][i]
    sig = math.sqrt(np.mean(np.sum(res["sigma"][keep, :3] ** 2, axis=1)))
    assert sig == pytest.approx(b0["expected_pos_m"], rel=0.03)
    assert math.sqrt(np.mean(np.sum(err**2, axis=1))) == pytest.approx(b0["realised_pos_m"], rel=0.05)
    b = bounds.orbit_bound(tr, fixes, settle_s=settle)
    assert b0["expected_pos_m"] < b["expected_pos_m"] < 3.0
    # Its error is inside its covariance: NEES (6 dof) mean well below the 99.9 % bound.
    assert np.mean(b["nees"][keep]) < chi2.quantile(0.999, 6)


def test_the_attitude_bound_is_consistent_and_below_the_flight_mekf():
    """On a 40-min issue scenario (one eclipse entry) the bound's own error is inside its
    covariance, and the flight MEKF does not beat the bound by more than its scatter."""
    sc = simulate.simulate(issue_settings(1, 2400.0))
    b = bounds.attitude_bound(sc, settle_s=600.0)
    keep = b["t_s"] >= 600.0
    assert 1.0 < np.mean(b["nees"][keep]) < 6.0
    assert 0.0 < b["expected_deg"] < 3.0
    _, outs, idx = run_core(sc)
    e = errors(sc, outs, idx)
    rms = math.sqrt(np.mean(e["angle_deg"][e["t_s"] >= 600.0] ** 2))
    assert rms > 0.7 * b["expected_deg"]
