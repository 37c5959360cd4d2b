"""Two-line element sets: read and check TLE files, propagate with SGP4, and TEME <-> ITRS.

**Files.**  A TLE file holds two-line sets (line 1, line 2) or three-line sets (a name line,
optionally ``0 NAME``, then lines 1 and 2), any number of satellites and epochs, blank lines
allowed.  Every set is checked: 69 characters per line, the modulo-10 checksum of each line
(digits count their value, ``-`` counts 1), the same catalogue number on both lines, and
elements the ``sgp4`` package accepts; :class:`TleError` names the file and line.

**SGP4.**  The ``sgp4`` package (Vallado's C++ SGP4, the reference implementation of
Vallado, Crawford, Hujsak & Kelso 2006, "Revisiting Spacetrack Report #3", AIAA
2006-6753) with the WGS-72 constants TLEs are fitted with.  Times are GPS seconds
(``t_gps_s``); SGP4 takes UTC Julian dates (leap seconds from :mod:`pygnc.timebase`).

**TEME -> ITRS** (Vallado et al. 2006, sec. "TEME"): SGP4's output frame is the True
Equator, Mean Equinox frame of date, which turns into the pseudo-Earth-fixed frame by the
IAU-82 Greenwich *mean* sidereal time of UT1 (Aoki et al. 1982) about z - the equation of
the equinoxes is already in TEME's definition - and into ITRS by polar motion:

    r_itrs = R1(-yp) R2(-xp) R3(GMST82(UT1)) r_teme
    v_itrs = R1(-yp) R2(-xp) (R3(GMST82) v_teme - omega x r_pef),  omega = 7.292115146706979e-5 rad/s

UT1 - UTC and the pole coordinates are the caller's (IERS Bulletin A); the defaults are 0,
the convention of the flight frames (:mod:`pygnc.frames`) and of the simulator's truth.
What the defaults neglect, at LEO radius (7000 km): |UT1 - UTC| x 7.29e-5 rad/s x r,
i.e. 5 m per 10 ms of UT1 - UTC (up to 460 m at the 0.9-s limit; ~10-40 m in 2020-2025),
and |pole offset| x r, ~10 m (0.3"); velocity errors are the same rotations applied to
7.5 km/s (< 0.01 m/s for 0.3").  Neglected in any case: the TIO locator s' (< 0.1 mas, 3 mm),
the length-of-day change of omega (~2 ms/day: < 1e-6 m/s) and the kinematic terms of the
equation of the equinoxes that some TEME definitions add after 1997 (< 3 mas: 0.1 m).
Against astropy's TEME -> ITRS with its IERS values passed in, the chain agrees to a
millimetre, and it reproduces Vallado et al.'s TEME -> ITRF example to 7 mm
(``tests/test_uplink.py``).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pygnc import timebase

__all__ = [
    "OMEGA_EARTH_TEME_RAD_S",
    "TleError",
    "TleSet",
    "checksum",
    "gmst82_rad",
    "itrs_to_teme",
    "load_tle_file",
    "parse_tle_text",
    "select_tle",
    "sgp4_teme",
    "teme_to_itrs",
    "utc_iso",
]

#: Earth rotation rate for TEME -> PEF, rad/s (Vallado et al. 2006; no length-of-day term).
OMEGA_EARTH_TEME_RAD_S = 7.292115146706979e-5
#: Julian date of the POSIX epoch 1970-01-01T00:00 UTC.
_JD_UNIX_EPOCH = 2_440_587.5
_ARCSEC_RAD = math.pi / (180.0 * 3600.0)
#: Characters of a TLE line (the checksum is the last).
TLE_LINE_CHARS = 69


class TleError(ValueError):
    """A TLE file or set that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class TleSet:
    """One element set: catalogue number, name (three-line sets; "" otherwise), the two
    lines, where line 1 was read (``file:line``), the epoch in GPS seconds and the
    initialised :class:`sgp4.api.Satrec`."""

    norad: int
    name: str
    line1: str
    line2: str
    where: str
    epoch_gps_s: float
    satrec: object = field(repr=False, compare=False)

    @property
    def b_star(self) -> float:
        """The drag term B*, 1/earth radii."""
        return float(self.satrec.bstar)

    @property
    def mean_motion_rad_s(self) -> float:
        """SGP4's (Kozai) mean motion, rad/s."""
        return float(self.satrec.no_kozai) / 60.0

    @property
    def eccentricity(self) -> float:
        return float(self.satrec.ecco)


def checksum(line: str) -> int:
    """Modulo-10 checksum of the first 68 characters of a TLE line: digits add their value,
    '-' adds 1, everything else 0."""
    total = 0
    for ch in line[:68]:
        if ch.isdigit():
            total += int(ch)
        elif ch == "-":
            total += 1
    return total % 10


