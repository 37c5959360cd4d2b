"""Alphasense OPC-N3 optical particle counter over SPI (through a USB-ISS bridge).

Facts and sources: ``docs/interface.md`` ("Alphasense OPC-N3"), from south-coast-science
scs_dfe_eng (32d2291) and lizcorson/py-opc opc-n3 (2ebbfe5) as summarised in the project's
protocol notes.  Every command follows the same handshake: send the command byte; the
device answers 0x31 while busy and 0xF3 when ready; repeat the command byte 10-100 ms apart
until ready; then clock the data bytes (each exchange sends the command byte again and
reads one data byte).  Any other answer means the device lost track: stay quiet for more
than 2 s so it clears its buffer.

Layers:

* pure codec - :func:`crc16_modbus`, :func:`decode_histogram` (refuses a bad checksum with
  :class:`OpcChecksumError`; bins and PM in physical units; concentrations are None, never a
  division by zero, when the sampling period or flow is 0), :func:`encode_histogram` (for
  simulators and tests), the info / serial / firmware / DAC-status / configuration decoders;
* exchanges - generators (:func:`command`, :func:`power_on`, :func:`read_histogram`, ...)
  yielding :class:`~pygnc.drivers.exchange.Transfer` / ``Pause`` through the USB-ISS
  codec: the busy/ready handshake with a bounded number of retries, fan-then-laser power
  sequencing with the fan spin-up time;
* :class:`OpcN3` - the driver: bridge setup, identification, power on, a histogram every
  period, power off at stop; non-blocking (:meth:`OpcN3.service` when the port is readable
  or :meth:`OpcN3.next_deadline` has passed).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

from . import usb_iss
from .readings import Reading
from .exchange import LinkTimeout, Pause, TransactionRunner, run_blocking
from .link import LinkLost, SerialLink

# ------------------------------------------------------------------------------------------
# Constants
# ------------------------------------------------------------------------------------------

READY, BUSY = 0xF3, 0x31
CMD_POWER = 0x03
POWER_FAN_ON, POWER_FAN_OFF, POWER_LASER_ON, POWER_LASER_OFF = 0x03, 0x02, 0x07, 0x06
CMD_HISTOGRAM = 0x30
CMD_INFO = 0x3F
CMD_SERIAL = 0x10
CMD_FIRMWARE = 0x12
CMD_DAC_STATUS = 0x13
CMD_CONFIG = 0x3C
CMD_CHECK = 0xCF

INFO_SIZE = SERIAL_SIZE = 60
FIRMWARE_SIZE = 2
DAC_STATUS_SIZE = 6
CONFIG_SIZE = 168
HISTOGRAM_SIZE = 86
N_BINS = 24

# ------------------------------------------------------------------------------------------
# CRC-16/MODBUS: poly 0x8005 reflected (0xA001), init 0xFFFF, no final xor.
# Check value for b"123456789": 0x4B37.
# ------------------------------------------------------------------------------------------


def _crc16_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC16_TABLE = _crc16_table()


def crc16_modbus(data: bytes) -> int:
    crc = 0xFFFF
    t = _CRC16_TABLE
    for b in data:
        crc = (crc >> 8) ^ t[(crc ^ b) & 0xFF]
    return crc


# ------------------------------------------------------------------------------------------
# Histogram (0x30): 86 bytes, little-endian
# ------------------------------------------------------------------------------------------

#: bins 0-23 (uint16 counts), MToF bins 1/3/5/7 (uint8, 1/3 us), sampling period (uint16,
#: 10 ms), sample flow rate (uint16, 0.01 ml/s), temperature and humidity (uint16 SHT31 raw),
#: PM A/B/C (float32, ug/m^3), reject counts glitch / long TOF / ratio / out of range,
#: fan revolution count, laser status (uint16 each), CRC-16/MODBUS of bytes 0-83.
HISTOGRAM = struct.Struct("<24H4B4H3f6HH")
assert HISTOGRAM.size == HISTOGRAM_SIZE


class OpcError(Exception):
    """An OPC-N3 exchange failed."""


class OpcChecksumError(OpcError):
    """A record's CRC does not match its bytes: refused, never used."""


class OpcFrameError(OpcError):
    """A record of the wrong length."""


class OpcProtocolError(OpcError):
    """The device answered a command byte with neither busy nor ready."""


