"""The flight package imports only what the Pi installs: the standard library, numpy, pyzmq,
msgpack and pyserial (the device drivers).  No scipy (the gates' chi-square quantiles come from pygnc.estimation.chi2),
no ground or test library, nothing of ground/ - checked on every module's source, lazy
imports inside functions included."""

import ast
import sys

from flight_harness import REPO

FLIGHT = REPO / "flight"
ALLOWED = {"numpy", "zmq", "msgpack", "serial", "pygnc"}  # = pyproject dependencies


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_flight_imports_only_its_dependencies():
    found = {}
    for path in sorted(FLIGHT.rglob("*.py")):
        for name in _imports(path):
            if name not in sys.stdlib_module_names and name not in ALLOWED and name != "__future__":
                found.setdefault(name, []).append(str(path.relative_to(REPO)))
    assert found == {}


def test_the_scan_sees_lazy_imports(tmp_path):
    """The check itself: an import inside a function is found."""
    f = tmp_path / "m.py"
    f.write_text("def g():\n    from scipy.stats import chi2\n    return chi2\n")
    assert list(_imports(f)) == ["scipy"]
