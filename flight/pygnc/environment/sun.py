"""Low-precision sun position in GCRS and the Earth's shadow.

Algorithm
---------
The geometric solar longitude referred to the mean equinox of date is Meeus,
*Astronomical Algorithms* (2nd ed.) ch. 25 "low accuracy" (the same series as the
Astronomical Almanac's low-precision formula, with the T-dependent equation of centre):

    L0 = 280.46646 + 36000.76983 T + 0.0003032 T^2          (deg, mean longitude)
    M  = 357.52911 + 35999.05029 T - 0.0001537 T^2          (deg, mean anomaly)
    C  = (1.914602 - 0.004817 T - 0.000014 T^2) sin M
         + (0.019993 - 0.000101 T) sin 2M + 0.000289 sin 3M (deg, equation of centre)
    lambda = L0 + C + (planetary terms) - 20.4898"/R,  R = 1.000001018 (1 - e^2) / (1 + e cos(M + C))  (AU)

with T the TT Julian centuries since J2000.0.  The seven largest lunar and planetary
perturbations in longitude (Van Flandern & Pulkkinen 1979, 3-7" each) are added, and so is
the annual aberration (-20.4898"/R), so the result is the direction a geocentric observer
sees, as astropy's GCRS sun is.  The ecliptic-of-date vector is turned into
the mean equator of date with the mean obliquity of date (IAU 1980), then precessed back
to the J2000 mean equator with the IAU 1976 precession angles (zeta, z, theta; Lieske
1977).  The J2000 mean equator and the GCRS differ by the ~23 mas frame bias, ignored.

Skipping the precession step would cost 50"/year since 2000, i.e. ~0.35 deg in 2025: this
is why a bare almanac formula is not accurate enough in GCRS.

Accuracy: direction within 0.01 deg of astropy's GCRS sun (``get_body('sun')``, ERFA
``epv00``) for 1990-2060, measured in ``tests/test_sun.py``: max 0.0055 deg, rms ~0.003 deg
over 3000 random epochs (without the perturbation terms: 0.0096 deg; without them and
the aberration: 0.015 deg; without the precession step: ~0.35 deg in 2025); distance within
8e-5 relative (~12 000 km).  For attitude determination from coarse sun sensors this is three orders of
magnitude below the sensor error.

Shadow
------
:func:`eclipse_fraction` is the conical (umbra + penumbra) model of Montenbruck & Gill,
*Satellite Orbits* §3.4.2: the visible fraction of the solar disc seen past a spherical
Earth of radius :data:`EARTH_RADIUS_M`.  :func:`in_shadow` is ``eclipse_fraction < 0.5``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pygnc.timebase import julian_date_tt_from_gps

#: Astronomical unit, m (IAU 2012).
AU_M = 149_597_870_700.0
#: Equatorial radius of the Earth (WGS-84), m.
EARTH_RADIUS_M = 6_378_137.0
#: Nominal solar radius (IAU 2015), m.
SUN_RADIUS_M = 695_700_000.0

_ARCSEC = np.pi / (180.0 * 3600.0)


def _rot2(angle_rad: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    o, z = np.ones_like(c), np.zeros_like(c)
    return np.stack([np.stack([c, z, -s], -1), np.stack([z, o, z], -1), np.stack([s, z, c], -1)], -2)


def _rot3(angle_rad: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    o, z = np.ones_like(c), np.zeros_like(c)
    return np.stack([np.stack([c, s, z], -1), np.stack([-s, c, z], -1), np.stack([z, z, o], -1)], -2)


def precession_matrix_j2000_to_date(t_tt_centuries: npt.ArrayLike) -> np.ndarray:
    """IAU 1976 precession: ``r_mean_of_date = P @ r_j2000`` (shape (..., 3, 3)).

    *t_tt_centuries* is TT Julian centuries since J2000.0.
    """
    t = np.asarray(t_tt_centuries, dtype=float)
    zeta = (2306.2181 * t + 0.30188 * t**2 + 0.017998 * t**3) * _ARCSEC
    z = (2306.2181 * t + 1.09468 * t**2 + 0.018203 * t**3) * _ARCSEC
    theta = (2004.3109 * t - 0.42665 * t**2 - 0.041833 * t**3) * _ARCSEC
    return _rot3(-z) @ _rot2(theta) @ _rot3(-zeta)


def sun_position_gcrs_m(t_gps_s: npt.ArrayLike) -> np.ndarray:
    """Geocentric position of the Sun in GCRS, metres.

    *t_gps_s*: GPS seconds (scalar or array of shape (n,)).  Returns shape (3,) or (n, 3).
    Direction as seen from the geocentre (annual aberration included; light time is
    immaterial at this accuracy); see the module docstring for algorithm and accuracy.
    """
    t_gps = np.asarray(t_gps_s, dtype=float)
    t = (julian_date_tt_from_gps(t_gps) - 2_451_545.0) / 36_525.0
    l0_deg = 280.46646 + 36000.76983 * t + 0.0003032 * t**2
    m_rad = np.radians(357.52911 + 35999.05029 * t - 0.0001537 * t**2)
    ecc = 0.016708634 - 0.000042037 * t - 0.0000001267 * t**2
    c_deg = (
        (1.914602 - 0.004817 * t - 0.000014 * t**2) * np.sin(m_rad)
        + (0.019993 - 0.000101 * t) * np.sin(2.0 * m_rad)
        + 0.000289 * np.sin(3.0 * m_rad)
    )
    nu_rad = m_rad + np.radians(c_deg)
    # Largest planetary and lunar perturbations in longitude, arcsec (Van Flandern &
    # Pulkkinen 1979, ApJS 41, 391, Sun series): Jupiter, Moon, Venus.
    g2 = np.radians(50.416 + 58517.804 * t)  # Venus mean anomaly
    g5 = np.radians(20.020 + 3034.906 * t)  # Jupiter mean anomaly
    d = np.radians(297.850 + 445267.111 * t)  # Moon mean elongation
    pert_arcsec = (
        -7.0 * np.cos(m_rad - g5)
        + 6.0 * np.sin(d)
        - 5.0 * np.cos(2.0 * m_rad - 2.0 * g2)
        - 4.0 * np.sin(m_rad - g2)
        + 3.0 * np.sin(2.0 * m_rad - 2.0 * g2)
        - 3.0 * np.sin(g5)
        - 3.0 * np.sin(2.0 * m_rad - 2.0 * g5)
    )
    c_deg = c_deg + pert_arcsec / 3600.0
    dist_au = 1.000001018 * (1.0 - ecc**2) / (1.0 + ecc * np.cos(nu_rad))
    dist_m = AU_M * dist_au
    # Annual aberration (-20.4898"/R): the direction a geocentric observer sees.
    lon_rad = np.radians(l0_deg + c_deg - 20.4898 / 3600.0 / dist_au)
    eps_rad = (84381.448 - 46.8150 * t - 0.00059 * t**2 + 0.001813 * t**3) * _ARCSEC
    # Mean equator and equinox of date.
    r_date = (
        np.stack(
            [np.cos(lon_rad), np.cos(eps_rad) * np.sin(lon_rad), np.sin(eps_rad) * np.sin(lon_rad)],
            axis=-1,
        )
        * dist_m[..., None]
    )
    p = precession_matrix_j2000_to_date(t)
    # r_j2000 = P^T r_date
    return np.einsum("...ji,...j->...i", p, r_date)


def sun_unit_gcrs(t_gps_s: npt.ArrayLike) -> np.ndarray:
    """Unit vector from the geocentre to the Sun in GCRS (shape (3,) or (n, 3))."""
    r = sun_position_gcrs_m(t_gps_s)
    return r / np.linalg.norm(r, axis=-1, keepdims=True)


def eclipse_fraction(
    r_gcrs_m: npt.ArrayLike, r_sun_gcrs_m: npt.ArrayLike, earth_radius_m: float = EARTH_RADIUS_M
) -> float | np.ndarray:
    """Visible fraction of the solar disc at position(s) *r_gcrs_m*: 1 in sun, 0 in umbra.

    Conical shadow of a spherical Earth with penumbra (Montenbruck & Gill §3.4.2).  Both
    arguments are geocentric, in the same inertial frame, metres, shape (3,) or (n, 3)
    (broadcast).  Returns a float or an array of shape (n,).
    """
    r = np.asarray(r_gcrs_m, dtype=float)
    r_sun = np.asarray(r_sun_gcrs_m, dtype=float)
    s = r_sun - r  # satellite -> sun
    r_norm = np.linalg.norm(r, axis=-1)
    s_norm = np.linalg.norm(s, axis=-1)
    a = np.arcsin(np.clip(SUN_RADIUS_M / s_norm, -1.0, 1.0))  # apparent solar radius
    b = np.arcsin(np.clip(earth_radius_m / r_norm, -1.0, 1.0))  # apparent Earth radius
    cos_c = -np.sum(r * s, axis=-1) / (r_norm * s_norm)
    c = np.arccos(np.clip(cos_c, -1.0, 1.0))  # angle between Earth and Sun centres
    a, b, c = np.broadcast_arrays(a, b, c)
    frac = np.ones(a.shape)
    umbra = c <= b - a
    annular = (c < a - b) & ~umbra
    partial = (c < a + b) & ~umbra & ~annular
    frac = np.where(umbra, 0.0, frac)
    frac = np.where(annular, 1.0 - (b / a) ** 2, frac)
    if np.any(partial):
        ap, bp, cp = a[partial], b[partial], c[partial]
        x = (cp**2 + ap**2 - bp**2) / (2.0 * cp)
        y = np.sqrt(np.maximum(ap**2 - x**2, 0.0))
        area = (
            ap**2 * np.arccos(np.clip(x / ap, -1.0, 1.0))
            + bp**2 * np.arccos(np.clip((cp - x) / bp, -1.0, 1.0))
            - cp * y
        )
        frac = np.array(frac, dtype=float)
        frac[partial] = 1.0 - area / (np.pi * ap**2)
    frac = np.clip(frac, 0.0, 1.0)
    return float(frac) if frac.ndim == 0 else frac


def in_shadow(
    r_gcrs_m: npt.ArrayLike, r_sun_gcrs_m: npt.ArrayLike, earth_radius_m: float = EARTH_RADIUS_M
) -> np.ndarray:
    """True where less than half of the solar disc is visible (see :func:`eclipse_fraction`)."""
    return np.asarray(eclipse_fraction(r_gcrs_m, r_sun_gcrs_m, earth_radius_m)) < 0.5
