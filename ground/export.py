"""``python -m ground export DB OUT_DIR``: CSV files from an archive (``ground archive``).

One file per (kind, device, record), named ``<kind>[__<device>][__<record>].csv``, rows in
spacecraft-time order: ``t_sc_s, device, record`` then every field, flattened: a list of
numbers becomes ``name_0, name_1, ...``, a list of text one cell joined with ``;``, anything
nested its JSON.  Empty cells are values the device did not send (or NaN).  Filters:
``--kind``, ``--device`` (repeatable), ``--since``/``--until`` (spacecraft time, s).  Files
are written atomically.  Exit status: 0 written, 1 archive unusable, 2 bad usage.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import sys
from pathlib import Path

from ground.archive import Archive, ArchiveError


def add_arguments(p) -> None:
    p.add_argument("db", type=Path, help="SQLite archive written by 'ground archive'")
    p.add_argument("out", type=Path, help="directory for the CSV files")
    p.add_argument("--kind", action="append", default=[], help="only this record kind (repeatable)")
    p.add_argument("--device", action="append", default=[], help="only this device (repeatable)")
    p.add_argument("--since", type=float, default=None, metavar="T_SC_S", help="from this spacecraft time")
    p.add_argument("--until", type=float, default=None, metavar="T_SC_S", help="up to this spacecraft time")


def flatten(fields: dict) -> dict:
    out = {}
    for k, v in fields.items():
        if isinstance(v, list):
            if all(x is None or isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
                for i, x in enumerate(v):
                    out[f"{k}_{i}"] = x
            elif all(isinstance(x, str) for x in v):
                out[k] = ";".join(v)
            else:
                out[k] = json.dumps(v, separators=(",", ":"))
        elif isinstance(v, dict):
            out[k] = json.dumps(v, separators=(",", ":"), sort_keys=True)
        elif isinstance(v, bool):
            out[k] = int(v)
        else:
            out[k] = v
    return out


def _name(kind: str, device: str, record: str) -> str:
    parts = [p for p in (kind, device, record) if p]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "__".join(parts)) + ".csv"


def query(conn: sqlite3.Connection, kinds, devices, since, until):
    where, params = [], []
    if kinds:
        where.append("kind IN (%s)" % ",".join("?" * len(kinds)))
        params += kinds
    if devices:
        where.append("device IN (%s)" % ",".join("?" * len(devices)))
        params += devices
    if since is not None:
        where.append("t_sc_s >= ?")
        params.append(since)
    if until is not None:
        where.append("t_sc_s <= ?")
        params.append(until)
    sql = ("SELECT kind, device, record, t_sc_s, fields_json FROM records"
           + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY kind, device, record, t_sc_s, record_id")
    return conn.execute(sql, params)


def export(db: Path, out: Path, kinds=(), devices=(), since=None, until=None) -> dict[Path, int]:
    """Write the CSV files; returns {path: rows}."""
    from pygnc.atomic import write_atomic

    groups: dict[tuple, list] = {}
    with Archive(db) as arch:
        for kind, device, record, t, fj in query(arch.conn, list(kinds), list(devices), since, until):
            groups.setdefault((kind, device, record), []).append((t, flatten(json.loads(fj))))
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for (kind, device, record), rows in groups.items():
        cols: dict[str, None] = {}
        for _, f in rows:
            for k in f:
                cols.setdefault(k, None)
        cols.pop("t_sc_s", None)
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(["t_sc_s", "device", "record", *cols])
        for t, f in rows:
            w.writerow(["" if t is None else repr(t), device, record, *("" if f.get(c) is None else f[c] for c in cols)])
        path = out / _name(kind, device, record)
        write_atomic(path, buf.getvalue().encode())
        written[path] = len(rows)
    return written


def run(args) -> int:
    if not args.db.is_file():
        print(f"export: {args.db}: no such archive", file=sys.stderr)
        return 1
    try:
        written = export(args.db, args.out, args.kind, args.device, args.since, args.until)
    except (ArchiveError, sqlite3.DatabaseError) as exc:
        print(f"export: {exc}", file=sys.stderr)
        return 1
    for path, n in written.items():
        print(f"{path}: {n} rows")
    if not written:
        print("export: no records match", file=sys.stderr)
    return 0
