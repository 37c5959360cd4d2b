"""Fitting a partner's orbit to its acquisition window of ranges: the window
(:class:`AcquisitionWindow`), the fit from many starts, each refitted about itself with its
mirror image (:class:`WindowFitting`, a part of
:class:`~pygnc.estimation.range_only.PartnerHypotheses`), the candidates' common costs and
a filter started from a fit (:func:`replay_window`, :func:`start_from_fit`).

Pure computation on plain arrays (GCRS, SI, GPS seconds).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from pygnc.estimation import orbit_dynamics as od
from pygnc.estimation.formation_filter import I_DRAG_SCALE, I_RANGE_BIAS, FormationFilter, FormationFilterConfig
from pygnc.estimation.range_only_iod import (
    DISTINCT_M,
    IodPrior,
    IodResult,
    IodWindow,
    continuum_starts,
    fit_prior,
    look,
    orbit_distance_m,
    solve_relative_orbit,
)
from pygnc.estimation.range_only_mirrors import block_mirror, image_odds, mirror_cov, plane_mirror
from pygnc.estimation.range_only_prior import PartnerPrior, PriorComponent

if TYPE_CHECKING:
    from pygnc.estimation.tunables import RangeOnlyConfig

#: Candidates of a window fit refitted about themselves (each with its mirror image): the
#: FIT_CANDIDATES best, then up to FIT_SPREAD_CANDIDATES more of those whose cost is within
#: FIT_SPREAD_COST of the best, each the one farthest (as an orbit) from those taken - a
#: geometry whose ranges leave a continuum of orbits open (a partner standing still along
#: track, whose ranges the circular relative orbits of that radius keep too; a relative
#: ellipse about the own spacecraft) has many minima within a unit or two of cost, and the
#: best three of them had all been hundreds of metres from the truth.
FIT_CANDIDATES = 3


FIT_SPREAD_CANDIDATES = 3


FIT_SPREAD_COST = 10.0


#: A hypothesis' range log-likelihood counts its NIS up to this (5 sigma).
RANGE_LL_NIS_CAP = 25.0


#: A window's fit is accepted only if it converged and its residual RMS is within this factor
#: of what the ranges' noise and the dynamics' error in them allow (sqrt(range_sigma_m^2 +
#: side_model_sigma_m^2)): an orbit fitting a partner's ranges to 2.6 m RMS, with a 74-m range
#: bias against a 3-m prior, was 6 km off and published ok.
POOR_FIT_RMS_FACTOR = 2.0


@dataclass
class AcquisitionWindow:
    """A range-only acquisition window opened at ``t0_gps_s``: the ranges it collects, the
    own positions at their times, and the reference partner trajectory (propagated range by
    range, with its transition matrix from the window start) that the fit linearises about.

    The own positions are the own estimate at the window start *propagated*, not the
    filter's updated estimate: the ranges see the relative motion, and an own trajectory
    that jumps at each GPS fix (metres) would put those jumps into the ranges' residuals
    (the fit then prefers a mirror image kilometres off)."""

    t0_gps_s: float
    x0: np.ndarray  # reference partner state [r, v] at t0 (the prior's mean)
    p0: np.ndarray  # prior covariance of x0 (6, 6)
    how: str
    window_s: float
    ref: np.ndarray  # reference partner state (10,) at t_ref (orbit_dynamics layout)
    t_ref: float
    phi: np.ndarray  # d ref(t_ref) / d ref(t0) (10, 10)
    own: np.ndarray  # own state (9,) at t_own, propagated from the window start
    own0: np.ndarray  # own [r, v] at t0
    t_own: float
    t_gps_s: list = field(default_factory=list)
    own_r_m: list = field(default_factory=list)
    range_m: list = field(default_factory=list)
    ref_pos: list = field(default_factory=list)
    ref_jac: list = field(default_factory=list)
    #: The fit under way (a generator stepped once per call), or None.
    job: Iterator | None = None
    #: No more ranges will come (the batch ended): fitted with what it holds, converged or not.
    final: bool = False
    #: The prior the fit is regularised by (at t0; x0, p0 are its heaviest component's).
    prior: PartnerPrior | None = None

    @classmethod
    def open(cls, f: FormationFilter, t_gps_s: float, p0: np.ndarray, how: str, window_s: float) -> AcquisitionWindow:
        """A window opened at *t_gps_s* from *f*'s partner estimate (covariance *p0*)."""
        ref = np.zeros(10)
        ref[0:6] = f.x[0:6] + f.x[9:15]
        ref[9] = f.x[I_DRAG_SCALE] if f.x[I_DRAG_SCALE] > 0 else 1.0
        return cls(
            t0_gps_s=t_gps_s,
            x0=ref[0:6].copy(),
            p0=p0,
            how=how,
            window_s=window_s,
            ref=ref,
            t_ref=t_gps_s,
            phi=np.eye(10),
            own=f.x[0:9].copy(),
            own0=f.x[0:6].copy(),
            t_own=t_gps_s,
        )

    def relinearised(
        self,
        x7: np.ndarray,
        drag_scale: float,
        model: od.DynamicsModel,
        abandon: Callable[[], bool] | None = None,
    ) -> AcquisitionWindow:
        """The same window with its reference trajectory from *x7* ([partner state at the
        window start, bias]) and *drag_scale* instead: one propagation of the window.
        *abandon*: looked at before each range's step (:func:`look`)."""
        b = AcquisitionWindow(
            t0_gps_s=self.t0_gps_s,
            x0=x7[:6],
            p0=self.p0,
            how=self.how,
            window_s=self.window_s,
            ref=np.append(x7[:6], [0.0, 0.0, 0.0, drag_scale if drag_scale > 0 else 1.0]),
            t_ref=self.t0_gps_s,
            phi=np.eye(10),
            own=self.own,
            own0=self.own0,
            t_own=self.t_own,
            prior=self.prior,
        )
        for t in self.t_gps_s:
            look(abandon)
            b.record_reference(t, model)
        b.t_gps_s, b.range_m = self.t_gps_s, self.range_m
        return b

    def advance_reference(
        self, t_gps_s: float, model: od.DynamicsModel, own_model: od.DynamicsModel | None = None
    ) -> None:
        """Propagate the reference (and, with *own_model*, the own state) to *t_gps_s*."""
        if own_model is not None and t_gps_s > self.t_own:
            self.own, _ = od.propagate(self.own, t_gps_s - self.t_own, own_model, t_gps_s=self.t_own)
            self.t_own = t_gps_s
        if t_gps_s > self.t_ref:
            self.ref, step = od.propagate(self.ref, t_gps_s - self.t_ref, model, t_gps_s=self.t_ref)
            self.phi = step @ self.phi
            self.t_ref = t_gps_s

    def record_reference(
        self, t_gps_s: float, model: od.DynamicsModel, own_model: od.DynamicsModel | None = None
    ) -> None:
        """Advance the reference to *t_gps_s* and keep its position and d position / d x0."""
        self.advance_reference(t_gps_s, model, own_model)
        self.ref_pos.append(self.ref[0:3].copy())
        self.ref_jac.append(self.phi[0:3, 0:6].copy())

    def add_range(
        self, t_gps_s: float, range_m: float, model: od.DynamicsModel, own_model: od.DynamicsModel | None
    ) -> None:
        """Collect a range of the window."""
        self.record_reference(t_gps_s, model, own_model)
        self.t_gps_s.append(t_gps_s)
        self.own_r_m.append(self.own[0:3].copy())
        self.range_m.append(range_m)

    @property
    def span_s(self) -> float:
        return self.t_gps_s[-1] - self.t0_gps_s if self.t_gps_s else 0.0


