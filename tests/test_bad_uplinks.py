"""Hostile uplinks through the real process tree and the real commands (issue 48 items 2, 3,
4 and 8): whatever the uplinked file is - a 400-digit integer, nesting 100 000 deep, a FIFO,
a dangling link or a symlink loop, values that pass each key's limits but not together -
it is a rejection: the run goes on (status flag ``config_rejected``), the previous run's
status is replaced at once, and ``--check-config`` says the same with exit status 2 and no
traceback.  A control character in a key never reaches the info file or the terminal."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from flight_harness import FLIGHT_MAIN, REPO, FlightRun, make_home

from pygnc.formats import status as S
from pygnc.tasks.table import TASKS_BY_NAME

SAMPLE = REPO / "data" / "sample"

#: The hostile files of the torture run (issue 48), each refused by --check-config and a run.
HOSTILE = {
    "long_integer": b"status_period_s = " + b"1" * 400 + b"\n",
    "longer_integer": b"status_period_s = " + b"7" * 5000 + b"\n",  # past the interpreter's digit limit
    "deep_nesting": b"x = " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "huge_list": b"batch_kinds = [" + b", ".join([b'"orbit"'] * 1_000_000) + b"]\n",  # 9 MB
    "health_below_ping": b"health_fatal_s = 0.4\n",
    "health_of_milliseconds": b"health_warn_s = 0.005\nstatus_health_fatal_s = 0.004\n",
    "ping_above_health": b"ping_period_s = 5.0\n",
    "ready_of_a_millisecond": b"ready_timeout_s = 0.001\n",
    "batch_dir_outside": b'batch_dir = "sense.bin"\n',
    "batch_dir_escaping": b'batch_dir = "pygnc_batches/../range"\n',
    "long_list": b"formation_peer_ids = [" + b", ".join([b"74"] * 300) + b"]\n",
}


def _check(path, timeout_s: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(FLIGHT_MAIN), "--check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_check_config_refuses_every_hostile_file_without_a_traceback(tmp_path, name):
    f = tmp_path / "pygnc_config.toml"
    f.write_bytes(HOSTILE[name])
    p = _check(f)
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stderr and p.stdout == ""
    lines = p.stderr.splitlines()
    assert lines[-1] == f"{f}: REJECTED" and all(len(line) < 400 for line in lines), lines


def _stale_status(home) -> None:
    """A previous run's status that says the orbit is valid (its run 41)."""
    s = {"run": 41, "seq": 999, "t_sc_s": 1.7e9, "flags": S.FLAG_ORBIT_VALID, "orbit_quality": 1}
    (home / "pygnc_status.bin").write_bytes(S.encode_status(s))


def _rejected_run(home, timeout_s: float = 30.0) -> tuple[FlightRun, dict]:
    """A run on *home* once its status says the uplink was refused (the caller closes it)."""
    run = FlightRun(home)
    try:
        st = run.wait_status(lambda s: s["run"] >= 1 and s["flags"] & S.FLAG_CONFIG_REJECTED, timeout_s=timeout_s)
    except BaseException:
        run.close()
        raise
    return run, st


@pytest.mark.parametrize("name", ["long_integer", "deep_nesting"])
def test_an_uplink_the_parser_cannot_take_is_refused_and_navigation_runs(tmp_path, name):
    """Issue 48 item 2: the supervisor crashed (OverflowError, RecursionError) before any
    status, every start, leaving the previous run's `orbit_valid` status in place."""
    home = make_home(tmp_path, SAMPLE)
    (home / "pygnc_config.toml").write_bytes(HOSTILE[name])
    _stale_status(home)
    run, st = _rejected_run(home)
    with run:
        assert st["run"] != 41
        st = run.wait_status(lambda s: s["flags"] & S.FLAG_BATCH_DONE, timeout_s=60)
        assert st["flags"] & S.FLAG_CONFIG_REJECTED
        info = run.wait_info(b"cfg rejected pygnc_config.toml")
        assert b"on defaults" in info
        run.ctrl_c()
        assert run.wait_exit(10) == 0
    assert "Traceback" not in run.text and "running on the defaults" in (run.log_dir() / "supervisor.log").read_text()


