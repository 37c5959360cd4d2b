"""Where the ground station's data comes from: a replay, downlinked batch files, a live stream.

Every source holds estimate tables in the replay's CSV layout and turns them into the
page's messages with :mod:`ground.station.model`.  The server calls two methods, always
from one worker thread at a time (never on its event loop):

* ``poll()`` - messages for every connected page since the last call (file sources: a
  new ``snapshot`` when their files changed; the live source: ``append`` of the new
  estimates, ``status`` when it changed, ``source`` when the port opened or was lost);
* ``current()`` - the messages a page that just connected needs (snapshot, status, state).

Sources:

* :class:`ReplaySource` - a ``python -m ground replay`` output directory (``orbit.csv``,
  ``attitude.csv``, ``formation.csv``, ``range_residuals.csv``, ``summary.json``);
* :class:`BatchSource` - a directory of downlinked ``batch_NNNNNNNN.bin`` files (or one
  file), read with :func:`ground.decode.batch_files.read_batches`, re-read when files arrive; a
  ``pygnc_status.bin`` beside them gives the status;
* :class:`StreamSource` - a serial port, pseudo-terminal or pyserial URL carrying pygnc's
  side of the streaming protocol (:mod:`pygnc.formats.stream`: EST, STS, CNT, HEL, BYE
  frames), and the host's RNG frames when the tap carries both directions (then the range
  residuals are computed as the estimates arrive).  A port that goes away (unplugged) is
  reopened every second if its path names the same device again (a pseudo-terminal never:
  its number goes to someone else's next terminal); nothing in it can stop the server (bad
  bytes are counted).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import stat
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ground.outputs import tables as tb
from pygnc.formats import batch as fmt
from pygnc.formats import stream as fs
from pygnc.formats.common import open_regular_file, read_regular_file
from pygnc.formats.status import StatusError, decode_status
from pygnc.partners import partner_name

from . import model

#: Bytes read from a live port per call, at most.
READ_CHUNK = 4096
#: A live source keeps at most this many estimates per kind (about a day at 1 s per kind).
LIVE_MAX_ROWS = 100_000
#: Seconds between two attempts to open a live port that is not there.
REOPEN_S = 1.0
#: Latest own orbit estimates an update's formation rows are put in RTN with.
RTN_ORBIT_ROWS = 50


def _signature(paths) -> tuple:
    out = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((p.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


def _starts_with(path: Path, magic: bytes) -> bool:
    """A regular file starting with *magic* (a FIFO or a device is never opened for reading:
    it could block the server)."""
    try:
        fd = open_regular_file(path)
    except OSError:
        return False
    try:
        return os.read(fd, len(magic)) == magic
    except OSError:
        return False
    finally:
        os.close(fd)


def _snapshot(tables: dict, residuals: dict | None, to_unix) -> dict:
    return {
        "type": "snapshot",
        "series": model.series_of(tables, residuals, to_unix),
        "rows": model.row_counts(tables, residuals),
    }


class _FileSource:
    """A directory read whole whenever its files change (checked at most once a second)."""

    live = False
    kind = "files"
    check_s = 1.0

    def __init__(self, path: Path):
        self.path = Path(path)
        self.name = str(self.path)
        self._sig: tuple | None = None
        self._t_check = -math.inf
        self._messages: list[dict] = []
        self._state = {"type": "source", "state": "waiting", "detail": "not read yet"}
        self.time_scale = "spacecraft"

    @property
    def files_root(self) -> Path:
        return self.path if self.path.is_dir() else self.path.parent

    @property
    def files_only(self) -> frozenset[str] | None:
        """The names under :attr:`files_root` offered for download (None: all of them): a
        source given as one file offers that file, not its whole directory."""
        return None if self.path.is_dir() else frozenset({self.path.name})

    def _paths(self) -> list[Path]:
        raise NotImplementedError

    def _watched(self) -> list[Path]:
        """Files whose change means reading the source again."""
        return self._paths()

    def _load(self) -> list[dict]:
        raise NotImplementedError

    def poll(self) -> list[dict]:
        now = time.monotonic()
        if now - self._t_check < self.check_s:
            return []
        self._t_check = now
        sig = _signature(self._watched())
        if sig == self._sig:
            return []
        self._sig = sig
        try:
            self._messages = self._load()
            self._state = {"type": "source", "state": "open", "detail": f"read {len(sig)} files"}
        except Exception as exc:  # a file mid-copy, a hand-edited CSV: say so, keep what we had
            self._state = {"type": "source", "state": "error", "detail": f"{type(exc).__name__}: {exc}"}
            return [self._state]
        return [*self._messages, self._state]

    def current(self) -> list[dict]:
        if self._sig is None:
            self.poll()
        return [*self._messages, self._state]

    def close(self) -> None:
        pass


class ReplaySource(_FileSource):
    kind = "replay"
    FILES = ("orbit.csv", "attitude.csv", "formation.csv", "range_residuals.csv", "summary.json")
    #: Read too when present (a replay before issue 43 has none).
    MORE_FILES = ("partner_orbit.csv",)

    def _paths(self) -> list[Path]:
        return [self.path / f for f in self.FILES + self.MORE_FILES]

    def _load(self) -> list[dict]:
        tables = {}
        for kind in ("orbit", "attitude", "formation", "partner_orbit"):
            p = self.path / f"{kind}.csv"
            tables[kind] = tb.read_csv(p) if p.is_file() else tb.empty_table(kind)
        p = self.path / "range_residuals.csv"
        residuals = tb.read_csv(p) if p.is_file() else None
        to_unix = tb.sc_to_unix(*(tables[k] for k in ("orbit", "attitude", "formation")))  # (residuals: own UTC)
        self.time_scale = (
            "utc"
            if any(
                np.isfinite(np.asarray(tables[k].get("t_gps_s", []), dtype=float)).any() for k in ("orbit", "attitude")
            )
            else "spacecraft"
        )
        summary = {}
        p = self.path / "summary.json"
        if p.is_file():
            summary = json.loads(p.read_text())
        extra = {f"rows_{k}": v for k, v in (summary.get("rows") or {}).items()}
        for k in ("mode", "n_messages", "n_valid_fixes"):
            if k in summary:
                extra[k] = summary[k]
        errors = summary.get("handle_errors")
        if isinstance(errors, dict):  # estimator -> messages its processor failed on
            extra.update({f"handle_errors_{k}": v for k, v in errors.items()})
        for kind, why in (summary.get("missing_processors") or {}).items():
            extra[f"missing_{kind}"] = why
        status = model.status_view(notes=[n for n in summary.get("notes") or [] if isinstance(n, dict)], extra=extra)
        return [
            _snapshot(tables, residuals, to_unix or (lambda x: np.asarray(x, dtype=float))),
            {"type": "status", "status": status},
        ]


class BatchSource(_FileSource):
    kind = "batches"

    def _paths(self) -> list[Path]:
        """The batch files (as :func:`ground.decode.batch_files.read_batches` takes them: named as the
        flight names them, or any ``.bin`` that starts as a batch file does)."""
        if self.path.is_file():
            return [self.path]
        try:
            names = sorted(self.path.iterdir())
        except OSError:
            return []
        return [
            p
            for p in names
            if fmt.FILE_RE.match(p.name)
            or fmt.PART_RE.match(p.name)
            or (p.suffix == ".bin" and _starts_with(p, fmt.MAGIC))
        ]

    def _load(self) -> list[dict]:
        from ground.decode import batch_files as gb
        from ground.outputs.residuals import range_residuals

        bs = gb.read_batches(self.path)
        tables = gb.build_tables(bs)
        res = range_residuals(tables["formation"], gb.range_bodies(tables.get("range")))
        to_unix = tb.sc_to_unix(tables["formation"], tables["orbit"], tables["attitude"])
        clocks = gb.RunClocks(bs.rows)
        self.time_scale = "utc" if clocks.maps else "spacecraft"
        rows = bs.by_kind()
        health = None
        if rows.get("health"):
            last = max(rows["health"], key=lambda r: (r.file.run, r.record.t_sc_s))
            health = {**last.record.values(), "t_sc_s": last.record.t_sc_s}
        notes = [model.note_received({**r.record.values(), "t_sc_s": r.record.t_sc_s}) for r in rows.get("note", [])]
        status = None
        sp = self.files_root / "pygnc_status.bin"
        extra = {
            "files": len(bs.files),
            "records": len(bs.rows),
            "duplicate_records": bs.duplicate_records,
            "bytes_skipped": sum(f.stats.bytes_skipped for f in bs.files),
            "problems": len(bs.problems),
            "gaps": len(bs.gaps),
        }
        if sp.is_file():
            try:
                status = decode_status(read_regular_file(sp))
            except (StatusError, OSError) as exc:
                extra["status_file"] = f"unreadable: {exc}"
        view = model.status_view(
            status=status,
            health=health,
            notes=notes,
            extra=extra,
            problems=bs.problems,
            gaps=[model.gap_text(g, to_unix if clocks.maps else None) for g in bs.gaps],
        )
        return [
            _snapshot(tables, res, to_unix or (lambda x: np.asarray(x, dtype=float))),
            {"type": "status", "status": view},
        ]

    def _watched(self) -> list[Path]:
        return [*self._paths(), self.files_root / "pygnc_status.bin"]


#: Linux's majors of Unix98 pseudo-terminal slaves (/dev/pts/N).
PTY_SLAVE_MAJORS = range(136, 144)


@dataclass(frozen=True)
class DeviceIdentity:
    """What a local serial path opened: its device number and owner.  A path may name
    another device after the first went away - pseudo-terminal numbers are reused
    system-wide, a USB adapter's name goes to the next one plugged in - so a port is
    reopened only when both are the same, and a pseudo-terminal never."""

    rdev: int
    uid: int

    @property
    def pseudo_terminal(self) -> bool:
        return os.major(self.rdev) in PTY_SLAVE_MAJORS

    def __str__(self) -> str:
        return f"device {os.major(self.rdev)}:{os.minor(self.rdev)} owned by uid {self.uid}"

    @classmethod
    def of_port(cls, port) -> DeviceIdentity | None:
        """The identity of an open pyserial port (None: not a character device, e.g. a URL)."""
        try:
            st = os.fstat(port.fileno())
        except (AttributeError, OSError, ValueError, TypeError):
            return None
        return cls(st.st_rdev, st.st_uid) if stat.S_ISCHR(st.st_mode) else None

    def not_back(self, path: str) -> str | None:
        """Why *path* is not to be opened again (None: it is this device again, or nothing
        is there yet: wait for it)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        now = DeviceIdentity(st.st_rdev, st.st_uid) if stat.S_ISCHR(st.st_mode) else None
        if now == self:
            return None
        return f"now another device ({now or 'not a character device'}; it was {self})"


