"""The supervisor's stop, in-process with stand-ins for what it drives: waiting for the
tasks the zygote forked during the stop is a wait, not a spin."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

import zmq

from pygnc import supervisor as sup_mod
from pygnc.zygote import ForkedProc


class _ClosingZygote:
    """Does to its pipe what Zygote.close does: closes it, read_fd -1."""

    def __init__(self) -> None:
        self.read_fd, self._w = os.pipe()

    def close(self, timeout_s: float = 1.0) -> None:
        os.close(self.read_fd)
        os.close(self._w)
        self.read_fd = -1

    def service(self) -> None:
        pass


def test_waiting_for_late_forks_after_the_zygote_is_closed_does_not_spin(monkeypatch):
    """Review of issue 48's stop: the closed zygote pipe stayed in the poller, which then
    woke at once on every poll - the wait for late forks (up to 1 s) ran at 100 % CPU."""
    s = sup_mod.Supervisor.__new__(sup_mod.Supervisor)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sig_r, sig_w = os.pipe()
    try:
        s.poller = zmq.Poller()
        s.poller.register(sock, zmq.POLLIN)
        s.poller.register(sig_r, zmq.POLLIN)
        s.signals = SimpleNamespace(read_fd=sig_r, drain=lambda: None)
        s.control = SimpleNamespace(socket=sock)
        z = _ClosingZygote()
        s.poller.register(z.read_fd, zmq.POLLIN)
        s.zygote = z  # type: ignore[assignment]
        late = ForkedProc.__new__(ForkedProc)
        late.pid, late.kill_on_arrival = 4242, True
        s.tasks = [SimpleNamespace(proc=late)]  # type: ignore[list-item]
        dead = threading.Event()
        threading.Timer(0.3, dead.set).start()  # the late task dies 0.3 s into the wait
        monkeypatch.setattr(sup_mod, "process_running", lambda pid: not dead.is_set())
        calls = []
        real_wait = sup_mod.Supervisor._wait
        monkeypatch.setattr(sup_mod.Supervisor, "_service_zygote", lambda self: None)
        monkeypatch.setattr(sup_mod.Supervisor, "_wait", lambda self, t: calls.append(t) or real_wait(self, t))
        t0 = time.monotonic()
        s._end_zygote()
        assert dead.is_set() and time.monotonic() - t0 >= 0.3
        assert len(calls) < 100, len(calls)  # ~30 waits of 10 ms; it was ~17 000
    finally:
        sock.close(linger=0)
        ctx.term()
        os.close(sig_r)
        os.close(sig_w)


class _Proc:
    """A task process that exits once it has been told to stop *rounds* times."""

    def __init__(self, told: list, rounds: int) -> None:
        self.pid, self.told, self.rounds = 4343, told, rounds

    def poll(self):
        return 0 if self.told.count("stop") >= self.rounds else None


def test_the_last_health_table_goes_out_again_before_each_round_of_stops_to_the_sinks(monkeypatch):
    """The sinks record the stop's last health table; a consumer's conflating pipe can hold a
    message until the next one comes (libzmq; CI saw it), so it is published once more
    before each round of stops the sinks are sent - never after the stop it must precede."""
    from pygnc.config import Config
    from pygnc.tasks.table import TaskSpec

    events: list[str] = []
    s = sup_mod.Supervisor.__new__(sup_mod.Supervisor)
    s.config = Config()
    s.control = SimpleNamespace(send=lambda name, msg_type, body: events.append(msg_type) or True)
    monkeypatch.setattr(s, "_wait", lambda timeout_s: time.sleep(sup_mod.STOP_RESEND_S / 2), raising=False)
    monkeypatch.setattr(s, "_publish_health", lambda now, stopping: events.append(f"health {stopping}"), raising=False)
    spec = TaskSpec("batch_writer", "pygnc.tasks.batch_writer", ("health",), (), sink=True)
    sink = sup_mod.TaskProc(spec, proc=_Proc(events, rounds=3), answered=True)  # type: ignore[arg-type]
    groups = []
    real = sup_mod.Supervisor._stop_group

    def stop_group(self, group, reason, deadline_s, each_round=None):
        groups.append([t.spec.name for t in group])
        return real(self, group, reason, deadline_s, each_round)

    monkeypatch.setattr(sup_mod.Supervisor, "_stop_group", stop_group)
    for name in ("_end_zygote", "_recover_batches", "close"):
        monkeypatch.setattr(s, name, lambda *a: None, raising=False)
    monkeypatch.setattr(s, "_final_status_says", lambda flags: True, raising=False)
    monkeypatch.setattr(s, "write_final_status", lambda reason, flags: True, raising=False)
    s.tasks, s.by_name = [sink], {"batch_writer": sink}
    s.stop_tree("ctrl-c")
    assert groups == [[], ["batch_writer"]]
    # once as the producers are gone, then before each of the three rounds
    assert events == ["health True", "health True", "stop", "health True", "stop", "health True", "stop"], events
