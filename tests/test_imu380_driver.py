"""The IMU380 driver against the simulated unit, through real pseudo-terminals.

The simulator (ground.devices.imu380) builds its packets with its own struct code from a
known motion (ground.devices.motion), so decoded values are checked against truth, not
against the codec under test."""

import json
import os
import struct
import threading
import time

import pytest
import serial

from ground.devices import motion
from ground.devices.imu380 import ACCEL_LSB_M_S2, RATE_LSB_RAD_S, Imu380Sim
from ground.devices.ports import Faults, PtyPort
from pygnc.drivers import imu380_codec as uu
from pygnc.drivers.imu380 import (
    FieldsRejected,
    FirmwareImageError,
    FirmwareUpgradeError,
    Imu380,
    Imu380Nak,
    Imu380NotFound,
    Imu380Stream,
    check_firmware_image,
    discover,
    discovery_plan,
    read_port_cache,
)
from pygnc.drivers.link import LinkLost


@pytest.fixture(scope="module")
def sim():
    with Imu380Sim(PtyPort(), response_delay_packets=2) as s:  # answers lag 2 packets behind
        yield s


@pytest.fixture
def dev(sim):
    d = Imu380.open(sim.port.path, 115200)
    yield d
    d.close()


def test_identity_version_and_bit_while_streaming(dev, sim):
    dev.ping()
    ident = dev.get_id()
    assert ident.serial_number == sim.serial_number and ident.part_number == "5020-0935-01"
    assert dev.get_version() == uu.Version(19, 1, 2, "release_candidate", 7)
    assert dev.get_bit()["sensor_status"] == 13
    assert dev.echo(b"\x00\x55\x55hello") == b"\x00\x55\x55hello"
    assert len(dev.packets) >= 2  # output packets kept while the answers were awaited
    assert dev.counters["resends"] == 0


def test_stream_decodes_to_the_simulated_truth(dev, sim):
    t_end = time.monotonic() + 0.3
    while time.monotonic() < t_end:
        dev.pump(0.05)
    pk = dev.take_packets()
    assert len(pk) >= 20
    for r in pk:
        s1 = uu.decode_s1(r.frame.payload)
        t = s1.counter * 0.01  # packet k is taken at k periods after the simulator starts
        # quantised to the nearest LSB by the simulator: within half an LSB of the truth
        assert s1.rate_rad_s == pytest.approx(motion.rate_rad_s(t), abs=RATE_LSB_RAD_S / 2 + 1e-12)
        assert s1.accel_m_s2 == pytest.approx(motion.accel_m_s2(t), abs=ACCEL_LSB_M_S2 / 2 + 1e-12)
    assert dev.framer.stats.crc_errors == 0


def test_fields_get_set_read_write_while_streaming(dev, sim):
    got = dev.get_fields([1, 2, 3, 5, 6, 7])
    assert got == {k: sim.fields[k] for k in (1, 2, 3, 5, 6, 7)}
    assert uu.packet_type_from_value(got[3]) == b"S1" and uu.BAUD_CODES[got[2]] == 115200
    dev.set_fields({uu.FIELD_ACCEL_LPF: uu.lpf_count(20)})
    assert sim.fields[5] == 2678 and dev.get_fields([5]) == {5: 2678}
    dev.write_fields({uu.FIELD_RATE_LPF: uu.lpf_count(50)})
    assert sim.eeprom_fields[6] == 1070 and dev.read_fields([6]) == {6: 1070}
    assert dev.get_fields([6]) == {6: 5356}  # WF takes effect at the next power-up only
    dev.set_fields({5: 5356})
    dev.write_fields({6: 5356})
    assert sim.fields[1] == 1  # still streaming


def test_refused_fields_and_naks_are_recognised_at_once(dev, sim):
    with pytest.raises(FieldsRejected) as e:  # a partial answer plus a NAK
        dev.set_fields({5: 5356, 0x0010: 1})
    assert e.value.rejected == [0x0010] and e.value.accepted == [5]
    with pytest.raises(FieldsRejected) as e:
        dev.get_fields([0x0010])
    assert e.value.rejected == [0x0010]
    sim.nak_types = {b"GP"}
    try:
        t = time.monotonic()
        with pytest.raises(Imu380Nak):
            dev.get_id()
        assert time.monotonic() - t < dev.timeout_s  # not a timeout: the NAK ended the wait
    finally:
        sim.nak_types = set()
    # the SF answer came before its NAK (answer returned at once); GF and GP NAKs were seen
    assert dev.counters["naks"] >= 2 and dev.counters["resends"] == 0


def test_quiet_act_restore_restores_even_when_the_action_fails(dev, sim):
    with pytest.raises(RuntimeError):
        with dev.quiet() as q:
            assert q.divider == 1 and sim.fields[1] == 0
            dev.take_packets()
            dev.pump(0.1)
            assert not dev.packets  # quiet means quiet
            raise RuntimeError("the action failed")
    assert sim.fields[1] == 1
    dev.pump(0.1)
    assert dev.packets


