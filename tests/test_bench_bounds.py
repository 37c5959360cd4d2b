"""The range-only benches' information bounds (bench/bench_range_only.py) against each other:
the Riccati recursion under the filter's model of what it does not know
(``bound_with_process_noise``) is the batch Cramer-Rao bound with the dynamics exact
(``bound``) once that model knows everything, and never below it otherwise; the formation
filter's own recursion with the own orbit estimated from its fixes
(``bound_with_own_orbit``) is that bound when the fixes are exact, and above it in the
direction no range sees when they are not; and the errors of the consistent twin
(``consistent_twin``) are distributed as that recursion's covariance says."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from flight_harness import REPO

sys.path.insert(0, str(REPO / "bench"))
from bench_range_only import (  # noqa: E402
    bound,
    bound_with_own_orbit,
    bound_with_process_noise,
    consistent_twin,
    own_fix_errors,
)

from pygnc.config import Config, with_overrides  # noqa: E402
from pygnc.estimation import orbit_dynamics as od  # noqa: E402
from pygnc.estimation.formation_filter import FormationFilter  # noqa: E402
from pygnc.processors.formation import filter_config_from  # noqa: E402

T0_GPS_S = 1.4e9


def _truth(config: Config, dr_m=(300.0, -2000.0, 2200.0), dv_m_s=(0.1, 0.05, -0.2), model=None) -> dict:
    """An hour of two spacecraft 3-4 km apart (along-track, radial and cross-track; or *dr_m*,
    *dv_m_s* apart in GCRS, the own orbit's plane the one of x and (0, 0.6, 0.8)) on the
    flight model itself (or *model*), ranged every 10 s between its samples: the keys the
    bounds read from a simulated truth."""
    model = model or FormationFilter(filter_config_from(config)).peer_model
    r = 6_900e3
    v = (3.986004418e14 / r) ** 0.5
    own = np.array([r, 0.0, 0.0, 0.0, v * 0.6, v * 0.8, 0.0, 0.0, 0.0, 1.0])
    peer = own.copy()
    peer[0:3] += dr_m
    peer[3:6] += dv_m_s
    t = T0_GPS_S + np.arange(0.0, 3600.0, 10.0)
    states = [[own[:6]], [peer[:6]]]
    for _ in t[1:]:
        own, _ = od.propagate(own, 10.0, model, want_phi=False, t_gps_s=float(t[len(states[0]) - 1]))
        peer, _ = od.propagate(peer, 10.0, model, want_phi=False, t_gps_s=float(t[len(states[1]) - 1]))
        states[0].append(own[:6])
        states[1].append(peer[:6])
    x = np.array(states)  # (2, n, 6)
    return {
        "t_gps_s": t,
        "r_gcrs_m": x[:, :, 0:3],
        "v_gcrs_m_s": x[:, :, 3:6],
        "radio_id": np.array([0x4A, 0x4B]),
        "range_t_gps_s": t[1:] - 6.5,  # (between the samples: the first before the bounds' start, t[1])
        "range_observer": np.zeros(t.size - 1, dtype=int),
        "range_peer": np.ones(t.size - 1, dtype=int),
        "range_valid": np.ones(t.size - 1, dtype=bool),
        "gps_t_gps_s": t[1:] - 3.0,  # own fixes (between the samples too)
        "gps_fault": np.zeros((2, t.size - 1), dtype=int),
    }


KNOWS_EVERYTHING = {
    "formation_filter": {
        "diff_dmc_sigma_m_s2": 0.0,
        "diff_dmc_sigma_per_km_da_m_s2": 0.0,
        "estimate_peer_drag_scale": False,
        "estimate_range_time_offset": False,
        "range_tag_resolution_s": 0.0,
        "atmosphere": "exponential",
    },
    "range_only": {"diff_dmc_sigma_m_s2": 0.0, "diff_dmc_sigma_per_km_da_m_s2": 0.0},
}


@pytest.fixture(scope="module")
def exact():
    config = with_overrides(Config(), KNOWS_EVERYTHING, "test")
    return config, _truth(config)


def test_the_filters_model_knowing_everything_is_the_exact_dynamics_bound(exact):
    config, truth = exact
    t_out = truth["t_gps_s"][[30, 120, 300]]
    b3, bl = bound(truth, 1, config, t_out)
    q3, ql = bound_with_process_noise(truth, 1, config, t_out)
    assert b3[-1] < 50.0 and np.all(b3 > 0.0)  # (5 minutes of ranges leave the prior's km; an hour, metres)
    np.testing.assert_allclose(q3, b3, rtol=5e-3)  # (the two integrate the orbit over different steps)
    np.testing.assert_allclose(ql, bl, rtol=5e-3)  # (the two integrate the orbit over different steps)


def test_what_the_filters_model_does_not_know_only_raises_the_bound(exact):
    _, truth = exact
    config = with_overrides(Config(), {"formation_filter": {"atmosphere": "exponential"}}, "test")
    t_out = truth["t_gps_s"][[30, 120, 300]]
    b3, _ = bound(truth, 1, config, t_out)
    q3, _ = bound_with_process_noise(truth, 1, config, t_out)
    assert np.all(q3 >= b3 * (1.0 - 1e-6))
    assert q3[-1] > 1.01 * b3[-1]  # the process noise is felt an hour on


def test_the_bounds_see_the_relative_geometry_whatever_the_truths_absolute_orbit(exact):
    """The bounds propagate both spacecraft with the flight model from the truth's start:
    a truth whose absolute orbits another force model carries elsewhere (J2 alone here,
    against the flight's 8x8 field: 160 m in the hour) gives the bounds of the same start and
    ranges - the flight model's partner less the truth's own position would be a relative
    geometry off by the two models' drift."""
    config, truth = exact
    j2 = FormationFilter(
        filter_config_from(with_overrides(config, {"orbit_filter": {"zonal_degree": 2, "tesseral_degree": 0}}, "j2"))
    ).peer_model
    other = _truth(config, model=j2)
    assert np.max(np.abs(other["r_gcrs_m"][0] - truth["r_gcrs_m"][0])) > 100.0  # (absolute orbits apart)
    t_out = truth["t_gps_s"][[30, 120, 300]]
    for fn in (bound, bound_with_process_noise):
        np.testing.assert_allclose(fn(other, 1, config, t_out), fn(truth, 1, config, t_out), rtol=1e-6)


def _ranges_on_samples(truth: dict) -> dict:
    """*truth* with each range at a sample: ``bound_with_own_orbit`` starts at the sample at
    or before the first range (a filter does not step back), the others at the one after
    it, so only then do they start from the same prior at the same epoch."""
    return {**truth, "range_t_gps_s": truth["t_gps_s"][1:].copy()}


def _prior_on_truth(truth: dict, more: dict | None = None, bias_known: bool = True) -> tuple[Config, tuple]:
    """(a configuration whose partner prior is exactly the truth's partner at the start - a
    downlinked orbit's 3 m, 5 mm/s - with the range bias known to a centimetre (*bias_known*)
    and *more*; the prior's state as ``consistent_twin`` takes it).  The bounds read only the
    prior's sigmas: they start on the truth."""
    from pygnc import frames

    j = frames.rv_gcrs_to_ecef_matrix(frames.gcrs_from_itrs_matrix(T0_GPS_S))
    x_ecef = j @ np.concatenate((truth["r_gcrs_m"][1][0], truth["v_gcrs_m_s"][1][0]))
    prior = {
        "t_gps_s": T0_GPS_S,
        "pos_ecef_m": [float(x) for x in x_ecef[:3]],
        "vel_ecef_m_s": [float(x) for x in x_ecef[3:]],
        "sigma_pos_m": 3.0,
        "sigma_vel_m_s": 0.005,
    }
    overrides = {
        "formation_filter": {"atmosphere": "exponential", **({"range_bias_sigma_m": 0.01} if bias_known else {})},
        "formation_peer_priors": {"0x4B": prior},
        **(more or {}),
    }
    return with_overrides(Config(), overrides, "test"), (T0_GPS_S, prior["pos_ecef_m"], prior["vel_ecef_m_s"])


def test_with_exact_own_fixes_the_own_orbit_bound_is_the_known_own_one(exact):
    config, truth = exact
    truth = _ranges_on_samples(truth)
    config = with_overrides(
        config,
        {
            "orbit_filter": {"pos_sigma_m": 1e-3, "vel_sigma_m_s": 1e-6},
            "formation_filter": {
                **KNOWS_EVERYTHING["formation_filter"],
                "own_dmc_sigma_m_s2": 0.0,
                "own_init_dmc_sigma_m_s2": 0.0,
            },
        },
        "test",
    )
    t_out = truth["t_gps_s"][[30, 120, 300]]
    q3, ql = bound_with_process_noise(truth, 1, config, t_out)
    o3, ol = bound_with_own_orbit(truth, 1, config, t_out)
    np.testing.assert_allclose(o3, q3, rtol=2e-3)
    np.testing.assert_allclose(ol, ql, rtol=2e-3)


def test_an_own_orbit_from_its_fixes_raises_the_bound_where_no_range_sees():
    # a partner in the own orbit's plane (radial and along-track): no range sees its cross-track
    truth = _ranges_on_samples(_truth(Config(), (300.0, -1200.0, -1600.0), (0.1, 0.03, 0.04)))
    config, _ = _prior_on_truth(truth, bias_known=False)  # (a downlinked orbit's few metres)
    exact_fixes = with_overrides(config, {"orbit_filter": {"pos_sigma_m": 1e-3, "vel_sigma_m_s": 1e-6}}, "test")
    t_out = truth["t_gps_s"][[30, 120, 300]]
    k3, kl, k_rtn = bound_with_own_orbit(truth, 1, exact_fixes, t_out, axes=True)
    o3, ol, o_rtn = bound_with_own_orbit(truth, 1, config, t_out, axes=True)
    assert np.all(o3 >= k3 * (1.0 - 1e-3))
    # the own estimate's error at the prior's epoch is in the relative cross-track (as an
    # oscillation over the orbit: at 5 and 20 minutes, not the half orbit after) ...
    assert np.all(o_rtn[:, 2] >= k_rtn[:, 2]) and np.all(o_rtn[:2, 2] > 1.1 * k_rtn[:2, 2])
    assert ol[-1] < 1.02 * kl[-1]  # ... and the ranges decide the line of sight either way
    # the fixes are what keeps it there: without them (every one faulted) the own error grows into it
    no_fixes = {**truth, "gps_fault": np.ones_like(truth["gps_fault"])}
    _, _, n_rtn = bound_with_own_orbit(no_fixes, 1, config, t_out, axes=True)
    assert np.all(n_rtn[1:, 2] > 1.5 * o_rtn[1:, 2])


def test_the_bounds_answer_in_the_order_asked(exact):
    config, truth = exact
    t_out = truth["t_gps_s"][[300, 30, 120]]
    order = np.argsort(t_out)
    for fn in (bound, bound_with_process_noise, bound_with_own_orbit):
        got, in_order = fn(truth, 1, config, t_out), fn(truth, 1, config, t_out[order])
        for a, b in zip(got, in_order):
            np.testing.assert_allclose(a[order], b, rtol=1e-6)  # (a propagation back and forth: 5e-8)


def test_the_consistent_twin_errs_as_its_sigma_says():
    # the partner in the own plane with a downlinked prior (the geometry whose cross-track no
    # range sees), the own orbit from its fixes: the twin's errors at each output are drawn
    # from the recursion's covariance - NEES mean 3 and the 99.9 % bound's tail, error RMS
    # the bound's sigma - however correlated in time they are
    truth = _ranges_on_samples(_truth(Config(), (300.0, -1200.0, -1600.0), (0.1, 0.03, 0.04)))
    config, _ = _prior_on_truth(truth, bias_known=False)
    t_out = truth["t_gps_s"][[30, 120, 300]]
    draws = 4000
    nees, err2 = consistent_twin(truth, 1, config, t_out, draws=draws, seed=3)
    assert nees.shape == err2.shape == (draws, 3)
    # the mean of chi-square(3) over 4000 draws: 3 +- 0.04 (1 sd)
    np.testing.assert_allclose(nees.mean(axis=0), 3.0, atol=0.2)
    assert np.all(np.mean(nees > 16.266, axis=0) < 0.005)  # (0.001 expected: 4 of 4000)
    o3, _ = bound_with_own_orbit(truth, 1, config, t_out)
    np.testing.assert_allclose(np.sqrt(err2.mean(axis=0)), o3, rtol=0.05)
    # the same seed, the same draws (the bench's figures are reproducible)
    again, _ = consistent_twin(truth, 1, config, t_out, draws=draws, seed=3)
    np.testing.assert_array_equal(again, nees)


def test_the_twin_given_a_prior_starts_from_that_priors_error():
    # a prior exactly on the truth, exact own fixes and a range bias known to a centimetre:
    # every run starts with no relative error, so the twin errs far less than from a drawn
    # prior (3 m, 5 mm/s)
    truth = _ranges_on_samples(_truth(Config(), (300.0, -1200.0, -1600.0), (0.1, 0.03, 0.04)))
    config, state = _prior_on_truth(truth, {"orbit_filter": {"pos_sigma_m": 1e-3, "vel_sigma_m_s": 1e-6}})
    t_out = truth["t_gps_s"][[2, 30]]
    _, drawn = consistent_twin(truth, 1, config, t_out, draws=500, seed=4)
    _, given = consistent_twin(truth, 1, config, t_out, draws=500, seed=4, prior_state=state)
    assert np.all(np.sqrt(given.mean(axis=0)) < 0.2 * np.sqrt(drawn.mean(axis=0)))


def test_the_twin_given_the_own_fixes_noise_carries_it():
    # the own fixes' errors read from a message stream as the bench reads them (the fixes on
    # the truth's samples), then given to the twin: with a prior on the truth, a range bias
    # known to a centimetre and fixes without error every run errs far less than with the
    # fixes' 10 m drawn
    from pygnc import frames

    truth = _ranges_on_samples(_truth(Config(), (300.0, -1200.0, -1600.0), (0.1, 0.03, 0.04)))
    truth["gps_t_gps_s"] = truth["t_gps_s"][1:].copy()  # (the fixes on the samples)
    msgs = []
    for i, t in enumerate(truth["t_gps_s"][1:], start=1):
        x = frames.rv_gcrs_to_ecef_matrix(frames.gcrs_from_itrs_matrix(t)) @ np.concatenate(
            (truth["r_gcrs_m"][0][i], truth["v_gcrs_m_s"][0][i])
        )
        body = {"t_gps_s": float(t), "pos_ecef_m": list(x[:3] + [3.0, 0.0, 0.0]), "vel_ecef_m_s": list(x[3:])}
        msgs += [("gps_fix", {**body, "peer_id": 0, "valid": True}), ("gps_fix", {**body, "peer_id": 0x4B})]
    errors = own_fix_errors(truth, msgs)
    assert errors and len(errors) == len(msgs) // 2
    # 3 m off in ECEF, the velocity right in ECEF: in GCRS 3 m, and the Earth's rate times it
    w_3m = 7.292115e-5 * 3.0
    assert all(abs(np.linalg.norm(e[:3]) - 3.0) < 1e-6 for e in errors.values())
    assert all(abs(np.linalg.norm(e[3:]) - w_3m) < 1e-7 for e in errors.values())

    config, state = _prior_on_truth(truth)
    t_out = truth["t_gps_s"][[30, 120]]
    exact = {t: np.zeros(6) for t in errors}
    _, drawn = consistent_twin(truth, 1, config, t_out, draws=300, seed=5, prior_state=state)
    _, given = consistent_twin(truth, 1, config, t_out, draws=300, seed=5, prior_state=state, own_fix_errors=exact)
    # (later the runs' drawn process noise takes over: less, not far less)
    g, d = np.sqrt(given.mean(axis=0)), np.sqrt(drawn.mean(axis=0))
    assert g[0] < 0.5 * d[0] and g[1] < d[1]


def test_a_twin_given_its_own_start_keeps_the_partner_drawn_from_its_prior():
    # the own error replaced by a given fix's: the partner's (relative + own) stays as drawn
    import bench_range_only as bro

    config = Config()
    fc = bro.range_only_filter_config(filter_config_from(config), bro.range_only_config_from(config))
    e_own = np.array([30.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    twin = bro._ErrorTwin(fc, 4000, np.random.default_rng(6), own_fix_errors={round(T0_GPS_S - 10.0, 3): e_own})
    own = np.array([6.9e6, 0.0, 0.0, 0.0, 4.5e3, 6.0e3])
    peer = own + np.array([0.0, 2e3, 0.0, 0.0, 0.0, 0.0])
    r = np.diag([100.0] * 3 + [1e-4] * 3)
    twin.initialize(T0_GPS_S, own, r, peer, 9.0 * r)
    np.testing.assert_array_equal(twin.err[0:6], np.repeat(e_own[:, None], 4000, axis=1))
    partner = twin.err[9:15] + twin.err[0:6]
    assert np.all(np.abs(partner.mean(axis=1)[:3]) < 1.0)  # (sigma 30 m: 0.5 m for one sd of the mean)
    np.testing.assert_allclose(partner.std(axis=1)[:3], 30.0, rtol=0.05)
