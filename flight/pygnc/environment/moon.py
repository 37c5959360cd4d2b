"""Low-precision geocentric Moon position in GCRS (for third-body accelerations on board).

Algorithm
---------
The truncated ELP-2000/82 series of Meeus, *Astronomical Algorithms* (2nd ed.) ch. 47:
the largest periodic terms of the geocentric ecliptic longitude, latitude and distance,
in the Delaunay-type arguments (TT Julian centuries T since J2000.0, degrees)

    L' = 218.3164477 + 481267.88123421 T   (mean longitude, mean equinox of date)
    D  = 297.8501921 + 445267.1114034 T    (mean elongation)
    M  = 357.5291092 + 35999.0502909 T     (Sun's mean anomaly)
    M' = 134.9633964 + 477198.8675055 T    (Moon's mean anomaly)
    F  =  93.2720950 + 483202.0175233 T    (argument of latitude)

(terms in M multiplied by the eccentricity factor E = 1 - 0.002516 T).  The
ecliptic-of-date vector is turned into the mean equator of date with the mean obliquity
of date and precessed to the J2000 mean equator with the IAU 1976 angles shared with
:mod:`pygnc.environment.sun`; frame bias (~23 mas) and nutation (<= 20") are ignored.

Accuracy (``tests/test_moon.py``, against astropy's ``get_body('moon')``, 1990-2060):
direction within 0.03 deg, distance within 0.15 % (~500 km) — ample for the lunar tidal
acceleration on a LEO satellite (~1e-6 m/s^2), whose error is then ~1e-9 m/s^2.

The orbit dynamics evaluate it once per 10-minute node.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pygnc.environment.sun import precession_matrix_j2000_to_date
from pygnc.timebase import julian_date_tt_from_gps

__all__ = ["GM_MOON_M3_S2", "moon_position_gcrs_m"]

#: Lunar gravitational parameter [m^3/s^2] (DE430).
GM_MOON_M3_S2 = 4.902800066e12

_ARCSEC = np.pi / (180.0 * 3600.0)

# (D, M, M', F multipliers, longitude coefficient [1e-6 deg], distance coefficient [m]).
_LON_DIST = (
    (0, 0, 1, 0, 6288774, -20905355),
    (2, 0, -1, 0, 1274027, -3699111),
    (2, 0, 0, 0, 658314, -2955968),
    (0, 0, 2, 0, 213618, -569925),
    (0, 1, 0, 0, -185116, 48888),
    (0, 0, 0, 2, -114332, -3149),
    (2, 0, -2, 0, 58793, 246158),
    (2, -1, -1, 0, 57066, -152138),
    (2, 0, 1, 0, 53322, -170733),
    (2, -1, 0, 0, 45758, -204586),
    (0, 1, -1, 0, -40923, -129620),
    (1, 0, 0, 0, -34720, 108743),
    (0, 1, 1, 0, -30383, 104755),
    (2, 0, 0, -2, 15327, 10321),
    (0, 0, 1, 2, -12528, 0),
    (0, 0, 1, -2, 10980, 79661),
    (4, 0, -1, 0, 10675, -34782),
    (0, 0, 3, 0, 10034, -23210),
    (4, 0, -2, 0, 8548, -21636),
    (2, 1, -1, 0, -7888, 24208),
    (2, 1, 0, 0, -6766, 30824),
    (1, 0, -1, 0, -5163, -8379),
    (1, 1, 0, 0, 4987, -16675),
    (2, -1, 1, 0, 4036, -12831),
)
# (D, M, M', F multipliers, latitude coefficient [1e-6 deg]).
_LAT = (
    (0, 0, 0, 1, 5128122),
    (0, 0, 1, 1, 280602),
    (0, 0, 1, -1, 277693),
    (2, 0, 0, -1, 173237),
    (2, 0, -1, 1, 55413),
    (2, 0, -1, -1, 46271),
    (2, 0, 0, 1, 32573),
    (0, 0, 2, 1, 17198),
    (2, 0, 1, -1, 9266),
    (0, 0, 2, -1, 8822),
    (2, -1, 0, -1, 8216),
    (2, 0, -2, -1, 4324),
    (2, 0, 1, 1, 4200),
)


def moon_position_gcrs_m(t_gps_s: npt.ArrayLike) -> np.ndarray:
    """Geocentric position of the Moon in GCRS [m] at GPS time(s) *t_gps_s*.

    Scalar -> shape (3,); array of shape (n,) -> (n, 3).  See the module docstring.
    """
    t = (julian_date_tt_from_gps(np.asarray(t_gps_s, dtype=float)) - 2_451_545.0) / 36_525.0
    lp = np.radians(218.3164477 + 481267.88123421 * t)
    d = np.radians(297.8501921 + 445267.1114034 * t)
    m = np.radians(357.5291092 + 35999.0502909 * t)
    mp = np.radians(134.9633964 + 477198.8675055 * t)
    f = np.radians(93.2720950 + 483202.0175233 * t)
    ecc = 1.0 - 0.002516 * t
    lon = np.zeros_like(t)
    dist = np.full_like(t, 385_000_560.0)
    for kd, km, kmp, kf, cl, cr in _LON_DIST:
        arg = kd * d + km * m + kmp * mp + kf * f
        e = ecc ** abs(km)
        lon = lon + cl * e * np.sin(arg)
        if cr:
            dist = dist + cr * e * np.cos(arg)
    lat = np.zeros_like(t)
    for kd, km, kmp, kf, cb in _LAT:
        lat = lat + cb * ecc ** abs(km) * np.sin(kd * d + km * m + kmp * mp + kf * f)
    lon = lp + np.radians(1e-6 * lon)
    lat = np.radians(1e-6 * lat)
    eps = (84381.448 - 46.8150 * t - 0.00059 * t**2 + 0.001813 * t**3) * _ARCSEC
    cb = np.cos(lat)
    xe, ye, ze = cb * np.cos(lon), cb * np.sin(lon), np.sin(lat)
    r_date = np.stack([xe, np.cos(eps) * ye - np.sin(eps) * ze, np.sin(eps) * ye + np.cos(eps) * ze], axis=-1)
    r_date = r_date * dist[..., None]
    p = precession_matrix_j2000_to_date(t)
    return np.einsum("...ji,...j->...i", p, r_date)
