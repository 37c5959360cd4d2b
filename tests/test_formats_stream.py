"""The stream's line frames (pygnc.formats.stream) and the SX1280 range packet
(pygnc.formats.range_packet): round trips, every error class, and a reader that never
raises and never holds more than a line whatever bytes come."""

import binascii
import struct
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from pygnc.formats import range_packet as rp
from pygnc.formats import stream as fs

TAGS = sorted(fs.HOST_TAGS | fs.PYGNC_TAGS)


def _payload_for(tag, draw_bytes):
    unit = fs.SEGMENT_BYTES.get(tag)
    if unit:
        return draw_bytes[: max(unit, len(draw_bytes) // unit * unit)].ljust(unit, b"\0")
    size = fs.COMMAND_PAYLOAD_BYTES.get(tag)
    return draw_bytes[:size].ljust(size, b"\0") if size is not None else draw_bytes


@given(st.sampled_from(TAGS), st.integers(0, 10**6), st.binary(max_size=fs.max_payload_bytes()))
def test_frame_round_trip(tag, seq, data):
    payload = _payload_for(tag, data)
    line = fs.encode_frame(tag, seq, payload)
    assert len(line) <= fs.MAX_LINE_BYTES and line.endswith(b"\n") and line.startswith(b"$")
    assert all(32 <= b < 127 for b in line[:-1])  # printable ASCII: no byte the terminal acts on
    out = fs.FrameReader(fs.HOST_TAGS | fs.PYGNC_TAGS).feed(line)
    assert out == [fs.Frame(tag, seq % fs.SEQ_MODULO, payload)]


def test_crc_is_zlib_crc32_of_the_text_between_dollar_and_star():
    line = fs.encode_frame(fs.PING, 7)
    assert line == b"$PNG,7,*%08X\n" % zlib.crc32(b"PNG,7,")
    body = line[1 : line.index(b"*")]
    assert int(line[line.index(b"*") + 1 : -1], 16) == binascii.crc32(body)


def test_longest_payloads_fit_a_line():
    assert fs.max_payload_bytes() == 750
    for tag in fs.SEGMENT_BYTES:
        n = fs.max_segments(tag)
        assert len(fs.encode_frame(tag, 65535, bytes(n * fs.SEGMENT_BYTES[tag]))) <= fs.MAX_LINE_BYTES
    assert (fs.max_segments(fs.SENSOR), fs.max_segments(fs.GPS), fs.max_segments(fs.RANGE)) == (25, 7, 62)


def _one(line, tags=fs.HOST_TAGS):
    out = fs.FrameReader(tags).feed(line)
    assert len(out) == 1, out
    return out[0]


def test_each_error_class():
    good = fs.encode_frame(fs.SENSOR, 12, bytes(range(30)))
    bad = bytearray(good)
    bad[10] ^= 0x01  # a payload character changes: the CRC catches it
    e = _one(bytes(bad))
    assert (e.code, e.seq, e.tag) == (fs.ERR_BAD_CRC, 12, fs.SENSOR)
    assert _one(good[:20] + b"\n").code == fs.ERR_MALFORMED  # truncated
    assert _one(b"no frame here\n").code == fs.ERR_MALFORMED  # noise
    e = _one(fs.encode_frame(b"XYZ", 5, b"12"))
    assert (e.code, e.seq, e.tag) == (fs.ERR_UNKNOWN_TAG, 5, b"XYZ")
    assert _one(fs.encode_frame(fs.HELLO_TAG, 1, b"")).code == fs.ERR_UNKNOWN_TAG  # our own tags are not taken
    assert _one(fs.encode_frame(fs.SENSOR, 1, bytes(31))).code == fs.ERR_BAD_PAYLOAD  # not whole segments
    assert _one(fs.encode_frame(fs.SENSOR, 1, b"")).code == fs.ERR_BAD_PAYLOAD  # no segment at all
    assert _one(fs.encode_frame(fs.CADENCE, 1, bytes(3))).code == fs.ERR_BAD_PAYLOAD
    body = b"PNG,1,A*=="  # a base64 text that is no base64
    assert _one(b"$" + body + b"*%08X\n" % zlib.crc32(body)).code == fs.ERR_BAD_PAYLOAD
    body = b"PNG,123456,"  # SEQ out of range, CRC right
    assert _one(b"$" + body + b"*%08X\n" % zlib.crc32(body)).code == fs.ERR_MALFORMED
    e = _one(b"A" * 5000 + b"\n")
    assert e.code == fs.ERR_TOO_LONG and e.line == b"A" * 80


def test_noise_before_the_frame_on_its_line_is_tolerated_and_line_ends_vary():
    f = fs.encode_frame(fs.PING, 3)
    r = fs.FrameReader()
    out = r.feed(b"junk" + f[:-1] + b"\r\n" + f[:-1] + b"\r" + f)
    assert out == [fs.Frame(fs.PING, 3, b"")] * 3


def test_a_line_of_a_megabyte_is_one_error_and_memory_stays_bounded():
    r = fs.FrameReader()
    out = []
    for _ in range(1000):
        out += r.feed(b"x" * 1000)
        assert r.pending_bytes <= fs.MAX_LINE_BYTES
    out += r.feed(b"\n" + fs.encode_frame(fs.PING, 1))
    assert [type(o).__name__ for o in out] == ["FrameError", "Frame"]
    assert out[0].code == fs.ERR_TOO_LONG


def test_host_view_turns_non_frames_into_noise():
    r = fs.FrameReader(fs.PYGNC_TAGS, noise_ok=True)
    out = r.feed(b"pygnc supervisor WARNING x\nuser@pi:~$ ls\n" + fs.encode_frame(fs.ACK_TAG, 1, bytes(6)))
    assert [type(o).__name__ for o in out] == ["Noise", "Noise", "Frame"]


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_reader_never_raises_and_accounts_for_every_line(chunks):
    r = fs.FrameReader()
    items = []
    for c in chunks:
        items += r.feed(c)
        assert r.pending_bytes < fs.MAX_LINE_BYTES
    assert all(isinstance(i, (fs.Frame, fs.FrameError)) for i in items)
    assert len(items) == r.lines


@given(st.lists(st.sampled_from([fs.PING, fs.STATUS, fs.FLUSH]), min_size=1, max_size=10), st.data())
def test_frames_survive_any_chunking(tags, data):
    stream = b"".join(fs.encode_frame(t, i) for i, t in enumerate(tags))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    r = fs.FrameReader()
    out, last = [], 0
    for c in cuts + [len(stream)]:
        out += r.feed(stream[last:c])
        last = c
    assert [(f.tag, f.seq) for f in out] == [(t, i) for i, t in enumerate(tags)]


def test_payload_structs_have_the_documented_sizes():
    assert (fs.HELLO.size, fs.ACK.size, fs.ERROR.size) == (19, 6, 10)
    assert fs.COUNTERS_STRUCT.size == 4 * len(fs.COUNTER_FIELDS)
    vals = {name: i * 1000 + 1 for i, (name, _) in enumerate(fs.COUNTER_FIELDS)}
    assert fs.decode_counters(fs.encode_counters(vals)) == vals
    assert fs.decode_counters(fs.encode_counters({"lines_in": 2**40}))["lines_in"] == 2**32 - 1


# -- the SX1280 range packet -------------------------------------------------------------------------
@given(
    st.integers(0, 255),
    st.integers(0, 2**32 - 1),
    st.integers(-(1 << 23), (1 << 23) - 1),
    st.integers(-(1 << 19), (1 << 19) - 1),
    st.integers(0, 255),
)
def test_range_packet_round_trip(peer, t, raw, fei, rssi_code):
    data = rp.encode_packet(peer, t, raw, rssi_dbm=-rssi_code / 2.0, fei_raw=fei)
    assert len(data) == rp.PACKET_SIZE
    p = rp.decode_packet(data)
    assert (p.peer_id, p.t_sc_s, p.range_raw, p.fei_raw, p.rssi_dbm) == (peer, t, raw, fei, -rssi_code / 2.0)


def test_range_packet_layout_is_big_endian_as_documented():
    data = bytes.fromhex("4a 50 67db3a30 0fffff 005a00".replace(" ", ""))
    p = rp.decode_packet(data)
    assert p.peer_id == 0x4A and p.rssi_dbm == -40.0 and p.t_sc_s == 0x67DB3A30
    assert p.fei_raw == -1 and p.range_raw == 0x5A00
    # the top 4 bits of the frequency-error field are not part of it
    assert rp.decode_packet(data[:6] + b"\xff\xff\xff" + data[9:]).fei_raw == -1
    assert rp.decode_packet(data[:9] + b"\xff\xff\xfe").range_raw == -2
    assert [q.t_sc_s for q in rp.decode_packets(data * 3 + b"\x00" * 5)] == [p.t_sc_s] * 3


def test_range_conversion_follows_the_datasheet():
    # raw * 150 / (2**12 * BW_MHz): 812.5 kHz -> 0.04507 m per count; ~23 000 counts ~ 1.04 km
    assert abs(rp.metres_per_count() - 150 / (4096 * 0.8125)) < 1e-12
    assert abs(rp.range_m(23_000) - 1036.6) < 0.1
    assert abs(rp.range_m(1000, filtered=True) - 0.2 * rp.range_m(1000)) < 1e-9
    for r in (0.0, 1.0, 1234.567, 300_000.0):
        assert abs(rp.range_m(rp.raw_from_range_m(r)) - r) <= rp.metres_per_count() / 2 + 1e-9
    assert rp.raw_from_range_m(1e9) == (1 << 23) - 1


def test_range_packet_refuses_fields_out_of_range():
    import pytest

    for kw in (
        {"peer_id": 256, "t_sc_s": 0, "range_raw": 0},
        {"peer_id": 1, "t_sc_s": 2**32, "range_raw": 0},
        {"peer_id": 1, "t_sc_s": 0, "range_raw": 1 << 23},
    ):
        with pytest.raises(ValueError):
            rp.encode_packet(**kw)
    with pytest.raises(ValueError):
        rp.decode_packet(bytes(11))
    assert struct.calcsize(">BBI") + 6 == rp.PACKET_SIZE


def test_the_documented_circuitpython_host_code_speaks_the_protocol():
    """docs/interface.md shows a host how to build and parse frames with binascii and struct
    alone; that code, run here, agrees with the codec both ways."""
    import re

    from flight_harness import REPO

    doc = (REPO / "docs" / "interface.md").read_text()
    code = re.search(r"\*\*On CircuitPython\*\*.*?```python\n(.*?)```", doc, re.S).group(1)
    ns: dict = {}
    exec(code.split("\nuart.write")[0], ns)  # noqa: S102 - our own documentation
    for tag, seq, payload in (
        (fs.CADENCE, 1, struct.pack("<I", 1000)),
        (fs.SENSOR, 65535, bytes(range(30))),
        (fs.PING, 0, b""),
    ):
        assert ns["frame"](tag, seq, payload) == fs.encode_frame(tag, seq, payload)
    ack = fs.encode_frame(fs.ACK_TAG, 9, fs.ACK.pack(1, fs.CADENCE, 0))
    assert ns["parse"](b"noise" + ack.rstrip(b"\n")) == (fs.ACK_TAG, 9, fs.ACK.pack(1, fs.CADENCE, 0))
    assert ns["parse"](ack.rstrip(b"\n").replace(b"AQBD", b"AQBE")) is None  # a flipped character
    assert ns["parse"](b"$PNG,1,*nothex!!") is None
