"""Monte Carlo campaigns on Dask (issue 17): the campaign file, the consistency statistics,
and real campaigns through ``python -m ground montecarlo`` - on a local cluster, on a
running scheduler given by address (two ``dask worker`` processes), interrupted and
resumed, with a run that fails recorded - giving the same table from one worker and two."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import psutil
import pytest
from flight_harness import REPO
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ground_cli import ground, no_traceback

from ground.montecarlo import results as rs
from ground.montecarlo.campaign import CampaignError, load_campaign, parse_campaign, run_spec, run_specs
from ground.montecarlo.report import distribution, monte_carlo_anees
from ground.montecarlo.worker import nees_on_grid

BASE = REPO / "data" / "scenarios" / "formation_3h.toml"
EXAMPLE = REPO / "data" / "campaigns" / "formation_3h_dispersed.toml"


def campaign_text(seeds, duration="3m", extra="") -> str:
    return f"""
name = "t"
base_scenario = "{BASE}"
duration = "{duration}"
seeds = {list(seeds)}
settle = "1m"
nees_grid_s = 20.0
[dispersions]
"spacecraft.1.dlambda_m" = {{ uniform = [-5000.0, -1000.0] }}
"sensors.gyro_noise_deg_s" = {{ loguniform = [0.02, 0.08] }}
"faults.gps_drop_fraction" = {{ choice = [0.0, 0.05, 1.5] }}
{extra}
[[estimators]]
name = "flight"
[[estimators]]
name = "untagged"
config = {{ attitude_time_tag_from_clock_map = false }}
"""


def write_campaign(tmp_path: Path, seeds, **kw) -> Path:
    p = tmp_path / "campaign.toml"
    p.write_text(campaign_text(seeds, **kw))
    return p


def pick_seeds(n_ok: int, n_bad: int) -> list[int]:
    """Seeds whose drawn GPS drop fraction is valid (n_ok) or above 1 (n_bad): a run that
    the simulator refuses, known before the campaign runs."""
    c = parse_campaign(tomllib.loads(campaign_text(range(1, 60))), Path("x.toml"))
    ok, bad = [], []
    for s in run_specs(c):
        (bad if s.dispersed["faults.gps_drop_fraction"] > 1 else ok).append(s.seed)
    return sorted(ok[:n_ok] + bad[:n_bad])


def cli(*args, timeout=300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ground", "montecarlo", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        **kw,
    )


def table_without_volatile(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in rs.VOLATILE_COLUMNS} for r in rs.read_table(path)]


# --------------------------------------------------------------------------- campaign file
def test_example_campaign_parses_with_twenty_dispersed_runs():
    c = load_campaign(EXAMPLE)
    specs = run_specs(c)
    assert [s.seed for s in specs] == list(range(1, 21))
    assert [e.name for e in c.estimators] == ["flight", "smoothed", "gyro-0.05"]
    assert all(s.error is None for s in specs)
    d = np.array([s.dispersed["spacecraft.1.dlambda_m"] for s in specs])
    assert np.all((d >= -8000) & (d <= -1000)) and np.unique(d).size == 20
    bias = np.array([s.dispersed["spacecraft.0.gyro_bias_imu_deg_s"] for s in specs])
    assert bias.shape == (20, 3)
    # the drawn values are in the run's scenario
    sc = specs[3].scenario
    assert sc["spacecraft"][1]["dlambda_m"] == specs[3].dispersed["spacecraft.1.dlambda_m"]
    assert sc["seed"] == 4 and sc["faults"]["gps_drop_fraction"] == 0.02


def test_draws_depend_on_the_seed_and_key_only(tmp_path):
    """Adding a dispersion or more seeds leaves every other draw (and so every finished run's
    question) unchanged; a changed estimator configuration changes every spec hash."""
    a = load_campaign(write_campaign(tmp_path, [1, 2, 3]))
    b_path = tmp_path / "b.toml"
    b_path.write_text(campaign_text([1, 2, 3, 4], extra='"orbit.raan_deg" = { uniform = [0.0, 360.0] }'))
    b = load_campaign(b_path)
    for sa, sb in zip(run_specs(a), run_specs(b)):
        for k, v in sa.dispersed.items():
            assert sb.dispersed[k] == v
        assert sa.spec_hash != sb.spec_hash  # raan now dispersed: another question
    again = run_specs(load_campaign(write_campaign(tmp_path, [3, 1])))
    assert {s.seed: s.spec_hash for s in again} == {s.seed: s.spec_hash for s in run_specs(a) if s.seed in (1, 3)}
    c_path = tmp_path / "c.toml"
    c_path.write_text(
        campaign_text([1]).replace(
            "attitude_time_tag_from_clock_map = false", "attitude_time_tag_from_clock_map = true"
        )
    )
    assert run_specs(load_campaign(c_path))[0].spec_hash != run_specs(a)[0].spec_hash


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace('name = "untagged"', 'name = "flight"'), "names must differ"),
        (lambda t: t.replace("attitude_time_tag_from_clock_map", "no_such_flight_key"), "no_such_flight_key"),
        (lambda t: t.replace('"sensors.gyro_noise_deg_s"', '"sensors.no_such_setting"'), "no_such_setting"),
        (lambda t: t.replace("loguniform = [0.02, 0.08]", "loguniform = [0.0, 0.08]"), "loguniform needs low > 0"),
        (lambda t: t.replace("uniform = [-5000.0, -1000.0]", "uniform = [-1000.0, -5000.0]"), "low <= high"),
        (lambda t: t.replace("uniform = [-5000.0, -1000.0]", "gaussian = [0.0, 1.0]"), "uniform"),
        (lambda t: t.replace('duration = "3m"', 'duration = "three minutes"'), "duration"),
        (lambda t: t.replace("seeds = [1, 2]", "seeds = [1, 1]"), "must not repeat"),
        (lambda t: t + "\nbogus = 1\n", "unknown keys ['bogus']"),
        (lambda t: t.replace(str(BASE), "/nonexistent/base.toml"), "cannot read"),
    ],
)
def test_bad_campaign_files_are_refused_with_a_message(tmp_path, edit, message):
    p = tmp_path / "bad.toml"
    p.write_text(edit(campaign_text([1, 2])))
    with pytest.raises(CampaignError) as exc:
        load_campaign(p)
    assert message in str(exc.value)
    r = ground("montecarlo", p, "--out", tmp_path / "out")
    assert r.returncode == 2 and message in r.stderr
    no_traceback(r)
    assert not (tmp_path / "out" / "runs").exists()


def test_a_draw_the_settings_refuse_is_the_runs_failure_not_the_campaigns(tmp_path):
    from ground.montecarlo.worker import run_one

    p = tmp_path / "c.toml"
    p.write_text(
        campaign_text([1, 2]).replace(
            '"faults.gps_drop_fraction" = { choice = [0.0, 0.05, 1.5] }', '"orbit" = { choice = [5] }'
        )
    )
    spec = run_spec(load_campaign(p), 7)
    assert "dispersions.orbit = 5" in spec.error and "must be a table" in spec.error
    record = run_one(spec.as_dict())
    assert record["error"]["stage"] == "simulate" and "must be a table" in record["error"]["message"]
    assert set(record["estimators"]) == {"flight", "untagged"} and rs.record_failed(record)


# --------------------------------------------------------------------------- statistics
def test_monte_carlo_anees_test_accepts_a_consistent_filter_and_rejects_an_optimistic_one():
    rng = np.random.default_rng(5)
    runs, epochs, dof = 30, 400, 3
    consistent = rng.chisquare(dof, (runs, epochs))
    mc = monte_carlo_anees(consistent.tolist(), dof)
    assert 0.90 <= mc["frac_epochs_inside_95"] <= 0.99 and abs(mc["anees_mean"] - dof) < 0.1
    optimistic = monte_carlo_anees((2.0 * consistent).tolist(), dof)  # covariance half the truth
    assert optimistic["frac_epochs_inside_95"] < 0.05 and optimistic["frac_epochs_above"] > 0.95
    # gaps (None) are left out epoch by epoch; an epoch with one run only is not tested
    gappy = consistent.tolist()
    for run in gappy[1:]:
        run[0] = None
    assert monte_carlo_anees(gappy, dof)["n_epochs"] == epochs - 1


def test_distribution_names_the_worst_seed():
    rows = [{"seed": s, "x": v} for s, v in [(1, 2.0), (2, 9.0), (3, None), (4, float("nan")), (5, 1.0)]]
    d = distribution(rows, "x")
    assert d["n"] == 3 and d["median"] == 2.0 and d["worst"] == 9.0 and d["worst_seed"] == 2
    assert d["p95"] == pytest.approx(np.percentile([1.0, 2.0, 9.0], 95))
    assert distribution([{"seed": 1, "x": None}], "x") is None


def test_nees_on_grid_takes_the_nearest_row_within_half_a_step_after_settling():
    t0 = 1000.0
    t = t0 + np.array([0.0, 29.0, 61.0, 200.0])
    v = np.array([1.0, 2.0, 3.0, 4.0])
    g = nees_on_grid({"orbit": (t, v, 6)}, t0, 240.0, 30.0, settle_s=20.0)["orbit"]
    assert g["dof"] == 6 and len(g["values"]) == 9
    #          0 s   30   60   90    120   150   180   210  240
    assert g["values"] == [None, 2.0, 3.0, None, None, None, None, 4.0, None]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "seed": st.integers(0, 10**6),
                "estimator": st.sampled_from(["a", "b"]),
                "x_m": st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=64)),
                "error": st.one_of(
                    st.none(), st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
                ),
            }
        ),
        max_size=8,
    )
)
def test_results_table_round_trips(tmp_path_factory, rows):
    """The results table codec: every number back exactly (repr), text as written, empty
    cells as None."""
    base = {
        "campaign": "c",
        "run_id": "s1",
        "status": "ok",
        "stage": None,
        "spec_hash": "h",
        "simulate_s": 1.5,
        "replay_s": None,
        "worker": "w:1",
    }
    rows = [dict(base, **r) for r in rows]
    path = tmp_path_factory.mktemp("t") / "r.csv"
    path.write_text(rs.table_text(rows), newline="")
    back = rs.read_table(path)
    assert len(back) == len(rows)
    for r, b in zip(rows, back):
        assert b["seed"] == r["seed"] and b["x_m"] == r["x_m"]
        assert b["error"] == (r["error"] or None)


# --------------------------------------------------------------------------- real campaigns
@pytest.fixture(scope="module")
def seeds():
    return pick_seeds(n_ok=2, n_bad=1)


@pytest.fixture(scope="module")
def one_worker_run(tmp_path_factory, seeds):
    """The campaign on a local cluster of one worker process: (campaign, out, process)."""
    d = tmp_path_factory.mktemp("mc1")
    camp = write_campaign(d, seeds)
    with _port_taken(8787):  # Dask's dashboard port: no dashboard, so no warning about it either
        p = cli(camp, "--out", d / "out", "--workers", "1")
    return camp, d / "out", p


@contextlib.contextmanager
def _port_taken(port: int):
    """A listening socket on 127.0.0.1:*port* for the block (if the port is free)."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        s.listen(1)
    except OSError:
        pass  # taken already: as good
    try:
        yield
    finally:
        s.close()


