"""A full disk (issue 15 item 15): the status and info files keep being written, a write
failure is visible, no temporary file is left, the final status says `stopping`.

The file system is a small tmpfs mounted for the test (it needs root, as CI and the Pi
have; elsewhere these tests are skipped with that reason).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from flight_harness import REPO, FlightRun, make_home

from pygnc.formats import status as S
from pygnc.formats.sense import decode_sense

SAMPLE = REPO / "data" / "sample_5min"


def _mount_tmpfs(path: Path, size: str, inodes: int | None = None) -> bool:
    path.mkdir()
    if os.geteuid() != 0:
        return False
    opts = f"size={size},mode=0755" + (f",nr_inodes={inodes}" if inodes else "")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, timeout=30)
    return p.returncode == 0


@contextlib.contextmanager
def small_fs(tmp_path: Path, size: str, inodes: int | None = None):
    mnt = tmp_path / "fs"
    if not _mount_tmpfs(mnt, size, inodes):
        pytest.skip("needs root to mount a small tmpfs to fill")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def _fill(path: Path, leave_bytes: int = 0) -> None:
    """Write *path* until the file system has at most *leave_bytes* free."""
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            v = os.statvfs(path.parent)
            room = v.f_bavail * v.f_frsize - leave_bytes
            if room <= 0:
                break
            try:
                f.write(chunk[: min(len(chunk), room)])
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break


def _t_sc() -> float:
    return float(decode_sense((SAMPLE / "sense.bin").read_bytes()).sensors["t_sc_s"][-1]) + 1.0


def test_logs_stop_at_the_reserve_and_the_status_goes_on(tmp_path):
    cfg = tmp_path / "pygnc.toml"
    reserve = 512 * 1024
    cfg.write_text(f"log_min_free_bytes = {reserve}\n")
    with small_fs(tmp_path, "8m") as fs:
        home = make_home(fs, SAMPLE)
        _fill(fs / "filler", leave_bytes=reserve + 48 * 1024)  # room for ~48 kB of logs
        with FlightRun(home, spacecraft_time_s=_t_sc(), env={"PYGNC_CONFIG": str(cfg)}) as run:
            st = run.wait_status(
                lambda s: s["flags"] & S.FLAG_LOGS_LIMITED and s["flags"] & S.FLAG_BATCH_DONE, timeout_s=60
            )
            seq = st["seq"]
            st = run.wait_status(lambda s: s["seq"] >= seq + 3, timeout_s=10)  # still written
            assert not st["flags"] & S.FLAG_WRITE_FAILED and st["status_write_failures"] == 0
            assert st["home_free_kib"] * 1024 >= reserve - 64 * 1024  # the logs kept off the reserve
            run.ctrl_c()
            assert run.wait_exit(10) == 0
            st = S.decode_status(run.status_path.read_bytes())
            assert st["flags"] & S.FLAG_STOPPING and st["flags"] & S.FLAG_LOGS_LIMITED
            assert not list(home.glob(".*.tmp*"))


def test_a_disk_filled_by_something_else(tmp_path):
    with small_fs(tmp_path, "4m") as fs:
        home = make_home(fs, SAMPLE)
        with FlightRun(home, spacecraft_time_s=_t_sc()) as run:
            run.wait_status(lambda s: s["flags"] & S.FLAG_BATCH_DONE)
            # Default reserve (8 MiB) > this file system: the logs write nothing at all.
            _fill(fs / "filler")  # now not even the status fits
            time.sleep(2.5)  # a few failed status writes
            assert not list(home.glob(".*.tmp*"))  # the trial left a 0-byte temp file
            (fs / "filler").unlink()
            st = run.wait_status(lambda s: s["flags"] & S.FLAG_WRITE_FAILED, timeout_s=10)
            assert st["status_write_failures"] >= 1 and st["flags"] & S.FLAG_LOGS_LIMITED
            run.ctrl_c()
            assert run.wait_exit(10) == 0
            st = S.decode_status(run.status_path.read_bytes())
            assert st["flags"] & S.FLAG_STOPPING and st["flags"] & S.FLAG_WRITE_FAILED
            assert not list(home.glob(".*.tmp*"))


def test_final_status_that_cannot_be_written_is_an_error_exit(tmp_path):
    """The trial: no `stopping` flag, yet exit status 0."""
    with small_fs(tmp_path, "4m") as fs:
        home = make_home(fs, SAMPLE)
        with FlightRun(home, spacecraft_time_s=_t_sc()) as run:
            run.wait_status(lambda s: s["flags"] & S.FLAG_BATCH_DONE)
            _fill(fs / "filler")
            run.ctrl_c()
            assert run.wait_exit(10) == 1
            time.sleep(0.1)
            assert "cannot write the final status" in run.text
            assert not list(home.glob(".*.tmp*"))


# --------------------------------------------------------------------------- issue 39 item 7
def _batch_files(home: Path) -> list[Path]:
    from pygnc.formats import batch as B

    return sorted(p for p in (home / "pygnc_batches").iterdir() if B.FILE_RE.match(p.name))


def test_downlink_comes_before_logs(tmp_path):
    """Less free space than the downlink's reserve (64 MiB): the batch writer wrote no file at
    all and only `logs_limited` showed.  Now the logs give way (they keep the reserve free)
    and the batch files are written into it; nothing says the downlink failed."""
    from pygnc.formats import batch as B

    with small_fs(tmp_path, "40m") as fs:  # default configuration: reserves 8 + 64 MiB
        home = make_home(fs, SAMPLE)
        with FlightRun(home, spacecraft_time_s=_t_sc()) as run:
            run.wait_status(lambda s: s["flags"] & S.FLAG_BATCH_DONE and s["flags"] & S.FLAG_LOGS_LIMITED)
            run.ctrl_c()
            assert run.wait_exit(10) == 0
            st = S.decode_status(run.status_path.read_bytes())
            assert st["flags"] & S.FLAG_STOPPING and st["flags"] & S.FLAG_LOGS_LIMITED
            assert not st["flags"] & S.FLAG_DOWNLINK_FAILED
            files = _batch_files(home)
            assert files and sum(len(B.decode_batch(p.read_bytes()).records) for p in files) > 10
            info = (home / "pygnc_info.txt").read_bytes()
            assert b" LL" in info and b"DF" not in info


def test_a_downlink_that_cannot_be_written_says_so(tmp_path):
    """Under the status files' reserve, with no log to give way, the batch writer cannot
    write: the records wait (`batch_records_held`, `DH`) while the status goes on being
    written; still held at the stop, they are lost - flag `downlink_failed` in the final
    status (issue 48: they were dropped at once)."""
    with small_fs(tmp_path, "16m") as fs:
        home = make_home(fs, SAMPLE)
        _fill(fs / "filler", leave_bytes=4 * 1024 * 1024)  # under the default 8 MiB
        with FlightRun(home, spacecraft_time_s=_t_sc()) as run:
            st = run.wait_status(lambda s: s["batch_records_held"] > 0 and s["flags"] & S.FLAG_BATCH_DONE, timeout_s=30)
            assert not st["flags"] & S.FLAG_WRITE_FAILED and not st["flags"] & S.FLAG_DOWNLINK_FAILED
            assert b" DH" in run.wait_info(b" DH")
            seq = st["seq"]
            run.wait_status(lambda s: s["seq"] >= seq + 3)  # still written
            run.ctrl_c()
            assert run.wait_exit(10) == 0
            st = S.decode_status(run.status_path.read_bytes())
            assert st["flags"] & S.FLAG_STOPPING and st["flags"] & S.FLAG_DOWNLINK_FAILED
            assert b" DF" in (home / "pygnc_info.txt").read_bytes()
            assert not list((home / "pygnc_batches").glob("batch_*"))


def test_a_file_named_pygnc_batches_is_moved_aside(tmp_path):
    """With `pygnc_batches` a file the downlink was lost and nothing said so: the file is
    renamed aside (never deleted) and the batch files are written."""
    home = make_home(tmp_path, SAMPLE)
    (home / "pygnc_batches").write_bytes(b"not a directory")
    with FlightRun(home, spacecraft_time_s=_t_sc()) as run:
        run.wait_status(lambda s: s["flags"] & S.FLAG_BATCH_DONE)
        run.ctrl_c()
        assert run.wait_exit(10) == 0
    st = S.decode_status((home / "pygnc_status.bin").read_bytes())
    assert not st["flags"] & S.FLAG_DOWNLINK_FAILED
    assert (home / "pygnc_batches.not-a-directory").read_bytes() == b"not a directory"
    assert _batch_files(home)


def test_an_unusable_batch_directory_says_so(tmp_path):
    """A batch directory that cannot be made (its parent is a file): `downlink_failed`."""
    cfg = tmp_path / "pygnc.toml"
    cfg.write_text('batch_dir = "pygnc_batches/a_file/batches"\n')
    home = make_home(tmp_path, SAMPLE)
    (home / "pygnc_batches").mkdir()
    (home / "pygnc_batches" / "a_file").write_bytes(b"in the way")
    with FlightRun(home, spacecraft_time_s=_t_sc(), env={"PYGNC_CONFIG": str(cfg)}) as run:
        run.wait_status(lambda s: s["flags"] & S.FLAG_DOWNLINK_FAILED, timeout_s=30)
        run.wait_info(b" DF")
        run.ctrl_c()
        assert run.wait_exit(10) == 0
    assert S.decode_status((home / "pygnc_status.bin").read_bytes())["flags"] & S.FLAG_DOWNLINK_FAILED


# --------------------------------------------------------------------------- issue 48 items 1 and 8
def _old_logs(home: Path, size: int) -> Path:
    """An earlier run's logs of *size* bytes (incompressible, as a bus log is)."""
    d = home / "pygnc_logs" / "run_00001"
    d.mkdir(parents=True)
    (d / "bus.log").write_bytes(os.urandom(size))
    (d / "supervisor.log").write_text("an earlier run\n")
    return d


