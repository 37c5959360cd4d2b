"""The 99-byte GPS segment (a cut of NovAtel BESTXYZ) shared by sense.bin and range files.

Byte layout (offsets in bytes; mixed endianness exactly as the flight team writes it)::

    0   uint32 BE  t_sc_s            spacecraft time at the fix, unix s (PyCubed clock)
    4   uint8      time_status       NovAtel GPS reference time status (20 UNKNOWN ... 180 FINESTEERING)
    5   uint16 LE  week              GPS week
    7   uint32 LE  ms_of_week        milliseconds of GPS week
    11  uint8      solution_status   NovAtel position solution status (0 SOL_COMPUTED, 1 INSUFFICIENT_OBS, ...)
    12  3 x f8 LE  pos_ecef_m        ECEF position, m
    36  3 x f4 LE  pos_sigma_m       1-sigma of position, m
    48  uint8      vel_status        NovAtel velocity solution status
    49  3 x f8 LE  vel_ecef_m_s      ECEF velocity, m/s
    73  3 x f4 LE  vel_sigma_m_s     1-sigma of velocity, m/s
    85  f4 LE      v_latency_s       velocity time-tag latency, s
    89  f4 LE      diff_age_s        differential age, s
    93  f4 LE      sol_age_s         solution age, s
    97  uint8      sats_tracked
    98  uint8      sats_in_solution

*Plausible* (:func:`gps_segment_plausible`) is a structural test used to resynchronise
framing; *valid* (:func:`fix_is_valid`) says whether a fix may be used for navigation.  A
bench fix with INSUFFICIENT_OBS and zero position is plausible but not valid.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pygnc.formats.settings import DecodeSettings, resolve
from pygnc.timebase import gps_seconds, utc_unix_from_gps

GPS_SEGMENT_SIZE = 99


def novatel_fix_fields(vel_status: str) -> list[tuple]:
    """The NovAtel fix fields that both sense.bin's GPS segment and a range file's GPS
    packet (pygnc.formats.range_file) carry, in their order; the velocity solution status
    is one byte in the first (*vel_status* "u1") and four in the second ("<u4")."""
    return [
        ("week", "<u2"),
        ("ms_of_week", "<u4"),
        ("solution_status", "u1"),
        ("pos_ecef_m", "<f8", (3,)),
        ("pos_sigma_m", "<f4", (3,)),
        ("vel_status", vel_status),
        ("vel_ecef_m_s", "<f8", (3,)),
        ("vel_sigma_m_s", "<f4", (3,)),
        ("v_latency_s", "<f4"),
        ("diff_age_s", "<f4"),
        ("sol_age_s", "<f4"),
        ("sats_tracked", "u1"),
        ("sats_in_solution", "u1"),
    ]


#: Names of :func:`novatel_fix_fields`, in order.
NOVATEL_FIX_NAMES = tuple(f[0] for f in novatel_fix_fields("u1"))

#: Raw on-disk layout of one GPS segment (itemsize 99, packed, mixed endianness).
GPS_SEGMENT_DTYPE = np.dtype([("t_sc_s", ">u4"), ("time_status", "u1")] + novatel_fix_fields("u1"))
assert GPS_SEGMENT_DTYPE.itemsize == GPS_SEGMENT_SIZE

#: Decoded fix, native byte order.  ``t_gps_s`` is seconds since the GPS epoch
#: (week*604800 + ms/1000); ``unix_time_s`` is the same instant as UTC POSIX seconds.
GPS_FIX_DTYPE = np.dtype(
    [
        ("t_sc_s", "f8"),
        ("time_status", "u1"),
        ("week", "u2"),
        ("ms_of_week", "u4"),
        ("t_gps_s", "f8"),
        ("unix_time_s", "f8"),
        ("solution_status", "u1"),
        ("pos_ecef_m", "f8", (3,)),
        ("pos_sigma_m", "f4", (3,)),
        ("vel_status", "u1"),
        ("vel_ecef_m_s", "f8", (3,)),
        ("vel_sigma_m_s", "f4", (3,)),
        ("v_latency_s", "f4"),
        ("diff_age_s", "f4"),
        ("sol_age_s", "f4"),
        ("sats_tracked", "u1"),
        ("sats_in_solution", "u1"),
        ("valid", "?"),
    ]
)

#: NovAtel GPS reference time status values.
TIME_STATUS_VALUES = (20, 60, 80, 100, 120, 130, 140, 160, 170, 180, 200)
#: Largest NovAtel solution status value (22 = INVALID_RATE).
MAX_SOLUTION_STATUS = 22
MS_PER_WEEK = 604_800_000

_TIME_STATUS_OK = np.zeros(256, dtype=bool)
_TIME_STATUS_OK[list(TIME_STATUS_VALUES)] = True

# Fields copied verbatim from raw to decoded (same name, value-preserving cast).
_COPIED = tuple(GPS_SEGMENT_DTYPE.names or ())


def as_gps_segments(raw: np.ndarray | bytes | bytearray | memoryview) -> np.ndarray:
    """View *raw* as a 1-D array of GPS_SEGMENT_DTYPE (no copy when possible).

    Accepts a GPS_SEGMENT_DTYPE array (or a structured array with its fields, which is
    converted), a uint8 array of shape (n, 99) or (99,), or a
    bytes-like object whose length is a multiple of 99.
    """
    if isinstance(raw, np.ndarray) and raw.dtype == GPS_SEGMENT_DTYPE:
        return raw.reshape(-1)
    if isinstance(raw, np.ndarray) and raw.dtype.names:
        # Same fields in another byte order (np.concatenate makes them native): convert.
        return raw.astype(GPS_SEGMENT_DTYPE).reshape(-1)
    if isinstance(raw, np.ndarray):
        u8 = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1)
    else:
        u8 = np.frombuffer(memoryview(raw).cast("B"), dtype=np.uint8)
    if u8.size % GPS_SEGMENT_SIZE:
        raise ValueError(f"GPS segments must be a multiple of {GPS_SEGMENT_SIZE} bytes, got {u8.size}")
    return u8.view(GPS_SEGMENT_DTYPE)


def gps_segment_plausible(raw: np.ndarray | bytes | bytearray | memoryview) -> np.ndarray:
    """Structural plausibility of raw GPS segments (bool per segment), for resync.

    A segment is plausible when either it is entirely zero bytes (GPS absent), or all of:
    time status is a NovAtel time-status value {20, 60, 80, 100, 120, 130, 140, 160, 170,
    180, 200}; position and velocity solution status <= 22; ms of week < 604 800 000.
    Nothing is required of the numbers: an INSUFFICIENT_OBS fix at the origin is
    plausible (but not valid).
    """
    seg = as_gps_segments(raw)
    ts = seg["time_status"]
    ok = (
        _TIME_STATUS_OK[ts]
        & (seg["solution_status"] <= MAX_SOLUTION_STATUS)
        & (seg["vel_status"] <= MAX_SOLUTION_STATUS)
        & (seg["ms_of_week"] < MS_PER_WEEK)
    )
    zero_ts = np.flatnonzero(ts == 0)
    if zero_ts.size:  # rare: test whether those segments are all-zero
        u8 = seg[zero_ts].view(np.uint8).reshape(-1, GPS_SEGMENT_SIZE)
        ok[zero_ts] = ~u8.any(axis=1)
    return ok


def fix_is_valid(fixes: np.ndarray, settings: DecodeSettings | None = None) -> np.ndarray:
    """Whether each decoded fix (GPS_FIX_DTYPE) is usable for navigation (bool array).

    A fix is valid when all hold:

    * position solution status is in ``settings.accepted_solution_status`` (default {0},
      SOL_COMPUTED) **and** velocity solution status is in the same set (BESTXYZ computes
      both from one solution; a fix without a velocity solution carries placeholder
      velocity that must not reach the orbit filter);
    * ``sats_in_solution >= settings.min_sats_in_solution``;
    * position and velocity are finite;
    * ``min_fix_radius_m <= |pos_ecef_m| <= max_fix_radius_m``;
    * ``|vel_ecef_m_s| <= max_fix_speed_m_s``.

    Time status is not tested: the fix time comes from the receiver's week/ms, which are
    meaningful whenever the solution is computed.
    """
    settings = resolve(settings)
    accepted = np.zeros(256, dtype=bool)
    accepted[[int(s) for s in settings.accepted_solution_status if 0 <= int(s) < 256]] = True
    pos = fixes["pos_ecef_m"]
    vel = fixes["vel_ecef_m_s"]
    with np.errstate(over="ignore", invalid="ignore"):
        finite = np.isfinite(pos).all(axis=-1) & np.isfinite(vel).all(axis=-1)
        r2 = np.einsum("...i,...i->...", pos, pos)
        v2 = np.einsum("...i,...i->...", vel, vel)
        radius_ok = (r2 >= settings.min_fix_radius_m**2) & (r2 <= settings.max_fix_radius_m**2)
        speed_ok = v2 <= settings.max_fix_speed_m_s**2
    return (
        accepted[fixes["solution_status"]]
        & accepted[fixes["vel_status"]]
        & (fixes["sats_in_solution"] >= settings.min_sats_in_solution)
        & finite
        & radius_ok
        & speed_ok
    )


#: Rows decoded per pass: keeps a chunk of the (strided) source and its temporaries in
#: cache, so each field copy does not stream the whole file from memory again.
DECODE_CHUNK = 4096


def decode_gps_segments(
    raw: np.ndarray | bytes | bytearray | memoryview, settings: DecodeSettings | None = None
) -> np.ndarray:
    """Decode raw GPS segments to GPS_FIX_DTYPE (vectorised), with ``valid`` set.

    *raw*: anything :func:`as_gps_segments` accepts (a strided structured view is fine).
    Values are decoded faithfully whatever the status; use ``valid`` before trusting them.
    """
    settings = resolve(settings)
    seg = as_gps_segments(raw)
    out = np.empty(seg.shape, dtype=GPS_FIX_DTYPE)
    for i in range(0, seg.shape[0], DECODE_CHUNK):
        decode_gps_into(seg[i : i + DECODE_CHUNK], out[i : i + DECODE_CHUNK], settings)
    return out


def decode_gps_into(seg: np.ndarray, out: np.ndarray, settings: DecodeSettings) -> None:
    """Decode raw segments *seg* (GPS_SEGMENT_DTYPE) into *out* (GPS_FIX_DTYPE, same shape)."""
    for name in _COPIED:
        out[name] = seg[name]
    out["t_gps_s"] = gps_seconds(out["week"].astype(np.float64), out["ms_of_week"].astype(np.float64))
    out["unix_time_s"] = utc_unix_from_gps(out["t_gps_s"])
    out["valid"] = fix_is_valid(out, settings)


def gps_raw_from_fixes(fixes: np.ndarray) -> np.ndarray:
    """Raw GPS_SEGMENT_DTYPE array from decoded fixes (GPS_FIX_DTYPE or any array with the
    raw field names).  ``t_sc_s`` is rounded to whole seconds; week and ms are taken from
    the ``week`` / ``ms_of_week`` fields, not from ``t_gps_s``."""
    fixes = np.asarray(fixes).reshape(-1)
    raw = np.zeros(fixes.shape, dtype=GPS_SEGMENT_DTYPE)
    for name in _COPIED:
        if name == "t_sc_s":
            raw[name] = np.rint(fixes[name])
        else:
            raw[name] = fixes[name]
    return raw


def encode_gps_segments(fixes: np.ndarray) -> bytes:
    """Bytes of the 99-byte segments of *fixes* (GPS_FIX_DTYPE or GPS_SEGMENT_DTYPE)."""
    fixes = np.asarray(fixes)
    raw = fixes.reshape(-1) if fixes.dtype == GPS_SEGMENT_DTYPE else gps_raw_from_fixes(fixes)
    return raw.tobytes()


def encode_gps_segment(
    t_sc_s: float = 0,
    time_status: int = 180,
    week: int = 0,
    ms_of_week: int = 0,
    solution_status: int = 0,
    pos_ecef_m: npt.ArrayLike = (0.0, 0.0, 0.0),
    pos_sigma_m: npt.ArrayLike = (0.0, 0.0, 0.0),
    vel_status: int = 0,
    vel_ecef_m_s: npt.ArrayLike = (0.0, 0.0, 0.0),
    vel_sigma_m_s: npt.ArrayLike = (0.0, 0.0, 0.0),
    v_latency_s: float = 0.0,
    diff_age_s: float = 0.0,
    sol_age_s: float = 0.0,
    sats_tracked: int = 0,
    sats_in_solution: int = 0,
) -> bytes:
    """The 99 bytes of one GPS segment from physical values (for tests and the simulator)."""
    raw = np.zeros(1, dtype=GPS_SEGMENT_DTYPE)
    raw["t_sc_s"] = round(t_sc_s)
    raw["time_status"] = time_status
    raw["week"] = week
    raw["ms_of_week"] = ms_of_week
    raw["solution_status"] = solution_status
    raw["pos_ecef_m"] = pos_ecef_m
    raw["pos_sigma_m"] = pos_sigma_m
    raw["vel_status"] = vel_status
    raw["vel_ecef_m_s"] = vel_ecef_m_s
    raw["vel_sigma_m_s"] = vel_sigma_m_s
    raw["v_latency_s"] = v_latency_s
    raw["diff_age_s"] = diff_age_s
    raw["sol_age_s"] = sol_age_s
    raw["sats_tracked"] = sats_tracked
    raw["sats_in_solution"] = sats_in_solution
    return raw.tobytes()
