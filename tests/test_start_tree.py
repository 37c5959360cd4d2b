"""Start and stop of the real process tree in a pseudo-terminal, as the host runs it (issue 37
items 2, 5, 6): a rejected uplink never stops navigation and says so; a previous run's
status never looks current; a second start on the same home is refused and the first run
is untouched; a hang-up of the terminal stops the tree in order; a stop while the supervisor
is still importing ends the run without waiting for the imports (issue 48 item 14)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flight_harness import FLIGHT_MAIN, REPO, FlightRun, gone, make_home

from pygnc import run_lock
from pygnc.batch_store import BatchStore
from pygnc.config import Config
from pygnc.formats import batch as B
from pygnc.formats import status as S
from pygnc.formats.info import MAX_BYTES
from pygnc.formats.sense import decode_sense
from pygnc.paths import ACCEPTED_CONFIG_NAME as ACCEPTED_NAME
from pygnc.tasks.table import enabled_tasks

SAMPLE = REPO / "data" / "sample_5min"
T_END_SC = float(decode_sense((SAMPLE / "sense.bin").read_bytes()).sensors["t_sc_s"][-1]) + 1.0
TASKS = enabled_tasks(Config())


def _navigating(s) -> bool:
    return (
        bool(s["flags"] & S.FLAG_BATCH_DONE)
        and s["orbit_fixes_used"] >= 12
        and S.ESTIMATE_QUALITY[s["orbit_quality"]] in ("ok", "uncertain")
    )


def _stale_status(home, run: int = 99) -> bytes:
    """A previous run's final status and info, that said the orbit was valid."""
    data = S.encode_status(
        {
            "run": run,
            "seq": 500,
            "flags": S.FLAG_STOPPING | S.FLAG_ORBIT_VALID,
            "t_sc_s": T_END_SC - 86400,
            "orbit_quality": 1,
        }
    )
    (home / "pygnc_status.bin").write_bytes(data)
    (home / "pygnc_info.txt").write_bytes(b"pygnc r99 up3600s sc1 STOP\nstale\n")
    return data


def _clean_final(run: FlightRun, rc: int, pids: list[int]) -> dict:
    assert rc == 0, run.text
    assert gone(pids)
    st = S.decode_status(run.status_path.read_bytes())
    assert st["flags"] & S.FLAG_STOPPING
    sup = (run.log_dir() / "supervisor.log").read_text()
    for spec in TASKS:
        assert f"{spec.name} stopped (exit status 0)" in sup, sup
    batches = run.home / "pygnc_batches"
    assert not list(batches.glob("*.part")) and not list(run.home.glob(".*.tmp*"))
    return st


