"""The stream on the terminal, measured end to end: latency, throughput and CPU.

    .venv/bin/python bench/bench_stream.py            # ~3 min
    .venv/bin/python bench/bench_stream.py --quick    # shorter steps (~1.5 min)
    .venv/bin/python bench/bench_stream.py --record   # and write bench/results/stream.json

Everything goes through the host emulator's pieces (ground.host) and the real process tree
in a real bash on a pseudo-terminal, behind a relay that carries at most 11 520 bytes/s
each way - a UART at 115200 baud, 8N1:

1. *Latency*: a simulated 300-s scenario (sensors at 1 Hz, a GPS fix every 5 s at a sample's
   second); the first 60 s uploaded as the batch, the rest streamed at 4x real time with
   estimate cadence 0.1 s.  For every valid fix: from the write of its GPS frame to the
   arrival of the first orbit EST frame whose ``n_used`` counts it (the host writes the
   second's GPS frame, then its SNS frame).  Median and worst.
2. *Throughput at 115200 baud*: SNS frames of one segment (61 bytes) at increasing rates for
   a few seconds each: the rate the host achieved (the line limits it), what pygnc counted
   (CNT ``sensor_segments``, ``overflow``), how far behind the attitude estimate of the last
   sample came, and the CPU of the whole tree (all cores summed, % of one core).
3. *pygnc's own ceiling*: the same without the line limit (pseudo-terminals at full speed),
   one segment per frame and 25 per frame.

Figures are indicative: the machine is shared (2 cores); the lead re-measures on a quiet one.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import serial

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "flight"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from results import figure, record  # noqa: E402

from ground.__main__ import main as ground_main  # noqa: E402
from ground.host import live  # noqa: E402
from ground.host.client import StreamClient, latency_summary  # noqa: E402
from ground.host.session import ShellSession  # noqa: E402
from ground.host.shellpty import LocalShell  # noqa: E402
from pygnc.formats import stream as fs  # noqa: E402
from pygnc.formats.gps import decode_gps_segments  # noqa: E402

LINE_BAUD = 115200


class TreeCpu:
    """CPU seconds used by every process of the shell's session (sampled: a process that
    ends between samples loses at most its last 0.2 s)."""

    def __init__(self, shell: LocalShell):
        self.shell = shell
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            time.sleep(0.2)

    def sample(self):
        for pid in self.shell.session_pids():
            try:
                c = psutil.Process(pid).cpu_times()
                self.seen[pid] = c.user + c.system + c.children_user + c.children_system
            except psutil.Error:
                pass

    def total(self) -> float:
        self.sample()
        return sum(self.seen.values())

    def close(self):
        self._stop.set()


def simulate(out: Path) -> Path:
    rc = ground_main(
        [
            "simulate",
            str(out),
            "--settings",
            str(REPO / "data" / "sample_5min" / "scenario.toml"),
            "--spacecraft",
            "1",
            "--duration",
            "300",
            "--set",
            "sensors.period_s=1.0",
            "--set",
            "gps.offset_from_last_sensor_s=0.0",
            "--quiet",
            "--force",
        ]
    )
    if rc:
        raise SystemExit("simulate failed")
    return out


def start(home: Path, baud: int | None, batch: bytes, t_sc: float):
    shell = LocalShell(home=home, baud=baud)
    link = serial.serial_for_url(shell.port, baudrate=LINE_BAUD, timeout=0.1, write_timeout=30)
    session = ShellSession(link)
    session.attach(timeout_s=20)
    session.upload(batch, "~/sense.bin", timeout_s=120)
    session.run("rm -rf ~/range")
    client = StreamClient(session)
    session.start(f"cd ~ && {sys.executable} {REPO / 'flight' / 'main.py'} 30 {t_sc:.0f}")
    client.wait_hello(60)
    return shell, link, session, client


def stop(shell, link, session, client) -> float:
    t = session.ctrl_c()
    rc, t_prompt = session.wait_prompt(20)
    client.poll(0.0)
    link.close()
    shell.close()
    if rc != 0:
        print(f"  (main.py exited with {rc})")
    return t_prompt - t


def latency(scn: Path, figs: list) -> None:
    t0 = live.first_time(scn)
    batch = live.split_sense(scn, t0 + 60)
    items = live.live_items(scn, t_from_s=t0 + 60)
    rate = 4.0
    with tempfile.TemporaryDirectory() as home:
        shell, link, session, client = start(Path(home), LINE_BAUD, batch, items[0].t_sc_s)
        cpu = TreeCpu(shell)
        client.set_cadence(0.1)
        c0, w0 = cpu.total(), time.monotonic()
        for it in items:
            due = w0 + (it.t_sc_s - items[0].t_sc_s) / rate
            while (left := due - time.monotonic()) > 0:
                client.poll(min(left, 0.02))
            if it.tag == fs.GPS:
                client.send_fix(it.data, bool(decode_gps_segments(it.data)["valid"][0]))
            else:
                client.send(it.tag, it.data)
            client.poll(0.0)
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:
            client.poll(0.05)
        c1, w1 = cpu.total(), time.monotonic()
        time.sleep(5.0)
        c2, w2 = cpu.total(), time.monotonic()
        cpu.close()
        stop_s = stop(shell, link, session, client)
    lat = client.stats.fix_latency_s
    sent = sum(1 for i in items if i.tag == fs.GPS and decode_gps_segments(i.data)["valid"][0])
    print(
        f"latency, GPS frame written -> orbit EST frame using it (115200 baud, cadence 0.1 s, "
        f"{rate:g}x real time): {latency_summary(lat)}; {len(lat)} of {sent} valid fixes seen"
    )
    if lat:
        q = sorted(lat)
        print(
            f"  p10 {q[len(q) // 10] * 1000:.1f} ms, p90 {q[9 * len(q) // 10] * 1000:.1f} ms, "
            f"mean {statistics.mean(q) * 1000:.1f} ms"
        )
    print(
        f"  CPU of the tree while streaming {100 * (c1 - c0) / (w1 - w0):.0f} % of one core "
        f"({len(items) / ((w1 - w0) - 2.0):.1f} segments/s); idle after it {100 * (c2 - c1) / (w2 - w1):.0f} %"
    )
    print(f"  Ctrl-C -> prompt {stop_s * 1000:.0f} ms")
    if lat:
        figs += [
            figure(
                "fix_latency_median_ms",
                "GPS frame written -> the orbit EST frame using it (115200 baud): median",
                statistics.median(lat) * 1000,
                "ms",
            ),
            figure("fix_latency_worst_ms", "... worst", max(lat) * 1000, "ms"),
        ]
    figs += [
        figure("fixes_seen", "valid fixes whose estimate came back", f"{len(lat)} of {sent}"),
        figure(
            "streaming_cpu_percent",
            "CPU of the tree while streaming (4x real time), % of one core",
            100 * (c1 - c0) / (w1 - w0),
            "%",
        ),
        figure("idle_cpu_percent", "... idle after it", 100 * (c2 - c1) / (w2 - w1), "%"),
        figure("stop_ms", "Ctrl-C -> shell prompt", stop_s * 1000, "ms"),
    ]


def throughput(scn: Path, baud: int | None, rates, per_frame: int, step_s: float, figs: list) -> None:
    t0 = live.first_time(scn)
    seg = next(i.data for i in live.live_items(scn) if i.tag == fs.SENSOR)
    batch = live.split_sense(scn, t0 + 60)
    t_next = t0 + 1000.0
    label = f"{baud} baud" if baud else "no line limit"
    print(
        f"throughput, SNS frames of {per_frame} segment(s) ({len(fs.encode_frame(fs.SENSOR, 65535, seg * per_frame))}"
        f" bytes), {label}:"
    )
    print(
        "  frames/s asked | achieved | segments/s | pygnc counted | overflow | attitude of the last sample "
        "| CPU % of a core"
    )
    with tempfile.TemporaryDirectory() as home:
        shell, link, session, client = start(Path(home), baud, batch, t0 + 60)
        cpu = TreeCpu(shell)
        client.set_cadence(0.1)
        client.status_now()
        base = dict(client.counters)
        for rate in rates:
            n = int(rate * step_s)
            c0, w0 = cpu.total(), time.monotonic()
            last_t = t_next
            for k in range(n):
                due = w0 + k / rate
                while (left := due - time.monotonic()) > 0:
                    client.poll(min(left, 0.01))
                payload = b"".join(struct.pack(">I", int(t_next + j)) + seg[4:] for j in range(per_frame))
                last_t = t_next + per_frame - 1
                t_next += per_frame
                client.send(fs.SENSOR, payload)
                client.poll(0.0)
            w_sent = time.monotonic()
            achieved = n / (w_sent - w0)
            lag = None
            t_end = w_sent + 20.0
            while time.monotonic() < t_end:
                client.poll(0.05)
                a = client.latest.get(("attitude", None))
                if a is not None and a.t_sc_s >= last_t:
                    lag = a.t_rx_s - w_sent
                    break
            c1, w1 = cpu.total(), time.monotonic()
            client.status_now()
            cnt = client.counters
            got = cnt["sensor_segments"] - base["sensor_segments"]
            ovf = cnt["overflow"] - base["overflow"]
            base = dict(cnt)
            print(
                f"  {rate:14g} | {achieved:8.1f} | {achieved * per_frame:10.0f} | {got:6d} of {n * per_frame:<6d} "
                f"| {ovf:8d} | {(f'{lag:.2f} s after the last frame' if lag is not None else 'not within 20 s'):>27} "
                f"| {100 * (c1 - c0) / (w1 - w0):5.0f}"
            )
        cpu.close()
        stop_s = stop(shell, link, session, client)
        print(f"  Ctrl-C -> prompt {stop_s * 1000:.0f} ms")
    # The last (highest) rate asked: the ceiling of the line or of pygnc.
    key = f"{'line' if baud else 'nolimit'}_{per_frame}_per_frame"
    what = f"{label}, {per_frame} segment(s) per frame, {rates[-1]:g} frames/s asked"
    figs += [
        figure(f"{key}_segments_s", f"{what}: segments/s achieved", achieved * per_frame, "segments/s"),
        figure(f"{key}_counted", f"{what}: segments pygnc counted", f"{got} of {n * per_frame}"),
        figure(f"{key}_cpu_percent", f"{what}: CPU of the tree, % of one core", 100 * (c1 - c0) / (w1 - w0), "%"),
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="shorter throughput steps")
    p.add_argument("--record", action="store_true", help="record the figures in bench/results (the performance page)")
    args = p.parse_args(argv)
    step_s = 2.0 if args.quick else 4.0
    figs: list = []
    with tempfile.TemporaryDirectory() as d:
        scn = simulate(Path(d) / "scn")
        latency(scn, figs)
        line = LINE_BAUD / 10
        one = len(fs.encode_frame(fs.SENSOR, 65535, bytes(30)))
        full = len(fs.encode_frame(fs.SENSOR, 65535, bytes(30 * fs.max_segments(fs.SENSOR))))
        print(
            f"the line at {LINE_BAUD} baud carries {line:.0f} bytes/s: {line / one:.0f} SNS frames/s of one "
            f"segment, or {line / full * fs.max_segments(fs.SENSOR):.0f} segments/s packed 25 to a frame"
        )
        throughput(scn, LINE_BAUD, (20, 50, 100, 150, 200), 1, step_s, figs)
        throughput(scn, LINE_BAUD, (5, 10, 12), 25, step_s, figs)
        throughput(scn, None, (200, 500, 1000), 1, step_s, figs)
        throughput(scn, None, (20, 40, 80), 25, step_s, figs)
    print("(indicative: a shared 2-core machine)")
    if args.record:
        record(
            "stream",
            f"The stream on the terminal at {LINE_BAUD} baud: latency, throughput, CPU",
            figs,
            notes=(
                "The host emulator's pieces and the real process tree in a real bash on a pseudo-terminal, behind a "
                f"relay carrying at most {LINE_BAUD // 10} bytes/s each way (a UART at {LINE_BAUD} baud, 8N1); "
                "'no line "
                "limit': pseudo-terminals at full speed.  Throughput: SNS frames at increasing rates for "
                f"{step_s:g} s each, the highest rate's figures here."
            ),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
