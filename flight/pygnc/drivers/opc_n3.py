"""Alphasense OPC-N3 optical particle counter over SPI (through a USB-ISS bridge): the driver.

The records (command bytes, CRC, histogram and configuration layouts) are the pure codec
:mod:`.opc_n3_codec`; this module adds the handshake, its timing and the link.  Every
command follows the same handshake: send the command byte; the device answers 0x31 while
busy and 0xF3 when ready; repeat the command byte 10-100 ms apart until ready; then clock
the data bytes (each exchange sends the command byte again and reads one data byte).  Any
other answer means the device lost track: stay quiet for more than 2 s so it clears its
buffer.

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
from collections.abc import Generator
from dataclasses import dataclass, field

from . import usb_iss
from .errors import DriverTimeout
from .exchange import LinkTimeout, Outcome, Pause, TransactionRunner, Transfer, run_blocking
from .link import LinkLost, SerialLink
from .opc_n3_codec import (
    BUSY,
    CMD_CONFIG,
    CMD_DAC_STATUS,
    CMD_FIRMWARE,
    CMD_HISTOGRAM,
    CMD_INFO,
    CMD_POWER,
    CMD_SERIAL,
    CONFIG_SIZE,
    DAC_STATUS_SIZE,
    FIRMWARE_SIZE,
    HISTOGRAM_SIZE,
    INFO_SIZE,
    POWER_FAN_OFF,
    POWER_FAN_ON,
    POWER_LASER_OFF,
    POWER_LASER_ON,
    READY,
    SERIAL_SIZE,
    OpcChecksumError,
    OpcError,
    OpcProtocolError,
    decode_config,
    decode_dac_status,
    decode_firmware,
    decode_histogram,
    decode_text,
)
from .readings import Reading


class OpcBusyTimeout(OpcError, DriverTimeout):
    """The device stayed busy longer than the busy timeout."""


@dataclass(frozen=True)
class OpcTiming:
    """Handshake and power timing, s (sources in docs/interface.md)."""

    retry_s: float = 0.02  # between repeats of a busy command byte (10-100 ms)
    busy_timeout_s: float = 5.0  # longest wait for ready (scs_dfe_eng: 5 s)
    byte_gap_s: float = 0.0  # pause between data bytes (each is a USB round trip already)
    resync_s: float = 2.5  # quiet time after an unexpected answer (Alphasense: > 2 s)
    fan_spinup_s: float = 5.0  # fan on -> laser on (scs_dfe_eng)
    power_step_s: float = 0.5  # laser off -> fan off
    bytes_per_transfer: int = 1  # data bytes per SPI transaction (1 as the proven drivers)

    @property
    def max_busy_retries(self) -> int:
        return max(1, math.ceil(self.busy_timeout_s / max(self.retry_s, 1e-3)))


def command(
    cmd: int, n_read: int = 0, write: bytes = b"", timing: OpcTiming = OpcTiming()
) -> Generator[Transfer | Pause, bytes | None, bytes]:
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


def read_histogram(timing: OpcTiming = OpcTiming()) -> Generator[Transfer | Pause, bytes | None, tuple[dict, bytes]]:
    """Read (and thereby reset) the histogram; returns (values, raw)."""
    raw = yield from command(CMD_HISTOGRAM, HISTOGRAM_SIZE, timing=timing)
    return decode_histogram(raw), raw


def identify(
    timing: OpcTiming = OpcTiming(), with_config: bool = True
) -> Generator[Transfer | Pause, bytes | None, list[tuple[str, dict, bytes]]]:
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


def power_on(timing: OpcTiming = OpcTiming()) -> Generator[Transfer | Pause, bytes | None, None]:
    """Fan on, let it spin up, laser on (the laser never runs without airflow)."""
    yield from command(CMD_POWER, write=bytes([POWER_FAN_ON]), timing=timing)
    yield Pause(timing.fan_spinup_s)
    yield from command(CMD_POWER, write=bytes([POWER_LASER_ON]), timing=timing)


def power_off(timing: OpcTiming = OpcTiming()) -> Generator[Transfer | Pause, bytes | None, None]:
    """Laser off first, then the fan."""
    yield from command(CMD_POWER, write=bytes([POWER_LASER_OFF]), timing=timing)
    yield Pause(timing.power_step_s)
    yield from command(CMD_POWER, write=bytes([POWER_FAN_OFF]), timing=timing)


def setup_and_identify(
    spi_hz: float, timing: OpcTiming = OpcTiming(), with_config: bool = True
) -> Generator[Transfer | Pause, bytes | None, list[tuple[str, dict, bytes]]]:
    """Bridge in SPI mode 1, then :func:`identify`; returns records."""
    info = yield from usb_iss.setup(1, spi_hz)
    records = [
        (
            "bridge",
            {
                "module_id": info.module_id,
                "firmware": info.firmware,
                "mode": info.mode,
                "serial_number": info.serial_number,
            },
            b"",
        )
    ]
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
    stray_bytes: int = 0  # arrived between exchanges (a reply after its timeout, noise): dropped

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

    def __post_init__(self) -> None:
        self.runner = TransactionRunner(self.link, self.reply_timeout_s)
        self._op: str | None = None
        self._next_at = 0.0
        self._failures = 0
        self.last_error: BaseException | None = None
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
        return {
            **self.counters.as_dict(),
            "state": self.state,
            **self.runner.counters.as_dict(),
            **self.link.counters.as_dict(),
        }

    def _start(self, now: float) -> Outcome | None:
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
                self._drop_stray_input()
                break
            if outcome is None:
                break
            self._finished(outcome, now, out)
        return out

    def _drop_stray_input(self) -> None:
        """Read and count what arrived between exchanges: it answers nothing asked, and left
        unread it keeps the port readable, waking the task's loop at once until the next
        exchange.  A port that hung up raises :class:`LinkLost` here, as in an exchange."""
        for _ in range(16):  # (bounded: a port that streams garbage is read a MiB per call)
            data = self.link.read()
            if not data:
                return
            self.counters.stray_bytes += len(data)

    def _finished(self, outcome: Outcome, now: float, out: list[Reading]) -> None:
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
        quick = OpcTiming(
            retry_s=self.timing.retry_s,
            busy_timeout_s=min(self.timing.busy_timeout_s, timeout_s / 3),
            byte_gap_s=self.timing.byte_gap_s,
            resync_s=self.timing.resync_s,
            fan_spinup_s=0.0,
            power_step_s=min(self.timing.power_step_s, timeout_s / 4),
            bytes_per_transfer=self.timing.bytes_per_transfer,
        )
        try:
            run_blocking(power_off(quick), self.link, self.reply_timeout_s, timeout_s)
        except Exception:
            return False
        self.powered = False
        return True
