"""The zygote (pygnc.zygote): tasks forked from one process that imported their code.

Unit tests drive a real zygote process through its pipes as the supervisor does; tree
tests run main.py in a pseudo-terminal and kill the zygote, the supervisor, or run with
``fork_tasks = false``."""

from __future__ import annotations

import os
import select
import signal
import time

import psutil
import pytest
from flight_harness import FLIGHT_MAIN, FlightRun, gone, make_home
from test_flight_tree import SAMPLE, _all_running, _batch_done, _check_clean_stop, _sample_end_sc

from pygnc.config import Config
from pygnc.formats import status as S
from pygnc.tasks.table import enabled_tasks, process_name
from pygnc.zygote import UNKNOWN_EXIT, Zygote, become_subreaper

TASKS = enabled_tasks(Config())
_NAMES = [process_name(t) for t in TASKS]
FLIGHT_DIR = FLIGHT_MAIN.parent


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(FLIGHT_DIR))


def _until(z: Zygote, cond, timeout_s: float = 30.0):
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        if z.read_fd >= 0:
            select.select([z.read_fd], [], [], 0.05)
        z.service()
        if cond():
            return
    raise AssertionError("condition not met in time")


def _hanging_task_argv(tmp_path) -> list[str]:
    """Arguments of a real task that waits (its ready handshake, 20 s) for a supervisor
    that is not there."""
    (tmp_path / "logs").mkdir(exist_ok=True)
    return [
        "orbit_estimator",
        "--run-dir",
        str(tmp_path),
        "--log-dir",
        str(tmp_path / "logs"),
        "--run-number",
        "1",
        "--t0-sc",
        "0",
        "--t0-mono",
        repr(time.monotonic()),
    ]


def test_zygote_forks_tasks_reports_their_exits_and_ends_with_its_stdin(tmp_path):
    z = Zygote(["pygnc.tasks.orbit_estimator"], _env(), str(FLIGHT_DIR))
    try:
        _until(z, lambda: z.ready)
        assert z.import_s is not None and not z.gone
        bad = z.fork("orbit_estimator", ["no_such_task"])  # argparse refuses: exit 2
        _until(z, lambda: bad.poll() is not None)
        assert bad.returncode == 2 and bad.pid > 0
        p = z.fork("orbit_estimator", _hanging_task_argv(tmp_path))
        _until(z, lambda: p.pid is not None)
        proc = psutil.Process(p.pid)
        _until(z, lambda: proc.name() == "orbit", timeout_s=5)  # named just after the fork
        assert proc.ppid() == z.pid
        assert p.poll() is None
        p.kill()
        _until(z, lambda: p.poll() is not None)
        assert p.returncode == -signal.SIGKILL
    finally:
        z.close()
    assert z.proc.returncode == 0 and z.gone == "closed"
    assert z.fork("orbit_estimator", ["x"]) is None


def test_tasks_stopped_before_their_fork_is_reported_are_abandoned_then_killed(tmp_path):
    """Killed (a restart) or stopped (SIGTERM, a stop) while the zygote still imports: the
    supervisor gets -9 / 0 at once - 0 as a spawned task stopped before it started - and
    each child is killed when its pid arrives."""
    z = Zygote(["pygnc.tasks.orbit_estimator"], _env(), str(FLIGHT_DIR))
    try:
        q = z.fork("orbit_estimator", _hanging_task_argv(tmp_path))
        r = z.fork("orbit_estimator", _hanging_task_argv(tmp_path))
        q.kill()
        r.send_signal(signal.SIGTERM)
        assert not z.ready and q.pid is None and r.pid is None  # (its imports take > 0.1 s)
        assert q.poll() == -signal.SIGKILL and r.poll() == 0
        _until(z, lambda: q.pid is not None and r.pid is not None)
        _until(z, lambda: gone([q.pid, r.pid]), timeout_s=10)
        assert q.returncode == -signal.SIGKILL and r.returncode == 0  # kept when the exits arrive
    finally:
        z.close()