def _check_line(line: str, number: str, where: str) -> None:
    if len(line) != TLE_LINE_CHARS:
        raise TleError(f"{where}: line {number} of a TLE has {len(line)} characters, not {TLE_LINE_CHARS}")
    if not line[68].isdigit():
        raise TleError(f"{where}: line {number} of a TLE does not end in its checksum digit")
    if checksum(line) != int(line[68]):
        raise TleError(
            f"{where}: checksum of TLE line {number} is {line[68]}, the line sums to {checksum(line)} "
            "(a corrupted line)"
        )


#: Line 1's fields that SGP4's reader takes without a check (letters read as NaN or 0): the
#: first derivative of the mean motion and the two fields in the assumed-decimal exponent
#: form (columns, 1-based as the format's definition counts them; a pattern of the field).
_LINE1_FIELDS = (
    ("the mean motion's first derivative", 34, 43, re.compile(r"[ +-]\.\d{8}")),
    ("the mean motion's second derivative", 45, 52, re.compile(r"[ +-]\d{5}[+-]\d")),
    ("B*", 54, 61, re.compile(r"[ +-]\d{5}[+-]\d")),
)
#: Elements of a Satrec that must be finite numbers.
_SATREC_ELEMENTS = ("bstar", "ndot", "nddot", "ecco", "inclo", "nodeo", "argpo", "mo", "no_kozai")


def _satrec(line1: str, line2: str, where: str):
    from sgp4.api import WGS72, Satrec

    for what, first, last, pattern in _LINE1_FIELDS:
        field_text = line1[first - 1 : last]
        if not pattern.fullmatch(field_text):
            raise TleError(f"{where}: {what} (line 1, columns {first}-{last}) is not a number: {field_text!r}")
    try:
        sat = Satrec.twoline2rv(line1, line2, WGS72)
    except (ValueError, IndexError) as exc:
        raise TleError(f"{where}: SGP4 cannot read this TLE ({exc})") from None
    if sat.error:
        raise TleError(f"{where}: SGP4 rejects this TLE's elements (error code {sat.error})")
    bad = [k for k in _SATREC_ELEMENTS if not math.isfinite(float(getattr(sat, k)))]
    if bad:
        raise TleError(f"{where}: SGP4 reads this TLE's {', '.join(bad)} as not a number")
    return sat


def _epoch_gps_s(sat) -> float:
    """GPS seconds of a Satrec's epoch (a UTC Julian date, whole + fraction)."""
    days = (float(sat.jdsatepoch) - _JD_UNIX_EPOCH) + float(sat.jdsatepochF)
    return float(timebase.gps_from_utc_unix(days * 86_400.0))


def parse_tle_text(text: str, where: str = "<text>") -> list[TleSet]:
    """Every TLE set in *text* (two- or three-line sets, blank lines ignored), checked;
    :class:`TleError` naming ``where:line`` for anything that is not a valid set."""
    lines = [ln.rstrip("\r\n").rstrip() for ln in text.splitlines()]
    out: list[TleSet] = []
    name = ""
    i = 0
    while i < len(lines):
        ln = lines[i]
        here = f"{where}:{i + 1}"
        if not ln.strip():
            i += 1
            continue
        if ln.startswith("1 "):
            if i + 1 >= len(lines) or not lines[i + 1].startswith("2 "):
                raise TleError(f"{here}: TLE line 1 is not followed by its line 2")
            l1, l2 = ln, lines[i + 1]
            _check_line(l1, "1", here)
            _check_line(l2, "2", f"{where}:{i + 2}")
            if l1[2:7] != l2[2:7]:
                raise TleError(f"{here}: lines 1 and 2 give different catalogue numbers ({l1[2:7]!r}, {l2[2:7]!r})")
            sat = _satrec(l1, l2, here)
            out.append(TleSet(int(sat.satnum), name, l1, l2, here, _epoch_gps_s(sat), sat))
            name = ""
            i += 2
            continue
        if ln.startswith("2 "):
            raise TleError(f"{here}: TLE line 2 without its line 1")
        if name:
            raise TleError(f"{here}: not a TLE line (after the name line {name!r})")
        name = ln[2:].strip() if ln.startswith("0 ") else ln.strip()
        i += 1
    if name:
        raise TleError(f"{where}: the file ends with a name line ({name!r}) and no TLE")
    return out


