import sys
from pathlib import Path

import pytest

# Test helpers (flight_harness) live next to the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))

#: Real PY4 captures copied into the repository (provenance in tests/data/py4/README.md).
PY4_DATA = Path(__file__).resolve().parent / "data" / "py4"


@pytest.fixture(scope="session")
def single_sc_3h(tmp_path_factory):
    """The issue's one-spacecraft attitude scenario (seed 21, 3 h, two eclipses), simulated
    once per session and written to disk: (ground.simulate.Scenario, directory).  The
    attitude core, orbit and attitude processor tests share it."""
    from attitude_support import issue_settings

    from ground import simulate as sim

    scenario = sim.simulate(issue_settings(seed=21, duration_s=3 * 3600.0))
    d = tmp_path_factory.mktemp("single_sc_3h")
    sim.write_scenario(scenario, d)
    return scenario, d


def pytest_collection_modifyitems(session, config, items):
    """When the browser tests will run and there is no Chromium, start installing it now, in
    the background, so the download overlaps the other tests, saying so on the terminal
    (tests/station_support.py; PYGNC_NO_BROWSER_INSTALL=1 opts out: docs/testing.md)."""
    if any("browser" in getattr(item, "fixturenames", ()) for item in items):
        from station_support import start_chromium_install, terminal_line

        start_chromium_install(terminal_line(config))


def pytest_terminal_summary(terminalreporter):
    """How the browser install went, when one ran."""
    if "station_support" in sys.modules:
        outcome = sys.modules["station_support"].install_outcome()
        if outcome:
            terminalreporter.write_line(outcome)
