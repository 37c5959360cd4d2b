"""Orbit dynamics for the GPS-fix orbit estimator: pure functions, analytic partials.

Frame and units: everything is in the GCRS (:mod:`pygnc.frames`), SI units — positions
``r_m`` [m], velocities ``v_m_s`` [m/s], accelerations [m/s^2], times ``dt_s`` [s].

Models
------
* **Gravity**: point mass plus the zonal harmonics J2..Jn of EGM96 (``GM_EARTH_M3_S2``,
  ``R_EARTH_M``; ``OrbitFilterConfig.zonal_degree``; the module's own default is J2..J4)
  about the Earth's rotation pole k (the CIP, which precession has moved ~0.15 deg from
  GCRS z by 2025 - ignoring that costs 5e-5 m/s^2).
  Written once for any degree from the potential U = GM/r [1 - sum J_n (R/r)^n
  P_n(r.k/r)]; the acceleration and its 3x3 gradient d a/d r are both closed-form
  (Legendre recursion for P_n, P_n', P_n'').  With ``tesseral_degree`` the EGM96 tesseral
  terms up to that degree and order (the formation filter's own orbit: an 8x8 field), or with
  ``gravity_degree`` EGM2008 to degree and order 70 (:mod:`pygnc.environment.gravity`; the
  orbit filter: 34) beyond the zonals, evaluated in ITRS once per step (EGM2008 degree 40
  leaves ~1.5e-6 m/s^2 out, where EGM96 8x8 leaves ~3e-5).
* **Drag**: a = -1/2 (k / B) rho(h) |v_rel| v_rel with v_rel = v - omega_E x r (atmosphere
  co-rotating with the Earth), B = m / (C_D A) the ballistic coefficient [kg/m^2] and k
  a dimensionless drag scale (1 nominal; optionally estimated).  rho(h) is the
  piecewise-exponential static atmosphere of Vallado (Fundamentals of Astrodynamics,
  table 8-4); h is the height above the WGS-84 ellipsoid to first order in the
  flattening (h ~ r - a (1 - f sin^2 phi), error < 50 m).  Or (``atmosphere``
  "harris_priester") the Harris-Priester model of Montenbruck & Gill (Satellite Orbits,
  3.5.3): the density between its antapex and apex values by height, with the diurnal
  bulge's apex 30 deg east of the Sun, once per step.  Partials d a/d r (density
  gradient along the radius and the omega x r term), d a/d v and d a/d k are analytic.
* **Third bodies** (``third_body``): Sun (:mod:`pygnc.environment.sun`) and Moon
  (:mod:`pygnc.environment.moon`) tidal accelerations, GM [(s - r)/|s - r|^3 - s/|s|^3],
  with the ephemerides evaluated at 10-minute nodes and interpolated linearly; added once
  per step at the mid-step time and position like the tesserals (~1e-6 m/s^2 at 500 km;
  their gradient, ~1e-13 s^-2, is left out of Phi).
* **Empirical accelerations** (dynamic model compensation): a first-order Gauss-Markov
  process per GCRS axis, dw/dt = -w/tau + u(t), with steady-state standard deviation
  sigma (u white with spectral density 2 sigma^2 / tau).  They absorb everything not
  modelled: gravity beyond the modelled field (along a 500-km orbit EGM96 degrees 9-12
  give ~2e-5 m/s^2 RMS per axis, correlated over ~100 s), drag-model error (~1e-7), SRP
  (~6e-8), and
  the third bodies when they are not modelled (~5e-7).
* **State transition** (:func:`propagate`): RK4 on (r, v) over one step of at most
  ``max_step_s`` (the flight filters: 30 s; longer intervals are split into equal steps),
  the empirical acceleration decaying exactly as w(t) = w0 exp(-t/tau) inside the step.
  The state transition matrix Phi of a step longer than ``MAGNUS_MIN_STEP_S`` is exp of
  the 4th-order Magnus expansion on the Jacobians at the step's two Gauss points
  (:func:`_phi_magnus`: 3e-9 in the position and velocity blocks at 30 s against a chain of
  0.5-s steps); a shorter step's is the 4th-order Taylor series of exp(F dt) with F at the
  mid-step state.  No numerical differentiation.  RK4 at 30 s: ~3 mm at the step's end
  against a fine integration (``tests/test_orbit_dynamics.py``).
* **Process noise** (:func:`dmc_process_noise`): the exact discrete covariance of the
  (r, v, w) chain driven by the Gauss-Markov noise, per axis, closed form.

The hot path (:func:`propagate`) works on Python floats: for 3-vectors this is several
times faster than numpy.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from pygnc import frames
from pygnc.environment.moon import GM_MOON_M3_S2, moon_position_gcrs_m
from pygnc.environment.sun import sun_position_gcrs_m
from pygnc.frames import OMEGA_EARTH_RAD_S

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from pygnc.environment.gravity import GravityField
    from pygnc.estimation.quaternion import Vector

#: Three floats: a position, velocity or acceleration written out (the hot path's form).
Vec3 = tuple[float, float, float]
#: The weights (xv, xw, yv, yw, zv, zw) one V/W value carries (:func:`_tesseral_tables`).
_Weights = tuple[float, float, float, float, float, float]
#: Per column m of the V/W recursion: (diag, sub or None, rows (a1, b2, *weights)).
#: A 3-vector as the scalar code takes it: a tuple, a list or an array.
_Vector = Sequence[float] | np.ndarray
TesseralTables = list[tuple[_Weights, _Weights | None, list[tuple[float, ...]]]]

__all__ = [
    "GM_EARTH_M3_S2",
    "R_EARTH_M",
    "FLATTENING_EARTH",
    "ZONAL_J_EGM96",
    "DynamicsModel",
    "gravity_acceleration",
    "gravity_acceleration_gradient",
    "atmosphere_density",
    "density_bulge_apex",
    "harris_priester_density",
    "relative_drag_m_s2",
    "ellipsoidal_height_m",
    "drag_acceleration",
    "drag_partials",
    "gauss_markov_decay",
    "dmc_process_noise",
    "semi_major_axis_difference_m",
    "process_noise",
    "state_derivative_jacobian",
    "neighbour_transition",
    "neighbour_transition_terms",
    "propagate",
    "third_body_acceleration",
]

#: EGM96 gravitational parameter [m^3/s^2] and reference radius [m].
GM_EARTH_M3_S2 = 3.986004415e14
R_EARTH_M = 6_378_136.3
#: WGS-84 equatorial radius [m] and flattening (for the drag altitude).
A_WGS84_M = 6_378_137.0
FLATTENING_EARTH = 1.0 / 298.257223563

#: EGM96 fully normalised zonal coefficients C(n,0), n = 2..8.
_C_N0_EGM96 = (
    -4.84165371736e-4,
    9.57254173792e-7,
    5.39873863789e-7,
    6.8532347563e-8,
    -1.49957994714e-7,
    9.0978937145e-8,
    4.96711667324e-8,
)
#: Unnormalised zonal coefficients J_n = -sqrt(2n+1) C(n,0), index n (0 and 1 unused).
ZONAL_J_EGM96 = (0.0, 0.0) + tuple(-math.sqrt(2 * n + 1) * c for n, c in enumerate(_C_N0_EGM96, start=2))

#: EGM96 fully normalised (n, m, C, S), n = 2..8 (tide-free); the zonal (m = 0) entries
#: are the same as ``_C_N0_EGM96``.
EGM96_NORMALIZED = (
    (2, 0, -4.84165371736e-4, 0.0),
    (2, 1, -1.86987635955e-10, 1.19528012031e-9),
    (2, 2, 2.43914352398e-6, -1.40016683654e-6),
    (3, 0, 9.57254173792e-7, 0.0),
    (3, 1, 2.02998882184e-6, 2.48513158716e-7),
    (3, 2, 9.04627768605e-7, -6.19025944205e-7),
    (3, 3, 7.21072657057e-7, 1.41435626958e-6),
    (4, 0, 5.39873863789e-7, 0.0),
    (4, 1, -5.36321616971e-7, -4.73440265853e-7),
    (4, 2, 3.50694105785e-7, 6.62671572540e-7),
    (4, 3, 9.90771803829e-7, -2.00928369177e-7),
    (4, 4, -1.88560802735e-7, 3.08853169333e-7),
    (5, 0, 6.8532347563e-8, 0.0),
    (5, 1, -6.21012128528e-8, -9.44226127525e-8),
    (5, 2, 6.52438297612e-7, -3.23349612668e-7),
    (5, 3, -4.51955406071e-7, -2.14847190624e-7),
    (5, 4, -2.95301647654e-7, 4.96658876769e-8),
    (5, 5, 1.74971983203e-7, -6.69384278219e-7),
    (6, 0, -1.49957994714e-7, 0.0),
    (6, 1, -7.60879384947e-8, 2.62890545501e-8),
    (6, 2, 4.81732442832e-8, -3.73728201347e-7),
    (6, 3, 5.71730990516e-8, 9.02694517163e-9),
    (6, 4, -8.62142660109e-8, -4.71408154267e-7),
    (6, 5, -2.6713332549e-7, -5.36488432483e-7),
    (6, 6, 9.67616121092e-9, -2.37192006935e-7),
    (7, 0, 9.0978937145e-8, 0.0),
    (7, 1, 2.79872910488e-7, 9.54336911867e-8),
    (7, 2, 3.29743816488e-7, 9.30667596042e-8),
    (7, 3, 2.50398657706e-7, -2.17198608738e-7),
    (7, 4, -2.75114355257e-7, -1.23800392323e-7),
    (7, 5, 1.93765507243e-9, 1.77377719872e-8),
    (7, 6, -3.58856860645e-7, 1.51789817739e-7),
    (7, 7, 1.09185148045e-9, 2.44415707993e-8),
    (8, 0, 4.96711667324e-8, 0.0),
    (8, 1, 2.33422047893e-8, 5.90060493411e-8),
    (8, 2, 8.02978722615e-8, 6.54175425859e-8),
    (8, 3, -1.91877757009e-8, -8.63454445021e-8),
    (8, 4, -2.44600105471e-7, 7.00233016934e-8),
    (8, 5, -2.55352403037e-8, 8.91462164788e-8),
    (8, 6, -6.57361610961e-8, 3.09238461807e-7),
    (8, 7, 6.72811580072e-8, 7.47440473633e-8),
    (8, 8, -1.24092493016e-7, 1.20533165603e-7),
)

# Vallado table 8-4: base altitude [km], base density [kg/m^3], scale height [km].
_ATMOSPHERE_TABLE = (
    (0.0, 1.225, 7.249),
    (25.0, 3.899e-2, 6.349),
    (30.0, 1.774e-2, 6.682),
    (40.0, 3.972e-3, 7.554),
    (50.0, 1.057e-3, 8.382),
    (60.0, 3.206e-4, 7.714),
    (70.0, 8.770e-5, 6.549),
    (80.0, 1.905e-5, 5.799),
    (90.0, 3.396e-6, 5.382),
    (100.0, 5.297e-7, 5.877),
    (110.0, 9.661e-8, 7.263),
    (120.0, 2.438e-8, 9.473),
    (130.0, 8.484e-9, 12.636),
    (140.0, 3.845e-9, 16.149),
    (150.0, 2.070e-9, 22.523),
    (180.0, 5.464e-10, 29.740),
    (200.0, 2.789e-10, 37.105),
    (250.0, 7.248e-11, 45.546),
    (300.0, 2.418e-11, 53.628),
    (350.0, 9.518e-12, 53.298),
    (400.0, 3.725e-12, 58.515),
    (450.0, 1.585e-12, 60.828),
    (500.0, 6.967e-13, 63.822),
    (600.0, 1.454e-13, 71.835),
    (700.0, 3.614e-14, 88.667),
    (800.0, 1.170e-14, 124.64),
    (900.0, 5.245e-15, 181.05),
    (1000.0, 3.019e-15, 268.00),
)
_ATM_H0_M = tuple(1e3 * row[0] for row in _ATMOSPHERE_TABLE)
_ATM_RHO0 = tuple(row[1] for row in _ATMOSPHERE_TABLE)
_ATM_H_SCALE_M = tuple(1e3 * row[2] for row in _ATMOSPHERE_TABLE)

# Harris-Priester, mean solar activity (Montenbruck & Gill, Satellite Orbits, 2000, table
# 3.8): height [km], density at the antapex and at the apex of the diurnal bulge [g/km^3 =
# 1e-12 kg/m^3].
_HP_TABLE = (
    (100.0, 4.974e05, 4.974e05), (120.0, 2.490e04, 2.490e04), (130.0, 8.377e03, 8.710e03),
    (140.0, 3.899e03, 4.059e03), (150.0, 2.122e03, 2.215e03), (160.0, 1.263e03, 1.344e03),
    (170.0, 8.008e02, 8.758e02), (180.0, 5.283e02, 6.010e02), (190.0, 3.617e02, 4.297e02),
    (200.0, 2.557e02, 3.162e02), (210.0, 1.839e02, 2.396e02), (220.0, 1.341e02, 1.853e02),
    (230.0, 9.949e01, 1.455e02), (240.0, 7.488e01, 1.157e02), (250.0, 5.709e01, 9.308e01),
    (260.0, 4.403e01, 7.555e01), (270.0, 3.430e01, 6.182e01), (280.0, 2.697e01, 5.095e01),
    (290.0, 2.139e01, 4.226e01), (300.0, 1.708e01, 3.526e01), (320.0, 1.099e01, 2.511e01),
    (340.0, 7.214e00, 1.819e01), (360.0, 4.824e00, 1.337e01), (380.0, 3.274e00, 9.955e00),
    (400.0, 2.249e00, 7.492e00), (420.0, 1.558e00, 5.684e00), (440.0, 1.091e00, 4.355e00),
    (460.0, 7.701e-01, 3.362e00), (480.0, 5.474e-01, 2.612e00), (500.0, 3.916e-01, 2.042e00),
    (520.0, 2.819e-01, 1.605e00), (540.0, 2.042e-01, 1.267e00), (560.0, 1.488e-01, 1.005e00),
    (580.0, 1.092e-01, 7.997e-01), (600.0, 8.070e-02, 6.390e-01), (620.0, 6.012e-02, 5.123e-01),
    (640.0, 4.519e-02, 4.121e-01), (660.0, 3.430e-02, 3.325e-01), (680.0, 2.632e-02, 2.691e-01),
    (700.0, 2.043e-02, 2.185e-01), (720.0, 1.607e-02, 1.779e-01), (740.0, 1.281e-02, 1.452e-01),
    (760.0, 1.036e-02, 1.190e-01), (780.0, 8.496e-03, 9.776e-02), (800.0, 7.069e-03, 8.059e-02),
    (840.0, 4.680e-03, 5.741e-02), (880.0, 3.200e-03, 4.210e-02), (920.0, 2.210e-03, 3.130e-02),
    (960.0, 1.560e-03, 2.360e-02), (1000.0, 1.150e-03, 1.810e-02),
)  # fmt: skip
#: Per band from each tabulated height: (h0 [m], rho_min, rho_max [kg/m^3], their scale
#: heights to the next height [m]); the last band's extends the one below it upward.
_HP_BANDS = tuple(
    (
        1e3 * h0,
        1e-12 * lo0,
        1e-12 * hi0,
        1e3 * (h1 - h0) / math.log(lo0 / lo1),
        1e3 * (h1 - h0) / math.log(hi0 / hi1),
    )
    for (h0, lo0, hi0), (h1, lo1, hi1) in zip(_HP_TABLE, _HP_TABLE[1:])
)
#: The bulge's apex lags the subsolar point by 30 deg in right ascension (2 pm local time);
#: the density rises from the antapex value as cos^(2 n)(psi / 2), psi the angle from the
#: apex, with n = 3 for the near-polar orbits pygnc flies (n = 1 suits low inclinations).
_HP_LAG_RAD = math.radians(30.0)
_HP_H0_M = tuple(b[0] for b in _HP_BANDS)


#: The density models of :class:`DynamicsModel` ``atmosphere``.
ATMOSPHERES = ("exponential", "harris_priester")


@dataclass(frozen=True)
class DynamicsModel:
    """Parameters of the estimator's dynamics (all SI).

    ``zonal_j``: J_n indexed by degree (entries 0 and 1 ignored); ``ballistic_coeff_kg_m2``:
    B = m / (C_D A), ``None`` or inf disables drag; ``dmc_tau_s``: Gauss-Markov correlation
    time of the empirical accelerations; ``drag_scale_tau_s``: correlation time of the
    estimated drag scale (``None``: the scale is not a state); ``max_step_s``: longest
    single integration step.
    """

    zonal_j: tuple[float, ...] = ZONAL_J_EGM96[:5]
    ballistic_coeff_kg_m2: float | None = 50.0
    dmc_tau_s: float = 600.0
    drag_scale_tau_s: float | None = None
    max_step_s: float = 5.0
    tesseral_degree: int = 0
    #: Sun and Moon tidal accelerations (low-precision analytic ephemerides; needs time).
    third_body: bool = False
    #: EGM2008 to this degree and order (:mod:`pygnc.environment.gravity`), once per step at
    #: the step's middle, beyond the zonals of ``zonal_j`` (which every RK4 stage evaluates;
    #: EGM2008's own with :func:`egm2008_zonal_j`); 0: none (the EGM96 ``tesseral_degree``
    #: terms instead).  Needs time.
    gravity_degree: int = 0
    #: The drag's density: "exponential" (static, height only) or "harris_priester" (with
    #: the diurnal bulge; needs time).
    atmosphere: str = "exponential"

    if TYPE_CHECKING:
        # Set by __post_init__ (object.__setattr__: the class is frozen); not dataclass fields.
        _tesseral_tables: TesseralTables | None = dataclasses.field(init=False)
        _field: GravityField | None = dataclasses.field(init=False)
        _needs_time: bool = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tesseral_tables", _tesseral_tables(self.tesseral_degree))
        field: GravityField | None = None
        if self.gravity_degree:
            if self.tesseral_degree:
                raise ValueError("gravity_degree and tesseral_degree are two fields: give one")
            field = _gravity_field(int(self.gravity_degree), len(self.zonal_j))
        object.__setattr__(self, "_field", field)
        if self.atmosphere not in ATMOSPHERES:
            raise ValueError(f"atmosphere {self.atmosphere!r} is not one of {ATMOSPHERES}")
        object.__setattr__(self, "_needs_time", bool(field or self._tesseral_tables or self.third_body or self.diurnal))

    @property
    def diurnal(self) -> bool:
        """The density has the diurnal bulge (Harris-Priester): drag needs the time."""
        return self.atmosphere == "harris_priester"

    @property
    def n_states(self) -> int:
        return 9 if self.drag_scale_tau_s is None else 10


# ----------------------------------------------------------------------------- gravity
_Z_POLE = (0.0, 0.0, 1.0)
_FIELDS: dict[tuple[int, int], GravityField] = {}


def _gravity_field(degree: int, first_zonal: int) -> GravityField:
    """The :class:`pygnc.environment.gravity.GravityField` of *degree* beyond the zonals
    below *first_zonal* (made once per process: its tables take a few ms)."""
    key = (degree, first_zonal)
    f = _FIELDS.get(key)
    if f is None:
        from pygnc.environment.gravity import GravityField

        f = _FIELDS[key] = GravityField(degree, first_zonal=first_zonal)
    return f


def egm2008_zonal_j(degree: int) -> tuple[float, ...]:
    """J_n of EGM2008 for n <= *degree* (entries 0, 1 zero): the zonals to pair with
    ``DynamicsModel.gravity_degree``."""
    from pygnc.environment.gravity import zonal_j

    return zonal_j(degree)


def _zonal_sums(
    x: float, y: float, z: float, zonal_j: Sequence[float], gradient: bool, pole: _Vector = _Z_POLE
) -> tuple[float, float, float, float, float, float]:
    """Scalars from which the zonal acceleration (and gradient) are assembled.

    With e = r/|r| and k the unit vector of the Earth's rotation pole (CIP) in GCRS:
    a = A e - B k and G = -(1/r) [C1 e e^T - A I - Ap (k e^T + e k^T) + Bp k k^T].
    """
    r2 = x * x + y * y + z * z
    r = math.sqrt(r2)
    u = (x * pole[0] + y * pole[1] + z * pole[2]) / r
    # n = 0 is the central term (J0 = -1).
    f = -GM_EARTH_M3_S2 / r2
    big_a, big_b = f, 0.0
    c1, ap, bp = 3.0 * f, 0.0, 0.0
    q = R_EARTH_M / r
    qn = q  # (R/r)^n, n = 1 here
    p_prev, p = 1.0, u  # P_{n-1}, P_n at n = 1
    dp = 1.0  # P'_n
    ddp = 0.0  # P''_n
    for n in range(2, len(zonal_j)):
        p_next = ((2 * n - 1) * u * p - (n - 1) * p_prev) / n
        dp_next = n * p + u * dp
        ddp_next = (n + 1) * dp + u * ddp
        p_prev, p = p, p_next
        dp, ddp = dp_next, ddp_next
        qn *= q
        jn = zonal_j[n]
        if not jn:
            continue
        fn = GM_EARTH_M3_S2 * jn * qn / r2
        alpha = (n + 1) * p + u * dp
        big_a += fn * alpha
        big_b += fn * dp
        if gradient:
            alpha_p = (n + 2) * dp + u * ddp
            c1 += fn * ((n + 3) * alpha + u * alpha_p)
            ap += fn * alpha_p
            bp += fn * ddp
    return r, big_a, big_b, c1, ap, bp


def _gravity_xyz(x: float, y: float, z: float, zonal_j: Sequence[float], pole: _Vector = _Z_POLE) -> Vec3:
    r, big_a, big_b, _, _, _ = _zonal_sums(x, y, z, zonal_j, False, pole)
    s = big_a / r
    return s * x - big_b * pole[0], s * y - big_b * pole[1], s * z - big_b * pole[2]


def gravity_acceleration(
    r_m: Vector, zonal_j: Sequence[float] = ZONAL_J_EGM96[:5], pole: Vector = _Z_POLE
) -> np.ndarray:
    """Gravitational acceleration [m/s^2] at GCRS position *r_m* [m]: point mass + zonals.

    *zonal_j* holds J_n indexed by degree n (entries 0, 1 ignored); default J2..J4.
    *pole*: unit vector of the Earth's rotation axis (CIP) in the frame of *r_m*; in GCRS
    use :func:`earth_pole_gcrs` (the CIP is ~0.15 deg from GCRS z in 2025, which would
    be a 5e-5 m/s^2 error if ignored).
    """
    x, y, z = (float(c) for c in r_m)
    return np.array(_gravity_xyz(x, y, z, zonal_j, tuple(float(c) for c in pole)))


def _gravity_and_gradient_xyz(
    x: float, y: float, z: float, zonal_j: Sequence[float], pole: _Vector = _Z_POLE
) -> tuple[Vec3, list[list[float]]]:
    r, big_a, big_b, c1, ap, bp = _zonal_sums(x, y, z, zonal_j, True, pole)
    e = (x / r, y / r, z / r)
    k = pole
    a = (big_a * e[0] - big_b * k[0], big_a * e[1] - big_b * k[1], big_a * e[2] - big_b * k[2])
    f = -1.0 / r
    g = [[0.0] * 3 for _ in range(3)]
    for i in range(3):
        for j in range(i, 3):
            gij = c1 * e[i] * e[j] - ap * (k[i] * e[j] + e[i] * k[j]) + bp * k[i] * k[j]
            if i == j:
                gij -= big_a
            g[i][j] = g[j][i] = f * gij
    return a, g


def gravity_acceleration_gradient(
    r_m: Vector, zonal_j: Sequence[float] = ZONAL_J_EGM96[:5], pole: Vector = _Z_POLE
) -> tuple[np.ndarray, np.ndarray]:
    """(acceleration [m/s^2] (3,), gradient d a / d r [1/s^2] (3, 3), symmetric)."""
    x, y, z = (float(c) for c in r_m)
    a, g = _gravity_and_gradient_xyz(x, y, z, zonal_j, tuple(float(c) for c in pole))
    return np.array(a), np.array(g)


def earth_pole_gcrs(t_gps_s: float) -> np.ndarray:
    """Unit vector of the ITRS z axis (CIP, polar motion ignored) in GCRS at *t_gps_s*."""
    m = frames.gcrs_from_itrs_rows(t_gps_s)
    return np.array([m[0][2], m[1][2], m[2][2]])


def _tesseral_tables(degree: int) -> TesseralTables | None:
    """What :func:`_tesseral_itrs_xyz` needs for the m > 0 EGM96 terms up to *degree*, or None:
    per column m of the V/W recursion (Montenbruck & Gill, Satellite Orbits, §3.2.4),
    m = 0 .. degree + 1, ``(diag, sub, rec)`` - the weights of V[m][m], W[m][m] and of
    V[m+1][m], W[m+1][m] (None past the last row), and for each row n = m + 2 .. degree + 1
    ``(a1, b2, weights)`` with V[n][m] = a1 z0 V[n-1][m] - b2 rho V[n-2][m].

    The weights: every V/W value enters the acceleration linearly.  Term (n, m) (unnormalised
    C, S) takes V[n+1][m+1] and W[n+1][m+1] into a_x, a_y, V[n+1][m-1] and W[n+1][m-1]
    (times (n-m+2)(n-m+1)) into a_x, a_y, and V[n+1][m], W[n+1][m] (times n-m+1) into a_z,
    so each value V[a][j], W[a][j] carries the summed weights ``(xv, xw, yv, yw, zv, zw)``
    of the terms it enters (scaled by GM / R^2): a_x = sum xv V + xw W, and so on."""
    if degree < 2:
        return None
    if degree > 8:
        raise ValueError("the flight gravity table stops at degree 8")
    c = [[0.0] * (degree + 1) for _ in range(degree + 1)]
    s = [[0.0] * (degree + 1) for _ in range(degree + 1)]
    for n, m, cn, sn in EGM96_NORMALIZED:
        if n <= degree and m > 0:
            norm = math.sqrt(2.0 * (2 * n + 1) * math.factorial(n - m) / math.factorial(n + m))
            c[n][m] = cn * norm
            s[n][m] = sn * norm
    k = GM_EARTH_M3_S2 / (R_EARTH_M * R_EARTH_M)

    def weights(a: int, j: int) -> _Weights:
        n = a - 1  # the degree of the terms that take row a
        xv = xw = yv = yw = zv = zw = 0.0
        if 2 <= n <= degree:
            m = j - 1  # V[n+1][m+1] of term (n, m)
            if 1 <= m <= n:
                xv -= 0.5 * c[n][m]
                xw -= 0.5 * s[n][m]
                yv += 0.5 * s[n][m]
                yw -= 0.5 * c[n][m]
            m = j + 1  # V[n+1][m-1] of term (n, m)
            if 1 <= m <= n:
                f = 0.5 * (n - m + 2) * (n - m + 1)
                xv += f * c[n][m]
                xw += f * s[n][m]
                yv += f * s[n][m]
                yw -= f * c[n][m]
            if 1 <= j <= n:  # V[n+1][m] of term (n, m = j)
                g = n - j + 1
                zv -= g * c[n][j]
                zw -= g * s[n][j]
        return k * xv, k * xw, k * yv, k * yw, k * zv, k * zw

    nmax = degree + 1
    return [
        (
            weights(m, m),
            weights(m + 1, m) if m < nmax else None,
            [((2 * n - 1) / (n - m), (n + m - 1) / (n - m)) + weights(n, m) for n in range(m + 2, nmax + 1)],
        )
        for m in range(nmax + 1)
    ]


def _tesseral_itrs_xyz(x: float, y: float, z: float, tables: TesseralTables) -> Vec3:
    """Acceleration [m/s^2] of the tesseral terms in *tables* (:func:`_tesseral_tables`) at
    ITRS (x, y, z) [m].

    V/W (Cunningham) recursion of the solid spherical harmonics (Montenbruck & Gill,
    Satellite Orbits, §3.2.4), m > 0 terms only, column by column; each value is added
    into the acceleration with its weights as it is made, so nothing is stored (faster than
    storing the triangle and summing the terms after it; the same sums re-associated:
    within 4e-15 relative).  Column 0 has W = 0.
    """
    rr = R_EARTH_M / (x * x + y * y + z * z)
    x0, y0, z0, rho = x * rr, y * rr, z * rr, R_EARTH_M * rr
    vmm = math.sqrt(rho)  # V[0][0] = R / r
    _, w0, rec = tables[0]
    assert w0 is not None  # (column 0 always has its second row: _tesseral_tables)
    xv, _, yv, _, zv, _ = w0
    v1 = z0 * vmm
    ax, ay, az = xv * v1, yv * v1, zv * v1
    v2 = vmm
    for a1, b2, xv, _, yv, _, zv, _ in rec:
        vn = a1 * z0 * v1 - b2 * rho * v2
        ax += xv * vn
        ay += yv * vn
        az += zv * vn
        v2, v1 = v1, vn
    wmm = 0.0
    f = -1
    for m in range(1, len(tables)):
        diag, sub, rec = tables[m]
        f += 2  # 2m - 1
        vp = vmm
        vmm = f * (x0 * vp - y0 * wmm)
        wmm = f * (x0 * wmm + y0 * vp)
        xv, xw, yv, yw, zv, zw = diag
        ax += xv * vmm + xw * wmm
        ay += yv * vmm + yw * wmm
        az += zv * vmm + zw * wmm
        if sub is None:
            break
        g = (f + 2) * z0  # (2m + 1) z0
        v1, w1 = g * vmm, g * wmm
        xv, xw, yv, yw, zv, zw = sub
        ax += xv * v1 + xw * w1
        ay += yv * v1 + yw * w1
        az += zv * v1 + zw * w1
        v2, w2 = vmm, wmm
        for a1, b2, xv, xw, yv, yw, zv, zw in rec:
            a = a1 * z0
            b = b2 * rho
            vn = a * v1 - b * v2
            wn = a * w1 - b * w2
            ax += xv * vn + xw * wn
            ay += yv * vn + yw * wn
            az += zv * vn + zw * wn
            v2, v1 = v1, vn
            w2, w1 = w1, wn
    return ax, ay, az


def _tesseral_gcrs_xyz(x: float, y: float, z: float, m: Sequence[Sequence[float]], tables: TesseralTables) -> Vec3:
    """Tesseral acceleration in GCRS; *m* = gcrs_from_itrs matrix as nested lists."""
    xi = m[0][0] * x + m[1][0] * y + m[2][0] * z
    yi = m[0][1] * x + m[1][1] * y + m[2][1] * z
    zi = m[0][2] * x + m[1][2] * y + m[2][2] * z
    ax, ay, az = _tesseral_itrs_xyz(xi, yi, zi, tables)
    return (
        m[0][0] * ax + m[0][1] * ay + m[0][2] * az,
        m[1][0] * ax + m[1][1] * ay + m[1][2] * az,
        m[2][0] * ax + m[2][1] * ay + m[2][2] * az,
    )


def tesseral_acceleration(r_gcrs_m: Vector, t_gps_s: float, degree: int) -> np.ndarray:
    """GCRS acceleration [m/s^2] of the EGM96 tesseral terms (2 <= m <= n <= *degree*, m > 0)."""
    x, y, z = (float(c) for c in r_gcrs_m)
    tables = _tesseral_tables(degree)
    if tables is None:
        return np.zeros(3)
    m = frames.gcrs_from_itrs_rows(t_gps_s)
    return np.array(_tesseral_gcrs_xyz(x, y, z, m, tables))


# ----------------------------------------------------------------------- third bodies
#: Solar gravitational parameter [m^3/s^2] (IAU 2015 nominal).
GM_SUN_M3_S2 = 1.32712440018e20
#: Spacing of the Sun/Moon ephemeris nodes [s]: linear interpolation between nodes is off
#: by < 150 m for the Moon (0.09 deg of arc in 10 min), i.e. < 1e-12 m/s^2 of tide.
_EPHEM_NODE_S = 600.0
_ephem_cache: dict[int, tuple] = {}


def _ephem_node(k: int) -> tuple:
    e = _ephem_cache.get(k)
    if e is None:
        if len(_ephem_cache) > 256:
            _ephem_cache.clear()
        t = k * _EPHEM_NODE_S
        e = (
            tuple(float(c) for c in sun_position_gcrs_m(t)),
            tuple(float(c) for c in moon_position_gcrs_m(t)),
            GM_MOON_M3_S2,
        )
        _ephem_cache[k] = e
    return e


def _third_body_xyz(x: float, y: float, z: float, t_gps_s: float) -> Vec3:
    """Sun + Moon tidal acceleration [m/s^2] at GCRS (x, y, z) [m] and GPS time [s].

    a = GM [(s - r)/|s - r|^3 - s/|s|^3] per body, with the body positions interpolated
    linearly between 10-minute nodes of :mod:`pygnc.environment.sun` / ``.moon``.
    """
    u = t_gps_s / _EPHEM_NODE_S
    k = math.floor(u)
    f = u - k
    e0, e1 = _ephem_node(k), _ephem_node(k + 1)
    ax = ay = az = 0.0
    for i, gm in ((0, GM_SUN_M3_S2), (1, e0[2])):
        s0, s1 = e0[i], e1[i]
        sx = s0[0] + f * (s1[0] - s0[0])
        sy = s0[1] + f * (s1[1] - s0[1])
        sz = s0[2] + f * (s1[2] - s0[2])
        dx, dy, dz = sx - x, sy - y, sz - z
        d2 = dx * dx + dy * dy + dz * dz
        s2 = sx * sx + sy * sy + sz * sz
        cd = gm / (d2 * math.sqrt(d2))
        cs = gm / (s2 * math.sqrt(s2))
        ax += cd * dx - cs * sx
        ay += cd * dy - cs * sy
        az += cd * dz - cs * sz
    return ax, ay, az


def third_body_acceleration(r_gcrs_m: Vector, t_gps_s: float) -> np.ndarray:
    """Sun + Moon tidal acceleration [m/s^2] at GCRS position *r_gcrs_m* [m], GPS time [s]."""
    x, y, z = (float(c) for c in r_gcrs_m)
    return np.array(_third_body_xyz(x, y, z, float(t_gps_s)))


# ------------------------------------------------------------------------------ drag
def ellipsoidal_height_m(r_m: Vector) -> float:
    """Height above the WGS-84 ellipsoid [m], first order in the flattening (< 50 m error)."""
    x, y, z = (float(c) for c in r_m)
    return _height_xyz(x, y, z)


def _height_xyz(x: float, y: float, z: float) -> float:
    r = math.sqrt(x * x + y * y + z * z)
    s2 = z * z / (r * r)
    return r - A_WGS84_M * (1.0 - FLATTENING_EARTH * s2)


def _density(h_m: float) -> tuple[float, float]:
    """(rho [kg/m^3], scale height [m]) of the piecewise-exponential atmosphere."""
    i = len(_ATM_H0_M) - 1
    if h_m < _ATM_H0_M[i]:
        # Linear scan from the top is fast for orbital altitudes (>= 150 km: <= 12 steps).
        while i > 0 and h_m < _ATM_H0_M[i]:
            i -= 1
    hs = _ATM_H_SCALE_M[i]
    return _ATM_RHO0[i] * math.exp(-(h_m - _ATM_H0_M[i]) / hs), hs


def atmosphere_density(h_m: float) -> float:
    """Density [kg/m^3] at ellipsoidal height *h_m* [m] (Vallado piecewise exponential)."""
    return _density(float(h_m))[0]


def _density_hp(h_m: float, cos_psi: float) -> tuple[float, float]:
    """(rho [kg/m^3], scale height [m]) of Harris-Priester at height *h_m* and at the cosine
    *cos_psi* of the angle from the diurnal bulge's apex; the scale height is the local
    one, -rho / (d rho / d h).  Below 100 km: the 100-km band continued downward."""
    h0, lo0, hi0, hs_lo, hs_hi = _HP_BANDS[max(0, bisect.bisect_right(_HP_H0_M, h_m) - 1)]
    lo = lo0 * math.exp((h0 - h_m) / hs_lo)
    hi = hi0 * math.exp((h0 - h_m) / hs_hi)
    c = 0.5 + 0.5 * cos_psi
    w = c * c * c  # cos^(2 n)(psi / 2) with n = 3
    rho = lo + (hi - lo) * w
    return rho, rho / (lo / hs_lo + (hi / hs_hi - lo / hs_lo) * w)


def density_bulge_apex(t_gps_s: float) -> Vec3:
    """Unit vector (GCRS) of the apex of the atmosphere's diurnal bulge at GPS time *t_gps_s*:
    the Sun's declination, its right ascension + 30 deg (the Sun from the 10-minute nodes
    of the third-body ephemeris, the nearest one: the apex moves ~0.007 deg in 10 min)."""
    k = round(float(t_gps_s) / _EPHEM_NODE_S)
    apex = _apex_cache.get(k)
    if apex is None:
        if len(_apex_cache) > 256:
            _apex_cache.clear()
        sx, sy, sz = _ephem_node(k)[0]
        ra = math.atan2(sy, sx) + _HP_LAG_RAD
        s = math.sqrt(sx * sx + sy * sy + sz * sz)
        cd = math.hypot(sx, sy) / s
        apex = _apex_cache[k] = (cd * math.cos(ra), cd * math.sin(ra), sz / s)
    return apex


_apex_cache: dict[int, Vec3] = {}


def relative_drag_m_s2(
    own_rv: Sequence[float], rel_rv: Sequence[float], own_b: float, peer_b: float, peer_scale: float, bulge: Vec3 | None
) -> float:
    """|a_drag(partner) - a_drag(own)| [m/s^2]: own state *own_rv* (GCRS r, v, floats), the partner at
    *own_rv* + *rel_rv* with ballistic coefficient *peer_b* at drag scale *peer_scale*, the
    own with *own_b* [kg/m^2]; *bulge*: see :func:`drag_acceleration`."""
    x, y, z, vx, vy, vz = own_rv[:6]
    dx, dy, dz, dvx, dvy, dvz = rel_rv[:6]
    a, _ = _drag_xyz(x, y, z, vx, vy, vz, 1.0 / own_b, bulge)
    b, _ = _drag_xyz(x + dx, y + dy, z + dz, vx + dvx, vy + dvy, vz + dvz, peer_scale / peer_b, bulge)
    return math.sqrt((b[0] - a[0]) ** 2 + (b[1] - a[1]) ** 2 + (b[2] - a[2]) ** 2)


def harris_priester_density(r_gcrs_m: Vector, t_gps_s: float) -> float:
    """Harris-Priester density [kg/m^3] at GCRS *r_gcrs_m* [m] and GPS time *t_gps_s*."""
    x, y, z = (float(c) for c in r_gcrs_m)
    b = density_bulge_apex(t_gps_s)
    return _density_hp(_height_xyz(x, y, z), (x * b[0] + y * b[1] + z * b[2]) / math.sqrt(x * x + y * y + z * z))[0]


def _drag_xyz(
    x: float, y: float, z: float, vx: float, vy: float, vz: float, inv_b: float, bulge: Vec3 | None = None
) -> tuple[Vec3, tuple[float, float, float, float, float, float]]:
    """Drag acceleration per unit drag scale, and the pieces needed for its partials; the
    exponential atmosphere, or Harris-Priester with the bulge's apex *bulge*."""
    w = OMEGA_EARTH_RAD_S
    ux, uy, uz = vx + w * y, vy - w * x, vz  # v_rel = v - omega x r
    speed = math.sqrt(ux * ux + uy * uy + uz * uz)
    r = math.sqrt(x * x + y * y + z * z)
    s2 = z * z / (r * r)
    h = r - A_WGS84_M * (1.0 - FLATTENING_EARTH * s2)  # (_height_xyz, r kept for the bulge)
    if bulge is None:
        rho, hs = _density(h)
    else:
        rho, hs = _density_hp(h, (x * bulge[0] + y * bulge[1] + z * bulge[2]) / r)
    c = -0.5 * inv_b * rho * speed
    return (c * ux, c * uy, c * uz), (ux, uy, uz, speed, c, hs)


