"""Time alignment of a live IMU's samples with the sensor samples the attitude filter updates on.

The attitude filter propagates on a live IMU's rates between two sensor samples and updates
on the magnetometer and sun faces those samples carry.  The two come from different clocks:
the sensor samples are stamped in whole seconds by the PyCubed (their stated epochs come
through the clock map), the IMU's by the Pi, whose clock is set from a whole-second start
argument.  So the IMU's time tags, mapped to the filter's time, are off the sensor samples'
instants by a constant of up to a second (plus the stated epochs' own error while the stamp
phase wraps).  That offset matters: integrating the IMU over a window shifted by ``e`` changes
each step's rotation by about ``(w_k - C w_{k-1}) e`` (the rate's change over the step), which
on a tumbling body is tenths of a degree per step for half a second, and the filter would
take it for attitude or bias error (docs/design/imu_time_alignment.md).

It is also observable, from the same quantity: each sensor sample carries the BMX160's rate
at its instant.  The IMU's rate interpolated at that (mapped) time differs from it by
``d = (b_imu - b_bmx) - w_dot e + noise`` in body axes (``w_dot`` the body-axis rate change
per second, from the IMU itself).  :class:`ImuTimeAlignment` is a 5-state Kalman filter on
``[e, c, r]`` (``c`` = the two gyros' bias difference, rad/s; ``r`` = the offset's rate,
s/s: the clocks' relative drift, and the stated epochs' saw-tooth falling behind between
wraps), random walks on ``e``, ``c`` and ``r``, updated on ``d`` with ``H = [-w_dot, I, 0]``;
where the rate does not change the offset is unobservable and, by the same token, harmless.
A stamp wrap (an irregular sensor step of ``d_s``) moves ``e`` by ``-d_s`` and widens it
(:meth:`ImuTimeAlignment.stamps_stepped`).  The processor subtracts ``e`` from the IMU's
mapped times, starts each step where the offset's motion over it puts the step's first
instant (so the IMU covers the samples' true interval), and the filter adds the remaining
``sigma_e^2 v v^T`` to each step.

Pure computation on floats and small arrays: seconds, rad/s, rad/s^2.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from . import chi2

#: Chi-square 0.9999 quantile, 3 dof: a rate difference beyond it is skipped (a glitch).
_GATE_3 = chi2.quantile(0.9999, 3)


class ImuTimeAlignment:
    """``e`` = how far the IMU's mapped time tags run ahead of the sensor samples' stated
    epochs, s (true instant of an IMU sample = its mapped tag - e), and its rate ``r`` (s/s:
    the two clocks' relative drift, or the stamp phase's)."""

    def __init__(
        self,
        init_sigma_s: float = 0.5,
        walk_s_per_sqrt_s: float = 5e-4,
        init_bias_diff_sigma_rad_s: float = math.radians(2.0),
        bias_diff_walk_rad_s_per_sqrt_s: float = 2e-6,
        init_rate_sigma: float = 2e-3,
        rate_walk_per_sqrt_s: float = 1e-7,
        max_rejections: int = 6,
    ):
        # e [s], bias difference IMU - BMX160 [rad/s] (3), r [s/s]
        self.x = np.zeros(5)
        self.p = np.diag([init_sigma_s**2] + [init_bias_diff_sigma_rad_s**2] * 3 + [init_rate_sigma**2])
        self._p0 = self.p.copy()
        self.q_rate = np.array(
            [walk_s_per_sqrt_s**2] + [bias_diff_walk_rad_s_per_sqrt_s**2] * 3 + [rate_walk_per_sqrt_s**2]
        )
        self.t_s: float | None = None
        self.max_rejections = int(max_rejections)
        self.n_updates = 0
        self.n_rejected = 0
        self.n_resets = 0
        self.n_stamp_steps = 0
        self._rejections_in_row = 0
        self.last_nis = math.nan

    @property
    def rejections_in_row(self) -> int:
        """Samples refused in a row (the IMU's rate and the BMX160's disagree)."""
        return self._rejections_in_row

    @property
    def offset_s(self) -> float:
        return float(self.x[0])

    @property
    def sigma_s(self) -> float:
        return math.sqrt(max(float(self.p[0, 0]), 0.0))

    @property
    def rate(self) -> float:
        """The offset's rate, s/s, shrunk towards zero by its own uncertainty
        (``r^3 / (r^2 + sigma_r^2)``): an estimate within its noise moves nothing."""
        r, var = float(self.x[4]), max(float(self.p[4, 4]), 0.0)
        return r * r * r / (r * r + var) if r * r + var > 0.0 else 0.0

    def offset_at(self, t_s: float) -> tuple[float, float]:
        """The offset and its 1-sigma at *t_s* (s), carried from the last update by its rate."""
        dt = 0.0 if self.t_s is None else float(t_s) - self.t_s
        p = self.p
        var = p[0, 0] + 2.0 * dt * p[0, 4] + dt * dt * p[4, 4] + self.q_rate[0] * abs(dt)
        return float(self.x[0] + self.x[4] * dt), math.sqrt(max(float(var), 0.0))

    def stamps_stepped(self, d_s: float) -> None:
        """A sensor step was *d_s* longer than a whole number of the usual interval
        (:mod:`.step_regularity`).  If the stamps' phase wrapped, the samples' stated epochs
        moved *d_s* against their instants and the offset by ``-d_s``; if the sample was
        late, nothing moved.  Wraps are what a drifting clock does regularly: the offset is
        moved, and its variance grows by ``d_s^2`` so that the other case stays covered
        (the updates that follow tell which)."""
        self.x[0] -= float(d_s)
        self.p[0, 0] += float(d_s) ** 2
        self.n_stamp_steps += 1

    def _propagate(self, t_s: float) -> None:
        if self.t_s is not None and t_s > self.t_s:
            dt = t_s - self.t_s
            f = np.eye(5)
            f[0, 4] = dt
            self.x = f @ self.x
            self.p = f @ self.p @ f.T
            self.p[np.diag_indices(5)] += self.q_rate * dt
        self.t_s = float(t_s)

    def update(
        self, t_s: float, rate_diff_rad_s: ArrayLike, rate_dot_rad_s2: ArrayLike, noise_var_rad2_s2: float
    ) -> bool:
        """One sensor sample at *t_s*: *rate_diff_rad_s* = IMU rate (at the sample's stated
        epoch, mapped tags, body axes) - BMX160 rate, *rate_dot_rad_s2* = the IMU's body-rate
        change per second there, *noise_var_rad2_s2* = the difference's noise variance per
        axis.  False if skipped (gated, or not finite)."""
        d = np.asarray(rate_diff_rad_s, dtype=float)
        wd = np.asarray(rate_dot_rad_s2, dtype=float)
        if not (np.isfinite(d).all() and np.isfinite(wd).all() and math.isfinite(t_s)):
            self.n_rejected += 1
            return False
        self._propagate(t_s)
        h = np.hstack([-wd[:, None], np.eye(3), np.zeros((3, 1))])
        r = d - h @ self.x
        s = h @ self.p @ h.T + np.eye(3) * noise_var_rad2_s2
        try:
            sr = np.linalg.solve(s, r)
        except np.linalg.LinAlgError:
            self.n_rejected += 1
            return False
        self.last_nis = float(r @ sr)
        if not self.last_nis <= _GATE_3:
            self.n_rejected += 1
            self._rejections_in_row += 1
            if self._rejections_in_row >= self.max_rejections:
                # The offset jumped (a clock step, the stamp phase wrapped) or a gyro's bias
                # did (a turn-on, a temperature step): start both again.
                self.p[:4, :] = 0.0
                self.p[:, :4] = 0.0
                self.p[:4, :4] = self._p0[:4, :4]
                self.x[:4] = 0.0
                self._rejections_in_row = 0
                self.n_resets += 1
            return False
        k = np.linalg.solve(s, h @ self.p).T
        ikh = np.eye(5) - k @ h
        self.x = self.x + k @ r
        self.p = ikh @ self.p @ ikh.T + noise_var_rad2_s2 * (k @ k.T)
        self.p = 0.5 * (self.p + self.p.T)
        self._rejections_in_row = 0
        self.n_updates += 1
        return True
