"""Before the attitude filter has an attitude: the gyro and magnetometer biases estimated
without one (:class:`GyroMagCalibrator`), and rest detected from the gyro and the lux
sensors (:class:`RestDetector`, whose zero-rate updates measure the gyro bias on a bench).
Used by :class:`pygnc.estimation.attitude_mekf.AttitudeEstimator`; rates in rad/s (body),
fields in µT, times in seconds.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from pygnc.estimation import chi2
from pygnc.estimation.quaternion import rotation_matrix, skew, step_rotation_vector
from pygnc.estimation.tunables import AttitudeFilterConfig

#: Chi-square 0.9999 quantiles for 1..9 degrees of freedom.
CHI2_9999 = tuple(chi2.quantile(0.9999, k) for k in range(1, 10))


class GyroMagCalibrator:
    """Attitude-independent gyro and magnetometer bias estimator (6-state linear KF).

    Between consecutive samples the field is fixed in inertial space to within its
    orbital rotation (~0.1 deg/s), so ``m1 - b_m = C (m0 - b_m)`` with ``C`` the body
    rotation transposed, computed from the gyro.  Linearised about the estimates:
    ``r = m1 - C m0 - (I - C) b_m = -dt [C (m0 - b_m)]x db_g + (I - C) db_m``.
    R: both samples' noise, the field's inertial rotation, gyro noise.  (Consecutive
    residuals share a sample; the correlation is ignored, so its covariance is optimistic
    by up to ~sqrt(2).)  Needs neither position nor time; on a bench at rest it measures
    the gyro bias directly.
    """

    def __init__(self, cfg: AttitudeFilterConfig) -> None:
        self.cfg = cfg
        self.x = np.zeros(6)  # gyro bias rad/s (body), mag bias µT (body)
        self.p = np.diag([cfg.init_gyro_bias_sigma_rad_s**2] * 3 + [cfg.init_mag_bias_sigma_ut**2] * 3)
        self.t_s: float | None = None
        # The previous sample's rate and field: set with t_s, always together.
        self.w_prev: np.ndarray | None = None
        self.m_prev: np.ndarray | None = None
        self.n_updates = 0
        self.n_rejected = 0
        self.n_zero_rate = 0

    def step(self, t_s: float, w_meas_body_rad_s: ArrayLike, m_meas_body_ut: ArrayLike) -> None:
        cfg = self.cfg
        w1 = np.asarray(w_meas_body_rad_s, dtype=float)
        m1 = np.asarray(m_meas_body_ut, dtype=float)
        if self.t_s is not None and self.w_prev is not None and self.m_prev is not None:
            dt = t_s - self.t_s
            if 0.0 < dt <= cfg.max_gap_s:
                q = np.zeros((6, 6))
                q[:3, :3] = np.eye(3) * cfg.gyro_bias_walk_rad_s_per_sqrt_s**2 * dt
                q[3:, 3:] = np.eye(3) * cfg.mag_bias_walk_ut_per_sqrt_s**2 * dt
                self.p = self.p + q
                bg, bm = self.x[:3], self.x[3:]
                phi = step_rotation_vector(self.w_prev - bg, w1 - bg, dt)
                c = rotation_matrix(-phi)  # body components of an inertially fixed vector
                v = c @ (self.m_prev - bm)
                r = m1 - bm - v
                h = np.hstack([-dt * skew(v), np.eye(3) - c])
                bn = math.sqrt(float(v @ v))
                sig2 = (
                    2.0 * cfg.mag_noise_ut**2
                    + (bn * cfg.calib_field_rate_rad_s * dt) ** 2
                    + bn * bn * dt * dt * cfg.gyro_noise_rad_s**2 / 2.0
                )
                s = h @ self.p @ h.T + np.eye(3) * sig2
                nis = float(r @ np.linalg.solve(s, r))
                if not nis <= CHI2_9999[2]:  # a field disturbance (or a jump): skip the pair
                    self.n_rejected += 1
                    self.t_s, self.w_prev, self.m_prev = float(t_s), w1, m1
                    return
                k = np.linalg.solve(s, h @ self.p).T
                x_new = self.x + k @ r
                ikh = np.eye(6) - k @ h
                p_new = ikh @ self.p @ ikh.T + sig2 * (k @ k.T)
                if np.isfinite(x_new).all() and np.isfinite(p_new).all():
                    self.x, self.p = x_new, p_new
                    self.n_updates += 1
                else:
                    self.n_rejected += 1
        self.t_s, self.w_prev, self.m_prev = float(t_s), w1, m1

    def zero_rate_update(self, w_meas_body_rad_s: ArrayLike, residual_rate_rad_s: float) -> None:
        """The body is at rest (to within *residual_rate_rad_s*): the gyro reads its bias."""
        h = np.hstack([np.eye(3), np.zeros((3, 3))])
        rvar = self.cfg.gyro_noise_rad_s**2 + residual_rate_rad_s**2
        s = self.p[:3, :3] + np.eye(3) * rvar
        k = np.linalg.solve(s, self.p[:3, :]).T
        self.x = self.x + k @ (np.asarray(w_meas_body_rad_s, dtype=float) - self.x[:3])
        ikh = np.eye(6) - k @ h
        self.p = ikh @ self.p @ ikh.T + rvar * (k @ k.T)
        self.n_zero_rate += 1


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
