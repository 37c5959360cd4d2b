"""IGRF main geomagnetic field: Schmidt semi-normalised spherical-harmonic synthesis.

Model
-----
The internal potential (geocentric spherical coordinates r, colatitude theta, east
longitude phi; reference radius ``a`` = 6371.2 km)::

    V = a sum_{n=1..N} (a/r)^(n+1) sum_{m=0..n} (g_n^m cos m phi + h_n^m sin m phi) P_n^m(cos theta)

with ``P_n^m`` the Schmidt semi-normalised associated Legendre functions, computed by the
standard recursions (``P_n^n = sqrt(1 - 1/(2n)) sin(theta) P_{n-1}^{n-1}``;
``P_n^m = ((2n-1) cos(theta) P_{n-1}^m - sqrt((n-1)^2 - m^2) P_{n-2}^m) / sqrt(n^2 - m^2)``)
and their theta-derivatives by differentiating the same recursions.  ``B = -grad V``:
``B_r = sum (n+1)(a/r)^(n+2) ...``, ``B_theta = -sum (a/r)^(n+2) ... dP/dtheta`` (pointing
south), ``B_phi = (1/sin theta) sum (a/r)^(n+2) m (g sin m phi - h cos m phi) P``.  The
spherical components are returned as an ECEF (ITRS) vector.  Degree N = 13.

Time: the Gauss coefficients are interpolated linearly between the 5-year epochs of the
model (the last column of the IGRF file is the 2030 value predicted from the secular
variation, so 2025-2030 is the SV extrapolation).  Interpolated coefficients are cached per
day (secular variation < 200 nT/yr: < 0.6 nT per day).  Decimal year = calendar year +
elapsed fraction of that year (UTC).

Coefficients
------------
``igrf14.npz`` next to this module (10 kB, committed) holds them:
``scripts/make_igrf_table.py`` generates it from the IGRF-14 ``.shc`` file that the
``ppigrf`` package ships, and ``tests/test_igrf.py`` checks that the committed table is what
that file gives.  On first use this module loads the npz; without it, if ``ppigrf`` is
importable, it parses ppigrf's file on the fly (and writes nothing); otherwise it raises
:class:`IgrfTableMissing` saying how to generate the table.

Accuracy: max 0.21 nT from ``ppigrf.igrf_gc`` over 150 random LEO points and dates in
1990-2030 (``tests/test_igrf.py``; the difference is the per-day coefficient cache and the
decimal-year convention).  One point is computed in pure Python floats (faster than numpy
for one point); :func:`field_ecef_nt_many` does many at once.

Units: metres and GPS seconds in, nT out.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pygnc.timebase import utc_unix_from_gps

#: Reference radius of the IGRF, m.
IGRF_REFERENCE_RADIUS_M = 6_371_200.0
#: Where the generated coefficient table lives.
TABLE_PATH = Path(__file__).with_name("igrf14.npz")
#: Name of the coefficient file inside the ppigrf package.
PPIGRF_SHC_NAME = "IGRF14.shc"


class IgrfTableMissing(RuntimeError):
    """Neither igrf14.npz nor ppigrf's coefficient file is available."""


# --------------------------------------------------------------------------- table
def ppigrf_shc_path() -> Path | None:
    """Path of ppigrf's IGRF-14 file, or None if ppigrf is not installed.

    Found through the import system without importing ppigrf (which pulls in pandas)."""
    spec = importlib.util.find_spec("ppigrf")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / PPIGRF_SHC_NAME
        if p.is_file():
            return p
    return None


def table_from_shc(path: str | os.PathLike) -> dict:
    """Parse an IGRF ``.shc`` file: {'degree', 'epochs_year' (k,), 'g_nt', 'h_nt' (k, N+1, N+1)}.

    Rows are ``n m value@epoch...``; ``m < 0`` rows hold h_n^|m|.  Comment lines start with
    ``#``; the first other line is ``nmin nmax nepochs ...``, the next the epochs."""
    lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    header = lines[0]
    n_max, n_ep = int(header[1]), int(header[2])
    epochs = np.array([float(v) for v in lines[1]], dtype=float)
    if epochs.size != n_ep:
        raise ValueError(f"{path}: header says {n_ep} epochs, found {epochs.size}")
    g = np.zeros((n_ep, n_max + 1, n_max + 1))
    h = np.zeros_like(g)
    for row in lines[2:]:
        n, m = int(row[0]), int(row[1])
        vals = np.array([float(v) for v in row[2:]], dtype=float)
        if vals.size != n_ep:
            raise ValueError(f"{path}: row {n} {m} has {vals.size} values, expected {n_ep}")
        if m >= 0:
            g[:, n, m] = vals
        else:
            h[:, n, -m] = vals
    return {"degree": n_max, "epochs_year": epochs, "g_nt": g, "h_nt": h}


