"""The read pump the serial IMU drivers share (pygnc.drivers.pump): routing, the bounded packet
queue, the clock stamp; and through it, on a loop:// link, a request answered while output
packets stream (IMU380) and a continuous-mode confirmation among packets (GX2)."""

import struct
from types import SimpleNamespace

from pygnc.drivers import gx2_codec as gx
from pygnc.drivers import imu380_codec as uu
from pygnc.drivers.gx2 import Gx2
from pygnc.drivers.imu380 import Imu380
from pygnc.drivers.link import SerialLink
from pygnc.drivers.pump import FramePump


class _Link:
    def __init__(self, chunks):
        self.chunks, self.waited = list(chunks), []

    def read(self):
        return self.chunks.pop(0) if self.chunks else b""

    def wait_readable(self, timeout_s):
        self.waited.append(timeout_s)
        return bool(self.chunks)


def test_routes_frames_stamps_them_and_bounds_the_queues():
    link = _Link([bytes([0, 1, 2, 3]), b"", bytes([4, 6, 5, 7, 9])])
    framer = SimpleNamespace(feed=lambda data: list(data))  # every byte a frame; even ones are output
    clock = iter([1.0, 2.0]).__next__  # read once per chunk of bytes, never more
    counters = {"requests": 0}
    p = FramePump(link, framer, lambda f: f % 2 == 0, clock=clock, max_queued=3, max_responses=2, counters=counters)
    assert p.pump(0.5) == 4 and link.waited == [0.5]
    assert p.pump() == 0 and link.waited == [0.5]  # nothing read: no wait, no clock
    assert p.pump() == 5
    assert [tuple(r) for r in p.take_packets()] == [(1.0, 2), (2.0, 4), (2.0, 6)]  # the oldest dropped
    assert counters == {"requests": 0, "packets_overflowed": 1}
    assert [tuple(r) for r in p.responses] == [(2.0, 7), (2.0, 9)]
    assert p.take_packets() == [] and FramePump(link, framer, bool).counters == {"packets_overflowed": 0}


def test_imu380_request_answered_while_packets_stream():
    dev = Imu380(SerialLink("loop://", exclusive=False), timeout_s=0.2, retries=0)
    try:
        s1 = uu.build_frame(uu.S1, struct.pack(">10h2H", *range(10), 7, 0))
        dev.link.write(s1 * 5)
        dev.ping()  # loop:// sends the request back: it is its own answer, behind the packets
        assert len(dev.packets) == 5 and dev.counters["unmatched"] == 0
        assert [r.frame.ptype for r in dev.take_packets()] == [uu.S1] * 5
    finally:
        dev.close()


def test_gx2_confirmation_found_among_packets():
    dev = Gx2(SerialLink("loop://", exclusive=False))
    try:
        c = bytes([gx.CMD_CONTINUOUS, gx.CMD_ACCEL_RATE, 0, 0, 0, 0])
        body = struct.pack(">B6fI", gx.CMD_ACCEL_RATE, 0.5, -0.25, -1.0, 0.125, 0.25, 0.375, 12345)
        pk = body + struct.pack(">H", sum(body) & 0xFFFF)
        dev.link.write(pk + c + struct.pack(">H", sum(c) & 0xFFFF) + pk)
        dev.set_continuous(timeout_s=0.2, retries=0)
        assert dev.continuous
        got = dev.take_packets()
        assert len(got) == 2 and got[0].packet.rate_rad_s == (0.125, 0.25, 0.375)
        assert got[1].packet.timer_ticks == 12345 and got[1].packet.accel_m_s2[2] == -gx.G_M_S2
    finally:
        dev.close()
