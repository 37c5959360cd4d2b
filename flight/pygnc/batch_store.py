"""The batch-file directory (``~/pygnc_batches/``): files, sequence numbers, recovery, bounds.

Only complete files ever carry their final name ``batch_NNNNNNNN.bin`` (layout:
:mod:`pygnc.formats.batch`), so the host can list what is ready by name alone:

* a file is created as ``batch_NNNNNNNN.bin.part`` (header with flag ``open``, fsynced, the
  directory fsynced), records are written to it as they come (a killed writer loses none)
  and fsynced at least every ``fsync_period_s`` (a power cut loses at most that much);
* it is closed before a record would take it past ``max_file_bytes``, once it has held data
  for ``max_file_age_s``, or when the writer stops: header rewritten with the record count
  and time span, fsync, rename to the final name, fsync of the directory;
* at start, every leftover ``.part`` is recovered: its intact records are kept (the torn or
  corrupt rest counted in the header's ``skipped_bytes``), the ``.part`` is replaced
  atomically by that content and renamed to its final name.  Both steps are atomic, so a
  crash during recovery only repeats it: records are never dropped silently nor written
  twice.  A ``.part`` with no intact record is deleted (and logged);
* sequence numbers only grow, across runs: the next one is kept in a small state file
  (``.batch_state.json``, replaced atomically, written *before* a file is created) and
  never below the highest number still on disk, so the host may delete or move files it
  has sent at any time;
* sequence numbers end at :data:`~pygnc.formats.batch.MAX_SEQUENCE` (the header's uint32):
  the store refuses to number a file beyond it (:class:`SequenceExhausted`; records are then
  counted, not written) rather than wrap or give two files one number;
* the total size of the directory stays under ``total_max_bytes`` (oldest files deleted
  first, logged); the free space may fall into the downlink's reserve (``reserve_bytes``:
  the logs have stopped before it, so only batch files use it) but never under
  ``min_free_bytes`` (the status files' reserve).  There the downlink comes first: the logs
  give way (``make_room``: the oldest runs' logs, then this run's bus log), never a
  complete batch file; when that is not enough - or no inode is free, or a write finds the
  disk full - records are **held** in memory (up to ``hold_max_bytes``, the oldest dropped
  and counted beyond) and written, in order, as soon as there is room, which the log says;
  records still held when the writer stops are lost (counted);
* something that is not a directory where the directory must be (a file named
  ``pygnc_batches``) is renamed to ``<name>.not-a-directory``, never deleted;
* what a run wrote is never written again by the next runs on the same configuration (a
  *series*, named by :func:`series_of`): the state file keeps, per record kind and key,
  the span of record times written (:func:`span_key`: records whose time is when
  something was measured - not the context kinds, the health table, notes, nor estimates
  propagated to "now"), updated when a file is closed and from every ``.part`` recovered;
  the writer skips a record inside its span.  So after a power cut the next start writes
  only what the cut run had not written, even when the host has taken its files;
* :attr:`BatchStore.failed` says the store could not write all it was given in this run
  (records lost, a write, sync or close error other than no room, an unusable directory,
  numbers exhausted, a ``.part`` that vanished before it was closed):
  the writer reports it (status flag ``downlink_failed``).

No bus, no numpy: :class:`BatchStore` takes framed records (bytes) and a clock; the writer
task (:mod:`pygnc.tasks.batch_writer`) decides what to record.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import fsync_dir, move_aside, remove_stale_temps, write_atomic
from .formats import batch as fmt
from .log_budget import log_failure
from .regular_files import read_small_file

if TYPE_CHECKING:
    from .config import Config

STATE_FILE = ".batch_state.json"
STATE_FORMAT = "pygnc-batch-state"
STATE_VERSION = 2
#: After a failed create/write (disk full, read-only), wait this long before trying again, s.
RETRY_AFTER_S = 5.0
#: How often the free space is checked while it is low, s.
FREE_CHECK_PERIOD_S = 10.0
#: Largest state file read, bytes (it holds a few numbers).
MAX_STATE_BYTES = 64 * 1024
#: Records held in memory while there is no room to write them, bytes (a day's downlink at
#: the default cadences is ~370 kB): the oldest held goes first beyond it.
HOLD_MAX_BYTES = 4 * 1024 * 1024
#: Room asked of the logs beyond the status files' reserve when the free space falls under
#: it, bytes: enough for a few files, so the logs are not pruned record by record.
ROOM_MARGIN_BYTES = 1024 * 1024
#: Errors that mean "no room" (a full disk, exhausted inodes, a quota): the records wait.
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT)


class SequenceExhausted(OSError):
    """The next batch file would need a sequence number beyond MAX_SEQUENCE."""


#: Kinds whose record time is when something was measured: the same inputs give the same
#: record in every run (:func:`span_key`).
MEASURED_KINDS = frozenset({"orbit", "attitude", "formation", "partner_orbit", "gps_fix", "range", "sensor", "hk"})
#: ... of which flag bit 0 says "propagated to now" (a record at a wall-clock instant).
_PROPAGATED_BIT_KINDS = frozenset({"orbit", "attitude", "formation", "partner_orbit"})


def span_key(kind: fmt.RecordKind, values: dict) -> tuple | None:
    """(kind name, key) of a record a series writes once, or None: a record at a measured
    time (:data:`MEASURED_KINDS`), not propagated to "now".  A superseded layout's record
    counts as its successor's (the same estimate, written before)."""
    name = kind.read_as
    if name not in MEASURED_KINDS or name in _PROPAGATED_BIT_KINDS and int(values.get("flags", 0)) & 1:
        return None
    return name, kind.key_of(values)


