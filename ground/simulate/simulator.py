"""The scenario simulator behind ``python -m ground simulate OUT_DIR`` (its command line:
:mod:`ground.simulate.cli`): a truth-known scenario the flight code consumes.

Output (spacecraft 0 at the top so ``PYGNC_HOME=OUT_DIR`` works unchanged; every other
spacecraft in ``OUT_DIR/<name>/`` with the same layout)::

    OUT_DIR/sense.bin              251-byte records: 5 sensor segments + 1 GPS segment
    OUT_DIR/range/rng00000.bin ... peer GPS packet + 1-2 range packets per peer every 25 s
    OUT_DIR/<name>/sense.bin, OUT_DIR/<name>/range/...   the other spacecraft
    OUT_DIR/scenario.toml          every setting, resolved (random draws written out), and the seed
    OUT_DIR/truth.npz              1 Hz truth of every spacecraft (see ground.simulate.scenario.TRUTH_ARRAYS)
    OUT_DIR/tle.txt                with --tle: a three-line TLE set of every spacecraft (ground.simulate.published_tles)

Pipeline: reference orbit + relative orbital elements -> numerically propagated truth
orbits (:mod:`ground.simulate.orbits`, a richer force model than the estimators use) -> IGRF
field, sun, shadow (:mod:`ground.simulate.environment`) -> rigid-body attitude with
gravity-gradient and residual-dipole torques (:mod:`ground.simulate.attitude`) -> sensor models
(:mod:`ground.simulate.sensors`) -> bytes through the flight encoders (:mod:`pygnc.formats`).

Timing: the truth grid is whole GPS seconds from the start.  Sensor samples are every
``sensors.period_s`` on that grid; a record's GPS fix is taken ``gps.offset_from_last_sensor_s``
from its last sensor sample; ranges are taken a random fraction of a second to a few
seconds after the fixes (positions interpolated).  Spacecraft times are the simulated
PyCubed clock (UTC + offset + drift), floored to whole seconds (ms for ranges).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import math
import time
import zipfile
from pathlib import Path

import numpy as np

from ground.simulate import attitude as att
from ground.simulate import environment as env
from ground.simulate import scenario as scn
from ground.simulate import sensors as sen
from pygnc.config import Config
from pygnc.environment import eclipse_fraction, sun_position_gcrs_m
from pygnc.estimation.quaternion import dcm_from_quat_array
from pygnc.formats import range_packet
from pygnc.formats.range_file import RANGE_DTYPE, RAW_MAX, encode_range_group
from pygnc.formats.sense import encode_sense_records
from pygnc.formats.settings import DecodeSettings
from pygnc.timebase import gps_from_utc_unix, utc_unix_from_gps

# --------------------------------------------------------------------------- helpers


def parse_duration_s(text: str) -> float:
    """'300', '300s', '90m', '3h', '1d' -> seconds (ValueError naming the forms otherwise)."""
    raw = str(text)
    text = raw.strip().lower()
    units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise ValueError(f"{raw!r} is not a duration (seconds, or a number with s, m, h or d: 90m, 3h)") from None


def parse_utc(text: str) -> float:
    """ISO 8601 UTC (``2025-03-20T06:00:00Z``) -> POSIX seconds."""
    t = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.UTC)
    return t.timestamp()


def _kepler_true_from_mean(m_rad: float, e: float) -> float:
    ecc_anom = m_rad if e < 0.8 else math.pi
    for _ in range(50):
        d = (ecc_anom - e * math.sin(ecc_anom) - m_rad) / (1.0 - e * math.cos(ecc_anom))
        ecc_anom -= d
        if abs(d) < 1e-15:
            break
    return 2.0 * math.atan2(math.sqrt(1 + e) * math.sin(ecc_anom / 2), math.sqrt(1 - e) * math.cos(ecc_anom / 2))


def _mean_from_true(nu_rad: float, e: float) -> float:
    ecc_anom = 2.0 * math.atan2(math.sqrt(1 - e) * math.sin(nu_rad / 2), math.sqrt(1 + e) * math.cos(nu_rad / 2))
    return ecc_anom - e * math.sin(ecc_anom)


def deputy_elements(orbit: scn.OrbitSettings, sc: scn.SpacecraftSettings):
    """Keplerian elements (a_m, e, i_rad, raan_rad, argp_rad, nu_rad) of a spacecraft from
    the reference orbit and its quasi-nonsingular relative orbital elements (D'Amico 2010):
    a δa, a δλ, a δe_x, a δe_y, a δi_x, a δi_y with δλ = Δu + ΔΩ cos i, δi_y = ΔΩ sin i,
    u = ω + M the mean argument of latitude."""
    a = orbit.semi_major_axis_m
    e = orbit.eccentricity
    i = math.radians(orbit.inclination_deg)
    raan = math.radians(orbit.raan_deg)
    argp = math.radians(orbit.arg_perigee_deg)
    m = _mean_from_true(math.radians(orbit.true_anomaly_deg), e)
    ex, ey = e * math.cos(argp), e * math.sin(argp)
    u = argp + m
    a_d = a + sc.da_m
    i_d = i + sc.dix_m / a
    d_raan = sc.diy_m / a / math.sin(i) if abs(math.sin(i)) > 1e-9 else 0.0
    raan_d = raan + d_raan
    u_d = u + sc.dlambda_m / a - d_raan * math.cos(i)
    ex_d, ey_d = ex + sc.dex_m / a, ey + sc.dey_m / a
    e_d = math.hypot(ex_d, ey_d)
    argp_d = math.atan2(ey_d, ex_d) if e_d > 0 else 0.0
    nu_d = _kepler_true_from_mean(u_d - argp_d, e_d)
    return a_d, e_d, i_d, raan_d, argp_d, nu_d


def _deterministic_npz(arrays: dict) -> bytes:
    """npz bytes that depend only on the arrays (fixed zip timestamps), so the same seed
    gives byte-identical files."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            arr = io.BytesIO()
            np.lib.format.write_array(arr, np.asarray(arrays[name]), allow_pickle=False)
            zf.writestr(info, arr.getvalue())
    return buf.getvalue()


def _write(path: Path, data: bytes) -> None:
    from pygnc.atomic import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)