def spread_candidates(candidates: list) -> list:
    """Of a fit's *candidates* ((x7, cost), the best first), those refitted: the
    FIT_CANDIDATES best, then while any is left within FIT_SPREAD_COST of the best, up to
    FIT_SPREAD_CANDIDATES more, each the one whose nearest taken candidate is farthest
    (:func:`~pygnc.estimation.range_only_iod.orbit_distance_m`) - the spread of what the
    ranges leave open, not one corner of it."""
    taken = list(candidates[:FIT_CANDIDATES])
    rest = [c for c in candidates[FIT_CANDIDATES:] if c[1] - candidates[0][1] <= FIT_SPREAD_COST]
    for _ in range(FIT_SPREAD_CANDIDATES):
        gaps = [min(orbit_distance_m(c[0], t[0]) for t in taken) for c in rest]
        if not gaps or max(gaps) <= DISTINCT_M:
            break
        taken.append(rest.pop(int(np.argmax(gaps))))
    return taken


def common_costs(a: AcquisitionWindow, hyps: list, fc: FormationFilterConfig, model_var_m2: float = 0.0) -> list:
    """*hyps* (:class:`WindowFit`) of window *a* (filter tunables *fc*) with each cost taken
    again on the same ranges: the first n, which every refit held (ranges keep arriving during the fit, one refit per
    range; a later refit would otherwise pay ~1/2 of log-odds per extra range), each
    squared normalised residual counted up to RANGE_LL_NIS_CAP (an outlier no hypothesis
    explains costs them all the same, and none leaves out the ranges that speak against
    it); plus each one's prior term (the prior mixture's density with several components).
    *model_var_m2*: the dynamics' error in a range, added to its variance as the running
    odds do (:class:`RangeModelError`): a few units of chi-square between mirror images
    are the model's, not evidence."""
    n = min(len(h.residuals_of[0].ref_pos) for h in hyps)
    z = np.asarray(a.range_m[:n], dtype=float)
    own_r = np.asarray(a.own_r_m[:n], dtype=float)
    main = a.prior.components[0] if a.prior is not None else None
    prior, _, info = fit_prior(
        a.x0 if main is None else main.x0,
        a.p0 if main is None else main.p0,
        fc.range_bias_prior_m,
        fc.range_bias_sigma_m,
    )
    mixed = a.prior is not None and len(a.prior.components) > 1
    w = 1.0 / (fc.range_sigma_m**2 + model_var_m2)
    out = []
    for _, b, r2, (bw, fit) in hyps:
        ref_pos = np.asarray(bw.ref_pos[:n], dtype=float)
        ref_jac = np.asarray(bw.ref_jac[:n], dtype=float)
        d = ref_pos + ref_jac @ (fit.x0 - bw.x0) - own_r
        res = z - (np.linalg.norm(d, axis=1) + fit.bias_m)
        chi2 = float(np.minimum(w * res * res, RANGE_LL_NIS_CAP).sum())
        if mixed and a.prior is not None:
            prior_cost = a.prior.cost(r2.x0) + (r2.bias_m - fc.range_bias_prior_m) ** 2 / fc.range_bias_sigma_m**2
        else:
            dx = np.append(r2.x0, r2.bias_m) - prior
            prior_cost = float(dx @ info @ dx)
        out.append(WindowFit(chi2 + prior_cost, b, r2, (bw, fit)))
    return out


