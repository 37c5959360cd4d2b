"""Scenario simulator: files, decoding through the flight decoders, truth, determinism, frames."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest

from ground.__main__ import main as ground_main
from ground.simulate import attitude as att
from ground.simulate import scenario as scn
from ground.simulate.environment import albedo_irradiance_faces, magnetic_field_ecef_nt
from ground.simulate.simulator import _deterministic_npz, deputy_elements, simulate
from pygnc.config import Config, load_config
from pygnc.estimation.quaternion import quat_multiply_array
from pygnc.formats.range_file import read_range_dir
from pygnc.formats.sense import OPT3001_MAX_LUX, read_sense_file
from pygnc.formats.settings import DecodeSettings
from pygnc.timebase import fit_clock_map

REPO = Path(__file__).resolve().parents[1]
DURATION = "300"


def _run(out: Path, *extra: str) -> None:
    assert ground_main(["simulate", str(out), "--duration", DURATION, "--quiet", *extra]) == 0


@pytest.fixture(scope="module")
def scenario_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scenario")
    _run(out, "--seed", "11")
    return out


@pytest.fixture(scope="module")
def truth(scenario_dir) -> dict:
    return scn.load_truth(scenario_dir / "truth.npz")


@pytest.fixture(scope="module")
def noise_free_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("noise_free")
    _run(out, "--seed", "5", "--noise-free")
    return out


def _sensor_index(truth) -> np.ndarray:
    return np.rint(truth["sensor_t_gps_s"] - truth["t_gps_s"][0]).astype(int)


# --------------------------------------------------------------------------- files
def test_cli_writes_all_files(scenario_dir):
    for rel in (
        "sense.bin",
        "range/rng00000.bin",
        "sc1/sense.bin",
        "sc1/range/rng00000.bin",
        "scenario.toml",
        "truth.npz",
    ):
        assert (scenario_dir / rel).is_file(), rel
    assert (scenario_dir / "sense.bin").stat().st_size % 251 == 0


def test_cli_refuses_to_overwrite_without_force(scenario_dir, capsys):
    assert ground_main(["simulate", str(scenario_dir), "--duration", DURATION, "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err


def test_cli_rejects_bad_settings(tmp_path, capsys):
    assert ground_main(["simulate", str(tmp_path / "x"), "--duration", "10", "--quiet"]) == 2
    assert ground_main(["simulate", str(tmp_path / "y"), "--set", "sensors.no_such_key=1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "too short" in err and "no_such_key" in err


def test_truth_has_the_documented_arrays(truth):
    assert set(truth) == set(scn.TRUTH_ARRAYS)
    n_sc, n_t = truth["r_gcrs_m"].shape[:2]
    assert n_sc == 2 and n_t == int(DURATION) + 1
    assert np.allclose(np.diff(truth["t_gps_s"]), 1.0)
    for name in (
        "r_gcrs_m",
        "v_gcrs_m_s",
        "r_ecef_m",
        "v_ecef_m_s",
        "w_body_rad_s",
        "mag_gcrs_ut",
        "mag_body_ut",
        "gyro_bias_imu_deg_s",
    ):
        assert truth[name].shape == (n_sc, n_t, 3), name
    assert truth["q_body_to_gcrs"].shape == (n_sc, n_t, 4)
    assert np.allclose(np.linalg.norm(truth["q_body_to_gcrs"], axis=2), 1.0, atol=1e-12)
    assert truth["sun_gcrs_m"].shape == (n_t, 3)
    assert truth["eclipse"].dtype == bool and truth["eclipse"].shape == (n_sc, n_t)
    n_s = truth["sensor_t_gps_s"].size
    assert truth["sun_lux_true"].shape == (n_sc, n_s, 6)
    assert n_s == 5 * truth["gps_t_gps_s"].size
    assert list(truth["spacecraft_name"]) == ["sc0", "sc1"]
    # GCRS and ECEF describe the same orbit: same radius.
    assert np.allclose(np.linalg.norm(truth["r_gcrs_m"], axis=2), np.linalg.norm(truth["r_ecef_m"], axis=2), atol=1e-3)


def test_formation_geometry(truth):
    sep = np.linalg.norm(truth["r_gcrs_m"][1] - truth["r_gcrs_m"][0], axis=1)
    assert 500.0 < sep.min() and sep.max() < 20_000.0
    # Default ROE: 3 km along-track with 400 m / 600 m oscillations; over a full orbit the
    # separation would range ~2.2-3.9 km; over these 5 minutes it must already change.
    assert sep.max() - sep.min() > 10.0
    orbit = scn.OrbitSettings()
    sc = scn.SpacecraftSettings(dlambda_m=-3000.0)
    a, e, i, raan, argp, nu = deputy_elements(orbit, sc)
    assert a == orbit.semi_major_axis_m and np.isclose(e, orbit.eccentricity)


def test_tumbling_rates_and_quaternion_kinematics(truth):
    w = truth["w_body_rad_s"]
    rate_deg_s = np.degrees(np.linalg.norm(w, axis=2))
    assert 1.0 < rate_deg_s.min() and rate_deg_s.max() < 8.0
    # Rates are the derivative of the attitude: q(t+1) = q(t) (x) exp(w dt / 2) to O(dt^3).
    q = truth["q_body_to_gcrs"][0]
    w_mid = 0.5 * (w[0][1:] + w[0][:-1])
    ang = np.linalg.norm(w_mid, axis=1)
    dq = np.concatenate([np.cos(ang / 2)[:, None], np.sin(ang / 2)[:, None] * w_mid / ang[:, None]], axis=1)
    q_pred = quat_multiply_array(q[:-1], dq)
    err = np.minimum(np.linalg.norm(q_pred - q[1:], axis=1), np.linalg.norm(q_pred + q[1:], axis=1))
    assert err.max() < 1e-5


def test_attitude_torque_free_conserves_momentum_and_energy():
    t = np.arange(0.0, 1801.0)
    q, w = att.propagate_attitude(t, [0.3, 0.5, -0.1, 0.8], np.radians([3.0, -2.0, 4.0]))
    j = np.asarray(att.DEFAULT_INERTIA_KG_M2).reshape(3, 3)
    h = att.rotate_body_to_gcrs(q, w @ j.T)
    energy = np.einsum("ni,ij,nj->n", w, j, w)
    assert np.abs(h - h[0]).max() / np.linalg.norm(h[0]) < 1e-9
    assert np.abs(energy / energy[0] - 1).max() < 1e-9
    # and it is not trivially constant: the body rates change (asymmetric body)
    assert np.ptp(w[:, 0]) > 1e-3


# --------------------------------------------------------------------------- sense.bin
def test_sense_decodes_cleanly_and_matches_truth(scenario_dir, truth):
    batch = read_sense_file(scenario_dir / "sense.bin")
    assert batch.stats.bytes_skipped == 0 and batch.stats.records_skipped == 0
    s, f = batch.sensors, batch.fixes
    idx = _sensor_index(truth)
    assert s.size == idx.size
    r_ib = truth["imu_to_body"]
    assert np.array_equal(r_ib, np.asarray(Config().imu_to_body).reshape(3, 3))
    # spacecraft time stamps: the floored simulated clock
    assert np.array_equal(s["t_sc_s"], truth["sensor_t_sc_s"][0])
    assert np.array_equal(s["t_sc_s"], np.floor(truth["t_sc_s"][0][idx]))
    # gyro: IMU frame, bias + 0.025 deg/s noise + 1/65.6 LSB
    gyro_true = np.degrees(truth["w_body_rad_s"][0][idx]) @ r_ib + truth["gyro_bias_imu_deg_s"][0][idx]
    g_err = s["gyro_deg_s"] - gyro_true
    assert np.abs(g_err).max() < 5 * 0.025 + 0.5 / 65.6
    assert 0.015 < g_err.std() < 0.035
    # magnetometer: IMU frame, bias + 0.6 uT noise + 1/16 LSB
    mag_true = truth["mag_body_ut"][0][idx] @ r_ib + truth["mag_bias_imu_ut"][0]
    m_err = s["mag_ut"] - mag_true
    assert np.abs(m_err).max() < 5 * 0.6 + 1 / 32
    assert 0.4 < m_err.std() < 0.8
    assert 20 < np.linalg.norm(mag_true, axis=1).min() and np.linalg.norm(mag_true, axis=1).max() < 65
    # sun sensors: saturation where the truth exceeds the OPT3001 range, noise elsewhere
    lux_true = truth["sun_lux_true"][0]
    sat = lux_true > OPT3001_MAX_LUX * 1.1
    assert np.all(s["sun_saturated"][sat])
    ok = lux_true < OPT3001_MAX_LUX * 0.9
    tol = 5 * (0.01 * lux_true[ok] + 1.0) + 0.005 * 2.0 ** np.ceil(np.log2(lux_true[ok] / 40.95 + 1))
    assert np.all(np.abs(s["sun_lux"][ok] - lux_true[ok]) < tol)
    # GPS: valid fixes at the documented times with 10 m / 0.01 m/s noise
    assert f.size == truth["gps_t_gps_s"].size and f["valid"].all()
    assert np.allclose(f["t_gps_s"], truth["gps_t_gps_s"])
    fi = np.rint(truth["gps_t_gps_s"] - truth["t_gps_s"][0]).astype(int)
    assert np.abs(f["pos_ecef_m"] - truth["r_ecef_m"][0][fi]).max() < 50.0
    assert np.abs(f["vel_ecef_m_s"] - truth["v_ecef_m_s"][0][fi]).max() < 0.05
    assert np.all(f["solution_status"] == 0) and np.all(f["time_status"] == 180)
    assert np.all(f["sats_in_solution"] <= f["sats_tracked"])
    assert np.all(np.abs(f["t_sc_s"] - truth["t_sc_s"][0][fi]) < 1.0)


def test_clock_map_recovers_simulated_offset(scenario_dir, truth):
    f = read_sense_file(scenario_dir / "sense.bin").fixes
    cm = fit_clock_map(f["t_sc_s"], f["t_gps_s"])
    # t_gps - t_sc = leap seconds + GPS epoch offset - clock offset (floor costs <= 1 s)
    expected = truth["t_gps_s"][0] - truth["t_sc_s"][0][0]
    assert abs(cm.gps_minus_sc_s - expected) < 1.0


def test_range_files_decode_cleanly_and_match_truth(scenario_dir, truth):
    for k, home in enumerate((scenario_dir, scenario_dir / "sc1")):
        batch = read_range_dir(home / "range")
        assert batch.stats.bytes_skipped == 0 and not batch.ignored_files
        mine = truth["range_observer"] == k
        r = batch.ranges
        assert r.size == mine.sum() and r["valid"].all()
        peer = 1 - k
        assert np.all(r["peer_id"] == truth["radio_id"][peer])
        err = r["range_m"] - truth["range_true_m"][mine]
        assert abs(err.mean() - 1.0) < 0.3  # the 1 m calibration bias
        assert np.abs(err - 1.0).max() < 5 * 0.5 + 0.001
        # the GPS packets are the observer's own fixes (the flight team's design), in value
        own_fixes = read_sense_file((scenario_dir if k == 0 else scenario_dir / "sc1") / "sense.bin").fixes
        assert np.array_equal(batch.gps_fixes["pos_ecef_m"], own_fixes["pos_ecef_m"])
        # measurement times: whole seconds of the spacecraft clock (the packet has no fraction)
        t_sc_true = np.interp(truth["range_t_gps_s"][mine], truth["t_gps_s"], truth["t_sc_s"][k])
        lag = t_sc_true - r["t_sc_s"]
        assert np.all(r["t_sc_s"] == np.floor(r["t_sc_s"])) and lag.min() >= -1e-6 and lag.max() < 1.0 + 1e-6


# --------------------------------------------------------------------------- settings, determinism
def test_scenario_toml_round_trips(scenario_dir):
    text = (scenario_dir / "scenario.toml").read_text()
    settings = scn.settings_from_toml(text)
    assert scn.settings_to_toml(settings) == text
    assert settings.seed == 11 and settings.duration_s == float(DURATION)
    assert scn.resolve(settings) == settings  # already resolved: nothing left to draw
    with pytest.raises(ValueError, match="unknown keys"):
        scn.settings_from_toml(text + "\nbogus_key = 1\n")
    # Scenarios written before the rename (clock_offset_s -> sc_minus_utc_s) still load the same.
    old = text.replace("sc_minus_utc_s =", "clock_offset_s =")
    assert old != text and scn.settings_from_toml(old) == settings
    with pytest.raises(ValueError, match="both"):
        scn.settings_from_toml(old.replace("clock_offset_s =", "sc_minus_utc_s = 1.0\nclock_offset_s =", 1))


def test_same_seed_gives_identical_bytes_and_settings_file_reproduces(scenario_dir, tmp_path):
    again = tmp_path / "again"
    assert ground_main(["simulate", str(again), "--settings", str(scenario_dir / "scenario.toml"), "--quiet"]) == 0
    for p in sorted(scenario_dir.rglob("*")):
        if p.is_file():
            assert (again / p.relative_to(scenario_dir)).read_bytes() == p.read_bytes(), p
    s = scn.settings_from_toml((scenario_dir / "scenario.toml").read_text())
    s.seed = 12
    for sc in s.spacecraft:
        sc.gyro_bias_imu_deg_s = None
    other = simulate(s)
    assert other.files["sc0"]["sense.bin"] != (scenario_dir / "sense.bin").read_bytes()


# --------------------------------------------------------------------------- frames / field
def test_magnetometer_in_imu_frame_matches_ppigrf_geodetic(noise_free_dir):
    """Decoded (noise-free) magnetometer -> body -> GCRS -> ITRS (astropy) -> geodetic
    east/north/up (astropy) equals ppigrf.igrf evaluated at the geodetic position.  This
    exercises every frame step of the simulator against an independent path."""
    import astropy.coordinates as astropy_coords
    import astropy.units as u
    import ppigrf
    from astropy.time import Time

    truth = scn.load_truth(noise_free_dir / "truth.npz")
    s = read_sense_file(noise_free_dir / "sense.bin").sensors
    idx = _sensor_index(truth)
    pick = np.arange(0, idx.size, 7)[:8]
    mag_imu = s["mag_ut"][pick] - truth["mag_bias_imu_ut"][0]
    mag_body = mag_imu @ truth["imu_to_body"].T
    mag_gcrs = att.rotate_body_to_gcrs(truth["q_body_to_gcrs"][0][idx[pick]], mag_body)
    r_gcrs = truth["r_gcrs_m"][0][idx[pick]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obstime = Time(truth["t_utc_unix_s"][idx[pick]], format="unix", scale="utc")
        step_m = 1000.0

        def to_itrs(p):
            c = astropy_coords.GCRS(astropy_coords.CartesianRepresentation(p.T * u.m), obstime=obstime)
            return c.transform_to(astropy_coords.ITRS(obstime=obstime)).cartesian.xyz.to_value(u.m).T

        r_itrs = to_itrs(r_gcrs)
        b_hat_itrs = (
            to_itrs(r_gcrs + step_m * mag_gcrs / np.linalg.norm(mag_gcrs, axis=1, keepdims=True)) - r_itrs
        ) / step_m
        b_itrs = b_hat_itrs * np.linalg.norm(mag_gcrs, axis=1, keepdims=True)
        loc = astropy_coords.EarthLocation.from_geocentric(*(r_itrs.T * u.m))
        lon = loc.lon.to_value(u.rad)
        lat = loc.lat.to_value(u.rad)
        h_km = loc.height.to_value(u.km)
    east = np.stack([-np.sin(lon), np.cos(lon), np.zeros_like(lon)], 1)
    north = np.stack([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)], 1)
    up = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], 1)
    ours_enu = np.stack([np.sum(b_itrs * e, 1) for e in (east, north, up)], 1)
    date = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=float(truth["t_utc_unix_s"][0]))
    ref = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(pick.size):
            be, bn, bu = ppigrf.igrf(np.degrees(lon[k]), np.degrees(lat[k]), h_km[k], date)
            ref.append([be.item(), bn.item(), bu.item()])
    ref_ut = np.array(ref) * 1e-3
    # quantisation 1/32 uT per axis; frames (UT1=UTC, no polar motion) ~1e-4 relative.
    # Measured: 0.038 uT worst component; a wrong sign or axis anywhere gives tens of uT.
    assert np.abs(ours_enu - ref_ut).max() < 0.1, np.abs(ours_enu - ref_ut).max()


def test_field_ecef_matches_ppigrf_geodetic_at_poles_and_equator():
    """ppigrf's geocentric (r, theta=south, phi) output turned into ECEF agrees with its
    geodetic (east, north, up) output rotated by geodetic latitude (WGS-84, closed form)."""
    import ppigrf

    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    lat_deg = np.array([0.0, 45.0, -60.0, 85.0, -89.0])
    lon_deg = np.array([0.0, 100.0, -120.0, 30.0, 200.0])
    h_m = np.full(5, 500e3)
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    n = a / np.sqrt(1 - e2 * np.sin(lat) ** 2)
    r = np.stack(
        [
            (n + h_m) * np.cos(lat) * np.cos(lon),
            (n + h_m) * np.cos(lat) * np.sin(lon),
            (n * (1 - e2) + h_m) * np.sin(lat),
        ],
        1,
    )
    t_gps = 1_426_000_000.0  # 2025-03
    ours = magnetic_field_ecef_nt(r, np.full(5, t_gps))
    east = np.stack([-np.sin(lon), np.cos(lon), np.zeros_like(lon)], 1)
    north = np.stack([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)], 1)
    up = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], 1)
    from ground.simulate.environment import _utc_datetime

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        be, bn, bu = ppigrf.igrf(lon_deg, lat_deg, h_m / 1000.0, _utc_datetime(t_gps))
    ref = be.ravel()[:, None] * east + bn.ravel()[:, None] * north + bu.ravel()[:, None] * up
    assert np.abs(ours - ref).max() < 1.0  # nT, of ~20 000-50 000 nT


def test_albedo_at_subsolar_point_is_bounded_by_the_view_factor():
    r = np.array([[6_878_137.0, 0.0, 0.0]])
    sun = np.array([[1.496e11, 0.0, 0.0]])
    normals = np.array([[[-1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]]])
    e = albedo_irradiance_faces(r, sun, normals, albedo=0.3)[0]
    view = (6_371_000.0 / 6_878_137.0) ** 2
    assert 0.8 * 0.3 * view < e[0] < 0.3 * view  # nadir face
    assert e[1] == 0.0  # zenith face sees no Earth
    assert 0.0 < e[2] < e[0]
    night = albedo_irradiance_faces(r, -sun, normals, albedo=0.3)[0]
    assert night.max() == 0.0


# --------------------------------------------------------------------------- faults
def test_faults_are_written_and_flagged(tmp_path):
    out = tmp_path / "faults"
    _run(
        out,
        "--seed",
        "3",
        "--gps-drop-fraction",
        "0.2",
        "--gps-invalid-fraction",
        "0.2",
        "--gps-outlier-fraction",
        "0.3",
        "--gps-gap",
        "100:150",
        "--range-invalid-fraction",
        "0.3",
    )
    truth = scn.load_truth(out / "truth.npz")
    f = read_sense_file(out / "sense.bin").fixes
    code = truth["gps_fault"][0]
    assert {0, 1, 2, 3} <= set(code.tolist())
    assert np.all(f["solution_status"][code == 1] == 1) and np.all(f["pos_ecef_m"][code == 1] == 0)
    assert np.all(f["solution_status"][code == 2] == 1) and not f["valid"][code == 2].any()
    gap = (truth["gps_t_gps_s"] - truth["t_gps_s"][0] >= 100) & (truth["gps_t_gps_s"] - truth["t_gps_s"][0] < 150)
    assert np.all(code[gap] == 1)
    fi = np.rint(truth["gps_t_gps_s"] - truth["t_gps_s"][0]).astype(int)
    err = np.linalg.norm(f["pos_ecef_m"] - truth["r_ecef_m"][0][fi], axis=1)
    assert np.all(err[code == 3] > 800) and np.all(err[code == 0] < 80)
    assert np.array_equal(f["valid"], (code == 0) | (code == 3))  # outliers look valid
    r = read_range_dir(out / "range").ranges
    assert np.array_equal(r["valid"], truth["range_valid"][truth["range_observer"] == 0])
    assert 0 < (~r["valid"]).sum() < r.size


def test_corrupt_bytes_are_survivable_and_recorded(tmp_path):
    out = tmp_path / "corrupt"
    _run(out, "--seed", "4", "--corrupt-bytes", "3")
    truth = scn.load_truth(out / "truth.npz")
    data = (out / "sense.bin").read_bytes()
    assert truth["sense_corrupt_offsets"].shape == (2, 3)
    batch = read_sense_file(out / "sense.bin")
    assert batch.stats.bytes_total == len(data)
    assert read_range_dir(out / "range").stats.bytes_total > 0


def test_team_status_convention(tmp_path):
    out = tmp_path / "team"
    _run(out, "--seed", "2", "--good-status", "1", "--spacecraft", "1")
    f = read_sense_file(out / "sense.bin", DecodeSettings(accepted_solution_status=(1,))).fixes
    assert np.all(f["solution_status"] == 1) and f["valid"].all()
    assert not (out / "range").exists() or not any((out / "range").iterdir())


def test_npz_is_deterministic():
    a = {"x": np.arange(3.0), "y": np.array(["a"])}
    assert _deterministic_npz(a) == _deterministic_npz(dict(a))


# --------------------------------------------------------------------------- committed sample
@pytest.mark.parametrize("name, max_bytes", [("sample", 3_000_000), ("sample_5min", 200_000)])
def test_committed_sample_is_small_and_decodes_cleanly(name, max_bytes):
    sample = REPO / "data" / name
    total = sum(p.stat().st_size for p in sample.rglob("*") if p.is_file())
    assert total < max_bytes
    settings = scn.load_settings(sample / "scenario.toml")
    for home in (sample, sample / "sc1"):
        assert read_sense_file(home / "sense.bin").stats.bytes_skipped == 0
        assert read_range_dir(home / "range").stats.bytes_skipped == 0
    truth = scn.load_truth(sample / "truth.npz")
    assert set(truth) == set(scn.TRUTH_ARRAYS)
    assert truth["r_gcrs_m"].shape[0] == len(settings.spacecraft)


#: How far the sample's truth.npz floats may differ between CPUs, as a fraction of each
#: array's spread (its standard deviation; a constant array: not at all), and the
#: configurations' floats, relative: numpy takes other SIMD paths on other CPUs (AVX-512 or
#: not), which round the last bits of the simulator's sines, exponentials and products
#: differently - measured between two machines: 9e-9 of a value in the truth (attitude,
#: light; its times identical), 2e-15 in a prior's digits.  A shifted time array (0.5 s in
#: ~2 h of spread: 2.5e-4) or a prior 4 m off (6e-7 of 7e6 m) is far outside.
SAMPLE_TRUTH_SPREAD_TOL = 1e-7
SAMPLE_CONFIG_RTOL = 1e-12


def _same_numbers(a, b, path: str = "") -> list[str]:
    """Where parsed TOML values *a* and *b* differ beyond rounding (their paths)."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return [d for k in a for d in _same_numbers(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (u, v) in enumerate(zip(a, b)) for d in _same_numbers(u, v, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        same = a == pytest.approx(b, rel=SAMPLE_CONFIG_RTOL, abs=1e-300) or (a != a and b != b)
        return [] if same else [path]
    return [] if a == b and type(a) is type(b) else [path]


