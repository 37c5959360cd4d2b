"""The estimators' notes, declared once: code, estimator, what it means, what to do.

A note (bus message ``estimator_note``: ``estimator``, ``code``, ``peer_id``, ``text``)
says what keeps an estimator from estimating, or what it decided.  Every code an estimator
sends is one row of :data:`NOTES` (``tests/test_notes.py`` finds every code the flight code
sends and checks it is here); docs/operations.md's table of notes, and docs/range_only.md's
of the range-only ones, are generated from it (``scripts/interface_tables.py``), and the
``note`` batch record's code field holds the longest whole (:data:`pygnc.formats.batch.NOTE_CODE_BYTES`).

A leaf module (no imports): the flight and the ground read it.
"""

from __future__ import annotations

from typing import NamedTuple


class NoteCode(NamedTuple):
    code: str
    #: the estimators that send it (``orbit``, ``attitude``, ``formation``), comma-separated
    estimator: str
    meaning: str
    #: what the operator does about it (``-``: nothing)
    action: str


NOTES: tuple[NoteCode, ...] = (
    NoteCode("no_fix", "orbit", "no valid GPS fix in the batch: no orbit estimate", "as status flag `no_valid_fix`"),
    NoteCode(
        "propagation_horizon",
        "orbit, formation",
        "now is more than `max_propagation_s` after the last measurement: estimates are not propagated further "
        "(quality `horizon`)",
        "give pygnc fresh data",
    ),
    NoteCode(
        "no_position",
        "attitude",
        "no orbit estimate: no field or sun model; rates and gyro bias only",
        "as status flag `no_valid_fix`",
    ),
    NoteCode(
        "unknown_peer",
        "formation",
        "ranges or fixes from a radio id not in `formation_peer_ids`: ignored",
        "if it is a partner, uplink `formation_peer_ids` with it",
    ),
    NoteCode(
        "no_range_data",
        "formation",
        "no partner fix and no range in the batch: no formation estimate",
        "as status flag `range_missing`",
    ),
    NoteCode(
        "no_own_fix",
        "formation",
        "no valid own GPS fix: no relative state for any partner",
        "as status flag `no_valid_fix`",
    ),
    NoteCode(
        "peer_no_valid_fix",
        "formation",
        'a partner\'s relayed fixes (`range_gps_source = "peer"`) are all invalid: no estimate',
        "look at the partner's GPS",
    ),
    NoteCode(
        "peer_not_initialized",
        "formation",
        "a partner was heard, but never close enough in time to a valid own fix to start its filter",
        "check that own fixes and ranges overlap in time",
    ),
    NoteCode(
        "peer_fix_late",
        "formation",
        "a partner's fix arrived after the filter had passed its time (its clock ahead?): dropped",
        "check the partner's clock",
    ),
    NoteCode("range_only_start", "formation", "a range-only partner's orbit was fitted to its acquisition window", "-"),
    NoteCode(
        "range_only_mirror",
        "formation",
        "the window's ranges fit several orbits about as well; all are kept (quality `ambiguous` while they lie "
        "far apart; each is downlinked, record `partner_orbit`)",
        "uplink a deciding prior if the side matters ([range_only.md](range_only.md))",
    ),
    NoteCode("range_only_side", "formation", "the ranges decided between the kept orbits", "-"),
    NoteCode(
        "range_only_point_mirror",
        "formation",
        "the orbits on one side lost the ranges; that side is kept as the point mirror of the most likely orbit "
        "(the ranges cannot tell the two apart)",
        "-",
    ),
    NoteCode(
        "range_only_window_extended",
        "formation",
        "the window's best orbit does not fit its ranges (its fit did not converge, or its residual is over twice "
        "what the ranges' noise and the model's error explain); the window grows by a third (up to "
        "`[range_only] max_window_s`)",
        "-",
    ),
    NoteCode(
        "range_only_poor_fit",
        "formation",
        "no orbit fits the window's ranges (the longest window's best fit did not converge, or its residual is "
        "over twice what the ranges' noise and the model's error explain): not used, the partner is acquired again "
        "from its prior, carried to now; or, the batch ended, the last window's fit did not converge: the filter "
        "started from it anyway",
        "check the ranges (bias, outliers) and the prior",
    ),
    NoteCode("range_only_short", "formation", "the batch had too few ranges for a fit", "-"),
    NoteCode(
        "range_only_restart",
        "formation",
        "the filter lost the partner (ranges rejected in a row); its orbit is fitted again from the prior",
        "if it recurs, check the ranges and the prior",
    ),
    NoteCode(
        "range_only_prior_refused",
        "formation",
        "the uplinked prior's epoch is more than `[range_only] prior_max_age_s` from the data, or it cannot start "
        "a filter there (carried to the data it is not finite, or its orbit dips into the Earth - an RTN offset can "
        "put it there): the partner starts as if it had none",
        "uplink a fresh prior ([uplink.md](uplink.md)); check its frame and units",
    ),
    NoteCode(
        "range_only_prior_inconsistent",
        "formation",
        "the prior puts the partner at a distance the first range contradicts by more than 5σ",
        "check the partner id, the epoch and the frame of the uplink",
    ),
)

NOTES_BY_CODE: dict[str, NoteCode] = {n.code: n for n in NOTES}
if len(NOTES_BY_CODE) != len(NOTES):
    raise ValueError("note codes must be unique")
