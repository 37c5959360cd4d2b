"""``python -m ground host``: drive pygnc on the Pi's serial console as the PyCubed does.

    python -m ground host /dev/ttyUSB0 --user pi --upload SCENARIO --main ~/pygnc/main.py
    python -m ground host --shell --upload data/sample --stream data/sample --stream-from-s 120 \\
        --batch-until-s 120 --rate 10 --main flight/main.py --python .venv/bin/python

Steps (each printed as it happens, then a summary): get a shell (log in if asked) and check
``whoami``; upload ``sense.bin`` and the range files by ``base64 -d`` with the size and
SHA-256 read back; launch ``main.py <timeout> <spacecraft time>``; wait for pygnc's HEL
frame and set the estimate cadence; optionally stream a scenario live (real or
accelerated time), optionally with one bad frame of each kind; show the estimate frames as
they arrive (a progress line); ask for the status (STA); stop with Ctrl-C and time the
stop - a few seconds after the start or the stream, or once pygnc has processed
everything (``--until-processed``) - or wait for pygnc's own timeout; read back and decode ``pygnc_status.bin`` and
``pygnc_info.txt``.  Exit status 0 when every step worked and main.py exited 0, 1
otherwise, 2 for a usage error.
"""

from __future__ import annotations

import json
import math
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pygnc.config import Config, Paths
from pygnc.formats import stream as fs
from pygnc.formats.gps import decode_gps_segments
from pygnc.formats.settings import DecodeSettings
from pygnc.formats.status import ESTIMATE_QUALITY

from . import live
from .client import StreamClient, latency_summary, sigma3
from .session import HostError, ShellSession

#: The uplinked configuration's name in the Pi's home.
CONFIG_NAME = Paths(Path(".")).config_file.name

#: The long bad frame's default length: over pygnc's line limit (1024 bytes) and a
#: canonical terminal's (4095), and across a 115200-baud line in under a second.
LONG_LINE_BYTES = 8192


def default_args(**over):
    """The options of ``python -m ground host`` as an argparse Namespace (defaults, then
    *over*): for driving :func:`host_run` from Python (tests, benchmarks)."""
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args([])
    for k, v in over.items():
        if not hasattr(args, k):
            raise TypeError(f"no option {k!r}")
        setattr(args, k, v)
    return args


