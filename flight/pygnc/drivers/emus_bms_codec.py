"""EMUS G1 BMS serial protocol (v2.0.x): the sentence codec - bytes in, values out; no I/O, no clock.

Facts and sources: ``docs/interface.md`` ("EMUS G1 BMS"), taken from rohsyl/emus-bms
(f9da887) and wrkerr9/bms_1 (field semantics only) as summarised in the project's protocol
notes; the official PDF body was not available, so ST1, OT1 and DT1 details are marked
uncertain there.

Wire format: ASCII sentences ``NAME,f1,...,fN,CC`` + CR LF.  ``NAME`` is three characters,
``CC`` two hex digits of CRC-8/MAXIM (poly 0x31 reflected, init 0) over the text from the
first letter of the name through the comma before ``CC``.  Numeric fields are hex text
(up to :data:`MAX_NUMBER_DIGITS` digits, unsigned ones below 2**63, so every value fits an
int64 downstream); array fields are runs of hex pairs; fields may be empty (no cell
communication); cell counts and indices are at most :data:`MAX_CELLS`.  A request is
CR LF ``NAME,?,CC`` CR LF.

:func:`encode_request` and :func:`encode_sentence` (simulators and tests) write them;
:class:`SentenceFramer` reads them incrementally (a corrupt sentence costs only itself:
lines are cut at CR/LF, a line that fails its CRC is searched for a later sentence start,
an over-long run without a line end is dropped, all counted); :func:`decode_sentence` gives
the fields in physical units (units in the names).  The driver is :mod:`.emus_bms`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import CodecError

#: The BMS's serial line rate (8N1).
BAUDRATE = 57600

#: What a request-mode poll asks for by default (the groups follow their summary so the
#: cell count is known when their reply is counted).
DEFAULT_SENTENCES = ("BV1", "BV2", "BT1", "BT2", "BT3", "BT4", "BB1", "BB2", "BC1", "CV1", "ST1", "OT1", "DT1")

# ------------------------------------------------------------------------------------------
# CRC-8/MAXIM (Dallas 1-Wire): poly 0x31, reflected (0x8C), init 0, no final xor.
# Check value for b"123456789": 0xA1.
# ------------------------------------------------------------------------------------------


def _crc8_table() -> bytes:
    table = bytearray(256)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x8C if c & 1 else c >> 1
        table[i] = c
    return bytes(table)


_CRC8_TABLE = _crc8_table()


def crc8_maxim(data: bytes) -> int:
    crc = 0
    t = _CRC8_TABLE
    for b in data:
        crc = t[crc ^ b]
    return crc


# ------------------------------------------------------------------------------------------
# Encoding (requests; sentences for simulators and tests)
# ------------------------------------------------------------------------------------------

_NAME_RE = re.compile(rb"[A-Z]{2}[A-Z0-9]")


def _check_name(name: str) -> bytes:
    b = name.encode("ascii")
    if len(b) != 3 or not _NAME_RE.fullmatch(b):
        raise ValueError(f"sentence name {name!r} is not 3 characters (2 letters + letter/digit)")
    return b


def encode_request(name: str) -> bytes:
    """The bytes that ask the BMS for sentence *name*: CR LF ``NAME,?,CC`` CR LF."""
    body = _check_name(name) + b",?,"
    return b"\r\n" + body + b"%02X" % crc8_maxim(body) + b"\r\n"


def encode_sentence(name: str, fields: list[str] | tuple[str, ...]) -> bytes:
    """One sentence line with its CRC and CR LF (fields are already formatted text)."""
    body = _check_name(name) + b","
    for f in fields:
        fb = f.encode("ascii")
        if b"," in fb or b"\r" in fb or b"\n" in fb:
            raise ValueError(f"field {f!r} holds a separator")
        body += fb + b","
    return body + b"%02X" % crc8_maxim(body) + b"\r\n"


def hex_field(value: int | None, n_bytes: int = 1) -> str:
    """Unsigned *value* as 2 * *n_bytes* upper-case hex digits ('' for None)."""
    if value is None:
        return ""
    if not 0 <= value < 1 << (8 * n_bytes):
        raise ValueError(f"{value} does not fit {n_bytes} bytes")
    return f"{value:0{2 * n_bytes}X}"


def signed_hex_field(value: int, n_bytes: int) -> str:
    """Two's-complement *value* in 2 * *n_bytes* hex digits."""
    bits = 8 * n_bytes
    if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
        raise ValueError(f"{value} does not fit a signed {n_bytes}-byte field")
    return f"{value & ((1 << bits) - 1):0{2 * n_bytes}X}"


