"""What the archive can load: each kind of input turned into :class:`Record` objects.

A **reader** is a pair of functions registered under a source kind:

* ``detect(path, head) -> bool`` - is the file at *path* (first bytes *head*) of this kind?
* ``read(path, data) -> SourceRecords`` - decode the file's bytes; never raises on bad
  bytes (decoders resynchronise and count); raises ``ValueError`` only when the file is not
  of this kind at all.

Readers today: ``buslog`` (a run's ``bus.log``: every bus message, housekeeping readings
included), ``status`` (``pygnc_status.bin``), ``csv`` (what ``ground decode --csv``
writes) and ``batch`` (the batch writer's downlink files: every record, housekeeping
readings decoded again from their bytes by the driver's codec).  More plug in with
:func:`register_reader` (see docs/interface.md, "Archive").
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable


@dataclass
class Record:
    """One archived record.

    ``kind``: what it is (a bus message type such as ``hk_reading`` or ``orbit_estimate``,
    ``status``, ``sensor``, ...); ``device``: the housekeeping device name for device records,
    the producing task for other bus messages, the peer for peer records, else ``""``;
    ``record``: the device record (EMUS sentence name, OPC-N3 record) or ``""``; ``t_sc_s``:
    spacecraft time or None; ``fields``: the values (JSON-able, physical units, units in the
    names); ``raw``: the checksum-verified device bytes, if any.
    """

    kind: str
    t_sc_s: float | None
    fields: dict
    device: str = ""
    record: str = ""
    raw: bytes | None = None


@dataclass
class SourceRecords:
    records: Iterable[Record]
    stats: dict = field(default_factory=dict)   # decode statistics (skipped bytes, ...)
    meta: dict = field(default_factory=dict)    # e.g. the run number


@dataclass(frozen=True)
class Reader:
    kind: str
    detect: Callable[[Path, bytes], bool]
    read: Callable[[Path, bytes], SourceRecords]


READERS: dict[str, Reader] = {}


def register_reader(kind: str, detect: Callable[[Path, bytes], bool],
                    read: Callable[[Path, bytes], SourceRecords]) -> None:
    """Add (or replace) the reader of source *kind*; readers are tried in registration order."""
    READERS[kind] = Reader(kind, detect, read)


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
    if "peer_id" in body and msg.type in ("formation_estimate", "range") or (
            msg.type == "gps_fix" and body.get("peer_id")):
        device = f"peer_{body['peer_id']}"
    return Record(msg.type, t, jsonable(body), device)


def _read_buslog(path: Path, data: bytes) -> SourceRecords:
    import msgpack

    from pygnc.bus.messages import DecodeCounters, decode
    from pygnc.formats.buslog import HEADER_CHANNEL, decode_frames

    log = decode_frames(data)
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
        return SourceRecords([], {"invalid": str(exc)})
    fields = jsonable({k: v for k, v in st.items() if k != "magic"})
    return SourceRecords([Record("status", _num(st.get("t_sc_s")), fields, "status_reporter")],
                         {"bytes_total": len(data)}, {"run": st.get("run")})


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


def _csv_kind(header: list[str]) -> str:
    cols = set(header)
    if "mag_ut_x" in cols:
        return "sensor"
    if "pos_ecef_m_x" in cols:
        return "peer_gps_fix" if "peer_id" in cols else "gps_fix"
    if "range_m" in cols:
        return "range"
    return "table"


def _read_csv(path: Path, data: bytes) -> SourceRecords:
    text = data.decode("utf-8-sig", errors="replace")
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if not header:
        raise ValueError("empty CSV")
    records: list[Record] = []
    bad = 0
    if header == _BUSLOG_CSV:
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
                records.append(Record(row[3], t, jsonable(fields), str(device), str(rec), None))
            else:
                records.append(Record(row[3], t, jsonable(body), str(device), str(rec)))
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
        return SourceRecords([Record("status", _num(fields.get("t_sc_s")), jsonable(fields), "status_reporter")],
                             {"rows_bad": bad}, {"csv": "status"})
    kind = _csv_kind(header)
    for row in rows:
        if len(row) != len(header):
            bad += 1
            continue
        fields = {h: _cell(v) for h, v in zip(header, row)}
        peer = fields.get("peer_id")
        device = f"peer_{peer}" if kind in ("peer_gps_fix", "range") and peer is not None else (
            path.stem if kind == "table" else "")
        records.append(Record(kind, _num(fields.get("t_sc_s")), fields, device))
    return SourceRecords(records, {"rows_bad": bad}, {"csv": kind})


def _is_csv(path: Path, head: bytes) -> bool:
    return path.suffix.lower() == ".csv"


# -- batch files -----------------------------------------------------------------------------------

def _hk_values(device_kind: int, record: str, raw: bytes) -> dict:
    """A recorded reading's values, decoded by its driver's codec (or why not)."""
    from pygnc.drivers import HK_DEVICE_KINDS, emus_bms, opc_n3

    decoders = {"emus_bms": emus_bms.decode_record, "opc_n3": opc_n3.decode_record}
    kind = HK_DEVICE_KINDS[device_kind - 1] if 1 <= device_kind <= len(HK_DEVICE_KINDS) else None
    if kind is None:
        return {"undecoded": f"unknown device kind {device_kind}"}
    try:
        return jsonable(decoders[kind](record, raw))
    except (ValueError, emus_bms.SentenceError, opc_n3.OpcError) as exc:
        return {"undecoded": str(exc)}


def _read_batch(path: Path, data: bytes) -> SourceRecords:
    from pygnc.formats import batch as fmt

    bf = fmt.decode_batch(data)
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
        device = f"peer_{v['peer_id']}" if v.get("peer_id") else ""
        records.append(Record(f"batch_{kind.name}", _num(r.t_sc_s), jsonable(v), device))
    stats = {**bf.stats.as_dict(), "hk_undecoded": undecoded}
    return SourceRecords(records, stats, jsonable(bf.header or {}))


def _is_batch(path: Path, head: bytes) -> bool:
    from pygnc.formats.batch import MAGIC

    return head[: len(MAGIC)] == MAGIC


register_reader("buslog", _is_buslog, _read_buslog)
register_reader("status", _is_status, _read_status)
register_reader("csv", _is_csv, _read_csv)
register_reader("batch", _is_batch, _read_batch)
