"""Bus message codec: round trips, and every kind of bad input dropped and counted."""

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pygnc.bus.messages import MESSAGE_TYPES, SCHEMA_VERSION, DecodeCounters, Encoder, decode, type_prefix

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


def body_strategy(msg_type):
    fields = {}
    for name, kind in MESSAGE_TYPES[msg_type].items():
        fields[name] = {
            "num": finite,
            "int": st.integers(-(2**31), 2**31),
            "bool": st.booleans(),
            "str": st.text(max_size=20),
            "map": st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1), max_size=3),
            "list": st.lists(st.integers(-(2**63), 2**63 - 1), max_size=6),
            "vec3": st.lists(finite, min_size=3, max_size=3),
            "vec6": st.lists(finite, min_size=6, max_size=6),
            "bytes": st.binary(max_size=100),
        }[kind]
    return st.fixed_dictionaries(fields)


any_message = st.sampled_from(sorted(MESSAGE_TYPES)).flatmap(lambda t: st.tuples(st.just(t), body_strategy(t)))


@settings(max_examples=150, deadline=None)
@given(any_message)
def test_round_trip_every_type(tb):
    msg_type, body = tb
    enc = Encoder("ingest")
    raw = enc.encode(msg_type, body)
    c = DecodeCounters()
    msg = decode(raw, c)
    assert msg is not None and c.ok == 1 and c.dropped == 0
    assert msg.type == msg_type and msg.body == body and msg.src == "ingest" and msg.seq == 1


@settings(max_examples=150, deadline=None)
@given(any_message)
def test_type_prefix_starts_every_message_of_its_type_and_no_other(tb):
    """A task that does not read a type skips its messages by these first bytes
    (pygnc.tasks.base): a message starts with its own type's prefix and with no other's
    (the string's length is in its header, so no name's prefix is another's)."""
    msg_type, body = tb
    raw = Encoder("ingest").encode(msg_type, body)
    assert [t for t in MESSAGE_TYPES if raw.startswith(type_prefix(t))] == [msg_type]


def test_type_prefix_of_an_undeclared_type_is_refused():
    with pytest.raises(KeyError):
        type_prefix("no_such_type")


def test_sequence_numbers_increase_per_sender():
    enc = Encoder("x")
    c = DecodeCounters()
    seqs = [decode(enc.encode("start", {}), c).seq for _ in range(5)]
    assert seqs == [1, 2, 3, 4, 5]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_raises_and_is_counted(data):
    c = DecodeCounters()
    msg = decode(data, c)
    assert (msg is None) == (c.dropped == 1)


def _raw(**over):
    env = {"v": SCHEMA_VERSION, "type": "ping", "seq": 1, "src": "s", "t_mono_s": 0.0, "body": {"key": 3}}
    env.update(over)
    return msgpack.packb(env, use_bin_type=True)


@pytest.mark.parametrize(
    "raw, counter",
    [
        (_raw(v=SCHEMA_VERSION + 1), "wrong_version"),
        (_raw(type="launch_missiles"), "unknown_type"),
        (_raw(body={}), "missing_field"),
        (_raw(body={"key": "3"}), "missing_field"),
        (_raw(body=[1, 2]), "bad_envelope"),
        (msgpack.packb([1, 2, 3]), "bad_envelope"),
        (_raw(seq="one"), "bad_envelope"),
        (b"\xc1", "not_msgpack"),
        (_raw() + b"trailing", "not_msgpack"),
        (b"\x00" * 70_000, "oversized"),
    ],
)
def test_bad_messages_dropped_with_reason(raw, counter):
    c = DecodeCounters()
    assert decode(raw, c) is None
    assert getattr(c, counter) == 1 and c.dropped == 1


def test_vectors_checked():
    enc = Encoder("x")
    c = DecodeCounters()
    good = {
        "t_sc_s": 1.0,
        "peer_id": 0x4A,
        "range_m": 1.0,
        "range_raw": 44,
        "rssi_dbm": -60.0,
        "fei_hz": 150.0,
        "valid": True,
        "file_index": 0,
        "group": 0,
    }
    assert decode(enc.encode("range", good), c) is not None
    bad = dict(good, range_m="far")
    assert decode(enc.encode("range", bad), c) is None and c.missing_field == 1


def test_bytes_fields_must_be_bytes():
    enc = Encoder("x")
    c = DecodeCounters()
    good = {"tag": "SNS", "seq": 1, "data": bytes(30), "t_rx_sc_s": 1.0}
    assert decode(enc.encode("live_segments", good), c).body["data"] == bytes(30)
    assert decode(enc.encode("live_segments", dict(good, data="AAAA")), c) is None and c.missing_field == 1


def test_undeclared_type_cannot_be_sent():
    with pytest.raises(KeyError):
        Encoder("x").encode("nonsense", {})
