"""The smoother's report (``report.md``): what it read, what it estimated, how each spacecraft's
own on-board estimates compare with it (with its sigma beside them), and, given a simulator's
truth, how far both are from it.  Numbers in (:mod:`ground.smooth.products`,
:mod:`ground.smooth.evaluate`), Markdown text out."""

from __future__ import annotations

import math

import numpy as np

from ground.outputs.tables import iso_utc
from pygnc.timebase import utc_unix_from_gps

__all__ = ["render"]


def _f(v, spec=".2f", unit="") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:{spec}}{unit}"


def _pct(v) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{100.0 * v:.1f} %"


def _utc(t_gps_s: float) -> str:
    return str(iso_utc(np.array([float(utc_unix_from_gps(t_gps_s))]))[0])


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out + [""]


def _hx(i: int) -> str:
    return f"0x{int(i):02X}"


def _judges(sigma_smoother: float, sigma_onboard: float) -> str:
    """What a difference with the smoother says: the on-board error when the smoother knows
    the state at least twice as well, else only whether the two agree within their sigmas
    (e.g. from a downlink's decimated fixes the smoother may know less than the spacecraft)."""
    if not (math.isfinite(sigma_smoother) and math.isfinite(sigma_onboard)):
        return "-"
    return "the on-board error" if sigma_smoother <= 0.5 * sigma_onboard else "a consistency check"


