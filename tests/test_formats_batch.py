"""Batch-file layout: every record kind round-trips within its stated precision; a file survives
truncation (power cut), flipped bits, inserted garbage and records of kinds it does not know."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from _formats_corrupt import Corrupted, corruptions
from hypothesis import given, settings
from hypothesis import strategies as st

from pygnc.formats import batch as B

_INT = {
    "b": (-128, 127),
    "B": (0, 255),
    "h": (-32768, 32767),
    "H": (0, 65535),
    "i": (-(2**31), 2**31 - 1),
    "I": (0, 2**32 - 1),
}


def _value(f: B.Field):
    """Strategy for one value of *f* inside its representable range (NaN allowed where stored)."""
    if f.code == "s":
        return st.text(max_size=f.count)
    if f.code == "y":
        return st.binary(max_size=f.count)
    if f.code in _INT:
        lo, hi = _INT[f.code]
        if f.scale is None:
            return st.integers(lo, hi)
        return st.one_of(st.floats((lo + 1) * f.scale, hi * f.scale), st.just(math.nan))
    limit = {"e": 65504.0, "f": 3.0e38, "d": 1e300}[f.code] * (f.scale or 1.0)
    return st.one_of(st.floats(-limit, limit), st.just(math.nan))


def _values(kind: B.RecordKind):
    parts = {}
    for f in kind.fields:
        v = _value(f)
        parts[f.name] = st.lists(v, min_size=f.count, max_size=f.count) if f.n_values > 1 else v
    return st.fixed_dictionaries(parts)


def _expected(f: B.Field, v):
    """The value after encoding, from independent references (numpy's binary16/32 rounding)."""
    if f.code == "s":
        b = v.encode()[: f.count]
        return b.decode("utf-8", "ignore").rstrip("\0")
    if f.code == "y":
        return v.ljust(f.count, b"\0")  # zero-padded; a length field says what counts
    if f.code in _INT and f.scale is None:
        return v
    if isinstance(v, float) and math.isnan(v):
        return math.nan
    if f.code in _INT:
        return round(v / f.scale) * f.scale
    x = v / f.scale if f.scale else v
    x = float({"e": np.float16, "f": np.float32, "d": np.float64}[f.code](x))
    return x * f.scale if f.scale else x


def _close(f: B.Field, got, want) -> bool:
    if isinstance(want, float) and math.isnan(want):
        return isinstance(got, float) and math.isnan(got)
    if isinstance(want, (str, bytes)) or f.scale is None and f.code in _INT:
        return got == want
    # Scaled values come back as raw*scale (or raw/(1/scale)): equal to a few ulps.
    return math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12 * (f.scale or 1.0))


@pytest.mark.parametrize("kind", B.KINDS, ids=lambda k: k.name)
def test_every_kind_round_trips_within_its_stated_precision(kind):
    @settings(max_examples=60, deadline=None)
    @given(_values(kind), st.floats(0, 2**32 - 1))
    def check(values, t):
        raw = B.encode_record(kind, t, values)
        assert len(raw) == kind.record_size
        recs, stats = B.decode_records(raw)
        assert len(recs) == 1 and stats.bytes_skipped == 0
        r = recs[0]
        s, ms = B.split_time(t)
        assert r.code == kind.code and r.t_sc_s == s + ms / 1000.0 and abs(r.t_sc_s - t) <= 0.0005 + 1e-6 * t / 1e9
        got = r.values()
        for f in kind.fields:
            v = values[f.name]
            if f.n_values > 1:
                assert all(_close(f, g, _expected(f, x)) for g, x in zip(got[f.name], v)), (f.name, got[f.name], v)
            else:
                assert _close(f, got[f.name], _expected(f, v)), (f.name, got[f.name], v)

    check()


