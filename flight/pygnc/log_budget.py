"""Log the first few failures of a kind, then only count them: a fault that repeats with
every message must not fill the log (its size is bounded; the counters say how many).

One rule for every task and store: the caller counts (its counter is what it reports), and
:func:`log_failure` logs the first :data:`MAX_LOGGED` with their tracebacks (or as error
lines), the last of them saying that further ones are only counted.
"""

from __future__ import annotations

import logging

#: Failures of one kind logged before the rest are only counted.
MAX_LOGGED = 5


def log_failure(
    log: logging.Logger | None,
    n: int,
    what: str,
    *args: object,
    limit: int = MAX_LOGGED,
    traceback: bool = True,
    word: str = "failures",
) -> None:
    """Log the *n*-th failure (1 for the first; counted by the caller) as *what* % *args*,
    with the exception being handled (*traceback*) or as an error line, while *n* <=
    *limit*; the *limit*-th adds "(further *word* only counted)".  Nothing after, nor
    without a *log*."""
    if log is None or n > limit:
        return
    suffix = f" (further {word} only counted)" if n == limit else ""
    (log.exception if traceback else log.error)(what + "%s", *args, suffix)