def write_table(path: str | os.PathLike, table: dict) -> None:
    np.savez_compressed(
        path, degree=np.int64(table["degree"]), epochs_year=table["epochs_year"], g_nt=table["g_nt"], h_nt=table["h_nt"]
    )


def load_table() -> dict:
    """The coefficient table: igrf14.npz, else ppigrf's file parsed now, else an error."""
    if TABLE_PATH.is_file():
        with np.load(TABLE_PATH) as z:
            return {
                "degree": int(z["degree"]),
                "epochs_year": z["epochs_year"].copy(),
                "g_nt": z["g_nt"].copy(),
                "h_nt": z["h_nt"].copy(),
            }
    shc = ppigrf_shc_path()
    if shc is not None:
        return table_from_shc(shc)
    raise IgrfTableMissing(
        f"IGRF coefficients not found: {TABLE_PATH} is missing and ppigrf is not installed. "
        "Generate the table with 'python scripts/make_igrf_table.py' on a machine with ppigrf."
    )


_TABLE: dict | None = None
#: (diagonal, a, b) of the Legendre recursion.
_Recursion = tuple[list[float], list[list[float]], list[list[float]]]
#: (degree, g, h as nested lists, the recursion constants, g, h, a, b as arrays).
_Coefficients = tuple[int, list, list, _Recursion, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
_COEF_CACHE: dict[int, _Coefficients] = {}


def _table() -> dict:
    global _TABLE
    if _TABLE is None:
        _TABLE = load_table()
    return _TABLE


def decimal_year_from_gps(t_gps_s: float) -> float:
    """Calendar year plus the elapsed fraction of it (UTC)."""
    unix = float(utc_unix_from_gps(float(t_gps_s)))
    d = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=unix)
    y0 = _dt.datetime(d.year, 1, 1)
    y1 = _dt.datetime(d.year + 1, 1, 1)
    return d.year + (d - y0).total_seconds() / (y1 - y0).total_seconds()


def coefficients_at(year: float) -> tuple[int, np.ndarray, np.ndarray]:
    """(degree, g_nt, h_nt) linearly interpolated (extrapolated past the ends) at *year*."""
    tab = _table()
    ep = tab["epochs_year"]
    k = int(np.clip(np.searchsorted(ep, year, side="right") - 1, 0, ep.size - 2))
    f = (year - ep[k]) / (ep[k + 1] - ep[k])
    g = tab["g_nt"][k] + f * (tab["g_nt"][k + 1] - tab["g_nt"][k])
    h = tab["h_nt"][k] + f * (tab["h_nt"][k + 1] - tab["h_nt"][k])
    return tab["degree"], g, h


def _coefficients_for_day(t_gps_s: float) -> _Coefficients:
    """The coefficients for the UTC day of *t_gps_s* (cached): (degree, g, h as nested lists,
    the recursion constants, and g, h, a, b as arrays for :func:`_field_spherical_many`)."""
    day = int(math.floor(t_gps_s / 86_400.0))
    c = _COEF_CACHE.get(day)
    if c is None:
        deg, g, h = coefficients_at(decimal_year_from_gps((day + 0.5) * 86_400.0))
        if len(_COEF_CACHE) > 64:
            _COEF_CACHE.clear()
        rc = _recursion_constants(deg)
        c = (deg, g.tolist(), h.tolist(), rc, (np.array(g), np.array(h), np.array(rc[1]), np.array(rc[2])))
        _COEF_CACHE[day] = c
    return c


_RC: dict[int, _Recursion] = {}


def _recursion_constants(deg: int) -> _Recursion:
    rc = _RC.get(deg)
    if rc is None:
        diag = [0.0, 1.0] + [math.sqrt(1.0 - 1.0 / (2.0 * n)) for n in range(2, deg + 1)]
        a = [[0.0] * (deg + 1) for _ in range(deg + 1)]  # (2n-1)/sqrt(n^2-m^2)
        b = [[0.0] * (deg + 1) for _ in range(deg + 1)]  # sqrt((n-1)^2-m^2)/sqrt(n^2-m^2)
        for n in range(1, deg + 1):
            for m in range(0, n):
                s = math.sqrt(n * n - m * m)
                a[n][m] = (2 * n - 1) / s
                b[n][m] = math.sqrt(max((n - 1) ** 2 - m * m, 0)) / s
        rc = (diag, a, b)
        _RC[deg] = rc
    return rc


