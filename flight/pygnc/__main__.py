"""``python -m pygnc <timeout_minutes> <spacecraft_time_s>`` and the ``pygnc`` console script
of an installed package: the supervisor, exactly as ``flight/main.py`` runs it."""

import sys

# First thing (see flight/main.py): signals only set a flag from here on.
from pygnc.signals import StopSignals

_stop = StopSignals()

from pygnc.early_stop import launch  # noqa: E402


def main() -> int:
    """Run the supervisor (never returns: the process exits with its status)."""
    launch(_stop, "pygnc" if not sys.argv[0].endswith("__main__.py") else "python -m pygnc")


if __name__ == "__main__":
    main()
