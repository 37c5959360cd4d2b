"""Restarts through the real process tree: a task killed in the middle of a batch is
restarted, takes what it read before again, and the downlink is record for record that of
a run without the fault (docs/interface.md, "Replay after a restart")."""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from pathlib import Path

import psutil
import pytest
from flight_harness import (
    REPO,
    FlightRun,
    batch_end_sc,
    compare_downlinks,
    downlink,
    estimators_done,
    make_home,
    timed_record_counts,
)

from pygnc.config import Config
from pygnc.formats import status as S
from pygnc.tasks.table import enabled_tasks

NAMES = [t.name for t in enabled_tasks(Config())]
#: Time to process the batch, restarts included (the machine may be shared), s.
RUN_TIMEOUT_S = 240.0


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Path:
    """Twelve hours of the two-partner day (data/scenarios/formation_24h.toml: faults, GPS
    gaps, ranges to two partners, their priors uplinked), the truth attitude coarse (it is
    not judged here): ~15 600 measurements, three times what the measurement channel's
    queues hold, so tasks can be killed twice in a run while ingest is still publishing."""
    from ground.simulate import scenario as scn
    from ground.simulate.simulator import simulate, write_scenario

    s = scn.load_settings(REPO / "data" / "scenarios" / "formation_24h.toml")
    s.duration_s = 12 * 3600.0
    s.attitude.max_step_s = 30.0
    s.environment.albedo = 0.0
    out = tmp_path_factory.mktemp("restarts_6h")
    write_scenario(simulate(s), out)
    return out


def _home(tmp: Path, scenario: Path) -> Path:
    home = make_home(tmp, scenario)
    shutil.copy(scenario / "pygnc_config.toml", home / "pygnc_config.toml")  # the uplinked priors
    return home


def _log_time(line: str) -> float:
    return time.mktime(time.strptime(line[:19], "%Y-%m-%dT%H:%M:%S")) + int(line[20:23]) / 1000.0


def _slowest(st: dict) -> float:
    """The epoch of the estimator furthest behind (the formation's partners: the critical
    path; ingest publishes ~5 000 measurements ahead of it)."""
    peers = [st[f"peer{k}_t_sc_s"] for k in range(S.MAX_PEERS) if st[f"peer{k}_id"]]
    return min(peers) if len(peers) == 2 else float("nan")


def _wait_log(path: Path, needle: str, timeout_s: float, after: int = 0) -> int:
    """Wait until *needle* is in the log *path* (from character *after*); where it is."""
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        try:
            i = path.read_text(errors="replace").find(needle, after)
        except FileNotFoundError:
            i = -1
        if i >= 0:
            return i
        time.sleep(0.002)
    raise AssertionError(f"{needle!r} not in {path} within {timeout_s} s")


#: CPU time a restarted task spends on its replay before it is held and ingest killed, s
#: (killed at 0.3 of the batch, the orbit estimator's replay is a few thousand messages,
#: a few tenths of a second of CPU).
CATCH_UP_CPU_S = 0.02


def _wait_cpu(pid: int, cpu_s: float, timeout_s: float = 30.0) -> None:
    """Wait until process *pid* has used *cpu_s* more CPU time than now."""
    p = psutil.Process(pid)
    t0 = sum(p.cpu_times()[:2])
    t_end = time.monotonic() + timeout_s
    while sum(p.cpu_times()[:2]) - t0 < cpu_s:
        assert time.monotonic() < t_end, f"process {pid} did not run"
        time.sleep(0.001)


def _kill(run: FlightRun, name: str) -> None:
    os.kill(run.task_pid(name), signal.SIGKILL)


def _wait_back(run: FlightRun, name: str, before: int) -> None:
    k = NAMES.index(name)
    run.wait_status(
        lambda s: s[f"task{k}_restarts"] > before and S.TASK_STATES[s[f"task{k}_state"]] == "running",
        timeout_s=RUN_TIMEOUT_S,
    )


