"""Housekeeping device codecs: EMUS G1 BMS sentences, OPC-N3 records, USB-ISS frames.

CRCs are checked against the independent ``crc`` package and the published check values;
request bytes against the vectors in the protocol notes (docs/interface.md); decoders with
hypothesis for round trips and for never failing on bad bytes.
"""

import math
import struct

import msgpack
import pytest
from crc import Calculator, Crc8, Crc16
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ground.devices.housekeeping import EmusBmsModel, OpcN3Model, UsbIssModel
from pygnc.drivers import emus_bms as bms_drv
from pygnc.drivers import emus_bms_codec as eb
from pygnc.drivers import opc_n3 as opc_drv
from pygnc.drivers import opc_n3_codec as on
from pygnc.drivers import usb_iss as ui
from pygnc.drivers.exchange import Pause, Transfer

CRC8_REF = Calculator(Crc8.MAXIM_DOW)
CRC16_REF = Calculator(Crc16.MODBUS)

# -- CRCs -------------------------------------------------------------------------------------


def test_crc_check_values():
    assert eb.crc8_maxim(b"123456789") == 0xA1
    assert on.crc16_modbus(b"123456789") == 0x4B37


@given(st.binary(max_size=300))
def test_crc8_matches_reference(data):
    assert eb.crc8_maxim(data) == CRC8_REF.checksum(data)


@given(st.binary(max_size=300))
def test_crc16_matches_reference(data):
    assert on.crc16_modbus(data) == CRC16_REF.checksum(data)


# Request bytes derived in the protocol notes (docs/interface.md, "EMUS G1 BMS").
REQUEST_VECTORS = {
    "BV1": "4F",
    "BV2": "C7",
    "BT1": "CC",
    "BC1": "E1",
    "CV1": "78",
    "VR1": "D7",
    "ST1": "A0",
    "BB1": "2C",
    "DT1": "7E",
    "OT1": "86",
}


@pytest.mark.parametrize("name,crc", sorted(REQUEST_VECTORS.items()))
def test_request_vectors(name, crc):
    assert eb.encode_request(name) == f"\r\n{name},?,{crc}\r\n".encode()


def test_bad_names_are_refused():
    for bad in ("bv1", "B1", "BV12", "1BV", "B,1"):
        with pytest.raises(ValueError):
            eb.encode_request(bad)


# -- EMUS sentences ---------------------------------------------------------------------------

names = st.builds(
    lambda a, b, c: a + b + c,
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
)
field_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters=","), max_size=20
)


@given(names, st.lists(field_text, max_size=12), st.lists(st.integers(1, 40), max_size=6))
def test_sentence_round_trip_in_any_chunking(name, fields, cuts):
    line = eb.encode_sentence(name, fields)
    data = b"\r\n" + line + line
    framer = eb.SentenceFramer()
    out, pos = [], 0
    for c in cuts:
        out += framer.feed(data[pos : pos + c])
        pos += c
    out += framer.feed(data[pos:])
    assert [(s.name, list(s.fields)) for s in out] == [(name, fields)] * 2
    assert framer.counters.bad_crc == framer.counters.malformed == 0


sentences = st.builds(lambda n, f: eb.encode_sentence(n, f), names, st.lists(field_text, max_size=6))


@settings(max_examples=300)
@given(
    st.lists(st.tuples(st.binary(max_size=40), sentences), min_size=1, max_size=8),
    st.lists(st.integers(1, 64), max_size=10),
)
def test_corruption_never_desynchronises(parts, cuts):
    """Garbage (any bytes, line ends included) between sentences costs only itself: every
    sentence that follows a line end is recovered, in order, whatever the chunking."""
    stream = b"".join(g + b"\r\n" + s for g, s in parts)
    whole = eb.SentenceFramer().feed(stream)
    framer = eb.SentenceFramer()
    chunked, pos = [], 0
    for c in cuts:
        chunked += framer.feed(stream[pos : pos + c])
        pos += c
    chunked += framer.feed(stream[pos:])
    assert [s.raw for s in chunked] == [s.raw for s in whole]
    want = iter(s.raw for s in whole)
    for _, s in parts:  # each real sentence appears, in order (garbage may add valid ones)
        assert any(r == s.rstrip(b"\r\n") for r in want)


