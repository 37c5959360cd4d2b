"""The host emulator (python -m ground host) against a real bash in a pseudo-terminal with
HOME in a temporary directory, driving the real flight tree: log in to the shell, check
whoami, upload by base64 with verification, a batch run ended by pygnc's own timeout, and a
live stream of the sample scenario after its first two minutes - estimates checked
against the truth, one bad frame of each kind, Ctrl-C while the stream is still going."""

import getpass
import math
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import serial
from flight_harness import REPO

from ground.host import live
from ground.host.cli import Printer, bad_frame_lines, default_args, host_run
from ground.host.session import HostError, ShellSession
from ground.host.shellpty import LocalShell
from pygnc.formats import stream as fs
from pygnc.timebase import gps_from_utc_unix

SAMPLE = REPO / "data" / "sample_5min"
FLIGHT_MAIN = str(REPO / "flight" / "main.py")


@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    """bash on a pseudo-terminal (no line-rate limit: the tests need not wait for 115200
    baud), the host's session on its serial side, already attached."""
    home = tmp_path_factory.mktemp("pi_home")
    sh = LocalShell(home=home)
    link = serial.serial_for_url(sh.port, baudrate=115200, timeout=0.1, write_timeout=10)
    session = ShellSession(link)
    who = session.attach(timeout_s=20)
    yield sh, session, home, who
    link.close()
    sh.close()


def _args(**over):
    return default_args(python=sys.executable, main=FLIGHT_MAIN, **over)


def test_attach_checks_whoami(shell):
    sh, session, home, who = shell
    assert who == getpass.getuser()
    assert session.run("echo $HOME").strip() == str(home)
    with pytest.raises(HostError, match="whoami says"):
        session.attach(user="not-" + who)
    assert session.attach(user=who) == who  # and the shell is still usable


def test_upload_is_verified_and_atomic(shell):
    _, session, home, _ = shell
    data = bytes(range(256)) * 40 + b"\r\n\x04\x03" * 10  # every byte value, EOT and Ctrl-C included
    r = session.upload(data, "~/blob.bin")
    assert r.verified and r.size == len(data) and (home / "blob.bin").read_bytes() == data
    assert not list(home.glob(".*pgh-upload"))  # the temporary name is gone
    assert session.read_file("~/blob.bin") == data
    assert session.read_file("~/no-such-file") is None
    with pytest.raises(HostError, match="cannot create"):
        session.upload(b"x", "~/no-such-dir/f.bin")


def test_batch_run_ends_by_its_own_timeout_through_the_command_line(tmp_path, capsys):
    """The whole command, with its own shell behind a 115200-baud line: upload, launch, the
    run ends by main.py's timeout (0.1 min), status and info read back, summary as JSON."""
    import json

    from ground.__main__ import main as ground_main

    home, out = tmp_path / "pi", tmp_path / "summary.json"
    home.mkdir()
    rc = ground_main(
        [
            "host",
            "--shell",
            "--home",
            str(home),
            "--upload",
            str(SAMPLE),
            "--timeout-min",
            "0.1",
            "--no-ctrl-c",
            "--cadence-s",
            "0.5",
            "--python",
            sys.executable,
            "--main",
            FLIGHT_MAIN,
            "--json",
            str(out),
            "--tap",
            "--status-every-s",
            "0.2",
        ]
    )
    printed = capsys.readouterr().out
    assert rc == 0, printed
    # --tap: a pty got a copy of what pygnc sent (no reader here: what did not fit was dropped)
    assert "tap: /dev/pts/" in printed
    tap = json.loads(out.read_text())["tap"]
    assert tap["bytes_written"] > 0 and tap["bytes_written"] + tap["bytes_dropped"] > 1000
    s = json.loads(out.read_text())
    assert s["ok"] and s["stop"] == {"how": "timeout", "exit_status": 0}
    assert [u["remote_path"] for u in s["uploads"]] == ["~/sense.bin", "~/range/rng00000.bin", "~/pygnc_config.toml"]
    assert (home / "pygnc_config.toml").read_bytes() == (SAMPLE / "pygnc_config.toml").read_bytes()
    assert (home / "sense.bin").read_bytes() == (SAMPLE / "sense.bin").read_bytes()
    st = s["status_full"]
    assert {"stopping", "batch_done", "clock_mapped"} <= set(st["flag_names"]) and st["fixes_valid"] == 12
    assert s["info"] and "STOP" in s["info"]
    assert s["stream"]["estimates"]["orbit"] >= 2 and s["bye"]["estimates_out"] >= 4
    assert s["status_during_run"]["run"] == st["run"]
    assert "result: ok" in printed and "whoami" in printed


