"""The stream on the terminal, with the real process tree in a pseudo-terminal (as the host
runs it): commands acknowledged, bad frames counted and answered, a stalled reader that
never blocks pygnc, Ctrl-C while streaming, the terminal's modes restored, stdout carrying
nothing but frames, and live data alone (no batch) making estimates."""

import os
import struct
import termios
import time

import pytest
from flight_harness import REPO, FlightRun, make_home

from ground.host import live
from ground.host.cli import bad_frame_lines
from pygnc.formats import batch as fmt
from pygnc.formats import stream as fs
from pygnc.formats.status import decode_status

SAMPLE = REPO / "data" / "sample_5min"


def _frames(run, start=0):
    return [f for f in run.frames(start) if isinstance(f, fs.Frame)]


def _acks(run, start=0):
    return {fs.ACK.unpack(f.payload)[0]: fs.ACK.unpack(f.payload) for f in _frames(run, start) if f.tag == fs.ACK_TAG}


def _wait_ack(run, seq, start=0, timeout_s=10.0):
    f = run.wait_frame(lambda f: f.tag == fs.ACK_TAG and fs.ACK.unpack(f.payload)[0] == seq, timeout_s, start)
    return fs.ACK.unpack(f.payload)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """One run on the sample batch, kept up for the tests below (in order)."""
    home = make_home(tmp_path_factory.mktemp("stream"), SAMPLE)
    run = FlightRun(home, timeout_min=3)
    modes_before = termios.tcgetattr(run.master)
    hello = run.wait_frame(lambda f: f.tag == fs.HELLO_TAG, 60)
    yield run, hello, modes_before
    run.close()


def test_hello_then_every_command_acknowledged(sample_run):
    run, hello, _ = sample_run
    version, max_line, run_no, cadence_ms, t_sc = fs.HELLO.unpack(hello.payload)
    assert (version, max_line, run_no, cadence_ms) == (fs.PROTOCOL_VERSION, fs.MAX_LINE_BYTES, 1, 0)
    assert abs(t_sc - 1_700_000_000) < 120
    mark = len(run.output)
    run.send(fs.encode_frame(fs.PING, 1))
    run.send(fs.encode_frame(fs.CADENCE, 2, struct.pack("<I", 50)))  # under the 0.1 s floor
    run.send(fs.encode_frame(fs.CADENCE, 3, struct.pack("<I", 200)))
    run.send(fs.encode_frame(fs.FLUSH, 4))
    run.send(fs.encode_frame(fs.STATUS, 5))
    for seq, tag, result in (
        (1, fs.PING, fs.ACK_OK),
        (2, fs.CADENCE, fs.ACK_REFUSED),
        (3, fs.CADENCE, fs.ACK_OK),
        (4, fs.FLUSH, fs.ACK_OK),
        (5, fs.STATUS, fs.ACK_OK),
    ):
        assert _wait_ack(run, seq, mark) == (seq, tag, result)
    sts = run.wait_frame(lambda f: f.tag == fs.STATUS_FILE, 10, mark)
    status = decode_status(sts.payload)  # the status file's own layout and CRC
    assert status["run"] == 1
    cnt = fs.decode_counters(run.wait_frame(lambda f: f.tag == fs.COUNTERS, 10, mark).payload)
    assert cnt["commands"] == 5 and cnt["frames_in"] == 5
    # the host's frames are not echoed back: echo is off while pygnc runs
    assert not any(isinstance(f, fs.FrameError) and f.tag in fs.HOST_TAGS for f in run.frames(mark))
    # estimates now come, each a batch-file record, at most one per kind per 0.2 s
    est = run.wait_frame(lambda f: f.tag == fs.ESTIMATE, 10, mark)
    (rec,), stats = fmt.decode_records(est.payload)
    assert rec.kind.name in ("orbit", "attitude", "formation", "note") and stats.bytes_skipped == 0
    # FLU closed the open batch file on the host's request
    t_end = time.monotonic() + 10
    while time.monotonic() < t_end:
        headers = [fmt.decode_batch(p.read_bytes()).header for p in (run.home / "pygnc_batches").glob("batch_*.bin")]
        if any(h and h["flags"] & fmt.FILE_CLOSED_HOST for h in headers):
            break
        time.sleep(0.05)
    assert any(h and "closed_host" in h["flag_names"] for h in headers)


