"""Configuration: every tunable constant of the flight stack, in one place.

Values come from the defaults below, optionally overridden by a TOML file named by the
``PYGNC_CONFIG`` environment variable or, without it, by ``~/pygnc_config.toml`` (what the
ground uploads; keys as in :class:`Config`, e.g.
``accepted_solution_status = [0, 1]``).  Paths are rooted at ``PYGNC_HOME`` (default: the
user's home directory), which is where the host writes the batch files and reads ours.

Every value's limits are declared beside its default (:func:`pygnc.limits.bounded`), and
:func:`config_problems` - run by every :class:`Config` as it is made - is the one check of
them all, nested tables included; :func:`parse_config` names the file, line and key of each
problem.  Which file a run uses when one is refused: :mod:`pygnc.config_source`.

No numpy here: the supervisor and the status reporter import this and must start fast.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from .estimation.tunables import AttitudeFilterConfig, FormationFilterConfig, OrbitFilterConfig, RangeOnlyConfig
from .formats import range_packet
from .formats.batch import KINDS_BY_NAME
from .formats.settings import DecodeSettings
from .limits import Problem, bounded, field_problems, is_number, number_problem, shown
from .paths import BATCH_AREA, Paths
from .regular_files import TooLarge, read_small_file
from .toml_lines import find_line, syntax_error_line


class _Dataclass(Protocol):
    """Any dataclass (what ``dataclasses.replace`` takes)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]


_T = TypeVar("_T", bound=_Dataclass)

#: Defaults of the fields the decoders read (declared in pygnc.formats.settings).
_DECODE = DecodeSettings()
#: Largest configuration file read, bytes: an uplink is a few kB (four partner priors with
#: their covariances ~10 kB); anything far larger is refused unread.
MAX_CONFIG_BYTES = 256 * 1024
#: Health limits in ping periods: a reply is up to a period old when the next ping is due,
#: so a task is reported late after at least two and killed after at least three.
HEALTH_WARN_MIN_PINGS = 2
HEALTH_FATAL_MIN_PINGS = 3
#: Time the status reporter needs after its stop drain for the final status, info and bus
#: log (fsyncs on a busy SD card), s.
SINK_FINAL_WRITE_MARGIN_S = 0.5
#: The host cuts the power this long after its Ctrl-C, s.
HOST_POWER_CUT_S = 10.0
#: What the supervisor's stop takes besides the two groups' deadlines, at most, s: three
#: reaping bounds (each group's stragglers killed, the zygote's late forks:
#: ``supervisor.REAP_S`` each), then the batch recovery and the final status.
STOP_OVERHEAD_S = 4.0


