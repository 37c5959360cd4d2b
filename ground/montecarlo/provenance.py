"""Which code computed a result: pygnc's version, the git commit of the source tree this
process imports, and a SHA-256 of that tree's files.

A Monte Carlo run's numbers depend on the code that computed them, so every run record
carries the identity of the worker's code, and a campaign refuses to put the results of
different code in one table (:mod:`ground.montecarlo.cli`).  Two identities are the same
code when the version and the source hash agree: the hash covers every ``.py`` file of the
``pygnc`` and ``ground`` packages as imported (and the IGRF coefficient table they load),
so it holds whether or not the tree is a git checkout, and a commit that changes only
documentation or tests does not split a campaign.  The commit and its dirty flag are
there for people: ``commit`` is ``"unknown"`` and ``dirty`` true when the packages are not
tracked files of a git work tree (an installed wheel, a copied tree): no commit vouches
for that code.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
from pathlib import Path

#: File name endings hashed in each package directory.
HASHED_SUFFIXES = (".py", ".npz")
#: Seconds allowed for each git command.
GIT_TIMEOUT_S = 10.0


def package_dirs() -> list[Path]:
    """The directories of the ``pygnc`` and ``ground`` packages this process imports."""
    import ground
    import pygnc

    return [Path(pygnc.__file__).resolve().parent, Path(ground.__file__).resolve().parent]


def source_sha256(dirs: list[Path]) -> str:
    """SHA-256 over the hashed files of *dirs*: each file's path relative to its package's
    parent, its length and its bytes, in sorted order (``__pycache__`` left out)."""
    h = hashlib.sha256()
    for d in dirs:
        files = sorted(
            p for p in d.rglob("*") if p.suffix in HASHED_SUFFIXES and "__pycache__" not in p.parts and p.is_file()
        )
        for p in files:
            data = p.read_bytes()
            h.update(f"{p.relative_to(d.parent).as_posix()}\0{len(data)}\0".encode())
            h.update(data)
    return h.hexdigest()


def _git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True, timeout=GIT_TIMEOUT_S, env=env
    ).stdout.strip()


def git_state(dirs: list[Path]) -> dict:
    """``{"commit", "dirty"}`` of the work tree holding *dirs* (every one a tracked
    package); commit ``"unknown"`` and dirty true when they are not."""
    try:
        top = Path(_git(dirs[0], "rev-parse", "--show-toplevel"))
        for d in dirs:
            _git(top, "ls-files", "--error-unmatch", "--", str(d / "__init__.py"))
        commit = _git(top, "rev-parse", "HEAD")
        changes = _git(top, "status", "--porcelain", "--untracked-files=all", "--", *map(str, dirs))
    except (OSError, subprocess.SubprocessError, ValueError):
        return {"commit": "unknown", "dirty": True}
    return {"commit": commit, "dirty": bool(changes)}


@functools.cache
def code_identity() -> dict:
    """This process's code: ``pygnc_version``, ``commit``, ``dirty``, ``source_sha256``
    (computed once per process)."""
    import pygnc

    dirs = package_dirs()
    return {
        "pygnc_version": str(getattr(pygnc, "__version__", "unknown")),
        **git_state(dirs),
        "source_sha256": source_sha256(dirs),
    }


def same_code(a: dict | None, b: dict | None) -> bool:
    """Whether identities *a* and *b* are the same code (version and source hash agree)."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    return (a.get("pygnc_version"), a.get("source_sha256")) == (
        b.get("pygnc_version"),
        b.get("source_sha256"),
    ) and a.get("source_sha256") is not None


def describe(code: dict | None) -> str:
    """One line for people: ``pygnc 0.1.0, commit 43026b0e (dirty), source 1f2e3d4c``."""
    if not isinstance(code, dict):
        return "code not recorded"
    commit = code.get("commit") or "unknown"
    commit = commit[:12] if commit != "unknown" else commit
    dirty = " (dirty)" if code.get("dirty") else ""
    return f"pygnc {code.get('pygnc_version')}, commit {commit}{dirty}, source {str(code.get('source_sha256'))[:12]}"
