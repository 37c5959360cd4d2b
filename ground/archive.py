"""``python -m ground archive DB INPUT...``: load decoded downlink into an SQLite archive.

Inputs are files or directories (searched recursively) of any kind a reader in
:mod:`ground.archive_sources` recognises: a run's ``bus.log`` (every bus message, the
housekeeping readings included), ``pygnc_status.bin``, CSV written by ``ground decode``, and
batch files once their reader is registered.  Each input is loaded in one transaction, so
an interrupted load leaves nothing half-done.

Loading is idempotent: a file whose bytes (SHA-256) were loaded before is skipped, and a
record already in the archive (same kind, device, record, time, fields and raw bytes - e.g.
the same reading in two overlapping files, or a replayed bus stream) is not stored twice.
Only parameterised SQL is used.  The schema is :data:`SCHEMA` (documented in
docs/interface.md, "Archive"); fields are JSON, queryable with SQLite's ``json_extract``::

    SELECT t_sc_s, json_extract(fields_json, '$.current_a') FROM records
     WHERE kind = 'hk_reading' AND device = 'bms' AND record = 'CV1' ORDER BY t_sc_s;

Exit status: 0 every input loaded (or already there), 1 an input unreadable or of no known
kind, 2 bad usage.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ground.archive_sources import READERS, SourceRecords, detect_kind

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    source_id  INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,             -- reader: buslog, status, csv, batch, ...
    path       TEXT NOT NULL,             -- as given when loaded
    sha256     TEXT NOT NULL UNIQUE,      -- of the file's bytes: a file is loaded once
    size_bytes INTEGER NOT NULL,
    loaded_utc TEXT NOT NULL,             -- ISO 8601
    records    INTEGER NOT NULL,          -- records stored from this file
    duplicates INTEGER NOT NULL,          -- records already in the archive
    stats_json TEXT NOT NULL,             -- decode statistics (skipped bytes, ...)
    meta_json  TEXT NOT NULL              -- e.g. the run number of a bus log
);
CREATE TABLE IF NOT EXISTS records (
    record_id   INTEGER PRIMARY KEY,
    source_id   INTEGER NOT NULL REFERENCES sources(source_id),
    kind        TEXT NOT NULL,            -- hk_reading, hk_device, orbit_estimate, status, sensor, ...
    device      TEXT NOT NULL,            -- housekeeping device, producing task, peer_<id>, or ''
    record      TEXT NOT NULL,            -- EMUS sentence / OPC-N3 record / device state, or ''
    t_sc_s      REAL,                     -- spacecraft time, s (NULL if none)
    key         BLOB NOT NULL UNIQUE,     -- SHA-256/128 of kind, device, record, time, fields, raw
    fields_json TEXT NOT NULL,            -- values in physical units, units in the names
    raw         BLOB                      -- checksum-verified device bytes (hk readings)
);
CREATE INDEX IF NOT EXISTS records_by_time ON records(t_sc_s);
CREATE INDEX IF NOT EXISTS records_by_device_time ON records(device, t_sc_s);
CREATE INDEX IF NOT EXISTS records_by_kind_time ON records(kind, record, t_sc_s);
"""


class ArchiveError(Exception):
    pass


@dataclass
class LoadResult:
    path: Path
    kind: str | None
    status: str            # loaded | already loaded | unrecognised | unreadable
    records: int = 0
    duplicates: int = 0
    note: str = ""


def record_key(kind: str, device: str, record: str, t_sc_s, fields_json: str, raw: bytes | None) -> bytes:
    h = hashlib.sha256()
    h.update(f"{kind}\0{device}\0{record}\0{t_sc_s!r}\0".encode())
    h.update(fields_json.encode())
    h.update(b"\0" + (raw or b""))
    return h.digest()[:16]


