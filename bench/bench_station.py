"""The browser ground station, measured: messages from source to browser, server CPU, stop.

    .venv/bin/python bench/bench_station.py           # ~1.5 min

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

Figures are indicative: the machine is shared (2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

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


def day_snapshot() -> tuple[float, float, int]:
    from ground.outputs import tables as tb
    from ground.station import model, server

    n = 24 * 3600 // 5
    t = 1.7e9 + 5.0 * np.arange(n)
    w = 2 * np.pi / 5677.0
    a = w * (t - t[0])
    r = 6.878e6 * np.column_stack([np.cos(a), np.sin(a) * 0.7, np.sin(a) * 0.7])
    v = 6.878e6 * w * np.column_stack([-np.sin(a), np.cos(a) * 0.7, np.cos(a) * 0.7])
    orbit = tb.empty_table("orbit")
    orbit.update({"unix_time_s": t, "t_sc_s": t - 16.0, "n_fixes_used": np.arange(n, dtype=float)})
    for k, ax in enumerate("xyz"):
        orbit[f"{ax}_ecef_m"], orbit[f"v{ax}_ecef_m_s"] = r[:, k], v[:, k]
        orbit[f"sigma_{ax}_ecef_m"], orbit[f"sigma_v{ax}_ecef_m_s"] = np.full(n, 3.0), np.full(n, 0.01)
    att = {c: np.zeros(n) for c, _ in tb.COLUMNS["attitude"] if c != "utc"}
    att.update(unix_time_s=t, t_sc_s=t - 16.0, qw=np.ones(n))
    form = {c: np.zeros(2 * n) for c, _ in tb.COLUMNS["formation"] if c != "utc"}
    form.update(unix_time_s=np.tile(t, 2), t_sc_s=np.tile(t - 16.0, 2), peer_id=np.repeat([74.0, 75.0], n),
                dx_ecef_m=np.full(2 * n, 1000.0))
    res = {"t_sc_s": t[::6] - 16.0, "peer_id": np.full(t[::6].size, 74), "residual_m": np.zeros(t[::6].size)}
    tables = {"orbit": orbit, "attitude": att, "formation": form}
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        series = model.series_of(tables, res, lambda x: np.asarray(x) + 16.0)
        text = server.encode({"type": "snapshot", "series": series})
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(text) / 2**20, n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=6000, help="frames for the throughput step (default 6000)")
    ap.add_argument("--cadence-seconds", type=float, default=30.0, help="length of the cadence step (default 30 s)")
    args = ap.parse_args(argv)
    path = chromium()
    if path is None:
        print("no Chromium (and cannot install Debian's chromium package)", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    print(f"machine: {os.cpu_count()} cores; Chromium {path}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        rates = [throughput(browser, args.frames) for _ in range(3)]
        print(f"1. source -> browser: {statistics.median(rates):,.0f} estimate frames/s (median of 3: "
              + ", ".join(f"{r:,.0f}" for r in rates) + f"; {args.frames} frames each)")
        cpu, rss, rows = cadence_cpu(browser, args.cadence_seconds)
        print(f"2. at the 1-s cadence (4 estimates + status + counters per s, one page): server CPU {cpu:.1f} % "
              f"of a core, RSS {rss:.0f} MiB, {rows} rows reached the page in {args.cadence_seconds:.0f} s")
        stops = [stop_time(browser) for _ in range(3)]
        print(f"3. stop with a page connected: {statistics.median(stops):.2f} s (median of 3: "
              + ", ".join(f"{s:.2f}" for s in stops) + ")")
        browser.close()
    dt, mib, n = day_snapshot()
    print(f"4. snapshot of a 24-h replay ({n} rows per series, 2 partners): {dt * 1000:.0f} ms to build, "
          f"{mib:.2f} MiB of JSON (median of 3)")
    print(json.dumps({"frames_per_s": statistics.median(rates), "cadence_cpu_percent": cpu, "rss_mib": rss,
                      "stop_s": statistics.median(stops), "day_snapshot_ms": dt * 1000, "day_snapshot_mib": mib}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
