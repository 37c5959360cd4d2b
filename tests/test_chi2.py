"""pygnc.estimation.chi2 (the flight's chi-square quantiles, no scipy) against scipy.stats."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2 as ref

from pygnc.estimation import chi2


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 200), st.floats(1e-6, 1.0 - 1e-9))
def test_quantile_matches_scipy(dof, p):
    assert chi2.quantile(p, dof) == pytest.approx(float(ref.ppf(p, dof)), rel=1e-8)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 200), st.floats(0.0, 2000.0))
def test_cdf_matches_scipy(dof, x):
    assert chi2.cdf(x, dof) == pytest.approx(float(ref.cdf(x, dof)), rel=1e-9, abs=1e-13)


def test_the_gates_values():
    """The gates' thresholds (the orbit table used to hard-code 27.856317 for 6 dof, off by
    2.4e-5 from the true 27.856341)."""
    assert chi2.quantile(0.9999, 6) == pytest.approx(27.856341, abs=1e-6)
    assert chi2.quantile(0.9999, 1) == pytest.approx(15.136705, abs=1e-6)
    assert chi2.quantile(0.95, 3) == pytest.approx(7.814728, abs=1e-6)


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_quantile_refuses_probabilities_outside_0_1(p):
    with pytest.raises(ValueError):
        chi2.quantile(p, 3)


def test_quantile_refuses_nonpositive_dof():
    with pytest.raises(ValueError):
        chi2.quantile(0.5, 0)
