"""What a TLE is worth: the covariance of an SGP4 state in RTN, growing with the TLE's age.

Model.  A TLE's error is an error of its mean elements.  For the near-circular orbits of a
LEO formation it is written in the quasi-nonsingular relative orbital elements of D'Amico
(2010), each scaled by the semi-major axis a (metres): a δa, a δλ (mean argument of
latitude plus ΔΩ cos i), a δe (two components), a δi (two components).  Their linear map
to the radial / along-track / cross-track (RTN) position error and to the *inertial*
velocity error expressed in RTN axes, Δt after the TLE epoch, with A, B the components of
a δe along and across the argument of latitude u and C, D those of a δi:

    R = a δa - A                       vR = n (-(a δλ - 1.5 n Δt a δa) - B)
    T = a δλ - 1.5 n Δt a δa + 2 B     vT = n (-0.5 a δa + A)
    N = C                              vN = n D

(the HCW solution plus ω x r, ω = n along N, which turns the rotating-frame velocity into
the inertial one the flight's ``cov_rtn`` wants).  With the two δe components independent
and equally uncertain (and the same for δi) the covariance does not depend on u.  The
δa term is the along-track drift of a mean-motion error.  Two more terms: SGP4's own error
in the osculating state (its short-period theory), which does not drift - without it the
map above would claim the orbit's energy known to the δa sigma, where the osculating
velocity of a fitted TLE is off by centimetres per second - and drag, an along-track error
growing as Δt²: the displacement SGP4 itself predicts from the TLE's B* (SGP4 with B* minus
SGP4 with B* = 0, at the epoch asked), times the relative drag error ``drag_sigma`` (a
rank-one term, perfectly correlated between position and velocity).  Drag also moves the
eccentricity vector - the density's day-night variation, which SGP4 does not model, acts
once per orbit - so each a δe component grows by ``drag_e_factor`` times the decay SGP4
predicts (the radial part of its drag displacement).  B* is taken as at
least ``b_star_floor`` in size: a smaller or negative B* is a fitting artefact for a
CubeSat, whose drag is not that small.

Numbers (1 sigma; :class:`TleErrorModel` defaults), at the TLE epoch: along-track
sqrt((a δλ)^2 + 4 (a δe)^2 + 200^2) = 1.14 km, radial sqrt((a δa)^2 + (a δe)^2 + 100^2) =
0.27 km, cross-track 0.32 km; velocity 1.18 / 0.35 / 0.35 m/s (R / T / N) at 500 km.
Growth: 2.9 km of along-track per day from δa (a δa = 20 m: 1.5 n a δa Δt), plus half of
SGP4's own drag displacement (that displacement is ~7 km after a day for the simulator's
500-km CubeSats in 2025, near solar maximum).  Where the
numbers come from:

* At epoch, ~1 km for a typical LEO object within a few days of the epoch (Kelso 2007,
  "Validation of SGP4 and IS-GPS-200D against GPS precision ephemerides", AAS 07-127); "a
  few kilometres" for small satellites against GPS-derived reference orbits (Kahr,
  Montenbruck & O'Keefe 2013, "Estimation and analysis of two-line elements for small
  satellites", J. Spacecraft and Rockets 50(2)); the error is largest along-track and
  several times smaller radially and cross-track, and the USSPACECOM catalogue gives no
  covariance, which is why ESA's collision-risk tools use look-up tables in RTN sorted by
  perigee height, eccentricity and inclination (Flohrer, Krag & Klinkrad 2008, "Assessment
  and categorization of TLE orbit errors for the US SSN catalogue", AMOS).  The epoch
  sigmas above are a CubeSat-sized choice inside that range, not a table lookup.
* Growth: the error of TLEs of ISS-deployed CubeSats (Planet Flock 1B, 2014) grows by 10-30 km
  (1 sigma, along-track) in one day of forward propagation, 20-70 km in two, and the median
  position error with the latest TLE was 4.5 km (Riesing 2015, "Orbit determination from
  two line element sets of ISS-deployed CubeSats", SSC15-VIII-5): at ~400 km near solar
  maximum, where drag is ~10x that of 500 km, which is why the drag term scales with the
  TLE's own B*.  Kahr et al. (2013) report a 10-km spread of five-day along-track errors
  for a 630-km nanosatellite; Vallado & Cefola 2012 ("Two-line element sets - practice and
  use", IAC-12.A6.6.11) survey these assessments.  ``drag_sigma`` = 0.5: a TLE's B* is a
  noisy fitted parameter, and the density over the coming day differs from the fit span's
  by tens of percent (empirical density models are good to ~15 %: Hedin 1988, "High
  altitude atmospheric modeling", NASA TM-100707, before forecast errors).
  ``drag_e_factor`` = 3: fitted TLEs of the simulator's truth (NRLMSISE-00 drag at 500 km,
  2025) with no error added drift radially from ~60-100 m RMS at 6-12 h to 250-330 m at
  18-30 h, where SGP4's own decay over the day is ~100 m (``bench/bench_uplink.py
  --tle-error-scale 0``).
* The tail: a TLE's errors are heavier-tailed than a Gaussian.  For ISS-deployed CubeSats
  compared with ranging-based orbits the position error with the latest TLE had a median of
  4.5 km and quartiles of 2.0 and 10.6 km (Riesing 2015): the upper quartile 2.3 times the
  median, where a Gaussian error in three dimensions gives 1.3; for a well-tracked large
  satellite EUMETSAT quotes ~600 m RMS with maxima ~2 km (3.3 times the RMS) over a TLE's
  validity arc (EUMETSAT, "Metop TLEs", oiswww.eumetsat.org/metopTLEs).  So the error is a
  mixture: with ``tail_probability`` (0.1) it is drawn from the covariance times
  ``tail_scale`` squared (5): the 95th percentile then lies near five times the median, and a
  cross-track error of 2.4 km (7.6 core sigma, a probability of 1e-13 under the covariance
  alone) is a 1.5-sigma event of the tail.  ``ground uplink --tle`` writes both into the
  prior (``tail_probability``, ``tail_scale``); the flight fits the tail as a component of
  its own, so a mirror image the core covariance excludes but the tail does not stays open.
  The simulator draws its TLE errors from the same mixture.
* Not in the covariance: gross errors - a TLE of another object (identity or cross-tag
  errors: weeks may pass before every payload of a multi-payload deployment is catalogued
  and assigned; Segerman et al. 2014, "Space situational awareness of large numbers of
  payloads from a single deployment", AMOS).  That is what the prior's
  ``wrong_side_probability`` is for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ground.uplink import tle as tl

__all__ = ["TleErrorModel", "drag_displacement_rtn", "roe_to_rtn", "rtn_axes", "tle_covariance_rtn"]


@dataclass(frozen=True)
class TleErrorModel:
    """1-sigma errors of a TLE's mean elements, as D'Amico's relative orbital elements
    scaled by the semi-major axis (metres), and of its drag (see the module docstring)."""

    sigma_da_m: float = 20.0
    sigma_dlambda_m: float = 1000.0
    #: Per component of the eccentricity and inclination vectors.
    sigma_de_m: float = 250.0
    sigma_di_m: float = 300.0
    #: SGP4's own error in the osculating state, R / T / N position, m (no drift; velocity
    #: n x (T, 2 R, N)).
    sigma_theory_rtn_m: tuple[float, float, float] = (100.0, 200.0, 100.0)
    #: Relative 1-sigma error of the drag SGP4 predicts from B*.
    drag_sigma: float = 0.5
    #: 1-sigma growth of each eccentricity-vector component (a δe), per metre of the decay
    #: SGP4 predicts (the radial part of its drag displacement).
    drag_e_factor: float = 3.0
    #: Smallest |B*| the drag term assumes, 1/earth radii.
    b_star_floor: float = 1.0e-5
    #: The errors' heavy tail: with this probability a TLE's error is drawn from the
    #: covariance above times ``tail_scale`` squared (see the module docstring).
    tail_probability: float = 0.1
    tail_scale: float = 5.0

    def roe_covariance(self) -> np.ndarray:
        """Covariance of (a δa, a δλ, a δex, a δey, a δix, a δiy), m^2."""
        return np.diag(
            [self.sigma_da_m**2, self.sigma_dlambda_m**2] + [self.sigma_de_m**2] * 2 + [self.sigma_di_m**2] * 2
        )

    def theory_covariance(self, n_rad_s: float) -> np.ndarray:
        """Diagonal RTN covariance of SGP4's own (short-period) error, position and velocity."""
        r, t, n = self.sigma_theory_rtn_m
        m = float(n_rad_s)
        return np.diag([r * r, t * t, n * n, (m * t) ** 2, (2.0 * m * r) ** 2, (m * n) ** 2])


