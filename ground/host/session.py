"""The host's side of the Pi's serial console: log in, run commands, move files, watch frames.

What the PyCubed does over its UART, as the flight team's emulator did it: open the
console, log in if a ``login:`` prompt shows (else use the shell that is there), check
``whoami``, type ``base64 -d > FILE``, the file's base64 text and EOT to upload, launch
``main.py``, and type Ctrl-C to stop it.  Everything goes through one pyserial object
(any URL ``serial.serial_for_url`` takes: ``/dev/ttyUSB0``, a pseudo-terminal,
``socket://HOST:PORT``).

The shell is set up once for machine reading: echo off (``stty -echo``), line editing off,
and a prompt that carries the last exit status, ``<PGH:$?> `` - the text typed never
matches it (``$?`` is only expanded in the prompt), so a prompt seen is a prompt.  Every
byte received is also fed to a :class:`~pygnc.formats.stream.FrameReader` with the time
it arrived, so while pygnc runs its frames come out of the same pump.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
import time
from dataclasses import dataclass

import serial

from pygnc.formats import stream as fs

PROMPT = "<PGH:$?> "
PROMPT_RE = re.compile(rb"<PGH:(\d+)> ")
#: What a prompt of an unknown shell looks like before we set ours: ends in $ # > or %.
ANY_PROMPT_RE = re.compile(rb"[$#>%]$")
LOGIN_RE = re.compile(rb"login:$", re.I)
PASSWORD_RE = re.compile(rb"password:$", re.I)
#: base64 text per typed line (what `base64` itself writes); far below a canonical line's 4095.
B64_LINE = 76
EOT = b"\x04"
CTRL_C = b"\x03"
#: Text kept for prompt matching, bytes.
TEXT_KEEP = 256 * 1024
#: Bytes handed to the link per write call at most: one chunk crosses even a 9600-baud
#: line in about a second, far inside the link's write timeout, and what the Pi sends is
#: read between chunks (so a long write never leaves pygnc's output backed up).
WRITE_CHUNK = 1024


class HostError(RuntimeError):
    """Something on the Pi's side is not as expected (the message says what)."""


@dataclass
class Received:
    t_mono_s: float
    item: object  # fs.Frame, fs.FrameError or fs.Noise


@dataclass
class UploadResult:
    remote_path: str
    size: int
    sha256: str
    seconds: float
    verified: bool


