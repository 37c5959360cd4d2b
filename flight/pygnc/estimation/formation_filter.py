"""Relative navigation of one peer: own GPS, peer GPS and crosslink ranges in one EKF.

Two spacecraft a few km apart feel almost the same unmodelled accelerations (gravity beyond
the flight field, Sun/Moon, drag-model error), and their difference is about a hundred times
smaller.  So the state carries the own orbit and the peer's orbit *relative* to it, with the
unmodelled acceleration split into a **common** part (the orbit filter's dynamic model
compensation, acting on both) and a small **differential** part (the peer only).  The
relative state then forgets only at the rate of the differential acceleration (hours, not
minutes), so it averages many fixes of both receivers through the relative dynamics, and the
ranges pin the line of sight.  Two independent orbit filters could do neither.

State (GCRS, SI), index: meaning
    0-2    r_own_gcrs_m        own position [m]
    3-5    v_own_gcrs_m_s      own velocity [m/s]
    6-8    w_common_m_s2       common empirical acceleration [m/s^2] (Gauss-Markov,
                               ``common_dmc_*``; acts on both spacecraft)
    9-11   dr_gcrs_m           peer minus own position [m]
    12-14  dv_gcrs_m_s         peer minus own velocity [m/s]
    15-17  dw_m_s2             differential empirical acceleration [m/s^2] (Gauss-Markov,
                               ``diff_dmc_*``; acts on the peer only)
    18     peer_drag_scale     multiplier of the peer's modelled drag [-] (Gauss-Markov
                               about 1): the ballistic-coefficient difference the
                               configuration does not know
    19     range_bias_m        calibration bias of the radio's range [m]
    20     range_time_offset_s lateness of the range time tags on the GPS axis [s]
                               (the spacecraft clock map is fitted on whole-second
                               stamps, so range tags are late by the stamp's lost
                               fraction, 0..1 s; zero variance unless
                               ``estimate_range_time_offset``)

Dynamics: both spacecraft are propagated with the orbit estimator's model
(:func:`pygnc.estimation.orbit_dynamics.propagate`, steps up to ``max_step_s``) - the own
orbit from (r, v, w_common), the peer from (r + dr, v + dv, w_common, peer_drag_scale) with
its ballistic coefficient, plus the differential acceleration decaying in closed form - and
the relative state is the difference of the two propagated states, so every modelled force
is differenced exactly.  The peer's transition matrix is the own one plus the gravity
gradient's change over the separation
(:func:`~pygnc.estimation.orbit_dynamics.neighbour_transition_terms`), which is also the
coupling of the relative state to the own state.  The drag's density is Harris-Priester's
(its diurnal bulge; range-only partners: the exponential atmosphere).  Process noise: the
exact discrete Gauss-Markov covariance
(:func:`~pygnc.estimation.orbit_dynamics.dmc_process_noise`) of each chain, the differential
one's sigma growing with the semi-major axis difference and with the relative drag.
Estimates between steps: :meth:`FormationFilter.tap`.

Measurements
    * own fix  (a :class:`~pygnc.estimation.gps_fix.GpsFix` in ECEF, converted by
      :func:`~pygnc.estimation.gps_fix.fix_to_gcrs`):
      z = [r_own, v_own] + e_own
    * peer fix: z = [r_own + dr, v_own + dv] + e_peer (independent receiver noise)
    * range:    z = |dr(t - dt)| + b.  A range tagged up to ``range_extrapolate_max_s``
      after the filter time is applied at the filter time, dr carried to the range's time
      by a third-order Taylor series in the point-mass gravity gradient
      (:meth:`FormationFilter.range_model`), so the filter steps between own fixes only.

Each is gated on its normalised innovation squared (chi-square with 6 or 1 degree of
freedom at ``*_gate_probability``); the update is the Joseph form.  After
``max_consecutive_rejections`` rejected fixes of one receiver the filter re-initialises
from the next pair of fixes (a lost filter rejects everything).  A state started from one
pair of fixes is not :attr:`~FormationFilter.confirmed` until a later fix of each receiver
has passed the gate: either fix of the pair may be an outlier (1 km off), which the fix-level
sigma it starts with would not cover; after a re-initialisation on rejected fixes, until
``max_consecutive_rejections`` + 1 later fixes of each have, over at least
``orbit.restart_confirm_min_span_s`` when a confirmed track was left (a receiver's glitch of
agreeing fixes is not taken over the track it interrupted), two rejections in a row
restarting it.  Ranges are *acquired*: the
first is used only when the next agrees with it (a lone outlier would otherwise capture the
still-loose line of sight, after which every good range is rejected); after
``max_consecutive_range_rejections`` rejections in a row they are re-acquired and the bias
re-opened at the value the agreeing pair gives (a jump of the radio's calibration).

The line of sight is only as good as the range bias: a constant bias and the mean
along-track separation look alike to the ranges, so only the fixes (or a bias known from
earlier batches, ``range_bias_prior_m`` / ``range_bias_sigma_m``) separate them.  The range
time-tag lateness is only weakly observable and is carried mainly for consistency.  An EKF
suffices: at these separations the range's curvature and the dynamics' second-order terms
are far below the measurement noise (the tests compare the range update with a UKF's).
``bench/bench_formation.py`` measures the accuracy against the information bound, and the
cost.

Everything here is pure computation: arrays in, arrays out, no I/O.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from pygnc import frames
from pygnc.estimation import chi2
from pygnc.estimation import orbit_dynamics as od
from pygnc.estimation.gps_fix import GpsFix, fix_sigmas, fix_to_gcrs
from pygnc.estimation.tunables import FormationFilterConfig
from pygnc.estimation.update_result import HELD, REJECTED, USED, Update

if TYPE_CHECKING:
    from pygnc.estimation.quaternion import Vector

__all__ = [
    "I_DR",
    "I_DRAG_SCALE",
    "I_DV",
    "I_DW",
    "I_RANGE_BIAS",
    "I_RANGE_DT",
    "I_R_OWN",
    "I_V_OWN",
    "I_W_COMMON",
    "N_STATES",
    "FormationFilter",
    "FormationFilterConfig",
    "rtn_matrix",
    "rtn_to_gcrs",
]

N_STATES = 21
I_R_OWN, I_V_OWN, I_W_COMMON = slice(0, 3), slice(3, 6), slice(6, 9)
I_DR, I_DV, I_DW = slice(9, 12), slice(12, 15), slice(15, 18)
I_DRAG_SCALE, I_RANGE_BIAS, I_RANGE_DT = 18, 19, 20
#: The rows and columns of P an estimate reports (its published sigmas and covariances): the
#: relative state [dr, dv], then the range bias.
I_REPORTED = np.array([9, 10, 11, 12, 13, 14, I_RANGE_BIAS])
_IX_REPORTED = np.ix_(I_REPORTED, I_REPORTED)
_EYE_REPORTED = np.eye(N_STATES)[I_REPORTED]


def _put_chain(q: np.ndarray, first: int, q3: np.ndarray) -> None:
    """Write a Gauss-Markov chain's (3, 3) position / velocity / acceleration covariance *q3*
    (:func:`od.dmc_process_noise`) into *q* for each axis: its states at ``first + 3 k + axis``."""
    for ii in range(3):
        for jj in range(3):
            for ax in range(3):
                q[first + 3 * ii + ax, first + 3 * jj + ax] = q3[ii, jj]


def reported_block(p: np.ndarray) -> np.ndarray:
    """P (n, n) -> its :data:`I_REPORTED` rows and columns (7, 7)."""
    return p[_IX_REPORTED]


def line_of_sight_sigma(dr_m: ArrayLike, p_rr: np.ndarray) -> float:
    """1-sigma [m] of a relative position *dr_m* (3,) with covariance *p_rr* (3, 3) along its
    line of sight.  With no line of sight (a relative position of exactly zero, as corrupt
    inputs can leave) the largest sigma of any direction: never less than the true one."""
    dr = np.asarray(dr_m, dtype=float)
    norm = math.sqrt(float(dr @ dr))
    if not norm > 0.0:
        return float(math.sqrt(max(0.0, float(np.linalg.eigvalsh(p_rr)[-1]))))
    u = dr / norm
    return float(math.sqrt(max(0.0, u @ p_rr @ u)))


_ECEF_J: dict[float, np.ndarray] = {}


def ecef_jacobian(t_gps_s: float) -> np.ndarray:
    """:func:`pygnc.frames.rv_gcrs_to_ecef_matrix` at *t_gps_s* (memoised by time: every
    partner's estimate of one instant uses the same; read-only)."""
    j = _ECEF_J.get(t_gps_s)
    if j is None:
        if len(_ECEF_J) >= 16:
            _ECEF_J.clear()
        j = frames.rv_gcrs_to_ecef_matrix(frames.gcrs_from_itrs_matrix(t_gps_s))
        j.setflags(write=False)
        _ECEF_J[t_gps_s] = j
    return j


#: Grid step of the tabulated process noise [s] (see FormationFilter._q).
Q_GRID_S = 0.05
_Q_CACHE: dict[tuple, np.ndarray] = {}

#: One step of the own orbit, shared: every formation filter of one processor steps its own
#: state through the same instants with the same own model (the filter of each partner, and
#: the alternatives of a range-only acquisition), and their own states usually differ
#: by metres (the same own fixes update them all).  The first filter to step from (t, h)
#: propagates with the full model and leaves (own state, result, Phi) in the filters' shared
#: ``own_steps`` dict (one per processor: filters of unrelated runs in one process - a Monte
#: Carlo worker - never share, so a run's result does not depend on what ran before it);
#: the others carry their own state's difference d from it through Phi: x + Phi d.  Against
#: a full propagation that is off by ~3e-8 m and 2e-9 m/s per metre of d per step of 5-30 s
#: (Phi leaves out the tesseral and third-body gradients): 3.5e-7 m and 2.4e-8 m/s at the
#: 10-m bound, against the step's own process noise of 4e-5 m and 2e-5 m/s per axis over 5 s,
#: 4e-3 m and 3e-4 m/s over 30 s (tests/test_formation_filter.py).  A larger difference
#: propagates in full.
_OWN_STEPS_MAX = 32
#: The relative drag the differential process noise grows with is taken again after this
#: much filter time [s] (:meth:`FormationFilter.refresh_relative_drag`).
RELATIVE_DRAG_REFRESH_S = 60.0
SHARE_MAX_DR_M = 10.0
SHARE_MAX_DV_M_S = 0.01
#: own steps carried from a shared propagation / propagated in full (for benchmarks)
OWN_STEP_COUNTS = {"shared": 0, "propagated": 0}


def own_step(
    own: np.ndarray, h: float, model: od.DynamicsModel, t_gps_s: float, steps: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(own state after *h* s, Phi) from GPS time *t_gps_s*: :func:`od.propagate`, or the
    step another filter sharing *steps* took from the same instant, carried to *own* (see
    _OWN_STEPS_MAX above; no *steps*: always propagated)."""
    if steps is None:
        return od.propagate(own, h, model, t_gps_s=t_gps_s)
    key = (t_gps_s, h, model)
    e = steps.get(key)
    if e is not None:
        ref, ref_new, phi = e
        d = own - ref
        if (
            max(abs(d[0]), abs(d[1]), abs(d[2])) <= SHARE_MAX_DR_M
            and max(abs(d[3]), abs(d[4]), abs(d[5])) <= SHARE_MAX_DV_M_S
        ):
            OWN_STEP_COUNTS["shared"] += 1
            return ref_new + phi @ d, phi
    new, phi = od.propagate(own, h, model, t_gps_s=t_gps_s)
    OWN_STEP_COUNTS["propagated"] += 1
    if len(steps) >= _OWN_STEPS_MAX:
        steps.clear()
    steps[key] = (np.array(own, dtype=float), new, phi)
    return new, phi


def _interpolate_state(
    x0: np.ndarray,
    x1: np.ndarray,
    ends0: Sequence[Sequence[float]],
    ends1: Sequence[Sequence[float]],
    tau: float,
    h: float,
) -> np.ndarray:
    """The state at t0 + *tau* within a step of *h* s from *x0* to *x1*, with
    ``ends = (own acceleration, relative acceleration)`` at either end (see FormationFilter.tap)."""
    s = tau / h
    h00, h10, h01, h11 = od.hermite_weights(s, h)
    a, b = x0.tolist(), x1.tolist()
    x = [(1.0 - s) * u + s * w for u, w in zip(a, b)]
    for r, v, k in ((0, 3, 0), (9, 12, 1)):  # own (r, v); relative (dr, dv)
        e0, e1 = ends0[k], ends1[k]
        for i in range(3):
            x[r + i] = h00 * a[r + i] + h10 * a[v + i] + h01 * b[r + i] + h11 * b[v + i]
            x[v + i] = h00 * a[v + i] + h10 * e0[i] + h01 * b[v + i] + h11 * e1[i]
    return np.array(x)


def _scalar_update_covariance(p: np.ndarray, u: np.ndarray, s: float, k: np.ndarray) -> np.ndarray:
    """P after a scalar update with gain *k*: P - k u^T - u k^T + s k k^T (u = P h^T, s = h P
    h^T + var), which is the Joseph form (I - k h) P (I - k h)^T + k var k^T for any k."""
    ku = np.outer(k, u)
    return p - ku - ku.T + s * np.outer(k, k)


def rtn_matrix(r_m: Vector, v_m_s: Vector) -> np.ndarray:
    """Rows: radial, along-track (transverse), cross-track (orbit normal) unit vectors."""
    rx, ry, rz = (float(c) for c in r_m)
    vx, vy, vz = (float(c) for c in v_m_s)
    rn = math.sqrt(rx * rx + ry * ry + rz * rz)
    rx, ry, rz = rx / rn, ry / rn, rz / rn
    hx, hy, hz = ry * vz - rz * vy, rz * vx - rx * vz, rx * vy - ry * vx
    hn = math.sqrt(hx * hx + hy * hy + hz * hz)
    hx, hy, hz = hx / hn, hy / hn, hz / hn
    return np.array([[rx, ry, rz], [hy * rz - hz * ry, hz * rx - hx * rz, hx * ry - hy * rx], [hx, hy, hz]])


def rtn_to_gcrs(
    r_own_m: Vector, v_own_m_s: Vector, dr_rtn_m: ArrayLike, dv_rtn_m_s: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """A relative state given in the own radial / along-track / cross-track frame (position,
    and velocity as seen in that rotating frame) -> GCRS (dr, dv): dv adds the frame's
    rotation, omega x dr with omega = (r x v) / |r|^2."""
    a = rtn_matrix(r_own_m, v_own_m_s)
    r = np.asarray(r_own_m, dtype=float)
    omega = np.cross(r, np.asarray(v_own_m_s, dtype=float)) / float(r @ r)
    dr = a.T @ np.asarray(dr_rtn_m, dtype=float)
    return dr, a.T @ np.asarray(dv_rtn_m_s, dtype=float) + np.cross(omega, dr)


#: Attributes a deep copy shares with its original (FormationFilter.__deepcopy__).
_SHARED_BY_DEEP_COPIES = frozenset(("own_steps", "_q_sums_by_step"))


class FormationFilter:
    """EKF on the 21-state own + relative vector of one peer; see the module docstring.

    Usage: :meth:`initialize_from_fixes` (an own and a peer fix), then, in GPS-time order,
    :meth:`predict_to` and :meth:`update_own_fix` / :meth:`update_peer_fix` /
    :meth:`update_range`.  Fixes are ECEF (as decoded), everything else GCRS.
    """

    def __init__(self, config: FormationFilterConfig | None = None) -> None:
        self.config = c = config or FormationFilterConfig()
        self.own_model = c.own_model()
        self.peer_model = c.peer_model()
        self.t_gps_s: float | None = None
        self.x = np.zeros(N_STATES)
        self.p = np.eye(N_STATES)
        self.fix_gate = chi2.quantile(c.fix_gate_probability, 6)
        self.range_gate = chi2.quantile(c.range_gate_probability, 1)
        self.n_own_used = self.n_own_rejected = 0
        self.n_peer_used = self.n_peer_rejected = 0
        self.n_ranges_used = self.n_ranges_rejected = 0
        self.n_reinit = 0
        self.n_bias_resets = 0
        self.n_ranges_held = 0
        self.own_fixes_since_init = self.peer_fixes_since_init = 0
        self.own_used_since_init = self.peer_used_since_init = 0
        self.started_from_fixes = False
        self.confirm_fixes = 1  # later fixes of each receiver that confirm a start (confirmed)
        self.confirm_span_s = 0.0  # ... the last of them at least this long after it [s]
        #: Times [GPS s] of the start and of each receiver's latest fix used since it.
        self.t_started_s = self.t_own_used_s = self.t_peer_used_s = math.nan
        self.range_acquired = False
        self._range_candidate: tuple[float, float] | None = None  # (t_gps_s, innovation)
        self._range_reacquire = False
        self.own_rejections_in_row = self.peer_rejections_in_row = self.range_rejections_in_row = 0
        self.range_rejected_nu_m: list[float] = []  # innovations of the ranges rejected since one was used
        self.last_nis = math.nan
        #: The innovation of the last range that reached the update (signed), m.
        self.last_nu_m = math.nan
        #: The last range given to :meth:`update_range`, used or not, m.
        self.last_range_m = math.nan
        self._q_key = (
            c.own_dmc_tau_s,
            c.own_dmc_sigma_m_s2,
            c.diff_dmc_tau_s,
            c.diff_dmc_sigma_m_s2,
            c.estimate_peer_drag_scale,
            c.peer_drag_scale_sigma,
            c.peer_drag_scale_tau_s,
            c.range_bias_walk_m_sqrt_s,
        )
        self._eye = np.eye(N_STATES)
        #: own steps shared with the other filters of the same processor (see own_step)
        self.own_steps: dict | None = None
        self._relative_drag_at_step = 0.0  # m/s^2 (refresh_relative_drag)
        self._t_relative_drag = -math.inf
        self._q_sums_by_step: dict[tuple[int, bool], tuple[np.ndarray, np.ndarray]] = {}  # (_q_sums)
        self._q_sums_drag: tuple[float, float] = (math.nan, math.nan)  # (fraction, drag) of the sums
        self._taps: list[float] = []  # times asked for by tap(), ascending, not reached yet
        #: t_gps_s -> what gives the estimate at a tapped time the prediction has passed
        #: (:meth:`take_tapped`)
        self.tapped: dict[float, tuple | list] = {}

    def __copy__(self) -> FormationFilter:
        """A shallow copy (what copy.copy makes of a plain object, without its generic
        reduce protocol: the processor takes one per published estimate)."""
        new = self.__class__.__new__(self.__class__)
        new.__dict__.update(self.__dict__)
        return new

    def __deepcopy__(self, memo: dict[int, Any]) -> FormationFilter:
        """A deep copy that still shares :attr:`own_steps` (a cursor or the mirror
        alternative steps through the same instants as the filter it came from) and the
        kept noise sums (:meth:`_q_sums`: read-only, replaced rather than changed)."""
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            setattr(new, k, v if k in _SHARED_BY_DEEP_COPIES else copy.deepcopy(v, memo))
        return new

    # ------------------------------------------------------------------ state access
    @property
    def initialized(self) -> bool:
        return self.t_gps_s is not None

    def _now(self) -> float:
        """:attr:`t_gps_s` where the caller's order guarantees an initialised filter (moving or
        updating one never initialised is the caller's error, which failed on None before)."""
        assert self.t_gps_s is not None, "FormationFilter: initialize first"
        return self.t_gps_s

    @property
    def needs_reinit(self) -> bool:
        """True after too many rejected fixes in a row: initialise again from the next pair.

        Right after (re)initialisation, and until the state is :attr:`confirmed`, two
        rejections in a row suffice: the pair the filter started from is then the likelier
        culprit (an outlier, a receiver's glitch)."""
        m = self.config.max_consecutive_rejections
        doubt = not self.confirmed  # (a restart after rejections, until it has outlived them)
        m_own = min(m, 2) if self.own_fixes_since_init <= 3 or doubt else m
        m_peer = min(m, 2) if self.peer_fixes_since_init <= 3 or doubt else m
        return self.own_rejections_in_row >= m_own or self.peer_rejections_in_row >= m_peer

    def relative_rtn(self) -> tuple[np.ndarray, np.ndarray]:
        """(dr_rtn_m (3,), 3x3 covariance): relative position in the own radial /
        along-track / cross-track frame."""
        a = rtn_matrix(self.x[I_R_OWN], self.x[I_V_OWN])
        return a @ self.x[I_DR], a @ self.p[9:12, 9:12] @ a.T

    def line_of_sight_sigma_m(self) -> float:
        """1-sigma of the relative position along the line of sight [m].  With no line of
        sight (a relative position of exactly zero, as corrupt inputs can leave) the largest
        sigma of any direction: never less than the true one (:func:`line_of_sight_sigma`)."""
        return line_of_sight_sigma(self.x[I_DR], self.p[9:12, 9:12])

    # ------------------------------------------------------------------ initialisation
    def fix_gcrs(self, fix: GpsFix) -> tuple[np.ndarray, np.ndarray]:
        """(z (6,), R (6, 6)) of *fix* in GCRS, with the configured sigma rules."""
        return fix_to_gcrs(fix, *fix_sigmas(self.config.orbit, fix))

    def initialize(
        self,
        t_gps_s: float,
        own_z: ArrayLike,
        own_r: ArrayLike,
        peer_z: ArrayLike,
        peer_r: ArrayLike,
        ranges_acquired: bool = False,
    ) -> None:
        """Start at *t_gps_s* from an own and a peer measurement of [r, v] in GCRS (6,) with
        covariances (6, 6).  The relative state is their difference; its covariance is
        R_own + R_peer and its correlation with the own state -R_own.  *ranges_acquired*:
        the next range is taken without acquisition (the peer state is absolute already)."""
        c = self.config
        r_own = np.array(own_r, dtype=float)
        self.t_gps_s = float(t_gps_s)
        x = np.zeros(N_STATES)
        x[0:6] = own_z
        x[9:15] = np.asarray(peer_z, dtype=float) - np.asarray(own_z, dtype=float)
        x[I_DRAG_SCALE] = 1.0
        x[I_RANGE_BIAS] = c.range_bias_prior_m
        x[I_RANGE_DT] = c.range_time_offset_s
        p = np.zeros((N_STATES, N_STATES))
        p[0:6, 0:6] = r_own
        p[9:15, 9:15] = r_own + np.asarray(peer_r, dtype=float)
        p[0:6, 9:15] = -r_own
        p[9:15, 0:6] = -r_own
        for i in range(3):
            p[6 + i, 6 + i] = c.own_init_dmc_sigma_m_s2**2
            p[15 + i, 15 + i] = c.diff_dmc_sigma_m_s2**2
        p[I_DRAG_SCALE, I_DRAG_SCALE] = c.peer_drag_scale_sigma**2 if c.estimate_peer_drag_scale else 0.0
        p[I_RANGE_BIAS, I_RANGE_BIAS] = c.range_bias_sigma_m**2
        p[I_RANGE_DT, I_RANGE_DT] = c.range_time_offset_sigma_s**2 if c.estimate_range_time_offset else 0.0
        self.x, self.p = x, p
        self._taps, self.tapped = [], {}
        self._relative_drag_at_step, self._t_relative_drag = 0.0, -math.inf  # taken at the first step
        self.own_rejections_in_row = self.peer_rejections_in_row = self.range_rejections_in_row = 0
        self.range_rejected_nu_m = []
        self.range_acquired = ranges_acquired
        self._range_candidate = None
        self._range_reacquire = False
        self.own_fixes_since_init = self.peer_fixes_since_init = 0
        self.own_used_since_init = self.peer_used_since_init = 0
        self.started_from_fixes = False
        self.confirm_fixes = 1  # later fixes of each receiver that confirm a start (confirmed)
        self.confirm_span_s = 0.0  # ... the last of them at least this long after it [s]
        #: Times [GPS s] of the start and of each receiver's latest fix used since it.
        self.t_started_s = self.t_own_used_s = self.t_peer_used_s = float(t_gps_s)

    def initialize_relative(
        self,
        t_gps_s: float,
        own_z: ArrayLike,
        own_r: ArrayLike,
        dr_gcrs_m: ArrayLike,
        dv_gcrs_m_s: ArrayLike,
        rel_cov6: ArrayLike,
    ) -> None:
        """Start at *t_gps_s* from an own measurement of [r, v] (GCRS (6,), covariance
        (6, 6)) and a relative state *prior* [dr, dv] (GCRS) with covariance *rel_cov6*
        independent of the own one: range-only navigation, where no peer fix exists.
        The ranges count as acquired (the prior, not a first range, is what a lone
        outlier would have to beat: the gate judges every range against it)."""
        peer_z = np.asarray(own_z, dtype=float) + np.concatenate((dr_gcrs_m, dv_gcrs_m_s))
        # initialize() gives the relative state R_own + R_peer and correlation -R_own; a
        # prior on the relative state itself is independent of the own state.
        self.initialize(t_gps_s, own_z, own_r, peer_z, np.zeros((6, 6)))
        self.p[9:15, 9:15] = np.asarray(rel_cov6, dtype=float)
        self.p[0:6, 9:15] = 0.0
        self.p[9:15, 0:6] = 0.0
        self.range_acquired = True

    def own_at(self, own_fix: GpsFix, t_gps_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(own_z, own_r) at *t_gps_s* (GCRS) from the own fix *own_fix*, propagated from its
        time with the dynamics and the common process noise added."""
        own_z, own_r = self.fix_gcrs(own_fix)
        dt = float(t_gps_s) - own_fix.t_gps_s
        if dt != 0.0:
            xs = np.zeros(9)
            xs[:6] = own_z
            xs, phi = od.propagate(xs, dt, self.own_model, t_gps_s=own_fix.t_gps_s)
            a = phi[:6, :6]
            own_z = xs[:6]
            own_r = a @ own_r @ a.T + od.process_noise(abs(dt), self.own_model, self.config.own_dmc_sigma_m_s2)[:6, :6]
        return own_z, own_r

    def initialize_from_fixes(self, own_fix: GpsFix, peer_fix: GpsFix) -> None:
        """Initialise at the peer fix's time from an own fix (propagated there with the
        dynamics, the common process noise added) and a peer fix."""
        own_z, own_r = self.own_at(own_fix, peer_fix.t_gps_s)
        peer_z, peer_r = self.fix_gcrs(peer_fix)
        self.initialize(peer_fix.t_gps_s, own_z, own_r, peer_z, peer_r)

    def start_from_fixes(
        self, own_fix: GpsFix, peer_fix: GpsFix, confirm_fixes: int = 1, confirm_span_s: float = 0.0
    ) -> None:
        """:meth:`initialize_from_fixes`, both fixes counted as used; :attr:`confirmed` once
        *confirm_fixes* later fixes of each receiver have passed the gate, the last of them
        *confirm_span_s* after the start (after a restart on rejected fixes: as many as
        condemned the old state, over minutes - a receiver's glitch of agreeing fixes is not
        taken over the track it interrupted, and its track, no orbit, shows itself)."""
        self.initialize_from_fixes(own_fix, peer_fix)
        self.started_from_fixes = True
        self.confirm_fixes = int(confirm_fixes)
        self.confirm_span_s = float(confirm_span_s)
        self.n_own_used += 1
        self.n_peer_used += 1

    @property
    def confirmed(self) -> bool:
        """False while a state started from a pair of fixes has not yet had ``confirm_fixes``
        later fixes of each receiver pass the gate, the last of them ``confirm_span_s`` after
        the start (:meth:`start_from_fixes`)."""
        n = self.confirm_fixes
        if not self.started_from_fixes:
            return True
        held = min(self.t_own_used_s, self.t_peer_used_s) - self.t_started_s >= self.confirm_span_s
        return self.own_used_since_init >= n and self.peer_used_since_init >= n and held

    def count_reinit(self) -> None:
        """Count a re-initialisation the caller is about to make (a new start replaces the state)."""
        self.n_reinit += 1

    # ------------------------------------------------------------------ prediction
    def _q(self, h: float, reported: bool = False) -> np.ndarray:
        """Process noise over a step of *h* seconds (0 < h <= max step).

        The exact Gauss-Markov chains are evaluated on a grid of ``Q_GRID_S`` (shared by
        all filters with the same tuning) and interpolated linearly in h - a convex
        combination of two covariances, so still a covariance.  The interpolation error
        is < 1 % for the velocity and acceleration terms and < 6 % for the position term
        (which grows as h^5 and is ~1e-15 m^2 at these steps).  Event times are irregular
        (ranges carry milliseconds), so caching by exact h would miss almost always,
        and the exact series is too costly to evaluate at every step.
        """
        steps = h / Q_GRID_S
        i = int(steps)
        a = steps - i
        c = self.config
        k_da = c.diff_dmc_sigma_per_km_da_m_s2
        if not k_da > 0.0 and c.diff_dmc_relative_drag_fraction > 0.0:
            q0, q1 = self._q_sums(i, reported)  # (the relative drag's share changes once a refresh)
            return (1.0 - a) * q0 + a * q1 if a > 1e-9 else q0
        grid = self._q_grid_reported if reported else self._q_grid
        q = grid(i)
        if a > 1e-9:
            q = (1.0 - a) * q + a * grid(i + 1)
        if k_da > 0.0:  # the differential chain's growth with the drift (and the relative drag)
            x = self.x
            s2 = (k_da * 1e-3 * od.semi_major_axis_difference_m(x[0:3], x[3:6], x[9:12], x[12:15])) ** 2
            s2 += (c.diff_dmc_relative_drag_fraction * self._relative_drag_at_step) ** 2
            unit = self._q_diff_unit(i, reported)
            if a > 1e-9:
                unit = (1.0 - a) * unit + a * self._q_diff_unit(i + 1, reported)
            q = q + s2 * unit
        return q

    def _q_sums(self, i: int, reported: bool) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_q_grid` at *i* and *i* + 1 plus the relative drag's share of the
        differential chain (``diff_dmc_relative_drag_fraction``), kept until the relative
        drag is refreshed: a step then costs what a grid lookup does.  The dict is replaced,
        never cleared, when the drag changes (a shallow copy may still hold the old one)."""
        fraction = self.config.diff_dmc_relative_drag_fraction
        if self._q_sums_drag != (fraction, self._relative_drag_at_step):
            self._q_sums_by_step, self._q_sums_drag = {}, (fraction, self._relative_drag_at_step)
        key = (i, reported)
        pair = self._q_sums_by_step.get(key)
        if pair is None:
            s2 = (fraction * self._relative_drag_at_step) ** 2
            grid = self._q_grid_reported if reported else self._q_grid
            pair = (
                grid(i) + s2 * self._q_diff_unit(i, reported),
                grid(i + 1) + s2 * self._q_diff_unit(i + 1, reported),
            )
            for q in pair:
                q.setflags(write=False)  # (shared by every copy of the filter)
            self._q_sums_by_step[key] = pair
        return pair

    def refresh_relative_drag(self) -> None:
        """Take the relative drag the differential process noise grows with
        (``diff_dmc_relative_drag_fraction``) from the state now: a step does at its start
        once :data:`RELATIVE_DRAG_REFRESH_S` have passed, for its Q and its taps' (the relative
        drag changes over minutes, with the density along the orbit)."""
        if self.config.diff_dmc_relative_drag_fraction > 0.0:
            a = self.relative_drag_m_s2()
            self._relative_drag_at_step = a if math.isfinite(a) else 0.0  # (a lost state re-initialises)
            self._t_relative_drag = self._now()

    def relative_drag_m_s2(self) -> float:
        """|partner's drag - own drag| [m/s^2] of the models at the filter state (the partner's
        at its estimated drag scale): what the filter takes the relative drag to be."""
        x = self.x
        own_b, peer_b = self.own_model.ballistic_coeff_kg_m2, self.peer_model.ballistic_coeff_kg_m2
        if not (own_b and peer_b and math.isfinite(own_b) and math.isfinite(peer_b)) or not x[0:3].any():
            return 0.0  # no drag, or no state yet
        bulge = od.density_bulge_apex(self._now()) if self.own_model.diurnal else None
        xs = x[0:15].tolist()
        return od.relative_drag_m_s2(xs[0:6], xs[9:15], own_b, peer_b, float(x[I_DRAG_SCALE]), bulge)

    def _q_diff_unit(self, i: int, reported: bool) -> np.ndarray:
        """The differential chain's share of :meth:`_q_grid` (*i*) for a unit sigma (1 m/s^2):
        the separation's variance times it is added (cached like the grid)."""
        key = ("diff_unit", self.config.diff_dmc_tau_s, i, reported)
        q = _Q_CACHE.get(key)
        if q is None:
            q = np.zeros((N_STATES, N_STATES))
            h = i * Q_GRID_S
            if h > 0.0:
                _put_chain(q, 9, od.dmc_process_noise(h, self.config.diff_dmc_tau_s, 1.0))
            if reported:
                q = reported_block(q)
            _Q_CACHE[key] = q
        return q

    def _q_grid_reported(self, i: int) -> np.ndarray:
        """The :data:`I_REPORTED` block of :meth:`_q_grid` (cached likewise)."""
        key = (self._q_key, i, "reported")
        q = _Q_CACHE.get(key)
        if q is None:
            q = reported_block(self._q_grid(i))
            _Q_CACHE[key] = q
        return q

    def _q_grid(self, i: int) -> np.ndarray:
        key = (self._q_key, i)
        q = _Q_CACHE.get(key)
        if q is None:
            if len(_Q_CACHE) > 4096:
                _Q_CACHE.clear()
            c = self.config
            h = i * Q_GRID_S
            q = np.zeros((N_STATES, N_STATES))
            if h > 0.0:
                _put_chain(q, 0, od.dmc_process_noise(h, c.own_dmc_tau_s, c.own_dmc_sigma_m_s2))
                _put_chain(q, 9, od.dmc_process_noise(h, c.diff_dmc_tau_s, c.diff_dmc_sigma_m_s2))
                if c.estimate_peer_drag_scale:
                    q[I_DRAG_SCALE, I_DRAG_SCALE] = c.peer_drag_scale_sigma**2 * (
                        1.0 - math.exp(-2.0 * h / c.peer_drag_scale_tau_s)
                    )
                q[I_RANGE_BIAS, I_RANGE_BIAS] = c.range_bias_walk_m_sqrt_s**2 * h
            _Q_CACHE[key] = q
        return q

    def transition(self, h: float) -> tuple[np.ndarray, np.ndarray]:
        """(x after *h* seconds, Phi (n, n)) of one propagation step (|h| <= max step);
        the filter is not changed."""
        x = self.x
        t = self._now()
        own = x[0:9]
        peer = np.empty(10)
        peer[0:6] = x[0:6] + x[9:15]
        peer[6:9] = x[6:9]
        peer[9] = x[I_DRAG_SCALE]
        own_new, phi_o = own_step(own, h, self.own_model, t, self.own_steps)
        peer_new, _ = od.propagate(peer, h, self.peer_model, want_phi=False, t_gps_s=t)
        # The partner's Phi is the own one plus C, the gravity gradient's change over the
        # separation (:func:`od.neighbour_transition_terms`): Phi_peer - Phi_own, the
        # coupling of the relative state to the own one, is C itself.
        c, drag_col = od.neighbour_transition_terms(own, own_new, peer, peer_new, h, self.peer_model, t)
        # The differential acceleration dw0 exp(-t / tau_d), in closed form: it has its own
        # time constant (the common one decays within the propagation with the orbit's).
        tau_d = self.config.diff_dmc_tau_s
        decay_d = math.exp(-h / tau_d)
        c_v = tau_d * (1.0 - decay_d)  # integral of exp(-t / tau_d) over the step
        c_r = tau_d * (h - c_v)  # ... integrated twice
        dw = x[15:18]
        xn = x.copy()
        xn[0:9] = own_new
        xn[9:12] = peer_new[0:3] + c_r * dw - own_new[0:3]
        xn[12:15] = peer_new[3:6] + c_v * dw - own_new[3:6]
        xn[15:18] = dw * decay_d
        if self.config.estimate_peer_drag_scale:
            xn[I_DRAG_SCALE] = peer_new[9]
        phi = self._eye.copy()
        phi[0:9, 0:9] = phi_o
        phi[9:15, 0:9] = c
        phi[9:15, 9:15] = phi_o[0:6, 0:6] + c[:, 0:6]
        for i in range(3):  # (the gravity gradient's share over a step, ~G h^2 / 2 < 1e-3, left out)
            phi[9 + i, 15 + i] = c_r
            phi[12 + i, 15 + i] = c_v
        if drag_col is not None:
            phi[9:15, I_DRAG_SCALE] = drag_col
        for i in range(15, 18):
            phi[i, i] = decay_d
        if self.config.estimate_peer_drag_scale:
            tau_k = self.peer_model.drag_scale_tau_s
            assert tau_k is not None  # peer_model() always has a drag-scale state
            phi[I_DRAG_SCALE, I_DRAG_SCALE] = math.exp(-h / tau_k)
        return xn, phi

    def _step(self, h: float) -> None:
        """One propagation step of state and covariance over *h* seconds (|h| <= max step)."""
        t0, x0, p0 = self._now(), self.x, self.p
        if not 0.0 <= t0 - self._t_relative_drag < RELATIVE_DRAG_REFRESH_S:  # (or time went back)
            self.refresh_relative_drag()
        self.x, phi = self.transition(h)
        self.p = phi @ p0 @ phi.T + self._q(abs(h))
        self.t_gps_s = t0 + h
        if self._taps and self._taps[0] <= self.t_gps_s + 1e-6:
            self._resolve_taps(t0, x0, p0, phi, h)

    # ------------------------------------------------------------------ estimates between steps
    def tap(self, t_gps_s: float) -> None:
        """Keep the estimate at *t_gps_s* (later than the filter time and than every earlier
        tap) when a later prediction passes it (:meth:`take_tapped` gives (x, P)), without
        a step ending there: an output between two measurements costs an interpolation,
        not two propagations of both orbits.

        Within a step from t0 to t0 + h (state x0 -> x1, transition Phi, process noise
        Q(.)), at t0 + tau: both orbits' positions and velocities by cubic Hermite
        interpolation on their values and derivatives at both ends (the accelerations from
        :func:`~pygnc.estimation.orbit_dynamics.acceleration_list`) - the relative state on
        the relative values and derivatives, so no km-sized terms cancel; against a step
        ending there, at h = 30 s (tests/test_formation_filter.py): relative 1.5e-5 m and
        6e-7 m/s, absolute 2 cm and 5e-4 m/s (the end derivatives leave out the tesseral and
        third-body accelerations, which the step holds constant; the own state only orients
        the outputs' RTN frame: < 1e-7 rad); the
        other states linearly (Gauss-Markov decays over minutes to days); covariance
        Phi_s P0 Phi_s^T + Q(tau) with Phi_s = I + (tau / h) (Phi - I), exact for the
        kinematic terms and off by ~(tau (h - tau) / 2) x gravity gradient (1e-4) in the
        rest."""
        self._taps.append(float(t_gps_s))

    def _resolve_taps(self, t0: float, x0: np.ndarray, p0: np.ndarray, phi: np.ndarray, h: float) -> None:
        """Keep what the taps inside this step need; the interpolation itself is done when an
        estimate is taken (:meth:`take_tapped`), so a call that steps the filter does not
        also pay for every estimate it passed.  *x0* and *p0* are never changed in place
        after a step (updates make new arrays); the step's end is copied (a range update
        may change it in place)."""
        taps = self._taps
        step: list | None = None
        while taps and taps[0] <= t0 + h + 1e-6:
            t = taps.pop(0)
            tau = t - t0
            if tau >= h - 1e-6:
                self.tapped[t] = (self.x.copy(), 0.5 * (self.p + self.p.T))
            elif tau <= 1e-6:
                self.tapped[t] = (x0.copy(), p0.copy())
            else:
                if step is None:
                    step = [t0, h, x0, p0, phi, self.x.copy(), None]
                self.tapped[t] = step

    def drop_taps(self) -> None:
        """Forget the times asked for and the estimates not taken yet (a copy that starts a
        filter of its own: its owner's outputs are the original's)."""
        self._taps, self.tapped = [], {}

    def take_tapped(self, t_gps_s: float) -> tuple[np.ndarray, np.ndarray] | None:
        """(x, P) at a tapped time the prediction has passed (removed from :attr:`tapped`),
        or None; see :meth:`tap`."""
        e = self.tapped.pop(t_gps_s, None)
        return None if e is None else self.tap_estimate(e, t_gps_s)

    def tap_estimate(self, e: tuple | list, t_gps_s: float, reported: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(x, P) at *t_gps_s* from an entry of :attr:`tapped` (taken earlier: the filter may
        have moved on or restarted since; the entry holds what it needs).  *reported*: only
        the :data:`I_REPORTED` block of P (7, 7) - what a published estimate needs, at a
        third of the cost."""
        if isinstance(e, tuple):
            return (e[0], reported_block(e[1])) if reported else e
        t0, h, x0, p0, phi, x1, ends = e
        if ends is None:  # the step's end derivatives, once for all its taps
            m = frames.gcrs_from_itrs_rows(t0 + 0.5 * h)
            pole = (m[0][2], m[1][2], m[2][2])
            bulge = od.density_bulge_apex(t0 + 0.5 * h) if self.own_model.diurnal else None
            ends = e[6] = (self._accelerations(x0, pole, bulge), self._accelerations(x1, pole, bulge))
        tau = t_gps_s - t0
        x = _interpolate_state(x0, x1, ends[0], ends[1], tau, h)
        if reported:
            phi_s = _EYE_REPORTED + (tau / h) * (phi[I_REPORTED] - _EYE_REPORTED)
            q = self._q(tau, reported=True)
        else:
            phi_s = self._eye + (tau / h) * (phi - self._eye)
            q = self._q(tau)
        p = phi_s @ p0 @ phi_s.T + q
        return x, 0.5 * (p + p.T)

    def _accelerations(self, x: np.ndarray, pole: Vector, bulge: od.Vec3 | None) -> tuple[od.Vec3, od.Vec3]:
        """(own, peer - own) accelerations [m/s^2] at the filter state *x*."""
        xs = x.tolist()
        own = od.acceleration_list(xs[0:9], self.own_model, pole, bulge)
        peer = [xs[i] + xs[9 + i] for i in range(9)]
        peer.append(xs[I_DRAG_SCALE])
        pa = od.acceleration_list(peer, self.peer_model, pole, bulge)
        return own, (pa[0] - own[0], pa[1] - own[1], pa[2] - own[2])

    def predict(self, dt_s: float) -> None:
        """Propagate state and covariance by *dt_s* [s] (> 0; split into <= max_step_s steps)."""
        if dt_s <= 0.0:
            return
        t_end = self._now() + dt_s
        nsub = max(1, math.ceil(dt_s / self.own_model.max_step_s - 1e-9))
        h = dt_s / nsub
        for _ in range(nsub):
            self._step(h)
        self.t_gps_s = t_end
        self.p = 0.5 * (self.p + self.p.T)

    def predict_to(self, t_gps_s: float) -> None:
        """Predict to GPS time *t_gps_s* (no-op if not later than the current time)."""
        self.predict(float(t_gps_s) - self._now())

    # ------------------------------------------------------------------ updates
    def _update(self, h: np.ndarray, y: np.ndarray, r: np.ndarray, gate: float) -> tuple[bool, float]:
        """Gated Joseph update with dense H (m, n); returns (accepted, nis)."""
        p = self.p
        pht = p @ h.T
        s = h @ pht + r
        s_inv = np.linalg.inv(s)
        nis = float(y @ s_inv @ y)
        self.last_nis = nis
        self.last_nu_m = math.nan  # (a range's innovation only)
        self.last_s = s
        if not nis <= gate:  # NaN fails the gate too
            return False, nis
        k = pht @ s_inv
        x_new = self.x + k @ y
        ikh = self._eye - k @ h
        p_new = ikh @ p @ ikh.T + k @ r @ k.T
        if not (np.isfinite(x_new).all() and np.isfinite(p_new).all()):
            return False, nis  # never commit a non-finite state
        self.x = x_new
        self.p = 0.5 * (p_new + p_new.T)
        return True, nis

    def _result(self, decision: str, innovation: np.ndarray) -> Update:
        """The :class:`Update` of the update :meth:`_update` / :meth:`_update_scalar` just
        made with *innovation* (its NIS and innovation covariance are the filter's last)."""
        return Update(
            decision, self.last_nis, innovation, self.last_s, n_used=innovation.size if decision == USED else 0
        )

    def _update_scalar(self, hv: np.ndarray, nu: float, var: float, gate: float) -> tuple[bool, float]:
        """:meth:`_update` of one measurement (a range): H the row *hv* (n,), innovation
        *nu*, noise variance *var*.  The same Joseph form written with outer products,
        P - k u^T - u k^T + s k k^T (u = P h^T, s = h P h^T + var, k = u / s), which is
        (I - k h) P (I - k h)^T + k var k^T for any k: no inverse and no n x n products."""
        u = self.p @ hv
        s = float(hv @ u) + var
        nis = nu * nu / s if s > 0.0 else math.nan
        self.last_nis = nis
        self.last_nu_m = nu
        self.last_s = np.array([[s]])
        if not nis <= gate:  # NaN fails the gate too
            return False, nis
        k = u / s
        x_new = self.x + k * nu
        p_new = _scalar_update_covariance(self.p, u, s, k)
        if not (math.isfinite(float(x_new.sum())) and math.isfinite(float(p_new.sum()))):
            return False, nis  # never commit a non-finite state
        self.x = x_new
        self.p = 0.5 * (p_new + p_new.T)
        return True, nis

    def _check_time(self, t_gps_s: float) -> None:
        if abs(float(t_gps_s) - self._now()) > 1e-3:
            raise ValueError(f"measurement at t_gps_s={t_gps_s} but filter at {self.t_gps_s}; predict_to first")

    def update_own_fix(self, fix: GpsFix, gcrs: tuple[np.ndarray, np.ndarray] | None = None) -> Update:
        """Update with an own GPS fix at the filter time (decision "used" or "rejected").  *gcrs*: the
        fix's :meth:`fix_gcrs` if the caller has it already (every partner's filters take
        the same own fix: converted once)."""
        self._check_time(fix.t_gps_s)
        z, r = gcrs if gcrs is not None else self.fix_gcrs(fix)
        h = np.zeros((6, N_STATES))
        h[:, 0:6] = np.eye(6)
        y = z - self.x[0:6]
        ok, _ = self._update(h, y, r, self.fix_gate)
        self.own_fixes_since_init += 1
        if ok:
            self.n_own_used += 1
            self.own_used_since_init += 1
            self.t_own_used_s = fix.t_gps_s
            self.own_rejections_in_row = 0
            return self._result(USED, y)
        self.n_own_rejected += 1
        self.own_rejections_in_row += 1
        return self._result(REJECTED, y)

    def update_peer_fix(self, fix: GpsFix) -> Update:
        """Update with the peer's GPS fix at the filter time (decision "used" or "rejected")."""
        self._check_time(fix.t_gps_s)
        z, r = self.fix_gcrs(fix)
        h = np.zeros((6, N_STATES))
        h[:, 0:6] = np.eye(6)
        h[:, 9:15] = np.eye(6)
        y = z - self.x[0:6] - self.x[9:15]
        ok, _ = self._update(h, y, r, self.fix_gate)
        self.peer_fixes_since_init += 1
        if ok:
            self.n_peer_used += 1
            self.peer_used_since_init += 1
            self.t_peer_used_s = fix.t_gps_s
            self.peer_rejections_in_row = 0
            return self._result(USED, y)
        self.n_peer_rejected += 1
        self.peer_rejections_in_row += 1
        return self._result(REJECTED, y)

    def range_ahead_s(self, t_gps_s: float) -> float:
        """How far ahead of the filter time a range tagged *t_gps_s* may be applied [s]: its
        lead when within ``range_extrapolate_max_s``, else 0 (predict to it first)."""
        lead = float(t_gps_s) - self._now()
        return lead if 0.0 < lead <= self.config.range_extrapolate_max_s else 0.0

    def range_base_time(self, t_gps_s: float) -> float:
        """The time the filter must be predicted to before :meth:`update_range` of a range
        tagged *t_gps_s*: its own time while the range is within reach ahead, else the range's."""
        t = float(t_gps_s)
        return self._now() if self.range_ahead_s(t) > 0.0 else t

    def _relative_ahead(self, ahead_s: float) -> tuple[list[float], list[float], list[list[float]], float]:
        """(p, p_dot, J, tau) of the relative position at the range's instant (lists: 3, 3,
        3 x 6; tau [s]), the filter time
        plus tau = *ahead_s* - range_time_offset: its Taylor series to third order in tau,
        p = dr + dv tau + a tau^2 / 2 + j tau^3 / 6 with the relative acceleration
        a = G dr + dw (G the point-mass gravity gradient at the own position r; the J2
        gradient is ~1e-3 of it) and its rate j = G' dr + G dv (G' = dG/dt along the own
        velocity v), the position's rate p_dot, and J = dp / d[dr, dv] (3, 6).  Left out:
        the fourth-order term (~n^4 |dr| tau^4 / 24: < 0.1 mm at 10 km and 30 s), the J2
        and drag differences (~1e-3 of a: < 1 cm at 10 km and 30 s) and the process noise
        over tau (the differential one's ~1e-4 m over 30 s)."""
        # Plain floats: 3 x 3 numpy products cost more in call overhead than in arithmetic.
        xs = self.x.tolist()
        r, v = xs[0:3], xs[3:6]
        dr, dv, dw = xs[9:12], xs[12:15], xs[15:18]
        tau = ahead_s - xs[I_RANGE_DT]
        rn2 = r[0] * r[0] + r[1] * r[1] + r[2] * r[2]
        k = od.GM_EARTH_M3_S2 / (rn2 * rn2 * math.sqrt(rn2))  # GM / r^5
        rv = r[0] * v[0] + r[1] * v[1] + r[2] * v[2]
        c5 = 5.0 * rv / rn2
        # G = k (3 r r^T - r^2 I);  G' = 3k (v r^T + r v^T) - 2k (r.v) I - 5 (r.v) / r^2 G
        g = [[k * (3.0 * r[i] * r[m] - (rn2 if i == m else 0.0)) for m in range(3)] for i in range(3)]
        gd = [
            [3.0 * k * (v[i] * r[m] + r[i] * v[m]) - (2.0 * k * rv if i == m else 0.0) - c5 * g[i][m] for m in range(3)]
            for i in range(3)
        ]
        t2, t3 = 0.5 * tau * tau, tau * tau * tau / 6.0
        p: list[float] = []
        p_dot: list[float] = []
        j: list[list[float]] = []
        for i in range(3):
            gi, gdi = g[i], gd[i]
            acc = gi[0] * dr[0] + gi[1] * dr[1] + gi[2] * dr[2] + dw[i]
            jerk = gdi[0] * dr[0] + gdi[1] * dr[1] + gdi[2] * dr[2] + gi[0] * dv[0] + gi[1] * dv[1] + gi[2] * dv[2]
            p.append(dr[i] + tau * dv[i] + t2 * acc + t3 * jerk)
            p_dot.append(dv[i] + tau * acc + t2 * jerk)
            row = [t2 * gi[m] + t3 * gdi[m] for m in range(3)] + [t3 * gi[m] for m in range(3)]
            row[i] += 1.0
            row[3 + i] += tau
            j.append(row)
        return p, p_dot, j, tau

    def range_model(self, ahead_s: float = 0.0) -> tuple[float, np.ndarray]:
        """(predicted range [m], H (1, n)) of a range tagged *ahead_s* seconds after the filter
        time: |p| + bias with p the relative position at that tag less the range time offset
        (:meth:`_relative_ahead`)."""
        return self._range_terms(ahead_s)[0:2]

    def _range_terms(
        self, ahead_s: float
    ) -> tuple[float, np.ndarray, float, list[float] | None, list[float], list[list[float]]]:
        """(predicted range, H, |p|, u = p / |p|, p_dot, J) of :meth:`range_model` (p, p_dot
        and J as :meth:`_relative_ahead` gives them)."""
        p, p_dot, j, tau = self._relative_ahead(ahead_s)
        rho = math.sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2])
        h = np.zeros((1, N_STATES))
        if not rho > 0.0:  # the peer on top of us (or a non-finite state): no direction
            return math.nan, h, rho, None, p_dot, j
        u = [p[0] / rho, p[1] / rho, p[2] / rho]
        row = h[0]
        row[9:15] = [u[0] * j[0][m] + u[1] * j[1][m] + u[2] * j[2][m] for m in range(6)]
        t2 = 0.5 * tau * tau
        row[15:18] = [t2 * u[0], t2 * u[1], t2 * u[2]]
        row[I_RANGE_BIAS] = 1.0
        row[I_RANGE_DT] = -(u[0] * p_dot[0] + u[1] * p_dot[1] + u[2] * p_dot[2])
        return rho + float(self.x[I_RANGE_BIAS]), h, rho, u, p_dot, j

    def inflate_to_rejected_ranges(self) -> float:
        """Scale the relative state's covariance so that the ranges rejected since the last
        one used are one sigma under it (their median squared innovation = the range's
        predicted variance now), and forget them; returns the scale (>= 1; 1 with none).

        The variances and their correlations with the rest are scaled alike (P -> D P D,
        D = sqrt(scale) on the relative block, 1 elsewhere): P stays positive
        semi-definite and keeps its shape.  For a filter that has lost its partner, whose
        estimate goes on being published until it is fitted again."""
        nu = self.range_rejected_nu_m
        self.range_rejected_nu_m = []
        if not nu or not self.initialized:
            return 1.0
        _, h = self.range_model()
        h = np.ravel(h)
        hr = h[9:15]
        rel = float(hr @ self.p[9:15, 9:15] @ hr)
        now = float(h @ self.p @ h) + self.config.range_sigma_m**2
        excess = float(np.median(np.square(nu))) - now
        if not (rel > 0.0 and excess > 0.0 and math.isfinite(excess)):
            return 1.0
        scale = 1.0 + excess / rel
        k = math.sqrt(scale)
        self.p[9:15, :] *= k
        self.p[:, 9:15] *= k
        return scale

    def take_ranges_as_acquired(self) -> None:
        """Count the ranges as acquired from now on, with no bias re-opening pending (a
        range-only restart: nothing but the ranges would pull a re-opened bias back)."""
        self.range_acquired = True
        self._range_reacquire = False

    def absorb_range_covariance(self, t_gps_s: float, sigma_m: float | None = None) -> None:
        """The covariance update of a range tagged *t_gps_s* (as :meth:`update_range` applies
        it) linearised about the current state, the state itself unchanged: a filter run
        along a reference trajectory the ranges are already known to fit (a range-only
        window's fit, :func:`pygnc.estimation.range_only_window.replay_window`), so the covariance
        counts their information with the process noise between them and no km-sized
        prior's curvature."""
        t = float(t_gps_s)
        ahead = self.range_ahead_s(t)
        if ahead == 0.0:
            self._check_time(t)
        c = self.config
        sig = c.range_sigma_m if sigma_m is None or not sigma_m > 0 else float(sigma_m)
        _, h, rho, u, rel_dot, _ = self._range_terms(ahead)
        if u is None:
            return
        rate = u[0] * rel_dot[0] + u[1] * rel_dot[1] + u[2] * rel_dot[2]
        var = sig * sig + (rate * c.range_tag_resolution_s) ** 2 / 12.0
        hv = h[0]
        ph = self.p @ hv
        s = float(hv @ ph) + var
        if not s > 0.0:
            return
        p_new = _scalar_update_covariance(self.p, ph, s, ph / s)
        if math.isfinite(float(p_new.sum())):
            self.p = 0.5 * (p_new + p_new.T)

    def update_range(self, t_gps_s: float, range_m: float, sigma_m: float | None = None) -> Update:
        """Update with a range [m] tagged *t_gps_s*: the filter time, or up to
        ``range_extrapolate_max_s`` after it (:meth:`range_base_time`; the relative state is
        carried to the tag in closed form, :meth:`range_model`).

        Returns an :class:`~pygnc.estimation.update_result.Update`: "used", "rejected"
        (gate), or "held" (acquisition: waiting for a second range that agrees with it, see
        ``range_acquire_tol_m``).  After
        ``max_consecutive_range_rejections`` rejections in a row the ranges are
        re-acquired: once two consecutive ranges agree again, the bias is re-opened (its
        prior sigma, decorrelated) at the value that fits them - the radio's calibration
        has jumped, or the line of sight has been captured by bad data; either way the GPS
        fixes pull line of sight and bias back together afterwards.
        """
        t = float(t_gps_s)
        ahead = self.range_ahead_s(t)
        if ahead == 0.0:
            self._check_time(t)
        self.last_range_m = float(range_m)
        self.last_nis = self.last_nu_m = math.nan  # set again only if the range reaches the update
        c = self.config
        sig = c.range_sigma_m if sigma_m is None or not sigma_m > 0 else float(sigma_m)
        pred, h, rho, u, rel_dot, j = self._range_terms(ahead)
        if not math.isfinite(pred):
            self.n_ranges_rejected += 1
            return Update(REJECTED)
        # Second-order terms of |p| (Hessian M = (I - u u^T) / rho, p the relative position
        # at the tag, its covariance J P J^T): the mean of the range over the prior and its
        # extra spread.  Negligible once the line of sight is known to metres; with a
        # km-sized range-only prior they keep the update consistent.
        ua = np.array(u)
        ja = np.array(j)
        p_rel = ja @ self.p[9:15, 9:15] @ ja.T
        q = p_rel - np.outer(ua, ua @ p_rel)  # rho M P_rel: tr(M P) = tr(q) / rho
        pred += 0.5 * float(q[0, 0] + q[1, 1] + q[2, 2]) / rho
        rate = float(ua @ rel_dot)
        var = sig * sig + 0.5 * float((q * q.T).sum()) / (rho * rho) + (rate * c.range_tag_resolution_s) ** 2 / 12.0
        nu = float(range_m) - pred
        if not self.range_acquired:
            cand = self._range_candidate
            self._range_candidate = (t, nu)
            # Two ranges agree when their innovations differ by less than the tolerance plus
            # what the uncertain range rate can change between them (3 sigma).
            rate_sigma = float(math.sqrt(max(0.0, ua @ self.p[12:15, 12:15] @ ua)))
            tol = c.range_acquire_tol_m + 3.0 * rate_sigma * (t - cand[0] if cand else 0.0)
            if cand is None or t - cand[0] > c.range_acquire_window_s or abs(nu - cand[1]) > tol:
                self.n_ranges_held += 1
                return Update(HELD, innovation=np.array([nu]))
            self.range_acquired = True
            self._range_candidate = None
            if self._range_reacquire:
                self._range_reacquire = False
                i = I_RANGE_BIAS
                self.p[i, :] = 0.0
                self.p[:, i] = 0.0
                self.p[i, i] = c.range_bias_sigma_m**2
                self.x[i] += nu
                nu = 0.0
                self.n_bias_resets += 1
        ok, nis = self._update_scalar(h[0], nu, var, self.range_gate)
        if ok:
            self.n_ranges_used += 1
            self.range_rejections_in_row = 0
            self.range_rejected_nu_m = []
            return self._result(USED, np.array([nu]))
        self.n_ranges_rejected += 1
        self.range_rejections_in_row += 1
        if math.isfinite(nu):
            self.range_rejected_nu_m.append(nu)
        if self.range_rejections_in_row >= c.max_consecutive_range_rejections:
            self.range_acquired = False
            self._range_reacquire = True
            self._range_candidate = None
            self.range_rejections_in_row = 0
        return self._result(REJECTED, np.array([nu]))
