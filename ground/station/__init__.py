"""The browser ground station: ``python -m ground serve SOURCE`` (see :mod:`ground.station.cli`).

Modules: :mod:`~ground.station.model` (tables -> the page's series and status: pure, and
the declaration of the page's messages), :mod:`~ground.station.sources` (replay outputs,
downlinked batch files, a live stream on a serial port or pseudo-terminal),
:mod:`~ground.station.server` (aiohttp: the page, its vendored assets, the WebSocket),
``static/`` (the page; ``static/vendor/VENDOR.md`` names the vendored libraries and their
licences).
"""

from .cli import add_arguments, run  # noqa: F401
