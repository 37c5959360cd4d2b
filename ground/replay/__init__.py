"""The flight estimators on recorded or simulated inputs: ``python -m ground replay``
(:mod:`ground.replay.cli`).

Modules: :mod:`~ground.replay.in_process` (the processors fed in process),
:mod:`~ground.replay.pipeline` (the real process tree, read back from its bus log),
:mod:`~ground.replay.outputs` (the CSV, OEM, summary and plots written),
:mod:`~ground.replay.statistics` (against truth, or residuals),
:mod:`~ground.replay.smoothing`, :mod:`~ground.replay.orbit_filter`,
:mod:`~ground.replay.attitude_smoother` (``--smooth``: whole-span smoothers),
:mod:`~ground.replay.array_stream` (plain arrays as an ingest message stream).
"""
