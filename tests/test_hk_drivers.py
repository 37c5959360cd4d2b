"""The real housekeeping drivers through real pseudo-terminals against misbehaving
simulated devices: replies out of order, broadcasts, corrupted sentences, a busy OPC-N3,
bad checksums, unplug/replug, the exclusive lock."""

import functools
import logging
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import serial.tools.list_ports

from ground.devices.housekeeping import EmusBmsModel, EmusBmsSim, UsbIssOpcSim
from pygnc.drivers import emus_bms as eb
from pygnc.drivers import emus_bms_codec as ebc
from pygnc.drivers import opc_n3 as on
from pygnc.drivers import opc_n3_codec as onc
from pygnc.drivers.exchange import run_blocking
from pygnc.drivers.link import LinkError, LinkLost, find_usb_port, open_link


def service_until(driver, cond, timeout_s=5.0):
    """Drive a non-blocking driver as a task loop does: wait on the port or the deadline."""
    out = []
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        now = time.monotonic()
        got = driver.service(now)
        out += got[0] if isinstance(got, tuple) else got
        if cond(out):
            return out
        nd = driver.next_deadline()
        driver.link.wait_readable(min(0.2, max(0.0, (nd or now + 0.2) - now)))
    raise AssertionError(f"condition not met; {len(out)} readings, counters {driver.all_counters()}")


# -- EMUS BMS ------------------------------------------------------------------------------------


def test_request_mode_matches_out_of_order_replies():
    with EmusBmsSim(reorder_window_s=0.03, seed=7) as sim:
        link = open_link(sim.path)
        try:
            bms = eb.EmusBms(link, "request", timeout_s=1.0)
            readings, replies = bms.read_blocking(eb.DEFAULT_SENTENCES, timeout_s=3.0)
        finally:
            link.close()
    assert sorted(r.name for r in replies) == sorted(eb.DEFAULT_SENTENCES)
    assert all(r.complete and not r.timed_out for r in replies)
    order = [r.name for r in readings]
    assert order != [n for n in eb.DEFAULT_SENTENCES for _ in range(2 if n in ebc.GROUP_SENTENCES else 1)]
    # group replies span the pack (12 cells in groups of 8), counted from BV1's cell count
    assert sum(1 for r in readings if r.name == "BV2") == 2
    cells = sorted((r.values["first_cell"], r.values["cell_voltage_v"]) for r in readings if r.name == "BV2")
    assert [v for _, vs in cells for v in vs] == pytest.approx(sim.model.cell_v, abs=0.011)
    assert bms.all_counters()["bad_crc"] == 0 and bms.queue.counters.unsolicited == 0


def test_unanswered_request_times_out_at_its_deadline_while_others_complete():
    with EmusBmsSim(ignore=("ST1",)) as sim:
        link = open_link(sim.path)
        try:
            bms = eb.EmusBms(link, "request", timeout_s=0.4)
            t0 = time.monotonic()
            readings, replies = bms.read_blocking(("BV1", "ST1", "BC1"), timeout_s=2.0)
            elapsed = time.monotonic() - t0
        finally:
            link.close()
    by = {r.name: r for r in replies}
    assert by["BV1"].complete and by["BC1"].complete
    assert by["ST1"].timed_out and not by["ST1"].complete and bms.queue.counters.timeouts == 1
    assert 0.4 <= elapsed < 1.5  # ended at the timeout, not at the overall limit


def test_corrupted_sentences_cost_only_themselves():
    with EmusBmsSim(corrupt_prob=0.25, seed=3) as sim:
        link = open_link(sim.path)
        try:
            bms = eb.EmusBms(link, "request", timeout_s=0.2)
            got = []
            for _ in range(10):
                r, _ = bms.read_blocking(("BV1", "BV2", "CV1", "BC1"), timeout_s=1.0)
                got += r
        finally:
            link.close()
    c = bms.all_counters()
    assert sim.corrupted > 0
    assert c["bad_crc"] + c["malformed"] + c["recovered"] > 0
    assert c["timeouts"] > 0  # a corrupted reply leaves its request to time out
    # everything delivered decodes and is plausible: no desynchronised garbage got through
    for r in got:
        if r.name == "CV1":
            assert r.values["total_voltage_v"] == pytest.approx(sum(sim.model.cell_v), abs=1.0)
    assert len(got) >= 0.5 * sim.sentences_sent


