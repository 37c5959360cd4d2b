"""Binary bus log: length-prefixed, CRC-checked frames that a power cut cannot corrupt
beyond the last frame.

Frame layout (little-endian)::

    offset size field
    0      2    sync 0xA5 0x5A
    2      4    payload length n, bytes (uint32; at most MAX_FRAME_PAYLOAD)
    6      4    CRC-32 of the payload (zlib / binascii.crc32)
    10     n    payload: msgpack array [channel (str), t_rx_mono_s (float), message (bin)]

The first frame of a file has channel ``"_header"`` and a msgpack map as its message:
``{"format": "pygnc-buslog", "version": 1, "run": <run number>, "schema": <bus schema>}``.
``message`` of every other frame is the bus message exactly as received (see
:mod:`pygnc.bus.messages`).  The reader resynchronises on the sync bytes: a torn last
frame, a flipped bit or garbage is skipped and counted, every intact frame is kept.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import msgpack

SYNC = b"\xa5\x5a"
HEADER = struct.Struct("<2sII")
HEADER_SIZE = HEADER.size  # 10
MAX_FRAME_PAYLOAD = 1 << 20
FORMAT_NAME = "pygnc-buslog"
FORMAT_VERSION = 1
HEADER_CHANNEL = "_header"


def encode_frame(channel: str, t_rx_mono_s: float, message: bytes) -> bytes:
    payload = msgpack.packb([channel, float(t_rx_mono_s), message], use_bin_type=True)
    return HEADER.pack(SYNC, len(payload), zlib.crc32(payload)) + payload


def encode_header_frame(run: int, schema: int, spacecraft_id: int = 0) -> bytes:
    """The log's first frame: format, version, run, bus schema and the spacecraft's id
    (``Config.spacecraft_id``; 0: not set), so the ground knows whose log it is."""
    meta = msgpack.packb(
        {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "run": run,
            "schema": schema,
            "spacecraft_id": spacecraft_id,
        },
        use_bin_type=True,
    )
    return encode_frame(HEADER_CHANNEL, 0.0, meta)


@dataclass
class Frame:
    offset: int
    channel: str
    t_rx_mono_s: float
    message: bytes


@dataclass
class FrameLogStats:
    bytes_total: int = 0
    bytes_skipped: int = 0
    frames: int = 0
    frames_bad: int = 0  # sync found but length/CRC/payload wrong
    torn_tail: bool = False  # the file ends inside a frame (power cut mid-write)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class FrameLog:
    frames: list[Frame] = field(default_factory=list)
    stats: FrameLogStats = field(default_factory=FrameLogStats)


def decode_frames(data: bytes) -> FrameLog:
    """Every intact frame of *data*; never raises."""
    out = FrameLog()
    st = out.stats
    st.bytes_total = n = len(data)
    pos = 0
    while pos < n:
        i = data.find(SYNC, pos)
        if i < 0:
            st.bytes_skipped += n - pos
            break
        if i > pos:
            st.bytes_skipped += i - pos
        if i + HEADER_SIZE > n:
            st.torn_tail = True
            st.bytes_skipped += n - i
            break
        _, length, crc = HEADER.unpack_from(data, i)
        end = i + HEADER_SIZE + length
        if length > MAX_FRAME_PAYLOAD:
            st.frames_bad += 1
            st.bytes_skipped += 1
            pos = i + 1
            continue
        if end > n:
            # Either a torn tail or a corrupt length: resync inside it before giving up.
            nxt = data.find(SYNC, i + 1)
            if nxt < 0:
                st.torn_tail = True
                st.bytes_skipped += n - i
                break
            st.frames_bad += 1
            st.bytes_skipped += nxt - i
            pos = nxt
            continue
        payload = data[i + HEADER_SIZE : end]
        frame = _parse_payload(payload) if zlib.crc32(payload) == crc else None
        if frame is None:
            st.frames_bad += 1
            st.bytes_skipped += 1
            pos = i + 1
            continue
        channel, t_rx, message = frame
        out.frames.append(Frame(i, channel, t_rx, message))
        st.frames += 1
        pos = end
    return out


def _parse_payload(payload: bytes) -> tuple[str, float, bytes] | None:
    try:
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception:
        return None
    if (
        isinstance(obj, list)
        and len(obj) == 3
        and isinstance(obj[0], str)
        and isinstance(obj[1], (int, float))
        and isinstance(obj[2], bytes)
    ):
        return obj[0], float(obj[1]), obj[2]
    return None