def test_a_zygote_that_cannot_import_says_so_and_takes_no_request():
    z = Zygote(["pygnc.no_such_module"], _env(), str(FLIGHT_DIR))
    try:
        _until(z, lambda: z.gone is not None)
        assert "ModuleNotFoundError" in z.gone
        assert z.fork("orbit_estimator", ["x"]) is None
    finally:
        z.close()
    assert z.proc.returncode == 1


def test_a_zygote_that_does_not_fork_in_time_is_killed_as_hung(tmp_path):
    """What the supervisor does when a request is still not forked at the task's ready
    timeout: the request ends (status unknown), the zygote is killed, no more requests."""
    z = Zygote(["pygnc.tasks.orbit_estimator"], _env(), str(FLIGHT_DIR))
    try:
        _until(z, lambda: z.ready)
        os.kill(z.pid, signal.SIGSTOP)
        p = z.fork("orbit_estimator", _hanging_task_argv(tmp_path))
        time.sleep(0.3)
        assert p.pid is None and p.poll() is None
        z.hung("did not fork orbit_estimator within 20.0 s")
        assert p.poll() == UNKNOWN_EXIT and z.gone.startswith("did not fork")
        assert z.proc.wait(5) == -signal.SIGKILL
        assert z.fork("orbit_estimator", ["x"]) is None
    finally:
        z.close()


def test_a_fork_reported_after_the_zygote_was_given_up_is_killed_and_reaped(tmp_path):
    """The zygote forks just as the supervisor gives it up (hung()): the request ended at
    once (its task is spawned instead), so the child is killed when its pid arrives, and
    reaped by this process, its subreaper - no duplicate task, no zombie."""
    import ctypes

    assert become_subreaper()
    try:
        z = Zygote(["pygnc.tasks.orbit_estimator"], _env(), str(FLIGHT_DIR))
        p = z.fork("orbit_estimator", _hanging_task_argv(tmp_path))
        zygote = psutil.Process(z.pid)
        t_end = time.monotonic() + 30
        while not zygote.children() and time.monotonic() < t_end:
            time.sleep(0.01)
        (child,) = zygote.children()
        time.sleep(0.2)  # its "forked" event is in the pipe, not read yet
        assert p.pid is None
        z.hung("did not fork orbit_estimator within 20.0 s")
        assert p.returncode == UNKNOWN_EXIT
        z.close(timeout_s=0.0)  # as the supervisor does with a zygote it gave up
        t_end = time.monotonic() + 10
        while psutil.pid_exists(child.pid) and time.monotonic() < t_end:
            z.service()
            time.sleep(0.02)
        assert not psutil.pid_exists(child.pid)  # killed and reaped
        assert p.returncode == UNKNOWN_EXIT  # (as the supervisor saw it first)
    finally:
        ctypes.CDLL(None).prctl(36, 0, 0, 0, 0)  # no longer a subreaper


def test_tasks_of_a_dead_zygote_are_still_watched(tmp_path):
    z = Zygote(["pygnc.tasks.orbit_estimator"], _env(), str(FLIGHT_DIR))
    try:
        p = z.fork("orbit_estimator", _hanging_task_argv(tmp_path))
        _until(z, lambda: p.pid is not None)
        z.proc.kill()
        _until(z, lambda: z.gone is not None)
        assert p.orphan and p.poll() is None  # still running, nobody to report its exit
        p.kill()
        t_end = time.monotonic() + 10
        while p.poll() is None and time.monotonic() < t_end:
            time.sleep(0.02)
        assert p.returncode == UNKNOWN_EXIT
    finally:
        z.close()


def _keep_zygote(tmp_path) -> dict:
    cfg = tmp_path / "pygnc.toml"
    cfg.write_text("keep_zygote = true\n")
    return {"PYGNC_CONFIG": str(cfg)}


