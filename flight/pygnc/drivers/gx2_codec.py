"""MicroStrain 3DM-GX2 "acceleration & angular rate" (0xC2) packets.  Pure: bytes in and out.

Reply to the one-byte command 0xC2, 31 bytes, big-endian::

    0   0xC2 (echo of the command)
    1   accel x, y, z          float32, g
    13  angular rate x, y, z   float32, rad/s
    25  timer                  uint32, ticks of 1/19 660 800 s (wraps every ~218.45 s)
    29  checksum               uint16: the sum of bytes 0..28, modulo 2^16

Continuous mode: the command ``C4 C1 29 C2`` (0xC1 0x29 confirm the intent) makes the unit
stream 0xC2 packets; it answers with 8 bytes ``C4 <command> <4 bytes> <checksum>`` (the
checksum rule of every reply; [DERIVED] from the 8-byte reply the ROS driver reads and
checks).  A single 0xFA byte stops the stream (the GX3 wants ``FA 75 B4``).

Sources: ros-drivers/microstrain_3dmgx2_imu ``3dmgx2.cc``/``3dmgx2.h`` (command and reply
layout, checksum, TICKS_PER_SEC_GX2 = 19 660 800, continuous and stop commands); mbed
3DM-GX2 library (continuous mode, 115200 8N1).  Facts only; see docs/interface.md.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from .errors import CodecError

G_M_S2 = 9.80665
CMD_ACCEL_RATE = 0xC2
CMD_CONTINUOUS = 0xC4
CMD_STOP_CONTINUOUS = 0xFA
CONTINUOUS_CONFIRM = b"\xc1\x29"
TICKS_PER_S = 19_660_800
TIMER_MODULUS = 1 << 32
PACKET_LEN = 31
CONTINUOUS_REPLY_LEN = 8
#: Reply length per leading byte, for the framer.
REPLY_LENGTHS = {CMD_ACCEL_RATE: PACKET_LEN, CMD_CONTINUOUS: CONTINUOUS_REPLY_LEN}

_BODY = struct.Struct(">6fI")


def checksum(data: bytes | bytearray | memoryview) -> int:
    """The GX2 checksum: unsigned sum of the bytes, modulo 2^16."""
    return sum(data) & 0xFFFF


def poll_command() -> bytes:
    return bytes((CMD_ACCEL_RATE,))


def continuous_command(cmd: int = CMD_ACCEL_RATE) -> bytes:
    return bytes((CMD_CONTINUOUS,)) + CONTINUOUS_CONFIRM + bytes((cmd,))


def stop_continuous_command() -> bytes:
    return bytes((CMD_STOP_CONTINUOUS,))


class AccelRate(NamedTuple):
    accel_m_s2: tuple[float, float, float]
    rate_rad_s: tuple[float, float, float]
    timer_ticks: int


def decode_accel_rate(packet: bytes, *, verify: bool = True) -> AccelRate:
    """Decode one 31-byte 0xC2 reply (checksum verified unless *verify* is false)."""
    if len(packet) != PACKET_LEN or packet[0] != CMD_ACCEL_RATE:
        raise CodecError(f"not a 0xC2 packet ({len(packet)} bytes, first 0x{packet[:1].hex() or '-'})")
    if verify and checksum(packet[:29]) != int.from_bytes(packet[29:31], "big"):
        raise CodecError("0xC2 checksum mismatch")
    ax, ay, az, wx, wy, wz, timer = _BODY.unpack_from(packet, 1)
    return AccelRate((ax * G_M_S2, ay * G_M_S2, az * G_M_S2), (wx, wy, wz), timer)


def decode_continuous_reply(reply: bytes) -> int:
    """The command a continuous-mode reply confirms."""
    if len(reply) != CONTINUOUS_REPLY_LEN or reply[0] != CMD_CONTINUOUS:
        raise CodecError("not a continuous-mode reply")
    if checksum(reply[:6]) != int.from_bytes(reply[6:8], "big"):
        raise CodecError("continuous-mode reply checksum mismatch")
    return reply[1]


class FramerStats:
    __slots__ = ("bytes_total", "bytes_skipped", "skip_events", "frames", "checksum_errors")

    def __init__(self) -> None:
        self.bytes_total = self.bytes_skipped = self.skip_events = self.frames = self.checksum_errors = 0

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


class Framer:
    """Incremental finder of checksum-valid replies (0xC2 packets, 0xC4 confirmations).

    A candidate start byte whose reply fails the checksum is skipped (one byte) and counted:
    0xC2 may occur inside a float, so the checksum is what decides."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.stats = FramerStats()

    def feed(self, data: bytes) -> list[bytes]:
        st = self.stats
        st.bytes_total += len(data)
        buf = self.buf
        buf += data
        out: list[bytes] = []
        i, n = 0, len(buf)
        while i < n:
            b = buf[i]
            length = REPLY_LENGTHS.get(b)
            if length is None:
                j = i + 1
                while j < n and buf[j] not in REPLY_LENGTHS:
                    j += 1
                st.bytes_skipped += j - i
                st.skip_events += 1
                i = j
                continue
            if n - i < length:
                break
            end = i + length
            if sum(buf[i : end - 2]) & 0xFFFF == (buf[end - 2] << 8 | buf[end - 1]):
                out.append(bytes(buf[i:end]))
                st.frames += 1
                i = end
            else:
                st.checksum_errors += 1
                st.bytes_skipped += 1
                st.skip_events += 1
                i += 1
        del buf[:i]
        return out

    def reset(self) -> None:
        self.buf.clear()
