"""How a partner (a formation peer, known by its radio id) is written: ``0x4B``.

One spelling in every note, log, file, CSV column, plot and page pygnc and its ground tools
make (a configuration key may also be ``"75"``: :func:`pygnc.config.peer_id_key`).  Where a
``peer_id`` column also holds the own spacecraft's rows (downlinked GPS fixes: 0) or a peer
nobody knows (-1), those read ``own`` and ``unknown``.

A leaf module: the flight codecs and the ground tools import it.
"""

from __future__ import annotations

from typing import Any

OWN = "own"
UNKNOWN = "unknown"


def partner_name(peer_id: Any) -> str:
    """``0x4B`` for radio id 75 (``own`` for 0, ``unknown`` for a negative or missing id)."""
    try:
        pid = int(peer_id)
    except (TypeError, ValueError):
        return UNKNOWN
    if pid == 0:
        return OWN
    return f"0x{pid:02X}" if pid > 0 else UNKNOWN


def partner_id(text: object) -> int:
    """The radio id :func:`partner_name` wrote (``0x4B``; also ``75``, ``own`` = 0,
    ``unknown`` = -1); ValueError for anything else."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text != int(text):
            raise ValueError(f"not a partner id: {text!r}")
        return int(text)
    t = str(text).strip()
    if t == OWN:
        return 0
    if t == UNKNOWN:
        return -1
    try:
        return int(t, 16) if t[:2].lower() == "0x" else int(float(t))
    except ValueError:
        raise ValueError(f"not a partner id: {text!r} (write 0x4B)") from None
