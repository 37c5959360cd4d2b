"""A stop that comes while the supervisor is still importing.

The supervisor's imports (ZeroMQ, the configuration's schema, the batch format, logging:
~0.14 s of a quiet core on the development machine, several times that on a loaded or
small one) are most of its start.  :func:`launch` runs them under
:class:`pygnc.signals.AbandonImportsOnStop`: a Ctrl-C, SIGTERM or hang-up gives them up at
the next module, and :func:`stop_before_start` ends the run with what was imported before
them - the home's lock taken, the previous run's status and info replaced by a final status
of this start (run 0, flag ``stopping``, nothing started; no log directory is made).

Only when nothing needs the full stop (:func:`plan`): valid arguments, an existing home,
no ``.part`` batch file in the home's batch area (a power cut's, which the full stop
recovers), and a configuration that cannot have been refused (the defaults, or the uplink a
run accepted before) - else the imports are waited for, as before.  The configuration is
not read: the early status carries no configuration flag (``imu_reflection`` included).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import NoReturn

from . import run_lock
from .command_line import UsageError, exit_process, parse_args, say, say_already_running
from .formats import status as st
from .paths import PART_SUFFIX, Paths
from .regular_files import read_small_file
from .signals import AbandonImportsOnStop, ImportsAbandoned, StopSignals
from .status_files import measure_storage, write_status_pair

#: Entries of the batch area looked at for a ``.part`` at most; past it the full stop is
#: kept (the look must cost nothing next to the imports it may save).
MAX_BATCH_ENTRIES = 4096


#: Largest uplinked configuration compared with the accepted copy; a larger one takes the
#: full start (an uplink is a few kB).
MAX_COMPARED_BYTES = 64 * 1024


@dataclass(frozen=True)
class StartPlan:
    """A run the early stop may end: its arguments and home."""

    timeout_min: float
    t_sc_s: float
    paths: Paths


def plan(argv: list[str]) -> StartPlan | None:
    """The run *argv* asks for, if a stop during the imports may end it early; else None
    (bad arguments, ``--help``, ``--check-config``, a home that is not a directory yet, a
    ``.part`` batch file or a batch area too large to look through, a configuration that
    may be refused)."""
    try:
        timeout_min, t_sc = parse_args(argv)
    except UsageError:
        return None
    paths = Paths.from_env()
    if not paths.home.is_dir() or _maybe_part_files(paths) or _configuration_may_be_refused(paths):
        return None
    return StartPlan(timeout_min, t_sc, paths)


def _configuration_may_be_refused(paths: Paths) -> bool:
    """True unless the run's configuration is the defaults or the uplink a run accepted
    before (byte for byte): only the full start reads and judges a configuration, and an
    early stop must not replace a status that said an uplink was refused with one that
    does not."""
    if os.environ.get("PYGNC_CONFIG"):
        return True
    if not os.path.lexists(paths.config_file):
        return False
    try:
        uplinked = read_small_file(paths.config_file, MAX_COMPARED_BYTES)
        return uplinked != read_small_file(paths.accepted_config_file, len(uplinked))
    except OSError:  # unreadable, too large, not a regular file, no accepted copy
        return True


def _maybe_part_files(paths: Paths) -> bool:
    """True if the batch area holds a ``.part`` file, or could not be looked through."""
    seen = 0
    try:
        for _dir, subdirs, files in os.walk(paths.batch_area, onerror=_raise):
            seen += len(files) + len(subdirs)
            if seen > MAX_BATCH_ENTRIES or any(f.endswith(PART_SUFFIX) for f in files):
                return True
    except OSError:
        return True
    return False


def _raise(exc: OSError) -> None:
    if not isinstance(exc, FileNotFoundError):  # no batch area yet: nothing to recover
        raise exc


def stop_before_start(start: StartPlan, signals: StopSignals, t0_mono_s: float, prog: str) -> int:
    """End a run stopped before its tree was started: 0 with the final status written, 1 if
    it could not be, 3 if another run holds the home (then nothing is touched)."""
    try:
        lock = run_lock.acquire(start.paths.home, start.t_sc_s)
    except run_lock.AlreadyRunning as exc:
        say_already_running(prog, exc)
        return 3
    try:
        s = st.empty_status()
        uptime_s = time.monotonic() - t0_mono_s
        s["seq"] = 1
        s["t_sc_s"] = start.t_sc_s + uptime_s
        s["uptime_s"] = uptime_s
        s["flags"] = st.FLAG_STOPPING
        measure_storage(start.paths, s)
        try:
            write_status_pair(start.paths, s)
        except OSError as exc:
            say(f"{prog}: stopped by {signals.name} while starting; cannot write the final status ({exc})")
            return 1
        say(f"{prog}: stopped by {signals.name} while starting: nothing was started")
        return 0
    finally:
        lock.release()


def launch(signals: StopSignals, prog: str, argv: list[str] | None = None) -> NoReturn:
    """Import the supervisor and run it - or, if a stop comes while it is imported and
    :func:`plan` allows, end the run at once - and exit with its status."""
    t0_mono_s = time.monotonic()
    argv = sys.argv[1:] if argv is None else argv
    start = plan(argv)
    if start is None:
        from .supervisor import main
    else:
        try:
            with AbandonImportsOnStop(signals):
                from .supervisor import main
        except ImportsAbandoned:
            exit_process(stop_before_start(start, signals, t0_mono_s, prog))
    exit_process(main(argv, stop_signals=signals, prog=prog, t0_mono_s=t0_mono_s))
