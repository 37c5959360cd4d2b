"""The task table: every process the supervisor starts, declared once.

Order is start order: the status reporter first (so the first status file appears at
once), producers after it, then the batch writer (a sink too).  ``task_id`` is the task's
entry in :data:`pygnc.task_ids.TASK_IDS`: stable, and what the status file's health slots
carry (see docs/interface.md).  A task whose ``enabled_by`` names a configuration
field runs only when that field is true (device tasks are off in the host's default run);
:func:`enabled_tasks` is the set the supervisor starts, and subscriptions and ready
handshakes count only enabled tasks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..bus.channels import CHANNELS
from ..config import Config
from ..formats import batch as _batch
from ..task_ids import TASK_IDS


@dataclass(frozen=True)
class TaskSpec:
    name: str
    module: str  # imported in the child; must define ``TASK_CLASS``
    subscribes: tuple[str, ...]
    publishes: tuple[str, ...]
    #: Sinks keep draining after a stop signal until the producers are gone, so they
    #: record the producers' final messages (status reporter, writers).
    sink: bool = False
    #: Name of a :class:`~pygnc.config.Config` field; the task runs only when it is true.
    #: None: always runs.
    enabled_by: str | None = None
    #: The task inherits the supervisor's stdin and stdout (the host's terminal); others get
    #: /dev/null as stdin and stderr as stdout.
    stdio: bool = False
    #: Forked as soon as the zygote has imported its own module rather than once it has
    #: imported every task's (pygnc.zygote): the status reporter (no numpy) writes the
    #: first status file without waiting for the estimation stack.
    fork_early: bool = False
    #: The task runs only with at least this many CPUs to run on (:func:`usable_cpus`), or
    #: the number a :class:`~pygnc.config.Config` field of this name holds: a process that
    #: only shares another's work pays where a core would otherwise idle, and costs where
    #: every core is busy already.
    min_cpus: int | str = 1
    #: Restarted, it takes what the producers kept of its channels before their live
    #: streams (pygnc.bus.transport); False: the live streams at once (the stream task
    #: sends the host the newest estimates, not the history).
    replay: bool = True
    #: Name of the :class:`~pygnc.config.Config` field holding how long the task may leave a
    #: health ping unanswered before it is killed and restarted, s (at most
    #: ``health_fatal_s``).
    health_fatal: str = "health_fatal_s"
    #: Runs ``Config.yielding_tasks_nice`` nicer than the rest of the tree
    #: (docs/design/processes.md, "The busiest consumer goes first").
    yields_cpu: bool = False
    task_id: int = field(init=False)

    def __post_init__(self) -> None:
        if self.name not in TASK_IDS:
            raise ValueError(f"task {self.name!r} has no id in pygnc.task_ids.TASK_IDS")
        object.__setattr__(self, "task_id", TASK_IDS[self.name])

    def enabled(self, config: Config) -> bool:
        need = getattr(config, self.min_cpus) if isinstance(self.min_cpus, str) else self.min_cpus
        return (self.enabled_by is None or bool(getattr(config, self.enabled_by))) and (
            need <= 1 or usable_cpus() >= need
        )


def niceness(spec: TaskSpec, config: Config) -> int:
    """The ``os.nice`` increment *spec*'s process asks for at start (0: none)."""
    return config.yielding_tasks_nice if spec.yields_cpu else 0


def process_name(spec: TaskSpec) -> str:
    """A forked task's process name (``/proc/<pid>/comm``, what ``ps`` and ``top`` show;
    at most 15 bytes): the task's name without ``_estimator`` (``orbit``, ``formation_2``)."""
    return spec.name.replace("_estimator", "")[:15]


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity: ``taskset`` narrows it, and children
    inherit it, so every process of the tree sees the same)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


TASKS: tuple[TaskSpec, ...] = (
    TaskSpec(
        "status_reporter",
        "pygnc.tasks.status_reporter",
        subscribes=("meas", "orbit", "attitude", "formation", "formation_2", "health", "hk"),
        publishes=(),
        sink=True,
        fork_early=True,
        health_fatal="status_health_fatal_s",
    ),
    TaskSpec("ingest", "pygnc.tasks.ingest", subscribes=("live",), publishes=("meas",)),
    TaskSpec(
        "orbit_estimator", "pygnc.tasks.orbit_estimator", subscribes=("meas",), publishes=("orbit",), yields_cpu=True
    ),
    TaskSpec(
        "attitude_estimator",
        "pygnc.tasks.attitude_estimator",
        subscribes=("meas", "orbit", "imu"),
        publishes=("attitude",),
        yields_cpu=True,
    ),
    TaskSpec("formation_estimator", "pygnc.tasks.formation_estimator", subscribes=("meas",), publishes=("formation",)),
    # Every other partner, when Config.formation_split and there is a core to spare
    # (Config.formation_split_min_cpus; pygnc.processors.formation).
    TaskSpec(
        "formation_estimator_2",
        "pygnc.tasks.formation_estimator_2",
        subscribes=("meas",),
        publishes=("formation_2",),
        enabled_by="formation_split",
        min_cpus="formation_split_min_cpus",
    ),
    TaskSpec(
        "housekeeping", "pygnc.tasks.housekeeping", subscribes=(), publishes=("hk",), enabled_by="housekeeping_enabled"
    ),
    # Subscribes to the channels of every batch record kind (pygnc.formats.batch.KINDS).
    TaskSpec(
        "batch_writer",
        "pygnc.tasks.batch_writer",
        subscribes=_batch.channels() + ("host_cmd",),
        publishes=(),
        sink=True,
        enabled_by="batch_writer_enabled",
    ),
    TaskSpec("imu_ingest", "pygnc.tasks.imu_ingest", subscribes=(), publishes=("imu",), enabled_by="imu_driver"),
    # The only task that reads stdin and writes stdout (the host's terminal); every other
    # process's stdout goes to stderr.
    TaskSpec(
        "tty_stream",
        "pygnc.tasks.tty_stream",
        subscribes=("orbit", "attitude", "formation", "formation_2"),
        publishes=("live", "host_cmd"),
        enabled_by="stream_enabled",
        stdio=True,
        replay=False,
    ),
)

if {t.name for t in TASKS} != set(TASK_IDS):
    raise ValueError("the task table and pygnc.task_ids.TASK_IDS must name the same tasks")

TASKS_BY_NAME = {t.name: t for t in TASKS}
TASK_NAMES_BY_ID = {t.task_id: t.name for t in TASKS}


def enabled_tasks(config: Config) -> tuple[TaskSpec, ...]:
    """The tasks that run under *config*, in start order."""
    return tuple(t for t in TASKS if t.enabled(config))


def _producers(config: Config) -> set[str]:
    return {t.name for t in enabled_tasks(config)} | {"supervisor"}


def active_subscriptions(spec: TaskSpec, config: Config) -> tuple[str, ...]:
    """The channels *spec* consumes whose producer runs under *config*."""
    producers = _producers(config)
    return tuple(c for c in spec.subscribes if CHANNELS[c].producer in producers)


def expected_subscribers(channel: str, config: Config) -> int:
    """How many running tasks subscribe to *channel* (the producer's ready handshake waits
    for them)."""
    return sum(channel in active_subscriptions(t, config) for t in enabled_tasks(config))
