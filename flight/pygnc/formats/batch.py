"""Batch files ``~/pygnc_batches/batch_NNNNNNNN.bin``: the downlink products (Pi -> host -> ground).

A batch file is a 48-byte header followed by CRC-framed, fixed-layout **records**.  Each
record kind is declared once in :data:`KINDS` (code, payload fields with their encoding and
precision, the bus messages it is made from and its default cadence); the encoder,
the decoder, the writer's decimation and the tables of docs/interface.md all follow from
that declaration.  Adding a kind is one :class:`RecordKind` entry plus its encoder (a
function from a bus message body to the field values).  A layout that has to grow becomes
a new kind of the same name; the old one stays declared, under another name and with
``superseded_by``, so older files still decode - as records of the new kind whose added
fields are unknown.

Header (little-endian, :data:`HEADER_FIELDS`)::

    magic "PGNB", layout version, header size, run number, batch sequence number,
    spacecraft id, flags (FILE_*), reserved, first/last record time (spacecraft s, float64;
    NaN while the file is open), record count, bytes dropped by recovery, CRC-32 of the rest

Record frame (little-endian)::

    offset size field
    0      1    sync 0xC7
    1      1    kind code (KINDS; a code is never reused, its layout never changes)
    2      1    payload length n (fixed per kind; lets a decoder skip a kind it does not know)
    3      4    record time, spacecraft clock, whole seconds (uint32)
    7      2    milliseconds 0..999 (uint16)
    9      n    payload (the kind's fields, ``struct`` codes, no padding)
    9+n    2    CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF = ``binascii.crc_hqx(b, 0xFFFF)``)
                of bytes 0 .. 9+n-1

Encodings of a field: integer codes with a ``scale`` store ``round(value / scale)``
(error <= scale / 2), saturated to the code's range; the code's most negative value
(e.g. -2**31) is reserved for NaN / unknown.  Unscaled integers (counters, ids, flags)
saturate at their range.  ``e`` is IEEE binary16 (3 significant digits: relative error at
most 2**-11 = 4.9e-4; below 6.1e-5 a fixed step of 6e-8; magnitudes beyond 65504 become
+-inf), ``f`` binary32, ``d`` binary64; a float field with a ``scale`` stores
``value / scale``.

Decoding never raises: :func:`decode_batch` resynchronises on the sync byte, keeps every
record whose CRC holds, and counts what it skipped (torn tail, flipped bits, garbage,
kinds it does not know).

No numpy here: the writer task imports this and must stay light.
"""

from __future__ import annotations

import binascii
import math
import re
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..device_kinds import HK_DEVICE_KINDS

# The record times and cadences are the downlink schedule's (also the processors' decimation).
from ..downlink_schedule import ESTIMATE_PERIOD_S, period_ms, record_time_ms, split_time  # noqa: F401
from ..paths import PART_SUFFIX  # noqa: F401 - declared with the home's other names
from ..task_ids import TASK_IDS, TASK_STATES  # health records carry the status file's ids and states
from .status import ESTIMATE_QUALITY  # estimate records carry the status file's quality words

MAGIC = b"PGNB"
VERSION = 1

#: File names: ``batch_`` + the sequence number (at least 8 digits) + ``.bin``.  The
#: file being written carries ``.part`` after that and is never under the final name.
FILE_PREFIX = "batch_"
FILE_SUFFIX = ".bin"
FILE_RE = re.compile(r"^batch_(\d{8,})\.bin$")
PART_RE = re.compile(r"^batch_(\d{8,})\.bin\.part$")
#: Sequence numbers run from 1 to the header's uint32 maximum (4 294 967 295, ten digits in a
#: name); the writer refuses to number a file beyond it (no wrap: sequence order must stay
#: the order files were written in, for the host, the pruning and the ground).
MIN_SEQUENCE = 1
MAX_SEQUENCE = (1 << 32) - 1

# --------------------------------------------------------------------------- header
#: (name, struct code, meaning).  The single declaration of the header layout.
HEADER_FIELDS: list[tuple[str, str, str]] = [
    ("magic", "4s", "b'PGNB'"),
    ("version", "H", "layout version (1)"),
    ("header_size", "H", "bytes of this header including its CRC (48)"),
    ("run", "I", "run number (~/pygnc_logs/run_NNNNN) of the writer; 0 = unknown"),
    ("sequence", "I", "batch sequence number: +1 per file, kept across runs"),
    ("spacecraft_id", "B", "Config.spacecraft_id (radio id; 0 = not set)"),
    ("flags", "B", "FILE_* bits"),
    ("reserved", "H", "0"),
    ("t_first_sc_s", "d", "earliest record time, spacecraft s (NaN while open)"),
    ("t_last_sc_s", "d", "latest record time, spacecraft s (NaN while open)"),
    ("records", "I", "records in the file (0 while open)"),
    ("skipped_bytes", "I", "bytes of a recovered .part that were not intact records"),
    ("crc32", "I", "CRC-32 (zlib) of all preceding header bytes"),
]
HEADER_FORMAT = "<" + "".join(code for _, code, _ in HEADER_FIELDS)
_HEADER = struct.Struct(HEADER_FORMAT)
HEADER_SIZE = _HEADER.size  # 48

FILE_OPEN = 1 << 0  # header written at creation; cleared when the file is closed
FILE_RECOVERED = 1 << 1  # closed at the next start from a .part a crash or power cut left
FILE_CLOSED_SIZE = 1 << 2  # closed because the next record would exceed the size bound
FILE_CLOSED_AGE = 1 << 3  # closed by the time bound
FILE_CLOSED_STOP = 1 << 4  # closed when the writer stopped
FILE_HEADER_REBUILT = 1 << 5  # the .part's header was unreadable: run unknown (0)
FILE_CLOSED_ERROR = 1 << 6  # closed after a write error (disk full, I/O error)
FILE_CLOSED_HOST = 1 << 7  # closed on the host's request (stream command FLU)
FILE_FLAG_NAMES = {
    FILE_OPEN: "open",
    FILE_RECOVERED: "recovered",
    FILE_CLOSED_SIZE: "closed_size",
    FILE_CLOSED_AGE: "closed_age",
    FILE_CLOSED_STOP: "closed_stop",
    FILE_HEADER_REBUILT: "header_rebuilt",
    FILE_CLOSED_ERROR: "closed_error",
    FILE_CLOSED_HOST: "closed_host",
}


