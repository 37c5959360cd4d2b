"""Docs stay true: generated interface tables in sync, README's test command is what CI runs."""

import re
import subprocess
import sys

from flight_harness import REPO


def test_interface_tables_in_sync():
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "interface_tables.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_readme_opens_with_exactly_two_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    head = readme.split("---", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", head, re.S)
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1] in ci
    assert "pytest" in commands[1] and "run_sample.py" in commands[0]


def test_performance_page_is_generated_from_the_bench_results():
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "performance_page.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
