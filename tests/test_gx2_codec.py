"""3DM-GX2 0xC2 and monoDrive codecs; device timers and clock alignment."""

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pygnc.drivers import gx2_codec as gx
from pygnc.drivers import monodrive_codec as md
from pygnc.drivers.timing import ClockSync, TimerUnwrapper

G = 9.80665


def c2(accel_g, rate, timer) -> bytes:
    """A 0xC2 reply laid out by hand (ROS driver offsets: floats at 1..24, timer 25, sum 29)."""
    body = bytes((0xC2,)) + b"".join(struct.pack(">f", v) for v in (*accel_g, *rate)) + timer.to_bytes(4, "big")
    return body + (sum(body) & 0xFFFF).to_bytes(2, "big")


def test_c2_layout_checksum_and_units():
    p = c2((0.0, 0.0, -1.0), (0.5, -0.25, 0.125), 0xFFFFFFF0)
    assert len(p) == gx.PACKET_LEN == 31
    a = gx.decode_accel_rate(p)
    assert a.accel_m_s2 == (0.0, 0.0, -G)
    assert a.rate_rad_s == (0.5, -0.25, 0.125)
    assert a.timer_ticks == 0xFFFFFFF0
    bad = bytearray(p)
    bad[10] ^= 0x01
    with pytest.raises(gx.CodecError):
        gx.decode_accel_rate(bytes(bad))
    assert gx.decode_accel_rate(bytes(bad), verify=False).timer_ticks == 0xFFFFFFF0
    # little-endian floats (monoDrive's 2018 client bug) would read 1.0 as 4.6e-41
    assert struct.unpack("<f", struct.pack(">f", 1.0))[0] < 1e-40


def test_commands_and_continuous_reply():
    assert gx.poll_command() == b"\xc2"
    assert gx.continuous_command() == bytes.fromhex("C4C129C2")
    assert gx.stop_continuous_command() == b"\xfa"
    reply = bytes.fromhex("C4C2 00000064")
    reply += (sum(reply) & 0xFFFF).to_bytes(2, "big")
    assert gx.decode_continuous_reply(reply) == 0xC2
    with pytest.raises(gx.CodecError):
        gx.decode_continuous_reply(reply[:-1] + b"\x00")


finite = st.floats(-1e4, 1e4, allow_nan=False, width=32)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.lists(finite, min_size=6, max_size=6), st.integers(0, 2**32 - 1)), min_size=1, max_size=6),
    st.lists(st.binary(max_size=40), min_size=7, max_size=7),
    st.data(),
)
def test_framer_finds_packets_through_garbage(packets, garbage, data):
    stream = bytearray(garbage[0])
    want = []
    for k, (vals, timer) in enumerate(packets):
        p = c2(vals[:3], vals[3:], timer)
        want.append(p)
        stream += p + garbage[k + 1]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    f = gx.Framer()
    got = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)]):
        got += f.feed(bytes(stream[a:b]))
    got += f.feed(bytes(64))  # the stream goes on
    got_c2 = [g for g in got if g[0] == 0xC2]
    it = iter(got_c2)
    assert all(any(g == w for g in it) for w in want)
    for g in got:  # anything else found is a checksum-valid reply in the stream
        assert bytes(g) in stream + bytes(64) and sum(g[:-2]) & 0xFFFF == int.from_bytes(g[-2:], "big")
    for g in got_c2:
        d = gx.decode_accel_rate(g)
        assert all(math.isfinite(v) or math.isnan(v) or math.isinf(v) for v in d.rate_rad_s)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_gx2_framer_never_raises(data):
    f = gx.Framer()
    for g in f.feed(data):
        assert len(g) in (31, 8)


# -- monoDrive -----------------------------------------------------------------------------------


def payload(accel_g=(0.0, 0.5, -1.0), rate=(0.1, 0.2, -0.3), timer=123456, tow=987654, good=True):
    body = struct.pack(">B6fi", 0xC2, *accel_g, *rate, timer)
    csum = sum(body) & 0xFFFF
    out = body + struct.pack(">H", csum if good else csum ^ 1)
    return out if tow is None else out + struct.pack(">i", tow)


