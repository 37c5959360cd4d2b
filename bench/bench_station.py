"""The browser ground station, measured: messages from source to browser, server CPU, stop,
pages that stop reading.

    .venv/bin/python bench/bench_station.py                      # ~5 min
    .venv/bin/python bench/bench_station.py --only stalled       # step 5 alone (no browser), ~3 min
    .venv/bin/python bench/bench_station.py --record             # and write bench/results/station.json

Everything is real: ``python -m ground serve`` as a process reading a pseudo-terminal on
which a fake pygnc (tests/station_support.FakePygnc) writes stream frames, and the page in
headless Chromium (Playwright driving the system's Chromium).

1. *Throughput*: N estimate frames (orbit, attitude, formation in turn) written as fast as
   the pty takes them; timed from the first write to the page holding every row (the page
   counts them, ``window.__station.rowsReceived``).  Frames/s source -> browser, median of 3.
2. *CPU at the streaming cadence*: the host's default cadence (1 s: an orbit, an attitude and
   two formation estimates, a status and counters every second, a range every 10 s) for
   30 s with one page open: the server process's CPU (user + system) as % of one core, and
   its resident memory.
3. *Stop*: SIGINT to the server with the page connected -> exit, s (median of 3).
4. *Snapshot of a day*: the pure model on a synthetic 24-h replay (orbit, attitude and two
   partners every 5 s): time to build the thinned series, and the JSON size sent to a page.
5. *Stalled pages on an idle source*: the server on a synthetic 24-h replay directory (as
   step 4 with three partners and noise in every column, so that its snapshot, like a real
   day's, outgrows what the kernel buffers for a socket); N clients open the WebSocket and
   never read; after T s the server's resident memory, the bytes the kernel still queues on
   its sockets and the pages still connected; median of R runs (each a new server).

Figures are indicative: the machine is shared (2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from results import figure, record  # noqa: E402
from station_support import CHROMIUM_FLAGS, T0_SC_S, FakePygnc, Server, chromium  # noqa: E402


def _page(browser, url):
    page = browser.new_page(viewport={"width": 1300, "height": 1600})
    page.goto(url)
    page.wait_for_function("window.__station.connected && window.__station.byType.snapshot > 0", timeout=20_000)
    return page


def throughput(browser, n_frames: int) -> float:
    dev = FakePygnc()
    srv = Server(dev.path)
    try:
        page = _page(browser, srv.url)
        base = page.evaluate("window.__station.rowsReceived")
        t0 = time.perf_counter()
        t = T0_SC_S
        for _ in range(n_frames // 3):
            dev.estimates(t)
            t += 1.0
        want = base + 3 * (n_frames // 3)
        page.wait_for_function(f"window.__station.rowsReceived >= {want}", timeout=120_000, polling=20)
        return 3 * (n_frames // 3) / (time.perf_counter() - t0)
    finally:
        srv.stop()
        dev.close()


def cadence_cpu(browser, seconds: float) -> tuple[float, float, int]:
    dev = FakePygnc()
    srv = Server(dev.path)
    try:
        page = _page(browser, srv.url)
        proc = psutil.Process(srv.proc.pid)
        c0 = proc.cpu_times()
        w0 = time.perf_counter()
        t = T0_SC_S
        dev.hello()
        k = 0
        while time.perf_counter() - w0 < seconds:
            dev.estimates(t)
            dev.record("formation", t, {"peer_id": 0x4B, "dr_ecef_m": [-2000.0, 10.0, 5.0], "sigma_dr_m": [3.0] * 3})
            dev.status(t)
            if k % 10 == 0:
                dev.range(t, 1000.8)
            k += 1
            t += 1.0
            time.sleep(max(0.0, w0 + k - time.perf_counter()))
        c1 = proc.cpu_times()
        wall = time.perf_counter() - w0
        cpu = (c1.user + c1.system - c0.user - c0.system) / wall * 100.0
        rows = page.evaluate("window.__station.rowsReceived")
        return cpu, proc.memory_info().rss / 2**20, rows
    finally:
        srv.stop()
        dev.close()


def stop_time(browser) -> float:
    dev = FakePygnc()
    srv = Server(dev.path)
    try:
        _page(browser, srv.url)
        t0 = time.perf_counter()
        srv.proc.send_signal(signal.SIGINT)
        srv.proc.wait(timeout=60)
        return time.perf_counter() - t0
    finally:
        srv.stop()
        dev.close()


def day_tables(noise: bool = False, partners: int = 2) -> tuple[dict, dict]:
    """A synthetic 24-h replay: orbit, attitude and *partners* partners every 5 s (tables in the
    replay layout) and range residuals every 30 s per partner; *noise*: random values in the
    columns the pure model does not need (JSON of the size real data gives)."""
    from ground.outputs import tables as tb

    rng = np.random.default_rng(5)
    n = 24 * 3600 // 5
    t = 1.7e9 + 5.0 * np.arange(n)
    w = 2 * np.pi / 5677.0
    a = w * (t - t[0])
    r = 6.878e6 * np.column_stack([np.cos(a), np.sin(a) * 0.7, np.sin(a) * 0.7])
    v = 6.878e6 * w * np.column_stack([-np.sin(a), np.cos(a) * 0.7, np.cos(a) * 0.7])

    def base(kind, m):
        return {c: (rng.normal(size=m) if noise else np.zeros(m)) for c, _ in tb.COLUMNS[kind] if c != "utc"}

    orbit = tb.empty_table("orbit")
    orbit.update(base("orbit", n))
    orbit.update({"unix_time_s": t, "t_sc_s": t - 16.0, "n_fixes_used": np.arange(n, dtype=float)})
    for k, ax in enumerate("xyz"):
        orbit[f"{ax}_ecef_m"], orbit[f"v{ax}_ecef_m_s"] = r[:, k], v[:, k]
        orbit[f"sigma_{ax}_ecef_m"], orbit[f"sigma_v{ax}_ecef_m_s"] = np.full(n, 3.0), np.full(n, 0.01)
    att = base("attitude", n)
    att.update(unix_time_s=t, t_sc_s=t - 16.0, qw=np.ones(n))
    ids = 74 + np.arange(partners)
    form = base("formation", partners * n)
    form.update(
        unix_time_s=np.tile(t, partners),
        t_sc_s=np.tile(t - 16.0, partners),
        peer_id=np.repeat(ids.astype(float), n),
        dx_ecef_m=form["dx_ecef_m"] + 1000.0,
    )
    tr = t[::6]
    res = {
        "t_sc_s": np.tile(tr - 16.0, partners),
        "peer_id": np.repeat(ids, tr.size),
        "residual_m": rng.normal(size=partners * tr.size) if noise else np.zeros(partners * tr.size),
    }
    return {"orbit": orbit, "attitude": att, "formation": form}, res


def write_day(out: Path) -> None:
    """:func:`day_tables` with noise and three partners as a replay output directory: its
    snapshot (4.5 MiB) outgrows what the kernel buffers for one socket here (about 4 MiB),
    as the 24-h two-partner day's (3.9 MiB, with its gaps) does."""
    from ground.outputs import tables as tb

    tables, res = day_tables(noise=True, partners=3)
    for kind, table in tables.items():
        table = {**table, "utc": tb.iso_utc(table["unix_time_s"])}
        tb.write_csv({c: table[c] for c, _ in tb.COLUMNS[kind]}, out / f"{kind}.csv")
    rt = {
        "unix_time_s": res["t_sc_s"] + 16.0,
        "t_sc_s": res["t_sc_s"],
        "peer_id": res["peer_id"].astype(float),
        "residual_m": res["residual_m"],
    }
    rt["utc"] = tb.iso_utc(rt["unix_time_s"])
    tb.write_csv({c: rt[c] for c, _ in tb.COLUMNS["range_residuals"]}, out / "range_residuals.csv")


