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
