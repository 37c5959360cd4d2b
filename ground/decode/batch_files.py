"""Downlinked batch files (``batch_NNNNNNNN.bin``): read a pass, check it, tabulate and plot it.

:func:`read_batches` decodes one file or a directory of them (:mod:`pygnc.formats.batch`)
and checks the set: duplicate files, sequence numbers missing or reused (per spacecraft
id), runs whose sequence ranges interleave, recovered or corrupt files, and gaps in time
per record kind.  A file whose header is damaged keeps its intact records (the decoder
resynchronises on the record frames) and its sequence number from its name; its spacecraft
and run are taken from its intact neighbours in sequence when they agree (else unknown), so
it never counts as another spacecraft's file nor makes intact files look missing.  Exactly repeated records (the
context records at the start of every
file, a stream replayed to a restarted writer, a file downlinked twice) are kept once.

:func:`write_products` writes what the spacecraft estimated in the replay's own layout
(``orbit.csv``, ``attitude.csv``, ``formation.csv``: :data:`ground.outputs.tables.COLUMNS`
plus the columns the batch records add), a CSV per other record kind, ``files.csv``,
``summary.json`` and plots (:mod:`ground.outputs.plots`).

Times: records carry the spacecraft clock; the clock map recorded in the same run maps
it to GPS time and UTC (without one, ``unix_time_s`` is the spacecraft clock and
``t_gps_s`` NaN, as in the replay).  GPS fixes carry their own GPS time.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import json
import math
import os
import struct
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ground.outputs import tables as tb
from pygnc.atomic import write_atomic
from pygnc.formats import batch as fmt
from pygnc.formats.common import open_regular_file, read_regular_file
from pygnc.partners import partner_name

#: A gap is reported when the spacing of a kind's records exceeds this many times its median.
GAP_FACTOR = 3.0
#: Gaps listed per kind and key (the rest counted).
MAX_GAPS_LISTED = 5


@dataclass
class BatchFileInfo:
    path: Path
    header: dict | None
    stats: fmt.RecordStats
    n_records: int
    part: bool  # a .part (incomplete) file
    duplicate_of: Path | None = None
    header_problem: str | None = None  # why the header is unreadable (None: intact)
    #: (spacecraft id, run) taken from the intact neighbours of a file with a damaged header
    inferred: tuple[int, int] | None = None
    inferred_from: list[str] = field(default_factory=list)

    @property
    def attributed(self) -> bool:
        """Whether the file's spacecraft and run are known (from its header or neighbours)."""
        return self.header is not None or self.inferred is not None

    @property
    def spacecraft_id(self) -> int:
        """Spacecraft id (-1: unknown)."""
        return self.header["spacecraft_id"] if self.header else self.inferred[0] if self.inferred else -1

    @property
    def run(self) -> int:
        """Run number (0: unknown, as the writer's own)."""
        return self.header["run"] if self.header else self.inferred[1] if self.inferred else 0

    @property
    def sequence(self) -> int | None:
        return self.header["sequence"] if self.header else fmt.sequence_of(self.path.name)


@dataclass
class Row:
    """One record, with where it came from."""

    file: BatchFileInfo
    record: fmt.Record


@dataclass
class BatchSet:
    files: list[BatchFileInfo] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # sequence breaks, reuse, corruption
    duplicate_records: int = 0
    gaps: list[dict] = field(default_factory=list)

    def by_kind(self) -> dict[str, list[Row]]:
        out: dict[str, list[Row]] = defaultdict(list)
        for r in self.rows:
            k = r.record.kind
            out[k.read_as if k else f"unknown_{r.record.code}"].append(r)  # (older layouts: as the current)
        return out


def _candidates(path: Path) -> tuple[list[Path], list[str]]:
    if path.is_file():
        return [path], []
    files, ignored = [], []
    for p in sorted(path.iterdir()):
        if not p.is_file():  # (a FIFO or a device named like a batch file is not one)
            continue
        if fmt.FILE_RE.match(p.name) or fmt.PART_RE.match(p.name):
            files.append(p)
        elif p.suffix == ".bin" and _head(p, len(fmt.MAGIC)) == fmt.MAGIC:
            files.append(p)  # renamed on the ground
        elif not p.name.startswith("."):
            ignored.append(p.name)
    return files, ignored


