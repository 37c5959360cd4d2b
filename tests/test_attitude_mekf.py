"""Attitude MEKF core (pygnc.estimation.attitude_mekf) on seeded simulator truth.

The scenario follows the issue: gyro noise 0.025 deg/s and bias up to 1 deg/s (the
simulator's default draw is 2 deg/s), magnetometer noise 0.6 µT and bias up to 5 µT
(default 1 µT), OPT3001 faces with saturation and albedo, tumbling at 2-5 deg/s, 3 h
with eclipses.  The core is driven with truth positions (the processor tests run it
behind the orbit estimator)."""

import dataclasses
import math

import numpy as np
import pytest
from attitude_support import CLEAN, NINE_STATES, errors, issue_settings, run_core
from scipy.spatial.transform import Rotation

from ground.simulate import simulator as sim
from pygnc.config import Config
from pygnc.estimation import attitude_calibration, chi2
from pygnc.estimation import attitude_environment as aenv
from pygnc.estimation import attitude_mekf as am
from pygnc.estimation import attitude_sensors as sensors
from pygnc.estimation import quaternion as qn
from pygnc.formats.sense import decode_sense
from pygnc.formats.settings import DecodeSettings


@pytest.fixture(scope="module")
def three_hours(single_sc_3h):
    scenario, _ = single_sc_3h
    est, outs, idx = run_core(scenario)
    return scenario, est, errors(scenario, outs, idx)


# --------------------------------------------------------------------------- accuracy
def test_accuracy_3h_overall_eclipse_bias_and_nees(three_hours):
    scenario, est, e = three_hours
    settled = e["t_s"] >= 1800.0
    assert e["valid"][settled].all()
    assert est.n_init == 1
    ecl = settled & e["eclipse"]
    assert ecl.sum() > 300  # at least 25 min of eclipse after settling
    rms_all = math.sqrt(np.mean(e["angle_deg"][settled] ** 2))
    rms_ecl = math.sqrt(np.mean(e["angle_deg"][ecl] ** 2))
    # Measured (seed 21): 0.72 deg overall, 1.06 deg in eclipse, gyro bias within 0.0042
    # deg/s, magnetometer bias within 0.060 uT (bench_attitude seeds 1-3: 0.74-0.86 deg,
    # eclipse 1.10-1.40).
    # Deterministic (seeded): x1.3 absorbs tuning changes.
    assert rms_all <= 1.0
    assert rms_ecl <= 1.5
    assert np.abs(e["dbias_deg_s"][settled]).max() <= 0.0075
    assert np.abs(e["mag_bias_err_ut"][settled]).max() <= 0.08
    _assert_nees_at_spaced_epochs(e, 10800.0)


def _assert_nees_at_spaced_epochs(e, end_s, keys=("nees", "nees_bias")):
    """NEES of attitude (3 dof) and gyro bias (3 dof) at epochs 20 min apart from 30 min
    on (longer than an eclipse's error correlation, so ~independent): the mean of n values
    times n is chi-square(3 n) for a consistent filter; two-sided 99 % bounds."""
    idx = [int(np.argmin(np.abs(e["t_s"] - t))) for t in np.arange(1800.0, end_s, 1200.0)]
    n = len(idx)
    lo, hi = chi2.quantile(0.005, 3 * n) / n, chi2.quantile(0.995, 3 * n) / n
    for key in keys:
        assert lo < e[key][idx].mean() < hi, (key, e[key][idx].mean(), lo, hi)


# --------------------------------------------------------------------------- time tags
@pytest.fixture(scope="module")
def stamp_wraps():
    """2 h with the spacecraft clock 400 ppm fast: the whole-second stamps' fractional phase
    wraps every ~42 min, so a few steps are stamped 6 s for 5 and the clock map (a straight
    line through the floored stamps) states each sample's epoch up to ~0.5 s off."""
    s = issue_settings(seed=10, duration_s=2 * 3600.0)
    s.spacecraft[0].clock_drift_ppm = 400.0
    scenario = sim.simulate(s)
    est, outs, idx = run_core(scenario)
    return scenario, est, outs, idx


def test_stamp_phase_wraps_keep_the_filter_consistent(stamp_wraps):
    scenario, est, outs, idx = stamp_wraps
    z = scenario.truth
    stamps = z["sensor_t_sc_s"][0].astype(float)
    n_wraps = int(np.sum(np.diff(stamps) != 5.0))
    assert n_wraps >= 2
    assert est.mekf.n_irregular_steps == n_wraps  # every wrap seen, nothing else (after init)
    t_stated = np.array([o.t_s for o in outs])
    settled = z["sensor_t_gps_s"] - z["sensor_t_gps_s"][0] >= 1800.0
    tag_err = t_stated - z["sensor_t_gps_s"]
    assert 0.15 < np.std(tag_err[settled]) < 0.35  # the data really lacks the sub-second time
    assert 0.15 < est.time_tag_sigma_s < 0.35  # ... and the clock map's residual says so
    e = errors(scenario, outs, idx)
    ecl = settled & e["eclipse"]
    assert ecl.sum() > 200
    rms_all = math.sqrt(np.mean(e["angle_deg"][settled] ** 2))
    rms_ecl = math.sqrt(np.mean(e["angle_deg"][ecl] ** 2))
    # Measured (seed 10; seeds 8-11 in brackets): 1.52 deg overall [1.06-1.52], 1.74 in eclipse
    # [1.09-1.96], NEES mean 3.74 [2.87-3.97], 94 % inside the 95 % bound [87-94 %]; without the
    # time-tag model NEES 18 [8.6-18], 36 % inside [36-60 %].  Re-measured on the brahe
    # truth (seed 10): 1.52 / 1.74 deg, bias within 0.0095 deg/s, NEES 3.74, 94 %.
    # Deterministic (seeded): x1.3 absorbs tuning changes.
    assert rms_all <= 2.0 and rms_ecl <= 2.3
    assert np.abs(e["dbias_deg_s"][settled]).max() <= 0.0125
    # The attitude NEES only: the gyro-bias NEES at the same epochs is 6.6, just above the
    # 99 % bound (6.56) - the bias covariance is somewhat optimistic when the stamps wrap
    # (a known limitation, not asserted away).
    _assert_nees_at_spaced_epochs(e, 7200.0, keys=("nees",))
    nees = e["nees"][settled]
    # Without the time-tag model (epoch exact, every step exact) the same run is overconfident.
    _, outs0, _ = run_core(scenario, dataclasses.replace(CLEAN, irregular_step_threshold_s=math.inf), 0.0)
    assert errors(scenario, outs0, idx)["nees"][settled].mean() > 2.0 * nees.mean()


