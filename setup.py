"""Build hook: the IGRF-14 coefficient table goes into the package.

The table (``pygnc/environment/igrf14.npz``) is generated, not committed: it is made from
the IGRF-14 file that the ``ppigrf`` package ships, by ``scripts/make_igrf_table.py``
(ppigrf and numpy are build requirements in pyproject.toml).  A wheel gets it in its
build directory; an editable install gets it next to the source (gitignored), once.
Everything else is declared in pyproject.toml.
"""

import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
TABLE = Path("pygnc", "environment", "igrf14.npz")


class BuildPyWithIgrfTable(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            out = HERE / "flight" / TABLE
            if out.is_file():
                return
        else:
            out = Path(self.build_lib) / TABLE
        subprocess.run(
            [sys.executable, str(HERE / "scripts" / "make_igrf_table.py"), "--out", str(out)], check=True, timeout=300
        )


setup(cmdclass={"build_py": BuildPyWithIgrfTable})
