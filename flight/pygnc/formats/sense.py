"""sense.bin: the host's batch of sensor samples and GPS fixes.

Record layout (``RECORD_SIZE`` = 251 bytes with the default 5 sensors per record)::

    0                     N x 30-byte sensor segments, oldest first (N = config.sensors_per_record)
    30*N                  99-byte GPS segment (see :mod:`pygnc.formats.gps`)
    30*N + 99             b"\\r\\n" terminator

Sensor segment (30 bytes)::

    0   uint32 BE      t_sc_s        spacecraft time, unix s
    4   3 x int16 LE   mag           magnetometer x, y, z, IMU frame, LSB = config.mag_lsb_ut (1/16 uT)
    10  int16 LE       hall          raw Hall sensor (unused)
    12  3 x int16 LE   gyro          gyro x, y, z, IMU frame, LSB = config.gyro_lsb_deg_s (1/65.6 deg/s)
    18  6 x uint16 BE  sun           OPT3001 result registers, order +X, +Y, +Z, -X, -Y, -Z:
                                     lux = 0.01 * (raw & 0x0FFF) * 2**(raw >> 12)

Decoding is one vectorised pass.  A clean file (length a multiple of the record size,
every record framed) is decoded from a zero-copy strided view.  Otherwise the decoder
resynchronises; see :func:`find_records` for the rules.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pygnc.formats.common import (
    READ_CHUNK_BYTES,
    BytesLike,
    DecodeStats,
    GapTally,
    TailReader,
    as_uint8,
    drain,
    gap_stats,
    iter_decode,
)
from pygnc.formats.gps import (
    GPS_FIX_DTYPE,
    GPS_SEGMENT_DTYPE,
    decode_gps_into,
    gps_segment_plausible,
)
from pygnc.formats.settings import DecodeSettings, resolve

SENSOR_SEGMENT_SIZE = 30
TERMINATOR = b"\r\n"

#: Raw on-disk layout of one sensor segment (itemsize 30).
SENSOR_SEGMENT_DTYPE = np.dtype(
    [
        ("t_sc_s", ">u4"),
        ("mag", "<i2", (3,)),
        ("hall", "<i2"),
        ("gyro", "<i2", (3,)),
        ("sun", ">u2", (6,)),
    ]
)
assert SENSOR_SEGMENT_DTYPE.itemsize == SENSOR_SEGMENT_SIZE

#: Decoded sensor sample.  ``mag_ut`` and ``gyro_deg_s`` are in the IMU frame;
#: ``record_index`` is the index in ``SenseBatch.fixes`` of the record it came from.
SENSOR_DTYPE = np.dtype(
    [
        ("t_sc_s", "f8"),
        ("mag_ut", "f8", (3,)),
        ("hall_raw", "i2"),
        ("gyro_deg_s", "f8", (3,)),
        ("sun_lux", "f8", (6,)),
        ("sun_saturated", "?", (6,)),
        ("record_index", "i4"),
    ]
)

#: Largest OPT3001 reading (register 0xBFFF), lux.
OPT3001_MAX_LUX = 83_865.6
OPT3001_MAX_RAW = 0xBFFF

#: Resync coherence limits (see :func:`find_records`).
MAX_SENSOR_STEP_S = 3600
MAX_GPS_SENSOR_DT_S = 86_400


def record_dtype(sensors_per_record: int = 5) -> np.dtype:
    """Raw on-disk record dtype: sensors (N,), gps, terminator."""
    return np.dtype(
        [
            ("sensors", SENSOR_SEGMENT_DTYPE, (sensors_per_record,)),
            ("gps", GPS_SEGMENT_DTYPE),
            ("terminator", "u1", (2,)),
        ]
    )


RECORD_DTYPE = record_dtype(5)
RECORD_SIZE = RECORD_DTYPE.itemsize
assert RECORD_SIZE == 251


@dataclass
class SenseBatch:
    """Decoded sense.bin.

    ``sensors``: SENSOR_DTYPE, N per record, file order.  ``fixes``: GPS_FIX_DTYPE, one per
    record, ``valid`` set from the decoder's settings.  ``record_offsets``: byte offset of each
    decoded record in the input.  ``stats``: what was decoded and skipped.
    """

    sensors: np.ndarray
    fixes: np.ndarray
    stats: DecodeStats
    record_offsets: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: bytes at the head of the file not read (over the reader's limit; also in ``stats``
    #: as one skipped region)
    bytes_over_limit: int = 0


def opt3001_lux_from_raw(raw: npt.ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
    """lux of OPT3001 result registers: ``0.01 * (raw & 0x0FFF) * 2**(raw >> 12)``.

    *raw*: integer array (any byte order); *out*: optional float64 destination (may be a
    strided field view).
    """
    r = np.asarray(raw).astype(np.uint16)
    mantissa_lux = np.bitwise_and(r, 0x0FFF).astype(np.float64)
    mantissa_lux *= 0.01
    return np.ldexp(mantissa_lux, (r >> 12).astype(np.int32), out=out)


def _structural_ok(recs: np.ndarray) -> np.ndarray:
    """Terminator present and GPS segment plausible."""
    term = recs["terminator"]
    return (term[:, 0] == 0x0D) & (term[:, 1] == 0x0A) & gps_segment_plausible(recs["gps"])


def _coherent(recs: np.ndarray) -> np.ndarray:
    """Spacecraft times of a record hang together (used to pick among resync candidates)."""
    t = recs["sensors"]["t_sc_s"].astype(np.int64)
    step = np.diff(t, axis=1)
    ok = ((step >= 0) & (step <= MAX_SENSOR_STEP_S)).all(axis=1)
    t_gps = recs["gps"]["t_sc_s"].astype(np.int64)
    return ok & ((t_gps == 0) | (np.abs(t_gps - t[:, -1]) <= MAX_GPS_SENSOR_DT_S))


def _select_nonoverlapping(starts: np.ndarray, size: int) -> np.ndarray:
    """Greedy earliest-first choice of non-overlapping intervals [s, s+size) (sorted input).

    Vectorised when nothing overlaps; only clusters of overlapping candidates are walked.
    """
    if starts.size < 2:
        return starts
    close = np.diff(starts) < size
    if not close.any():
        return starts
    keep = np.ones(starts.size, dtype=bool)
    # Clusters: runs of candidates linked by a gap < size.
    in_cluster = np.zeros(starts.size, dtype=bool)
    in_cluster[:-1] |= close
    in_cluster[1:] |= close
    idx = np.flatnonzero(in_cluster)
    end = -1
    for i in idx.tolist():
        s = int(starts[i])
        if i > 0 and not close[i - 1]:
            end = -1  # new cluster
        if s < end:
            keep[i] = False
        else:
            end = s + size
    return starts[keep]


def find_records(a: np.ndarray, sensors_per_record: int = 5, chain_at_start: bool = True) -> np.ndarray:
    """Byte offsets of the records to decode in buffer *a* (uint8), sorted, non-overlapping.
    *chain_at_start*: offset 0 is where an accepted record ended (or the file starts), so
    rule 4 may chain from there (False for a piece of a file cut inside skipped bytes).

    Rules:

    1. Fast path: if the length is a multiple of the record size and every record at
       offsets 0, R, 2R, ... is *framed* (terminator at its end and a plausible GPS
       segment), those are the records.
    2. Otherwise every ``b"\\r\\n"`` at offset q gives a candidate at q - (R - 2).  A
       candidate is *framed* as above; it is *coherent* when also its sensor times are
       non-decreasing with steps <= MAX_SENSOR_STEP_S and its GPS spacecraft time is 0 or
       within MAX_GPS_SENSOR_DT_S of the last sensor time.
    3. Framed-and-coherent candidates are chosen earliest-first without overlap.
    4. In each stretch left uncovered, framed-but-incoherent candidates (e.g. a record
       spanning a clock jump) are accepted when they start exactly where the previous
       accepted record ends (or at offset 0), chaining on in R-byte steps.  Only the left
       end: a candidate ending where the next record starts may have bytes inserted at
       its head (its sensor segments would then be misaligned).
    """
    dtype = record_dtype(sensors_per_record)
    size = dtype.itemsize
    n = a.size
    if n < size:
        return np.zeros(0, dtype=np.int64)
    if n % size == 0 and chain_at_start:
        recs = a.view(dtype)
        if _structural_ok(recs).all():
            return np.arange(0, n, size, dtype=np.int64)

    # Candidate record starts from each "\r\n".
    lf = np.flatnonzero(a[size - 1 :] == 0x0A) + (size - 1)
    lf = lf[a[lf - 1] == 0x0D]
    starts = lf - (size - 1)
    if starts.size == 0:
        return starts.astype(np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(a, size)
    recs = np.ascontiguousarray(windows[starts]).view(dtype).reshape(-1)
    framed = _structural_ok(recs)
    coherent = framed & _coherent(recs)
    chosen = _select_nonoverlapping(starts[coherent], size)

    weak = starts[framed & ~coherent]
    if weak.size:
        chosen = _add_chained(chosen, weak, size, n, chain_at_start)
    return chosen.astype(np.int64)


def _add_chained(chosen: np.ndarray, weak: np.ndarray, size: int, n: int, chain_at_start: bool = True) -> np.ndarray:
    """Rule 4 of :func:`find_records`: fill uncovered stretches with chained weak records."""
    weak_set = set(weak.tolist())
    lo = np.concatenate(([0 if chain_at_start else -1], chosen + size))
    hi = np.concatenate((chosen, [n]))
    wide = (hi - lo >= size) & np.isin(lo, weak)
    extra = []
    for g_lo, g_hi in zip(lo[wide].tolist(), hi[wide].tolist()):
        left = g_lo
        while left + size <= g_hi and left in weak_set:
            extra.append(left)
            left += size
    if not extra:
        return chosen
    return np.sort(np.concatenate((chosen, np.asarray(extra, dtype=np.int64))))


#: Records decoded per pass (source chunk ~0.5 MB): keeps the strided source and the
#: temporaries in cache instead of streaming the whole file once per field.
DECODE_CHUNK = 2048


def decode_records(recs: np.ndarray, settings: DecodeSettings | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Physical sensors (SENSOR_DTYPE, flattened) and fixes (GPS_FIX_DTYPE) of raw records.

    *recs*: 1-D array of :func:`record_dtype` (a zero-copy view of the file is fine).
    Works in chunks of DECODE_CHUNK records so each chunk's source bytes and temporaries
    stay in cache across the per-field passes.
    """
    settings = resolve(settings)
    n = recs.shape[0]
    per = recs.dtype["sensors"].shape[0]
    sensors = np.empty(n * per, dtype=SENSOR_DTYPE)
    fixes = np.empty(n, dtype=GPS_FIX_DTYPE)
    o = sensors.reshape(n, per)
    for i in range(0, n, DECODE_CHUNK):
        chunk = recs[i : i + DECODE_CHUNK]
        _decode_sensor_chunk(chunk["sensors"], o[i : i + DECODE_CHUNK], i, settings)
        decode_gps_into(chunk["gps"], fixes[i : i + DECODE_CHUNK], settings)
    return sensors, fixes


