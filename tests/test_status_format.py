"""Status file: < 1024 bytes, plain struct layout, CRC, atomic replacement, info < 200 bytes."""

import math
import struct
import zlib

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pygnc.atomic import write_atomic
from pygnc.formats import status as S
from pygnc.formats.info import MAX_BYTES, render_info


def test_size_and_plain_struct_layout():
    assert S.SIZE < 1024
    data = S.encode_status({"seq": 7, "run": 3, "t_sc_s": 1.7e9})
    assert len(data) == S.SIZE
    # What CircuitPython on the host does: one struct.unpack with the documented format.
    flat = struct.unpack(S.FORMAT, data)
    assert flat[0] == b"PGNS" and flat[1] == S.VERSION and flat[2] == S.SIZE and flat[3] == 7
    assert flat[-1] == zlib.crc32(data[:-4])
    assert set(S.FORMAT[1:]) <= set("0123456789sBHIfd")


def test_empty_status_has_nan_estimates():
    st_ = S.decode_status(S.encode_status({}))
    assert all(math.isnan(v) for v in st_["orbit_r_ecef_m"])
    assert st_["flags"] == 0


vec3 = st.tuples(*[st.floats(-1e7, 1e7, width=32)] * 3)


@settings(max_examples=100, deadline=None)
@given(
    seq=st.integers(0, 2**32 - 1),
    flags=st.integers(0, 2**16 - 1),
    t=st.floats(0, 4e9),
    r=st.tuples(*[st.floats(-1e8, 1e8)] * 3),
    v=vec3,
    restarts=st.integers(0, 1000),
)
def test_round_trip(seq, flags, t, r, v, restarts):
    values = {
        "seq": seq,
        "flags": flags,
        "t_sc_s": t,
        "orbit_r_ecef_m": r,
        "orbit_v_ecef_m_s": v,
        "task0_id": 1,
        "task0_restarts": restarts,
    }
    out = S.decode_status(S.encode_status(values))
    assert out["seq"] == seq and out["flags"] == flags and out["t_sc_s"] == t
    assert out["orbit_r_ecef_m"] == r
    assert out["orbit_v_ecef_m_s"] == pytest.approx(v, rel=1e-6, abs=1e-30)
    assert out["task0_restarts"] == min(restarts, 255)  # saturates, never wraps
    info = render_info(out)
    assert len(info) <= MAX_BYTES and info.endswith(b"\n")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, S.SIZE * 8 - 1))
