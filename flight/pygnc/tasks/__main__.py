"""``python -m pygnc.tasks <name> ...``: the entry point of every task process."""

import os
import sys

# The supervisor starts us with SIGINT and SIGTERM ignored; from here on a signal only sets
# a flag (and wakes any wait), before any slow import: even pygnc.tasks.base (zmq) is
# imported while we wait for a stop, and a task stopped before it started exits at once.
from pygnc.signals import StopSignals, import_unless_stopped

_stop = StopSignals()
_base = import_unless_stopped("pygnc.tasks.base", _stop)
if _base is None:
    os._exit(0)  # stopped before it started: nothing to save (the supervisor logs the exit)
_code = _base.task_main(stop_signals=_stop)
# Every file is flushed and synced and every socket closed by now: skip the interpreter's
# teardown (numpy and friends take 0.1-0.3 s of a loaded CPU, and the tree's stop waits
# for the slowest task).
sys.stdout.flush()
sys.stderr.flush()
os._exit(_code)
