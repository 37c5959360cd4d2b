"""Run the flight software on the bundled sample, as the host would, and show what it did.

1. copies data/sample's sense.bin, range/ and pygnc_config.toml (0x4A's two hours of
   sensors, GPS fixes and ranges to its partner 0x4B, and a partner prior the ground made
   from 0x4B's downlink) into out/sample_run/, the PYGNC_HOME;
2. starts ``flight/main.py`` there with the spacecraft time just after the data, watches
   its status file until the batch is processed and every estimator has reported after it
   (progress on the terminal), then stops it with Ctrl-C (SIGINT) as the host does;
3. prints the run's info file (``pygnc_info.txt``, what the host and an operator read);
4. decodes the batch files it wrote for downlink (``python -m ground decode``) into
   out/sample_downlink/ (CSVs and plots) and prints how close those estimates came to the
   sample's truth.

Fails loudly (exit status 1, with the supervisor's last output) when the run exits early,
the batch is not processed within ``--timeout``, or the run processed nothing.  Everything
the steps print goes to out/sample_steps.log, or with ``--verbose`` to the terminal.
``--out DIR`` instead of out/.  Exit status: 0, or the first failed step's.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
OUT = REPO / "out"
#: Lines of a failed step's output shown on the terminal (the rest is in the log).
FAIL_TAIL_LINES = 25
#: The first part of the run left out of the accuracy figures (the filters converging), s.
SETTLE_S = 600.0
#: How often the progress line is printed while the flight software works, s.
PROGRESS_EVERY_S = 3.0


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
            self.fail(f"failed (exit status {rc}): {shown}", start)
        return rc

    def fail(self, what: str, start: int = 0) -> None:
        """*what* on the terminal with the last lines of the log from byte *start*."""
        tail = []
        if not self.verbose and self.log.is_file():
            with self.log.open("rb") as f:
                f.seek(start)
                tail = f.read().decode("utf-8", "replace").splitlines()[-FAIL_TAIL_LINES:]
        text = what + "".join("\n  | " + ln for ln in tail)
        if tail:
            text += f"\n  (all of it: {_rel(self.log)})"
        print(text, flush=True)

    def say(self, text: str) -> None:
        if self.verbose:
            print(text, flush=True)
        else:
            with self.log.open("a") as f:
                f.write(text + "\n")


# --------------------------------------------------------------------------- the flight run
def _sample_span(home: Path) -> tuple[float, float]:
    """First and last spacecraft time of the sample's sensor records."""
    from pygnc.formats.sense import decode_sense

    t = decode_sense((home / "sense.bin").read_bytes()).sensors["t_sc_s"]
    return float(t[0]), float(t[-1])


def _progress(st: dict | None, first: float, last: float) -> str:
    """How far the slowest estimator has come through the batch, for the progress line."""
    if st is None:
        return "starting"
    epochs = [st["orbit_t_sc_s"], st["att_t_sc_s"]] + [st[f"peer{k}_t_sc_s"] for k in range(4) if st.get(f"peer{k}_id")]
    epochs = [e for e in epochs if isinstance(e, float) and math.isfinite(e)]
    if len(epochs) < 2:
        return "reading the batch"
    done = min(1.0, max(0.0, (min(epochs) - first) / max(last - first, 1.0)))
    return f"{done * (last - first) / 60.0:.0f} of {(last - first) / 60.0:.0f} min of data processed"


