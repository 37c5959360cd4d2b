"""A replay's estimates judged: against the simulator's truth (errors, NEES, each with its
plot) or, without truth, by the residuals of the GPS fixes and ranges - the statistics
``summary.json`` holds and the replay prints."""

from __future__ import annotations

import numpy as np

from pygnc.partners import partner_name


def _stack(table, fmt, axes="xyz"):
    return np.stack([table[fmt.format(a)] for a in axes], axis=1)


def truth_stats(truth, tables, cov, settle, plot_jobs, att_cov, nees_series: dict) -> dict:
    from ground.outputs import summary as sm
    from ground.outputs import truth as tr

    out = {}
    o = tables["orbit"]
    if o["unix_time_s"].size:
        e = tr.orbit_errors(truth, o["t_gps_s"], _stack(o, "{}_ecef_m"), _stack(o, "v{}_ecef_m_s"), cov)
        out["orbit"] = sm.orbit_summary(o, e, settle)
        sr, sv = _stack(o, "sigma_{}_ecef_m"), _stack(o, "sigma_v{}_ecef_m_s")
        plot_jobs.append(
            lambda pl, ax, d, e=e, o=o, sr=sr: pl.errors_with_bounds(
                d / "orbit_position_error.png",
                ax(o["unix_time_s"]),
                e["dr_ecef_m"],
                sr,
                "Orbit position error (estimate - truth), ECEF",
                ["x", "y", "z"],
                "m",
                ax.label,
                quality=o.get("quality"),
            )
        )
        plot_jobs.append(
            lambda pl, ax, d, e=e, o=o, sv=sv: pl.errors_with_bounds(
                d / "orbit_velocity_error.png",
                ax(o["unix_time_s"]),
                e["dv_ecef_m_s"],
                sv,
                "Orbit velocity error (estimate - truth), ECEF",
                ["vx", "vy", "vz"],
                "m/s",
                ax.label,
                quality=o.get("quality"),
            )
        )
        nees_o = ("orbit (6 dof)", o["unix_time_s"], e["nees"], 6)
        nees_series["orbit"] = (o["unix_time_s"], e["nees"], 6)
    else:
        out["orbit"] = {"n_rows": 0}
        nees_o = None
    a = tables["attitude"]
    nees_a = None
    if a["unix_time_s"].size:
        sa, sb = _stack(a, "sigma_att_{}_rad"), _stack(a, "sigma_gyro_bias_{}_rad_s")
        e = tr.attitude_errors(
            truth,
            a["unix_time_s"],
            _stack(a, "q{}", "wxyz"),
            _stack(a, "gyro_bias_{}_rad_s"),
            sa,
            sb,
            t_gps_s=a["t_gps_s"],
            cov6=att_cov,
        )
        out["attitude"] = sm.attitude_summary(a, e, settle)
        # y-range from the rows after --settle: the initial 3-sigma (~180 deg) would flatten
        # the converged error (~1 deg) to a line.
        conv = sm.settled_mask(a["unix_time_s"], settle) & a["valid_attitude"].astype(bool)
        plot_jobs.append(
            lambda pl, ax, d, e=e, a=a, sa=sa, conv=conv: pl.errors_with_bounds(
                d / "attitude_error.png",
                ax(a["unix_time_s"]),
                np.degrees(e["dtheta_rad"]),
                np.degrees(sa),
                "Attitude error (rotation vector of q_true* ⊗ q_est), body axes",
                ["x", "y", "z"],
                "deg",
                ax.label,
                ylim_rows=conv,
                quality=a.get("quality"),
            )
        )
        plot_jobs.append(
            lambda pl, ax, d, e=e, a=a, sb=sb, conv=conv: pl.errors_with_bounds(
                d / "gyro_bias_error.png",
                ax(a["unix_time_s"]),
                np.degrees(e["dbias_rad_s"]),
                np.degrees(sb),
                "Gyro bias error (estimate - truth), body axes",
                ["x", "y", "z"],
                "deg/s",
                ax.label,
                ylim_rows=conv,
                quality=a.get("quality"),
            )
        )
        nees_a = ("attitude (3 dof)", a["unix_time_s"], e["nees"], 3)
        nees_series["attitude"] = (a["unix_time_s"], e["nees"], 3)
    else:
        out["attitude"] = {"n_rows": 0}
    f = tables["formation"]
    nees_f = None
    if f["unix_time_s"].size:
        sd = _stack(f, "sigma_d{}_m")
        e = tr.formation_errors(truth, f["unix_time_s"], f["peer_id"], _stack(f, "d{}_ecef_m"), sd)
        out["formation"] = sm.formation_summary(f, e, settle)
        for p in np.unique(f["peer_id"].astype(int)):
            sel = f["peer_id"].astype(int) == p
            name = partner_name(p)
            nees_series[f"formation/{name}"] = (f["unix_time_s"][sel], e["nees"][sel], 3)
            plot_jobs.append(
                lambda pl, ax, d, e=e, f=f, sd=sd, sel=sel, p=name: pl.errors_with_bounds(
                    d / f"formation_error_{p}.png",
                    ax(f["unix_time_s"][sel]),
                    np.column_stack([e["dr_err_m"][sel], e["los_err_m"][sel]]),
                    np.column_stack([sd[sel], np.full(int(sel.sum()), np.nan)]),
                    f"Relative position error, partner {p} (estimate - truth), ECEF and line of sight",
                    ["dx", "dy", "dz", "LOS"],
                    "m",
                    ax.label,
                    quality=None if f.get("quality") is None else f["quality"][sel],
                )
            )
        nees_f = ("formation (3 dof)", f["unix_time_s"], e["nees"], 3)
    else:
        out["formation"] = {"n_rows": 0}
    panels = [pnl for pnl in (nees_o, nees_a, nees_f) if pnl is not None and np.isfinite(pnl[2]).any()]
    if panels:
        plot_jobs.append(
            lambda pl, ax, d, panels=panels: pl.nees_panels(
                d / "nees.png", [(n, ax(t), v, k) for n, t, v, k in panels], ax.label
            )
        )
    return out


