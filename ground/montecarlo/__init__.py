"""Monte Carlo campaigns on Dask: ``python -m ground montecarlo`` (see :mod:`ground.montecarlo.cli`).

Modules: :mod:`~ground.montecarlo.campaign` (the campaign file, its dispersions and the
spec of each run: pure), :mod:`~ground.montecarlo.worker` (one run, as a worker executes
it: simulate, replay every estimator configuration, summarise), :mod:`~ground.montecarlo.results`
(run records and the results table), :mod:`~ground.montecarlo.report` (distributions,
Monte Carlo consistency, worst runs, plots).
"""

from .cli import add_arguments, run  # noqa: F401
