"""The streaming protocol on the host's TTY: ASCII line frames, both directions.

The host (the PyCubed) talks to pygnc through the same UART login shell that started
``main.py``: the terminal stays in canonical mode, so Ctrl-C still raises SIGINT and the
line discipline hands us whole lines.  Every frame is one line of printable ASCII that
CircuitPython builds and parses with ``binascii`` and ``struct`` alone::

    $TAG,SEQ,PAYLOAD*CRC\\n

    $        0x24, start of a frame (a line may carry noise before it: the frame starts
             at the line's last '$', which base64 never contains)
    TAG      3 upper-case letters (:data:`HOST_TAGS`, :data:`PYGNC_TAGS`)
    SEQ      the sender's frame counter, decimal 0..65535 (wraps); acknowledgements and
             errors name the SEQ and TAG of the frame they answer
    PAYLOAD  standard base64 (RFC 4648: A-Z a-z 0-9 + /, '=' padding) of the binary
             payload; empty for a payload of 0 bytes
    CRC      8 hex digits (upper case when we send; either case accepted): CRC-32
             (``binascii.crc32``, the zlib CRC) of the bytes from TAG to the end of PAYLOAD
             (everything between '$' and '*')
    \\n       end of line (we accept \\n, \\r\\n or \\r; the terminal turns our \\n into \\r\\n)

A line is at most :data:`MAX_LINE_BYTES` bytes including its end (a Linux terminal in
canonical mode keeps at most 4095 characters of a line; we stay well below).  Payloads are
the batch-file layouts, little-endian unless the layout says otherwise:

host -> pygnc (stdin)

    SNS  n x 30-byte sensor segments (sense.bin layout, :mod:`pygnc.formats.sense`), n >= 1
    GPS  n x 99-byte GPS segments (sense.bin layout, :mod:`pygnc.formats.gps`), n >= 1
    RNG  n x 12-byte SX1280 range packets (:mod:`pygnc.formats.range_packet`), n >= 1
    PNG  command: are you there (empty payload)
    STA  command: status now (empty payload); answered by ACK, STS and CNT
    CAD  command: estimate cadence, ``<I`` milliseconds between two estimate frames of
         the same kind (and peer); 0 = no estimate frames
    FLU  command: flush batches - close the open batch file now (empty payload)

pygnc -> host (stdout; nothing else is ever written to stdout)

    HEL  hello, once the stream is up (:data:`HELLO`)
    ACK  every command, exactly once (:data:`ACK`, result :data:`ACK_RESULTS`)
    ERR  every bad frame (:data:`ERROR`, codes :data:`ERROR_CODES`); never fatal
    EST  one estimate: a framed batch-file record (:mod:`pygnc.formats.batch`: orbit,
         attitude, formation, note), CRC-16 included
    STS  the status file ``pygnc_status.bin`` as last written (:mod:`pygnc.formats.status`)
    CNT  the stream's counters (:data:`COUNTER_FIELDS`)
    BYE  the final counters, when pygnc stops (same layout as CNT)

Data frames (SNS, GPS, RNG) are not acknowledged one by one: they are counted (CNT), and
a bad one gets an ERR.  Decoding never raises: :class:`FrameReader` turns any byte stream
into frames and counted errors (a line of 1 MB is one ``too_long`` error, binary garbage a
``malformed`` one per line).

No numpy: the stream task imports this and must start fast; CircuitPython can port it.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Container, Iterable
from dataclasses import dataclass

PROTOCOL_VERSION = 1
#: Longest frame line accepted or sent, bytes, line end included.
MAX_LINE_BYTES = 1024
SEQ_MODULO = 1 << 16
#: ``SEQ`` of an ERR answering a line whose SEQ could not be read.
SEQ_UNKNOWN = 0xFFFF
TAG_UNKNOWN = b"???"

# -- tags ----------------------------------------------------------------------------------
SENSOR, GPS, RANGE = b"SNS", b"GPS", b"RNG"
PING, STATUS, CADENCE, FLUSH = b"PNG", b"STA", b"CAD", b"FLU"
HELLO_TAG, ACK_TAG, ERROR_TAG, ESTIMATE, STATUS_FILE, COUNTERS, BYE = (
    b"HEL",
    b"ACK",
    b"ERR",
    b"EST",
    b"STS",
    b"CNT",
    b"BYE",
)

#: Data tags: payload = whole segments of this many bytes.
SEGMENT_BYTES = {SENSOR: 30, GPS: 99, RANGE: 12}
#: Command tags: exact payload size.
COMMAND_PAYLOAD_BYTES = {PING: 0, STATUS: 0, CADENCE: 4, FLUSH: 0}
#: What the host may send, and what pygnc sends.
HOST_TAGS = frozenset(SEGMENT_BYTES) | frozenset(COMMAND_PAYLOAD_BYTES)
PYGNC_TAGS = frozenset({HELLO_TAG, ACK_TAG, ERROR_TAG, ESTIMATE, STATUS_FILE, COUNTERS, BYE})

#: (tag, direction, payload, meaning) - the table of docs/interface.md.
TAG_TABLE = (
    (SENSOR, "host -> pygnc", "n x 30-byte sensor segments (sense.bin layout), n >= 1", "live sensor samples"),
    (GPS, "host -> pygnc", "n x 99-byte GPS segments (sense.bin layout), n >= 1", "live own GPS fixes"),
    (RANGE, "host -> pygnc", "n x 12-byte SX1280 range packets, n >= 1", "live inter-satellite ranges"),
    (PING, "host -> pygnc", "empty", "command: are you there (ACK)"),
    (STATUS, "host -> pygnc", "empty", "command: status now (ACK, then STS and CNT)"),
    (
        CADENCE,
        "host -> pygnc",
        "`<I` ms",
        "command: interval between two estimate frames of one kind (and peer); 0 = none",
    ),
    (FLUSH, "host -> pygnc", "empty", "command: close the open batch file now"),
    (HELLO_TAG, "pygnc -> host", "`HELLO` (19 bytes)", "the stream is up; sent once at start"),
    (ACK_TAG, "pygnc -> host", "`ACK` (6 bytes)", "answer to every command"),
    (ERROR_TAG, "pygnc -> host", "`ERROR` (10 bytes)", "a bad frame was received (never fatal)"),
    (
        ESTIMATE,
        "pygnc -> host",
        "one framed batch-file record",
        "an estimate (orbit, attitude, formation) or an estimator note",
    ),
    (STATUS_FILE, "pygnc -> host", "pygnc_status.bin as last written", "answer to STA"),
    (COUNTERS, "pygnc -> host", "`COUNTERS`", "the stream's counters; answer to STA"),
    (BYE, "pygnc -> host", "`COUNTERS`", "final counters, when pygnc stops"),
)

# -- payloads ---------------------------------------------------------------------------------
#: HEL: protocol version, longest line accepted (bytes), run number, estimate cadence (ms,
#: 0 = none), pygnc's spacecraft time now (s).
HELLO = struct.Struct("<BHIId")
#: ACK: SEQ and TAG of the command, result (:data:`ACK_RESULTS`).
ACK = struct.Struct("<H3sB")
ACK_OK, ACK_UNAVAILABLE, ACK_REFUSED = 0, 1, 2
ACK_RESULTS = {
    ACK_OK: "ok",
    ACK_UNAVAILABLE: "unavailable (the task it needs is not running)",
    ACK_REFUSED: "refused (argument out of range)",
}
#: ERR: error code, SEQ and TAG of the bad frame (SEQ_UNKNOWN / b"???" if unreadable), how many
#: errors of this code so far.
ERROR = struct.Struct("<BH3sI")
ERR_BAD_CRC, ERR_MALFORMED, ERR_UNKNOWN_TAG, ERR_TOO_LONG, ERR_BAD_PAYLOAD, ERR_OVERFLOW = 1, 2, 3, 4, 5, 6
ERROR_CODES = {
    ERR_BAD_CRC: ("bad_crc", "the CRC does not match (a flipped or lost character)"),
    ERR_MALFORMED: (
        "malformed",
        "not a frame: no '$', no '*CRC' at the end, bad TAG or SEQ (a truncated frame, binary garbage, noise)",
    ),
    ERR_UNKNOWN_TAG: ("unknown_tag", "a well-formed frame whose TAG the receiver does not take"),
    ERR_TOO_LONG: ("too_long", f"a line longer than {MAX_LINE_BYTES} bytes (discarded up to its end)"),
    ERR_BAD_PAYLOAD: ("bad_payload", "invalid base64, or a payload length the TAG does not allow"),
    ERR_OVERFLOW: ("overflow", "a good data frame pygnc could not take (its queue to ingest was full): lost"),
}

#: CNT / BYE payload: the stream task's counters, each ``<I`` (saturating), in this order.
COUNTER_FIELDS = (
    ("lines_in", "lines read from stdin (frames and anything else)"),
    ("bytes_in", "bytes read from stdin"),
    ("frames_in", "good frames received"),
    ("sensor_segments", "sensor segments received"),
    ("gps_segments", "GPS segments received"),
    ("range_packets", "range packets received"),
    ("commands", "commands received"),
    ("bad_crc", "ERR bad_crc"),
    ("malformed", "ERR malformed"),
    ("unknown_tag", "ERR unknown_tag"),
    ("too_long", "ERR too_long"),
    ("bad_payload", "ERR bad_payload"),
    ("overflow", "ERR overflow: data frames lost on the way to ingest"),
    ("frames_out", "frames written to stdout"),
    ("bytes_out", "bytes written to stdout"),
    ("frames_dropped_out", "frames dropped because the output queue was full (a stalled reader; the oldest go first)"),
    ("estimates_out", "EST frames queued"),
    ("estimates_superseded", "estimates replaced by a newer one before their frame was due"),
)
COUNTERS_STRUCT = struct.Struct("<" + "I" * len(COUNTER_FIELDS))
ERROR_COUNTER = {code: name for code, (name, _) in ERROR_CODES.items()}

_B64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_HEX = frozenset(b"0123456789abcdefABCDEF")


# -- encoding -----------------------------------------------------------------------------------
def crc32(data: bytes) -> int:
    return binascii.crc32(data) & 0xFFFFFFFF


def encode_frame(tag: bytes, seq: int, payload: bytes = b"") -> bytes:
    """One frame line, ``\\n`` included.  ValueError for a bad tag or a line over
    :data:`MAX_LINE_BYTES`."""
    if len(tag) != 3 or not tag.isalpha() or not tag.isupper():
        raise ValueError(f"a tag is 3 upper-case letters, got {tag!r}")
    body = tag + b"," + str(seq % SEQ_MODULO).encode() + b"," + binascii.b2a_base64(payload, newline=False)
    line = b"$" + body + b"*" + b"%08X" % crc32(body) + b"\n"
    if len(line) > MAX_LINE_BYTES:
        raise ValueError(
            f"a {tag.decode()} frame of {len(payload)} payload bytes makes a {len(line)}-byte "
            f"line (at most {MAX_LINE_BYTES})"
        )
    return line


def max_payload_bytes(tag: bytes = SENSOR) -> int:
    """Largest payload that fits in one line (5-digit SEQ): 750 bytes."""
    room = MAX_LINE_BYTES - len(b"$TAG,65535,*XXXXXXXX\n")
    return room // 4 * 3


def max_segments(tag: bytes) -> int:
    """Most segments of a data tag in one frame (SNS 25, GPS 7, RNG 62)."""
    return max_payload_bytes(tag) // SEGMENT_BYTES[tag]


def encode_counters(values: dict) -> bytes:
    return COUNTERS_STRUCT.pack(*(min(max(int(values.get(name, 0)), 0), 0xFFFFFFFF) for name, _ in COUNTER_FIELDS))


def decode_counters(payload: bytes) -> dict:
    """Counter name -> value (ValueError if the payload is not a CNT/BYE payload)."""
    if len(payload) != COUNTERS_STRUCT.size:
        raise ValueError(f"a counters payload is {COUNTERS_STRUCT.size} bytes, got {len(payload)}")
    return dict(zip((name for name, _ in COUNTER_FIELDS), COUNTERS_STRUCT.unpack(payload)))


# -- decoding -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Frame:
    tag: bytes
    seq: int
    payload: bytes


@dataclass(frozen=True)
class FrameError:
    code: int
    seq: int = SEQ_UNKNOWN
    tag: bytes = TAG_UNKNOWN
    line: bytes = b""  # the start of the offending line (at most 80 bytes), for logs

    @property
    def name(self) -> str:
        return ERROR_CODES[self.code][0]


@dataclass(frozen=True)
class Noise:
    """A line that is no frame, from a reader that ignores those (the host reading a
    terminal that also carries log lines and the shell's own output)."""

    line: bytes


def parse_line(line: bytes, accepted_tags: Container[bytes] = HOST_TAGS) -> Frame | FrameError:
    """One line (without its end) as a frame, or the error it is.  Never raises."""
    start = line.rfind(b"$")
    if start < 0:
        return FrameError(ERR_MALFORMED, line=line[:80])
    text = line[start + 1 :]
    star = len(text) - 9
    if star < 0 or text[star : star + 1] != b"*" or not _HEX.issuperset(text[star + 1 :]):
        return FrameError(ERR_MALFORMED, line=line[:80])
    body = text[:star]
    head = body.split(b",", 2)
    if len(head) != 3:
        return FrameError(ERR_MALFORMED, line=line[:80])
    tag, seq_text, b64 = head
    seq_ok = 1 <= len(seq_text) <= 5 and seq_text.isdigit() and int(seq_text) < SEQ_MODULO
    seq = int(seq_text) if seq_ok else SEQ_UNKNOWN
    tag_ok = len(tag) == 3 and tag.isalpha() and tag.isupper()
    if int(text[star + 1 :], 16) != crc32(body):
        return FrameError(ERR_BAD_CRC, seq, tag if tag_ok else TAG_UNKNOWN, line[:80])
    if not (seq_ok and tag_ok):
        return FrameError(ERR_MALFORMED, seq, tag if tag_ok else TAG_UNKNOWN, line[:80])
    if tag not in accepted_tags:
        return FrameError(ERR_UNKNOWN_TAG, seq, tag, line[:80])
    if len(b64) % 4 or not _B64_CHARS.issuperset(b64):
        return FrameError(ERR_BAD_PAYLOAD, seq, tag, line[:80])
    try:
        payload = binascii.a2b_base64(b64, strict_mode=True)
    except (binascii.Error, ValueError):
        return FrameError(ERR_BAD_PAYLOAD, seq, tag, line[:80])
    if not payload_length_ok(tag, len(payload)):
        return FrameError(ERR_BAD_PAYLOAD, seq, tag, line[:80])
    return Frame(tag, seq, payload)


def payload_length_ok(tag: bytes, n: int) -> bool:
    """Whether a payload of *n* bytes is allowed for *tag* (tags without a rule: any)."""
    unit = SEGMENT_BYTES.get(tag)
    if unit is not None:
        return n >= unit and n % unit == 0
    size = COMMAND_PAYLOAD_BYTES.get(tag)
    return size is None or n == size


class FrameReader:
    """Incremental line splitter and frame parser: bytes in, frames and errors out.

    Lines end at ``\\n`` or ``\\r`` (so ``\\r\\n`` is one end and an empty line, ignored).
    A line longer than *max_line* is discarded up to its end and reported once as
    ``too_long``; memory stays bounded whatever arrives.  With *noise_ok* (the host's view
    of a terminal that also carries log lines and the shell's own output) a line that is
    not a frame at all (``malformed`` or ``too_long``) is returned as :class:`Noise`;
    lines that look like frames but fail their CRC, TAG or payload are still errors.
    """

    def __init__(
        self, accepted_tags: Iterable[bytes] = HOST_TAGS, max_line: int = MAX_LINE_BYTES, noise_ok: bool = False
    ):
        self.accepted_tags = frozenset(accepted_tags)
        self.max_line = int(max_line)
        self.noise_ok = noise_ok
        self._buf = bytearray()
        self._discarding = False
        self._too_long_head = b""
        self.lines = 0
        self.bytes = 0

    def feed(self, data: bytes) -> list:
        out: list = []
        self.bytes += len(data)
        start = 0
        n = len(data)
        while start < n:
            nl = _line_end(data, start)
            chunk = data[start : n if nl < 0 else nl]
            if self._discarding:
                pass
            elif len(self._buf) + len(chunk) > self.max_line - 1:  # room for the line end
                self._discarding = True
                head = bytes(self._buf[:80]) + bytes(chunk[: max(0, 80 - len(self._buf))])
                self._buf.clear()
                self._too_long_head = head
            else:
                self._buf += chunk
            if nl < 0:
                break
            start = nl + 1
            self._end_line(out)
        return out

    def _end_line(self, out: list) -> None:
        if self._discarding:
            self._discarding = False
            self.lines += 1
            out.append(
                Noise(self._too_long_head) if self.noise_ok else FrameError(ERR_TOO_LONG, line=self._too_long_head)
            )
            return
        line = bytes(self._buf)
        self._buf.clear()
        if not line:
            return
        self.lines += 1
        got = parse_line(line, self.accepted_tags)
        out.append(Noise(line) if self.noise_ok and isinstance(got, FrameError) and got.code == ERR_MALFORMED else got)

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished line held (at most *max_line*)."""
        return len(self._buf)


def _line_end(data: bytes, start: int) -> int:
    a = data.find(b"\n", start)
    b = data.find(b"\r", start)
    if a < 0:
        return b
    if b < 0:
        return a
    return min(a, b)
