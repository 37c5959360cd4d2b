"""Status validity means usable now (issue 15 items 8-9, issue 18 item 5): quality per
estimate, horizon and age visible, bounded info text, float64 clock offset."""

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pygnc.config import Config
from pygnc.formats import status as S
from pygnc.formats.info import MAX_BYTES, duration, render_info
from pygnc.validity import (
    Q_ACQUIRING,
    Q_AHEAD,
    Q_AMBIGUOUS,
    Q_BEHIND,
    Q_HORIZON,
    Q_NONE,
    Q_OK,
    Q_RATES_ONLY,
    Q_UNCERTAIN,
    assess,
    quality,
    said_acquiring_in,
)

CFG = Config()
NOW = 1.7e9
LAST = NOW - 600.0  # the batch ended 10 minutes ago


def _q(epoch, sigma=10.0, max_sigma=100.0, last=LAST, ref=True):
    return quality(epoch, NOW, sigma, max_sigma, last, CFG, ref)


def test_quality_of_one_estimate():
    assert _q(math.nan) == Q_NONE
    assert _q(NOW - 1.0) == Q_OK  # propagated to "now" (1 s period)
    assert _q(NOW - 3600.0) == Q_BEHIND  # an estimate of the batch, an hour old
    assert _q(NOW + 3600.0) == Q_AHEAD  # "now" given before the batch
    assert _q(NOW, sigma=254.0) == Q_UNCERTAIN  # the 254-deg attitude of the trial
    assert _q(NOW, sigma=math.nan) == Q_UNCERTAIN  # NaN never passes
    assert _q(NOW, ref=False) == Q_RATES_ONLY
    # 1.7 years after the batch, the orbit held 4 h after it (the trial's "orb ok 1639.4m")
    far_last = NOW - 1.7 * 365.25 * 86400
    assert _q(far_last + 4 * 3600, sigma=1639.4, max_sigma=1000.0, last=far_last) == Q_HORIZON


def _status(**kw):
    s = S.decode_status(S.encode_status({"t_sc_s": NOW, "batch_t_sc_last_s": LAST, **kw}))
    return s


def test_assess_sets_flags_only_for_usable_estimates():
    s = _status(
        orbit_t_sc_s=NOW - 1,
        orbit_sigma_r_m=(3.0, 3.0, 3.0),
        att_t_sc_s=NOW - 1,
        att_sigma_rad=(math.radians(150),) * 3,
        peer0_id=75,
        peer0_t_sc_s=NOW - 1,
        peer0_sigma_dr_m=(1.0, 1.0, 1.0),
        flags=S.FLAG_ORBIT_VALID | S.FLAG_ATTITUDE_VALID | S.FLAG_BATCH_DONE,
    )
    flags = assess(s, NOW, CFG, att_has_reference=True)
    assert flags & S.FLAG_ORBIT_VALID and flags & S.FLAG_FORMATION_VALID and flags & S.FLAG_BATCH_DONE
    assert not flags & S.FLAG_ATTITUDE_VALID  # sigma 260 deg: not usable
    assert S.ESTIMATE_QUALITY[s["att_quality"]] == "uncertain"
    assert S.ESTIMATE_QUALITY[s["orbit_quality"]] == "ok" and s["peer0_quality"] == Q_OK
    assert s["peer1_quality"] == Q_NONE


def test_an_orbit_one_fix_stands_on_is_not_valid():
    """An orbit started from one GPS fix no second has confirmed (its estimate's word
    ``acquiring``) is current and precise-looking, but not usable: no ``orbit_valid``."""
    s = _status(orbit_t_sc_s=NOW - 1, orbit_sigma_r_m=(3.0, 3.0, 3.0), flags=S.FLAG_ORBIT_VALID)
    assert not assess(s, NOW, CFG, True, said_acquiring={"orbit"}) & S.FLAG_ORBIT_VALID
    assert S.ESTIMATE_QUALITY[s["orbit_quality"]] == "acquiring"
    assert assess(s, NOW, CFG, True) & S.FLAG_ORBIT_VALID


