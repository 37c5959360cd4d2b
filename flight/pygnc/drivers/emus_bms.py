"""EMUS G1 BMS serial protocol (v2.0.x): sentence codec, response queue, and the driver.

Facts and sources: ``docs/interface.md`` ("EMUS G1 BMS"), taken from rohsyl/emus-bms
(f9da887) and wrkerr9/bms_1 (field semantics only) as summarised in the project's protocol
notes; the official PDF body was not available, so ST1, OT1 and DT1 details are marked
uncertain there.

Wire format (57600 8N1): ASCII sentences ``NAME,f1,...,fN,CC`` + CR LF.  ``NAME`` is three
characters, ``CC`` two hex digits of CRC-8/MAXIM (poly 0x31 reflected, init 0) over the
text from the first letter of the name through the comma before ``CC``.  Numeric fields are
hex text of any width; array fields are runs of hex pairs; fields may be empty (no cell
communication).  A request is CR LF ``NAME,?,CC`` CR LF.

Layers:

* pure codec - :func:`crc8_maxim`, :func:`encode_request`, :func:`encode_sentence`,
  :func:`parse_line`, :class:`SentenceFramer` (incremental; a corrupt sentence costs only
  itself: lines are cut at CR/LF, a line that fails its CRC is searched for a later sentence
  start, an over-long run without a line end is dropped), :func:`decode_sentence` (fields in
  physical units, units in the names);
* :class:`ResponseQueue` - request mode: matches replies to requests by sentence name in
  whatever order they arrive, knows how many sentences a multi-sentence reply spans (from
  the pack's cell count, learned from the summary sentences, or configured) and times each
  request out;
* :class:`EmusBms` - the driver over a :class:`~pygnc.drivers.link.SerialLink`,
  request or broadcast mode, non-blocking (call :meth:`EmusBms.service` when the port is
  readable or a deadline passes); :meth:`EmusBms.read_blocking` for tools and tests.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from .readings import Reading
from .link import LinkLost, SerialLink

BAUDRATE = 57600

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


class SentenceError(ValueError):
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
    recovered: int = 0       # sentences found after garbage on the same line
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
            chunk = bytes(buf[:last + 1])
            del buf[:last + 1]
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
                s = parse_line(line[m.start():])
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

def _uint(text: str) -> int | None:
    if text == "":
        return None
    return int(text, 16)


def parse_signed(text: str) -> int | None:
    """Two's-complement hex of any width (4 bits per digit); '' -> None."""
    if text == "":
        return None
    v = int(text, 16)
    bits = 4 * len(text)
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


def _scaled(text: str, scale: float, offset: int = 0) -> float | None:
    v = _uint(text)
    return None if v is None else (v + offset) * scale


def _array(text: str, scale: float, offset: int = 0) -> list[float]:
    if len(text) % 2:
        raise ValueError(f"odd-length hex array {text!r}")
    return [(int(text[i:i + 2], 16) + offset) * scale for i in range(0, len(text), 2)]


_CELL_V = (0.01, 200)       # cell voltage: (raw + 200) * 0.01 V
_TEMP = (1.0, -100)         # temperature: raw - 100 deg C
_BAL = (100.0 / 255.0, 0)   # balancing rate: raw * 100/255 %

#: Bits of ST1 field 5 (which measurement groups are valid).
ST1_VALIDITY_BITS = {0: "cell_voltages", 1: "module_temperatures", 2: "balancing_rates",
                     3: "live_cell_count", 4: "cell_temperatures"}
#: Bits of ST1 field 6 (protection events).
ST1_PROTECTION_BITS = {0: "under_voltage", 1: "over_voltage", 2: "discharge_over_current",
                       3: "charge_over_current", 4: "cell_module_overheat", 5: "leakage",
                       6: "no_cell_communication", 11: "cell_overheat"}
#: Bits of ST1 field 7 (power reduction reasons).
ST1_POWER_REDUCTION_BITS = {0: "low_voltage", 1: "high_current", 2: "high_module_temperature",
                            5: "high_cell_temperature"}
