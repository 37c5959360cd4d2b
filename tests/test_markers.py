"""The marker tables in conftest.py name test modules and tests that exist (a renamed test
would otherwise silently fall into the fast suite)."""

import ast
from pathlib import Path

import conftest

TESTS = Path(__file__).resolve().parent


def test_every_marked_module_and_test_exists():
    for name in sorted(conftest.SYSTEM | conftest.SLOW):
        module, _, func = name.partition("::")
        path = TESTS / module
        assert path.is_file(), name
        if func:
            tree = ast.parse(path.read_text())
            names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
            assert func in names, name
