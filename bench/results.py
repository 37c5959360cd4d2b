"""What a bench measured, kept as JSON for the generated performance page.

Each bench calls :func:`record` with its figures; ``bench/results/<name>.json`` then holds
them with the command that produced them, the date, the code (git commit) and the machine
(CPUs, load average), and ``scripts/performance_page.py --write`` renders
docs/performance.md (and the README's headline table) from every file there.  No figure in
those documents is typed by hand.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10, cwd=RESULTS.parent
        )
        dirty = subprocess.run(
            # (other benches' records, written meanwhile, are not the code measured)
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)bench/results"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=RESULTS.parent,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def record(
    name: str,
    title: str,
    figures: list[dict],
    notes: str = "",
    argv: list[str] | None = None,
    table: dict | None = None,
) -> Path:
    """Write ``bench/results/<name>.json``: *figures* is a list of ``{"key", "what",
    "value", "unit"}`` (``value`` a number or text); *title* says what was measured on what;
    *notes*, a few sentences on how to read it; *table*, ``{"header": [...], "rows": [[...]]}``
    of text cells the page shows below the figures."""
    argv = sys.argv if argv is None else argv
    cmd = ".venv/bin/python " + " ".join(
        shlex.quote(a) for a in [os.path.relpath(argv[0], RESULTS.parent.parent), *argv[1:]]
    )
    data = {
        "bench": name,
        "title": title,
        "command": cmd,
        "date": dt.date.today().isoformat(),
        "commit": _commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average": round(os.getloadavg()[0], 1),
            "python": platform.python_version(),
            "system": platform.machine(),
        },
        "figures": figures,
        "notes": notes,
    }
    if table is not None:
        data["table"] = {
            "header": [str(h) for h in table["header"]],
            "rows": [[str(c) for c in r] for r in table["rows"]],
        }
    if data["commit"].endswith("+dirty"):
        print(
            f"{name}: recorded from a tree with uncommitted changes ({data['commit']}): the performance page "
            "will say so - commit, then record again",
            file=sys.stderr,
        )
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)
    print(f"  (figures recorded in {os.path.relpath(path, RESULTS.parent.parent)})")
    return path


def figure(key: str, what: str, value, unit: str = "") -> dict:
    """One figure of :func:`record` (floats rounded to 4 significant digits; a percentage short
    of 100 keeps the digits that show it is short, e.g. 99.998, never 100)."""
    if isinstance(value, float):
        rounded = float(f"{value:.4g}")
        digits = 4
        while unit == "%" and value < 100.0 <= rounded and digits < 12:
            digits += 1
            rounded = float(f"{value:.{digits}g}")
        value = rounded
    return {"key": key, "what": what, "value": value, "unit": unit}