def start_from_fit(f: FormationFilter, g: FormationFilter) -> np.ndarray:
    """Restart *f* at its current time from *g*, the filter :func:`replay_window` ran along
    a window fit's orbit through the window's ranges (the fit's orbit, its bias and that
    filter's covariance); returns the relative state's covariance.

    The fit's own covariance is not used: it takes the flight dynamics as exact over the
    window and the partner's drag scale as known, so over a 45-min window it claims the
    along-track drift to microns per second (a covariance of condition ~1e12), and a
    filter started from it reads the drift's real wander as geometry - a partner 30 km
    along-track was tracked 20-50 m off in cross-track under a 3-m sigma."""
    t = f.t_gps_s
    assert t is not None  # an initialised filter (_fit_window checks it before the start)
    f.initialize_relative(t, f.x[0:6].copy(), f.p[0:6, 0:6].copy(), g.x[9:12], g.x[12:15], g.p[9:15, 9:15])
    f.x[15:] = g.x[15:]
    f.p[9:, 9:] = g.p[9:, 9:]
    f.take_ranges_as_acquired()
    return f.p[9:15, 9:15].copy()


def replay_window(
    f: FormationFilter,
    a: AcquisitionWindow,
    res: IodResult,
    abandon: Callable[[], bool] | None = None,
    drag_scale: float | None = None,
) -> FormationFilter:
    """A filter like *f* started at window *a*'s opening on the fit *res* (partner state and
    bias) with the covariance of the prior component nearest it and the bias prior, its
    covariance updated by each range the fit kept along the fit's own trajectory
    (:meth:`FormationFilter.absorb_range_covariance`: the state is the fit's orbit
    propagated, the own orbit propagated from the window's start as the fit saw it), and
    predicted to *f*'s time: the covariance the filter would hold had it tracked the window
    along that orbit, with its process noise and drag scale (*drag_scale*, else *f*'s: the
    scale the fit assumed); the ranges' noise scaled up by the fit's reduced chi-square when
    that exceeds 1.  *abandon*: looked at before each range (:func:`look`)."""
    fc = f.config
    comp = a.prior.nearest(res.x0) if a.prior is not None else None
    p_rel0 = (comp.p0 if comp is not None else a.p0).copy()
    g = FormationFilter(fc)
    own_cov = np.diag([fc.orbit.pos_sigma_m**2] * 3 + [fc.orbit.vel_sigma_m_s**2] * 3)
    g.initialize_relative(a.t0_gps_s, a.own0, own_cov, res.x0[0:3] - a.own0[0:3], res.x0[3:6] - a.own0[3:6], p_rel0)
    k = f.x[I_DRAG_SCALE] if drag_scale is None else drag_scale
    g.x[I_DRAG_SCALE] = k if k > 0 else 1.0
    g.x[I_RANGE_BIAS] = res.bias_m
    used = res.used if res.used is not None and len(res.used) == len(a.range_m) else [True] * len(a.range_m)
    # A fit worse than the range noise says the model misses something: its ranges count for
    # less, by the fit's reduced chi-square (as the fit's own covariance did).
    n = int(np.sum(used))
    chi2_red = (res.rms_m / fc.range_sigma_m) ** 2 * n / max(n - 7, 1) if math.isfinite(res.rms_m) else 1.0
    sigma_m = fc.range_sigma_m * math.sqrt(max(1.0, chi2_red))
    for t, ok in zip(a.t_gps_s, used):
        if ok:
            look(abandon)
            g.predict_to(g.range_base_time(t))
            g.absorb_range_covariance(t, sigma_m)
    t_f = f.t_gps_s
    assert t_f is not None  # an initialised filter (the window's owner's)
    g.predict_to(t_f)
    return g