def _same_array(x: np.ndarray, y: np.ndarray) -> bool:
    """*x* is *y* up to :data:`SAMPLE_TRUTH_SPREAD_TOL` of *y*'s spread in every finite entry,
    and the same non-finite entries."""
    if x.shape != y.shape or x.dtype != y.dtype:
        return False
    if x.dtype.kind != "f":
        return bool(np.array_equal(x, y))
    fin = np.isfinite(y)
    if not np.array_equal(fin, np.isfinite(x)) or not np.array_equal(x[~fin], y[~fin], equal_nan=True):
        return False
    spread = float(np.std(y[fin])) if fin.any() else 0.0
    return bool(np.all(np.abs(x[fin] - y[fin]) <= SAMPLE_TRUTH_SPREAD_TOL * spread))


def _same_to_rounding(name: Path, made: bytes, committed: bytes) -> bool:
    """The flight's inputs (sense.bin, range files) and every other file byte for byte; the
    truth's and the configurations' floats to a CPU's rounding (above)."""
    if made == committed:
        return True
    if name.suffix == ".npz":
        a, b = np.load(io.BytesIO(made)), np.load(io.BytesIO(committed))
        return sorted(a.files) == sorted(b.files) and all(_same_array(a[k], b[k]) for k in a.files)
    if name.suffix == ".toml":
        return not _same_numbers(tomllib.loads(made.decode()), tomllib.loads(committed.decode()))
    return False


