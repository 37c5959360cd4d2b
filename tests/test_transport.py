"""ZeroMQ channels: ready handshake, BLOCK loses nothing, DROP counts, ipc only, timeouts."""

import math
import threading
import time

import pytest
import zmq

from pygnc.bus.channels import CHANNELS, Channel, Policy
from pygnc.bus.messages import DecodeCounters, Encoder
from pygnc.bus.transport import ControlClient, ControlServer, Publisher, Subscriber


@pytest.fixture
def ctx():
    """A context for one test, destroyed (sockets closed, no linger) however the test ends:
    left to the garbage collector, a context can be finalised after its sockets' weak
    references are cleared, and its term() then waits for them for ever."""
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def _wait_ready(pub, timeout_s=5.0):
    t_end = time.monotonic() + timeout_s
    while not pub.ready and time.monotonic() < t_end:
        pub.poll_subscriptions(timeout_ms=20)
    return pub.ready


def test_every_endpoint_is_ipc_in_the_run_dir(tmp_path):
    for ch in CHANNELS.values():
        ep = ch.endpoint(tmp_path)
        assert ep.startswith("ipc://") and ep[len("ipc://") :].startswith(str(tmp_path))


def _block_pair(ctx, tmp_path):
    """A BLOCK channel's publisher and its one subscriber, ready (a queue of 10 each way)."""
    ch = Channel("t", "p", Policy.BLOCK, 10, ("sensor",), "test")
    pub = Publisher(ctx, ch, tmp_path, Encoder("p"), expected_subscribers=1)
    sub = Subscriber(ctx, ch, tmp_path, DecodeCounters())
    assert _wait_ready(pub)
    return pub, sub


def _sensor(i: int) -> dict:
    """A sensor message body numbered *i* (its ``record``)."""
    return {
        "t_sc_s": i,
        "mag_ut": [0, 0, 0],
        "gyro_deg_s": [0, 0, 0],
        "sun_lux": [0] * 6,
        "sun_saturated": [],
        "record": i,
    }


def test_block_channel_loses_nothing_with_a_slow_consumer(ctx, tmp_path):
    pub, sub = _block_pair(ctx, tmp_path)
    n = 3000
    received = []
    quit_ = threading.Event()  # (the socket must be idle before the fixture closes it)

    def consume():
        t_end = time.monotonic() + 60
        while len(received) < n and not quit_.is_set() and time.monotonic() < t_end:
            if sub.socket.poll(200):
                got = sub.recv()
                if got:
                    received.append(got[0].body["record"])
                    if len(received) % 100 == 0:
                        time.sleep(0.01)  # slow consumer

    th = threading.Thread(target=consume)
    th.start()
    waits = []
    try:
        for i in range(n):
            assert pub.publish(
                "sensor",
                _sensor(i),
                wait=lambda s: waits.append(s) or (pub.socket.poll(int(s * 1000), zmq.POLLOUT) or True),
            )
        th.join(60)  # (it ends once it has all n, or after 60 s)
    finally:
        quit_.set()
        th.join()
    assert received == list(range(n))  # all of them, in order
    assert pub.counters.blocked_waits > 0 and pub.counters.dropped == 0
    pub.close()
    sub.close()