@dataclass(frozen=True)
class Config:
    # --- batch inputs -------------------------------------------------------------
    #: Sensor segments per sense.bin record.
    sensors_per_record: int = bounded(_DECODE.sensors_per_record, "[1, 100]")
    #: NovAtel position-solution-status values accepted as a usable fix
    #: (0 = SOL_COMPUTED; the flight team's simulator writes 1 for good fixes).
    accepted_solution_status: tuple[int, ...] = bounded(_DECODE.accepted_solution_status, "[0, 255]")
    #: Minimum satellites in solution for a usable fix.
    min_sats_in_solution: int = bounded(_DECODE.min_sats_in_solution, "[0, 255]")
    #: Plausible geocentric radius of a fix, metres (LEO and a margin).
    min_fix_radius_m: float = bounded(_DECODE.min_fix_radius_m, "[0, 1e9]")
    max_fix_radius_m: float = bounded(_DECODE.max_fix_radius_m, "[0, 1e9]")
    #: Plausible speed of a fix in ECEF, m/s.
    max_fix_speed_m_s: float = bounded(_DECODE.max_fix_speed_m_s, "(0, 1e6]")
    #: Most of sense.bin that ingest reads, bytes: a larger file costs only its newest
    #: (last) this many bytes; the head is not read, counted as skipped and reported
    #: (16 MiB: ~19 days of records at one sample per 5 s; ingest holds ~4 bytes per byte).
    sense_file_max_bytes: int = bounded(16 * 1024 * 1024, "[1024, 1e12]")
    #: Most of one range file that ingest reads, bytes (a range file is ~25 kB): likewise
    #: only the newest this many bytes of a larger one.
    range_file_max_bytes: int = bounded(1024 * 1024, "[1024, 1e12]")
    #: A stamp that jumps away from its neighbours by more than this (or 10 typical steps,
    #: if more) and back is a time outlier: ingest drops and counts it (pygnc.timeorder), s.
    time_outlier_min_jump_s: float = bounded(60.0, "(0, 1e10]")

    # --- sensors ------------------------------------------------------------------
    #: BMX160 magnetometer LSB, µT.
    mag_lsb_ut: float = bounded(_DECODE.mag_lsb_ut, "(0, 1e3]")
    #: BMX160 gyro LSB, deg/s.
    gyro_lsb_deg_s: float = bounded(_DECODE.gyro_lsb_deg_s, "(0, 1e3]")
    #: IMU-to-body matrix of the BMX160's magnetometer and gyro, row-major 3x3
    #: (v_body = R @ v_imu), orthonormal (checked at load).  The default is the flight
    #: team's statement (body X = IMU Y, body Y = -IMU X, body Z = -IMU Z), which is a
    #: reflection (determinant -1): docs/interface.md, "IMU axes".
    imu_to_body: tuple[float, ...] = bounded((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0), "[-1, 1]", length=9)
    #: A reflection (determinant -1) in ``imu_to_body`` is flagged (status flag
    #: ``imu_reflection``, a warning in the log) unless this says it is meant: a physical
    #: mounting is a rotation unless the sensor's own axes are left-handed.
    imu_to_body_reflection_intended: bool = False

    # --- supervision ----------------------------------------------------------------
    #: Period of health pings from the supervisor, s.
    ping_period_s: float = bounded(0.5, "[0.01, 60]")
    #: A task whose last pong is older than this is reported late, s (at least
    #: ``HEALTH_WARN_MIN_PINGS`` ping periods: a reply is up to a period old when it is due).
    health_warn_s: float = bounded(2.0, "[0.1, 3600]")
    #: A task whose last pong is older than this is killed and restarted, s (at least
    #: ``HEALTH_FATAL_MIN_PINGS`` ping periods).
    health_fatal_s: float = bounded(8.0, "[1, 3600]")
    #: The same for the status reporter (at most ``health_fatal_s``), s: the host reads the
    #: status file, which the reporter rewrites at least once a second, and a reporter's
    #: loop does nothing that takes long (no estimation; files of a few kB), so a silent
    #: one is hung - the host must not read a frozen status for the estimators' limit.
    status_health_fatal_s: float = bounded(3.0, "[1, 3600]")
    #: Restarts allowed per task before it is declared failed.
    max_restarts: int = bounded(3, "[0, 1000]")
    #: First restart backoff, s; doubles on every further restart of the same task.
    restart_backoff_s: float = bounded(0.25, "[0, 3600]")
    #: How long the supervisor waits for every task to report ready, s (a task that has not
    #: connected by then is killed: at least the few seconds a start takes on a busy Pi).
    ready_timeout_s: float = bounded(20.0, "[2, 3600]")
    #: Fork the tasks from one process that has imported their code (the zygote,
    #: pygnc.zygote) instead of starting an interpreter for each: they share the imported
    #: pages and import once (docs/design/zygote.md).  If the zygote
    #: fails or dies, tasks are spawned from then on.  Off: every task is spawned.
    fork_tasks: bool = True
    #: Keep the zygote for the whole run, so restarted tasks are forked too.  Off (the
    #: default): it exits once every task of the start is forked (the pages the tasks no
    #: longer share go with it) and restarts are spawned; the supervisor, the tasks'
    #: subreaper, reaps them.
    keep_zygote: bool = False
    #: How much nicer (``os.nice``) than the rest of the tree the tasks marked ``yields_cpu``
    #: - the orbit and attitude estimators - run, so that during a batch the slowest
    #: consumer of the measurement stream, a formation estimator on a day with partners,
    #: gets a core first (docs/design/processes.md).  0: every task alike.
    yielding_tasks_nice: int = bounded(10, "[0, 19]")
    #: Graceful-stop deadline for producers, then for sinks, s, after which stragglers are
    #: killed.  Together well inside the host's 10 s between Ctrl-C and power-off (checked:
    #: their sum at most ``HOST_POWER_CUT_S - STOP_OVERHEAD_S``).
    stop_deadline_producers_s: float = bounded(2.5, "(0, 10]")
    stop_deadline_sinks_s: float = bounded(2.0, "(0, 10]")
    #: Longest time a sink (status reporter) spends at stop on messages still queued, s.
    #: Must leave the final writes time inside ``stop_deadline_sinks_s`` (checked: at least
    #: ``SINK_FINAL_WRITE_MARGIN_S`` less).
    sink_stop_drain_s: float = bounded(0.5, "[0, 10]")
    #: Messages a producer keeps per channel to publish again to a restarted consumer,
    #: bytes (the most recent ones; a day's batch fits).
    replay_history_max_bytes: int = bounded(8 * 1024 * 1024, "[0, 1e10]")
    #: During a batch (until ``batch_end``) the attitude and formation estimators publish
    #: only the estimates the batch writer records - per peer, the first of each bin of the
    #: writer's period for the kind (``batch_period_s``, default 60 s) - and the newest one
    #: before the batch ends (or the run stops); after ``batch_end`` (the live stream,
    #: propagation to now) every one.  The filters run exactly as before: what is left out
    #: is the message, its building and its handling by every sink (estimates neither the
    #: host nor the downlink would have seen; docs/design/decimation.md).  The orbit
    #: estimator publishes the others as bare positions (``orbit_position``: the attitude
    #: estimator needs each).  False: an
    #: estimate at every sensor sample (ground replays set this: they want every row).
    batch_decimate_estimates: bool = True

    # --- status and logs ------------------------------------------------------------
    #: Minimum period between status-file rewrites, s.
    status_period_s: float = bounded(0.25, "[0.01, 1]")
    #: Upper bound on the total size of ~/pygnc_logs, bytes (oldest runs pruned).
    log_total_bytes: int = bounded(512 * 1024 * 1024, "[0, 1e13]")
    #: Upper bound on one run's binary bus log, bytes (further frames counted, not written,
    #: and a warning logged).  A day's batch fits.
    bus_log_max_bytes: int = bounded(128 * 1024 * 1024, "[0, 1e13]")
    #: fsync period of log files, s (a power cut loses at most this much).
    log_fsync_period_s: float = bounded(1.0, "(0, 60]")
    #: Free space kept on the file system of PYGNC_HOME for the status and info files,
    #: bytes: nothing else writes into it (the batch writer stops at it).  The logs give
    #: way first: they stop growing (counted, status flag ``logs_limited``) before the free
    #: space falls under this plus the downlink's ``batch_min_free_bytes``
    #: (:attr:`log_reserve_bytes`).
    log_min_free_bytes: int = bounded(8 * 1024 * 1024, "[0, 1e13]")

    # --- status validity (what "valid" means in pygnc_status.bin: usable now) -----------
    #: An estimate is current when its epoch is within this of "now", s (estimates are
    #: propagated to "now" every second after the batch).
    status_max_estimate_lag_s: float = bounded(5.0, "(0, 86400]")
    #: Largest 3-D 1-sigma of a valid orbit (position, m), attitude (deg) and relative
    #: position per peer (m).
    orbit_valid_max_sigma_m: float = bounded(1000.0, "(0, 1e9]")
    attitude_valid_max_sigma_deg: float = bounded(10.0, "(0, 180]")
    formation_valid_max_sigma_m: float = bounded(50.0, "(0, 1e9]")

    # --- batch files (downlink products, pygnc.tasks.batch_writer) -------------------------
    #: Run the batch writer (on in the host's default run; off only to compare or to spare a
    #: failing SD card).
    batch_writer_enabled: bool = True
    #: Directory of the batch files, relative to PYGNC_HOME: ``pygnc_batches`` or a
    #: directory under it (the writer renames what is in its way, so it writes only in the
    #: home's batch area).
    batch_dir: str = BATCH_AREA
    #: Radio id of this spacecraft, written into every batch-file header (PY4: 0x4A-0x4D;
    #: 0 = not set).
    spacecraft_id: int = bounded(0, "[0, 255]")
    #: Record kinds written (names: docs/interface.md, batch files); empty: the default set.
    batch_kinds: tuple[str, ...] = ()
    #: Cadence per record kind, s of record time (TOML table ``[batch_period_s]``, e.g.
    #: ``orbit = 30``); 0 records every message, inf only changes.  Unlisted kinds keep their
    #: defaults.
    batch_period_s: dict = bounded(None, "[0, inf]", default_factory=dict)
    #: A batch file is closed before a record would take it past this size, bytes (a range
    #: file's ~25 kB) ...
    batch_file_max_bytes: int = bounded(25_600, "[1024, 1e9]")
    #: ... or once it has held data for this long, s (so a long session hands files over).
    batch_file_max_age_s: float = bounded(600.0, "(0, 1e7]")
    #: Upper bound of all batch files on disk, bytes (the oldest are deleted first).
    batch_total_max_bytes: int = bounded(32 * 1024 * 1024, "[0, 1e13]")
    #: Room kept for the downlink, bytes: the logs stop growing before the free space falls
    #: under ``log_min_free_bytes`` plus this, so only the batch writer writes into it - down
    #: to ``log_min_free_bytes`` (the status files' reserve); there the logs give way (the
    #: oldest runs', then this run's bus log), then records wait in memory for room
    #: (pygnc.batch_store; never a complete batch file deleted).
    batch_min_free_bytes: int = bounded(64 * 1024 * 1024, "[0, 1e13]")
    #: fsync period of the open batch file, s (a power cut loses at most this much).
    batch_fsync_period_s: float = bounded(1.0, "(0, 60]")

    # --- bus --------------------------------------------------------------------------
    #: Largest message accepted on the bus, bytes; never below the default, which the tree's
    #: own messages need (a formation estimate of several partners, the health message).
    max_message_bytes: int = bounded(64 * 1024, "[65536, 1e8]")

    # --- attitude estimator ------------------------------------------------------------
    #: Gyro scale factors per IMU axis (omega = scale * reading), applied before imu_to_body.
    gyro_scale: tuple[float, ...] = bounded((1.0, 1.0, 1.0), "(0, 100]", length=3)
    #: Magnetometer scale factors per IMU axis (B = scale * reading), before imu_to_body.
    mag_scale: tuple[float, ...] = bounded((1.0, 1.0, 1.0), "(0, 100]", length=3)
    #: Illuminance of direct sunlight on a sun-sensor face normal to the sun at 1 AU, lux.
    sun_lux_at_1au: float = bounded(130_000.0, "(0, 1e7]")
    #: Earth reflectivity used by the albedo model (Bond albedo, dimensionless).
    albedo_reflectivity: float = bounded(0.3, "[0, 1]")
    #: Sensor samples held while waiting for the orbit estimate of the same time (and orbit
    #: estimates waiting for their samples), count.  At least what the measurement channel
    #: can hold between the orbit and the attitude estimator - its queues (2 x 2000
    #: messages) and socket buffers (~900 messages), ~2 700 samples of a day's batch - so
    #: whichever of the two runs ahead never decides whether a sample gets its position.
    attitude_max_pending_sensors: int = bounded(8000, "[1, 1e8]")
    #: During a batch, samples ready to be processed are processed this many at a time (and
    #: at the end of every turn of the task's loop), the field, sun and albedo models of their
    #: positions computed together - bit for bit the same numbers, in less time; 0: each at
    #: once.  Never after the batch (live samples: each at once).  Count.
    attitude_batch_samples: int = bounded(128, "[0, 1e6]")

    # --- formation estimator -----------------------------------------------------------
    #: Radio ids of the formation's spacecraft (PY4: 0x4A..0x4D); fixes and ranges naming
    #: any other id are reported and ignored.
    formation_peer_ids: tuple[int, ...] = bounded((0x4A, 0x4B, 0x4C, 0x4D), "[1, 255]")
    #: Two formation estimator processes, the partners shared between them in turn (the
    #: first heard to ``formation_estimator``, the second to ``formation_estimator_2``, ...)
    #: when the tree may run on at least ``formation_split_min_cpus`` CPUs; off: one process
    #: for all partners (less memory).  The second process duplicates part of the
    #: formation's work (every process decodes the whole stream) and costs ~15 MiB, so it
    #: pays where a core would otherwise idle: on two cores the formation estimator is ~70 %
    #: of a four-spacecraft day's CPU and the other core idles while it works (the 24-h day
    #: 64-75 s -> 49-53 s in two interleaved pairs of runs on a 2-core machine); a Pi Zero 2 W
    #: has four.
    formation_split: bool = True
    formation_split_min_cpus: int = bounded(2, "[1, 1024]")
    #: Minimum and maximum time the formation estimator holds measurements to put peer
    #: fixes (stamped with the peer's clock) back in GPS-time order, s.
    formation_hold_s: float = bounded(75.0, "[0, 86400]")
    formation_max_hold_s: float = bounded(3600.0, "[0, 86400]")
    #: Range-only navigation (``range_gps_source = "own"``: no partner fix reaches the Pi).
    #: Partner priors as a ground team would uplink them, TOML tables keyed by partner id,
    #: e.g. ``[formation_peer_priors."0x4B"]`` with either an absolute state
    #: ``t_gps_s``, ``pos_ecef_m``, ``vel_ecef_m_s`` (propagated to the first range), or a
    #: relative one ``dr_rtn_m``, ``dv_rtn_m_s`` (own radial / along-track / cross-track
    #: frame, velocity as seen in it, at the first range); optional ``sigma_pos_m`` /
    #: ``sigma_vel_m_s`` per axis (default: the two keys below) or ``cov_rtn`` (36 numbers:
    #: the 6x6 covariance of position, m, and velocity, m/s, in the radial / along-track /
    #: cross-track axes of the state it gives - the partner's for an absolute state, the own
    #: spacecraft's for a relative one), ``wrong_side_probability`` (0-0.5: how likely the
    #: prior is grossly wrong, e.g. a TLE identity swap, so that the partner flies at its
    #: point mirror; that hypothesis is kept with this weight until the ranges decide),
    #: ``tail_probability`` and ``tail_scale`` (0-0.5 and 1-100: the prior's error is, with
    #: that probability, drawn from its covariance times the scale squared - a TLE's errors
    #: are heavier-tailed than a Gaussian; the tail is fitted as a component of its own, so a
    #: mirror image kilometres off the covariance but within the tail stays open) and
    #: ``source`` (text for notes; ``python -m ground uplink`` writes it).  Defaults and the
    #: start of a partner without a prior: the ``[range_only]`` table below.
    formation_peer_priors: dict = field(default_factory=dict)

    # --- attitude estimator: time tags ---------------------------------------------------
    #: 1-sigma uncertainty of a sensor sample's GPS epoch, s.  Whole-second floored stamps
    #: put the sample anywhere in its second: 1/sqrt(12).  Used when there is no clock map
    #: with at least ``attitude_time_tag_min_pairs`` pairs, or when the next key is off.
    attitude_time_tag_sigma_s: float = bounded(0.28867513459481287, "[0, 60]")
    #: Use the clock map's residual RMS, s, as that uncertainty instead: the scatter of the
    #: fixes' floored stamps about the map (same clock, same stamping as the samples): ~0 while
    #: the stamp phase does not wrap within the batch, ~0.29 s once it has.
    attitude_time_tag_from_clock_map: bool = True
    #: Fewest clock-map pairs for its residual to stand for the stamps' scatter, count.
    attitude_time_tag_min_pairs: int = bounded(20, "[1, 1e6]")
    # --- attitude estimator: a live IMU's gyro (channel ``imu``, task imu_ingest) ---------
    #: Propagate the attitude on the IMU's samples (rotated by ``imu_device_to_body``) over
    #: every step they cover, instead of on the two BMX160 samples.
    attitude_use_imu: bool = True
    #: A step is covered when no two consecutive IMU samples inside it (nor its start and the
    #: first sample) are further apart than this, s ...
    attitude_imu_max_gap_s: float = bounded(0.25, "(0, 60]")
    #: ... and the last sample is at most this before the step's end (the rate is held
    #: over the rest: samples come in blocks every imu_publish_period_s), s.
    attitude_imu_max_hold_s: float = bounded(1.0, "[0, 60]")
    #: IMU samples kept waiting for the next sensor sample, count (100 Hz: 200 s).
    attitude_imu_max_samples: int = bounded(20_000, "[1, 1e8]")
    #: Estimate the IMU's time offset against the sensor samples from the two gyros' rates
    #: (pygnc.estimation.imu_alignment) and shift the IMU's times by it.
    attitude_imu_align: bool = True
    #: Window of IMU samples before a sensor sample over which the IMU's rate at that
    #: sample is fitted (a straight line) for that estimate, s.
    attitude_imu_align_window_s: float = bounded(2.0, "(0, 600]")
    #: Longest interval between two sensor samples whose IMU rates are differenced for the
    #: rate change that estimate needs, s.
    attitude_imu_align_max_step_s: float = bounded(12.0, "(0, 3600]")

    #: Longest propagation beyond the last measurement, s: estimates are not propagated
    #: further (an estimator_note says so), and a sample further ahead is a time outlier.
    max_propagation_s: float = bounded(2 * 86_400.0, "(0, 3.2e7]")
    #: CPU time an estimator may spend per call propagating to "now", s.
    propagation_budget_s: float = bounded(0.05, "(0, 10]")

    # --- housekeeping devices (task ``housekeeping``) ------------------------------------
    #: Run the housekeeping task (EMUS BMS, OPC-N3 over serial ports); off in the host's
    #: default run.
    housekeeping_enabled: bool = False
    #: The devices it polls: TOML array of tables ``[[housekeeping_devices]]`` with ``name``,
    #: ``kind`` ("emus_bms" | "opc_n3"), ``port`` (path or pyserial URL) or ``usb``
    #: ("VID:PID[:SERIAL]"), ``period_s`` and per-kind keys (docs/interface.md,
    #: "Housekeeping devices"); checked at load by ``pygnc.drivers.hk_devices``.
    housekeeping_devices: tuple = ()
    # --- external IMU (task imu_ingest; it runs only when imu_driver is set) ------------
    #: "" (no IMU: the task does not run), "imu380" (Aceinna IMU380/DMU380), "gx2"
    #: (MicroStrain 3DM-GX2, 0xC2 packets) or "monodrive" (monoDrive's GX2 emulation).
    imu_driver: str = bounded("", choices=("", "imu380", "gx2", "monodrive"))
    #: imu380/gx2: a serial device or any pyserial URL (a stable path such as
    #: /dev/serial/by-id/... survives replugging); imu380 also "auto" (discovery).
    #: monodrive: udp://HOST:PORT (bound here) or tcp://HOST:PORT (connected to).
    imu_port: str = ""
    #: Baud rate; 0: try imu_baud_rates (imu380) or 115200 (gx2).
    imu_baud: int = bounded(0, "[0, 4e6]")
    imu_baud_rates: tuple[int, ...] = bounded((115200, 57600, 38400, 230400, 460800), "[1200, 4e6]")
    #: Ports discovery ("auto") tries besides its cached last-good port; empty: every
    #: serial port the OS lists (Bluetooth skipped; ports in use skipped).
    imu_discovery_ports: tuple[str, ...] = ()
    #: imu380: output packet type ("S1", "S0", "A1", "A2", "N0", "N1") and rate, Hz (100, 50,
    #: 25, 20, 10, 5, 4, 2) set on connect (volatile: lost at power-off); "" / 0: leave as is.
    imu_packet_type: str = bounded("", choices=("", "S0", "S1", "A1", "A2", "N0", "N1"))
    imu_packet_rate_hz: float = bounded(0.0, "[0, 100]", choices=(0, 100, 50, 25, 20, 10, 5, 4, 2))
    #: gx2: "continuous" (the unit streams) or "polled" (one 0xC2 request per sample) at
    #: imu_poll_rate_hz.
    imu_gx2_mode: str = bounded("continuous", choices=("continuous", "polled"))
    imu_poll_rate_hz: float = bounded(100.0, "(0, 1000]")
    #: monodrive: header ("v16" = 16-byte big-endian of the current clients, "tcp12" /
    #: "udp8" = the 2018 native headers), payload checksum required, and whether HOST may be
    #: other than loopback (flight sockets stay on loopback unless this is set).
    imu_monodrive_header: str = bounded("v16", choices=("v16", "tcp12", "udp8"))
    imu_monodrive_verify_checksum: bool = False
    imu_allow_network: bool = False
    #: Reconnect backoff after a failure or unplug: first wait, doubling up to the max, s.
    imu_reconnect_backoff_s: float = bounded(0.25, "(0, 3600]")
    imu_reconnect_max_backoff_s: float = bounded(8.0, "(0, 3600]")
    #: An open link with no valid sample for this long is closed and reopened, s.
    imu_stale_s: float = bounded(1.0, "(0, 3600]")
    #: Samples are published in blocks, each at most this old, s.
    imu_publish_period_s: float = bounded(0.1, "(0, 10]")
    #: Window over which device time is aligned to the host clock (minimum delay), s.
    imu_clock_window_s: float = bounded(10.0, "(0, 3600]")
    #: IMU axes -> body axes, row-major 3x3 (v_body = R @ v_imu), for consumers of the
    #: ``imu`` channel (samples are published in IMU axes).  Not the BMX160's imu_to_body.
    imu_device_to_body: tuple[float, ...] = bounded((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), "[-1, 1]", length=9)
    #: As ``imu_to_body_reflection_intended``, for ``imu_device_to_body``.
    imu_device_to_body_reflection_intended: bool = False
    # --- streaming on the host's TTY (task tty_stream, docs/interface.md "Streaming") -----
    #: Run the stream task: it reads frames from the terminal that started main.py and
    #: writes frames to it (stdout carries nothing else).
    stream_enabled: bool = True
    #: Interval between two estimate frames of one kind (and peer), s, until the host sets
    #: one (command CAD); 0: no estimate frames until then.
    stream_cadence_s: float = bounded(0.0, "[0, 86400]")
    #: Shortest interval the host may set, s: three estimate kinds and four peers every
    #: 0.1 s are ~6 kB/s, half of a 115200-baud line.
    stream_min_cadence_s: float = bounded(0.1, "(0, 3600]")
    #: Bytes waiting for stdout at most (~1.4 s of a 115200-baud line); a frame that does not
    #: fit is dropped and counted (a stalled reader never blocks pygnc).
    stream_out_max_bytes: int = bounded(16 * 1024, "[256, 1e8]")
    #: On a terminal: echo off, IXON off, and only Ctrl-C special (EOF, quit, suspend,
    #: erase, kill and IEXTEN characters off), so no byte of a frame or of garbage but 0x03
    #: does anything; canonical mode and SIGINT stay.  Restored at exit.
    stream_tty_setup: bool = True
    #: Live measurements ingest holds while the batch is still being published, count
    #: (older ones beyond it are dropped and counted); and how many it keeps to publish again
    #: to a restarted consumer after the batch.
    stream_live_queue_max: int = bounded(20_000, "[0, 1e8]")
    stream_live_keep_max: int = bounded(50_000, "[0, 1e8]")
    #: SX1280 ranging bandwidth code (0x0A 1625 kHz, 0x18 812.5 kHz, 0x26 406.25 kHz; the
    #: flight team's code uses 0x18) and whether results are the radio's filtered ones:
    #: range_m = raw * 150 / (2**12 * bandwidth_MHz) (* 0.2 if filtered) - calibration;
    #: pygnc.formats.range_packet.
    sx1280_ranging_bandwidth_code: int = bounded(_DECODE.sx1280_ranging_bandwidth_code, "[0, 255]")
    sx1280_ranging_filtered: bool = _DECODE.sx1280_ranging_filtered
    #: Per-partner range calibration offset, m, subtracted from every converted range of that
    #: partner (TOML table ``[range_calibration_m]``, keys the partner id as "0x4A" or "74").
    range_calibration_m: dict = bounded(None, "[-1e4, 1e4]", default_factory=dict)
    #: Whose GPS fix a range file's GPS packet is: "own" (the flight team's design: the
    #: ranging spacecraft's own fix at ranging time) or "peer" (the partner's fix, relayed).
    range_gps_source: str = bounded("own", choices=("own", "peer"))

    # --- measurement admission (pygnc.processors.admission) ---------------------------
    #: An own fix whose GPS time (week + ms) and clock-mapped spacecraft stamp disagree by
    #: more is a corrupt time and is not used, s.
    fix_time_tolerance_s: float = bounded(10.0, "(0, 1e6]")
    #: Longest gap a filter is propagated across inside a message handler to reach a
    #: measurement, s; beyond it the filter re-initialises from the next usable fix.
    max_gap_propagation_s: float = bounded(1800.0, "(0, 1e7]")
    #: Wall time one message handler may spend predicting, s (work beyond it is resumed on
    #: the next message; far inside health_fatal_s even on a Pi).
    handler_budget_s: float = bounded(0.5, "(0, 5]")

    #: Overrides of the orbit filter's tunables, by the field names of
    #: ``pygnc.estimation.tunables.OrbitFilterConfig`` (TOML table ``[orbit_filter]``,
    #: e.g. ``tesseral_degree = 0`` against a truth without tesseral gravity); the orbit
    #: task's filter and the formation filter's own-orbit model both use them.
    orbit_filter: dict = field(default_factory=dict)
    #: Overrides of the attitude filter's tunables, by the field names of
    #: ``pygnc.estimation.tunables.AttitudeFilterConfig`` (TOML table
    #: ``[attitude_filter]``, e.g. ``gyro_noise_rad_s = 0.0009`` for a noisier gyro).
    attitude_filter: dict = field(default_factory=dict)
    #: Overrides of the formation filter's tunables (each partner's EKF), by the field names
    #: of ``pygnc.estimation.tunables.FormationFilterConfig`` but ``orbit`` (TOML table
    #: ``[formation_filter]``, e.g. ``range_sigma_m = 0.8``, ``range_bias_sigma_m = 0.3`` with a
    #: calibrated radio); its own-orbit model takes ``[orbit_filter]``.
    formation_filter: dict = field(default_factory=dict)
    #: Overrides of range-only navigation's tunables, by the field names of
    #: ``pygnc.estimation.tunables.RangeOnlyConfig`` (TOML table ``[range_only]``: the
    #: acquisition window, the placements and prior defaults, the wrong-side probability).
    range_only: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = config_problems(self)
        if problems:
            raise ConfigError(problems)
        ro = filter_tunables(RangeOnlyConfig, self.range_only, "range_only")
        object.__setattr__(
            self,
            "formation_peer_priors",
            {
                peer_id_key(k): parse_peer_prior(v, ro.prior_sigma_pos_m, ro.prior_sigma_vel_m_s)
                for k, v in dict(self.formation_peer_priors).items()
            },
        )
        object.__setattr__(
            self, "range_calibration_m", {peer_id_key(k): float(v) for k, v in dict(self.range_calibration_m).items()}
        )

    @property
    def log_reserve_bytes(self) -> int:
        """Free space the logs leave untouched, bytes: the status files' reserve plus, when
        the batch writer runs, the downlink's (downlink products come before logs)."""
        return self.log_min_free_bytes + (self.batch_min_free_bytes if self.batch_writer_enabled else 0)


