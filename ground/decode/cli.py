"""``python -m ground decode FILE [--csv OUT]``: decode any file pygnc reads or writes.

Kinds (detected from the content, or forced with ``--kind``):

* ``sense``  - ~/sense.bin: sensor samples and own GPS fixes;
* ``range``  - one ``rngNNNNN.bin`` or a ``range/`` directory: peer fixes and ranges;
* ``status`` - ~/pygnc_status.bin;
* ``buslog`` - ``bus.log`` of a run (or a run directory): every bus message;
* ``batch``  - downlinked batch files ``batch_NNNNNNNN.bin`` (one, or a directory of them):
  what the spacecraft recorded, with missing files, sequence breaks and gaps reported
  (:mod:`ground.decode.batch_files`).  ``--out DIR`` writes the estimates in the replay's CSV layout,
  a CSV per other record kind, ``files.csv``, ``summary.json`` and plots;
* ``info``, ``log`` - ~/pygnc_info.txt and a task's text log (``<task>.log``): shown as they
  are, after a line saying what they are (a log: its warnings and errors counted).

A summary (with the counts of skipped bytes) goes to stdout; ``--csv OUT`` also writes the
decoded records (sense: OUT = sensor samples, OUT with ``_gps`` = fixes; range: OUT =
ranges, ``_gps`` = the files' GPS packets; status: name,value rows; buslog: one row per message;
batch: OUT = one row per file, ``_<kind>`` = the records of each kind) into an existing
directory (a header only for a table with no rows).
The kind is found from the file's magic, else from the name pygnc gives that kind of file
(``pygnc_status.bin`` with bad bytes is reported as a status file that is not valid); a
file neither places is tried as sense.bin, the one layout without a magic, and reported as
not recognised if nothing decodes.  A directory that is none of the kinds above is listed:
what could be decoded one by one, and what is not recognised.
Every argument is checked before anything is decoded (``--out`` an existing file).
Exit status: 0 decoded (even with skipped bytes), 1 unreadable, invalid, not recognised
or nothing decodable in it ("nothing decoded"; batch files: no file with an intact header
or record), 2 bad usage.  Only regular files (or, for batch files,
directories of them) are read (a FIFO or device is refused, never waited on).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import sys
from pathlib import Path

from pygnc.config import Config
from pygnc.partners import partner_name


class NothingDecoded(ValueError):
    """The input holds nothing this decoder recognises (message says what was tried)."""


def accept_status_list(text: str) -> tuple[int, ...]:
    """``--accept-status`` value: comma-separated integers 0..255 (argparse type)."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or not all(0 <= v <= 255 for v in values):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of solution-status numbers (e.g. 0,1)"
        )
    return values


def csv_path(text: str) -> Path:
    """``--csv`` value: a file in an existing directory (argparse type; nothing is created
    elsewhere by a mistyped path)."""
    p = Path(text)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"directory {parent} does not exist (create it first)")
    if p.is_dir():
        raise argparse.ArgumentTypeError(f"{p} is a directory; give a file name")
    return p


def add_arguments(p) -> None:
    p.add_argument("file", type=Path, help="file or directory to decode")
    p.add_argument(
        "--csv", type=csv_path, metavar="OUT", help="also write the records as CSV (the directory must exist)"
    )
    p.add_argument(
        "--kind", choices=("auto", "sense", "range", "status", "buslog", "batch", *TEXT_KINDS), default="auto"
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="batch files: write CSVs (estimates in the replay's layout), summary.json and plots to DIR",
    )
    p.add_argument("--no-plots", action="store_true", help="batch files with --out: no plots")
    p.add_argument(
        "--accept-status",
        type=accept_status_list,
        default=None,
        metavar="LIST",
        help="comma-separated NovAtel solution-status values accepted as valid fixes "
        "(default 0; the flight team's simulator needs 0,1)",
    )


def _read(path: Path) -> bytes:
    from pygnc.formats.common import read_regular_file

    return read_regular_file(path)