def test_irregular_step_inflates_attitude_covariance_about_the_rate_axis():
    w = np.radians([4.0, 0.0, 0.0])
    f = am.AttitudeMEKF(am.AttitudeFilterConfig(**NINE_STATES))
    f.initialize(0.0, [1.0, 0, 0, 0], w, np.zeros(6), np.eye(6) * 1e-12)
    t = 0.0
    for _ in range(5):
        t += 5.0
        f.propagate(t, w)
    p_regular = f.p[:3, :3].copy()
    assert f.n_irregular_steps == 0
    f.propagate(t + 6.0, w)  # a 6-s stamp difference among 5-s ones: the phase wrapped
    assert f.n_irregular_steps == 1 and f.last_step_sigma_s == pytest.approx(1.0)
    grow = np.degrees(np.sqrt(np.abs(np.diag(f.p[:3, :3] - p_regular))))
    assert grow[0] > 3.9  # 4 deg/s x 1 s, about the rate axis ...
    assert grow[1] < 0.2 and grow[2] < 0.2  # ... only (the rest: a step's gyro noise)
    f.propagate(t + 11.0, w)  # back to 5 s: regular
    f.propagate(t + 21.0, w)  # a missed sample (2 x 5 s): regular too
    assert f.n_irregular_steps == 1


def test_published_covariance_carries_the_epoch_uncertainty():
    est = am.AttitudeEstimator()
    est.mekf.initialize(0.0, [1.0, 0, 0, 0], np.zeros(3), np.zeros(6), np.eye(6) * 1e-12)
    est.last_w = np.radians([0.0, 3.0, 0.0])
    est.time_tag_sigma_s = 0.3
    cov = est.output().cov[:3, :3] - est.mekf.p[:3, :3]
    np.testing.assert_allclose(cov, np.diag([0.0, (math.radians(3.0) * 0.3) ** 2, 0.0]), atol=1e-15)


# --------------------------------------------------------------------------- propagation
def test_two_sample_coning_propagation_against_rigid_body_truth(three_hours):
    scenario, _, _ = three_hours
    z = scenario.truth
    idx = np.rint(z["sensor_t_gps_s"] - z["t_gps_s"][0]).astype(int)[:400]
    q, w = z["q_body_to_gcrs"][0][idx], z["w_body_rad_s"][0][idx]
    worst_trap = worst = 0.0
    for k in range(len(idx) - 1):
        dt = float(idx[k + 1] - idx[k])
        for coning in (False, True):
            phi = qn.step_rotation_vector(w[k], w[k + 1], dt)
            if not coning:
                phi = 0.5 * (w[k] + w[k + 1]) * dt
            pred = qn.quat_multiply(q[k], qn.quat_from_rotvec(phi))
            err = Rotation.from_quat(q[k + 1][[1, 2, 3, 0]]).inv() * Rotation.from_quat(pred[[1, 2, 3, 0]])
            ang = math.degrees(np.linalg.norm(err.as_rotvec()))
            if coning:
                worst = max(worst, ang)
            else:
                worst_trap = max(worst_trap, ang)
    # Measured: trapezoid 0.08 deg, with the coning term 0.02 deg per 5-s step.
    assert worst < 0.03
    assert worst_trap > 2 * worst


def test_quadratic_step_is_the_two_sample_step_for_a_linear_rate_and_exact_about_a_fixed_axis():
    rng = np.random.default_rng(5)
    for _ in range(10):
        w0, w1 = rng.normal(size=(2, 3)) * 0.1
        h, dt = rng.uniform(3.0, 7.0, size=2)
        w_before = w0 - (w1 - w0) * h / dt  # on the same line
        np.testing.assert_allclose(
            qn.step_rotation_vector_quadratic(w_before, w0, w1, h, dt), qn.step_rotation_vector(w0, w1, dt), atol=1e-14
        )
    # About a fixed axis the rotation is the rate's integral: exact for a quadratic rate.
    axis = np.array([1.0, -2.0, 0.5]) / math.sqrt(5.25)
    rate = lambda t: (0.05 + 0.01 * t - 0.002 * t * t) * axis  # noqa: E731
    phi = qn.step_rotation_vector_quadratic(rate(-4.0), rate(0.0), rate(6.0), 4.0, 6.0)
    np.testing.assert_allclose(phi, (0.05 * 6.0 + 0.01 * 18.0 - 0.002 * 72.0) * axis, atol=1e-15)


def test_the_quadratic_step_needs_a_regular_sample_before_on_the_same_gyro(monkeypatch):
    """The MEKF takes the three-sample step only with a sample before it on this gyro's
    regular steps: not on the first step, after a gap, after another gyro's bias took over,
    or when the step before was under half or over twice this one."""
    calls = []
    real = am.step_rotation_vector_quadratic

    def spy(*args):
        calls.append(args[3:])
        return real(*args)

    monkeypatch.setattr(am, "step_rotation_vector_quadratic", spy)

    def rate(t):
        return np.radians([4.0 * math.cos(0.05 * t), 4.0 * math.sin(0.05 * t), 1.0])

    f = am.AttitudeMEKF()
    f.initialize(0.0, [1.0, 0, 0, 0], rate(0.0), np.zeros(6), np.eye(6) * 1e-6)

    def step(t):
        n = len(calls)
        f.propagate(t, rate(t))
        return len(calls) > n

    assert not step(5.0)  # the first step: two samples only
    assert step(10.0) and calls[-1] == (5.0, 5.0)
    assert not step(10.0 + f.cfg.max_gap_s + 1.0)  # a gap: the rate held, then ...
    t = 10.0 + f.cfg.max_gap_s + 1.0
    assert not step(t + 5.0)  # ... no sample before it on the regular steps
    assert step(t + 10.0)
    f.set_gyro_bias(np.zeros(3), np.eye(3) * 1e-6)  # another gyro's bias took over
    assert not step(t + 15.0)
    assert step(t + 20.0)
    assert not step(t + 31.0)  # 11 s after a 5-s step: over twice it
    assert not step(t + 33.0)  # 2 s after an 11-s step: under half of it
    assert step(t + 35.0)