def rtn_axes(r, v) -> np.ndarray:
    """Rows: radial, along-track (N x R), cross-track (orbit normal) unit vectors of the
    state (r, v) - the axes of a prior's ``cov_rtn``."""
    r = np.asarray(r, dtype=float)
    h = np.cross(r, np.asarray(v, dtype=float))
    e_r = r / np.linalg.norm(r)
    e_n = h / np.linalg.norm(h)
    return np.array([e_r, np.cross(e_n, e_r), e_n])


def roe_to_rtn(n_rad_s: float, u_rad: float, dt_s: float) -> np.ndarray:
    """(6, 6) map of the scaled relative orbital elements at the TLE epoch to the RTN
    position error and inertial velocity error in RTN axes *dt_s* after it, at mean motion
    *n_rad_s* and argument of latitude *u_rad* (module docstring)."""
    n, c, s = float(n_rad_s), math.cos(u_rad), math.sin(u_rad)
    drift = -1.5 * n * float(dt_s)
    a_ = np.array([0.0, 0.0, c, s, 0.0, 0.0])  # A: a δe along u
    b_ = np.array([0.0, 0.0, s, -c, 0.0, 0.0])  # B: a δe across u
    c_ = np.array([0.0, 0.0, 0.0, 0.0, s, -c])  # C
    d_ = np.array([0.0, 0.0, 0.0, 0.0, c, s])  # D
    lam = np.array([drift, 1.0, 0.0, 0.0, 0.0, 0.0])  # a δλ(Δt)
    da = np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    return np.array([da - a_, lam + 2.0 * b_, c_, n * (-lam - b_), n * (-0.5 * da + a_), n * d_])