def test_eeprom_read_in_chunks(dev, sim):
    words = dev.read_eeprom(0x0700, 150)
    assert words == [sim.eeprom[0x0700 + k] for k in range(150)]
    assert dev.read_eeprom(0x071C, 1) == [0x0004]


def test_requests_survive_a_lossy_corrupting_link():
    faults = Faults(corrupt_prob=0.003, drop_prob=0.003, rx_drop_prob=0.03, seed=7)
    with Imu380Sim(PtyPort(), faults=faults, response_delay_packets=1) as s:
        with Imu380.open(s.port.path, 115200, timeout_s=0.15, retries=6) as d:
            for _ in range(20):
                assert d.get_fields([1, 3]) == {1: 1, 3: 0x5331}
            d.pump(0.2)
            st = d.framer.stats
            assert st.crc_errors + st.bytes_skipped > 0 and st.frames > 20
            assert d.counters["resends"] > 0  # lost requests were resent
    assert faults.corrupted + faults.dropped > 0 and faults.rx_dropped > 0


def test_configure_rate_type_baud_now_and_orientation_for_next_power_up():
    with Imu380Sim(PtyPort()) as s, Imu380.open(s.port.path, 115200) as d:
        written = d.configure(packet_rate_hz=50, packet_type="S0", baud=57600)
        assert written == {1: 2, 3: 0x5330, 2: 3}
        assert s.baud == 57600 and d.link.baudrate == 57600 and s.fields[1] == 2
        d.take_packets()
        t_end = time.monotonic() + 0.4
        while time.monotonic() < t_end:
            d.pump(0.05)
        types = {r.frame.ptype for r in d.take_packets()}
        assert types == {b"S0"}
        d.configure(orientation="-Y+X+Z", persist=True)
        assert s.eeprom_fields[7] == 35 and s.fields[7] == 0 and s.fields[1] == 2


def test_discovery_skips_ports_in_use_and_caches_the_last_good_one(tmp_path):
    cache = tmp_path / "imu_port.json"
    with Imu380Sim(PtyPort()) as busy, Imu380Sim(PtyPort(), baud=57600) as good:
        empty = PtyPort()
        holder = serial.Serial(busy.port.path, 115200, exclusive=True)  # another process's port
        try:
            ports = [busy.port.path, empty.path, good.port.path]
            found = discover(ports, baud_rates=(115200, 57600), cache_path=cache, timeout_s=10)
            assert (found.port, found.baud) == (good.port.path, 57600) and found.streaming
            assert busy.log == []  # never touched
            assert read_port_cache(cache) == (good.port.path, 57600)
            assert json.loads(cache.read_text())["serial_number"] == good.serial_number
            plan = discovery_plan(ports, (115200, 57600), read_port_cache(cache))
            assert plan[0] == (good.port.path, 57600) and len(plan) == 6
            n_cmds = len(good.log)
            assert discover(ports, baud_rates=(115200, 57600), cache_path=cache, timeout_s=5).port == good.port.path
            assert len(good.log) - n_cmds == 1  # the cached pair answered first: one GP ID, no ping
        finally:
            holder.close()
            empty.close()


def test_discovery_refuses_openimu_and_reports_what_it_tried():
    with Imu380Sim(PtyPort(), model="OpenIMU300ZI 5020-3570-01") as s:
        with pytest.raises(Imu380NotFound, match=r"tried .*@115200"):
            discover([s.port.path], baud_rates=(115200,), timeout_s=0.5)


def _image(n: int, version=(20, 0, 1, 0, 3)) -> bytes:
    head = struct.pack("<II", 0x2001_FFF8, 0x0800_0201) + bytes(version)
    body = bytes((k * 37 + 11) & 0xFF for k in range(n - len(head)))
    return head + body


def test_firmware_upgrade_with_progress_resend_and_verification():
    image = _image(1012)  # 5 blocks: 4 x 240 + 52
    with Imu380Sim(PtyPort(), erase_s=0.3, reboot_s=0.15) as s, Imu380.open(s.port.path, 115200) as d:
        s.drop_wa_reply_once = {480}  # one acknowledgement lost: the block is resent
        progress = []
        out = d.upgrade_firmware(
            image, progress=lambda a, b: progress.append((a, b)), erase_wait_s=2.0, boot_wait_s=0.4, block_timeout_s=0.3
        )
        assert bytes(s.flash) == image
        assert progress[0] == (0, 1012) and progress[-1] == (1012, 1012)
        assert [p[0] for p in progress] == sorted(p[0] for p in progress)
        assert out["blocks"] == 5 and out["resends"] >= 1
        assert out["version"].startswith("20.0.1") and out["id"].serial_number == s.serial_number
        assert s.log.count(b"JI") == 1 and s.log.count(b"JA") == 1
        d.take_packets()
        d.pump(0.2)
        assert d.packets  # the new application streams again


def test_firmware_upgrade_stops_on_a_nak():
    with Imu380Sim(PtyPort(), erase_s=0.05, reboot_s=0.1) as s, Imu380.open(s.port.path, 115200) as d:
        s.nak_wa = {240}
        with pytest.raises(FirmwareUpgradeError, match="0x0000f0"):
            d.upgrade_firmware(_image(600), erase_wait_s=1.0, boot_wait_s=0.3, block_timeout_s=0.3)
        assert s.mode == "boot"


