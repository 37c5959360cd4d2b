"""Attitude from two vector measurements, without a filter (the MEKF's initialisation): the
sun direction from the six OPT3001 faces, and TRIAD.  Body axes; illuminance in lux.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

#: OPT3001 full scale, lux.
OPT3001_FULL_SCALE_LUX = 83_865.6


def sun_vector_from_faces(
    lux: ArrayLike, saturated: ArrayLike, e_lux: float, albedo_lux: ArrayLike | None = None
) -> np.ndarray | None:
    """Unit sun vector in body axes from the six faces, or None if not determinable.

    Per axis the lit face gives the cosine (lux - albedo)/E; a saturated face's cosine is
    recovered from the unit norm (if two are saturated they share what is left equally).
    Never differences opposite faces."""
    lux = np.asarray(lux, dtype=float)
    alb = np.zeros(6) if albedo_lux is None else np.asarray(albedo_lux, dtype=float)
    c = np.clip((lux - alb) / e_lux, 0.0, 1.0)
    sat = np.asarray(saturated, dtype=bool)
    comp = np.zeros(3)
    sat_axes = []
    for ax in range(3):
        p, m = ax, ax + 3
        if sat[p] or sat[m]:
            sat_axes.append((ax, 1.0 if sat[p] else -1.0))
        else:
            comp[ax] = c[p] if c[p] >= c[m] else -c[m]
    if sat_axes:
        rest = max(0.0, 1.0 - float(comp @ comp))
        share = math.sqrt(rest / len(sat_axes))
        for ax, sign in sat_axes:
            comp[ax] = sign * max(share, OPT3001_FULL_SCALE_LUX / e_lux if len(sat_axes) == 1 else share)
    n = math.sqrt(float(comp @ comp))
    if n < 0.5:  # too little light for a direction (eclipse, or mostly albedo)
        return None
    return comp / n


#: TRIAD refuses vector pairs closer than this to parallel (or anti-parallel), rad: the
#: attitude about the first vector is then set by the second's noise over sin(angle).
TRIAD_MIN_ANGLE_RAD = math.radians(5.0)


def triad(v1_body: ArrayLike, v1_ref: ArrayLike, v2_body: ArrayLike, v2_ref: ArrayLike) -> np.ndarray | None:
    """Attitude matrix A (body -> reference) from two vector pairs, the first exact.

    ``None`` when either pair is within :data:`TRIAD_MIN_ANGLE_RAD` of parallel, or a
    vector is zero or not finite: no attitude can be had from them."""
    sin_min = math.sin(TRIAD_MIN_ANGLE_RAD)

    def frame(a: ArrayLike, b: ArrayLike) -> np.ndarray | None:
        a = np.asarray(a, dtype=float)
        b = np.asarray(b, dtype=float)
        na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
        t2 = np.cross(a, b)
        nc = float(np.linalg.norm(t2))
        if not (nc >= sin_min * na * nb and na > 0.0 and nb > 0.0):  # NaN fails too
            return None
        t1 = a / na
        t2 = t2 / nc
        return np.column_stack([t1, t2, np.cross(t1, t2)])

    f_ref, f_body = frame(v1_ref, v2_ref), frame(v1_body, v2_body)
    if f_ref is None or f_body is None:
        return None
    return f_ref @ f_body.T
