"""Log directories: numbered runs, pruning to a size bound, append-only text logs."""

import logging

from pygnc.logs import create_run_dir, list_runs, setup_task_logging, sync_logs


def test_runs_are_numbered_and_pruned(tmp_path):
    root = tmp_path / "pygnc_logs"
    for i in range(5):
        n, p, _ = create_run_dir(root, total_bytes_bound=10_000, reserve_bytes=1_000)
        assert n == i + 1
        (p / "bus.log").write_bytes(b"x" * 3_000)
    runs = list_runs(root)
    total = sum((p / "bus.log").stat().st_size for _, p in runs)
    assert total + 1_000 <= 10_000 + 3_000  # only the newest run may overshoot its budget
    assert runs[-1][0] == 5 and runs[0][0] > 1  # oldest pruned first
    (root / "not_a_run").mkdir()
    n, _, _ = create_run_dir(root, 10_000, 1_000)
    assert n == 6 and (root / "not_a_run").exists()  # foreign files never deleted


def test_text_log_has_spacecraft_time(tmp_path):
    log = setup_task_logging(tmp_path, "ingest", lambda: 1234.5)
    log.info("hello")
    sync_logs()
    text = (tmp_path / "ingest.log").read_text()
    assert "sc=1234.5 ingest INFO hello" in text
    logging.getLogger().handlers.clear()
