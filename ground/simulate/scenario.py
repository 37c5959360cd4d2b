"""Scenario settings (dataclasses <-> scenario.toml) and the layout of truth.npz
(:data:`TRUTH_ARRAYS`, which the simulator writes and :func:`load_truth` reads).

A scenario is fully described by :class:`ScenarioSettings`.  Per-spacecraft values left
unset (``None``: initial attitude and rates, sensor biases, clock offset and drift, residual
dipole, range bias) are drawn from the seed by :func:`resolve`; the ``scenario.toml`` the
simulator writes holds the *resolved* settings, so running it again reproduces the same
bytes whatever the defaults of a later version.  Every random stream is keyed by
``(seed, purpose, spacecraft index)`` so adding a feature does not reshuffle the others.

Units are in every field name; angles in degrees only where the name says ``_deg``.
Quaternions are scalar-first and rotate body vectors into GCRS.
"""

from __future__ import annotations

import dataclasses
import io
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Version of the scenario.toml / truth.npz layout.
SCENARIO_FORMAT_VERSION = 1

# Purposes of the independent random streams (never renumber; append).
STREAM_RESOLVE = 1
STREAM_GYRO = 2
STREAM_MAG = 3
STREAM_LUX = 4
STREAM_GPS = 5
STREAM_RANGE = 6
STREAM_FAULTS = 7
STREAM_ORBIT = 8
STREAM_PRIOR = 9
STREAM_TLE = 10


