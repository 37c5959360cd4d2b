"""The decoders' settings: the configuration's values, its defaults, and nothing else."""

import dataclasses
import subprocess
import sys

import pytest

from pygnc.config import Config
from pygnc.formats.sense import decode_sense
from pygnc.formats.settings import DecodeSettings


def test_defaults_are_the_configurations():
    assert DecodeSettings.from_config(Config()) == DecodeSettings()


def test_every_setting_comes_from_the_configuration_field_of_its_name():
    changed = {
        "sensors_per_record": 4,
        "accepted_solution_status": (0, 1),
        "min_sats_in_solution": 6,
        "min_fix_radius_m": 6.4e6,
        "max_fix_radius_m": 7.9e6,
        "max_fix_speed_m_s": 8500.0,
        "mag_lsb_ut": 0.1,
        "gyro_lsb_deg_s": 0.02,
        "sx1280_ranging_bandwidth_code": 0x0A,
        "sx1280_ranging_filtered": True,
        "range_calibration_m": {0x4A: 12.5},
    }
    assert set(changed) == {f.name for f in dataclasses.fields(DecodeSettings)}
    s = DecodeSettings.from_config(Config(**{**changed, "range_calibration_m": {"0x4A": 12.5}}))
    assert dataclasses.asdict(s) == changed
    assert all(changed[k] != getattr(DecodeSettings(), k) for k in changed)


def test_a_decoder_refuses_a_configuration_and_a_bad_partner_id():
    with pytest.raises(TypeError, match="DecodeSettings.from_config"):
        decode_sense(b"", Config())
    with pytest.raises(ValueError, match="partner id"):
        DecodeSettings(range_calibration_m={"0x4A": 1.0})


def test_config_makes_the_settings_without_numpy():
    """The supervisor and the status reporter import the configuration and must start fast."""
    code = (
        "import sys; from pygnc.config import Config; from pygnc.formats.settings import DecodeSettings; "
        "DecodeSettings.from_config(Config()); print(sorted(m for m in ('numpy', 'serial') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