def test_attitude_validity_bound_is_configuration():
    s = _status(att_t_sc_s=NOW, att_sigma_rad=(math.radians(5),) * 3)  # 8.7 deg 3-D
    assert assess(s, NOW, CFG, True) & S.FLAG_ATTITUDE_VALID
    tight = Config(attitude_valid_max_sigma_deg=2.0)
    assert not assess(s, NOW, tight, True) & S.FLAG_ATTITUDE_VALID


def test_clock_offset_is_float64_to_the_millisecond():
    """An unset PyCubed clock (year 2000) is ~7.9e8 s behind UTC: float32 resolved 64 s."""
    offset = 7.9e8 + 0.123
    out = S.decode_status(S.encode_status({"clock_utc_minus_sc_s": offset}))
    assert out["clock_utc_minus_sc_s"] == pytest.approx(offset, abs=1e-3)
    assert dict((n, c) for n, c, _ in S.FIELDS)["clock_utc_minus_sc_s"] == "d"


def test_layout_version_size_and_task_slots():
    assert S.VERSION == 5 and S.SIZE < 1024 and S.MAX_TASKS >= 10


def test_info_names_quality_and_age():
    s = _status(
        orbit_t_sc_s=LAST + 4 * 3600 - 1e8,
        orbit_quality=S.ESTIMATE_QUALITY.index("horizon"),
        orbit_sigma_r_m=(1000.0, 1000.0, 1000.0),
        fixes_valid=12,
        fixes_total=12,
    )
    text = render_info(s).decode()
    assert "orb horizon 3.2y fix 12/12" in text and "ok" not in text.splitlines()[1]


def test_info_says_how_old_the_attitudes_data_is():
    """Issue 37 item 7: the sample ended with ``att uncertain 218.7deg`` and nothing said it
    was propagated 70 s past its last gyro sample."""
    now = LAST + 75.0
    s = _status(
        t_sc_s=now,
        att_t_sc_s=now,
        att_meas_t_sc_s=LAST + 5.0,
        att_quality=S.ESTIMATE_QUALITY.index("uncertain"),
        att_sigma_rad=(2.2, 2.2, 2.2),
    )
    assert render_info(s).decode().splitlines()[2] == "att unknown >180deg data 70s ago"  # (1 sigma 218 deg)
    s["att_meas_t_sc_s"] = now - 5.0  # fresh data: nothing to say
    assert render_info(s).decode().splitlines()[2] == "att unknown >180deg"
    s["att_meas_t_sc_s"] = math.nan  # none yet
    assert "ago" not in render_info(s).decode()


