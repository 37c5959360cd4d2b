"""Replay core: the processors, what a replay produced (:class:`ReplayRun`) and the
in-process feeding of a message stream - shared by ``ground.replay.cli`` (the command) and
``ground.replay.pipeline`` (the process-tree mode), which both import this module and not
each other.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ground.outputs import tables as tb
from pygnc.processors.attitude import AttitudeProcessor
from pygnc.processors.formation import FormationProcessor
from pygnc.processors.orbit import OrbitProcessor

#: Every processor replay runs, in feed order (name -> class).  They are part of every
#: build: one that does not import is a bug, reported as such, never skipped.
PROCESSORS: dict[str, type] = {
    "orbit": OrbitProcessor,
    "attitude": AttitudeProcessor,
    "formation": FormationProcessor,
}

#: Progress bar only for streams at least this long (a 2-h batch is ~3000 messages).
PROGRESS_MIN_MESSAGES = 5000


# --------------------------------------------------------------------------- processors
@dataclass
class ReplayRun:
    """What the estimators produced for one batch, however they were run."""

    mode: str
    processors: list[str]
    missing: dict[str, str]
    #: estimate message type -> bodies with propagated == False, in publication order
    estimates: dict[str, list[dict]] = field(default_factory=lambda: {t: [] for t in tb.KIND_OF_TYPE})
    notes: list[dict] = field(default_factory=list)
    n_messages: int = 0
    handle_errors: dict[str, int] = field(default_factory=dict)
    #: seconds: "ingest" (building the stream), "processors" (total), "<name>" each, "total"
    timings_s: dict[str, float] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def collect(self, msg_type: str, body: dict) -> None:
        if msg_type in self.estimates:
            if not body.get("propagated", False):
                self.estimates[msg_type].append(body)
        elif msg_type == "estimator_note":
            self.notes.append(body)


def _progress(total: int, quiet: bool, desc: str):
    from tqdm import tqdm

    disable = quiet or total < PROGRESS_MIN_MESSAGES or not sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="msg", file=sys.stderr, disable=disable, mininterval=0.5, leave=False)


def feed(processors: list, names: list[str], messages, run: ReplayRun, bar=None, on_call=None) -> None:
    """Hand every message, in order, to the processors that consume it; feed each output on
    to the later processors; collect estimates and notes into *run*.  A processor that
    raises is counted and skipped for that message, as the flight task does.  *on_call*
    (name, message type, seconds) is told every handle() call's time (bench_batch)."""
    times = [0.0] * len(processors)
    errors = [0] * len(processors)
    consumes = [p.consumes for p in processors]
    clock = time.perf_counter

    def dispatch(msg_type: str, body: dict, start: int) -> None:
        for i in range(start, len(processors)):
            if msg_type not in consumes[i]:
                continue
            t0 = clock()
            try:
                outputs = processors[i].handle(msg_type, body)
            except Exception:  # noqa: BLE001 - as the flight task: count, report once, go on
                times[i] += clock() - t0
                errors[i] += 1
                if errors[i] == 1:
                    print(
                        f"replay: {names[i]} failed on a {msg_type} message (further failures only counted):\n"
                        f"{traceback.format_exc()}",
                        file=sys.stderr,
                    )
                continue
            dt = clock() - t0
            times[i] += dt
            if on_call is not None:
                on_call(names[i], msg_type, dt)
            for out_type, out_body in outputs:
                run.collect(out_type, out_body)
                dispatch(out_type, out_body, i + 1)

    for k, (msg_type, body) in enumerate(messages):
        dispatch(msg_type, body, 0)
        if bar is not None and (k & 255) == 255:
            bar.update(256)
    for i, proc in enumerate(processors):  # measurements kept to be processed together
        flush = getattr(proc, "flush_deferred", None)
        for _ in range(2 if flush is not None else 0):  # (a failure leaves the others' outputs for a second call)
            try:
                outputs = flush()
            except Exception:  # noqa: BLE001 - counted as dispatch does; what it processed comes next call
                errors[i] += 1
                if errors[i] == 1:
                    print(
                        f"replay: {names[i]} failed processing deferred measurements (further failures only "
                        f"counted):\n{traceback.format_exc()}",
                        file=sys.stderr,
                    )
                continue
            for out_type, out_body in outputs:
                run.collect(out_type, out_body)
                dispatch(out_type, out_body, i + 1)
            break
    for name, t, e in zip(names, times, errors):
        run.timings_s[name] = t
        run.handle_errors[name] = e
    run.timings_s["processors"] = sum(times)


