"""IMU380/DMU380 "UU" codec: the manual's ping frame, CRC against an independent library,
framing through garbage and corruption, field offsets and two's complement, field encodings."""

import math
import struct

import pytest
from crc import Calculator, Configuration
from hypothesis import given, settings
from hypothesis import strategies as st

from pygnc.drivers import imu380_codec as uu

#: CRC-16/AUG-CCITT from the `crc` package (independent of binascii.crc_hqx).
AUG_CCITT = Calculator(
    Configuration(
        width=16, polynomial=0x1021, init_value=0x1D0F, final_xor_value=0, reverse_input=False, reverse_output=False
    )
)


def test_manual_ping_frame_is_the_crc_test_vector():
    # DMU380SA manual §6.3 / §7.1.1: the complete ping frame.
    assert uu.ping_frame() == bytes.fromhex("5555504B009EF4")
    assert uu.crc16(b"PK\x00") == 0x9EF4
    # The catalogue check value of CRC-16/AUG-CCITT; init 0xFFFF (what the manual states)
    # would give 0x4364 on the ping, init 0 0x8FF8.
    assert uu.crc16(b"123456789") == 0xE5CC
    assert uu.crc16(b"PK\x00", init=0xFFFF) == 0x4364


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_crc_matches_an_independent_implementation(data):
    assert uu.crc16(data) == AUG_CCITT.checksum(data)


def test_frame_layout():
    f = uu.build_frame(b"GP", b"ID")
    assert f == b"UUGP\x02ID" + AUG_CCITT.checksum(b"GP\x02ID").to_bytes(2, "big")
    with pytest.raises(uu.CodecError):
        uu.build_frame(b"GPX")
    with pytest.raises(uu.CodecError):
        uu.build_frame(b"GP", bytes(256))


frames_st = st.lists(st.tuples(st.binary(min_size=2, max_size=2), st.binary(max_size=60)), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    frames_st,
    st.lists(st.binary(max_size=20), min_size=9, max_size=9),
    st.lists(st.booleans(), min_size=8, max_size=8),
    st.data(),
)
def test_framer_recovers_every_intact_frame_through_garbage_and_corruption(frames, garbage, corrupt, data):
    stream = bytearray(garbage[0])
    intact = []
    for k, (ptype, payload) in enumerate(frames):
        raw = bytearray(uu.build_frame(ptype, payload))
        if corrupt[k]:
            pos = data.draw(st.integers(2, len(raw) - 1), label="corrupt position")
            raw[pos] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        else:
            intact.append(uu.Frame(ptype, payload))
        stream += raw + garbage[k + 1]
    # The stream goes on: a corrupted length byte holds the frames behind it until enough
    # bytes have arrived to disprove it (at most 262).
    stream += bytes(262)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6), label="cuts"))
    framer = uu.Framer()
    got = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)]):
        got += framer.feed(bytes(stream[a:b]))
    # every frame returned sits in the stream with a CRC valid per the independent library ...
    for f in got:
        body = f.ptype + bytes((len(f.payload),)) + f.payload
        assert b"UU" + body + AUG_CCITT.checksum(body).to_bytes(2, "big") in stream
    # ... and the intact ones all come out, in order (a corrupted frame never hides the
    # next one: the search resumes one byte after a bad frame's preamble).
    it = iter(got)
    assert all(any(g == f for g in it) for f in intact)
    st_ = framer.stats
    assert st_.bytes_total == len(stream)
    used = garbage[: len(frames) + 1]
    if not any(corrupt[: len(frames)]) and not any(b"U" in g for g in used):
        assert got == intact
        assert st_.bytes_skipped == sum(len(g) for g in used) + 262 and not framer.buf


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_framer_never_raises_on_arbitrary_bytes(data):
    framer = uu.Framer()
    for f in framer.feed(data):
        assert isinstance(f, uu.Frame)
    assert len(framer.buf) <= 262


# -- output packets: offsets from the manual's tables, bytes laid out by hand -----------------


def _put(buf: bytearray, offset: int, value: int, size: int) -> None:
    buf[offset : offset + size] = (value % (1 << (8 * size))).to_bytes(size, "big")