def test_campaign_on_a_local_cluster_records_runs_failures_and_a_report(one_worker_run, seeds):
    camp, out, p = one_worker_run
    assert p.returncode == 0, p.stderr
    assert "local cluster, 1 worker" in p.stdout and "3 to run" in p.stdout
    rows = rs.read_table(out / "results.csv")
    assert [(int(r["seed"]), r["estimator"]) for r in rows] == [(s, e) for s in seeds for e in ("flight", "untagged")]
    bad = [s for s in seeds if run_spec(load_campaign(camp), s).dispersed["faults.gps_drop_fraction"] > 1]
    for r in rows:
        if int(r["seed"]) in bad:
            assert r["status"] == "failed" and r["stage"] == "simulate" and "gps_drop_fraction" in r["error"]
        else:
            assert r["status"] == "ok" and r["error"] is None
            assert 0 < r["orbit_position_3d_rms_m"] < 30 and 0 < r["attitude_angle_rms_deg"] < 10
            assert r["formation_rows"] > 0 and r["orbit_nees_frac_inside_95"] is not None
            # (three minutes: the range-only partner's rows are all `acquiring` - its prior, no estimate)
            assert r["formation_position_3d_rms_m"] is None
    # only summaries are kept, not the bulk CSVs
    assert sorted(x.name for x in (out / "runs").iterdir()) == [f"s{s:05d}.json" for s in seeds]
    report = (out / "report.md").read_text()
    assert "## Failed runs" in report and "gps_drop_fraction" in report and "--rerun SEED" in report
    stats = json.loads((out / "report.json").read_text())
    flight = stats["estimators"]["flight"]
    assert flight["n_ok"] == 2 and flight["n_failed"] == 1
    assert flight["consistency"]["orbit"]["monte_carlo"]["n_epochs"] >= 3
    assert "attitude_angle_rms_deg" in stats["estimators"]["untagged"]["paired_ratio_median"]
    assert (out / "plots" / "cdf_orbit_position_3d_rms_m.png").stat().st_size > 1000
    assert (out / "plots" / "anees_attitude.png").is_file()
    assert "failed" in p.stdout and "Traceback" not in p.stderr
    assert "8787" not in p.stderr and "dashboard" not in p.stderr.lower(), p.stderr


