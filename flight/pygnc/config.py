"""Configuration: every tunable constant of the flight stack, in one place.

Values come from the defaults below, optionally overridden by a TOML file named by the
``PYGNC_CONFIG`` environment variable (keys as in :class:`Config`, e.g.
``accepted_solution_status = [0, 1]``).  Paths are rooted at ``PYGNC_HOME`` (default: the
user's home directory), which is where the host writes the batch files and reads ours.

No numpy here: the supervisor and the status reporter import this and must start fast.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

#: Sensor segments per sense.bin record (the flight team's
#: ``batch_sensor_gps_packet_num_sensor_packets``).
SENSORS_PER_RECORD = 5


@dataclass(frozen=True)
class Config:
    # --- batch inputs -------------------------------------------------------------
    #: Sensor segments per sense.bin record.
    sensors_per_record: int = SENSORS_PER_RECORD
    #: NovAtel position-solution-status values accepted as a usable fix
    #: (0 = SOL_COMPUTED; the flight team's simulator writes 1 for good fixes).
    accepted_solution_status: tuple[int, ...] = (0,)
    #: Minimum satellites in solution for a usable fix.
    min_sats_in_solution: int = 4
    #: Plausible geocentric radius of a fix, metres (LEO and a margin).
    min_fix_radius_m: float = 6_300_000.0
    max_fix_radius_m: float = 8_500_000.0
    #: Plausible speed of a fix in ECEF, m/s.
    max_fix_speed_m_s: float = 9_000.0

    # --- sensors ------------------------------------------------------------------
    #: BMX160 magnetometer LSB, µT.
    mag_lsb_ut: float = 1.0 / 16.0
    #: BMX160 gyro LSB, deg/s.
    gyro_lsb_deg_s: float = 1.0 / 65.6
    #: IMU-to-body rotation, row-major 3x3 (v_body = R @ v_imu).  PY4: body X = IMU Y,
    #: body Y = -IMU X, body Z = -IMU Z.
    imu_to_body: tuple[float, ...] = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0)

    # --- supervision ----------------------------------------------------------------
    #: Period of health pings from the supervisor, s.
    ping_period_s: float = 0.5
    #: A task whose last pong is older than this is reported late, s.
    health_warn_s: float = 2.0
    #: A task whose last pong is older than this is killed and restarted, s.
    health_fatal_s: float = 8.0
    #: Restarts allowed per task before it is declared failed.
    max_restarts: int = 3
    #: First restart backoff, s; doubles on every further restart of the same task.
    restart_backoff_s: float = 0.25
    #: How long the supervisor waits for every task to report ready, s.
    ready_timeout_s: float = 20.0
    #: Graceful-stop deadline for producers, then for sinks, s.  Both well inside the
    #: host's 10 s between Ctrl-C and power-off.
    stop_deadline_producers_s: float = 2.5
    stop_deadline_sinks_s: float = 2.0

    # --- status and logs ------------------------------------------------------------
    #: Minimum period between status-file rewrites, s.
    status_period_s: float = 0.25
    #: Upper bound on the total size of ~/pygnc_logs, bytes (oldest runs pruned).
    log_total_bytes: int = 512 * 1024 * 1024
    #: Upper bound on one run's binary bus log, bytes (further frames counted, not written,
    #: and a warning logged).  A 24-h batch logs about 85 MB.
    bus_log_max_bytes: int = 128 * 1024 * 1024
    #: fsync period of log files, s (a power cut loses at most this much).
    log_fsync_period_s: float = 1.0

    # --- bus --------------------------------------------------------------------------
    #: Largest message accepted on the bus, bytes.
    max_message_bytes: int = 64 * 1024

    # --- attitude estimator ------------------------------------------------------------
    #: Gyro scale factors per IMU axis (omega = scale * reading), applied before imu_to_body.
    gyro_scale: tuple[float, ...] = (1.0, 1.0, 1.0)
    #: Magnetometer scale factors per IMU axis (B = scale * reading), before imu_to_body.
    mag_scale: tuple[float, ...] = (1.0, 1.0, 1.0)
    #: Illuminance of direct sunlight on a sun-sensor face normal to the sun at 1 AU, lux.
    sun_lux_at_1au: float = 130_000.0
    #: Earth reflectivity used by the albedo model (Bond albedo, dimensionless).
    albedo_reflectivity: float = 0.3
    #: Sensor samples held while waiting for the orbit estimate of the same time, count.
    attitude_max_pending_sensors: int = 2000

    # --- formation estimator -----------------------------------------------------------
    #: Radio ids of the formation's spacecraft (PY4: 0x4A..0x4D); fixes and ranges naming
    #: any other id are reported and ignored.
    formation_peer_ids: tuple[int, ...] = (0x4A, 0x4B, 0x4C, 0x4D)
    #: Minimum and maximum time the formation estimator holds measurements to put peer
    #: fixes (stamped with the peer's clock) back in GPS-time order, s.
    formation_hold_s: float = 75.0
    formation_max_hold_s: float = 3600.0
    #: Peers' ballistic coefficient m / (C_D A), kg/m^2 (the filter estimates a scale on it).
    formation_peer_ballistic_coeff_kg_m2: float = 50.0
    #: Range noise (1 sigma), m; prior mean and 1-sigma of the radio's range bias, m.
    formation_range_sigma_m: float = 0.5
    formation_range_bias_m: float = 0.0
    formation_range_bias_sigma_m: float = 3.0

    # --- attitude estimator: time tags ---------------------------------------------------
    #: 1-sigma uncertainty of a sensor sample's GPS epoch, s.  Whole-second floored stamps
    #: put the sample anywhere in its second: 1/sqrt(12).  Used when there is no clock map
    #: with at least ``attitude_time_tag_min_pairs`` pairs, or when the next key is off.
    attitude_time_tag_sigma_s: float = 0.28867513459481287
    #: Use the clock map's residual RMS, s, as that uncertainty instead: the scatter of the
    #: fixes' floored stamps about the map (same clock, same stamping as the samples): ~0 while
    #: the stamp phase does not wrap within the batch, ~0.29 s once it has.
    attitude_time_tag_from_clock_map: bool = True
    #: Fewest clock-map pairs for its residual to stand for the stamps' scatter, count.
    attitude_time_tag_min_pairs: int = 20

    #: Longest propagation beyond the last measurement, s: estimates are not propagated
    #: further (an estimator_note says so), and a sample further ahead is a time outlier.
    max_propagation_s: float = 2 * 86_400.0
    #: CPU time an estimator may spend per call propagating to "now", s.
    propagation_budget_s: float = 0.05

    # --- housekeeping devices (task ``housekeeping``) ------------------------------------
    #: Run the housekeeping task (EMUS BMS, OPC-N3 over serial ports); off in the host's
    #: default run.
    housekeeping_enabled: bool = False
    #: The devices it polls: TOML array of tables ``[[housekeeping_devices]]`` with ``name``,
    #: ``kind`` ("emus_bms" | "opc_n3"), ``port`` (path or pyserial URL) or ``usb``
    #: ("VID:PID[:SERIAL]"), ``period_s`` and per-kind keys (docs/interface.md,
    #: "Housekeeping devices"); checked by ``pygnc.tasks.housekeeping.parse_devices``.
    housekeeping_devices: tuple = ()

    #: Overrides of the orbit filter's tunables, by the field names of
    #: ``pygnc.estimation.orbit_ekf.OrbitFilterConfig`` (TOML table ``[orbit_filter]``,
    #: e.g. ``tesseral_degree = 0`` against a truth without tesseral gravity).
    orbit_filter: dict = field(default_factory=dict)

    @property
    def imu_to_body_matrix(self) -> tuple[tuple[float, float, float], ...]:
        m = self.imu_to_body
        return (tuple(m[0:3]), tuple(m[3:6]), tuple(m[6:9]))


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Defaults, overridden by the TOML file at *path* or ``$PYGNC_CONFIG``.

    Unknown keys raise ``ValueError`` naming them, so a typo is not silently ignored.
    """
    path = path or os.environ.get("PYGNC_CONFIG")
    if not path:
        return Config()
    with open(path, "rb") as f:
        data = tomllib.load(f)
    names = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown configuration keys in {path}: {unknown}")
    for k, v in list(data.items()):
        if isinstance(v, list):
            data[k] = tuple(v)
    return Config(**data)


@dataclass(frozen=True)
class Paths:
    """Where the host puts our inputs and reads our outputs."""

    home: Path

    @classmethod
    def from_env(cls) -> "Paths":
        return cls(Path(os.environ.get("PYGNC_HOME") or Path.home()).expanduser())

    @property
    def sense_file(self) -> Path:
        return self.home / "sense.bin"

    @property
    def range_dir(self) -> Path:
        return self.home / "range"

    @property
    def status_file(self) -> Path:
        return self.home / "pygnc_status.bin"

    @property
    def info_file(self) -> Path:
        return self.home / "pygnc_info.txt"

    @property
    def log_root(self) -> Path:
        return self.home / "pygnc_logs"
