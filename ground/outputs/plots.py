"""PNG plots of a replay (matplotlib, Agg canvas: no display, no global pyplot state).

With truth: estimate errors per axis with the estimator's own ±3σ, and NEES against its
95 % bounds.  Without truth: GPS-fix and range residuals.  Downlinked batch files
(:mod:`ground.decode.batch_files`): estimates over time with their own ±3σ.  The time axis is hours since
the first estimate of the replay (its UTC is in the axis label).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from pygnc.atomic import write_atomic

#: The units of position and velocity panels (x, y, z, vx, vy, vz; velocities in cm/s).
POS_VEL_UNITS = ["m", "m", "m", "cm/s", "cm/s", "cm/s"]


def _figure(n_rows: int, title: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 2.4 * n_rows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, 1, sharex=True, squeeze=False)[:, 0]
    fig.suptitle(title)
    return fig, axes


def _plain_log_labels(ax) -> None:
    """A log axis labelled in plain numbers (``3``, ``0.6``, ``10``), not ``3×10⁰``; minor
    ticks labelled only over a decade or two (as matplotlib's own log labels)."""
    from matplotlib.ticker import LogFormatter

    class Plain(LogFormatter):
        def __call__(self, x, pos=None):
            return f"{x:g}" if super().__call__(x, pos) else ""

    ax.yaxis.set_major_formatter(Plain(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax.yaxis.set_minor_formatter(Plain(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=90, format="png")
    write_atomic(path, buf.getvalue())  # a viewer never opens half a PNG
    return path


class TimeAxis:
    """Hours since *t0_unix_s*, with a label naming that instant."""

    def __init__(self, t0_unix_s: float):
        from .tables import iso_utc

        self.t0 = float(t0_unix_s)
        self.label = f"hours since {iso_utc([self.t0])[0]}"

    def __call__(self, unix_time_s):
        return (np.asarray(unix_time_s, dtype=float) - self.t0) / 3600.0


def y_limit(err_col, s3_col, rows) -> float | None:
    """Half-height of a panel that shows the errors and ±3σ of *rows* (a boolean mask: e.g.
    after convergence), with a 10 % margin; None without a finite value there."""
    vals = [np.abs(np.asarray(err_col, dtype=float)[rows])]
    if s3_col is not None:
        vals.append(np.abs(np.asarray(s3_col, dtype=float)[rows]))
    v = np.concatenate(vals)
    v = v[np.isfinite(v)]
    return float(v.max()) * 1.1 if v.size and v.max() > 0 else None


def not_ok_spans(hours, quality) -> list[tuple[float, float]]:
    """(start, end) hours of each run of rows whose quality word is recorded and not ``ok``
    (a run's span reaches the next row's time: a lone row is a visible band)."""
    if quality is None:
        return []
    h = np.asarray(hours, dtype=float)
    w = np.asarray(quality, dtype=object)
    bad = np.array([str(x) not in ("ok", "") for x in w], dtype=bool)
    if not bad.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], bad.astype(np.int8), [0]))))
    spans = []
    for a, b in zip(edges[::2], edges[1::2]):
        end = h[b] if b < h.size else h[b - 1]
        spans.append((float(h[a]), float(end)))
    return spans


def _mark_not_ok(axes, hours, quality) -> None:
    """Grey bands where the estimate's quality says it is not usable."""
    spans = not_ok_spans(hours, quality)
    for ax in axes:
        for k, (a, b) in enumerate(spans):
            ax.axvspan(a, b, color="0.5", alpha=0.18, linewidth=0, label="quality not ok" if k == 0 else None)


def _units(unit: str | list[str], n: int) -> list[str]:
    """The unit of each of *n* panels: one for all, or one per panel."""
    units = [unit] * n if isinstance(unit, str) else list(unit)
    if len(units) != n:
        raise ValueError(f"{len(units)} units for {n} panels")
    return units


def errors_with_bounds(
    path: Path,
    hours,
    err,
    sigma,
    title: str,
    labels,
    unit: str | list[str],
    xlabel: str,
    what: str = "error",
    ylim_rows=None,
    quality=None,
) -> Path:
    """One panel per column of *err* (n, k) with ±3 *sigma* (n, k) shaded; *unit*: one for
    every panel or one per panel.  *ylim_rows* (boolean mask): the y-range shows those rows
    in full (earlier, larger values are clipped at the panel's edge) - e.g. the rows after
    convergence.  *quality* (n,): the rows' words; spans not ``ok`` are greyed."""
    err = np.asarray(err, dtype=float)
    fig, axes = _figure(err.shape[1], title)
    units = _units(unit, err.shape[1])
    _mark_not_ok(axes, hours, quality)
    for j, ax in enumerate(axes):
        s3 = None
        if sigma is not None:
            s3 = 3.0 * np.asarray(sigma, dtype=float)[:, j]
            ax.fill_between(hours, -s3, s3, color="tab:blue", alpha=0.2, linewidth=0, label="±3σ")
        if ylim_rows is not None and np.any(ylim_rows):
            lim = y_limit(err[:, j], s3, np.asarray(ylim_rows, dtype=bool))
            if lim is not None:
                ax.set_ylim(-lim, lim)
        ax.plot(hours, err[:, j], ".", ms=2, color="tab:red", label=what)
        ax.axhline(0.0, color="k", lw=0.5)
        ax.set_ylabel(f"{labels[j]} [{units[j]}]")
        ax.grid(True, alpha=0.3)
    axes[0].legend(loc="upper right", fontsize="small")
    axes[-1].set_xlabel(xlabel)
    return _save(fig, path)


