"""``~/pygnc_status.bin``: the host's view of pygnc, < 1024 bytes, fixed little-endian layout.

The layout is :data:`FIELDS`, in order, packed with ``struct`` format ``"<" + fmts``; the
last 4 bytes are the CRC-32 (``binascii.crc32`` / ``zlib.crc32``, the common reflected
CRC-32 with init and xorout 0xFFFFFFFF) of every byte before them.  CircuitPython reads it
with ``struct.unpack(FORMAT, data)`` - only ``4s B H I f d`` codes are used, no padding codes.
A vector field ``"3f"`` unpacks to 3 consecutive values.  Unknown / not-yet-estimated
values are NaN; ``flags`` says which blocks hold an estimate.

Times: ``*_t_sc_s`` are spacecraft-clock seconds (the host's own clock) of the estimate's
epoch.  Frames: ECEF = ITRS (WGS-84 / GPS).  The attitude quaternion is scalar-first and
rotates body vectors into GCRS.

Validity: each estimate block has a ``*_quality`` byte (index into
:data:`ESTIMATE_QUALITY`); ``ok`` - and only ``ok`` - means usable now: its epoch is within
``Config.status_max_estimate_lag_s`` of the write's ``t_sc_s``, it is not held at the
propagation horizon, and its 3-D 1-sigma is under the configured bound (see
:mod:`pygnc.validity`).  The ``*_valid`` flags are the same test.  The age of an estimate is
``t_sc_s - *_t_sc_s``; how far it was propagated beyond the data is ``*_t_sc_s -
batch_t_sc_last_s``.

The layout is version :data:`VERSION`; the decoder refuses any other (what changed
between versions: CHANGELOG.md).
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

from ..task_ids import TASK_STATES  # noqa: F401 - the health slots' states (taskK_state indexes them)

MAGIC = b"PGNS"
VERSION = 5
MAX_PEERS = 4
MAX_TASKS = 10

#: Flag bits of the ``flags`` field.
FLAG_ORBIT_VALID = 1 << 0
FLAG_ATTITUDE_VALID = 1 << 1
FLAG_FORMATION_VALID = 1 << 2
FLAG_BATCH_DONE = 1 << 3  # ingest has published the whole batch
FLAG_NO_VALID_FIX = 1 << 4  # the batch holds no usable own GPS fix
FLAG_SENSE_MISSING = 1 << 5  # ~/sense.bin absent or empty
FLAG_RANGE_MISSING = 1 << 6  # no range files
FLAG_CLOCK_MAPPED = 1 << 7  # spacecraft clock -> GPS time map available
FLAG_TASK_FAILED = 1 << 8  # a task exhausted its restarts
FLAG_STOPPING = 1 << 9  # final status of the run
FLAG_ATT_NO_POSITION = 1 << 10  # attitude runs without a position (no field/sun model)
FLAG_WRITE_FAILED = 1 << 11  # a status/info write failed in this run (status_write_failures)
FLAG_LOGS_LIMITED = 1 << 12  # logs not fully kept: size bound, free-space reserve, write errors
FLAG_DOWNLINK_FAILED = 1 << 13  # the batch writer could not write every record of this run
FLAG_CONFIG_REJECTED = (
    1 << 14
)  # the uplinked configuration was refused: the run uses the last accepted one or the defaults
FLAG_IMU_REFLECTION = 1 << 15  # a configured IMU mounting matrix is a reflection not declared intended

FLAG_NAMES = {
    FLAG_ORBIT_VALID: "orbit_valid",
    FLAG_ATTITUDE_VALID: "attitude_valid",
    FLAG_FORMATION_VALID: "formation_valid",
    FLAG_BATCH_DONE: "batch_done",
    FLAG_NO_VALID_FIX: "no_valid_fix",
    FLAG_SENSE_MISSING: "sense_missing",
    FLAG_RANGE_MISSING: "range_missing",
    FLAG_CLOCK_MAPPED: "clock_mapped",
    FLAG_TASK_FAILED: "task_failed",
    FLAG_STOPPING: "stopping",
    FLAG_ATT_NO_POSITION: "attitude_no_position",
    FLAG_WRITE_FAILED: "write_failed",
    FLAG_LOGS_LIMITED: "logs_limited",
    FLAG_DOWNLINK_FAILED: "downlink_failed",
    FLAG_CONFIG_REJECTED: "config_rejected",
    FLAG_IMU_REFLECTION: "imu_reflection",
}

#: Estimate quality in the ``*_quality`` bytes (see :mod:`pygnc.validity`):
#: none - no estimate yet; ok - usable now; behind - its epoch is older than "now" by more
#: than the allowed lag (the batch is still being processed, or the propagation to "now" is
#: catching up); ahead - its epoch is later than "now" (the spacecraft time given to main.py
#: is before the batch); horizon - held at the propagation horizon: "now" is more than
#: Config.max_propagation_s after the batch's last measurement; uncertain - current, but its
#: 1-sigma exceeds the configured bound; rates_only - attitude: rates and gyro bias, no
#: attitude reference; acquiring - range-only peer: its acquisition window is still
#: collecting ranges (the estimate is the uplinked prior's, propagated); ambiguous -
#: range-only peer: the orbits the ranges leave open (mirror images) are further apart than
#: the bound (the estimate is their mixture; its sigma covers them).
ESTIMATE_QUALITY = ("none", "ok", "behind", "ahead", "horizon", "uncertain", "rates_only", "acquiring", "ambiguous")

#: (name, struct code, unit / meaning).  The single declaration of the layout.
FIELDS: list[tuple[str, str, str]] = [
    ("magic", "4s", "b'PGNS'"),
    ("version", "H", "layout version (5)"),
    ("length", "H", "total bytes including the CRC"),
    ("seq", "I", "write counter of this run"),
    ("run", "H", "run number (~/pygnc_logs/run_NNNNN)"),
    ("flags", "H", "FLAG_* bits"),
    ("t_sc_s", "d", "spacecraft time of this write, s"),
    ("uptime_s", "f", "seconds since main.py started"),
    ("clock_utc_minus_sc_s", "d", "UTC (unix s) minus the spacecraft clock, s, from the clock map (NaN: no map)"),
    ("home_free_kib", "I", "free space on PYGNC_HOME's file system at this write, KiB"),
    ("home_free_inodes", "I", "free inodes on PYGNC_HOME's file system at this write (0: no file can be made)"),
    ("status_write_failures", "H", "status/info writes that failed in this run (e.g. disk full)"),
    ("log_frames_not_written", "I", "bus-log frames not written (size bound, free-space reserve, write errors)"),
    ("batch_records_held", "I", "downlink records waiting in memory for room on the disk (0: none)"),
    # ingest counters
    ("sense_bytes", "I", "bytes in sense.bin"),
    ("sense_records", "I", "records decoded"),
    ("sense_records_skipped", "I", "records lost to corruption or the size limit (estimate)"),
    ("sense_bytes_skipped", "I", "bytes skipped while resynchronising or not read (over sense_file_max_bytes)"),
    ("fixes_total", "I", "own GPS fixes decoded"),
    ("fixes_valid", "I", "own GPS fixes usable"),
    ("range_files", "H", "range files read"),
    ("peer_fixes", "I", "peer GPS fixes decoded"),
    ("ranges", "I", "range measurements decoded"),
    ("range_bytes_skipped", "I", "range-file bytes skipped (corrupt, or over range_file_max_bytes)"),
    ("range_records_skipped", "I", "range/peer packets lost (estimate)"),
    ("bus_dropped", "I", "bus messages dropped as malformed or unsendable"),
    ("batch_t_sc_first_s", "d", "spacecraft time of the batch's first measurement, s (NaN: batch not done)"),
    ("batch_t_sc_last_s", "d", "spacecraft time of the batch's last measurement, s (NaN: batch not done)"),
    # orbit
    ("orbit_t_sc_s", "d", "epoch of the orbit estimate, spacecraft s"),
    ("orbit_quality", "B", "index into ESTIMATE_QUALITY (1 = ok: usable now)"),
    ("orbit_r_ecef_m", "3d", "position, ECEF, m"),
    ("orbit_v_ecef_m_s", "3f", "velocity, ECEF, m/s"),
    ("orbit_sigma_r_m", "3f", "1-sigma position, ECEF axes, m"),
    ("orbit_sigma_v_m_s", "3f", "1-sigma velocity, ECEF axes, m/s"),
    ("orbit_fixes_used", "H", "fixes used by the filter"),
    ("orbit_fixes_rejected", "H", "fixes rejected by gating"),
    # attitude
    ("att_t_sc_s", "d", "epoch of the attitude estimate, spacecraft s"),
    ("att_quality", "B", "index into ESTIMATE_QUALITY (1 = ok: usable now)"),
    ("att_q_body_to_gcrs", "4f", "quaternion w, x, y, z"),
    ("att_rate_body_rad_s", "3f", "body rate, rad/s"),
    ("att_gyro_bias_rad_s", "3f", "gyro bias, body frame, rad/s"),
    ("att_sigma_rad", "3f", "1-sigma attitude error about body axes, rad"),
    ("att_meas_t_sc_s", "d", "spacecraft time of the last sensor sample the attitude took, s (NaN: none yet)"),
]
for _k in range(MAX_PEERS):
    FIELDS += [
        (f"peer{_k}_id", "B", "peer spacecraft id (0 = empty slot)"),
        (f"peer{_k}_n_ranges", "H", "ranges used"),
        (f"peer{_k}_t_sc_s", "d", "epoch, spacecraft s"),
        (f"peer{_k}_quality", "B", "index into ESTIMATE_QUALITY (1 = ok: usable now)"),
        (f"peer{_k}_dr_ecef_m", "3f", "peer minus own position, ECEF, m"),
        (f"peer{_k}_dv_ecef_m_s", "3f", "peer minus own velocity, ECEF, m/s"),
        (f"peer{_k}_sigma_dr_m", "3f", "1-sigma relative position, m"),
        (f"peer{_k}_range_bias_m", "f", "estimated range bias, m"),
        (f"peer{_k}_ambiguity_m", "f", "range-only: how far apart the kept orbits come in an orbit, m (0: one)"),
        (f"peer{_k}_acq_s", "H", "range-only: seconds of ranges in the open acquisition window (0: none open)"),
        (f"peer{_k}_acq_window_s", "H", "range-only: length of the open acquisition window, s (0: none open)"),
    ]
for _k in range(MAX_TASKS):
    FIELDS += [
        (f"task{_k}_id", "B", "task id (table in docs/interface.md; 0 = empty slot)"),
        (f"task{_k}_state", "B", "index into TASK_STATES"),
        (f"task{_k}_restarts", "B", "restarts so far (saturates at 255)"),
        (f"task{_k}_age_ds", "B", "age of its last health reply, 0.1 s (saturates)"),
    ]
FIELDS.append(("crc32", "I", "CRC-32 of all preceding bytes"))

FORMAT = "<" + "".join(code for _, code, _ in FIELDS)
_STRUCT = struct.Struct(FORMAT)
SIZE = _STRUCT.size
assert SIZE < 1024, SIZE


def _count(code: str) -> int:
    return int(code[:-1]) if code[:-1].isdigit() and not code.endswith("s") else 1


def empty_status() -> dict:
    """A status with every estimate unknown (NaN) and every counter zero."""
    d: dict = {}
    for name, code, _ in FIELDS:
        n = _count(code)
        kind = code[-1]
        if kind == "s":
            d[name] = MAGIC
        elif kind in "fd":
            d[name] = (math.nan,) * n if n > 1 else math.nan
        else:
            d[name] = 0
    d["version"], d["length"] = VERSION, SIZE
    return d


_FLT_MAX = 3.4028234663852886e38


def _fit(v: Any, kind: str) -> Any:  # (any decoded value; what struct.pack takes)
    """*v* made packable as *kind*: integers saturate (NaN -> 0), too-large floats -> ±inf."""
    if kind in "BHI":
        try:
            v = float(v)
        except (TypeError, ValueError):
            return 0
        if v != v:
            return 0
        hi = (1 << (8 * struct.calcsize(kind))) - 1
        return hi if v >= hi else 0 if v <= 0 else int(v)
    if kind == "f":
        try:
            v = float(v)
        except (TypeError, ValueError):
            return math.nan
        return math.copysign(math.inf, v) if abs(v) > _FLT_MAX and math.isfinite(v) else v
    if kind == "d":
        try:
            return float(v)
        except (TypeError, ValueError):
            return math.nan
    return v


def encode_status(values: dict) -> bytes:
    """Pack *values* (missing fields take their empty value); CRC appended."""
    full = empty_status()
    full.update(values)
    full["magic"], full["version"], full["length"] = MAGIC, VERSION, SIZE
    flat: list = []
    for name, code, _ in FIELDS[:-1]:
        v = full[name]
        n = _count(code)
        if n > 1:
            v = tuple(v)
            if len(v) != n:
                raise ValueError(f"{name} needs {n} values, got {len(v)}")
            flat.extend(_fit(x, code[-1]) for x in v)
        else:
            flat.append(_fit(v, code[-1]))
    body = struct.pack(FORMAT[:-1], *flat)
    return body + struct.pack("<I", zlib.crc32(body))


class StatusError(ValueError):
    """The bytes are not a valid status file (message says why)."""


def decode_status(data: bytes) -> dict:
    """Unpack a status file; raises :class:`StatusError` on a bad magic, version, length or CRC."""
    if len(data) != SIZE:
        raise StatusError(f"status file is {len(data)} bytes, expected {SIZE}")
    if data[:4] != MAGIC:
        raise StatusError(f"bad magic {data[:4]!r}")
    flat = _STRUCT.unpack(data)
    crc = zlib.crc32(data[:-4])
    if flat[-1] != crc:
        raise StatusError(f"CRC mismatch: stored {flat[-1]:#010x}, computed {crc:#010x}")
    out: dict = {}
    i = 0
    for name, code, _ in FIELDS:
        n = _count(code)
        out[name] = flat[i] if n == 1 else tuple(flat[i : i + n])
        i += n
    if out["version"] != VERSION:
        raise StatusError(f"layout version {out['version']}, this decoder reads {VERSION}")
    out["flag_names"] = [nm for bit, nm in FLAG_NAMES.items() if out["flags"] & bit]
    return out
