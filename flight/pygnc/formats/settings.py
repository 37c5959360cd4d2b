"""The settings the batch-file decoders read: GPS fix validity, sensor scales, the sense.bin
record length and the range conversion.

A leaf module without numpy: :mod:`pygnc.config` takes these defaults for its fields of the
same names (where each is documented and bounded), and a decoder takes a
:class:`DecodeSettings` rather than the whole configuration -
``DecodeSettings.from_config(config)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config


@dataclass(frozen=True)
class DecodeSettings:
    """The decoders' settings; each field is the :class:`pygnc.config.Config` field of the
    same name, and its default is that field's default."""

    #: Sensor segments per sense.bin record (the flight team's
    #: ``batch_sensor_gps_packet_num_sensor_packets``).
    sensors_per_record: int = 5
    #: NovAtel solution-status values of a usable fix (position and velocity).
    accepted_solution_status: tuple[int, ...] = (0,)
    min_sats_in_solution: int = 4
    #: Plausible geocentric radius of a fix, m.
    min_fix_radius_m: float = 6_300_000.0
    max_fix_radius_m: float = 8_500_000.0
    #: Plausible speed of a fix in ECEF, m/s.
    max_fix_speed_m_s: float = 9_000.0
    #: BMX160 magnetometer and gyro LSBs, µT and deg/s.
    mag_lsb_ut: float = 1.0 / 16.0
    gyro_lsb_deg_s: float = 1.0 / 65.6
    #: SX1280 ranging bandwidth code, and whether results are the radio's filtered ones.
    sx1280_ranging_bandwidth_code: int = 0x18
    sx1280_ranging_filtered: bool = False
    #: Partner id (int 1..255) -> range calibration offset, m (subtracted).
    range_calibration_m: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [k for k in self.range_calibration_m if not (isinstance(k, int) and 1 <= k <= 255)]
        if bad:
            raise ValueError(f"range_calibration_m: {bad[0]!r} is not a partner id (an int 1..255)")

    @classmethod
    def from_config(cls, config: Config) -> DecodeSettings:
        """The settings of a :class:`pygnc.config.Config` (its fields of the same names)."""
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})


def resolve(settings: DecodeSettings | None) -> DecodeSettings:
    """*settings*, or the defaults for None; a decoder's check of what it was given."""
    if settings is None:
        return DEFAULT
    if not isinstance(settings, DecodeSettings):
        raise TypeError(
            f"decoder settings must be a DecodeSettings (DecodeSettings.from_config(config)), "
            f"got {type(settings).__name__}"
        )
    return settings


DEFAULT = DecodeSettings()