def test_broadcast_mode_reads_without_asking():
    with EmusBmsSim(broadcast_period_s=0.2, corrupt_prob=0.1, seed=5) as sim:
        link = open_link(sim.path)
        try:
            bms = eb.EmusBms(link, "broadcast")
            out = service_until(bms, lambda rs: {"BV1", "BV2", "CV1", "ST1"} <= {r.name for r in rs} and len(rs) > 20)
        finally:
            link.close()
    assert link.counters.bytes_tx == 0 and sim.requests == []
    assert all(r.solicited is False for r in out)


def test_unplug_raises_link_lost_and_replug_reopens_by_the_same_name(tmp_path):
    with EmusBmsSim(link=tmp_path / "bms") as sim:
        link = open_link(sim.path)
        bms = eb.EmusBms(link, "request", timeout_s=0.5)
        assert bms.read_blocking(("BV1",))[1][0].complete
        sim.unplug()
        with pytest.raises(LinkLost):
            bms.read_blocking(("BC1",), timeout_s=1.0)
        link.close()
        with pytest.raises(LinkError):
            open_link(sim.path)  # the name points at nothing: the pty is gone
        # ... and not at its old /dev/pts/N, which the next terminal opened on the machine
        # (another test's device) may get: the task reopening this name would take that one
        assert not os.readlink(sim.path).startswith("/dev/")
        sim.replug()
        link = open_link(sim.path)
        try:
            bms = eb.EmusBms(link, "request", timeout_s=0.5)
            assert bms.read_blocking(("BC1",))[1][0].complete
        finally:
            link.close()


def test_exclusive_lock_refuses_a_second_opener_and_dies_with_its_process(tmp_path):
    with EmusBmsSim() as sim:
        first = open_link(sim.path)
        with pytest.raises(LinkError, match="in use"):
            open_link(sim.path)
        first.close()
        # a process that holds the port and is killed -9 leaves no stale lock behind
        code = (
            "import sys, time; sys.path.insert(0, 'flight');"
            "from pygnc.drivers.link import open_link; l = open_link(sys.argv[1]);"
            "print('locked', flush=True); time.sleep(60)"
        )
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        p = subprocess.Popen([sys.executable, "-c", code, sim.path], cwd=repo, stdout=subprocess.PIPE)
        try:
            assert p.stdout.readline().strip() == b"locked"
            with pytest.raises(LinkError):
                open_link(sim.path)
            p.send_signal(signal.SIGKILL)
            p.wait(5)
        finally:
            p.kill()
        open_link(sim.path).close()


def test_port_by_usb_id(monkeypatch):
    ports = [
        SimpleNamespace(device="/dev/ttyACM1", vid=0x04D8, pid=0xFFEE, serial_number="B"),
        SimpleNamespace(device="/dev/ttyACM0", vid=0x04D8, pid=0xFFEE, serial_number="A"),
        SimpleNamespace(device="/dev/ttyUSB0", vid=0x0403, pid=0x6001, serial_number="X"),
    ]
    monkeypatch.setattr(serial.tools.list_ports, "comports", lambda: ports)
    assert find_usb_port(0x04D8, 0xFFEE) == "/dev/ttyACM0"
    assert find_usb_port(0x04D8, 0xFFEE, "B") == "/dev/ttyACM1"
    with pytest.raises(LinkError, match="0403:6015"):
        find_usb_port(0x0403, 0x6015)
    with pytest.raises(LinkError, match="no serial port with USB id 04D8:FFEE"):
        open_link(usb="04d8:ffee:Z")
    with pytest.raises(LinkError, match="hexadecimal"):
        open_link(usb="xyz:1")


