"""Aceinna / MEMSIC IMU380 / DMU380 "UU" protocol: frames, CRC, fields.  Pure: bytes in and out.

Frame (all multi-byte fields big-endian)::

    0x55 0x55 | type (2 bytes, usually ASCII, e.g. b"S1") | length n (1) | payload (n) | CRC (2, MSB first)

The CRC is CRC-16/AUG-CCITT: polynomial 0x1021, MSB-first, register initialised to 0x1D0F,
no final XOR, over type + length + payload.  The manual says "init 0xFFFF", but its own
worked example (the ping frame ``55 55 50 4B 00 9E F4``) and both Aceinna drivers need
0x1D0F (0x1D0F is what an augmented CRC with init 0xFFFF looks like in the direct
algorithm).  ``binascii.crc_hqx`` computes exactly this CRC when seeded with 0x1D0F.

Sources (facts only; see docs/interface.md "External IMU"): DMU380SA user's manual 7430-0026
§6-8; Aceinna python-imu380 (e2fec3a) and python-openimu (4960e9a).  Bugs of
python-imu380 avoided here: two's complement by ``struct`` (it subtracted 65535, and 2^31
for latitude/longitude), A1 temperature at offset 24 (it read 28), N0 latitude/longitude as
I4 at 18/22, N1 time-of-week as U4 at 36 with BIT at 40, NAK recognised as type 0x1515.
"""

from __future__ import annotations

import binascii
import math
import struct
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from .errors import CodecError

PREAMBLE = b"UU"
CRC_INIT = 0x1D0F
NAK = b"\x15\x15"
MAX_PAYLOAD = 255
#: Bytes around the payload: preamble 2 + type 2 + length 1 + CRC 2.
OVERHEAD = 7

G_M_S2 = 9.80665
#: LSB sizes (manual §7.4).
ACCEL_LSB_M_S2 = 20.0 / 65536 * G_M_S2
RATE_LSB_RAD_S = 7.0 * math.pi / 65536
ANGLE_LSB_RAD = 2.0 * math.pi / 65536
TEMP_LSB_C = 200.0 / 65536
VEL_LSB_M_S = 512.0 / 65536
LATLON_LSB_RAD = 2.0 * math.pi / 2**32
ALT_LSB_M = 2.0**14 / 65536
#: UNSURE: the manual's S0/A1 tables give 20/2^16 Gauss, the S0 prose a +-1 Gauss range
#: (2/2^16) and both Aceinna drivers 2/2^16.  Taken as 2/2^16; verify on a real unit.
MAG_LSB_GAUSS = 2.0 / 65536
#: UNSURE: "I2*" (shifted two's complement) read as int16 * 0.25 m + 8092 m, which gives the
#: manual's range [-100, 16284) m; the manual gives no worked example.
ALT_SHIFT_M = 8092.0

# -- packet types -------------------------------------------------------------------------
PING, ECHO, GET_PACKET = b"PK", b"CH", b"GP"
GET_FIELDS, READ_FIELDS, SET_FIELDS, WRITE_FIELDS = b"GF", b"RF", b"SF", b"WF"
READ_EEPROM = b"RE"
JUMP_BOOTLOADER, WRITE_APP, JUMP_APP = b"JI", b"WA", b"JA"
ID, VR, T0 = b"ID", b"VR", b"T0"
S0, S1, A1, A2, N0, N1 = b"S0", b"S1", b"A1", b"A2", b"N0", b"N1"
DATA_TYPES = frozenset((S0, S1, A1, A2, N0, N1))

# -- configuration fields (manual §8; python-openimu dmu.json) ------------------------------
FIELD_PACKET_RATE = 0x0001
FIELD_BAUD = 0x0002
FIELD_PACKET_TYPE = 0x0003
FIELD_ACCEL_LPF = 0x0005
FIELD_RATE_LPF = 0x0006
FIELD_ORIENTATION = 0x0007
FIELD_NAMES = {
    FIELD_PACKET_RATE: "packet_rate",
    FIELD_BAUD: "baud",
    FIELD_PACKET_TYPE: "packet_type",
    FIELD_ACCEL_LPF: "accel_lpf",
    FIELD_RATE_LPF: "rate_lpf",
    FIELD_ORIENTATION: "orientation",
}

