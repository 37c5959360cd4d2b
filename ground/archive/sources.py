"""What the archive can load: each kind of input turned into :class:`Record` objects.

A **reader** is a pair of functions registered under a source kind:

* ``detect(path, head) -> bool`` - is the file at *path* (first bytes *head*) of this kind?
* ``read(path, data) -> SourceRecords`` - decode the file's bytes; never raises on bad
  bytes (decoders resynchronise and count); raises ``ValueError`` only when the file is not
  of this kind at all, and :class:`MalformedInput` when it is but cannot be read as its
  kind says (a CSV, which has no framing to resynchronise on: the archive refuses the run).

Readers today: ``buslog`` (a run's ``bus.log``: every bus message, housekeeping readings
included), ``status`` (``pygnc_status.bin``), ``csv`` (what ``ground decode`` and
``ground replay`` write) and ``batch`` (the batch writer's downlink files: every record,
housekeeping readings decoded again from their bytes by the driver's codec).  More plug in
with :func:`register_reader` (see docs/ground_tools.md, "archive, export, upload").

Every record says what produced it (its **source**, :data:`SOURCES`): the ground replay,
the spacecraft's downlink, its bus log or status file, or the host's sense.bin and range
files.  A CSV's source and kind come from its columns, matched against the layouts the
tools declare (replay and decoded-batch tables, the decoded sense and range records), so a
replay's ``orbit.csv`` and a decoded downlink's ``orbit.csv`` never share a table.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: What produced a record: the archive's ``source`` column (docs/interface.md, "Archive").
SOURCES = {
    "ground_replay": "estimates computed on the ground by `ground replay` (its orbit, attitude, formation and "
    "range_residuals CSV)",
    "onboard_downlink": "what the spacecraft recorded in its batch files (the files, or the CSV `ground decode` "
    "writes from them)",
    "onboard_buslog": "bus messages of a run's bus.log (the log, or its `ground decode` CSV)",
    "onboard_status": "the status file (the file, or its `ground decode` CSV)",
    "host_sense": "sensor samples and own GPS fixes of a sense.bin (`ground decode` CSV)",
    "host_range": "ranges and GPS packets of range files (`ground decode` CSV; the packets are the own "
    "spacecraft's fixes, as decode reads them)",
    "csv": "a CSV of no layout the archive knows (kind `table`, device the file's stem)",
}


@dataclass
class Record:
    """One archived record.

    ``kind``: what it is (a bus message type such as ``hk_reading`` or ``orbit_estimate``,
    ``status``, ``sensor``, ...); ``device``: the housekeeping device name for device records,
    the producing task for other bus messages, the peer for peer records, else ``""``;
    ``record``: the device record (EMUS sentence name, OPC-N3 record) or ``""``; ``t_sc_s``:
    spacecraft time or None; ``fields``: the values (JSON-able, physical units, units in the
    names); ``raw``: the checksum-verified device bytes, if any; ``source``: what produced
    it (:data:`SOURCES`; empty: the reader's).  Whose it is - ``spacecraft_id`` and ``run`` -
    the archive takes from the record's own fields, else from its file (:func:`origin`).
    """

    kind: str
    t_sc_s: float | None
    fields: dict
    device: str = ""
    record: str = ""
    raw: bytes | None = None
    source: str = ""


class MalformedInput(Exception):
    """A file of the reader's kind that cannot be read as that kind says (a CSV row of
    another width, a bus message body that is not a JSON object): refused, never guessed at."""


@dataclass
class SourceRecords:
    records: Iterable[Record]
    stats: dict = field(default_factory=dict)  # decode statistics (skipped bytes, ...)
    meta: dict = field(default_factory=dict)  # e.g. the run number, the spacecraft id


#: The largest integer an SQLite INTEGER column holds.
_SQLITE_INT_MAX = 2**63 - 1


def _whole(v, lowest: int) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and lowest <= v <= _SQLITE_INT_MAX else None


def origin(fields: dict, meta: dict) -> tuple[int | None, int | None]:
    """(spacecraft id, run) of a record: its own fields' ``spacecraft_id`` / ``run`` (a
    decoded table's columns, a status's run), else its file's (*meta*: a batch or bus-log
    header, or what the operator said); None where unknown.  A spacecraft id of 0 is the
    flight's "not set" and is kept as such; a run is >= 1."""
    sc = _whole(fields.get("spacecraft_id"), 0)
    if sc is None:
        sc = _whole(meta.get("spacecraft_id"), 0)
    run = _whole(fields.get("run"), 1)
    if run is None:
        run = _whole(meta.get("run"), 1)
    return sc, run


