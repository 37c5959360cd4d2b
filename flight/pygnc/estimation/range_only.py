"""Range-only navigation of one partner: the orbits it may fly, and their odds.

With no partner fix, the partner's orbit is fitted once to a window of ranges
(:mod:`pygnc.estimation.range_only_window`, the fit itself
:mod:`pygnc.estimation.range_only_iod`) from its prior
(:mod:`pygnc.estimation.range_only_prior`) and then tracked by a
:class:`~pygnc.estimation.formation_filter.FormationFilter` on ranges alone.  Ranges leave
mirror images open - the reflection of the relative path in the own orbit plane, and its
point mirror (-dr, -dv), keep every range to first order
(:mod:`pygnc.estimation.range_only_mirrors`) - and a window can fit other minima about as
well, so a partner is a set of hypotheses (:class:`PartnerHypotheses`, this module's
bookkeeping): the most likely orbit's filter and alternative filters with their log-odds,
moved by every range and pruned or merged as the ranges decide.  Estimates are their
mixture (:func:`~pygnc.estimation.range_only_mirrors.mix`).

Pure computation on plain arrays (GCRS, SI, GPS seconds); notes for the operator are
returned as ``(code, text)`` pairs in :attr:`PartnerHypotheses.notes`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pygnc.estimation.formation_filter import I_DRAG_SCALE, FormationFilter, FormationFilterConfig
from pygnc.estimation.gps_fix import GpsFix
from pygnc.estimation.range_only_iod import FitAbandoned
from pygnc.estimation.range_only_mirrors import (
    MIRROR_D2,
    POINT_MIRROR,
    SIDE_DECIDED_LLR,
    images_among,
    merge_into,
    mirror_image_blocks,
    mirrored,
    same_orbit,
    unresolved_spread_m,
)
from pygnc.estimation.range_only_prior import PartnerPrior, PriorCarry, PriorComponent
from pygnc.estimation.range_only_window import (
    FIT_SPREAD_COST,
    RANGE_LL_NIS_CAP,
    AcquisitionWindow,
    WindowFitting,
    replay_window,
    start_from_fit,
)
from pygnc.estimation.tunables import RangeOnlyConfig


@dataclass
class Track:
    """What the odds keep of one hypothesis besides its filter: its estimate of the
    dynamics' error in the ranges (:class:`RangeModelError`), m, and the log-likelihood it
    has lost, against the best of those that used them, to the ranges its filter rejected in
    a row (given back if its side is taken up again: :meth:`PartnerHypotheses.prune`)."""

    model_error_m: float = 0.0
    rejected_nats: float = 0.0


@dataclass
class Hypothesis:
    """An alternative orbit of a partner: its filter, the log-likelihood ratio of the
    partner's most likely filter over it (the window fit's cost and every range since), and
    its :class:`Track`."""

    filter: FormationFilter
    llr: float
    track: Track = field(default_factory=Track)


class PartnerHypotheses(WindowFitting):
    """The orbits one partner may fly: :attr:`filter` (the most likely) and :attr:`alts`,
    the acquisition :attr:`window` while one is open, and the :attr:`prior` a range-only
    start began from.

    The owner sets :attr:`on_change`: called before the filters are replaced, merged or
    reordered (estimates waiting on the filters' taps must go out first) and so that copies
    of them (cursors) are taken again."""

    def __init__(self, filter_config: FormationFilterConfig, config: RangeOnlyConfig | None = None, peer_id: int = 0):
        self.filter_config = filter_config
        self.config = config or RangeOnlyConfig()
        self.peer_id = peer_id
        self.filter = FormationFilter(filter_config)
        self.alts: list[Hypothesis] = []
        #: The dynamics' error in the ranges as the odds count it, and the filter's :class:`Track`.
        self.model_error = RangeModelError(self.config.side_model_sigma_m, self.config.side_model_tau_s)
        self.track = Track()
        self.window: AcquisitionWindow | None = None
        self.prior: PartnerPrior | None = None
        #: A restart's prior being carried to the data (:meth:`lose`).
        self.carry: PriorCarry | None = None
        #: (code, text) notes for the operator, taken by the owner.
        self.notes: list[tuple[str, str]] = []
        self.on_change: Callable[[], None] = lambda: None
        #: Says a fit's result is not wanted any more (the flight task stops): a fit under
        #: way gives up, to be begun again if the window is fitted later.  None: never.
        self.abandon: Callable[[], bool] | None = None
        self.n_starts = 0
        self.n_ranges_fitted = 0
        self.n_restarts = 0
        self.n_extensions = 0  # acquisition windows lengthened (a fit that did not converge)
        self.n_mirrors_taken_up = 0  # sides kept as a point mirror after their orbits lost the ranges
        self._mirror_noted = False
        #: The odds of the best fitted orbit's mirror images (in the own orbit plane, its point
        #: mirror, both) against it from the last window's fit: its prior's, as the ranges
        #: cannot tell them apart; 0 for one the prior excluded (e^-SIDE_DECIDED_LLR or less).
        #: The published estimate keeps each image with odds whenever no kept orbit stands for
        #: it (:func:`with_mirror_images`).
        self.image_odds = (0.0, 0.0, 0.0)
        #: How far apart the last window's fit found orbits that fit its ranges about as
        #: well (within FIT_SPREAD_COST of the best) and are not mirror images of it [m]: a
        #: continuum of orbits with the same ranges (a partner circling the own spacecraft,
        #: or standing still close behind).  Later ranges cannot tell them apart by more
        #: than the dynamics' own error, so the published ambiguity is never below it until
        #: the next fit (:func:`unresolved_spread_m`).
        self.unresolved_m = 0.0
        #: Once the filter has lost its partner (:meth:`lose`) and until a window is fitted
        #: again, the latest range heard, m (the lost filter's last - NaN if none - then the
        #: restart window's): its estimate, the lost one's propagated, says only what the
        #: range does (:func:`~pygnc.estimation.range_only_mirrors.with_the_range_only`).
        #: None while the track is not lost.
        self.lost_range_m: float | None = None

    @property
    def name(self) -> str:
        return f"peer 0x{self.peer_id:02X}"

    # ------------------------------------------------------------------ weights and mixtures
    def weights(self) -> tuple:
        """(weight of the filter, weights of the alternatives): the posterior probabilities."""
        if not self.alts:
            return 1.0, ()
        e = [math.exp(-min(h.llr, 700.0)) for h in self.alts]
        w0 = 1.0 / (1.0 + sum(e))
        return w0, tuple(w0 * x for x in e)

    def alternatives_at(self, t_gps_s: float) -> list[FormationFilter]:
        """The alternatives' filters, each predicted to *t_gps_s* if it is behind."""
        out = []
        for h in self.alts:
            t_h = h.filter.t_gps_s
            assert t_h is not None  # alternatives are started filters (_start_hypotheses)
            if t_h < t_gps_s - 1e-6:
                h.filter.predict_to(t_gps_s)
            out.append(h.filter)
        return out

    def _new_hypotheses(self) -> None:
        """The hypotheses have just been made: nothing is known yet of their model error."""
        self.model_error.reset()
        self.track = Track()

    # ------------------------------------------------------------------ start and restart
    def window_length_s(self, p0: np.ndarray) -> float:
        """The acquisition window for a prior of partner covariance *p0*: the short one when
        its position is known well enough that one basin of the fit holds every start."""
        c = self.config
        sigma = math.sqrt(max(0.0, float(np.linalg.eigvalsh(0.5 * (p0[:3, :3] + p0[:3, :3].T))[-1])))
        return c.short_window_s if sigma <= c.short_window_max_sigma_m else c.window_s

    def start(
        self, t_gps_s: float, how: str, main_weight: float = 1.0, main_label: str = "prior", others: tuple = ()
    ) -> None:
        """Open the acquisition window at *t_gps_s* from the filter as just initialised from
        the prior's heaviest component (weight *main_weight*); *others*: (weight, partner
        GCRS state (6,), label[, relative covariance (6, 6)]) of its other components, each
        kept as an alternative filter (the same covariance, shifted, unless it gives its own)
        with its prior odds until the window is fitted."""
        f = self.filter
        self.alts = []
        self._new_hypotheses()
        self.image_odds = (0.0, 0.0, 0.0)
        self.unresolved_m = 0.0
        self.carry = None
        self.lost_range_m = None
        self.n_starts += 1
        # The window fits the partner as the ranges see it from the own estimate at the window
        # start (own estimate + relative state): its prior covariance is the relative state's
        # (an absolute prior's with the own estimate's error in it, a relative prior's alone).
        p0 = f.p[9:15, 9:15].copy()
        w = AcquisitionWindow.open(f, t_gps_s, p0, how, self.window_length_s(p0))
        comps = [PriorComponent(main_weight, w.x0.copy(), w.p0.copy(), main_label)]
        for weight, x6, label, *cov in others:
            x6 = np.asarray(x6, dtype=float)
            alt = copy.deepcopy(f)
            alt.x[9:15] = x6 - f.x[0:6]
            if cov:
                alt.p[9:15, 9:15] = np.asarray(cov[0], dtype=float)
            comps.append(PriorComponent(weight, x6.copy(), alt.p[9:15, 9:15].copy(), label))
            self.alts.append(Hypothesis(alt, math.log(main_weight / weight)))
        w.prior = self.prior = PartnerPrior(t_gps_s, comps, how)
        self.window = w

    def lose(self, t_gps_s: float, note: tuple[str, str] | None = None) -> None:
        """The ranges keep failing the gate (the filter has lost the partner): the orbit is
        fitted again from the prior the partner started from, carried to now (:attr:`carry`,
        then :meth:`open_restart_window`) - not about the estimate it lost (wrong by then,
        and a 1-km prior about it kept the fit in that estimate's basin, e.g. a point-mirror
        orbit).  No bias re-opening: with no partner fix nothing would pull a wrong bias
        back.  Until the new window's fit the estimates are the lost filter's, propagated,
        its relative covariance scaled so that the ranges it rejected are one sigma
        (:meth:`FormationFilter.inflate_to_rejected_ranges`).  *note*: the operator's note
        instead of the rejected ranges' (the first restart's only)."""
        f = self.filter
        self.on_change()
        f.predict_to(t_gps_s)  # (the range may have been applied ahead of the filter time)
        scale = f.inflate_to_rejected_ranges()
        f.take_ranges_as_acquired()
        self.alts = []
        self._new_hypotheses()
        self.image_odds = (0.0, 0.0, 0.0)
        self.unresolved_m = 0.0
        self.lost_range_m = f.last_range_m
        self.n_restarts += 1
        c = self.config
        prior = self.prior or PartnerPrior(
            t_gps_s,
            [
                PriorComponent(
                    1.0,
                    f.x[0:6] + f.x[9:15],
                    np.diag([c.prior_sigma_pos_m**2] * 3 + [c.prior_sigma_vel_m_s**2] * 3),
                    "the estimate it lost",
                )
            ],
            "the estimate it lost",
        )
        self.carry = PriorCarry(prior, t_gps_s, f.peer_model)
        if note is not None:
            self.notes.append(note)
        elif self.n_restarts == 1:
            self.notes.append(
                (
                    "range_only_restart",
                    f"{self.name}: ranges rejected {f.config.max_consecutive_range_rejections} times in a "
                    f"row: its orbit is fitted again (until then its sigma is {math.sqrt(scale):.1f} times "
                    "what the filter held)",
                )
            )

    def open_restart_window(self, t_gps_s: float, range_m: float) -> None:
        """The window of a restart (:meth:`lose`), once its prior has been carried to
        *t_gps_s* (the filter's time), with the range of that time.  The lost track is
        evidence against the side the prior chose: its main component and that one's point
        mirror weigh the same in the new fit."""
        f = self.filter
        carry = self.carry
        assert carry is not None  # lose() set it; the processor calls this while it is set
        carried = carry.result()
        self.carry = None
        how = f"{carried.how}, carried to the restart"
        self.window = w = AcquisitionWindow.open(f, t_gps_s, carried.p0, how, self.window_length_s(carried.p0))
        w.x0 = carried.x0.copy()
        w.ref[0:6] = carried.x0
        main = carried.components[0]
        w.prior = PartnerPrior(
            t_gps_s,
            [
                PriorComponent(0.5, main.x0, main.p0, main.label),
                PriorComponent(0.5, 2.0 * f.x[0:6] - main.x0, main.p0, "its point mirror"),
            ],
            how,
        )
        self.add_window_range(t_gps_s, range_m)

    # ------------------------------------------------------------------ the window
    def _open_window(self) -> AcquisitionWindow:
        """:attr:`window` where the caller's order guarantees one is open (the processor calls
        the methods below only while it is; without one they failed on None before)."""
        assert self.window is not None, "no acquisition window open"
        return self.window

    def add_window_range(self, t_gps_s: float, range_m: float) -> None:
        """Collect a range of the open window (the filter is at *t_gps_s*); begin the fit
        when the window is complete, or take the fit under way one step further."""
        w, f = self._open_window(), self.filter
        w.add_range(t_gps_s, range_m, f.peer_model, f.own_model)
        if self.lost_range_m is not None:
            self.lost_range_m = range_m
        if w.job is not None:
            self.step_fit()
        elif t_gps_s - w.t0_gps_s >= w.window_s and len(w.range_m) >= self.config.min_ranges:
            self.begin_fit()

    def begin_fit(self) -> None:
        """Begin fitting the window: the cheap part now, one window propagation per later
        call (:meth:`step_fit`: the next range, or the propagation after the batch)."""
        self._open_window().job = self._fit_window()
        self.step_fit()

    def step_fit(self) -> None:
        """One step of the window fit (at most one window propagation)."""
        job = self._open_window().job
        assert job is not None  # begin_fit made it; the processor steps only a fit under way
        try:
            next(job)
        except StopIteration:
            pass
        except FitAbandoned:
            if self.window is not None:
                self.window.job = None

    def finish_window(self) -> None:
        """No more ranges will come (the batch ended): fit what the window holds."""
        w = self._open_window()
        w.final = True
        if w.job is None:
            self.begin_fit()

    def _start_hypotheses(self, hyps: list) -> None:
        """The filter and its alternatives started from the window's distinct fits *hyps*
        (:class:`~pygnc.estimation.range_only_window.WindowFit`, the best first), each kept
        with its odds while within e^SIDE_DECIDED_LLR of the best."""
        f = self.filter
        window = self.window
        self.window = None
        self.on_change()
        cost0, a, res, _ = hyps[0]
        # Every candidate within e^SIDE_DECIDED_LLR of the best is kept as a filter with its
        # odds (its mirror image always, other minima a close pair's window fits about as
        # well); the later ranges decide.  Each one's window is replayed first (a stop or a
        # ping is looked at between the ranges; nothing is changed until all are done); the
        # alternatives' with the drag scale the started filter holds.
        kept = [(cost, b, r2) for cost, b, r2, _ in hyps[1:] if (cost - cost0) / 2.0 < SIDE_DECIDED_LLR]
        try:
            g0 = replay_window(f, a, res, self.abandon)
            gs = [replay_window(f, b, r2, self.abandon, float(g0.x[I_DRAG_SCALE])) for _, b, r2 in kept]
        except FitAbandoned:
            self.window = window  # (begun again later, if ever)
            raise
        self.unresolved_m = unresolved_spread_m(
            a.own0, res.x0, [h.fit.x0 for h in hyps[1:] if h.cost - cost0 <= FIT_SPREAD_COST]
        )
        self.n_ranges_fitted += int(res.used.sum())
        self.lost_range_m = None
        cov_peer = start_from_fit(f, g0)
        self.alts = []
        self._new_hypotheses()
        for (cost, _, _), g in zip(kept, gs):
            alt = copy.deepcopy(f)
            start_from_fit(alt, g)
            self.alts.append(Hypothesis(alt, (cost - cost0) / 2.0))
        self.prune(noted=False)
        w0 = self.weights()[0]
        if w0 < 0.99 and not self._mirror_noted:
            self._mirror_noted = True
            self.notes.append(
                (
                    "range_only_mirror",
                    f"{self.name}: the window's ranges fit {len(self.alts) + 1} orbits about as well "
                    "(mirror images, or orbits of a continuum with the same ranges; "
                    f"{w0:.2f} for the best): all are kept, "
                    "estimates are their mixture (its sigma covers them) until the ranges or an uplinked "
                    "prior decide",
                )
            )
        if self.n_starts == 1 or not res.converged:
            sig = math.sqrt(max(0.0, float(np.trace(cov_peer[:3, :3]))))
            self.notes.append(
                (
                    "range_only_start" if res.converged else "range_only_poor_fit",
                    f"{self.name}: no partner fix (range GPS source 'own'); orbit fitted to "
                    f"{int(res.used.sum())} of {len(a.range_m)} ranges over {a.span_s:.0f} s from "
                    f"{a.how}: residual rms {res.rms_m:.2f} m, sigma {sig:.1f} m 3D"
                    + ("" if res.converged else " (did not converge)"),
                )
            )

    # ------------------------------------------------------------------ tracking
    def own_fix(self, fix: GpsFix, gcrs: tuple[np.ndarray, np.ndarray] | None) -> None:
        """An own fix (already converted, *gcrs*) on every alternative too."""
        for h in self.alts:
            h.filter.predict_to(fix.t_gps_s)
            h.filter.update_own_fix(fix, gcrs=gcrs)

    def range_on_alternatives(self, t_gps_s: float, range_m: float) -> None:
        """A range the filter has just used (or rejected) on every alternative too; each
        one's likelihood against the filter's moves its odds, then :meth:`prune`."""
        for h in self.alts:
            h.filter.predict_to(h.filter.range_base_time(t_gps_s))
            h.filter.update_range(t_gps_s, range_m)
        fs = [self.filter] + [h.filter for h in self.alts]
        tracks = [self.track] + [h.track for h in self.alts]
        lls, errors = self.model_error.log_likelihoods(t_gps_s, fs, [tr.model_error_m for tr in tracks])
        # (a filter rejecting the ranges keeps their innovations until it uses one again,
        # also once it has lost them)
        holding = [ll for f, ll in zip(fs, lls) if not f.range_rejected_nu_m and math.isfinite(ll)]
        for f, tr, ll, m in zip(fs, tracks, lls, errors):
            tr.model_error_m = m
            if not f.range_rejected_nu_m:
                tr.rejected_nats = 0.0
            elif holding and math.isfinite(ll):
                tr.rejected_nats += max(0.0, max(holding) - ll)
        imaged = images_among(mirror_image_blocks(self.filter), [h.filter for h in self.alts], MIRROR_D2)
        for h, ll, is_image in zip(self.alts, lls[1:], imaged):
            d = lls[0] - ll
            if math.isfinite(d) and not is_image:
                h.llr += d  # (a mirror image of the filter keeps the odds it had: the ranges cannot tell them apart)
        self.prune()

    def prune(self, noted: bool = True) -> None:
        """Keep the hypotheses within e^SIDE_DECIDED_LLR of the most likely one that still
        tracks the ranges, merge those that have come together (their relative states within
        MERGE_D2 of each other: the heavier one takes the pair's mean, covariance and
        weight), and make the most likely the filter.  A filter that has lost the ranges is
        dropped while an alternative still holds them (else the owner restarts); its side is
        taken up again by a point mirror (:meth:`_take_up_point_mirrors`), as is the side of
        one pruned by the ranges its filter rejected."""
        if not self.alts:
            return
        f = self.filter
        hyps = [(f, 0.0, self.track)] + [(h.filter, -h.llr, h.track) for h in self.alts]  # (filter, log weight, track)
        alive = [h for h in hyps if h[0].range_acquired]
        if not alive:
            self.alts = []
            return
        top = max(h[1] for h in alive)
        kept: list[list] = []
        lost = [h for h in hyps if not h[0].range_acquired]
        for g, lw, tr in sorted(alive, key=lambda h: -h[1]):
            if top - lw >= SIDE_DECIDED_LLR:
                if tr.rejected_nats > 0.0:  # its odds fell with the ranges its filter rejected
                    lost.append((g, lw, tr))
                continue
            for k in kept:
                if same_orbit(k[0], g):  # (the heavier one's track stands)
                    merge_into(k[0], 1.0 / (1.0 + math.exp(lw - k[1])), g)
                    k[1] = float(np.logaddexp(k[1], lw))
                    break
            else:
                kept.append([g, lw, tr])
        if lost:
            self._take_up_point_mirrors(kept, lost)
        main, lw0, self.track = kept[0]
        if [k[0] for k in kept] != [h[0] for h in hyps]:
            self.on_change()
        self.filter = main
        self.alts = [Hypothesis(g, lw0 - lw, tr) for g, lw, tr in kept[1:]]
        if noted and not self.alts:
            self.notes.append(
                (
                    "range_only_side",
                    f"{self.name}: the ranges have decided between the orbits its "
                    "window fitted (and on which side of the own orbit plane it flies)",
                )
            )

    def _take_up_point_mirrors(self, kept: list, lost: list) -> None:
        """*lost* hypotheses (filter, log weight, track) whose filters lost the ranges, or
        whose odds fell with the ranges they rejected, while the *kept* ones ([filter, log
        weight, track], heaviest first) hold them.  The point mirror of the most likely orbit
        keeps every range to first order, so the side of the lost ones nearer it than to that
        orbit stays open (a filter started off the truth there can still diverge): it is kept
        as that point mirror, with the weight the lost ones had while they held the ranges -
        unless a kept orbit is there already or it weighs under e^-SIDE_DECIDED_LLR of the
        best.  *kept* is left heaviest first."""
        main = kept[0][0]
        image = mirrored(main, POINT_MIRROR)  # (looked at; copied whole only if kept)
        lw = -math.inf
        for g, lw_g, tr in lost:
            if np.linalg.norm(g.x[9:12] - image.x[9:12]) < np.linalg.norm(g.x[9:12] - main.x[9:12]):
                lw = float(np.logaddexp(lw, lw_g + tr.rejected_nats))
        if kept[0][1] - lw >= SIDE_DECIDED_LLR or any(same_orbit(k[0], image, MIRROR_D2) for k in kept):
            return
        kept.append([mirrored(main, POINT_MIRROR, own=True), lw, Track(model_error_m=kept[0][2].model_error_m)])
        kept.sort(key=lambda k: -k[1])
        self.n_mirrors_taken_up += 1
        if self.n_mirrors_taken_up == 1:
            self.notes.append(
                (
                    "range_only_point_mirror",
                    f"{self.name}: the orbits on one side lost the ranges; that side is kept as the point "
                    "mirror of the most likely orbit (the ranges cannot tell the two apart)",
                )
            )


# ---------------------------------------------------------------------- hypothesis algebra


@dataclass
class RangeModelError:
    """The flight dynamics' error in a range, as the hypotheses' odds count it: a first-order
    Gauss-Markov process (*sigma_m*, correlation time *tau_s*) that each hypothesis estimates
    from its own innovations, with one variance :attr:`var_m2` for all.  The error is
    correlated along the orbit: counted as white, an innovation difference between two
    hypotheses that stays a fraction of it would be evidence anew in every range (a close
    partner's wrong orbit, its innovations 0.1-0.2 m from the true one's, reached odds of
    e^20 within an hour).  *tau_s* = 0: white."""

    sigma_m: float
    tau_s: float
    var_m2: float = math.nan
    t_gps_s: float = math.nan

    def reset(self) -> None:
        """New hypotheses: nothing known of their model error (its stationary variance)."""
        self.var_m2, self.t_gps_s = self.sigma_m**2, math.nan

    def log_likelihoods(self, t_gps_s: float, fs: list, errors_m: list) -> tuple[list, list]:
        """(log-likelihoods, model-error estimates) of the range at *t_gps_s* under each
        hypothesis' filter in *fs*, whose model-error estimates were *errors_m*.  Each one's
        innovation less its predicted model error is judged on one variance: the largest
        innovation variance of theirs plus the model error's (mirror images carry the same
        information to first order; judged each on its own variance, the log-determinant
        term would move the odds towards the one linearised narrower).  A squared residual
        counts up to RANGE_LL_NIS_CAP, and one past it does not move the estimate."""
        if not math.isfinite(self.var_m2):
            self.reset()
        dt = t_gps_s - self.t_gps_s if math.isfinite(self.t_gps_s) else math.inf
        phi = math.exp(-max(0.0, dt) / self.tau_s) if self.tau_s > 0.0 else 0.0
        var_pred = phi * phi * self.var_m2 + (1.0 - phi * phi) * self.sigma_m**2
        usable = [math.isfinite(f.last_nu_m) and float(f.last_s[0, 0]) > 0.0 for f in fs]
        ss = [float(f.last_s[0, 0]) for f, ok in zip(fs, usable) if ok]
        if not ss or not math.isfinite(max(ss)):
            return [math.nan] * len(fs), list(errors_m)
        s2 = max(ss) + var_pred
        gain = var_pred / s2
        lls, out, moved = [], [], False
        for f, m, ok in zip(fs, errors_m, usable):
            m_pred = phi * m
            e = f.last_nu_m - m_pred
            if not (ok and math.isfinite(e)):
                lls.append(math.nan)
                out.append(m_pred)
                continue
            lls.append(-0.5 * min(e * e / s2, RANGE_LL_NIS_CAP))
            if e * e / s2 <= RANGE_LL_NIS_CAP:
                out.append(m_pred + gain * e)
                moved = True
            else:
                out.append(m_pred)
        if moved:
            self.var_m2 = var_pred * (1.0 - gain)
        else:
            self.var_m2 = var_pred
        self.t_gps_s = max(t_gps_s, self.t_gps_s) if math.isfinite(self.t_gps_s) else t_gps_s
        return lls, out
