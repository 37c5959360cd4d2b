"""Housekeeping: poll the configured serial devices and publish their readings on ``hk``.

Runs only when ``Config.housekeeping_enabled`` is true (off in the host's default run).
Devices come from ``Config.housekeeping_devices`` (checked at load by
:func:`pygnc.drivers.hk_devices.parse_devices`); each kind's driver (an EMUS G1 BMS, an
Alphasense OPC-N3 behind a USB-ISS bridge) comes from :mod:`pygnc.drivers.hk_registry` and
is driven through its one interface, :class:`~pygnc.drivers.hk_registry.HkDriver`.

One thread, one loop: every open port's descriptor sits in the task's ``zmq.Poller`` next
to the bus sockets, so the task wakes when bytes arrive or when the earliest device deadline
(next poll, a reply timeout, a handshake pause, a reopen) is due, and never waits on a port.
A device that cannot be opened is retried every ``reopen_s``; one that fails (unplugged) is
closed, reported (``hk_device`` state ``lost``) and reopened when it is back - by path, or
by USB id wherever it reappears.  At stop the OPC-N3's laser, then its fan, are switched off
(bounded to one second) and every port is closed.

Every valid record becomes an ``hk_reading`` (values in physical units and the
checksum-verified raw bytes); ``hk_device`` reports state changes and, every minute, the
driver counters (CRC errors, timeouts, reopens, ...).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import zmq

from ..drivers.hk_devices import DeviceSpec, parse_devices
from ..drivers.hk_registry import HkDriver, driver_class
from ..drivers.link import LinkError, LinkLost, SerialLink, open_link
from ..drivers.readings import Reading
from .base import MAX_POLL_S, Task, TaskRunner

#: Period of hk_device reports with counters, s.
STATUS_PERIOD_S = 60.0
#: Longest wait between services of an open link that has no descriptor to poll, s.
NO_FD_POLL_S = 0.05
#: Time the stop may spend switching an OPC-N3 off, s.
POWER_OFF_BUDGET_S = 1.0

# ------------------------------------------------------------------------------------------
# One device
# ------------------------------------------------------------------------------------------


class Device:
    """Opens, services, and reopens one device; publishes through *publish*."""

    def __init__(
        self,
        spec: DeviceSpec,
        publish: Callable[[str, dict], object],
        watch: Callable[[int], None],
        unwatch: Callable[[int], None],
        sc_at: Callable[[float], float],
        log: logging.Logger,
    ) -> None:
        self.spec = spec
        # sc_at(t_mono_s) -> spacecraft time of that CLOCK_MONOTONIC instant
        self._publish, self._watch, self._unwatch, self._sc_at = publish, watch, unwatch, sc_at
        self.log = log
        self.driver_class = driver_class(spec.kind)
        self.link: SerialLink | None = None
        self.driver: HkDriver | None = None
        self.state = "closed"
        self.next_open = 0.0
        self.next_status = 0.0
        self.open_failures = 0
        self.opens = 0
        self.losses = 0
        self.readings = 0
        self.last_note = ""

    # -- helpers ---------------------------------------------------------------------------
    def counters(self) -> dict:
        c = {
            "state": self.state,
            "opens": self.opens,
            "losses": self.losses,
            "open_failures": self.open_failures,
            "readings": self.readings,
        }
        if self.driver is not None:
            c.update(self.driver.all_counters())
        return c

    def report(self, state: str, note: str = "") -> None:
        self.state, self.last_note = state, note
        self._publish(
            "hk_device",
            {
                "device": self.spec.name,
                "kind": self.spec.kind,
                "state": state,
                "port": self.link.name if self.link is not None else self.spec.where,
                "t_sc_s": self._sc_at(time.monotonic()),
                "note": note,
                "counters": self.counters(),
            },
        )

    def _open(self, now: float) -> None:
        spec = self.spec
        try:
            self.link = open_link(spec.port, spec.usb, baudrate=self.driver_class.baudrate(spec))
        except LinkError as exc:
            self.open_failures += 1
            self.next_open = now + spec.reopen_s
            # Log the first failure and then about once every ten minutes, not every retry.
            if self.state != "absent" or self.open_failures % max(1, int(600 / spec.reopen_s)) == 0:
                self.log.warning("%s: %s (retrying every %.0f s)", spec.name, exc, spec.reopen_s)
            if self.state != "absent":
                self.report("absent", str(exc))
            return
        self.driver = self.driver_class(self.link, spec, self.log)
        self.opens += 1
        fd = self.link.fileno()
        if fd is not None:
            self._watch(fd)
        self.next_status = now + STATUS_PERIOD_S
        self.log.info("%s: %s open on %s", spec.name, spec.kind, self.link.name)
        self.report("open")

    def close(self, state: str, note: str = "") -> None:
        if self.link is not None:
            fd = self.link.fileno()
            if fd is not None:
                self._unwatch(fd)
            self.link.close()
        self.report(state, note)
        self.link = None
        self.driver = None

    def _lost(self, now: float, exc: Exception) -> None:
        self.losses += 1
        self.log.warning("%s: lost: %s; reopening every %.0f s", self.spec.name, exc, self.spec.reopen_s)
        self.close("lost", str(exc))
        self.next_open = now + min(self.spec.reopen_s, 1.0)

    def _emit(self, readings: list[Reading]) -> None:
        for r in readings:
            self.readings += 1
            self._publish(
                "hk_reading",
                {
                    "device": self.spec.name,
                    "kind": self.spec.kind,
                    "record": r.name,
                    "t_sc_s": self._sc_at(r.t_mono_s),
                    "values": r.values,
                    "raw": bytes(r.raw),
                    "solicited": bool(r.solicited),
                },
            )

    # -- the loop's entry point ---------------------------------------------------------------
    def service(self, now: float) -> float:
        """Do what is due; returns the monotonic time this device next needs the loop."""
        if self.link is None:
            if now >= self.next_open:
                self._open(now)
            if self.link is None:
                return self.next_open
        wake = now + MAX_POLL_S
        assert self.driver is not None  # built with the link
        try:
            self._emit(self.driver.service(now))
            self.driver.poll(now)
            nd = self.driver.next_deadline()
            if nd is not None:
                wake = min(wake, nd)
        except LinkLost as exc:
            self._lost(now, exc)
            return self.next_open
        if now >= self.next_status:
            self.next_status = now + STATUS_PERIOD_S
            self.report("open", self.last_note)
        wake = min(wake, self.next_status)
        if self.link is not None and self.link.fileno() is None:
            wake = min(wake, now + NO_FD_POLL_S)
        return wake

    def stop(self, budget_s: float) -> None:
        if self.link is None:
            self.report("stopped", self.last_note)
            return
        assert self.driver is not None  # built with the link
        if not self.driver.stop(budget_s):
            self.log.warning("%s: power-off not confirmed at stop", self.spec.name)
        self.close("stopped")


# ------------------------------------------------------------------------------------------
# The task
# ------------------------------------------------------------------------------------------


class Housekeeping(Task):
    def __init__(self, runner: TaskRunner) -> None:
        super().__init__(runner)
        self.devices: list[Device] = []
        self.config_errors: list[str] = []

    def _watch(self, fd: int) -> None:
        # The port wakes the task's loop like a bus socket does (step() then services it).
        self.runner.poller.register(fd, zmq.POLLIN)

    def _unwatch(self, fd: int) -> None:
        try:
            self.runner.poller.unregister(fd)
        except KeyError:
            pass

    def _publish(self, msg_type: str, body: dict) -> None:
        self.publish("hk", msg_type, body)

    def on_start(self) -> None:
        specs, errors = parse_devices(self.config.housekeeping_devices)
        self.config_errors = errors
        for e in errors:
            self.log.error("configuration: %s", e)
            self._publish(
                "hk_device",
                {
                    "device": "",
                    "kind": "",
                    "state": "config_error",
                    "port": "",
                    "t_sc_s": self.ctx.sc_now(),
                    "note": e,
                    "counters": {},
                },
            )
        if not specs:
            self.log.warning("no housekeeping devices configured")
        for spec in specs:
            self.devices.append(Device(spec, self._publish, self._watch, self._unwatch, self.ctx.sc_at, self.log))
            self.log.info("device %s: %s on %s every %.1f s", spec.name, spec.kind, spec.where, spec.period_s)

    def step(self) -> float:
        now = time.monotonic()
        wake = now + MAX_POLL_S
        for dev in self.devices:
            try:
                wake = min(wake, dev.service(now))
            except Exception:  # a driver bug must not take the other devices down
                self.log.exception("%s: service failed; closing it", dev.spec.name)
                dev.close("lost", "internal error")
                dev.next_open = now + dev.spec.reopen_s
        return max(0.0, wake - time.monotonic())

    def on_stop(self, reason: str) -> None:
        t_end = time.monotonic() + POWER_OFF_BUDGET_S
        for dev in self.devices:
            try:
                dev.stop(max(0.1, t_end - time.monotonic()))
            except Exception:
                self.log.exception("%s: stop failed", dev.spec.name)

    def counters(self) -> dict:
        return {"devices": {d.spec.name: d.counters() for d in self.devices}, "config_errors": len(self.config_errors)}


TASK_CLASS = Housekeeping
