"""Run the flight software on the bundled sample scenario, as the host would, and show the result.

1. copies data/sample's sense.bin, range/ and pygnc_config.toml into out/sample_run/ (the PYGNC_HOME);
2. runs ``flight/main.py`` with the spacecraft time at the end of the batch and a short
   timeout, so it processes the batch, keeps its estimates current and stops by itself;
3. decodes the batch files it wrote for downlink (``python -m ground decode``) into
   out/sample_downlink/ (CSVs and plots of what the spacecraft estimated);
4. replays the scenario on the ground (``python -m ground replay``: the same estimators on
   the same data) into out/sample_replay/, judged against the sample's truth.

Prints a short summary: what ran, the orbit, attitude and formation accuracies against the
truth, and where the plots are.  Everything the steps print (pygnc's frames on its stdout,
the decoded status file, the decode and replay reports) goes to out/sample_steps.log, or
with ``--verbose`` to the terminal as it happens.  ``--out DIR`` instead of out/.  Exit
status: the first failed step's.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
OUT = REPO / "out"
#: Lines of a failed step's output shown on the terminal (the rest is in the log).
FAIL_TAIL_LINES = 25


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


class Steps:
    """Runs each step's command: its output on the terminal (verbose) or appended to *log*."""

    def __init__(self, verbose: bool, log: Path):
        self.verbose = verbose
        self.log = log
        if not verbose:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("")

    def run(self, shown: str, argv: list[str], label: str = "", **kw) -> int:
        if self.verbose:
            print(f"$ {shown}", flush=True)
            return subprocess.run(argv, **kw).returncode
        if label:
            print(label + " ...", flush=True)
        start = self.log.stat().st_size
        with self.log.open("a") as f:
            f.write(f"$ {shown}\n")
            f.flush()
            rc = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, **kw).returncode
            f.write(f"(exit status {rc})\n\n")
        if rc != 0:
            with self.log.open("rb") as f:
                f.seek(start)
                tail = f.read().decode("utf-8", "replace").splitlines()[-FAIL_TAIL_LINES:]
            print(
                f"failed (exit status {rc}): {shown}\n"
                + "\n".join("  | " + ln for ln in tail)
                + f"\n  (all of it: {_rel(self.log)})",
                flush=True,
            )
        return rc

    def say(self, text: str) -> None:
        if self.verbose:
            print(text, flush=True)
        else:
            with self.log.open("a") as f:
                f.write(text + "\n")


def _plots(directory: Path) -> list[Path]:
    return sorted((directory / "plots").glob("*.png"))


def _max_ranges_used(formation_csv: Path) -> dict[str, int]:
    """Per partner, the most ranges its filter had used (the replay's formation.csv)."""
    used: dict[str, int] = {}
    if formation_csv.is_file():
        with formation_csv.open() as f:
            for row in csv.DictReader(f):
                used[row["peer_id"]] = max(used.get(row["peer_id"], 0), int(float(row["n_ranges_used"] or 0)))
    return used


