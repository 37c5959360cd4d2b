"""Before the attitude filter has an attitude: the gyro and magnetometer biases estimated
without one (:class:`GyroMagCalibrator`, from consecutive samples and, with a position, the
field model's magnitude), and rest detected from the gyro and the lux
sensors (:class:`RestDetector`, whose zero-rate updates measure the gyro bias on a bench).
Used by :class:`pygnc.estimation.attitude_mekf.AttitudeEstimator`; rates in rad/s (body),
fields in µT, times in seconds.
"""

from __future__ import annotations

import math
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


def _stacked_magnitudes(rows: Iterable[tuple[float, np.ndarray, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Magnitude rows ``(t, m, |B|)`` as arrays: times (n,) [s], fields (n, 3) [µT], the
    model's magnitudes (n,) [µT]."""
    t, m, b = zip(*rows)
    return np.array(t), np.array(m), np.array(b)


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

    With a position, each sample also adds the field's magnitude, which no attitude
    changes: ``|m - b_m| = |B| (1 + sum_i s_i u_i^2) + c`` with ``|B|`` the model's, ``u``
    the field's direction in the magnetometer's axes, ``s`` its scale-factor errors and
    ``c`` the model's magnitude error (both constant over the window: nuisance parameters
    at their prior sigmas, estimated with the biases and marginalised out).  This is what
    sees the magnetometer bias on a body that barely turns (a detumbled spacecraft at
    0.05-0.3 deg/s): the pairs see it only through the turn between two samples, the
    magnitudes as the field's direction in the body changes along the orbit.

    A new pair or magnitude is first gated on its innovation at the current estimate (a
    field disturbance or a jump is skipped and counted).  Consecutive pairs share a sample,
    and a magnitude shares it with both; the correlation is not modelled (the attitude
    filter's start doubles the covariance).  Needs neither position nor time; on a bench at
    rest (:meth:`zero_rate_update`) it measures the gyro bias directly.
    """

    #: The nuisance parameters of the magnitude rows: three scale factors, then the model's
    #: magnitude error [µT].
    N_NUISANCE = 4

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
        #: (t [s], field [µT, magnetometer axes], the model's |B| [µT]) of the accepted magnitudes in the window
        self._magnitudes: deque[tuple[float, np.ndarray, float]] = deque(maxlen=cfg.calib_window_magnitudes)
        self._nuisance = np.zeros(self.N_NUISANCE)  # the magnitude rows' (scale factors, model error): warm start
        nuisance_var = [max(cfg.mag_scale_sigma**2, 1e-12)] * 3 + [max(cfg.mag_model_sigma_ut**2, 1e-12)]
        self._nuisance_p0 = np.diag(nuisance_var)  # their prior (a zero sigma: held at zero)
        self._nuisance_p0_inv = np.diag([1.0 / v for v in nuisance_var])
        self.t_s: float | None = None
        # The previous sample's rate and field: set with t_s, always together.
        self.w_prev: np.ndarray | None = None
        self.m_prev: np.ndarray | None = None
        self.n_updates = 0
        self.n_rejected = 0
        self.n_zero_rate = 0
        self.n_magnitudes = 0
        self.n_magnitudes_rejected = 0
        self.n_hard_iron_reopened = 0
        self._refused_at: float | None = None  # the sample after a refused pair, until the next pair decides

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
        self._magnitudes.clear()
        self._nuisance = np.zeros(self.N_NUISANCE)
        self._refused_at = None

    def follow(self, t_s: float, w_meas_body_rad_s: ArrayLike, m_meas_body_ut: ArrayLike) -> None:
        """Take the sample as the previous one without using it (the next pair starts here)."""
        self.t_s = float(t_s)
        self.w_prev = np.asarray(w_meas_body_rad_s, dtype=float)
        self.m_prev = np.asarray(m_meas_body_ut, dtype=float)

    def step(
        self, t_s: float, w_meas_body_rad_s: ArrayLike, m_meas_body_ut: ArrayLike, field_norm_ut: float | None = None
    ) -> None:
        """One sample: its pair with the previous one, and, given the field model's magnitude
        *field_norm_ut* there (a position), its magnitude row."""
        cfg = self.cfg
        w1 = np.asarray(w_meas_body_rad_s, dtype=float)
        m1 = np.asarray(m_meas_body_ut, dtype=float)
        solve = False
        if field_norm_ut is not None and cfg.calib_window_magnitudes > 0 and math.isfinite(field_norm_ut):
            row = (float(t_s), m1, float(field_norm_ut))
            r, j, var = self._magnitude_terms(self.x, self._nuisance, _stacked_magnitudes([row]))
            jb, jn = j[0, :6], j[0, 6:]  # (gated at the nuisance's prior: conservative)
            s = float(jb @ self.p @ jb + jn @ self._nuisance_p0 @ jn) + var[0]
            if math.isfinite(r[0]) and r[0] * r[0] <= CHI2_9999[0] * s:
                self._magnitudes.append(row)
                self.n_magnitudes += 1
                solve = True
            else:  # a field disturbance (or a jump): skip the sample's magnitude
                self.n_magnitudes_rejected += 1
        if self.t_s is not None and self.w_prev is not None and self.m_prev is not None:
            dt = t_s - self.t_s
            if 0.0 < dt <= cfg.max_gap_s:
                pair = (float(dt), self.w_prev, w1, self.m_prev, m1)
                r, j, var = self._pair_terms(self.x, _stacked([pair]))
                s = j[0] @ self.p @ j[0].T + np.eye(3) * var[0]
                nis = float(r[0] @ np.linalg.solve(s, r[0]))
                if nis <= CHI2_9999[2]:
                    if self._refused_at is not None:
                        # One pair refused and the next one taken: the field jumped at the
                        # sample between them and stayed - a hard iron that changed (a
                        # subsystem switched on), which the window before it does not fit.
                        self._reopen_hard_iron()
                    self._pairs.append(pair)
                    self.n_updates += 1
                    solve = True
                else:  # a field disturbance (or a jump): skip the pair
                    self.n_rejected += 1
                    if self._refused_at is None:
                        self._refused_at = float(t_s)  # the next pair decides: a jump here or a glitch
                    else:
                        # Two pairs refused in a row: the sample they share was a glitch (its
                        # magnitude, if taken, goes too); the hard iron did not change.
                        glitch = self._refused_at
                        self._refused_at = None
                        if any(row[0] == glitch for row in self._magnitudes):
                            kept = [row for row in self._magnitudes if row[0] != glitch]
                            self._magnitudes.clear()
                            self._magnitudes.extend(kept)
                            solve = True
        if solve:
            self._solve()
        self.follow(t_s, w1, m1)

    def _reopen_hard_iron(self) -> None:
        """The hard iron changed: start again from the estimate with the magnetometer bias's
        turn-on sigma, uncorrelated (the gyro bias's knowledge kept as the prior), the window
        emptied - the pairs before the change pin the old bias down (through ``I - C``) as
        the magnitudes do."""
        p = self.p.copy()
        p[3:6, :] = 0.0
        p[:, 3:6] = 0.0
        p[3:6, 3:6] = np.eye(3) * self.cfg.init_mag_bias_sigma_ut**2
        self.reset(self.x, p)
        self.n_hard_iron_reopened += 1

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

    def _magnitude_rows(self) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None:
        """The window's magnitude rows (:func:`_stacked_magnitudes`) and where their fit
        starts (the magnetometer bias of the centred linear solution, below), or None while
        that solution's largest sigma is above ``calib_magnitude_max_sigma_ut``.

        ``|m|^2 - |B|^2 = 2 m.b - |b|^2`` is linear in b once each side's window mean is
        taken off (TWOSTEP's centring, Alonso & Shuster 2002): a solution without a start,
        without local minima, whose covariance says how well the field's directions in the
        window pin the bias down.  Until they do, the nonlinear fit from the prior is a
        banana its linearised covariance does not describe, so the rows wait."""
        if len(self._magnitudes) < 4:
            return None
        rows = _stacked_magnitudes(self._magnitudes)
        _, m, b_norm = rows
        cfg = self.cfg
        y = np.sum(m * m, axis=1) - b_norm * b_norm
        # |m|^2's noise: 2 |B| times the magnetometer's along the field, the model's and the scale factors'
        w = 1.0 / (
            4.0
            * b_norm
            * b_norm
            * (cfg.mag_noise_ut**2 + cfg.mag_model_sigma_ut**2 + (cfg.mag_scale_sigma * b_norm) ** 2)
        )
        m_c = m - (w @ m) / w.sum()
        y_c = y - (w @ y) / w.sum()
        a = 4.0 * (m_c * w[:, None]).T @ m_c
        if not np.isfinite(a).all():
            return None
        evals = np.linalg.eigvalsh(a)
        if not evals[0] > 0.0 or 1.0 / evals[0] > cfg.calib_magnitude_max_sigma_ut**2:
            return None
        b_lin = np.linalg.solve(a, 2.0 * (m_c * w[:, None]).T @ y_c)
        return rows, b_lin

    def _magnitude_terms(
        self, x: np.ndarray, nu: np.ndarray, rows: tuple[np.ndarray, np.ndarray, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Residuals (n,), their Jacobians d r / d (x, nuisance) (n, 10) and variances (n,) at
        biases *x* and nuisance *nu* of the magnitude rows (:func:`_stacked_magnitudes`).

        The field model's error beyond its constant part c (crustal, external fields) varies
        along the orbit over ``calib_field_model_correlation_s``: the rows hold only
        1 + span / that many independent draws of it, so each row's share of its variance is
        the model's sigma squared times rows / draws (the model error alone never pins the
        bias down better than that many rows' worth)."""
        t, m, b_norm = rows
        d = m - x[3:6]
        d_norm = np.sqrt(np.sum(d * d, axis=1))
        u2 = (d / d_norm[:, None]) ** 2
        r = d_norm - b_norm * (1.0 + u2 @ nu[:3]) - nu[3]
        j = np.zeros((b_norm.size, 6 + self.N_NUISANCE))
        j[:, 3:6] = -d / d_norm[:, None]  # (the scale terms' dependence on the bias: ~1e-2 of this, left out)
        j[:, 6:9] = -b_norm[:, None] * u2
        j[:, 9] = -1.0
        cfg = self.cfg
        draws = 1.0 + (float(t.max() - t.min()) / cfg.calib_field_model_correlation_s if t.size > 1 else 0.0)
        var = np.full(b_norm.size, cfg.mag_noise_ut**2 + cfg.mag_model_sigma_ut**2 * t.size / draws)
        return r, j, var

    def _solve(self, max_iterations: int = 10) -> None:
        """Gauss-Newton on the window and the prior from the current estimate, until the
        Newton decrement is below 1e-3; a step that raises the cost is halved (up to 5
        times); a non-finite result is not taken."""
        pairs = _stacked(self._pairs) if self._pairs else None
        usable = self._magnitude_rows()
        mags = None if usable is None else usable[0]
        rest = list(self._rest)
        w_rest = np.array([w for w, _ in rest]) if rest else np.zeros((0, 3))
        iv_rest = np.array([1.0 / v for _, v in rest])
        n = 6 + self.N_NUISANCE  # the nuisance parameters ride along (their prior alone without magnitudes)

        # The pairs' variances (they scale with |B|) are held at the first evaluation's:
        # weights that moved with x would make the cost other than the least squares the
        # Gauss-Newton steps are taken on.
        iv = np.zeros(0)

        def terms(xa: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
            nonlocal iv
            x = xa[:6]
            d0 = x - self._x0
            a = np.zeros((n, n))
            g = np.zeros(n)
            a[:6, :6] = self._p0_inv
            g[:6] = self._p0_inv @ d0
            a[6:, 6:] = self._nuisance_p0_inv
            g[6:] = self._nuisance_p0_inv @ xa[6:]
            cost = float(d0 @ g[:6]) + float(xa[6:] @ g[6:])
            if pairs is not None:
                r, j, var = self._pair_terms(x, pairs)
                if not len(iv):
                    iv = 1.0 / var
                a[:6, :6] += np.einsum("nij,n,nik->jk", j, iv, j)
                g[:6] += np.einsum("nij,n,ni->j", j, iv, r)
                cost += float(np.sum(iv * np.sum(r * r, axis=1)))
            if mags is not None:
                rm, jm, var_m = self._magnitude_terms(x, xa[6:], mags)
                jw = jm / var_m[:, None]
                a += jw.T @ jm
                g += jw.T @ rm
                cost += float(np.sum(rm * rm / var_m))
            if rest:
                rr = x[:3] - w_rest
                a[:3, :3] += np.eye(3) * float(np.sum(iv_rest))
                g[:3] += iv_rest @ rr
                cost += float(np.sum(iv_rest * np.sum(rr * rr, axis=1)))
            return cost, a, g

        x = np.concatenate([self.x, self._nuisance])
        if usable is not None:  # the fit starts where the centred solution is, if the estimate is not close
            d = x[3:6] - usable[1]
            if float(d @ d) > (3.0 * self.cfg.calib_magnitude_max_sigma_ut) ** 2:
                x[3:6] = usable[1]
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
        p = np.linalg.inv(a)[:6, :6]  # the biases' covariance, the nuisance marginalised out
        x, nuisance = x[:6], x[6:]
        if pairs is not None and not rest:
            # The field's own inertial rotation (up to ~0.14 deg/s, twice the orbital rate) is
            # the same from pair to pair, not the white noise the weights take it for: what of
            # it the gyro bias takes up does not average away as the window grows.  Its share,
            # calib_field_rate_rad_s in 3-D, stays in the covariance.  (At rest the gyro reads
            # its bias directly and the field does not turn.)
            p[:3, :3] += np.eye(3) * (self.cfg.calib_field_rate_rad_s**2 / 3.0)
        if mags is not None:
            # The magnitudes span up to an hour, over which the hard iron may change by a few
            # µT without a pair or a magnitude test seeing it (a step shows in the magnitudes
            # only along the field): they serve the start, and the bias they give is not
            # taken to be known better than that (the attitude filter refines it after).
            p[3:6, 3:6] += np.eye(3) * self.cfg.calib_hard_iron_stability_ut**2
        if np.isfinite(x).all() and np.isfinite(p).all() and np.isfinite(nuisance).all():
            self.x, self.p = x, 0.5 * (p + p.T)
            self._nuisance = nuisance


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
