"""The batch writer in the real process tree, in a pseudo-terminal as the host runs it:
Ctrl-C closes the batch with the producers' final messages; kill -9 of the writer, then of
the whole tree (a power cut), loses nothing the files held and duplicates nothing."""

from __future__ import annotations

import os
import signal
import time

import psutil
from flight_harness import REPO, FlightRun, gone, make_home

from ground.decode import batch_files as G
from pygnc.bus.messages import DecodeCounters, decode
from pygnc.formats import batch as B
from pygnc.formats import status as S
from pygnc.formats.buslog import decode_frames
from pygnc.formats.sense import decode_sense
from pygnc.tasks.table import TASK_NAMES_BY_ID

SAMPLE = REPO / "data" / "sample_5min"
T_END_SC = float(decode_sense((SAMPLE / "sense.bin").read_bytes()).sensors["t_sc_s"][-1]) + 1.0


def _ready(s) -> bool:
    return bool(s["flags"] & S.FLAG_BATCH_DONE and s["flags"] & S.FLAG_ORBIT_VALID)


def _task_state(s, task_id: int) -> tuple[str, int]:
    for k in range(S.MAX_TASKS):
        if s[f"task{k}_id"] == task_id:
            return S.TASK_STATES[s[f"task{k}_state"]], s[f"task{k}_restarts"]
    return "unused", 0


def _finals(d):
    return sorted(p for p in d.iterdir() if B.FILE_RE.match(p.name))


def _records(d) -> list[B.Record]:
    return [r for p in _finals(d) for r in B.decode_batch(p.read_bytes()).records]


