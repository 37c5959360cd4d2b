"""Run the flight process tree the way the PyCubed host does: in a terminal.

``main.py`` becomes a session leader whose controlling terminal is a fresh pseudo-terminal,
so its process group is the terminal's foreground group.  Typing Ctrl-C (byte 0x03) into
the master makes the kernel's line discipline deliver SIGINT to every process of that
group at once - exactly what the host's Ctrl-C over the UART login shell does.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import psutil

from pygnc.formats.status import StatusError, decode_status
from pygnc.tasks.table import TASKS_BY_NAME, process_name

REPO = Path(__file__).resolve().parent.parent
FLIGHT_MAIN = REPO / "flight" / "main.py"


def _become_terminal_foreground():  # in the child, after setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    # As the host's login shell starts it: SIGINT at its default, even when this process
    # runs where it is ignored (a shell's background job) - an ignored SIGINT is inherited
    # across exec, and a Ctrl-C before main.py installs its handlers would then be lost.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class FlightRun:
    """One run of ``main.py`` in a pseudo-terminal, with its PYGNC_HOME."""

    def __init__(
        self,
        home: Path,
        timeout_min: float = 5.0,
        spacecraft_time_s: float = 1_700_000_000,
        main: Path = FLIGHT_MAIN,
        env: dict | None = None,
        args: list[str] | None = None,
        prefix: list[str] | None = None,
        stdout=None,
        cwd: Path | None = None,
    ):
        """*stdout*: a file object for main.py's stdout instead of the terminal (stdin and
        stderr stay on it); *prefix*: a command that runs main.py, e.g. ["taskset", "-c", "0"]
        (benches); *cwd*: where main.py starts (default: the home)."""
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        master, slave = pty.openpty()
        self.master = master
        e = dict(os.environ)
        e["PYGNC_HOME"] = str(self.home)
        e.pop("PYGNC_CONFIG", None)
        e.update(env or {})
        argv = [str(timeout_min), str(spacecraft_time_s)] if args is None else args
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(
            [*(prefix or []), sys.executable, str(main), *argv],
            stdin=slave,
            stdout=slave if stdout is None else stdout,
            stderr=slave,
            env=e,
            cwd=str(cwd or self.home),
            start_new_session=True,
            preexec_fn=_become_terminal_foreground,
            close_fds=True,
        )
        os.close(slave)
        self.output = bytearray()
        self._paused = threading.Event()
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closing.is_set():
            while self._paused.is_set():  # a reader that stalls: the terminal's buffers fill
                time.sleep(0.01)
            try:  # (never blocked in read: hang_up() must be able to close the terminal)
                if not select.select([self.master], [], [], 0.05)[0]:
                    continue
                chunk = os.read(self.master, 4096)
            except (OSError, ValueError):
                return
            if not chunk:
                return
            self.output += chunk

    # -- observation -------------------------------------------------------------------------
    @property
    def status_path(self) -> Path:
        return self.home / "pygnc_status.bin"

    def status(self) -> dict | None:
        try:
            return decode_status(self.status_path.read_bytes())
        except (OSError, StatusError):
            return None

    def wait_status(self, predicate=lambda s: True, timeout_s: float = 30.0, period_s: float = 0.02) -> dict:
        t_end = time.monotonic() + timeout_s
        while time.monotonic() < t_end:
            s = self.status()
            if s is not None and predicate(s):
                return s
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"main.py exited ({self.proc.returncode}) before the status condition held; output:\n{self.text}"
                )
            time.sleep(period_s)
        raise AssertionError(
            f"status condition not met in {timeout_s} s; last status {self.status()}\noutput:\n{self.text}"
        )

    def wait_info(self, needle: bytes, timeout_s: float = 10.0, period_s: float = 0.02, until=None) -> bytes:
        """The info file once it contains *needle* (and *until* of its bytes holds, when given;
        it is rewritten just after the status file, so a status seen already may not be in
        the info file read at once)."""
        t_end = time.monotonic() + timeout_s
        info = b""
        while time.monotonic() < t_end:
            try:
                info = (self.home / "pygnc_info.txt").read_bytes()
            except FileNotFoundError:
                info = b""
            if needle in info and (until is None or until(info)):
                return info
            time.sleep(period_s)
        raise AssertionError(f"{needle!r} not in the info file within {timeout_s} s; last:\n{info!r}")

    def tree(self) -> list[psutil.Process]:
        """main.py and all its descendants."""
        try:
            p = psutil.Process(self.proc.pid)
            return [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def power_cut(self, timeout_s: float = 10.0) -> list[psutil.Process]:
        """Every process of the tree stopped at one instant, as a power cut stops them: the
        whole process group (main.py leads it; nothing in the tree leaves it) frozen by one
        SIGSTOP, then killed by one SIGKILL.  Killed one by one, the tasks would see the
        supervisor go and begin their stop - the batch writer would record its final
        estimates - which no power cut allows."""
        procs = self.tree()
        assert procs, "no process tree to cut"
        pgid = os.getpgid(self.proc.pid)
        os.killpg(pgid, signal.SIGSTOP)
        procs = self.tree()  # (with anything forked before the stop)
        os.killpg(pgid, signal.SIGKILL)
        for p in procs:  # (anything that had left the group, too)
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=timeout_s)
        assert not alive, f"still running after the cut: {alive}"
        return procs

    def task_pid(self, name: str, timeout_s: float = 2.0) -> int:
        """The pid of task *name*: by its command line if spawned, by its process name if
        forked from the zygote.  Looked for again for up to *timeout_s* (while the zygote
        exits, its children are re-parented to the supervisor and briefly in neither's list)."""
        comm = process_name(TASKS_BY_NAME[name])
        t_end = time.monotonic() + timeout_s
        while True:
            for p in self.tree()[1:]:
                try:
                    if name in p.cmdline() or p.name() == comm:
                        return p.pid
                except psutil.Error:
                    pass
            if time.monotonic() >= t_end:
                raise LookupError(name)
            time.sleep(0.01)

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def log_dir(self) -> Path:
        runs = sorted((self.home / "pygnc_logs").glob("run_*"))
        return runs[-1]

    def frames(self, start: int = 0) -> list:
        """pygnc's stream frames (and noise) in the terminal output from byte *start*."""
        from pygnc.formats import stream as fs

        return fs.FrameReader(fs.PYGNC_TAGS, max_line=1 << 20, noise_ok=True).feed(bytes(self.output[start:]))

    def wait_frame(self, predicate, timeout_s: float = 30.0, start: int = 0):
        """The first stream frame from byte *start* of the output for which *predicate* holds."""
        from pygnc.formats import stream as fs

        t_end = time.monotonic() + timeout_s
        while time.monotonic() < t_end:
            for f in self.frames(start):
                if isinstance(f, fs.Frame) and predicate(f):
                    return f
            if self.proc.poll() is not None:
                raise AssertionError(f"main.py exited ({self.proc.returncode}); output:\n{self.text}")
            time.sleep(0.02)
        raise AssertionError(f"no such frame within {timeout_s} s; output:\n{self.text[-3000:]}")

    def send(self, data: bytes) -> None:
        """Type *data* into the terminal (the host's side of the UART)."""
        view = memoryview(data)
        while view:
            n = os.write(self.master, view)
            view = view[n:]

    def pause_reading(self, paused: bool = True) -> None:
        (self._paused.set if paused else self._paused.clear)()

    # -- actions ------------------------------------------------------------------------------
    def wait_catching(self, signum: int, timeout_s: float = 10.0) -> None:
        """Wait until main.py has a handler for *signum* (its ``SigCgt`` mask in /proc): from
        then on a stop is pygnc's to handle.  Before it, a Ctrl-C meets Python's own start-up
        (a ``KeyboardInterrupt``), which nothing in pygnc can change.  (Python catches SIGINT
        itself from its start; pygnc's handlers are in once SIGHUP, the last it installs, is
        caught.)"""
        bit = 1 << (signum - 1)
        t_end = time.monotonic() + timeout_s
        while time.monotonic() < t_end:
            try:
                text = Path(f"/proc/{self.proc.pid}/status").read_text()
            except OSError:
                break
            caught = next((line.split()[1] for line in text.splitlines() if line.startswith("SigCgt:")), "0")
            if int(caught, 16) & bit:
                return
            time.sleep(0.005)
        raise AssertionError(f"main.py did not catch signal {signum} within {timeout_s} s")

    def ctrl_c(self) -> float:
        """Type Ctrl-C into the terminal; returns the monotonic time it was typed."""
        t = time.monotonic()
        os.write(self.master, b"\x03")
        return t

    def hang_up(self) -> float:
        """Close the host's side of the terminal, as a host whose terminal goes away: the
        kernel hangs it up (SIGHUP to main.py, the session leader; reads and writes fail).
        Returns the monotonic time it was closed (after the output reader has stopped)."""
        self._closing.set()
        self._reader.join(timeout=5)
        t = time.monotonic()
        os.close(self.master)
        self.master = -1
        return t

    def wait_exit(self, timeout_s: float = 10.0) -> int:
        return self.proc.wait(timeout=timeout_s)

    def close(self) -> None:
        """Kill whatever is left (test cleanup only) and release the terminal."""
        for p in reversed(self.tree()):
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.close(self.master)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def make_home(
    tmp_path: Path,
    scenario: Path | None = None,
    sense: bytes | None = None,
    range_files: dict[str, bytes] | None = None,
) -> Path:
    """A PYGNC_HOME with a copy of a scenario's inputs and/or the given file contents."""
    home = tmp_path / "home"
    home.mkdir()
    if scenario is not None:
        shutil.copy(scenario / "sense.bin", home / "sense.bin")
        if (scenario / "range").is_dir():
            shutil.copytree(scenario / "range", home / "range")
    if sense is not None:
        (home / "sense.bin").write_bytes(sense)
    if range_files is not None:
        (home / "range").mkdir(exist_ok=True)
        for name, data in range_files.items():
            (home / "range" / name).write_bytes(data)
    return home


def gone(pids: list[int]) -> bool:
    """True if none of *pids* is alive (zombies of reaped children count as gone)."""
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True


# -- the downlink of a run, record for record (restart tests and bench/bench_restarts.py) -----
#: Record kinds compared between runs, keyed by (kind, key, record time): the estimates at
#: sample times and the measurements as ingest read them.  Left out: health and notes
#: (their times are when they were received), estimates propagated to "now" (flag bit 0:
#: made every second after the batch, at wall-clock instants) and the on-change kinds,
#: compared by their values alone (:func:`downlink`).
TIMED_KINDS = ("orbit", "attitude", "formation", "gps_fix", "range", "sensor")
#: Kinds recorded on change, compared as the set of their payloads (record time: when received).
CHANGE_KINDS = ("clock_map", "ingest", "batch_summary")


def downlink(home: Path, *more: Path) -> dict:
    """The comparable records of every batch file under *home*/pygnc_batches (and in the
    directories *more*: files the host took): ``{(kind, key, t_ms): payload}`` for
    :data:`TIMED_KINDS` (not propagated) and ``{(kind, "values", payload): count}`` for
    :data:`CHANGE_KINDS` - repeated at the start of every file (context records), so only
    whether a value occurs counts."""
    out: dict = {}
    for k, payload in _comparable_records(home, *more):
        out[k] = 1 if k[1] == "values" else payload
    return out


def timed_record_counts(home: Path, *more: Path) -> dict:
    """How many times each :data:`TIMED_KINDS` record (kind, key, t_ms) is in the batch files
    of :func:`downlink`."""
    counts: dict = {}
    for k, _ in _comparable_records(home, *more):
        if k[1] != "values":
            counts[k] = counts.get(k, 0) + 1
    return counts


def _comparable_records(home: Path, *more: Path):
    from pygnc.formats import batch as fb

    files = [*(home / "pygnc_batches").glob("batch_*.bin"), *(f for d in more for f in d.glob("batch_*.bin"))]
    for f in sorted(files, key=lambda p: p.name):
        for r in fb.decode_batch(f.read_bytes()).records:
            kind = r.kind
            if kind is None:
                continue
            if kind.name in CHANGE_KINDS:
                yield (kind.name, "values", r.payload), r.payload
            elif kind.name in TIMED_KINDS:
                values = kind.unpack(r.payload)
                if values.get("flags", 0) & 1 and kind.name in ("orbit", "attitude", "formation"):
                    continue  # propagated to "now"
                yield (kind.name, kind.key_of(values), fb.record_time_ms(r.t_sc_s)), r.payload


def compare_downlinks(reference: dict, other: dict) -> dict:
    """Per kind: records of *reference* missing from *other*, records only in *other*, and
    records at the same (kind, key, time) whose payloads differ."""
    out: dict = {}
    for k in set(reference) | set(other):
        c = out.setdefault(k[0], {"records": 0, "missing": 0, "extra": 0, "differ": 0})
        if k in reference:
            c["records"] += 1
        if k not in other:
            c["missing"] += 1
        elif k not in reference:
            c["extra"] += 1
        elif reference[k] != other[k]:
            c["differ"] += 1
    return out


def batch_end_sc(scenario: Path) -> tuple[float, float]:
    """(first, last) spacecraft time of a scenario's sensor samples."""
    from pygnc.formats.sense import decode_sense

    t = decode_sense((scenario / "sense.bin").read_bytes()).sensors["t_sc_s"]
    return float(t[0]), float(t[-1])


def estimators_done(st: dict, t_last: float, n_peers: int) -> bool:
    """The batch is processed: ``batch_done`` and every estimator has published an estimate
    after the batch's last sample (only after ``batch_end``: all its sample estimates are out)."""
    from pygnc.formats import status as S

    def after(x):
        return isinstance(x, float) and x == x and x > t_last

    if not st["flags"] & S.FLAG_BATCH_DONE or not after(st["orbit_t_sc_s"]) or not after(st["att_t_sc_s"]):
        return False
    peers = [st[f"peer{k}_t_sc_s"] for k in range(S.MAX_PEERS) if st[f"peer{k}_id"]]
    return len(peers) >= n_peers and all(after(x) for x in peers)