def peer_id_key(key: object) -> int:
    """A partner id from a configuration key: an int, or a string "0x4A" / "74"
    (ValueError otherwise, or outside 1..255)."""
    try:
        value = key if isinstance(key, int) else int(str(key).strip(), 0)
    except ValueError:
        raise ValueError(f"not a partner id: {shown(key)} (write 0x4A or 74)") from None
    if not 1 <= value <= 255:
        raise ValueError(f"partner id {shown(key)} outside 1..255")
    return value


def _vector3(table: dict, key: str) -> tuple[float, float, float]:
    v = table[key]
    if not (
        isinstance(v, (list, tuple))
        and len(v) == 3
        and all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in v)
    ):
        raise ValueError(f"{key} must be a list of 3 finite numbers, got {shown(v)}")
    return float(v[0]), float(v[1]), float(v[2])


#: A partner prior's orbit (an ECEF state; or, at its start, the state an RTN offset gives)
#: must keep its perigee above this radius, m (inside the Earth's polar radius, 6 357 km, a
#: propagation fails: no partner flies there) and its radius under the next, m.
PRIOR_MIN_PERIGEE_RADIUS_M = 6_350_000.0
PRIOR_MAX_RADIUS_M = 5.0e7
#: An RTN prior's offset from the own spacecraft at most this far, m, and this fast, m/s
#: (farther than two LEO orbits' diameters: no range can come from there).
PRIOR_MAX_OFFSET_M = 2.0e7
PRIOR_MAX_OFFSET_SPEED_M_S = 2.0e4
_GM_EARTH_M3_S2 = 3.986004418e14
_EARTH_RATE_RAD_S = 7.2921150e-5


