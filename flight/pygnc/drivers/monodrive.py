"""monoDrive's IMU sensor (a 3DM-GX2 emulation) over UDP or TCP.

UDP (``udp://HOST:PORT``): we bind HOST:PORT and the simulator sends one frame per datagram
(monoDrive's ``listen_port``).  TCP (``tcp://HOST:PORT``): we connect to the simulator and
split the stream by the header's length.  HOST must be a loopback address unless the caller
allows a network interface explicitly (flight rule: no socket on a network interface).

Device time: the header's game time (float32 s; its resolution coarsens as it grows:
~0.06 ms at 1000 s, ~8 ms at 10^5 s).  Lost frames: gaps in the v16 header's sample count.

Supported: the simulator's GX2 emulation (releases up to 1.14).  A frame whose payload is
not that (release 1.15's 168-byte IMU frame, another sensor's port) is refused and counted
(``frames_wrong_format``, apart from ``frames_bad``: damage); :attr:`MonoDriveStream.refusal`
says what the last one was, for the task's log when no valid sample comes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

from . import monodrive_codec as md
from .link import LinkError, TcpLink, UdpLink, is_loopback, parse_socket_url
from .sample import ImuSample


class MonoDriveStream:
    def __init__(
        self,
        url: str,
        *,
        header: str = "v16",
        verify_checksum: bool = False,
        allow_network: bool = False,
        clock: Callable[[], float] | None = None,
    ):
        self.scheme, self.host, self.port = parse_socket_url(url)
        if header not in md.HEADERS:
            raise LinkError(f"monoDrive header {header!r}: expected one of {sorted(md.HEADERS)}")
        if self.scheme == "tcp" and header == "udp8":
            raise LinkError("the udp8 header carries no length: TCP needs v16 or tcp12")
        if not allow_network and not is_loopback(self.host):
            raise LinkError(
                f"{url}: {self.host} is not a loopback address; flight sockets stay on "
                "loopback unless imu_allow_network is set"
            )
        self.url, self.header, self.verify_checksum = url, header, verify_checksum
        self.clock = clock or time.monotonic
        self.link: UdpLink | TcpLink | None = None
        self.framer: md.TcpFramer | None = None
        self.description = f"monodrive {url} ({header})"
        self.samples = self.lost = self.frames_bad = self.checksum_bad = self.frames_wrong_format = 0
        #: Why the last refused frame was refused (None: none refused).
        self.refusal: str | None = None
        self._last_count: int | None = None

    def connect_steps(self) -> Iterator[float]:
        if self.scheme == "udp":
            self.link = UdpLink(self.host, self.port)
        else:
            self.link = TcpLink(self.host, self.port)
            self.framer = md.TcpFramer(self.header)
        self._last_count = None
        return
        yield  # a generator with a single bounded step

    def fileno(self) -> int | None:
        return None if self.link is None else self.link.fileno()

    def _frames(self) -> list[bytes]:
        if isinstance(self.link, UdpLink):
            return self.link.read_datagrams()
        assert self.link is not None and self.framer is not None  # open
        data = self.link.read()
        try:
            return self.framer.feed(data) if data else []
        except md.CodecError as exc:
            raise LinkError(f"{self.url}: {exc}") from exc

    def read_samples(self) -> list[ImuSample]:
        if self.link is None:
            return []
        frames = self._frames()
        if not frames:
            return []
        t = self.clock()
        out = []
        for f in frames:
            try:
                m = md.decode_frame(f, self.header, verify_checksum=self.verify_checksum)
            except md.FormatError as exc:
                self.frames_wrong_format += 1
                self.refusal = f"wrong format: {exc}"
                continue
            except (md.CodecError, ValueError) as exc:
                self.frames_bad += 1
                self.refusal = f"bad frame: {exc}"
                continue
            if not m.checksum_ok:
                self.checksum_bad += 1
            lost = 0
            if m.sample_count >= 0:
                if self._last_count is not None and m.sample_count > self._last_count + 1:
                    lost = m.sample_count - self._last_count - 1
                self._last_count = m.sample_count
            self.lost += lost
            out.append(ImuSample(t, float(m.game_time_s), m.rate_rad_s, m.accel_m_s2, math.nan, 0, lost))
        self.samples += len(out)
        return out

    def service(self, now_mono_s: float) -> float:
        return math.inf

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None

    def stats(self) -> dict:
        return {
            "samples": self.samples,
            "lost": self.lost,
            "frames_bad": self.frames_bad,
            "frames_wrong_format": self.frames_wrong_format,
            "checksum_bad": self.checksum_bad,
        }