#: How a file's kind was found: by its magic, by a name pygnc gives its files, or a guess.
BY_MAGIC, BY_NAME, GUESSED = "magic", "name", "guess"
#: What the kinds without a magic are recognised by (for messages).
KNOWN_NAMES = (
    "sense*.bin, rngNNNNN.bin, range.bin, pygnc_status*.bin, batch_NNNNNNNN.bin, *.log (a bus log, or a task's "
    "text log), pygnc_info*.txt"
)
#: The text files pygnc writes, shown as they are: kind -> what it is.
TEXT_KINDS = {"info": "info file", "log": "text log"}


def _is_text(head: bytes) -> bool:
    """Whether a file's first bytes are text (UTF-8, printable, lines): a task's log, not a
    bus log (binary frames) that lost its first bytes."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # (a character cut at the end of the head is fine)
            return False
        text = head[: exc.start].decode("utf-8")
    return bool(text) and all(c.isprintable() or c in "\n\r\t" for c in text)


def _head(path: Path, n: int = 64) -> bytes:
    """The first *n* bytes of a regular file (never blocks; anything else raises OSError
    as :func:`pygnc.formats.common.read_regular_file` does)."""
    import os

    from pygnc.formats.common import open_regular_file

    fd = open_regular_file(path)
    try:
        return os.read(fd, n)
    finally:
        os.close(fd)


def recognise(path: Path, head: bytes) -> tuple[str | None, str]:
    """(kind, how) of the file at *path* whose first bytes are *head*: by its magic, else by a
    name pygnc gives that kind of file; ``(None, "")`` when neither says."""
    from pygnc.formats import batch, buslog, range_file, status

    if head[:4] == status.MAGIC:
        return "status", BY_MAGIC
    if head[:4] == batch.MAGIC:
        return "batch", BY_MAGIC
    if head[:2] == buslog.SYNC:
        return "buslog", BY_MAGIC
    if head[:3] == range_file.SYNC:
        return "range", BY_MAGIC
    name = path.name
    if name.startswith("pygnc_status") and name.endswith(".bin"):
        return "status", BY_NAME
    if batch.sequence_of(name) is not None:
        return "batch", BY_NAME
    if name.startswith("pygnc_info") and name.endswith(".txt"):
        return "info", BY_NAME
    if name.endswith(".log"):
        return ("log", BY_NAME) if _is_text(head) else ("buslog", BY_NAME)
    if range_file.range_file_number(name) is not None or name == "range.bin":
        return "range", BY_NAME
    if name.startswith("sense") and name.endswith(".bin"):
        return "sense", BY_NAME
    return None, ""


def directory_kind(path: Path) -> str | None:
    """What a directory is decoded as: a run directory (``bus.log``), batch files, a range
    directory (``rngNNNNN.bin``); None when it is none of them."""
    from pygnc.formats import batch, range_file

    if (path / "bus.log").is_file():
        return "buslog"
    entries = sorted(path.iterdir())
    if any(batch.FILE_RE.match(p.name) or batch.PART_RE.match(p.name) for p in entries):
        return "batch"
    if any(range_file.range_file_number(p.name) is not None for p in entries):
        return "range"
    for p in entries:
        if p.suffix == ".bin" and p.is_file():
            try:
                if _head(p)[:4] == batch.MAGIC:
                    return "batch"  # batch files renamed on the ground
            except OSError:
                continue
    return None


def directory_report(path: Path, limit: int = 10) -> str:
    """What a directory that is none of the kinds holds: each entry recognised by itself (to
    decode one by one) and the ones not recognised."""
    known, unknown = [], []
    for p in sorted(path.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            kind = directory_kind(p)
            (known if kind else unknown).append(f"{p.name}/ ({kind} directory)" if kind else f"{p.name}/")
            continue
        try:
            kind, how = recognise(p, _head(p))
        except OSError:
            kind, how = None, ""
        (known if kind else unknown).append(f"{p.name} ({kind}, by its {how})" if kind else p.name)

    def listed(items):
        return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")

    text = (
        "it is not a run directory (bus.log), a directory of batch files (batch_NNNNNNNN.bin) or of range "
        "files (rngNNNNN.bin)"
    )
    if known:
        text += f"; decode these one by one: {listed(known)}"
    if unknown:
        text += f"; not recognised: {listed(unknown)}"
    if not known and not unknown:
        text += "; it is empty"
    return text


def detect_kind(path: Path) -> tuple[str | None, str]:
    """(kind, how) of a file or directory for ``--kind auto`` (how: magic, name, or a guess:
    a file neither its magic nor its name places is tried as sense.bin, the one layout
    without a magic); ``(None, "")`` for a directory of none of the kinds."""
    if path.is_dir():
        kind = directory_kind(path)
        return kind, BY_NAME if kind else ""
    kind, how = recognise(path, _head(path))
    return (kind, how) if kind else ("sense", GUESSED)


def _config(args) -> Config:
    if args.accept_status is None:
        return Config()
    return dataclasses.replace(Config(), accepted_solution_status=tuple(args.accept_status))


def structured_columns(dtype) -> list[str]:
    """The CSV columns of a structured dtype: sub-array fields become ``name_x/_y/_z`` (3
    values) or ``name_0, name_1, ...``."""
    import numpy as np

    names = []
    for name in dtype.names:
        n = int(np.prod(dtype[name].shape))
        if not dtype[name].shape:
            names.append(name)
        else:
            names += [f"{name}_{'xyz'[j] if n == 3 else j}" for j in range(n)]
    return names


def write_structured_csv(arr, path: Path) -> None:
    """CSV of a numpy structured array, columns :func:`structured_columns` (``peer_id``
    written ``0x4B``: :func:`pygnc.partners.partner_name`)."""
    import numpy as np

    names, columns = structured_columns(arr.dtype), []
    for name in arr.dtype.names:
        col = arr[name]
        if col.ndim == 1:
            columns.append(col)
        else:
            flat = col.reshape(len(arr), int(np.prod(col.shape[1:])))
            columns += [flat[:, j] for j in range(flat.shape[1])]
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(names)
    cells = [c.tolist() if c.dtype != np.bool_ else c.astype(int).tolist() for c in columns]
    cells = [[partner_name(v) for v in c] if n == "peer_id" else c for n, c in zip(names, cells)]
    w.writerows(zip(*cells))
    _write_text(path, buf.getvalue())


def _write_text(path: Path, text: str) -> None:
    """Write an output file atomically: a reader never sees half of it (an OSError names
    *path*)."""
    from pygnc.atomic import write_atomic

    write_atomic(path, text.encode())


def _with_suffix(out: Path, suffix: str) -> Path:
    return out.with_name(out.stem + suffix + (out.suffix or ".csv"))


def _stats_line(stats) -> str:
    d = stats.as_dict()
    return ", ".join(f"{k} {v}" for k, v in d.items())


def time_span_line(t) -> str:
    """``spacecraft time FIRST .. LAST s``, saying so when the clock steps back in between."""
    import numpy as np

    t = np.asarray(t, dtype=float)
    line = f"spacecraft time {t[0]:.0f} .. {t[-1]:.0f} s"
    back = np.diff(t) < 0
    if back.any():
        line += (
            f" - the clock steps back {int(back.sum())} times (largest step {(-np.diff(t)).max():.0f} s); "
            f"earliest {t.min():.0f}, latest {t.max():.0f}"
        )
    return line


def decode_sense(args) -> int:
    from pygnc.formats.sense import decode_sense as dec
    from pygnc.formats.settings import DecodeSettings

    batch = dec(_read(args.file), DecodeSettings.from_config(_config(args)))
    s, f = batch.sensors, batch.fixes
    if not len(s) and not len(f):  # (said on stderr, without a block of zeros before it)
        raise NothingDecoded(f"no sense.bin record in {batch.stats.bytes_total} bytes")
    print(f"sense {args.file}: {len(s)} sensor samples, {len(f)} GPS fixes ({int(f['valid'].sum())} valid)")
    print(f"  {_stats_line(batch.stats)}")
    if len(s):
        print(f"  {time_span_line(s['t_sc_s'])}")
    if args.csv:
        write_structured_csv(s, args.csv)
        write_structured_csv(f, _with_suffix(args.csv, "_gps"))
        print(f"  wrote {args.csv} and {_with_suffix(args.csv, '_gps')}")
    return 0


def decode_range(args) -> int:
    from pygnc.formats.range_file import decode_range as dec
    from pygnc.formats.range_file import read_range_dir
    from pygnc.formats.settings import DecodeSettings

    cfg = _config(args)
    settings = DecodeSettings.from_config(cfg)
    batch = read_range_dir(args.file, settings) if args.file.is_dir() else dec(_read(args.file), settings)
    fx, rg = batch.gps_fixes, batch.ranges
    whose = "own" if cfg.range_gps_source == "own" else "peer"
    print(
        f"range {args.file}: {len(fx)} GPS packets ({whose} fixes, {int(fx['valid'].sum())} valid), "
        f"{len(rg)} ranges ({int(rg['valid'].sum())} valid)"
    )
    print(f"  {_stats_line(batch.stats)}")
    for pid in sorted(set(rg["peer_id"].tolist())):
        r = rg[(rg["peer_id"] == pid) & rg["valid"]]
        if len(r):
            print(
                f"  partner {partner_name(pid)}: {len(r)} ranges {r['range_m'].min():.1f}..{r['range_m'].max():.1f} m, "
                f"RSSI {r['rssi_dbm'].min():.1f}..{r['rssi_dbm'].max():.1f} dBm, "
                f"FEI {r['fei_hz'].min():.0f}..{r['fei_hz'].max():.0f} Hz"
            )
    ignored = getattr(batch, "ignored_files", None)
    if ignored:
        print(f"  ignored files: {', '.join(map(str, ignored))}")
    if not len(fx) and not len(rg):
        raise NothingDecoded(f"no range-file packet in {batch.stats.bytes_total} bytes")
    if args.csv:
        write_structured_csv(rg, args.csv)
        write_structured_csv(fx, _with_suffix(args.csv, "_gps"))
        print(f"  wrote {args.csv} and {_with_suffix(args.csv, '_gps')}")
    return 0


def decode_status(args) -> int:
    from pygnc.formats.info import duration
    from pygnc.formats.status import ESTIMATE_QUALITY, MAGIC, TASK_STATES, StatusError
    from pygnc.formats.status import decode_status as dec
    from pygnc.tasks.table import TASK_NAMES_BY_ID

    data = _read(args.file)
    try:
        st = dec(data)
    except StatusError as exc:
        problems = [] if data[:4] == MAGIC else [f"bad magic {data[:4]!r} (a status file starts with {MAGIC!r})"]
        if not str(exc).startswith("bad magic"):
            problems.append(str(exc))
        raise NothingDecoded("not a valid status file: " + "; ".join(problems)) from None
    print(f"status {args.file}: run {st['run']} seq {st['seq']} flags {', '.join(st['flag_names']) or '-'}")
    now = st["t_sc_s"]
    for label, q, epoch in [
        ("orbit", st["orbit_quality"], st["orbit_t_sc_s"]),
        ("attitude", st["att_quality"], st["att_t_sc_s"]),
    ] + [
        (f"partner {partner_name(st[f'peer{k}_id'])}", st[f"peer{k}_quality"], st[f"peer{k}_t_sc_s"])
        for k in range(4)
        if st.get(f"peer{k}_id")
    ]:
        qn = ESTIMATE_QUALITY[q] if q < len(ESTIMATE_QUALITY) else f"? ({q})"
        age = (
            ""
            if math.isnan(epoch)
            else f", epoch {duration(now - epoch)} {'before' if epoch <= now else 'after'} this write"
        )
        end = st["batch_t_sc_last_s"]
        past = epoch - end
        extra = (
            "" if math.isnan(past) else f", {duration(past)} {'beyond' if past >= 0 else 'before the end of'} the batch"
        )
        print(f"  {label}: {qn}{age}{extra}")
    empty_slots = {
        k.rsplit("_id", 1)[0] + "_"
        for k, v in st.items()
        if k.startswith(("task", "peer")) and k.endswith("_id") and v == 0
    }
    for k, v in st.items():
        if k in ("magic", "flag_names") or any(k.startswith(p) for p in empty_slots):
            continue
        if (
            isinstance(v, float)
            and math.isnan(v)
            or isinstance(v, tuple)
            and all(isinstance(x, float) and math.isnan(x) for x in v)
        ):
            continue
        if k.startswith("task") and k.endswith("_id"):
            v = f"{v} ({TASK_NAMES_BY_ID.get(v, '?')})"
        elif k.startswith("peer") and k.endswith("_id"):
            v = partner_name(v)
        elif k.startswith("task") and k.endswith("_state"):
            v = f"{v} ({TASK_STATES[v] if v < len(TASK_STATES) else '?'})"
        elif k.endswith("_quality"):
            v = f"{v} ({ESTIMATE_QUALITY[v] if v < len(ESTIMATE_QUALITY) else '?'})"
        print(f"  {k} = {v}")
    if args.csv:
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(["name", "value"])
        for k, v in st.items():
            if k.startswith("peer") and k.endswith("_id") and v:
                v = partner_name(v)
            w.writerow([k, json.dumps(v if not isinstance(v, bytes) else v.decode("ascii", "replace"))])
        _write_text(args.csv, buf.getvalue())
        print(f"  wrote {args.csv}")
    return 0


#: Columns of the bus log's CSV: a row per frame (a message's body as JSON, bytes as hex;
#: blank type: undecodable), with the log header's spacecraft and run on every row.
BUSLOG_CSV_COLUMNS = ["offset", "channel", "t_rx_mono_s", "type", "src", "seq", "body_json", "spacecraft_id", "run"]


def _json_bytes(value) -> str:
    """A body value JSON has no type for: bytes as hex (as the archive stores them)."""
    return bytes(value).hex() if isinstance(value, (bytes, bytearray)) else str(value)


def _body_json(body: dict) -> str:
    """A message body as JSON (bytes as hex; a key JSON cannot take, e.g. bytes, as its text)."""
    try:
        return json.dumps(body, default=_json_bytes)
    except (TypeError, ValueError):
        return json.dumps(_text_keys(body), default=_json_bytes)


def _text_keys(value):
    if isinstance(value, dict):
        return {str(k): _text_keys(v) for k, v in value.items()}  # (as the archive's keys)
    if isinstance(value, (list, tuple)):
        return [_text_keys(v) for v in value]
    return value


def decode_buslog(args) -> int:
    import msgpack

    from pygnc.bus.messages import DecodeCounters, decode
    from pygnc.formats.buslog import HEADER_CHANNEL, decode_frames

    path = args.file / "bus.log" if args.file.is_dir() else args.file
    log = decode_frames(_read(path))
    counters = DecodeCounters()
    rows, by_type = [], {}
    whose: list = ["", ""]  # the header's spacecraft and run, on every row
    for fr in log.frames:
        if fr.channel == HEADER_CHANNEL:
            try:
                header = msgpack.unpackb(fr.message, raw=False)
                print(f"buslog header: {header}")
                whose = [header.get("spacecraft_id", ""), header.get("run", "")]
            except Exception:
                print("buslog header: unreadable")
            continue
        msg = decode(fr.message, counters)
        if msg is None:
            rows.append([fr.offset, fr.channel, fr.t_rx_mono_s, "", "", "", "", *whose])
            continue
        by_type[msg.type] = by_type.get(msg.type, 0) + 1
        body = _body_json(msg.body)
        rows.append([fr.offset, fr.channel, fr.t_rx_mono_s, msg.type, msg.src, msg.seq, body, *whose])
    n_header = log.stats.frames - len(rows)
    print(
        f"buslog {path}: {log.stats.frames} frames ({sum(by_type.values())} messages"
        f"{f', {n_header} header' if n_header else ''}); {_stats_line(log.stats)}"
    )
    print(
        f"  messages: {', '.join(f'{k} {v}' for k, v in sorted(by_type.items())) or 'none'}; "
        f"undecodable {counters.dropped}"
    )
    if not log.frames:
        raise NothingDecoded(f"no bus-log frame in {log.stats.bytes_total} bytes")
    if args.csv:
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(BUSLOG_CSV_COLUMNS)
        w.writerows(rows)
        _write_text(args.csv, buf.getvalue())
        print(f"  wrote {args.csv}")
    return 0


def decode_text(args, kind: str) -> int:
    """A text file pygnc writes (the info file, a task's log): shown as it is, after a line
    saying what it is (a log: its lines per level)."""
    import re

    data = _read(args.file)
    text = data.decode("utf-8", "replace")
    lines = text.splitlines()
    what = f"{TEXT_KINDS[kind]} {args.file}: {len(data)} bytes, {len(lines)} line{'s' if len(lines) != 1 else ''}"
    if kind == "log":
        # pygnc.logs.LOG_FORMAT: time, spacecraft time, task, LEVEL, message
        levels = re.compile(r"^(?:\S+ ){2,4}(DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
        counts: dict[str, int] = {}
        for line in lines:
            m = levels.match(line)
            if m:
                counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        what += "".join(f", {n} {level}" for level, n in counts.items() if level != "INFO")
    print(what)
    sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    return 0


def decode_batch(args) -> int:
    from ground.decode import batch_files as batches

    bs = batches.read_batches(args.file)
    for line in batches.report_lines(bs):
        print(line)
    if not bs.files:
        raise NothingDecoded(
            "no batch files"
            + (
                f" (ignored: {', '.join(bs.ignored[:10])}{' ...' if len(bs.ignored) > 10 else ''})"
                if bs.ignored
                else ""
            )
        )
    if not bs.rows and not any(f.header for f in bs.files):
        raise NothingDecoded(
            f"{len(bs.files)} batch file{'s' if len(bs.files) > 1 else ''}, none with an intact header or record"
        )
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
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        print(f"decode: --out {args.out} exists and is not a directory", file=sys.stderr)
        return 2
    kind, how = "?", ""
    try:
        if args.kind == "auto":
            kind, how = detect_kind(args.file)
            if kind is None:
                print(f"decode: {args.file}: nothing decoded: {directory_report(args.file)}", file=sys.stderr)
                return 1
        else:
            kind = args.kind
        if args.out and kind != "batch":
            print(f"decode: --out is for batch files ({args.file} is {kind}); use --csv", file=sys.stderr)
            return 2
        if kind in TEXT_KINDS:
            if args.csv:
                print(f"decode: {args.file} is text ({TEXT_KINDS[kind]}): --csv makes no table of it", file=sys.stderr)
                return 2
            if args.file.is_dir():
                print(f"decode: --kind {kind} is for a file, not a directory", file=sys.stderr)
                return 2
            return decode_text(args, kind)
        return {
            "sense": decode_sense,
            "range": decode_range,
            "status": decode_status,
            "buslog": decode_buslog,
            "batch": decode_batch,
        }[kind](args)
    except NothingDecoded as exc:
        if how == GUESSED:
            print(
                f"decode: {args.file}: nothing decoded: not recognised: no magic of a status, batch, bus-log or "
                f"range file, not a name pygnc gives its files ({KNOWN_NAMES}), and as sense.bin (the one "
                f"layout without a magic): {exc}; --kind KIND decodes it as KIND",
                file=sys.stderr,
            )
        else:
            by = (
                ""
                if not how
                else " (recognised by the files in it)"
                if args.file.is_dir()
                else f" (recognised by its {how})"
            )
            print(f"decode: {args.file}: nothing decoded as {kind}{by}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        raise  # the reader went away: ground.__main__ ends quietly
    except OSError as exc:  # names the file it is about (input or --csv output)
        where = exc.filename or args.file
        print(f"decode: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"decode: {args.file}: {exc}", file=sys.stderr)
        return 1
