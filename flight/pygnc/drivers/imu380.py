"""Aceinna / MEMSIC IMU380 / DMU380 driver over any pyserial URL.

:class:`Imu380` speaks the "UU" protocol (:mod:`.imu380_codec`) over a
:class:`~pygnc.drivers.link.SerialLink`.  Every byte read goes through one framer; output
packets (S0, S1, A1, A2, N0, N1) are queued for the caller and everything else is a
response, so a request is answered correctly *while the unit streams*: a request waits
(bounded) for the response that matches it - same type, same field ids, same EEPROM address,
same flash block - or for a NAK (0x1515) naming its type, resends on timeout, and leaves
the output packets that arrived meanwhile in the queue.

Configuration changes use the quiet-act-restore sequence of the Aceinna tools, made
reliable: :meth:`Imu380.quiet` reads the packet rate, sets it to 0 (quiet), and restores it
in a ``finally`` even when the action fails; every step is a matched request with retries.

Discovery (:func:`discover`) tries the cached last-good port and baud first, then every
serial port ``serial.tools.list_ports`` reports (Bluetooth ports skipped; a port another
process holds fails its exclusive open and is skipped) at each baud rate, listening for a
valid frame (a streaming unit) and otherwise pinging; it refuses OpenIMU/OpenRTK units
(another protocol family).  Firmware upgrade: :meth:`Imu380.upgrade_firmware`.

:class:`Imu380Stream` is the non-blocking stream the ``imu_ingest`` task drives.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, NamedTuple, TypedDict, Unpack, overload

from serial.tools import list_ports

from ..atomic import write_atomic
from ..regular_files import read_small_file
from . import imu380_codec as uu
from .errors import DriverError, DriverTimeout, ProtocolError
from .link import LinkError, SerialLink
from .pump import FramePump, Received
from .sample import ImuSample
from .timing import TimerUnwrapper

#: Baud rates tried by discovery, in order (python-openimu's list, most likely first).
DEFAULT_BAUD_RATES = (115200, 57600, 38400, 230400, 460800)
#: Time a response may take, s (the unit answers within a few packet periods).
DEFAULT_TIMEOUT_S = 0.3
DEFAULT_RETRIES = 3
#: After a NAK, time allowed for the partial response that may accompany it, s.
NAK_GRACE_S = 0.05
#: Models this driver refuses (their own protocol family; python-openimu does the same).
REFUSED_MODELS = ("OpenIMU", "OpenRTK")
#: Largest firmware image accepted, bytes (the STM32 on the DMU380 has <= 1 MiB of flash).
MAX_IMAGE_BYTES = 1 << 20
WA_BLOCK_BYTES = 240
#: Largest port cache read, bytes (what :func:`write_port_cache` writes is ~200).
MAX_PORT_CACHE_BYTES = 4096


class Imu380Error(DriverError):
    """An IMU380/DMU380 exchange failed."""


class Imu380Timeout(Imu380Error, DriverTimeout):
    """The unit did not answer in time."""


class Imu380Nak(Imu380Error, ProtocolError):
    def __init__(self, ptype: bytes, detail: str = ""):
        self.ptype = ptype
        super().__init__(f"unit refused {ptype.decode('latin-1')} (NAK){': ' + detail if detail else ''}")


class FieldsRejected(Imu380Nak):
    def __init__(self, ptype: bytes, rejected: list[int], accepted: list[int]):
        self.rejected, self.accepted = rejected, accepted
        super().__init__(
            ptype,
            "fields "
            + ", ".join(f"0x{f:04x}" for f in rejected)
            + (" rejected; " + ", ".join(f"0x{f:04x}" for f in accepted) + " accepted" if accepted else " rejected"),
        )


class Imu380NotFound(Imu380Error):
    pass


class FirmwareImageError(Imu380Error):
    pass


class FirmwareUpgradeError(Imu380Error):
    pass


class _Options(TypedDict, total=False):
    """:class:`Imu380`'s keyword options (what :meth:`Imu380.open` passes on)."""

    timeout_s: float
    retries: int
    clock: Callable[[], float]
    max_queued: int