def test_a_block_send_without_a_wait_waits_for_a_paused_consumer_by_the_clock(ctx, tmp_path):
    # An XPUB polls writable while a consumer's queue is full, so counting polls as time
    # gave up within milliseconds; the send must wait (up to 5 s) for the consumer.
    pub, sub = _block_pair(ctx, tmp_path)
    n = 3000  # (far more than the queues and the socket buffers hold: ~400 here)
    received = []
    sending_since = [math.inf]  # when the send under way began
    done = threading.Event()  # every send returned

    def consume():
        # Busy elsewhere: not reading until a send has waited 0.3 s for it.
        t_end = time.monotonic() + 30
        while time.monotonic() - sending_since[0] < 0.3 and not done.is_set() and time.monotonic() < t_end:
            time.sleep(0.005)
        while len(received) < n and time.monotonic() < t_end:
            if sub.socket.poll(200):
                got = sub.recv()
                if got:
                    received.append(got[0].body["record"])

    th = threading.Thread(target=consume)
    th.start()
    sent, longest_s = [], 0.0
    try:
        for i in range(n):
            t0 = sending_since[0] = time.monotonic()
            sent.append(pub.publish("sensor", _sensor(i)))
            longest_s = max(longest_s, time.monotonic() - t0)
    finally:
        done.set()
        th.join()
    assert all(sent) and received == list(range(n))
    assert longest_s >= 0.3  # (a send waited for the paused consumer)
    assert pub.counters.lost_at_stop == 0 and pub.counters.blocked_waits > 0
    pub.close()
    sub.close()


def test_drop_channel_counts_what_it_drops(ctx, tmp_path):
    ch = Channel("d", "p", Policy.DROP, 5, ("start",), "test")
    pub = Publisher(ctx, ch, tmp_path, Encoder("p"), expected_subscribers=1)
    sub = Subscriber(ctx, ch, tmp_path, DecodeCounters())
    assert _wait_ready(pub)
    for _ in range(1000):
        pub.publish("start", {})
    got = 0
    while sub.socket.poll(200):
        while sub.recv():
            got += 1
    assert pub.counters.dropped > 0
    assert got + pub.counters.dropped == 1000
    pub.close()
    sub.close()


def test_latest_channel_conflates(ctx, tmp_path):
    """A burst reaches a ``latest`` consumer conflated, and the newest table arrives by the
    next publish at the latest: libzmq's conflating pipe can miss the wake-up of the message
    written as its reader finds it empty (CI saw it), so the supervisor publishes every ping."""
    pub = Publisher(ctx, "health", tmp_path, Encoder("supervisor"), expected_subscribers=1)
    sub = Subscriber(ctx, "health", tmp_path, DecodeCounters())
    assert _wait_ready(pub)

    def table(i):
        return {"tasks": [], "t_sc_s": float(i), "uptime_s": 0.0, "stopping": False}

    for i in range(50):
        pub.publish("health", table(i))
    msgs = []
    t_end = time.monotonic() + 30
    while not (msgs and msgs[-1].body["t_sc_s"] == 49.0) and time.monotonic() < t_end:
        if not sub.socket.poll(200):
            pub.publish("health", table(49))  # the next ping's table (the same here)
            continue
        got = sub.recv()
        if got is not None and got[0] is not None:  # (a dropped message is counted, not returned)
            msgs.append(got[0])
    assert msgs and msgs[-1].body["t_sc_s"] == 49.0
    assert len({m.body["t_sc_s"] for m in msgs}) < 50  # conflated: not every table of the burst
    pub.close()
    sub.close()


def test_handshake_sees_late_subscriber(ctx, tmp_path):
    pub = Publisher(ctx, "meas", tmp_path, Encoder("ingest"), expected_subscribers=2)
    s1 = Subscriber(ctx, "meas", tmp_path, DecodeCounters())
    pub.poll_subscriptions(timeout_ms=200)
    assert not pub.ready
    s2 = Subscriber(ctx, "meas", tmp_path, DecodeCounters())
    assert _wait_ready(pub)
    for s in (pub, s1, s2):
        s.close()