class OpcBusyTimeout(OpcError):
    """The device stayed busy longer than the busy timeout."""


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def decode_histogram(data: bytes) -> dict:
    """The histogram record in physical units; raises :class:`OpcChecksumError` or
    :class:`OpcFrameError`.

    ``bin_conc_per_ml`` (particles per ml per bin) = counts / (flow x period); it is None,
    and ``sample_volume_ml`` 0, when the period or the flow is 0 (fan stopped, first read
    after power-up): batonopc divided by zero there.  Non-finite PM values become None.
    """
    if len(data) != HISTOGRAM_SIZE:
        raise OpcFrameError(f"histogram of {len(data)} bytes, expected {HISTOGRAM_SIZE}")
    crc = crc16_modbus(data[:84])
    v = HISTOGRAM.unpack(data)
    if crc != v[-1]:
        raise OpcChecksumError(f"histogram CRC 0x{v[-1]:04X} != computed 0x{crc:04X}")
    counts = list(v[0:24])
    mtof = v[24:28]
    period_s, flow_ml_s = v[28] / 100.0, v[29] / 100.0
    volume_ml = period_s * flow_ml_s
    conc = [c / volume_ml for c in counts] if volume_ml > 0 else None
    return {
        "bin_counts": counts,
        "bin_conc_per_ml": conc,
        "sample_volume_ml": volume_ml,
        "mtof_us": [m / 3.0 for m in mtof],   # bins 1, 3, 5, 7
        "sampling_period_s": period_s,
        "sample_flow_ml_s": flow_ml_s,
        "temperature_c": -45.0 + 175.0 * v[30] / 65535.0,
        "relative_humidity_pct": 100.0 * v[31] / 65535.0,
        "pm_a_ug_m3": _finite_or_none(v[32]),
        "pm_b_ug_m3": _finite_or_none(v[33]),
        "pm_c_ug_m3": _finite_or_none(v[34]),
        "reject_glitch": v[35],
        "reject_long_tof": v[36],
        "reject_ratio": v[37],
        "reject_out_of_range": v[38],
        "fan_rev_count": v[39],
        "laser_status": v[40],
    }


def encode_histogram(bin_counts, mtof_raw=(0, 0, 0, 0), period_cs: int = 500, flow_cml_s: int = 550,
                     temperature_raw: int = 0x6000, humidity_raw: int = 0x7000,
                     pm_ug_m3=(0.0, 0.0, 0.0), rejects=(0, 0, 0, 0), fan_rev_count: int = 0,
                     laser_status: int = 600, corrupt_crc: bool = False) -> bytes:
    """A histogram record from raw field values (simulators and tests)."""
    body = HISTOGRAM.pack(*bin_counts, *mtof_raw, period_cs, flow_cml_s, temperature_raw,
                          humidity_raw, *pm_ug_m3, *rejects, fan_rev_count, laser_status, 0)[:84]
    crc = crc16_modbus(body) ^ (0x5A5A if corrupt_crc else 0)
    return body + struct.pack("<H", crc)


# ------------------------------------------------------------------------------------------
# Other records
# ------------------------------------------------------------------------------------------

def decode_text(data: bytes) -> str:
    """A 60-byte info or serial string: printable ASCII, padding stripped."""
    return "".join(chr(b) if 0x20 <= b < 0x7F else " " for b in data).strip()


def decode_firmware(data: bytes) -> dict:
    if len(data) != FIRMWARE_SIZE:
        raise OpcFrameError(f"firmware version of {len(data)} bytes")
    return {"firmware_major": data[0], "firmware_minor": data[1]}


def decode_dac_status(data: bytes) -> dict:
    if len(data) != DAC_STATUS_SIZE:
        raise OpcFrameError(f"DAC/power status of {len(data)} bytes")
    return {"fan_on": bool(data[0]), "laser_dac_on": bool(data[1]), "fan_dac": data[2],
            "laser_dac": data[3], "laser_switch": bool(data[4]), "gain_toggle": data[5]}


#: 25 bin boundaries (ADC), 25 boundary diameters (10 nm), 24 bin weightings, PM diameters
#: A/B/C (10 nm), max TOF, AM sampling-interval count, AM middle-interval count, AM max
#: data arrays, then bytes: AM only-save-PM, AM fan-on-in-idle, AM laser-on-in-idle,
#: TOF-to-SFR factor, PVP, bin-weighting index.
CONFIG = struct.Struct("<25H25H24H3HHHHH6B")
assert CONFIG.size == CONFIG_SIZE