@dataclass(frozen=True)
class Reader:
    kind: str
    detect: Callable[[Path, bytes], bool]
    read: Callable[[Path, bytes], SourceRecords]
    source: str  # of its records that name none


READERS: dict[str, Reader] = {}


def register_reader(
    kind: str,
    detect: Callable[[Path, bytes], bool],
    read: Callable[[Path, bytes], SourceRecords],
    source: str | None = None,
) -> None:
    """Add (or replace) the reader of source *kind*; readers are tried in registration order.
    *source*: what produced its records (default: *kind*), unless a record names its own."""
    READERS[kind] = Reader(kind, detect, read, source or kind)


def detect_kind(path: Path, head: bytes) -> str | None:
    for r in READERS.values():
        try:
            if r.detect(path, head):
                return r.kind
        except Exception:
            continue
    return None


def jsonable(value):
    """*value* with NaN/inf as None, bytes as hex, tuples as lists (JSON-safe)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def _num(x):
    """*x* as a finite float, else None (an integer past the float range too)."""
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except OverflowError:
        return None
    return v if math.isfinite(v) else None


# -- bus log ---------------------------------------------------------------------------------------


def _message_record(msg) -> Record:
    body = msg.body
    t = _num(body.get("t_sc_s"))
    if msg.type == "hk_reading":
        fields = jsonable(body.get("values", {}))
        fields["solicited"] = bool(body.get("solicited", True))
        raw = body.get("raw") if isinstance(body.get("raw"), bytes) else None
        return Record("hk_reading", t, fields, str(body.get("device", "")), str(body.get("record", "")), raw)
    if msg.type == "hk_device":
        return Record("hk_device", t, jsonable(body), str(body.get("device", "")), str(body.get("state", "")))
    return Record(msg.type, t, jsonable(body), _bus_device(msg.type, msg.src, body))


def _bus_device(mtype: str, src: str, body: dict) -> str:
    """The device of a bus message that is not a housekeeping one: its partner for a
    partner's estimate, range or relayed fix, else the task that sent it."""
    if "peer_id" in body and mtype in ("formation_estimate", "range") or (mtype == "gps_fix" and body.get("peer_id")):
        return peer_device(body["peer_id"])
    return src


def _read_buslog(path: Path, data: bytes) -> SourceRecords:
    import msgpack

    from pygnc.bus.messages import DecodeCounters, decode
    from pygnc.formats.buslog import HEADER_CHANNEL, decode_frames

    log = decode_frames(data)
    if not log.frames:
        raise ValueError(f"no bus-log frame in {len(data)} bytes")
    counters = DecodeCounters()
    meta = {}
    records = []
    for fr in log.frames:
        if fr.channel == HEADER_CHANNEL:
            try:
                meta = dict(msgpack.unpackb(fr.message, raw=False))
            except Exception:
                pass
            continue
        msg = decode(fr.message, counters)
        if msg is not None:
            records.append(_message_record(msg))
    stats = {**log.stats.as_dict(), "messages_undecodable": counters.dropped}
    return SourceRecords(records, stats, jsonable(meta))


def _is_buslog(path: Path, head: bytes) -> bool:
    from pygnc.formats.buslog import SYNC

    return head[:2] == SYNC


# -- status file -----------------------------------------------------------------------------------


def _read_status(path: Path, data: bytes) -> SourceRecords:
    from pygnc.formats.status import StatusError, decode_status

    try:
        st = decode_status(data)
    except StatusError as exc:
        raise ValueError(f"not a valid status file: {exc}") from None
    fields = jsonable({k: v for k, v in st.items() if k != "magic"})
    return SourceRecords(
        [Record("status", _num(st.get("t_sc_s")), fields, "status_reporter")],
        {"bytes_total": len(data)},
        {"run": st.get("run")},
    )