#: Bits of ST1 field 8 (pin functions active), in the order wrkerr9 lists them (uncertain).
ST1_PIN_FUNCTIONS = (
    "no_function", "speed_sensor", "fast_charge_switch", "ignition_key", "mains_ac_sense",
    "heater", "buzzer", "battery_low", "charging_indication", "charger_enable",
    "state_of_charge", "contactor", "fan", "current_sensor", "leakage_sensor",
    "power_reduction", "charging_interlock", "analogue_charger_control", "zvu_boost",
    "zvu_slow", "zvu_buffer", "bms_failure", "equalisation", "dc_dc_control",
    "esm_rectifier_current_limit", "contactor_precharge", "reserved_26")
ST1_PIN_BITS = dict(enumerate(ST1_PIN_FUNCTIONS))
#: ST1 field 1.
CHARGING_STAGES = ("disconnected", "pre_heating", "pre_charging", "main_charging", "balancing",
                   "finished", "error")
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
#: Every sentence this driver decodes.
KNOWN_SENTENCES = ("BB1", "BB2", "BC1", "BT1", "BT2", "BT3", "BT4", "BV1", "BV2", "CV1",
                   "DT1", "OT1", "ST1", "VR1")
#: What a request-mode poll asks for by default (the groups follow their summary so the
#: cell count is known when their reply is counted).
DEFAULT_SENTENCES = ("BV1", "BV2", "BT1", "BT2", "BT3", "BT4", "BB1", "BB2", "BC1", "CV1",
                     "ST1", "OT1", "DT1")


def _f(fields: tuple[str, ...], i: int) -> str:
    return fields[i] if i < len(fields) else ""


def _summary(fields, kind: str, scale_offset) -> dict:
    s, o = scale_offset
    return {"n_cells": _uint(_f(fields, 0)),
            f"min_{kind}": _scaled(_f(fields, 1), s, o),
            f"max_{kind}": _scaled(_f(fields, 2), s, o),
            f"avg_{kind}": _scaled(_f(fields, 3), s, o)}


def _group(fields, kind: str, scale_offset) -> dict:
    s, o = scale_offset
    return {"string": _uint(_f(fields, 0)), "first_cell": _uint(_f(fields, 1)),
            "group_size": _uint(_f(fields, 2)), kind: _array(_f(fields, 3), s, o)}


def _bv1(f):
    d = _summary(f, "cell_voltage_v", _CELL_V)
    d["total_voltage_v"] = _scaled(_f(f, 4), 0.01)
    return d


def _bb1(f):
    d = _summary(f, "balancing_pct", _BAL)
    d["balancing_threshold_v"] = _scaled(_f(f, 5), *_CELL_V)
    return d


def _cv1(f):
    cur = parse_signed(_f(f, 1))
    return {"total_voltage_v": _scaled(_f(f, 0), 0.01),
            "current_a": None if cur is None else cur * 0.1}


def _bc1(f):
    return {"charge_coulomb": _uint(_f(f, 0)), "capacity_coulomb": _uint(_f(f, 1)),
            "soc_pct": _scaled(_f(f, 2), 0.01)}


# DT1: rohsyl gives the multipliers only; units are the EMUS display units (uncertain).
_DT1 = (("speed_km_h", 0.1), ("distance_since_charge_km", 0.01),
        ("momentary_consumption_wh_km", 0.1), ("est_distance_left_km", 0.01),
        ("last_charge_energy_wh", 1.0), ("last_discharge_energy_wh", 1.0),
        ("last_trip_avg_consumption_wh_km", 0.1), ("est_distance_left_last_trip_km", 0.01),
        ("avg_discharge_energy_wh", 1.0), ("max_discharge_energy_wh", 1.0),
        ("trip_avg_consumption_wh_km", 0.1), ("est_distance_left_avg_km", 0.01))


def _dt1(f):
    return {name: _scaled(_f(f, i), scale) for i, (name, scale) in enumerate(_DT1)}


def _ot1(f):
    charger, outputs = _uint(_f(f, 0)), _uint(_f(f, 2))
    return {"charger_flags": charger, "output_flags": outputs,
            "charger_flag_names": flag_names(charger, OT1_CHARGER_BITS),
            "output_flag_names": flag_names(outputs, OT1_OUTPUT_BITS)}


def _vr1(f):
    return {"hardware_type": _f(f, 0), "serial_number": _uint(_f(f, 1)),
            "firmware_version": _f(f, 2)}


