"""python -m ground COMMAND ...: the pygnc ground tools.

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args)
-> int``; this table is the only place they are registered.  A command whose module needs
a package of the ``ground`` extra that is not installed says which, instead of failing
with a traceback, and so does a Python without the flight package (pygnc) itself; output cut
short by the reader (``decode ... | head``) is not an error.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

#: command name -> (module, one-line help)
COMMANDS = {
    "decode": ("ground.decode.cli", "decode sense.bin, range, status or log files (optionally to CSV)"),
    "simulate": ("ground.simulate.cli", "write a truth-known scenario directory the flight code can consume"),
    "replay": ("ground.replay.cli", "run the flight estimators on a scenario and write CSV/OEM/plots"),
    "archive": ("ground.archive.cli", "load bus logs, status files, decode CSV (and batch files) into SQLite"),
    "export": ("ground.archive.export", "write CSV files from an archive"),
    "upload": ("ground.archive.upload", "queue files and send them to a server with checksums and retries"),
    "hk-sim": (
        "ground.devices.housekeeping",
        "run simulated EMUS BMS and USB-ISS + OPC-N3 devices on pseudo-terminals",
    ),
    "imu380": (
        "ground.devices.imu380_tool",
        "look at, configure or re-flash an Aceinna IMU380/DMU380 (info, set, eeprom, stream, upgrade)",
    ),
    "simdevice": (
        "ground.devices.simdevice",
        "run a simulated IMU (IMU380, GX2, monoDrive) on a pseudo-terminal or socket",
    ),
    "smooth": (
        "ground.smooth",
        "the whole formation from every spacecraft's GPS fixes and ranges: smoothed orbits, relative states "
        "both ways, range biases, and a report judging the on-board estimates",
    ),
    "montecarlo": (
        "ground.montecarlo",
        "run a Monte Carlo campaign (dispersed scenarios x estimator configurations) "
        "on Dask and report accuracy distributions",
    ),
    "serve": (
        "ground.station",
        "the ground station in a browser: a replay, downlinked batch files or pygnc's "
        "live stream as maps and plots (local web server)",
    ),
    "uplink": (
        "ground.uplink.cli",
        "write a spacecraft's partner priors (pygnc_config.toml) from TLEs or the partners' downlinked orbit estimates",
    ),
    "host": (
        "ground.host",
        "drive pygnc over the Pi's serial console as the PyCubed does: upload, launch, stream live, Ctrl-C, read back",
    ),
}

DESCRIPTION = "pygnc ground tools: decode what pygnc reads and writes, simulate scenarios, replay the estimators."

#: What to install when a module of the ground extra is missing.
EXTRA_HINT = "in the clone: .venv/bin/pip install -e '.[ground]'  (pygnc is not on the package index)"


#: How a clone gets an interpreter with pygnc and the ground extra (the README's first command).
INSTALL_HINT = "python3 -m venv .venv && .venv/bin/pip install -e '.[ground]'"


def flight_package_missing() -> str | None:
    """One line saying that this interpreter has no pygnc (every command needs it) and how
    to install it; None when pygnc can be imported."""
    try:
        if importlib.util.find_spec("pygnc") is not None:
            return None
    except (ImportError, ValueError):  # a broken or blocked pygnc: not importable either
        pass
    return (
        f"python -m ground: the flight package pygnc is not installed for this Python ({sys.executable}); "
        f"from the clone's root: {INSTALL_HINT}, then run .venv/bin/python -m ground ..."
    )


def _missing_dependency(exc: ModuleNotFoundError) -> str | None:
    """The top-level name of a missing third-party module, None for one of ours."""
    name = (exc.name or "").split(".")[0]
    return None if name in ("", "pygnc", "ground") else name


def command_named(argv: list[str]) -> str:
    """The command *argv* names (its first word that is not an option; ``python -m ground``
    has no options of its own but ``-h``), or "" when it names none."""
    return next((a for a in argv if not a.startswith("-")), "")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command; only the module of the command *argv* names is imported
    and adds its arguments (a command's module may import large libraries - the simulator's
    SciPy takes seconds - which the others do not need).  *argv* None: every command's."""
    wanted = None if argv is None else command_named(argv)
    parser = argparse.ArgumentParser(prog="python -m ground", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if wanted is not None and name != wanted:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = _missing_dependency(exc)
            if exc.name == module_name:
                p.set_defaults(_unavailable=f"'{name}' is not available in this build")
            elif missing:
                p.set_defaults(
                    _unavailable=f"'{name}' needs the Python package '{missing}', which is not "
                    f"installed; it comes with the ground extra:\n  {EXTRA_HINT}"
                )
            else:
                raise
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            continue
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    missing = flight_package_missing()
    if missing:
        print(missing, file=sys.stderr)
        return 2
    args = build_parser(argv).parse_args(argv)
    if getattr(args, "_unavailable", None):
        print(f"ground {args.command}: {args._unavailable}", file=sys.stderr)
        return 2
    try:
        return int(args._run(args) or 0)
    except ModuleNotFoundError as exc:  # a lazily imported dependency (plots, truth, ...)
        missing = _missing_dependency(exc)
        if missing is None:
            raise
        print(
            f"ground {args.command}: needs the Python package '{missing}', which is not installed; "
            f"it comes with the ground extra:\n  {EXTRA_HINT}",
            file=sys.stderr,
        )
        return 2
    except BrokenPipeError:
        # The reader went away (`... | head`): not an error.  Point stdout at /dev/null so
        # the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