def _is_status(path: Path, head: bytes) -> bool:
    from pygnc.formats.status import MAGIC

    return head[:4] == MAGIC


# -- CSV from ground decode ------------------------------------------------------------------------

_BUSLOG_CSV = ["offset", "channel", "t_rx_mono_s", "type", "src", "seq", "body_json"]
#: ... and since the decoded rows carry their log's spacecraft and run
#: (ground.decode.cli.BUSLOG_CSV_COLUMNS): the records the log itself gives.
_BUSLOG_CSV_WHOSE = [*_BUSLOG_CSV, "spacecraft_id", "run"]


def _cell(text: str):
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        v = float(text)
        return v if math.isfinite(v) else None
    except ValueError:
        return text


@functools.cache
def csv_layouts() -> dict[frozenset, tuple[str, str]]:
    """Column set -> (source, kind) of every CSV layout the ground tools write: the replay's
    estimate tables, the decoded batch files' tables (kind: the record kind, ``batch_file``
    for files.csv; the batch files themselves give ``batch_<kind>`` records, other fields)
    and the decoded sense.bin and range-file records."""
    from ground.decode import batch_files as batches
    from ground.decode.cli import structured_columns
    from ground.outputs import tables as tb
    from pygnc.formats import batch as fmt
    from pygnc.formats.gps import GPS_FIX_DTYPE
    from pygnc.formats.range_file import RANGE_DTYPE, RANGE_FIX_DTYPE
    from pygnc.formats.sense import SENSOR_DTYPE

    out: dict[frozenset, tuple[str, str]] = {}
    for kind in ("orbit", "attitude", "formation", "partner_orbit", "range_residuals"):
        cols = [c for c, _ in tb.COLUMNS[kind]]
        out[frozenset(cols)] = ("ground_replay", kind)
        if kind in batches.EXTRA_COLUMNS:
            out[frozenset(cols + list(batches.EXTRA_COLUMNS[kind]))] = ("onboard_downlink", kind)
    for k in fmt.current_kinds():
        if k.name not in batches.ESTIMATE_TABLES:
            out[frozenset(batches.generic_table(k, [], batches.RunClocks([])))] = ("onboard_downlink", k.name)
    out[frozenset(batches.files_table(batches.BatchSet()))] = ("onboard_downlink", "batch_file")
    out[frozenset(structured_columns(SENSOR_DTYPE))] = ("host_sense", "sensor")
    out[frozenset(structured_columns(GPS_FIX_DTYPE))] = ("host_sense", "gps_fix")
    out[frozenset(structured_columns(RANGE_DTYPE))] = ("host_range", "range")
    out[frozenset(structured_columns(RANGE_FIX_DTYPE))] = ("host_range", "gps_fix")
    return out


def peer_device(peer_id) -> str:
    """The device of a partner's records, ``peer_0x4B`` (:mod:`pygnc.partners`); ``""`` for
    the own spacecraft (0), an unknown partner or no id."""
    from pygnc.partners import partner_id, partner_name

    try:
        pid = partner_id(peer_id)
    except (ValueError, TypeError, OverflowError):
        return ""
    return f"peer_{partner_name(pid)}" if pid > 0 else ""


def _peer(fields: dict) -> str:
    return peer_device(fields.get("peer_id"))


#: Kinds whose rows belong to a peer (device ``peer_0x4B``) outside the downlink, where every
#: row with a partner's ``peer_id`` does.
_PEER_KINDS = ("formation", "partner_orbit", "range_residuals", "range")


def csv_record(columns, fields: dict, stem: str) -> Record:
    """The record of one CSV row (*fields*: column -> value) of a file with *columns*, named
    *stem*: its source and kind from the layout, its device from the row.  Own GPS fixes
    (a downlinked fix of peer id 0, a range file's GPS packets) have no device; a peer's
    records have ``peer_0x4B``."""
    source, kind = csv_layouts().get(frozenset(columns), ("csv", "table"))
    t = _num(fields.get("t_sc_s"))
    if source == "csv":
        return Record("table", t, fields, stem, source=source)
    if kind == "hk":
        return Record(kind, t, fields, str(fields.get("device") or ""), str(fields.get("record") or ""), source=source)
    device = _peer(fields) if source == "onboard_downlink" or kind in _PEER_KINDS else ""
    return Record(kind, t, fields, device, source=source)


