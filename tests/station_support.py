"""Helpers of the ground-station tests: a fake pygnc on a pseudo-terminal, the server as a
process, batch files, a client that never reads, and a headless Chromium (Debian's
``chromium`` package installed when missing, said on the terminal, unless
``PYGNC_NO_BROWSER_INSTALL`` is set: docs/testing.md)."""

from __future__ import annotations

import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tty
from pathlib import Path

from pygnc.formats import batch as fmt
from pygnc.formats import stream as fs
from pygnc.formats.range_packet import encode_packet, raw_from_range_m
from pygnc.formats.status import encode_status

REPO = Path(__file__).resolve().parent.parent
#: Where browser tests leave their screenshots (kept by CI as artefacts; gitignored).
ARTIFACTS = Path(os.environ.get("PYGNC_TEST_ARTIFACTS", REPO / "test-artifacts"))
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

UTC_MINUS_SC_S = 1_000_000_000.0 - 16.0  # the fake spacecraft clock + this = UTC (2001-09-09)
T0_SC_S = 742_000_000.0
R_ORBIT_M = 6_878_137.0
PEER = 0x4A


class FakePygnc:
    """pygnc's side of the stream on a pseudo-terminal: the test writes frames, the server
    reads ``self.path``."""

    def __init__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.seq = 0

    def send(self, tag: bytes, payload: bytes = b"") -> None:
        self.raw(fs.encode_frame(tag, self.seq, payload))
        self.seq += 1

    def raw(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.master, view)
            view = view[n:]

    def hello(self) -> None:
        self.send(fs.HELLO_TAG, fs.HELLO.pack(fs.PROTOCOL_VERSION, fs.MAX_LINE_BYTES, 7, 1000, T0_SC_S))

    def status(self, t_sc_s: float, tasks=(("ingest", 2, 2, 0), ("orbit_estimator", 3, 2, 1))) -> None:
        values = {
            "run": 7,
            "t_sc_s": t_sc_s,
            "clock_utc_minus_sc_s": UTC_MINUS_SC_S,
            "flags": 1 << 7,
            "orbit_quality": 1,
            "att_quality": 1,
            "peer0_id": PEER,
            "peer0_quality": 1,
        }
        for k, (_, tid, state, restarts) in enumerate(tasks):
            values.update({f"task{k}_id": tid, f"task{k}_state": state, f"task{k}_restarts": restarts})
        self.send(fs.STATUS_FILE, encode_status(values))

    def estimates(self, t_sc_s: float) -> None:
        """An orbit, attitude and formation estimate at *t_sc_s* (a circular equatorial orbit)."""
        w = 2 * math.pi / 5677.0
        a = w * (t_sc_s - T0_SC_S)
        r = [R_ORBIT_M * math.cos(a), R_ORBIT_M * math.sin(a), 0.0]
        v = [-R_ORBIT_M * w * math.sin(a), R_ORBIT_M * w * math.cos(a), 0.0]
        self.record(
            "orbit",
            t_sc_s,
            {
                "r_ecef_m": r,
                "v_ecef_m_s": v,
                "sigma_r_m": [2.0, 2.0, 2.0],
                "sigma_v_m_s": [0.01] * 3,
                "n_used": 5,
                "quality": 1,
            },
        )
        self.record(
            "attitude",
            t_sc_s,
            {
                "q_body_to_gcrs": [1.0, 0.0, 0.0, 0.0],
                "rate_body_rad_s": [0.01, 0, 0],
                "gyro_bias_rad_s": [1e-4] * 3,
                "sigma_att_rad": [0.01] * 3,
                "sigma_bias_rad_s": [1e-5] * 3,
                "mag_bias_body_ut": [0.0] * 3,
                "sigma_mag_bias_ut": [0.1] * 3,
                "valid_attitude": True,
                "quality": 1,
            },
        )
        self.record(
            "formation",
            t_sc_s,
            {
                "peer_id": PEER,
                "dr_ecef_m": [1000.0, 0.0, 0.0],
                "dv_ecef_m_s": [0.0, 0.0, 0.0],
                "sigma_dr_m": [3.0] * 3,
                "sigma_dv_m_s": [0.01] * 3,
                "sigma_los_m": 2.0,
                "range_bias_m": 0.5,
                "sigma_range_bias_m": 0.2,
                "n_ranges_used": 3,
                "quality": 1,  # ok
                "n_orbits": 1,
                "best_weight": 1.0,
            },
        )

    def record(self, kind: str, t_sc_s: float, values: dict) -> None:
        self.send(fs.ESTIMATE, fmt.encode_record(fmt.KINDS_BY_NAME[kind], t_sc_s, values))

    def range(self, t_sc_s: float, range_m: float) -> None:
        """An RNG frame, as the host's tap copies it."""
        self.send(fs.RANGE, encode_packet(PEER, int(t_sc_s), raw_from_range_m(range_m)))

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class Server:
    """``python -m ground serve ARGS`` as a process on a free port; ``url`` once it listens."""

    def __init__(self, *args: str, timeout_s: float = 30.0):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ground", "serve", *args, "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        self.lines: list[str] = []
        t_end = time.monotonic() + timeout_s
        self.url = None
        while time.monotonic() < t_end:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.search(r"open (http://\S+)", line)
            if m:
                self.url = m.group(1)
                break
        if self.url is None:
            self.proc.kill()
            raise AssertionError(f"server did not start: {self.lines} {self.proc.stderr.read()}")

    def stop(self) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(2)
        try:
            out, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err