def test_same_table_from_one_local_worker_and_a_two_worker_scheduler(tmp_path, one_worker_run):
    """A running scheduler given by address (the dask CLI: a scheduler and a worker process
    with two worker processes under it), with no change but --scheduler: the same table."""
    camp, out1, _ = one_worker_run
    sched_file = tmp_path / "scheduler.json"
    procs = [_start_scheduler(sched_file)]
    try:
        address = _scheduler_address(sched_file)
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    address,
                    "--nworkers",
                    "2",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=tmp_path,
            )
        )
        from dask.distributed import Client

        with Client(address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=60)
        p = cli(camp, "--out", tmp_path / "out2", "--scheduler", address, "--keep-csv")
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    assert p.returncode == 0, p.stderr
    assert f"scheduler {address}, 2 workers" in p.stdout
    one, two = table_without_volatile(out1 / "results.csv"), table_without_volatile(tmp_path / "out2" / "results.csv")
    assert one == two
    workers = {r["worker"] for r in rs.read_table(tmp_path / "out2" / "results.csv")}
    assert 1 <= len(workers) <= 2
    # --keep-csv: each finished replay's files came back through Dask (no shared disk needed)
    for r in two:
        kept = tmp_path / "out2" / "runs" / r["run_id"] / r["estimator"]
        if r["status"] == "ok":
            summary = json.loads((kept / "summary.json").read_text())
            assert summary["orbit"]["position_3d_rms_m"] == r["orbit_position_3d_rms_m"]
            assert (kept / "orbit.csv").stat().st_size > 1000 and (kept / "attitude.csv").is_file()
        else:
            assert not kept.exists()


