"""The formation smoother's numeric core: every spacecraft's orbit, drag scale, range biases and
range time-tag offsets in one joint state, a forward Kalman filter and a Rauch-Tung-Striebel
smoother over it, iterated about the smoothed trajectory.  Pure functions on arrays; no I/O.

Units: GCRS, SI (m, m/s, m/s^2, s), times ``t_gps_s``.  Fixes come in ECEF as decoded and are
carried to GCRS with :func:`pygnc.estimation.gps_fix.fix_to_gcrs`.

Joint state (:class:`Layout`; N spacecraft, L directed links with ranges, M observers)::

    0-2            w_common_m_s2   empirical acceleration common to every spacecraft
                                   (Gauss-Markov, the orbit filter's dmc_sigma / dmc_tau)
    3+10i .. +2    r_i  [m]        spacecraft i's position
          +3 .. +5 v_i  [m/s]      its velocity
          +6 .. +8 dw_i [m/s^2]    its own empirical acceleration (Gauss-Markov,
                                   ``diff_dmc_*``: what differs from the common one;
                                   smaller along the orbit normal)
          +9       k_i  [-]        its drag scale (Gauss-Markov about 1)
    3+10N + l      b_l  [m]        range bias of directed link l (observer -> peer)
    3+10N+L + m    dt_m [s]        range time-tag lateness of observer m (tag minus true time)

Why common plus own accelerations: spacecraft kilometres apart feel nearly the same gravity
beyond the flight field (the largest unmodelled force), so the relative orbits forget only
at the rate of the small own parts, as in the flight's formation filter
(:mod:`pygnc.estimation.formation_filter`); two independent orbit filters could not carry a
range's information from one spacecraft to the other.  Each spacecraft is propagated with
the flight dynamics (:func:`pygnc.estimation.orbit_dynamics.propagate_step`: the orbit
filter's EGM2008 field, drag through Harris-Priester's atmosphere, Sun and Moon), its own
acceleration added in closed form.

Measurements, each at its own time t inside the step [t_k, t_k + h) of a regular grid:

* a GPS fix of spacecraft i: [r_i, v_i](t) + noise (the fix's sigmas, ECEF -> GCRS);
* a range measured by i to j: |r_j - r_i|(t - dt_i) + b_ij + noise, variance
  ``range_sigma_m``^2 + (range rate x tag resolution)^2 / 12 (whole-second tags).

The state at t is the step's quintic Hermite interpolation (:func:`od.interpolate_in_step`)
plus a linear correction: its Jacobian with respect to the state at t_k is
I + (tau / h) (Phi - I) (exact in the kinematic terms, ~1e-4 off in the gravity-gradient ones,
which multiply metres at most).

Pass 1 is an extended Kalman filter (linearised about its own prediction) with chi-square
gates and range acquisition (a range is used once the next one on its link agrees with it,
as on board); the RTS smoother follows.  Pass 2 runs the same filter linearised about pass
1's smoothed trajectory (a Gauss-Newton step of the whole arc's maximum a posteriori
problem), with the measurements whose smoothed residual is past ``edit_probability`` left
out instead of gated.  The information content is the same as a batch least squares with
process noise, at the cost of a filter: O(K n^2) per measurement and O(K n^3) per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pygnc.estimation import chi2
from pygnc.estimation import orbit_dynamics as od
from pygnc.estimation.formation_filter import rtn_matrix
from pygnc.estimation.gps_fix import GpsFix, fix_sigmas, fix_to_gcrs
from pygnc.estimation.tunables import OrbitFilterConfig

__all__ = [
    "Layout",
    "SmoothConfig",
    "SmootherInput",
    "SmootherResult",
    "grid_bytes",
    "smooth",
]

#: Measurement kinds in :attr:`SmootherResult.meas_kind`.
FIX, RANGE = 0, 1
#: Measurement states (:attr:`SmootherResult.meas_state`).
USED, REJECTED, HELD, EDITED, UNUSED = 0, 1, 2, 3, 4
STATE_NAMES = ("used", "rejected", "held", "edited", "unused")
#: The most a run may hold for its grid [bytes] (:func:`grid_bytes`); a longer span is refused
#: with the longest that fits (a laptop's memory, not the smoother's limit).
MAX_GRID_BYTES = 4 * 2**30


@dataclass(frozen=True)
class SmoothConfig:
    """Tunables of the smoother (SI units; sigmas 1-sigma per axis)."""

    #: The grid the state is estimated on [s]: one propagation step of every orbit.
    step_s: float = 30.0
    #: Gravity field, common empirical acceleration (``dmc_sigma_m_s2``, ``dmc_tau_s``),
    #: default fix noise, nominal ballistic coefficient: the flight orbit filter's; the drag
    #: through Harris-Priester's diurnal bulge, not the filter's static atmosphere: over a
    #: day the relative radial sigma falls to centimetres, below what the bulge's
    #: differential drag (ballistic coefficients and densities apart) moves it by.
    orbit: OrbitFilterConfig = field(default_factory=lambda: OrbitFilterConfig(atmosphere="harris_priester"))
    #: Each spacecraft's own empirical acceleration: steady-state sigma per axis in the
    #: orbit plane and correlation time (a pair's difference has sqrt(2) times the sigma).
    diff_dmc_sigma_m_s2: float = 1.4e-7
    diff_dmc_tau_s: float = 900.0
    #: ... its sigma along the orbit normal (None: the in-plane one).  What differs between
    #: spacecraft is mostly drag, along the velocity through the air; its cross-track part
    #: (the air turning with the Earth) is <= 7 % of it, so a day of fixes can pin the
    #: planes' difference far better than an isotropic sigma lets it.
    diff_dmc_cross_sigma_m_s2: float | None = 3e-8
    #: Drag scale per spacecraft, Gauss-Markov about 1.
    drag_scale_sigma: float = 1.0
    drag_scale_tau_s: float = 86_400.0
    #: Range noise [m]; bias prior sigma [m] and random walk [m/sqrt(s)] per link.
    range_sigma_m: float = 0.5
    range_bias_sigma_m: float = 10.0
    range_bias_walk_m_sqrt_s: float = 0.0
    #: Range time-tag lateness per observer: prior mean and sigma [s], random walk [s/sqrt(s)].
    #: A range's whole-second stamp is early by its second's fraction, but the clock map,
    #: fitted on the fixes' whole-second stamps, puts back the fixes' fraction: the lateness
    #: is the difference of two fractions, centred on zero, within a second either way, and
    #: moves as the clock drifts.
    time_offset_prior_s: float = 0.0
    time_offset_sigma_s: float = 0.5
    time_offset_walk_s_sqrt_s: float = 2e-3
    #: Resolution of the range time tags [s] (PY4: whole seconds).
    range_tag_resolution_s: float = 1.0
    #: Prior sigma of each orbit at the first epoch about its first fix [m, m/s].
    init_pos_sigma_m: float = 1000.0
    init_vel_sigma_m_s: float = 1.0
    #: Pass 1's gates (chi-square probability: fixes 6 dof, ranges 1 dof).
    fix_gate_probability: float = 0.9999
    range_gate_probability: float = 0.9999
    #: Range acquisition (pass 1): two consecutive ranges of a link within this window [s]
    #: (or 2.5 times the link's median range spacing) whose innovations agree within the
    #: tolerance [m]; after this many rejections in a row the link is acquired again.
    acquire_window_s: float = 120.0
    acquire_tol_m: float = 5.0
    max_range_rejections: int = 12
    #: Later passes leave out measurements whose smoothed residual is past this probability.
    edit_probability: float = 0.99999
    #: Passes: 1 = the extended filter and its smoother; 2 = iterated once about it.
    passes: int = 2

    def model(self, ballistic_coeff_kg_m2: float | None = None) -> od.DynamicsModel:
        """One spacecraft's dynamics: the orbit filter's, with a drag-scale state and the
        grid's step."""
        import dataclasses

        b = self.orbit.ballistic_coeff_kg_m2 if ballistic_coeff_kg_m2 is None else ballistic_coeff_kg_m2
        return dataclasses.replace(
            self.orbit,
            ballistic_coeff_kg_m2=b,
            estimate_drag_scale=True,
            drag_scale_tau_s=self.drag_scale_tau_s,
            max_step_s=self.step_s,
        ).dynamics()