def test_pyserial_urls_work_too():
    link = open_link("loop://")
    try:
        link.write(b"BV1,0C,B4,B8,B6,0C34,,E6\r\n")
        time.sleep(0.01)
        assert ebc.SentenceFramer().feed(link.read())[0].name == "BV1"
    finally:
        link.close()


# -- OPC-N3 through the USB-ISS ---------------------------------------------------------------------

FAST = on.OpcTiming(retry_s=0.01, busy_timeout_s=1.0, fan_spinup_s=0.2, power_step_s=0.05, resync_s=0.2)


def test_opc_driver_runs_the_whole_sequence_with_a_busy_device_and_bad_checksums():
    with UsbIssOpcSim(busy_prob=0.3, bad_crc_prob=0.3, seed=11) as sim:
        link = open_link(sim.path)
        try:
            opc = on.OpcN3(link, period_s=0.15, timing=FAST)
            out = service_until(opc, lambda rs: sum(r.name == "histogram" for r in rs) >= 8, timeout_s=15)
            assert [r.name for r in out[:6]] == ["bridge", "info", "serial", "firmware", "config", "dac_status"]
            assert sim.opc.fan_on and sim.opc.laser_on
            assert opc.power_off_blocking(1.0)
        finally:
            link.close()
    hists = [r for r in out if r.name == "histogram"]
    assert opc.counters.bad_checksum > 0 and sim.opc.bad_crc_sent == opc.counters.bad_checksum
    for h in hists:  # every published histogram is the device's, checksum verified
        assert onc.decode_histogram(h.raw) == h.values
    assert hists[0].values["bin_conc_per_ml"] is None  # first read after power-up: period 0
    assert any(h.values["bin_conc_per_ml"] is not None for h in hists[1:])
    opts = [o for _, o in sim.opc.power_log]
    assert opts == [onc.POWER_FAN_ON, onc.POWER_LASER_ON, onc.POWER_LASER_OFF, onc.POWER_FAN_OFF]


def test_opc_reply_timeout_and_bridge_nack_are_survived():
    """A lost reply and a refused transaction mid-histogram: the driver counts each, stays
    quiet long enough for the device to drop the half-done command, and carries on."""
    timing = on.OpcTiming(retry_s=0.01, busy_timeout_s=1.0, fan_spinup_s=0.1, resync_s=0.6)
    with UsbIssOpcSim(idle_reset_s=0.5, seed=4) as sim:
        link = open_link(sim.path)
        try:
            opc = on.OpcN3(link, period_s=0.1, timing=timing, reply_timeout_s=0.2, with_config=False)
            hist = lambda k: lambda rs: sum(r.name == "histogram" for r in rs) >= k  # noqa: E731
            service_until(opc, hist(2), timeout_s=10)
            sim.drop_after = 30  # lands inside the next histogram read
            service_until(opc, hist(2), timeout_s=10)
            assert opc.counters.reply_timeouts == 1
            sim.bridge.nack_next = 1
            service_until(opc, hist(2), timeout_s=10)
            assert opc.counters.bridge_errors == 1 and opc.state == "running"
            sim.unplug()
            with pytest.raises(LinkLost):
                service_until(opc, lambda rs: False, timeout_s=3)
        finally:
            link.close()


def test_blocking_exchange_refuses_a_bad_checksum():
    with UsbIssOpcSim(bad_crc_prob=1.0) as sim:
        link = open_link(sim.path)
        try:
            run_blocking(on.setup_and_identify(500_000, FAST, with_config=False), link)
            with pytest.raises(onc.OpcChecksumError):
                run_blocking(on.read_histogram(FAST), link)
        finally:
            link.close()


