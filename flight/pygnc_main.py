"""pygnc supervisor under the name in the host's interface document:
``python pygnc_main.py <timeout_minutes> <spacecraft_time_s>`` - runs ``main.py`` next to it."""

import os
import runpy

runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "main.py"), run_name="__main__")
