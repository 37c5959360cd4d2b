#!/usr/bin/env python3
"""Build ``flight/pygnc/environment/egm2008.npz`` from the EGM2008 model that ``brahe`` ships.

    python scripts/make_egm2008_table.py [--degree 70] [--out PATH]

The fully normalised, tide-free C and S of EGM2008 (the National Geospatial-Intelligence
Agency's public coefficients) to degree and order ``--degree``, with the model's GM and
reference radius: the table :mod:`pygnc.environment.gravity` reads.  ``brahe`` is a ground
dependency (the simulator's truth); the flight package carries only the npz, and
``tests/test_gravity_field.py`` checks that the committed table is what brahe gives.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "flight"))

from pygnc.environment import gravity  # noqa: E402


def egm2008_from_brahe(degree: int) -> dict:
    """{'gm_m3_s2', 'radius_m', 'c', 's'} of brahe's EGM2008 to *degree* x *degree*."""
    import brahe

    model = brahe.GravityModel.from_model_type(brahe.GravityModelType.EGM2008_120)
    c = np.zeros((degree + 1, degree + 1))
    s = np.zeros((degree + 1, degree + 1))
    for n in range(degree + 1):
        for m in range(n + 1):
            c[n, m] = model.get_c(n, m)
            s[n, m] = model.get_s(n, m)
    return {"gm_m3_s2": float(model.gm), "radius_m": float(model.radius), "c": c, "s": s}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--degree", type=int, default=gravity.TABLE_DEGREE, help="degree and order (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=Path(gravity.TABLE_PATH), help="npz to write")
    args = ap.parse_args(argv)
    t = egm2008_from_brahe(args.degree)
    gravity.write_table(args.out, args.degree, t["gm_m3_s2"], t["radius_m"], t["c"], t["s"])
    print(f"wrote {args.out}: EGM2008 to degree and order {args.degree} (GM {t['gm_m3_s2']}, R {t['radius_m']} m)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