def _head(path: Path, n: int) -> bytes:
    """The first *n* bytes of the regular file at *path* (b"" if it cannot be read; never
    blocks)."""
    try:
        fd = open_regular_file(path)
    except OSError:
        return b""
    try:
        return os.read(fd, n)
    except OSError:
        return b""
    finally:
        os.close(fd)


def header_problem(data: bytes) -> str:
    """Why the batch header at the start of *data* is not valid."""
    if len(data) < fmt.HEADER_SIZE:
        return f"{len(data)} bytes, shorter than a header ({fmt.HEADER_SIZE})"
    if data[: len(fmt.MAGIC)] != fmt.MAGIC:
        return f"bad magic {data[: len(fmt.MAGIC)]!r}"
    version, size = struct.unpack_from("<HH", data, len(fmt.MAGIC))
    if version != fmt.VERSION:
        return f"layout version {version} (this ground build reads {fmt.VERSION}: update the ground tools)"
    if size != fmt.HEADER_SIZE:
        return f"header size {size}, expected {fmt.HEADER_SIZE}"
    return "header CRC mismatch"


def _attribute(bs: BatchSet) -> None:
    """Spacecraft and run of each file with a damaged header, from the nearest intact files
    before and after it in sequence, when they agree."""
    intact = sorted((f for f in bs.files if f.header is not None and f.duplicate_of is None), key=lambda f: f.sequence)
    for f in bs.files:
        if f.header is not None or f.duplicate_of is not None or f.sequence is None:
            continue
        before = [g for g in intact if g.sequence < f.sequence]
        after = [g for g in intact if g.sequence > f.sequence]
        neighbours = ([before[-1]] if before else []) + ([after[0]] if after else [])
        owners = {(g.spacecraft_id, g.run) for g in neighbours}
        if len(owners) == 1:
            f.inferred = owners.pop()
            f.inferred_from = [g.path.name for g in neighbours]


def read_batches(path: Path) -> BatchSet:
    """Decode and check every batch file at *path* (a file or a directory); never raises on
    bad bytes (OSError for an unreadable path)."""
    out = BatchSet()
    paths, out.ignored = _candidates(Path(path))
    seen: dict[bytes, Path] = {}
    for p in paths:
        try:  # a file swapped for a FIFO since it was listed: never waited on
            data = read_regular_file(p)
        except OSError:
            out.ignored.append(p.name)
            continue
        bf = fmt.decode_batch(data)
        info = BatchFileInfo(
            p,
            bf.header,
            bf.stats,
            len(bf.records),
            part=p.name.endswith(fmt.PART_SUFFIX),
            header_problem=None if bf.header is not None else header_problem(data),
        )
        digest = hashlib.sha256(data).digest()
        if digest in seen:
            info.duplicate_of = seen[digest]
            out.files.append(info)
            continue
        seen[digest] = p
        out.files.append(info)
        out.rows.extend(Row(info, r) for r in bf.records)
    _attribute(out)
    _check_files(out)
    _dedupe(out)
    _find_gaps(out)
    return out


def _gaps_text(order: list[int], present: Iterable[int] = ()) -> str:
    """The numbers missing between consecutive ones of *order* (sorted), less those in
    *present*, as ``5-9, 12``: built from the gaps' ends, never number by number - a damaged
    file's name may put billions of numbers between two files."""
    spans = []
    others = sorted(present)
    for a, b in zip(order, order[1:]):
        lo = a + 1
        for n in others[bisect.bisect_right(others, a) : bisect.bisect_left(others, b)]:
            if lo <= n - 1:
                spans.append((lo, n - 1))
            lo = n + 1
        if lo <= b - 1:
            spans.append((lo, b - 1))
    return ", ".join(f"{x}" if x == y else f"{x}-{y}" for x, y in spans)


