"""``python -m ground replay --pipeline``: the real process tree on a copy of the batch.

1. A private temporary ``PYGNC_HOME`` receives copies of the scenario's ``sense.bin`` and
   ``range/rng*.bin`` (nothing else: the run must not see truth or earlier outputs), and a
   configuration file: the caller's overrides plus a bus-log size bound large enough for
   the whole batch (a replay publishes every estimate, so its log is larger than a
   flight run's; a log that still reaches its bound is reported).
2. ``python -m pygnc <timeout_min> <spacecraft_time_s>`` (the supervisor of the pygnc this
   interpreter imports - a clone's ``flight/`` or an installed package alike) starts as a
   child in its own session (so a Ctrl-C on the ground tool's terminal reaches it only
   through us), with ``spacecraft_time_s`` one second after the last spacecraft time of
   the batch.
3. We poll ``pygnc_status.bin`` (every ``poll_s``, sleeping in between) until
   ``FLAG_BATCH_DONE`` is set and every estimator in the task table has been heard from
   *after* the batch: an estimate whose epoch is later than the batch's last spacecraft
   time can only be a propagated one, which the estimator task sends only once it has
   handled ``batch_end`` - so all its sensor-time estimates were published before it.  An
   estimator that has nothing to say (no fix, no ranges) is covered by the status flags or,
   failing those, by ``quiet_s`` without any change of the estimate epochs.
4. SIGINT to the supervisor (it stops the tree in order), a bounded wait for it to exit,
   SIGTERM / SIGKILL of our own process group only if it overstays.
5. The run's ``bus.log`` is decoded; estimates with ``propagated == False`` become the
   same tables as the in-process replay (a message logged twice - a producer's replay to
   a restarted consumer resends identical bytes - counts once).  The run's log directory
   is copied to ``logs_to`` for inspection.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ground.replay.in_process import PROCESSORS, ReplayRun

#: Bus-log bound of the replay run, bytes (a day's batch, every estimate published, fits).
REPLAY_BUS_LOG_MAX_BYTES = 1 << 30

#: estimator name -> task name in pygnc.tasks.table
TASK_OF = {"orbit": "orbit_estimator", "attitude": "attitude_estimator", "formation": "formation_estimator"}


class PipelineError(RuntimeError):
    """The process tree could not be run to completion (message says why)."""


def supervisor_command() -> list[str]:
    """How to start the flight supervisor with this interpreter (no file path needed: works
    from a clone and from an installed package)."""
    return [sys.executable, "-m", "pygnc"]


def _copy_batch(scenario: Path, home: Path) -> None:
    for name in ("sense.bin", "range.bin"):
        if (scenario / name).is_file():
            shutil.copy2(scenario / name, home / name)
    src = scenario / "range"
    if src.is_dir():
        (home / "range").mkdir()
        for f in sorted(src.glob("rng*.bin")):
            shutil.copy2(f, home / "range" / f.name)


def _write_config(config_path: Path | None, dest: Path, overrides: dict | None = None) -> Path:
    """The caller's TOML overrides (then *overrides*) plus a bus-log bound for the whole
    batch, as *dest*."""
    import tomllib

    import tomli_w

    data = {}
    if config_path:
        with open(config_path, "rb") as f:
            data = tomllib.load(f)
    data.update(overrides or {})
    data["bus_log_max_bytes"] = max(int(data.get("bus_log_max_bytes", 0)), REPLAY_BUS_LOG_MAX_BYTES)
    data["log_total_bytes"] = max(int(data.get("log_total_bytes", 0)), 2 * data["bus_log_max_bytes"])
    dest.write_text(tomli_w.dumps(data))
    return dest


def _read_status(path: Path):
    from pygnc.formats.status import StatusError, decode_status

    try:
        return decode_status(path.read_bytes())
    except (OSError, StatusError):
        return None


def _epochs(st: dict) -> tuple:
    from pygnc.formats.status import MAX_PEERS

    return (st["orbit_t_sc_s"], st["att_t_sc_s"]) + tuple(st[f"peer{k}_t_sc_s"] for k in range(MAX_PEERS))


def _after(x: float, t_last: float) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > t_last


def estimators_done(st: dict, tasks: set[str], t_last: float) -> bool:
    """True when every estimator task in *tasks* has reported past the batch (or has
    nothing to report according to the status flags)."""
    from pygnc.formats import status as S

    if "orbit_estimator" in tasks and not (st["flags"] & S.FLAG_NO_VALID_FIX or _after(st["orbit_t_sc_s"], t_last)):
        return False
    if "attitude_estimator" in tasks and not _after(st["att_t_sc_s"], t_last):
        return False
    if "formation_estimator" in tasks and not st["flags"] & S.FLAG_RANGE_MISSING:
        slots = [st[f"peer{k}_t_sc_s"] for k in range(S.MAX_PEERS) if st[f"peer{k}_id"]]
        if not slots or not all(_after(x, t_last) for x in slots):
            return False
    return True


def wait_until_done(
    proc: subprocess.Popen,
    status_path: Path,
    tasks: set[str],
    t_last: float,
    timeout_s: float,
    poll_s: float = 0.2,
    quiet_s: float = 5.0,
    log_path: Path | None = None,
) -> str:
    """Poll the status file until the batch is processed; returns "done" or "quiet"."""
    from pygnc.formats import status as S

    deadline = time.monotonic() + timeout_s
    last_epochs, last_change = None, None
    while True:
        rc = proc.poll()
        if rc is not None:
            raise PipelineError(
                f"the flight supervisor exited with status {rc} before the batch was processed" + _tail(log_path)
            )
        st = _read_status(status_path)
        now = time.monotonic()
        if st is not None and st["flags"] & S.FLAG_BATCH_DONE:
            if estimators_done(st, tasks, t_last):
                return "done"
            ep = repr(_epochs(st))  # text form: NaN == NaN
            if ep != last_epochs:
                last_epochs, last_change = ep, now
            if last_change is not None and now - last_change >= quiet_s:
                return "quiet"
        if now >= deadline:
            raise PipelineError(f"the batch was not processed within {timeout_s:.0f} s" + _tail(log_path))
        time.sleep(poll_s)


def _tail(path: Path | None, n: int = 15) -> str:
    if path is None or not path.is_file():
        return ""
    lines = path.read_text(errors="replace").splitlines()[-n:]
    return "\n  last output of the flight supervisor:\n    " + "\n    ".join(lines) if lines else ""


def stop_tree(proc: subprocess.Popen, wait_s: float = 20.0) -> int | None:
    """SIGINT the supervisor and wait; escalate on our own process group if it overstays."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        pass
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)  # the group is the session we created for this child
        except ProcessLookupError:
            break
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


