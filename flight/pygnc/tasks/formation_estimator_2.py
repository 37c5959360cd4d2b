"""Task ``formation_estimator_2`` (``Config.formation_split``): the second, fourth ... partner
heard, on channel ``formation_2`` (see :mod:`pygnc.tasks.formation_estimator`)."""

from .formation_estimator import formation_task

TASK_CLASS = formation_task(1, "formation_2")