def test_opc_powered_down_at_stop_while_it_sets_up_again():
    """A device that failed too often goes back to "setup" (identify again) with its fan and
    laser still on: the stop powered it down only from the other states, so the laser stayed
    on (seen in the process-tree test, ~1 run in 10)."""
    with UsbIssOpcSim(seed=3) as sim:
        link = open_link(sim.path)
        try:
            opc = on.OpcN3(link, period_s=0.15, timing=FAST)
            service_until(opc, lambda rs: any(r.name == "histogram" for r in rs), timeout_s=10)
            assert sim.opc.laser_on and opc.powered
            opc.state = "setup"  # as after max_failures errors in a row
            assert opc.power_off_blocking(1.0) and not opc.powered
            assert opc.power_off_blocking(1.0)  # nothing more to do
        finally:
            link.close()
    assert not sim.opc.laser_on and not sim.opc.fan_on
    assert [o for _, o in sim.opc.power_log][-2:] == [onc.POWER_LASER_OFF, onc.POWER_FAN_OFF]
    never = on.OpcN3(open_link("loop://"), timing=FAST)
    assert never.power_off_blocking(0.1) and never.state == "off"  # never powered: nothing sent


# -- through the housekeeping task's device loop ---------------------------------------------------


def _device(entry: dict, pack: bool = False):
    """The task's :class:`~pygnc.tasks.housekeeping.Device` for *entry*, publishing to a list
    (with *pack*, each message is first encoded for the bus as the task's publish does)."""
    from pygnc.bus.messages import Encoder
    from pygnc.drivers.hk_devices import parse_device
    from pygnc.tasks.housekeeping import Device

    published = []
    encoder = Encoder("housekeeping")

    def publish(t, body):
        if pack:
            encoder.encode(t, body)
        published.append((t, body))

    dev = Device(
        parse_device(entry),
        publish,
        lambda fd: None,
        lambda fd: None,
        lambda t_mono_s: t_mono_s,
        logging.getLogger("test_hk_drivers"),
    )
    return dev, published


def _service_device_until(dev, cond, timeout_s=10.0):
    """Run *dev* as the task's loop does (wait on its port until the time it asks for)."""
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        wake = dev.service(time.monotonic())
        if cond():
            return
        wait = min(0.2, max(0.0, wake - time.monotonic()))
        if dev.link is not None:
            dev.link.wait_readable(wait)
        else:
            time.sleep(wait)
    raise AssertionError(f"condition not met; counters {dev.counters()}")


