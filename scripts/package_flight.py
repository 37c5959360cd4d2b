"""Build the flight zip: ``flight/`` without tests, caches or READMEs, plus a VERSION file.

Called by ``package_flight_code.sh``; see there.  Everything the flight code needs is in
``flight/`` (the IGRF coefficient table included), so nothing is generated here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FLIGHT = REPO / "flight"

EXCLUDED_DIRS = {"__pycache__", "tests", "test", ".pytest_cache", ".hypothesis"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej", ".tmp"}


def excluded(rel: Path) -> bool:
    if any(part in EXCLUDED_DIRS or part.startswith(".") for part in rel.parts[:-1]):
        return True
    name = rel.name
    return (
        name.upper().startswith("README")
        or name.startswith("test_")
        or name.startswith(".")
        or rel.suffix in EXCLUDED_SUFFIXES
    )


def version_text() -> str:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD") or "unknown"
    dirty = "-dirty" if git("status", "--porcelain", "--untracked-files=no", "--", "flight") else ""
    sys.path.insert(0, str(FLIGHT))
    from pygnc import __version__

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    commit_date = git("show", "-s", "--format=%cI", "HEAD")
    return f"pygnc {__version__}\ncommit {commit}{dirty}\ncommit_date {commit_date}\npackaged {now}\n"


def build(out: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "flight"
        files = []
        for src in sorted(FLIGHT.rglob("*")):
            rel = src.relative_to(FLIGHT)
            if src.is_file() and not excluded(rel):
                dst = stage / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(src.read_bytes())
        (stage / "VERSION").write_text(version_text())
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_zip = out.with_name(out.name + ".part")
        with zipfile.ZipFile(tmp_zip, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for f in sorted(stage.rglob("*")):
                if f.is_file():
                    rel = f.relative_to(stage).as_posix()
                    z.write(f, rel)
                    files.append(rel)
        tmp_zip.replace(out)
    return files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", type=Path, default=REPO / "pygnc_flight.zip")
    args = p.parse_args(argv)
    files = build(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
