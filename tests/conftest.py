import sys
from pathlib import Path

import pytest

# Test helpers (flight_harness) live next to the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))

#: Real PY4 captures copied into the repository (provenance in tests/data/py4/README.md).
PY4_DATA = Path(__file__).resolve().parent / "data" / "py4"


def made_once(tmp_path_factory, name: str, make) -> Path:
    """A directory *name* made once per test run and shared by every pytest-xdist worker:
    the first to ask makes it (``make(directory)``) under a file lock; the others wait for
    the lock and find it made.  For fixtures that several modules - run by different
    workers - need, which each worker would otherwise compute again."""
    import fcntl
    import os
    import shutil

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    d = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # (bounded by the test's timeout)
        if not (d / ".made").exists():
            shutil.rmtree(d, ignore_errors=True)  # (a worker that failed half-way)
            d.mkdir()
            make(d)
            (d / ".made").touch()
    return d


@pytest.fixture(scope="session")
def single_sc_3h(tmp_path_factory):
    """The issue's one-spacecraft attitude scenario (seed 21, 3 h, two eclipses), simulated
    once per test run (:func:`made_once`) and written to disk: (ground.simulate.simulator.Scenario,
    directory).  The attitude core, orbit and attitude processor tests share it; the Scenario
    is read back from the files (settings, truth and the spacecraft's files; no timings)."""
    from attitude_support import issue_settings

    from ground.simulate import scenario as scn
    from ground.simulate import simulator as sim

    settings = issue_settings(seed=21, duration_s=3 * 3600.0)
    d = made_once(tmp_path_factory, "single_sc_3h", lambda d: sim.write_scenario(sim.simulate(settings), d))
    own = {"scenario.toml", "truth.npz", ".made", sim.TLE_NAME}
    files = {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}
    files = {rel: data for rel, data in files.items() if rel not in own}
    scenario = sim.Scenario(settings, scn.load_truth(d / "truth.npz"), {settings.spacecraft[0].name: files}, {})
    return scenario, d


#: Markers (registered in pyproject.toml; docs/testing.md): ``system`` - the test runs the
#: real flight process tree (main.py and its tasks in a pseudo-terminal, as the host does) or a
#: ground command that does; ``slow`` - a module whose fixtures simulate or replay hours, or a
#: single test of many seconds; ``browser`` - the test drives headless Chromium (it takes the
#: ``browser`` fixture).  ``-m "not slow and not system and not browser"`` is the fast suite.
SYSTEM = {
    "test_bad_inputs_tree.py",
    "test_bad_uplinks.py",
    "test_batch_tree.py",
    "test_disk_full.py",
    "test_flight_restarts.py",
    "test_flight_tree.py",
    "test_ground_host.py",
    "test_housekeeping_task.py",
    "test_imu_ingest.py",
    "test_package.py",
    "test_run_sample.py",
    "test_start_tree.py",
    "test_tty_stream.py",
    "test_zygote.py",
    "test_ground_cli.py::test_decode_shows_the_text_files_pygnc_writes",
    "test_ground_quality.py::test_formation_csv_of_the_downlink_carries_the_spacecrafts_judgement",
    "test_uplink.py",
}
SLOW = {
    "test_attitude_imu.py",
    "test_attitude_mekf.py",
    "test_attitude_processor.py",
    "test_formation_filter.py",
    "test_formation_processor.py",
    "test_ground_quality.py",
    "test_orbit_processor.py",
    "test_processor_fuzz.py",
    "test_smooth.py",
    "test_ground_batches.py::test_decode_a_pass_in_one_command",
    "test_ground_imu380.py::test_simdevice_prints_the_port_and_exits_cleanly",
    "test_igrf.py::test_random_leo_points_within_10_nt_of_ppigrf",
    "test_station.py::test_stalled_pages_are_dropped_while_the_source_is_idle",
    "test_station.py::test_the_browser_install_is_said_logged_and_can_be_refused",
    "test_montecarlo.py",
    "test_range_only.py",
    "test_range_only_geometry.py",
    "test_uplink.py",
    "test_docs.py::test_documented_commands_run_as_written",
    "test_simulate.py::test_the_bundled_sample_is_what_its_command_makes",
}


