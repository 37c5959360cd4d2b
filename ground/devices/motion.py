"""The motion a simulated IMU senses: known truth for tests and demos."""

from __future__ import annotations

import math

G_M_S2 = 9.80665


def rate_rad_s(t_s: float) -> tuple[float, float, float]:
    """Angular rate, IMU axes: a slow tumble with a wobble on x."""
    return (0.1 + 0.05 * math.sin(2 * math.pi * 0.2 * t_s), -0.2, 0.3 - 0.02 * math.cos(2 * math.pi * 0.1 * t_s))


def accel_m_s2(t_s: float) -> tuple[float, float, float]:
    """Specific force, IMU axes: resting on a bench (1 g up along -z) with a small vibration."""
    return (0.05 * math.sin(2 * math.pi * 1.0 * t_s), -0.03, -G_M_S2 + 0.02 * math.cos(2 * math.pi * 0.5 * t_s))
