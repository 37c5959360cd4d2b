"""The supervisor's command line - ``main.py <timeout_minutes> <spacecraft_time_s>`` - its
checks, and the one-line messages on the host's terminal.

Imports nothing slow: main.py parses its arguments before the supervisor's imports
(:mod:`pygnc.early_stop`).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import NoReturn

#: Longest accepted timeout, minutes (a week; the host runs us for minutes).
MAX_TIMEOUT_MIN = 7 * 24 * 60.0
#: The spacecraft clock is a 32-bit count of unix seconds (sense.bin, range files).
MAX_SPACECRAFT_TIME_S = 2.0**32

USAGE = """usage: {prog} <timeout_minutes> <spacecraft_time_s>
       {prog} --check-config FILE
       {prog} --help

  timeout_minutes      stop by itself after this many minutes (0 < t <= 10080, a week;
                       decimals allowed)
  spacecraft_time_s    the spacecraft clock now, unix seconds (0 <= t < 2^32)
  --check-config FILE  check a configuration file as a run would load it, and exit:
                       0 accepted, 2 rejected (each problem on stderr, FILE:LINE: key ...)
  -h, --help           print this and exit 0

Exit status: 0 stopped in order; 1 no final status could be written, or a failure;
2 bad arguments; 3 another pygnc is running on this PYGNC_HOME (it is left alone).

Environment: PYGNC_HOME (default ~) holds sense.bin, range/, the uplinked
pygnc_config.toml, and receives pygnc_status.bin, pygnc_info.txt and pygnc_logs/;
PYGNC_CONFIG names a TOML file to use instead of the uplinked one."""


class UsageError(ValueError):
    pass


def parse_args(argv: list[str]) -> tuple[float, float]:
    if len(argv) != 2:
        raise UsageError(f"expected 2 arguments, got {len(argv)}")
    values = []
    for name, text in (("timeout_minutes", argv[0]), ("spacecraft_time_s", argv[1])):
        try:
            values.append(float(text))
        except ValueError:
            raise UsageError(f"{name} must be a number, got {text!r}") from None
    timeout_min, t_sc = values
    if not (math.isfinite(timeout_min) and 0 < timeout_min <= MAX_TIMEOUT_MIN):
        raise UsageError(f"timeout_minutes must be > 0 and <= {MAX_TIMEOUT_MIN:.0f}, got {argv[0]}")
    if not (math.isfinite(t_sc) and 0 <= t_sc < MAX_SPACECRAFT_TIME_S):
        raise UsageError(
            f"spacecraft_time_s must be >= 0 and < 2^32 (the spacecraft clock is a "
            f"32-bit count of unix seconds), got {argv[1]}"
        )
    return timeout_min, t_sc


def check_home(home: Path) -> None:
    """PYGNC_HOME must be a directory (made if missing); UsageError naming the problem."""
    if home.exists() and not home.is_dir():
        raise UsageError(f"PYGNC_HOME={home} is not a directory")
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"PYGNC_HOME={home} cannot be created: {exc.strerror or exc}") from None


def say(text: str) -> None:
    """A line on the terminal (stderr); nothing if the terminal is gone (a hang-up)."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def say_already_running(prog: str, exc: Exception) -> None:
    """The refusal of a second start on a home another run holds (exit status 3)."""
    say(f"{prog}: {exc}: not started (the running one is left alone; stop it first to start again)")


def exit_process(rc: int) -> NoReturn:
    """End the supervisor's process with status *rc* once stdout and stderr are flushed
    (never returns): every file is synced and every socket closed by then, and the
    interpreter's teardown would only lengthen the stop the host waits for (and, after an
    early stop, run on modules given up half-imported)."""
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError):
            pass
    os._exit(rc)
