"""Chi-square distribution for the estimators' gates: CDF and quantiles, no scipy.

The flight software installs numpy only, so the gates' thresholds are computed here from
the regularised lower incomplete gamma function P(k/2, x/2) (series for x < a + 1, the
Legendre continued fraction otherwise, evaluated by the modified Lentz method; see
Abramowitz & Stegun 6.5.29 and 6.5.31), inverted by bisection.  Relative accuracy better than 1e-8
for 1-200 degrees of freedom and probabilities up to 1 - 1e-9, checked against
``scipy.stats.chi2`` in ``tests/test_chi2.py``.  Results are cached: the estimators ask
for a handful of (probability, dof) pairs.
"""

from __future__ import annotations

import functools
import math

__all__ = ["cdf", "quantile"]


def _lower_gamma_regularized(a: float, x: float) -> float:
    """P(a, x) = gamma(a, x) / Gamma(a) for a > 0, x >= 0."""
    if x <= 0.0:
        return 0.0
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        # Series: P = x^a e^-x / Gamma(a+1) * sum_n x^n / ((a+1)...(a+n)).
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return min(1.0, total * math.exp(log_prefix))
    # Continued fraction for Q = 1 - P (modified Lentz).
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return max(0.0, 1.0 - math.exp(log_prefix) * h)


def cdf(x: float, dof: int) -> float:
    """P(X <= *x*) for X chi-square with *dof* degrees of freedom."""
    if dof <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {dof}")
    return _lower_gamma_regularized(dof / 2.0, max(0.0, float(x)) / 2.0)


@functools.lru_cache(maxsize=256)
def quantile(probability: float, dof: int) -> float:
    """The *x* with ``cdf(x, dof) == probability`` (0 < probability < 1)."""
    p = float(probability)
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {probability}")
    if dof <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {dof}")
    lo, hi = 0.0, max(1.0, 2.0 * dof)
    while cdf(hi, dof) < p:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if cdf(mid, dof) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return 0.5 * (lo + hi)