def _st1(f):
    stage = _uint(_f(f, 0))
    validity, protection = _uint(_f(f, 4)), _uint(_f(f, 5))
    reduction, pins = _uint(_f(f, 6)), _uint(_f(f, 7))
    return {
        "charging_stage": stage,
        "charging_stage_name": (CHARGING_STAGES[stage] if stage is not None and stage < len(CHARGING_STAGES)
                                else None),
        "last_charging_error": _uint(_f(f, 1)),
        "last_charging_error_param": _uint(_f(f, 2)),
        "stage_duration_raw": _uint(_f(f, 3)),
        "validity_flags": validity, "validity": flag_names(validity, ST1_VALIDITY_BITS),
        "protection_flags": protection, "protection": flag_names(protection, ST1_PROTECTION_BITS),
        "power_reduction_flags": reduction,
        "power_reduction": flag_names(reduction, ST1_POWER_REDUCTION_BITS),
        "pin_flags": pins, "pins": flag_names(pins, ST1_PIN_BITS),
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
    (reason ``bad_field``) when a numeric field is not hex.  Missing or empty fields are
    None; a sentence this driver does not know keeps its raw ``fields``."""
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


# ------------------------------------------------------------------------------------------
# Request mode: the response queue
# ------------------------------------------------------------------------------------------


@dataclass
class Reply:
    """The outcome of one request: the sentences that answered it."""

    name: str
    t_request: float
    t_end: float
    sentences: list[Sentence]
    complete: bool
    timed_out: bool


@dataclass
class _Pending:
    name: str
    t_request: float
    deadline: float
    sentences: list[Sentence] = field(default_factory=list)
    cells_seen: set = field(default_factory=set)


@dataclass
class QueueCounters:
    requests: int = 0
    replies: int = 0
    timeouts: int = 0
    partial: int = 0          # timed out after some of a multi-sentence reply
    unsolicited: int = 0      # a sentence nobody asked for (request mode)
    already_pending: int = 0  # a request not sent because the same one was still open

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class ResponseQueue:
    """Open requests by sentence name; replies complete them in any order; each times out.

    A group sentence (BV2, BT2, BT4, BB2) answers in one sentence per cell group; its
    request is complete once the groups cover the pack's cells: *cells* if configured,
    else the count the matching summary sentence (BV1, BT1, BT3, BB1) last reported.
    With neither known, the reply ends at its timeout and counts as complete if any group
    arrived.  Pure bookkeeping: the caller passes the time.
    """

    def __init__(self, cells: int | None = None):
        self.cells = cells
        self.learned_cells: dict[str, int] = {}
        self.pending: dict[str, _Pending] = {}
        self.counters = QueueCounters()

    def request(self, name: str, now: float, timeout_s: float) -> bool:
        """Open a request; False (not to be sent) if the same one is still open."""
        if name in self.pending:
            self.counters.already_pending += 1
            return False
        self.pending[name] = _Pending(name, now, now + timeout_s)
        self.counters.requests += 1
        return True

    def expected_cells(self, name: str) -> int | None:
        if self.cells:
            return self.cells
        summary = GROUP_SENTENCES.get(name)
        return self.learned_cells.get(summary) or self.learned_cells.get("BV1")

    def learn(self, s: Sentence, values: dict) -> None:
        if s.name in ("BV1", "BT1", "BT3", "BB1") and values.get("n_cells"):
            self.learned_cells[s.name] = int(values["n_cells"])

    def _covered(self, p: _Pending) -> bool:
        expected = self.expected_cells(p.name)
        return bool(expected) and len(p.cells_seen) >= expected

    def _close(self, name: str, now: float) -> Reply:
        p = self.pending.pop(name)
        self.counters.replies += 1
        return Reply(name, p.t_request, now, p.sentences, complete=True, timed_out=False)

    def on_sentence(self, s: Sentence, values: dict, now: float) -> list[Reply]:
        """Match *s* to its request; returns the replies this completed (a summary sentence
        can also complete a group reply whose groups arrived before it)."""
        done = []
        p = self.pending.get(s.name)
        if p is None:
            self.counters.unsolicited += 1
        else:
            p.sentences.append(s)
            if s.name in GROUP_SENTENCES:
                first, size = values.get("first_cell"), values.get("group_size")
                if first is not None and size:
                    p.cells_seen.update(range(first, first + size))
                if self._covered(p):
                    done.append(self._close(s.name, now))
            else:
                done.append(self._close(s.name, now))
        if s.name in ("BV1", "BT1", "BT3", "BB1"):
            for name, q in list(self.pending.items()):
                if name in GROUP_SENTENCES and q.sentences and self._covered(q):
                    done.append(self._close(name, now))
        return done

    def expire(self, now: float) -> list[Reply]:
        """Requests whose deadline has passed, closed (partial group replies included)."""
        out = []
        for name in [n for n, p in self.pending.items() if p.deadline <= now]:
            p = self.pending.pop(name)
            unknown_count = name in GROUP_SENTENCES and not self.expected_cells(name)
            complete = bool(unknown_count and p.sentences)
            if complete:
                self.counters.replies += 1
            else:
                self.counters.timeouts += 1
                if p.sentences:
                    self.counters.partial += 1
            out.append(Reply(name, p.t_request, now, p.sentences, complete, timed_out=True))
        return out

    def next_deadline(self) -> float | None:
        return min((p.deadline for p in self.pending.values()), default=None)

    def clear(self) -> None:
        self.pending.clear()


# ------------------------------------------------------------------------------------------
# The driver
# ------------------------------------------------------------------------------------------


@dataclass
class BmsCounters:
    readings: int = 0
    bad_field: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class EmusBms:
    """EMUS G1 control unit on a serial link; never blocks.

    *mode* ``"request"``: :meth:`poll` sends requests (one per sentence not already open);
    replies are matched by the :class:`ResponseQueue`.  ``"broadcast"``: the unit sends on
    its own; :meth:`poll` does nothing.  :meth:`service` reads what arrived and returns the
    decoded readings and the requests that ended (completed or timed out); it raises
    :class:`~pygnc.drivers.link.LinkLost` when the port fails.
    """

    def __init__(self, link: SerialLink, mode: str = "request", cells: int | None = None,
                 timeout_s: float = 1.0):
        if mode not in ("request", "broadcast"):
            raise ValueError(f"EMUS mode {mode!r} is not 'request' or 'broadcast'")
        self.link = link
        self.mode = mode
        self.timeout_s = timeout_s
        self.framer = SentenceFramer()
        self.queue = ResponseQueue(cells)
        self.counters = BmsCounters()

    def fileno(self) -> int | None:
        return self.link.fileno()

    def poll(self, names, now: float) -> int:
        """Ask for each sentence of *names* not already open; returns how many were sent."""
        if self.mode != "request":
            return 0
        sent = 0
        for name in names:
            if self.queue.request(name, now, self.timeout_s):
                self.link.write(encode_request(name))
                sent += 1
        return sent

    def service(self, now: float) -> tuple[list[Reading], list[Reply]]:
        readings: list[Reading] = []
        replies: list[Reply] = []
        while True:
            data = self.link.read()
            if not data:
                break
            for s in self.framer.feed(data):
                try:
                    values = decode_sentence(s)
                except SentenceError:
                    self.counters.bad_field += 1
                    continue
                solicited = False
                if self.mode == "request":
                    self.queue.learn(s, values)
                    solicited = s.name in self.queue.pending
                    replies += self.queue.on_sentence(s, values, now)
                readings.append(Reading(s.name, values, s.raw, now, solicited))
                self.counters.readings += 1
        replies.extend(self.queue.expire(now))
        return readings, replies

    def next_deadline(self) -> float | None:
        return self.queue.next_deadline()

    def all_counters(self) -> dict:
        return {**self.counters.as_dict(), **self.framer.counters.as_dict(),
                **self.queue.counters.as_dict(), **self.link.counters.as_dict()}

    def read_blocking(self, names, timeout_s: float | None = None
                      ) -> tuple[list[Reading], list[Reply]]:
        """Request *names* (request mode) or listen (broadcast mode) until every request
        has ended or *timeout_s* passed; waits on the port, never spins.  For tools and
        tests; a task uses :meth:`poll` and :meth:`service` from its loop."""
        t0 = time.monotonic()
        t_end = t0 + (timeout_s if timeout_s is not None else self.timeout_s + 0.5)
        self.poll(names, t0)
        readings, replies = [], []
        while True:
            now = time.monotonic()
            r, p = self.service(now)
            readings += r
            replies += p
            if self.mode == "request" and not self.queue.pending:
                break
            if now >= t_end:
                break
            nd = self.next_deadline()
            wait = min(t_end, nd if nd is not None else t_end) - now
            try:
                self.link.wait_readable(max(0.0, wait) + 0.001)
            except LinkLost:
                raise
        return readings, replies
