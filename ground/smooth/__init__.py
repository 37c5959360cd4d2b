"""The formation smoother: ``python -m ground smooth`` (see :mod:`ground.smooth.cli`).

Every spacecraft's GPS fixes and every range between them in one batch estimate: the best
relative orbits there are on real data, and the reference that judges what each spacecraft
estimated on board.  Modules: :mod:`~ground.smooth.core` (the joint state, its filter and
smoother: pure), :mod:`~ground.smooth.bound` (the information bound of the same data),
:mod:`~ground.smooth.evaluate` (against a simulator's truth), :mod:`~ground.smooth.inputs`
(host files and downlinks), :mod:`~ground.smooth.products` (the CSV tables, qualities and
comparisons), :mod:`~ground.smooth.report` (report.md).
"""

from .cli import add_arguments, run  # noqa: F401