def _earlier_batch(home: Path) -> Path:
    """A complete batch file an earlier run left for the host."""
    from station_support import batch_file

    (home / "pygnc_batches").mkdir()
    return batch_file(
        home / "pygnc_batches", 1, [("orbit", 1.7e9, {"r_ecef_m": [7e6, 0, 0], "v_ecef_m_s": [0, 7e3, 0]})]
    )


def _records_of_run(home: Path, run: int) -> int:
    from pygnc.formats import batch as B

    n = 0
    for p in _batch_files(home):
        bf = B.decode_batch(p.read_bytes())
        if bf.header is not None and bf.header["run"] == run:
            n += len(bf.records)
    return n


def test_a_full_disk_takes_the_logs_never_the_downlink(tmp_path):
    """Issue 48 item 1: with 0-8 MiB free the batch writer deleted every complete batch file
    and dropped new records, and kept the logs (4-8 MB).  Now the logs give way - the
    earlier run's first - and the downlink is written; no complete file is deleted."""
    with small_fs(tmp_path, "24m") as fs:
        home = make_home(fs, SAMPLE)
        old = _old_logs(home, 6 * 1024 * 1024)
        earlier = _earlier_batch(home)
        _fill(fs / "filler", leave_bytes=4 * 1024 * 1024)  # under the status files' 8-MiB reserve
        with FlightRun(home, spacecraft_time_s=_t_sc()) as run:
            run.wait_status(lambda s: s["run"] >= 2 and s["flags"] & S.FLAG_BATCH_DONE, timeout_s=60)
            run.ctrl_c()
            assert run.wait_exit(10) == 0
            st = S.decode_status(run.status_path.read_bytes())
        assert not st["flags"] & S.FLAG_DOWNLINK_FAILED and st["batch_records_held"] == 0
        assert not old.exists() and earlier.exists()
        assert _records_of_run(home, st["run"]) > 10
        log = (run.log_dir() / "batch_writer.log").read_text()
        assert "the logs gave way to the downlink" in log and "run_00001" in log


