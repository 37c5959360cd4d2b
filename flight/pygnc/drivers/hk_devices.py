"""Housekeeping devices as the configuration describes them (``[[housekeeping_devices]]``).

:func:`parse_devices` turns the configuration's tables into :class:`DeviceSpec` s, naming
every problem; the configuration loader runs it (:mod:`pygnc.config`), so a bad device
table is refused when the file is loaded, and the housekeeping task
(:mod:`pygnc.tasks.housekeeping`) takes the specs it gives.  No I/O here, and nothing
but the standard library: ``main.py --check-config`` runs it on a Python without pyserial.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..device_kinds import HK_DEVICE_KINDS
from ..limits import Interval, is_number, number_problem
from . import emus_bms_codec
from .usb_id import USB_ISS_ID, UsbIdError, parse_usb_id

KINDS = HK_DEVICE_KINDS
_COMMON_KEYS = {"name", "kind", "port", "usb", "period_s", "timeout_s", "reopen_s"}
_KIND_KEYS = {
    "emus_bms": {"mode", "sentences", "cells", "baudrate"},
    "opc_n3": {"spi_hz", "fan_spinup_s", "read_config", "bytes_per_transfer", "busy_timeout_s"},
}
_DEFAULTS = {
    "emus_bms": {
        "period_s": 10.0,
        "timeout_s": 1.0,
        "mode": "request",
        "sentences": list(emus_bms_codec.DEFAULT_SENTENCES),
        "cells": 0,
        "baudrate": emus_bms_codec.BAUDRATE,
    },
    "opc_n3": {
        "period_s": 10.0,
        "timeout_s": 0.5,
        "spi_hz": 500_000,
        "fan_spinup_s": 5.0,
        "read_config": True,
        "bytes_per_transfer": 1,
        "busy_timeout_s": 5.0,
        "usb": USB_ISS_ID,
    },
}


class DeviceConfigError(ValueError):
    """A bad device table; :attr:`key`: the key at fault (None: the table as a whole)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    kind: str
    port: str | None
    usb: str | None
    period_s: float
    timeout_s: float
    reopen_s: float
    options: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def where(self) -> str:
        return self.port or f"usb {self.usb}"


#: Limits of every number a device table may give (:class:`pygnc.limits.Interval` notation).
LIMITS = {
    "period_s": "(0, 86400]",
    "timeout_s": "(0, 600]",
    "reopen_s": "(0, 86400]",
    "cells": "[0, 255]",
    "baudrate": "[1200, 4000000]",
    "spi_hz": "(0, 1e8]",
    "busy_timeout_s": "(0, 600]",
    "bytes_per_transfer": "[1, 62]",
    "fan_spinup_s": "[0, 600]",
}
#: Those that must be whole numbers.
_INTEGERS = {"cells", "baudrate", "bytes_per_transfer"}


def _number(entry_name: str, key: str, value: object) -> float:
    """*value* of *key* checked against :data:`LIMITS` (type, finite, interval)."""
    interval = Interval.parse(LIMITS[key])
    if key in _INTEGERS and not (isinstance(value, int) and not isinstance(value, bool)):
        raise DeviceConfigError(f"housekeeping device {entry_name!r}: {key} must be an integer, not {value!r}", key)
    if not is_number(value):
        raise DeviceConfigError(f"housekeeping device {entry_name!r}: {key} must be a number, not {value!r}", key)
    msg = number_problem(value, interval)
    if msg is not None:
        raise DeviceConfigError(f"housekeeping device {entry_name!r}: {key} {msg}", key)
    return value


