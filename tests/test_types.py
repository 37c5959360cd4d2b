"""The flight code's types: mypy over flight/pygnc and flight/main.py, configured once in
pyproject.toml ([tool.mypy]: check_untyped_defs, disallow_untyped_defs: every function annotated).

The flight code is clean and must stay so.  :data:`UNCLEAN` may list, by module, errors
still to fix (a module brought in from elsewhere); a listed module may not get worse, and
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
UNCLEAN: dict[str, int] = {}

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
