"""``python -m ground export DB OUT_DIR``: CSV files from an archive (``ground archive``).

One directory per source (what produced the records: ``ground_replay``,
``onboard_downlink``, ``onboard_buslog``, ...) and in it one file per (kind, device, record),
named ``<kind>[__<device>][__<record>].csv``, rows in spacecraft-time order:
``t_sc_s, utc, utc_from, source, device, record`` then every field, flattened: a list of
numbers becomes ``name_0, name_1, ...``, a list of text one cell joined with ``;``, anything
nested its JSON, a partner's id ``0x4B``.  Empty cells are values the device did not send (or NaN).

``utc`` (ISO 8601) is the row's time in UTC and ``utc_from`` says where it comes from, in
this order: ``gps_time`` - the row's own GPS time (``t_gps_s``: a GPS fix, an estimate its
producer mapped); ``clock_map_run_<N>`` - its spacecraft time through the latest clock map
the archive holds for its run (the run from the row's ``run`` field, else from its file:
a bus log's or batch file's header); ``unix_time_s`` - the UTC its producer wrote (a row
without ``t_gps_s``, of no run with a clock map); ``spacecraft_clock`` - no clock map: the
spacecraft clock taken as UTC (as the replay and decode do; it is off by the clock's own
error); ``none`` - the row has no time.  A row's own ``utc`` field is replaced by this
column.

Filters: ``--source``, ``--kind``, ``--device`` (each repeatable), ``--since``/``--until``
(spacecraft time, s).  Files are written atomically.  Exit status: 0 written, 1 archive
unusable, 2 bad usage.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sqlite3
import sys
from pathlib import Path

from ground.archive import Archive, ArchiveError
from ground.archive_sources import SOURCES

#: Kinds whose records are clock maps (spacecraft clock -> GPS time), by source.
CLOCK_MAP_KINDS = ("clock_map", "batch_clock_map")


def add_arguments(p) -> None:
    p.add_argument("db", type=Path, help="SQLite archive written by 'ground archive'")
    p.add_argument("out", type=Path, help="directory for the CSV files")
    p.add_argument(
        "--source",
        action="append",
        default=[],
        choices=sorted(SOURCES),
        help="only records of this source (repeatable)",
    )
    p.add_argument("--kind", action="append", default=[], help="only this record kind (repeatable)")
    p.add_argument("--device", action="append", default=[], help="only this device (repeatable)")
    p.add_argument("--since", type=float, default=None, metavar="T_SC_S", help="from this spacecraft time")
    p.add_argument("--until", type=float, default=None, metavar="T_SC_S", help="up to this spacecraft time")


_PARTNER_FIELD = re.compile(r"^peer(\d+)?_id$")  # peer_id, a status file's peerK_id


def flatten(fields: dict) -> dict:
    """A record's fields as CSV cells (a partner's id written ``0x4B``: :mod:`pygnc.partners`)."""
    from pygnc.partners import partner_name

    out = {}
    for k, v in fields.items():
        if _PARTNER_FIELD.match(k) and isinstance(v, int) and not isinstance(v, bool):
            out[k] = partner_name(v) if v or k == "peer_id" else v  # (an empty status slot stays 0)
        elif isinstance(v, list):
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


def _finite(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _run_of(fields: dict, source_run: int | None) -> int | None:
    run = fields.get("run")
    return run if isinstance(run, int) and not isinstance(run, bool) and run > 0 else source_run


class Clocks:
    """The latest clock map of each run in the archive (spacecraft clock -> GPS time)."""

    def __init__(self, conn: sqlite3.Connection, source_runs: dict[int, int | None]):
        from pygnc.timebase import ClockMap

        latest: dict[int, tuple[float, ClockMap]] = {}
        marks = ",".join("?" * len(CLOCK_MAP_KINDS))
        for sid, t, fj in conn.execute(
            f"SELECT source_id, t_sc_s, fields_json FROM records WHERE kind IN ({marks}) ORDER BY record_id",
            CLOCK_MAP_KINDS,
        ):
            f = json.loads(fj)
            run = _run_of(f, source_runs.get(sid))
            values = [_finite(f.get(k)) for k in ("gps_minus_sc_s", "drift", "t_ref_sc_s")]
            if run is None or None in values:
                continue
            t = -math.inf if t is None else t  # no time: the last loaded counts as the latest
            if run not in latest or t >= latest[run][0]:
                latest[run] = (
                    t,
                    ClockMap(*values, int(f.get("n_pairs") or 0), _finite(f.get("residual_rms_s")) or 0.0),
                )
        self.maps = {run: cm for run, (_, cm) in latest.items()}

    def utc(self, fields: dict, t_sc_s: float | None, run: int | None) -> tuple[float | None, str]:
        """(UTC POSIX seconds or None, where it comes from) of one row (module docstring)."""
        from pygnc.timebase import utc_unix_from_gps

        t_gps = _finite(fields.get("t_gps_s"))
        if t_gps is not None:
            return float(utc_unix_from_gps(t_gps)), "gps_time"
        if t_sc_s is not None and run in self.maps:
            return float(utc_unix_from_gps(self.maps[run].gps_from_sc(t_sc_s))), f"clock_map_run_{run}"
        unix = _finite(fields.get("unix_time_s"))
        if unix is not None and "t_gps_s" not in fields:
            return unix, "unix_time_s"
        if t_sc_s is not None:
            return t_sc_s, "spacecraft_clock"
        return None, "none"


def query(conn: sqlite3.Connection, kinds, devices, since, until, sources=()):
    where, params = [], []
    for column, values in (("source", sources), ("kind", kinds), ("device", devices)):
        if values:
            where.append(f"{column} IN (%s)" % ",".join("?" * len(values)))
            params += list(values)
    if since is not None:
        where.append("t_sc_s >= ?")
        params.append(since)
    if until is not None:
        where.append("t_sc_s <= ?")
        params.append(until)
    sql = (
        "SELECT source_id, source, kind, device, record, t_sc_s, fields_json FROM records"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY source, kind, device, record, t_sc_s, record_id"
    )
    return conn.execute(sql, params)


def _source_runs(conn: sqlite3.Connection) -> dict[int, int | None]:
    out = {}
    for sid, meta in conn.execute("SELECT source_id, meta_json FROM sources"):
        run = json.loads(meta).get("run")
        out[sid] = run if isinstance(run, int) and not isinstance(run, bool) and run > 0 else None
    return out


def export(db: Path, out: Path, kinds=(), devices=(), since=None, until=None, sources=()) -> dict[Path, int]:
    """Write the CSV files; returns {path: rows}."""
    from ground.outputs.tables import iso_utc
    from pygnc.atomic import write_atomic

    groups: dict[tuple, list] = {}
    with Archive(db) as arch:
        runs = _source_runs(arch.conn)
        clocks = Clocks(arch.conn, runs)
        for sid, source, kind, device, record, t, fj in query(
            arch.conn, list(kinds), list(devices), since, until, list(sources)
        ):
            fields = json.loads(fj)
            unix, utc_from = clocks.utc(fields, t, _run_of(fields, runs.get(sid)))
            groups.setdefault((source, kind, device, record), []).append((t, unix, utc_from, flatten(fields)))
    written = {}
    for (source, kind, device, record), rows in groups.items():
        cols: dict[str, None] = {}
        for *_, f in rows:
            for k in f:
                cols.setdefault(k, None)
        for c in ("t_sc_s", "utc"):
            cols.pop(c, None)
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(["t_sc_s", "utc", "utc_from", "source", "device", "record", *cols])
        timed = [i for i, r in enumerate(rows) if r[1] is not None]
        utc = [""] * len(rows)
        for i, text in zip(timed, iso_utc([rows[i][1] for i in timed]).tolist()):
            utc[i] = text
        for (t, _, utc_from, f), u in zip(rows, utc):
            w.writerow(
                [
                    "" if t is None else repr(t),
                    u,
                    utc_from,
                    source,
                    device,
                    record,
                    *("" if f.get(c) is None else f[c] for c in cols),
                ]
            )
        path = out / re.sub(r"[^A-Za-z0-9_.-]+", "_", source) / _name(kind, device, record)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, buf.getvalue().encode())
        written[path] = len(rows)
    return written


def run(args) -> int:
    if not args.db.is_file():
        print(f"export: {args.db}: no such archive", file=sys.stderr)
        return 1
    try:
        written = export(args.db, args.out, args.kind, args.device, args.since, args.until, args.source)
    except (ArchiveError, sqlite3.DatabaseError) as exc:
        print(f"export: {exc}", file=sys.stderr)
        return 1
    for path, n in written.items():
        print(f"{path}: {n} rows")
    if not written:
        print("export: no records match", file=sys.stderr)
    return 0
