"""Range-only initial relative orbit determination: a partner's orbit from own positions and
ranges over a window, by regularised Gauss-Newton (Levenberg-Marquardt) from a prior.

Why a batch first: with a prior of ~1 km / 1 m/s the range |r_peer - r_own| is far from
linear over the prior (its curvature is ~sigma^2 / range: ~300 m at 3 km), so an EKF
started there linearises each range about a wrong line of sight and loses the partner;
the relative *dynamics*, in contrast, are linear to centimetres over a kilometre-sized
error (the gravity-gradient nonlinearity is ~n^2 |dr|^2 / r).  So the partner's state at
the window start is fitted to all the window's ranges at once, the ranges kept exactly
nonlinear and the motion linearised about a reference trajectory the flight dynamics
propagate once, range by range, as the window fills (the fit then costs milliseconds).

What is observable: relative motion over a fraction of an orbit is close to the
Clohessy-Wiltshire solution, which is symmetric - the point mirror (dr, dv -> -dr, -dv)
and the reflection in the own orbit plane keep every range to first order - and a
45-min window's cost can be a valley of quite different orbits that fit about as well.
So the result lists the distinct minima (:attr:`IodResult.candidates`); which of them the
partner flies is for the prior and the later ranges (:mod:`pygnc.estimation.range_only`;
docs/range_only.md has the measured size of the asymmetries).  A constant range bias
trades against the mean separation; its prior and the curvature of the relative path
separate them.  The returned covariance is the Gauss-Newton one, scaled up by the reduced
chi-square when the fit is worse than the stated noise: trust it only with ``converged``.

Pure computation: arrays in (GCRS, SI, GPS seconds), a result out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from pygnc.estimation import orbit_dynamics as od


@dataclass
class IodResult:
    x0: np.ndarray  # partner [r, v] GCRS at t0 (6,)
    bias_m: float  # range bias
    cov: np.ndarray  # (7, 7) covariance of [x0, bias]
    used: np.ndarray  # bool per range: kept after the outlier test
    rms_m: float  # post-fit residual RMS of the kept ranges
    iterations: int
    converged: bool
    #: The distinct minima found (orbit_distance_m > DISTINCT_M), (x0 + bias (7,), cost), best
    #: first: candidates the ranges of the window cannot tell apart (mirror images) have
    #: costs within a few units.
    candidates: list[tuple[np.ndarray, float]] = field(default_factory=list)


#: Mean motion of a low Earth orbit (~95 min) [rad/s], to weigh velocity differences.
MEAN_MOTION_RAD_S = 1.1e-3
#: Two fitted partner states closer than this as orbits (orbit_distance_m) [m] are the
#: same minimum.
DISTINCT_M = 50.0


def orbit_distance_m(x: np.ndarray, y: np.ndarray) -> float:
    """How far apart two partner states [r, v] (6,) are as orbits [m]: the larger of the
    position difference and the velocity difference over the mean motion (a relative orbit
    of amplitude A has speed ~n A).  Position alone is not enough: a partner crossing the
    own orbit plane at the window start has its mirror image at the same position."""
    return max(float(np.linalg.norm(x[0:3] - y[0:3])), float(np.linalg.norm(x[3:6] - y[3:6])) / MEAN_MOTION_RAD_S)


def partner_trajectory(
    x0: ArrayLike,
    t0: float,
    t_k: np.ndarray,
    model: od.DynamicsModel,
    drag_scale: float = 1.0,
    with_scale: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Partner positions at *t_k* (sorted) from x0 at t0, and d r / d x0 (n, 3, 6); with
    *with_scale*, d r / d (x0, drag scale) (n, 3, 7) (*model*'s drag scale is a state)."""
    xs = np.zeros(10)
    xs[:6] = x0
    xs[9] = drag_scale
    phi = np.eye(10)
    t = t0
    cols = [0, 1, 2, 3, 4, 5, 9] if with_scale else slice(0, 6)
    pos = np.empty((t_k.size, 3))
    jac = np.empty((t_k.size, 3, 7 if with_scale else 6))
    for k, tk in enumerate(t_k):
        if tk != t:
            xs, step = od.propagate(xs, float(tk - t), model, t_gps_s=float(t))
            phi = step @ phi
            t = tk
        pos[k] = xs[:3]
        jac[k] = phi[:3, cols]
    return pos, jac


