"""Pieces shared by the batch-file decoders: reading a file safely, decode statistics and
skip accounting."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import asdict, dataclass

import numpy as np


def read_regular_file(path: str | os.PathLike) -> bytes:
    """All bytes of the regular file at *path* (symbolic links followed).

    Anything else - a FIFO, a device, a socket, a directory - raises ``OSError`` naming
    what it is, without ever blocking: the file is opened non-blocking (opening a FIFO
    with no writer would otherwise wait forever) and its type checked on the open
    descriptor, so it cannot be swapped in between."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                    else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                    else "not a regular file")
            raise OSError(errno.EINVAL, f"not a regular file ({kind})", str(path))
        os.set_blocking(fd, True)
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


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

    def merge(self, other: "DecodeStats") -> "DecodeStats":
        """Sum of two stats (e.g. of two files); returns a new object."""
        return DecodeStats(
            bytes_total=self.bytes_total + other.bytes_total,
            bytes_skipped=self.bytes_skipped + other.bytes_skipped,
            records=self.records + other.records,
            records_skipped=self.records_skipped + other.records_skipped,
            skip_events=self.skip_events + other.skip_events,
        )


def gap_stats(starts, ends, n_bytes: int, record_size: int, records: int) -> DecodeStats:
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


def as_uint8(data) -> np.ndarray:
    """A read-only uint8 view of bytes / bytearray / memoryview / uint8 array (no copy)."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