def decode_config(data: bytes) -> dict:
    if len(data) != CONFIG_SIZE:
        raise OpcFrameError(f"configuration of {len(data)} bytes, expected {CONFIG_SIZE}")
    v = CONFIG.unpack(data)
    return {
        "bin_boundaries_adc": list(v[0:25]),
        "bin_boundaries_um": [x / 100.0 for x in v[25:50]],
        "bin_weighting_raw": list(v[50:74]),
        "pm_diameter_a_um": v[74] / 100.0, "pm_diameter_b_um": v[75] / 100.0,
        "pm_diameter_c_um": v[76] / 100.0,
        "max_tof_raw": v[77], "am_sampling_interval_count": v[78],
        "am_middle_interval_count": v[79], "am_max_data_arrays": v[80],
        "am_only_save_pm": v[81], "am_fan_on_in_idle": v[82], "am_laser_on_in_idle": v[83],
        "tof_to_sfr_factor": v[84], "pvp": v[85], "bin_weighting_index": v[86],
    }


def encode_config(c: dict) -> bytes:
    """The configuration block of a :func:`decode_config` dict (simulators and tests)."""
    return CONFIG.pack(
        *c["bin_boundaries_adc"], *(round(x * 100) for x in c["bin_boundaries_um"]),
        *c["bin_weighting_raw"], round(c["pm_diameter_a_um"] * 100), round(c["pm_diameter_b_um"] * 100),
        round(c["pm_diameter_c_um"] * 100), c["max_tof_raw"], c["am_sampling_interval_count"],
        c["am_middle_interval_count"], c["am_max_data_arrays"], c["am_only_save_pm"],
        c["am_fan_on_in_idle"], c["am_laser_on_in_idle"], c["tof_to_sfr_factor"], c["pvp"],
        c["bin_weighting_index"])


# ------------------------------------------------------------------------------------------
# Exchanges (generators over the USB-ISS codec)
# ------------------------------------------------------------------------------------------

_RECORD_DECODERS = {
    "histogram": decode_histogram, "info": lambda raw: {"info": decode_text(raw)},
    "serial": lambda raw: {"serial": decode_text(raw)}, "firmware": decode_firmware,
    "config": decode_config, "dac_status": decode_dac_status,
}


def decode_record(record: str, raw: bytes) -> dict:
    """Values of a recorded OPC-N3 record (``histogram``, ``info``, ``serial``, ``firmware``,
    ``config``, ``dac_status``) from its bytes; raises :class:`OpcError`."""
    fn = _RECORD_DECODERS.get(record)
    if fn is None:
        raise OpcProtocolError(f"no OPC-N3 record {record!r}")
    return fn(bytes(raw))


@dataclass(frozen=True)
class OpcTiming:
    """Handshake and power timing, s (sources in docs/interface.md)."""

    retry_s: float = 0.02          # between repeats of a busy command byte (10-100 ms)
    busy_timeout_s: float = 5.0    # longest wait for ready (scs_dfe_eng: 5 s)
    byte_gap_s: float = 0.0        # pause between data bytes (each is a USB round trip already)
    resync_s: float = 2.5          # quiet time after an unexpected answer (Alphasense: > 2 s)
    fan_spinup_s: float = 5.0      # fan on -> laser on (scs_dfe_eng)
    power_step_s: float = 0.5      # laser off -> fan off
    bytes_per_transfer: int = 1    # data bytes per SPI transaction (1 as the proven drivers)

    @property
    def max_busy_retries(self) -> int:
        return max(1, math.ceil(self.busy_timeout_s / max(self.retry_s, 1e-3)))


def command(cmd: int, n_read: int = 0, write: bytes = b"", timing: OpcTiming = OpcTiming()):
    """One OPC command: busy/ready handshake, then read *n_read* bytes or write *write*."""
    r = (yield from usb_iss.spi(bytes([cmd])))[0]
    tries = 0
    while r != READY:
        if r != BUSY:
            raise OpcProtocolError(f"command 0x{cmd:02X}: answer 0x{r:02X} is neither busy nor ready")
        tries += 1
        if tries > timing.max_busy_retries:
            raise OpcBusyTimeout(f"command 0x{cmd:02X}: still busy after {timing.busy_timeout_s} s")
        yield Pause(timing.retry_s)
        r = (yield from usb_iss.spi(bytes([cmd])))[0]
    out = bytearray()
    per = max(1, min(usb_iss.MAX_SPI_BYTES, timing.bytes_per_transfer))
    while len(out) < n_read:
        if timing.byte_gap_s > 0:
            yield Pause(timing.byte_gap_s)
        k = min(per, n_read - len(out))
        out += yield from usb_iss.spi(bytes([cmd]) * k)
    for b in write:
        if timing.byte_gap_s > 0:
            yield Pause(timing.byte_gap_s)
        yield from usb_iss.spi(bytes([b]))
    return bytes(out)