def test_the_sample_comparison_forgives_rounding_only():
    """The comparison above takes a CPU's last bits, and nothing more."""
    truth = dict(np.load(REPO / "data" / "sample" / "truth.npz"))

    def npz(d) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **d)
        return buf.getvalue()

    k = next(n for n, v in truth.items() if v.dtype.kind == "f" and v.size)
    near, far = dict(truth), dict(truth)
    near[k] = truth[k] * (1.0 + 1e-9)
    far[k] = truth[k] * (1.0 + 1e-4)
    name = Path("truth.npz")
    assert _same_to_rounding(name, npz(near), npz(truth)) and not _same_to_rounding(name, npz(far), npz(truth))
    for key, shift in (("t_gps_s", 1000.0), ("range_t_gps_s", 0.5), ("sensor_t_gps_s", 2.0)):
        moved = dict(truth)
        moved[key] = truth[key] + shift
        assert not _same_to_rounding(name, npz(moved), npz(truth)), key
    toml = Path("pygnc_config.toml")
    assert _same_to_rounding(toml, b"a = 0.1000000000000001\n", b"a = 0.1\n")
    assert _same_to_rounding(toml, b"a = nan\n", b"a = nan\n")
    prior = b"p = [-1831702.108903021, 4.0]\n"
    for other in (b"a = 0.1001\n", b"b = 0.1\n", b"a = 1\n", b"a = [0.1, 0.2]\n", b"a = nan\n"):
        assert not _same_to_rounding(toml, other, b"a = 0.1\n")
    assert not _same_to_rounding(toml, b"p = [-1831698.108903021, 4.0]\n", prior)
    assert not _same_to_rounding(Path("sense.bin"), b"\x00\x01", b"\x00\x02")


