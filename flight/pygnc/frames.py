"""Earth-fixed (ITRS/ECEF) <-> inertial (GCRS) transformations for position and velocity.

Frames
------
* ``ecef`` / ITRS: the Earth-fixed frame GPS receivers report in (WGS-84 ~ ITRS at the
  cm level).
* ``gcrs``: the Geocentric Celestial Reference System, the inertial frame of the orbit
  estimator and of the truth simulator.

Model (CIO-based chain of the IERS Conventions 2010, chapter 5)::

    r_gcrs = Q(t) . R3(-ERA(t)) . W(t) . r_ecef

* ``ERA`` - Earth rotation angle, IAU 2000 (Capitaine et al. 2000):
  ERA = 2 pi (0.7790572732640 + 1.00273781191135448 Du), Du = JD(UT1) - 2451545.0.
  **UT1 is taken equal to UTC** unless ``ut1_minus_utc_s`` is given.  |UT1 - UTC| < 0.9 s
  by definition, so the assumption rotates the GCRS about its z axis by up to
  0.9 s x 7.29e-5 rad/s = 66 µrad, i.e. up to ~460 m along-track at LEO radius (about
  20 m per 40 ms of DUT1, which is the size of the 2024-2025 values).  For the orbit
  estimator this is a *common* rotation of measurements and dynamics about the pole: the
  zonal gravity field and a co-rotating atmosphere are invariant under it, and ECEF output
  is converted back with the same matrix, so the ECEF solution is unaffected; only the
  absolute GCRS coordinates carry the offset.
* ``Q`` - precession-nutation: IAU 2006 precession (Fukushima-Williams angles, Hilton et
  al. 2006) with the IAU 2000B nutation (McCarthy & Luzum 2003, 77 luni-solar terms plus
  the fixed planetary offsets), giving the CIP coordinates X, Y; the CIO locator s from the
  leading terms of the IAU 2006 series.  2000B is within ~1 mas of 2000A over 1995-2050,
  i.e. 3 cm at LEO radius.  Q changes slowly, so it is evaluated exactly on a grid of
  nodes every ``_Q_NODE_S`` seconds (cached) and linearly interpolated between them; the
  interpolation error is < 0.1 mm at LEO radius.  Scalar and array calls use the same
  nodes, so they agree to rounding.
* ``W`` - polar motion.  **Ignored** (identity) unless ``xp_rad``/``yp_rad`` are given
  (the TIO locator s' < 0.1 mas is always ignored).  Polar motion is ~0.3" in 2020-2025,
  i.e. up to ~10-15 m at LEO radius, mostly across the pole; for the estimator it is again
  a common rotation of measurements, except that the J2 field is then referred to a pole
  ~0.3" off, an acceleration error of ~J2 x 1.5e-6 relative, negligible.
* Velocity: v_gcrs = M (v_ecef + omega x r_ecef) with omega = ``OMEGA_EARTH_RAD_S`` along
  the CIP; the rates of precession-nutation and polar motion (~1e-11 rad/s, i.e.
  < 0.1 mm/s at LEO) are ignored.

Time: inputs are ``t_gps_s`` (seconds since the GPS epoch, :mod:`pygnc.timebase`).  TT for
precession-nutation is t_gps_s + 51.184 s; UTC for the Earth rotation angle comes from
:func:`pygnc.timebase.utc_unix_from_gps` (leap seconds).

Measured agreement with astropy 8 (ITRS -> GCRS with its bundled IERS-B table), 2020-2025
(asserted in ``tests/test_frames.py``):

* with astropy's DUT1 and polar motion passed in (the model itself): 0.016 m worst case
  in position at LEO radius (7000 km), 0.04 mm/s in velocity (tested: < 0.05 m,
  < 0.1 mm/s); CIP X, Y within 0.4 mas of IAU 2006/2000A (erfa.xys06a);
* with the flight defaults (UT1 = UTC, no polar motion): bounded by
  |DUT1| x 7.29e-5 rad/s x r + |polar motion| x r, i.e. up to ~110 m at LEO in 2020
  (DUT1 ~ -0.2 s) and ~10-25 m in 2024-2025 (|DUT1| < 0.05 s); velocity error up to
  ~0.13 m/s correspondingly (it is the same rotation applied to v).

Single times are the hot path: :func:`gcrs_from_itrs_rows` is the matrix in floats, and
:func:`gcrs_from_itrs_matrix` is memoised per exact time.

Pure numpy, vectorised over time: scalar ``t_gps_s`` gives (3,)/(3, 3) results, an (n,)
array gives (n, 3)/(n, 3, 3).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from pygnc import timebase

__all__ = [
    "OMEGA_EARTH_RAD_S",
    "gcrs_from_itrs_matrix",
    "gcrs_from_itrs_rows",
    "itrs_to_gcrs",
    "gcrs_to_itrs",
    "earth_rotation_angle_rad",
    "cip_xys_rad",
    "precession_nutation_matrix",
]

#: Rate of the Earth rotation angle, rad/s (of UT1): 2 pi x 1.00273781191135448 / 86400.
OMEGA_EARTH_RAD_S = 2.0 * math.pi * 1.00273781191135448 / 86400.0

_AS2RAD = math.pi / (180.0 * 3600.0)
_TURN_AS = 1_296_000.0
#: t_gps_s of J2000.0 = 2000-01-01T12:00:00 TT (JD 2451545.0 TT).
_T_GPS_J2000_S = (2_451_545.0 - 2_444_244.5) * 86_400.0 - timebase.TT_MINUS_GPS_S
_S_PER_CENTURY = 36_525.0 * 86_400.0
#: POSIX time of 2000-01-01T12:00:00 (UT1 when used for the ERA epoch).
_UNIX_J2000_S = 946_728_000.0
#: Spacing of the exactly-evaluated precession-nutation nodes, s.
_Q_NODE_S = 1800.0

# --------------------------------------------------------------------------------------
# IAU 2006 precession: Fukushima-Williams angles and mean obliquity, arcsec, as
# polynomials in TT Julian centuries since J2000 (coefficients of t^0 .. t^5).
_GAMMA_BAR_AS = (-0.052928, 10.556378, 0.4932044, -0.00031238, -2.788e-6, 2.60e-8)
_PHI_BAR_AS = (84381.412819, -46.811016, 0.0511268, 0.00053289, -4.40e-7, -1.76e-8)
_PSI_BAR_AS = (-0.041775, 5038.481484, 1.5584175, -0.00018522, -2.6452e-5, -1.48e-8)
_EPS_A_AS = (84381.406, -46.836769, -0.0001831, 0.00200340, -5.76e-7, -4.34e-8)

# IAU 2000B fundamental (Delaunay) arguments, linear in t: arcsec and arcsec/century,
# for l (Moon mean anomaly), l' (Sun mean anomaly), F, D, Omega.
_DELAUNAY_AS = np.array(
    [
        [485868.249036, 1717915923.2178],
        [1287104.79305, 129596581.0481],
        [335779.526232, 1739527262.8478],
        [1072260.70369, 1602961601.2090],
        [450160.398036, -6962890.5431],
    ]
)

# IAU 2000B luni-solar nutation (IERS Conventions 2010 table 5.3b): one line per term,
# multipliers of (l, l', F, D, Omega), then for the longitude the sin, t*sin and cos
# amplitudes and for the obliquity the cos, t*cos and sin amplitudes, in 0.1 µas
# (and 0.1 µas per Julian century).
_NUT_2000B_TEXT = """
 0  0  0  0  1  -172064161 -174666  33386  92052331  9086  15377
 0  0  2 -2  2   -13170906   -1675 -13696   5730336 -3015  -4587
 0  0  2  0  2    -2276413    -234   2796    978459  -485   1374
 0  0  0  0  2     2074554     207   -698   -897492   470   -291
 0  1  0  0  0     1475877   -3633  11817     73871  -184  -1924
 0  1  2 -2  2     -516821    1226   -524    224386  -677   -174
 1  0  0  0  0      711159      73   -872     -6750     0    358
 0  0  2  0  1     -387298    -367    380    200728    18    318
 1  0  2  0  2     -301461     -36    816    129025   -63    367
 0 -1  2 -2  2      215829    -494    111    -95929   299    132
 0  0  2 -2  1      128227     137    181    -68982    -9     39