def _decode_sensor_chunk(s: np.ndarray, o: np.ndarray, first_index: int, settings: DecodeSettings) -> None:
    o["t_sc_s"] = s["t_sc_s"]
    np.multiply(s["mag"], settings.mag_lsb_ut, out=o["mag_ut"])
    o["hall_raw"] = s["hall"]
    np.multiply(s["gyro"], settings.gyro_lsb_deg_s, out=o["gyro_deg_s"])
    lux = opt3001_lux_from_raw(s["sun"], out=o["sun_lux"])
    np.greater_equal(lux, OPT3001_MAX_LUX, out=o["sun_saturated"])
    o["record_index"] = np.arange(first_index, first_index + s.shape[0], dtype=np.int32)[:, None]


def decode_sensor_segments(data: BytesLike, settings: DecodeSettings | None = None) -> np.ndarray:
    """Sensor samples (SENSOR_DTYPE, ``record_index`` -1) of whole 30-byte segments, e.g. a
    live stream's ``SNS`` payload (a trailing partial segment is ignored)."""
    settings = resolve(settings)
    a = as_uint8(data)
    n = a.size // SENSOR_SEGMENT_SIZE
    seg = a[: n * SENSOR_SEGMENT_SIZE].view(SENSOR_SEGMENT_DTYPE).reshape(n, 1)
    out = np.empty((n, 1), dtype=SENSOR_DTYPE)
    _decode_sensor_chunk(seg, out, 0, settings)
    out["record_index"] = -1
    return out.reshape(n)