@pytest.mark.parametrize("fault", ["dies", "hangs"])
def test_the_tree_goes_on_when_the_zygote_dies_or_hangs(tmp_path, fault):
    """With the zygote kept: it dies (SIGKILL), or it hangs (SIGSTOP: the exit of a task it
    forked is never reported, so after EXIT_REPORT_GRACE_S it is declared hung and
    killed); either way a task that died meanwhile is reaped here with its real status and
    spawned instead, and the other forked tasks run on, re-parented to the supervisor."""
    home = make_home(tmp_path, SAMPLE)
    with FlightRun(home, spacecraft_time_s=_sample_end_sc(), env=_keep_zygote(tmp_path)) as run:
        run.wait_status(lambda s: _batch_done(s) and _all_running(s))
        sup = psutil.Process(run.proc.pid)
        (zygote,) = [p for p in sup.children() if "pygnc.zygote" in p.cmdline()]
        survivor = run.task_pid("attitude_estimator")
        old = run.task_pid("orbit_estimator")
        before = [p.pid for p in run.tree()]
        if fault == "dies":
            zygote.kill()
        else:
            zygote.suspend()
        os.kill(old, signal.SIGKILL)
        k = [spec.name for spec in TASKS].index("orbit_estimator")
        run.wait_status(lambda s: s[f"task{k}_restarts"] == 1 and _all_running(s), timeout_s=30)
        new = run.task_pid("orbit_estimator")
        assert new != old and "pygnc.tasks" in psutil.Process(new).cmdline()  # spawned now
        assert psutil.Process(survivor).name() == "attitude"  # forked tasks keep running
        assert psutil.Process(survivor).ppid() == run.proc.pid  # re-parented to their subreaper
        assert not zygote.is_running() or zygote.status() == psutil.STATUS_ZOMBIE
        pids = sorted(set(before) | {p.pid for p in run.tree()})
        run.ctrl_c()
        _check_clean_stop(run, pids, run.wait_exit(10))
        log = (run.log_dir() / "supervisor.log").read_text()
        assert "tasks are spawned from now on" in log
        assert "orbit_estimator exited unexpectedly with status -9" in log  # reaped here: the real status
        if fault == "dies":
            assert "zygote exited" in log
        else:
            assert f"zygote did not report the exit of orbit_estimator (pid {old})" in log


def test_the_zygote_exits_once_every_task_is_forked(tmp_path):
    """By default the zygote exits after the start (its pages no task shares any more go);
    the supervisor reaps the tasks it forked, with their real exit status, and spawns
    restarts."""
    home = make_home(tmp_path, SAMPLE)
    with FlightRun(home, spacecraft_time_s=_sample_end_sc()) as run:
        run.wait_status(lambda s: _batch_done(s) and _all_running(s))
        sup = psutil.Process(run.proc.pid)
        t_end = time.monotonic() + 10
        while any(p.name() not in _NAMES for p in sup.children()) and time.monotonic() < t_end:
            time.sleep(0.05)
        assert sorted(p.name() for p in sup.children()) == sorted(_NAMES)  # no zygote
        os.kill(run.task_pid("batch_writer"), signal.SIGKILL)
        k = [spec.name for spec in TASKS].index("batch_writer")
        run.wait_status(lambda s: s[f"task{k}_restarts"] == 1 and _all_running(s), timeout_s=20)
        assert "pygnc.tasks" in psutil.Process(run.task_pid("batch_writer")).cmdline()  # spawned
        pids = [p.pid for p in run.tree()]
        run.ctrl_c()
        _check_clean_stop(run, pids, run.wait_exit(10))
        log = (run.log_dir() / "supervisor.log").read_text()
        assert "zygote done: every task forked" in log
        assert "batch_writer exited unexpectedly with status -9" in log