def _check_files(bs: BatchSet) -> None:
    for f in bs.files:
        name = f.path.name
        if f.duplicate_of is not None:
            bs.problems.append(f"{name}: identical to {f.duplicate_of.name} (counted once)")
            continue
        if f.header is None:
            owner = (
                f"spacecraft {f.spacecraft_id}, run {f.run} taken from its neighbours ({', '.join(f.inferred_from)})"
                if f.inferred
                else "its spacecraft and run unknown (sequence from its name)"
                if f.sequence is not None
                else "its spacecraft, run and sequence unknown"
            )
            kept = f"{f.n_records} intact records kept" if f.n_records else "no intact record in it"
            bs.problems.append(f"{name}: header unreadable ({f.header_problem}): {owner}; {kept}")
        if f.part or (f.header and f.header["flags"] & fmt.FILE_OPEN):
            bs.problems.append(f"{name}: incomplete (still being written when copied)")
        if f.header and f.header["flags"] & fmt.FILE_RECOVERED:
            bs.problems.append(
                f"{name}: recovered after a crash or power cut ({f.header['skipped_bytes']} bytes "
                "of a torn tail dropped on board)"
            )
        s = f.stats
        if s.bytes_skipped or s.records_bad:
            bs.problems.append(
                f"{name}: {s.bytes_skipped} bytes skipped, {s.records_bad} corrupt records"
                + (", torn tail" if s.torn_tail else "")
            )
        elif f.header and not f.part and not f.header["flags"] & fmt.FILE_OPEN and f.header["records"] != f.n_records:
            bs.problems.append(f"{name}: header says {f.header['records']} records, {f.n_records} decoded")
        if s.unknown_kind:
            bs.problems.append(
                f"{name}: {s.unknown_kind} records of kinds this ground build does not know (update the ground tools)"
            )
    # Sequence numbers, per spacecraft id.  A file whose owner is unknown (damaged header)
    # is no spacecraft's, but its sequence number (from its name) is not missing.
    by_sc: dict[int, list[BatchFileInfo]] = defaultdict(list)
    unowned: set[int] = set()
    for f in bs.files:
        if f.duplicate_of is None and f.sequence is not None:
            if f.attributed:
                by_sc[f.spacecraft_id].append(f)
            else:
                unowned.add(f.sequence)
    if not by_sc and unowned:
        missing = _gaps_text(sorted(unowned))
        if missing:
            bs.problems.append(f"missing batch files (sequence numbers, from the names): {missing}")
    for sc, files in by_sc.items():
        who = f"spacecraft {sc}: " if len(by_sc) > 1 else ""
        seqs: dict[int, list[BatchFileInfo]] = defaultdict(list)
        for f in files:
            seqs[f.sequence].append(f)
        for s, fs in sorted(seqs.items()):
            if len(fs) > 1:
                bs.problems.append(
                    f"{who}sequence {s} appears in {len(fs)} different files "
                    f"({', '.join(x.path.name for x in fs)}; runs {sorted({x.run for x in fs})}): "
                    "the writer's sequence state was reset"
                )
        missing = _gaps_text(sorted(seqs), unowned)
        if missing:
            bs.problems.append(f"{who}missing batch files (sequence numbers): {missing}")
        runs: dict[int, list[int]] = defaultdict(list)
        for f in files:
            runs[f.run].append(f.sequence)
        spans = sorted((min(v), max(v), r) for r, v in runs.items())
        for (a0, a1, ra), (b0, b1, rb) in zip(spans, spans[1:]):
            if b0 <= a1:
                (r1, s1), (r2, s2) = sorted([(ra, f"{a0}-{a1}"), (rb, f"{b0}-{b1}")])
                bs.problems.append(f"{who}runs {r1} and {r2} interleave (sequences {s1} and {s2})")


def _dedupe(bs: BatchSet) -> None:
    seen: set = set()
    kept = []
    for row in bs.rows:
        key = (row.file.spacecraft_id, row.file.run, row.record.raw)
        if key in seen:
            kind = row.record.kind
            if kind is None or not kind.context:
                bs.duplicate_records += 1
            continue
        seen.add(key)
        kept.append(row)
    bs.rows = kept


def _key_of(row: Row):
    kind = row.record.kind
    if kind is None:
        return None
    return kind.key_of(row.record.values())


