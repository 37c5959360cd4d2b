"""Truth environment for the scenario simulator: geomagnetic field, sun, shadow, albedo.

* Magnetic field: IGRF (the coefficient file shipped with ``ppigrf``, degree 13) evaluated
  with ``ppigrf.igrf_gc`` in *geocentric* spherical coordinates from the truth ECEF
  position, turned into an ECEF vector, then into GCRS with
  :func:`pygnc.frames.gcrs_from_itrs_matrix`.  ``ppigrf`` wants a ``datetime`` (the
  coefficients are interpolated linearly in time; secular variation is < 200 nT/yr, so
  one date per :data:`IGRF_DATE_CHUNK_S` of samples changes the field by < 0.03 nT) and
  returns (B_r, B_theta, B_phi) in nT with theta = colatitude, i.e. B_theta points
  **south**; :func:`magnetic_field_ecef_nt` handles both.
* Sun: :func:`pygnc.environment.sun_position_gcrs_m` (the flight model; < 0.01 deg from
  astropy, far below the sun-sensor error) and the conical shadow
  :func:`pygnc.environment.eclipse_fraction`.
* Earth albedo: a Lambertian sphere of uniform reflectivity (default 0.3), integrated
  numerically over the cap of the Earth visible from the spacecraft
  (:func:`albedo_irradiance_faces`): each cell contributes
  rho * E_sun * cos(sun incidence) * cos(emission) * cos(face incidence) dA / (pi d^2).
  This gives the day/night and terminator structure that a constant-albedo term misses.

Units: metres, seconds of GPS time, nT for the field (µT where a name says so),
irradiance as a fraction of the solar irradiance at 1 AU.
"""

from __future__ import annotations

import datetime as _dt
import warnings

import numpy as np

from pygnc.environment.sun import AU_M
from pygnc.frames import gcrs_from_itrs_matrix
from pygnc.timebase import utc_unix_from_gps

#: Samples sharing one IGRF coefficient date, seconds of GPS time.
IGRF_DATE_CHUNK_S = 6 * 3600.0
#: Points per ppigrf call (bounds its (n, 208) work arrays).
_IGRF_BATCH = 20_000
#: Mean Earth radius used for the albedo sphere, m.
ALBEDO_EARTH_RADIUS_M = 6_371_000.0


def _utc_datetime(t_gps_s: float) -> _dt.datetime:
    unix = float(utc_unix_from_gps(float(t_gps_s)))
    return _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=unix)


def magnetic_field_ecef_nt(r_ecef_m, t_gps_s):
    """IGRF main field at ECEF positions, as ECEF vectors in nT.

    *r_ecef_m*: (n, 3) metres; *t_gps_s*: (n,) or scalar GPS seconds.  Returns (n, 3).
    """
    import ppigrf

    r = np.atleast_2d(np.asarray(r_ecef_m, dtype=float))
    t = np.broadcast_to(np.asarray(t_gps_s, dtype=float), r.shape[:1])
    out = np.empty_like(r)
    rad_m = np.linalg.norm(r, axis=1)
    colat_rad = np.arccos(np.clip(r[:, 2] / rad_m, -1.0, 1.0))
    lon_rad = np.arctan2(r[:, 1], r[:, 0])
    chunk = np.floor((t - t.min()) / IGRF_DATE_CHUNK_S).astype(np.int64) if t.size else t
    for c in np.unique(chunk):
        idx_all = np.flatnonzero(chunk == c)
        date = _utc_datetime(0.5 * (t[idx_all[0]] + t[idx_all[-1]]))
        for lo in range(0, idx_all.size, _IGRF_BATCH):
            idx = idx_all[lo : lo + _IGRF_BATCH]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pandas deprecations inside ppigrf
                b_r, b_theta, b_phi = ppigrf.igrf_gc(
                    rad_m[idx] / 1000.0, np.degrees(colat_rad[idx]), np.degrees(lon_rad[idx]), date
                )
            b_r, b_theta, b_phi = b_r[0], b_theta[0], b_phi[0]
            st, ct = np.sin(colat_rad[idx]), np.cos(colat_rad[idx])
            sp, cp = np.sin(lon_rad[idx]), np.cos(lon_rad[idx])
            # Unit vectors of the local spherical basis in ECEF: r-hat, theta-hat (south), phi-hat (east).
            out[idx, 0] = b_r * st * cp + b_theta * ct * cp - b_phi * sp
            out[idx, 1] = b_r * st * sp + b_theta * ct * sp + b_phi * cp
            out[idx, 2] = b_r * ct - b_theta * st
    return out


def magnetic_field_gcrs_nt(r_ecef_m, t_gps_s):
    """IGRF field at ECEF positions, rotated into GCRS, nT, shape (n, 3)."""
    b_ecef = magnetic_field_ecef_nt(r_ecef_m, t_gps_s)
    m = gcrs_from_itrs_matrix(np.broadcast_to(np.asarray(t_gps_s, dtype=float), b_ecef.shape[:1]))
    return np.einsum("nij,nj->ni", m, b_ecef)


