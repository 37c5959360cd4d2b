"""Log directories and writers: ``~/pygnc_logs/run_NNNNN/``.

* One directory per run, numbered (the Pi's wall clock may be unset, a counter is not).
  Old runs are pruned, oldest first, so the whole tree stays under a size bound.
* A text log per task (``<task>.log``), one line per record, flushed per line and fsynced
  periodically: a power cut loses at most the last ``log_fsync_period_s`` of lines and
  never corrupts earlier ones (append-only).
* The binary bus log (``bus.log``, frames of :mod:`pygnc.formats.buslog`), buffered briefly,
  flushed and fsynced periodically; the reader skips a torn last frame.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path

from .atomic import fsync_dir
from .formats.buslog import encode_frame, encode_header_frame

RUN_DIR_RE = re.compile(r"^run_(\d{5,})$")
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


def create_run_dir(log_root: Path, total_bytes_bound: int, reserve_bytes: int) -> tuple[int, Path]:
    """Make the next ``run_NNNNN`` directory after pruning old runs.

    Oldest runs are deleted until the existing runs plus *reserve_bytes* (the new run's
    budget) fit in *total_bytes_bound*.
    """
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
    return number, path


class _ScTimeFilter(logging.Filter):
    """Adds the spacecraft time (``t_sc``) to every record."""

    def __init__(self, sc_now):
        super().__init__()
        self.sc_now = sc_now

    def filter(self, record):
        record.t_sc = f"sc={self.sc_now():.1f}"
        return True


class SyncingFileHandler(logging.FileHandler):
    """Append-only, flushed per record, fsynced by :meth:`sync` (called periodically)."""

    def __init__(self, path):
        super().__init__(path, mode="a", encoding="utf-8", delay=False)
        self._dirty = False

    def emit(self, record):
        super().emit(record)  # FileHandler flushes after each record
        self._dirty = True

    def sync(self):
        if self._dirty and self.stream is not None:
            try:
                self.stream.flush()
                os.fsync(self.stream.fileno())
            except (OSError, ValueError):
                pass
            self._dirty = False


def setup_task_logging(log_dir: Path, name: str, sc_now, echo_stderr: bool = False) -> logging.Logger:
    """Configure the root logger of this process to write ``<log_dir>/<name>.log``."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = SyncingFileHandler(log_dir / f"{name}.log")
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
    """Appends bus messages as frames; bounded in size; durable every ``fsync_period_s``."""

    def __init__(self, path: Path, run: int, schema: int, max_bytes: int, fsync_period_s: float):
        self.path = path
        self.max_bytes = max_bytes
        self.fsync_period_s = fsync_period_s
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.bytes_written = os.fstat(self.fd).st_size
        self.frames_written = 0
        self.frames_not_written = 0  # over the size bound
        self._buf: list[bytes] = []
        self._buf_bytes = 0
        self._last_sync = time.monotonic()
        self._write(encode_header_frame(run, schema))
        self.flush(fsync=True)

    def _write(self, frame: bytes) -> None:
        if self.bytes_written + self._buf_bytes + len(frame) > self.max_bytes:
            if not self.frames_not_written:
                logging.getLogger("buslog").warning(
                    "bus log %s reached its bound of %d bytes: further messages are counted, "
                    "not written (Config.bus_log_max_bytes)", self.path, self.max_bytes)
            self.frames_not_written += 1
            return
        self._buf.append(frame)
        self._buf_bytes += len(frame)
        self.frames_written += 1

    def append(self, channel: str, t_rx_mono_s: float, message: bytes) -> None:
        self._write(encode_frame(channel, t_rx_mono_s, message))
        if self._buf_bytes >= 64 * 1024:
            self.flush(fsync=False)

    def tick(self) -> None:
        """Flush and fsync if the period has passed (call from the task loop)."""
        if time.monotonic() - self._last_sync >= self.fsync_period_s:
            self.flush(fsync=True)

    def flush(self, fsync: bool = True) -> None:
        if self._buf:
            data = b"".join(self._buf)
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]
            self.bytes_written += len(data)
            self._buf.clear()
            self._buf_bytes = 0
        if fsync:
            os.fsync(self.fd)
            self._last_sync = time.monotonic()

    def close(self) -> None:
        if self.fd >= 0:
            self.flush(fsync=True)
            os.close(self.fd)
            self.fd = -1