def test_until_processed_stops_once_every_estimate_has_reached_the_batch_end(shell):
    """--until-processed: Ctrl-C as soon as the status (STA) says the batch is done and the
    orbit and the attitude are estimated at or after its last measurement - not by a
    guessed --run-s, not by pygnc's own timeout."""
    _, session, _, _ = shell
    s = host_run(session, _args(upload=SAMPLE, until_processed=True, timeout_min=5.0), Printer(False))
    assert s["ok"] and s["processed"] and s["stop"]["how"] == "ctrl-c" and s["stop"]["exit_status"] == 0
    t_last = s["batch_last_t_sc_s"]
    final = s["status_full"]
    assert final["batch_t_sc_last_s"] == pytest.approx(t_last)
    assert final["orbit_t_sc_s"] >= t_last and final["att_t_sc_s"] >= t_last
    during = s["status_during_run"]
    assert "batch_done" in during["flags"] and during["run"] == final["run"]


def test_processed_reads_the_status_as_documented():
    from ground.host.cli import processed
    from pygnc.formats import status as S

    st = {"flags": S.FLAG_BATCH_DONE, "orbit_t_sc_s": 100.0, "att_t_sc_s": 101.0}
    st |= {f"peer{k}_id": 0 for k in range(S.MAX_PEERS)} | {f"peer{k}_t_sc_s": math.nan for k in range(S.MAX_PEERS)}
    assert processed(st, 100.0) and not processed(st, 100.5)
    assert not processed({**st, "flags": 0}, 100.0)  # ingest still publishing
    assert not processed({**st, "att_t_sc_s": math.nan}, 0.0)  # no attitude yet
    st |= {"peer0_id": 0x4B, "peer0_t_sc_s": 99.0, "peer1_id": 0x4C}
    assert not processed(st, 100.0)  # a partner behind
    assert processed({**st, "peer0_t_sc_s": 100.0}, 100.0)  # 0x4C never estimated: not waited for


def test_command_line_usage_errors_exit_2(tmp_path, capsys):
    from ground.__main__ import main as ground_main

    assert ground_main(["host"]) == 2
    assert ground_main(["host", "/dev/ttyUSB9", "--shell"]) == 2
    assert ground_main(["host", "--shell", "--upload", str(tmp_path / "none")]) == 2
    assert ground_main(["host", str(tmp_path / "no-such-port")]) == 2
    assert ground_main(["host", "--shell", "--status-every-s", "-1"]) == 2
    assert ground_main(["host", "--shell", "--until-processed", "--no-ctrl-c"]) == 2
    err = capsys.readouterr().err
    assert "--until-processed stops pygnc itself" in err
    assert "give a serial PORT" in err and "not a directory" in err and "cannot open" in err


def test_relative_paths_with_shell_are_taken_from_here(tmp_path, monkeypatch, capsys):
    """--shell launches after `cd ~` (the shell's own HOME): a relative --python or --main
    is made absolute first, and one that does not exist is a usage error naming it."""
    from ground.__main__ import main as ground_main
    from ground.host.cli import resolve_local_paths

    (tmp_path / "bin").mkdir()
    py = tmp_path / "bin" / "py"
    py.write_text("#!/bin/sh\n")
    py.chmod(0o755)
    (tmp_path / "m.py").write_text("")
    monkeypatch.chdir(tmp_path)
    args = default_args(python="bin/py", main="m.py")
    assert resolve_local_paths(args) is None
    assert (args.python, args.main) == (str(py), str(tmp_path / "m.py"))
    args = default_args(python="python3", main="~/pygnc/main.py")
    assert resolve_local_paths(args) is None and (args.python, args.main) == ("python3", "~/pygnc/main.py")
    assert ground_main(["host", "--shell", "--python", ".venv/bin/python"]) == 2
    assert ground_main(["host", "--shell", "--python", sys.executable, "--main", "flight/main.py"]) == 2
    assert ground_main(["host", "--shell", "--python", "no-such-python-here"]) == 2
    err = capsys.readouterr().err
    assert f"--python .venv/bin/python: no such file ({tmp_path}/.venv/bin/python)" in err
    assert f"--main flight/main.py: no such file ({tmp_path}/flight/main.py)" in err
    assert "not found on PATH" in err