#: Packet-rate divider -> output rate, Hz (0 = quiet: polled mode).
PACKET_RATE_HZ = {0: 0.0, 1: 100.0, 2: 50.0, 4: 25.0, 5: 20.0, 10: 10.0, 20: 5.0, 25: 4.0, 50: 2.0}
#: Baud code (field 0x0002) -> baud.
BAUD_CODES = {0: 9600, 1: 19200, 2: 38400, 3: 57600, 4: 4800, 5: 115200, 6: 230400}
#: Low-pass filter cut-off, Hz -> the count the unit stores (0 = unfiltered).
LPF_COUNTS = {2.0: 26785, 5.0: 10713, 10.0: 5356, 20.0: 2678, 25.0: 2142, 40.0: 1338, 50.0: 1070, 0.0: 0}
_LPF_THRESHOLDS = ((18749, 2.0), (8034, 5.0), (4017, 10.0), (2410, 20.0), (1740, 25.0), (1204, 40.0), (0, 50.0))

#: VR release stage codes.
VERSION_STAGES = {0: "release_candidate", 1: "development", 2: "alpha", 3: "beta"}
#: T0 words, in order.
BIT_WORDS = (
    "bit_status",
    "hardware_bit",
    "hardware_power_bit",
    "hardware_environmental_bit",
    "com_bit",
    "com_serial_a_bit",
    "com_serial_b_bit",
    "software_bit",
    "software_algorithm_bit",
    "software_data_bit",
    "hardware_status",
    "com_status",
    "software_status",
    "sensor_status",
)


def crc16(data: bytes | bytearray | memoryview, init: int = CRC_INIT) -> int:
    """CRC-16/AUG-CCITT of *data* (check value of b"123456789": 0xE5CC)."""
    return binascii.crc_hqx(data, init)


def build_frame(ptype: bytes, payload: bytes = b"") -> bytes:
    """The complete frame for packet type *ptype* (2 bytes) and *payload* (<= 255 bytes)."""
    if len(ptype) != 2:
        raise CodecError(f"packet type must be 2 bytes, got {ptype!r}")
    if len(payload) > MAX_PAYLOAD:
        raise CodecError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = bytes(ptype) + bytes((len(payload),)) + bytes(payload)
    return PREAMBLE + body + crc16(body).to_bytes(2, "big")


class Frame(NamedTuple):
    ptype: bytes
    payload: bytes


class FramerStats:
    __slots__ = ("bytes_total", "bytes_skipped", "skip_events", "frames", "crc_errors")

    def __init__(self) -> None:
        self.bytes_total = self.bytes_skipped = self.skip_events = self.frames = self.crc_errors = 0

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


class Framer:
    """Incremental frame finder: feed bytes, get CRC-checked frames.

    Bytes that are not part of a valid frame are skipped and counted; a frame whose CRC
    fails is counted and the search resumes one byte after its preamble (its length byte
    may be the corrupted one), so a good frame right behind a bad one is never lost - though
    a corrupted length byte holds the frames behind it until enough bytes have arrived to
    disprove it (at most 262: a quiet unit's answer then comes with the next resend).
    """

    def __init__(self, max_buffer: int = 4096):
        self.buf = bytearray()
        self.stats = FramerStats()
        self.max_buffer = max_buffer

    def feed(self, data: bytes) -> list[Frame]:
        st = self.stats
        st.bytes_total += len(data)
        buf = self.buf
        buf += data
        out: list[Frame] = []
        i, n = 0, len(buf)
        while True:
            j = buf.find(PREAMBLE, i)
            if j < 0:
                keep = n - 1 if n and buf[-1] == 0x55 else n  # a lone 'U' may start a preamble
                if keep > i:
                    st.bytes_skipped += keep - i
                    st.skip_events += 1
                i = max(i, keep)
                break
            if j > i:
                st.bytes_skipped += j - i
                st.skip_events += 1
                i = j
            if n - j < 5:
                break
            end = j + 5 + buf[j + 4] + 2
            if end > n:
                break
            if crc16(buf[j + 2 : end - 2]) == (buf[end - 2] << 8 | buf[end - 1]):
                out.append(Frame(bytes(buf[j + 2 : j + 4]), bytes(buf[j + 5 : end - 2])))
                st.frames += 1
                i = end
            else:
                st.crc_errors += 1
                st.bytes_skipped += 1
                st.skip_events += 1
                i = j + 1
        del buf[:i]
        if len(buf) > self.max_buffer:  # cannot happen with 262-byte frames; a guard
            st.bytes_skipped += len(buf)
            buf.clear()
        return out

    def reset(self) -> None:
        self.buf.clear()


