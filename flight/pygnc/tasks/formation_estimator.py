"""Task ``formation_estimator``: :class:`pygnc.processors.formation.FormationProcessor` on
channel ``formation`` - every partner, or with ``Config.formation_split`` the first, third ...
partner heard (``formation_estimator_2`` has the others)."""

from ..processors.formation import FormationProcessor
from .estimator import EstimatorTask, estimator_task
from .table import TASKS_BY_NAME


def formation_task(k: int, channel: str) -> type[EstimatorTask]:
    """The task class of formation part *k* (of two when ``formation_estimator_2`` runs:
    ``Config.formation_split`` and a second core; else of one) publishing on *channel*."""
    base = estimator_task(FormationProcessor, channel)

    def make_processor(self: EstimatorTask) -> FormationProcessor:
        return FormationProcessor(
            self.config, part=(k, 2 if TASKS_BY_NAME["formation_estimator_2"].enabled(self.config) else 1)
        )

    return type(base.__name__, (base,), {"make_processor": make_processor})


TASK_CLASS = formation_task(0, "formation")
