"""The GPS fix every filter takes (``pygnc.estimation.gps_fix``): a value (converted once,
read-only, copied from what it was made of), read alike from a decoded fix table and a dict
of arrays, its sigma rules (:func:`fix_sigmas`) over any reported value, and its conversion
to GCRS (:func:`fix_to_gcrs`) against the frames' own transform."""

import copy
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pygnc import frames
from pygnc.estimation.gps_fix import GpsFix, fix_sigmas, fix_to_gcrs
from pygnc.estimation.orbit_ekf import OrbitEKF, OrbitFilterConfig
from pygnc.formats.gps import GPS_FIX_DTYPE

T = 1426485618.0
POS = [4305511.069338997, -5064562.389307231, -1831702.108903021]
VEL = [-2416.749047690756, 547.0690479031266, -7271.576483049335]


def test_a_fix_is_a_value_converted_once():
    pos, sig = np.array(POS), np.array([3.0, 4.0, 5.0], dtype=np.float32)
    fix = GpsFix(int(T), pos, VEL, sig, None)
    assert type(fix.t_gps_s) is float and fix.t_gps_s == T
    assert fix.pos_ecef_m.dtype == fix.vel_ecef_m_s.dtype == fix.pos_sigma_m.dtype == np.float64
    assert fix.vel_sigma_m_s is None
    pos[0] = 0.0  # the fix keeps what it was made of
    assert fix.pos_ecef_m[0] == POS[0]
    with pytest.raises(ValueError):
        fix.pos_ecef_m[0] = 0.0  # read-only
    with pytest.raises(AttributeError):
        fix.t_gps_s = 0.0  # frozen
    twin = copy.deepcopy(fix)
    assert twin.t_gps_s == fix.t_gps_s and np.array_equal(twin.pos_sigma_m, fix.pos_sigma_m)


def test_from_table_reads_a_decoded_table_and_a_dict_alike():
    table = np.zeros(2, dtype=GPS_FIX_DTYPE)
    table["t_gps_s"] = [T, T + 1.0]
    table["pos_ecef_m"][1], table["vel_ecef_m_s"][1] = POS, VEL
    table["pos_sigma_m"][1], table["vel_sigma_m_s"][1] = 0.1, 0.01
    as_dict = {
        k: np.asarray(table[k]) for k in ("t_gps_s", "pos_ecef_m", "vel_ecef_m_s", "pos_sigma_m", "vel_sigma_m_s")
    }
    a, b = GpsFix.from_table(table, 1), GpsFix.from_table(as_dict, 1)
    assert a.t_gps_s == b.t_gps_s == T + 1.0
    for name in ("pos_ecef_m", "vel_ecef_m_s", "pos_sigma_m", "vel_sigma_m_s"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
        assert np.array_equal(getattr(a, name), np.asarray(table[name][1], dtype=float))


_SIGMA = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([0.0, -1.0, 1e6, 1e6 + 1.0, 1e3, 1e3 + 1.0, math.nan, 3.47e-17, 0.005, 0.01, 1e-4, 5e-5]),
)


@given(
    st.one_of(st.none(), st.lists(_SIGMA, min_size=3, max_size=3)),
    st.one_of(st.none(), st.lists(_SIGMA, min_size=3, max_size=3)),
    st.sampled_from([1.0, 2.5]),
)
def test_fix_sigmas_take_the_reported_scaled_else_the_default(pos_sigma, vel_sigma, scale):
    c = OrbitFilterConfig(pos_sigma_m=7.0, vel_sigma_m_s=0.02, fix_sigma_scale=scale)
    ps, vs = fix_sigmas(c, GpsFix(T, POS, VEL, pos_sigma, vel_sigma))
    for got, reported, default, (bottom, top) in (
        (ps, pos_sigma, 7.0, (0.01, 1e6)),
        (vs, vel_sigma, 0.02, (1e-4, 1e3)),
    ):
        assert got.shape == (3,) and np.all(got >= min(bottom, default)) and np.all(got <= top)
        for k in range(3):
            s = None if reported is None else float(reported[k]) * scale
            want = s if s is not None and bottom <= s <= top else default
            assert got[k] == want


def test_fix_to_gcrs_is_the_frames_transform_with_its_covariance():
    fix = GpsFix(T, POS, VEL)
    z, r = fix_to_gcrs(fix, [10.0] * 3, [0.01] * 3)
    back_r, back_v = frames.gcrs_to_itrs(z[:3], z[3:], T)
    np.testing.assert_allclose(back_r, POS, rtol=0, atol=1e-6)
    np.testing.assert_allclose(back_v, VEL, rtol=0, atol=1e-9)
    assert np.allclose(r, r.T) and np.all(np.linalg.eigvalsh(r) > 0)
    np.testing.assert_allclose(np.trace(r[:3, :3]), 300.0, rtol=1e-12)  # a rotation keeps the trace


def test_the_orbit_filter_takes_the_fix_with_its_sigmas():
    ekf = OrbitEKF(OrbitFilterConfig(pos_sigma_m=10.0, vel_sigma_m_s=0.01))
    assert ekf.start(GpsFix(T, POS, VEL, [2.0] * 3, None)).decision == "started"
    assert ekf.t_gps_s == T
    b = ekf.config.fix_error_correlated_sigma_m  # the fixes' slowly varying error, on top
    np.testing.assert_allclose(np.trace(ekf.p[:3, :3]), 12.0 + 3 * b**2, rtol=1e-12)  # the fix's 2 m, not 10 m
    with pytest.raises(ValueError, match="predict_to first"):
        ekf.update_gps(GpsFix(T + 5.0, POS, VEL))
