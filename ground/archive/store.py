"""The SQLite archive of decoded downlink (:class:`Archive`), which ``python -m ground archive
DB INPUT...`` (:mod:`ground.archive.cli`) loads.

Inputs are files or directories (searched recursively) of any kind a reader in
:mod:`ground.archive.sources` recognises: a run's ``bus.log`` (every bus message, the
housekeeping readings included), ``pygnc_status.bin``, CSV written by ``ground decode`` and
``ground replay``, and batch files.  Each input is loaded in one transaction, so an
interrupted load leaves nothing half-done; ``ground archive`` makes its whole run one
(``single_transaction``), so a malformed input refuses the run and leaves nothing of it.
Every record keeps what produced it (its ``source``: the ground replay, the spacecraft's
downlink, bus log or status file, the host's sense.bin or range files), so estimates of the
ground and of the spacecraft never share a table.

Loading is idempotent: a file whose bytes (SHA-256) were loaded before is skipped, and a
record already in the archive (same source, kind, device, record, time, fields and raw
bytes - e.g. the same reading in two overlapping files, or a replayed bus stream) is not
stored twice.
Only parameterised SQL is used.  The schema is :data:`SCHEMA` (documented in
docs/interface.md, "Archive"); fields are JSON, queryable with SQLite's ``json_extract``::

    SELECT t_sc_s, json_extract(fields_json, '$.current_a') FROM records
     WHERE kind = 'hk_reading' AND device = 'bms' AND record = 'CV1' ORDER BY t_sc_s;

An archive of schema 1 (records without a source) is brought to schema 2 when opened, in
one transaction: each record's source (and the kind and device schema 2 gives a CSV row)
from the file it came from and its fields, its key computed again.  One of schema 2 is
brought to schema 3: every record gets its spacecraft and run (its fields', else its
file's).  One of schema 3 is brought to schema 4: a partner's device written as everywhere
else (``peer_75`` becomes ``peer_0x4B``).  One of schema 4 is brought to schema 5: a batch
record's estimate quality stored as its word (``ok``), as the CSV rows and bus messages of
the same estimates have it, not its code (``1``).  Keys are computed again at each step.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ground.archive.sources import READERS, MalformedInput, SourceRecords, csv_record, detect_kind, origin
from pygnc.formats.common import read_regular_file

SCHEMA_VERSION = 5

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
    source      TEXT NOT NULL,            -- what produced it: ground_replay, onboard_downlink,
                                          -- onboard_buslog, onboard_status, host_sense, host_range, csv
    kind        TEXT NOT NULL,            -- hk_reading, hk_device, orbit_estimate, status, sensor, ...
    device      TEXT NOT NULL,            -- housekeeping device, producing task, peer_0x4B, or ''
    record      TEXT NOT NULL,            -- EMUS sentence / OPC-N3 record / device state, or ''
    t_sc_s      REAL,                     -- spacecraft time, s (NULL if none)
    key         BLOB NOT NULL UNIQUE,     -- SHA-256/128 of source, kind, device, record, time, fields, raw,
                                          -- spacecraft and run
    fields_json TEXT NOT NULL,            -- values in physical units, units in the names
    raw         BLOB,                     -- checksum-verified device bytes (hk readings)
    spacecraft_id INTEGER,                -- whose record: radio id, 0 not set on board, NULL unknown
    run         INTEGER                   -- the run that produced it (NULL unknown)
);
CREATE INDEX IF NOT EXISTS records_by_time ON records(t_sc_s);
CREATE INDEX IF NOT EXISTS records_by_device_time ON records(device, t_sc_s);
CREATE INDEX IF NOT EXISTS records_by_kind_time ON records(kind, record, t_sc_s);
CREATE INDEX IF NOT EXISTS records_by_source_kind_time ON records(source, kind, t_sc_s);
CREATE INDEX IF NOT EXISTS records_by_spacecraft_run ON records(spacecraft_id, run, kind, t_sc_s);
"""
#: The indexes of schema 1 (dropped and made again when an archive is brought to schema 2).
_V1_INDEXES = ("records_by_time", "records_by_device_time", "records_by_kind_time")


class ArchiveError(Exception):
    pass


@dataclass
class LoadResult:
    path: Path
    kind: str | None
    status: str  # loaded | already loaded | unrecognised | unreadable | refused | malformed
    records: int = 0
    duplicates: int = 0
    note: str = ""


