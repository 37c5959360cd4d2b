"""A spacecraft's own orbit estimates from its downlink, checked: what ``ground uplink
--downlink`` reads.

Input: a directory of that spacecraft's batch files (``batch_NNNNNNNN.bin``, read with
:func:`ground.decode.batch_files.read_batches`; times through each run's clock map), or the output
directory of ``python -m ground decode DIR --out OUT`` (``orbit.csv`` and ``files.csv``).
Every file must carry the expected spacecraft id in its header (``files.csv``:
``spacecraft_id``); estimates propagated past the data (flag bit 0) are left out, and so
are estimates of a run without a clock map (no GPS time: counted).  A record with a
non-finite position, velocity or sigma is refused, not skipped: the spacecraft never
writes one, so the files are not what they seem.  :class:`RecordError` names the file.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["OrbitRecords", "RecordError", "read_orbit_records"]


class RecordError(ValueError):
    """Downlinked orbit records that cannot be used; the message says which and why."""


@dataclass
class OrbitRecords:
    """Orbit estimates in time order: GPS time (n,), ECEF position and velocity (n, 3), their
    1-sigma per ECEF axis (n, 3), fixes used so far (n,), run and batch sequence (n,)."""

    source: str
    t_gps_s: np.ndarray
    r_ecef_m: np.ndarray
    v_ecef_m_s: np.ndarray
    sigma_r_m: np.ndarray
    sigma_v_m_s: np.ndarray
    n_used: np.ndarray
    run: np.ndarray
    sequence: np.ndarray
    n_files: int
    skipped_untimed: int
    skipped_propagated: int
    #: What the batch reader noticed (missing files, corrupt records, ...): reported, not fatal.
    problems: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return int(self.t_gps_s.size)


def _where(run, seq) -> str:
    return f"run {int(run)}, batch file {int(seq):08d}" if int(seq) >= 0 else f"run {int(run)}"


def _finish(source: str, cols: dict, n_files: int, untimed: int, propagated: int, problems=()) -> OrbitRecords:
    vec = ("r_ecef_m", "v_ecef_m_s", "sigma_r_m", "sigma_v_m_s")
    for i in range(cols["t_sc_s"].size):
        bad = [k for k in vec if not np.all(np.isfinite(cols[k][i]))]
        if bad:
            raise RecordError(
                f"{source}: the orbit estimate of spacecraft time {cols['t_sc_s'][i]:.0f} "
                f"({_where(cols['run'][i], cols['sequence'][i])}) has non-finite {', '.join(bad)}: "
                "the spacecraft never writes one - look at these files before uplinking from them"
            )
    order = np.argsort(cols["t_gps_s"], kind="stable")
    return OrbitRecords(
        source,
        *(cols[k][order] for k in ("t_gps_s", *vec, "n_used", "run", "sequence")),
        n_files=n_files,
        skipped_untimed=untimed,
        skipped_propagated=propagated,
        problems=tuple(problems),
    )


def _select(source: str, t_sc, t_gps, propagated, arrays: dict, n_files: int, problems=()) -> OrbitRecords:
    keep = ~propagated & np.isfinite(t_gps)
    untimed = int(np.sum(~propagated & ~np.isfinite(t_gps)))
    cols = {k: np.asarray(v)[keep] for k, v in arrays.items()}
    cols["t_sc_s"], cols["t_gps_s"] = np.asarray(t_sc)[keep], np.asarray(t_gps)[keep]
    return _finish(source, cols, n_files, untimed, int(np.sum(propagated)), problems)


def _from_batches(path: Path, spacecraft_id: int) -> OrbitRecords:
    from ground.decode import batch_files as gb

    bs = gb.read_batches(path)
    files = [f for f in bs.files if f.duplicate_of is None]
    if not files:
        raise RecordError(f"{path}: no batch files (batch_NNNNNNNN.bin) and no decoded orbit.csv")
    for f in files:
        if f.header is None:
            raise RecordError(
                f"{f.path}: no valid header, so no spacecraft id to check: remove the file or "
                "decode what is left of it separately"
            )
        if f.spacecraft_id != spacecraft_id:
            raise RecordError(
                f"{f.path}: written by spacecraft id 0x{f.spacecraft_id:02X}"
                + (" (not set on board)" if f.spacecraft_id == 0 else "")
                + f", not 0x{spacecraft_id:02X}"
            )
    t = gb.build_tables(bs)["orbit"]
    if not t["t_sc_s"].size:
        raise RecordError(f"{path}: {len(files)} batch files of 0x{spacecraft_id:02X} and no orbit estimate in them")
    arrays = _table_arrays(t)
    return _select(
        str(path), t["t_sc_s"], t["t_gps_s"], np.asarray(t["propagated"]).astype(bool), arrays, len(files), bs.problems
    )


def _table_arrays(t: dict) -> dict:
    def stack(fmt):
        return np.column_stack([np.asarray(t[fmt.format(a)], dtype=float) for a in "xyz"])

    return {
        "r_ecef_m": stack("{}_ecef_m"),
        "v_ecef_m_s": stack("v{}_ecef_m_s"),
        "sigma_r_m": stack("sigma_{}_ecef_m"),
        "sigma_v_m_s": stack("sigma_v{}_ecef_m_s"),
        "n_used": np.asarray(t["n_fixes_used"], dtype=float),
        "run": np.asarray(t["run"], dtype=float),
        "sequence": np.asarray(t["sequence"], dtype=float),
    }


def _read_csv(path: Path) -> dict:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    out = {}
    for k in rows[0]:
        vals = [r[k] for r in rows]
        try:
            out[k] = np.array([float(v) if v not in ("", None) else math.nan for v in vals])
        except ValueError:
            out[k] = np.array(vals, dtype=object)
    return out


def _from_decoded(path: Path, spacecraft_id: int) -> OrbitRecords:
    files_csv = path / "files.csv"
    if not files_csv.is_file():
        raise RecordError(
            f"{path}: orbit.csv without files.csv: not a 'ground decode --out' directory "
            "(the spacecraft id cannot be checked)"
        )
    files = _read_csv(files_csv)
    ids = files.get("spacecraft_id", np.zeros(0))
    names = files.get("file", np.zeros(0))
    dup = files.get("duplicate_of", np.array([""] * ids.size, dtype=object))
    for name, sc, d in zip(names, ids, dup):
        if isinstance(d, str) and d:
            continue
        if not int(sc) == spacecraft_id:
            raise RecordError(
                f"{files_csv}: {name} was written by spacecraft id "
                + ("(no valid header)" if int(sc) < 0 else f"0x{int(sc):02X}")
                + f", not 0x{spacecraft_id:02X}"
            )
    t = _read_csv(path / "orbit.csv")
    if not t or not t["t_sc_s"].size:
        raise RecordError(f"{path / 'orbit.csv'}: no orbit estimate")
    need = ["t_sc_s", "t_gps_s", "propagated", "run", "sequence", "n_fixes_used"] + [
        f"{p}{a}{s}"
        for p, s in (("", "_ecef_m"), ("v", "_ecef_m_s"), ("sigma_", "_ecef_m"), ("sigma_v", "_ecef_m_s"))
        for a in "xyz"
    ]
    missing = [c for c in need if c not in t]
    if missing:
        raise RecordError(f"{path / 'orbit.csv'}: columns {missing} missing (not written by 'ground decode')")
    return _select(str(path), t["t_sc_s"], t["t_gps_s"], t["propagated"] != 0, _table_arrays(t), int(ids.size))


def read_orbit_records(path: str | Path, spacecraft_id: int) -> OrbitRecords:
    """The orbit estimates of spacecraft *spacecraft_id* in *path* (module docstring);
    :class:`RecordError` for anything that makes them unusable."""
    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: no such file or directory")
    if path.is_dir() and (path / "orbit.csv").is_file():
        return _from_decoded(path, spacecraft_id)
    return _from_batches(path, spacecraft_id)
