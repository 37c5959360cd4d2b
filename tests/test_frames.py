"""pygnc.frames against astropy (ITRS -> GCRS) and ERFA, and its own consistency."""

import math
import warnings

import numpy as np
import pytest
from astropy import units as u  # noqa: E402
from astropy.coordinates import GCRS, ITRS, CartesianDifferential, CartesianRepresentation  # noqa: E402
from astropy.time import Time  # noqa: E402
from astropy.utils import iers  # noqa: E402

from pygnc import frames, timebase

iers.conf.auto_download = False  # no network: bundled IERS-B is used

R_LEO_M = 7.0e6


def _random_states(n, seed):
    rng = np.random.default_rng(seed)
    # 2020-02 .. 2025-02, inside the bundled IERS-B table.
    t = timebase.gps_from_utc_unix(rng.uniform(1.581e9, 1.739e9, n))
    r = rng.normal(size=(n, 3))
    r *= R_LEO_M / np.linalg.norm(r, axis=1)[:, None]
    v = np.cross(r, rng.normal(size=(n, 3)))
    v *= 7500.0 / np.linalg.norm(v, axis=1)[:, None]
    return t, r, v


def _astropy_gcrs(r, v, t):
    obstime = Time(2_444_244.5, (t + timebase.TT_MINUS_GPS_S) / 86_400.0, format="jd", scale="tt")
    rep = CartesianRepresentation(r.T * u.m, differentials=CartesianDifferential(v.T * u.m / u.s))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = ITRS(rep, obstime=obstime).transform_to(GCRS(obstime=obstime))
        dut1 = np.asarray(obstime.delta_ut1_utc, dtype=float)
        xp, yp = iers.earth_orientation_table.get().pm_xy(obstime)
    return (
        g.cartesian.xyz.to_value(u.m).T,
        g.velocity.d_xyz.to_value(u.m / u.s).T,
        dut1,
        xp.to_value(u.rad),
        yp.to_value(u.rad),
    )


@pytest.fixture(scope="module")
def astropy_case():
    t, r, v = _random_states(24, seed=7)
    return (t, r, v) + _astropy_gcrs(r, v, t)


def test_full_model_matches_astropy_to_cm(astropy_case):
    """With astropy's DUT1 and polar motion passed in, the chain agrees to < 5 cm at LEO."""
    t, r, v, rg_a, vg_a, dut1, xp, yp = astropy_case
    for i in range(t.size):
        rg, vg = frames.itrs_to_gcrs(r[i], v[i], t[i], ut1_minus_utc_s=dut1[i], xp_rad=xp[i], yp_rad=yp[i])
        assert np.linalg.norm(rg - rg_a[i]) < 0.05
        assert np.linalg.norm(vg - vg_a[i]) < 1e-4


def test_flight_defaults_error_bounded_by_dut1_and_polar_motion(astropy_case):
    """UT1 = UTC and no polar motion: error within the documented bound, sample by sample."""
    t, r, v, rg_a, vg_a, dut1, xp, yp = astropy_case
    rg, vg = frames.itrs_to_gcrs(r, v, t)
    bound_m = (np.abs(dut1) * frames.OMEGA_EARTH_RAD_S + np.hypot(xp, yp)) * R_LEO_M + 0.05
    err_m = np.linalg.norm(rg - rg_a, axis=1)
    assert np.all(err_m <= bound_m)
    assert err_m.max() < 150.0
    # Velocity: same rotation errors applied to |v| ~ 7.5 km/s (+ omega x r ~ 0.5 km/s).
    assert np.all(np.linalg.norm(vg - vg_a, axis=1) <= bound_m / R_LEO_M * 8100.0 + 1e-4)


def test_precession_nutation_against_erfa():
    import erfa  # pyerfa, astropy's dependency

    t, _, _ = _random_states(6, seed=3)
    jd_tt = timebase.julian_date_tt_from_gps(t)
    mas = math.radians(1.0 / 3.6e6)
    for ti, jd in zip(t, jd_tt):
        dpsi, deps = frames.nutation_2000b_rad(ti)
        e_dpsi, e_deps = erfa.nut00b(jd, 0.0)
        assert abs(dpsi - e_dpsi) < 1e-3 * mas and abs(deps - e_deps) < 1e-3 * mas
        x, y, s = frames.cip_xys_rad(ti)
        ex, ey, es = erfa.xys06a(jd, 0.0)  # IAU 2006/2000A
        assert abs(x - ex) < 1.0 * mas and abs(y - ey) < 1.0 * mas and abs(s - es) < 0.02 * mas
        ut = timebase.utc_unix_from_gps(ti)
        assert abs(frames.earth_rotation_angle_rad(ti) - erfa.era00(2_440_587.5, ut / 86_400.0)) < 1e-10