def series_of(config: object) -> str:
    """The series a run on *config* belongs to: a digest of the whole configuration."""
    return hashlib.sha256(repr(config).encode()).hexdigest()[:16]


def _key_from_json(key: Any) -> Any:
    return tuple(_key_from_json(k) for k in key) if isinstance(key, list) else key


def resolve_batch_dir(home: Path, configured: str) -> Path:
    """``Config.batch_dir``: absolute, ``~``-relative, or relative to PYGNC_HOME."""
    p = Path(configured).expanduser()
    return p if p.is_absolute() else Path(home) / p


def store_for(
    config: Config,
    home: Path,
    run: int,
    t0_sc_s: float,
    t0_mono_s: float,
    log: logging.Logger | None = None,
    context: Callable[[], list[tuple[bytes, float]]] | None = None,
    make_room: Callable[[int], tuple[int, list[str]]] | None = None,
) -> BatchStore:
    """The store (not opened) a run writes its batch files to under *config*: the batch
    writer's, and the supervisor's when it recovers what a writer left at the stop."""
    return BatchStore(
        resolve_batch_dir(home, config.batch_dir),
        run,
        f"{run}:{t0_sc_s!r}:{t0_mono_s!r}",  # the run, told apart from a later one with its number
        config.spacecraft_id,
        max_file_bytes=config.batch_file_max_bytes,
        max_file_age_s=config.batch_file_max_age_s,
        total_max_bytes=config.batch_total_max_bytes,
        min_free_bytes=config.log_min_free_bytes,
        reserve_bytes=config.batch_min_free_bytes,
        fsync_period_s=config.batch_fsync_period_s,
        log=log,
        context=context or (lambda: []),
        make_room=make_room,
        series=series_of(config),
    )


