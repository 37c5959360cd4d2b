"""TLEs of simulated spacecraft, made as a catalogue makes them, with TLE-class errors.

:func:`fit_tle` fits SGP4 mean elements, B* included, to a truth ephemeris by least
squares against positions (TEME, metres) over a fit span ending at the TLE epoch: the
catalogue's differential correction (Vallado & Crawford 2008, "SGP4 orbit determination",
AIAA 2008-6770) with the truth's positions as observations.  The unknowns are the mean
motion, the eccentricity vector (e cos ω, e sin ω), inclination, RAAN, the mean argument of
latitude ω + M and B*; Gauss-Newton on central differences, from the osculating elements
of the truth at the epoch.  The epoch is first rounded to what a TLE line can hold
(1e-8 day), so the written TLE is the fitted one up to the rounding of its other fields
(1e-4 deg for angles: ~12 m at 500 km; 1e-7 in e; 1e-8 rev/day in mean motion).

A TLE fitted to a perfect truth is better than a real one.  :func:`perturb_elements`
adds errors drawn from the covariance model the uplink assumes
(:class:`ground.uplink.tle_covariance.TleErrorModel`: relative orbital elements of D'Amico, and a
relative B* error), so that the TLE errors of a simulated scenario are TLE-class and the
uplink's covariance is tested against errors of the size it claims.

:func:`format_tle` writes the two lines (the checksum, ``ndot``/``nddot`` written as 0:
SGP4 does not use them) and :func:`tle_text` a three-line set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ground.uplink import tle as tl
from ground.uplink.tle_covariance import TleErrorModel

__all__ = ["FittedTle", "MeanElements", "fit_tle", "format_tle", "perturb_elements", "tle_text"]

#: WGS-72 (the constants TLEs are made with): GM, km^3/s^2.
_MU_KM3_S2 = 398_600.8
_DAY_S = 86_400.0
_JD_1949 = 2_433_281.5  # sgp4init's epoch origin (1949-12-31 00:00 UT)


@dataclass(frozen=True)
class MeanElements:
    """SGP4 mean elements: mean motion (rad/min, Kozai), eccentricity-vector components,
    inclination, RAAN, mean argument of latitude ω + M (rad) and B* (1/earth radii)."""

    n_rad_min: float
    ex: float
    ey: float
    i_rad: float
    raan_rad: float
    u_rad: float
    b_star: float

    def vector(self) -> np.ndarray:
        return np.array([self.n_rad_min, self.ex, self.ey, self.i_rad, self.raan_rad, self.u_rad, self.b_star])

    @classmethod
    def from_vector(cls, x) -> MeanElements:
        return cls(*(float(c) for c in x))


@dataclass(frozen=True)
class FittedTle:
    """A fitted (and possibly perturbed) TLE: its lines, the parsed set, and the fit's
    RMS position residual over the span (m)."""

    line1: str
    line2: str
    tle: tl.TleSet
    fit_rms_m: float
    n_points: int


def _satrec(el: MeanElements, epoch_jd: float, norad: int):
    from sgp4.api import WGS72, Satrec

    e = math.hypot(el.ex, el.ey)
    argp = math.atan2(el.ey, el.ex) if e > 0.0 else 0.0
    s = Satrec()
    s.sgp4init(
        WGS72,
        "i",
        norad,
        epoch_jd - _JD_1949,
        el.b_star,
        0.0,
        0.0,
        e,
        argp % (2 * math.pi),
        el.i_rad,
        (el.u_rad - argp) % (2 * math.pi),
        el.n_rad_min,
        el.raan_rad % (2 * math.pi),
    )
    return s


def _positions_m(el: MeanElements, epoch_jd: float, norad: int, tsince_min: np.ndarray) -> np.ndarray | None:
    s = _satrec(el, epoch_jd, norad)
    if s.error:
        return None
    jd = np.full(tsince_min.shape, epoch_jd)
    err, r, _ = s.sgp4_array(jd, tsince_min / 1440.0)
    if np.any(err):
        return None
    return np.asarray(r) * 1e3


def _osculating_guess(r_m, v_m_s) -> MeanElements:
    r = np.asarray(r_m, dtype=float) / 1e3
    v = np.asarray(v_m_s, dtype=float) / 1e3
    h = np.cross(r, v)
    rn = np.linalg.norm(r)
    a = 1.0 / (2.0 / rn - v @ v / _MU_KM3_S2)
    e_vec = np.cross(v, h) / _MU_KM3_S2 - r / rn
    i = math.acos(h[2] / np.linalg.norm(h))
    node = np.cross([0.0, 0.0, 1.0], h)
    raan = math.atan2(node[1], node[0])
    node /= np.linalg.norm(node)
    hn = h / np.linalg.norm(h)
    argp = math.atan2(np.cross(node, e_vec) @ hn, node @ e_vec)
    e = float(np.linalg.norm(e_vec))
    nu = math.atan2(np.cross(e_vec, r) @ hn, e_vec @ r)
    ecc_anom = 2.0 * math.atan2(math.sqrt(1 - e) * math.sin(nu / 2), math.sqrt(1 + e) * math.cos(nu / 2))
    m = ecc_anom - e * math.sin(ecc_anom)
    n = math.sqrt(_MU_KM3_S2 / a**3) * 60.0
    return MeanElements(n, e * math.cos(argp), e * math.sin(argp), i, raan, argp + m, 0.0)


#: Central-difference steps of the seven elements.
_STEPS = np.array([1e-9, 1e-7, 1e-7, 1e-7, 1e-7, 1e-7, 1e-6])


def fit_tle(
    t_gps_s, r_teme_m, epoch_gps_s: float, guess_r_m, guess_v_m_s, norad: int, iterations: int = 30
) -> tuple[MeanElements, float, float]:
    """SGP4 mean elements at *epoch_gps_s* fitted to the positions *r_teme_m* (n, 3) at
    *t_gps_s* (n,): (elements, the epoch used - rounded to 1e-8 day -, RMS residual m).
    *guess_r_m*, *guess_v_m_s*: a TEME state at the epoch to start from."""
    t = np.asarray(t_gps_s, dtype=float)
    z = np.asarray(r_teme_m, dtype=float)
    epoch_jd = _round_epoch_jd(epoch_gps_s)
    epoch_used = float(_gps_of_jd(epoch_jd))
    tsince = (t - epoch_used) / 60.0
    x = _osculating_guess(guess_r_m, guess_v_m_s).vector()
    lam = 1e-3
    cost = math.inf
    for _ in range(iterations):
        pos = _positions_m(MeanElements.from_vector(x), epoch_jd, norad, tsince)
        if pos is None:
            raise ValueError("SGP4 failed on the fit's starting elements")
        res = (pos - z).ravel()
        cost = float(res @ res)
        jac = np.empty((res.size, 7))
        for k in range(7):
            dx = np.zeros(7)
            dx[k] = _STEPS[k]
            hi = _positions_m(MeanElements.from_vector(x + dx), epoch_jd, norad, tsince)
            lo = _positions_m(MeanElements.from_vector(x - dx), epoch_jd, norad, tsince)
            jac[:, k] = (hi - lo).ravel() / (2.0 * _STEPS[k])
        # Levenberg-Marquardt on the column-scaled problem.
        scale = np.linalg.norm(jac, axis=0)
        scale[scale == 0.0] = 1.0
        js = jac / scale
        jtj, jtr = js.T @ js, js.T @ res
        while True:
            step = -np.linalg.solve(jtj + lam * np.diag(np.diag(jtj)), jtr) / scale
            trial = _positions_m(MeanElements.from_vector(x + step), epoch_jd, norad, tsince)
            new_cost = math.inf if trial is None else float(((trial - z).ravel()) @ ((trial - z).ravel()))
            if new_cost <= cost:
                x = x + step
                lam = max(lam / 10.0, 1e-9)
                break
            lam *= 10.0
            if lam > 1e9:
                break
        if new_cost > cost or abs(cost - new_cost) <= 1e-10 * cost + 1e-6:
            cost = min(cost, new_cost)
            break
        cost = new_cost
    return MeanElements.from_vector(x), epoch_used, math.sqrt(cost / max(1, t.size))


def _round_epoch_jd(t_gps_s: float) -> float:
    """UTC Julian date of *t_gps_s* rounded to the 1e-8 day a TLE epoch field holds."""
    from pygnc import timebase

    unix = float(timebase.utc_unix_from_gps(t_gps_s))
    jd = 2_440_587.5 + unix / _DAY_S
    year0 = _jd_year_start(jd)
    return year0 + round((jd - year0) * 1e8) / 1e8


def _jd_year_start(jd: float) -> float:
    """Julian date of 0 January (i.e. 31 December 00:00 UT of the previous year) of *jd*'s year,
    the origin of a TLE's day-of-year epoch (day 1.0 = 1 January 00:00)."""
    import datetime as dt

    d = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=jd - 2_440_587.5)
    jan1 = dt.datetime(d.year, 1, 1, tzinfo=dt.UTC)
    return 2_440_587.5 + (jan1.timestamp() / _DAY_S) - 1.0


