"""Housekeeping device drivers behind one interface, found by their configured kind.

The housekeeping task (:mod:`pygnc.tasks.housekeeping`) opens a link at the speed the kind
asks for, builds the driver :func:`driver_class` names and from then on only calls the
:class:`HkDriver` methods; what differs between devices - the port's speed, the request
schedule, the power-off at stop - lives in the classes here.  The kinds are declared once,
in :data:`pygnc.device_kinds.HK_DEVICE_KINDS`: a class registers under one of them, and
``tests/test_driver_errors.py`` checks that every kind has one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from ..device_kinds import HK_DEVICE_KINDS
from . import emus_bms, opc_n3
from .hk_devices import DeviceSpec
from .link import SerialLink
from .readings import Reading


class HkDriver(Protocol):
    """What the housekeeping task asks of a device driver (it never blocks but in :meth:`stop`).

    Built as ``cls(link, spec, log)`` on a link opened at ``cls.baudrate(spec)``.  Any method
    but :meth:`stop` may raise :class:`~pygnc.drivers.link.LinkLost`: the task closes the
    port and reopens it later.
    """

    def __init__(self, link: SerialLink, spec: DeviceSpec, log: logging.Logger) -> None: ...

    @staticmethod
    def baudrate(spec: DeviceSpec) -> int: ...

    def service(self, now: float) -> list[Reading]:
        """Read what arrived, advance the exchanges in progress; the new readings."""
        ...

    def poll(self, now: float) -> None:
        """Send the requests that are due (nothing for a device that runs its own exchanges)."""
        ...

    def next_deadline(self) -> float | None:
        """Monotonic time by which :meth:`service` / :meth:`poll` must run again (None: when
        bytes arrive)."""
        ...

    def all_counters(self) -> dict: ...

    def stop(self, budget_s: float) -> bool:
        """Leave the device safe within *budget_s*; False if that was not confirmed."""
        ...


#: The driver class of each housekeeping kind (:func:`register` fills it).
REGISTRY: dict[str, type[HkDriver]] = {}


def register(kind: str) -> Callable[[type[HkDriver]], type[HkDriver]]:
    """Class decorator: *kind*'s driver (a kind of :data:`HK_DEVICE_KINDS`, once)."""
    if kind not in HK_DEVICE_KINDS:
        raise ValueError(f"housekeeping kind {kind!r} is not declared in pygnc.device_kinds.HK_DEVICE_KINDS")
    if kind in REGISTRY:
        raise ValueError(f"housekeeping kind {kind!r} has a driver already ({REGISTRY[kind].__name__})")

    def add(cls: type[HkDriver]) -> type[HkDriver]:
        REGISTRY[kind] = cls
        return cls

    return add


def driver_class(kind: str) -> type[HkDriver]:
    """The driver class of *kind*; ValueError naming the known kinds if there is none."""
    try:
        return REGISTRY[kind]
    except (KeyError, TypeError):
        raise ValueError(
            f"no housekeeping driver for kind {kind!r} (known kinds: {', '.join(sorted(REGISTRY))})"
        ) from None


@register("emus_bms")
class EmusBmsDevice:
    """An EMUS G1 (:class:`~pygnc.drivers.emus_bms.EmusBms`); in request mode it asks for the
    configured sentences every ``period_s``, the unit's version (VR1) first after each open."""

    @staticmethod
    def baudrate(spec: DeviceSpec) -> int:
        return spec.options.get("baudrate", emus_bms.BAUDRATE)

    def __init__(self, link: SerialLink, spec: DeviceSpec, log: logging.Logger):
        o = spec.options
        self.bms = emus_bms.EmusBms(link, o["mode"], o["cells"] or None, spec.timeout_s)
        self.spec, self.log = spec, log
        self.next_poll: float | None = None  # None: at once (the first poll after the open)

    def service(self, now: float) -> list[Reading]:
        readings, replies = self.bms.service(now)
        for rep in replies:
            if rep.timed_out and not rep.complete:
                self.log.debug("%s: %s timed out (%d sentences)", self.spec.name, rep.name, len(rep.sentences))
        return readings

    def poll(self, now: float) -> None:
        if self.bms.mode != "request" or (self.next_poll is not None and now < self.next_poll):
            return
        names = self.spec.options["sentences"]
        if self.next_poll is None:  # the unit's version, once per open
            names = ("VR1",) + tuple(n for n in names if n != "VR1")
        self.bms.poll(names, now)
        self.next_poll = max((now if self.next_poll is None else self.next_poll) + self.spec.period_s, now)

    def next_deadline(self) -> float | None:
        nd = self.bms.next_deadline()
        if self.bms.mode != "request" or self.next_poll is None:
            return nd
        return self.next_poll if nd is None else min(nd, self.next_poll)

    def all_counters(self) -> dict:
        return self.bms.all_counters()

    def stop(self, budget_s: float) -> bool:
        return True  # nothing to switch off


@register("opc_n3")
class OpcN3Device:
    """An Alphasense OPC-N3 behind a USB-ISS (:class:`~pygnc.drivers.opc_n3.OpcN3`): it runs
    its own exchanges (a histogram every ``period_s``); at stop its laser, then its fan, are
    switched off."""

    @staticmethod
    def baudrate(spec: DeviceSpec) -> int:
        return 115200  # a USB CDC port: the bridge ignores it

    def __init__(self, link: SerialLink, spec: DeviceSpec, log: logging.Logger):
        o = spec.options
        timing = opc_n3.OpcTiming(
            fan_spinup_s=float(o["fan_spinup_s"]),
            busy_timeout_s=float(o["busy_timeout_s"]),
            bytes_per_transfer=int(o["bytes_per_transfer"]),
        )
        self.opc = opc_n3.OpcN3(
            link,
            period_s=spec.period_s,
            spi_hz=float(o["spi_hz"]),
            timing=timing,
            with_config=bool(o["read_config"]),
            reply_timeout_s=spec.timeout_s,
        )

    def service(self, now: float) -> list[Reading]:
        return self.opc.service(now)

    def poll(self, now: float) -> None:
        pass  # service() starts each exchange when it is due

    def next_deadline(self) -> float | None:
        return self.opc.next_deadline()

    def all_counters(self) -> dict:
        return self.opc.all_counters()

    def stop(self, budget_s: float) -> bool:
        return self.opc.power_off_blocking(budget_s)
