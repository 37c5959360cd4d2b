"""The 3DM-GX2 driver (serial, through real pseudo-terminals) and the monoDrive IMU stream
(UDP and TCP on loopback) against simulated devices built from a known motion."""

import time

import pytest

from ground.devices import motion
from ground.devices.gx2 import TICKS_PER_S, Gx2Sim, MonoDriveSim
from ground.devices.ports import Faults, PtyPort
from pygnc.drivers.gx2 import Gx2Stream
from pygnc.drivers.link import LinkError
from pygnc.drivers.monodrive import MonoDriveStream


def _run(stream, seconds: float, period_s: float = 0.005) -> list:
    out = []
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        stream.service(time.monotonic())
        time.sleep(period_s)
        out += stream.read_samples()
    return out


def _connect(stream):
    for _ in stream.connect_steps():
        pass
    return stream


def _check_truth(samples, t_of):
    """float32 on the wire: values within 1e-6 relative (+ tiny absolute) of the truth."""
    for s in samples:
        t = t_of(s)
        assert s.rate_rad_s == pytest.approx(motion.rate_rad_s(t), rel=1e-6, abs=1e-7)
        assert s.accel_m_s2 == pytest.approx(motion.accel_m_s2(t), rel=1e-6, abs=1e-6)


def test_continuous_stream_counts_the_timer_wrap():
    # the simulated timer wraps 0.5 s after the simulator starts
    with Gx2Sim(PtyPort()) as sim:
        st = _connect(Gx2Stream(sim.port.path, mode="continuous"))
        try:
            samples = _run(st, 1.0)
        finally:
            st.close()
        t_end = time.monotonic() + 1.0
        while sim.continuous and time.monotonic() < t_end:
            time.sleep(0.01)
        assert not sim.continuous  # close() stopped the stream
    assert len(samples) >= 80
    t_dev = [s.t_device_s for s in samples]
    steps = [b - a for a, b in zip(t_dev, t_dev[1:])]
    assert min(steps) > 0.0099 and max(steps) < 0.0101  # monotonic through the wrap
    assert st.stats()["timer_wraps"] == 1 and st.lost == 0
    start = sim.timer_start / TICKS_PER_S
    _check_truth(samples, lambda s: s.t_device_s - start)  # device time = simulator time + start


def test_polled_mode_one_request_per_sample():
    with Gx2Sim(PtyPort()) as sim:
        st = _connect(Gx2Stream(sim.port.path, mode="polled", poll_rate_hz=50))
        samples, t0 = [], time.monotonic()
        while len(samples) < 15 and time.monotonic() < t0 + 60.0:  # (waits on the count, not a time)
            samples += _run(st, 0.05)
        elapsed_s = time.monotonic() - t0
        st.close()
    # never faster than the poll rate: one sample per request
    assert 15 <= len(samples) <= 50 * elapsed_s + 2 and st.polls >= len(samples)
    # every poll but the one in flight answered or counted lost (a reply later than the next
    # poll - a loaded machine - is counted lost, and taken when it comes)
    assert len(samples) + st.lost >= st.polls - 1
    assert sim.polls >= len(samples)


def test_corrupted_bytes_are_skipped_and_counted():
    faults = Faults(corrupt_prob=0.002, drop_prob=0.001, seed=3)
    with Gx2Sim(PtyPort(), faults=faults) as sim:
        st = _connect(Gx2Stream(sim.port.path, mode="continuous", reply_timeout_s=0.3))
        samples = _run(st, 1.5)
        stats = st.stats()
        st.close()
    assert faults.corrupted + faults.dropped > 0
    assert stats["checksum_errors"] + stats["bytes_skipped"] > 0
    assert len(samples) >= 100
    start = sim.timer_start / TICKS_PER_S
    _check_truth(samples, lambda s: s.t_device_s - start)  # every sample that came out is good
    assert st.lost > 0  # and the damaged ones are counted


@pytest.mark.parametrize("header", ["v16", "udp8"])
def test_monodrive_udp_on_loopback(header):
    st = _connect(MonoDriveStream("udp://127.0.0.1:0", header=header, verify_checksum=True))
    try:
        with MonoDriveSim("udp", st.link.address, header=header, drop_prob=0.2, bad_checksum_prob=0.05, seed=1) as sim:
            samples = _run(st, 0.6)
        samples += st.read_samples()
    finally:
        st.close()
    assert len(samples) >= 30
    _check_truth(samples, lambda s: s.t_device_s)  # game time = simulator time
    assert st.checksum_bad == 0 and st.frames_bad > 0  # spoilt checksums refused
    if header == "v16":  # sample count shows the drops
        assert st.lost >= st.frames_bad > 0 and len(samples) + st.lost == pytest.approx(sim.count, abs=2)


@pytest.mark.parametrize("header", ["v16", "tcp12"])
def test_monodrive_tcp_on_loopback_and_a_dropped_connection(header):
    with MonoDriveSim("tcp", ("127.0.0.1", 0), header=header, with_tow=header == "v16") as sim:
        st = _connect(MonoDriveStream(f"tcp://127.0.0.1:{sim.address[1]}", header=header))
        try:
            samples = _run(st, 0.5)
            assert len(samples) >= 30 and st.frames_bad == 0 and st.checksum_bad == 0
            _check_truth(samples, lambda s: s.t_device_s)
            sim.drop_client()
            with pytest.raises(LinkError):
                _run(st, 0.5)
        finally:
            st.close()


@pytest.mark.parametrize("scheme,header", [("udp", "v16"), ("tcp", "v16"), ("udp", "udp8")])
def test_monodrive_refuses_and_counts_the_1_15_imu_frame(scheme, header):
    """A simulator sending release 1.15's IMU frame (184 bytes with v16): no sample, every
    frame counted as the wrong format (not as damage or a checksum), and said why."""
    if scheme == "udp":
        st = _connect(MonoDriveStream("udp://127.0.0.1:0", header=header))
        sim = MonoDriveSim("udp", st.link.address, header=header, payload="state")
    else:
        sim = MonoDriveSim("tcp", ("127.0.0.1", 0), header=header, payload="state")
        st = None
    try:
        with sim:
            if st is None:
                st = _connect(MonoDriveStream(f"tcp://127.0.0.1:{sim.address[1]}", header=header))
            samples = _run(st, 0.4)
    finally:
        st.close()
    assert samples == []
    stats = st.stats()
    assert stats["frames_wrong_format"] >= 20 and stats["frames_bad"] == stats["checksum_bad"] == 0
    assert "payload of 168 bytes" in st.refusal and "1.15 or later" in st.refusal


def test_monodrive_refuses_a_network_interface_unless_allowed():
    with pytest.raises(LinkError, match="loopback"):
        MonoDriveStream("udp://192.0.2.1:8083")
    MonoDriveStream("udp://192.0.2.1:8083", allow_network=True)  # constructed, not bound
    with pytest.raises(LinkError, match="udp://HOST:PORT"):
        MonoDriveStream("http://127.0.0.1:1")
    with pytest.raises(LinkError, match="TCP needs"):
        MonoDriveStream("tcp://127.0.0.1:1", header="udp8")