def render(ctx: dict) -> str:
    """The report's Markdown.  *ctx*: ``command`` (as typed), ``result``, ``datas`` (the
    spacecraft's :class:`~ground.smooth.inputs.SpacecraftData`), ``summary``
    (:func:`~ground.smooth.products.summaries`), ``formation`` (the formation table),
    ``orbits`` (per index the orbit table), ``compare`` (``orbit[i]``, ``formation[(i, j)]``:
    the comparisons, ``source[i]``), ``truth`` (None or ``{"orbit", "pairs", "onboard"}``),
    ``notes`` (lines), ``cpu_s``, ``config``."""
    res = ctx["result"]
    datas = ctx["datas"]
    ids = [d.sc_id for d in datas]
    summ = ctx["summary"]
    lay = res.layout
    cfg = ctx["config"]
    lines = ["# Formation smoother report", ""]
    lines += [
        f"`{ctx['command']}`",
        "",
        f"Grid {cfg.step_s:g} s from {_utc(res.t_gps_s[0])} to {_utc(res.meas_t_gps_s.max())}; "
        f"{res.passes} pass{'es' if res.passes > 1 else ''}"
        + (
            f" (the second moved a relative position by at most {res.pass_change:.3f} m)"
            if math.isfinite(res.pass_change)
            else ""
        )
        + f"; {ctx['cpu_s']:.1f} s CPU.  What the columns and qualities mean: docs/ground_tools.md (smooth).",
        "",
        "## Inputs",
        "",
    ]
    rows = []
    for k, d in enumerate(datas):
        t = d.fixes["t_gps_s"]
        span = f"{_utc(t[0])} - {_utc(t[-1])}" if t.size else "-"
        o = summ["orbit"][k]
        rows.append(
            [
                _hx(d.sc_id),
                f"`{d.path}`",
                d.source,
                f"{o['used']} of {d.counts.get('fixes', 0)}",
                str(o["rejected"]),
                str(d.counts.get("fixes", 0) - d.counts.get("fixes_valid", 0)),
                span,
                str(int(d.counts.get("ranges_valid", 0))),
                d.onboard_source or "none",
            ]
        )
    lines += _table(
        [
            "spacecraft",
            "directory",
            "read as",
            "fixes used",
            "left out (outliers)",
            "invalid",
            "fix span (UTC)",
            "valid ranges",
            "on-board estimates",
        ],
        rows,
    )
    if any(d.source == "downlink" for d in datas):
        lines += [
            "A downlink holds the fixes and ranges the batch writer kept (by default one own fix and one range "
            "per partner every 5 minutes), not all of them: the smoother's sigmas say what that costs.  The "
            "downlinked orbit and formation records are the spacecraft's own estimates, compared below, never "
            "used as measurements.",
            "",
        ]
    notes = list(ctx.get("notes") or [])
    for d in datas:
        notes += [f"{_hx(d.sc_id)}: {n}" for n in d.notes]
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]

    lines += ["## What the smoother estimated", "", "### Orbits", ""]
    rows = []
    for k, sid in enumerate(ids):
        tb = ctx["orbits"][k]
        o = summ["orbit"][k]
        s3 = np.sqrt(tb["sigma_x_ecef_m"] ** 2 + tb["sigma_y_ecef_m"] ** 2 + tb["sigma_z_ecef_m"] ** 2)
        sv = np.sqrt(tb["sigma_vx_ecef_m_s"] ** 2 + tb["sigma_vy_ecef_m_s"] ** 2 + tb["sigma_vz_ecef_m_s"] ** 2)
        q = tb["quality"]
        rows.append(
            [
                _hx(sid),
                _f(o["fix_chi2_mean"]),
                _f(float(np.median(s3)), ".3f", " m") if s3.size else "-",
                _f(1e3 * float(np.median(sv)), ".2f", " mm/s") if sv.size else "-",
                f"{tb['drag_scale'][-1]:.2f} ± {tb['sigma_drag_scale'][-1]:.2f}" if q.size else "-",
                _pct(float(np.mean(q == "ok"))) if q.size else "-",
            ]
        )
    lines += _table(
        [
            "spacecraft",
            "fixes' mean chi² (6 when consistent)",
            "position σ 3D (median)",
            "velocity σ 3D (median)",
            "drag scale",
            "rows ok",
        ],
        rows,
    )
    lines += ["### Range links (observer → partner)", ""]
    rows = []
    for lk, li in summ["link"].items():
        o, p = lk
        rows.append(
            [
                f"{_hx(ids[o])} → {_hx(ids[p])}",
                str(li["used"]),
                str(li["rejected"]),
                str(li["held"]),
                _f(li["resid_rms_m"], ".3f", " m"),
                _f(li["norm_rms"]),
                f"{li['bias_m']:.3f} ± {li['sigma_bias_m']:.3f} m",
            ]
        )
    if rows:
        lines += _table(
            [
                "link",
                "ranges used",
                "left out (outliers)",
                "held (acquisition)",
                "residual RMS",
                "normalised RMS (1 when consistent)",
                "range bias",
            ],
            rows,
        )
        offs = [
            f"{_hx(ids[o])} {res.x[-1, lay.offset_index[o]]:.2f} ± {math.sqrt(max(0.0, res.var_offset[-1, m])):.2f} s"
            for m, o in enumerate(lay.observers)
        ]
        lines += [f"Range time-tag lateness (tag minus true time), at the end: {', '.join(offs)}.", ""]
    else:
        lines += ["No ranges between the input spacecraft.", ""]
    lines += ["### Pairs", ""]
    rows = []
    ft = ctx["formation"]
    for i, j in res.pairs:
        if not ft:
            break
        sel = (ft["own_id"] == ids[i]) & (ft["peer_id"] == ids[j])
        d = np.sqrt(ft["dx_ecef_m"][sel] ** 2 + ft["dy_ecef_m"][sel] ** 2 + ft["dz_ecef_m"][sel] ** 2)
        s3 = np.sqrt(ft["sigma_dx_m"][sel] ** 2 + ft["sigma_dy_m"][sel] ** 2 + ft["sigma_dz_m"][sel] ** 2)
        q = ft["quality"][sel]
        rows.append(
            [
                f"{_hx(ids[i])} – {_hx(ids[j])}",
                _f(float(np.median(d)), ".0f", " m"),
                _f(float(np.median(s3)), ".3f", " m"),
                _f(float(np.median(ft["sigma_los_m"][sel])), ".3f", " m"),
                " / ".join(_pct(float(np.mean(q == c))) for c in ("ok", "gps_only", "extrapolated", "suspect")),
            ]
        )
    if rows:
        lines += _table(
            [
                "pair",
                "separation (median)",
                "σ 3D (median)",
                "σ line of sight (median)",
                "rows ok / gps_only / extrapolated / suspect",
            ],
            rows,
        )

    lines += ["## On-board estimates against the smoother", ""]
    cmp_ = ctx["compare"]
    if not cmp_["orbit"] and not cmp_["formation"]:
        lines += [
            "No on-board estimates were given (a downlink, a spacecraft home with `pygnc_batches/`, or "
            "`--onboard ID=DIR` with a replay or decode output).",
            "",
        ]
    else:
        lines += [
            "Differences are on-board minus smoother at the on-board estimate's time (the smoother interpolated).  "
            "Where the smoother's sigma is well under the on-board one, the difference is the on-board error; "
            "'within 3σ' is the fraction of estimates whose difference the on-board sigma covers (about 99 % "
            "for an honest filter), 'far off' the fraction more than 3 combined sigma off in some axis (a mirror "
            "ambiguity resolved wrongly on board shows there).",
            "",
        ]
        rows = []
        for k, c in sorted(cmp_["orbit"].items()):
            rows.append(
                [
                    _hx(ids[k]),
                    cmp_["source"].get(k, ""),
                    str(c["n"]),
                    _f(c["rms3d_m"], ".3f", " m"),
                    _f(c["onboard_sigma3d_m"], ".3f", " m"),
                    _f(c["smoother_sigma3d_m"], ".3f", " m"),
                    _pct(c["within_onboard_3sigma"]),
                    _pct(c["within_3sigma"]),
                    _judges(c["smoother_sigma3d_m"], c["onboard_sigma3d_m"]),
                ]
            )
        if rows:
            lines += ["### Orbits", ""]
            lines += _table(
                [
                    "spacecraft",
                    "on board",
                    "estimates",
                    "difference 3D RMS",
                    "on-board σ 3D (median)",
                    "smoother σ 3D (median)",
                    "within on-board 3σ (all axes)",
                    "within combined 3σ",
                    "the difference is",
                ],
                rows,
            )
        rows = []
        for (i, j), c in sorted(cmp_["formation"].items()):
            rows.append(
                [
                    f"{_hx(ids[i])} → {_hx(ids[j])}",
                    f"{c['n']} ({c['n_valid']})",
                    _f(c["rms3d_m"], ".3f", " m"),
                    _f(c["rms3d_valid_m"], ".3f", " m"),
                    _f(c["rms_los_valid_m"], ".3f", " m"),
                    _f(c["onboard_sigma_los_m"], ".3f", " m"),
                    _f(c["smoother_sigma_los_m"], ".3f", " m"),
                    _pct(c["within_onboard_3sigma"]),
                    _pct(c["within_3sigma"]),
                    _pct(c["far_off"]),
                    _judges(c["smoother_sigma_los_m"], c["onboard_sigma_los_m"]),
                ]
            )
        if rows:
            vmax = next(iter(cmp_["formation"].values()))["valid_max_sigma_m"]
            lines += [
                "### Formation (own → partner)",
                "",
                f"'valid': the on-board estimates whose 3-D sigma is within {vmax:g} m (what the status file calls "
                "valid); the columns after the first 3D RMS are over those.  A valid estimate far off is a "
                "confidently wrong one.",
                "",
            ]
            lines += _table(
                [
                    "pair",
                    "estimates (valid)",
                    "difference 3D RMS, all",
                    "3D RMS, valid",
                    "line of sight RMS",
                    "on-board σ LOS (median)",
                    "smoother σ LOS (median)",
                    "LOS within on-board 3σ",
                    "LOS within combined 3σ",
                    "far off",
                    "the difference is",
                ],
                rows,
            )
        acq = cmp_.get("acquiring") or {}
        if acq:
            lines += [
                "On-board formation rows of quality `acquiring` are not compared (a range-only partner's prior "
                "standing in while its acquisition window fills: not an estimate): "
                + ", ".join(f"{_hx(ids[i])} → {_hx(ids[j])} {n}" for (i, j), n in sorted(acq.items()))
                + ".",
                "",
            ]
    tr = ctx.get("truth")
    if tr is not None:
        lines += [
            "## Against the truth",
            "",
            f"After the first {tr['settle_s'] / 60:.0f} min of the arc.  NEES: 3 when the sigmas are right; "
            "'inside 3σ': epochs inside the 3-sigma ellipsoid (97.1 % when consistent).",
            "",
        ]
        rows = []
        for k, s in tr["orbit"].items():
            ob = tr["onboard"]["orbit"].get(k)
            rows.append(
                [
                    _hx(ids[k]),
                    _f(s["rms3d_m"], ".3f", " m"),
                    _f(s["sigma3d_m"], ".3f", " m"),
                    _f(s["nees_mean"]),
                    _pct(s["inside_3sigma"]),
                    _f(ob, ".3f", " m") if ob is not None else "-",
                ]
            )
        lines += _table(
            ["spacecraft", "smoother 3D RMS", "its σ 3D (RMS)", "NEES", "inside 3σ", "on board 3D RMS"], rows
        )
        rows = []
        for (i, j), s in tr["pairs"].items():
            ob = tr["onboard"]["formation"].get((i, j))
            rows.append(
                [
                    f"{_hx(ids[i])} – {_hx(ids[j])}",
                    _f(s["rms3d_m"], ".3f", " m"),
                    _f(s["rms_los_m"], ".3f", " m"),
                    _f(s["sigma3d_m"], ".3f", " m"),
                    _f(s["sigma_los_m"], ".3f", " m"),
                    _f(s["nees_mean"]),
                    _pct(s["inside_3sigma"]),
                    _pct(s["los_inside_3sigma"]),
                    _f(ob, ".3f", " m") if ob is not None else "-",
                ]
            )
        if rows:
            lines += _table(
                [
                    "pair",
                    "3D RMS",
                    "LOS RMS",
                    "σ 3D (RMS)",
                    "σ LOS (RMS)",
                    "NEES",
                    "inside 3σ",
                    "LOS inside 3σ",
                    "on board 3D RMS (own → partner)",
                ],
                rows,
            )
    return "\n".join(lines).rstrip() + "\n"
