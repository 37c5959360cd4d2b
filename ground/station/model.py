"""What the ground-station page shows, as plain data: estimate tables -> JSON messages.

Pure functions (numpy arrays and dicts in, JSON-ready dicts out).  A source
(:mod:`ground.station.sources`) holds tables in the replay's CSV layout
(:data:`ground.outputs.tables.COLUMNS`, the same whether they came from a replay, from
downlinked batch files or from the live stream); this module turns them into the page's
*series* and *status*, and the server (:mod:`ground.station.server`) sends them as the
WebSocket messages declared in :data:`MESSAGES` (one JSON object per message; the tables of
docs/interface.md are made from these declarations).

Series are columnar: ``{"t_unix_s": [...], "t_sc_s": [...], "<name>_<unit>": [...]}``, one
list per column, all of one length (:data:`SERIES`).  ``t_unix_s`` is UTC (POSIX seconds)
where the source has a clock map, else the spacecraft clock (the ``hello`` message's
``time_scale`` says which).  Unknown values are ``null``.  **Gaps stay gaps**: where the
spacing of a series' rows exceeds :data:`GAP_FACTOR` times its median spacing, a row of
``null`` values (its time half-way) is put between them, so a plot breaks its line there.
A snapshot keeps at most :data:`MAX_POINTS` rows per series (evenly thinned; the rows on
both sides of every gap are always kept); the counts the page shows are the source's own
(``rows``), never the thinned ones.  Each estimate row carries its ``quality`` word (the
status file's, judged at its epoch); a partner's rows still ``acquiring`` carry no position
(the prior's placeholder is not an estimate).  Partners are keyed as written everywhere,
``0x4B``.
"""

from __future__ import annotations

import math

import numpy as np

#: Version of the page protocol (the ``hello`` message carries it).
PROTOCOL_VERSION = 1
#: A gap is a spacing above this many times the series' median spacing.
GAP_FACTOR = 3.0
#: Rows per series in a snapshot, at most (plus the rows kept beside gaps).
MAX_POINTS = 4000
#: Problems (and, separately, gaps) of a batch source listed in a status, at most.
MAX_PROBLEMS_LISTED = 50

_XYZ = ("x", "y", "z")

