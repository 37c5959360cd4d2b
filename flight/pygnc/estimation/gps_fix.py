"""A GPS fix as the filters take it (:class:`GpsFix`) and its two pure conversions:
:func:`fix_sigmas`, the per-axis sigmas a filter uses for it, and :func:`fix_to_gcrs`, the
fix as a GCRS measurement with its covariance.

A fix is an ECEF position [m] and velocity [m/s] at ``t_gps_s`` with the receiver's per-axis
1-sigma, which it may leave out (None; a zero or non-finite sigma counts as left out too,
as :func:`fix_sigmas` says).  The orbit EKF, the formation filter and the ground's
smoothers and bounds all take one value of this shape instead of five loose arguments.

The conversion to GCRS uses :mod:`pygnc.frames`, its covariance too: R_gcrs = J R_ecef J^T
with the Jacobian of the ECEF->GCRS map, including the omega x r coupling.

Everything here is pure computation: arrays in, arrays out, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from pygnc import frames
from pygnc.estimation.tunables import OrbitFilterConfig

__all__ = ["GpsFix", "fix_sigmas", "fix_to_gcrs"]


def _frozen_array(a: ArrayLike) -> np.ndarray:
    """A float64 copy of *a* that cannot be written: a fix is a value."""
    out = np.array(a, dtype=float)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, init=False, eq=False)
class GpsFix:
    """One GPS fix: ``t_gps_s`` [GPS s], ``pos_ecef_m`` (3,) [m], ``vel_ecef_m_s`` (3,)
    [m/s], and the receiver's per-axis 1-sigma ``pos_sigma_m`` (3,) [m] and
    ``vel_sigma_m_s`` (3,) [m/s] in ECEF, or None when it gives none.  The time is made a
    float and the arrays float64 copies, read-only, once, here.  (No ``==``: arrays do not
    compare to one truth value.)"""

    t_gps_s: float
    pos_ecef_m: np.ndarray
    vel_ecef_m_s: np.ndarray
    pos_sigma_m: np.ndarray | None
    vel_sigma_m_s: np.ndarray | None

    def __init__(
        self,
        t_gps_s: float,
        pos_ecef_m: ArrayLike,
        vel_ecef_m_s: ArrayLike,
        pos_sigma_m: ArrayLike | None = None,
        vel_sigma_m_s: ArrayLike | None = None,
    ) -> None:
        put = object.__setattr__  # frozen: these are the only writes
        put(self, "t_gps_s", float(t_gps_s))
        put(self, "pos_ecef_m", _frozen_array(pos_ecef_m))
        put(self, "vel_ecef_m_s", _frozen_array(vel_ecef_m_s))
        put(self, "pos_sigma_m", None if pos_sigma_m is None else _frozen_array(pos_sigma_m))
        put(self, "vel_sigma_m_s", None if vel_sigma_m_s is None else _frozen_array(vel_sigma_m_s))

    @classmethod
    def from_table(cls, fixes: Mapping[str, Any] | np.ndarray, i: int) -> GpsFix:
        """Fix *i* of a table of fixes: a structured array (e.g.
        ``pygnc.formats.gps.GPS_FIX_DTYPE``) or a dict of arrays with the fields
        ``t_gps_s``, ``pos_ecef_m``, ``vel_ecef_m_s``, ``pos_sigma_m`` and ``vel_sigma_m_s``."""
        return cls(
            fixes["t_gps_s"][i],
            fixes["pos_ecef_m"][i],
            fixes["vel_ecef_m_s"][i],
            fixes["pos_sigma_m"][i],
            fixes["vel_sigma_m_s"][i],
        )


#: The per-axis 1-sigma a receiver's fix can plausibly report (after ``fix_sigma_scale``):
#: no GPS fix in orbit is better than a centimetre and a tenth of a mm/s, or worse than
#: 1000 km and 1 km/s.
POS_SIGMA_RANGE_M = (0.01, 1e6)
VEL_SIGMA_RANGE_M_S = (1e-4, 1e3)


def fix_sigmas(config: OrbitFilterConfig, fix: GpsFix) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis position and velocity sigmas the filters use for *fix*, (3,) each: the
    reported ones x ``fix_sigma_scale``; a missing (None), non-finite sigma, or one outside
    the plausible range (:data:`POS_SIGMA_RANGE_M`, :data:`VEL_SIGMA_RANGE_M_S`) means "not
    given" and takes the configured default: a corrupt value (the GPS segment has no
    checksum; a flipped exponent reads 3e-17 m) would collapse a filter's covariance onto
    that fix.  Shared by the orbit and formation filters and the ground's smoothers."""
    c = config
    ps = np.full(3, c.pos_sigma_m) if fix.pos_sigma_m is None else fix.pos_sigma_m * c.fix_sigma_scale
    vs = np.full(3, c.vel_sigma_m_s) if fix.vel_sigma_m_s is None else fix.vel_sigma_m_s * c.fix_sigma_scale
    lo, hi = POS_SIGMA_RANGE_M
    ps = np.where((ps >= lo) & (ps <= hi), ps, c.pos_sigma_m)  # NaN fails both
    lo, hi = VEL_SIGMA_RANGE_M_S
    vs = np.where((vs >= lo) & (vs <= hi), vs, c.vel_sigma_m_s)
    return ps, vs


def fix_to_gcrs(fix: GpsFix, pos_sigma_m: ArrayLike, vel_sigma_m_s: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """*fix* in GCRS: (z (6,) = [r_gcrs_m, v_gcrs_m_s], R (6, 6)), R from the per-axis ECEF
    1-sigma *pos_sigma_m* [m] and *vel_sigma_m_s* [m/s] (3,) given: the filters pass
    :func:`fix_sigmas`; a caller who wants the fix's own passes those."""
    m = frames.gcrs_from_itrs_matrix(fix.t_gps_s)
    r_e, v_e = fix.pos_ecef_m, fix.vel_ecef_m_s
    w = frames.EARTH_RATE_SKEW
    z = np.empty(6)
    z[:3] = m @ r_e
    z[3:] = m @ (v_e + w @ r_e)
    j = np.zeros((6, 6))
    j[:3, :3] = m
    j[3:, 3:] = m
    j[3:, :3] = m @ w
    r_e_cov = np.zeros(6)
    r_e_cov[:3] = np.square(pos_sigma_m)
    r_e_cov[3:] = np.square(vel_sigma_m_s)
    r = (j * r_e_cov) @ j.T
    return z, r
