"""``python -m ground <command> ...``: the ground tools.

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args)
-> int``; this table is the only place they are registered.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: command name -> (module, one-line help)
COMMANDS = {
    "decode": ("ground.decode", "decode sense.bin, range, status or log files (optionally to CSV)"),
    "simulate": ("ground.simulate", "write a truth-known scenario directory the flight code can consume"),
    "replay": ("ground.replay", "run the flight estimators on a scenario and write CSV/OEM/plots"),
    "archive": ("ground.archive", "load bus logs, status files, decode CSV (and batch files) into SQLite"),
    "export": ("ground.export", "write CSV files from an archive"),
    "upload": ("ground.upload", "queue files and send them to a server with checksums and retries"),
    "hk-sim": ("ground.sim.hk_devices", "run simulated EMUS BMS and USB-ISS + OPC-N3 devices on pseudo-terminals"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ground", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            p.set_defaults(_unavailable=f"'{name}' is not available in this build")
            continue
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "_unavailable", None):
        print(args._unavailable, file=sys.stderr)
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