def _run(tmp: Path, scenario: Path, kills: list[tuple[str, float]] = (), catching_up=None) -> tuple[dict, Path, dict]:
    """Run the tree to the end of the batch, killing each task of *kills* once the slowest
    estimate has reached its fraction of the batch and the task killed before is back; with
    *catching_up* (a consumer of ``meas``), ingest is killed too, as soon as it has begun its
    replay to that task once it is restarted; (downlink, log directory, final status)."""
    t_first, t_last = batch_end_sc(scenario)
    home = _home(tmp, scenario)
    # With a catch-up to catch, the tree runs niced: on a loaded machine this test's own
    # polling was held off long enough for the restarted task to take its whole replay.
    prefix = ["nice", "-n", "10"] if catching_up else None
    with FlightRun(home, timeout_min=30, spacecraft_time_s=t_last + 1.0, prefix=prefix) as run:
        run.wait_status(lambda s: s["run"] > 0)
        logs = run.log_dir()
        for name, at in kills:
            target = t_first + at * (t_last - t_first)
            run.wait_status(lambda s, target=target: _slowest(s) >= target, timeout_s=RUN_TIMEOUT_S, period_s=0.005)
            before = run.status()[f"task{NAMES.index(name)}_restarts"]
            ingest_log, task_log = logs / "ingest.log", logs / f"{name}.log"
            mark = len(ingest_log.read_text(errors="replace"))
            task_mark = len(task_log.read_text(errors="replace"))
            _kill(run, name)
            if name == catching_up:
                _wait_log(ingest_log, f"meas: replaying to {name}", RUN_TIMEOUT_S, after=mark)
                # Started (its CPU until then is its start-up, not the replay), then taking the
                # replay - and held there (SIGSTOP) until the supervisor has seen ingest die, so
                # the fault falls in the catch-up however fast the machine takes the rest of it.
                _wait_log(task_log, "INFO started (pid", RUN_TIMEOUT_S, after=task_mark)
                task = psutil.Process(run.task_pid(name))
                sup_log = logs / "supervisor.log"
                sup_mark = len(sup_log.read_text(errors="replace"))
                _wait_cpu(task.pid, CATCH_UP_CPU_S)
                task.suspend()
                try:
                    before_ingest = run.status()[f"task{NAMES.index('ingest')}_restarts"]
                    _kill(run, "ingest")
                    _wait_log(sup_log, "ingest exited unexpectedly", RUN_TIMEOUT_S, after=sup_mark)
                finally:
                    task.resume()
                _wait_back(run, "ingest", before_ingest)
            _wait_back(run, name, before)
        run.wait_status(lambda s: estimators_done(s, t_last, 2), timeout_s=RUN_TIMEOUT_S)
        run.ctrl_c()
        assert run.wait_exit(30) == 0, run.text
        final = run.status()
    return downlink(home), logs, final


@pytest.fixture(scope="module")
def reference(scenario, tmp_path_factory) -> dict:
    """The downlink of a run without a fault."""
    got, _, _ = _run(tmp_path_factory.mktemp("clean"), scenario)
    assert sum(k[0] == "formation" for k in got) > 600 and sum(k[0] == "attitude" for k in got) > 300
    return got


def _differences(reference: dict, got: dict) -> dict:
    return {k: c for k, c in compare_downlinks(reference, got).items() if c["missing"] or c["extra"] or c["differ"]}


def _restarts(final: dict) -> dict:
    return {n: final[f"task{k}_restarts"] for k, n in enumerate(NAMES) if final[f"task{k}_restarts"]}


def _check_killed_mid_batch(logs: Path, kills) -> None:
    """Each task was killed while ingest was still publishing the batch (else the restart
    would not be tested where it matters), and each restarted one took its replay."""
    sup = (logs / "supervisor.log").read_text()
    ingest = (logs / "ingest.log").read_text()
    published = [_log_time(x) for x in ingest.splitlines() if "batch published" in x]
    assert published, ingest
    for name, _ in kills:
        died = [_log_time(x) for x in sup.splitlines() if re.search(rf"\b{name} exited unexpectedly with status -9", x)]
        assert died and died[0] < published[-1], (name, died, published)
        if name != "ingest":
            assert "replay of meas taken" in (logs / f"{name}.log").read_text(), name


KILLS = [
    # every task that takes a replay, killed mid-batch, three in a run: the first when the
    # slowest estimate (formation) is 4 % into the batch, the others once the one before is
    # back (ingest, which paused meanwhile, is then far ahead of it); the estimators again
    # at other instants in test_the_rest_of_the_tree_does_not_see_an_estimator_restart
    [("ingest", 0.04), ("formation_estimator", 0.12), ("status_reporter", 0.2)],
    [("orbit_estimator", 0.04), ("batch_writer", 0.12), ("attitude_estimator", 0.2)],
]