def test_rerun_of_one_seed_keeps_its_scenario_and_plots(tmp_path, one_worker_run, seeds):
    camp, out, _ = one_worker_run
    ok_seed = next(s for s in seeds if run_spec(load_campaign(camp), s).dispersed["faults.gps_drop_fraction"] <= 1)
    p = cli(camp, "--out", tmp_path / "o", "--rerun", ok_seed)
    assert p.returncode == 0, p.stderr
    where = tmp_path / "o" / "rerun" / f"s{ok_seed:05d}"
    assert (where / "scenario" / "sense.bin").is_file() and (where / "scenario" / "truth.npz").is_file()
    assert (where / "replay" / "flight" / "plots" / "attitude_error.png").is_file()
    record = json.loads((where / "record.json").read_text())
    mine = record["estimators"]["flight"]["metrics"]["attitude_angle_rms_deg"]
    theirs = next(
        r for r in rs.read_table(out / "results.csv") if int(r["seed"]) == ok_seed and r["estimator"] == "flight"
    )
    assert mine == theirs["attitude_angle_rms_deg"]


def _start_scheduler(sched_file: Path) -> subprocess.Popen:
    """A local Dask scheduler (no dashboard, any free port) that writes *sched_file*."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(sched_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _scheduler_address(sched_file: Path) -> str:
    """The address a scheduler of :func:`_start_scheduler` writes, once written (60 s at most)."""
    assert _wait_for(lambda: sched_file.is_file() and sched_file.stat().st_size > 0, 60)
    return json.loads(sched_file.read_text())["address"]


def _wait_for(pred, timeout_s: float) -> bool:
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_an_interrupted_campaign_resumes_without_redoing_finished_runs(tmp_path):
    ok = pick_seeds(n_ok=3, n_bad=0)
    camp = write_campaign(tmp_path, ok, duration="3m")
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "ground",
        "montecarlo",
        str(camp),
        "--out",
        str(out),
        "--workers",
        "1",
        "--quiet",
        "--no-plots",
    ]
    # its own process group, as a job in a terminal: Ctrl-C reaches the workers too
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True
    )
    try:
        assert _wait_for(
            lambda: len(list((out / "runs").glob("s*.json"))) >= 1 if (out / "runs").is_dir() else False, 240
        )
        children = psutil.Process(proc.pid).children(recursive=True)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "run the same command to resume" in err and "Traceback" not in err
    done = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("s*.json")}
    assert 1 <= len(done) < 3
    assert len(rs.read_table(out / "results.csv")) == 2 * len(done)  # the table of what finished
    # the local cluster's processes went with it
    assert _wait_for(lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children), 30)

    p = cli(camp, "--out", out, "--workers", "1", "--no-plots")
    assert p.returncode == 0, p.stderr
    assert f"{len(done)} already done, {3 - len(done)} to run" in p.stdout
    after = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("s*.json")}
    assert len(after) == 3 and all(after[k] == v for k, v in done.items())
    assert len(rs.read_table(out / "results.csv")) == 6
    # a third start has nothing left to do and starts no cluster
    p = cli(camp, "--out", out, "--no-plots")
    assert p.returncode == 0 and "3 already done, 0 to run" in p.stdout and "cluster" not in p.stdout


def test_retry_failed_runs_again_only_the_failed(tmp_path, one_worker_run):
    import shutil

    camp, out1, _ = one_worker_run
    out = tmp_path / "out"
    shutil.copytree(out1, out)
    before = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("s*.json")}
    p = cli(camp, "--out", out, "--workers", "1", "--retry-failed", "--no-plots")
    assert p.returncode == 0 and "2 already done, 1 to run" in p.stdout
    after = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("s*.json")}
    changed = [k for k in after if after[k] != before[k]]
    assert len(changed) == 1 and rs.record_failed(json.loads((out / "runs" / changed[0]).read_text()))


def test_a_campaign_whose_every_run_fails_exits_1(tmp_path):
    bad = pick_seeds(n_ok=0, n_bad=2)
    camp = write_campaign(tmp_path, bad)
    p = cli(camp, "--out", tmp_path / "out", "--workers", "1", "--no-plots")
    assert p.returncode == 1 and "2 failed" in p.stdout
    assert len(rs.read_table(tmp_path / "out" / "results.csv")) == 4


def test_every_results_column_is_documented():
    """docs/interface.md's column table (generated from COLUMN_MEANINGS) covers the table."""
    described = set(rs.COLUMN_MEANINGS) | {"attitude_rows", "formation_rows"}
    assert set(rs.ID_COLUMNS) <= described and set(rs.METRIC_COLUMNS) <= described


