"""Pieces shared by the batch-file decoders: reading a file safely, decode statistics and
skip accounting."""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import asdict, dataclass
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from ..regular_files import open_regular_file  # noqa: F401 - the decoders' and the ground's name for it

#: What the decoders take: bytes, bytearray, memoryview or a uint8 array.
BytesLike = bytes | bytearray | memoryview | np.ndarray

#: Bytes read from an input file per read (and decoded per pass by the chunked decoders).
READ_CHUNK_BYTES = 1 << 20


def read_regular_file(path: str | os.PathLike) -> bytes:
    """All bytes of the regular file at *path* (:func:`open_regular_file`'s checks)."""
    with TailReader(path, None) as r:
        return r.read(r.size - r.start) if r.size else b""


class _OverLimit(Protocol):
    bytes_over_limit: int


_B = TypeVar("_B", bound=_OverLimit)
_B_co = TypeVar("_B_co", bound=_OverLimit, covariant=True)
_R = TypeVar("_R")


class StreamDecoder(Protocol[_B_co]):
    """What :func:`iter_decode` feeds: a ``*StreamDecoder`` whose result counts the bytes
    not read."""

    def feed(self, data: bytes, final: bool = False) -> None: ...

    def result(self, n_bytes: int | None = None) -> _B_co: ...


class TailReader:
    """The newest bytes of a regular file, read in bounded pieces.

    At most *max_bytes* (None: all) are read: the last ones of the file's size when it was
    opened (input files grow at their end, so the tail is the newest data); the head before
    ``start`` is not read.  ``read(n)`` returns at most *n* bytes, ``b""`` at the end.
    Opening never blocks and refuses anything but a regular file (:func:`open_regular_file`).
    """

    def __init__(self, path: str | os.PathLike, max_bytes: int | None):
        self.path = path
        self.fd: int | None = open_regular_file(path)
        self.size = os.fstat(self.fd).st_size
        self.start = 0 if max_bytes is None else max(0, self.size - max(0, int(max_bytes)))
        self.pos = self.start

    @property
    def bytes_over_limit(self) -> int:
        """Bytes of the file before ``start``: not read."""
        return self.start

    def read(self, n: int) -> bytes:
        want = min(int(n), self.size - self.pos)
        if want <= 0 or self.fd is None:
            return b""
        parts, got = [], 0
        while got < want:
            chunk = os.pread(self.fd, min(want - got, READ_CHUNK_BYTES), self.pos + got)
            if not chunk:  # the file shrank
                self.size = self.pos + got
                break
            parts.append(chunk)
            got += len(chunk)
        self.pos += got
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> TailReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class DecodeStats:
    """What a decoder consumed and what it had to throw away.

    ``bytes_total``      bytes offered to the decoder.
    ``bytes_skipped``    bytes not part of any decoded record/packet (garbage, torn or
                         corrupt records, trailing partial record).  Always
                         ``bytes_total == bytes consumed by decoded records + bytes_skipped``.
    ``records``          records (sense.bin) or range packets (range files) decoded.
    ``records_skipped``  estimate of records lost: ``ceil(len(region) / record_size)``
                         summed over the skipped regions.
    ``skip_events``      number of contiguous skipped regions.
    """

    bytes_total: int = 0
    bytes_skipped: int = 0
    records: int = 0
    records_skipped: int = 0
    skip_events: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def merge(self, other: DecodeStats) -> DecodeStats:
        """Sum of two stats (e.g. of two files); returns a new object."""
        return DecodeStats(
            bytes_total=self.bytes_total + other.bytes_total,
            bytes_skipped=self.bytes_skipped + other.bytes_skipped,
            records=self.records + other.records,
            records_skipped=self.records_skipped + other.records_skipped,
            skip_events=self.skip_events + other.skip_events,
        )


def gap_stats(starts: npt.ArrayLike, ends: npt.ArrayLike, n_bytes: int, record_size: int, records: int) -> DecodeStats:
    """Stats of a buffer of *n_bytes* in which ``[starts[i], ends[i])`` were decoded.

    The intervals must be sorted and non-overlapping.  Every maximal stretch of bytes
    outside them is one skip event of ``ceil(len / record_size)`` lost records.
    """
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    gap_lo = np.concatenate(([0], ends))
    gap_hi = np.concatenate((starts, [n_bytes]))
    gaps = gap_hi - gap_lo
    gaps = gaps[gaps > 0]
    return DecodeStats(
        bytes_total=int(n_bytes),
        bytes_skipped=int(gaps.sum()),
        records=int(records),
        records_skipped=int((-(-gaps // record_size)).sum()),
        skip_events=int(gaps.size),
    )


class GapTally:
    """Skipped regions of a stream decoded piece by piece, in absolute byte offsets: regions
    reported in order, those that touch merged into one, so the totals equal
    :func:`gap_stats` of the whole buffer."""

    def __init__(self, unit_size: int):
        self.unit_size = int(unit_size)
        self.bytes = self.records = self.events = 0
        self._lo = self._hi = -1

    def _flush(self) -> None:
        if self._hi > self._lo:
            n = self._hi - self._lo
            self.bytes += n
            self.records += -(-n // self.unit_size)
            self.events += 1
        self._lo = self._hi = -1

    def add(self, lo: int, hi: int) -> None:
        """Bytes ``[lo, hi)`` were skipped (``lo`` at or after the previous region's end)."""
        if hi <= lo:
            return
        if lo == self._hi:
            self._hi = hi
            return
        self._flush()
        self._lo, self._hi = lo, hi

    def add_between(self, base: int, starts: npt.ArrayLike, ends: npt.ArrayLike, lo: int, hi: int) -> None:
        """The gaps of ``[lo, hi)`` outside the sorted, non-overlapping units ``[starts[i],
        ends[i])``, all offsets relative to *base*."""
        for s, e in zip(np.asarray(starts).tolist(), np.asarray(ends).tolist()):
            self.add(base + lo, base + s)
            lo = e
        self.add(base + lo, base + hi)

    def stats(self, n_bytes: int, records: int) -> DecodeStats:
        self._flush()
        return DecodeStats(
            bytes_total=int(n_bytes),
            bytes_skipped=self.bytes,
            records=int(records),
            records_skipped=self.records,
            skip_events=self.events,
        )


def iter_decode(reader: TailReader, decoder: StreamDecoder[_B], piece_bytes: int) -> Generator[None, None, _B]:
    """A generator feeding *decoder* (a ``*StreamDecoder``) the pieces of *reader*, yielding
    after each (the caller's chance to do other work); returns the decoder's result with
    the bytes not read (``bytes_over_limit``)."""
    while True:
        piece = reader.read(piece_bytes)
        decoder.feed(piece, final=not piece)
        yield
        if not piece:
            break
    batch = decoder.result(reader.size)
    batch.bytes_over_limit = reader.bytes_over_limit
    return batch


def drain(gen: Generator[object, None, _R]) -> _R:
    """Run a generator (one of the ``iter_*`` readers) to its end; its return value."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def as_uint8(data: BytesLike) -> np.ndarray:
    """A read-only uint8 view of bytes / bytearray / memoryview / uint8 array (no copy)."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
