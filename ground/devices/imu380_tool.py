"""``python -m ground imu380 PORT|auto COMMAND``: look at, configure or re-flash an IMU380/DMU380.

Commands: ``info`` (identity, version, built-in test, configuration), ``set KEY=VALUE ...``
(``--persist``: from the next power-up), ``eeprom ADDRESS WORDS``, ``stream`` (decoded
output packets as CSV for ``--seconds``), ``upgrade IMAGE`` (firmware through the
bootloader, with progress).  PORT is any pyserial URL or device; ``auto`` discovers the unit
(``--port`` may be repeated to limit the search).  Exit status: 0 done, 1 the unit failed or
was not found, 2 usage (including a refused firmware image).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pygnc.drivers import imu380_codec as uu
from pygnc.drivers.errors import DriverError
from pygnc.drivers.imu380 import (
    DEFAULT_BAUD_RATES,
    FirmwareImageError,
    Imu380,
    Imu380Error,
    check_firmware_image,
    discover,
    probe,
)

SET_KEYS = {
    "rate_hz": ("packet_rate_hz", float),
    "packet": ("packet_type", str),
    "baud": ("baud", int),
    "accel_lpf_hz": ("accel_lpf_hz", float),
    "rate_lpf_hz": ("rate_lpf_hz", float),
    "orientation": ("orientation", str),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("port", help="serial device or pyserial URL, or 'auto' to discover")
    p.add_argument(
        "--baud", type=int, default=0, help="baud (default: try " + ", ".join(map(str, DEFAULT_BAUD_RATES)) + ")"
    )
    p.add_argument(
        "--search-port",
        action="append",
        default=None,
        metavar="PORT",
        help="with 'auto': ports to search (default: every serial port)",
    )
    p.add_argument("--cache", type=Path, help="with 'auto': the last-good-port cache file")
    p.add_argument("--timeout", type=float, default=10.0, help="discovery time limit, s")
    sub = p.add_subparsers(dest="action", required=True, metavar="COMMAND")
    sub.add_parser("info", help="identity, version, built-in test and configuration")
    q = sub.add_parser("set", help="set configuration fields: " + ", ".join(f"{k}=..." for k in SET_KEYS))
    q.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    q.add_argument("--persist", action="store_true", help="write the saved values (next power-up) instead")
    q = sub.add_parser("eeprom", help="read EEPROM words")
    q.add_argument("address", type=lambda s: int(s, 0))
    q.add_argument("words", type=int)
    q = sub.add_parser("stream", help="print decoded output packets as CSV")
    q.add_argument("--seconds", type=float, default=5.0)
    q = sub.add_parser("upgrade", help="write a firmware image (raw binary) through the bootloader")
    q.add_argument("image", type=Path)
    q.add_argument("--no-vector-check", action="store_true", help="skip the Cortex-M vector-table check")


def _open(args) -> Imu380:
    if args.port == "auto":
        found = discover(
            args.search_port,
            (args.baud,) if args.baud else DEFAULT_BAUD_RATES,
            timeout_s=args.timeout,
            cache_path=args.cache,
        )
        print(
            f"found {found.device_id.model} sn {found.device_id.serial_number} on {found.port} at {found.baud} baud",
            file=sys.stderr,
        )
        return Imu380.open(found.port, found.baud)
    for baud in (args.baud,) if args.baud else DEFAULT_BAUD_RATES:
        got = probe(args.port, baud, keep_open=True)
        if got is not None:
            return got[1]
    raise Imu380Error(f"no IMU380/DMU380 answers on {args.port}")


def _parse_assignments(items: list[str]) -> dict:
    kw = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in SET_KEYS:
            raise ValueError(f"{item!r}: expected KEY=VALUE with KEY one of {', '.join(SET_KEYS)}")
        name, conv = SET_KEYS[key]
        try:
            kw[name] = conv(value)
        except ValueError:
            raise ValueError(f"{item!r}: {value!r} is not a {conv.__name__}") from None
    return kw


def _info(d: Imu380) -> None:
    ident = d.get_id()
    print(f"serial_number  {ident.serial_number}\nmodel          {ident.model}")
    try:
        print(f"version        {d.get_version()}")
    except Imu380Error as exc:
        print(f"version        ({exc})")
    bit = d.get_bit()
    print("bit            " + " ".join(f"{k}=0x{v:04x}" for k, v in bit.items()))
    cur = d.get_fields([1, 2, 3, 5, 6, 7])
    saved = d.read_fields([1, 2, 3, 5, 6, 7])

    def show(v: dict) -> str:
        return (
            f"rate {uu.PACKET_RATE_HZ.get(v[1], v[1]):g} Hz, baud {uu.BAUD_CODES.get(v[2], v[2])}, "
            f"packet {uu.packet_type_from_value(v[3]).decode('latin-1')}, accel lpf {uu.lpf_cutoff_hz(v[5]):g} Hz, "
            f"rate lpf {uu.lpf_cutoff_hz(v[6]):g} Hz, orientation {uu.orientation_spec(v[7])}"
        )

    print(f"current        {show(cur)}\nsaved          {show(saved)}")


def _stream(d: Imu380, seconds: float) -> None:
    print("t_rx_s,type,rate_x_rad_s,rate_y_rad_s,rate_z_rad_s,accel_x_m_s2,accel_y_m_s2,accel_z_m_s2")
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        d.pump(0.05)
        for r in d.take_packets():
            try:
                p = uu.decode_output(r.frame)
            except uu.CodecError as exc:  # (a packet of the wrong length costs only itself)
                print(f"# skipped a {r.frame.ptype!r} packet: {exc}", file=sys.stderr)
                continue
            if p is None or not hasattr(p, "rate_rad_s"):
                continue
            acc = getattr(p, "accel_m_s2", (float("nan"),) * 3)
            print(
                f"{r.t_rx_mono_s - t0:.4f},{r.frame.ptype.decode()},"
                + ",".join(f"{v:.6g}" for v in (*p.rate_rad_s, *acc))
            )


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "set":
            kw = _parse_assignments(args.assignments)
        if args.action == "upgrade":
            image = args.image.read_bytes()
            check_firmware_image(image, check_vector_table=not args.no_vector_check)
    except (ValueError, OSError) as exc:  # (FirmwareImageError is not a ValueError)
        print(f"imu380: {exc}", file=sys.stderr)
        return 2
    except FirmwareImageError as exc:
        print(f"imu380: refusing {args.image}: {exc}", file=sys.stderr)
        return 2
    try:
        d = _open(args)
    except DriverError as exc:
        print(f"imu380: {exc}", file=sys.stderr)
        return 1
    try:
        if args.action == "info":
            _info(d)
        elif args.action == "set":
            written = d.configure(persist=args.persist, **kw)
            print(
                ("written (next power-up): " if args.persist else "set: ")
                + ", ".join(f"{uu.FIELD_NAMES.get(k, hex(k))}={v}" for k, v in written.items())
            )
        elif args.action == "eeprom":
            words = d.read_eeprom(args.address, args.words)
            for k in range(0, len(words), 8):
                print(f"0x{args.address + k:04x}: " + " ".join(f"{w:04x}" for w in words[k : k + 8]))
        elif args.action == "stream":
            _stream(d, args.seconds)
        elif args.action == "upgrade":

            def progress(done: int, total: int) -> None:
                print(
                    f"\rwriting {done}/{total} bytes ({100 * done // max(total, 1)} %)",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )

            out = d.upgrade_firmware(image, progress=progress, check_vector_table=not args.no_vector_check)
            print(file=sys.stderr)
            print(
                f"upgraded: {out['bytes']} bytes in {out['blocks']} blocks ({out['resends']} resent); "
                f"now {out['id'].model} version {out['version'] or '?'}"
            )
    except DriverError as exc:
        print(f"\nimu380: {exc}", file=sys.stderr)
        return 1
    finally:
        d.close()
    return 0