def test_monodrive_v16_header_is_big_endian_and_counts_the_header():
    p = payload()
    frame = struct.pack(">IIfI", 16 + len(p), 86_400_000, 12.5, 41) + p
    m = md.decode_frame(frame, "v16", verify_checksum=True)
    assert (m.wall_time_ms, m.game_time_s, m.sample_count) == (86_400_000, 12.5, 41)
    assert m.accel_m_s2 == pytest.approx((0.0, 0.5 * G, -G))
    assert m.rate_rad_s == pytest.approx((0.1, 0.2, -0.3))
    assert (m.timer, m.checksum_ok, m.time_of_week) == (123456, True, 987654)
    assert len(frame) == 51  # monoDrive docs: 16-byte header + 35-byte payload


def test_monodrive_old_native_headers_and_short_payload():
    p = payload(tow=None)
    tcp = struct.pack("<IIf", 12 + len(p), 5, 2.0) + p
    m = md.decode_frame(tcp, "tcp12")
    assert (m.wall_time_ms, m.game_time_s, m.sample_count, m.time_of_week) == (5, 2.0, -1, -1)
    udp = struct.pack("<If", 7, 3.0) + payload()
    m = md.decode_frame(udp, "udp8")
    assert (m.wall_time_ms, m.game_time_s, m.time_of_week) == (7, 3.0, 987654)


def test_monodrive_checksum_is_optional():
    p = payload(good=False)
    frame = struct.pack(">IIfI", 16 + len(p), 0, 1.0, 0) + p
    assert md.decode_frame(frame).checksum_ok is False
    with pytest.raises(md.CodecError):
        md.decode_frame(frame, verify_checksum=True)
    with pytest.raises(md.CodecError):
        md.decode_frame(frame[:-1])  # header length disagrees
    with pytest.raises(md.CodecError):
        md.decode_frame(frame, "v99")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=8), st.data())
def test_tcp_framer_splits_any_chunking(timers, data):
    frames = []
    for k, t in enumerate(timers):
        p = payload(timer=t)
        frames.append(struct.pack(">IIfI", 16 + len(p), k, float(k), k) + p)
    stream = b"".join(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    f = md.TcpFramer("v16")
    got = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)]):
        got += f.feed(stream[a:b])
    assert got == frames
    assert [md.decode_frame(g).timer for g in got] == timers


def test_tcp_framer_out_of_step_raises():
    with pytest.raises(md.CodecError):
        md.TcpFramer("v16").feed(b"\xff\xff\xff\xff" + bytes(60))
    with pytest.raises(md.CodecError):
        md.TcpFramer("udp8")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["v16", "tcp12", "udp8"]), st.binary(max_size=200))
def test_monodrive_decoder_fails_only_with_codec_error(header, frame):
    try:
        md.decode_frame(frame, header)
    except md.CodecError:
        pass


def _framed(header: str, payload: bytes, game_time_s: float = 1.0, count: int = 0) -> bytes:
    if header == "v16":
        return struct.pack(">IIfI", 16 + len(payload), 7, game_time_s, count) + payload
    if header == "tcp12":
        return struct.pack("<IIf", 12 + len(payload), 7, game_time_s) + payload
    return struct.pack("<If", 7, game_time_s) + payload


_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["v16", "tcp12", "udp8"]),
    st.lists(_f32, min_size=6, max_size=6),
    st.integers(-(2**31), 2**31 - 1),
    st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)),
)
def test_monodrive_gx2_payloads_round_trip_under_every_header(header, values, timer, tow):
    p = payload(accel_g=values[:3], rate=values[3:], timer=timer, tow=tow)
    m = md.decode_frame(_framed(header, p), header, verify_checksum=True)
    assert m.accel_m_s2 == pytest.approx([v * G for v in values[:3]], rel=1e-12)
    assert m.rate_rad_s == pytest.approx(values[3:], rel=0, abs=0)
    assert (m.timer, m.time_of_week, m.checksum_ok) == (timer, -1 if tow is None else tow, True)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["v16", "tcp12", "udp8"]), st.binary(max_size=300))
def test_monodrive_payload_of_another_length_or_lead_byte_is_refused_as_a_format(header, p):
    """Well framed (the header's length agrees), but not the GX2 emulation's payload: a
    FormatError, never a decoded sample."""
    if len(p) in md.PAYLOAD_SIZES and p[:1] == b"\xc2":
        p = b"\x00" + p[1:]
    with pytest.raises(md.FormatError):
        md.decode_frame(_framed(header, p), header)


