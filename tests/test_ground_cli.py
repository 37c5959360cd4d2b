"""The operator's first hour (issue 15 items 5-7): every mistake gets a message naming the
problem (exit 2 for usage, 1 for bad input), never a traceback; summaries say what is true."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
from conftest import PY4_DATA
from flight_harness import REPO

from ground.__main__ import main
from pygnc.formats.range_file import decode_range, encode_range_group

SAMPLE = REPO / "data" / "sample"


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
        assert p.returncode == 2 and "pygnc[ground]" in p.stderr, (cmd, p.stderr)
        no_traceback(p)


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
