"""The Earth's gravity field to high degree and order: EGM2008 (tide-free), its acceleration.

Coefficients
------------
``egm2008.npz`` next to this module (committed, degree and order :data:`TABLE_DEGREE`)
holds the fully normalised C and S of EGM2008 with its GM and reference radius (the same
as :mod:`pygnc.estimation.orbit_dynamics`'s).  ``scripts/make_egm2008_table.py`` makes it
from the EGM2008 model that ``brahe`` ships (NGA's public coefficients);
``tests/test_gravity_field.py`` checks that the two agree and that the acceleration here is
brahe's to rounding.

Evaluation
----------
The acceleration is Montenbruck and Gill's (Satellite Orbits, 3.2.4) sum over the solid
harmonics V_nm + i W_nm = (R/r)^(n+1) P_nm(sin phi) e^(i m lambda) of degree n + 1, with
weights fixed by the coefficients (:class:`GravityField`).  Those harmonics are not made by
the usual recursion over n and m (~N^2/2 steps of Python arithmetic, 0.5 ms at degree 40)
but from the fact that each fully normalised Legendre function of the geocentric
latitude, P_nm(sin phi) = cos^m(phi) x (a polynomial of degree n - m in sin phi), is a
finite Fourier series in phi of degree n: cosines of the frequencies of m's parity when
n - m is even, sines of the other parity when it is odd.  The series' coefficients are
computed once (a discrete Fourier transform of the stable normalised recursion, exact for
trigonometric polynomials); at run time every P_nm comes from four small matrix-vector
products with cos(k phi), sin(k phi), and the rest is elementwise: ~40 us at degree 40 on a
development machine, where the 8 x 8 recursion in Python floats took 50 us.  Exact to
rounding (1e-13 m/s^2 of ~8.4 m/s^2) everywhere, the poles included (the terms with m > 0
carry cos^m(phi) and vanish there whatever the longitude).

Everything is ITRS, SI units; pure computation (numpy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["TABLE_DEGREE", "TABLE_PATH", "GravityField", "load_table", "zonal_j"]

#: Where the committed coefficient table lives, and its degree and order.
TABLE_PATH = Path(__file__).with_name("egm2008.npz")
TABLE_DEGREE = 70

_TABLE: dict | None = None


def load_table() -> dict:
    """{'degree', 'gm_m3_s2', 'radius_m', 'c', 's' ((N+1, N+1) fully normalised, [n][m])}."""
    global _TABLE
    if _TABLE is None:
        with np.load(TABLE_PATH) as z:
            _TABLE = {
                "degree": int(z["degree"]),
                "gm_m3_s2": float(z["gm_m3_s2"]),
                "radius_m": float(z["radius_m"]),
                "c": z["c"].copy(),
                "s": z["s"].copy(),
            }
    return _TABLE


def write_table(
    path: str | Path, degree: int, gm_m3_s2: float, radius_m: float, c: npt.ArrayLike, s: npt.ArrayLike
) -> None:
    """Write the npz :func:`load_table` reads (used by scripts/make_egm2008_table.py)."""
    np.savez_compressed(
        path,
        degree=np.int64(degree),
        gm_m3_s2=np.float64(gm_m3_s2),
        radius_m=np.float64(radius_m),
        c=np.asarray(c, dtype=float),
        s=np.asarray(s, dtype=float),
    )


def zonal_j(degree: int) -> tuple[float, ...]:
    """Unnormalised zonal coefficients J_n = -sqrt(2n + 1) C_n0 of EGM2008, indexed by n
    (entries 0 and 1 zero), n <= *degree*."""
    c = load_table()["c"]
    return (0.0, 0.0) + tuple(-math.sqrt(2 * n + 1) * float(c[n, 0]) for n in range(2, degree + 1))


def _log_norm(n: int, m: int) -> float:
    """ln of the factor turning a fully normalised coefficient into an unnormalised one:
    C_nm = C̄_nm sqrt((2 - delta_m0)(2n + 1)(n - m)! / (n + m)!)."""
    return 0.5 * (math.log((2.0 if m else 1.0) * (2 * n + 1)) + math.lgamma(n - m + 1) - math.lgamma(n + m + 1))


def _legendre_normalised(degree: int, phi: np.ndarray) -> np.ndarray:
    """Fully normalised P̄_nm(sin phi) for n <= *degree* at the angles *phi* (any real value:
    cos(phi) keeps its sign, so the values are the trigonometric polynomials' own), by the
    standard column recursion; (degree + 1, degree + 1, phi.size), [n][m]."""
    u, c = np.sin(phi), np.cos(phi)
    p = np.zeros((degree + 1, degree + 1, phi.size))
    p[0, 0] = 1.0
    for m in range(degree + 1):
        if m > 0:
            p[m, m] = math.sqrt((2 * m + 1) / (2 * m) * (2.0 if m == 1 else 1.0)) * c * p[m - 1, m - 1]
        if m + 1 <= degree:
            p[m + 1, m] = math.sqrt(2 * m + 3) * u * p[m, m]
        for n in range(m + 2, degree + 1):
            a = math.sqrt((2 * n - 1) * (2 * n + 1) / ((n - m) * (n + m)))
            b = math.sqrt((2 * n + 1) * (n + m - 1) * (n - m - 1) / ((n - m) * (n + m) * (2 * n - 3)))
            p[n, m] = a * u * p[n - 1, m] - b * p[n - 2, m]
    return p


class GravityField:
    """The acceleration of the EGM2008 terms of degree 2..*degree* (all orders), less the
    zonal terms of degree below *first_zonal* (those an integrator evaluates itself at every
    stage; 2 keeps every zonal) and the central term.  :meth:`acceleration_itrs` at an ITRS
    position; see the module docstring for how."""

    def __init__(self, degree: int, first_zonal: int = 2):
        t = load_table()
        if not 2 <= degree <= t["degree"]:
            raise ValueError(f"gravity degree {degree} outside 2..{t['degree']} (the table's)")
        self.degree = int(degree)
        self.first_zonal = int(first_zonal)
        radius, gm = t["radius_m"], t["gm_m3_s2"]
        self.radius_m = radius
        top = degree + 1  # the harmonics of degree n + 1 carry the terms of degree n
        # Weights of each harmonic's (V, W) in (a_x, a_y, a_z), unnormalised coefficients (M&G 3.33).
        wv: dict[tuple[int, int], list[float]] = {}
        ww: dict[tuple[int, int], list[float]] = {}

        def add(a: int, j: int, axis: int, v: float = 0.0, w: float = 0.0) -> None:
            wv.setdefault((a, j), [0.0, 0.0, 0.0])[axis] += v
            ww.setdefault((a, j), [0.0, 0.0, 0.0])[axis] += w

        for n in range(2, degree + 1):
            for m in range(n + 1):
                if m == 0 and n < first_zonal:
                    continue
                f = math.exp(_log_norm(n, m))
                cnm, snm = float(t["c"][n, m]) * f, float(t["s"][n, m]) * f
                if not cnm and not snm:
                    continue
                if m == 0:
                    add(n + 1, 1, 0, v=-cnm)
                    add(n + 1, 1, 1, w=-cnm)
                    add(n + 1, 0, 2, v=-(n + 1) * cnm)
                    continue
                g = (n - m + 2) * (n - m + 1)
                add(n + 1, m + 1, 0, v=-0.5 * cnm, w=-0.5 * snm)
                add(n + 1, m - 1, 0, v=0.5 * g * cnm, w=0.5 * g * snm)
                add(n + 1, m + 1, 1, v=0.5 * snm, w=-0.5 * cnm)
                add(n + 1, m - 1, 1, v=0.5 * g * snm, w=-0.5 * g * cnm)
                add(n + 1, m, 2, v=-(n - m + 1) * cnm, w=-(n - m + 1) * snm)
        # The harmonics used, grouped by the parity class of their Fourier series.
        classes: list[list[tuple[int, int]]] = [[], [], [], []]
        for a, j in sorted(wv):
            classes[2 * ((a - j) % 2) + (j % 2)].append((a, j))
        n_samples = 2 * top + 4  # > 2 x the highest frequency: the DFT is exact
        phi = 2.0 * math.pi * np.arange(n_samples) / n_samples
        pbar = _legendre_normalised(top, phi)
        k_all = np.arange(top + 1)
        cos_s, sin_s = np.cos(np.outer(k_all, phi)), np.sin(np.outer(k_all, phi))
        # Class (n - m even/odd, m even/odd): cosines / sines of k = m's parity / the other;
        # at run time cos(k phi) and sin(k phi) are made once for k = 0..top and each class
        # takes its half of them (a strided view).
        self._k_all = k_all.astype(float)
        self._f = []
        self._views = []
        pairs: list[tuple[int, int]] = []
        for cls, members in enumerate(classes):
            odd_n_m, odd_m = cls // 2, cls % 2
            parity = odd_m if not odd_n_m else 1 - odd_m
            k = k_all[parity::2]
            basis = sin_s[k] if odd_n_m else cos_s[k]
            vals = np.array([pbar[a, j] for a, j in members]).reshape(len(members), n_samples)
            coef = (2.0 / n_samples) * vals @ basis.T
            if not odd_n_m and parity == 0:
                coef[:, 0] *= 0.5  # the constant term
            self._views.append((bool(odd_n_m), parity))
            self._f.append(np.ascontiguousarray(coef))
            pairs += members
        # (R/r)^(a + 1) of the harmonic of degree a, and e^(i m lambda), gathered per harmonic.
        self._pow_idx = np.array([a + 1 for a, _ in pairs], dtype=np.intp)
        self._m_idx = np.array([j for _, j in pairs], dtype=np.intp)
        self._powers = np.arange(top + 2, dtype=float)
        self._orders = np.arange(top + 1, dtype=float)
        inv_norm = np.array([math.exp(-_log_norm(a, j)) for a, j in pairs])
        scale = gm / (radius * radius)
        w = np.zeros((3, 2 * len(pairs)))
        w[:, : len(pairs)] = np.array([wv[p] for p in pairs]).T * inv_norm
        w[:, len(pairs) :] = np.array([ww[p] for p in pairs]).T * inv_norm
        self._w = w * scale

    def acceleration_itrs(self, x: float, y: float, z: float) -> tuple[float, float, float]:
        """The field's acceleration [m/s^2] at ITRS (x, y, z) [m]."""
        r = math.sqrt(x * x + y * y + z * z)
        kphi = self._k_all * math.asin(z / r)
        cos_k, sin_k = np.cos(kphi), np.sin(kphi)
        p = np.concatenate(
            [f @ (sin_k if sine else cos_k)[parity::2] for f, (sine, parity) in zip(self._f, self._views)]
        )
        p *= np.power(self.radius_m / r, self._powers)[self._pow_idx]
        ml = self._orders * math.atan2(y, x)
        m = self._m_idx
        ax, ay, az = (self._w @ np.concatenate((p * np.cos(ml)[m], p * np.sin(ml)[m]))).tolist()
        return ax, ay, az

    def acceleration_gcrs(
        self, x: float, y: float, z: float, m: np.ndarray | Sequence[Sequence[float]]
    ) -> tuple[float, float, float]:
        """The acceleration in GCRS at GCRS (x, y, z); *m* the gcrs_from_itrs matrix (rows)."""
        xi = m[0][0] * x + m[1][0] * y + m[2][0] * z
        yi = m[0][1] * x + m[1][1] * y + m[2][1] * z
        zi = m[0][2] * x + m[1][2] * y + m[2][2] * z
        ax, ay, az = self.acceleration_itrs(xi, yi, zi)
        return (
            m[0][0] * ax + m[0][1] * ay + m[0][2] * az,
            m[1][0] * ax + m[1][1] * ay + m[1][2] * az,
            m[2][0] * ax + m[2][1] * ay + m[2][2] * az,
        )
