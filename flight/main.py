"""pygnc supervisor: ``python main.py <timeout_minutes> <spacecraft_time_s>``.

Runs from any directory (an unzipped copy on the Pi included): the ``pygnc`` package is
found next to this file.  ``python -m pygnc`` and the ``pygnc`` console script of an
installed package run the same program.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# First thing: from here on SIGINT/SIGTERM only set a flag, so a Ctrl-C that arrives while
# the interpreter is still importing stops the tree in order instead of raising
# KeyboardInterrupt.  (pygnc.signals imports nothing but os and signal.)
from pygnc.signals import StopSignals  # noqa: E402

_stop = StopSignals()

from pygnc.supervisor import exit_process, main  # noqa: E402

if __name__ == "__main__":
    exit_process(main(stop_signals=_stop))
