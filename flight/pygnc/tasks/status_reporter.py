"""Status reporter: ``~/pygnc_status.bin``, ``~/pygnc_info.txt`` and the binary bus log.

Subscribes to every channel; keeps the latest estimate of each kind, the ingest counters
and the supervisor's health table; rewrites both files atomically at most every
``status_period_s`` (and at least every second, so ``t_sc_s`` advances); appends every
received frame to ``bus.log``.  A sink: after a stop signal it keeps recording until the
supervisor reports the producers gone, then writes the final status (flag STOPPING).

Imports no numpy, so it starts fast: the first status file appears well inside 1 s.
"""

from __future__ import annotations

import math
import time

from ..atomic import remove_stale_temps, write_atomic
from ..bus.messages import SCHEMA_VERSION, Message
from ..formats import status as st
from ..formats.info import render_info
from ..logs import BusLogWriter
from .base import Task
from .table import TASK_NAMES_BY_ID, enabled_tasks

_TASK_IDS = {name: tid for tid, name in TASK_NAMES_BY_ID.items()}
_STATE_INDEX = {name: i for i, name in enumerate(st.TASK_STATES)}


class StatusReporter(Task):
    def __init__(self, runner):
        super().__init__(runner)
        ctx = self.ctx
        self.status = st.empty_status()
        self.status["run"] = ctx.run_number
        self.flags = 0
        self.seq = 0
        self.dirty = True
        self.last_write = 0.0
        self.frames = 0
        self.dropped_rx = 0
        self.peers: dict[int, int] = {}  # peer id -> slot
        self.failures = 0
        for path in (ctx.paths.status_file, ctx.paths.info_file):
            if remove_stale_temps(path):
                self.log.warning("removed temporary files a crash left next to %s", path.name)
        self.buslog = BusLogWriter(ctx.log_dir / "bus.log", ctx.run_number, SCHEMA_VERSION,
                                   ctx.config.bus_log_max_bytes, ctx.config.log_fsync_period_s)
        # Health slots: every task that runs, "starting" until the supervisor says more.
        for k, spec in enumerate(enabled_tasks(ctx.config)[: st.MAX_TASKS]):
            self.status[f"task{k}_id"] = spec.task_id
            self.status[f"task{k}_state"] = _STATE_INDEX["starting"]
        self.write_status()  # first status at once, before the handshake completes

    # -- inputs ----------------------------------------------------------------------------
    def on_message(self, channel: str, msg: Message, raw: bytes) -> None:
        self._guard("bus log", self.buslog.append, channel, time.monotonic(), raw)
        self.frames += 1
        handler = getattr(self, "_on_" + msg.type, None)
        if handler is not None:
            before = self._health_key() if msg.type == "health" else None
            if self._guard(f"handling {msg.type}", handler, msg.body):
                # Health arrives twice a second: rewrite the files early only when a task's
                # state or restarts changed (ages follow with the once-a-second rewrite).
                self.dirty = self.dirty or before is None or before != self._health_key()

    def _health_key(self) -> tuple:
        s = self.status
        return (self.flags, *(s[f"task{k}_{f}"] for k in range(st.MAX_TASKS) for f in ("state", "restarts")))

    def _guard(self, what: str, fn, *args) -> bool:
        """Run *fn*; count and log (first few) any failure instead of dying: the status
        file is the host's only view of pygnc."""
        try:
            fn(*args)
            return True
        except Exception:
            self.failures += 1
            if self.failures <= 5:
                self.log.exception("%s failed", what)
            return False

    def on_dropped(self, channel: str, raw: bytes) -> None:
        self._guard("bus log", self.buslog.append, channel, time.monotonic(), raw)
        self.dropped_rx += 1

    def _on_ingest_stats(self, b: dict) -> None:
        s = self.status
        if b["source"] == "sense":
            s["sense_bytes"], s["sense_records"] = b["bytes_total"], b["records"]
            s["sense_records_skipped"], s["sense_bytes_skipped"] = b["records_skipped"], b["bytes_skipped"]
            if not b["present"] or b["bytes_total"] == 0:
                self.flags |= st.FLAG_SENSE_MISSING
        elif b["source"] == "range":
            s["range_files"] = b["files"]
            s["range_bytes_skipped"], s["range_records_skipped"] = b["bytes_skipped"], b["records_skipped"]
            if not b["present"] or b["files"] == 0:
                self.flags |= st.FLAG_RANGE_MISSING

    def _on_clock_map(self, b: dict) -> None:
        self.status["clock_offset_s"] = b["utc_minus_sc_s"]
        self.flags |= st.FLAG_CLOCK_MAPPED

    def _on_batch_end(self, b: dict) -> None:
        # Totals from ingest (not counted here): a replayed stream must not double them.
        s = self.status
        s["fixes_total"], s["fixes_valid"] = b["n_gps_fix"], b["n_gps_fix_valid"]
        s["peer_fixes"], s["ranges"] = b["n_peer_fix"], b["n_range"]
        self.flags |= st.FLAG_BATCH_DONE
        if b["n_gps_fix_valid"] == 0:
            self.flags |= st.FLAG_NO_VALID_FIX

    def _newer(self, key: str, b: dict) -> bool:
        """Only an estimate at least as new as the one held replaces it (replays, restarts)."""
        held = self.status[key]
        return not held == held or b["t_sc_s"] >= held  # held is NaN until the first one

    def _on_orbit_estimate(self, b: dict) -> None:
        s = self.status
        if not self._newer("orbit_t_sc_s", b):
            return
        s["orbit_t_sc_s"] = b["t_sc_s"]
        s["orbit_r_ecef_m"], s["orbit_v_ecef_m_s"] = b["r_ecef_m"], b["v_ecef_m_s"]
        s["orbit_sigma_r_m"], s["orbit_sigma_v_m_s"] = b["sigma_r_m"], b["sigma_v_m_s"]
        s["orbit_fixes_used"], s["orbit_fixes_rejected"] = b["n_used"], b["n_rejected"]
        self.flags |= st.FLAG_ORBIT_VALID

    def _on_attitude_estimate(self, b: dict) -> None:
        s = self.status
        if not self._newer("att_t_sc_s", b):
            return
        s["att_t_sc_s"] = b["t_sc_s"]
        s["att_q_body_to_gcrs"] = b["q_body_to_gcrs"]
        s["att_rate_body_rad_s"], s["att_gyro_bias_rad_s"] = b["rate_body_rad_s"], b["gyro_bias_rad_s"]
        s["att_sigma_rad"] = b["sigma_att_rad"]
        # Rates and gyro bias are always reported; the attitude itself only when determined.
        if b.get("valid_attitude", True):
            self.flags |= st.FLAG_ATTITUDE_VALID
        else:
            self.flags &= ~st.FLAG_ATTITUDE_VALID
        if b["has_position"]:
            self.flags &= ~st.FLAG_ATT_NO_POSITION
        else:
            self.flags |= st.FLAG_ATT_NO_POSITION

    def _on_formation_estimate(self, b: dict) -> None:
        pid = b["peer_id"]
        slot = self.peers.get(pid)
        if slot is None:
            if len(self.peers) >= st.MAX_PEERS:
                return
            slot = self.peers[pid] = len(self.peers)
        s, p = self.status, f"peer{slot}_"
        if not self._newer(p + "t_sc_s", b):
            return
        s[p + "id"], s[p + "n_ranges"], s[p + "t_sc_s"] = pid, b["n_ranges_used"], b["t_sc_s"]
        s[p + "dr_ecef_m"], s[p + "dv_ecef_m_s"] = b["dr_ecef_m"], b["dv_ecef_m_s"]
        s[p + "sigma_dr_m"], s[p + "range_bias_m"] = b["sigma_dr_m"], b["range_bias_m"]
        self.flags |= st.FLAG_FORMATION_VALID

    def _on_health(self, b: dict) -> None:
        failed = False
        slot = {self.status[f"task{k}_id"]: k for k in range(st.MAX_TASKS) if self.status[f"task{k}_id"]}
        for t in b["tasks"]:
            if not isinstance(t, dict):
                continue
            k = slot.get(_TASK_IDS.get(t.get("name")))
            if k is None:
                continue
            state = t.get("state", "starting")
            failed |= state == "failed"
            self.status[f"task{k}_state"] = _STATE_INDEX.get(state, 0)
            self.status[f"task{k}_restarts"] = min(255, int(t.get("restarts", 0)))
            age = t.get("age_s", 0.0)
            self.status[f"task{k}_age_ds"] = 255 if not isinstance(age, (int, float)) or math.isnan(age) \
                else min(255, int(age * 10))
        if failed:
            self.flags |= st.FLAG_TASK_FAILED

    # -- outputs ---------------------------------------------------------------------------
    def write_status(self) -> None:
        if not self._guard("writing the status files", self._write_status):
            self.last_write = time.monotonic()  # retried after the period (e.g. a full disk)

    def _write_status(self) -> None:
        ctx = self.ctx
        self.seq += 1
        s = self.status
        s["seq"], s["flags"] = self.seq, self.flags
        s["t_sc_s"] = ctx.sc_now()
        s["uptime_s"] = time.monotonic() - ctx.t0_mono_s
        s["bus_dropped"] = self.runner.decode_counters.dropped
        data = st.encode_status(s)
        write_atomic(ctx.paths.status_file, data)
        write_atomic(ctx.paths.info_file, render_info(st.decode_status(data)))
        self.last_write = time.monotonic()
        self.dirty = False

    def step(self) -> float:
        now = time.monotonic()
        due = self.last_write + (self.config.status_period_s if self.dirty else 1.0)
        if now >= due:
            self.write_status()
            due = self.last_write + self.config.status_period_s
        self._guard("bus log", self.buslog.tick)
        return max(0.0, min(due - time.monotonic(), 0.5))

    def on_stop(self, reason: str) -> None:
        self.flags |= st.FLAG_STOPPING
        # The supervisor's last health table said who stopped cleanly; mark the rest.
        self.write_status()
        self._guard("closing the bus log", self.buslog.close)

    def counters(self) -> dict:
        return {"frames_logged": self.buslog.frames_written, "frames_not_logged": self.buslog.frames_not_written,
                "status_writes": self.seq, "rx_dropped": self.dropped_rx, "failures": self.failures}


TASK_CLASS = StatusReporter