# -- requests -------------------------------------------------------------------------------


def ping_frame() -> bytes:
    return build_frame(PING)


def field_ids_payload(field_ids: Iterable[int]) -> bytes:
    ids = [int(f) for f in field_ids]
    if not 1 <= len(ids) <= 63:
        raise CodecError("between 1 and 63 fields per request")
    return bytes((len(ids),)) + b"".join(f.to_bytes(2, "big") for f in ids)


def field_values_payload(values: dict[int, int]) -> bytes:
    if not 1 <= len(values) <= 63:
        raise CodecError("between 1 and 63 fields per request")
    out = bytearray((len(values),))
    for fid, v in values.items():
        if not 0 <= int(v) <= 0xFFFF:
            raise CodecError(f"field 0x{int(fid):04x}: value {v} does not fit in U2")
        out += int(fid).to_bytes(2, "big") + int(v).to_bytes(2, "big")
    return bytes(out)


def read_eeprom_frame(address: int, n_words: int) -> bytes:
    if not 1 <= n_words <= 126 or not 0 <= address <= 0xFFFF:
        raise CodecError("EEPROM read: address U2 and 1..126 words")
    return build_frame(READ_EEPROM, address.to_bytes(2, "big") + bytes((n_words,)))


def write_app_frame(address: int, data: bytes) -> bytes:
    """WA: one block of application image at *address* (<= 240 bytes)."""
    if not 1 <= len(data) <= 240:
        raise CodecError("WA blocks hold 1..240 bytes")
    return build_frame(WRITE_APP, address.to_bytes(4, "big") + bytes((len(data),)) + bytes(data))


# -- responses ----------------------------------------------------------------------------------


class DeviceId(NamedTuple):
    serial_number: int
    model: str  # the whole model string
    version: str  # its first word
    part_number: str  # the rest (firmware part number)


def decode_id(payload: bytes) -> DeviceId:
    if len(payload) < 5:
        raise CodecError(f"ID payload of {len(payload)} bytes (>= 5 expected)")
    sn = int.from_bytes(payload[:4], "big")
    model = bytes(payload[4:]).split(b"\x00", 1)[0].decode("ascii", "replace").strip()
    version, _, part = model.partition(" ")
    return DeviceId(sn, model, version, part.strip())


class Version(NamedTuple):
    major: int
    minor: int
    patch: int
    stage: str
    build: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch} ({self.stage}) build {self.build}"


def decode_vr(payload: bytes) -> Version:
    if len(payload) != 5:
        raise CodecError(f"VR payload of {len(payload)} bytes (5 expected)")
    a, b, c, d, e = payload
    return Version(a, b, c, VERSION_STAGES.get(d, f"stage_{d}"), e)


def decode_t0(payload: bytes) -> dict[str, int]:
    if len(payload) != 28:
        raise CodecError(f"T0 payload of {len(payload)} bytes (28 expected)")
    return dict(zip(BIT_WORDS, struct.unpack(">14H", payload)))


def decode_field_values(payload: bytes) -> dict[int, int]:
    """GF/RF response: {field id: value}."""
    if not payload or len(payload) != 1 + 4 * payload[0]:
        raise CodecError(f"field-value payload of {len(payload)} bytes does not match its count")
    vals = struct.unpack(f">{2 * payload[0]}H", payload[1:])
    return dict(zip(vals[0::2], vals[1::2]))