# --------------------------------------------------------------------------- simulation


@dataclasses.dataclass
class Scenario:
    """Everything a run produced, in memory: settings, truth arrays and file contents."""

    settings: scn.ScenarioSettings
    truth: dict
    #: spacecraft name -> {"sense.bin": bytes, "range/rng00000.bin": bytes, ...}
    files: dict
    timings_s: dict
    #: tle.txt (``settings.tle.enabled``), else None.
    tle_text: str | None = None


def _grid(settings: scn.ScenarioSettings):
    s = settings
    period = s.sensors.period_s
    per = s.sensors.per_record
    gps_off = s.gps.offset_from_last_sensor_s
    for name, v in (("sensors.period_s", period), ("gps.offset_from_last_sensor_s", gps_off)):
        if abs(v - round(v)) > 1e-9:
            raise ValueError(f"{name} must be a whole number of seconds (truth is on a 1 Hz grid), got {v}")
    if period <= 0 or per < 1:
        raise ValueError("sensors.period_s must be > 0 and sensors.per_record >= 1")
    unix0 = parse_utc(s.start_utc)
    if abs(unix0 - round(unix0)) > 1e-9:
        raise ValueError("start_utc must be whole seconds")
    t0 = float(gps_from_utc_unix(round(unix0)))
    n_t = int(math.floor(s.duration_s)) + 1
    t = t0 + np.arange(n_t, dtype=float)
    # Records whose every sample, fix and range fits in the grid.
    rec_span = period * per
    first_fix_rel = (per - 1) * period + gps_off
    if first_fix_rel < 0:
        raise ValueError("the GPS fix of the first record would precede the scenario start")
    tail = max(period * (per - 1), first_fix_rel + s.ranging.delay_max_s + s.ranging.second_gap_s + 1.0)
    n_rec = int(math.floor((s.duration_s - tail) / rec_span)) + 1 if s.duration_s >= tail else 0
    if n_rec < 1:
        raise ValueError(f"duration_s={s.duration_s} is too short for one record (needs >= {tail} s)")
    sensor_rel = np.arange(n_rec * per, dtype=float) * period
    fix_rel = sensor_rel.reshape(n_rec, per)[:, -1] + gps_off
    return t0, t, sensor_rel, fix_rel


