"""summary.json statistics: RMS / maximum errors after a settle time, and NEES consistency.

NEES (normalised estimation error squared) e^T P^-1 e has, for a consistent filter, a
chi-square distribution with ``dof`` degrees of freedom at every epoch: mean ``dof`` and
95 % of epochs inside the two-sided 95 % interval [χ²(0.025), χ²(0.975)].  Successive
5-s epochs are strongly correlated, so these are diagnostics, not a test with a p-value.
Where an estimator reports only per-axis sigmas (attitude, formation) the NEES uses the
diagonal covariance.  ``n_past_999`` counts the epochs past the 99.9 % point (one in a
thousand for a consistent filter).  Each estimator's figures are also split by the rows'
quality word (``by_quality``): the ``ok`` rows are the ones an operator would use.
"""

from __future__ import annotations

import math

import numpy as np

from ground.outputs.tables import placeholder_rows
from pygnc.partners import partner_name

#: Runs at least this long settle for 30 minutes; shorter ones for 10 % of their length.
LONG_RUN_S = 3 * 3600.0
LONG_SETTLE_S = 1800.0
SHORT_SETTLE_FRACTION = 0.1


def default_settle_s(span_s: float) -> float:
    """30 min for runs of 3 h or more, else 10 % of the run."""
    return LONG_SETTLE_S if span_s >= LONG_RUN_S else SHORT_SETTLE_FRACTION * max(span_s, 0.0)


def _f(x) -> float | None:
    """JSON-safe float (NaN -> None)."""
    x = float(x)
    return None if not math.isfinite(x) else x


def norm_stats(values, mask=None, prefix: str = "", unit: str = "") -> dict:
    """``{prefix}rms_{unit}``, ``{prefix}max_{unit}`` of the finite *values* (magnitudes) under *mask*."""
    v = np.asarray(values, dtype=float)
    sel = np.isfinite(v) if mask is None else (np.isfinite(v) & mask)
    v = np.abs(v[sel])
    suffix = f"_{unit}" if unit else ""
    return {
        f"{prefix}rms{suffix}": _f(np.sqrt(np.mean(v**2))) if v.size else None,
        f"{prefix}max{suffix}": _f(v.max()) if v.size else None,
    }


def nees_stats(nees, dof: int, mask=None) -> dict:
    from scipy.stats import chi2

    v = np.asarray(nees, dtype=float)
    sel = np.isfinite(v) if mask is None else (np.isfinite(v) & mask)
    v = v[sel]
    lo, hi = float(chi2.ppf(0.025, dof)), float(chi2.ppf(0.975, dof))
    q95 = float(chi2.ppf(0.95, dof))
    return {
        "dof": int(dof),
        "n": int(v.size),
        "mean": _f(v.mean()) if v.size else None,
        "bounds_95": [lo, hi],
        "frac_inside_95": _f(np.mean((v >= lo) & (v <= hi))) if v.size else None,
        "frac_below_q95": _f(np.mean(v <= q95)) if v.size else None,
        "n_past_999": int(np.sum(v > float(chi2.ppf(0.999, dof)))),
    }


def by_quality(table: dict, mask, magnitude, nees, dof: int, prefix: str, unit: str) -> dict:
    """The statistics of the rows under *mask*, per quality word (``ok`` first): what an
    operator using only the ``ok`` rows gets, and what the others would have given.  Empty
    for a table without a quality column."""
    quality = table.get("quality")
    mask = np.asarray(mask, dtype=bool)
    if quality is None or len(quality) != mask.size:
        return {}
    quality = np.asarray(quality).astype(str)
    words = sorted(set(quality[mask]), key=lambda w: (w != "ok", w))
    out = {}
    for w in words:
        m = mask & (quality == w)
        n = nees_stats(nees, dof, m)
        out[w] = {
            "n_evaluated": int(m.sum()),
            **norm_stats(magnitude, m, prefix, unit),
            "nees_mean": n["mean"],
            "n_past_999": n["n_past_999"],
        }
    return out


