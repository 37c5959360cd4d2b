"""The filters' tunables: :class:`OrbitFilterConfig` and :class:`AttitudeFilterConfig`.

Plain dataclasses with every value's limits declared next to it (:func:`pygnc.limits.bounded`)
and no numpy, so that the configuration's ``[orbit_filter]`` and ``[attitude_filter]``
tables are checked when the configuration is loaded (:mod:`pygnc.config`), by the
supervisor, before any task runs.  The filters take them from here
(:mod:`pygnc.estimation.orbit_ekf`, :mod:`pygnc.estimation.attitude_mekf`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pygnc.limits import bounded


@dataclass(frozen=True)
class OrbitFilterConfig:
    """Tunables of the orbit filter (SI units; sigmas are 1-sigma per axis)."""

    #: GPS noise used when a fix carries no sigma (0), per ECEF axis.
    pos_sigma_m: float = bounded(10.0, "(0, 1e6]")
    vel_sigma_m_s: float = bounded(0.01, "(0, 1e3]")
    #: Scale applied to the sigmas a fix reports (receivers are often optimistic).
    fix_sigma_scale: float = bounded(1.0, "(0, 1e3]")
    #: Empirical acceleration: steady-state sigma per axis [m/s^2] and correlation time [s].
    dmc_sigma_m_s2: float = bounded(3.0e-5, "[0, 1]")
    dmc_tau_s: float = bounded(150.0, "(0, 1e7]")
    #: Spacecraft ballistic coefficient m / (C_D A) [kg/m^2]; None disables drag.
    ballistic_coeff_kg_m2: float | None = bounded(50.0, "(0, 1e6]")
    #: Estimate a drag scale state (Gauss-Markov about 1).
    estimate_drag_scale: bool = False
    drag_scale_sigma: float = bounded(0.5, "[0, 10]")
    drag_scale_tau_s: float = bounded(86_400.0, "(0, 1e8]")
    #: Highest zonal degree of the gravity model (2..8).
    zonal_degree: int = bounded(8, "[2, 8]")
    #: Degree and order of the EGM96 tesseral terms (0 = none, 2..8).
    tesseral_degree: int = bounded(8, "[0, 8]", choices=(0, 2, 3, 4, 5, 6, 7, 8))
    #: Sun and Moon tidal accelerations in the dynamics (analytic ephemerides, ~4 us/step).
    third_body: bool = True
    #: Longest integration step [s].  A GPS fix every ~25 s is one step from the last one;
    #: RK4 over 30 s is ~3 mm and 5e-6 m/s off a 1-s integration on a 500-km orbit (the
    #: tesseral and third-body terms held at their mid-step value), against 10-m fixes.
    max_step_s: float = bounded(30.0, "(0, 3600]")
    #: Innovation gate probability (chi-square, 6 dof; :mod:`pygnc.estimation.chi2`).
    gate_probability: float = bounded(0.9999, "(0, 1)")
    #: Consecutive rejections after which the filter re-initialises from the next fix.
    max_consecutive_rejections: int = bounded(6, "[1, 1e6]")
    #: Initial sigma of the empirical acceleration [m/s^2] (r, v start from the fix's R).
    init_dmc_sigma_m_s2: float = bounded(3.0e-5, "[0, 1]")

    def dynamics(self):
        """The :class:`pygnc.estimation.orbit_dynamics.DynamicsModel` of these tunables."""
        from pygnc.estimation import orbit_dynamics as od  # (numpy: only where a filter runs)

        zj = od.ZONAL_J_EGM96[: self.zonal_degree + 1]
        return od.DynamicsModel(
            zonal_j=zj,
            ballistic_coeff_kg_m2=self.ballistic_coeff_kg_m2,
            dmc_tau_s=self.dmc_tau_s,
            drag_scale_tau_s=self.drag_scale_tau_s if self.estimate_drag_scale else None,
            max_step_s=self.max_step_s,
            tesseral_degree=self.tesseral_degree,
            third_body=self.third_body,
        )


@dataclass(frozen=True)
class AttitudeFilterConfig:
    """Tunables (1-sigma values per axis unless a name says otherwise)."""

    #: Gyro white noise per sample, rad/s (BMX160: 0.025 deg/s, plus LSB rounding).
    gyro_noise_rad_s: float = bounded(math.radians(0.026), "(0, 1]")
    #: Gyro bias random walk, rad/s per sqrt(s).
    gyro_bias_walk_rad_s_per_sqrt_s: float = bounded(1.5e-6, "[0, 1]")
    #: Initial gyro-bias sigma (turn-on offsets up to +-3 deg/s), rad/s.
    init_gyro_bias_sigma_rad_s: float = bounded(math.radians(2.0), "(0, 10]")
    #: Residual propagation error coefficient: sigma = c (|w| dt)^3, rad.
    propagation_error_coeff: float = bounded(0.01, "[0, 10]")
    #: Longest interval bridged by two-sample integration, s.
    max_gap_s: float = bounded(30.0, "(0, 86400]")
    #: Magnetometer noise and field-model error, µT.
    mag_noise_ut: float = bounded(0.6, "(0, 1e4]")
    mag_model_sigma_ut: float = bounded(0.3, "[0, 1e4]")
    #: Hard-iron bias: initial sigma (tens of µT possible) and random walk per sqrt(s), µT.
    init_mag_bias_sigma_ut: float = bounded(20.0, "(0, 1e5]")
    mag_bias_walk_ut_per_sqrt_s: float = bounded(1.0e-4, "[0, 100]")
    #: OPT3001 noise: fraction of the reading, and floor (lux).
    lux_noise_fraction: float = bounded(0.01, "[0, 1]")
    lux_noise_floor_lux: float = bounded(2.0, "(0, 1e6]")
    #: Sun-face cosine-response error, fraction of the direct-sun lux.
    lux_cosine_error_fraction: float = bounded(0.01, "[0, 1]")
    #: Albedo model error: fraction of the modelled albedo, plus a floor (fraction of E0).
    albedo_relative_sigma: float = bounded(0.3, "[0, 10]")
    albedo_floor_fraction: float = bounded(0.012, "[0, 1]")
    #: Visible solar fraction below which sun faces are not used (eclipse).
    eclipse_fraction_threshold: float = bounded(0.05, "[0, 1]")
    #: Attitude sigma given to a TRIAD initialisation, rad.
    init_attitude_sigma_rad: float = bounded(math.radians(10.0), "(0, 10]")
    #: Consecutive rejected magnetometer updates after which the filter re-initialises.
    max_rejections: int = bounded(12, "[1, 1e6]")
    #: Calibrator: sigma of the field's inertial rotation over a step (fraction of |B| per s).
    calib_field_rate_rad_s: float = bounded(2.5e-3, "[0, 1]")
    #: Residual rate allowed when the body is detected at rest (Earth rate on a bench,
    #: slow drift), rad/s.
    rest_residual_rate_rad_s: float = bounded(math.radians(0.005), "[0, 1]")
    #: 1-sigma uncertainty of a sample's stated epoch (its time tag mapped to GPS time), s.
    #: Whole-second floored stamps put the sample anywhere in its second: 1/sqrt(12).  The
    #: processor passes the clock map's measured scatter instead when it has one.
    time_tag_sigma_s: float = bounded(1.0 / math.sqrt(12.0), "[0, 60]")
    #: 1-sigma error of a *regular* step's length (its stamp difference equal to the recent
    #: ones: the stamp phase moves by drift x dt, ~1e-4 s), s.
    regular_step_sigma_s: float = bounded(0.0, "[0, 60]")
    #: A step whose length differs from the median of the last ``step_history`` by more
    #: than this is irregular (a stamp-phase wrap, a late sample), s.
    irregular_step_threshold_s: float = bounded(0.5, "(0, 3600]")
    step_history: int = bounded(7, "[1, 1000]")
    #: External IMU gyro (a live 100-Hz stream from task imu_ingest) when it propagates
    #: the attitude: white rate noise density (angular random walk; 0.3 deg/sqrt(h) is
    #: 0.005 deg/s/sqrt(Hz)), bias random walk, and the sigma of its bias when it is first
    #: used.  Its bias is a separate estimate from the BMX160's (the state holds the bias of
    #: the gyro in use; the other one's is kept aside).
    imu_gyro_noise_density_rad_s_sqrt_hz: float = bounded(math.radians(0.005), "(0, 1]")
    imu_gyro_bias_walk_rad_s_per_sqrt_s: float = bounded(5e-7, "[0, 1]")
    imu_init_gyro_bias_sigma_rad_s: float = bounded(math.radians(0.5), "(0, 10]")
