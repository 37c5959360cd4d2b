"""pygnc supervisor: ``python main.py <timeout_minutes> <spacecraft_time_s>``.

Runs from any directory (an unzipped copy on the Pi included): the ``pygnc`` package is
found next to this file.  ``python -m pygnc`` and the ``pygnc`` console script of an
installed package run the same program.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# First thing: from here on SIGINT/SIGTERM/SIGHUP only set a flag, so a stop that arrives
# while the interpreter is still importing is never a KeyboardInterrupt or a silent death.
# (pygnc.signals imports nothing slow.)
from pygnc.signals import StopSignals  # noqa: E402

_stop = StopSignals()

# The supervisor's imports, given up at once for a stop that comes while they run
# (pygnc.early_stop imports nothing slow either).
from pygnc.early_stop import launch  # noqa: E402

if __name__ == "__main__":
    launch(_stop, "main.py")
