"""The supervisor: ``main.py <timeout_minutes> <spacecraft_time_s>``.

Starts every enabled task of :data:`pygnc.tasks.table.TASKS` as its own OS process (forked
from the zygote, :mod:`pygnc.zygote`, or spawned), holds them at
a start barrier until all are ready, pings them (warn when a reply is late, kill and
restart when it is very late; a task that never answers within ``ready_timeout_s`` of its
start is killed and restarted too), restarts a crashed task with bounded retries and
exponential backoff, publishes the health table, and stops the tree in order when the
timeout expires or on SIGINT/SIGTERM - at any instant, start-up included:

0. no task is started any more;
1. producers (ingest, estimators) get ``stop``, again every :data:`STOP_RESEND_S` until they
   are gone (a task still connecting misses the first), and a task that has not connected
   yet also gets SIGTERM (it holds nothing yet and exits at once); they finish their
   step, publish final messages and exit; after ``stop_deadline_producers_s`` stragglers
   get SIGKILL;
2. sinks (status reporter, batch writer) likewise, with ``stop_deadline_sinks_s``; they
   drain (within ``sink_stop_drain_s``), write the final status (flag ``stopping``) and the
   last batch file, and exit;
3. a ``.part`` batch file left behind (the writer was killed, or stopped before it had
   opened its directory: a power cut's) is recovered, as the next start would;
4. the final status must say what only the supervisor knows: each task's final state
   (``stopped`` cleanly, ``exited`` otherwise, ``failed``) and ``downlink_failed`` if the
   writer did not finish.  The reporter's says so after a clean stop (the last health
   table gives the sinks ``stopped``); otherwise the supervisor writes it again, from the
   reporter's or the last status of the run (the reporter wrote none);
5. the private socket directory is removed and the supervisor exits 0 (1 if no final
   status could be written, e.g. a full disk: the message says so on the terminal).

SIGHUP (the host's terminal closed) is a stop like SIGINT.  At start, before anything else,
it takes the home's lock (:mod:`pygnc.run_lock`: a second start exits 3 and touches
nothing), chooses the configuration (:mod:`pygnc.config_source`: a rejected uplink falls
back to the last accepted one or the defaults, and says so) and replaces the previous
run's status and info files, so that nothing stale looks current.

No busy loop and no blocking call: the only wait is a ZeroMQ poll with a timeout, woken at
once by signals through ``signal.set_wakeup_fd``; a killed task is reaped by ``poll()`` on
later turns.  The private socket directory is ``pygnc-<pid>-XXXXXXXX``; at start, those
of dead supervisors (a SIGKILL or power cut leaves them) are removed.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import config_source, run_lock, terminal
from .batch_store import store_for
from .bus.channels import CHANNELS, CONTROL_SOCKET
from .command_line import USAGE, UsageError, check_home, parse_args, say, say_already_running
from .config import Config, Paths
from .formats import status as st
from .regular_files import read_small_file
from .signals import StopSignals, ignore_stop_signals
from .status_files import measure_storage, write_status_pair
from .tasks.table import TaskSpec, active_subscriptions, enabled_tasks, expected_subscribers
from .validity import assess, said_acquiring_in
from .zygote import UNKNOWN_EXIT, ForkedProc, Zygote, become_subreaper, process_running

#: The packages the flight tree needs beyond the standard library (module -> pip name; as
#: pyproject's dependencies).  Without them main() still replaces the previous status, then
#: refuses to start in one line; ``--check-config`` needs none of them.
FLIGHT_PACKAGES = {"numpy": "numpy", "zmq": "pyzmq", "msgpack": "msgpack", "serial": "pyserial"}
try:
    import zmq

    from .bus.messages import DecodeCounters, Encoder
    from .bus.transport import ControlServer, Publisher
    from .logs import create_run_dir, list_runs, setup_task_logging, sync_logs
except ImportError as exc:  # checked by main() before anything uses them
    if (exc.name or "").split(".")[0] not in FLIGHT_PACKAGES:
        raise

log = logging.getLogger("supervisor")

#: While stopping, ``stop`` (and SIGTERM to tasks not yet ready) is sent again this often, s.
STOP_RESEND_S = 0.1
#: Bound on reaping a group's killed stragglers, s.
REAP_S = 1.0
#: Name of the private socket directory: ``pygnc-<supervisor pid>-<random>``.
RUN_DIR_PREFIX = "pygnc-"
_RUN_DIR_RE = re.compile(r"^pygnc-(\d+)-[A-Za-z0-9_]+$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_run_dirs(parent: Path) -> list[Path]:
    """Remove the private socket directories (``pygnc-<pid>-*``) in *parent* that belong to
    this user and to a process that no longer exists (a supervisor killed by SIGKILL or a
    power cut never removed its own).  Returns those removed."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    uid = os.getuid()
    for e in entries:
        m = _RUN_DIR_RE.match(e.name)
        if not m:
            continue
        try:
            info = e.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _pid_alive(pid):
            continue
        shutil.rmtree(e.path, ignore_errors=True)
        if not os.path.lexists(e.path):
            removed.append(Path(e.path))
    return removed