class StreamSource:
    """pygnc's stream frames from a serial port, pseudo-terminal or pyserial URL.

    A reader thread owns the port: it opens it (again every :data:`REOPEN_S` while it is
    not there), reads with a timeout, and decodes frames into estimate bodies, ranges, the
    status and the counters.  ``poll`` hands the new ones to the server as messages.  A
    local device that goes away is reopened only if its path names the same device again
    (:class:`DeviceIdentity`); a pseudo-terminal, or a path now naming another device,
    closes the source for good (state ``closed``, and a line on stderr).
    """

    live = True
    kind = "stream"
    files_root = None
    files_only = None

    def __init__(self, url: str, baud: int = 115200, config=None):
        from pygnc.config import Config

        self.url = url
        self.name = url
        self.baud = baud
        self.config = config or Config()
        self.time_scale = "spacecraft"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bodies = {k: deque(maxlen=LIVE_MAX_ROWS) for k in ("orbit", "attitude", "formation")}
        self._new = {k: [] for k in ("orbit", "attitude", "formation")}
        # estimates and residuals received (the deques keep the last LIVE_MAX_ROWS of them)
        self._received = {k: 0 for k in ("orbit", "attitude", "formation", "residuals")}
        self._peer_rows: dict[str, int] = {}  # partner -> formation estimates received
        self._peer_residuals: dict[str, int] = {}
        self._ranges_pending: list[dict] = []
        self._last_t: dict[int, float] = {}  # peer id -> newest formation estimate, spacecraft s
        self._residuals: deque = deque(maxlen=LIVE_MAX_ROWS)
        self._new_residuals: list[tuple[float, int, float]] = []
        self._status: dict | None = None
        self._counters: dict | None = None
        self._notes: deque = deque(maxlen=50)
        self._stats = {
            "frames": 0,
            "frame_errors": 0,
            "noise_lines": 0,
            "bad_records": 0,
            "reopens": 0,
            "ranges_unresolved": 0,
        }
        self._status_dirty = False
        self._offset: float | None = None
        self._offset_sent: float | None = None
        self._state = {"type": "source", "state": "waiting", "detail": f"opening {url}"}
        self._state_dirty = True
        self._thread = threading.Thread(target=self._run, name="station-stream", daemon=True)
        self._thread.start()

    # -- reader thread -------------------------------------------------------------------------
    def _set_state(self, state: str, detail: str) -> None:
        with self._lock:
            self._state = {"type": "source", "state": state, "detail": detail}
            self._state_dirty = True

    def _closed_for_good(self, why: str) -> None:
        """Stop reading: the port is gone and what its path names now is not it."""
        self._set_state("closed", f"{why}: not reopened (serve it again to read what is there now)")
        print(f"ground serve: {self.url}: {why}: not reopened", file=sys.stderr, flush=True)

    def _run(self) -> None:
        import serial

        reader = fs.FrameReader(accepted_tags=fs.PYGNC_TAGS | {fs.RANGE}, noise_ok=True)
        identity: DeviceIdentity | None = None  # of the device first opened (a local path)
        while not self._stop.is_set():
            if identity is not None:  # reopening: only the very device that went away
                why = identity.not_back(self.url)
                if why:
                    self._closed_for_good(why)
                    return
            try:
                port = serial.serial_for_url(self.url, baudrate=self.baud, timeout=0.2)
            except (serial.SerialException, OSError, ValueError) as exc:
                self._set_state("waiting", f"cannot open {self.url}: {exc}")
                self._stop.wait(REOPEN_S)
                continue
            opened = DeviceIdentity.of_port(port)
            if identity is not None and opened is not None and opened != identity:  # swapped while opening
                port.close()
                self._closed_for_good(f"now another device ({opened}; it was {identity})")
                return
            identity = identity or opened
            self._set_state("open", f"reading {self.url}")
            try:
                while not self._stop.is_set():
                    data = port.read(READ_CHUNK)
                    if data:
                        self._handle(reader.feed(data))
            except (serial.SerialException, OSError) as exc:
                if identity is not None and identity.pseudo_terminal:
                    self._closed_for_good(
                        f"lost ({exc}); a pseudo-terminal that closed never comes back - its number goes to "
                        "the next terminal opened on this machine, someone else's"
                    )
                    return
                self._set_state("waiting", f"lost {self.url} ({exc}); reopening the same device")
                with self._lock:
                    self._stats["reopens"] += 1
                self._stop.wait(REOPEN_S)
            finally:
                try:
                    port.close()
                except Exception:
                    pass

    def _handle(self, items: list) -> None:
        for item in items:
            if isinstance(item, fs.Noise):
                self._stats["noise_lines"] += 1
                continue
            if isinstance(item, fs.FrameError):
                self._stats["frame_errors"] += 1
                continue
            self._stats["frames"] += 1
            try:
                self._frame(item.tag, item.payload)
            except (ValueError, KeyError, IndexError, TypeError, struct.error) as exc:  # a payload of the wrong shape
                self._stats["bad_records"] += 1
                self._notes.append(
                    {
                        "estimator": "station",
                        "code": "bad_payload",
                        "text": f"{item.tag.decode(errors='replace')}: {exc}",
                    }
                )

    def _frame(self, tag: bytes, payload: bytes) -> None:
        if tag == fs.ESTIMATE:
            records, _ = fmt.decode_records(payload)
            if len(records) != 1 or records[0].kind is None:
                self._stats["bad_records"] += 1
                return
            r = records[0]
            v = r.values()
            with self._lock:
                name = r.kind.read_as  # (a superseded layout's record: as its current kind's)
                if name == "note":
                    self._notes.append(model.note_received({**v, "t_sc_s": r.t_sc_s}))
                    self._status_dirty = True
                elif name in self._new:
                    v["t_sc_s"] = r.t_sc_s
                    self._new[name].append(v)
        elif tag == fs.STATUS_FILE:
            st = decode_status(payload)
            with self._lock:
                self._status = st
                off = st.get("clock_utc_minus_sc_s")
                self._offset = off if isinstance(off, float) and math.isfinite(off) else self._offset
                self._status_dirty = True
        elif tag in (fs.COUNTERS, fs.BYE):
            c = fs.decode_counters(payload)
            with self._lock:
                self._counters = c
                self._status_dirty = True
                if tag == fs.BYE:
                    self._notes.append({"estimator": "stream", "code": "bye", "text": "pygnc stopped (BYE)"})
        elif tag == fs.HELLO_TAG:
            v, _, run, cad_ms, t_sc = fs.HELLO.unpack(payload)
            with self._lock:
                self._notes.append(
                    {
                        "estimator": "stream",
                        "code": "hello",
                        "text": f"pygnc up: run {run}, protocol {v}, cadence {cad_ms} ms",
                    }
                )
                self._status_dirty = True
        elif tag == fs.RANGE:
            from pygnc.formats.range_file import RANGE_PACKET_DTYPE, decode_ranges
            from pygnc.formats.settings import DecodeSettings

            n = len(payload) // RANGE_PACKET_DTYPE.itemsize
            pk = np.frombuffer(payload[: n * RANGE_PACKET_DTYPE.itemsize], dtype=RANGE_PACKET_DTYPE)
            rows = decode_ranges(pk, DecodeSettings.from_config(self.config))
            with self._lock:
                over = len(self._ranges_pending) + len(rows) - LIVE_MAX_ROWS
                if over > 0:  # (a partner that never gets an estimate: its ranges wait no longer)
                    self._stats["ranges_unresolved"] += over
                    del self._ranges_pending[:over]
                for r in rows:
                    self._ranges_pending.append(
                        {
                            "t_sc_s": float(r["t_sc_s"]),
                            "peer_id": int(r["peer_id"]),
                            "range_m": float(r["range_m"]),
                            "valid": bool(r["valid"]),
                        }
                    )

    # -- server side -----------------------------------------------------------------------------
    def _unix(self, t_sc):
        off = self._offset
        return np.asarray(t_sc, dtype=float) + (off if off is not None else 0.0)

    def _tables(self, bodies: dict) -> dict:
        from ground.decode import batch_files as gb

        out = {}
        for kind, rows in bodies.items():
            bs = []
            for v in rows:
                b = dict(v)
                b.update(t_gps_s=math.nan, unix_time_s=float(self._unix(b["t_sc_s"])), run=0, sequence=-1)
                bs.append(b)
            out[kind] = gb.ESTIMATE_TABLES[kind](bs) if bs else None
        return out

    def _resolve_ranges(self) -> None:
        """Residuals of the ranges whose peer's estimates now span them (lock held): only the
        newest estimates are looked at (from the right), never the whole history.  A range
        with no estimate near it there (estimates that came out of order) is counted as
        unresolved; one against a range-only partner's prior keeps its time, not its value."""
        from ground.outputs.residuals import estimated, range_residuals

        if not self._ranges_pending:
            return
        ready = [r for r in self._ranges_pending if r["t_sc_s"] <= self._last_t.get(r["peer_id"], -math.inf)]
        if not ready:
            return
        t_lo = min(r["t_sc_s"] for r in ready) - 120.0
        near = list(itertools.takewhile(lambda b: b["t_sc_s"] >= t_lo, reversed(self._bodies["formation"])))[::-1]
        self._ranges_pending = [r for r in self._ranges_pending if r not in ready]
        if not near:
            self._stats["ranges_unresolved"] += len(ready)
            return
        res = range_residuals(self._tables({"formation": near})["formation"], ready)
        self._stats["ranges_unresolved"] += len(ready) - res["t_sc_s"].size
        value = np.where(estimated(res), res["residual_m"], np.nan)
        for t, p, x in zip(res["t_sc_s"].tolist(), res["peer_id"].tolist(), value.tolist()):
            self._residuals.append((t, p, x))
            self._new_residuals.append((t, p, x))

    def _residual_dict(self, rows) -> dict | None:
        if not rows:
            return None
        a = np.array(rows, dtype=float).reshape(-1, 3)
        return {"t_sc_s": a[:, 0], "peer_id": a[:, 1].astype(int), "residual_m": a[:, 2]}

    def _status_message(self) -> dict:
        view = model.status_view(
            status=self._status,
            counters=self._counters,
            notes=list(self._notes),
            extra={f"station_{k}": v for k, v in self._stats.items()},
        )
        return {"type": "status", "status": view}

    def poll(self) -> list[dict]:
        out = []
        with self._lock:
            new = {k: v for k, v in self._new.items() if v}
            for k, v in new.items():
                self._bodies[k].extend(v)
                self._received[k] += len(v)
                self._new[k] = []
            for b in new.get("formation", ()):
                self._last_t[b["peer_id"]] = max(self._last_t.get(b["peer_id"], -math.inf), b["t_sc_s"])
                name = partner_name(b["peer_id"])
                self._peer_rows[name] = self._peer_rows.get(name, 0) + 1
            self._resolve_ranges()
            new_res, self._new_residuals = self._new_residuals, []
            self._received["residuals"] += len(new_res)
            for _, p, _ in new_res:
                name = partner_name(p)
                self._peer_residuals[name] = self._peer_residuals.get(name, 0) + 1
            offset_changed = self._offset is not None and (
                self._offset_sent is None or abs(self._offset - self._offset_sent) > 1e-3
            )
            if offset_changed:  # times of everything so far change: send it all again
                self._offset_sent = self._offset
                self.time_scale = "utc"
                out.append(self._snapshot_locked())
            elif new or new_res:
                tables = self._tables(new)
                latest = list(itertools.islice(reversed(self._bodies["orbit"]), RTN_ORBIT_ROWS))[::-1]
                own = self._tables({"orbit": latest})["orbit"]
                series = model.series_of(
                    tables, self._residual_dict(new_res), self._unix, max_points=None, own_orbit=own
                )
                out.append({"type": "append", "series": series, "rows": self._row_counts_locked()})
            if self._status_dirty:
                self._status_dirty = False
                out.append(self._status_message())
            if self._state_dirty:
                self._state_dirty = False
                out.append(dict(self._state))
        return out

    def _row_counts_locked(self) -> dict:
        """Rows received per group and per partner, as :func:`model.row_counts` (the page
        shows these, not what it was sent of them)."""
        return {
            **self._received,
            "orbits": 0,  # (the kept orbits are downlinked, not streamed)
            "by_peer": {"formation": dict(self._peer_rows), "residuals": dict(self._peer_residuals), "orbits": {}},
        }

    def _snapshot_locked(self) -> dict:
        tables = self._tables({k: list(v) for k, v in self._bodies.items()})
        res = self._residual_dict(list(self._residuals))
        return {
            "type": "snapshot",
            "series": model.series_of(tables, res, self._unix),
            "rows": self._row_counts_locked(),
        }

    def current(self) -> list[dict]:
        with self._lock:
            return [self._snapshot_locked(), self._status_message(), dict(self._state)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


#: What a replay reads (a simulated scenario or downlinked sensor data): such a directory
#: without batch files is refused as a source, naming the replay that makes one.
REPLAY_INPUT = ("sense.bin", "scenario.toml")


def _subdirectories(p: Path) -> list[Path]:
    try:
        return sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
    except OSError:
        return []


def open_source(spec: str, kind: str = "auto", baud: int = 115200, config=None):
    """The source for SOURCE as given on the command line (ValueError with a message when
    it is none of them; a replay's input directory is refused, saying to replay it)."""
    p = Path(spec)
    if kind == "stream" or (kind == "auto" and ("://" in spec or (p.exists() and p.is_char_device()))):
        return StreamSource(spec, baud=baud, config=config)
    if not p.exists():
        raise ValueError(
            f"{spec}: no such file or directory (a serial port, a replay output directory or "
            "a directory of batch files)"
        )
    if kind == "replay" or (kind == "auto" and p.is_dir() and any((p / f).is_file() for f in ReplaySource.FILES)):
        if not p.is_dir():
            raise ValueError(f"{spec}: a replay source is a directory")
        return ReplaySource(p)
    if kind == "batches" or kind == "auto":
        if p.is_file() and not _starts_with(p, fmt.MAGIC) and not fmt.FILE_RE.match(p.name):
            raise ValueError(
                f"{spec}: not a batch file (it does not start with {fmt.MAGIC!r} and is not named "
                "batch_NNNNNNNN.bin); a SOURCE is a replay output directory, batch files or a serial port"
            )
        src = BatchSource(p)
        per_spacecraft = [d for d in _subdirectories(p) if BatchSource(d)._paths()] if not src._paths() else []
        if per_spacecraft:
            raise ValueError(
                f"{spec}: its batch files are in sub-directories, one per spacecraft "
                f"({', '.join(d.name + '/' for d in per_spacecraft[:8])}): serve one at a time, e.g. "
                f"python -m ground serve {per_spacecraft[0]}"
            )
        if not src._paths() and p.is_dir() and any((p / f).exists() for f in REPLAY_INPUT):
            raise ValueError(
                f"{spec}: a scenario or sensor-data directory (sense.bin, range/), the input of "
                f"a replay, not its estimates: replay it first (python -m ground replay {spec} "
                "--out OUT_DIR) and serve OUT_DIR"
            )
        if kind == "auto" and not src._paths():
            raise ValueError(
                f"{spec}: neither a replay output (orbit.csv, summary.json) nor batch files "
                "(batch_NNNNNNNN.bin); give --kind batches to watch an empty directory"
            )
        return src
    raise ValueError(f"unknown source kind {kind!r}")