def test_s1_offsets_scaling_and_twos_complement():
    p = bytearray(24)
    _put(p, 0, 3277, 2)  # x accel
    _put(p, 2, -1, 2)  # y accel: 0xFFFF is -1 LSB (python-imu380 subtracted 65535: 0)
    _put(p, 4, -32768, 2)  # z accel: the most negative value
    _put(p, 6, 9362, 2)  # x rate
    _put(p, 10, -9362, 2)  # z rate
    _put(p, 12, 0x1000, 2)  # x rate-sensor temperature
    _put(p, 18, -328, 2)  # board temperature
    _put(p, 20, 0xFFFE, 2)  # counter (U2)
    _put(p, 22, 0x8001, 2)  # BIT status (U2)
    s1 = uu.decode_s1(bytes(p))
    g = 9.80665
    assert s1.accel_m_s2 == pytest.approx((3277 * 20 / 65536 * g, -20 / 65536 * g, -10 * g), rel=1e-15)
    assert s1.rate_rad_s[0] == pytest.approx(9362 * 7 * math.pi / 65536) and s1.rate_rad_s[0] == -s1.rate_rad_s[2]
    assert math.degrees(s1.rate_rad_s[0]) == pytest.approx(9362 * 1260 / 65536)  # the deg/s form of the LSB
    assert s1.rate_temp_c[0] == pytest.approx(4096 * 200 / 65536)
    assert s1.board_temp_c == pytest.approx(-328 * 200 / 65536)
    assert (s1.counter, s1.bit_status) == (0xFFFE, 0x8001)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-32768, 32767), min_size=10, max_size=10), st.integers(0, 65535), st.integers(0, 65535))
def test_s1_two_complement_for_every_value(raw, counter, bit):
    p = b"".join(v.to_bytes(2, "big", signed=True) for v in raw) + counter.to_bytes(2, "big") + bit.to_bytes(2, "big")
    s1 = uu.decode_s1(p)
    assert list(s1.accel_m_s2) == pytest.approx([v * 20 / 65536 * 9.80665 for v in raw[0:3]], rel=1e-12, abs=0)
    assert list(s1.rate_rad_s) == pytest.approx([v * 7 * math.pi / 65536 for v in raw[3:6]], rel=1e-12, abs=0)
    assert (s1.counter, s1.bit_status) == (counter, bit)


def test_s0_magnetometer_and_itow():
    p = bytearray(30)
    _put(p, 12, -16384, 2)  # x mag
    _put(p, 24, 1000, 2)  # board temp
    _put(p, 26, 0xABCD, 2)  # GPS ITOW (U2)
    _put(p, 28, 7, 2)
    s0 = uu.decode_s0(bytes(p))
    assert s0.mag_gauss[0] == pytest.approx(-16384 * uu.MAG_LSB_GAUSS)
    assert s0.board_temp_c == pytest.approx(1000 * 200 / 65536)
    assert (s0.gps_itow_ms, s0.bit_status) == (0xABCD, 7)


def test_a1_temperature_is_at_offset_24_and_itow_is_u4():
    p = bytearray(32)
    _put(p, 0, -16384, 2)  # roll: -90 deg
    _put(p, 4, 16384, 2)  # yaw: +90 deg
    _put(p, 22, -5, 2)  # z mag (signed: the openimu table typed it uint16)
    _put(p, 24, 3277, 2)  # x rate temperature (python-imu380 read offset 28)
    _put(p, 26, 0xF0000001, 4)  # ITOW, U4 (must not come out negative)
    _put(p, 30, 0x1234, 2)
    a1 = uu.decode_a1(bytes(p))
    assert math.degrees(a1.roll_rad) == pytest.approx(-90) and math.degrees(a1.yaw_mag_rad) == pytest.approx(90)
    assert a1.mag_gauss[2] == pytest.approx(-5 * uu.MAG_LSB_GAUSS)
    assert a1.rate_temp_x_c == pytest.approx(3277 * 200 / 65536)
    assert (a1.itow_ms, a1.bit_status) == (0xF0000001, 0x1234)


def test_a2_layout():
    p = bytearray(30)
    _put(p, 18, 100, 2)
    _put(p, 22, -100, 2)
    _put(p, 24, 123456789, 4)
    _put(p, 28, 0xBEEF, 2)
    a2 = uu.decode_a2(bytes(p))
    assert a2.rate_temp_c == pytest.approx((100 * 200 / 65536, 0.0, -100 * 200 / 65536))
    assert (a2.itow_ms, a2.bit_status) == (123456789, 0xBEEF)


def test_n0_latitude_longitude_are_i4_at_18_and_22():
    p = bytearray(32)
    _put(p, 12, -512, 2)  # north velocity
    _put(p, 18, -(1 << 30), 4)  # longitude: -90 deg (python-imu380: wrong offsets and sign)
    _put(p, 22, 0x15555555, 4)  # latitude: ~ +30 deg
    _put(p, 26, 0, 2)  # altitude raw 0
    _put(p, 28, 0x0102, 2)
    _put(p, 30, 0x0304, 2)
    n0 = uu.decode_n0(bytes(p))
    assert n0.vel_ned_m_s[0] == pytest.approx(-512 * 512 / 65536)
    assert math.degrees(n0.lon_rad) == pytest.approx(-90.0)
    assert math.degrees(n0.lat_rad) == pytest.approx(0x15555555 * 360 / 2**32)
    assert n0.alt_m == pytest.approx(uu.ALT_SHIFT_M)
    assert (n0.gps_itow_ms, n0.bit_status) == (0x0102, 0x0304)


