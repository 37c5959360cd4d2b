"""Range files ``~/range/rngNNNNN.bin``: peer GPS fixes and crosslink range measurements.

A file is a sequence of groups.  Each group is one 102-byte peer GPS packet followed by
zero or more 12-byte range packets taken at about the same time::

    peer GPS packet (102 bytes)
        0   3 bytes     sync 0xAA 0x44 0x12
        3   99 bytes    GPS segment of the PEER spacecraft (layout in pygnc.formats.gps)

    range packet (12 bytes, all big-endian)
        0   uint32      t_sc_s    spacecraft time of the measurement, unix s
        4   uint16      ms        milliseconds within that second, 0..999
        6   uint8       peer_id   peer spacecraft id (PY4: 0x4A..0x4D)
        7   uint8       flags     bit 0 valid, bit 1 filtered by the radio, bits 2..7 zero
        8   uint32      range_mm  measured range, mm

Resync rules (:func:`decode_range`):

* A sync is accepted only if a whole plausible GPS segment follows it
  (:func:`pygnc.formats.gps.gps_segment_plausible`); bytes before the first accepted sync
  are skipped.  Of two accepted syncs less than 102 bytes apart the later is kept (the
  earlier packet is truncated).
* Every accepted sync starts a group (range packets never start with the sync).  Range
  packets are read on the 12-byte grid after the GPS packet, up to the next accepted
  sync or the end of the data.  A packet is corrupt if ``ms > 999`` or a reserved flag
  bit is set; a corrupt packet ends the group, and it and everything after it up to the
  next accepted sync is skipped, as is a partial packet before the next sync or the end.
* Sync bytes inside range data are rejected by the plausibility test: on the grid they
  can only be range bytes 9..11 (0x00AA4412 mm = 11.2 km is a real range), and then the
  would-be time-status byte is the next packet's ms high byte (0..3), never a NovAtel
  time status.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pygnc.config import Config
from pygnc.formats.common import DecodeStats, as_uint8, gap_stats, read_regular_file
from pygnc.formats.gps import (
    GPS_FIX_DTYPE,
    GPS_SEGMENT_DTYPE,
    GPS_SEGMENT_SIZE,
    decode_gps_segments,
    gps_raw_from_fixes,
    gps_segment_plausible,
)

SYNC = b"\xaa\x44\x12"
PEER_GPS_PACKET_SIZE = len(SYNC) + GPS_SEGMENT_SIZE  # 102
RANGE_PACKET_SIZE = 12

#: Raw on-disk range packet (big-endian, itemsize 12).
RANGE_PACKET_DTYPE = np.dtype(
    [("t_sc_s", ">u4"), ("ms", ">u2"), ("peer_id", "u1"), ("flags", "u1"), ("range_mm", ">u4")]
)
assert RANGE_PACKET_DTYPE.itemsize == RANGE_PACKET_SIZE

FLAG_VALID = 0x01
FLAG_FILTERED = 0x02
FLAGS_RESERVED = 0xFC

#: Decoded range measurement.  ``t_sc_s`` = seconds + ms/1000 on the spacecraft clock;
#: ``group`` indexes ``RangeBatch.peer_fixes``; ``file_index`` is the NNNNN of rngNNNNN.bin
#: (or what the caller passed to :func:`decode_range`).
RANGE_DTYPE = np.dtype(
    [
        ("t_sc_s", "f8"),
        ("peer_id", "u1"),
        ("valid", "?"),
        ("filtered", "?"),
        ("range_m", "f8"),
        ("group", "i4"),
        ("file_index", "i4"),
    ]
)

#: Peer fix: GPS_FIX_DTYPE plus the peer id of the group's first range packet (0 if none).
PEER_FIX_DTYPE = np.dtype(GPS_FIX_DTYPE.descr + [("peer_id", "u1")])

#: Range files are rng<digits>.bin with ASCII digits (not any Unicode digit: "rng０１.bin" is
#: not one); more than 9 digits (beyond int32 file_index) is not one either.
_RANGE_FILE_RE = re.compile(r"rng([0-9]{1,9})\.bin", re.ASCII)


@dataclass
class RangeBatch:
    """Decoded range data: one peer fix per group, the range packets, and decode stats.

    ``files``: paths decoded, in order; ``ignored_files``: names in the directory that are
    not ``rng<digits>.bin`` (or could not be read), for the log.
    """

    peer_fixes: np.ndarray
    ranges: np.ndarray
    stats: DecodeStats
    files: list[str] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)


def packets_ok(packets: np.ndarray) -> np.ndarray:
    """Well-formedness of raw range packets: ms <= 999 and no reserved flag bit."""
    return (packets["ms"] <= 999) & ((packets["flags"] & FLAGS_RESERVED) == 0)


def _accepted_syncs(a: np.ndarray) -> np.ndarray:
    """Offsets of syncs followed by a whole, plausible GPS segment."""
    n = a.size
    if n < PEER_GPS_PACKET_SIZE:
        return np.zeros(0, dtype=np.int64)
    s = np.flatnonzero(a[: n - PEER_GPS_PACKET_SIZE + 1] == SYNC[0])
    s = s[(a[s + 1] == SYNC[1]) & (a[s + 2] == SYNC[2])]
    if s.size == 0:
        return s.astype(np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(a, GPS_SEGMENT_SIZE)
    seg = np.ascontiguousarray(windows[s + len(SYNC)]).view(GPS_SEGMENT_DTYPE).reshape(-1)
    s = s[gps_segment_plausible(seg)].astype(np.int64)
    # Overlapping peer GPS packets: the earlier one lost bytes (the later sync sits in
    # what should be its GPS segment), so the later one wins.
    keep = np.ones(s.size, dtype=bool)
    keep[:-1] = np.diff(s) >= PEER_GPS_PACKET_SIZE
    return s[keep]


def _walk(a: np.ndarray, syncs: np.ndarray) -> list[tuple[int, int, int]]:
    """Framing per the module rules: (sync offset, packets offset, packet count) per group."""
    groups = []
    bounds = np.append(syncs, a.size).tolist()
    for start, limit in zip(bounds[:-1], bounds[1:]):
        pos = start + PEER_GPS_PACKET_SIZE
        k_full = (limit - pos) // RANGE_PACKET_SIZE
        pk = a[pos : pos + k_full * RANGE_PACKET_SIZE].view(RANGE_PACKET_DTYPE)
        bad = np.flatnonzero(~packets_ok(pk))
        groups.append((start, pos, int(bad[0]) if bad.size else k_full))
    return groups


def decode_range(data, config: Config | None = None, file_index: int = 0) -> RangeBatch:
    """Decode one range file held in *data*; never raises on corrupt input.

    ``stats.records`` counts range packets; ``records_skipped`` estimates lost range
    packets (skipped bytes / 12, rounded up per region).
    """
    a = as_uint8(data)
    groups = _walk(a, _accepted_syncs(a))
    n_groups = len(groups)
    gps_raw = np.empty(n_groups, dtype=GPS_SEGMENT_DTYPE)
    counts = np.array([g[2] for g in groups], dtype=np.int64)
    packets = np.empty(int(counts.sum()), dtype=RANGE_PACKET_DTYPE)
    j = 0
    for i, (start, pk_start, count) in enumerate(groups):
        gps_raw[i : i + 1] = a[start + len(SYNC) : pk_start].view(GPS_SEGMENT_DTYPE)
        packets[j : j + count] = a[pk_start : pk_start + count * RANGE_PACKET_SIZE].view(RANGE_PACKET_DTYPE)
        j += count
    group_of = np.repeat(np.arange(n_groups, dtype=np.int32), counts)

    ranges = np.empty(packets.shape, dtype=RANGE_DTYPE)
    ranges["t_sc_s"] = packets["t_sc_s"] + packets["ms"] / 1000.0
    ranges["peer_id"] = packets["peer_id"]
    ranges["valid"] = (packets["flags"] & FLAG_VALID) != 0
    ranges["filtered"] = (packets["flags"] & FLAG_FILTERED) != 0
    ranges["range_m"] = packets["range_mm"] / 1000.0
    ranges["group"] = group_of
    ranges["file_index"] = file_index

    fixes = decode_gps_segments(gps_raw, config)
    peer_fixes = np.zeros(n_groups, dtype=PEER_FIX_DTYPE)
    for name in GPS_FIX_DTYPE.names:
        peer_fixes[name] = fixes[name]
    first = np.concatenate(([0], np.cumsum(counts)[:-1])) if n_groups else counts
    has = counts > 0
    peer_fixes["peer_id"][has] = packets["peer_id"][first[has]]

    starts = np.array([g[0] for g in groups], dtype=np.int64)
    ends = starts + PEER_GPS_PACKET_SIZE + counts * RANGE_PACKET_SIZE
    stats = gap_stats(starts, ends, a.size, RANGE_PACKET_SIZE, packets.size)
    return RangeBatch(peer_fixes=peer_fixes, ranges=ranges, stats=stats)


def range_file_number(name: str) -> int | None:
    """NNNNN of a name ``rng<digits>.bin`` (1 to 9 digits), else None."""
    m = _RANGE_FILE_RE.fullmatch(name)
    return int(m.group(1)) if m else None


def read_range_dir(directory: str | os.PathLike, config: Config | None = None) -> RangeBatch:
    """Decode every ``rng<digits>.bin`` in *directory*, in numeric order of the digits.

    Groups are renumbered across files (``ranges['group']`` indexes the merged
    ``peer_fixes``); ``ranges['file_index']`` is the file's number.  Other names, and
    files that cannot be read (a dangling link, a symlink loop, a FIFO, no permission), are
    listed in ``ignored_files``: one bad entry never costs the others.
    """
    directory = Path(directory)
    numbered, ignored = [], []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        num = range_file_number(entry.name)
        try:
            is_file = entry.is_file()  # follows links: a symlink loop raises ELOOP here
        except OSError:
            is_file = False
        if num is None or not is_file:
            ignored.append(entry.name)
        else:
            numbered.append((num, entry.name))
    numbered.sort()
    fixes, ranges, files = [], [], []
    stats = DecodeStats()
    for num, name in numbered:
        try:
            data = read_regular_file(directory / name)  # never blocks (a FIFO swapped in)
        except OSError:
            ignored.append(name)
            continue
        batch = decode_range(data, config, file_index=num)
        batch.ranges["group"] += sum(f.size for f in fixes)
        fixes.append(batch.peer_fixes)
        ranges.append(batch.ranges)
        stats = stats.merge(batch.stats)
        files.append(str(directory / name))
    return RangeBatch(
        peer_fixes=np.concatenate(fixes) if fixes else np.zeros(0, dtype=PEER_FIX_DTYPE),
        ranges=np.concatenate(ranges) if ranges else np.zeros(0, dtype=RANGE_DTYPE),
        stats=stats,
        files=files,
        ignored_files=ignored,
    )


# --------------------------------------------------------------------------- encoders
def encode_range_packets(packets) -> bytes:
    """Bytes of raw range packets (RANGE_PACKET_DTYPE array, or a sequence of tuples
    ``(t_sc_s, ms, peer_id, flags, range_mm)``)."""
    return np.asarray(packets, dtype=RANGE_PACKET_DTYPE).reshape(-1).tobytes() if len(packets) else b""


def range_packets_from_ranges(ranges: np.ndarray) -> np.ndarray:
    """Raw packets of decoded ranges (RANGE_DTYPE): seconds floored, ms and mm rounded."""
    ranges = np.asarray(ranges).reshape(-1)
    out = np.zeros(ranges.shape, dtype=RANGE_PACKET_DTYPE)
    total_ms = np.rint(ranges["t_sc_s"] * 1000.0).astype(np.int64)
    out["t_sc_s"] = total_ms // 1000
    out["ms"] = total_ms % 1000
    out["peer_id"] = ranges["peer_id"]
    out["flags"] = ranges["valid"].astype(np.uint8) * FLAG_VALID | ranges["filtered"].astype(np.uint8) * FLAG_FILTERED
    out["range_mm"] = np.rint(ranges["range_m"] * 1000.0)
    return out


def encode_range_group(peer_gps, ranges) -> bytes:
    """Bytes of one group: sync + peer GPS segment + range packets.

    *peer_gps*: 99 bytes, a GPS_SEGMENT_DTYPE scalar/array of one, or a GPS_FIX_DTYPE fix.
    *ranges*: RANGE_PACKET_DTYPE array, RANGE_DTYPE array, or sequence of raw tuples.
    """
    if isinstance(peer_gps, (bytes, bytearray, memoryview)):
        gps_bytes = bytes(peer_gps)
    else:
        g = np.asarray(peer_gps).reshape(-1)
        if g.dtype == np.uint8 or g.dtype == GPS_SEGMENT_DTYPE:
            gps_bytes = g.tobytes()
        else:  # decoded fix (GPS_FIX_DTYPE or PEER_FIX_DTYPE)
            gps_bytes = gps_raw_from_fixes(g).tobytes()
    if len(gps_bytes) != GPS_SEGMENT_SIZE:
        raise ValueError(f"peer GPS segment must be {GPS_SEGMENT_SIZE} bytes, got {len(gps_bytes)}")
    if isinstance(ranges, np.ndarray) and ranges.dtype == RANGE_DTYPE:
        ranges = range_packets_from_ranges(ranges)
    return SYNC + gps_bytes + encode_range_packets(ranges)