def _gps_of_jd(jd: float) -> float:
    from pygnc import timebase

    return float(timebase.gps_from_utc_unix((jd - 2_440_587.5) * _DAY_S))


def perturb_elements(
    el: MeanElements, rng: np.random.Generator, model: TleErrorModel | None = None, scale: float = 1.0
) -> MeanElements:
    """*el* with errors drawn from *model* (times *scale*): relative orbital elements (a δa,
    a δλ, a δe, a δi) mapped to the mean elements, and B* times (1 + drag error); with the
    model's ``tail_probability`` the element errors are drawn ``tail_scale`` times wider (the
    decision from a generator spawned off *rng*, so the draws of *rng* itself are those of
    a model without a tail)."""
    model = model or TleErrorModel()
    tail = rng.spawn(1)[0].random() < model.tail_probability
    d = rng.standard_normal(6) * np.sqrt(np.diag(model.roe_covariance())) * scale
    if tail:
        d *= model.tail_scale
    eps = rng.standard_normal() * model.drag_sigma * scale
    return apply_roe(el, d, eps)


def apply_roe(el: MeanElements, roe_m, drag_error: float = 0.0) -> MeanElements:
    """*el* moved by the relative orbital elements *roe_m* (a δa, a δλ, a δex, a δey, a δix,
    a δiy; metres) and with B* times (1 + *drag_error*)."""
    eps = float(drag_error)
    a_m = (_MU_KM3_S2 / (el.n_rad_min / 60.0) ** 2) ** (1.0 / 3.0) * 1e3
    da, dlam, dex, dey, dix, diy = np.asarray(roe_m, dtype=float) / a_m
    draan = diy / math.sin(el.i_rad) if abs(math.sin(el.i_rad)) > 1e-6 else 0.0
    return MeanElements(
        el.n_rad_min * (1.0 - 1.5 * da),
        el.ex + dex,
        el.ey + dey,
        el.i_rad + dix,
        el.raan_rad + draan,
        el.u_rad + dlam - draan * math.cos(el.i_rad),
        el.b_star * (1.0 + eps),
    )