def orbit_state_problem(
    pos_ecef_m: Iterable[float], vel_ecef_m_s: Iterable[float], inertial: bool = False
) -> str | None:
    """Why an ECEF state (m, m/s; *inertial*: a GCRS one) is no partner's orbit (None: it
    may be one): its radius outside (PRIOR_MIN_PERIGEE_RADIUS_M, PRIOR_MAX_RADIUS_M), not
    bound to the Earth, or its perigee inside the Earth (a prior at the origin, inside the
    Earth, or on the ground with no velocity).  Plain floats: no numpy here."""
    x, y, z = (float(c) for c in pos_ecef_m)
    r = math.sqrt(x * x + y * y + z * z)
    if not math.isfinite(r) or r < PRIOR_MIN_PERIGEE_RADIUS_M:
        return f"puts the partner inside the Earth ({r / 1000.0:.0f} km from its centre)"
    if r > PRIOR_MAX_RADIUS_M:
        return f"puts the partner {r / 1000.0:.0f} km from the Earth's centre, beyond any partner"
    vx, vy, vz = (float(c) for c in vel_ecef_m_s)
    if not inertial:  # inertial velocity at that instant: the ECEF one plus the Earth's rotation (w x r)
        vx, vy = vx - _EARTH_RATE_RAD_S * y, vy + _EARTH_RATE_RAD_S * x
    v2 = vx * vx + vy * vy + vz * vz
    energy = 0.5 * v2 - _GM_EARTH_M3_S2 / r
    if not energy < 0.0:
        return "is not bound to the Earth (its speed is above the escape speed)"
    hx, hy, hz = y * vz - z * vy, z * vx - x * vz, x * vy - y * vx
    h2 = hx * hx + hy * hy + hz * hz
    a = -_GM_EARTH_M3_S2 / (2.0 * energy)
    e = math.sqrt(max(0.0, 1.0 + 2.0 * energy * h2 / _GM_EARTH_M3_S2**2))
    perigee = a * (1.0 - e)
    if perigee < PRIOR_MIN_PERIGEE_RADIUS_M:
        return (
            f"gives an orbit whose perigee is inside the Earth ({perigee / 1000.0:.0f} km from its centre): "
            "check the velocity (ECEF, m/s) and the position (ECEF, m)"
        )
    return None


