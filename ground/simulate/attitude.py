"""Rigid-body attitude truth for the scenario simulator.

Quaternion convention (everywhere in the simulator and truth.npz): **scalar-first**
``q = (w, x, y, z)``, unit norm, and it **rotates body vectors into GCRS**:
``v_gcrs = R(q) @ v_body`` with :func:`pygnc.estimation.quaternion.dcm_from_quat_array` (the
flight's rotation algebra).  Body rates ``w_body_rad_s`` are the angular velocity of the
body relative to GCRS, expressed in body axes.

Dynamics: Euler's equations ``J dw/dt = tau - w x (J w)`` for a full (non-diagonal)
inertia tensor, with optional gravity-gradient torque
``tau_gg = 3 mu / |r|^5 (r_b x J r_b)`` and a residual magnetic dipole
``tau_m = m_b x B_b``; kinematics ``dq/dt = 1/2 q (x) (0, w)``.  Integrated with
scipy's DOP853 (8th-order Runge-Kutta, adaptive, rtol 1e-11) with internal steps no
longer than ``max_step_s``; output on the caller's time grid (1 Hz in the simulator)
from the integrator's dense output; the quaternion is renormalised at output only.
Torque inputs (position, field) are linearly interpolated in the caller's 1 Hz arrays,
which for a torque is exact to ~1e-7 relative.

Quality: torque-free, the inertial angular momentum and the rotational energy are
conserved (``tests/test_simulate.py`` asserts < 1e-9 relative over 30 min) and the 1 Hz
quaternions and rates agree (q(t+1) = q(t) (x) exp(w dt/2) to < 1e-5).  With torques this
is the simulator's dominant cost.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

from pygnc.estimation.quaternion import dcm_from_quat_array, quat_normalize

#: Earth's gravitational parameter, m^3/s^2 (EGM2008/WGS-84).
MU_EARTH_M3_S2 = 3.986004418e14

#: Default inertia of a 1.5U CubeSat of ~1.5 kg (10 x 10 x 17 cm) with modest products of
#: inertia, kg m^2, body axes (+Z the long axis).
DEFAULT_INERTIA_KG_M2 = (
    4.9e-3,
    1.2e-5,
    -2.0e-5,
    1.2e-5,
    4.6e-3,
    3.0e-5,
    -2.0e-5,
    3.0e-5,
    2.5e-3,
)


def rotate_body_to_gcrs(q, v_body):
    """v_gcrs = R(q) v_body, broadcasting (..., 4) with (..., 3)."""
    return np.einsum("...ij,...j->...i", dcm_from_quat_array(q), v_body)


def rotate_gcrs_to_body(q, v_gcrs):
    """v_body = R(q)^T v_gcrs, broadcasting (..., 4) with (..., 3)."""
    return np.einsum("...ji,...j->...i", dcm_from_quat_array(q), v_gcrs)


def random_quaternion(rng: np.random.Generator):
    """Uniformly distributed unit quaternion (scalar-first, w >= 0)."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def _mat_vec3(m, v):
    """3x3 (nested lists) times a 3-vector, plain floats (the integrator's hot loop)."""
    return (
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    )


