"""Estimate messages -> column tables -> CSV.

A *table* is a ``dict`` of equal-length numpy arrays, in column order; the CSV writes
them in that order with a header row.  The column names carry their units (see
docs/interface.md and :data:`COLUMNS`).  Only estimates with ``propagated == False`` (the
ones made at a sensor sample time) become rows; the propagated ones the flight task sends
after the batch are not data.

``unix_time_s`` is UTC (POSIX seconds), ``utc`` the same instant in ISO 8601.  Each
estimate row carries its ``quality`` word, the status file's (:mod:`pygnc.validity`: the
estimators judge every estimate at its epoch).  A partner is written ``0x4B``
(:mod:`pygnc.partners`) in the CSV; in a table ``peer_id`` is the radio id (int).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from pygnc.atomic import write_atomic

_QUALITY = (
    "the estimate's quality at its epoch, in the status file's words and by its rules "
    "([operations.md](operations.md#reading-the-status-file)); empty where the downlink did not record it"
)
_PEER = "the partner's radio id, written `0x4B`"
#: Columns written as text (the others are numbers; the radio ids, ID_COLUMNS, are written ``0x4B``).
TEXT_COLUMNS = ("utc", "quality")
#: The quality of a formation row that holds a range-only partner's prior while its
#: acquisition window fills, or a start on one pair of fixes not yet confirmed: a
#: placeholder, not an estimate (never drawn or counted as one).
PLACEHOLDER_QUALITY = "acquiring"


def placeholder_rows(table: dict) -> np.ndarray:
    """Which rows of an estimate *table* are placeholders (:data:`PLACEHOLDER_QUALITY`); none
    without a quality column."""
    n = len(next(iter(table.values()), ()))
    quality = table.get("quality")
    if quality is None or len(quality) != n:
        return np.zeros(n, bool)
    return np.asarray(quality) == PLACEHOLDER_QUALITY


#: kind -> [(column, unit / meaning)].  The single declaration of the CSV layouts.
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "orbit": [
        ("unix_time_s", "epoch, UTC POSIX seconds"),
        ("utc", "the same epoch, ISO 8601 UTC"),
        ("t_gps_s", "the same epoch, GPS seconds"),
        ("t_sc_s", "the same epoch, spacecraft clock seconds"),
        ("x_ecef_m", "position, ITRS/ECEF, m"),
        ("y_ecef_m", ""),
        ("z_ecef_m", ""),
        ("vx_ecef_m_s", "velocity relative to ECEF, ECEF axes, m/s"),
        ("vy_ecef_m_s", ""),
        ("vz_ecef_m_s", ""),
        ("sigma_x_ecef_m", "1σ position per ECEF axis, m"),
        ("sigma_y_ecef_m", ""),
        ("sigma_z_ecef_m", ""),
        ("sigma_vx_ecef_m_s", "1σ velocity per ECEF axis, m/s"),
        ("sigma_vy_ecef_m_s", ""),
        ("sigma_vz_ecef_m_s", ""),
        ("x_gcrs_m", "position, GCRS, m (UT1 taken = UTC, see pygnc.frames)"),
        ("y_gcrs_m", ""),
        ("z_gcrs_m", ""),
        ("vx_gcrs_m_s", "velocity, GCRS, m/s"),
        ("vy_gcrs_m_s", ""),
        ("vz_gcrs_m_s", ""),
        ("n_fixes_used", "own GPS fixes used so far (smoothed: in the whole batch)"),
        ("n_fixes_rejected", "fixes rejected by the innovation gate so far"),
        ("n_fixes_invalid", "fixes flagged invalid so far"),
        ("quality", _QUALITY + ": `ok` (its 3-D 1σ under `orbit_valid_max_sigma_m`) or `uncertain`"),
    ],
    "attitude": [
        ("unix_time_s", "epoch, UTC POSIX seconds"),
        ("utc", "the same epoch, ISO 8601 UTC"),
        ("t_gps_s", "the same epoch, GPS seconds (NaN without a clock map: then unix_time_s is the spacecraft clock)"),
        ("t_sc_s", "the same epoch, spacecraft clock seconds"),
        ("qw", "quaternion body -> GCRS, scalar first (rotates body vectors into GCRS)"),
        ("qx", ""),
        ("qy", ""),
        ("qz", ""),
        ("rate_x_body_rad_s", "angular rate, body axes, rad/s"),
        ("rate_y_body_rad_s", ""),
        ("rate_z_body_rad_s", ""),
        ("gyro_bias_x_rad_s", "gyro bias, body axes, rad/s"),
        ("gyro_bias_y_rad_s", ""),
        ("gyro_bias_z_rad_s", ""),
        ("sigma_att_x_rad", "1σ attitude error about each body axis, rad"),
        ("sigma_att_y_rad", ""),
        ("sigma_att_z_rad", ""),
        ("sigma_gyro_bias_x_rad_s", "1σ gyro bias per body axis, rad/s"),
        ("sigma_gyro_bias_y_rad_s", ""),
        ("sigma_gyro_bias_z_rad_s", ""),
        ("mag_bias_x_body_ut", "magnetometer hard-iron bias, body axes, µT"),
        ("mag_bias_y_body_ut", ""),
        ("mag_bias_z_body_ut", ""),
        ("sigma_mag_bias_x_ut", "1σ magnetometer bias per body axis, µT"),
        ("sigma_mag_bias_y_ut", ""),
        ("sigma_mag_bias_z_ut", ""),
        ("has_position", "1 when an orbit estimate was available (field and sun models used)"),
        ("in_eclipse", "1 when the estimator judged the spacecraft in eclipse"),
        ("valid_attitude", "0 while the quaternion is a placeholder (no reference yet; sigma_att is then pi)"),
        (
            "quality",
            _QUALITY + ": `ok`, `uncertain` (its 3-D 1σ over `attitude_valid_max_sigma_deg`) or `rates_only` "
            "(no attitude reference yet: the quaternion is a placeholder)",
        ),
    ],
    "formation": [
        ("unix_time_s", "epoch, UTC POSIX seconds"),
        ("utc", "the same epoch, ISO 8601 UTC"),
        ("t_sc_s", "the same epoch, spacecraft clock seconds"),
        ("peer_id", _PEER),
        ("dx_ecef_m", "peer minus own position, ECEF, m"),
        ("dy_ecef_m", ""),
        ("dz_ecef_m", ""),
        ("dvx_ecef_m_s", "peer minus own velocity, ECEF, m/s"),
        ("dvy_ecef_m_s", ""),
        ("dvz_ecef_m_s", ""),
        ("sigma_dx_m", "1σ relative position per ECEF axis, m"),
        ("sigma_dy_m", ""),
        ("sigma_dz_m", ""),
        ("sigma_dvx_m_s", "1σ relative velocity per ECEF axis, m/s"),
        ("sigma_dvy_m_s", ""),
        ("sigma_dvz_m_s", ""),
        ("range_bias_m", "estimated range bias, m"),
        ("n_ranges_used", "ranges used so far"),
        ("n_ranges_rejected", "ranges rejected so far"),
        (
            "quality",
            _QUALITY + ": `ok`, `uncertain` (its 3-D 1σ over `formation_valid_max_sigma_m`), `acquiring` "
            "(range-only: the acquisition window is still collecting ranges; the row is the prior's placeholder, "
            "not an estimate) or `ambiguous` (the kept orbits lie further apart than the bound; the row is their "
            "mixture)",
        ),
        (
            "ambiguity_m",
            "range-only: how far the kept orbits come from the published estimate over an orbit, m (0: one orbit; "
            "empty where the downlink did not record it)",
        ),
        (
            "n_orbits",
            "orbits kept: range-only, those the ranges cannot tell apart yet (each in partner_orbit.csv); 1 for a "
            "partner tracked with its fixes (0: not recorded)",
        ),
        ("best_weight", "the weight of the most likely kept orbit (1: one orbit)"),
    ],
    "partner_orbit": [
        ("unix_time_s", "epoch, UTC POSIX seconds"),
        ("utc", "the same epoch, ISO 8601 UTC"),
        ("t_sc_s", "the same epoch, spacecraft clock seconds"),
        ("peer_id", _PEER),
        (
            "index",
            "which kept orbit: 0 the published filter's, then its alternatives (the last may be "
            "the first's mirror image in the own orbit plane, kept while the prior cannot exclude it)",
        ),
        ("n_orbits", "orbits kept at that epoch"),
        ("weight", "this orbit's weight (posterior probability; the weights of an epoch sum to 1)"),
        ("dx_ecef_m", "peer minus own position in this orbit, ECEF, m"),
        ("dy_ecef_m", ""),
        ("dz_ecef_m", ""),
        ("dvx_ecef_m_s", "peer minus own velocity in this orbit, ECEF, m/s"),
        ("dvy_ecef_m_s", ""),
        ("dvz_ecef_m_s", ""),
        ("sigma_dx_m", "1σ relative position of this orbit per ECEF axis, m"),
        ("sigma_dy_m", ""),
        ("sigma_dz_m", ""),
        ("sigma_dvx_m_s", "1σ relative velocity of this orbit per ECEF axis, m/s"),
        ("sigma_dvy_m_s", ""),
        ("sigma_dvz_m_s", ""),
    ],
    "range_residuals": [
        ("unix_time_s", "range time, UTC POSIX seconds (spacecraft clock without a clock map)"),
        ("utc", "the same instant, ISO 8601 UTC"),
        ("t_sc_s", "range time, spacecraft clock seconds"),
        ("peer_id", _PEER),
        (
            "residual_m",
            "measured range - |Δr| of the formation estimate at that time - estimated range bias, m "
            "(valid ranges inside the span of their peer's estimates)",
        ),
        (
            "quality",
            "the quality word of the estimate the residual is taken against; `acquiring`: a range-only "
            "partner's prior, which the ranges are not yet fitted to (left out of the statistics)",
        ),
    ],
}

#: The formation smoother's products (``python -m ground smooth``): the replay's layouts plus
#: what a smoothed estimate of several spacecraft adds.
COLUMNS["smoothed_orbit"] = [
    # (the on-board estimate's counters and quality are the smoother's own below)
    c
    for c in COLUMNS["orbit"]
    if c[0] not in ("n_fixes_used", "n_fixes_rejected", "n_fixes_invalid", "quality")
] + [
    ("n_fixes_used", "own GPS fixes used by the smoother (the whole arc)"),
    ("n_fixes_rejected", "fixes left out as outliers (gated, or past the smoothed residuals' edit)"),
    ("n_fixes_invalid", "fixes flagged invalid (or not finite) in the input"),
    ("drag_scale", "estimated multiplier of the modelled drag [-]"),
    ("sigma_drag_scale", "1σ drag scale [-]"),
    ("quality", "ok, extrapolated (no fix used within 10 min or 3 fix spacings), suspect (docs/ground_tools.md)"),
]
COLUMNS["smoothed_formation"] = [
    (n, m)
    if n != "range_bias_m"
    else (n, "estimated bias of the ranges own_id measures to peer_id, m (nan: no ranges that way)")
    for n, m in COLUMNS["formation"]
    # (the on-board estimate's counters, quality and kept orbits are the smoother's own below, or none)
    if n not in ("n_ranges_used", "n_ranges_rejected", "quality", "ambiguity_m", "n_orbits", "best_weight")
] + [
    ("n_ranges_used", "ranges own_id measured to peer_id that the smoother used (the whole arc)"),
    ("n_ranges_rejected", "... left out as outliers"),
    ("own_id", "radio id of the spacecraft the row is relative to (peer minus own)"),
    ("t_gps_s", "the epoch, GPS seconds"),
    ("sigma_los_m", "1σ of the line-of-sight component of the relative position, m"),
    ("sigma_range_bias_m", "1σ of range_bias_m, m"),
    (
        "quality",
        "ok, gps_only (no range of the pair within 30 min or 3 range spacings), extrapolated (an end has no fix "
        "used within 10 min or 3 fix spacings), suspect (docs/ground_tools.md)",
    ),
]

COLUMNS["smoothed_measurements"] = [
    ("t_gps_s", "measurement time, GPS seconds (a range: its tag through the observer's clock map)"),
    ("utc", "the same instant, ISO 8601 UTC"),
    ("kind", "fix (own GPS fix of sc_id) or range (measured by sc_id to peer_id)"),
    ("sc_id", "radio id of the spacecraft that made the measurement"),
    ("peer_id", "the ranged partner's radio id (`unknown` for a fix)"),
    ("state", "used, rejected (gate), held (range acquisition), edited (outlier of the smoothed residuals), unused"),
    ("residual", "smoothed residual: a range's measured minus modelled value, m; a fix's chi-square (6 dof)"),
    ("sigma", "a range's 1σ, m (with its time tag's share); 1 for a fix"),
]

#: estimate message type -> table kind
KIND_OF_TYPE = {"orbit_estimate": "orbit", "attitude_estimate": "attitude", "formation_estimate": "formation"}

_XYZ = ("x", "y", "z")


#: POSIX seconds :func:`iso_utc` writes as a date (years 1 to 9999); others are written empty.
ISO_UTC_RANGE_S = (-62_135_596_800.0, 253_402_300_799.0)


def iso_utc(unix_time_s) -> np.ndarray:
    """ISO 8601 UTC strings (ms, trailing Z) of POSIX seconds; empty where not finite or
    beyond years 1-9999 (a corrupt stamp)."""
    t = np.asarray(unix_time_s, dtype=float)
    if not t.size:
        return np.array([], dtype="U24")
    ok = np.isfinite(t) & (t >= ISO_UTC_RANGE_S[0]) & (t <= ISO_UTC_RANGE_S[1])
    ms = np.rint(np.where(ok, t, 0.0) * 1e3).astype("int64").astype("datetime64[ms]")
    text = np.char.add(np.datetime_as_string(ms, unit="ms"), "Z")
    return np.where(ok, text, "").astype(text.dtype)


def empty_table(kind: str) -> dict:
    return {name: np.array([], dtype="U24" if name in TEXT_COLUMNS else float) for name, _ in COLUMNS[kind]}


def _vec(bodies, key, n=3) -> np.ndarray:
    return np.asarray([b[key] for b in bodies], dtype=float).reshape(-1, n)


def _col(bodies, key, dtype=float) -> np.ndarray:
    return np.asarray([b[key] for b in bodies], dtype=dtype)


def _opt_vec(bodies, key, n=3, fill=float("nan")) -> np.ndarray:
    """A field older message versions may lack."""
    return np.asarray([b.get(key, [fill] * n) for b in bodies], dtype=float).reshape(-1, n)


def _opt_col(bodies, key, fill, dtype=float) -> np.ndarray:
    return np.asarray([b.get(key, fill) for b in bodies], dtype=dtype)


def orbit_table(bodies: list[dict]) -> dict:
    """Rows of ``orbit_estimate`` bodies (propagated ones must already be removed)."""
    if not bodies:
        return empty_table("orbit")
    t = _col(bodies, "unix_time_s")
    r, v = _vec(bodies, "r_ecef_m"), _vec(bodies, "v_ecef_m_s")
    sr, sv = _vec(bodies, "sigma_r_m"), _vec(bodies, "sigma_v_m_s")
    rg, vg = _vec(bodies, "r_gcrs_m"), _vec(bodies, "v_gcrs_m_s")
    out = {"unix_time_s": t, "utc": iso_utc(t), "t_gps_s": _col(bodies, "t_gps_s"), "t_sc_s": _col(bodies, "t_sc_s")}
    for arr, fmt in (
        (r, "{}_ecef_m"),
        (v, "v{}_ecef_m_s"),
        (sr, "sigma_{}_ecef_m"),
        (sv, "sigma_v{}_ecef_m_s"),
        (rg, "{}_gcrs_m"),
        (vg, "v{}_gcrs_m_s"),
    ):
        for j, ax in enumerate(_XYZ):
            out[fmt.format(ax)] = arr[:, j]
    out["n_fixes_used"] = _col(bodies, "n_used", np.int64)
    out["n_fixes_rejected"] = _col(bodies, "n_rejected", np.int64)
    out["n_fixes_invalid"] = _col(bodies, "n_invalid", np.int64)
    out["quality"] = _quality(bodies)
    return out


def _quality(bodies) -> np.ndarray:
    return np.array([str(b.get("quality") or "") for b in bodies], dtype=object)


def orbit_covariances_gcrs(bodies: list[dict]) -> np.ndarray:
    """(n, 6, 6) position/velocity covariance in GCRS of ``orbit_estimate`` bodies."""
    if not bodies:
        return np.zeros((0, 6, 6))
    return np.asarray([b["cov_gcrs"] for b in bodies], dtype=float).reshape(-1, 6, 6)


def attitude_table(bodies: list[dict]) -> dict:
    if not bodies:
        return empty_table("attitude")
    t = _col(bodies, "unix_time_s")
    q = _vec(bodies, "q_body_to_gcrs", 4)
    out = {
        "unix_time_s": t,
        "utc": iso_utc(t),
        "t_gps_s": _opt_col(bodies, "t_gps_s", float("nan")),
        "t_sc_s": _col(bodies, "t_sc_s"),
    }
    for j, name in enumerate(("qw", "qx", "qy", "qz")):
        out[name] = q[:, j]
    for key, fmt in (
        ("rate_body_rad_s", "rate_{}_body_rad_s"),
        ("gyro_bias_rad_s", "gyro_bias_{}_rad_s"),
        ("sigma_att_rad", "sigma_att_{}_rad"),
        ("sigma_bias_rad_s", "sigma_gyro_bias_{}_rad_s"),
        ("mag_bias_body_ut", "mag_bias_{}_body_ut"),
        ("sigma_mag_bias_ut", "sigma_mag_bias_{}_ut"),
    ):
        arr = _opt_vec(bodies, key)
        for j, ax in enumerate(_XYZ):
            out[fmt.format(ax)] = arr[:, j]
    out["has_position"] = _col(bodies, "has_position", bool).astype(np.int64)
    out["in_eclipse"] = _col(bodies, "in_eclipse", bool).astype(np.int64)
    out["valid_attitude"] = _opt_col(bodies, "valid_attitude", True, bool).astype(np.int64)
    out["quality"] = _quality(bodies)
    return out


def attitude_covariances(bodies: list[dict]) -> np.ndarray | None:
    """(n, 6, 6) covariance of attitude error (rad) and gyro bias (rad/s), or None when the
    messages carry only sigmas."""
    if not bodies or any("cov" not in b for b in bodies):
        return None
    out = np.full((len(bodies), 6, 6), np.nan)
    for i, b in enumerate(bodies):
        c = np.asarray(b["cov"], dtype=float)
        n = round(float(np.sqrt(c.size)))
        if n * n == c.size and n >= 6:
            out[i] = c.reshape(n, n)[:6, :6]
    return out


def formation_table(bodies: list[dict]) -> dict:
    if not bodies:
        return empty_table("formation")
    out = _partner_head(bodies)
    out.update(_relative_state_columns(bodies))
    out["range_bias_m"] = _col(bodies, "range_bias_m")
    out["n_ranges_used"] = _col(bodies, "n_ranges_used", np.int64)
    out["n_ranges_rejected"] = _col(bodies, "n_ranges_rejected", np.int64)
    out["quality"] = _quality(bodies)
    out["ambiguity_m"] = _opt_col(bodies, "ambiguity_m", float("nan"))
    # (an estimate message lists the kept orbits' weights; a downlinked record counts them)
    out["n_orbits"] = np.asarray([b.get("n_orbits", len(b.get("hyp_weights") or ())) for b in bodies], dtype=np.int64)
    out["best_weight"] = np.asarray(
        [b.get("best_weight", max(b.get("hyp_weights") or [float("nan")])) for b in bodies], dtype=float
    )
    return out


def partner_orbit_bodies(formation_bodies: list[dict]) -> list[dict]:
    """Each orbit a range-only partner keeps, one body per orbit and estimate, from
    ``formation_estimate`` bodies: the ``partner_orbit`` record's values (the flight's own
    encoder makes them), with the estimate's ``unix_time_s``; only while more than one is kept."""
    from pygnc.formats.batch import KINDS_BY_NAME

    enc = KINDS_BY_NAME["partner_orbit"].encode
    out = []
    for b in formation_bodies:
        for v in enc("formation_estimate", b) or ():
            v["unix_time_s"] = b["unix_time_s"]
            out.append(v)
    return out


