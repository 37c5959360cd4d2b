"""The task table: every process the supervisor starts, declared once.

Order is start order: the status reporter first (so the first status file appears at
once), producers after it.  ``task_id`` is stable and is what the status file's health
slots carry (see docs/interface.md).  Estimators and the batch writer add a row here when
they land.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..bus.channels import CHANNELS


@dataclass(frozen=True)
class TaskSpec:
    name: str
    task_id: int
    module: str            # imported in the child; must define ``TASK_CLASS``
    subscribes: tuple[str, ...]
    publishes: tuple[str, ...]
    #: Sinks keep draining after a stop signal until the producers are gone, so they
    #: record the producers' final messages (status reporter, writers).
    sink: bool = False


TASKS: tuple[TaskSpec, ...] = (
    TaskSpec("status_reporter", 1, "pygnc.tasks.status_reporter",
             subscribes=("meas", "orbit", "attitude", "formation", "health"), publishes=(),
             sink=True),
    TaskSpec("ingest", 2, "pygnc.tasks.ingest", subscribes=(), publishes=("meas",)),
    TaskSpec("orbit_estimator", 3, "pygnc.tasks.orbit_estimator", subscribes=("meas",),
             publishes=("orbit",)),
    TaskSpec("attitude_estimator", 4, "pygnc.tasks.attitude_estimator", subscribes=("meas", "orbit"),
             publishes=("attitude",)),
    TaskSpec("formation_estimator", 5, "pygnc.tasks.formation_estimator", subscribes=("meas",),
             publishes=("formation",)),
)

TASKS_BY_NAME = {t.name: t for t in TASKS}
TASK_NAMES_BY_ID = {t.task_id: t.name for t in TASKS}


def _producers() -> set[str]:
    return {t.name for t in TASKS} | {"supervisor"}


def active_subscriptions(spec: TaskSpec) -> tuple[str, ...]:
    """The channels *spec* consumes whose producer is actually in the table."""
    producers = _producers()
    return tuple(c for c in spec.subscribes if CHANNELS[c].producer in producers)


def expected_subscribers(channel: str) -> int:
    """How many tasks subscribe to *channel* (the producer's ready handshake waits for them)."""
    return sum(channel in active_subscriptions(t) for t in TASKS)
