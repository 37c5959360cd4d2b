"""The housekeeping task: configuration, and the real process tree in a pseudo-terminal polling
simulated devices on pseudo-terminals through unplug/replug and a Ctrl-C stop."""

from __future__ import annotations

import dataclasses
import time

from flight_harness import REPO, FlightRun, make_home

from ground.devices.housekeeping import EmusBmsSim, UsbIssOpcSim
from pygnc.bus.messages import DecodeCounters, decode
from pygnc.config import Config, load_config
from pygnc.drivers import opc_n3_codec as on
from pygnc.formats.buslog import decode_frames
from pygnc.tasks.housekeeping import parse_devices
from pygnc.tasks.table import TASKS_BY_NAME, active_subscriptions, enabled_tasks

SAMPLE = REPO / "data" / "sample_5min"


def test_off_in_the_default_run_and_recorded_when_on():
    assert "housekeeping" not in {t.name for t in enabled_tasks(Config())}
    on_cfg = dataclasses.replace(Config(), housekeeping_enabled=True)
    assert "housekeeping" in {t.name for t in enabled_tasks(on_cfg)}
    assert TASKS_BY_NAME["housekeeping"].task_id == 9
    assert "hk" not in active_subscriptions(TASKS_BY_NAME["status_reporter"], Config())
    assert "hk" in active_subscriptions(TASKS_BY_NAME["status_reporter"], on_cfg)


def test_device_configuration_errors_name_the_device_and_the_problem(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "housekeeping_enabled = true\n"
        '[[housekeeping_devices]]\nname = "bms"\nkind = "emus_bms"\nport = "/dev/ttyUSB0"\n'
        'sentences = ["BV1", "CV1"]\ncells = 14\n'
        '[[housekeeping_devices]]\nname = "opc"\nkind = "opc_n3"\n'
    )
    specs, errors = parse_devices(load_config(cfg).housekeeping_devices)
    assert errors == []
    assert specs[0].options["sentences"] == ("BV1", "CV1") and specs[0].options["cells"] == 14
    assert specs[1].usb == "04D8:FFEE" and specs[1].port is None  # the USB-ISS's own id by default
    bad = [
        ({"name": "x", "kind": "ups"}, "kind 'ups'"),
        ({"name": "x", "kind": "emus_bms"}, "give 'port'"),
        ({"name": "x", "kind": "emus_bms", "port": "/dev/x", "speed": 1}, "unknown keys ['speed']"),
        ({"name": "x", "kind": "emus_bms", "port": "/dev/x", "mode": "push"}, "mode must be"),
        ({"name": "x", "kind": "emus_bms", "port": "/dev/x", "period_s": 0}, "period_s must be in (0, 86400], got 0"),
        (
            {"name": "x", "kind": "emus_bms", "port": "/dev/x", "period_s": float("nan")},
            "period_s must be a number, not nan",
        ),
        ({"name": "x", "kind": "opc_n3", "fan_spinup_s": float("inf")}, "fan_spinup_s must be finite"),
        ({"name": "x", "kind": "emus_bms", "port": "/dev/x", "cells": True}, "cells must be an integer"),
        ({"name": "x", "kind": "emus_bms", "port": "/dev/x", "sentences": ["bv1"]}, "3 characters"),
        ({"name": "x", "kind": "opc_n3", "usb": "04D8"}, "VID:PID"),
        (
            {"name": "x", "kind": "opc_n3", "port": "/dev/x", "bytes_per_transfer": 99},
            "bytes_per_transfer must be in [1, 62]",
        ),
        ({"kind": "opc_n3"}, "'name'"),
    ]
    for entry, msg in bad:
        specs, errors = parse_devices([entry])
        assert specs == [] and len(errors) == 1 and msg in errors[0], (entry, errors)
    specs, errors = parse_devices([{"name": "a", "kind": "opc_n3"}, {"name": "a", "kind": "opc_n3"}])
    assert len(specs) == 1 and "used twice" in errors[0]


def _hk_messages(run: FlightRun) -> list:
    try:
        data = (run.log_dir() / "bus.log").read_bytes()
    except (OSError, IndexError):
        return []
    c = DecodeCounters()
    return [m for f in decode_frames(data).frames if f.channel == "hk" for m in [decode(f.message, c)] if m]


def _wait_for(run: FlightRun, cond, timeout_s: float = 60.0) -> list:  # (a loaded 2-core machine is slow)
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        msgs = _hk_messages(run)
        if cond(msgs):
            return msgs
        if run.proc.poll() is not None:
            raise AssertionError(f"main.py exited: {run.text}")
        time.sleep(0.2)
    raise AssertionError(f"hk condition not met; {len(_hk_messages(run))} hk messages\n{run.text}")


def _readings(msgs, device, record=None):
    return [
        m
        for m in msgs
        if m.type == "hk_reading" and m.body["device"] == device and (record is None or m.body["record"] == record)
    ]


def _states(msgs, device):
    return [m.body["state"] for m in msgs if m.type == "hk_device" and m.body["device"] == device]