def test_durations():
    assert [duration(x) for x in (5, 600, 4 * 3600, 12.5 * 86400, 1.7 * 365.25 * 86400)] == [
        "5s",
        "10m",
        "4.0h",
        "12.5d",
        "1.7y",
    ]


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=300, deadline=None)
@given(
    t=finite_or_not,
    up=st.floats(0, 1e9, width=32),
    epoch=finite_or_not,
    sig=finite_or_not,
    q=st.integers(0, 255),
    qa=st.integers(0, 255),
    qp=st.integers(0, 255),
    counts=st.integers(0, 2**32 - 1),
    run=st.integers(0, 65535),
    flags=st.integers(0, 2**16 - 1),
    restarts=st.integers(0, 255),
)
# CI's cases: both configuration flags, every other line at its widest -> "cfg rej last; refl"
@example(
    t=10.0, up=0.0, epoch=0.0, sig=1459703772.0, q=1, qa=1, qp=1, counts=1_063_197_452, run=10, flags=58112, restarts=0
)
@example(t=0.0, up=0.0, epoch=0.0, sig=5744635137.0, q=1, qa=1, qp=1, counts=10000, run=0, flags=51968, restarts=0)
# hypothesis, 2026-11: every line at its widest left no room for the cfg line and cut "bad"
@example(
    t=1e9, up=6371200.0, epoch=0.0, sig=5744635137.0, q=5, qa=5, qp=5, counts=10**7, run=10000, flags=32512, restarts=31
)
@example(
    t=1e8, up=0.0, epoch=0.0, sig=5654570092.0, q=6, qa=6, qp=6, counts=10**8 - 1, run=65535, flags=32767, restarts=255
)
# each line at its own widest: orbit uncertain, attitude rates only with data age and no pos,
# formation acquiring, every task flag, both cfg flags
@example(t=4e9, up=1e9, epoch=0.0, sig=9e9, q=5, qa=6, qp=7, counts=2**32 - 1, run=65535, flags=2**16 - 1, restarts=255)
def test_info_always_fits_with_every_line(t, up, epoch, sig, q, qa, qp, counts, run, flags, restarts):
    """Any status (even absurd values, e.g. a spacecraft time of 1e300) renders six whole
    lines under 200 bytes: the trial's 1e300 gave one truncated line; the configuration's
    line, when its flags are set, takes what room is left (the lines' optional parts give
    way first when they would leave it less than its shortest words)."""
    values = {
        "t_sc_s": t,
        "uptime_s": up,
        "run": run,
        "flags": flags,
        "orbit_t_sc_s": epoch,
        "orbit_quality": q,
        "att_quality": qa,
        "att_t_sc_s": epoch,
        "att_meas_t_sc_s": epoch - sig if math.isfinite(epoch - sig) else epoch,
        "orbit_sigma_r_m": (sig,) * 3,
        "att_sigma_rad": (sig,) * 3,
        "att_rate_body_rad_s": (sig,) * 3,
        "fixes_valid": counts,
        "fixes_total": counts,
        "sense_records": counts,
        "sense_records_skipped": counts,
        "batch_records_held": counts,  # (DH)
        "home_free_inodes": 0,  # (NI)
    }
    for k in range(S.MAX_PEERS):
        values.update(
            {
                f"peer{k}_id": 74 + k,
                f"peer{k}_sigma_dr_m": (sig,) * 3,
                f"peer{k}_quality": qp,
                f"peer{k}_ambiguity_m": sig,
                f"peer{k}_acq_s": counts,
                f"peer{k}_acq_window_s": counts,
            }
        )
    for k in range(S.MAX_TASKS):
        values.update({f"task{k}_id": k + 1, f"task{k}_restarts": restarts})
    note = "pygnc_config.toml:1234 range_only.max_window_s, on last accepted"
    text = render_info(S.decode_status(S.encode_status(values)), config_note=note)
    assert len(text) <= MAX_BYTES and text.endswith(b"\n")
    lines = text.decode().splitlines()
    assert [ln.split()[0] for ln in lines[:6]] == ["pygnc", "orb", "att", "frm", "tsk", "in"]
    assert lines[5].endswith(" bad")  # never cut
    # the configuration's line when it needs attention, with at least the word that says why
    # (the short words when the other lines leave no room: "cfg rej last; refl", "cfg rej; refl",
    # "cfg refl"; hypothesis found a status whose lines left 17 characters: "cfg rej last; ref")
    if flags & S.FLAG_CONFIG_REJECTED:
        assert lines[6].startswith(("cfg rejected", "cfg rej ", "cfg rej;")) or lines[6] == "cfg rej", lines[6]
        assert not flags & S.FLAG_IMU_REFLECTION or lines[6].endswith("refl") or "reflection" in lines[6]
    elif flags & S.FLAG_IMU_REFLECTION:
        assert lines[6].startswith(("cfg imu refl", "cfg refl")), lines[6]
    else:
        assert len(lines) == 6