def read_histogram(timing: OpcTiming = OpcTiming()):
    """Read (and thereby reset) the histogram; returns (values, raw)."""
    raw = yield from command(CMD_HISTOGRAM, HISTOGRAM_SIZE, timing=timing)
    return decode_histogram(raw), raw


def identify(timing: OpcTiming = OpcTiming(), with_config: bool = True):
    """Info string, serial string, firmware version, DAC/power status and (optionally) the
    configuration block; returns a list of (record name, values, raw)."""
    out = []
    raw = yield from command(CMD_INFO, INFO_SIZE, timing=timing)
    out.append(("info", {"info": decode_text(raw)}, raw))
    raw = yield from command(CMD_SERIAL, SERIAL_SIZE, timing=timing)
    out.append(("serial", {"serial": decode_text(raw)}, raw))
    raw = yield from command(CMD_FIRMWARE, FIRMWARE_SIZE, timing=timing)
    out.append(("firmware", decode_firmware(raw), raw))
    if with_config:
        raw = yield from command(CMD_CONFIG, CONFIG_SIZE, timing=timing)
        out.append(("config", decode_config(raw), raw))
    raw = yield from command(CMD_DAC_STATUS, DAC_STATUS_SIZE, timing=timing)
    out.append(("dac_status", decode_dac_status(raw), raw))
    return out


def power_on(timing: OpcTiming = OpcTiming()):
    """Fan on, let it spin up, laser on (the laser never runs without airflow)."""
    yield from command(CMD_POWER, write=bytes([POWER_FAN_ON]), timing=timing)
    yield Pause(timing.fan_spinup_s)
    yield from command(CMD_POWER, write=bytes([POWER_LASER_ON]), timing=timing)


def power_off(timing: OpcTiming = OpcTiming()):
    """Laser off first, then the fan."""
    yield from command(CMD_POWER, write=bytes([POWER_LASER_OFF]), timing=timing)
    yield Pause(timing.power_step_s)
    yield from command(CMD_POWER, write=bytes([POWER_FAN_OFF]), timing=timing)


def setup_and_identify(spi_hz: float, timing: OpcTiming = OpcTiming(), with_config: bool = True):
    """Bridge in SPI mode 1, then :func:`identify`; returns records."""
    info = yield from usb_iss.setup(1, spi_hz)
    records = [("bridge", {"module_id": info.module_id, "firmware": info.firmware,
                           "mode": info.mode, "serial_number": info.serial_number}, b"")]
    records += yield from identify(timing, with_config)
    return records


# ------------------------------------------------------------------------------------------
# The driver
# ------------------------------------------------------------------------------------------