_QUALITY = "the estimate's quality at its epoch, the status file's word (null: not recorded)"
#: group -> [(column, unit / meaning)]: the single declaration of the page's series.
#: ``formation``, ``residuals`` and ``orbits`` (each orbit a range-only partner keeps, while it
#: keeps several: ``partner_orbit.csv``) are per partner: ``{"0x4B": series}``.
SERIES: dict[str, list[tuple[str, str]]] = {
    "orbit": [
        ("t_unix_s", "epoch, UTC POSIX s (spacecraft clock without a clock map)"),
        ("t_sc_s", "epoch, spacecraft clock s"),
        ("lat_deg", "geodetic latitude, WGS-84, deg"),
        ("lon_deg", "longitude, deg (-180..180)"),
        ("alt_km", "height above the WGS-84 ellipsoid, km"),
        ("sigma_r_m", "3-D 1σ position (root sum of the per-axis variances), m"),
        ("sigma_v_m_s", "3-D 1σ velocity, m/s"),
        ("n_fixes_used", "own GPS fixes used so far"),
        ("quality", _QUALITY),
    ],
    "attitude": [
        ("t_unix_s", "epoch, UTC POSIX s"),
        ("t_sc_s", "epoch, spacecraft clock s"),
        ("qw", "quaternion body -> GCRS, scalar first"),
        ("qx", ""),
        ("qy", ""),
        ("qz", ""),
        *[(f"rate_{a}_deg_s", "angular rate, body axes, deg/s" if a == "x" else "") for a in _XYZ],
        *[(f"bias_{a}_deg_s", "gyro bias, body axes, deg/s" if a == "x" else "") for a in _XYZ],
        *[(f"sigma_bias_{a}_deg_s", "1σ gyro bias, deg/s" if a == "x" else "") for a in _XYZ],
        *[(f"sigma_att_{a}_deg", "1σ attitude error about the body axis, deg" if a == "x" else "") for a in _XYZ],
        ("valid_attitude", "1 once the quaternion is estimated (0: rates only, no reference yet)"),
        ("quality", _QUALITY),
    ],
    "formation": [
        ("t_unix_s", "epoch, UTC POSIX s"),
        ("t_sc_s", "epoch, spacecraft clock s"),
        *[(f"d{a}_m", "peer minus own position, ECEF, m" if a == "x" else "") for a in _XYZ],
        ("dist_m", "distance to the peer |Δr|, m"),
        ("radial_m", "Δr along the own radial direction, m (RTN of the own orbit estimate; null without one)"),
        ("along_m", "Δr along-track (the transverse direction of the inertial velocity), m"),
        ("cross_m", "Δr cross-track (along the orbit normal), m"),
        ("sigma_los_m", "1σ along the line of sight, m (from the per-axis σ where the source has no line-of-sight σ)"),
        ("sigma_dr_m", "3-D 1σ relative position, m"),
        ("range_bias_m", "estimated range bias, m"),
        (
            "quality",
            _QUALITY + "; `acquiring` rows carry no position (null): the prior's placeholder is not an estimate",
        ),
        ("n_orbits", "orbits kept (range-only: each in `orbits`)"),
    ],
    "residuals": [
        ("t_unix_s", "range time, UTC POSIX s"),
        ("t_sc_s", "range time, spacecraft clock s"),
        ("residual_m", "measured range - |Δr| of the estimate at that time - estimated bias, m"),
    ],
    "orbits": [
        ("t_unix_s", "epoch, UTC POSIX s"),
        ("t_sc_s", "epoch, spacecraft clock s"),
        (
            "index",
            "which kept orbit: 0 the published filter's, then its alternatives (the last may be "
            "the first's mirror image in the own orbit plane, kept while the prior cannot exclude it)",
        ),
        ("weight", "its weight (posterior probability)"),
        ("dist_m", "distance to the partner in this orbit, m"),
        ("radial_m", "Δr of this orbit along the own radial direction, m"),
        ("along_m", "… along-track, m"),
        ("cross_m", "… cross-track, m"),
        ("sigma_dr_m", "3-D 1σ relative position of this orbit, m"),
    ],
}
PER_PEER = ("formation", "residuals", "orbits")

#: (type, direction, fields, meaning): the single declaration of the page's WebSocket messages.
MESSAGES: tuple[tuple[str, str, str, str], ...] = (
    (
        "hello",
        "server -> page",
        "`version`, `source` {`kind`, `name`, `live`}, `time_scale` "
        "(`utc` or `spacecraft`), `files` (names under /files/)",
        "first message on every connection",
    ),
    (
        "snapshot",
        "server -> page",
        "`series` {`orbit`, `attitude`, `formation` {partner: ...}, "
        "`residuals` {partner: ...}, `orbits` {partner: ...}}, `rows` (rows the source holds per group, "
        "and per partner in `by_peer` {group: {partner: rows}}: the counts to show), `time_scale`",
        "everything the source holds, thinned to MAX_POINTS rows per series; replaces what the page shows",
    ),
    (
        "append",
        "server -> page",
        "`series` as in snapshot, only the new rows; `rows` as in snapshot",
        "new estimates of a live source since the last message (every 0.2 s at most)",
    ),
    (
        "status",
        "server -> page",
        "`status` (see :func:`status_view`): `flags`, `quality`, `tasks`, "
        "`counters`, `notes` (`peer_id`; `cut`: the text was cut on board and ends with …), "
        "`problems` and `gaps` (text lines), `problems_more`, `gaps_more`",
        "health, validity, counters, notes, a batch source's problems and gaps; sent when it changes",
    ),
    (
        "source",
        "server -> page",
        "`state` (`open`, `waiting`, `closed`), `detail`",
        "the source's own state: a live port opened, lost (unplugged) and retried, or closed for good (a "
        "pseudo-terminal gone, another device at its path)",
    ),
    (
        "files",
        "server -> page",
        "`files` (names under /files/)",
        "the source directory's files, when they changed since `hello` (checked every 2 s)",
    ),
)


