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

What this keeps, and why: a gap in the data or a genuine clock step (the clock set by GPS,
a reboot back to year 2000, a correction backwards) is a jump that is **not** followed by a
jump back, so every stamp after it is kept - they agree with each other.  Steps shorter
than ``J`` are never judged (a stamp moved by less than ``JUMP_FACTOR`` typical steps only
changes the order of a few samples).  More than ``max_run`` stamps away from the data
together are kept too: at the end of a file they may be a new pass after a clock step.
A stamp in a gap that lands between its neighbours is indistinguishable from data and is
kept (it is also harmless: nothing moves beyond the data).
"""

from __future__ import annotations

import numpy as np

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


def time_outliers(t, max_run: int, min_jump_s: float) -> np.ndarray:
    """Boolean mask of the outlier stamps of *t* (1-D, recording order; see the module).
    Non-finite stamps are left out of the judgement and never marked."""
    t_all = np.asarray(t, dtype=float).reshape(-1)
    out = np.zeros(t_all.size, dtype=bool)
    finite = np.flatnonzero(np.isfinite(t_all))
    t = t_all[finite]
    n = t.size
    if n < 3 or max_run < 1:
        return out
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
        anchored = (np.abs(t[k - 1] - t[k - 2]) <= jump) & (np.abs(t[k + 1] - t[k + 2]) <= jump)
        lone = is_big[k - 1] & is_big[k] & anchored & ((t[k] < lo - 2 * jump) | (t[k] > hi + 2 * jump))
        mask[k[lone]] = True
    out[finite[mask]] = True
    return out