def simulate(settings: scn.ScenarioSettings, progress=None) -> Scenario:
    """Run the scenario in memory (no files written).  *settings* is resolved first.

    Stages, each timed (``Scenario.timings_s``): truth orbits (brahe), environment (sun,
    shadow, field), attitude dynamics, sensor samples, GPS fixes, sense.bin, ranges."""
    log = progress or (lambda msg: None)
    timings = {}
    t_start = time.perf_counter()
    s = scn.resolve(settings)
    t0, t, sensor_rel, fix_rel = _grid(s)
    imu_to_body = np.asarray(s.sensors.imu_to_body, dtype=float).reshape(3, 3)
    # Orthogonal, but not necessarily proper: the PY4 mapping as documented (body X = IMU Y,
    # body Y = -IMU X, body Z = -IMU Z) has determinant -1.  The simulator applies exactly
    # the inverse of what the flight code applies (v_imu = R^T v_body), whatever the sign.
    if not np.allclose(imu_to_body @ imu_to_body.T, np.eye(3), atol=1e-9):
        raise ValueError("sensors.imu_to_body must be orthogonal")

    def timed(name, fn, *args):
        tic = time.perf_counter()
        result = fn(*args)
        timings[name] = time.perf_counter() - tic
        return result

    orb = timed("orbits", _orbits, s, t, t0, log)
    r_sun, sun_fraction, mag_gcrs_ut = timed("environment", _environment, s, t, orb)
    q, w, mag_body_ut = timed("attitude", _attitude, s, t, t0, orb, mag_gcrs_ut, log)
    sen_out = timed("sensors", _sensors, s, t, t0, sensor_rel, orb, q, w, mag_body_ut, r_sun, sun_fraction, imu_to_body)
    gps_raw, gps_fault = timed("gps", _gps, s, t, t0, fix_rel.astype(np.int64), orb, sen_out["t_sc_s"])
    files, corrupt = _sense_files(s, sen_out["raw"], gps_raw)
    range_truth = timed("ranges", _ranges, s, t, t0, fix_rel, orb, gps_raw, files)
    _uplink_configs(s, t, orb, files)
    tle_text = timed("tle", _tles, s, t0, log) if s.tle.enabled else None

    truth = {
        "format_version": np.int64(scn.SCENARIO_FORMAT_VERSION),
        "t_gps_s": t,
        "t_utc_unix_s": utc_unix_from_gps(t).astype(float),
        "spacecraft_name": np.array([sc.name for sc in s.spacecraft], dtype="U32"),
        "radio_id": np.array([sc.radio_id for sc in s.spacecraft], dtype=np.uint8),
        **orb,
        "q_body_to_gcrs": q,
        "w_body_rad_s": w,
        "mag_gcrs_ut": mag_gcrs_ut,
        "mag_body_ut": mag_body_ut,
        "sun_gcrs_m": r_sun,
        "sun_fraction": sun_fraction,
        "eclipse": sun_fraction < 0.5,
        "gyro_bias_imu_deg_s": sen_out["gyro_bias"],
        "mag_bias_imu_ut": np.array([sc.mag_bias_imu_ut for sc in s.spacecraft], dtype=float),
        "imu_to_body": imu_to_body,
        "inertia_kg_m2": np.asarray(s.attitude.inertia_kg_m2, dtype=float).reshape(3, 3),
        "sc_minus_utc_s": np.array([sc.sc_minus_utc_s for sc in s.spacecraft], dtype=float),
        "clock_drift_ppm": np.array([sc.clock_drift_ppm for sc in s.spacecraft], dtype=float),
        "t_sc_s": sen_out["t_sc_s"],
        "sensor_t_gps_s": t0 + sensor_rel,
        "sensor_t_sc_s": sen_out["stamp"],
        "sun_lux_true": sen_out["sun_lux_true"],
        "albedo_lux": sen_out["albedo_lux"],
        "gps_t_gps_s": t0 + fix_rel,
        "gps_fault": gps_fault,
        **range_truth,
        "sense_corrupt_offsets": corrupt,
    }
    timings["total"] = time.perf_counter() - t_start
    return Scenario(settings=s, truth=truth, files=files, timings_s=timings, tle_text=tle_text)


def _truth_start(s, k: int):
    """Spacecraft *k*'s GCRS state at the scenario start and the seed of its truth's drag."""
    from ground.simulate import orbits

    a_m, e, i_rad, raan_rad, argp_rad, nu_rad = deputy_elements(s.orbit, s.spacecraft[k])
    r0, v0 = orbits.initial_state_from_elements(a_m, e, i_rad, raan_rad, argp_rad, nu_rad)
    seed = int(scn.rng_for(s.seed, scn.STREAM_ORBIT, k).integers(2**31))
    return np.asarray(r0, dtype=float), np.asarray(v0, dtype=float), seed


def _orbits(s, t, t0, log) -> dict:
    """Truth orbits of every spacecraft on the 1-Hz grid (:func:`ground.simulate.orbits.propagate_truth`)."""
    from ground.simulate import orbits

    n_sc, n_t = len(s.spacecraft), t.size
    orb = {k: np.zeros((n_sc, n_t, 3)) for k in ("r_gcrs_m", "v_gcrs_m_s", "r_ecef_m", "v_ecef_m_s")}
    for k, sc in enumerate(s.spacecraft):
        r0, v0, seed = _truth_start(s, k)
        truth = orbits.propagate_truth(
            r0,
            v0,
            t0,
            float(n_t - 1),
            step_s=1.0,
            ballistic_coeff_kg_m2=sc.ballistic_coeff_kg_m2,
            seed=seed,
        )
        if truth["t_gps_s"].shape[0] != n_t or not np.allclose(truth["t_gps_s"], t, atol=1e-6):
            raise RuntimeError("orbit propagator did not return the requested 1 Hz grid")
        for key in orb:
            orb[key][k] = truth[key]
        log(f"orbit {sc.name}: done")
    return orb