def test_an_unreachable_scheduler_is_an_error_not_a_traceback(tmp_path, monkeypatch):
    from ground.montecarlo import cli as mc_cli

    monkeypatch.setattr(mc_cli, "CONNECT_TIMEOUT_S", 1.0)
    camp = write_campaign(tmp_path, [1])
    r = ground("montecarlo", camp, "--out", tmp_path / "out", "--scheduler", "tcp://127.0.0.1:1")
    assert r.returncode == 1 and "cannot reach the scheduler tcp://127.0.0.1:1" in r.stderr
    no_traceback(r)


def test_a_campaign_file_that_is_not_text_is_a_message(tmp_path):
    binary = tmp_path / "campaign.toml"
    binary.write_bytes(bytes(range(256)) * 8)
    p = cli(binary, "--out", tmp_path / "out")
    assert (
        p.returncode == 2 and p.stderr.strip() == f"montecarlo: {binary}: not a text file (a campaign is a TOML file)"
    )
    assert not (tmp_path / "out").exists()


class _Peer:
    """A TCP listener on 127.0.0.1 that is not a Dask scheduler: *banner* sent to every
    connection (an HTTP server's reply), or nothing ever (None: accepts and stays silent)."""

    def __init__(self, banner: bytes | None):
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.banner, self.conns = banner, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            if self.banner is not None:
                c.sendall(self.banner)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def test_a_scheduler_address_where_something_else_answers_is_a_message(tmp_path):
    camp = write_campaign(tmp_path, [1])
    peer = _Peer(b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/html\r\n\r\n<html>no</html>\n" * 4)
    try:
        p = cli(camp, "--out", tmp_path / "out", "--scheduler", peer.address, "--quiet", timeout=60)
    finally:
        peer.close()
    assert p.returncode == 1, p.stderr
    assert p.stderr.startswith(f"montecarlo: cannot reach the scheduler {peer.address}: something else answers there")
    no_traceback(p)


def test_a_scheduler_address_that_never_answers_times_out(tmp_path, monkeypatch):
    from ground.montecarlo import cli as mc_cli

    monkeypatch.setattr(mc_cli, "CONNECT_TIMEOUT_S", 2.0)
    camp = write_campaign(tmp_path, [1])
    peer = _Peer(None)
    try:
        t0 = time.monotonic()
        r = ground("montecarlo", camp, "--out", tmp_path / "out", "--scheduler", peer.address, "--quiet")
        waited = time.monotonic() - t0
    finally:
        peer.close()
    assert r.returncode == 1 and f"cannot reach the scheduler {peer.address}" in r.stderr, r.stderr
    assert waited < 30, waited
    no_traceback(r)


def test_a_scheduler_address_dask_cannot_use_is_a_usage_error(tmp_path):
    camp = write_campaign(tmp_path, [1])
    for address, why in (("http://10.0.0.5:8786", "unknown address scheme 'http'"), ("tcp://host:port", "HOST:PORT")):
        r = ground("montecarlo", camp, "--out", tmp_path / "out", "--scheduler", address)
        assert r.returncode == 2 and f"--scheduler {address}: " in r.stderr and why in r.stderr, r.stderr
        no_traceback(r)


def test_the_local_cluster_serves_no_dashboard():
    """Dask's scheduler, nanny and worker HTTP servers of a local cluster listen on loopback
    and answer no route (no dashboard, no port 8787 warning even with 8787 taken)."""
    import http.client
    import urllib.error
    import urllib.request
    import warnings

    from ground.montecarlo.cli import DaskCluster

    with _port_taken(8787), warnings.catch_warnings():
        warnings.simplefilter("error")  # "Port 8787 is already in use" is a UserWarning
        cluster = DaskCluster(None, 1)
    try:
        me = psutil.Process()
        ports = [
            (c.laddr.ip, c.laddr.port)
            for proc in [me, *me.children(recursive=True)]
            for c in proc.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN
        ]
        assert ports and all(ip == "127.0.0.1" for ip, _ in ports), ports
        answered = []
        for _, port in ports:
            for path in ("/status", "/info/main/workers.html", "/metrics", "/health"):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5)
                    answered.append((port, path))
                except urllib.error.HTTPError as exc:
                    assert exc.code == 404, (port, path, exc.code)
                except (OSError, http.client.HTTPException):  # not HTTP: Dask's own protocol
                    pass
        assert answered == []
    finally:
        cluster.close()