def _stalled_client(url: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(
        f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    s.recv(256)  # the 101 response (and maybe the first bytes of the stream), then nothing more
    return s


def _kernel_send_queue(port: int) -> int:
    """Bytes the kernel queues on the server's sockets of *port* (Linux /proc/net/tcp tx_queue)."""
    total = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port:
                total += int(f[4].split(":")[0], 16)
    return total


def stalled_pages(day_dir: Path, n_clients: int, seconds: float) -> dict:
    srv = Server(str(day_dir))
    socks: list[socket.socket] = []
    try:
        proc = psutil.Process(srv.proc.pid)
        snapshot = len(urllib.request.urlopen(srv.url + "api/current", timeout=60).read())
        rss0 = proc.memory_info().rss / 2**20
        port = int(srv.url.rstrip("/").rsplit(":", 1)[1])
        socks = [_stalled_client(srv.url) for _ in range(n_clients)]
        time.sleep(seconds)
        conns = [c for c in proc.net_connections("tcp") if c.status == psutil.CONN_ESTABLISHED]
        return {
            "rss0_mib": rss0,
            "rss_mib": proc.memory_info().rss / 2**20,
            "connected": len(conns),
            "kernel_queued_mib": _kernel_send_queue(port) / 2**20,
            "snapshot_mib": snapshot / 2**20,
        }
    finally:
        for s in socks:
            s.close()
        srv.stop()


def day_snapshot() -> tuple[float, float, int]:
    from ground.station import model, server

    tables, res = day_tables()
    n = tables["orbit"]["t_sc_s"].size
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        series = model.series_of(tables, res, lambda x: np.asarray(x) + 16.0)
        text = server.encode({"type": "snapshot", "series": series})
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(text) / 2**20, n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--only",
        choices=("browser", "snapshot", "stalled"),
        help="run only steps 1-3 (browser), 4 (snapshot) or 5 (stalled)",
    )
    ap.add_argument("--frames", type=int, default=6000, help="frames for the throughput step (default 6000)")
    ap.add_argument("--cadence-seconds", type=float, default=30.0, help="length of the cadence step (default 30 s)")
    ap.add_argument("--stalled-clients", type=int, default=50, help="stalled pages in step 5 (default 50)")
    ap.add_argument(
        "--stalled-seconds", type=float, default=60.0, help="how long step 5 waits before measuring (default 60 s)"
    )
    ap.add_argument("--stalled-runs", type=int, default=3, help="runs of step 5 (default 3)")
    ap.add_argument(
        "--record",
        action="store_true",
        help="record the figures in bench/results (the performance page): station.json, or "
        "station_<step>.json with --only",
    )
    args = ap.parse_args(argv)
    figures: dict = {}
    print(f"machine: {os.cpu_count()} cores")
    if args.only in (None, "browser"):
        path = chromium()
        if path is None:
            print("no Chromium (and cannot install Debian's chromium package)", file=sys.stderr)
            return 1
        from playwright.sync_api import sync_playwright

        print(f"Chromium {path}")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
            rates = [throughput(browser, args.frames) for _ in range(3)]
            print(
                f"1. source -> browser: {statistics.median(rates):,.0f} estimate frames/s (median of 3: "
                + ", ".join(f"{r:,.0f}" for r in rates)
                + f"; {args.frames} frames each)"
            )
            cpu, rss, rows = cadence_cpu(browser, args.cadence_seconds)
            print(
                f"2. at the 1-s cadence (4 estimates + status + counters per s, one page): server CPU {cpu:.1f} % "
                f"of a core, RSS {rss:.0f} MiB, {rows} rows reached the page in {args.cadence_seconds:.0f} s"
            )
            stops = [stop_time(browser) for _ in range(3)]
            print(
                f"3. stop with a page connected: {statistics.median(stops):.2f} s (median of 3: "
                + ", ".join(f"{s:.2f}" for s in stops)
                + ")"
            )
            browser.close()
        figures.update(
            frames_per_s=statistics.median(rates), cadence_cpu_percent=cpu, rss_mib=rss, stop_s=statistics.median(stops)
        )
    if args.only in (None, "snapshot"):
        dt, mib, n = day_snapshot()
        print(
            f"4. snapshot of a 24-h replay ({n} rows per series, 2 partners): {dt * 1000:.0f} ms to build, "
            f"{mib:.2f} MiB of JSON (median of 3)"
        )
        figures.update(day_snapshot_ms=dt * 1000, day_snapshot_mib=mib)
    if args.only in (None, "stalled"):
        with tempfile.TemporaryDirectory(prefix="bench_station_") as tmp:
            write_day(Path(tmp))
            runs = [
                stalled_pages(Path(tmp), args.stalled_clients, args.stalled_seconds) for _ in range(args.stalled_runs)
            ]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"5. {args.stalled_clients} pages that never read, idle 24-h replay source "
            f"({med['snapshot_mib']:.1f} MiB snapshot), after {args.stalled_seconds:.0f} s: server RSS "
            f"{med['rss_mib']:.0f} MiB (from {med['rss0_mib']:.0f}), kernel send queues "
            f"{med['kernel_queued_mib']:.1f} MiB, {med['connected']:.0f} still connected (median of "
            f"{len(runs)}: RSS " + ", ".join(f"{r['rss_mib']:.0f}" for r in runs) + " MiB)"
        )
        figures.update({f"stalled_{k}": v for k, v in med.items()})
    print(json.dumps(figures))
    if args.record:
        _record(args, figures)
    return 0


