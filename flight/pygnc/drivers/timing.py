"""Device time: wrapping timers made monotonic, and device time mapped onto the host clock.

Pure (no clock is read here): callers pass host times in.

* :class:`TimerUnwrapper` - a counter of ``modulus`` ticks at ``ticks_per_s`` (the GX2's
  32-bit 19.6608 MHz timer, the IMU380's 16-bit S1 packet counter) becomes device seconds
  that never go back.  Wraps are counted from the host time elapsed between samples, so a
  gap longer than one wrap period (a dropped link, a stalled reader) still counts every
  wrap; a timer that runs backwards or jumps by more than a quarter of its period from what
  the host time allows (the device rebooted) is reported as a discontinuity.
* :class:`ClockSync` - host time ~= device time + offset.  A sample is read some time after
  it was taken (transmission, USB and OS latency, all >= 0), so the offset is the smallest
  ``t_rx - t_device`` seen over a sliding window (the usual one-way-delay estimate).  The
  window lets it follow a slow drift between the two clocks.
"""

from __future__ import annotations

import math
from collections import deque


class TimerUnwrapper:
    def __init__(self, modulus: int, ticks_per_s: float):
        if modulus <= 1 or not ticks_per_s > 0:
            raise ValueError("modulus must be > 1 and ticks_per_s > 0")
        self.modulus = int(modulus)
        self.ticks_per_s = float(ticks_per_s)
        self.wraps = 0
        self.discontinuities = 0
        self._raw: int | None = None
        self._t_host: float | None = None
        self._ticks = 0  # unwrapped ticks of the last sample

    def reset(self) -> None:
        self._raw = self._t_host = None

    def unwrap(self, raw: int, t_host_s: float) -> tuple[float, bool]:
        """(device time in s, discontinuity) for a sample with timer value *raw* read at
        host time *t_host_s*.  After a discontinuity the count restarts from *raw*."""
        raw = int(raw) % self.modulus
        if self._raw is None:
            self._raw, self._t_host, self._ticks = raw, t_host_s, raw
            return raw / self.ticks_per_s, False
        assert self._t_host is not None  # set with _raw
        d_raw = (raw - self._raw) % self.modulus
        expected = max(0.0, t_host_s - self._t_host) * self.ticks_per_s
        k = round((expected - d_raw) / self.modulus)
        self._raw, self._t_host = raw, t_host_s
        if k < 0 or abs(d_raw + k * self.modulus - expected) > self.modulus / 4:
            # The timer moved far from what the host time allows (or ran back): not a
            # wrap - the device restarted its timer, or the data is bad.
            self.discontinuities += 1
            self._ticks = raw
            return raw / self.ticks_per_s, True
        ticks = self._ticks + d_raw + k * self.modulus
        self.wraps += ticks // self.modulus - self._ticks // self.modulus
        self._ticks = ticks
        return ticks / self.ticks_per_s, False


class ClockSync:
    """Map device time onto host time by the minimum delay over a sliding window."""

    def __init__(self, window_s: float = 10.0):
        self.window_s = float(window_s)
        self._win: deque[tuple[float, float]] = deque()  # (t_device, t_rx - t_device), increasing
        self._last_out = -math.inf

    def reset(self) -> None:
        self._win.clear()
        self._last_out = -math.inf

    def observe(self, t_device_s: float, t_rx_s: float) -> None:
        """A sample taken at device time *t_device_s* was read at host time *t_rx_s*."""
        d = t_rx_s - t_device_s
        win = self._win
        while win and win[-1][1] >= d:  # monotone deque: the front holds the minimum
            win.pop()
        win.append((t_device_s, d))
        while win[0][0] < t_device_s - self.window_s:
            win.popleft()

    def host_time(self, t_device_s: float) -> float:
        """Host time of device time *t_device_s* with the current offset: never later than
        the read time of any sample observed within the window."""
        return t_device_s + self._win[0][1] if self._win else math.nan

    def update(self, t_device_s: float, t_rx_s: float) -> float:
        """observe + host_time, made strictly increasing from call to call (a sample seen
        early with a large delay can make the next estimate go back; it is held at +1 us)."""
        self.observe(t_device_s, t_rx_s)
        t = self.host_time(t_device_s)
        if t <= self._last_out:
            t = self._last_out + 1e-6
        self._last_out = t
        return t
