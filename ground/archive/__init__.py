"""What came down, kept and passed on: ``python -m ground archive`` (:mod:`ground.archive.cli`:
into SQLite, :mod:`ground.archive.store`; each kind of source file read by
:mod:`ground.archive.sources`), ``python -m ground export`` (:mod:`ground.archive.export`:
out as CSV) and ``python -m ground upload`` (:mod:`ground.archive.upload`: on to a server).
"""
