"""``python -m ground simulate OUT_DIR``: the command line of the simulator
(:mod:`ground.simulate.simulator`): settings from a TOML file and options, checked before
any work; an existing scenario replaced only with ``--force``, its old files removed."""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

from ground.simulate import scenario as scn
from ground.simulate.simulator import (
    CONFIG_NAME,
    TLE_NAME,
    _extra_spacecraft,
    _grid,
    check_settings,
    parse_duration_s,
    simulate,
    write_scenario,
)


def _set_dotted(settings: scn.ScenarioSettings, assignment: str) -> scn.ScenarioSettings:
    """Apply ``section.key=TOML_VALUE`` (e.g. ``sensors.gyro_noise_deg_s=0.05``)."""
    if "=" not in assignment:
        raise ValueError(f"--set needs KEY=VALUE, got {assignment!r}")
    key, value = assignment.split("=", 1)
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return scn.set_dotted(settings, key, parsed)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="scenario directory to write")
    parser.add_argument(
        "--settings", type=Path, help="scenario TOML to start from (e.g. data/scenarios/formation_3h.toml)"
    )
    parser.add_argument("--duration", help="length: seconds or with a unit, e.g. 300, 90m, 3h, 1d")
    parser.add_argument("--start-utc", help="start time, ISO 8601 UTC, whole seconds (e.g. 2025-03-20T06:00:00Z)")
    parser.add_argument("--seed", type=int, help="random seed (every draw derives from it)")
    parser.add_argument("--spacecraft", type=int, metavar="N", help="number of spacecraft in the formation (>= 1)")
    parser.add_argument(
        "--good-status",
        type=int,
        choices=(0, 1),
        help="solution status of good fixes (0 NovAtel SOL_COMPUTED; 1 as the flight team's simulator)",
    )
    parser.add_argument("--torque-free", action="store_true", help="no gravity-gradient or dipole torque")
    parser.add_argument("--noise-free", action="store_true", help="zero all sensor, GPS and range noise (biases stay)")
    parser.add_argument("--gps-drop-fraction", type=float, help="fraction of fixes dropped (INSUFFICIENT_OBS)")
    parser.add_argument(
        "--gps-invalid-fraction", type=float, help="fraction of good fixes written with an invalid status"
    )
    parser.add_argument("--gps-outlier-fraction", type=float, help="fraction of fixes with a position outlier")
    parser.add_argument(
        "--gps-gap",
        action="append",
        default=[],
        metavar="START:END",
        help="no fixes between START and END seconds after the start (repeatable)",
    )
    parser.add_argument("--range-invalid-fraction", type=float, help="fraction of range packets flagged invalid")
    parser.add_argument(
        "--corrupt-bytes", type=int, metavar="N", help="overwrite N random bytes of every sense.bin and range file"
    )
    parser.add_argument(
        "--tle",
        action="store_true",
        help="also write tle.txt: a TLE of every spacecraft fitted to "
        "its truth, with TLE-class errors (settings [tle]; NORAD ids 90000 + radio id unless set)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any setting by dotted name, TOML value "
        "(e.g. sensors.gyro_noise_deg_s=0.05, spacecraft.1.dlambda_m=-8000)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing scenario in OUT_DIR")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")