def _find_gaps(bs: BatchSet) -> None:
    groups: dict[tuple, list[float]] = defaultdict(list)
    for row in bs.rows:
        kind = row.record.kind
        if kind is None or kind.period_s is None or kind.context or not kind.regular:
            continue
        if kind.read_as in ESTIMATE_TABLES and row.record.values()["flags"] & 1:
            continue  # propagated estimates follow the wall clock, not the data
        key = _key_of(row)
        if kind.key == "peer_id":  # (a partner, as written everywhere: 0x4B)
            key = partner_name(key)
        groups[(kind.read_as, key, row.file.run)].append(row.record.t_sc_s)
    for (name, key, run), ts in sorted(groups.items(), key=lambda kv: str(kv[0])):
        t = np.unique(np.asarray(ts))
        if t.size < 3:
            continue
        dt = np.diff(t)
        med = float(np.median(dt))
        idx = np.flatnonzero(dt > GAP_FACTOR * med) if med > 0 else np.zeros(0, int)
        for n, i in enumerate(idx):
            bs.gaps.append(
                {
                    "kind": name,
                    "key": key,
                    "run": run,
                    "from_t_sc_s": float(t[i]),
                    "to_t_sc_s": float(t[i + 1]),
                    "gap_s": float(dt[i]),
                    "median_spacing_s": med,
                    "listed": n < MAX_GAPS_LISTED,
                }
            )


