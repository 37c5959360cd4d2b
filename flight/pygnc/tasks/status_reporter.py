"""Status reporter: ``~/pygnc_status.bin``, ``~/pygnc_info.txt`` and the binary bus log.

Subscribes to every channel; keeps the latest estimate of each kind, the ingest counters
and the supervisor's health table; rewrites both files atomically at most every
``status_period_s`` (and at least every second, so ``t_sc_s`` advances), judging at each
write whether each estimate is usable now (:mod:`pygnc.validity`); appends every received
frame to ``bus.log``.  A sink: after a stop signal it keeps recording until the supervisor
reports the producers gone, then writes the final status (flag STOPPING).  Restarted, it
carries on from the last status of its run (:meth:`StatusReporter.resume`): the host never
reads a status without the estimates while the producers replay them.

Storage: the bus log and the text logs keep ``Config.log_reserve_bytes`` free (the
downlink's reserve and, under it, the status files'), so the status and info files
(< 1.2 kB with their temporary copies) can always be written; the batch writer's health
counters saying ``downlink_failed`` set the flag of that name for the rest of the run; a write
that fails anyway (a disk filled by something else) is counted (``status_write_failures``,
flag ``write_failed`` in the next status that can be written), logged, and retried after
``status_period_s``.

Imports no numpy, so it starts fast: the first status file appears well inside 1 s.
"""

from __future__ import annotations

import math
import time

from ..atomic import keep_spare, remove_stale_temps
from ..bus.channels import CHANNELS
from ..bus.messages import SCHEMA_VERSION, Message
from ..config_source import config_flags, rejection_note
from ..formats import status as st
from ..logs import BusLogWriter, records_dropped
from ..regular_files import read_small_file
from ..status_files import measure_storage, write_status_pair
from ..validity import assess, said_acquiring_in
from .base import Task, TaskRunner
from .table import TASK_NAMES_BY_ID, enabled_tasks

_TASK_IDS = {name: tid for tid, name in TASK_NAMES_BY_ID.items()}
_STATE_INDEX = {name: i for i, name in enumerate(st.TASK_STATES)}


