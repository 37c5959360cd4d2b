"""The attitude filter's references at a position and time, all in GCRS: the geomagnetic
field (IGRF, µT), the unit vector to the sun and the direct-sun illuminance there (lux), the
visible fraction of the solar disc (eclipse), and the Earth's albedo cells that light the
sun faces (:mod:`pygnc.environment.albedo`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from pygnc.environment import albedo as _albedo
from pygnc.environment import igrf as _igrf
from pygnc.environment.sun import AU_M, eclipse_fraction, sun_position_gcrs_m


@dataclass
class Environment:
    """References at one instant (all GCRS): field (µT), sun unit vector, direct-sun lux E0
    at the spacecraft, visible solar fraction, albedo cells (weights, directions)."""

    mag_gcrs_ut: np.ndarray
    sun_unit_gcrs: np.ndarray
    sun_lux: float
    sun_fraction: float
    albedo_weights: np.ndarray
    albedo_dirs_gcrs: np.ndarray


#: Sun positions are computed on nodes this far apart and interpolated linearly: the
#: direction curves by ~0.7 deg per node interval, so the chord errs by < 2e-6 rad.
SUN_NODE_S = 1200.0
_SUN_NODES: dict[int, np.ndarray] = {}


def _sun_interpolated(t_gps_s: float) -> np.ndarray:
    k = math.floor(t_gps_s / SUN_NODE_S)
    for j in (k, k + 1):
        if j not in _SUN_NODES:
            if len(_SUN_NODES) > 256:
                _SUN_NODES.clear()
            _SUN_NODES[j] = sun_position_gcrs_m(j * SUN_NODE_S)
    f = t_gps_s / SUN_NODE_S - k
    return _SUN_NODES[k] + f * (_SUN_NODES[k + 1] - _SUN_NODES[k])


def _sun_fraction(r_gcrs_m: np.ndarray, r_sun_gcrs_m: np.ndarray) -> float:
    """:func:`eclipse_fraction`, with the clear cases (sun side, or far from the shadow
    cylinder's edge: the penumbra spreads < 40 km at LEO) decided without it."""
    s = r_sun_gcrs_m / math.sqrt(float(r_sun_gcrs_m @ r_sun_gcrs_m))
    along = float(r_gcrs_m @ s)
    if along >= 0.0:
        return 1.0
    perp = math.sqrt(max(0.0, float(r_gcrs_m @ r_gcrs_m) - along * along))
    if perp > 6_378_137.0 + 100_000.0:
        return 1.0
    if perp < 6_378_137.0 - 100_000.0 and along > -5.0e7:
        return 0.0
    return float(eclipse_fraction(r_gcrs_m, r_sun_gcrs_m))


def environment_at(
    t_gps_s: float,
    r_ecef_m: Iterable[float],
    r_gcrs_m: ArrayLike,
    m_gcrs_from_itrs: ArrayLike,
    sun_lux_at_1au: float,
    reflectivity: float = _albedo.DEFAULT_REFLECTIVITY,
) -> Environment:
    """Field, sun, shadow and albedo at a position (ECEF and GCRS, m) and GPS time."""
    r_g = np.asarray(r_gcrs_m, dtype=float)
    b_gcrs_ut = (np.asarray(m_gcrs_from_itrs) @ _igrf.field_ecef_nt(r_ecef_m, t_gps_s)) * 1e-3
    s_hat, e0, frac = _sun_geometry(float(t_gps_s), r_g, sun_lux_at_1au)
    w, u = _albedo.albedo_cells(r_g, s_hat, reflectivity)
    return Environment(b_gcrs_ut, s_hat, e0, frac, w, u)


def environments_at(
    t_gps_s: ArrayLike,
    r_ecef_m: ArrayLike,
    r_gcrs_m: ArrayLike,
    m_gcrs_from_itrs: Iterable[ArrayLike],
    sun_lux_at_1au: float,
    reflectivity: float = _albedo.DEFAULT_REFLECTIVITY,
) -> list[Environment]:
    """:func:`environment_at` for n points at once: times (n,), positions (n, 3), the n
    rotation matrices; bit for bit the same Environments (the field and the albedo cells
    are computed for all points together, :func:`pygnc.environment.igrf.field_ecef_nt_many`
    and :func:`pygnc.environment.albedo.albedo_cells_many`), in a fraction of the time from
    a few tens of points."""
    t = np.asarray(t_gps_s, dtype=float).ravel()
    r_g_all = np.asarray(r_gcrs_m, dtype=float).reshape(-1, 3)
    b_ecef_all = _igrf.field_ecef_nt_many(r_ecef_m, t)
    # Fresh (3,) arrays as environment_at has them, so every product sees the same operands.
    r_gs = [r_g_all[i].copy() for i in range(len(t))]
    suns = [_sun_geometry(float(ti), r_g, sun_lux_at_1au) for ti, r_g in zip(t.tolist(), r_gs)]
    cells = _albedo.albedo_cells_many(r_g_all, np.array([s_hat for s_hat, _, _ in suns]).reshape(-1, 3), reflectivity)
    return [
        Environment((np.asarray(m) @ b_ecef_all[i].copy()) * 1e-3, s_hat, e0, frac, w, u)
        for i, (m, (s_hat, e0, frac), (w, u)) in enumerate(zip(m_gcrs_from_itrs, suns, cells))
    ]


def _sun_geometry(t_gps_s: float, r_g: np.ndarray, sun_lux_at_1au: float) -> tuple[np.ndarray, float, float]:
    """(unit vector to the sun, direct-sun lux there, visible solar fraction) at GCRS *r_g*."""
    r_sun = _sun_interpolated(t_gps_s)
    to_sun = r_sun - r_g
    d = math.sqrt(float(to_sun @ to_sun))
    return to_sun / d, sun_lux_at_1au * (AU_M / d) ** 2, float(_sun_fraction(r_g, r_sun))