def parse_device(entry: dict) -> DeviceSpec:
    """One ``[[housekeeping_devices]]`` table -> :class:`DeviceSpec`; raises
    :class:`DeviceConfigError` naming the device and the problem."""
    if not isinstance(entry, dict):
        raise DeviceConfigError(f"housekeeping device entry {entry!r} is not a table")
    name = entry.get("name")
    if not isinstance(name, str) or not name or len(name) > 32:
        raise DeviceConfigError(f"housekeeping device {entry!r}: 'name' must be a string of 1-32 characters", "name")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise DeviceConfigError(f"housekeeping device {name!r}: kind {kind!r} is not one of {', '.join(KINDS)}", "kind")
    unknown = sorted(set(entry) - _COMMON_KEYS - _KIND_KEYS[kind])
    if unknown:
        raise DeviceConfigError(f"housekeeping device {name!r}: unknown keys {unknown}", unknown[0])
    d = {**_DEFAULTS[kind], **entry}
    if entry.get("port"):
        d["usb"] = None
    port, usb = d.get("port") or None, d.get("usb") or None
    for key, val in (("port", port), ("usb", usb)):
        if val is not None and not isinstance(val, str):
            raise DeviceConfigError(f"housekeeping device {name!r}: {key} must be a string", key)
    if port is None and usb is None:
        raise DeviceConfigError(f"housekeeping device {name!r}: give 'port' (path or URL) or 'usb' (VID:PID)")
    if usb is not None:
        try:
            parse_usb_id(usb)
        except UsbIdError as exc:
            raise DeviceConfigError(f"housekeeping device {name!r}: {exc}", "usb") from None
    period = float(_number(name, "period_s", d["period_s"]))
    timeout = float(_number(name, "timeout_s", d["timeout_s"]))
    reopen = float(_number(name, "reopen_s", d.get("reopen_s", 5.0)))
    opts = {k: d[k] for k in _KIND_KEYS[kind] if k in d}
    if kind == "emus_bms":
        if opts["mode"] not in ("request", "broadcast"):
            raise DeviceConfigError(f"housekeeping device {name!r}: mode must be 'request' or 'broadcast'", "mode")
        sentences = opts["sentences"]
        if not isinstance(sentences, (list, tuple)) or not all(isinstance(x, str) and len(x) == 3 for x in sentences):
            raise DeviceConfigError(
                f"housekeeping device {name!r}: sentences must be a list of 3-character names", "sentences"
            )
        try:
            for x in sentences:
                emus_bms_codec.encode_request(x)
        except ValueError as exc:
            raise DeviceConfigError(f"housekeeping device {name!r}: {exc}", "sentences") from None
        opts["sentences"] = tuple(sentences)
        _number(name, "cells", opts["cells"])  # 0: learn the count
        _number(name, "baudrate", opts["baudrate"])
    else:
        for key in ("spi_hz", "busy_timeout_s", "bytes_per_transfer", "fan_spinup_s"):
            _number(name, key, opts[key])
        if not isinstance(opts["read_config"], bool):
            raise DeviceConfigError(f"housekeeping device {name!r}: read_config must be true or false", "read_config")
    return DeviceSpec(name, kind, port, usb, period, timeout, reopen, opts)


def parse_devices(entries: Iterable[dict] | None) -> tuple[list[DeviceSpec], list[str]]:
    """All valid device specs, and one message per invalid entry (duplicates included)."""
    specs, errors, seen = [], [], set()
    for entry in entries or ():
        try:
            spec = parse_device(entry)
        except DeviceConfigError as exc:
            errors.append(str(exc))
            continue
        if spec.name in seen:
            errors.append(f"housekeeping device name {spec.name!r} is used twice; the second is ignored")
            continue
        seen.add(spec.name)
        specs.append(spec)
    return specs, errors


def device_problems(entries: object) -> list[tuple[int, str | None, str]]:
    """(index of the table, key at fault or None, message) for every bad device table of
    *entries* (what :func:`parse_devices` would leave out)."""
    if not isinstance(entries, (list, tuple)):
        return [(0, None, "housekeeping_devices must be an array of tables ([[housekeeping_devices]])")]
    out, seen = [], set()
    for i, entry in enumerate(entries):
        try:
            spec = parse_device(entry)
        except DeviceConfigError as exc:
            out.append((i, exc.key, str(exc)))
            continue
        if spec.name in seen:
            out.append((i, "name", f"housekeeping device name {spec.name!r} is used twice"))
        seen.add(spec.name)
    return out
