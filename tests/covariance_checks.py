"""Scale-aware checks of covariance matrices, shared by the estimator tests.

A covariance mixes metres, m/s, m/s^2 and dimensionless states whose variances span 20
orders of magnitude, so "eigenvalues above -1e-9 x the largest element" says nothing about
the small states.  These checks work on the correlation matrix D^-1 P D^-1 (D the standard
deviations), whose eigenvalues are scale-free: all positive means positive definite, and
the smallest says how close to singular the matrix is in any units.
"""

from __future__ import annotations

import numpy as np


def correlation(p: np.ndarray) -> np.ndarray:
    """Correlation matrices of (..., n, n) covariances (every variance must be positive)."""
    d = np.sqrt(np.diagonal(p, axis1=-2, axis2=-1))
    assert np.all(d > 0), "a variance is not positive"
    return p / (d[..., :, None] * d[..., None, :])


def assert_symmetric_positive_definite(p: np.ndarray, min_eig: float = 1e-12, idx=None) -> None:
    """Every (n, n) matrix in *p* (..., n, n) - or its sub-block *idx* (indices) - is
    symmetric to 1e-9 of its scale and has correlation eigenvalues above *min_eig*."""
    p = np.asarray(p, dtype=float)
    if idx is not None:
        idx = np.asarray(idx)
        p = p[..., idx[:, None], idx[None, :]]
    c = correlation(p)
    np.testing.assert_allclose(c, np.swapaxes(c, -1, -2), rtol=0, atol=1e-9)
    lam = np.linalg.eigvalsh(0.5 * (c + np.swapaxes(c, -1, -2)))
    assert lam.min() > min_eig, f"smallest correlation eigenvalue {lam.min():.3e} <= {min_eig:.1e}"
