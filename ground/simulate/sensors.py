"""Sensor models of the scenario simulator: spacecraft clock, BMX160 gyro and magnetometer,
OPT3001 sun sensors, GPS fix faults, and the crosslink radio's ranges.

Each model turns truth arrays into physical measurements (noise, bias, frame); the raw
integer fields are then made by the flight encoders/quantisers of
:mod:`pygnc.formats.sense` (``mag_raw_from_ut``, ``gyro_raw_from_deg_s``,
``opt3001_raw_from_lux``), so the LSB rounding, int16 clipping and OPT3001
exponent/mantissa coding and saturation are exactly the decoder's inverse.

Frames: gyro and magnetometer measure in the **IMU frame**: ``v_imu = imu_to_body^T v_body``
(``imu_to_body`` row-major as :attr:`pygnc.config.Config.imu_to_body`).  Sun sensors are
on the body faces +X, +Y, +Z, -X, -Y, -Z in that order, with a cosine response.
"""

from __future__ import annotations

import numpy as np

from pygnc.formats.sense import SENSOR_SEGMENT_DTYPE
from pygnc.timebase import utc_unix_from_gps

#: Outward normals of the sun-sensor faces in body axes, in sense.bin order.
FACE_NORMALS_BODY = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [-1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])

#: gps_fault codes in truth.npz.
GPS_OK, GPS_DROPPED, GPS_INVALID_STATUS, GPS_OUTLIER = 0, 1, 2, 3


# --------------------------------------------------------------------------- clock
def spacecraft_clock_s(t_gps_s, t0_gps_s: float, sc_minus_utc_s: float, clock_drift_ppm: float):
    """Unrounded spacecraft clock (unix seconds) at GPS time *t_gps_s*.

    ``t_sc = UTC(t) + offset + drift_ppm * 1e-6 * (t - t0)``: the PyCubed keeps unix time
    that started *offset* seconds off UTC at *t0* and runs fast by *drift* ppm.
    """
    t = np.asarray(t_gps_s, dtype=float)
    return utc_unix_from_gps(t) + sc_minus_utc_s + clock_drift_ppm * 1e-6 * (t - t0_gps_s)


def stamp_s(t_sc_s) -> np.ndarray:
    """Whole-second spacecraft time as the PyCubed stamps it (floor), uint32."""
    return np.floor(np.asarray(t_sc_s, dtype=float)).astype(np.uint32)


# --------------------------------------------------------------------------- IMU
def body_to_imu(v_body, imu_to_body) -> np.ndarray:
    """v_imu = R^T v_body for R = imu_to_body (3x3 or 9 row-major)."""
    r = np.asarray(imu_to_body, dtype=float).reshape(3, 3)
    return np.asarray(v_body, dtype=float) @ r


def gyro_bias_series(t_s, bias0_deg_s, walk_deg_s_per_sqrt_s: float, rng) -> np.ndarray:
    """Gyro bias on grid *t_s* (n,): constant *bias0* plus a random walk, (n, 3) deg/s."""
    t = np.asarray(t_s, dtype=float)
    out = np.tile(np.asarray(bias0_deg_s, dtype=float), (t.size, 1))
    if walk_deg_s_per_sqrt_s > 0 and t.size > 1:
        steps = rng.normal(size=(t.size - 1, 3)) * walk_deg_s_per_sqrt_s * np.sqrt(np.diff(t))[:, None]
        out[1:] += np.cumsum(steps, axis=0)
    return out


def gyro_measurement_deg_s(w_body_rad_s, bias_imu_deg_s, noise_deg_s: float, imu_to_body, rng) -> np.ndarray:
    """Gyro reading in the IMU frame, deg/s (before LSB quantisation)."""
    w_imu = np.degrees(body_to_imu(w_body_rad_s, imu_to_body))
    return w_imu + bias_imu_deg_s + rng.normal(size=w_imu.shape) * noise_deg_s


def mag_measurement_ut(b_body_ut, bias_imu_ut, noise_ut: float, imu_to_body, rng) -> np.ndarray:
    """Magnetometer reading in the IMU frame, µT (before LSB quantisation)."""
    b_imu = body_to_imu(b_body_ut, imu_to_body)
    return b_imu + np.asarray(bias_imu_ut, dtype=float) + rng.normal(size=b_imu.shape) * noise_ut


# --------------------------------------------------------------------------- OPT3001
def lux_measurement(true_lux, noise_fraction: float, noise_floor_lux: float, rng) -> np.ndarray:
    """Noisy illuminance (lux, >= 0) of the noise-free *true_lux*; saturation is applied by
    the OPT3001 quantiser."""
    true_lux = np.asarray(true_lux, dtype=float)
    noisy = true_lux * (1.0 + noise_fraction * rng.normal(size=true_lux.shape))
    noisy = noisy + noise_floor_lux * rng.normal(size=true_lux.shape)
    return np.maximum(noisy, 0.0)


def sensor_segments(t_sc_stamp, mag_ut, gyro_deg_s, lux, hall_raw: int, settings) -> np.ndarray:
    """Raw SENSOR_SEGMENT_DTYPE array (n,) from physical IMU-frame readings and lux, with the
    LSBs of *settings* (a :class:`pygnc.formats.settings.DecodeSettings`)."""
    from pygnc.formats.sense import gyro_raw_from_deg_s, mag_raw_from_ut, opt3001_raw_from_lux

    n = np.asarray(t_sc_stamp).shape[0]
    seg = np.zeros(n, dtype=SENSOR_SEGMENT_DTYPE)
    seg["t_sc_s"] = t_sc_stamp
    seg["mag"] = mag_raw_from_ut(mag_ut, settings)
    seg["hall"] = hall_raw
    seg["gyro"] = gyro_raw_from_deg_s(gyro_deg_s, settings)
    seg["sun"] = opt3001_raw_from_lux(lux)
    return seg


# --------------------------------------------------------------------------- ranging
def hermite_position(t_grid_s, r_m, v_m_s, t_query_s) -> np.ndarray:
    """Cubic Hermite interpolation of positions on a uniform grid (error ~ µm at 1 Hz LEO)."""
    t = np.asarray(t_grid_s, dtype=float)
    q = np.asarray(t_query_s, dtype=float)
    h = t[1] - t[0]
    i = np.clip(np.floor((q - t[0]) / h).astype(np.int64), 0, t.size - 2)
    s = ((q - t[i]) / h)[:, None]
    h00 = 2 * s**3 - 3 * s**2 + 1
    h10 = s**3 - 2 * s**2 + s
    h01 = -2 * s**3 + 3 * s**2
    h11 = s**3 - s**2
    return h00 * r_m[i] + h10 * h * v_m_s[i] + h01 * r_m[i + 1] + h11 * h * v_m_s[i + 1]
