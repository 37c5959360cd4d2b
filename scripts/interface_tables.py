"""Print the generated tables of docs/interface.md (status file fields, bus messages, channels, tasks,
batch-file header, record kinds and fields, replay CSV columns), and of docs/operations.md and
docs/range_only.md (the estimators' notes, :mod:`pygnc.notes`).

    .venv/bin/python scripts/interface_tables.py > /tmp/tables.md

The docs embed this output between ``<!-- generated:NAME -->`` markers; ``--write`` puts it
there, ``--check`` exits 1 if a doc differs from what the code declares (tests run it).
"""

from __future__ import annotations

import re
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "flight"))
sys.path.insert(0, str(REPO))

from pygnc.bus.channels import CHANNELS  # noqa: E402
from pygnc.bus.messages import MESSAGE_TYPES  # noqa: E402
from pygnc.config import Config  # noqa: E402
from pygnc.formats import batch as BATCH  # noqa: E402
from pygnc.formats import status as S  # noqa: E402
from pygnc.tasks.table import TASKS  # noqa: E402


def status_table() -> str:
    rows = ["| offset | field | struct | meaning |", "|---:|---|---|---|"]
    off = 0
    for name, code, meaning in S.FIELDS:
        if re.match(r"(peer[1-9]|task[1-9])_", name):
            off += struct.calcsize("<" + code)
            continue
        shown = name.replace("peer0_", "peerK_").replace("task0_", "taskK_")
        rows.append(f"| {off} | `{shown}` | `{code}` | {meaning} |")
        off += struct.calcsize("<" + code)
    rows.append("")
    rows.append(
        f"Total {S.SIZE} bytes; `struct` format `{S.FORMAT}`.  The `peerK_*` block repeats "
        f"for K = 0..{S.MAX_PEERS - 1} and the `taskK_*` block for K = 0..{S.MAX_TASKS - 1}, "
        "in that order (offsets above are for K = 0)."
    )
    return "\n".join(rows)


def flags_table() -> str:
    rows = ["| bit | name |", "|---:|---|"]
    for bit, name in S.FLAG_NAMES.items():
        rows.append(f"| {bit.bit_length() - 1} | `{name}` |")
    rows.append("")
    rows.append("Task states (`taskK_state`): " + ", ".join(f"{i} = {n}" for i, n in enumerate(S.TASK_STATES)) + ".")
    return "\n".join(rows)


def messages_table() -> str:
    rows = ["| type | body fields (kind) |", "|---|---|"]
    for t, fields in MESSAGE_TYPES.items():
        rows.append(f"| `{t}` | " + ", ".join(f"`{k}` ({v})" for k, v in fields.items()) + " |")
    return "\n".join(rows)


def channels_table() -> str:
    rows = ["| channel | producer | policy | HWM | message types | content |", "|---|---|---|---:|---|---|"]
    for c in CHANNELS.values():
        rows.append(
            f"| `{c.name}` | {c.producer} | {c.policy.value} | {c.hwm} | "
            + ", ".join(f"`{t}`" for t in c.types)
            + f" | {c.description} |"
        )
    return "\n".join(rows)


def _cpus(min_cpus) -> str:
    """The CPU condition of a task's row: none, "N+ CPUs", or the Config field with its default."""
    if isinstance(min_cpus, str):
        return f", `{min_cpus}`+ CPUs ({getattr(Config(), min_cpus)})"
    return f", {min_cpus}+ CPUs" if min_cpus > 1 else ""


def tasks_table() -> str:
    rows = [
        "| id | task | subscribes | publishes | sink | runs when | CPU priority |",
        "|---:|---|---|---|---|---|---|",
    ]
    nice = Config().yielding_tasks_nice
    for t in TASKS:
        rows.append(
            f"| {t.task_id} | `{t.name}` | {', '.join(t.subscribes) or '-'} | "
            f"{', '.join(t.publishes) or '-'} | {'yes' if t.sink else 'no'} | "
            f"{'`' + t.enabled_by + '`' if t.enabled_by else 'always'}"
            f"{_cpus(t.min_cpus)} | "
            f"{f'nicer by `yielding_tasks_nice` ({nice})' if t.yields_cpu else 'the tree'} |"
        )
    return "\n".join(rows)