#: The longest modules, longest first (worker seconds in a 3-worker run on 2 cores, 2026-11:
#: 158, 120, 67, 66, 59, 59, 58, 51, 42, 37, 35): collected first, so that pytest-xdist
#: starts them first and the short ones fill in at the end, instead of a 2.5-minute module
#: starting last.  (--dist loadfile hands out modules in collection order only with
#: --no-loadscope-reorder, in pyproject.toml's addopts; by default it orders them by their
#: number of tests, which put most of these late.)
LONGEST_FIRST = [
    "test_flight_restarts.py",
    "test_montecarlo.py",
    "test_docs.py",
    "test_flight_tree.py",
    "test_uplink.py",
    "test_ground_host.py",
    "test_bad_inputs_tree.py",
    "test_range_only.py",
    "test_disk_full.py",
    "test_formation_filter.py",
    "test_ground_quality.py",
    "test_station.py",  # (77 s; last of these: a Chromium download, if any, has minutes to finish)
]


def _marked(item, names: set[str]) -> bool:
    module = item.path.name
    return module in names or f"{module}::{item.originalname}" in names


def pytest_configure(config):
    """One bytecode cache for the processes the tests start (the flight tree, ``python -m
    ground``, scripts): each would otherwise compile every module it imports from source when
    the environment says not to write bytecode (``PYTHONDONTWRITEBYTECODE``, as on this
    project's CI machine) - ~0.3 s of CPU per start of the tree.  The cache is a directory of
    its own (``PYTHONPYCACHEPREFIX``), so the source tree gets no ``__pycache__``; made by the
    controller (pytest-xdist's workers inherit its environment) and removed at the end."""
    import os
    import tempfile

    if hasattr(config, "workerinput") or os.environ.get("PYTHONPYCACHEPREFIX"):
        return
    config.pygnc_pycache = tempfile.mkdtemp(prefix="pygnc-pycache-")
    os.environ["PYTHONPYCACHEPREFIX"] = config.pygnc_pycache
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def pytest_unconfigure(config):
    import shutil

    if getattr(config, "pygnc_pycache", None):
        shutil.rmtree(config.pygnc_pycache, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m selection
def pytest_collection_modifyitems(session, config, items):
    """Mark the tests (``SYSTEM``, ``SLOW``, and ``browser`` for those taking the fixture)
    and put the longest modules first (``LONGEST_FIRST``).
    When the browser tests will run and there is no Chromium, start installing it now, in
    the background, so the download overlaps the other tests, saying so on the terminal
    (tests/station_support.py; PYGNC_NO_BROWSER_INSTALL=1 opts out: docs/testing.md).
    Under pytest-xdist the controller starts it, when a worker has collected them."""
    for item in items:
        if _marked(item, SYSTEM):
            item.add_marker(pytest.mark.system)
        if _marked(item, SLOW):
            item.add_marker(pytest.mark.slow)
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # (stable: the rest as collected)
    if hasattr(config, "workerinput"):
        return
    if any("browser" in getattr(item, "fixturenames", ()) for item in items):
        from station_support import start_chromium_install, terminal_line

        start_chromium_install(terminal_line(config))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker more than the cores.  A third of the suite's time is spent
    waiting on process trees, pseudo-terminals and the browser, not on a core (on 2 cores:
    CPU 69 % busy with 2 workers); the tests wait on conditions, so a busier machine is
    slower, not wrong."""
    import os

    return (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1) + 1


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """pytest-xdist's controller: a worker has collected *ids*; the browser tests are the
    station page's (tests/test_station.py)."""
    if any(i.startswith("tests/test_station.py::") for i in ids):
        from station_support import start_chromium_install, terminal_line

        start_chromium_install(terminal_line(node.config))


def pytest_terminal_summary(terminalreporter):
    """How the browser install went, when one ran."""
    if "station_support" in sys.modules:
        outcome = sys.modules["station_support"].install_outcome()
        if outcome:
            terminalreporter.write_line(outcome)


@pytest.fixture
def runtime_dir():
    """A private, empty ``XDG_RUNTIME_DIR`` with a short path: the run's socket paths
    (``<dir>/pygnc-<pid>-<random>/<channel>.sock``) must fit a Unix socket address (107
    bytes), which a test's own tmp_path - deeper under pytest-xdist - may not leave room for."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="pygnc-xdg-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)
