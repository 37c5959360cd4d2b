"""Decoding what pygnc reads and writes: ``python -m ground decode`` (:mod:`ground.decode.cli`).

Modules: :mod:`~ground.decode.cli` (sense.bin, range files, status, logs and bus logs to
text and CSV), :mod:`~ground.decode.batch_files` (the downlinked batch files of one or more
spacecraft read into tables, with their clocks and residuals; also read by ``archive``,
``smooth``, ``serve`` and ``uplink``).
"""
