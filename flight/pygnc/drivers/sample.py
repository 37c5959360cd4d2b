"""What every IMU stream hands the ``imu_ingest`` task, whatever the device.

An :class:`ImuStream` is driven without blocking: ``connect_steps()`` is a generator whose
every step does a bounded amount of work (open a port, one probe, one request) and yields
the time the caller may wait before the next step; then ``fileno()`` goes into the caller's
poller, ``read_samples()`` takes what arrived, ``service(now)`` does periodic duties (a
polled device's next request) and ``close()`` releases the port.  A lost link raises
:class:`~pygnc.drivers.link.LinkLost` (or another :class:`~pygnc.drivers.link.LinkError`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple, Protocol


class ImuSample(NamedTuple):
    """One rate/acceleration sample in the IMU's own axes."""

    t_rx_mono_s: float  # host CLOCK_MONOTONIC when its bytes were read
    t_device_s: float  # device's own monotonic time, s (NaN: none)
    rate_rad_s: tuple[float, float, float]  # angular rate, IMU axes
    accel_m_s2: tuple[float, float, float]  # specific force, IMU axes
    temp_c: float  # sensor temperature (NaN: none)
    status: int  # device status word (0: none)
    lost_before: int  # samples the device's counter/timer says were lost


class ImuStream(Protocol):
    description: str

    def connect_steps(self) -> Iterator[float]: ...

    def fileno(self) -> int | None: ...

    def read_samples(self) -> list[ImuSample]: ...

    def service(self, now_mono_s: float) -> float: ...

    def close(self) -> None: ...

    def stats(self) -> dict: ...