def batch_header_table() -> str:
    rows = ["| offset | field | struct | meaning |", "|---:|---|---|---|"]
    off = 0
    for name, code, meaning in BATCH.HEADER_FIELDS:
        rows.append(f"| {off} | `{name}` | `{code}` | {meaning} |")
        off += struct.calcsize("<" + code)
    rows.append("")
    rows.append(
        f"Total {BATCH.HEADER_SIZE} bytes; `struct` format `{BATCH.HEADER_FORMAT}`.  Flags: "
        + ", ".join(f"bit {b.bit_length() - 1} `{n}`" for b, n in BATCH.FILE_FLAG_NAMES.items())
        + "."
    )
    return "\n".join(rows)


def _period(p) -> str:
    return "on change" if p is None else ("every message" if p == 0 else f"{p:g} s")


def batch_kinds_table() -> str:
    rows = [
        "| code | kind | from | bytes | default cadence | per | bytes / day at that cadence | content |",
        "|---:|---|---|---:|---|---|---:|---|",
    ]
    for k in BATCH.KINDS:
        cadence = _period(k.period_s) + (
            f", and on a change of {', '.join(k.on_change)}" if k.on_change and k.period_s is not None else ""
        )
        per_day = f"{k.record_size * 86400 / k.period_s:,.0f}" if k.period_s and not k.superseded_by else "-"
        notes = [
            n
            for n, on in (
                ("last at stop", k.final),
                ("repeated at every file start", k.context),
                ("off by default", not k.enabled and not k.superseded_by),
                (f"superseded by `{k.superseded_by}`: read as its records, never written", k.superseded_by),
            )
            if on
        ]
        rows.append(
            f"| {k.code} | `{k.name}` | {', '.join(f'`{t}`' for t in k.message_types)} "
            f"({', '.join(k.channels)}) | {k.record_size} | {cadence} | "
            f"{' + '.join(k.key) if isinstance(k.key, tuple) else k.key or '-'}"
            f"{f', each {k.each}' if k.each else ''} | {per_day} | "
            f"{k.description}{'; ' + '; '.join(notes) if notes else ''} |"
        )
    rows.append("")
    rows.append(
        "Bytes per record include the 11-byte frame.  Bytes per day: per key (e.g. per peer) for a "
        "day of data at the default cadence; `health` follows the wall clock (per day of session); "
        "`partner_orbit` per kept orbit (a partner keeping two orbits all day: twice that), and only "
        "while a partner keeps more than one."
    )
    return "\n".join(rows)


def batch_fields_table() -> str:
    rows = ["| kind | field | struct | stored as | meaning |", "|---|---|---|---|---|"]
    for k in BATCH.KINDS:
        for f in k.fields:
            rows.append(f"| `{k.name}` | `{f.name}` | `{f.struct_code}` | {f.precision()} | {f.meaning} |")
    return "\n".join(rows)


def replay_table(kind: str):
    def table() -> str:
        from ground.outputs.tables import columns_markdown

        return columns_markdown(kind)

    return table


def hk_sentences_table() -> str:
    """The value names each EMUS sentence decodes to (from decoding the simulator's pack)."""
    from ground.devices.housekeeping import EmusBmsModel
    from pygnc.drivers import emus_bms_codec as eb

    model, framer = EmusBmsModel(), eb.SentenceFramer()
    rows = ["| sentence | reply | values |", "|---|---|---|"]
    for name in eb.KNOWN_SENTENCES:
        sents = framer.feed(b"".join(model.sentences(name)))
        reply = "one per cell group" if name in eb.GROUP_SENTENCES else "one"
        keys = eb.decode_sentence(sents[0])
        rows.append(f"| `{name}` | {reply} | " + ", ".join(f"`{k}`" for k in keys) + " |")
    return "\n".join(rows)