def _exp_field(value: float) -> str:
    """TLE 'assumed decimal point' exponent field of 8 characters: ' 28098-4', '-11606-4'."""
    if value == 0.0:
        return " 00000+0"
    mant, exp = f"{abs(value):.4e}".split("e")
    digits = mant.replace(".", "")
    e = int(exp) + 1
    if e < -9:  # below 1e-10: zero to the field's use
        return " 00000+0"
    if e > 9:
        raise ValueError(f"{value!r} does not fit a TLE exponent field")
    return f"{'-' if value < 0 else ' '}{digits}{'-' if e < 0 else '+'}{abs(e)}"


def format_tle(
    el: MeanElements,
    epoch_jd: float,
    norad: int,
    intl_designator: str = "25001A",
    element_set: int = 999,
    rev_number: int = 1,
) -> tuple[str, str]:
    """The two lines of elements *el* at the UTC Julian date *epoch_jd* (already rounded to
    1e-8 day), with checksums."""
    if not 0 < norad < 100_000:
        raise ValueError(f"NORAD id {norad} does not fit a TLE (1..99999)")
    year0 = _jd_year_start(epoch_jd)
    import datetime as dt

    year = (dt.datetime(1970, 1, 1) + dt.timedelta(days=year0 + 1.0 - 2_440_587.5)).year
    day = epoch_jd - year0
    e = math.hypot(el.ex, el.ey)
    if not e < 1.0:
        raise ValueError(f"eccentricity {e} does not fit a TLE")
    argp = math.degrees(math.atan2(el.ey, el.ex)) % 360.0 if e > 0 else 0.0
    mean_anom = (math.degrees(el.u_rad) - argp) % 360.0
    rev_day = el.n_rad_min * 1440.0 / (2.0 * math.pi)
    l1 = (
        f"1 {norad:05d}U {intl_designator:<8s} {year % 100:02d}{day:012.8f}  .00000000  00000+0 "
        f"{_exp_field(el.b_star)} 0 {element_set % 10000:4d}"
    )
    l2 = (
        f"2 {norad:05d} {math.degrees(el.i_rad) % 180.0:8.4f} {math.degrees(el.raan_rad) % 360.0:8.4f} "
        f"{round(e * 1e7):07d} {argp:8.4f} {mean_anom:8.4f} {rev_day:11.8f}{rev_number % 100000:5d}"
    )
    l1 += str(tl.checksum(l1))
    l2 += str(tl.checksum(l2))
    return l1, l2


def tle_text(name: str, line1: str, line2: str) -> str:
    """A three-line set (name, line 1, line 2) with a final newline."""
    return f"{name}\n{line1}\n{line2}\n"


def fitted_tle(
    t_gps_s,
    r_teme_m,
    v_teme_m_s,
    epoch_gps_s: float,
    norad: int,
    name: str,
    rng: np.random.Generator | None = None,
    model: TleErrorModel | None = None,
    error_scale: float = 1.0,
) -> FittedTle:
    """Fit a TLE to the truth positions (:func:`fit_tle`; the state nearest the epoch starts
    it), perturb it when *rng* is given (:func:`perturb_elements`), format and re-read it."""
    t = np.asarray(t_gps_s, dtype=float)
    k = int(np.argmin(np.abs(t - epoch_gps_s)))
    el, epoch_used, rms = fit_tle(t, r_teme_m, epoch_gps_s, r_teme_m[k], v_teme_m_s[k], norad)
    if rng is not None and error_scale > 0.0:
        el = perturb_elements(el, rng, model, error_scale)
    epoch_jd = _round_epoch_jd(epoch_used)
    l1, l2 = format_tle(el, epoch_jd, norad)
    parsed = tl.parse_tle_text(tle_text(name, l1, l2), f"<{name}>")[0]
    return FittedTle(l1, l2, parsed, rms, int(t.size))
