"""The products the ground commands share: ``replay`` writes all of them; ``decode``,
``smooth``, ``serve``, ``archive`` and ``montecarlo`` use some.  One module per concern:

* :mod:`.tables`    - estimate messages -> column tables -> CSV (every table's columns,
  declared once: :data:`.tables.COLUMNS`);
* :mod:`.residuals` - GPS-fix and range residuals of the estimates;
* :mod:`.oem`       - CCSDS Orbit Ephemeris Message (KVN) writer and reader;
* :mod:`.truth`     - truth.npz interpolated to estimate times, errors and NEES;
* :mod:`.summary`   - summary.json statistics (RMS / max errors after a settle time, NEES);
* :mod:`.plots`     - PNG plots (errors with ±3σ, or residuals when there is no truth).

Everything here works on plain numpy arrays; nothing runs an estimator.
"""
