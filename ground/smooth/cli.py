"""``python -m ground smooth --spacecraft ID=DIR [--spacecraft ID=DIR ...] --out OUT``: the best
estimate of the whole formation from every spacecraft's fixes and every range between them.

Reads each spacecraft's directory (:mod:`ground.smooth.inputs`: host files or a downlink),
smooths them together (:mod:`ground.smooth.core`), and writes in OUT (atomically):

* ``formation.csv`` - every pair in both directions at every grid epoch
  (:data:`ground.outputs.tables.COLUMNS` ``smoothed_formation``: the replay's columns, then
  ``own_id``, ``t_gps_s``, ``sigma_los_m``, ``sigma_range_bias_m``, ``quality``);
* ``orbit_0xID.csv`` - each spacecraft's orbit (``smoothed_orbit``);
* ``measurements.csv`` - every fix and range with what became of it and its smoothed residual;
* ``report.md`` - inputs, estimates, the on-board estimates against the smoother's, and with
  ``--truth`` both against the truth;
* ``summary.json`` - the report's numbers.

Every argument is checked before any work: a malformed ``--spacecraft``, an ID given twice,
a directory that holds neither host files nor batch files, ``--out`` an existing file, an
``--onboard`` of a spacecraft not given, a truth without the spacecraft: one line on
stderr, exit 2.  Exit 1: unreadable input, or no spacecraft with a usable fix.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from ground.decode.cli import accept_status_list

__all__ = ["add_arguments", "run"]


def radio_id(text: str) -> int:
    """A radio id: 0-255, decimal or 0x-hexadecimal."""
    try:
        v = int(text, 0)
    except ValueError:
        raise ValueError(f"{text!r} is not a radio id (0-255, e.g. 0x4A or 74)") from None
    if not 0 <= v <= 255:
        raise ValueError(f"{text!r} is not a radio id (0-255, e.g. 0x4A or 74)")
    return v


def id_dir(text: str) -> tuple[int, Path]:
    """``ID=DIR``: (radio id, directory)."""
    sid, sep, d = text.partition("=")
    if not sep or not d:
        raise argparse.ArgumentTypeError(f"{text!r}: give ID=DIR (e.g. 0x4A=downlink/sc1)")
    try:
        return radio_id(sid.strip()), Path(d)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--spacecraft",
        action="append",
        type=id_dir,
        required=True,
        metavar="ID=DIR",
        help="a spacecraft's radio id and its directory: host files (sense.bin, range/) or its downlinked "
        "batch files (repeat for every spacecraft)",
    )
    p.add_argument("--out", required=True, type=Path, metavar="OUT", help="directory for the products")
    p.add_argument(
        "--onboard",
        action="append",
        type=id_dir,
        default=[],
        metavar="ID=DIR",
        help="the spacecraft's on-board estimates to compare, from a 'ground replay' or 'ground decode --out' "
        "output or a downlink (default: its directory's downlink, if any)",
    )
    p.add_argument("--truth", type=Path, metavar="NPZ", help="a simulated scenario's truth.npz: errors in the report")
    p.add_argument(
        "--settle",
        default=None,
        metavar="DURATION",
        help="leave the first DURATION out of --truth's statistics (default 30m, or 10%% of an arc shorter than 3h)",
    )
    p.add_argument(
        "--step-s", type=float, default=30.0, metavar="S", help="the estimate's grid [s] (default 30, at most 60)"
    )
    p.add_argument(
        "--passes", type=int, default=2, choices=(1, 2), help="2 (default): iterate once about the smoothed arc"
    )
    p.add_argument(
        "--range-bias-walk",
        type=float,
        default=0.0,
        metavar="M_PER_SQRT_S",
        help="random walk of every link's range bias [m/sqrt(s)] (default 0: a constant over the arc)",
    )
    p.add_argument(
        "--accept-status",
        type=accept_status_list,
        default=None,
        metavar="LIST",
        help="NovAtel solution-status values taken as valid fixes in host files (as replay's)",
    )
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _usage(msg: str) -> int:
    print(f"smooth: {msg}", file=sys.stderr)
    return 2


def _check(args):
    """(datas-to-read, truth, settle_s) or an exit status: everything that can be wrong with
    the arguments, before any work."""
    from ground.simulate.simulator import parse_duration_s
    from ground.smooth.inputs import BATCH_DIR, batch_files_in, has_host_files

    seen = {}
    for sid, d in args.spacecraft:
        if sid in seen:
            return _usage(f"--spacecraft 0x{sid:02X} given twice ({seen[sid]} and {d})")
        seen[sid] = d
        if not d.exists():
            return _usage(f"--spacecraft 0x{sid:02X}={d}: no such directory")
        if d.is_dir() and not (has_host_files(d) or batch_files_in(d) or batch_files_in(d / BATCH_DIR)):
            held = sorted(p.name for p in d.iterdir() if not p.name.startswith("."))[:6]
            hint = "; a replay or decode output goes with --onboard" if (d / "orbit.csv").is_file() else ""
            return _usage(
                f"--spacecraft 0x{sid:02X}={d}: neither host files (sense.bin, range/) nor batch files "
                f"(it holds {', '.join(held) or 'nothing'}){hint}"
            )
    for sid, d in args.onboard:
        if sid not in seen:
            return _usage(f"--onboard 0x{sid:02X}: not one of the --spacecraft")
        if not d.exists():
            return _usage(f"--onboard 0x{sid:02X}={d}: no such file or directory")
    if args.out.exists() and not args.out.is_dir():
        return _usage(f"--out {args.out} exists and is not a directory")
    if not (0.0 < args.step_s <= 60.0):
        return _usage(f"--step-s {args.step_s:g}: must be in (0, 60] s")
    if not (0.0 <= args.range_bias_walk <= 1.0):
        return _usage(f"--range-bias-walk {args.range_bias_walk:g}: must be in [0, 1] m/sqrt(s)")
    try:
        settle_s = None if args.settle is None else parse_duration_s(args.settle)
    except ValueError as exc:
        return _usage(f"--settle: {exc}")
    truth = None
    if args.truth is not None:
        if not args.truth.is_file():
            return _usage(f"--truth {args.truth}: no such file")
        try:
            with np.load(args.truth, allow_pickle=False) as z:
                truth = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            return _usage(f"--truth {args.truth}: not a truth file ({exc})")
        if "radio_id" not in truth or "r_gcrs_m" not in truth:
            return _usage(f"--truth {args.truth}: not a truth file (no radio_id / r_gcrs_m)")
        missing = [f"0x{s:02X}" for s in seen if s not in {int(r) for r in truth["radio_id"]}]
        if missing:
            return _usage(f"--truth {args.truth}: has no spacecraft {', '.join(missing)}")
    return truth, settle_s


def _truth_section(result, truth, ids, settle_s, compare_inputs) -> dict:
    """Smoother and on-board errors against the truth (the report's last section)."""
    from ground.smooth.bound import truth_states
    from ground.smooth.evaluate import truth_for, truth_stats
    from pygnc import frames

    tr = truth_for(truth, ids)
    st = truth_stats(result, tr, settle_s)
    t0 = float(result.t_gps_s[0]) + settle_s
    tt = tr["t_gps_s"]
    onboard = {"orbit": {}, "formation": {}}
    for k, ob in compare_inputs["orbit"].items():
        t = np.asarray(ob["t_gps_s"], dtype=float)
        sel = (t >= max(t0, tt[0])) & (t <= tt[-1])
        if not sel.any() or "x_gcrs_m" not in ob:
            continue
        r = np.stack([np.asarray(ob[f"{a}_gcrs_m"], dtype=float)[sel] for a in "xyz"], 1)
        rt, _ = truth_states(tt, tr["r_gcrs_m"][k], tr["v_gcrs_m_s"][k], t[sel])
        onboard["orbit"][k] = float(np.sqrt(np.mean(np.sum((r - rt) ** 2, 1))))
    for (i, j), ob in compare_inputs["formation"].items():
        t = np.asarray(ob["t_gps_s"], dtype=float)
        sel = (t >= max(t0, tt[0])) & (t <= tt[-1])
        if not sel.any():
            continue
        d = np.stack([np.asarray(ob[f"d{a}_ecef_m"], dtype=float)[sel] for a in "xyz"], 1)
        ri, _ = truth_states(tt, tr["r_gcrs_m"][i], tr["v_gcrs_m_s"][i], t[sel])
        rj, _ = truth_states(tt, tr["r_gcrs_m"][j], tr["v_gcrs_m_s"][j], t[sel])
        de = np.array([frames.gcrs_from_itrs_matrix(float(x)).T @ dd for x, dd in zip(t[sel], rj - ri)])
        onboard["formation"][(i, j)] = float(np.sqrt(np.mean(np.sum((d - de) ** 2, 1))))
    return {"orbit": st["orbit"], "pairs": st["pairs"], "onboard": onboard, "settle_s": settle_s}


def _measurement_table(result, ids) -> dict:
    from ground.outputs.tables import iso_utc
    from ground.smooth.core import FIX, STATE_NAMES
    from pygnc.timebase import utc_unix_from_gps

    order = np.argsort(result.meas_t_gps_s, kind="stable")
    t = result.meas_t_gps_s[order]
    unix = np.asarray(utc_unix_from_gps(t), dtype=float)
    idarr = np.asarray(ids, dtype=np.int64)
    peer = result.meas_peer[order]
    return {
        "t_gps_s": t,
        "utc": iso_utc(unix),
        "kind": np.where(result.meas_kind[order] == FIX, "fix", "range").astype(object),
        "sc_id": idarr[result.meas_sc[order]],
        "peer_id": np.where(peer >= 0, idarr[np.maximum(peer, 0)], -1),
        "state": np.array(STATE_NAMES, dtype=object)[result.meas_state[order]],
        "residual": result.meas_residual[order],
        "sigma": result.meas_sigma[order],
    }


def _command(args) -> str:
    """The command line that asks for what *args* ask for (the report's first line)."""
    parts = ["python", "-m", "ground", "smooth"]
    for sid, d in args.spacecraft:
        parts += ["--spacecraft", f"0x{sid:02X}={d}"]
    parts += ["--out", str(args.out)]
    for sid, d in args.onboard:
        parts += ["--onboard", f"0x{sid:02X}={d}"]
    if args.truth is not None:
        parts += ["--truth", str(args.truth)]
    if args.settle is not None:
        parts += ["--settle", args.settle]
    if args.step_s != 30.0:
        parts += ["--step-s", f"{args.step_s:g}"]
    if args.passes != 2:
        parts += ["--passes", str(args.passes)]
    if args.accept_status is not None:
        parts += ["--accept-status", ",".join(str(v) for v in args.accept_status)]
    if args.range_bias_walk:
        parts += ["--range-bias-walk", f"{args.range_bias_walk:g}"]
    return " ".join(shlex.quote(p) for p in parts)


def _ordered(table: dict, kind: str) -> dict:
    from ground.outputs.tables import COLUMNS

    return {name: table[name] for name, _ in COLUMNS[kind]}


def run(args) -> int:
    from ground.outputs.tables import COLUMNS, placeholder_rows, write_csv
    from ground.smooth import products as pr
    from ground.smooth.core import SmoothConfig, smooth
    from ground.smooth.inputs import InputError, assemble, read_onboard, read_spacecraft
    from ground.smooth.report import render
    from pygnc.atomic import write_atomic
    from pygnc.config import Config

    say = (lambda *a: None) if args.quiet else print
    checked = _check(args)
    if isinstance(checked, int):
        return checked
    truth, settle_s = checked
    cpu0 = time.process_time()
    datas, notes = [], []
    for sid, d in args.spacecraft:
        try:
            data = read_spacecraft(d, sid, args.accept_status)
        except InputError as exc:
            return _usage(f"--spacecraft 0x{sid:02X}: {exc}")
        except OSError as exc:
            print(f"smooth: {d}: {exc}", file=sys.stderr)
            return 1
        if not data.fixes["t_gps_s"].size:
            msg = f"0x{sid:02X} ({d}): no usable GPS fix: left out (its ranges and those to it with it)"
            print(f"smooth: warning: {msg}", file=sys.stderr)
            notes.append(msg)
            continue
        say(
            f"smooth: 0x{sid:02X} {d} ({data.source}): {data.fixes['t_gps_s'].size} fixes, "
            f"{data.ranges['t_gps_s'].size} ranges"
        )
        datas.append(data)
    if not datas:
        print("smooth: no spacecraft with a usable GPS fix: nothing to smooth", file=sys.stderr)
        return 1
    for sid, d in args.onboard:
        data = next((x for x in datas if x.sc_id == sid), None)
        if data is None:
            continue
        try:
            data.onboard_orbit, data.onboard_formation, data.onboard_source = read_onboard(d, sid)
        except InputError as exc:
            return _usage(f"--onboard 0x{sid:02X}: {exc}")
        except OSError as exc:
            print(f"smooth: {d}: {exc}", file=sys.stderr)
            return 1
    inp, more = assemble(datas)
    notes += more
    for d in datas:
        if d.sc_id not in inp.ids:  # (every fix of it left out: as one without a usable fix)
            print(f"smooth: warning: 0x{d.sc_id:02X} ({d.path}): no fix left: left out", file=sys.stderr)
    datas = [d for d in datas if d.sc_id in inp.ids]
    cfg = SmoothConfig(step_s=args.step_s, passes=args.passes, range_bias_walk_m_sqrt_s=args.range_bias_walk)
    for msg in more:
        say(f"smooth: {msg}")
    try:
        result = smooth(inp, cfg, progress=say)
    except ValueError as exc:  # the inputs cannot be smoothed as they are (said why)
        print(f"smooth: {exc}", file=sys.stderr)
        return 1
    ids = [d.sc_id for d in datas]
    summ = pr.summaries(result)
    orbits = {k: pr.orbit_table(result, k, d.clock, d.counts, summ) for k, d in enumerate(datas)}
    form = pr.formation_table(result, ids, [d.clock for d in datas], summ) if len(datas) > 1 else {}
    compare = {"orbit": {}, "formation": {}, "source": {}, "acquiring": {}}
    cmp_inputs = {"orbit": {}, "formation": {}}
    index = {sid: k for k, sid in enumerate(ids)}
    for k, d in enumerate(datas):
        compare["source"][k] = d.onboard_source
        if d.onboard_orbit is not None:
            c = pr.compare_orbit(result, k, d.onboard_orbit)
            if c is not None:
                compare["orbit"][k] = c
                cmp_inputs["orbit"][k] = d.onboard_orbit
        fo = d.onboard_formation
        if fo is not None:
            for pid in sorted({int(p) for p in fo["peer_id"]}):
                j = index.get(pid)
                if j is None or j == k:
                    continue
                rows = {c: np.asarray(v)[np.asarray(fo["peer_id"]) == pid] for c, v in fo.items()}
                # (rows `acquiring` hold a range-only partner's prior, not an estimate: left out, counted)
                placeholder = placeholder_rows(rows)
                if placeholder.any():
                    rows = {c: v[~placeholder] for c, v in rows.items()}
                    compare["acquiring"][(k, j)] = int(placeholder.sum())
                c = pr.compare_formation(result, k, j, rows, Config().formation_valid_max_sigma_m)
                if c is not None:
                    compare["formation"][(k, j)] = c
                    cmp_inputs["formation"][(k, j)] = rows
    if settle_s is None:  # (as replay's)
        span = float(result.meas_t_gps_s.max() - result.t_gps_s[0])
        settle_s = 1800.0 if span >= 3 * 3600.0 else 0.1 * span
    truth_sec = _truth_section(result, truth, ids, settle_s, cmp_inputs) if truth is not None else None
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    written = []
    ft = _ordered(form, "smoothed_formation") if form else {n: np.zeros(0) for n, _ in COLUMNS["smoothed_formation"]}
    write_csv(ft, out / "formation.csv")
    written.append("formation.csv")
    for k, sid in enumerate(ids):
        name = f"orbit_0x{sid:02X}.csv"
        write_csv(_ordered(orbits[k], "smoothed_orbit"), out / name)
        written.append(name)
    write_csv(_ordered(_measurement_table(result, ids), "smoothed_measurements"), out / "measurements.csv")
    written.append("measurements.csv")
    cpu = time.process_time() - cpu0
    command = _command(args)
    text = render(
        {
            "command": command,
            "result": result,
            "datas": datas,
            "summary": summ,
            "formation": form,
            "orbits": orbits,
            "compare": compare,
            "truth": truth_sec,
            "notes": notes,
            "cpu_s": cpu,
            "config": cfg,
        }
    )
    write_atomic(out / "report.md", text.encode())
    written.append("report.md")
    hx = lambda k: f"0x{ids[k]:02X}"  # noqa: E731
    summary = {
        "format_version": 1,
        "spacecraft": {
            hx(k): {"dir": str(d.path), "source": d.source, **summ["orbit"][k]} for k, d in enumerate(datas)
        },
        "links": {f"{hx(o)}->{hx(p)}": v for (o, p), v in summ["link"].items()},
        "compare": {
            "orbit": {hx(k): v for k, v in compare["orbit"].items()},
            "formation": {f"{hx(i)}->{hx(j)}": v for (i, j), v in compare["formation"].items()},
        },
        "truth": None
        if truth_sec is None
        else {
            "settle_s": settle_s,
            "orbit": {hx(k): v for k, v in truth_sec["orbit"].items()},
            "pairs": {f"{hx(i)}-{hx(j)}": v for (i, j), v in truth_sec["pairs"].items()},
        },
        "passes": result.passes,
        "pass_change_m": result.pass_change,
        "cpu_s": cpu,
        "notes": notes,
    }
    write_atomic(out / "summary.json", (json.dumps(_clean(summary), indent=1) + "\n").encode())
    written.append("summary.json")
    for (i, j), s in (truth_sec or {}).get("pairs", {}).items():
        say(
            f"  truth {hx(i)}-{hx(j)}: relative 3D RMS {s['rms3d_m']:.3f} m, line of sight {s['rms_los_m']:.3f} m "
            f"(sigma {s['sigma_los_m']:.3f}), inside 3 sigma {100 * s['inside_3sigma']:.1f} %"
        )
    say(f"smooth: wrote {out}/: {', '.join(written)} ({cpu:.1f} s CPU)")
    return 0


def _clean(o):
    """JSON-able: numpy numbers as Python ones, non-finite floats as null."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (bool, np.bool_)):
        return bool(o)
    if isinstance(o, (int, np.integer)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(float(o)) else None
    return o