def test_records_with_no_room_wait_and_are_written_when_there_is(tmp_path):
    """Issue 48 item 1: records that found no room were gone for good, and the writer's log
    said nothing.  Now they wait in memory (status `batch_records_held`, `DH` on the info
    file), are written once space returns, and the log says so."""
    with small_fs(tmp_path, "16m") as fs:
        home = make_home(fs, SAMPLE)
        earlier = _earlier_batch(home)
        _fill(fs / "filler", leave_bytes=2 * 1024 * 1024)
        with FlightRun(home, spacecraft_time_s=_t_sc()) as run:
            st = run.wait_status(
                lambda s: s["flags"] & S.FLAG_BATCH_DONE and s["batch_records_held"] > 10, timeout_s=60
            )
            assert not st["flags"] & S.FLAG_DOWNLINK_FAILED
            assert b" DH" in run.wait_info(b" DH")
            (fs / "filler").unlink()  # the host makes room
            st = run.wait_status(lambda s: s["batch_records_held"] == 0, timeout_s=40)
            run.ctrl_c()
            assert run.wait_exit(10) == 0
            st = S.decode_status(run.status_path.read_bytes())
        assert not st["flags"] & S.FLAG_DOWNLINK_FAILED and earlier.exists()
        assert _records_of_run(home, st["run"]) > 10
        assert "wrote the" in (run.log_dir() / "batch_writer.log").read_text()