@dataclass
class SmootherInput:
    """What the smoother reads, per spacecraft in state order.

    ``ids``: radio ids (N,); ``fixes``: per spacecraft a dict of its usable fixes' arrays
    ``t_gps_s`` (n,), ``pos_ecef_m``, ``vel_ecef_m_s`` (n, 3), ``pos_sigma_m``,
    ``vel_sigma_m_s`` (n, 3) (0 or NaN: not given); ``ranges``: ``t_gps_s`` (m,) the tags on
    the GPS axis, ``observer``, ``peer`` (m,) spacecraft indices, ``range_m`` (m,);
    ``ballistic_coeff_kg_m2``: per spacecraft (None: the configured one)."""

    ids: tuple
    fixes: list
    ranges: dict
    ballistic_coeff_kg_m2: tuple | None = None


class Layout:
    """Indices of the joint state (see the module docstring)."""

    def __init__(self, n_sc: int, links: list[tuple[int, int]]):
        self.n_sc = n_sc
        self.links = list(links)
        self.observers = sorted({o for o, _ in self.links})
        self.link_index = {lk: 3 + 10 * n_sc + i for i, lk in enumerate(self.links)}
        base = 3 + 10 * n_sc + len(self.links)
        self.offset_index = {o: base + i for i, o in enumerate(self.observers)}
        self.n = base + len(self.observers)

    @staticmethod
    def sc(i: int) -> int:
        """First index of spacecraft *i*'s block (r, v, dw, k)."""
        return 3 + 10 * i

    def sc_cols(self, i: int) -> np.ndarray:
        """The state columns spacecraft i's position and velocity depend on over a step:
        its r, v (6), the common acceleration (3), its own acceleration (3), its drag scale
        (13 columns)."""
        b = self.sc(i)
        return np.r_[b : b + 6, 0:3, b + 6 : b + 10]


