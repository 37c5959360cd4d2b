"""Attitude estimation: multiplicative EKF (Markley-Crassidis) on gyro, magnetometer and sun faces.

Pure computation on arrays in fixed units: time in seconds (GPS time when known), angles in
radians, rates in rad/s, magnetic field in µT, illuminance in lux.  Sensor vectors are in
**body** axes (the caller applies the IMU-to-body rotation and scale factors), references in
**GCRS** (:mod:`.attitude_environment`).  Quaternions are scalar-first and rotate body
vectors into GCRS: ``v_gcrs = A(q) v_body`` (:mod:`.quaternion`).

State
-----
``q`` (reference quaternion) and a 15-element error state with covariance ``P`` (3 fewer
per misalignment whose sigma is 0, :attr:`AttitudeMEKF.turns`):

    0-2   dtheta       attitude error, body axes, rad  (q_true = q (x) [1, dtheta/2])
    3-5   gyro_bias    rad/s, the gyro's axes (omega_true = C(d_g)^T (omega_measured - gyro_bias))
    6-8   mag_bias     µT, the magnetometer's axes (m_measured = C(d_m) A^T B_gcrs + mag_bias)
    9-11  d_m          rad, the magnetometer's mounting error against the body axes (the sun
                       faces'; a rotation vector, ``C(d) = exp([d]x)``), a constant
    12-14 d_g          rad, the BMX160 gyro's, likewise

The sensors' axes are the nominal body axes ``imu_to_body`` gives them; the turns are what
a mounting leaves.  The magnetometer's turn and the attitude turn the field alike, the
gyro's turns each step by ``[phi]x`` of it; the sun faces, on the body's axes, tell them
apart, so both are learned in sunlight and used in eclipse (to ~0.1 deg in an hour of
tumbling with exact faces; ~0.45 deg while the faces are taken to be within 1 deg).  A
constant turn is not noise: left out, it averages into a confident wrong attitude and a
rate error ``d x w`` that eclipses integrate.  A live IMU's steps take neither the BMX160's
turn nor its bias.

Propagation between two gyro samples (typically 5 s apart while tumbling at up to 5 deg/s):
the body rotation is the third-order Magnus expansion for a rate quadratic in time through
the sample before, the two ends (in the gyro's axes, then turned by ``C(d_g)^T``)
(:func:`.quaternion.step_rotation_vector_quadratic`); without a regular sample before (the
first step, after a gap or a change of gyro) the rate is taken linear between the two
(:func:`.quaternion.step_rotation_vector`).  A tumbling body's rate vector turns in body
axes: the linear step misses 1e-5 to 4e-4 rad per 5-s step, the same way every step (0.8-12
deg in 40 min of the simulator's truth, a drift the gyro-bias estimate took up in sunlight and
carried into eclipse); the quadratic leaves ~1e-5 rad (0.01 deg in 40 min), so no inertia or
Euler equations are needed.  Process noise per step: gyro white noise ``dt^2 sigma_g^2`` per
axis (each sample's noise enters the steps either side of it with weights adding up to dt:
the random walk of the attitude, twice the ``dt^2 sigma_g^2 / 2`` of one step's two samples
taken alone); the propagation error ``(c_prop (|w| dt)^3)^2`` (``c_prop = 0.01``: about
twice the linear step's residual on the simulator's truth, many times the quadratic's);
bias random walks.  A gap longer than ``max_gap_s`` cannot be bridged
from two samples: the attitude is propagated with the latest rate and its covariance is
inflated.  A live IMU's samples, when given, are integrated instead
(:func:`.quaternion.integrate_rates`), with that gyro's own bias.

Measurements (each group gated by its normalised innovation squared):

* magnetometer: the full vector (µT), ``h = C A^T B_igrf + mag_bias``;
  ``H = [C [A^T B]x, 0, I, -[C A^T B]x J(d)]`` (``J`` the left Jacobian of SO(3) at ``d``,
  to first order).  R = (noise^2 + field-model error^2) I.
* six sun faces, each its own scalar: ``lux_i = E f max(0, n_i.s_b) + E0 albedo_i`` with
  ``E0`` the direct-sun lux at the spacecraft's distance, ``f`` the visible fraction of the
  solar disc, ``albedo_i`` at the predicted attitude.  A saturated face (OPT3001 full scale)
  is a *bound*: used (as ``lux = full scale``) only while the prediction is below full
  scale; a dark face that the prediction also has dark carries no information and is
  skipped.  Faces are never differenced.  R per face: relative noise, noise floor,
  cosine-response error, and a fraction of the modelled albedo plus a floor (real
  reflectivity varies 0.1-0.8).  In eclipse (f < 0.05) the sun faces are not used.

Consider parameters (a Schmidt-Kalman filter: their covariance in the propagation, the gain
and the state's covariance; never estimated): the magnetometer's and the gyro's scale
factors, and each sun face's normal turned along its two tangents
(``sun_face_normal_sigma_rad``): constant errors that white noise in R would not cover
(the faces are the body's reference, so their mounting also bounds how well the sensors'
turns can be known: ~0.45 deg at 1 deg per face).

Initialisation: an *attitude-independent* calibrator
(:class:`~pygnc.estimation.attitude_calibration.GyroMagCalibrator`) runs from the first
sample: consecutive magnetometer vectors, transported by the gyro rotation, measure the gyro
and magnetometer biases without any reference (the field is nearly fixed in inertial space
over 5 s), so rates and biases are known before there is an attitude.
The MEKF starts from TRIAD (:mod:`.attitude_sensors`: sun vector from the faces, albedo
subtracted after a first pass; magnetometer second, turned by the misalignment estimate) at
a sample with the sun visible and a position, once the calibrator knows the biases well enough
(``start_max_gyro_bias_sigma_rad_s``, ``start_max_attitude_sigma_rad``: what the magnetometer
bias's uncertainty turns the TRIAD by): a TRIAD on biases still tens of µT and degrees per
second off is tens of degrees wrong, where the updates' linearisation does not hold and
the covariance would shrink faster than the error.
It stops (lost) after ``max_rejections`` consecutive rejected magnetometer updates, or as
many sun-face updates in sunlight, and starts again the same way, the calibrator searching
from the lost filter's biases with the turn-on sigmas (its misalignment estimate kept, with
the prior's sigma).  The calibrator's gyro bias is off by ``[w]x d`` on a turned
magnetometer (its axes turn at ``C w``): a start carries that correlation.  An attitude sigma past
``restart_attitude_sigma_rad`` is beyond the updates' linearisation: no update, a TRIAD
restart on the filter's own biases at the next sunlit sample.  A start refuses a sample
whose field magnitude is not the model's; a gyro sample far off the line through the two
before it (a corrupt record) is not integrated.

Time tags: samples are stamped in whole seconds by a drifting clock, so a sample's *stated*
epoch (its stamp through the clock map) is off its true instant by up to ~0.5 s, an offset
that changes slowly (not white noise).  The measurements pin the state to the true instant,
and the offset is added where it belongs:

* the published covariance is at the stated epoch: ``P + sigma_t^2 w w^T`` (the attitude
  there is off by ``w dt`` about the rate axis), ``sigma_t`` the epoch's 1-sigma
  (``time_tag_sigma_s``; the processor passes the clock map's residual RMS);
* a step whose stamp difference differs by ``d`` from a whole number of the usual interval
  (the stamp phase wrapped, a late sample) adds ``d^2 w w^T`` to the attitude covariance;
  the stamp difference is still what is integrated.

Ground smoothing: with ``record_history`` on (off in flight: ~6 kB per step) the estimator
keeps what ``ground.replay.attitude_smoother`` needs for a fixed-interval RTS smoother on the error
state (covariances, transitions, reference quaternion and biases per step).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import statistics
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from pygnc.environment import albedo as _albedo
from pygnc.environment.albedo import FACE_NORMALS_BODY
from pygnc.estimation import chi2
from pygnc.estimation.attitude_calibration import CHI2_9999, GyroMagCalibrator, RestDetector
from pygnc.estimation.attitude_environment import Environment
from pygnc.estimation.attitude_sensors import OPT3001_FULL_SCALE_LUX, sun_vector_from_faces, triad
from pygnc.estimation.quaternion import (
    dcm_from_quat,
    integrate_rates,
    quat_from_dcm,
    quat_from_rotvec,
    quat_multiply,
    rotation_matrix,
    rotvec_from_quat,
    skew,
    step_rotation_vector,
    step_rotation_vector_quadratic,
)
from pygnc.estimation.step_regularity import StepRegularity
from pygnc.estimation.tunables import AttitudeFilterConfig
from pygnc.estimation.update_result import REJECTED, SKIPPED, USED, Update


# --------------------------------------------------------------------------- MEKF
def _inverse(s: np.ndarray) -> np.ndarray | None:
    """The inverse of a small square matrix (an innovation covariance), None if singular.
    Up to 3 x 3 in closed form (the adjugate over the determinant, in floats: far less than
    ``np.linalg.inv``'s call overhead at these sizes); larger ones by ``np.linalg.inv``."""
    m = s.shape[0]
    if m == 3:
        (a, b, c), (d, e, f), (g, h, i) = s.tolist()
        c00, c10, c20 = e * i - f * h, f * g - d * i, d * h - e * g
        det = a * c00 + b * c10 + c * c20
        if det == 0.0:
            return None
        k = 1.0 / det
        return np.array(
            [
                [k * c00, k * (c * h - b * i), k * (b * f - c * e)],
                [k * c10, k * (a * i - c * g), k * (c * d - a * f)],
                [k * c20, k * (b * g - a * h), k * (a * e - b * d)],
            ]
        )
    if m == 1:
        v = float(s[0, 0])
        return None if v == 0.0 else np.array([[1.0 / v]])
    try:
        return np.linalg.inv(s)
    except np.linalg.LinAlgError:
        return None


_EYES = {n: np.eye(n) for n in (3, 9, 12, 15)}
_EYE3 = _EYES[3]


def _tangents(n: np.ndarray) -> np.ndarray:
    """Two unit vectors (2, 3) orthogonal to the unit vector *n* and to each other."""
    e = np.eye(3)[int(np.argmin(np.abs(n)))]
    t1 = np.cross(n, e)
    t1 /= np.linalg.norm(t1)
    return np.array([t1, np.cross(n, t1)])


#: Each sun face's two tangent directions (6, 2, 3): the axes its normal's mounting error
#: turns it along (the consider parameters ``sun_face_normal_sigma_rad``).
_FACE_TANGENTS = np.array([_tangents(n) for n in FACE_NORMALS_BODY])


def misalignment_of(
    turns: dict[str, int], name: str, x_bias: np.ndarray, p: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(rotation vector, 1-sigma), rad, of misalignment *name* in a state *x_bias* (the error
    state but the attitude) with covariance *p*, laid out as *turns* says (zeros if absent)."""
    i = turns.get(name)
    if i is None:
        return np.zeros(3), np.zeros(3)
    return x_bias[i - 3 : i].copy(), np.sqrt(np.clip(np.diag(p)[i : i + 3], 0.0, None))


def _block_diag(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The block-diagonal matrix of *a* and *b*."""
    out = np.zeros((a.shape[0] + b.shape[0], a.shape[1] + b.shape[1]))
    out[: a.shape[0], : a.shape[1]] = a
    out[a.shape[0] :, a.shape[1] :] = b
    return out


for _e in _EYES.values():
    _e.setflags(write=False)


class AttitudeMEKF:
    """The multiplicative EKF.  See the module docstring for the model."""

    def __init__(self, cfg: AttitudeFilterConfig | None = None) -> None:
        self.cfg = cfg or AttitudeFilterConfig()
        self.q = np.array([1.0, 0.0, 0.0, 0.0])
        #: Where the estimated misalignments sit in the error state ("mag", "gyro": the first
        #: of their three indices; absent: not estimated, its sigma 0).
        self.turns: dict[str, int] = {}
        for name, sigma in (
            ("mag", self.cfg.mag_misalignment_sigma_rad),
            ("gyro", self.cfg.gyro_misalignment_sigma_rad),
        ):
            if sigma > 0.0:
                self.turns[name] = 9 + 3 * len(self.turns)
        #: The error state's size: 9, and 3 more per estimated misalignment.
        self.n = 9 + 3 * len(self.turns)
        self._eye = _EYES[self.n]
        #: gyro bias rad/s, mag bias µT (body), then the misalignments (rad, rotation vectors)
        self.x_bias = np.zeros(self.n - 3)
        self.p = np.eye(self.n)
        self.t_s: float | None = None
        self.w_prev: np.ndarray | None = None  # last measured body rate, rad/s
        # The measured rate one sample before w_prev and how long before it (None: no such
        # sample on this gyro's regular steps): the third point of the quadratic step.
        self.w_before: np.ndarray | None = None
        self.h_before_s = 0.0
        self.w_dot_rad_s2 = 0.0  # |rate change| per s between the last two samples
        self.initialized = False
        self.n_mag_rejected = 0
        self.n_sun_rejected = 0
        self.consecutive_rejections = 0  # magnetometer updates rejected in a row
        self.consecutive_sun_rejections = 0  # sun-face updates rejected in a row (skips do not count)
        #: the last magnetometer innovations (S^-1 r, S^-1) for the hard-iron change test
        self._mag_innovations: list[tuple[np.ndarray, np.ndarray, float]] = []
        self._mag_sums: list[np.ndarray] = []  # sum S^-1 r, sum S^-1 over the window
        self._mag_nis_sum = 0.0  # sum r^T S^-1 r over the window
        self._last_s_inv: np.ndarray | None = None  # the last update's S^-1 (None: singular)
        self._mag_jump_threshold = chi2.quantile(self.cfg.mag_jump_probability, 3)
        n = self.cfg.mag_jump_window
        self._mag_jump_rest_threshold = chi2.quantile(self.cfg.mag_jump_probability, 3 * (n - 1)) if n >= 2 else 0.0
        self.hard_iron_reopened = False  # set by a re-opening; the caller clears it
        self.n_mag_bias_reopened = 0
        self.last_nis_mag = float("nan")
        self.last_sun_faces = 0
        self.steps = StepRegularity(self.cfg.irregular_step_threshold_s, self.cfg.step_history)
        # Consider parameters (not estimated): the magnetometer's and the gyro's scale-factor
        # errors per body axis, and (when configured) each sun face's normal turned along its
        # two tangents (_FACE_TANGENTS): their covariance and the state's cross-covariance with
        # them (None: none configured).
        sm, sg, sf = self.cfg.mag_scale_sigma, self.cfg.gyro_scale_sigma, self.cfg.sun_face_normal_sigma_rad
        sig2 = [sm * sm] * 3 + [sg * sg] * 3 + ([sf * sf] * 12 if sf > 0.0 else [])
        self._p_cc = np.diag(sig2) if max(sig2) > 0.0 else None
        self.p_xc: np.ndarray | None = None
        self._faces_c = self._p_cc is not None and sf > 0.0  # the faces' normals at columns 6:18
        #: Where a live IMU's calibration errors sit among the consider parameters (nine:
        #: ``M`` row-major, :meth:`propagate_imu`), once an IMU has propagated the state.
        self._imu_c: slice | None = None
        self.last_step_sigma_s = 0.0
        self.last_f: np.ndarray | None = None  # error-state transition of the last propagate (None: identity)
        #: the last propagate's gyro-scale term: (``P_xc`` before it, the 3x3 block of ``G``),
        #: or None - kept so that :meth:`last_cross_extra` costs nothing unless asked for
        self._last_g: tuple[np.ndarray, np.ndarray, slice] | None = None
        self._second_diffs: list[float] = []  # the last regular samples' |second differences| of the rate, rad/s
        self._rates_taken: list[tuple[float, np.ndarray]] = []  # the last two (t_s, rate) taken, rad/s
        self._spikes_in_a_row = 0
        self.n_gyro_spikes = 0

    # -- state ---------------------------------------------------------------------
    @property
    def gyro_bias_rad_s(self) -> np.ndarray:
        return self.x_bias[:3]

    @property
    def mag_bias_ut(self) -> np.ndarray:
        return self.x_bias[3:6]

    def misalignment(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(rotation vector, 1-sigma), rad, of the "mag" or "gyro" misalignment against the
        body axes (zeros if not estimated)."""
        return misalignment_of(self.turns, name, self.x_bias, self.p)

    def prior_turn_covariance(self) -> np.ndarray:
        """The misalignments' prior covariance (n - 9 square, rad^2): diagonal, their sigmas."""
        sig = {"mag": self.cfg.mag_misalignment_sigma_rad, "gyro": self.cfg.gyro_misalignment_sigma_rad}
        return np.diag([sig[name] ** 2 for name in self.turns for _ in range(3)])

    def _turn(self, name: str) -> np.ndarray | None:
        """The estimated misalignment's rotation vector (a view), None if not estimated."""
        i = self.turns.get(name)
        return None if i is None else self.x_bias[i - 3 : i]

    def body_rate(self, w_meas_rad_s: np.ndarray) -> np.ndarray:
        """The body's rate from a BMX160 rate (in the nominal body axes): bias removed, the
        gyro's misalignment turned back."""
        w = w_meas_rad_s - self.x_bias[:3]
        d = self._turn("gyro")
        return w if d is None else rotation_matrix(-d) @ w

    def _now(self) -> float:
        """:attr:`t_s` of an initialised filter (:meth:`initialize` sets it; moving one never
        initialised is the caller's error, which failed on None before)."""
        assert self.t_s is not None, "AttitudeMEKF: initialize first"
        return self.t_s

    def initialize(
        self,
        t_s: float,
        q_body_to_gcrs: ArrayLike,
        w_meas_body_rad_s: ArrayLike,
        bias0: ArrayLike,
        p_bias0: ArrayLike,
        att_from_bias: ArrayLike | None = None,
    ) -> None:
        """Start from attitude *q* (sigma ``init_attitude_sigma_rad``) and the rest of the
        state *bias0* (``n - 3``: biases, misalignments) with covariance *p_bias0* (the
        biases alone, 6 and 6 x 6: the misalignments zero with their prior sigmas,
        uncorrelated).
        *att_from_bias* (3, n - 3): how the attitude *q* was computed moves with their errors
        (d dtheta / d bias) - their uncertainty is then the attitude's too, with the
        correlation (a TRIAD on a magnetometer whose bias is still tens of uT off is as far
        off as that bias turns the field)."""
        self.q = np.asarray(q_body_to_gcrs, dtype=float) / np.linalg.norm(q_body_to_gcrs)
        self.x_bias = np.asarray(bias0, dtype=float).copy()
        p_bb = np.asarray(p_bias0, dtype=float)
        if self.n > 9 and self.x_bias.shape == (6,):
            self.x_bias = np.concatenate([self.x_bias, np.zeros(self.n - 9)])
            p_bb = _block_diag(p_bb, self.prior_turn_covariance())
            if att_from_bias is not None:
                att_from_bias = np.hstack([np.asarray(att_from_bias, dtype=float), np.zeros((3, self.n - 9))])
        assert self.x_bias.shape == (self.n - 3,), "AttitudeMEKF.initialize: state size"
        self.p = np.zeros((self.n, self.n))
        self.p[:3, :3] = np.eye(3) * self.cfg.init_attitude_sigma_rad**2
        self.p[3:, 3:] = p_bb
        if att_from_bias is not None:
            g = np.asarray(att_from_bias, dtype=float)
            self.p[:3, :3] += g @ p_bb @ g.T
            self.p[:3, 3:] = g @ p_bb
            self.p[3:, :3] = self.p[:3, 3:].T
        self.p_xc = np.zeros((self.n, self._p_cc.shape[0])) if self._p_cc is not None else None
        self.t_s = float(t_s)
        self.w_prev = np.asarray(w_meas_body_rad_s, dtype=float).copy()
        self.w_before = None
        if not self._rates_taken or self._rates_taken[-1][0] != self.t_s:
            self._rates_taken = [(self.t_s, self.w_prev.copy())]
        self.initialized = True
        self.consecutive_rejections = 0
        self.consecutive_sun_rejections = 0
        self._mag_innovations = []

    # -- propagation -----------------------------------------------------------------
    def propagate(self, t_s: float, w_meas_body_rad_s: ArrayLike | None = None, bmx160: bool = True) -> None:
        """Move to *t_s* with the new gyro sample (or, without one, the last rate held).
        *bmx160* False: the rate held is a live IMU's (body axes already; none of the
        BMX160's turn or scale factors)."""
        cfg = self.cfg
        dt = float(t_s) - self._now()
        self.last_f = None  # None: identity (no time step)
        self._last_g = None
        if dt <= 0.0:
            if w_meas_body_rad_s is not None:
                self.w_prev = np.asarray(w_meas_body_rad_s, dtype=float).copy()
                self.w_before = None
            return
        w_prev = self.w_prev
        assert w_prev is not None  # initialize sets it with t_s; nothing clears it
        bg = self.x_bias[:3]
        w0 = w_prev - bg
        w_new = None if w_meas_body_rad_s is None else np.array(w_meas_body_rad_s, dtype=float)  # a copy
        if w_new is not None and self._gyro_spike(float(t_s), w_new):
            w_new = None  # this sample's rate is not used: the last one is held over the step
        gap = w_new is None or dt > cfg.max_gap_s
        w1 = w0 if w_new is None or gap else w_new - bg
        w_before = self.w_before
        if not gap and w_before is not None and 0.5 * dt <= self.h_before_s <= 2.0 * dt:
            # The rate's curvature from the sample before: the two-sample step's error
            # does not average out while tumbling (quaternion.step_rotation_vector_quadratic).
            phi = step_rotation_vector_quadratic(w_before - bg, w0, w1, self.h_before_s, dt)
        else:
            phi = step_rotation_vector(w0, w1, dt)
        phi_gyro = phi if bmx160 else None  # in the gyro's axes (the nominal body axes)
        d = self._turn("gyro") if bmx160 else None
        if d is not None:  # the gyro's axes turned back into the body's: C^T phi
            ct = rotation_matrix(-d)
            phi, w1 = ct @ phi, ct @ w1
        ang = math.sqrt(float(phi @ phi))
        # Gyro white noise: each sample's enters the step before and the step after it, with
        # weights that add up to dt, so the attitude's random walk grows by dt^2 sigma^2 per
        # step (one step alone has dt^2 sigma^2 / 2 from its two samples; the next step's
        # share of the same noise is what makes up the other half).
        q_att = dt * dt * cfg.gyro_noise_rad_s**2 + (cfg.propagation_error_coeff * ang**3) ** 2
        q_att += cfg.gyro_bias_walk_rad_s_per_sqrt_s**2 * dt**3 / 3.0
        if gap:
            # Rate held over the interval: the error grows with the rate's own change,
            # |dw/dt| t^2 / 2, estimated from the last two samples.
            q_att += (0.5 * self.w_dot_rad_s2 * dt * dt + cfg.gyro_noise_rad_s * dt) ** 2
        self._advance(t_s, dt, phi, q_att, None if gap else w1, cfg.gyro_bias_walk_rad_s_per_sqrt_s, gyro_phi=phi_gyro)
        self.w_before = None if gap else w_prev
        self.h_before_s = dt
        if w_new is not None:
            if not gap:
                d = w_new - w_prev
                self.w_dot_rad_s2 = math.sqrt(float(d @ d)) / dt
            self.w_prev = w_new

    def _gyro_spike(self, t_s: float, w_new: np.ndarray) -> bool:
        """True if *w_new* is off the line through the last two rates taken by more than
        ``gyro_spike_sigmas`` times the larger of the noise of that second difference and
        the recent second differences' median (scaled by the square of the extrapolation
        over the samples' spacing): a tumbling body's rate changes smoothly; a corrupt
        sample - a flipped bit, 2.5 deg/s on one axis - does not.  Two in a row are taken as
        a real change.  Counted in ``n_gyro_spikes``."""
        cfg = self.cfg
        taken = self._rates_taken
        if len(taken) < 2:
            taken.append((t_s, w_new))
            return False
        (ta, wa), (tb, wb) = taken[-2], taken[-1]
        h, ext = tb - ta, t_s - tb
        if not (0.0 < h <= cfg.max_gap_s and 0.0 < ext <= cfg.max_gap_s):
            taken[:] = [(t_s, w_new)]  # a gap: nothing to extrapolate from
            self._second_diffs.clear()
            return False
        d = float(np.linalg.norm(w_new - wb - (wb - wa) * (ext / h)))
        hist = self._second_diffs
        k = max(1.0, ext / h) ** 2
        scale = k * max(math.sqrt(6.0) * cfg.gyro_noise_rad_s, statistics.median(hist) if len(hist) >= 3 else 0.0)
        if len(hist) >= 3 and d > cfg.gyro_spike_sigmas * scale and self._spikes_in_a_row < 2:
            self.n_gyro_spikes += 1
            self._spikes_in_a_row += 1
            return True
        self._spikes_in_a_row = 0
        if ext <= 1.5 * h:
            hist.append(d)
            del hist[:-12]
        taken[:] = [(tb, wb), (t_s, w_new)]
        return False

    def propagate_imu(
        self,
        t_s: float,
        t_imu_s: ArrayLike,
        rate_imu_body_rad_s: ArrayLike,
        time_sigma_s: float = 0.0,
        t_start_s: float | None = None,
        imu_to_body: np.ndarray | None = None,
    ) -> None:
        """Move to *t_s* on a live IMU's samples (times on the filter's axis, body-axis rates
        as measured; the state's gyro bias is that IMU's).  The caller checks that they
        cover the interval (:func:`integrate_rates` holds the rate beyond the ends).
        *t_start_s*: where the step's first instant falls on the IMU's axis (default: the
        filter's time): the two ends' offsets differ when the sensor stamps wrapped
        (:mod:`pygnc.estimation.imu_alignment`), so the IMU is integrated over the samples'
        true interval, not their stamp difference.
        *time_sigma_s*: 1-sigma error of the IMU's times relative to the sensor samples'
        instants: the window shifted by ``e`` turns the step by ``(w1 - C w0) e`` more,
        added to the attitude covariance.  *imu_to_body*: the IMU's axes in the body's (the
        calibration errors ``M`` act in its axes; default: the body's): the step turns by
        ``R M R^T phi`` more, ``M`` the consider parameters ``imu_gyro_scale_sigma`` and
        ``imu_gyro_misalignment_sigma_rad``."""
        cfg = self.cfg
        t0 = self._now()
        stamp_dt = float(t_s) - t0
        self.last_f = None
        self._last_g = None
        if stamp_dt <= 0.0:
            return
        a = t0 if t_start_s is None else float(t_start_s)
        dt = float(t_s) - a
        if dt <= 0.0:
            return
        bg = self.x_bias[:3].copy()
        phi, w0, w1 = integrate_rates(t_imu_s, np.asarray(rate_imu_body_rad_s, dtype=float) - bg, a, float(t_s))
        q_att = (
            cfg.imu_gyro_noise_density_rad_s_sqrt_hz**2 * dt + cfg.imu_gyro_bias_walk_rad_s_per_sqrt_s**2 * dt**3 / 3.0
        )
        consider = None
        cols = self._imu_consider()
        if cols is not None:
            r_db = np.eye(3) if imu_to_body is None else np.asarray(imu_to_body, dtype=float)
            j = np.kron(_EYE3, r_db.T @ phi)  # d(M phi_dev)/d(M row-major): phi_dev in row i's block
            consider = (cols, r_db @ j)
        self._advance(t_s, dt, phi, q_att, w1, cfg.imu_gyro_bias_walk_rad_s_per_sqrt_s, stamp_dt, consider=consider)
        if time_sigma_s > 0.0:
            v = w1 - rotation_matrix(-phi) @ w0
            self.p[:3, :3] += (time_sigma_s * time_sigma_s) * np.outer(v, v)
        self.w_dot_rad_s2 = math.sqrt(float((w1 - w0) @ (w1 - w0))) / dt  # the IMU's own rates at both ends
        self.w_prev = w1 + bg
        self.w_before = None

    def _advance(
        self,
        t_s: float,
        dt: float,
        phi: np.ndarray,
        q_att: float,
        w_step: np.ndarray | None,
        bias_walk_rad_s_per_sqrt_s: float,
        stamp_dt_s: float | None = None,
        gyro_phi: np.ndarray | None = None,
        consider: tuple[slice, np.ndarray] | None = None,
    ) -> None:
        """The common part of a step of *dt* seconds: rotate the reference by *phi* (body
        axes), propagate P with the error-state transition, add *q_att* (rad^2 per axis) and
        the bias walks, and, for a step integrated from samples (*w_step*, the bias-corrected
        body rate at its end), the step-length uncertainty about the rate axis (from the
        stamp difference *stamp_dt_s*, default *dt*).  *gyro_phi*: the step was integrated
        from the BMX160, this its rotation in the gyro's axes - its scale-factor errors
        (consider parameters) turn it by ``C^T diag(gyro_phi) s`` more, and its estimated
        misalignment ``C`` by ``[phi]x C^T e``.  *consider*: (the columns of other consider
        parameters, their sensitivity ``G`` (3 x k) of the step's rotation)."""
        cfg = self.cfg
        self.q = quat_multiply(self.q, quat_from_rotvec(phi))
        self.q /= math.sqrt(float(self.q @ self.q))
        f = self._eye.copy()
        f[:3, :3] = rotation_matrix(-phi)
        half = rotation_matrix(-0.5 * phi)
        d = None if gyro_phi is None else self._turn("gyro")
        if d is not None:
            ct = rotation_matrix(-d)
            i = self.turns["gyro"]
            # C(d + e) = exp([J e]x) C(d): the step turns by [phi]x C^T J e more
            f[:3, i : i + 3] = half @ skew(phi) @ ct @ (_EYE3 + 0.5 * skew(d))
            half = half @ ct  # the bias and the scale factors act in the gyro's axes
        f[:3, 3:6] = -dt * half
        self.last_f = f
        self._last_g = None
        # F is the identity but for its attitude rows f3: F P F^T changes those rows and columns alone
        f3 = f[:3, :]
        p = self.p.copy()
        p[:3, :] = f3 @ self.p
        p[:, :3] = p @ f3.T
        if self.p_xc is not None:
            fx = self.p_xc.copy()
            fx[:3, :] = f3 @ self.p_xc
            cg = None
            if gyro_phi is not None and self._p_cc is not None and self._p_cc[3, 3] > 0.0:
                cg = (slice(3, 6), half * gyro_phi[None, :])  # the BMX160's scale factors
            elif consider is not None:
                cg = (consider[0], half @ consider[1])
            if cg is not None and self._p_cc is not None:
                # G (n x n_c) is zero but for its attitude-row block g at columns cs.
                cs, g = cg
                self._last_g = (self.p_xc, g, cs)
                gpc = g @ self._p_cc[cs, :]  # G P_cc: its attitude rows
                cross = fx[:, cs] @ g.T  # F P_xc G^T: its attitude columns
                p[:, :3] += cross
                p[:3, :] += cross.T
                p[:3, :3] += gpc[:, cs] @ g.T
                fx[:3, :] += gpc
            self.p_xc = fx
        if w_step is not None:
            # The step's true length is uncertain: the body turned w1 * (dt_true - dt) more
            # than integrated, about the rate axis (rank one).
            sig_dt = self._step_length_sigma(dt if stamp_dt_s is None else stamp_dt_s)
            if sig_dt > 0.0:
                p[:3, :3] += (sig_dt * sig_dt) * np.outer(w_step, w_step)
        qb = bias_walk_rad_s_per_sqrt_s**2 * dt
        qm = cfg.mag_bias_walk_ut_per_sqrt_s**2 * dt
        # the diagonal (the misalignments are constants: no walk)
        p.flat[:: self.n + 1] += (q_att, q_att, q_att, qb, qb, qb, qm, qm, qm) + (0.0,) * (self.n - 9)
        if max(p[0, 0], p[1, 1], p[2, 2]) > math.pi**2:
            for i in range(3):  # an attitude sigma beyond pi means nothing: scale it down
                if p[i, i] > math.pi**2:
                    f_i = math.pi / math.sqrt(p[i, i])
                    p[i, :] *= f_i
                    p[:, i] *= f_i
        self.p = 0.5 * (p + p.T)
        self.t_s = float(t_s)

    def set_gyro_bias(self, bias_rad_s: ArrayLike, p_bias: ArrayLike) -> None:
        """Replace the gyro-bias estimate (another gyro takes over): its covariance *p_bias*
        (3, 3), uncorrelated with attitude and magnetometer bias."""
        self.x_bias[:3] = np.asarray(bias_rad_s, dtype=float)
        self.w_before = None  # the rates before were the other gyro's
        self.p[3:6, :] = 0.0
        self.p[:, 3:6] = 0.0
        self.p[3:6, 3:6] = np.asarray(p_bias, dtype=float)
        if self.p_xc is not None:
            self.p_xc[3:6, :] = 0.0

    def _step_length_sigma(self, dt: float) -> float:
        """1-sigma error of a step's length from its time tags: ``regular_step_sigma_s`` for
        a regular step, ``|d|`` more for an irregular one (:mod:`.step_regularity`: its true
        length is anywhere between the stamp difference and the usual interval's multiple).
        The stamp difference itself is kept: nothing says which of the two is right."""
        d = self.steps.observe(dt)
        sig = math.hypot(self.cfg.regular_step_sigma_s, d)
        self.last_step_sigma_s = sig
        return sig

    def last_cross_extra(self) -> np.ndarray | None:
        """What the consider parameters added to cov(x before, x after) over the last
        propagate (``P_xc G^T``, n x n; None: nothing): the smoother's cross-covariance is
        ``P F^T`` plus it."""
        if self._last_g is None:
            return None
        pxc, g, cs = self._last_g
        out = np.zeros((self.n, self.n))
        out[:, :3] = pxc[:, cs] @ g.T
        return out

    def _imu_consider(self) -> slice | None:
        """The IMU calibration errors' columns among the consider parameters (added, exactly
        uncorrelated with everything, at the first IMU step); None when not configured."""
        if self._imu_c is None:
            ss, sm = self.cfg.imu_gyro_scale_sigma, self.cfg.imu_gyro_misalignment_sigma_rad
            if max(ss, sm) <= 0.0:
                return None
            var = np.diag([(ss if i == j else sm) ** 2 for i in range(3) for j in range(3)])
            if self._p_cc is None:  # (the magnetometer's and the BMX160's columns keep their places)
                self._p_cc = np.zeros((6, 6))
            k = self._p_cc.shape[0]
            self._p_cc = _block_diag(self._p_cc, var)
            pxc = np.zeros((self.n, k)) if self.p_xc is None else self.p_xc
            self.p_xc = np.hstack([pxc, np.zeros((self.n, 9))])
            self._imu_c = slice(k, k + 9)
        return self._imu_c

    @property
    def n_irregular_steps(self) -> int:
        return self.steps.n_irregular

    # -- updates ----------------------------------------------------------------------
    def _update(self, r: np.ndarray, h: np.ndarray, rdiag: np.ndarray, h_c: np.ndarray | None = None) -> Update:
        """Gated update with innovation *r* (m,), H (m, n) and the noise variances *rdiag*;
        *h_c* (m, n_c): the measurement's sensitivity to the consider parameters (a
        Schmidt-Kalman update: their covariance enters the gain and the state's covariance,
        their estimate stays zero)."""
        pxc = self.p_xc
        pht = self.p @ h.T
        if h_c is not None and pxc is not None:
            pht += pxc @ h_c.T
            s = h @ pht + h_c @ (pxc.T @ h.T + self._p_cc @ h_c.T)
        else:
            s = h @ pht
        s.flat[:: s.shape[0] + 1] += rdiag
        s_inv = _inverse(s)  # one inverse for the NIS and the gain (m <= 6)
        self._last_s_inv = s_inv
        if s_inv is None:
            return Update(REJECTED, math.nan, r, s)
        nis = float(r @ s_inv @ r)
        if not nis <= CHI2_9999[min(len(r), 9) - 1] * (1.0 if len(r) <= 9 else len(r) / 9.0):
            return Update(REJECTED, nis, r, s)
        k = pht @ s_inv  # P H^T S^-1 (P and S symmetric)
        dx = k @ r
        ikh = self._eye - k @ h
        p = ikh @ self.p @ ikh.T + (k * rdiag) @ k.T
        if pxc is not None:
            pxc_new = ikh @ pxc
            if h_c is not None:  # the Joseph form with the consider parameters' gain held at zero
                kc = k @ h_c
                kc_pcc = kc @ self._p_cc
                cross = pxc_new @ kc.T
                p += kc_pcc @ kc.T - cross - cross.T
                pxc_new -= kc_pcc
        # A sum is finite only if every term is (an overflow to inf is refused as well).
        if not (math.isfinite(float(dx.sum())) and math.isfinite(float(p.sum()))):
            return Update(REJECTED, nis, r, s)  # a non-finite update is not applied (the state stays usable)
        self.p = 0.5 * (p + p.T)
        if pxc is not None:
            self.p_xc = pxc_new
        d0, d1, d2 = dx[:3].tolist()
        self.q = quat_multiply(self.q, (1.0, 0.5 * d0, 0.5 * d1, 0.5 * d2))
        self.q /= math.sqrt(float(self.q @ self.q))
        if self.q[0] < 0:
            self.q = -self.q
        self.x_bias = self.x_bias + dx[3:]
        return Update(USED, nis, r, s, n_used=len(r))

    def update_mag(self, m_meas_body_ut: ArrayLike, mag_gcrs_ut: np.ndarray) -> Update:
        """Update with a magnetometer sample [uT, body] against the model field [uT, GCRS]."""
        cfg = self.cfg
        a = dcm_from_quat(self.q)
        hb = a.T @ mag_gcrs_ut
        h = np.zeros((3, self.n))
        h[:, 6:9] = np.eye(3)
        d = self._turn("mag")
        if d is not None:  # the field in the magnetometer's (misaligned) axes: m = C A^T B + b
            i = self.turns["mag"]
            c = rotation_matrix(d)
            h[:, :3] = c @ skew(hb)
            hb = c @ hb
            # C(d + e) = exp([J e]x) C(d), J the left Jacobian of SO(3) at d (first order in d)
            h[:, i : i + 3] = -skew(hb) @ (np.eye(3) + 0.5 * skew(d))
        else:
            h[:, :3] = skew(hb)
        r = np.asarray(m_meas_body_ut, dtype=float) - hb - self.x_bias[3:6]
        h_c = None
        if self.p_xc is not None:  # the scale factors' errors: consider parameters
            h_c = np.zeros((3, self.p_xc.shape[1]))
            h_c[:, :3] = np.diag(hb)
        result = self._update(r, h, np.full(3, cfg.mag_noise_ut**2 + cfg.mag_model_sigma_ut**2), h_c)
        self.last_nis_mag = result.nis
        if result.used:
            self.consecutive_rejections = 0
        else:
            self.n_mag_rejected += 1
            self.consecutive_rejections += 1
        if cfg.mag_jump_window > 0 and self._last_s_inv is not None:
            self._test_hard_iron_change(r, self._last_s_inv, math.sqrt(float(hb @ hb)))
        return result

    def _test_hard_iron_change(self, r: np.ndarray, s_inv: np.ndarray, field_ut: float) -> None:
        """Keep the innovation *r* [µT, magnetometer axes] and its inverse covariance *s_inv*;
        when the window's innovations share an offset the filter does not expect (their GLR
        statistic ``g^T F^-1 g``, g = sum S^-1 r, F = sum S^-1, past ``mag_jump_probability``)
        and that offset explains them (what is left, ``sum r^T S^-1 r - g^T F^-1 g``, within the
        same quantile of chi-square with 3 (n - 1) degrees of freedom: one corrupt sample is
        not a shared offset), re-open the magnetometer bias: a hard iron that changed (a
        subsystem switched on) is otherwise taken as an attitude error, confidently.  The bias's covariance
        grows by the offset's squared norm plus ``mag_jump_floor_ut`` squared on every axis,
        the attitude's by that over |B|^2 (the filter has taken some of it as attitude
        already); :attr:`hard_iron_reopened` tells the caller (a re-opening that leaves the
        attitude beyond ``restart_attitude_sigma_rad`` is a lost filter)."""
        if not (math.isfinite(float(r.sum())) and math.isfinite(float(s_inv.sum()))):
            return
        window = self._mag_innovations
        u = s_inv @ r
        entry = (u, s_inv, float(r @ u))
        window.append(entry)
        # Running sums (the window's, recomputed whenever it starts again from one entry).
        if len(window) == 1:
            self._mag_sums = [entry[0].copy(), entry[1].copy()]
            self._mag_nis_sum = entry[2]
        else:
            self._mag_sums[0] += entry[0]
            self._mag_sums[1] += entry[1]
            self._mag_nis_sum += entry[2]
        n = self.cfg.mag_jump_window
        if len(window) > n:
            old = window.pop(0)
            self._mag_sums[0] -= old[0]
            self._mag_sums[1] -= old[1]
            self._mag_nis_sum -= old[2]
        if len(window) < n or n < 2:
            return
        g = self._mag_sums[0]
        f_inv = _inverse(self._mag_sums[1])
        if f_inv is None:
            return
        offset = f_inv @ g
        shared = float(g @ offset)
        if not shared > self._mag_jump_threshold:
            return
        if not self._mag_nis_sum - shared <= self._mag_jump_rest_threshold:
            return  # one outlier (or several unlike ones), not a shared offset
        grow = float(offset @ offset) + self.cfg.mag_jump_floor_ut**2
        self.p[6:9, 6:9] += np.eye(3) * grow
        self.p[:3, :3] += np.eye(3) * (grow / max(field_ut, 1.0) ** 2)
        self._mag_innovations = []
        self.n_mag_bias_reopened += 1
        self.hard_iron_reopened = True

    def predicted_lux(
        self, env: Environment, a: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(sun unit vector, body (3,), direct cosines (6,), predicted lux (6,), albedo lux
        (6,)) at the current attitude (or at attitude matrix *a*)."""
        a = dcm_from_quat(self.q) if a is None else a
        s_b = a.T @ env.sun_unit_gcrs
        cosines = FACE_NORMALS_BODY @ s_b
        alb = env.sun_lux * _albedo.faces_from_cells(env.albedo_weights, env.albedo_dirs_gcrs, a)
        pred = env.sun_lux * env.sun_fraction * np.maximum(cosines, 0.0) + alb
        return s_b, cosines, pred, alb

    def update_sun(self, lux: ArrayLike, saturated: ArrayLike, env: Environment) -> Update:
        """One update with every usable face stacked; its ``n_used`` is how many were used
        (decision "skipped" in eclipse or with none usable)."""
        cfg = self.cfg
        self.last_sun_faces = 0
        if env.sun_fraction < cfg.eclipse_fraction_threshold:
            return Update(SKIPPED)
        lux = np.asarray(lux, dtype=float)
        sat = np.asarray(saturated, dtype=bool)
        s_b, cosines, pred, alb = self.predicted_lux(env)
        e_dir = env.sun_lux * env.sun_fraction
        var = (
            (cfg.lux_noise_fraction * np.maximum(lux, pred)) ** 2
            + cfg.lux_noise_floor_lux**2
            + (cfg.lux_cosine_error_fraction * e_dir) ** 2
            + (cfg.albedo_relative_sigma * alb + cfg.albedo_floor_fraction * env.sun_lux) ** 2
        )
        if env.sun_fraction < 1.0 - cfg.eclipse_fraction_threshold:  # penumbra: timing of the edge
            var += (0.1 * env.sun_lux) ** 2
        rows, res, rv, rows_c = [], [], [], []
        sb_x = skew(s_b)
        n_c = 0 if self.p_xc is None else self.p_xc.shape[1]
        faces_c = self._faces_c and n_c > 0  # the faces' normals considered
        for i in range(6):
            if sat[i]:
                if pred[i] >= OPT3001_FULL_SCALE_LUX:
                    continue
                z = OPT3001_FULL_SCALE_LUX
            else:
                z = lux[i]
                if cosines[i] <= 0.0 and z - pred[i] < 3.0 * math.sqrt(var[i]):
                    continue  # dark and predicted dark: no information
            rows.append(e_dir * (FACE_NORMALS_BODY[i] @ sb_x))
            res.append(z - pred[i])
            rv.append(var[i])
            if faces_c:  # the face's normal turned along its tangents: lux E f (t . s) more, lit
                rc = np.zeros(n_c)
                if cosines[i] > 0.0:
                    rc[6 + 2 * i : 8 + 2 * i] = e_dir * (_FACE_TANGENTS[i] @ s_b)
                rows_c.append(rc)
        if not rows:
            return Update(SKIPPED)
        h = np.zeros((len(rows), self.n))
        h[:, :3] = np.array(rows)
        result = self._update(np.array(res), h, np.array(rv), np.array(rows_c) if faces_c else None)
        if not result.used:
            self.n_sun_rejected += 1
            self.consecutive_sun_rejections += 1
            return result
        self.consecutive_sun_rejections = 0
        self.last_sun_faces = len(rows)
        return result


# --------------------------------------------------------------------------- estimator
@dataclass
class AttitudeOutput:
    """One estimate.  ``valid_attitude`` False: ``q`` is a placeholder and ``sigma_att_rad`` pi."""

    t_s: float
    q_body_to_gcrs: np.ndarray
    rate_body_rad_s: np.ndarray
    gyro_bias_rad_s: np.ndarray
    mag_bias_ut: np.ndarray
    cov: np.ndarray  # 9x9 (attitude rad, gyro bias rad/s, mag bias µT)
    valid_attitude: bool
    in_eclipse: bool
    sun_faces_used: int
    #: the magnetometer's and the gyro's misalignments (body rotation vectors, rad) and their
    #: 1-sigmas (zeros: not estimated)
    mag_misalignment_rad: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3))
    sigma_mag_misalignment_rad: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3))
    gyro_misalignment_rad: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3))
    sigma_gyro_misalignment_rad: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3))


@dataclass
class _StepRecord:
    """What the smoother needs of one step: the filtered output, the measured rate (and
    whether it was the BMX160's, which the gyro's turn applies to), the epoch sigma, and
    (valid attitude only) the prior ``(continues, F, P-, q-, b-, X)`` (``X``: what the
    consider parameters add to ``P+ F^T``, or None) and the posterior covariance ``P+``
    and state ``x+`` (the error state but the attitude; its reference is ``out``'s)."""

    out: AttitudeOutput
    w_meas: np.ndarray
    time_tag_sigma_s: float
    prior: tuple | None
    p_post: np.ndarray | None
    x_post: np.ndarray
    bmx160: bool = True


def _triad_from_mag_bias(
    a: np.ndarray, s_b: np.ndarray, m_corr: np.ndarray, env: Environment, turn: np.ndarray | None = None
) -> np.ndarray | None:
    """d dtheta / d state (3, 6, or 9 with *turn*; gyro bias columns zero) of the TRIAD
    attitude *a* from sun vector *s_b* and the bias-corrected field *m_corr* [uT,
    magnetometer axes] turned into body axes by ``C(turn)^T`` (*turn*: the misalignment, a
    rotation vector, or None) - body-axis error rotations, as the MEKF's error state - by
    differences of 0.01 uT and 1e-4 rad; None where a perturbed TRIAD fails."""
    h, hr = 0.01, 1e-4
    ct = np.eye(3) if turn is None else rotation_matrix(turn).T
    g = np.zeros((3, 6 if turn is None else 9))
    for k in range(3 if turn is None else 6):
        dm = np.zeros(3)
        if k < 3:
            dm[k] = h  # a larger bias estimate: a smaller corrected field on that axis
            ak = triad(s_b, env.sun_unit_gcrs, ct @ (m_corr - dm), env.mag_gcrs_ut)
        else:
            assert turn is not None
            dm[k - 3] = hr  # the misalignment a little larger on that axis
            ak = triad(s_b, env.sun_unit_gcrs, rotation_matrix(turn + dm).T @ m_corr, env.mag_gcrs_ut)
        if ak is None:
            return None
        g[:, 3 + k] = rotvec_from_quat(quat_from_dcm(a.T @ ak)) / (h if k < 3 else hr)
    return g


class AttitudeEstimator:
    """Calibrator + MEKF + initialisation logic; one :meth:`step` per sensor sample.

    ``env`` is ``None`` when there is no position (then only the calibrator's rates and
    biases are meaningful, and an initialised MEKF is propagated on the gyro alone)."""

    def __init__(self, cfg: AttitudeFilterConfig | None = None, record_history: bool = False) -> None:
        self.cfg = cfg or AttitudeFilterConfig()
        #: Keep what the ground smoother needs, one :class:`_StepRecord` per step (~6 kB each: three n x n matrices
        #: and the output):
        #: off in flight (memory), on for ground replay.
        self.record_history = bool(record_history)
        self.history: list[_StepRecord] = []
        self.calib = GyroMagCalibrator(self.cfg)
        self.mekf = AttitudeMEKF(self.cfg)
        self.rest = RestDetector()
        self.n_init = 0
        self.n_lost = 0  # times the MEKF was found lost and stopped (it starts again from TRIAD)
        self.n_restarts = 0  # times it started again from TRIAD on its own biases, too uncertain to update
        self.n_start_waits = 0  # samples that could have started it but for the biases not yet known
        self.n_start_implausible = 0  # samples refused as a start: the field's magnitude not the model's
        self.n_steps = 0
        self.last_in_eclipse = False
        self.last_w = np.zeros(3)
        self.time_tag_sigma_s = self.cfg.time_tag_sigma_s
        #: The gyro whose bias the MEKF's state holds: "sensor" (the BMX160 in the sensor
        #: samples) or "imu" (a live IMU); the other's (bias, covariance) waits in _bias_aside.
        self.gyro_source = "sensor"
        self._bias_aside: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.n_imu_steps = 0
        self.n_source_switches = 0
        self._w_sensor_prev: np.ndarray | None = None  # the BMX160's rate at the last step
        #: The misalignments a start takes (the last filter's estimates: a mounting does not
        #: change when the filter is lost; their sigmas back to the priors').
        self._turns_kept = np.zeros(self.mekf.n - 9)

    def imu_reconnected(self) -> None:
        """The live IMU was plugged in again (another connection): its turn-on bias is
        unknown again - the one kept aside is dropped, the state's reset if it is the IMU's."""
        self._bias_aside.pop("imu", None)
        if self.gyro_source == "imu" and self.mekf.initialized:
            sigma = self.cfg.imu_init_gyro_bias_sigma_rad_s
            self.mekf.set_gyro_bias(np.zeros(3), np.eye(3) * sigma**2)

    def _use_gyro(self, source: str) -> bool:
        """Make *source*'s bias the state's (keeping the other's aside); True if it changed."""
        f = self.mekf
        if source == self.gyro_source:
            return False
        self._bias_aside[self.gyro_source] = (f.x_bias[:3].copy(), f.p[3:6, 3:6].copy())
        if source in self._bias_aside:
            b, pb = self._bias_aside.pop(source)
        else:  # first use: the turn-on bias is unknown
            sigma = self.cfg.imu_init_gyro_bias_sigma_rad_s if source == "imu" else self.cfg.init_gyro_bias_sigma_rad_s
            b, pb = np.zeros(3), np.eye(3) * sigma**2
        f.set_gyro_bias(b, pb)
        if source == "sensor" and self._w_sensor_prev is not None:
            f.w_prev = self._w_sensor_prev.copy()
        self.gyro_source = source
        self.n_source_switches += 1
        return True

    def _triad_start(
        self,
        t_s: float,
        w_b: np.ndarray,
        m_b: np.ndarray,
        lux: ArrayLike,
        sat: ArrayLike,
        env: Environment,
        x_bias: np.ndarray,
        p_bias: np.ndarray,
        p_gyro_bias_gate: np.ndarray | None = None,
    ) -> bool:
        """Start the MEKF from TRIAD on this sample with the state but the attitude *x_bias*
        (biases, [misalignment]: the MEKF's ``n - 3``) of covariance *p_bias* (the gyro bias's
        gated on *p_gyro_bias_gate*, default its block of *p_bias*), if the sun is
        visible, TRIAD has two directions, and the biases are known well enough
        (``start_max_*``); False (nothing changed) otherwise."""
        cfg = self.cfg
        if env.sun_fraction < 1.0 - cfg.eclipse_fraction_threshold:
            return False
        m_corr = m_b - x_bias[3:6]
        # The corrected field's magnitude against the model's (attitude-free): a corrupt
        # magnetometer sample is no start.
        b_norm = math.sqrt(float(env.mag_gcrs_ut @ env.mag_gcrs_ut))
        tol = 4.0 * math.sqrt(cfg.mag_noise_ut**2 + cfg.mag_model_sigma_ut**2 + float(np.trace(p_bias[3:6, 3:6])))
        if abs(math.sqrt(float(m_corr @ m_corr)) - b_norm) > tol + 0.05 * b_norm:
            self.n_start_implausible += 1
            return False
        s_b = sun_vector_from_faces(lux, sat, env.sun_lux)
        if s_b is None:
            return False
        turn = x_bias[6:9] if "mag" in self.mekf.turns else None  # the magnetometer's turn comes first
        # the magnetometer's axes turned into the body's
        m_corr_body = m_corr if turn is None else rotation_matrix(turn).T @ m_corr
        a = triad(s_b, env.sun_unit_gcrs, m_corr_body, env.mag_gcrs_ut)
        if a is None:  # sun and field (nearly) parallel: no attitude from this sample
            return False
        # Second pass with the albedo at this attitude subtracted.
        alb = env.sun_lux * _albedo.faces_from_cells(env.albedo_weights, env.albedo_dirs_gcrs, a)
        s_b2 = sun_vector_from_faces(lux, sat, env.sun_lux, alb)
        if s_b2 is not None:
            a2 = triad(s_b2, env.sun_unit_gcrs, m_corr_body, env.mag_gcrs_ut)
            if a2 is not None:
                a, s_b = a2, s_b2
        g9 = _triad_from_mag_bias(a, s_b, m_corr, env, turn)
        if g9 is None:
            return False
        g = np.zeros((3, len(x_bias)))  # the gyro's turn does not enter a TRIAD
        g[:, : g9.shape[1]] = g9
        if (
            math.sqrt(float(np.trace(p_bias[:3, :3] if p_gyro_bias_gate is None else p_gyro_bias_gate)))
            > cfg.start_max_gyro_bias_sigma_rad_s
            or math.sqrt(float(np.trace(g @ p_bias @ g.T))) > cfg.start_max_attitude_sigma_rad
        ):
            self.n_start_waits += 1
            return False
        self.mekf.initialize(t_s, quat_from_dcm(a), w_b, x_bias, p_bias, g)
        return True

    def _try_initialize(
        self, t_s: float, w_b: np.ndarray, m_b: np.ndarray, lux: ArrayLike, sat: ArrayLike, env: Environment
    ) -> bool:
        c = self.calib
        # The calibrator does not model its pairs' shared samples: its covariance doubled (undoubled,
        # the magnetometer block let a start 20 deg wrong pass as a few degrees on the start sweep).
        x, p = c.x.copy(), c.p * 2.0
        gate = p[:3, :3].copy()  # the start waits for the calibrator's own gyro bias, not the turns' share
        turns = self.mekf.turns
        if turns:
            # The magnetometer's axes turn at C_m w, the gyro's rate is C_g w: the calibrator's
            # gyro bias is off by [w]x (d_m - d_g) - the start's gyro bias correlated with the
            # turns (each at its prior sigma about the last filter's estimate).
            d = self._turns_kept
            p_dd = self.mekf.prior_turn_covariance()
            j = np.zeros((3, len(d)))  # d (calibrator's gyro bias) / d (turns)
            w = skew(w_b - x[:3])
            for name, sign in (("mag", 1.0), ("gyro", -1.0)):
                if name in turns:
                    j[:, turns[name] - 9 : turns[name] - 6] = sign * w
            x[:3] -= j @ d
            p = _block_diag(p, p_dd)
            p[:3, :3] += j @ p_dd @ j.T
            p[:3, 6:] = -j @ p_dd  # the start's bias error is -e_cal - J e_d
            p[6:, :3] = p[:3, 6:].T
            x = np.concatenate([x, d])
        if not self._triad_start(t_s, w_b, m_b, lux, sat, env, x, p, gate):
            return False
        self.gyro_source = "sensor"  # the calibrator's bias is the BMX160's
        self._bias_aside.pop("sensor", None)
        self.n_init += 1
        return True

    def step(
        self,
        t_s: float,
        w_meas_body_rad_s: ArrayLike,
        m_meas_body_ut: ArrayLike,
        lux: ArrayLike,
        saturated: ArrayLike,
        env: Environment | None,
        time_tag_sigma_s: float | None = None,
        imu: tuple | None = None,
    ) -> AttitudeOutput:
        """One sample stamped *t_s* (its stated epoch); *time_tag_sigma_s* is that epoch's
        1-sigma uncertainty (default: the config's; 0 for exact truth times).

        *imu*: ``(t_s (k,), rate_body_rad_s (k, 3)[, time_sigma_s[, t_start_s[,
        imu_to_body]]])`` samples of a live IMU covering the interval since the last step
        (checked by the caller): the attitude is propagated on them instead of on the two
        BMX160 samples, with that IMU's own bias estimate (:meth:`AttitudeMEKF.propagate_imu`)."""
        if time_tag_sigma_s is not None:
            self.time_tag_sigma_s = float(time_tag_sigma_s)
        w_b = np.asarray(w_meas_body_rad_s, dtype=float)
        m_b = np.asarray(m_meas_body_ut, dtype=float)
        self.n_steps += 1
        f = self.mekf
        if f.initialized:  # keep the calibrator's last sample current, without its update
            self.calib.follow(t_s, w_b, m_b)
        elif env is None and self.rest.push(w_b, lux, self.cfg.gyro_noise_rad_s):
            # At rest on a bench (no position): the gyro reads its bias.  With a position the
            # body is taken to be in orbit, where "still" cannot be told from these sensors (a
            # 0.05-0.3 deg/s turn about the sun line or slower passes the test; a detumbled
            # spacecraft turns so): no zero-rate updates, and those of before are dropped.
            self.calib.zero_rate_update(w_b, self.cfg.rest_residual_rate_rad_s)
            self.calib.follow(t_s, w_b, m_b)
        else:
            if env is not None and self.calib.n_rest_held:
                self.calib.forget_rest()
            self.calib.step(t_s, w_b, m_b, None if env is None else math.sqrt(float(env.mag_gcrs_ut @ env.mag_gcrs_ut)))
        rec = self.record_history
        prior = None  # (continues the previous step, F, P, q, biases) before the updates
        w_src = w_b
        if f.initialized:
            switched = self._use_gyro("imu" if imu is not None else "sensor")
            if imu is not None:
                f.propagate_imu(t_s, *imu)
                assert f.w_prev is not None  # initialize set it; propagate_imu keeps it set
                w_src = f.w_prev
                self.n_imu_steps += 1
            else:
                f.propagate(t_s, w_b)
            if rec:  # a change of gyro breaks the chain the smoother follows, and so does an IMU
                # step: its calibration errors are constant consider parameters, not a Markov
                # state the smoother could carry back (smoothed across them, a 0.5-% error
                # left the smoothed attitude worse than the filtered one, and overconfident).
                continues = not switched and imu is None
                prior = (continues, f.last_f, f.p.copy(), f.q.copy(), f.x_bias.copy(), f.last_cross_extra())
            beyond = math.sqrt(float(f.p[0, 0] + f.p[1, 1] + f.p[2, 2])) > self.cfg.restart_attitude_sigma_rad
            if env is not None and beyond:
                # Too uncertain for the update's linearisation (a gap, a corrupt gyro sample, a
                # long eclipse): start again from TRIAD with the filter's own biases, or, when
                # that cannot be, propagate on without updates until it can (updates
                # linearised that far from the truth converge on a wrong attitude).
                if self._triad_start(t_s, w_b, m_b, lux, saturated, env, f.x_bias.copy(), f.p[3:, 3:].copy()):
                    self.n_restarts += 1
                    if rec:
                        prior = (False, None, f.p.copy(), f.q.copy(), f.x_bias.copy(), None)
                    beyond = False
            if env is not None and not beyond:
                f.hard_iron_reopened = False
                f.update_mag(m_b, env.mag_gcrs_ut)
                f.update_sun(lux, saturated, env)
                # A re-opened hard iron: the smoother must not carry the data after it back
                # across (the step's record starts a new chain); one that leaves the attitude
                # too uncertain to update is a lost filter - the calibrator finds the bias
                # again (a TRIAD restart on a bias that uncertain could not start).
                reopened_beyond = f.hard_iron_reopened and (
                    math.sqrt(float(f.p[0, 0] + f.p[1, 1] + f.p[2, 2])) > self.cfg.restart_attitude_sigma_rad
                )
                if f.hard_iron_reopened and prior is not None:
                    prior = (False, *prior[1:])
                if reopened_beyond or (
                    max(f.consecutive_rejections, f.consecutive_sun_rejections) >= self.cfg.max_rejections
                ):
                    # Lost (the field or the sun refused that many times in a row, or a hard
                    # iron changed that much): start again from TRIAD once the calibrator knows
                    # the biases again, from the
                    # MEKF's values with the turn-on sigmas - a lost filter's covariance is not
                    # to be trusted.  (The calibrator's gyro is the BMX160: its bias into the
                    # state, the IMU's kept aside.)
                    self._use_gyro("sensor")
                    self._bias_aside.pop("imu", None)  # (a lost filter's, not to be taken back)
                    f.initialized = False
                    self.calib.reset(f.x_bias[:6])
                    self._turns_kept = f.x_bias[6:].copy()
                    self.n_lost += 1
        elif env is not None:
            if self._try_initialize(t_s, w_b, m_b, lux, saturated, env):
                if rec:
                    prior = (False, None, f.p.copy(), f.q.copy(), f.x_bias.copy(), None)
                f.update_mag(m_b, env.mag_gcrs_ut)
                f.update_sun(lux, saturated, env)
        self.last_in_eclipse = env is not None and env.sun_fraction < 0.5
        self.last_w = w_src if f.initialized else w_b
        self._w_sensor_prev = w_b
        out = self.output()
        if rec:
            self.history.append(
                _StepRecord(
                    out,
                    self.last_w,
                    self.time_tag_sigma_s,
                    prior if out.valid_attitude else None,
                    f.p.copy() if out.valid_attitude else None,
                    f.x_bias.copy(),
                    self.gyro_source == "sensor",
                )
            )
        return out

    def epoch_covariance(self, rate_body_rad_s: ArrayLike) -> np.ndarray:
        """Attitude covariance (3x3, rad^2) added by the stated epoch's uncertainty: the
        estimate belongs to the sample's true instant, which is sigma_t away from the stated
        one, so at the stated epoch it is off by ``w dt`` about the rate axis."""
        w = np.asarray(rate_body_rad_s, dtype=float)
        return (self.time_tag_sigma_s**2) * np.outer(w, w)

    def output(self) -> AttitudeOutput:
        f = self.mekf
        if f.initialized:
            # the BMX160's rate turned into the body's axes (a live IMU's is already)
            rate = f.body_rate(self.last_w) if self.gyro_source == "sensor" else self.last_w - f.x_bias[:3]
            cov = f.p[:9, :9].copy()
            cov[:3, :3] += self.epoch_covariance(rate)
            return AttitudeOutput(
                f._now(),
                f.q.copy(),
                rate,
                f.x_bias[:3].copy(),
                f.x_bias[3:6].copy(),
                cov,
                True,
                self.last_in_eclipse,
                f.last_sun_faces,
                *f.misalignment("mag"),
                *f.misalignment("gyro"),
            )
        c = self.calib
        cov = np.zeros((9, 9))
        cov[:3, :3] = np.eye(3) * math.pi**2
        cov[3:, 3:] = c.p
        t = c.t_s if c.t_s is not None else float("nan")
        return AttitudeOutput(
            t,
            np.array([1.0, 0.0, 0.0, 0.0]),
            self.last_w - c.x[:3],
            c.x[:3].copy(),
            c.x[3:].copy(),
            cov,
            False,
            self.last_in_eclipse,
            0,
        )

    def propagated_output(self, t_s: float) -> AttitudeOutput:
        """The estimate moved to *t_s* with the last rate held (the filter is not changed)."""
        out = self.output()
        if not self.mekf.initialized or t_s <= self.mekf._now():
            out.t_s = max(out.t_s, t_s) if not self.mekf.initialized and not math.isnan(out.t_s) else out.t_s
            return out
        f = copy.deepcopy(self.mekf)
        f.propagate(t_s, None, bmx160=self.gyro_source == "sensor")
        cov = f.p[:9, :9].copy()
        cov[:3, :3] += self.epoch_covariance(out.rate_body_rad_s)
        return AttitudeOutput(
            f._now(),
            f.q.copy(),
            out.rate_body_rad_s,
            f.x_bias[:3].copy(),
            f.x_bias[3:6].copy(),
            cov,
            True,
            self.last_in_eclipse,
            0,
            *f.misalignment("mag"),
            *f.misalignment("gyro"),
        )