def test_any_bit_flip_is_detected(bit):
    data = bytearray(S.encode_status({"seq": 1}))
    data[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(S.StatusError):
        S.decode_status(bytes(data))


@pytest.mark.parametrize("cut", [0, 1, 100, S.SIZE - 1])
def test_truncated_rejected(cut):
    with pytest.raises(S.StatusError):
        S.decode_status(S.encode_status({})[:cut])


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "pygnc_status.bin"
    write_atomic(p, S.encode_status({"seq": 1}))
    write_atomic(p, S.encode_status({"seq": 2}))
    assert S.decode_status(p.read_bytes())["seq"] == 2
    assert [f.name for f in tmp_path.iterdir()] == ["pygnc_status.bin"]  # no temp left behind


def test_any_value_packs_never_raises():
    """Saturate, never overflow: a wild estimate must not take the status file down."""
    data = S.encode_status(
        {
            "orbit_v_ecef_m_s": (1e39, -1e300, math.nan),
            "task0_restarts": math.nan,
            "task0_age_ds": math.inf,
            "seq": -5,
            "orbit_fixes_used": 1e12,
            "orbit_t_sc_s": "garbage",
        }
    )
    out = S.decode_status(data)
    assert out["orbit_v_ecef_m_s"][:2] == (math.inf, -math.inf) and math.isnan(out["orbit_v_ecef_m_s"][2])
    assert out["task0_restarts"] == 0 and out["task0_age_ds"] == 255 and out["seq"] == 0
    assert out["orbit_fixes_used"] == 65535 and math.isnan(out["orbit_t_sc_s"])


def test_downlink_failed_flag_and_info_token():
    """Issue 39 item 7: bit 13 says the batch writer could not write; the info file's task
    line says DF."""
    assert S.FLAG_DOWNLINK_FAILED == 1 << 13 and S.FLAG_NAMES[S.FLAG_DOWNLINK_FAILED] == "downlink_failed"
    base = {"t_sc_s": 1.7e9, "task0_id": 1, "task0_state": 2}
    line = [x for x in render_info(S.decode_status(S.encode_status(base))).split(b"\n") if x.startswith(b"tsk")]
    assert b"DF" not in line[0]
    worst = {
        **base,
        "flags": (1 << 14) - 1,
        "seq": 2**32 - 1,
        "run": 65535,
        "uptime_s": 1e9,
        "sense_records": 2**32 - 1,
        "sense_records_skipped": 2**32 - 1,
        "fixes_valid": 2**32 - 1,
        "fixes_total": 2**32 - 1,
        "orbit_quality": 2,
        "orbit_t_sc_s": 0.0,
        "att_quality": 6,
        "att_rate_body_rad_s": (1e30, 1e30, 1e30),
        **{f"task{k}_id": k + 1 for k in range(S.MAX_TASKS)},
        **{f"task{k}_restarts": 255 for k in range(S.MAX_TASKS)},
        **{f"peer{k}_id": 70 + k for k in range(S.MAX_PEERS)},
        **{f"peer{k}_sigma_dr_m": (1e30, 1e30, 1e30) for k in range(S.MAX_PEERS)},
        **{f"peer{k}_quality": 7 for k in range(S.MAX_PEERS)},
        **{f"peer{k}_acq_window_s": 65535 for k in range(S.MAX_PEERS)},
    }
    info = render_info(S.decode_status(S.encode_status(worst)))
    assert len(info) <= MAX_BYTES and info.endswith(b"\n") and info.count(b"\n") == 6  # the six lines fit
    assert b" FAIL WF LL DF" in info
    worst["flags"] = 0xFFFF  # and with the cfg line, in what room is left
    info = render_info(S.decode_status(S.encode_status(worst)), "pygnc_config.toml:12 formation_filter.x")
    assert len(info) <= MAX_BYTES and info.endswith(b"\n") and b" FAIL WF LL DF" in info


@settings(max_examples=300, deadline=None)
@given(
    problem=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=0, max_size=150),
    uses=st.sampled_from(["defaults", "last accepted"]),
    rejected=st.booleans(),
    reflection=st.booleans(),
    room=st.integers(0, 199),
)
def test_the_cfg_line_keeps_what_the_run_uses_and_the_reflection(problem, uses, rejected, reflection, room):
    """Issue 45 item 8: the line was cut at the end (", on defau", "imu reflection" gone)."""
    from pygnc.formats.info import cfg_line

    assume(rejected or reflection)  # (no cfg line otherwise)
    note = f"pygnc_config.toml:12 {problem}, on {uses}"
    line = cfg_line(rejected, reflection, note, room)
    assert len(line) <= room and line.isascii()
    short = {"defaults": "dflt", "last accepted": "last"}[uses]
    if not rejected:
        assert line == ("cfg imu reflection" if room >= 18 else "cfg refl"[:room] if room > 3 else "")
    elif room >= len(f"cfg rejected, on {uses}") + len("; imu reflection") * reflection:  # the words, whole
        assert line.startswith("cfg rejected") and line.endswith(f", on {uses}" + "; imu reflection" * reflection)
        if room >= len(f"cfg rejected pygnc_config.toml:12 {problem}, on {uses}") + 16 * reflection:
            assert problem in line
    elif room >= len(f"cfg rej {short}") + len("; refl") * reflection:  # the short words
        assert line == f"cfg rej {short}" + "; refl" * reflection


def test_an_attitude_sigma_past_180_deg_is_unknown():
    """Issue 45 item 8: ``att uncertain 311.8deg`` - a 1-sigma past 180 deg is no attitude."""
    base = {"t_sc_s": 1e9, "att_t_sc_s": 1e9, "att_meas_t_sc_s": 1e9 - 70.0, "flags": 0}
    u = S.ESTIMATE_QUALITY.index("uncertain")
    for sigma, line in (
        (3.14, "att uncertain 179.9deg data 70s ago"),
        (5.44, "att unknown >180deg data 70s ago"),
        (1e30, "att unknown >180deg data 70s ago"),
    ):
        s = S.decode_status(S.encode_status({**base, "att_quality": u, "att_sigma_rad": (sigma / 3**0.5,) * 3}))
        assert render_info(s).decode().splitlines()[2] == line
