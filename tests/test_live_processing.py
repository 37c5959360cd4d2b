"""Live data after the batch: ingest's decoding of streamed segments is the batch decoding,
and the estimators keep producing sample estimates after batch_end even when an estimate
propagated to "now" came first."""

import numpy as np
from flight_harness import REPO

from ground.host import live
from pygnc.config import Config, Paths
from pygnc.formats import range_packet as rp
from pygnc.formats import stream as fs
from pygnc.formats.settings import DecodeSettings
from pygnc.processors.attitude import AttitudeProcessor
from pygnc.processors.orbit import OrbitProcessor
from pygnc.tasks.ingest import build_message_stream, live_messages

SAMPLE = REPO / "data" / "sample_5min"
_NO_FILE = ("record",)


def _strip(body):
    return {k: v for k, v in body.items() if k not in _NO_FILE}


def test_streamed_segments_decode_to_the_batch_messages():
    cfg = Config()
    batch = [
        (t, _strip(b))
        for t, b in build_message_stream(Paths(SAMPLE), cfg).messages
        if t == "sensor" or (t == "gps_fix" and b["peer_id"] == 0)
    ]
    items = [i for i in live.live_items(SAMPLE, cfg) if i.tag != fs.RANGE]
    settings = DecodeSettings.from_config(cfg)
    streamed = [(t, _strip(b)) for i in items for t, b in live_messages(i.tag.decode(), i.data, settings)]
    # same messages; only the tie order differs (the host sends a fix before the sample of its second)
    key = lambda m: (m[1]["t_sc_s"], m[0])  # noqa: E731
    assert sorted(streamed, key=key) == sorted(batch, key=key)
    assert all(b["record"] == -1 for i in items[:5] for _, b in live_messages(i.tag.decode(), i.data, settings))


def test_streamed_ranges_follow_the_sx1280_conversion():
    settings = DecodeSettings.from_config(Config(sx1280_ranging_bandwidth_code=0x0A))  # 1625 kHz
    data = rp.encode_packet(0x4B, 1_700_000_000, 40_000) + rp.encode_packet(0x4B, 1_700_000_001, 0)
    (t1, b1), (t2, b2) = live_messages("RNG", data, settings)
    assert t1 == t2 == "range" and b1["peer_id"] == 0x4B and b1["t_sc_s"] == 1_700_000_000.0
    assert abs(b1["range_m"] - 40_000 * 150 / (4096 * 1.625)) < 1e-9 and b1["valid"] and not b2["valid"]
    assert b1["file_index"] == b1["group"] == -1


def _split(messages):
    """The sample's batch up to its 30th sensor sample (and batch_end), and the samples and
    fixes after it."""
    sensors = [b["t_sc_s"] for t, b in messages if t == "sensor"]
    t_cut = sensors[30]
    head = [
        (t, b)
        for t, b in messages
        if t != "batch_end" and (t not in ("sensor", "gps_fix", "range") or b["t_sc_s"] < t_cut)
    ]
    head.append(next((t, b) for t, b in messages if t == "batch_end"))
    tail = [(t, b) for t, b in messages if t in ("sensor", "gps_fix") and b["t_sc_s"] >= t_cut]
    return head, tail


def test_sample_estimates_go_on_after_a_propagated_one():
    msgs = build_message_stream(Paths(SAMPLE), Config()).messages
    head, tail = _split(msgs)
    orbit, att = OrbitProcessor(), AttitudeProcessor()

    def feed(t, b):
        out = orbit.handle(t, b) if t in orbit.consumes else []
        got = list(out)
        for t2, b2 in out:
            got += att.handle(t2, b2)
        if t in att.consumes:
            got += att.handle(t, b)
        return got

    for t, b in head:
        feed(t, b)
    # "now" runs ahead of the next live sample (whole-second stamps arrive late)
    t_next = tail[0][1]["t_sc_s"]
    prop = orbit.propagate_to_sc(t_next + 0.7) + att.propagate_to_sc(t_next + 0.7)
    assert {t for t, b in prop if b.get("propagated")} == {"orbit_estimate", "attitude_estimate"}
    out = []
    for t, b in tail:
        out += feed(t, b)
    o = [b for t, b in out if t == "orbit_estimate"]
    a = [b for t, b in out if t == "attitude_estimate"]
    n_samples = sum(t == "sensor" for t, _ in tail)
    assert len(o) == n_samples and not any(b["propagated"] for b in o)
    assert [b["t_sc_s"] for b in o] == sorted(b["t_sc_s"] for b in o)
    # every live sample met its orbit estimate: attitude with position, none left waiting
    assert len(a) == n_samples and all(b["has_position"] for b in a) and not att.pending
    assert o[-1]["n_used"] == 12
    # a propagation older than the newest sample estimate publishes nothing (no news)
    assert orbit.propagate_to_sc(o[-1]["t_sc_s"] - 1.0) == []
    assert att.propagate_to_sc(o[-1]["t_sc_s"] - 1.0) == []
    newer = orbit.propagate_to_sc(o[-1]["t_sc_s"] + 10.0)
    assert len(newer) == 1 and newer[0][1]["propagated"] and newer[0][1]["t_sc_s"] > o[-1]["t_sc_s"]


