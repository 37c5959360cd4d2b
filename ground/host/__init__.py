"""The PyCubed host, emulated: ``python -m ground host`` (see :mod:`ground.host.cli`).

Modules: :mod:`~ground.host.session` (the Pi's console over pyserial: login, commands,
base64 uploads, Ctrl-C), :mod:`~ground.host.client` (pygnc's stream protocol from the host
side), :mod:`~ground.host.live` (a scenario cut into the segments a host streams),
:mod:`~ground.host.shellpty` (a local login shell on a pseudo-terminal: the Pi without a
Pi, for tests and benchmarks).
"""

from .cli import add_arguments, run  # noqa: F401