@pytest.mark.parametrize(
    "image, why",
    [
        (b"", "empty"),
        (b":10010000214601360121470136007EFE09D2190140\r\n" * 4, "Intel HEX"),
        (b"S00F000068656C6C6F202020202000003C\r\n" * 4, "S-record"),
        (b"\xff" * 4096, "blank"),
        (struct.pack("<II", 0x1234_5678, 0x0800_0201) + bytes(100), "stack pointer"),
        (struct.pack("<II", 0x2000_8000, 0x0800_0200) + bytes(100), "reset vector"),
        (_image(2 << 20), "flash"),
    ],
)
def test_bad_images_are_refused_before_the_unit_is_touched(image, why):
    with pytest.raises(FirmwareImageError, match=why):
        check_firmware_image(image)
    with Imu380Sim(PtyPort()) as s, Imu380.open(s.port.path, 115200) as d:
        with pytest.raises(FirmwareImageError):
            d.upgrade_firmware(image)
        assert b"JI" not in s.log and s.mode == "app"


def test_unplug_is_a_lost_link():
    with Imu380Sim(PtyPort()) as s, Imu380.open(s.port.path, 115200) as d:
        d.pump(0.1)
        s.port.unplug()
        with pytest.raises(LinkLost):
            for _ in range(20):
                d.pump(0.05)


class _ShortPacketSim(Imu380Sim):
    """A unit whose every 4th S1 packet has a valid CRC but 10 payload bytes, not 24."""

    def output_payload(self, ptype: bytes, t: float) -> bytes:
        payload = super().output_payload(ptype, t)
        return payload[:10] if self.counter % 4 == 2 else payload


def test_stream_skips_and_counts_output_packets_of_the_wrong_length():
    """A CRC-valid output packet the codec refuses costs only itself: counted as
    ``frames_bad``, the good packets read with it decoded, the port kept open."""
    with _ShortPacketSim(PtyPort()) as s:
        stream = Imu380Stream(s.port.path, baud=115200)
        for _ in stream.connect_steps():
            pass
        samples = []
        try:
            t_end = time.monotonic() + 0.5
            while time.monotonic() < t_end:
                stream.dev.link.wait_readable(0.05)
                samples += stream.read_samples()
            stats = stream.stats()
            assert stream.dev is not None and stream.dev.link.fileno() is not None
        finally:
            stream.close()
    assert stats["frames_bad"] >= 5 and stats["crc_errors"] == 0
    assert len(samples) >= 3 * stats["frames_bad"] - 3 and stats["samples"] == len(samples)
    for x in samples:  # only good packets became samples
        assert x.rate_rad_s == pytest.approx(motion.rate_rad_s(x.t_device_s), abs=RATE_LSB_RAD_S / 2 + 1e-12)
    assert stats["lost"] >= stats["frames_bad"] - 2  # a refused S1 leaves a gap in the counter


def _returns_within(fn, timeout_s: float, unblock):
    """*fn*() run in a thread: its result, or AssertionError if it has not returned after
    *timeout_s* (then *unblock*() is called so the thread can end)."""
    out = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        unblock()
        t.join(5.0)
        raise AssertionError(f"{fn} blocked for more than {timeout_s} s")
    return out[0]


def _unblock_fifo(path):
    """Open the FIFO at *path* for writing and close it: a reader blocked in open() gets EOF."""

    def unblock():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass

    return unblock


def test_port_cache_that_is_not_a_small_regular_file_is_no_cache(tmp_path):
    """A FIFO at the cache path is refused at once (a plain read waited for a writer forever),
    as are a directory, an over-long file and values that are no port and baud."""
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert _returns_within(lambda: read_port_cache(fifo), 2.0, _unblock_fifo(fifo)) is None
    assert read_port_cache(tmp_path) is None
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"port": "/dev/ttyUSB0", "baud": 115200, "pad": "x" * 10000}))
    assert read_port_cache(big) is None
    odd = tmp_path / "odd.json"
    for text in ('{"port": "/dev/ttyUSB0", "baud": Infinity}', "[1, 2]", "\xff", '{"port": 1}'):
        odd.write_text(text, encoding="latin-1")
        assert read_port_cache(odd) is None, text
    odd.write_text('{"port": "/dev/ttyUSB0", "baud": 57600}')
    assert read_port_cache(odd) == ("/dev/ttyUSB0", 57600)


def test_auto_connect_with_a_fifo_as_port_cache_finds_the_unit(tmp_path):
    fifo = tmp_path / "imu_port.json"
    os.mkfifo(fifo)
    with Imu380Sim(PtyPort()) as s:
        stream = Imu380Stream("auto", baud_rates=(115200,), cache_path=fifo, discovery_ports=(s.port.path,))

        def connect():
            for _ in stream.connect_steps():
                pass
            return stream.found

        try:
            found = _returns_within(connect, 5.0, _unblock_fifo(fifo))
        finally:
            stream.close()
    assert found.port == s.port.path and read_port_cache(fifo) == (s.port.path, 115200)