# --------------------------------------------------------------------------- gaps and thinning
def gap_after(t: np.ndarray, factor: float = GAP_FACTOR) -> np.ndarray:
    """Indices i whose next row is more than *factor* × the median spacing later."""
    t = np.asarray(t, dtype=float)
    if t.size < 3:
        return np.zeros(0, dtype=np.int64)
    dt = np.diff(t)
    ok = np.isfinite(dt) & (dt > 0)
    if not ok.any():
        return np.zeros(0, dtype=np.int64)
    med = float(np.median(dt[ok]))
    return np.flatnonzero(np.isfinite(dt) & (dt > factor * med))


def thin(n: int, max_points: int, keep: np.ndarray | None = None) -> np.ndarray:
    """Sorted indices of at most ~*max_points* of *n* rows, evenly spread, always with the
    first, the last and every index in *keep*."""
    if n <= max_points:
        return np.arange(n)
    idx = np.unique(np.linspace(0, n - 1, max(int(max_points), 2)).round().astype(np.int64))
    if keep is not None and len(keep):
        idx = np.union1d(idx, np.asarray(keep, dtype=np.int64))
    return idx


def _json_list(a: np.ndarray) -> list:
    """A column as a JSON list: NaN and inf -> None, integers stay integers, text stays text
    (empty -> None)."""
    a = np.asarray(a)
    if a.dtype.kind in "UOS":
        return [str(v) or None if v is not None else None for v in a.tolist()]
    if a.dtype.kind in "iub":
        return a.astype(np.int64).tolist()
    a = a.astype(float)
    out = a.tolist()
    bad = np.flatnonzero(~np.isfinite(a))
    for i in bad.tolist():
        out[i] = None
    return out


def make_series(columns: dict[str, np.ndarray], max_points: int | None = MAX_POINTS) -> dict[str, list]:
    """Columns (equal length, sorted by ``t_unix_s``) -> a JSON series with gap rows,
    thinned to *max_points* (None: all rows)."""
    t = np.asarray(columns["t_unix_s"], dtype=float)
    gaps = gap_after(t)
    idx = (
        np.arange(t.size)
        if max_points is None
        else thin(t.size, max_points, np.concatenate([gaps, gaps + 1]) if gaps.size else None)
    )
    pos = {int(g): k for k, g in enumerate(np.searchsorted(idx, gaps))} if gaps.size else {}
    out: dict[str, list] = {}
    for name, col in columns.items():
        vals = _json_list(np.asarray(col)[idx])
        if pos:
            merged: list = []
            for k, v in enumerate(vals):
                merged.append(v)
                if k in pos and k + 1 < len(vals):
                    merged.append(None if name != "t_unix_s" else 0.5 * (vals[k] + vals[k + 1]))
            vals = merged
        out[name] = vals
    return out


def empty_series(group: str) -> dict[str, list]:
    return {name: [] for name, _ in SERIES[group]}


# --------------------------------------------------------------------------- tables -> columns
def _stack(table: dict, fmt: str) -> np.ndarray:
    return np.column_stack([np.asarray(table[fmt.format(a)], dtype=float) for a in _XYZ])


def _order(table: dict) -> np.ndarray:
    return np.argsort(np.asarray(table["unix_time_s"], dtype=float), kind="stable")


def geodetic_deg(r_ecef_m: np.ndarray) -> np.ndarray:
    """(n, 3) ECEF positions, m -> (n, 3) longitude deg, geodetic latitude deg, height m (WGS-84)."""
    import brahe

    r = np.asarray(r_ecef_m, dtype=float).reshape(-1, 3)
    out = np.full(r.shape, np.nan)
    ok = np.isfinite(r).all(axis=1) & (np.linalg.norm(r, axis=1) > 1.0)
    if ok.any():
        out[ok] = np.asarray(brahe.position_ecef_to_geodetic(r[ok], brahe.AngleFormat.DEGREES), dtype=float).reshape(
            -1, 3
        )
    return out