def test_filter_tunables_are_estimator_configuration_and_checked_before_any_run(tmp_path):
    """Tuning campaigns: [attitude_filter] / [orbit_filter] overrides reach the filters, and
    an unknown tunable is refused when the campaign is read."""
    from pygnc.config import Config, with_overrides
    from pygnc.processors.attitude import AttitudeProcessor

    cfg = with_overrides(Config(), {"attitude_filter": {"gyro_noise_rad_s": 0.002}}, "test")
    assert AttitudeProcessor(cfg).est.cfg.gyro_noise_rad_s == 0.002
    p = tmp_path / "c.toml"
    p.write_text(
        campaign_text([1]).replace(
            "attitude_time_tag_from_clock_map = false", "attitude_filter = { gyro_noise_rad_z = 0.002 }"
        )
    )
    with pytest.raises(CampaignError, match="attitude_filter.gyro_noise_rad_z is not a known key"):
        load_campaign(p)


def test_a_run_whose_worker_died_is_recorded_as_failed_in_every_configuration(tmp_path):
    from ground.montecarlo.cli import _lost_record

    spec = run_specs(load_campaign(write_campaign(tmp_path, [5])))[0]
    record = _lost_record(spec, RuntimeError("KilledWorker: the worker died 3 times"))
    rows = rs.rows_from_record(record)
    assert [r["estimator"] for r in rows] == ["flight", "untagged"] and rs.record_failed(record)
    assert all(r["status"] == "failed" and r["stage"] == "worker" and "KilledWorker" in r["error"] for r in rows)
    assert rows[1]["config"] == {"config": {"attitude_time_tag_from_clock_map": False}, "smooth": False}


