"""The downlink's schedule: how often the batch writer records each estimate by default, and
the bins it counts that cadence in (a record's time in whole milliseconds // the period).

A leaf module, like :mod:`pygnc.task_ids`: the batch codec (:mod:`pygnc.formats.batch`,
whose estimate kinds take their default periods from here, and whose records store times
split as :func:`split_time` splits them) and the processors' decimation
(:class:`pygnc.processors.admission.BatchDecimation`, which publishes during a batch only
what the writer would record) take it from here, so an estimator needs nothing of the
batch writer's code.  ``Config.batch_period_s`` overrides a period.
"""

from __future__ import annotations

import math

#: Default cadence [s] of the estimate records (the batch kinds of the same names).
ESTIMATE_PERIOD_S = {"orbit": 60.0, "attitude": 60.0, "formation": 60.0}

#: The largest record time a batch record stores (uint32 seconds).
MAX_T_S = (1 << 32) - 1


def split_time(t_sc_s: float) -> tuple[int, int]:
    """(whole seconds, milliseconds) of a spacecraft time; ValueError if not representable."""
    t = float(t_sc_s)
    if not math.isfinite(t) or t < 0 or t >= MAX_T_S + 1:
        raise ValueError(f"record time {t_sc_s!r} is outside 0 .. 2**32 s")
    s = int(t)
    ms = int(round((t - s) * 1000.0))
    if ms >= 1000:
        s, ms = s + 1, 0
        if s > MAX_T_S:
            raise ValueError(f"record time {t_sc_s!r} is outside 0 .. 2**32 s")
    return s, ms


def record_time_ms(t_sc_s: float) -> int:
    """A record time in whole milliseconds, as the record stores it (ValueError: see
    :func:`split_time`); the batch writer's bins are these // the period in ms."""
    s, ms = split_time(t_sc_s)
    return s * 1000 + ms


def period_ms(period_s: float | None) -> int | None:
    """A kind's cadence in whole milliseconds (None: on change only - None or inf)."""
    return None if period_s is None or math.isinf(period_s) else int(round(period_s * 1000))