def test_round_trip_and_orthonormal():
    t, r, v = _random_states(50, seed=11)
    rg, vg = frames.itrs_to_gcrs(r, v, t)
    r2, v2 = frames.gcrs_to_itrs(rg, vg, t)
    np.testing.assert_allclose(r2, r, atol=1e-6)
    np.testing.assert_allclose(v2, v, atol=1e-9)
    m = frames.gcrs_from_itrs_matrix(t)
    assert m.shape == (50, 3, 3)
    np.testing.assert_allclose(m @ np.swapaxes(m, -1, -2), np.broadcast_to(np.eye(3), m.shape), atol=1e-12)
    # With polar motion too.
    r3, v3 = frames.gcrs_to_itrs(
        *frames.itrs_to_gcrs(r[0], v[0], t[0], xp_rad=1e-6, yp_rad=2e-6), t[0], xp_rad=1e-6, yp_rad=2e-6
    )
    np.testing.assert_allclose(r3, r[0], atol=1e-6)
    np.testing.assert_allclose(v3, v[0], atol=1e-9)


def test_state_matrix_is_gcrs_to_itrs():
    """rv_gcrs_to_ecef_matrix (what the estimators' outputs use) is gcrs_to_itrs as a matrix."""
    t, r, v = _random_states(10, seed=12)
    for i in range(t.size):
        j = frames.rv_gcrs_to_ecef_matrix(frames.gcrs_from_itrs_matrix(float(t[i])))
        r_e, v_e = frames.gcrs_to_itrs(r[i], v[i], float(t[i]))
        np.testing.assert_allclose(j @ np.concatenate((r[i], v[i])), np.concatenate((r_e, v_e)), rtol=0, atol=1e-8)


def test_float_conversion_is_gcrs_to_itrs():
    """rv_gcrs_to_ecef_floats (the orbit estimator's per-sample positions and its estimates'
    states) is gcrs_to_itrs, to rounding (1e-8 m of 7e6 m)."""
    t, r, v = _random_states(10, seed=13)
    for i in range(t.size):
        r_e, v_e = frames.gcrs_to_itrs(r[i], v[i], float(t[i]))
        rf, vf = frames.rv_gcrs_to_ecef_floats(float(t[i]), r[i], v[i])
        np.testing.assert_allclose(rf, r_e, rtol=0, atol=1e-8)
        np.testing.assert_allclose(vf, v_e, rtol=0, atol=1e-11)
        assert frames.rv_gcrs_to_ecef_floats(float(t[i]), r[i]) == (rf, None)


def test_scalar_and_vector_agree():
    t0 = timebase.gps_from_utc_unix(1.7e9)
    t = t0 + np.arange(0.0, 7200.0, 37.3)
    m = frames.gcrs_from_itrs_matrix(t)
    for i in range(0, t.size, 17):
        np.testing.assert_allclose(frames.gcrs_from_itrs_matrix(float(t[i])), m[i], atol=1e-15)
        np.testing.assert_allclose(np.array(frames.gcrs_from_itrs_rows(t[i])), m[i], atol=1e-15)


def test_velocity_is_time_derivative_of_position():
    """A point fixed on Earth: d/dt of its GCRS position equals the transformed velocity."""
    t0 = timebase.gps_from_utc_unix(1.7e9)
    r_e = np.array([4.0e6, 3.0e6, 4.5e6])
    h = 0.5
    rp, _ = frames.itrs_to_gcrs(r_e, None, t0 + h)
    rm, _ = frames.itrs_to_gcrs(r_e, None, t0 - h)
    _, vg = frames.itrs_to_gcrs(r_e, np.zeros(3), t0)
    np.testing.assert_allclose(vg, (rp - rm) / (2 * h), atol=2e-4)


def test_omega_value():
    assert frames.OMEGA_EARTH_RAD_S == pytest.approx(7.292115146706979e-5, rel=1e-12)
