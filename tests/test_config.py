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


def test_a_value_of_the_wrong_type_is_named_and_every_default_is_taken():
    """An uplinked value of the wrong type fails at load time naming the key (not later,
    inside a task), for every field; every default, written as TOML would give it, passes."""
    import dataclasses

    from pygnc.config import with_overrides

    c = Config()
    for f in dataclasses.fields(Config):
        default = getattr(c, f.name)
        as_toml = list(default) if isinstance(default, tuple) else default
        assert getattr(with_overrides(c, {f.name: as_toml}, "t.toml"), f.name) == default
        wrong = 1 if isinstance(default, str) else ("yes" if isinstance(default, bool) else "1")
        with pytest.raises(ValueError, match=f"in t.toml: {f.name} must be"):
            with_overrides(c, {f.name: wrong}, "t.toml")


def test_numbers_and_lists_take_what_toml_writes(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("formation_hold_s = 80\nformation_peer_ids = [0x4A, 0x4B]\nbatch_decimate_estimates = false\n")
    c = load_config(p)
    assert c.formation_hold_s == 80 and c.formation_peer_ids == (0x4A, 0x4B) and c.batch_decimate_estimates is False
    for text, key in (
        ("batch_decimate_estimates = 1", "batch_decimate_estimates"),
        ('formation_peer_ids = [74, "0x4B"]', "formation_peer_ids"),
        ('stream_enabled = "false"', "stream_enabled"),
        ("formation_hold_s = true", "formation_hold_s"),
    ):
        p.write_text(text + "\n")
        with pytest.raises(ValueError, match=key):
            load_config(p)


def test_the_two_stop_deadlines_leave_the_rest_of_the_stop_time_before_the_power_cut():
    """Each deadline alone may be up to 10 s, but the supervisor waits for one group after
    the other and then reaps, recovers the batch files and writes the final status: their sum
    must leave that time before the host cuts the power."""
    from pygnc.config import HOST_POWER_CUT_S, STOP_OVERHEAD_S
    from pygnc.supervisor import REAP_S

    assert STOP_OVERHEAD_S >= 3 * REAP_S + 0.5  # three reaping bounds, then recovery and status
    c = Config()
    assert c.stop_deadline_producers_s + c.stop_deadline_sinks_s <= HOST_POWER_CUT_S - STOP_OVERHEAD_S
    with pytest.raises(ValueError, match="stop_deadline_sinks_s .* plus stop_deadline_producers_s"):
        Config(stop_deadline_producers_s=9.0, stop_deadline_sinks_s=9.0)
    Config(stop_deadline_producers_s=3.5, stop_deadline_sinks_s=2.5)  # 6 s: accepted


def test_a_bus_message_limit_below_the_trees_own_messages_is_refused():
    """``max_message_bytes`` below the default would make the estimators' own messages too
    large to publish (an attitude estimate is ~1.3 kB, the health message ~6 kB)."""
    with pytest.raises(ValueError, match="max_message_bytes"):
        Config(max_message_bytes=1024)
    assert Config(max_message_bytes=2**20).max_message_bytes == 2**20
