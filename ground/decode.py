"""``python -m ground decode FILE [--csv OUT]``: decode any file pygnc reads or writes.

Kinds (detected from the content, or forced with ``--kind``):

* ``sense``  - ~/sense.bin: sensor samples and own GPS fixes;
* ``range``  - one ``rngNNNNN.bin`` or a ``range/`` directory: peer fixes and ranges;
* ``status`` - ~/pygnc_status.bin;
* ``buslog`` - ``bus.log`` of a run (or a run directory): every bus message;
* ``batch``  - downlinked batch files ``batch_NNNNNNNN.bin`` (one, or a directory of them):
  what the spacecraft recorded, with missing files, sequence breaks and gaps reported
  (:mod:`ground.batches`).  ``--out DIR`` writes the estimates in the replay's CSV layout,
  a CSV per other record kind, ``files.csv``, ``summary.json`` and plots.

A summary (with the counts of skipped bytes) goes to stdout; ``--csv OUT`` also writes the
decoded records (sense: OUT = sensor samples, OUT with ``_gps`` = fixes; range: OUT =
ranges, ``_peer_gps`` = peer fixes; status: name,value rows; buslog: one row per message;
batch: OUT = one row per file, ``_<kind>`` = the records of each kind).
Exit status: 0 decoded (even with skipped bytes), 1 unreadable or invalid, 2 bad usage.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import sys
from pathlib import Path

from pygnc.config import Config


def add_arguments(p) -> None:
    p.add_argument("file", type=Path, help="file or directory to decode")
    p.add_argument("--csv", type=Path, metavar="OUT", help="also write the records as CSV")
    p.add_argument("--kind", choices=("auto", "sense", "range", "status", "buslog", "batch"), default="auto")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="batch files: write CSVs (estimates in the replay's layout), summary.json and plots to DIR")
    p.add_argument("--no-plots", action="store_true", help="batch files with --out: no plots")
    p.add_argument("--accept-status", default=None, metavar="LIST",
                   help="comma-separated NovAtel solution-status values accepted as valid fixes "
                        "(default 0; the flight team's simulator needs 0,1)")


def detect_kind(path: Path) -> str:
    from pygnc.formats import batch, buslog, status

    if path.is_dir():
        if (path / "bus.log").exists():
            return "buslog"
        if any(batch.FILE_RE.match(p.name) or batch.PART_RE.match(p.name) for p in path.iterdir()):
            return "batch"
        return "range"
    head = path.read_bytes()[:4]
    if head == status.MAGIC:
        return "status"
    if head == batch.MAGIC or batch.sequence_of(path.name) is not None:
        return "batch"
    if head[:2] == buslog.SYNC or path.name.endswith(".log"):
        return "buslog"
    if head[:3] == b"\xAA\x44\x12" or path.name.startswith("rng"):
        return "range"
    return "sense"


def _config(args) -> Config:
    if args.accept_status is None:
        return Config()
    values = tuple(int(v) for v in args.accept_status.split(",") if v.strip())
    return dataclasses.replace(Config(), accepted_solution_status=values)


def write_structured_csv(arr, path: Path) -> None:
    """CSV of a numpy structured array; sub-array fields become ``name_0, name_1, ...``."""
    import numpy as np

    names, columns = [], []
    for name in arr.dtype.names:
        col = arr[name]
        if col.ndim == 1:
            names.append(name)
            columns.append(col)
        else:
            flat = col.reshape(len(arr), -1)
            suffix = "xyz" if flat.shape[1] == 3 else None
            for j in range(flat.shape[1]):
                names.append(f"{name}_{suffix[j] if suffix else j}")
                columns.append(flat[:, j])
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(names)
    w.writerows(zip(*[c.tolist() if c.dtype != np.bool_ else c.astype(int).tolist() for c in columns]))
    _write_text(path, buf.getvalue())


def _write_text(path: Path, text: str) -> None:
    """Write an output file atomically: a reader never sees half of it."""
    from pygnc.atomic import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode())


def _with_suffix(out: Path, suffix: str) -> Path:
    return out.with_name(out.stem + suffix + (out.suffix or ".csv"))


def _stats_line(stats) -> str:
    d = stats.as_dict()
    return ", ".join(f"{k} {v}" for k, v in d.items())


def decode_sense(args) -> int:
    from pygnc.formats.sense import decode_sense as dec

    batch = dec(args.file.read_bytes(), _config(args))
    s, f = batch.sensors, batch.fixes
    print(f"sense {args.file}: {len(s)} sensor samples, {len(f)} GPS fixes ({int(f['valid'].sum())} valid)")
    print(f"  {_stats_line(batch.stats)}")
    if len(s):
        print(f"  spacecraft time {s['t_sc_s'][0]:.0f} .. {s['t_sc_s'][-1]:.0f} s")
    if args.csv:
        write_structured_csv(s, args.csv)
        write_structured_csv(f, _with_suffix(args.csv, "_gps"))
        print(f"  wrote {args.csv} and {_with_suffix(args.csv, '_gps')}")
    return 0


def decode_range(args) -> int:
    from pygnc.formats.range_file import decode_range as dec, read_range_dir

    cfg = _config(args)
    batch = read_range_dir(args.file, cfg) if args.file.is_dir() else dec(args.file.read_bytes(), cfg)
    print(f"range {args.file}: {len(batch.peer_fixes)} peer fixes, {len(batch.ranges)} ranges")
    print(f"  {_stats_line(batch.stats)}")
    ignored = getattr(batch, "ignored_files", None)
    if ignored:
        print(f"  ignored files: {', '.join(map(str, ignored))}")
    if args.csv:
        write_structured_csv(batch.ranges, args.csv)
        write_structured_csv(batch.peer_fixes, _with_suffix(args.csv, "_peer_gps"))
        print(f"  wrote {args.csv} and {_with_suffix(args.csv, '_peer_gps')}")
    return 0


def decode_status(args) -> int:
    from pygnc.formats.status import TASK_STATES, StatusError, decode_status as dec
    from pygnc.tasks.table import TASK_NAMES_BY_ID

    try:
        st = dec(args.file.read_bytes())
    except StatusError as exc:
        print(f"status {args.file}: invalid: {exc}", file=sys.stderr)
        return 1
    print(f"status {args.file}: run {st['run']} seq {st['seq']} flags {', '.join(st['flag_names']) or '-'}")
    empty_slots = {k.rsplit("_id", 1)[0] + "_" for k, v in st.items()
                   if k.startswith(("task", "peer")) and k.endswith("_id") and v == 0}
    for k, v in st.items():
        if k in ("magic", "flag_names") or any(k.startswith(p) for p in empty_slots):
            continue
        if isinstance(v, float) and math.isnan(v) or isinstance(v, tuple) and all(
                isinstance(x, float) and math.isnan(x) for x in v):
            continue
        if k.startswith("task") and k.endswith("_id"):
            v = f"{v} ({TASK_NAMES_BY_ID.get(v, '?')})"
        elif k.startswith("task") and k.endswith("_state"):
            v = f"{v} ({TASK_STATES[v] if v < len(TASK_STATES) else '?'})"
        print(f"  {k} = {v}")
    if args.csv:
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(["name", "value"])
        for k, v in st.items():
            w.writerow([k, json.dumps(v if not isinstance(v, bytes) else v.decode("ascii", "replace"))])
        _write_text(args.csv, buf.getvalue())
        print(f"  wrote {args.csv}")
    return 0


def decode_buslog(args) -> int:
    import msgpack

    from pygnc.bus.messages import DecodeCounters, decode
    from pygnc.formats.buslog import HEADER_CHANNEL, decode_frames

    path = args.file / "bus.log" if args.file.is_dir() else args.file
    log = decode_frames(path.read_bytes())
    counters = DecodeCounters()
    rows, by_type = [], {}
    for fr in log.frames:
        if fr.channel == HEADER_CHANNEL:
            try:
                print(f"buslog header: {msgpack.unpackb(fr.message, raw=False)}")
            except Exception:
                print("buslog header: unreadable")
            continue
        msg = decode(fr.message, counters)
        if msg is None:
            rows.append([fr.offset, fr.channel, fr.t_rx_mono_s, "", "", "", ""])
            continue
        by_type[msg.type] = by_type.get(msg.type, 0) + 1
        rows.append([fr.offset, fr.channel, fr.t_rx_mono_s, msg.type, msg.src, msg.seq,
                     json.dumps(msg.body, default=str)])
    print(f"buslog {path}: {log.stats.frames} frames; {_stats_line(log.stats)}")
    print(f"  messages: {', '.join(f'{k} {v}' for k, v in sorted(by_type.items())) or 'none'}; "
          f"undecodable {counters.dropped}")
    if args.csv:
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(["offset", "channel", "t_rx_mono_s", "type", "src", "seq", "body_json"])
        w.writerows(rows)
        _write_text(args.csv, buf.getvalue())
        print(f"  wrote {args.csv}")
    return 0


def decode_batch(args) -> int:
    from ground import batches

    bs = batches.read_batches(args.file)
    for line in batches.report_lines(bs):
        print(line)
    if not bs.files:
        print(f"decode: {args.file}: no batch files", file=sys.stderr)
        return 1
    if args.out:
        written = batches.write_products(bs, args.out, plots=not args.no_plots)
        print(f"  wrote {len(written)} files to {args.out}/")
    if args.csv:
        written = batches.write_products(bs, args.out or args.csv.parent, plots=False, csv_base=args.csv)
        print(f"  wrote {', '.join(str(p) for p in written)}")
    return 0


def run(args) -> int:
    if not args.file.exists():
        print(f"decode: {args.file}: no such file or directory", file=sys.stderr)
        return 1
    try:
        kind = detect_kind(args.file) if args.kind == "auto" else args.kind
        if args.out and kind != "batch":
            print(f"decode: --out is for batch files ({args.file} is {kind}); use --csv", file=sys.stderr)
            return 2
        return {"sense": decode_sense, "range": decode_range, "status": decode_status,
                "buslog": decode_buslog, "batch": decode_batch}[kind](args)
    except (OSError, ValueError) as exc:
        print(f"decode: {args.file}: {exc}", file=sys.stderr)
        return 1