@pytest.mark.parametrize("path", sorted((REPO / "data" / "campaigns").glob("*.toml")), ids=lambda p: p.name)
def test_every_bundled_campaign_is_usable(path):
    specs = run_specs(load_campaign(path))
    assert specs and all(s.error is None for s in specs)


def test_a_lost_worker_does_not_make_finished_runs_run_again(tmp_path):
    """A worker killed mid-campaign loses only the run it was computing: each finished run's
    future is released once its record is written, so the scheduler holds no result that a
    lost worker would make it compute again (it counts every transition into memory)."""
    import threading

    from ground.montecarlo.cli import DaskCluster, execute, task_key

    specs = run_specs(load_campaign(write_campaign(tmp_path, pick_seeds(n_ok=6, n_bad=0), duration="5m")))
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    keys = [task_key(s) for s in specs]
    cluster = DaskCluster(None, 2)
    try:
        done: list = []
        thread = threading.Thread(target=lambda: done.append(execute(out, specs, cluster, False, True)), daemon=True)
        thread.start()
        assert _wait_for(lambda: any((out / "runs").glob("s*.json")), 240)
        finished = {p.stem for p in (out / "runs").glob("s*.json")}
        record = json.loads((out / "runs" / f"{sorted(finished)[0]}.json").read_text())
        finished_keys = {k for k, s in zip(keys, specs) if s.run_id in finished}

        def held(dask_scheduler, keys=tuple(finished_keys)):
            return [k for k in keys if k in dask_scheduler.tasks]

        # the releases reach the scheduler within moments (unreleased results stay there)
        _wait_for(lambda: not cluster.client.run_on_scheduler(held), 3)
        assert len(list((out / "runs").glob("s*.json"))) < len(specs)  # (else nothing was under way)
        os.kill(int(record["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
        thread.join(timeout=300)
        assert done == [len(specs)]

        def story(dask_scheduler, keys=tuple(keys)):
            return [(t[0], t[2]) for t in dask_scheduler.story(*keys)]

        into_memory = {k: 0 for k in keys}
        for key, finish in cluster.client.run_on_scheduler(story):
            if finish == "memory":
                into_memory[key] += 1
    finally:
        cluster.close()
    assert finished_keys and all(into_memory[k] == 1 for k in finished_keys), (finished, into_memory)
    records = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("s*.json"))]
    assert len(records) == len(specs) and not any(rs.record_failed(r) for r in records)


@pytest.fixture(scope="module")
def other_code(tmp_path_factory) -> Path:
    """A copy of the pygnc and ground packages with one line changed, outside any git
    checkout: other code, as a worker with another install or a resumed campaign after an
    edit would run (put it first on PYTHONPATH, and run from its directory)."""
    import shutil

    import ground
    import pygnc

    d = tmp_path_factory.mktemp("other_code")
    for pkg in (pygnc, ground):
        src = Path(pkg.__file__).parent
        shutil.copytree(src, d / src.name, ignore=shutil.ignore_patterns("__pycache__"))
    with open(d / "ground" / "montecarlo" / "report.py", "a") as f:
        f.write("\n# another edit\n")
    return d


def _other_env(other: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(other))


def test_code_identity_names_version_commit_and_sources(other_code):
    from ground.montecarlo.provenance import code_identity, same_code

    mine = code_identity()
    assert mine["pygnc_version"] and len(mine["source_sha256"]) == 64
    assert mine["commit"] == "unknown" or len(mine["commit"]) == 40
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from ground.montecarlo.provenance import code_identity; print(json.dumps(code_identity()))",
        ],
        capture_output=True,
        text=True,
        cwd=other_code,
        env=_other_env(other_code),
        timeout=60,
    )
    theirs = json.loads(p.stdout)
    assert theirs["commit"] == "unknown" and theirs["dirty"] is True  # not a git checkout
    assert theirs["source_sha256"] != mine["source_sha256"] and not same_code(mine, theirs)
    assert same_code(mine, dict(mine, commit="0" * 40, dirty=False))  # the sources decide, not the commit