def hex_array_field(values: list[int]) -> str:
    return "".join(f"{v:02X}" for v in values)


# ------------------------------------------------------------------------------------------
# Parsing lines
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sentence:
    name: str
    fields: tuple[str, ...]
    raw: bytes  # the line as received, without CR/LF


class SentenceError(CodecError):
    """A line that is not a valid sentence; ``reason`` is a counter name."""

    def __init__(self, reason: str, text: str):
        super().__init__(text)
        self.reason = reason


_LINE_RE = re.compile(rb"([A-Z]{2}[A-Z0-9]),((?:[\x20-\x7E]*,)?)([0-9A-Fa-f]{2})")
_START_RE = re.compile(rb"[A-Z]{2}[A-Z0-9],")


def parse_line(line: bytes) -> Sentence:
    """One line (without CR/LF) -> :class:`Sentence`; raises :class:`SentenceError`."""
    m = _LINE_RE.fullmatch(line)
    if m is None:
        raise SentenceError("malformed", f"not a sentence: {line[:40]!r}")
    body_end = m.start(3)
    if crc8_maxim(line[:body_end]) != int(m.group(3), 16):
        raise SentenceError("bad_crc", f"CRC mismatch: {line[:40]!r}")
    inner = m.group(2)
    fields = tuple(inner[:-1].decode("ascii").split(",")) if inner else ()
    return Sentence(m.group(1).decode("ascii"), fields, bytes(line))


@dataclass
class FramerCounters:
    lines: int = 0
    sentences: int = 0
    bad_crc: int = 0
    malformed: int = 0
    overlong: int = 0
    recovered: int = 0  # sentences found after garbage on the same line
    bytes_dropped: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class SentenceFramer:
    """Incremental sentence reader: :meth:`feed` bytes, get the valid sentences.

    Never raises on input.  Lines end at CR or LF (any mix); empty lines are ignored.  A
    line that fails is searched for a later ``NAME,`` start (a sentence that lost its line
    end to corruption does not take the next one with it); what cannot be used is counted.
    A line longer than *max_line* bytes is dropped up to the next line end.
    """

    def __init__(self, max_line: int = 512):
        self.max_line = max_line
        self.counters = FramerCounters()
        self._buf = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[Sentence]:
        buf = self._buf
        buf += data
        out: list[Sentence] = []
        last = max(buf.rfind(b"\n"), buf.rfind(b"\r"))
        if last >= 0:
            chunk = bytes(buf[: last + 1])
            del buf[: last + 1]
            for line in chunk.replace(b"\r", b"\n").split(b"\n"):
                if self._discarding:  # tail of an over-long line
                    self.counters.bytes_dropped += len(line)
                    self._discarding = False
                    continue
                if line:
                    self._line(line, out)
        if len(buf) > self.max_line:
            self.counters.overlong += 1
            self.counters.bytes_dropped += len(buf)
            buf.clear()
            self._discarding = True
        return out

    def _line(self, line: bytes, out: list[Sentence]) -> None:
        c = self.counters
        c.lines += 1
        if len(line) > self.max_line:
            c.overlong += 1
            c.bytes_dropped += len(line)
            return
        try:
            out.append(parse_line(line))
            c.sentences += 1
            return
        except SentenceError as exc:
            reason = exc.reason
        # Resynchronise inside the line: a later sentence start may begin a good sentence.
        for m in _START_RE.finditer(line, 1):
            try:
                s = parse_line(line[m.start() :])
            except SentenceError:
                continue
            out.append(s)
            c.sentences += 1
            c.recovered += 1
            c.bytes_dropped += m.start()
            return
        if reason == "bad_crc":
            c.bad_crc += 1
        else:
            c.malformed += 1
        c.bytes_dropped += len(line)


