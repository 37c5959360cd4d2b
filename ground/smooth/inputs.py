"""What the formation smoother reads, per spacecraft: its measurements, its clock, and what it
estimated on board.

A spacecraft's directory is one of

* its **host files** (``sense.bin``, ``range/rng*.bin``, ``range.bin``: docs/interface.md),
  read with ingest's own :func:`pygnc.tasks.ingest.build_message_stream` under the
  directory's ``pygnc_config.toml`` if it has one (as the spacecraft read them): every
  valid own fix, every valid range with its tag mapped to GPS time by the batch's clock
  map.  A ``pygnc_batches/`` beside them (a home read back after a run) gives the on-board
  estimates;
* its **downlinked batch files** (:func:`ground.decode.batch_files.read_batches`): the decimated own
  fixes and ranges the writer kept (``gps_fix`` and ``range`` records, by default one per
  5 minutes and partner: docs/interface.md) as measurements, range tags through the run's
  clock map, and the ``orbit`` and ``formation`` records as the on-board estimates;

or, for the on-board estimates only (``--onboard``), a ``ground replay`` or ``ground decode
--out`` output directory (``orbit.csv``, ``formation.csv``).

Relayed partner fixes (``range_gps_source = "peer"``) are not used: they are the partner's
own fixes, which its own files carry (counted twice otherwise).  :class:`InputError` says
in one line why a directory cannot be used.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["InputError", "SpacecraftData", "read_onboard", "read_spacecraft"]

HOST_INPUTS = ("sense.bin", "range", "range.bin")
BATCH_DIR = "pygnc_batches"


class InputError(ValueError):
    """A spacecraft directory the smoother cannot use; the message says why."""


@dataclass
class SpacecraftData:
    """One spacecraft's inputs.  ``fixes``: arrays of its usable own fixes (``t_gps_s`` (n,),
    ``pos_ecef_m``, ``vel_ecef_m_s``, ``pos_sigma_m``, ``vel_sigma_m_s`` (n, 3)); ``ranges``:
    its valid ranges (``t_gps_s``, ``peer_id``, ``range_m`` (m,)); ``clock``: spacecraft
    clock -> GPS (:class:`pygnc.timebase.ClockMap`, None without); ``onboard_orbit``,
    ``onboard_formation``: the on-board estimates (:mod:`ground.outputs.tables` layouts, with
    ``t_gps_s``), None when the directory holds none; ``counts``: what was read."""

    sc_id: int
    path: Path
    source: str
    fixes: dict
    ranges: dict
    clock: object | None = None
    onboard_orbit: dict | None = None
    onboard_formation: dict | None = None
    onboard_source: str = ""
    counts: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


def _fix_arrays(bodies: list[dict]) -> dict:
    out = {"t_gps_s": np.array([float(b["t_gps_s"]) for b in bodies], dtype=float).reshape(-1)}
    for k in ("pos_ecef_m", "vel_ecef_m_s", "pos_sigma_m", "vel_sigma_m_s"):
        out[k] = np.array([b[k] for b in bodies], dtype=float).reshape(-1, 3)
    order = np.argsort(out["t_gps_s"], kind="stable")
    out = {k: v[order] for k, v in out.items()}
    # One fix per instant (a fix repeated in two files, or a context record).
    keep = np.ones(out["t_gps_s"].size, dtype=bool)
    keep[1:] = np.diff(out["t_gps_s"]) > 1e-3
    return {k: v[keep] for k, v in out.items()}


def _range_arrays(t_gps_s, peer_id, range_m) -> dict:
    t = np.asarray(t_gps_s, dtype=float)
    order = np.argsort(t, kind="stable")
    return {
        "t_gps_s": t[order],
        "peer_id": np.asarray(peer_id, dtype=np.int64)[order],
        "range_m": np.asarray(range_m, dtype=float)[order],
    }


def _finite_fix(b: dict) -> bool:
    return all(math.isfinite(float(v)) for k in ("pos_ecef_m", "vel_ecef_m_s") for v in b[k]) and math.isfinite(
        float(b["t_gps_s"])
    )


def batch_files_in(path: Path) -> list[Path]:
    """The batch files directly in *path* (names ``batch_NNNNNNNN.bin`` or ``.part``)."""
    from pygnc.formats import batch as fmt

    if not path.is_dir():
        return []
    return [
        p for p in sorted(path.iterdir()) if p.is_file() and (fmt.FILE_RE.match(p.name) or fmt.PART_RE.match(p.name))
    ]


def has_host_files(path: Path) -> bool:
    return (path / "sense.bin").is_file() or (path / "range").is_dir() or (path / "range.bin").is_file()


def _read_host(path: Path, sc_id: int, accept_status) -> SpacecraftData:
    import dataclasses

    from pygnc.config import Paths
    from pygnc.config_source import home_selection
    from pygnc.tasks.ingest import build_message_stream

    chosen = home_selection(path)  # what the flight ran on
    config = chosen.config
    if accept_status is not None:
        config = dataclasses.replace(config, accepted_solution_status=tuple(accept_status))
    log = logging.getLogger("ground.smooth.ingest")
    log.propagate = False  # (what matters is in the stats' notes, reported)
    if not log.handlers:
        log.addHandler(logging.NullHandler())
    stream = build_message_stream(Paths(path), config, log=log)
    clock = stream.clock
    fixes, n_fix, n_range = [], 0, 0
    rt, rp, rr = [], [], []
    n_range_valid = n_untimed = 0
    for kind, b in stream.messages:
        if kind == "gps_fix" and b["peer_id"] == 0:
            n_fix += 1
            if b["valid"] and _finite_fix(b):
                fixes.append(b)
        elif kind == "range":
            n_range += 1
            if b["valid"] and math.isfinite(float(b["range_m"])):
                n_range_valid += 1
                if clock is None:
                    n_untimed += 1
                    continue
                rt.append(float(clock.gps_from_sc(float(b["t_sc_s"]))))
                rp.append(int(b["peer_id"])), rr.append(float(b["range_m"]))
    data = SpacecraftData(
        sc_id,
        path,
        "host files",
        _fix_arrays(fixes),
        _range_arrays(rt, rp, rr),
        clock=clock,
        counts={"fixes": n_fix, "fixes_valid": len(fixes), "ranges": n_range, "ranges_valid": n_range_valid},
    )
    if chosen.rejected is not None:
        data.notes.append(f"refused configuration ({chosen.note}): read with what the flight ran on")
    if n_untimed:
        data.notes.append(f"{n_untimed} ranges without a clock map (no valid fix): not used")
    for st in stream.stats:
        # What went wrong in reading (skipped bytes, time outliers, missing files), not the
        # count of GPS packets every range-file note ends with.
        note = re.sub(r"(; )?\d+ (own GPS packets|peer GPS fixes) \(.*\)$", "", str(st.get("note") or ""))
        if note:
            data.notes.append(f"{st['source']}: {note}")
    return data


def _batch_set(path: Path, sc_id: int):
    """The batch files of spacecraft *sc_id* at *path* (a file or directory): (BatchSet of
    its rows, tables) - InputError when none is its."""
    from ground.decode.batch_files import BatchSet, build_tables, read_batches

    try:
        bs = read_batches(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    if not bs.rows:
        raise InputError(f"{path}: no intact batch record")
    ids = {f.spacecraft_id for f in bs.files if f.duplicate_of is None and f.n_records}
    known = ids - {-1, 0}
    if known and sc_id not in known:
        names = ", ".join(f"0x{i:02X}" for i in sorted(known))
        raise InputError(f"{path}: its batch files were written by spacecraft {names}, not 0x{sc_id:02X}")
    mine = BatchSet(
        files=bs.files,
        rows=[r for r in bs.rows if r.file.spacecraft_id in (sc_id, 0, -1)],
        problems=bs.problems,
    )
    return mine, build_tables(mine)


def _onboard_from_tables(tables: dict) -> tuple[dict | None, dict | None]:
    """The on-board orbit and formation tables of a decoded batch set, propagated rows left
    out, with ``t_gps_s`` (the formation table has only UTC: converted back)."""
    from pygnc.timebase import gps_from_utc_unix

    orbit = tables.get("orbit")
    form = tables.get("formation")
    out = []
    for t in (orbit, form):
        if t is None or not np.asarray(t["t_sc_s"]).size:
            out.append(None)
            continue
        keep = np.asarray(t.get("propagated", np.zeros(t["t_sc_s"].size)), dtype=float) == 0
        t = {k: np.asarray(v)[keep] for k, v in t.items()}
        if "t_gps_s" not in t:
            t["t_gps_s"] = np.asarray(gps_from_utc_unix(np.asarray(t["unix_time_s"], dtype=float)), dtype=float)
        keep = np.isfinite(np.asarray(t["t_gps_s"], dtype=float))
        out.append({k: v[keep] for k, v in t.items()} if keep.any() else None)
    return out[0], out[1]


def _read_downlink(path: Path, sc_id: int) -> SpacecraftData:
    from ground.decode.batch_files import RunClocks
    from pygnc.config import Config
    from pygnc.processors.admission import fix_plausible, range_plausible

    config = Config()
    bs, tables = _batch_set(path, sc_id)
    fx = tables.get("gps_fix")
    fixes = []
    n_fix = n_implausible = 0
    if fx is not None and fx["t_sc_s"].size:
        for i in range(fx["t_sc_s"].size):
            if int(fx["peer_id"][i]) != 0:
                continue
            n_fix += 1
            b = {
                "t_gps_s": float(fx["t_gps_s"][i]),
                "pos_ecef_m": [fx[f"pos_ecef_m_{a}"][i] for a in "xyz"],
                "vel_ecef_m_s": [fx[f"vel_ecef_m_s_{a}"][i] for a in "xyz"],
                "pos_sigma_m": [fx[f"pos_sigma_m_{a}"][i] for a in "xyz"],
                "vel_sigma_m_s": [fx[f"vel_sigma_m_s_{a}"][i] for a in "xyz"],
            }
            if int(fx["flags"][i]) & 1 and _finite_fix(b):
                if not fix_plausible(config, b["pos_ecef_m"], b["vel_ecef_m_s"]):
                    n_implausible += 1  # CRC-valid, but no orbit: as the flight's admission
                    continue
                for k in ("pos_sigma_m", "vel_sigma_m_s"):  # a sigma that is no sigma: not given
                    b[k] = [float(v) if math.isfinite(float(v)) and float(v) > 0.0 else 0.0 for v in b[k]]
                fixes.append(b)
    rg = tables.get("range")
    rt, rp, rr = [], [], []
    n_range = n_valid = n_untimed = 0
    if rg is not None and rg["t_sc_s"].size:
        for i in range(rg["t_sc_s"].size):
            n_range += 1
            if not int(rg["flags"][i]) & 1:
                continue
            n_valid += 1
            t = float(rg["t_gps_s"][i])
            if not math.isfinite(t):
                n_untimed += 1
                continue
            if not range_plausible(config, float(rg["range_m"][i])):
                n_implausible += 1
                continue
            rt.append(t), rp.append(int(rg["peer_id"][i])), rr.append(float(rg["range_m"][i]))
    clocks = RunClocks(bs.rows)
    clock = clocks.maps[max(clocks.maps)] if clocks.maps else None
    orbit, form = _onboard_from_tables(tables)
    data = SpacecraftData(
        sc_id,
        path,
        "downlink",
        _fix_arrays(fixes),
        _range_arrays(rt, rp, rr),
        clock=clock,
        onboard_orbit=orbit,
        onboard_formation=form,
        onboard_source=f"downlink {path}",
        counts={"fixes": n_fix, "fixes_valid": len(fixes), "ranges": n_range, "ranges_valid": n_valid},
    )
    if n_untimed:
        data.notes.append(f"{n_untimed} downlinked ranges of a run without a clock map: not used")
    if n_implausible:
        data.notes.append(
            f"{n_implausible} downlinked fixes or ranges valid but implausible (the flight's radius, speed "
            "and range bounds): not used"
        )
    data.notes.extend(bs.problems[:5])
    return data


def read_spacecraft(path: str | Path, sc_id: int, accept_status=None) -> SpacecraftData:
    """Spacecraft *sc_id*'s inputs from *path* (module docstring); :class:`InputError` when
    it holds neither host files nor batch files."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such directory")
    if path.is_file():
        return _read_downlink(path, sc_id)
    if has_host_files(path):
        data = _read_host(path, sc_id, accept_status)
        sub = path / BATCH_DIR
        if batch_files_in(sub):
            _, tables = _batch_set(sub, sc_id)
            data.onboard_orbit, data.onboard_formation = _onboard_from_tables(tables)
            data.onboard_source = f"downlink {sub}"
        return data
    if batch_files_in(path) or batch_files_in(path / BATCH_DIR):
        return _read_downlink(path if batch_files_in(path) else path / BATCH_DIR, sc_id)
    held = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))[:6]
    what = ", ".join(held) if held else "nothing"
    hint = " (a replay or decode output: give it with --onboard)" if (path / "orbit.csv").is_file() else ""
    raise InputError(f"{path}: neither host files (sense.bin, range/) nor batch files; it holds {what}{hint}")


