"""The configuration a run uses (issue 37 item 2): an accepted uplink is kept, a rejected one
leaves the last accepted one (or the defaults) active and says so; ``--check-config``
gives the host and the ground the same check."""

from __future__ import annotations

import os
import subprocess
import sys

from flight_harness import FLIGHT_MAIN

from pygnc import config_source
from pygnc.config import Config, Paths
from pygnc.formats import status as S

GOOD = b"status_period_s = 0.5\n"
BAD = b"status_period_s = 0.5\nmax_restarts = -3\n"


def test_an_accepted_uplink_is_kept_and_a_rejected_one_leaves_it_active(tmp_path):
    paths = Paths(tmp_path)
    copy = paths.accepted_config_file
    sel = config_source.select(paths, env={})
    assert sel.source == "defaults" and sel.config == Config() and not copy.exists() and sel.note == ""
    paths.config_file.write_bytes(GOOD)
    sel = config_source.select(paths, env={})
    assert sel.source == "uplinked file" and sel.config.status_period_s == 0.5 and copy.read_bytes() == GOOD
    paths.config_file.write_bytes(BAD)
    sel = config_source.select(paths, env={})
    assert sel.source == "last accepted copy" and sel.config.status_period_s == 0.5 and sel.data == GOOD
    assert copy.read_bytes() == GOOD  # a rejected file never replaces the copy
    assert sel.note == "pygnc_config.toml:2 max_restarts, on last accepted"
    assert any(f"{paths.config_file}:2: max_restarts must be in [0, 1000], got -3" in t for _, t in sel.notes)
    assert config_source.config_flags(sel.config, {config_source.REJECTED_ENV: sel.note}) & S.FLAG_CONFIG_REJECTED
    copy.write_bytes(b"no_such_key = 1\n")  # a copy another version accepted
    sel = config_source.select(paths, env={})
    assert sel.source == "defaults" and sel.config == Config() and sel.note.endswith("on defaults")
    paths.config_file.unlink()
    assert config_source.select(paths, env={}).source == "defaults" and copy.exists()  # the copy is left alone
    paths.config_file.write_bytes(b"status_period_s = 0.5\nmax_restarts = [3\n")
    assert config_source.select(paths, env={}).note == "pygnc_config.toml:2 syntax error, on defaults"
    paths.config_file.unlink()
    paths.config_file.mkdir()  # unreadable
    sel = config_source.select(paths, env={})
    assert sel.rejected is not None and "cannot be read" in sel.rejected.lines()[0]
    assert sel.note == "pygnc_config.toml unreadable, on defaults"


def test_pygnc_config_is_checked_the_same_and_falls_back_to_the_defaults(tmp_path):
    paths = Paths(tmp_path / "home")
    paths.home.mkdir()
    paths.accepted_config_file.write_bytes(GOOD)
    f = tmp_path / "dev.toml"
    f.write_bytes(BAD)
    sel = config_source.select(paths, env={"PYGNC_CONFIG": str(f)})
    assert sel.source == "defaults" and sel.rejected_path == f and sel.note == "dev.toml:2 max_restarts, on defaults"
    f.write_bytes(GOOD)
    sel = config_source.select(paths, env={"PYGNC_CONFIG": str(f)})
    assert sel.source == "PYGNC_CONFIG" and sel.config.status_period_s == 0.5


def _check(path, env=None):
    return subprocess.run(
        [sys.executable, str(FLIGHT_MAIN), "--check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, **(env or {})),
    )


def test_check_config_exits_0_or_2_with_the_reasons_on_stderr(tmp_path):
    f = tmp_path / "up.toml"
    f.write_text("imu_to_body_reflection_intended = true\n[orbit_filter]\ntesseral_degree = 0\n")
    p = _check(f)
    assert p.returncode == 0 and p.stdout == "" and p.stderr == f"{f}: accepted\n", p.stderr
    f.write_text("status_period_s = 0.5\n[orbit_filter]\ntesseral_degree = 0\nmax_restarts = 5\nx = [\n")
    p = _check(f)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.splitlines() == [f"{f}:5: TOML syntax error: Invalid value (at end of document)", f"{f}: REJECTED"]
    f.write_text("status_period_s = nan\nhandler_budget_s = -1\n")
    p = _check(f)
    assert p.returncode == 2 and p.stderr.splitlines()[:2] == [
        f"{f}:1: status_period_s must be a number, not nan",
        f"{f}:2: handler_budget_s must be in (0, 5], got -1",
    ]
    f.write_text("status_period_s = 0.5\n")  # accepted, with the default's warning
    p = _check(f)
    assert p.returncode == 0 and "warning: imu_to_body is a reflection" in p.stderr
    p = _check(tmp_path / "missing.toml")
    assert p.returncode == 2 and "missing.toml: cannot be read" in p.stderr
    p = subprocess.run([sys.executable, str(FLIGHT_MAIN), "--check-config"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "usage" in p.stderr


def test_the_deployment_check_passes_on_a_fresh_pi_without_an_uplink(tmp_path):
    """Issue 45 item 9: operations.md's deployment check, `python ~/pygnc/main.py
    --check-config ~/pygnc_config.toml`, failed ("cannot be read") on a Pi that has had no
    uplink; a run there uses the defaults, and the check now says so and checks those.  Any
    other missing file is still refused."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYGNC_HOME", "PYGNC_CONFIG")}
    env["HOME"] = str(tmp_path)
    line = "python ~/pygnc/main.py --check-config ~/pygnc_config.toml"
    argv = [sys.executable, str(FLIGHT_MAIN)] + [a.replace("~", str(tmp_path)) for a in line.split()[2:]]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    f = tmp_path / "pygnc_config.toml"
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert lines[0] == f"{f}: not there (nothing uplinked yet): a run in {tmp_path} uses the defaults"
    assert "warning: imu_to_body is a reflection" in lines[1] and lines[-1] == f"{f}: accepted"
    p = subprocess.run(argv[:-1] + [str(tmp_path / "pygnc_confg.toml")], capture_output=True, text=True, env=env)
    assert p.returncode == 2 and "pygnc_confg.toml: cannot be read" in p.stderr
    assert not any(tmp_path.iterdir())  # a check writes nothing


def test_the_configuration_sets_its_status_flags():
    assert config_source.config_flags(Config(), {}) == S.FLAG_IMU_REFLECTION  # the default mounting
    ok = Config(imu_to_body_reflection_intended=True)
    assert config_source.config_flags(ok, {}) == 0
    assert (
        config_source.config_flags(ok, {config_source.REJECTED_ENV: "u.toml:2 x, on defaults"})
        == S.FLAG_CONFIG_REJECTED
    )
    assert config_source.rejection_note({config_source.REJECTED_ENV: "x" * 500}) == "x" * config_source.MAX_NOTE_CHARS