def drag_acceleration(
    r_m: Vector, v_m_s: Vector, ballistic_coeff_kg_m2: float, drag_scale: float = 1.0, bulge: Vec3 | None = None
) -> np.ndarray:
    """Drag acceleration [m/s^2] at GCRS *r_m* [m], *v_m_s* [m/s]; B = m/(C_D A) [kg/m^2];
    *bulge*: Harris-Priester with that apex (:func:`density_bulge_apex`), else exponential."""
    x, y, z = (float(c) for c in r_m)
    vx, vy, vz = (float(c) for c in v_m_s)
    a, _ = _drag_xyz(x, y, z, vx, vy, vz, drag_scale / ballistic_coeff_kg_m2, bulge)
    return np.array(a)


def _drag_partials_xyz(
    x: float, y: float, z: float, a_unit: Vec3, aux: tuple[float, float, float, float, float, float], k: float
) -> tuple[list[list[float]], list[list[float]]]:
    """d a/d r, d a/d v (3x3 lists) for drag scale *k*; *a_unit* is per unit scale."""
    ux, uy, uz, speed, c, hs = aux
    w = OMEGA_EARTH_RAD_S
    ck = c * k
    # a = c u with c = -k rho |u| / (2B): d a / d v_rel = c (I + u u^T / |u|^2)
    s = ck / (speed * speed) if speed > 0 else 0.0
    u = (ux, uy, uz)
    dv = [[s * u[i] * u[j] + (ck if i == j else 0.0) for j in range(3)] for i in range(3)]
    # d a / d r = a (d ln rho / d r)^T + d a / d v_rel . d v_rel / d r, with
    # d ln rho / d r = -grad(h) / hs and v_rel = v - omega x r.
    r2 = x * x + y * y + z * z
    r = math.sqrt(r2)
    af = A_WGS84_M * FLATTENING_EARTH * 2.0 * z * z / (r2 * r2)
    gh = (x / r - af * x, y / r - af * y, z / r - af * z + A_WGS84_M * FLATTENING_EARTH * 2.0 * z / r2)
    ak = (a_unit[0] * k, a_unit[1] * k, a_unit[2] * k)
    dr = [[-ak[i] * gh[j] / hs for j in range(3)] for i in range(3)]
    # -[omega x] = [[0, w, 0], [-w, 0, 0], [0, 0, 0]]: column 0 gets -w * dv[:,1], column 1 +w * dv[:,0]
    for i in range(3):
        dr[i][0] += -w * dv[i][1]
        dr[i][1] += w * dv[i][0]
    return dr, dv