def decode_field_ids(payload: bytes) -> list[int]:
    """SF/WF response: the ids of the fields that were set."""
    if not payload or len(payload) != 1 + 2 * payload[0]:
        raise CodecError(f"field-id payload of {len(payload)} bytes does not match its count")
    return list(struct.unpack(f">{payload[0]}H", payload[1:]))


def decode_eeprom(payload: bytes) -> tuple[int, list[int]]:
    """RE response: (start address, words)."""
    if len(payload) < 3 or len(payload) != 3 + 2 * payload[2]:
        raise CodecError(f"EEPROM payload of {len(payload)} bytes does not match its count")
    return int.from_bytes(payload[:2], "big"), list(struct.unpack(f">{payload[2]}H", payload[3:]))


def decode_nak(payload: bytes) -> bytes:
    """NAK (type 0x1515): the packet type that failed."""
    if len(payload) != 2:
        raise CodecError(f"NAK payload of {len(payload)} bytes (2 expected)")
    return bytes(payload)


def decode_write_app(payload: bytes) -> tuple[int, int]:
    """WA response: (address, length) echoed.  [DERIVED from the 12-byte reply python-imu380
    reads: 5-byte payload = address U4 + length U1.]"""
    if len(payload) != 5:
        raise CodecError(f"WA response payload of {len(payload)} bytes (5 expected)")
    return int.from_bytes(payload[:4], "big"), payload[4]


# -- output packets (manual §7.4; offsets in docs/interface.md) ------------------------------


class S1Packet(NamedTuple):
    accel_m_s2: tuple[float, float, float]
    rate_rad_s: tuple[float, float, float]
    rate_temp_c: tuple[float, float, float]
    board_temp_c: float
    counter: int  # output packet counter (wraps at 65536)
    bit_status: int


class S0Packet(NamedTuple):
    accel_m_s2: tuple[float, float, float]
    rate_rad_s: tuple[float, float, float]
    mag_gauss: tuple[float, float, float]
    rate_temp_c: tuple[float, float, float]
    board_temp_c: float
    gps_itow_ms: int  # lower 16 bits of GPS time of week ("not implemented" on SA units)
    bit_status: int


class A1Packet(NamedTuple):
    roll_rad: float
    pitch_rad: float
    yaw_mag_rad: float  # relative to magnetic north
    rate_rad_s: tuple[float, float, float]  # corrected
    accel_m_s2: tuple[float, float, float]
    mag_gauss: tuple[float, float, float]
    rate_temp_x_c: float
    itow_ms: int  # U4
    bit_status: int


class A2Packet(NamedTuple):
    roll_rad: float
    pitch_rad: float
    yaw_rad: float
    rate_rad_s: tuple[float, float, float]  # corrected
    accel_m_s2: tuple[float, float, float]
    rate_temp_c: tuple[float, float, float]
    itow_ms: int
    bit_status: int


class N0Packet(NamedTuple):
    roll_rad: float
    pitch_rad: float
    yaw_rad: float
    rate_rad_s: tuple[float, float, float]
    vel_ned_m_s: tuple[float, float, float]
    lon_rad: float
    lat_rad: float
    alt_m: float
    gps_itow_ms: int  # truncated to 16 bits
    bit_status: int


class N1Packet(NamedTuple):
    roll_rad: float
    pitch_rad: float
    yaw_rad: float
    rate_rad_s: tuple[float, float, float]
    accel_m_s2: tuple[float, float, float]
    vel_ned_m_s: tuple[float, float, float]
    lon_rad: float
    lat_rad: float
    alt_m: float
    rate_temp_x_c: float
    itow_ms: int
    bit_status: int


_S1 = struct.Struct(">10h2H")
_S0 = struct.Struct(">13h2H")
_A1 = struct.Struct(">13hIH")
_A2 = struct.Struct(">12hIH")
_N0 = struct.Struct(">9h2ih2H")
_N1 = struct.Struct(">12h2ihhIH")

