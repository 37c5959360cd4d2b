"""What "valid" means in ``pygnc_status.bin``: usable now.

An estimate the status file carries is judged at every write against "now" (the write's
spacecraft time) into one of :data:`pygnc.formats.status.ESTIMATE_QUALITY`:

* ``none``: no estimate yet;
* ``horizon``: its epoch lags "now" and "now" is more than ``Config.max_propagation_s``
  after the batch's last measurement - the estimators do not propagate that far, so it will
  never be current;
* ``behind``: its epoch lags "now" by more than ``Config.status_max_estimate_lag_s``
  (during the batch the estimates are at past measurement times; afterwards they are
  propagated to "now" every second, over several calls when the gap is long);
* ``ahead``: its epoch is later than "now" by more than that lag (the spacecraft time given
  to main.py is before the batch);
* ``rates_only`` (attitude): rates and gyro bias, but no attitude reference yet;
* ``acquiring``: current, but not yet standing on enough measurements - a range-only peer
  whose acquisition window is still collecting ranges (the estimate is the prior's), or an
  orbit started from one GPS fix that no second fix has confirmed yet (it may be an outlier);
* ``ambiguous`` (range-only peer): current, but the orbits the ranges leave open (mirror
  images) lie further apart than ``formation_valid_max_sigma_m``;
* ``uncertain``: current, but its 3-D 1-sigma exceeds the configured bound
  (``orbit_valid_max_sigma_m``, ``attitude_valid_max_sigma_deg``,
  ``formation_valid_max_sigma_m``);
* ``ok``: none of the above - usable now.  Only ``ok`` sets the ``*_valid`` flags.

The last four tests (:func:`judged`) are also every estimate's quality at its own epoch -
``ok``, ``uncertain``, ``rates_only``, ``acquiring`` or ``ambiguous``, never late or early:
the estimators put that word in each estimate (:func:`orbit_word`, :func:`attitude_word`,
:func:`peer_word`), so the downlink's records and the ground's tables carry the status
file's words by the status file's rules.

Pure functions on the status dict (no numpy): the status reporter and the supervisor's
fallback final status share them.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable

from .config import Config
from .formats import status as st

Q_NONE, Q_OK, Q_BEHIND, Q_AHEAD, Q_HORIZON, Q_UNCERTAIN, Q_RATES_ONLY, Q_ACQUIRING, Q_AMBIGUOUS = range(9)
assert st.ESTIMATE_QUALITY[Q_RATES_ONLY] == "rates_only" and st.ESTIMATE_QUALITY[Q_AMBIGUOUS] == "ambiguous"


def norm3(v: Iterable[float]) -> float:
    """Euclidean norm of a 3-vector (NaN if any component is NaN)."""
    return math.sqrt(sum(float(x) * float(x) for x in v))


def quality(
    epoch_sc_s: float,
    now_sc_s: float,
    sigma_3d: float,
    max_sigma: float,
    batch_last_sc_s: float,
    config: Config,
    has_reference: bool = True,
    acquiring: bool = False,
    ambiguity_m: float = 0.0,
) -> int:
    """Index into ``ESTIMATE_QUALITY`` of one estimate (see the module docstring)."""
    if not math.isfinite(epoch_sc_s):
        return Q_NONE
    lag = config.status_max_estimate_lag_s
    if epoch_sc_s < now_sc_s - lag:
        if math.isfinite(batch_last_sc_s) and now_sc_s - batch_last_sc_s > config.max_propagation_s:
            return Q_HORIZON
        return Q_BEHIND
    if epoch_sc_s > now_sc_s + lag:
        return Q_AHEAD
    return judged(sigma_3d, max_sigma, has_reference, acquiring, ambiguity_m)


def judged(
    sigma_3d: float, max_sigma: float, has_reference: bool = True, acquiring: bool = False, ambiguity_m: float = 0.0
) -> int:
    """Index into ``ESTIMATE_QUALITY`` of an estimate judged at its own epoch: the tests of
    :func:`quality` that do not depend on "now"."""
    if not has_reference:
        return Q_RATES_ONLY
    if acquiring:
        return Q_ACQUIRING
    if ambiguity_m > max_sigma:
        return Q_AMBIGUOUS
    if not sigma_3d <= max_sigma:  # NaN fails too
        return Q_UNCERTAIN
    return Q_OK


def orbit_word(sigma_r_m: Iterable[float], config: Config, confirmed: bool = True) -> str:
    """The quality word of an orbit estimate at its epoch (*sigma_r_m*: 1-sigma per axis, m;
    *confirmed*: a second fix has agreed with the one the filter started from)."""
    return st.ESTIMATE_QUALITY[judged(norm3(sigma_r_m), config.orbit_valid_max_sigma_m, True, not confirmed)]


def attitude_word(sigma_att_rad: Iterable[float], valid_attitude: bool, config: Config) -> str:
    """The quality word of an attitude estimate at its epoch (*valid_attitude* False: rates
    and gyro bias only, no attitude reference)."""
    sigma_deg = math.degrees(norm3(sigma_att_rad))
    return st.ESTIMATE_QUALITY[judged(sigma_deg, config.attitude_valid_max_sigma_deg, bool(valid_attitude))]


def peer_word(sigma_dr_m: Iterable[float], acquiring: bool, ambiguity_m: float, config: Config) -> str:
    """The quality word of a partner's relative-state estimate at its epoch (*acquiring*: its
    range-only acquisition window is open; *ambiguity_m*: how far apart its kept orbits come)."""
    max_sigma = config.formation_valid_max_sigma_m
    return st.ESTIMATE_QUALITY[judged(norm3(sigma_dr_m), max_sigma, True, bool(acquiring), float(ambiguity_m))]


def said_acquiring_in(s: dict) -> set[str]:
    """The estimates of status dict *s* (``orbit``, ``peer0`` ...) whose quality is ``acquiring``:
    what a status carried on from (a restarted reporter, the final status) knew of them."""
    keys = ["orbit"] + [f"peer{k}" for k in range(st.MAX_PEERS)]
    return {k for k in keys if s[k + "_quality"] == Q_ACQUIRING}


def assess(
    s: dict, now_sc_s: float, config: Config, att_has_reference: bool, said_acquiring: Collection[str] = ()
) -> int:
    """Set every ``*_quality`` of status dict *s* for "now" = *now_sc_s*; return *s*'s flags
    with ``orbit_valid``, ``attitude_valid`` and ``formation_valid`` set from them (valid
    formation: at least one peer ``ok``).  *att_has_reference*, *said_acquiring* (``orbit``,
    ``peer0`` ...: whose latest estimate's word was ``acquiring`` - started from one fix, or
    one pair of fixes, not yet confirmed): what the latest estimates said of themselves."""
    last = s["batch_t_sc_last_s"]
    s["orbit_quality"] = quality(
        s["orbit_t_sc_s"],
        now_sc_s,
        norm3(s["orbit_sigma_r_m"]),
        config.orbit_valid_max_sigma_m,
        last,
        config,
        acquiring="orbit" in said_acquiring,
    )
    s["att_quality"] = quality(
        s["att_t_sc_s"],
        now_sc_s,
        math.degrees(norm3(s["att_sigma_rad"])),
        config.attitude_valid_max_sigma_deg,
        last,
        config,
        att_has_reference,
    )
    any_peer_ok = False
    for k in range(st.MAX_PEERS):
        p = f"peer{k}_"
        if not s[p + "id"]:
            s[p + "quality"] = Q_NONE
            continue
        q = quality(
            s[p + "t_sc_s"],
            now_sc_s,
            norm3(s[p + "sigma_dr_m"]),
            config.formation_valid_max_sigma_m,
            last,
            config,
            acquiring=s[p + "acq_window_s"] > 0 or f"peer{k}" in said_acquiring,
            ambiguity_m=s[p + "ambiguity_m"],
        )
        s[p + "quality"] = q
        any_peer_ok |= q == Q_OK
    flags = s["flags"] & ~(st.FLAG_ORBIT_VALID | st.FLAG_ATTITUDE_VALID | st.FLAG_FORMATION_VALID)
    if s["orbit_quality"] == Q_OK:
        flags |= st.FLAG_ORBIT_VALID
    if s["att_quality"] == Q_OK:
        flags |= st.FLAG_ATTITUDE_VALID
    if any_peer_ok:
        flags |= st.FLAG_FORMATION_VALID
    return flags