def test_a_rejected_uplink_runs_on_the_last_accepted_configuration_and_says_so(tmp_path):
    home = make_home(tmp_path, SAMPLE)
    # Uplink 1, accepted: an orbit bound no estimate meets, visible in the status.
    (home / "pygnc_config.toml").write_text("# uplink 1\norbit_valid_max_sigma_m = 0.001\n")
    with FlightRun(home, spacecraft_time_s=T_END_SC) as run:
        st = run.wait_status(lambda s: s["run"] == 1 and _navigating(s))
        assert S.ESTIMATE_QUALITY[st["orbit_quality"]] == "uncertain"
        assert not st["flags"] & S.FLAG_CONFIG_REJECTED
        run.ctrl_c()
        assert run.wait_exit(10) == 0, run.text
    assert (home / ACCEPTED_NAME).read_text() == "# uplink 1\norbit_valid_max_sigma_m = 0.001\n"
    # Uplink 2, a typo on line 3 (today: exit 2 before anything starts, yesterday's status left).
    (home / "pygnc_config.toml").write_text("# uplink 2\norbit_valid_max_sigma_m = 2000.0\nstatus_period_s = nan\n")
    stale = _stale_status(home)
    t0 = time.monotonic()
    with FlightRun(home, spacecraft_time_s=T_END_SC) as run:
        first = run.wait_status(lambda s: s["run"] != 99, period_s=0.005)
        # Replaced by the supervisor first thing (run 0: its number is not known yet; the
        # status reporter's first status comes hundreds of ms later), nothing valid in it.
        assert first["run"] == 0 and first["seq"] == 0 and not first["flags"] & S.FLAG_ORBIT_VALID
        assert run.status_path.read_bytes() != stale and b"stale" not in (home / "pygnc_info.txt").read_bytes()
        assert first["flags"] & S.FLAG_CONFIG_REJECTED
        st = run.wait_status(lambda s: s["run"] == 2 and _navigating(s))
        assert time.monotonic() - t0 < 60
        # It navigates, on uplink 1's values (not the defaults: the orbit is still "uncertain").
        assert S.ESTIMATE_QUALITY[st["orbit_quality"]] == "uncertain" and st["flags"] & S.FLAG_CONFIG_REJECTED
        # The full reason once the other lines leave it room (while the attitude still
        # catches up, its line is longer and this one is cut: "status_per..").
        cfg = rb"cfg rejected (pygnc_config\.toml:|line )3 status_period_s, on last accepted; imu reflection\n"
        info = run.wait_info(b"cfg rejected", timeout_s=60.0, until=lambda i: re.search(cfg, i) is not None)
        assert len(info) <= MAX_BYTES
        sup = (run.log_dir() / "supervisor.log").read_text()
        where = f"{home / 'pygnc_config.toml'}:3: status_period_s must be a number, not nan"
        assert where in sup and f"running on the last accepted configuration, {home / ACCEPTED_NAME}" in sup
        assert where in run.text  # on the host's terminal too
        pids = [p.pid for p in run.tree()]
        run.ctrl_c()
        st = _clean_final(run, run.wait_exit(10), pids)
    assert st["flags"] & S.FLAG_CONFIG_REJECTED and st["run"] == 2
    assert b"cfg rejected" in (home / "pygnc_info.txt").read_bytes()
    assert (home / ACCEPTED_NAME).read_text().startswith("# uplink 1")  # still the last accepted one


@pytest.mark.parametrize(
    "text, info, logged",
    [
        # an unknown orbit-filter key used to pass the load and stop only the orbit task
        (
            "status_period_s = 0.5\n[orbit_filter]\ntesseral_degre = 0\n",
            rb"cfg rejected (pygnc_config\.toml:|line )3 orbit_filter\.tesseral_degre, on defaults; imu reflection\n",
            ":3: orbit_filter.tesseral_degre is not a known key (did you mean tesseral_degree?)",
        ),
        # a syntax error used to exit 2 before anything started, naming no file
        (
            "status_period_s = 0.5\nmax_restarts = [3\n",
            rb"cfg rejected (pygnc_config\.toml:|line )2 syntax error, on defaults; imu reflection\n",
            ":2: TOML syntax error: ",
        ),
    ],
)
def test_a_rejected_uplink_without_an_accepted_copy_runs_on_the_defaults(tmp_path, text, info, logged):
    home = make_home(tmp_path, SAMPLE)
    (home / "pygnc_config.toml").write_text(text)
    with FlightRun(home, spacecraft_time_s=T_END_SC) as run:
        # (the attitude caught up too: its line's length decides how much of the cfg line fits)
        st = run.wait_status(
            lambda s: (
                s["run"] == 1
                and _navigating(s)
                and s["flags"] & S.FLAG_ORBIT_VALID
                and S.ESTIMATE_QUALITY[s["att_quality"]] in ("ok", "uncertain")
            )
        )
        assert st["flags"] & S.FLAG_CONFIG_REJECTED
        # (the info file is written just after the status: the one of that status, or a later one)
        text = run.wait_info(b"cfg", until=lambda t: re.search(rb"^att (ok|uncertain) ", t, re.M) is not None)
        assert re.search(info, text), text  # (the file's name when there is room for it)
        sup = (run.log_dir() / "supervisor.log").read_text()
        assert f"{home / 'pygnc_config.toml'}{logged}" in sup and "running on the defaults" in sup
        run.ctrl_c()
        assert run.wait_exit(10) == 0, run.text
    assert not (home / ACCEPTED_NAME).exists()


