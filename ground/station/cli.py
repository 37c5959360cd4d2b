"""``python -m ground serve SOURCE``: the ground station in a browser.

    python -m ground serve out/replay                 # a replay output directory
    python -m ground serve downlink/                  # downlinked batch files (re-read as they arrive)
    python -m ground serve /dev/ttyUSB1               # pygnc's stream on a serial port (a tap on its TX)
    python -m ground serve /dev/pts/7                 # ... or the host emulator's tap (ground host --tap)
    python -m ground serve socket://127.0.0.1:7000    # ... or any pyserial URL

Serves on 127.0.0.1 (this machine only) unless ``--bind`` names another address, and
prints the URL to open (for ``--bind 0.0.0.0`` or ``::``, every interface: this machine's
URL and the host's name and addresses for the others).  The page has no login: bind
elsewhere only on a network you trust.  Ctrl-C (or SIGTERM) stops it.  Exit status 0 after
a stop, 1 when the port cannot be bound, 2 for a SOURCE that is none of the above (a
scenario directory is refused: replay it and serve the replay) or bad usage, 128 + the
signal's number (130 for SIGINT) when a second signal came during the stop, or a signal
before the server was up.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import signal
import socket
import sys
from pathlib import Path

DEFAULT_PORT = 8765


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "source",
        help="a replay output directory, a directory of batch files (or one file), "
        "or a serial port / pseudo-terminal / pyserial URL carrying pygnc's stream",
    )
    p.add_argument(
        "--kind",
        choices=("auto", "replay", "batches", "stream"),
        default="auto",
        help="what SOURCE is (default: guessed; 'batches' to watch an empty downlink directory)",
    )
    p.add_argument(
        "--bind",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0: any free)")
    p.add_argument("--baud", type=int, default=115200, help="a serial SOURCE's line rate (default 115200)")
    p.add_argument(
        "--config",
        type=Path,
        help="pygnc_config.toml for a live source's range conversion "
        "(bandwidth, calibration); default: the built-in values",
    )


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def _unspecified(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return address == ""


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def host_addresses() -> tuple[str, list[str]]:
    """This host's name and its addresses other than loopback (as the name resolves here;
    none when it does not)."""
    name = socket.gethostname()
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except OSError:
        infos = []
    out = []
    for *_, sockaddr in infos:
        a = sockaddr[0]
        if not ipaddress.ip_address(a.split("%")[0]).is_loopback and a not in out:
            out.append(a)
    return name, out


def listen_lines(bind: str, port: int) -> list[str]:
    """What to print once the server listens on *bind*:*port*: the URL to open first."""
    if _unspecified(bind):
        local = "::1" if ":" in bind else "127.0.0.1"
        name, addresses = host_addresses()
        others = ", ".join(_url(h, port) for h in [name, *addresses])
        return [
            f"  open {_url(local, port)}   (Ctrl-C stops)",
            f"  listening on every interface ({bind}): from other machines {others}",
            "  anyone who can reach these addresses sees the page (no login)",
        ]
    lines = [f"  open {_url(bind, port)}   (Ctrl-C stops)"]
    if not _loopback(bind):
        lines.append(f"  listening on {bind}: anyone who can reach this address sees the page (no login)")
    return lines


#: Stop signals received (SIGINT, SIGTERM), in order: the first stops the server, any later
#: one only changes the exit status.
_signals: list[int] = []
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _note_late_signal(signum, frame) -> None:  # after the event loop's handlers: only noted
    _signals.append(signum)


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
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:  # only notes it: the stop below runs once
        _signals.append(signum)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:  # before the URL is printed: from then on a signal is a clean stop
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        src = station.source
        print(f"pygnc ground station: {src.kind} source {src.name}", flush=True)
        for line in listen_lines(bind, actual):
            print(line, flush=True)
        await stop.wait()
    finally:
        # the loop's handlers stay until the stop is over, then a handler that only notes a
        # signal until the process ends: a second Ctrl-C is never a traceback
        await runner.cleanup()
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)
            signal.signal(sig, _note_late_signal)
    return 0


def run(args) -> int:
    try:
        rc = _run(args)
    except KeyboardInterrupt:  # before the server's own handlers were in place
        print("ground serve: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    if _signals:  # stopped by a signal: one more as the process ends changes nothing
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
    if rc == 0 and _signals:
        if len(_signals) > 1:
            print(f"ground serve: stopped ({signal.Signals(_signals[-1]).name} again during the stop)", flush=True)
            return 128 + _signals[-1]
        print("ground serve: stopped", flush=True)
    return rc


def _run(args) -> int:
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
