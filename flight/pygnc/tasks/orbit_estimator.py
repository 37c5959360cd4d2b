"""Task ``orbit_estimator``: :class:`pygnc.processors.orbit.OrbitProcessor` on channel ``orbit``."""

from ..processors.orbit import OrbitProcessor
from .estimator import estimator_task

TASK_CLASS = estimator_task(OrbitProcessor, "orbit")