def test_housekeeping_in_the_process_tree_survives_unplug_and_stops_cleanly(tmp_path):
    home = make_home(tmp_path, SAMPLE)
    bms_link, opc_link = tmp_path / "bms", tmp_path / "usb_iss"
    cfg = tmp_path / "pygnc.toml"
    cfg.write_text(
        "housekeeping_enabled = true\n"
        f'[[housekeeping_devices]]\nname = "bms"\nkind = "emus_bms"\nport = "{bms_link}"\n'
        'period_s = 0.5\ntimeout_s = 0.3\nreopen_s = 0.3\nsentences = ["BV1", "BV2", "CV1", "ST1"]\n'
        f'[[housekeeping_devices]]\nname = "opc"\nkind = "opc_n3"\nport = "{opc_link}"\n'
        "period_s = 0.5\nfan_spinup_s = 0.3\nread_config = false\n"
        '[[housekeeping_devices]]\nname = "spare"\nkind = "emus_bms"\nport = "/nonexistent/tty"\n'
    )
    with (
        EmusBmsSim(bms_link, corrupt_prob=0.05, seed=9) as bms,
        UsbIssOpcSim(opc_link, busy_prob=0.2, bad_crc_prob=0.1, seed=9) as opc,
        FlightRun(home, timeout_min=5, env={"PYGNC_CONFIG": str(cfg)}) as run,
    ):
        msgs = _wait_for(
            run, lambda m: len(_readings(m, "bms", "BV2")) >= 2 and len(_readings(m, "opc", "histogram")) >= 2
        )
        assert _states(msgs, "spare")[0] == "absent"  # a missing port is reported, not fatal
        b = _readings(msgs, "bms", "BV1")[0].body
        assert b["kind"] == "emus_bms" and b["values"]["n_cells"] == 12 and b["solicited"]
        assert b["raw"].startswith(b"BV1,")
        assert _readings(msgs, "bms", "VR1")[0].body["values"]["firmware_version"] == "2.0.13"  # once per open
        h = _readings(msgs, "opc", "histogram")[-1].body
        assert on.decode_histogram(h["raw"])["bin_counts"] == h["values"]["bin_counts"]
        assert {"info", "serial", "firmware", "dac_status"} <= {m.body["record"] for m in _readings(msgs, "opc")}

        bms.unplug()
        msgs = _wait_for(run, lambda m: "lost" in _states(m, "bms"))
        n_before = len(_readings(msgs, "bms"))
        time.sleep(0.5)
        bms.replug()
        msgs = _wait_for(
            run,
            lambda m: (
                _states(m, "bms")[-1] == "open" and len(_readings(m, "bms", "CV1")) > len(_readings(msgs, "bms", "CV1"))
            ),
        )
        assert len(_readings(msgs, "bms")) > n_before

        run.ctrl_c()
        assert run.wait_exit(timeout_s=10) == 0, run.text
        sup = (run.log_dir() / "supervisor.log").read_text()
        assert "housekeeping stopped (exit status 0)" in sup
        msgs = _hk_messages(run)
        assert _states(msgs, "opc")[-1] == "stopped" and _states(msgs, "bms")[-1] == "stopped"
        opts = [o for _, o in opc.opc.power_log]
        assert opts[:2] == [on.POWER_FAN_ON, on.POWER_LASER_ON]
        assert "Traceback" not in run.text
        hk_log = (run.log_dir() / "housekeeping.log").read_text()
        # Laser off before the fan - or, when the stop's second ran out on a loaded machine
        # (the simulated OPC answers busy to one command in five), said in the log.
        assert opts[-2:] == [on.POWER_LASER_OFF, on.POWER_FAN_OFF] or "opc: power-off not confirmed at stop" in hk_log
        if on.POWER_FAN_OFF in opts:  # the fan never stops under a running laser
            assert on.POWER_LASER_OFF in opts[: opts.index(on.POWER_FAN_OFF)]
        warnings = [ln for ln in hk_log.splitlines() if "WARNING spare:" in ln]
        assert len(warnings) == 1 and "no such device" in warnings[0]  # not one line per retry
        # The batch writer recorded the readings (the first of each device and record in
        # its hour: the default cadence) with their bytes, which decode again.
        from ground.decode.batch_files import read_batches

        hk_rows = [
            r.record.values()
            for r in read_batches(home / "pygnc_batches").rows
            if r.record.kind is not None and r.record.kind.name == "hk"
        ]
        got = {(v["device"], v["record"]) for v in hk_rows}
        assert {("bms", "BV1"), ("bms", "CV1"), ("opc", "histogram")} <= got
        h = next(v for v in hk_rows if v["record"] == "histogram")
        assert len(on.decode_histogram(h["raw"][: h["n_raw"]])["bin_counts"]) == 24


def test_an_opc_byte_between_exchanges_is_read_and_counted_not_left_to_wake_the_loop():
    """A byte the OPC-N3's bridge sends between exchanges (a reply after its timeout,
    noise) is read and counted: left unread, the port stayed readable and the task's loop
    woke at once, over and over, until the next histogram (up to ``period_s``)."""
    import logging
    import os
    import pty
    import tty

    import zmq

    from pygnc.drivers.hk_devices import parse_device
    from pygnc.tasks.housekeeping import Device

    master, slave = pty.openpty()
    try:
        tty.setraw(slave)
        spec = parse_device({"name": "opc", "kind": "opc_n3", "port": os.ttyname(slave), "period_s": 10.0})
        poller = zmq.Poller()
        dev = Device(
            spec,
            lambda *_: None,
            lambda fd: poller.register(fd, zmq.POLLIN),
            lambda fd: poller.unregister(fd),
            lambda t: t,
            logging.getLogger("hk"),
        )
        dev.service(time.monotonic())  # opens the port (in the poller) and starts the set-up
        opc = dev.driver.opc
        opc.runner.cancel()  # idle between two histograms
        opc.state, opc._next_at = "running", time.monotonic() + 3600.0
        os.write(master, bytes([on.BUSY]))
        t_end = time.monotonic() + 10.0
        while not poller.poll(100):  # the byte has arrived
            assert time.monotonic() < t_end
        dev.service(time.monotonic())
        assert poller.poll(0) == []  # nothing left to wake the loop
        assert opc.counters.stray_bytes == 1 and dev.link is not None
    finally:
        os.close(master)
        os.close(slave)
