"""``python -m pygnc.tasks <name> ...``: the entry point of every task process."""

import signal
import sys

# The supervisor starts us with SIGINT ignored; from here on a signal only sets a flag.
_early_signals: list[int] = []
signal.signal(signal.SIGINT, lambda signum, frame: _early_signals.append(signum))
signal.signal(signal.SIGTERM, lambda signum, frame: _early_signals.append(signum))

from .base import task_main  # noqa: E402

sys.exit(task_main(early_signals=_early_signals))
