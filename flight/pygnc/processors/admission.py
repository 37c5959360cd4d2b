"""One admission policy for measurements, shared by the orbit, attitude and formation processors.

A single corrupt time (one flipped bit in a GPS week, a spacecraft stamp days off) must not
drag a filter to a wrong epoch, nor make a message handler propagate for seconds of CPU
(the supervisor kills a task whose handler blocks for ``Config.health_fatal_s``).  Every
processor applies these rules, in this order; each rejection is counted under the name
given here (the processors' ``counters``).

1. **Finite** (``time_outliers``): a time that is not finite is never used.
2. **Own fix time** (``time_outliers``): an own GPS fix's GPS time (week + ms) must agree
   with its own spacecraft stamp mapped by the clock map within
   ``Config.fix_time_tolerance_s`` - the stamp and the week/ms are independent fields, so a
   corrupt one shows as a disagreement.  (Without a clock map there is nothing to compare.)
3. **Horizon** (``time_outliers``): a sample, range or fix more than
   ``Config.max_propagation_s`` after the newest measurement already accepted is a corrupt
   stamp: it neither advances the stream nor makes a filter propagate.  A peer fix (stamped
   with the peer's clock, which may be years off) is judged by its GPS time against the own
   data instead: at most ``Config.formation_max_hold_s`` beyond the newest own-clock time.
4. **Gap** (``reinit``): a filter is never propagated across more than
   ``Config.max_gap_propagation_s`` inside a handler to reach a measurement: it is
   re-initialised from the next usable fix instead (a state propagated that far is worth
   no more than a fresh fix, and costs ``gap / step`` integration steps per filter).
   Estimates before that re-initialisation are not invented.
5. **Budget** (``budget_deferred``): everything a handler predicts goes through
   :func:`predict_within`, in chunks of at most :data:`CHUNK_S` of filter time (the orbit
   processor's output cursor: in its own steps of at most 30 s), until the
   target or the handler's :class:`Budget` (``Config.handler_budget_s`` of wall time per
   message) is spent; work not done is left for the next call (the formation processor
   keeps its queue, the orbit processor's output cursor resumes), never lost silently.
6. **Gates and finiteness** (in the estimation cores): gates are written ``not nis <=
   gate``, so a NaN innovation fails them; an update whose state or covariance is not
   finite is not committed; a filter found non-finite after a prediction is reset here
   (:func:`finite`, counted under ``reinit``/``reset``).
7. **TRIAD** refuses parallel vector pairs
   (:func:`pygnc.estimation.attitude_sensors.triad`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..downlink_schedule import ESTIMATE_PERIOD_S, period_ms, record_time_ms
from ..timebase import ClockMap

if TYPE_CHECKING:
    from ..config import Config

#: A value as a message brought it, not yet checked: what the checks here take (anything
#: that is not a number fails them).
Unchecked = Any


class BatchDecimation:
    """Which estimates of one kind a processor publishes during a batch
    (``Config.batch_decimate_estimates``): per key (peer id, or None), the first whose
    spacecraft time falls in each bin of the batch writer's period for the kind - the
    writer's own bins (:func:`pygnc.downlink_schedule.record_time_ms` // its period in ms), so it
    records exactly what it would have recorded of every estimate - and none of the rest
    until ``batch_end``; the processor keeps the newest one left out and publishes it at
    ``batch_end`` (or at stop), and everything after."""

    def __init__(self, config: Config, kind: str) -> None:
        ms = period_ms(config.batch_period_s.get(kind, ESTIMATE_PERIOD_S[kind]))
        #: bin length [ms]; None: every estimate is published (switched off, or the writer
        #: keeps this kind on change only / every message)
        self.period_ms = ms if config.batch_decimate_estimates and ms and ms > 0 else None
        self.bins: dict[int | None, int] = {}  # key -> bin of the last estimate published

    def left_out(self, key: int | None, t_sc_s: float, batch_ended: bool) -> bool:
        """True if the estimate of *key* at *t_sc_s* is left out; otherwise its bin counts
        as published (after ``batch_end``, or a time that is no record time: published)."""
        if self.period_ms is None or batch_ended:
            return False
        try:
            b = record_time_ms(t_sc_s) // self.period_ms
        except (ValueError, TypeError):
            return False
        if self.bins.get(key) == b:
            return True
        self.bins[key] = b
        return False


#: Largest stretch of filter time predicted between two budget checks, s (12 integration
#: steps of 5 s: milliseconds, far inside a handler's budget).
CHUNK_S = 60.0


class Budget:
    """A wall-clock allowance for one handler call (``time.perf_counter``), spent early
    when *interrupt()* says so (the flight task: it is told to stop)."""

    def __init__(self, seconds: float, interrupt: Callable[[], bool] | None = None):
        self.deadline = time.perf_counter() + seconds if math.isfinite(seconds) else math.inf
        self.interrupt = interrupt

    def spent(self) -> bool:
        return time.perf_counter() > self.deadline or self.interrupt is not None and self.interrupt()


#: Largest plausible sensor readings (beyond the BMX160's ranges: +-2000 deg/s gyro,
#: +-2500 µT magnetometer; the OPT3001 saturates at 83 865.6 lux): a reading beyond is
#: corrupt, whatever decoded it.
GYRO_LIMIT_DEG_S = 2000.0
MAG_LIMIT_UT = 2500.0
LUX_LIMIT = 2.0 * 83_865.6


def _within(values: Unchecked, limit: float, low: float) -> bool:
    """Every one of *values* a number with low <= v <= limit (NaN, or anything not a
    number, fails).  Plain floats: a sample's 3 + 3 + 6 readings cost more in numpy's call
    overhead than in arithmetic."""
    try:
        for v in values:
            v = float(v)
            if not low <= v <= limit:
                return False
    except (TypeError, ValueError):
        return False
    return True


def sensor_plausible(gyro_deg_s: Unchecked, mag_ut: Unchecked, sun_lux: Unchecked) -> bool:
    """Every reading finite and within the sensors' ranges (NaN fails)."""
    return (
        _within(gyro_deg_s, GYRO_LIMIT_DEG_S, -GYRO_LIMIT_DEG_S)
        and _within(mag_ut, MAG_LIMIT_UT, -MAG_LIMIT_UT)
        and _within(sun_lux, LUX_LIMIT, 0.0)
    )