def _tle_arc(s, k: int, t0: float, t_a: float, t_b: float, step_s: float) -> dict:
    """Spacecraft *k*'s truth (the scenario's force model and drag draw, from its state at
    the start, backwards where needed) sampled every *step_s* on [t_a, t_b], ECEF."""
    from ground.simulate import orbits

    r0, v0, seed = _truth_start(s, k)
    sc = s.spacecraft[k]
    parts = []
    if t_a < t0:
        back = orbits.propagate_truth(
            r0, v0, t0, -(t0 - t_a), step_s=-step_s, ballistic_coeff_kg_m2=sc.ballistic_coeff_kg_m2, seed=seed
        )
        keep = back["t_gps_s"] <= min(t_b, t0)
        parts.append({key: back[key][keep][::-1] for key in ("t_gps_s", "r_ecef_m", "v_ecef_m_s")})
    if t_b > t0:
        start = max(t_a, t0)
        first = t0 + math.ceil((start - t0) / step_s - 1e-9) * step_s
        fwd = orbits.propagate_truth(
            r0, v0, t0, t_b - t0, step_s=step_s, ballistic_coeff_kg_m2=sc.ballistic_coeff_kg_m2, seed=seed
        )
        keep = (fwd["t_gps_s"] >= first - 1e-6) & ((fwd["t_gps_s"] > t0 + 1e-6) | (t_a >= t0))
        parts.append({key: fwd[key][keep] for key in ("t_gps_s", "r_ecef_m", "v_ecef_m_s")})
    return {key: np.concatenate([p[key] for p in parts]) for key in ("t_gps_s", "r_ecef_m", "v_ecef_m_s")}


def _tles(s, t0, log) -> str:
    """tle.txt: a TLE of every spacecraft fitted to its truth over ``tle.fit_span_s`` ending at
    the TLE epoch, with TLE-class errors of ``tle.error_scale`` (:mod:`ground.simulate.published_tles`)."""
    from ground.simulate import published_tles as stle
    from ground.uplink import tle as tl

    cfg = s.tle
    t_epoch = t0 + cfg.epoch_s
    # The truth is sampled on the start's grid: with epoch_s a multiple of sample_s (the
    # defaults), the last fit point is the epoch itself.
    n = int(round(cfg.fit_span_s / cfg.sample_s))
    text = []
    for k, sc in enumerate(s.spacecraft):
        arc = _tle_arc(s, k, t0, t_epoch - n * cfg.sample_s, t_epoch, cfg.sample_s)
        r_t = np.empty_like(arc["r_ecef_m"])
        v_t = np.empty_like(arc["v_ecef_m_s"])
        for j, tj in enumerate(arc["t_gps_s"]):
            r_t[j], v_t[j] = tl.itrs_to_teme(arc["r_ecef_m"][j], arc["v_ecef_m_s"][j], float(tj))
        rng = scn.rng_for(s.seed, scn.STREAM_TLE, k) if cfg.error_scale > 0 else None
        fit = stle.fitted_tle(
            arc["t_gps_s"], r_t, v_t, t_epoch, scn.norad_id_of(sc), sc.name, rng=rng, error_scale=cfg.error_scale
        )
        text.append(stle.tle_text(sc.name, fit.line1, fit.line2))
        log(f"tle {sc.name}: NORAD {scn.norad_id_of(sc)}, fit RMS {fit.fit_rms_m:.0f} m over {fit.n_points} positions")
    return "".join(text)


def _environment(s, t, orb):
    """Sun position, each spacecraft's sunlit fraction and the field in GCRS (µT)."""
    n_sc = len(s.spacecraft)
    r_sun = sun_position_gcrs_m(t)
    sun_fraction = np.zeros((n_sc, t.size))
    mag_gcrs_ut = np.zeros((n_sc, t.size, 3))
    for k in range(n_sc):
        sun_fraction[k] = eclipse_fraction(orb["r_gcrs_m"][k], r_sun)
        mag_gcrs_ut[k] = env.magnetic_field_gcrs_nt(orb["r_ecef_m"][k], t) * 1e-3
    return r_sun, sun_fraction, mag_gcrs_ut


def _attitude(s, t, t0, orb, mag_gcrs_ut, log):
    """Attitude and rate of every spacecraft (rigid body, gravity gradient, magnetic dipole),
    and the field in body axes."""
    n_sc = len(s.spacecraft)
    inertia = np.asarray(s.attitude.inertia_kg_m2, dtype=float).reshape(3, 3)
    q = np.zeros((n_sc, t.size, 4))
    w = np.zeros((n_sc, t.size, 3))
    for k, sc in enumerate(s.spacecraft):
        q[k], w[k] = att.propagate_attitude(
            t - t0,
            np.asarray(sc.q0_body_to_gcrs, dtype=float),
            np.radians(np.asarray(sc.w0_body_deg_s, dtype=float)),
            inertia,
            r_gcrs_m=orb["r_gcrs_m"][k],
            b_gcrs_t=mag_gcrs_ut[k] * 1e-6,
            dipole_body_a_m2=sc.dipole_body_a_m2,
            gravity_gradient=s.attitude.gravity_gradient,
            max_step_s=s.attitude.max_step_s,
        )
        log(f"attitude {sc.name}: done")
    return q, w, att.rotate_gcrs_to_body(q, mag_gcrs_ut)