def test_lost_line_end_does_not_take_the_next_sentence():
    a, b = eb.encode_sentence("BV1", ["0C", "B4", "B8", "B6", "0C34", ""]), eb.encode_sentence("CV1", ["0C34", "FF85"])
    f = eb.SentenceFramer()
    out = f.feed(a[:-2] + b"\x07#" + b)  # a lost its CR LF, garbage, then b
    assert [s.name for s in out] == ["CV1"] and f.counters.recovered == 1
    out = f.feed(b"x" * 2000 + b"\r\n" + a)  # an over-long run is dropped, then resync
    assert [s.name for s in out] == ["BV1"] and f.counters.overlong == 1


def test_bad_crc_is_counted_and_dropped():
    a = bytearray(eb.encode_sentence("BC1", ["00057E40", "00057E40", "1FBD"]))
    a[5] ^= 0x01
    f = eb.SentenceFramer()
    assert f.feed(bytes(a)) == [] and f.counters.bad_crc == 1


@given(
    st.integers(1, 16).flatmap(
        lambda d: st.tuples(st.just(d), st.integers(-(1 << (4 * d - 1)), (1 << (4 * d - 1)) - 1))
    )
)
def test_signed_fields_of_any_width(dv):
    digits, v = dv
    text = f"{v & ((1 << (4 * digits)) - 1):0{digits}X}"
    assert eb.parse_signed(text) == v
    if digits % 2 == 0:
        assert eb.signed_hex_field(v, digits // 2) == text


def test_signed_field_widths_where_rohsyl_was_wrong():
    # rohsyl took 8 * (len - 2) bits: right only for 4 digits
    assert eb.parse_signed("FF") == -1 and eb.parse_signed("7F") == 127
    assert eb.parse_signed("FFFF85") == -123 and eb.parse_signed("FF85") == -123
    assert eb.parse_signed("80000000") == -(1 << 31) and eb.parse_signed("") is None


@given(st.sampled_from(eb.KNOWN_SENTENCES + ("CS1", "ZZ9")), st.lists(field_text, max_size=12))
def test_decode_never_fails_except_with_sentence_error(name, fields):
    s = eb.Sentence(name, tuple(fields), b"")
    try:
        v = eb.decode_sentence(s)
    except eb.SentenceError as exc:
        assert exc.reason == "bad_field"
    else:
        assert isinstance(v, dict)


def _ints(v):
    """Every int in a decoded value (nested lists and dicts)."""
    if isinstance(v, dict):
        for x in v.values():
            yield from _ints(x)
    elif isinstance(v, list):
        for x in v:
            yield from _ints(x)
    elif isinstance(v, int):
        yield v


hex_text = st.text(alphabet="0123456789ABCDEFabcdef", max_size=300)


@settings(max_examples=300)
@given(st.sampled_from(eb.KNOWN_SENTENCES), st.lists(st.one_of(hex_text, field_text), max_size=14))
@example("VR1", ["G1CU", "F" * 20, "2.0.13"])
@example("BC1", ["1" + "0" * 260, "01", "01"])
def test_any_hex_field_decodes_to_packable_values_or_is_a_bad_field(name, fields):
    """Checksum-valid sentences whose fields hold hex of any width: the values pack (msgpack,
    as the housekeeping task publishes them) with every int within int64, or the sentence is
    a bad field - never an OverflowError, never an int msgpack cannot encode."""
    s = eb.parse_line(eb.encode_sentence(name, fields).rstrip(b"\r\n"))
    try:
        v = eb.decode_sentence(s)
    except eb.SentenceError as exc:
        assert exc.reason == "bad_field"
        return
    msgpack.packb(v, use_bin_type=True)
    assert all(-(1 << 63) <= x < 1 << 63 for x in _ints(v))


@pytest.mark.parametrize(
    "name, fields",
    [
        ("BV2", ["00", "01", "FFFFFFFF", "B4"]),  # a group of 4e9 cells
        ("BV2", ["00", "100", "01", "B4"]),  # first cell 256
        ("BT2", ["00", "F0", "20", "6464"]),  # cells 240..271
        ("BB2", ["00", "FFFFFFFFFFFFFFFF", "01", "00"]),
        ("BV1", ["100", "B4", "B4", "B4", "0DDE", ""]),  # a pack of 256 cells
        ("VR1", ["G1CU", "F" * 20, "2.0.13"]),  # a serial number above 2**64
        ("BC1", ["8000000000000000", "01", "01"]),  # 2**63
        ("CV1", ["0DDE", "00000000000000000"]),  # a signed field of 17 digits
        ("CV1", ["0DDE", "-7B"]),  # int() takes a sign ...
        ("BV2", ["00", "0x1", "01", "B4"]),  # ... a 0x prefix ...
        ("ST1", [" 3", "00", "00", "007D", "1F", "0000", "00", "00"]),  # ... blanks ...
        ("BB2", ["00", "01", "02", "-1FF"]),  # ... and, in an array, a signed pair
    ],
)
def test_values_out_of_their_range_are_bad_fields(name, fields):
    with pytest.raises(eb.SentenceError) as e:
        _dec(name, fields)
    assert e.value.reason == "bad_field"


def test_the_largest_values_in_range_decode():
    v = _dec("BV2", ["00", "01", "FF", "B4"])  # cells 1..255
    assert (v["first_cell"], v["group_size"]) == (1, 255)
    assert _dec("BT2", ["00", "FF", "01", "64"])["first_cell"] == 255
    assert _dec("BV1", ["FF", "B4", "B4", "B4", "0DDE", ""])["n_cells"] == 255
    assert _dec("BC1", ["7FFFFFFFFFFFFFFF", "0", "0"])["charge_coulomb"] == (1 << 63) - 1
    assert _dec("CV1", ["0DDE", "8000000000000000"])["current_a"] == pytest.approx(-(1 << 63) * 0.1)
    assert _dec("VR1", ["G1CU", "000000000000ABCD", ""])["serial_number"] == 0xABCD


@given(
    st.sampled_from(eb.KNOWN_SENTENCES),
    st.sampled_from(eb.KNOWN_SENTENCES),
    st.lists(field_text, max_size=8),
    st.binary(max_size=80),
    st.booleans(),
)
def test_recorded_sentences_decode_or_refuse_with_sentence_error(record, name, fields, junk, use_junk):
    """What the ground reads back from a batch ``hk`` record: the sentence's values (as the
    flight decoded them) when the bytes are the recorded sentence, else a SentenceError."""
    raw = junk if use_junk else eb.encode_sentence(name, fields).rstrip(b"\r\n")
    try:
        v = eb.decode_record(record, raw)
    except eb.SentenceError as exc:
        assert exc.reason in ("malformed", "bad_crc", "bad_field")
        assert use_junk or record != name or exc.reason == "bad_field"
        return
    assert v == eb.decode_sentence(eb.parse_line(raw))


def _dec(name, fields):
    return eb.decode_sentence(eb.parse_line(eb.encode_sentence(name, fields).rstrip(b"\r\n")))


def test_every_sentence_in_physical_units():
    v = _dec("BV1", ["0C", "B4", "BE", "B9", "0DDE", ""])
    assert v["n_cells"] == 12 and v["min_cell_voltage_v"] == pytest.approx(3.80)
    assert v["max_cell_voltage_v"] == pytest.approx(3.90) and v["total_voltage_v"] == pytest.approx(35.50)
    v = _dec("BV2", ["00", "09", "04", "B4B5B6FF"])
    assert (v["string"], v["first_cell"], v["group_size"]) == (0, 9, 4)
    assert v["cell_voltage_v"] == pytest.approx([3.80, 3.81, 3.82, 4.55])
    v = _dec("BT1", ["0C", "7D", "82", "7F", ""])
    assert (v["min_module_temp_c"], v["max_module_temp_c"], v["avg_module_temp_c"]) == (25, 30, 27)
    assert _dec("BT2", ["00", "01", "02", "6450"])["module_temp_c"] == [0, -20]
    assert _dec("BT3", ["0C", "64", "65", "64", ""])["max_cell_temp_c"] == 1
    assert _dec("BT4", ["00", "01", "01", "FF"])["cell_temp_c"] == [155]
    v = _dec("BB1", ["0C", "00", "FF", "33", "", "D2"])
    assert v["max_balancing_pct"] == pytest.approx(100.0) and v["avg_balancing_pct"] == pytest.approx(20.0)
    assert v["balancing_threshold_v"] == pytest.approx(4.10)
    assert _dec("BB2", ["00", "01", "02", "00FF"])["balancing_pct"] == pytest.approx([0.0, 100.0])
    v = _dec("BC1", ["00057E40", "00057E40", "2710"])
    assert v == {"charge_coulomb": 360000, "capacity_coulomb": 360000, "soc_pct": pytest.approx(100.0)}
    v = _dec("CV1", ["0DDE", "FF85", "", "", "", "", "", "", "", ""])
    assert v["total_voltage_v"] == pytest.approx(35.50) and v["current_a"] == pytest.approx(-12.3)
    assert _dec("CV1", ["0DDE", "007B"])["current_a"] == pytest.approx(12.3)
    v = _dec("DT1", ["0064"] * 12)
    assert v["speed_km_h"] == pytest.approx(10.0) and v["last_charge_energy_wh"] == 100
    v = _dec("OT1", ["40", "00", "28", "00"])
    assert v["charger_flag_names"] == ["charger"] and v["output_flag_names"] == ["heater", "buzzer"]
    v = _dec("VR1", ["G1CU", "123456", "2.0.13"])
    assert v == {"hardware_type": "G1CU", "serial_number": 0x123456, "firmware_version": "2.0.13"}
    v = _dec("ST1", ["03", "00", "00", "007D", "1F", "0841", "21", "00000A00"])
    assert v["charging_stage_name"] == "main_charging"
    assert v["validity"] == [
        "cell_voltages",
        "module_temperatures",
        "balancing_rates",
        "live_cell_count",
        "cell_temperatures",
    ]
    assert v["protection"] == ["under_voltage", "no_cell_communication", "cell_overheat"]
    assert v["power_reduction"] == ["low_voltage", "high_cell_temperature"]
    assert v["pins"] == ["charger_enable", "contactor"]
    # empty fields (no cell communication) are None, not zero
    v = _dec("BV1", ["", "", "", "", "", ""])
    assert v["n_cells"] is None and v["min_cell_voltage_v"] is None
    with pytest.raises(eb.SentenceError):
        _dec("BV1", ["0G", "", "", "", "", ""])


def test_simulated_pack_decodes_to_its_own_values():
    m = EmusBmsModel(n_cells=12, group_size=8)
    f = eb.SentenceFramer()
    got = {}
    for name in eb.KNOWN_SENTENCES:
        for s in f.feed(b"".join(m.sentences(name))):
            got.setdefault(name, []).append(eb.decode_sentence(s))
    cells = got["BV2"][0]["cell_voltage_v"] + got["BV2"][1]["cell_voltage_v"]
    assert cells == pytest.approx(m.cell_v, abs=0.005)
    assert got["CV1"][0]["current_a"] == pytest.approx(m.current_a, abs=0.05)
    assert got["BC1"][0]["soc_pct"] == pytest.approx(m.soc_pct, abs=0.01)


# -- response queue (pure) ---------------------------------------------------------------------


def _sent(name, fields):
    return eb.parse_line(eb.encode_sentence(name, fields).rstrip(b"\r\n"))


def test_queue_matches_out_of_order_and_counts_groups_from_the_pack():
    q = bms_drv.ResponseQueue()
    for n in ("BV1", "BV2", "BC1"):
        assert q.request(n, 0.0, 1.0)
    assert not q.request("BV1", 0.1, 1.0) and q.counters.already_pending == 1
    g1, g2 = _sent("BV2", ["00", "01", "08", "B4" * 8]), _sent("BV2", ["00", "09", "04", "B4" * 4])
    bv1, bc1 = _sent("BV1", ["0C", "B4", "B4", "B4", "0DDE", ""]), _sent("BC1", ["01", "02", "03"])
    done = []
    for s in (g2, bc1, bv1, g1):  # groups before the summary, another reply in between
        v = eb.decode_sentence(s)
        q.learn(s, v)
        done += q.on_sentence(s, v, 0.2)
    assert [r.name for r in done] == ["BC1", "BV1", "BV2"] and all(r.complete for r in done)
    assert len(done[-1].sentences) == 2 and not q.pending


def test_queue_times_out_each_request_and_keeps_partial_groups():
    q = bms_drv.ResponseQueue(cells=12)
    q.request("BV2", 0.0, 1.0)
    q.request("BT1", 0.5, 1.0)
    s = _sent("BV2", ["00", "01", "08", "B4" * 8])
    assert q.on_sentence(s, eb.decode_sentence(s), 0.1) == []
    assert q.next_deadline() == 1.0
    r = q.expire(1.0)
    assert [(x.name, x.complete, len(x.sentences)) for x in r] == [("BV2", False, 1)]
    assert q.counters.partial == 1 and q.next_deadline() == 1.5
    assert [x.name for x in q.expire(1.6)] == ["BT1"] and q.counters.timeouts == 2


def test_queue_counts_only_cells_a_pack_can_have():
    """A group's cells beyond MAX_CELLS are not counted (the codec refuses such a group; the
    queue holds at most MAX_CELLS + 1 cells per reply whatever values it is given)."""
    q = bms_drv.ResponseQueue(cells=12)
    q.request("BV2", 0.0, 1.0)
    s = _sent("BV2", ["00", "F0", "08", "B4" * 8])
    assert q.on_sentence(s, {"first_cell": 250, "group_size": 1 << 20}, 0.1) == []
    assert q.pending["BV2"].cells_seen == set(range(250, eb.MAX_CELLS + 1))
    assert q.on_sentence(s, {"first_cell": -(1 << 20), "group_size": (1 << 20) + 3}, 0.2) == []
    assert len(q.pending["BV2"].cells_seen) == eb.MAX_CELLS + 1 - 250 + 3


# -- OPC-N3 records ----------------------------------------------------------------------------

u16, u8 = st.integers(0, 0xFFFF), st.integers(0, 0xFF)
f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
hist_fields = st.tuples(
    st.lists(u16, min_size=24, max_size=24),
    st.tuples(u8, u8, u8, u8),
    u16,
    u16,
    u16,
    u16,
    st.tuples(f32, f32, f32),
    st.tuples(u16, u16, u16, u16),
    u16,
    u16,
)


@given(hist_fields)
def test_histogram_round_trip(h):
    counts, mtof, period, flow, t_raw, rh_raw, pm, rej, fan, laser = h
    raw = on.encode_histogram(counts, mtof, period, flow, t_raw, rh_raw, pm, rej, fan, laser)
    assert len(raw) == on.HISTOGRAM_SIZE
    assert struct.unpack_from("<H", raw, 84)[0] == CRC16_REF.checksum(raw[:84])
    v = on.decode_histogram(raw)
    assert v["bin_counts"] == counts
    assert v["sampling_period_s"] == period / 100 and v["sample_flow_ml_s"] == flow / 100
    assert v["mtof_us"] == [m / 3 for m in mtof]
    assert v["temperature_c"] == pytest.approx(-45 + 175 * t_raw / 65535)
    assert v["relative_humidity_pct"] == pytest.approx(100 * rh_raw / 65535)
    assert [v["pm_a_ug_m3"], v["pm_b_ug_m3"], v["pm_c_ug_m3"]] == [
        struct.unpack("<f", struct.pack("<f", x))[0] for x in pm
    ]
    assert (v["reject_glitch"], v["reject_long_tof"], v["reject_ratio"], v["reject_out_of_range"]) == rej
    assert (v["fan_rev_count"], v["laser_status"]) == (fan, laser)
    if period and flow:
        vol = period / 100 * flow / 100
        assert v["bin_conc_per_ml"] == pytest.approx([c / vol for c in counts])
    else:  # batonopc's ZeroDivisionError: here no concentration, no exception
        assert v["bin_conc_per_ml"] is None and v["sample_volume_ml"] == 0


@given(st.binary(min_size=86, max_size=86), st.integers(0, 86 * 8 - 1))
def test_any_single_bit_error_is_refused(data, bit):
    raw = bytearray(data[:84] + struct.pack("<H", on.crc16_modbus(data[:84])))
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(on.OpcChecksumError):
        on.decode_histogram(bytes(raw))


@given(st.binary(max_size=200))
def test_histogram_decoder_only_raises_its_own_errors(data):
    try:
        v = on.decode_histogram(data)
    except (on.OpcChecksumError, on.OpcFrameError):
        return
    assert all(x is None or math.isfinite(x) for x in (v["pm_a_ug_m3"], v["pm_b_ug_m3"], v["pm_c_ug_m3"]))


def test_non_finite_pm_becomes_none():
    raw = on.encode_histogram([0] * 24, pm_ug_m3=(float("nan"), float("inf"), 1.5))
    v = on.decode_histogram(raw)
    assert v["pm_a_ug_m3"] is None and v["pm_b_ug_m3"] is None and v["pm_c_ug_m3"] == 1.5


@given(st.binary(min_size=168, max_size=168))
def test_config_round_trip(raw):
    assert on.encode_config(on.decode_config(raw)) == raw


def test_text_and_small_records():
    assert on.decode_text(b"OPC-N3 Iss1.1\x00\xff  ") == "OPC-N3 Iss1.1"
    assert on.decode_firmware(bytes([1, 17])) == {"firmware_major": 1, "firmware_minor": 17}
    assert on.decode_dac_status(bytes([1, 0, 255, 180, 1, 0]))["fan_on"] is True
    with pytest.raises(on.OpcFrameError):
        on.decode_config(b"\0" * 100)


@given(
    st.sampled_from(("histogram", "info", "serial", "firmware", "config", "dac_status", "other")),
    st.binary(max_size=200),
)
def test_recorded_opc_records_decode_or_refuse_with_their_own_error(record, raw):
    """What the ground reads back from a batch ``hk`` record: values, or an OpcError."""
    try:
        v = on.decode_record(record, raw)
    except on.OpcError:
        return
    assert isinstance(v, dict)


# -- USB-ISS -------------------------------------------------------------------------------------


def test_usb_iss_framing():
    assert ui.spi_mode_byte(1) == 0x92 and ui.spi_mode_byte(0) == 0x90 and ui.spi_mode_byte(3) == 0x93
    assert ui.sck_divisor(500_000) == 11  # py-opc issue #41: divisor 11 at 500 kHz
    assert ui.encode_set_spi_mode(1, 500_000) == bytes([0x5A, 0x02, 0x92, 11])
    assert ui.encode_spi(b"\x30") == b"\x61\x30"
    assert ui.decode_spi_reply(b"\xff\xf3", 1) == b"\xf3"
    with pytest.raises(ui.UsbIssError):
        ui.decode_spi_reply(b"\x00\x00", 1)
    with pytest.raises(ui.UsbIssError, match="unknown command"):
        ui.decode_mode_reply(b"\x00\x05")
    with pytest.raises(ValueError):
        ui.encode_spi(b"")


@given(st.floats(1_000, 6_000_000))
def test_sck_divisor_never_exceeds_the_requested_clock(hz):
    d = ui.sck_divisor(hz)
    assert 1 <= d <= 255
    if d < 255:
        assert ui.SCK_BASE_HZ / (d + 1) <= hz * (1 + 1e-12) or d == 1


# -- the handshake, driven in memory against the device model -----------------------------------


def drive(gen, bridge, t=0.0):
    """Run an exchange generator against a bridge model; returns (value, elapsed pauses)."""
    send, t0 = None, t
    try:
        while True:
            a = gen.send(send)
            if isinstance(a, Transfer):
                send = bridge.packet(a.tx, t)
                assert len(send) == a.rx_len
                t += 0.001
            else:
                assert isinstance(a, Pause)
                t += a.seconds
                send = None
    except StopIteration as stop:
        return stop.value, t - t0


def test_handshake_waits_while_busy_and_reads_records():
    import random

    opc = OpcN3Model(random.Random(5), busy_prob=0.6)
    bridge = UsbIssModel(opc)
    recs, _ = drive(opc_drv.setup_and_identify(500_000), bridge)
    names = [r[0] for r in recs]
    assert names == ["bridge", "info", "serial", "firmware", "config", "dac_status"]
    assert recs[1][1]["info"].startswith("OPC-N3") and recs[3][1] == {"firmware_major": 1, "firmware_minor": 17}
    assert recs[4][1]["bin_boundaries_um"][0] == 0.35
    _, waited = drive(opc_drv.power_on(opc_drv.OpcTiming(fan_spinup_s=5.0)), bridge)
    assert opc.fan_on and opc.laser_on and waited >= 5.0
    fan_t, laser_t = (t for t, o in opc.power_log if o in (on.POWER_FAN_ON, on.POWER_LASER_ON))
    assert laser_t - fan_t >= 5.0  # the laser never runs before the fan has spun up
    (v, raw), _ = drive(opc_drv.read_histogram(), bridge, t=20.0)
    assert len(raw) == 86 and v["sample_flow_ml_s"] == 5.5
    drive(opc_drv.power_off(), bridge, t=30.0)
    assert [o for _, o in opc.power_log][-2:] == [on.POWER_LASER_OFF, on.POWER_FAN_OFF]


def test_busy_forever_times_out_and_nonsense_is_a_protocol_error():
    import random

    bridge = UsbIssModel(OpcN3Model(random.Random(1), busy_prob=1.0))
    drive(ui.setup(), bridge)
    timing = opc_drv.OpcTiming(retry_s=0.02, busy_timeout_s=0.5)
    with pytest.raises(opc_drv.OpcBusyTimeout):
        drive(opc_drv.command(on.CMD_FIRMWARE, 2, timing=timing), bridge)
    with pytest.raises(on.OpcProtocolError):
        drive(opc_drv.command(0x77, 2), bridge)  # a command the device does not know: answer 0x00
    bridge.opc.busy_prob = 0.0
    with pytest.raises(on.OpcChecksumError):
        bridge.opc.bad_crc_prob = 1.0
        drive(opc_drv.read_histogram(), bridge)


@given(st.binary(min_size=1, max_size=63), st.booleans())
def test_usb_iss_spi_frames_round_trip(data, ack):
    frame = ui.encode_spi(data)
    assert frame[0] == 0x61 and frame[1:] == data
    reply = bytes([0xFF if ack else 0x00]) + data[::-1]
    if ack:
        assert ui.decode_spi_reply(reply, len(data)) == data[::-1]
    else:
        with pytest.raises(ui.UsbIssError):
            ui.decode_spi_reply(reply, len(data))
    with pytest.raises(ui.UsbIssError):
        ui.decode_spi_reply(reply[:-1], len(data))  # a short reply is never taken


def test_codecs_do_no_io_and_read_no_clock():
    """Every ``*_codec`` module of pygnc.drivers imports only pure standard modules (and other
    codecs, and the exception tree ``errors``, itself pure): no link, socket, serial port,
    file or clock."""
    import ast
    from pathlib import Path

    import pygnc.drivers

    # (collections.abc: the abstract types annotations name - no I/O, no clock)
    pure = {"__future__", "binascii", "collections.abc", "dataclasses", "math", "re", "struct", "typing"}
    codecs = sorted(Path(pygnc.drivers.__file__).parent.glob("*_codec.py"))
    assert {p.stem for p in codecs} >= {
        "emus_bms_codec",
        "opc_n3_codec",
        "gx2_codec",
        "imu380_codec",
        "monodrive_codec",
    }
    for path in [*codecs, Path(pygnc.drivers.__file__).parent / "errors.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = (
                    [node.module]
                    if node.level == 0
                    else (
                        []
                        if (node.module or "").endswith("_codec") or node.module == "errors"
                        else ["." + (node.module or "")]
                    )
                )
            else:
                continue
            assert set(names) <= pure, (path.name, names)
