"""Truth orbit propagator and GPS-fix simulator for ground scenarios.

The truth is propagated by an independent, well-kept library, **brahe**
(:func:`propagate_truth`), at a richer fidelity than the flight estimator's dynamics
(:mod:`pygnc.estimation.orbit_dynamics`: zonals to J8, EGM96 8x8, exponential drag,
analytic Sun/Moon, empirical accelerations), so that a filter tested on it is tested
neither against its own model nor against its own code:

* **Gravity**: EGM2008 to degree and order ``gravity_degree`` (default 40; brahe ships it
  to 120), brahe's own spherical-harmonic code in its own ITRF.
* **Drag**: NRLMSISE-00 with the space-weather history brahe ships, co-rotating
  atmosphere, ballistic coefficient ``ballistic_coeff_kg_m2`` (default 40 kg/m^2, the
  flight default assumes 50) divided by a solar-activity factor drawn from *seed*
  (log-normal, sigma 0.35; 1 without seed) - the flight filter knows neither.
* **Third bodies**: Sun and Moon from brahe's analytic ephemerides.
* **Solar radiation pressure**: cannonball, C_R A/m = ``srp_cr_area_to_mass_m2_kg``
  (default 1.3 x 0.01 m^2/kg), conical Earth shadow.
* **Relativity**: the Schwarzschild term.

Frames: brahe's GCRF and ITRF (IAU 2006/2000A, CIO based) with zero Earth-orientation
parameters (UT1 = UTC, no polar motion, no celestial-pole offsets) - the convention the
flight software assumes, so the truth's ECEF differs from the flight's
:mod:`pygnc.frames` (IAU 2006/2000B) only by the two codes' differences, which
``tests/test_truth_brahe.py`` bounds.  (Real EOP would add UT1 - UTC, up to 0.9 s, which
the flight frames do not model: a separate matter.)

Integration: brahe's Dormand-Prince 5(4), rtol 1e-12, atol 1e-9, steps of at most 10 s,
sampled on the ``step_s`` grid by brahe's Hermite interpolation (0.3 mm from a direct
propagation, ``tests/test_truth_brahe.py``); about half the time is the ITRF conversion of
every 1-s sample.

:func:`propagate_in_house` keeps an in-house model (EGM96 to degree 12 by a
Cunningham recursion, a Harris-Priester-like bulge, scipy DOP853): the benchmark's
information bound needs a truth whose unknown gravity coefficients it can enumerate, and
the analytic tests (two-body against Kepler, J2 nodal rate) check it.  It uses
:mod:`pygnc.frames` and the flight's EGM96 table, so it is no independent truth.

All times are ``t_gps_s``; positions m, velocities m/s.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.integrate import solve_ivp
from scipy.interpolate import CubicSpline

from pygnc import frames, timebase
from pygnc.environment import sun as sun_model
from pygnc.estimation import orbit_ekf as _oe
from pygnc.estimation.orbit_dynamics import (
    A_WGS84_M,
    FLATTENING_EARTH,
    GM_EARTH_M3_S2,
    R_EARTH_M,
    atmosphere_density,
)
from pygnc.estimation.orbit_dynamics import EGM96_NORMALIZED as _EGM96_FLIGHT

__all__ = [
    "EGM96_NORMALIZED",
    "initial_state_from_elements",
    "propagate_truth",
    "simulate_gps_fixes",
    "spherical_harmonic_acceleration_itrs",
    "moon_position_gcrs_m",
]

GM_SUN_M3_S2 = 1.32712440018e20
GM_MOON_M3_S2 = 4.9028e12
#: Solar radiation pressure at 1 AU, N/m^2.
P_SUN_N_M2 = 4.56e-6

_EGM96_DEG9_12 = (
    (9, 0, 2.76714300853e-8, 0.0),
    (9, 1, 1.43387502749e-7, 2.16834947618e-8),
    (9, 2, 2.22288318564e-8, -3.22196647116e-8),
    (9, 3, -1.60811502143e-7, -7.42287409462e-8),
    (9, 4, -9.00179225336e-9, 1.94666779475e-8),
    (9, 5, -1.66165092924e-8, -5.41113191483e-8),
    (9, 6, 6.26941938248e-8, 2.22903525945e-7),
    (9, 7, -1.18366323475e-7, -9.65152667886e-8),
    (9, 8, 1.88436022794e-7, -3.08566220421e-9),
    (9, 9, -4.77475386132e-8, 9.66412847714e-8),
    (10, 0, 5.26222488569e-8, 0.0),
    (10, 1, 8.35115775652e-8, -1.31314331796e-7),
    (10, 2, -9.42413882081e-8, -5.1579165739e-8),
    (10, 3, -6.89895048176e-9, -1.53768828694e-7),
    (10, 4, -8.40764549716e-8, -7.92806255331e-8),
    (10, 5, -4.93395938185e-8, -5.05370221897e-8),
    (10, 6, -3.75885236598e-8, -7.95667053872e-8),
    (10, 7, 8.11460540925e-9, -3.36629641314e-9),
    (10, 8, 4.04927981694e-8, -9.18705975922e-8),
    (10, 9, 1.25491334939e-7, -3.76516222392e-8),
    (10, 10, 1.00538634409e-7, -2.4014844952e-8),
    (11, 0, -5.09613707522e-8, 0.0),
    (11, 1, 1.51687209933e-8, -2.68604146166e-8),
    (11, 2, 1.86309749878e-8, -9.90693862047e-8),
    (11, 3, -3.09871239854e-8, -1.4813180426e-7),
    (11, 4, -3.89580205051e-8, -6.3666651198e-8),
    (11, 5, 3.77848029452e-8, 4.94736238169e-8),
    (11, 6, -1.18676592395e-9, 3.44769584593e-8),
    (11, 7, 4.11565188074e-9, -8.98252808977e-8),
    (11, 8, -5.984108413e-9, 2.43989612237e-8),
    (11, 9, -3.14231072723e-8, 4.17731829829e-8),
    (11, 10, -5.21882681927e-8, -1.83364561788e-8),
    (11, 11, 4.60344448746e-8, -6.96662308185e-8),
    (12, 0, 3.77252636558e-8, 0.0),
    (12, 1, -5.40654977836e-8, -4.35675748979e-8),
    (12, 2, 1.42979642253e-8, 3.20975937619e-8),
    (12, 3, 3.93995876403e-8, 2.44264863505e-8),
    (12, 4, -6.86908127934e-8, 4.15081109011e-9),
    (12, 5, 3.0941112873e-8, 7.82536279033e-9),
    (12, 6, 3.41523275208e-9, 3.91765484449e-8),
    (12, 7, -1.86909958587e-8, 3.56131849382e-8),
    (12, 8, -2.53769398865e-8, 1.69361024629e-8),
    (12, 9, 4.22880630662e-8, 2.52692598301e-8),
    (12, 10, -6.17619654902e-9, 3.08375794212e-8),
    (12, 11, 1.12502994122e-8, -6.37946501558e-9),
    (12, 12, -2.4953260739e-9, -1.117806019e-8),
)

#: EGM96 fully normalised (n, m, C, S): n = 2..8 from the flight table, 9..12 here.
EGM96_NORMALIZED = _EGM96_FLIGHT + _EGM96_DEG9_12


def _unnormalized_tables(degree, zonal_only=False):
    """Unnormalised C, S as (degree+1) x (degree+1) nested lists (C[0][0] = 1)."""
    c = [[0.0] * (degree + 1) for _ in range(degree + 1)]
    s = [[0.0] * (degree + 1) for _ in range(degree + 1)]
    c[0][0] = 1.0
    for n, m, cn, sn in EGM96_NORMALIZED:
        if n > degree or (zonal_only and m):
            continue
        norm = math.sqrt((2.0 if m else 1.0) * (2 * n + 1) * math.factorial(n - m) / math.factorial(n + m))
        c[n][m] = cn * norm
        s[n][m] = sn * norm
    return c, s


def spherical_harmonic_acceleration_itrs(r_itrs_m, degree=12, tables=None):
    """Gravitational acceleration [m/s^2] in ITRS at *r_itrs_m* [m], EGM96 to *degree* x *degree*.

    Includes the central term.  *tables* = (C, S) unnormalised coefficient tables (as from
    :func:`_unnormalized_tables`) may be passed to avoid rebuilding them.
    """
    c, s = tables if tables is not None else _unnormalized_tables(degree)
    x, y, z = (float(v) for v in r_itrs_m)
    r2 = x * x + y * y + z * z
    rr = R_EARTH_M / r2
    x0, y0, z0 = x * rr, y * rr, z * rr  # (x, y, z) R / r^2
    rho = R_EARTH_M * rr  # R^2 / r^2
    nmax = degree + 1
    v = [[0.0] * (nmax + 1) for _ in range(nmax + 1)]
    w = [[0.0] * (nmax + 1) for _ in range(nmax + 1)]
    v[0][0] = R_EARTH_M / math.sqrt(r2)
    w[0][0] = 0.0
    for m in range(nmax + 1):
        if m > 0:
            f = 2 * m - 1
            v[m][m] = f * (x0 * v[m - 1][m - 1] - y0 * w[m - 1][m - 1])
            w[m][m] = f * (x0 * w[m - 1][m - 1] + y0 * v[m - 1][m - 1])
        if m + 1 <= nmax:
            f = 2 * m + 1
            v[m + 1][m] = f * z0 * v[m][m]
            w[m + 1][m] = f * z0 * w[m][m]
        for n in range(m + 2, nmax + 1):
            a1 = (2 * n - 1) / (n - m)
            a2 = (n + m - 1) / (n - m)
            v[n][m] = a1 * z0 * v[n - 1][m] - a2 * rho * v[n - 2][m]
            w[n][m] = a1 * z0 * w[n - 1][m] - a2 * rho * w[n - 2][m]
    ax = ay = az = 0.0
    for n in range(degree + 1):
        for m in range(n + 1):
            cnm, snm = c[n][m], s[n][m]
            if not cnm and not snm:
                continue
            if m == 0:
                ax -= cnm * v[n + 1][1]
                ay -= cnm * w[n + 1][1]
            else:
                fac = (n - m + 2) * (n - m + 1)
                ax += 0.5 * (
                    (-cnm * v[n + 1][m + 1] - snm * w[n + 1][m + 1])
                    + fac * (cnm * v[n + 1][m - 1] + snm * w[n + 1][m - 1])
                )
                ay += 0.5 * (
                    (-cnm * w[n + 1][m + 1] + snm * v[n + 1][m + 1])
                    + fac * (-cnm * w[n + 1][m - 1] + snm * v[n + 1][m - 1])
                )
            az += (n - m + 1) * (-cnm * v[n + 1][m] - snm * w[n + 1][m])
    k = GM_EARTH_M3_S2 / (R_EARTH_M * R_EARTH_M)
    return np.array([k * ax, k * ay, k * az])


def moon_position_gcrs_m(t_gps_s):
    """Geocentric Moon position [m], mean equator and equinox of J2000 (~GCRS), ~0.3 deg.

    Low-precision lunar theory (Montenbruck & Gill, Satellite Orbits, §3.3.2).
    """
    t = (np.asarray(timebase.julian_date_tt_from_gps(t_gps_s)) - 2_451_545.0) / 36_525.0
    d2r = math.pi / 180.0
    as2r = d2r / 3600.0
    l0 = (218.31617 + 481267.88088 * t - 1.3972 * t) * d2r
    el = (134.96292 + 477198.86753 * t) * d2r
    elp = (357.52543 + 35999.04944 * t) * d2r
    f = (93.27283 + 483202.01873 * t) * d2r
    d = (297.85027 + 445267.11135 * t) * d2r
    lon = l0 + as2r * (
        22640 * np.sin(el)
        + 769 * np.sin(2 * el)
        - 4586 * np.sin(el - 2 * d)
        + 2370 * np.sin(2 * d)
        - 668 * np.sin(elp)
        - 412 * np.sin(2 * f)
        - 212 * np.sin(2 * el - 2 * d)
        - 206 * np.sin(el + elp - 2 * d)
        + 192 * np.sin(el + 2 * d)
        - 165 * np.sin(elp - 2 * d)
        + 148 * np.sin(el - elp)
        - 125 * np.sin(d)
        - 110 * np.sin(el + elp)
        - 55 * np.sin(2 * f - 2 * d)
    )
    lat = as2r * (
        18520 * np.sin(f + lon - l0 + as2r * (412 * np.sin(2 * f) + 541 * np.sin(elp)))
        - 526 * np.sin(f - 2 * d)
        + 44 * np.sin(el + f - 2 * d)
        - 31 * np.sin(-el + f - 2 * d)
        - 25 * np.sin(-2 * el + f)
        - 23 * np.sin(elp + f - 2 * d)
        + 21 * np.sin(-el + f)
        + 11 * np.sin(-elp + f - 2 * d)
    )
    dist_m = 1e3 * (
        385000
        - 20905 * np.cos(el)
        - 3699 * np.cos(2 * d - el)
        - 2956 * np.cos(2 * d)
        - 570 * np.cos(2 * el)
        + 246 * np.cos(2 * el - 2 * d)
        - 205 * np.cos(elp - 2 * d)
        - 171 * np.cos(el + 2 * d)
        - 152 * np.cos(el + elp - 2 * d)
    )
    eps = 23.43929111 * d2r
    xe = dist_m * np.cos(lon) * np.cos(lat)
    ye = dist_m * np.sin(lon) * np.cos(lat)
    ze = dist_m * np.sin(lat)
    return np.stack([xe, ye * math.cos(eps) - ze * math.sin(eps), ye * math.sin(eps) + ze * math.cos(eps)], -1)


def initial_state_from_elements(a_m, e, i_rad, raan_rad, argp_rad, nu_rad):
    """GCRS position [m] and velocity [m/s] from osculating Keplerian elements (two-body)."""
    p = a_m * (1.0 - e * e)
    r = p / (1.0 + e * math.cos(nu_rad))
    r_pf = np.array([r * math.cos(nu_rad), r * math.sin(nu_rad), 0.0])
    k = math.sqrt(GM_EARTH_M3_S2 / p)
    v_pf = np.array([-k * math.sin(nu_rad), k * (e + math.cos(nu_rad)), 0.0])
    co, so = math.cos(raan_rad), math.sin(raan_rad)
    ci, si = math.cos(i_rad), math.sin(i_rad)
    cw, sw = math.cos(argp_rad), math.sin(argp_rad)
    rot = np.array(
        [
            [co * cw - so * sw * ci, -co * sw - so * cw * ci, so * si],
            [so * cw + co * sw * ci, -so * sw + co * cw * ci, -co * si],
            [sw * si, cw * si, ci],
        ]
    )
    return rot @ r_pf, rot @ v_pf


class _TruthForces:
    """Right-hand side of the truth dynamics (closure over the scenario's parameters)."""

    def __init__(
        self,
        t0_gps_s,
        duration_s,
        ballistic_coeff_kg_m2,
        density_factor,
        density_phase_rad,
        gravity_degree,
        third_body,
        srp_cr_area_to_mass_m2_kg,
        drag,
        zonal_only=False,
    ):
        self.tables = _unnormalized_tables(gravity_degree, zonal_only)
        self.degree = gravity_degree
        self.inv_b = 0.0 if not drag or not ballistic_coeff_kg_m2 else 1.0 / ballistic_coeff_kg_m2
        self.density_factor = density_factor
        self.density_phase_rad = density_phase_rad
        self.third_body = third_body
        self.srp = srp_cr_area_to_mass_m2_kg
        self.t0 = t0_gps_s
        need_ephem = third_body or srp_cr_area_to_mass_m2_kg or self.inv_b
        if need_ephem:
            grid = t0_gps_s + np.arange(-1200.0, duration_s + 2400.0, 600.0)
            self.sun = CubicSpline(grid, sun_model.sun_position_gcrs_m(grid))
            self.moon = CubicSpline(grid, moon_position_gcrs_m(grid))

    def density(self, t, r_gcrs, r_sun):
        x, y, z = r_gcrs
        rn = math.sqrt(x * x + y * y + z * z)
        h = rn - A_WGS84_M * (1.0 - FLATTENING_EARTH * z * z / (rn * rn))
        base = atmosphere_density(h)
        # Diurnal bulge: apex at the Sun's declination, 30 deg east of the sub-solar point.
        su = r_sun / np.linalg.norm(r_sun)
        lag = math.radians(30.0)
        cl, sl = math.cos(lag), math.sin(lag)
        apex = np.array([su[0] * cl - su[1] * sl, su[0] * sl + su[1] * cl, su[2]])
        cos_psi = float(np.dot(apex, r_gcrs)) / rn
        bulge = 0.6 + 1.4 * ((1.0 + cos_psi) / 2.0) ** 3  # cos^6(psi/2), night 0.6, apex 2.0
        month = 1.0 + 0.15 * math.sin(2.0 * math.pi * (t - self.t0) / (27.0 * 86400.0) + self.density_phase_rad)
        return base * bulge * month * self.density_factor

    def __call__(self, t, y):
        r = y[:3]
        v = y[3:]
        m = frames.gcrs_from_itrs_matrix(t)
        a = m @ spherical_harmonic_acceleration_itrs(m.T @ r, self.degree, self.tables)
        if self.third_body or self.srp or self.inv_b:
            r_sun = self.sun(t)
        if self.third_body:
            r_moon = self.moon(t)
            for gm, s in ((GM_SUN_M3_S2, r_sun), (GM_MOON_M3_S2, r_moon)):
                d = s - r
                a = a + gm * (d / np.linalg.norm(d) ** 3 - s / np.linalg.norm(s) ** 3)
        if self.srp:
            d = r - r_sun
            dn = np.linalg.norm(d)
            nu = float(sun_model.eclipse_fraction(r, r_sun))
            a = a + nu * P_SUN_N_M2 * self.srp * (sun_model.AU_M / dn) ** 2 * d / dn
        if self.inv_b:
            w = frames.OMEGA_EARTH_RAD_S
            vr = np.array([v[0] + w * r[1], v[1] - w * r[0], v[2]])
            rho = self.density(t, r, r_sun)
            a = a - 0.5 * rho * self.inv_b * np.linalg.norm(vr) * vr
        return np.concatenate([v, a])


def propagate_in_house(
    r0_gcrs_m,
    v0_gcrs_m_s,
    t0_gps_s,
    duration_s,
    step_s=1.0,
    ballistic_coeff_kg_m2=40.0,
    seed=None,
    *,
    gravity_degree=12,
    third_body=True,
    drag=True,
    srp_cr_area_to_mass_m2_kg=0.013,
    gravity_zonal_only=False,
    rtol=1e-12,
    atol_m=1e-6,
):
    """Propagate with the in-house model (see the module docstring); same dict as
    :func:`propagate_truth`.

    Keys: ``t_gps_s`` (n,), ``r_gcrs_m``, ``v_gcrs_m_s``, ``r_ecef_m``, ``v_ecef_m_s`` (n, 3),
    and ``density_factor`` (the solar-activity factor drawn from *seed*, a float).
    ``gravity_degree=0``, ``third_body=False``, ``drag=False``, ``srp_cr_area_to_mass_m2_kg=0``
    gives the two-body problem (used by the tests).
    """
    rng = np.random.default_rng(seed) if seed is not None else None
    density_factor = float(np.exp(0.35 * rng.standard_normal())) if rng is not None else 1.0
    density_phase = float(rng.uniform(0.0, 2.0 * math.pi)) if rng is not None else 0.0
    rhs = _TruthForces(
        float(t0_gps_s),
        float(duration_s),
        ballistic_coeff_kg_m2,
        density_factor,
        density_phase,
        gravity_degree,
        third_body,
        srp_cr_area_to_mass_m2_kg,
        drag,
        gravity_zonal_only,
    )
    n = int(math.floor(duration_s / step_s + 1e-9)) + 1
    t_eval = float(t0_gps_s) + step_s * np.arange(n)
    y0 = np.concatenate([np.asarray(r0_gcrs_m, dtype=float), np.asarray(v0_gcrs_m_s, dtype=float)])
    atol = np.array([atol_m] * 3 + [atol_m * 1e-3] * 3)
    sol = solve_ivp(rhs, (t_eval[0], t_eval[-1]), y0, method="DOP853", t_eval=t_eval, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"truth propagation failed: {sol.message}")
    r_g = sol.y[:3].T.copy()
    v_g = sol.y[3:].T.copy()
    r_e, v_e = frames.gcrs_to_itrs(r_g, v_g, t_eval)
    return {
        "t_gps_s": t_eval,
        "r_gcrs_m": r_g,
        "v_gcrs_m_s": v_g,
        "r_ecef_m": r_e,
        "v_ecef_m_s": v_e,
        "density_factor": density_factor,
        "truth_model": "in_house",
    }


def simulate_gps_fixes(
    truth,
    period_s=25.0,
    pos_sigma_m=10.0,
    vel_sigma_m_s=0.01,
    outlier_fraction=0.0,
    outlier_m=1000.0,
    gaps=(),
    rng=None,
    *,
    sc_minus_utc_s=0.0,
    clock_rate_error=0.0,
    invalid_fraction=0.0,
    report_sigma=True,
    with_flags=False,
    correlated_sigma_m=0.0,
    correlation_s=1200.0,
):
    """GPS fixes from a truth dict: every *period_s* on the truth's GPS-time grid.

    Noise: Gaussian, *pos_sigma_m* [m] and *vel_sigma_m_s* [m/s] 1-sigma per ECEF axis; of
    the position's, *correlated_sigma_m* is a Gauss-Markov error of correlation time
    *correlation_s* [s] (a receiver's ionosphere and ephemeris error; drawn after the rest,
    so 0 leaves every other draw as it was) and the remainder white.
    A fraction *outlier_fraction* of fixes get a position error of *outlier_m* in a random
    direction; *gaps* = [(start_s, end_s), ...] relative to the truth start have no fixes;
    *invalid_fraction* of fixes are receiver "no solution" records (INSUFFICIENT_OBS, zero
    position, ``valid`` False).  The spacecraft clock reads UTC unix seconds + *sc_minus_utc_s*
    + *clock_rate_error* (dimensionless, 2e-5 = 20 ppm) x elapsed, truncated to whole seconds (as the PyCubed
    clock).  Sigmas
    are reported in the fix when *report_sigma* (else 0: "not given").

    Returns a dict of arrays keyed by the field names of ``pygnc.formats.gps.GPS_FIX_DTYPE``
    (with *with_flags*, also a dict of truth flags: ``outlier``, ``invalid`` bool arrays).
    """
    from pygnc.formats.gps import GPS_FIX_DTYPE

    if not 0.0 <= correlated_sigma_m <= pos_sigma_m or not correlation_s > 0.0:
        raise ValueError(
            f"correlated_sigma_m {correlated_sigma_m} not in [0, pos_sigma_m {pos_sigma_m}] or correlation_s <= 0"
        )
    rng = rng if rng is not None else np.random.default_rng()
    t_all = np.asarray(truth["t_gps_s"])
    t0 = t_all[0]
    rel = t_all - t0
    k = np.round(rel / period_s)
    pick = np.abs(rel - k * period_s) < 1e-6
    for a, b in gaps:
        pick &= ~((rel >= a) & (rel < b))
    idx = np.nonzero(pick)[0]
    n = idx.size
    fixes = np.zeros(n, dtype=GPS_FIX_DTYPE)
    t = t_all[idx]
    fixes["t_gps_s"] = t
    fixes["unix_time_s"] = timebase.utc_unix_from_gps(t)
    week = np.floor(t / timebase.SECONDS_PER_WEEK)
    fixes["week"] = week.astype(np.uint16)
    fixes["ms_of_week"] = np.round((t - week * timebase.SECONDS_PER_WEEK) * 1000.0).astype(np.uint32)
    fixes["t_sc_s"] = np.floor(fixes["unix_time_s"] + sc_minus_utc_s + clock_rate_error * (t - t0))
    fixes["time_status"] = 180
    white_sigma_m = math.sqrt(max(pos_sigma_m**2 - correlated_sigma_m**2, 0.0))
    pos = truth["r_ecef_m"][idx] + white_sigma_m * rng.standard_normal((n, 3))
    vel = truth["v_ecef_m_s"][idx] + vel_sigma_m_s * rng.standard_normal((n, 3))
    outlier = rng.random(n) < outlier_fraction
    u = rng.standard_normal((n, 3))
    u /= np.linalg.norm(u, axis=1)[:, None]
    pos[outlier] += outlier_m * u[outlier]
    invalid = rng.random(n) < invalid_fraction
    if correlated_sigma_m > 0.0:
        draws = correlated_sigma_m * rng.standard_normal((n, 3))
        for i in range(1, n):
            a = math.exp(-(t[i] - t[i - 1]) / correlation_s)
            draws[i] = a * draws[i - 1] + math.sqrt(1.0 - a * a) * draws[i]
        pos += draws
    pos[invalid] = 0.0
    vel[invalid] = 0.0
    fixes["pos_ecef_m"] = pos
    fixes["vel_ecef_m_s"] = vel
    if report_sigma:
        fixes["pos_sigma_m"] = pos_sigma_m
        fixes["vel_sigma_m_s"] = vel_sigma_m_s
    fixes["solution_status"] = np.where(invalid, 1, 0)
    fixes["vel_status"] = fixes["solution_status"]
    fixes["sats_tracked"] = 10
    fixes["sats_in_solution"] = np.where(invalid, 2, 8 + rng.integers(0, 4, n))
    fixes["valid"] = ~invalid
    out = {name: fixes[name] for name in GPS_FIX_DTYPE.names}
    if with_flags:
        return out, {"outlier": outlier & ~invalid, "invalid": invalid}
    return out


def truth_anchored_ekf(truth):
    """EKF class with the truth's exact dynamics: prediction = truth + Phi (estimate - truth).

    An EKF whose model equals the truth's has an error that evolves as e_k+1 = Phi e_k (to
    ~1e-6 relative at metre errors); propagating truth and error separately is that filter
    exactly (checked against a DOP853 propagation of the truth's own force model: same
    figures to the centimetre) at the flight filter's cost.  An inverse crime on purpose.
    """
    t0 = truth["t_gps_s"][0]
    xt = np.concatenate([truth["r_gcrs_m"], truth["v_gcrs_m_s"]], axis=1)

    class Anchored(_oe.OrbitEKF):
        def predict(self, dt_s):
            if dt_s <= 0.0:
                return
            e = self.x.copy()
            e[:6] -= xt[int(round(self.t_gps_s - t0))]
            nsub = max(1, int(math.ceil(dt_s / self.model.max_step_s - 1e-9)))
            h = dt_s / nsub
            x, phi_all = self.x, np.eye(self.n)
            for i in range(nsub):
                x, phi = self._propagate(x, h, self.t_gps_s + i * h)
                phi_all = phi @ phi_all
            self.t_gps_s += dt_s
            self.p = phi_all @ self.p @ phi_all.T
            if self.nb:  # the fixes' slowly varying error is no dynamics: its own noise stays
                a = self._decay(dt_s)
                self.p[self.nd :, self.nd :] += (1.0 - a * a) * self.config.fix_error_correlated_sigma_m**2 * np.eye(3)
            self.x = phi_all @ e
            self.x[:6] += xt[int(round(self.t_gps_s - t0))]
            if self.record:
                self.history.append(
                    _oe.FilterStep(
                        self.t_gps_s, phi_all, self.x.copy(), self.p.copy(), self.x.copy(), self.p.copy(), False
                    )
                )

    return Anchored


# --------------------------------------------------------------------------- brahe truth
#: Degree and order of the truth's EGM2008 field (flight: 8x8 EGM96).
TRUTH_GRAVITY_DEGREE = 40
#: Longest step of the truth's integrator, s (keeps the Hermite sampling error < 1 mm).
TRUTH_MAX_STEP_S = 10.0

_BRAHE_READY = False


def brahe_setup():
    """Import brahe and set its global data once: zero Earth orientation (see the module
    docstring) and the space-weather file it ships (NRLMSISE-00).  Nothing is downloaded."""
    global _BRAHE_READY
    import brahe as bh

    if not _BRAHE_READY:
        bh.set_global_eop_provider_from_static_provider(bh.StaticEOPProvider.from_values(0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
        bh.initialize_sw()
        _BRAHE_READY = True
    return bh


def brahe_epoch(t_gps_s: float):
    """brahe Epoch of GPS time *t_gps_s* (seconds since 1980-01-06 00:00 GPS)."""
    bh = brahe_setup()
    return bh.Epoch.from_datetime(1980, 1, 6, 0, 0, 0.0, 0.0, bh.TimeSystem.GPS) + float(t_gps_s)


def _brahe_force_model(bh, gravity_degree, third_body, drag, srp):
    src = bh.ParameterSource
    grav = (
        bh.GravityConfiguration(degree=gravity_degree, order=gravity_degree)
        if gravity_degree >= 2
        else bh.GravityConfiguration()
    )
    return bh.ForceModelConfig(
        gravity=grav,
        # Parameter vector [mass, drag area, C_D, SRP area, C_R]; only ratios matter.
        drag=bh.DragConfiguration(bh.AtmosphericModel.NRLMSISE00, src.parameter_index(1), src.parameter_index(2))
        if drag
        else None,
        srp=bh.SolarRadiationPressureConfiguration(
            src.parameter_index(3), src.parameter_index(4), bh.EclipseModel.CONICAL
        )
        if srp
        else None,
        third_body=[
            bh.ThirdBodyConfiguration(b, bh.EphemerisSource.LowPrecision) for b in (bh.ThirdBody.SUN, bh.ThirdBody.MOON)
        ]
        if third_body
        else None,
        relativity=True,
        mass=src.parameter_index(0),
    )


#: Spacing of the bias-precession-nutation matrices interpolated between [s]: against
#: brahe's own at every second, 6e-15 (4e-8 m at the orbit).
BPN_GRID_S = 60.0


def _mat_vec(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(n, 3, 3) times (n, 3) in elementwise products and sums only (no BLAS or einsum
    reduction, whose order may differ between CPUs): the same bits on every machine, as the
    simulator's files must be (tests/test_simulate.py)."""
    return m[:, :, 0] * v[:, None, 0] + m[:, :, 1] * v[:, None, 1] + m[:, :, 2] * v[:, None, 2]


@functools.lru_cache(maxsize=2)
def _gcrf_to_itrf_factors(t0_gps_s: float, step_s: float, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W, R, B), each (n, 3, 3) and read-only, at the *n* epochs of :func:`propagate_truth`
    from *t0_gps_s* every *step_s* (either sign): brahe's GCRF -> ITRF rotation as its
    three factors - polar motion W, Earth rotation R, bias-precession-nutation B - whose
    product W R B is its ``rotation_gcrf_to_itrf``.  W and R at every epoch; B, the costly
    series changing by < 1e-9 rad a minute, interpolated linearly from a grid of about
    BPN_GRID_S.  Cached (a scenario's spacecraft share their epochs; ~19 MB a day of 1-s
    epochs), on brahe's Earth-orientation set-up, which :func:`brahe_setup` makes once."""
    bh = brahe_setup()
    ep0 = brahe_epoch(t0_gps_s)
    t = t0_gps_s + step_s * np.arange(n)
    epochs = [ep0 + float(d) for d in t - t[0]]  # (the offsets propagate_truth's epochs have)
    w = np.array([np.asarray(bh.polar_motion(e)) for e in epochs])
    r = np.array([np.asarray(bh.earth_rotation(e)) for e in epochs])
    every = max(1, int(round(BPN_GRID_S / abs(step_s)))) if step_s else n
    grid = np.unique(np.append(np.arange(0, n, every), n - 1))
    b_grid = np.array([np.asarray(bh.bias_precession_nutation(epochs[k])) for k in grid])
    if grid.size == 1:
        b = np.repeat(b_grid, n, axis=0)
    else:
        k = np.arange(n)
        i = np.minimum(np.searchsorted(grid, k, side="right") - 1, grid.size - 2)
        f = ((k - grid[i]) / (grid[i + 1] - grid[i]))[:, None, None]
        b = b_grid[i] * (1.0 - f) + b_grid[i + 1] * f
    for a in (w, r, b):
        a.flags.writeable = False
    return w, r, b


def states_itrf_from_gcrf(x_gcrf: np.ndarray, t0_gps_s: float, step_s: float) -> np.ndarray:
    """ITRF states (n, 6) of the GCRF states *x_gcrf* (n, 6) at :func:`propagate_truth`'s
    epochs from *t0_gps_s* every *step_s*, as brahe's ``state_gcrf_to_itrf`` makes them -
    r_itrf = W R B r, v_itrf = W (R B v - omega x R B r), omega the Earth's nominal rate
    about the intermediate pole - from :func:`_gcrf_to_itrf_factors`, at a tenth of the
    cost of brahe's ``states_itrf`` (a hundredth for the next spacecraft of the same epochs);
    how close: tests/test_truth_brahe.py."""
    bh = brahe_setup()
    x = np.asarray(x_gcrf, dtype=float)
    w, r, b = _gcrf_to_itrf_factors(float(t0_gps_s), float(step_s), x.shape[0])
    r_t = _mat_vec(r, _mat_vec(b, x[:, :3]))
    v_t = _mat_vec(r, _mat_vec(b, x[:, 3:6]))
    om = float(bh.OMEGA_EARTH)
    v_t = np.stack([v_t[:, 0] + om * r_t[:, 1], v_t[:, 1] - om * r_t[:, 0], v_t[:, 2]], axis=1)
    return np.concatenate([_mat_vec(w, r_t), _mat_vec(w, v_t)], axis=1)


def propagate_truth(
    r0_gcrs_m,
    v0_gcrs_m_s,
    t0_gps_s,
    duration_s,
    step_s=1.0,
    ballistic_coeff_kg_m2=40.0,
    seed=None,
    *,
    gravity_degree=TRUTH_GRAVITY_DEGREE,
    third_body=True,
    drag=True,
    srp_cr_area_to_mass_m2_kg=0.013,
):
    """Propagate the truth orbit with brahe; return a dict of arrays sampled every *step_s*.

    Keys: ``t_gps_s`` (n,), ``r_gcrs_m``, ``v_gcrs_m_s``, ``r_ecef_m``, ``v_ecef_m_s`` (n, 3)
    (GCRF and ITRF as brahe defines them), and ``density_factor`` (the solar-activity
    factor drawn from *seed*, a float).
    """
    bh = brahe_setup()
    rng = np.random.default_rng(seed) if seed is not None else None
    density_factor = float(np.exp(0.35 * rng.standard_normal())) if rng is not None else 1.0
    use_drag = bool(drag and ballistic_coeff_kg_m2)
    use_srp = bool(srp_cr_area_to_mass_m2_kg)
    area_drag = density_factor / ballistic_coeff_kg_m2 if use_drag else 0.0  # mass 1 kg, C_D 1
    params = np.array([1.0, area_drag, 1.0, float(srp_cr_area_to_mass_m2_kg) / 1.3 if use_srp else 0.0, 1.3])
    cfg = bh.NumericalPropagationConfig(
        bh.IntegrationMethod.DP54,
        bh.IntegratorConfig(abs_tol=1e-9, rel_tol=1e-12, max_step=TRUTH_MAX_STEP_S),
        bh.VariationalConfig(),
    )
    n = int(math.floor(duration_s / step_s + 1e-9)) + 1
    t_eval = float(t0_gps_s) + step_s * np.arange(n)
    ep0 = brahe_epoch(t0_gps_s)
    x0 = np.concatenate([np.asarray(r0_gcrs_m, dtype=float), np.asarray(v0_gcrs_m_s, dtype=float)])
    prop = bh.NumericalOrbitPropagator(
        ep0, x0, cfg, _brahe_force_model(bh, gravity_degree, third_body, use_drag, use_srp), params
    )
    epochs = [ep0 + float(dt) for dt in (t_eval - t_eval[0])]
    prop.propagate_to(epochs[-1])
    x_g = np.asarray(prop.states_gcrf(epochs), dtype=float)
    x_e = states_itrf_from_gcrf(x_g, float(t0_gps_s), float(step_s))
    return {
        "t_gps_s": t_eval,
        "r_gcrs_m": x_g[:, :3].copy(),
        "v_gcrs_m_s": x_g[:, 3:].copy(),
        "r_ecef_m": x_e[:, :3].copy(),
        "v_ecef_m_s": x_e[:, 3:].copy(),
        "density_factor": density_factor,
        "ballistic_coeff_kg_m2": float(ballistic_coeff_kg_m2) if use_drag else 0.0,
        "srp_cr_area_to_mass_m2_kg": float(srp_cr_area_to_mass_m2_kg) if use_srp else 0.0,
    }


def truth_nongravitational(truth, index):
    """The brahe truth's drag and solar-radiation-pressure accelerations [m/s^2] (GCRS, (n, 3)
    each) at the samples *index* of *truth* (:func:`propagate_truth`): NRLMSISE-00 density
    (brahe, the space weather it ships) on the co-rotating atmosphere with the truth's
    ballistic coefficient and density factor, and the cannonball SRP with the conical shadow
    (the flight's :func:`pygnc.environment.sun.eclipse_fraction`, which brahe's agrees with to
    the penumbra's edge).  What :mod:`ground.simulate.bounds` needs for the partials of an unknown
    drag or SRP scale."""
    if truth.get("truth_model") == "in_house":
        raise ValueError("truth_nongravitational: the forces of brahe's truth (propagate_truth), not the in-house one")
    bh = brahe_setup()
    idx = np.asarray(index, dtype=int)
    t = np.asarray(truth["t_gps_s"])[idx]
    r = np.asarray(truth["r_gcrs_m"])[idx]
    v = np.asarray(truth["v_gcrs_m_s"])[idx]
    r_e = np.asarray(truth["r_ecef_m"])[idx]
    drag = np.zeros_like(r)
    srp = np.zeros_like(r)
    b = float(truth.get("ballistic_coeff_kg_m2", 0.0))
    if b:
        k = float(truth["density_factor"]) / b
        for i in range(t.size):
            rho = bh.density_nrlmsise00(brahe_epoch(float(t[i])), r_e[i])
            vr = v[i] - np.cross([0.0, 0.0, frames.OMEGA_EARTH_RAD_S], r[i])
            drag[i] = -0.5 * k * rho * np.linalg.norm(vr) * vr
    am = float(truth.get("srp_cr_area_to_mass_m2_kg", 0.0))
    if am:
        r_sun = sun_model.sun_position_gcrs_m(t)
        d = r - r_sun
        dn = np.linalg.norm(d, axis=1)
        nu = np.asarray(sun_model.eclipse_fraction(r, r_sun), dtype=float)
        srp = (nu * P_SUN_N_M2 * am * (sun_model.AU_M / dn) ** 2 / dn)[:, None] * d
    return drag, srp