def test_with_the_inodes_exhausted_the_status_goes_on_and_says_so(tmp_path):
    """Issue 48 item 8: with no inode free the status froze (a temporary file cannot be
    made) while `home_free_kib` said 180 MiB free, and no flag was set.  The status is
    written on through a spare file, says `home_free_inodes` 0 (`NI`), and the downlink
    waits for room (`DH`) and is written when inodes are free again."""
    with small_fs(tmp_path, "32m", inodes=300) as fs:
        home = make_home(fs, SAMPLE)
        with FlightRun(home, spacecraft_time_s=_t_sc()) as run:  # a first run leaves the spare
            run.wait_status(lambda s: s["run"] >= 1 and s["flags"] & S.FLAG_BATCH_DONE)
            run.ctrl_c()
            assert run.wait_exit(10) == 0
        first = {p.name for p in _batch_files(home)}
        shutil.rmtree(home / "pygnc_logs")  # no logs to give way: the records must wait
        (fs / "filler").mkdir()
        k = 0
        while True:
            try:
                (fs / "filler" / str(k)).touch()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
            k += 1
        with FlightRun(home, spacecraft_time_s=_t_sc()) as run:
            st = run.wait_status(
                lambda s: s["run"] >= 1 and s["flags"] & S.FLAG_BATCH_DONE and s["batch_records_held"] > 0, timeout_s=60
            )
            assert st["home_free_inodes"] == 0 and st["home_free_kib"] > 1024
            seq = st["seq"]
            st = run.wait_status(lambda s: s["seq"] >= seq + 3)  # not frozen
            info = run.wait_info(b" NI")
            assert b" DH" in info
            for j in range(40):  # the host frees a few inodes
                (fs / "filler" / str(j)).unlink()
            run.wait_status(lambda s: s["batch_records_held"] == 0 and s["home_free_inodes"] > 0, timeout_s=40)
            run.ctrl_c()
            assert run.wait_exit(10) == 0
            st = S.decode_status(run.status_path.read_bytes())
        assert not st["flags"] & S.FLAG_DOWNLINK_FAILED and st["flags"] & S.FLAG_STOPPING
        assert {p.name for p in _batch_files(home)} - first  # the held records, written