def test_n1_itow_is_u4_at_36_and_bit_at_40():
    p = bytearray(42)
    _put(p, 24, 1 << 29, 4)  # longitude +45 deg
    _put(p, 28, -(1 << 29), 4)  # latitude -45 deg
    _put(p, 32, -32768, 2)  # altitude, the lowest raw value
    _put(p, 34, 2000, 2)  # x rate temp
    _put(p, 36, 0x01020304, 4)  # ITOW (python-imu380 read offset 28 = latitude)
    _put(p, 40, 0xCAFE, 2)
    n1 = uu.decode_n1(bytes(p))
    assert math.degrees(n1.lon_rad) == pytest.approx(45) and math.degrees(n1.lat_rad) == pytest.approx(-45)
    assert n1.alt_m == pytest.approx(-100.0)  # bottom of the manual's [-100, 16284) m
    assert uu.altitude_m(32767) == pytest.approx(16284 - 0.25)
    assert n1.rate_temp_x_c == pytest.approx(2000 * 200 / 65536)
    assert (n1.itow_ms, n1.bit_status) == (0x01020304, 0xCAFE)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(uu.DECODERS)), st.binary(max_size=50))
def test_output_decoders_reject_wrong_lengths_cleanly(ptype, payload):
    try:
        p = uu.decode_output(uu.Frame(ptype, payload))
    except uu.CodecError:
        assert len(payload) != uu.PAYLOAD_LENGTHS[ptype]
    else:
        assert len(payload) == uu.PAYLOAD_LENGTHS[ptype] and p is not None


# -- responses and fields ----------------------------------------------------------------------


def test_responses():
    d = uu.decode_id(struct.pack(">I", 1808400123) + b"DMU380SA-200 5020-0935-01\x00")
    assert d == uu.DeviceId(1808400123, "DMU380SA-200 5020-0935-01", "DMU380SA-200", "5020-0935-01")
    assert uu.decode_vr(bytes((19, 1, 2, 3, 7))) == uu.Version(19, 1, 2, "beta", 7)
    t0 = uu.decode_t0(struct.pack(">14H", *range(100, 114)))
    assert list(t0) == list(uu.BIT_WORDS) and t0["sensor_status"] == 113
    assert uu.decode_field_values(bytes.fromhex("02 0001 0001 0003 5331")) == {1: 1, 3: 0x5331}
    assert uu.decode_field_ids(bytes.fromhex("02 0001 0003")) == [1, 3]
    assert uu.decode_eeprom(bytes.fromhex("071C 02 0004 FFFF")) == (0x071C, [4, 0xFFFF])
    assert uu.decode_nak(b"SF") == b"SF"
    assert uu.decode_write_app(bytes.fromhex("000000F0 F0")) == (240, 240)
    for bad, fn in (
        (b"\x02\x00\x01", uu.decode_field_values),
        (b"\x01", uu.decode_field_ids),
        (b"\x07\x1c\x02\x00", uu.decode_eeprom),
        (b"S", uu.decode_nak),
        (b"\x00\x00", uu.decode_id),
    ):
        with pytest.raises(uu.CodecError):
            fn(bad)


def test_requests():
    assert uu.field_ids_payload([1, 3]) == bytes.fromhex("02 0001 0003")
    assert uu.field_values_payload({1: 0}) == bytes.fromhex("01 0001 0000")
    assert uu.read_eeprom_frame(0x071C, 1)[2:8] == b"RE\x03\x07\x1c\x01"
    wa = uu.write_app_frame(0x1000, b"\xaa" * 3)
    assert wa[2:5] == b"WA\x08" and wa[5:10] == bytes.fromhex("00001000 03")
    with pytest.raises(uu.CodecError):
        uu.field_values_payload({1: 70000})


def test_field_encodings():
    assert uu.packet_type_value("S1") == 21297 and uu.packet_type_value(b"S0") == 21296
    assert uu.packet_type_value("A1") == 16689 and uu.packet_type_value("A2") == 16690
    assert uu.packet_rate_divider(100) == 1 and uu.packet_rate_divider(2) == 50
    assert uu.baud_code(115200) == 5 and uu.BAUD_CODES[6] == 230400
    for hz, count in uu.LPF_COUNTS.items():
        assert uu.lpf_cutoff_hz(count) == hz
    with pytest.raises(uu.CodecError):
        uu.packet_rate_divider(7)
    with pytest.raises(uu.CodecError):
        uu.lpf_count(3)
    # python-imu380's examples (imu.json)
    assert uu.orientation_value("+X+Y+Z") == 0
    assert uu.orientation_value("-X-Y+Z") == 9
    assert uu.orientation_value("-Y+X+Z") == 35
    with pytest.raises(uu.CodecError):
        uu.orientation_value("+X+X+Z")


@given(st.permutations("XYZ"), st.lists(st.sampled_from("+-"), min_size=3, max_size=3))
def test_orientation_round_trip(axes, signs):
    spec = "".join(s + a for s, a in zip(signs, axes))
    assert uu.orientation_spec(uu.orientation_value(spec)) == spec