def opc_records_table() -> str:
    """The value names of each OPC-N3 record (from decoding the simulator's records)."""
    import random

    from ground.devices.housekeeping import OpcN3Model, UsbIssModel
    from pygnc.drivers import opc_n3 as on
    from pygnc.drivers.opc_n3_codec import decode_histogram

    model = OpcN3Model(random.Random(1))
    bridge = UsbIssModel(model)
    gen, send, t = on.setup_and_identify(500_000), None, 0.0
    records = []
    try:
        while True:
            a = gen.send(send)
            send = bridge.packet(a.tx, t) if hasattr(a, "tx") else None
            t += 0.01
    except StopIteration as stop:
        records = stop.value
    records.append(("histogram", decode_histogram(model._histogram(10.0)), b""))
    rows = ["| record | command | values |", "|---|---|---|"]
    cmds = {
        "bridge": "USB-ISS `5A 01`, `5A 03`, `5A 02`",
        "info": "`3F` (60 B)",
        "serial": "`10` (60 B)",
        "firmware": "`12` (2 B)",
        "config": "`3C` (168 B)",
        "dac_status": "`13` (6 B)",
        "histogram": "`30` (86 B)",
    }
    for name, values, _ in records:
        rows.append(f"| `{name}` | {cmds[name]} | " + ", ".join(f"`{k}`" for k in values) + " |")
    return "\n".join(rows)


def archive_schema() -> str:
    from ground.archive.store import SCHEMA

    return "```sql" + SCHEMA.rstrip() + "\n```"


def stream_tags_table() -> str:
    from pygnc.formats import stream as FS

    rows = ["| tag | direction | payload | meaning |", "|---|---|---|---|"]
    for tag, direction, payload, meaning in FS.TAG_TABLE:
        rows.append(f"| `{tag.decode()}` | {direction} | {payload} | {meaning} |")
    return "\n".join(rows)


def stream_payloads_table() -> str:
    from pygnc.formats import stream as FS

    rows = ["| payload | `struct` | bytes | fields |", "|---|---|---:|---|"]
    rows.append(
        f"| `HELLO` (HEL) | `{FS.HELLO.format}` | {FS.HELLO.size} | protocol version, longest line "
        "accepted (bytes), run number, estimate cadence (ms, 0 = none), pygnc's spacecraft time (s) |"
    )
    rows.append(
        f"| `ACK` | `{FS.ACK.format}` | {FS.ACK.size} | SEQ and TAG of the command, result: "
        + ", ".join(f"{k} {v}" for k, v in FS.ACK_RESULTS.items())
        + " |"
    )
    rows.append(
        f"| `ERROR` (ERR) | `{FS.ERROR.format}` | {FS.ERROR.size} | error code (below), SEQ and TAG of the "
        f"bad frame ({FS.SEQ_UNKNOWN} and `???` when unreadable), errors of this code so far |"
    )
    rows.append(
        f"| `COUNTERS` (CNT, BYE) | `{FS.COUNTERS_STRUCT.format}` | {FS.COUNTERS_STRUCT.size} | "
        + ", ".join(f"`{n}`" for n, _ in FS.COUNTER_FIELDS)
        + " (meanings below) |"
    )
    rows.append("| CAD | `<I` | 4 | milliseconds between two estimate frames of one kind (and peer); 0 = none |")
    return "\n".join(rows)


def stream_errors_table() -> str:
    from pygnc.formats import stream as FS

    rows = ["| code | name | meaning |", "|---:|---|---|"]
    for code, (name, meaning) in FS.ERROR_CODES.items():
        rows.append(f"| {code} | `{name}` | {meaning} |")
    rows.append("")
    rows.append(
        "Counters (CNT, BYE; each `uint32`, saturating): " + "; ".join(f"`{n}` {m}" for n, m in FS.COUNTER_FIELDS) + "."
    )
    return "\n".join(rows)