# --------------------------------------------------------------------------- synthesis
def field_spherical_nt(r_m: float, colat_rad: float, lon_rad: float, t_gps_s: float) -> tuple[float, float, float]:
    """(B_r, B_theta, B_phi) in nT at a geocentric point; B_theta points south."""
    deg, g, h, (diag, ra, rb), _ = _coefficients_for_day(float(t_gps_s))
    ct, st = math.cos(colat_rad), math.sin(colat_rad)
    if st < 1e-12:  # at a pole the phi component is a limit; nudge off it
        st = 1e-12
    ratio = IGRF_REFERENCE_RADIUS_M / r_m
    cos_m = [1.0] * (deg + 1)
    sin_m = [0.0] * (deg + 1)
    c1, s1 = math.cos(lon_rad), math.sin(lon_rad)
    for m in range(1, deg + 1):
        cos_m[m] = cos_m[m - 1] * c1 - sin_m[m - 1] * s1
        sin_m[m] = sin_m[m - 1] * c1 + cos_m[m - 1] * s1
    # P and dP/dtheta for degrees n-1 and n-2 (lists over m).
    p_prev2 = [0.0] * (deg + 1)
    dp_prev2 = [0.0] * (deg + 1)
    p_prev = [0.0] * (deg + 1)
    dp_prev = [0.0] * (deg + 1)
    p_prev[0] = 1.0  # n = 0
    br = bt = bp = 0.0
    rpow = ratio * ratio  # (a/r)^(n+2) for n = 0
    for n in range(1, deg + 1):
        rpow *= ratio
        p = [0.0] * (deg + 1)
        dp = [0.0] * (deg + 1)
        an, bn = ra[n], rb[n]
        for m in range(0, n):
            p[m] = an[m] * ct * p_prev[m] - bn[m] * p_prev2[m]
            dp[m] = an[m] * (ct * dp_prev[m] - st * p_prev[m]) - bn[m] * dp_prev2[m]
        dn = diag[n]
        p[n] = dn * st * p_prev[n - 1]
        dp[n] = dn * (ct * p_prev[n - 1] + st * dp_prev[n - 1])
        gn, hn = g[n], h[n]
        sr = st_ = sp = 0.0
        for m in range(0, n + 1):
            gc = gn[m] * cos_m[m] + hn[m] * sin_m[m]
            sr += gc * p[m]
            st_ += gc * dp[m]
            if m:
                sp += m * (gn[m] * sin_m[m] - hn[m] * cos_m[m]) * p[m]
        br += (n + 1) * rpow * sr
        bt -= rpow * st_
        bp += rpow * sp
        p_prev2, dp_prev2, p_prev, dp_prev = p_prev, dp_prev, p, dp
    return br, bt, bp / st


def field_ecef_nt(r_ecef_m: Iterable[float], t_gps_s: float) -> np.ndarray:
    """IGRF field (nT) as an ECEF vector at ECEF position *r_ecef_m* (m), GPS time *t_gps_s*."""
    x, y, z = (float(v) for v in r_ecef_m)
    rho = math.hypot(x, y)
    r = math.hypot(rho, z)
    colat = math.atan2(rho, z)
    lon = math.atan2(y, x)
    b_r, b_t, b_p = field_spherical_nt(r, colat, lon, t_gps_s)
    ct, st = math.cos(colat), math.sin(colat)
    cp, sp = math.cos(lon), math.sin(lon)
    return np.array(
        [
            b_r * st * cp + b_t * ct * cp - b_p * sp,
            b_r * st * sp + b_t * ct * sp + b_p * cp,
            b_r * ct - b_t * st,
        ]
    )