def test_control_round_trip_and_restart_handover(ctx, tmp_path):
    c = DecodeCounters()
    srv = ControlServer(ctx, tmp_path, c)
    cl = ControlClient(ctx, tmp_path, "ingest", DecodeCounters())
    assert cl.send("ready", {"pid": 1})
    assert srv.socket.poll(2000)
    [(name, msg)] = list(srv.pending())
    assert name == "ingest" and msg.type == "ready"
    cl.close()
    cl2 = ControlClient(ctx, tmp_path, "ingest", DecodeCounters())  # the restarted task
    cl2.send("ready", {"pid": 2})
    assert srv.socket.poll(2000)
    assert [m.body["pid"] for _, m in srv.pending()] == [2]
    assert srv.send("ingest", "ping", {"key": 9})
    assert cl2.socket.poll(2000)
    assert [m.body for m in cl2.pending()] == [{"key": 9}]
    assert not srv.send("nobody", "ping", {"key": 1})  # unknown peer: False, not an exception
    # A malformed message between two good ones is counted and skipped, not the end of them.
    cl2.send("ready", {"pid": 1})
    cl2.socket.send(b"\xc1 not msgpack")
    cl2.send("ready", {"pid": 2})
    t_end = time.monotonic() + 2
    got = []
    while len(got) < 2 and time.monotonic() < t_end:
        srv.socket.poll(100)
        got += [m.body["pid"] for _, m in srv.pending()]
    assert got == [1, 2] and c.as_dict() != DecodeCounters().as_dict()
    for s in (srv, cl2):
        s.close()


def _texts(sub, until=None, timeout_ms=500):
    """The notes' texts *sub* receives (recv_raw: replayed frames without their topic)."""
    from pygnc.bus.messages import decode

    got = []
    t_end = time.monotonic() + timeout_ms / 1000.0
    while True:
        raw = sub.recv_raw()
        if raw is None:
            if time.monotonic() >= t_end:
                break
            sub.socket.poll(10)
            continue
        got.append(decode(raw, DecodeCounters()).body["text"])
        if got[-1] == until:
            break
    return got


def _pump_until(pub, done, timeout_s=5.0):
    t_end = time.monotonic() + timeout_s
    while not done() and time.monotonic() < t_end:
        pub.pump(time.monotonic() + 0.05)
        time.sleep(0.005)
    return done()


NOTE = {"estimator": "orbit", "code": "c", "peer_id": 0, "text": "t"}


def test_replay_goes_to_the_restarted_consumer_alone_then_the_live_stream(ctx, tmp_path):
    """Issue 39 items 1 and 2: the restarted consumer gets what was kept (not the estimates
    propagated to "now"), in order and nothing live before it, then every later message
    exactly once; the other consumers get nothing twice."""
    pub = Publisher(
        ctx, "orbit", tmp_path, Encoder("orbit_estimator"), expected_subscribers=2, history_max_bytes=1 << 20
    )
    other = Subscriber(ctx, "orbit", tmp_path, DecodeCounters(), consumer="status_reporter")
    first = Subscriber(ctx, "orbit", tmp_path, DecodeCounters(), consumer="attitude_estimator")
    assert _wait_ready(pub)
    for k in range(5):
        pub.publish("estimator_note", {**NOTE, "text": f"kept {k}"})
    pub.publish("estimator_note", {**NOTE, "text": "not kept"}, keep=False)
    first.close()  # the consumer dies ...
    pub.request_replay("attitude_estimator")
    assert pub.replay_pending
    pub.publish("estimator_note", {**NOTE, "text": "while it restarts"})
    assert pub.pump(time.monotonic() + 0.1) is None  # nothing to send: it has not subscribed yet
    again = Subscriber(ctx, "orbit", tmp_path, DecodeCounters(), consumer="attitude_estimator", replay=True)
    assert again.replaying
    assert _pump_until(pub, lambda: not pub.replay_pending)  # replayed: the end mark is out
    pub.publish("estimator_note", {**NOTE, "text": "live 1"})
    got = _texts(again, until="live 1")
    assert not again.replaying and again.replayed == 6
    for text in ("live 2", "live 3"):  # (the consumer drops its replay topic on its first live frame)
        pub.poll_subscriptions()
        pub.publish("estimator_note", {**NOTE, "text": text})
        got += _texts(again, until=text)
    assert got == [f"kept {k}" for k in range(5)] + ["while it restarts", "live 1", "live 2", "live 3"]
    # the others: the live stream alone
    assert _texts(other, until="live 3") == (
        [f"kept {k}" for k in range(5)] + ["not kept", "while it restarts", "live 1", "live 2", "live 3"]
    )
    # the consumer dropped its replay topic: the producer has forgotten the replay
    assert _pump_until(pub, lambda: not pub.replays)
    assert pub.counters.replays == 1 and pub.counters.replays_done == 1
    for x in (pub, other, again):
        x.close()


