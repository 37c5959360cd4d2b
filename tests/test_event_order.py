"""The formation processor's event queue (pygnc.processors.event_order): release order, hold,
stale and replayed events."""

import math

from hypothesis import given
from hypothesis import strategies as st

from pygnc.processors.event_order import HOLD_MARGIN_S, EventOrder, Kind


@given(st.lists(st.tuples(st.integers(0, 20), st.sampled_from(list(Kind))), max_size=60))
def test_events_come_out_by_time_then_kind_then_arrival(events):
    order = EventOrder(75.0, 3600.0)
    for n, (t, kind) in enumerate(events):
        order.push(float(t), kind, n, (float(t), kind, n))
    assert len(order) == len(events)
    out = []
    while order.due(math.inf):
        e = order.pop()
        out.append((e.t_gps_s, e.kind, e.payload))
        assert order.t_done_gps_s == e.t_gps_s
    assert out == sorted((float(t), k, n) for n, (t, k) in enumerate(events))
    assert len(order) == 0 and not order.pending


def test_the_hold_follows_the_latest_peer_fix_up_to_the_maximum():
    order = EventOrder(75.0, 3600.0)
    order.advance_stream(1000.0)
    assert order.hold_s == 75.0 and order.t_release_gps_s == 925.0 and order.t_flush_gps_s == 4600.0
    order.saw_lateness(200.0)
    assert order.hold_s == 200.0 + HOLD_MARGIN_S
    order.saw_lateness(10.0)  # the largest lateness seen counts
    assert order.hold_s == 200.0 + HOLD_MARGIN_S
    order.saw_lateness(1e6)
    assert order.hold_s == 3600.0
    order.advance_stream(10.0)  # the stream never goes back
    assert order.t_stream_gps_s == 1000.0


def test_released_held_and_replayed_events_are_stale_and_counted():
    order = EventOrder(75.0, 3600.0)
    order.push(10.0, Kind.RANGE, (0x4B, 3000.0), (10.0, Kind.RANGE, 0x4B))
    order.push(20.0, Kind.OUTPUT, 20.0, (20.0, Kind.OUTPUT))
    assert order.stale(20.0, (20.0, Kind.OUTPUT))  # held already
    assert order.held((10.0, Kind.RANGE, 0x4B)) and not order.held((10.0, Kind.RANGE, 0x4C))
    assert not order.stale(15.0, (15.0, Kind.OUTPUT))
    assert order.due(10.0) and not order.due(9.0)
    e = order.pop()
    assert e.kind == Kind.RANGE and order.t_done_gps_s == 10.0
    assert order.stale(10.0) and order.stale(5.0, (5.0, Kind.OWN_FIX))  # at or before what was released
    assert not order.peer_fix_replayed(0x4B, 100.0) and order.peer_fix_replayed(0x4B, 100.0)
    assert order.peer_fix_replayed(0x4B, 99.0) and not order.peer_fix_replayed(0x4C, 99.0)
    assert not order.anonymous_replayed(1.0, 2.0) and order.anonymous_replayed(1.0, 2.0)
    assert order.n_stale == 7


def test_an_event_put_back_comes_out_first_and_what_is_beyond_is_dropped():
    order = EventOrder(75.0, 3600.0)
    for t in (1.0, 2.0, 50.0, 60.0):
        order.push(t, Kind.OWN_FIX, None, (t, Kind.OWN_FIX))
    e = order.pop()
    order.put_back(e)
    assert order.held((1.0, Kind.OWN_FIX)) and order.pop() == e
    order.pop()
    assert order.drop_beyond(40.0) == 2 and len(order) == 0 and not order.pending
