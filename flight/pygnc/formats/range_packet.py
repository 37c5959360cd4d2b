"""The SX1280 range packet as the flight team's code writes it: 12 bytes, big-endian.

::

    offset size field
    0      1    partner spacecraft id (PY4: 0x4A..0x4D)
    1      1    RSSI code: RSSI = -code / 2 dBm
    2      4    spacecraft time of the measurement, unix s (uint32)
    6      3    frequency-error indicator: low 20 bits, two's complement (the top 4 bits are
                not part of it and are ignored)
    9      3    raw SX1280 ranging result, 24-bit two's complement

This is the layout the PY4 bench capture ``rng00000.bin`` holds (reference:
``formats.md``, "Range files - corrected"; PyGNC's ``unpack_rng_packet``).  The distance
follows the SX1280 datasheet (as the CircuitPython_SX1280 driver applies it)::

    range_m = raw * 150 / (2**12 * bandwidth_MHz)          (x 20/100 for filtered results)

with the ranging bandwidth a configuration value (``Config.sx1280_ranging_bandwidth_hz``,
812.5 kHz for the flight team's bandwidth code 0x18) and ``Config.sx1280_ranging_filtered``.
A calibration bias remains (metres to tens of metres); the formation filter estimates it.

Declared once here: the live stream (``RNG`` frames, :mod:`pygnc.formats.stream`) decodes
packets with these functions, and the range-file decoder (:mod:`pygnc.formats.range_file`)
takes its constants and conversions from here in vectorised form.  No numpy.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import numpy as np

#: A number or an array of them (what the conversions that work on both take and give).
_Num = TypeVar("_Num", float, "np.ndarray")

PACKET_SIZE = 12
#: SX1280 LoRa bandwidth codes (datasheet, SetModulationParams) -> bandwidth, Hz.  Ranging
#: is specified for the three widest (0x0A, 0x18, 0x26); 0x34 is listed for completeness.
BANDWIDTH_HZ_BY_CODE = {0x0A: 1_625_000.0, 0x18: 812_500.0, 0x26: 406_250.0, 0x34: 203_125.0}
#: id, RSSI code, time, then the two 24-bit fields as 3 bytes each.
_HEAD = struct.Struct(">BBI")
#: Ranging bandwidth of the flight team's code (bandwidth code 0x18), Hz.
DEFAULT_BANDWIDTH_HZ = 812_500.0
#: Extra scale of a filtered/averaged result (SX1280 register 0x924 bits 4-5).
FILTERED_SCALE = 20.0 / 100.0
FEI_BITS = 20


@dataclass(frozen=True)
class RangePacket:
    peer_id: int
    rssi_dbm: float
    t_sc_s: int
    fei_raw: int  # signed 20-bit frequency-error indicator
    range_raw: int  # signed 24-bit ranging result


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def decode_packet(data: bytes, offset: int = 0) -> RangePacket:
    """The packet at *offset* of *data* (ValueError if fewer than 12 bytes remain)."""
    if len(data) - offset < PACKET_SIZE:
        raise ValueError(f"a range packet is {PACKET_SIZE} bytes, {len(data) - offset} left")
    peer, rssi, t = _HEAD.unpack_from(data, offset)
    fei = int.from_bytes(data[offset + 6 : offset + 9], "big")
    raw = int.from_bytes(data[offset + 9 : offset + 12], "big")
    return RangePacket(peer, -rssi / 2.0, t, _signed(fei, FEI_BITS), _signed(raw, 24))


def decode_packets(data: bytes) -> list[RangePacket]:
    """Every whole packet of *data* (a trailing partial packet is ignored)."""
    return [decode_packet(data, o) for o in range(0, len(data) - PACKET_SIZE + 1, PACKET_SIZE)]


def encode_packet(peer_id: int, t_sc_s: int, range_raw: int, rssi_dbm: float = -60.0, fei_raw: int = 0) -> bytes:
    """12 bytes of one packet (ValueError for a field out of its range)."""
    if not (
        0 <= peer_id <= 255
        and 0 <= t_sc_s < 2**32
        and -(1 << 23) <= range_raw < (1 << 23)
        and -(1 << (FEI_BITS - 1)) <= fei_raw < (1 << (FEI_BITS - 1))
    ):
        raise ValueError(
            f"range packet field out of range: id {peer_id}, time {t_sc_s}, raw {range_raw}, fei {fei_raw}"
        )
    rssi = min(255, max(0, int(round(-2.0 * rssi_dbm))))
    return (
        _HEAD.pack(peer_id, rssi, int(t_sc_s))
        + (fei_raw & 0xFFFFF).to_bytes(3, "big")
        + (range_raw & 0xFFFFFF).to_bytes(3, "big")
    )


def bandwidth_hz(code: int) -> float:
    """Ranging bandwidth of an SX1280 bandwidth code, Hz (ValueError for an unknown code)."""
    try:
        return BANDWIDTH_HZ_BY_CODE[int(code)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"unknown SX1280 bandwidth code {code!r}: expected one of {', '.join(hex(c) for c in BANDWIDTH_HZ_BY_CODE)}"
        ) from None


def fei_hz(fei_raw: _Num, bandwidth_hz_: float = DEFAULT_BANDWIDTH_HZ) -> _Num:
    """Frequency error of a frequency-error-indicator value, Hz.

    SX1280 datasheet (LoRa frequency error indicator) and Semtech's reference driver
    (``SX1280GetFrequencyError``): error_Hz = 1.55 * FEI / (1600 / BW_kHz), FEI the signed
    20-bit register value.  Works on numpy arrays too.
    """
    return 1.55 * fei_raw * (bandwidth_hz_ / 1000.0) / 1600.0


def metres_per_count(bandwidth_hz: float = DEFAULT_BANDWIDTH_HZ, filtered: bool = False) -> float:
    """Range of one count of the raw result, m (0.045 m at 812.5 kHz)."""
    return 150.0 / (4096.0 * bandwidth_hz / 1e6) * (FILTERED_SCALE if filtered else 1.0)


def range_m(raw: int, bandwidth_hz: float = DEFAULT_BANDWIDTH_HZ, filtered: bool = False) -> float:
    return raw * metres_per_count(bandwidth_hz, filtered)


def raw_from_range_m(range_m_: float, bandwidth_hz: float = DEFAULT_BANDWIDTH_HZ, filtered: bool = False) -> int:
    """The raw result nearest *range_m_* (simulators, tests), clipped to 24 bits."""
    if not math.isfinite(range_m_):
        raise ValueError(f"range {range_m_} is not finite")
    raw = int(round(range_m_ / metres_per_count(bandwidth_hz, filtered)))
    return min(max(raw, -(1 << 23)), (1 << 23) - 1)