def test_a_fifo_named_like_the_uplink_never_blocks_the_start(tmp_path):
    """Issue 48 item 3: a FIFO named pygnc_config.toml hung the supervisor in open(), before
    any status and deaf to Ctrl-C; FIFOs where the batch writer reads (its state, a .part)
    likewise.  Each is a file that cannot be read: refused, the run goes on and stops."""
    home = make_home(tmp_path, SAMPLE)
    os.mkfifo(home / "pygnc_config.toml")
    os.mkfifo(home / "pygnc_config.accepted.toml")
    (home / "pygnc_batches").mkdir()
    os.mkfifo(home / "pygnc_batches" / ".batch_state.json")
    os.mkfifo(home / "pygnc_batches" / "batch_00000005.bin.part")
    _stale_status(home)
    run, st = _rejected_run(home)
    with run:
        assert b"cfg rejected pygnc_config.toml unreadable, on defaults" in run.wait_info(b"cfg rejected")
        writer = TASKS_BY_NAME["batch_writer"].task_id
        st = run.wait_status(lambda s: s["flags"] & S.FLAG_BATCH_DONE, timeout_s=60)
        for k in range(S.MAX_TASKS):
            if st[f"task{k}_id"] == writer:
                assert st[f"task{k}_restarts"] == 0 and S.TASK_STATES[st[f"task{k}_state"]] in ("running", "late")
        run.ctrl_c()
        assert run.wait_exit(10) == 0
    assert sorted(p.name for p in (home / "pygnc_batches").glob("batch_*.bin")) == ["batch_00000006.bin"]
    assert "not a regular file (a FIFO)" in (run.log_dir() / "supervisor.log").read_text()
    p = _check(home / "pygnc_config.toml", timeout_s=10)
    assert p.returncode == 2 and "not a regular file (a FIFO)" in p.stderr


@pytest.mark.parametrize("link", ["dangling", "loop"])
def test_check_config_agrees_with_a_run_on_a_link_that_leads_nowhere(tmp_path, link):
    """Issue 48 item 4: a dangling link or a symlink loop was REJECTED by --check-config and
    silently the defaults in a run.  Both refuse it now."""
    home = make_home(tmp_path, SAMPLE)
    up = home / "pygnc_config.toml"
    if link == "dangling":
        up.symlink_to(home / "no_such_file.toml")
    else:
        up.symlink_to(home / "other.toml")
        (home / "other.toml").symlink_to(up)
    p = _check(up)
    assert p.returncode == 2 and "cannot be read" in p.stderr
    run, st = _rejected_run(home)
    with run:
        assert b"cfg rejected pygnc_config.toml unreadable, on defaults" in run.wait_info(b"cfg rejected")
        run.ctrl_c()
        assert run.wait_exit(10) == 0


def test_values_that_stopped_navigation_are_refused_and_nothing_is_touched(tmp_path):
    """Issue 48 item 4: `batch_dir = "sense.bin"` renamed the host's sense.bin away, and
    `health_fatal_s = 0.4` (below the 0.5-s ping period) had every task killed 21 times.
    Refused now: the run uses the defaults, sense.bin is read, no task restarts."""
    home = make_home(tmp_path, SAMPLE)
    sense = (home / "sense.bin").read_bytes()
    (home / "pygnc_config.toml").write_bytes(HOSTILE["batch_dir_outside"] + HOSTILE["health_below_ping"])
    run, st = _rejected_run(home)
    with run:
        st = run.wait_status(lambda s: s["flags"] & S.FLAG_BATCH_DONE and s["sense_records"] > 0, timeout_s=60)
        seq = st["seq"]
        st = run.wait_status(lambda s: s["seq"] >= seq + 4)
        assert all(st[f"task{k}_restarts"] == 0 for k in range(S.MAX_TASKS)), st
        run.ctrl_c()
        assert run.wait_exit(10) == 0
    assert (home / "sense.bin").read_bytes() == sense and not (home / "sense.bin.not-a-directory").exists()
    assert list((home / "pygnc_batches").glob("batch_*.bin"))
    log = (run.log_dir() / "supervisor.log").read_text()
    assert "batch_dir must be pygnc_batches or a directory under it" in log
    assert "health_fatal_s must be in [1, 3600], got 0.4" in log


