"""The host's terminal: what the stream changes on it, and putting it back.

pygnc runs in the foreground of a login shell on a UART (or a pseudo-terminal in tests).
The terminal stays in canonical mode with ISIG, so Ctrl-C (0x03) raises SIGINT in every
process of the tree as before.  For the stream (:mod:`pygnc.tasks.tty_stream`) it also:

* turns echo off (the host's frames would otherwise come back on our output line);
* turns IXON off (a stray 0x13 in garbage would stop our output until a 0x11);
* sets NOFLSH: the ^C would otherwise discard the queued input (the frames the host sent
  just before it, which the stream task still reads at its stop) and our unsent output;
* disables every special character but INTR: EOF (0x04 would read as end of input), QUIT
  (0x1C: SIGQUIT, a core dump), SUSP (0x1A: SIGTSTP, the tree stopped), ERASE, KILL, and
  the IEXTEN ones (WERASE, LNEXT, REPRINT) - so a byte of garbage is just a byte.

The supervisor saves the modes before any task starts and restores them when it exits
(the stream task restores them at its own stop too); bash adopts whatever modes a job that
exited normally left.  Nothing is touched unless the terminal is ours: a process group in
the background (``main.py &``) would be stopped by SIGTTOU/SIGTTIN.
"""

from __future__ import annotations

import os
import termios


def is_foreground_tty(fd: int) -> bool:
    """*fd* is a terminal whose foreground process group is ours."""
    try:
        return os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False


def save_modes(fd: int) -> list | None:
    """The terminal modes of *fd* if it is our foreground terminal, else None."""
    if not is_foreground_tty(fd):
        return None
    try:
        return termios.tcgetattr(fd)
    except termios.error:
        return None


def restore_modes(fd: int, modes: list | None) -> bool:
    """Put *modes* back (at once: never waits for output to drain to a reader that may be
    gone); True if done."""
    if modes is None or not is_foreground_tty(fd):
        return False
    try:
        termios.tcsetattr(fd, termios.TCSANOW, modes)
        return True
    except termios.error:
        return False


def stream_modes(modes: list) -> list:
    """*modes* changed for the stream (see the module docstring)."""
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = modes
    cc = list(cc)
    disabled = _vdisable()
    for name in (
        "VEOF",
        "VQUIT",
        "VSUSP",
        "VERASE",
        "VKILL",
        "VWERASE",
        "VLNEXT",
        "VREPRINT",
        "VDISCARD",
        "VEOL",
        "VEOL2",
        "VSTART",
        "VSTOP",
        "VDSUSP",
        "VSTATUS",
    ):
        i = getattr(termios, name, None)
        if i is not None and i < len(cc):
            cc[i] = bytes([disabled]) if isinstance(cc[i], bytes) else disabled
    iflag &= ~(termios.IXON | termios.IXOFF)
    lflag &= ~(termios.ECHO | termios.ECHOE | termios.ECHOK | termios.ECHONL | termios.IEXTEN)
    lflag |= termios.ICANON | termios.ISIG | termios.NOFLSH
    return [iflag, oflag, cflag, lflag, ispeed, ospeed, cc]


def setup_for_stream(fd: int) -> list | None:
    """Apply :func:`stream_modes` to our foreground terminal *fd*; the previous modes (to
    restore), or None if *fd* is not ours or cannot be changed."""
    old = save_modes(fd)
    if old is None:
        return None
    try:
        termios.tcsetattr(fd, termios.TCSANOW, stream_modes(old))
    except termios.error:
        return None
    return old


def _vdisable() -> int:
    try:
        v = os.fpathconf(0, "PC_VDISABLE")
        return v if isinstance(v, int) and 0 <= v <= 255 else 0
    except (OSError, ValueError):
        return 0