class _InOrder:
    """A ReplayRun stand-in that keeps every message in publication order."""

    def __init__(self):
        self.messages, self.timings_s, self.handle_errors = [], {}, {}

    def collect(self, msg_type, body):
        self.messages.append((msg_type, body))


def published_messages(scenario: Path, config) -> list[tuple[str, dict]]:
    """Every message the process tree would publish on the batch of *scenario* - ingest's
    measurement messages and each estimator's outputs - in publication order (what a sink
    such as the batch writer sees)."""
    from pygnc.config import Paths
    from pygnc.tasks.ingest import build_message_stream

    meas = build_message_stream(Paths(Path(scenario)), config, quiet_logger()).messages
    sink = _InOrder()

    def tee():
        for m in meas:
            sink.messages.append(m)
            yield m

    feed([cls(config) for cls in PROCESSORS.values()], list(PROCESSORS), tee(), sink)
    return sink.messages


#: What a replay changes in the flight configuration: an estimate at every sensor sample
#: (the tree publishes, during a batch, only the attitude and formation estimates the
#: downlink records: ``Config.batch_decimate_estimates``) - a replay wants every row.
REPLAY_OVERRIDES = {"batch_decimate_estimates": False}
#: And in this process, where nothing waits on a handler call (no ping, no stop): the
#: largest handler budget the configuration allows.  A call that runs out of its wall-clock
#: budget leaves work for the next one and publishes other epochs, so with the flight's
#: 0.5 s a stall of the machine (load, a page-in) changed what a replay published: two
#: workers of one Monte Carlo campaign disagreed.
IN_PROCESS_OVERRIDES = {**REPLAY_OVERRIDES, "handler_budget_s": 5.0}


def run_in_process(scenario: Path, config, quiet: bool = True, stream=None, record_history: bool = False) -> ReplayRun:
    """Replay *scenario* through the processors in this process (with
    :data:`IN_PROCESS_OVERRIDES`).  *record_history*: switch on the recording the ground
    attitude smoother needs (``--smooth``)."""
    from pygnc.config import Paths
    from pygnc.tasks.ingest import build_message_stream

    config = dataclasses.replace(config, **IN_PROCESS_OVERRIDES)
    t_start = time.perf_counter()
    run = ReplayRun("in_process", list(PROCESSORS), {})
    if stream is None:
        stream = build_message_stream(Paths(Path(scenario)), config, quiet_logger())
    run.timings_s["ingest"] = time.perf_counter() - t_start
    run.extra["stream"] = stream
    processors = [cls(config) for cls in PROCESSORS.values()]
    if record_history:
        for proc in processors:
            if hasattr(proc, "record_history"):
                proc.record_history = True
    run.n_messages = len(stream.messages)
    bar = _progress(run.n_messages, quiet, "replay")
    try:
        feed(processors, run.processors, stream.messages, run, bar)
    finally:
        bar.close()
    run.extra["processor_objects"] = dict(zip(run.processors, processors))
    run.timings_s["total"] = time.perf_counter() - t_start
    return run


def quiet_logger() -> logging.Logger:
    log = logging.getLogger("ground.replay.ingest")
    log.propagate = False
    if not log.handlers:
        log.addHandler(logging.NullHandler())
    return log
