"""package_flight_code.sh: a zip without tests/caches/READMEs that runs from an unzipped copy."""

import math
import subprocess
import zipfile

from flight_harness import REPO, FlightRun, gone, make_home

from pygnc.formats import status as S
from pygnc.formats.sense import decode_sense


def test_package_unzip_and_run_elsewhere(tmp_path):
    out = tmp_path / "dist" / "pygnc_flight.zip"
    p = subprocess.run(
        ["bash", str(REPO / "package_flight_code.sh"), str(out)], capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        assert z.testzip() is None
        version = z.read("VERSION").decode()
    assert "main.py" in names and "pygnc_main.py" in names and "pygnc/supervisor.py" in names
    assert not [
        n
        for n in names
        if "__pycache__" in n
        or n.endswith(".pyc")
        or "/tests/" in n
        or n.split("/")[-1].upper().startswith("README")
        or n.split("/")[-1].startswith("test_")
    ]
    assert version.startswith("pygnc ") and "\ncommit " in version and "\npackaged " in version

    pi_dir = tmp_path / "somewhere" / "on" / "the" / "pi"
    with zipfile.ZipFile(out) as z:
        z.extractall(pi_dir)
    sample = REPO / "data" / "sample_5min"
    home = make_home(tmp_path, sample)
    t_sc = float(decode_sense((sample / "sense.bin").read_bytes()).sensors["t_sc_s"][-1])
    with FlightRun(home, spacecraft_time_s=t_sc, main=pi_dir / "main.py") as run:
        st = run.wait_status(lambda s: s["flags"] & S.FLAG_BATCH_DONE and s["flags"] & S.FLAG_ORBIT_VALID)
        assert math.isfinite(st["orbit_r_ecef_m"][0])
        pids = [p.pid for p in run.tree()]
        for proc in run.tree():  # every process runs the unzipped code
            assert str(pi_dir) in " ".join(proc.cmdline()) + " " + proc.environ().get("PYTHONPATH", "")
        run.ctrl_c()
        assert run.wait_exit(10) == 0
        assert gone(pids)
        sup_log = (run.log_dir() / "supervisor.log").read_text()
        assert f"flight code {pi_dir}" in sup_log and "commit " in sup_log
        for name in ("ingest", "orbit_estimator", "status_reporter"):
            assert f"code from {pi_dir}" in (run.log_dir() / f"{name}.log").read_text()


# --------------------------------------------------------------------------- issue 15 items 2-4
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402

FLIGHT_DEPS = {"numpy", "pyzmq", "msgpack", "pyserial"}


def _run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)


def test_installed_package_runs_the_flight_stack_and_the_pipeline_replay(tmp_path):
    """`pip install .` gave no way to run the flight stack, `replay --pipeline` looked for
    site-packages/main.py, and the IGRF table was missing."""
    wheel_dir = tmp_path / "wheel"
    p = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheel_dir, REPO])
    assert p.returncode == 0, p.stderr
    whl = next(wheel_dir.glob("pygnc-*.whl"))
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith("/METADATA"))).decode()
        entry = z.read(next(n for n in names if n.endswith("/entry_points.txt"))).decode()
    assert "pygnc/environment/igrf14.npz" in names and "pygnc/__main__.py" in names
    assert "pygnc/environment/egm2008.npz" in names  # the orbit estimator's field (issue 47)
    # the ground station's page and every vendored asset (the page needs no internet)
    static = REPO / "ground" / "station" / "static"
    assert {f"ground/station/static/{p.relative_to(static)}" for p in static.rglob("*") if p.is_file()} <= names
    assert "pygnc = pygnc.__main__:main" in entry
    requires = {
        ln.split(":", 1)[1].strip().split(">")[0].split("=")[0].strip()
        for ln in meta.splitlines()
        if ln.startswith("Requires-Dist:") and "extra ==" not in ln
    }
    assert requires == FLIGHT_DEPS  # what flight/ imports, nothing else (no filterpy/scipy on the Pi)

    site = tmp_path / "site"
    p = _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, whl])
    assert p.returncode == 0, p.stderr
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop("PYGNC_CONFIG", None)
    p = _run(
        [sys.executable, "-c", "import pygnc.environment.igrf as m; print(m.TABLE_PATH.is_file(), m.TABLE_PATH)"],
        env=env,
        cwd=tmp_path,
    )
    assert p.stdout.split()[0] == "True" and p.stdout.split()[1].startswith(str(site)), p.stdout + p.stderr
    p = _run([site / "bin" / "pygnc"], env=env, cwd=tmp_path)  # the console script
    assert p.returncode == 2 and "usage: pygnc <timeout_minutes> <spacecraft_time_s>" in p.stderr
    p = _run([site / "bin" / "pygnc", "--help"], env=env, cwd=tmp_path)  # issue 45 item 4
    assert p.returncode == 0 and p.stdout.startswith("usage: pygnc <timeout_minutes> <spacecraft_time_s>")
    scenario = tmp_path / "scenario"
    shutil.copytree(REPO / "data" / "sample_5min", scenario)
    out = tmp_path / "out"
    p = _run(
        [sys.executable, "-m", "ground", "replay", scenario, "--out", out, "--pipeline", "--no-plots"],
        env=env,
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "orbit.csv 56 rows" in p.stdout
    assert f"flight code {site}" in (out / "pipeline_logs" / "supervisor.log").read_text()


def test_package_script_without_a_build_environment(tmp_path):
    """It failed with a traceback unless the ground venv existed; the IGRF table is committed
    now, so any Python >= 3.11 builds the zip (a $PYTHON that is not one: python3, said so)."""
    out = tmp_path / "pygnc_flight.zip"
    p = _run(["bash", REPO / "package_flight_code.sh", out], env=dict(os.environ, PYTHON="/nonexistent/python"))
    assert p.returncode == 0, p.stderr
    assert "/nonexistent/python is not a Python >= 3.11; using python3" in p.stderr
    with zipfile.ZipFile(out) as z:
        assert "pygnc/environment/igrf14.npz" in z.namelist()
        assert "pygnc/environment/egm2008.npz" in z.namelist()
