"""pygnc supervisor: ``python main.py <timeout_minutes> <spacecraft_time_s>``.

Runs from any directory (an unzipped copy on the Pi included): the ``pygnc`` package is
found next to this file.
"""

import os
import signal
import sys

# Record a Ctrl-C that arrives while the interpreter is still importing: the supervisor
# then stops the tree in order instead of dying with a traceback.
_early_signals: list[int] = []
signal.signal(signal.SIGINT, lambda signum, frame: _early_signals.append(signum))
signal.signal(signal.SIGTERM, lambda signum, frame: _early_signals.append(signum))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pygnc.supervisor import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(early_signals=_early_signals))
