"""Flight sun model against an independent reference (astropy/ERFA) and shadow geometry."""

from __future__ import annotations

import warnings

import numpy as np

from pygnc.environment import (
    AU_M,
    EARTH_RADIUS_M,
    eclipse_fraction,
    in_shadow,
    sun_position_gcrs_m,
    sun_unit_gcrs,
)
from pygnc.timebase import gps_from_utc_unix


def _angle_deg(a, b):
    cos = np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _astropy_sun_gcrs_m(unix_s):
    import astropy.units as u
    from astropy.coordinates import get_body
    from astropy.time import Time

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ERFA "dubious year" beyond the leap-second table
        t = Time(unix_s, format="unix", scale="utc")
        return get_body("sun", t).cartesian.xyz.to_value(u.m).T


def test_sun_direction_within_0p01_deg_of_astropy_1990_2060():
    rng = np.random.default_rng(20240601)
    unix_s = rng.uniform(631_152_000, 2_840_140_800, 600)  # 1990-01-01 .. 2060-01-01
    ours = sun_position_gcrs_m(gps_from_utc_unix(unix_s))
    ref = _astropy_sun_gcrs_m(unix_s)
    err_deg = _angle_deg(ours, ref)
    assert err_deg.max() < 0.01, f"max {err_deg.max():.5f} deg"
    assert np.sqrt(np.mean(err_deg**2)) < 0.005
    rel = np.abs(np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1) - 1.0)
    assert rel.max() < 2e-4


def test_sun_model_catches_precession():
    """At 2025 the J2000 and of-date equinoxes differ by ~0.35 deg; we must be in J2000."""
    unix_s = np.array([1_750_000_000.0])  # 2025-06-15
    ours = sun_position_gcrs_m(gps_from_utc_unix(unix_s))
    ref = _astropy_sun_gcrs_m(unix_s)
    assert _angle_deg(ours, ref)[0] < 0.01


def test_scalar_and_vector_shapes():
    t = 1.4e9
    assert sun_position_gcrs_m(t).shape == (3,)
    assert sun_position_gcrs_m(np.array([t, t + 1])).shape == (2, 3)
    u = sun_unit_gcrs(np.array([t]))
    assert np.allclose(np.linalg.norm(u, axis=1), 1.0)
    assert 0.98 * AU_M < np.linalg.norm(sun_position_gcrs_m(t)) < 1.02 * AU_M


def test_eclipse_fraction_geometry():
    r_sun = np.array([AU_M, 0.0, 0.0])
    a_m = EARTH_RADIUS_M + 500e3
    assert eclipse_fraction(np.array([a_m, 0, 0]), r_sun) == 1.0  # sunward
    assert eclipse_fraction(np.array([-a_m, 0, 0]), r_sun) == 0.0  # anti-sun: umbra
    assert eclipse_fraction(np.array([0, a_m, 0]), r_sun) == 1.0  # terminator, above limb
    # Sweep behind the Earth across the shadow edge: monotonic 1 -> 0 through a penumbra
    # about as wide as the solar disc seen from there (0.53 deg of arc at 1 AU).
    ang = np.radians(np.linspace(90.0, 130.0, 40001))
    r = a_m * np.stack([np.cos(ang), np.sin(ang), np.zeros_like(ang)], axis=1)
    f = eclipse_fraction(r, r_sun)
    assert np.all(np.diff(f) <= 1e-12)
    pen = (f > 0.0) & (f < 1.0)
    width_deg = np.degrees(ang[pen].max() - ang[pen].min())
    assert 0.3 < width_deg < 1.5
    # The shadow edge sits where the satellite drops behind the limb of a cylinder-ish shadow:
    # sin(angle past the terminator) = R_E / r.
    edge_deg = np.degrees(ang[np.argmin(np.abs(f - 0.5))]) - 90.0
    expected_deg = np.degrees(np.arccos(EARTH_RADIUS_M / a_m))
    assert abs(edge_deg - expected_deg) < 0.3
    assert np.array_equal(in_shadow(r, r_sun), f < 0.5)


def test_eclipse_fraction_broadcasts_over_sun_array():
    r = np.array([[-7e6, 0, 0], [7e6, 0, 0]])
    r_sun = np.array([[AU_M, 0, 0], [AU_M, 0, 0]])
    assert np.array_equal(eclipse_fraction(r, r_sun), [0.0, 1.0])