def add_arguments(p) -> None:
    p.add_argument(
        "port", nargs="?", help="serial device or pyserial URL (/dev/ttyUSB0, socket://HOST:PORT); omit with --shell"
    )
    p.add_argument("--baud", type=int, default=115200, help="serial line rate (default 115200)")
    p.add_argument(
        "--shell", action="store_true", help="a local shell on a pseudo-terminal instead of PORT (the Pi without a Pi)"
    )
    p.add_argument(
        "--home", type=Path, help="--shell: its HOME, an existing directory (default: a new temporary directory)"
    )
    p.add_argument(
        "--line-baud",
        type=int,
        default=115200,
        help="--shell: carry at most N/10 bytes/s each way, as a UART at N baud (default 115200; 0: unlimited)",
    )
    p.add_argument("--user", help="log in as USER if the console asks; check that whoami says USER")
    p.add_argument("--password-env", metavar="VAR", help="the login password, from environment variable VAR")
    p.add_argument(
        "--upload",
        type=Path,
        metavar="DIR",
        help="upload DIR/sense.bin, DIR/range/rng*.bin and DIR/pygnc_config.toml (if there)",
    )
    p.add_argument(
        "--batch-until-s",
        type=float,
        metavar="S",
        help="upload only the sense.bin records and ranges before S s after the scenario's start: "
        "the rest can be streamed",
    )
    p.add_argument(
        "--python",
        default="python3",
        help="the Pi's Python (default python3); with --shell a relative path is taken from the current "
        "directory, on a serial PORT from the Pi's home directory",
    )
    p.add_argument(
        "--main",
        default="~/pygnc/main.py",
        help="main.py on the Pi (default ~/pygnc/main.py); relative paths as for --python",
    )
    p.add_argument("--timeout-min", type=float, default=10.0, help="main.py's timeout, minutes (default 10)")
    p.add_argument(
        "--spacecraft-time-s",
        type=float,
        metavar="T",
        help="main.py's spacecraft time (default: the first streamed sample's, else the uploaded "
        "batch's last + 1 s, else the host's clock)",
    )
    p.add_argument("--stream", type=Path, metavar="DIR", help="stream DIR's measurements live once pygnc is up")
    p.add_argument(
        "--stream-from-s",
        type=float,
        default=0.0,
        metavar="S",
        help="stream from S s after the scenario's start (default 0)",
    )
    p.add_argument("--stream-for-s", type=float, default=math.inf, metavar="S", help="stream at most S s of data")
    p.add_argument("--rate", type=float, default=1.0, help="stream at RATE x real time (default 1)")
    p.add_argument(
        "--group-s",
        type=float,
        default=0.0,
        help="consecutive segments of one kind within this many seconds go in one frame (default 0)",
    )
    p.add_argument("--cadence-s", type=float, default=1.0, help="estimate frames every C s (default 1; 0: none)")
    p.add_argument(
        "--bad-frames",
        action="store_true",
        help="half-way through the stream, send one bad frame of each kind (CRC, truncated, unknown "
        "tag, bad payload, garbage, binary garbage, a long line)",
    )
    p.add_argument(
        "--long-line-bytes",
        type=int,
        default=LONG_LINE_BYTES,
        help=f"length of that long line (default {LONG_LINE_BYTES}: over pygnc's line limit and the "
        "terminal's; at 115200 baud every 11.5 kB takes a second)",
    )
    p.add_argument(
        "--run-s",
        type=float,
        default=3.0,
        help="Ctrl-C this long after the stream ends (or after the start without a stream; default 3)",
    )
    p.add_argument(
        "--ctrl-c-at-s",
        type=float,
        metavar="S",
        help="Ctrl-C S s after the stream starts, while it is still going (default: after it ends)",
    )
    p.add_argument(
        "--until-processed",
        action="store_true",
        help="Ctrl-C once pygnc has processed what it was given (asked by STA every second: the batch "
        "done and every estimate at or after the last measurement) instead of --run-s after the start",
    )
    p.add_argument("--no-ctrl-c", action="store_true", help="do not stop pygnc: wait for its own timeout")
    p.add_argument(
        "--tap",
        action="store_true",
        help="copy pygnc's frames (and the ranges sent) to a new pseudo-terminal, whose path is "
        "printed, for `python -m ground serve PATH`",
    )
    p.add_argument(
        "--status-every-s",
        type=float,
        default=0.0,
        metavar="S",
        help="ask for the status (STA) every S s while streaming (default 0: only at the end)",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="write the summary as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="show what the Pi prints besides frames")


def bad_frame_lines(long_line_bytes: int = LONG_LINE_BYTES, seed: int = 1) -> list[tuple[str, bytes, int]]:
    """(what, bytes, the ERR code pygnc answers with): one bad frame of each kind."""
    rng = random.Random(seed)
    good = fs.encode_frame(fs.SENSOR, 9000, bytes(30))
    flipped = bytearray(good)
    flipped[12] = ord("B") if flipped[12] != ord("B") else ord("C")
    # Binary garbage: any byte but the line ends and 0x03 (which is Ctrl-C: it would stop pygnc).
    binary = bytes(rng.choice([b for b in range(256) if b not in (0x03, 0x0A, 0x0D, 0x24)]) for _ in range(200))
    return [
        ("bad CRC", bytes(flipped), fs.ERR_BAD_CRC),
        ("truncated", good[: len(good) // 2] + b"\n", fs.ERR_MALFORMED),
        ("unknown tag", fs.encode_frame(b"XYZ", 9001, b"abc"), fs.ERR_UNKNOWN_TAG),
        ("bad payload length", fs.encode_frame(fs.SENSOR, 9002, bytes(29)), fs.ERR_BAD_PAYLOAD),
        ("text garbage", b"hello pygnc, this is not a frame\n", fs.ERR_MALFORMED),
        ("binary garbage", binary + b"\n", fs.ERR_MALFORMED),
        (f"a line of {long_line_bytes} bytes", b"A" * long_line_bytes + b"\n", fs.ERR_TOO_LONG),
    ]


class Printer:
    def __init__(self, verbose: bool):
        self.verbose = verbose
        self.progress_on = sys.stdout.isatty()
        self._last = 0.0
        self._shown = False

    def step(self, text: str) -> None:
        self._clear()
        print(text, flush=True)

    def pi(self, line: str) -> None:
        if self.verbose:
            self.step(line)

    def progress(self, text: str, force: bool = False) -> None:
        if not self.progress_on:
            return
        now = time.monotonic()
        if force or now - self._last >= 0.25:
            self._last = now
            sys.stdout.write("\r" + text[:150].ljust(150))
            sys.stdout.flush()
            self._shown = True

    def _clear(self) -> None:
        if self._shown:
            sys.stdout.write("\r" + " " * 150 + "\r")
            self._shown = False


def progress_text(c: StreamClient, t0: float) -> str:
    parts = [
        f"t+{time.monotonic() - t0:6.1f}s",
        "sent " + " ".join(f"{k}:{v}" for k, v in sorted(c.stats.sent.items())),
    ]
    o = c.latest.get(("orbit", None))
    if o is not None:
        parts.append(f"orbit @{o.t_sc_s:.0f} σ{sigma3(o.values['sigma_r_m']):.1f}m n{o.values['n_used']}")
    a = c.latest.get(("attitude", None))
    if a is not None:
        parts.append(f"att @{a.t_sc_s:.0f} σ{math.degrees(sigma3(a.values['sigma_att_rad'])):.2f}°")
    f = [e for (k, _), e in c.latest.items() if k == "formation"]
    if f:
        parts.append(f"formation {len(f)} peer(s)")
    if c.stats.errors:
        parts.append("ERR " + " ".join(f"{k}:{v}" for k, v in c.stats.errors.items()))
    return " | ".join(parts)


def _upload(session: ShellSession, args, printer: Printer, config: Config):
    """Upload what the scenario directory has for the Pi: sense.bin and the range files (up
    to --batch-until-s: the rest can be streamed) and the uplinked ``pygnc_config.toml``;
    (scenario start, last batch time, upload records)."""
    from ground.simulate.split import range_files

    scenario_t0 = None
    uploads = []
    batch_last = None
    if args.upload is None:
        return scenario_t0, batch_last, uploads
    src = args.upload
    if not (src / "sense.bin").is_file():
        raise HostError(f"{src}/sense.bin does not exist")
    scenario_t0 = live.first_time(src, config)
    if args.batch_until_s is not None:
        data = live.split_sense(src, scenario_t0 + args.batch_until_s, config)
    else:
        data = (src / "sense.bin").read_bytes()
    items = live.live_items(
        src, config, t_to_s=(scenario_t0 + args.batch_until_s) if args.batch_until_s is not None else math.inf
    )
    batch_last = max((i.t_sc_s for i in items), default=None)
    r = session.upload(data, "~/sense.bin")
    uploads.append(r.__dict__)
    printer.step(f"uploaded ~/sense.bin: {r.size} bytes in {r.seconds:.1f} s, sha256 {r.sha256[:16]}... verified")
    session.run("mkdir -p ~/range && rm -f ~/range/rng*.bin")
    if args.batch_until_s is None:
        ranges = (
            [(f.name, f.read_bytes()) for f in sorted((src / "range").glob("rng*.bin"))]
            if (src / "range").is_dir()
            else []
        )
    else:  # the range packets before the cut, in files as the host writes them
        t_cut = scenario_t0 + args.batch_until_s
        ranges = [(f"rng{n:05d}.bin", b) for n, b in enumerate(range_files(src / "range", -math.inf, t_cut))]
    for name, content in ranges:
        r = session.upload(content, f"~/range/{name}")
        uploads.append(r.__dict__)
        printer.step(f"uploaded ~/range/{name}: {r.size} bytes, verified")
    cfg = src / CONFIG_NAME
    if cfg.is_file():
        r = session.upload(cfg.read_bytes(), f"~/{CONFIG_NAME}")
        uploads.append(r.__dict__)
        printer.step(f"uploaded ~/{CONFIG_NAME}: {r.size} bytes, verified (pygnc checks it at start)")
    else:
        printer.step(f"no {CONFIG_NAME} in {src}: the Pi's own, if any, is left in place")
    return scenario_t0, batch_last, uploads


def _stream(client: StreamClient, frames, args, printer: Printer, settings: DecodeSettings | None):
    """Send *frames* at --rate (bad frames half-way with --bad-frames; stop early at
    --ctrl-c-at-s); (start time, bad frames sent, interrupted).  *settings*: what tells a
    valid fix (None: the defaults)."""
    t0 = time.monotonic()
    bad_sent = []
    interrupted = False
    if frames:
        rate = max(args.rate, 1e-6)
        bad_at = len(frames) // 2 if args.bad_frames else -1
        t_first = frames[0][0]
        printer.step(f"streaming {len(frames)} frames ({frames[-1][0] - t_first:.0f} s of data) at {rate:g}x")
        for k, (t, tag, payload) in enumerate(frames):
            due = t0 + (t - t_first) / rate
            if args.ctrl_c_at_s is not None:
                due = min(due, t0 + args.ctrl_c_at_s)
            while True:
                left = due - time.monotonic()
                if left <= 0:
                    break
                client.poll(min(left, 0.05))
                printer.progress(progress_text(client, t0))
            if args.ctrl_c_at_s is not None and time.monotonic() >= t0 + args.ctrl_c_at_s:
                interrupted = True
                printer.step(f"stream interrupted after {k} of {len(frames)} frames")
                break
            if k == bad_at:
                for what, line, code in bad_frame_lines(args.long_line_bytes):
                    try:
                        client.send_raw(line)
                    except HostError as exc:  # reported; the stream goes on
                        printer.step(f"bad frame '{what}' not sent whole: {exc}")
                        continue
                    bad_sent.append((what, fs.ERROR_CODES[code][0]))
                printer.step(f"sent {len(bad_sent)} bad frames: " + ", ".join(w for w, _ in bad_sent))
            if tag == fs.GPS:
                client.send_fix(
                    payload,
                    bool(decode_gps_segments(payload[:99], settings)["valid"][0]) if len(payload) == 99 else False,
                )
            else:
                client.send(tag, payload)
            client.poll(0.0)
        if not interrupted:
            printer.step(f"stream done in {time.monotonic() - t0:.1f} s")
    return t0, bad_sent, interrupted


def _read_back(session: ShellSession, summary: dict) -> None:
    """The status and info files the host reads after a run, into *summary*."""
    from pygnc.formats.status import StatusError, decode_status

    raw = session.read_file("~/pygnc_status.bin")
    summary["status"] = summary["status_full"] = None
    if raw is not None:
        try:
            summary["status_full"] = decode_status(raw)
            summary["status"] = _status_brief(summary["status_full"])
        except StatusError as exc:
            summary["status"] = {"error": str(exc)}
    info = session.read_file("~/pygnc_info.txt")
    summary["info"] = None if info is None else info.decode("utf-8", "replace")


def host_run(session: ShellSession, args, printer: Printer, config: Config | None = None) -> dict:
    """The whole sequence on an open session; the summary (raises HostError on failure)."""
    config = config or Config()
    summary: dict = {"ok": False}
    who = session.attach(args.user, os.environ.get(args.password_env) if args.password_env else None)
    summary["whoami"] = who
    printer.step(f"shell ready, whoami: {who}")

    scenario_t0, batch_last, uploads = _upload(session, args, printer, config)
    summary["uploads"] = uploads
    summary["batch_last_t_sc_s"] = batch_last

    # -- what to stream -----------------------------------------------------------------------------
    frames: list[tuple[float, bytes, bytes]] = []
    if args.stream is not None:
        s0 = live.first_time(args.stream, config)
        scenario_t0 = scenario_t0 if scenario_t0 is not None else s0
        t_from = s0 + args.stream_from_s
        items = live.live_items(args.stream, config, t_from_s=t_from, t_to_s=t_from + args.stream_for_s)
        frames = live.frames_of(items, args.group_s)
        if not frames:
            raise HostError(f"nothing to stream in {args.stream} from {args.stream_from_s} s")
    if args.spacecraft_time_s is not None:
        t_sc = args.spacecraft_time_s
    elif frames:
        t_sc = frames[0][0]
    elif batch_last is not None:
        t_sc = batch_last + 1.0
    else:
        t_sc = float(int(time.time()))

    # -- launch ---------------------------------------------------------------------------------------
    cmd = (
        f"cd ~ && {shlex.quote(args.python) if not args.python.startswith('~/') else args.python} "
        f"{args.main if args.main.startswith('~/') else shlex.quote(args.main)} {args.timeout_min:g} {t_sc:.0f}"
    )
    client = StreamClient(session)
    t_launch = session.start(cmd)
    printer.step(f"launched: {cmd}")
    try:
        _drive(session, client, args, printer, config, frames, t_launch, summary)
    except HostError:
        _stop_after_failure(session, printer)
        raise
    _read_back(session, summary)
    summary["ok"] = summary["stop"]["exit_status"] == 0 and summary["status"] is not None
    return summary


def _drive(
    session: ShellSession,
    client: StreamClient,
    args,
    printer: Printer,
    config: Config,
    frames: list,
    t_launch: float,
    summary: dict,
) -> None:
    """From the launch to main.py's exit: HEL, cadence, the stream, the stop; into *summary*."""
    try:
        hello = client.wait_hello(60.0)
    except HostError as exc:
        raise HostError(f"pygnc did not come up: {exc}") from None
    summary["hello"] = hello
    summary["start_to_hello_s"] = hello["t_rx_s"] - t_launch
    printer.step(
        f"pygnc up: run {hello['run']}, protocol {hello['version']}, HEL {summary['start_to_hello_s']:.2f} s "
        "after launch"
    )
    session.log = printer.pi
    result = client.set_cadence(args.cadence_s)
    if result != fs.ACK_OK:
        printer.step(f"cadence {args.cadence_s} s refused: {fs.ACK_RESULTS.get(result, result)}")

    # -- stream ------------------------------------------------------------------------------------------
    # Periodic STA only while pygnc surely runs: a frame typed after it ends is a shell command.
    client.status_every_s = args.status_every_s
    t0, bad_sent, interrupted = _stream(client, frames, args, printer, DecodeSettings.from_config(config))
    summary["bad_frames_sent"] = bad_sent
    summary["frames_streamed"] = len(frames)
    summary["stream_interrupted"] = interrupted
    status_now = None
    if not interrupted and args.until_processed:
        t_last = max([t for t, _, _ in frames[-1:]] + [summary["batch_last_t_sc_s"] or -math.inf])
        status_now = _wait_processed(client, t_last, args.timeout_min * 60.0 - 5.0, printer, t0)
        summary["processed"] = status_now is not None and processed(status_now, t_last)
        printer.step("pygnc has processed everything" if summary["processed"] else "not processed before the timeout")
    elif not interrupted:
        t_end = time.monotonic() + (args.run_s if not args.no_ctrl_c else 0.0)
        while time.monotonic() < t_end:
            client.poll(0.05)
            printer.progress(progress_text(client, t0))
        printer.progress(progress_text(client, t0), force=True)
        client.status_every_s = 0.0
        status_now = client.status_now()
    summary["counters"] = client.counters

    client.status_every_s = 0.0
    # -- stop -----------------------------------------------------------------------------------------------
    if args.no_ctrl_c:
        printer.step("waiting for pygnc's own timeout")
        rc, t_prompt = session.wait_prompt(args.timeout_min * 60.0 + 30.0)
        summary["stop"] = {"how": "timeout", "exit_status": rc}
    else:
        t_c = session.ctrl_c()
        rc, t_prompt = session.wait_prompt(15.0)
        summary["stop"] = {"how": "ctrl-c", "exit_status": rc, "seconds": t_prompt - t_c}
        printer.step(f"Ctrl-C: main.py exited with status {rc} after {t_prompt - t_c:.3f} s")
    client.poll(0.0)
    session.log = lambda line: None
    summary["bye"] = client.bye
    summary["stream"] = {
        "sent": dict(client.stats.sent),
        "segments_sent": dict(client.stats.segments_sent),
        "received": dict(client.stats.received),
        "errors": dict(client.stats.errors),
        "host_side_errors": dict(client.stats.host_side_errors),
        "seq_gaps": client.stats.seq_gaps,
        "echoes": client.stats.echoes,
        "fix_latency_s": client.stats.fix_latency_s,
        "estimates": {
            k: sum(1 for e in client.estimates if e.kind == k) for k in ("orbit", "attitude", "formation", "note")
        },
    }
    summary["status_during_run"] = _status_brief(status_now)
    summary["estimates"] = client.estimates


def processed(status: dict, t_last_s: float) -> bool:
    """Whether a status says pygnc has processed everything up to spacecraft time
    *t_last_s*: ``batch_done``, and the orbit, the attitude and every partner estimated so
    far have an epoch at or after it (a partner never estimated is not waited for)."""
    from pygnc.formats.status import FLAG_BATCH_DONE, MAX_PEERS

    epochs = [status["orbit_t_sc_s"], status["att_t_sc_s"]]
    epochs += [status[f"peer{k}_t_sc_s"] for k in range(MAX_PEERS) if status[f"peer{k}_id"]]
    epochs = [t for i, t in enumerate(epochs) if i < 2 or t == t]  # (NaN: never estimated)
    return bool(status["flags"] & FLAG_BATCH_DONE) and all(t == t and t >= t_last_s for t in epochs)


def _wait_processed(client: StreamClient, t_last_s: float, limit_s: float, printer: Printer, t0: float) -> dict | None:
    """STA every second until :func:`processed` (or *limit_s* from now); the last status."""
    t_end = time.monotonic() + max(limit_s, 1.0)
    status = None
    while time.monotonic() < t_end:
        status = client.status_now() or status
        if status is not None and processed(status, t_last_s):
            break
        t_next = time.monotonic() + 1.0
        while time.monotonic() < min(t_next, t_end):
            client.poll(0.05)
            printer.progress(progress_text(client, t0))
    return status


def _stop_after_failure(session: ShellSession, printer: Printer) -> None:
    """After a failure while main.py may still run: Ctrl-C and wait for the prompt, so
    pygnc stops as the host stops it (final status, every file complete), not by the end
    of its shell."""
    try:
        if session.prompt_status() is not None:
            return  # it has ended already
        session.ctrl_c()
        rc, _ = session.wait_prompt(15.0)
        printer.step(f"stopped pygnc with Ctrl-C after the failure: main.py exited with status {rc}")
    except HostError as exc:
        printer.step(f"could not stop pygnc after the failure: {exc}")


def _status_brief(s: dict | None) -> dict | None:
    if s is None:
        return None
    q = lambda k: ESTIMATE_QUALITY[s[k]] if 0 <= s[k] < len(ESTIMATE_QUALITY) else s[k]  # noqa: E731
    return {
        "run": s["run"],
        "seq": s["seq"],
        "t_sc_s": s["t_sc_s"],
        "flags": s["flag_names"],
        "orbit_quality": q("orbit_quality"),
        "orbit_t_sc_s": s["orbit_t_sc_s"],
        "attitude_quality": q("att_quality"),
        "fixes_valid": s["fixes_valid"],
    }


def print_summary(summary: dict, printer: Printer) -> None:
    st = summary.get("stream", {})
    lines = ["", "summary"]
    lines.append(
        f"  whoami {summary.get('whoami')}; uploads: "
        + (", ".join(f"{u['remote_path']} {u['size']} B" for u in summary.get("uploads", [])) or "none")
    )
    if "hello" in summary:
        lines.append(f"  pygnc run {summary['hello']['run']}: HEL {summary['start_to_hello_s']:.2f} s after launch")
    if st:
        lines.append(f"  sent {st['sent']} (segments {st['segments_sent']}); received {st['received']}")
        lines.append(
            f"  ERR frames {st['errors'] or 'none'}; unreadable lines here {st['host_side_errors'] or 'none'}"
            f"; pygnc frames missed {st['seq_gaps']}"
        )
        lines.append(
            f"  estimate frames {st['estimates']}; GPS fix -> orbit frame: {latency_summary(st['fix_latency_s'])}"
        )
    bye = summary.get("bye")
    if bye:
        lines.append("  pygnc's final counters: " + ", ".join(f"{k} {v}" for k, v in bye.items() if v))
    stop = summary.get("stop")
    if stop:
        lines.append(
            f"  stop: {stop['how']}, exit status {stop['exit_status']}"
            + (f", {stop['seconds']:.3f} s after Ctrl-C" if "seconds" in stop else "")
        )
    s = summary.get("status")
    lines.append(f"  final status: {s}")
    if summary.get("info"):
        lines.append("  info: " + summary["info"].strip().replace("\n", " / "))
    lines.append("  result: " + ("ok" if summary.get("ok") else "FAILED"))
    for line in lines:
        printer.step(line)


def resolve_local_paths(args) -> str | None:
    """--shell runs main.py on this machine, after ``cd ~`` into the shell's own HOME: a
    relative --main, or --python with a slash, is made absolute against the current
    directory (where the user typed it), and both must exist; a bare --python such as
    ``python3`` is looked up on PATH, a path starting with ``~`` is the shell's HOME.
    --home must be an existing directory (made absolute likewise).  The problem, or None."""
    import shutil

    if args.home is not None:  # the shell's HOME: an existing directory, absolute (`cd ~` is run in it)
        if not args.home.is_dir():
            return f"--home {args.home}: {'not a directory' if args.home.exists() else 'no such directory'}"
        args.home = Path(os.path.abspath(args.home))
    for name in ("python", "main"):
        value = getattr(args, name)
        if value.startswith("~"):
            continue  # the shell's HOME: checked there
        if name == "python" and "/" not in value:
            if shutil.which(value) is None:
                return f"--python {value}: not found on PATH"
            continue
        path = Path(os.path.abspath(value))
        if not path.is_file():
            return f"--{name} {value}: no such file ({path})"
        if name == "python" and not os.access(path, os.X_OK):
            return f"--python {value}: not executable ({path})"
        setattr(args, name, str(path))
    return None


def run(args) -> int:
    if args.shell == bool(args.port):
        print("ground host: give a serial PORT, or --shell for a local shell (not both)", file=sys.stderr)
        return 2
    for name in ("upload", "stream"):
        d = getattr(args, name)
        if d is not None and not d.is_dir():
            print(f"ground host: --{name} {d}: not a directory", file=sys.stderr)
            return 2
    if args.rate <= 0 or args.cadence_s < 0 or args.status_every_s < 0:
        print("ground host: --rate must be > 0, --cadence-s and --status-every-s >= 0", file=sys.stderr)
        return 2
    if args.until_processed and (args.no_ctrl_c or args.ctrl_c_at_s is not None):
        print(
            "ground host: --until-processed stops pygnc itself: not with --no-ctrl-c or --ctrl-c-at-s", file=sys.stderr
        )
        return 2
    if args.long_line_bytes < 1:
        print("ground host: --long-line-bytes must be >= 1", file=sys.stderr)
        return 2
    if args.home is not None and not args.shell:
        print("ground host: --home is the --shell's HOME (on a serial PORT the Pi has its own)", file=sys.stderr)
        return 2
    if args.shell:
        problem = resolve_local_paths(args)
        if problem:
            print(f"ground host: {problem}", file=sys.stderr)
            return 2
    printer = Printer(args.verbose)
    import serial  # flight dependency, always there

    shell = made_home = None
    try:
        if args.shell:
            from .shellpty import LocalShell

            home = args.home.absolute() if args.home else Path(tempfile.mkdtemp(prefix="pygnc-host-"))
            made_home = home if args.home is None else None
            shell = LocalShell(home=home, baud=args.line_baud or None)
            printer.step(
                f"local shell on {shell.port} (HOME {home}, line "
                f"{'unlimited' if not args.line_baud else f'{args.line_baud} baud'})"
            )
            url = shell.port
        else:
            url = args.port
        try:
            link = serial.serial_for_url(url, baudrate=args.baud, timeout=0.1, write_timeout=10)
        except (serial.SerialException, ValueError) as exc:
            print(f"ground host: cannot open {url}: {exc}", file=sys.stderr)
            return 2 if not args.shell else 1
        session = ShellSession(link, log=printer.pi)
        if args.tap:
            from .tap import Tap

            tap = session.tap = Tap()
            printer.step(f"tap: {tap.path}   (python -m ground serve {tap.path})")
        try:
            summary = host_run(session, args, printer)
        except HostError as exc:
            printer.step(f"ground host: {exc}")
            return 1
        finally:
            link.close()
            if session.tap is not None:
                summary_tap = {
                    "path": session.tap.path,
                    "bytes_written": session.tap.bytes_written,
                    "bytes_dropped": session.tap.bytes_dropped,
                }
                session.tap.close()
        if session.tap is not None:
            summary["tap"] = summary_tap
            printer.step(f"tap: {summary_tap['bytes_written']} bytes copied, {summary_tap['bytes_dropped']} dropped")
        print_summary(summary, printer)
        if args.json:
            out = {k: v for k, v in summary.items() if k != "estimates"}
            out["estimates"] = [e.__dict__ for e in summary["estimates"]]
            args.json.write_text(json.dumps(out, indent=1, default=str))
        return 0 if summary["ok"] else 1
    finally:
        if shell is not None:
            shell.close()
        if made_home is not None:  # the temporary HOME of --shell (--home DIR keeps one)
            shutil.rmtree(made_home, ignore_errors=True)
            printer.step(f"removed the local shell's HOME {made_home} (--home DIR keeps one)")
