"""``python hold_import.py MODULE GATE SCRIPT [ARGS...]``: run SCRIPT as ``__main__`` with the
import of MODULE held until the FIFO GATE is written to (at most 60 s).

Puts a stop signal at a known point of a process's start: the test sees "holding import of
MODULE" on stderr, sends the signal, then opens the gate.  The holding finder sits after the
script's own first finders (main.py's stop-aware one is inserted after this one, before
it), so they see the import before it is held.
"""

import os
import runpy
import select
import sys
import time

MODULE, GATE = sys.argv[1], sys.argv[2]


class Hold:
    def find_spec(self, name, path=None, target=None):
        if name == MODULE:
            fd = os.open(GATE, os.O_RDWR | os.O_NONBLOCK)  # (a writer itself: never at EOF)
            print(f"holding import of {name}", file=sys.stderr, flush=True)  # (the gate is open)
            try:
                t_end = time.monotonic() + 60.0
                while time.monotonic() < t_end:  # (select is resumed after a signal's handler)
                    if select.select([fd], [], [], max(0.0, t_end - time.monotonic()))[0] and os.read(fd, 16):
                        break
            finally:
                os.close(fd)
        return None


sys.meta_path.insert(0, Hold())
sys.argv = sys.argv[3:]
runpy.run_path(sys.argv[0], run_name="__main__")
