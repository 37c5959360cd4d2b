"""Log directories: numbered runs, pruning to a size bound, append-only text logs."""

import logging

from pygnc.logs import create_run_dir, list_runs, setup_task_logging, sync_logs


def test_runs_are_numbered_and_pruned(tmp_path):
    root = tmp_path / "pygnc_logs"
    for i in range(5):
        n, p, _ = create_run_dir(root, total_bytes_bound=10_000, reserve_bytes=1_000)
        assert n == i + 1
        (p / "bus.log").write_bytes(b"x" * 3_000)
    runs = list_runs(root)
    total = sum((p / "bus.log").stat().st_size for _, p in runs)
    assert total + 1_000 <= 10_000 + 3_000  # only the newest run may overshoot its budget
    assert runs[-1][0] == 5 and runs[0][0] > 1  # oldest pruned first
    (root / "not_a_run").mkdir()
    n, _, _ = create_run_dir(root, 10_000, 1_000)
    assert n == 6 and (root / "not_a_run").exists()  # foreign files never deleted


def test_text_log_has_spacecraft_time(tmp_path):
    log = setup_task_logging(tmp_path, "ingest", lambda: 1234.5)
    log.info("hello")
    sync_logs()
    text = (tmp_path / "ingest.log").read_text()
    assert "sc=1234.5 ingest INFO hello" in text
    logging.getLogger().handlers.clear()


# --------------------------------------------------------------------------- storage (issue 15 item 15)
import errno  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

from pygnc import atomic  # noqa: E402
from pygnc.logs import BusLogWriter, SyncingFileHandler, records_dropped  # noqa: E402

FULL = "/dev/full"  # every write fails with ENOSPC, as on a full disk


def test_bus_log_on_a_full_disk_holds_one_buffer_and_never_raises():
    """The trial: after a write error every append retried the whole, growing buffer
    (13 MB held, 22 s of CPU for 40 000 frames)."""
    w = BusLogWriter(__import__("pathlib").Path(FULL), run=1, schema=2, max_bytes=1 << 40, fsync_period_s=0.0)
    frame = b"m" * 300
    biggest = 0
    for i in range(40_000):
        w.append("meas", float(i), frame)
        biggest = max(biggest, w._buf_bytes)
    w.tick()
    w.close()
    assert biggest <= BusLogWriter.FLUSH_BYTES + 400
    assert w.frames_written == 0 and w.frames_not_written == 40_001 and w.write_errors >= 1
    assert w.limited.startswith("write error")


def test_bus_log_keeps_the_free_space_reserve(tmp_path):
    w = BusLogWriter(
        tmp_path / "bus.log", run=1, schema=2, max_bytes=1 << 40, fsync_period_s=0.0, min_free_bytes=1 << 62
    )  # more than any disk has: everything is held back
    for i in range(100):
        w.append("meas", float(i), b"x" * 50)
    w.close()
    assert (tmp_path / "bus.log").stat().st_size == 0 and w.frames_not_written == 101
    assert "reserve" in w.limited


def test_text_log_write_errors_are_counted_not_printed(capsys):
    h = SyncingFileHandler(FULL)
    rec = logging.LogRecord("t", logging.INFO, __file__, 1, "x" * 100, None, None)
    for _ in range(50):
        h.emit(rec)
    h.sync()
    assert h.write_errors >= 1 and h.dropped == 50
    assert "Logging error" not in capsys.readouterr().err
    h.close()


def test_text_log_record_after_close_reopens_the_file(tmp_path):
    # The handler once kept its write-error count in FileHandler's own ``errors`` (the
    # encoding-error mode it opens its file with): a record after close() (logging.shutdown
    # at exit, then a late log call) reopened the file with errors=0 and raised TypeError.
    h = SyncingFileHandler(tmp_path / "t.log")
    h.close()
    h.emit(logging.LogRecord("t", logging.INFO, __file__, 1, "after close", None, None))
    h.close()
    assert (tmp_path / "t.log").read_text() == "after close\n" and h.write_errors == 0


def test_text_log_keeps_the_free_space_reserve(tmp_path):
    root = logging.getLogger()
    try:
        setup_task_logging(tmp_path, "ingest", lambda: 0.0, min_free_bytes=1 << 62)
        logging.getLogger("ingest").warning("not written")
        assert records_dropped() == 1
        assert (tmp_path / "ingest.log").read_text() == ""
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
            h.close()


def test_atomic_write_failure_leaves_no_temp_and_names_the_target(tmp_path, monkeypatch):
    target = tmp_path / "pygnc_status.bin"

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "write", full)
    with pytest.raises(OSError) as err:
        atomic.write_atomic(target, b"x" * 500)
    monkeypatch.undo()
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []  # the trial left a 0-byte temp file


def test_a_file_where_the_log_root_must_be_is_moved_aside(tmp_path):
    root = tmp_path / "pygnc_logs"
    root.write_text("someone's notes")
    n, p, note = create_run_dir(root, 10_000, 1_000)
    assert n == 1 and p.is_dir() and "not a directory" in note
    assert (tmp_path / "pygnc_logs.not-a-directory").read_text() == "someone's notes"  # nothing lost


def test_stale_socket_dirs_of_dead_runs_are_removed(tmp_path):
    from pygnc.supervisor import remove_stale_run_dirs

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"pygnc-{dead.pid}-abcd1234"
    stale.mkdir()
    (stale / "control.sock").write_text("")
    alive = tmp_path / f"pygnc-{os.getpid()}-efgh5678"  # a live run (this process)
    alive.mkdir()
    other = tmp_path / "pygnc-replay-xyz"  # not a run's socket directory
    other.mkdir()
    link = tmp_path / f"pygnc-{dead.pid}-linkto"  # a symlink is never followed
    link.symlink_to(other)
    assert remove_stale_run_dirs(tmp_path) == [stale]
    assert not stale.exists() and alive.is_dir() and other.is_dir() and link.is_symlink()


def test_a_runtime_dir_too_deep_for_a_socket_path_falls_back_to_the_temp_dir(tmp_path, monkeypatch):
    """A socket's path must fit 107 bytes: a deep ``$XDG_RUNTIME_DIR`` (a test's tmp_path
    under pytest-xdist was one) stopped the supervisor with a ZMQError."""
    import shutil
    import tempfile
    from pathlib import Path

    from pygnc.bus.channels import CHANNELS
    from pygnc.supervisor import IPC_PATH_MAX, make_run_dir

    deep = tmp_path / ("d" * 90)
    deep.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(deep))
    run_dir, _ = make_run_dir()
    try:
        assert run_dir.parent == Path(tempfile.gettempdir())
        assert max(len(c.endpoint(run_dir)) - len("ipc://") for c in CHANNELS.values()) <= IPC_PATH_MAX
    finally:
        shutil.rmtree(run_dir)