def read_onboard(path: str | Path, sc_id: int) -> tuple[dict | None, dict | None, str]:
    """On-board estimates of spacecraft *sc_id* from a ``ground replay`` / ``ground decode
    --out`` directory (orbit.csv, formation.csv) or a downlink: (orbit, formation, source)."""
    from ground.outputs.tables import read_csv
    from pygnc.timebase import gps_from_utc_unix

    path = Path(path)
    if path.is_dir() and ((path / "orbit.csv").is_file() or (path / "formation.csv").is_file()):
        out = []
        for name in ("orbit.csv", "formation.csv"):
            f = path / name
            if not f.is_file():
                out.append(None)
                continue
            t = read_csv(f)
            if not t or not next(iter(t.values())).size:
                out.append(None)
                continue
            if "propagated" in t:
                keep = t["propagated"] == 0
                t = {k: v[keep] for k, v in t.items()}
            if "t_gps_s" not in t:
                t["t_gps_s"] = np.asarray(gps_from_utc_unix(t["unix_time_s"]), dtype=float)
            out.append(t)
        return out[0], out[1], f"replay {path}"
    if path.is_dir() and not batch_files_in(path):
        raise InputError(f"{path}: no orbit.csv, formation.csv or batch files: no on-board estimates")
    _, tables = _batch_set(path, sc_id)
    orbit, form = _onboard_from_tables(tables)
    return orbit, form, f"downlink {path}"