def run_flight(steps: Steps, home: Path, timeout_s: float) -> tuple[int, str]:
    """``flight/main.py`` on *home* until its batch is processed, then Ctrl-C; (exit status,
    why it failed or "")."""
    from ground.replay.pipeline import estimators_done
    from pygnc.config import config_for_home
    from pygnc.formats import status as S
    from pygnc.tasks.table import enabled_tasks

    first, last = _sample_span(home)
    t_sc = int(last) + 1
    env = {**os.environ, "PYGNC_HOME": str(home)}
    env.pop("PYGNC_CONFIG", None)
    argv = [sys.executable, str(REPO / "flight" / "main.py"), f"{timeout_s / 60.0 + 1.0:.1f}", str(t_sc)]
    tasks = {t.name for t in enabled_tasks(config_for_home(home))} & {
        "orbit_estimator",
        "attitude_estimator",
        "formation_estimator",
    }
    steps.say(f"$ PYGNC_HOME={home} python flight/main.py {argv[2]} {t_sc}")
    start = steps.log.stat().st_size if steps.log.is_file() else 0
    out = None if steps.verbose else steps.log.open("ab")
    status_path = home / "pygnc_status.bin"
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    why = ""
    try:
        shown = t0
        while True:
            rc = proc.poll()
            if rc is not None:
                why = f"flight/main.py exited (status {rc}) before the batch was processed"
                break
            try:
                st = S.decode_status(status_path.read_bytes())
            except (OSError, ValueError):
                st = None
            if st is not None and st["flags"] & S.FLAG_BATCH_DONE and estimators_done(st, tasks, last):
                break
            now = time.monotonic()
            if now - t0 > timeout_s:
                why = f"the batch was not processed within {timeout_s:g} s (--timeout)"
                break
            if now - shown >= PROGRESS_EVERY_S:
                print(f"  {now - t0:4.0f} s  {_progress(st, first, last)}", flush=True)
                shown = now
            time.sleep(0.2)
    except BaseException:
        why = "interrupted"
        raise
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # the host's Ctrl-C
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            why = why or "flight/main.py did not stop within 30 s of Ctrl-C"
        if out is not None:
            out.close()
    steps.say(f"(exit status {rc} after {time.monotonic() - t0:.1f} s)\n")
    if not why:
        try:
            st = S.decode_status(status_path.read_bytes())
        except (OSError, ValueError) as exc:
            st, why = None, f"its final status cannot be read ({exc})"
        if st is not None and (st["sense_records"] == 0 or st["batch_t_sc_last_s"] != st["batch_t_sc_last_s"]):
            why = f"it processed nothing ({st['sense_records']} sense records read)"
        elif rc != 0:
            why = f"flight/main.py exited with status {rc}"
    if why:
        steps.fail(f"the flight run failed: {why}", start)
        return (rc or 1), why
    return rc, ""