def _partner_head(bodies: list[dict]) -> dict:
    """The epoch (UTC POSIX seconds, ISO text, spacecraft clock) and partner id columns of
    formation-like *bodies*."""
    t = _col(bodies, "unix_time_s")
    return {
        "unix_time_s": t,
        "utc": iso_utc(t),
        "t_sc_s": _col(bodies, "t_sc_s"),
        "peer_id": _col(bodies, "peer_id", np.int64),
    }


def _relative_state_columns(bodies: list[dict]) -> dict:
    """The ECEF relative position, velocity and their 1-sigma columns of formation-like
    *bodies* (``dx_ecef_m`` ... ``sigma_dvz_m_s``)."""
    out = {}
    for key, fmt in (
        ("dr_ecef_m", "d{}_ecef_m"),
        ("dv_ecef_m_s", "dv{}_ecef_m_s"),
        ("sigma_dr_m", "sigma_d{}_m"),
        ("sigma_dv_m_s", "sigma_dv{}_m_s"),
    ):
        arr = _vec(bodies, key)
        for j, ax in enumerate(_XYZ):
            out[fmt.format(ax)] = arr[:, j]
    return out


def partner_orbit_table(bodies: list[dict]) -> dict:
    """Rows of :func:`partner_orbit_bodies` (or of decoded ``partner_orbit`` records)."""
    if not bodies:
        return empty_table("partner_orbit")
    out = {
        **_partner_head(bodies),
        "index": _col(bodies, "index", np.int64),
        "n_orbits": _col(bodies, "n_orbits", np.int64),
        "weight": _col(bodies, "weight"),
    }
    out.update(_relative_state_columns(bodies))
    return out


