"""package_flight_code.sh: a zip without tests/caches/READMEs that runs from an unzipped copy."""

import math
import subprocess
import zipfile

from flight_harness import REPO, FlightRun, gone, make_home
from pygnc.formats import status as S
from pygnc.formats.sense import decode_sense


def test_package_unzip_and_run_elsewhere(tmp_path):
    out = tmp_path / "dist" / "pygnc_flight.zip"
    p = subprocess.run(["bash", str(REPO / "package_flight_code.sh"), str(out)], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        assert z.testzip() is None
        version = z.read("VERSION").decode()
    assert "main.py" in names and "pygnc_main.py" in names and "pygnc/supervisor.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n
                or n.split("/")[-1].upper().startswith("README") or n.split("/")[-1].startswith("test_")]
    assert version.startswith("pygnc ") and "\ncommit " in version and "\npackaged " in version

    pi_dir = tmp_path / "somewhere" / "on" / "the" / "pi"
    with zipfile.ZipFile(out) as z:
        z.extractall(pi_dir)
    sample = REPO / "data" / "sample"
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
