"""Truth-known scenarios: ``python -m ground simulate`` (:mod:`ground.simulate.cli`).

Modules: :mod:`~ground.simulate.simulator` (the pipeline: truth orbits, attitude, sensors,
files), :mod:`~ground.simulate.scenario` (settings and the truth file's layout),
:mod:`~ground.simulate.orbits`, :mod:`~ground.simulate.attitude`,
:mod:`~ground.simulate.environment`, :mod:`~ground.simulate.sensors` (the models),
:mod:`~ground.simulate.published_tles` (the TLEs a catalogue would publish),
:mod:`~ground.simulate.split` (a scenario cut into the host's files).
"""
