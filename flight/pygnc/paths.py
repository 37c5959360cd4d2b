"""Where the host puts our inputs and reads our outputs, all under ``PYGNC_HOME``.

Imports nothing of pygnc and nothing slow: main.py needs the home's paths before the
supervisor's imports (a stop that comes while they run, :mod:`pygnc.early_stop`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: The home's batch area: ``Config.batch_dir`` is this directory or one under it.
BATCH_AREA = "pygnc_batches"
#: The last uplinked configuration a run accepted (:mod:`pygnc.config_source`).
ACCEPTED_CONFIG_NAME = "pygnc_config.accepted.toml"
#: A batch file being written: its final name (:mod:`pygnc.formats.batch`) + this; never
#: under the final name until it is complete.
PART_SUFFIX = ".part"


@dataclass(frozen=True)
class Paths:
    """Where the host puts our inputs and reads our outputs."""

    home: Path

    @classmethod
    def from_env(cls) -> Paths:
        """``PYGNC_HOME`` (default: the home directory), absolute: a relative one is taken
        from the current directory once, here - the tasks run in the flight code's directory
        and are handed this absolute path."""
        return cls(Path(os.path.abspath(Path(os.environ.get("PYGNC_HOME") or Path.home()).expanduser())))

    @property
    def sense_file(self) -> Path:
        return self.home / "sense.bin"

    @property
    def range_dir(self) -> Path:
        return self.home / "range"

    @property
    def config_file(self) -> Path:
        """The configuration the ground uploads (read when ``PYGNC_CONFIG`` is not set)."""
        return self.home / "pygnc_config.toml"

    @property
    def accepted_config_file(self) -> Path:
        """The copy of the last uplinked configuration a run accepted (its fallback)."""
        return self.home / ACCEPTED_CONFIG_NAME

    @property
    def range_file(self) -> Path:
        """The single range file the interface document also names (read after range/)."""
        return self.home / "range.bin"

    @property
    def status_file(self) -> Path:
        return self.home / "pygnc_status.bin"

    @property
    def info_file(self) -> Path:
        return self.home / "pygnc_info.txt"

    @property
    def status_spare(self) -> Path:
        """The empty file kept for writing the status and info files when no inode is free
        (:func:`pygnc.atomic.write_atomic`)."""
        return self.home / ".pygnc_status.spare"

    @property
    def imu_port_cache(self) -> Path:
        """Last port and baud where IMU discovery found a unit (tried first next time)."""
        return self.home / ".pygnc_imu_port.json"

    @property
    def log_root(self) -> Path:
        return self.home / "pygnc_logs"

    @property
    def batch_area(self) -> Path:
        """Every batch directory a configuration can name is this one or under it."""
        return self.home / BATCH_AREA