def orbit_columns(table: dict) -> dict[str, np.ndarray]:
    """An orbit table (replay layout) -> the orbit series' columns, sorted by time."""
    o = _order(table)
    r = _stack(table, "{}_ecef_m")[o]
    geo = geodetic_deg(r)
    sr, sv = _stack(table, "sigma_{}_ecef_m")[o], _stack(table, "sigma_v{}_ecef_m_s")[o]
    return {
        "t_unix_s": np.asarray(table["unix_time_s"], dtype=float)[o],
        "t_sc_s": np.asarray(table["t_sc_s"], dtype=float)[o],
        "lat_deg": geo[:, 1],
        "lon_deg": (geo[:, 0] + 180.0) % 360.0 - 180.0,
        "alt_km": geo[:, 2] / 1e3,
        "sigma_r_m": np.sqrt((sr**2).sum(axis=1)),
        "sigma_v_m_s": np.sqrt((sv**2).sum(axis=1)),
        "n_fixes_used": np.asarray(table["n_fixes_used"], dtype=float)[o],
        "quality": _words(table, o),
    }


def _words(table: dict, o: np.ndarray) -> np.ndarray:
    """The ``quality`` column in order *o* (empty where the table has none)."""
    if "quality" not in table:
        return np.full(o.size, "", dtype=object)
    return np.asarray([str(v) for v in np.asarray(table["quality"]).tolist()], dtype=object)[o]


def attitude_columns(table: dict) -> dict[str, np.ndarray]:
    o = _order(table)
    deg = math.degrees(1.0)
    out = {
        "t_unix_s": np.asarray(table["unix_time_s"], dtype=float)[o],
        "t_sc_s": np.asarray(table["t_sc_s"], dtype=float)[o],
    }
    for c in ("qw", "qx", "qy", "qz"):
        out[c] = np.asarray(table[c], dtype=float)[o]
    for a in _XYZ:
        out[f"rate_{a}_deg_s"] = np.asarray(table[f"rate_{a}_body_rad_s"], dtype=float)[o] * deg
    for a in _XYZ:
        out[f"bias_{a}_deg_s"] = np.asarray(table[f"gyro_bias_{a}_rad_s"], dtype=float)[o] * deg
    for a in _XYZ:
        out[f"sigma_bias_{a}_deg_s"] = np.asarray(table[f"sigma_gyro_bias_{a}_rad_s"], dtype=float)[o] * deg
    for a in _XYZ:
        out[f"sigma_att_{a}_deg"] = np.asarray(table[f"sigma_att_{a}_rad"], dtype=float)[o] * deg
    out["valid_attitude"] = np.asarray(table["valid_attitude"], dtype=float)[o].astype(np.int64)
    out["quality"] = _words(table, o)
    return out