def _directions(d: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Unit line-of-sight rows d / |d|; a zero row (a candidate on top of the own
    spacecraft, as corrupt inputs can make) has no direction and gives zeros."""
    return d / np.where(rho > 0.0, rho, 1.0)[:, None]


def _lm(
    x: np.ndarray,
    x_ref0: np.ndarray,
    ref_pos_k: np.ndarray,
    ref_jac_k: np.ndarray,
    prior: np.ndarray,
    info_prior: np.ndarray,
    own_r_k: np.ndarray,
    z: np.ndarray,
    w: float,
    used: np.ndarray,
    max_iter: int,
    tol_m: float,
) -> tuple[np.ndarray, float, bool, int]:
    """Levenberg-Marquardt from *x* on the ranges flagged *used*; (x, cost, converged, iterations)."""
    lam, cost, x_prev, normal, rhs = 1e-3, math.inf, x, None, None
    for it in range(1, max_iter + 1):
        d = ref_pos_k + ref_jac_k @ (x[:6] - x_ref0) - own_r_k
        rho = np.linalg.norm(d, axis=1)
        res = z - (rho + x[6])
        dx_prior = prior - x
        new_cost = w * float(res[used] @ res[used]) + float(dx_prior @ info_prior @ dx_prior)
        if not new_cost <= cost:  # worse (or NaN): back to the last point, damp harder
            x, lam = x_prev, lam * 10.0
            if lam > 1e8 or normal is None or rhs is None:  # (None: not even the start is a finite cost)
                return x, cost, False, it
        else:
            lam, cost = max(lam / 3.0, 1e-7), new_cost
            h = np.concatenate((np.einsum("ni,nij->nj", _directions(d, rho), ref_jac_k), np.ones((z.size, 1))), axis=1)[
                used
            ]
            normal = w * h.T @ h + info_prior
            rhs = w * h.T @ res[used] + info_prior @ dx_prior
        x_prev = x
        step = np.linalg.solve(normal + lam * np.diag(np.diag(normal)), rhs)
        x = x + step
        if float(np.linalg.norm(step[:3])) < tol_m and abs(step[6]) < tol_m:
            return x, cost, True, it
    return x, cost, False, max_iter


def fit_prior(
    x0_prior: ArrayLike, p0_prior: ArrayLike, bias_prior_m: float, bias_sigma_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fit's prior on [partner state (6,), range bias]: (mean (7,), covariance (7, 7),
    information (7, 7)); the state's and the bias' priors independent."""
    prior = np.concatenate((np.asarray(x0_prior, dtype=float), [float(bias_prior_m)]))
    p_prior = np.zeros((7, 7))
    p_prior[:6, :6] = p0_prior
    p_prior[6, 6] = float(bias_sigma_m) ** 2
    return prior, p_prior, np.linalg.inv(p_prior)


class FitAbandoned(Exception):
    """A fit given up part-way (:func:`solve_relative_orbit`'s *abandon*)."""


def look(abandon: Callable[[], bool] | None) -> None:
    """Raise :class:`FitAbandoned` if *abandon* (the owner's "do I stop?", which also
    services its control link: pings answered) says so: called between a fit's starts and
    between the steps of its window propagations, so neither a stop nor a health ping waits
    for a whole window (on a Pi one window propagation is seconds)."""
    if abandon is not None and abandon():
        raise FitAbandoned


def _structured_starts(prior: np.ndarray, own_r_k: np.ndarray, z: np.ndarray) -> list[np.ndarray]:
    """The starts of a window fit besides the random draws: the prior [x0, bias] (7,), its
    mirror images about the own position at the first range (relative position negated,
    reflected in the own orbit plane, both), and - the first range *z[0]* fixing the distance
    - the prior's direction at that distance, the partner ahead and behind along-track at
    it, and their point mirrors."""
    n = z.size
    # Mirror candidates about the own position at the first range: the point mirror of the
    # relative position and its reflection in the own orbit plane (normal from the own path).
    own0 = own_r_k[0]
    normal_dir = np.cross(own0, own_r_k[-1] - own0) if n > 1 else np.zeros(3)
    nn = float(np.linalg.norm(normal_dir))
    starts = [prior.copy()]
    for point, plane in ((True, False), (False, True), (True, True)):
        if plane and not nn > 0:
            continue
        c = prior.copy()
        dr, dv = prior[:3] - own0, prior[3:6].copy()
        if plane:
            u = normal_dir / nn
            dr = dr - 2.0 * (dr @ u) * u
        if point:
            dr = -dr
        c[:3] = own0 + dr
        c[3:6] = dv
        starts.append(c)
    dr0 = prior[:3] - own0
    r0 = float(np.linalg.norm(dr0))
    rho0 = float(z[0] - prior[6]) if n else 0.0
    along = own_r_k[1] - own0 if n > 1 else np.zeros(3)
    na = float(np.linalg.norm(along))
    if rho0 > 0.0:
        # The first range fixes the distance at the window start: the prior's direction at
        # that distance and its point mirror, and the partner ahead and behind along-track
        # at that distance (where formations fly), start closer to the answer than a prior
        # kilometres off in range - a close partner's prior is often that far off, and its
        # window's cost a valley whose other minima fit about as well.
        directions = ([dr0 / r0] if r0 > 0.0 else []) + ([along / na] if na > 0.0 else [])
        for u in directions:
            for sign in (1.0, -1.0):
                c = prior.copy()
                c[:3] = own0 + sign * rho0 * u
                starts.append(c)
    return starts


@dataclass(frozen=True)
class IodWindow:
    """The data of a window fit: the ranges *ranges_m* (n,) of noise *sigma_m*, taken from
    the own positions *own_r_k* (n, 3), and the reference trajectory the partner's dynamics
    are linearised about - its state *x_ref0* (6,) at the window start, its positions
    *ref_pos_k* (n, 3) at the range times and their sensitivities *ref_jac_k* (n, 3, 6) =
    d r(t_k) / d x0 (the flight dynamics' transition matrix; :func:`partner_trajectory`
    computes both, the processor accumulates them range by range)."""

    x_ref0: np.ndarray
    ref_pos_k: np.ndarray
    ref_jac_k: np.ndarray
    own_r_k: np.ndarray
    ranges_m: np.ndarray
    sigma_m: float


@dataclass(frozen=True)
class IodPrior:
    """The fit's regularisation: the partner's GCRS state *x0* (6,) with covariance *p0*
    (6, 6), and the range bias' mean and sigma."""

    x0: np.ndarray
    p0: np.ndarray
    bias_m: float
    bias_sigma_m: float


@dataclass(frozen=True)
class IodOptions:
    """The fit's tunables: Levenberg-Marquardt iterations per stage and step tolerance, the
    outlier cut (x a robust spread) and the number of starts drawn from the prior."""

    max_iter: int = 30
    outlier_sigma: float = 5.0
    tol_m: float = 0.01
    n_random_starts: int = 32


def solve_relative_orbit(
    window: IodWindow,
    prior: IodPrior,
    starts: Iterable[ArrayLike] | None = None,
    options: IodOptions = IodOptions(),
    abandon: Callable[[], bool] | None = None,
) -> IodResult:
    """Fit the partner's GCRS state at the window start and the range bias to the ranges of
    *window*, with *prior* as regularisation.

    The partner's dynamics enter linearised about the window's reference trajectory.
    Relative dynamics are linear to ~3 n^2 |dx|^2 t^2 / (2 r) - about 2 m for a 1-km offset
    over 45 min - so the fit needs no propagation; the ranges themselves are kept exactly
    nonlinear.

    Continuation: the fit is made on the first quarter of the ranges, then half, then all,
    each stage starting from the last (early ranges are the least far from the prior, so
    the linearisation holds there first); the first stage also starts from the prior's
    mirror images, its direction at the first range's distance and the partner ahead and
    behind along-track (:func:`_structured_starts`), each taken through every stage, and so
    are ``options.n_random_starts`` draws from the prior; the lowest final cost (ranges +
    prior) wins (*starts*: the 7-vectors [x0, bias] to start from instead).  Ranges off by
    more than ``options.outlier_sigma`` x a robust spread are dropped and the fit repeated.
    *abandon*: a callable looked at before each start; True raises :class:`FitAbandoned`
    (the result is not wanted any more: the flight task stops)."""
    max_iter, outlier_sigma, tol_m = options.max_iter, options.outlier_sigma, options.tol_m
    sigma_m = window.sigma_m
    x_ref0 = np.asarray(window.x_ref0, dtype=float)
    ref_pos_k = np.asarray(window.ref_pos_k, dtype=float)
    ref_jac_k = np.asarray(window.ref_jac_k, dtype=float)
    own_r_k = np.asarray(window.own_r_k, dtype=float)
    z = np.asarray(window.ranges_m, dtype=float)
    x_prior, p_prior, info_prior = fit_prior(prior.x0, prior.p0, prior.bias_m, prior.bias_sigma_m)
    w = 1.0 / float(sigma_m) ** 2
    n = z.size
    args = (x_ref0, ref_pos_k, ref_jac_k, x_prior, info_prior, own_r_k, z, w)
    it_total, converged = 0, False
    explicit = starts is not None
    if starts is not None:  # (explicit)
        starts = [np.asarray(c, dtype=float) for c in starts]
    else:
        starts = _structured_starts(x_prior, own_r_k, z)
    n_structured = len(starts)
    if not explicit and options.n_random_starts > 0:
        # The cost has several minima the ranges fit equally well (mirror images and their
        # relatives, km apart); which the prior prefers is decided only by comparing them,
        # so starts are also drawn from the prior (a fixed seed: the same data give the
        # same fit).  Each costs one linear least-squares run.
        chol = np.linalg.cholesky(p_prior)
        draws = np.random.default_rng(12345).standard_normal((options.n_random_starts, 7))
        starts += [x_prior + chol @ d for d in draws]

    def residuals(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = ref_pos_k + ref_jac_k @ (x[:6] - x_ref0) - own_r_k
        rho = np.linalg.norm(d, axis=1)
        return z - (rho + x[6]), _directions(d, rho)

    def multistart(inliers: np.ndarray) -> list[tuple[np.ndarray, float, bool]]:
        nonlocal it_total
        finals = []
        for k, x in enumerate(starts):  # each candidate through its stages; the lowest final cost wins
            look(abandon)
            for frac in (1.0,) if explicit or k >= n_structured else (0.25, 0.5, 1.0):
                used = inliers & (np.arange(n) < max(7, int(math.ceil(frac * n))))
                x, cost, conv, it = _lm(x, *args, used, max_iter, tol_m)
                it_total += it
            finals.append((x, cost, conv))
        finals.sort(key=lambda c: c[1] if math.isfinite(c[1]) else math.inf)
        distinct: list[tuple[np.ndarray, float, bool]] = []  # distinct minima (orbit_distance_m), best first
        for c in finals:
            if math.isfinite(c[1]) and all(orbit_distance_m(c[0], d[0]) > DISTINCT_M for d in distinct):
                distinct.append(c)
        return distinct or finals[:1]

    # Outliers (hundreds of metres) would pull every start: fit, drop the ranges off by more
    # than *outlier_sigma* x a robust spread (median absolute residual, at least sigma_m),
    # fit again from every start; until the set of kept ranges no longer changes.
    used = np.ones(n, dtype=bool)
    for _ in range(4):
        finals = multistart(used)
        x, _, converged = finals[0]
        res, _ = residuals(x)
        spread = max(float(sigma_m), 1.4826 * float(np.median(np.abs(res[used])))) if n else float(sigma_m)
        keep = np.abs(res) <= outlier_sigma * spread
        if (keep == used).all() or keep.sum() < 7:
            break
        used = keep
    rms = float(np.sqrt(np.mean(res[used] ** 2))) if used.any() else math.nan
    res, u = residuals(x)
    h = np.concatenate((np.einsum("ni,nij->nj", u, ref_jac_k), np.ones((n, 1))), axis=1)[used]
    cov = np.linalg.inv(w * h.T @ h + info_prior)
    dof = max(int(used.sum()) - 7, 1)
    chi2_red = float(np.sum(res[used] ** 2)) * w / dof
    cov *= max(1.0, chi2_red)
    return IodResult(
        x0=x[:6],
        bias_m=float(x[6]),
        cov=cov,
        used=used,
        rms_m=rms,
        iterations=it_total,
        converged=converged,
        candidates=[(c[0], c[1]) for c in finals],
    )


#: Starts taken along the continuum of a circling partner (:func:`continuum_starts`).
CONTINUUM_STARTS = 4


def continuum_starts(own0: np.ndarray, x0: np.ndarray, n_starts: int = CONTINUUM_STARTS) -> list[np.ndarray]:
    """Partner states (6,) GCRS with the same ranges as *x0* to first order, other than its
    mirror images, when *x0* circles the own state *own0*: a relative orbit with no
    along-track offset and no drift (Hill-Clohessy-Wiltshire: in-plane ellipse of radial
    amplitude A at phase theta, cross-track B at phi) has a range whose square holds three
    numbers (2.5 A^2 + B^2 / 2 and the second harmonic -1.5 A^2 e^(2i theta) +
    B^2 / 2 e^(2i phi)) of four, so a one-parameter family of orbits fits the same ranges.
    *n_starts* members spread over the family (the centre's offset and drift kept), for the
    window fit to start from; none when *x0*'s along-track offset or drift exceeds its
    in-plane amplitude (the ranges' first harmonic then tells them apart)."""
    r, v = own0[0:3], own0[3:6]
    rn = float(np.linalg.norm(r))
    hv = np.cross(r, v)
    a3 = np.vstack([r / rn, np.cross(hv / np.linalg.norm(hv), r / rn), hv / np.linalg.norm(hv)])
    w = hv / (rn * rn)
    n = math.sqrt(od.GM_EARTH_M3_S2 / rn**3)
    d = x0[0:3] - r
    dv = a3 @ (x0[3:6] - v - np.cross(w, d))
    x, y, z = a3 @ d
    xd, yd, zd = dv
    xc = 4.0 * x + 2.0 * yd / n
    amp_c = complex(x - xc, -xd / n)  # A e^(i theta)
    yc = y - 2.0 * xd / n
    big_a = abs(amp_c)
    if big_a < DISTINCT_M or abs(yc) > big_a or abs(xc) > big_a:
        return []
    amp_z = complex(z, -zd / n)  # B e^(i phi)
    c0 = 2.5 * big_a**2 + 0.5 * abs(amp_z) ** 2
    zeta = -1.5 * amp_c**2 + 0.5 * amp_z**2  # (A e^(i theta))^2 = A^2 e^(2i theta)
    out: list[tuple[float, np.ndarray]] = []
    for a_new in np.linspace(0.0, math.sqrt(c0 / 2.5), 25)[1:]:
        b2 = 2.0 * (c0 - 2.5 * a_new**2)
        c = 1.5 * a_new**2
        if abs(zeta) < 1e-9 or c < 1e-9 or b2 < 0.0:
            continue
        cos_d = ((0.5 * b2) ** 2 - abs(zeta) ** 2 - c * c) / (2.0 * abs(zeta) * c)
        if abs(cos_d) > 1.0:
            continue
        alpha = math.atan2(zeta.imag, zeta.real)
        for sgn in (1.0, -1.0):
            beta = alpha + sgn * math.acos(cos_d)  # 2 theta'
            e2phi = (zeta + c * complex(math.cos(beta), math.sin(beta))) / (0.5 * b2) if b2 > 0 else 1.0 + 0j
            th, ph = 0.5 * beta, 0.5 * math.atan2(e2phi.imag, e2phi.real)
            bn = math.sqrt(b2)
            s = np.array(
                [
                    xc + a_new * math.cos(th),
                    yc - 2.0 * a_new * math.sin(th),
                    bn * math.cos(ph),
                    -n * a_new * math.sin(th),
                    -1.5 * n * xc - 2.0 * n * a_new * math.cos(th),
                    -n * bn * math.sin(ph),
                ]
            )
            dr = a3.T @ s[0:3]
            xs = np.concatenate([r + dr, v + a3.T @ s[3:6] + np.cross(w, dr)])
            out.append((orbit_distance_m(xs, x0), xs))
    # spread: the farthest from x0 and from those taken, in turn; not its mirror images
    # (the fit takes those anyway)
    o6 = np.concatenate([r, v])
    images = [o6 + np.kron(np.eye(2), m3) @ (x0 - o6) for m3 in _image_maps(a3)]
    tol = max(DISTINCT_M, 0.1 * float(np.linalg.norm(d)))
    far = [p for p in out if p[0] > tol and all(orbit_distance_m(p[1], xi) > tol for xi in images)]
    taken: list[np.ndarray] = []
    while far and len(taken) < n_starts:
        k = max(range(len(far)), key=lambda i: min([orbit_distance_m(far[i][1], t) for t in taken] + [far[i][0]]))
        taken.append(far.pop(k)[1])
    return taken


def _image_maps(a3: np.ndarray) -> list[np.ndarray]:
    """3x3 GCRS maps of the mirror images (own orbit plane, point, both) for the RTN axes
    *a3* (rows)."""
    plane = np.eye(3) - 2.0 * np.outer(a3[2], a3[2])
    return [plane, -np.eye(3), -plane]
