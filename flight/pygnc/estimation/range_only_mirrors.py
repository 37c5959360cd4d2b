"""The orbits ranges cannot tell apart, and the mixtures of a partner's hypotheses: mirror
images (the reflection of the relative path in the own orbit plane, its point mirror, both),
the odds a prior gives them, merging filters that found the same orbit, and the published
mixture with its ambiguity.

Pure computation on plain arrays and filters (GCRS, SI, GPS seconds).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from pygnc.estimation.formation_filter import I_DRAG_SCALE, I_RANGE_BIAS, FormationFilter, FormationFilterConfig
from pygnc.estimation.range_only_iod import DISTINCT_M, MEAN_MOTION_RAD_S, orbit_distance_m

if TYPE_CHECKING:
    from pygnc.estimation.range_only_window import AcquisitionWindow


#: Hypotheses are kept while the log-likelihood ratio of the most likely one over them is
#: under this (posterior odds of e^20).
SIDE_DECIDED_LLR = 20.0


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


def mix(ests: list, ws: Sequence[float], idx: np.ndarray | None = None) -> tuple:
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


def with_the_range_only(x: np.ndarray, pr: np.ndarray, range_m: float = 0.0) -> np.ndarray:
    """The I_REPORTED covariance *pr* of state *x* raised to say only what the range itself
    does: the relative position anywhere at that distance (the estimate's, or the measured
    *range_m* if larger: a lost track's estimate drifts), its velocity to the matching
    mean-motion speed (:func:`with_spread`) - for a filter :func:`implausible` or
    :func:`losing_the_ranges` (a partner circling the own spacecraft was published ok 2.7 km
    off under a 2-m sigma, its range bias at -38 m against a 3-m prior), or lost."""
    r = float(np.linalg.norm(x[9:12]))
    return with_spread(pr, max(r, range_m) if math.isfinite(range_m) else r)


def with_spread(pr: np.ndarray, radius_m: float) -> np.ndarray:
    """The I_REPORTED covariance *pr* widened by a relative position anywhere within
    *radius_m* (variance radius^2 / 3 per axis) and a velocity to the matching mean-motion
    speed: what is left open by orbits the estimate does not hold (the range itself, or
    a continuum of orbits with the same ranges of which the kept ones are samples)."""
    out = pr.copy()
    out[0:3, 0:3] += np.eye(3) * (radius_m * radius_m / 3.0)
    out[3:6, 3:6] += np.eye(3) * (MEAN_MOTION_RAD_S * radius_m) ** 2 / 3.0
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
    o_plane, o_point, o_both = out  # image_transforms' three
    return o_plane, o_point, o_both


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


def _within(y: np.ndarray, py: np.ndarray, x: np.ndarray, px: np.ndarray) -> bool:
    return _below(y[9:15] - x[9:15], py[:6, :6] + px[:6, :6], MIRROR_D2)


def orbit_ambiguity_m(states: list, ws: Sequence[float], x: np.ndarray) -> float:
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


def mixture(fs: list, ws: Sequence[float]) -> FormationFilter:
    """A shallow copy of the first of the filters *fs* (at the same time) holding the mean and
    covariance of their mixture with weights *ws* (summing to 1)."""
    out = copy.copy(fs[0])
    out.x, out.p = mix([(g.x, g.p) for g in fs], ws)
    return out


def merge_into(f: FormationFilter, w: float, g: FormationFilter) -> None:
    """*f* (weight *w* of the pair) takes the mean and covariance of itself and *g*."""
    m = mixture([f, g], (w, 1.0 - w))
    f.x, f.p = m.x, m.p


def same_orbit(f: FormationFilter, g: FormationFilter, d2_max: float = MERGE_D2) -> bool:
    """Two hypotheses that have come together: their relative states within *d2_max*
    (Mahalanobis, 6 dof) of each other under the sum of their covariances."""
    return _near(f.x[9:15], f.p[9:15, 9:15], g, d2_max)


def _near(x6: np.ndarray, p6: np.ndarray, g: FormationFilter, d2_max: float) -> bool:
    """:func:`same_orbit` of a relative state *x6* [dr, dv] with covariance *p6* and the
    filter *g*."""
    return _below(g.x[9:15] - x6, p6 + g.p[9:15, 9:15], d2_max)


def images_among(images: list, fs: list, d2_max: float) -> list[bool]:
    """For each filter of *fs*: whether any of *images* ((x6, p6) of :func:`mirror_image_blocks`)
    is within *d2_max* of it (:func:`_near`, the same answers), the systems solved in one
    batched call."""
    if not fs or not images:
        return [False] * len(fs)
    d = np.array([f.x[9:15] for f in fs])[:, None, :] - np.array([x6 for x6, _ in images])[None, :, :]
    a = np.array([f.p[9:15, 9:15] for f in fs])[:, None] + np.array([p6 for _, p6 in images])[None]
    try:
        sol = np.linalg.solve(a, d[..., None])[..., 0]
    except np.linalg.LinAlgError:  # (one singular: each on its own)
        return [any(_near(x6, p6, f, d2_max) for x6, p6 in images) for f in fs]
    return [any(float(d[i, k] @ sol[i, k]) < d2_max for k in range(len(images))) for i in range(len(fs))]


def _below(d: np.ndarray, a: np.ndarray, d2_max: float) -> bool:
    """d^T a^-1 d < *d2_max* for a covariance *a* (False when singular).  That is at least
    |d|^2 / trace(a) (the largest eigenvalue is at most the trace): a pair that far apart
    is decided without solving (most pairs; the same answer)."""
    tr = float(a.trace())
    if tr > 0.0 and float(d @ d) > d2_max * tr * (1.0 + 1e-9):
        return False
    try:
        return float(d @ np.linalg.solve(a, d)) < d2_max
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


def mirror_image_blocks(f: FormationFilter) -> list[tuple[np.ndarray, np.ndarray]]:
    """(relative state [dr, dv] (6,), its covariance (6, 6)) of each of *f*'s
    :func:`mirror_images` - what :func:`same_orbit` compares - without the images' whole
    state and covariance."""
    t6 = block_mirror(6, plane_mirror(f.x[0:6]))
    x6, p6 = f.x[9:15], f.p[9:15, 9:15]
    xm = t6 @ x6
    pm = t6 @ p6 @ t6.T
    return [(xm, pm), (-x6, p6), (-xm, pm)]


def reflected(f: FormationFilter) -> FormationFilter:
    """*f* reflected in the own orbit plane (a shallow :func:`mirrored` copy): the other
    side's hypothesis to first order."""
    return mirrored(f, plane_mirror(f.x[0:6]))


#: The point mirror (-dr, -dv) keeps every range to first order.
POINT_MIRROR = -np.eye(3)


def block_mirror(n: int, m3: np.ndarray, at: Sequence[int] = (0, 3)) -> np.ndarray:
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
    rx, ry, rz, vx, vy, vz = own6[0:6].tolist()  # (floats: np.cross costs more in calls than in arithmetic)
    hx, hy, hz = ry * vz - rz * vy, rz * vx - rx * vz, rx * vy - ry * vx
    h = np.array([hx, hy, hz])
    h /= np.linalg.norm(h)
    return np.eye(3) - 2.0 * np.outer(h, h)
