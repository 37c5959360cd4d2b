"""The supervisor: ``main.py <timeout_minutes> <spacecraft_time_s>``.

Starts every enabled task of :data:`pygnc.tasks.table.TASKS` as its own OS process, holds them at
a start barrier until all are ready, pings them (warn when a reply is late, kill and
restart when it is very late), restarts a crashed task with bounded retries and
exponential backoff, publishes the health table, and stops the tree in order when the
timeout expires or on SIGINT/SIGTERM:

1. producers (ingest, estimators) get ``stop``; they finish their step, publish final
   messages and exit; after ``stop_deadline_producers_s`` stragglers get SIGKILL;
2. sinks (status reporter) get ``stop``; they drain, write final files and exit; after
   ``stop_deadline_sinks_s`` stragglers get SIGKILL;
3. the private socket directory is removed and the supervisor exits 0.

No busy loop: the only wait is a ZeroMQ poll with a timeout, woken at once by signals
through ``signal.set_wakeup_fd``.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from .bus.messages import DecodeCounters, Encoder
from .bus.transport import ControlServer, Publisher
from .config import Config, Paths, load_config
from .logs import create_run_dir, setup_task_logging, sync_logs
from .signals import StopSignals
from .bus.channels import CHANNELS
from .tasks.table import TaskSpec, active_subscriptions, enabled_tasks, expected_subscribers

log = logging.getLogger("supervisor")

USAGE = """usage: main.py <timeout_minutes> <spacecraft_time_s>

  timeout_minutes    stop by itself after this many minutes (> 0; decimals allowed)
  spacecraft_time_s  the spacecraft clock now, unix seconds (>= 0)

