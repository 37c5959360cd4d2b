"""CCSDS Orbit Ephemeris Message, version 2.0, KVN (CCSDS 502.0-B-2, "Orbit Data Messages").

Layout written (one segment)::

    CCSDS_OEM_VERS = 2.0
    COMMENT ...
    CREATION_DATE = 2025-03-20T09:00:00.000
    ORIGINATOR = PYGNC

    META_START
    OBJECT_NAME = sc0
    OBJECT_ID = sc0
    CENTER_NAME = EARTH
    REF_FRAME = ITRF                 (or GCRF)
    TIME_SYSTEM = UTC
    START_TIME = <first epoch>
    STOP_TIME = <last epoch>
    INTERPOLATION = HERMITE
    INTERPOLATION_DEGREE = 3
    META_STOP

    COMMENT ...
    <epoch> X Y Z X_DOT Y_DOT Z_DOT      km and km/s
    ...

    COVARIANCE_START                     (optional)
    EPOCH = <epoch>
    COV_REF_FRAME = ITRF
    <lower triangle of the 6x6 position/velocity covariance, rows of 1..6 values>
    COVARIANCE_STOP

With each row's quality word (:func:`write_oem`'s *quality*), a run of rows of one word is
a segment of its own, its data section opening with ``COMMENT quality <word>`` (and what the
word means when it is not ``ok``): an ephemeris consumer that reads no comments still meets
the spans that are not usable at segment boundaries, and never interpolates across them.

Epochs are UTC, ``YYYY-MM-DDThh:mm:ss.ffffff``; positions km, velocities km/s, covariance
km², km²/s, km²/s².  :func:`read_oem` parses this (and the day-of-year epoch form) back,
for the tests and for anyone who wants to load an ephemeris.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pygnc.atomic import write_atomic

VERSION = "2.0"
#: REF_FRAME values this writer produces: pygnc's ECEF is ITRS (WGS-84 at the cm level);
#: GCRF is the GCRS of pygnc.frames (UT1 taken equal to UTC, see there).
FRAMES = ("ITRF", "GCRF")

_EPOCH_FMT = "%Y-%m-%dT%H:%M:%S"


def format_epoch(unix_time_s: float, decimals: int = 6) -> str:
    """POSIX seconds (UTC) -> ``YYYY-MM-DDThh:mm:ss.ffffff``."""
    scale = 10**decimals
    total = round(float(unix_time_s) * scale)
    whole, frac = divmod(total, scale)
    t = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=whole)
    text = t.strftime(_EPOCH_FMT)
    return f"{text}.{frac:0{decimals}d}" if decimals else text


def parse_epoch(text: str) -> float:
    """``YYYY-MM-DDThh:mm:ss[.f]`` or ``YYYY-DDDThh:mm:ss[.f]`` (UTC) -> POSIX seconds."""
    text = text.strip().rstrip("Z")
    date, _, clock = text.partition("T")
    if not clock:
        raise ValueError(f"not a CCSDS epoch: {text!r}")
    if date.count("-") == 1:
        year, doy = date.split("-")
        day = _dt.datetime(int(year), 1, 1) + _dt.timedelta(days=int(doy) - 1)
    else:
        day = _dt.datetime.strptime(date, "%Y-%m-%d")
    hms, _, frac = clock.partition(".")
    h, m, s = (int(v) for v in hms.split(":"))
    base = (day - _dt.datetime(1970, 1, 1)).total_seconds() + 3600 * h + 60 * m + s
    return base + (float("0." + frac) if frac else 0.0)


def _num(x: float) -> str:
    return f"{x: .9f}"


def _cov_num(x: float) -> str:
    return f"{x: .9e}"


def write_oem(
    path,
    unix_time_s,
    state_m,
    *,
    ref_frame: str = "ITRF",
    object_name: str = "PYGNC",
    object_id: str | None = None,
    originator: str = "PYGNC",
    covariances_m=None,
    comments: list[str] | None = None,
    creation_unix_s: float | None = None,
    quality=None,
) -> int:
    """Write an OEM of *state_m* (n, 6) [m, m/s] at *unix_time_s* (n,) UTC.

    *covariances_m*: optional (n, 6, 6) [m², m²/s, m²/s²] in *ref_frame*; one covariance
    block per epoch.  *quality*: optional (n,) words (the status file's): one segment per run
    of one word.  Rows with a non-finite value are left out.  Returns the number of
    ephemeris lines; raises ``ValueError`` when none is left (an OEM needs data).
    """
    if ref_frame not in FRAMES:
        raise ValueError(f"ref_frame must be one of {FRAMES}, got {ref_frame!r}")
    t = np.asarray(unix_time_s, dtype=float).ravel()
    x = np.asarray(state_m, dtype=float).reshape(-1, 6)
    ok = np.isfinite(t) & np.all(np.isfinite(x), axis=1)
    cov = None
    if covariances_m is not None:
        cov = np.asarray(covariances_m, dtype=float).reshape(-1, 6, 6)
        ok &= np.all(np.isfinite(cov), axis=(1, 2))
    words = None if quality is None else np.asarray(quality, dtype=object).ravel()
    if words is not None and words.size != ok.size:
        raise ValueError(f"quality has {words.size} words for {ok.size} states")
    order = np.argsort(t[ok], kind="stable")
    t, x = t[ok][order], x[ok][order]
    cov = cov[ok][order] if cov is not None else None
    words = words[ok][order] if words is not None else None
    if t.size == 0:
        raise ValueError("no finite state to write")
    # OEM epochs must increase: keep the first of any repeated epoch.
    keep = np.concatenate(([True], np.diff(t) > 0))
    t, x = t[keep], x[keep]
    cov = cov[keep] if cov is not None else None
    words = words[keep] if words is not None else None
    created = _dt.datetime.now(_dt.UTC).timestamp() if creation_unix_s is None else creation_unix_s
    lines = [f"CCSDS_OEM_VERS = {VERSION}"]
    lines += [f"COMMENT {c}" for c in (comments or [])]
    lines += [f"CREATION_DATE = {format_epoch(created, 3)}", f"ORIGINATOR = {originator}"]
    cuts = [0, t.size] if words is None else [0, *np.flatnonzero(words[1:] != words[:-1]) + 1, t.size]
    for a, b in zip(cuts[:-1], cuts[1:]):
        lines += [
            "",
            "META_START",
            f"OBJECT_NAME = {object_name}",
            f"OBJECT_ID = {object_id or object_name}",
            "CENTER_NAME = EARTH",
            f"REF_FRAME = {ref_frame}",
            "TIME_SYSTEM = UTC",
            f"START_TIME = {format_epoch(t[a])}",
            f"STOP_TIME = {format_epoch(t[b - 1])}",
            "INTERPOLATION = HERMITE",
            "INTERPOLATION_DEGREE = 3",
            "META_STOP",
            "",
        ]
        if words is not None:
            lines.append(f"COMMENT quality {_quality_comment(str(words[a]))}")
        lines.append("COMMENT position km, velocity km/s")
        for ti, row in zip(t[a:b], x[a:b] * 1e-3):
            lines.append(" ".join([format_epoch(ti)] + [_num(v) for v in row]))
        if cov is not None:
            lines += ["", "COVARIANCE_START"]
            for ti, c in zip(t[a:b], cov[a:b] * 1e-6):
                lines += [f"EPOCH = {format_epoch(ti)}", f"COV_REF_FRAME = {ref_frame}"]
                for i in range(6):
                    lines.append(" ".join(_cov_num(c[i, j]) for j in range(i + 1)))
            lines.append("COVARIANCE_STOP")
    text = "\n".join(lines) + "\n"
    write_atomic(Path(path), text.encode())
    return int(t.size)


def _quality_comment(word: str) -> str:
    """``<word>`` and, unless ``ok``, that the segment is not usable as an ephemeris."""
    if word == "ok":
        return "ok"
    return f"{word or 'not recorded'}: not usable as an ephemeris (the status file's word; see operations.md)"


@dataclass
class OemSegment:
    metadata: dict = field(default_factory=dict)
    unix_time_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: (n, 6) position km, velocity km/s (as in the file)
    state_km: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))
    #: [(unix_time_s, frame or None, (6, 6) km-based covariance)]
    covariances: list = field(default_factory=list)
    comments: list = field(default_factory=list)


@dataclass
class Oem:
    header: dict = field(default_factory=dict)
    segments: list[OemSegment] = field(default_factory=list)


class OemError(ValueError):
    """The text is not an OEM this reader understands (message says where)."""


_HEADER_KEYS = {"CCSDS_OEM_VERS", "CREATION_DATE", "ORIGINATOR", "MESSAGE_ID"}


def read_oem(text: str) -> Oem:
    """Parse OEM KVN text (header, segments of metadata, ephemeris and covariance)."""
    out = Oem()
    seg: OemSegment | None = None
    mode = "header"
    times, states = [], []
    cov_rows: list[list[float]] = []
    cov_epoch = cov_frame = None

    def close_segment():
        if seg is not None:
            seg.unix_time_s = np.asarray(times, dtype=float)
            seg.state_km = np.asarray(states, dtype=float).reshape(-1, 6)

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("COMMENT"):
            (seg.comments if seg is not None else out.header.setdefault("COMMENT", [])).append(line[7:].strip())
            continue
        if line == "META_START":
            close_segment()
            seg = OemSegment()
            out.segments.append(seg)
            times, states = [], []
            mode = "meta"
            continue
        if line == "META_STOP":
            mode = "data"
            continue
        if line == "COVARIANCE_START":
            mode = "cov"
            continue
        if line == "COVARIANCE_STOP":
            mode = "data"
            continue
        if mode in ("header", "meta") or (mode == "cov" and "=" in line):
            key, sep, value = line.partition("=")
            if not sep:
                raise OemError(f"line {lineno}: expected KEY = VALUE, got {line!r}")
            key, value = key.strip(), value.strip()
            if mode == "header":
                out.header[key] = value
            elif mode == "meta":
                seg.metadata[key] = value
            elif key == "EPOCH":
                cov_epoch, cov_frame, cov_rows = parse_epoch(value), None, []
            elif key == "COV_REF_FRAME":
                cov_frame = value
            continue
        if mode == "cov":
            cov_rows.append([float(v) for v in line.split()])
            if len(cov_rows) == 6:
                c = np.zeros((6, 6))
                for i, row in enumerate(cov_rows):
                    if len(row) != i + 1:
                        raise OemError(f"line {lineno}: covariance row {i + 1} has {len(row)} values")
                    c[i, : i + 1] = row
                c = c + np.tril(c, -1).T
                seg.covariances.append((cov_epoch, cov_frame, c))
                cov_rows = []
            continue
        if mode == "data":
            parts = line.split()
            if len(parts) not in (7, 10):
                raise OemError(f"line {lineno}: an ephemeris line has 7 or 10 fields, got {len(parts)}")
            times.append(parse_epoch(parts[0]))
            states.append([float(v) for v in parts[1:7]])
            continue
        raise OemError(f"line {lineno}: unexpected {line!r}")
    close_segment()
    if out.header.get("CCSDS_OEM_VERS") is None:
        raise OemError("missing CCSDS_OEM_VERS")
    for key in ("CREATION_DATE", "ORIGINATOR"):
        if key not in out.header:
            raise OemError(f"missing header keyword {key}")
    for k, s in enumerate(out.segments):
        for key in ("OBJECT_NAME", "OBJECT_ID", "CENTER_NAME", "REF_FRAME", "TIME_SYSTEM", "START_TIME", "STOP_TIME"):
            if key not in s.metadata:
                raise OemError(f"segment {k + 1}: missing metadata keyword {key}")
        if s.unix_time_s.size:
            t0, t1 = parse_epoch(s.metadata["START_TIME"]), parse_epoch(s.metadata["STOP_TIME"])
            if s.unix_time_s[0] < t0 - 1e-6 or s.unix_time_s[-1] > t1 + 1e-6:
                raise OemError(f"segment {k + 1}: ephemeris outside START_TIME .. STOP_TIME")
            if np.any(np.diff(s.unix_time_s) <= 0):
                raise OemError(f"segment {k + 1}: epochs do not increase")
    return out