#: Largest ``wrong_side_probability`` a partner prior may give: 0.5 says nothing of the side.
MAX_WRONG_SIDE_PROBABILITY = 0.5
#: Largest ``tail_probability`` and ``tail_scale`` a partner prior may give.
MAX_TAIL_PROBABILITY = 0.5
MAX_TAIL_SCALE = 100.0
#: Longest ``source`` text of a partner prior (it goes into notes and logs), characters.
MAX_PRIOR_SOURCE_CHARS = 120


def _covariance6(v: object) -> tuple[float, ...]:
    """A 6x6 covariance given as 36 numbers (row-major), checked symmetric and positive
    definite (a plain Cholesky: no numpy here)."""
    if not (
        isinstance(v, (list, tuple))
        and len(v) == 36
        and all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in v)
    ):
        raise ValueError("cov_rtn must be a list of 36 finite numbers (6x6, row-major)")
    m = [[float(v[6 * i + j]) for j in range(6)] for i in range(6)]
    for i in range(6):
        for j in range(i):
            if abs(m[i][j] - m[j][i]) > 1e-9 * max(1.0, abs(m[i][j]), abs(m[j][i])):
                raise ValueError(f"cov_rtn is not symmetric (element {i},{j})")
    low = [[0.0] * 6 for _ in range(6)]
    for i in range(6):
        for j in range(i + 1):
            s = m[i][j] - sum(low[i][k] * low[j][k] for k in range(j))
            if i == j:
                if not s > 0.0:
                    raise ValueError("cov_rtn is not positive definite")
                low[i][i] = math.sqrt(s)
            else:
                low[i][j] = s / low[j][j]
    return tuple(float(c) for c in v)


