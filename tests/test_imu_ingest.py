"""Task imu_ingest: off by default; in the real process tree (run in a pseudo-terminal as the
host does) it streams a simulated IMU380, survives unplug/replug, tags samples with the
spacecraft clock, and stops cleanly on Ctrl-C."""

import re
import time

import msgpack
import pytest
import zmq
from flight_harness import FlightRun

from ground.devices import motion
from ground.devices.imu380 import RATE_LSB_RAD_S, Imu380Sim
from ground.devices.ports import PtyPort
from pygnc.config import Config, Paths
from pygnc.drivers.link import LinkError
from pygnc.formats.buslog import decode_frames
from pygnc.tasks.imu_ingest import make_stream
from pygnc.tasks.table import TASKS_BY_NAME, enabled_tasks

SC_T0 = 1_700_000_000.0


def test_off_by_default_and_enabled_by_imu_driver():
    assert "imu_ingest" not in [t.name for t in enabled_tasks(Config())]
    on = enabled_tasks(Config(imu_driver="imu380", imu_port="/dev/ttyUSB0"))
    assert "imu_ingest" in [t.name for t in on] and TASKS_BY_NAME["imu_ingest"].task_id == 8


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"imu_driver": "bmx"}, "imu_driver must be one of"),
        ({"imu_driver": "imu380"}, "imu_port is empty"),
        ({"imu_driver": "imu380", "imu_port": "auto", "imu_packet_type": "XX"}, "imu_packet_type must be one of"),
        (
            {"imu_driver": "imu380", "imu_port": "/dev/ttyUSB0", "imu_packet_rate_hz": 7.0},
            "imu_packet_rate_hz must be one of",
        ),
        ({"imu_driver": "gx2", "imu_port": "/dev/ttyUSB0", "imu_gx2_mode": "burst"}, "imu_gx2_mode must be one of"),
        ({"imu_driver": "monodrive", "imu_port": "udp://10.0.0.2:8083"}, "loopback"),
        ({"imu_driver": "monodrive", "imu_port": "tcp://127.0.0.1:1", "imu_monodrive_header": "v9"}, "header"),
    ],
)
def test_configuration_errors_name_the_problem(kw, message, tmp_path):
    with pytest.raises((ValueError, LinkError), match=message):
        make_stream(Config(**kw), Paths(tmp_path))


def _t0_mono(run: FlightRun) -> float:
    """CLOCK_MONOTONIC at the supervisor's start (the origin of the tasks' spacecraft time)."""
    m = re.search(
        r"spacecraft time [0-9.]+ at CLOCK_MONOTONIC ([0-9.]+)", (run.log_dir() / "supervisor.log").read_text()
    )
    return float(m.group(1))


def _health_counters(log_dir, task: str = "imu_ingest") -> list[dict]:
    """*task*'s counters from every health message in the bus log."""
    out = []
    for f in decode_frames((log_dir / "bus.log").read_bytes()).frames:
        if f.channel != "health":
            continue
        msg = msgpack.unpackb(f.message, raw=False)
        for t in msg["body"]["tasks"]:
            if t["name"] == task and t.get("counters"):
                out.append(t["counters"])
    return out


