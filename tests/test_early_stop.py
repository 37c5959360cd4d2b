"""The early stop's pieces (pygnc.early_stop, pygnc.signals.AbandonImportsOnStop): which
starts it may end, and imports given up at the next module once a stop has come.  Through
the real process tree: tests/test_start_tree.py."""

from __future__ import annotations

import os
import signal
import sys
from types import SimpleNamespace

import pytest

from pygnc import early_stop, run_lock
from pygnc.formats import status as S
from pygnc.signals import AbandonImportsOnStop, ImportsAbandoned


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("PYGNC_HOME", str(h))
    monkeypatch.delenv("PYGNC_CONFIG", raising=False)
    return h


def test_a_plain_start_may_be_ended_early(home):
    start = early_stop.plan(["5", "1700000000"])
    assert start is not None and start.paths.home == home and start.timeout_min == 5.0


@pytest.mark.parametrize(
    "argv", [[], ["--help"], ["--check-config", "x.toml"], ["0", "1"], ["5", "nan"], ["5", "1", "2"]]
)
def test_anything_but_a_valid_start_goes_the_whole_way(home, argv):
    assert early_stop.plan(argv) is None  # (main() then says what is wrong, or does it)


def test_a_part_file_anywhere_in_the_batch_area_keeps_the_full_stop(home):
    d = home / "pygnc_batches" / "spare" / "deeper"
    d.mkdir(parents=True)
    (d / "batch_00000001.bin").write_bytes(b"x")
    assert early_stop.plan(["5", "1"]) is not None
    (d / "batch_00000002.bin.part").write_bytes(b"x")
    assert early_stop.plan(["5", "1"]) is None  # the full stop recovers it


def test_a_configuration_that_may_be_refused_keeps_the_full_start(home, monkeypatch):
    """Review of issue 48 item 14: with a bad uplink an early stop replaced a status that said
    `config_rejected` with one that did not; only the full start judges a configuration."""
    assert early_stop.plan(["5", "1"]) is not None  # the defaults
    (home / "pygnc_config.toml").write_text("spacecraft_id = 74\n")
    assert early_stop.plan(["5", "1"]) is None  # never accepted yet
    (home / "pygnc_config.accepted.toml").write_text("spacecraft_id = 74\n")
    assert early_stop.plan(["5", "1"]) is not None  # the uplink a run accepted, byte for byte
    (home / "pygnc_config.toml").write_text("no_such_key = 1\n")
    assert early_stop.plan(["5", "1"]) is None  # a new uplink
    (home / "pygnc_config.toml").unlink()
    os.mkfifo(home / "pygnc_config.toml")
    assert early_stop.plan(["5", "1"]) is None  # (never opened: not a regular file)
    (home / "pygnc_config.toml").unlink()
    monkeypatch.setenv("PYGNC_CONFIG", str(home / "pygnc_config.accepted.toml"))
    assert early_stop.plan(["5", "1"]) is None


def test_a_batch_area_too_large_to_look_through_keeps_the_full_stop(home, monkeypatch):
    d = home / "pygnc_batches"
    d.mkdir()
    for i in range(6):
        (d / f"batch_{i:08d}.bin").write_bytes(b"")
    monkeypatch.setattr(early_stop, "MAX_BATCH_ENTRIES", 5)
    assert early_stop.plan(["5", "1"]) is None


def test_a_home_not_made_yet_or_not_a_directory_goes_the_whole_way(tmp_path, monkeypatch):
    monkeypatch.setenv("PYGNC_HOME", str(tmp_path / "missing"))
    assert early_stop.plan(["5", "1"]) is None
    (tmp_path / "file").write_bytes(b"")
    monkeypatch.setenv("PYGNC_HOME", str(tmp_path / "file"))
    assert early_stop.plan(["5", "1"]) is None


def _module(tmp_path, name: str, body: str = "") -> None:
    (tmp_path / f"{name}.py").write_text(body)


def test_imports_are_given_up_at_the_next_module_once_a_stop_has_come(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    _module(tmp_path, "es_first", "X = 1\n")
    _module(tmp_path, "es_outer", "import es_first\nimport es_inner\nY = 2\n")
    _module(tmp_path, "es_inner", "")
    signals = SimpleNamespace(received=None)
    finders = list(sys.meta_path)
    with AbandonImportsOnStop(signals):  # type: ignore[arg-type]  # (only .received is read)
        import es_first  # noqa: F401 - no stop yet: imported as usual

        signals.received = 2
        with pytest.raises(ImportsAbandoned):
            import es_outer  # noqa: F401
    assert sys.meta_path == finders  # the finder is gone with the block
    assert "es_first" in sys.modules and "es_outer" not in sys.modules and "es_inner" not in sys.modules
    import es_outer  # noqa: F811 - and later imports are ordinary again

    assert es_outer.Y == 2


def _stopped(signum: int = signal.SIGINT) -> SimpleNamespace:
    return SimpleNamespace(received=signum, name=signal.Signals(signum).name)


def test_the_early_stop_replaces_the_status_with_a_final_one_of_its_start(home, capsys):
    (home / "pygnc_status.bin").write_bytes(S.encode_status({"run": 9, "flags": S.FLAG_ORBIT_VALID}))
    start = early_stop.plan(["5", "1700000000"])
    assert start is not None
    rc = early_stop.stop_before_start(start, _stopped(signal.SIGHUP), 0.0, "main.py")  # type: ignore[arg-type]
    assert rc == 0
    assert capsys.readouterr().err == "main.py: stopped by SIGHUP while starting: nothing was started\n"
    st = S.decode_status((home / "pygnc_status.bin").read_bytes())
    assert st["run"] == 0 and st["flags"] == S.FLAG_STOPPING and st["t_sc_s"] >= 1700000000
    assert (home / "pygnc_info.txt").read_bytes().startswith(b"pygnc r0 ")
    again = run_lock.acquire(home)  # (the early stop's lock is released)
    assert again.fd is not None
    again.release()


def test_the_early_stop_of_a_second_start_touches_nothing(home, capsys):
    before = S.encode_status({"run": 9, "flags": S.FLAG_ORBIT_VALID})
    (home / "pygnc_status.bin").write_bytes(before)
    start = early_stop.plan(["5", "1700000000"])
    assert start is not None
    held = run_lock.acquire(home)
    try:
        assert early_stop.stop_before_start(start, _stopped(), 0.0, "main.py") == 3  # type: ignore[arg-type]
    finally:
        held.release()
    assert "another pygnc is running" in capsys.readouterr().err
    assert (home / "pygnc_status.bin").read_bytes() == before and not (home / "pygnc_info.txt").exists()


def test_an_early_stop_that_cannot_write_says_so_and_exits_1(home, capsys, monkeypatch):
    start = early_stop.plan(["5", "1700000000"])
    assert start is not None

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(early_stop, "write_status_pair", full)
    assert early_stop.stop_before_start(start, _stopped(), 0.0, "main.py") == 1  # type: ignore[arg-type]
    assert "cannot write the final status" in capsys.readouterr().err
