"""Simulated housekeeping devices on pseudo-terminals: an EMUS G1 BMS and a USB-ISS bridge
with an OPC-N3 behind it.  The real drivers open them like hardware (a path, optionally a
stable symlink that survives "replugging").

* :class:`EmusBmsModel` / :class:`OpcN3Model` / :class:`UsbIssModel` - the device logic,
  pure (bytes in, bytes out; the caller passes the time and a seeded ``random.Random``).
* :class:`EmusBmsSim`, :class:`UsbIssOpcSim` - a model behind a pseudo-terminal, served by
  one thread (:class:`ground.devices.ports.SerialSim`, as the simulated IMUs), with the
  faults the drivers must survive: replies out of order, broadcasts, corrupted or merged
  sentences, a busy OPC, histograms with a bad checksum, unplug/replug.

``python -m ground hk-sim`` starts them for bench work without hardware and prints the
configuration that points pygnc's housekeeping task at them.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from ground.devices.ports import PtyPort, SerialSim
from pygnc.drivers import emus_bms_codec as eb
from pygnc.drivers import opc_n3_codec as on
from pygnc.drivers import usb_iss as ui
from pygnc.drivers.emus_bms import DEFAULT_SENTENCES

# ------------------------------------------------------------------------------------------
# EMUS BMS
# ------------------------------------------------------------------------------------------


class EmusBmsModel:
    """A pack of *n_cells* cells in groups of *group_size*; sentences as an EMUS G1 sends them."""

    def __init__(self, n_cells: int = 12, group_size: int = 8, rng: random.Random | None = None):
        self.n_cells, self.group_size = n_cells, group_size
        self.rng = rng or random.Random(1)
        self.cell_v = [3.70 + 0.01 * (i % 5) for i in range(n_cells)]
        self.module_t = [25 + i % 3 for i in range(n_cells)]
        self.cell_t = [24 + i % 4 for i in range(n_cells)]
        self.balancing = [0 if i % 3 else 40 for i in range(n_cells)]
        self.current_a = -12.3
        self.soc_pct = 81.25

    def _cell_raw(self, v: float) -> int:
        return max(0, min(255, round(v / 0.01) - 200))

    def _groups(self, name: str, raw: list[int]) -> list[bytes]:
        out = []
        for first in range(0, self.n_cells, self.group_size):
            chunk = raw[first : first + self.group_size]
            out.append(
                eb.encode_sentence(
                    name,
                    [eb.hex_field(0), eb.hex_field(first + 1), eb.hex_field(len(chunk)), eb.hex_array_field(chunk)],
                )
            )
        return out

    def sentences(self, name: str) -> list[bytes]:
        """The reply to a request for *name* (several sentences for group sentences)."""
        h = eb.hex_field
        n = self.n_cells
        cv = [self._cell_raw(v) for v in self.cell_v]
        mt = [t + 100 for t in self.module_t]
        ct = [t + 100 for t in self.cell_t]
        if name == "BV1":
            return [
                eb.encode_sentence(
                    "BV1",
                    [h(n), h(min(cv)), h(max(cv)), h(round(sum(cv) / n)), h(round(sum(self.cell_v) / 0.01), 2), ""],
                )
            ]
        if name == "BV2":
            return self._groups("BV2", cv)
        if name in ("BT1", "BT3"):
            t = mt if name == "BT1" else ct
            return [eb.encode_sentence(name, [h(n), h(min(t)), h(max(t)), h(round(sum(t) / n)), ""])]
        if name in ("BT2", "BT4"):
            return self._groups(name, mt if name == "BT2" else ct)
        if name == "BB1":
            b = self.balancing
            return [
                eb.encode_sentence(
                    "BB1", [h(n), h(min(b)), h(max(b)), h(round(sum(b) / n)), "", h(self._cell_raw(4.10))]
                )
            ]
        if name == "BB2":
            return self._groups("BB2", self.balancing)
        if name == "BC1":
            cap = 100 * 3600
            return [
                eb.encode_sentence(
                    "BC1", [h(round(cap * self.soc_pct / 100), 4), h(cap, 4), h(round(self.soc_pct / 0.01), 2)]
                )
            ]
        if name == "CV1":
            return [
                eb.encode_sentence(
                    "CV1",
                    [h(round(sum(self.cell_v) / 0.01), 2), eb.signed_hex_field(round(self.current_a / 0.1), 2)]
                    + [""] * 8,
                )
            ]
        if name == "ST1":
            return [
                eb.encode_sentence(
                    "ST1", [h(3), h(0), h(0), h(125, 2), h(0x1F), h(0x0000, 2), h(0), h((1 << 9) | (1 << 11), 4)]
                )
            ]
        if name == "OT1":
            return [eb.encode_sentence("OT1", [h(0x40), h(0), h(0x08), h(0)])]
        if name == "DT1":
            return [eb.encode_sentence("DT1", [h(i * 10, 2) for i in range(12)])]
        if name == "VR1":
            return [eb.encode_sentence("VR1", ["G1CU", h(0x123456, 3), "2.0.13"])]
        return []

    def drift(self) -> None:
        """Small changes between polls, so consecutive readings differ."""
        r = self.rng
        self.cell_v = [min(4.2, max(3.0, v + r.uniform(-0.005, 0.005))) for v in self.cell_v]
        self.current_a = max(-99.0, min(99.0, self.current_a + r.uniform(-0.5, 0.5)))


def corrupt_sentence(line: bytes, rng: random.Random) -> bytes:
    """One of the faults a noisy line shows: a flipped character (CRC fails), a lost line end
    (the sentence runs into the next one) or garbage in front."""
    kind = rng.randrange(3)
    if kind == 0 and len(line) > 6:
        i = rng.randrange(0, len(line) - 4)
        return line[:i] + bytes([line[i] ^ 0x04]) + line[i + 1 :]
    if kind == 1:
        return line.rstrip(b"\r\n")
    return bytes(rng.randrange(0x20, 0x7F) for _ in range(rng.randrange(1, 8))) + line


# ------------------------------------------------------------------------------------------
# OPC-N3 and the USB-ISS bridge
# ------------------------------------------------------------------------------------------

DEFAULT_BOUNDARIES_UM = (
    0.35,
    0.46,
    0.66,
    1.0,
    1.3,
    1.7,
    2.3,
    3.0,
    4.0,
    5.2,
    6.5,
    8.0,
    10.0,
    12.0,
    14.0,
    16.0,
    18.0,
    20.0,
    22.0,
    25.0,
    28.0,
    31.0,
    34.0,
    37.0,
    40.0,
)


class OpcN3Model:
    """The OPC-N3's SPI side, one byte at a time (:meth:`exchange`).

    Answers a command byte first with busy, then (when the same byte comes again) busy with
    probability *busy_prob*, else ready, then clocks out the record.  A command it does not
    know is answered 0x00 (neither busy nor ready), as are the next :attr:`junk_next` command
    bytes (fault injection).  A histogram carries a bad checksum with probability
    *bad_crc_prob*.  The sampling period is the time since the previous read;
    the flow is 0 while the fan is off.
    """

    def __init__(
        self,
        rng: random.Random | None = None,
        busy_prob: float = 0.0,
        bad_crc_prob: float = 0.0,
        idle_reset_s: float = 2.0,
    ):
        self.rng = rng or random.Random(2)
        self.idle_reset_s = idle_reset_s  # quiet time after which a half-done command is dropped
        self.busy_prob, self.bad_crc_prob = busy_prob, bad_crc_prob
        self.junk_next = 0  # answer the next N command bytes with 0x00 (fault injection)
        self.fan_on = self.laser_on = False
        self.t_last_read: float | None = None
        self.state = "idle"
        self.cmd = 0
        self.out = b""
        self.pos = 0
        self.t_last_byte = 0.0
        self.histograms = 0
        self.bad_crc_sent = 0
        self.power_log: list[tuple[float, int]] = []

    COMMANDS = frozenset(
        (
            on.CMD_HISTOGRAM,
            on.CMD_INFO,
            on.CMD_SERIAL,
            on.CMD_FIRMWARE,
            on.CMD_DAC_STATUS,
            on.CMD_CONFIG,
            on.CMD_POWER,
            on.CMD_CHECK,
        )
    )

    def _record(self, cmd: int, now: float) -> bytes | None:
        if cmd == on.CMD_HISTOGRAM:
            return self._histogram(now)
        if cmd == on.CMD_INFO:
            return b"OPC-N3 Iss1.1 FirmwareVer=1.17a...........................BS".ljust(60)[:60]
        if cmd == on.CMD_SERIAL:
            return b"OPC-N3 177350714".ljust(60)[:60]
        if cmd == on.CMD_FIRMWARE:
            return bytes([1, 17])
        if cmd == on.CMD_DAC_STATUS:
            return bytes([int(self.fan_on), int(self.laser_on), 255, 180, int(self.laser_on), 0])
        if cmd == on.CMD_CONFIG:
            c = {
                "bin_boundaries_adc": [i * 150 for i in range(25)],
                "bin_boundaries_um": list(DEFAULT_BOUNDARIES_UM),
                "bin_weighting_raw": [100] * 24,
                "pm_diameter_a_um": 1.0,
                "pm_diameter_b_um": 2.5,
                "pm_diameter_c_um": 10.0,
                "max_tof_raw": 1000,
                "am_sampling_interval_count": 1,
                "am_middle_interval_count": 0,
                "am_max_data_arrays": 0,
                "am_only_save_pm": 0,
                "am_fan_on_in_idle": 0,
                "am_laser_on_in_idle": 0,
                "tof_to_sfr_factor": 50,
                "pvp": 60,
                "bin_weighting_index": 0,
            }
            return on.encode_config(c)
        if cmd in (on.CMD_POWER, on.CMD_CHECK):
            return b""
        return None

    def _histogram(self, now: float) -> bytes:
        r = self.rng
        period_s = 0.0 if self.t_last_read is None else min(655.35, now - self.t_last_read)
        self.t_last_read = now
        flow = 5.5 if self.fan_on else 0.0
        lam = 30.0 * period_s if self.laser_on and self.fan_on else 0.0
        counts = [min(65535, int(r.expovariate(1.0) * lam / (1 + b))) for b in range(24)]
        pm = (0.7 * sum(counts[:4]) / 10, 1.1 * sum(counts[:8]) / 10, 2.3 * sum(counts) / 10)
        bad = r.random() < self.bad_crc_prob
        self.histograms += 1
        self.bad_crc_sent += bad
        return on.encode_histogram(
            counts,
            (r.randrange(256), 0, 30, 60),
            round(period_s * 100),
            round(flow * 100),
            0x6A3C,
            0x7B21,
            pm,
            (1, 0, 2, 0),
            r.randrange(1000) if self.fan_on else 0,
            600 if self.laser_on else 0,
            corrupt_crc=bad,
        )

    def exchange(self, b: int, now: float) -> int:
        if self.state != "idle" and now - self.t_last_byte > self.idle_reset_s:
            self.state = "idle"  # the host stopped mid-command: the device gives up
        self.t_last_byte = now
        if self.state == "data":
            v = self.out[self.pos]
            self.pos += 1
            if self.pos >= len(self.out):
                self.state = "idle"
            return v
        if self.state == "write":
            self._power(b, now)
            self.state = "idle"
            return on.CMD_POWER
        if self.state == "handshake" and b == self.cmd:
            if self.rng.random() < self.busy_prob:
                return on.BUSY
            out = self._record(b, now)
            if out is None:
                self.state = "idle"
                return 0x00
            if b == on.CMD_POWER:
                self.state = "write"
            elif out:
                self.state, self.out, self.pos = "data", out, 0
            else:
                self.state = "idle"
            return on.READY
        # a new command byte: the first answer is always busy
        if b not in self.COMMANDS or self.junk_next > 0:
            self.junk_next = max(0, self.junk_next - 1)
            self.state = "idle"
            return 0x00
        self.state, self.cmd = "handshake", b
        return on.BUSY

    def _power(self, option: int, now: float) -> None:
        self.power_log.append((now, option))
        if option == on.POWER_FAN_ON:
            self.fan_on = True
        elif option == on.POWER_FAN_OFF:
            self.fan_on = False
        elif option == on.POWER_LASER_ON:
            self.laser_on = True
        elif option == on.POWER_LASER_OFF:
            self.laser_on = False


class UsbIssModel:
    """The bridge: parses one USB packet (here: one read chunk) of commands, returns the reply."""

    def __init__(self, opc: OpcN3Model, nack_prob: float = 0.0, rng: random.Random | None = None):
        self.opc = opc
        self.mode = 0x00
        self.nack_prob = nack_prob
        self.nack_next = 0  # refuse the next N SPI transactions (fault injection)
        self.rng = rng or random.Random(3)

    def packet(self, data: bytes, now: float) -> bytes:
        out = bytearray()
        i = 0
        while i < len(data):
            c = data[i]
            if c == ui.CMD_ISS and i + 1 < len(data):
                sub = data[i + 1]
                if sub == ui.SUB_VERSION:
                    out += bytes([ui.MODULE_ID, 7, self.mode])
                    i += 2
                elif sub == ui.SUB_SERIAL:
                    out += b"00012345"
                    i += 2
                elif sub == ui.SUB_MODE and i + 3 < len(data):
                    m = data[i + 2]
                    if ui.SPI_MODE_BASE <= m <= ui.SPI_MODE_BASE + 3:
                        self.mode = m
                        out += bytes([ui.ACK, 0])
                    else:
                        out += bytes([ui.NACK, 0x05])
                    i += 4
                else:
                    out += bytes([ui.NACK, 0x05])
                    i = len(data)
            elif c == ui.CMD_SPI:
                payload = data[i + 1 :]
                spi_ok = ui.SPI_MODE_BASE <= self.mode <= ui.SPI_MODE_BASE + 3
                if not spi_ok or self.nack_next > 0 or (self.nack_prob and self.rng.random() < self.nack_prob):
                    self.nack_next = max(0, self.nack_next - 1)
                    out += bytes([ui.NACK]) + bytes(len(payload))
                else:
                    out += bytes([ui.ACK]) + bytes(self.opc.exchange(b, now) for b in payload)
                i = len(data)
            else:
                i = len(data)  # not a command: the bridge ignores the packet
        return bytes(out)


class EmusBmsSim(SerialSim):
    """An EMUS G1 on a pty (*link*: a stable name for it, left pointing at the gone pty while
    unplugged).

    Request mode: requests that arrive within *reorder_window_s* of each other are answered
    together in shuffled order (so replies come out of order), each sentence corrupted with
    probability *corrupt_prob*.  Broadcast mode (*broadcast_period_s* > 0): the summary
    sentences (and their groups) are sent every period without being asked.
    """

    tick_after_bytes = True  # requests are answered by on_tick

    def __init__(
        self,
        link=None,
        n_cells: int = 12,
        group_size: int = 8,
        seed: int = 1,
        reorder_window_s: float = 0.02,
        corrupt_prob: float = 0.0,
        broadcast_period_s: float = 0.0,
        broadcast=("BV1", "BV2", "BT1", "BC1", "CV1", "ST1"),
        ignore=(),
    ):
        super().__init__(PtyPort(link, keep_link=True), baud=None, name="EmusBmsSim")
        self.rng = random.Random(seed)
        self.model = EmusBmsModel(n_cells, group_size, self.rng)
        self.reorder_window_s = reorder_window_s
        self.corrupt_prob = corrupt_prob
        self.broadcast_period_s = broadcast_period_s
        self.broadcast = tuple(broadcast)
        self.ignore = set(ignore)  # requests never answered (a timeout every time)
        self.framer = eb.SentenceFramer()
        self.requests: list[str] = []
        self.sentences_sent = 0
        self.corrupted = 0
        self._batch: list[bytes] = []
        self._batch_t: float | None = None
        self._next_bc: float | None = None

    def _maybe_corrupt(self, line: bytes) -> bytes:
        self.sentences_sent += 1
        if self.corrupt_prob and self.rng.random() < self.corrupt_prob:
            self.corrupted += 1
            return corrupt_sentence(line, self.rng)
        return line

    def on_bytes(self, data: bytes, now: float) -> None:
        for s in self.framer.feed(data):
            if s.fields != ("?",):
                continue
            self.requests.append(s.name)
            if s.name in self.ignore:
                continue
            self._batch += self.model.sentences(s.name)
            if self._batch_t is None:
                self._batch_t = now + self.reorder_window_s

    def on_tick(self, now: float) -> float | None:
        nxt = [now + 0.5]
        if self._batch_t is not None:
            if now >= self._batch_t:
                batch, self._batch, self._batch_t = self._batch, [], None
                self.rng.shuffle(batch)
                t = now
                for line in batch:
                    t += self.rng.uniform(0.0, 0.003)
                    self.send_at(t, self._maybe_corrupt(line))
                self.model.drift()
            else:
                nxt.append(self._batch_t)
        if self.broadcast_period_s > 0:
            if self._next_bc is None or now >= self._next_bc:
                self._next_bc = now + self.broadcast_period_s
                t = now
                for name in self.broadcast:
                    for line in self.model.sentences(name):
                        t += 0.001
                        self.send_at(t, self._maybe_corrupt(line))
                self.model.drift()
            nxt.append(self._next_bc)
        return min(nxt)


class UsbIssOpcSim(SerialSim):
    """A USB-ISS with an OPC-N3 on a pty (busy and bad-checksum rates configurable)."""

    def __init__(
        self,
        link=None,
        seed: int = 2,
        busy_prob: float = 0.0,
        bad_crc_prob: float = 0.0,
        nack_prob: float = 0.0,
        reply_delay_s: float = 0.0,
        idle_reset_s: float = 2.0,
    ):
        super().__init__(PtyPort(link, keep_link=True), baud=None, name="UsbIssOpcSim")
        self.rng = random.Random(seed)
        self.opc = OpcN3Model(self.rng, busy_prob, bad_crc_prob, idle_reset_s)
        self.bridge = UsbIssModel(self.opc, nack_prob, self.rng)
        self.reply_delay_s = reply_delay_s
        #: Fault injection: the command after this many more goes unanswered (None: off).
        self.drop_after: int | None = None

    def on_bytes(self, data: bytes, now: float) -> None:
        if self.drop_after is not None:
            self.drop_after -= 1
            if self.drop_after < 0:
                self.drop_after = None
                return
        reply = self.bridge.packet(data, now)
        if reply:
            self.send_at(now + self.reply_delay_s, reply)

    def on_replug(self) -> None:
        # Power came back: the bridge forgets its mode, the OPC is off.
        self.bridge.mode = 0
        self.opc.fan_on = self.opc.laser_on = False
        self.opc.state = "idle"
        self.opc.t_last_read = None


# ------------------------------------------------------------------------------------------
# python -m ground hk-sim
# ------------------------------------------------------------------------------------------


def add_arguments(p) -> None:
    p.add_argument(
        "--dir", type=Path, default=Path("hk-sim"), help="directory for the stable device links (default ./hk-sim)"
    )
    p.add_argument(
        "--bms", choices=("request", "broadcast", "none"), default="request", help="EMUS BMS mode (default request)"
    )
    p.add_argument("--opc", choices=("yes", "no"), default="yes", help="simulate a USB-ISS + OPC-N3")
    p.add_argument("--cells", type=int, default=12, help="cells in the simulated pack")
    p.add_argument("--corrupt", type=float, default=0.0, help="probability a BMS sentence is corrupted")
    p.add_argument("--busy", type=float, default=0.0, help="probability the OPC answers busy")
    p.add_argument("--bad-crc", type=float, default=0.0, help="probability of a histogram with a bad checksum")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after this long (default: until Ctrl-C)")


def run(args) -> int:
    for name, v in (("--corrupt", args.corrupt), ("--busy", args.busy), ("--bad-crc", args.bad_crc)):
        if not 0.0 <= v <= 1.0:
            print(f"hk-sim: {name} must be a probability in [0, 1]", file=sys.stderr)
            return 2
    if args.cells < 1 or args.cells > 255:
        print("hk-sim: --cells must be 1..255", file=sys.stderr)
        return 2
    args.dir.mkdir(parents=True, exist_ok=True)
    sims, toml = [], []
    if args.bms != "none":
        bms = EmusBmsSim(
            args.dir / "emus_bms",
            n_cells=args.cells,
            corrupt_prob=args.corrupt,
            broadcast_period_s=1.0 if args.bms == "broadcast" else 0.0,
        ).start()
        sims.append(bms)
        toml.append(
            f'[[housekeeping_devices]]\nname = "bms"\nkind = "emus_bms"\nport = "{bms.path}"\n'
            f'mode = "{args.bms}"\nperiod_s = 2.0\n'
        )
    if args.opc == "yes":
        opc = UsbIssOpcSim(args.dir / "usb_iss", busy_prob=args.busy, bad_crc_prob=args.bad_crc).start()
        sims.append(opc)
        toml.append(
            f'[[housekeeping_devices]]\nname = "opc"\nkind = "opc_n3"\nport = "{opc.path}"\n'
            f"period_s = 5.0\nfan_spinup_s = 1.0\n"
        )
    print("simulated devices running; a configuration that uses them (PYGNC_CONFIG):\n")
    print("housekeeping_enabled = true\n")
    print("\n".join(toml))
    sys.stdout.flush()
    try:
        if args.seconds > 0:
            time.sleep(args.seconds)
        else:
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        for s in sims:
            s.stop()
    return 0


# ------------------------------------------------------------------------------------------
# A synthetic bus log of housekeeping readings (tests, benchmarks, archive demos)
# ------------------------------------------------------------------------------------------


def hk_reading_bodies(
    n_polls: int,
    seed: int = 1,
    t0_sc_s: float = 1.7e9,
    period_s: float = 10.0,
    sentences=DEFAULT_SENTENCES,
    opc: bool = True,
) -> list[tuple[str, dict]]:
    """(message type, body) of what the housekeeping task publishes for *n_polls* polls of a
    simulated BMS ("bms") and OPC-N3 ("opc"), decoded by the real codecs."""
    rng = random.Random(seed)
    model = EmusBmsModel(rng=rng)
    opc_model = OpcN3Model(rng)
    opc_model.fan_on = opc_model.laser_on = True
    framer = eb.SentenceFramer()
    out = []
    for k in range(n_polls):
        t = t0_sc_s + k * period_s
        for name in sentences:
            for s in framer.feed(b"".join(model.sentences(name))):
                out.append(
                    (
                        "hk_reading",
                        {
                            "device": "bms",
                            "kind": "emus_bms",
                            "record": s.name,
                            "t_sc_s": t,
                            "values": eb.decode_sentence(s),
                            "raw": s.raw,
                            "solicited": True,
                        },
                    )
                )
        model.drift()
        if opc:
            raw = opc_model._histogram(k * period_s)
            out.append(
                (
                    "hk_reading",
                    {
                        "device": "opc",
                        "kind": "opc_n3",
                        "record": "histogram",
                        "t_sc_s": t + 0.5,
                        "values": on.decode_histogram(raw),
                        "raw": raw,
                        "solicited": True,
                    },
                )
            )
    return out


def synthetic_hk_buslog(n_polls: int, seed: int = 1, run: int = 1, **kw) -> bytes:
    """A bus log (``pygnc.formats.buslog``) of :func:`hk_reading_bodies`, as the status
    reporter would record it."""
    from pygnc.bus.messages import SCHEMA_VERSION, Encoder
    from pygnc.formats.buslog import encode_frame, encode_header_frame

    enc = Encoder("housekeeping")
    parts = [encode_header_frame(run, SCHEMA_VERSION)]
    for i, (mtype, body) in enumerate(hk_reading_bodies(n_polls, seed, **kw)):
        parts.append(encode_frame("hk", float(i) * 0.01, enc.encode(mtype, body)))
    return b"".join(parts)