def test_a_second_start_on_the_same_home_is_refused_and_the_first_run_is_untouched(tmp_path, runtime_dir):
    """A host retry took over the first run's live .part batch file (37 records lost) and
    both wrote the same status file."""
    xdg = runtime_dir
    home = make_home(tmp_path, SAMPLE)
    with FlightRun(home, spacecraft_time_s=T_END_SC, env={"XDG_RUNTIME_DIR": str(xdg)}) as run:
        run.wait_status(lambda s: _navigating(s) and s["flags"] & S.FLAG_ORBIT_VALID)
        parts = list((home / "pygnc_batches").glob("*.part"))
        assert len(parts) == 1
        ino = parts[0].stat().st_ino
        sockets = sorted(xdg.iterdir())
        before = run.status()
        env = dict(os.environ, PYGNC_HOME=str(home), XDG_RUNTIME_DIR=str(xdg))
        env.pop("PYGNC_CONFIG", None)
        second = subprocess.run(
            [sys.executable, str(FLIGHT_MAIN), "5", str(T_END_SC + 60)],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            cwd=str(home),
        )
        assert second.returncode == 3, second.stderr
        assert f"another pygnc is running on {home} (supervisor pid {run.proc.pid}" in second.stderr
        # The first run goes on, alone: same run, status still rewritten by it, same open batch file.
        st = run.wait_status(lambda s: s["seq"] > before["seq"] + 2, timeout_s=10)
        assert st["run"] == 1 and st["t_sc_s"] < T_END_SC + 60
        assert [p.stat().st_ino for p in (home / "pygnc_batches").glob("*.part")] == [ino]
        assert sorted(xdg.iterdir()) == sockets and [p.name for p in (home / "pygnc_logs").iterdir()] == ["run_00001"]
        pids = [p.pid for p in run.tree()]
        run.ctrl_c()
        _clean_final(run, run.wait_exit(10), pids)
        log = (run.log_dir() / "batch_writer.log").read_text()
    assert "records lost" not in log and "'records_not_written': 0" in log and "'files_lost': 0" in log, log
    assert "'parts_recovered': 0" in log  # nobody else's .part to take over
    assert list(xdg.iterdir()) == []
    # Once the first has stopped, a start is accepted again.
    with FlightRun(home, spacecraft_time_s=T_END_SC) as run:
        run.wait_status(lambda s: s["run"] == 2)
        run.ctrl_c()
        assert run.wait_exit(10) == 0, run.text


def _hang_up_and_check(run: FlightRun, xdg, hang_up) -> None:
    run.wait_status(lambda s: _navigating(s) and s["flags"] & S.FLAG_ORBIT_VALID)
    assert list((run.home / "pygnc_batches").glob("*.part")) and list(xdg.iterdir())
    pids = [p.pid for p in run.tree()]
    hang_up()
    rc = run.proc.wait(timeout=10)
    st = _clean_final(run, rc, pids)
    assert st["run"] == 1
    sup = (run.log_dir() / "supervisor.log").read_text()
    assert "stopping: SIGHUP" in sup, sup
    assert list(xdg.iterdir()) == []  # the socket directory is removed


def test_the_terminal_closing_stops_the_tree_in_order(tmp_path, runtime_dir):
    """Closing the host's terminal (SIGHUP to the session leader, then a dead terminal: writes
    to it fail) left no stopping flag, a .part batch and a socket directory."""
    xdg = runtime_dir
    home = make_home(tmp_path, SAMPLE)
    with FlightRun(home, spacecraft_time_s=T_END_SC, env={"XDG_RUNTIME_DIR": str(xdg)}) as run:
        _hang_up_and_check(run, xdg, run.hang_up)