@dataclass
class OpcCounters:
    histograms: int = 0
    bad_checksum: int = 0
    busy_timeouts: int = 0
    protocol_errors: int = 0
    bridge_errors: int = 0
    reply_timeouts: int = 0
    resyncs: int = 0
    setups: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class OpcN3:
    """The OPC-N3 behind a USB-ISS on *link*; never blocks.

    States: ``setup`` (bridge, identification) -> ``power_on`` (fan, spin-up, laser) ->
    ``running`` (a histogram every *period_s*) -> ``off`` after :meth:`power_off_blocking`.
    A refused checksum, a busy timeout or an unexpected answer is counted; after the last
    two the driver stays quiet for ``timing.resync_s``.  After *max_failures* failed
    exchanges in a row it sets up again (bridge and power).  :meth:`service` raises
    :class:`~pygnc.drivers.link.LinkLost` when the port fails.
    """

    link: SerialLink
    period_s: float = 10.0
    spi_hz: float = 500_000
    timing: OpcTiming = field(default_factory=OpcTiming)
    with_config: bool = True
    reply_timeout_s: float = 0.5
    max_failures: int = 5
    state: str = "setup"
    counters: OpcCounters = field(default_factory=OpcCounters)

    def __post_init__(self):
        self.runner = TransactionRunner(self.link, self.reply_timeout_s)
        self._op: str | None = None
        self._next_at = 0.0
        self._failures = 0
        self.last_error: Exception | None = None
        #: a power-on exchange was started since the last confirmed power-off: the fan and
        #: laser may be on, whatever the state (a device that failed too often goes back to
        #: "setup" with its laser still on)
        self.powered = False

    def fileno(self) -> int | None:
        return self.link.fileno()

    def next_deadline(self) -> float | None:
        if self.runner.active:
            return self.runner.deadline
        return None if self.state == "off" else self._next_at

    def all_counters(self) -> dict:
        return {**self.counters.as_dict(), "state": self.state, **self.runner.counters.as_dict(),
                **self.link.counters.as_dict()}

    def _start(self, now: float) -> Reading | list | None:
        if self.state == "setup":
            self._op = "setup"
            return self.runner.start(setup_and_identify(self.spi_hz, self.timing, self.with_config), now)
        if self.state == "power_on":
            self._op = "power_on"
            self.powered = True
            return self.runner.start(power_on(self.timing), now)
        if self.state == "running":
            self._op = "histogram"
            return self.runner.start(read_histogram(self.timing), now)
        return None

    def service(self, now: float) -> list[Reading]:
        """Advance the running exchange or start the next one; returns new readings."""
        out: list[Reading] = []
        for _ in range(8):  # a few exchanges may end at once; bounded
            if self.runner.active:
                outcome = self.runner.advance(now)
            elif self.state != "off" and now >= self._next_at:
                outcome = self._start(now)
            else:
                break
            if outcome is None:
                break
            self._finished(outcome, now, out)
        return out

    def _finished(self, outcome, now: float, out: list[Reading]) -> None:
        op, self._op = self._op, None
        if outcome.ok:
            self._failures = 0
            if op == "setup":
                self.counters.setups += 1
                out += [Reading(n, v, r, now) for n, v, r in outcome.value]
                self.state, self._next_at = "power_on", now
            elif op == "power_on":
                self.state, self._next_at = "running", now + self.period_s
            elif op == "histogram":
                values, raw = outcome.value
                self.counters.histograms += 1
                out.append(Reading("histogram", values, raw, now))
                self._next_at = now + self.period_s
            return
        err = outcome.error
        if isinstance(err, LinkLost):
            raise err
        self._failures += 1
        wait = self.timing.retry_s
        if isinstance(err, OpcChecksumError):
            self.counters.bad_checksum += 1
            wait = self.period_s  # the read reset the histogram: wait for the next period
        elif isinstance(err, OpcBusyTimeout):
            self.counters.busy_timeouts += 1
            wait = self.timing.resync_s
        elif isinstance(err, OpcProtocolError):
            self.counters.protocol_errors += 1
            wait = self.timing.resync_s
        elif isinstance(err, LinkTimeout):
            self.counters.reply_timeouts += 1
            wait = self.timing.resync_s
        else:  # UsbIssError, OpcFrameError
            self.counters.bridge_errors += 1
            wait = self.timing.resync_s
        if wait >= self.timing.resync_s:
            self.counters.resyncs += 1
        if self._failures >= self.max_failures and self.state != "setup":
            self.state, self._failures = "setup", 0
        self._next_at = now + wait
        self.last_error = err

    def power_off_blocking(self, timeout_s: float = 1.0) -> bool:
        """Laser off, then fan off, within *timeout_s* (at stop); True if both were accepted."""
        self.runner.cancel()
        if not self.powered:  # never powered on by us (or off already)
            self.state = "off"
            return True
        self.state = "off"
        quick = OpcTiming(retry_s=self.timing.retry_s, busy_timeout_s=min(self.timing.busy_timeout_s, timeout_s / 3),
                          byte_gap_s=self.timing.byte_gap_s, resync_s=self.timing.resync_s,
                          fan_spinup_s=0.0, power_step_s=min(self.timing.power_step_s, timeout_s / 4),
                          bytes_per_transfer=self.timing.bytes_per_transfer)
        try:
            run_blocking(power_off(quick), self.link, self.reply_timeout_s, timeout_s)
        except Exception:
            return False
        self.powered = False
        return True