class WindowFit(NamedTuple):
    """A candidate orbit of a window fit: its *cost* (-2 log of its likelihood and prior,
    comparable among the candidates once :func:`common_costs` has taken them on the same
    ranges), the *window* linearised about it, the *fit*, and the window and fit whose range
    residuals stand for it (*residuals_of*: an exact mirror image's are its original's)."""

    cost: float
    window: AcquisitionWindow
    fit: IodResult
    residuals_of: tuple


class WindowFitting:
    """The window fit of :class:`~pygnc.estimation.range_only.PartnerHypotheses` (its
    :attr:`window`, :attr:`filter`, :attr:`config`, notes and counters): a generator stepped
    once per range, so that no call blocks the task for long."""

    # Held by the class this is a part of (PartnerHypotheses):
    window: AcquisitionWindow | None
    filter: FormationFilter
    alts: list
    config: RangeOnlyConfig
    filter_config: FormationFilterConfig
    notes: list[tuple[str, str]]
    n_extensions: int
    image_odds: tuple[float, float, float]
    abandon: Callable[[], bool] | None

    if TYPE_CHECKING:

        @property
        def name(self) -> str: ...

        def lose(self, t_gps_s: float, note: tuple[str, str] | None = None) -> None: ...

        def _start_hypotheses(self, hyps: list) -> None: ...

    def _fit_window(self) -> Iterator[None]:
        """Fit the partner's orbit to the window's ranges and start the filters from the fit
        at the filter's current time: a generator that yields after each refit's window
        propagation, so that no call blocks the task for long (on a Pi one propagation of a
        45-min window is 1-3 s; the whole fit would be 5-10 s).  The last step replays the
        window along each kept orbit (:func:`replay_window`); every window propagation looks
        at :attr:`abandon` between ranges (:func:`look`: pings answered, a stop seen).
        Ranges arriving meanwhile join the window (each refit uses all it holds)."""
        a, f, c = self.window, self.filter, self.config
        assert a is not None  # begin_fit makes this job of the open window and steps it at once
        if len(a.range_m) < c.min_ranges:
            self.window = None
            self.notes.append(
                (
                    "range_only_short",
                    f"{self.name}: {len(a.range_m)} ranges in the window, fewer than "
                    f"{c.min_ranges}: relative state from the prior only",
                )
            )
            return
        yield from self._prior_as_held_now(a)
        assert a.prior is not None  # every window opened has one (start, open_restart_window)
        # Each of the prior's components is fitted from its own starts (the prior's mean, its
        # mirror images, draws from it), regularised by itself; with several, each
        # candidate's cost counts the whole mixture's density instead.
        candidates: list[tuple[np.ndarray, float]] = []
        for comp in a.prior.components:
            res = self._solve(a, a, a.x0, comp)
            if len(a.prior.components) == 1:
                candidates = res.candidates
                break
            for x7, cost in res.candidates:
                d = x7[:6] - comp.x0
                candidates.append((x7, cost - float(d @ np.linalg.solve(comp.p0, d)) + a.prior.cost(x7[:6])))
        if len(a.prior.components) > 1:
            candidates.sort(key=lambda cand: cand[1])
            distinct: list[tuple[np.ndarray, float]] = []
            for cand in candidates:
                if all(orbit_distance_m(cand[0], d[0]) > DISTINCT_M for d in distinct):
                    distinct.append(cand)
            candidates = distinct
        # Each start's fit once more, linearised about itself: the dynamics' linearisation
        # error (metres per km of prior error over the window) falls to centimetres, and
        # only then do the candidates' costs say which the ranges and the prior prefer.
        hyps = []  # WindowFit
        for x7, _ in spread_candidates(candidates):
            yield
            b, r2 = self._refit(a, x7)
            hyps.append(WindowFit(r2.candidates[0][1], b, r2, (b, r2)))
        # The point mirror keeps every range to first order, and the multistart does not
        # always reach its basin when the prior is far from both (a restart after a close
        # approach: every candidate near the point mirror, the basin 33 m from the truth
        # found only from the best one's point mirror).  Refitted from there; a refit that
        # slides back to a minimum already held is dropped below.
        best = min(hyps, key=lambda h: h.cost).fit
        x = np.append(2.0 * a.own0 - best.x0, best.bias_m)
        if all(orbit_distance_m(x[:6], h.fit.x0) > DISTINCT_M for h in hyps):
            yield
            b2, r3 = self._refit(a, x)
            hyps.append(WindowFit(r3.candidates[0][1], b2, r3, (b2, r3)))
        # A partner circling the own spacecraft has a continuum of orbits with the same
        # ranges (continuum_starts): fitted from members spread along it too, so that what
        # the ranges leave open is seen (unresolved_m), not one member taken for the truth
        # (a partner 2 km from the own spacecraft in a 3e-4 eccentricity ellipse was
        # published ok 2-5 km off under a 2-m sigma).
        for xs in continuum_starts(a.own0, best.x0):
            if all(orbit_distance_m(xs, h.fit.x0) > DISTINCT_M for h in hyps):
                yield
                b3, r4 = self._refit(a, np.append(xs, best.bias_m))
                hyps.append(WindowFit(r4.candidates[0][1], b3, r4, (b3, r4)))
        # Which side of the own orbit plane: each candidate's mirror image is fitted too.
        for _, b, r2, _ in list(hyps):
            yield
            hyps.append(self._mirror_fit(a, b, r2))
        if self.window is not a or not f.initialized:
            return  # the window was replaced meanwhile (restart, gap): this fit is moot
        hyps = common_costs(a, hyps, self.filter_config, c.side_model_sigma_m**2)
        hyps.sort(key=lambda h: h.cost)
        self.image_odds = image_odds(a, hyps[0].fit.x0)
        fits = self._fits_its_ranges(hyps[0].fit)
        if not fits and not a.final and a.window_s + c.window_s / 3.0 <= c.max_window_s + 1e-6:
            # Not converged: the cost is a long curved valley the window's ranges hardly
            # constrain along, and each start stops somewhere on it with a needle-shaped
            # covariance whose length is the valley's local curvature, not the data's; the
            # filters' range likelihoods would then favour the shortest needle, on either
            # side.  More ranges (a longer arc, new geometry) first.
            a.window_s += c.window_s / 3.0
            a.job = None
            self.n_extensions += 1
            if self.n_extensions == 1:
                self.notes.append(
                    (
                        "range_only_window_extended",
                        f"{self.name}: the fit of {len(a.range_m)} ranges over {a.span_s:.0f} s did not "
                        f"converge: fitted again with the ranges of {a.window_s:.0f} s",
                    )
                )
            return
        if not fits and not a.final:
            # The longest window's best orbit does not fit its ranges (a geometry its starts
            # did not reach): not started on it - acquired again, from the prior, carried.
            res = hyps[0].fit
            self.window = None
            t_f = f.t_gps_s
            assert t_f is not None  # initialised: checked above, with no yield since
            self.lose(
                t_f,
                (
                    "range_only_poor_fit",
                    f"{self.name}: no orbit fits the {len(a.range_m)} ranges of {a.span_s:.0f} s (best "
                    f"residual rms {res.rms_m:.2f} m, bias {res.bias_m:.1f} m): not used, acquired again",
                ),
            )
            return
        # Starts that the refits brought to the same minimum are that minimum once (its
        # weight is its cost's, not times the starts that found it); told apart as orbits,
        # not positions (a partner crossing the own orbit plane at the window start has its
        # mirror image there).
        distinct_fits: list[WindowFit] = []
        for h in hyps:
            if all(orbit_distance_m(h.fit.x0, d.fit.x0) > DISTINCT_M for d in distinct_fits):
                distinct_fits.append(h)
        hyps = distinct_fits
        self._start_hypotheses(hyps)

    def _fits_its_ranges(self, res: IodResult) -> bool:
        """A window fit that converged with a residual RMS the ranges' noise and the
        dynamics' error in them explain (POOR_FIT_RMS_FACTOR)."""
        allowed = math.hypot(self.filter_config.range_sigma_m, self.config.side_model_sigma_m)
        return bool(res.converged and res.rms_m <= POOR_FIT_RMS_FACTOR * allowed)

    def _prior_as_held_now(self, a: AcquisitionWindow) -> Iterator[None]:
        """Regularise the fit with the prior as the filters hold it at the window's end: each
        component's filter has taken the window's own fixes, and an absolute prior's relative
        state is correlated with the own one, so the own estimate's gains carry over to it
        (the window opened on one fix's own state; its error would otherwise stay in the
        components the ranges hardly see - cross-track at a long along-track separation).
        Mapped back to the window start along each component's own transition matrix (the
        window's reference is the heaviest one's; a point mirror tens of km from it, mapped
        along that one, came back hundreds of metres off and lost its side to the prior's
        cost).  A generator: it yields after each extra component's window propagation.

        Only when every component's filter is at the window's end; else the prior as it
        opened.  The alternatives take only the own fixes during the window, so with ranges
        between fixes a prior of several components stays as it opened (kept so: mapping
        it too made the geometry sweep's confirmed-TLE cells less consistent, CHANGELOG)."""
        fs = [self.filter] + [h.filter for h in self.alts]
        if (
            a.prior is None
            or len(fs) != len(a.prior.components)
            or abs(a.t_own - a.t_ref) > 1e-6
            or any(abs(g.t_gps_s - a.t_ref) > 1e-6 for g in fs)
        ):
            return  # (a restart's window, or filters moved on: the prior as it opened)
        comps = []
        for k, (c, g) in enumerate(zip(a.prior.components, fs)):
            if k == 0:
                x_ref0, ref, phi = a.x0, a.ref, a.phi
            else:
                yield
                x_ref0 = c.x0
                xs = np.append(c.x0, [0.0, 0.0, 0.0, a.ref[9]])
                ref, phi = od.propagate(
                    xs,
                    a.t_ref - a.t0_gps_s,
                    self.filter.peer_model,
                    t_gps_s=a.t0_gps_s,
                    before_step=lambda: look(self.abandon),
                )
            inv = np.linalg.inv(phi[:6, :6])
            x0 = x_ref0 + inv @ (a.own[0:6] + g.x[9:15] - ref[0:6])
            p0 = inv @ g.p[9:15, 9:15] @ inv.T
            comps.append(PriorComponent(c.weight, x0, 0.5 * (p0 + p0.T), c.label))
        a.prior = PartnerPrior(a.prior.t_gps_s, comps, a.prior.how)

    def _refit(self, a: AcquisitionWindow, x7: np.ndarray) -> tuple:
        """Window *a*'s ranges fitted from the start *x7* ([partner state at the window
        start, bias]) linearised about *x7*'s own trajectory: (that window, the fit)."""
        f = self.filter
        b = a.relinearised(x7, float(f.x[I_DRAG_SCALE]), f.peer_model, self.abandon)
        assert a.prior is not None  # every window opened has one (start, open_restart_window)
        comp = a.prior.nearest(x7[:6])
        return b, self._solve(a, b, x7[:6], comp, starts=[x7])

    def _solve(
        self,
        a: AcquisitionWindow,
        ref: AcquisitionWindow,
        x_ref0: np.ndarray,
        comp: PriorComponent,
        starts: list[np.ndarray] | None = None,
    ) -> IodResult:
        """The ranges of window *a* fitted about *ref*'s reference trajectory (which starts at
        *x_ref0*), regularised by the prior component *comp*
        (:func:`~pygnc.estimation.range_only_iod.solve_relative_orbit`)."""
        fc = self.filter_config
        return solve_relative_orbit(
            IodWindow(
                x_ref0,
                np.array(ref.ref_pos),
                np.array(ref.ref_jac),
                np.array(a.own_r_m),
                np.array(a.range_m),
                fc.range_sigma_m,
            ),
            IodPrior(comp.x0, comp.p0, fc.range_bias_prior_m, fc.range_bias_sigma_m),
            starts=starts,
            abandon=self.abandon,
        )

    def _mirror_fit(self, a: AcquisitionWindow, b: AcquisitionWindow, r2: IodResult) -> WindowFit:
        """The candidate (:class:`WindowFit`) of the mirror image in the own orbit plane of the
        fit *r2* (window *b*): fitted again from the reflected start if that keeps a distinct
        minimum on the other side; else (the mirror slid back: the cross-track offset is
        within the valley's width) the exact mirror image, whose range cost is the fit's, so
        the prior alone sets the odds."""
        o = a.own0
        m3 = plane_mirror(o)
        x = np.append(o + block_mirror(6, m3) @ (r2.x0 - o), r2.bias_m)
        bm, rm = self._refit(a, x)
        h = np.cross(o[0:3], o[3:6])
        if (
            float(np.linalg.norm(rm.x0[0:3] - r2.x0[0:3])) > DISTINCT_M
            and float((rm.x0[0:3] - o[0:3]) @ h) * float((r2.x0[0:3] - o[0:3]) @ h) < 0.0
        ):
            return WindowFit(rm.candidates[0][1], bm, rm, (bm, rm))
        rm = dataclasses.replace(r2, x0=x[0:6], cov=mirror_cov(r2.cov, m3))
        return WindowFit(r2.candidates[0][1], b, rm, (b, r2))  # (its cost with its own prior: common_costs)