def _sensors(s, t, t0, sensor_rel, orb, q, w, mag_body_ut, r_sun, sun_fraction, imu_to_body) -> dict:
    """Spacecraft clocks and the raw sensor segments (gyro, magnetometer, lux) of every
    spacecraft, with their truths: ``t_sc_s``, ``stamp``, ``gyro_bias``, ``sun_lux_true``,
    ``albedo_lux``, ``raw`` (one segment array per spacecraft)."""
    n_sc, n_t = len(s.spacecraft), t.size
    sensor_idx = sensor_rel.astype(np.int64)
    n_s = sensor_idx.size
    # (checked as the flight configuration checks them)
    settings = DecodeSettings.from_config(
        Config(
            mag_lsb_ut=s.sensors.mag_lsb_ut,
            gyro_lsb_deg_s=s.sensors.gyro_lsb_deg_s,
            imu_to_body=tuple(float(v) for v in s.sensors.imu_to_body),
            sensors_per_record=s.sensors.per_record,
        )
    )
    out = {
        "t_sc_s": np.zeros((n_sc, n_t)),
        "gyro_bias": np.zeros((n_sc, n_t, 3)),
        "sun_lux_true": np.zeros((n_sc, n_s, 6)),
        "albedo_lux": np.zeros((n_sc, n_s, 6)),
        "stamp": np.zeros((n_sc, n_s), dtype=np.uint32),
        "raw": [],
    }
    for k, sc in enumerate(s.spacecraft):
        t_sc = out["t_sc_s"][k] = sen.spacecraft_clock_s(t, t0, sc.sc_minus_utc_s, sc.clock_drift_ppm)
        if t_sc.min() < 0 or t_sc.max() >= 2**32:
            raise ValueError(f"{sc.name}: spacecraft clock outside uint32 unix seconds")
        out["stamp"][k] = sen.stamp_s(t_sc[sensor_idx])
        rng_g = scn.rng_for(s.seed, scn.STREAM_GYRO, k)
        out["gyro_bias"][k] = sen.gyro_bias_series(
            t - t0, sc.gyro_bias_imu_deg_s, s.sensors.gyro_bias_walk_deg_s_per_sqrt_s, rng_g
        )
        gyro = sen.gyro_measurement_deg_s(
            w[k][sensor_idx], out["gyro_bias"][k][sensor_idx], s.sensors.gyro_noise_deg_s, imu_to_body, rng_g
        )
        mag = sen.mag_measurement_ut(
            mag_body_ut[k][sensor_idx],
            sc.mag_bias_imu_ut,
            s.sensors.mag_noise_ut,
            imu_to_body,
            scn.rng_for(s.seed, scn.STREAM_MAG, k),
        )
        lux_true, alb_lux = _lux_true(
            s, q[k][sensor_idx], orb["r_gcrs_m"][k][sensor_idx], r_sun[sensor_idx], sun_fraction[k][sensor_idx]
        )
        out["albedo_lux"][k], out["sun_lux_true"][k] = alb_lux, lux_true
        lux = sen.lux_measurement(
            lux_true,
            s.sensors.lux_noise_fraction,
            s.sensors.lux_noise_floor_lux,
            scn.rng_for(s.seed, scn.STREAM_LUX, k),
        )
        out["raw"].append(sen.sensor_segments(out["stamp"][k], mag, gyro, lux, s.sensors.hall_raw, settings))
    return out


def _lux_true(s, q, r_gcrs_m, r_sun_m, sun_fraction):
    """True illuminance of the six faces (direct + albedo) and its albedo part, lux."""
    normals_gcrs = np.einsum("nij,fj->nfi", dcm_from_quat_array(q), sen.FACE_NORMALS_BODY)
    direct = env.direct_irradiance_faces(r_gcrs_m, r_sun_m, normals_gcrs, sun_fraction)
    if s.environment.albedo > 0:
        alb = env.albedo_irradiance_faces(
            r_gcrs_m,
            r_sun_m,
            normals_gcrs,
            albedo=s.environment.albedo,
            n_rings=s.environment.albedo_rings,
            n_azimuth=s.environment.albedo_azimuths,
        )
    else:
        alb = np.zeros_like(direct)
    e = s.environment.sun_lux_at_1au
    return (direct + alb) * e, alb * e


def _sense_files(s, sensor_raw, gps_raw):
    """sense.bin of every spacecraft (with the configured corrupt bytes) and their offsets."""
    n_sc, per = len(s.spacecraft), s.sensors.per_record
    files = {sc.name: {} for sc in s.spacecraft}
    corrupt = np.zeros((n_sc, s.faults.sense_corrupt_bytes), dtype=np.int64)
    for k, sc in enumerate(s.spacecraft):
        data = encode_sense_records(sensor_raw[k].reshape(-1, per), gps_raw[k])
        if s.faults.sense_corrupt_bytes:
            data, corrupt[k] = _corrupt(
                data, s.faults.sense_corrupt_bytes, scn.rng_for(s.seed, scn.STREAM_FAULTS, 100 + k)
            )
        files[sc.name]["sense.bin"] = data
    return files, corrupt


