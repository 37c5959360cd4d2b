"""What a range-only start begins from: a partner prior as a mixture of Gaussians of the
partner's GCRS state (:class:`PartnerPrior`), made from an uplinked state
(:func:`absolute_prior`) and carried to the data a chunk at a time (:class:`PriorCarry`).

Pure computation on plain arrays (GCRS, SI, GPS seconds).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from pygnc.estimation import orbit_dynamics as od
from pygnc.estimation.formation_filter import rtn_matrix
from pygnc.estimation.gps_fix import GpsFix, fix_to_gcrs

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
    t_gps_s: float,
    pos_ecef_m: ArrayLike,
    vel_ecef_m_s: ArrayLike,
    sigma_pos_m: float,
    sigma_vel_m_s: float,
    cov_rtn: ArrayLike | None = None,
    how: str = "",
) -> PartnerPrior:
    """A one-component prior at *t_gps_s* (GCRS) from an uplinked ECEF state with per-axis
    sigmas, or with *cov_rtn* (36 numbers: the covariance of position and velocity in the
    radial / along-track / cross-track axes of that state)."""
    z, r = fix_to_gcrs(GpsFix(t_gps_s, pos_ecef_m, vel_ecef_m_s), [sigma_pos_m] * 3, [sigma_vel_m_s] * 3)
    if cov_rtn is not None:
        r = rtn_covariance_to_gcrs(cov_rtn, z)
    return PartnerPrior(float(t_gps_s), [PriorComponent(1.0, z, r, "prior")], how)


def rtn_covariance_to_gcrs(cov_rtn: ArrayLike, state6: np.ndarray) -> np.ndarray:
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

    def __init__(self, prior: PartnerPrior, t_gps_s: float, model: od.DynamicsModel) -> None:
        self.prior, self.t_target, self.model = prior, float(t_gps_s), model
        self.t_gps_s = float(prior.t_gps_s)
        self.states: list[tuple[np.ndarray, np.ndarray]] = []
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

    def _step(self, xs: np.ndarray, phi: np.ndarray, t_next: float) -> tuple[np.ndarray, np.ndarray]:
        xs2, step = od.propagate(xs, t_next - self.t_gps_s, self.model, t_gps_s=self.t_gps_s)
        return xs2, step @ phi

    def result(self) -> PartnerPrior:
        """The prior at the target (call once :attr:`done`)."""
        comps = []
        for c, (xs, phi) in zip(self.prior.components, self.states):
            a6 = phi[:6, :6]
            comps.append(PriorComponent(c.weight, xs[:6].copy(), a6 @ c.p0 @ a6.T, c.label))
        return PartnerPrior(self.t_target, comps, self.prior.how)