def drag_partials(
    r_m: Vector, v_m_s: Vector, ballistic_coeff_kg_m2: float, drag_scale: float = 1.0, bulge: Vec3 | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(a, d a/d r (3,3), d a/d v (3,3), d a/d drag_scale (3,)) of the drag model (*bulge*:
    see :func:`drag_acceleration`; the density's change across the bulge, ~1 % of its
    change with height per metre, is left out of d a/d r)."""
    x, y, z = (float(c) for c in r_m)
    vx, vy, vz = (float(c) for c in v_m_s)
    a_unit, aux = _drag_xyz(x, y, z, vx, vy, vz, 1.0 / ballistic_coeff_kg_m2, bulge)
    dr, dv = _drag_partials_xyz(x, y, z, a_unit, aux, drag_scale)
    a_unit_array = np.array(a_unit)
    return a_unit_array * drag_scale, np.array(dr), np.array(dv), a_unit_array


# -------------------------------------------------------------------- Gauss-Markov / Q
def gauss_markov_decay(dt_s: float, tau_s: float) -> float:
    """exp(-dt/tau): the one-step transition of a first-order Gauss-Markov process."""
    return math.exp(-dt_s / tau_s)


#: The power series of dmc_process_noise: 16 terms of each response (r: t^2.., v: t^1..,
#: w: t^0..) as rows over the powers k = 0 .. 17.
_SERIES_K = np.arange(18.0)[None, :]
_SERIES_SHIFT = np.array([[2.0], [1.0], [0.0]])
_SERIES_MASK = ((_SERIES_K >= _SERIES_SHIFT) & (_SERIES_K < _SERIES_SHIFT + 16)).astype(float)
_SERIES_FACT = np.array([math.factorial(k) for k in range(18)], dtype=float)[None, :]
_SERIES_HILBERT = 1.0 / (_SERIES_K.T + _SERIES_K + 1.0)


def dmc_process_noise(dt_s: float, tau_s: float, sigma_m_s2: float) -> np.ndarray:
    """Exact discrete process noise of one axis of (r, v, w) over *dt_s*: (3, 3).

    Continuous model r' = v, v' = w, w' = -w/tau + u, E[u u] = q delta, q = 2 sigma^2/tau
    (so that w has steady-state standard deviation *sigma_m_s2*).  Units follow the
    blocks (m^2 for r-r ... m^2/s^4 for w-w).  Uses the power series for dt/tau < 0.5 to
    avoid the closed form's cancellation.
    """
    b = 1.0 / tau_s
    q = 2.0 * sigma_m_s2 * sigma_m_s2 * b
    t = dt_s
    bt = b * t
    if bt < 0.5:
        # Power series of the three impulse responses, integrated term by term: free of
        # the cancellation that ruins the closed form for dt << tau.
        # phi_r = sum_{k>=2} (-b)^(k-2) t^k/k!, phi_v = sum_{k>=1} (-b)^(k-1) t^k/k!,
        # phi_w = sum_{k>=0} (-b)^k t^k/k!: row i of c holds the coefficients of t^k (k =
        # 0 .. 17) of response i, and Q = q t c H c^T with H = 1 / (k + l + 1).
        c = (-bt) ** (_SERIES_K - _SERIES_SHIFT) * t**_SERIES_SHIFT / _SERIES_FACT * _SERIES_MASK
        return (q * t) * (c @ _SERIES_HILBERT @ c.T)
    e1 = math.exp(-bt)
    e2 = e1 * e1
    i_t_1me = t * t / 2.0 - (1.0 - e1 - bt * e1) / (b * b)  # int t (1 - e^{-bt})
    i_1me_sq = t - 2.0 * (1.0 - e1) / b + (1.0 - e2) / (2.0 * b)  # int (1 - e^{-bt})^2
    qww = q * (1.0 - e2) / (2.0 * b)
    qvw = q / b * ((1.0 - e1) / b - (1.0 - e2) / (2.0 * b))
    qvv = q / (b * b) * i_1me_sq
    qrw = q / b**3 * ((1.0 - e2) / 2.0 - bt * e1)
    qrv = q / (b * b) * (i_t_1me - i_1me_sq / b)
    qrr = q / (b * b) * (t**3 / 3.0 - 2.0 / b * i_t_1me + i_1me_sq / (b * b))
    return np.array([[qrr, qrv, qrw], [qrv, qvv, qvw], [qrw, qvw, qww]])


def process_noise(
    dt_s: float, model: DynamicsModel, dmc_sigma_m_s2: float, drag_scale_sigma: float = 0.0
) -> np.ndarray:
    """Process noise Q of the full state over *dt_s* (n_states x n_states).

    The three GCRS axes are independent and identical; the drag scale (if a state) is a
    Gauss-Markov process with steady-state standard deviation *drag_scale_sigma*.
    """
    n = model.n_states
    q = np.zeros((n, n))
    q3 = dmc_process_noise(dt_s, model.dmc_tau_s, dmc_sigma_m_s2)
    for i in range(3):
        for j in range(3):
            for ax in range(3):
                q[3 * i + ax, 3 * j + ax] = q3[i, j]
    if model.drag_scale_tau_s is not None:  # n == 10
        q[9, 9] = drag_scale_sigma**2 * (1.0 - math.exp(-2.0 * dt_s / model.drag_scale_tau_s))
    return q


# ----------------------------------------------------------------- Jacobian and Phi
def _accel_xyz(
    x: float,
    y: float,
    z: float,
    vx: float,
    vy: float,
    vz: float,
    wx: float,
    wy: float,
    wz: float,
    k: float,
    zj: Sequence[float],
    inv_b: float,
    pole: _Vector,
    bulge: Vec3 | None = None,
) -> Vec3:
    gx, gy, gz = _gravity_xyz(x, y, z, zj, pole)
    if inv_b:
        (dx, dy, dz), _ = _drag_xyz(x, y, z, vx, vy, vz, inv_b * k, bulge)
        return gx + dx + wx, gy + dy + wy, gz + dz + wz
    return gx + wx, gy + wy, gz + wz


def acceleration_list(
    xs: Vector, model: DynamicsModel, pole: Vector = _Z_POLE, bulge: Vec3 | None = None
) -> tuple[float, float, float]:
    """d v / d t [m/s^2] at the state list *xs* (GCRS r, v, w[, drag scale]): zonal
    gravity about *pole*, drag and the empirical acceleration - what the RK4 step
    evaluates at its nodes, without the tesseral and third-body terms it holds constant
    over a step (< 1e-4 m/s^2 in all, varying over minutes; used where a step's end
    derivatives are wanted, e.g. to interpolate within it)."""
    x, y, z, vx, vy, vz, wx, wy, wz = xs[:9]
    k = xs[9] if len(xs) == 10 else 1.0
    b = model.ballistic_coeff_kg_m2
    inv_b = 1.0 / b if b and math.isfinite(b) else 0.0
    return _accel_xyz(x, y, z, vx, vy, vz, wx, wy, wz, k, model.zonal_j, inv_b, pole, bulge)


def _jacobian_list(
    xs: Vector, model: DynamicsModel, pole: Vector = _Z_POLE, bulge: Vec3 | None = None
) -> list[list[float]]:
    """F = d f / d x at state list *xs*, as nested lists (n x n)."""
    n = model.n_states
    x, y, z, vx, vy, vz = xs[:6]
    k = xs[9] if n == 10 else 1.0
    _, g = _gravity_and_gradient_xyz(x, y, z, model.zonal_j, pole)
    f = [[0.0] * n for _ in range(n)]
    for i in range(3):
        f[i][3 + i] = 1.0
        f[3 + i][6 + i] = 1.0
        f[6 + i][6 + i] = -1.0 / model.dmc_tau_s
    b = model.ballistic_coeff_kg_m2
    if b and math.isfinite(b):
        a_unit, aux = _drag_xyz(x, y, z, vx, vy, vz, 1.0 / b, bulge)
        dr, dv = _drag_partials_xyz(x, y, z, a_unit, aux, k)
        for i in range(3):
            for j in range(3):
                f[3 + i][j] = g[i][j] + dr[i][j]
                f[3 + i][3 + j] = dv[i][j]
            if n == 10:
                f[3 + i][9] = a_unit[i]
    else:
        for i in range(3):
            for j in range(3):
                f[3 + i][j] = g[i][j]
    if model.drag_scale_tau_s is not None:  # n == 10
        f[9][9] = -1.0 / model.drag_scale_tau_s
    return f


def state_derivative_jacobian(
    x_state: Vector, model: DynamicsModel, pole: Vector = _Z_POLE, bulge: Vec3 | None = None
) -> np.ndarray:
    """Jacobian F = d(dx/dt)/dx of the estimator state (n_states x n_states), analytic.

    The tesseral terms' gradient (< 1e-9 s^-2) is left out.
    """
    return np.array(_jacobian_list([float(c) for c in x_state], model, tuple(float(c) for c in pole), bulge))


def _rk4_step(
    xs: list[float],
    dt: float,
    model: DynamicsModel,
    extra: Vec3 = (0.0, 0.0, 0.0),
    pole: Vector = _Z_POLE,
    bulge: Vec3 | None = None,
) -> list[float]:
    """One RK4 step of (r, v) with w(t) = w0 exp(-t/tau) and a constant drag scale."""
    x, y, z, vx, vy, vz, wx, wy, wz = xs[:9]
    k = xs[9] if len(xs) == 10 else 1.0
    ex, ey, ez = extra
    zj = model.zonal_j
    b = model.ballistic_coeff_kg_m2
    inv_b = 1.0 / b if b and math.isfinite(b) else 0.0
    tau = model.dmc_tau_s
    e_half = math.exp(-0.5 * dt / tau)
    e_full = e_half * e_half
    h2 = 0.5 * dt
    a1 = _accel_xyz(x, y, z, vx, vy, vz, wx + ex, wy + ey, wz + ez, k, zj, inv_b, pole, bulge)
    x2, y2, z2 = x + h2 * vx, y + h2 * vy, z + h2 * vz
    vx2, vy2, vz2 = vx + h2 * a1[0], vy + h2 * a1[1], vz + h2 * a1[2]
    a2 = _accel_xyz(
        x2, y2, z2, vx2, vy2, vz2, wx * e_half + ex, wy * e_half + ey, wz * e_half + ez, k, zj, inv_b, pole, bulge
    )
    x3, y3, z3 = x + h2 * vx2, y + h2 * vy2, z + h2 * vz2
    vx3, vy3, vz3 = vx + h2 * a2[0], vy + h2 * a2[1], vz + h2 * a2[2]
    a3 = _accel_xyz(
        x3, y3, z3, vx3, vy3, vz3, wx * e_half + ex, wy * e_half + ey, wz * e_half + ez, k, zj, inv_b, pole, bulge
    )
    x4, y4, z4 = x + dt * vx3, y + dt * vy3, z + dt * vz3
    vx4, vy4, vz4 = vx + dt * a3[0], vy + dt * a3[1], vz + dt * a3[2]
    a4 = _accel_xyz(
        x4, y4, z4, vx4, vy4, vz4, wx * e_full + ex, wy * e_full + ey, wz * e_full + ez, k, zj, inv_b, pole, bulge
    )
    s = dt / 6.0
    out = [
        x + s * (vx + 2 * vx2 + 2 * vx3 + vx4),
        y + s * (vy + 2 * vy2 + 2 * vy3 + vy4),
        z + s * (vz + 2 * vz2 + 2 * vz3 + vz4),
        vx + s * (a1[0] + 2 * a2[0] + 2 * a3[0] + a4[0]),
        vy + s * (a1[1] + 2 * a2[1] + 2 * a3[1] + a4[1]),
        vz + s * (a1[2] + 2 * a2[2] + 2 * a3[2] + a4[2]),
        wx * e_full,
        wy * e_full,
        wz * e_full,
    ]
    if len(xs) == 10:
        # A 10-element state is a drag-scale model's (a 9-state model's failed here before).
        assert model.drag_scale_tau_s is not None
        out.append(k * math.exp(-dt / model.drag_scale_tau_s) + (1.0 - math.exp(-dt / model.drag_scale_tau_s)))
    return out


_EYE = {n: np.eye(n) for n in (6, 9, 10)}


def _rotation_at(t_gps_s: float) -> tuple[tuple, Vec3]:
    """gcrs_from_itrs at a step's mid time as row tuples, and its pole (third column); the
    rows are memoised by time in :mod:`pygnc.frames` (every propagation stepping
    through the same instant - own and partner states, every partner's filter - shares it)."""
    m = frames.gcrs_from_itrs_rows(t_gps_s)
    return m, (m[0][2], m[1][2], m[2][2])


def _phi_taylor(f: np.ndarray, dt: float) -> np.ndarray:
    """exp(F dt) to 4th order (Horner form); *f* is an (n, n) array."""
    n = f.shape[0]
    eye = _EYE.get(n)
    if eye is None:
        eye = _EYE[n] = np.eye(n)
    a = f * dt
    phi = eye + a * 0.25
    phi = eye + (a @ phi) * (1.0 / 3.0)
    phi = eye + (a @ phi) * 0.5
    return eye + a @ phi


#: Steps longer than this [s] get their transition matrix from the two-point Magnus form
#: (:func:`_phi_magnus`); shorter ones from the Jacobian at the step's middle.
MAGNUS_MIN_STEP_S = 10.0
_GAUSS_1, _GAUSS_2 = 0.5 - math.sqrt(3.0) / 6.0, 0.5 + math.sqrt(3.0) / 6.0


def hermite_weights(s: float, h: float) -> tuple[float, float, float, float]:
    """Cubic Hermite weights at fraction *s* of an interval of *h* s: a value there is
    w0 y0 + w0' y0' + w1 y1 + w1' y1' from the values y and derivatives y' at both ends."""
    s2 = s * s
    s3 = s2 * s
    return 2.0 * s3 - 3.0 * s2 + 1.0, (s3 - 2.0 * s2 + s) * h, 3.0 * s2 - 2.0 * s3, (s3 - s2) * h


def _within_step(xs: list[float], new: list[float], h: float, s: float) -> list[float]:
    """The state list at fraction *s* of a step of *h* s from *xs* to *new*: position by
    cubic Hermite interpolation on positions and velocities, the rest linearly (the
    Jacobian depends on the velocity only through drag)."""
    h00, h10, h01, h11 = hermite_weights(s, h)
    out = [(1.0 - s) * a + s * b for a, b in zip(xs, new)]
    for i in range(3):
        out[i] = h00 * xs[i] + h10 * xs[3 + i] + h01 * new[i] + h11 * new[3 + i]
    return out


def _phi_magnus(
    xs: list[float], new: list[float], h: float, model: DynamicsModel, pole: Vector, bulge: Vec3 | None = None
) -> np.ndarray:
    """Phi of a long step: exp(Omega) with Omega the 4th-order Magnus expansion on the
    Jacobians at the two Gauss points, (h/2)(A1 + A2) + (sqrt(3)/12) h^2 [A2, A1].  The
    one-point form exp(F(mid) h) leaves out how the gravity gradient turns during the step
    (the commutator): ~1e-5 in the position and velocity blocks of a 30-s step, which
    accumulates in a filter's covariance (a 2 % smaller relative sigma after 3 h of 25-s
    steps, against a chain of 5-s steps); this form: 3e-9 in those blocks at 30 s, against a
    chain of 0.5-s steps (tests/test_orbit_dynamics.py)."""
    a1 = np.array(_jacobian_list(_within_step(xs, new, h, _GAUSS_1), model, pole, bulge))
    a2 = np.array(_jacobian_list(_within_step(xs, new, h, _GAUSS_2), model, pole, bulge))
    omega = (0.5 * h) * (a1 + a2) + (math.sqrt(3.0) / 12.0 * h * h) * (a2 @ a1 - a1 @ a2)
    return _phi_taylor(omega, 1.0)


@overload
def propagate(
    x_state: Vector,
    dt_s: float,
    model: DynamicsModel,
    want_phi: Literal[True] = ...,
    t_gps_s: float | None = ...,
    before_step: Callable[[], object] | None = ...,
) -> tuple[np.ndarray, np.ndarray]: ...


@overload
def propagate(
    x_state: Vector,
    dt_s: float,
    model: DynamicsModel,
    want_phi: Literal[False],
    t_gps_s: float | None = ...,
    before_step: Callable[[], object] | None = ...,
) -> tuple[np.ndarray, None]: ...


@overload
def propagate(
    x_state: Vector,
    dt_s: float,
    model: DynamicsModel,
    want_phi: bool,
    t_gps_s: float | None = ...,
    before_step: Callable[[], object] | None = ...,
) -> tuple[np.ndarray, np.ndarray | None]: ...


def propagate(
    x_state: Vector,
    dt_s: float,
    model: DynamicsModel,
    want_phi: bool = True,
    t_gps_s: float | None = None,
    before_step: Callable[[], object] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Propagate the estimator state by *dt_s* [s]; return (x_new, Phi).

    State (GCRS, SI): [r_m (3), v_m_s (3), w_m_s2 (3) empirical acceleration,
    (drag_scale)] — see :class:`DynamicsModel`.  The drag scale, when a state, is a
    Gauss-Markov process about 1.  Intervals longer than ``model.max_step_s`` are split
    into equal sub-steps and Phi chained.  *dt_s* may be negative (backwards) or zero.
    With the start time *t_gps_s* the zonal field is referred to the true rotation pole
    (CIP, from :mod:`pygnc.frames`, once per step); without it, to GCRS z (for tests and
    short arcs only: ~0.15 deg off in 2025).  With ``model.tesseral_degree`` the time is
    required: the tesseral
    acceleration is evaluated once per step at the mid-step time and predicted position
    (r + v h/2) and held constant over the step (its own rate of change, ~1e-7 m/s^3,
    makes that a < 0.1 mm error per step); its tiny gradient is left out of Phi.
    *before_step*: called before each sub-step (a long propagation's look at a stop: it may
    raise).
    """
    if model._needs_time and t_gps_s is None:
        raise ValueError(
            "propagate: t_gps_s is required with tesseral gravity, a field, third bodies or the diurnal bulge"
        )
    xs = [float(c) for c in x_state]
    n = len(xs)
    dt_s = float(dt_s)  # Python floats throughout: numpy scalars make every step's math slower
    if dt_s == 0.0:
        return np.array(xs), (np.eye(n) if want_phi else None)
    nsub = max(1, int(math.ceil(abs(dt_s) / model.max_step_s - 1e-9)))
    h = dt_s / nsub
    phi_total = None
    t = None if t_gps_s is None else float(t_gps_s)
    for _ in range(nsub):
        if before_step is not None:
            before_step()
        xs, phi, _, _, _ = _one_step(xs, h, model, t, want_phi)
        if t is not None:
            t += h
        if want_phi:
            phi_total = phi if phi_total is None else phi @ phi_total
    return np.array(xs), phi_total


def _one_step(
    xs: list[float], h: float, model: DynamicsModel, t: float | None, want_phi: bool
) -> tuple[list[float], np.ndarray | None, Vec3, Vec3, Vec3 | None]:
    """One RK4 step of the state list *xs* over *h* s from time *t* (None: no tesseral,
    field, third-body or bulge terms, zonals about GCRS z): (new state list, Phi or None, the
    tesseral or field + third-body acceleration held over the step, the pole used, the
    density bulge's apex used or None)."""
    extra = (0.0, 0.0, 0.0)
    pole = _Z_POLE
    bulge = None
    if t is not None:
        if model.diurnal:
            bulge = density_bulge_apex(t + 0.5 * h)
        tables = model._tesseral_tables
        m, pole = _rotation_at(t + 0.5 * h)
        xm, ym, zm = xs[0] + 0.5 * h * xs[3], xs[1] + 0.5 * h * xs[4], xs[2] + 0.5 * h * xs[5]
        if tables is not None:
            extra = _tesseral_gcrs_xyz(xm, ym, zm, m, tables)
        elif model._field is not None:
            extra = model._field.acceleration_gcrs(xm, ym, zm, m)
        if model.third_body:
            bx, by, bz = _third_body_xyz(xm, ym, zm, t + 0.5 * h)
            extra = (extra[0] + bx, extra[1] + by, extra[2] + bz)
    new = _rk4_step(xs, h, model, extra, pole, bulge)
    phi = None
    if want_phi:
        if abs(h) > MAGNUS_MIN_STEP_S:
            phi = _phi_magnus(xs, new, h, model, pole, bulge)
        else:
            mid = [0.5 * (a + b) for a, b in zip(xs, new)]
            phi = _phi_taylor(np.array(_jacobian_list(mid, model, pole, bulge)), h)
    return new, phi, extra, pole, bulge


def semi_major_axis_difference_m(r_own_m: ArrayLike, v_own_m_s: ArrayLike, dr_m: ArrayLike, dv_m_s: ArrayLike) -> float:
    """Semi-major axis of (r + dr, v + dv) less that of (r, v), m, from the orbital energy in
    the point-mass and J2 field (GCRS, the pole taken as z): J2's field is axisymmetric, so
    this energy stays constant along each orbit and the difference is the drift-driving
    one, not the twice-per-orbit wobble of the osculating elements (tens of metres)."""
    r0 = np.asarray(r_own_m, dtype=float)
    v0 = np.asarray(v_own_m_s, dtype=float)
    r1 = r0 + np.asarray(dr_m, dtype=float)
    v1 = v0 + np.asarray(dv_m_s, dtype=float)
    j2 = ZONAL_J_EGM96[2]

    def energy(r: np.ndarray, v: np.ndarray) -> float:
        rn = math.sqrt(float(r @ r))
        s2 = (r[2] / rn) ** 2
        u = -GM_EARTH_M3_S2 / rn * (1.0 - j2 * (R_EARTH_M / rn) ** 2 * 0.5 * (3.0 * s2 - 1.0))
        return 0.5 * float(v @ v) + u

    e0 = energy(r0, v0)
    de = energy(r1, v1) - e0
    a = -GM_EARTH_M3_S2 / (2.0 * e0)
    return 2.0 * a * a * de / GM_EARTH_M3_S2


def neighbour_transition_terms(
    r_ref0_m: Vector, r_ref1_m: Vector, x0: Vector, x1: Vector, h_s: float, model: DynamicsModel, t_gps_s: float
) -> tuple[np.ndarray, list[float] | None]:
    """What turns a reference trajectory's 9-state step transition Phi_ref into that of a
    trajectory passing within ~10 km of it over the same step (a formation partner and the
    own orbit), without a transition of its own: (C (6, 9), drag column (6,) or None) with

        Phi[0:6, 0:9] = Phi_ref[0:6, 0:9] + C,  Phi[6:9, 0:9] = Phi_ref[6:9, 0:9],
        Phi[0:6, 9] = drag column,  Phi[9, 9] = exp(-h / tau_drag)  (a drag-scale state).

    *r_ref0_m*, *r_ref1_m*: the reference's GCRS positions [m] at the step's start and end;
    *x0*, *x1*: this trajectory's states there (r, v, ...); a step of *h_s* s from GPS time
    *t_gps_s*.  See :func:`neighbour_transition`."""
    h = float(h_s)
    _, pole = _rotation_at(float(t_gps_s) + 0.5 * h)
    zj = model.zonal_j[:3]
    xa, xb = [float(c) for c in x0[:6]], [float(c) for c in x1[:6]]
    _, g = _gravity_and_gradient_xyz(0.5 * (xa[0] + xb[0]), 0.5 * (xa[1] + xb[1]), 0.5 * (xa[2] + xb[2]), zj, pole)
    ra, rb = [float(c) for c in r_ref0_m[:3]], [float(c) for c in r_ref1_m[:3]]
    _, g_ref = _gravity_and_gradient_xyz(0.5 * (ra[0] + rb[0]), 0.5 * (ra[1] + rb[1]), 0.5 * (ra[2] + rb[2]), zj, pole)
    h2, h3, h4 = 0.5 * h * h, h * h * h / 6.0, h * h * h * h / 24.0
    ht = h / model.dmc_tau_s  # the empirical acceleration decays over the step: to first order in h / tau
    w_r, w_v = h4 * (1.0 - 0.2 * ht), h3 * (1.0 - 0.25 * ht)
    rows = []
    for cr, cv, cw in ((h2, h3, w_r), (h, h2, w_v)):
        for i in range(3):
            d = [g[i][j] - g_ref[i][j] for j in range(3)]
            rows.append(
                [cr * d[0], cr * d[1], cr * d[2], cv * d[0], cv * d[1], cv * d[2], cw * d[0], cw * d[1], cw * d[2]]
            )
    drag = None
    b = model.ballistic_coeff_kg_m2
    if model.n_states == 10 and b and math.isfinite(b):
        bulge = density_bulge_apex(float(t_gps_s) + 0.5 * h) if model.diurnal else None
        a0 = _drag_xyz(xa[0], xa[1], xa[2], xa[3], xa[4], xa[5], 1.0 / b, bulge)[0]
        a1 = _drag_xyz(xb[0], xb[1], xb[2], xb[3], xb[4], xb[5], 1.0 / b, bulge)[0]
        am = [0.5 * (p + q) for p, q in zip(a0, a1)]
        ga = [g[i][0] * am[0] + g[i][1] * am[1] + g[i][2] * am[2] for i in range(3)]
        c0, c1 = h * h / 3.0, h * h / 6.0
        drag = [c0 * a0[i] + c1 * a1[i] + h4 * ga[i] for i in range(3)] + [
            0.5 * h * (a0[i] + a1[i]) + h3 * ga[i] for i in range(3)
        ]
    return np.array(rows), drag


def neighbour_transition(
    phi_ref: np.ndarray,
    r_ref0_m: Vector,
    r_ref1_m: Vector,
    x0: Vector,
    x1: Vector,
    h_s: float,
    model: DynamicsModel,
    t_gps_s: float,
) -> np.ndarray:
    """Phi (n x n, ``model.n_states``) of one step of *h_s* s from *t_gps_s* along a
    trajectory passing within ~10 km of a reference one whose 9-state step transition
    *phi_ref* is known: the reference's Phi plus the first-order effect of the
    gravity-gradient difference (:func:`neighbour_transition_terms` gives the pieces).

    With F = F_ref + dF, dF = [[0, 0], [dG, 0]] on (r, v) and dG the difference of the
    point-mass + J2 gradients at the two mid positions, to first order in dF and lowest
    order in h:  Phi_rv = Phi_ref,rv + [[dG h^2/2, dG h^3/6], [dG h, dG h^2/2]], and the
    empirical-acceleration columns get [dG h^4/24 (1 - h/5tau), dG h^3/6 (1 - h/4tau)] (its
    decay to first order in h / tau).  Left out: the second-order rest, ~G dG h^4 / 24
    (2e-10 at 10 km and 30 s); the J3-J8 and tesseral gradient differences (< 1e-11 s^-2
    at 10 km: < 5e-9 in Phi); the drag partials' difference (both ~3e-10 s^-1: < 1e-8).
    With a drag-scale state (n = 10), its column integrates the drag acceleration per unit
    scale, taken at both ends and linear in between (it turns with the velocity and the
    density changes along the step: ~1 % over 30 s), with the gravity-gradient coupling at
    the middle; its decay is exp(-h / tau).  Against the full two-point Magnus transition of
    this trajectory's own step, 10 km from the reference (tests/test_orbit_dynamics.py):
    < 1e-8 relative in the (r, v) blocks, 3e-4 relative in the drag column."""
    n = model.n_states
    c, drag = neighbour_transition_terms(r_ref0_m, r_ref1_m, x0, x1, h_s, model, t_gps_s)
    phi = np.zeros((n, n))
    phi[0:9, 0:9] = phi_ref[0:9, 0:9]
    phi[0:6, 0:9] += c
    if model.drag_scale_tau_s is not None:  # n == 10
        if drag is not None:
            phi[0:6, 9] = drag
        phi[9, 9] = math.exp(-float(h_s) / model.drag_scale_tau_s)
    return phi


def propagate_step(
    x_state: Vector, h_s: float, model: DynamicsModel, t_gps_s: float
) -> tuple[np.ndarray, np.ndarray, tuple[tuple[float, ...], tuple[float, ...]]]:
    """One step of :func:`propagate` (|*h_s*| <= ``model.max_step_s``) that also returns
    what :func:`interpolate_in_step` needs: (x_new (n,), Phi (n, n), (a0, a1)) with a0, a1
    the accelerations [m/s^2] at both ends as the step sees them (zonal gravity, drag and
    the empirical acceleration at each end, plus the tesseral and third-body acceleration
    the step holds constant)."""
    xs = [float(c) for c in x_state]
    h = float(h_s)
    if abs(h) > model.max_step_s * (1.0 + 1e-9):
        raise ValueError(f"propagate_step: |h| = {abs(h)} s exceeds the model's max step {model.max_step_s} s")
    new, phi, extra, pole, bulge = _one_step(xs, h, model, float(t_gps_s), True)
    assert phi is not None  # want_phi: _one_step always makes it
    a0 = acceleration_list(xs, model, pole, bulge)
    a1 = acceleration_list(new, model, pole, bulge)
    ends = (tuple(a + e for a, e in zip(a0, extra)), tuple(a + e for a, e in zip(a1, extra)))
    return np.array(new), phi, ends


def interpolate_in_step(
    x0: Vector, x1: Vector, ends: tuple[Sequence[float], Sequence[float]], tau_s: float, h_s: float
) -> list[float]:
    """The state at *tau_s* into a step of *h_s* s from *x0* to *x1* (:func:`propagate_step`
    and its end accelerations *ends*), as a list: the position by quintic Hermite
    interpolation on the ends' positions, velocities and accelerations, the velocity by
    cubic Hermite on velocities and accelerations, the rest (empirical acceleration, drag
    scale: Gauss-Markov over minutes to days) linearly.  Against a fine integration, at
    h = 30 s on a 500-km orbit: ~2 mm (the 30-s step's own error at its end: 3 mm) and
    ~5e-5 m/s (the cubic's h^4 v^(4) / 384 is 2e-5 m/s, plus the step's error; the
    quintic's derivative was worse, 2e-4 m/s) (tests/test_orbit_dynamics.py); the cubic
    position form would be off by ~2 cm."""
    a, b = [float(c) for c in x0], [float(c) for c in x1]
    h = float(h_s)
    s = float(tau_s) / h
    out = [(1.0 - s) * u + s * w for u, w in zip(a, b)]
    s2 = s * s
    s3 = s2 * s
    s4 = s3 * s
    s5 = s4 * s
    # Quintic Hermite basis: values, first and second derivatives at both ends.
    q0 = 1.0 - 10.0 * s3 + 15.0 * s4 - 6.0 * s5
    q1 = (s - 6.0 * s3 + 8.0 * s4 - 3.0 * s5) * h
    q2 = (0.5 * s2 - 1.5 * s3 + 1.5 * s4 - 0.5 * s5) * h * h
    q3 = (0.5 * s3 - s4 + 0.5 * s5) * h * h
    q4 = (-4.0 * s3 + 7.0 * s4 - 3.0 * s5) * h
    q5 = 10.0 * s3 - 15.0 * s4 + 6.0 * s5
    c00, c10, c01, c11 = hermite_weights(s, h)
    e0, e1 = ends
    for i in range(3):
        out[i] = q0 * a[i] + q1 * a[3 + i] + q2 * e0[i] + q3 * e1[i] + q4 * b[3 + i] + q5 * b[i]
        out[3 + i] = c00 * a[3 + i] + c10 * e0[i] + c01 * b[3 + i] + c11 * e1[i]
    return out
