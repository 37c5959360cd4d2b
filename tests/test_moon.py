"""Flight Moon model against an independent reference (astropy's built-in lunar ephemeris)."""

from __future__ import annotations

import warnings

import numpy as np

from pygnc.environment.moon import moon_position_gcrs_m
from pygnc.estimation import orbit_dynamics as od
from pygnc.timebase import gps_from_utc_unix


def _astropy_moon_gcrs_m(unix_s):
    import astropy.units as u
    from astropy.coordinates import get_body
    from astropy.time import Time

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ERFA "dubious year" beyond the leap-second table
        return get_body("moon", Time(unix_s, format="unix", scale="utc")).cartesian.xyz.to_value(u.m).T


def test_moon_within_0p04_deg_and_0p05_percent_of_astropy_1990_2060():
    unix = np.random.default_rng(20250101).uniform(631_152_000.0, 2_840_140_800.0, 300)
    ref = _astropy_moon_gcrs_m(unix)
    got = moon_position_gcrs_m(gps_from_utc_unix(unix))
    cos = np.sum(ref * got, axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    ang = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    assert ang.max() < 0.04 and np.sqrt(np.mean(ang**2)) < 0.015  # measured 0.030 / 0.010 deg
    assert np.abs(np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1) - 1.0).max() < 5e-4  # 2.7e-4
    one = moon_position_gcrs_m(float(gps_from_utc_unix(unix[0])))
    np.testing.assert_allclose(one, got[0], rtol=1e-12)


def test_third_body_acceleration_against_direct_formula():
    """Interpolated Sun+Moon tide in the dynamics == the tidal formula on astropy's Moon."""
    import astropy.units as u
    from astropy.coordinates import get_body
    from astropy.time import Time

    from pygnc.environment.moon import GM_MOON_M3_S2
    from pygnc.environment.sun import sun_position_gcrs_m

    rng = np.random.default_rng(5)
    for unix in (1.74e9 + 1234.5, 1.76e9 + 301.0):
        t = float(gps_from_utc_unix(unix))
        r = rng.normal(size=3)
        r *= 6.878e6 / np.linalg.norm(r)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            moon = get_body("moon", Time(unix, format="unix", scale="utc")).cartesian.xyz.to_value(u.m)
        ref = np.zeros(3)
        for gm, s in ((od.GM_SUN_M3_S2, sun_position_gcrs_m(t)), (GM_MOON_M3_S2, moon)):
            d = s - r
            ref += gm * (d / np.linalg.norm(d) ** 3 - s / np.linalg.norm(s) ** 3)
        got = od.third_body_acceleration(r, t)
        assert 3e-7 < np.linalg.norm(ref) < 3e-6
        assert np.linalg.norm(got - ref) < 2e-3 * np.linalg.norm(ref)
