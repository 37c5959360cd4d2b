"""Which steps between samples are irregular: a stamp-phase wrap or a late sample.

Samples come at a regular interval, stamped in whole seconds (floor) by a clock whose
fractional phase drifts, so a stamp difference equal to the recent ones is exact to the
drift.  One that differs by ``d`` from a whole number of the usual interval (the phase
wrapped: 4 or 6 s instead of 5; a late sample: 7 then 3) is irregular: its true length is
anywhere between the stamp difference and the whole number of intervals.  Pure: seconds.
"""

from __future__ import annotations

import statistics


class StepRegularity:
    """The usual interval (median of the last *history* regular-size steps) and each new
    step's departure from a whole number of it."""

    def __init__(self, threshold_s: float, history: int):
        self.threshold_s = float(threshold_s)
        self.history = max(3, int(history))
        self.recent_s: list[float] = []  # lengths of the last regular-size steps
        self.n_irregular = 0

    def observe(self, dt_s: float) -> float:
        """Take the step *dt_s* (s); return its irregularity ``d`` (s), 0.0 when regular
        (or while fewer than three steps say what regular is)."""
        hist = self.recent_s
        d = 0.0
        if len(hist) >= 3:
            nominal = float(statistics.median(hist))
            off = dt_s - max(1, round(dt_s / nominal)) * nominal
            if abs(off) > self.threshold_s:
                self.n_irregular += 1
                d = off
            # A wrap's 6 s is kept (it says what a wrap is), a missed sample's 10 s is not.
            if abs(dt_s - nominal) <= self.threshold_s or d != 0.0:
                hist.append(dt_s)
        else:
            hist.append(dt_s)
        del hist[: -self.history]
        return d
