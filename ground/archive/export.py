"""``python -m ground export DB OUT_DIR``: CSV files from an archive (``ground archive``).

One directory per source (what produced the records: ``ground_replay``,
``onboard_downlink``, ``onboard_buslog``, ...) and in it one file per (kind, device, record),
named ``<kind>[__<device>][__<record>].csv``, rows in (spacecraft, run, spacecraft time)
order: ``t_sc_s, utc, utc_from, source, spacecraft_id, run, device, record`` then every
field, flattened: a list of numbers becomes ``name_0, name_1, ...``, a list of text one cell
joined with ``;``, anything nested its JSON, a partner's id ``0x4B``.  Empty cells are
values the device did not send (or NaN); an empty ``spacecraft_id`` or ``run``: the archive
does not know it (the file did not say; ``ground archive --spacecraft`` names it).

``utc`` (ISO 8601) is the row's time in UTC and ``utc_from`` says where it comes from, in
this order: ``gps_time`` - the row's own GPS time (``t_gps_s``: a GPS fix, an estimate its
producer mapped); ``clock_map_0x<ID>_run_<N>`` (``clock_map_run_<N>`` for a spacecraft the
archive does not know) - its spacecraft time through the latest clock map the archive holds
of the same spacecraft and run, never another spacecraft's; ``unix_time_s`` - the UTC its
producer wrote (a row without ``t_gps_s``, of no spacecraft and run with a clock map);
``spacecraft_clock`` - no clock map: the spacecraft clock taken as UTC (as the replay and
decode do; it is off by the clock's own error); ``none`` - the row has no time.  A row's own
``utc``, ``spacecraft_id`` and ``run`` fields are replaced by these columns.

Filters: ``--source``, ``--kind``, ``--device``, ``--spacecraft`` (each repeatable),
``--since``/``--until`` (spacecraft time, s).  Files are written atomically.  Exit status: 0 written, 1 archive
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

from ground.archive.sources import SOURCES
from ground.archive.store import Archive, ArchiveError

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
    p.add_argument(
        "--spacecraft", action="append", default=[], metavar="ID", help="only this spacecraft, e.g. 0x4A (repeatable)"
    )
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


class Clocks:
    """The latest clock map of each spacecraft and run in the archive (spacecraft clock ->
    GPS time): a spacecraft's rows are timed with its own run's map only."""

    def __init__(self, conn: sqlite3.Connection):
        from pygnc.timebase import ClockMap

        latest: dict[tuple, tuple[float, ClockMap]] = {}
        marks = ",".join("?" * len(CLOCK_MAP_KINDS))
        for sc, run, t, fj in conn.execute(
            f"SELECT spacecraft_id, run, t_sc_s, fields_json FROM records WHERE kind IN ({marks}) ORDER BY record_id",
            CLOCK_MAP_KINDS,
        ):
            f = json.loads(fj)
            values = [_finite(f.get(k)) for k in ("gps_minus_sc_s", "drift", "t_ref_sc_s")]
            if run is None or None in values:
                continue
            t = -math.inf if t is None else t  # no time: the last loaded counts as the latest
            if (sc, run) not in latest or t >= latest[(sc, run)][0]:
                latest[(sc, run)] = (
                    t,
                    ClockMap(*values, int(f.get("n_pairs") or 0), _finite(f.get("residual_rms_s")) or 0.0),
                )
        self.maps = {key: cm for key, (_, cm) in latest.items()}

    def utc(
        self, fields: dict, t_sc_s: float | None, run: int | None, spacecraft_id: int | None = None
    ) -> tuple[float | None, str]:
        """(UTC POSIX seconds or None, where it comes from) of one row (module docstring)."""
        from pygnc.timebase import utc_unix_from_gps

        t_gps = _finite(fields.get("t_gps_s"))
        if t_gps is not None:
            return float(utc_unix_from_gps(t_gps)), "gps_time"
        key = (spacecraft_id, run)
        if t_sc_s is not None and run is not None and key in self.maps:
            label = f"clock_map_run_{run}" if spacecraft_id is None else f"clock_map_0x{spacecraft_id:02X}_run_{run}"
            return float(utc_unix_from_gps(self.maps[key].gps_from_sc(t_sc_s))), label
        unix = _finite(fields.get("unix_time_s"))
        if unix is not None and "t_gps_s" not in fields:
            return unix, "unix_time_s"
        if t_sc_s is not None:
            return t_sc_s, "spacecraft_clock"
        return None, "none"


def query(conn: sqlite3.Connection, kinds, devices, since, until, sources=(), spacecraft=()):
    where, params = [], []
    for column, values in (("source", sources), ("kind", kinds), ("device", devices), ("spacecraft_id", spacecraft)):
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
        "SELECT source, kind, device, record, t_sc_s, fields_json, spacecraft_id, run FROM records"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY source, kind, device, record, spacecraft_id IS NOT NULL, spacecraft_id, run, t_sc_s, record_id"
    )
    return conn.execute(sql, params)


def export(
    db: Path, out: Path, kinds=(), devices=(), since=None, until=None, sources=(), spacecraft=()
) -> dict[Path, int]:
    """Write the CSV files; returns {path: rows}.  *spacecraft*: radio ids to keep."""
    from ground.outputs.tables import iso_utc
    from pygnc.atomic import write_atomic

    groups: dict[tuple, list] = {}
    with Archive(db) as arch:
        clocks = Clocks(arch.conn)
        for source, kind, device, record, t, fj, sc, run in query(
            arch.conn, list(kinds), list(devices), since, until, list(sources), list(spacecraft)
        ):
            fields = json.loads(fj)
            unix, utc_from = clocks.utc(fields, t, run, sc)
            groups.setdefault((source, kind, device, record), []).append((t, unix, utc_from, sc, run, flatten(fields)))
    written = {}
    for (source, kind, device, record), rows in groups.items():
        cols: dict[str, None] = {}
        for *_, f in rows:
            for k in f:
                cols.setdefault(k, None)
        for c in ("t_sc_s", "utc", "spacecraft_id", "run"):
            cols.pop(c, None)
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(["t_sc_s", "utc", "utc_from", "source", "spacecraft_id", "run", "device", "record", *cols])
        timed = [i for i, r in enumerate(rows) if r[1] is not None]
        utc = [""] * len(rows)
        for i, text in zip(timed, iso_utc([rows[i][1] for i in timed]).tolist()):
            utc[i] = text
        for (t, _, utc_from, sc, run, f), u in zip(rows, utc):
            w.writerow(
                [
                    "" if t is None else repr(t),
                    u,
                    utc_from,
                    source,
                    "" if sc is None else sc,
                    "" if run is None else run,
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
    if args.out.exists() and not args.out.is_dir():
        print(f"export: OUT_DIR {args.out} exists and is not a directory", file=sys.stderr)
        return 2
    if not args.db.is_file():
        print(f"export: {args.db}: no such archive", file=sys.stderr)
        return 1
    from pygnc.config import peer_id_key

    try:
        spacecraft = [peer_id_key(s) for s in args.spacecraft]
    except ValueError as exc:
        print(f"export: --spacecraft: {exc}", file=sys.stderr)
        return 2
    try:
        written = export(args.db, args.out, args.kind, args.device, args.since, args.until, args.source, spacecraft)
    except (ArchiveError, sqlite3.DatabaseError) as exc:
        print(f"export: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # OUT_DIR not writable, under a file, a full disk
        print(f"export: {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for path, n in written.items():
        print(f"{path}: {n} rows")
    if not written:
        print("export: no records match" + _what_there_is(args.db, args.kind), file=sys.stderr)
    return 0


def _what_there_is(db: Path, kinds) -> str:
    """What a filter that matched nothing could have named: the archive's kinds (when kinds
    were asked for), e.g. after a typo."""
    if not kinds:
        return ""
    try:
        conn = sqlite3.connect(Path(db).resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.DatabaseError:
        return ""
    try:
        have = [k for (k,) in conn.execute("SELECT DISTINCT kind FROM records ORDER BY kind")]
    except sqlite3.DatabaseError:
        return ""
    finally:
        conn.close()
    return f" (the archive's kinds: {', '.join(have) or 'none'})"