PAYLOAD_LENGTHS = {S1: _S1.size, S0: _S0.size, A1: _A1.size, A2: _A2.size, N0: _N0.size, N1: _N1.size}
assert PAYLOAD_LENGTHS == {S1: 24, S0: 30, A1: 32, A2: 30, N0: 32, N1: 42}


def _v3(v: tuple, lsb: float) -> tuple[float, float, float]:
    a, b, c = v
    return (a * lsb, b * lsb, c * lsb)


def _unpack(st: struct.Struct, payload: bytes, name: str) -> tuple[Any, ...]:
    if len(payload) != st.size:
        raise CodecError(f"{name} payload of {len(payload)} bytes ({st.size} expected)")
    return st.unpack(payload)


def decode_s1(payload: bytes) -> S1Packet:
    v = _unpack(_S1, payload, "S1")
    return S1Packet(
        _v3(v[0:3], ACCEL_LSB_M_S2),
        _v3(v[3:6], RATE_LSB_RAD_S),
        _v3(v[6:9], TEMP_LSB_C),
        v[9] * TEMP_LSB_C,
        v[10],
        v[11],
    )


def decode_s0(payload: bytes) -> S0Packet:
    v = _unpack(_S0, payload, "S0")
    return S0Packet(
        _v3(v[0:3], ACCEL_LSB_M_S2),
        _v3(v[3:6], RATE_LSB_RAD_S),
        _v3(v[6:9], MAG_LSB_GAUSS),
        _v3(v[9:12], TEMP_LSB_C),
        v[12] * TEMP_LSB_C,
        v[13],
        v[14],
    )


def decode_a1(payload: bytes) -> A1Packet:
    v = _unpack(_A1, payload, "A1")
    return A1Packet(
        v[0] * ANGLE_LSB_RAD,
        v[1] * ANGLE_LSB_RAD,
        v[2] * ANGLE_LSB_RAD,
        _v3(v[3:6], RATE_LSB_RAD_S),
        _v3(v[6:9], ACCEL_LSB_M_S2),
        _v3(v[9:12], MAG_LSB_GAUSS),
        v[12] * TEMP_LSB_C,
        v[13],
        v[14],
    )


def decode_a2(payload: bytes) -> A2Packet:
    v = _unpack(_A2, payload, "A2")
    return A2Packet(
        v[0] * ANGLE_LSB_RAD,
        v[1] * ANGLE_LSB_RAD,
        v[2] * ANGLE_LSB_RAD,
        _v3(v[3:6], RATE_LSB_RAD_S),
        _v3(v[6:9], ACCEL_LSB_M_S2),
        _v3(v[9:12], TEMP_LSB_C),
        v[12],
        v[13],
    )


def altitude_m(raw_i2: int) -> float:
    """Altitude from the shifted two's-complement I2* field (see ALT_SHIFT_M)."""
    return raw_i2 * ALT_LSB_M + ALT_SHIFT_M


def decode_n0(payload: bytes) -> N0Packet:
    v = _unpack(_N0, payload, "N0")
    return N0Packet(
        v[0] * ANGLE_LSB_RAD,
        v[1] * ANGLE_LSB_RAD,
        v[2] * ANGLE_LSB_RAD,
        _v3(v[3:6], RATE_LSB_RAD_S),
        _v3(v[6:9], VEL_LSB_M_S),
        v[9] * LATLON_LSB_RAD,
        v[10] * LATLON_LSB_RAD,
        altitude_m(v[11]),
        v[12],
        v[13],
    )


def decode_n1(payload: bytes) -> N1Packet:
    v = _unpack(_N1, payload, "N1")
    return N1Packet(
        v[0] * ANGLE_LSB_RAD,
        v[1] * ANGLE_LSB_RAD,
        v[2] * ANGLE_LSB_RAD,
        _v3(v[3:6], RATE_LSB_RAD_S),
        _v3(v[6:9], ACCEL_LSB_M_S2),
        _v3(v[9:12], VEL_LSB_M_S),
        v[12] * LATLON_LSB_RAD,
        v[13] * LATLON_LSB_RAD,
        altitude_m(v[14]),
        v[15] * TEMP_LSB_C,
        v[16],
        v[17],
    )