def nees_panels(path: Path, panels: list[tuple[str, np.ndarray, np.ndarray, int]], xlabel: str) -> Path:
    """*panels*: (name, hours, nees, dof); each with its two-sided 95 % chi-square bounds."""
    from scipy.stats import chi2

    fig, axes = _figure(len(panels), "NEES (normalised estimation error squared)")
    for ax, (name, hours, nees, dof) in zip(axes, panels):
        lo, hi = chi2.ppf(0.025, dof), chi2.ppf(0.975, dof)
        ax.semilogy(hours, np.clip(nees, 1e-3, None), ".", ms=2, color="tab:red", label="NEES")
        ax.axhline(dof, color="k", lw=0.8, label=f"dof = {dof}")
        ax.axhline(lo, color="tab:blue", lw=0.8, ls="--", label="95 % bounds")
        ax.axhline(hi, color="tab:blue", lw=0.8, ls="--")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(loc="upper right", fontsize="small")
    axes[-1].set_xlabel(xlabel)
    return _save(fig, path)


def time_series(
    path: Path,
    hours,
    values,
    title: str,
    labels,
    unit: str | list[str],
    xlabel: str,
    sigma=None,
    logy: bool = False,
    quality=None,
) -> Path:
    """One panel per column of *values* (n, k), each with ±3 *sigma* (n, k) shaded around it
    when given (an estimate and its own uncertainty); *unit*: one for every panel or one per
    panel; *logy* for magnitudes such as sigmas; *quality* (n,): spans not ``ok`` greyed."""
    values = np.asarray(values, dtype=float)
    fig, axes = _figure(values.shape[1], title)
    units = _units(unit, values.shape[1])
    _mark_not_ok(axes, hours, quality)
    for j, ax in enumerate(axes):
        v = values[:, j]
        if sigma is not None:
            s3 = 3.0 * np.asarray(sigma, dtype=float)[:, j]
            ax.fill_between(hours, v - s3, v + s3, color="tab:blue", alpha=0.2, linewidth=0, label="±3σ")
        ax.plot(hours, v, ".-", ms=2, lw=0.5, color="tab:red", label="estimate")
        if logy and np.any(v > 0):
            ax.set_yscale("log")
            _plain_log_labels(ax)
        ax.set_ylabel(f"{labels[j]} [{units[j]}]")
        ax.grid(True, alpha=0.3, which="both")
    if sigma is not None or not_ok_spans(hours, quality):
        axes[0].legend(loc="upper right", fontsize="small")
    axes[-1].set_xlabel(xlabel)
    return _save(fig, path)


def residuals(path: Path, hours, res, title: str, labels, unit: str | list[str], xlabel: str, sigma=None) -> Path:
    return errors_with_bounds(path, hours, res, sigma, title, labels, unit, xlabel, what="residual")


def distributions(path: Path, samples: dict, title: str, unit: str) -> Path:
    """Empirical CDFs of a Monte Carlo metric, one line per configuration
    (*samples*: name -> values), with each one's median and 95th percentile marked."""
    fig, (ax,) = _figure(1, title)
    for name, values in samples.items():
        v = np.sort(np.asarray(values, dtype=float))
        if not v.size:
            continue
        p = np.arange(0, v.size + 1) / v.size
        (line,) = ax.step(np.concatenate([v[:1], v]), p, where="post", label=f"{name} (n={v.size})")
        for q, style in ((50, ":"), (95, "--")):
            ax.axvline(np.percentile(v, q), color=line.get_color(), linestyle=style, linewidth=0.8)
    ax.set_xlabel(f"{unit}  (dotted: median, dashed: 95th percentile)")
    ax.set_ylabel("fraction of runs ≤")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def anees(path: Path, curves: dict, title: str, xlabel: str) -> Path:
    """Monte Carlo average NEES against its two-sided 95 % bounds, one panel per
    configuration (*curves*: name -> (t_h, anees, lower, upper, dof))."""
    fig, axes = _figure(max(len(curves), 1), title)
    for ax, (name, (t_h, a, lo, hi, dof)) in zip(axes, curves.items()):
        ax.plot(t_h, a, ".", markersize=3, label=f"{name}: ANEES")
        ax.plot(t_h, lo, "k--", linewidth=0.8, label="95 % bounds")
        ax.plot(t_h, hi, "k--", linewidth=0.8)
        ax.axhline(dof, color="0.5", linewidth=0.8)
        ax.set_ylabel(f"ANEES (dof {dof})")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel(xlabel)
    return _save(fig, path)
