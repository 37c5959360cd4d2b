"""The estimators' tunables: :class:`OrbitFilterConfig`, :class:`AttitudeFilterConfig`,
:class:`FormationFilterConfig` and :class:`RangeOnlyConfig`.

Plain dataclasses with every value's limits declared next to it (:func:`pygnc.limits.bounded`)
and no numpy, so that the configuration's ``[orbit_filter]``, ``[attitude_filter]``,
``[formation_filter]`` and ``[range_only]`` tables are checked when the configuration is
loaded (:mod:`pygnc.config`), by the supervisor, before any task runs.  The estimators take
them from here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pygnc.limits import bounded

if TYPE_CHECKING:
    from pygnc.estimation.orbit_dynamics import DynamicsModel


@dataclass(frozen=True)
class OrbitFilterConfig:
    """Tunables of the orbit filter (SI units; sigmas are 1-sigma per axis)."""

    #: GPS noise used when a fix carries no sigma (0), per ECEF axis.
    pos_sigma_m: float = bounded(10.0, "(0, 1e6]")
    vel_sigma_m_s: float = bounded(0.01, "(0, 1e3]")
    #: Scale applied to the sigmas a fix reports (receivers are often optimistic).
    fix_sigma_scale: float = bounded(1.0, "(0, 1e3]")
    #: The slowly varying part of a fix's position error, per axis [m] (0: fixes taken as
    #: independent; with ``restart_confirm_min_span_s`` 0 too, the filter before these), and
    #: its correlation time [s]: a single-frequency receiver's solution carries the
    #: ionosphere's delay and the broadcast ephemeris' error, metres that change over tens
    #: of minutes, not from fix to fix (LEO kinematic solutions carry a mean radial offset of
    #: 3-5x the vertical ionospheric delay: Radio Science, doi 10.1029/2005RS003420).
    #: Estimated as three Gauss-Markov states, on top of each fix's own sigma (its scatter
    #: from fix to fix).  5 m and 20 min cover errors of 5-9 m of 10 correlated over
    #: 10-60 min at 25-s fixes (0-0.4 % of `ok` rows past the 99.9 % NEES bound, the most at
    #: 9 m and an hour; 13-84 % with 0), at 22-34 % more RMS on independent fixes.  The
    #: formation filter takes fixes as independent (``FormationFilterConfig``).
    fix_error_correlated_sigma_m: float = bounded(5.0, "[0, 1e4]")
    fix_error_correlation_s: float = bounded(1200.0, "(0, 1e7]")
    #: Empirical acceleration: steady-state sigma per axis [m/s^2] and correlation time [s]:
    #: what the force model leaves out - with ``gravity_degree`` 34 the field beyond it
    #: (~2e-6 m/s^2, varying over tens of seconds), the drag's structure along the orbit,
    #: SRP (~6e-8); with the EGM96 8x8 field (``gravity_degree`` 0: ~3e-5 m/s^2 correlated
    #: over ~100 s) it needs 3e-5 and 150 s.
    dmc_sigma_m_s2: float = bounded(1.0e-6, "[0, 1]")
    dmc_tau_s: float = bounded(300.0, "(0, 1e7]")
    #: Spacecraft ballistic coefficient m / (C_D A) [kg/m^2]; None disables drag.
    ballistic_coeff_kg_m2: float | None = bounded(50.0, "(0, 1e6]")
    #: Estimate a drag scale state (Gauss-Markov about 1: its steady-state and initial sigma,
    #: correlation time): neither the day's density (solar activity moves it several fold at
    #: 500 km; a storm, five- to tenfold within hours) nor the real ballistic coefficient is
    #: known to better than that.  With a day's correlation and sigma 3 a density ten times
    #: the model's within an hour was followed too slowly: 21-31 % of `ok` rows past the 99.9 %
    #: NEES bound (an independent sweep); 3 h and 10: 0, at ~5 % more RMS on quiet days.
    estimate_drag_scale: bool = True
    drag_scale_sigma: float = bounded(10.0, "[0, 10]")
    drag_scale_tau_s: float = bounded(10_800.0, "(0, 1e8]")
    #: Degree and order of the EGM2008 field (``pygnc/environment/egm2008.npz``): its zonals
    #: to ``field_zonal_degree`` at every integration stage, the rest once per step at the
    #: step's middle.  0: the EGM96 model of ``zonal_degree`` and ``tesseral_degree``
    #: instead (the formation filter's own-orbit model is always that one).
    #: 34: a step costs what one of the EGM96 8x8 model did (on an EGM2008 70x70 truth, 5
    #: seeds: 1.94 m 3D RMS; 40: 1.91 m at ~3 % more CPU per step; 0: 2.78 m).
    gravity_degree: int = bounded(34, "[0, 70]")
    #: With ``gravity_degree``: the zonal degree evaluated at every integration stage (2..8).
    field_zonal_degree: int = bounded(2, "[2, 8]")
    #: With ``gravity_degree`` 0: the highest zonal degree of the EGM96 model (2..8) ...
    zonal_degree: int = bounded(8, "[2, 8]")
    #: ... and the degree and order of its tesseral terms (0 = none, 2..8).
    tesseral_degree: int = bounded(8, "[0, 8]", choices=(0, 2, 3, 4, 5, 6, 7, 8))
    #: Sun and Moon tidal accelerations in the dynamics (analytic ephemerides).
    third_body: bool = True
    #: Longest integration step [s].  A GPS fix every ~25 s is one step from the last one;
    #: RK4 over 30 s is ~3 mm and 5e-6 m/s off a 1-s integration on a 500-km orbit (the
    #: tesseral and third-body terms held at their mid-step value), against 10-m fixes.
    max_step_s: float = bounded(30.0, "(0, 3600]")
    #: Innovation gate probability (chi-square, 6 dof; :mod:`pygnc.estimation.chi2`).
    gate_probability: float = bounded(0.9999, "(0, 1)")
    #: Consecutive rejections after which the filter re-initialises from the next fix.
    max_consecutive_rejections: int = bounded(6, "[1, 1e6]")
    #: ... once they also span this long [s] (six 25-s fix intervals); a state restarted so
    #: is confirmed only after as many fixes plus two, and as long or longer: a receiver's
    #: glitch of several agreeing fixes is not taken over the track it interrupted.
    lost_min_span_s: float = bounded(150.0, "[0, 86400]")
    #: ... and the least span [s] over which a restarted state must hold before it is
    #: confirmed: a glitch's positions fixed one offset from the orbit are no orbit, which the
    #: fixes' velocities and the dynamics show within a few minutes - sooner than the slowly
    #: varying fix errors' states could absorb (150 s let a 500-s glitch of 1-Hz fixes through).
    restart_confirm_min_span_s: float = bounded(300.0, "[0, 86400]")
    #: Initial sigma of the empirical acceleration [m/s^2] (r, v start from the fix's R): the
    #: drag before its scale is known.
    init_dmc_sigma_m_s2: float = bounded(2.0e-6, "[0, 1]")
    #: The drag's atmosphere: "exponential" (static, by height) or "harris_priester" (with
    #: the diurnal bulge: :mod:`pygnc.estimation.orbit_dynamics`).
    atmosphere: str = bounded("exponential", choices=("exponential", "harris_priester"))

    def dynamics(self) -> DynamicsModel:
        """The :class:`pygnc.estimation.orbit_dynamics.DynamicsModel` of these tunables."""
        from pygnc.estimation import orbit_dynamics as od  # (numpy: only where a filter runs)

        n = self.gravity_degree
        zj = od.egm2008_zonal_j(min(self.field_zonal_degree, n)) if n else od.ZONAL_J_EGM96[: self.zonal_degree + 1]
        return od.DynamicsModel(
            zonal_j=zj,
            ballistic_coeff_kg_m2=self.ballistic_coeff_kg_m2,
            dmc_tau_s=self.dmc_tau_s,
            drag_scale_tau_s=self.drag_scale_tau_s if self.estimate_drag_scale else None,
            max_step_s=self.max_step_s,
            tesseral_degree=0 if n else self.tesseral_degree,
            third_body=self.third_body,
            gravity_degree=n,
            atmosphere=self.atmosphere,
        )


@dataclass(frozen=True)
class AttitudeFilterConfig:
    """Tunables (1-sigma values per axis unless a name says otherwise)."""

    #: Gyro white noise per sample, rad/s (BMX160: 0.025 deg/s, plus LSB rounding).
    gyro_noise_rad_s: float = bounded(math.radians(0.026), "(0, 1]")
    #: Gyro bias random walk, rad/s per sqrt(s): 0.0017 deg/s in an hour.  A larger walk lets
    #: the bias estimate absorb propagation error and, on a constant bias, leaves its
    #: covariance too wide (bias NEES ~1 of 3 at 1.5e-6).
    gyro_bias_walk_rad_s_per_sqrt_s: float = bounded(5e-7, "[0, 1]")
    #: Initial gyro-bias sigma (turn-on offsets up to +-3 deg/s), rad/s.
    init_gyro_bias_sigma_rad_s: float = bounded(math.radians(2.0), "(0, 10]")
    #: Residual propagation error coefficient: sigma = c (|w| dt)^3, rad.
    propagation_error_coeff: float = bounded(0.01, "[0, 10]")
    #: Longest interval bridged by two-sample integration, s.
    max_gap_s: float = bounded(30.0, "(0, 86400]")
    #: Magnetometer noise and field-model error, µT.
    mag_noise_ut: float = bounded(0.6, "(0, 1e4]")
    mag_model_sigma_ut: float = bounded(0.3, "[0, 1e4]")
    #: The magnetometer's scale-factor error left after ``Config.mag_scale`` (a ground
    #: calibration, soft iron, temperature), 1-sigma per body axis, a fraction.  A constant
    #: error, not noise: the filter carries the three as consider parameters (its covariance
    #: holds their effect; they are not estimated).  0: none.
    mag_scale_sigma: float = bounded(0.02, "[0, 1]")
    #: The BMX160 gyro's scale-factor error left after ``Config.gyro_scale``, 1-sigma per body
    #: axis, a fraction.  The data sheet's typical sensitivity tolerance is 1 %; half of it
    #: as the sigma covers a 1-% error and costs exact sensors less accuracy than 1 % would
    #: (docs/operations.md, open question 4).  Carried as consider parameters like the
    #: magnetometer's; a live IMU's steps take its own (``imu_gyro_scale_sigma``).  0: none.
    gyro_scale_sigma: float = bounded(0.005, "[0, 1]")
    #: The magnetometer's mounting error against the body axes (the sun faces' and the gyro's)
    #: left after ``Config.imu_to_body``, 1-sigma per axis, rad.  Estimated (three constant
    #: states): the sun and the field together see it in sunlight.  0: not estimated.
    mag_misalignment_sigma_rad: float = bounded(math.radians(1.0), "[0, 0.2]")
    #: The BMX160 gyro's mounting error against the body axes, 1-sigma per axis, rad: its
    #: rates turned by it; estimated like the magnetometer's (the two share a chip and
    #: ``imu_to_body``: a board turned against the sun faces turns both).  0: not estimated.
    gyro_misalignment_sigma_rad: float = bounded(math.radians(1.0), "[0, 0.2]")
    #: Hard-iron bias: initial sigma (tens of µT possible) and random walk per sqrt(s), µT.
    init_mag_bias_sigma_ut: float = bounded(20.0, "(0, 1e5]")
    mag_bias_walk_ut_per_sqrt_s: float = bounded(1.0e-4, "[0, 100]")
    #: OPT3001 noise: fraction of the reading, and floor (lux).
    lux_noise_fraction: float = bounded(0.01, "[0, 1]")
    lux_noise_floor_lux: float = bounded(2.0, "(0, 1e6]")
    #: Sun-face cosine-response error, fraction of the direct-sun lux.
    lux_cosine_error_fraction: float = bounded(0.01, "[0, 1]")
    #: Each sun face's normal off its nominal axis (the panel's mounting, the sensor's angular
    #: response), 1-sigma per tangent direction, rad: a constant error per face, carried as
    #: consider parameters (two per face).  0: none.
    sun_face_normal_sigma_rad: float = bounded(math.radians(1.0), "[0, 0.2]")
    #: Albedo model error: fraction of the modelled albedo, plus a floor (fraction of E0).
    albedo_relative_sigma: float = bounded(0.3, "[0, 10]")
    albedo_floor_fraction: float = bounded(0.012, "[0, 1]")
    #: Visible solar fraction below which sun faces are not used (eclipse).
    eclipse_fraction_threshold: float = bounded(0.05, "[0, 1]")
    #: Attitude sigma given to a TRIAD initialisation, rad.
    init_attitude_sigma_rad: float = bounded(math.radians(10.0), "(0, 10]")
    #: The attitude filter starts only once the calibrator's biases are this well known (3-D
    #: sigmas of the calibrator's covariance doubled): the gyro bias [rad/s], and the TRIAD's
    #: attitude error from the magnetometer bias [rad].
    start_max_gyro_bias_sigma_rad_s: float = bounded(math.radians(0.5), "(0, 10]")
    start_max_attitude_sigma_rad: float = bounded(math.radians(10.0), "(0, 10]")
    #: An attitude 3-D sigma past which the filter is not updated but started again from TRIAD
    #: (with its own biases) at the next sample that allows one [rad]: above any start's own
    #: (10 deg per axis and the bias's share), below where the update's linearisation fails.
    restart_attitude_sigma_rad: float = bounded(math.radians(30.0), "(0, 10]")
    #: A BMX160 rate sample this many times off the line through the two before it (in the
    #: larger of that second difference's noise and the recent ones' median) is corrupt: the
    #: rate before it is held over its step.
    gyro_spike_sigmas: float = bounded(8.0, "(0, 1e6]")
    #: Consecutive rejected magnetometer updates after which the filter re-initialises.
    max_rejections: int = bounded(12, "[1, 1e6]")
    #: A change of the magnetometer's hard iron (a subsystem switched on, a current loop): the
    #: last ``mag_jump_window`` magnetometer innovations, used or refused, share an offset
    #: (their generalised likelihood ratio against none, chi-square with 3 degrees of freedom)
    #: beyond the ``mag_jump_probability`` quantile, and explaining them (one corrupt sample
    #: does not): the bias is re-opened - its covariance grown on every axis by the offset's
    #: squared norm plus ``mag_jump_floor_ut`` squared, the attitude's by that over |B|^2.
    #: 0 or 1 window: never.  (Before the start the calibrator re-opens it when a pair it
    #: refuses is followed by one it takes, and holds it no better than
    #: ``calib_hard_iron_stability_ut``.)
    mag_jump_window: int = bounded(12, "[0, 1000]")
    mag_jump_probability: float = bounded(0.999999, "(0.5, 1)")
    mag_jump_floor_ut: float = bounded(1.0, "[0, 1e4]")
    #: Calibrator: sigma of the field's inertial rotation over a step (fraction of |B| per s).
    calib_field_rate_rad_s: float = bounded(2.5e-3, "[0, 1]")
    #: Calibrator: the pairs of consecutive samples its least squares keeps (120: 10 min at 5 s;
    #: each pair costs a few microseconds per iteration until the attitude filter starts).
    calib_window_pairs: int = bounded(120, "[2, 100000]")
    #: Calibrator: the field magnitudes (one per sample with a position) its least squares
    #: keeps (720: an hour at 5 s, over which the field's direction in a barely turning body
    #: changes enough to show the magnetometer bias).  0: none.
    calib_window_magnitudes: int = bounded(720, "[0, 100000]")
    #: Calibrator: the magnitudes are used once the centred linear solution of the window's
    #: (TWOSTEP's) pins the magnetometer bias down to this sigma on its weakest axis [µT]:
    #: below it a few-µT error's curvature term (error^2 / 2|B|) is below the noise.
    calib_magnitude_max_sigma_ut: float = bounded(0.5, "(0, 2]")
    #: Calibrator: over how long the field model's error along the orbit stays the same [s]
    #: (crustal anomalies: minutes; external fields: longer): an hour's magnitudes hold
    #: ~6 independent draws of it at 600 s, and their information on the bias is that of 6.
    calib_field_model_correlation_s: float = bounded(600.0, "(0, 1e6]")
    #: Calibrator: how well the hard iron is taken to hold still over its magnitudes' window,
    #: 1-sigma per axis [µT]: the floor of the bias they give (a step of a few µT is seen by
    #: neither a pair nor the magnitudes' own test; 2 µT still turns a TRIAD by < ~5 deg).
    calib_hard_iron_stability_ut: float = bounded(2.0, "[0, 1e4]")
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
    #: the gyro in use; the other one's is kept aside).  The walk: 0.006 deg/s over 45 min, an
    #: orbit's temperature swing (at 5e-7 a 0.05-deg/s step was taken as attitude error).
    imu_gyro_noise_density_rad_s_sqrt_hz: float = bounded(math.radians(0.005), "(0, 1]")
    imu_gyro_bias_walk_rad_s_per_sqrt_s: float = bounded(2e-6, "[0, 1]")
    imu_init_gyro_bias_sigma_rad_s: float = bounded(math.radians(0.5), "(0, 10]")
    #: The IMU's rates are taken as ``(I + M)`` times the true ones in its own axes, ``M``
    #: unknown and constant (consider parameters, not estimated): its diagonal the scale
    #: factors' errors (1-sigma, -), the rest the axes' misalignments and
    #: ``imu_device_to_body``'s error (1-sigma, rad).  A factory calibration leaves ~0.5 %
    #: and ~0.2 deg (MEMS IMU datasheets); 0.3 deg covers a mounting off by 1 deg (3 sigma of
    #: the rotation's share).  0: taken as exact - a 0.5-% error then left 1 724 of 1 800
    #: `ok` rows past the 99.9 % NEES bound.
    imu_gyro_scale_sigma: float = bounded(0.005, "[0, 1]")
    imu_gyro_misalignment_sigma_rad: float = bounded(math.radians(0.3), "[0, 0.2]")


@dataclass(frozen=True)
class FormationFilterConfig:
    """Tunables of the formation filter (SI units; sigmas are 1-sigma per axis).

    ``orbit`` holds what the own spacecraft shares with the orbit estimator: GPS noise when
    a fix gives none, the EGM96 zonal and tesseral degrees, the own ballistic coefficient
    and the step length - the configuration's ``[orbit_filter]`` table; the rest is its
    ``[formation_filter]`` table.  The own orbit's force model is the EGM96 one whatever
    the orbit estimator's ``gravity_degree`` (that field costs a step per partner filter
    what it costs the orbit task once), so its empirical acceleration is its own
    (``own_dmc_*``).
    """

    orbit: OrbitFilterConfig = field(default_factory=OrbitFilterConfig)
    #: The own orbit's empirical acceleration (absorbing the gravity beyond EGM96 8x8, drag
    #: and SRP error): steady-state and initial sigma per axis [m/s^2], correlation time [s].
    own_dmc_sigma_m_s2: float = bounded(3.0e-5, "[0, 1]")
    own_init_dmc_sigma_m_s2: float = bounded(3.0e-5, "[0, 1]")
    own_dmc_tau_s: float = bounded(150.0, "(0, 1e7]")
    #: Peer's ballistic coefficient m / (C_D A) [kg/m^2] as configured (the estimated
    #: drag scale absorbs the difference to the truth).
    peer_ballistic_coeff_kg_m2: float = bounded(50.0, "(0, 1e6]")
    #: Differential empirical acceleration: steady-state sigma per axis and correlation time.
    #: What it covers is mostly the relative drag's structure along the orbit that the
    #: atmosphere model leaves: against NRLMSISE-00 on the formation bench's orbits, ~46 % of
    #: the relative drag once per orbit with the exponential atmosphere (2e-7 m/s^2 covered
    #: it), ~17 % with Harris-Priester, hence 2e-7 x 17/46.
    diff_dmc_sigma_m_s2: float = bounded(7.5e-8, "[0, 1]")
    diff_dmc_tau_s: float = bounded(900.0, "(0, 1e8]")
    #: ... and its growth with the two orbits' semi-major axis difference (a drifting pair):
    #: the steady-state sigma is sqrt(diff_dmc_sigma_m_s2^2 + (diff_dmc_sigma_per_km_da_m_s2 *
    #: |da| in km)^2), m/s^2 per km (0: none; range-only partners take ``[range_only]``'s value).
    diff_dmc_sigma_per_km_da_m_s2: float = bounded(0.0, "[0, 1]")
    #: ... and with the relative drag the filter estimates (the partner's drag at its drag
    #: scale less the own): that fraction of its magnitude added in quadrature [-].  The
    #: structure Harris-Priester leaves is 13-22 % of the density once per orbit against
    #: NRLMSISE-00 (four epochs of 2025, 500 km); a pair of very different ballistic
    #: coefficients low down is then covered too (0: none; range-only partners take
    #: ``[range_only]``'s).
    diff_dmc_relative_drag_fraction: float = bounded(0.25, "[0, 10]")
    #: Peer drag scale (Gauss-Markov about 1): steady-state sigma and correlation time;
    #: ``estimate_peer_drag_scale=False`` holds it at 1.
    estimate_peer_drag_scale: bool = True
    peer_drag_scale_sigma: float = bounded(1.0, "[0, 10]")
    peer_drag_scale_tau_s: float = bounded(86_400.0, "(0, 1e8]")
    #: Range noise [m] (1 sigma); prior mean and sigma of the range bias [m] (a
    #: calibration from earlier batches belongs here) and its random walk [m / sqrt(s)]
    #: (0: a constant).
    range_sigma_m: float = bounded(0.5, "(0, 1e6]")
    range_bias_prior_m: float = bounded(0.0, "[-1e6, 1e6]")
    range_bias_sigma_m: float = bounded(3.0, "(0, 1e6]")
    range_bias_walk_m_sqrt_s: float = bounded(0.0, "[0, 100]")
    #: Range time-tag lateness [s]: prior mean and sigma; estimated only when enabled.  A
    #: range's whole-second stamp drops its fraction, but the clock map fitted on the fixes'
    #: whole-second stamps puts it back: the mapped tags are centred near 0 (the simulator's
    #: clock chain: -0.13..+0.42 s per scenario).  Range-only partners take ``[range_only]``'s.
    estimate_range_time_offset: bool = True
    range_time_offset_s: float = bounded(0.0, "[-60, 60]")
    range_time_offset_sigma_s: float = bounded(0.4, "[0, 60]")
    #: Both orbits' atmosphere (``[orbit_filter]`` ``atmosphere``'s choices): the diurnal
    #: bulge is most of what the relative drag varies by along an orbit.  Range-only
    #: partners take ``[range_only]``'s.
    atmosphere: str = bounded("harris_priester", choices=("exponential", "harris_priester"))
    #: Resolution of the range time tags [s]: the PY4 range packet carries whole seconds,
    #: so each range is taken somewhere in its second; that adds (range rate)^2 * res^2 / 12
    #: to its variance.
    range_tag_resolution_s: float = bounded(1.0, "[0, 60]")
    #: Gates (chi-square probability) for fixes (6 dof) and ranges (1 dof).
    fix_gate_probability: float = bounded(0.9999, "(0, 1)")
    range_gate_probability: float = bounded(0.9999, "(0, 1)")
    max_consecutive_rejections: int = bounded(6, "[1, 1e6]")
    max_consecutive_range_rejections: int = bounded(12, "[1, 1e6]")
    #: Range acquisition: the first range is used only once the next one (within
    #: ``range_acquire_window_s``) has an innovation within ``range_acquire_tol_m`` of its
    #: own, so a lone outlier cannot capture the line of sight while it is still loose.
    range_acquire_tol_m: float = bounded(5.0, "(0, 1e6]")
    range_acquire_window_s: float = bounded(120.0, "(0, 86400]")
    #: Two fixes further apart than this [s] do not initialise the filter together.
    max_init_pair_gap_s: float = bounded(60.0, "[0, 86400]")
    #: Longest propagation step of both orbits [s] (RK4; the orbit estimator's is 5 s).
    #: The filter steps from measurement to measurement (own fixes every ~25 s, ranges
    #: every 15-30 s), and estimates between them are interpolated (:meth:`FormationFilter.tap`),
    #: so steps are rarely split.  RK4's error over 30 s is ~2 mm of the absolute orbit
    #: (against 10-m fixes) and cancels in the relative state to < 1e-5 m; the tesseral
    #: field held at its mid-step value: ~1e-5 m/s absolute, ~1e-8 m/s relative per step.
    max_step_s: float = bounded(30.0, "(0, 3600]")
    #: A range up to this many seconds after the filter time is applied at the filter time,
    #: to the relative state carried forward to the range's time in closed form
    #: (:meth:`FormationFilter.range_model`: third order in the gravity gradient, within
    #: 3 mm of a propagation at 3.6 km and 30 s), instead of a propagation of both orbits to
    #: it: the filter then steps
    #: only between own fixes (every ~25 s), not at every range too - about half the steps.
    #: 0: every range is applied at its own time (the caller predicts there first).
    range_extrapolate_max_s: float = bounded(30.0, "[0, 3600]")

    def _own_orbit(self) -> OrbitFilterConfig:
        """``orbit`` with the EGM96 field, the own empirical acceleration's correlation time
        and this filter's step."""
        return dataclasses.replace(
            self.orbit,
            gravity_degree=0,
            dmc_tau_s=self.own_dmc_tau_s,
            max_step_s=self.max_step_s,
            atmosphere=self.atmosphere,
        )

    def own_model(self) -> DynamicsModel:
        """The own spacecraft's :class:`pygnc.estimation.orbit_dynamics.DynamicsModel`."""
        return dataclasses.replace(self._own_orbit(), estimate_drag_scale=False).dynamics()

    def peer_model(self) -> DynamicsModel:
        """The partner's dynamics: the own model with the partner's ballistic coefficient and
        a drag scale state."""
        return dataclasses.replace(
            self._own_orbit(),
            ballistic_coeff_kg_m2=self.peer_ballistic_coeff_kg_m2,
            estimate_drag_scale=True,
            drag_scale_tau_s=self.peer_drag_scale_tau_s,
        ).dynamics()