class Archive:
    """An SQLite archive file (created if absent)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self.conn = sqlite3.connect(str(self.path))
            self.conn.execute("PRAGMA foreign_keys = ON")
            self.conn.executescript(SCHEMA)
            row = self.conn.execute("SELECT value FROM meta WHERE key = ?", ("schema_version",)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise ArchiveError(f"{self.path}: not a usable SQLite archive ({exc})") from None
        if row is None:
            with self.conn:
                self.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", ("schema_version", str(SCHEMA_VERSION)))
        elif int(row[0]) > SCHEMA_VERSION:
            raise ArchiveError(f"{self.path}: archive schema {row[0]} is newer than this tool ({SCHEMA_VERSION})")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def has_source(self, sha256: str) -> bool:
        return self.conn.execute("SELECT 1 FROM sources WHERE sha256 = ?", (sha256,)).fetchone() is not None

    def load_records(self, kind: str, path: Path, data: bytes, src: SourceRecords) -> LoadResult:
        """Store one decoded source (all or nothing); the entry point for any reader."""
        sha = hashlib.sha256(data).hexdigest()
        if self.has_source(sha):
            return LoadResult(path, kind, "already loaded")
        dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False).encode
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO sources (kind, path, sha256, size_bytes, loaded_utc, records, duplicates,"
                " stats_json, meta_json) VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?)",
                (kind, str(path), sha, len(data), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 dumps(src.stats), dumps(src.meta)))
            source_id = cur.lastrowid
            before = self.conn.total_changes
            n = 0

            def rows():
                nonlocal n
                for r in src.records:
                    n += 1
                    fj = dumps(r.fields)
                    yield (source_id, r.kind, r.device, r.record, r.t_sc_s,
                           record_key(r.kind, r.device, r.record, r.t_sc_s, fj, r.raw), fj, r.raw)

            self.conn.executemany(
                "INSERT OR IGNORE INTO records (source_id, kind, device, record, t_sc_s, key, fields_json, raw)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows())
            stored = self.conn.total_changes - before
            self.conn.execute("UPDATE sources SET records = ?, duplicates = ? WHERE source_id = ?",
                              (stored, n - stored, source_id))
        return LoadResult(path, kind, "loaded", stored, n - stored)

    def load_file(self, path: Path, kind: str | None = None) -> LoadResult:
        try:
            data = path.read_bytes()
        except OSError as exc:
            return LoadResult(path, kind, "unreadable", note=str(exc))
        kind = kind or detect_kind(path, data[:64])
        if kind is None or kind not in READERS:
            return LoadResult(path, kind, "unrecognised", note="no reader recognises this file")
        if self.has_source(hashlib.sha256(data).hexdigest()):
            return LoadResult(path, kind, "already loaded")
        try:
            src = READERS[kind].read(path, data)
        except ValueError as exc:
            return LoadResult(path, kind, "unreadable", note=str(exc))
        return self.load_records(kind, path, data, src)

    def summary(self) -> list[tuple[str, str, int, float | None, float | None]]:
        """(kind, device, records, first t_sc_s, last t_sc_s) per kind and device."""
        return self.conn.execute(
            "SELECT kind, device, COUNT(*), MIN(t_sc_s), MAX(t_sc_s) FROM records"
            " GROUP BY kind, device ORDER BY kind, device").fetchall()


def expand_inputs(inputs: list[Path]) -> list[tuple[Path, bool]]:
    """(file, given explicitly) for every input; directories are searched recursively for
    files a reader recognises."""
    out = []
    for p in inputs:
        if p.is_dir():
            for f in sorted(x for x in p.rglob("*") if x.is_file()):
                try:
                    with open(f, "rb") as fh:
                        head = fh.read(64)
                except OSError:
                    continue
                if detect_kind(f, head) is not None:
                    out.append((f, False))
        else:
            out.append((p, True))
    return out


def add_arguments(p) -> None:
    p.add_argument("db", type=Path, help="SQLite archive (created if absent)")
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT",
                   help="bus.log, status file, decode CSV, batch file, or a directory of them")
    p.add_argument("--kind", choices=sorted(READERS), default=None, help="force the reader (default: detect)")


def run(args) -> int:
    try:
        arch = Archive(args.db)
    except ArchiveError as exc:
        print(f"archive: {exc}", file=sys.stderr)
        return 1
    failed = 0
    with arch:
        missing = [p for p in args.inputs if not p.exists()]
        for p in missing:
            print(f"archive: {p}: no such file or directory", file=sys.stderr)
            failed += 1
        for path, explicit in expand_inputs([p for p in args.inputs if p.exists()]):
            r = arch.load_file(path, args.kind)
            if r.status == "loaded":
                print(f"{path}: {r.kind}: {r.records} records stored, {r.duplicates} already present")
            elif r.status == "already loaded":
                print(f"{path}: already loaded")
            else:
                print(f"archive: {path}: {r.status}: {r.note}", file=sys.stderr)
                failed += explicit
        for kind, device, n, t0, t1 in arch.summary():
            span = "" if t0 is None else f"  t_sc {t0:.1f} .. {t1:.1f} s"
            print(f"  {kind:<20} {device or '-':<20} {n:>9}{span}")
    return 1 if failed else 0
