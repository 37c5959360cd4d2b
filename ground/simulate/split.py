"""A part of a simulated scenario: one spacecraft's files over a span of its clock, and the
truth over a span of GPS time.

:func:`split_files` writes the ``sense.bin`` records and the range groups (a GPS packet and
the ranges after it, PY4 layout: docs/interface.md, "Range files") whose spacecraft times
lie in a span, as a host would have collected them over that span (range files of at most
25 600 bytes, numbered from 0).  :func:`slice_truth` keeps the truth arrays
(:data:`ground.simulate.scenario.TRUTH_ARRAYS`) inside a GPS-time span, each along its own time
axis, the truth grid optionally thinned to every *step*-th point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Largest range file the split writes, bytes (the PY4 host's rotation size).
RANGE_FILE_MAX_BYTES = 25_600

#: Time axis name in TRUTH_ARRAYS' shapes -> the array holding that axis' GPS times.
_TIME_AXES = {"n_t": "t_gps_s", "n_s": "sensor_t_gps_s", "n_rec": "gps_t_gps_s", "n_range": "range_t_gps_s"}


def _range_groups(range_dir: Path) -> list[tuple[bytes, list[bytes]]]:
    from pygnc.formats import range_file as rf

    groups: list[tuple[bytes, list[bytes]]] = []
    for f in sorted(range_dir.glob("rng*.bin"), key=lambda p: rf.range_file_number(p.name)):
        b = f.read_bytes()
        i, cur = 0, None
        while i < len(b):
            if b[i : i + 3] == rf.SYNC:
                cur = (b[i : i + rf.GPS_PACKET_SIZE], [])
                groups.append(cur)
                i += rf.GPS_PACKET_SIZE
            else:
                if cur is not None:
                    cur[1].append(b[i : i + rf.RANGE_PACKET_SIZE])
                i += rf.RANGE_PACKET_SIZE
    return groups


def range_files(range_dir: Path, sc_from: float, sc_to: float) -> list[bytes]:
    """The contents of range files holding *range_dir*'s range packets whose spacecraft times
    lie in [sc_from, sc_to), each after its GPS packet (groups left without a range dropped),
    in files of at most :data:`RANGE_FILE_MAX_BYTES`."""
    files, buf = [], b""
    for gps, ranges in _range_groups(Path(range_dir)):
        ranges = [r for r in ranges if sc_from <= int.from_bytes(r[2:6], "big") < sc_to]
        if not ranges:
            continue
        chunk = gps + b"".join(ranges)
        if buf and len(buf) + len(chunk) > RANGE_FILE_MAX_BYTES:
            files.append(buf)
            buf = b""
        buf += chunk
    if buf:
        files.append(buf)
    return files


def split_files(src: Path, dst: Path, sc_from: float, sc_to: float) -> None:
    """*src*'s sense.bin records and range packets whose spacecraft times lie in [sc_from,
    sc_to), written to *dst* (``sense.bin``, ``range/rngNNNNN.bin``)."""
    from pygnc.formats.sense import RECORD_SIZE

    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    data = (src / "sense.bin").read_bytes()
    recs = [data[i : i + RECORD_SIZE] for i in range(0, len(data) - RECORD_SIZE + 1, RECORD_SIZE)]
    (dst / "sense.bin").write_bytes(b"".join(r for r in recs if sc_from <= int.from_bytes(r[0:4], "big") < sc_to))
    (dst / "range").mkdir(exist_ok=True)
    for n, content in enumerate(range_files(src / "range", sc_from, sc_to)):
        (dst / "range" / f"rng{n:05d}.bin").write_bytes(content)


def slice_truth(arrays: dict, t_from_gps_s: float, t_to_gps_s: float, step: int = 1) -> dict:
    """The truth inside [t_from_gps_s, t_to_gps_s] (each array along its time axis; the
    grid thinned to every *step*-th point, its last point kept)."""
    from ground.simulate.scenario import TRUTH_ARRAYS

    keep = {}
    for axis, key in _TIME_AXES.items():
        t = np.asarray(arrays[key], dtype=float)
        idx = np.flatnonzero((t >= t_from_gps_s) & (t <= t_to_gps_s))
        if axis == "n_t" and step > 1 and idx.size:
            idx = np.union1d(idx[::step], idx[-1:])
        keep[axis] = idx
    out = {}
    for name, (shape, _) in TRUTH_ARRAYS.items():
        a = np.asarray(arrays[name])
        dims = [d.strip() for d in shape.strip("()").split(",") if d.strip()]
        for i, d in enumerate(dims):
            if d in keep:
                a = np.take(a, keep[d], axis=i)
        out[name] = a
    # the clock offset is stated at the first grid time: carried to the new first one
    if keep["n_t"].size:
        j = int(keep["n_t"][0])
        rate = np.asarray(arrays["clock_drift_ppm"], dtype=float) * 1e-6
        out["sc_minus_utc_s"] = np.asarray(arrays["sc_minus_utc_s"], dtype=float) + rate * float(
            arrays["t_gps_s"][j] - arrays["t_gps_s"][0]
        )
    return out