def test_restarts_mid_batch_leave_the_downlink_of_a_clean_run(scenario, reference, tmp_path):
    """Issue 39 items 1 and 2: a restarted estimator discarded its replay (it first got the
    tail of ingest's stream, then everything again as stale), and every replay went to every
    consumer; the downlink lost up to 43 % of a task's records."""
    for i, kills in enumerate(KILLS):
        (tmp_path / f"k{i}").mkdir()
        got, logs, final = _run(tmp_path / f"k{i}", scenario, kills)
        _check_killed_mid_batch(logs, kills)
        assert not _differences(reference, got), kills
        assert _restarts(final) == {n: sum(n == k for k, _ in kills) for n, _ in kills}, final


def test_the_rest_of_the_tree_does_not_see_an_estimator_restart(scenario, reference, tmp_path):
    """Issue 48 item 10: ingest crashed ("dictionary changed size during iteration") when a
    restarted estimator caught up - on every formation kill -, spent one of its restarts and
    published everything again.  Every estimator killed mid-batch: ingest and the sinks
    never restart, ingest hands each replay over, and the downlink is a clean run's."""
    kills = [("formation_estimator", 0.04), ("attitude_estimator", 0.12), ("orbit_estimator", 0.2)]
    got, logs, final = _run(tmp_path, scenario, kills)
    _check_killed_mid_batch(logs, kills)
    assert _restarts(final) == {n: 1 for n, _ in kills}, final
    ingest = (logs / "ingest.log").read_text()
    assert "Traceback" not in ingest and "crashed" not in ingest, ingest[-3000:]
    for name, _ in kills:
        assert f"meas: replay to {name} handed over" in ingest, name
    assert not _differences(reference, got)


def test_a_fault_during_a_catch_up_counts_nothing_twice(scenario, reference, tmp_path):
    """Issue 48 item 11: the orbit estimator killed, then ingest killed while the orbit
    estimator caught up: the new ingest replayed from the start and the estimator took again
    what it had taken of the first replay (805 orbit records with ``n_invalid`` 13 too
    high).  What it takes while catching up advances its duplicate filter too."""
    got, logs, final = _run(tmp_path, scenario, [("orbit_estimator", 0.3)], catching_up="orbit_estimator")
    assert _restarts(final) == {"orbit_estimator": 1, "ingest": 1}, final
    sup = (logs / "supervisor.log").read_text()
    orbit = (logs / "orbit_estimator.log").read_text()
    ingest_died = [_log_time(x) for x in sup.splitlines() if "ingest exited unexpectedly with status -9" in x]
    caught_up = [_log_time(x) for x in orbit.splitlines() if "replay of meas taken" in x]
    assert ingest_died and caught_up and ingest_died[0] <= caught_up[-1], (ingest_died, caught_up)
    assert not _differences(reference, got)
    # it had taken part of the first replay, and skipped it when the new ingest sent it again
    assert re.search(r"meas: ingest restarted: skipping what it \w+ again \(seq <= [1-9]", orbit), orbit[-3000:]


def _cut(run: FlightRun, n: int, cut_at, t_first: float, t_last: float) -> None:
    """Cut the power of run *n* once its slowest estimate is at the fraction *cut_at* of
    the batch, or (``"done"``) once the batch is processed."""
    if cut_at == "done":
        run.wait_status(lambda s: s["run"] == n and estimators_done(s, t_last, 2), timeout_s=RUN_TIMEOUT_S)
    else:
        target = t_first + cut_at * (t_last - t_first)
        run.wait_status(lambda s: s["run"] == n and _slowest(s) >= target, timeout_s=RUN_TIMEOUT_S, period_s=0.005)
    run.power_cut()