# ------------------------------------------------------------------------------------------
# Sentence fields in physical units
# ------------------------------------------------------------------------------------------


#: Widest numeric field accepted, hex digits: 8 bytes, twice the widest field known (BC1's
#: charge; the sources give no widths).  A wider one is a bad field: its value would not fit
#: an int64 (msgpack, the archive) nor, past 256 digits, a float.
MAX_NUMBER_DIGITS = 16
#: Largest unsigned field value accepted (int64's largest).
MAX_UINT = (1 << 63) - 1
#: Most cells a pack reports: the limit of cell counts, cell indices and group sizes (1-byte
#: fields as the simulated pack writes them; the ``cells`` setting's limit too).
MAX_CELLS = 255

_NUMBER_RE = re.compile(rf"[0-9A-Fa-f]{{1,{MAX_NUMBER_DIGITS}}}")
_ARRAY_RE = re.compile(r"(?:[0-9A-Fa-f]{2})*")


def _hex(text: str) -> int:
    """Hex digits only (``int`` alone also takes a sign, ``0x``, ``_`` and blanks)."""
    if not _NUMBER_RE.fullmatch(text):
        raise ValueError(f"{text[:24]!r} is not a number of 1-{MAX_NUMBER_DIGITS} hex digits")
    return int(text, 16)


def _uint(text: str, max_value: int = MAX_UINT) -> int | None:
    if text == "":
        return None
    v = _hex(text)
    if v > max_value:
        raise ValueError(f"{text[:24]!r} is above {max_value}")
    return v


def parse_signed(text: str) -> int | None:
    """Two's-complement hex of 1-16 digits (4 bits per digit); '' -> None; ValueError else."""
    if text == "":
        return None
    v = _hex(text)
    bits = 4 * len(text)
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


def _scaled(text: str, scale: float, offset: int = 0) -> float | None:
    v = _uint(text)
    return None if v is None else (v + offset) * scale


def _array(text: str, scale: float, offset: int = 0) -> list[float]:
    if not _ARRAY_RE.fullmatch(text):
        raise ValueError(f"{text[:24]!r} is not a run of hex pairs")
    return [(int(text[i : i + 2], 16) + offset) * scale for i in range(0, len(text), 2)]


_CELL_V = (0.01, 200)  # cell voltage: (raw + 200) * 0.01 V
_TEMP = (1.0, -100)  # temperature: raw - 100 deg C
_BAL = (100.0 / 255.0, 0)  # balancing rate: raw * 100/255 %

#: Bits of ST1 field 5 (which measurement groups are valid).
ST1_VALIDITY_BITS = {
    0: "cell_voltages",
    1: "module_temperatures",
    2: "balancing_rates",
    3: "live_cell_count",
    4: "cell_temperatures",
}
#: Bits of ST1 field 6 (protection events).
ST1_PROTECTION_BITS = {
    0: "under_voltage",
    1: "over_voltage",
    2: "discharge_over_current",
    3: "charge_over_current",
    4: "cell_module_overheat",
    5: "leakage",
    6: "no_cell_communication",
    11: "cell_overheat",
}
#: Bits of ST1 field 7 (power reduction reasons).
ST1_POWER_REDUCTION_BITS = {
    0: "low_voltage",
    1: "high_current",
    2: "high_module_temperature",
    5: "high_cell_temperature",
}
#: Bits of ST1 field 8 (pin functions active), in the order wrkerr9 lists them (uncertain).
ST1_PIN_FUNCTIONS = (
    "no_function",
    "speed_sensor",
    "fast_charge_switch",
    "ignition_key",
    "mains_ac_sense",
    "heater",
    "buzzer",
    "battery_low",
    "charging_indication",
    "charger_enable",
    "state_of_charge",
    "contactor",
    "fan",
    "current_sensor",
    "leakage_sensor",
    "power_reduction",
    "charging_interlock",
    "analogue_charger_control",
    "zvu_boost",
    "zvu_slow",
    "zvu_buffer",
    "bms_failure",
    "equalisation",
    "dc_dc_control",
    "esm_rectifier_current_limit",
    "contactor_precharge",
    "reserved_26",
)
ST1_PIN_BITS = dict(enumerate(ST1_PIN_FUNCTIONS))
#: ST1 field 1.
CHARGING_STAGES = ("disconnected", "pre_heating", "pre_charging", "main_charging", "balancing", "finished", "error")
#: OT1 output bits (uncertain, from wrkerr9): field 1 and field 3.
OT1_CHARGER_BITS = {6: "charger"}
OT1_OUTPUT_BITS = {3: "heater", 4: "battery_low", 5: "buzzer", 6: "charge_indication"}