def test_the_bundled_sample_is_what_its_command_makes(tmp_path):
    """data/sample is made by `python scripts/make_sample.py` (issue 45 item 1: provenance,
    reproducible): the flight's inputs the same bytes, the truth and the priors the same to the
    CPU's rounding; its priors are from the partners' downlinks."""
    out = tmp_path / "sample"
    p = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_sample.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    made = {f.relative_to(out): f.read_bytes() for f in out.rglob("*") if f.is_file()}
    committed = {
        f.relative_to(REPO / "data" / "sample"): f.read_bytes()
        for f in (REPO / "data" / "sample").rglob("*")
        if f.is_file() and f.name != "README.md"
    }
    stale = "data/sample is not what `python scripts/make_sample.py` makes now: run it and commit the result"
    assert sorted(made) == sorted(committed), stale
    assert [k for k in made if not _same_to_rounding(k, made[k], committed[k])] == [], stale
    for home, peer in ((out, 0x4B), (out / "sc1", 0x4A)):
        prior = load_config(home / "pygnc_config.toml").formation_peer_priors[peer]
        assert prior["source"].startswith(f"downlink 0x{peer:02X} estimate") and prior["wrong_side_probability"] == 0


def test_every_bundled_scenario_loads_and_the_two_day_pair_differs_only_in_whose_fix():
    """data/scenarios/*.toml load; the two-spacecraft day's range-only and partner-fix
    settings (bench_batch.py --versus) are the same day apart from the range files' GPS."""
    d = Path(__file__).resolve().parent.parent / "data" / "scenarios"
    loaded = {p.stem: scn.load_settings(p) for p in sorted(d.glob("*.toml"))}
    assert len(loaded) >= 7
    ro, pf = loaded["two_sc_24h_range_only"], loaded["two_sc_24h_partner_fix"]
    assert (ro.ranging.gps_source, pf.ranging.gps_source) == ("own", "peer")
    assert dataclasses.replace(pf, ranging=ro.ranging) == ro and len(ro.spacecraft) == 2