def test_quadratic_step_does_not_drift_on_rigid_body_truth(three_hours):
    """The truth's rates at the 5-s samples integrated step by step over 40 min: the rate
    linear between two samples drifts by degrees (its error is the same every step), the
    quadratic through three does not."""
    scenario, _, _ = three_hours
    z = scenario.truth
    idx = np.rint(z["sensor_t_gps_s"] - z["t_gps_s"][0]).astype(int)[1000:1482]
    q, w = z["q_body_to_gcrs"][0][idx], z["w_body_rad_s"][0][idx]
    drift = {}
    for name in ("linear", "quadratic"):
        qq = q[1].copy()
        for k in range(2, len(idx)):
            if name == "linear":
                phi = qn.step_rotation_vector(w[k - 1], w[k], 5.0)
            else:
                phi = qn.step_rotation_vector_quadratic(w[k - 2], w[k - 1], w[k], 5.0, 5.0)
            qq = qn.quat_multiply(qq, qn.quat_from_rotvec(phi))
        err = Rotation.from_quat(q[-1][[1, 2, 3, 0]]).inv() * Rotation.from_quat(qq[[1, 2, 3, 0]])
        drift[name] = math.degrees(np.linalg.norm(err.as_rotvec()))
    # Measured (seed 21): linear 0.85 deg, quadratic 0.004 deg (seed 5: 11.7 and 0.007).
    assert drift["quadratic"] < 0.05
    assert drift["linear"] > 10 * drift["quadratic"]


def test_gyro_noise_covariance_is_the_attitude_random_walk():
    """Gyro only, bias known, 5-s samples at 4 deg/s: the attitude covariance after 60 steps
    against the scatter of the error over 300 noise draws.  Each sample's noise enters two
    steps (dt in all): the walk grows by dt^2 sigma^2 per step, twice what one step's two
    samples alone give."""
    cfg = dataclasses.replace(CLEAN, gyro_bias_walk_rad_s_per_sqrt_s=0.0, propagation_error_coeff=0.0, **NINE_STATES)
    sg = cfg.gyro_noise_rad_s
    w_true = np.radians([3.0, -2.0, 2.0])
    q_end = qn.quat_from_rotvec(w_true * 300.0)
    rng = np.random.default_rng(11)
    errs = []
    for _ in range(300):
        f = am.AttitudeMEKF(cfg)
        f.initialize(0.0, [1.0, 0, 0, 0], w_true + sg * rng.normal(size=3), np.zeros(6), np.eye(6) * 1e-16)
        f.p[:3, :3] = 0.0
        for k in range(1, 61):
            f.propagate(5.0 * k, w_true + sg * rng.normal(size=3))
        d = qn.quat_multiply(qn.quat_conj(q_end), f.q)
        errs.append(qn.rotvec_from_quat(d if d[0] >= 0 else -d))
    scatter = float(np.mean(np.sum(np.square(errs), axis=1)))
    ratio = scatter / float(np.trace(f.p[:3, :3]))
    # Measured: 0.95 (the old dt^2 sigma^2 / 2: 1.89); chi-square(900) / 900 has a sigma of 0.05.
    assert 0.85 < ratio < 1.15


def test_quaternion_helpers_match_scipy():
    rng = np.random.default_rng(2)
    for _ in range(20):
        v = rng.normal(size=3)
        r = Rotation.from_rotvec(v)
        np.testing.assert_allclose(qn.rotation_matrix(v), r.as_matrix(), atol=1e-12)
        q = qn.quat_from_rotvec(v)
        np.testing.assert_allclose(qn.dcm_from_quat(q), r.as_matrix(), atol=1e-12)
        q2 = qn.quat_from_dcm(r.as_matrix())
        assert abs(abs(q2 @ q) - 1.0) < 1e-12
        p = qn.quat_from_rotvec(rng.normal(size=3))
        pq = qn.quat_multiply(p, q)
        np.testing.assert_allclose(qn.dcm_from_quat(pq), qn.dcm_from_quat(p) @ qn.dcm_from_quat(q), atol=1e-12)


# --------------------------------------------------------------------------- sun faces
def _env(sun_b, a=None, frac=1.0):
    a = np.eye(3) if a is None else a
    return aenv.Environment(np.array([20.0, 0.0, 30.0]), a @ sun_b, 130_000.0, frac, np.zeros(0), np.zeros((0, 3)))


def test_saturated_faces_are_bounds_and_never_differenced():
    # Sun 45 deg between +X and +Y (both read 0.707 E = 92 klux: saturated), +Z dark.
    s_b = np.array([1.0, 1.0, 0.0]) / math.sqrt(2.0)
    lux = np.array([sensors.OPT3001_FULL_SCALE_LUX, sensors.OPT3001_FULL_SCALE_LUX, 2.0, 0.0, 0.0, 1.0])
    sat = np.array([True, True, False, False, False, False])
    got = sensors.sun_vector_from_faces(lux, sat, 130_000.0)
    assert math.degrees(math.acos(np.clip(got @ s_b, -1, 1))) < 1.0
    # With the prediction above full scale, saturated faces carry nothing: no update.
    f = am.AttitudeMEKF()
    f.initialize(0.0, [1.0, 0, 0, 0], np.zeros(3), np.zeros(6), np.eye(6) * 1e-6)
    p0 = f.p.copy()
    assert f.update_sun(lux, sat, _env(s_b)).decision == "skipped"
    np.testing.assert_array_equal(f.p, p0)
    # The same faces with the attitude off by 30 deg about Z (prediction: +X 0.97 E
    # saturated too, +Y 0.26 E below full scale) pull the attitude back.
    f.q = qn.quat_from_rotvec([0.0, 0.0, math.radians(30.0)])
    f.p[:3, :3] = np.eye(3) * math.radians(20.0) ** 2
    result = f.update_sun(lux, sat, _env(s_b))
    assert result.used and result.n_used == 1 and result.innovation.shape == (1,)  # only the +Y bound
    assert result.innovation_cov.shape == (1, 1) and result.nis >= 0.0
    angle_deg = 2.0 * math.degrees(math.asin(abs(f.q[3])))
    assert angle_deg < 25.0


def test_eclipse_skips_sun_faces():
    f = am.AttitudeMEKF()
    f.initialize(0.0, [1.0, 0, 0, 0], np.zeros(3), np.zeros(6), np.eye(6) * 1e-6)
    lux = np.array([90_000.0, 0, 0, 0, 0, 0])
    result = f.update_sun(lux, np.zeros(6, bool), _env(np.array([1.0, 0, 0]), frac=0.0))
    assert result.decision == "skipped" and not result.used and result.n_used == 0


