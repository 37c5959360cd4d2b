"""What a housekeeping driver hands to its task: one decoded reading of one device."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Reading:
    """One decoded record of a device.

    ``name`` is the record kind (an EMUS sentence name such as ``"BV1"``, or an OPC-N3
    record such as ``"histogram"``); ``values`` its fields in physical units (units in the
    names; None where the device sent nothing); ``raw`` the bytes it was decoded from
    (checksum-verified), so the ground can decode it again with the same codec;
    ``t_mono_s`` the CLOCK_MONOTONIC time it was received; ``solicited`` False for a
    sentence nobody asked for (request mode).
    """

    name: str
    values: dict
    raw: bytes
    t_mono_s: float
    solicited: bool = True