def field_ecef_nt_many(r_ecef_m: npt.ArrayLike, t_gps_s: npt.ArrayLike) -> np.ndarray:
    """:func:`field_ecef_nt` over (n, 3) positions and (n,) or scalar times; (n, 3).

    Bit for bit the same as :func:`field_ecef_nt` row by row: the per-point trigonometry is
    the same ``math`` calls, the recursions run over all points and orders at once with the
    same operations in the same order (sums over m accumulated in order), so a caller may
    use either and get the same numbers.  Pays from a few points."""
    r = np.atleast_2d(np.asarray(r_ecef_m, dtype=float))
    t = np.broadcast_to(np.asarray(t_gps_s, dtype=float), r.shape[:1])
    out = np.empty((len(r), 3))
    if not len(r):
        return out
    # Per point, as field_ecef_nt / field_spherical_nt do it.
    pts = []
    for x, y, z in r.tolist():
        rho = math.hypot(x, y)
        colat = math.atan2(rho, z)
        lon = math.atan2(y, x)
        pts.append((math.hypot(rho, z), math.cos(colat), math.sin(colat), math.cos(lon), math.sin(lon)))
    rr, ct, st, cp, sp = (np.array(v) for v in zip(*pts))
    days = np.floor(t / 86_400.0)
    for day in np.unique(days):  # the coefficients change per UTC day
        sel = days == day
        b_r, b_t, b_p = _field_spherical_many(
            rr[sel], ct[sel], st[sel], cp[sel], sp[sel], _coefficients_for_day(float(t[sel][0]))
        )
        c_t, s_t, c_p, s_p = ct[sel], st[sel], cp[sel], sp[sel]
        out[sel, 0] = b_r * s_t * c_p + b_t * c_t * c_p - b_p * s_p
        out[sel, 1] = b_r * s_t * s_p + b_t * c_t * s_p + b_p * c_p
        out[sel, 2] = b_r * c_t - b_t * s_t
    return out


def _field_spherical_many(
    r_m: np.ndarray, ct: np.ndarray, st_raw: np.ndarray, c1: np.ndarray, s1: np.ndarray, coefficients: _Coefficients
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`field_spherical_nt` over arrays of points (radius, cos/sin colatitude, cos/sin
    longitude), one coefficient set; the same arithmetic in the same order.  Arrays over
    orders are (m, points)."""
    deg, _, _, (diag, _, _), (g_a, h_a, a_a, b_a) = coefficients
    st = np.where(st_raw < 1e-12, 1e-12, st_raw)
    ratio = IGRF_REFERENCE_RADIUS_M / r_m
    npt = len(r_m)
    cos_m = np.empty((deg + 1, npt))
    sin_m = np.empty((deg + 1, npt))
    cos_m[0] = 1.0
    sin_m[0] = 0.0
    for m in range(1, deg + 1):
        cos_m[m] = cos_m[m - 1] * c1 - sin_m[m - 1] * s1
        sin_m[m] = sin_m[m - 1] * c1 + cos_m[m - 1] * s1
    orders = np.arange(deg + 1, dtype=float)[:, None]
    p_prev2 = np.zeros((deg + 1, npt))
    dp_prev2 = np.zeros((deg + 1, npt))
    p_prev = np.zeros((deg + 1, npt))
    dp_prev = np.zeros((deg + 1, npt))
    p_prev[0] = 1.0
    br = np.zeros(npt)
    bt = np.zeros(npt)
    bp = np.zeros(npt)
    rpow = ratio * ratio
    for n in range(1, deg + 1):
        rpow = rpow * ratio
        p = np.zeros((deg + 1, npt))
        dp = np.zeros((deg + 1, npt))
        an, bn = a_a[n, :n, None], b_a[n, :n, None]
        p[:n] = an * ct * p_prev[:n] - bn * p_prev2[:n]
        dp[:n] = an * (ct * dp_prev[:n] - st * p_prev[:n]) - bn * dp_prev2[:n]
        dn = diag[n]
        p[n] = dn * st * p_prev[n - 1]
        dp[n] = dn * (ct * p_prev[n - 1] + st * dp_prev[n - 1])
        gn, hn = g_a[n, : n + 1, None], h_a[n, : n + 1, None]
        cm, sm = cos_m[: n + 1], sin_m[: n + 1]
        gc = gn * cm + hn * sm
        # Accumulated over m in order (add.accumulate is sequential): the scalar loop's sums.
        sr = np.add.accumulate(gc * p[: n + 1], axis=0)[-1]
        st_ = np.add.accumulate(gc * dp[: n + 1], axis=0)[-1]
        sp = np.add.accumulate(orders[1 : n + 1] * (gn[1:] * sm[1:] - hn[1:] * cm[1:]) * p[1 : n + 1], axis=0)[-1]
        br = br + (n + 1) * rpow * sr
        bt = bt - rpow * st_
        bp = bp + rpow * sp
        p_prev2, dp_prev2, p_prev, dp_prev = p_prev, dp_prev, p, dp
    return br, bt, bp / st