def test_ctrl_c_closes_the_batch_with_the_producers_final_messages(tmp_path):
    home = make_home(tmp_path, SAMPLE)
    with FlightRun(home, spacecraft_time_s=T_END_SC) as run:
        run.wait_status(_ready)
        time.sleep(1.5)  # propagated estimates flow (one a second)
        pids = [p.pid for p in run.tree()]
        run.ctrl_c()
        assert run.wait_exit(10) == 0, run.text
        assert gone(pids)
        bus = decode_frames((run.log_dir() / "bus.log").read_bytes())
        log = (run.log_dir() / "batch_writer.log").read_text()
    d = home / "pygnc_batches"
    assert not list(d.glob("*.part")) and not list(d.glob(".*.tmp*"))
    files = _finals(d)
    assert files and B.decode_header(files[-1].read_bytes())["flag_names"] == ["closed_stop"]
    records = _records(d)
    # What the status reporter saw on the bus (every message), against what was recorded.
    counters = DecodeCounters()
    msgs = [m for m in (decode(f.message, counters) for f in bus.frames[1:]) if m is not None]
    for kind in ("orbit", "attitude", "formation"):
        k = B.KINDS_BY_NAME[kind]
        sent = [m.body for m in msgs if m.type in k.message_types]
        got = [r for r in records if r.code == k.code]
        keyed = lambda b: b.get("peer_id", 0)  # noqa: E731
        for key in {keyed(b) for b in sent}:
            ts = [b["t_sc_s"] for b in sent if keyed(b) == key]
            rs = [r.t_sc_s for r in got if (r.values().get("peer_id", 0) if kind == "formation" else 0) == key]
            # Every minute with a message has a record; the last message of the run is recorded.
            assert {int(t // 60) for t in ts} == {int(t // 60) for t in rs}, kind
            assert abs(max(rs) - max(ts)) < 1e-3, (kind, key, max(rs), max(ts))
    health = [r.values() for r in records if r.kind.name == "health"]
    assert health[-1]["flags"] & 1  # the supervisor's last health table (stopping) is in the batch
    assert "closed:" in log


def _frozen_with_a_part(procs: list, d, timeout_s: float = 30.0):
    """Stop *procs* (SIGSTOP) at an instant the writer has a .part open in *d* holding a
    record - with small files rotating there are instants with none (the next opens with the
    next record), and instants with a .part of its header alone (created, its first records
    not yet written: recovery deletes it) - and return that .part; the caller kills or
    continues them."""
    t_end = time.monotonic() + timeout_s
    while True:
        for p in procs:
            p.suspend()
        parts = list(d.glob("*.part"))
        if parts:
            (part,) = parts
            if B.decode_batch(part.read_bytes()).records:
                return part
        for p in procs:
            p.resume()
        assert time.monotonic() < t_end, "the writer never had a .part open"
        time.sleep(0.01)


def test_kill_9_of_the_writer_then_of_the_tree_loses_and_duplicates_nothing(tmp_path):
    home = make_home(tmp_path, SAMPLE)
    cfg = tmp_path / "cfg.toml"
    # Every estimate recorded and small files: several files rotate while the tree runs.
    cfg.write_text("batch_file_max_bytes = 1500\n[batch_period_s]\norbit = 0\nattitude = 0\nformation = 0\n")
    env = {"PYGNC_CONFIG": str(cfg)}
    d = home / "pygnc_batches"
    writer_id = 6
    with FlightRun(home, spacecraft_time_s=T_END_SC, env=env) as run:
        run.wait_status(lambda s: _ready(s) and len(_finals(d)) >= 1)
        # 1. The writer alone is killed with a file open (frozen first, so the file read is
        # the one it leaves); the supervisor restarts it.
        writer = psutil.Process(run.task_pid("batch_writer"))
        part = _frozen_with_a_part([writer], d)
        held = [r.raw for r in B.decode_batch(part.read_bytes()).records]
        writer.kill()
        run.wait_status(lambda s: _task_state(s, writer_id) == ("running", 1), timeout_s=20)
        recovered = d / part.name[: -len(B.PART_SUFFIX)]
        run.wait_status(lambda s: recovered.exists() and s["batch_t_sc_last_s"] > 0)
        # (frozen between the final header and the rename, a full file says so too: closed_size)
        flags = B.decode_header(recovered.read_bytes())["flag_names"]
        assert "recovered" in flags and set(flags) <= {"recovered", "closed_size"}, flags
        assert [r.raw for r in B.decode_batch(recovered.read_bytes()).records] == held
        n_before = len(_finals(d))
        run.wait_status(lambda s: len(_finals(d)) > n_before)  # the restarted writer goes on writing
        # 2. Power cut: every process frozen at an instant with a file open, then killed.
        procs = run.tree()
        part2 = _frozen_with_a_part(procs, d)
        held2 = [r.raw for r in B.decode_batch(part2.read_bytes()).records]
        run.power_cut()  # (frozen already: killed now)
    assert held2
    # 3. The next start recovers the .part before writing anything else.
    with FlightRun(home, spacecraft_time_s=T_END_SC, env=env) as run:
        run.wait_status(lambda s: s["run"] == 2 and _ready(s))  # (run 1's last status is still there)
        run.ctrl_c()
        assert run.wait_exit(10) == 0, run.text
    recovered2 = d / part2.name[: -len(B.PART_SUFFIX)]
    h = B.decode_header(recovered2.read_bytes())
    # (as in 1: frozen between the final header and the rename, a full file says closed_size too)
    assert "recovered" in h["flag_names"] and set(h["flag_names"]) <= {"recovered", "closed_size"} and h["run"] == 1
    assert [r.raw for r in B.decode_batch(recovered2.read_bytes()).records] == held2
    assert not list(d.glob("*.part"))
    bset = G.read_batches(d)
    assert bset.duplicate_records == 0  # the replay to the restarted writer added nothing twice
    assert not [p for p in bset.problems if "recovered" not in p], bset.problems
    seqs = [B.decode_header(p.read_bytes())["sequence"] for p in _finals(d)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert {f.run for f in bset.files} == {1, 2}


def _wait_text(path, needle: str, timeout_s: float = 20.0) -> None:
    t_end = time.monotonic() + timeout_s
    while needle not in (path.read_text(errors="replace") if path.exists() else ""):
        assert time.monotonic() < t_end, f"{needle!r} not in {path}"
        time.sleep(0.01)


def test_a_writer_killed_during_the_stop_is_said_and_its_part_recovered(tmp_path):
    """Issue 48 item 13: the batch writer killed during the ordered stop left a .part beside
    the complete files, and the run exited 0 with `stopping`, no `downlink_failed` and the
    writer listed "running".  Now: `downlink_failed`, the writer `exited`, the .part
    recovered before the exit."""
    home = make_home(tmp_path, SAMPLE)
    d = home / "pygnc_batches"
    with FlightRun(home, spacecraft_time_s=T_END_SC) as run:
        run.wait_status(_ready)
        run.wait_status(lambda s: list(d.glob("*.part")))  # a file open (the estimates flow)
        writer = run.task_pid("batch_writer")
        os.kill(writer, signal.SIGSTOP)  # it takes no part in the stop ...
        run.ctrl_c()
        _wait_text(run.log_dir() / "supervisor.log", "ingest stopped (exit status 0)")
        (part,) = d.glob("*.part")
        held = [r.raw for r in B.decode_batch(part.read_bytes()).records]
        os.kill(writer, signal.SIGKILL)  # ... and is killed in the middle of it
        assert run.wait_exit(10) == 0, run.text
        sup = (run.log_dir() / "supervisor.log").read_text()
    st = S.decode_status(run.status_path.read_bytes())
    assert st["flags"] & S.FLAG_STOPPING and st["flags"] & S.FLAG_DOWNLINK_FAILED, st["flag_names"]
    states = {
        TASK_NAMES_BY_ID[st[f"task{k}_id"]]: S.TASK_STATES[st[f"task{k}_state"]]
        for k in range(S.MAX_TASKS)
        if st[f"task{k}_id"]
    }
    assert states.pop("batch_writer") == "exited" and set(states.values()) == {"stopped"}, states
    assert b" DF" in (home / "pygnc_info.txt").read_bytes()
    assert not list(d.glob("*.part")) and "recovered 1 .part batch files the batch writer left" in sup
    recovered = d / part.name[: -len(B.PART_SUFFIX)]
    assert B.decode_header(recovered.read_bytes())["flag_names"] == ["recovered"]
    assert [r.raw for r in B.decode_batch(recovered.read_bytes()).records] == held


def test_ctrl_c_just_after_the_start_after_a_power_cut_recovers_the_cut_runs_part(tmp_path):
    """Issue 48 item 13: a Ctrl-C within 0.5 s of the start after a power cut stopped the
    writer before it had opened its directory, and the cut run's .part stayed (4 of 5)."""
    home = make_home(tmp_path, SAMPLE)
    d = home / "pygnc_batches"
    with FlightRun(home, spacecraft_time_s=T_END_SC) as run:
        run.wait_status(_ready)
        run.wait_status(lambda s: list(d.glob("*.part")))
        run.power_cut()
    (part,) = d.glob("*.part")
    held = [r.raw for r in B.decode_batch(part.read_bytes()).records]
    with FlightRun(home, spacecraft_time_s=T_END_SC + 60) as run:
        run.wait_status(lambda s: s["run"] == 0)  # this start's first status: the supervisor runs
        run.ctrl_c()
        assert run.wait_exit(10) == 0, run.text
        logs = run.log_dir()
        sup, writer = (
            (logs / f).read_text() if (logs / f).exists() else "" for f in ("supervisor.log", "batch_writer.log")
        )
    assert not list(d.glob("*.part"))
    assert "recovered 1 .part" in sup + writer, sup
    recovered = d / part.name[: -len(B.PART_SUFFIX)]
    assert [r.raw for r in B.decode_batch(recovered.read_bytes()).records] == held
    st = S.decode_status(run.status_path.read_bytes())
    assert st["run"] == 2 and st["flags"] & S.FLAG_STOPPING and not st["flags"] & S.FLAG_DOWNLINK_FAILED
