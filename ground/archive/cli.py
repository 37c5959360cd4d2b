"""``python -m ground archive DB INPUT...``: load decoded downlink into an SQLite archive
(:class:`ground.archive.store.Archive`; what each input may be and what loading promises:
:mod:`ground.archive.store`).

What is not recognised is said, by name (for a directory: its files no reader takes); a
run that finds nothing to load exits 1 and creates no archive.  A run is one transaction: a
malformed input (:class:`ground.archive.sources.MalformedInput`) refuses it in one line,
leaving no new archive and an existing one as it was.

Exit status: 0 every input loaded (or already there), 1 an input given by name unreadable
or of no known kind, or nothing loadable found at all, 2 bad usage or a malformed input.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from ground.archive.sources import READERS, detect_kind
from ground.archive.store import Archive, ArchiveError


def _head(path: Path, n: int = 64) -> bytes | None:
    """The first *n* bytes of a regular file, None if it cannot be read (never blocks)."""

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        return os.read(fd, n) if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except OSError:
        return None
    finally:
        os.close(fd)


@dataclass
class Inputs:
    """The files to load, and what the directories held that no reader takes."""

    files: list[tuple[Path, bool]]  # (file, given by name)
    unrecognised: dict[Path, list[Path]]  # directory -> its files no reader takes


def expand_inputs(inputs: list[Path]) -> Inputs:
    """Every input file (given by name), and the files of each directory (searched
    recursively, dot files left out) a reader recognises; the others listed per directory."""
    out = Inputs([], {})
    for p in inputs:
        if not p.is_dir():
            out.files.append((p, True))
            continue
        skipped = out.unrecognised.setdefault(p, [])
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            if any(part.startswith(".") for part in f.relative_to(p).parts):
                continue
            head = _head(f)
            if head is not None and detect_kind(f, head) is not None:
                out.files.append((f, False))
            else:
                skipped.append(f)
    return out


def add_arguments(p) -> None:
    p.add_argument("db", type=Path, help="SQLite archive (created if absent)")
    p.add_argument(
        "inputs",
        type=Path,
        nargs="+",
        metavar="INPUT",
        help="bus.log, status file, decode CSV, batch file, or a directory of them",
    )
    p.add_argument("--kind", choices=sorted(READERS), default=None, help="force the reader (default: detect)")
    p.add_argument(
        "--spacecraft",
        metavar="ID",
        default=None,
        help="the spacecraft (radio id, e.g. 0x4A) of inputs that do not say whose they are (status files, "
        "ground replays, host files, bus logs of a run without spacecraft_id); a file that names another "
        "is refused",
    )


def _names(paths: list[Path], base: Path, limit: int = 10) -> str:
    names = [str(p.relative_to(base)) for p in paths]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _spacecraft_id(text: str | None) -> int | None:
    if text is None:
        return None
    from pygnc.config import peer_id_key

    return peer_id_key(text)


def run(args) -> int:
    try:
        spacecraft = _spacecraft_id(args.spacecraft)
    except ValueError as exc:
        print(f"archive: --spacecraft: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for p in args.inputs:
        if not p.exists():
            print(f"archive: {p}: no such file or directory", file=sys.stderr)
            failed += 1
    found = expand_inputs([p for p in args.inputs if p.exists()])
    readers = ", ".join(sorted(READERS))
    for d, skipped in found.unrecognised.items():
        n_files = len(skipped) + sum(1 for f, explicit in found.files if not explicit and d in f.parents)
        if skipped:
            print(
                f"archive: {d}: {len(skipped)} of {n_files} files not recognised by any reader ({readers}), "
                f"skipped: {_names(skipped, d)}",
                file=sys.stderr,
            )
        elif not n_files:
            print(f"archive: {d}: no files", file=sys.stderr)
    if not found.files:
        where = "" if args.db.exists() else f"; {args.db} not created"
        print(f"archive: nothing to load{where}", file=sys.stderr)
        return 1
    created = not args.db.exists()
    out: list[str] = []  # said once the run is kept: nothing of a refused run is
    err: list[str] = []
    kept = False
    try:
        try:
            arch = Archive(args.db, single_transaction=True)
        except ArchiveError as exc:
            print(f"archive: {exc}", file=sys.stderr)
            return 1
        with arch:
            usable = 0
            for path, explicit in found.files:
                r = arch.load_file(path, args.kind, spacecraft)
                if r.status == "malformed":
                    left = "not created" if created else "left as it was"
                    print(
                        f"archive: {path}: refused, a malformed {r.kind} file: {r.note}; nothing loaded, "
                        f"{args.db} {left}",
                        file=sys.stderr,
                    )
                    return 2
                if r.status == "loaded":
                    usable += 1
                    out.append(f"{path}: {r.kind}: {r.records} records stored, {r.duplicates} already present")
                elif r.status == "already loaded":
                    usable += 1
                    out.append(f"{path}: already loaded")
                else:
                    err.append(f"archive: {path}: {r.status}: {r.note}")
                    failed += explicit
            summary = arch.summary()
            if usable:
                arch.commit()
                kept = True
    except sqlite3.DatabaseError as exc:  # a full disk, the archive locked by another writer
        print(f"archive: {args.db}: {exc}; nothing loaded", file=sys.stderr)
        return 1
    finally:
        if created and not kept:
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(str(args.db) + suffix).unlink(missing_ok=True)
    for line in out:
        print(line)
    for line in err:
        print(line, file=sys.stderr)
    unknown = 0
    for sc, source, kind, device, n, t0, t1 in summary:
        span = "" if t0 is None else f"  t_sc {t0:.1f} .. {t1:.1f} s"
        who = "?" if sc is None else f"0x{sc:02X}"
        unknown += n if sc is None else 0
        print(f"  {who:<5} {source:<17} {kind:<20} {device or '-':<20} {n:>9}{span}")
    if unknown:
        print(
            f"  ({unknown} records of no known spacecraft ('?'): their files do not say; "
            "--spacecraft ID names it when they are loaded)"
        )
    if not kept:
        print("archive: nothing loaded" + (f"; {args.db} not created" if created else ""), file=sys.stderr)
        return 1
    return 1 if failed else 0