def _prior_key_problem(extra: list, known: list) -> str:
    """Why a partner prior table's unknown keys are there: a top-level key written after the
    table's header (it belongs to the table then), or a typo of a prior key."""
    import difflib  # (only for a table with a bad key)

    k = str(extra[0])
    if k in _FIELDS:
        return (
            f"{k} is not a key of a partner prior: it is a top-level key - write it before the first "
            "[table] header (every key after a header belongs to that table)"
        )
    close = difflib.get_close_matches(k, known, n=1)
    if close:
        return f"{k} is not a key of a partner prior (did you mean {close[0]}?)"
    return f"unknown keys in a partner prior: {sorted(map(str, extra))} (its keys: {', '.join(known)})"


def parse_peer_prior(table: object, sigma_pos_m: float = 1000.0, sigma_vel_m_s: float = 1.0) -> dict:
    """A partner prior table (see ``Config.formation_peer_priors``), checked and normalised:
    ``{"frame": "ecef", "t_gps_s", "pos_ecef_m", "vel_ecef_m_s", ...}`` or ``{"frame": "rtn",
    "dr_rtn_m", "dv_rtn_m_s", ...}``, each with ``sigma_pos_m``, ``sigma_vel_m_s``,
    ``cov_rtn`` (None: the sigmas per axis), ``wrong_side_probability``, ``tail_probability``,
    ``tail_scale`` and ``source``; ValueError naming what is wrong."""
    if not isinstance(table, dict):
        raise ValueError(f"a partner prior is a table, got {shown(table)}")
    keys = set(table)
    ecef, rtn = {"t_gps_s", "pos_ecef_m", "vel_ecef_m_s"}, {"dr_rtn_m", "dv_rtn_m_s"}
    optional = {
        "sigma_pos_m",
        "sigma_vel_m_s",
        "cov_rtn",
        "wrong_side_probability",
        "tail_probability",
        "tail_scale",
        "source",
        "frame",
    }
    extra = keys - ecef - rtn - optional
    if extra:
        raise ValueError(_prior_key_problem(sorted(extra, key=str), sorted(ecef | rtn | optional)))
    out = {
        "sigma_pos_m": table.get("sigma_pos_m", sigma_pos_m),
        "sigma_vel_m_s": table.get("sigma_vel_m_s", sigma_vel_m_s),
    }
    for k, v in out.items():
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 < v < math.inf):
            raise ValueError(f"partner prior {k} must be a finite number > 0, got {shown(v)}")
        out[k] = float(v)
    out["cov_rtn"] = _covariance6(table["cov_rtn"]) if table.get("cov_rtn") is not None else None
    p = table.get("wrong_side_probability")
    if p is not None and not (
        isinstance(p, (int, float)) and not isinstance(p, bool) and 0.0 <= p <= MAX_WRONG_SIDE_PROBABILITY
    ):
        raise ValueError(
            f"wrong_side_probability must be a number in [0, {MAX_WRONG_SIDE_PROBABILITY}], got {shown(p)}"
        )
    out["wrong_side_probability"] = None if p is None else float(p)
    for key, lo, hi, default in (
        ("tail_probability", 0.0, MAX_TAIL_PROBABILITY, 0.0),
        ("tail_scale", 1.0, MAX_TAIL_SCALE, 1.0),
    ):
        v = table.get(key, default)
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi):
            raise ValueError(f"{key} must be a number in [{lo:g}, {hi:g}], got {v!r}")
        out[key] = float(v)
    if out["wrong_side_probability"] is not None and out["wrong_side_probability"] + out["tail_probability"] >= 1.0:
        raise ValueError("wrong_side_probability + tail_probability must be under 1")
    src = table.get("source", "")
    if not isinstance(src, str) or len(src) > MAX_PRIOR_SOURCE_CHARS or not src.isprintable():
        # (it reaches notes, logs and the terminal's stream: no control characters)
        raise ValueError(f"source must be printable text of at most {MAX_PRIOR_SOURCE_CHARS} characters")
    out["source"] = src
    if ecef <= keys and not keys & rtn:
        t = table["t_gps_s"]
        if not (isinstance(t, (int, float)) and not isinstance(t, bool) and 0.0 < t < math.inf):
            raise ValueError(f"t_gps_s must be GPS seconds > 0, got {shown(t)}")
        pos, vel = _vector3(table, "pos_ecef_m"), _vector3(table, "vel_ecef_m_s")
        why = orbit_state_problem(pos, vel)
        if why:
            raise ValueError(f"the state pos_ecef_m, vel_ecef_m_s {why}")
        return {"frame": "ecef", "t_gps_s": float(t), "pos_ecef_m": pos, "vel_ecef_m_s": vel, **out}
    if rtn <= keys and not keys & ecef:
        dr, dv = _vector3(table, "dr_rtn_m"), _vector3(table, "dv_rtn_m_s")
        if math.hypot(*dr) > PRIOR_MAX_OFFSET_M or math.hypot(*dv) > PRIOR_MAX_OFFSET_SPEED_M_S:
            raise ValueError(
                f"dr_rtn_m, dv_rtn_m_s put the partner further than {PRIOR_MAX_OFFSET_M / 1000.0:.0f} km or "
                f"faster than {PRIOR_MAX_OFFSET_SPEED_M_S:.0f} m/s from the own spacecraft: no range comes from there"
            )
        return {"frame": "rtn", "dr_rtn_m": dr, "dv_rtn_m_s": dv, **out}
    raise ValueError("a partner prior gives either t_gps_s + pos_ecef_m + vel_ecef_m_s, or dr_rtn_m + dv_rtn_m_s")


def filter_tunables(cls: type[_T], overrides: dict, table: str) -> _T:
    """The dataclass *cls* of a filter's tunables with *overrides* (the configuration's
    ``[table]``, checked when the configuration was loaded) laid over its defaults."""
    problems = field_problems(cls, overrides, (table,))
    if problems:  # (a Config always holds checked tables; a caller's own dict may not)
        raise ConfigError(problems)
    return dataclasses.replace(cls(), **overrides)


# --------------------------------------------------------------------------- checking
#: Largest |R R^T - I| element of a mounting matrix accepted as orthonormal (decimals such
#: as 0.7071 for 45 deg pass).
ORTHONORMAL_TOLERANCE = 1e-3
#: The mounting matrices and the key that says a reflection in each is meant.
MOUNTINGS = (
    ("imu_to_body", "imu_to_body_reflection_intended"),
    ("imu_device_to_body", "imu_device_to_body_reflection_intended"),
)


def _det3(m: Sequence[float]) -> float:
    return m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) + m[2] * (m[3] * m[7] - m[4] * m[6])


def _orthonormal_error(m: Sequence[float]) -> float:
    """Largest element of |R R^T - I| for the row-major 3x3 *m*."""
    err = 0.0
    for i in range(3):
        for j in range(3):
            dot = sum(m[3 * i + k] * m[3 * j + k] for k in range(3))
            err = max(err, abs(dot - (1.0 if i == j else 0.0)))
    return err


def undeclared_reflections(config: Config) -> list[str]:
    """The mounting matrices of *config* that are reflections (determinant -1) without
    their ``*_reflection_intended`` key set (status flag ``imu_reflection``)."""
    return [name for name, intended in MOUNTINGS if _det3(getattr(config, name)) < 0 and not getattr(config, intended)]


