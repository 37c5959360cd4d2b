"""The configuration's limits and its one check at load (issue 37 items 1-4): every number
declared with its interval next to its key, bad uplinks named by file, line and key, the
nested tables checked when the file is loaded, the IMU mounting checked and flagged."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pygnc.config import Config, ConfigError, parse_config, undeclared_reflections, with_overrides
from pygnc.estimation.tunables import AttitudeFilterConfig, OrbitFilterConfig
from pygnc.limits import Interval, field_problems, undeclared_numbers
from pygnc.toml_lines import find_line

NUMERIC_TYPES = ("float", "int")


def _numeric_fields(cls):
    return [
        f
        for f in dataclasses.fields(cls)
        if str(f.type).replace(" ", "").replace("|None", "").split("[")[-1].split(",")[0] in NUMERIC_TYPES
    ]


@pytest.mark.parametrize("cls", [Config, OrbitFilterConfig, AttitudeFilterConfig])
def test_every_number_declares_its_limits_and_every_default_is_inside(cls):
    assert undeclared_numbers(cls) == []
    assert _numeric_fields(cls)
    defaults = {f.name: getattr(cls(), f.name) for f in dataclasses.fields(cls)}
    assert field_problems(cls, defaults) == []


# The regression cases, and the same kinds of value in every nested table.
REFUSED = [
    ("status_period_s = nan\n", 1, "status_period_s"),
    ("status_period_s = -1\n", 1, "status_period_s"),
    ("max_restarts = -3\n", 1, "max_restarts"),
    ("orbit_valid_max_sigma_m = nan\n", 1, "orbit_valid_max_sigma_m"),
    ("max_propagation_s = -10\n", 1, "max_propagation_s"),
    ("handler_budget_s = -1\n", 1, "handler_budget_s"),
    ("batch_file_max_bytes = 0\n", 1, "batch_file_max_bytes"),
    ("# a comment\nhealth_fatal_s = inf\n", 2, "health_fatal_s"),
    ("gyro_scale = [1.0, nan, 1.0]\n", 1, "gyro_scale"),
    ("gyro_scale = [1.0, 1.0]\n", 1, "gyro_scale"),
    ("formation_peer_ids = [74, 0]\n", 1, "formation_peer_ids"),
    ("spacecraft_id = 0x4A\n\n[orbit_filter]\ndmc_tau_s = -150\n", 4, "orbit_filter.dmc_tau_s"),
    ("[orbit_filter]\ngate_probability = 1.0\n", 2, "orbit_filter.gate_probability"),
    ("[orbit_filter]\ntesseral_degre = 0\n", 2, "orbit_filter.tesseral_degre"),
    ("[attitude_filter]\ngyro_noise_rad_s = nan\n", 2, "attitude_filter.gyro_noise_rad_s"),
    ("attitude_filter = { max_rejections = 0 }\n", 1, "attitude_filter.max_rejections"),
    ("[batch_period_s]\norbit = 30\nsensor = nan\n", 3, "batch_period_s.sensor"),
    ("[batch_period_s]\norbitt = 30\n", 2, "batch_period_s.orbitt"),
    ('batch_kinds = ["orbit", "orbitt"]\n', 1, "batch_kinds"),
    ('[range_calibration_m]\n"0x4B" = inf\n', 2, "range_calibration_m.0x4B"),
    (
        '[[housekeeping_devices]]\nname = "bms"\nkind = "emus_bms"\nport = "/dev/ttyUSB0"\n'
        '[[housekeeping_devices]]\nname = "opc"\nkind = "opc_n3"\nfan_spinup_s = nan\n',
        8,
        "housekeeping_devices[1].fan_spinup_s",
    ),
    (
        '[formation_peer_priors."0x4B"]\ndr_rtn_m = [0.0, 100.0, 0.0]\ndv_rtn_m_s = [0.0, 0.0, 0.0]\n'
        "sigma_pos_m = -5\n",
        4,
        "formation_peer_priors.0x4B.sigma_pos_m",
    ),
    ("imu_to_body = [1, 0, 0, 0, 1, 0, 0, 0, 2]\n", 1, "imu_to_body"),
    ("imu_to_body = [1, 0, 0, 0.5, 1, 0, 0, 0, 1]\n", 1, "imu_to_body"),
    ("stop_deadline_sinks_s = 0.6\n", 1, "sink_stop_drain_s"),  # the check of two keys points at the file's
    ("health_warn_s = 9.0\n", 1, "health_warn_s"),
    ('imu_driver = "imu380"\n', 1, "imu_port"),
    ("status_period_s = 0.25\nstatus_period_s = 0.5\n", 2, None),  # TOML: a key set twice
    ("status_period_s = 0.25\nmax_restarts = [3\n", 2, None),  # syntax error
]


@pytest.mark.parametrize("text, line, key", REFUSED)
def test_a_bad_value_is_refused_naming_the_file_line_and_key(text, line, key):
    with pytest.raises(ConfigError) as info:
        parse_config(text.encode(), "/home/pi/pygnc_config.toml")
    first = str(info.value).splitlines()[0]
    assert first.startswith(f"/home/pi/pygnc_config.toml:{line}: "), first
    if key is not None:
        assert first.split(": ", 1)[1].startswith(key + " "), first


def test_every_problem_is_reported_at_once():
    text = b"status_period_s = nan\nmax_restart = 3\nmax_restarts = -3\n[orbit_filter]\ntesseral_degree = 1\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "u.toml")
    assert [n for n, _ in info.value.problems] == [1, 2, 3, 5]
    # whole across a process boundary (a Monte Carlo worker's error reaches its client pickled)
    import pickle

    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value) and again.problems == info.value.problems


def test_a_top_level_key_after_a_table_header_is_explained():
    with pytest.raises(ConfigError, match="max_restarts is a top-level key - write it before the first"):
        parse_config(b"[orbit_filter]\ntesseral_degree = 0\nmax_restarts = 5\n", "u.toml")


def test_a_quoted_radio_id_is_shown_as_written_with_how_to_write_it():
    """Ids are spelt "0x4B" everywhere else; in a list of integers the quotes are the mistake."""
    with pytest.raises(ConfigError) as info:
        parse_config(b'formation_peer_ids = ["0x4B"]\n', "u.toml")
    assert str(info.value) == (
        "u.toml:1: formation_peer_ids must be a list of integer values, got ['0x4B'] "
        "(numbers are written without quotes, e.g. [74, 0x4B])"
    )
    assert parse_config(b"formation_peer_ids = [0x4A, 0x4B]\n", "u.toml").formation_peer_ids == (0x4A, 0x4B)


def test_not_utf8_names_the_line():
    with pytest.raises(ConfigError, match=r"^u.toml:2: is not UTF-8"):
        parse_config(b"max_restarts = 3\n# caf\xe9\n", "u.toml")


def test_what_passes_is_kept():
    c = parse_config(
        b"status_period_s = 0.5\nbatch_period_s = { orbit = 30, sensor = inf }\n[orbit_filter]\ntesseral_degree = 0\n",
        "u.toml",
    )
    assert c.status_period_s == 0.5 and c.batch_period_s["sensor"] == math.inf
    assert c.orbit_filter == {"tesseral_degree": 0}


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_number_is_accepted_exactly_when_it_is_inside_its_interval(data):
    cls = data.draw(st.sampled_from([Config, OrbitFilterConfig, AttitudeFilterConfig]))
    f = data.draw(st.sampled_from(_numeric_fields(cls)))
    interval: Interval = f.metadata["range"]
    is_int = "int" in str(f.type)
    v = data.draw(
        st.integers(-(10**12), 10**12)
        if is_int
        else st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from([interval.lo, interval.hi]),
            st.floats(-1e3, 1e3),
        )
    )
    choices = f.metadata.get("choices")
    value = (v,) * (f.metadata.get("length") or 1) if str(f.type).startswith("tuple") else v
    problems = field_problems(cls, {f.name: value})
    inside = not (isinstance(v, float) and math.isnan(v)) and v in interval and (choices is None or v in choices)
    assert (problems == []) == inside, (f.name, v, problems)
    assert all(p.key == (f.name,) for p in problems)


@pytest.mark.parametrize(
    "text, key, line",
    [
        ("a = 1\n[orbit_filter]\ntesseral_degree = 0\n", ("orbit_filter", "tesseral_degree"), 3),
        ("orbit_filter.tesseral_degree = 0\n", ("orbit_filter", "tesseral_degree"), 1),
        ("orbit_filter = { tesseral_degree = 0 }\n", ("orbit_filter", "tesseral_degree"), 1),
        ('[formation_peer_priors."0x4B"]\n# x\nsigma_pos_m = 3\n', ("formation_peer_priors", "0x4B", "sigma_pos_m"), 3),
        ("[[d]]\nx = 1\n[[d]]\nx = 2\n", ("d", 1, "x"), 4),
        ("[[d]]\nx = 1\n[[d]]\ny = 2\n", ("d", 1, "x"), 3),
        ("[t]\nx = 1\n", ("x",), None),
        ("# x = 1\n", ("x",), None),
    ],
)
def test_the_line_of_a_key(text, key, line):
    assert find_line(text, key) == line


def test_unknown_keys_in_the_filter_tables_are_refused_at_load_not_when_a_task_starts(tmp_path):
    with pytest.raises(ValueError, match="orbit_filter.tesseral_degre is not a known key"):
        with_overrides(Config(), {"orbit_filter": {"tesseral_degre": 0}}, "t")
    with pytest.raises(ValueError, match="attitude_filter.gyro_noise_rad_z"):
        Config(attitude_filter={"gyro_noise_rad_z": 1.0})


def test_the_formation_filter_takes_the_orbit_filter_table():
    """tesseral_degree = 0 reached the orbit task but not the formation's own-orbit model."""
    from pygnc.processors.formation import filter_config_from
    from pygnc.processors.orbit import orbit_filter_config

    c = with_overrides(Config(), {"orbit_filter": {"tesseral_degree": 0, "dmc_tau_s": 300.0}}, "t")
    assert filter_config_from(c).orbit == orbit_filter_config(c)
    assert (
        filter_config_from(c).orbit.tesseral_degree == 0 and filter_config_from(c).orbit.dynamics().tesseral_degree == 0
    )
    assert filter_config_from(Config()).orbit == OrbitFilterConfig()


