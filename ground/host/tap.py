"""A copy of the stream for a second reader: pygnc's frames, and the host's ranges, on a pty.

``python -m ground host ... --tap`` makes a pseudo-terminal and prints its path; every byte
pygnc sends on the console (its EST, STS, CNT, HEL, BYE frames and any other output) and
every RNG frame the host sends is copied to it as it passes, so ``python -m ground serve
/dev/pts/N`` shows the session live - the way a second UART adapter on the Pi's TX line
would on the bench.  The copy never slows the host: the pty is written without blocking,
and what does not fit (no reader, or a reader that stopped reading) is dropped and counted.
"""

from __future__ import annotations

import os
import tty

from pygnc.formats import stream as fs

#: Host -> pygnc frames copied to the tap (the ranges, for the residuals; not the sensor data).
HOST_TAGS = frozenset({fs.RANGE})


class Tap:
    def __init__(self):
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # bytes as they are: no echo, no line editing
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self.bytes_written = 0
        self.bytes_dropped = 0

    def write(self, data: bytes) -> None:
        """Copy *data*; what the pty cannot take now is dropped (counted)."""
        if self._master < 0 or not data:
            return
        try:
            n = os.write(self._master, data)
        except BlockingIOError:
            n = 0
        except OSError:
            n = 0
        self.bytes_written += n
        self.bytes_dropped += len(data) - n

    def close(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = -1