def test_range_only_peers_say_why_they_are_not_valid():
    """A peer still acquiring, or whose kept orbits disagree by more than the bound, is not
    valid whatever its sigma; the info line says which and how far along (issue 37 item 7)."""
    config = Config()
    base = {
        "t_sc_s": LAST,
        "batch_t_sc_last_s": LAST,
        "peer0_id": 0x4B,
        "peer0_t_sc_s": LAST,
        "peer0_sigma_dr_m": (1.0, 1.0, 1.0),
        "peer1_id": 0x4C,
        "peer1_t_sc_s": LAST,
        "peer1_sigma_dr_m": (1.0, 1.0, 1.0),
        "peer0_ambiguity_m": 0.0,
    }
    s = _status(**base, peer0_acq_s=720, peer0_acq_window_s=2700, peer1_ambiguity_m=6200.0)
    flags = assess(s, LAST, config, True)
    assert s["peer0_quality"] == Q_ACQUIRING and s["peer1_quality"] == Q_AMBIGUOUS
    assert not flags & S.FLAG_FORMATION_VALID
    frm = render_info(s).decode().splitlines()[3]
    assert frm.startswith("frm 0/2") and frm.endswith(" acq12/45m")
    s = _status(**base, peer1_ambiguity_m=6200.0)
    assess(s, LAST, config, True)
    assert render_info(s).decode().splitlines()[3].endswith(" amb6.2km")
    s = _status(**base, peer1_ambiguity_m=40.0)  # within the bound: one orbit as far as the host cares
    assert assess(s, LAST, config, True) & S.FLAG_FORMATION_VALID and s["peer1_quality"] == Q_OK
    # A partner started from one pair of fixes, not yet confirmed: its estimate said so.
    s = _status(**base, peer1_ambiguity_m=40.0)
    assert not assess(s, LAST, config, True, said_acquiring={"peer0", "peer1"}) & S.FLAG_FORMATION_VALID
    assert s["peer0_quality"] == s["peer1_quality"] == Q_ACQUIRING
    assert render_info(s).decode().splitlines()[3].endswith(" acq")
    assert said_acquiring_in(s) == {"peer0", "peer1"}


_SIGMA = st.floats(0.0, 5000.0) | st.just(math.nan)


@settings(max_examples=200, deadline=None)
@given(
    sig_o=st.tuples(_SIGMA, _SIGMA, _SIGMA),
    sig_a=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
    ref=st.booleans(),
    sig_p=st.tuples(_SIGMA, _SIGMA, _SIGMA),
    acquiring=st.booleans(),
    ambiguity=st.floats(0.0, 1e6),
)
def test_an_estimates_word_is_the_status_files_at_its_epoch(sig_o, sig_a, ref, sig_p, acquiring, ambiguity):
    """The quality word the estimators put in each estimate (and the downlink and the
    ground's tables carry) is the one the status file gives that estimate when "now" is its
    epoch: the same function, never a rule of its own (issue 43 item 5)."""
    from pygnc.validity import attitude_word, orbit_word, peer_word

    s = _status(
        orbit_t_sc_s=NOW,
        orbit_sigma_r_m=sig_o,
        att_t_sc_s=NOW,
        att_sigma_rad=sig_a,
        peer0_id=0x4B,
        peer0_t_sc_s=NOW,
        peer0_sigma_dr_m=sig_p,
        peer0_ambiguity_m=ambiguity,
        peer0_acq_window_s=2700 if acquiring else 0,
    )
    assess(s, NOW, CFG, ref)
    # (the status file holds float32: the words are taken of what it holds)
    assert S.ESTIMATE_QUALITY[s["orbit_quality"]] == orbit_word(s["orbit_sigma_r_m"], CFG)
    assert S.ESTIMATE_QUALITY[s["att_quality"]] == attitude_word(s["att_sigma_rad"], ref, CFG)
    assert S.ESTIMATE_QUALITY[s["peer0_quality"]] == peer_word(
        s["peer0_sigma_dr_m"], acquiring, s["peer0_ambiguity_m"], CFG
    )


def test_the_cfg_line_keeps_both_words_in_little_room():
    """Hypothesis found a status whose other lines left the cfg line 17 characters: it
    showed "cfg rej last; ref" - the reflection's word cut.  Now the shortest forms."""
    from pygnc.formats.info import cfg_line

    note = "pygnc_config.toml:3 status_period_s, on last accepted"
    assert cfg_line(True, True, note, 18) == "cfg rej last; refl"
    assert cfg_line(True, True, note, 17) == "cfg rej; refl"
    assert cfg_line(True, False, note, 10) == "cfg rej"
    assert cfg_line(False, True, note, 9) == "cfg refl"