-1  0  2  0  2      123457      11     19    -53311    32     -4
-1  0  0  2  0      156994      10   -168     -1235     0     82
 1  0  0  0  1       63110      63     27    -33228     0     -9
-1  0  0  0  1      -57976     -63   -189     31429     0    -75
-1  0  2  2  2      -59641     -11    149     25543   -11     66
 1  0  2  0  1      -51613     -42    129     26366     0     78
-2  0  2  0  1       45893      50     31    -24236   -10     20
 0  0  0  2  0       63384      11   -150     -1220     0     29
 0  0  2  2  2      -38571      -1    158     16452   -11     68
 0 -2  2 -2  2       32481       0      0    -13870     0      0
-2  0  0  2  0      -47722       0    -18       477     0    -25
 2  0  2  0  2      -31046      -1    131     13238   -11     59
 1  0  2 -2  2       28593       0     -1    -12338    10     -3
-1  0  2  0  1       20441      21     10    -10758     0     -3
 2  0  0  0  0       29243       0    -74      -609     0     13
 0  0  2  0  0       25887       0    -66      -550     0     11
 0  1  0  0  1      -14053     -25     79      8551    -2    -45
-1  0  0  2  1       15164      10     11     -8001     0     -1
 0  2  2 -2  2      -15794      72    -16      6850   -42     -5
 0  0 -2  2  0       21783       0     13      -167     0     13
 1  0  0 -2  1      -12873     -10    -37      6953     0    -14
 0 -1  0  0  1      -12654      11     63      6415     0     26
