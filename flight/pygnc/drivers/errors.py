"""The drivers' exception tree: one root, so a caller catches :class:`DriverError` rather
than a tuple of per-device roots (the shape of python-can's ``CanError`` and pySerial's
``SerialException``).

* :class:`DriverError` - any failure a driver reports (root).
* :class:`DriverTimeout` - a device did not answer in time; also a :class:`TimeoutError`.
* :class:`CodecError` - bytes that are not a valid frame, record or sentence (a bad CRC,
  a wrong length, a malformed field); also a :class:`ValueError`, as the codecs' errors were.
* :class:`ProtocolError` - the device refused a command (a NAK) or answered outside its
  protocol.

Each device keeps its own classes (``Imu380Error``, ``OpcChecksumError``, ``LinkLost``, ...)
as subclasses of these, for the callers that tell them apart.  Standard library only: the
codecs and ``--check-config`` import it on a Python without pyserial.
"""

from __future__ import annotations


class DriverError(Exception):
    """A driver failed: the root of every driver exception."""


class DriverTimeout(DriverError, TimeoutError):
    """A device did not answer in time."""


class CodecError(DriverError, ValueError):
    """Bytes that are not a valid frame, record or sentence."""


class ProtocolError(DriverError):
    """The device refused a command (NAK) or answered outside its protocol."""