def test_hand_over_takes_each_message_once(ctx, tmp_path):
    """Messages published all through the hand-over (the consumer subscribing to the live
    stream while the producer still copies to its replay topic) arrive once each, in order."""
    pub = Publisher(ctx, "orbit", tmp_path, Encoder("orbit_estimator"), history_max_bytes=1 << 20)
    for k in range(50):
        pub.publish("estimator_note", {**NOTE, "text": f"{k}"})
    pub.request_replay("formation_estimator")
    sub = Subscriber(ctx, "orbit", tmp_path, DecodeCounters(), consumer="formation_estimator", replay=True)
    got = []
    k = 50
    t_end = time.monotonic() + 10.0
    while (pub.replays or k < 400) and time.monotonic() < t_end:
        pub.pump(time.monotonic() + 0.01)
        if k < 2000:
            pub.publish("estimator_note", {**NOTE, "text": f"{k}"})
            k += 1
        got += _texts(sub, timeout_ms=0)
    got += _texts(sub, until=f"{k - 1}")
    assert not pub.replays and not sub.replaying
    assert got == [f"{i}" for i in range(k)]
    pub.close()
    sub.close()


def test_block_producer_waits_for_a_replay_and_a_cancel_releases_it(ctx, tmp_path):
    pub = Publisher(ctx, "meas", tmp_path, Encoder("ingest"))
    pub.request_replay("orbit_estimator")
    assert pub.replay_pending  # ingest publishes nothing live meanwhile
    pub.cancel_replay("orbit_estimator")  # its restarts are exhausted
    assert not pub.replay_pending and not pub.replays
    pub.close()


def test_a_dead_consumer_is_withdrawn(ctx, tmp_path):
    """XPUB_VERBOSER: a consumer that dies no longer counts as subscribed."""
    pub = Publisher(ctx, "meas", tmp_path, Encoder("ingest"), expected_subscribers=2)
    s1 = Subscriber(ctx, "meas", tmp_path, DecodeCounters())
    s2 = Subscriber(ctx, "meas", tmp_path, DecodeCounters(), consumer="orbit_estimator", replay=True)
    assert _wait_ready(pub)  # a consumer waiting for its replay counts as subscribed
    s1.close()
    t_end = time.monotonic() + 5.0
    while pub.counters.subscriptions != 1 and time.monotonic() < t_end:
        pub.poll_subscriptions(timeout_ms=20)
    assert pub.counters.subscriptions == 1 and pub.live_subscribers == 0
    for x in (pub, s2):
        x.close()


def test_replay_history_is_bounded(ctx, tmp_path):
    pub = Publisher(ctx, "orbit", tmp_path, Encoder("orbit_estimator"), history_max_bytes=2000)
    for _ in range(100):
        pub.publish("estimator_note", {"estimator": "orbit", "code": "c", "peer_id": 0, "text": "x" * 50})
    assert pub.history_bytes <= 2000 and pub.counters.history_evicted > 0
    assert len(pub.history) + pub.counters.history_evicted == 100
    pub.close()


