"""``python -m pygnc.tasks <name> ...``: the entry point of a spawned task process (most are
forked from the zygote instead, :mod:`pygnc.zygote`, and run the same function)."""

import os

# The supervisor starts us with SIGINT and SIGTERM ignored; from here on a signal only sets
# a flag (and wakes any wait), before any slow import: even pygnc.tasks.base (zmq) is
# imported while we wait for a stop, and a task stopped before it started exits at once.
from pygnc.signals import StopSignals, import_unless_stopped

_stop = StopSignals()
_base = import_unless_stopped("pygnc.tasks.base", _stop)
if _base is None:
    os._exit(0)  # stopped before it started: nothing to save (the supervisor logs the exit)
_base.run_task_process(stop_signals=_stop)