def residual_stats(tables, fixes, r, to_unix, plot_jobs) -> dict:
    """*r*: the range residuals (:func:`ground.outputs.residuals.range_residuals`);
    *to_unix*: spacecraft clock -> UTC (:func:`ground.outputs.tables.sc_to_unix`)."""
    from ground.outputs import residuals as rs
    from ground.outputs.summary import norm_stats

    out = {}
    g = rs.gps_fix_residuals(tables["orbit"], fixes)
    out["gps_fix"] = {
        "n": int(g["t_gps_s"].size),
        **norm_stats(np.linalg.norm(g["dr_m"], axis=1), None, "position_3d_", "m"),
        **norm_stats(np.linalg.norm(g["dv_m_s"], axis=1), None, "velocity_3d_", "m_s"),
    }
    est = rs.estimated(r)  # residuals against a range-only partner's prior: not the estimator's
    out["range"] = {
        "n": int(est.sum()),
        "n_acquiring": int((~est).sum()),
        **norm_stats(r["residual_m"][est], None, "", "m"),
    }
    if plot_jobs is not None and g["t_gps_s"].size:
        plot_jobs.append(
            lambda pl, ax, d, g=g: pl.residuals(
                d / "gps_fix_residuals.png",
                ax(g["unix_time_s"]),
                np.column_stack([g["dr_m"], g["dv_m_s"] * 100.0]),
                "GPS fix residuals (fix - orbit estimate), ECEF, with the fix's ±3σ",
                ["x", "y", "z", "vx", "vy", "vz"],
                pl.POS_VEL_UNITS,
                ax.label,
                sigma=np.column_stack([g["sigma_r_m"], g["sigma_v_m_s"] * 100.0]),
            )
        )
    if plot_jobs is not None and est.any():
        if to_unix is not None:
            plot_jobs.append(
                lambda pl, ax, d, r=r, conv=to_unix: pl.residuals(
                    d / "range_residuals.png",
                    ax(conv(r["t_sc_s"][est])),
                    r["residual_m"][est][:, None],
                    "Range residuals (measured - |Δr| - bias), all peers, against estimates (not priors)",
                    ["range"],
                    "m",
                    ax.label,
                )
            )
    return out


def _say_by_quality(say, groups: dict | None, prefix: str, unit: str, what: str) -> None:
    """One line per estimator: its settled rows by quality word (``ok`` first) - the RMS and
    maximum error, the NEES mean and the rows past the 99.9 % bound of each."""
    if not groups:
        return
    parts = []
    for word, g in groups.items():
        rms, mx, nees = g.get(f"{prefix}rms_{unit}"), g.get(f"{prefix}max_{unit}"), g.get("nees_mean")
        fig = "-" if rms is None else f"RMS {rms:.3g} {unit} (max {mx:.3g})"
        parts.append(
            f"{word} {g['n_evaluated']} rows: {fig}, NEES mean {'-' if nees is None else f'{nees:.2f}'}, "
            f"{g['n_past_999']} past 99.9 %"
        )
    say(f"      {what} by quality: " + "; ".join(parts))


def print_truth_lines(summary: dict, say) -> None:
    o, a, f = summary.get("orbit", {}), summary.get("attitude", {}), summary.get("formation", {})

    def fmt(v, spec=".2f"):
        return "-" if v is None else format(v, spec)

    settle_min = summary["settle_s"] / 60.0
    say(f"  truth {summary['truth']['spacecraft']} (statistics after {settle_min:.1f} min):")
    if o.get("n_rows"):
        say(
            f"    orbit: position 3D RMS {fmt(o['position_3d_rms_m'])} m (max {fmt(o['position_3d_max_m'])}), "
            f"velocity 3D RMS {fmt(o['velocity_3d_rms_m_s'], '.4f')} m/s, NEES mean {fmt(o['nees']['mean'])} "
            f"(dof 6), {fmt(o['nees']['frac_inside_95'], '.0%')} inside 95 % bounds"
        )
        _say_by_quality(say, o.get("by_quality"), "position_3d_", "m", "orbit")
    if a.get("n_rows"):
        say(
            f"    attitude: angle RMS {fmt(a['angle_rms_deg'], '.3f')} deg (max {fmt(a['angle_max_deg'], '.3f')}), "
            f"gyro bias RMS {fmt(a['gyro_bias_3d_rms_deg_s'], '.4f')} deg/s, NEES mean {fmt(a['nees']['mean'])} (dof 3)"
        )
        _say_by_quality(say, a.get("by_quality"), "angle_", "deg", "attitude")
    if not (o.get("n_rows") or a.get("n_rows") or f.get("n_rows")):
        say("    no estimates to compare")
    for p, d in f.get("peers", {}).items():
        left_out = f" ({d['n_acquiring']} rows acquiring, left out)" if d.get("n_acquiring") else ""
        if not d.get("n_evaluated"):
            say(f"    formation partner {p}: no estimates to compare{left_out}")
            continue
        say(
            f"    formation partner {p}: relative position 3D RMS {fmt(d['relative_position_3d_rms_m'])} m, "
            f"line of sight RMS {fmt(d['line_of_sight_rms_m'])} m, NEES mean {fmt(d['nees']['mean'])} (dof 3)"
            + left_out
        )
        _say_by_quality(say, d.get("by_quality"), "relative_position_3d_", "m", f"partner {p}")
