"""Every message that crosses the bus, declared once.

A message on the wire is one msgpack map (one ZeroMQ frame)::

    {"v": SCHEMA_VERSION, "type": <name>, "seq": <uint, per sender>, "src": <task name>,
     "t_mono_s": <sender's CLOCK_MONOTONIC at send, s>, "body": {<fields of the type>}}

The keys are always packed in that order (:data:`ENVELOPE_KEYS`), so every message of a
type starts with the same bytes, :func:`type_prefix`: a consumer that does not read a type
recognises its messages by that prefix and passes them on without decoding them
(:class:`DecodeCounters` ``unread``).

``body`` holds exactly the fields declared for the type in :data:`MESSAGE_TYPES` (extra
fields are allowed for forward compatibility, missing ones make the message malformed).
Decoding never raises: :func:`decode` returns ``None`` for a message that is oversized,
not msgpack, of another schema version, of an unknown type, or missing fields, and counts
why in a :class:`DecodeCounters`.  msgpack is decoded with ``raw=False`` and strict map
keys; nothing received is ever passed to ``eval`` or ``pickle``.

No numpy here: the status reporter and supervisor import this and must start fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgpack

#: Bumped whenever a field is removed or changes meaning.  2: ``clock_map.offset_s`` became
#: ``gps_minus_sc_s`` (named by what it is); ``replay`` names the channels.
SCHEMA_VERSION = 2

#: Default size limit of one encoded message, bytes (Config.max_message_bytes overrides).
MAX_MESSAGE_BYTES = 64 * 1024

# Field kinds used in the declarations below.  "num" is int or float; "vecN" a list of N
# numbers; "str", "bool", "int", "map", "list", "bytes", "any" as named.
_V3, _V6 = "vec3", "vec6"

#: message type -> {field name: kind}.  Units are in the names.
MESSAGE_TYPES: dict[str, dict[str, str]] = {
    # ---- measurements (channel "meas", from ingest, in spacecraft-time order) --------
    "sensor": {  # one BMX160 + OPT3001 sample, IMU frame, physical units
        "t_sc_s": "num",
        "mag_ut": _V3,
        "gyro_deg_s": _V3,
        "sun_lux": _V6,
        "sun_saturated": "list",
        "record": "int",
    },
    "gps_fix": {  # own GPS fix (sense.bin) or a peer's fix (range files, peer_id > 0)
        "t_sc_s": "num",
        "t_gps_s": "num",
        "unix_time_s": "num",
        "time_status": "int",
        "solution_status": "int",
        "pos_ecef_m": _V3,
        "pos_sigma_m": _V3,
        "vel_ecef_m_s": _V3,
        "vel_sigma_m_s": _V3,
        "sats_in_solution": "int",
        "valid": "bool",
        "peer_id": "int",
        "record": "int",
    },
    "range": {  # inter-satellite range from the radio
        "t_sc_s": "num",
        "peer_id": "int",
        "range_m": "num",
        "range_raw": "int",
        "rssi_dbm": "num",
        "fei_hz": "num",
        "valid": "bool",
        "file_index": "int",
        "group": "int",
    },
    "clock_map": {  # spacecraft clock -> GPS time, fitted from valid own fixes:
        # t_gps_s = t_sc_s + gps_minus_sc_s + drift * (t_sc_s - t_ref_sc_s);
        # utc_minus_sc_s: UTC (unix seconds) minus the spacecraft clock at t_ref_sc_s
        "gps_minus_sc_s": "num",
        "drift": "num",
        "t_ref_sc_s": "num",
        "n_pairs": "int",
        "residual_rms_s": "num",
        "utc_minus_sc_s": "num",
    },
    "ingest_stats": {  # decode statistics of one input source
        "source": "str",
        "path": "str",
        "present": "bool",
        "bytes_total": "int",
        "bytes_skipped": "int",
        "records": "int",
        "records_skipped": "int",
        "skip_events": "int",
        "files": "int",
        "note": "str",
        # stamps dropped as time outliers; bytes at files' heads not read (over the limit)
        "time_outliers": "int",
        "bytes_over_limit": "int",
    },
    "batch_end": {  # ingest has published every measurement of the batch
        "n_sensor": "int",
        "n_gps_fix": "int",
        "n_gps_fix_valid": "int",
        "n_peer_fix": "int",
        "n_range": "int",
        "t_sc_first_s": "num",
        "t_sc_last_s": "num",
    },
    # ---- external IMU (channel "imu", from imu_ingest) -----------------------------------
    # A block of consecutive samples of one connection, oldest first, in the IMU's own axes
    # (Config.imu_device_to_body rotates them into body axes).  Per sample: t_sc_s = when it
    # was taken on the spacecraft clock (device time aligned to the host clock by minimum
    # delay; strictly increasing within a connection), t_device_s = the device's own
    # monotonic time (NaN if it has none), t_rx_sc_s = when its bytes were read.
    # ``connection`` counts (re)connections from 1: device time restarts with each.
    # ``first_index`` numbers samples within the connection; ``lost`` = samples the device's
    # counter/timer says were lost inside or just before this block.
    "imu_samples": {
        "device": "str",
        "connection": "int",
        "first_index": "int",
        "lost": "int",
        "t_sc_s": "list",
        "t_device_s": "list",
        "t_rx_sc_s": "list",
        "rate_imu_rad_s": "list",
        "accel_imu_m_s2": "list",
        "temp_c": "list",
        "status": "list",
    },
    # ---- the host's stream (channels "live" and "host_cmd", from tty_stream) -------------
    # ``tag``: "SNS", "GPS" or "RNG" (docs/interface.md, Streaming); ``data``: whole segments
    # of that tag's layout, as the host sent them; ``seq``: the frame's SEQ; ``t_rx_sc_s``:
    # when the frame was read, spacecraft clock.
    "live_segments": {"tag": "str", "seq": "int", "data": "bytes", "t_rx_sc_s": "num"},
    # ``command``: "flush_batches"
    "host_command": {"command": "str", "seq": "int"},
    # ---- estimates ----------------------------------------------------------------------
    "orbit_estimate": {
        "t_sc_s": "num",
        "t_gps_s": "num",
        "unix_time_s": "num",
        "r_ecef_m": _V3,
        "v_ecef_m_s": _V3,
        "r_gcrs_m": _V3,
        "v_gcrs_m_s": _V3,
        "sigma_r_m": _V3,
        "sigma_v_m_s": _V3,
        "cov_gcrs": "list",
        "n_used": "int",
        "n_rejected": "int",
        "n_invalid": "int",
        "propagated": "bool",
        # its quality at its epoch (pygnc.validity.orbit_word): ok, uncertain or acquiring
        "quality": "str",
    },
    # The position alone at a sensor sample's time, for the attitude estimator: during a
    # batch (Config.batch_decimate_estimates), at the samples whose orbit_estimate the
    # downlink does not record (same epoch and state as that estimate would have had).
    "orbit_position": {"t_sc_s": "num", "t_gps_s": "num", "r_ecef_m": _V3, "r_gcrs_m": _V3},
    "attitude_estimate": {
        "t_sc_s": "num",
        "unix_time_s": "num",
        "q_body_to_gcrs": "list",
        "rate_body_rad_s": _V3,
        "gyro_bias_rad_s": _V3,
        "sigma_att_rad": _V3,
        "sigma_bias_rad_s": _V3,
        "has_position": "bool",
        "in_eclipse": "bool",
        "propagated": "bool",
        # GPS time (NaN without a clock map); magnetometer hard-iron bias, body axes;
        # full 9x9 covariance (attitude rad, gyro bias rad/s, mag bias µT), row-major;
        # valid_attitude False: q is a placeholder (no reference yet), sigma_att_rad pi.
        "t_gps_s": "num",
        "mag_bias_body_ut": _V3,
        "sigma_mag_bias_ut": _V3,
        "cov": "list",
        "valid_attitude": "bool",
        "sun_faces_used": "int",
        # its quality at its epoch (pygnc.validity.attitude_word): ok, uncertain or rates_only
        "quality": "str",
        # the magnetometer's and the BMX160 gyro's estimated mounting errors against the body
        # axes (rotation vectors, rad) and their 1-sigmas; zeros when not estimated
        # (attitude_filter mag_misalignment_sigma_rad, gyro_misalignment_sigma_rad 0)
        "mag_misalignment_rad": _V3,
        "sigma_mag_misalignment_rad": _V3,
        "gyro_misalignment_rad": _V3,
        "sigma_gyro_misalignment_rad": _V3,
    },
    "formation_estimate": {
        "t_sc_s": "num",
        "unix_time_s": "num",
        "peer_id": "int",
        "dr_ecef_m": _V3,
        "dv_ecef_m_s": _V3,
        "sigma_dr_m": _V3,
        "sigma_dv_m_s": _V3,
        "range_bias_m": "num",
        "n_ranges_used": "int",
        "n_ranges_rejected": "int",
        "propagated": "bool",
        # GPS time of the estimate; the relative state in GCRS with its 6x6 covariance
        # ([dr, dv], row-major, m and m/s); relative position in the own radial /
        # along-track / cross-track frame; estimated separation and the 1-sigma of the
        # line-of-sight component; filter states (range bias sigma, range time-tag
        # lateness, peer drag scale) and fix counters of this peer's filter.
        "t_gps_s": "num",
        "dr_gcrs_m": _V3,
        "dv_gcrs_m_s": _V3,
        "cov_rel_gcrs": "list",
        "dr_rtn_m": _V3,
        "sigma_dr_rtn_m": _V3,
        "range_m": "num",
        "sigma_los_m": "num",
        "sigma_range_bias_m": "num",
        "range_time_offset_s": "num",
        "peer_drag_scale": "num",
        "n_peer_fixes_used": "int",
        "n_peer_fixes_rejected": "int",
        "n_own_fixes_used": "int",
        "n_own_fixes_rejected": "int",
        # Range-only: an acquisition window is open (the estimate is the prior's), the
        # seconds of ranges it holds and its length; the kept orbits (the filter's first)
        # with their weights and relative positions (GCRS, m), and the largest amplitude over
        # an orbit of the difference between one weighing at least 1e-3 and the published
        # state (m, range_only_mirrors.orbit_ambiguity_m): the ambiguity the ranges leave open, and
        # whether it exceeds Config.formation_valid_max_sigma_m.
        "acquiring": "bool",
        "acquired_s": "num",
        "window_s": "num",
        "hyp_weights": "list",
        "hyp_dr_gcrs_m": "list",
        "ambiguity_m": "num",
        "ambiguous": "bool",
        # each kept orbit (in hyp_weights' order): relative position and velocity, ECEF, and
        # their 1-sigma per ECEF axis (m, m/s); the estimate's quality at its epoch
        # (pygnc.validity.peer_word): ok, uncertain, acquiring or ambiguous
        "hyp_dr_ecef_m": "list",
        "hyp_dv_ecef_m_s": "list",
        "hyp_sigma_dr_m": "list",
        "hyp_sigma_dv_m_s": "list",
        "quality": "str",
    },
    "estimator_note": {  # an estimator's state in words, e.g. "no valid GPS fix"
        "estimator": "str",
        "code": "str",  # one of pygnc.notes.NOTES
        "peer_id": "int",  # the partner it is about (0: none)
        "text": "str",
    },
    # ---- housekeeping devices (channel "hk", from housekeeping) -----------------------
    "hk_reading": {  # one decoded device record (an EMUS sentence, an OPC-N3 histogram, ...)
        # device: configured name; kind: "emus_bms" | "opc_n3"; record: sentence name or
        # OPC record ("histogram", "info", ...); values: fields in physical units (units in
        # the names, None where the device sent nothing); raw: the checksum-verified bytes
        # it was decoded from; solicited: False for a sentence nobody asked for.
        "device": "str",
        "kind": "str",
        "record": "str",
        "t_sc_s": "num",
        "values": "map",
        "raw": "bytes",
        "solicited": "bool",
    },
    "hk_device": {  # a device's state: "open", "absent" (cannot open), "lost" (I/O error),
        # "stopped", "config_error"; sent on every change and every minute with counters
        "device": "str",
        "kind": "str",
        "state": "str",
        "port": "str",
        "t_sc_s": "num",
        "note": "str",
        "counters": "map",
    },
    # ---- supervision (channel "health", from the supervisor) ------------------------
    "health": {
        "tasks": "list",  # [{name, state, pid, restarts, age_s, counters}]
        "t_sc_s": "num",
        "uptime_s": "num",
        "stopping": "bool",
    },
    # ---- control (supervisor <-> task, ROUTER/DEALER) -------------------------------
    "ready": {"pid": "int"},
    "start": {},
    "ping": {"key": "int"},
    "pong": {"key": "int", "counters": "map"},
    "stop": {"reason": "str"},
    # supervisor -> producer: consumer died and restarts, send it what was kept of these
    # channels when it is back (none: it will not come back, forget it)
    "replay": {"reason": "str", "channels": "list", "consumer": "str"},
    "bye": {"counters": "map"},
}


@dataclass
class DecodeCounters:
    """Why received messages were dropped (never fatal)."""

    ok: int = 0
    #: frames of a type the receiving task does not read, recognised by their
    #: :func:`type_prefix` and passed on undecoded (not dropped: never validated)
    unread: int = 0
    oversized: int = 0
    not_msgpack: int = 0
    bad_envelope: int = 0
    wrong_version: int = 0
    unknown_type: int = 0
    missing_field: int = 0

    @property
    def dropped(self) -> int:
        return (
            self.oversized
            + self.not_msgpack
            + self.bad_envelope
            + self.wrong_version
            + self.unknown_type
            + self.missing_field
        )

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["dropped"] = self.dropped
        return d


@dataclass
class Message:
    type: str
    body: dict
    seq: int = 0
    src: str = ""
    t_mono_s: float = 0.0


@dataclass
class Encoder:
    """Stamps messages from one sender with a per-sender sequence number."""

    src: str
    seq: int = 0
    _packer: msgpack.Packer = field(default_factory=lambda: msgpack.Packer(use_bin_type=True))

    def encode(self, msg_type: str, body: dict, seq: int | None = None) -> bytes:
        """The message on the wire; *seq*: its number when the sender numbers a stream of
        its own (ingest: the position in its stream, the same whenever it is sent again),
        else the next one."""
        if msg_type not in MESSAGE_TYPES:
            raise KeyError(f"undeclared message type {msg_type!r}")
        self.seq = self.seq + 1 if seq is None else max(self.seq, seq)
        # In the order of ENVELOPE_KEYS (a dict packs in insertion order): type_prefix.
        return self._packer.pack(
            {
                "v": SCHEMA_VERSION,
                "type": msg_type,
                "seq": self.seq if seq is None else seq,
                "src": self.src,
                "t_mono_s": time.monotonic(),
                "body": body,
            }
        )


#: The envelope's keys in the order :class:`Encoder` packs them.
ENVELOPE_KEYS = ("v", "type", "seq", "src", "t_mono_s", "body")


def type_prefix(msg_type: str) -> bytes:
    """The bytes every encoded message of *msg_type* starts with: the map header, then
    ``"v"``: :data:`SCHEMA_VERSION` and ``"type"``: *msg_type*, as msgpack packs them."""
    if msg_type not in MESSAGE_TYPES:
        raise KeyError(f"undeclared message type {msg_type!r}")
    pack = msgpack.Packer(use_bin_type=True).pack
    return pack({k: None for k in ENVELOPE_KEYS})[:1] + pack("v") + pack(SCHEMA_VERSION) + pack("type") + pack(msg_type)


def decode(data: bytes, counters: DecodeCounters, max_bytes: int = MAX_MESSAGE_BYTES) -> Message | None:
    """Decode one wire message; ``None`` (and a counter bumped) if it must be dropped."""
    if len(data) > max_bytes:
        counters.oversized += 1
        return None
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception:  # any malformed input: ExtraData, FormatError, ValueError, ...
        counters.not_msgpack += 1
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("body"), dict):
        counters.bad_envelope += 1
        return None
    if obj.get("v") != SCHEMA_VERSION:
        counters.wrong_version += 1
        return None
    msg_type = obj.get("type")
    if not isinstance(msg_type, str) or msg_type not in MESSAGE_TYPES:
        counters.unknown_type += 1
        return None
    body = obj["body"]
    for name, ok in _CHECKS[msg_type]:
        if name not in body or not ok(body[name]):
            counters.missing_field += 1
            return None
    seq, src, t_mono = obj.get("seq", 0), obj.get("src", ""), obj.get("t_mono_s", 0.0)
    if not isinstance(seq, int) or not isinstance(src, str) or not isinstance(t_mono, (int, float)):
        counters.bad_envelope += 1
        return None
    counters.ok += 1
    return Message(msg_type, body, seq, src, float(t_mono))


#: Types msgpack decodes a number to (exactly these: ``bool`` is not a number here).
_NUM_TYPES = frozenset({int, float})


def _checker(kind: str) -> Callable[[object], bool]:
    """The test a decoded field of *kind* must pass (see the field kinds above).  Decoded
    values have msgpack's exact types (int, float, bool, str, list, dict, bytes), so the
    tests compare types exactly: a bool is not a number, as declared."""
    num = _NUM_TYPES
    simple = {
        "num": lambda v: type(v) in num,
        "int": lambda v: type(v) is int,
        "bool": lambda v: type(v) is bool,
        "str": lambda v: type(v) is str,
        "map": lambda v: type(v) is dict,
        "list": lambda v: type(v) is list,
        "bytes": lambda v: type(v) is bytes,
    }
    if kind in simple:
        return simple[kind]
    if kind.startswith("vec"):
        n = int(kind[3:])
        is_nums = num.issuperset  # over map(type, v): the loop runs in C
        return lambda v: type(v) is list and len(v) == n and is_nums(map(type, v))
    return lambda v: True


#: message type -> ((field, its test), ...): the declarations compiled once, so decoding a
#: message runs one prepared test per field instead of parsing its kind again.
_CHECKS: dict[str, tuple] = {
    t: tuple((name, _checker(kind)) for name, kind in spec.items()) for t, spec in MESSAGE_TYPES.items()
}