def bulk_in_time(t_s: np.ndarray, max_gap_s: float) -> np.ndarray:
    """Which of the times *t_s* belong to the largest cluster of them (split where sorted times
    are more than *max_gap_s* apart; the earliest of equal clusters)."""
    t = np.asarray(t_s, dtype=float)
    keep = np.zeros(t.size, dtype=bool)
    if not t.size:
        return keep
    order = np.argsort(t, kind="stable")
    cuts = np.flatnonzero(np.diff(t[order]) > max_gap_s) + 1
    bounds = np.concatenate(([0], cuts, [t.size]))
    k = int(np.argmax(np.diff(bounds)))
    keep[order[bounds[k] : bounds[k + 1]]] = True
    return keep


def _leave_out_isolated(datas: list[SpacecraftData], notes: list[str]) -> None:
    """Leave out the fixes more than ``Config.max_propagation_s`` (the flight's bound on a
    corrupt stamp, 2 days) from the bulk of all spacecraft's fixes, and the ranges that far
    outside their span: one CRC-valid fix with a time years off would otherwise stretch the
    smoother's grid over those years."""
    from pygnc.config import Config
    from pygnc.timebase import utc_unix_from_gps

    max_gap_s = Config().max_propagation_s
    t_fix = np.concatenate([d.fixes["t_gps_s"] for d in datas])
    bulk = bulk_in_time(t_fix, max_gap_s)
    lo, hi = (t_fix[bulk].min() - max_gap_s, t_fix[bulk].max() + max_gap_s) if bulk.any() else (0.0, -1.0)
    at = 0
    for d in datas:
        for what, table in (("fixes", d.fixes), ("ranges", d.ranges)):
            n = table["t_gps_s"].size
            if what == "fixes":
                keep = bulk[at : at + n]
                at += n
            else:
                keep = (table["t_gps_s"] >= lo) & (table["t_gps_s"] <= hi)
            if keep.all():
                continue
            t_out = table["t_gps_s"][~keep]
            times = ", ".join(_utc_text(float(utc_unix_from_gps(t))) for t in t_out[:3])
            more = f" and {t_out.size - 3} more" if t_out.size > 3 else ""
            notes.append(
                f"0x{d.sc_id:02X}: {t_out.size} {what} more than {max_gap_s / 86400.0:g} days from the bulk of the "
                f"data (at {times}{more}): corrupt times, left out"
            )
            for k, v in table.items():
                table[k] = v[keep]