def test_control_characters_in_a_key_reach_neither_the_info_file_nor_the_terminal(tmp_path):
    """Issue 48 item 8: an unknown key holding an escape sequence was copied into the info
    file and onto the host's terminal.  Keys are shown escaped (`'\\x1b[2J...'`)."""
    home = make_home(tmp_path, SAMPLE)
    (home / "pygnc_config.toml").write_bytes(b'"\\u001b[2J\\u001b]0;owned\\u0007" = 1\n')
    run, st = _rejected_run(home)
    with run:
        info = run.wait_info(b"cfg rejected")
        run.ctrl_c()
        assert run.wait_exit(10) == 0
    assert all(b == 0x0A or 0x20 <= b < 0x7F for b in info), info
    assert b"\x1b[2J" not in run.output and b"\x07" not in run.output
    log = (run.log_dir() / "supervisor.log").read_text()
    assert "'\\x1b[2J\\x1b]0;owned\\x07' is not a configuration key" in log and "\x1b" not in log


# --------------------------------------------------------------------------- the ground's commands
def _ground(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ground", *args], capture_output=True, text=True, timeout=timeout_s, cwd=REPO
    )


def test_ground_commands_refuse_a_fifo_without_waiting(tmp_path):
    """Issue 48 item 3: `ground replay --config FIFO` and `ground archive DB FIFO` hung in
    open().  Each says the file is not a regular file, and exits."""
    fifo = tmp_path / "pygnc_config.toml"
    os.mkfifo(fifo)
    p = _ground("replay", str(SAMPLE), "--config", str(fifo), "--out", str(tmp_path / "out"), "--quiet")
    assert p.returncode == 2 and "not a regular file (a FIFO)" in p.stderr, p.stderr
    p = _ground("archive", str(tmp_path / "a.db"), str(fifo))
    assert p.returncode == 1 and "not a regular file (a FIFO)" in p.stderr, p.stderr


def test_ground_serve_on_a_directory_holding_fifos(tmp_path):
    """Issue 48 item 3: `ground serve` on a downlink directory holding a FIFO named like a
    status or batch file hung before it listened.  It serves the batch files beside them."""
    import json
    import re
    import threading

    from station_support import T0_SC_S, batch_file
    from test_station import _get

    d = tmp_path / "downlink"
    d.mkdir()
    orbit = {"r_ecef_m": [7e6, 0, 0], "v_ecef_m_s": [0, 7e3, 0]}
    batch_file(d, 1, [("orbit", T0_SC_S + 60.0 * k, orbit) for k in range(3)])
    for name in ("pygnc_status.bin", "batch_00000002.bin", "batch_00000003.bin.part", "renamed.bin"):
        os.mkfifo(d / name)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ground", "serve", str(d), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    watchdog = threading.Timer(60.0, proc.kill)  # a hang fails the test, never the suite
    watchdog.start()
    try:
        url = None
        while url is None:
            line = proc.stdout.readline()
            assert line, f"ground serve exited or was killed: {proc.stderr.read()}"
            m = re.search(r"open (http://\S+)", line)
            url = m.group(1) if m else None
        status, body = _get(url, "/api/current")
        snapshot = next(m for m in json.loads(body) if m["type"] == "snapshot")
        assert status == 200 and snapshot["rows"]["orbit"] == 3, body[:300]
        assert _get(url, "/files/pygnc_status.bin")[0] == 404
        proc.send_signal(2)
        assert proc.wait(timeout=10) == 0
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