# --------------------------------------------------------------------------- time
class RunClocks:
    """Spacecraft time -> GPS / UTC per spacecraft and run, from the clock_map records of
    that spacecraft's run (never another spacecraft's: two runs of one number differ)."""

    def __init__(self, rows: list[Row]):
        from pygnc.processors import clock_map_from_body

        latest: dict[tuple[int, int], tuple[float, dict]] = {}
        for row in rows:
            if row.record.code == fmt.KINDS_BY_NAME["clock_map"].code:
                v = row.record.values()
                key = (row.file.spacecraft_id, row.file.run)
                if key not in latest or row.record.t_sc_s >= latest[key][0]:
                    latest[key] = (row.record.t_sc_s, v)
        self.maps = {key: clock_map_from_body(v) for key, (_, v) in latest.items()}

    def times(self, key: tuple[int, int], t_sc_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(t_gps_s, unix_time_s) of spacecraft times of *key* (spacecraft id, run); without
        a map NaN and the spacecraft clock."""
        from pygnc.timebase import utc_unix_from_gps

        t_sc_s = np.asarray(t_sc_s, dtype=float)
        cm = self.maps.get(key)
        if cm is None:
            return np.full(t_sc_s.shape, np.nan), t_sc_s.copy()
        t_gps = np.asarray(cm.gps_from_sc(t_sc_s), dtype=float)
        return t_gps, np.asarray(utc_unix_from_gps(t_gps), dtype=float)


# --------------------------------------------------------------------------- tables
def _bodies(rows: list[Row], clocks: RunClocks) -> list[dict]:
    """Decoded records as estimate-message-like bodies with the time columns filled."""
    out = []
    for row in rows:
        v = row.record.values()
        t_gps, unix = clocks.times((row.file.spacecraft_id, row.file.run), np.array([row.record.t_sc_s]))
        v.update(
            t_sc_s=row.record.t_sc_s,
            t_gps_s=float(t_gps[0]),
            unix_time_s=float(unix[0]),
            spacecraft_id=row.file.spacecraft_id,
            run=row.file.run,
            sequence=row.file.sequence if row.file.sequence is not None else -1,
        )
        out.append(v)
    return out


def _sorted_rows(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (r.file.spacecraft_id, r.file.run, r.record.t_sc_s, r.file.sequence or 0))


def orbit_table(bodies: list[dict]) -> dict:
    from pygnc import frames

    _words(bodies)
    for b in bodies:
        flags = int(b["flags"])
        b["propagated"] = bool(flags & 1)
        if math.isfinite(b["t_gps_s"]):
            r_g, v_g = frames.itrs_to_gcrs(np.asarray(b["r_ecef_m"]), np.asarray(b["v_ecef_m_s"]), b["t_gps_s"])
        else:
            r_g = v_g = np.full(3, np.nan)
        b["r_gcrs_m"], b["v_gcrs_m_s"] = list(r_g), list(v_g)
    t = tb.orbit_table(bodies)
    return _extra(t, bodies, EXTRA_COLUMNS["orbit"])


def _words(bodies: list[dict]) -> None:
    """Each record's quality code as its word (empty: not recorded)."""
    for b in bodies:
        b["quality"] = fmt.quality_word(b.get("quality"))


def attitude_table(bodies: list[dict]) -> dict:
    _words(bodies)
    for b in bodies:
        flags = int(b["flags"])
        q = np.asarray(b["q_body_to_gcrs"], dtype=float)
        n = np.linalg.norm(q)
        b["q_body_to_gcrs"] = list(q / n) if n > 0 else list(q)
        b.update(
            propagated=bool(flags & 1),
            valid_attitude=bool(flags & 2),
            has_position=bool(flags & 4),
            in_eclipse=bool(flags & 8),
            sigma_bias_rad_s=b["sigma_bias_rad_s"],
        )
    t = tb.attitude_table(bodies)
    return _extra(t, bodies, EXTRA_COLUMNS["attitude"])


def formation_table(bodies: list[dict]) -> dict:
    _words(bodies)
    for b in bodies:
        flags = int(b["flags"])
        b.update(propagated=bool(flags & 1), acquiring=bool(flags & 2), ambiguous=bool(flags & 4))
    t = tb.formation_table(bodies)
    return _extra(t, bodies, EXTRA_COLUMNS["formation"])


def partner_orbit_table(bodies: list[dict]) -> dict:
    for b in bodies:
        b["propagated"] = bool(int(b["flags"]) & 1)
    t = tb.partner_orbit_table(bodies)
    return _extra(t, bodies, EXTRA_COLUMNS["partner_orbit"])


#: Columns a downlinked estimate table has after the replay's (see docs/interface.md): every
#: flag bit by name and the record's ``flags`` as it came down (bits this build does not
#: name included), then where the record came from.
EXTRA_COLUMNS = {
    "orbit": ("propagated", "flags", "spacecraft_id", "run", "sequence"),
    "attitude": ("sun_faces_used", "propagated", "flags", "spacecraft_id", "run", "sequence"),
    "formation": (
        "sigma_los_m",
        "sigma_range_bias_m",
        "propagated",
        "acquiring",
        "ambiguous",
        "flags",
        "spacecraft_id",
        "run",
        "sequence",
    ),
    "partner_orbit": ("propagated", "flags", "spacecraft_id", "run", "sequence"),
}
ESTIMATE_TABLES = {
    "orbit": orbit_table,
    "attitude": attitude_table,
    "formation": formation_table,
    "partner_orbit": partner_orbit_table,
}


#: Values of the extra columns a body may lack (the live station's estimates name no spacecraft).
_EXTRA_DEFAULTS = {"spacecraft_id": -1}


def _extra(table: dict, bodies: list[dict], names) -> dict:
    for n in names:
        vals = [b[n] if n in b or n not in _EXTRA_DEFAULTS else _EXTRA_DEFAULTS[n] for b in bodies]
        table[n] = (
            np.asarray(vals, dtype=np.int64 if isinstance(vals[0], (bool, int)) else float) if vals else np.zeros(0)
        )
    return table


def generic_table(kind: fmt.RecordKind | None, rows: list[Row], clocks: RunClocks) -> dict:
    """Columns spacecraft_id, run, sequence, t_sc_s, t_gps_s, unix_time_s, utc, then the
    kind's fields (3-vectors as _x/_y/_z, others _0.._n-1); unknown kinds: the payload in hex."""
    from pygnc.timebase import utc_unix_from_gps

    t_sc = np.array([r.record.t_sc_s for r in rows], dtype=float)
    runs = np.array([r.file.run for r in rows], dtype=np.int64)
    ids = np.array([r.file.spacecraft_id for r in rows], dtype=np.int64)
    t_gps = np.full(t_sc.shape, np.nan)
    unix = t_sc.copy()
    for sc, run in {(int(a), int(b)) for a, b in zip(ids, runs)}:
        sel = (ids == sc) & (runs == run)
        t_gps[sel], unix[sel] = clocks.times((sc, run), t_sc[sel])
    values = [r.record.values() for r in rows] if kind is not None else []
    if kind is not None and kind.name == "gps_fix" and values:
        # A fix knows its own GPS time (a peer's fix is stamped with the peer's clock).
        t_gps = np.array([v["t_gps_s"] for v in values], dtype=float)
        unix = np.asarray(utc_unix_from_gps(t_gps), dtype=float)
    out = {
        "spacecraft_id": ids,
        "run": runs,
        "sequence": np.array([r.file.sequence or -1 for r in rows], dtype=np.int64),
        "t_sc_s": t_sc,
        "t_gps_s": t_gps,
        "unix_time_s": unix,
        "utc": tb.iso_utc(unix),
    }
    if kind is None:
        out["kind_code"] = np.array([r.record.code for r in rows], dtype=np.int64)
        out["payload_hex"] = np.array([r.record.payload.hex() for r in rows])
        return out
    for f in kind.fields:
        if f.name == "t_gps_s" and kind.name == "gps_fix":
            continue
        col = [v[f.name] for v in values]
        if f.n_values > 1:
            arr = np.asarray(col, dtype=float).reshape(len(rows), f.n_values)
            names = (
                [f"{f.name}_{a}" for a in "xyz"]
                if f.n_values == 3
                else [f"{f.name}_{a}" for a in "wxyz"]
                if f.name.startswith("q_") and f.n_values == 4
                else [f"{f.name}_{j}" for j in range(f.n_values)]
            )
            for j, n in enumerate(names):
                out[n] = arr[:, j] if f.scale is not None or f.code in "efd" else arr[:, j].astype(np.int64)
        elif f.code == "s":
            out[f.name] = np.array(col, dtype=object)
        elif f.code == "y":
            out[f.name] = np.array([bytes(c).hex() for c in col], dtype=object)
        else:
            out[f.name] = np.asarray(col, dtype=float if f.scale is not None or f.code in "efd" else np.int64)
    return out


def build_tables(bs: BatchSet) -> dict[str, dict]:
    """kind name -> column table; estimates in the replay's layout (plus extra columns)."""
    clocks = RunClocks(bs.rows)
    out = {}
    for name, rows in bs.by_kind().items():
        rows = _sorted_rows(rows)
        if name in ESTIMATE_TABLES:
            out[name] = ESTIMATE_TABLES[name](_bodies(rows, clocks))
        else:
            out[name] = generic_table(fmt.KINDS_BY_NAME.get(name), rows, clocks)
    for name in ESTIMATE_TABLES:  # always present, possibly empty
        if name not in out:
            t = tb.empty_table(name)
            for c in EXTRA_COLUMNS[name]:
                t[c] = np.zeros(0)
            out[name] = t
    return out


def files_table(bs: BatchSet) -> dict:
    def col(fn, dtype=object):
        return np.array([fn(f) for f in bs.files], dtype=dtype)

    h = lambda f, k, d=math.nan: f.header[k] if f.header else d  # noqa: E731
    return {
        "file": col(lambda f: f.path.name),
        "spacecraft_id": col(lambda f: f.spacecraft_id, np.int64),
        "run": col(lambda f: f.run, np.int64),
        "sequence": col(lambda f: f.sequence or -1, np.int64),
        "t_first_sc_s": col(lambda f: h(f, "t_first_sc_s"), float),
        "t_last_sc_s": col(lambda f: h(f, "t_last_sc_s"), float),
        "records": col(lambda f: f.n_records, np.int64),
        "flags": col(lambda f: " ".join(f.header["flag_names"]) if f.header else "no_header"),
        "header_problem": col(lambda f: f.header_problem or ""),
        "run_from": col(lambda f: "header" if f.header else "neighbours" if f.inferred else "unknown"),
        "bytes": col(lambda f: f.stats.bytes_total + (fmt.HEADER_SIZE if f.header else 0), np.int64),
        "bytes_skipped": col(lambda f: f.stats.bytes_skipped, np.int64),
        "records_bad": col(lambda f: f.stats.records_bad, np.int64),
        "duplicate_of": col(lambda f: f.duplicate_of.name if f.duplicate_of else ""),
    }


def write_table(table: dict, path: Path) -> int:
    names, cols = tb.csv_cells(table)
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(names)
    w.writerows(zip(*cols))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buf.getvalue().encode())
    return len(cols[0]) if cols else 0


