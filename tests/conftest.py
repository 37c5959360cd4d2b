import sys
from pathlib import Path

# Test helpers (flight_harness) live next to the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))
