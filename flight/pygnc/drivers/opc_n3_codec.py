"""Alphasense OPC-N3 records: the codec - bytes in, values out; no I/O, no clock.

Facts and sources: ``docs/interface.md`` ("Alphasense OPC-N3"), from south-coast-science
scs_dfe_eng (32d2291) and lizcorson/py-opc opc-n3 (2ebbfe5) as summarised in the project's
protocol notes.  The command bytes and the handshake answers (busy, ready) are declared
here; the handshake itself and the driver are :mod:`.opc_n3`.

:func:`crc16_modbus`; :func:`decode_histogram` refuses a bad checksum with
:class:`OpcChecksumError` and gives bins and PM in physical units (concentrations are None,
never a division by zero, when the sampling period or flow is 0); :func:`encode_histogram`
and :func:`encode_config` for simulators and tests; the info / serial / firmware /
DAC-status / configuration decoders; :func:`decode_record` for the ground.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable

from .errors import CodecError, DriverError, ProtocolError

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


class OpcError(DriverError):
    """An OPC-N3 exchange failed."""


class OpcChecksumError(OpcError, CodecError):
    """A record's CRC does not match its bytes: refused, never used."""


class OpcFrameError(OpcError, CodecError):
    """A record of the wrong length."""


class OpcProtocolError(OpcError, ProtocolError):
    """The device answered a command byte with neither busy nor ready."""


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
        "mtof_us": [m / 3.0 for m in mtof],  # bins 1, 3, 5, 7
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


def encode_histogram(
    bin_counts: Iterable[int],
    mtof_raw: Iterable[int] = (0, 0, 0, 0),
    period_cs: int = 500,
    flow_cml_s: int = 550,
    temperature_raw: int = 0x6000,
    humidity_raw: int = 0x7000,
    pm_ug_m3: Iterable[float] = (0.0, 0.0, 0.0),
    rejects: Iterable[int] = (0, 0, 0, 0),
    fan_rev_count: int = 0,
    laser_status: int = 600,
    corrupt_crc: bool = False,
) -> bytes:
    """A histogram record from raw field values (simulators and tests)."""
    body = HISTOGRAM.pack(
        *bin_counts,
        *mtof_raw,
        period_cs,
        flow_cml_s,
        temperature_raw,
        humidity_raw,
        *pm_ug_m3,
        *rejects,
        fan_rev_count,
        laser_status,
        0,
    )[:84]
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
    return {
        "fan_on": bool(data[0]),
        "laser_dac_on": bool(data[1]),
        "fan_dac": data[2],
        "laser_dac": data[3],
        "laser_switch": bool(data[4]),
        "gain_toggle": data[5],
    }


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
        "pm_diameter_a_um": v[74] / 100.0,
        "pm_diameter_b_um": v[75] / 100.0,
        "pm_diameter_c_um": v[76] / 100.0,
        "max_tof_raw": v[77],
        "am_sampling_interval_count": v[78],
        "am_middle_interval_count": v[79],
        "am_max_data_arrays": v[80],
        "am_only_save_pm": v[81],
        "am_fan_on_in_idle": v[82],
        "am_laser_on_in_idle": v[83],
        "tof_to_sfr_factor": v[84],
        "pvp": v[85],
        "bin_weighting_index": v[86],
    }


def encode_config(c: dict) -> bytes:
    """The configuration block of a :func:`decode_config` dict (simulators and tests)."""
    return CONFIG.pack(
        *c["bin_boundaries_adc"],
        *(round(x * 100) for x in c["bin_boundaries_um"]),
        *c["bin_weighting_raw"],
        round(c["pm_diameter_a_um"] * 100),
        round(c["pm_diameter_b_um"] * 100),
        round(c["pm_diameter_c_um"] * 100),
        c["max_tof_raw"],
        c["am_sampling_interval_count"],
        c["am_middle_interval_count"],
        c["am_max_data_arrays"],
        c["am_only_save_pm"],
        c["am_fan_on_in_idle"],
        c["am_laser_on_in_idle"],
        c["tof_to_sfr_factor"],
        c["pvp"],
        c["bin_weighting_index"],
    )


# ------------------------------------------------------------------------------------------
# Records as the ground finds them in a batch file
# ------------------------------------------------------------------------------------------

_RECORD_DECODERS = {
    "histogram": decode_histogram,
    "info": lambda raw: {"info": decode_text(raw)},
    "serial": lambda raw: {"serial": decode_text(raw)},
    "firmware": decode_firmware,
    "config": decode_config,
    "dac_status": decode_dac_status,
}


def decode_record(record: str, raw: bytes) -> dict:
    """Values of a recorded OPC-N3 record (``histogram``, ``info``, ``serial``, ``firmware``,
    ``config``, ``dac_status``) from its bytes; raises :class:`OpcError`."""
    fn = _RECORD_DECODERS.get(record)
    if fn is None:
        raise OpcProtocolError(f"no OPC-N3 record {record!r}")
    return fn(bytes(raw))