# --------------------------------------------------------------------------- report
def report_lines(bs: BatchSet) -> list[str]:
    kinds = bs.by_kind()
    runs = sorted({f.run for f in bs.files if f.duplicate_of is None})
    seqs = [f.sequence for f in bs.files if f.sequence is not None and f.duplicate_of is None]
    lines = [
        f"batch files: {len(bs.files)}"
        + (f" (sequence {min(seqs)}..{max(seqs)})" if seqs else "")
        + f", runs {', '.join(map(str, runs)) or '-'}; {len(bs.rows)} records"
        + (f" ({bs.duplicate_records} repeated records counted once)" if bs.duplicate_records else "")
    ]
    lines.append("  records: " + (", ".join(f"{k} {len(v)}" for k, v in sorted(kinds.items())) or "none"))
    for p in bs.problems:
        lines.append(f"  ! {p}")
    listed = [g for g in bs.gaps if g["listed"]]
    for g in listed:
        key = "" if g["key"] is None else f" (key {g['key']})"
        lines.append(
            f"  gap: {g['kind']}{key} run {g['run']}: {g['gap_s']:.0f} s without records from "
            f"t_sc {g['from_t_sc_s']:.0f} (median spacing {g['median_spacing_s']:.0f} s)"
        )
    if len(bs.gaps) > len(listed):
        lines.append(f"  ... {len(bs.gaps) - len(listed)} more gaps (summary.json)")
    if bs.ignored:
        lines.append(
            f"  ignored (not batch files): {', '.join(bs.ignored[:10])}" + (" ..." if len(bs.ignored) > 10 else "")
        )
    return lines


