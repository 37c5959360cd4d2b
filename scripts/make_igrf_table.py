#!/usr/bin/env python3
"""Build ``flight/pygnc/environment/igrf14.npz`` from the IGRF-14 file that ``ppigrf`` ships.

The coefficients are not committed to the repository (they are data from outside); this
script generates the table at build time, and ``package_flight_code.sh`` calls it::

    python scripts/make_igrf_table.py [--shc PATH] [--out PATH]

Defaults: ``IGRF14.shc`` inside the installed ``ppigrf`` package, written to
``flight/pygnc/environment/igrf14.npz`` next to :mod:`pygnc.environment.igrf`.  The
parsing and the npz layout live in :func:`pygnc.environment.igrf.table_from_shc` and
:func:`pygnc.environment.igrf.write_table` so the flight module can regenerate the same
table on the fly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "flight"))

from pygnc.environment import igrf  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shc", type=Path, default=None, help="IGRF .shc file (default: ppigrf's IGRF14.shc)")
    ap.add_argument("--out", type=Path, default=Path(igrf.TABLE_PATH), help="npz to write")
    args = ap.parse_args(argv)
    shc = args.shc or igrf.ppigrf_shc_path()
    if shc is None:
        print("ppigrf is not installed and no --shc was given", file=sys.stderr)
        return 2
    table = igrf.table_from_shc(shc)
    igrf.write_table(args.out, table)
    print(
        f"wrote {args.out}: degree {table['degree']}, epochs {table['epochs_year'][0]:.0f}-"
        f"{table['epochs_year'][-1]:.0f} from {shc}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
