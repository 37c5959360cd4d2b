"""A simulated Aceinna IMU380 / DMU380 on a pseudo-terminal.

Speaks the "UU" protocol (docs/interface.md, "External IMU") from its own encoders - it
does not use the flight codec's decoders, so a test of the driver against it checks the
decoding independently of the code under test.  It streams its output packet at the rate
of field 0x0001 while answering commands; responses can be delayed behind a few output
packets; it NAKs unknown commands and fields it refuses (and, on request, any command
type); its bytes can be dropped or corrupted (:class:`~ground.devices.ports.Faults`);
a wrong baud on the host side garbles everything; JI reboots it into a bootloader that
takes WA blocks (optionally losing or NAKing some) and JA boots the new image.

Truth: :mod:`ground.devices.motion`; raw values are rounded to the nearest LSB.
"""

from __future__ import annotations

import binascii
import math
import struct
import time
from collections import deque

from . import motion
from .ports import Faults, PtyPort, SerialSim

_G = 9.80665
ACCEL_LSB_M_S2 = 20.0 / 65536 * _G
RATE_LSB_RAD_S = 7.0 * math.pi / 65536
TEMP_LSB_C = 200.0 / 65536
MAG_LSB_GAUSS = 2.0 / 65536
ANGLE_LSB_RAD = 2.0 * math.pi / 65536

BAUDS = {0: 9600, 1: 19200, 2: 38400, 3: 57600, 4: 4800, 5: 115200, 6: 230400}
#: Fields the unit lets a user get/set (others are NAKed, like calibration fields).
USER_FIELDS = (0x0001, 0x0002, 0x0003, 0x0005, 0x0006, 0x0007)


def frame(ptype: bytes, payload: bytes = b"") -> bytes:
    body = ptype + bytes((len(payload),)) + payload
    return b"UU" + body + struct.pack(">H", binascii.crc_hqx(body, 0x1D0F))


def i16(x: float, lsb: float) -> int:
    return max(-32768, min(32767, round(x / lsb)))