def test_a_consumer_going_live_while_a_copy_waits_does_not_break_the_publish(ctx, tmp_path):
    """Issue 48 item 10: a hand-over copy that waited on the consumer's full queue serviced
    the subscriptions; the consumer had gone live meanwhile, its replay was forgotten, and
    ``publish`` raised "dictionary changed size during iteration" (ingest crashed whenever a
    restarted estimator caught up).  The consumer still takes every message once, in order."""
    ch = Channel("t", "p", Policy.BLOCK, 5, ("estimator_note",), "test")
    pub = Publisher(ctx, ch, tmp_path, Encoder("p"), history_max_bytes=1 << 20)
    for k in range(20):
        pub.publish("estimator_note", {**NOTE, "text": f"{k}"})
    pub.request_replay("c")
    sub = Subscriber(ctx, ch, tmp_path, DecodeCounters(), consumer="c", replay=True)
    got = []

    def take():
        got.extend(_texts(sub, timeout_ms=0))

    assert _pump_until(pub, lambda: take() or not pub.replay_pending)
    asked = []

    def wait(s):  # what the task's loop does while a send waits: the consumer reads meanwhile
        take()
        pub.poll_subscriptions()
        if not asked:  # ... and another consumer restarts
            asked.append(pub.request_replay("other"))
        return True

    k = 20
    while (pub.replays.get("c") or not asked) and k < 5000:
        pub.publish("estimator_note", {**NOTE, "text": f"{k}"}, wait=wait)
        k += 1
    assert "c" not in pub.replays and "other" in pub.replays
    got += _texts(sub, until=f"{k - 1}")
    assert got == [f"{i}" for i in range(k)]
    for x in (pub, sub):
        x.close()


_BLOCKED_PRODUCER = r"""
import json, os, tempfile, time, zmq
from pathlib import Path
from pygnc.bus.messages import DecodeCounters, Encoder
from pygnc.bus.transport import Publisher, Subscriber
from pygnc.config import Config, Paths
from pygnc.tasks.base import Task, TaskContext, TaskRunner
from pygnc.tasks.table import TASKS_BY_NAME

run_dir = Path(tempfile.mkdtemp())
ctx = TaskContext(TASKS_BY_NAME["ingest"], run_dir, run_dir, 1, Paths(run_dir), Config(), 0.0, time.monotonic())
zc = zmq.Context()
live = Publisher(zc, "live", run_dir, Encoder("tty_stream"))  # the stream task's end
runner = TaskRunner(ctx, Task)
slow = Subscriber(zc, "meas", run_dir, DecodeCounters())  # an estimator that never reads
meas = runner.publishers["meas"]
t_end = time.monotonic() + 20
while not (meas.counters.subscriptions and live.counters.subscriptions) and time.monotonic() < t_end:
    meas.poll_subscriptions(20)
    live.poll_subscriptions(20)
live.publish("live_segments", {"tag": "SNS", "seq": 1, "data": bytes(30), "t_rx_sc_s": 0.0})
# the live frame waits, unread, in the runner's subscriber socket
body = {"t_sc_s": 1.0, "mag_ut": [0.0] * 3, "gyro_deg_s": [0.0] * 3, "sun_lux": [0.0] * 6,
        "sun_saturated": [], "record": 0}
while meas.publish("sensor", body, wait=lambda _: False, keep=False) and time.monotonic() < t_end:
    pass  # until the consumer's queue is full
calls = 0
t0 = time.monotonic()
def wait(timeout_s):
    global calls
    calls += 1
    runner.last_ping = time.monotonic()
    runner.service(timeout_s)
    return time.monotonic() - t0 < 1.0  # give the send up after a second
cpu0 = time.process_time()
while time.monotonic() - t0 < 1.0:  # (a send may still find room the I/O thread made: the next will not)
    meas.publish("sensor", body, wait=wait, keep=False)
print(json.dumps({"calls": calls, "cpu_s": time.process_time() - cpu0, "wall_s": time.monotonic() - t0}))
os._exit(0)
"""


def test_a_blocked_send_waits_without_spinning_on_a_frame_it_does_not_read():
    """A producer's BLOCK send waits in :meth:`TaskRunner.service`, which must sleep its
    0.05 s per call even when a frame waits unread in one of the task's subscriptions (ingest
    holding a live frame while the estimators are full): ~20 calls in the second it waits,
    not a core's worth (it polled the task's whole poller, and the unread frame woke it at
    once, 90 000 times a second)."""
    import json
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", _BLOCKED_PRODUCER], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.splitlines()[-1])
    assert got["wall_s"] >= 1.0 and 1 <= got["calls"] <= 2 * got["wall_s"] / 0.05, got