def config_problems(c: Config) -> list[Problem]:
    """Every problem of the configuration *c* (empty: it may be used): each key's type and
    declared limits, the nested tables (``[orbit_filter]``, ``[attitude_filter]``,
    ``[batch_period_s]``, ``[range_calibration_m]``, ``[[housekeeping_devices]]``,
    ``[formation_peer_priors.*]``) and the checks that involve several keys."""
    values = {f.name: getattr(c, f.name) for f in dataclasses.fields(c)}
    out = field_problems(Config, values)
    bad = {p.key[0] for p in out}

    def ok(*names: str) -> bool:
        return not bad.intersection(names)

    for name, cls in (
        ("orbit_filter", OrbitFilterConfig),
        ("attitude_filter", AttitudeFilterConfig),
        ("formation_filter", FormationFilterConfig),
        ("range_only", RangeOnlyConfig),
    ):
        if ok(name):
            table = c.__dict__[name]
            if name == "formation_filter" and "orbit" in table:
                out.append(Problem((name, "orbit"), "is not set here: the own-orbit model takes [orbit_filter]"))
                table = {k: v for k, v in table.items() if k != "orbit"}
            out += [_misplaced(p, cls) for p in field_problems(cls, table, (name,))]
    if ok("batch_kinds", "batch_period_s") and (c.batch_kinds or c.batch_period_s):
        current = {k.name: k for k in KINDS_BY_NAME.values() if k.superseded_by is None}
        known = ", ".join(sorted(current))

        def unknown(k: str) -> str:
            old = KINDS_BY_NAME.get(k)
            if old is not None and old.superseded_by is not None:
                return f"is a superseded layout, read but never written: record {old.superseded_by!r}"
            return f"is not a record kind (known: {known})"

        for k in c.batch_kinds:
            if k not in current:
                out.append(Problem(("batch_kinds",), f"names {shown(k)}, which {unknown(k)}"))
        interval = _FIELDS["batch_period_s"].metadata["range"]
        for k, v in c.batch_period_s.items():
            if k not in current:
                out.append(Problem(("batch_period_s", k), unknown(k)))
            elif not is_number(v) or number_problem(v, interval):
                out.append(
                    Problem(("batch_period_s", k), f"must be seconds >= 0 (inf: on change only), got {shown(v)}")
                )
    if ok("range_calibration_m"):
        interval = _FIELDS["range_calibration_m"].metadata["range"]
        for k, v in c.range_calibration_m.items():
            try:
                peer_id_key(k)
            except ValueError as exc:
                out.append(Problem(("range_calibration_m", k), f"is not a partner id: {exc}"))
                continue
            msg = number_problem(v, interval) if is_number(v) else f"must be a number, got {shown(v)}"
            if msg:
                out.append(Problem(("range_calibration_m", k), msg))
    if ok("formation_peer_priors", "range_only"):
        ro = (
            RangeOnlyConfig()
            if field_problems(RangeOnlyConfig, c.range_only, ("range_only",))
            else dataclasses.replace(RangeOnlyConfig(), **c.range_only)
        )
        for k, v in c.formation_peer_priors.items():
            try:
                peer_id_key(k)
                parse_peer_prior(v, ro.prior_sigma_pos_m, ro.prior_sigma_vel_m_s)
            except ValueError as exc:
                sub = _prior_key(str(exc), v)
                out.append(Problem(("formation_peer_priors", k, *sub), f"is refused: {exc}"))
    if ok("housekeeping_devices") and c.housekeeping_devices:
        # Deferred: it loads pyserial and the device drivers, which the supervisor
        # and the status reporter - both import this and must start fast - need only when a
        # configuration lists housekeeping devices.
        from .drivers.hk_devices import device_problems

        for i, key, msg in device_problems(c.housekeeping_devices):
            out.append(Problem(("housekeeping_devices", i, *((key,) if key else ())), f"is refused: {msg}"))
    if ok("sx1280_ranging_bandwidth_code"):
        try:
            range_packet.bandwidth_hz(c.sx1280_ranging_bandwidth_code)
        except ValueError as exc:
            out.append(Problem(("sx1280_ranging_bandwidth_code",), f"is refused: {exc}"))
    if ok("imu_driver", "imu_port") and c.imu_driver and not c.imu_port.strip():
        out.append(
            Problem(
                ("imu_port",),
                f"is empty: name the serial device, 'auto', or udp:// / tcp:// (imu_driver = {shown(c.imu_driver)})",
                (("imu_driver",),),
            )
        )
    for name, _ in MOUNTINGS:
        if ok(name):
            err = _orthonormal_error(getattr(c, name))
            if err > ORTHONORMAL_TOLERANCE:
                out.append(
                    Problem(
                        (name,),
                        f"must be orthonormal (a rotation, or a reflection): R R^T differs "
                        f"from the identity by {err:.3g}",
                    )
                )
    for lo, hi, why in (
        ("min_fix_radius_m", "max_fix_radius_m", ""),
        ("health_warn_s", "health_fatal_s", ": a task is reported late before it is killed"),
        ("status_health_fatal_s", "health_fatal_s", ""),
        ("formation_hold_s", "formation_max_hold_s", ""),
        ("imu_reconnect_backoff_s", "imu_reconnect_max_backoff_s", ""),
    ):
        if ok(lo, hi) and not getattr(c, lo) <= getattr(c, hi):
            out.append(
                Problem(
                    (lo,), f"({shown(getattr(c, lo))}) must not exceed {hi} ({shown(getattr(c, hi))}){why}", ((hi,),)
                )
            )
    for name, pings in (
        ("health_warn_s", HEALTH_WARN_MIN_PINGS),
        ("health_fatal_s", HEALTH_FATAL_MIN_PINGS),
        ("status_health_fatal_s", HEALTH_FATAL_MIN_PINGS),
    ):
        if ok(name, "ping_period_s") and not getattr(c, name) >= pings * c.ping_period_s:
            out.append(
                Problem(
                    (name,),
                    f"({shown(getattr(c, name))} s) must be at least {pings} ping periods "
                    f"(ping_period_s {shown(c.ping_period_s)} s): a reply is up to a period old when it is due",
                    (("ping_period_s",),),
                )
            )
    if ok("batch_dir"):
        msg = batch_dir_problem(c.batch_dir)
        if msg:
            out.append(Problem(("batch_dir",), msg))
    if (
        ok("sink_stop_drain_s", "stop_deadline_sinks_s")
        and not c.sink_stop_drain_s + SINK_FINAL_WRITE_MARGIN_S <= c.stop_deadline_sinks_s
    ):
        out.append(
            Problem(
                ("sink_stop_drain_s",),
                f"({c.sink_stop_drain_s} s) must be at least {SINK_FINAL_WRITE_MARGIN_S} s shorter than "
                f"stop_deadline_sinks_s ({c.stop_deadline_sinks_s} s): the status reporter must write its "
                "final status before the supervisor's deadline",
                (("stop_deadline_sinks_s",),),
            )
        )
    if (
        ok("stop_deadline_producers_s", "stop_deadline_sinks_s")
        and c.stop_deadline_producers_s + c.stop_deadline_sinks_s > HOST_POWER_CUT_S - STOP_OVERHEAD_S
    ):
        out.append(
            Problem(
                ("stop_deadline_sinks_s",),
                f"({c.stop_deadline_sinks_s} s) plus stop_deadline_producers_s ({c.stop_deadline_producers_s} s) "
                f"must be at most {HOST_POWER_CUT_S - STOP_OVERHEAD_S:g} s: the stop takes up to "
                f"{STOP_OVERHEAD_S:g} s more, and the host cuts the power {HOST_POWER_CUT_S:g} s after its Ctrl-C",
                (("stop_deadline_producers_s",),),
            )
        )
    return out


