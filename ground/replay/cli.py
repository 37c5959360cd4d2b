"""``python -m ground replay SCENARIO_DIR --out OUT_DIR``: run the flight estimators on a
scenario's files and write what they estimated.

In-process (default): :func:`pygnc.tasks.ingest.build_message_stream` reads the batch
exactly as the flight ingest does; every message, in order, goes to each processor
(:mod:`pygnc.processors`: orbit, attitude, formation; :mod:`ground.replay.in_process`) whose
``consumes`` names its type; what a processor returns goes on to the
*later* processors that consume it (orbit_estimate -> attitude).  Same code as flight, no
processes, no sockets.  ``--pipeline`` runs the real process tree (``python -m pygnc``, the
same program as ``flight/main.py``) on a
copy of the files instead and reads the estimates back from its bus log
(:mod:`ground.replay.pipeline`).

Outputs in OUT_DIR (columns: :data:`ground.outputs.tables.COLUMNS`, docs/interface.md):

* ``orbit.csv``, ``attitude.csv``, ``formation.csv`` - one row per sensor sample time (per
  peer for formation), from the estimates with ``propagated == False``, each with its
  quality word;
* ``partner_orbit.csv`` - each orbit a range-only partner keeps, while it keeps more than
  one, at the same times;
* ``orbit.oem`` - CCSDS OEM 2.0 (KVN) of the orbit estimate (not written without rows);
* ``summary.json`` - row counts, estimator notes, timings; with truth (``truth.npz`` of a
  simulated scenario) RMS / max errors after ``--settle`` and NEES statistics; without
  truth, GPS-fix and range residual statistics;
* ``plots/*.png`` - errors with ±3σ bounds (truth) or residuals (no truth).

``--smooth`` replaces the orbit by the RTS-smoothed batch solution
(:func:`ground.replay.orbit_filter.run_orbit_filter`) at the same sensor times, and the
attitude by the attitude smoother (:mod:`ground.replay.attitude_smoother`).  ``--accept-status`` sets
the fix solution-status values taken as valid (as ``decode``; the flight team's simulated
files need ``0,1``) over ``--config``.

Every argument is checked before anything runs (an existing file as ``--out``, a truth file
that is not one, a ``--spacecraft`` the truth lacks): a message and exit status 2 (1 for an
unreadable truth file), never a traceback after the work.

A directory with none of the inputs (``sense.bin``, ``range/``, ``range.bin``) is refused,
saying what it holds instead (batch files: decode or serve them).

Exit status: 0 replayed (even without a valid fix: orbit.csv then has no rows and a
message says so), 1 unreadable scenario or truth, or failed pipeline, 2 bad usage (a
directory with no input of a replay).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

from ground.decode.cli import accept_status_list
from ground.replay.in_process import run_in_process
from ground.replay.outputs import OutputOptions, write_outputs
from ground.replay.statistics import print_truth_lines


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "scenario",
        metavar="SCENARIO_DIR",
        type=Path,
        help="directory with sense.bin and/or range/ (a simulated scenario, or the host's inputs "
        "as the Pi read them; downlinked batch files are pygnc's estimates: 'ground decode' them)",
    )
    p.add_argument("--out", required=True, type=Path, metavar="OUT_DIR", help="directory for the outputs")
    p.add_argument(
        "--pipeline",
        action="store_true",
        help="run the real process tree (python -m pygnc, as flight/main.py) and read its bus log "
        "instead of running in-process",
    )
    p.add_argument(
        "--pipeline-timeout",
        default="30m",
        metavar="DURATION",
        help="give up on the process tree after this long (default 30m; e.g. 600, 10m)",
    )
    p.add_argument(
        "--smooth", action="store_true", help="RTS-smoothed orbit (and attitude, if its module has a smoother)"
    )
    p.add_argument("--config", type=Path, metavar="TOML", help="flight configuration overrides (as PYGNC_CONFIG)")
    p.add_argument(
        "--accept-status",
        type=accept_status_list,
        default=None,
        metavar="LIST",
        help="comma-separated NovAtel solution-status values accepted as valid fixes (default 0, "
        "or --config's; the flight team's simulated files need 0,1)",
    )
    p.add_argument("--truth", type=Path, metavar="NPZ", help="truth file (default: SCENARIO_DIR/truth.npz if present)")
    p.add_argument("--no-truth", action="store_true", help="ignore any truth: residual plots and statistics only")
    p.add_argument(
        "--spacecraft",
        metavar="NAME",
        help="which spacecraft of the truth the files belong to (default: "
        "the top-level one, or the sub-directory's name)",
    )
    p.add_argument(
        "--settle",
        default=None,
        metavar="DURATION",
        help="leave the first DURATION of each estimator out of the error statistics "
        "(default 30m, or 10%% of the run when it is shorter than 3h)",
    )
    p.add_argument(
        "--oem-frame", choices=("ITRF", "GCRF"), default="ITRF", help="REF_FRAME of orbit.oem (default ITRF = ECEF)"
    )
    p.add_argument("--oem-covariance", action="store_true", help="add a COVARIANCE block per epoch to orbit.oem")
    p.add_argument(
        "--object-name",
        metavar="NAME",
        help="OBJECT_NAME (and OBJECT_ID) of orbit.oem "
        "(default: the truth's spacecraft name, else the scenario directory's name)",
    )
    p.add_argument("--no-plots", action="store_true", help="do not draw plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar, print nothing but errors")


def _check_arguments(args):
    """(truth or None, exit status or None): everything that can be wrong with the
    arguments, found before any work."""
    from ground.outputs.truth import TruthError, UnknownSpacecraft, find_truth

    if args.out.exists() and not args.out.is_dir():
        print(f"replay: --out {args.out} exists and is not a directory", file=sys.stderr)
        return None, 2
    if args.no_truth:
        return None, None
    try:
        truth = find_truth(args.scenario, args.truth, args.spacecraft)
    except UnknownSpacecraft as exc:
        print(f"replay: --spacecraft: {exc}", file=sys.stderr)
        return None, 2
    except TruthError as exc:
        print(f"replay: --truth: {exc}", file=sys.stderr)
        return None, 1
    if truth is None and args.spacecraft is not None:
        print(
            f"replay: --spacecraft {args.spacecraft}: there is no truth.npz for {args.scenario} (give --truth)",
            file=sys.stderr,
        )
        return None, 2
    return truth, None


#: What the flight ingest reads in a home (a scenario directory has the same layout).
INPUTS = ("sense.bin", "range/", "range.bin")


def no_inputs_message(scenario: Path) -> str | None:
    """Why *scenario* is no input of a replay (None: it holds one of :data:`INPUTS`): what
    is there instead - downlinked batch files (pygnc's estimates, which ``decode`` and
    ``serve`` read), spacecraft sub-directories to replay one by one - or that it is empty."""
    from pygnc.formats import batch as fmt

    if (scenario / "sense.bin").exists() or (scenario / "range.bin").exists() or (scenario / "range").is_dir():
        return None
    try:
        entries = sorted(scenario.iterdir())
    except OSError as exc:
        return f"cannot list it: {exc.strerror or exc}"
    text = f"no input of a replay in it ({', '.join(INPUTS)})"
    batches = [p for p in entries if fmt.FILE_RE.match(p.name) or fmt.PART_RE.match(p.name)]
    subdirs = [p for p in entries if p.is_dir() and no_inputs_message(p) is None]
    if batches:
        return (
            f"{text}: its batch files ({len(batches)}) hold pygnc's downlinked estimates, not inputs - "
            f"decode them (python -m ground decode {scenario} --out OUT_DIR) "
            f"or watch them (python -m ground serve {scenario})"
        )
    if subdirs:
        return f"{text}; replay each of its inputs: " + ", ".join(str(p) for p in subdirs[:8])
    return text + ("; it is empty" if not entries else "")


def run(args) -> int:
    from pygnc.config import load_config
    from pygnc.config_source import home_selection

    say = (lambda *a: None) if args.quiet else print
    scenario = args.scenario
    if not scenario.is_dir():
        print(f"replay: {scenario}: not a directory", file=sys.stderr)
        return 1
    why = no_inputs_message(scenario)
    if why is not None:
        print(f"replay: {scenario}: {why}", file=sys.stderr)
        return 2
    if args.config:
        try:
            config = load_config(args.config)
        except (OSError, ValueError) as exc:
            print(f"replay: bad configuration {args.config}: {exc}", file=sys.stderr)
            return 2
    else:  # the configuration the spacecraft ran on, chosen as it chose it
        chosen = home_selection(scenario)
        config = chosen.config
        if chosen.rejected is not None:
            print(
                f"replay: {scenario}: refused configuration ({chosen.note}): replaying on what the flight "
                "ran on (--config FILE chooses another)",
                file=sys.stderr,
            )
    if args.accept_status is not None:
        config = dataclasses.replace(config, accepted_solution_status=tuple(args.accept_status))
    truth, status = _check_arguments(args)
    if status is not None:
        return status
    # The ground extra, checked before any work (ground.__main__ names what to install).
    import scipy  # noqa: F401
    import tqdm  # noqa: F401

    if not args.no_plots:
        import matplotlib  # noqa: F401
    try:
        from ground.simulate.simulator import parse_duration_s

        if args.settle is not None:
            parse_duration_s(args.settle)
        pipeline_timeout_s = parse_duration_s(args.pipeline_timeout)
    except ValueError as exc:
        print(f"replay: bad duration: {exc}", file=sys.stderr)
        return 2
    if not (scenario / "sense.bin").exists():
        say(f"replay: warning: no sense.bin in {scenario}: no sensor data, no own fixes")
    try:
        if args.pipeline:
            from ground.replay.pipeline import PipelineError, run_pipeline

            try:
                result = run_pipeline(
                    scenario,
                    config_path=args.config,
                    timeout_s=pipeline_timeout_s,
                    logs_to=args.out / "pipeline_logs",
                    say=say,
                    overrides={"accepted_solution_status": list(args.accept_status)}
                    if args.accept_status is not None
                    else None,
                )
            except PipelineError as exc:
                print(f"replay: pipeline failed: {exc}", file=sys.stderr)
                return 1
            stream = result.extra["stream"]
        else:
            result = run_in_process(scenario, config, quiet=args.quiet, record_history=args.smooth)
            stream = result.extra["stream"]
    except OSError as exc:
        print(f"replay: {scenario}: {exc}", file=sys.stderr)
        return 1
    say(
        f"replay {scenario} ({result.mode.replace('_', '-')}; estimators: {', '.join(result.processors) or 'none'}): "
        f"{result.n_messages} messages in {result.timings_s.get('total', math.nan):.2f} s"
    )
    summary = write_outputs(OutputOptions.from_args(args), result, stream, args.out, say, truth, config=config)
    if summary["truth"] is not None:
        print_truth_lines(summary, say)
    elif not args.no_truth:
        say("  no truth.npz: residual statistics only")
    say(
        f"  wrote {args.out}/: {', '.join(sorted(p.name for p in args.out.iterdir() if p.is_file()))}"
        + (f" and {len(summary['plots'])} plots in plots/" if summary["plots"] else "")
    )
    return 0