BUILDERS = {"orbit": orbit_table, "attitude": attitude_table, "formation": formation_table}


def sc_to_unix(*tables: dict):
    """Spacecraft clock -> ``unix_time_s`` as the first of *tables* with rows maps it (a
    linear fit over its rows: the clock map is linear), or None when none has rows."""
    for t in tables:
        t_sc = np.asarray(t["t_sc_s"], dtype=float)
        unix = np.asarray(t["unix_time_s"], dtype=float)
        if t_sc.size >= 2 and np.ptp(t_sc) > 0:
            t0 = t_sc[0]
            a, b = np.polyfit(t_sc - t0, unix, 1)
            return lambda x, a=a, b=b, t0=t0: a * (np.asarray(x, dtype=float) - t0) + b
        if t_sc.size:
            off = unix[0] - t_sc[0]
            return lambda x, off=off: np.asarray(x, dtype=float) + off
    return None


def range_residual_table(residuals: dict, to_unix) -> dict:
    """:func:`ground.outputs.residuals.range_residuals` -> the ``range_residuals.csv`` table;
    *to_unix* maps spacecraft time to ``unix_time_s`` (None: the spacecraft clock)."""
    t_sc = np.asarray(residuals["t_sc_s"], dtype=float)
    unix = np.asarray(to_unix(t_sc), dtype=float) if to_unix is not None else t_sc.copy()
    return {
        "unix_time_s": unix,
        "utc": iso_utc(unix),
        "t_sc_s": t_sc,
        "peer_id": np.asarray(residuals["peer_id"]).astype(np.int64),
        "residual_m": np.asarray(residuals["residual_m"], dtype=float),
        "quality": np.asarray(residuals.get("quality", np.full(t_sc.size, "")), dtype=object),
    }