def batch_dir_problem(value: str) -> str | None:
    """Why *value* is not a ``batch_dir`` (None: it is): a relative path that is
    :data:`BATCH_AREA` or under it, without ``..``."""
    parts = [p for p in value.replace("\\", "/").split("/") if p not in ("", ".")]
    if value.startswith(("/", "~")) or ".." in parts or not parts or parts[0] != BATCH_AREA:
        return (
            f"must be {BATCH_AREA} or a directory under it, relative to PYGNC_HOME, got {shown(value)}: "
            "the batch writer renames what is in its way, so it writes only in the home's batch area"
        )
    return None


def _misplaced(p: Problem, cls: type) -> Problem:
    """An unknown key of a table that is a top-level key: said so (in TOML every key after a
    ``[table]`` header belongs to that table)."""
    k = p.key[-1]
    if k in _FIELDS and k not in {f.name for f in dataclasses.fields(cls)}:
        return Problem(
            p.key,
            f"is not a key of [{p.key[0]}]: {k} is a top-level key - write it before the "
            "first [table] header (every key after a header belongs to that table)",
            p.others,
        )
    return p


def _prior_key(message: str, table: object) -> tuple:
    """The key of a partner prior table that *message* (of :func:`parse_peer_prior`) names."""
    if isinstance(table, dict):
        named = [(message.find(str(k)), i, k) for i, k in enumerate(table) if str(k) in message]
        if named:
            return (min(named)[2],)  # the key the message names first
    return ()


class ConfigError(ValueError):
    """A configuration that is refused.  :attr:`problems`: (line or None,
    :class:`pygnc.limits.Problem`) pairs; :attr:`where`: the file or source (None: values
    given in code)."""

    def __init__(
        self, problems: Iterable[Problem], where: str | None = None, text: str | None = None, line: int | None = None
    ):
        problems = list(problems)
        self._args = (problems, where, text, line)
        # (a file name is shown as it is unless it holds control characters)
        self.where = where if where is None or where.isprintable() else shown(where)
        self.problems = []
        for p in problems:
            n = line
            if n is None and text is not None:
                for key in (p.key, *p.others):
                    n = find_line(text, key)
                    if n is not None:
                        break
            self.problems.append((n, p))
        self.is_file = text is not None
        if self.is_file:  # in the file's order
            self.problems.sort(key=lambda np: math.inf if np[0] is None else np[0])
        super().__init__(self.describe())

    def __reduce__(
        self,
    ) -> tuple[type[ConfigError], tuple]:  # (pickled whole: a Monte Carlo worker's error reaches the client)
        return ConfigError, self._args

    def lines(self) -> list[str]:
        """One line per problem: ``FILE:LINE: key message`` for a file."""
        out = []
        for n, p in self.problems:
            if self.is_file:
                out.append(f"{self.where}:{n}: {p}" if n else f"{self.where}: {p}")
            else:
                out.append(str(p))
        return out

    def describe(self) -> str:
        if self.is_file:
            return "\n".join(self.lines())
        text = "; ".join(self.lines())
        return f"in {self.where}: {text}" if self.where else text

    def first(self) -> tuple[int | None, str]:
        """(line, key name) of the first problem, for one-line summaries."""
        n, p = self.problems[0]
        return n, p.name


def _unknown_key_problems(data: dict) -> list[Problem]:
    import difflib  # (only for a file with a bad key)

    out = []
    for k in sorted(set(data) - set(_FIELDS), key=str):
        close = difflib.get_close_matches(str(k), list(_FIELDS), n=1)
        out.append(Problem((k,), "is not a configuration key" + (f" (did you mean {close[0]}?)" if close else "")))
    return out


def with_overrides(base: Config, data: dict, where: str, text: str | None = None) -> Config:
    """*base* with the TOML-style table *data* (``{name: value}``, lists for tuples) laid over
    it, checked as a configuration file is; :class:`ConfigError` (a ``ValueError``) naming
    *where* - and, given the file's *text*, the line - of every problem."""
    unknown = _unknown_key_problems(data)
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in _FIELDS}
    try:
        config = dataclasses.replace(base, **data)
    except ConfigError as exc:
        raise ConfigError(unknown + [p for _, p in exc.problems], where, text) from None
    if unknown:
        raise ConfigError(unknown, where, text)
    return config


def parse_config(data: bytes, where: str) -> Config:
    """The configuration the TOML file content *data* gives (defaults for what it leaves
    out); :class:`ConfigError` naming *where*, the line and the key of every problem.

    Whatever the bytes are, a refusal is a :class:`ConfigError`: a file over
    :data:`MAX_CONFIG_BYTES`, text that is not UTF-8, a syntax error, nesting too deep for
    the parser, an integer too long for any number, or anything else a parser or a check
    raises on it."""
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([Problem((), _too_large(len(data)))], where, "")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError([Problem((), f"is not UTF-8 text (byte {exc.start})")], where, "", line) from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            [Problem((), f"TOML syntax error: {exc}")], where, text, syntax_error_line(str(exc), text)
        ) from None
    except RecursionError:
        raise ConfigError([Problem((), "TOML cannot be parsed: nested too deep")], where, "") from None
    except (ValueError, ArithmeticError, MemoryError) as exc:  # e.g. an integer of 5000 digits
        raise ConfigError([Problem((), f"TOML cannot be parsed: {_first_line(exc)}")], where, "") from None
    try:
        return with_overrides(Config(), table, where, text)
    except ConfigError:
        raise
    except (RecursionError, ValueError, ArithmeticError, TypeError, MemoryError) as exc:
        # A value no check foresaw (it is refused whole, never half-used).
        raise ConfigError([Problem((), f"cannot be checked: {_first_line(exc)}")], where, "") from None


def _first_line(exc: BaseException) -> str:
    return shown(str(exc).splitlines()[0] if str(exc) else type(exc).__name__).strip("'\"")


def _too_large(n_bytes: int) -> str:
    return f"is {n_bytes} bytes, more than a configuration may be ({MAX_CONFIG_BYTES} bytes): not read"


def read_config_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of the configuration file at *path*: a regular file (a FIFO or a device is
    refused without blocking) of at most :data:`MAX_CONFIG_BYTES`; :class:`ConfigError`
    otherwise, naming the file and why."""
    try:
        return read_small_file(path, MAX_CONFIG_BYTES)
    except TooLarge:
        try:
            size = os.stat(path).st_size
        except OSError:
            size = MAX_CONFIG_BYTES + 1
        raise ConfigError([Problem((), _too_large(size))], str(path), "") from None
    except OSError as exc:
        raise ConfigError([Problem((), f"cannot be read: {exc.strerror or exc}")], str(path), "") from None


def config_for_home(home: str | os.PathLike) -> Config:
    """The configuration in *home*'s ``pygnc_config.toml`` if any, else the defaults; a
    refused file raises (tests and benches of a scenario directory; the ground's tools
    choose as the flight does, :func:`pygnc.config_source.home_selection`)."""
    f = Paths(Path(home)).config_file
    return load_config(f) if os.path.lexists(f) else Config()


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Defaults, overridden by the TOML file at *path*, else ``$PYGNC_CONFIG``, else the
    uplinked ``~/pygnc_config.toml`` (:attr:`Paths.config_file`) if it exists.

    Every problem - a syntax error, an unknown key (a typo is not silently ignored), a value
    of the wrong type or outside its limits - raises :class:`ConfigError` (a ``ValueError``)
    naming the file, the line and the key.  (A run never stops for a bad uplinked file: the
    supervisor falls back, :mod:`pygnc.config_source`.)
    """
    path = path or os.environ.get("PYGNC_CONFIG")
    if not path:
        uplinked = Paths.from_env().config_file
        if not uplinked.is_file():
            return Config()
        path = uplinked
    return parse_config(read_config_bytes(path), str(path))


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