def read_bus_log(path: Path, run: ReplayRun) -> dict:
    """Collect the estimates and notes of a bus log into *run*; returns decode statistics."""
    from pygnc.bus.messages import DecodeCounters, decode
    from pygnc.formats.buslog import HEADER_CHANNEL, decode_frames

    log = decode_frames(path.read_bytes())
    counters = DecodeCounters()
    n = 0
    seen: set[bytes] = set()
    for fr in log.frames:
        if fr.channel == HEADER_CHANNEL or fr.channel in ("meas", "health"):
            continue
        if fr.message in seen:  # resent by a replay to a restarted consumer
            continue
        seen.add(fr.message)
        msg = decode(fr.message, counters)
        if msg is None:
            continue
        n += 1
        run.collect(msg.type, msg.body)
    return {
        "frames": log.stats.frames,
        "frames_bad": log.stats.frames_bad,
        "bytes_skipped": log.stats.bytes_skipped,
        "torn_tail": log.stats.torn_tail,
        "estimator_messages": n,
        "undecodable": counters.dropped,
    }


def run_pipeline(
    scenario: Path,
    config_path: Path | None = None,
    timeout_s: float = 1800.0,
    logs_to: Path | None = None,
    say=print,
    poll_s: float = 0.2,
    quiet_s: float = 5.0,
    overrides: dict | None = None,
    batches_to: Path | None = None,
) -> ReplayRun:
    """Run the flight supervisor on a copy of *scenario*'s batch; return its estimates.
    *overrides*: configuration values over *config_path*'s; *logs_to*, *batches_to*: where
    the run's log directory and its batch files (the downlink) are copied."""
    from ground.replay.in_process import REPLAY_OVERRIDES, quiet_logger
    from pygnc.config import Paths, load_config, with_overrides
    from pygnc.config_source import home_selection
    from pygnc.logs import list_runs
    from pygnc.tasks.ingest import build_message_stream
    from pygnc.tasks.table import enabled_tasks

    t_start = time.perf_counter()
    scenario = Path(scenario)
    if config_path is None:  # what the spacecraft ran on: its uplink, refused its accepted copy
        chosen = home_selection(scenario)
        config_path, config = chosen.path, chosen.config
    else:
        config = load_config(config_path)
    overrides = {**REPLAY_OVERRIDES, **(overrides or {})}
    config = with_overrides(config, overrides, "the replay's overrides")
    stream = build_message_stream(Paths(scenario), config, quiet_logger())
    t_last = stream.messages[-1][1]["t_sc_last_s"] if stream.messages else math.nan
    t_last = t_last if math.isfinite(t_last) else 0.0
    task_names = {t.name for t in enabled_tasks(config)}
    names = [n for n in PROCESSORS if TASK_OF[n] in task_names]
    run = ReplayRun(
        "pipeline", names, {n: "not enabled in the flight configuration" for n in PROCESSORS if n not in names}
    )
    run.extra["stream"] = stream
    with tempfile.TemporaryDirectory(prefix="pygnc-replay-") as tmp:
        home = Path(tmp)
        _copy_batch(scenario, home)
        env = dict(os.environ)
        env["PYGNC_HOME"] = str(home)
        replay_config = _write_config(config_path, home / "replay_config.toml", overrides)
        env["PYGNC_CONFIG"] = str(replay_config)
        bus_log_bound = load_config(replay_config).bus_log_max_bytes
        out_path = home / "main_py_output.txt"
        timeout_min = timeout_s / 60.0 + 1.0
        cmd = supervisor_command() + [f"{timeout_min:.3f}", repr(float(t_last) + 1.0)]
        say(f"  pipeline: {' '.join(cmd[1:])} with PYGNC_HOME={home}")
        t_tree = time.perf_counter()
        with open(out_path, "wb") as out_file:
            proc = subprocess.Popen(
                cmd,
                cwd=home,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                how = wait_until_done(
                    proc,
                    Paths(home).status_file,
                    {TASK_OF[n] for n in names},
                    t_last,
                    timeout_s,
                    poll_s,
                    quiet_s,
                    out_path,
                )
            except BaseException:
                stop_tree(proc)
                raise
            t_processed = time.perf_counter() - t_tree
            rc = stop_tree(proc)
        t_stopped = time.perf_counter() - t_tree
        if rc != 0:
            say(f"  pipeline: the flight supervisor exited with status {rc}")
        runs = list_runs(Paths(home).log_root)
        if not runs:
            raise PipelineError("the run left no log directory" + _tail(out_path))
        run_dir = runs[-1][1]
        bus_log = run_dir / "bus.log"
        if not bus_log.is_file():
            raise PipelineError(f"the run left no bus log in {run_dir}" + _tail(out_path))
        stats = read_bus_log(bus_log, run)
        if bus_log.stat().st_size >= bus_log_bound - (1 << 16):
            say(
                f"  pipeline: warning: the bus log reached its size bound ({bus_log_bound} bytes): "
                "estimates after that point are missing"
            )
            stats["at_size_bound"] = True
        if logs_to is not None:
            logs_to = Path(logs_to)
            if logs_to.exists():
                shutil.rmtree(logs_to)
            shutil.copytree(run_dir, logs_to)
            shutil.copy2(out_path, logs_to / out_path.name)
        if batches_to is not None:
            from pygnc.batch_store import resolve_batch_dir

            batches_to = Path(batches_to)
            if batches_to.exists():
                shutil.rmtree(batches_to)
            batches_to.mkdir(parents=True)
            for f in sorted(resolve_batch_dir(home, config.batch_dir).glob("batch_*.bin")):
                shutil.copy2(f, batches_to / f.name)
    run.n_messages = len(stream.messages)
    run.extra.update(bus_log=stats, finished_by=how, exit_status=rc)
    run.timings_s.update(processed=t_processed, stopped=t_stopped, total=time.perf_counter() - t_start)
    say(
        f"  pipeline: batch processed in {t_processed:.1f} s ({how}), tree stopped after {t_stopped:.1f} s "
        f"(exit {rc}); bus log {stats['frames']} frames, {stats['estimator_messages']} estimator messages"
    )
    return run