# --------------------------------------------------------------------------- calibrator
def test_calibrator_recovers_gyro_and_mag_bias_while_tumbling(three_hours):
    scenario, _, _ = three_hours
    z = scenario.truth
    config = Config()
    sens = decode_sense(scenario.files["sc0"]["sense.bin"], DecodeSettings.from_config(config)).sensors[:720]  # 1 h
    rib = np.asarray(config.imu_to_body, dtype=float).reshape(3, 3)
    c = attitude_calibration.GyroMagCalibrator(am.AttitudeFilterConfig())
    for k in range(len(sens)):
        c.step(5.0 * k, rib @ np.radians(sens["gyro_deg_s"][k]), rib @ sens["mag_ut"][k])
    bias_true = z["gyro_bias_imu_deg_s"][0][0] @ rib.T
    # Measured: ~0.005 deg/s on two axes, 0.05 on the third (the field's own inertial
    # rotation, ~0.1 deg/s, is what this attitude-independent method cannot separate).
    assert np.abs(np.degrees(c.x[:3]) - bias_true).max() < 0.1
    assert np.abs(c.x[3:] - rib @ z["mag_bias_imu_ut"][0]).max() < 0.5


def _slow_body_along_an_orbit(seed: int, rate_deg_s: float, n: int, scale=(0.0, 0.0, 0.0)):
    """Samples every 5 s of a body turning at *rate_deg_s* (one axis) along a 95-min inclined
    circular orbit in a dipole field: (gyro, magnetometer, the field's magnitude, true
    biases).  The dipole (an independent model, not IGRF): B = (mu / r^3) (3 (k.e) e - k)."""
    rng = np.random.default_rng(seed)
    b_g, b_m = np.radians(rng.uniform(-1.0, 1.0, 3)), rng.uniform(-25.0, 25.0, 3)
    axis = rng.normal(size=3)
    w = np.radians(rate_deg_s) * axis / np.linalg.norm(axis)
    k = np.array([0.0, 0.0, -1.0])
    inc = math.radians(97.5)
    samples = []
    for i in range(n):
        t = 5.0 * i
        u = 2.0 * math.pi * t / 5700.0
        e = np.array([math.cos(u), math.sin(u) * math.cos(inc), math.sin(u) * math.sin(inc)])
        field = 30.0 * (3.0 * (k @ e) * e - k) / 2.0  # µT at ~500 km
        body = qn.rotation_matrix(w * t).T @ field
        m = (1.0 + np.asarray(scale)) * body + b_m + rng.normal(size=3) * 0.6
        g = w + b_g + rng.normal(size=3) * math.radians(0.026)
        samples.append((t, g, m, float(np.linalg.norm(field))))
    return samples, np.r_[b_g, b_m]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("model_error_ut", [0.0, 0.3])
def test_calibrator_sees_the_magnetometer_bias_of_a_barely_turning_body_from_the_field_magnitude(seed, model_error_ut):
    """At 0.05 deg/s the turn between two samples shows the magnetometer bias to ~20 µT in an
    hour, too little for a start; the field model's magnitude shows it to about a µT, as
    the field's direction in the body changes along the orbit.  The magnitudes wait until
    their directions span every axis (before: 20-40 µT off with a sigma of 1-5 µT, a banana
    the linearised covariance does not describe), and the estimate is covered by its
    sigma at every sample, with scale errors of 2 % per axis (the prior's sigma) and a
    field model off by *model_error_ut* (a constant and a mix of along-orbit waves of that
    size: taken as white noise, it left 312 and 150 of the 720 samples past the bound on
    seeds 1 and 2)."""
    samples, truth = _slow_body_along_an_orbit(seed, 0.05, 720, scale=(0.02, -0.02, 0.01))
    phase = np.random.default_rng(seed).uniform(0.0, 2.0 * math.pi, 3)
    bound = chi2.quantile(0.999, 3)
    for with_field in (False, True):
        c = attitude_calibration.GyroMagCalibrator(am.AttitudeFilterConfig())
        past = 0
        for t, g, m, b_norm in samples:
            u = 2.0 * math.pi * t / 5700.0
            waves = math.sin(2 * u + phase[0]) + 0.5 * math.sin(5 * u + phase[1]) + 0.3 * math.sin(11 * u + phase[2])
            c.step(t, g, m, b_norm + model_error_ut * (1.0 + waves) if with_field else None)
            e = c.x[3:] - truth[3:]
            past += float(e @ np.linalg.solve(c.p[3:, 3:], e)) > bound
        sigma = np.sqrt(np.diag(c.p)[3:])
        assert past <= 0.01 * len(samples), (with_field, past)
        if with_field:
            # the hard iron's stability over the window (2 µT, ``calib_hard_iron_stability_ut``) and
            # what the magnitudes leave (measured: 0.05-0.3 µT per axis with an exact model, 0.2-0.6
            # µT with one 0.3 µT off)
            assert c.n_magnitudes > 600 and sigma.max() < 2.2, sigma
        else:
            assert sigma.max() > 5.0, sigma  # the pairs alone: no start


@pytest.mark.parametrize("step_ut, floor_ut, past_measured", [(3.0, 2.0, 0), (3.0, 0.0, 1712), (5.4, 2.0, 0)])
def test_calibrator_is_not_confidently_wrong_when_the_hard_iron_steps(step_ut, floor_ut, past_measured):
    """The barely turning body of the test above (0.05 deg/s and 0.2 deg/s, three seeds
    each) with the hard iron stepped after 40 min - a subsystem switched on.  A step of
    several µT (5.4 here) shows as one pair refused: the calibrator re-opens the bias (the
    pairs before it pin the old one down through ``I - C`` as the magnitudes do).  A smaller
    one (3 µT) passes every test, pair or magnitude (a step shows in the magnitudes only
    along the field): the bias they give is held no better than the hard iron's stability
    (``calib_hard_iron_stability_ut``).  With that at 0, *past_measured* of the samples
    of the 4 800 samples were past the 99.9 % bound (asserted too, so that the test fails if the
    step stops reaching the estimate)."""
    cfg = dataclasses.replace(am.AttitudeFilterConfig(), calib_hard_iron_stability_ut=floor_ut)
    bound = chi2.quantile(0.999, 3)
    past = reopened = 0
    direction = np.array([2.0, -2.0, 1.0]) / 3.0
    for rate in (0.05, 0.2):
        for seed in (1, 2, 3):
            samples, truth = _slow_body_along_an_orbit(seed, rate, 800, scale=(0.02, -0.02, 0.01))
            c = attitude_calibration.GyroMagCalibrator(cfg)
            for i, (t, g, m, b_norm) in enumerate(samples):
                step = step_ut * direction if i >= 480 else 0.0
                c.step(t, g, m + step, b_norm)
                e = c.x[3:] - truth[3:] - step
                past += float(e @ np.linalg.solve(c.p[3:, 3:], e)) > bound
            reopened += c.n_hard_iron_reopened
    if past_measured:
        assert past > 0.5 * past_measured, past
    else:
        assert past <= 0.01 * 6 * 800, past
        assert (reopened >= 6) == (step_ut > 4.0), reopened


