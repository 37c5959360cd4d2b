"""Stop signals that only set a flag, and wake a poll at once.

``signal.set_wakeup_fd`` writes a byte to a non-blocking pipe whenever a signal arrives;
registering the pipe's read end with the ZeroMQ poller makes the poll return immediately,
so a process reacts to Ctrl-C without polling faster.
"""

from __future__ import annotations

import os
import signal


class StopSignals:
    """SIGINT/SIGTERM -> ``handler(signum)`` (which must only set a flag) + wake-up pipe."""

    def __init__(self, handler):
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self._write_fd, False)
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: handler(signum))

    def drain(self) -> None:
        """Empty the wake-up pipe (call when the poller reports it readable)."""
        try:
            while os.read(self.read_fd, 512):
                pass
        except (BlockingIOError, OSError):
            pass