@dataclass(frozen=True)
class RangeOnlyConfig:
    """Tunables of range-only navigation (:mod:`pygnc.estimation.range_only`; the
    configuration's ``[range_only]`` table)."""

    #: Ranges are collected this long after the first, and at least ``min_ranges`` of them,
    #: before the partner's orbit is fitted to them (:mod:`pygnc.estimation.range_only_iod`), s.
    window_s: float = bounded(2700.0, "(0, 864000]")
    min_ranges: int = bounded(8, "[1, 1e6]")
    #: ... or ``short_window_s`` when the prior's position is known to
    #: ``short_window_max_sigma_m`` (1 sigma, its largest axis) or better: the fit then has
    #: one basin and needs few ranges, s and m.
    short_window_s: float = bounded(600.0, "(0, 864000]")
    short_window_max_sigma_m: float = bounded(200.0, "[0, 1e8]")
    #: A fit that does not converge (a window too short for the geometry: its cost a long
    #: curved valley) is made again with another third of the window's ranges, up to this
    #: long (0 or less than the window: never extended), s.
    max_window_s: float = bounded(5400.0, "[0, 864000]")
    #: The flight dynamics' error in a range as the hypotheses' odds count it: 1 sigma, m,
    #: and its correlation time along the orbit, s (a Gauss-Markov process each hypothesis
    #: estimates from its innovations; 0: white, each range's its own).
    side_model_sigma_m: float = bounded(1.0, "[0, 1e6]")
    side_model_tau_s: float = bounded(1800.0, "[0, 1e7]")
    #: The differential empirical acceleration of a range-only partner's filters, at least
    #: (1 sigma per axis, m/s^2; the ``[formation_filter]`` value when that is larger).  With
    #: no partner fix their dynamics alone carry the directions the ranges hardly see (the
    #: radial offset, the cross-track swing), so it covers what the flight model leaves of the
    #: differential drag once a drag scale is fitted: the density's structure along the orbit
    #: acting on effective ballistic coefficients 40 % apart left 150 nm/s^2 RMS along-track,
    #: 290 at most, on the simulator's pairs (``bench/bench_geometry.py --forces`` prints it).
    diff_dmc_sigma_m_s2: float = bounded(4.0e-7, "[0, 1]")
    #: ... growing with the semi-major axis difference (``[formation_filter]
    #: diff_dmc_sigma_per_km_da_m_s2``, at least), m/s^2 per km: on the operations loop's day 2
    #: the radial error of pairs drifting apart by 1.4-1.6 km/h (da ~200 m) was 1.1-1.3 times
    #: its sigma with the constant sigma alone, 0.6-0.7 for pairs drifting < 0.4 km/h.
    diff_dmc_sigma_per_km_da_m_s2: float = bounded(5.0e-6, "[0, 1]")
    #: The range time-tag lateness prior of a range-only partner's filters (mean, sigma) [s]:
    #: later than ``[formation_filter]``'s centre, which the relayed fixes' geometry pins down.
    #: With no partner fix the lateness trades against the along-track offset, and the
    #: later prior keeps the geometry sweep's radial cells honest (at 0.0: 7 epochs `ok`
    #: past the NEES bound in one cell, 0 at 0.5; docs/range_only.md).
    range_time_offset_s: float = bounded(0.5, "[-60, 60]")
    range_time_offset_sigma_s: float = bounded(0.4, "[0, 60]")
    #: The atmosphere of a range-only partner's filters, and their differential acceleration's
    #: growth with the relative drag (``[formation_filter]``'s keys): the exponential one and
    #: none, as the geometry sweep and its process noise (``diff_dmc_sigma_m_s2``) were
    #: measured with.
    atmosphere: str = bounded("exponential", choices=("exponential", "harris_priester"))
    diff_dmc_relative_drag_fraction: float = bounded(0.0, "[0, 10]")
    #: A partner with no prior starts from its first range placed along-track: "both" sides
    #: (equally likely: ranges cannot tell them apart), or "ahead" / "behind" (the other side
    #: kept at ``wrong_side_probability``); sigmas per axis of those placements and of a
    #: prior that gives none, m and m/s.
    placement: str = bounded("both", choices=("both", "ahead", "behind"))
    prior_sigma_pos_m: float = bounded(1000.0, "(0, 1e8]")
    prior_sigma_vel_m_s: float = bounded(1.0, "(0, 1e4]")
    #: The probability that a prior which gives none (or a one-sided placement) has the
    #: partner on the wrong side: its point mirror is kept with this weight until the
    #: ranges decide (they rarely can: docs/range_only.md).  A mixture whose true side
    #: weighs w has a NEES of about (1 - w) / w, inside its 99.9 % bound (16.3, 3 dof) for
    #: w > 0.058: 0.2 keeps it there when the prior is wrong, even after the ranges' odds
    #: (model error) have moved the weight down threefold.
    wrong_side_probability: float = bounded(0.2, "[0, 0.5]")
    #: An absolute prior whose epoch is further than this from the first range is not used
    #: (a note says so; the partner starts as with no prior), s.
    prior_max_age_s: float = bounded(2 * 86_400.0, "(0, 864000]")