def test_forked_tasks_outlive_the_zygote_without_pidfds(tmp_path):
    """Without pidfds (Linux < 5.3, or refused) a forked task watches its parent: once the
    zygote has exited that is the supervisor (their subreaper) - not a sign that it has gone."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import os\nif hasattr(os, 'pidfd_open'):\n    del os.pidfd_open\n")
    home = make_home(tmp_path, SAMPLE)
    with FlightRun(home, spacecraft_time_s=_sample_end_sc(), env={"PYTHONPATH": str(site)}) as run:
        run.wait_status(lambda s: _batch_done(s) and _all_running(s))
        sup = psutil.Process(run.proc.pid)
        t_end = time.monotonic() + 10
        while any(p.name() not in _NAMES for p in sup.children()) and time.monotonic() < t_end:
            time.sleep(0.05)
        time.sleep(1.5)  # (a task checks every loop turn, <= 0.5 s)
        assert sorted(p.name() for p in sup.children()) == sorted(_NAMES)
        run.wait_status(_all_running)
        pids = [p.pid for p in run.tree()]
        run.ctrl_c()
        _check_clean_stop(run, pids, run.wait_exit(10))
        for spec in TASKS:
            assert "supervisor gone" not in (run.log_dir() / f"{spec.name}.log").read_text(), spec.name


def test_fork_tasks_off_spawns_every_task(tmp_path):
    cfg = tmp_path / "pygnc.toml"
    cfg.write_text("fork_tasks = false\n")
    home = make_home(tmp_path, SAMPLE)
    with FlightRun(home, spacecraft_time_s=_sample_end_sc(), env={"PYGNC_CONFIG": str(cfg)}) as run:
        run.wait_status(lambda s: _batch_done(s) and s["flags"] & S.FLAG_ORBIT_VALID and _all_running(s))
        tree = run.tree()
        assert len(tree) == 1 + len(TASKS)
        assert all("pygnc.tasks" in p.cmdline() for p in tree[1:])
        pids = [p.pid for p in tree]
        run.ctrl_c()
        _check_clean_stop(run, pids, run.wait_exit(10))


def test_every_task_stops_by_itself_when_the_supervisor_is_killed(tmp_path):
    """SIGKILL (or a crash) of the supervisor: spawned tasks see their parent change, forked
    ones the supervisor's pidfd, the zygote the end of its stdin - nothing is left running.
    main.py runs under a shell here, as on the spacecraft (the login shell leads the
    terminal's session: main.py's death hangs nothing up)."""
    home = make_home(tmp_path, SAMPLE)
    with FlightRun(home, spacecraft_time_s=_sample_end_sc(), prefix=["sh", "-c", '"$@"; sleep 60', "sh"]) as run:
        run.wait_status(lambda s: _batch_done(s) and _all_running(s))
        (sup,) = run.tree()[0].children()
        pids = [p.pid for p in sup.children(recursive=True)]
        sup.kill()
        t_end = time.monotonic() + 10
        while not gone(pids) and time.monotonic() < t_end:
            time.sleep(0.05)
        assert gone(pids), [p.cmdline() for p in map(psutil.Process, pids) if p.is_running()]
        logs = run.log_dir()
        for spec in TASKS:
            assert "stopping: supervisor gone" in (logs / f"{spec.name}.log").read_text(), spec.name


def test_a_zombies_exit_status_is_read_from_proc():
    """What the supervisor reads while the zygote imports (it reaps only between modules):
    a zombie's status, as Popen.returncode; None once it is reaped."""
    from pygnc.zygote import _zombie_exit_status

    for how, want in (("exit", 3), ("kill", -signal.SIGKILL)):
        pid = os.fork()
        if pid == 0:
            if how == "exit":
                os._exit(3)
            time.sleep(60)
            os._exit(0)
        if how == "kill":
            os.kill(pid, signal.SIGKILL)
        t_end = time.monotonic() + 10
        while psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < t_end
            time.sleep(0.005)
        assert _zombie_exit_status(pid) == want
        os.waitpid(pid, 0)
        assert _zombie_exit_status(pid) is None