def _example_frames():
    """(what, line) pairs: byte-exact frames built by the code."""
    from pygnc.formats import batch as B
    from pygnc.formats import range_packet as RP
    from pygnc.formats import stream as FS
    from pygnc.formats.gps import encode_gps_segment

    sensor = bytes.fromhex("654b95349d00160433000000e002da001d0004bf4dacac355c030000bfff")
    gps = encode_gps_segment(
        t_sc_s=1699452212,
        time_status=180,
        week=2288,
        ms_of_week=259230000,
        solution_status=0,
        pos_ecef_m=(4510731.25, 4510731.5, 2000000.0),
        pos_sigma_m=(2.5, 2.5, 4.0),
        vel_status=0,
        vel_ecef_m_s=(-3500.5, 3500.25, 6000.0),
        vel_sigma_m_s=(0.05, 0.05, 0.08),
        sats_tracked=10,
        sats_in_solution=8,
    )
    rng = RP.encode_packet(0x4A, 1699452213, 23000, rssi_dbm=-40.0, fei_raw=-1)
    orbit = B.encode_record(
        B.KINDS_BY_NAME["orbit"],
        1699452212.0,
        B.KINDS_BY_NAME["orbit"].encode(
            "orbit_estimate",
            {
                "r_ecef_m": [4510731.25, 4510731.5, 2000000.0],
                "v_ecef_m_s": [-3500.5, 3500.25, 6000.0],
                "sigma_r_m": [3.0, 3.0, 4.5],
                "sigma_v_m_s": [0.01, 0.01, 0.02],
                "n_used": 42,
                "n_rejected": 0,
                "n_invalid": 1,
                "propagated": False,
            },
        ),
    )
    return [
        ("host: one sensor segment (PyGNC's test vector, t = 1699452212)", FS.encode_frame(FS.SENSOR, 1, sensor)),
        ("host: one GPS segment", FS.encode_frame(FS.GPS, 2, gps)),
        (
            "host: one range packet (0x4A, RSSI -40 dBm, raw 23000 = 1036.6 m at 812.5 kHz)",
            FS.encode_frame(FS.RANGE, 3, rng),
        ),
        ("host: PNG", FS.encode_frame(FS.PING, 4)),
        ("host: CAD 1000 ms", FS.encode_frame(FS.CADENCE, 5, struct.pack("<I", 1000))),
        ("host: STA", FS.encode_frame(FS.STATUS, 6)),
        ("host: FLU", FS.encode_frame(FS.FLUSH, 7)),
        (
            "pygnc: HEL (run 7, cadence 0, t 1699452210.5)",
            FS.encode_frame(FS.HELLO_TAG, 0, FS.HELLO.pack(1, FS.MAX_LINE_BYTES, 7, 0, 1699452210.5)),
        ),
        ("pygnc: ACK of CAD SEQ 5, ok", FS.encode_frame(FS.ACK_TAG, 1, FS.ACK.pack(5, FS.CADENCE, FS.ACK_OK))),
        (
            "pygnc: ERR bad_crc of SNS SEQ 12, the first",
            FS.encode_frame(FS.ERROR_TAG, 2, FS.ERROR.pack(FS.ERR_BAD_CRC, 12, FS.SENSOR, 1)),
        ),
        ("pygnc: EST, an orbit record at 1699452212.000", FS.encode_frame(FS.ESTIMATE, 3, orbit)),
    ]


def stream_examples_table() -> str:
    import binascii

    rows = ["```"]
    for what, line in _example_frames():
        rows.append(f"# {what}")
        rows.append(line.decode().rstrip("\n"))
        body = line[1 : line.index(b"*")]
        payload = binascii.a2b_base64(body.split(b",", 2)[2])
        rows.append(f"#   payload {len(payload)} bytes: {payload.hex(' ') if payload else '(none)'}")
    rows.append("```")
    return "\n".join(rows)


def stream_budget_table() -> str:
    from pygnc.formats import batch as B
    from pygnc.formats import stream as FS

    line_rate = 115200 / 10  # bytes/s of 8N1 at 115200 baud
    rows = ["| frame | line bytes | at | bytes/s | share of 115200 baud |", "|---|---:|---|---:|---:|"]

    def row(what, n, per_s, at):
        rows.append(f"| {what} | {n} | {at} | {n * per_s:.0f} | {100 * n * per_s / line_rate:.1f} % |")

    n_sns = len(FS.encode_frame(FS.SENSOR, 65535, bytes(30)))
    row("SNS, 1 segment", n_sns, 1, "1 Hz")
    row("SNS, 1 segment", n_sns, 10, "10 Hz")
    row("GPS, 1 segment", len(FS.encode_frame(FS.GPS, 65535, bytes(99))), 1, "1 Hz")
    row("RNG, 1 packet", len(FS.encode_frame(FS.RANGE, 65535, bytes(12))), 1, "1 Hz")
    for kind in ("orbit", "attitude", "formation"):
        n = len(FS.encode_frame(FS.ESTIMATE, 65535, bytes(B.KINDS_BY_NAME[kind].record_size))) + 1  # ONLCR: \r\n
        row(f"EST {kind}", n, 1, "cadence 1 s" + (" per peer" if kind == "formation" else ""))
        row(f"EST {kind}", n, 10, "cadence 0.1 s" + (" per peer" if kind == "formation" else ""))
    return "\n".join(rows)


