"""Rotation algebra: scalar-first quaternions, rotation matrices and rotation vectors, and
the integration of body rates into a rotation (the attitude filter's propagation).

A quaternion ``q`` rotates body vectors into the reference frame: ``v_ref = dcm_from_quat(q)
@ v_body``.  Angles in radians, rates in rad/s, times in seconds.  The functions of one
quaternion are written out in floats (the filter calls them at every step); those ending
``_array`` (and :func:`quat_normalize`, :func:`quat_conj`) take arrays of quaternions
``(..., 4)`` and broadcast: the ground's simulator and truth comparisons use them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

#: A small vector or quaternion: an array, or a sequence of floats (a list, a tuple).
Vector = np.ndarray | Sequence[float]


def _floats(v: Vector) -> list[float]:
    """The elements of a small vector as Python floats: numpy scalars cost several times as
    much per operation in the written-out formulas below (the same IEEE operations either way)."""
    return v.tolist() if type(v) is np.ndarray else [float(c) for c in v]


def quat_multiply(p: Vector, q: Vector) -> np.ndarray:
    pw, px, py, pz = _floats(p)
    qw, qx, qy, qz = _floats(q)
    return np.array(
        [
            pw * qw - px * qx - py * qy - pz * qz,
            pw * qx + px * qw + py * qz - pz * qy,
            pw * qy - px * qz + py * qw + pz * qx,
            pw * qz + px * qy - py * qx + pz * qw,
        ]
    )


def quat_from_rotvec(v: Vector) -> np.ndarray:
    x, y, z = _floats(v)
    ang = math.sqrt(x * x + y * y + z * z)
    if ang < 1e-12:
        return np.array([1.0, 0.5 * x, 0.5 * y, 0.5 * z])
    s = math.sin(0.5 * ang) / ang
    return np.array([math.cos(0.5 * ang), s * x, s * y, s * z])


def dcm_from_quat(q: Vector) -> np.ndarray:
    """A(q) with v_gcrs = A @ v_body (scalar-first q, assumed unit)."""
    w, x, y, z = _floats(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def quat_from_dcm(a: np.ndarray) -> np.ndarray:
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


def skew(v: Vector) -> np.ndarray:
    x, y, z = _floats(v)
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def rotation_matrix(v: Vector) -> np.ndarray:
    """exp([v]x) (Rodrigues), written out in floats (called several times per step)."""
    x, y, z = _floats(v)
    a2 = x * x + y * y + z * z
    if a2 < 1e-18:
        s, c1 = 1.0, 0.5
    else:
        ang = math.sqrt(a2)
        s, c1 = math.sin(ang) / ang, (1.0 - math.cos(ang)) / a2
    return np.array(
        [
            [1.0 - c1 * (y * y + z * z), -s * z + c1 * x * y, s * y + c1 * x * z],
            [s * z + c1 * x * y, 1.0 - c1 * (x * x + z * z), -s * x + c1 * y * z],
            [-s * y + c1 * x * z, s * x + c1 * y * z, 1.0 - c1 * (x * x + y * y)],
        ]
    )


def rotvec_from_quat(q: Vector) -> np.ndarray:
    """Rotation vector of a unit quaternion with q[0] >= 0."""
    v = np.asarray(q[1:], dtype=float)
    sn = math.sqrt(float(v @ v))
    if sn < 1e-12:
        return 2.0 * v
    return (2.0 * math.atan2(sn, float(q[0])) / sn) * v


def step_rotation_vector(w0_rad_s: Vector, w1_rad_s: Vector, dt_s: float) -> np.ndarray:
    """Body rotation vector over [t0, t0+dt] for a rate linear in time from w0 to w1:
    trapezoid plus the two-sample coning term (third-order Magnus)."""
    a0, a1, a2 = _floats(w0_rad_s)
    b0, b1, b2 = _floats(w1_rad_s)
    h, c = 0.5 * dt_s, dt_s * dt_s / 12.0
    return np.array(
        [
            h * (a0 + b0) + c * (a1 * b2 - a2 * b1),
            h * (a1 + b1) + c * (a2 * b0 - a0 * b2),
            h * (a2 + b2) + c * (a0 * b1 - a1 * b0),
        ]
    )


def step_rotation_vector_quadratic(
    w_before_rad_s: Vector, w0_rad_s: Vector, w1_rad_s: Vector, h_s: float, dt_s: float
) -> np.ndarray:
    """Body rotation vector over [t0, t0+dt] for a rate quadratic in time through three
    samples: *w_before_rad_s* at t0 - *h_s*, *w0_rad_s* at t0, *w1_rad_s* at t0 + *dt_s*.

    Third-order Magnus (the integral plus the commutator term) of ``w = a + b t + c t^2``:
    ``a T + b T^2/2 + c T^3/3 + (a x b) T^3/12 + (a x c) T^4/12 + (b x c) T^5/60``.  With
    ``c = 0`` it is :func:`step_rotation_vector`.  A tumbling body's rate vector turns in
    body axes, which a rate linear between two samples misses: at 5-s samples and 2-5 deg/s
    that error is 1e-5 to 4e-4 rad per step and the same every step (degrees per hour of
    drift); the quadratic leaves ~1e-5 rad that averages out."""
    m0, m1, m2 = _floats(w_before_rad_s)
    a0, a1, a2 = _floats(w0_rad_s)
    e0, e1, e2 = _floats(w1_rad_s)
    t, h = float(dt_s), float(h_s)
    # Divided differences: the slope over each interval, the curvature from their change.
    k = 1.0 / (t + h)
    c0 = ((e0 - a0) / t - (a0 - m0) / h) * k
    c1 = ((e1 - a1) / t - (a1 - m1) / h) * k
    c2 = ((e2 - a2) / t - (a2 - m2) / h) * k
    b0, b1, b2 = (e0 - a0) / t - c0 * t, (e1 - a1) / t - c1 * t, (e2 - a2) / t - c2 * t
    t2 = t * t
    t3 = t2 * t
    f1, f2, f3 = t2 / 2.0, t3 / 3.0, t3 / 12.0
    f4, f5 = t3 * t / 12.0, t3 * t2 / 60.0
    return np.array(
        [
            a0 * t + b0 * f1 + c0 * f2 + f3 * (a1 * b2 - a2 * b1) + f4 * (a1 * c2 - a2 * c1) + f5 * (b1 * c2 - b2 * c1),
            a1 * t + b1 * f1 + c1 * f2 + f3 * (a2 * b0 - a0 * b2) + f4 * (a2 * c0 - a0 * c2) + f5 * (b2 * c0 - b0 * c2),
            a2 * t + b2 * f1 + c2 * f2 + f3 * (a0 * b1 - a1 * b0) + f4 * (a0 * c1 - a1 * c0) + f5 * (b0 * c1 - b1 * c0),
        ]
    )


def integrate_rates(
    t_s: ArrayLike, rate_rad_s: ArrayLike, t0_s: float, t1_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
        qw, qx, qy, qz = (
            qw * bw - qx * bx - qy * by - qz * bz,
            qw * bx + qx * bw + qy * bz - qz * by,
            qw * by - qx * bz + qy * bw + qz * bx,
            qw * bz + qx * by - qy * bx + qz * bw,
        )
    q = np.array([qw, qx, qy, qz])
    q /= np.linalg.norm(q)
    return rotvec_from_quat(q if q[0] >= 0.0 else -q), wk[0].copy(), wk[-1].copy()


# --------------------------------------------------------------------------- arrays of quaternions


def quat_normalize(q: ArrayLike) -> np.ndarray:
    """Unit quaternions along the last axis."""
    q = np.asarray(q, dtype=float)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def quat_conj(q: np.ndarray) -> np.ndarray:
    """Conjugates (inverses of unit quaternions) along the last axis."""
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_multiply_array(p: ArrayLike, q: ArrayLike) -> np.ndarray:
    """Hamilton products p (x) q, scalar-first, broadcasting over leading axes."""
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    pw, px, py, pz = np.moveaxis(p, -1, 0)
    qw, qx, qy, qz = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            pw * qw - px * qx - py * qy - pz * qz,
            pw * qx + px * qw + py * qz - pz * qy,
            pw * qy - px * qz + py * qw + pz * qx,
            pw * qz + px * qy - py * qx + pz * qw,
        ],
        axis=-1,
    )


def dcm_from_quat_array(q: ArrayLike) -> np.ndarray:
    """Rotation matrices A(q) with v_ref = A @ v_body, shape (..., 3, 3) (q normalised first)."""
    q = quat_normalize(q)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def rotvec_from_quat_array(q: np.ndarray) -> np.ndarray:
    """Rotation vectors (rad) of unit quaternions, angle in [0, pi] (the sign of q free)."""
    q = np.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(n, q[..., :1])
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(n > 1e-12, angle / n, 2.0)
    return v * scale


def rotation_matrix_array(v: ArrayLike) -> np.ndarray:
    """exp([v]x) (Rodrigues) of rotation vectors (..., 3): matrices (..., 3, 3)."""
    v = np.asarray(v, dtype=float)
    a2 = np.sum(v * v, axis=-1)
    small = a2 < 1e-18
    ang = np.sqrt(np.where(small, 1.0, a2))
    s = np.where(small, 1.0, np.sin(ang) / ang)[..., None, None]
    c1 = np.where(small, 0.5, (1.0 - np.cos(ang)) / np.where(small, 1.0, a2))[..., None, None]
    x, y, z = np.moveaxis(v, -1, 0)
    zero = np.zeros_like(x)
    k = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
    return np.eye(3) + s * k + c1 * (k @ k)


def step_rotation_vector_array(w0_rad_s: ArrayLike, w1_rad_s: ArrayLike, dt_s: ArrayLike) -> np.ndarray:
    """:func:`step_rotation_vector` of many steps at once: rates (n, 3), lengths (n,)."""
    w0 = np.asarray(w0_rad_s, dtype=float)
    w1 = np.asarray(w1_rad_s, dtype=float)
    dt = np.asarray(dt_s, dtype=float)[..., None]
    return 0.5 * dt * (w0 + w1) + (dt * dt / 12.0) * np.cross(w0, w1)
