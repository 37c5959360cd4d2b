"""scripts/run_sample.py, the README's first command: a short summary for a newcomer (what
ran, the orbit, attitude and formation accuracies against the sample's truth, where the
plots are), everything else in a log or behind --verbose."""

import json
import re
import subprocess
import sys

from flight_harness import REPO


def test_the_sample_run_prints_a_short_summary(tmp_path):
    p = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "run_sample.py"), "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    lines = out.strip().splitlines()
    assert len(lines) <= 20, out
    assert "$HEL" not in out and "$BYE" not in out and "crc32" not in out  # frames and the status dump: in the log
    log = (tmp_path / "sample_steps.log").read_text()
    assert "$HEL," in log and "crc32 =" in log and f"details      {tmp_path / 'sample_steps.log'}" in out
    # The accuracies printed are the replay's, judged against the truth.
    s = json.loads((tmp_path / "sample_replay" / "summary.json").read_text())
    assert s["truth"]["path"].endswith("truth.npz")
    orbit = re.search(r"^    orbit      position ([\d.]+) m RMS", out, re.M)
    att = re.search(r"^    attitude   ([\d.]+) deg RMS", out, re.M)
    frm = re.search(r"^    formation  partner 0x4B: relative position (\d+) m RMS", out, re.M)
    assert orbit and att and frm, out
    assert float(orbit.group(1)) == round(s["orbit"]["position_3d_rms_m"], 1) < 20.0
    assert float(att.group(1)) == round(s["attitude"]["angle_rms_deg"], 2) < 2.0
    assert int(frm.group(1)) == round(s["formation"]["peers"]["0x4B"]["relative_position_3d_rms_m"])
    assert "still the uplinked prior" in out  # 5 min of ranges: the window never filled
    for d in ("sample_replay", "sample_downlink"):
        shown = re.search(rf"({re.escape(str(tmp_path / d / 'plots'))})/ \((\d+):", out)
        assert shown and int(shown.group(2)) == len(list((tmp_path / d / "plots").glob("*.png"))) > 0, out


def test_steps_go_to_the_log_or_with_verbose_to_the_terminal(tmp_path, capfd):
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import run_sample
    finally:
        sys.path.remove(str(REPO / "scripts"))
    say = [sys.executable, "-c", "print('$HEL,0,x*0'); import sys; sys.exit(3)"]
    quiet = run_sample.Steps(False, tmp_path / "steps.log")
    assert quiet.run("say", say, "saying") == 3
    out = capfd.readouterr().out
    # a failure shows its output
    assert out.startswith("saying ...\nfailed (exit status 3): say\n  | $ say\n  | $HEL,0,x*0")
    assert (tmp_path / "steps.log").read_text() == "$ say\n$HEL,0,x*0\n(exit status 3)\n\n"
    loud = run_sample.Steps(True, tmp_path / "other.log")
    assert loud.run("say", say, "saying") == 3
    assert capfd.readouterr().out == "$ say\n$HEL,0,x*0\n" and not (tmp_path / "other.log").exists()