def campaign_keys_table() -> str:
    from ground.montecarlo.campaign import TOP_KEYS

    return "\n".join(["| key | meaning |", "|---|---|"] + [f"| `{k}` | {v} |" for k, v in TOP_KEYS.items()])


def montecarlo_columns_table() -> str:
    from ground.montecarlo.results import COLUMN_MEANINGS

    return "\n".join(["| column | meaning |", "|---|---|"] + [f"| `{k}` | {v} |" for k, v in COLUMN_MEANINGS.items()])


def station_messages_table() -> str:
    from ground.station.model import MESSAGES

    return "\n".join(
        ["| type | direction | fields | meaning |", "|---|---|---|---|"]
        + [f"| `{t}` | {d} | {f} | {m} |" for t, d, f, m in MESSAGES]
    )


def station_series_table() -> str:
    from ground.station.model import PER_PEER, SERIES

    rows = ["| series | column | unit / meaning |", "|---|---|---|"]
    for group, cols in SERIES.items():
        name = f"`{group}` (per peer)" if group in PER_PEER else f"`{group}`"
        rows += [f"| {name} | `{c}` | {m} |" for c, m in cols]
    return "\n".join(rows)


TABLES = {
    "status": status_table,
    "flags": flags_table,
    "messages": messages_table,
    "channels": channels_table,
    "tasks": tasks_table,
    "batch_header": batch_header_table,
    "batch_kinds": batch_kinds_table,
    "batch_fields": batch_fields_table,
    "orbit_csv": replay_table("orbit"),
    "attitude_csv": replay_table("attitude"),
    "formation_csv": replay_table("formation"),
    "hk_sentences": hk_sentences_table,
    "opc_records": opc_records_table,
    "archive_schema": archive_schema,
    "stream_tags": stream_tags_table,
    "stream_payloads": stream_payloads_table,
    "stream_errors": stream_errors_table,
    "stream_examples": stream_examples_table,
    "stream_budget": stream_budget_table,
    "campaign_keys": campaign_keys_table,
    "montecarlo_columns": montecarlo_columns_table,
    "range_residuals_csv": replay_table("range_residuals"),
    "smoothed_formation_csv": replay_table("smoothed_formation"),
    "smoothed_orbit_csv": replay_table("smoothed_orbit"),
    "smoothed_measurements_csv": replay_table("smoothed_measurements"),
    "partner_orbit_csv": replay_table("partner_orbit"),
    "station_messages": station_messages_table,
    "station_series": station_series_table,
}


def notes_table(prefix: str | None = None, estimator: bool = True) -> str:
    """The estimators' notes (:data:`pygnc.notes.NOTES`) as a Markdown table: those whose
    code starts with *prefix* (None: all), with the estimator column or without."""
    from pygnc.notes import NOTES

    head = ["estimator"] * estimator + ["code", "meaning", "what to do"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in NOTES:
        if prefix is None or n.code.startswith(prefix):
            cells = [n.estimator] * estimator + [f"`{n.code}`", n.meaning, n.action]
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


#: doc -> {table name: what makes it}.
DOCS = {
    "interface.md": TABLES,
    "operations.md": {"notes": notes_table},
    "range_only.md": {"range_only_notes": lambda: notes_table("range_only_", estimator=False)},
}


def render(doc: str, tables: dict = TABLES, name_of_doc: str = "docs/interface.md") -> str:
    for name, fn in tables.items():
        pat = re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", re.S)
        doc, n = pat.subn(lambda m, fn=fn: m.group(1) + fn() + "\n" + m.group(2), doc)
        if n != 1:
            raise SystemExit(f"{name_of_doc} lacks the markers for table {name!r}")
    return doc


def main(argv: list[str]) -> int:
    stale = []
    for doc_name, tables in DOCS.items():
        path = REPO / "docs" / doc_name
        doc = path.read_text()
        new = render(doc, tables, f"docs/{doc_name}")
        if new != doc:
            stale.append(path)
            if "--write" in argv:
                path.write_text(new)
    if "--check" in argv:
        for path in stale:
            print(f"docs/{path.name} is out of date: run scripts/interface_tables.py --write", file=sys.stderr)
        return 1 if stale else 0
    if "--write" in argv:
        return 0
    for tables in DOCS.values():
        for name, fn in tables.items():
            print(f"<!-- generated:{name} -->\n{fn()}\n<!-- /generated:{name} -->\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
