"""IMU ingest: read the external IMU live and publish its samples on the ``imu`` channel.

Runs only when ``Config.imu_driver`` is set (the host's default run has no IMU).  Life:

* **connect** in bounded steps (:meth:`~pygnc.drivers.sample.ImuStream.connect_steps`: open
  the port, probe, configure - each step well under the 2-s health warning), so the loop
  keeps answering pings; discovery (``imu_port = "auto"``) probes one port/baud per step;
* **stream**: the port's file descriptor sits in the task's ``zmq.Poller`` (the loop wakes
  on bytes, never busy-waits); samples are time-tagged and published in blocks of at most
  ``imu_publish_period_s`` (message ``imu_samples``; the channel drops and counts rather
  than wait - a device cannot be paused);
* **reconnect**: an unplugged port, a read error or ``imu_stale_s`` without a valid sample
  closes the link and retries after a backoff (``imu_reconnect_backoff_s`` doubling to
  ``imu_reconnect_max_backoff_s``, reset after 5 s of good streaming); every state change
  is logged and shown in the task's counters (health table: ``state``, ``connects``,
  ``disconnects``, ``last_error``, ...);
* **stop** (Ctrl-C / supervisor stop): publish the pending block, close the port (a GX2 in
  continuous mode is told to stop first), exit.

Time tags: ``t_sc_s`` is the spacecraft clock (``t0_sc + monotonic - t0_mono``) of the
instant the sample was taken: device time mapped onto the host clock by the minimum
observed delay (:class:`~pygnc.drivers.timing.ClockSync`, applied when a block is published
so a block's own samples refine the offset), or the read time for devices without a clock.
Not later than the sample's read time (but for the 1-us steps that keep the tags strictly
increasing within a connection).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import zmq

from ..config import Config, Paths
from ..drivers.errors import DriverError
from ..drivers.gx2 import Gx2Stream
from ..drivers.imu380 import Imu380Stream
from ..drivers.monodrive import MonoDriveStream
from ..drivers.sample import ImuSample, ImuStream
from ..drivers.timing import ClockSync
from .base import MAX_POLL_S, Task, TaskRunner

#: Samples per published block at most (keeps a message far below the bus limit).
MAX_BLOCK = 200
#: Streaming this long without trouble resets the reconnect backoff, s.
BACKOFF_RESET_S = 5.0
#: Poll period when the link has no file descriptor (e.g. a loop:// URL), s.
NO_FD_POLL_S = 0.005
#: Failures logged with their message before logging only every 20th, count.
LOG_FIRST_FAILURES = 5
DRIVERS = ("imu380", "gx2", "monodrive")

#: What ends a connection: any driver failure (:class:`~pygnc.drivers.errors.DriverError`),
#: and what the standard library beneath a driver may still raise.
_ERRORS = (DriverError, OSError, ValueError)


def make_stream(config: Config, paths: Paths) -> ImuStream:
    """The :class:`~pygnc.drivers.sample.ImuStream` *config* describes (ValueError naming
    the problem if it describes none)."""
    drv, port = config.imu_driver, config.imu_port
    if drv not in DRIVERS:
        raise ValueError(f"imu_driver {drv!r}: expected one of {', '.join(DRIVERS)}")
    if not port:
        raise ValueError("imu_port is empty: name the serial device, 'auto', or udp:// / tcp://")
    if drv == "imu380":
        return Imu380Stream(
            port,
            baud=config.imu_baud,
            baud_rates=config.imu_baud_rates,
            packet_type=config.imu_packet_type,
            packet_rate_hz=config.imu_packet_rate_hz,
            cache_path=paths.imu_port_cache,
            discovery_ports=config.imu_discovery_ports,
        )
    if drv == "gx2":
        return Gx2Stream(port, baud=config.imu_baud, mode=config.imu_gx2_mode, poll_rate_hz=config.imu_poll_rate_hz)
    return MonoDriveStream(
        port,
        header=config.imu_monodrive_header,
        verify_checksum=config.imu_monodrive_verify_checksum,
        allow_network=config.imu_allow_network,
    )


class ImuIngest(Task):
    def __init__(self, runner: TaskRunner) -> None:
        super().__init__(runner)
        c = self.config
        self.stream: ImuStream | None = None
        self._steps: Iterator[float] | None = None
        self._fd: int | None = None
        self.state = "idle"
        self.backoff_s = c.imu_reconnect_backoff_s
        self.next_attempt = 0.0
        self.connected_since = 0.0
        self.last_sample = 0.0
        self.connection = 0
        self.index = 0
        self.sync = ClockSync(c.imu_clock_window_s)
        self._last_t_dev = -math.inf
        self._last_t_host = -math.inf
        self.pending: list[ImuSample] = []
        self.pending_lost = 0
        self.pending_since = 0.0
        self.description = f"{c.imu_driver} {c.imu_port}"
        self.c = {
            "attempts": 0,
            "connects": 0,
            "disconnects": 0,
            "stale_timeouts": 0,
            "failures": 0,
            "samples": 0,
            "lost": 0,
            "blocks": 0,
            "blocks_dropped": 0,
            "time_resets": 0,
        }
        self.device_totals: dict[str, int] = {}
        self.last_error = ""
        self.config_error = ""
        try:
            make_stream(c, self.ctx.paths)  # validate the configuration once, up front
        except (ValueError, DriverError) as exc:
            self.config_error = str(exc)
            self.state = "config_error"
            self.log.error("IMU configuration error: %s; the task idles", exc)

    # -- loop ----------------------------------------------------------------------------
    def on_start(self) -> None:
        self.next_attempt = time.monotonic()

    def step(self) -> float:
        if self.config_error:
            return MAX_POLL_S
        now = time.monotonic()
        if self._steps is not None or self.stream is None:
            return self._connect_step(now)
        return self._stream_step(now)

    def _connect_step(self, now: float) -> float:
        if self._steps is None:
            if now < self.next_attempt:
                return min(self.next_attempt - now, MAX_POLL_S)
            self.stream = make_stream(self.config, self.ctx.paths)
            self._steps = self.stream.connect_steps()
            self.state = "connecting"
            self.c["attempts"] += 1
        try:
            wait = next(self._steps)
            return min(max(0.0, wait), MAX_POLL_S)
        except StopIteration:
            pass
        except _ERRORS as exc:
            self._fail(f"connect: {exc}", now)
            return min(self.backoff_s, MAX_POLL_S)
        self._steps = None
        self.connection += 1
        self.c["connects"] += 1
        self.index = 0
        self.sync.reset()
        self._last_t_dev = self._last_t_host = -math.inf
        assert self.stream is not None  # made above
        self.description = self.stream.description
        self.connected_since = self.last_sample = time.monotonic()
        self.state = "streaming"
        self._fd = self.stream.fileno()
        if self._fd is not None:
            self.runner.poller.register(self._fd, zmq.POLLIN)
        self.log.info("IMU connected (connection %d): %s", self.connection, self.description)
        return 0.0

    def _stream_step(self, now: float) -> float:
        stream = self.stream
        assert stream is not None  # streaming
        try:
            samples = stream.read_samples()
            wait = stream.service(now)
        except _ERRORS as exc:
            self.c["disconnects"] += 1
            self._fail(f"link lost: {exc}", now)
            return min(self.backoff_s, MAX_POLL_S)
        if samples:
            self._take(samples)
            self.last_sample = samples[-1].t_rx_mono_s
            if now - self.connected_since > BACKOFF_RESET_S:
                self.backoff_s = self.config.imu_reconnect_backoff_s
        elif now - self.last_sample > self.config.imu_stale_s:
            self.c["stale_timeouts"] += 1
            self.c["disconnects"] += 1
            refusal = getattr(stream, "refusal", None)  # a driver that says why it refused frames
            self._fail(
                f"no valid sample for {now - self.last_sample:.1f} s"
                + (f" (last frame refused: {refusal})" if refusal else ""),
                now,
            )
            return min(self.backoff_s, MAX_POLL_S)
        if self.pending and (
            now - self.pending_since >= self.config.imu_publish_period_s or len(self.pending) >= MAX_BLOCK
        ):
            self._publish()
        until_publish = (self.pending_since + self.config.imu_publish_period_s - now) if self.pending else MAX_POLL_S
        until_stale = self.last_sample + self.config.imu_stale_s - now
        base = MAX_POLL_S if self._fd is not None else NO_FD_POLL_S
        return max(0.0, min(base, wait, until_publish, until_stale + 0.01))

    # -- samples -------------------------------------------------------------------------
    def _take(self, samples: list[ImuSample]) -> None:
        if not self.pending:
            self.pending_since = time.monotonic()
        for s in samples:
            if math.isfinite(s.t_device_s):
                if s.t_device_s <= self._last_t_dev:  # device clock restarted: realign
                    self._publish()
                    self.sync.reset()
                    self.c["time_resets"] += 1
                self._last_t_dev = s.t_device_s
                self.sync.observe(s.t_device_s, s.t_rx_mono_s)
            self.pending.append(s)
            self.pending_lost += s.lost_before
        self.c["samples"] += len(samples)
        self.c["lost"] += sum(s.lost_before for s in samples)

    def _publish(self) -> None:
        """Publish the pending samples; their times use the clock offset known now (which
        includes every pending sample's own delay)."""
        t0_sc, t0_mono = self.ctx.t0_sc_s, self.ctx.t0_mono_s
        while self.pending:
            block, self.pending = self.pending[:MAX_BLOCK], self.pending[MAX_BLOCK:]
            t_sc = []
            for s in block:
                t = self.sync.host_time(s.t_device_s) if math.isfinite(s.t_device_s) else s.t_rx_mono_s
                if not math.isfinite(t):
                    t = s.t_rx_mono_s
                t = max(t, self._last_t_host + 1e-6)
                self._last_t_host = t
                t_sc.append(t0_sc + (t - t0_mono))
            body = {
                "device": self.description,
                "connection": self.connection,
                "first_index": self.index,
                "lost": self.pending_lost,
                "t_sc_s": t_sc,
                "t_device_s": [s.t_device_s for s in block],
                "t_rx_sc_s": [t0_sc + (s.t_rx_mono_s - t0_mono) for s in block],
                "rate_imu_rad_s": [list(s.rate_rad_s) for s in block],
                "accel_imu_m_s2": [list(s.accel_m_s2) for s in block],
                "temp_c": [s.temp_c for s in block],
                "status": [s.status for s in block],
            }
            self.index += len(block)
            self.pending_lost = 0
            if self.publish("imu", "imu_samples", body):
                self.c["blocks"] += 1
            else:
                self.c["blocks_dropped"] += 1
        self.pending_since = time.monotonic()

    # -- failures ------------------------------------------------------------------------
    def _close_stream(self) -> None:
        if self._fd is not None:
            try:
                self.runner.poller.unregister(self._fd)
            except KeyError:
                pass
            self._fd = None
        if self.stream is not None:
            for k, v in self.stream.stats().items():
                if isinstance(v, int) and k not in ("samples", "lost"):
                    self.device_totals[k] = self.device_totals.get(k, 0) + v
            try:
                self.stream.close()
            except Exception:  # closing a vanished device: nothing more to do
                pass
        self.stream = None
        self._steps = None

    def _fail(self, why: str, now: float) -> None:
        if self.pending:
            self._publish()
        self._close_stream()
        self.c["failures"] += 1
        self.last_error = why[:160]
        self.state = "backoff"
        self.next_attempt = now + self.backoff_s
        n = self.c["failures"]
        if n <= LOG_FIRST_FAILURES or n % 20 == 0:
            self.log.warning("IMU %s: %s; retrying in %.2f s (failure %d)", self.description, why, self.backoff_s, n)
        self.backoff_s = min(self.backoff_s * 2, self.config.imu_reconnect_max_backoff_s)

    def on_stop(self, reason: str) -> None:
        if self.pending:
            self._publish()
        was_open = self.stream is not None
        self._close_stream()
        self.state = "stopped"
        self.log.info(
            "IMU port %s; %d samples in %d blocks, %d connections",
            "closed" if was_open else "was not open",
            self.c["samples"],
            self.c["blocks"],
            self.c["connects"],
        )

    def counters(self) -> dict:
        d = {
            "state": self.state,
            "connected": self.state == "streaming",
            "connection": self.connection,
            "device": self.description,
            "last_error": self.last_error or self.config_error,
        }
        d.update(self.c)
        totals = dict(self.device_totals)
        if self.stream is not None and self._steps is None:
            for k, v in self.stream.stats().items():
                if isinstance(v, int) and k not in ("samples", "lost"):
                    totals[k] = totals.get(k, 0) + v
        d["device_counters"] = totals
        return d


TASK_CLASS = ImuIngest
