"""Configuration checks that protect the stop sequence (issue 15 item 11)."""

import pytest

from pygnc.config import SINK_FINAL_WRITE_MARGIN_S, Config, load_config


def test_sink_drain_budget_is_inside_the_sink_kill_deadline():
    c = Config()
    assert c.sink_stop_drain_s + SINK_FINAL_WRITE_MARGIN_S <= c.stop_deadline_sinks_s
    with pytest.raises(ValueError, match="sink_stop_drain_s"):
        Config(sink_stop_drain_s=2.5)  # the trial's 2.5 s drain against a 2.0 s kill deadline


def test_bad_values_in_a_file_are_named(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("stop_deadline_sinks_s = 0.6\n")
    with pytest.raises(ValueError, match="stop_deadline_sinks_s"):
        load_config(p)
    p.write_text("health_fatal_s = -1\n")
    with pytest.raises(ValueError, match="health_fatal_s"):
        load_config(p)