@dataclass
class StoreCounters:
    files_closed: int = 0
    records_written: int = 0
    bytes_written: int = 0
    records_not_written: int = 0  # lost: the hold overflowed, numbers exhausted, or held at the stop
    records_held: int = 0  # waiting in memory for room (now)
    records_written_late: int = 0  # written after waiting for room
    write_errors: int = 0
    files_pruned: int = 0  # deleted by the size bound (never for free space)
    log_bytes_freed: int = 0  # logs deleted or trimmed to make room for the downlink
    files_lost: int = 0  # the .part vanished before it could be closed
    parts_recovered: int = 0
    parts_removed_empty: int = 0
    fsyncs: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class OpenReport:
    """What :meth:`BatchStore.open` found."""

    next_sequence: int
    restarted: bool  # the writer restarted within the same run
    run_first_sequence: int
    recovered: list[tuple[int, int, int]] = field(default_factory=list)  # (seq, records, skipped bytes)
    removed_empty: list[int] = field(default_factory=list)
    state_problem: str = ""
    #: record spans carried from earlier runs of the series (0: a new series)
    spans_carried: int = 0


@dataclass
class _OpenFile:
    seq: int
    fd: int
    part: Path
    final: Path
    opened_mono: float
    size: int = 0
    records: int = 0
    data_records: int = 0  # not counting the context records at its start
    t_first: float = math.inf
    t_last: float = -math.inf
    unsynced_since: float | None = None