def fix_plausible(config: Config, pos_ecef_m: Unchecked, vel_ecef_m_s: Unchecked) -> bool:
    """A fix's position radius within ``Config.min/max_fix_radius_m`` and its speed within
    ``Config.max_fix_speed_m_s`` (ingest checks the same on decoding; a processor checks
    again whatever reached it).  NaN fails."""
    vel = np.asarray(vel_ecef_m_s, dtype=float)
    if not radius_plausible(config, pos_ecef_m) or not (np.abs(vel) <= config.max_fix_speed_m_s).all():
        return False
    return float(np.linalg.norm(vel)) <= config.max_fix_speed_m_s


def radius_plausible(config: Config, pos_m: Unchecked) -> bool:
    """A position (3,) whose radius is within ``Config.min/max_fix_radius_m`` (an orbit
    estimate's too: the environment models need a point above the Earth).  NaN fails."""
    lim = config.max_fix_radius_m
    # Component bounds first, so the norm cannot overflow.
    if not hasattr(pos_m, "__len__") or len(pos_m) != 3 or not _within(pos_m, lim, -lim):
        return False
    x, y, z = (float(c) for c in pos_m)
    return config.min_fix_radius_m <= math.sqrt(x * x + y * y + z * z) <= lim


def range_plausible(config: Config, range_m: Unchecked) -> bool:
    """A range between 0 and the widest two LEO spacecraft can be apart (twice
    ``Config.max_fix_radius_m``).  NaN fails."""
    return 0.0 <= float(range_m) <= 2.0 * config.max_fix_radius_m


def is_time(t: Unchecked) -> bool:
    """Rule 1: a usable time (a finite float)."""
    try:
        return math.isfinite(float(t))
    except (TypeError, ValueError):
        return False


def gps_from_own_clock(clock: ClockMap | None, t_sc_s: Unchecked) -> float | None:
    """GPS time of an own-clock stamp, or None (no clock map, or not finite)."""
    if clock is None or not is_time(t_sc_s):
        return None
    t = float(clock.gps_from_sc(float(t_sc_s)))
    return t if math.isfinite(t) else None


def own_fix_time_ok(clock: ClockMap | None, t_gps_s: Unchecked, t_sc_s: Unchecked, tolerance_s: float) -> bool:
    """Rules 1-2 for an own fix: finite, and its GPS time agrees with its mapped stamp."""
    if not is_time(t_gps_s):
        return False
    if clock is None:
        return True
    t_map = gps_from_own_clock(clock, t_sc_s)
    return t_map is not None and abs(float(t_gps_s) - t_map) <= tolerance_s


def within_horizon(t_s: float, t_ref_s: float, horizon_s: float) -> bool:
    """Rule 3: *t_s* at most *horizon_s* after *t_ref_s* (no reference yet: anything finite)."""
    if not math.isfinite(t_s):
        return False
    return not math.isfinite(t_ref_s) or t_s - t_ref_s <= horizon_s


def gap_needs_reinit(t_filter_s: float, t_s: float, max_gap_s: float) -> bool:
    """Rule 4: True when reaching *t_s* from *t_filter_s* needs more than *max_gap_s*."""
    return not (t_s - t_filter_s <= max_gap_s)  # NaN: re-initialise


class Filter(Protocol):
    """What the processors ask of a filter here: its epoch (None until initialised) and a
    prediction to a later time."""

    @property
    def t_gps_s(self) -> float | None: ...

    def predict_to(self, t_gps_s: float) -> None: ...


def epoch(filt: Filter) -> float:
    """The GPS epoch of an initialised filter (a processor asks only of a filter it has
    started, or of an output cursor it has seeded)."""
    t = filt.t_gps_s
    assert t is not None
    return t


def predict_within(filt: Filter, t_target_s: float, budget: Budget, chunk_s: float = CHUNK_S) -> bool:
    """Rule 5: advance the initialised *filt* toward *t_target_s* in chunks until it is
    reached (True) or *budget* is spent (False; the filter keeps the epoch it reached, so a
    later call goes on from there)."""
    while epoch(filt) < t_target_s - 1e-6:
        if budget.spent():
            return False
        filt.predict_to(min(t_target_s, epoch(filt) + chunk_s))
    return True


def finite(*arrays: np.ndarray) -> bool:
    """Rule 6: every element of every array is finite."""
    return all(np.isfinite(a).all() for a in arrays)