# --------------------------------------------------------------------------- IMU mounting
ROTATION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # 90 deg about z
REFLECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0)  # the PY4 statement


def test_a_mounting_that_is_not_orthonormal_is_refused_and_a_reflection_is_flagged_unless_intended():
    c = math.sqrt(0.5)
    ok = Config(imu_to_body=(c, -c, 0.0, c, c, 0.0, 0.0, 0.0, 1.0))  # 45 deg, as decimals are written
    assert undeclared_reflections(ok) == []
    assert undeclared_reflections(Config(imu_to_body=(0.7071, -0.7071, 0, 0.7071, 0.7071, 0, 0, 0, 1))) == []
    with pytest.raises(ConfigError, match="imu_to_body must be orthonormal"):
        Config(imu_to_body=(0.7, -0.7, 0.0, 0.7, 0.7, 0.0, 0.0, 0.0, 1.0))
    with pytest.raises(ConfigError, match="imu_device_to_body must be orthonormal"):
        Config(imu_device_to_body=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0))
    assert Config().imu_to_body == REFLECTION  # the default: see docs/interface.md, "IMU axes"
    assert undeclared_reflections(Config()) == ["imu_to_body"]
    assert undeclared_reflections(Config(imu_to_body_reflection_intended=True)) == []
    assert undeclared_reflections(Config(imu_to_body=ROTATION)) == []
    assert undeclared_reflections(Config(imu_device_to_body=REFLECTION)) == ["imu_to_body", "imu_device_to_body"]
