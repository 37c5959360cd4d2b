"""Earth albedo on the sun-sensor faces: a coarse quadrature of a Lambertian Earth.

Model: the Earth is a sphere of radius :data:`ALBEDO_EARTH_RADIUS_M` whose surface
reflects sunlight diffusely (Lambertian) with one reflectivity ``rho``.  A Lambertian
surface has the same radiance ``rho E_sun max(0, p.s) / pi`` from every viewing angle
(``p`` the surface normal, ``s`` the unit sun direction), so the irradiance on a flat
face with outward normal ``n`` is an integral over the solid angle the Earth's disc
subtends at the spacecraft::

    E / E_sun = (rho / pi) * integral over the disc of max(0, p(w).s) max(0, n.w) dOmega(w)

Quadrature: rays ``w`` in :data:`N_RINGS` rings of equal solid angle (uniform in the cosine
of the nadir angle, out to the horizon) times :data:`N_AZIMUTHS` azimuths; each ray meets
the sphere at the point of normal ``p(w)``; rays landing on the night side are dropped.
Equal solid angles (not equal surface areas) keep the cells near nadir, which dominate,
as fine as those at the horizon: 72 rays give the accuracy that 288 equal-area cells miss
by a factor 20.  The result is a fraction of the solar irradiance at the spacecraft
(multiply by the direct-sun lux).

Split for the filter: :func:`albedo_cells` returns, once per step, the lit rays' weights
and directions (GCRS); :func:`faces_from_cells` then gives the six faces for any attitude
at the cost of one small matrix product, so the attitude filter can re-evaluate albedo at
its predicted attitude cheaply.  The face clipping ``max(0, n.w)`` is kept per ray, which
is what makes the albedo on a face differ from a single "Earth irradiance vector".

Accuracy against a 96 x 192 equal-area surface quadrature of the same physics (the
simulator's ``ground.simulate.environment``, written independently): max 0.0008, rms 0.00014
of the solar irradiance over random geometries at 400-800 km (``tests/test_albedo.py``;
albedo itself reaches ~0.25).  The simulator's default 12 x 24 surface grid is itself off
by up to 0.06 (rms 0.007) from the converged integral, which the attitude filter sees as
model error.  What this model does not know is the real Earth: reflectivity 0.1-0.8 with
clouds, ice and ocean glint.  That error belongs in the sun-sensor noise (the attitude
filter inflates R by a fraction of the modelled albedo).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

#: Mean Earth radius for the albedo sphere, m.
ALBEDO_EARTH_RADIUS_M = 6_371_000.0
#: Default Bond albedo (global mean reflectivity).
DEFAULT_REFLECTIVITY = 0.3
#: Quadrature of the visible cap.
N_RINGS = 6
N_AZIMUTHS = 12

#: Outward normals of the six sun-sensor faces in body axes, sense.bin order
#: (+X, +Y, +Z, -X, -Y, -Z).
FACE_NORMALS_BODY = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [-1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])


def _template(n_rings: int, n_azimuths: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    u = (np.arange(n_rings) + 0.5) / n_rings  # fraction of the disc's (1 - cos eta): equal solid angles
    az = (np.arange(n_azimuths) + 0.5) * (2.0 * math.pi / n_azimuths)
    uu, aa = np.meshgrid(u, az, indexing="ij")
    return uu.ravel(), np.cos(aa).ravel(), np.sin(aa).ravel()


_TEMPLATE = _template(N_RINGS, N_AZIMUTHS)


def albedo_cells(
    r_gcrs_m: Iterable[float], sun_unit_gcrs: Iterable[float], reflectivity: float = DEFAULT_REFLECTIVITY
) -> tuple[np.ndarray, np.ndarray]:
    """Lit cells of the visible Earth: (weights (c,), unit directions spacecraft->cell (c, 3)).

    A face with outward unit normal ``n`` (GCRS) receives
    ``sum(weights * max(0, dirs @ n))`` times the solar irradiance.  *r_gcrs_m* (3,) m;
    *sun_unit_gcrs* (3,) unit vector (any inertial frame shared with *r*).
    """
    rx, ry, rz = (float(v) for v in r_gcrs_m)
    sx_, sy_, sz_ = (float(v) for v in sun_unit_gcrs)
    rn = math.sqrt(rx * rx + ry * ry + rz * rz)
    zx, zy, zz = rx / rn, ry / rn, rz / rn
    # x = helper x z normalised (helper: GCRS z, or x near the poles), y = z x x
    if abs(zz) < 0.9:
        xx, xy, xz = -zy, zx, 0.0
    else:
        xx, xy, xz = 0.0, -zz, zy
    n = math.sqrt(xx * xx + xy * xy + xz * xz)
    xx, xy, xz = xx / n, xy / n, xz / n
    yx, yy, yz = zy * xz - zz * xy, zz * xx - zx * xz, zx * xy - zy * xx
    q = ALBEDO_EARTH_RADIUS_M / rn  # (q * q, not q ** 2: pow() need not round as a product does)
    cos_max = math.sqrt(max(0.0, 1.0 - q * q))  # cos of the Earth disc's half-angle
    cos_eta, sin_eta, cos_sun = _cell_angles(
        rn, cos_max, sx_ * zx + sy_ * zy + sz_ * zz, sx_ * xx + sy_ * xy + sz_ * xz, sx_ * yx + sy_ * yy + sz_ * yz
    )
    lit = cos_sun > 0.0
    if not lit.any():
        return np.zeros(0), np.zeros((0, 3))
    _, ca, sa = _TEMPLATE
    cos_eta, sin_eta, ca, sa, cos_sun = cos_eta[lit], sin_eta[lit], ca[lit], sa[lit], cos_sun[lit]
    w_dir = _directions(
        cos_eta, sin_eta, ca, sa, np.array((zx, zy, zz)), np.array((xx, xy, xz)), np.array((yx, yy, yz))
    )
    return _weights(cos_sun, cos_max, reflectivity), w_dir


def _cell_angles(
    rn: float | np.ndarray,
    cos_max: float | np.ndarray,
    sz: float | np.ndarray,
    sx: float | np.ndarray,
    sy: float | np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cos, sin of each cell ray's nadir angle, cos of the sun's angle at the cell) for one
    point (scalars) or n points (arrays (n, 1)): over all cells, arrays (..., cells)."""
    re = ALBEDO_EARTH_RADIUS_M
    uu, ca, sa = _TEMPLATE
    cos_eta = 1.0 - uu * (1.0 - cos_max)  # nadir angle of each cell's ray
    sin_eta = np.sqrt(np.maximum(0.0, 1.0 - cos_eta * cos_eta))
    # Ray from the spacecraft: w = -cos(eta) z + sin(eta) (cos a x + sin a y); it meets the
    # sphere at distance t, at the point of unit normal p = (r + t w) / R.
    t = rn * cos_eta - np.sqrt(np.maximum(0.0, re * re - (rn * sin_eta) ** 2))
    pz = (rn - t * cos_eta) / re
    ph = t * sin_eta / re  # horizontal part of p, along (cos a x + sin a y)
    return cos_eta, sin_eta, pz * sz + ph * (ca * sx + sa * sy)


