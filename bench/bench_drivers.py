"""IMU drivers: decode throughput of each codec, and CPU per second of a live 100 Hz stream.

1. Codec throughput (MB/s of wire bytes, median of the repeats), framing + CRC/checksum +
   decoding to physical units: IMU380 S1 frames, 3DM-GX2 0xC2 packets, monoDrive v16 frames
   (TCP stream framer and per-datagram decode).  Framing alone is shown beside it.
2. CPU of a 100 Hz stream on this machine: a simulated device in a separate process
   (``python -m ground simdevice ...`` on a pseudo-terminal or loopback UDP) and, in this
   process, the loop the ingest task runs (select on the descriptor, read, decode, clock
   alignment) for ``--seconds``; CPU seconds used per wall second (process_time).
3. The same for the whole ``imu_ingest`` task process in the real flight tree (IMU380 at
   100 Hz, publishing on the bus): its CPU time per second from psutil.

    .venv/bin/python bench/bench_drivers.py [--repeats 5] [--seconds 5] [--no-tree] [--record]

Figures are indicative on a shared machine; the lead re-measures on a quiet one.  ``--record``
writes them to bench/results/drivers.json (docs/performance.md).
"""

from __future__ import annotations

import argparse
import math
import os
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from results import figure, record  # noqa: E402

from pygnc.drivers import gx2_codec as gx  # noqa: E402
from pygnc.drivers import imu380_codec as uu  # noqa: E402
from pygnc.drivers import monodrive_codec as md  # noqa: E402
from pygnc.drivers.gx2 import Gx2Stream  # noqa: E402
from pygnc.drivers.imu380 import Imu380Stream  # noqa: E402
from pygnc.drivers.monodrive import MonoDriveStream  # noqa: E402
from pygnc.drivers.timing import ClockSync  # noqa: E402
from pygnc.tasks.table import TASKS_BY_NAME, process_name  # noqa: E402

#: Figure keys of the rows of :func:`codec_throughput` and :func:`stream_cpu`, in their order.
CODEC_KEYS = ("imu380", "gx2", "monodrive_tcp", "monodrive_udp")
STREAM_KEYS = ("imu380_pty", "gx2_continuous_pty", "gx2_polled_pty", "monodrive_udp")


def _s1_stream(n: int) -> bytes:
    out = bytearray()
    for k in range(n):
        p = struct.pack(">10h2H", *[((k * 37 + j * 101) % 60000) - 30000 for j in range(10)], k & 0xFFFF, 0)
        out += uu.build_frame(uu.S1, p)
    return bytes(out)


def _c2_stream(n: int) -> bytes:
    out = bytearray()
    for k in range(n):
        body = struct.pack(">B6fI", 0xC2, 0.01 * k, -0.2, -1.0, 0.1, 0.2, 0.3, (k * 196608) & 0xFFFFFFFF)
        out += body + struct.pack(">H", sum(body) & 0xFFFF)
    return bytes(out)


def _mono_frames(n: int) -> list[bytes]:
    out = []
    for k in range(n):
        p = md.encode_imu_payload((0.0, 0.1, -1.0), (0.1, 0.2, 0.3), k, k)
        out.append(md.encode_header("v16", len(p), k, 0.01 * k, k) + p)
    return out