def rng_for(seed: int, purpose: int, index: int = 0) -> np.random.Generator:
    """Independent generator for (seed, purpose, spacecraft index)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(purpose), int(index)]))


@dataclass
class OrbitSettings:
    """Reference orbit: osculating Keplerian elements in GCRS at the scenario start.

    Spacecraft are placed relative to it by their relative orbital elements."""

    semi_major_axis_m: float = 6_878_137.0  # 500 km altitude
    eccentricity: float = 0.0012
    inclination_deg: float = 97.4  # sun-synchronous at 500 km
    raan_deg: float = 40.0
    arg_perigee_deg: float = 90.0
    true_anomaly_deg: float = 10.0


@dataclass
class SpacecraftSettings:
    """One spacecraft.  ``d*_m`` are quasi-nonsingular relative orbital elements (D'Amico)
    with respect to the reference orbit, scaled by its semi-major axis, metres:
    ``da_m`` = a δa (the pair drifts along-track by -3π da_m per orbit),
    ``dlambda_m`` = a δλ (mean along-track separation), ``dex_m``/``dey_m`` = a δe (radial
    oscillation amplitude; along-track oscillation twice that), ``dix_m``/``diy_m`` = a δi
    (cross-track oscillation amplitude)."""

    name: str = "sc0"
    radio_id: int = 0x4A
    da_m: float = 0.0
    dlambda_m: float = 0.0
    dex_m: float = 0.0
    dey_m: float = 0.0
    dix_m: float = 0.0
    diy_m: float = 0.0
    #: m / (C_D A), kg/m^2 (1.5 kg, C_D 2.2, 0.0136 m^2 mean area: ~50).
    ballistic_coeff_kg_m2: float = 50.0
    #: NORAD catalogue number of its TLE in tle.txt (None: 90000 + radio_id).
    norad_id: int | None = None
    # --- drawn from the seed when None -----------------------------------------------
    #: Spacecraft clock at the start minus UTC, s (the clock is unix seconds).
    sc_minus_utc_s: float | None = None
    #: Spacecraft clock rate error, parts per million.
    clock_drift_ppm: float | None = None
    #: Initial attitude, scalar-first, body -> GCRS.
    q0_body_to_gcrs: list[float] | None = None
    #: Initial body rates relative to GCRS in body axes, deg/s.
    w0_body_deg_s: list[float] | None = None
    #: Gyro bias in the IMU frame at the start, deg/s.
    gyro_bias_imu_deg_s: list[float] | None = None
    #: Magnetometer (hard-iron) bias in the IMU frame, µT.
    mag_bias_imu_ut: list[float] | None = None
    #: Residual magnetic dipole in body axes, A m^2.
    dipole_body_a_m2: list[float] | None = None
    #: Calibration bias of the ranges this spacecraft's radio measures, m.
    range_bias_m: float | None = None


def _default_spacecraft() -> list[SpacecraftSettings]:
    return [
        SpacecraftSettings(name="sc0", radio_id=0x4A, ballistic_coeff_kg_m2=50.0),
        SpacecraftSettings(
            name="sc1",
            radio_id=0x4B,
            dlambda_m=-3000.0,
            dex_m=0.0,
            dey_m=400.0,
            dix_m=0.0,
            diy_m=600.0,
            ballistic_coeff_kg_m2=42.0,
        ),
    ]


@dataclass
class AttitudeSettings:
    #: Inertia tensor, body axes, row-major 3x3, kg m^2 (1.5U, 1.5 kg).
    inertia_kg_m2: list[float] = field(
        default_factory=lambda: [4.9e-3, 1.2e-5, -2.0e-5, 1.2e-5, 4.6e-3, 3.0e-5, -2.0e-5, 3.0e-5, 2.5e-3]
    )
    gravity_gradient: bool = True
    #: Magnitude of the drawn residual dipole, A m^2 (0 for torque-free).
    dipole_a_m2: float = 1.0e-3
    #: Drawn initial rate magnitudes are uniform in [min, max], deg/s, random axis.
    rate_min_deg_s: float = 2.0
    rate_max_deg_s: float = 5.0
    #: Largest internal step of the DOP853 integrator, s.
    max_step_s: float = 1.0


@dataclass
class EnvironmentSettings:
    #: Direct sunlight on a face normal to the sun at 1 AU, lux.
    sun_lux_at_1au: float = 130_000.0
    #: Bond albedo of the Lambertian Earth sphere (0 disables albedo).
    albedo: float = 0.3
    #: Quadrature of the visible cap for albedo: rings x azimuths.
    albedo_rings: int = 12
    albedo_azimuths: int = 24


@dataclass
class SensorSettings:
    #: Period of sensor samples, s (GPS time), and samples per sense.bin record.
    period_s: float = 5.0
    per_record: int = 5
    #: IMU-to-body rotation, row-major (v_body = R v_imu).  PY4 default.
    imu_to_body: list[float] = field(default_factory=lambda: [0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0])
    mag_lsb_ut: float = 1.0 / 16.0
    gyro_lsb_deg_s: float = 1.0 / 65.6
    #: White noise per sample, 1 sigma per axis.
    gyro_noise_deg_s: float = 0.025
    mag_noise_ut: float = 0.6
    #: Drawn biases are uniform in [-max, max] per axis.
    gyro_bias_max_deg_s: float = 2.0
    mag_bias_max_ut: float = 1.0
    #: Gyro bias random walk, deg/s per sqrt(s) (0: constant bias).
    gyro_bias_walk_deg_s_per_sqrt_s: float = 0.0
    #: OPT3001: multiplicative noise (1 sigma fraction) and additive floor (1 sigma, lux).
    lux_noise_fraction: float = 0.01
    lux_noise_floor_lux: float = 1.0
    #: Value written in the unused raw-Hall field.
    hall_raw: int = 0


@dataclass
class ClockSettings:
    #: Drawn clock offsets are uniform in [-max, max], s; drifts in [-max, max] ppm.
    offset_max_s: float = 30.0
    drift_max_ppm: float = 20.0


@dataclass
class GpsSettings:
    #: GPS fix time relative to the last sensor sample of its record, s (whole seconds).
    offset_from_last_sensor_s: float = -2.0
    #: Truth noise, 1 sigma per axis (also written as the receiver's reported sigma).
    pos_sigma_m: float = 10.0
    vel_sigma_m_s: float = 0.01
    #: Of ``pos_sigma_m``, the part that varies slowly (Gauss-Markov, correlation time
    #: ``correlation_s``), as a receiver's ionosphere and ephemeris errors do; 0: all white.
    correlated_sigma_m: float = 0.0
    correlation_s: float = 1200.0
    #: Solution status written for good fixes (0 SOL_COMPUTED; the team's simulator wrote 1).
    good_solution_status: int = 0
    #: NovAtel time status of good fixes (180 FINESTEERING).
    time_status: int = 180
    sats_tracked_min: int = 8
    sats_tracked_max: int = 12
    sats_in_solution_min: int = 6


@dataclass
class RangeSettings:
    sigma_m: float = 0.5
    #: Default calibration bias of every radio, m (per-spacecraft override in [[spacecraft]]).
    bias_m: float = 1.0
    #: Fraction of groups that carry two range packets (else one).
    two_range_fraction: float = 0.5
    #: Range measurement time after the peer's fix, uniform in [min, max], s; a second
    #: range follows the first by ``second_gap_s``.
    delay_min_s: float = 0.5
    delay_max_s: float = 3.0
    second_gap_s: float = 1.0
    #: A file is closed before it would exceed this size, bytes.
    file_max_bytes: int = 25_600
    #: Whose fix each range file's GPS packet is: "own" (the flight team's design) or
    #: "peer"; the spacecraft's uplinked configuration (pygnc_config.toml) says the same.
    gps_source: str = "own"
    #: Radio quality signals written with each range: RSSI mean and spread (dBm), FEI
    #: spread (raw counts, 20-bit).
    rssi_dbm: float = -60.0
    rssi_sigma_dbm: float = 3.0
    fei_sigma: float = 200.0
    #: Partner priors uplinked in each spacecraft's pygnc_config.toml (range-only
    #: navigation): the truth at the scenario start plus Gaussian errors of these sigmas
    #: per ECEF axis (no file when gps_source is "peer"; no prior when sigma_pos_m <= 0).
    prior_sigma_pos_m: float = 1000.0
    prior_sigma_vel_m_s: float = 1.0


@dataclass
class TleSettings:
    """tle.txt (``python -m ground simulate --tle``): a TLE of every spacecraft, fitted to its
    truth as a catalogue would (:mod:`ground.simulate.published_tles`), with TLE-class errors added."""

    enabled: bool = False
    #: TLE epoch relative to the scenario start, s (negative: the TLE is older than the start).
    epoch_s: float = -21_600.0
    #: The fit's span, ending at the epoch, and the spacing of its truth positions, s.
    fit_span_s: float = 86_400.0
    sample_s: float = 60.0
    #: Scale of the errors drawn from the uplink's TLE covariance model (0: the exact fit).
    error_scale: float = 1.0


@dataclass
class FaultSettings:
    #: Fraction of GPS fixes dropped at random (written as INSUFFICIENT_OBS, zero position).
    gps_drop_fraction: float = 0.0
    #: Intervals without fixes, [[start_s, end_s], ...] relative to the scenario start.
    gps_gaps_s: list[list[float]] = field(default_factory=list)
    #: Fraction of fixes whose data are good but whose status is ``gps_invalid_status``.
    gps_invalid_status_fraction: float = 0.0
    gps_invalid_status: int = 1
    #: Fraction of fixes with an outlier of ``gps_outlier_m`` (random direction).
    gps_outlier_fraction: float = 0.0
    gps_outlier_m: float = 1000.0
    #: Fraction of range packets flagged invalid (bit 0 clear) with a garbage range.
    range_invalid_fraction: float = 0.0
    #: Random bytes overwritten in each sense.bin / each range file after encoding.
    sense_corrupt_bytes: int = 0
    range_corrupt_bytes: int = 0


@dataclass
class ScenarioSettings:
    format_version: int = SCENARIO_FORMAT_VERSION
    seed: int = 1
    #: Scenario start, UTC, ISO 8601 (whole seconds).
    start_utc: str = "2025-03-20T06:00:00Z"
    duration_s: float = 10_800.0
    orbit: OrbitSettings = field(default_factory=OrbitSettings)
    spacecraft: list[SpacecraftSettings] = field(default_factory=_default_spacecraft)
    attitude: AttitudeSettings = field(default_factory=AttitudeSettings)
    environment: EnvironmentSettings = field(default_factory=EnvironmentSettings)
    sensors: SensorSettings = field(default_factory=SensorSettings)
    clock: ClockSettings = field(default_factory=ClockSettings)
    gps: GpsSettings = field(default_factory=GpsSettings)
    ranging: RangeSettings = field(default_factory=RangeSettings)
    faults: FaultSettings = field(default_factory=FaultSettings)
    tle: TleSettings = field(default_factory=TleSettings)

    @property
    def gps_period_s(self) -> float:
        return self.sensors.period_s * self.sensors.per_record


# --------------------------------------------------------------------------- TOML
def _to_plain(obj):
    if dataclasses.is_dataclass(obj):
        return {
            f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if getattr(obj, f.name) is not None
        }
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def settings_to_dict(settings: ScenarioSettings) -> dict:
    """Plain dict (TOML-able: ``None`` fields omitted)."""
    return _to_plain(settings)


def settings_to_toml(settings: ScenarioSettings) -> str:
    import tomli_w

    buf = io.StringIO()
    buf.write("# pygnc scenario settings (python -m ground simulate --settings THIS_FILE ...)\n")
    buf.write("# Units are in the names; quaternions scalar-first, body -> GCRS.\n")
    buf.write(tomli_w.dumps(settings_to_dict(settings)))
    return buf.getvalue()


#: Keys renamed since scenarios were first written: old name -> new name (still read).
_RENAMED_KEYS = {SpacecraftSettings: {"clock_offset_s": "sc_minus_utc_s"}}


def _from_dict(cls, data: dict, where: str):
    for old, new in _RENAMED_KEYS.get(cls, {}).items():
        if old in data:
            if new in data:
                raise ValueError(f"{where}: both {old!r} (old name) and {new!r} given")
            data = {(new if k == old else k): v for k, v in data.items()}
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        import difflib

        close = [difflib.get_close_matches(k, sorted(names), n=1) for k in unknown]
        guesses = "; ".join(f"{k!r}: did you mean {c[0]!r}?" for k, c in zip(unknown, close) if c)
        raise ValueError(
            f"unknown keys in {where}: {unknown}"
            + (f" ({guesses})" if guesses else "")
            + f"; known: {', '.join(sorted(names))}"
        )
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ValueError(f"{where}.{name} must be a table")
            kwargs[name] = _from_dict(hint, value, f"{where}.{name}")
        elif origin is list and args and dataclasses.is_dataclass(args[0]):
            kwargs[name] = [_from_dict(args[0], v, f"{where}.{name}[{i}]") for i, v in enumerate(value)]
        elif hint is float or (float in args and value is not None and not isinstance(value, list)):
            kwargs[name] = float(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def settings_from_dict(data: dict) -> ScenarioSettings:
    """Settings from a plain dict (missing keys take their defaults; unknown keys raise)."""
    settings = _from_dict(ScenarioSettings, data, "scenario")
    if settings.format_version != SCENARIO_FORMAT_VERSION:
        raise ValueError(f"scenario format_version {settings.format_version} != {SCENARIO_FORMAT_VERSION}")
    return settings


def settings_from_toml(text: str) -> ScenarioSettings:
    return settings_from_dict(tomllib.loads(text))


def load_settings(path: str | Path) -> ScenarioSettings:
    return settings_from_toml(Path(path).read_text())


def set_dotted(settings: ScenarioSettings, key: str, value) -> ScenarioSettings:
    """A copy of *settings* with the setting at the dotted *key* (``sensors.gyro_noise_deg_s``,
    ``spacecraft.1.dlambda_m``: list items by index) set to the plain *value*.  An unknown
    key or an index past the end raises ``ValueError`` naming it."""
    data = settings_to_dict(settings)
    node = data
    parts = key.strip().split(".")
    try:
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        if isinstance(node, list):
            node[int(parts[-1])] = value
        else:
            node[parts[-1]] = value
    except (IndexError, ValueError, TypeError, AttributeError):
        raise ValueError(f"no setting {key!r} (list items are numbered from 0)") from None
    return settings_from_dict(data)


# --------------------------------------------------------------------------- resolve
def _uniform3(rng, half_width):
    return [float(v) for v in rng.uniform(-half_width, half_width, 3)]


def norad_id_of(sc: SpacecraftSettings) -> int:
    """The spacecraft's NORAD catalogue number in tle.txt: its setting, else 90000 + radio id."""
    return int(sc.norad_id) if sc.norad_id is not None else 90_000 + int(sc.radio_id)


def resolve(settings: ScenarioSettings) -> ScenarioSettings:
    """Copy of *settings* with every ``None`` spacecraft value drawn from the seed."""
    from ground.simulate.attitude import random_quaternion

    s = dataclasses.replace(settings, spacecraft=[dataclasses.replace(sc) for sc in settings.spacecraft])
    names = [sc.name for sc in s.spacecraft]
    if len(set(names)) != len(names):
        raise ValueError(f"spacecraft names must be unique: {names}")
    ids = [sc.radio_id for sc in s.spacecraft]
    if len(set(ids)) != len(ids) or not all(0 <= i <= 255 for i in ids):
        raise ValueError(f"radio ids must be unique bytes: {ids}")
    g = s.gps
    if not 0.0 <= g.correlated_sigma_m <= g.pos_sigma_m or not g.correlation_s > 0.0:
        raise ValueError(
            f"gps.correlated_sigma_m must be in [0, gps.pos_sigma_m = {g.pos_sigma_m}] (it is {g.correlated_sigma_m})"
            f" and gps.correlation_s > 0 (it is {g.correlation_s})"
        )
    for k, sc in enumerate(s.spacecraft):
        rng = rng_for(s.seed, STREAM_RESOLVE, k)
        # Draw everything in a fixed order, then keep only what is unset.
        sc_minus_utc = float(rng.uniform(-s.clock.offset_max_s, s.clock.offset_max_s))
        clock_drift = float(rng.uniform(-s.clock.drift_max_ppm, s.clock.drift_max_ppm))
        q0 = [float(v) for v in random_quaternion(rng)]
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        rate = rng.uniform(s.attitude.rate_min_deg_s, s.attitude.rate_max_deg_s)
        w0 = [float(v) for v in axis * rate]
        gyro_bias = _uniform3(rng, s.sensors.gyro_bias_max_deg_s)
        mag_bias = _uniform3(rng, s.sensors.mag_bias_max_ut)
        d_axis = rng.normal(size=3)
        d_axis /= np.linalg.norm(d_axis)
        dipole = [float(v) for v in d_axis * s.attitude.dipole_a_m2]
        if sc.sc_minus_utc_s is None:
            sc.sc_minus_utc_s = sc_minus_utc
        if sc.clock_drift_ppm is None:
            sc.clock_drift_ppm = clock_drift
        if sc.q0_body_to_gcrs is None:
            sc.q0_body_to_gcrs = q0
        if sc.w0_body_deg_s is None:
            sc.w0_body_deg_s = w0
        if sc.gyro_bias_imu_deg_s is None:
            sc.gyro_bias_imu_deg_s = gyro_bias
        if sc.mag_bias_imu_ut is None:
            sc.mag_bias_imu_ut = mag_bias
        if sc.dipole_body_a_m2 is None:
            sc.dipole_body_a_m2 = dipole
        if sc.range_bias_m is None:
            sc.range_bias_m = float(s.ranging.bias_m)
    return s


# --------------------------------------------------------------------------- truth.npz
#: Arrays of truth.npz: name -> (shape in terms of n_sc, n_t, ..., unit/frame).  The single
#: source for docs/interface.md and for the test that checks the file.
TRUTH_ARRAYS = {
    "format_version": ("()", "int, layout version (1)"),
    "t_gps_s": ("(n_t,)", "GPS seconds of the 1 Hz truth grid"),
    "t_utc_unix_s": ("(n_t,)", "the same instants as UTC POSIX seconds"),
    "spacecraft_name": ("(n_sc,)", "str; index 0 is the spacecraft whose files are at the top of the scenario"),
    "radio_id": ("(n_sc,)", "uint8 radio id (the range packets' peer id)"),
    "r_gcrs_m": ("(n_sc, n_t, 3)", "position, GCRS, m"),
    "v_gcrs_m_s": ("(n_sc, n_t, 3)", "velocity, GCRS, m/s"),
    "r_ecef_m": ("(n_sc, n_t, 3)", "position, ITRS/ECEF, m"),
    "v_ecef_m_s": ("(n_sc, n_t, 3)", "velocity relative to ITRS, in ITRS axes, m/s"),
    "q_body_to_gcrs": ("(n_sc, n_t, 4)", "attitude quaternion, scalar-first, rotates body vectors into GCRS"),
    "w_body_rad_s": ("(n_sc, n_t, 3)", "angular velocity of body w.r.t. GCRS, body axes, rad/s"),
    "mag_gcrs_ut": ("(n_sc, n_t, 3)", "IGRF field at the spacecraft, GCRS, µT"),
    "mag_body_ut": ("(n_sc, n_t, 3)", "the same field in body axes, µT"),
    "sun_gcrs_m": ("(n_t, 3)", "geocentric sun position, GCRS, m"),
    "sun_fraction": ("(n_sc, n_t)", "visible fraction of the solar disc (1 sun, 0 umbra)"),
    "eclipse": ("(n_sc, n_t)", "bool, sun_fraction < 0.5"),
    "gyro_bias_imu_deg_s": ("(n_sc, n_t, 3)", "gyro bias, IMU frame, deg/s"),
    "mag_bias_imu_ut": ("(n_sc, 3)", "magnetometer bias, IMU frame, µT"),
    "imu_to_body": ("(3, 3)", "v_body = imu_to_body @ v_imu"),
    "inertia_kg_m2": ("(3, 3)", "inertia tensor, body axes, kg m^2"),
    "sc_minus_utc_s": ("(n_sc,)", "spacecraft clock minus UTC at t_gps_s[0], s"),
    "clock_drift_ppm": ("(n_sc,)", "spacecraft clock rate error, ppm"),
    "t_sc_s": ("(n_sc, n_t)", "spacecraft clock reading (unrounded), unix s"),
    "sensor_t_gps_s": ("(n_s,)", "GPS time of each sensor sample (n_s = n_rec * per_record)"),
    "sensor_t_sc_s": ("(n_sc, n_s)", "uint32 spacecraft time stamped on each sample"),
    "sun_lux_true": (
        "(n_sc, n_s, 6)",
        "noise-free illuminance of faces +X +Y +Z -X -Y -Z, lux (direct + albedo, before saturation)",
    ),
    "albedo_lux": ("(n_sc, n_s, 6)", "albedo part of sun_lux_true, lux"),
    "gps_t_gps_s": ("(n_rec,)", "GPS time of each record's fix"),
    "gps_fault": ("(n_sc, n_rec)", "int8: 0 good, 1 dropped, 2 invalid status, 3 outlier"),
    "range_t_gps_s": ("(n_range,)", "GPS time of each range measurement"),
    "range_observer": ("(n_range,)", "index of the measuring spacecraft"),
    "range_peer": ("(n_range,)", "index of the ranged peer"),
    "range_true_m": ("(n_range,)", "true separation, m"),
    "range_measured_m": ("(n_range,)", "value encoded (before mm rounding), m"),
    "range_valid": ("(n_range,)", "bool, the valid flag written"),
    "sense_corrupt_offsets": (
        "(n_sc, k)",
        "byte offsets overwritten in each sense.bin (k = faults.sense_corrupt_bytes)",
    ),
}


def load_truth(path: str | Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