def test_housekeeping_device_counts_each_driver_error_kind_and_goes_on(tmp_path, monkeypatch):
    """The task's device loop over the registry's drivers, on real pseudo-terminals: a device
    that raises each kind of driver error - a reply that never comes and a device busy too long
    (DriverTimeout), a refused transaction and an answer outside the protocol (ProtocolError),
    a bad checksum and corrupted sentences (CodecError) - has each counted, stays open, and
    its readings go on."""
    from pygnc.drivers.errors import CodecError, DriverTimeout, ProtocolError

    # the quiet time after an error, shortened as in test_opc_reply_timeout_and_bridge_nack_are_survived
    monkeypatch.setattr(on, "OpcTiming", functools.partial(on.OpcTiming, retry_s=0.01, resync_s=0.6))
    entry = {"name": "opc", "kind": "opc_n3", "period_s": 0.1, "timeout_s": 0.2, "fan_spinup_s": 0.1}
    with UsbIssOpcSim(tmp_path / "opc", idle_reset_s=0.5, seed=4) as sim:
        dev, published = _device({**entry, "port": str(tmp_path / "opc"), "busy_timeout_s": 0.3, "read_config": False})
        histograms = lambda: sum(b["record"] == "histogram" for t, b in published if t == "hk_reading")  # noqa: E731
        try:
            _service_device_until(dev, lambda: histograms() >= 2)
            opc = dev.driver.opc
            faults = [
                ("reply_timeouts", DriverTimeout, lambda: setattr(sim, "drop_after", 30)),
                ("busy_timeouts", DriverTimeout, lambda: setattr(sim.opc, "busy_prob", 1.0)),
                ("bridge_errors", ProtocolError, lambda: setattr(sim.bridge, "nack_next", 1)),
                ("protocol_errors", ProtocolError, lambda: setattr(sim.opc, "junk_next", 1)),
                ("bad_checksum", CodecError, lambda: setattr(sim.opc, "bad_crc_prob", 1.0)),
            ]
            for counter, kind, inject in faults:
                before, n = dev.counters()[counter], histograms()
                inject()
                _service_device_until(dev, lambda c=counter, b=before: dev.counters()[c] > b)
                sim.opc.busy_prob = sim.opc.bad_crc_prob = 0.0
                assert isinstance(opc.last_error, kind), (counter, opc.last_error)
                _service_device_until(dev, lambda n=n: histograms() >= n + 2)  # and it goes on
                assert dev.state == "open" and dev.driver.opc is opc and opc.state == "running"
        finally:
            dev.stop(1.0)
    assert [b["state"] for t, b in published if t == "hk_device"] == ["open", "stopped"]

    with EmusBmsSim(tmp_path / "bms", corrupt_prob=0.3, ignore=("ST1",), seed=3) as sim:
        dev, published = _device(
            {"name": "bms", "kind": "emus_bms", "port": str(tmp_path / "bms"), "period_s": 0.2, "timeout_s": 0.2}
        )
        try:
            _service_device_until(
                dev, lambda: dev.counters()["timeouts"] >= 3 and sum(t == "hk_reading" for t, _ in published) >= 30
            )
            c = dev.counters()
        finally:
            dev.stop(1.0)
    assert sim.corrupted > 0 and c["bad_crc"] + c["malformed"] + c["recovered"] > 0  # SentenceError: a CodecError
    assert issubclass(ebc.SentenceError, CodecError)
    assert [b["state"] for t, b in published if t == "hk_device"] == ["open", "stopped"]


class _ImpossibleValuesModel(EmusBmsModel):
    """A pack whose checksum-valid sentences also carry values no pack has: its version
    sentence a serial number of 20 hex digits (above 2**64, which msgpack cannot encode),
    each BV2 reply one more group of 2**20 cells."""

    def sentences(self, name: str) -> list[bytes]:
        if name == "VR1":
            return [ebc.encode_sentence("VR1", ["G1CU", "F" * 20, "2.0.13"])]
        out = super().sentences(name)
        if name == "BV2":
            out.append(ebc.encode_sentence("BV2", ["00", "01", "100000", "B4"]))
        return out


def test_housekeeping_device_drops_sentences_with_impossible_values_and_goes_on(tmp_path):
    """Sentences that pass their checksum but hold values out of range are each counted as a
    bad field and dropped: the device stays open, its other readings go on, and everything it
    publishes packs for the bus."""
    with EmusBmsSim(tmp_path / "bms", seed=3) as sim:
        with sim.lock:
            sim.model = _ImpossibleValuesModel(sim.model.n_cells, sim.model.group_size, sim.rng)
        dev, published = _device(
            {"name": "bms", "kind": "emus_bms", "port": str(tmp_path / "bms"), "period_s": 0.2, "timeout_s": 0.2},
            pack=True,
        )
        groups = lambda: sum(t == "hk_reading" and b["record"] == "BV2" for t, b in published)  # noqa: E731
        try:
            _service_device_until(dev, lambda: groups() >= 4 and dev.counters()["bad_field"] >= 3)
            c = dev.counters()
        finally:
            dev.stop(1.0)
    assert "VR1" in sim.requests and c["bad_crc"] == c["malformed"] == 0
    readings = [b for t, b in published if t == "hk_reading"]
    assert not any(b["record"] == "VR1" for b in readings)
    assert all(b["values"]["group_size"] <= ebc.MAX_CELLS for b in readings if b["record"] == "BV2")
    assert {"BV1", "CV1", "BC1"} <= {b["record"] for b in readings}
    assert [b["state"] for t, b in published if t == "hk_device"] == ["open", "stopped"]