def flag_names(value: int | None, bits: dict[int, str]) -> list[str]:
    """Names of the set bits of *value* (unnamed bits as ``bit<N>``)."""
    if value is None:
        return []
    out = []
    for b in range(value.bit_length()):
        if value >> b & 1:
            out.append(bits.get(b, f"bit{b}"))
    return out


#: Sentences whose reply is one sentence per cell group, and the summary sentence that
#: gives the number of cells the groups cover.
GROUP_SENTENCES = {"BV2": "BV1", "BT2": "BT1", "BT4": "BT3", "BB2": "BB1"}
#: Every sentence this codec decodes.
KNOWN_SENTENCES = ("BB1", "BB2", "BC1", "BT1", "BT2", "BT3", "BT4", "BV1", "BV2", "CV1", "DT1", "OT1", "ST1", "VR1")


def _f(fields: tuple[str, ...], i: int) -> str:
    return fields[i] if i < len(fields) else ""


def _summary(fields: tuple[str, ...], kind: str, scale_offset: tuple[float, int]) -> dict:
    s, o = scale_offset
    return {
        "n_cells": _uint(_f(fields, 0), MAX_CELLS),
        f"min_{kind}": _scaled(_f(fields, 1), s, o),
        f"max_{kind}": _scaled(_f(fields, 2), s, o),
        f"avg_{kind}": _scaled(_f(fields, 3), s, o),
    }


def _group(fields: tuple[str, ...], kind: str, scale_offset: tuple[float, int]) -> dict:
    """One cell group; its cells (first_cell .. first_cell + group_size - 1) must lie within
    0..MAX_CELLS, so a reply's groups never claim more cells than a pack can have."""
    s, o = scale_offset
    first, size = _uint(_f(fields, 1), MAX_CELLS), _uint(_f(fields, 2), MAX_CELLS)
    if first is not None and size is not None and first + size > MAX_CELLS + 1:
        raise ValueError(f"cells {first}..{first + size - 1} are not all within 0..{MAX_CELLS}")
    return {
        "string": _uint(_f(fields, 0)),
        "first_cell": first,
        "group_size": size,
        kind: _array(_f(fields, 3), s, o),
    }


def _bv1(f: tuple[str, ...]) -> dict:
    d = _summary(f, "cell_voltage_v", _CELL_V)
    d["total_voltage_v"] = _scaled(_f(f, 4), 0.01)
    return d


def _bb1(f: tuple[str, ...]) -> dict:
    d = _summary(f, "balancing_pct", _BAL)
    d["balancing_threshold_v"] = _scaled(_f(f, 5), *_CELL_V)
    return d


def _cv1(f: tuple[str, ...]) -> dict:
    cur = parse_signed(_f(f, 1))
    return {"total_voltage_v": _scaled(_f(f, 0), 0.01), "current_a": None if cur is None else cur * 0.1}


def _bc1(f: tuple[str, ...]) -> dict:
    return {"charge_coulomb": _uint(_f(f, 0)), "capacity_coulomb": _uint(_f(f, 1)), "soc_pct": _scaled(_f(f, 2), 0.01)}