def load_tle_file(path: str | os.PathLike) -> list[TleSet]:
    """The checked TLE sets of the file at *path* (:class:`TleError` if none, or for a bad
    set; ``OSError`` if unreadable)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as exc:
        raise TleError(f"{path}: not a text TLE file ({exc.reason} at byte {exc.start})") from None
    sets = parse_tle_text(text, str(path))
    if not sets:
        raise TleError(f"{path}: no TLE in the file")
    return sets


def select_tle(sets: list[TleSet], norad: int, t_gps_s: float) -> TleSet | None:
    """The set of catalogue number *norad* whose epoch is nearest *t_gps_s* (the later one
    of two equally near); None if the file has none."""
    mine = [s for s in sets if s.norad == norad]
    if not mine:
        return None
    return min(mine, key=lambda s: (abs(s.epoch_gps_s - t_gps_s), -s.epoch_gps_s))


def _jd_utc(t_gps_s: float) -> tuple[float, float]:
    """UTC Julian date of *t_gps_s* as (whole, fraction) for SGP4."""
    unix = float(timebase.utc_unix_from_gps(t_gps_s))
    days = math.floor(unix / 86_400.0)
    return _JD_UNIX_EPOCH + days, (unix - days * 86_400.0) / 86_400.0


def sgp4_teme(tle: TleSet, t_gps_s: float) -> tuple[np.ndarray, np.ndarray]:
    """SGP4 position (m) and velocity (m/s) in TEME at GPS time *t_gps_s*; :class:`TleError`
    when SGP4 fails there (decayed, eccentricity out of range...)."""
    jd, fr = _jd_utc(t_gps_s)
    err, r_km, v_km_s = tle.satrec.sgp4(jd, fr)
    if err:
        raise TleError(
            f"{tle.where}: SGP4 fails {((t_gps_s - tle.epoch_gps_s) / 3600.0):+.1f} h from this TLE's "
            f"epoch (error code {err})"
        )
    return np.asarray(r_km, dtype=float) * 1e3, np.asarray(v_km_s, dtype=float) * 1e3


def gmst82_rad(t_gps_s, ut1_minus_utc_s: float = 0.0):
    """IAU-82 Greenwich mean sidereal time (Aoki et al. 1982), radians, of the UT1 instant
    UTC(*t_gps_s*) + *ut1_minus_utc_s*: the angle that takes TEME to the Earth-fixed frame."""
    unix = np.asarray(timebase.utc_unix_from_gps(t_gps_s), dtype=float) + ut1_minus_utc_s
    # Days and centuries of UT1 from J2000.0 (2000-01-01T12:00 UT1 = POSIX 946728000).
    d = (unix - 946_728_000.0) / 86_400.0
    t = d / 36_525.0
    # GMST in seconds of time: 67310.54841 + (876600 h + 8640184.812866 s) T + 0.093104 T^2 - 6.2e-6 T^3;
    # 876600 h x T is 86400 s x d, of which only the fraction of a day counts (precision).
    gmst_s = 67_310.54841 + 86_400.0 * np.mod(d, 1.0) + 8_640_184.812866 * t + 0.093104 * t * t - 6.2e-6 * t**3
    out = np.mod(gmst_s, 86_400.0) * (2.0 * math.pi / 86_400.0)
    return float(out) if np.ndim(out) == 0 else out


def _r1(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])


def _r2(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])


def _r3(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def _pef_to_itrs(xp_arcsec: float, yp_arcsec: float) -> np.ndarray:
    return _r1(-yp_arcsec * _ARCSEC_RAD) @ _r2(-xp_arcsec * _ARCSEC_RAD)


def teme_to_itrs(
    r_teme_m, v_teme_m_s, t_gps_s: float, ut1_minus_utc_s: float = 0.0, xp_arcsec: float = 0.0, yp_arcsec: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """TEME (m, m/s) -> ITRS position (m) and velocity relative to ITRS in its axes (m/s) at
    GPS time *t_gps_s* (see the module docstring for the model and what the defaults neglect)."""
    theta = gmst82_rad(float(t_gps_s), ut1_minus_utc_s)
    m = _r3(theta)
    r_pef = m @ np.asarray(r_teme_m, dtype=float)
    v_pef = m @ np.asarray(v_teme_m_s, dtype=float) - np.cross([0.0, 0.0, OMEGA_EARTH_TEME_RAD_S], r_pef)
    w = _pef_to_itrs(xp_arcsec, yp_arcsec)
    return w @ r_pef, w @ v_pef


def itrs_to_teme(
    r_itrs_m, v_itrs_m_s, t_gps_s: float, ut1_minus_utc_s: float = 0.0, xp_arcsec: float = 0.0, yp_arcsec: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`teme_to_itrs`."""
    w = _pef_to_itrs(xp_arcsec, yp_arcsec)
    r_pef = w.T @ np.asarray(r_itrs_m, dtype=float)
    v_pef = w.T @ np.asarray(v_itrs_m_s, dtype=float)
    m = _r3(gmst82_rad(float(t_gps_s), ut1_minus_utc_s))
    return m.T @ r_pef, m.T @ (v_pef + np.cross([0.0, 0.0, OMEGA_EARTH_TEME_RAD_S], r_pef))


def utc_iso(t_gps_s: float) -> str:
    """ISO 8601 UTC of GPS time *t_gps_s*, to the second (``2025-03-20T06:00:00Z``)."""
    import datetime as dt

    unix = float(timebase.utc_unix_from_gps(t_gps_s))
    return dt.datetime.fromtimestamp(round(unix), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
