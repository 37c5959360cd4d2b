"""What one measurement update did to a filter: :class:`Update`, the result every filter's
update returns (the orbit EKF's GPS fix, the attitude MEKF's magnetometer and sun sensors,
the formation filter's fixes and ranges), so that a caller reads one shape of answer - the
decision, the normalised innovation squared, the innovation and its covariance - instead
of a bool here, a count there and a word elsewhere."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: The measurement changed the state.
USED = "used"
#: Refused: outside its chi-square gate, or an update that would not have been finite.
REJECTED = "rejected"
#: Not applied and not refused: nothing in it to use (the sun sensors in eclipse, or every
#: face dark and predicted dark).
SKIPPED = "skipped"
#: A range while the ranges are being acquired: held until a second one agrees with it.
HELD = "held"
#: The orbit filter re-initialised at the fix after too many rejections in a row.
REINIT = "reinit"
#: The filter's first state, taken from the measurement.
STARTED = "started"


@dataclass(frozen=True)
class Update:
    """One update's outcome.  ``decision``: one of the words above; ``nis``: the normalised
    innovation squared (NaN when no innovation was formed); ``innovation`` (m,) in the
    measurement's units and its covariance ``innovation_cov`` (m, m), when one was formed;
    ``n_used``: the measurement components that went into the update (the sun sensor's
    faces; the full measurement's size otherwise, 0 when not used)."""

    decision: str
    nis: float = math.nan
    innovation: np.ndarray | None = None
    innovation_cov: np.ndarray | None = None
    n_used: int = 0

    @property
    def used(self) -> bool:
        """True when the measurement changed the state."""
        return self.decision == USED
