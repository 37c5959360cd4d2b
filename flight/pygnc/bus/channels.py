"""The bus channels: who publishes what, and what happens when a consumer falls behind.

A channel is one ZeroMQ XPUB socket bound by its producer at ``ipc://<run_dir>/<name>.sock``
(``run_dir`` is a fresh private 0700 directory per run; nothing ever listens on a network
interface).  Consumers are declared in the task table (:mod:`pygnc.tasks.table`).

Overflow policies:

* ``BLOCK``  - nothing is lost: the producer's send waits (in slices, still answering health
  pings) while any consumer's queue is full (``ZMQ_XPUB_NODROP``).  Measurement channels.
* ``DROP``   - the producer never waits; a message that does not fit is dropped and counted
  by the producer.  Estimate channels (a newer estimate follows), and the live IMU and host
  streams (a device or a UART cannot be paused: waiting would only move the loss into the
  serial buffer; the host is told with an ERR overflow frame).
* ``LATEST`` - only the newest message matters: consumers conflate (``ZMQ_CONFLATE``), so a
  slow consumer sees the latest value.  Only for single-type, single-frame channels whose
  producer publishes periodically: libzmq's conflating pipe can miss the wake-up for a
  message written just as its reader found it empty, and the message then waits for the next
  (a message that must arrive is published again: the supervisor's last health table).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path


class Policy(enum.Enum):
    BLOCK = "block"
    DROP = "drop"
    LATEST = "latest"


@dataclass(frozen=True)
class Channel:
    name: str
    producer: str
    policy: Policy
    hwm: int
    types: tuple[str, ...]
    description: str

    def endpoint(self, run_dir: str | Path) -> str:
        return f"ipc://{Path(run_dir) / (self.name + '.sock')}"


CHANNELS: dict[str, Channel] = {
    c.name: c
    for c in (
        Channel(
            "meas",
            "ingest",
            Policy.BLOCK,
            2000,
            ("ingest_stats", "clock_map", "sensor", "gps_fix", "range", "batch_end"),
            "measurements of the batch in spacecraft-time order, with decode statistics",
        ),
        Channel(
            "orbit",
            "orbit_estimator",
            Policy.DROP,
            10000,
            ("orbit_estimate", "orbit_position", "estimator_note"),
            "orbit estimates (during a batch, positions alone at the samples the downlink does not record)",
        ),
        Channel(
            "attitude",
            "attitude_estimator",
            Policy.DROP,
            10000,
            ("attitude_estimate", "estimator_note"),
            "attitude estimates",
        ),
        Channel(
            "formation",
            "formation_estimator",
            Policy.DROP,
            10000,
            ("formation_estimate", "estimator_note"),
            "relative-state estimates per peer",
        ),
        Channel(
            "formation_2",
            "formation_estimator_2",
            Policy.DROP,
            10000,
            ("formation_estimate", "estimator_note"),
            "relative-state estimates of the second, fourth ... partner heard (Config.formation_split)",
        ),
        # drop, not block: the housekeeping loop must never wait (its ports are in the same
        # poller); 10000 messages is over an hour of both devices at their default periods.
        Channel(
            "hk",
            "housekeeping",
            Policy.DROP,
            10000,
            ("hk_reading", "hk_device"),
            "housekeeping device readings (EMUS BMS, OPC-N3) and device states",
        ),
        Channel(
            "imu",
            "imu_ingest",
            Policy.DROP,
            2000,
            ("imu_samples",),
            "external IMU rate/acceleration samples in blocks, IMU axes, with spacecraft and device time tags",
        ),
        Channel(
            "live",
            "tty_stream",
            Policy.DROP,
            2000,
            ("live_segments",),
            "live segments from the host's stream, as received (ingest decodes and publishes them on meas)",
        ),
        Channel(
            "host_cmd",
            "tty_stream",
            Policy.DROP,
            100,
            ("host_command",),
            "commands from the host's stream for other tasks (flush batches)",
        ),
        Channel(
            "health", "supervisor", Policy.LATEST, 1000, ("health",), "per-task health from the supervisor's pings"
        ),
    )
}

#: The supervisor's ROUTER socket for ready/start/ping/pong/stop/bye.
CONTROL_SOCKET = "control.sock"


def control_endpoint(run_dir: str | Path) -> str:
    return f"ipc://{Path(run_dir) / CONTROL_SOCKET}"
