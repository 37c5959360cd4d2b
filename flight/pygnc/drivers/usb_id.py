"""USB ids ``VID:PID[:SERIAL]`` (hexadecimal): parsing, and the adapters pygnc finds by id.

Pure and standard library only: the configuration check (``main.py --check-config``) reads
device tables with it on a Python without pyserial.
"""

from __future__ import annotations

#: Devantech USB-ISS, the OPC-N3's SPI bridge (:mod:`.usb_iss`).
USB_ISS_VID, USB_ISS_PID = 0x04D8, 0xFFEE
USB_ISS_ID = f"{USB_ISS_VID:04X}:{USB_ISS_PID:04X}"


class UsbIdError(ValueError):
    """Text that is not a USB id (the message says why)."""


def parse_usb_id(text: str) -> tuple[int, int, str | None]:
    """``"04D8:FFEE"`` or ``"04d8:ffee:SERIAL"`` -> (vid, pid, serial or None)."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3):
        raise UsbIdError(f"USB id {text!r} is not VID:PID or VID:PID:SERIAL (hex)")
    try:
        vid, pid = int(parts[0], 16), int(parts[1], 16)
    except ValueError:
        raise UsbIdError(f"USB id {text!r}: VID and PID must be hexadecimal") from None
    if not (0 <= vid <= 0xFFFF and 0 <= pid <= 0xFFFF):
        raise UsbIdError(f"USB id {text!r}: VID and PID are 16-bit")
    return vid, pid, (parts[2] if len(parts) == 3 and parts[2] else None)
