"""Batch writer: the downlink products, ``~/pygnc_batches/batch_NNNNNNNN.bin``.

Subscribes to the estimate channels (orbit, attitude, formation), the supervisor's health
and the measurement stream, and records a decimated view of them as batch-file records
(layout: :mod:`pygnc.formats.batch`; files: :mod:`pygnc.batch_store`).

What is recorded (:class:`BatchRecorder`, no bus, no files: the bench and tests drive it
directly): every kind of :data:`~pygnc.formats.batch.KINDS` enabled by
``Config.batch_kinds`` (empty: the default set), at most one record per kind and key (e.g.
peer) per ``period``-long bin of record time (``Config.batch_period_s`` overrides the
kinds' defaults; bins are aligned on multiples of the period, so the choice does not
depend on arrival order and a replayed stream adds nothing), plus a record whenever a
kind's ``on_change`` fields change (health states, a new clock map).  A kind whose encoder
makes several records of one message (``partner_orbit``: one per kept orbit) records them
together, under one key and time.  When the writer
stops, the last message of each ``final`` kind (estimates, health) is recorded if its bin
was already taken, so the downlink ends with the estimates the run ended with.

Storage (:mod:`pygnc.batch_store`): downlink products come before logs - the logs stop
before the free space falls into the downlink's reserve (``Config.batch_min_free_bytes``),
the writer uses that reserve down to the status files' (``Config.log_min_free_bytes``), and
there the logs give way (:func:`pygnc.logs.give_way`); records with no room even then are
held and written when there is (``records_held`` in its health counters: the status's
``batch_records_held``).
A writer that could not write all it was to in this run says so in its health counters
(``downlink_failed``), which the status reporter turns into the status flag of that name.

A sink (like the status reporter): after Ctrl-C it keeps draining until the supervisor
reports the producers gone, then records their final messages, closes the open file and
exits.  A writer restarted within a run first recovers the ``.part`` it left, then marks
as taken the bins of the records this run already wrote, so the measurement stream
ingest replays to it is not recorded twice.  Every writer takes the spans of record times
its series already wrote (:mod:`pygnc.batch_store`: earlier runs on the same
configuration, a power-cut run's included) and records nothing inside them: the
downlink is never sent twice.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..batch_store import BatchStore, span_key, store_for
from ..bus.messages import Message
from ..config import Config
from ..formats import batch as fmt
from ..log_budget import log_failure
from ..logs import SyncingFileHandler, give_way
from .base import Task, TaskRunner

#: Bins remembered per kind and key (oldest forgotten first): 2 days at a 60-s cadence.
MAX_BINS_PER_KEY = 2880


def kind_selection(config: Config) -> tuple[list[fmt.RecordKind], dict[str, float | None]]:
    """The enabled kinds and their periods under *config* (checked when it was made:
    :func:`pygnc.config.config_problems`)."""
    names = config.batch_kinds or fmt.default_kinds()
    kinds = [fmt.KINDS_BY_NAME[n] for n in names]
    periods = {
        k.name: (float(config.batch_period_s[k.name]) if k.name in config.batch_period_s else k.period_s) for k in kinds
    }
    return kinds, periods


@dataclass
class _KindState:
    kind: fmt.RecordKind
    period_ms: int | None  # None: on change only
    bins: dict = field(default_factory=dict)  # key -> {bin: None} (insertion-ordered set)
    last_sig: dict = field(default_factory=dict)  # key -> bytes of the on_change fields
    last_t: dict = field(default_factory=dict)  # key -> latest recorded time, ms
    held: dict = field(default_factory=dict)  # key -> (t_ms, group of values): newest not recorded
    context: dict = field(default_factory=dict)  # key -> (raw record, t_sc_s)
    written: dict = field(default_factory=dict)  # key -> (first, last) ms written by the series before
    records: int = 0
    skipped: int = 0
    repeated: int = 0  # inside what the series had written


class BatchRecorder:
    """Bus messages in, framed records out to ``store.append(raw, t_sc_s)``."""

    def __init__(
        self,
        kinds: Sequence[fmt.RecordKind],
        periods: dict[str, float | None],
        store: BatchStore,
        sc_now: Callable[[], float],
        log: logging.Logger | None = None,
    ) -> None:
        self.store = store
        self.sc_now = sc_now
        self.log = log
        self.states: dict[str, _KindState] = {}
        self.by_type: dict[str, list[_KindState]] = {}
        for k in kinds:
            p = periods.get(k.name, k.period_s)
            ks = _KindState(k, fmt.period_ms(p))
            self.states[k.name] = ks
            for t in k.message_types:
                self.by_type.setdefault(t, []).append(ks)
        self.encode_errors = 0
        self.time_errors = 0
        self.not_written = 0

    # -- helpers -----------------------------------------------------------------------
    def _failed(self, what: str) -> None:
        self.encode_errors += 1
        log_failure(self.log, self.encode_errors, "%s failed", what)

    @staticmethod
    def _key(kind: fmt.RecordKind, values: dict) -> Any:
        return kind.key_of(values)

    def _bin(self, ks: _KindState, t_ms: int) -> int:
        return t_ms // ks.period_ms if ks.period_ms else t_ms

    def _remember(self, ks: _KindState, key: Any, t_ms: int, sig: bytes | None) -> None:
        bins = ks.bins.setdefault(key, {})
        if ks.period_ms is not None:
            bins[self._bin(ks, t_ms)] = None
            if len(bins) > MAX_BINS_PER_KEY:
                del bins[next(iter(bins))]
        if sig is not None:
            ks.last_sig[key] = sig
        if t_ms > ks.last_t.get(key, -1):
            ks.last_t[key] = t_ms
            ks.held.pop(key, None)

    def _write(self, ks: _KindState, key: Any, t: float, raw: bytes, mark: tuple | None) -> None:
        if self.store.append(raw, t, mark):
            ks.records += 1
            if ks.kind.context:
                ks.context[key] = (raw, t)
        else:
            self.not_written += 1

    # -- inputs ------------------------------------------------------------------------
    def handle(self, msg_type: str, body: dict) -> None:
        for ks in self.by_type.get(msg_type, ()):
            try:
                made = ks.kind.encode(msg_type, body)
            except Exception:  # a malformed body must not stop the recording
                self._failed(f"encoding a {ks.kind.name} record")
                continue
            group = made if isinstance(made, list) else [] if made is None else [made]
            if group:
                self._record(ks, group)

    def _record(self, ks: _KindState, group: list[dict]) -> None:
        """The records of one message (*group*: each one's field values - one for most kinds,
        one per kept orbit for ``partner_orbit``), recorded together if the first one's key
        has its bin free or its ``on_change`` fields changed, and its time is outside what the
        series wrote before; else kept as the newest if the kind is ``final``."""
        kind = ks.kind
        values = group[0]
        try:
            t = values.get("t_sc_s")
            t = self.sc_now() if t is None else t
            key = self._key(kind, values)
            payload = kind.pack(values) if kind.on_change else None
        except Exception:  # a malformed body must not stop the recording
            self._failed(f"encoding a {kind.name} record")
            return
        try:
            t_ms = fmt.record_time_ms(t)
        except (ValueError, TypeError):
            self.time_errors += 1
            return
        mark = span_key(kind, values)
        span = ks.written.get(key) if mark is not None else None
        if span is not None and span[0] <= t_ms <= span[1]:  # the series wrote it before
            ks.repeated += len(group)
            return
        sig = kind.field_bytes(payload, kind.on_change) if payload is not None else None
        changed = sig is not None and ks.last_sig.get(key) != sig
        if ks.period_ms is None:
            due = changed
        else:
            due = changed or self._bin(ks, t_ms) not in ks.bins.get(key, ())
        if not due:  # decimated (packed only if it may be the run's last)
            ks.skipped += len(group)
            if kind.final and t_ms > ks.last_t.get(key, -1):
                ks.held[key] = (t_ms, group)
            return
        raws = self._frames(kind, t_ms, group, payload)
        if raws is None:
            return
        self._remember(ks, key, t_ms, sig)
        for raw in raws:
            self._write(ks, key, t_ms / 1000.0, raw, mark)

    def _frames(
        self, kind: fmt.RecordKind, t_ms: int, group: list[dict], payload: bytes | None = None
    ) -> list[bytes] | None:
        """The framed records of *group* at *t_ms* (*payload*: the first one's, if packed
        already), or None (counted, logged) if one cannot be encoded."""
        try:
            return [
                fmt.frame_record(kind.code, t_ms / 1000.0, payload if k == 0 and payload else kind.pack(v))
                for k, v in enumerate(group)
            ]
        except Exception:
            self._failed(f"encoding a {kind.name} record")
            return None

    def seed(self, records: Iterable[fmt.Record]) -> int:
        """Mark what earlier records (this run's, before a restart) already hold; returns how many."""
        n = 0
        for r in records:
            kind = r.kind
            if kind is None:
                continue
            ks = self.states.get(kind.name)
            if ks is None:
                continue
            try:
                key = self._key(kind, kind.unpack(r.payload))
                t_ms = fmt.record_time_ms(r.t_sc_s)
            except (ValueError, KeyError):
                continue
            self._remember(ks, key, t_ms, kind.field_bytes(r.payload, kind.on_change) if kind.on_change else None)
            if kind.context:
                ks.context[key] = (r.raw, r.t_sc_s)
            n += 1
        return n

    def seed_spans(self, spans: dict[tuple, list[int]]) -> int:
        """Take the spans of record times the series wrote before (:mod:`pygnc.batch_store`):
        nothing inside them is recorded again, and the bin of each span's end is taken (a
        run after a cut goes on where the cut run stopped); returns how many."""
        n = 0
        for (name, key), (lo, hi) in spans.items():
            ks = self.states.get(name)
            if ks is None:
                continue
            ks.written[key] = (lo, hi)
            self._remember(ks, key, hi, None)
            n += 1
        return n

    def finish(self) -> int:
        """Record the newest message of every ``final`` kind whose bin was taken; returns how many."""
        n = 0
        for ks in self.states.values():
            for key, (t_ms, group) in sorted(ks.held.items(), key=lambda kv: kv[1][0]):
                raws = self._frames(ks.kind, t_ms, group)
                if raws is None:
                    continue
                self._remember(ks, key, t_ms, None)
                mark = span_key(ks.kind, group[0])
                for raw in raws:
                    self._write(ks, key, t_ms / 1000.0, raw, mark)
                n += len(raws)
            ks.held.clear()
        return n

    def context_records(self) -> list[tuple[bytes, float]]:
        """The latest record of every context kind and key, for the start of a new file."""
        return [rt for ks in self.states.values() if ks.kind.context for rt in ks.context.values()]

    def counters(self) -> dict:
        return {
            "records": {n: ks.records for n, ks in self.states.items()},
            "decimated": sum(ks.skipped for ks in self.states.values()),
            "written_before": sum(ks.repeated for ks in self.states.values()),
            "encode_errors": self.encode_errors,
            "time_errors": self.time_errors,
            "not_written": self.not_written,
        }


class BatchWriter(Task):
    def __init__(self, runner: TaskRunner) -> None:
        super().__init__(runner)
        ctx, cfg = self.ctx, self.config
        self.failures = 0
        self.host_flushes = 0
        kinds, periods = kind_selection(cfg)
        self.recorder: BatchRecorder | None = None
        self.store = store_for(
            cfg,
            ctx.paths.home,
            ctx.run_number,
            ctx.t0_sc_s,
            ctx.t0_mono_s,
            self.log,
            context=lambda: self.recorder.context_records() if self.recorder else [],
            make_room=lambda need: give_way(ctx.paths.log_root, ctx.log_dir, need),
        )
        self.directory = self.store.dir
        # The writer's own log lines are the downlink's story: they keep only the status files'
        # reserve, not the downlink's (the other logs stop before it; these are a few lines).
        for h in logging.getLogger().handlers:
            if isinstance(h, SyncingFileHandler):
                h.min_free_bytes = min(h.min_free_bytes, cfg.log_min_free_bytes)
        self.recorder = BatchRecorder(kinds, periods, self.store, ctx.sc_now, self.log)
        try:
            report = self.store.open()
        except OSError as exc:
            self.store.failed = True
            self.log.error(
                "cannot use the batch directory %s: %s (records are counted, not written)", self.directory, exc
            )
            return
        seeded = self.recorder.seed(self.store.run_records()) if report.restarted else 0
        spans = self.recorder.seed_spans(self.store.spans)
        self.log.info(
            "batch files in %s, next sequence %d; kinds %s%s%s%s",
            self.directory,
            report.next_sequence,
            ", ".join(f"{k.name}@{_period_text(periods[k.name])}" for k in kinds),
            f"; recovered {len(report.recovered)} .part files" if report.recovered else "",
            f"; restarted within run {ctx.run_number}: {seeded} records already written" if report.restarted else "",
            f"; the series wrote {spans} kinds and keys before: their spans are not written again"
            if spans
            else "; a new series (configuration)"
            if not report.spans_carried
            else "",
        )

    def _made(self) -> BatchRecorder:
        """The recorder (None only while ``__init__`` makes the store it writes to)."""
        assert self.recorder is not None
        return self.recorder

    def reads(self, channel: str) -> frozenset[str]:
        """The types its batch record kinds record, and the host's commands."""
        return frozenset(self._made().by_type) | {"host_command"}

    def on_message(self, channel: str, msg: Message, raw: bytes) -> None:
        if msg.type == "host_command":
            if msg.body["command"] == "flush_batches":
                self.host_flushes += 1
                if self.store.file is not None:
                    self.log.info("closing the open batch file on the host's request (frame %d)", msg.body["seq"])
                    self.guard("closing the batch file for the host", self.store.close_file, fmt.FILE_CLOSED_HOST)
            return
        self.guard(f"recording {msg.type}", self._made().handle, msg.type, msg.body)

    def step(self) -> float:
        _, wait = self.guard("batch file upkeep", self.store.tick)
        return 0.5 if wait is None else min(wait, 0.5)

    def on_stop(self, reason: str) -> None:
        _, n = self.guard("recording the final messages", self._made().finish)
        self.guard("closing the batch file", self.store.close)
        self.log.info("closed: %s final records; %s", n, self.store.counters.as_dict())

    def counters(self) -> dict:
        return {
            **self._made().counters(),
            **self.store.counters.as_dict(),
            "failures": self.failures,
            "host_flushes": self.host_flushes,
            "downlink_failed": self.store.failed,
        }


def _period_text(p: float | None) -> str:
    return "change" if p is None or math.isinf(p) else f"{p:g}s"


TASK_CLASS = BatchWriter
