"""A formation peer's estimate carried toward "now" (the processor's ``propagate_to_sc``).

The filters stay at their last measurement.  A cursor is a copy of a peer's filter and of
each range-only alternative - except one that is the filter's mirror image in the own
orbit plane, taken from the cursor itself by reflection (no second propagation) - taken
again only when the filters have changed, and advanced in :data:`PROPAGATION_CHUNK_S`
steps within a CPU budget shared fairly by every cursor (:func:`advance`); later calls go
on from where it stopped.
"""

from __future__ import annotations

import copy
import math

from ..estimation.formation_filter import FormationFilter
from ..estimation.range_only import PartnerHypotheses
from ..estimation.range_only_mirrors import MIRROR_D2, reflected, same_orbit
from . import admission

#: Propagation step of a cursor between budget checks [s] (6 filter steps: milliseconds).
PROPAGATION_CHUNK_S = 30.0


class NowCursor:
    """One peer's cursor: :attr:`filter` and :attr:`alts` on their way to :attr:`t_target_gps_s`."""

    def __init__(self) -> None:
        self.filter: FormationFilter | None = None
        #: the alternatives' copies; None: the mirror image of :attr:`filter` in the own orbit plane
        self.alts: list[FormationFilter | None] = []
        self.t_target_gps_s = -math.inf
        self.filters_changed = True  # since the copies were taken: take them again
        self.t_published_gps_s = -math.inf  # epoch of the last estimate published from it

    def aim(self, hyp: PartnerHypotheses, t_target_gps_s: float) -> None:
        """Head for *t_target_gps_s*, from fresh copies of *hyp*'s filters if they have
        changed or the target is behind the cursor (*hyp*'s filter initialised)."""
        c = self.filter
        if c is None or self.filters_changed or t_target_gps_s < admission.epoch(c) - 1e-6:
            f = hyp.filter
            self.filter = copy.deepcopy(f)
            self.alts = [
                None if same_orbit(reflected(f), h.filter, MIRROR_D2) else copy.deepcopy(h.filter) for h in hyp.alts
            ]
            self.filters_changed = False
        self.t_target_gps_s = t_target_gps_s

    def take_new(self) -> tuple[FormationFilter, list[FormationFilter]] | None:
        """(the cursor's filter, its alternatives at the same time) if it has moved on since
        the last call that returned them, else None (called after :meth:`aim`)."""
        c = self.filter
        assert c is not None  # aimed
        if admission.epoch(c) <= self.t_published_gps_s:
            return None  # no progress: nothing new to publish
        self.t_published_gps_s = admission.epoch(c)
        alts = []
        for a in self.alts:
            if a is None:
                a = reflected(c)
            elif a.t_gps_s != c.t_gps_s:
                a.predict_to(admission.epoch(c))
            alts.append(a)
        return c, alts


def advance(cursors: list[NowCursor], budget: admission.Budget) -> None:
    """Advance every filter of *cursors* toward its target, one chunk each per round,
    until all are there or *budget* is spent (each moves at least one chunk)."""
    n_round = 0
    while True:
        moving = [
            (c, cur.t_target_gps_s)
            for cur in cursors
            for c in [cur.filter] + cur.alts
            if c is not None and admission.epoch(c) < cur.t_target_gps_s - 1e-6
        ]
        if not moving:
            return
        for c, tt in moving:
            if n_round and budget.spent():
                return
            c.predict_to(min(tt, admission.epoch(c) + PROPAGATION_CHUNK_S))
        n_round += 1
