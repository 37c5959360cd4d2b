"""monoDrive's IMU frames: a header, then a 3DM-GX2-style payload.  Pure: bytes in and out.

Headers (one per frame; a UDP datagram is one frame, a TCP stream a sequence of them):

* ``v16`` - current clients (monodrive-python-client ``base_sensor.py`` ``'!IIfI'``; C++
  client ``DataFrame.h``): 16 bytes big-endian: total length incl. header (uint32),
  wall time (uint32, ms since Sunday), game time (float32, s), sample count (uint32).
* ``tcp12`` - the 2018 client over TCP: 12 bytes ``'=IIf'``: total length, time stamp,
  game time, in the sender's native byte order (little-endian on x86).
* ``udp8`` - the 2018 client over UDP: 8 bytes ``'=If'``: time stamp, game time (same order).

IMU payload of the simulator's GX2 emulation, up to release 1.14 (C++ client ``ImuFrame``,
``IMU_DATA_PACKET_SIZE 35``; big-endian - the 2018 Python client unpacked it little-endian,
a bug it fixed in 2020)::

    0   0xC2 (the clients skip it; checked here)
    1   accel x, y, z, angular rate x, y, z    float32 (taken as g and rad/s, as on a GX2; the
                                               acceleration's unit is stated nowhere: see
                                               docs/interface.md)
    25  timer                                  int32
    29  checksum                               int16 (GX2 rule; no client checks it: optional)
    31  time of week                           int32 (optional: older senders stop at 31 bytes)

Only those two lengths with that lead byte are decoded; anything else raises
:class:`FormatError` - in particular the IMU frame of release 1.15 on (a 168-byte payload of
float32: acceleration in cm/s^2, velocities, position, orientation), whose first float
would otherwise be read as a GX2 packet and give garbage.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from typing import Literal, NamedTuple

from .errors import CodecError
from .gx2_codec import G_M_S2, checksum

HEADERS = {"v16": struct.Struct("!IIfI"), "tcp12": struct.Struct("<IIf"), "udp8": struct.Struct("<If")}
PAYLOAD_MIN = 31
PAYLOAD_FULL = 35
#: The GX2 emulation's payloads: without and with the time of week.
PAYLOAD_SIZES = (PAYLOAD_MIN, PAYLOAD_FULL)
LEAD_BYTE = 0xC2
#: The IMU payload length of simulator release 1.15 on (float32 state), which pygnc does not read.
STATE_PAYLOAD = 168
_PAYLOAD = struct.Struct(">B6fiH")
_TOW = struct.Struct(">i")
#: Largest frame accepted on a TCP stream, bytes (the IMU frame is 51; monoDrive's
#: packet_size is at most 1472 for UDP).
MAX_FRAME = 65536


class FormatError(CodecError):
    """A well-framed frame whose payload is not the GX2 emulation's (wrong lead byte or
    length): another simulator release or sensor type, not line damage."""


class MonoImuFrame(NamedTuple):
    wall_time_ms: int  # header time stamp (ms since Sunday); 0 if the header has none
    game_time_s: float  # simulator time
    sample_count: int  # -1 if the header has none
    accel_m_s2: tuple[float, float, float]
    rate_rad_s: tuple[float, float, float]
    timer: int
    checksum_ok: bool  # False also when the payload carries no valid checksum
    time_of_week: int  # -1 if absent


def encode_header(kind: str, payload_len: int, wall_time_ms: int, game_time_s: float, sample_count: int = 0) -> bytes:
    h = HEADERS[kind]
    if kind == "v16":
        return h.pack(h.size + payload_len, wall_time_ms, game_time_s, sample_count)
    if kind == "tcp12":
        return h.pack(h.size + payload_len, wall_time_ms, game_time_s)
    return h.pack(wall_time_ms, game_time_s)


def decode_frame(
    frame: bytes, header: str = "v16", *, verify_checksum: bool = False, accel_unit_m_s2: float = G_M_S2
) -> MonoImuFrame:
    """Decode one frame (header + IMU payload).  :class:`FormatError` if the header is
    consistent but the payload is not the GX2 emulation's (lead byte 0xC2, 31 or 35
    bytes), :class:`CodecError` for any other damage.  With *verify_checksum* a payload
    whose checksum is wrong raises; otherwise it is only reported in ``checksum_ok``."""
    h = HEADERS.get(header)
    if h is None:
        raise CodecError(f"unknown monoDrive header {header!r} (v16, tcp12, udp8)")
    if len(frame) < h.size:
        raise CodecError(f"frame of {len(frame)} bytes is shorter than its {h.size}-byte header")
    fields = h.unpack_from(frame)
    if header == "v16":
        length, wall, game, count = fields
    elif header == "tcp12":
        (length, wall, game), count = fields, -1
    else:
        (wall, game), length, count = fields, len(frame), -1
    if length != len(frame):
        raise CodecError(f"header length {length} != frame length {len(frame)}")
    p = memoryview(frame)[h.size :]
    if len(p) not in PAYLOAD_SIZES or p[0] != LEAD_BYTE:
        raise FormatError(payload_problem(bytes(p[:1]), len(p)))
    _, ax, ay, az, wx, wy, wz, timer, csum = _PAYLOAD.unpack_from(p)
    ok = checksum(p[:29]) == csum
    if verify_checksum and not ok:
        raise CodecError("IMU payload checksum mismatch")
    tow = _TOW.unpack_from(p, 31)[0] if len(p) >= PAYLOAD_FULL else -1
    if not all(math.isfinite(v) for v in (ax, ay, az, wx, wy, wz)):
        raise CodecError("non-finite IMU value")
    a = accel_unit_m_s2
    return MonoImuFrame(wall, game, count, (ax * a, ay * a, az * a), (wx, wy, wz), timer, ok, tow)


def payload_problem(lead: bytes, n: int) -> str:
    """What is wrong with a payload of *n* bytes starting with *lead*, in words."""
    what = f"payload of {n} bytes, lead byte " + (f"0x{lead[0]:02X}" if lead else "none")
    if n == STATE_PAYLOAD:
        return what + (
            ": the IMU frame of monoDrive 1.15 or later (float32 state, acceleration in cm/s^2), "
            "which pygnc does not read; "
            "it reads the GX2 emulation of releases up to 1.14"
        )
    return what + f": not the GX2 emulation (lead byte 0x{LEAD_BYTE:02X}, {PAYLOAD_MIN} or {PAYLOAD_FULL} bytes)"


def encode_imu_payload(
    accel_g: Iterable[float],
    rate_rad_s: Iterable[float],
    timer: int,
    time_of_week: int | None = 0,
    good_checksum: bool = True,
) -> bytes:
    """The IMU payload (for simulators and tests)."""
    body = struct.pack(">B6fi", 0xC2, *accel_g, *rate_rad_s, timer)
    c = checksum(body) if good_checksum else (checksum(body) ^ 0x5A5A)
    out = body + struct.pack(">H", c)
    if time_of_week is not None:
        out += _TOW.pack(time_of_week)
    return out


class TcpFramer:
    """Splits a TCP byte stream into frames by the header's total length.  A length that is
    impossible (shorter than a header + payload, or above MAX_FRAME) means the stream is out
    of step: :meth:`feed` raises, and the caller reconnects (a TCP stream has no sync bytes
    to resynchronise on)."""

    def __init__(self, header: str = "v16"):
        if header not in ("v16", "tcp12"):
            raise CodecError("a TCP stream needs a header with a length (v16 or tcp12)")
        self.header = header
        self.h = HEADERS[header]
        self.buf = bytearray()
        self.frames = 0

    def feed(self, data: bytes) -> list[bytes]:
        buf = self.buf
        buf += data
        out = []
        i = 0
        order: Literal["big", "little"] = "big" if self.header == "v16" else "little"
        while len(buf) - i >= 4:
            length = int.from_bytes(buf[i : i + 4], order)
            if length < self.h.size + PAYLOAD_MIN or length > MAX_FRAME:
                raise CodecError(f"frame length {length} out of range: stream out of step")
            if len(buf) - i < length:
                break
            out.append(bytes(buf[i : i + length]))
            i += length
        del buf[:i]
        self.frames += len(out)
        return out