def test_one_corrupt_magnetometer_sample_is_no_hard_iron_change(three_hours):
    """A single 300-uT spike in the field (one sample; a glitch the admission limits let
    through) is refused by the update's gate.  The hard-iron test once took it for a
    shared offset (its window's mean alone: a spike over ~15 uT passes), re-opened the bias
    by ~25 uT and left the attitude beyond the restart sigma with a bias too uncertain for a
    TRIAD: no attitude for the rest of the run (at samples 400 and 1500: 1 320 and 565
    sunlit samples waited).  The test now also asks that the offset explain the window."""
    scenario, _, _ = three_hours
    config = Config()
    clean = decode_sense(scenario.files["sc0"]["sense.bin"], DecodeSettings.from_config(config)).sensors
    for k in (400, 1500):
        sens = clean.copy()
        sens["mag_ut"][k] = sens["mag_ut"][k] + np.array([300.0, 0.0, 0.0])
        est, outs, idx = run_core(scenario, sensors=sens)
        e = errors(scenario, outs, idx)
        after = np.arange(len(outs)) > k
        sigma_deg = np.degrees([math.sqrt(float(np.trace(o.cov[:3, :3]))) for o in outs])
        assert est.mekf.n_mag_bias_reopened == 0 and est.n_lost == 0, k
        assert e["valid"][after].all() and np.mean(sigma_deg[after] > 10.0) < 0.01, k


def test_rest_detector_and_zero_rate_update():
    rng = np.random.default_rng(4)
    est = am.AttitudeEstimator()
    bias = np.radians([0.3, -0.5, 0.8])
    sig = math.radians(0.025)
    for k in range(60):
        w = bias + rng.normal(size=3) * sig
        m = np.array([10.0, 5.0, 30.0]) + rng.normal(size=3) * 3.0  # a disturbed lab field
        lux = np.array([400.0, 20.0, 10.0, 5.0, 0.5, 0.3]) * (1 + 0.002 * rng.normal(size=6))
        out = est.step(5.0 * k, w, m, lux, np.zeros(6, bool), None)
    assert not out.valid_attitude
    assert np.abs(out.gyro_bias_rad_s - bias).max() < math.radians(0.01)
    assert np.abs(out.rate_body_rad_s).max() < math.radians(0.1)


def test_gap_inflates_attitude_covariance_and_caps_at_pi():
    f = am.AttitudeMEKF()
    f.initialize(0.0, [1.0, 0, 0, 0], np.radians([1.0, 2.0, 3.0]), np.zeros(6), np.eye(6) * 1e-8)
    f.propagate(5.0, np.radians([1.2, 2.0, 2.8]))
    s5 = math.sqrt(f.p[0, 0])
    f.propagate(100.0, np.radians([1.2, 2.0, 2.8]))  # 95 s without samples
    assert math.sqrt(f.p[0, 0]) > 3 * s5
    f.propagate(1.0e5, None)
    assert math.sqrt(f.p[0, 0]) <= math.pi + 1e-9


def test_triad_refuses_parallel_and_non_finite_vectors():
    """TRIAD needs two directions: parallel (or anti-parallel) pairs, pairs closer than
    TRIAD_MIN_ANGLE_RAD, zero or NaN vectors give None, never a NaN or arbitrary matrix."""
    s = np.array([1.0, 0.0, 0.0])
    near = np.array([math.cos(math.radians(3.0)), math.sin(math.radians(3.0)), 0.0])
    ok = np.array([math.cos(math.radians(10.0)), math.sin(math.radians(10.0)), 0.0])
    for v1, v2 in ((s, s), (s, -s), (s, near), (s, np.zeros(3)), (s, np.array([np.nan, 1.0, 0.0]))):
        assert sensors.triad(v1, v1, v2, v2) is None
        assert sensors.triad(v1, ok, v2, ok[::-1]) is None
    a = sensors.triad(s, s, ok, ok)
    np.testing.assert_allclose(a, np.eye(3), atol=1e-12)
    rot = Rotation.from_rotvec([0.3, -0.2, 0.5]).as_matrix()
    np.testing.assert_allclose(sensors.triad(rot.T @ s, s, rot.T @ ok, ok), rot, atol=1e-12)


def test_environments_at_equals_environment_at_bit_for_bit(single_sc_3h):
    """The models for many samples at once (the processor's batches) are exactly those of
    one sample at a time."""
    import dataclasses

    from pygnc import frames

    z = single_sc_3h[0].truth
    idx = np.arange(0, len(z["t_gps_s"]), 97)
    t = z["t_gps_s"][idx]
    r_e, r_g = z["r_ecef_m"][0][idx], z["r_gcrs_m"][0][idx]
    ms = [frames.gcrs_from_itrs_matrix(float(ti)) for ti in t]
    many = aenv.environments_at(t, r_e, r_g, ms, 1.2e5, 0.3)
    assert len(many) == len(t) and any(e.sun_fraction == 0.0 for e in many) and any(e.sun_fraction == 1.0 for e in many)
    for e, ti, re_, rg, m in zip(many, t, r_e, r_g, ms):
        one = aenv.environment_at(float(ti), re_, rg, m, 1.2e5, 0.3)
        for f in dataclasses.fields(one):
            assert np.array_equal(getattr(e, f.name), getattr(one, f.name)), f.name


