import sys
from pathlib import Path

# Test helpers (flight_harness) live next to the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))

#: Real PY4 captures copied into the repository (provenance in tests/data/py4/README.md).
PY4_DATA = Path(__file__).resolve().parent / "data" / "py4"
