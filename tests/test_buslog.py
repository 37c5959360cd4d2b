"""Bus log frames: every intact frame survives truncation (power cut), flips and garbage."""

from hypothesis import given, settings
from hypothesis import strategies as st

from pygnc.formats.buslog import decode_frames, encode_frame, encode_header_frame
from pygnc.logs import BusLogWriter

messages = st.lists(
    st.tuples(st.sampled_from(["meas", "orbit", "health"]), st.floats(0, 1e6), st.binary(max_size=200)), max_size=20
)


def _log(msgs):
    frames = [encode_frame(c, t, m) for c, t, m in msgs]
    return frames, b"".join(frames)


@settings(max_examples=100, deadline=None)
@given(messages)
def test_round_trip(msgs):
    _, data = _log(msgs)
    out = decode_frames(data)
    assert [(f.channel, f.t_rx_mono_s, f.message) for f in out.frames] == [(c, float(t), m) for c, t, m in msgs]
    assert out.stats.bytes_skipped == 0 and not out.stats.torn_tail


@settings(max_examples=100, deadline=None)
@given(messages, st.data())
def test_power_cut_loses_only_the_last_frame(msgs, data):
    frames, blob = _log(msgs)
    cut = data.draw(st.integers(0, len(blob)))
    out = decode_frames(blob[:cut])
    complete = 0
    pos = 0
    for f in frames:
        if pos + len(f) <= cut:
            complete += 1
        pos += len(f)
    assert len(out.frames) == complete
    assert out.stats.frames + 0 == complete


@settings(max_examples=150, deadline=None)
@given(messages, st.data())
def test_corruption_keeps_untouched_frames(msgs, data):
    frames, blob = _log(msgs)
    if not blob:
        return
    blob = bytearray(blob)
    i = data.draw(st.integers(0, len(blob) - 1))
    blob[i] ^= data.draw(st.integers(1, 255))
    garbage = data.draw(st.binary(max_size=40))
    out = decode_frames(garbage + bytes(blob))
    pos, untouched = 0, []
    for f, (c, t, m) in zip(frames, msgs):
        if not (pos <= i < pos + len(f)):
            untouched.append((c, float(t), m))
        pos += len(f)
    got = [(f.channel, f.t_rx_mono_s, f.message) for f in out.frames]
    for item in untouched:
        assert item in got


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=500))
def test_garbage_never_raises(blob):
    out = decode_frames(blob)
    assert out.stats.bytes_total == len(blob)


def test_writer_header_size_bound_and_durability(tmp_path):
    p = tmp_path / "bus.log"
    w = BusLogWriter(p, run=4, schema=1, max_bytes=2000, fsync_period_s=0.0)
    for i in range(100):
        w.append("meas", float(i), b"x" * 50)
    w.close()
    out = decode_frames(p.read_bytes())
    assert out.frames[0].channel == "_header"
    assert p.stat().st_size <= 2000
    assert w.frames_not_written > 0 and len(out.frames) == 1 + w.frames_written - 1
    assert out.stats.bytes_skipped == 0
    assert encode_header_frame(4, 1) == p.read_bytes()[: len(encode_header_frame(4, 1))]
