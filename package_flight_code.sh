#!/usr/bin/env bash
# Package the flight software for the Raspberry Pi.
#
#   ./package_flight_code.sh [OUT_ZIP]        (default: ./pygnc_flight.zip)
#
# The zip holds flight/ (main.py, pygnc_main.py, pygnc/) without tests, caches or READMEs,
# plus a VERSION file (git commit and dates).  Unzip it anywhere on the Pi and run
#   python main.py <timeout_minutes> <spacecraft_time_s>
# The Pi needs Python >= 3.11 with numpy, pyzmq, msgpack, pyserial and filterpy.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$here/.venv/bin/python" ]; then python="$here/.venv/bin/python"; else python=python3; fi
fi
exec "$python" "$here/scripts/package_flight.py" "$@"
