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

import pytest
from flight_harness import REPO, FlightRun, batch_end_sc, compare_downlinks, downlink, estimators_done, make_home

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
    from ground.sim import scenario as scn
    from ground.simulate import simulate, write_scenario

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


def _run(tmp: Path, scenario: Path, kills: list[tuple[str, float]] = ()) -> tuple[dict, Path]:
    """Run the tree to the end of the batch, killing each task of *kills* once the slowest
    estimate has reached its fraction of the batch and the task killed before is back;
    (downlink, log directory)."""
    t_first, t_last = batch_end_sc(scenario)
    home = _home(tmp, scenario)
    with FlightRun(home, timeout_min=30, spacecraft_time_s=t_last + 1.0) as run:
        for name, at in kills:
            k = NAMES.index(name)
            target = t_first + at * (t_last - t_first)
            run.wait_status(lambda s, target=target: _slowest(s) >= target, timeout_s=RUN_TIMEOUT_S, period_s=0.005)
            before = run.status()[f"task{k}_restarts"]
            os.kill(run.task_pid(name), signal.SIGKILL)
            run.wait_status(
                lambda s, k=k, before=before: (
                    s[f"task{k}_restarts"] > before and S.TASK_STATES[s[f"task{k}_state"]] == "running"
                ),
                timeout_s=RUN_TIMEOUT_S,
            )
        run.wait_status(lambda s: estimators_done(s, t_last, 2), timeout_s=RUN_TIMEOUT_S)
        run.ctrl_c()
        assert run.wait_exit(30) == 0, run.text
        logs = run.log_dir()
    return downlink(home), logs


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
    # every task that takes a replay, killed at two instants of the batch, three in a run:
    # the first when the slowest estimate (formation) is 4 % into the batch, the others once
    # the one before is back (ingest, which paused meanwhile, is then far ahead of it)
    [("ingest", 0.04), ("formation_estimator", 0.12), ("status_reporter", 0.2)],
    [("orbit_estimator", 0.04), ("batch_writer", 0.12), ("ingest", 0.2)],
    [("attitude_estimator", 0.04), ("status_reporter", 0.12), ("formation_estimator", 0.2)],
    [("batch_writer", 0.04), ("orbit_estimator", 0.12), ("attitude_estimator", 0.2)],
]


def test_restarts_mid_batch_leave_the_downlink_of_a_clean_run(scenario, tmp_path):
    """Issue 39 items 1 and 2: a restarted estimator discarded its replay (it first got the
    tail of ingest's stream, then everything again as stale), and every replay went to every
    consumer; the downlink lost up to 43 % of a task's records."""
    (tmp_path / "clean").mkdir()
    reference, _ = _run(tmp_path / "clean", scenario)
    assert sum(k[0] == "formation" for k in reference) > 600 and sum(k[0] == "attitude" for k in reference) > 300
    for i, kills in enumerate(KILLS):
        (tmp_path / f"k{i}").mkdir()
        got, logs = _run(tmp_path / f"k{i}", scenario, kills)
        _check_killed_mid_batch(logs, kills)
        bad = {
            kind: c
            for kind, c in compare_downlinks(reference, got).items()
            if c["missing"] or c["extra"] or c["differ"]
        }
        assert not bad, (kills, bad)


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
