"""Time outliers in a time-ordered sequence of spacecraft stamps (pure numpy).

The host records sense.bin and the range files in time order, so a stamp that jumps away
from its neighbours and straight back is a corrupt stamp (a flipped bit), not a new "now".
The rule, for stamps ``t`` in recording order:

* the **typical step** is the median of the positive steps ``t[i+1] - t[i]``;
* a **jump** is a step larger in magnitude than ``J = max(min_jump_s, JUMP_FACTOR x typical
  step)``;
* an **island** is a run of at most ``max_run`` stamps entered by a jump and left by a jump
  where the stamps just before and just after it agree (differ by at most ``J``): its stamps
  are outliers.  At either end of the sequence there is only one neighbour to return to: a
  single stamp separated from the rest by a jump is an outlier when the next
  ``max_run`` steps on the other side hold no jump (the rest of the data hangs together).

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
    # Ends: one stamp alone before (after) a jump, the next max_run steps quiet.
    if is_big[0] and not is_big[1:1 + max_run].any():
        mask[0] = True
    if is_big[-1] and not is_big[max(0, n - 2 - max_run):n - 2].any():
        mask[-1] = True
    # Islands: entered by jump k_in, left by jump k_out (k_out - k_in <= max_run stamps),
    # the neighbours t[k_in] and t[k_out + 1] agreeing.
    steps = big.tolist()
    i = 0
    while i < len(steps):
        k_in = steps[i]
        for j in range(i + 1, len(steps)):
            k_out = steps[j]
            if k_out - k_in > max_run:
                break
            if abs(t[k_out + 1] - t[k_in]) <= jump:
                mask[k_in + 1:k_out + 1] = True
                i = j  # k_out may not enter another island
                break
        i += 1
    out[finite[mask]] = True
    return out