def rtn_components(t_sc_s: np.ndarray, dr_ecef_m: np.ndarray, orbit: dict | None) -> np.ndarray:
    """(n, 3) radial, along-track, cross-track components of *dr_ecef_m* in the RTN frame of
    the own orbit estimate (an orbit table, interpolated linearly to *t_sc_s*; the inertial
    velocity is ``v_ecef + ω × r``; the axes as :func:`pygnc.estimation.formation_filter.rtn_matrix`,
    vectorised); NaN outside the orbit's span or without one."""
    from pygnc.frames import OMEGA_EARTH_RAD_S

    t_sc_s = np.asarray(t_sc_s, dtype=float)
    out = np.full((t_sc_s.size, 3), np.nan)
    if orbit is None or np.asarray(orbit["t_sc_s"]).size < 1:
        return out
    to = np.asarray(orbit["t_sc_s"], dtype=float)
    o = np.argsort(to, kind="stable")
    to = to[o]
    r_o, v_o = _stack(orbit, "{}_ecef_m")[o], _stack(orbit, "v{}_ecef_m_s")[o]
    inside = (t_sc_s >= to[0]) & (t_sc_s <= to[-1])
    if not inside.any():
        return out
    t = t_sc_s[inside]
    r = np.column_stack([np.interp(t, to, r_o[:, k]) for k in range(3)])
    v = np.column_stack([np.interp(t, to, v_o[:, k]) for k in range(3)])
    v = v + OMEGA_EARTH_RAD_S * np.column_stack([-r[:, 1], r[:, 0], np.zeros(len(t))])
    with np.errstate(invalid="ignore", divide="ignore"):
        rad = r / np.linalg.norm(r, axis=1)[:, None]
        h = np.cross(r, v)
        nrm = h / np.linalg.norm(h, axis=1)[:, None]
    along = np.cross(nrm, rad)
    d = np.asarray(dr_ecef_m, dtype=float)[inside]
    out[inside] = np.column_stack(
        [np.einsum("ij,ij->i", rad, d), np.einsum("ij,ij->i", along, d), np.einsum("ij,ij->i", nrm, d)]
    )
    return out


def formation_columns(table: dict, orbit: dict | None = None) -> dict[str, dict[str, np.ndarray]]:
    """A formation table -> {partner (``0x4B``): the formation series' columns}; *orbit* (the
    own orbit table) gives the RTN components.  Rows still ``acquiring`` keep their time and
    quality, not their position: the prior's placeholder is not drawn as an estimate."""
    from ground.outputs.tables import PLACEHOLDER_QUALITY
    from pygnc.partners import partner_name

    out = {}
    pid = np.asarray(table["peer_id"], dtype=float)
    for p in np.unique(pid[np.isfinite(pid)]).astype(int).tolist():
        sel = np.flatnonzero(pid == p)
        sub = {k: np.asarray(v)[sel] for k, v in table.items()}
        o = _order(sub)
        words = _words(sub, o)
        placeholder = words == PLACEHOLDER_QUALITY
        dr = _stack(sub, "d{}_ecef_m")[o]
        sig = np.column_stack([np.asarray(sub[f"sigma_d{a}_m"], dtype=float) for a in _XYZ])[o]
        dr[placeholder] = np.nan
        sig[placeholder] = np.nan
        dist = np.linalg.norm(dr, axis=1)
        if "sigma_los_m" in sub:
            los = np.asarray(sub["sigma_los_m"], dtype=float)[o]
        else:  # per-axis σ projected on the line of sight (correlations not known here)
            with np.errstate(invalid="ignore", divide="ignore"):
                u = dr / dist[:, None]
            los = np.sqrt(((u * sig) ** 2).sum(axis=1))
        los = np.where(placeholder, np.nan, los)
        t_sc = np.asarray(sub["t_sc_s"], dtype=float)[o]
        rtn = rtn_components(t_sc, dr, orbit)
        n_orbits = np.asarray(sub["n_orbits"], dtype=float)[o] if "n_orbits" in sub else np.full(o.size, np.nan)
        out[partner_name(p)] = {
            "t_unix_s": np.asarray(sub["unix_time_s"], dtype=float)[o],
            "t_sc_s": t_sc,
            "dx_m": dr[:, 0],
            "dy_m": dr[:, 1],
            "dz_m": dr[:, 2],
            "dist_m": dist,
            "radial_m": rtn[:, 0],
            "along_m": rtn[:, 1],
            "cross_m": rtn[:, 2],
            "sigma_los_m": los,
            "sigma_dr_m": np.sqrt((sig**2).sum(axis=1)),
            "range_bias_m": np.where(placeholder, np.nan, np.asarray(sub["range_bias_m"], dtype=float)[o]),
            "quality": words,
            "n_orbits": n_orbits,
        }
    return out


