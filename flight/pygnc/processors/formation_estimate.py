"""The ``formation_estimate`` body of a partner (:mod:`pygnc.processors.formation`): its
filter's estimate, or range-only the mixture of the orbits it keeps with their mirror images
(:mod:`pygnc.estimation.range_only_mirrors`), in GCRS, ECEF and RTN axes, with sigmas, the
ambiguity of the kept orbits and the quality word.  Pure: arrays in, a message body out.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..config import Config
from ..estimation.formation_filter import (
    I_DRAG_SCALE,
    I_R_OWN,
    I_RANGE_BIAS,
    I_RANGE_DT,
    I_REPORTED,
    I_V_OWN,
    FormationFilter,
    FormationFilterConfig,
    ecef_jacobian,
    line_of_sight_sigma,
    rtn_matrix,
)
from ..estimation.range_only_mirrors import (
    implausible,
    losing_the_ranges,
    mix,
    orbit_ambiguity_m,
    with_mirror_images,
    with_spread,
    with_the_range_only,
)
from ..timebase import ClockMap, utc_unix_from_gps
from ..validity import peer_word
from . import admission

if TYPE_CHECKING:
    from .formation_peer import PeerTrack


def estimate_body(
    p: PeerTrack,
    f: FormationFilter,
    ests: list,
    w: tuple | None,
    t_sc_s: float,
    propagated: bool,
    acq: tuple | None,
    *,
    lost_range_m: float | None = None,
    range_only: bool,
    clock: ClockMap | None,
    config: Config,
    filter_config: FormationFilterConfig,
) -> dict:
    """The ``formation_estimate`` body of *p* at *f*'s time from *ests*: (state (n,), its
    covariance's I_REPORTED block (7, 7)) of *f* and, range-only, of its alternatives,
    published as their mixture with the weights *w* (weight of *f*, weights of the
    others); *f* gives the counters; *acq*: (seconds of ranges, window length) of an
    acquisition under way (the estimate is then the prior's), else None; *lost_range_m*: the
    latest range of a lost track not fitted again (the estimate is the lost filter's,
    propagated), else None; *range_only*: the
    partners are range-only; *clock*: the own clock map; *config*: the flight configuration
    (the validity bound of the quality word); *filter_config*: the filter's tunables (the
    priors a range-only filter's nuisance states are judged against)."""
    t = admission.epoch(f)
    x, pr = ests[0]
    range_m = math.sqrt(float(x[9] * x[9] + x[10] * x[10] + x[11] * x[11]))  # the filter's own
    ws = (1.0,)
    if len(ests) > 1:
        assert w is not None  # given with the alternatives
        ws = (w[0],) + tuple(w[1])
    if range_only and acq is None:
        ests, ws = with_mirror_images(ests, ws, p.hyp.image_odds)
    if len(ests) > 1:
        x, pr = mix(ests, ws, I_REPORTED)
    if range_only and lost_range_m is not None:
        # a lost track's estimate, propagated until it is fitted again: what the range says
        pr = with_the_range_only(x, pr, lost_range_m)
    elif range_only and acq is None and (implausible(x, filter_config) or losing_the_ranges(f)):
        # its ranges or its nuisance states say the filter is off: what the range says
        pr = with_the_range_only(x, pr)
    hyp_dr = [e[0][9:12] for e in ests]
    ambiguity = orbit_ambiguity_m([e[0] for e in ests], ws, x)
    if range_only and acq is None:
        ambiguity = max(ambiguity, p.hyp.unresolved_m)  # (orbits the ranges cannot tell apart)
    # The kept orbits are samples of what the ranges leave open (a continuum's members, or
    # sides of which none may be the truth's): an ambiguous estimate's covariance spans their
    # spread, as does an unambiguous one's the continuum's it holds.
    if ambiguity > config.formation_valid_max_sigma_m:
        spread = ambiguity
    else:
        spread = p.hyp.unresolved_m if range_only and acq is None else 0.0
    if spread > 0.0:
        pr = with_spread(pr, spread)
    j = ecef_jacobian(t)
    x_rel = x[9:15]
    p6 = pr[:6, :6]
    x_e = j @ x_rel
    p_e = j @ p6 @ j.T
    sig_e = np.sqrt(np.clip(np.diag(p_e), 0.0, None))
    hyp_e = [j @ e[0][9:15] for e in ests]  # each kept orbit's relative state, ECEF
    hyp_sig = [np.sqrt(np.clip(np.diag(j @ e[1][:6, :6] @ j.T), 0.0, None)) for e in ests]
    a = rtn_matrix(x[I_R_OWN], x[I_V_OWN])
    p_rr = pr[:3, :3]
    p_rtn = a @ p_rr @ a.T
    if clock is not None and abs(float(clock.gps_from_sc(t_sc_s)) - t) > 1e-3:
        t_sc_s = float(clock.sc_from_gps(t))  # the filter is later than asked: report its epoch
    return {
        "t_sc_s": float(t_sc_s),
        "unix_time_s": float(utc_unix_from_gps(t)),
        "peer_id": p.peer_id,
        "dr_ecef_m": x_e[0:3].tolist(),
        "dv_ecef_m_s": x_e[3:6].tolist(),
        "sigma_dr_m": sig_e[:3].tolist(),
        "sigma_dv_m_s": sig_e[3:].tolist(),
        "range_bias_m": float(x[I_RANGE_BIAS]),
        "n_ranges_used": int(f.n_ranges_used),
        "n_ranges_rejected": int(f.n_ranges_rejected),
        "propagated": bool(propagated),
        "t_gps_s": float(t),
        "dr_gcrs_m": x[9:12].tolist(),
        "dv_gcrs_m_s": x[12:15].tolist(),
        "cov_rel_gcrs": p6.ravel().tolist(),
        "dr_rtn_m": (a @ x[9:12]).tolist(),
        "sigma_dr_rtn_m": np.sqrt(np.clip(np.diag(p_rtn), 0.0, None)).tolist(),
        "range_m": range_m,
        "sigma_los_m": line_of_sight_sigma(x[9:12], p_rr),
        "sigma_range_bias_m": float(math.sqrt(max(0.0, pr[6, 6]))),
        "range_time_offset_s": float(x[I_RANGE_DT]),
        "peer_drag_scale": float(x[I_DRAG_SCALE]),
        "n_peer_fixes_used": int(f.n_peer_used),
        "n_peer_fixes_rejected": int(f.n_peer_rejected),
        "n_own_fixes_used": int(f.n_own_used),
        "n_own_fixes_rejected": int(f.n_own_rejected),
        "acquiring": acq is not None,
        "acquired_s": float(acq[0]) if acq else 0.0,
        "window_s": float(acq[1]) if acq else 0.0,
        "hyp_weights": [float(v) for v in ws],
        "hyp_dr_gcrs_m": [d.tolist() for d in hyp_dr],
        "ambiguity_m": ambiguity,
        "ambiguous": ambiguity > config.formation_valid_max_sigma_m,
        "hyp_dr_ecef_m": [h[:3].tolist() for h in hyp_e],
        "hyp_dv_ecef_m_s": [h[3:].tolist() for h in hyp_e],
        "hyp_sigma_dr_m": [h[:3].tolist() for h in hyp_sig],
        "hyp_sigma_dv_m_s": [h[3:].tolist() for h in hyp_sig],
        # acquiring too while the state stands on the one pair of fixes it started from
        "quality": peer_word(sig_e[:3], acq is not None or not f.confirmed, ambiguity, config),
    }
