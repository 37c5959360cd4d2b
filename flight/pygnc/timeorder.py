"""Time outliers in a time-ordered sequence of spacecraft stamps (pure numpy).

The host records sense.bin and the range files in time order, so a stamp that jumps away
from its neighbours and straight back is a corrupt stamp (a flipped bit), not a new "now".
The rule, for stamps ``t`` in recording order:

* the **typical step** is the median of the positive steps ``t[i+1] - t[i]``;
* a **jump** is a step larger in magnitude than ``J = max(min_jump_s, JUMP_FACTOR x typical
  step)``;
* an **island** is a run of at most ``max_run`` stamps entered by a jump and left by a jump
  where the stamps just before and just after it agree (differ by at most ``J``), and each
  of those agrees with its own other neighbour: its stamps are outliers.  Beside a gap the neighbours disagree; a
  single stamp is still an outlier
  there when it lies more than ``J`` outside the span of its two neighbours and each of
  them agrees with its own other neighbour (it left the data's order on both sides; one
  that falls inside the gap is kept).  At either end of the sequence there is only one neighbour to return to: a
  single stamp is an outlier when it is further than ``J`` from each of the next
  ``max_run + 1`` stamps and those hang together (no jump between them).

The **neighbourhood rule** (*island_stamps*: what ingest uses) judges, where it can, instead
of the island and gap rules above: each of ``2 x island_stamps`` neighbours per side is
carried to the stamp's position at the data's rate, and the median of each side is what that
side says; a stamp further than ``J`` from both, where the two sides agree, is an outlier
(islands of up to *island_stamps* stamps, and stamps amid dense corruption: a median holds
while fewer than half its inputs are off); beside a gap (sides that disagree) one more than
``2 J`` outside what they say is one too.  Only stamps within *island_stamps* of a jump are
judged, and only those with at least ``max_run + 1`` neighbours on each side (near the ends
the rules above stay).

What this keeps, and why: a gap in the data or a genuine clock step (the clock set by GPS,
a reboot back to year 2000, a correction backwards) is a jump that is **not** followed by a
jump back, so every stamp after it is kept - they agree with each other.  Steps shorter
than ``J`` are never judged (a stamp moved by less than ``JUMP_FACTOR`` typical steps only
changes the order of a few samples).  More than ``max_run`` stamps away from the data
together at an end are kept too: they may be a new pass after a clock step (ingest asks the
clock map about them).
A stamp in a gap that lands between its neighbours is indistinguishable from data and is
kept (it is also harmless: nothing moves beyond the data).
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
from numpy.typing import ArrayLike

#: The jump threshold is at least this many typical steps (it must exceed the span of an
#: island's neighbours, ``max_run + 1`` steps).
JUMP_FACTOR = 10.0


def jump_threshold_s(t: np.ndarray, min_jump_s: float) -> float:
    """``J``: the larger of *min_jump_s* and JUMP_FACTOR times the median positive step."""
    t = np.asarray(t, dtype=float)
    d = np.diff(t[np.isfinite(t)])
    d = d[d > 0]
    typical = float(np.median(d)) if d.size else 0.0
    return max(float(min_jump_s), JUMP_FACTOR * typical)


def time_outliers(t: ArrayLike, max_run: int, min_jump_s: float, island_stamps: int | None = None) -> np.ndarray:
    """Boolean mask of the outlier stamps of *t* (1-D, recording order; see the module).
    Non-finite stamps are left out of the judgement and never marked.  *island_stamps*
    (more than *max_run*): the neighbourhood rule finds islands of up to that many stamps
    away from the data and back, and stamps amid dense corruption."""
    gen = iter_time_outliers(t, max_run, min_jump_s, island_stamps)
    while True:
        try:
            next(gen)
        except StopIteration as done:
            return done.value


#: Jumps looked at between two yields of :func:`iter_time_outliers`.
STEPS_PER_YIELD = 20_000


def iter_time_outliers(
    t: ArrayLike, max_run: int, min_jump_s: float, island_stamps: int | None = None
) -> Generator[None, None, np.ndarray]:
    """:func:`time_outliers` as a generator: it yields every few thousand stamps judged (a
    large, much-corrupted file is judged in slices; ingest answers health pings between
    them) and returns the mask."""
    t_all = np.asarray(t, dtype=float).reshape(-1)
    out = np.zeros(t_all.size, dtype=bool)
    finite = np.flatnonzero(np.isfinite(t_all))
    t = t_all[finite]
    n = t.size
    if n < 3 or max_run < 1:
        return out
        yield  # (a generator)
    jump = jump_threshold_s(t, min_jump_s)
    big = np.flatnonzero(np.abs(np.diff(t)) > jump)  # step k: between stamps k and k+1
    if big.size == 0:
        return out
    mask = np.zeros(n, dtype=bool)
    is_big = np.zeros(n - 1, dtype=bool)
    is_big[big] = True
    # Ends: one stamp alone before (after) a jump - further than J from each of the next
    # max_run + 1 stamps, whose steps are quiet.
    m = min(max_run + 1, n - 1)
    if is_big[0] and not is_big[1:m].any() and (np.abs(t[1 : m + 1] - t[0]) > jump).all():
        mask[0] = True
    if is_big[-1] and not is_big[n - 1 - m : n - 2].any() and (np.abs(t[n - 1 - m : n - 1] - t[-1]) > jump).all():
        mask[-1] = True

    def anchored(k: int, side: int) -> bool:
        """Stamp k agrees with its neighbour on *side* (none there: no evidence against)."""
        return not 0 <= k + side < n or abs(t[k + side] - t[k]) <= jump

    # Islands: entered by jump k_in, left by jump k_out (k_out - k_in <= max_run stamps),
    # the neighbours t[k_in] and t[k_out + 1] agreeing, each with its own other neighbour too
    # (an outlier is never taken for a neighbour).
    steps = big.tolist()
    i = 0
    while i < len(steps):
        if i % STEPS_PER_YIELD == STEPS_PER_YIELD - 1:
            yield
        k_in = steps[i]
        for j in range(i + 1, len(steps)):
            k_out = steps[j]
            if k_out - k_in > max_run:
                break
            if abs(t[k_out + 1] - t[k_in]) <= jump and anchored(k_in, -1) and anchored(k_out + 1, 1):
                mask[k_in + 1 : k_out + 1] = True
                i = j  # k_out may not enter another island
                break
        i += 1
    # Beside a gap (neighbours that disagree): a single stamp more than 2 J outside the span
    # of its two neighbours, each of which agrees with its own other neighbour (the margin:
    # a stamp moved by about J next to a gap could make its neighbour look like the odd one).
    k = np.arange(2, n - 2)
    if k.size:
        lo = np.minimum(t[k - 1], t[k + 1])
        hi = np.maximum(t[k - 1], t[k + 1])
        agree = (np.abs(t[k - 1] - t[k - 2]) <= jump) & (np.abs(t[k + 1] - t[k + 2]) <= jump)
        lone = is_big[k - 1] & is_big[k] & agree & ((t[k] < lo - 2 * jump) | (t[k] > hi + 2 * jump))
        mask[k[lone]] = True
    if island_stamps is not None and island_stamps > max_run:
        # Where the neighbourhood rule can judge, it alone does (the rules above take an
        # outlier's neighbour for the odd one out among dense flips); the ends keep theirs.
        window, judged = yield from _window_outliers(t, island_stamps, max_run + 1, jump)
        mask = (mask & ~judged) | window
    out[finite[mask]] = True
    return out


#: Stamps judged at once by the neighbourhood rule (bounds its memory: 2 x this x the
#: window's width floats).
WINDOW_CHUNK = 4096


def _window_outliers(
    t: np.ndarray, island_stamps: int, min_side: int, jump: float
) -> Generator[None, None, tuple[np.ndarray, np.ndarray]]:
    """The neighbourhood rule (see the module): stamps far from what their neighbours say on
    both sides, where the two sides agree - or more than 2 J outside what they say.  What
    the neighbours say at position i is the median of their stamps carried to i at the
    data's rate; a median of ``2 x island_stamps`` neighbours per side holds while fewer
    than half of them are outliers, so islands of up to *island_stamps* stamps (and dense
    flips) are found.  Only stamps within *island_stamps* of a jump can be outliers, and only
    they are judged; those with fewer than *min_side* neighbours on a side (the ends) are
    not.  Returns (outliers, judged)."""
    n = t.size
    out = np.zeros(n, dtype=bool)
    judged_all = np.zeros(n, dtype=bool)
    w = 2 * island_stamps
    big = np.flatnonzero(np.abs(np.diff(t)) > jump)
    near = np.zeros(n + 1, dtype=np.int64)  # stamps within island_stamps of a jump: a running count
    np.add.at(near, np.maximum(big - island_stamps + 1, 0), 1)
    np.add.at(near, np.minimum(big + island_stamps + 1, n), -1)
    cand = np.flatnonzero(np.cumsum(near[:n]) > 0)
    cand = cand[(cand >= min_side) & (cand < n - min_side)]
    if cand.size == 0:
        return out, judged_all
        yield  # (a generator)
    # The data's rate: over min_side steps (a whole record's for sense.bin, so its repeated
    # stamps average out), the median - robust while fewer than half of the stamps are off.
    base = min(min_side, n - 1)
    rate = float(np.median((t[base:] - t[:-base]) / base))
    tp = np.concatenate((np.full(w, np.nan), t, np.full(w, np.nan)))
    offs = np.arange(1, w + 1)
    for lo in range(0, cand.size, WINDOW_CHUNK):
        c = cand[lo : lo + WINDOW_CHUNK]
        i = c[:, None] + w
        sides = []
        for nb in (tp[i - offs] + offs * rate, tp[i + offs] - offs * rate):  # each neighbour carried to i
            full = np.isfinite(nb).all(axis=1)
            m = np.empty(c.size)
            m[full] = np.median(nb[full], axis=1)
            if not full.all():
                m[~full] = np.nanmedian(nb[~full], axis=1)
            sides.append(m)
        m_left, m_right = sides
        tc = t[c]
        island = (np.abs(tc - m_left) > jump) & (np.abs(tc - m_right) > jump) & (np.abs(m_left - m_right) <= jump)
        beside_gap = (tc < np.minimum(m_left, m_right) - 2 * jump) | (tc > np.maximum(m_left, m_right) + 2 * jump)
        out[c] = island | beside_gap
        judged_all[c] = True
        yield
    return out, judged_all