def settled_mask(t_s, settle_s: float) -> np.ndarray:
    """Rows at least *settle_s* after the first row."""
    t = np.asarray(t_s, dtype=float)
    if t.size == 0:
        return np.zeros(0, dtype=bool)
    return t >= np.nanmin(t) + settle_s


def orbit_summary(table: dict, err: dict, settle_s: float) -> dict:
    m = settled_mask(table["unix_time_s"], settle_s)
    out = {"n_rows": int(m.size), "n_evaluated": int(np.sum(m & np.isfinite(err["dr_ecef_m"][:, 0])))}
    out.update(norm_stats(np.linalg.norm(err["dr_ecef_m"], axis=1), m, "position_3d_", "m"))
    out.update(norm_stats(np.linalg.norm(err["dv_ecef_m_s"], axis=1), m, "velocity_3d_", "m_s"))
    for j, ax in enumerate("xyz"):
        out.update(norm_stats(err["dr_ecef_m"][:, j], m, f"position_{ax}_ecef_", "m"))
    out["nees"] = nees_stats(err["nees"], err["dof"], m)
    out["by_quality"] = by_quality(
        table, m, np.linalg.norm(err["dr_ecef_m"], axis=1), err["nees"], err["dof"], "position_3d_", "m"
    )
    return out


def attitude_summary(table: dict, err: dict, settle_s: float) -> dict:
    """Rows whose quaternion is a placeholder (``valid_attitude`` 0) are left out and counted;
    ``by_quality`` splits the rest by their quality word."""
    valid = (
        table["valid_attitude"].astype(bool) if "valid_attitude" in table else np.ones(table["unix_time_s"].size, bool)
    )
    m = settled_mask(table["unix_time_s"], settle_s) & valid
    out = {
        "n_rows": int(m.size),
        "n_placeholder": int(np.sum(~valid)),
        "n_evaluated": int(np.sum(m & np.isfinite(err["angle_rad"]))),
    }
    out.update(norm_stats(np.degrees(err["angle_rad"]), m, "angle_", "deg"))
    out.update(norm_stats(np.degrees(np.linalg.norm(err["dbias_rad_s"], axis=1)), m, "gyro_bias_3d_", "deg_s"))
    out["nees"] = nees_stats(err["nees"], err["dof"], m)
    out["nees_gyro_bias"] = nees_stats(err["nees_bias"], err["dof"], m)
    out["by_quality"] = by_quality(table, m, np.degrees(err["angle_rad"]), err["nees"], err["dof"], "angle_", "deg")
    return out


def formation_summary(table: dict, err: dict, settle_s: float) -> dict:
    """Per peer (keys are the partners as written: ``0x4B``).  Rows of quality ``acquiring``
    (a range-only partner's prior standing in while its window fills: not an estimate) are
    left out and counted, as the attitude's placeholders are."""
    peers = {}
    pid = table["peer_id"].astype(int)
    placeholder = placeholder_rows(table)
    for p in np.unique(pid):
        sel = pid == p
        t = table["unix_time_s"][sel]
        m = settled_mask(t, settle_s) & ~placeholder[sel]
        e = err["dr_err_m"][sel]
        d = {
            "n_rows": int(sel.sum()),
            "n_acquiring": int(placeholder[sel].sum()),
            "n_evaluated": int(np.sum(m & np.isfinite(e[:, 0]))),
        }
        d.update(norm_stats(np.linalg.norm(e, axis=1), m, "relative_position_3d_", "m"))
        d.update(norm_stats(err["los_err_m"][sel], m, "line_of_sight_", "m"))
        d["nees"] = nees_stats(err["nees"][sel], err["dof"], m)
        q = table.get("quality")
        d["by_quality"] = by_quality(
            {"quality": None if q is None else np.asarray(q)[sel]},
            m,
            np.linalg.norm(e, axis=1),
            err["nees"][sel],
            err["dof"],
            "relative_position_3d_",
            "m",
        )
        peers[partner_name(p)] = d
    return {"n_rows": int(pid.size), "peers": peers}
