"""Task ``attitude_estimator``: :class:`pygnc.processors.attitude.AttitudeProcessor` on channel ``attitude``."""

from ..processors.attitude import AttitudeProcessor
from .estimator import estimator_task

TASK_CLASS = estimator_task(AttitudeProcessor, "attitude")