def orbits_columns(table: dict, orbit: dict | None = None) -> dict[str, dict[str, np.ndarray]]:
    """A ``partner_orbit`` table (each kept orbit of a range-only partner) -> {partner: the
    ``orbits`` series' columns}, one row per kept orbit and epoch; *orbit* gives the RTN
    components."""
    from pygnc.partners import partner_name

    out = {}
    pid = np.asarray(table["peer_id"], dtype=float)
    for p in np.unique(pid[np.isfinite(pid)]).astype(int).tolist():
        sel = np.flatnonzero(pid == p)
        sub = {k: np.asarray(v)[sel] for k, v in table.items()}
        o = np.lexsort((np.asarray(sub["index"], dtype=float), np.asarray(sub["unix_time_s"], dtype=float)))
        dr = _stack(sub, "d{}_ecef_m")[o]
        sig = np.column_stack([np.asarray(sub[f"sigma_d{a}_m"], dtype=float) for a in _XYZ])[o]
        t_sc = np.asarray(sub["t_sc_s"], dtype=float)[o]
        rtn = rtn_components(t_sc, dr, orbit)
        out[partner_name(p)] = {
            "t_unix_s": np.asarray(sub["unix_time_s"], dtype=float)[o],
            "t_sc_s": t_sc,
            "index": np.asarray(sub["index"], dtype=float)[o].astype(np.int64),
            "weight": np.asarray(sub["weight"], dtype=float)[o],
            "dist_m": np.linalg.norm(dr, axis=1),
            "radial_m": rtn[:, 0],
            "along_m": rtn[:, 1],
            "cross_m": rtn[:, 2],
            "sigma_dr_m": np.sqrt((sig**2).sum(axis=1)),
        }
    return out


def residual_columns(res: dict, sc_to_unix) -> dict[str, dict[str, np.ndarray]]:
    """Range residuals (:func:`ground.outputs.residuals.range_residuals`: t_sc_s, peer_id,
    residual_m; or the ``range_residuals.csv`` table, whose ``unix_time_s`` is used as it is)
    -> {peer id: columns}; *sc_to_unix* maps spacecraft to UTC seconds otherwise.  Residuals
    against a range-only partner's prior keep their time, not their value (not drawn)."""
    from ground.outputs.residuals import estimated
    from pygnc.partners import partner_name

    out = {}
    value = np.where(estimated(res), np.asarray(res["residual_m"], dtype=float), np.nan)
    t_sc = np.asarray(res["t_sc_s"], dtype=float)
    unix = np.asarray(res["unix_time_s"], dtype=float) if "unix_time_s" in res else None
    pid = np.asarray(res["peer_id"]).astype(int)
    for p in np.unique(pid).tolist():
        sel = np.flatnonzero(pid == p)
        o = sel[np.argsort(t_sc[sel], kind="stable")]
        out[partner_name(p)] = {
            "t_unix_s": unix[o] if unix is not None else np.asarray(sc_to_unix(t_sc[o]), dtype=float),
            "t_sc_s": t_sc[o],
            "residual_m": value[o],
        }
    return out


def series_of(
    tables: dict, residuals: dict | None, sc_to_unix, max_points: int | None = MAX_POINTS, own_orbit: dict | None = None
) -> dict:
    """Estimate tables (``orbit``, ``attitude``, ``formation``; replay layout) and range
    residuals -> the ``series`` of a snapshot or append message.  *own_orbit*: the orbit
    table for the formation's RTN components when ``tables["orbit"]`` does not span them."""
    out: dict = {
        "orbit": empty_series("orbit"),
        "attitude": empty_series("attitude"),
        "formation": {},
        "residuals": {},
        "orbits": {},
    }
    if tables.get("orbit") is not None and np.asarray(tables["orbit"]["t_sc_s"]).size:
        out["orbit"] = make_series(orbit_columns(tables["orbit"]), max_points)
    if tables.get("attitude") is not None and np.asarray(tables["attitude"]["t_sc_s"]).size:
        out["attitude"] = make_series(attitude_columns(tables["attitude"]), max_points)
    if tables.get("formation") is not None and np.asarray(tables["formation"]["t_sc_s"]).size:
        own = own_orbit if own_orbit is not None else tables.get("orbit")
        out["formation"] = {
            p: make_series(c, max_points) for p, c in formation_columns(tables["formation"], own).items()
        }
    kept = tables.get("partner_orbit")
    if kept is not None and np.asarray(kept["t_sc_s"]).size:
        own = own_orbit if own_orbit is not None else tables.get("orbit")
        out["orbits"] = {p: make_series(c, max_points) for p, c in orbits_columns(kept, own).items()}
    if residuals is not None and np.asarray(residuals["t_sc_s"]).size:
        out["residuals"] = {p: make_series(c, max_points) for p, c in residual_columns(residuals, sc_to_unix).items()}
    return out


