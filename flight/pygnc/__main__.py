"""``python -m pygnc <timeout_minutes> <spacecraft_time_s>`` and the ``pygnc`` console script
of an installed package: the supervisor, exactly as ``flight/main.py`` runs it."""

import sys

# First thing (see flight/main.py): signals only set a flag from here on.
from pygnc.signals import StopSignals

_stop = StopSignals()

from pygnc.supervisor import exit_process  # noqa: E402
from pygnc.supervisor import main as supervisor_main  # noqa: E402


def main() -> int:
    prog = "pygnc" if not sys.argv[0].endswith("__main__.py") else "python -m pygnc"
    return supervisor_main(stop_signals=_stop, prog=prog)


if __name__ == "__main__":
    exit_process(main())
