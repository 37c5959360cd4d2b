"""The flight code's types: mypy over flight/pygnc and flight/main.py, configured once in
pyproject.toml ([tool.mypy]: check_untyped_defs, disallow_incomplete_defs).

A module not in :data:`UNCLEAN` is clean and must stay so.  :data:`UNCLEAN` lists, by
module, the errors still to fix (a function annotated in part, a ``float | None`` used as a
float where only the code's order says it is set); a listed module may not get worse, and
one that gets better has its number lowered here (or its line removed), so the list only
shrinks.  ``python -m mypy`` from the repository runs the same check (docs/testing.md); its
cache is mypy's default, ``.mypy_cache`` (a fresh clone's first run takes about 20 s)."""

import collections
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Module -> the number of mypy errors it has now (see the module's docstring).
UNCLEAN = {
    "flight/pygnc/atomic.py": 1,
    "flight/pygnc/batch_store.py": 3,
    "flight/pygnc/frames.py": 2,
    "flight/pygnc/limits.py": 6,
    "flight/pygnc/log_budget.py": 1,
    "flight/pygnc/logs.py": 2,
    "flight/pygnc/partners.py": 2,
    "flight/pygnc/processors/admission.py": 12,
    "flight/pygnc/processors/attitude.py": 2,
    "flight/pygnc/processors/event_order.py": 1,
    "flight/pygnc/processors/formation.py": 11,
    "flight/pygnc/processors/formation_estimate.py": 4,
    "flight/pygnc/processors/formation_outputs.py": 12,
    "flight/pygnc/processors/formation_peer.py": 9,
    "flight/pygnc/processors/now_cursor.py": 12,
    "flight/pygnc/processors/orbit.py": 26,
    "flight/pygnc/signals.py": 4,
    "flight/pygnc/supervisor.py": 1,
    "flight/pygnc/tasks/base.py": 1,
    "flight/pygnc/tasks/batch_writer.py": 15,
    "flight/pygnc/tasks/estimator.py": 1,
    "flight/pygnc/tasks/formation_estimator.py": 1,
    "flight/pygnc/tasks/ingest.py": 15,
    "flight/pygnc/tasks/tty_stream.py": 7,
    "flight/pygnc/timebase.py": 4,
    "flight/pygnc/toml_lines.py": 1,
    "flight/pygnc/validity.py": 4,
    "flight/pygnc/zygote.py": 2,
}

_ERROR = re.compile(r"^(?P<path>[^:\s]+\.py):\d+: error: ")


def test_flight_code_type_checks():
    p = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"], cwd=REPO, capture_output=True, text=True, timeout=240
    )
    errors = [line for line in p.stdout.splitlines() if _ERROR.match(line)]
    assert p.returncode in (0, 1) and (p.returncode == 0) == (not errors), p.stdout + p.stderr  # 2: mypy failed
    by_module = collections.Counter(_ERROR.match(line)["path"] for line in errors)
    worse = {m: n for m, n in by_module.items() if n > UNCLEAN.get(m, 0)}
    assert not worse, "new type errors (mypy's whole report below):\n" + "\n".join(
        [f"{m}: {n} (was {UNCLEAN.get(m, 0)})" for m, n in sorted(worse.items())] + ["", p.stdout]
    )
    better = {m: by_module.get(m, 0) for m, n in UNCLEAN.items() if by_module.get(m, 0) < n}
    assert not better, f"fewer type errors now: lower (or remove) these in UNCLEAN: {better}"