def _time(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def codec_throughput(repeats: int, n: int = 30000) -> list[tuple[str, float, float]]:
    rows = []
    s1 = _s1_stream(n)

    def uu_frame():
        f = uu.Framer()
        for k in range(0, len(s1), 4096):
            f.feed(s1[k : k + 4096])

    def uu_full():
        f = uu.Framer()
        for k in range(0, len(s1), 4096):
            for fr in f.feed(s1[k : k + 4096]):
                uu.decode_output(fr)

    rows.append(
        (
            "IMU380 S1 (framer + CRC, + decode)",
            len(s1) / _time(uu_frame, repeats) / 1e6,
            len(s1) / _time(uu_full, repeats) / 1e6,
        )
    )
    c2 = _c2_stream(n)

    def gx_frame():
        f = gx.Framer()
        for k in range(0, len(c2), 4096):
            f.feed(c2[k : k + 4096])

    def gx_full():
        f = gx.Framer()
        for k in range(0, len(c2), 4096):
            for fr in f.feed(c2[k : k + 4096]):
                gx.decode_accel_rate(fr, verify=False)

    rows.append(
        (
            "GX2 0xC2 (framer + checksum, + decode)",
            len(c2) / _time(gx_frame, repeats) / 1e6,
            len(c2) / _time(gx_full, repeats) / 1e6,
        )
    )
    frames = _mono_frames(n)
    stream = b"".join(frames)

    def md_frame():
        f = md.TcpFramer("v16")
        for k in range(0, len(stream), 4096):
            f.feed(stream[k : k + 4096])

    def md_full():
        f = md.TcpFramer("v16")
        for k in range(0, len(stream), 4096):
            for fr in f.feed(stream[k : k + 4096]):
                md.decode_frame(fr, "v16", verify_checksum=True)

    def md_udp():
        for fr in frames:
            md.decode_frame(fr, "v16", verify_checksum=True)

    rows.append(
        (
            "monoDrive v16 TCP (framer, + decode)",
            len(stream) / _time(md_frame, repeats) / 1e6,
            len(stream) / _time(md_full, repeats) / 1e6,
        )
    )
    rows.append(("monoDrive v16 UDP (per datagram decode)", math.nan, len(stream) / _time(md_udp, repeats) / 1e6))
    return rows


def _start_sim(args: list[str]) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen(
        [sys.executable, "-m", "ground", "simdevice", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    first = p.stdout.readline()
    return p, first


def _stop(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()


def _drive(stream, seconds: float) -> tuple[float, int]:
    """The ingest task's loop in miniature; returns (CPU s per s, samples)."""
    for _ in stream.connect_steps():
        pass
    sync = ClockSync()
    fd = stream.fileno()
    n = 0
    c0, t0 = time.process_time(), time.monotonic()
    while time.monotonic() - t0 < seconds:
        now = time.monotonic()
        wait = min(0.5, stream.service(now))
        fd = stream.fileno() if fd is None else fd
        select.select([fd], [], [], wait)
        for s in stream.read_samples():
            sync.observe(s.t_device_s, s.t_rx_mono_s) if math.isfinite(s.t_device_s) else None
            n += 1
    cpu = (time.process_time() - c0) / (time.monotonic() - t0)
    stream.close()
    return cpu, n


def stream_cpu(seconds: float) -> list[tuple[str, float, float]]:
    rows = []
    holder = tempfile.TemporaryDirectory(prefix="bench-drivers-")
    link = Path(holder.name) / "tty"
    for name, sim_args, make in (
        ("IMU380 S1 100 Hz (pty)", ["imu380", "--link", str(link)], lambda: Imu380Stream(str(link), baud=115200)),
        ("GX2 continuous 100 Hz (pty)", ["gx2", "--link", str(link)], lambda: Gx2Stream(str(link))),
        ("GX2 polled 100 Hz (pty)", ["gx2", "--link", str(link)], lambda: Gx2Stream(str(link), mode="polled")),
    ):
        p, _ = _start_sim(sim_args)
        try:
            cpu, n = _drive(make(), seconds)
        finally:
            _stop(p)
        rows.append((name, cpu, n / seconds))
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # a free port for the stream to bind
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    st = MonoDriveStream(f"udp://127.0.0.1:{port}")
    p, _ = _start_sim(["monodrive", "--udp", f"127.0.0.1:{port}"])
    try:
        st_cpu, n = _drive(st, seconds)
    finally:
        _stop(p)
    rows.append(("monoDrive v16 100 Hz (UDP loopback)", st_cpu, n / seconds))
    holder.cleanup()
    return rows


def task_cpu(seconds: float) -> tuple[float, float]:
    """CPU s/s of the imu_ingest process in the real flight tree, and of an idle task
    (formation_estimator after its batch) for comparison."""
    from flight_harness import FlightRun

    holder = tempfile.TemporaryDirectory(prefix="bench-drivers-tree-")
    tmp = Path(holder.name)
    link = tmp / "tty"
    cfg = tmp / "imu.toml"
    cfg.write_text(f'imu_driver = "imu380"\nimu_port = "{link}"\n')
    p, _ = _start_sim(["imu380", "--link", str(link)])
    try:
        with FlightRun(tmp / "home", env={"PYGNC_CONFIG": str(cfg)}) as run:
            run.wait_status(lambda s: any(s[f"task{k}_id"] == 8 and s[f"task{k}_state"] == 2 for k in range(8)))
            time.sleep(1.0)
            procs = {}
            for q in run.tree()[1:]:
                cmd, comm = q.cmdline(), q.name()
                for name in ("imu_ingest", "formation_estimator"):
                    # spawned: the task's module in its command line; forked from the zygote: its process name
                    if name in cmd or comm == process_name(TASKS_BY_NAME[name]):
                        procs[name] = q
            c0 = {k: sum(q.cpu_times()[:2]) for k, q in procs.items()}
            t0 = time.monotonic()
            time.sleep(seconds)
            dt = time.monotonic() - t0
            c1 = {k: sum(q.cpu_times()[:2]) for k, q in procs.items()}
            run.ctrl_c()
            run.wait_exit(10)
    finally:
        _stop(p)
        holder.cleanup()
    return (c1["imu_ingest"] - c0["imu_ingest"]) / dt, (c1["formation_estimator"] - c0["formation_estimator"]) / dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--no-tree", action="store_true", help="skip the flight-tree measurement")
    ap.add_argument("--record", action="store_true", help="record the figures in bench/results (the performance page)")
    a = ap.parse_args(argv)
    figs = []
    print(f"# codec throughput, MB/s of wire bytes (median of {a.repeats})")
    print(f"{'codec':44s} {'framing':>9s} {'+decode':>9s}")
    for key, (name, frame, full) in zip(CODEC_KEYS, codec_throughput(a.repeats)):
        print(f"{name:44s} {frame:9.1f} {full:9.1f}")
        short = name.split(" (")[0]
        if math.isfinite(frame):
            figs.append(
                figure(f"{key}_framing_mb_s", f"{short}: framing and its check alone (wire bytes)", frame, "MB/s")
            )
        figs.append(figure(f"{key}_decode_mb_s", f"{short}: decoded to physical units (wire bytes)", full, "MB/s"))
    print(f"\n# CPU of a live stream, this process's loop ({a.seconds:g} s each; device in another process)")
    print(f"{'stream':40s} {'CPU s/s':>9s} {'samples/s':>10s}")
    for key, (name, cpu, rate) in zip(STREAM_KEYS, stream_cpu(a.seconds)):
        print(f"{name:40s} {cpu:9.4f} {rate:10.1f}")
        figs.append(figure(f"{key}_cpu_s_s", f"{name}: the ingest loop's CPU seconds per second", cpu, "CPU s/s"))
    if not a.no_tree:
        imu, idle = task_cpu(a.seconds)
        print(
            f"\n# flight tree: imu_ingest process (IMU380 S1 100 Hz, publishing) {imu:.4f} CPU s/s; "
            f"an idle task for comparison {idle:.4f} CPU s/s"
        )
        figs += [
            figure(
                "tree_imu_ingest_cpu_s_s",
                "flight tree: the imu_ingest process (IMU380 100 Hz, publishing), CPU seconds per second",
                imu,
                "CPU s/s",
            ),
            figure("tree_idle_task_cpu_s_s", "... an idle task for comparison", idle, "CPU s/s"),
        ]
    print(f"\n(python {sys.version.split()[0]}, {os.cpu_count()} CPUs; indicative on a shared machine)")
    if a.record:
        record(
            "drivers",
            "IMU drivers: codec throughput and the CPU of a 100-Hz stream",
            figs,
            notes=(
                f"Codecs: median of {a.repeats} passes over 30 000 synthetic packets.  Streams: a simulated device in "
                f"another process (python -m ground simdevice) for {a.seconds:g} s each, on a pseudo-terminal or "
                "loopback UDP."
            ),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