class _ProbeOptions(TypedDict, total=False):
    """:class:`Imu380`'s keyword options but the timeout (:func:`probe` sets it)."""

    retries: int
    clock: Callable[[], float]
    max_queued: int


class _RequestOptions(TypedDict, total=False):
    """:meth:`Imu380.request`'s keyword options (what the commands pass on)."""

    timeout_s: float | None
    retries: int | None


class Imu380:
    """One IMU380/DMU380 on an open link."""

    def __init__(
        self,
        link: SerialLink,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        clock: Callable[[], float] = time.monotonic,
        max_queued: int = 20000,
    ):
        self.link = link
        self.timeout_s = timeout_s
        self.retries = retries
        self.clock = clock
        self.framer = uu.Framer()
        self.counters = {"requests": 0, "resends": 0, "timeouts": 0, "naks": 0, "unmatched": 0, "packets_overflowed": 0}
        self.reader = FramePump(
            link,
            self.framer,
            lambda f: f.ptype in uu.DATA_TYPES,
            clock=clock,
            max_queued=max_queued,
            counters=self.counters,
        )
        #: Output packets read and not yet taken (:class:`~pygnc.drivers.pump.Received`), oldest first.
        self.packets = self.reader.packets

    @classmethod
    def open(cls, url: str, baudrate: int = 115200, *, exclusive: bool = True, **kw: Unpack[_Options]) -> Imu380:
        return cls(SerialLink(url, baudrate, exclusive=exclusive), **kw)

    def close(self) -> None:
        self.link.close()

    def __enter__(self) -> Imu380:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- receiving ------------------------------------------------------------------------
    def pump(self, timeout_s: float = 0.0) -> int:
        """Take what the link holds (waiting up to *timeout_s* for the first byte); output
        packets go to :attr:`packets`, the rest to the response queue.  Returns frames read."""
        return self.reader.pump(timeout_s)

    def take_packets(self) -> list[Received]:
        return self.reader.take_packets()

    # -- requests ---------------------------------------------------------------------------
    def request(
        self,
        ptype: bytes,
        payload: bytes = b"",
        match: Callable[[uu.Frame], bool] | None = None,
        *,
        timeout_s: float | None = None,
        retries: int | None = None,
        partial_on_nak: bool = False,
    ) -> uu.Frame:
        """Send a request and return the response that *match* accepts (default: same type).

        Resends after each timeout (*retries* times).  A NAK naming *ptype* raises
        :class:`Imu380Nak` - unless *partial_on_nak*, where a response arriving within
        ``NAK_GRACE_S`` of the NAK is returned (SF/WF/GF/RF answer the fields that worked
        and NAK the rest)."""
        match = match or (lambda f: f.ptype == ptype)
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        retries = self.retries if retries is None else retries
        frame = uu.build_frame(ptype, payload)
        self.counters["requests"] += 1
        self.reader.responses.clear()
        for attempt in range(retries + 1):
            if attempt:
                self.counters["resends"] += 1
            self.link.write(frame)
            deadline = self.clock() + timeout_s
            naked = False
            while True:
                while self.reader.responses:
                    f = self.reader.responses.popleft().frame
                    if f.ptype == uu.NAK and f.payload == ptype:
                        self.counters["naks"] += 1
                        if not partial_on_nak:
                            raise Imu380Nak(ptype)
                        naked = True
                        deadline = min(deadline, self.clock() + NAK_GRACE_S)
                        continue
                    try:
                        ok = match(f)
                    except uu.CodecError:
                        ok = False
                    if ok:
                        return f
                    self.counters["unmatched"] += 1
                remaining = deadline - self.clock()
                if remaining <= 0:
                    break
                self.pump(min(remaining, 0.05))
            if naked:
                raise Imu380Nak(ptype)
            self.counters["timeouts"] += 1
        raise Imu380Timeout(
            f"no answer to {ptype.decode('latin-1')} on {self.link.url} "
            f"after {retries + 1} attempts of {timeout_s:.2f} s"
        )

    def ping(self, **kw: Unpack[_RequestOptions]) -> None:
        self.request(uu.PING, match=lambda f: f.ptype == uu.PING and not f.payload, **kw)

    def echo(self, data: bytes, **kw: Unpack[_RequestOptions]) -> bytes:
        return self.request(uu.ECHO, data, match=lambda f: f.ptype == uu.ECHO and f.payload == data, **kw).payload

    def get_packet(self, ptype: bytes, **kw: Unpack[_RequestOptions]) -> uu.Frame:
        return self.request(uu.GET_PACKET, ptype, match=lambda f: f.ptype == ptype, **kw)

    def get_id(self, **kw: Unpack[_RequestOptions]) -> uu.DeviceId:
        return uu.decode_id(self.get_packet(uu.ID, **kw).payload)

    def get_version(self, **kw: Unpack[_RequestOptions]) -> uu.Version:
        return uu.decode_vr(self.get_packet(uu.VR, **kw).payload)

    def get_bit(self, **kw: Unpack[_RequestOptions]) -> dict[str, int]:
        """T0: the detailed built-in test words."""
        return uu.decode_t0(self.get_packet(uu.T0, **kw).payload)

    def _fields(self, ptype: bytes, field_ids: Iterable[int], **kw: Unpack[_RequestOptions]) -> dict[int, int]:
        ids = [int(f) for f in field_ids]
        try:
            f = self.request(
                ptype,
                uu.field_ids_payload(ids),
                match=lambda f: f.ptype == ptype and set(uu.decode_field_values(f.payload)) <= set(ids),
                partial_on_nak=True,
                **kw,
            )
        except FieldsRejected:
            raise
        except Imu380Nak:
            raise FieldsRejected(ptype, ids, []) from None
        values = uu.decode_field_values(f.payload)
        missing = [i for i in ids if i not in values]
        if missing:
            raise FieldsRejected(ptype, missing, sorted(values))
        return values

    def get_fields(self, field_ids: Iterable[int], **kw: Unpack[_RequestOptions]) -> dict[int, int]:
        """GF: current (RAM) values."""
        return self._fields(uu.GET_FIELDS, field_ids, **kw)

    def read_fields(self, field_ids: Iterable[int], **kw: Unpack[_RequestOptions]) -> dict[int, int]:
        """RF: saved (EEPROM) values, in force at the next power-up."""
        return self._fields(uu.READ_FIELDS, field_ids, **kw)

    def _put_fields(self, ptype: bytes, values: dict[int, int], **kw: Unpack[_RequestOptions]) -> None:
        values = {int(k): int(v) for k, v in values.items()}
        try:
            f = self.request(
                ptype,
                uu.field_values_payload(values),
                match=lambda f: f.ptype == ptype and set(uu.decode_field_ids(f.payload)) <= set(values),
                partial_on_nak=True,
                **kw,
            )
        except FieldsRejected:
            raise
        except Imu380Nak:
            raise FieldsRejected(ptype, list(values), []) from None
        done = uu.decode_field_ids(f.payload)
        rejected = [i for i in values if i not in done]
        if rejected:
            raise FieldsRejected(ptype, rejected, done)

    def set_fields(self, values: dict[int, int], **kw: Unpack[_RequestOptions]) -> None:
        """SF: change current values now (lost at power-off)."""
        self._put_fields(uu.SET_FIELDS, values, **kw)

    def write_fields(self, values: dict[int, int], **kw: Unpack[_RequestOptions]) -> None:
        """WF: change saved values (in force at the next power-up).  The unit takes a while
        to write its EEPROM: the default timeout is 1.5 s."""
        kw.setdefault("timeout_s", max(self.timeout_s, 1.5))
        self._put_fields(uu.WRITE_FIELDS, values, **kw)

    def read_eeprom(
        self, address: int, n_words: int, *, chunk_words: int = 64, **kw: Unpack[_RequestOptions]
    ) -> list[int]:
        """RE: *n_words* 16-bit words from EEPROM word address *address* (in chunks)."""
        out: list[int] = []
        while len(out) < n_words:
            a, n = address + len(out), min(chunk_words, n_words - len(out))
            payload = a.to_bytes(2, "big") + bytes((n,))
            f = self.request(
                uu.READ_EEPROM,
                payload,
                # mypy cannot type a lambda with defaults (they bind the loop's a, n): ignored below
                match=lambda f, a=a, n=n: f.ptype == uu.READ_EEPROM and f.payload[:3] == bytes((a >> 8, a & 0xFF, n)),  # type: ignore[misc]
                **kw,
            )
            got_a, words = uu.decode_eeprom(f.payload)
            out += words
        return out

    # -- quiet, act, restore ----------------------------------------------------------------
    class _Restore:
        def __init__(self, divider: int):
            self.divider = divider  # what is restored; a caller may change it

    @contextmanager
    def quiet(self, settle_s: float = 0.05) -> Iterator[Imu380._Restore]:
        """Stop the output stream for the body of the ``with``, then restore the packet rate
        (also when the body fails).  Yields an object whose ``divider`` is what is restored."""
        divider = self.get_fields([uu.FIELD_PACKET_RATE])[uu.FIELD_PACKET_RATE]
        restore = self._Restore(divider)
        if divider:
            self.set_fields({uu.FIELD_PACKET_RATE: 0})
            t_end = self.clock() + settle_s
            while self.clock() < t_end:  # take the packets already on their way
                self.pump(t_end - self.clock())
        try:
            yield restore
        finally:
            if restore.divider:
                try:
                    self.set_fields({uu.FIELD_PACKET_RATE: restore.divider})
                except Imu380Error as exc:
                    raise Imu380Error(
                        f"could not restore the packet rate (divider {restore.divider}); the unit is left quiet: {exc}"
                    ) from exc

    def configure(
        self,
        *,
        packet_rate_hz: float | None = None,
        packet_type: str | None = None,
        accel_lpf_hz: float | None = None,
        rate_lpf_hz: float | None = None,
        orientation: str | None = None,
        baud: int | None = None,
        persist: bool = False,
    ) -> dict[int, int]:
        """Change configuration fields: now (SF) or, with *persist*, from the next power-up
        (WF).  Returns the field values written.  A baud change made now is followed by the
        link (and checked with a ping; on failure the link goes back to the old baud)."""
        values: dict[int, int] = {}
        if packet_type is not None:
            values[uu.FIELD_PACKET_TYPE] = uu.packet_type_value(packet_type)
        if accel_lpf_hz is not None:
            values[uu.FIELD_ACCEL_LPF] = uu.lpf_count(accel_lpf_hz)
        if rate_lpf_hz is not None:
            values[uu.FIELD_RATE_LPF] = uu.lpf_count(rate_lpf_hz)
        if orientation is not None:
            values[uu.FIELD_ORIENTATION] = uu.orientation_value(orientation)
        rate_div = None if packet_rate_hz is None else uu.packet_rate_divider(packet_rate_hz)
        code = None if baud is None else uu.baud_code(baud)
        put = self.write_fields if persist else self.set_fields
        with self.quiet() as restore:
            if values:
                put(values)
            if rate_div is not None:
                if persist:
                    put({uu.FIELD_PACKET_RATE: rate_div})
                else:
                    restore.divider = rate_div
            if code is not None:
                if persist:
                    put({uu.FIELD_BAUD: code})
                else:
                    assert baud is not None  # code is baud's
                    self._switch_baud(code, baud)
        written = dict(values)
        if rate_div is not None:
            written[uu.FIELD_PACKET_RATE] = rate_div
        if code is not None:
            written[uu.FIELD_BAUD] = code
        return written

    def _switch_baud(self, code: int, baud: int) -> None:
        old = self.link.baudrate
        try:
            self.set_fields({uu.FIELD_BAUD: code}, retries=0)
        except Imu380Timeout:
            pass  # the answer may have gone out at the new baud already: the ping decides
        time.sleep(0.02)  # let the unit switch
        self.link.set_baudrate(baud)
        self.framer.reset()
        try:
            self.ping()
        except Imu380Error:
            self.link.set_baudrate(old)
            self.framer.reset()
            raise Imu380Error(f"the unit did not answer at {baud} baud after the change; back at {old} baud") from None

    # -- firmware ---------------------------------------------------------------------------
    def upgrade_firmware(
        self,
        image: bytes,
        *,
        progress: Callable[[int, int], None] | None = None,
        block_bytes: int = WA_BLOCK_BYTES,
        erase_wait_s: float = 10.0,
        block_timeout_s: float = 1.0,
        boot_wait_s: float = 2.0,
        app_start_timeout_s: float = 5.0,
        check_vector_table: bool = True,
        max_image_bytes: int = MAX_IMAGE_BYTES,
    ) -> dict:
        """Write *image* through the bootloader: JI, WA blocks, JA; then wait for the
        application to answer.  Refuses a bad image before touching the unit (see
        :func:`check_firmware_image`).  Every block must be acknowledged with its own
        address and length (resent on timeout, aborted on NAK).  Returns a summary with the
        new ID and version.  *progress(bytes_done, bytes_total)* is called after each block."""
        check_firmware_image(image, max_bytes=max_image_bytes, check_vector_table=check_vector_table)
        total = len(image)
        # 1. into the bootloader
        try:
            self.request(uu.JUMP_BOOTLOADER, timeout_s=max(1.0, self.timeout_s), retries=2)
        except Imu380Error as exc:
            raise FirmwareUpgradeError(f"the unit did not enter its bootloader: {exc}") from exc
        t_end = self.clock() + boot_wait_s
        while self.clock() < t_end:  # it reboots: drop whatever comes meanwhile
            self.pump(min(0.05, max(0.0, t_end - self.clock())))
        self.packets.clear()
        self.framer.reset()
        self.link.discard_input()
        # 2. the blocks
        done = 0
        resends0 = self.counters["resends"]
        if progress:
            progress(0, total)
        while done < total:
            block = image[done : done + block_bytes]
            addr, n_block = done, len(block)
            try:
                self.request(
                    uu.WRITE_APP,
                    addr.to_bytes(4, "big") + bytes((len(block),)) + block,
                    # mypy cannot type a lambda with defaults (they bind the loop's addr, n_block)
                    match=lambda f, a=addr, n=n_block: (  # type: ignore[misc]
                        f.ptype == uu.WRITE_APP and uu.decode_write_app(f.payload) == (a, n)
                    ),
                    timeout_s=erase_wait_s if addr == 0 else block_timeout_s,
                )
            except Imu380Error as exc:
                raise FirmwareUpgradeError(
                    f"block at 0x{addr:06x} ({done} of {total} bytes written) "
                    f"failed: {exc}; the unit stays in its bootloader - run the "
                    f"upgrade again"
                ) from exc
            done += len(block)
            if progress:
                progress(done, total)
        # 3. back to the application, and check it runs
        try:
            self.request(uu.JUMP_APP, timeout_s=1.0, retries=1)
        except Imu380Timeout:
            pass  # some bootloaders jump without answering: the ping below decides
        except Imu380Nak as exc:
            raise FirmwareUpgradeError(f"the bootloader refused to start the application: {exc}") from exc
        t_end = self.clock() + app_start_timeout_s
        while True:
            try:
                self.ping(timeout_s=0.25, retries=0)
                break
            except Imu380Error:
                if self.clock() > t_end:
                    raise FirmwareUpgradeError("the application did not answer after the upgrade") from None
        dev_id = self.get_id()
        try:
            version = str(self.get_version())
        except Imu380Error:
            version = ""
        return {
            "bytes": total,
            "blocks": -(-total // block_bytes),
            "resends": self.counters["resends"] - resends0,
            "id": dev_id,
            "version": version,
        }


def check_firmware_image(image: bytes, *, max_bytes: int = MAX_IMAGE_BYTES, check_vector_table: bool = True) -> None:
    """Raise :class:`FirmwareImageError` naming the problem if *image* is not a plausible
    raw application binary: empty, larger than the flash, a text file (Intel HEX or
    S-record: convert it to raw binary first), blank (all one byte), or - assuming a
    Cortex-M application that starts with its vector table (UNSURE for this unit; skip with
    ``check_vector_table=False``) - an initial stack pointer outside SRAM or a reset vector
    that is not a Thumb address in flash."""
    if not image:
        raise FirmwareImageError("the image is empty")
    if len(image) > max_bytes:
        raise FirmwareImageError(f"the image is {len(image)} bytes, more than the {max_bytes} bytes of flash")
    head = bytes(image[:64])
    if head[:1] == b":" and all(32 <= c < 127 or c in b"\r\n" for c in head):
        raise FirmwareImageError("the image is an Intel HEX text file; convert it to a raw binary")
    if head[:2] in (b"S0", b"S1", b"S2", b"S3") and all(32 <= c < 127 or c in b"\r\n" for c in head):
        raise FirmwareImageError("the image is a Motorola S-record text file; convert it to a raw binary")
    if image.count(image[:1]) == len(image):
        raise FirmwareImageError(f"the image is blank (every byte is 0x{image[0]:02x})")
    if check_vector_table:
        if len(image) < 8:
            raise FirmwareImageError("the image is shorter than a vector table")
        sp = int.from_bytes(image[0:4], "little")
        reset = int.from_bytes(image[4:8], "little")
        if not (0x2000_0000 <= sp <= 0x2010_0000 and sp % 4 == 0):
            raise FirmwareImageError(f"initial stack pointer 0x{sp:08x} is not in SRAM: not an application image")
        if not (reset & 1 and 0x0800_0000 <= reset < 0x0810_0000 or reset & 1 and reset < max_bytes):
            raise FirmwareImageError(f"reset vector 0x{reset:08x} is not a Thumb address in flash")


# -- discovery -------------------------------------------------------------------------------


class Found(NamedTuple):
    port: str
    baud: int
    device_id: uu.DeviceId
    streaming: bool


def candidate_ports() -> list[str]:
    """Serial ports the OS reports, without Bluetooth ones."""
    out = []
    for p in list_ports.comports():
        text = f"{p.device} {p.description or ''} {p.hwid or ''}".lower()
        if "bluetooth" in text:
            continue
        out.append(p.device)
    return out


def read_port_cache(path: str | os.PathLike | None) -> tuple[str, int] | None:
    """The cached (port, baud), or None when there is none usable: a missing, unreadable,
    malformed or over-long file, or anything but a regular file (a FIFO there is refused,
    never waited on)."""
    if not path:
        return None
    try:
        d = json.loads(read_small_file(path, MAX_PORT_CACHE_BYTES))
        return str(d["port"]), int(d["baud"])
    except (OSError, ValueError, KeyError, TypeError, OverflowError):
        return None


def write_port_cache(path: str | os.PathLike | None, found: Found) -> None:
    if not path:
        return
    data = {
        "port": found.port,
        "baud": found.baud,
        "serial_number": found.device_id.serial_number,
        "model": found.device_id.model,
        "t_unix_s": time.time(),
    }
    try:
        write_atomic(path, (json.dumps(data, indent=1) + "\n").encode())
    except OSError:
        pass  # a cache that cannot be written costs a slower discovery next time, nothing more


def discovery_plan(
    ports: Collection[str], baud_rates: Collection[int], cached: tuple[str, int] | None = None
) -> list[tuple[str, int]]:
    """(port, baud) pairs in the order to try them: the cached pair first."""
    plan = [(p, b) for p in ports for b in baud_rates]
    if cached is not None and (cached[0] in ports or os.path.exists(cached[0])):
        if cached in plan:
            plan.remove(cached)
        plan.insert(0, cached)
    return plan


@overload
def probe(
    port: str,
    baud: int,
    *,
    timeout_s: float = ...,
    listen_s: float = ...,
    exclusive: bool = ...,
    keep_open: Literal[False] = ...,
    **kw: Unpack[_ProbeOptions],
) -> Found | None: ...


@overload
def probe(
    port: str,
    baud: int,
    *,
    timeout_s: float = ...,
    listen_s: float = ...,
    exclusive: bool = ...,
    keep_open: Literal[True],
    **kw: Unpack[_ProbeOptions],
) -> tuple[Found, Imu380] | None: ...


def probe(
    port: str,
    baud: int,
    *,
    timeout_s: float = 0.25,
    listen_s: float = 0.12,
    exclusive: bool = True,
    keep_open: bool = False,
    **kw: Unpack[_ProbeOptions],
) -> Found | tuple[Found, Imu380] | None:
    """Is an IMU380/DMU380 on *port* at *baud*?  Returns :class:`Found` (and, with
    *keep_open*, the open :class:`Imu380` as a second element), or None.  A port that cannot
    be opened (absent, or held by another process) is None too."""
    try:
        dev = Imu380.open(port, baud, exclusive=exclusive, timeout_s=timeout_s, **kw)
    except LinkError:
        return None
    ok = False
    try:
        streaming = False
        t_end = dev.clock() + listen_s
        while dev.clock() < t_end and not streaming:  # a streaming unit shows itself
            dev.pump(max(0.0, t_end - dev.clock()))
            streaming = bool(dev.packets)
        if not streaming:
            dev.ping(retries=1)
        dev_id = dev.get_id(retries=1)
        if any(m.lower() in dev_id.model.lower() for m in REFUSED_MODELS):
            return None
        ok = True
        found = Found(port, baud, dev_id, streaming)
        return (found, dev) if keep_open else found
    except DriverError:  # no answer, a refusal, bytes that are not a reply, a lost port
        return None
    finally:
        if not ok or not keep_open:
            dev.close()


def discover(
    ports: Iterable[str] | None = None,
    baud_rates: Collection[int] = DEFAULT_BAUD_RATES,
    *,
    timeout_s: float = 10.0,
    cache_path: str | os.PathLike | None = None,
    probe_timeout_s: float = 0.25,
) -> Found:
    """Find a unit: the cached port first, then every port at every baud, until *timeout_s*.
    Raises :class:`Imu380NotFound` saying what was tried."""
    t_end = time.monotonic() + timeout_s
    tried: list[str] = []
    while True:
        port_list = candidate_ports() if ports is None else list(ports)
        for port, baud in discovery_plan(port_list, baud_rates, read_port_cache(cache_path)):
            found = probe(port, baud, timeout_s=probe_timeout_s)
            tried.append(f"{port}@{baud}")
            if found is not None:
                write_port_cache(cache_path, found)
                return found
            if time.monotonic() > t_end:
                break
        if time.monotonic() > t_end:
            raise Imu380NotFound(
                f"no IMU380/DMU380 found in {timeout_s:.0f} s; tried "
                + (", ".join(dict.fromkeys(tried)) or "no port (none reported)")
            )
        time.sleep(0.2)


# -- the stream for the ingest task --------------------------------------------------------


class Imu380Stream:
    """Non-blocking IMU380 stream: connect (optionally discover, optionally configure),
    then decode output packets into :class:`~pygnc.drivers.sample.ImuSample`.

    Device time: S1's packet counter at the unit's packet rate (read at connect), unwrapped
    (16 bits); a counter step above 1 reports lost packets.  Other packet types carry no
    usable device clock (their ITOW is "not implemented" on the SA units): t_device_s NaN.
    An output packet with a valid CRC but a payload its type does not allow is skipped and
    counted (``frames_bad``); the packets around it are decoded as usual."""

    def __init__(
        self,
        port: str,
        *,
        baud: int = 0,
        baud_rates: Iterable[int] = DEFAULT_BAUD_RATES,
        packet_type: str = "",
        packet_rate_hz: float = 0.0,
        cache_path: str | os.PathLike | None = None,
        probe_timeout_s: float = 0.25,
        discovery_ports: Iterable[str] = (),
    ):
        self.port = port
        self.discovery_ports = tuple(discovery_ports)
        self.baud = baud
        self.baud_rates = tuple(baud_rates)
        self.packet_type = packet_type
        self.packet_rate_hz = packet_rate_hz
        if packet_type and uu.packet_type_from_value(uu.packet_type_value(packet_type)) not in uu.DATA_TYPES:
            raise uu.CodecError(
                f"packet type {packet_type!r} is not an output packet "
                f"({', '.join(sorted(t.decode() for t in uu.DATA_TYPES))})"
            )
        if packet_rate_hz:
            uu.packet_rate_divider(packet_rate_hz)
        self.cache_path = cache_path
        self.probe_timeout_s = probe_timeout_s
        self.dev: Imu380 | None = None
        self.found: Found | None = None
        self.rate_hz = math.nan
        self.description = f"imu380 {port}"
        self._unwrap: TimerUnwrapper | None = None
        self._last_counter: int | None = None
        self.samples = 0
        self.lost = 0
        self.ignored = 0
        self.frames_bad = 0  # CRC-valid output packets the codec refuses (wrong length)

    def connect_steps(self) -> Iterator[float]:
        if self.port == "auto":
            ports = list(self.discovery_ports) or candidate_ports()
            plan = discovery_plan(ports, self.baud_rates, read_port_cache(self.cache_path))
        else:
            plan = [(self.port, b) for b in ((self.baud,) if self.baud else self.baud_rates)]
        got = None
        for port, baud in plan:
            got = probe(port, baud, timeout_s=self.probe_timeout_s, keep_open=True)
            if got is not None:
                break
            yield 0.0
        if got is None:
            raise Imu380NotFound(
                "no IMU380/DMU380 answered on " + (", ".join(f"{p}@{b}" for p, b in plan) or "any port")
            )
        self.found, self.dev = got
        self.description = f"imu380 {self.found.port}@{self.found.baud} sn {self.found.device_id.serial_number}"
        yield 0.0
        try:
            values = {}
            if self.packet_type:
                values[uu.FIELD_PACKET_TYPE] = uu.packet_type_value(self.packet_type)
            if self.packet_rate_hz:
                values[uu.FIELD_PACKET_RATE] = uu.packet_rate_divider(self.packet_rate_hz)
            if values:
                self.dev.set_fields(values)
                yield 0.0
            cur = self.dev.get_fields([uu.FIELD_PACKET_RATE, uu.FIELD_PACKET_TYPE])
        except BaseException:
            self.close()
            raise
        self.rate_hz = uu.PACKET_RATE_HZ.get(cur[uu.FIELD_PACKET_RATE], math.nan)
        if cur[uu.FIELD_PACKET_RATE] == 0:
            self.close()
            raise Imu380Error(f"{self.description} is quiet (packet rate 0, polled mode): configure imu_packet_rate_hz")
        self.description += (
            f" {uu.packet_type_from_value(cur[uu.FIELD_PACKET_TYPE]).decode('latin-1')} at {self.rate_hz:g} Hz"
        )
        if self.cache_path and self.port == "auto":
            write_port_cache(self.cache_path, self.found)
        self._unwrap = TimerUnwrapper(65536, self.rate_hz) if self.rate_hz > 0 else None
        self._last_counter = None

    def fileno(self) -> int | None:
        return None if self.dev is None else self.dev.link.fileno()

    def read_samples(self) -> list[ImuSample]:
        dev = self.dev
        if dev is None:
            return []
        dev.pump()
        out = []
        nan = math.nan
        for t_rx, frame in dev.take_packets():
            # A packet the codec refuses costs only itself: counted, the others decoded.
            try:
                # (Any: which packet it is follows from frame.ptype and hasattr, which mypy cannot narrow by)
                p: Any = uu.decode_output(frame)
            except uu.CodecError:
                self.frames_bad += 1
                continue
            if p is None:
                continue
            lost = 0
            t_dev = nan
            if frame.ptype == uu.S1:
                if self._last_counter is not None:
                    step = (p.counter - self._last_counter) % 65536
                    lost = max(0, step - 1)
                self._last_counter = p.counter
                if self._unwrap is not None:
                    t_dev, jump = self._unwrap.unwrap(p.counter, t_rx)
                temp = p.board_temp_c
            elif hasattr(p, "rate_temp_c"):
                temp = p.rate_temp_c[0] if isinstance(p.rate_temp_c, tuple) else p.rate_temp_c
            elif hasattr(p, "rate_temp_x_c"):
                temp = p.rate_temp_x_c
            else:
                temp = nan
            accel = getattr(p, "accel_m_s2", None)
            if accel is None:  # N0 has no acceleration
                accel = (nan, nan, nan)
            self.lost += lost
            out.append(ImuSample(t_rx, t_dev, p.rate_rad_s, accel, temp, p.bit_status, lost))
        self.samples += len(out)
        return out

    def service(self, now_mono_s: float) -> float:
        return math.inf

    def close(self) -> None:
        if self.dev is not None:
            self.dev.close()
            self.dev = None

    def stats(self) -> dict:
        d = {"samples": self.samples, "lost": self.lost, "frames_bad": self.frames_bad}
        if self.dev is not None:
            d.update(self.dev.framer.stats.as_dict())
            d.update(self.dev.counters)
        return d
