"""What ``python -m ground replay`` writes, one module per concern.

* :mod:`.tables`  - estimate messages -> column tables -> CSV (orbit, attitude, formation);
* :mod:`.oem`     - CCSDS Orbit Ephemeris Message (KVN) writer and reader;
* :mod:`.truth`   - truth.npz interpolated to estimate times, errors and NEES;
* :mod:`.summary` - summary.json statistics (RMS / max errors after a settle time, NEES);
* :mod:`.plots`   - PNG plots (errors with ±3σ, or residuals when there is no truth).

Everything here works on plain numpy arrays; nothing runs an estimator.
"""