class Imu380Sim(SerialSim):
    def __init__(
        self,
        port: PtyPort,
        *,
        baud: int = 115200,
        packet_type: bytes = b"S1",
        rate_divider: int = 1,
        serial_number: int = 1808400123,
        model: str = "DMU380SA-200 5020-0935-01",
        version: tuple = (19, 1, 2, 0, 7),
        faults: Faults | None = None,
        response_delay_packets: int = 0,
        reboot_s: float = 0.2,
        erase_s: float = 0.3,
    ):
        super().__init__(port, baud=baud, faults=faults, name="imu380-sim")
        code = {b: c for c, b in BAUDS.items()}[baud]
        self.eeprom_fields = {
            0x0001: rate_divider,
            0x0002: code,
            0x0003: int.from_bytes(packet_type, "big"),
            0x0005: 5356,
            0x0006: 5356,
            0x0007: 0,
        }
        self.fields = dict(self.eeprom_fields)
        self.serial_number, self.model, self.version = serial_number, model, version
        self.eeprom = {a: (a * 7 + 3) & 0xFFFF for a in range(0x0800)}
        self.eeprom[0x071C] = 0x0004  # product configuration: algorithm, no mag/GPS
        self.mode = "app"
        self.flash = bytearray()
        self.reboot_s, self.erase_s = reboot_s, erase_s
        self.response_delay_packets = response_delay_packets
        self._rx = bytearray()
        self._pending: deque[tuple[float, int, bytes]] = deque()  # (not before t, after n packets, bytes)
        self._mode_switch: tuple[float, str] | None = None
        self._next_packet = self.t0
        self.counter = 0
        # fault switches a test can set
        self.nak_types: set[bytes] = set()  # NAK every command of these types
        self.drop_wa_reply_once: set[int] = set()  # block addresses whose first reply is lost
        self.nak_wa: set[int] = set()  # block addresses the bootloader NAKs
        self.silent = False  # answer nothing (a dead unit)
        self.log: list[bytes] = []  # command types received, in order
        self.packets_sent = 0

    # -- output --------------------------------------------------------------------------
    def _respond(self, data: bytes, now: float, delay_s: float = 0.0) -> None:
        self._pending.append((now + delay_s, self.packets_sent + self.response_delay_packets, data))

    def _flush_pending(self, now: float) -> None:
        while (
            self._pending
            and self._pending[0][0] <= now
            and (self._pending[0][1] <= self.packets_sent or self.mode != "app" or self.fields[1] == 0)
        ):
            self.send(self._pending.popleft()[2])

    def output_payload(self, ptype: bytes, t: float) -> bytes:
        w = motion.rate_rad_s(t)
        a = motion.accel_m_s2(t)
        acc = [i16(v, ACCEL_LSB_M_S2) for v in a]
        rate = [i16(v, RATE_LSB_RAD_S) for v in w]
        temps = [i16(30.0 + k, TEMP_LSB_C) for k in range(3)]
        board = i16(32.5, TEMP_LSB_C)
        mag = [i16(v, MAG_LSB_GAUSS) for v in (0.2, -0.1, 0.4)]
        itow = int(t * 1000) & 0xFFFFFFFF
        if ptype == b"S1":
            return struct.pack(">10h2H", *acc, *rate, *temps, board, self.counter & 0xFFFF, 0)
        if ptype == b"S0":
            return struct.pack(">13h2H", *acc, *rate, *mag, *temps, board, itow & 0xFFFF, 0)
        ang = [i16(v, ANGLE_LSB_RAD) for v in (0.1, -0.05, 1.2)]
        if ptype == b"A1":
            return struct.pack(">13hIH", *ang, *rate, *acc, *mag, temps[0], itow, 0)
        if ptype == b"A2":
            return struct.pack(">12hIH", *ang, *rate, *acc, *temps, itow, 0)
        raise ValueError(ptype)

    def on_tick(self, now: float) -> float:
        self._flush_pending(now)
        if self._mode_switch and now >= self._mode_switch[0]:
            self.mode = self._mode_switch[1]
            self._mode_switch = None
            if self.mode == "app":
                self.fields = dict(self.eeprom_fields)  # a reboot loads the saved fields
                self._next_packet = now
        div = self.fields[0x0001]
        if self.mode != "app" or div == 0 or self.silent:
            return now + 0.01
        period = div / 100.0
        if now >= self._next_packet:
            ptype = self.fields[0x0003].to_bytes(2, "big")
            try:
                payload = self.output_payload(ptype, self._next_packet - self.t0)
            except ValueError:
                payload = None
            if payload is not None:
                self.send(frame(ptype, payload))
            self.counter += 1
            self.packets_sent += 1
            self._next_packet += period
            if self._next_packet < now - 1.0:  # fell far behind (debugger, suspend, a loaded host): skip ahead
                # the packets not sent are lost, as a real unit's would be: its counter, the
                # device's clock, counts them (counter k stays the packet of k periods)
                skipped = math.floor((now - self._next_packet) / period) + 1
                self._next_packet += skipped * period
                self.counter += skipped
            self._flush_pending(now)
        return min(self._next_packet, now + 0.01)

    # -- input ---------------------------------------------------------------------------
    def on_bytes(self, data: bytes, now: float) -> None:
        buf = self._rx
        buf += data
        while True:
            j = buf.find(b"UU")
            if j < 0:
                del buf[: max(0, len(buf) - 1)]
                return
            del buf[:j]
            if len(buf) >= 4 and bytes(buf[2:4]) == b"PK" and (len(buf) < 5 or buf[4] != 0):
                del buf[:4]  # the short ping "UUPK" needs no CRC
                self._command(b"PK", b"", now)
                continue
            if len(buf) < 5:
                return
            n = buf[4]
            if len(buf) < 7 + n:
                return
            body = bytes(buf[2 : 5 + n])
            crc = int.from_bytes(buf[5 + n : 7 + n], "big")
            if binascii.crc_hqx(body, 0x1D0F) != crc:
                del buf[:1]  # garbage: resync
                continue
            del buf[: 7 + n]
            self._command(body[:2], body[3:], now)

    def _nak(self, ptype: bytes, now: float) -> None:
        self._respond(frame(b"\x15\x15", ptype), now)

    def _command(self, ptype: bytes, payload: bytes, now: float) -> None:
        self.log.append(ptype)
        if self.silent:
            return
        if ptype in self.nak_types:
            return self._nak(ptype, now)
        if self.mode == "boot":
            return self._boot_command(ptype, payload, now)
        if self.mode != "app":
            return
        if ptype == b"PK":
            return self._respond(frame(b"PK"), now)
        if ptype == b"CH":
            return self._respond(frame(b"CH", payload), now)
        if ptype == b"GP" and len(payload) == 2:
            what = payload
            if what == b"ID":
                return self._respond(
                    frame(b"ID", struct.pack(">I", self.serial_number) + self.model.encode() + b"\x00"), now
                )
            if what == b"VR":
                return self._respond(frame(b"VR", bytes(self.version)), now)
            if what == b"T0":
                return self._respond(frame(b"T0", struct.pack(">14H", *range(14))), now)
            try:
                return self._respond(frame(what, self.output_payload(what, now - self.t0)), now)
            except ValueError:
                return self._nak(ptype, now)
        if ptype in (b"GF", b"RF") and payload and len(payload) == 1 + 2 * payload[0]:
            src = self.fields if ptype == b"GF" else self.eeprom_fields
            ids = struct.unpack(f">{payload[0]}H", payload[1:])
            good = [i for i in ids if i in src]
            if good:
                self._respond(
                    frame(ptype, bytes((len(good),)) + b"".join(struct.pack(">HH", i, src[i]) for i in good)), now
                )
            if len(good) < len(ids):
                self._nak(ptype, now)
            return
        if ptype in (b"SF", b"WF") and payload and len(payload) == 1 + 4 * payload[0]:
            vals = struct.unpack(f">{2 * payload[0]}H", payload[1:])
            pairs = list(zip(vals[0::2], vals[1::2]))
            good = [(i, v) for i, v in pairs if i in USER_FIELDS and (i != 2 or v in BAUDS)]
            new_baud = None
            for i, v in good:
                if ptype == b"SF":
                    self.fields[i] = v
                    if i == 0x0001:
                        self._next_packet = now + v / 100.0
                    if i == 0x0002:
                        new_baud = BAUDS[v]
                else:
                    self.eeprom_fields[i] = v
            out = b""
            if good:
                out += frame(ptype, bytes((len(good),)) + b"".join(struct.pack(">H", i) for i, _ in good))
            if len(good) < len(pairs):
                out += frame(b"\x15\x15", ptype)
            if new_baud is None:
                self._respond(out, now)
            else:
                self.send(out)  # the answer goes out at the old speed, then it switches
                self.baud = new_baud
            return
        if ptype == b"RE" and len(payload) == 3:
            a, n = int.from_bytes(payload[:2], "big"), payload[2]
            words = [self.eeprom.get(a + k, 0xFFFF) for k in range(n)]
            return self._respond(frame(b"RE", payload + struct.pack(f">{n}H", *words)), now)
        if ptype == b"JI":
            self.send(frame(b"JI"))
            self.fields[0x0001] = 0  # stops streaming at once
            self._mode_switch = (now + self.reboot_s, "boot")
            self.mode = "rebooting"
            self.flash = bytearray()
            return
        return self._nak(ptype, now)

    def _boot_command(self, ptype: bytes, payload: bytes, now: float) -> None:
        if ptype == b"WA" and len(payload) >= 5 and len(payload) == 5 + payload[4]:
            addr, n = int.from_bytes(payload[:4], "big"), payload[4]
            if addr in self.nak_wa:
                return self._nak(ptype, now)
            end = addr + n
            if len(self.flash) < end:
                self.flash.extend(b"\xff" * (end - len(self.flash)))
            self.flash[addr:end] = payload[5:]
            if addr in self.drop_wa_reply_once:
                self.drop_wa_reply_once.discard(addr)
                return
            return self._respond(frame(b"WA", payload[:5]), now, delay_s=self.erase_s if addr == 0 else 0.0)
        if ptype == b"JI":
            return self._respond(frame(b"JI"), now)
        if ptype == b"JA":
            self.send(frame(b"JA"))
            if len(self.flash) >= 12:
                self.version = tuple(self.flash[8:13])  # the simulator's convention: version at 8..12
            self._mode_switch = (now + self.reboot_s, "app")
            self.mode = "rebooting"
            return
        # the bootloader answers nothing else

    # -- test helpers --------------------------------------------------------------------
    def power_cycle(self) -> None:
        with self.lock:
            self.fields = dict(self.eeprom_fields)
            self.baud = BAUDS[self.fields[0x0002]]
            self.mode = "app"
            self._pending.clear()
            self._next_packet = time.monotonic()
