"""The range-only benches' information bounds (bench/bench_range_only.py) against each other:
the Riccati recursion under the filter's model of what it does not know
(``bound_with_process_noise``) is the batch Cramer-Rao bound with the dynamics exact
(``bound``) once that model knows everything, and never below it otherwise."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from flight_harness import REPO

sys.path.insert(0, str(REPO / "bench"))
from bench_range_only import bound, bound_with_process_noise  # noqa: E402

from pygnc.config import Config, with_overrides  # noqa: E402
from pygnc.estimation import orbit_dynamics as od  # noqa: E402
from pygnc.estimation.formation_filter import FormationFilter  # noqa: E402
from pygnc.processors.formation import filter_config_from  # noqa: E402

T0_GPS_S = 1.4e9


def _truth(config: Config) -> dict:
    """An hour of two spacecraft 3-4 km apart (along-track, radial and cross-track) on the
    flight model itself, ranged every 10 s between its samples: the keys the bounds read from
    a simulated truth."""
    model = FormationFilter(filter_config_from(config)).peer_model
    r = 6_900e3
    v = (3.986004418e14 / r) ** 0.5
    own = np.array([r, 0.0, 0.0, 0.0, v * 0.6, v * 0.8, 0.0, 0.0, 0.0, 1.0])
    peer = own.copy()
    peer[0:3] += [300.0, -2000.0, 2200.0]
    peer[3:6] += [0.1, 0.05, -0.2]
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