@pytest.mark.timeout(900)  # (four starts in one test; each stage fails on its own, sooner, if it must)
def test_power_cuts_one_after_another_downlink_nothing_twice(scenario, reference, tmp_path):
    """Issue 48 item 12: after a power cut the next start wrote again every record the cut
    run had written (719 to 6 768 per cut).  Three cuts in a row on the same files - the
    whole tree killed at once when the slowest estimate is 4 % into the batch, in the next
    run 70 % into it, in the third with the batch done - the host taking the complete files
    after each, then a start that runs to the end: each start recovers the ``.part`` the
    cut before left (or removes it, when the cut came before its first record) and writes
    nothing again, and across every run's batch files each record of a clean run is there
    once."""
    t_first, t_last = batch_end_sc(scenario)
    home = _home(tmp_path, scenario)
    batches, taken = home / "pygnc_batches", tmp_path / "downlinked"
    taken.mkdir()
    parts: list[Path] = []  # what the cut before left unfinished
    written: dict = {}
    for n, cut_at in enumerate([0.04, 0.7, "done", None], start=1):
        with FlightRun(home, timeout_min=30, spacecraft_time_s=t_last + 1.0 + 600.0 * (n - 1)) as run:
            if cut_at is None:
                run.wait_status(lambda s, n=n: s["run"] == n and estimators_done(s, t_last, 2), timeout_s=RUN_TIMEOUT_S)
                run.ctrl_c()
                assert run.wait_exit(30) == 0, run.text
            else:
                _cut(run, n, cut_at, t_first, t_last)
            log = (run.log_dir() / "batch_writer.log").read_text()
        if n > 1:  # the .part the cut before left: recovered, or removed if it held no record
            recovered = "recovered 1 .part" in log or ("no intact record" in log and "removed batch_" in log)
            assert recovered == bool(parts) and "not written again" in log, (n, log)
        if cut_at is None:
            break
        for f in batches.glob("batch_*.bin"):  # the host takes the complete files
            f.rename(taken / f.name)
        parts = list(batches.glob("*.part"))  # (none if the cut came between two files)
        part_dir = tmp_path / f"part{n}"
        part_dir.mkdir()
        for part in parts:
            shutil.copy(part, part_dir / part.name[: -len(".part")])
        now = timed_record_counts(home, taken, part_dir)  # what the cut runs wrote
        assert len(parts) <= 1 and len(now) > len(written), (n, len(now), len(written))
        written = now
    counts = timed_record_counts(home, taken)
    twice = {k: c for k, c in counts.items() if c > 1}
    assert not twice, (len(twice), sorted(twice)[:5])
    assert not _differences(reference, downlink(home, taken))


def test_a_stopped_status_reporter_is_replaced_at_its_own_health_limit(tmp_path):
    """Issue 39 item 3: the status file stayed frozen for the estimators' 8-s health limit
    while a stopped (SIGSTOP) status reporter waited for it."""
    sample = REPO / "data" / "sample_5min"
    _, t_last = batch_end_sc(sample)
    config = Config()
    k = NAMES.index("status_reporter")
    with FlightRun(make_home(tmp_path, sample), spacecraft_time_s=t_last + 1.0) as run:
        run.wait_status(
            lambda s: (
                s["flags"] & S.FLAG_BATCH_DONE
                and all(S.TASK_STATES[s[f"task{i}_state"]] == "running" for i in range(len(NAMES)))
                # (the estimators may still be working through the batch on a busy machine)
                and s["orbit_t_sc_s"] == s["orbit_t_sc_s"]
                and s["att_t_sc_s"] == s["att_t_sc_s"]
            )
        )
        stopped = run.task_pid("status_reporter")
        os.kill(stopped, signal.SIGSTOP)
        seq = run.status()["seq"]
        st = run.wait_status(lambda s: s["seq"] != seq, timeout_s=30)
        # the new reporter carries on from the last status: its first one has the estimates
        # and totals (the replay is still to come) and a seq that goes on counting
        assert st["seq"] > seq and st["flags"] & S.FLAG_BATCH_DONE and st["fixes_total"] == 12, st
        assert st["orbit_t_sc_s"] == st["orbit_t_sc_s"] and st["att_t_sc_s"] == st["att_t_sc_s"], st
        st = run.wait_status(lambda s: s[f"task{k}_restarts"] == 1, timeout_s=10)
        sup = (run.log_dir() / "supervisor.log").read_text()
        silent = [float(m) for m in re.findall(r"status_reporter silent for ([\d.]+) s: killing it", sup)]
        assert len(silent) == 1 and config.status_health_fatal_s <= silent[0] < config.health_fatal_s, sup
        assert run.task_pid("status_reporter") != stopped
        run.wait_status(lambda s: s["seq"] > st["seq"] + 2)  # the new one keeps writing
        run.ctrl_c()
        assert run.wait_exit(10) == 0, run.text