def _directions(
    cos_eta: np.ndarray,
    sin_eta: np.ndarray,
    ca: np.ndarray,
    sa: np.ndarray,
    z: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
) -> np.ndarray:
    """Unit ray directions (..., 3) from the cells' angles and the point's frame z, x, y."""
    return -cos_eta[..., None] * z + (sin_eta * ca)[..., None] * x + (sin_eta * sa)[..., None] * y


def _weights(cos_sun: np.ndarray, cos_max: float | np.ndarray, reflectivity: float) -> np.ndarray:
    """Lambertian radiance rho E cos_sun / pi, the same from every viewing angle; each cell
    subtends the same solid angle."""
    d_omega = 2.0 * math.pi * (1.0 - cos_max) / _TEMPLATE[0].size
    return reflectivity * cos_sun * d_omega / math.pi


def albedo_cells_many(
    r_gcrs_m: npt.ArrayLike, sun_unit_gcrs: npt.ArrayLike, reflectivity: float = DEFAULT_REFLECTIVITY
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`albedo_cells` for (n, 3) positions and sun directions: a list of n
    (weights, directions), bit for bit those of :func:`albedo_cells` (the same operations
    in the same order, on arrays over the points)."""
    r_all = np.asarray(r_gcrs_m, dtype=float).reshape(-1, 3)
    s_all = np.asarray(sun_unit_gcrs, dtype=float).reshape(-1, 3)
    if not len(r_all):
        return []
    rx, ry, rz = r_all.T
    sx_, sy_, sz_ = s_all.T
    rn = np.sqrt(rx * rx + ry * ry + rz * rz)
    zx, zy, zz = rx / rn, ry / rn, rz / rn
    eq = np.abs(zz) < 0.9
    xx = np.where(eq, -zy, 0.0)
    xy = np.where(eq, zx, -zz)
    xz = np.where(eq, 0.0, zy)
    n = np.sqrt(xx * xx + xy * xy + xz * xz)
    xx, xy, xz = xx / n, xy / n, xz / n
    yx, yy, yz = zy * xz - zz * xy, zz * xx - zx * xz, zx * xy - zy * xx
    q = ALBEDO_EARTH_RADIUS_M / rn
    cos_max = np.sqrt(np.maximum(0.0, 1.0 - q * q))

    def col(v: np.ndarray) -> np.ndarray:
        return v[:, None]

    cos_eta, sin_eta, cos_sun = _cell_angles(
        col(rn),
        col(cos_max),
        col(sx_ * zx + sy_ * zy + sz_ * zz),
        col(sx_ * xx + sy_ * xy + sz_ * xz),
        col(sx_ * yx + sy_ * yy + sz_ * yz),
    )
    _, ca, sa = _TEMPLATE
    # Every cell's direction and weight, then each point's lit ones: elementwise, so the same
    # numbers as albedo_cells computes for its lit cells alone.
    w_dir = _directions(
        cos_eta,
        sin_eta,
        ca,
        sa,
        np.stack((zx, zy, zz), axis=1)[:, None],
        np.stack((xx, xy, xz), axis=1)[:, None],
        np.stack((yx, yy, yz), axis=1)[:, None],
    )
    w = _weights(cos_sun, col(cos_max), reflectivity)
    lit = cos_sun > 0.0
    out = []
    for i in range(len(r_all)):
        li = lit[i]
        out.append((w[i][li], w_dir[i][li]) if li.any() else (np.zeros(0), np.zeros((0, 3))))
    return out


def faces_from_cells(
    weights: np.ndarray,
    dirs_gcrs: np.ndarray,
    dcm_body_to_gcrs: np.ndarray,
    face_normals_body: np.ndarray | Sequence[Sequence[float]] = FACE_NORMALS_BODY,
) -> np.ndarray:
    """Albedo on each face (fraction of solar irradiance), shape (k,), for attitude *dcm*.

    ``dcm_body_to_gcrs`` (3, 3) with v_gcrs = dcm @ v_body."""
    if len(weights) == 0:
        return np.zeros(len(face_normals_body))
    dirs_body = dirs_gcrs @ dcm_body_to_gcrs  # (c, 3): rows are A^T u
    cosines = dirs_body @ np.asarray(face_normals_body, dtype=float).T  # (c, k)
    return weights @ np.maximum(cosines, 0.0)


def albedo_irradiance_faces(
    r_gcrs_m: Iterable[float],
    sun_unit_gcrs: Iterable[float],
    dcm_body_to_gcrs: np.ndarray,
    reflectivity: float = DEFAULT_REFLECTIVITY,
    face_normals_body: np.ndarray | Sequence[Sequence[float]] = FACE_NORMALS_BODY,
) -> np.ndarray:
    """Albedo on the faces (fraction of the solar irradiance), shape (k,)."""
    w, u = albedo_cells(r_gcrs_m, sun_unit_gcrs, reflectivity)
    return faces_from_cells(w, u, dcm_body_to_gcrs, face_normals_body)
