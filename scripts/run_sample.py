"""Run the flight software on the bundled sample scenario, as the host would, and show the result.

1. copies data/sample's sense.bin, range/ and pygnc_config.toml into out/sample_run/ (the PYGNC_HOME);
2. runs ``flight/main.py`` with the spacecraft time at the end of the batch and a short
   timeout, so it processes the batch, keeps its estimates current and stops by itself;
3. prints pygnc_info.txt and the decoded status file, and where the logs are;
4. decodes the batch files it wrote for downlink (``python -m ground decode``) into
   out/sample_downlink/ (CSVs and plots of what the spacecraft estimated);
5. replays the scenario on the ground (``python -m ground replay``) into out/sample_replay/.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
OUT = REPO / "out"


def main() -> int:
    sys.path.insert(0, str(REPO / "flight"))
    from pygnc.formats.sense import decode_sense

    home = OUT / "sample_run"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    shutil.copy(SAMPLE / "sense.bin", home / "sense.bin")
    shutil.copytree(SAMPLE / "range", home / "range")
    shutil.copy(SAMPLE / "pygnc_config.toml", home / "pygnc_config.toml")  # the uplinked partner prior
    t_sc = int(decode_sense((SAMPLE / "sense.bin").read_bytes()).sensors["t_sc_s"][-1]) + 60
    env = {**__import__("os").environ, "PYGNC_HOME": str(home)}
    env.pop("PYGNC_CONFIG", None)
    print(f"$ PYGNC_HOME={home} python flight/main.py 0.08 {t_sc}", flush=True)
    rc = subprocess.run([sys.executable, str(REPO / "flight" / "main.py"), "0.08", str(t_sc)],
                        env=env, timeout=120).returncode
    print(f"main.py exited with status {rc}\n")
    print("pygnc_info.txt:")
    print((home / "pygnc_info.txt").read_text())
    subprocess.run([sys.executable, "-m", "ground", "decode", str(home / "pygnc_status.bin")], cwd=REPO,
                   timeout=120)
    logs = sorted((home / "pygnc_logs").glob("run_*"))[-1]
    print(f"\nlogs: {logs}  (decode the bus log with: python -m ground decode {logs})\n")
    downlink = OUT / "sample_downlink"
    print(f"$ python -m ground decode {home / 'pygnc_batches'} --out {downlink}", flush=True)
    subprocess.run([sys.executable, "-m", "ground", "decode", str(home / "pygnc_batches"), "--out", str(downlink)],
                   cwd=REPO, timeout=300)
    print()
    replay = OUT / "sample_replay"
    p = subprocess.run([sys.executable, "-m", "ground", "replay", str(SAMPLE), "--out", str(replay)],
                       cwd=REPO, timeout=600)
    if p.returncode == 0:
        print(f"\nground replay written to {replay}")
    return rc or p.returncode


if __name__ == "__main__":
    sys.exit(main())