def test_bad_frames_are_counted_and_answered_never_fatal(sample_run):
    run, _, _ = sample_run
    mark = len(run.output)
    before = fs.decode_counters(_status_counters(run, 100))
    bad = bad_frame_lines(long_line_bytes=1_000_000)
    for _, line, _ in bad:
        run.send(line)
    run.send(fs.encode_frame(fs.PING, 101))
    assert _wait_ack(run, 101, mark) == (101, fs.PING, fs.ACK_OK)  # still answering
    errs = [fs.ERROR.unpack(f.payload) for f in _frames(run, mark) if f.tag == fs.ERROR_TAG]
    assert sorted(e[0] for e in errs) == sorted(code for _, _, code in bad)
    # each ERR names the frame when it could be read, and counts its kind
    by_code = {e[0]: e for e in errs}
    assert by_code[fs.ERR_UNKNOWN_TAG][1:3] == (9001, b"XYZ")
    assert by_code[fs.ERR_BAD_CRC][1:3] == (9000, fs.SENSOR)
    assert by_code[fs.ERR_BAD_PAYLOAD][1:3] == (9002, fs.SENSOR)
    assert by_code[fs.ERR_MALFORMED][1:3] == (fs.SEQ_UNKNOWN, fs.TAG_UNKNOWN)
    after = fs.decode_counters(_status_counters(run, 102))
    for code, (name, _) in fs.ERROR_CODES.items():
        assert after[name] - before[name] == sum(c == code for _, _, c in bad), name


def _status_counters(run, seq):
    """The counters of a fresh STA (the first CNT after it is sent: one STA at a time)."""
    start = len(run.output)
    run.send(fs.encode_frame(fs.STATUS, seq))
    _wait_ack(run, seq, start)
    return run.wait_frame(lambda f: f.tag == fs.COUNTERS, 10, start).payload


def test_a_stalled_reader_never_blocks_pygnc(sample_run):
    run, _, _ = sample_run
    status0 = run.status()
    run.pause_reading()
    try:
        # ~800 bytes of answers per STA: far more than the terminal and the queue hold
        for k in range(300):
            run.send(fs.encode_frame(fs.STATUS, 1000 + k))
        time.sleep(1.5)
        # pygnc went on meanwhile: its status file is rewritten at least once a second
        s = run.wait_status(lambda s: s["seq"] > status0["seq"] + 1, timeout_s=10)
        assert s["t_sc_s"] > status0["t_sc_s"]
    finally:
        run.pause_reading(False)
    start = len(run.output)
    run.send(fs.encode_frame(fs.STATUS, 2000))
    # its answer comes, whatever was dropped before it: a full queue drops its oldest frames
    f = run.wait_frame(lambda f: f.tag == fs.COUNTERS and fs.decode_counters(f.payload)["commands"] >= 301, 60, start)
    assert _wait_ack(run, 2000, start) == (2000, fs.STATUS, fs.ACK_OK)
    assert fs.decode_counters(f.payload)["frames_dropped_out"] > 0


def test_ctrl_c_while_streaming_stops_in_order_and_restores_the_terminal(sample_run):
    run, _, modes_before = sample_run
    items = live.live_items(SAMPLE, t_from_s=live.first_time(SAMPLE) + 100)
    for k, it in enumerate(items[:20]):
        run.send(fs.encode_frame(it.tag, 3000 + k, it.data))
    assert termios.tcgetattr(run.master)[3] & termios.ECHO == 0  # off while pygnc runs
    t = run.ctrl_c()
    for k, it in enumerate(items[20:40]):  # the host is still sending when the stop begins
        try:
            os.write(run.master, fs.encode_frame(it.tag, 3020 + k, it.data))
        except OSError:
            break
    assert run.wait_exit(10) == 0
    stop_s = time.monotonic() - t
    bye = [f for f in _frames(run) if f.tag == fs.BYE]
    assert len(bye) == 1
    counters = fs.decode_counters(bye[0].payload)
    assert counters["frames_in"] >= 20 + 5
    assert run.status()["flag_names"].count("stopping") == 1
    assert termios.tcgetattr(run.master)[3] == modes_before[3]  # echo and the rest are back
    assert stop_s < 5.0  # the host cuts power 10 s after Ctrl-C; median stop ~0.2 s (bench_ctrl_c)


