"""Message-level adapters around the numeric estimation cores.

A :class:`Processor` turns bus message bodies (dicts, see :mod:`pygnc.bus.messages`) into
arrays for its pure numeric core (:mod:`pygnc.estimation`) and the core's results back
into message bodies.  It does no I/O and no messaging, so the same object runs

* in flight, wrapped by :class:`pygnc.tasks.estimator.EstimatorTask` (one OS process);
* on the ground, driven in-process by ``python -m ground replay`` from the same message
  stream that ingest publishes (:func:`pygnc.tasks.ingest.build_message_stream`).
"""

from __future__ import annotations

from collections.abc import Callable

from ..timebase import ClockMap

Output = tuple[str, dict]  # (message type, body)


def clock_map_from_body(body: dict) -> ClockMap:
    """The :class:`~pygnc.timebase.ClockMap` carried by a ``clock_map`` message body."""
    return ClockMap(body["gps_minus_sc_s"], body["drift"], body["t_ref_sc_s"], body["n_pairs"], body["residual_rms_s"])


class Processor:
    """Base class.  Messages must be handed over in the order ingest publishes them."""

    #: Message types this processor wants (others are never passed to :meth:`handle`).
    consumes: frozenset[str] = frozenset()
    #: Says the owner stops: a handler returns now, leaving the rest of its work queued as
    #: when its budget runs out, and a long computation whose result is not wanted any more
    #: gives up (the flight task); None: never.
    interrupt: Callable[[], bool] | None = None

    def handle(self, msg_type: str, body: dict) -> list[Output]:
        """Consume one message; return the messages to publish (possibly none)."""
        return []

    def propagate_to_sc(self, t_sc_s: float, budget_s: float = float("inf")) -> list[Output]:
        """After the batch: estimates propagated toward spacecraft time *t_sc_s* (``propagated``).

        Spends at most about *budget_s* of CPU time: a long gap is covered over several
        calls, each publishing the epoch it reached, so the task loop never stalls.
        """
        return []

    def flush_deferred(self) -> list[Output]:
        """What measurements handed over but not yet processed give (a processor may keep a
        few during a batch to process them together; the flight task calls this at the end
        of every turn of its loop, the ground replay at the end of the stream)."""
        return []

    def saturated(self) -> frozenset[str]:
        """Message types it cannot take more of now without giving up on something it holds
        (a processor pairing two inputs, when one runs far ahead of the other).  A restarted
        task reads no more of a channel it is being replayed while the channel's types are
        here: a replay waits for its consumer (the live stream never does)."""
        return frozenset()

    def flush_held(self) -> list[Output]:
        """At stop: the estimates held back by the batch decimation (the newest left out;
        ``Config.batch_decimate_estimates``), so a run stopped in the middle of its batch
        still ends with its newest estimates."""
        return []

    def counters(self) -> dict:
        return {}