def decode_sense(data: BytesLike, settings: DecodeSettings | None = None) -> SenseBatch:
    """Decode a whole sense.bin held in *data* (bytes, bytearray, memoryview, uint8 array).

    Never raises on corrupt input: unframed bytes are skipped and counted in ``stats``.
    """
    settings = resolve(settings)
    a = as_uint8(data)
    dtype = record_dtype(settings.sensors_per_record)
    size = dtype.itemsize
    starts = find_records(a, settings.sensors_per_record)
    if starts.size and starts.size * size == a.size:
        recs = a.view(dtype)  # clean file: zero-copy strided view
    elif starts.size:
        windows = np.lib.stride_tricks.sliding_window_view(a, size)
        recs = np.ascontiguousarray(windows[starts]).view(dtype).reshape(-1)
    else:
        recs = np.zeros(0, dtype=dtype)
    sensors, fixes = decode_records(recs, settings)
    stats = gap_stats(starts, starts + size, a.size, size, starts.size)
    return SenseBatch(sensors=sensors, fixes=fixes, stats=stats, record_offsets=starts)


class SenseStreamDecoder:
    """Decodes sense.bin bytes fed piece by piece (:meth:`feed`), holding at most a piece
    and two records of them: the records and statistics are those :func:`decode_sense`
    finds in the whole buffer.

    A piece's records are kept only up to one record before its end (a candidate that
    could overlap them lies wholly in the piece, so the choice among candidates is the
    one the whole buffer gives); the rest - at most two records' worth, or the record
    being chained - is decoded with the next piece.  Skipped regions are counted in file
    offsets and merged across pieces.  *base_offset*: the file offset of the first byte fed
    (bytes before it count as one skipped region: the head of a file read only in part).
    *expected_bytes* sizes the output arrays (they grow if more comes).
    """

    def __init__(self, settings: DecodeSettings | None = None, expected_bytes: int = 0, base_offset: int = 0):
        self.settings = resolve(settings)
        self.per = self.settings.sensors_per_record
        self.dtype = record_dtype(self.per)
        self.size = self.dtype.itemsize
        cap = max(1, int(expected_bytes) // self.size + 1)
        self.sensors = np.empty(cap * self.per, dtype=SENSOR_DTYPE)
        self.fixes = np.empty(cap, dtype=GPS_FIX_DTYPE)
        self.offsets = np.empty(cap, dtype=np.int64)
        self.n = 0
        self.carry = b""
        self.pos = int(base_offset)  # file offset of carry[0]
        self.chain = base_offset == 0  # carry[0] is a file start or a record end
        self.gaps = GapTally(self.size)
        self.gaps.add(0, self.pos)
        self.done = False

    @property
    def piece_bytes(self) -> int:
        """A good piece length: READ_CHUNK_BYTES rounded down to whole records (a clean,
        aligned file then takes the fast path in every piece)."""
        return max(self.size, (READ_CHUNK_BYTES // self.size) * self.size)

    def _grow(self, need: int) -> None:
        cap = self.fixes.size
        if need <= cap:
            return
        cap = max(need, 2 * cap)
        for name, per in (("sensors", self.per), ("fixes", 1), ("offsets", 1)):
            old = getattr(self, name)
            new = np.empty(cap * per, dtype=old.dtype)
            new[: self.n * per] = old[: self.n * per]
            setattr(self, name, new)

    def feed(self, data: BytesLike, final: bool = False) -> None:
        """Decode what *data* completes; *final*: the end of the input (the rest is decoded)."""
        if self.done:
            raise ValueError("feed after the final piece")
        buf = self.carry + bytes(data) if self.carry else bytes(data)
        a = as_uint8(buf)
        n, size = a.size, self.size
        starts = find_records(a, self.per, self.chain)
        if final:
            end = n
        else:
            starts = starts[starts + size <= n - size]
            end = max(int(starts[-1]) + size if starts.size else 0, n - 2 * size + 1, 0)
        if starts.size:
            if starts.size * size == n:
                recs = a.view(self.dtype)
            else:
                windows = np.lib.stride_tricks.sliding_window_view(a, size)
                recs = np.ascontiguousarray(windows[starts]).view(self.dtype).reshape(-1)
            sensors, fixes = decode_records(recs, self.settings)
            k, m = self.n, starts.size
            self._grow(k + m)
            sensors["record_index"] += k
            self.sensors[k * self.per : (k + m) * self.per] = sensors
            self.fixes[k : k + m] = fixes
            self.offsets[k : k + m] = starts + self.pos
            self.n = k + m
        self.gaps.add_between(self.pos, starts, starts + size, 0, end)
        last_end = int(starts[-1]) + size if starts.size else -1
        if end:
            self.chain = end == last_end
        self.carry = buf[end:]
        self.pos += end
        self.done = final

    def result(self, n_bytes: int | None = None) -> SenseBatch:
        """The decoded batch (after the final piece); *n_bytes*: the file's size (default:
        every byte fed, plus the base offset)."""
        if not self.done:
            self.feed(b"", final=True)
        k, per = self.n, self.per

        def trim(a: np.ndarray, m: int) -> np.ndarray:
            return a[:m].copy() if m < a.size // 2 else a[:m]

        stats = self.gaps.stats(self.pos if n_bytes is None else n_bytes, k)
        return SenseBatch(
            sensors=trim(self.sensors, k * per),
            fixes=trim(self.fixes, k),
            stats=stats,
            record_offsets=trim(self.offsets, k),
        )


def iter_read_sense_file(
    path: str | os.PathLike, settings: DecodeSettings | None = None, max_bytes: int | None = None
) -> Generator[None, None, SenseBatch]:
    """A generator reading and decoding the sense.bin at *path* in pieces of about
    READ_CHUNK_BYTES: it yields after each piece (the caller's chance to do other work)
    and returns the :class:`SenseBatch`.  *max_bytes*: read only the newest (last) this
    many bytes; the head not read is ``bytes_over_limit`` and counts as one skipped
    region.  ``OSError`` if it is not a regular file (a FIFO, a directory: never blocks)."""
    with TailReader(path, max_bytes) as r:
        dec = SenseStreamDecoder(settings, r.size - r.start, r.start)
        return (yield from iter_decode(r, dec, dec.piece_bytes))


def read_sense_file(
    path: str | os.PathLike, settings: DecodeSettings | None = None, max_bytes: int | None = None
) -> SenseBatch:
    """Read and decode the sense.bin at *path* (:func:`iter_read_sense_file` to its end)."""
    return drain(iter_read_sense_file(path, settings, max_bytes))


# --------------------------------------------------------------------------- encoders
def encode_sense_records(sensor_raw: np.ndarray, gps_raw: np.ndarray) -> bytes:
    """Bytes of sense.bin records from raw sensor segments (n, N) and GPS segments (n,)."""
    sensor_raw = np.asarray(sensor_raw, dtype=SENSOR_SEGMENT_DTYPE)
    gps_raw = np.asarray(gps_raw, dtype=GPS_SEGMENT_DTYPE).reshape(-1)
    if sensor_raw.ndim != 2 or sensor_raw.shape[0] != gps_raw.shape[0]:
        raise ValueError(f"need sensor_raw (n, N) and gps_raw (n,), got {sensor_raw.shape} and {gps_raw.shape}")
    recs = np.empty(gps_raw.shape[0], dtype=record_dtype(sensor_raw.shape[1]))
    recs["sensors"] = sensor_raw
    recs["gps"] = gps_raw
    recs["terminator"] = (0x0D, 0x0A)
    return recs.tobytes()


def mag_raw_from_ut(mag_ut: npt.ArrayLike, settings: DecodeSettings | None = None) -> np.ndarray:
    """int16 magnetometer codes of fields in uT (rounded, clipped to int16)."""
    settings = resolve(settings)
    return _to_int16(np.asarray(mag_ut, dtype=np.float64) / settings.mag_lsb_ut)


def gyro_raw_from_deg_s(gyro_deg_s: npt.ArrayLike, settings: DecodeSettings | None = None) -> np.ndarray:
    """int16 gyro codes of rates in deg/s (rounded, clipped to int16)."""
    settings = resolve(settings)
    return _to_int16(np.asarray(gyro_deg_s, dtype=np.float64) / settings.gyro_lsb_deg_s)


def _to_int16(x: np.ndarray) -> np.ndarray:
    x = np.nan_to_num(np.rint(x), nan=0.0)
    return np.clip(x, -32768, 32767).astype(np.int16)


def opt3001_raw_from_lux(lux: npt.ArrayLike) -> np.ndarray:
    """OPT3001 register (uint16) of illuminances in lux.

    Picks the smallest exponent e in 0..11 whose full scale 0.01*4095*2**e holds the
    value (best resolution), rounds the mantissa, and saturates at 0xBFFF (83 865.6 lux).
    Negative and NaN become 0.  ``opt3001_lux_from_raw(opt3001_raw_from_lux(x))`` is
    within half an LSB (0.005 * 2**e lux) of x below saturation.
    """
    x = np.nan_to_num(np.asarray(lux, dtype=np.float64), nan=0.0, posinf=OPT3001_MAX_LUX)
    x = np.clip(x, 0.0, OPT3001_MAX_LUX)
    counts = x / 0.01
    # Smallest exponent such that the rounded mantissa fits in 12 bits.
    e = np.zeros(counts.shape, dtype=np.int64)
    for _ in range(11):
        e = np.where(np.rint(counts / 2.0**e) > 0x0FFF, e + 1, e)
    m = np.minimum(np.rint(counts / 2.0**e), 0x0FFF).astype(np.int64)
    return ((e << 12) | m).astype(np.uint16)
