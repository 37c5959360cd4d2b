"""What the archive can load: each kind of input turned into :class:`Record` objects.

A **reader** is a pair of functions registered under a source kind:

* ``detect(path, head) -> bool`` - is the file at *path* (first bytes *head*) of this kind?
* ``read(path, data) -> SourceRecords`` - decode the file's bytes; never raises on bad
  bytes (decoders resynchronise and count); raises ``ValueError`` only when the file is not
  of this kind at all.

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
from collections.abc import Callable, Iterable
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


@dataclass
class SourceRecords:
    records: Iterable[Record]
    stats: dict = field(default_factory=dict)  # decode statistics (skipped bytes, ...)
    meta: dict = field(default_factory=dict)  # e.g. the run number, the spacecraft id


def _whole(v, lowest: int) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= lowest else None


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
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


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
    device = msg.src
    if (
        "peer_id" in body
        and msg.type in ("formation_estimate", "range")
        or (msg.type == "gps_fix" and body.get("peer_id"))
    ):
        device = peer_device(body["peer_id"])
    return Record(msg.type, t, jsonable(body), device)


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


def _read_csv(path: Path, data: bytes) -> SourceRecords:
    text = data.decode("utf-8-sig", errors="replace")
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if not header:
        raise ValueError("empty CSV")
    records: list[Record] = []
    bad = 0
    if header == _BUSLOG_CSV:
        source = "onboard_buslog"
        for row in rows:
            if len(row) != len(header) or not row[3]:
                bad += 1
                continue
            try:
                body = json.loads(row[6])
            except ValueError:
                bad += 1
                continue
            t = _num(body.get("t_sc_s")) if isinstance(body, dict) else None
            device = body.get("device", row[4]) if row[3].startswith("hk_") else row[4]
            rec = body.get("record", body.get("state", "")) if row[3].startswith("hk_") else ""
            if row[3] == "hk_reading" and isinstance(body, dict):
                fields = dict(body.get("values") or {})
                fields["solicited"] = body.get("solicited", True)
                # decode's CSV writes the raw bytes as Python literal text: not taken (never
                # evaluated); the bus log itself carries them.
                records.append(Record(row[3], t, jsonable(fields), str(device), str(rec), None, source))
            else:
                records.append(Record(row[3], t, jsonable(body), str(device), str(rec), source=source))
        return SourceRecords(records, {"rows_bad": bad}, {"csv": "buslog"})
    if header == ["name", "value"]:
        fields = {}
        for row in rows:
            if len(row) != 2:
                bad += 1
                continue
            try:
                fields[row[0]] = json.loads(row[1])
            except ValueError:
                fields[row[0]] = row[1]
        fields.pop("magic", None)
        return SourceRecords(
            [
                Record(
                    "status", _num(fields.get("t_sc_s")), jsonable(fields), "status_reporter", source="onboard_status"
                )
            ],
            {"rows_bad": bad},
            {"csv": "status"},
        )
    source, kind = csv_layouts().get(frozenset(header), ("csv", "table"))
    for row in rows:
        if len(row) != len(header):
            bad += 1
            continue
        records.append(csv_record(header, {h: _cell(v) for h, v in zip(header, row)}, path.stem))
    return SourceRecords(records, {"rows_bad": bad}, {"csv": kind, "source": source})


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
