"""A formation peer's estimates between falling due and going out.

An estimate is due for every initialised peer at each sensor sample, but stepping the
filter to each would triple its steps (and the range-only alternatives').  So it waits
(:attr:`PeerOutputs.waiting`) until the filter's step to the next measurement passes its
time, is interpolated inside that step (:meth:`FormationFilter.tap`) with the range-only
alternatives brought to the same time and the side weights of that time
(:attr:`PeerOutputs.ready`), and goes out a few per handler call (:data:`READY_PER_CALL`),
in time order.  One that has waited :data:`OUTPUT_DEFER_MAX_S` of stream, or is still
waiting when the filter is about to change, is predicted to instead (the owner predicts,
:meth:`PeerOutputs.flush`).

Decimation during a batch (:class:`pygnc.processors.admission.BatchDecimation`): an
estimate the batch writer would not record is left out; the newest one left out is kept
(:attr:`PeerOutputs.held`) and goes out at ``batch_end`` or at stop.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from typing import NamedTuple

from ..estimation.formation_filter import FormationFilter
from ..estimation.range_only import PartnerHypotheses
from . import admission

#: An estimate waits for the filter's propagation to the next measurement to pass it until
#: the processed stream is this much past it; then the filter is predicted to it [s].
OUTPUT_DEFER_MAX_S = 30.0
#: Interpolated estimates published per peer and handler call: the ~5 a measurement's step
#: passes go out over the next calls, so the call that steps the filters does not also
#: build every estimate (all are out by the batch's end).
READY_PER_CALL = 2


class Ready(NamedTuple):
    """An estimate ready to publish.  *main* and each of *alts*: (a shallow copy of the
    filter at the estimate's time - its counters as they were -, its entry for the estimate:
    :func:`taken_at`)."""

    t_sc_s: float
    main: tuple
    alts: list
    weights: tuple  # (weight of the filter, weights of the alternatives)
    acquisition: tuple | None  # acquisition(hyp) at the estimate's time
    lost_range_m: float | None  # hyp.lost_range_m at the estimate's time

    def estimates(self, with_alternatives: bool) -> list:
        """(state, covariance's reported block) of the filter and, if asked, of each
        alternative (the interpolation is done here, when the estimate goes out)."""
        f, e = self.main
        ests = [f.tap_estimate(e, f.t_gps_s, reported=True)]
        if with_alternatives:
            ests += [h.tap_estimate(eh, h.t_gps_s, reported=True) for h, eh in self.alts]
        return ests


class PeerOutputs:
    """One peer's deferred (:attr:`waiting`), :attr:`ready` and :attr:`held` estimates."""

    def __init__(self, peer_id: int, decimation: admission.BatchDecimation) -> None:
        self.peer_id = peer_id
        self.decimation = decimation  # shared by the processor's peers (keyed by peer id)
        #: due, waiting for the filter to pass their time: (t_gps_s, t_sc_s), ascending
        self.waiting: list[tuple[float, float]] = []
        self.ready: deque[Ready] = deque()
        #: the newest estimate left out by the decimation, published at batch_end or at stop
        self.held: Ready | None = None
        self.t_last_gps_s = -math.inf  # epoch of the last estimate taken (not propagated)
        self.n_stale = 0  # due again after being published (a replay)
        self.n_skipped = 0  # dropped: the filter could not reach them
        self.n_decimated = 0

    def t_reached(self, t_filter_gps_s: float) -> float:
        """The time the peer's estimates have reached: its last waiting one's, else its
        filter's (*t_filter_gps_s*)."""
        return self.waiting[-1][0] if self.waiting else t_filter_gps_s

    def overdue(self, t_gps_s: float) -> float | None:
        """With the stream released up to *t_gps_s*: the time up to which waiting
        estimates have waited too long, or None if none has."""
        limit = t_gps_s - OUTPUT_DEFER_MAX_S
        return limit if self.waiting and self.waiting[0][0] < limit else None

    # ------------------------------------------------------------------ due
    def defer(self, hyp: PartnerHypotheses, t_gps_s: float, t_sc_s: float) -> None:
        """An estimate due at *t_gps_s*, after the filter: tapped on every filter behind it."""
        hyp.filter.tap(t_gps_s)
        for h in hyp.alts:
            if admission.epoch(h.filter) < t_gps_s:
                h.filter.tap(t_gps_s)
        self.waiting.append((t_gps_s, t_sc_s))

    def take_passed(self, hyp: PartnerHypotheses) -> None:
        """Move the waiting estimates the filter has passed to :attr:`ready` (the
        alternatives first brought to the filter's time)."""
        if not self.waiting:
            return
        f = hyp.filter
        for h in hyp.alts:
            if admission.epoch(h.filter) < admission.epoch(f) - 1e-9:
                h.filter.predict_to(admission.epoch(f))
        w = hyp.weights()
        while self.waiting and self.waiting[0][0] <= admission.epoch(f) + 1e-6:
            t_o, t_sc = self.waiting.pop(0)
            g = taken_at(f, t_o)
            if g is None:  # cannot happen: every waiting estimate is tapped
                self.n_skipped += 1
                continue
            if t_o <= self.t_last_gps_s:
                self.n_stale += 1  # published already (a replay)
                continue
            self.t_last_gps_s = t_o
            self.ready.append(
                Ready(t_sc, g, [taken_at(h.filter, t_o) for h in hyp.alts], w, acquisition(hyp), hyp.lost_range_m)
            )

    def flush(self, hyp: PartnerHypotheses, t_until_gps_s: float) -> bool | None:
        """Predict the filter to each waiting estimate up to *t_until_gps_s* and take it:
        None when none was waiting, True when done, False when the filter's state became
        non-finite (the waiting estimates are dropped: the filter must re-initialise)."""
        f = hyp.filter
        done = None
        while self.waiting and self.waiting[0][0] <= t_until_gps_s:
            f.predict_to(self.waiting[0][0])
            done = True
            if not admission.finite(f.x, f.p):
                self.drop()
                return False
            self.take_passed(hyp)
        return done

    def drop(self) -> None:
        self.n_skipped += len(self.waiting)
        self.waiting.clear()

    # ------------------------------------------------------------------ out
    def take_ready(self, limit: int | None = None, batch_ended: bool = False, held: bool = False) -> list[Ready]:
        """Up to *limit* (all: None) of the ready estimates, oldest first, less those the
        decimation leaves out (the newest of them kept in :attr:`held`); *held*: the first
        is the held one, never left out again."""
        ready = self.ready
        n = len(ready) if limit is None else min(limit, len(ready))
        out = []
        for _ in range(n):
            item = ready.popleft()
            if not held and self.decimation.left_out(self.peer_id, item.t_sc_s, batch_ended):
                self.held = item
                self.n_decimated += 1
                continue
            self.held = None
            out.append(item)
        return out

    def take_held(self) -> list[Ready]:
        """The newest estimate left out, if any (at batch_end: everything after is newer)."""
        if self.held is None:
            return []
        self.ready.appendleft(self.held)
        self.held = None
        self.n_decimated -= 1  # published after all
        return self.take_ready(1, held=True)

    def publish_now(self, hyp: PartnerHypotheses, t_sc_s: float, batch_ended: bool) -> bool:
        """An estimate due at the filter's own time: True if it goes out now (built from the
        filter), False if it went out already (a replay) or is left out (then kept in
        :attr:`held`)."""
        t = admission.epoch(hyp.filter)
        if t <= self.t_last_gps_s:
            self.n_stale += 1  # published already (a replay)
            return False
        self.t_last_gps_s = t
        if self.decimation.left_out(self.peer_id, t_sc_s, batch_ended) and self._hold_now(hyp, t_sc_s):
            return False
        self.held = None
        return True

    def _hold_now(self, hyp: PartnerHypotheses, t_sc_s: float) -> bool:
        """Keep the left-out estimate at the filter's time as the newest held one (the
        alternatives brought to that time); False if an alternative is already past it
        (then it goes out after all)."""
        f = hyp.filter
        t = admission.epoch(f)
        w = hyp.weights()
        alts = [taken_at(g, t) for g in hyp.alternatives_at(t)]
        if any(a is None for a in alts):
            return False
        main = taken_at(f, t)
        assert main is not None  # f is at t
        self.held = Ready(t_sc_s, main, alts, w, acquisition(hyp), hyp.lost_range_m)
        self.n_decimated += 1
        return True


def acquisition(hyp: PartnerHypotheses) -> tuple | None:
    """(seconds of ranges in the open acquisition window, its length), or (0, 0) while a
    restart's prior is being carried to the data; None when neither."""
    w = hyp.window
    if w is not None:
        return w.span_s, w.window_s
    return (0.0, hyp.config.window_s) if hyp.carry is not None else None


def taken_at(f: FormationFilter, t_gps_s: float) -> tuple | None:
    """(a shallow copy of *f* at *t_gps_s*: its counters as they are now, the entry for its
    estimate at *t_gps_s*: the tapped one, taken from *f*, or a copy of its own state if it
    is at that time); None if it has neither."""
    e = f.tapped.pop(t_gps_s, None)
    if e is None:
        if abs(admission.epoch(f) - t_gps_s) > 1e-6:
            return None
        e = (f.x.copy(), f.p.copy())
    g = copy.copy(f)
    g.t_gps_s = t_gps_s
    return g, e
