"""Which configuration a run uses, and why: a load is validated before it becomes active.

The model is cFS table services: the ground uplinks ``~/pygnc_config.toml``; at start the
supervisor checks the whole file (:func:`pygnc.config.parse_config`: syntax, keys, types,
limits, nested tables).  An accepted file becomes the active configuration and a copy of
it is kept (``~/pygnc_config.accepted.toml``, replaced atomically).  A rejected file never
stops navigation: the run uses the last accepted copy (or, without one that still passes,
the defaults) and says so - status flag ``config_rejected``, a ``cfg`` line in the info
file, and the log, naming the file, the line and the key.  Without an uplinked file the
defaults are used and the copy is left as it is.  ``PYGNC_CONFIG`` (development, replays)
names another file; a rejected one falls back to the defaults (the copy belongs to the
uplinked file).

The supervisor hands the tasks exactly the bytes it accepted (a file in its private run
directory, named by ``PYGNC_CONFIG`` in their environment) and the one-line note of a
rejection (:data:`REJECTED_ENV`), so every task - a restarted one included - runs on the
same configuration even if a new file is uplinked meanwhile.

``python main.py --check-config FILE`` (:func:`check_file`) runs the same check for the
host and the ground before a file is used.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import write_atomic
from .config import (
    MAX_CONFIG_BYTES,
    Config,
    ConfigError,
    Paths,
    parse_config,
    read_config_bytes,
    undeclared_reflections,
)
from .formats import status as st
from .limits import Problem
from .regular_files import read_small_file

#: Environment variable that hands the tasks the note of a rejected configuration.
REJECTED_ENV = "PYGNC_CONFIG_REJECTED"
#: Longest note handed on, characters.
MAX_NOTE_CHARS = 160


#: How the note names a problem of the file as a whole (its message's start -> a word).
_KEYLESS = (
    ("TOML syntax", "syntax error"),
    ("TOML cannot be parsed", "unparsable"),
    ("cannot be read", "unreadable"),
    ("cannot be checked", "unchecked"),
    ("is not UTF-8", "not UTF-8"),
    ("more than a configuration may be", "too large"),
)


@dataclass
class Selection:
    """The configuration a run uses (:func:`select`)."""

    config: Config
    #: Its TOML bytes (b"": the defaults).
    data: bytes
    #: What it is: "uplinked file", "PYGNC_CONFIG", "last accepted copy" or "defaults".
    source: str
    #: The file its bytes came from (None: the defaults).
    path: Path | None
    #: The refused file and why (None: nothing was refused).
    rejected_path: Path | None = None
    rejected: ConfigError | None = None
    #: (logging level, message) to log once the run's log is open.
    notes: list = field(default_factory=list)

    @property
    def note(self) -> str:
        """One line naming the refused file's first problem and what the run uses instead
        ("" if nothing was refused): for the info file and the tasks."""
        if self.rejected is None:
            return ""
        line, key = self.rejected.first()
        if not key:  # the file as a whole: say how
            message = self.rejected.problems[0][1].message
            key = next((label for start, label in _KEYLESS if start in message), "file")
        name = shown_path(self.rejected_path.name) if self.rejected_path else "?"
        where = f"{name}:{line}" if line else name
        what = "on last accepted" if self.source == "last accepted copy" else "on defaults"
        problem = " ".join(f"{where} {key}".split())[: MAX_NOTE_CHARS - len(what) - 2]
        return f"{problem}, {what}"  # (what the run uses is never cut off)


def _parse(path: Path) -> tuple[Config | None, bytes, ConfigError | None]:
    """(config, bytes, None) of an accepted file, (None, bytes, why) of a refused one: a file
    that cannot be read (missing, a dangling link, a symlink loop, a FIFO or a device -
    never waited on - or over the size limit) is refused like a bad one."""
    try:
        data = read_config_bytes(path)
    except ConfigError as exc:
        return None, b"", exc
    try:
        return parse_config(data, str(path)), data, None
    except ConfigError as exc:
        return None, data, exc


def select(paths: Paths, env: Mapping[str, str] | None = None, keep_copy: bool = True) -> Selection:
    """Choose the run's configuration (see the module docstring); never raises: anything
    unforeseen while choosing is a refusal, and the run goes on the defaults.  With
    *keep_copy* False nothing is written (an accepted uplink leaves the copy as it is)."""
    try:
        return _select(paths, env, keep_copy)
    except Exception as exc:  # noqa: BLE001 - navigation never stops for an uplink
        where = paths.config_file
        err = ConfigError([Problem((), f"cannot be checked: {type(exc).__name__}: {exc}"[:200])], str(where), "")
        notes = [
            (logging.ERROR, f"configuration {where} REJECTED: {err.lines()[0]}"),
            (logging.WARNING, "running on the defaults"),
        ]
        return Selection(Config(), b"", "defaults", None, where, err, notes)


def _select(paths: Paths, env: Mapping[str, str] | None, keep_copy: bool) -> Selection:
    env = os.environ if env is None else env
    explicit = env.get("PYGNC_CONFIG")
    uplinked = paths.config_file
    # lexists: a dangling link or a symlink loop is an uplink that cannot be read (refused,
    # as --check-config says), not "no file".
    path = Path(explicit) if explicit else uplinked if os.path.lexists(uplinked) else None
    if path is None:
        return Selection(
            Config(),
            b"",
            "defaults",
            None,
            notes=[(logging.INFO, f"no configuration file ({uplinked}): running on the defaults")],
        )
    cfg, data, err = _parse(path)
    source = "PYGNC_CONFIG" if explicit else "uplinked file"
    if err is None:
        assert cfg is not None  # accepted
        sel = Selection(cfg, data, source, path, notes=[(logging.INFO, f"configuration {path} accepted")])
        if keep_copy and not explicit:
            _keep_copy(paths, data, sel)
        return sel
    notes = [
        (
            logging.ERROR,
            f"configuration {path} REJECTED ({len(err.problems)} problem{'' if len(err.problems) == 1 else 's'}):",
        )
    ]
    notes += [(logging.ERROR, f"  {line}") for line in err.lines()]
    copy = paths.accepted_config_file
    if not explicit and os.path.lexists(copy):
        cfg, data, copy_err = _parse(copy)
        if copy_err is None:
            assert cfg is not None  # accepted
            notes.append((logging.WARNING, f"running on the last accepted configuration, {copy}"))
            return Selection(cfg, data, "last accepted copy", copy, path, err, notes)
        notes.append(
            (
                logging.ERROR,
                f"the last accepted configuration {copy} does not pass either "
                f"(a copy from another version?): {copy_err.lines()[0]}",
            )
        )
    notes.append((logging.WARNING, "running on the defaults"))
    return Selection(Config(), b"", "defaults", None, path, err, notes)


def home_selection(home: str | os.PathLike[str]) -> Selection:
    """The configuration a run in *home* used, chosen as the flight chooses it (its uplinked
    ``pygnc_config.toml``; refused, its last accepted copy, else the defaults), writing
    nothing and ignoring ``PYGNC_CONFIG``: for replays of a downlinked or simulated home."""
    return select(Paths(Path(home)), env={}, keep_copy=False)


def _keep_copy(paths: Paths, data: bytes, sel: Selection) -> None:
    copy = paths.accepted_config_file
    try:
        if read_small_file(copy, MAX_CONFIG_BYTES) == data:
            return
    except OSError:
        pass
    try:
        write_atomic(copy, data)
    except OSError as exc:
        sel.notes.append(
            (
                logging.WARNING,
                f"cannot keep a copy of the accepted configuration ({exc}): a later "
                "rejected file would fall back to an older copy or the defaults",
            )
        )


def config_flags(config: Config, env: Mapping[str, str] | None = None) -> int:
    """The status flags the configuration sets: ``config_rejected`` (the supervisor said
    so, :data:`REJECTED_ENV`) and ``imu_reflection`` (an undeclared reflection)."""
    env = os.environ if env is None else env
    flags = st.FLAG_CONFIG_REJECTED if env.get(REJECTED_ENV) else 0
    if undeclared_reflections(config):
        flags |= st.FLAG_IMU_REFLECTION
    return flags


def rejection_note(env: Mapping[str, str] | None = None) -> str:
    """The note of a rejected configuration the supervisor handed on ("" if none)."""
    env = os.environ if env is None else env
    return env.get(REJECTED_ENV, "")[:MAX_NOTE_CHARS]


def reflection_warnings(config: Config) -> list[str]:
    """Log lines for each mounting matrix that is an undeclared reflection."""
    return [
        f"{name} is a reflection (determinant -1): a physical mounting is a rotation unless the sensor's own "
        f"axes are left-handed - check it (docs/interface.md, 'Body and IMU axes'), or set "
        f"{name}_reflection_intended = true (status flag imu_reflection)"
        for name in undeclared_reflections(config)
    ]


def check_file(path: str | os.PathLike) -> tuple[bool, list[str]]:
    """(accepted, messages) of the configuration file at *path*: what ``--check-config``
    prints - every problem as ``FILE:LINE: key message``, or the warnings of an accepted
    file.  The home's own ``pygnc_config.toml`` (``$PYGNC_HOME``, default ~) when it is not
    there is accepted: a run then uses the defaults, and their warnings are given."""
    try:
        home_file = Paths.from_env().config_file
        if not os.path.lexists(path) and os.path.realpath(path) == os.path.realpath(home_file):
            # A fresh home: nothing uplinked yet, so a run there uses the defaults - check those.
            return True, [
                f"{path}: not there (nothing uplinked yet): a run in {home_file.parent} uses the defaults",
                *(f"{path}: warning: {w}" for w in reflection_warnings(Config())),
            ]
        cfg, _, err = _parse(Path(path))
    except Exception as exc:  # noqa: BLE001 - a check never ends in a traceback
        err = ConfigError([Problem((), f"cannot be checked: {type(exc).__name__}: {exc}"[:200])], str(path), "")
    if err is not None:
        return False, err.lines()
    assert cfg is not None  # accepted
    return True, [f"{shown_path(path)}: warning: {w}" for w in reflection_warnings(cfg)]


def shown_path(path: str | os.PathLike[str]) -> str:
    """*path* as a message shows it: as it is, or quoted and escaped if it holds control
    characters (a file name reaches the log, the terminal and the info file)."""
    return ConfigError([], str(path), "").where or ""