def record_key(
    source: str,
    kind: str,
    device: str,
    record: str,
    t_sc_s,
    fields_json: str,
    raw: bytes | None,
    spacecraft_id: int | None = None,
    run: int | None = None,
) -> bytes:
    """The record's identity: the same record of the same spacecraft and run is stored once
    (two spacecraft's identical records are two records)."""
    h = hashlib.sha256()
    h.update(f"{source}\0{kind}\0{device}\0{record}\0{t_sc_s!r}\0".encode())
    h.update(fields_json.encode())
    h.update(b"\0" + (raw or b""))
    h.update(f"\0{spacecraft_id!r}\0{run!r}".encode())
    return h.digest()[:16]


_DUMPS = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False).encode


def _statements(script: str) -> list[str]:
    """The statements of *script* (no ``;`` inside one), each to run in a transaction of
    ours (``executescript`` would commit it)."""
    return [t for t in script.split(";") if t.strip()]


class Archive:
    """An SQLite archive file (created if absent).

    *single_transaction*: everything this object writes - bringing an older schema up to
    date, every load - is one transaction, kept by :meth:`commit` (:meth:`close` without it
    rolls it all back).  Otherwise opening is one transaction and each load another.
    """

    def __init__(self, path: str | os.PathLike, *, single_transaction: bool = False):
        self.path = Path(path)
        self._savepoints = 0
        self._closed = True
        try:
            self.conn = sqlite3.connect(str(self.path), isolation_level=None)
            self._closed = False
            self.conn.execute("PRAGMA foreign_keys = ON")
            if single_transaction:
                self.conn.execute("BEGIN IMMEDIATE")
            with self._transaction(immediate=False):
                self._bring_up_to_date()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise ArchiveError(f"{self.path}: not a usable SQLite archive ({exc})") from None
        except BaseException:
            self.close()
            raise

    def _bring_up_to_date(self) -> None:
        """Convert an older schema one step at a time, create what is missing."""
        conn = self.conn
        has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        row = conn.execute("SELECT value FROM meta WHERE key = ?", ("schema_version",)).fetchone() if has_meta else None
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise ArchiveError(f"{self.path}: archive schema {row[0]} is newer than this tool ({SCHEMA_VERSION})")
        version = None if row is None else int(row[0])
        if version == 1:
            self._migrate_v1()
        if version is not None and (version <= 2 or version == 3 and not self._has_origin_columns()):
            self._migrate_v2()  # (a schema 3 without them: a development build's, partners already 0x4B)
        if version is not None and version <= 3:
            self._migrate_v3()
        if version is not None and version <= 4:
            self._migrate_v4()
        for statement in _statements(SCHEMA):
            conn.execute(statement)
        if row is None:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", ("schema_version", str(SCHEMA_VERSION)))

    def _has_origin_columns(self) -> bool:
        columns = {r[1] for r in self.conn.execute("PRAGMA table_info(records)")}
        return {"spacecraft_id", "run"} <= columns

    @contextmanager
    def _transaction(self, immediate: bool = True) -> Iterator[None]:
        """A write transaction (``BEGIN IMMEDIATE``, or deferred), or a savepoint inside the
        one open: kept if the block ends, rolled back if anything (an interrupt too) leaves it."""
        conn = self.conn
        if conn.in_transaction:
            self._savepoints += 1
            name = f"sp{self._savepoints}"
            conn.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                if conn.in_transaction:  # (an error may have ended it already)
                    conn.execute(f"ROLLBACK TO {name}")
                    conn.execute(f"RELEASE {name}")
                raise
            conn.execute(f"RELEASE {name}")
            return
        conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _migrate_v1(self) -> None:
        """Schema 1 -> 2 in one transaction: every record gets its source (a CSV row also
        the kind and device schema 2 gives it) and its key again."""
        conn = self.conn
        sources = {
            sid: (kind, path, json.loads(meta))
            for sid, kind, path, meta in conn.execute("SELECT source_id, kind, path, meta_json FROM sources")
        }
        from_reader = {"buslog": "onboard_buslog", "status": "onboard_status", "batch": "onboard_downlink"}
        from_csv = {"buslog": "onboard_buslog", "status": "onboard_status"}
        with self._transaction():
            for name in _V1_INDEXES:
                conn.execute(f"DROP INDEX IF EXISTS {name}")
            conn.execute("ALTER TABLE records RENAME TO records_v1")
            for statement in _statements(SCHEMA):  # every statement is IF NOT EXISTS: the new records table
                conn.execute(statement)
            rows = conn.execute(
                "SELECT record_id, source_id, kind, device, record, t_sc_s, fields_json, raw"
                " FROM records_v1 ORDER BY record_id"
            ).fetchall()
            for record_id, sid, kind, device, record, t, fj, raw in rows:
                reader, path, meta = sources[sid]
                if reader == "csv" and meta.get("csv") not in from_csv:
                    fields = json.loads(fj)
                    r = csv_record(list(fields), fields, Path(path).stem)
                    source, kind, device, record = r.source, r.kind, r.device, r.record
                else:
                    source = from_csv[meta["csv"]] if reader == "csv" else from_reader.get(reader, reader)
                conn.execute(
                    "INSERT OR IGNORE INTO records (record_id, source_id, source, kind, device, record, t_sc_s,"
                    " key, fields_json, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record_id,
                        sid,
                        source,
                        kind,
                        device,
                        record,
                        t,
                        record_key(source, kind, device, record, t, fj, raw),
                        fj,
                        raw,
                    ),
                )
            conn.execute("DROP TABLE records_v1")
            conn.execute("UPDATE meta SET value = ? WHERE key = ?", ("2", "schema_version"))

    def _migrate_v2(self) -> None:
        """Schema 2 -> 3 in one transaction: every record gets its spacecraft and run (from its
        fields, else its file's header) and its key again."""
        conn = self.conn
        metas = {sid: json.loads(m) for sid, m in conn.execute("SELECT source_id, meta_json FROM sources")}
        with self._transaction():
            columns = {r[1] for r in conn.execute("PRAGMA table_info(records)")}
            for name in ("spacecraft_id", "run"):
                if name not in columns:
                    conn.execute(f"ALTER TABLE records ADD COLUMN {name} INTEGER")
            rows = conn.execute(
                "SELECT record_id, source_id, source, kind, device, record, t_sc_s, fields_json, raw FROM records"
            ).fetchall()
            for record_id, sid, source, kind, device, record, t, fj, raw in rows:
                sc, run = origin(json.loads(fj), metas.get(sid, {}))
                conn.execute(
                    "UPDATE records SET spacecraft_id = ?, run = ?, key = ? WHERE record_id = ?",
                    (sc, run, record_key(source, kind, device, record, t, fj, raw, sc, run), record_id),
                )
            conn.execute("UPDATE meta SET value = ? WHERE key = ?", ("3", "schema_version"))

    def _migrate_v3(self) -> None:
        """Schema 3 -> 4 in one transaction: a partner's device ``peer_<decimal id>`` becomes
        ``peer_0x4B`` (:func:`ground.archive.sources.peer_device`), its key computed again."""
        from ground.archive.sources import peer_device

        conn = self.conn
        with self._transaction():
            rows = conn.execute(
                "SELECT record_id, source, kind, device, record, t_sc_s, fields_json, raw, spacecraft_id, run"
                " FROM records WHERE device GLOB 'peer_[0-9]*'"
            ).fetchall()
            for record_id, source, kind, device, record, t, fj, raw, sc, run in rows:
                new = peer_device(device[len("peer_") :])
                conn.execute(
                    "UPDATE OR IGNORE records SET device = ?, key = ? WHERE record_id = ?",
                    (new, record_key(source, kind, new, record, t, fj, raw, sc, run), record_id),
                )
            conn.execute("UPDATE meta SET value = ? WHERE key = ?", ("4", "schema_version"))

    def _migrate_v4(self) -> None:
        """Schema 4 -> 5 in one transaction: a batch record's ``quality`` code becomes its
        word (:func:`pygnc.formats.batch.quality_word`; null: not recorded), its key computed
        again; a record that then equals one stored is dropped, counted a duplicate."""
        from pygnc.formats.batch import quality_word

        conn = self.conn
        with self._transaction():
            rows = conn.execute(
                "SELECT record_id, source_id, source, kind, device, record, t_sc_s, fields_json, raw, spacecraft_id,"
                " run FROM records WHERE source_id IN (SELECT source_id FROM sources WHERE kind = 'batch')"
                " AND json_type(fields_json, '$.quality') = 'integer'"
            ).fetchall()
            for record_id, sid, source, kind, device, record, t, fj, raw, sc, run in rows:
                fields = json.loads(fj)
                fields["quality"] = quality_word(fields["quality"]) or None
                fj = _DUMPS(fields)
                key = record_key(source, kind, device, record, t, fj, raw, sc, run)
                cur = conn.execute(
                    "UPDATE OR IGNORE records SET fields_json = ?, key = ? WHERE record_id = ?", (fj, key, record_id)
                )
                if cur.rowcount == 0:
                    conn.execute("DELETE FROM records WHERE record_id = ?", (record_id,))
                    conn.execute(
                        "UPDATE sources SET records = records - 1, duplicates = duplicates + 1 WHERE source_id = ?",
                        (sid,),
                    )
            conn.execute("UPDATE meta SET value = ? WHERE key = ?", ("5", "schema_version"))

    def commit(self) -> None:
        """Keep what the open transaction wrote (a *single_transaction* archive's run)."""
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def close(self) -> None:
        """Close; what an open transaction wrote and :meth:`commit` did not keep is rolled back."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        finally:
            self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def has_source(self, sha256: str) -> bool:
        return self.conn.execute("SELECT 1 FROM sources WHERE sha256 = ?", (sha256,)).fetchone() is not None

    def load_records(
        self, kind: str, path: Path, data: bytes, src: SourceRecords, spacecraft_id: int | None = None
    ) -> LoadResult:
        """Store one decoded source (all or nothing); the entry point for any reader.
        *spacecraft_id*: whose file it is, for records and files that do not say (a file
        that says another is refused)."""
        sha = hashlib.sha256(data).hexdigest()
        if self.has_source(sha):
            return LoadResult(path, kind, "already loaded")
        if spacecraft_id is not None:
            said = origin({}, src.meta)[0]
            if said not in (None, 0, spacecraft_id):
                return LoadResult(
                    path,
                    kind,
                    "refused",
                    note=f"the file is spacecraft 0x{said:02X}'s, not --spacecraft 0x{spacecraft_id:02X}'s",
                )
            src.meta = {**src.meta, "spacecraft_id": spacecraft_id} if said in (None, 0) else src.meta
        dumps = _DUMPS
        default_source = READERS[kind].source if kind in READERS else kind
        with self._transaction():
            cur = self.conn.execute(
                "INSERT INTO sources (kind, path, sha256, size_bytes, loaded_utc, records, duplicates,"
                " stats_json, meta_json) VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?)",
                (
                    kind,
                    str(path),
                    sha,
                    len(data),
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    dumps(src.stats),
                    dumps(src.meta),
                ),
            )
            source_id = cur.lastrowid
            before = self.conn.total_changes
            n = 0

            def rows():
                nonlocal n
                for r in src.records:
                    n += 1
                    fj = dumps(r.fields)
                    source = r.source or default_source
                    sc, run = origin(r.fields, src.meta)
                    if spacecraft_id is not None and sc in (None, 0):
                        sc = spacecraft_id
                    yield (
                        source_id,
                        source,
                        r.kind,
                        r.device,
                        r.record,
                        r.t_sc_s,
                        record_key(source, r.kind, r.device, r.record, r.t_sc_s, fj, r.raw, sc, run),
                        fj,
                        r.raw,
                        sc,
                        run,
                    )

            self.conn.executemany(
                "INSERT OR IGNORE INTO records (source_id, source, kind, device, record, t_sc_s, key, fields_json, raw,"
                " spacecraft_id, run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows(),
            )
            stored = self.conn.total_changes - before
            self.conn.execute(
                "UPDATE sources SET records = ?, duplicates = ? WHERE source_id = ?", (stored, n - stored, source_id)
            )
        return LoadResult(path, kind, "loaded", stored, n - stored)

    def load_file(self, path: Path, kind: str | None = None, spacecraft_id: int | None = None) -> LoadResult:
        try:  # a FIFO or a device given by name is refused, never waited on
            data = read_regular_file(path)
        except OSError as exc:
            return LoadResult(path, kind, "unreadable", note=str(exc))
        kind = kind or detect_kind(path, data[:64])
        if kind is None or kind not in READERS:
            return LoadResult(path, kind, "unrecognised", note="no reader recognises this file")
        if self.has_source(hashlib.sha256(data).hexdigest()):
            return LoadResult(path, kind, "already loaded")
        try:
            src = READERS[kind].read(path, data)
        except MalformedInput as exc:
            return LoadResult(path, kind, "malformed", note=str(exc))
        except ValueError as exc:
            return LoadResult(path, kind, "unreadable", note=str(exc))
        try:
            return self.load_records(kind, path, data, src, spacecraft_id)
        except MalformedInput as exc:  # a reader that yields its records as it reads them
            return LoadResult(path, kind, "malformed", note=str(exc))

    def summary(self) -> list[tuple[int | None, str, str, str, int, float | None, float | None]]:
        """(spacecraft id, source, kind, device, records, first t_sc_s, last t_sc_s) per
        spacecraft, source, kind and device."""
        return self.conn.execute(
            "SELECT spacecraft_id, source, kind, device, COUNT(*), MIN(t_sc_s), MAX(t_sc_s) FROM records"
            " GROUP BY spacecraft_id, source, kind, device ORDER BY spacecraft_id, source, kind, device"
        ).fetchall()

    def n_sources(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM sources").fetchone()[0]
