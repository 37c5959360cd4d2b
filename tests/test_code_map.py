"""scripts/code_map.py in check mode: flight/ and ground/ have no import cycle, not even one
that closes only through an import inside a function, and keep the layer rules (estimation
and formats never import processors or tasks, flight never imports ground); the checker
itself finds both kinds of cycle and every kind of layer break."""

import importlib.util
import subprocess
import sys

from flight_harness import REPO

SCRIPT = REPO / "scripts" / "code_map.py"


def _code_map():
    spec = importlib.util.spec_from_file_location("code_map", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_no_import_cycle():
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--strict"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert "import-time cycles: none" in r.stdout and "cycles through deferred imports: none" in r.stdout
    assert "never imports ground): kept" in r.stdout


def test_the_check_finds_cycles(tmp_path):
    """A package whose a -> b -> a at import time, and c -> d -> c through a function."""
    cm = _code_map()
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("from .a import x\n")
    (pkg / "c.py").write_text("import pkg.d\n")
    (pkg / "d.py").write_text("def f():\n    from pkg import c\n    return c\n")
    (pkg / "e.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n")
    mods = cm.scan([(tmp_path, "pkg")])
    assert cm.cycles(mods, include_deferred=False) == [["pkg.a", "pkg.b", "pkg.a"]]
    assert cm.cycles(mods, include_deferred=True) == [["pkg.a", "pkg.b", "pkg.a"], ["pkg.c", "pkg.d", "pkg.c"]]
    assert mods["pkg.d"].imports == {"pkg.c": True} and mods["pkg.e"].imports == {}


def test_the_check_finds_layer_breaks(tmp_path):
    """An estimation module importing a processor (relative, inside a function), a codec a
    task, a flight module ground - even when ground is not scanned; a processor importing
    estimation is allowed, and so is an import only for type checking."""
    cm = _code_map()
    root = tmp_path / "pygnc"
    for d in ("", "estimation", "formats", "processors", "tasks"):
        (root / d).mkdir(exist_ok=True)
        (root / d / "__init__.py").write_text("")
    (root / "processors" / "orbit.py").write_text("from ..estimation import ekf\n")
    (root / "estimation" / "ekf.py").write_text("def f():\n    from ..processors import orbit\n    return orbit\n")
    (root / "estimation" / "typed.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pygnc.tasks import x\n"
    )
    (root / "formats" / "codec.py").write_text("import pygnc.tasks.ingest\n")
    (root / "tasks" / "ingest.py").write_text("from ground.replay import cli\n")
    mods = cm.scan([(tmp_path, "pygnc")])
    assert cm.layer_breaks(mods) == [
        ("pygnc.estimation.ekf", "pygnc.processors"),
        ("pygnc.estimation.ekf", "pygnc.processors.orbit"),
        ("pygnc.formats.codec", "pygnc.tasks.ingest"),
        ("pygnc.tasks.ingest", "ground.replay"),
        ("pygnc.tasks.ingest", "ground.replay.cli"),
    ]