# --------------------------------------------------------------------------- accuracy
def accuracy_lines(downlink: Path, truth_path: Path, settle_s: float = SETTLE_S) -> list[str]:
    """How close the downlinked estimates (a ``ground decode --out`` directory) came to the
    truth, after the first *settle_s* of each: one line per estimator (and partner)."""
    import numpy as np

    from ground.outputs import tables as tb
    from ground.outputs import truth as tr

    truth = tr.find_truth(truth_path.parent, truth_path)
    lines = []

    def table(kind: str) -> dict | None:
        """The decoded estimates of *kind* made from measurements (not the ones propagated to
        the spacecraft's "now" after the data, which can lie past the truth's end)."""
        p = downlink / f"{kind}.csv"
        if not p.is_file():
            return None
        t = tb.read_csv(p)
        if "propagated" in t:
            keep = np.asarray(t["propagated"], dtype=float) == 0
            t = {k: np.asarray(v)[keep] for k, v in t.items()}
        return t

    def stack(t, fmt):
        return np.stack([np.asarray(t[fmt.format(a)], dtype=float) for a in "xyz"], axis=1)

    def settled(t_s):
        t_s = np.asarray(t_s, dtype=float)
        return t_s >= np.nanmin(t_s) + settle_s if t_s.size else t_s.astype(bool)

    o = table("orbit")
    if o is not None and len(o["t_gps_s"]):
        e = tr.orbit_errors(truth, o["t_gps_s"], stack(o, "{}_ecef_m"), stack(o, "v{}_ecef_m_s"))
        m = settled(o["t_gps_s"]) & np.all(np.isfinite(e["dr_ecef_m"]), axis=1)
        d = np.linalg.norm(e["dr_ecef_m"][m], axis=1)
        dv = np.linalg.norm(e["dv_ecef_m_s"][m], axis=1)
        lines.append(
            f"    orbit      position {np.sqrt(np.mean(d**2)):.1f} m RMS (max {d.max():.1f} m), "
            f"velocity {np.sqrt(np.mean(dv**2)) * 1000:.0f} mm/s RMS"
        )
    else:
        lines.append("    orbit      no estimate came down")
    a = table("attitude")
    if a is not None and len(a["unix_time_s"]):
        q = np.stack([np.asarray(a[k], dtype=float) for k in ("qw", "qx", "qy", "qz")], axis=1)
        e = tr.attitude_errors(
            truth, a["unix_time_s"], q, stack(a, "gyro_bias_{}_rad_s"), t_gps_s=np.asarray(a["t_gps_s"], dtype=float)
        )
        valid = np.asarray(a["valid_attitude"], dtype=float) == 1  # (not the placeholder before a reference)
        m = settled(a["unix_time_s"]) & valid & np.isfinite(e["angle_rad"])
        ang = np.degrees(e["angle_rad"][m])
        db = np.degrees(np.linalg.norm(e["dbias_rad_s"][m], axis=1))
        lines.append(
            f"    attitude   {np.sqrt(np.mean(ang**2)):.2f} deg RMS (max {ang.max():.1f} deg), "
            f"gyro bias {np.sqrt(np.mean(db**2)):.3f} deg/s RMS"
        )
    else:
        lines.append("    attitude   no estimate came down")
    f = table("formation")
    if f is not None and len(f["unix_time_s"]):
        peers = np.asarray(f["peer_id"], dtype=float).astype(int)
        for peer in sorted(set(peers.tolist())):
            sel = peers == peer
            e = tr.formation_errors(
                truth, np.asarray(f["unix_time_s"], dtype=float)[sel], peers[sel], stack(f, "d{}_ecef_m")[sel]
            )
            t = np.asarray(f["unix_time_s"], dtype=float)[sel]
            # after its acquisition: from the first estimate that had used a range
            m = (np.asarray(f["n_ranges_used"], dtype=float)[sel] > 0) & np.all(np.isfinite(e["dr_err_m"]), axis=1)
            sep = np.linalg.norm(e["dr_true_m"], axis=1)
            if not m.any():
                lines.append(f"    formation  partner 0x{peer:02X}: not acquired (no range used)")
                continue
            d = np.linalg.norm(e["dr_err_m"][m], axis=1)
            lines.append(
                f"    formation  partner 0x{peer:02X} ({np.nanmean(sep) / 1000:.1f} km away, from ranges alone): "
                f"relative position {np.sqrt(np.mean(d**2)):.1f} m RMS (max {d.max():.1f} m) after its "
                f"acquisition at {(t[m][0] - t[0]) / 60:.0f} min"
            )
    else:
        lines.append("    formation  no estimate came down")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show everything each step prints (pygnc's frames, the decode report)",
    )
    ap.add_argument("--out", type=Path, default=OUT, help="where the run and the downlink go (default out/)")
    ap.add_argument(
        "--timeout", type=float, default=300.0, metavar="S", help="give the flight run this long (default 300 s)"
    )
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "flight"))
    sys.path.insert(0, str(REPO))

    out = args.out.absolute()
    steps = Steps(args.verbose, out / "sample_steps.log")
    home = out / "sample_run"
    if home.exists():
        print(f"replacing {home} (the previous run's home: whatever was written there goes)", flush=True)
        shutil.rmtree(home)
    home.mkdir(parents=True)
    shutil.copy(SAMPLE / "sense.bin", home / "sense.bin")
    shutil.copytree(SAMPLE / "range", home / "range")
    shutil.copy(SAMPLE / "pygnc_config.toml", home / "pygnc_config.toml")  # the uplinked configuration
    first, last = _sample_span(home)
    print(
        f"running the flight software (flight/main.py) on the sample: {(last - first) / 3600:.0f} h of one "
        "spacecraft's sensors, GPS fixes and ranges to its partner, as its host starts it",
        flush=True,
    )
    t0 = time.monotonic()
    rc, why = run_flight(steps, home, args.timeout)
    if why:
        return rc
    print(f"done in {time.monotonic() - t0:.0f} s, stopped with Ctrl-C; its info file, {_rel(home)}/pygnc_info.txt:")
    info = (home / "pygnc_info.txt").read_text()
    print("".join("    " + ln + "\n" for ln in info.splitlines()), end="", flush=True)
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
        "decoding the batch files it wrote for downlink",
        cwd=REPO,
        timeout=300,
    )
    if rc_decode != 0:
        return rc_decode
    print(f"how close its downlinked estimates came to the sample's truth (after the first {SETTLE_S / 60:.0f} min):")
    for line in accuracy_lines(downlink, SAMPLE / "truth.npz"):
        print(line)
    n = len(list((downlink / "plots").glob("*.png")))
    if n:
        print(f"  plots        {_rel(downlink / 'plots')}/ ({n}: what the spacecraft sent down)")
    if not args.verbose:
        print(f"  details      {_rel(steps.log)}, or run with --verbose")
    return 0


if __name__ == "__main__":
    sys.exit(main())
