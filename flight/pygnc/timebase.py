"""Time scales: GPS time, UTC (POSIX seconds), TT, and the spacecraft clock.

Conventions (also in docs/interface.md):

* ``t_gps_s``  - seconds since the GPS epoch 1980-01-06T00:00:00 UTC, continuous (no leap
  seconds).  A NovAtel (week, ms-of-week) pair gives ``week * 604800 + ms / 1000``.
* ``unix_time_s`` / ``t_utc_s`` - POSIX seconds of UTC (leap seconds not counted, as
  ``time.time()``).
* ``t_sc_s`` - the spacecraft clock, unix seconds as the PyCubed keeps it.  It is *not* GPS
  time: it may be unset (year 2000) or seconds off.  :class:`ClockMap` maps it to GPS time
  from the (t_sc_s, t_gps_s) pairs of valid fixes.

GPS - UTC = 18 s since 2017-01-01.  The table ends there; a future leap second needs a new
entry (``LEAP_SECONDS``) and a new flight package.

Pure functions over floats or numpy arrays.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import numpy as np
import numpy.typing as npt

#: POSIX time of the GPS epoch, 1980-01-06T00:00:00 UTC.
GPS_EPOCH_UNIX_S = 315_964_800
SECONDS_PER_WEEK = 604_800
#: TT - GPS, seconds (TT = TAI + 32.184 s, TAI = GPS + 19 s).
TT_MINUS_GPS_S = 51.184

#: (UTC POSIX time at which it took effect, GPS - UTC in seconds after it).
LEAP_SECONDS: tuple[tuple[int, int], ...] = (
    (362_793_600, 1),  # 1981-07-01
    (394_329_600, 2),  # 1982-07-01
    (425_865_600, 3),  # 1983-07-01
    (489_024_000, 4),  # 1985-07-01
    (567_993_600, 5),  # 1988-01-01
    (631_152_000, 6),  # 1990-01-01
    (662_688_000, 7),  # 1991-01-01
    (709_948_800, 8),  # 1992-07-01
    (741_484_800, 9),  # 1993-07-01
    (773_020_800, 10),  # 1994-07-01
    (820_454_400, 11),  # 1996-01-01
    (867_715_200, 12),  # 1997-07-01
    (915_148_800, 13),  # 1999-01-01
    (1_136_073_600, 14),  # 2006-01-01
    (1_230_768_000, 15),  # 2009-01-01
    (1_341_100_800, 16),  # 2012-07-01
    (1_435_708_800, 17),  # 2015-07-01
    (1_483_228_800, 18),  # 2017-01-01
)
_LEAP_UTC = [u for u, _ in LEAP_SECONDS]
# The same instants on the GPS time axis (t_gps_s at which each offset starts).
_LEAP_GPS = [u - GPS_EPOCH_UNIX_S + n for u, n in LEAP_SECONDS]
_LEAP_N = [n for _, n in LEAP_SECONDS]

#: A time (or times): these functions take a scalar or an array and give the same back.
_Time = TypeVar("_Time", float, np.ndarray)


def gps_seconds(week: _Time, ms: _Time) -> _Time:
    """t_gps_s from a GPS week and milliseconds of week (scalars or arrays)."""
    return week * float(SECONDS_PER_WEEK) + ms * 1e-3


def week_ms_from_gps(t_gps_s: float) -> tuple[int, int]:
    """(week, ms of week) of a scalar t_gps_s, ms rounded to the nearest integer."""
    total_ms = int(round(t_gps_s * 1000.0))
    week, ms = divmod(total_ms, SECONDS_PER_WEEK * 1000)
    return week, ms


@overload
def _step_lookup(edges: list[int], t: float) -> int: ...
@overload
def _step_lookup(edges: list[int], t: np.ndarray) -> np.ndarray: ...
def _step_lookup(edges: list[int], t: float | np.ndarray) -> int | np.ndarray:
    """GPS - UTC at *t* on the axis of *edges* (scalar or array)."""
    if isinstance(t, (int, float)):
        i = bisect.bisect_right(edges, t)
        return _LEAP_N[i - 1] if i else 0
    idx = np.searchsorted(np.asarray(edges, dtype=float), t, side="right")
    return np.concatenate(([0], _LEAP_N))[idx]


def leap_seconds_at_gps(t_gps_s: _Time) -> _Time:
    """GPS - UTC in seconds at GPS time *t_gps_s* (scalar or array)."""
    return _step_lookup(_LEAP_GPS, t_gps_s)


def leap_seconds_at_utc(unix_time_s: _Time) -> _Time:
    """GPS - UTC in seconds at UTC POSIX time *unix_time_s* (scalar or array)."""
    return _step_lookup(_LEAP_UTC, unix_time_s)


def utc_unix_from_gps(t_gps_s: _Time) -> _Time:
    """UTC POSIX seconds of GPS time *t_gps_s* (scalar or array)."""
    return t_gps_s + GPS_EPOCH_UNIX_S - leap_seconds_at_gps(t_gps_s)


def gps_from_utc_unix(unix_time_s: _Time) -> _Time:
    """GPS time of UTC POSIX seconds *unix_time_s* (scalar or array)."""
    return unix_time_s - GPS_EPOCH_UNIX_S + leap_seconds_at_utc(unix_time_s)


def julian_date_tt_from_gps(t_gps_s: Any) -> Any:  # (as _Time: environment/moon.py reuses a name for it)
    """TT Julian date of GPS time *t_gps_s* (scalar or array)."""
    # GPS epoch 1980-01-06T00:00:00 UTC = JD 2444244.5 (UTC); UTC = GPS - 0 then (no leaps yet)
    return 2_444_244.5 + (t_gps_s + TT_MINUS_GPS_S) / 86_400.0


@dataclass(frozen=True)
class ClockMap:
    """Affine map from the spacecraft clock to GPS time:
    t_gps = t_sc + gps_minus_sc_s + drift*(t_sc - t_ref_sc_s).

    Fitted from the (t_sc_s, t_gps_s) pairs of valid fixes by :func:`fit_clock_map`.  The
    spacecraft clock ticks in whole seconds and a fix's spacecraft time is only good to
    ~1 s, so ``residual_rms_s`` of a healthy fit is ~0.3 s.
    """

    gps_minus_sc_s: float  # GPS time minus the spacecraft clock at t_ref_sc_s, s
    drift: float  # dimensionless (s/s)
    t_ref_sc_s: float
    n_pairs: int
    residual_rms_s: float

    def gps_from_sc(self, t_sc_s: _Time) -> _Time:
        return t_sc_s + self.gps_minus_sc_s + self.drift * (t_sc_s - self.t_ref_sc_s)

    def sc_from_gps(self, t_gps_s: _Time) -> _Time:
        return (t_gps_s - self.gps_minus_sc_s + self.drift * self.t_ref_sc_s) / (1.0 + self.drift)


def fit_clock_map(
    t_sc_s: npt.ArrayLike, t_gps_s: npt.ArrayLike, min_span_for_drift_s: float = 3600.0, reject_s: float = 5.0
) -> ClockMap | None:
    """Fit a :class:`ClockMap` to spacecraft/GPS time pairs; ``None`` with no pairs.

    Robust: pairs further than *reject_s* from the best-supported offset (the pair with the
    most others within *reject_s*) are discarded before the fit (a fix stamped with a stale
    spacecraft time, or a clock step, must not bend the map).  Drift is only
    fitted when the pairs span at least *min_span_for_drift_s*.
    """
    t_sc = np.asarray(t_sc_s, dtype=float)
    t_gps = np.asarray(t_gps_s, dtype=float)
    ok = np.isfinite(t_sc) & np.isfinite(t_gps)
    t_sc, t_gps = t_sc[ok], t_gps[ok]
    if t_sc.size == 0:
        return None
    d = t_gps - t_sc
    # Centre on the offset with the most others within reject_s (an actual pair, so the
    # fit never ends up with no pairs, as a median between two equal clusters would).
    ds = np.sort(d)
    support = np.searchsorted(ds, ds + reject_s, side="right") - np.searchsorted(ds, ds - reject_s, side="left")
    centre = float(ds[int(np.argmax(support))])
    keep = np.abs(d - centre) <= reject_s
    t_sc, d = t_sc[keep], d[keep]
    t_ref = float(np.median(t_sc))
    span = float(t_sc.max() - t_sc.min()) if t_sc.size else 0.0
    if t_sc.size >= 3 and span >= min_span_for_drift_s:
        drift, offset = np.polyfit(t_sc - t_ref, d, 1)
    else:
        drift, offset = 0.0, float(np.mean(d))
    resid = d - (offset + drift * (t_sc - t_ref))
    rms = float(np.sqrt(np.mean(resid**2))) if resid.size else math.nan
    return ClockMap(float(offset), float(drift), t_ref, int(t_sc.size), rms)
