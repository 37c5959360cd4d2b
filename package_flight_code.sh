#!/usr/bin/env bash
# Package the flight software for the Raspberry Pi.
#
#   ./package_flight_code.sh [OUT_ZIP]        (default: ./pygnc_flight.zip)
#
# The zip holds flight/ (main.py, pygnc_main.py, pygnc/ with its IGRF-14 coefficient table)
# without tests, caches or READMEs, and a VERSION file (git commit and dates).  Unzip it
# anywhere on the Pi and run
#   python main.py <timeout_minutes> <spacecraft_time_s>
# The Pi needs Python >= 3.11 with numpy, pyzmq, msgpack and pyserial (see the README).
#
# Building needs a Python >= 3.11 and nothing else: $PYTHON if set, else the clone's .venv
# (made by the README's install command), else python3.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$here/.venv/bin/python" ]; then python="$here/.venv/bin/python"; else python=python3; fi
fi
usable() {
  "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}
if ! usable "$python"; then
  echo "package_flight_code.sh: $python is not a Python >= 3.11; using python3" >&2
  python=python3
  if ! usable "$python"; then
    echo "package_flight_code.sh: python3 is not a Python >= 3.11 either (PYTHON=/path/to/python" \
         "./package_flight_code.sh)" >&2
    exit 2
  fi
fi
"$python" "$here/scripts/package_flight.py" "$@"
