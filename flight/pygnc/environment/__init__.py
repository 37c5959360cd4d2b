"""Environment models used on board: sun position and Earth shadow.

Pure functions on numpy arrays in fixed units (metres, seconds of GPS time, radians
unless a name says otherwise).
"""

from pygnc.environment.sun import (
    AU_M,
    EARTH_RADIUS_M,
    SUN_RADIUS_M,
    eclipse_fraction,
    in_shadow,
    sun_position_gcrs_m,
    sun_unit_gcrs,
)

__all__ = [
    "AU_M",
    "EARTH_RADIUS_M",
    "SUN_RADIUS_M",
    "eclipse_fraction",
    "in_shadow",
    "sun_position_gcrs_m",
    "sun_unit_gcrs",
]
