#!/usr/bin/env python3
"""Make the bundled sample, data/sample, as a ground team would have it for the next run.

    python scripts/make_sample.py [--out data/sample]

1. ``python -m ground simulate`` with data/scenarios/sample.toml: two spacecraft (0x4A at
   the top, 0x4B in sc1/), 4 h, seed 7; each spacecraft's ``sense.bin``, range files in the
   PY4 layout and the simulator's ``pygnc_config.toml`` (spacecraft id, IMU mounting).
2. Each spacecraft's first 1.5 h (its *previous run*) through the real process tree
   (``ground.replay.pipeline``: ``python -m pygnc``); its batch files are its downlink.
3. Each spacecraft's partner prior from the other's downlink: ``python -m ground uplink
   --downlink`` at the sample's start, merged into its configuration.
4. The sample: each spacecraft's files of the last 2 h (clock times, as its host collected
   them), its configuration, the scenario's settings, and the truth of those 2 h on a 2-s
   grid (``truth.npz``; interpolation error < 0.03 deg in attitude, < 1 mm in position).

The same code and settings give the same bytes on one machine (the simulator is seeded, the
flight run is deterministic, numpy's BLAS runs on one thread); on another CPU numpy's SIMD
paths can round the truth's and the priors' floats differently in their last bits (9e-9
relative measured), while the flight's inputs stay the same bytes.  Takes about a minute.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

# One BLAS thread, before numpy loads: a sum split over threads rounds differently, and the
# truth's last bits would depend on the machine's cores (and on whoever started us).
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "flight"), str(REPO)]

SETTINGS = REPO / "data" / "scenarios" / "sample.toml"
#: The previous run's span and the sample's, seconds from the scenario's start.
PREVIOUS_S = (0.0, 5400.0)
SAMPLE_S = (7200.0, 14400.0)
#: Every how many truth grid points (1 s apart) the sample keeps.
TRUTH_STEP = 2


def _iso(t_gps_s: float) -> str:
    import datetime as dt

    from pygnc.timebase import utc_unix_from_gps

    return dt.datetime.fromtimestamp(float(utc_unix_from_gps(t_gps_s)), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ground(*args: str) -> str:
    """``python -m ground ARGS`` in this process; its output (raises on a failure)."""
    from ground.__main__ import main as ground_main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        rc = ground_main(list(args))
    if rc != 0:
        raise SystemExit(f"python -m ground {' '.join(args)}: exit {rc}\n{buf.getvalue()}")
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "data" / "sample", help="where (default data/sample)")
    args = ap.parse_args(argv)
    import numpy as np

    from ground.replay.pipeline import run_pipeline
    from ground.simulate import scenario as scn
    from ground.simulate.simulator import _deterministic_npz
    from ground.simulate.split import slice_truth, split_files

    with tempfile.TemporaryDirectory(prefix="pygnc-sample-") as tmp:
        tmp = Path(tmp)
        full = tmp / "full"
        print(f"simulating {SETTINGS.relative_to(REPO)} ...", flush=True)
        _ground("simulate", str(full), "--settings", str(SETTINGS), "--quiet")
        truth = scn.load_truth(full / "truth.npz")
        names = [str(n) for n in truth["spacecraft_name"]]
        ids = [int(i) for i in truth["radio_id"]]
        t0 = float(truth["t_gps_s"][0])

        def home(root: Path, k: int) -> Path:
            return root if k == 0 else root / names[k]

        def sc_time(k: int, t_rel_s: float) -> float:
            return float(np.interp(t0 + t_rel_s, truth["t_gps_s"], truth["t_sc_s"][k]))

        for k, name in enumerate(names):
            prev = home(tmp / "previous", k)
            split_files(home(full, k), prev, sc_time(k, PREVIOUS_S[0]), sc_time(k, PREVIOUS_S[1]))
            shutil.copy(home(full, k) / "pygnc_config.toml", prev / "pygnc_config.toml")
            print(f"{name} (0x{ids[k]:02X}): its previous run through the process tree ...", flush=True)
            run_pipeline(prev, batches_to=tmp / "downlink" / name, say=lambda _: None)

        if args.out.exists():  # everything but its README (what the sample is and how it is made)
            for p in args.out.iterdir():
                if p.name != "README.md":
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
        epoch = _iso(t0 + SAMPLE_S[0])
        for k, name in enumerate(names):
            dst = home(args.out, k)
            split_files(home(full, k), dst, sc_time(k, SAMPLE_S[0]), sc_time(k, SAMPLE_S[1]))
            shutil.copy(home(full, k) / "pygnc_config.toml", dst / "pygnc_config.toml")
            cmd = ["uplink", "--epoch-utc", epoch, "--out", str(dst / "pygnc_config.toml"), "--merge"]
            for j, other in enumerate(names):
                if j != k:
                    cmd += ["--downlink", f"0x{ids[j]:02X}={tmp / 'downlink' / other}"]
            print(f"{name}: partner prior from the downlink at {epoch}", flush=True)
            print("  " + _ground(*cmd).strip().replace(str(tmp) + "/", "").replace("\n", "\n  "), flush=True)
        shutil.copy(SETTINGS, args.out / "scenario.toml")
        sliced = slice_truth(truth, t0 + SAMPLE_S[0], t0 + SAMPLE_S[1], TRUTH_STEP)
        (args.out / "truth.npz").write_bytes(_deterministic_npz(sliced))
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file() and p.name != "README.md")
    print(f"wrote {args.out}: {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