def accuracy_lines(summary: dict, replay_dir: Path, window_s: float) -> list[str]:
    """The orbit, attitude and formation accuracies of a replay's summary.json, one line each."""
    lines = []
    o = summary.get("orbit") or {}
    if "position_3d_rms_m" in o:
        lines.append(
            f"    orbit      position {o['position_3d_rms_m']:.1f} m RMS "
            f"(max {o['position_3d_max_m']:.1f} m), velocity {o['velocity_3d_rms_m_s'] * 1000:.0f} mm/s RMS"
        )
    else:
        lines.append("    orbit      not evaluated")
    a = summary.get("attitude") or {}
    if "angle_rms_deg" in a:
        lines.append(
            f"    attitude   {a['angle_rms_deg']:.2f} deg RMS (max {a['angle_max_deg']:.1f} deg), "
            f"gyro bias {a['gyro_bias_3d_rms_deg_s']:.3f} deg/s RMS"
        )
    else:
        lines.append("    attitude   not evaluated")
    peers = ((summary.get("formation") or {}).get("peers")) or {}
    used = _max_ranges_used(replay_dir / "formation.csv")
    n_ranges = ((summary.get("residuals") or {}).get("range") or {}).get("n", 0)
    for peer, f in sorted(peers.items()):
        if "relative_position_3d_rms_m" not in f:
            continue
        line = (
            f"    formation  partner {peer}: relative position {f['relative_position_3d_rms_m']:.0f} m RMS, "
            f"line of sight {f['line_of_sight_rms_m']:.0f} m RMS"
        )
        if used.get(peer, 0) == 0 and summary.get("span_s", 0.0) < window_s:
            line += (
                f"\n               (range-only: the first fit needs {window_s / 60:.0f} min of ranges, the "
                f"sample has {summary['span_s'] / 60:.0f} min, {n_ranges} ranges: still the uplinked prior)"
            )
        lines.append(line)
    if not peers:
        lines.append("    formation  no partner evaluated")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show everything each step prints (pygnc's frames, the full status, the reports)",
    )
    ap.add_argument(
        "--out", type=Path, default=OUT, help="where the run, the downlink and the replay go (default out/)"
    )
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "flight"))
    from pygnc.estimation.tunables import RangeOnlyConfig
    from pygnc.formats.sense import decode_sense

    out = args.out.absolute()
    steps = Steps(args.verbose, out / "sample_steps.log")
    home = out / "sample_run"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    shutil.copy(SAMPLE / "sense.bin", home / "sense.bin")
    shutil.copytree(SAMPLE / "range", home / "range")
    shutil.copy(SAMPLE / "pygnc_config.toml", home / "pygnc_config.toml")  # the uplinked partner prior
    t_sc = int(decode_sense((SAMPLE / "sense.bin").read_bytes()).sensors["t_sc_s"][-1]) + 60
    env = {**os.environ, "PYGNC_HOME": str(home)}
    env.pop("PYGNC_CONFIG", None)

    t0 = time.monotonic()
    rc = steps.run(
        f"PYGNC_HOME={home} python flight/main.py 0.08 {t_sc}",
        [sys.executable, str(REPO / "flight" / "main.py"), "0.08", str(t_sc)],
        "running the flight software on the sample (it stops by itself after 5 s)",
        env=env,
        timeout=120,
    )
    t_flight = time.monotonic() - t0
    if (home / "pygnc_info.txt").is_file():
        steps.say("pygnc_info.txt:\n" + (home / "pygnc_info.txt").read_text())
    steps.run(
        f"python -m ground decode {home / 'pygnc_status.bin'}",
        [sys.executable, "-m", "ground", "decode", str(home / "pygnc_status.bin")],
        cwd=REPO,
        timeout=120,
    )
    downlink = out / "sample_downlink"
    rc_decode = steps.run(
        f"python -m ground decode {home / 'pygnc_batches'} --out {downlink}",
        [sys.executable, "-m", "ground", "decode", str(home / "pygnc_batches"), "--out", str(downlink)],
        "decoding what it wrote for downlink",
        cwd=REPO,
        timeout=300,
    )
    replay = out / "sample_replay"
    rc_replay = steps.run(
        f"python -m ground replay {SAMPLE} --out {replay}",
        [sys.executable, "-m", "ground", "replay", str(SAMPLE), "--out", str(replay)],
        "replaying the sample on the ground against its truth",
        cwd=REPO,
        timeout=600,
    )

    print()
    print(
        f"pygnc on the bundled sample ({_rel(SAMPLE)}: one spacecraft's sensors, GPS fixes and ranges to one partner)"
    )
    print(
        f"  flight run   flight/main.py as the host starts it: exit status {rc} after {t_flight:.0f} s; its files "
        f"in {_rel(home)}"
    )
    if rc_decode == 0:
        records = json.loads((downlink / "summary.json").read_text()).get("records", {})
        print(f"  downlink     its batch files decoded: {sum(records.values())} records in {_rel(downlink)}")
    if rc_replay == 0:
        summary = json.loads((replay / "summary.json").read_text())
        print(
            f"  replay       the same estimators on the ground, against the sample's truth "
            f"({summary.get('span_s', 0) / 60:.0f} min, after the first {summary.get('settle_s', 0):.0f} s):"
        )
        for line in accuracy_lines(summary, replay, RangeOnlyConfig().window_s):
            print(line)
    shown = "plots"
    for d, what in ((replay, "errors against the truth"), (downlink, "what the spacecraft sent down")):
        n = len(_plots(d))
        if n:
            print(f"  {shown:12s} {_rel(d / 'plots')}/ ({n}: {what})")
            shown = ""
    if not args.verbose:
        print(f"  details      {_rel(steps.log)}, or run with --verbose")
    return rc or rc_decode or rc_replay


if __name__ == "__main__":
    sys.exit(main())