def test_stated_precision_of_the_main_fields():
    """The figures docs/interface.md quotes: position 1 cm steps, velocity 1e-5 m/s, relative
    position 1 mm, quaternion 3.1e-5, sigmas 3 significant digits."""
    orbit = B.KINDS_BY_NAME["orbit"]
    r = (6_878_137.123456, -1234.5678, 3.14159)
    v = (7612.123456, -0.000049, 1.0)
    got = orbit.unpack(orbit.pack({"r_ecef_m": r, "v_ecef_m_s": v, "sigma_r_m": (2.345, 1e4, 0.01)}))
    assert max(abs(a - b) for a, b in zip(got["r_ecef_m"], r)) <= 0.005
    assert max(abs(a - b) for a, b in zip(got["v_ecef_m_s"], v)) <= 0.5e-5
    assert max(abs(a - b) / b for a, b in zip(got["sigma_r_m"], (2.345, 1e4, 0.01))) <= 2**-11
    att = B.KINDS_BY_NAME["attitude"]
    q = np.array([0.5, -0.5, 0.5, 0.5]) + np.array([1e-3, 2e-3, -1e-3, 0.0])
    q /= np.linalg.norm(q)
    gq = np.array(att.unpack(att.pack({"q_body_to_gcrs": q}))["q_body_to_gcrs"])
    gq /= np.linalg.norm(gq)
    angle = 2 * math.acos(min(1.0, abs(float(gq @ q))))
    assert angle < 1e-4  # rad; the filter's own sigma is ~1e-2
    frm = B.KINDS_BY_NAME["formation"]
    got = frm.unpack(frm.pack({"dr_ecef_m": (-2012.3456, 8000.0004, 1.0), "peer_id": 0x4B}))
    assert max(abs(a - b) for a, b in zip(got["dr_ecef_m"], (-2012.3456, 8000.0004, 1.0))) <= 0.0005
    assert got["peer_id"] == 0x4B


def test_saturation_and_missing_values():
    orbit = B.KINDS_BY_NAME["orbit"]
    got = orbit.unpack(
        orbit.pack(
            {"r_ecef_m": (1e12, -1e12, math.nan), "sigma_r_m": (1e6, -1e9, math.inf), "n_used": 10**6, "n_rejected": -5}
        )
    )
    assert got["r_ecef_m"][0] == pytest.approx((2**31 - 1) * 0.01) and got["r_ecef_m"][1] == pytest.approx(
        -(2**31 - 1) * 0.01
    )
    assert math.isnan(got["r_ecef_m"][2])
    assert got["sigma_r_m"] == (math.inf, -math.inf, math.inf)
    assert got["n_used"] == 65535 and got["n_rejected"] == 0
    empty = orbit.unpack(orbit.pack({}))  # absent fields: NaN / 0
    assert all(math.isnan(x) for x in empty["v_ecef_m_s"]) and empty["flags"] == 0
    note = B.KINDS_BY_NAME["note"]
    assert note.unpack(note.pack({"text": "é" * 40}))["text"] == "é" * 32  # 64 bytes, never half a character


def test_times_outside_the_uint32_range_are_refused():
    kind = B.KINDS_BY_NAME["range"]
    for t in (-1.0, 2.0**32, math.nan, math.inf):
        with pytest.raises(ValueError, match="outside"):
            B.encode_record(kind, t, {})
    assert B.split_time(41.9996) == (42, 0)


def test_header_round_trip_and_crc():
    h = B.encode_header(17, 123456, 0x4A, B.FILE_CLOSED_SIZE | B.FILE_RECOVERED, 1.5e9, 1.5e9 + 3600.25, 400, 7)
    assert len(h) == B.HEADER_SIZE == 48
    d = B.decode_header(h)
    assert (d["run"], d["sequence"], d["spacecraft_id"], d["records"], d["skipped_bytes"]) == (17, 123456, 0x4A, 400, 7)
    assert d["t_last_sc_s"] == 1.5e9 + 3600.25 and d["flag_names"] == ["recovered", "closed_size"]
    for i in range(len(h)):
        bad = bytearray(h)
        bad[i] ^= 0x10
        assert B.decode_header(bytes(bad)) is None, i
    assert B.decode_header(h[:-1]) is None
    opened = B.decode_header(B.encode_header(1, 2, 0, B.FILE_OPEN))
    assert math.isnan(opened["t_first_sc_s"]) and opened["records"] == 0


