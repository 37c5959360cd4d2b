"""Before the attitude filter has an attitude: the gyro and magnetometer biases estimated
without one (:class:`GyroMagCalibrator`), and rest detected from the gyro and the lux
sensors (:class:`RestDetector`, whose zero-rate updates measure the gyro bias on a bench).
Used by :class:`pygnc.estimation.attitude_mekf.AttitudeEstimator`; rates in rad/s (body),
fields in µT, times in seconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np
from numpy.typing import ArrayLike

from pygnc.estimation import chi2
from pygnc.estimation.quaternion import rotation_matrix_array, step_rotation_vector_array
from pygnc.estimation.tunables import AttitudeFilterConfig

#: Chi-square 0.9999 quantiles for 1..9 degrees of freedom.
CHI2_9999 = tuple(chi2.quantile(0.9999, k) for k in range(1, 10))


def _stacked(pairs: Iterable[tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """Pairs ``(dt, w0, w1, m0, m1)`` as arrays: dt (n,), rates and fields (n, 3) each."""
    dt, w0, w1, m0, m1 = zip(*pairs)
    return np.array(dt), np.array(w0), np.array(w1), np.array(m0), np.array(m1)


class GyroMagCalibrator:
    """Attitude-independent gyro and magnetometer bias estimator: least squares over a
    sliding window of consecutive-sample pairs, re-linearised at every new pair.

    Between consecutive samples the field is fixed in inertial space to within its
    orbital rotation (~0.1 deg/s), so ``m1 - b_m = C (m0 - b_m)`` with ``C`` the body
    rotation transposed, computed from the gyro rates less ``b_g``.  Each accepted pair
    adds the residual ``r = m1 - b_m - C (m0 - b_m)`` (3 rows, variance: both samples'
    noise, the field's inertial rotation, gyro noise); the estimate minimises the window's
    weighted residuals plus the prior's (Gauss-Newton, warm-started, a few iterations),
    and its covariance is the inverse of that cost's curvature there.

    Why a re-solved window rather than a Kalman filter: one linearisation per pair, taken
    while the gyro bias is still degrees per second off, stays in a filter's covariance for
    good and leaves it many times too small; re-linearising every pair about each new
    estimate does not.  The field's own inertial rotation (up to ~0.14 deg/s) is the same
    from pair to pair, so its share of the gyro bias is kept in the covariance rather than
    averaged away as noise.

    A new pair is first gated on its innovation at the current estimate (a field
    disturbance or a jump is skipped and counted).  Consecutive pairs share a sample; the
    correlation is not modelled (the attitude filter's start doubles the covariance).
    Needs neither position nor time; on a bench at rest (:meth:`zero_rate_update`) it
    measures the gyro bias directly.
    """

    def __init__(self, cfg: AttitudeFilterConfig) -> None:
        self.cfg = cfg
        self.x = np.zeros(6)  # gyro bias rad/s (body), mag bias µT (body)
        self.p = self._turn_on_covariance()
        self._x0 = self.x.copy()  # the prior: turn-on sigmas, or what the attitude filter knew (reset)
        self._p0_inv = np.linalg.inv(self.p)
        self._pairs: deque[tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = deque(
            maxlen=cfg.calib_window_pairs
        )  # (dt, w0, w1, m0, m1) of the accepted pairs in the window
        self._rest: deque[tuple[np.ndarray, float]] = deque(maxlen=cfg.calib_window_pairs)  # (rate, variance)
        self.t_s: float | None = None
        # The previous sample's rate and field: set with t_s, always together.
        self.w_prev: np.ndarray | None = None
        self.m_prev: np.ndarray | None = None
        self.n_updates = 0
        self.n_rejected = 0
        self.n_zero_rate = 0

    def _turn_on_covariance(self) -> np.ndarray:
        cfg = self.cfg
        return np.diag([cfg.init_gyro_bias_sigma_rad_s**2] * 3 + [cfg.init_mag_bias_sigma_ut**2] * 3)

    def reset(self, x: ArrayLike, p: ArrayLike | None = None) -> None:
        """Start again from biases *x* (6,) with covariance *p* (6, 6; default the turn-on
        sigmas) as the prior, the window emptied (the attitude filter, lost, hands back its
        biases: where the search starts, not what is known)."""
        self.x = np.asarray(x, dtype=float).copy()
        self.p = self._turn_on_covariance() if p is None else np.asarray(p, dtype=float).copy()
        self._x0 = self.x.copy()
        self._p0_inv = np.linalg.inv(self.p)
        self._pairs.clear()
        self._rest.clear()

    def follow(self, t_s: float, w_meas_body_rad_s: ArrayLike, m_meas_body_ut: ArrayLike) -> None:
        """Take the sample as the previous one without using it (the next pair starts here)."""
        self.t_s = float(t_s)
        self.w_prev = np.asarray(w_meas_body_rad_s, dtype=float)
        self.m_prev = np.asarray(m_meas_body_ut, dtype=float)

    def step(self, t_s: float, w_meas_body_rad_s: ArrayLike, m_meas_body_ut: ArrayLike) -> None:
        cfg = self.cfg
        w1 = np.asarray(w_meas_body_rad_s, dtype=float)
        m1 = np.asarray(m_meas_body_ut, dtype=float)
        if self.t_s is not None and self.w_prev is not None and self.m_prev is not None:
            dt = t_s - self.t_s
            if 0.0 < dt <= cfg.max_gap_s:
                pair = (float(dt), self.w_prev, w1, self.m_prev, m1)
                r, j, var = self._pair_terms(self.x, _stacked([pair]))
                s = j[0] @ self.p @ j[0].T + np.eye(3) * var[0]
                nis = float(r[0] @ np.linalg.solve(s, r[0]))
                if nis <= CHI2_9999[2]:
                    self._pairs.append(pair)
                    self.n_updates += 1
                    self._solve()
                else:  # a field disturbance (or a jump): skip the pair
                    self.n_rejected += 1
        self.follow(t_s, w1, m1)

    @property
    def n_rest_held(self) -> int:
        """Zero-rate updates in the window."""
        return len(self._rest)

    def forget_rest(self) -> None:
        """Drop the window's zero-rate updates (their rest was a bench's, not an orbit's)."""
        self._rest.clear()
        self._solve()

    def zero_rate_update(self, w_meas_body_rad_s: ArrayLike, residual_rate_rad_s: float) -> None:
        """The body is at rest (to within *residual_rate_rad_s*): the gyro reads its bias."""
        rvar = self.cfg.gyro_noise_rad_s**2 + residual_rate_rad_s**2
        self._rest.append((np.asarray(w_meas_body_rad_s, dtype=float), rvar))
        self.n_zero_rate += 1
        self._solve()

    def _pair_terms(self, x: np.ndarray, pairs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Residuals (n, 3), their Jacobians d r / d x (n, 3, 6) and variances (n,) at *x*
        of the pairs :func:`_stacked`."""
        dt, w0, w1, m0, m1 = pairs
        bg, bm = x[:3], x[3:]
        h = 1e-7  # rad/s: the gyro-bias columns by forward differences (C is not linear in it)
        bgs = np.vstack([bg, bg + h * np.eye(3)])  # (4, 3)
        phi = step_rotation_vector_array(w0[None] - bgs[:, None], w1[None] - bgs[:, None], dt[None])
        c = rotation_matrix_array(-phi)  # (4, n, 3, 3): body components of an inertially fixed vector
        v = np.einsum("knij,nj->kni", c, m0 - bm)
        r = m1 - bm - v[0]
        j = np.empty((dt.size, 3, 6))
        j[:, :, :3] = np.moveaxis(v[0][None] - v[1:], 0, -1) / h
        j[:, :, 3:] = c[0] - np.eye(3)
        cfg = self.cfg
        bn2 = np.sum(v[0] * v[0], axis=1)
        var = (
            2.0 * cfg.mag_noise_ut**2
            + bn2 * (cfg.calib_field_rate_rad_s * dt) ** 2
            + bn2 * dt * dt * cfg.gyro_noise_rad_s**2 / 2.0
        )
        return r, j, var

    def _solve(self, max_iterations: int = 10) -> None:
        """Gauss-Newton on the window and the prior from the current estimate, until the
        Newton decrement is below 1e-3; a step that raises the cost is halved (up to 5
        times); a non-finite result is not taken."""
        pairs = _stacked(self._pairs) if self._pairs else None
        rest = list(self._rest)
        w_rest = np.array([w for w, _ in rest]) if rest else np.zeros((0, 3))
        iv_rest = np.array([1.0 / v for _, v in rest])

        # The pairs' variances (they scale with |B|) are held at the first evaluation's:
        # weights that moved with x would make the cost other than the least squares the
        # Gauss-Newton steps are taken on.
        iv = np.zeros(0)

        def terms(x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
            nonlocal iv
            d0 = x - self._x0
            a = self._p0_inv.copy()
            g = self._p0_inv @ d0
            cost = float(d0 @ g)
            if pairs is not None:
                r, j, var = self._pair_terms(x, pairs)
                if not len(iv):
                    iv = 1.0 / var
                a += np.einsum("nij,n,nik->jk", j, iv, j)
                g += np.einsum("nij,n,ni->j", j, iv, r)
                cost += float(np.sum(iv * np.sum(r * r, axis=1)))
            if rest:
                rr = x[:3] - w_rest
                a[:3, :3] += np.eye(3) * float(np.sum(iv_rest))
                g[:3] += iv_rest @ rr
                cost += float(np.sum(iv_rest * np.sum(rr * rr, axis=1)))
            return cost, a, g

        x = self.x.copy()
        cost, a, g = terms(x)
        for _ in range(max_iterations):
            dx = -np.linalg.solve(a, g)
            if -float(dx @ g) < 1e-3:  # the Newton decrement: a step of a few hundredths of a sigma
                x = x + dx  # (the curvature where it starts is the covariance's)
                break
            for _halving in range(6):
                cost_new, a_new, g_new = terms(x + dx)
                if cost_new <= cost:
                    break
                dx = 0.5 * dx
            else:
                break  # no step lowers the cost: at the minimum to rounding
            x, cost, a, g = x + dx, cost_new, a_new, g_new
        p = np.linalg.inv(a)
        if pairs is not None and not rest:
            # The field's own inertial rotation (up to ~0.14 deg/s, twice the orbital rate) is
            # the same from pair to pair, not the white noise the weights take it for: what of
            # it the gyro bias takes up does not average away as the window grows.  Its share,
            # calib_field_rate_rad_s in 3-D, stays in the covariance.  (At rest the gyro reads
            # its bias directly and the field does not turn.)
            p[:3, :3] += np.eye(3) * (self.cfg.calib_field_rate_rad_s**2 / 3.0)
        if np.isfinite(x).all() and np.isfinite(p).all():
            self.x, self.p = x, 0.5 * (p + p.T)


class RestDetector:
    """At rest if, over the last ``n`` samples, every gyro axis stays within ``k`` sigma of
    its mean and every sun face within a few percent: a body turning at even 0.05 deg/s
    changes the lit faces' readings by more than that over ``n`` samples, and a tumbling
    body's gyro readings nutate.  (A spin exactly about the sun line with a constant rate
    would pass; it is the one case this cannot tell apart.)"""

    def __init__(
        self, n: int = 6, gyro_k_sigma: float = 4.0, lux_fraction: float = 0.03, lux_floor_lux: float = 3.0
    ) -> None:
        self.n, self.k, self.frac, self.floor = n, gyro_k_sigma, lux_fraction, lux_floor_lux
        self.w: list[np.ndarray] = []
        self.lux: list[np.ndarray] = []

    def push(self, w_meas: ArrayLike, lux: ArrayLike, gyro_noise_rad_s: float) -> bool:
        self.w.append(np.asarray(w_meas, dtype=float))
        self.lux.append(np.asarray(lux, dtype=float))
        if len(self.w) > self.n:
            self.w.pop(0)
            self.lux.pop(0)
        if len(self.w) < self.n:
            return False
        w = np.array(self.w)
        lx = np.array(self.lux)
        if np.abs(w - w.mean(0)).max() > self.k * gyro_noise_rad_s:
            return False
        spread = lx.max(0) - lx.min(0)
        return bool(np.all(spread <= self.frac * lx.mean(0) + self.floor) and lx.max() > 5.0 * self.floor)