#: The deepest nesting of a JSON value a CSV cell may hold (decode writes 3 at most).
_MAX_JSON_DEPTH = 32


def _json_depth(value) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [v for x in level if isinstance(x, (dict, list)) for v in (x.values() if isinstance(x, dict) else x)]
    return depth


def _json_cell(text: str, what: str, line: int):
    """The JSON value of a cell; MalformedInput when it is not JSON or nests too deeply."""
    try:
        value = json.loads(text)
    except RecursionError:
        value, depth = None, _MAX_JSON_DEPTH + 1
    except ValueError as exc:
        msg = f"{exc.msg} at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise MalformedInput(f"line {line}: {what} is not JSON ({msg})") from None
    else:
        depth = _json_depth(value)
    if depth > _MAX_JSON_DEPTH:
        raise MalformedInput(f"line {line}: {what} nests deeper than {_MAX_JSON_DEPTH} levels")
    return value


def _json_kind(value) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return {dict: "an object", list: "an array", str: "a string"}.get(type(value), "a number")


def _text(value, what: str, line: int) -> str:
    """A text field of a bus message body: MalformedInput unless it is UTF-8-encodable text."""
    if not isinstance(value, str):
        raise MalformedInput(f"line {line}: {what} is {_json_kind(value)}, not text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedInput(f"line {line}: {what} is not valid text (a lone surrogate)") from None
    return value


def _buslog_csv_record(row: list[str], line: int) -> Record:
    """The record of one row of decode's bus-log CSV (header :data:`_BUSLOG_CSV`)."""
    mtype, src, body_text = row[3], row[4], row[6]
    if not mtype:
        raise MalformedInput(f"line {line}: no message type")
    body = _json_cell(body_text, "body_json", line)
    if not isinstance(body, dict):
        raise MalformedInput(f"line {line}: body_json is {_json_kind(body)}, not an object")
    t = _num(body.get("t_sc_s"))
    source = "onboard_buslog"
    if not mtype.startswith("hk_"):
        return Record(mtype, t, jsonable(body), _bus_device(mtype, src, body), source=source)
    device = _text(body.get("device", src), "the device", line)
    rec = _text(body.get("record", body.get("state", "")), "the record", line)
    if mtype != "hk_reading":
        return Record(mtype, t, jsonable(body), device, rec, source=source)
    values = body.get("values")
    if not isinstance(values, (dict, type(None))):
        raise MalformedInput(f"line {line}: the hk_reading's values are {_json_kind(values)}, not an object")
    fields = dict(values or {})
    fields["solicited"] = body.get("solicited", True)
    return Record(mtype, t, jsonable(fields), device, rec, _hex_bytes(body.get("raw")), source)


def _hex_bytes(text) -> bytes | None:
    """Raw bytes decode's CSV wrote as hex; None for anything else (older CSVs wrote a
    Python literal: never evaluated, the bus log itself carries the bytes)."""
    try:
        return bytes.fromhex(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _read_csv(path: Path, data: bytes) -> SourceRecords:
    """A CSV ``ground decode`` or ``ground replay`` wrote: every row as its header's layout
    says (blank lines skipped), or MalformedInput naming the first line that is not."""
    text = data.decode("utf-8-sig", errors="replace")
    rows = csv.reader(io.StringIO(text, newline=""), strict=True)

    def body(width: int) -> Iterator[tuple[list[str], int]]:
        """(row, its last line) of every non-blank row after the header, each *width* cells."""
        try:
            for row in rows:
                if not row:
                    continue
                if len(row) != width:
                    raise MalformedInput(
                        f"line {rows.line_num}: {len(row)} field{'s' * (len(row) != 1)}, the header has {width}"
                    )
                yield row, rows.line_num
        except csv.Error as exc:
            raise MalformedInput(f"line {rows.line_num}: {exc}") from None

    try:
        header = next(rows, None)
    except csv.Error as exc:
        raise MalformedInput(f"line {rows.line_num}: {exc}") from None
    if not header:
        raise ValueError("empty CSV")
    if header in (_BUSLOG_CSV, _BUSLOG_CSV_WHOSE):
        records, meta = [], {"csv": "buslog"}
        for row, line in body(len(header)):
            if len(row) > len(_BUSLOG_CSV):  # the log's spacecraft and run (every row the same)
                meta.update(spacecraft_id=_cell(row[7]), run=_cell(row[8]))
            if row[3]:  # (an undecodable frame: a blank row)
                records.append(_buslog_csv_record(row, line))
        return SourceRecords(records, {}, meta)
    if header == ["name", "value"]:
        fields = {name: _json_cell(value, "the value", line) for (name, value), line in body(2)}
        fields.pop("magic", None)
        return SourceRecords(
            [
                Record(
                    "status", _num(fields.get("t_sc_s")), jsonable(fields), "status_reporter", source="onboard_status"
                )
            ],
            {},
            {"csv": "status"},
        )
    source, kind = csv_layouts().get(frozenset(header), ("csv", "table"))
    records = [
        csv_record(header, {h: _cell(v) for h, v in zip(header, row)}, path.stem) for row, _ in body(len(header))
    ]
    return SourceRecords(records, {}, {"csv": kind, "source": source})


def _is_csv(path: Path, head: bytes) -> bool:
    """A ``.csv`` name and text in the first bytes (UTF-8, no NUL)."""
    if path.suffix.lower() != ".csv" or b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a character cut by the end of the head
    return True


# -- batch files -----------------------------------------------------------------------------------


def _hk_values(device_kind: int, record: str, raw: bytes) -> dict:
    """A recorded reading's values, decoded by its driver's codec (or why not)."""
    from pygnc.device_kinds import HK_DEVICE_KINDS
    from pygnc.drivers import emus_bms_codec, opc_n3_codec
    from pygnc.drivers.errors import DriverError

    decoders = {"emus_bms": emus_bms_codec.decode_record, "opc_n3": opc_n3_codec.decode_record}
    kind = HK_DEVICE_KINDS[device_kind - 1] if 1 <= device_kind <= len(HK_DEVICE_KINDS) else None
    if kind is None:
        return {"undecoded": f"unknown device kind {device_kind}"}
    try:
        return jsonable(decoders[kind](record, raw))
    except (ValueError, DriverError) as exc:  # CodecError (a ValueError) and OpcError among them
        return {"undecoded": str(exc)}


def _read_batch(path: Path, data: bytes) -> SourceRecords:
    from pygnc.formats import batch as fmt

    bf = fmt.decode_batch(data)
    if bf.header is None and not bf.records:
        raise ValueError("no intact batch header or record")
    records = []
    undecoded = 0
    for r in bf.records:
        kind = r.kind
        if kind is None:
            continue  # counted by the decoder (unknown kind)
        v = r.values()
        if kind.name == "hk":
            raw = bytes(v["raw"][: v["n_raw"]])
            fields = _hk_values(v["device_kind"], v["record"], raw)
            undecoded += "undecoded" in fields
            fields["solicited"] = bool(v["flags"] & 1)
            fields["raw_cut"] = bool(v["flags"] & 2)
            records.append(Record("hk_reading", _num(r.t_sc_s), fields, v["device"], v["record"], raw))
            continue
        device = peer_device(v.get("peer_id"))
        if "quality" in v:  # the word, as decode's CSV and the bus log spell it (null: not recorded)
            v["quality"] = fmt.quality_word(v["quality"]) or None
        records.append(Record(f"batch_{kind.read_as}", _num(r.t_sc_s), jsonable(v), device))
    stats = {**bf.stats.as_dict(), "hk_undecoded": undecoded}
    return SourceRecords(records, stats, jsonable(bf.header or {}))


def _is_batch(path: Path, head: bytes) -> bool:
    from pygnc.formats.batch import MAGIC

    return head[: len(MAGIC)] == MAGIC


register_reader("buslog", _is_buslog, _read_buslog, "onboard_buslog")
register_reader("status", _is_status, _read_status, "onboard_status")
register_reader("csv", _is_csv, _read_csv, "csv")
register_reader("batch", _is_batch, _read_batch, "onboard_downlink")