def test_names():
    assert B.file_name(7) == "batch_00000007.bin"
    assert B.sequence_of("batch_00000007.bin") == 7 and B.sequence_of("batch_123456789.bin.part") == 123456789
    assert B.sequence_of("batch_7.bin") is None and B.sequence_of("rng00001.bin") is None


def test_crc16_is_ccitt_false():
    assert B.crc16(b"123456789") == 0x29B1  # the catalogue check value


# ----------------------------------------------------------------------------- files
_records = st.lists(
    st.tuples(st.sampled_from([k.name for k in B.KINDS]), st.floats(1e9, 2e9), st.integers(0, 2**31)),
    min_size=1,
    max_size=25,
)


def _make(recs) -> list[bytes]:
    out = []
    for name, t, seed in recs:
        kind = B.KINDS_BY_NAME[name]
        rng = np.random.default_rng(seed)
        values = {
            f.name: (list(rng.normal(size=f.count) * 100) if f.n_values > 1 else float(rng.normal() * 100))
            for f in kind.fields
            if f.code not in "sy"
        }
        out.append(B.encode_record(kind, t, values))
    return out


@settings(max_examples=100, deadline=None)
@given(_records)
def test_file_round_trip(recs):
    raws = _make(recs)
    data = B.encode_header(3, 9, 0x4C, 0, 1e9, 2e9, len(raws)) + b"".join(raws)
    bf = B.decode_batch(data)
    assert bf.header["sequence"] == 9 and [r.raw for r in bf.records] == raws
    assert bf.stats.bytes_skipped == 0 and bf.stats.records_bad == 0 and not bf.stats.torn_tail


@settings(max_examples=100, deadline=None)
@given(_records, st.data())
def test_power_cut_keeps_every_complete_record(recs, data):
    raws = _make(recs)
    blob = B.encode_header(1, 1, 0, B.FILE_OPEN) + b"".join(raws)
    cut = data.draw(st.integers(0, len(blob)))
    bf = B.decode_batch(blob[:cut])
    ends = np.cumsum([B.HEADER_SIZE] + [len(r) for r in raws])[1:]
    complete = int((ends <= cut).sum())
    assert [r.raw for r in bf.records] == raws[:complete]
    inside = cut > B.HEADER_SIZE and cut not in ends
    assert bf.stats.torn_tail == inside
    assert bf.stats.records_bad == 0


@settings(max_examples=150, deadline=None)
@given(_records, corruptions)
def test_corruption_keeps_every_intact_record_and_invents_none(recs, ops):
    raws = _make(recs)
    c = Corrupted.from_units(raws)
    for op in ops:
        c.apply(*op)
    data = bytes(c.data)
    recs_out, stats = B.decode_records(data)
    intact = c.intact([len(r) for r in raws])
    got = {r.offset: r.raw for r in recs_out}
    for uid, off in intact.items():
        assert got.get(off) == raws[uid], (uid, off)
    assert set(got.values()) <= set(raws)  # nothing invented from garbage
    assert stats.bytes_skipped + sum(len(r.raw) for r in recs_out) == len(data)