def test_a_batch_without_fixes_then_live_fixes_gives_attitude_with_position():
    """No valid fix in the batch: attitude runs without position; once live fixes make an
    orbit, live samples wait for their orbit estimates again."""
    msgs = build_message_stream(Paths(SAMPLE), Config()).messages
    head, tail = _split(msgs)
    head = [(t, b) for t, b in head if t not in ("gps_fix", "clock_map")]
    orbit, att = OrbitProcessor(), AttitudeProcessor()
    clock = next((t, b) for t, b in msgs if t == "clock_map")
    out = []
    for t, b in head + [clock] + tail:
        o = orbit.handle(t, b) if t in orbit.consumes else []
        out += o
        for t2, b2 in o:
            out += att.handle(t2, b2)
        if t in att.consumes:
            out += att.handle(t, b)
    a = [b for t, b in out if t == "attitude_estimate"]
    notes = [b["code"] for t, b in out if t == "estimator_note"]
    assert "no_fix" in notes and "no_position" in notes
    first_fix = min(b["t_sc_s"] for t, b in tail if t == "gps_fix" and b["valid"])
    late = [b for b in a if b["t_sc_s"] > first_fix + 6]
    assert late and all(b["has_position"] for b in late)
    assert not any(b["has_position"] for b in a if b["t_sc_s"] < first_fix)
    assert np.isfinite([b["t_sc_s"] for b in a]).all()


def test_the_ingest_tasks_lazy_stream_is_the_list(monkeypatch):
    """The ingest task keeps the batch as its decoded arrays and builds each body when it
    is published (LazyMessages): the same messages, in the same order, as the list the
    ground replay builds - across chunk boundaries (a chunk of 7 here), by index from
    either end and by slice."""
    from pygnc.tasks import ingest

    monkeypatch.setattr(ingest.LazyMessages, "CHUNK", 7)
    cfg = Config()
    eager = build_message_stream(Paths(SAMPLE), cfg).messages
    lazy = build_message_stream(Paths(SAMPLE), cfg, lazy=True).messages
    assert isinstance(lazy, ingest.LazyMessages) and isinstance(eager, list)
    assert {t for t, _ in eager} >= {"sensor", "gps_fix", "range", "clock_map", "batch_end"}
    assert len(lazy) == len(eager) and list(lazy) == eager
    assert [lazy[i] for i in range(len(lazy) - 1, -1, -3)] == eager[::-3]
    assert lazy[-1] == eager[-1] and lazy[5:40] == eager[5:40]
    try:
        lazy[len(eager)]
    except IndexError:
        pass
    else:
        raise AssertionError("no IndexError past the end")


class _StubRunner:
    """What the ingest task needs of its runner, with every publish recorded."""

    def __init__(self, config):
        import types

        self.name = "ingest"
        spec = types.SimpleNamespace(name="ingest")
        self.ctx = types.SimpleNamespace(spec=spec, config=config, paths=Paths(SAMPLE))
        self.publishers = {"meas": types.SimpleNamespace(source=None, replay_pending=False)}
        self.stopping_reason = None
        self.sent = []

    def publish(self, channel, msg_type, body, keep=True, seq=None):
        self.sent.append((msg_type, body, seq))
        return True


def test_a_replay_carries_the_seq_each_message_was_published_with():
    """Issue 48 item 11: a consumer skips what it has taken by ``seq``, replayed messages
    included, so a replay must number every message as it was numbered live - the batch's
    from 1, then the live frames' messages with the clock maps fitted among them."""
    from pygnc.bus.messages import DecodeCounters, Encoder, decode
    from pygnc.tasks import ingest

    cfg = Config()
    runner = _StubRunner(cfg)
    ing = ingest.Ingest(runner)
    ing.stream = build_message_stream(Paths(SAMPLE), cfg).messages[:50]
    for i in live.live_items(SAMPLE, cfg):
        ing.live_pending.append((i.tag.decode(), i.data))
    while ing.step() == 0.0 or ing.live_pending:
        pass
    sent = runner.sent
    assert [s for _, _, s in sent] == list(range(1, len(sent) + 1))
    assert len(sent) > 50 and sum(t == "clock_map" for t, _, _ in sent[50:]) >= 2  # live clock maps
    cursor = ingest.ReplayCursor(ing)
    replayed = []
    while (raw := cursor.next()) is not None:
        m = decode(raw, DecodeCounters())
        replayed.append((m.type, m.body, m.seq))
    counters = DecodeCounters()
    live_sent = [decode(Encoder("ingest").encode(t, b, s), counters) for t, b, s in sent]
    assert replayed == [(m.type, m.body, m.seq) for m in live_sent]
