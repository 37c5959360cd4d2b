"""Range-only navigation of one partner: its acquisition window and the orbits it may fly.

With no partner fix, the partner's orbit is fitted once to a window of ranges
(:mod:`pygnc.estimation.range_only_iod`) and then tracked by a
:class:`~pygnc.estimation.formation_filter.FormationFilter` on ranges alone.  Ranges leave
mirror images open - the reflection of the relative path in the own orbit plane, and its
point mirror (-dr, -dv), keep every range to first order - and a window can fit other
minima about as well, so a partner is a set of hypotheses (:class:`PartnerHypotheses`):
the most likely orbit's filter and alternative filters with their log-odds, moved by every
range and pruned or merged as the ranges decide.  Estimates are their mixture
(:func:`mix`).

Pure computation on plain arrays (GCRS, SI, GPS seconds); notes for the operator are
returned as ``(code, text)`` pairs in :attr:`PartnerHypotheses.notes`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from pygnc.estimation import orbit_dynamics as od
from pygnc.estimation.formation_filter import (
    I_DRAG_SCALE,
    I_RANGE_BIAS,
    FormationFilter,
    FormationFilterConfig,
    rtn_matrix,
)
from pygnc.estimation.orbit_ekf import fix_to_gcrs
from pygnc.estimation.range_only_iod import (
    DISTINCT_M,
    MEAN_MOTION_RAD_S,
    FitAbandoned,
    IodResult,
    continuum_starts,
    fit_prior,
    orbit_distance_m,
    solve_relative_orbit,
)
from pygnc.estimation.tunables import RangeOnlyConfig

#: Hypotheses are kept while the log-likelihood ratio of the most likely one over them is
#: under this (posterior odds of e^20).
SIDE_DECIDED_LLR = 20.0
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
#: Two hypotheses merge below this Mahalanobis distance squared of their relative states
#: under the sum of their covariances (about 1 sigma: two sides of the orbit plane whose
#: cross-track offsets differ by 2 sigma stay apart, candidates that both found the same
#: orbit merge once they agree to their sigma).
MERGE_D2 = 1.0
#: An alternative within this Mahalanobis distance squared (6 dof, 99 %) of the filter's
#: mirror image in the own orbit plane may stand in for it as that reflection
#: (:func:`reflected`): one propagation to "now" per partner instead of two.
MIRROR_D2 = 16.8


#: Hypotheses lighter than this do not count when the published estimate is judged
#: ambiguous (its kept orbits disagreeing by more than the validity bound): a kept orbit of
#: weight w at distance d adds w d^2 to the published covariance, so below ~1e-3 it is
#: covered by the sigma it adds while the others agree.
AMBIGUITY_MIN_WEIGHT = 1e-3
#: A window's fit is accepted only if it converged and its residual RMS is within this factor
#: of what the ranges' noise and the dynamics' error in them allow (sqrt(range_sigma_m^2 +
#: side_model_sigma_m^2)): an orbit fitting a partner's ranges to 2.6 m RMS, with a 74-m range
#: bias against a 3-m prior, was 6 km off and published ok.
POOR_FIT_RMS_FACTOR = 2.0
#: A prior is carried to the first range in steps of this much time between budget checks, s.
CARRY_CHUNK_S = 600.0
#: A prior whose predicted range misses the first measured one by more than this many
#: sigmas (squared: 5 sigma) is not used (a gross error: a wrong partner, epoch or frame).
PRIOR_RANGE_GATE = 25.0


@dataclass
class PriorComponent:
    """One Gaussian of a partner prior: its probability, the partner's GCRS state [r, v]
    (6,) and covariance (6, 6), and what it is (for notes)."""

    weight: float
    x0: np.ndarray
    p0: np.ndarray
    label: str


@dataclass
class PartnerPrior:
    """What a range-only start began from, at ``t_gps_s``: a mixture of Gaussians of the
    partner's state (the heaviest first) - an uplinked prior and, with the probability that
    it is grossly wrong, its point mirror; with no prior, the partner placed ahead and
    behind along-track at its first range - and how it was obtained (for notes)."""

    t_gps_s: float
    components: list
    how: str

    @property
    def x0(self) -> np.ndarray:
        return self.components[0].x0

    @property
    def p0(self) -> np.ndarray:
        return self.components[0].p0

    def carried_to(self, t_gps_s: float, model: od.DynamicsModel) -> PartnerPrior:
        """This prior propagated to *t_gps_s*, each component along its transition matrix."""
        carry = PriorCarry(self, t_gps_s, model)
        carry.advance(lambda: False, chunk_s=math.inf)
        return carry.result()

    def cost(self, x6: np.ndarray) -> float:
        """-2 log of the prior density at the partner state *x6*, up to a constant that is
        the same for every state: for one component its Mahalanobis distance squared."""
        if len(self.components) == 1:
            d = x6 - self.x0
            return float(d @ np.linalg.solve(self.p0, d))
        terms = [_log_density(c, x6) for c in self.components]
        return -2.0 * float(np.logaddexp.reduce(terms)) - np.linalg.slogdet(self.p0)[1]

    def nearest(self, x6: np.ndarray) -> PriorComponent:
        """The component whose density is the largest at *x6*."""
        if len(self.components) == 1:
            return self.components[0]
        return max(self.components, key=lambda c: _log_density(c, x6))


def _log_density(c: PriorComponent, x6: np.ndarray) -> float:
    """log of component *c*'s weight times its Gaussian density at *x6* (up to 2 pi's)."""
    d = x6 - c.x0
    return math.log(c.weight) - 0.5 * (float(d @ np.linalg.solve(c.p0, d)) + np.linalg.slogdet(c.p0)[1])


def absolute_prior(
    t_gps_s: float, pos_ecef_m, vel_ecef_m_s, sigma_pos_m: float, sigma_vel_m_s: float, cov_rtn=None, how: str = ""
) -> PartnerPrior:
    """A one-component prior at *t_gps_s* (GCRS) from an uplinked ECEF state with per-axis
    sigmas, or with *cov_rtn* (36 numbers: the covariance of position and velocity in the
    radial / along-track / cross-track axes of that state)."""
    z, r = fix_to_gcrs(t_gps_s, pos_ecef_m, vel_ecef_m_s, [sigma_pos_m] * 3, [sigma_vel_m_s] * 3)
    if cov_rtn is not None:
        r = rtn_covariance_to_gcrs(cov_rtn, z)
    return PartnerPrior(float(t_gps_s), [PriorComponent(1.0, z, r, "prior")], how)


def rtn_covariance_to_gcrs(cov_rtn, state6: np.ndarray) -> np.ndarray:
    """The 6x6 covariance *cov_rtn* (36 numbers, row-major) of a position and velocity given
    in the radial / along-track / cross-track axes of *state6* (GCRS r, v), in GCRS axes."""
    a = rtn_matrix(state6[0:3], state6[3:6])
    t = np.zeros((6, 6))
    t[0:3, 0:3] = t[3:6, 3:6] = a.T
    c = np.asarray(cov_rtn, dtype=float).reshape(6, 6)
    return t @ (0.5 * (c + c.T)) @ t.T


class PriorCarry:
    """A :class:`PartnerPrior` being propagated to *t_gps_s* with *model*, a chunk at a time
    (a prior a day from the data is a day's propagation: seconds on a Pi)."""

    def __init__(self, prior: PartnerPrior, t_gps_s: float, model: od.DynamicsModel):
        self.prior, self.t_target, self.model = prior, float(t_gps_s), model
        self.t_gps_s = float(prior.t_gps_s)
        self.states = []
        for c in prior.components:
            xs = np.zeros(10)
            xs[:6], xs[9] = c.x0, 1.0
            self.states.append((xs, np.eye(10)))

    @property
    def done(self) -> bool:
        return self.t_gps_s == self.t_target

    def retarget(self, t_gps_s: float) -> None:
        """Carry on to *t_gps_s* instead, from where the propagation has got to."""
        self.t_target = float(t_gps_s)

    def advance(self, spent: Callable[[], bool], chunk_s: float = CARRY_CHUNK_S) -> bool:
        """Propagate in chunks of *chunk_s* until the target (True) or *spent()* (False: the
        next call goes on from there); at least one chunk per call."""
        first = True
        while not self.done:
            if not first and spent():
                return False
            first = False
            dt = self.t_target - self.t_gps_s
            h = dt if abs(dt) <= chunk_s else math.copysign(chunk_s, dt)
            t_next = self.t_target if h == dt else self.t_gps_s + h
            self.states = [self._step(xs, phi, t_next) for xs, phi in self.states]
            self.t_gps_s = t_next
        return True

    def _step(self, xs, phi, t_next):
        xs2, step = od.propagate(xs, t_next - self.t_gps_s, self.model, t_gps_s=self.t_gps_s)
        return xs2, step @ phi

    def result(self) -> PartnerPrior:
        """The prior at the target (call once :attr:`done`)."""
        comps = []
        for c, (xs, phi) in zip(self.prior.components, self.states):
            a6 = phi[:6, :6]
            comps.append(PriorComponent(c.weight, xs[:6].copy(), a6 @ c.p0 @ a6.T, c.label))
        return PartnerPrior(self.t_target, comps, self.prior.how)


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
    def open(cls, f: FormationFilter, t_gps_s: float, p0: np.ndarray, how: str, window_s: float):
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

    def relinearised(self, x7: np.ndarray, drag_scale: float, model: od.DynamicsModel) -> AcquisitionWindow:
        """The same window with its reference trajectory from *x7* ([partner state at the
        window start, bias]) and *drag_scale* instead: one propagation of the window."""
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
            b.record_reference(t, model)
        b.t_gps_s, b.range_m = self.t_gps_s, self.range_m
        return b

    def advance_reference(self, t_gps_s: float, model: od.DynamicsModel, own_model: od.DynamicsModel | None = None):
        """Propagate the reference (and, with *own_model*, the own state) to *t_gps_s*."""
        if own_model is not None and t_gps_s > self.t_own:
            self.own, _ = od.propagate(self.own, t_gps_s - self.t_own, own_model, t_gps_s=self.t_own)
            self.t_own = t_gps_s
        if t_gps_s > self.t_ref:
            self.ref, step = od.propagate(self.ref, t_gps_s - self.t_ref, model, t_gps_s=self.t_ref)
            self.phi = step @ self.phi
            self.t_ref = t_gps_s

    def record_reference(self, t_gps_s: float, model: od.DynamicsModel, own_model: od.DynamicsModel | None = None):
        """Advance the reference to *t_gps_s* and keep its position and d position / d x0."""
        self.advance_reference(t_gps_s, model, own_model)
        self.ref_pos.append(self.ref[0:3].copy())
        self.ref_jac.append(self.phi[0:3, 0:6].copy())

    def add_range(self, t_gps_s: float, range_m: float, model, own_model) -> None:
        """Collect a range of the window."""
        self.record_reference(t_gps_s, model, own_model)
        self.t_gps_s.append(t_gps_s)
        self.own_r_m.append(self.own[0:3].copy())
        self.range_m.append(range_m)

    @property
    def span_s(self) -> float:
        return self.t_gps_s[-1] - self.t0_gps_s if self.t_gps_s else 0.0


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


class PartnerHypotheses:
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
            if h.filter.t_gps_s < t_gps_s - 1e-6:
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
        carried = self.carry.result()
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
    def add_window_range(self, t_gps_s: float, range_m: float) -> None:
        """Collect a range of the open window (the filter is at *t_gps_s*); begin the fit
        when the window is complete, or take the fit under way one step further."""
        w, f = self.window, self.filter
        w.add_range(t_gps_s, range_m, f.peer_model, f.own_model)
        if w.job is not None:
            self.step_fit()
        elif t_gps_s - w.t0_gps_s >= w.window_s and len(w.range_m) >= self.config.min_ranges:
            self.begin_fit()

    def begin_fit(self) -> None:
        """Begin fitting the window: the cheap part now, one window propagation per later
        call (:meth:`step_fit`: the next range, or the propagation after the batch)."""
        self.window.job = self._fit_window()
        self.step_fit()

    def step_fit(self) -> None:
        """One step of the window fit (at most one window propagation)."""
        try:
            next(self.window.job)
        except StopIteration:
            pass
        except FitAbandoned:
            if self.window is not None:
                self.window.job = None

    def finish_window(self) -> None:
        """No more ranges will come (the batch ended): fit what the window holds."""
        w = self.window
        w.final = True
        if w.job is None:
            self.begin_fit()

    def _fit_window(self):
        """Fit the partner's orbit to the window's ranges and start the filters from the fit
        at the filter's current time: a generator that yields after each window propagation,
        so that no call blocks the task for long (on a Pi one propagation of a 45-min window
        is 1-3 s; the whole fit would be 5-10 s, past the health limit).  Ranges arriving
        meanwhile join the window (each refit uses all it holds)."""
        a, f, c = self.window, self.filter, self.config
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
        # Each of the prior's components is fitted from its own starts (the prior's mean, its
        # mirror images, draws from it), regularised by itself; with several, each
        # candidate's cost counts the whole mixture's density instead.
        candidates = []
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
            distinct = []
            for cand in candidates:
                if all(orbit_distance_m(cand[0], d[0]) > DISTINCT_M for d in distinct):
                    distinct.append(cand)
            candidates = distinct
        # Each start's fit once more, linearised about itself: the dynamics' linearisation
        # error (metres per km of prior error over the window) falls to centimetres, and
        # only then do the candidates' costs say which the ranges and the prior prefer.
        hyps = []  # (cost, window, fit, (window, fit) whose range residuals stand for it)
        for x7, _ in spread_candidates(candidates):
            yield
            b, r2 = self._refit(a, x7)
            hyps.append((r2.candidates[0][1], b, r2, (b, r2)))
        # The point mirror keeps every range to first order, and the multistart does not
        # always reach its basin when the prior is far from both (a restart after a close
        # approach: every candidate near the point mirror, the basin 33 m from the truth
        # found only from the best one's point mirror).  Refitted from there; a refit that
        # slides back to a minimum already held is dropped below.
        best = min(hyps, key=lambda h: h[0])[2]
        x = np.append(2.0 * a.own0 - best.x0, best.bias_m)
        if all(orbit_distance_m(x[:6], h[2].x0) > DISTINCT_M for h in hyps):
            yield
            b2, r3 = self._refit(a, x)
            hyps.append((r3.candidates[0][1], b2, r3, (b2, r3)))
        # A partner circling the own spacecraft has a continuum of orbits with the same
        # ranges (continuum_starts): fitted from members spread along it too, so that what
        # the ranges leave open is seen (unresolved_m), not one member taken for the truth
        # (a partner 2 km from the own spacecraft in a 3e-4 eccentricity ellipse was
        # published ok 2-5 km off under a 2-m sigma).
        for xs in continuum_starts(a.own0, best.x0):
            if all(orbit_distance_m(xs, h[2].x0) > DISTINCT_M for h in hyps):
                yield
                b3, r4 = self._refit(a, np.append(xs, best.bias_m))
                hyps.append((r4.candidates[0][1], b3, r4, (b3, r4)))
        # Which side of the own orbit plane: each candidate's mirror image is fitted too.
        for _, b, r2, _ in list(hyps):
            yield
            hyps.append(self._mirror_fit(a, b, r2))
        if self.window is not a or not f.initialized:
            return  # the window was replaced meanwhile (restart, gap): this fit is moot
        hyps = common_costs(a, hyps, self.filter_config, c.side_model_sigma_m**2)
        hyps.sort(key=lambda h: h[0])
        self.image_odds = image_odds(a, hyps[0][2].x0)
        fits = self._fits_its_ranges(hyps[0][2])
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
            res = hyps[0][2]
            self.window = None
            self.lose(
                f.t_gps_s,
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
        distinct = []
        for h in hyps:
            if all(orbit_distance_m(h[2].x0, d[2].x0) > DISTINCT_M for d in distinct):
                distinct.append(h)
        hyps = distinct
        self.window = None
        self.on_change()
        cost0, a, res, _ = hyps[0]
        self.unresolved_m = unresolved_spread_m(
            a.own0, res.x0, [h[2].x0 for h in hyps[1:] if h[0] - cost0 <= FIT_SPREAD_COST]
        )
        self.n_ranges_fitted += int(res.used.sum())
        cov_peer = start_from_fit(f, a, res)
        # Every candidate within e^SIDE_DECIDED_LLR of the best is kept as a filter with its
        # odds (its mirror image always, other minima a close pair's window fits about as
        # well); the later ranges decide.
        self.alts = []
        self._new_hypotheses()
        for cost, b, r2, _ in hyps[1:]:
            if (cost - cost0) / 2.0 < SIDE_DECIDED_LLR:
                alt = copy.deepcopy(f)
                start_from_fit(alt, b, r2)
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

    def _fits_its_ranges(self, res: IodResult) -> bool:
        """A window fit that converged with a residual RMS the ranges' noise and the
        dynamics' error in them explain (POOR_FIT_RMS_FACTOR)."""
        allowed = math.hypot(self.filter_config.range_sigma_m, self.config.side_model_sigma_m)
        return bool(res.converged and res.rms_m <= POOR_FIT_RMS_FACTOR * allowed)

    def _prior_as_held_now(self, a: AcquisitionWindow):
        """Regularise the fit with the prior as the filters hold it at the window's end: each
        component's filter has taken the window's own fixes, and an absolute prior's relative
        state is correlated with the own one, so the own estimate's gains carry over to it
        (the window opened on one fix's own state; its error would otherwise stay in the
        components the ranges hardly see - cross-track at a long along-track separation).
        Mapped back to the window start along each component's own transition matrix (the
        window's reference is the heaviest one's; a point mirror tens of km from it, mapped
        along that one, came back hundreds of metres off and lost its side to the prior's
        cost).  A generator: it yields after each extra component's window propagation."""
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
                ref, phi = od.propagate(xs, a.t_ref - a.t0_gps_s, self.filter.peer_model, t_gps_s=a.t0_gps_s)
            inv = np.linalg.inv(phi[:6, :6])
            x0 = x_ref0 + inv @ (a.own[0:6] + g.x[9:15] - ref[0:6])
            p0 = inv @ g.p[9:15, 9:15] @ inv.T
            comps.append(PriorComponent(c.weight, x0, 0.5 * (p0 + p0.T), c.label))
        a.prior = PartnerPrior(a.prior.t_gps_s, comps, a.prior.how)

    def _refit(self, a: AcquisitionWindow, x7: np.ndarray) -> tuple:
        """Window *a*'s ranges fitted from the start *x7* ([partner state at the window
        start, bias]) linearised about *x7*'s own trajectory: (that window, the fit)."""
        f = self.filter
        b = a.relinearised(x7, float(f.x[I_DRAG_SCALE]), f.peer_model)
        comp = a.prior.nearest(x7[:6])
        return b, self._solve(a, b, x7[:6], comp, starts=[x7])

    def _solve(self, a: AcquisitionWindow, ref: AcquisitionWindow, x_ref0, comp: PriorComponent, starts=None):
        """The ranges of window *a* fitted about *ref*'s reference trajectory (which starts at
        *x_ref0*), regularised by the prior component *comp*
        (:func:`~pygnc.estimation.range_only_iod.solve_relative_orbit`)."""
        fc = self.filter_config
        return solve_relative_orbit(
            x_ref0,
            np.array(ref.ref_pos),
            np.array(ref.ref_jac),
            comp.x0,
            comp.p0,
            fc.range_bias_prior_m,
            fc.range_bias_sigma_m,
            np.array(a.own_r_m),
            np.array(a.range_m),
            fc.range_sigma_m,
            starts=starts,
            abandon=self.abandon,
        )

    def _mirror_fit(self, a: AcquisitionWindow, b: AcquisitionWindow, r2: IodResult) -> tuple:
        """(cost, window, fit, (window, fit) whose range residuals stand for it) of the
        mirror image in the own orbit plane of the fit *r2* (window *b*): fitted again from
        the reflected start if that keeps a distinct minimum on the other side; else (the
        mirror slid back: the cross-track offset is within the valley's width) the exact
        mirror image, whose range cost is the fit's, so the prior alone sets the odds."""
        o = a.own0
        m3 = plane_mirror(o)
        x = np.append(o + block_mirror(6, m3) @ (r2.x0 - o), r2.bias_m)
        bm, rm = self._refit(a, x)
        h = np.cross(o[0:3], o[3:6])
        if (
            float(np.linalg.norm(rm.x0[0:3] - r2.x0[0:3])) > DISTINCT_M
            and float((rm.x0[0:3] - o[0:3]) @ h) * float((r2.x0[0:3] - o[0:3]) @ h) < 0.0
        ):
            return rm.candidates[0][1], bm, rm, (bm, rm)
        rm = dataclasses.replace(r2, x0=x[0:6], cov=mirror_cov(r2.cov, m3))
        return r2.candidates[0][1], b, rm, (b, r2)  # (its cost with its own prior: _common_costs)

    # ------------------------------------------------------------------ tracking
    def own_fix(self, t_gps_s: float, fix: tuple, gcrs) -> None:
        """An own fix (already converted, *gcrs*) on every alternative too."""
        for h in self.alts:
            h.filter.predict_to(t_gps_s)
            h.filter.update_own_fix(t_gps_s, *fix, gcrs=gcrs)

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
        images = mirror_images(self.filter)
        for h, ll in zip(self.alts, lls[1:]):
            d = lls[0] - ll
            if math.isfinite(d) and not any(same_orbit(g, h.filter, MIRROR_D2) for g in images):
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
    """*hyps* (cost, window, fit, (window, fit) whose range residuals stand for it) of
    window *a* (filter tunables *fc*) with each cost taken again on the same ranges: the
    first n, which every refit held (ranges keep arriving during the fit, one refit per
    range; a later refit would otherwise pay ~1/2 of log-odds per extra range), each
    squared normalised residual counted up to RANGE_LL_NIS_CAP (an outlier no hypothesis
    explains costs them all the same, and none leaves out the ranges that speak against
    it); plus each one's prior term (the prior mixture's density with several components).
    *model_var_m2*: the dynamics' error in a range, added to its variance as the running
    odds do (:class:`RangeModelError`): a few units of chi-square between mirror images
    are the model's, not evidence."""
    n = min(len(h[3][0].ref_pos) for h in hyps)
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
        if mixed:
            prior_cost = a.prior.cost(r2.x0) + (r2.bias_m - fc.range_bias_prior_m) ** 2 / fc.range_bias_sigma_m**2
        else:
            dx = np.append(r2.x0, r2.bias_m) - prior
            prior_cost = float(dx @ info @ dx)
        out.append((chi2 + prior_cost, b, r2, (bw, fit)))
    return out


def start_from_fit(f: FormationFilter, a: AcquisitionWindow, res: IodResult) -> np.ndarray:
    """Restart *f* at its current time from the fit *res* of window *a*: the fit's orbit, its
    bias and the covariance of a filter run along it through the window's ranges
    (:func:`replay_window`); returns the relative state's covariance.

    The fit's own covariance is not used: it takes the flight dynamics as exact over the
    window and the partner's drag scale as known, so over a 45-min window it claims the
    along-track drift to microns per second (a covariance of condition ~1e12), and a
    filter started from it reads the drift's real wander as geometry - a partner 30 km
    along-track was tracked 20-50 m off in cross-track under a 3-m sigma."""
    g = replay_window(f, a, res)
    f.initialize_relative(f.t_gps_s, f.x[0:6].copy(), f.p[0:6, 0:6].copy(), g.x[9:12], g.x[12:15], g.p[9:15, 9:15])
    f.x[15:] = g.x[15:]
    f.p[9:, 9:] = g.p[9:, 9:]
    f.take_ranges_as_acquired()
    return f.p[9:15, 9:15].copy()


def replay_window(f: FormationFilter, a: AcquisitionWindow, res: IodResult) -> FormationFilter:
    """A filter like *f* started at window *a*'s opening on the fit *res* (partner state and
    bias) with the covariance of the prior component nearest it and the bias prior, its
    covariance updated by each range the fit kept along the fit's own trajectory
    (:meth:`FormationFilter.absorb_range_covariance`: the state is the fit's orbit
    propagated, the own orbit propagated from the window's start as the fit saw it), and
    predicted to *f*'s time: the covariance the filter would hold had it tracked the window
    along that orbit, with its process noise and drag scale; the ranges' noise scaled up by
    the fit's reduced chi-square when that exceeds 1."""
    fc = f.config
    comp = a.prior.nearest(res.x0) if a.prior is not None else None
    p_rel0 = (comp.p0 if comp is not None else a.p0).copy()
    g = FormationFilter(fc)
    own_cov = np.diag([fc.orbit.pos_sigma_m**2] * 3 + [fc.orbit.vel_sigma_m_s**2] * 3)
    g.initialize_relative(a.t0_gps_s, a.own0, own_cov, res.x0[0:3] - a.own0[0:3], res.x0[3:6] - a.own0[3:6], p_rel0)
    g.x[I_DRAG_SCALE] = f.x[I_DRAG_SCALE] if f.x[I_DRAG_SCALE] > 0 else 1.0  # (the scale the fit assumed)
    g.x[I_RANGE_BIAS] = res.bias_m
    used = res.used if res.used is not None and len(res.used) == len(a.range_m) else [True] * len(a.range_m)
    # A fit worse than the range noise says the model misses something: its ranges count for
    # less, by the fit's reduced chi-square (as the fit's own covariance did).
    n = int(np.sum(used))
    chi2_red = (res.rms_m / fc.range_sigma_m) ** 2 * n / max(n - 7, 1) if math.isfinite(res.rms_m) else 1.0
    sigma_m = fc.range_sigma_m * math.sqrt(max(1.0, chi2_red))
    for t, ok in zip(a.t_gps_s, used):
        if ok:
            g.predict_to(g.range_base_time(t))
            g.absorb_range_covariance(t, sigma_m)
    g.predict_to(f.t_gps_s)
    return g


def mix(ests: list, ws, idx=None) -> tuple:
    """(mean (n,), covariance) of the mixture of *ests* ((state (n,), covariance) each, at
    the same time) with weights *ws* (summing to 1); with *idx*, the covariances given are
    the *idx* rows and columns of each (e.g. I_REPORTED) and so is the result's."""
    xm = sum(w * x for (x, _), w in zip(ests, ws))
    pm = np.zeros_like(ests[0][1])
    for (x, pc), w in zip(ests, ws):
        d = x - xm if idx is None else x[idx] - xm[idx]
        pm += w * (pc + np.outer(d, d))
    return xm, pm


#: A range-only filter whose range bias or partner drag scale stands this many of their
#: prior sigmas from the prior explains its ranges with a radio or a spacecraft that
#: cannot be: its covariance no longer says where the partner is (:func:`with_the_range_only`).
IMPLAUSIBLE_SIGMAS = 5.0


def implausible(x: np.ndarray, fc: FormationFilterConfig) -> bool:
    """Whether the filter state *x* holds a range bias or a partner drag scale past
    IMPLAUSIBLE_SIGMAS of their priors (the drag scale only where it is estimated)."""
    if abs(float(x[I_RANGE_BIAS]) - fc.range_bias_prior_m) > IMPLAUSIBLE_SIGMAS * fc.range_bias_sigma_m:
        return True
    return bool(
        fc.estimate_peer_drag_scale
        and fc.peer_drag_scale_sigma > 0.0
        and abs(float(x[I_DRAG_SCALE]) - 1.0) > IMPLAUSIBLE_SIGMAS * fc.peer_drag_scale_sigma
    )


def losing_the_ranges(f: FormationFilter) -> bool:
    """Whether *f*'s last two ranges or more failed its gate since it last used one, or it
    has stopped using them until two agree again: its covariance does not explain them."""
    return len(f.range_rejected_nu_m) >= 2 or not f.range_acquired


def with_the_range_only(x: np.ndarray, pr: np.ndarray) -> np.ndarray:
    """The I_REPORTED covariance *pr* of state *x* raised to say only what the range itself
    does: the relative position anywhere at that distance (variance range^2 / 3 per axis),
    its velocity to the matching mean-motion speed - for a filter :func:`implausible` (a
    partner circling the own spacecraft was published ok 2.7 km off under a 2-m sigma, its
    range bias at -38 m against a 3-m prior)."""
    rng = float(np.linalg.norm(x[9:12]))
    out = pr.copy()
    out[0:3, 0:3] += np.eye(3) * (rng * rng / 3.0)
    out[3:6, 3:6] += np.eye(3) * (MEAN_MOTION_RAD_S * rng) ** 2 / 3.0
    return out


def unresolved_spread_m(own0: np.ndarray, best0: np.ndarray, others0: list) -> float:
    """The largest :func:`orbit_distance_m` between the best fitted partner state *best0*
    and those of *others0* (6,) that are not near one of its mirror images about the own
    state *own0* (within a tenth of the separation, or DISTINCT_M): 0 when none."""
    d = best0 - own0
    images = [own0 + block_mirror(6, m3) @ d for m3 in image_transforms(own0)]
    tol = max(DISTINCT_M, 0.1 * float(np.linalg.norm(d[0:3])))
    out = 0.0
    for x in others0:
        if all(orbit_distance_m(x, xi) > tol for xi in images):
            out = max(out, orbit_distance_m(x, best0))
    return out


def image_transforms(x: np.ndarray) -> list[np.ndarray]:
    """The 3x3 transforms of a relative state's mirror images that keep every range to
    first order, about the own state *x[0:6]* (GCRS r, v): in the own orbit plane, the point
    mirror, both."""
    m3 = plane_mirror(x[0:6])
    return [m3, POINT_MIRROR, -m3]


def image_odds(a: AcquisitionWindow, x0: np.ndarray) -> tuple[float, float, float]:
    """The odds of the mirror images of the partner state *x0* (at window *a*'s start) against
    it under the window's prior alone - the ranges cannot tell them apart -, 0 for one the
    prior excludes (e^-SIDE_DECIDED_LLR or less)."""
    own = a.own0
    if a.prior is None:
        return (0.0, 0.0, 0.0)
    c0 = a.prior.cost(x0)
    out = []
    for m3 in image_transforms(own):
        xi = own + block_mirror(6, m3) @ (x0 - own)
        d = (a.prior.cost(xi) - c0) / 2.0
        out.append(math.exp(-max(d, -SIDE_DECIDED_LLR)) if d < SIDE_DECIDED_LLR else 0.0)
    return tuple(out)


def with_mirror_images(ests: list, ws: tuple, odds: tuple) -> tuple[list, tuple]:
    """*ests* ((state (n,), covariance of its :data:`I_REPORTED` rows and columns), the most
    likely orbit's first) and their weights *ws*, with the first one's mirror images
    (:func:`image_transforms`) added at *odds* against it (its weight shared among them) -
    each with odds > 0 and no other orbit standing within MIRROR_D2 of it: the ranges cannot
    tell them apart and the prior did not (:attr:`PartnerHypotheses.image_odds`), so they
    are kept, not dropped with the filter a range's noise or the dynamics' error happened to
    disfavour (a coplanar partner's zero cross-track offset was published ok 100-200 m off on
    one side; a partner standing still 500 m behind, ok 900 m ahead)."""
    x, pr = ests[0]
    added, shares = [], []
    for m3, o in zip(image_transforms(x), odds):
        if not o > 0.0:
            continue
        xm = block_mirror(x.size, m3, at=(9, 12, 15)) @ x
        t7 = block_mirror(pr.shape[0], m3, at=(0, 3))
        pm = t7 @ pr @ t7.T
        if any(_within(y, py, xm, pm) for y, py in ests[1:]):
            continue
        added.append((xm, pm))
        shares.append(o)
    if not added:
        return ests, ws
    total = 1.0 + sum(shares)
    w0 = ws[0]
    return [*ests, *added], (w0 / total, *ws[1:], *(w0 * o / total for o in shares))


def _within(y, py, x, px) -> bool:
    d = y[9:15] - x[9:15]
    try:
        return float(d @ np.linalg.solve(py[:6, :6] + px[:6, :6], d)) < MIRROR_D2
    except np.linalg.LinAlgError:
        return False


def orbit_ambiguity_m(states: list, ws, x: np.ndarray) -> float:
    """How far apart the kept orbits lie: of the *states* (filter states (n,)) weighing at
    least AMBIGUITY_MIN_WEIGHT in *ws*, the largest amplitude over an orbit of one's
    relative motion less the published state *x*'s, sqrt(|dr|^2 + (|dv| / n)^2) with n the
    own orbit's mean motion (|v| / |r|) - the positions alone meet twice an orbit (mirror
    images in the own orbit plane where the partner crosses it) while the orbits differ."""
    r = float(np.linalg.norm(x[0:3]))
    n = float(np.linalg.norm(x[3:6])) / r if r > 0.0 else math.nan
    out = 0.0
    for s, w in zip(states, ws):
        if w >= AMBIGUITY_MIN_WEIGHT:
            dr, dv = s[9:12] - x[9:12], s[12:15] - x[12:15]
            d2 = float(dr @ dr) + (float(dv @ dv) / (n * n) if n > 0.0 else 0.0)
            if not math.isfinite(d2):
                return math.inf  # (a state that is not finite: nothing agrees)
            out = max(out, math.sqrt(d2))
    return out


def mixture(fs: list, ws) -> FormationFilter:
    """A shallow copy of the first of the filters *fs* (at the same time) holding the mean and
    covariance of their mixture with weights *ws* (summing to 1)."""
    out = copy.copy(fs[0])
    out.x, out.p = mix([(g.x, g.p) for g in fs], ws)
    return out


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


def merge_into(f: FormationFilter, w: float, g: FormationFilter) -> None:
    """*f* (weight *w* of the pair) takes the mean and covariance of itself and *g*."""
    m = mixture([f, g], (w, 1.0 - w))
    f.x, f.p = m.x, m.p


def same_orbit(f: FormationFilter, g: FormationFilter, d2_max: float = MERGE_D2) -> bool:
    """Two hypotheses that have come together: their relative states within *d2_max*
    (Mahalanobis, 6 dof) of each other under the sum of their covariances."""
    d = g.x[9:15] - f.x[9:15]
    try:
        return float(d @ np.linalg.solve(f.p[9:15, 9:15] + g.p[9:15, 9:15], d)) < d2_max
    except np.linalg.LinAlgError:
        return False


def mirrored(f: FormationFilter, m3: np.ndarray, own: bool = False) -> FormationFilter:
    """A copy of *f* with its relative position, velocity and differential acceleration
    transformed by the reflection *m3* (mean and covariance): shallow (to look at), or with
    *own* a filter of its own to be updated (no taps of *f*'s)."""
    t = block_mirror(f.x.size, m3, at=(9, 12, 15))
    g = copy.deepcopy(f) if own else copy.copy(f)
    if own:
        g.drop_taps()
    g.x, g.p = t @ f.x, t @ f.p @ t.T
    return g


def mirror_images(f: FormationFilter) -> list[FormationFilter]:
    """*f*'s mirror images that keep every range to first order (shallow :func:`mirrored`
    copies): in the own orbit plane, the point mirror, and both."""
    m3 = plane_mirror(f.x[0:6])
    return [mirrored(f, m3), mirrored(f, POINT_MIRROR), mirrored(f, -m3)]


def reflected(f: FormationFilter) -> FormationFilter:
    """*f* reflected in the own orbit plane (a shallow :func:`mirrored` copy): the other
    side's hypothesis to first order."""
    return mirrored(f, plane_mirror(f.x[0:6]))


#: The point mirror (-dr, -dv) keeps every range to first order.
POINT_MIRROR = -np.eye(3)


def block_mirror(n: int, m3: np.ndarray, at=(0, 3)) -> np.ndarray:
    """n x n identity with the reflection *m3* on the 3x3 diagonal blocks starting at *at*."""
    t = np.eye(n)
    for i in at:
        t[i : i + 3, i : i + 3] = m3
    return t


def mirror_cov(cov: np.ndarray, m3: np.ndarray) -> np.ndarray:
    """Covariance of [partner r, v, (more)] after reflecting r and v with *m3*."""
    t = block_mirror(cov.shape[0], m3)
    return t @ cov @ t.T


def plane_mirror(own6: np.ndarray) -> np.ndarray:
    """3x3 reflection in the orbit plane of the own state *own6* (GCRS r, v)."""
    h = np.cross(own6[0:3], own6[3:6])
    h /= np.linalg.norm(h)
    return np.eye(3) - 2.0 * np.outer(h, h)
