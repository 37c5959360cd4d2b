"""The task that runs one :class:`~pygnc.processors.Processor` as an OS process.

Every received message of a type the processor consumes is handed to it in arrival
order; what it returns is published on the task's channel.  After ``batch_end`` the task
asks the processor for estimates propagated to the current spacecraft time every
``PROPAGATE_PERIOD_S`` (so the status file's estimate stays current, with growing
uncertainty), and once more when it stops.
"""

from __future__ import annotations

import time

from ..bus.messages import Message
from ..processors import Processor
from .base import Task

PROPAGATE_PERIOD_S = 1.0


class EstimatorTask(Task):
    processor_class: type[Processor]
    channel: str

    def __init__(self, runner):
        super().__init__(runner)
        self.processor = self.make_processor()
        self.batch_done = False
        self.next_propagate = 0.0
        self.published = 0
        self.handle_errors = 0

    def make_processor(self) -> Processor:
        return self.processor_class(self.config)

    def _publish_all(self, outputs) -> None:
        for msg_type, body in outputs:
            if self.publish(self.channel, msg_type, body):
                self.published += 1

    def on_message(self, channel: str, msg: Message, raw: bytes) -> None:
        if msg.type == "batch_end":
            self.batch_done = True
            self.next_propagate = time.monotonic()
        if msg.type not in self.processor.consumes:
            return
        try:
            outputs = self.processor.handle(msg.type, msg.body)
        except Exception:  # a bad measurement must not kill the estimator
            self.handle_errors += 1
            self.log.exception("processing %s failed", msg.type)
            return
        self._publish_all(outputs)

    def step(self) -> float:
        if not self.batch_done:
            return 0.5
        now = time.monotonic()
        if now >= self.next_propagate:
            self._publish_all(self.processor.propagate_to_sc(self.ctx.sc_now()))
            self.next_propagate = now + PROPAGATE_PERIOD_S
        return max(0.0, self.next_propagate - time.monotonic())

    def on_stop(self, reason: str) -> None:
        if self.batch_done:
            self._publish_all(self.processor.propagate_to_sc(self.ctx.sc_now()))

    def counters(self) -> dict:
        return {"published": self.published, "handle_errors": self.handle_errors,
                **self.processor.counters()}


def estimator_task(processor_class: type[Processor], channel: str) -> type[EstimatorTask]:
    """The task class for *processor_class* publishing on *channel*."""
    return type(f"{processor_class.__name__}Task", (EstimatorTask,),
                {"processor_class": processor_class, "channel": channel})