-1  0  2  2  1      -10204       0     25      5222     0     15
 0  2  0  0  0       16707     -85    -10       168    -1     10
 1  0  2  2  2       -7691       0     44      3268     0     19
-2  0  2  0  0      -11024       0    -14       104     0      2
 0  1  2  0  2        7566     -21    -11     -3250     0     -5
 0  0  2  2  1       -6637     -11     25      3353     0     14
 0 -1  2  0  2       -7141      21      8      3070     0      4
 0  0  0  2  1       -6302     -11      2      3272     0      4
 1  0  2 -2  1        5800      10      2     -3045     0     -1
 2  0  2 -2  2        6443       0     -7     -2768     0     -4
-2  0  0  2  1       -5774     -11    -15      3041     0     -5
 2  0  2  0  1       -5350       0     21      2695     0     12
 0 -1  2 -2  1       -4752     -11     -3      2719     0     -3
 0  0  0 -2  1       -4940     -11    -21      2720     0     -9
-1 -1  0  2  0        7350       0     -8       -51     0      4
 2  0  0 -2  1        4065       0      6     -2206     0      1
 1  0  0  2  0        6579       0    -24      -199     0      2
 0  1  2 -2  1        3579       0      5     -1900     0      1
 1 -1  0  0  0        4725       0     -6       -41     0      3
-2  0  2  0  2       -3075       0     -2      1313     0     -1
 3  0  2  0  2       -2904       0     15      1233     0      7
 0 -1  0  2  0        4348       0    -10       -81     0      2
 1 -1  2  0  2       -2878       0      8      1232     0      4
 0  0  0  1  0       -4230       0      5       -20     0     -2
-1 -1  2  2  2       -2819       0      7      1207     0      3
-1  0  2  0  0       -4056       0      5        40     0     -2
 0 -1  2  2  2       -2647       0     11      1129     0      5
-2  0  0  0  1       -2294       0    -10      1266     0     -4
 1  1  2  0  2        2481       0     -7     -1062     0     -3
 2  0  0  0  1        2179       0     -2     -1129     0     -2
-1  1  0  1  0        3276       0      1        -9     0      0
 1  1  0  0  0       -3389       0      5        35     0     -2
 1  0  2  0  0        3339       0    -13      -107     0      1
-1  0  2 -2  1       -1987       0     -6      1073     0     -2
 1  0  0  0  2       -1981       0      0       854     0      0
-1  0  0  1  0        4026       0   -353      -553     0   -139
 0  0  2  1  2        1660       0     -5      -710     0     -2
-1  0  2  4  2       -1521       0      9       647     0      4
-1  1  0  1  1        1314       0      0      -700     0      0
 0 -2  2 -2  1       -1283       0      0       672     0      0
 1  0  2  2  1       -1331       0      8       663     0      4
-2  0  2  2  2        1383       0     -2      -594     0     -2
-1  0  0  0  2        1405       0      4      -610     0      2
 1  1  2 -2  2        1290       0      0      -556     0      0
