"""Housekeeping device kinds: the numbers the batch files' ``hk`` records carry
(docs/interface.md).

A leaf module, like :mod:`pygnc.task_ids`: the batch codec (:mod:`pygnc.formats.batch`) and
the drivers' configuration (:mod:`pygnc.drivers.hk_devices`) and registry
(:mod:`pygnc.drivers.hk_registry`) take them from here, so the codec needs nothing of the
drivers.
"""

from __future__ import annotations

#: Housekeeping device kinds (``Config.housekeeping_devices[].kind``); a batch ``hk`` record
#: stores a kind as its position here + 1 (0: unknown).  Never reorder: append.
HK_DEVICE_KINDS = ("emus_bms", "opc_n3")
