"""Task ids and task states: the numbers the status file's health slots and the batch files'
health records carry (docs/interface.md).

A leaf module: the codecs (:mod:`pygnc.formats.status`, :mod:`pygnc.formats.batch`) and the
task table (:mod:`pygnc.tasks.table`, which says what each task is) take them from here.
An id is never reused and a state's index never changes: the ground decodes old files with
them.
"""

from __future__ import annotations

#: Task name -> id (1..255; 0 is an empty slot).  Every task of the task table has one.
TASK_IDS: dict[str, int] = {
    "status_reporter": 1,
    "ingest": 2,
    "orbit_estimator": 3,
    "attitude_estimator": 4,
    "formation_estimator": 5,
    "batch_writer": 6,
    "imu_ingest": 8,
    "housekeeping": 9,
    "tty_stream": 10,
    "formation_estimator_2": 11,
}
if len(set(TASK_IDS.values())) != len(TASK_IDS) or not all(1 <= i <= 255 for i in TASK_IDS.values()):
    raise ValueError("task ids must be unique and in 1..255")

#: Task states, by their index in the health slots and records.
TASK_STATES = ("unused", "starting", "running", "late", "restarting", "stopped", "failed", "exited")