def _per_peer(table: dict | None) -> dict[str, int]:
    from pygnc.partners import partner_name

    if table is None or not np.asarray(table["t_sc_s"]).size:
        return {}
    ids, n = np.unique(np.asarray(table["peer_id"]).astype(int), return_counts=True)
    return {partner_name(p): int(c) for p, c in zip(ids.tolist(), n.tolist())}


def row_counts(tables: dict, residuals: dict | None) -> dict:
    """Rows the source holds, per group and (``by_peer``) per partner: the counts the page
    shows, whatever a snapshot's thinning left."""
    n: dict = {
        k: int(np.asarray(tables[k]["t_sc_s"]).size) if tables.get(k) is not None else 0
        for k in ("orbit", "attitude", "formation")
    }
    n["residuals"] = int(np.asarray(residuals["t_sc_s"]).size) if residuals is not None else 0
    kept = tables.get("partner_orbit")
    n["orbits"] = int(np.asarray(kept["t_sc_s"]).size) if kept is not None else 0
    n["by_peer"] = {
        "formation": _per_peer(tables.get("formation")),
        "residuals": _per_peer(residuals),
        "orbits": _per_peer(kept),
    }
    return n


# --------------------------------------------------------------------------- status
def _finite(x):
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def note_received(note: dict) -> dict:
    """A note decoded from a batch record or the stream, marked ``cut`` when the record says
    its text was cut on board (flag bit 0: the text ends with the cut mark; a first-layout
    record's is inferred: :mod:`pygnc.formats.batch`), so the page can say so."""
    return {**note, "cut": bool(int(note.get("flags", 0) or 0) & 1)}


def gap_text(gap: dict, sc_to_unix=None) -> str:
    """A gap of :func:`ground.decode.batch_files.read_batches` (``kind``, ``key``, ``run``,
    ``from_t_sc_s``, ``gap_s``, ``median_spacing_s``) in words, with its UTC start when
    *sc_to_unix* maps the spacecraft clock."""
    key = "" if gap.get("key") is None else f" (key {gap['key']})"
    when = f"t_sc {gap['from_t_sc_s']:.0f}"
    if sc_to_unix is not None:
        t = float(np.asarray(sc_to_unix(np.array([gap["from_t_sc_s"]], dtype=float)), dtype=float)[0])
        if math.isfinite(t):
            from ground.outputs.tables import iso_utc

            when += f", {str(iso_utc(np.array([t]))[0])[:19]}Z"
    return (
        f"gap: {gap['kind']}{key} run {gap['run']}: {gap['gap_s']:.0f} s without records from {when} "
        f"(median spacing {gap['median_spacing_s']:.0f} s)"
    )


