"""``python -m ground simdevice imu380|gx2|monodrive ...``: a simulated IMU without hardware.

The serial devices appear on a pseudo-terminal whose path is printed (``--link PATH`` adds a
stable symlink, as udev's ``/dev/serial/by-id`` links are); monoDrive sends over UDP or TCP.
Point the flight stack at it with ``PYGNC_CONFIG`` (the snippet is printed) or open it with
``python -m ground imu380 ...``.  Runs until Ctrl-C (or ``--duration``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from .gx2 import PAYLOADS, Gx2Sim, MonoDriveSim
from .imu380 import BAUDS, Imu380Sim
from .ports import Faults, PtyPort

PACKETS = ("S1", "S0", "A1", "A2")
RATES = {100.0: 1, 50.0: 2, 25.0: 4, 20.0: 5, 10.0: 10, 5.0: 20, 4.0: 25, 2.0: 50}


def _prob(text: str) -> float:
    v = float(text)
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"{text}: a probability in [0, 1)")
    return v


def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text}: expected HOST:PORT")
    return host, int(port)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="device", required=True, metavar="DEVICE")
    for name, help_text in (
        ("imu380", "Aceinna IMU380/DMU380 (UU protocol) on a pseudo-terminal"),
        ("gx2", "MicroStrain 3DM-GX2 (0xC2) on a pseudo-terminal"),
    ):
        q = sub.add_parser(name, help=help_text, description=help_text)
        q.add_argument("--link", help="also make this symlink to the pseudo-terminal")
        q.add_argument("--baud", type=int, default=115200, help="the device's baud (default 115200)")
        q.add_argument(
            "--corrupt", type=_prob, default=0.0, metavar="P", help="flip a bit in each output byte with probability P"
        )
        q.add_argument("--drop", type=_prob, default=0.0, metavar="P", help="drop each output byte with probability P")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)")
        if name == "imu380":
            q.add_argument("--packet", choices=PACKETS, default="S1", help="output packet (default S1)")
            q.add_argument(
                "--rate-hz", type=float, default=100.0, help=f"output rate, one of {sorted(RATES)} (0: quiet)"
            )
            q.add_argument(
                "--delay-packets", type=int, default=0, help="answer commands after this many output packets"
            )
        else:
            q.add_argument("--rate-hz", type=float, default=100.0, help="continuous-mode rate (default 100)")
    q = sub.add_parser(
        "monodrive",
        help="monoDrive IMU sensor frames over UDP or TCP",
        description="monoDrive IMU sensor frames over UDP (sent to HOST:PORT) or TCP (listening on HOST:PORT)",
    )
    g = q.add_mutually_exclusive_group(required=True)
    g.add_argument("--udp", type=_hostport, metavar="HOST:PORT", help="send datagrams to HOST:PORT")
    g.add_argument("--tcp", type=_hostport, metavar="HOST:PORT", help="listen on HOST:PORT (port 0: any)")
    q.add_argument("--header", choices=("v16", "tcp12", "udp8"), default="v16")
    q.add_argument(
        "--payload",
        choices=PAYLOADS,
        default="gx2",
        help="gx2: the GX2 emulation pygnc reads (monoDrive up to 1.14, default); state: release "
        "1.15's 168-byte IMU frame, which pygnc refuses",
    )
    q.add_argument("--rate-hz", type=float, default=100.0)
    q.add_argument("--drop", type=_prob, default=0.0, metavar="P", help="drop each frame with probability P")
    q.add_argument(
        "--bad-checksum", type=_prob, default=0.0, metavar="P", help="spoil each payload checksum with probability P"
    )
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--duration", type=float, default=0.0)


def _fail(msg: str) -> int:
    print(f"simdevice: {msg}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if args.rate_hz < 0 or (args.device != "imu380" and args.rate_hz == 0):
        return _fail(f"--rate-hz {args.rate_hz}: must be positive")
    if args.device == "monodrive":
        scheme, addr = ("udp", args.udp) if args.udp else ("tcp", args.tcp)
        if scheme == "tcp" and args.header == "udp8":
            return _fail("the udp8 header has no length: use v16 or tcp12 over TCP")
        try:
            sim = MonoDriveSim(
                scheme,
                addr,
                header=args.header,
                rate_hz=args.rate_hz,
                drop_prob=args.drop,
                bad_checksum_prob=args.bad_checksum,
                seed=args.seed,
                payload=args.payload,
            )
        except OSError as exc:
            return _fail(f"cannot open {scheme}://{addr[0]}:{addr[1]}: {exc}")
        host, port = sim.address
        where = f"{scheme}://{host}:{port}"
        print(
            f"monodrive simulator: {'sending to' if scheme == 'udp' else 'listening on'} {where} "
            f"({args.header} header, {args.payload} payload, {args.rate_hz:g} Hz); Ctrl-C stops it"
        )
        print(
            f'PYGNC_CONFIG: imu_driver = "monodrive"\n              imu_port = "{where}"\n'
            f'              imu_monodrive_header = "{args.header}"',
            flush=True,
        )
    else:
        if args.baud not in BAUDS.values() and args.device == "imu380":
            return _fail(f"--baud {args.baud}: one of {sorted(BAUDS.values())}")
        try:
            port = PtyPort(args.link)
        except OSError as exc:
            return _fail(f"cannot create the pseudo-terminal{' link ' + args.link if args.link else ''}: {exc}")
        faults = Faults(corrupt_prob=args.corrupt, drop_prob=args.drop, seed=args.seed)
        if args.device == "imu380":
            if args.rate_hz and args.rate_hz not in RATES:
                port.close()
                return _fail(f"--rate-hz {args.rate_hz}: one of {sorted(RATES)} or 0")
            sim = Imu380Sim(
                port,
                baud=args.baud,
                packet_type=args.packet.encode(),
                rate_divider=RATES.get(args.rate_hz, 0),
                faults=faults,
                response_delay_packets=args.delay_packets,
            )
            what = f"{args.packet} at {args.rate_hz:g} Hz" if args.rate_hz else "quiet"
        else:
            sim = Gx2Sim(port, baud=args.baud, rate_hz=args.rate_hz, faults=faults)
            what = f"0xC2, continuous at {args.rate_hz:g} Hz when asked"
        print(f"{args.device} simulator on {port.path} ({args.baud} baud, {what}); Ctrl-C stops it")
        print(f'PYGNC_CONFIG: imu_driver = "{args.device}"\n              imu_port = "{port.path}"', flush=True)
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    sim.start()
    t_end = time.monotonic() + args.duration if args.duration > 0 else None
    while not done.is_set():
        done.wait(0.2 if t_end is None else max(0.0, min(0.2, t_end - time.monotonic())))
        if t_end is not None and time.monotonic() >= t_end:
            break
    sim.stop()
    print(f"{args.device} simulator stopped", flush=True)
    return 0