@settings(max_examples=100, deadline=None)
@given(_records, st.data())
def test_bit_flips_lose_only_the_flipped_record(recs, data):
    """CRC-16/CCITT has Hamming distance 4 at these lengths: 1-3 flipped bits in one record
    always drop that record and no other."""
    raws = _make(recs)
    k = data.draw(st.integers(0, len(raws) - 1))
    rec = bytearray(raws[k])
    for bit in data.draw(st.lists(st.integers(0, 8 * len(rec) - 1), min_size=1, max_size=3, unique=True)):
        rec[bit // 8] ^= 1 << (bit % 8)
    out, stats = B.decode_records(b"".join(raws[:k]) + bytes(rec) + b"".join(raws[k + 1 :]))
    assert [r.raw for r in out] == raws[:k] + raws[k + 1 :]
    assert stats.bytes_skipped == len(rec)


@given(st.binary(max_size=3000))
@settings(max_examples=200, deadline=None)
def test_garbage_never_raises(blob):
    bf = B.decode_batch(blob)
    assert bf.stats.bytes_skipped + sum(len(r.raw) for r in bf.records) == bf.stats.bytes_total


def test_unknown_kinds_are_skipped_whole_and_counted():
    """A newer writer's kind (code not in this build) is kept as an opaque record."""
    code = next(c for c in range(255, 0, -1) if c not in B.KINDS_BY_CODE)
    future = B.frame_record(code, 1.7e9, bytes(range(37)))
    known = _make([("orbit", 1.7e9, 1), ("range", 1.7e9 + 1, 2)])
    out, stats = B.decode_records(known[0] + future + known[1])
    assert [r.raw for r in out] == [known[0], future, known[1]]
    assert stats.unknown_kind == 1 and out[1].kind is None and stats.bytes_skipped == 0


def test_registry_is_consistent():
    """Codes and names unique (checked at import), payloads fit the length byte, every kind's
    message types exist on the bus and are carried by its channels."""
    from pygnc.bus.channels import CHANNELS
    from pygnc.bus.messages import MESSAGE_TYPES

    for k in B.KINDS:
        assert k.size <= 255 and struct.calcsize("<" + "".join(f.struct_code for f in k.fields)) == k.size
        for t in k.message_types:
            assert t in MESSAGE_TYPES
            assert any(t in CHANNELS[c].types for c in k.channels), (k.name, t)
        keys = k.key if isinstance(k.key, tuple) else () if k.key is None else (k.key,)
        assert set(keys) <= {f.name for f in k.fields}
        assert set(k.on_change) <= {f.name for f in k.fields}
    assert set(B.channels()) <= set(CHANNELS)


def test_health_records_carry_the_task_tables_ids_and_the_status_files_states():
    from pygnc.formats import status as S
    from pygnc.tasks.table import TASKS

    kind = B.KINDS_BY_NAME["health"]
    specs = TASKS[: B.HEALTH_SLOTS - 1]  # and a slot for a name the table does not know
    tasks = [
        {"name": t.name, "state": S.TASK_STATES[k % len(S.TASK_STATES)], "restarts": k} for k, t in enumerate(specs)
    ]
    body = {"t_sc_s": 1.7e9, "uptime_s": 5.0, "tasks": tasks + [{"name": "nobody", "state": "bogus"}]}
    v = kind.unpack(kind.pack(kind.encode("health", body)))
    n = len(tasks)
    assert v["n_tasks"] == n + 1
    assert list(v["task_id"][: n + 1]) == [t.task_id for t in specs] + [0]
    assert [S.TASK_STATES[i] for i in v["task_state"][:n]] == [t["state"] for t in tasks] and v["task_state"][n] == 0


@given(st.floats(min_value=0.0, max_value=2.0**32 - 1.0, allow_nan=False))
def test_record_time_ms_is_the_time_a_record_stores(t):
    """The batch writer's bins and the estimators' decimation both use record_time_ms."""
    s, ms = B.split_time(t)
    assert B.record_time_ms(t) == s * 1000 + ms and abs(B.record_time_ms(t) / 1000.0 - t) <= 5e-4 + 1e-9 * t
    assert B.period_ms(60.0) == 60_000 and B.period_ms(0.0004) == 0
    assert B.period_ms(None) is None and B.period_ms(math.inf) is None