@dataclass
class SmootherResult:
    """The smoothed estimates on the grid and what became of every measurement.

    ``t_gps_s`` (K,); ``x`` (K, n) the smoothed joint state; ``p_abs`` (K, N, 6, 6) each
    orbit's [r, v] covariance; ``var_drag`` (K, N); ``p_rel`` (K, P, 6, 6) the covariance of
    [r_j - r_i, v_j - v_i] for each unordered pair ``pairs[p] = (i, j)``, i < j;
    ``var_bias`` (K, L), ``var_offset`` (K, M); ``layout``.  Per measurement (in input order:
    all fixes of spacecraft 0, 1, ..., then the ranges): ``meas_kind``, ``meas_sc``
    (spacecraft, or observer), ``meas_peer`` (-1 for fixes), ``meas_t_gps_s``,
    ``meas_state`` (USED ...), ``meas_residual`` (the smoothed residual: range [m], fix: its
    normalised chi-square), ``meas_sigma`` (range: its sigma [m]; fix: 1).  ``passes`` run,
    ``pass_change`` the largest change of a relative position between the last two passes [m]."""

    t_gps_s: np.ndarray
    x: np.ndarray
    p_abs: np.ndarray
    var_drag: np.ndarray
    pairs: list
    p_rel: np.ndarray
    var_bias: np.ndarray
    var_offset: np.ndarray
    layout: Layout
    meas_kind: np.ndarray
    meas_sc: np.ndarray
    meas_peer: np.ndarray
    meas_t_gps_s: np.ndarray
    meas_state: np.ndarray
    meas_residual: np.ndarray
    meas_sigma: np.ndarray
    passes: int = 1
    pass_change: float = math.nan
    cpu_s: dict = field(default_factory=dict)

    def relative(self, i: int, j: int):
        """(dr (K, 3), dv (K, 3), cov (K, 6, 6)) of spacecraft j minus spacecraft i."""
        lay = self.layout
        bi, bj = lay.sc(i), lay.sc(j)
        d = self.x[:, bj : bj + 6] - self.x[:, bi : bi + 6]
        p = self.p_rel[:, self.pairs.index((min(i, j), max(i, j)))]
        return d[:, 0:3], d[:, 3:6], p

    def orbit(self, i: int):
        """(r (K, 3), v (K, 3), cov (K, 6, 6)) of spacecraft i, GCRS."""
        b = self.layout.sc(i)
        return self.x[:, b : b + 3], self.x[:, b + 3 : b + 6], self.p_abs[:, i]


# --------------------------------------------------------------------------- measurements
@dataclass
class _Meas:
    """One measurement as the filter sees it."""

    index: int  # position in the result's measurement arrays
    k: int  # grid step it falls in
    tau: float  # seconds after the step's start
    kind: int
    i: int  # spacecraft (fix) or observer (range)
    j: int  # peer (range) or -1
    z: np.ndarray  # fix: GCRS [r, v] (6,); range: (1,) m
    r: np.ndarray | None  # fix: its GCRS covariance (6, 6)
    t_gps_s: float