def _record(args, f: dict) -> None:
    figs = []
    if "frames_per_s" in f:
        figs += [
            figure(
                "frames_per_s",
                f"estimate frames/s from the source to the page, median of 3 ({args.frames} frames each)",
                f["frames_per_s"],
                "frames/s",
            ),
            figure(
                "cadence_cpu_percent",
                "server CPU at the 1-s streaming cadence, one page open, % of one core",
                f["cadence_cpu_percent"],
                "%",
            ),
            figure("rss_mib", "... server resident memory", f["rss_mib"], "MiB"),
            figure("stop_s", "SIGINT -> server exit with a page connected, median of 3", f["stop_s"], "s"),
        ]
    if "day_snapshot_ms" in f:
        figs += [
            figure(
                "day_snapshot_ms", "snapshot of a 24-h replay (2 partners): time to build", f["day_snapshot_ms"], "ms"
            ),
            figure("day_snapshot_mib", "... its JSON", f["day_snapshot_mib"], "MiB"),
        ]
    if "stalled_rss_mib" in f:
        what = f"{args.stalled_clients} pages that never read, after {args.stalled_seconds:g} s"
        figs += [
            figure(
                "stalled_rss_mib",
                f"{what}: server resident memory (median of {args.stalled_runs})",
                f["stalled_rss_mib"],
                "MiB",
            ),
            figure("stalled_rss0_mib", "... before they connected", f["stalled_rss0_mib"], "MiB"),
            figure(
                "stalled_kernel_queued_mib",
                "... bytes the kernel still queues on the server's sockets",
                f["stalled_kernel_queued_mib"],
                "MiB",
            ),
            figure("stalled_connected", "... pages still connected", f["stalled_connected"]),
            figure("stalled_snapshot_mib", "... the replay's snapshot", f["stalled_snapshot_mib"], "MiB"),
        ]
    record(
        "station" if args.only is None else f"station_{args.only}",
        "The browser ground station: frames to the page, server CPU, stop, a day's snapshot, stalled pages",
        figs,
        notes="python -m ground serve reading a pseudo-terminal on which a fake pygnc writes stream frames, the "
        "page in headless Chromium; the snapshot and stalled-page steps on synthetic 24-h replays.",
    )


if __name__ == "__main__":
    sys.exit(main())