def test_a_hang_up_passed_on_to_the_whole_job_stops_the_tree_in_order(tmp_path, runtime_dir):
    """A login shell that hangs up passes SIGHUP on to every process of its jobs."""
    xdg = runtime_dir
    home = make_home(tmp_path, SAMPLE)
    with FlightRun(home, spacecraft_time_s=T_END_SC, env={"XDG_RUNTIME_DIR": str(xdg)}) as run:
        _hang_up_and_check(run, xdg, lambda: os.killpg(run.proc.pid, signal.SIGHUP))


def test_a_relative_pygnc_home_is_taken_from_where_main_py_started(tmp_path):
    """PYGNC_HOME=home from tmp_path: the supervisor wrote its run-0 placeholder there while
    the tasks (started in the flight code's directory) wrote the run's statuses, info and
    batches under flight/home, and main.py exited 0.  Now every file is in tmp_path/home."""
    name = f"rel-home-{os.getpid()}"
    home = tmp_path / name
    home.mkdir()
    for f in ("sense.bin", "pygnc_config.toml"):
        (home / f).write_bytes((SAMPLE / f).read_bytes())
    _stale_status(home)
    stray = REPO / "flight" / name
    try:
        with FlightRun(home, spacecraft_time_s=T_END_SC, env={"PYGNC_HOME": name}, cwd=tmp_path) as run:
            st = run.wait_status(lambda s: s["run"] == 1 and _navigating(s))
            assert run.wait_info(b"pygnc r1 ")
            pids = [p.pid for p in run.tree()]
            run.ctrl_c()
            st = _clean_final(run, run.wait_exit(10), pids)
        assert st["run"] == 1 and st["seq"] > 1
        assert (home / "pygnc_info.txt").read_bytes().startswith(b"pygnc r1 ")
        assert list((home / "pygnc_batches").glob("batch_*.bin"))
        assert f"home {home}," in (home / "pygnc_logs" / "run_00001" / "supervisor.log").read_text()
        assert not stray.exists()
    finally:
        if stray.exists():
            import shutil

            shutil.rmtree(stray)


def _no_flight_packages(args, home, tmp_path) -> subprocess.CompletedProcess:
    """``python -S flight/main.py ARGS``: this interpreter without its site-packages - the
    standard library only, no numpy, pyzmq, msgpack or pyserial."""
    probe = subprocess.run([sys.executable, "-S", "-c", "import zmq"], capture_output=True)
    assert probe.returncode != 0, "python -S still imports zmq: the test would not hide it"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYGNC_CONFIG")}
    env["PYGNC_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-S", str(FLIGHT_MAIN), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )


def test_a_configuration_check_needs_no_flight_package(tmp_path):
    """``main.py --check-config`` on a Python without the flight packages: the same answers
    as with them (it was ``No module named 'zmq'``), a housekeeping device table included."""
    good = tmp_path / "good.toml"
    good.write_text(
        "imu_to_body_reflection_intended = true\n[[housekeeping_devices]]\nname = 'bms'\nkind = 'emus_bms'\n"
        "port = '/dev/ttyUSB0'\n[[housekeeping_devices]]\nname = 'opc'\nkind = 'opc_n3'\n"
    )
    bad = tmp_path / "bad.toml"
    bad.write_text("status_period_s = nan\n[[housekeeping_devices]]\nname = 'opc'\nkind = 'opc_n3'\nusb = '04D8:zz'\n")
    p = _no_flight_packages(["--check-config", str(good)], tmp_path, tmp_path)
    assert p.returncode == 0 and p.stderr == f"{good}: accepted\n", p.stderr
    p = _no_flight_packages(["--check-config", str(bad)], tmp_path, tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert f"{bad}:1: status_period_s must be a number, not nan" in p.stderr
    assert (
        f"{bad}:5: housekeeping_devices[0].usb is refused" in p.stderr and "VID and PID must be hexadecimal" in p.stderr
    )
    assert p.stderr.endswith(f"{bad}: REJECTED\n")
    data = (SAMPLE / "pygnc_config.toml").read_text()
    (tmp_path / "sample.toml").write_text(data)
    p = _no_flight_packages(["--check-config", str(tmp_path / "sample.toml")], tmp_path, tmp_path)
    assert p.returncode == 0 and p.stderr.endswith("accepted\n"), p.stderr


def test_a_run_without_the_flight_packages_says_so_in_one_line(tmp_path):
    """``main.py 5 T`` on a Python without them: the previous run's status is replaced (run
    0, nothing valid), one line names what is missing and how to install it, exit 1."""
    home = make_home(tmp_path, SAMPLE)
    stale = _stale_status(home)
    p = _no_flight_packages(["5", str(T_END_SC)], home, tmp_path)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.startswith("main.py: cannot start: numpy, pyzmq, msgpack, pyserial not installed for ")
    assert p.stderr.rstrip().endswith("(the flight code needs: pip install numpy pyzmq msgpack pyserial)")
    assert len(p.stderr.strip().splitlines()) == 1
    data = (home / "pygnc_status.bin").read_bytes()
    st = S.decode_status(data)
    assert data != stale and st["run"] == 0 and not st["flags"] & S.FLAG_ORBIT_VALID
    assert not (home / "pygnc_logs").exists()


def test_the_info_file_says_what_a_refused_run_uses_and_an_attitude_past_180_deg_is_unknown(tmp_path):
    """A refused uplink with a long key and the IMU reflection flagged: the cfg line was cut
    to "..., on defau" and "imu reflection" vanished; an attitude propagated far past its
    data said "att uncertain 311.8deg".  Started 2 min after the sample's data ends."""
    import math

    home = make_home(tmp_path, SAMPLE)
    (home / "pygnc_config.toml").write_text(
        "status_period_s = 0.5\n[formation_peer_priors.0x4B]\nt_gps_s = 1e9\npos_ecef_m = [1.0, 2.0]\n"
        "vel_ecef_m_s = [0.0, 0.0, 0.0]\n"
    )

    def lost(s) -> bool:
        sigma_deg = math.degrees(math.sqrt(sum(x * x for x in s["att_sigma_rad"])))
        return S.ESTIMATE_QUALITY[s["att_quality"]] == "uncertain" and sigma_deg > 180

    with FlightRun(home, spacecraft_time_s=T_END_SC + 120.0) as run:
        st = run.wait_status(lost, timeout_s=60)
        assert st["flags"] & S.FLAG_CONFIG_REJECTED and st["flags"] & S.FLAG_IMU_REFLECTION
        info = run.wait_info(b"att unknown >180deg").decode()
        cfg = info.splitlines()[-1]
        assert cfg.startswith("cfg rejected line 4 formation") and cfg.endswith(", on defaults; imu reflection"), info
        assert len(info.encode()) <= MAX_BYTES
        run.ctrl_c()
        assert run.wait_exit(10) == 0, run.text


HOLD_IMPORT = REPO / "tests" / "hold_import.py"


def _held_start(home, tmp_path, module: str = "zmq", **kw) -> tuple[FlightRun, Path]:
    """main.py started with the import of *module* (one of the supervisor's) held until the
    returned gate is opened (tests/hold_import.py), once the hold is reached."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    run = FlightRun(home, main=HOLD_IMPORT, args=[module, str(gate), str(FLIGHT_MAIN), "5", str(T_END_SC)], **kw)
    t_end = time.monotonic() + 60
    while f"holding import of {module}" not in run.text:
        assert run.proc.poll() is None and time.monotonic() < t_end, run.text
        time.sleep(0.01)
    return run, gate


def _open(gate) -> None:
    fd = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
    os.write(fd, b"go")
    os.close(fd)


@pytest.mark.parametrize("how", ["ctrl_c", "hang_up"])
def test_a_stop_during_the_supervisors_imports_ends_the_run_without_waiting_for_them(tmp_path, how):
    """Issue 48 item 14: a Ctrl-C or hang-up while the supervisor was still importing (most of
    its start: 0.4 s at a load of 10 on 2 cores) waited for every import, then went through
    a whole start and stop.  Now the imports are given up at the next module and the run ends
    with a final status of its start: run 0, stopping, nothing started, the stale one gone."""
    home = make_home(tmp_path, SAMPLE)
    _stale_status(home)
    run, gate = _held_start(home, tmp_path)
    with run:
        getattr(run, how)()
        _open(gate)
        assert run.wait_exit(10) == 0, run.text
        assert run.tree() == []
    st = S.decode_status(run.status_path.read_bytes())
    assert st["run"] == 0 and st["seq"] == 1 and st["flags"] == S.FLAG_STOPPING, st
    assert T_END_SC <= st["t_sc_s"] < T_END_SC + 60 and st["home_free_kib"] > 0 and st["home_free_inodes"] > 0
    info = (home / "pygnc_info.txt").read_bytes()
    assert info.startswith(b"pygnc r0 ") and b" STOP\n" in info and b" NI" not in info, info
    assert not (home / "pygnc_logs").exists() and not (home / "pygnc_batches").exists()
    assert not list(home.glob(".*.tmp*"))
    assert "Traceback" not in run.text  # (its one line: tests/test_early_stop.py - the terminal's
    # last output can be lost when a loaded machine closes it before the reader has it all)


def test_a_stop_during_the_imports_with_a_part_left_recovers_it_first(tmp_path):
    """With a power cut's .part in the batch area, the stop waits for the imports and recovers
    it (issue 48 item 13's promise: the host finds every record in complete files)."""
    home = make_home(tmp_path, SAMPLE)
    store = BatchStore(home / "pygnc_batches", 7, "cut", 0x4A)
    store.open()
    held = []
    for i in range(3):
        raw = B.encode_record(B.KINDS_BY_NAME["orbit"], T_END_SC - 60 + 5 * i, {"r_ecef_m": (7e6 + i, 0, 0)})
        assert store.append(raw, T_END_SC - 60 + 5 * i)
        held.append(raw)
    (part,) = (home / "pygnc_batches").glob("*.part")  # not closed: a power cut's
    run, gate = _held_start(home, tmp_path)
    with run:
        run.ctrl_c()
        _open(gate)
        assert run.wait_exit(10) == 0, run.text
        sup = (run.log_dir() / "supervisor.log").read_text()
    assert "recovered 1 .part" in sup, sup
    assert not list((home / "pygnc_batches").glob("*.part"))
    recovered = part.with_name(part.name[: -len(".part")])
    assert [r.raw for r in B.decode_batch(recovered.read_bytes()).records] == held
    st = S.decode_status(run.status_path.read_bytes())
    assert st["run"] == 1 and st["flags"] & S.FLAG_STOPPING


def test_a_second_start_stopped_while_importing_touches_nothing(tmp_path):
    """The early stop takes the home's lock too: a second start stopped during its imports
    exits 3 and leaves the first run's status alone."""
    home = make_home(tmp_path, SAMPLE)
    before = _stale_status(home)
    lock = run_lock.acquire(home, T_END_SC)  # the first run
    try:
        run, gate = _held_start(home, tmp_path)
        with run:
            run.ctrl_c()
            _open(gate)
            assert run.wait_exit(10) == 3, run.text
    finally:
        lock.release()
    assert run.status_path.read_bytes() == before