def test_frames_queued_ahead_of_the_ctrl_c_are_taken_and_counted(tmp_path):
    """Issue 37 item 8: frames written just before Ctrl-C sat in the terminal's input queue
    when its ^C raised SIGINT, and the stop flushed them (the Pi's BYE counted 28 sensor
    segments of the 29 the host sent).  Here 12 frames and the ^C arrive in one write."""
    items = live.live_items(SAMPLE, t_from_s=live.first_time(SAMPLE) + 100)[:12]
    with FlightRun(make_home(tmp_path, SAMPLE), timeout_min=3) as run:
        run.wait_frame(lambda f: f.tag == fs.HELLO_TAG, 60)
        os.write(
            run.master, b"".join(fs.encode_frame(it.tag, 100 + k, it.data) for k, it in enumerate(items)) + b"\x03"
        )
        assert run.wait_exit(10) == 0
        bye = [f for f in _frames(run) if f.tag == fs.BYE]
    counters = fs.decode_counters(bye[0].payload)
    assert counters["frames_in"] == len(items)
    sent_sns = sum(len(it.data) // 30 for it in items if it.tag == fs.SENSOR)
    assert counters["sensor_segments"] == sent_sns


def _enough_estimates(data: bytes) -> bool:
    """At least three orbit and three attitude estimates among the frames in *data*."""
    frames = [i for i in fs.FrameReader(fs.PYGNC_TAGS).feed(data) if isinstance(i, fs.Frame)]
    kinds = [fmt.decode_records(f.payload)[0][0].kind.name for f in frames if f.tag == fs.ESTIMATE]
    return kinds.count("orbit") >= 3 and kinds.count("attitude") >= 3


def test_stdout_carries_frames_only_and_live_data_alone_makes_estimates(tmp_path):
    """No sense.bin, no range files: the stream alone gives a clock map and estimates; and
    stdout (here a file) holds nothing but frames - the banner and logs go to stderr."""
    home = make_home(tmp_path)
    out_path = tmp_path / "stdout.txt"
    items = live.live_items(SAMPLE)
    with (
        open(out_path, "wb") as out,
        FlightRun(home, timeout_min=3, spacecraft_time_s=items[0].t_sc_s, stdout=out) as run,
    ):
        t_end = time.monotonic() + 60
        while b"$HEL" not in out_path.read_bytes():
            assert time.monotonic() < t_end and run.proc.poll() is None, run.text
            time.sleep(0.05)
        run.send(fs.encode_frame(fs.CADENCE, 1, struct.pack("<I", 100)))
        frames = live.frames_of(items, group_s=5.0)
        for k, (_, tag, payload) in enumerate(frames):
            run.send(fs.encode_frame(tag, 10 + k, payload))
            time.sleep(0.01)
        s = run.wait_status(lambda s: "clock_mapped" in s["flag_names"] and s["orbit_fixes_used"] >= 10, timeout_s=30)
        assert s["fixes_total"] == 0  # the batch had none: these came live
        t_end = time.monotonic() + 60
        while not _enough_estimates(out_path.read_bytes()):
            assert time.monotonic() < t_end and run.proc.poll() is None, run.text
            time.sleep(0.05)
        run.ctrl_c()
        assert run.wait_exit(10) == 0
    data = out_path.read_bytes()
    items_out = fs.FrameReader(fs.PYGNC_TAGS).feed(data)
    assert items_out and all(isinstance(i, fs.Frame) for i in items_out), [
        i for i in items_out if not isinstance(i, fs.Frame)
    ][:3]
    assert b"pygnc run 1 started" in run.output and b"pygnc run 1 started" not in data
    assert _enough_estimates(data)
    assert items_out[0].tag == fs.HELLO_TAG and items_out[-1].tag == fs.BYE


def test_stream_modes_keep_canonical_mode_and_ctrl_c_only():
    import pty

    from pygnc import terminal

    master, slave = pty.openpty()
    try:
        old = termios.tcgetattr(slave)
        new = terminal.stream_modes(old)
        iflag, _, _, lflag, _, _, cc = new
        assert lflag & termios.ICANON and lflag & termios.ISIG  # lines, and Ctrl-C is SIGINT
        assert not lflag & (termios.ECHO | termios.IEXTEN) and not iflag & termios.IXON
        assert cc[termios.VINTR] == old[6][termios.VINTR] == b"\x03"
        for name in ("VEOF", "VQUIT", "VSUSP", "VERASE", "VKILL"):
            assert cc[getattr(termios, name)] in (b"\x00", 0), name
        # not our foreground terminal (no session here): nothing is touched
        assert terminal.setup_for_stream(slave) is None and termios.tcgetattr(slave) == old
    finally:
        os.close(master)
        os.close(slave)


def test_the_idle_subscription_matches_no_bus_message():
    """While not streaming, tty_stream subscribes to NO_MESSAGES: every bus message is a
    msgpack map, so none starts with it (and a restarted producer still sees a subscriber)."""
    from pygnc.bus.messages import Encoder
    from pygnc.tasks.tty_stream import NO_MESSAGES

    enc = Encoder("orbit_estimator")
    for body in ({}, {"estimator": "orbit", "code": "x", "text": "y"}):
        assert not enc.encode("estimator_note", body).startswith(NO_MESSAGES)


def test_a_stdout_that_went_away_leaves_the_poller():
    """Stdout's reader gone (EPIPE; a hung-up terminal gives EIO): the frames are dropped and
    counted, and the descriptor leaves the task's poller and is closed - left registered, a
    dead descriptor polls as an error at once, and the task's loop spun for the rest of the
    run."""
    import logging
    import types
    from collections import deque

    import zmq

    from pygnc.config import Config
    from pygnc.tasks.tty_stream import TtyStream

    r, w = os.pipe()
    os.set_blocking(w, False)
    ctx = types.SimpleNamespace(run_number=1, sc_now=lambda: 0.0)
    runner = types.SimpleNamespace(poller=zmq.Poller(), subscribers={}, ctx=ctx)
    t = object.__new__(TtyStream)  # (its stdout alone: no bus)
    t.runner, t.ctx, t.config, t.log = runner, ctx, Config(), logging.getLogger("tty_stream")
    t.out, t.out_bytes, t.out_offset, t.seq = deque(), 0, 0, 0
    t.n = dict.fromkeys(("frames_dropped_out", "bytes_out", "frames_out"), 0)
    t.other = {"write_errors": 0}
    t.out_fd, t._own_out, t._out_check, t.out_registered = w, True, False, False
    while True:  # a full pipe: the next frame waits, and stdout is polled for room
        try:
            os.write(w, b"x" * 65536)
        except BlockingIOError:
            break
    t._send(fs.HELLO_TAG, b"hello")
    t._write()
    assert t.out_registered and runner.poller.poll(0) == []
    os.close(r)
    t._send(fs.HELLO_TAG, b"again")
    t._write()
    assert t.other["write_errors"] == 1 and t.n["frames_dropped_out"] == 2 and t.out_fd == -1
    assert not t.out_registered and runner.poller.sockets == [] and runner.poller.poll(0) == []
    with pytest.raises(OSError):
        os.fstat(w)  # closed: it was the task's own


_SOCKET_STDIN = r"""
import os, signal, socket, sys, types, zmq
from pygnc.config import Config
from pygnc.tasks.tty_stream import TtyStream
a, b = socket.socketpair()
os.dup2(a.fileno(), 0)  # stdin: a socket, which /proc cannot open again: shared and blocking
r, w = os.pipe()
os.dup2(w, 1)
spec = types.SimpleNamespace(name="tty_stream")
ctx = types.SimpleNamespace(run_number=1, sc_now=lambda: 0.0, config=Config(), spec=spec)
t = TtyStream(types.SimpleNamespace(poller=zmq.Poller(), subscribers={}, ctx=ctx))
signal.alarm(20)  # a read that blocks ends the process here
t.on_start()
b.sendall(b"not a frame\n")
for _ in range(3):  # the loop's steps: one reads the line, the others find nothing and go on
    t.step()
print(t.reader.lines, t._own_in, file=sys.stderr)
"""


def test_a_stdin_it_cannot_open_again_is_read_only_when_there_is_something():
    """Stdin that /proc cannot open again (a socket) is the shared, blocking description:
    the task reads it only when poll says there is input (it read on until EAGAIN, and the
    second read blocked the task's loop for good)."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", _SOCKET_STDIN], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stderr.split()[-2:] == ["1", "False"], p.stderr