Environment: PYGNC_HOME (default ~) holds sense.bin, range/, and receives
pygnc_status.bin, pygnc_info.txt and pygnc_logs/; PYGNC_CONFIG names a TOML file
overriding configuration defaults."""


class UsageError(ValueError):
    pass


def parse_args(argv: list[str]) -> tuple[float, float]:
    if len(argv) != 2:
        raise UsageError(f"expected 2 arguments, got {len(argv)}")
    try:
        timeout_min = float(argv[0])
        t_sc = float(argv[1])
    except ValueError as exc:
        raise UsageError(f"not a number: {exc}") from None
    if not math.isfinite(timeout_min) or timeout_min <= 0:
        raise UsageError(f"timeout_minutes must be > 0, got {argv[0]}")
    if not math.isfinite(t_sc) or t_sc < 0:
        raise UsageError(f"spacecraft_time_s must be >= 0, got {argv[1]}")
    return timeout_min, t_sc


@dataclass
class TaskProc:
    spec: TaskSpec
    proc: subprocess.Popen | None = None
    state: str = "starting"
    restarts: int = 0
    ready: bool = False
    started: bool = False
    bye: bool = False
    last_pong: float = 0.0
    late_logged: bool = False
    next_restart_at: float | None = None
    counters: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _ignore_sigint_until_handler_installed():  # runs in the child between fork and exec
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Supervisor:
    def __init__(self, timeout_min: float, t0_sc_s: float, t0_mono_s: float, config: Config,
                 paths: Paths, run_number: int, log_dir: Path, run_dir: Path):
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

        self.signals = StopSignals(self._on_signal)

        self.zctx = zmq.Context()
        self.control = ControlServer(self.zctx, run_dir, self.decode_counters)
        self.health_pub = Publisher(self.zctx, "health", run_dir, Encoder("supervisor"),
                                    expected_subscribers("health", config))
        self.poller = zmq.Poller()
        self.poller.register(self.control.socket, zmq.POLLIN)
        self.poller.register(self.signals.read_fd, zmq.POLLIN)

    # -- signals -----------------------------------------------------------------------
    def _on_signal(self, signum):  # only sets a flag
        self.stop_requested = signal.Signals(signum).name

    def sc_now(self) -> float:
        return self.t0_sc_s + (time.monotonic() - self.t0_mono_s)

    # -- processes -----------------------------------------------------------------------
    def spawn(self, t: TaskProc) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(self.flight_dir) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYGNC_HOME"] = str(self.paths.home)
        cmd = [sys.executable, "-m", "pygnc.tasks", t.spec.name, "--run-dir", str(self.run_dir),
               "--log-dir", str(self.log_dir), "--run-number", str(self.run_number),
               "--t0-sc", repr(self.t0_sc_s), "--t0-mono", repr(self.t0_mono_s)]
        t.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, cwd=str(self.flight_dir),
                                  preexec_fn=_ignore_sigint_until_handler_installed)
        t.ready = t.started = t.bye = False
        t.state = "starting"
        t.last_pong = time.monotonic()
        t.late_logged = False
        t.next_restart_at = None
        log.info("started %s (pid %d)", t.spec.name, t.proc.pid)

    def _check_exits(self, now: float, stopping: bool) -> None:
        for t in self.tasks:
            if t.proc is None or t.state in ("failed", "restarting", "exited", "stopped"):
                continue
            rc = t.proc.poll()
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
            return
        delay = self.config.restart_backoff_s * (2 ** t.restarts)
        t.state = "restarting"
        t.next_restart_at = now + delay
        log.warning("%s %s; restart %d of %d in %.2f s", t.spec.name, why, t.restarts + 1,
                    self.config.max_restarts, delay)

    def _do_restarts(self, now: float) -> None:
        for t in self.tasks:
            if t.state == "restarting" and t.next_restart_at is not None and now >= t.next_restart_at:
                if t.alive():
                    t.proc.kill()
                    try:
                        t.proc.wait(timeout=1.0)
                    except subprocess.TimeoutExpired:
                        log.error("%s (pid %d) did not die on SIGKILL within 1 s", t.spec.name, t.pid)
                t.restarts += 1
                self.spawn(t)

    # -- control -----------------------------------------------------------------------------
    def _handle_control(self, now: float) -> None:
        while True:
            got = self.control.recv()
            if got is None:
                if self.control.socket.poll(0, zmq.POLLIN):
                    continue
                return
            name, msg = got
            t = self.by_name.get(name)
            if msg is None or t is None:
                continue
            if msg.type == "ready":
                t.ready = True
                t.last_pong = now
                log.info("%s ready", name)
                if self._started and not t.started and not self._stopping:
                    self._start(t)
                    if t.restarts:
                        self._request_replay(t)
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

    def _request_replay(self, t: TaskProc) -> None:
        """Ask the producers of what restarted task *t* consumes to publish their stream again."""
        for channel in active_subscriptions(t.spec, self.config):
            producer = self.by_name.get(CHANNELS[channel].producer)
            if producer is not None and producer.alive() and producer.started:
                self.control.send(producer.spec.name, "replay", {"reason": f"{t.spec.name} restarted"})

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
            age = now - t.last_pong
            if t.started and age > self.config.health_fatal_s:
                log.error("%s silent for %.1f s: killing it", t.spec.name, age)
                t.proc.kill()
                try:
                    t.proc.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    pass
                self._schedule_restart(t, now, "stopped answering health pings")
            elif t.started and age > self.config.health_warn_s and t.state == "running":
                t.state = "late"
                if not t.late_logged:
                    log.warning("%s late: last health reply %.1f s ago", t.spec.name, age)
                    t.late_logged = True

    def _publish_health(self, now: float, stopping: bool) -> None:
        self.health_pub.poll_subscriptions()
        tasks = [{"name": t.spec.name, "state": t.state, "pid": t.pid, "restarts": t.restarts,
                  "age_s": round(now - t.last_pong, 3), "counters": t.counters} for t in self.tasks]
        self.health_pub.publish("health", {"tasks": tasks, "t_sc_s": self.sc_now(),
                                           "uptime_s": now - self.t0_mono_s, "stopping": stopping})

    def _wait(self, timeout_s: float) -> None:
        events = dict(self.poller.poll(max(0, int(timeout_s * 1000))))
        if self.signals.read_fd in events:
            self.signals.drain()
        if self.control.socket in events:
            self._handle_control(time.monotonic())

    # -- main loop ---------------------------------------------------------------------------
    _started = False
    _stopping = False

    def run(self) -> int:
        deadline = self.t0_mono_s + self.timeout_s
        for t in self.tasks:
            self.spawn(t)
        # Start barrier: every task ready (or the ready timeout), then everyone starts at once.
        ready_deadline = time.monotonic() + self.config.ready_timeout_s
        while self.stop_requested is None:
            now = time.monotonic()
            self._check_exits(now, stopping=False)
            self._do_restarts(now)
            if all(t.ready or t.state == "failed" for t in self.tasks) or now > ready_deadline or now > deadline:
                break
            self._wait(0.05)
        if self.stop_requested is None:
            not_ready = [t.spec.name for t in self.tasks if not t.ready]
            if not_ready:
                log.warning("starting without %s (not ready in time)", not_ready)
            self._started = True
            for t in self.tasks:
                if t.ready:
                    self._start(t)
            log.info("all tasks started")
        next_ping = next_sync = time.monotonic()
        reason = None
        while True:
            now = time.monotonic()
            if self.stop_requested is not None:
                reason = self.stop_requested
                break
            if now >= deadline:
                reason = "timeout"
                break
            self._check_exits(now, stopping=False)
            self._do_restarts(now)
            if now >= next_ping:
                self._ping_and_judge(now)
                self._publish_health(now, stopping=False)
                next_ping = now + self.config.ping_period_s
            if now >= next_sync:  # the supervisor's log survives a power cut too
                sync_logs()
                next_sync = now + self.config.log_fsync_period_s
            wait = min(next_ping, deadline) - time.monotonic()
            restart_times = [t.next_restart_at for t in self.tasks if t.state == "restarting"]
            if restart_times:
                wait = min(wait, min(restart_times) - time.monotonic())
            self._wait(max(0.0, min(wait, 0.5)))
        log.info("stopping: %s", reason)
        self.stop_tree(reason)
        return 0

    def _stop_group(self, group: list[TaskProc], reason: str, deadline_s: float) -> None:
        for t in group:
            if t.alive():
                self.control.send(t.spec.name, "stop", {"reason": reason})
        t_end = time.monotonic() + deadline_s
        while any(t.alive() for t in group) and time.monotonic() < t_end:
            self._wait(0.02)
        for t in group:
            if t.alive():
                log.error("%s did not stop within %.1f s: killing it", t.spec.name, deadline_s)
                t.proc.kill()
        t_reap = time.monotonic() + 1.0  # one shared bound for reaping the whole group
        for t in group:
            if t.proc is not None:
                try:
                    rc = t.proc.wait(timeout=max(0.0, t_reap - time.monotonic()))
                except subprocess.TimeoutExpired:
                    rc = None
                if t.state not in ("failed",):
                    t.state = "stopped" if rc == 0 else "exited"
                log.info("%s stopped (exit status %s)", t.spec.name, rc)

    def stop_tree(self, reason: str) -> None:
        self._stopping = True
        now = time.monotonic()
        for t in self.tasks:
            if t.state == "restarting":  # waiting out its backoff: stopped, not failed
                t.state = "stopped"
                t.next_restart_at = None
        producers = [t for t in self.tasks if not t.spec.sink]
        sinks = [t for t in self.tasks if t.spec.sink]
        self._stop_group(producers, reason, self.config.stop_deadline_producers_s)
        self._publish_health(now, stopping=True)  # the sinks record who stopped how
        self._stop_group(sinks, reason, self.config.stop_deadline_sinks_s)
        self.close()

    def close(self) -> None:
        self.health_pub.close()
        self.control.close()
        self.zctx.term()
        sync_logs()


def main(argv: list[str] | None = None, early_signals: list[int] | None = None) -> int:
    t0_mono = time.monotonic()
    argv = sys.argv[1:] if argv is None else argv
    try:
        timeout_min, t_sc = parse_args(argv)
    except UsageError as exc:
        print(f"main.py: {exc}\n{USAGE}", file=sys.stderr)
        return 2
    try:
        config = load_config()
    except (OSError, ValueError) as exc:
        print(f"main.py: bad configuration: {exc}", file=sys.stderr)
        return 2
    paths = Paths.from_env()
    paths.home.mkdir(parents=True, exist_ok=True)
    run_number, log_dir = create_run_dir(paths.log_root, config.log_total_bytes,
                                         config.bus_log_max_bytes + 4 * 1024 * 1024)
    setup_task_logging(log_dir, "supervisor", lambda: t_sc + time.monotonic() - t0_mono, echo_stderr=True)
    base = os.environ.get("XDG_RUNTIME_DIR")
    run_dir = Path(tempfile.mkdtemp(prefix="pygnc-", dir=base if base and os.path.isdir(base) else None))
    os.chmod(run_dir, 0o700)
    log.info("run %d: timeout %.3f min, spacecraft time %.3f, home %s, sockets in %s",
             run_number, timeout_min, t_sc, paths.home, run_dir)
    flight_dir = Path(__file__).resolve().parent.parent
    version = (flight_dir / "VERSION").read_text().replace("\n", "; ").strip("; ") \
        if (flight_dir / "VERSION").exists() else "development tree (no VERSION file)"
    log.info("flight code %s: %s", flight_dir, version)
    sup = None
    try:
        sup = Supervisor(timeout_min, t_sc, t0_mono, config, paths, run_number, log_dir, run_dir)
        if early_signals:
            sup.stop_requested = signal.Signals(early_signals[0]).name
        print(f"pygnc run {run_number} started; logs in {log_dir}", flush=True)
        rc = sup.run()
        print(f"pygnc run {run_number} stopped", flush=True)
        return rc
    except Exception:
        log.exception("supervisor failed")
        if sup is not None:
            for t in sup.tasks:
                if t.alive():
                    t.proc.kill()
        return 1
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        sync_logs()