def _gps(s, t, t0, fix_idx, orb, t_sc):
    """Raw GPS segments (n_sc arrays of (n_rec,)) and fault codes (n_sc, n_rec).

    Noise, outliers, gaps and dropped fixes come from :func:`ground.simulate.orbits.simulate_gps_fixes`
    applied to the truth at the fix times; this function adds the scenario's statuses,
    satellite counts, the spacecraft-clock stamp and the "good data, bad status" fault.
    """
    from ground.simulate import orbits
    from pygnc.formats.gps import GPS_FIX_DTYPE, gps_raw_from_fixes

    n_sc = len(s.spacecraft)
    n_rec = fix_idx.size
    f = s.faults
    t_fix = t[fix_idx]
    gps_raw = []
    fault = np.zeros((n_sc, n_rec), dtype=np.int8)
    first_fix_rel = float(t_fix[0] - t0)
    for k in range(n_sc):
        rng = scn.rng_for(s.seed, scn.STREAM_GPS, k)
        truth_k = {
            "t_gps_s": t_fix,
            "r_ecef_m": orb["r_ecef_m"][k][fix_idx],
            "v_ecef_m_s": orb["v_ecef_m_s"][k][fix_idx],
        }
        fx, flags = orbits.simulate_gps_fixes(
            truth_k,
            period_s=s.gps_period_s,
            pos_sigma_m=s.gps.pos_sigma_m,
            vel_sigma_m_s=s.gps.vel_sigma_m_s,
            outlier_fraction=f.gps_outlier_fraction,
            outlier_m=f.gps_outlier_m,
            # the propagator's gaps are relative to the first time it is given
            gaps=[(float(a) - first_fix_rel, float(b) - first_fix_rel) for a, b in f.gps_gaps_s],
            rng=rng,
            invalid_fraction=f.gps_drop_fraction,
            with_flags=True,
            correlated_sigma_m=s.gps.correlated_sigma_m,
            correlation_s=s.gps.correlation_s,
        )
        row = np.searchsorted(t_fix, fx["t_gps_s"])
        if not np.allclose(t_fix[row], fx["t_gps_s"], atol=1e-6):
            raise RuntimeError("GPS fix simulator returned fixes off the requested times")
        fixes = np.zeros(n_rec, dtype=GPS_FIX_DTYPE)
        total_ms = np.rint(t_fix * 1000.0).astype(np.int64)
        fixes["week"], fixes["ms_of_week"] = np.divmod(total_ms, 604_800_000)
        fixes["t_gps_s"] = t_fix
        fixes["time_status"] = s.gps.time_status
        fixes["solution_status"] = 1  # INSUFFICIENT_OBS unless a fix is there
        got = np.zeros(n_rec, dtype=bool)
        got[row] = True
        for name in ("pos_ecef_m", "vel_ecef_m_s", "pos_sigma_m", "vel_sigma_m_s"):
            fixes[name][row] = fx[name]
        drop = ~got
        drop[row] |= flags["invalid"]
        outlier = np.zeros(n_rec, dtype=bool)
        outlier[row] = flags["outlier"]
        rng_f = scn.rng_for(s.seed, scn.STREAM_FAULTS, k)
        invalid = ~drop & (rng_f.random(n_rec) < f.gps_invalid_status_fraction)
        tracked = rng.integers(s.gps.sats_tracked_min, s.gps.sats_tracked_max + 1, n_rec)
        used = np.minimum(tracked, rng.integers(s.gps.sats_in_solution_min, s.gps.sats_tracked_max + 1, n_rec))
        fixes["solution_status"] = np.where(invalid, f.gps_invalid_status, s.gps.good_solution_status)
        fixes["solution_status"][drop] = 1  # INSUFFICIENT_OBS
        fixes["vel_status"] = fixes["solution_status"]
        fixes["sats_tracked"] = np.where(drop, rng_f.integers(0, 4, n_rec), tracked)
        fixes["sats_in_solution"] = np.where(drop, 0, used)
        for name in ("pos_ecef_m", "vel_ecef_m_s", "pos_sigma_m", "vel_sigma_m_s"):
            fixes[name][drop] = 0.0
        fixes["t_sc_s"] = sen.stamp_s(t_sc[k][fix_idx])
        fault[k][outlier & ~drop] = sen.GPS_OUTLIER
        fault[k][invalid] = sen.GPS_INVALID_STATUS
        fault[k][drop] = sen.GPS_DROPPED
        gps_raw.append(gps_raw_from_fixes(fixes))
    return gps_raw, fault


#: The configuration each simulated spacecraft finds in its home (what the ground uplinks).
CONFIG_NAME = "pygnc_config.toml"
#: The TLEs of the scenario's spacecraft (``--tle``), at the top of the scenario directory.
TLE_NAME = "tle.txt"