def summary(bs: BatchSet, tables: dict[str, dict]) -> dict:
    return {
        "format_version": 1,
        "files": len(bs.files),
        "runs": sorted({f.run for f in bs.files if f.duplicate_of is None}),
        "records": {k: len(v) for k, v in sorted(bs.by_kind().items())},
        "duplicate_records": bs.duplicate_records,
        "problems": bs.problems,
        "gaps": bs.gaps,
        "rows": {k: int(len(next(iter(t.values())))) if t else 0 for k, t in tables.items()},
    }


# --------------------------------------------------------------------------- outputs
def write_products(bs: BatchSet, out: Path, plots: bool = True, csv_base: Path | None = None) -> list[Path]:
    """CSVs (``<kind>.csv`` and ``files.csv`` in *out*, or ``csv_base`` + ``_<kind>``),
    ``summary.json`` and plots; returns the paths written."""
    tables = build_tables(bs)
    written = []

    def name(kind: str) -> Path:
        if csv_base is not None:
            return (
                csv_base
                if kind == "files"
                else csv_base.with_name(f"{csv_base.stem}_{kind}{csv_base.suffix or '.csv'}")
            )
        return out / f"{kind}.csv"

    write_table(files_table(bs), name("files"))
    written.append(name("files"))
    for kind, t in sorted(tables.items()):
        write_table(t, name(kind))
        written.append(name(kind))
    if csv_base is None:
        p = out / "summary.json"
        write_atomic(p, (json.dumps(summary(bs, tables), indent=2, default=_json_default) + "\n").encode())
        written.append(p)
        if plots:
            written.extend(draw_plots(tables, bs, out / "plots"))
    return written


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o).__name__)


def _stack(t: dict, fmt_: str, axes="xyz") -> np.ndarray:
    return np.stack([t[fmt_.format(a)] for a in axes], axis=1)


