"""Time scales against astropy (an independent leap-second table), and the clock-map fit."""

import calendar
import math
import time

import astropy.units as u
import numpy as np
import pytest
from astropy.time import Time
from hypothesis import given, settings
from hypothesis import strategies as st

from pygnc.timebase import (
    GPS_EPOCH_UNIX_S,
    fit_clock_map,
    gps_from_utc_unix,
    gps_seconds,
    julian_date_tt_from_gps,
    leap_seconds_at_gps,
    leap_seconds_at_utc,
    utc_unix_from_gps,
    week_ms_from_gps,
)


# astropy's "unix" format stretches days that contain a leap second, so POSIX times are
# derived here from astropy's UTC calendar fields instead.
def posix_of(t: Time) -> float | None:
    """POSIX seconds of an astropy Time, or None inside an inserted leap second."""
    t = t.utc
    t.precision = 9
    date, clock = t.isot.split("T")
    hh, mm, ss = clock.split(":")
    if float(ss) >= 60:
        return None
    y, mo, d = (int(x) for x in date.split("-"))
    return calendar.timegm((y, mo, d, int(hh), int(mm), 0, 0, 0, 0)) + float(ss)


def time_from_posix(unix: float) -> Time:
    whole = math.floor(unix)
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return Time(iso, scale="utc", precision=9) + (unix - whole) * u.s


def test_gps_epoch():
    assert Time("1980-01-06T00:00:00", scale="utc").unix == GPS_EPOCH_UNIX_S
    assert Time(0.0, format="gps").utc.unix == pytest.approx(GPS_EPOCH_UNIX_S, abs=1e-6)


@pytest.mark.parametrize(
    "utc",
    [
        "2015-06-30T23:59:58",
        "2015-06-30T23:59:59",
        "2015-07-01T00:00:00",
        "2015-07-01T00:00:01",
        "2016-12-31T23:59:58",
        "2016-12-31T23:59:59",
        "2017-01-01T00:00:00",
        "2017-01-01T00:00:01",
        "2023-11-08T14:03:32",
    ],
)
def test_around_leap_seconds_against_astropy(utc):
    t = Time(utc, scale="utc")
    t_gps = float(t.gps)
    assert gps_from_utc_unix(posix_of(t)) == pytest.approx(t_gps, abs=1e-6)
    assert utc_unix_from_gps(t_gps) == pytest.approx(posix_of(t), abs=1e-6)


def test_leap_counts():
    def at(iso):
        return leap_seconds_at_utc(posix_of(Time(iso, scale="utc")))

    assert at("2016-12-31T23:59:59") == 17 and at("2017-01-01T00:00:00") == 18
    assert at("2015-06-30T23:59:59") == 16 and at("2015-07-01T00:00:00") == 17
    # The inserted second 2016-12-31T23:59:60 lies on the GPS axis between the two.
    t60 = float(Time("2016-12-31T23:59:60", scale="utc").gps)
    assert leap_seconds_at_gps(t60 - 0.5) == 17 and leap_seconds_at_gps(t60 + 1.0) == 18


@settings(max_examples=60, deadline=None)
@given(st.floats(2.0e8, 1.45e9))  # 1986 .. 2026 on the GPS axis
def test_utc_from_gps_matches_astropy(t_gps):
    want = posix_of(Time(t_gps, format="gps"))
    if want is None:  # inside an inserted leap second: POSIX time cannot name it
        return
    assert utc_unix_from_gps(t_gps) == pytest.approx(want, abs=1e-5)
    assert utc_unix_from_gps(np.array([t_gps]))[0] == pytest.approx(want, abs=1e-5)


@settings(max_examples=60, deadline=None)
@given(st.floats(3.2e8, 1.76e9))  # UTC POSIX 1980 .. 2025 (astropy: later years "dubious")
def test_gps_from_utc_matches_astropy(unix):
    g = float(time_from_posix(unix).gps)
    assert gps_from_utc_unix(unix) == pytest.approx(g, abs=1e-5)
    assert gps_from_utc_unix(np.array([unix]))[0] == pytest.approx(g, abs=1e-5)


def test_week_ms_and_worked_vector():
    t = gps_seconds(2287, 309801825)
    assert t == 2287 * 604800 + 309801.825
    assert week_ms_from_gps(t) == (2287, 309801825)
    # The worked GPS vector's fix time, per astropy: 2023-11-08T14:03:03.825 UTC.
    assert Time(t, format="gps").utc.isot == "2023-11-08T14:03:03.825"
    assert utc_unix_from_gps(t) == pytest.approx(posix_of(Time(t, format="gps")), abs=1e-6)


def test_julian_date_tt():
    t = 1.4e9
    assert julian_date_tt_from_gps(t) == pytest.approx(Time(t, format="gps").tt.jd, abs=1e-9)


def test_clock_map_offset_drift_outliers():
    rng = np.random.default_rng(1)
    t_sc = np.sort(rng.uniform(1.7e9, 1.7e9 + 86400, 200))
    offset, drift = -1_300_000_007.0, 2e-5  # 20 ppm: +-0.9 s over the day
    t_ref = np.median(t_sc)
    t_gps = t_sc + offset + drift * (t_sc - t_ref) + rng.normal(0, 0.3, t_sc.size)
    t_gps[::25] += rng.choice([-1, 1], 8) * rng.uniform(30, 3000, 8)  # stale stamps
    m = fit_clock_map(t_sc, t_gps)
    assert m.n_pairs == 192
    assert m.drift == pytest.approx(drift, abs=3e-6)  # ~4 sigma for 0.3 s noise
    assert m.gps_from_sc(t_ref) == pytest.approx(t_ref + offset, abs=0.1)
    assert m.residual_rms_s == pytest.approx(0.3, abs=0.08)
    assert m.sc_from_gps(m.gps_from_sc(1.7e9 + 1000)) == pytest.approx(1.7e9 + 1000, abs=1e-6)


def test_clock_map_short_span_and_empty():
    m = fit_clock_map([100.0, 110.0, 120.0], [10.0, 20.0, 30.5])
    assert m.drift == 0 and m.gps_minus_sc_s == pytest.approx(-89.8333, abs=1e-3)
    assert fit_clock_map([], []) is None
    assert fit_clock_map([np.nan], [1.0]) is None


def test_clock_map_with_two_equal_clusters_is_finite():
    """A clock step mid-batch splits the offsets in two: the map follows one, never NaN."""
    t_sc = np.array([1000.0, 1025.0, 5000.0, 5025.0])
    t_gps = t_sc + np.array([100.0, 100.0, 160.0, 160.0])
    cm = fit_clock_map(t_sc, t_gps)
    assert cm is not None and cm.n_pairs == 2
    assert cm.gps_minus_sc_s in (100.0, 160.0) and np.isfinite(cm.t_ref_sc_s) and np.isfinite(cm.residual_rms_s)