class StatusReporter(Task):
    def __init__(self, runner: TaskRunner) -> None:
        super().__init__(runner)
        ctx = self.ctx
        self.status = st.empty_status()
        self.status["run"] = ctx.run_number
        self.flags = config_flags(self.config)  # config_rejected, imu_reflection: for the whole run
        self.config_note = rejection_note()
        self.seq = 0
        self.dirty = True
        self.last_write = 0.0
        self.frames = 0
        self.dropped_rx = 0
        self.peers: dict[int, int] = {}  # peer id -> slot
        self.failures = 0
        self.write_failures = 0
        self.final_status_written = False
        self.att_has_reference = True
        self.said_acquiring: set[str] = set()  # "orbit", "peer0" ...: latest word acquiring
        self.other_logs_limited = False  # another task's text log dropped records
        self.downlink_failed = False  # the batch writer could not write every record
        self.batch_records_held = 0  # ... and how many wait for room (its last health counters)
        # Logs outside PYGNC_HOME/pygnc_logs (it could not be made): they end with the run.
        self.logs_not_kept = ctx.log_dir.parent != ctx.paths.log_root
        for path in (ctx.paths.status_file, ctx.paths.info_file):
            if remove_stale_temps(path):
                self.log.warning("removed temporary files a crash left next to %s", path.name)
        keep_spare(ctx.paths.status_spare)
        try:
            self.buslog: BusLogWriter | None = BusLogWriter(
                ctx.log_dir / "bus.log",
                ctx.run_number,
                SCHEMA_VERSION,
                ctx.config.bus_log_max_bytes,
                ctx.config.log_fsync_period_s,
                ctx.config.log_reserve_bytes,
                ctx.config.spacecraft_id,
            )
        except OSError as exc:  # e.g. a full disk: run without a bus log, and say so
            self.log.error("cannot open the bus log: %s", exc)
            self.buslog = None
        # Health slots: every task that runs, "starting" until the supervisor says more.
        for k, spec in enumerate(enabled_tasks(ctx.config)[: st.MAX_TASKS]):
            self.status[f"task{k}_id"] = spec.task_id
            self.status[f"task{k}_state"] = _STATE_INDEX["starting"]
        if ctx.replay:
            self.resume()
        self.write_status()  # first status at once, before the handshake completes

    #: Flags judged again at every write (validity, storage) or meaning the end of the run.
    _RECOMPUTED_FLAGS = (
        st.FLAG_ORBIT_VALID
        | st.FLAG_ATTITUDE_VALID
        | st.FLAG_FORMATION_VALID
        | st.FLAG_STOPPING
        | st.FLAG_WRITE_FAILED
        | st.FLAG_LOGS_LIMITED
    )

    def resume(self) -> bool:
        """A restarted reporter: carry on from the last status file of this run - its
        estimates, totals, flags, task slots and ``seq`` - so the host does not read a status
        without them while the producers replay; the replay replaces an estimate only by a
        newer one.  False if there is none of this run."""
        try:
            old = st.decode_status(read_small_file(self.ctx.paths.status_file, st.SIZE))
        except (OSError, st.StatusError):
            return False
        if old["run"] != self.ctx.run_number:
            return False
        self.status.update(old)
        self.seq = int(old["seq"])
        self.flags = int(old["flags"]) & ~self._RECOMPUTED_FLAGS
        self.peers = {int(old[f"peer{k}_id"]): k for k in range(st.MAX_PEERS) if old[f"peer{k}_id"]}
        self.att_has_reference = st.ESTIMATE_QUALITY[old["att_quality"]] != "rates_only"
        self.said_acquiring = said_acquiring_in(old)
        self.log.info("restarted: carrying on from status %d of run %d", self.seq, self.ctx.run_number)
        return True

    # -- inputs ----------------------------------------------------------------------------
    def _log_frame(self, channel: str, raw: bytes) -> None:
        if self.buslog is not None:
            self.guard("bus log", self.buslog.append, channel, time.monotonic(), raw)

    def reads(self, channel: str) -> frozenset[str]:
        """The types it has a handler for; every frame goes to the bus log either way."""
        return frozenset(t for t in CHANNELS[channel].types if hasattr(self, "_on_" + t))

    def on_unread(self, channel: str, raw: bytes) -> None:
        self._log_frame(channel, raw)
        self.frames += 1

    def on_message(self, channel: str, msg: Message, raw: bytes) -> None:
        self._log_frame(channel, raw)
        self.frames += 1
        handler = getattr(self, "_on_" + msg.type, None)
        if handler is not None:
            before = self._health_key() if msg.type == "health" else None
            if self.guard(f"handling {msg.type}", handler, msg.body)[0]:
                # Health arrives twice a second: rewrite the files early only when a task's
                # state or restarts changed (ages follow with the once-a-second rewrite).
                self.dirty = self.dirty or before is None or before != self._health_key()

    def _health_key(self) -> tuple:
        s = self.status
        return (self.flags, *(s[f"task{k}_{f}"] for k in range(st.MAX_TASKS) for f in ("state", "restarts")))

    def on_dropped(self, channel: str, raw: bytes) -> None:
        self._log_frame(channel, raw)
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
        self.status["clock_utc_minus_sc_s"] = b["utc_minus_sc_s"]
        self.flags |= st.FLAG_CLOCK_MAPPED

    def _on_batch_end(self, b: dict) -> None:
        # Totals from ingest (not counted here): a replayed stream must not double them.
        s = self.status
        s["fixes_total"], s["fixes_valid"] = b["n_gps_fix"], b["n_gps_fix_valid"]
        s["peer_fixes"], s["ranges"] = b["n_peer_fix"], b["n_range"]
        s["batch_t_sc_first_s"], s["batch_t_sc_last_s"] = b["t_sc_first_s"], b["t_sc_last_s"]
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
        self._said("orbit", b)

    def _on_attitude_estimate(self, b: dict) -> None:
        s = self.status
        if not b["propagated"] and self._newer("att_meas_t_sc_s", b):
            s["att_meas_t_sc_s"] = b["t_sc_s"]  # an estimate at a sensor sample's time
        if not self._newer("att_t_sc_s", b):
            return
        s["att_t_sc_s"] = b["t_sc_s"]
        s["att_q_body_to_gcrs"] = b["q_body_to_gcrs"]
        s["att_rate_body_rad_s"], s["att_gyro_bias_rad_s"] = b["rate_body_rad_s"], b["gyro_bias_rad_s"]
        s["att_sigma_rad"] = b["sigma_att_rad"]
        # Rates and gyro bias are always reported; the attitude itself only when determined.
        self.att_has_reference = bool(b.get("valid_attitude", True))
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
        s[p + "ambiguity_m"] = b["ambiguity_m"]
        s[p + "acq_s"], s[p + "acq_window_s"] = (b["acquired_s"], b["window_s"]) if b["acquiring"] else (0, 0)
        self._said(f"peer{slot}", b)

    def _said(self, key: str, b: dict) -> None:
        """Keep whether estimate *b* called itself ``acquiring`` (a start not yet confirmed)."""
        if b["quality"] == "acquiring":
            self.said_acquiring.add(key)
        else:
            self.said_acquiring.discard(key)

    def _on_health(self, b: dict) -> None:
        failed = False
        slot = {self.status[f"task{k}_id"]: k for k in range(st.MAX_TASKS) if self.status[f"task{k}_id"]}
        for t in b["tasks"]:
            if not isinstance(t, dict):
                continue
            counters = t.get("counters")
            if isinstance(counters, dict) and counters.get("log_dropped"):
                self.other_logs_limited = True
            if isinstance(counters, dict) and t.get("name") == "batch_writer":
                self.downlink_failed = self.downlink_failed or bool(counters.get("downlink_failed"))
                held = counters.get("records_held", 0)
                self.batch_records_held = held if isinstance(held, int) and held >= 0 else 0
            name = t.get("name")
            k = slot.get(_TASK_IDS[name]) if isinstance(name, str) and name in _TASK_IDS else None
            if k is None:
                continue
            state = t.get("state", "starting")
            failed |= state == "failed"
            self.status[f"task{k}_state"] = _STATE_INDEX.get(state, 0)
            self.status[f"task{k}_restarts"] = min(255, int(t.get("restarts", 0)))
            age = t.get("age_s", 0.0)
            self.status[f"task{k}_age_ds"] = (
                255 if not isinstance(age, (int, float)) or math.isnan(age) else min(255, int(age * 10))
            )
        if failed:
            self.flags |= st.FLAG_TASK_FAILED

    # -- outputs ---------------------------------------------------------------------------
    def write_status(self) -> bool:
        """Write the status and info files; False (counted, logged, retried after the
        period) if that failed."""
        try:
            self._write_status()
            return True
        except Exception as exc:  # OSError (a full disk) above all; never fatal
            self.write_failures += 1
            self.last_write = time.monotonic()  # retried after the period
            if self.write_failures <= 5 or self.write_failures % 100 == 0:
                self.log.error("cannot write the status files (%d failures so far): %s", self.write_failures, exc)
            return False

    def _storage_flags(self) -> int:
        flags = 0
        if self.write_failures:
            flags |= st.FLAG_WRITE_FAILED
        if self.downlink_failed:
            flags |= st.FLAG_DOWNLINK_FAILED
        bl = self.buslog
        if bl is None or bl.frames_not_written or self.logs_not_kept or self.other_logs_limited or records_dropped():
            flags |= st.FLAG_LOGS_LIMITED
        return flags

    def _write_status(self) -> None:
        ctx = self.ctx
        self.seq += 1
        s = self.status
        now_sc = ctx.sc_now()
        s["seq"] = self.seq
        s["t_sc_s"] = now_sc
        s["uptime_s"] = time.monotonic() - ctx.t0_mono_s
        s["bus_dropped"] = self.runner.decode_counters.dropped
        measure_storage(ctx.paths, s)
        s["batch_records_held"] = self.batch_records_held
        s["status_write_failures"] = self.write_failures
        s["log_frames_not_written"] = 0 if self.buslog is None else self.buslog.frames_not_written
        s["flags"] = self.flags | self._storage_flags()
        s["flags"] = assess(s, now_sc, self.config, self.att_has_reference, self.said_acquiring)
        write_status_pair(ctx.paths, s, self.config_note)
        self.last_write = time.monotonic()
        self.dirty = False

    def step(self) -> float:
        now = time.monotonic()
        due = self.last_write + (self.config.status_period_s if self.dirty else 1.0)
        if now >= due:
            self.write_status()
            due = self.last_write + self.config.status_period_s
        if self.buslog is not None:
            self.guard("bus log", self.buslog.tick)
        return max(0.0, min(due - time.monotonic(), 0.5))

    def on_stop(self, reason: str) -> None:
        # Flag stopping only in the supervisor's ordered stop (which then writes the final
        # status again with each task's final state): stopping on its own (the supervisor
        # gone or silent) the run ends without it, and its last status must not look like
        # a clean stop's.  The bus log first: its last frames then count in the status.
        if self.runner.stop_ordered:
            self.flags |= st.FLAG_STOPPING
        else:
            self.log.warning("the run ends without the supervisor's ordered stop (%s): no flag stopping", reason)
        if self.buslog is not None:
            self.guard("closing the bus log", self.buslog.close)
        self.final_status_written = self.write_status()

    def counters(self) -> dict:
        bl = self.buslog
        return {
            "frames_logged": bl.frames_written if bl else 0,
            "frames_not_logged": bl.frames_not_written if bl else 0,
            "status_writes": self.seq,
            "status_write_failures": self.write_failures,
            "final_status_written": self.final_status_written,
            "rx_dropped": self.dropped_rx,
            "failures": self.failures,
        }


TASK_CLASS = StatusReporter
