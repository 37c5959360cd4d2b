#!/usr/bin/env bash
# Package the flight software for the Raspberry Pi.
#
#   ./package_flight_code.sh [OUT_ZIP]        (default: ./pygnc_flight.zip)
#
# The zip holds flight/ (main.py, pygnc_main.py, pygnc/) without tests, caches or READMEs,
# the IGRF-14 coefficient table generated from the ppigrf package, and a VERSION file (git
# commit and dates).  Unzip it anywhere on the Pi and run
#   python main.py <timeout_minutes> <spacecraft_time_s>
# The Pi needs Python >= 3.11 with numpy, pyzmq, msgpack and pyserial (see the README).
#
# Building needs a Python >= 3.11 with numpy and ppigrf: $PYTHON if set, else the clone's
# .venv (made by the README's install command), else python3.  If that Python lacks them, a
# temporary build environment is made (python3 -m venv, then pip install numpy and ppigrf
# from the package index) and removed afterwards.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$here/.venv/bin/python" ]; then python="$here/.venv/bin/python"; else python=python3; fi
fi
has_build_deps() {
  "$1" -c 'import sys, importlib.util as u; sys.exit(not (sys.version_info >= (3, 11) and u.find_spec("numpy") and u.find_spec("ppigrf")))' 2>/dev/null
}
if ! has_build_deps "$python"; then
  echo "package_flight_code.sh: $python lacks numpy or ppigrf (needed to generate the IGRF table);" \
       "making a temporary build environment" >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  if ! { python3 -m venv "$tmp/venv" && "$tmp/venv/bin/pip" install -q numpy && \
         "$tmp/venv/bin/pip" install -q --no-deps ppigrf; } || ! has_build_deps "$tmp/venv/bin/python"; then
    echo "package_flight_code.sh: could not make a build environment.  Needed: Python >= 3.11 with" \
         "numpy and ppigrf, e.g.  python3 -m venv .venv && .venv/bin/pip install -e '.[ground]'" \
         " (or PYTHON=/path/to/python ./package_flight_code.sh)" >&2
    exit 2
  fi
  python="$tmp/venv/bin/python"
fi
"$python" "$here/scripts/package_flight.py" "$@"
