"""Attitude estimation: multiplicative EKF (Markley-Crassidis) on gyro, magnetometer and sun faces.

Everything here is pure computation on arrays in fixed units: time in seconds (GPS time
when known), angles in radians, rates in rad/s, magnetic field in µT, illuminance in lux.
Frames: **body** axes for every sensor vector (the caller applies the IMU-to-body
rotation and scale factors), **GCRS** for the references.  Quaternions are scalar-first
and rotate body vectors into GCRS: ``v_gcrs = A(q) v_body``.

State
-----
``q`` (reference quaternion) and a 9-element error state with covariance ``P``:

    0-2  dtheta        attitude error, body axes, rad  (q_true = q (x) [1, dtheta/2])
    3-5  gyro_bias     rad/s, body axes  (omega_true = omega_measured - gyro_bias)
    6-8  mag_bias      µT, body axes     (hard iron: m_measured = A^T B_gcrs + mag_bias)

Propagation (between two gyro samples, typically 5 s apart while tumbling at up to
5 deg/s, i.e. 25 deg per step): the body rotation over the interval is the rotation
vector ``(w0 + w1)/2 dt + (w0 x w1) dt^2 / 12`` (trapezoid plus the two-sample coning
term, i.e. the third-order Magnus expansion for a rate linear in time).  Against the
simulator's rigid-body truth (torque-free nutation of an asymmetric body plus
gravity-gradient, 4.4 deg/s, 5-s samples) the trapezoid alone errs by 0.03-0.05 deg rms
per step (max 0.08 deg), with the coning term by 0.004-0.01 deg rms (max 0.019 deg); no
inertia or Euler equations are needed at this level.  Process noise per step: gyro white
noise on the two samples ``dt^2 sigma_g^2 / 2`` per axis, plus the remaining propagation
error modelled as ``(c_prop (|w| dt)^3)^2`` (the residual of the Magnus series grows as
the cube of the step angle; ``c_prop = 0.01`` is about twice the measured residual), plus
bias random walks.  A gap longer than ``max_gap_s`` cannot be bridged from two samples:
the attitude is propagated with the latest rate and its covariance is inflated.

Measurements (each group gated by its normalised innovation squared):

* magnetometer: the full vector (µT), ``h = A^T B_igrf + mag_bias``; ``H = [[h_b]x, 0, I]``.
  R = (noise^2 + field-model error^2) I.
* six sun faces, each its own scalar: ``lux_i = E f max(0, n_i.s_b) + E0 albedo_i`` with
  ``E0`` the direct-sun lux at the spacecraft's distance, ``f`` the visible fraction of the
  solar disc (eclipse model), ``albedo_i`` from :mod:`pygnc.environment.albedo` at the
  predicted attitude.  A saturated face (OPT3001 full scale) is a *bound*: it is used
  (as ``lux = full scale``) only while the prediction is below full scale, pulling it up;
  otherwise skipped.  A dark face that the prediction also has dark carries no
  information and is skipped.  Faces are never differenced.  R per face: relative noise,
  noise floor, cosine-response error, and a fraction of the modelled albedo plus a floor
  (the albedo model's error: real reflectivity varies 0.1-0.8).  In eclipse (f < 0.05)
  the sun faces are not used: the filter runs on gyro and magnetometer.

Initialisation: an *attitude-independent* calibrator (:class:`GyroMagCalibrator`) runs
from the first sample: consecutive magnetometer vectors, transported by the gyro
rotation, measure the gyro bias and the magnetometer bias without any reference (the
field is nearly fixed in inertial space over 5 s).  It provides rates and biases while
there is no attitude (no position, no sun yet), and the initial biases of the MEKF.
The MEKF starts from TRIAD (sun vector from the faces, saturation handled via the unit
norm, albedo subtracted after a first pass; magnetometer second) the first time the sun
is visible with a position.  After ``max_rejections`` consecutive rejected magnetometer
updates the filter declares itself lost and re-initialises the same way.

Time tags: the spacecraft clock stamps samples in whole seconds (floor) and the clock map
(a straight line fitted to the fixes' floored stamps) turns a stamp into the sample's
*stated* epoch.  The map is unbiased (it absorbs the mean half second, so nothing is added
here), but while the clock's drift (up to +-20 ppm) moves the stamps' fractional phase
through a whole second, the stated epoch is off the true one by up to ~0.5 s (uniform: 0.29 s
RMS; none at all while the phase does not wrap).  That offset changes slowly, so it is not
white measurement noise: the field and sun vectors measured at the true instant (the
references move < 0.05 deg in 0.5 s) pin the state to the *true* sample instant, and the
offset is added where it belongs:

* the published covariance is at the stated epoch: ``P + sigma_t^2 w w^T`` (the attitude
  there is off by ``w dt`` about the rate axis), ``sigma_t`` the epoch's 1-sigma
  (``time_tag_sigma_s``, default 1/sqrt(12) s; the processor passes the clock map's residual
  RMS, which measures exactly this scatter on the fixes);
* a step's length is exact while its stamp difference equals the recent ones (the phase
  moves ~1e-4 s per step); a step that differs by ``d`` from a whole number of the usual
  interval (the phase wrapped: 4 or 6 s for 5; a late sample: 7 then 3) adds
  ``d^2 w w^T`` to the attitude covariance.  The stamp difference is still what is
  integrated: the data does not say which of the two is right.

Measured (``bench/bench_attitude.py``: the issue's scenario, 5 seeds x 3 h, after 30 min,
truth positions, stated epochs through the clock map; errors at the stated epoch; NEES with
the full 3x3 covariance): attitude RMS 0.79-1.13 deg overall, 1.16-1.96 deg in eclipse
(40 min of it), 0.57-0.60 deg in sun; gyro-bias error max 0.013 deg/s; hard-iron error
< 0.1 µT; attitude NEES mean 3.1-4.1 for 3 dof (3.4 over seeds; 87-96 % of epochs inside
the 95 % bound: slightly optimistic in eclipse), bias NEES mean 1.7-7.9.  The same with the
clock 400 ppm fast (stamp phase wrapping every 42 min, stated epochs 0.28-0.30 s RMS off):
1.10-1.61 deg overall, 1.55-1.94 deg in eclipse, bias error max 0.013 deg/s, NEES mean
3.2-3.5, 93-96 % inside (without the time-tag model: 1.14-1.57 deg, NEES 7.2-19, 31-66 %
inside; at the true instants the model is the more accurate, at the stated epochs it can be
0.1-0.2 deg less so: a state left behind by a wrap happens to sit nearer the stated epoch).  Replay of a 24-h
formation scenario (-16.6 ppm, one wrap, epochs 0.25 s RMS off): 1.24 deg RMS at the stated
epoch (0.97 at the true instants; 1.68 in eclipse), NEES mean 3.5, 92 % inside (before: 8.8,
60 %); 12 h at +20 ppm: 1.38 deg (2.04 in eclipse), NEES 3.8, 90 % inside (before: 7.1,
65 %).  0.28 ms per step including IGRF (35 µs), sun, shadow and albedo, on this 2-core
machine.  Re-measured with the orbit truth propagated by brahe (seeds 1-3, machine loaded):
0.79-0.88 deg, eclipse 1.17-1.42 deg, gyro-bias error max 0.011 deg/s, NEES 3.05-3.42;
400 ppm (seed 1): 1.61 / 1.71 deg, bias NEES 8.3 - the bias covariance is optimistic when
the stamps wrap (``tests/test_attitude_mekf.py`` states it rather than asserting it away).

Ground smoothing: with ``record_history`` on (off in flight: ~3 kB per step),
``ground.attitude_smoother.smooth_estimator`` runs a fixed-interval RTS smoother on the error state
(prior/posterior covariances, the transition ``F`` and the reference quaternion and biases
recorded per step; corrections applied multiplicatively).  Measured (seed 21, 3 h, after
30 min): 0.77 -> 0.51 deg RMS (eclipse 1.14 -> 0.66), gyro-bias error max 0.0058 -> 0.0030
deg/s, NEES mean 3.25 -> 3.42 (93 % inside); seeds 1, 2, 3, 10: 0.79-0.88 -> 0.58-0.72 deg
(eclipse not always better: seed 1 1.16 -> 1.23 deg, its error being the correlated
field-model and time-tag part), smoothed NEES mean 3.3-3.9.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

from pygnc.environment import albedo as _albedo
from pygnc.estimation import chi2
from pygnc.estimation.tunables import AttitudeFilterConfig
from pygnc.environment import igrf as _igrf
from pygnc.environment.sun import AU_M, eclipse_fraction, sun_position_gcrs_m

#: OPT3001 full scale, lux.
OPT3001_FULL_SCALE_LUX = 83_865.6
#: Chi-square 0.9999 quantiles for 1..9 degrees of freedom.
CHI2_9999 = tuple(chi2.quantile(0.9999, k) for k in range(1, 10))

FACE_NORMALS_BODY = _albedo.FACE_NORMALS_BODY


# --------------------------------------------------------------------------- quaternions
def _floats(v) -> list:
    """The elements of a small vector as Python floats: numpy scalars cost ~4x as much per
    operation in the written-out formulas below (the same IEEE operations either way)."""
    return v.tolist() if type(v) is np.ndarray else [float(c) for c in v]


def quat_multiply(p, q) -> np.ndarray:
    pw, px, py, pz = _floats(p)
    qw, qx, qy, qz = _floats(q)
    return np.array([
        pw * qw - px * qx - py * qy - pz * qz,
        pw * qx + px * qw + py * qz - pz * qy,
        pw * qy - px * qz + py * qw + pz * qx,
        pw * qz + px * qy - py * qx + pz * qw,
    ])


def quat_from_rotvec(v) -> np.ndarray:
    x, y, z = _floats(v)
    ang = math.sqrt(x * x + y * y + z * z)
    if ang < 1e-12:
        return np.array([1.0, 0.5 * x, 0.5 * y, 0.5 * z])
    s = math.sin(0.5 * ang) / ang
    return np.array([math.cos(0.5 * ang), s * x, s * y, s * z])


def dcm_from_quat(q) -> np.ndarray:
    """A(q) with v_gcrs = A @ v_body (scalar-first q, assumed unit)."""
    w, x, y, z = _floats(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def quat_from_dcm(a) -> np.ndarray:
    """Scalar-first unit quaternion of rotation matrix *a* (Shepperd's method)."""
    tr = a[0, 0] + a[1, 1] + a[2, 2]
    k = int(np.argmax([tr, a[0, 0], a[1, 1], a[2, 2]]))
    if k == 0:
        q = np.array([1 + tr, a[2, 1] - a[1, 2], a[0, 2] - a[2, 0], a[1, 0] - a[0, 1]])
    elif k == 1:
        q = np.array([a[2, 1] - a[1, 2], 1 + 2 * a[0, 0] - tr, a[0, 1] + a[1, 0], a[0, 2] + a[2, 0]])
    elif k == 2:
        q = np.array([a[0, 2] - a[2, 0], a[0, 1] + a[1, 0], 1 + 2 * a[1, 1] - tr, a[1, 2] + a[2, 1]])
    else:
        q = np.array([a[1, 0] - a[0, 1], a[0, 2] + a[2, 0], a[1, 2] + a[2, 1], 1 + 2 * a[2, 2] - tr])
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def skew(v) -> np.ndarray:
    x, y, z = _floats(v)
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def rotation_matrix(v) -> np.ndarray:
    """exp([v]x) (Rodrigues), written out in floats (called several times per step)."""
    x, y, z = _floats(v)
    a2 = x * x + y * y + z * z
    if a2 < 1e-18:
        s, c1 = 1.0, 0.5
    else:
        ang = math.sqrt(a2)
        s, c1 = math.sin(ang) / ang, (1.0 - math.cos(ang)) / a2
    return np.array([
        [1.0 - c1 * (y * y + z * z), -s * z + c1 * x * y, s * y + c1 * x * z],
        [s * z + c1 * x * y, 1.0 - c1 * (x * x + z * z), -s * x + c1 * y * z],
        [-s * y + c1 * x * z, s * x + c1 * y * z, 1.0 - c1 * (x * x + y * y)],
    ])


def _inverse(s: np.ndarray) -> np.ndarray | None:
    """The inverse of a small square matrix (an innovation covariance), None if singular.
    Up to 3 x 3 in closed form (the adjugate over the determinant, in floats: a fifth of
    ``np.linalg.inv``'s call overhead at these sizes); larger ones by ``np.linalg.inv``."""
    m = s.shape[0]
    if m == 3:
        (a, b, c), (d, e, f), (g, h, i) = s.tolist()
        c00, c10, c20 = e * i - f * h, f * g - d * i, d * h - e * g
        det = a * c00 + b * c10 + c * c20
        if det == 0.0:
            return None
        k = 1.0 / det
        return np.array([[k * c00, k * (c * h - b * i), k * (b * f - c * e)],
                         [k * c10, k * (a * i - c * g), k * (c * d - a * f)],
                         [k * c20, k * (b * g - a * h), k * (a * e - b * d)]])
    if m == 1:
        v = float(s[0, 0])
        return None if v == 0.0 else np.array([[1.0 / v]])
    try:
        return np.linalg.inv(s)
    except np.linalg.LinAlgError:
        return None


def step_rotation_vector(w0_rad_s, w1_rad_s, dt_s: float) -> np.ndarray:
    """Body rotation vector over [t0, t0+dt] for a rate linear in time from w0 to w1:
    trapezoid plus the two-sample coning term (third-order Magnus)."""
    a0, a1, a2 = _floats(w0_rad_s)
    b0, b1, b2 = _floats(w1_rad_s)
    h, c = 0.5 * dt_s, dt_s * dt_s / 12.0
    return np.array([h * (a0 + b0) + c * (a1 * b2 - a2 * b1),
                     h * (a1 + b1) + c * (a2 * b0 - a0 * b2),
                     h * (a2 + b2) + c * (a0 * b1 - a1 * b0)])


def integrate_rates(t_s, rate_rad_s, t0_s: float, t1_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Body rotation vector over [*t0_s*, *t1_s*] from gyro samples (a live IMU's, ~100 Hz).

    *t_s* (k,) increasing sample times, *rate_rad_s* (k, 3) body rates (bias already
    removed).  The rate is taken linear between samples, interpolated at the two ends, and
    held beyond the first or last sample (the caller limits how far); each interval is one
    third-order Magnus step (:func:`step_rotation_vector`) and the steps are composed as
    quaternions.  Returns ``(rotation vector (3,), rate at t0_s (3,), rate at t1_s (3,))``."""
    t = np.asarray(t_s, dtype=float)
    w = np.asarray(rate_rad_s, dtype=float).reshape(-1, 3)
    if t.size == 0 or not t1_s > t0_s:
        raise ValueError("integrate_rates needs samples and t1_s > t0_s")
    inside = (t > t0_s) & (t < t1_s)

    def rate_at(tt: float) -> np.ndarray:
        return np.array([np.interp(tt, t, w[:, j]) for j in range(3)])

    tk = np.concatenate(([t0_s], t[inside], [t1_s]))
    wk = np.vstack((rate_at(t0_s), w[inside], rate_at(t1_s)))
    dt = np.diff(tk)[:, None]
    w0, w1 = wk[:-1], wk[1:]
    phi = 0.5 * dt * (w0 + w1) + (dt * dt / 12.0) * np.cross(w0, w1)
    ang = np.linalg.norm(phi, axis=1)
    half = 0.5 * ang
    sinc = np.where(ang > 1e-12, np.sin(half) / np.where(ang > 1e-12, ang, 1.0), 0.5)
    qs = np.column_stack((np.cos(half), sinc[:, None] * phi)).tolist()
    qw, qx, qy, qz = 1.0, 0.0, 0.0, 0.0
    for bw, bx, by, bz in qs:  # q <- q (x) dq, in floats (hundreds of small steps)
        qw, qx, qy, qz = (qw * bw - qx * bx - qy * by - qz * bz, qw * bx + qx * bw + qy * bz - qz * by,
                          qw * by - qx * bz + qy * bw + qz * bx, qw * bz + qx * by - qy * bx + qz * bw)
    q = np.array([qw, qx, qy, qz])
    q /= np.linalg.norm(q)
    return _rotvec_from_quat(q if q[0] >= 0.0 else -q), wk[0].copy(), wk[-1].copy()


# --------------------------------------------------------------------------- environment
@dataclass
class Environment:
    """References at one instant (all GCRS): field (µT), sun unit vector, direct-sun lux E0
    at the spacecraft, visible solar fraction, albedo cells (weights, directions)."""

    mag_gcrs_ut: np.ndarray
    sun_unit_gcrs: np.ndarray
    sun_lux: float
    sun_fraction: float
    albedo_weights: np.ndarray
    albedo_dirs_gcrs: np.ndarray


#: Sun positions are computed on nodes this far apart and interpolated linearly: the
#: direction curves by ~0.7 deg per node interval, so the chord errs by < 2e-6 rad.
SUN_NODE_S = 1200.0
_SUN_NODES: dict[int, np.ndarray] = {}


def _sun_interpolated(t_gps_s: float) -> np.ndarray:
    k = math.floor(t_gps_s / SUN_NODE_S)
    for j in (k, k + 1):
        if j not in _SUN_NODES:
            if len(_SUN_NODES) > 256:
                _SUN_NODES.clear()
            _SUN_NODES[j] = sun_position_gcrs_m(j * SUN_NODE_S)
    f = t_gps_s / SUN_NODE_S - k
    return _SUN_NODES[k] + f * (_SUN_NODES[k + 1] - _SUN_NODES[k])


def _sun_fraction(r_gcrs_m: np.ndarray, r_sun_gcrs_m: np.ndarray) -> float:
    """:func:`eclipse_fraction`, with the clear cases (sun side, or far from the shadow
    cylinder's edge: the penumbra spreads < 40 km at LEO) decided without it."""
    s = r_sun_gcrs_m / math.sqrt(float(r_sun_gcrs_m @ r_sun_gcrs_m))
    along = float(r_gcrs_m @ s)
    if along >= 0.0:
        return 1.0
    perp = math.sqrt(max(0.0, float(r_gcrs_m @ r_gcrs_m) - along * along))
    if perp > 6_378_137.0 + 100_000.0:
        return 1.0
    if perp < 6_378_137.0 - 100_000.0 and along > -5.0e7:
        return 0.0
    return float(eclipse_fraction(r_gcrs_m, r_sun_gcrs_m))


def environment_at(t_gps_s: float, r_ecef_m, r_gcrs_m, m_gcrs_from_itrs, sun_lux_at_1au: float,
                   reflectivity: float = _albedo.DEFAULT_REFLECTIVITY) -> Environment:
    """Field, sun, shadow and albedo at a position (ECEF and GCRS, m) and GPS time."""
    r_g = np.asarray(r_gcrs_m, dtype=float)
    b_gcrs_ut = (np.asarray(m_gcrs_from_itrs) @ _igrf.field_ecef_nt(r_ecef_m, t_gps_s)) * 1e-3
    s_hat, e0, frac = _sun_geometry(float(t_gps_s), r_g, sun_lux_at_1au)
    w, u = _albedo.albedo_cells(r_g, s_hat, reflectivity)
    return Environment(b_gcrs_ut, s_hat, e0, frac, w, u)


def environments_at(t_gps_s, r_ecef_m, r_gcrs_m, m_gcrs_from_itrs, sun_lux_at_1au: float,
                    reflectivity: float = _albedo.DEFAULT_REFLECTIVITY) -> list[Environment]:
    """:func:`environment_at` for n points at once: times (n,), positions (n, 3), the n
    rotation matrices; bit for bit the same Environments (the field and the albedo cells
    are computed for all points together, :func:`pygnc.environment.igrf.field_ecef_nt_many`
    and :func:`pygnc.environment.albedo.albedo_cells_many`), in a fraction of the time from
    a few tens of points."""
    t = np.asarray(t_gps_s, dtype=float).ravel()
    r_g_all = np.asarray(r_gcrs_m, dtype=float).reshape(-1, 3)
    b_ecef_all = _igrf.field_ecef_nt_many(r_ecef_m, t)
    # Fresh (3,) arrays as environment_at has them, so every product sees the same operands.
    r_gs = [r_g_all[i].copy() for i in range(len(t))]
    suns = [_sun_geometry(float(ti), r_g, sun_lux_at_1au) for ti, r_g in zip(t.tolist(), r_gs)]
    cells = _albedo.albedo_cells_many(r_g_all, np.array([s_hat for s_hat, _, _ in suns]).reshape(-1, 3), reflectivity)
    return [Environment((np.asarray(m) @ b_ecef_all[i].copy()) * 1e-3, s_hat, e0, frac, w, u)
            for i, (m, (s_hat, e0, frac), (w, u)) in enumerate(zip(m_gcrs_from_itrs, suns, cells))]


def _sun_geometry(t_gps_s: float, r_g: np.ndarray, sun_lux_at_1au: float) -> tuple[np.ndarray, float, float]:
    """(unit vector to the sun, direct-sun lux there, visible solar fraction) at GCRS *r_g*."""
    r_sun = _sun_interpolated(t_gps_s)
    to_sun = r_sun - r_g
    d = math.sqrt(float(to_sun @ to_sun))
    return to_sun / d, sun_lux_at_1au * (AU_M / d) ** 2, float(_sun_fraction(r_g, r_sun))


def sun_vector_from_faces(lux, saturated, e_lux: float, albedo_lux=None):
    """Unit sun vector in body axes from the six faces, or None if not determinable.

    Per axis the lit face gives the cosine (lux - albedo)/E; a saturated face's cosine is
    recovered from the unit norm (if two are saturated they share what is left equally).
    Never differences opposite faces."""
    lux = np.asarray(lux, dtype=float)
    alb = np.zeros(6) if albedo_lux is None else np.asarray(albedo_lux, dtype=float)
    c = np.clip((lux - alb) / e_lux, 0.0, 1.0)
    sat = np.asarray(saturated, dtype=bool)
    comp = np.zeros(3)
    sat_axes = []
    for ax in range(3):
        p, m = ax, ax + 3
        if sat[p] or sat[m]:
            sat_axes.append((ax, 1.0 if sat[p] else -1.0))
        else:
            comp[ax] = c[p] if c[p] >= c[m] else -c[m]
    if sat_axes:
        rest = max(0.0, 1.0 - float(comp @ comp))
        share = math.sqrt(rest / len(sat_axes))
        for ax, sign in sat_axes:
            comp[ax] = sign * max(share, OPT3001_FULL_SCALE_LUX / e_lux if len(sat_axes) == 1 else share)
    n = math.sqrt(float(comp @ comp))
    if n < 0.5:  # too little light for a direction (eclipse, or mostly albedo)
        return None
    return comp / n


#: TRIAD refuses vector pairs closer than this to parallel (or anti-parallel), rad: the
#: attitude about the first vector is then set by the second's noise over sin(angle).
TRIAD_MIN_ANGLE_RAD = math.radians(5.0)


def triad(v1_body, v1_ref, v2_body, v2_ref) -> np.ndarray | None:
    """Attitude matrix A (body -> reference) from two vector pairs, the first exact.

    ``None`` when either pair is within :data:`TRIAD_MIN_ANGLE_RAD` of parallel, or a
    vector is zero or not finite: no attitude can be had from them."""
    sin_min = math.sin(TRIAD_MIN_ANGLE_RAD)

    def frame(a, b):
        a = np.asarray(a, dtype=float)
        b = np.asarray(b, dtype=float)
        na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
        t2 = np.cross(a, b)
        nc = float(np.linalg.norm(t2))
        if not (nc >= sin_min * na * nb and na > 0.0 and nb > 0.0):  # NaN fails too
            return None
        t1 = a / na
        t2 = t2 / nc
        return np.column_stack([t1, t2, np.cross(t1, t2)])

    f_ref, f_body = frame(v1_ref, v2_ref), frame(v1_body, v2_body)
    if f_ref is None or f_body is None:
        return None
    return f_ref @ f_body.T


# --------------------------------------------------------------------------- calibrator
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

    def __init__(self, cfg: AttitudeFilterConfig):
        self.cfg = cfg
        self.x = np.zeros(6)  # gyro bias rad/s (body), mag bias µT (body)
        self.p = np.diag([cfg.init_gyro_bias_sigma_rad_s**2] * 3 + [cfg.init_mag_bias_sigma_ut**2] * 3)
        self.t_s: float | None = None
        self.w_prev = None
        self.m_prev = None
        self.n_updates = 0
        self.n_rejected = 0
        self.n_zero_rate = 0

    def step(self, t_s: float, w_meas_body_rad_s, m_meas_body_ut) -> None:
        cfg = self.cfg
        w1 = np.asarray(w_meas_body_rad_s, dtype=float)
        m1 = np.asarray(m_meas_body_ut, dtype=float)
        if self.t_s is not None:
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
                sig2 = (2.0 * cfg.mag_noise_ut**2 + (bn * cfg.calib_field_rate_rad_s * dt) ** 2
                        + bn * bn * dt * dt * cfg.gyro_noise_rad_s**2 / 2.0)
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

    def zero_rate_update(self, w_meas_body_rad_s, residual_rate_rad_s: float) -> None:
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

    def __init__(self, n: int = 6, gyro_k_sigma: float = 4.0, lux_fraction: float = 0.03,
                 lux_floor_lux: float = 3.0):
        self.n, self.k, self.frac, self.floor = n, gyro_k_sigma, lux_fraction, lux_floor_lux
        self.w: list[np.ndarray] = []
        self.lux: list[np.ndarray] = []

    def push(self, w_meas, lux, gyro_noise_rad_s: float) -> bool:
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


# --------------------------------------------------------------------------- MEKF
_EYE9 = np.eye(9)
_EYE9.setflags(write=False)


class AttitudeMEKF:
    """The multiplicative EKF.  See the module docstring for the model."""

    def __init__(self, cfg: AttitudeFilterConfig | None = None):
        self.cfg = cfg or AttitudeFilterConfig()
        self.q = np.array([1.0, 0.0, 0.0, 0.0])
        self.x_bias = np.zeros(6)  # gyro bias rad/s, mag bias µT (body)
        self.p = np.eye(9)
        self.t_s: float | None = None
        self.w_prev: np.ndarray | None = None  # last measured body rate, rad/s
        self.w_dot_rad_s2 = 0.0  # |rate change| per s between the last two samples
        self.initialized = False
        self.n_mag_rejected = 0
        self.n_sun_rejected = 0
        self.consecutive_rejections = 0
        self.last_nis_mag = float("nan")
        self.last_sun_faces = 0
        self.recent_steps_s: list[float] = []  # lengths of the last regular-size steps
        self.n_irregular_steps = 0
        self.last_step_sigma_s = 0.0
        self.last_f: np.ndarray | None = None  # error-state transition of the last propagate (None: identity)

    # -- state ---------------------------------------------------------------------
    @property
    def gyro_bias_rad_s(self) -> np.ndarray:
        return self.x_bias[:3]

    @property
    def mag_bias_ut(self) -> np.ndarray:
        return self.x_bias[3:]

    def initialize(self, t_s: float, q_body_to_gcrs, w_meas_body_rad_s, bias0, p_bias0) -> None:
        """Start from attitude *q* (sigma ``init_attitude_sigma_rad``) and biases (6,) with
        covariance (6, 6)."""
        self.q = np.asarray(q_body_to_gcrs, dtype=float) / np.linalg.norm(q_body_to_gcrs)
        self.x_bias = np.asarray(bias0, dtype=float).copy()
        self.p = np.zeros((9, 9))
        self.p[:3, :3] = np.eye(3) * self.cfg.init_attitude_sigma_rad**2
        self.p[3:, 3:] = np.asarray(p_bias0, dtype=float)
        self.t_s = float(t_s)
        self.w_prev = np.asarray(w_meas_body_rad_s, dtype=float).copy()
        self.initialized = True
        self.consecutive_rejections = 0

    # -- propagation -----------------------------------------------------------------
    def propagate(self, t_s: float, w_meas_body_rad_s=None) -> None:
        """Move to *t_s* with the new gyro sample (or, without one, the last rate held)."""
        cfg = self.cfg
        dt = float(t_s) - self.t_s
        self.last_f = None  # None: identity (no time step)
        if dt <= 0.0:
            if w_meas_body_rad_s is not None:
                self.w_prev = np.asarray(w_meas_body_rad_s, dtype=float).copy()
            return
        bg = self.x_bias[:3]
        w0 = self.w_prev - bg
        gap = w_meas_body_rad_s is None or dt > cfg.max_gap_s
        w1 = w0 if gap else np.asarray(w_meas_body_rad_s, dtype=float) - bg
        phi = step_rotation_vector(w0, w1, dt)
        ang = math.sqrt(float(phi @ phi))
        q_att = dt * dt * cfg.gyro_noise_rad_s**2 / 2.0 + (cfg.propagation_error_coeff * ang**3) ** 2
        q_att += cfg.gyro_bias_walk_rad_s_per_sqrt_s**2 * dt**3 / 3.0
        if gap:
            # Rate held over the interval: the error grows with the rate's own change,
            # |dw/dt| t^2 / 2, estimated from the last two samples.
            q_att += (0.5 * self.w_dot_rad_s2 * dt * dt + cfg.gyro_noise_rad_s * dt) ** 2
        self._advance(t_s, dt, phi, q_att, None if gap else w1, cfg.gyro_bias_walk_rad_s_per_sqrt_s)
        if w_meas_body_rad_s is not None:
            w_new = np.asarray(w_meas_body_rad_s, dtype=float).copy()
            if not gap:
                self.w_dot_rad_s2 = math.sqrt(float((w_new - self.w_prev) @ (w_new - self.w_prev))) / dt
            self.w_prev = w_new

    def propagate_imu(self, t_s: float, t_imu_s, rate_imu_body_rad_s, time_sigma_s: float = 0.0) -> None:
        """Move to *t_s* on a live IMU's samples (times on the filter's axis, body-axis rates
        as measured; the state's gyro bias is that IMU's).  The caller checks that they
        cover the interval (:func:`integrate_rates` holds the rate beyond the ends).
        *time_sigma_s*: 1-sigma error of the IMU's times relative to the sensor samples'
        instants (:mod:`pygnc.estimation.imu_alignment`): the window shifted by ``e`` turns
        the step by ``(w1 - C w0) e`` more, added to the attitude covariance."""
        cfg = self.cfg
        dt = float(t_s) - self.t_s
        self.last_f = None
        if dt <= 0.0:
            return
        bg = self.x_bias[:3].copy()
        phi, w0, w1 = integrate_rates(t_imu_s, np.asarray(rate_imu_body_rad_s, dtype=float) - bg, self.t_s, float(t_s))
        q_att = (cfg.imu_gyro_noise_density_rad_s_sqrt_hz**2 * dt
                 + cfg.imu_gyro_bias_walk_rad_s_per_sqrt_s**2 * dt**3 / 3.0)
        self._advance(t_s, dt, phi, q_att, w1, cfg.imu_gyro_bias_walk_rad_s_per_sqrt_s)
        if time_sigma_s > 0.0:
            v = w1 - rotation_matrix(-phi) @ w0
            self.p[:3, :3] += (time_sigma_s * time_sigma_s) * np.outer(v, v)
        self.w_dot_rad_s2 = math.sqrt(float((w1 - w0) @ (w1 - w0))) / dt  # the IMU's own rates at both ends
        self.w_prev = w1 + bg

    def _advance(self, t_s: float, dt: float, phi: np.ndarray, q_att: float, w_step, bias_walk_rad_s_per_sqrt_s: float) -> None:
        """The common part of a step: rotate the reference by *phi*, propagate P with the
        error-state transition, add *q_att* (rad^2 per axis) and the bias walks, and, for a
        step integrated from samples (*w_step*, the bias-corrected rate at its end), the
        step-length uncertainty about the rate axis."""
        cfg = self.cfg
        self.q = quat_multiply(self.q, quat_from_rotvec(phi))
        self.q /= math.sqrt(float(self.q @ self.q))
        f = _EYE9.copy()
        f[:3, :3] = rotation_matrix(-phi)
        f[:3, 3:6] = -dt * rotation_matrix(-0.5 * phi)
        self.last_f = f
        p = f @ self.p @ f.T
        if w_step is not None:
            # The step's true length is uncertain: the body turned w1 * (dt_true - dt) more
            # than integrated, about the rate axis (rank one).
            sig_dt = self._step_length_sigma(dt)
            if sig_dt > 0.0:
                p[:3, :3] += (sig_dt * sig_dt) * np.outer(w_step, w_step)
        qb = bias_walk_rad_s_per_sqrt_s**2 * dt
        qm = cfg.mag_bias_walk_ut_per_sqrt_s**2 * dt
        p.flat[::10] += (q_att, q_att, q_att, qb, qb, qb, qm, qm, qm)  # the diagonal of the 9 x 9
        if max(p[0, 0], p[1, 1], p[2, 2]) > math.pi**2:
            for i in range(3):  # an attitude sigma beyond pi means nothing: scale it down
                if p[i, i] > math.pi**2:
                    f_i = math.pi / math.sqrt(p[i, i])
                    p[i, :] *= f_i
                    p[:, i] *= f_i
        self.p = 0.5 * (p + p.T)
        self.t_s = float(t_s)

    def set_gyro_bias(self, bias_rad_s, p_bias) -> None:
        """Replace the gyro-bias estimate (another gyro takes over): its covariance *p_bias*
        (3, 3), uncorrelated with attitude and magnetometer bias."""
        self.x_bias[:3] = np.asarray(bias_rad_s, dtype=float)
        self.p[3:6, :] = 0.0
        self.p[:, 3:6] = 0.0
        self.p[3:6, 3:6] = np.asarray(p_bias, dtype=float)

    def _step_length_sigma(self, dt: float) -> float:
        """1-sigma error of a step's length from its time tags.

        Samples come at a regular interval, stamped in whole seconds (floor) by a clock
        whose fractional phase drifts: a stamp difference equal to the recent ones is
        exact to ``regular_step_sigma_s``; one that differs by ``d`` from a whole number
        of the usual interval (the phase wrapped: 4 or 6 s instead of 5; a late sample:
        7 then 3) has its true length anywhere between the two, and is given ``|d|``.
        The stamp difference itself is kept: nothing says which of the two is right."""
        cfg = self.cfg
        hist = self.recent_steps_s
        sig = cfg.regular_step_sigma_s
        if len(hist) >= 3:
            nominal = float(statistics.median(hist))
            d = dt - max(1, round(dt / nominal)) * nominal
            if abs(d) > cfg.irregular_step_threshold_s:
                self.n_irregular_steps += 1
                sig = math.hypot(sig, d)
            if abs(dt - nominal) <= cfg.irregular_step_threshold_s or abs(d) > cfg.irregular_step_threshold_s:
                hist.append(dt)
        else:
            hist.append(dt)
        del hist[:-max(3, cfg.step_history)]
        self.last_step_sigma_s = sig
        return sig

    # -- updates ----------------------------------------------------------------------
    def _update(self, r, h, rdiag) -> tuple[bool, float]:
        pht = self.p @ h.T
        s = h @ pht
        s.flat[:: s.shape[0] + 1] += rdiag
        s_inv = _inverse(s)  # one inverse for the NIS and the gain (m <= 6)
        if s_inv is None:
            return False, float("nan")
        nis = float(r @ s_inv @ r)
        if not nis <= CHI2_9999[min(len(r), 9) - 1] * (1.0 if len(r) <= 9 else len(r) / 9.0):
            return False, nis
        k = pht @ s_inv  # P H^T S^-1 (P and S symmetric)
        dx = k @ r
        ikh = _EYE9 - k @ h
        p = ikh @ self.p @ ikh.T + (k * rdiag) @ k.T
        # A sum is finite only if every term is (an overflow to inf is refused as well).
        if not (math.isfinite(float(dx.sum())) and math.isfinite(float(p.sum()))):
            return False, nis  # a non-finite update is not applied (the state stays usable)
        self.p = 0.5 * (p + p.T)
        d0, d1, d2 = dx[:3].tolist()
        self.q = quat_multiply(self.q, (1.0, 0.5 * d0, 0.5 * d1, 0.5 * d2))
        self.q /= math.sqrt(float(self.q @ self.q))
        if self.q[0] < 0:
            self.q = -self.q
        self.x_bias = self.x_bias + dx[3:]
        return True, nis

    def update_mag(self, m_meas_body_ut, mag_gcrs_ut) -> bool:
        cfg = self.cfg
        a = dcm_from_quat(self.q)
        hb = a.T @ mag_gcrs_ut
        r = np.asarray(m_meas_body_ut, dtype=float) - hb - self.x_bias[3:]
        h = np.zeros((3, 9))
        h[:, :3] = skew(hb)
        h[:, 6:] = np.eye(3)
        ok, nis = self._update(r, h, np.full(3, cfg.mag_noise_ut**2 + cfg.mag_model_sigma_ut**2))
        self.last_nis_mag = nis
        if ok:
            self.consecutive_rejections = 0
        else:
            self.n_mag_rejected += 1
            self.consecutive_rejections += 1
        return ok

    def predicted_lux(self, env: Environment, a=None):
        """(direct cosines (6,), predicted lux (6,), albedo lux (6,)) at the current attitude."""
        a = dcm_from_quat(self.q) if a is None else a
        s_b = a.T @ env.sun_unit_gcrs
        cosines = FACE_NORMALS_BODY @ s_b
        alb = env.sun_lux * _albedo.faces_from_cells(env.albedo_weights, env.albedo_dirs_gcrs, a)
        pred = env.sun_lux * env.sun_fraction * np.maximum(cosines, 0.0) + alb
        return s_b, cosines, pred, alb

    def update_sun(self, lux, saturated, env: Environment) -> int:
        """Sequentially-stacked update with the usable faces; returns how many were used."""
        cfg = self.cfg
        self.last_sun_faces = 0
        if env.sun_fraction < cfg.eclipse_fraction_threshold:
            return 0
        lux = np.asarray(lux, dtype=float)
        sat = np.asarray(saturated, dtype=bool)
        s_b, cosines, pred, alb = self.predicted_lux(env)
        e_dir = env.sun_lux * env.sun_fraction
        var = ((cfg.lux_noise_fraction * np.maximum(lux, pred)) ** 2 + cfg.lux_noise_floor_lux**2
               + (cfg.lux_cosine_error_fraction * e_dir) ** 2
               + (cfg.albedo_relative_sigma * alb + cfg.albedo_floor_fraction * env.sun_lux) ** 2)
        if env.sun_fraction < 1.0 - cfg.eclipse_fraction_threshold:  # penumbra: timing of the edge
            var += (0.1 * env.sun_lux) ** 2
        rows, res, rv = [], [], []
        sb_x = skew(s_b)
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
        if not rows:
            return 0
        h = np.zeros((len(rows), 9))
        h[:, :3] = np.array(rows)
        ok, _ = self._update(np.array(res), h, np.array(rv))
        if not ok:
            self.n_sun_rejected += 1
            return 0
        self.last_sun_faces = len(rows)
        return len(rows)


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


def _rotvec_from_quat(q) -> np.ndarray:
    """Rotation vector of a unit quaternion with q[0] >= 0."""
    v = np.asarray(q[1:], dtype=float)
    sn = math.sqrt(float(v @ v))
    if sn < 1e-12:
        return 2.0 * v
    return (2.0 * math.atan2(sn, float(q[0])) / sn) * v


@dataclass
class _StepRecord:
    """What the smoother needs of one step: the filtered output, the measured rate, the
    epoch sigma, and (valid attitude only) the prior ``(continues, F, P-, q-, b-)`` and
    the posterior covariance ``P+`` (the posterior state is in ``out``)."""

    out: AttitudeOutput
    w_meas: np.ndarray
    time_tag_sigma_s: float
    prior: tuple | None
    p_post: np.ndarray | None


class AttitudeEstimator:
    """Calibrator + MEKF + initialisation logic; one :meth:`step` per sensor sample.

    ``env`` is ``None`` when there is no position (then only the calibrator's rates and
    biases are meaningful, and an initialised MEKF is propagated on the gyro alone)."""

    def __init__(self, cfg: AttitudeFilterConfig | None = None, record_history: bool = False):
        self.cfg = cfg or AttitudeFilterConfig()
        #: Keep what the ground smoother needs, one :class:`_StepRecord` per step (~3 kB each: three 9x9 matrices and the output):
        #: off in flight (memory), on for ground replay.
        self.record_history = bool(record_history)
        self.history: list[_StepRecord] = []
        self.calib = GyroMagCalibrator(self.cfg)
        self.mekf = AttitudeMEKF(self.cfg)
        self.rest = RestDetector()
        self.n_init = 0
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

    def _try_initialize(self, t_s, w_b, m_b, lux, sat, env: Environment) -> bool:
        if env.sun_fraction < 1.0 - self.cfg.eclipse_fraction_threshold:
            return False
        c = self.calib
        m_corr = m_b - c.x[3:]
        s_b = sun_vector_from_faces(lux, sat, env.sun_lux)
        if s_b is None:
            return False
        a = triad(s_b, env.sun_unit_gcrs, m_corr, env.mag_gcrs_ut)
        if a is None:  # sun and field (nearly) parallel: no attitude from this sample
            return False
        # Second pass with the albedo at this attitude subtracted.
        alb = env.sun_lux * _albedo.faces_from_cells(env.albedo_weights, env.albedo_dirs_gcrs, a)
        s_b2 = sun_vector_from_faces(lux, sat, env.sun_lux, alb)
        if s_b2 is not None:
            a2 = triad(s_b2, env.sun_unit_gcrs, m_corr, env.mag_gcrs_ut)
            a = a if a2 is None else a2
        p_bias = c.p * 4.0  # the calibrator's covariance ignores correlated residuals
        self.mekf.initialize(t_s, quat_from_dcm(a), w_b, c.x, p_bias)
        self.gyro_source = "sensor"  # the calibrator's bias is the BMX160's
        self._bias_aside.pop("sensor", None)
        self.n_init += 1
        return True

    def step(self, t_s: float, w_meas_body_rad_s, m_meas_body_ut, lux, saturated,
             env: Environment | None, time_tag_sigma_s: float | None = None,
             imu: tuple | None = None) -> AttitudeOutput:
        """One sample stamped *t_s* (its stated epoch); *time_tag_sigma_s* is that epoch's
        1-sigma uncertainty (default: the config's; 0 for exact truth times).

        *imu*: ``(t_s (k,), rate_body_rad_s (k, 3)[, time_sigma_s])`` samples of a live IMU covering the
        interval since the last step (checked by the caller): the attitude is propagated on
        them instead of on the two BMX160 samples, with that IMU's own bias estimate."""
        if time_tag_sigma_s is not None:
            self.time_tag_sigma_s = float(time_tag_sigma_s)
        w_b = np.asarray(w_meas_body_rad_s, dtype=float)
        m_b = np.asarray(m_meas_body_ut, dtype=float)
        self.n_steps += 1
        f = self.mekf
        if f.initialized:  # keep the calibrator's last sample current, without its update
            c = self.calib
            c.t_s, c.w_prev, c.m_prev = float(t_s), w_b, m_b
        elif self.rest.push(w_b, lux, self.cfg.gyro_noise_rad_s):
            c = self.calib
            c.zero_rate_update(w_b, self.cfg.rest_residual_rate_rad_s)
            c.t_s, c.w_prev, c.m_prev = float(t_s), w_b, m_b
        else:
            self.calib.step(t_s, w_b, m_b)
        rec = self.record_history
        prior = None  # (continues the previous step, F, P, q, biases) before the updates
        w_src = w_b
        if f.initialized:
            switched = self._use_gyro("imu" if imu is not None else "sensor")
            if imu is not None:
                f.propagate_imu(t_s, *imu)
                w_src = f.w_prev
                self.n_imu_steps += 1
            else:
                f.propagate(t_s, w_b)
            if rec:  # a change of gyro breaks the chain the smoother follows
                prior = (not switched, f.last_f, f.p.copy(), f.q.copy(), f.x_bias.copy())
            if env is not None:
                f.update_mag(m_b, env.mag_gcrs_ut)
                f.update_sun(lux, saturated, env)
                if f.consecutive_rejections >= self.cfg.max_rejections:
                    # Lost: start again from TRIAD, biases from the MEKF (the calibrator's
                    # gyro is the BMX160: its bias into the state, the IMU's kept aside).
                    self._use_gyro("sensor")
                    f.initialized = False
                    self.calib.x = f.x_bias.copy()
                    self.calib.p = f.p[3:, 3:].copy()
        elif env is not None:
            if self._try_initialize(t_s, w_b, m_b, lux, saturated, env):
                if rec:
                    prior = (False, None, f.p.copy(), f.q.copy(), f.x_bias.copy())
                f.update_mag(m_b, env.mag_gcrs_ut)
                f.update_sun(lux, saturated, env)
        self.last_in_eclipse = env is not None and env.sun_fraction < 0.5
        self.last_w = w_src if f.initialized else w_b
        self._w_sensor_prev = w_b
        out = self.output()
        if rec:
            self.history.append(_StepRecord(out, self.last_w, self.time_tag_sigma_s, prior if out.valid_attitude else None,
                                            f.p.copy() if out.valid_attitude else None))
        return out

    def epoch_covariance(self, rate_body_rad_s) -> np.ndarray:
        """Attitude covariance (3x3, rad^2) added by the stated epoch's uncertainty: the
        estimate belongs to the sample's true instant, which is sigma_t away from the stated
        one, so at the stated epoch it is off by ``w dt`` about the rate axis."""
        w = np.asarray(rate_body_rad_s, dtype=float)
        return (self.time_tag_sigma_s**2) * np.outer(w, w)

    def output(self) -> AttitudeOutput:
        f = self.mekf
        if f.initialized:
            rate = self.last_w - f.x_bias[:3]
            cov = f.p.copy()
            cov[:3, :3] += self.epoch_covariance(rate)
            return AttitudeOutput(f.t_s, f.q.copy(), rate, f.x_bias[:3].copy(),
                                  f.x_bias[3:].copy(), cov, True, self.last_in_eclipse, f.last_sun_faces)
        c = self.calib
        cov = np.zeros((9, 9))
        cov[:3, :3] = np.eye(3) * math.pi**2
        cov[3:, 3:] = c.p
        t = c.t_s if c.t_s is not None else float("nan")
        return AttitudeOutput(t, np.array([1.0, 0.0, 0.0, 0.0]), self.last_w - c.x[:3], c.x[:3].copy(),
                              c.x[3:].copy(), cov, False, self.last_in_eclipse, 0)

    def propagated_output(self, t_s: float) -> AttitudeOutput:
        """The estimate moved to *t_s* with the last rate held (the filter is not changed)."""
        import copy

        out = self.output()
        if not self.mekf.initialized or t_s <= self.mekf.t_s:
            out.t_s = max(out.t_s, t_s) if not self.mekf.initialized and not math.isnan(out.t_s) else out.t_s
            return out
        f = copy.deepcopy(self.mekf)
        f.propagate(t_s, None)
        cov = f.p.copy()
        cov[:3, :3] += self.epoch_covariance(out.rate_body_rad_s)
        return AttitudeOutput(f.t_s, f.q.copy(), out.rate_body_rad_s, f.x_bias[:3].copy(), f.x_bias[3:].copy(),
                              cov, True, self.last_in_eclipse, 0)