"""
_NUT_TABLE = np.array([[float(x) for x in line.split()] for line in _NUT_2000B_TEXT.strip().splitlines()])
_NUT_MULT = _NUT_TABLE[:, :5]  # (77, 5)
_NUT_COEF_RAD = _NUT_TABLE[:, 5:] * (1e-7 * _AS2RAD)  # (77, 6)
#: Fixed offsets standing in for the planetary nutation in IAU 2000B (mas -> rad).
_DPSI_PLANETARY_RAD = -0.135e-3 * _AS2RAD
_DEPS_PLANETARY_RAD = 0.388e-3 * _AS2RAD

# CIO locator: s + XY/2 = polynomial (µas) + leading periodic terms (µas).  The neglected
# terms are < 5 µas (0.2 mm at LEO radius).
_S_POLY_UAS = (94.0, 3808.65, -122.68, -72574.11, 27.98, 15.62)
# (order in t, multipliers of l, l', F, D, Omega, sin amplitude µas)
_S_TERMS = (
    (0, (0, 0, 0, 0, 1), -2640.73),
    (0, (0, 0, 0, 0, 2), -63.53),
    (0, (0, 0, 2, -2, 3), -11.75),
    (0, (0, 0, 2, -2, 1), -11.21),
    (0, (0, 0, 2, -2, 2), 4.57),
    (2, (0, 0, 0, 0, 1), 743.52),
    (2, (0, 0, 2, -2, 2), 56.91),
    (2, (0, 0, 2, 0, 2), 9.84),
    (2, (0, 0, 0, 0, 2), -8.85),
    (2, (0, 1, 0, 0, 0), -6.38),
)


def _poly(coeffs: Sequence[float], t: np.ndarray) -> np.ndarray | float:
    acc: np.ndarray | float = coeffs[-1]
    for c in coeffs[-2::-1]:
        acc = acc * t + c
    return acc


def _centuries_tt(t_gps_s: npt.ArrayLike) -> np.ndarray:
    return (np.asarray(t_gps_s, dtype=float) - _T_GPS_J2000_S) / _S_PER_CENTURY


def _r1(a: npt.ArrayLike) -> np.ndarray:
    """Frame rotation about x by angle(s) *a* (radians): (..., 3, 3)."""
    a = np.asarray(a, dtype=float)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, s], -1), np.stack([z, -s, c], -1)], -2)


def _r2(a: npt.ArrayLike) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, -s], -1), np.stack([z, o, z], -1), np.stack([s, z, c], -1)], -2)


def _r3(a: npt.ArrayLike) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, s, z], -1), np.stack([-s, c, z], -1), np.stack([z, z, o], -1)], -2)


def nutation_2000b_rad(t_gps_s: npt.ArrayLike) -> tuple[float | np.ndarray, float | np.ndarray]:
    """IAU 2000B nutation (dpsi, deps), radians, at GPS time(s) *t_gps_s*."""
    t = _centuries_tt(t_gps_s)
    tt = np.atleast_1d(t)
    args_as = _DELAUNAY_AS[:, 0] + np.multiply.outer(tt, _DELAUNAY_AS[:, 1])  # (n, 5)
    args_rad = np.mod(args_as, _TURN_AS) * _AS2RAD
    phase = args_rad @ _NUT_MULT.T  # (n, 77)
    s, c = np.sin(phase), np.cos(phase)
    k = _NUT_COEF_RAD
    dpsi = s @ k[:, 0] + tt * (s @ k[:, 1]) + c @ k[:, 2] + _DPSI_PLANETARY_RAD
    deps = c @ k[:, 3] + tt * (c @ k[:, 4]) + s @ k[:, 5] + _DEPS_PLANETARY_RAD
    if np.ndim(t) == 0:
        return float(dpsi[0]), float(deps[0])
    return dpsi, deps


def precession_nutation_matrix(t_gps_s: npt.ArrayLike) -> np.ndarray:
    """Bias-precession-nutation matrix N such that v_true_of_date = N @ v_gcrs.

    IAU 2006 precession (Fukushima-Williams) + IAU 2000B nutation; (3, 3) or (n, 3, 3).
    """
    t = _centuries_tt(t_gps_s)
    dpsi, deps = nutation_2000b_rad(t_gps_s)
    gam = _poly(_GAMMA_BAR_AS, t) * _AS2RAD
    phi = _poly(_PHI_BAR_AS, t) * _AS2RAD
    psi = _poly(_PSI_BAR_AS, t) * _AS2RAD + dpsi
    eps = _poly(_EPS_A_AS, t) * _AS2RAD + deps
    return _r1(-eps) @ _r3(-psi) @ _r1(phi) @ _r3(gam)


def cip_xys_rad(t_gps_s: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, float | np.ndarray]:
    """CIP coordinates X, Y and CIO locator s in the GCRS, radians."""
    n = precession_nutation_matrix(t_gps_s)
    x, y = n[..., 2, 0], n[..., 2, 1]
    t = _centuries_tt(t_gps_s)
    tt = np.atleast_1d(t)
    args_rad = np.mod(_DELAUNAY_AS[:, 0] + np.multiply.outer(tt, _DELAUNAY_AS[:, 1]), _TURN_AS) * _AS2RAD
    w = np.array([_poly(_S_POLY_UAS, ti) for ti in tt])
    for order, mult, amp in _S_TERMS:
        w = w + amp * tt**order * np.sin(args_rad @ np.asarray(mult, dtype=float))
    s = w * (1e-6 * _AS2RAD) - np.atleast_1d(x) * np.atleast_1d(y) / 2.0
    if np.ndim(t) == 0:
        s = float(s[0])
    return x, y, s


def _gcrs_from_cirs(t_gps_s: npt.ArrayLike) -> np.ndarray:
    """Q = (GCRS -> CIRS)^T from X, Y, s; (3, 3) or (n, 3, 3)."""
    x, y, s = cip_xys_rad(t_gps_s)
    r2 = x * x + y * y
    e = np.arctan2(y, x)
    d = np.arctan(np.sqrt(r2 / (1.0 - r2)))
    c2i = _r3(-(e + s)) @ _r2(d) @ _r3(e)
    return np.swapaxes(c2i, -1, -2)


_Q_CACHE: dict[int, np.ndarray] = {}
_Q_CACHE_MAX = 512


def _q_nodes(k: npt.ArrayLike) -> np.ndarray:
    """Q at node indices *k* (int array), cached.

    The answer is assembled from the nodes found here, whatever the cache keeps: a call
    spanning more nodes than the cache holds (times far apart, e.g. a corrupt epoch next to
    good ones) evicts the cache but still gets every node it asked for."""
    nodes = {}
    missing = []
    for i in np.unique(k).tolist():
        qi = _Q_CACHE.get(i)
        if qi is None:
            missing.append(i)
        else:
            nodes[i] = qi
    if missing:
        q = _gcrs_from_cirs(np.asarray(missing, dtype=float) * _Q_NODE_S)
        if len(_Q_CACHE) + len(missing) > _Q_CACHE_MAX:
            _Q_CACHE.clear()
        for i, qi in zip(missing, q.reshape(-1, 3, 3)):
            nodes[i] = qi
            if len(_Q_CACHE) < _Q_CACHE_MAX:
                _Q_CACHE[i] = qi
    return np.stack([nodes[i] for i in np.atleast_1d(k).tolist()])


_MATRIX_CACHE: dict[float, np.ndarray] = {}
_ROWS_CACHE: dict[float, tuple] = {}
_MATRIX_CACHE_MAX = 64

#: Q at a node as a flat 9-tuple of floats (row-major), by node index, for the scalar path.
_Q_ROWS: dict[int, tuple] = {}


def _q_node_rows(k: int) -> tuple:
    q = _Q_ROWS.get(k)
    if q is None:
        q = tuple(_q_nodes(np.array([k]))[0].ravel().tolist())
        if len(_Q_ROWS) >= _Q_CACHE_MAX:
            _Q_ROWS.clear()
        _Q_ROWS[k] = q
    return q


def gcrs_from_itrs_rows(t_gps_s: float) -> tuple:
    """:func:`gcrs_from_itrs_matrix` of one time with the defaults (UT1 = UTC, no polar
    motion) as a tuple of three row tuples of floats - the same arithmetic (Q interpolated
    between its nodes, times R3(-ERA)) in scalar floats, for the propagator's and the
    output conversions' one-instant calls, where numpy's per-call cost dominated.  Memoised
    by exact time like the matrix."""
    tf = float(t_gps_s)
    rows = _ROWS_CACHE.get(tf)
    if rows is None:
        if len(_ROWS_CACHE) >= _MATRIX_CACHE_MAX:
            _ROWS_CACHE.clear()
        rows = _ROWS_CACHE[tf] = _rows_at(tf)
    return rows


def _rows_at(tf: float) -> tuple:
    k = math.floor(tf / _Q_NODE_S)
    f = tf / _Q_NODE_S - k
    a, b = _q_node_rows(k), _q_node_rows(k + 1)
    q = [u + f * (w - u) for u, w in zip(a, b)]
    era = _era_scalar(tf, 0.0)
    c, s = math.cos(era), math.sin(era)
    return (
        (q[0] * c + q[1] * s, q[1] * c - q[0] * s, q[2]),
        (q[3] * c + q[4] * s, q[4] * c - q[3] * s, q[5]),
        (q[6] * c + q[7] * s, q[7] * c - q[6] * s, q[8]),
    )


def _q_interp(t_gps_s: npt.ArrayLike) -> np.ndarray:
    t = np.asarray(t_gps_s, dtype=float)
    if t.ndim == 0:
        tf = float(t)
        node = math.floor(tf / _Q_NODE_S)
        q0 = _Q_CACHE.get(node)
        q1 = _Q_CACHE.get(node + 1)
        if q0 is None or q1 is None:
            q0, q1 = _q_nodes(np.array([node, node + 1]))
        frac = tf / _Q_NODE_S - node
        return q0 + frac * (q1 - q0)
    kf = np.floor(t / _Q_NODE_S)
    k = kf.astype(np.int64)
    uk = np.unique(k)
    table = _q_nodes(np.concatenate([uk, uk + 1]))
    q0 = table[: uk.size][np.searchsorted(uk, k)]
    q1 = table[uk.size :][np.searchsorted(uk, k)]
    f = (t / _Q_NODE_S - kf)[..., None, None]
    return q0 + f * (q1 - q0)


def earth_rotation_angle_rad(t_gps_s: npt.ArrayLike, ut1_minus_utc_s: float = 0.0) -> float | np.ndarray:
    """IAU 2000 Earth rotation angle in [0, 2 pi), UT1 = UTC + *ut1_minus_utc_s*."""
    t = np.asarray(t_gps_s, dtype=float)
    if t.ndim == 0:
        return _era_scalar(float(t), ut1_minus_utc_s)
    du = (timebase.utc_unix_from_gps(t) + ut1_minus_utc_s - _UNIX_J2000_S) / 86_400.0
    frac = du - np.floor(du)
    return 2.0 * np.pi * np.mod(frac + 0.7790572732640 + 0.00273781191135448 * du, 1.0)


def _era_scalar(tf: float, ut1_minus_utc_s: float) -> float:
    du = (
        tf + timebase.GPS_EPOCH_UNIX_S - timebase.leap_seconds_at_gps(tf) + ut1_minus_utc_s - _UNIX_J2000_S
    ) / 86_400.0
    frac = du - math.floor(du)
    return 2.0 * math.pi * ((frac + 0.7790572732640 + 0.00273781191135448 * du) % 1.0)


def _polar_motion_t(xp_rad: npt.ArrayLike, yp_rad: npt.ArrayLike) -> np.ndarray | None:
    """W^T: rotation taking ITRS to the terrestrial intermediate frame (s' ignored)."""
    if not xp_rad and not yp_rad:
        return None
    # ITRS = R1(-yp) R2(-xp) . TIRS  ->  TIRS = R2(xp) R1(yp) ... transpose of the product.
    w = _r1(-np.asarray(yp_rad, dtype=float)) @ _r2(-np.asarray(xp_rad, dtype=float))
    return np.swapaxes(w, -1, -2)


#: gcrs_from_itrs_matrix of one time with the defaults, by exact time: the estimators ask
#: for the same instant many times (each partner's filter and output, a fix and the estimate
#: at its time).  Read-only arrays, so a caller cannot change what another gets.


def gcrs_from_itrs_matrix(
    t_gps_s: npt.ArrayLike, ut1_minus_utc_s: float = 0.0, xp_rad: npt.ArrayLike = 0.0, yp_rad: npt.ArrayLike = 0.0
) -> np.ndarray:
    """Rotation M with r_gcrs = M @ r_itrs at GPS time(s) *t_gps_s*: (3, 3) or (n, 3, 3).

    UT1 = UTC + *ut1_minus_utc_s* (default UT1 = UTC); polar motion *xp_rad*, *yp_rad*
    (default none).  See the module docstring for the accuracy of the defaults.  A single
    time with the defaults is memoised (a read-only array).
    """
    if isinstance(t_gps_s, (float, int)) and not ut1_minus_utc_s and not xp_rad and not yp_rad:
        tf = float(t_gps_s)
        m = _MATRIX_CACHE.get(tf)
        if m is None:
            if len(_MATRIX_CACHE) >= _MATRIX_CACHE_MAX:
                _MATRIX_CACHE.clear()
            m = np.array(gcrs_from_itrs_rows(tf))
            m.setflags(write=False)
            _MATRIX_CACHE[tf] = m
        return m
    return _gcrs_from_itrs_matrix(t_gps_s, ut1_minus_utc_s, xp_rad, yp_rad)


def _gcrs_from_itrs_matrix(
    t_gps_s: npt.ArrayLike, ut1_minus_utc_s: float, xp_rad: npt.ArrayLike, yp_rad: npt.ArrayLike
) -> np.ndarray:
    era = earth_rotation_angle_rad(t_gps_s, ut1_minus_utc_s)
    q = _q_interp(t_gps_s)
    if np.ndim(era) == 0:
        c, s = math.cos(era), math.sin(era)
        r3t = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    else:
        r3t = np.swapaxes(_r3(era), -1, -2)
    m = q @ r3t
    wt = _polar_motion_t(xp_rad, yp_rad)
    return m if wt is None else m @ wt


@overload
def itrs_to_gcrs(
    r_ecef_m: npt.ArrayLike,
    v_ecef_m_s: npt.ArrayLike,
    t_gps_s: npt.ArrayLike,
    ut1_minus_utc_s: float = 0.0,
    xp_rad: npt.ArrayLike = 0.0,
    yp_rad: npt.ArrayLike = 0.0,
) -> tuple[np.ndarray, np.ndarray]: ...
@overload
def itrs_to_gcrs(
    r_ecef_m: npt.ArrayLike,
    v_ecef_m_s: None,
    t_gps_s: npt.ArrayLike,
    ut1_minus_utc_s: float = 0.0,
    xp_rad: npt.ArrayLike = 0.0,
    yp_rad: npt.ArrayLike = 0.0,
) -> tuple[np.ndarray, None]: ...
def itrs_to_gcrs(
    r_ecef_m: npt.ArrayLike,
    v_ecef_m_s: npt.ArrayLike | None,
    t_gps_s: npt.ArrayLike,
    ut1_minus_utc_s: float = 0.0,
    xp_rad: npt.ArrayLike = 0.0,
    yp_rad: npt.ArrayLike = 0.0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """ECEF (ITRS) position [m] and velocity [m/s] -> GCRS position [m] and velocity [m/s].

    Shapes: (3,) with a scalar time or (n, 3) with (n,) times.  *v_ecef_m_s* may be
    ``None`` (then the returned velocity is ``None``).
    """
    r = np.asarray(r_ecef_m, dtype=float)
    wt = _polar_motion_t(xp_rad, yp_rad)
    m = gcrs_from_itrs_matrix(t_gps_s, ut1_minus_utc_s)
    if wt is not None:
        r = (wt @ r[..., None])[..., 0]
    r_g = (m @ r[..., None])[..., 0]
    if v_ecef_m_s is None:
        return r_g, None
    v = np.asarray(v_ecef_m_s, dtype=float)
    if wt is not None:
        v = (wt @ v[..., None])[..., 0]
    # Inertial velocity in the terrestrial intermediate frame: v + omega z x r.
    vi = v + OMEGA_EARTH_RAD_S * np.stack([-r[..., 1], r[..., 0], np.zeros_like(r[..., 0])], -1)
    v_g = (m @ vi[..., None])[..., 0]
    return r_g, v_g


@overload
def gcrs_to_itrs(
    r_gcrs_m: npt.ArrayLike,
    v_gcrs_m_s: npt.ArrayLike,
    t_gps_s: Any,  # (npt.ArrayLike: when estimation/orbit_ekf.py passes its epoch narrowed)
    ut1_minus_utc_s: float = 0.0,
    xp_rad: npt.ArrayLike = 0.0,
    yp_rad: npt.ArrayLike = 0.0,
) -> tuple[np.ndarray, np.ndarray]: ...
@overload
def gcrs_to_itrs(
    r_gcrs_m: npt.ArrayLike,
    v_gcrs_m_s: None,
    t_gps_s: Any,  # (npt.ArrayLike: when estimation/orbit_ekf.py passes its epoch narrowed)
    ut1_minus_utc_s: float = 0.0,
    xp_rad: npt.ArrayLike = 0.0,
    yp_rad: npt.ArrayLike = 0.0,
) -> tuple[np.ndarray, None]: ...
def gcrs_to_itrs(
    r_gcrs_m: npt.ArrayLike,
    v_gcrs_m_s: npt.ArrayLike | None,
    t_gps_s: Any,  # (npt.ArrayLike: when estimation/orbit_ekf.py passes its epoch narrowed)
    ut1_minus_utc_s: float = 0.0,
    xp_rad: npt.ArrayLike = 0.0,
    yp_rad: npt.ArrayLike = 0.0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """GCRS position [m] and velocity [m/s] -> ECEF (ITRS) position [m] and velocity [m/s].

    Exact inverse of :func:`itrs_to_gcrs`.  *v_gcrs_m_s* may be ``None``.
    """
    m = gcrs_from_itrs_matrix(t_gps_s, ut1_minus_utc_s)
    mt = np.swapaxes(m, -1, -2)
    r_t = (mt @ np.asarray(r_gcrs_m, dtype=float)[..., None])[..., 0]
    v_e = None
    if v_gcrs_m_s is not None:
        vi = (mt @ np.asarray(v_gcrs_m_s, dtype=float)[..., None])[..., 0]
        v_e = vi - OMEGA_EARTH_RAD_S * np.stack([-r_t[..., 1], r_t[..., 0], np.zeros_like(r_t[..., 0])], -1)
    wt = _polar_motion_t(xp_rad, yp_rad)
    if wt is not None:
        w = np.swapaxes(wt, -1, -2)
        r_t = (w @ r_t[..., None])[..., 0]
        if v_e is not None:
            v_e = (w @ v_e[..., None])[..., 0]
    return r_t, v_e


#: [ω⊕]× : cross-product matrix of the Earth rotation vector (0, 0, ω⊕), rad/s.
EARTH_RATE_SKEW = np.array([[0.0, -OMEGA_EARTH_RAD_S, 0.0], [OMEGA_EARTH_RAD_S, 0.0, 0.0], [0.0, 0.0, 0.0]])


@overload
def rv_gcrs_to_ecef_floats(
    t_gps_s: float, r_gcrs_m: Iterable[float], v_gcrs_m_s: Iterable[float]
) -> tuple[list[float], list[float]]: ...
@overload
def rv_gcrs_to_ecef_floats(
    t_gps_s: float, r_gcrs_m: Iterable[float], v_gcrs_m_s: None = None
) -> tuple[list[float], None]: ...
def rv_gcrs_to_ecef_floats(
    t_gps_s: float, r_gcrs_m: Iterable[float], v_gcrs_m_s: Iterable[float] | None = None
) -> tuple[list[float], list[float] | None]:
    """:func:`gcrs_to_itrs` of one state in Python floats (the rotation from
    :func:`gcrs_from_itrs_rows`): (r_ecef_m [3 floats], v_ecef_m_s [3 floats] or None without
    *v_gcrs_m_s*) - r = M^T r_gcrs, v = M^T v_gcrs - omega x r.  For per-sample conversions,
    where numpy's per-call cost is most of the work."""
    m = gcrs_from_itrs_rows(t_gps_s)
    x, y, z = (float(c) for c in r_gcrs_m)
    r = [m[0][i] * x + m[1][i] * y + m[2][i] * z for i in range(3)]
    if v_gcrs_m_s is None:
        return r, None
    vx, vy, vz = (float(c) for c in v_gcrs_m_s)
    w = OMEGA_EARTH_RAD_S
    v = [m[0][i] * vx + m[1][i] * vy + m[2][i] * vz for i in range(3)]
    return r, [v[0] + w * r[1], v[1] - w * r[0], v[2]]


def rv_gcrs_to_ecef_matrix(m_gcrs_from_itrs: npt.ArrayLike) -> np.ndarray:
    """6x6 J with [r_ecef; v_ecef] = J [r_gcrs; v_gcrs]: :func:`gcrs_to_itrs` (linear, polar
    motion ignored) as a matrix, for *m_gcrs_from_itrs* = :func:`gcrs_from_itrs_matrix` at
    the epoch; also the Jacobian that carries a covariance across."""
    mt = np.asarray(m_gcrs_from_itrs).T
    j = np.zeros((6, 6))
    j[:3, :3] = mt
    j[3:, 3:] = mt
    j[3:, :3] = -EARTH_RATE_SKEW @ mt
    return j


def covariance_gcrs_to_ecef(p_rv_gcrs: npt.ArrayLike, m_gcrs_from_itrs: npt.ArrayLike) -> np.ndarray:
    """6x6 position/velocity covariance, GCRS -> ECEF, including the Earth-rate term.

    *m_gcrs_from_itrs* is :func:`gcrs_from_itrs_matrix` at the covariance's epoch; the
    Jacobian is that of :func:`gcrs_to_itrs` (polar motion ignored, as there).
    """
    j = rv_gcrs_to_ecef_matrix(m_gcrs_from_itrs)
    return j @ np.asarray(p_rv_gcrs) @ j.T
