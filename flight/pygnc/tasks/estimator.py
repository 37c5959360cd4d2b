"""The task that runs one :class:`~pygnc.processors.Processor` as an OS process.

Every received message of a type the processor consumes is handed to it in arrival
order; what it returns is published on the task's channel (measurements a processor
defers during a batch, to process them together, are processed at the end of the loop's
turn at the latest: :meth:`Processor.flush_deferred`).  After ``batch_end`` the task
asks the processor for estimates propagated to the current spacecraft time every
``PROPAGATE_PERIOD_S`` (so the status file's estimate stays current, with growing
uncertainty), and once more when it stops - each time within a CPU budget, so a long gap
between the batch and "now" is covered over several calls and never stalls the loop - but
never beyond ``Config.max_propagation_s`` after the batch's last measurement (whatever the
processor's own horizon: no estimate is ever propagated decades ahead).  While a handler
runs, the control link is serviced (pings answered) and a stop ends the handler's budget
and gives up a range-only window fit under way (:meth:`EstimatorTask.interrupted`), so a
stop never waits for them.  A processor exception is counted (tracebacks for the first
few) and never kills the task.

What it publishes, except the estimates propagated to "now", is kept for a restarted
consumer (see the replay in :mod:`pygnc.tasks.base`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from ..bus.channels import CHANNELS
from ..bus.messages import Message
from ..config import Config
from ..log_budget import log_failure
from ..processors import Output, Processor
from .base import Task, TaskRunner

PROPAGATE_PERIOD_S = 1.0
#: Time for the final propagation at stop, s (after the batch an estimate was propagated
#: at most a second before: one step; the tree's stop waits for the slowest producer).
STOP_PROPAGATION_BUDGET_S = 0.05
#: While a handler runs, the control link is serviced at most this often, s.
CONTROL_LOOK_PERIOD_S = 0.01


class EstimatorTask(Task):
    processor_class: Callable[[Config], Processor]
    channel: str

    def __init__(self, runner: TaskRunner) -> None:
        super().__init__(runner)
        self.processor = self.make_processor()
        self.processor.interrupt = self.interrupted
        self._next_control_look = 0.0
        self.batch_done = False
        self.batch_last_sc_s = float("nan")
        self.next_propagate = 0.0
        self.published = 0
        self.handle_errors = 0

    def make_processor(self) -> Processor:
        return self.processor_class(self.config)

    def interrupted(self) -> bool:
        """Whether the task stops (a stop signal, or the supervisor's ``stop``): asked by the
        processor while it works; the control link is serviced meanwhile (pings answered)."""
        r = self.runner
        if r.stop_requested or r.stopping_reason is not None:
            return True
        now = time.monotonic()
        if now >= self._next_control_look:
            self._next_control_look = now + CONTROL_LOOK_PERIOD_S
            r.service_control()
        return r.stop_requested or r.stopping_reason is not None

    def _publish_all(self, outputs: Iterable[Output]) -> None:
        # Kept for a restarted consumer (replay): everything but the estimates propagated to
        # "now" (a newer one follows every second).
        for msg_type, body in outputs:
            if self.publish(self.channel, msg_type, body, keep=not body.get("propagated", False)):
                self.published += 1

    def _failed(self, what: str) -> None:
        """Count a failure; a traceback for the first few, a count for the rest (log budget)."""
        self.handle_errors += 1
        log_failure(self.log, self.handle_errors, "%s failed", what)

    def reads(self, channel: str) -> frozenset[str]:
        """What the processor consumes (the rest - ranges for the orbit, ranges and fixes for
        the attitude - is passed on undecoded)."""
        return self.processor.consumes | {"batch_end"}

    def holds(self, channel: str) -> bool:
        """While replayed, a channel whose messages the processor cannot take more of now."""
        saturated = self.processor.saturated()
        return bool(saturated) and not saturated.isdisjoint(CHANNELS[channel].types)

    def on_message(self, channel: str, msg: Message, raw: bytes) -> None:
        if msg.type == "batch_end":
            self.batch_done = True
            last = msg.body.get("t_sc_last_s")
            self.batch_last_sc_s = float(last) if isinstance(last, (int, float)) else float("nan")
            self.next_propagate = time.monotonic()
        if msg.type not in self.processor.consumes:
            return
        try:  # a bad measurement must not kill the estimator
            self._publish_all(self.processor.handle(msg.type, msg.body))
        except Exception:
            self._failed(f"processing {msg.type}")

    def propagation_target_sc_s(self) -> float:
        """ "Now", but not beyond ``max_propagation_s`` after the batch's last measurement."""
        now = self.ctx.sc_now()
        if self.batch_last_sc_s == self.batch_last_sc_s:  # not NaN
            return min(now, self.batch_last_sc_s + self.config.max_propagation_s)
        return now

    def _propagate(self, budget_s: float) -> None:
        try:
            self._publish_all(self.processor.propagate_to_sc(self.propagation_target_sc_s(), budget_s))
        except Exception:
            self._failed("propagating to now")

    def _flush_deferred(self) -> None:
        try:
            self._publish_all(self.processor.flush_deferred())
        except Exception:
            self._failed("processing deferred measurements")

    def step(self) -> float:
        # Measurements a processor deferred during this turn's messages (it processes a
        # batch's samples together): done before the loop waits again.
        self._flush_deferred()
        if not self.batch_done:
            return 0.5
        now = time.monotonic()
        if now >= self.next_propagate:
            self._propagate(self.config.propagation_budget_s)
            self.next_propagate = now + PROPAGATE_PERIOD_S
        return max(0.0, self.next_propagate - time.monotonic())

    def on_stop(self, reason: str) -> None:
        self._flush_deferred()
        try:  # a batch stopped part-way still ends with its newest estimates
            self._publish_all(self.processor.flush_held())
        except Exception:
            self._failed("publishing the held estimates")
        if self.batch_done:
            self._propagate(STOP_PROPAGATION_BUDGET_S)

    def counters(self) -> dict:
        return {"published": self.published, "handle_errors": self.handle_errors, **self.processor.counters()}


def estimator_task(processor_class: Callable[[Config], Processor], channel: str) -> type[EstimatorTask]:
    """The task class for *processor_class* publishing on *channel*."""
    return type(
        f"{processor_class.__name__}Task", (EstimatorTask,), {"processor_class": processor_class, "channel": channel}
    )