def _cross3(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def propagate_attitude(
    t_s,
    q0,
    w0_body_rad_s,
    inertia_kg_m2=DEFAULT_INERTIA_KG_M2,
    r_gcrs_m=None,
    b_gcrs_t=None,
    dipole_body_a_m2=(0.0, 0.0, 0.0),
    gravity_gradient: bool = True,
    max_step_s: float = 1.0,
    rtol: float = 1e-11,
):
    """Integrate rigid-body attitude on the grid *t_s* (seconds, increasing, any origin).

    *q0*: scalar-first body-to-GCRS quaternion at ``t_s[0]``; *w0_body_rad_s*: body rates.
    *r_gcrs_m* (n, 3) on the same grid enables the gravity-gradient torque (if
    *gravity_gradient*); *b_gcrs_t* (n, 3) tesla with a non-zero *dipole_body_a_m2*
    enables the magnetic torque.  Returns ``(q (n, 4), w_body_rad_s (n, 3))``.
    """
    t = np.asarray(t_s, dtype=float)
    j = np.asarray(inertia_kg_m2, dtype=float).reshape(3, 3)
    j_inv = np.linalg.inv(j)
    dipole = np.asarray(dipole_body_a_m2, dtype=float)
    use_gg = gravity_gradient and r_gcrs_m is not None
    use_mag = b_gcrs_t is not None and np.any(dipole != 0.0)
    r_arr = np.asarray(r_gcrs_m, dtype=float) if use_gg else None
    b_arr = np.asarray(b_gcrs_t, dtype=float) if use_mag else None
    t0 = t[0]
    dt_grid = np.diff(t)
    uniform = t.size > 1 and np.allclose(dt_grid, dt_grid[0])
    step = dt_grid[0] if uniform else None
    n = t.size

    jl = j.tolist()
    jil = j_inv.tolist()
    dip = dipole.tolist()
    r_list = r_arr.tolist() if use_gg else None
    b_list = b_arr.tolist() if use_mag else None
    t_list = t.tolist()

    def interp(arr, tt):
        # Linear interpolation in a list of 3-lists; plain floats (this is the hot loop).
        if uniform:
            x = (tt - t0) / step
            i = min(max(int(x), 0), n - 2)
        else:
            i = min(max(int(np.searchsorted(t, tt)) - 1, 0), n - 2)
            x = i + (tt - t_list[i]) / (t_list[i + 1] - t_list[i])
        f = x - i
        a, b = arr[i], arr[i + 1]
        g = 1.0 - f
        return a[0] * g + b[0] * f, a[1] * g + b[1] * f, a[2] * g + b[2] * f

    def rhs(tt, y):
        qw, qx, qy, qz, wx, wy, wz = y.tolist()
        w = (wx, wy, wz)
        jw = _mat_vec3(jl, w)
        c = _cross3(w, jw)
        tau = [-c[0], -c[1], -c[2]]
        if use_gg or use_mag:
            nq = qw * qw + qx * qx + qy * qy + qz * qz
            s2 = 2.0 / nq
            # R^T (GCRS -> body) rows = columns of R(q).
            rt = (
                (1 - s2 * (qy * qy + qz * qz), s2 * (qx * qy + qw * qz), s2 * (qx * qz - qw * qy)),
                (s2 * (qx * qy - qw * qz), 1 - s2 * (qx * qx + qz * qz), s2 * (qy * qz + qw * qx)),
                (s2 * (qx * qz + qw * qy), s2 * (qy * qz - qw * qx), 1 - s2 * (qx * qx + qy * qy)),
            )
            if use_gg:
                rb = _mat_vec3(rt, interp(r_list, tt))
                rn2 = rb[0] * rb[0] + rb[1] * rb[1] + rb[2] * rb[2]
                k = 3.0 * MU_EARTH_M3_S2 / (rn2 * rn2 * rn2**0.5)
                g = _cross3(rb, _mat_vec3(jl, rb))
                tau[0] += k * g[0]
                tau[1] += k * g[1]
                tau[2] += k * g[2]
            if use_mag:
                m = _cross3(dip, _mat_vec3(rt, interp(b_list, tt)))
                tau[0] += m[0]
                tau[1] += m[1]
                tau[2] += m[2]
        wd = _mat_vec3(jil, tau)
        return np.array(
            [
                0.5 * (-qx * wx - qy * wy - qz * wz),
                0.5 * (qw * wx + qy * wz - qz * wy),
                0.5 * (qw * wy - qx * wz + qz * wx),
                0.5 * (qw * wz + qx * wy - qy * wx),
                wd[0],
                wd[1],
                wd[2],
            ]
        )

    y0 = np.concatenate([quat_normalize(q0), np.asarray(w0_body_rad_s, dtype=float)])
    if n == 1:
        return y0[None, :4].copy(), y0[None, 4:].copy()
    sol = solve_ivp(
        rhs,
        (t[0], t[-1]),
        y0,
        method="DOP853",
        t_eval=t,
        rtol=rtol,
        atol=rtol * 1e-2,
        max_step=max_step_s,
    )
    if not sol.success:
        raise RuntimeError(f"attitude integration failed: {sol.message}")
    y = sol.y.T
    q = quat_normalize(y[:, :4])
    return q, y[:, 4:].copy()