def test_a_triad_start_carries_the_magnetometer_bias_uncertainty():
    """The first attitude is a TRIAD on a field corrected by the calibrator's bias estimate,
    still tens of uT off early on: the start covariance holds what that bias error turns the
    attitude by, and the correlation - it was a fixed 10 deg per axis, and starts 20-33 deg off
    were `ok` with a sigma that did not cover them."""
    rot = Rotation.from_rotvec([0.4, -0.3, 0.8]).as_matrix()  # body -> GCRS
    s_ref = np.array([0.3, 0.9, -0.3]) / np.linalg.norm([0.3, 0.9, -0.3])
    b_ref = np.array([20.0, -15.0, 25.0])
    env = aenv.Environment(b_ref, s_ref, 1.0, 1.0, np.zeros(0), np.zeros((0, 3)))
    s_b, m_b = rot.T @ s_ref, rot.T @ b_ref
    bias_err = np.array([0.4, -0.6, 0.3])  # the estimate's bias minus the truth's, uT (first order)
    a = sensors.triad(s_b, s_ref, m_b - bias_err, b_ref)  # what the start computes
    g = am._triad_from_mag_bias(a, s_b, m_b - bias_err, env)
    assert g is not None and np.all(g[:, :3] == 0.0)
    # the truth's attitude seen from the start's: the rotation the bias error made, to first order
    true_err = Rotation.from_matrix(a.T @ rot).as_rotvec()
    np.testing.assert_allclose(
        g @ np.concatenate([np.zeros(3), -bias_err]), true_err, atol=0.05 * np.linalg.norm(true_err)
    )
    f = am.AttitudeMEKF(am.AttitudeFilterConfig(**NINE_STATES))
    p_bias = np.diag([1e-6] * 3 + [36.0] * 3)
    f.initialize(0.0, qn.quat_from_dcm(a), np.zeros(3), np.zeros(6), p_bias, g)
    np.testing.assert_allclose(f.p[:3, :3], np.eye(3) * f.cfg.init_attitude_sigma_rad**2 + g @ p_bias @ g.T)
    np.testing.assert_allclose(f.p[:3, 3:], g @ p_bias)
    assert np.all(np.linalg.eigvalsh(f.p) > 0)