def draw_plots(tables: dict[str, dict], bs: BatchSet, d: Path) -> list[Path]:
    """What the spacecraft estimated, over time, with its own ±3σ (:mod:`ground.outputs.plots`)."""
    from ground.outputs import plots as pl
    from ground.outputs import residuals as rs

    o, a, f = tables["orbit"], tables["attitude"], tables["formation"]
    o = {k: v[o["propagated"] == 0] for k, v in o.items()} if o["unix_time_s"].size else o
    t_all = [t["unix_time_s"] for t in (o, a, f) if t["unix_time_s"].size]
    if not t_all:
        return []
    axis = pl.TimeAxis(min(float(np.nanmin(t)) for t in t_all))
    out = []
    if o["unix_time_s"].size:
        out.append(
            pl.time_series(
                d / "orbit_sigma.png",
                axis(o["unix_time_s"]),
                np.column_stack([_stack(o, "sigma_{}_ecef_m"), _stack(o, "sigma_v{}_ecef_m_s") * 100.0]),
                "Orbit 1σ as estimated on board, ECEF axes",
                ["x", "y", "z", "vx", "vy", "vz"],
                pl.POS_VEL_UNITS,
                axis.label,
                logy=True,
                quality=o.get("quality"),
            )
        )
        fixes = _fix_bodies(tables.get("gps_fix"))
        g = rs.gps_fix_residuals(o, fixes)
        if g["t_gps_s"].size:
            out.append(
                pl.residuals(
                    d / "gps_fix_residuals.png",
                    axis(g["unix_time_s"]),
                    np.column_stack([g["dr_m"], g["dv_m_s"] * 100.0]),
                    "Downlinked GPS fixes minus the on-board orbit estimate (Hermite between records), with the "
                    "fix's ±3σ",
                    ["x", "y", "z", "vx", "vy", "vz"],
                    pl.POS_VEL_UNITS,
                    axis.label,
                    sigma=np.column_stack([g["sigma_r_m"], g["sigma_v_m_s"] * 100.0]),
                )
            )
    if a["unix_time_s"].size:
        sel = a["valid_attitude"] == 1
        ta = axis(a["unix_time_s"])
        out.append(
            pl.time_series(
                d / "attitude_sigma.png",
                ta,
                np.degrees(_stack(a, "sigma_att_{}_rad")),
                "Attitude 1σ as estimated on board, body axes",
                ["x", "y", "z"],
                "deg",
                axis.label,
                logy=True,
                quality=a.get("quality"),
            )
        )
        out.append(
            pl.time_series(
                d / "gyro_bias.png",
                ta,
                np.degrees(_stack(a, "gyro_bias_{}_rad_s")),
                "Gyro bias estimate with its ±3σ, body axes",
                ["x", "y", "z"],
                "deg/s",
                axis.label,
                sigma=np.degrees(_stack(a, "sigma_gyro_bias_{}_rad_s")),
                quality=a.get("quality"),
            )
        )
        out.append(
            pl.time_series(
                d / "body_rate.png",
                ta,
                np.degrees(_stack(a, "rate_{}_body_rad_s")),
                f"Body rate estimate ({int(sel.sum())} of {sel.size} records with a valid attitude)",
                ["x", "y", "z"],
                "deg/s",
                axis.label,
            )
        )
    if f["unix_time_s"].size:
        fsel = f["propagated"] == 0
        fd = {k: v[fsel] for k, v in f.items()}
        for p in np.unique(fd["peer_id"].astype(int)):
            sel = fd["peer_id"].astype(int) == p
            out.append(
                pl.time_series(
                    d / f"formation_{partner_name(p)}.png",
                    axis(fd["unix_time_s"][sel]),
                    np.column_stack([_stack(fd, "d{}_ecef_m")[sel], fd["range_bias_m"][sel]]),
                    f"Partner {partner_name(p)}: relative position (ECEF) and range bias as estimated on board, "
                    "with ±3σ",
                    ["dx", "dy", "dz", "range bias"],
                    "m",
                    axis.label,
                    sigma=np.column_stack([_stack(fd, "sigma_d{}_m")[sel], fd["sigma_range_bias_m"][sel]]),
                    quality=None if fd.get("quality") is None else fd["quality"][sel],
                )
            )
        r = rs.range_residuals(fd, range_bodies(tables.get("range")))
        est = rs.estimated(r)  # not against a range-only partner's prior
        if est.any():
            conv = tb.sc_to_unix(fd)
            out.append(
                pl.residuals(
                    d / "range_residuals.png",
                    axis(conv(r["t_sc_s"][est])),
                    r["residual_m"][est][:, None],
                    "Downlinked ranges minus |Δr| - bias of the on-board estimate (not its prior)",
                    ["range"],
                    "m",
                    axis.label,
                )
            )
    return out


def _fix_bodies(t: dict | None) -> list[dict]:
    if not t or not t["t_sc_s"].size:
        return []
    n = t["t_sc_s"].size
    return [
        {
            "valid": bool(int(t["flags"][i]) & 1),
            "peer_id": int(t["peer_id"][i]),
            "t_gps_s": t["t_gps_s"][i],
            "unix_time_s": t["unix_time_s"][i],
            "pos_ecef_m": [t[f"pos_ecef_m_{a}"][i] for a in "xyz"],
            "vel_ecef_m_s": [t[f"vel_ecef_m_s_{a}"][i] for a in "xyz"],
            "pos_sigma_m": [t[f"pos_sigma_m_{a}"][i] for a in "xyz"],
            "vel_sigma_m_s": [t[f"vel_sigma_m_s_{a}"][i] for a in "xyz"],
        }
        for i in range(n)
    ]


def range_bodies(t: dict | None) -> list[dict]:
    if not t or not t["t_sc_s"].size:
        return []
    return [
        {
            "valid": bool(int(t["flags"][i]) & 1),
            "peer_id": int(t["peer_id"][i]),
            "t_sc_s": t["t_sc_s"][i],
            "range_m": t["range_m"][i],
        }
        for i in range(t["t_sc_s"].size)
    ]
