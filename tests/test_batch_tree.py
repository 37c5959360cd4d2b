"""The batch writer in the real process tree, in a pseudo-terminal as the host runs it:
Ctrl-C closes the batch with the producers' final messages; kill -9 of the writer, then of
the whole tree (a power cut), loses nothing the files held and duplicates nothing."""

from __future__ import annotations

import time

import psutil
from flight_harness import REPO, FlightRun, gone, make_home

from ground import batches as G
from pygnc.bus.messages import DecodeCounters, decode
from pygnc.formats import batch as B
from pygnc.formats import status as S
from pygnc.formats.buslog import decode_frames
from pygnc.formats.sense import decode_sense

SAMPLE = REPO / "data" / "sample"
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


def test_kill_9_of_the_writer_then_of_the_tree_loses_and_duplicates_nothing(tmp_path):
    home = make_home(tmp_path, SAMPLE)
    cfg = tmp_path / "cfg.toml"
    # Every estimate recorded and small files: several files rotate while the tree runs.
    cfg.write_text("batch_file_max_bytes = 1500\n[batch_period_s]\norbit = 0\nattitude = 0\nformation = 0\n")
    env = {"PYGNC_CONFIG": str(cfg)}
    d = home / "pygnc_batches"
    writer_id = 6
    with FlightRun(home, spacecraft_time_s=T_END_SC, env=env) as run:
        run.wait_status(_ready)
        time.sleep(1.0)
        # 1. The writer alone is killed with a file open; the supervisor restarts it.
        psutil.Process(run.task_pid("batch_writer")).kill()
        (part,) = d.glob("*.part")  # read before the restarted writer (0.25 s backoff) recovers it
        held = [r.raw for r in B.decode_batch(part.read_bytes()).records]
        run.wait_status(lambda s: _task_state(s, writer_id) == ("running", 1), timeout_s=20)
        time.sleep(2.5)  # ingest replays the stream to the restarted writer
        recovered = d / part.name[: -len(B.PART_SUFFIX)]
        assert B.decode_header(recovered.read_bytes())["flag_names"] == ["recovered"]
        assert [r.raw for r in B.decode_batch(recovered.read_bytes()).records] == held
        # 2. Power cut: every process killed at once, a file open again (once the restarted
        # writer, its replay done, writes the live records: slower on a loaded machine).
        t_end = time.monotonic() + 30.0
        while not list(d.glob("*.part")) and time.monotonic() < t_end:
            time.sleep(0.02)
        procs = run.tree()
        for p in procs:
            p.kill()
        psutil.wait_procs(procs, timeout=5)
        (part2,) = d.glob("*.part")
        held2 = [r.raw for r in B.decode_batch(part2.read_bytes()).records]
    assert held2
    # 3. The next start recovers the .part before writing anything else.
    with FlightRun(home, spacecraft_time_s=T_END_SC, env=env) as run:
        run.wait_status(lambda s: s["run"] == 2 and _ready(s))  # (run 1's last status is still there)
        run.ctrl_c()
        assert run.wait_exit(10) == 0, run.text
    recovered2 = d / part2.name[: -len(B.PART_SUFFIX)]
    h = B.decode_header(recovered2.read_bytes())
    assert h["flag_names"] == ["recovered"] and h["run"] == 1
    assert [r.raw for r in B.decode_batch(recovered2.read_bytes()).records] == held2
    assert not list(d.glob("*.part"))
    bset = G.read_batches(d)
    assert bset.duplicate_records == 0  # the replay to the restarted writer added nothing twice
    assert not [p for p in bset.problems if "recovered" not in p], bset.problems
    seqs = [B.decode_header(p.read_bytes())["sequence"] for p in _finals(d)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert {f.run for f in bset.files} == {1, 2}