class ShellSession:
    """A shell on the far end of *link* (a pyserial object: ``read``, ``write``,
    ``in_waiting``, ``timeout``).  *log*: a callable taking one line of text (what the Pi
    printed that is not a frame, and what we do), or None."""

    def __init__(self, link, log=None, line_rate: int | None = None):
        self.link = link
        self.log = log or (lambda line: None)
        self.text = bytearray()  # everything received, for prompts (bounded)
        self.cursor = 0  # prompt search starts here
        self.frames = fs.FrameReader(fs.PYGNC_TAGS, max_line=64 * 1024, noise_ok=True)
        self.received: list[Received] = []
        self.bytes_in = self.bytes_out = 0
        #: Bytes per second the host writes at most (None: as fast as the link takes them).
        self.line_rate = line_rate
        self._next_write = 0.0
        #: A :class:`~ground.host.tap.Tap` (or None) that gets a copy of what pygnc sends
        #: and of the host's frames in :data:`ground.host.tap.HOST_TAGS`.
        self.tap = None

    # -- bytes ----------------------------------------------------------------------------------
    def write(self, data: bytes) -> float:
        """Write *data* in chunks of at most :data:`WRITE_CHUNK` bytes (paced to
        ``line_rate`` if set), reading what arrives between them; the time the last write
        returned.  HostError if the line takes no chunk within the link's write timeout
        (a stalled line) or the port fails; the bytes written so far are counted."""
        view = memoryview(bytes(data))
        for i in range(0, max(len(view), 1), WRITE_CHUNK):
            chunk = view[i : i + WRITE_CHUNK]
            if self.line_rate:
                now = time.monotonic()
                if self._next_write > now:
                    time.sleep(self._next_write - now)
                self._next_write = max(now, self._next_write) + len(chunk) / self.line_rate
            try:
                self.link.write(chunk)
            except serial.SerialTimeoutException:
                raise HostError(
                    f"the serial line took no more bytes within its write timeout "
                    f"({getattr(self.link, 'write_timeout', None)} s): {i} of {len(view)} bytes of "
                    f"this write went out (is the line stalled, or flow-controlled?)"
                ) from None
            except (serial.SerialException, OSError) as exc:
                raise HostError(f"the serial line failed after {i} of {len(view)} bytes: {exc}") from None
            self.bytes_out += len(chunk)
            if i + WRITE_CHUNK < len(view):
                self.pump(0.0)
        return time.monotonic()

    def pump(self, timeout_s: float = 0.0) -> int:
        """Read what arrives within *timeout_s* (returns at the first bytes); bytes read."""
        try:
            self.link.timeout = max(0.0, timeout_s)
            data = self.link.read(1)
            if not data:
                return 0
            n = self.link.in_waiting
            if n:
                data += self.link.read(n)
        except (serial.SerialException, OSError) as exc:
            raise HostError(f"reading the serial line failed: {exc}") from None
        t = time.monotonic()
        self.bytes_in += len(data)
        if self.tap is not None:
            self.tap.write(data)
        self.text += data
        if len(self.text) > 2 * TEXT_KEEP:
            cut = len(self.text) - TEXT_KEEP
            del self.text[:cut]
            self.cursor = max(0, self.cursor - cut)
        for item in self.frames.feed(data):
            self.received.append(Received(t, item))
            if isinstance(item, fs.Noise):
                self.log("pi| " + item.line.decode("utf-8", "replace"))
        return len(data)

    def take(self) -> list[Received]:
        """Frames, errors and noise received since the last call."""
        out, self.received = self.received, []
        return out

    def expect(self, regex: re.Pattern, timeout_s: float) -> re.Match:
        """Wait for *regex* in the text received after the cursor; the cursor moves past it."""
        t_end = time.monotonic() + timeout_s
        while True:
            m = regex.search(self.text, self.cursor)
            if m:
                self.cursor = m.end()
                return m
            left = t_end - time.monotonic()
            if left <= 0:
                tail = bytes(self.text[max(self.cursor, len(self.text) - 300) :]).decode("utf-8", "replace")
                raise HostError(
                    f"timed out after {timeout_s:.1f} s waiting for {regex.pattern!r}; last output: {tail!r}"
                )
            self.pump(min(left, 0.05))

    def mark(self) -> None:
        """Forget what was received so far for prompt matching."""
        self.pump(0.0)
        self.cursor = len(self.text)

    # -- shell ----------------------------------------------------------------------------------
    def attach(self, user: str | None = None, password: str | None = None, timeout_s: float = 10.0) -> str:
        """Get to a shell and set it up (log in first if a login prompt shows); returns
        ``whoami``.  HostError if *user* is given and ``whoami`` says otherwise."""
        self.write(b"\n")
        t_end = time.monotonic() + timeout_s
        state = "start"
        while True:
            if time.monotonic() > t_end:
                raise HostError(
                    f"no shell prompt within {timeout_s:.0f} s (is a program running in the "
                    f"foreground? last output: {bytes(self.text[-200:])!r})"
                )
            self.pump(0.2)
            tail = bytes(self.text[-200:]).rstrip()
            if PROMPT_RE.search(self.text) or ANY_PROMPT_RE.search(tail):
                break
            if LOGIN_RE.search(tail) and state != "user":
                if not user:
                    raise HostError("the console asks for a login and no --user was given")
                self.text.clear()
                self.cursor = 0
                self.write(user.encode() + b"\n")
                state = "user"
            elif PASSWORD_RE.search(tail) and state == "user":
                if password is None:
                    raise HostError("the console asks for a password and none was given (--password-env)")
                self.text.clear()
                self.cursor = 0
                self.write(password.encode() + b"\n")
                state = "password"
        self.mark()
        self.write(
            b"stty -echo; set +o emacs +o vi -o ignoreeof 2>/dev/null; unset PROMPT_COMMAND; PS2=''; PS1='"
            + PROMPT.encode()
            + b"'\n"
        )
        self.expect(PROMPT_RE, timeout_s)
        who = self.run("whoami", timeout_s).strip()
        if user and who != user:
            raise HostError(f"whoami says {who!r}, expected {user!r}")
        return who

    def run(self, command: str, timeout_s: float = 30.0, check: bool = True) -> str:
        """Run *command*, return its output (``\\r\\n`` -> ``\\n``); HostError if it exits
        non-zero and *check*."""
        rc, out = self.run_rc(command, timeout_s)
        if check and rc != 0:
            raise HostError(f"{command!r} exited with {rc}: {out.strip()[-300:]!r}")
        return out

    def run_rc(self, command: str, timeout_s: float = 30.0) -> tuple[int, str]:
        self.mark()
        start = self.cursor
        self.write(command.encode() + b"\n")
        m = self.expect(PROMPT_RE, timeout_s)
        out = bytes(self.text[start : m.start()]).replace(b"\r\n", b"\n").decode("utf-8", "replace")
        return int(m.group(1)), out

    def start(self, command: str) -> float:
        """Type *command* and return at once (a foreground program such as main.py); the time it was sent."""
        self.mark()
        self.take()
        return self.write(command.encode() + b"\n")

    def wait_prompt(self, timeout_s: float) -> tuple[int, float]:
        """(exit status of the foreground program, when its prompt came)."""
        m = self.expect(PROMPT_RE, timeout_s)
        return int(m.group(1)), time.monotonic()

    def prompt_status(self) -> int | None:
        """The exit status shown by a prompt received after the cursor (the foreground
        program has ended), or None; the cursor stays."""
        self.pump(0.0)
        m = PROMPT_RE.search(self.text, self.cursor)
        return None if m is None else int(m.group(1))

    def console_tail(self, lines: int = 12) -> str:
        """The last *lines* lines the console showed after the cursor (frames and our
        prompts left out), as indented text for a message."""
        text = PROMPT_RE.sub(b"\n", bytes(self.text[self.cursor :])).decode("utf-8", "replace")
        keep = [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n") if ln.strip() and not ln.startswith("$")]
        return "\n".join("    " + ln for ln in keep[-lines:]) or "    (nothing)"

    def ctrl_c(self) -> float:
        return self.write(CTRL_C)

    # -- files ------------------------------------------------------------------------------------
    def upload(self, data: bytes, remote_path: str, timeout_s: float | None = None) -> UploadResult:
        """Put *data* at *remote_path* (``~`` allowed) by ``base64 -d``, verify size and
        SHA-256 read back, then move it into place (the file appears whole or not at all)."""
        t0 = time.monotonic()
        remote = _shell_path(remote_path)
        tmp = _shell_path(_tmp_name(remote_path))
        if timeout_s is None:  # 4/3 base64 expansion at the line rate, or a generous default
            timeout_s = 30.0 + (len(data) * 4 / 3 / (self.line_rate or 5000.0))
        self.mark()
        # The data is typed only once the file could be created: otherwise the shell itself
        # would read it as commands (and the EOT would end the shell).
        self.write(
            f"{{ : > {tmp}; }} 2>/dev/null && {{ echo PGH_READY_$((40+2)); base64 -d > {tmp}; }} "
            f"|| echo PGH_FAILED_$((40+2))\n".encode()
        )
        m = self.expect(re.compile(rb"PGH_(READY|FAILED)_42"), 10.0)
        if m.group(1) == b"FAILED":
            self.expect(PROMPT_RE, 10.0)
            raise HostError(f"cannot create {remote_path} on the Pi (no such directory, or not writable)")
        text = base64.b64encode(data)
        for i in range(0, len(text), B64_LINE):
            self.write(text[i : i + B64_LINE] + b"\n")
            self.pump(0.0)
        self.write(EOT)
        m = self.expect(PROMPT_RE, timeout_s)
        if int(m.group(1)) != 0:
            raise HostError(f"base64 -d > {remote_path} failed with status {m.group(1).decode()}")
        out = self.run(f"wc -c < {tmp}; sha256sum < {tmp}")
        words = out.split()
        size, digest = (int(words[0]), words[1]) if len(words) >= 2 and words[0].isdigit() else (-1, "")
        want = hashlib.sha256(data).hexdigest()
        if size != len(data) or digest != want:
            self.run_rc(f"rm -f {tmp}")
            raise HostError(
                f"upload of {remote_path} does not verify: {size} bytes, sha256 {digest[:16]}... "
                f"(sent {len(data)} bytes, {want[:16]}...)"
            )
        self.run(f"mv -f {tmp} {remote}")
        return UploadResult(remote_path, size, digest, time.monotonic() - t0, True)

    def read_file(self, remote_path: str, timeout_s: float = 60.0) -> bytes | None:
        """The bytes of *remote_path* (base64 over the console), None if it does not exist."""
        rc, out = self.run_rc(f"base64 < {_shell_path(remote_path)}", timeout_s)
        if rc != 0:
            return None
        try:
            return base64.b64decode("".join(out.split()), validate=True)
        except ValueError as exc:
            raise HostError(f"reading {remote_path}: the base64 text did not decode ({exc})") from None

    def send_frame(self, tag: bytes, seq: int, payload: bytes = b"") -> float:
        line = fs.encode_frame(tag, seq, payload)
        t = self.write(line)
        if self.tap is not None:
            from .tap import HOST_TAGS

            if tag in HOST_TAGS:
                self.tap.write(line)
        return t


def _shell_path(path: str) -> str:
    """*path* for the shell: a leading ``~/`` stays unquoted (so the shell expands it)."""
    if path == "~":
        return "~"
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


def _tmp_name(path: str) -> str:
    head, _, name = path.rpartition("/")
    return (head + "/" if head else "") + f".{name}.pgh-upload"
