"""`python -m ground imu380` and `python -m ground simdevice` against simulated units."""

import struct
import subprocess
import sys

import pytest
from flight_harness import REPO

from ground.__main__ import main
from ground.devices.imu380 import Imu380Sim
from ground.devices.ports import PtyPort


@pytest.fixture(scope="module")
def sim():
    with Imu380Sim(PtyPort(), erase_s=0.05, reboot_s=0.1) as s:
        yield s


def test_info_set_and_eeprom(sim, capsys):
    assert main(["imu380", sim.port.path, "--baud", "115200", "info"]) == 0
    out = capsys.readouterr().out
    assert f"serial_number  {sim.serial_number}" in out and "packet S1" in out and "orientation +X+Y+Z" in out
    assert main(["imu380", sim.port.path, "set", "rate_hz=50", "accel_lpf_hz=25"]) == 0
    assert sim.fields[1] == 2 and sim.fields[5] == 2142
    assert main(["imu380", sim.port.path, "set", "--persist", "orientation=-Y+X+Z"]) == 0
    assert sim.eeprom_fields[7] == 35
    assert main(["imu380", sim.port.path, "eeprom", "0x71c", "2"]) == 0
    assert "0x071c: 0004 " in capsys.readouterr().out


def test_operator_mistakes_are_usage_errors(sim, tmp_path, capsys):
    assert main(["imu380", sim.port.path, "set", "speed=9"]) == 2
    hexfile = tmp_path / "fw.hex"
    hexfile.write_text(":10010000214601360121470136007EFE09D2190140\n" * 3)
    assert main(["imu380", sim.port.path, "upgrade", str(hexfile)]) == 2
    assert "Intel HEX" in capsys.readouterr().err and b"JI" not in sim.log
    assert main(["imu380", str(tmp_path / "nope"), "--baud", "115200", "info"]) == 1


def test_upgrade_prints_progress(sim, tmp_path, capsys):
    image = struct.pack("<II", 0x2000_4000, 0x0800_0101) + bytes((21, 3, 0, 0, 1)) + bytes(range(256)) * 2
    (tmp_path / "fw.bin").write_bytes(image)
    assert main(["imu380", sim.port.path, "upgrade", str(tmp_path / "fw.bin")]) == 0
    cap = capsys.readouterr()
    assert f"writing {len(image)}/{len(image)} bytes (100 %)" in cap.err and "version 21.3.0" in cap.out
    assert bytes(sim.flash) == image


def test_simdevice_prints_the_port_and_exits_cleanly(tmp_path):
    link = tmp_path / "imu0"
    p = subprocess.run(
        [sys.executable, "-m", "ground", "simdevice", "gx2", "--link", str(link), "--duration", "0.3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 0 and f"gx2 simulator on {link}" in p.stdout and not link.exists()
    p = subprocess.run(
        [sys.executable, "-m", "ground", "simdevice", "imu380", "--corrupt", "1.5"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 2 and "probability" in p.stderr and "Traceback" not in p.stderr


def test_a_simulated_unit_that_falls_behind_counts_the_packets_it_lost():
    # (a stall of the simulator's thread on a loaded host: the packets it skips are lost, and
    # the counter - the device's clock - goes on counting them, as a real unit's would)
    port = PtyPort()
    try:
        s = Imu380Sim(port)
        sent = []
        s.send = sent.append  # (not started: ticked by hand)
        period = s.fields[1] / 100.0
        now = s.t0
        for _ in range(3):
            now = s.on_tick(now)
        assert s.counter == len(sent) == 3
        s.on_tick(now + 5.0)  # five seconds late
        assert len(sent) == 4 and s.counter > 4
        assert s._next_packet - s.t0 == pytest.approx(s.counter * period)  # counter k: the packet of k periods
    finally:
        port.close()