def _uplink_configs(s, t, orb, files) -> None:
    """Each spacecraft's ``pygnc_config.toml``: the range GPS source and, for range-only
    navigation, a prior of every partner (truth at the start + the scenario's errors)."""
    rs = s.ranging
    mounting = [float(v) for v in s.sensors.imu_to_body]
    reflection = float(np.linalg.det(np.reshape(mounting, (3, 3)))) < 0.0
    for i, obs in enumerate(s.spacecraft):
        lines = [
            "# Uplinked by the simulator: what a ground team would send this spacecraft.",
            f'range_gps_source = "{rs.gps_source}"',
            f"spacecraft_id = {int(obs.radio_id)}",
            f"imu_to_body = [{', '.join(repr(v) for v in mounting)}]",
        ]
        if reflection:  # the simulated IMU is mounted with this matrix: meant, not a mistake
            lines.append("imu_to_body_reflection_intended = true")
        lines.append("")
        if rs.gps_source == "own" and rs.prior_sigma_pos_m > 0:
            rng = scn.rng_for(s.seed, scn.STREAM_PRIOR, i)
            for j, peer in enumerate(s.spacecraft):
                if j == i:
                    continue
                pos = orb["r_ecef_m"][j][0] + rs.prior_sigma_pos_m * rng.normal(size=3)
                vel = orb["v_ecef_m_s"][j][0] + rs.prior_sigma_vel_m_s * rng.normal(size=3)
                lines += [
                    f'[formation_peer_priors."0x{peer.radio_id:02X}"]',
                    f"t_gps_s = {float(t[0])!r}",
                    f"pos_ecef_m = [{', '.join(repr(float(v)) for v in pos)}]",
                    f"vel_ecef_m_s = [{', '.join(repr(float(v)) for v in vel)}]",
                    f"sigma_pos_m = {float(rs.prior_sigma_pos_m)!r}",
                    f"sigma_vel_m_s = {float(rs.prior_sigma_vel_m_s)!r}",
                    "",
                ]
        files[obs.name][CONFIG_NAME] = "\n".join(lines).encode()


def _corrupt(data: bytes, n: int, rng):
    buf = bytearray(data)
    offsets = np.sort(rng.choice(len(buf), size=min(n, len(buf)), replace=False))
    for o in offsets.tolist():
        buf[o] = (buf[o] + int(rng.integers(1, 256))) & 0xFF  # always a different byte
    return bytes(buf), offsets


def _ranges(s, t, t0, fix_rel, orb, gps_raw, files):
    """Range groups for every observer; fills files[name]['range/rngNNNNN.bin']."""
    rs = s.ranging
    mpc = range_packet.metres_per_count(range_packet.DEFAULT_BANDWIDTH_HZ)  # code 0x18, unfiltered
    out = {
        k: []
        for k in ("range_t_gps_s", "range_observer", "range_peer", "range_true_m", "range_measured_m", "range_valid")
    }
    for i, obs in enumerate(s.spacecraft):
        rng = scn.rng_for(s.seed, scn.STREAM_RANGE, i)
        rng_f = scn.rng_for(s.seed, scn.STREAM_FAULTS, 200 + i)
        groups = []
        for rec in range(fix_rel.size):
            for j, peer in enumerate(s.spacecraft):
                if j == i:
                    continue
                n_r = 2 if rng.random() < rs.two_range_fraction else 1
                delay = rng.uniform(rs.delay_min_s, rs.delay_max_s)
                t_meas = t0 + fix_rel[rec] + delay + rs.second_gap_s * np.arange(n_r)
                ri = sen.hermite_position(t, orb["r_gcrs_m"][i], orb["v_gcrs_m_s"][i], t_meas)
                rj = sen.hermite_position(t, orb["r_gcrs_m"][j], orb["v_gcrs_m_s"][j], t_meas)
                true_m = np.linalg.norm(ri - rj, axis=1)
                meas = true_m + obs.range_bias_m + rng.normal(size=n_r) * rs.sigma_m
                valid = rng_f.random(n_r) >= s.faults.range_invalid_fraction
                meas = np.where(valid, meas, rng_f.uniform(0, 3.7e5, n_r))
                meas = np.maximum(meas, 0.0)
                r = np.zeros(n_r, dtype=RANGE_DTYPE)
                # Whole seconds of the ranging spacecraft's clock: the packet has no fraction.
                r["t_sc_s"] = np.floor(sen.spacecraft_clock_s(t_meas, t0, obs.sc_minus_utc_s, obs.clock_drift_ppm))
                r["peer_id"] = peer.radio_id
                r["rssi_dbm"] = np.clip(
                    np.round(2.0 * (rs.rssi_dbm + rs.rssi_sigma_dbm * rng.normal(size=n_r))) / 2.0, -127.5, 0.0
                )
                r["fei_raw"] = np.clip(np.rint(rs.fei_sigma * rng.normal(size=n_r)), -(1 << 19), (1 << 19) - 1)
                # The radio reports a raw count; an invalid result is a negative one.
                raw = np.rint(meas / mpc)
                r["range_raw"] = np.where(valid, np.clip(raw, 1, RAW_MAX - 1), -np.maximum(raw, 1))
                gps = gps_raw[i if rs.gps_source == "own" else j][rec : rec + 1]
                groups.append(encode_range_group(gps, r))
                out["range_t_gps_s"].append(t_meas)
                out["range_observer"].append(np.full(n_r, i, dtype=np.int16))
                out["range_peer"].append(np.full(n_r, j, dtype=np.int16))
                out["range_true_m"].append(true_m)
                out["range_measured_m"].append(meas)
                out["range_valid"].append(valid)
        # Pack groups into files of at most file_max_bytes.
        file_no, current = 0, bytearray()
        rng_c = scn.rng_for(s.seed, scn.STREAM_FAULTS, 300 + i)

        def flush(data: bytes, file_no: int, name: str = obs.name, rng_c=rng_c) -> None:
            if s.faults.range_corrupt_bytes:
                data, _ = _corrupt(data, s.faults.range_corrupt_bytes, rng_c)
            files[name][f"range/rng{file_no:05d}.bin"] = data

        for g in groups:
            if current and len(current) + len(g) > rs.file_max_bytes:
                flush(bytes(current), file_no)
                file_no += 1
                current = bytearray()
            current += g
        if current:
            flush(bytes(current), file_no)
    dtypes = {"range_observer": np.int16, "range_peer": np.int16, "range_valid": bool}
    return {
        k: (np.concatenate(v) if v else np.zeros(0, dtype=dtypes.get(k, float))).astype(dtypes.get(k, float))
        for k, v in out.items()
    }


