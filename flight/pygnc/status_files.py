"""The host's status pair: ``pygnc_status.bin`` and ``pygnc_info.txt``, written together.

The info file first: a reader who sees a new status finds an info file at least as new.
Both atomically, through the home's spare file when no inode is free
(:func:`pygnc.atomic.write_atomic`).  Layouts: :mod:`pygnc.formats.status`,
:mod:`pygnc.formats.info`.
"""

from __future__ import annotations

import math

from .atomic import free_bytes, free_inodes, write_atomic
from .formats import status as st
from .formats.info import render_info
from .paths import Paths


def measure_storage(paths: Paths, status: dict) -> None:
    """Set *status*'s ``home_free_kib`` and ``home_free_inodes`` from the home's file system
    now (NaN where it cannot be asked; the codec writes 0 then)."""
    free = free_bytes(paths.home)
    status["home_free_kib"] = math.nan if free is None else free // 1024
    inodes = free_inodes(paths.home)
    status["home_free_inodes"] = math.nan if inodes is None else inodes


def write_status_pair(paths: Paths, status: dict, config_note: str = "") -> bytes:
    """Encode *status*, write the info file rendered from it and then the status file;
    the status bytes.  ``OSError`` (naming the file) if either cannot be written."""
    data = st.encode_status(status)
    write_atomic(paths.info_file, render_info(st.decode_status(data), config_note=config_note), paths.status_spare)
    write_atomic(paths.status_file, data, paths.status_spare)
    return data