#: A decoded output packet.
OutputPacket = S1Packet | S0Packet | A1Packet | A2Packet | N0Packet | N1Packet

DECODERS: dict[bytes, Callable[[bytes], OutputPacket]] = {
    S1: decode_s1,
    S0: decode_s0,
    A1: decode_a1,
    A2: decode_a2,
    N0: decode_n0,
    N1: decode_n1,
}


def decode_output(frame: Frame) -> OutputPacket | None:
    """The decoded output packet of *frame*, or None if it is not an output packet."""
    dec = DECODERS.get(frame.ptype)
    return None if dec is None else dec(frame.payload)


# -- field encodings ------------------------------------------------------------------------------


def packet_type_value(ptype: bytes | str) -> int:
    """Field 0x0003 holds the two ASCII bytes of the packet type: S1 -> 0x5331."""
    b = ptype.encode() if isinstance(ptype, str) else bytes(ptype)
    if len(b) != 2:
        raise CodecError(f"packet type {ptype!r} is not 2 characters")
    return int.from_bytes(b, "big")


def packet_type_from_value(value: int) -> bytes:
    return int(value).to_bytes(2, "big")


def packet_rate_divider(rate_hz: float) -> int:
    for div, hz in PACKET_RATE_HZ.items():
        if abs(hz - rate_hz) < 1e-9:
            return div
    raise CodecError(f"packet rate {rate_hz} Hz is not one of {sorted(PACKET_RATE_HZ.values())}")


def baud_code(baud: int) -> int:
    for code, b in BAUD_CODES.items():
        if b == baud:
            return code
    raise CodecError(f"baud {baud} is not one of {sorted(BAUD_CODES.values())}")


def lpf_count(cutoff_hz: float) -> int:
    try:
        return LPF_COUNTS[float(cutoff_hz)]
    except KeyError:
        raise CodecError(f"low-pass cut-off {cutoff_hz} Hz is not one of {sorted(LPF_COUNTS)}") from None


def lpf_cutoff_hz(count: int) -> float:
    """The cut-off a stored filter count stands for (0 = unfiltered)."""
    for threshold, hz in _LPF_THRESHOLDS:
        if count > threshold:
            return hz
    return 0.0


# Orientation (field 0x0007): for each user axis X, Y, Z a sign bit and a 2-bit code naming
# the sensor axis that feeds it; the codes are relative to the user axis (X: 0=X 1=Y 2=Z;
# Y: 0=Y 1=Z 2=X; Z: 0=Z 1=X 2=Y).
_ORIENT_SOURCES = {"X": "XYZ", "Y": "YZX", "Z": "ZXY"}


def orientation_value(spec: str) -> int:
    """``"+X+Y+Z"`` (the default), ``"-Y+X+Z"`` ... -> field value."""
    s = spec.replace(" ", "").upper()
    if len(s) != 6 or any(c not in "+-" for c in s[0::2]) or sorted(s[1::2]) != ["X", "Y", "Z"]:
        raise CodecError(f"orientation {spec!r}: expected three signed axes such as '+X+Y+Z'")
    value = 0
    for k, user in enumerate("XYZ"):
        sign, src = s[2 * k], s[2 * k + 1]
        value |= (sign == "-") << (3 * k)
        value |= _ORIENT_SOURCES[user].index(src) << (3 * k + 1)
    return value


def orientation_spec(value: int) -> str:
    out = []
    for k, user in enumerate("XYZ"):
        code = (value >> (3 * k + 1)) & 3
        if code == 3:
            raise CodecError(f"orientation 0x{value:04x}: axis code 3 is not defined")
        out.append(("-" if value >> (3 * k) & 1 else "+") + _ORIENT_SOURCES[user][code])
    if value >> 9:
        raise CodecError(f"orientation 0x{value:04x}: bits above 8 set")
    spec = "".join(out)
    if sorted(spec[1::2]) != ["X", "Y", "Z"]:
        raise CodecError(f"orientation 0x{value:04x} maps two user axes to one sensor axis")
    return spec