def _argument_of_latitude(r, v) -> float:
    h = np.cross(r, v)
    node = np.cross([0.0, 0.0, 1.0], h)
    if np.linalg.norm(node) < 1e-9 * np.linalg.norm(h):  # equatorial: from x
        node = np.array([1.0, 0.0, 0.0])
    node /= np.linalg.norm(node)
    return math.atan2(float(np.cross(node, r) @ h) / np.linalg.norm(h), float(node @ r))


def _with_b_star(tle: tl.TleSet, b_star: float):
    """The TLE's satellite with another B* (SGP4 initialised from the same elements)."""
    from sgp4.api import WGS72, Satrec

    s = tle.satrec
    out = Satrec()
    epoch = (float(s.jdsatepoch) - 2_433_281.5) + float(s.jdsatepochF)
    out.sgp4init(
        WGS72,
        "i",
        int(s.satnum),
        epoch,
        float(b_star),
        float(s.ndot),
        float(s.nddot),
        float(s.ecco),
        float(s.argpo),
        float(s.inclo),
        float(s.mo),
        float(s.no_kozai),
        float(s.nodeo),
    )
    return out


def drag_displacement_rtn(tle: tl.TleSet, t_gps_s: float, b_star: float | None = None) -> np.ndarray:
    """SGP4 with B* (default: the TLE's) minus SGP4 with no drag at *t_gps_s*, as RTN position
    (m) and inertial velocity (m/s) in the RTN axes of the no-drag state."""
    from ground.uplink.tle import TleSet

    b = tle.b_star if b_star is None else float(b_star)
    with_drag = TleSet(tle.norad, tle.name, tle.line1, tle.line2, tle.where, tle.epoch_gps_s, _with_b_star(tle, b))
    no_drag = TleSet(tle.norad, tle.name, tle.line1, tle.line2, tle.where, tle.epoch_gps_s, _with_b_star(tle, 0.0))
    r1, v1 = tl.sgp4_teme(with_drag, t_gps_s)
    r0, v0 = tl.sgp4_teme(no_drag, t_gps_s)
    axes = rtn_axes(r0, v0)
    return np.concatenate([axes @ (r1 - r0), axes @ (v1 - v0)])


def tle_covariance_rtn(tle: tl.TleSet, t_gps_s: float, model: TleErrorModel | None = None) -> np.ndarray:
    """(6, 6) covariance of the SGP4 state of *tle* at *t_gps_s*: RTN position (m) and
    inertial velocity (m/s) in the RTN axes of that state (module docstring)."""
    model = model or TleErrorModel()
    r, v = tl.sgp4_teme(tle, t_gps_s)
    m = roe_to_rtn(tle.mean_motion_rad_s, _argument_of_latitude(r, v), t_gps_s - tle.epoch_gps_s)
    b = tle.b_star
    b_eff = math.copysign(max(abs(b), model.b_star_floor), b if b else 1.0)
    d = drag_displacement_rtn(tle, t_gps_s, b_eff)
    roe = model.roe_covariance()
    roe[2, 2] += (model.drag_e_factor * d[0]) ** 2  # the density's day-night variation moves δe
    roe[3, 3] += (model.drag_e_factor * d[0]) ** 2
    cov = m @ roe @ m.T + model.theory_covariance(tle.mean_motion_rad_s)
    cov += (model.drag_sigma**2) * np.outer(d, d)
    return 0.5 * (cov + cov.T)