def _measurements(inp: SmootherInput, cfg: SmoothConfig, t0: float, h: float) -> tuple[list, np.ndarray]:
    """Every measurement, sorted by time (fixes before ranges at one instant), with its step,
    and the per-measurement kind/spacecraft/peer/time arrays."""
    out = []
    kinds, scs, peers, times = [], [], [], []
    idx = 0
    for i, fx in enumerate(inp.fixes):
        t = np.asarray(fx["t_gps_s"], dtype=float)
        for n in range(t.size):
            fix = GpsFix.from_table(fx, n)
            z, r = fix_to_gcrs(fix, *fix_sigmas(cfg.orbit, fix))
            k = int((t[n] - t0) // h)
            out.append(_Meas(idx, k, float(t[n] - t0 - k * h), FIX, i, -1, z, r, float(t[n])))
            kinds.append(FIX), scs.append(i), peers.append(-1), times.append(float(t[n]))
            idx += 1
    rg = inp.ranges
    tr = np.asarray(rg["t_gps_s"], dtype=float)
    for n in range(tr.size):
        k = int((tr[n] - t0) // h)
        o, p = int(rg["observer"][n]), int(rg["peer"][n])
        out.append(
            _Meas(
                idx, k, float(tr[n] - t0 - k * h), RANGE, o, p, np.array([float(rg["range_m"][n])]), None, float(tr[n])
            )
        )
        kinds.append(RANGE), scs.append(o), peers.append(p), times.append(float(tr[n]))
        idx += 1
    out.sort(key=lambda m: (m.t_gps_s, m.kind, m.index))
    arrays = (
        np.array(kinds, dtype=np.int8),
        np.array(scs, dtype=np.int16),
        np.array(peers, dtype=np.int16),
        np.array(times, dtype=float),
    )
    return out, arrays


# --------------------------------------------------------------------------- dynamics
def _own_shape(cfg: SmoothConfig, normal) -> np.ndarray:
    """The own acceleration's covariance per unit of its Gauss-Markov response (3, 3, GCRS):
    ``diff_dmc_sigma_m_s2`` squared in the orbit plane, ``diff_dmc_cross_sigma_m_s2`` squared
    along *normal* (the spacecraft's orbit normal, a unit vector)."""
    s_in = cfg.diff_dmc_sigma_m_s2
    s_n = s_in if cfg.diff_dmc_cross_sigma_m_s2 is None else cfg.diff_dmc_cross_sigma_m_s2
    nn = np.outer(normal, normal)
    return s_in**2 * (np.eye(3) - nn) + s_n**2 * nn


def _q_matrix(lay: Layout, cfg: SmoothConfig, h: float, normals) -> np.ndarray:
    """Process noise of the joint state over a step of *h* s (see the module docstring);
    *normals*: each spacecraft's orbit normal (N, 3) for its own acceleration's shape."""
    n = lay.n
    q = np.zeros((n, n))
    qc = od.dmc_process_noise(h, cfg.orbit.dmc_tau_s, cfg.orbit.dmc_sigma_m_s2)
    qd = od.dmc_process_noise(h, cfg.diff_dmc_tau_s, 1.0)
    ns = lay.n_sc
    for ax in range(3):
        # (r, v) of every spacecraft driven by the same common noise: fully correlated.
        rows = [lay.sc(i) + ax for i in range(ns)] + [lay.sc(i) + 3 + ax for i in range(ns)]
        blk = np.kron(qc[0:2, 0:2], np.ones((ns, ns)))
        q[np.ix_(rows, rows)] += blk
        for i in range(ns):
            b = lay.sc(i)
            q[b + ax, ax] = q[ax, b + ax] = qc[0, 2]
            q[b + 3 + ax, ax] = q[ax, b + 3 + ax] = qc[1, 2]
        q[ax, ax] = qc[2, 2]
    for i in range(ns):
        # own acceleration: each of r, v, w's 3 axes; the response's shape times the axes'
        b = lay.sc(i)
        q[b : b + 9, b : b + 9] += np.kron(qd, _own_shape(cfg, normals[i]))
    for i in range(ns):
        k = lay.sc(i) + 9
        q[k, k] = cfg.drag_scale_sigma**2 * (1.0 - math.exp(-2.0 * h / cfg.drag_scale_tau_s))
    for idx in lay.link_index.values():
        q[idx, idx] = cfg.range_bias_walk_m_sqrt_s**2 * h
    for idx in lay.offset_index.values():
        q[idx, idx] = cfg.time_offset_walk_s_sqrt_s**2 * h
    return q


@dataclass
class _Step:
    """One step of every orbit from a linearisation point: what measurements inside it and
    the next prediction need."""

    h: float
    t0: float
    lin: np.ndarray  # the joint linearisation point at the step's start (n,)
    s0: list  # per spacecraft: its 10-state [r, v, w_common, k] at the start
    s1: list  # ... at the end (without its own acceleration's share)
    ends: list  # per spacecraft: the end accelerations (interpolate_in_step)
    phi: list  # per spacecraft: 10 x 10 transition of [r, v, w_common, k]
    x1: np.ndarray  # the joint state at the step's end, propagated from lin (n,)


def _dw_shares(tau: float, tau_d: float) -> tuple[float, float, float]:
    """(c_r, c_v, decay): the own acceleration dw0 exp(-t / tau_d) integrated once (c_v dw0),
    twice (c_r dw0) over *tau* s, and its decay."""
    decay = math.exp(-tau / tau_d)
    c_v = tau_d * (1.0 - decay)
    return tau_d * (tau - c_v), c_v, decay


def _propagate(lay: Layout, cfg: SmoothConfig, models: list, lin: np.ndarray, t0: float, h: float) -> _Step:
    s0, s1, ends, phis = [], [], [], []
    x1 = lin.copy()
    c_r, c_v, decay = _dw_shares(h, cfg.diff_dmc_tau_s)
    for i in range(lay.n_sc):
        b = lay.sc(i)
        s = np.concatenate((lin[b : b + 6], lin[0:3], lin[b + 9 : b + 10]))
        new, phi, e = od.propagate_step(s, h, models[i], t0)
        s0.append(s), s1.append(new), ends.append(e), phis.append(phi)
        dw = lin[b + 6 : b + 9]
        x1[b : b + 3] = new[0:3] + c_r * dw
        x1[b + 3 : b + 6] = new[3:6] + c_v * dw
        x1[b + 6 : b + 9] = dw * decay
        x1[b + 9] = new[9]
        if i == 0:
            x1[0:3] = new[6:9]
    return _Step(h, t0, lin, s0, s1, ends, phis, x1)


def _joint_phi(lay: Layout, cfg: SmoothConfig, step: _Step) -> np.ndarray:
    """The joint transition over *step* (n, n)."""
    n = lay.n
    phi = np.eye(n)
    h = step.h
    c_r, c_v, decay = _dw_shares(h, cfg.diff_dmc_tau_s)
    phi[0:3, 0:3] = step.phi[0][6:9, 6:9]
    for i in range(lay.n_sc):
        b = lay.sc(i)
        p = step.phi[i]
        phi[b : b + 6, b : b + 6] = p[0:6, 0:6]
        phi[b : b + 6, 0:3] = p[0:6, 6:9]
        phi[b : b + 6, b + 9] = p[0:6, 9]
        for a in range(3):
            phi[b + a, b + 6 + a] = c_r
            phi[b + 3 + a, b + 6 + a] = c_v
            phi[b + 6 + a, b + 6 + a] = decay
        phi[b + 9, b + 9] = p[9, 9]
    return phi


def _state_at(lay: Layout, cfg: SmoothConfig, step: _Step, i: int, tau: float):
    """(spacecraft i's [r, v] (6,) at *tau* s into *step* as propagated from its
    linearisation point, J (6, 13) its Jacobian with respect to the joint state's
    :meth:`Layout.sc_cols`)."""
    h = step.h
    b = lay.sc(i)
    if abs(tau) < 1e-9:
        x = step.s0[i][0:6].copy()
    else:
        x = np.array(od.interpolate_in_step(step.s0[i], step.s1[i], step.ends[i], tau, h)[0:6])
    c_r, c_v, _ = _dw_shares(tau, cfg.diff_dmc_tau_s)
    dw = step.lin[b + 6 : b + 9]
    x[0:3] += c_r * dw
    x[3:6] += c_v * dw
    f = tau / h
    p = step.phi[i]
    jac = np.zeros((6, 13))
    jac[:, 0:6] = f * p[0:6, 0:6]
    jac[:, 0:6] += (1.0 - f) * np.eye(6)
    jac[:, 6:9] = f * p[0:6, 6:9]
    jac[0:3, 9:12] = c_r * np.eye(3)
    jac[3:6, 9:12] = c_v * np.eye(3)
    jac[:, 12] = f * p[0:6, 9]
    return x, jac


# --------------------------------------------------------------------------- one pass
@dataclass
class _Pass:
    x_post: np.ndarray  # (K, n)
    p_post: np.ndarray  # (K, n, n)
    x_pred: np.ndarray  # (K, n) prediction at each epoch (row 0: the prior)
    phis: list  # per step: the joint Phi (n, n)
    q: dict  # h -> Q
    lin: list  # per step: the linearisation point
    terms: dict  # measurement index -> (k, y0 (d,), cols (m,), H (d, m), R (d, d))
    state: np.ndarray  # per measurement (input order)


def _initial(lay: Layout, cfg: SmoothConfig, inp: SmootherInput, models: list, t0: float):
    """Prior at the first epoch: each orbit at its first fix carried to t0, the configured
    sigmas; accelerations zero; drag scales 1; biases 0; offsets at their prior."""
    n = lay.n
    x = np.zeros(n)
    p = np.zeros((n, n))
    sc_ = cfg.orbit.dmc_sigma_m_s2**2
    p[0:3, 0:3] = np.eye(3) * sc_
    for i, fx in enumerate(inp.fixes):
        b = lay.sc(i)
        fix = GpsFix.from_table(fx, 0)
        t = fix.t_gps_s
        z, _ = fix_to_gcrs(fix, np.ones(3), np.ones(3))
        s = np.concatenate((z, np.zeros(3), [1.0]))
        if abs(t - t0) > 0:
            s, _ = od.propagate(s, t0 - t, models[i], want_phi=False, t_gps_s=t)
        x[b : b + 6] = s[0:6]
        x[b + 9] = 1.0
        p[b : b + 3, b : b + 3] = np.eye(3) * cfg.init_pos_sigma_m**2
        p[b + 3 : b + 6, b + 3 : b + 6] = np.eye(3) * cfg.init_vel_sigma_m_s**2
        p[b + 6 : b + 9, b + 6 : b + 9] = _own_shape(cfg, rtn_matrix(x[b : b + 3], x[b + 3 : b + 6])[2])
        p[b + 9, b + 9] = cfg.drag_scale_sigma**2
    for idx in lay.link_index.values():
        p[idx, idx] = cfg.range_bias_sigma_m**2
    for idx in lay.offset_index.values():
        x[idx] = cfg.time_offset_prior_s
        p[idx, idx] = cfg.time_offset_sigma_s**2
    return x, p


def _fix_terms(lay, cfg, step: _Step, m: _Meas):
    """(y0 = z - h(lin), cols, H, R) of a fix."""
    x, jac = _state_at(lay, cfg, step, m.i, m.tau)
    return m.z - x, lay.sc_cols(m.i), jac, m.r


def _range_terms(lay, cfg, step: _Step, m: _Meas):
    """(y0, cols, H, R) of a range, or None without a line of sight."""
    lin = step.lin
    io = lay.offset_index[m.i]
    il = lay.link_index[(m.i, m.j)]
    tau = m.tau - lin[io]
    xi, ji = _state_at(lay, cfg, step, m.i, tau)
    xj, jj = _state_at(lay, cfg, step, m.j, tau)
    p = xj[0:3] - xi[0:3]
    rho = float(np.sqrt(p @ p))
    if not rho > 0.0:
        return None
    u = p / rho
    pdot = xj[3:6] - xi[3:6]
    rate = float(u @ pdot)
    ci, cj = lay.sc_cols(m.i), lay.sc_cols(m.j)
    # columns: spacecraft i's 13, spacecraft j's (minus the shared common acceleration), bias, offset
    hi = -(u @ ji[0:3])
    hj = u @ jj[0:3]
    cols = np.concatenate((ci, cj[0:6], cj[9:13], [il, io]))
    hrow = np.concatenate((hi, hj[0:6], hj[9:13], [1.0, -rate]))
    hrow[6:9] += hj[6:9]  # the common acceleration's columns are shared
    var = cfg.range_sigma_m**2 + (rate * cfg.range_tag_resolution_s) ** 2 / 12.0
    y0 = m.z - (rho + lin[il])
    return y0, cols, hrow[None, :], np.array([[var]])


def _run_pass(lay, cfg, inp, models, meas_by_step, n_meas, t_grid, x0, p0, lin_points, edits):
    """One forward filter pass.  *lin_points* None: linearise about the filter's prediction
    (pass 1, gated, ranges acquired); else about those states (K, n), *edits* (bool per
    measurement) left out."""
    kk = t_grid.size
    n = lay.n
    x_post = np.empty((kk, n))
    p_post = np.empty((kk, n, n))
    x_pred = np.empty((kk, n))
    phis, lins = [], []
    q_cache: dict = {}
    terms: dict = {}
    state = np.full(n_meas, UNUSED, dtype=np.int8)
    fix_gate = chi2.quantile(cfg.fix_gate_probability, 6)
    range_gate = chi2.quantile(cfg.range_gate_probability, 1)
    gated = lin_points is None
    fixes_used = np.zeros(lay.n_sc, dtype=np.int64)
    # Acquisition window per link: at least 2.5 range spacings (a downlink keeps one in 5 min).
    t_link: dict = {}
    for ms in meas_by_step.values():
        for m in ms:
            if m.kind == RANGE:
                t_link.setdefault((m.i, m.j), []).append(m.t_gps_s)
    acquire_window = {
        lk: max(cfg.acquire_window_s, 2.5 * float(np.median(np.diff(np.sort(t)))))
        if len(t) > 1
        else cfg.acquire_window_s
        for lk, t in t_link.items()
    }
    acquired: dict = {}
    candidate: dict = {}
    rejections: dict = {}
    # Each orbit's plane from the first epoch: the node moves 1-5 deg a day, which moves a
    # few per cent of the in-plane sigma onto the normal - more noise there, not less.
    normals = [rtn_matrix(x0[b : b + 3], x0[b + 3 : b + 6])[2] for b in map(lay.sc, range(lay.n_sc))]
    x, p = x0.copy(), p0.copy()
    x_pred[0] = x0
    for k in range(kk):
        h = float(t_grid[k + 1] - t_grid[k]) if k + 1 < kk else cfg.step_s
        lin = x.copy() if gated else lin_points[k].copy()
        lins.append(lin)
        last = k + 1 == kk
        step = None if last else _propagate(lay, cfg, models, lin, float(t_grid[k]), h)
        for m in meas_by_step.get(k, ()):
            if m.kind == FIX:
                y0, cols, hm, r = _fix_terms(lay, cfg, step, m)
            else:
                if gated and (fixes_used[m.i] == 0 or fixes_used[m.j] == 0):
                    continue  # (UNUSED) the line of sight is not known to metres yet
                t = _range_terms(lay, cfg, step, m)
                if t is None:
                    continue
                y0, cols, hm, r = t
            terms[m.index] = (k, y0, cols, hm, r)  # (an edited one too: its residual is judged again)
            if edits is not None and edits[m.index]:
                state[m.index] = EDITED
                continue
            nu = y0 - hm @ (x[cols] - lin[cols])
            pht = p[:, cols] @ hm.T
            s = hm @ pht[cols] + r
            s = 0.5 * (s + s.T)
            try:
                sinv_nu = np.linalg.solve(s, nu)
            except np.linalg.LinAlgError:
                state[m.index] = REJECTED
                continue
            nis = float(nu @ sinv_nu)
            if gated:
                if m.kind == FIX:
                    if not nis <= fix_gate:
                        state[m.index] = REJECTED
                        continue
                else:
                    link = (m.i, m.j)
                    if not acquired.get(link, False):
                        cand = candidate.get(link)
                        candidate[link] = (m.t_gps_s, float(nu[0]))
                        if not (
                            cand is not None
                            and m.t_gps_s - cand[0] <= acquire_window.get(link, cfg.acquire_window_s)
                            and abs(float(nu[0]) - cand[1]) <= cfg.acquire_tol_m
                        ):
                            state[m.index] = HELD
                            continue
                        acquired[link] = True
                    if not nis <= range_gate:
                        state[m.index] = REJECTED
                        rejections[link] = rejections.get(link, 0) + 1
                        if rejections[link] >= cfg.max_range_rejections:  # acquire again
                            acquired[link] = False
                            candidate.pop(link, None)
                            rejections[link] = 0
                        continue
                    rejections[link] = 0
            gain = pht @ np.linalg.inv(s)
            x = x + gain @ nu
            p = p - gain @ pht.T
            p = 0.5 * (p + p.T)
            state[m.index] = USED
            if m.kind == FIX:
                fixes_used[m.i] += 1
        x_post[k] = x
        p_post[k] = p
        if not last:
            phi = _joint_phi(lay, cfg, step)
            key = round(h, 6)
            q = q_cache.get(key)
            if q is None:
                q = q_cache[key] = _q_matrix(lay, cfg, h, normals)
            x = step.x1 + phi @ (x - lin)
            p = phi @ p @ phi.T + q
            p = 0.5 * (p + p.T)
            x_pred[k + 1] = x
            phis.append((phi, key))
    return _Pass(x_post, p_post, x_pred, phis, q_cache, lins, terms, state)


def _solve_sym(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a^-1 b for a symmetric positive definite *a* of badly mixed scales (equilibrated)."""
    d = np.sqrt(np.abs(np.diag(a)))
    d[d == 0.0] = 1.0
    an = a / np.outer(d, d)
    try:
        c = np.linalg.cholesky(an)
        y = np.linalg.solve(c, b / d[:, None])
        return np.linalg.solve(c.T, y) / d[:, None]
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(an, b / d[:, None], rcond=None)[0] / d[:, None]


def _rts(lay, ps: _Pass, keep_blocks, on_epoch=None):
    """Rauch-Tung-Striebel over a pass: the smoothed states (K, n) and, per epoch, what
    *keep_blocks* (P) extracts from the smoothed covariance; *on_epoch* (k, x, P) sees each
    epoch's smoothed state and covariance as the backward pass makes them."""
    kk = ps.x_post.shape[0]
    xs = np.empty_like(ps.x_post)
    xs[-1] = ps.x_post[-1]
    pk = ps.p_post[-1]
    blocks = [None] * kk
    blocks[-1] = keep_blocks(pk)
    if on_epoch is not None:
        on_epoch(kk - 1, xs[-1], pk)
    for k in range(kk - 2, -1, -1):
        phi, key = ps.phis[k]
        pp = ps.p_post[k]
        p_pred = phi @ pp @ phi.T + ps.q[key]
        p_pred = 0.5 * (p_pred + p_pred.T)
        c = _solve_sym(p_pred, phi @ pp).T
        xs[k] = ps.x_post[k] + c @ (xs[k + 1] - ps.x_pred[k + 1])
        pk = pp + c @ (pk - p_pred) @ c.T
        pk = 0.5 * (pk + pk.T)
        blocks[k] = keep_blocks(pk)
        if on_epoch is not None:
            on_epoch(k, xs[k], pk)
    return xs, blocks


class _Residuals:
    """Smoothed residuals of every measurement a pass linearised, made epoch by epoch in the
    backward pass: ``res`` (a range's in metres; a fix's chi-square, 6 dof, against its own
    noise), ``sig`` (a range's sigma; 1 for a fix), and ``edit`` - the residual's chi-square
    against its own variance, what decides an outlier: R - H P H^T for a range the pass used
    (at least R / 10; for a used fix R), R + H P H^T for a measurement it left out (gated, or
    held in acquisition: judged by the smoothed prediction)."""

    def __init__(self, ps: _Pass, n_meas: int):
        self.ps = ps
        self.res = np.full(n_meas, np.nan)
        self.sig = np.full(n_meas, np.nan)
        self.edit = np.full(n_meas, np.nan)
        self.by_epoch: dict = {}
        for idx, term in ps.terms.items():
            self.by_epoch.setdefault(term[0], []).append(idx)

    def __call__(self, k, x, p):
        lin = self.ps.lin[k]
        for idx in self.by_epoch.get(k, ()):
            _, y0, cols, hm, r = self.ps.terms[idx]
            e = y0 - hm @ (x[cols] - lin[cols])
            hph = hm @ p[np.ix_(cols, cols)] @ hm.T
            if self.ps.state[idx] != USED:
                s = r + hph
            elif e.size == 1:
                s = np.maximum(r - hph, 0.1 * r)
            else:
                s = r  # (a fix's 10 m against an orbit known to a metre: R - HPH^T ~ R)
            if e.size == 1:
                self.res[idx] = float(e[0])
                self.sig[idx] = math.sqrt(float(r[0, 0]))
                self.edit[idx] = float(e[0]) ** 2 / float(s[0, 0])
            else:
                self.res[idx] = float(e @ np.linalg.solve(r, e))
                self.sig[idx] = 1.0
                self.edit[idx] = float(e @ np.linalg.solve(s, e))


def _relative_change(lay: Layout, xs, xs_prev, i: int, j: int) -> float:
    """The largest change of spacecraft j's position relative to i between two trajectories [m]."""
    bi, bj = lay.sc(i), lay.sc(j)
    d = (xs[:, bj : bj + 3] - xs[:, bi : bi + 3]) - (xs_prev[:, bj : bj + 3] - xs_prev[:, bi : bi + 3])
    return float(np.max(np.abs(d)))


def grid_bytes(lay: Layout, kk: int) -> int:
    """What a run holds for a grid of *kk* steps at its peak [bytes]: one pass's covariance and
    transition per step (the previous pass is let go first), its states (filtered, predicted,
    linearisation point, smoothed, the previous pass's), the smoothed blocks kept for the result
    (twice while they are stacked), and about 2 KiB of numpy's and Python's headers per step."""
    n_sc = lay.n_sc
    kept = 37 * n_sc + 36 * (n_sc * (n_sc - 1) // 2) + len(lay.links) + len(lay.observers)
    return kk * (8 * (2 * lay.n**2 + 6 * lay.n + 2 * kept) + 2048)


def smooth(inp: SmootherInput, cfg: SmoothConfig | None = None, progress=None) -> SmootherResult:
    """Smooth every spacecraft's fixes and every range between them over their whole span (see
    the module docstring).  Each spacecraft needs at least one usable fix (``ValueError``
    otherwise); ranges whose observer or peer is not an input spacecraft are left out by the
    caller.  *progress*: called with a line of text after each pass."""
    import time

    cfg = cfg or SmoothConfig()
    n_sc = len(inp.ids)
    for i, fx in enumerate(inp.fixes):
        if len(fx["t_gps_s"]) == 0:
            raise ValueError(f"spacecraft {inp.ids[i]:#04x} has no usable GPS fix")
    rg = inp.ranges
    links = sorted({(int(o), int(p)) for o, p in zip(rg["observer"], rg["peer"])})
    lay = Layout(n_sc, links)
    bcs = inp.ballistic_coeff_kg_m2 or (None,) * n_sc
    models = [cfg.model(b) for b in bcs]
    t_all = np.concatenate([np.asarray(f["t_gps_s"], dtype=float) for f in inp.fixes] + [np.asarray(rg["t_gps_s"])])
    h = float(cfg.step_s)
    t0 = math.floor(float(t_all.min()))  # the grid starts at the first measurement's whole second
    kk = int(math.floor((float(t_all.max()) - t0) / h)) + 2  # the last measurement strictly inside a step
    need = grid_bytes(lay, kk)
    if need > MAX_GRID_BYTES:
        most_days = MAX_GRID_BYTES / grid_bytes(lay, 1) * h / 86400.0
        raise ValueError(
            f"the measurements span {(t_all.max() - t0) / 86400.0:.3g} days: {kk} steps of {h:g} s would hold "
            f"about {need / 2**30:.1f} GiB; smooth at most {most_days:.3g} days at once (or take a longer --step-s)"
        )
    t_grid = t0 + h * np.arange(kk)
    meas, (kinds, scs, peers, times) = _measurements(inp, cfg, t0, h)
    n_meas = len(meas)
    by_step: dict = {}
    for m in meas:
        by_step.setdefault(m.k, []).append(m)
    x0, p0 = _initial(lay, cfg, inp, models, t0)

    pairs = [(i, j) for i in range(n_sc) for j in range(i + 1, n_sc)]
    sc_idx = [lay.sc(i) for i in range(n_sc)]
    link_idx = [lay.link_index[lk] for lk in lay.links]
    off_idx = [lay.offset_index[o] for o in lay.observers]

    def keep_blocks(pk):
        ab = np.stack([pk[b : b + 6, b : b + 6] for b in sc_idx])
        rel = []
        for i, j in pairs:
            bi, bj = sc_idx[i], sc_idx[j]
            rel.append(
                pk[bj : bj + 6, bj : bj + 6]
                + pk[bi : bi + 6, bi : bi + 6]
                - pk[bj : bj + 6, bi : bi + 6]
                - pk[bi : bi + 6, bj : bj + 6]
            )
        return (
            ab,
            np.array([pk[b + 9, b + 9] for b in sc_idx]),
            np.stack(rel) if rel else np.zeros((0, 6, 6)),
            np.array([pk[i, i] for i in link_idx]),
            np.array([pk[i, i] for i in off_idx]),
        )

    cpu = {}
    edits = None
    lin_points = None
    xs_prev = None
    change = math.nan
    passes = max(1, int(cfg.passes))
    for n_pass in range(passes):
        c0 = time.process_time()
        ps = _run_pass(lay, cfg, inp, models, by_step, n_meas, t_grid, x0, p0, lin_points, edits)
        c1 = time.process_time()
        resid = _Residuals(ps, n_meas)
        xs, blocks = _rts(lay, ps, keep_blocks, resid)
        c2 = time.process_time()
        res, sig = resid.res, resid.sig
        cpu[f"pass{n_pass + 1}_filter_s"] = c1 - c0
        cpu[f"pass{n_pass + 1}_smoother_s"] = c2 - c1
        if xs_prev is not None:
            change = max((_relative_change(lay, xs, xs_prev, i, j) for i, j in pairs), default=0.0)
        if progress:
            used = int(np.sum(ps.state == USED))
            progress(f"pass {n_pass + 1}: {used} of {n_meas} measurements used, {c2 - c0:.1f} s CPU")
        if n_pass + 1 < passes:
            # Leave out what the smoothed trajectory says is an outlier; linearise about it.
            gate = np.where(
                kinds == FIX, chi2.quantile(cfg.edit_probability, 6), chi2.quantile(cfg.edit_probability, 1)
            )
            edits = np.isfinite(resid.edit) & (resid.edit > gate)
            lin_points = xs
            xs_prev = xs
            del ps, resid, blocks  # (let this pass go before the next: one pass's grid at a time)
    ab, dg, rel, vb, vo = (np.stack([b[q] for b in blocks]) for q in range(5))
    return SmootherResult(
        t_gps_s=t_grid,
        x=xs,
        p_abs=ab,
        var_drag=dg,
        pairs=pairs,
        p_rel=rel,
        var_bias=vb,
        var_offset=vo,
        layout=lay,
        meas_kind=kinds,
        meas_sc=scs,
        meas_peer=peers,
        meas_t_gps_s=times,
        meas_state=ps.state,
        meas_residual=res,
        meas_sigma=sig,
        passes=passes,
        pass_change=change,
        cpu_s=cpu,
    )