def _utc_text(unix_s: float) -> str:
    """UTC of *unix_s*, or the seconds themselves beyond the calendar."""
    from ground.outputs.tables import iso_utc

    return str(iso_utc([unix_s])[0]) or f"unix {unix_s:.6g} s"


def assemble(datas: list[SpacecraftData]):
    """The smoother's input from the spacecraft's data (in their order): (SmootherInput,
    notes).  Measurements isolated in time are left out (:func:`_leave_out_isolated`), and a
    spacecraft with no fix left is left out of the input (not of *datas*), as one without a
    usable fix; a range to a partner that is not in the input is left out (counted per
    observer and partner in the notes)."""
    from ground.smooth.core import SmootherInput

    notes: list[str] = []
    _leave_out_isolated(datas, notes)
    gone = {d.sc_id for d in datas if not d.fixes["t_gps_s"].size}
    for sid in sorted(gone):
        notes.append(f"0x{sid:02X}: no fix left: left out (its ranges and those to it with it)")
    datas = [d for d in datas if d.sc_id not in gone]
    index = {d.sc_id: k for k, d in enumerate(datas)}
    rt, ro, rp, rr = [], [], [], []
    for k, d in enumerate(datas):
        peers = d.ranges["peer_id"]
        known = np.array([int(p) in index and int(p) != d.sc_id for p in peers], dtype=bool)
        for p in sorted({int(p) for p in peers[~known]}):
            n = int(np.sum(peers == p))
            why = "which is left out" if p in gone else "which is not an input spacecraft"
            notes.append(f"0x{d.sc_id:02X}: {n} ranges to 0x{p:02X}, {why}: not used")
        rt.append(d.ranges["t_gps_s"][known])
        ro.append(np.full(int(known.sum()), k))
        rp.append(np.array([index[int(p)] for p in peers[known]], dtype=np.int64))
        rr.append(d.ranges["range_m"][known])
    ranges = {
        "t_gps_s": np.concatenate(rt) if rt else np.zeros(0),
        "observer": np.concatenate(ro).astype(np.int64) if ro else np.zeros(0, np.int64),
        "peer": np.concatenate(rp).astype(np.int64) if rp else np.zeros(0, np.int64),
        "range_m": np.concatenate(rr) if rr else np.zeros(0),
    }
    return SmootherInput(tuple(d.sc_id for d in datas), [d.fixes for d in datas], ranges), notes