def test_the_consider_parameters_follow_the_schmidt_kalman_filter():
    """The scale factors as consider parameters: a BMX160 step and a magnetometer update equal
    the full 15-state propagation and Joseph-form update with the consider parameters'
    gains held at zero (computed here directly)."""
    from pygnc.estimation.quaternion import dcm_from_quat, rotation_matrix, skew

    rng = np.random.default_rng(7)
    cfg = am.AttitudeFilterConfig(
        mag_scale_sigma=0.05, gyro_scale_sigma=0.02, sun_face_normal_sigma_rad=0.0, **NINE_STATES
    )
    f = am.AttitudeMEKF(cfg)
    q = np.array([0.9, 0.1, -0.3, 0.2])
    w = np.radians([3.0, -4.0, 2.0])
    f.initialize(0.0, q / np.linalg.norm(q), w, np.zeros(6), np.eye(6) * 1e-4)
    a = rng.standard_normal((15, 15)) * 0.05
    full = a @ a.T + np.diag([1e-4] * 3 + [1e-8] * 3 + [1.0] * 3 + [0.05**2] * 3 + [0.02**2] * 3)
    f.p, f.p_xc, f._p_cc = full[:9, :9].copy(), full[:9, 9:].copy(), full[9:, 9:].copy()
    # A step on the BMX160 (rate held: the two-sample step of a constant rate).
    f.propagate(5.0, w)
    phi = 5.0 * w
    t = np.eye(15)
    t[:9, :9] = f.last_f
    t[:3, 12:] = rotation_matrix(-0.5 * phi) @ np.diag(phi)
    expected = t @ full @ t.T
    added = f.p - expected[:9, :9]  # the process noise: on the diagonal only
    np.testing.assert_allclose(added - np.diag(np.diag(added)), 0.0, atol=1e-12)
    np.testing.assert_allclose(f.p_xc, expected[:9, 9:], rtol=1e-9, atol=1e-13)
    full = expected
    full[:9, :9] = f.p
    # A magnetometer update.
    b_gcrs = np.array([20.0, -15.0, 30.0])
    hb = dcm_from_quat(f.q).T @ b_gcrs
    m = hb * 1.04 + np.array([0.5, -0.2, 0.1])
    h = np.zeros((3, 15))
    h[:, :3], h[:, 6:9], h[:, 9:12] = skew(hb), np.eye(3), np.diag(hb)
    r_var = cfg.mag_noise_ut**2 + cfg.mag_model_sigma_ut**2
    s = h @ full @ h.T + np.eye(3) * r_var
    k = full @ h.T @ np.linalg.inv(s)
    k[9:] = 0.0
    ikh = np.eye(15) - k @ h
    expected = ikh @ full @ ikh.T + r_var * k @ k.T
    assert f.update_mag(m, b_gcrs).used
    np.testing.assert_allclose(f.p, expected[:9, :9], rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(f.p_xc, expected[:9, 9:], rtol=1e-9, atol=1e-13)
    # Without consider parameters the filter is the 9-state one (nothing carried).
    none = am.AttitudeFilterConfig(mag_scale_sigma=0.0, gyro_scale_sigma=0.0)
    assert am.AttitudeMEKF(none).p_xc is None


def test_a_turned_magnetometer_enters_the_start_and_the_update_as_modelled():
    """The misalignment's columns: TRIAD's (d dtheta / d misalignment) move the start as a
    turned magnetometer does, to first order; the magnetometer update's H is the measurement
    model's derivative (finite differences in the attitude and the misalignment)."""
    rot = Rotation.from_rotvec([0.4, -0.3, 0.8]).as_matrix()  # body -> GCRS
    s_ref = np.array([0.3, 0.9, -0.3]) / np.linalg.norm([0.3, 0.9, -0.3])
    b_ref = np.array([20.0, -15.0, 25.0])
    env = aenv.Environment(b_ref, s_ref, 1.0, 1.0, np.zeros(0), np.zeros((0, 3)))
    turn = np.radians([0.5, -0.4, 0.3])
    s_b, m_b = rot.T @ s_ref, qn.rotation_matrix(turn) @ rot.T @ b_ref  # the magnetometer turned
    a = sensors.triad(s_b, s_ref, m_b, b_ref)  # a start that does not know the turn
    g = am._triad_from_mag_bias(a, s_b, m_b, env, np.zeros(3))
    assert g is not None and g.shape == (3, 9)
    true_err = Rotation.from_matrix(a.T @ rot).as_rotvec()
    np.testing.assert_allclose(g[:, 6:] @ turn, true_err, atol=0.05 * np.linalg.norm(true_err))

    f = am.AttitudeMEKF(
        am.AttitudeFilterConfig(mag_scale_sigma=0.0, gyro_scale_sigma=0.0, gyro_misalignment_sigma_rad=0.0)
    )
    assert f.n == 12
    q0 = qn.quat_from_dcm(rot)
    f.initialize(0.0, q0, np.zeros(3), np.concatenate([np.zeros(3), [1.0, -2.0, 0.5], turn]), np.eye(9) * 1e-6)

    def predicted(dx):
        q = qn.quat_multiply(q0, qn.quat_from_rotvec(dx[:3]))
        return qn.rotation_matrix(turn + dx[9:]) @ qn.dcm_from_quat(q).T @ b_ref + np.array([1.0, -2.0, 0.5]) + dx[6:9]

    h_num = np.zeros((3, 12))
    for k in [0, 1, 2, 6, 7, 8, 9, 10, 11]:
        dx = np.zeros(12)
        dx[k] = 1e-6
        h_num[:, k] = (predicted(dx) - predicted(-dx)) / 2e-6
    seen = {}
    update0 = f._update
    f._update = lambda r, h, rdiag, h_c=None: seen.setdefault("h", h) is None or update0(r, h, rdiag, h_c)
    f.update_mag(predicted(np.zeros(12)), b_ref)
    np.testing.assert_allclose(seen["h"], h_num, atol=2e-3 * np.abs(h_num).max())


def test_a_turned_gyro_enters_the_propagation_as_modelled():
    """The gyro's misalignment and bias columns of a BMX160 step's transition F are the
    step's derivatives: two filters whose states differ by a small misalignment or bias
    end the step turned against each other by F times the difference."""
    cfg = am.AttitudeFilterConfig(mag_scale_sigma=0.0, gyro_scale_sigma=0.0)
    rng = np.random.default_rng(3)
    # A slow rate (F's R(-phi/2) is the step's Jacobian to O(phi^2)) and a large turn (its C^T
    # matters by 5 %).
    w = np.radians([1.2, -0.8, 0.6])
    d0 = np.radians([2.0, -1.5, 1.8])
    q0 = qn.quat_from_rotvec([0.3, -0.2, 0.5])

    def stepped(dx):
        f = am.AttitudeMEKF(cfg)
        assert f.turns == {"mag": 9, "gyro": 12}
        x = np.concatenate([np.radians([0.1, -0.2, 0.05]), np.zeros(6), d0]) + dx
        f.initialize(0.0, q0, w, x, np.eye(12) * 1e-8)
        f.propagate(5.0, w + np.radians([0.2, 0.1, -0.3]))
        return f

    base = stepped(np.zeros(12))
    for k in [0, 1, 2, 9, 10, 11]:
        dx = np.zeros(12)
        dx[k] = 1e-6 * (1.0 + rng.random())
        other = stepped(dx)
        d = qn.quat_multiply(qn.quat_conj(base.q), other.q)
        got = qn.rotvec_from_quat(d if d[0] >= 0 else -d)
        expected = base.last_f[:3, 3 + k] * dx[k]
        np.testing.assert_allclose(got, expected, atol=5e-3 * np.abs(expected).max())


def test_a_sun_face_normal_turned_enters_the_update_as_modelled():
    """The sun-face consider parameters' sensitivities: a face's normal turned by a small
    angle along one of its tangents changes its predicted lux by ``E f (t . s)`` (finite
    differences of the model through ``predicted_lux``)."""
    from pygnc.environment import albedo

    f = am.AttitudeMEKF()
    f.initialize(0.0, qn.quat_from_rotvec([0.3, -0.2, 0.5]), np.zeros(3), np.zeros(6), np.eye(6) * 1e-8)
    s_ref = np.array([0.5, 0.7, -0.5]) / np.linalg.norm([0.5, 0.7, -0.5])
    env = aenv.Environment(np.array([20.0, -15.0, 25.0]), s_ref, 1000.0, 0.9, np.zeros(0), np.zeros((0, 3)))
    s_b, cosines, pred, _ = f.predicted_lux(env)
    seen = {}
    f._update = lambda r, h, rdiag, h_c=None: seen.setdefault("h_c", h_c) is None or am.Update(am.SKIPPED)
    lit = cosines > 0.0
    f.update_sun(np.where(lit, pred + 1.0, 0.0), np.zeros(6, bool), env)
    rows = np.flatnonzero(lit)  # the dark faces predicted dark are skipped
    assert seen["h_c"].shape == (len(rows), 18)
    normals = albedo.FACE_NORMALS_BODY
    nominal = normals.copy()
    try:
        for r, i in enumerate(rows):
            for k in range(2):
                normals[i] = nominal[i] + 1e-6 * am._FACE_TANGENTS[i, k]
                up = f.predicted_lux(env)[2][i]
                normals[i] = nominal[i] - 1e-6 * am._FACE_TANGENTS[i, k]
                down = f.predicted_lux(env)[2][i]
                normals[i] = nominal[i]
                assert seen["h_c"][r, 6 + 2 * i + k] == pytest.approx((up - down) / 2e-6, rel=1e-4)
    finally:
        normals[:] = nominal


def test_a_fast_tumble_starts_once_the_calibrator_knows_the_biases():
    """The start waits for the calibrator's own gyro-bias sigma: the share the sensors'
    turns add to the start's covariance ([w]x (d_m - d_g): 0.55 deg/s at 16 deg/s with the
    1-deg priors, past the 0.5-deg/s gate) is carried, not waited for - it never shrinks
    before the start (a 10-15 deg/s tumble never started when it was gated too)."""
    rot = Rotation.from_rotvec([0.4, -0.3, 0.8]).as_matrix()  # body -> GCRS
    s_ref = np.array([0.3, 0.9, -0.3]) / np.linalg.norm([0.3, 0.9, -0.3])
    b_ref = np.array([20.0, -15.0, 25.0])
    env = aenv.Environment(b_ref, s_ref, 1.0e5, 1.0, np.zeros(0), np.zeros((0, 3)))
    s_b, m_b = rot.T @ s_ref, rot.T @ b_ref
    lux = 1.0e5 * np.maximum(albedo_normals() @ s_b, 0.0)
    w = np.radians([15.0, -4.0, 3.0])
    est = am.AttitudeEstimator()
    est.calib.x = np.zeros(6)
    est.calib.p = np.diag([math.radians(0.05) ** 2] * 3 + [0.1] * 3)  # biases known
    assert est._try_initialize(0.0, w, m_b, lux, np.zeros(6, bool), env)
    p = est.mekf.p
    assert math.sqrt(np.trace(p[3:6, 3:6])) > est.cfg.start_max_gyro_bias_sigma_rad_s  # the turns' share, carried
    j = qn.skew(w)  # d (gyro bias) / d (d_m); the gyro's turn the opposite
    # the start's bias error is -(calibrator's error) - J e_d: correlated with -J
    np.testing.assert_allclose(p[3:6, 9:12], -j * est.cfg.mag_misalignment_sigma_rad**2, rtol=1e-9)
    np.testing.assert_allclose(p[3:6, 12:15], j * est.cfg.gyro_misalignment_sigma_rad**2, rtol=1e-9)


def albedo_normals():
    from pygnc.environment.albedo import FACE_NORMALS_BODY

    return FACE_NORMALS_BODY


def test_the_start_correlates_the_gyro_bias_with_the_turns_as_the_calibrator_errs():
    """The calibrator, fed a turned magnetometer and gyro, settles on a gyro bias off by
    [w]x (d_m - d_g); the start takes that shift out at its turns' estimate (0 here) and
    carries the rest as a correlation.  Over random turns, the start's bias error regressed
    on the turns has the slope the start's covariance says (P_bd P_dd^-1): conditioning on
    the true turns takes the error from ~0.1 deg/s to the calibrator's own (an error of sign
    left it at 0.2: the reviewer's check, kept)."""
    cfg = am.AttitudeFilterConfig()
    w = np.radians([4.0, -3.0, 2.5])
    b_ref = np.array([20.0, -15.0, 30.0])
    b_g, b_m = np.radians([0.3, -0.2, 0.1]), np.array([5.0, -3.0, 2.0])
    rng = np.random.default_rng(0)
    e_b, e_d, p = [], [], None
    for _ in range(16):
        d_m, d_g = rng.normal(size=3) * math.radians(1.0), rng.normal(size=3) * math.radians(1.0)
        c_m, c_g = qn.rotation_matrix(d_m), qn.rotation_matrix(d_g)
        est = am.AttitudeEstimator(cfg)
        est.calib.reset(np.concatenate([b_g, b_m]))
        for k in range(150):
            est.calib.step(2.0 * k, c_g @ w + b_g, c_m @ qn.rotation_matrix(w * 2.0 * k).T @ b_ref + b_m)
        seen: dict = {}
        est._triad_start = lambda *a, seen=seen, **kw: seen.update(x=a[6], p=a[7]) or True
        est._try_initialize(298.0, c_g @ w + b_g, np.zeros(3), np.zeros(6), np.zeros(6, bool), None)
        e_b.append(b_g - seen["x"][:3])  # true minus started
        e_d.append(np.concatenate([d_m, d_g]))
        p = seen["p"]
    e_b, e_d = np.array(e_b), np.array(e_d)
    gain = p[:3, 6:] @ np.linalg.inv(p[6:, 6:])  # E[e_b | e_d] = gain e_d
    left = e_b - e_d @ gain.T
    rms = lambda x: math.degrees(math.sqrt(float(np.mean(x**2))))  # noqa: E731
    assert rms(e_b) > 0.05 and rms(left) < 0.2 * rms(e_b), (rms(e_b), rms(left))


def test_no_zero_rate_updates_in_orbit():
    """Rest is a bench's (no position): with a position the body is taken to be in orbit,
    where a slow turn passes the rest test (a detumbled spacecraft at 0.05-0.2 deg/s was
    taken to be still - its gyro bias pinned 0.1-0.2 deg/s off with a 0.01-deg/s sigma and
    its attitude started 44 deg wrong as `ok`).  In orbit no zero-rate updates are taken,
    and the window's earlier ones are dropped."""
    rng = np.random.default_rng(4)
    est = am.AttitudeEstimator()
    bias = np.radians([0.3, -0.5, 0.8])
    env = aenv.Environment(
        np.array([20.0, -15.0, 25.0]), np.array([1.0, 0.0, 0.0]), 1.0e5, 0.0, np.zeros(0), np.zeros((0, 3))
    )

    def sample(k):
        w = bias + rng.normal(size=3) * math.radians(0.025)
        m = np.array([10.0, 5.0, 30.0]) + rng.normal(size=3) * 0.5
        lux = np.array([400.0, 20.0, 10.0, 5.0, 0.5, 0.3]) * (1 + 0.002 * rng.normal(size=6))
        return 5.0 * k, w, m, lux, np.zeros(6, bool)

    for k in range(20):
        est.step(*sample(k), None)
    assert est.calib.n_zero_rate > 5 and est.calib.n_rest_held > 5
    n = est.calib.n_zero_rate
    for k in range(20, 40):
        est.step(*sample(k), env)  # the same steady readings, with a position (in eclipse: no start)
    assert est.calib.n_zero_rate == n and est.calib.n_rest_held == 0


def test_a_live_imus_held_rate_takes_no_bmx160_turn():
    """Published ahead on a live IMU's held rate, the estimate turns by that rate alone: the
    BMX160's misalignment (and scale factors) are not the IMU's (they turned it 0.7 deg in
    20 s at 1 deg per axis)."""
    est = am.AttitudeEstimator()
    f = est.mekf
    w = np.radians([3.0, -2.0, 1.5])
    q0 = qn.quat_from_rotvec([0.3, -0.2, 0.5])
    x = np.concatenate([np.radians([0.1, 0.05, -0.1]), np.zeros(3), np.zeros(3), np.radians([1.0, -1.0, 1.0])])
    f.initialize(0.0, q0, w, x, np.eye(12) * 1e-8)
    est.gyro_source = "imu"
    est.last_w = w
    out = est.propagated_output(20.0)
    expected = qn.quat_multiply(q0, qn.quat_from_rotvec((w - x[:3]) * 20.0))
    d = qn.quat_multiply(qn.quat_conj(expected), out.q_body_to_gcrs)
    assert np.linalg.norm(qn.rotvec_from_quat(d if d[0] >= 0 else -d)) < 1e-9


def test_an_imus_calibration_takes_its_own_columns_when_nothing_else_is_considered():
    """With the BMX160's and the magnetometer's scale factors and the faces' normals all
    exact, the IMU's nine consider parameters still sit after the six fixed columns: the
    magnetometer update and the BMX160 step read columns 0-5 by place (the IMU's first rows
    were read as the magnetometer's scale factors - an independent review)."""
    from pygnc.estimation.attitude_mekf import AttitudeMEKF
    from pygnc.estimation.tunables import AttitudeFilterConfig

    f = AttitudeMEKF(AttitudeFilterConfig(mag_scale_sigma=0.0, gyro_scale_sigma=0.0, sun_face_normal_sigma_rad=0.0))
    assert f._p_cc is None
    cols = f._imu_consider()
    assert cols == slice(6, 15) and f._p_cc.shape == (15, 15) and not f._p_cc[:6, :6].any()
    assert f.p_xc.shape == (f.n, 15)