def encode_header(
    run: int,
    sequence: int,
    spacecraft_id: int,
    flags: int,
    t_first_sc_s: float = math.nan,
    t_last_sc_s: float = math.nan,
    records: int = 0,
    skipped_bytes: int = 0,
) -> bytes:
    body = _HEADER.pack(
        MAGIC,
        VERSION,
        HEADER_SIZE,
        _u(run, 32),
        _u(sequence, 32),
        _u(spacecraft_id, 8),
        _u(flags, 8),
        0,
        float(t_first_sc_s),
        float(t_last_sc_s),
        _u(records, 32),
        _u(skipped_bytes, 32),
        0,
    )[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def decode_header(data: bytes) -> dict | None:
    """The header at the start of *data*, or None if it is not a valid one."""
    if len(data) < HEADER_SIZE or data[:4] != MAGIC:
        return None
    values = _HEADER.unpack_from(data)
    if values[-1] != zlib.crc32(data[: HEADER_SIZE - 4]) or values[1] != VERSION or values[2] != HEADER_SIZE:
        return None
    h = {name: v for (name, _, _), v in zip(HEADER_FIELDS, values)}
    h["flag_names"] = [n for bit, n in FILE_FLAG_NAMES.items() if h["flags"] & bit]
    return h


def file_name(sequence: int) -> str:
    return f"{FILE_PREFIX}{sequence:08d}{FILE_SUFFIX}"


def sequence_of(name: str) -> int | None:
    """Sequence number of a final or ``.part`` file name, else None."""
    m = FILE_RE.match(name) or PART_RE.match(name)
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------- fields
_INT_RANGE = {
    "b": (-(1 << 7), (1 << 7) - 1),
    "B": (0, (1 << 8) - 1),
    "h": (-(1 << 15), (1 << 15) - 1),
    "H": (0, (1 << 16) - 1),
    "i": (-(1 << 31), (1 << 31) - 1),
    "I": (0, (1 << 32) - 1),
}
_FLOAT_MAX = {"e": 65504.0, "f": 3.4028234663852886e38, "d": math.inf}
_HALF_OVERFLOW = 65520.0  # binary16 rounds anything below this to 65504


@dataclass(frozen=True)
class Field:
    """One payload field: ``count`` values of struct ``code`` (``s``: a text of ``count``
    bytes; ``y``: ``count`` raw bytes, zero-padded - a length field says how many count)."""

    name: str
    code: str
    count: int = 1
    scale: float | None = None
    meaning: str = ""

    @property
    def struct_code(self) -> str:
        return f"{self.count}s" if self.code in "sy" else (f"{self.count}{self.code}" if self.count > 1 else self.code)

    @property
    def n_values(self) -> int:
        return 1 if self.code in "sy" else self.count

    @property
    def nan_sentinel(self) -> int | None:
        """Raw value that stands for NaN (scaled signed integers only)."""
        return _INT_RANGE[self.code][0] if self.scale is not None and self.code in "bhi" else None

    def precision(self) -> str:
        """How exactly a value survives the encoding (for the docs)."""
        if self.code == "s":
            return f"UTF-8 text, at most {self.count} bytes"
        if self.code == "y":
            return f"raw bytes, at most {self.count} (zero-padded)"
        if self.code in _INT_RANGE:
            lo, hi = _INT_RANGE[self.code]
            if self.scale is None:
                return f"integer, saturates at {lo}..{hi}"
            return (
                f"step {self.scale:.6g} (error ≤ {self.scale / 2:.3g}), saturates at ±{hi * self.scale:.4g}; {lo} = NaN"
            )
        what = {"e": "binary16: 3 digits (relative error ≤ 4.9e-4)", "f": "binary32: 7 digits", "d": "binary64"}[
            self.code
        ]
        if self.scale is not None:
            what += f" of value / {self.scale:g}"
        if self.code == "e":
            sc = self.scale or 1
            what += f"; below {6.1e-5 * sc:.2g} the step is {6e-8 * sc:.1g}; above {65504 * sc:g}: inf"
        return what

    def pack_one(self, v: Any) -> int | float:  # (v: a message body's value, any type)
        c = self.code
        if c in _INT_RANGE:
            lo, hi = _INT_RANGE[c]
            try:
                x = float(v)
            except (TypeError, ValueError):
                x = math.nan
            if self.scale is None:
                return 0 if x != x else int(min(max(x, lo), hi))
            if x != x:
                return lo
            x = round(x / self.scale) if math.isfinite(x) else (hi if x > 0 else lo + 1)
            return int(min(max(x, lo + 1), hi))
        try:
            x = float(v)
        except (TypeError, ValueError):
            return math.nan
        if self.scale is not None:
            x = x / self.scale
        if c == "e" and abs(x) >= _HALF_OVERFLOW:
            return math.copysign(math.inf, x)
        if c == "f" and abs(x) > _FLOAT_MAX["f"] and math.isfinite(x):
            return math.copysign(math.inf, x)
        return x

    def unpack_one(self, raw: Any) -> Any:  # (struct.unpack's value: number, bytes)
        if self.code in _INT_RANGE:
            if self.scale is None:
                return raw
            if raw == self.nan_sentinel:
                return math.nan
        elif self.scale is None:
            return raw
        inv = 1.0 / self.scale  # 0.01 -> 100: raw / 100 is the correctly rounded decimal
        return raw / round(inv) if abs(inv - round(inv)) < 1e-9 * inv else raw * self.scale


def _text_bytes(v: object, n: int) -> bytes:
    b = str(v).encode("utf-8")[:n]
    return b.decode("utf-8", "ignore").encode("utf-8")  # never cut a character in half


# --------------------------------------------------------------------------- record kinds
#: An encoder: (message type, message body) -> field values (and optionally ``t_sc_s``, the
#: record time; without it the writer's current spacecraft time), a list of them (one record
#: each, recorded together under the first one's key and time: ``each`` says what each is),
#: or None to record nothing.
Encoder = Callable[[str, dict], "dict | list[dict] | None"]


@dataclass(frozen=True)
class RecordKind:
    """A record kind: the layout of its payload and how it is made from bus messages.

    ``period_s`` is the default cadence: at most one record per ``key`` per period-long bin
    of record time (bins aligned on multiples of the period; 0 = every message; None = only
    when the ``on_change`` fields change).  ``on_change`` fields force a record when they
    differ from the last recorded ones.  ``final``: the last message of a run is recorded
    when the writer stops even if its bin is taken.  ``context``: the latest record is
    repeated at the start of every file, so each file can be read alone.  ``regular``:
    records are expected at the cadence, so the ground reports gaps in them.
    ``each``: the kind's encoder makes a group of records of one message, one per *each*
    (e.g. "kept orbit"), recorded or decimated together (the cadence is per key and group).
    ``superseded_by``: a retired layout, never written (nor selectable); its records are
    read as the named kind's, through ``upgrade`` (its values -> that kind's: the fields it
    lacks unknown).
    """

    name: str
    code: int
    channels: tuple[str, ...]
    message_types: tuple[str, ...]
    fields: tuple[Field, ...]
    encode: Encoder
    description: str
    period_s: float | None = 60.0
    #: A field name, or a tuple of them, whose values tell records apart for the cadence.
    key: str | tuple[str, ...] | None = None
    on_change: tuple[str, ...] = ()
    final: bool = False
    context: bool = False
    enabled: bool = True
    #: Records are expected at the cadence (the ground reports gaps); False for sporadic kinds.
    regular: bool = True
    each: str | None = None
    superseded_by: str | None = None
    upgrade: Callable[[dict], dict] | None = None
    _struct: struct.Struct = field(init=False, repr=False, compare=False)
    _spans: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_struct", struct.Struct("<" + "".join(f.struct_code for f in self.fields)))
        spans, off = {}, 0
        for f in self.fields:
            n = struct.calcsize("<" + f.struct_code)
            spans[f.name] = (off, off + n)
            off += n
        object.__setattr__(self, "_spans", spans)
        if not 1 <= self.code <= 255:
            raise ValueError(f"record kind {self.name}: code {self.code} outside 1..255")
        if self.size > 255:
            raise ValueError(f"record kind {self.name}: payload {self.size} bytes > 255")

    def key_of(self, values: dict) -> object:
        """The cadence key of a record's *values* (None for a kind without a key)."""
        if self.key is None:
            return None
        if isinstance(self.key, tuple):
            return tuple(values.get(k) for k in self.key)
        v = values.get(self.key)
        return tuple(v) if isinstance(v, list) else v

    @property
    def read_as(self) -> str:
        """The name of the kind its records are read as: its own, or its successor's."""
        return self.superseded_by or self.name

    @property
    def size(self) -> int:
        """Payload bytes."""
        return self._struct.size

    @property
    def record_size(self) -> int:
        """Bytes of one framed record."""
        return RECORD_OVERHEAD + self.size

    def pack(self, values: dict) -> bytes:
        flat: list = []
        for f in self.fields:
            v = values.get(f.name, math.nan if f.code in "efd" or f.scale is not None else 0)
            if f.code == "s":
                flat.append(_text_bytes(v, f.count))
            elif f.code == "y":
                flat.append(bytes(v or b"")[: f.count])
            elif f.count > 1:
                seq = list(v) if isinstance(v, (list, tuple)) else [v] * f.count
                if len(seq) != f.count:
                    raise ValueError(f"{self.name}.{f.name}: {f.count} values needed, got {len(seq)}")
                flat.extend(f.pack_one(x) for x in seq)
            else:
                flat.append(f.pack_one(v))
        return self._struct.pack(*flat)

    def field_bytes(self, payload: bytes, names: tuple[str, ...]) -> bytes:
        """The encoded bytes of fields *names* (exact comparison, NaN included)."""
        return b"".join(payload[slice(*self._spans[n])] for n in names)

    def unpack(self, payload: bytes) -> dict:
        flat = self._struct.unpack(payload)
        out, i = {}, 0
        for f in self.fields:
            if f.code == "s":
                out[f.name] = flat[i].rstrip(b"\0").decode("utf-8", "replace")
                i += 1
            elif f.code == "y":
                out[f.name] = flat[i]
                i += 1
            elif f.count > 1:
                out[f.name] = tuple(f.unpack_one(x) for x in flat[i : i + f.count])
                i += f.count
            else:
                out[f.name] = f.unpack_one(flat[i])
                i += 1
        return out


def _bits(*flags: object) -> int:
    return sum(1 << i for i, f in enumerate(flags) if f)


def _enc_clock_map(t: str, b: dict) -> dict:
    return dict(b)


_SOURCES = {"sense": 1, "range": 2}
SOURCE_NAMES = {v: k for k, v in _SOURCES.items()}


def _enc_ingest(t: str, b: dict) -> dict:
    return {**b, "source": _SOURCES.get(b["source"], 0), "present": int(bool(b["present"]))}


def _enc_batch_end(t: str, b: dict) -> dict:
    return dict(b)


def quality_code(word: object) -> int:
    """The index into the status file's ESTIMATE_QUALITY of an estimate's quality word (0,
    ``none``, when it has none: a record of a superseded layout, or a word this build does
    not know)."""
    return ESTIMATE_QUALITY.index(word) if word in ESTIMATE_QUALITY else 0


def quality_word(code: object) -> str:
    """The quality word of an estimate record's ``quality`` (empty: not recorded)."""
    return ESTIMATE_QUALITY[code] if isinstance(code, int) and 0 < code < len(ESTIMATE_QUALITY) else ""


def _enc_orbit(t: str, b: dict) -> dict:
    return {**b, "flags": _bits(b.get("propagated", False)), "quality": quality_code(b.get("quality"))}


def _enc_attitude(t: str, b: dict) -> dict:
    return {
        **b,
        "flags": _bits(
            b.get("propagated", False),
            b.get("valid_attitude", True),
            b.get("has_position", False),
            b.get("in_eclipse", False),
        ),
        "quality": quality_code(b.get("quality")),
    }


def _enc_formation(t: str, b: dict) -> dict:
    ws = b.get("hyp_weights") or [1.0]
    return {
        **b,
        "flags": _bits(b.get("propagated", False), b.get("acquiring", False), b.get("ambiguous", False)),
        "quality": quality_code(b.get("quality")),
        "n_orbits": len(ws),
        "best_weight": max(ws),
    }


def _enc_partner_orbits(t: str, b: dict) -> list[dict] | None:
    """One record per orbit a range-only partner keeps, while it keeps more than one (with
    one, the formation record is that orbit) and is acquired (while it acquires, they are
    the uplinked prior's components, not estimates)."""
    ws = b.get("hyp_weights") or []
    if len(ws) < 2 or b.get("acquiring", False):
        return None
    flags = _bits(b.get("propagated", False))
    return [
        {
            "t_sc_s": b["t_sc_s"],
            "peer_id": b["peer_id"],
            "index": k,
            "n_orbits": len(ws),
            "weight": w,
            "dr_ecef_m": b["hyp_dr_ecef_m"][k],
            "dv_ecef_m_s": b["hyp_dv_ecef_m_s"][k],
            "sigma_dr_m": b["hyp_sigma_dr_m"][k],
            "sigma_dv_m_s": b["hyp_sigma_dv_m_s"][k],
            "flags": flags,
        }
        for k, w in enumerate(ws)
    ]


def _v1_orbit(v: dict) -> dict:
    return {**v, "quality": 0}


def _v1_attitude(v: dict) -> dict:
    return {**v, "quality": 0}


def _v1_formation(v: dict) -> dict:
    """A formation record of the first layout: its quality known only where its flags say
    acquiring or ambiguous (ok and uncertain need the bound the spacecraft used)."""
    f = int(v.get("flags", 0))
    q = quality_code("acquiring") if f & 2 else quality_code("ambiguous") if f & 4 else 0
    return {**v, "quality": q, "ambiguity_m": math.nan, "n_orbits": 0, "best_weight": math.nan}


def _enc_gps_fix(t: str, b: dict) -> dict:
    return {**b, "flags": _bits(b["valid"])}


def _enc_range(t: str, b: dict) -> dict:
    return {**b, "flags": _bits(b["valid"])}


def _enc_sensor(t: str, b: dict) -> dict:
    sat = b.get("sun_saturated") or []
    return {**b, "sun_saturated": _bits(*sat[:6])}


#: Health slots in a health record (the status file's MAX_TASKS may be smaller).
HEALTH_SLOTS = 10


def _enc_health(t: str, b: dict) -> dict:
    ids, states, restarts = [0] * HEALTH_SLOTS, [0] * HEALTH_SLOTS, [0] * HEALTH_SLOTS
    tasks = [x for x in b.get("tasks", []) if isinstance(x, dict)]
    for k, x in enumerate(tasks[:HEALTH_SLOTS]):
        name = x.get("name")
        ids[k] = TASK_IDS.get(name, 0) if isinstance(name, str) else 0
        st = x.get("state")
        states[k] = TASK_STATES.index(st) if st in TASK_STATES else 0
        restarts[k] = x.get("restarts", 0)
    return {
        "t_sc_s": b["t_sc_s"],
        "uptime_s": b["uptime_s"],
        "flags": _bits(b.get("stopping", False)),
        "n_tasks": len(tasks),
        "task_id": ids,
        "task_state": states,
        "task_restarts": restarts,
    }


#: Bytes of a note's text in a ``note`` record; a longer text is cut to fit with
#: :data:`NOTE_CUT_MARK` at its end (and flag bit 0 set).
NOTE_TEXT_BYTES = 64
NOTE_CUT_MARK = "…"


def _enc_note(t: str, b: dict) -> dict:
    text = str(b.get("text", ""))
    cut = len(text.encode("utf-8")) > NOTE_TEXT_BYTES
    if cut:
        room = NOTE_TEXT_BYTES - len(NOTE_CUT_MARK.encode("utf-8"))
        text = _text_bytes(text, room).decode("utf-8").rstrip() + NOTE_CUT_MARK
    pid = b.get("peer_id") or 0
    return {
        "estimator": b.get("estimator", ""),
        "code": b.get("code", ""),
        "peer_id": pid,
        "flags": _bits(cut),
        "text": text,
    }


def _v1_note(v: dict) -> dict:
    """A note of the first layout: no partner, and its text taken as cut when it filled the
    64-byte field (the flight kept the first bytes, never half a character)."""
    n = len(v.get("text", "").encode("utf-8"))
    cut = n >= 64 if v.get("text", "").isascii() else n > 60
    return {**v, "peer_id": 0, "flags": _bits(cut)}


#: Bytes of a housekeeping reading kept in an ``hk`` record (an OPC-N3 histogram is 86, its
#: configuration block 168; an EMUS sentence of a 12-cell pack under 60).
HK_RAW_MAX = 200


def _enc_hk(t: str, b: dict) -> dict:
    raw = b.get("raw")
    if not isinstance(raw, (bytes, bytearray)):
        raw = b""
    kind = b.get("kind")
    return {
        "t_sc_s": b["t_sc_s"],
        "device": b.get("device", ""),
        "record": b.get("record", ""),
        "device_kind": HK_DEVICE_KINDS.index(kind) + 1 if kind in HK_DEVICE_KINDS else 0,
        "flags": _bits(b.get("solicited", True), len(raw) > HK_RAW_MAX),
        "n_raw": len(raw),
        "raw": bytes(raw[:HK_RAW_MAX]),
    }


_F = Field
#: Bytes of a note's code in a ``note`` record: every declared code fits whole (tested).
NOTE_CODE_BYTES = 32

_ORBIT_FIELDS = (
    _F("r_ecef_m", "i", 3, 0.01, "position, ECEF, m"),
    _F("v_ecef_m_s", "i", 3, 1e-5, "velocity relative to ECEF, m/s"),
    _F("sigma_r_m", "e", 3, None, "1σ position per ECEF axis, m"),
    _F("sigma_v_m_s", "e", 3, None, "1σ velocity per ECEF axis, m/s"),
    _F("n_used", "H", meaning="fixes used so far"),
    _F("n_rejected", "H", meaning="fixes rejected so far"),
    _F("n_invalid", "H", meaning="fixes flagged invalid so far"),
    _F("flags", "B", meaning="bit 0 propagated (not at a sensor sample time)"),
)
_ATTITUDE_FIELDS = (
    _F("q_body_to_gcrs", "h", 4, 1 / 32767, "quaternion w, x, y, z, body -> GCRS (renormalise)"),
    _F("rate_body_rad_s", "e", 3, None, "angular rate, body axes, rad/s"),
    _F("gyro_bias_rad_s", "e", 3, None, "gyro bias, body axes, rad/s"),
    _F("sigma_att_rad", "e", 3, None, "1σ attitude error about body axes, rad"),
    _F("sigma_bias_rad_s", "e", 3, None, "1σ gyro bias, rad/s"),
    _F("mag_bias_body_ut", "e", 3, None, "magnetometer hard-iron bias, body axes, µT"),
    _F("sigma_mag_bias_ut", "e", 3, None, "1σ magnetometer bias, µT"),
    _F("sun_faces_used", "B", meaning="sun faces used in the last update"),
    _F("flags", "B", meaning="bit 0 propagated, 1 valid_attitude, 2 has_position, 3 in_eclipse"),
)
_FORMATION_FIELDS = (
    _F("peer_id", "B", meaning="peer radio id"),
    _F("dr_ecef_m", "i", 3, 1e-3, "peer minus own position, ECEF, m"),
    _F("dv_ecef_m_s", "i", 3, 1e-6, "peer minus own velocity, ECEF, m/s"),
    _F("sigma_dr_m", "e", 3, None, "1σ relative position per ECEF axis, m"),
    _F("sigma_dv_m_s", "e", 3, None, "1σ relative velocity per ECEF axis, m/s"),
    _F("sigma_los_m", "e", meaning="1σ of the line-of-sight component, m"),
    _F("range_bias_m", "e", meaning="estimated range bias, m"),
    _F("sigma_range_bias_m", "e", meaning="1σ range bias, m"),
    _F("n_ranges_used", "H", meaning="ranges used so far"),
    _F("n_ranges_rejected", "H", meaning="ranges rejected so far"),
    _F(
        "flags",
        "B",
        meaning="bit 0 propagated, 1 acquiring (range-only: the prior's estimate), "
        "2 ambiguous (range-only: kept orbits further apart than the validity bound)",
    ),
)
_QUALITY = _F(
    "quality",
    "B",
    meaning="its quality at its epoch: index into the status file's ESTIMATE_QUALITY (1 ok, 5 uncertain, "
    "6 rates_only, 7 acquiring, 8 ambiguous; 0 not recorded)",
)

#: Every record kind, declared once.  Codes are never reused and a code's layout never
#: changes (a changed layout is a new kind).  A driver adds its kind here with the next free
#: code, e.g. for the channel ``imu`` carrying ``imu_samples`` messages::
#:
#:     RecordKind("imu", 18, ("imu",), ("imu_samples",),
#:                (Field("rate_imu_rad_s", "e", 3, None, "angular rate, IMU axes, rad/s"), ...),
#:                _enc_imu, "an IMU sample", period_s=60.0)
#:
#: with ``_enc_imu(msg_type, body) -> {field: value, ..., "t_sc_s": record time}`` (or None to
#: skip the message); then ``scripts/interface_tables.py --write``.  The writer subscribes to
#: the new channel by itself (:func:`channels`), the ground decodes and tabulates it.
KINDS: tuple[RecordKind, ...] = (
    RecordKind(
        "clock_map",
        1,
        ("meas",),
        ("clock_map",),
        (
            _F("gps_minus_sc_s", "d", meaning="GPS time - spacecraft time at t_ref, s"),
            _F("drift", "f", meaning="clock drift (dimensionless)"),
            _F("t_ref_sc_s", "d", meaning="reference epoch of the map, spacecraft s"),
            _F("n_pairs", "H", meaning="fix pairs fitted"),
            _F("residual_rms_s", "f", meaning="RMS residual of the fit, s"),
            _F("utc_minus_sc_s", "d", meaning="UTC - spacecraft clock, s"),
        ),
        _enc_clock_map,
        "spacecraft clock -> GPS time map of the run (record time: when received)",
        period_s=None,
        on_change=("gps_minus_sc_s", "drift", "t_ref_sc_s", "n_pairs"),
        context=True,
    ),
    RecordKind(
        "ingest",
        2,
        ("meas",),
        ("ingest_stats",),
        (
            _F("source", "B", meaning="1 sense.bin, 2 range files"),
            _F("present", "B", meaning="1 if the input existed"),
            _F("bytes_total", "I", meaning="bytes read"),
            _F("bytes_skipped", "I", meaning="bytes skipped"),
            _F("records", "I", meaning="records decoded"),
            _F("records_skipped", "I", meaning="records lost (estimate)"),
            _F("skip_events", "I", meaning="skipped regions"),
            _F("files", "H", meaning="range files read"),
        ),
        _enc_ingest,
        "decode statistics of one input source",
        period_s=None,
        key="source",
        on_change=("source", "present", "bytes_total", "bytes_skipped", "records", "files"),
        context=True,
    ),
    RecordKind(
        "batch_summary",
        3,
        ("meas",),
        ("batch_end",),
        (
            _F("n_sensor", "I", meaning="sensor samples"),
            _F("n_gps_fix", "I", meaning="own fixes"),
            _F("n_gps_fix_valid", "I", meaning="usable own fixes"),
            _F("n_peer_fix", "I", meaning="peer fixes"),
            _F("n_range", "I", meaning="ranges"),
            _F("t_sc_first_s", "d", meaning="first measurement, spacecraft s"),
            _F("t_sc_last_s", "d", meaning="last measurement, spacecraft s"),
        ),
        _enc_batch_end,
        "totals of the input batch (ingest's batch_end)",
        period_s=None,
        on_change=("n_sensor", "n_gps_fix", "n_peer_fix", "n_range", "t_sc_first_s", "t_sc_last_s"),
        context=True,
    ),
    RecordKind(
        "orbit_v1",
        4,
        ("orbit",),
        ("orbit_estimate",),
        _ORBIT_FIELDS,
        _enc_orbit,
        "orbit estimate, first layout",
        period_s=ESTIMATE_PERIOD_S["orbit"],
        final=True,
        enabled=False,
        superseded_by="orbit",
        upgrade=_v1_orbit,
    ),
    RecordKind(
        "attitude_v1",
        5,
        ("attitude",),
        ("attitude_estimate",),
        _ATTITUDE_FIELDS,
        _enc_attitude,
        "attitude estimate, first layout",
        period_s=ESTIMATE_PERIOD_S["attitude"],
        final=True,
        enabled=False,
        superseded_by="attitude",
        upgrade=_v1_attitude,
    ),
    RecordKind(
        "formation_v1",
        6,
        ("formation", "formation_2"),
        ("formation_estimate",),
        _FORMATION_FIELDS,
        _enc_formation,
        "relative-state estimate of one peer, first layout",
        period_s=ESTIMATE_PERIOD_S["formation"],
        key="peer_id",
        final=True,
        enabled=False,
        superseded_by="formation",
        upgrade=_v1_formation,
    ),
    RecordKind(
        "gps_fix",
        7,
        ("meas",),
        ("gps_fix",),
        (
            _F("peer_id", "h", meaning="0 own fix, else the peer's radio id (-1 unknown peer)"),
            _F("t_gps_s", "d", meaning="GPS time of the fix, s"),
            _F("pos_ecef_m", "i", 3, 0.01, "position, ECEF, m"),
            _F("vel_ecef_m_s", "i", 3, 1e-5, "velocity, ECEF, m/s"),
            _F("pos_sigma_m", "e", 3, None, "receiver 1σ position, m"),
            _F("vel_sigma_m_s", "e", 3, None, "receiver 1σ velocity, m/s"),
            _F("solution_status", "B", meaning="NovAtel position solution status"),
            _F("time_status", "B", meaning="NovAtel time status"),
            _F("sats_in_solution", "B", meaning="satellites in solution"),
            _F("flags", "B", meaning="bit 0 valid (usable fix)"),
        ),
        _enc_gps_fix,
        "a GPS fix as ingest read it (own, or a peer's from the range files)",
        period_s=300.0,
        key="peer_id",
    ),
    RecordKind(
        "range",
        8,
        ("meas",),
        ("range",),
        (
            _F("peer_id", "B", meaning="peer radio id"),
            _F("range_m", "i", 1, 1e-3, "measured range (calibrated), m"),
            _F("rssi_dbm", "e", meaning="radio RSSI, dBm"),
            _F("fei_hz", "e", meaning="radio frequency error, Hz"),
            _F("flags", "B", meaning="bit 0 valid (raw result a distance)"),
        ),
        _enc_range,
        "an inter-satellite range",
        period_s=300.0,
        key="peer_id",
    ),
    RecordKind(
        "sensor",
        9,
        ("meas",),
        ("sensor",),
        (
            _F("mag_ut", "e", 3, None, "magnetometer, IMU axes, µT"),
            _F("gyro_deg_s", "e", 3, None, "gyro, IMU axes, deg/s"),
            _F("sun_lux", "e", 6, 10.0, "sun sensors +X +Y +Z -X -Y -Z, lux"),
            _F("sun_saturated", "B", meaning="bit k: face k saturated"),
        ),
        _enc_sensor,
        "a sensor sample as ingest read it",
        period_s=600.0,
    ),
    RecordKind(
        "health",
        10,
        ("health",),
        ("health",),
        (
            _F("uptime_s", "f", meaning="seconds since main.py started"),
            _F("flags", "B", meaning="bit 0 stopping"),
            _F("n_tasks", "B", meaning="tasks in the supervisor's table"),
            _F("task_id", "B", HEALTH_SLOTS, None, "task ids (docs/interface.md task table; 0 = empty)"),
            _F("task_state", "B", HEALTH_SLOTS, None, "index into the status file's TASK_STATES"),
            _F("task_restarts", "B", HEALTH_SLOTS, None, "restarts so far (saturates at 255)"),
        ),
        _enc_health,
        "the supervisor's health table",
        period_s=60.0,
        on_change=("flags", "n_tasks", "task_id", "task_state", "task_restarts"),
        final=True,
    ),
    RecordKind(
        "note_v1",
        11,
        ("orbit", "attitude", "formation", "formation_2"),
        ("estimator_note",),
        (
            _F("estimator", "s", 10, None, "estimator name"),
            _F("code", "s", 22, None, "note code (e.g. no_fix), cut at 22 bytes"),
            _F("text", "s", 64, None, "the note's text, cut at 64 bytes"),
        ),
        _enc_note,
        "an estimator's note, first layout",
        period_s=600.0,
        key="code",
        regular=False,
        enabled=False,
        superseded_by="note",
        upgrade=_v1_note,
    ),
    RecordKind(
        "hk",
        12,
        ("hk",),
        ("hk_reading",),
        (
            _F("device", "s", 12, None, "configured device name"),
            _F("device_kind", "B", meaning="position in pygnc.device_kinds.HK_DEVICE_KINDS + 1 (1 emus_bms, 2 opc_n3)"),
            _F("record", "s", 10, None, "EMUS sentence name or OPC-N3 record"),
            _F("flags", "B", meaning="bit 0 solicited, bit 1 raw cut at 200 bytes"),
            _F("n_raw", "H", meaning="length of the reading's bytes"),
            _F("raw", "y", HK_RAW_MAX, None, "the checksum-verified bytes the reading was decoded from"),
        ),
        _enc_hk,
        "a housekeeping reading, as the device sent it (decoded on the ground by the driver's codec)",
        period_s=3600.0,
        key=("device", "record"),
    ),
    RecordKind(
        "orbit",
        13,
        ("orbit",),
        ("orbit_estimate",),
        _ORBIT_FIELDS + (_QUALITY,),
        _enc_orbit,
        "orbit estimate at a sensor sample time (or propagated to now)",
        period_s=ESTIMATE_PERIOD_S["orbit"],
        final=True,
    ),
    RecordKind(
        "attitude",
        14,
        ("attitude",),
        ("attitude_estimate",),
        _ATTITUDE_FIELDS + (_QUALITY,),
        _enc_attitude,
        "attitude estimate",
        period_s=ESTIMATE_PERIOD_S["attitude"],
        final=True,
    ),
    RecordKind(
        "formation",
        15,
        ("formation", "formation_2"),
        ("formation_estimate",),
        _FORMATION_FIELDS
        + (
            _QUALITY,
            _F(
                "ambiguity_m",
                "f",
                meaning="range-only: how far apart the kept orbits come over an orbit, m (0: one orbit)",
            ),
            _F("n_orbits", "B", meaning="orbits kept (range-only: the ranges cannot tell them apart yet; else 1)"),
            _F("best_weight", "e", meaning="the weight of the most likely kept orbit (1: one orbit)"),
        ),
        _enc_formation,
        "relative-state estimate of one peer",
        period_s=ESTIMATE_PERIOD_S["formation"],
        key="peer_id",
        final=True,
    ),
    RecordKind(
        "note",
        16,
        ("orbit", "attitude", "formation", "formation_2"),
        ("estimator_note",),
        (
            _F("estimator", "s", 10, None, "estimator name"),
            _F("code", "s", NOTE_CODE_BYTES, None, "note code (the table in docs/operations.md; each fits whole)"),
            _F("peer_id", "B", meaning="the partner the note is about (0: none)"),
            _F("flags", "B", meaning=f"bit 0 text cut (it ends with {NOTE_CUT_MARK})"),
            _F("text", "s", NOTE_TEXT_BYTES, None, f"the note's text; a longer one cut, ending with {NOTE_CUT_MARK}"),
        ),
        _enc_note,
        "an estimator's note (record time: when received)",
        period_s=600.0,
        key=("estimator", "code", "peer_id"),
        regular=False,
    ),
    RecordKind(
        "partner_orbit",
        17,
        ("formation", "formation_2"),
        ("formation_estimate",),
        (
            _F("peer_id", "B", meaning="peer radio id"),
            _F(
                "index",
                "B",
                meaning="which kept orbit: 0 the published filter's, then its alternatives (the last may be "
                "the first's mirror image in the own orbit plane, kept while the prior cannot exclude it)",
            ),
            _F("n_orbits", "B", meaning="orbits kept"),
            _F("weight", "f", meaning="its weight (posterior probability)"),
            _F("dr_ecef_m", "i", 3, 1e-3, "peer minus own position in this orbit, ECEF, m"),
            _F("dv_ecef_m_s", "i", 3, 1e-6, "peer minus own velocity in this orbit, ECEF, m/s"),
            _F("sigma_dr_m", "e", 3, None, "its 1σ relative position per ECEF axis, m"),
            _F("sigma_dv_m_s", "e", 3, None, "its 1σ relative velocity per ECEF axis, m/s"),
            _F("flags", "B", meaning="bit 0 propagated (not at a sensor sample time)"),
        ),
        _enc_partner_orbits,
        "the orbits a range-only partner keeps, one record each, while it keeps more than one (once acquired)",
        period_s=600.0,
        key="peer_id",
        regular=False,
        each="kept orbit",
    ),
)

KINDS_BY_NAME: dict[str, RecordKind] = {k.name: k for k in KINDS}
KINDS_BY_CODE: dict[int, RecordKind] = {k.code: k for k in KINDS}
if len(KINDS_BY_NAME) != len(KINDS) or len(KINDS_BY_CODE) != len(KINDS):
    raise ValueError("record kind names and codes must be unique")
for _k in KINDS:
    if _k.superseded_by is not None and (_k.enabled or KINDS_BY_NAME[_k.superseded_by].superseded_by is not None):
        raise ValueError(f"record kind {_k.name}: a superseded kind is never written and names a current one")


def current_kinds() -> tuple[RecordKind, ...]:
    """The kinds a writer may record (every declared kind but the superseded layouts)."""
    return tuple(k for k in KINDS if k.superseded_by is None)


def default_kinds() -> tuple[str, ...]:
    """Names of the kinds recorded when Config.batch_kinds is empty."""
    return tuple(k.name for k in KINDS if k.enabled)


def channels() -> tuple[str, ...]:
    """Bus channels the writer subscribes to: those of every kind, in declaration order."""
    out: list[str] = []
    for k in KINDS:
        out.extend(c for c in k.channels if c not in out)
    return tuple(out)


# --------------------------------------------------------------------------- records
RECORD_SYNC = 0xC7
_REC_HEAD = struct.Struct("<BBBIH")
RECORD_HEAD_SIZE = _REC_HEAD.size  # 9
RECORD_OVERHEAD = RECORD_HEAD_SIZE + 2


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (check value 0x29B1 for b"123456789")."""
    return binascii.crc_hqx(data, 0xFFFF)


def frame_record(code: int, t_sc_s: float, payload: bytes) -> bytes:
    s, ms = split_time(t_sc_s)
    head = _REC_HEAD.pack(RECORD_SYNC, code, len(payload), s, ms)
    body = head + payload
    return body + struct.pack("<H", crc16(body))


def encode_record(kind: RecordKind, t_sc_s: float, values: dict) -> bytes:
    """One framed record of *kind* at *t_sc_s* (ValueError for a time outside the uint32 range)."""
    return frame_record(kind.code, t_sc_s, kind.pack(values))


@dataclass
class Record:
    offset: int  # in the buffer it was decoded from
    code: int
    t_sc_s: float
    payload: bytes
    raw: bytes  # the whole framed record

    @property
    def kind(self) -> RecordKind | None:
        return KINDS_BY_CODE.get(self.code)

    def values(self) -> dict:
        """Field values in physical units, in the layout of the kind it is read as (a
        superseded layout's record upgraded: the fields it lacks unknown); KeyError for a
        kind this build does not know."""
        kind = KINDS_BY_CODE[self.code]
        v = kind.unpack(self.payload)
        return kind.upgrade(v) if kind.upgrade is not None else v


@dataclass
class RecordStats:
    bytes_total: int = 0
    bytes_skipped: int = 0  # bytes outside intact records
    records: int = 0  # intact records (known and unknown kinds)
    records_bad: int = 0  # sync found but length / time / CRC wrong
    unknown_kind: int = 0  # intact records of a kind this build does not know
    skip_events: int = 0  # contiguous skipped regions
    torn_tail: bool = False  # the data ends inside a record (power cut mid-write)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def decode_records(data: bytes, start: int = 0) -> tuple[list[Record], RecordStats]:
    """Every intact record in ``data[start:]``; never raises.

    A sync byte whose record would run past the end is a torn tail (a power cut mid-write)
    if no intact record follows it; candidate syncs inside that tail are not counted as
    corrupt records.
    """
    data = bytes(data)
    n = len(data)
    st = RecordStats(bytes_total=max(0, n - start))
    out: list[Record] = []
    pos = start
    skipping = False
    bad_before = bad_after = 0  # corrupt candidates in the current skipped region
    overrun_at = None  # first candidate of the region that runs past the end

    def skip(to: int) -> None:
        nonlocal skipping
        skipping = True
        st.bytes_skipped += to - pos

    def bad() -> None:
        nonlocal bad_before, bad_after
        if overrun_at is None:
            bad_before += 1
        else:
            bad_after += 1

    sync = bytes([RECORD_SYNC])
    while pos < n:
        if data[pos] != RECORD_SYNC:
            i = data.find(sync, pos)
            skip(n if i < 0 else i)
            if i < 0:
                break
            pos = i
        if pos + RECORD_OVERHEAD > n:
            if overrun_at is None:
                overrun_at = pos
            skip(n)
            break
        _, code, length, s, ms = _REC_HEAD.unpack_from(data, pos)
        known = KINDS_BY_CODE.get(code)
        end = pos + RECORD_HEAD_SIZE + length + 2
        if (known is not None and length != known.size) or ms > 999:
            bad()
        elif end > n:
            if overrun_at is None:
                overrun_at = pos
            else:
                bad_after += 1
        elif struct.unpack_from("<H", data, end - 2)[0] != crc16(data[pos : end - 2]):
            bad()
        else:
            if skipping:
                st.skip_events += 1
                st.records_bad += bad_before + bad_after + (overrun_at is not None)
                skipping, bad_before, bad_after, overrun_at = False, 0, 0, None
            out.append(Record(pos, code, s + ms / 1000.0, data[pos + RECORD_HEAD_SIZE : end - 2], data[pos:end]))
            st.records += 1
            if known is None:
                st.unknown_kind += 1
            pos = end
            continue
        skip(pos + 1)
        pos += 1
    if skipping:
        st.skip_events += 1
        st.records_bad += bad_before
        st.torn_tail = overrun_at is not None
    return out, st


@dataclass
class BatchFile:
    header: dict | None  # None: no valid header (records are still decoded)
    records: list[Record]
    stats: RecordStats


def decode_batch(data: bytes) -> BatchFile:
    """Header and every intact record of a batch file (or a ``.part``); never raises."""
    header = decode_header(data)
    records, stats = decode_records(data, HEADER_SIZE if header is not None else 0)
    return BatchFile(header, records, stats)


def ranges_text(numbers: Iterable[int]) -> str:
    """``1-3, 7`` for [1, 2, 3, 7] (sorted input)."""
    out: list[str] = []
    start: int | None = None
    prev: int | None = None
    for s in numbers:
        if start is not None and prev is not None and s == prev + 1:
            prev = s
            continue
        if start is not None:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
        start = prev = s
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ", ".join(out)


def _u(v: float, bits: int) -> int:
    return int(min(max(int(v), 0), (1 << bits) - 1))