_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Set (to anything but "" or "0") to never install a browser: the browser tests then skip.
NO_INSTALL_ENV = "PYGNC_NO_BROWSER_INSTALL"
#: The install's output (apt-get's), kept for reading after the run.
INSTALL_LOG = ARTIFACTS / "chromium-install.log"
_INSTALL = "apt-get install -y -q --no-install-recommends chromium"
#: Held while an install runs (one at a time, whichever pytest process starts it).
INSTALL_LOCK = ARTIFACTS / "chromium-install.lock"
#: argv: lock file, shell command.  Takes the lock, then installs unless a Chromium is there.
_LOCKED_INSTALL = f"""
import fcntl, shutil, subprocess, sys
with open(sys.argv[1], "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if any(shutil.which(n) for n in {_CHROMIUM_NAMES!r}):
        sys.exit(0)
    sys.exit(subprocess.call(["bash", "-c", sys.argv[2]]))
"""
#: The background install of Debian's chromium (started when the browser tests are collected).
_install: subprocess.Popen | None = None


def _find_chromium() -> str | None:
    for name in _CHROMIUM_NAMES:
        p = shutil.which(name)
        if p:
            return p
    return None


def _opted_out() -> bool:
    return os.environ.get(NO_INSTALL_ENV, "") not in ("", "0")


def _say(say, text: str) -> None:
    (say or (lambda t: print(t, file=sys.stderr, flush=True)))(text)


def terminal_line(config):
    """A function that writes a line on pytest's terminal, past its output capture."""

    def say(text: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            print(text, file=sys.stderr, flush=True)
        elif capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(text)
        else:
            reporter.write_line(text)

    return say


def start_chromium_install(say=None, append: bool = False) -> None:
    """When there is no Chromium, the browser tests will run, this user may install packages
    (root with apt-get) and :data:`NO_INSTALL_ENV` is not set: start installing Debian's
    ``chromium`` in the background (so the download overlaps the other tests), saying so
    through *say* (a function taking a line; default: stderr), with its output in
    :data:`INSTALL_LOG` (*append*: after what is there, as a pytest-xdist worker does)."""
    global _install
    if _install is not None or _find_chromium() or _opted_out():
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = open(INSTALL_LOG, "ab" if append else "wb")
    _say(
        say,
        f"pygnc tests: no Chromium for the browser tests (tests/test_station.py): installing Debian's "
        f"chromium package in the background ({_INSTALL}); log: {INSTALL_LOG}. "
        f"Set {NO_INSTALL_ENV}=1 to skip those tests instead.",
    )
    # Under pytest-xdist the controller and every worker may get here: the install runs under
    # a file lock and does nothing when a Chromium is there once it holds it.
    _install = subprocess.Popen(
        [sys.executable, "-c", _LOCKED_INSTALL, str(INSTALL_LOCK), f"{_INSTALL} || (apt-get update -q && {_INSTALL})"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    log.close()


def install_outcome() -> str | None:
    """How the background install went (for the end of the run), or None when none ran."""
    if _install is None:
        return None
    rc = _install.poll()
    if rc is None:
        return f"chromium install still running (log: {INSTALL_LOG})"
    found = _find_chromium()
    return (
        f"chromium installed for the browser tests: {found} (log: {INSTALL_LOG})"
        if rc == 0 and found
        else f"chromium install failed (exit {rc}); browser tests skipped; log: {INSTALL_LOG}"
    )


def chromium(say=None) -> str | None:
    """Path of a Chromium, waiting for the install :func:`start_chromium_install` started (or
    starting it) if none is there; None when there is none to be had (:func:`no_browser_reason`)."""
    found = _find_chromium()
    if found:
        return found
    start_chromium_install(say, append=True)
    if _install is not None:
        if _install.poll() is None:
            _say(say, f"pygnc tests: waiting for the chromium install to finish (log: {INSTALL_LOG})")
        try:
            _install.wait(timeout=900)
        except subprocess.TimeoutExpired:
            _install.kill()
    return _find_chromium()


def no_browser_reason() -> str:
    """Why there is no Chromium, and how to run the browser tests."""
    how = "apt-get install chromium (or any Chromium on PATH), then run pytest again"
    if _opted_out():
        return (
            f"no Chromium, and {NO_INSTALL_ENV} is set so none was installed; to run the browser tests: "
            f"{how}, or unset {NO_INSTALL_ENV} and run pytest as root"
        )
    if _install is not None:
        return f"installing Debian's chromium failed (log: {INSTALL_LOG}); to run the browser tests: {how}"
    return f"no Chromium, and this user cannot install one (needs root and apt-get); to run the browser tests: {how}"


# --------------------------------------------------------------------------- batch files, clients
def batch_file(directory: Path, sequence: int, records: list[tuple[str, float, dict]], run: int = 1) -> Path:
    """A closed batch file ``batch_<sequence>.bin`` of *records* ((kind, t_sc_s, values)),
    written atomically as a downlink would leave it."""
    body = b"".join(fmt.encode_record(fmt.KINDS_BY_NAME[k], t, v) for k, t, v in records)
    ts = [t for _, t, _ in records]
    hdr = fmt.encode_header(
        run=run,
        sequence=sequence,
        spacecraft_id=1,
        flags=fmt.FILE_CLOSED_SIZE,
        t_first_sc_s=min(ts),
        t_last_sc_s=max(ts),
        records=len(records),
    )
    path = Path(directory) / fmt.file_name(sequence)
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_bytes(hdr + body)
    os.replace(tmp, path)
    return path


def stalled_client(url: str, rcvbuf: int | None = None) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads (a frozen tab)."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect((host, int(port)))
    s.sendall(
        f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert s.recv(12).startswith(b"HTTP/1.1 101")
    return s