def test_streams_survives_unplug_and_stops_cleanly(tmp_path, runtime_dir):
    runtime = runtime_dir
    home = tmp_path / "home"
    cfg = tmp_path / "imu.toml"
    link = tmp_path / "ttyIMU"
    cfg.write_text(
        f'imu_driver = "imu380"\nimu_port = "{link}"\nimu_reconnect_backoff_s = 0.1\n'
        "imu_reconnect_max_backoff_s = 0.4\n"
    )
    with (
        Imu380Sim(PtyPort(link), response_delay_packets=1) as sim,
        FlightRun(
            home, spacecraft_time_s=SC_T0, env={"PYGNC_CONFIG": str(cfg), "XDG_RUNTIME_DIR": str(runtime)}
        ) as run,
    ):
        run.wait_status(lambda s: any(s[f"task{k}_id"] == 8 and s[f"task{k}_state"] == 2 for k in range(8)))
        (run_dir,) = runtime.glob("pygnc-*")
        zctx = zmq.Context()  # destroyed however the test ends (collected, its term() could wait for ever)
        try:
            sub = zctx.socket(zmq.SUB)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            sub.connect(f"ipc://{run_dir}/imu.sock")
            t0_mono = _t0_mono(run)
            blocks = []

            def collect(seconds, until=None):
                """Blocks for *seconds*, or until one satisfies *until* (at most 30 s: the
                reconnection waits on its backoff and a busy machine)."""
                t_end = time.monotonic() + (30.0 if until else seconds)
                while time.monotonic() < t_end:
                    if sub.poll(50):
                        blocks.append(msgpack.unpackb(sub.recv(), raw=False)["body"])
                        if until and until(blocks[-1]):
                            return

            collect(1.5)
            sim.port.unplug()  # the USB cable comes out ...
            collect(0.6)
            sim.port.replug()  # ... and goes back in (same path)
            collect(2.0, until=lambda b: b["connection"] >= 2)
            collect(0.5)
            t_stop = run.ctrl_c()
            assert run.wait_exit(10) == 0
            assert time.monotonic() - t_stop < 5.0
        finally:
            zctx.destroy(linger=0)
        log_dir = run.log_dir()

    conns = sorted({b["connection"] for b in blocks})
    assert conns[:2] == [1, 2], conns
    for c in conns:
        mine = [b for b in blocks if b["connection"] == c]
        t_sc = [t for b in mine for t in b["t_sc_s"]]
        assert all(b > a for a, b in zip(t_sc, t_sc[1:]))  # strictly increasing
        # no block missing (our subscriber joined after the first blocks of connection 1)
        assert all(b["first_index"] == a["first_index"] + len(a["t_sc_s"]) for a, b in zip(mine, mine[1:]))
        assert c == 1 or mine[0]["first_index"] == 0
    n = 0
    for b in blocks:
        for t_sc, t_dev, t_rx, rate in zip(b["t_sc_s"], b["t_device_s"], b["t_rx_sc_s"], b["rate_imu_rad_s"]):
            # S1 counter k is the packet taken at k/100 s after the simulator started
            assert rate == pytest.approx(motion.rate_rad_s(t_dev), abs=RATE_LSB_RAD_S / 2 + 1e-12)
            truth_sc = SC_T0 + (sim.t0 + t_dev - t0_mono)
            # taken at truth_sc; tagged later by the smallest delay seen in the window
            # (simulator thread wake-up + pty + read: measured 0.3 ms on every sample here;
            # 20 ms leaves room for a loaded 2-core CI machine), never after its own read
            assert -1e-3 <= t_sc - truth_sc < 0.02, t_sc - truth_sc
            assert t_sc <= t_rx + 1e-6
            n += 1
    assert n >= 200  # ~3.5 s at 100 Hz
    counters = _health_counters(log_dir)
    last = counters[-1]
    assert last["connects"] >= 2 and last["disconnects"] >= 1 and last["samples"] >= n
    assert any(c["state"] in ("backoff", "connecting") for c in counters)  # the outage was reported
    log = (log_dir / "imu_ingest.log").read_text()
    assert "link lost" in log and "IMU port closed" in log
    # The attitude estimator listens to the IMU through the real bus (no sensor samples to
    # propagate between here: it keeps them, bounded, and counts them).
    att = _health_counters(log_dir, "attitude_estimator")
    assert att and att[-1]["imu_samples"] >= n // 2 and att[-1]["imu_rejected"] == 0, att[-1:]


def test_a_monodrive_sending_the_1_15_imu_frame_is_refused_and_said_so(tmp_path, runtime_dir):
    """The real tree on a monoDrive port whose simulator sends release 1.15's IMU frame:
    nothing published, every frame counted as the wrong format, and the task's log says why
    no valid sample comes."""
    import socket

    from ground.devices.gx2 import MonoDriveSim

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runtime = runtime_dir
    cfg = tmp_path / "imu.toml"
    cfg.write_text(
        f'imu_driver = "monodrive"\nimu_port = "udp://127.0.0.1:{port}"\nimu_stale_s = 0.5\n'
        "imu_reconnect_backoff_s = 0.1\nimu_reconnect_max_backoff_s = 0.2\n"
    )
    with (
        MonoDriveSim("udp", ("127.0.0.1", port), payload="state"),
        FlightRun(
            tmp_path / "home", spacecraft_time_s=SC_T0, env={"PYGNC_CONFIG": str(cfg), "XDG_RUNTIME_DIR": str(runtime)}
        ) as run,
    ):
        run.wait_status(lambda s: any(s[f"task{k}_id"] == 8 and s[f"task{k}_state"] == 2 for k in range(8)))
        t_end = time.monotonic() + 20.0
        log_file = run.log_dir() / "imu_ingest.log"
        while time.monotonic() < t_end and "last frame refused" not in (
            log_file.read_text() if log_file.exists() else ""
        ):
            time.sleep(0.2)
        run.ctrl_c()
        assert run.wait_exit(10) == 0
        log_dir = run.log_dir()
    log = (log_dir / "imu_ingest.log").read_text()
    assert "no valid sample" in log and "wrong format: payload of 168 bytes" in log and "1.15 or later" in log
    last = _health_counters(log_dir)[-1]
    assert last["samples"] == 0 and last["blocks"] == 0
    assert last["device_counters"]["frames_wrong_format"] > 0 and last["device_counters"]["frames_bad"] == 0