#: Longest Unix socket path (``sockaddr_un.sun_path`` less its NUL), bytes.
IPC_PATH_MAX = 107


def _room_for_sockets(parent: str) -> bool:
    """Whether every socket of a run directory made in *parent* fits :data:`IPC_PATH_MAX`
    (the directory's name: prefix, this pid, ``-`` and mkdtemp's 8 characters)."""
    longest = max(len(n) for n in [CONTROL_SOCKET, *(c.name + ".sock" for c in CHANNELS.values())])
    name = len(RUN_DIR_PREFIX) + len(str(os.getpid())) + 1 + 8
    return len(os.fsencode(parent)) + 1 + name + 1 + longest <= IPC_PATH_MAX


def make_run_dir() -> tuple[Path, list[Path]]:
    """A fresh private (0700) socket directory, after removing stale ones; returns (it, the
    stale ones removed).  In ``$XDG_RUNTIME_DIR``, else the temp dir, else ``/tmp``: the first
    that is a directory with room for a socket's path (else the first directory: a socket
    that does not fit is then the bind's error, named in the log)."""
    # (gettempdir() always names an existing directory, so the list is never empty)
    dirs = [d for d in (os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp") if d and os.path.isdir(d)]
    parent = Path(os.path.abspath(next((d for d in dirs if _room_for_sockets(d)), dirs[0])))
    stale = remove_stale_run_dirs(parent)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{os.getpid()}-", dir=parent))
    os.chmod(run_dir, 0o700)
    return run_dir, stale


@dataclass
class TaskProc:
    spec: TaskSpec
    proc: subprocess.Popen | ForkedProc | None = None
    state: str = "starting"
    restarts: int = 0
    ready: bool = False
    answered: bool = False  # any control message from this process (it is connected)
    started: bool = False
    bye: bool = False
    last_pong: float = 0.0
    late_logged: bool = False
    next_restart_at: float | None = None
    counters: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """Its pid; 0 while it has none yet (a fork the zygote has not reported)."""
        return (self.proc.pid or 0) if self.proc else 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_status(self) -> int | None:
        """Its exit status, None while running; a forked task whose zygote has gone (status
        unknown) that said ``bye`` counts as 0."""
        assert self.proc is not None  # started
        rc = self.proc.poll()
        if rc == UNKNOWN_EXIT and self.bye and isinstance(self.proc, ForkedProc) and self.proc.orphan:
            return 0
        return rc


def _stderr_fd() -> int | None:
    """fd 2 if it is open (stdout of the tasks that must not write to stdout), else None."""
    try:
        os.fstat(2)
        return 2
    except OSError:
        return None


class Supervisor:
    def __init__(
        self,
        timeout_min: float,
        t0_sc_s: float,
        t0_mono_s: float,
        config: Config,
        paths: Paths,
        run_number: int,
        log_dir: Path,
        run_dir: Path,
        signals: StopSignals | None = None,
    ):
        self.timeout_s = timeout_min * 60.0
        self.t0_sc_s, self.t0_mono_s = t0_sc_s, t0_mono_s
        self.config, self.paths = config, paths
        self.run_number, self.log_dir, self.run_dir = run_number, log_dir, run_dir
        self.stop_requested: str | None = None  # set by the signal handler only
        self.tasks = [TaskProc(spec) for spec in enabled_tasks(config)]
        self.by_name = {t.spec.name: t for t in self.tasks}
        self.ping_key = 0
        self.decode_counters = DecodeCounters()
        self.flight_dir = Path(__file__).resolve().parent.parent

        self.signals = signals or StopSignals()
        self.signals.set_handler(self._on_signal)

        self.zctx = zmq.Context()
        self.control = ControlServer(self.zctx, run_dir, self.decode_counters)
        self.health_pub = Publisher(
            self.zctx,
            "health",
            run_dir,
            Encoder("supervisor"),
            expected_subscribers("health", config),
            config.max_message_bytes,
        )
        self.poller = zmq.Poller()
        self.poller.register(self.control.socket, zmq.POLLIN)
        self.poller.register(self.signals.read_fd, zmq.POLLIN)
        self.zygote: Zygote | None = None
        self.subreaper = False  # this process reaps the tasks the zygote forked once it has gone

    # -- signals -----------------------------------------------------------------------
    def _on_signal(self, signum: int) -> None:  # only sets a flag
        self.stop_requested = signal.Signals(signum).name

    def sc_now(self) -> float:
        return self.t0_sc_s + (time.monotonic() - self.t0_mono_s)

    # -- processes -----------------------------------------------------------------------
    def _task_env(self) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(self.flight_dir) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYGNC_HOME"] = str(self.paths.home)
        return env

    def start_zygote(self) -> None:
        """Start the zygote (Config.fork_tasks) the tasks are forked from; it imports their
        modules in start order while the first tasks start."""
        if not self.config.fork_tasks or not self.tasks:
            return
        self.subreaper = become_subreaper()
        if not self.subreaper:
            log.info("cannot be the tasks' subreaper: the zygote is kept (its forked tasks stay its children)")
        try:
            self.zygote = Zygote(
                [t.spec.module for t in self.tasks],
                self._task_env(),
                str(self.flight_dir),
                log,
                stdio=any(t.spec.stdio for t in self.tasks),
            )
        except OSError as exc:
            log.warning("cannot start the zygote (%s): every task is spawned", exc)
            return
        self.poller.register(self.zygote.read_fd, zmq.POLLIN)
        log.info("zygote started (pid %d)", self.zygote.pid)

    def spawn(self, t: TaskProc) -> None:
        args = [
            t.spec.name,
            "--run-dir",
            str(self.run_dir),
            "--log-dir",
            str(self.log_dir),
            "--run-number",
            str(self.run_number),
            "--t0-sc",
            repr(self.t0_sc_s),
            "--t0-mono",
            repr(self.t0_mono_s),
            "--supervisor-pid",
            str(os.getpid()),
        ]
        if t.restarts and t.spec.replay:
            args.append("--replay")  # its replay first (what it read before), then the live streams
        t.proc = None
        if self.zygote is not None and (self.zygote.has_stdio or not t.spec.stdio):
            t.proc = self.zygote.fork(t.spec.name, args)  # None: the zygote has gone
        if t.proc is None:
            # stdout belongs to the stream task (the host's frames, nothing else): every
            # other task writes whatever it prints to stderr.
            stdio = (
                dict(stdin=None, stdout=None) if t.spec.stdio else dict(stdin=subprocess.DEVNULL, stdout=_stderr_fd())
            )
            t.proc = subprocess.Popen(
                [sys.executable, "-m", "pygnc.tasks", *args],
                env=self._task_env(),
                cwd=str(self.flight_dir),
                **stdio,
                preexec_fn=ignore_stop_signals,
            )
            log.info("started %s (pid %d, spawned)", t.spec.name, t.proc.pid)
        else:
            log.info("forking %s", t.spec.name)  # the zygote logs its pid when it is forked
        t.ready = t.started = t.bye = t.answered = False
        t.state = "starting"
        t.last_pong = time.monotonic()
        t.late_logged = False
        t.next_restart_at = None

    def _service_zygote(self) -> None:
        """Apply the zygote's reports (it logs the forks); let a zygote that has gone go."""
        z = self.zygote
        assert z is not None  # called while there is one
        z.service()
        if z.gone and z.read_fd >= 0:
            self.poller.unregister(z.read_fd)
            z.close(timeout_s=0.0)

    def _check_exits(self, now: float, stopping: bool) -> None:
        for t in self.tasks:
            if t.proc is None or t.state in ("failed", "restarting", "exited", "stopped"):
                continue
            rc = t.exit_status()
            if rc is None:
                continue
            if stopping or t.bye and rc == 0:
                t.state = "stopped" if rc == 0 else "exited"
                log.info("%s exited with %s", t.spec.name, rc)
                continue
            self._schedule_restart(t, now, f"exited unexpectedly with status {rc}")

    def _schedule_restart(self, t: TaskProc, now: float, why: str) -> None:
        if t.restarts >= self.config.max_restarts:
            t.state = "failed"
            log.error("%s %s; restarts exhausted (%d), giving up", t.spec.name, why, t.restarts)
            self._request_replay(t, cancel=True)
            return
        self._request_replay(t)  # producers keep its replay (ingest holds its stream) until it is back
        delay = self.config.restart_backoff_s * (2**t.restarts)
        t.state = "restarting"
        t.next_restart_at = now + delay
        log.warning(
            "%s %s; restart %d of %d in %.2f s", t.spec.name, why, t.restarts + 1, self.config.max_restarts, delay
        )

    def _do_restarts(self, now: float) -> None:
        for t in self.tasks:
            if t.state == "restarting" and t.next_restart_at is not None and now >= t.next_restart_at:
                if t.alive():  # never wait for it here: look again shortly (poll() reaps it)
                    assert t.proc is not None  # alive
                    t.proc.kill()
                    t.next_restart_at = now + 0.02
                    continue
                t.restarts += 1
                self.spawn(t)

    # -- control -----------------------------------------------------------------------------
    def _handle_control(self, now: float) -> None:
        for name, msg in self.control.pending():
            t = self.by_name.get(name)
            if t is None:
                continue
            t.answered = True
            if msg.type == "ready":
                t.ready = True
                t.last_pong = now
                log.info("%s ready", name)
                if self._started and not t.started and not self._stopping:
                    self._start(t)
            elif msg.type == "pong":
                t.last_pong = now
                t.counters = msg.body["counters"]
                if t.state == "late":
                    log.info("%s answers again", name)
                    t.state = "running"
                t.late_logged = False
            elif msg.type == "bye":
                t.bye = True
                t.counters = msg.body["counters"]

    def _request_replay(self, t: TaskProc, cancel: bool = False) -> None:
        """Task *t* died and is restarted: ask the producers of what it consumes to send it
        their replay once it is back (each producer once, naming its channels that *t*
        reads); *cancel*: it will not be back, forget it.  A producer that is not connected
        now starts its replay when it sees the restarted task's replay subscription."""
        if not t.spec.replay:
            return
        by_producer: dict[str, list[str]] = {}
        for channel in active_subscriptions(t.spec, self.config):
            by_producer.setdefault(CHANNELS[channel].producer, []).append(channel)
        for name, channels in by_producer.items():
            producer = self.by_name.get(name)
            if producer is not None and producer.alive() and producer.answered:
                self.control.send(
                    name,
                    "replay",
                    {
                        "reason": f"{t.spec.name} {'failed' if cancel else 'restarts'}",
                        "channels": [] if cancel else channels,
                        "consumer": t.spec.name,
                    },
                )

    def _start(self, t: TaskProc) -> None:
        if self.control.send(t.spec.name, "start", {}):
            t.started = True
            t.state = "running"

    def _ping_and_judge(self, now: float) -> None:
        self.ping_key += 1
        for t in self.tasks:
            if not t.alive() or t.state in ("restarting", "failed"):
                continue
            self.control.send(t.spec.name, "ping", {"key": self.ping_key})
            age = now - t.last_pong  # since its start until it first answers
            limit = (
                min(getattr(self.config, t.spec.health_fatal), self.config.health_fatal_s)
                if t.answered
                else self.config.ready_timeout_s
            )
            if age > limit:
                what = "silent" if t.answered else "not connected"
                log.error("%s %s for %.1f s: killing it", t.spec.name, what, age)
                if isinstance(t.proc, ForkedProc) and t.proc.pid is None and self.zygote is not None:
                    # Never forked: the zygote, not the task, is stuck.
                    self.zygote.hung(f"did not fork {t.spec.name} within {age:.1f} s")
                assert t.proc is not None  # alive
                t.proc.kill()  # reaped by poll() later; the restart waits for that
                self._schedule_restart(
                    t, now, "stopped answering health pings" if t.answered else "hung before it started"
                )
            elif t.started and age > self.config.health_warn_s and t.state == "running":
                t.state = "late"
                if not t.late_logged:
                    log.warning("%s late: last health reply %.1f s ago", t.spec.name, age)
                    t.late_logged = True

    def _publish_health(self, now: float, stopping: bool) -> None:
        """The health table; *stopping*: the last one, told to the sinks as they stop, with
        their own state as it ends in a clean stop (``stopped``)."""
        self.health_pub.poll_subscriptions()
        tasks = [
            {
                "name": t.spec.name,
                "state": "stopped" if stopping and t.spec.sink and t.alive() else t.state,
                "pid": t.pid,
                "restarts": t.restarts,
                "age_s": round(now - t.last_pong, 3),
                "counters": t.counters,
            }
            for t in self.tasks
        ]
        self.health_pub.publish(
            "health", {"tasks": tasks, "t_sc_s": self.sc_now(), "uptime_s": now - self.t0_mono_s, "stopping": stopping}
        )

    def _wait(self, timeout_s: float) -> None:
        events = dict(self.poller.poll(max(0, int(math.ceil(timeout_s * 1000)))))
        if self.signals.read_fd in events:
            self.signals.drain()
        if self.zygote is not None:
            self._service_zygote()
        if self.control.socket in events:
            self._handle_control(time.monotonic())

    # -- main loop ---------------------------------------------------------------------------
    _started = False
    _stopping = False

    def _stop_reason(self, deadline: float) -> str | None:
        if self.stop_requested is not None:
            return self.stop_requested
        if time.monotonic() >= deadline:
            return "timeout"
        return None

    def run(self) -> int:
        """Run until the timeout or a stop signal; stop the tree; 0, or 1 if no final status
        could be written."""
        deadline = self.t0_mono_s + self.timeout_s
        reason = self._stop_reason(deadline)
        self.signals.wake_on_child_exit()  # a task's exit is seen at once
        if reason is None:
            self.start_zygote()
        for t in self.tasks:
            if reason is not None:
                break
            self.spawn(t)
            reason = self._stop_reason(deadline)
        # Start barrier: every task ready (or the ready timeout), then everyone starts at once.
        ready_deadline = time.monotonic() + self.config.ready_timeout_s
        while reason is None:
            now = time.monotonic()
            self._check_exits(now, stopping=False)
            self._do_restarts(now)
            if all(t.ready or t.state == "failed" for t in self.tasks) or now > ready_deadline:
                break
            self._wait(0.05)
            reason = self._stop_reason(deadline)
        if reason is None:
            not_ready = [t.spec.name for t in self.tasks if not t.ready]
            if not_ready:
                log.warning("starting without %s (not ready in time)", not_ready)
            self._started = True
            for t in self.tasks:
                if t.ready:
                    self._start(t)
            log.info("all tasks started")
        next_ping = next_sync = time.monotonic()
        while reason is None:
            now = time.monotonic()
            self._check_exits(now, stopping=False)
            self._do_restarts(now)
            z = self.zygote
            if (
                z is not None
                and self.subreaper
                and not self.config.keep_zygote
                and not z.finishing
                and not z.gone
                and not z.pending
            ):
                z.finish()  # every task is forked: its memory goes, restarts are spawned
            if now >= next_ping:
                self._ping_and_judge(now)
                self._publish_health(now, stopping=False)
                next_ping = now + self.config.ping_period_s
            if now >= next_sync:  # the supervisor's log survives a power cut too
                sync_logs()
                next_sync = now + self.config.log_fsync_period_s
            wait = min(next_ping, deadline) - time.monotonic()
            restart_times = [
                t.next_restart_at for t in self.tasks if t.state == "restarting" and t.next_restart_at is not None
            ]
            if restart_times:
                wait = min(wait, min(restart_times) - time.monotonic())
            self._wait(max(0.0, min(wait, 0.5)))
            reason = self._stop_reason(deadline)
        log.info("stopping: %s", reason)
        return 0 if self.stop_tree(reason) else 1

    def _stop_group(
        self, group: list[TaskProc], reason: str, deadline_s: float, each_round: Callable[[], None] | None = None
    ) -> None:
        """Tell *group* to stop (again every STOP_RESEND_S) until it has, or kill it at
        *deadline_s*; *each_round* is called before each round's stops are sent."""
        t_end = time.monotonic() + deadline_s
        next_send = 0.0
        told: dict[str, tuple] = {}  # task -> (connected, pid) when last told to stop
        while True:
            alive = [t for t in group if t.alive()]
            now = time.monotonic()
            if not alive or now >= t_end:
                break
            # Again every STOP_RESEND_S, and at once to a task that has just connected or
            # been forked (it missed the last one: a task still starting ignores SIGTERM
            # until its handlers are in; its stop must not wait for the next round).
            if now >= next_send or any(told.get(t.spec.name) != (t.answered, t.pid) for t in alive):
                if each_round is not None:
                    each_round()
                for t in alive:
                    self.control.send(t.spec.name, "stop", {"reason": reason})
                    if not t.answered:  # still starting, not connected: it holds nothing yet
                        assert t.proc is not None  # alive
                        try:
                            t.proc.send_signal(signal.SIGTERM)
                        except ProcessLookupError:
                            pass
                    told[t.spec.name] = (t.answered, t.pid)
                next_send = now + STOP_RESEND_S
            self._wait(min(0.02, max(0.0, t_end - now)))
        for t in group:
            if t.alive():
                log.error("%s did not stop within %.1f s: killing it", t.spec.name, deadline_s)
                assert t.proc is not None  # alive
                t.proc.kill()
        t_reap = time.monotonic() + REAP_S  # one shared bound for reaping the whole group
        while any(t.alive() for t in group) and time.monotonic() < t_reap:
            self._wait(0.01)
        for t in group:
            if t.proc is None:
                if t.state not in ("failed",):
                    t.state = "stopped"  # never started
                continue
            rc = t.exit_status()
            if t.state not in ("failed",):
                t.state = "stopped" if rc == 0 else "exited"
            log.info("%s stopped (exit status %s)", t.spec.name, rc)

    def stop_tree(self, reason: str) -> bool:
        """Stop every task in order; True if the final status (flag ``stopping``) is written."""
        self._stopping = True
        now = time.monotonic()
        for t in self.tasks:
            if t.state == "restarting":  # died, waiting out its backoff: it did not stop cleanly
                t.state = "exited"
                t.next_restart_at = None
        producers = [t for t in self.tasks if not t.spec.sink]
        sinks = [t for t in self.tasks if t.spec.sink]
        self._stop_group(producers, reason, self.config.stop_deadline_producers_s)
        # The sinks record who stopped how: the last table, published again with each round
        # of stops (a consumer's conflating pipe can hold a message until the next one comes:
        # bus/channels.py), so it is there when they take what is queued.
        self._publish_health(now, stopping=True)
        self._stop_group(
            sinks,
            reason,
            self.config.stop_deadline_sinks_s,
            each_round=lambda: self._publish_health(time.monotonic(), stopping=True),
        )
        reporter = self.by_name.get("status_reporter")
        ok = reporter is not None and reporter.bye and bool(reporter.counters.get("final_status_written"))
        writer = self.by_name.get("batch_writer")
        self._end_zygote()
        self._recover_batches(writer)
        # The final status must hold every task's final state, and downlink_failed if the
        # writer did not finish (it failed at its own stop, after the reporter's last status,
        # or did not stop cleanly: its final records are lost).  The reporter's holds the
        # last health table's (the sinks as in a clean stop): written again unless it is so.
        lost = writer is not None and (
            bool(writer.counters.get("downlink_failed")) or writer.proc is not None and writer.state != "stopped"
        )
        extra = st.FLAG_DOWNLINK_FAILED if lost else 0
        if not (ok and self._final_status_says(extra)):
            ok = self.write_final_status(reason, extra) or ok
        self.close()
        return ok

    def _final_status_says(self, flags: int) -> bool:
        """The status file is this run's final status, with *flags* and every task's final
        state as the supervisor knows it."""
        try:
            s = st.decode_status(read_small_file(self.paths.status_file, st.SIZE))
        except (OSError, st.StatusError):
            return False
        want = flags | st.FLAG_STOPPING | (st.FLAG_TASK_FAILED if any(t.state == "failed" for t in self.tasks) else 0)
        states = {n: i for i, n in enumerate(st.TASK_STATES)}
        return (
            s["run"] == self.run_number
            and s["flags"] & want == want
            and all(
                s[f"task{k}_id"] == t.spec.task_id and s[f"task{k}_state"] == states.get(t.state, -1)
                for k, t in enumerate(self.tasks[: st.MAX_TASKS])
            )
        )

    def _end_zygote(self) -> None:
        """End the zygote, and see dead every task it forked after that task was stopped
        (killed on arrival), before the batch recovery and the final status: a status
        reporter forked late writes its first status at once, a batch writer opens a
        ``.part`` - after the final status, the host would read a run that never stopped."""
        z = self.zygote
        if z is None:
            return
        if z.read_fd >= 0:  # (a closed pipe left in the poller would wake every poll at once)
            self.poller.unregister(z.read_fd)
        z.close()
        late = [
            t.proc
            for t in self.tasks
            if isinstance(t.proc, ForkedProc) and t.proc.kill_on_arrival and t.proc.pid is not None
        ]
        t_end = time.monotonic() + REAP_S
        while any(p.pid is not None and process_running(p.pid) for p in late) and time.monotonic() < t_end:
            self._wait(0.01)
        for p in late:
            if p.pid is not None and process_running(p.pid):
                log.error("task forked during the stop (pid %d) still running after its SIGKILL", p.pid)

    def _recover_batches(self, writer: TaskProc | None) -> None:
        """Recover the ``.part`` batch files the writer left (it was killed, or stopped before it
        had opened its directory, where a power cut's ``.part`` waited), as the next start
        would: the host then finds every record of the run in complete files at once."""
        if writer is None:
            return
        store = store_for(self.config, self.paths.home, self.run_number, self.t0_sc_s, self.t0_mono_s, log)
        if not store.leftover_parts():
            return
        try:
            report = store.open()
        except OSError as exc:
            log.error("cannot recover the .part batch files the batch writer left: %s", exc)
            return
        log.warning("recovered %d .part batch files the batch writer left", len(report.recovered))

    def write_final_status(self, reason: str, extra_flags: int = 0) -> bool:
        """The final status when the status reporter's is missing or untrue: the last status
        file of this run (estimates, counters) if there is one, with flag ``stopping`` (and
        *extra_flags*), the task states as the supervisor knows them and validity for "now";
        the info file with it."""
        paths = self.paths
        s = None
        try:
            old = st.decode_status(read_small_file(paths.status_file, st.SIZE))
            if old["run"] == self.run_number:
                s = old
        except (OSError, st.StatusError):
            pass
        if s is None:
            s = st.empty_status()
            s["run"] = self.run_number
        now_sc = self.sc_now()
        s["seq"] = int(s.get("seq", 0)) + 1
        s["t_sc_s"] = now_sc
        s["uptime_s"] = time.monotonic() - self.t0_mono_s
        flags = int(s.get("flags", 0)) | st.FLAG_STOPPING | config_source.config_flags(self.config) | extra_flags
        for k in range(st.MAX_TASKS):
            s[f"task{k}_id"] = s[f"task{k}_state"] = s[f"task{k}_restarts"] = s[f"task{k}_age_ds"] = 0
        states = {n: i for i, n in enumerate(st.TASK_STATES)}
        for k, t in enumerate(self.tasks[: st.MAX_TASKS]):
            s[f"task{k}_id"] = t.spec.task_id
            s[f"task{k}_state"] = states.get(t.state, 0)
            s[f"task{k}_restarts"] = min(255, t.restarts)
            flags |= st.FLAG_TASK_FAILED if t.state == "failed" else 0
        s["flags"] = flags
        measure_storage(paths, s)
        s["flags"] = assess(
            s,
            now_sc,
            self.config,
            att_has_reference=s["att_quality"] != st.ESTIMATE_QUALITY.index("rates_only"),
            said_acquiring=said_acquiring_in(s),
        )
        try:
            write_status_pair(paths, s, config_source.rejection_note())
        except OSError as exc:
            log.error("cannot write the final status: %s", exc)
            say(f"pygnc: cannot write the final status ({exc})")
            return False
        log.info("final status written by the supervisor (%s)", reason)
        return True

    def close(self) -> None:
        if self.zygote is not None:
            self.zygote.close()
        self.health_pub.close()
        self.control.close()
        self.zctx.term()
        sync_logs()


def _log_dir(paths: Paths, config: Config, run_dir: Path) -> tuple[int, Path, str]:
    """(run number, log directory, note): ``pygnc_logs/run_NNNNN``, or - when that cannot be
    made (a full disk, a read-only home) - a directory in the private run directory, so the
    tree still runs and writes its status (logs then last only until exit; the status
    reporter flags ``logs_limited``)."""
    try:
        return create_run_dir(paths.log_root, config.log_total_bytes, config.bus_log_max_bytes + 4 * 1024 * 1024)
    except OSError as exc:
        fallback = run_dir / "logs"
        fallback.mkdir()
        try:
            runs = list_runs(paths.log_root)
        except OSError:
            runs = []
        number = runs[-1][0] + 1 if runs else 1
        return (
            number,
            fallback,
            (
                f"cannot create a log directory in {paths.log_root} ({exc.strerror or exc}): "
                f"logging to {fallback}, which is removed at exit"
            ),
        )


def missing_flight_packages() -> list[str]:
    """The pip names of the :data:`FLIGHT_PACKAGES` this Python cannot import (looked up,
    not imported)."""
    import importlib.util

    missing = []
    for module, name in FLIGHT_PACKAGES.items():
        try:
            if importlib.util.find_spec(module) is None:
                missing.append(name)
        except (ImportError, ValueError):
            missing.append(name)
    if "zmq" not in globals() and "pyzmq" not in missing:  # found, yet it did not import
        missing.append("pyzmq")
    return missing


def check_config_command(argv: list[str], prog: str) -> int:
    """``--check-config FILE``: 0 if *FILE* would be accepted, 2 if not; the problems (or
    an accepted file's warnings) on stderr, one per line, ``FILE:LINE: key message``."""
    if len(argv) != 1:
        say(f"{prog}: --check-config takes one file\n{USAGE.format(prog=prog)}")
        return 2
    ok, lines = config_source.check_file(argv[0])
    for line in lines:
        say(line)
    say(f"{config_source.shown_path(argv[0])}: {'accepted' if ok else 'REJECTED'}")
    return 0 if ok else 2


def write_start_status(paths: Paths, t_sc: float, t0_mono: float, sel: config_source.Selection) -> str | None:
    """Replace the previous run's status and info files at once with a status of this
    start - run 0 (its number is not known yet), no estimate, the configuration's flags -
    so that nothing stale looks current; None, or why it could not be written (then the
    previous ones are deleted, if they can be: no status is better than a stale one)."""
    s = st.empty_status()
    s["t_sc_s"] = t_sc
    s["uptime_s"] = time.monotonic() - t0_mono
    s["flags"] = config_source.config_flags(sel.config, {config_source.REJECTED_ENV: sel.note})
    measure_storage(paths, s)
    try:
        write_status_pair(paths, s, sel.note)
    except OSError as exc:
        for path in (paths.status_file, paths.info_file):
            try:
                os.unlink(path)
            except OSError:
                pass
        return f"{exc} (the previous ones deleted)"
    return None


def _hand_to_tasks(run_dir: Path, sel: config_source.Selection) -> None:
    """Every task (a restarted one too) loads the bytes the supervisor accepted, from the
    private run directory, and learns of a rejection (environment, inherited)."""
    snapshot = run_dir / "config.toml"
    try:
        snapshot.write_bytes(sel.data)
        os.environ["PYGNC_CONFIG"] = str(snapshot)
    except OSError:
        os.environ["PYGNC_CONFIG"] = os.path.abspath(sel.path) if sel.path is not None else os.devnull
    if sel.note:
        os.environ[config_source.REJECTED_ENV] = sel.note
    else:
        os.environ.pop(config_source.REJECTED_ENV, None)


def main(
    argv: list[str] | None = None,
    stop_signals: StopSignals | None = None,
    prog: str = "main.py",
    t0_mono_s: float | None = None,
) -> int:
    """The supervisor's program; its exit status.  *t0_mono_s*: when the process started
    (``CLOCK_MONOTONIC``, s; default now), the origin of the status's uptime."""
    t0_mono = time.monotonic() if t0_mono_s is None else t0_mono_s
    signals = stop_signals or StopSignals()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        try:
            print(USAGE.format(prog=prog), flush=True)
        except (OSError, ValueError):
            return 1
        return 0
    if argv[:1] == ["--check-config"]:
        return check_config_command(argv[1:], prog)
    paths = Paths.from_env()
    try:
        timeout_min, t_sc = parse_args(argv)
        check_home(paths.home)
    except UsageError as exc:
        say(f"{prog}: {exc}\n{USAGE.format(prog=prog)}")
        return 2
    # One run per home: a second start touches nothing of the first (docs/interface.md).
    try:
        lock = run_lock.acquire(paths.home, t_sc)
    except run_lock.AlreadyRunning as exc:
        say_already_running(prog, exc)
        return 3
    try:
        # The configuration: the uplinked file if it passes, else the last accepted one or
        # the defaults - a bad uplink never stops navigation (pygnc.config_source).
        sel = config_source.select(paths)
        # Before anything else can fail: the previous run's status and info are replaced.
        start_status_error = write_start_status(paths, t_sc, t0_mono, sel)
        missing = missing_flight_packages()
        if missing:
            say(
                f"{prog}: cannot start: {', '.join(missing)} not installed for {sys.executable} "
                f"(the flight code needs: pip install {' '.join(FLIGHT_PACKAGES.values())})"
            )
            return 1
        try:
            run_dir, stale = make_run_dir()
        except OSError as exc:
            say(f"{prog}: cannot create the private socket directory: {exc}")
            return 1
        _hand_to_tasks(run_dir, sel)
        if start_status_error:
            sel.notes.append((logging.ERROR, f"cannot replace the previous status files: {start_status_error}"))
        if lock.note:
            sel.notes.append((logging.WARNING, lock.note))
        config = sel.config
        # The stream task changes the terminal's modes (echo off, ...): put them back at exit
        # whatever happened to it (bash adopts the modes a job that exits normally leaves).
        tty_modes = terminal.save_modes(0) if config.stream_enabled else None
        try:
            return _run(prog, paths, config, run_dir, stale, t0_mono, timeout_min, t_sc, signals, sel.notes)
        finally:
            terminal.restore_modes(0, tty_modes)
    finally:
        # The stop is done: a further Ctrl-C has nothing to stop.  Ignored, it cannot end
        # the interpreter's teardown either (which puts the default handlers back: exit
        # status 130 for a run that stopped in order).
        ignore_stop_signals()
        lock.release()


def _run(
    prog: str,
    paths: Paths,
    config: Config,
    run_dir: Path,
    stale: list[Path],
    t0_mono: float,
    timeout_min: float,
    t_sc: float,
    signals: StopSignals,
    notes: Iterable[tuple[int, str]] = (),
) -> int:
    try:
        run_number, log_dir, note = _log_dir(paths, config, run_dir)
        setup_task_logging(
            log_dir,
            "supervisor",
            lambda: t_sc + time.monotonic() - t0_mono,
            echo_stderr=True,
            min_free_bytes=config.log_reserve_bytes,
        )
    except OSError as exc:
        say(f"{prog}: cannot set up logging: {exc}")
        shutil.rmtree(run_dir, ignore_errors=True)
        return 1
    if note:
        log.warning("%s", note)
    for level, text in notes:
        log.log(level, "%s", text)
    for text in config_source.reflection_warnings(config):
        log.warning("%s", text)
    if stale:
        log.info("removed %d stale socket directories of dead runs: %s", len(stale), ", ".join(p.name for p in stale))
    log.info(
        "run %d: timeout %.3f min, spacecraft time %.3f at CLOCK_MONOTONIC %.6f, home %s, sockets in %s",
        run_number,
        timeout_min,
        t_sc,
        t0_mono,
        paths.home,
        run_dir,
    )
    flight_dir = Path(__file__).resolve().parent.parent
    version = (
        (flight_dir / "VERSION").read_text().replace("\n", "; ").strip("; ")
        if (flight_dir / "VERSION").exists()
        else "development tree (no VERSION file)"
    )
    log.info("flight code %s: %s", flight_dir, version)
    sup = None
    try:
        sup = Supervisor(timeout_min, t_sc, t0_mono, config, paths, run_number, log_dir, run_dir, signals)
        # On stderr: stdout carries only the stream's frames (docs/interface.md, Streaming).
        say(f"pygnc run {run_number} started; logs in {log_dir}")
        rc = sup.run()
        say(f"pygnc run {run_number} stopped")
        return rc
    except Exception:
        log.exception("supervisor failed")
        if sup is not None:
            for t in sup.tasks:
                if t.alive():
                    assert t.proc is not None  # alive
                    t.proc.kill()
            if sup.zygote is not None:
                sup.zygote.kill()
            try:
                sup.write_final_status("supervisor failed")
            except Exception:  # noqa: BLE001 - already failing; the log has the first error
                pass
        return 1
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        sync_logs()
