"""GPS-fix orbit EKF: position, velocity and empirical accelerations in GCRS (its batch driver and
RTS smoother, ground-only, are in ``ground/replay/orbit_filter.py``).

State (GCRS, SI units), index: meaning
    0-2  r_gcrs_m        position [m]
    3-5  v_gcrs_m_s      velocity [m/s]
    6-8  w_gcrs_m_s2     empirical (Gauss-Markov) acceleration [m/s^2]  (dynamic model
                         compensation: absorbs tesseral gravity, third bodies, drag error)
    9    drag_scale      multiplier of the modelled drag [-] (only with
                         ``OrbitFilterConfig.estimate_drag_scale``)
    last 3  b_gcrs_m     the fixes' slowly varying position error [m] (Gauss-Markov; only
                         with ``OrbitFilterConfig.fix_error_correlated_sigma_m`` > 0)

Dynamics: :mod:`pygnc.estimation.orbit_dynamics` (EGM96 zonals J2..J8 about the CIP and
8x8 tesserals, exponential drag, Sun/Moon tides, Gauss-Markov empirical accelerations, RK4
with an analytic state transition matrix; steps of at most 30 s: one per fix interval).

Measurement: a GPS fix (:class:`~pygnc.estimation.gps_fix.GpsFix`: ECEF position [m] and
velocity [m/s] at ``t_gps_s``) converted to GCRS with its covariance
(:func:`~pygnc.estimation.gps_fix.fix_to_gcrs`).  Per-axis 1-sigma from the fix when given
(> 0), else the configured noise (:func:`~pygnc.estimation.gps_fix.fix_sigmas`).  The
update is the standard EKF with H = [I6 0] (and I3 on the error states' columns of the
position rows when they are estimated: a fix is r + b + white, its own sigma the white
part's, b's on top); covariance in Joseph form, symmetrised.  The error states
are isotropic, so they are kept in GCRS (the Earth turns 5 deg in their 20 minutes).  Innovations are gated with the
chi-square test on the normalised innovation squared (6 degrees of freedom, probability
``gate_probability``): a rejected fix changes nothing but the counters.  After
``max_consecutive_rejections`` rejections in a row spanning ``lost_min_span_s`` the filter
assumes *it* is lost and re-initialises from the next fix (counted in ``n_reinit``).  A state
started from one fix is not :attr:`~OrbitEKF.confirmed` until a second passes the gate: that
fix may be an outlier (GPS fixes 1 km off happen), and a filter holding it with the fix's
few-metre sigma would refuse the good fixes after it until it gave itself up as lost.  So a
fix the gate refuses while the state is not confirmed starts the filter again from that fix
(one of the two is wrong and two cannot say which; the next decides), counted in
``n_start_refused``.  A state restarted because the fixes left the old one is confirmed only
once it has outlived the run that condemned it (``max_consecutive_rejections`` + 2 fixes,
over as long a span as the run, and at least ``restart_confirm_min_span_s``): a receiver's
glitch of agreeing fixes would otherwise be taken at once, with the fixes' sigma, for the
rest of itself and six good fixes after it; a glitch's track is no orbit, which the
dynamics tell within minutes.
Once such a state stands on two fixes, a single refused fix is an ordinary rejection (an
outlier) and two in a row restart it (the good fixes after a glitch).

Why not filterpy's ``KalmanFilter.update`` / ``rts_smoother`` in the loop: the gate needs
the innovation covariance before deciding to commit, and filterpy's RTS smoother predicts
with ``F @ x`` (linear), which is wrong for an EKF whose prediction is the nonlinear
propagation.  filterpy is used in the tests as an independent oracle for the Joseph update
and the RTS recursion (``tests/test_orbit_ekf.py``).

The default flight field is EGM96 to 8x8: the remaining error is the gravity field beyond
it, which a richer flight field does not buy back at its cost, and the empirical
accelerations absorb (DMC sigma 3e-5 m/s^2 and tau 150 s: the RMS and correlation time of
the unmodelled acceleration along a 500-km orbit).  ``bench/bench_orbit.py`` measures the
accuracy, the consistency, the information floor of an EKF whose dynamics are the truth's,
and the cost.

Everything here is pure computation: arrays in, arrays out, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pygnc import frames
from pygnc.estimation import chi2
from pygnc.estimation import orbit_dynamics as od
from pygnc.estimation.gps_fix import GpsFix, fix_sigmas, fix_to_gcrs
from pygnc.estimation.tunables import OrbitFilterConfig
from pygnc.estimation.update_result import Update

__all__ = [
    "OrbitFilterConfig",
    "OrbitEKF",
    "FilterStep",
]


@dataclass
class FilterStep:
    """One predict (from the previous record) and optional update, kept for smoothing."""

    t_gps_s: float
    phi: np.ndarray | None  # transition from the previous record (None for the first)
    x_pred: np.ndarray
    p_pred: np.ndarray
    x_post: np.ndarray
    p_post: np.ndarray
    updated: bool = False


@dataclass
class StepSpan:
    """One prediction step from *t0_gps_s* over *h_s* s: the state and covariance at its
    start and end, its transition matrix and end accelerations
    (:func:`~pygnc.estimation.orbit_dynamics.propagate_step`)."""

    t0_gps_s: float
    h_s: float
    x0: np.ndarray
    p0: np.ndarray
    x1: np.ndarray
    p1: np.ndarray
    phi: np.ndarray
    ends: tuple


class OrbitEKF:
    """Extended Kalman filter on [r, v, w(, drag_scale)] in GCRS; see the module docstring.

    Usage: :meth:`start` (or :meth:`initialize_from_fix`), then :meth:`predict` /
    :meth:`predict_to` and :meth:`update_gps` in time order; :meth:`reset` forgets the state
    (the next fix starts it again, or :meth:`initialize_from_fix` at once), :meth:`adopt`
    takes a state carried elsewhere (a copy propagated for outputs).  With ``record=True``
    every predict/update is kept in :attr:`history` for :func:`rts_smooth`.
    """

    def __init__(self, config: OrbitFilterConfig | None = None, record: bool = False) -> None:
        self.config = config or OrbitFilterConfig()
        self.model = self.config.dynamics()
        #: Dynamics states, then (when the fixes' slowly varying error is estimated) three more.
        self.nd = self.model.n_states
        self.nb = 3 if self.config.fix_error_correlated_sigma_m > 0.0 else 0
        self.n = self.nd + self.nb
        self.t_gps_s: float | None = None
        self.x = np.zeros(self.n)
        self.p = np.eye(self.n)
        self.gate = chi2.quantile(self.config.gate_probability, 6)
        self.n_used = 0
        self.n_rejected = 0
        self.n_invalid = 0
        self.n_reinit = 0
        self.n_start_refused = 0
        self.fixes_since_start = 0
        self.consecutive_rejections = 0
        #: Time of the first rejection of the present run [GPS s] (None: no run).
        self.t_first_rejection_s: float | None = None
        #: What confirms the present state: fixes since its start, and the span they cover [s].
        self.confirm_fixes, self.confirm_span_s = 2, 0.0
        #: Times [GPS s] of the fix the state started from and of the latest fix it used.
        self.t_start_s = self.t_last_used_s = math.nan
        self.last_nis = math.nan
        self.record = record
        self.history: list[FilterStep] = []
        self._q_cache: dict[float, np.ndarray] = {}
        self._eye = np.eye(self.n)

    # ----------------------------------------------------------------- state access
    @property
    def initialized(self) -> bool:
        return self.t_gps_s is not None

    @property
    def confirmed(self) -> bool:
        """True once a second fix has passed the gate since the state was (re)started from one
        (after a restart of a lost filter: as many as condemned it plus two, over as long)."""
        if self.t_gps_s is None or self.fixes_since_start < self.confirm_fixes:
            return False
        return self.t_last_used_s - self.t_start_s >= self.confirm_span_s

    def state_ecef(self) -> tuple[np.ndarray, np.ndarray]:
        """(r_ecef_m (3,), v_ecef_m_s (3,)) at :attr:`t_gps_s` (ITRS via pygnc.frames)."""
        return frames.gcrs_to_itrs(self.x[:3], self.x[3:6], self.t_gps_s)

    def sigma(self) -> np.ndarray:
        """1-sigma of every state (n,)."""
        return np.sqrt(np.diag(self.p))

    # ----------------------------------------------------------------- core steps
    def _now(self) -> float:
        """:attr:`t_gps_s` where the caller's order guarantees a started filter (predicting or
        updating one never started is the caller's error, which failed on None before)."""
        assert self.t_gps_s is not None, "OrbitEKF: start the filter first"
        return self.t_gps_s

    def _fix_gcrs(self, fix: GpsFix) -> tuple[np.ndarray, np.ndarray]:
        """(z (6,), R (6, 6)) of *fix* in GCRS with the configured sigma rules."""
        return fix_to_gcrs(fix, *fix_sigmas(self.config, fix))

    def _decay(self, h_s: float) -> float:
        """Gauss-Markov factor of the fixes' slowly varying error over *h_s* s."""
        return math.exp(-abs(h_s) / self.config.fix_error_correlation_s)

    def _full_phi(self, phi: np.ndarray, h_s: float) -> np.ndarray:
        """The transition of the whole state from the dynamics' one over *h_s* s."""
        if not self.nb:
            return phi
        full = np.zeros((self.n, self.n))
        full[: self.nd, : self.nd] = phi
        full[self.nd :, self.nd :] = self._decay(h_s) * np.eye(self.nb)
        return full

    def _propagate(self, x: np.ndarray, h_s: float, t_gps_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(x, Phi) of the whole state one integration step of *h_s* s from *t_gps_s*."""
        if not self.nb:
            return od.propagate(x, h_s, self.model, t_gps_s=t_gps_s)
        xd, phi = od.propagate(x[: self.nd], h_s, self.model, t_gps_s=t_gps_s)
        return self._whole(x, xd, phi, h_s)

    def _whole(self, x0: np.ndarray, xd: np.ndarray, phi: np.ndarray, h_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(x, Phi) of the whole state after a step of *h_s* s from *x0* whose dynamics
        states became *xd* with transition *phi*: the fix-error states decay."""
        return np.concatenate([xd, self._decay(h_s) * x0[self.nd :]]), self._full_phi(phi, h_s)

    def initialize_from_fix(self, fix: GpsFix, confirm_fixes: int = 2, confirm_span_s: float = 0.0) -> None:
        """Start the filter at a fix: r, v from the fix with its covariance, w = 0; confirmed
        after *confirm_fixes* fixes (this one included) spanning *confirm_span_s*."""
        z, r = self._fix_gcrs(fix)
        self.confirm_fixes, self.confirm_span_s = confirm_fixes, confirm_span_s
        self.t_start_s = self.t_last_used_s = fix.t_gps_s
        self.t_first_rejection_s = None
        self.t_gps_s = fix.t_gps_s
        self.x = np.zeros(self.n)
        self.x[:6] = z
        self.p = np.zeros((self.n, self.n))
        self.p[:6, :6] = r
        s2 = self.config.init_dmc_sigma_m_s2**2
        self.p[6, 6] = self.p[7, 7] = self.p[8, 8] = s2
        if self.nd == 10:
            self.x[9] = 1.0
            self.p[9, 9] = self.config.drag_scale_sigma**2
        if self.nb:  # r = z - b - white, b from its prior: r's error and b's are opposed
            b2 = self.config.fix_error_correlated_sigma_m**2 * np.eye(3)
            ib = self.nd
            self.p[:3, :3] += b2
            self.p[ib:, ib:] = b2
            self.p[:3, ib:] = self.p[ib:, :3] = -b2
        self.consecutive_rejections = 0
        self.fixes_since_start = 1
        if self.record:
            self.history.append(
                FilterStep(self.t_gps_s, None, self.x.copy(), self.p.copy(), self.x.copy(), self.p.copy(), True)
            )

    def start(self, fix: GpsFix, confirm_fixes: int = 2, confirm_span_s: float = 0.0) -> Update:
        """The filter's first state from a fix, the fix counted as used (confirmed as
        :meth:`initialize_from_fix` says)."""
        self.initialize_from_fix(fix, confirm_fixes, confirm_span_s)
        self.n_used += 1
        return Update("started")

    def kept_track(self) -> tuple[float, np.ndarray, np.ndarray]:
        """(t_gps_s, x, P) of the present state (copies), for :meth:`agrees_with`."""
        return self._now(), self.x.copy(), self.p.copy()

    def agrees_with(self, fix: GpsFix, track: tuple[float, np.ndarray, np.ndarray], max_gap_s: float) -> bool | None:
        """Whether *fix* passes the gate against *track* (:meth:`kept_track` of an earlier
        state) carried to its time, this filter's own state unchanged; None when the track is
        more than *max_gap_s* older than the fix or not before it (not looked at).  A filter
        restarted after a gap asks the last confirmed track whether the new fixes are where
        it says: a receiver's glitch covering a whole window of fixes is not."""
        t0, x0, p0 = track
        dt_s = fix.t_gps_s - t0
        if not 0.0 < dt_s <= max_gap_s:
            return None
        keep = (self.t_gps_s, self.x, self.p, self.record)
        self.t_gps_s, self.x, self.p, self.record = t0, x0, p0, False
        try:
            self.predict(dt_s)
            y, s, _ = self._innovation(*self._fix_gcrs(fix))
            s_chol = np.linalg.cholesky(s)
            a = np.linalg.solve(s_chol, y)
            return bool(float(a @ a) <= self.gate)
        except np.linalg.LinAlgError:
            return None
        finally:
            self.t_gps_s, self.x, self.p, self.record = keep

    def _innovation(self, z: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(y, S, P H^T or None where H selects the first six states) of a fix's (z, R)."""
        p = self.p
        if self.nb:  # H = [I6 0 | I3 on the position rows]: P H^T, then H P H^T
            ib = self.nd
            pht = p[:, :6].copy()
            pht[:, :3] += p[:, ib:]
            y = z - self.x[:6]
            y[:3] -= self.x[ib:]
            hph = pht[:6].copy()
            hph[:3] += pht[ib:]
            return y, hph + r, pht
        return z - self.x[:6], p[:6, :6] + r, None

    def reset(self) -> None:
        """Forget the state (counted as a re-initialisation): the next fix starts the filter."""
        self.n_reinit += 1
        self.t_gps_s = None

    def adopt(self, t_gps_s: float, x: np.ndarray, p: np.ndarray) -> None:
        """Take a state propagated elsewhere from this filter's own (copies of *x*, *p*)."""
        self.t_gps_s, self.x, self.p = float(t_gps_s), x.copy(), p.copy()

    def _q(self, dt_s: float) -> np.ndarray:
        key = round(dt_s, 6)
        q = self._q_cache.get(key)
        if q is None:
            if len(self._q_cache) > 64:
                self._q_cache.clear()
            q = od.process_noise(abs(dt_s), self.model, self.config.dmc_sigma_m_s2, self.config.drag_scale_sigma)
            if self.nb:
                full = np.zeros((self.n, self.n))
                full[: self.nd, : self.nd] = q
                a = self._decay(dt_s)
                full[self.nd :, self.nd :] = (1.0 - a * a) * self.config.fix_error_correlated_sigma_m**2 * np.eye(3)
                q = full
            self._q_cache[key] = q
        return q

    def predict(self, dt_s: float) -> None:
        """Propagate state and covariance by *dt_s* [s] (> 0; split into <= max_step_s steps)."""
        if dt_s <= 0.0:
            return
        t0 = self._now()
        nsub = max(1, int(math.ceil(dt_s / self.model.max_step_s - 1e-9)))
        h = dt_s / nsub
        q = self._q(h)
        phi_all = None
        for i in range(nsub):
            self.x, phi = self._propagate(self.x, h, t0 + i * h)
            self.p = phi @ self.p @ phi.T + q
            if self.record:
                phi_all = phi if phi_all is None else phi @ phi_all
        self.p = 0.5 * (self.p + self.p.T)
        self.t_gps_s = t0 + dt_s
        if self.record:
            # One record per predict call: the smoother needs Phi over the whole interval
            # and the predicted covariance, which is exactly self.p here.
            self.history.append(
                FilterStep(self.t_gps_s, phi_all, self.x.copy(), self.p.copy(), self.x.copy(), self.p.copy(), False)
            )

    def predict_to(self, t_gps_s: float) -> None:
        """Predict to GPS time *t_gps_s* (no-op if not later than the current time)."""
        self.predict(float(t_gps_s) - self._now())

    def predict_step(self, h_s: float) -> StepSpan:
        """Predict by one step of *h_s* s (0 < h <= ``max_step_s``) and return the step
        (:class:`StepSpan`), from which any time inside it is interpolated without a
        propagation of its own.  Not recorded for smoothing."""
        t0, x0, p0 = self._now(), self.x, self.p
        if self.nb:
            xd, phi, ends = od.propagate_step(x0[: self.nd], h_s, self.model, t0)
            x1, phi = self._whole(x0, xd, phi, h_s)
        else:
            x1, phi, ends = od.propagate_step(x0, h_s, self.model, t0)
        p1 = phi @ p0 @ phi.T + self._q(h_s)
        self.x, self.p = x1, 0.5 * (p1 + p1.T)
        self.t_gps_s = t0 + h_s
        return StepSpan(t0, float(h_s), x0, p0, x1, self.p, phi, ends)

    def state_in(self, span: StepSpan, t_gps_s: float) -> np.ndarray:
        """The state alone at *t_gps_s* inside *span*, as :meth:`estimate_in` gives it."""
        tau = float(t_gps_s) - span.t0_gps_s
        if tau <= 1e-9:
            return span.x0.copy()
        if tau >= span.h_s - 1e-9:
            return span.x1.copy()
        return np.array(od.interpolate_in_step(span.x0, span.x1, span.ends, tau, span.h_s))

    def estimate_in(self, span: StepSpan, t_gps_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(x, P) at *t_gps_s* inside *span* (a step this filter took with
        :meth:`predict_step`): the state by :func:`~pygnc.estimation.orbit_dynamics.interpolate_in_step`;
        the covariance Phi_s P0 Phi_s^T + Q(tau) with Phi_s = I + (tau / h) (Phi - I) - exact
        for the kinematic terms, off by ~tau (h - tau) / 2 x the gravity gradient (~1e-4 of
        P) in the rest."""
        tau = float(t_gps_s) - span.t0_gps_s
        if tau <= 1e-9:
            return span.x0.copy(), span.p0.copy()
        if tau >= span.h_s - 1e-9:
            return span.x1.copy(), span.p1.copy()
        x = self.state_in(span, t_gps_s)
        phi_s = self._eye + (tau / span.h_s) * (span.phi - self._eye)
        p = phi_s @ span.p0 @ phi_s.T + self._q(tau)
        return x, 0.5 * (p + p.T)

    def update_gps(self, fix: GpsFix) -> Update:
        """Measurement update with a GPS fix taken at the filter's current time.

        The caller predicts to the fix time first (:meth:`predict_to`); a fix more than
        1 ms away from the filter time raises ``ValueError``.  Returns an
        :class:`~pygnc.estimation.update_result.Update` (decision "used", "rejected" or
        "reinit"); the normalised innovation squared is also left in :attr:`last_nis`.
        """
        if abs(fix.t_gps_s - self._now()) > 1e-3:
            raise ValueError(f"fix at t_gps_s={fix.t_gps_s} but filter at {self.t_gps_s}; predict_to first")
        c = self.config
        run_s = 0.0 if self.t_first_rejection_s is None else fix.t_gps_s - self.t_first_rejection_s
        if self.consecutive_rejections >= c.max_consecutive_rejections and run_s >= c.lost_min_span_s:
            self.n_reinit += 1
            self.initialize_from_fix(fix, c.max_consecutive_rejections + 2, max(run_s, c.restart_confirm_min_span_s))
            self.n_used += 1
            self.last_nis = math.nan
            return Update("reinit")
        z, r = self._fix_gcrs(fix)
        p = self.p
        y, s, pht = self._innovation(z, r)
        try:
            s_chol = np.linalg.cholesky(s)
            a = np.linalg.solve(s_chol, y)
            nis = float(a @ a)
        except np.linalg.LinAlgError:  # S not positive definite (or not finite): fails the gate
            nis = math.nan
        self.last_nis = nis
        if (
            not nis <= self.gate
            and not self.confirmed
            and np.isfinite(z).all()
            and (self.fixes_since_start == 1 or self.consecutive_rejections > 0)
        ):
            # The fix the state stands on, or this one, is wrong; or, on a state of several
            # agreeing fixes, a second refused in a row: the good fixes after a glitch.
            self.n_start_refused += 1
            self.initialize_from_fix(fix, self.confirm_fixes, self.confirm_span_s)  # (n_used unchanged)
            return Update("reinit", nis, y, s)
        if not nis <= self.gate:  # NaN fails the gate too
            self._rejected()
            return Update("rejected", nis, y, s)
        # K = P H^T S^-1 (H selects the first six states, and the error states' three).
        k = np.linalg.solve(s, p[:6, :] if pht is None else pht.T).T
        x_new = self.x + k @ y
        ikh = self._eye.copy()
        ikh[:, :6] -= k
        if self.nb:
            ikh[:, self.nd :] -= k[:, :3]
        p_new = ikh @ p @ ikh.T + k @ r @ k.T
        if not (np.isfinite(x_new).all() and np.isfinite(p_new).all()):
            self._rejected()  # never commit a non-finite state
            return Update("rejected", nis, y, s)
        self.x = x_new
        self.p = 0.5 * (p_new + p_new.T)
        self.n_used += 1
        self.fixes_since_start += 1
        self.t_last_used_s = fix.t_gps_s
        self.consecutive_rejections = 0
        self.t_first_rejection_s = None
        if self.record and self.history:
            h = self.history[-1]
            if abs(h.t_gps_s - self._now()) < 1e-9:
                h.x_post, h.p_post, h.updated = self.x.copy(), self.p.copy(), True
        return Update("used", nis, y, s, n_used=6)

    def _rejected(self) -> None:
        self.n_rejected += 1
        self.consecutive_rejections += 1
        if self.t_first_rejection_s is None:
            self.t_first_rejection_s = self._now()

    def skip_invalid(self) -> None:
        """Count a fix that was not used because it was flagged invalid."""
        self.n_invalid += 1
