"""The batch-file directory: only complete files under final names, bounded sizes, a power cut
loses at most the last second, leftover .part files recovered exactly once, sequence numbers
that survive the host deleting files."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from pygnc import batch_store as bs
from pygnc.formats import batch as B

ORBIT = B.KINDS_BY_NAME["orbit"]
CLOCK = B.KINDS_BY_NAME["clock_map"]


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _record(i: int, t0: float = 1.7e9) -> tuple[bytes, float]:
    t = t0 + 5.0 * i
    return B.encode_record(ORBIT, t, {"r_ecef_m": (7e6 + i, 0, 0), "n_used": i}), t


def _store(d: Path, clock=None, run=1, key="run1", **kw) -> bs.BatchStore:
    s = bs.BatchStore(d, run, key, 0x4A, clock=clock or FakeClock(), **kw)
    s.open()
    return s


def _finals(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if B.FILE_RE.match(p.name))


def _all_records(d: Path) -> list[bytes]:
    return [r.raw for p in _finals(d) for r in B.decode_batch(p.read_bytes()).records]


def test_size_bound_sequence_and_final_names(tmp_path):
    d = tmp_path / "b"
    s = _store(d, max_file_bytes=1000)
    raws = [_record(i)[0] for i in range(100)]
    for i, raw in enumerate(raws):
        assert s.append(raw, 1.7e9 + 5 * i)
        assert not [p for p in _finals(d) if p.name.endswith(".part")]
    s.close()
    files = _finals(d)
    assert len(files) == -(-100 * len(raws[0]) // (1000 - B.HEADER_SIZE)) and not list(d.glob("*.part"))
    assert all(p.stat().st_size <= 1000 for p in files)
    headers = [B.decode_header(p.read_bytes()) for p in files]
    assert [h["sequence"] for h in headers] == list(range(1, len(files) + 1))
    assert all(h["run"] == 1 and h["spacecraft_id"] == 0x4A and not h["flags"] & B.FILE_OPEN for h in headers)
    assert [h["flag_names"] for h in headers[:-1]] == [["closed_size"]] * (len(files) - 1)
    assert headers[-1]["flag_names"] == ["closed_stop"]
    assert _all_records(d) == raws
    assert sum(h["records"] for h in headers) == 100
    assert headers[0]["t_first_sc_s"] == 1.7e9 and headers[-1]["t_last_sc_s"] == 1.7e9 + 495


def test_time_bound_and_lazy_files(tmp_path):
    clock = FakeClock()
    s = _store(tmp_path, clock, max_file_age_s=600.0)
    assert s.tick() > 0 and not list(tmp_path.glob("batch_*"))  # no record, no file
    s.append(*_record(0))
    clock.t += 599.0
    s.tick()
    assert list(tmp_path.glob("*.part")) and not _finals(tmp_path)
    clock.t += 1.0
    s.tick()
    assert len(_finals(tmp_path)) == 1 and not list(tmp_path.glob("*.part"))
    assert B.decode_header(_finals(tmp_path)[0].read_bytes())["flag_names"] == ["closed_age"]
    s.close()
    assert len(_finals(tmp_path)) == 1  # nothing open: no empty file at stop


def test_context_records_open_every_file(tmp_path):
    ctx = B.encode_record(CLOCK, 1.7e9, {"gps_minus_sc_s": -18.0, "n_pairs": 3})
    s = bs.BatchStore(tmp_path, 1, "k", 0, clock=FakeClock(), max_file_bytes=600, context=lambda: [(ctx, 1.7e9)])
    s.open()
    for i in range(40):
        s.append(*_record(i))
    s.close()
    files = _finals(tmp_path)
    assert len(files) > 3
    for p in files:
        assert B.decode_batch(p.read_bytes()).records[0].raw == ctx


def test_power_cut_loses_at_most_one_fsync_period(tmp_path, monkeypatch):
    """Every record is covered by an fsync within fsync_period_s of its append, when the
    task ticks at the times the store asks for."""
    clock = FakeClock()
    syncs: list[tuple[float, int]] = []
    real_fsync = os.fsync

    def fsync(fd):
        try:
            syncs.append((clock.t, os.fstat(fd).st_size))
        except OSError:
            pass
        real_fsync(fd)

    monkeypatch.setattr(bs.os, "fsync", fsync)
    s = _store(tmp_path, clock, fsync_period_s=1.0)
    appended = []
    wake = clock.t
    arrivals = [clock.t + sum(0.037 * (1 + k % 7) for k in range(i + 1)) for i in range(300)]
    for i, t_arrive in enumerate(arrivals + [arrivals[-1] + 3.0]):
        while wake < t_arrive:  # the task loop sleeps for what tick() asked, then ticks
            clock.t = wake
            wake = clock.t + max(s.tick(), 0.001)
        clock.t = t_arrive
        if i < len(arrivals):
            s.append(*_record(i))
            appended.append((clock.t, s.file.size))
            wake = clock.t + max(s.tick(), 0.001)  # every loop turn ends with a tick
    for t, size in appended:
        t_sync = next(ts for ts, sz in syncs if sz >= size and ts >= t)
        assert t_sync - t <= 1.0 + 1e-9


def _kill(s: bs.BatchStore) -> None:
    """A writer killed (or the power cut) with a file open: nothing more reaches the file."""
    os.close(s.file.fd)
    s.file = None


def test_leftover_part_is_recovered_once_with_its_intact_records(tmp_path):
    s = _store(tmp_path, run=4, key="a")
    raws = [_record(i)[0] for i in range(20)]
    for i, raw in enumerate(raws):
        s.append(raw, 1.7e9 + 5 * i)
    part = s.file.part
    _kill(s)
    with open(part, "ab") as f:  # a torn last record
        f.write(raws[0][:17])
    s2 = bs.BatchStore(tmp_path, 5, "b", 0x4A, clock=FakeClock())
    report = s2.open()
    assert report.recovered == [(1, 20, 17)] and not report.restarted
    assert not list(tmp_path.glob("*.part"))
    (final,) = _finals(tmp_path)
    h = B.decode_header(final.read_bytes())
    assert h["flag_names"] == ["recovered"] and (h["run"], h["sequence"], h["records"], h["skipped_bytes"]) == (
        4,
        1,
        20,
        17,
    )
    assert (h["t_first_sc_s"], h["t_last_sc_s"]) == (1.7e9, 1.7e9 + 95)
    assert _all_records(tmp_path) == raws
    s2.append(*_record(99))
    s2.close()
    assert [B.decode_header(p.read_bytes())["sequence"] for p in _finals(tmp_path)] == [1, 2]
    # Opening again recovers nothing more and duplicates nothing.
    s3 = _store(tmp_path, run=6, key="c")
    assert _all_records(tmp_path) == raws + [_record(99)[0]] and s3.next_seq == 3


def test_crash_during_recovery_repeats_it_without_duplicates(tmp_path, monkeypatch):
    s = _store(tmp_path)
    for i in range(5):
        s.append(*_record(i))
    _kill(s)
    monkeypatch.setattr(bs.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(errno.EIO, "power cut")))
    r = bs.BatchStore(tmp_path, 2, "x", 0, clock=FakeClock()).open()  # rewrote the .part, then "died"
    assert r.recovered == [] and len(list(tmp_path.glob("*.part"))) == 1
    monkeypatch.undo()
    r = bs.BatchStore(tmp_path, 3, "y", 0, clock=FakeClock()).open()
    assert [x[:2] for x in r.recovered] == [(1, 5)]
    assert _all_records(tmp_path) == [_record(i)[0] for i in range(5)]


def test_empty_or_headerless_parts(tmp_path):
    (tmp_path / "batch_00000003.bin.part").write_bytes(B.encode_header(1, 3, 0, B.FILE_OPEN)[:30])
    raws = [_record(i)[0] for i in range(3)]
    (tmp_path / "batch_00000004.bin.part").write_bytes(b"\0" * 48 + b"".join(raws))
    r = bs.BatchStore(tmp_path, 9, "k", 0x4B, clock=FakeClock()).open()
    assert r.removed_empty == [3] and [x[:2] for x in r.recovered] == [(4, 3)]
    h = B.decode_header((tmp_path / "batch_00000004.bin").read_bytes())
    assert "header_rebuilt" in h["flag_names"] and h["run"] == 0 and h["spacecraft_id"] == 0x4B
    assert r.next_sequence == 5


def test_final_and_part_with_one_number_keep_both(tmp_path):
    raws = [_record(i)[0] for i in range(4)]
    (tmp_path / "batch_00000002.bin").write_bytes(B.encode_header(1, 2, 0, 0, 0, 0, 2) + b"".join(raws[:2]))
    (tmp_path / "batch_00000002.bin.part").write_bytes(B.encode_header(1, 2, 0, B.FILE_OPEN) + b"".join(raws[2:]))
    r = bs.BatchStore(tmp_path, 2, "k", 0, clock=FakeClock()).open()
    assert [x[:2] for x in r.recovered] == [(3, 2)]
    assert sorted(_all_records(tmp_path)) == sorted(raws)


def test_sequence_numbers_survive_the_host_deleting_files(tmp_path):
    s = _store(tmp_path, key="r1")
    for i in range(3):
        s.append(*_record(i))
        s.close_file(B.FILE_CLOSED_SIZE)
    s.close()
    for p in _finals(tmp_path):  # the host sent and deleted everything
        p.unlink()
    s = _store(tmp_path, run=2, key="r2")
    s.append(*_record(0))
    s.close()
    assert [p.name for p in _finals(tmp_path)] == ["batch_00000004.bin"]
    # The state file lost: the names on disk carry on.
    (tmp_path / bs.STATE_FILE).unlink()
    s = _store(tmp_path, run=3, key="r3")
    assert s.next_seq == 5
    # A corrupt state file: a warning, and the names still carry on.
    (tmp_path / bs.STATE_FILE).write_text("{not json")
    s = _store(tmp_path, run=4, key="r4")
    assert s.next_seq == 5
    state = json.loads((tmp_path / bs.STATE_FILE).read_text())
    assert state["next_sequence"] == 5 and state["run"] == 4
    # JSON of the wrong shape (a hand edit): the same - it stopped the writer at open.
    for bad in ({"spans": 7, "series": "s"}, {"run_first_sequence": "x", "run_key": "r5"}):
        (tmp_path / bs.STATE_FILE).write_text(json.dumps({**state, **bad}))
        s = bs.BatchStore(tmp_path, 5, "r5", 0, series="s", clock=FakeClock())
        s.open()
        assert s.next_seq == 5
        s.close()


def test_host_removing_files_while_writing(tmp_path):
    s = _store(tmp_path, max_file_bytes=400)
    for i in range(30):
        s.append(*_record(i))
        for p in _finals(tmp_path):  # sent and deleted at once
            p.unlink()
    s.file.part.unlink()  # even the open .part (the host should not, but must not break us)
    s.close()
    assert s.counters.files_lost == 1
    s.append(*_record(31))
    s.close()
    assert len(_finals(tmp_path)) == 1


def test_total_bound_deletes_oldest_first(tmp_path):
    s = _store(tmp_path, max_file_bytes=500, total_max_bytes=2000)
    for i in range(200):
        s.append(*_record(i))
        total = sum(p.stat().st_size for p in tmp_path.glob("batch_*"))
        assert total <= 2000 + 500
    s.close()
    seqs = [B.decode_header(p.read_bytes())["sequence"] for p in _finals(tmp_path)]
    assert seqs == list(range(seqs[0], seqs[-1] + 1)) and seqs[0] > 1 and s.counters.files_pruned == seqs[0] - 1


def test_low_disk_holds_records_and_writes_them_when_there_is_room(tmp_path, monkeypatch):
    """Issue 48 item 1: under the status files' reserve the writer deleted every complete
    batch file, then dropped new records for good.  Now the logs give way (make_room), no
    complete file is deleted, and records wait in memory until there is room."""
    free = {"bytes": 10 * 2**20}
    real = shutil.disk_usage
    monkeypatch.setattr(bs.shutil, "disk_usage", lambda p: real(p)._replace(free=free["bytes"]))
    asked = []
    clock = FakeClock()
    s = _store(
        tmp_path, clock, max_file_bytes=400, min_free_bytes=2**20, make_room=lambda n: asked.append(n) or (0, [])
    )
    for i in range(20):
        s.append(*_record(i))
    free["bytes"] = 1000  # the card fills up (someone else's files)
    s.close_file(B.FILE_CLOSED_SIZE)
    kept = _finals(tmp_path)
    assert kept and s.counters.files_pruned == 0  # the downlink is never deleted for room
    assert asked and asked[-1] >= 2**20 - 1000  # the logs were asked first
    assert s.append(*_record(50)) and s.append(*_record(51))  # held, not lost
    assert s.counters.records_held == 2 and s.counters.records_not_written == 0 and not s.failed
    free["bytes"] = 10 * 2**20
    clock.t += bs.FREE_CHECK_PERIOD_S
    s.tick()
    assert s.counters.records_held == 0 and s.counters.records_written_late == 2
    s.close()
    assert _all_records(tmp_path) == [_record(i)[0] for i in [*range(20), 50, 51]]
    assert not s.failed


def test_the_logs_give_way_before_a_record_waits(tmp_path, monkeypatch):
    free = {"bytes": 1000}
    real = shutil.disk_usage
    monkeypatch.setattr(bs.shutil, "disk_usage", lambda p: real(p)._replace(free=free["bytes"]))

    def make_room(need):
        free["bytes"] += 4 * 2**20  # an old run's logs
        return 4 * 2**20, ["run_00001"]

    s = _store(tmp_path, FakeClock(), min_free_bytes=2**20, make_room=make_room)
    assert s.append(*_record(0)) and s.counters.records_held == 0 and s.counters.log_bytes_freed == 4 * 2**20
    s.close()
    assert _all_records(tmp_path) == [_record(0)[0]]


def test_held_records_are_bounded_and_lost_at_the_stop_only_if_still_no_room(tmp_path, monkeypatch):
    free = {"bytes": 1000}
    real = shutil.disk_usage
    monkeypatch.setattr(bs.shutil, "disk_usage", lambda p: real(p)._replace(free=free["bytes"]))
    size = len(_record(0)[0])
    s = _store(tmp_path, FakeClock(), min_free_bytes=2**20, hold_max_bytes=5 * size)
    for i in range(8):
        assert s.append(*_record(i))
    assert s.counters.records_held == 5 and s.counters.records_not_written == 3 and s.failed  # the oldest went
    s.close()
    assert s.counters.records_not_written == 8 and s.counters.records_held == 0 and not _finals(tmp_path)


def test_write_errors_are_counted_and_survived(tmp_path, monkeypatch):
    """A disk found full by a write: the record waits and is written, in order, later."""
    clock = FakeClock()
    s = _store(tmp_path, clock)
    assert s.append(*_record(0))
    real_write = os.write
    monkeypatch.setattr(bs.os, "write", lambda fd, b: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    assert s.append(*_record(1))  # held
    monkeypatch.setattr(bs.os, "write", real_write)
    assert s.append(*_record(2)) and s.counters.records_held == 2  # waits before trying again
    clock.t += bs.FREE_CHECK_PERIOD_S
    assert s.append(*_record(3))
    s.close()
    assert s.counters.write_errors == 1 and s.counters.records_not_written == 0 and not s.failed
    assert s.counters.records_written_late == 3
    assert _all_records(tmp_path) == [_record(i)[0] for i in range(4)]
    assert not list(tmp_path.glob("*.part"))


def test_restart_within_a_run_finds_its_records(tmp_path):
    s = _store(tmp_path, run=7, key="same")
    for i in range(5):
        s.append(*_record(i))
    _kill(s)
    s2 = bs.BatchStore(tmp_path, 7, "same", 0, clock=FakeClock())
    r = s2.open()
    assert r.restarted and [x[:2] for x in r.recovered] == [(1, 5)]
    assert [x.raw for x in s2.run_records()] == [_record(i)[0] for i in range(5)]
    # A later run with a reused run number (logs deleted) is not a restart.
    s3 = bs.BatchStore(tmp_path, 7, "other", 0, clock=FakeClock())
    assert not s3.open().restarted and s3.run_records() == []


def test_unusable_directory_is_retried(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OSError):
        bs.BatchStore(f / "sub", 1, "k", 0).open()
    clock = FakeClock()
    s = bs.BatchStore(f / "sub", 1, "k", 0, clock=clock)
    assert s.append(*_record(0)) and s.append(*_record(1))  # held
    assert s.counters.records_held == 2 and s.counters.write_errors == 1 and s.failed
    f.unlink()  # the problem goes away
    clock.t += bs.RETRY_AFTER_S
    assert s.append(*_record(2))
    s.close()
    assert _all_records(f / "sub") == [_record(i)[0] for i in range(3)] and s.counters.records_not_written == 0


def test_resolve_batch_dir(tmp_path):
    assert bs.resolve_batch_dir(tmp_path, "pygnc_batches") == tmp_path / "pygnc_batches"
    assert bs.resolve_batch_dir(tmp_path, "/abs/x") == Path("/abs/x")
    assert bs.resolve_batch_dir(tmp_path, "~/y") == Path.home() / "y"


# --------------------------------------------------------------------------- issue 39 items 7 and 9
def _fake_free(monkeypatch, free: dict) -> None:
    real = shutil.disk_usage
    monkeypatch.setattr(bs.shutil, "disk_usage", lambda p: real(p)._replace(free=free["bytes"]))


def test_the_downlink_reserve_is_written_into_down_to_the_status_reserve(tmp_path, monkeypatch, caplog):
    """Item 7: with less free space than the downlink's reserve (the logs stopped above it)
    the writer goes on writing; at the status files' reserve it holds records (issue 48: it
    no longer deletes its files) and writes them when there is room."""
    free = {"bytes": 5 * 2**20}  # under 1 MiB + 8 MiB: inside the downlink's reserve
    _fake_free(monkeypatch, free)
    clock = FakeClock()
    s = _store(tmp_path, clock, max_file_bytes=400, min_free_bytes=2**20, reserve_bytes=8 * 2**20)
    for i in range(20):
        assert s.append(*_record(i))
    s.close_file(B.FILE_CLOSED_SIZE)
    assert _finals(tmp_path) and s.counters.files_pruned == 0 and not s.failed
    assert sum("under the downlink's reserve" in r.message for r in caplog.records) == 1  # said once
    free["bytes"] = 1000  # now under the status files' reserve
    s.close_file(B.FILE_CLOSED_SIZE)
    s.prune()
    assert _finals(tmp_path) and s.counters.files_pruned == 0
    assert s.append(*_record(50)) and s.counters.records_held == 1 and not s.failed
    free["bytes"] = 10 * 2**20
    clock.t += bs.FREE_CHECK_PERIOD_S
    assert s.append(*_record(51)) and s.counters.records_held == 0
    s.close()
    assert not s.failed and _all_records(tmp_path)[-2:] == [_record(50)[0], _record(51)[0]]
    assert any("wrote the 2 batch records held" in r.message for r in caplog.records)


def test_a_file_where_the_directory_must_be_is_moved_aside(tmp_path):
    d = tmp_path / "pygnc_batches"
    d.write_bytes(b"the host's file")
    s = _store(d)
    assert s.append(*_record(0))
    s.close()
    assert (tmp_path / "pygnc_batches.not-a-directory").read_bytes() == b"the host's file"
    assert _all_records(d) == [_record(0)[0]] and not s.failed


def test_an_unusable_directory_is_a_failure(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    s = bs.BatchStore(f / "sub", 1, "k", 0, clock=FakeClock())
    assert not s.failed
    assert s.append(*_record(0)) and s.failed and s.counters.records_held == 1


def test_write_error_is_a_failure(tmp_path, monkeypatch):
    s = _store(tmp_path)
    assert s.append(*_record(0)) and not s.failed
    monkeypatch.setattr(bs.os, "write", lambda fd, b: (_ for _ in ()).throw(OSError(errno.EIO, "I/O")))
    assert s.append(*_record(1)) and s.failed and s.counters.records_held == 1  # held: written if it recovers


def _headers(d: Path) -> list[dict]:
    return [B.decode_header(p.read_bytes()) for p in _finals(d)]


def test_sequence_numbers_end_at_the_header_maximum_and_are_refused_beyond(tmp_path):
    """Item 9: the numbers saturated at 2**32 - 1 (two files with one header number).  The
    store writes MAX - 1 and MAX, then refuses: no third file, records counted, failed."""
    (tmp_path / bs.STATE_FILE).write_text(
        json.dumps({"format": bs.STATE_FORMAT, "version": 1, "next_sequence": B.MAX_SEQUENCE - 1})
    )
    s = _store(tmp_path, max_file_bytes=200)
    written = sum(s.append(*_record(i)) for i in range(6))
    s.close()
    seqs = [h["sequence"] for h in _headers(tmp_path)]
    assert seqs == [B.MAX_SEQUENCE - 1, B.MAX_SEQUENCE]
    assert [p.name for p in _finals(tmp_path)] == [B.file_name(q) for q in seqs]
    assert B.file_name(B.MAX_SEQUENCE) == "batch_4294967295.bin"
    assert 0 < written < 6 and s.counters.records_not_written == 6 - written and s.failed
    # The next start (a new run) knows at once, and still writes nothing.
    s2 = _store(tmp_path, key="run2")
    assert s2.failed and not s2.append(*_record(9))
    assert len(_finals(tmp_path)) == 2
    # The operator's remedy, as documented: numbering restarts at 1.
    for p in _finals(tmp_path):
        p.unlink()
    (tmp_path / bs.STATE_FILE).unlink()
    s3 = _store(tmp_path, key="run3")
    assert s3.append(*_record(10))
    s3.close()
    assert [h["sequence"] for h in _headers(tmp_path)] == [1]


def test_numbers_beyond_the_header_are_not_ours(tmp_path):
    """A name whose number no header can carry is no batch file of ours: it is neither
    continued from, nor pruned, nor recovered; a state beyond the range is invalid."""
    foreign = tmp_path / "batch_99999999999.bin"
    foreign.write_bytes(b"x" * 3000)
    part = tmp_path / "batch_99999999999.bin.part"
    part.write_bytes(b"y")
    (tmp_path / bs.STATE_FILE).write_text(json.dumps({"format": bs.STATE_FORMAT, "next_sequence": 2**40}))
    s = _store(tmp_path, total_max_bytes=1000)
    assert s.next_seq == 1
    assert s.append(*_record(0))
    s.close()
    assert foreign.exists() and part.exists() and not s.failed
    assert [B.decode_header(p.read_bytes())["sequence"] for p in _finals(tmp_path) if p != foreign] == [1]