def status_view(
    *,
    status: dict | None = None,
    counters: dict | None = None,
    health: dict | None = None,
    notes: list | None = None,
    extra: dict | None = None,
    problems: list[str] | None = None,
    gaps: list[str] | None = None,
) -> dict:
    """One status for the page from whatever the source has.

    *status*: a decoded ``pygnc_status.bin`` (:func:`pygnc.formats.status.decode_status`);
    *counters*: the stream's CNT/BYE counters; *health*: a decoded ``health`` batch record's
    values; *notes*: estimator notes (``estimator``, ``code``, ``text``, optionally ``cut``);
    *extra*: source counters (decode statistics, row counts); *problems*, *gaps*: a batch
    source's findings as text lines.  Returns ``t_sc_s``, ``utc_minus_sc_s``, ``flags``
    (names), ``quality`` (orbit, attitude, peers), ``tasks`` (name, state, restarts),
    ``counters``, ``notes``, ``problems`` and ``gaps`` (the first :data:`MAX_PROBLEMS_LISTED`
    of each) with ``problems_more`` and ``gaps_more`` (how many were left out).
    """
    from pygnc.formats.status import ESTIMATE_QUALITY, MAX_PEERS, MAX_TASKS, TASK_STATES
    from pygnc.partners import partner_name
    from pygnc.tasks.table import TASK_NAMES_BY_ID

    def q(i):
        return ESTIMATE_QUALITY[i] if isinstance(i, int) and 0 <= i < len(ESTIMATE_QUALITY) else f"code {i}"

    def state(i):
        return TASK_STATES[i] if isinstance(i, int) and 0 <= i < len(TASK_STATES) else f"code {i}"

    problems, gaps = [str(p) for p in problems or []], [str(g) for g in gaps or []]
    out: dict = {
        "t_sc_s": None,
        "utc_minus_sc_s": None,
        "flags": [],
        "quality": {},
        "tasks": [],
        "counters": {},
        "notes": list(notes or [])[-20:],
        "problems": problems[:MAX_PROBLEMS_LISTED],
        "problems_more": max(0, len(problems) - MAX_PROBLEMS_LISTED),
        "gaps": gaps[:MAX_PROBLEMS_LISTED],
        "gaps_more": max(0, len(gaps) - MAX_PROBLEMS_LISTED),
    }
    if status is not None:
        out["t_sc_s"] = _finite(status.get("t_sc_s"))
        out["utc_minus_sc_s"] = _finite(status.get("clock_utc_minus_sc_s"))
        out["flags"] = list(status.get("flag_names", []))
        out["quality"] = {"orbit": q(status.get("orbit_quality")), "attitude": q(status.get("att_quality"))}
        for k in range(MAX_PEERS):
            pid = status.get(f"peer{k}_id", 0)
            if pid:
                out["quality"][f"partner {partner_name(pid)}"] = q(status.get(f"peer{k}_quality"))
        for k in range(MAX_TASKS):
            tid = status.get(f"task{k}_id", 0)
            if tid:
                out["tasks"].append(
                    {
                        "name": TASK_NAMES_BY_ID.get(tid, f"task {tid}"),
                        "state": state(status.get(f"task{k}_state")),
                        "restarts": int(status.get(f"task{k}_restarts", 0)),
                    }
                )
        for name in (
            "uptime_s",
            "sense_records",
            "sense_records_skipped",
            "fixes_total",
            "fixes_valid",
            "ranges",
            "range_records_skipped",
            "bus_dropped",
            "orbit_fixes_used",
            "orbit_fixes_rejected",
            "home_free_kib",
            "home_free_inodes",
            "status_write_failures",
            "log_frames_not_written",
            "batch_records_held",
        ):
            if name in status:
                v = status[name]
                out["counters"][name] = _finite(v) if isinstance(v, float) else v
    elif health is not None:
        out["t_sc_s"] = _finite(health.get("t_sc_s"))
        if int(health.get("flags", 0)) & 1:
            out["flags"].append("stopping")
        n = int(health.get("n_tasks", 0))
        for tid, st, rs in list(
            zip(health.get("task_id", ()), health.get("task_state", ()), health.get("task_restarts", ()))
        )[:n]:
            if tid:
                out["tasks"].append(
                    {"name": TASK_NAMES_BY_ID.get(tid, f"task {tid}"), "state": state(st), "restarts": int(rs)}
                )
    if counters:
        out["counters"].update({f"stream_{k}": v for k, v in counters.items()})
    if extra:
        out["counters"].update(extra)
    return out
