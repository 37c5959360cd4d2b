"""The operator's first hour (issue 15 items 5-7): every mistake gets a message naming the
problem (exit 2 for usage, 1 for bad input), never a traceback; summaries say what is true."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import PY4_DATA
from flight_harness import REPO

from ground.__main__ import main
from pygnc.formats.range_file import decode_range, encode_range_group

SAMPLE = REPO / "data" / "sample_5min"


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def ground(*args) -> Result:
    """``python -m ground ARGS`` in this process (argparse's usage exits included)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in args])
        except SystemExit as exc:
            rc = exc.code
    return Result(rc, out.getvalue(), err.getvalue())


def no_traceback(p):
    assert "Traceback" not in p.stderr + p.stdout, p.stderr


# --------------------------------------------------------------------------- item 5: replay
def test_replay_out_is_a_file_refused_before_any_work(tmp_path):
    f = tmp_path / "out.txt"
    f.write_text("x")
    p = ground("replay", SAMPLE, "--out", f)
    assert p.returncode == 2 and "exists and is not a directory" in p.stderr and p.stdout == ""
    no_traceback(p)


def test_replay_truth_not_a_truth_file(tmp_path):
    bad = tmp_path / "truth.txt"
    bad.write_text("not numbers")
    p = ground("replay", SAMPLE, "--out", tmp_path / "o", "--truth", bad)
    assert p.returncode == 1 and "not a truth file" in p.stderr and str(bad) in p.stderr
    no_traceback(p)
    assert not (tmp_path / "o").exists()


def test_replay_unknown_spacecraft_before_writing_anything(tmp_path):
    p = ground("replay", SAMPLE, "--out", tmp_path / "o", "--spacecraft", "sc9")
    assert p.returncode == 2 and "'sc9'" in p.stderr and "sc0, sc1" in p.stderr
    no_traceback(p)
    assert not (tmp_path / "o").exists()  # the trial wrote partial CSVs first


# --------------------------------------------------------------------------- item 5: simulate
def test_simulate_into_a_file(tmp_path):
    f = tmp_path / "scn"
    f.write_text("x")
    p = ground("simulate", f)
    assert p.returncode == 2 and "is not a directory" in p.stderr
    no_traceback(p)


def test_simulate_gps_gap_and_fractions_are_checked(tmp_path):
    p = ground("simulate", tmp_path / "s", "--gps-gap", "10")
    assert p.returncode == 2 and "--gps-gap needs START:END" in p.stderr
    no_traceback(p)
    p = ground("simulate", tmp_path / "s", "--gps-drop-fraction", "2")
    assert p.returncode == 2 and "gps_drop_fraction must be a fraction between 0 and 1" in p.stderr
    p = ground("simulate", tmp_path / "s", "--set", "faults.range_invalid_fraction=-0.1")
    assert p.returncode == 2 and "range_invalid_fraction" in p.stderr
    assert not (tmp_path / "s").exists()


# --------------------------------------------------------------------------- item 5: decode
def test_decode_accept_status_not_a_list():
    p = ground("decode", SAMPLE / "sense.bin", "--accept-status", "abc")
    assert p.returncode == 2 and "--accept-status" in p.stderr and "'abc'" in p.stderr
    assert "sense.bin" not in p.stderr.split("error:")[-1]  # blames the option, not the input


def test_decode_csv_errors_name_the_csv(tmp_path):
    p = ground("decode", SAMPLE / "sense.bin", "--csv", "/proc/x.csv")
    assert p.returncode == 1 and "/proc/x.csv" in p.stderr and ".tmp" not in p.stderr
    no_traceback(p)
    missing = tmp_path / "no" / "such" / "dir" / "x.csv"
    p = ground("decode", SAMPLE / "sense.bin", "--csv", missing)
    assert p.returncode == 2 and "does not exist" in p.stderr
    assert not (tmp_path / "no").exists()  # never created


def test_decode_into_a_closed_pipe_is_not_an_error():
    proc = subprocess.Popen(
        [sys.executable, "-m", "ground", "decode", str(PY4_DATA / "pygnc_example" / "sense.bin")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    proc.stdout.close()  # as `| head` does once it has what it wants
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 0 and err == ""


def test_decode_nothing_decodable(tmp_path):
    for name, data in (("empty.bin", b""), ("notes.txt", b"just some text\n" * 20)):
        f = tmp_path / name
        f.write_bytes(data)
        p = ground("decode", f)
        assert p.returncode == 1 and "nothing decoded" in p.stderr, p
        no_traceback(p)


def test_decode_fifo_is_refused(tmp_path):
    fifo = tmp_path / "sense.bin"
    os.mkfifo(fifo)
    p = ground("decode", fifo)
    assert p.returncode == 1 and "FIFO" in p.stderr


# --------------------------------------------------------------------------- item 6
def test_decode_to_csv_with_an_empty_table(tmp_path, capsys):
    """A range file with a GPS packet and no range packet: 'cannot reshape array of size 0'."""
    one = decode_range((next((SAMPLE / "range").glob("rng*.bin"))).read_bytes())
    f = tmp_path / "rng00000.bin"
    f.write_bytes(encode_range_group(one.gps_fixes[:1], []))
    assert main(["decode", str(f), "--csv", str(tmp_path / "r.csv")]) == 0
    assert (tmp_path / "r.csv").read_text().count("\n") == 1  # the header only
    assert (tmp_path / "r_gps.csv").read_text().count("\n") == 2


# --------------------------------------------------------------------------- item 7
def test_replay_accept_status_for_the_teams_simulated_files(tmp_path):
    scn = tmp_path / "team"
    scn.mkdir()
    shutil.copy(PY4_DATA / "pygnc_unittest" / "sense.bin", scn / "sense.bin")
    p = ground("replay", scn, "--out", tmp_path / "a", "--no-plots")
    assert p.returncode == 0 and re.search(r"\borbit\.csv 0 rows", p.stdout)
    p = ground("replay", scn, "--out", tmp_path / "b", "--no-plots", "--accept-status", "0,1")
    assert p.returncode == 0 and not re.search(r"\borbit\.csv 0 rows", p.stdout), p.stdout


def test_replay_summary_counts_samples_without_position_and_names_smoothing(tmp_path):
    p = ground("replay", SAMPLE, "--out", tmp_path / "o", "--smooth", "--no-plots")
    assert p.returncode == 0
    assert "4 of 60 samples had no orbit estimate" in p.stdout
    assert "rates and gyro bias only [no_position]" not in p.stdout  # the once-per-run note
    assert "--smooth: orbit, attitude RTS-smoothed" in p.stdout


def test_attitude_error_plot_range_follows_the_converged_rows(monkeypatch, tmp_path):
    """The initial 3-sigma (~180 deg) set a +-540 deg axis; the converged ~1 deg error was a
    flat line."""
    from ground.outputs import plots

    saved = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: saved.setdefault("fig", fig) and path)
    n = 200
    err = np.full((n, 3), 0.5)
    sig = np.full((n, 3), 0.4)
    err[:10], sig[:10] = 170.0, 180.0  # before convergence
    conv = np.arange(n) >= 10
    plots.errors_with_bounds(
        tmp_path / "a.png", np.arange(n) / 60.0, err, sig, "t", ["x", "y", "z"], "deg", "h", ylim_rows=conv
    )
    lo, hi = saved["fig"].axes[0].get_ylim()
    assert 1.2 < hi < 2.0 and lo == -hi  # 3 sigma = 1.2 deg, plus a margin


def test_spans_whose_quality_is_not_ok_are_greyed(monkeypatch, tmp_path):
    """Rows the estimator itself said were not usable were drawn like the usable ones."""
    from ground.outputs import plots

    saved = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: saved.setdefault(path.name, fig) and path)
    h = np.arange(8) / 60.0
    words = np.array(["acquiring", "acquiring", "ok", "ok", "uncertain", "ok", "", "ok"], dtype=object)
    assert plots.not_ok_spans(h, words) == [(h[0], h[2]), (h[4], h[5])]
    assert plots.not_ok_spans(h, np.array(["ok"] * 7 + ["ambiguous"], dtype=object)) == [(h[7], h[7])]
    v = np.zeros((8, 1))
    plots.errors_with_bounds(tmp_path / "e.png", h, v, v + 1, "t", ["x"], "m", "h", quality=words)
    plots.time_series(tmp_path / "s.png", h, v, "t", ["x"], "m", "h", quality=words)
    for name in ("e.png", "s.png"):
        ax = saved[name].axes[0]
        grey = [p for p in ax.patches if p.get_label() == "quality not ok"]
        assert len(grey) == 1 and len(ax.patches) >= 2  # one legend entry, two bands
        assert "quality not ok" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_help_texts(tmp_path):
    p = ground("--help")
    assert p.returncode == 0 and "``" not in p.stdout and "`" not in p.stdout
    p = ground("simulate", "--help")
    for name in __import__("re").findall(r"data/scenarios/[\w.]+\.toml", p.stdout):
        assert (REPO / name).is_file(), name
    assert "data/scenarios/" in p.stdout


def test_decode_says_when_the_clock_steps_back():
    p = ground("decode", PY4_DATA / "pygnc_example" / "sense.bin")
    assert p.returncode == 0
    assert "the clock steps back 1 times" in p.stdout and "earliest 946694776, latest 946696536" in p.stdout


def test_missing_ground_extra_names_what_to_install(tmp_path):
    """simulate/replay without the ground extra died with ModuleNotFoundError."""
    code = (
        "import sys\n"
        "for m in ('scipy', 'matplotlib', 'tqdm', 'tomli_w', 'ppigrf'): sys.modules[m] = None\n"
        "from ground.__main__ import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    for cmd in (["simulate", str(tmp_path / "s")], ["replay", str(SAMPLE), "--out", str(tmp_path / "o")]):
        p = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True, timeout=120, cwd=REPO)
        assert p.returncode == 2 and "pip install -e '.[ground]'" in p.stderr, (cmd, p.stderr)
        no_traceback(p)


@pytest.mark.parametrize("args", [["--help"], ["decode", str(SAMPLE / "sense.bin")]], ids=["help", "decode"])
def test_a_python_without_pygnc_is_told_how_to_install_it(tmp_path, args):
    """A new user's `python -m ground decode ...` from the clone's root with a Python that
    lacks the install (the system's) ended in a ModuleNotFoundError traceback for pygnc; now
    one line names the interpreter and the README's install command, exit 2.  ``-S`` (no
    site-packages, so no editable install) from a directory holding only ``ground/`` hides
    pygnc as such a Python would."""
    (tmp_path / "ground").symlink_to(REPO / "ground")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH")}
    p = subprocess.run(
        [sys.executable, "-S", "-m", "ground", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    no_traceback(p)
    assert p.returncode == 2 and p.stdout == "", p.stderr
    (line,) = p.stderr.splitlines()
    assert "the flight package pygnc is not installed for this Python" in line and sys.executable in line
    assert "python3 -m venv .venv && .venv/bin/pip install -e '.[ground]'" in line


def test_decode_status_shows_quality_and_age(tmp_path, capsys):
    from pygnc.formats.status import ESTIMATE_QUALITY, encode_status

    f = tmp_path / "pygnc_status.bin"
    f.write_bytes(
        encode_status(
            {
                "t_sc_s": 2e9,
                "batch_t_sc_last_s": 2e9 - 3 * 86400,
                "orbit_t_sc_s": 2e9 - 86400,
                "orbit_quality": ESTIMATE_QUALITY.index("horizon"),
                "clock_utc_minus_sc_s": 7.9e8 + 0.5,
            }
        )
    )
    assert main(["decode", str(f)]) == 0
    out = capsys.readouterr().out
    assert "orbit: horizon, epoch 24.0h before this write, 2.0d beyond the batch" in out
    assert "orbit_quality = 4 (horizon)" in out and "clock_utc_minus_sc_s = 790000000.5" in out


# --------------------------------------------------------------------------- issue 45 item 7
def _ground_cmd(*args, cwd=REPO) -> subprocess.CompletedProcess:
    """``python -m ground ARGS`` as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "ground", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_replay_of_a_directory_without_inputs_is_refused_saying_what_it_holds(tmp_path):
    """A batch directory, an empty one, a parent of scenarios: they warned, wrote empty CSVs
    and exited 0."""
    from station_support import batch_file

    batches = tmp_path / "downlink"
    batches.mkdir()
    batch_file(batches, 1, [("orbit", 742_000_000.0, {"r_ecef_m": [7e6, 0, 0], "v_ecef_m_s": [0, 7e3, 0]})])
    empty = tmp_path / "empty"
    empty.mkdir()
    parent = tmp_path / "scenarios"
    shutil.copytree(SAMPLE, parent / "sc0")
    cases = (
        (
            batches,
            "its batch files (1) hold pygnc's downlinked estimates",
            f"python -m ground decode {batches} --out OUT_DIR",
        ),
        (empty, "no input of a replay in it (sense.bin, range/, range.bin); it is empty", ""),
        (parent, "replay each of its inputs: ", str(parent / "sc0")),
    )
    for d, says, names in cases:
        p = _ground_cmd("replay", d, "--out", tmp_path / "out", "--no-plots")
        assert p.returncode == 2 and p.stdout == "" and says in p.stderr and names in p.stderr, p.stderr
        assert p.stderr.startswith(f"replay: {d}: ") and len(p.stderr.splitlines()) == 1
        no_traceback(p)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """A home after a real run of the flight tree on the sample (it stops by its timeout):
    the info file, the task logs and the batch files pygnc wrote."""
    from flight_harness import FlightRun, make_home

    from pygnc.formats.sense import decode_sense

    home = make_home(tmp_path_factory.mktemp("run"), SAMPLE)
    t_end = float(decode_sense((SAMPLE / "sense.bin").read_bytes()).sensors["t_sc_s"][-1]) + 1.0
    with FlightRun(home, timeout_min=0.1, spacecraft_time_s=t_end) as run:
        assert run.wait_exit(60) == 0, run.text
    return home


def test_decode_shows_the_text_files_pygnc_writes(short_run):
    """pygnc_info.txt was refused (not recognised) and a task's log was taken for a bus log
    by its name and refused; both are shown now, as they are."""
    info = short_run / "pygnc_info.txt"
    p = _ground_cmd("decode", info)
    text = info.read_text()
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert p.stdout == f"info file {info}: {len(text)} bytes, {len(text.splitlines())} lines\n{text}"
    logs = sorted((short_run / "pygnc_logs" / "run_00001").glob("*.log"))
    assert {f.name for f in logs} >= {"supervisor.log", "ingest.log", "bus.log"}
    for f in logs:
        p = _ground_cmd("decode", f)
        assert p.returncode == 0, p.stderr
        if f.name == "bus.log":
            assert p.stdout.startswith("buslog header: ")
        else:
            first, rest = p.stdout.split("\n", 1)
            assert first.startswith(f"text log {f}: ") and rest == f.read_text()
    p = _ground_cmd("decode", info, "--csv", short_run / "info.csv")
    assert p.returncode == 2 and "--csv makes no table of it" in p.stderr and p.stdout == ""


def test_decode_says_nothing_of_an_unrecognised_file_on_stdout(tmp_path):
    """It printed a "sense ... 0 sensor samples" block before refusing the file."""
    f = tmp_path / "photo.jpg"
    f.write_bytes(bytes(range(256)) * 20)
    p = _ground_cmd("decode", f)
    assert p.returncode == 1 and p.stdout == "", p.stdout
    assert p.stderr.startswith(f"decode: {f}: nothing decoded: not recognised") and len(p.stderr.splitlines()) == 1


def test_decode_out_into_an_existing_file_is_refused_before_decoding(short_run, tmp_path):
    """It decoded every batch file (and printed the report) before failing on --out."""
    f = tmp_path / "out"
    f.write_text("keep")
    p = _ground_cmd("decode", short_run / "pygnc_batches", "--out", f)
    assert p.returncode == 2 and p.stdout == "" and p.stderr == f"decode: --out {f} exists and is not a directory\n"
    assert f.read_text() == "keep"


def test_decode_status_says_an_estimate_before_the_batch_end_is_before_it(tmp_path, capsys):
    """An estimate 2.1 h before the batch's last data was called "2.1h beyond the batch"."""
    from pygnc.formats.status import ESTIMATE_QUALITY, encode_status

    f = tmp_path / "pygnc_status.bin"
    now = 2e9
    f.write_bytes(
        encode_status(
            {
                "t_sc_s": now,
                "batch_t_sc_last_s": now - 60.0,
                "orbit_t_sc_s": now - 60.0 - 2.1 * 3600,
                "orbit_quality": ESTIMATE_QUALITY.index("behind"),
                "att_t_sc_s": now,
                "att_quality": ESTIMATE_QUALITY.index("ok"),
            }
        )
    )
    assert main(["decode", str(f)]) == 0
    out = capsys.readouterr().out
    assert "orbit: behind, epoch 2.1h before this write, 2.1h before the end of the batch" in out
    assert "attitude: ok, epoch 0s before this write, 60s beyond the batch" in out


def test_decode_plots_name_each_panels_unit(short_run, tmp_path, monkeypatch):
    """orbit_sigma.png labelled every panel "x [m, cm/s]"; a log axis read "6×10⁰"."""
    from ground.outputs import plots

    figures = {}
    save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.setdefault(path.name, fig) and save(fig, path))
    assert main(["decode", str(short_run / "pygnc_batches"), "--out", str(tmp_path / "o")]) == 0
    axes = figures["orbit_sigma.png"].axes
    assert [ax.get_ylabel() for ax in axes] == ["x [m]", "y [m]", "z [m]", "vx [cm/s]", "vy [cm/s]", "vz [cm/s]"]
    figures["orbit_sigma.png"].canvas.draw()
    labels = [t.get_text() for ax in axes for t in ax.get_yticklabels(which="both") if t.get_text()]
    assert labels and not [t for t in labels if "times" in t or "^" in t or "e-0" in t], labels
    assert (tmp_path / "o" / "plots" / "orbit_sigma.png").stat().st_size > 1000
    # The orbit stands on its first fix alone until the second: acquiring, greyed.
    assert "quality not ok" in [t.get_text() for t in axes[0].get_legend().get_texts()]


def test_a_command_imports_only_its_own_module():
    """``python -m ground decode`` (or ``--help``) does not import the other commands' modules:
    the simulator's SciPy alone costs seconds of every start that does not simulate."""
    code = (
        "import sys\n"
        "from ground.__main__ import main\n"
        "for argv in (['--help'], ['decode', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('scipy', 'ground.simulate.simulator', 'ground.station', 'ground.host') "
        "if m in sys.modules))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[]"
    assert "decode" in p.stdout and "simulate" in p.stdout  # the top-level help still lists every command


def test_a_campaign_without_matplotlib_is_refused_before_any_run(tmp_path):
    """``montecarlo`` makes its report's plots after the whole campaign: without matplotlib
    (and without ``--no-plots``) it says so at once, exit 2, having run nothing."""
    code = (
        "import sys\nsys.modules['matplotlib'] = None\nfrom ground.__main__ import main\nsys.exit(main(sys.argv[1:]))\n"
    )
    campaign = REPO / "data" / "campaigns" / "formation_3h_dispersed.toml"
    out = tmp_path / "mc"
    cmd = ["montecarlo", str(campaign), "--out", str(out), "--workers", "1"]
    p = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert p.returncode == 2 and "'matplotlib'" in p.stderr, p.stderr
    no_traceback(p)
    assert not out.exists()  # nothing run, nothing written


def test_replay_and_smooth_of_a_home_whose_uplink_was_refused_run_on_what_the_flight_did(tmp_path):
    """The flight refused the uplinked file and ran on its last accepted copy: the ground's
    replay and smoother read the home the same way (they refused the home outright) and
    say so."""
    home = tmp_path / "home"
    shutil.copytree(SAMPLE, home)
    (home / "pygnc_config.toml").rename(home / "pygnc_config.accepted.toml")
    (home / "pygnc_config.toml").write_text("status_period_s = nan\n")
    p = ground("replay", home, "--out", tmp_path / "refused", "--no-plots", "--quiet")
    assert p.returncode == 0, p.stderr
    assert "refused configuration (pygnc_config.toml:1 status_period_s, on last accepted)" in p.stderr
    no_traceback(p)
    copy = SAMPLE / "pygnc_config.toml"
    p = ground("replay", home, "--out", tmp_path / "copy", "--no-plots", "--quiet", "--config", copy)
    assert p.returncode == 0 and p.stderr == ""
    for name in ("orbit.csv", "attitude.csv", "formation.csv"):
        assert (tmp_path / "refused" / name).read_bytes() == (tmp_path / "copy" / name).read_bytes(), name
    p = ground("replay", home, "--out", tmp_path / "tree", "--no-plots", "--quiet", "--pipeline")
    assert p.returncode == 0 and "refused configuration" in p.stderr, p.stderr  # (a traceback)
    no_traceback(p)
    (home / "pygnc_config.accepted.toml").unlink()  # no copy: the defaults, as the flight
    p = ground("smooth", "--spacecraft", f"0x4A={home}", "--out", tmp_path / "smooth")
    assert p.returncode == 0, p.stderr
    report = (tmp_path / "smooth" / "report.md").read_text()
    assert "0x4A: refused configuration (pygnc_config.toml:1 status_period_s, on defaults)" in report
