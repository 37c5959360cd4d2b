"""A spacecraft's partner priors: ``python -m ground uplink`` (:mod:`ground.uplink.cli`).

Modules: :mod:`~ground.uplink.tle` (TLE sets, SGP4 states), :mod:`~ground.uplink.tle_covariance`
(a TLE's error model in radial / along-track / cross-track axes),
:mod:`~ground.uplink.orbit_records` (the orbit estimates of a partner's downlinked batch
files), :mod:`~ground.uplink.orbit_prediction` (an estimate carried to the uplink epoch,
with its covariance).
"""
