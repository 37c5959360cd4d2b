"""``python -m ground serve SOURCE``: the ground station in a browser.

    python -m ground serve out/replay                 # a replay output directory
    python -m ground serve downlink/                  # downlinked batch files (re-read as they arrive)
    python -m ground serve /dev/ttyUSB1               # pygnc's stream on a serial port (a tap on its TX)
    python -m ground serve /dev/pts/7                 # ... or the host emulator's tap (ground host --tap)
    python -m ground serve socket://127.0.0.1:7000    # ... or any pyserial URL

Serves on 127.0.0.1 (this machine only) unless ``--bind`` names another address, and
prints the URL to open.  The page has no login: bind elsewhere only on a network you
trust.  Ctrl-C (or SIGTERM) stops it.  Exit status 0 after a stop, 1 when the port
cannot be bound, 2 for a SOURCE that is none of the above or bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import signal
import sys
from pathlib import Path

DEFAULT_PORT = 8765


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a replay output directory, a directory of batch files (or one file), "
                                  "or a serial port / pseudo-terminal / pyserial URL carrying pygnc's stream")
    p.add_argument("--kind", choices=("auto", "replay", "batches", "stream"), default="auto",
                   help="what SOURCE is (default: guessed; 'batches' to watch an empty downlink directory)")
    p.add_argument("--bind", default="127.0.0.1", metavar="ADDRESS",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0: any free)")
    p.add_argument("--baud", type=int, default=115200, help="a serial SOURCE's line rate (default 115200)")
    p.add_argument("--config", type=Path, help="pygnc_config.toml for a live source's range conversion "
                                               "(bandwidth, calibration); default: the built-in values")


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


async def _serve(station, bind: str, port: int) -> int:
    from aiohttp import web

    runner = web.AppRunner(station.app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, bind, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"ground serve: cannot listen on {bind}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    actual = runner.addresses[0][1] if runner.addresses else port
    host = f"[{bind}]" if ":" in bind else bind
    src = station.source
    print(f"pygnc ground station: {src.kind} source {src.name}", flush=True)
    print(f"  open http://{host}:{actual}/   (Ctrl-C stops)", flush=True)
    if not _loopback(bind):
        print(f"  listening on {bind}: anyone who can reach this address sees the page (no login)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)  # the handler only sets a flag
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
    print("ground serve: stopped", flush=True)
    return 0


def run(args) -> int:
    from .server import Station
    from .sources import open_source

    if not 0 <= args.port <= 65535:
        print(f"ground serve: --port {args.port} is not a TCP port", file=sys.stderr)
        return 2
    config = None
    if args.config is not None:
        import tomllib

        from pygnc.config import load_config

        try:
            config = load_config(args.config)
        except (ValueError, OSError, tomllib.TOMLDecodeError) as exc:
            print(f"ground serve: --config {args.config}: {exc}", file=sys.stderr)
            return 2
    try:
        source = open_source(args.source, args.kind, baud=args.baud, config=config)
    except ValueError as exc:
        print(f"ground serve: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(Station(source), args.bind, args.port))
