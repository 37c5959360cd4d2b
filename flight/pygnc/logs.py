"""Log directories and writers: ``~/pygnc_logs/run_NNNNN/``.

* One directory per run, numbered (the Pi's wall clock may be unset, a counter is not).
  Old runs are pruned, oldest first, so the whole tree stays under a size bound.
* A text log per task (``<task>.log``), one line per record, flushed per line and fsynced
  periodically: a power cut loses at most the last ``log_fsync_period_s`` of lines and
  never corrupts earlier ones (append-only).
* The binary bus log (``bus.log``, frames of :mod:`pygnc.formats.buslog`), buffered briefly,
  flushed and fsynced periodically; the reader skips a torn last frame.
* Logs never fill the disk: before the free space of their file system falls under a
  reserve (``Config.log_reserve_bytes``: the status files' reserve plus the downlink's, so
  batch files come before logs) they stop growing, and a write error (a full disk) drops
  what was buffered instead of holding it; both are counted, retried every
  :data:`RETRY_S`, and never raise into the task - the status and info files must go on
  being written.  When the downlink itself runs out of room the logs give way
  (:func:`give_way`: the oldest runs, then this run's bus log).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from .atomic import free_bytes, fsync_dir, move_aside
from .formats.buslog import encode_frame, encode_header_frame

RUN_DIR_RE = re.compile(r"^run_(\d{5,})$")
#: After a log write error or with the free space under the reserve, writing is tried
#: again after this long, s.
RETRY_S = 5.0
LOG_FORMAT = "%(asctime)s.%(msecs)03d %(t_sc)s %(name)s %(levelname)s %(message)s"


def _dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def list_runs(log_root: Path) -> list[tuple[int, Path]]:
    if not log_root.is_dir():
        return []
    runs = []
    for p in log_root.iterdir():
        m = RUN_DIR_RE.match(p.name)
        if m and p.is_dir():
            runs.append((int(m.group(1)), p))
    return sorted(runs)


def create_run_dir(log_root: Path, total_bytes_bound: int, reserve_bytes: int) -> tuple[int, Path, str]:
    """Make the next ``run_NNNNN`` directory after pruning old runs; returns (number, path,
    note), the note saying what had to be fixed first ("" if nothing).

    Oldest runs are deleted until the existing runs plus *reserve_bytes* (the new run's
    budget) fit in *total_bytes_bound*.  A file (or a link to one) where *log_root* must be
    is renamed aside, never deleted.  Raises ``OSError`` if the directory cannot be made
    (e.g. a full disk); the caller then logs elsewhere.
    """
    note = ""
    if os.path.lexists(log_root) and not log_root.is_dir():
        moved = move_aside(log_root)
        note = f"{log_root} was not a directory: renamed to {moved.name}"
    log_root.mkdir(parents=True, exist_ok=True)
    runs = list_runs(log_root)
    sizes = [(n, p, _dir_size(p)) for n, p in runs]
    total = sum(s for _, _, s in sizes)
    for _n, p, s in sizes:
        if total + reserve_bytes <= total_bytes_bound:
            break
        shutil.rmtree(p, ignore_errors=True)
        total -= s
    number = runs[-1][0] + 1 if runs else 1
    while True:
        path = log_root / f"run_{number:05d}"
        try:
            path.mkdir()
            break
        except FileExistsError:
            number += 1
    fsync_dir(log_root)
    return number, path, note


def give_way(log_root: Path, current: Path, need_bytes: int) -> tuple[int, list[str]]:
    """Make room for the downlink (the batch writer asks when the free space falls under the
    status files' reserve): delete the oldest runs' log directories under *log_root* - never
    *current*, this run's - until about *need_bytes* are freed, then, if that is not enough,
    empty this run's bus log (its writer appends on, the reader resynchronises).  Returns
    (bytes freed, what was deleted, for the log)."""
    freed, what = 0, []
    try:
        keep = current.resolve()
    except OSError:
        keep = current
    for _n, path in list_runs(log_root):
        if freed >= need_bytes:
            break
        try:
            if path.resolve() == keep:
                continue
        except OSError:
            continue
        size = _dir_size(path)
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            freed += size
            what.append(path.name)
    if freed < need_bytes:
        bus = current / "bus.log"
        try:
            size = os.stat(bus).st_size
            if size:
                os.truncate(bus, 0)
                freed += size
                what.append(f"{current.name}/bus.log emptied")
        except OSError:
            pass
    if what:
        fsync_dir(log_root)
    return freed, what


class _ScTimeFilter(logging.Filter):
    """Adds the spacecraft time (``t_sc``) to every record."""

    def __init__(self, sc_now: Callable[[], float]) -> None:
        super().__init__()
        self.sc_now = sc_now

    def filter(self, record: logging.LogRecord) -> bool:
        record.t_sc = f"sc={self.sc_now():.1f}"
        return True


class SyncingFileHandler(logging.FileHandler):
    """Append-only, flushed per record, fsynced by :meth:`sync` (called periodically).

    Keeps *min_free_bytes* free on its file system (records are dropped and counted while
    the free space is under it, checked at most every :data:`RETRY_S`), and a write error
    (a full disk) is counted, never printed per record: the terminal is the host's."""

    def __init__(self, path: str | os.PathLike, min_free_bytes: int = 0) -> None:
        super().__init__(path, mode="a", encoding="utf-8", delay=False)
        self._dirty = False
        self.min_free_bytes = int(min_free_bytes)
        self.dropped = 0  # records not written (reserve, write errors)
        self.write_errors = 0  # (FileHandler's own errors attribute is the file's encoding-error mode)
        self._paused_until = 0.0  # no writes before this (monotonic): reserve or error
        self._next_space_check = 0.0

    def _space_ok(self, now: float) -> bool:
        if self.min_free_bytes <= 0 or now < self._next_space_check:
            return now >= self._paused_until
        self._next_space_check = now + RETRY_S
        free = free_bytes(os.path.dirname(self.baseFilename))
        if free is not None and free < self.min_free_bytes:
            self._paused_until = now + RETRY_S
            return False
        return now >= self._paused_until

    def emit(self, record: logging.LogRecord) -> None:
        if not self._space_ok(time.monotonic()):
            self.dropped += 1
            return
        super().emit(record)  # FileHandler flushes after each record
        self._dirty = True

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        self.write_errors += 1
        self.dropped += 1
        self._paused_until = time.monotonic() + RETRY_S

    def sync(self) -> None:
        if self._dirty and self.stream is not None:
            try:
                self.stream.flush()
                os.fsync(self.stream.fileno())
            except (OSError, ValueError):
                self.write_errors += 1
            self._dirty = False

    def close(self) -> None:
        try:
            super().close()
        except (OSError, ValueError):  # the last flush on a full disk
            self.write_errors += 1


def records_dropped() -> int:
    """Log records of this process not written (free-space reserve, write errors)."""
    return sum(h.dropped for h in logging.getLogger().handlers if isinstance(h, SyncingFileHandler))


def setup_task_logging(
    log_dir: Path, name: str, sc_now: Callable[[], float], echo_stderr: bool = False, min_free_bytes: int = 0
) -> logging.Logger:
    """Configure the root logger of this process to write ``<log_dir>/<name>.log``.

    If that file cannot be opened (a full disk), the process logs to stderr only (the
    supervisor's stderr is the host's terminal: warnings and worse only)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    try:
        handler = SyncingFileHandler(log_dir / f"{name}.log", min_free_bytes)
    except OSError as exc:
        err = logging.StreamHandler()
        err.setLevel(logging.WARNING)
        err.setFormatter(logging.Formatter(f"pygnc {name} %(levelname)s %(message)s"))
        root.addHandler(err)
        root.setLevel(logging.INFO)
        logging.getLogger(name).error("cannot write the log file %s: %s", log_dir / f"{name}.log", exc)
        return logging.getLogger(name)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S"))
    handler.addFilter(_ScTimeFilter(sc_now))
    root.addHandler(handler)
    if echo_stderr:
        err = logging.StreamHandler()
        err.setLevel(logging.WARNING)
        err.setFormatter(logging.Formatter("pygnc %(name)s %(levelname)s %(message)s"))
        root.addHandler(err)
    root.setLevel(logging.INFO)
    return logging.getLogger(name)


def sync_logs() -> None:
    """fsync every syncing handler of this process (cheap when nothing was written)."""
    for h in logging.getLogger().handlers:
        if isinstance(h, SyncingFileHandler):
            h.sync()


class BusLogWriter:
    """Appends bus messages as frames; bounded in size; durable every ``fsync_period_s``.

    Never raises after construction and never holds more than one buffer (64 kB): frames
    beyond ``max_bytes``, frames while the file system's free space is under
    ``min_free_bytes``, and frames lost to a write error are counted in
    :attr:`frames_not_written` (:attr:`limited` says why, the first time); after a write
    error or a low-space check, writing is tried again after :data:`RETRY_S`."""

    #: Buffered bytes that trigger a write.
    FLUSH_BYTES = 64 * 1024

    def __init__(
        self,
        path: Path,
        run: int,
        schema: int,
        max_bytes: int,
        fsync_period_s: float,
        min_free_bytes: int = 0,
        spacecraft_id: int = 0,
    ):
        self.path = path
        self.max_bytes = max_bytes
        self.fsync_period_s = fsync_period_s
        self.min_free_bytes = int(min_free_bytes)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.bytes_written = os.fstat(self.fd).st_size
        self.frames_written = 0
        self.frames_not_written = 0  # size bound, free-space reserve, write errors
        self.write_errors = 0
        self.limited: str | None = None  # why frames were first not written
        self._buf: list[bytes] = []
        self._buf_bytes = 0
        self._paused_until = 0.0
        self._last_sync = time.monotonic()
        self._log = logging.getLogger("buslog")
        self._write(encode_header_frame(run, schema, spacecraft_id))
        self.flush(fsync=True)

    def _not_written(self, n: int, why: str) -> None:
        self.frames_not_written += n
        if self.limited is None:
            self.limited = why
            self._log.warning(
                "bus log %s: frames are not written (%s); they are counted "
                "(frames_not_logged) and writing is retried every %.0f s",
                self.path,
                why,
                RETRY_S,
            )

    def _write(self, frame: bytes) -> None:
        if self.bytes_written + self._buf_bytes + len(frame) > self.max_bytes:
            self._not_written(1, f"size bound of {self.max_bytes} bytes reached (Config.bus_log_max_bytes)")
            return
        if time.monotonic() < self._paused_until:
            self.frames_not_written += 1
            return
        self._buf.append(frame)
        self._buf_bytes += len(frame)

    def append(self, channel: str, t_rx_mono_s: float, message: bytes) -> None:
        self._write(encode_frame(channel, t_rx_mono_s, message))
        if self._buf_bytes >= self.FLUSH_BYTES:
            self.flush(fsync=False)

    def tick(self) -> None:
        """Flush and fsync if the period has passed (call from the task loop)."""
        if time.monotonic() - self._last_sync >= self.fsync_period_s:
            self.flush(fsync=True)

    def _drop_buffer(self, why: str) -> None:
        self._not_written(len(self._buf), why)
        self._buf.clear()
        self._buf_bytes = 0
        self._paused_until = time.monotonic() + RETRY_S

    def flush(self, fsync: bool = True) -> None:
        if self._buf:
            free = free_bytes(self.path.parent) if self.min_free_bytes > 0 else None
            if free is not None and free - self._buf_bytes < self.min_free_bytes:
                self._drop_buffer(
                    f"free space under the reserve of {self.min_free_bytes} bytes (Config.log_reserve_bytes)"
                )
            else:
                data = b"".join(self._buf)
                view = memoryview(data)
                try:
                    while view:
                        view = view[os.write(self.fd, view) :]
                except OSError as exc:
                    # A partial frame may be on disk (the reader skips it); nothing is retried.
                    self.bytes_written += len(data) - len(view)
                    self.write_errors += 1
                    self._drop_buffer(f"write error: {exc.strerror or exc}")
                else:
                    self.bytes_written += len(data)
                    self.frames_written += len(self._buf)
                    self._buf.clear()
                    self._buf_bytes = 0
        if fsync:
            try:
                os.fsync(self.fd)
            except OSError:
                self.write_errors += 1
            self._last_sync = time.monotonic()

    def close(self) -> None:
        if self.fd >= 0:
            self.flush(fsync=True)
            os.close(self.fd)
            self.fd = -1