def _cap_grid(n_rings: int, n_azimuth: int):
    """Unit-cap quadrature nodes: (u in (0,1] fraction of the cap's 1-cos, azimuth, weight)."""
    u = (np.arange(n_rings) + 0.5) / n_rings
    az = (np.arange(n_azimuth) + 0.5) * (2.0 * np.pi / n_azimuth)
    uu, aa = np.meshgrid(u, az, indexing="ij")
    w = np.full(uu.size, 1.0 / (n_rings * n_azimuth))
    return uu.ravel(), aa.ravel(), w


def albedo_irradiance_faces(
    r_gcrs_m,
    r_sun_gcrs_m,
    face_normals_gcrs,
    albedo: float = 0.3,
    n_rings: int = 16,
    n_azimuth: int = 32,
    chunk: int = 1024,
):
    """Earth-reflected irradiance on flat faces, as a fraction of the 1-AU solar irradiance.

    *r_gcrs_m* (n, 3), *r_sun_gcrs_m* (n, 3), *face_normals_gcrs* (n, k, 3) unit outward
    normals.  Returns (n, k), >= 0.  The sun's distance scales the result (1/d^2 in AU).

    Numerical quadrature over the spherical cap visible from the spacecraft, cells equal
    in area (uniform in cos of the Earth-central angle and in azimuth).
    """
    r = np.asarray(r_gcrs_m, dtype=float)
    s = np.asarray(r_sun_gcrs_m, dtype=float)
    normals = np.asarray(face_normals_gcrs, dtype=float)
    n = r.shape[0]
    out = np.zeros(normals.shape[:2])
    re = ALBEDO_EARTH_RADIUS_M
    uu, aa, w = _cap_grid(n_rings, n_azimuth)
    for lo in range(0, n, chunk):
        sl = slice(lo, min(n, lo + chunk))
        rc = r[sl]
        rn = np.linalg.norm(rc, axis=1)
        zhat = rc / rn[:, None]
        # Orthonormal basis around the sub-satellite direction.
        helper = np.where(np.abs(zhat[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
        xhat = np.cross(helper, zhat)
        xhat /= np.linalg.norm(xhat, axis=1, keepdims=True)
        yhat = np.cross(zhat, xhat)
        cos_cap = re / rn  # cos of the cap half-angle (horizon)
        cos_lam = 1.0 - uu[None, :] * (1.0 - cos_cap[:, None])  # (m, c)
        sin_lam = np.sqrt(np.maximum(0.0, 1.0 - cos_lam**2))
        p_hat = (
            cos_lam[..., None] * zhat[:, None, :]
            + (sin_lam * np.cos(aa))[..., None] * xhat[:, None, :]
            + (sin_lam * np.sin(aa))[..., None] * yhat[:, None, :]
        )  # (m, c, 3) unit normals of the cells
        area = w[None, :] * 2.0 * np.pi * re**2 * (1.0 - cos_cap[:, None])  # (m, c)
        d_vec = rc[:, None, :] - re * p_hat  # cell -> spacecraft
        d = np.linalg.norm(d_vec, axis=2)
        cos_emit = np.maximum(0.0, np.sum(p_hat * d_vec, axis=2) / d)
        sc = s[sl]
        s_hat = sc / np.linalg.norm(sc, axis=1, keepdims=True)
        cos_sun = np.maximum(0.0, np.einsum("mcj,mj->mc", p_hat, s_hat))
        radiance = albedo * cos_sun * cos_emit * area / (np.pi * d**2)  # (m, c)
        # Incidence on each face: the face sees the cell along -d_vec.
        inc = -np.einsum("mcj,mkj->mck", d_vec / d[..., None], normals[sl])
        out[sl] = np.einsum("mc,mck->mk", radiance, np.maximum(0.0, inc))
        au2 = (AU_M / np.linalg.norm(sc, axis=1)) ** 2
        out[sl] *= au2[:, None]
    return out


def direct_irradiance_faces(r_gcrs_m, r_sun_gcrs_m, face_normals_gcrs, sun_fraction):
    """Direct solar irradiance on faces as a fraction of the 1-AU value: cos+ x shadow x 1/d^2."""
    r = np.asarray(r_gcrs_m, dtype=float)
    to_sun = np.asarray(r_sun_gcrs_m, dtype=float) - r
    d = np.linalg.norm(to_sun, axis=1)
    u = to_sun / d[:, None]
    cos_inc = np.maximum(0.0, np.einsum("mkj,mj->mk", face_normals_gcrs, u))
    return cos_inc * (np.asarray(sun_fraction) * (AU_M / d) ** 2)[:, None]