class BatchStore:
    def __init__(
        self,
        directory: Path,
        run: int,
        run_key: str,
        spacecraft_id: int,
        *,
        max_file_bytes: int = 25_600,
        max_file_age_s: float = 600.0,
        total_max_bytes: int = 32 * 1024 * 1024,
        min_free_bytes: int = 8 * 1024 * 1024,
        reserve_bytes: int = 64 * 1024 * 1024,
        fsync_period_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        log: logging.Logger | None = None,
        context: Callable[[], list[tuple[bytes, float]]] = lambda: [],
        make_room: Callable[[int], tuple[int, list[str]]] | None = None,
        hold_max_bytes: int = HOLD_MAX_BYTES,
        series: str | None = None,
    ):
        self.dir = Path(directory)
        self.run, self.run_key, self.spacecraft_id = run, run_key, spacecraft_id
        self.max_file_bytes = max_file_bytes
        self.max_file_age_s = max_file_age_s
        self.total_max_bytes = total_max_bytes
        self.min_free_bytes = min_free_bytes
        self.reserve_bytes = reserve_bytes
        self.fsync_period_s = fsync_period_s
        self.clock = clock
        self.log = log or logging.getLogger("batch_store")
        self.context = context
        self.make_room = make_room
        self.hold_max_bytes = hold_max_bytes
        self.held: deque[tuple[bytes, float, tuple | None]] = deque()  # records waiting for room, in order
        self.held_bytes = 0
        self._held_since = 0  # records held in the current shortage (for the log)
        self.counters = StoreCounters()
        self.next_seq = 1
        self.run_first_seq = 1
        self.file: _OpenFile | None = None
        self.opened = False
        self._retry_at = 0.0
        self._disk_low = False
        self._in_reserve = False
        self._next_free_check = 0.0
        self._errors_logged = 0
        #: could not write everything it was given in this run (see the module docstring)
        self.failed = False
        #: The series (:func:`series_of`; None: none, nothing is carried between runs) and,
        #: per (kind name, key), [first, last] record time written, ms.
        self.series = series
        self.spans: dict[tuple, list[int]] = {}
        self._same_series = False  # the state found at open is of this series

    # ------------------------------------------------------------------ paths and state
    @property
    def _max_read_bytes(self) -> int:
        """Largest batch file read back (recovery, a restart): a file holds at most
        ``max_file_bytes`` and a record; anything far larger is no file of this writer's."""
        return 4 * self.max_file_bytes + (1 << 20)

    @property
    def state_path(self) -> Path:
        return self.dir / STATE_FILE

    def _scan(self) -> tuple[dict[int, Path], dict[int, Path]]:
        finals: dict[int, Path] = {}
        parts: dict[int, Path] = {}
        try:
            entries = list(os.scandir(self.dir))
        except OSError:
            return finals, parts
        for e in entries:  # a number beyond the header's range is no file of ours: left alone
            m = fmt.FILE_RE.match(e.name)
            if m and int(m.group(1)) <= fmt.MAX_SEQUENCE:
                finals[int(m.group(1))] = Path(e.path)
                continue
            m = fmt.PART_RE.match(e.name)
            if m and int(m.group(1)) <= fmt.MAX_SEQUENCE:
                parts[int(m.group(1))] = Path(e.path)
        return finals, parts

    def leftover_parts(self) -> list[Path]:
        """The ``.part`` files in the directory (a crash's, a power cut's, or open now)."""
        return sorted(self._scan()[1].values())

    def _read_state(self) -> tuple[dict, str]:
        try:
            raw = read_small_file(self.state_path, MAX_STATE_BYTES)
        except FileNotFoundError:
            return {}, "no state file"
        except OSError as exc:
            return {}, f"state file unreadable: {exc}"
        try:
            st = json.loads(raw)
            if not (
                isinstance(st, dict)
                and st.get("format") == STATE_FORMAT
                and isinstance(st.get("next_sequence"), int)
                and fmt.MIN_SEQUENCE <= st["next_sequence"] <= fmt.MAX_SEQUENCE + 1
                and isinstance(st.get("spans", []), list)
                and type(st.get("run_first_sequence", 0)) is int
            ):
                raise ValueError("not a batch state")
            return st, ""
        except ValueError as exc:
            return {}, f"state file invalid ({exc})"

    def _write_state(self) -> None:
        st = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "next_sequence": self.next_seq,
            "run": self.run,
            "run_key": self.run_key,
            "run_first_sequence": self.run_first_seq,
            "series": self.series,
            "spans": [[name, key, lo, hi] for (name, key), (lo, hi) in self.spans.items()],
        }
        write_atomic(self.state_path, (json.dumps(st) + "\n").encode())

    def _load_spans(self, st: dict) -> int:
        """The spans of the state's series if it is ours; how many."""
        self.spans = {}
        self._same_series = self.series is not None and st.get("series") == self.series
        if not self._same_series:
            return 0
        for item in st.get("spans") or ():
            try:
                name, key, lo, hi = item
                if name in MEASURED_KINDS and isinstance(lo, int) and isinstance(hi, int) and lo <= hi:
                    self.spans[(name, _key_from_json(key))] = [lo, hi]
            except (TypeError, ValueError):
                continue  # (a hand-edited state: that span is written again, never lost)
        return len(self.spans)

    def _extend_span(self, mark: tuple, t_ms: int) -> None:
        span = self.spans.get(mark)
        if span is None:
            self.spans[mark] = [t_ms, t_ms]
        else:
            span[0], span[1] = min(span[0], t_ms), max(span[1], t_ms)

    def _mark_records(self, records: Iterable[fmt.Record]) -> None:
        for r in records:
            kind = r.kind
            if kind is None or kind.read_as not in MEASURED_KINDS:
                continue
            try:
                mark = span_key(kind, kind.unpack(r.payload))
                t_ms = fmt.record_time_ms(r.t_sc_s)
            except (ValueError, KeyError):
                continue
            if mark is not None:
                self._extend_span(mark, t_ms)

    def _reserve_sequence(self) -> int:
        """The next sequence number, made durable before any file carries it;
        :class:`SequenceExhausted` beyond MAX_SEQUENCE."""
        seq = self.next_seq
        if seq > fmt.MAX_SEQUENCE:
            raise SequenceExhausted(
                f"batch sequence numbers are exhausted (the next would be {seq}, beyond the "
                f"header's {fmt.MAX_SEQUENCE}): remove the batch files and {STATE_FILE} "
                "to number from 1 again"
            )
        self.next_seq += 1
        try:
            self._write_state()
        except OSError:
            self.next_seq -= 1
            raise
        return seq

    # ------------------------------------------------------------------ start
    def open(self) -> OpenReport:
        """Create the directory (a non-directory in its place is renamed aside), load the
        sequence state, recover leftover ``.part`` files and apply the size bounds.  Raises
        OSError only if the directory cannot be made."""
        if os.path.lexists(self.dir) and not self.dir.is_dir():
            moved = move_aside(self.dir)
            self.log.warning(
                "%s was not a directory: renamed to %s, batch files go to a new directory", self.dir, moved.name
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.state_path)
        for tmp in self.dir.glob(f".{fmt.FILE_PREFIX}*.tmp*"):  # write_atomic temps of .part rewrites
            try:
                tmp.unlink()
            except OSError:
                pass
        st, problem = self._read_state()
        if problem and problem != "no state file":
            self.log.warning("batch %s; sequence numbers continue from the files on disk", problem)
        finals, parts = self._scan()
        highest = max([*finals, *parts], default=0)
        self.next_seq = max(int(st.get("next_sequence", 1)), highest + 1)
        restarted = st.get("run_key") == self.run_key
        self.run_first_seq = int(st.get("run_first_sequence", self.next_seq)) if restarted else self.next_seq
        report = OpenReport(self.next_seq, restarted, self.run_first_seq, state_problem=problem)
        report.spans_carried = self._load_spans(st)
        try:
            self._write_state()
        except OSError as exc:
            self.log.error("cannot write the batch state file %s: %s", self.state_path, exc)
        for seq in sorted(parts):
            try:
                self._recover(seq, parts[seq], finals, report)
            except OSError as exc:
                self.log.error("cannot recover %s: %s (left in place)", parts[seq].name, exc)
        self.opened = True
        self.prune()
        report.next_sequence = self.next_seq
        if self.next_seq > fmt.MAX_SEQUENCE:
            self.failed = True
            self.log.error(
                "batch sequence numbers are exhausted (next %d, beyond %d): no batch file can be "
                "written; remove the batch files and %s to number from 1 again",
                self.next_seq,
                fmt.MAX_SEQUENCE,
                STATE_FILE,
            )
        return report

    def _recover(self, seq: int, part: Path, finals: dict[int, Path], report: OpenReport) -> None:
        data = read_small_file(part, self._max_read_bytes)  # (a FIFO is refused, never waited on)
        bf = fmt.decode_batch(data)
        if not bf.records:
            part.unlink()
            fsync_dir(self.dir)
            self.counters.parts_removed_empty += 1
            report.removed_empty.append(seq)
            self.log.info("removed %s: no intact record in its %d bytes", part.name, len(data))
            return
        if seq in finals:  # cannot happen with atomic renames; keep both, never drop data
            new_seq = self._reserve_sequence()
            self.log.warning(
                "%s exists next to %s: recovering the .part as batch %d", finals[seq].name, part.name, new_seq
            )
            seq = new_seq
        h = bf.header
        flags = ((h["flags"] if h else fmt.FILE_HEADER_REBUILT) & ~fmt.FILE_OPEN) | fmt.FILE_RECOVERED
        times = [r.t_sc_s for r in bf.records]
        body = b"".join(r.raw for r in bf.records)
        skipped = len(data) - (fmt.HEADER_SIZE if h else 0) - len(body)
        header = fmt.encode_header(
            h["run"] if h else 0,
            seq,
            h["spacecraft_id"] if h else self.spacecraft_id,
            flags,
            min(times),
            max(times),
            len(bf.records),
            skipped,
        )
        write_atomic(part, header + body)  # the .part now holds exactly the recovered file
        if self._same_series:  # (a .part of another configuration's run is not this series')
            self._mark_records(bf.records)
            self._save_spans()  # before the rename: a crash between the two only repeats this
        final = self.dir / fmt.file_name(seq)
        os.replace(part, final)
        fsync_dir(self.dir)
        finals[seq] = final
        self.counters.parts_recovered += 1
        report.recovered.append((seq, len(bf.records), skipped))
        self.log.warning(
            "recovered %s from a crash or power cut: %d intact records kept, %d bytes of a "
            "torn or corrupt tail dropped",
            final.name,
            len(bf.records),
            skipped,
        )

    def run_records(self) -> list[fmt.Record]:
        """Records this run already wrote (for a writer restarted within the run)."""
        out: list[fmt.Record] = []
        finals, _ = self._scan()
        for seq in sorted(s for s in finals if s >= self.run_first_seq):
            try:
                bf = fmt.decode_batch(read_small_file(finals[seq], self._max_read_bytes))
            except OSError:
                continue  # the host took it meanwhile (or it is no file of ours)
            if bf.header is not None and bf.header["run"] == self.run:
                out.extend(bf.records)
        return out

    # ------------------------------------------------------------------ writing
    def _note_error(self, what: str, exc: OSError, failed: bool = True) -> None:
        self.failed = self.failed or failed
        self.counters.write_errors += 1
        self._errors_logged += 1
        log_failure(
            self.log, self._errors_logged, "batch file %s failed: %s", what, exc, traceback=False, word="errors"
        )

    def _open_file(self) -> _OpenFile:
        seq = self._reserve_sequence()
        final = self.dir / fmt.file_name(seq)
        part = final.with_name(final.name + fmt.PART_SUFFIX)
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        f = _OpenFile(seq, fd, part, final, self.clock())
        try:
            self._write(f, fmt.encode_header(self.run, seq, self.spacecraft_id, fmt.FILE_OPEN))
            os.fsync(fd)
            fsync_dir(self.dir)
        except OSError:
            os.close(fd)
            try:
                part.unlink()
            except OSError:
                pass
            raise
        self.file = f
        for raw, t in self.context():
            self._write(f, raw)
            self._count_record(f, t, data=False)
        return f

    def _write(self, f: _OpenFile, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(f.fd, view) :]
        f.size += len(data)
        self.counters.bytes_written += len(data)
        if f.unsynced_since is None:
            f.unsynced_since = self.clock()

    def _count_record(self, f: _OpenFile, t: float, data: bool = True) -> None:
        f.records += 1
        f.data_records += data
        f.t_first, f.t_last = min(f.t_first, t), max(f.t_last, t)
        self.counters.records_written += 1

    def append(self, record: bytes, t_sc_s: float, mark: tuple | None = None) -> bool:
        """Write one framed record, or hold it in memory until there is room (written, in
        order, as soon as there is: :meth:`tick`); False (counted) only if it is lost - the
        numbers are exhausted - or, beyond HOLD_MAX_BYTES, the oldest held record is.
        *mark*: its :func:`span_key` (None: no span)."""
        if self.held or not self._write_now(record, t_sc_s, self.clock(), mark):
            if self.next_seq > fmt.MAX_SEQUENCE:
                self.counters.records_not_written += 1
                self.failed = True
                return False
            self._hold(record, t_sc_s, mark)
        self.write_held()
        return True

    def _hold(self, record: bytes, t_sc_s: float, mark: tuple | None = None) -> None:
        if not self.held:
            self.log.warning(
                "no room for batch records (%s): holding them in memory, written as soon as there is room",
                "free space under the status files' reserve"
                if self._disk_low
                else "the batch directory cannot be used now",
            )
            self._held_since = 0
        self.held.append((record, t_sc_s, mark))
        self.held_bytes += len(record)
        self._held_since += 1
        while self.held_bytes > self.hold_max_bytes and len(self.held) > 1:
            old = self.held.popleft()[0]
            self.held_bytes -= len(old)
            self.counters.records_not_written += 1
            if not self.failed:
                self.log.error(
                    "more than %d bytes of batch records held: the oldest are dropped (counted)", self.hold_max_bytes
                )
            self.failed = True
        self.counters.records_held = len(self.held)

    def write_held(self) -> int:
        """Write the held records, oldest first, while there is room; returns how many."""
        n = 0
        now = self.clock()
        while self.held:
            record, t, mark = self.held[0]
            if not self._write_now(record, t, now, mark):
                break
            self.held.popleft()
            self.held_bytes -= len(record)
            n += 1
        if n:
            self.counters.records_written_late += n
            self.counters.records_held = len(self.held)
            if not self.held:
                self.log.warning(
                    "room again: wrote the %d batch records held while there was none (none lost)", self._held_since
                )
        return n

    def _write_now(self, record: bytes, t_sc_s: float, now: float, mark: tuple | None = None) -> bool:
        """Write *record* now if there is room and the directory can be used (extending the
        span of *mark*); False if not (nothing counted: the caller holds it)."""
        if not self.opened and now >= self._retry_at:
            try:  # the directory could not be made at start: try again now and then
                self.open()
            except OSError as exc:
                self._note_error("opening the directory", exc)
                self._retry_at = now + RETRY_AFTER_S
        if not self.opened or now < self._retry_at or self._low_on_space(now):
            return False
        try:
            f = self.file
            if f is not None and f.data_records and f.size + len(record) > self.max_file_bytes:
                self.close_file(fmt.FILE_CLOSED_SIZE)
                f = None
            if f is None:
                f = self._open_file()
            self._write(f, record)
            self._count_record(f, t_sc_s)
            if mark is not None:
                self._extend_span(mark, fmt.record_time_ms(t_sc_s))
            return True
        except SequenceExhausted as exc:
            self._note_error("numbering", exc)
            self._retry_at = now + RETRY_AFTER_S
            return False
        except OSError as exc:
            no_room = exc.errno in _NO_ROOM
            self._note_error("write", exc, failed=not no_room)  # no room: the records wait, none lost
            if no_room:
                self._disk_low = True
                self._next_free_check = now + RETRY_AFTER_S
            self._retry_at = now + RETRY_AFTER_S
            self._abandon()
            return False

    def _abandon(self) -> None:
        """After a write error: close the file if possible (the records written stay in it);
        if even that fails, the .part stays behind for the next start to recover."""
        try:
            self.close_file(fmt.FILE_CLOSED_ERROR)
        except OSError as exc:
            self._note_error("close", exc)

    def sync(self) -> None:
        f = self.file
        if f is not None and f.unsynced_since is not None:
            os.fsync(f.fd)
            f.unsynced_since = None
            self.counters.fsyncs += 1

    def tick(self) -> float:
        """Write held records when there is room again, fsync when due, close by age; returns
        how long the caller may wait before the next tick, s."""
        if self.held:
            self.write_held()
        now = self.clock()
        f = self.file
        if f is None:
            return 1.0
        try:
            if f.unsynced_since is not None and now - f.unsynced_since >= self.fsync_period_s:
                self.sync()
            if f.data_records and now - f.opened_mono >= self.max_file_age_s:
                self.close_file(fmt.FILE_CLOSED_AGE)
                return 1.0
        except OSError as exc:
            self._note_error("sync", exc)
            self._abandon()
            return 1.0
        waits = [f.opened_mono + self.max_file_age_s - now] if f.data_records else [1.0]
        if f.unsynced_since is not None:
            waits.append(f.unsynced_since + self.fsync_period_s - now)
        return max(0.0, min(waits))

    def close_file(self, reason: int) -> None:
        """Finish the open file: header, fsync, rename to the final name, fsync the directory."""
        f = self.file
        if f is None:
            return
        self.file = None
        # The spans first (the host may take the file as soon as it has its name; a cut
        # before the rename only has the .part recovered with them again), and outside the
        # instant between the final header and the rename.
        self._save_spans()
        try:
            header = fmt.encode_header(self.run, f.seq, self.spacecraft_id, reason, f.t_first, f.t_last, f.records, 0)
            os.pwrite(f.fd, header, 0)
            os.fsync(f.fd)
            self.counters.fsyncs += 1
        finally:
            os.close(f.fd)
        try:
            os.replace(f.part, f.final)
        except FileNotFoundError:
            self.counters.files_lost += 1
            self.failed = True
            self.log.error("%s vanished before it was closed: %d records lost", f.part.name, f.records)
            return
        fsync_dir(self.dir)
        self.counters.files_closed += 1
        self.prune()

    def _save_spans(self) -> None:
        """The state file with the spans of every record in a closed file (a failure only
        means that a cut may have them written again)."""
        try:
            self._write_state()
        except OSError as exc:
            self.log.warning("cannot save the spans written in %s: %s", self.state_path.name, exc)

    def close(self) -> None:
        """Write what is held if there is room now, and close the open file (if any) at
        stop; records still held are lost (counted, logged)."""
        if self.held:
            self._retry_at = 0.0
            self._next_free_check = 0.0
            self.write_held()
        if self.held:
            self.counters.records_not_written += len(self.held)
            self.failed = True
            self.log.error(
                "stopping with %d batch records held and still no room for them: they are lost", len(self.held)
            )
            self.held.clear()
            self.held_bytes = 0
            self.counters.records_held = 0
        try:
            self.close_file(fmt.FILE_CLOSED_STOP)
        except OSError as exc:
            self._note_error("close", exc)

    # ------------------------------------------------------------------ bounds
    def _sizes(self) -> list[tuple[int, Path, int]]:
        finals, _ = self._scan()
        out = []
        for seq in sorted(finals):
            try:
                out.append((seq, finals[seq], finals[seq].stat().st_size))
            except OSError:
                pass  # the host took it meanwhile
        return out

    def _free_bytes(self) -> int:
        """Bytes free to this user on the directory's file system; 0 when no inode is free
        (no file can be made however many bytes there are)."""
        try:
            v = os.statvfs(self.dir)
            if v.f_files and not v.f_favail:
                return 0
            return shutil.disk_usage(self.dir).free
        except OSError:
            return 0

    def prune(self) -> None:
        """Delete the oldest complete files until the directory fits ``total_max_bytes`` (the
        size bound; never for free space: the downlink comes first); when the free space
        falls under ``min_free_bytes`` (the status files' reserve) - or no inode is free - ask
        the logs to make room (:attr:`make_room`: the oldest runs' logs, then this run's bus
        log); say once when the free space enters the downlink's reserve."""
        files = self._sizes()
        total = sum(s for _, _, s in files) + (self.file.size if self.file else 0)
        deleted = []
        for seq, path, size in files:
            if total <= self.total_max_bytes:
                break
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                self._note_error("prune", exc, failed=False)  # nothing of this run lost
                break
            total -= size
            deleted.append(seq)
        if deleted:
            self.counters.files_pruned += len(deleted)
            fsync_dir(self.dir)
            self.log.warning(
                "deleted %d oldest batch files (%s) to stay under %d bytes (batch_total_max_bytes)",
                len(deleted),
                fmt.ranges_text(deleted),
                self.total_max_bytes,
            )
        free = self._free_bytes()
        if free < self.min_free_bytes and self.make_room is not None:
            try:
                freed, what = self.make_room(self.min_free_bytes - free + ROOM_MARGIN_BYTES + self.held_bytes)
            except OSError as exc:
                freed, what = 0, [f"failed: {exc}"]
            if freed:
                self.counters.log_bytes_freed += freed
                self.log.warning(
                    "%d bytes free, under the status files' reserve of %d: the logs gave way to the downlink "
                    "(%d bytes: %s)",
                    free,
                    self.min_free_bytes,
                    freed,
                    ", ".join(what),
                )
                free = self._free_bytes()
        self._disk_low = free < self.min_free_bytes
        in_reserve = free < self.min_free_bytes + self.reserve_bytes
        if in_reserve and not self._in_reserve:
            self.log.warning(
                "%d bytes free, under the downlink's reserve of %d: the logs have stopped, batch files "
                "go on down to %d bytes free",
                free,
                self.min_free_bytes + self.reserve_bytes,
                self.min_free_bytes,
            )
        self._in_reserve = in_reserve
        self._next_free_check = self.clock() + FREE_CHECK_PERIOD_S

    def _low_on_space(self, now: float) -> bool:
        if self._disk_low and now >= self._next_free_check:
            self.prune()
        return self._disk_low