# DT1: rohsyl gives the multipliers only; units are the EMUS display units (uncertain).
_DT1 = (
    ("speed_km_h", 0.1),
    ("distance_since_charge_km", 0.01),
    ("momentary_consumption_wh_km", 0.1),
    ("est_distance_left_km", 0.01),
    ("last_charge_energy_wh", 1.0),
    ("last_discharge_energy_wh", 1.0),
    ("last_trip_avg_consumption_wh_km", 0.1),
    ("est_distance_left_last_trip_km", 0.01),
    ("avg_discharge_energy_wh", 1.0),
    ("max_discharge_energy_wh", 1.0),
    ("trip_avg_consumption_wh_km", 0.1),
    ("est_distance_left_avg_km", 0.01),
)


def _dt1(f: tuple[str, ...]) -> dict:
    return {name: _scaled(_f(f, i), scale) for i, (name, scale) in enumerate(_DT1)}


def _ot1(f: tuple[str, ...]) -> dict:
    charger, outputs = _uint(_f(f, 0)), _uint(_f(f, 2))
    return {
        "charger_flags": charger,
        "output_flags": outputs,
        "charger_flag_names": flag_names(charger, OT1_CHARGER_BITS),
        "output_flag_names": flag_names(outputs, OT1_OUTPUT_BITS),
    }


def _vr1(f: tuple[str, ...]) -> dict:
    return {"hardware_type": _f(f, 0), "serial_number": _uint(_f(f, 1)), "firmware_version": _f(f, 2)}


def _st1(f: tuple[str, ...]) -> dict:
    stage = _uint(_f(f, 0))
    validity, protection = _uint(_f(f, 4)), _uint(_f(f, 5))
    reduction, pins = _uint(_f(f, 6)), _uint(_f(f, 7))
    return {
        "charging_stage": stage,
        "charging_stage_name": (CHARGING_STAGES[stage] if stage is not None and stage < len(CHARGING_STAGES) else None),
        "last_charging_error": _uint(_f(f, 1)),
        "last_charging_error_param": _uint(_f(f, 2)),
        "stage_duration_raw": _uint(_f(f, 3)),
        "validity_flags": validity,
        "validity": flag_names(validity, ST1_VALIDITY_BITS),
        "protection_flags": protection,
        "protection": flag_names(protection, ST1_PROTECTION_BITS),
        "power_reduction_flags": reduction,
        "power_reduction": flag_names(reduction, ST1_POWER_REDUCTION_BITS),
        "pin_flags": pins,
        "pins": flag_names(pins, ST1_PIN_BITS),
    }


_DECODERS = {
    "BV1": _bv1,
    "BV2": lambda f: _group(f, "cell_voltage_v", _CELL_V),
    "BT1": lambda f: _summary(f, "module_temp_c", _TEMP),
    "BT2": lambda f: _group(f, "module_temp_c", _TEMP),
    "BT3": lambda f: _summary(f, "cell_temp_c", _TEMP),
    "BT4": lambda f: _group(f, "cell_temp_c", _TEMP),
    "BB1": _bb1,
    "BB2": lambda f: _group(f, "balancing_pct", _BAL),
    "BC1": _bc1,
    "CV1": _cv1,
    "DT1": _dt1,
    "OT1": _ot1,
    "VR1": _vr1,
    "ST1": _st1,
}


def decode_sentence(s: Sentence) -> dict:
    """Fields of *s* in physical units (units in the names); raises :class:`SentenceError`
    (reason ``bad_field``) when a numeric field is not hex, is wider than
    :data:`MAX_NUMBER_DIGITS` or out of its range (above :data:`MAX_UINT`; cell counts,
    indices and group sizes above :data:`MAX_CELLS`).  Missing or empty fields are None; a
    sentence this codec does not know keeps its raw ``fields``."""
    fn = _DECODERS.get(s.name)
    if fn is None:
        return {"fields": list(s.fields)}
    try:
        return fn(s.fields)
    except ValueError as exc:
        raise SentenceError("bad_field", f"{s.name}: {exc}") from None


def decode_record(record: str, raw: bytes) -> dict:
    """Values of a recorded sentence from its checksum-verified bytes (the ground's way back
    from a batch ``hk`` record); raises :class:`SentenceError`."""
    s = parse_line(bytes(raw))
    if s.name != record:
        raise SentenceError("malformed", f"recorded as {record!r} but the bytes are a {s.name} sentence")
    return decode_sentence(s)
