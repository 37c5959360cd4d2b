"""Devantech USB-ISS bridge: its command protocol over the USB serial port, as exchanges.

Facts (the bridge's technical documentation as the pyusbiss package transcribes it,
DancingQuanta/pyusbiss ``usbiss/usbiss.py`` and ``spi.py``; py-opc issue #41 for what an
OPC-N3 setup reports):

* USB id ``04D8:FFEE``; a CDC serial port (the baud rate is ignored).
* ``5A 01`` -> 3 bytes: module id (7), firmware version, current operating mode.
* ``5A 03`` -> 8 bytes: the module's serial number (ASCII).
* ``5A 02 <mode> <operand>`` -> 2 bytes: ``FF 00`` accepted, ``00 <error>`` refused
  (05 unknown command, 06 / 07 internal errors).  SPI: mode byte ``0x90 + k`` with
  k = 0, 2, 1, 3 for SPI modes 0, 1, 2, 3 (mode 1 -> ``0x92``); operand = SCK divisor d,
  SCK = 6 MHz / (d + 1) (500 kHz -> 11).
* ``61 <b1..bn>`` (n <= 63): one SPI transaction (chip select held for its n bytes) ->
  n + 1 bytes: ``FF`` (ACK) or ``00`` (NACK), then the n bytes clocked in.

The bridge delimits commands by USB packet, so each command is one write.  Everything here
is pure: generators yielding :class:`~pygnc.drivers.exchange.Transfer`, driven by a
:class:`~pygnc.drivers.exchange.TransactionRunner` (non-blocking) or
:func:`~pygnc.drivers.exchange.run_blocking`.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

from .errors import ProtocolError
from .exchange import Transfer
from .usb_id import USB_ISS_ID, USB_ISS_PID, USB_ISS_VID

USB_VID, USB_PID, USB_ID = USB_ISS_VID, USB_ISS_PID, USB_ISS_ID

CMD_ISS = 0x5A
SUB_VERSION, SUB_MODE, SUB_SERIAL = 0x01, 0x02, 0x03
CMD_SPI = 0x61
ACK, NACK = 0xFF, 0x00
SPI_MODE_BASE = 0x90
_SPI_MODE_OFFSET = (0, 2, 1, 3)  # SPI mode (CPOL|CPHA) -> offset of the bridge's mode byte
SCK_BASE_HZ = 6_000_000
MAX_SPI_BYTES = 63
MODULE_ID = 7

MODE_ERRORS = {0x05: "unknown command", 0x06: "internal error 1", 0x07: "internal error 2"}


class UsbIssError(ProtocolError):
    """The bridge refused a command or answered nonsense."""


@dataclass(frozen=True)
class UsbIssInfo:
    module_id: int
    firmware: int
    mode: int
    serial_number: str


def spi_mode_byte(spi_mode: int) -> int:
    if spi_mode not in (0, 1, 2, 3):
        raise ValueError(f"SPI mode {spi_mode} is not 0..3")
    return SPI_MODE_BASE + _SPI_MODE_OFFSET[spi_mode]


def sck_divisor(sck_hz: float) -> int:
    """Divisor d with 6 MHz / (d + 1) <= *sck_hz* as closely as possible (1..255)."""
    if sck_hz <= 0:
        raise ValueError("SPI clock must be positive")
    d = max(1, min(255, -(-SCK_BASE_HZ // int(sck_hz)) - 1))
    return d


def encode_spi(data: bytes) -> bytes:
    if not 1 <= len(data) <= MAX_SPI_BYTES:
        raise ValueError(f"a USB-ISS SPI transaction carries 1..{MAX_SPI_BYTES} bytes, not {len(data)}")
    return bytes([CMD_SPI]) + bytes(data)


def decode_spi_reply(reply: bytes, n: int) -> bytes:
    """The *n* bytes clocked in, from the bridge's reply; raises :class:`UsbIssError`."""
    if len(reply) != n + 1:
        raise UsbIssError(f"SPI reply of {len(reply)} bytes, expected {n + 1}")
    if reply[0] != ACK:
        raise UsbIssError(f"SPI transaction refused (status 0x{reply[0]:02X})")
    return bytes(reply[1:])


def encode_set_spi_mode(spi_mode: int, sck_hz: float) -> bytes:
    return bytes([CMD_ISS, SUB_MODE, spi_mode_byte(spi_mode), sck_divisor(sck_hz)])


def decode_mode_reply(reply: bytes) -> None:
    if len(reply) != 2:
        raise UsbIssError(f"mode reply of {len(reply)} bytes, expected 2")
    if reply[0] != ACK:
        raise UsbIssError(f"mode refused: {MODE_ERRORS.get(reply[1], f'error 0x{reply[1]:02X}')}")


# -- exchanges ---------------------------------------------------------------------------------


def spi(data: bytes) -> Generator[Transfer, bytes, bytes]:
    """One SPI transaction; returns the bytes clocked in."""
    reply = yield Transfer(encode_spi(data), len(data) + 1)
    return decode_spi_reply(reply, len(data))


def setup(spi_mode: int = 1, sck_hz: float = 500_000) -> Generator[Transfer, bytes, UsbIssInfo]:
    """Identify the bridge and put it in SPI mode; returns :class:`UsbIssInfo`."""
    v = yield Transfer(bytes([CMD_ISS, SUB_VERSION]), 3)
    if v[0] != MODULE_ID:
        raise UsbIssError(f"not a USB-ISS: module id {v[0]} (expected {MODULE_ID})")
    sn = yield Transfer(bytes([CMD_ISS, SUB_SERIAL]), 8)
    reply = yield Transfer(encode_set_spi_mode(spi_mode, sck_hz), 2)
    decode_mode_reply(reply)
    return UsbIssInfo(v[0], v[1], spi_mode_byte(spi_mode), sn.decode("ascii", "replace").strip("\x00 "))