def test_a_home_that_is_no_directory_is_a_usage_error(tmp_path):
    """``host --shell --home`` a missing directory or a file: one line and exit 2 before any
    shell starts (they were FileNotFoundError / NotADirectoryError tracebacks); a relative
    one is made absolute (the shell runs `cd ~` in it)."""
    import subprocess

    from ground.host.cli import resolve_local_paths

    f = tmp_path / "a-file"
    f.write_text("")
    for home, why in ((tmp_path / "missing", "no such directory"), (f, "not a directory")):
        p = subprocess.run(
            [sys.executable, "-m", "ground", "host", "--shell", "--home", str(home), "--main", FLIGHT_MAIN],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        assert p.returncode == 2 and p.stderr == f"ground host: --home {home}: {why}\n", p.stderr
    p = subprocess.run(
        [sys.executable, "-m", "ground", "host", "/dev/ttyUSB9", "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and "--home is the --shell's HOME" in p.stderr and "Traceback" not in p.stderr
    args = default_args(python="python3", main=FLIGHT_MAIN, home=Path(tmp_path.name))
    cwd = os.getcwd()
    os.chdir(tmp_path.parent)
    try:
        assert resolve_local_paths(args) is None and args.home == tmp_path
    finally:
        os.chdir(cwd)


def test_a_command_that_ends_at_once_is_reported_at_once(shell):
    """main.py that cannot start: the prompt's exit status and what the console printed,
    as text, as soon as the prompt is back (not after the 60-s wait for HEL)."""
    _, session, home, _ = shell
    import time

    args = default_args(python=sys.executable, main=str(home / "no-such-main.py"))
    t0 = time.monotonic()
    with pytest.raises(HostError) as err:
        host_run(session, args, Printer(False))
    assert time.monotonic() - t0 < 20.0
    text = str(err.value)
    assert "exited with status 2 before pygnc came up" in text and "can't open file" in text
    assert "\\r" not in text and "\\n" not in text  # lines, not an escaped dump
    assert session.run("echo still-here").strip() == "still-here"


def test_a_long_write_crosses_a_slow_line_in_chunks(tmp_path):
    """A write far longer than a 115200-baud line carries within the link's write timeout
    goes out in chunks, reading between them: no timeout, and the shell still answers."""
    with LocalShell(home=tmp_path, baud=115200) as sh:
        # A write timeout with room for a busy machine's stalls (the relay thread once took
        # over 2 s to drain one 1-KiB chunk while the suite ran beside two other jobs).
        link = serial.serial_for_url(sh.port, baudrate=115200, timeout=0.1, write_timeout=10)
        try:
            session = ShellSession(link)
            session.attach(timeout_s=20)
            session.start("wc -c")
            session.write(b"A" * 160 * 1024 + b"\n")  # ~14 s at 11.5 kB/s: one write would time out
            session.write(b"\x04")
            rc, _ = session.wait_prompt(30.0)
            assert rc == 0 and session.text.endswith(b"4096\r\n<PGH:0> ")  # the terminal's line limit
            assert session.run("echo ok").strip() == "ok"
        finally:
            link.close()


class _StalledLink:
    """A serial port that takes one chunk and then times out."""

    write_timeout = 10
    timeout = 0.0
    in_waiting = 0

    def __init__(self):
        self.n_writes = 0

    def write(self, data):
        self.n_writes += 1
        if self.n_writes > 1:
            raise serial.SerialTimeoutException("Write timeout")
        return len(data)

    def read(self, n=1):
        return b""


def test_a_stalled_line_is_a_host_error_and_the_bad_frames_go_on():
    from ground.host.cli import _stream
    from ground.host.session import WRITE_CHUNK

    session = ShellSession(_StalledLink())
    with pytest.raises(HostError, match=f"write timeout \\(10 s\\): {WRITE_CHUNK} of 3000 bytes"):
        session.write(b"x" * 3000)
    assert session.bytes_out == WRITE_CHUNK

    class Client:  # a stream client whose line cannot carry the long bad frame
        def __init__(self):
            self.sent = []

        def poll(self, timeout_s=0.0):
            return 0

        def send(self, tag, payload=b""):
            self.sent.append(tag)

        def send_fix(self, payload, valid):
            self.sent.append(fs.GPS)

        def send_raw(self, line):
            if len(line) > 4096:
                raise HostError("the serial line took no more bytes within its write timeout")
            self.sent.append(b"bad")

    c = Client()
    frames = [(0.0, fs.SENSOR, bytes(30)), (1.0, fs.SENSOR, bytes(30)), (2.0, fs.SENSOR, bytes(30))]
    _, bad_sent, interrupted = _stream(c, frames, default_args(bad_frames=True, rate=1e6), Printer(False), None)
    assert not interrupted and c.sent.count(fs.SENSOR) == 3
    assert len(bad_sent) == len(bad_frame_lines()) - 1 and not any("line of" in w for w, _ in bad_sent)


def _readme_host_shell_commands() -> list[str]:
    """The README's `ground host --shell` examples, continuation lines joined."""
    import re

    readme = (REPO / "README.md").read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)\n```", readme, re.S):
        for cmd in re.sub(r"\\\n\s*", " ", block).split("\n"):
            if "-m ground host" in cmd and "--shell" in cmd and not cmd.lstrip().startswith("#"):
                out.append(cmd.strip())
    return out


def test_readme_host_examples_run_as_written(tmp_path):
    """Every `ground host --shell` command the README shows, run as written from the
    repository's root by bash (CI's checkout has the README's .venv; elsewhere a copy of
    the layout whose .venv/bin/python is this interpreter).  Issue 45 item 3: it uploaded
    only sense.bin (the run then went on defaults, `cfg imu reflection`), left its
    /tmp/pygnc-host-* HOME behind, and the README did not say what one sees."""
    import os
    import subprocess

    commands = _readme_host_shell_commands()
    assert commands, "the README shows no `ground host --shell` example"
    cwd = REPO
    if not (REPO / ".venv" / "bin" / "python").exists():
        cwd = tmp_path / "checkout"
        (cwd / ".venv" / "bin").mkdir(parents=True)
        wrapper = cwd / ".venv" / "bin" / "python"
        wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
        wrapper.chmod(0o755)
        for name in ("data", "flight"):
            (cwd / name).symlink_to(REPO / name)
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the emulated Pi's HOME goes there
    for cmd in commands:
        p = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
        out = p.stdout + p.stderr
        assert p.returncode == 0, f"{cmd}\n{out}"
        assert "result: ok" in p.stdout and "Traceback" not in out, f"{cmd}\n{out}"
        if "--bad-frames" in cmd:
            assert "sent 7 bad frames" in p.stdout and "too_long" in p.stdout, out
        if "--upload data/sample " in cmd:  # what the scenario has, the uplinked configuration too
            assert "uploaded ~/range/rng00000.bin" in p.stdout and "uploaded ~/pygnc_config.toml" in p.stdout
            info = next(ln for ln in p.stdout.splitlines() if ln.startswith("  info: "))
            assert "cfg" not in info and re.search(r"orb ahead 9m .* att ahead 9m", info), info  # as the README says
        assert not list(tmp_path.glob("pygnc-host-*")), "the local shell's HOME was left behind"
        assert "removed the local shell's HOME" in p.stdout


def test_live_stream_after_the_batch_matches_truth(shell):
    """First 120 s uploaded as the batch, the remaining 180 s streamed at 30x real time
    (6 s), one bad frame of each kind half-way, Ctrl-C with 20 % of the stream still to go."""
    _, session, home, _ = shell
    args = _args(
        upload=SAMPLE,
        batch_until_s=120.0,
        stream=SAMPLE,
        stream_from_s=120.0,
        rate=30.0,
        cadence_s=0.1,
        bad_frames=True,
        ctrl_c_at_s=4.8,
        status_every_s=1.0,
    )
    s = host_run(session, args, Printer(False))
    assert s["ok"] and s["stream_interrupted"]
    assert s["stream"]["received"]["STS"] >= 3  # --status-every-s 1 over the ~5-s stream
    stop = s["stop"]
    assert stop["how"] == "ctrl-c" and stop["exit_status"] == 0
    assert stop["seconds"] < 5.0  # the host cuts power 10 s after Ctrl-C; median stop ~0.2 s (bench_ctrl_c)
    st = s["stream"]
    expected = sorted(fs.ERROR_CODES[c][0] for _, _, c in bad_frame_lines())
    assert sorted(k for k, v in st["errors"].items() for _ in range(v)) == expected
    bye = s["bye"]
    assert bye["sensor_segments"] == st["segments_sent"]["SNS"] and bye["gps_segments"] == st["segments_sent"]["GPS"]
    assert bye["range_packets"] == st["segments_sent"]["RNG"] > 0
    assert bye["overflow"] == 0 and st["seq_gaps"] == 0 and not st["host_side_errors"]
    assert st["fix_latency_s"], "no streamed fix came back in an orbit estimate"

    # estimates of live data against the truth, epochs mapped to GPS time with the clock
    # offset the status reports (what the host itself would use)
    final = s["status_full"]
    assert "stopping" in final["flag_names"] and final["orbit_fixes_used"] > 5
    truth = np.load(SAMPLE / "truth.npz")
    tt = truth["t_gps_s"]
    t_live = live.first_time(SAMPLE) + args.stream_from_s
    orbit = [e for e in s["estimates"] if e.kind == "orbit" and e.t_sc_s >= t_live]
    att = [e for e in s["estimates"] if e.kind == "attitude" and e.t_sc_s >= t_live]
    propagated = lambda e: bool(int(e.values["flags"]) & 1)  # noqa: E731 - bit 0 in both records
    assert sum(not propagated(e) for e in orbit) >= 10 and sum(not propagated(e) for e in att) >= 10
    to_gps = lambda t_sc: float(gps_from_utc_unix(t_sc + final["clock_utc_minus_sc_s"]))  # noqa: E731
    r_err = []
    for e in orbit:
        tg = to_gps(e.t_sc_s)
        r_true = np.array([np.interp(tg, tt, truth["r_ecef_m"][0][:, k]) for k in range(3)])
        r_err.append(float(np.linalg.norm(np.array(e.values["r_ecef_m"]) - r_true)))
    a_err = []
    for e in att:
        tg = to_gps(e.t_sc_s)
        i = int(np.clip(np.searchsorted(tt, tg) - 1, 0, tt.size - 2))
        w = (tg - tt[i]) / (tt[i + 1] - tt[i])
        q0, q1 = truth["q_body_to_gcrs"][0][i], truth["q_body_to_gcrs"][0][i + 1]
        q1 = q1 if q0 @ q1 >= 0 else -q1
        qt = (1 - w) * q0 + w * q1
        qt /= np.linalg.norm(qt)
        qe = np.array(e.values["q_body_to_gcrs"])
        qe /= np.linalg.norm(qe)
        a_err.append(math.degrees(2 * math.acos(min(1.0, abs(float(qe @ qt))))))
    # Every estimate is judged by its own sigma (3x the root-sum-square of the per-axis
    # 1-sigma), and the estimates at a streamed sample also against this scenario's
    # accuracy.  Estimates propagated to "now" (flag bit 0) appear in the live range too:
    # main.py's clock starts at the stream's first sample and the estimators propagate to
    # it once a second after the batch, so one that falls between the host's CAD and the
    # first live sample (a window of milliseconds, wider on a loaded machine) streams the
    # batch's last estimate moved ~25 s on, rightly uncertain (~11 deg off, 1-sigma ~13 deg
    # per axis), and the live estimates older than it are not streamed.
    r_sig = [3 * math.hypot(*e.values["sigma_r_m"]) for e in orbit]
    a_sig = [math.degrees(3 * math.hypot(*e.values["sigma_att_rad"])) for e in att]
    assert all(x < k for x, k in zip(r_err, r_sig)), list(zip(r_err, r_sig))
    assert all(x < k for x, k in zip(a_err, a_sig)), list(zip(a_err, a_sig))
    # Measured on this scenario at the samples: orbit <= 10 m (sigma 5-9 m), attitude <=
    # 0.55 deg.  Margins x2 and x3: which samples get an estimate frame depends on timing.
    r_sample = [x for x, e in zip(r_err, orbit) if not propagated(e)]
    a_sample = [x for x, e in zip(a_err, att) if not propagated(e)]
    assert max(r_sample) < 20.0, r_sample
    assert max(a_sample) < 1.5, a_sample