def test_a_campaign_resumed_with_other_code_is_refused_unless_allowed(tmp_path, one_worker_run, other_code):
    """Records of one code, the campaign resumed by another: refused before anything runs;
    --allow-mixed-code keeps the old records, and the table names each row's code."""
    import shutil

    camp, out1, _ = one_worker_run
    out = tmp_path / "out"
    shutil.copytree(out1, out)
    before = {p.name: p.read_bytes() for p in (out / "runs").glob("s*.json")}
    code = {json.loads(b)["code"]["source_sha256"] for b in before.values()}
    assert len(code) == 1
    argv = [
        sys.executable,
        "-m",
        "ground",
        "montecarlo",
        str(camp),
        "--out",
        str(out),
        "--workers",
        "1",
        "--retry-failed",
        "--no-plots",
    ]
    p = subprocess.run(argv, capture_output=True, text=True, cwd=other_code, env=_other_env(other_code), timeout=300)
    assert p.returncode == 2, p.stderr
    assert "holds 2 finished runs computed by other code" in p.stderr and "--allow-mixed-code" in p.stderr
    assert "commit unknown (dirty)" in p.stderr
    no_traceback(p)
    assert {p.name: p.read_bytes() for p in (out / "runs").glob("s*.json")} == before  # nothing touched
    p = subprocess.run(
        argv + ["--allow-mixed-code"],
        capture_output=True,
        text=True,
        cwd=other_code,
        env=_other_env(other_code),
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    rows = rs.read_table(out / "results.csv")
    assert len({r["code_sha256"] for r in rows}) == 2 and {r["commit"] for r in rows} >= {"unknown"}
    assert "**Mixed code**" in (out / "report.md").read_text()


def test_a_worker_running_other_code_is_refused_before_any_run(tmp_path, other_code):
    """A scheduler with two workers, one of them another install: the campaign stops before
    sending a run, naming the worker and both codes."""
    sched_file = tmp_path / "scheduler.json"
    procs = [_start_scheduler(sched_file)]
    try:
        address = _scheduler_address(sched_file)
        worker = [
            sys.executable,
            "-m",
            "distributed.cli.dask_worker",
            address,
            "--nthreads",
            "1",
            "--no-dashboard",
            "--host",
            "127.0.0.1",
        ]
        procs.append(subprocess.Popen(worker, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path))
        procs.append(
            subprocess.Popen(
                worker, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=other_code, env=_other_env(other_code)
            )
        )
        from dask.distributed import Client

        with Client(address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=60)
        camp = write_campaign(tmp_path, [1])
        p = cli(camp, "--out", tmp_path / "out", "--scheduler", address)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    assert p.returncode == 1, p.stderr
    assert "runs pygnc" in p.stderr and "commit unknown (dirty)" in p.stderr and "would mix" in p.stderr
    no_traceback(p)
    assert not list((tmp_path / "out" / "runs").glob("s*.json"))


def test_a_worker_refuses_a_run_of_other_code_before_any_work(tmp_path):
    from ground.montecarlo.provenance import code_identity
    from ground.montecarlo.worker import run_one

    spec = run_specs(load_campaign(write_campaign(tmp_path, [5])))[0].as_dict()
    record = run_one(dict(spec, code=dict(code_identity(), source_sha256="0" * 64)))
    assert record["error"]["stage"] == "code" and "this worker runs pygnc" in record["error"]["message"]
    assert record["simulate_s"] is None and record["code"] == code_identity()
    assert set(record["estimators"]) == {"flight", "untagged"} and not rs.record_has_results(record)
