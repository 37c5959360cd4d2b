"""Task ``formation_estimator``: :class:`pygnc.processors.formation.FormationProcessor` on channel ``formation``."""

from ..processors.formation import FormationProcessor
from .estimator import estimator_task

TASK_CLASS = estimator_task(FormationProcessor, "formation")