def write_scenario(scenario: Scenario, out_dir: Path) -> list[Path]:
    """Write the scenario's files under *out_dir*; returns the paths written."""
    out_dir = Path(out_dir)
    written = []
    for k, sc in enumerate(scenario.settings.spacecraft):
        home = out_dir if k == 0 else out_dir / sc.name
        for rel, data in scenario.files[sc.name].items():
            p = home / rel
            _write(p, data)
            written.append(p)
    p = out_dir / "scenario.toml"
    _write(p, scn.settings_to_toml(scenario.settings).encode())
    written.append(p)
    if scenario.tle_text is not None:
        p = out_dir / TLE_NAME
        _write(p, scenario.tle_text.encode())
        written.append(p)
    p = out_dir / "truth.npz"
    missing = sorted(set(scn.TRUTH_ARRAYS) - set(scenario.truth))
    extra = sorted(set(scenario.truth) - set(scn.TRUTH_ARRAYS))
    if missing or extra:
        raise RuntimeError(f"truth arrays mismatch: missing {missing}, undocumented {extra}")
    _write(p, _deterministic_npz(scenario.truth))
    written.append(p)
    return written


def _extra_spacecraft(k: int) -> scn.SpacecraftSettings:
    """Default formation member k >= 2: further along-track, alternating cross-track."""
    return scn.SpacecraftSettings(
        name=f"sc{k}",
        radio_id=0x4A + k,
        dlambda_m=-3000.0 * k,
        dey_m=300.0 + 100.0 * k,
        diy_m=600.0 * (-1) ** k,
        ballistic_coeff_kg_m2=50.0 - 3.0 * k,
    )


def check_settings(s: scn.ScenarioSettings) -> None:
    """``ValueError`` naming a fault setting outside its range (a fraction not in [0, 1],
    a negative count)."""
    for name, value in dataclasses.asdict(s.faults).items():
        if name.endswith("_fraction") and not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
            raise ValueError(f"faults.{name} must be a fraction between 0 and 1, got {value!r}")
        if name.endswith("_bytes") and not (isinstance(value, int) and value >= 0):
            raise ValueError(f"faults.{name} must be a count >= 0, got {value!r}")
    t = s.tle
    for name in ("fit_span_s", "sample_s"):
        if not (isinstance(getattr(t, name), (int, float)) and 0 < getattr(t, name) < math.inf):
            raise ValueError(f"tle.{name} must be > 0, got {getattr(t, name)!r}")
    if t.fit_span_s < t.sample_s:
        raise ValueError(f"tle.fit_span_s ({t.fit_span_s}) is shorter than tle.sample_s ({t.sample_s})")
    if not (isinstance(t.error_scale, (int, float)) and 0.0 <= t.error_scale < math.inf):
        raise ValueError(f"tle.error_scale must be >= 0, got {t.error_scale!r}")
    ids = [scn.norad_id_of(sc) for sc in s.spacecraft]
    if t.enabled and (len(set(ids)) != len(ids) or not all(0 < i < 100_000 for i in ids)):
        raise ValueError(f"NORAD ids must be unique and in 1..99999: {ids}")
