"""A scenario's measurements as the host would stream them: time-ordered segments.

A scenario directory (``python -m ground simulate``, or the PY4 team's files) holds
``sense.bin`` and ``range/rng*.bin``.  :func:`live_items` cuts them into what the PyCubed
would send as it measures: every sensor segment and GPS segment with its own bytes (the
sense.bin layout, unchanged), and every range as a 12-byte SX1280 packet
(:mod:`pygnc.formats.range_packet`), exactly the packet the range file holds.  Items are ordered by spacecraft
time; at equal times a GPS segment comes before
the sensor segment (so the estimate at that sample includes the fix), then ranges.

:func:`split_sense` gives the sense.bin bytes of the records before a time: the batch a
host uploads before streaming the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pygnc.config import Config
from pygnc.formats import stream as fs
from pygnc.formats.gps import GPS_SEGMENT_SIZE
from pygnc.formats.range_file import encode_range_packets, read_range_dir
from pygnc.formats.sense import SENSOR_SEGMENT_SIZE, find_records, record_dtype
from pygnc.formats.settings import DecodeSettings

_ORDER = {fs.GPS: 0, fs.SENSOR: 1, fs.RANGE: 2}


@dataclass(frozen=True)
class LiveItem:
    t_sc_s: float
    tag: bytes  # fs.SENSOR, fs.GPS or fs.RANGE
    data: bytes  # one segment / packet


def _records(data: bytes, config: Config) -> tuple[np.ndarray, int]:
    a = np.frombuffer(data, dtype=np.uint8)
    return find_records(a, config.sensors_per_record), record_dtype(config.sensors_per_record).itemsize


def live_items(
    scenario: Path, config: Config | None = None, t_from_s: float = -np.inf, t_to_s: float = np.inf
) -> list[LiveItem]:
    """The scenario's segments with ``t_from_s <= t_sc_s < t_to_s``, in streaming order."""
    config = config or Config()
    scenario = Path(scenario)
    items: list[LiveItem] = []
    sense = scenario / "sense.bin"
    if sense.exists():
        data = sense.read_bytes()
        starts, size = _records(data, config)
        n_sens = config.sensors_per_record
        for s in starts.tolist():
            for k in range(n_sens):
                seg = data[s + k * SENSOR_SEGMENT_SIZE : s + (k + 1) * SENSOR_SEGMENT_SIZE]
                items.append(LiveItem(float(int.from_bytes(seg[:4], "big")), fs.SENSOR, seg))
            g0 = s + n_sens * SENSOR_SEGMENT_SIZE
            seg = data[g0 : g0 + GPS_SEGMENT_SIZE]
            t = int.from_bytes(seg[:4], "big")
            if any(seg):  # an all-zero segment is "no GPS"
                items.append(LiveItem(float(t), fs.GPS, seg))
    if (scenario / "range").is_dir():
        rb = read_range_dir(scenario / "range", DecodeSettings.from_config(config))
        for r in rb.ranges:  # the packets as the radio gave them, raw result and all
            items.append(LiveItem(float(r["t_sc_s"]), fs.RANGE, encode_range_packets(r[None])))
    items = [i for i in items if t_from_s <= i.t_sc_s < t_to_s]
    items.sort(key=lambda i: (i.t_sc_s, _ORDER[i.tag]))
    return items


def split_sense(scenario: Path, t_before_s: float, config: Config | None = None) -> bytes:
    """sense.bin bytes of the records whose every sensor sample is before *t_before_s*."""
    config = config or Config()
    data = (Path(scenario) / "sense.bin").read_bytes()
    starts, size = _records(data, config)
    out = bytearray()
    for s in starts.tolist():
        last = s + (config.sensors_per_record - 1) * SENSOR_SEGMENT_SIZE
        if int.from_bytes(data[last : last + 4], "big") < t_before_s:
            out += data[s : s + size]
    return bytes(out)


def first_time(scenario: Path, config: Config | None = None) -> float:
    items = live_items(scenario, config)
    if not items:
        raise ValueError(f"{scenario} holds no measurements")
    return items[0].t_sc_s


def frames_of(items: list[LiveItem], group_s: float = 0.0) -> list[tuple[float, bytes, bytes]]:
    """(time, tag, payload) frames to send: consecutive items of one tag within *group_s*
    of the group's first go into one frame (up to the line limit), sent at the time of its
    last item (nothing is sent before it is measured); 0: one frame per item."""
    out: list[tuple[float, bytes, bytes]] = []
    first = 0.0
    for it in items:
        if out and group_s > 0:
            _, tag, payload = out[-1]
            if (
                tag == it.tag
                and it.t_sc_s - first <= group_s
                and len(payload) + len(it.data) <= fs.max_payload_bytes(tag)
            ):
                out[-1] = (it.t_sc_s, tag, payload + it.data)
                continue
        first = it.t_sc_s
        out.append((it.t_sc_s, it.tag, it.data))
    return out