@settings(max_examples=100, deadline=None)
@given(st.lists(_f32, min_size=42, max_size=42), st.sampled_from([">", "<"]))
def test_monodrive_1_15_imu_frame_is_refused_not_decoded_as_garbage(values, order):
    """Release 1.15's IMU frame - 16-byte header + 168 bytes of float32 (acceleration in
    cm/s^2 first), 184 bytes - whatever its values and byte order."""
    frame = _framed("v16", struct.pack(f"{order}42f", *values))
    assert len(frame) == 184
    with pytest.raises(md.FormatError, match="1.15 or later"):
        md.decode_frame(frame)
    with pytest.raises(md.FormatError):
        md.decode_frame(frame, verify_checksum=True)
    assert md.TcpFramer("v16").feed(frame) == [frame]  # in step: the next frame is read


# -- timing ---------------------------------------------------------------------------------------


def test_gx2_timer_wrap_is_counted():
    u = TimerUnwrapper(gx.TIMER_MODULUS, gx.TICKS_PER_S)
    start = 2**32 - gx.TICKS_PER_S // 10  # 0.1 s before the wrap
    times = [k * 0.01 for k in range(30)]
    out = [u.unwrap((start + round(t * gx.TICKS_PER_S)) % 2**32, 100.0 + t)[0] for t in times]
    assert u.wraps == 1 and u.discontinuities == 0
    assert [o - out[0] for o in out] == pytest.approx(times, abs=1e-7)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**16 - 1), st.lists(st.floats(0.001, 2000.0), min_size=1, max_size=30))
def test_unwrapper_counts_wraps_even_across_long_gaps(start, gaps):
    """A 16-bit counter at 100 Hz wraps every 655 s; gaps up to 2000 s (several wraps) are
    resolved from the host time."""
    rate = 100.0
    u = TimerUnwrapper(65536, rate)
    t_host = 50.0
    true = start
    first, _ = u.unwrap(start, t_host)
    for gap in gaps:
        t_host += gap
        true += round(gap * rate)
        t_dev, jump = u.unwrap(true % 65536, t_host + 0.003)  # read a little late
        assert not jump
        assert t_dev - first == pytest.approx((true - start) / rate)


def test_unwrapper_reports_a_device_restart():
    u = TimerUnwrapper(2**32, gx.TICKS_PER_S)
    u.unwrap(1_000_000_000, 0.0)
    t, jump = u.unwrap(5000, 0.01)  # timer back to ~0: the unit rebooted
    assert jump and t == pytest.approx(5000 / gx.TICKS_PER_S)
    t2, jump2 = u.unwrap(5000 + gx.TICKS_PER_S // 100, 0.02)
    assert not jump2 and t2 - t == pytest.approx(0.01)


@settings(max_examples=200, deadline=None)
@given(st.floats(-1e4, 1e4), st.lists(st.floats(0.0, 0.05), min_size=2, max_size=200))
def test_clock_sync_recovers_the_offset_from_the_smallest_delay(offset, delays):
    sync = ClockSync(window_s=10.0)
    delays = list(delays)
    delays[len(delays) // 2] = 0.0  # one sample arrives with no delay
    t_dev = [1000.0 + k * 0.01 for k in range(len(delays))]
    t_rx = [t + offset + d for t, d in zip(t_dev, delays)]
    prev = -math.inf
    for td, tr in zip(t_dev, t_rx):
        sync.observe(td, tr)
        t = sync.host_time(td)
        assert t <= tr + 1e-9  # never later than its own read
    # once the zero-delay sample is in the window, every time is exact
    assert [sync.host_time(td) - td - offset for td in t_dev] == pytest.approx([0.0] * len(t_dev), abs=1e-9)
    s2 = ClockSync(window_s=10.0)
    for td, tr in zip(t_dev, t_rx):
        t = s2.update(td, tr)
        assert t > prev  # update(): strictly increasing
        prev = t


def test_clock_sync_window_follows_drift():
    """Device clock 100 ppm fast: the offset follows within the window."""
    sync = ClockSync(window_s=2.0)
    for k in range(3000):  # 30 s at 100 Hz
        t_host = k * 0.01
        t_dev = t_host * (1 + 100e-6)
        sync.observe(t_dev, t_host + 0.001 * (k % 7))
    assert sync.host_time(30.0 * (1 + 100e-6)) == pytest.approx(30.0, abs=2.0 * 100e-6 + 1e-9)