#: Columns holding a spacecraft's radio id: written ``0x4B`` (:func:`pygnc.partners.partner_name`).
ID_COLUMNS = ("peer_id", "own_id", "sc_id")


def csv_cells(table: dict) -> tuple[list[str], list[list]]:
    """(column names, columns as lists) of *table* as a CSV writes them: the radio ids
    (:data:`ID_COLUMNS`) as ``0x4B`` (:func:`pygnc.partners.partner_name`), the rest as they are."""
    from pygnc.partners import partner_name

    names = list(table)
    cols = [
        [partner_name(v) for v in np.asarray(table[n]).tolist()] if n in ID_COLUMNS else np.asarray(table[n]).tolist()
        for n in names
    ]
    return names, cols


def write_csv(table: dict, path: Path) -> int:
    """Write *table* as CSV (full float precision, header row); returns the row count."""
    names, cols = csv_cells(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(names)
    w.writerows(zip(*cols))
    write_atomic(path, buf.getvalue().encode())  # a reader never sees half a file
    return len(cols[0]) if cols else 0


def read_csv(path: Path) -> dict:
    """Read a CSV written by :func:`write_csv` back into a table (``utc`` and ``quality``
    stay text; ``peer_id`` becomes the radio id again)."""
    from pygnc.partners import partner_id

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    names, data = rows[0], rows[1:]
    out = {}
    for j, n in enumerate(names):
        vals = [r[j] for r in data]
        if n in TEXT_COLUMNS:
            out[n] = np.array(vals, dtype="U32")
        elif n in ID_COLUMNS:
            out[n] = np.array([partner_id(v) for v in vals], dtype=np.int64)
        else:
            out[n] = np.array(vals, dtype=float)
    return out


def columns_markdown(kind: str) -> str:
    """Markdown table of the columns of ``<kind>.csv`` (for docs/interface.md)."""
    lines = ["| column | unit / meaning |", "|---|---|"]
    for name, meaning in COLUMNS[kind]:
        lines.append(f"| `{name}` | {meaning or 'as above'} |")
    return "\n".join(lines)
