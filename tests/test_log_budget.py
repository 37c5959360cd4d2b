"""pygnc.log_budget: the first few failures of a kind logged (with their tracebacks, or as
error lines), the last of them saying the rest are only counted; nothing after."""

import logging

from pygnc.log_budget import MAX_LOGGED, log_failure


def _log(caplog, name="budget"):
    caplog.set_level(logging.ERROR, logger=name)
    return logging.getLogger(name)


def test_the_first_few_are_logged_with_tracebacks_then_only_counted(caplog):
    log = _log(caplog)
    for n in range(1, 3 * MAX_LOGGED):
        try:
            raise OSError("disk")
        except OSError:
            log_failure(log, n, "writing %s failed", "x")
    recs = caplog.records
    assert len(recs) == MAX_LOGGED and all(r.exc_info and r.exc_info[0] is OSError for r in recs)
    assert [r.getMessage() for r in recs[:-1]] == ["writing x failed"] * (MAX_LOGGED - 1)
    assert recs[-1].getMessage() == "writing x failed (further failures only counted)"


def test_error_lines_their_word_their_limit_and_no_log(caplog):
    log = _log(caplog, "budget2")
    for n in (1, 2, 3):
        log_failure(log, n, "batch file %s failed: %s", "open", "EIO", traceback=False, word="errors", limit=2)
    assert [(r.levelno, r.exc_info, r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, None, "batch file open failed: EIO"),
        (logging.ERROR, None, "batch file open failed: EIO (further errors only counted)"),
    ]
    log_failure(None, 1, "nothing to log to")  # a recorder without a log: counted only