def settings_from_args(args) -> scn.ScenarioSettings:
    s = scn.load_settings(args.settings) if args.settings else scn.ScenarioSettings()
    if args.duration is not None:
        s.duration_s = parse_duration_s(args.duration)
    if args.start_utc is not None:
        s.start_utc = args.start_utc
    if args.seed is not None:
        s.seed = args.seed
    if args.spacecraft is not None:
        if args.spacecraft < 1:
            raise ValueError("--spacecraft must be >= 1")
        s.spacecraft = s.spacecraft[: args.spacecraft] + [
            _extra_spacecraft(k) for k in range(len(s.spacecraft), args.spacecraft)
        ]
    if args.good_status is not None:
        s.gps.good_solution_status = args.good_status
    if args.torque_free:
        s.attitude.gravity_gradient = False
        s.attitude.dipole_a_m2 = 0.0
        for sc in s.spacecraft:
            sc.dipole_body_a_m2 = [0.0, 0.0, 0.0]
    if args.noise_free:
        s.sensors.gyro_noise_deg_s = 0.0
        s.sensors.mag_noise_ut = 0.0
        s.sensors.lux_noise_fraction = 0.0
        s.sensors.lux_noise_floor_lux = 0.0
        s.sensors.gyro_bias_walk_deg_s_per_sqrt_s = 0.0
        s.gps.pos_sigma_m = 0.0
        s.gps.vel_sigma_m_s = 0.0
        s.ranging.sigma_m = 0.0
    f = s.faults
    if args.gps_drop_fraction is not None:
        f.gps_drop_fraction = args.gps_drop_fraction
    if args.gps_invalid_fraction is not None:
        f.gps_invalid_status_fraction = args.gps_invalid_fraction
    if args.gps_outlier_fraction is not None:
        f.gps_outlier_fraction = args.gps_outlier_fraction
    for gap in args.gps_gap:
        parts = gap.split(":")
        if len(parts) != 2:
            raise ValueError(
                f"--gps-gap needs START:END (seconds after the start, e.g. 600:1200 or 10m:20m), got {gap!r}"
            )
        start, end = (parse_duration_s(x) for x in parts)
        if not 0 <= start < end:
            raise ValueError(f"--gps-gap {gap!r}: need 0 <= START < END")
        f.gps_gaps_s.append([start, end])
    if args.range_invalid_fraction is not None:
        f.range_invalid_fraction = args.range_invalid_fraction
    if args.corrupt_bytes is not None:
        f.sense_corrupt_bytes = args.corrupt_bytes
        f.range_corrupt_bytes = args.corrupt_bytes
    if getattr(args, "tle", False):
        s.tle.enabled = True
    for assignment in args.set:
        s = _set_dotted(s, assignment)
    return s


def _clear_old(out_dir: Path, names: list[str]) -> None:
    """Remove the files an earlier scenario wrote (only those), so none are left stale."""
    for k, name in enumerate(names):
        home = out_dir if k == 0 else out_dir / name
        for p in [home / "sense.bin", home / CONFIG_NAME, *sorted((home / "range").glob("rng*.bin"))]:
            if p.is_file():
                p.unlink()
    for p in (out_dir / "scenario.toml", out_dir / "truth.npz", out_dir / TLE_NAME):
        if p.is_file():
            p.unlink()


def run(args) -> int:
    out_dir: Path = args.out_dir
    if out_dir.exists() and not out_dir.is_dir():
        print(f"simulate: {out_dir} exists and is not a directory", file=sys.stderr)
        return 2
    try:
        settings = settings_from_args(args)
        check_settings(settings)
        _grid(scn.resolve(settings))  # validate before any work
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"simulate: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    if (out_dir / "scenario.toml").exists() or (out_dir / "sense.bin").exists():
        if not args.force:
            print(f"simulate: {out_dir} already holds a scenario (use --force to replace it)", file=sys.stderr)
            return 2
        old_names = [sc.name for sc in settings.spacecraft]
        try:
            old_names = [sc.name for sc in scn.load_settings(out_dir / "scenario.toml").spacecraft]
        except (OSError, ValueError, tomllib.TOMLDecodeError):
            pass
        _clear_old(out_dir, old_names)
    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    scenario = simulate(settings, progress=say)
    written = write_scenario(scenario, out_dir)
    if not args.quiet:
        total = sum(p.stat().st_size for p in written)
        tm = ", ".join(f"{k} {v:.1f} s" for k, v in scenario.timings_s.items())
        print(
            f"wrote {len(written)} files ({total / 1024:.1f} KiB) to {out_dir}: "
            f"{len(scenario.settings.spacecraft)} spacecraft, {scenario.settings.duration_s:.0f} s, "
            f"seed {scenario.settings.seed} [{tm}]"
        )
    return 0
