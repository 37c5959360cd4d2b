"""Formation processor: own and peer GPS fixes and ranges in, relative state per peer out.

One :class:`pygnc.estimation.formation_filter.FormationFilter` per peer (own orbit +
relative state + range bias; own fixes are used by every peer's filter); range-only, also
one per other orbit the partner may fly, until the ranges or the prior decide between them
(:class:`pygnc.estimation.range_only.PartnerHypotheses`).  This module handles the
messages; the other jobs have rooms of their own:

* :mod:`.event_order` - every event waits in a GPS-time-ordered queue until the stream has
  moved ``hold`` seconds past it (peer fixes carry the peer's clock and arrive early or
  late); replayed events are dropped there;
* :mod:`.formation_peer` - each peer's filter lifecycle (start from a fix pair or, range-only,
  from the prior or the first range; re-initialisation after a gap);
* :mod:`.formation_outputs` - estimates waiting for the filter's next step, interpolated,
  published in time order and decimated during a batch;
* :mod:`.now_cursor` - the estimates propagated to "now" (:meth:`propagate_to_sc`).
* :mod:`.formation_estimate` - an estimate's message body (the kept orbits' mixture, axes,
  sigmas, ambiguity, quality);
* :mod:`.formation_notes` - the notes, and those issued once per batch.

Inputs
* ``clock_map``: own spacecraft clock -> GPS time (sensor samples and range packets carry
  only the own spacecraft clock).
* ``gps_fix`` with ``peer_id`` 0: own fix; ``peer_id`` > 0: the peer's fix from a range
  file; < 0: a peer fix of unknown peer (counted).  A fix's GPS time is authoritative.  An
  invalid fix is counted, never used.  A peer fix that arrives after the filter has passed
  its time is dropped, counted, and reported once per peer (``peer_fix_late``).
* ``range``: measured range to ``peer_id`` at own spacecraft time ``t_sc_s``; packets
  without the valid flag are counted and dropped.
* ``sensor``: a ``formation_estimate`` is due for every initialised peer at the sample's time.
* ``batch_end``: everything still held is processed; notes are issued (below).

Decimation (``Config.batch_decimate_estimates``, on by default): during a batch the
processor publishes, per peer, the first estimate in each bin of the batch writer's
formation period and the newest one before ``batch_end`` (at ``batch_end`` or at stop:
:meth:`flush_held`); everything after ``batch_end`` goes out in full.  The filters are
stepped exactly as without it.  Off: an estimate at every sensor sample (ground replays).

Partners in two processes (``Config.formation_split``): with ``part`` (k, n) this processor
estimates the known partners whose order of first appearance in the stream (the same in
every process) is k modulo n, and ignores the others' (counter ``other_part_msgs``); the
batch-wide notes come from part 0.  A partner's estimates are the same as from one process
to ~1e-4 m (the own steps two partners' filters share in one process are first-order
carries of a full propagation: :func:`pygnc.estimation.formation_filter.own_step`).

Notes (``estimator_note``, estimator ``formation``), never fatal: ``unknown_peer`` (an id
not in ``Config.formation_peer_ids``, once per id; its data are ignored), ``no_range_data``
(no peer fix and no range in the batch), ``peer_no_valid_fix``, ``peer_not_initialized``
(valid fixes or ranges, but never near a valid own fix), ``no_own_fix``,
``peer_fix_late``, ``propagation_horizon``, and the range-only notes of the hypotheses.

Replay.  A restarted ingest replays the whole stream: an event already processed or held
is dropped and counted (``stale``); outputs per peer strictly increase in epoch, so a
replay publishes nothing again and changes no other counter.

Admission (:mod:`pygnc.processors.admission`).  An own fix whose GPS time disagrees with
its clock-mapped stamp, a sample or range more than ``Config.max_propagation_s`` after the
last measurement, and a peer fix more than ``Config.formation_max_hold_s`` beyond the
newest own-clock time are corrupt times: skipped and counted (``time_outliers``).  A filter
is not propagated across more than ``Config.max_gap_propagation_s``: an own or peer fix
after such a gap re-initialises the peer's filter from the next pair (``gap_reinit``), a
range or sample is skipped for that peer (``gap_skipped``).  Every handler call predicts
within ``Config.handler_budget_s``: events it cannot finish stay queued and the next call
goes on from there (``budget_deferred``).
"""

from __future__ import annotations

import math

from ..config import Config
from ..estimation.formation_filter import (
    FormationFilter,
    FormationFilterConfig,
    reported_block,
)
from ..estimation.gps_fix import GpsFix
from ..timebase import ClockMap
from . import Output, Processor, admission, clock_map_from_body, now_cursor
from .event_order import EventOrder, Kind
from .formation_estimate import estimate_body
from .formation_notes import batch_notes, note
from .formation_outputs import READY_PER_CALL, Ready, acquisition
from .formation_peer import PeerTrack, filter_config_from, range_only_config_from, range_only_filter_config


class FormationProcessor(Processor):
    consumes = frozenset({"clock_map", "gps_fix", "range", "sensor", "batch_end"})

    def __init__(
        self,
        config: Config | None = None,
        filter_config: FormationFilterConfig | None = None,
        part: tuple[int, int] = (0, 1),
    ):
        self.config = c = config or Config()
        #: (k, n): this processor estimates the partners whose order of first appearance
        #: in the stream is k modulo n (see "Partners in two processes" above); the
        #: batch-wide notes come from part 0.
        self.part, self.n_parts = int(part[0]), max(1, int(part[1]))
        if not 0 <= self.part < self.n_parts:
            raise ValueError(f"FormationProcessor: part {part} is not (k, n) with 0 <= k < n")
        self.appeared: list[int] = []  # known partners in the order they first appeared
        self.other_part_ids: set[int] = set()
        self.n_other_part_msgs = 0
        self.filter_config = filter_config or filter_config_from(c)
        self.range_only_config = range_only_config_from(c)
        self.known_ids = frozenset(int(i) for i in c.formation_peer_ids)
        #: No partner fix reaches the Pi: partners are started from priors and ranges.
        self.range_only = c.range_gps_source == "own"
        if self.range_only:
            self.filter_config = range_only_filter_config(self.filter_config, self.range_only_config)
        self.peers: dict[int, PeerTrack] = {}
        self.own_steps: dict = {}  # the own orbit's steps its filters share (formation_filter.own_step)
        self.clock: ClockMap | None = None
        self.order = EventOrder(c.formation_hold_s, c.formation_max_hold_s)
        self.t_meas_rx_gps_s = -math.inf  # newest own fix / range received
        self.t_meas_done_gps_s = -math.inf  # newest measurement processed
        self.n_time_outliers = 0
        self.n_budget_deferred = 0
        self.n_gap_reinit = 0
        self.n_gap_skipped = 0
        self.last_own_fix: GpsFix | None = None
        self.unknown_ids: set[int] = set()
        self.n_unknown_msgs = 0
        self.n_own_valid = 0
        self.n_own_invalid = 0
        self.n_peer_fix_anonymous = 0
        self.n_no_clock = 0
        self.n_outputs = 0
        self.decimation = admission.BatchDecimation(c, "formation")
        self.batch_ended = False
        self.notes_sent: set[str] = set()

    def _peer(self, peer_id: int, out: list[Output]) -> PeerTrack | None:
        """The known peer *peer_id* of this part, or None (an unknown id is reported once)."""
        p = self.peers.get(peer_id)
        if p is not None:
            return p
        if peer_id in self.other_part_ids:
            self.n_other_part_msgs += 1
            return None
        if peer_id not in self.known_ids:
            self.n_unknown_msgs += 1
            if peer_id not in self.unknown_ids:
                self.unknown_ids.add(peer_id)
                if self.part == 0:
                    out.append(
                        note(
                            "unknown_peer",
                            f"peer id 0x{peer_id:02X} is not in formation_peer_ids: its fixes and ranges are ignored",
                            peer_id,
                        )
                    )
            return None
        self.appeared.append(peer_id)
        if (len(self.appeared) - 1) % self.n_parts != self.part:
            self.other_part_ids.add(peer_id)  # another formation process's partner
            self.n_other_part_msgs += 1
            return None
        p = self.peers[peer_id] = PeerTrack(
            peer_id,
            self.filter_config,
            self.range_only_config,
            self.config.formation_peer_priors.get(peer_id),
            self.own_steps,
            self.decimation,
        )
        p.hyp.abandon = self._stopping
        return p

    def _stopping(self) -> bool:
        """The owner stops (:attr:`interrupt`): a window fit under way gives up."""
        return self.interrupt is not None and self.interrupt()

    # ------------------------------------------------------------------ inputs
    def handle(self, msg_type: str, body: dict) -> list[Output]:
        out: list[Output] = []
        if msg_type == "clock_map":
            self.clock = clock_map_from_body(body)
            return out
        if msg_type == "gps_fix":
            self._on_fix(body, out)
        elif msg_type == "range":
            self._on_range(body, out)
        elif msg_type == "sensor":
            self._on_sensor(body)
        elif msg_type == "batch_end":
            self._on_batch_end(body, out)
            return out
        self._release(self.order.t_release_gps_s, out, self._budget())
        for p in self.peers.values():
            if p.outputs.ready:
                self._publish_ready(p, out, READY_PER_CALL)
        return out

    def _budget(self) -> admission.Budget:
        return admission.Budget(self.config.handler_budget_s, self.interrupt)

    def _on_sensor(self, b: dict) -> None:
        if self.clock is None:
            self.n_no_clock += 1
            return
        t = admission.gps_from_own_clock(self.clock, b["t_sc_s"])
        if t is None or not admission.within_horizon(t, self.t_meas_rx_gps_s, self.config.max_propagation_s):
            self.n_time_outliers += 1  # absurdly far ahead of the data: a corrupt stamp
        elif not self.order.stale(t, (t, Kind.OUTPUT)):
            self.order.push(t, Kind.OUTPUT, float(b["t_sc_s"]), (t, Kind.OUTPUT))
            if math.isfinite(self.t_meas_rx_gps_s):
                self.order.advance_stream(t)
            # else: nothing measured yet to judge it by: held, but it does not move the stream.

    def _on_batch_end(self, b: dict, out: list[Output]) -> None:
        self.batch_ended = True
        for p in self.peers.values():  # the newest left out (older than all still to come)
            self._publish_held(p, out)
        if self._release(self.order.t_flush_gps_s, out, self._budget(), final=True):
            for p in self.peers.values():
                p.flush_outputs(math.inf)
                self._publish_ready(p, out)
        for p in self.peers.values():  # windows the batch ended in: fit what they hold
            if p.hyp.window is not None and not self.order:
                # started from, converged or not: not held back for more; finished by the
                # propagation after the batch
                p.finish_window()
                self._take_notes(p, out)
        batch_notes(self, b, out)

    def _on_fix(self, b: dict, out: list[Output]) -> None:
        pid = int(b["peer_id"])
        t = float(b["t_gps_s"])
        order = self.order
        if (
            pid == 0
            and bool(b["valid"])
            and not admission.own_fix_time_ok(self.clock, t, b["t_sc_s"], self.config.fix_time_tolerance_s)
        ):
            self.n_time_outliers += 1  # its week/ms disagrees with its stamp: a corrupt time
            return
        fix = GpsFix(t, b["pos_ecef_m"], b["vel_ecef_m_s"], b["pos_sigma_m"], b["vel_sigma_m_s"])
        valid = (
            bool(b["valid"])
            and math.isfinite(t)
            and admission.fix_plausible(self.config, fix.pos_ecef_m, fix.vel_ecef_m_s)
        )
        if pid == 0:
            t_key = t
            if not valid and self.clock is not None:
                t_key = float(self.clock.gps_from_sc(float(b["t_sc_s"])))  # its own GPS time may be garbage
            if math.isfinite(t_key) and order.stale(t_key, (t_key, Kind.OWN_FIX) if valid else None):
                return
            if not valid:
                self.n_own_invalid += 1
                return
            self.n_own_valid += 1
            self.t_meas_rx_gps_s = max(self.t_meas_rx_gps_s, t)
            order.push(t, Kind.OWN_FIX, fix, (t, Kind.OWN_FIX))
            order.advance_stream(t)
            return
        t_peer_sc = float(b["t_sc_s"])
        if pid < 0:  # a peer fix whose group had no ranges: whose it is, is unknown
            if not order.anonymous_replayed(t_peer_sc, t):
                self.n_peer_fix_anonymous += 1
            return
        if order.peer_fix_replayed(pid, t_peer_sc):
            return
        p = self._peer(pid, out)
        if p is None:
            return
        p.heard = True
        p.n_fixes += 1
        if not valid:
            return
        p.n_fixes_valid += 1
        if self.clock is not None:
            # How much later than its GPS time this fix arrives on the own-clock stream.
            order.saw_lateness(float(self.clock.gps_from_sc(float(b["t_sc_s"]))) - t)
        if t < order.t_done_gps_s:
            p.n_fixes_late += 1
            if not p.late_noted:
                p.late_noted = True
                out.append(
                    note(
                        "peer_fix_late",
                        f"peer 0x{pid:02X}: fix arrived {order.t_done_gps_s - t:.0f} s "
                        "after the filter passed its time (peer clock ahead?): dropped",
                        pid,
                    )
                )
            return
        if order.held((t, Kind.PEER_FIX, pid)):
            return
        order.push(t, Kind.PEER_FIX, (pid, fix), (t, Kind.PEER_FIX, pid))

    def _on_range(self, b: dict, out: list[Output]) -> None:
        pid = int(b["peer_id"])
        t = admission.gps_from_own_clock(self.clock, b["t_sc_s"])
        valid = bool(b["valid"]) and admission.range_plausible(self.config, b["range_m"])
        if (
            valid
            and t is not None
            and not admission.within_horizon(t, self.t_meas_rx_gps_s, self.config.max_propagation_s)
        ):
            self.n_time_outliers += 1  # absurdly far ahead of the data: a corrupt stamp
            return
        if t is not None and self.order.stale(t, (t, Kind.RANGE, pid) if valid else None):
            return
        p = self._peer(pid, out)
        if p is None:
            return
        p.heard = True
        if not valid:
            p.n_ranges_invalid += 1
            return
        if t is None:
            self.n_no_clock += 1 if self.clock is None else 0
            self.n_time_outliers += 0 if self.clock is None else 1
            return
        self.t_meas_rx_gps_s = max(self.t_meas_rx_gps_s, t)
        self.order.advance_stream(t)
        self.order.push(t, Kind.RANGE, (pid, float(b["range_m"])), (t, Kind.RANGE, pid))

    # ------------------------------------------------------------------ event processing
    def _release(self, t_until_gps_s: float, out: list[Output], budget: admission.Budget, final: bool = False) -> bool:
        """Process held events up to *t_until_gps_s* while *budget* lasts; False if some
        are left for a later call (the event under way is put back and resumed).  *final*
        (the flush after batch_end): events beyond *t_until_gps_s* are corrupt times, dropped."""
        order = self.order
        while order.due(t_until_gps_s):
            if budget.spent():
                self.n_budget_deferred += 1
                return False
            event = order.pop()
            t, kind, seq, payload, _ = event
            for p in self.peers.values():
                p.flush_overdue(t)
            if kind == Kind.OWN_FIX:
                done = self._process_own(payload, seq, budget)
            elif kind == Kind.PEER_FIX:
                pid, fix = payload
                done = self._process_peer(pid, fix, seq, budget)
            elif kind == Kind.RANGE:
                pid, range_m = payload
                done = self._process_range(t, pid, range_m, seq, budget, out)
            elif math.isfinite(self.t_meas_done_gps_s) and t > self.t_meas_done_gps_s + self.config.max_propagation_s:
                self.n_time_outliers += 1  # held before any measurement, and far beyond them
                done = True
            else:
                done = self._output_all(t, payload, out, seq)
            if not done:  # out of budget part-way: resume this event next call
                order.put_back(event)
                self.n_budget_deferred += 1
                return False
        if final:
            # What is left after the flush is beyond the own data: corrupt peer-fix times.
            self.n_time_outliers += order.drop_beyond(t_until_gps_s)
        return True

    def _applied(self, p: PeerTrack, t: float, seq: int) -> None:
        p.applied(t, seq)
        self.t_meas_done_gps_s = max(self.t_meas_done_gps_s, t)

    def _gap_check(self, p: PeerTrack, t: float) -> None:
        if p.gap_exceeded(t, self.config.max_gap_propagation_s):
            self.n_gap_reinit += 1

    def _process_own(self, fix: GpsFix, seq: int, budget: admission.Budget) -> bool:
        t = fix.t_gps_s
        self.last_own_fix = fix
        self.t_meas_done_gps_s = max(self.t_meas_done_gps_s, t)
        gcrs = None  # the fix in GCRS, converted once for every filter (they share the sigma rules)
        for p in self.peers.values():
            self._gap_check(p, t)
            if p.filter.initialized and p.filter.needs_reinit:
                continue
            reached = p.reach(t, seq, budget, self.config.max_gap_propagation_s)
            if reached is False:
                return False
            if reached:
                if gcrs is None:
                    gcrs = p.filter.fix_gcrs(fix)
                p.filter.update_own_fix(fix, gcrs=gcrs)
                p.hyp.own_fix(fix, gcrs)
                self._applied(p, t, seq)
        return True

    def _process_peer(self, pid: int, fix: GpsFix, seq: int, budget: admission.Budget) -> bool:
        t = fix.t_gps_s
        p = self.peers[pid]
        f = p.filter
        self._gap_check(p, t)
        if not f.initialized or f.needs_reinit or p.gap_reset:
            own = self.last_own_fix
            if own is None or t - own.t_gps_s > self.filter_config.max_init_pair_gap_s or t < own.t_gps_s:
                return True
            p.start_from_fixes(own, fix)
            self._applied(p, t, seq)
            return True
        if t < admission.epoch(f) - 1e-6:
            p.n_fixes_late += 1
            return True
        reached = p.reach(t, seq, budget, self.config.max_gap_propagation_s)
        if reached:
            f.update_peer_fix(fix)
            self._applied(p, t, seq)
        return reached is not False

    def _process_range(
        self, t: float, pid: int, range_m: float, seq: int, budget: admission.Budget, out: list[Output]
    ) -> bool:
        p = self.peers[pid]
        done = p.range(t, range_m, seq, budget, self.config.max_gap_propagation_s, self.range_only, self.last_own_fix)
        if p.last_seq == seq:  # applied (PeerTrack.applied)
            self.t_meas_done_gps_s = max(self.t_meas_done_gps_s, t)
        self._take_notes(p, out)
        return done

    def _take_notes(self, p: PeerTrack, out: list[Output]) -> None:
        for code, text in p.notes:
            out.append(note(code, text, p.peer_id))
        p.notes.clear()

    # ------------------------------------------------------------------ outputs
    def _output_all(self, t_gps_s: float, t_sc_s: float, out: list[Output], seq: int) -> bool:
        for p in self.peers.values():
            f = p.filter
            if not f.initialized or p.gap_reset or p.last_seq == seq:
                continue
            if admission.gap_needs_reinit(p.t_reached, t_gps_s, self.config.max_gap_propagation_s):
                self.n_gap_skipped += 1  # no estimate invented across the gap
                continue
            p.last_seq = seq
            if t_gps_s > admission.epoch(f):
                p.outputs.defer(p.hyp, t_gps_s, t_sc_s)  # published when the filter's next step passes it
                continue
            self._publish_ready(p, out)  # what is older goes first
            if p.outputs.publish_now(p.hyp, t_sc_s, self.batch_ended):
                out.append(("formation_estimate", self._body(p, f, t_sc_s, False)))
        return True

    def _publish_ready(self, p: PeerTrack, out: list[Output], limit: int | None = None) -> None:
        """Publish up to *limit* (all: None) of *p*'s ready estimates, oldest first."""
        for r in p.outputs.take_ready(limit, self.batch_ended):
            out.append(self._ready_estimate(p, r))

    def _publish_held(self, p: PeerTrack, out: list[Output]) -> None:
        """Publish *p*'s newest left-out estimate (at batch_end; everything after is newer)."""
        for r in p.outputs.take_held():
            out.append(self._ready_estimate(p, r))

    def flush_held(self) -> list[Output]:
        out: list[Output] = []
        for p in self.peers.values():
            self._publish_held(p, out)
        return out

    def _ready_estimate(self, p: PeerTrack, r: Ready) -> Output:
        f = r.main[0]
        return (
            "formation_estimate",
            self._estimate_body(
                p, f, r.estimates(self.range_only), r.weights, r.t_sc_s, False, r.acquisition, r.lost_range_m
            ),
        )

    def _body(
        self,
        p: PeerTrack,
        f: FormationFilter,
        t_sc_s: float,
        propagated: bool,
        alts: list | None = None,
        w: tuple | None = None,
    ) -> dict:
        """The estimate of *p* from the filter *f* and, range-only, its alternatives' filters
        *alts* at the same time with the weights *w* of that time (None: *p*'s alternatives
        now, brought to *f*'s time)."""
        if alts is None and p.alts:
            alts, w = p.hyp.alternatives_at(admission.epoch(f)), p.hyp.weights()
        ests = [(f.x, reported_block(f.p))]
        if alts and self.range_only:
            ests += [(g.x, reported_block(g.p)) for g in alts]
        return self._estimate_body(p, f, ests, w, t_sc_s, propagated, acquisition(p.hyp), p.hyp.lost_range_m)

    def _estimate_body(
        self,
        p: PeerTrack,
        f: FormationFilter,
        ests: list,
        w: tuple | None,
        t_sc_s: float,
        propagated: bool,
        acq: tuple | None,
        lost_range_m: float | None,
    ) -> dict:
        """The ``formation_estimate`` body of *p* (:func:`.formation_estimate.estimate_body`), counted."""
        body = estimate_body(
            p,
            f,
            ests,
            w,
            t_sc_s,
            propagated,
            acq,
            lost_range_m=lost_range_m,
            range_only=self.range_only,
            clock=self.clock,
            config=self.config,
            filter_config=self.filter_config,
        )
        p.n_outputs += 1
        self.n_outputs += 1
        return body

    def propagate_to_sc(self, t_sc_s: float, budget_s: float = math.inf) -> list[Output]:
        """Estimates propagated toward spacecraft time *t_sc_s* (``propagated``).

        Each peer's cursor (:class:`~.now_cursor.NowCursor`) advances toward the target,
        peers in turn, until it is reached or ``time.perf_counter()`` passes the call's
        start + *budget_s* (every cursor advances at least one step per call); the estimate
        is published at the epoch reached (its ``t_sc_s`` from the clock map unless the
        target was reached), and the next call goes on from there.  Never beyond
        ``Config.max_propagation_s`` after the peer's last measurement.
        """
        budget = admission.Budget(budget_s)
        out: list[Output] = []
        if self.clock is None:
            return out
        t_target = admission.gps_from_own_clock(self.clock, t_sc_s)
        if t_target is None:
            self.n_time_outliers += 1
            return out
        if self.batch_ended and self.order and not self._release(self.order.t_flush_gps_s, out, budget, final=True):
            return out  # events held back by a handler's budget come first
        for p in self.peers.values():
            p.flush_outputs(math.inf)
            self._publish_ready(p, out)
        for p in self.peers.values():  # a window fit under way: one more step per call
            if p.hyp.window is not None and p.hyp.window.job is not None:
                p.step_fit()
                self._take_notes(p, out)
        moving = []
        for p in self.peers.values():
            if not p.filter.initialized or p.gap_reset:
                continue
            target = t_target
            horizon = p.t_meas_gps_s + self.config.max_propagation_s
            if target > horizon:
                target = horizon
                if "propagation_horizon" not in self.notes_sent:
                    self.notes_sent.add("propagation_horizon")
                    out.append(
                        note(
                            "propagation_horizon",
                            f"not propagated beyond {self.config.max_propagation_s:.0f} s after the last measurement",
                        )
                    )
            p.cursor.aim(p.hyp, target)
            moving.append(p)
        now_cursor.advance([p.cursor for p in moving], budget)
        for p in moving:
            new = p.cursor.take_new()
            if new is not None:
                c, alts = new
                out.append(("formation_estimate", self._body(p, c, float(t_sc_s), True, alts=alts, w=p.hyp.weights())))
        return out

    def counters(self) -> dict:
        ps = self.peers.values()
        fs = [p.filter for p in ps]
        return {
            "peers": sum(f.initialized for f in fs),
            "outputs": self.n_outputs,
            "own_fixes_valid": self.n_own_valid,
            "own_fixes_invalid": self.n_own_invalid,
            "peer_fixes_anonymous": self.n_peer_fix_anonymous,
            "peer_fixes_used": sum(f.n_peer_used for f in fs),
            "peer_fixes_rejected": sum(f.n_peer_rejected for f in fs),
            "peer_fixes_invalid": sum(p.n_fixes - p.n_fixes_valid for p in ps),
            "peer_fixes_late": sum(p.n_fixes_late for p in ps),
            "ranges_used": sum(f.n_ranges_used for f in fs),
            "ranges_rejected": sum(f.n_ranges_rejected for f in fs),
            "ranges_invalid": sum(p.n_ranges_invalid for p in ps),
            "ranges_before_init": sum(p.n_ranges_before_init for p in ps),
            "range_only_starts": sum(p.hyp.n_starts for p in ps),
            "ranges_fitted": sum(p.hyp.n_ranges_fitted for p in ps),
            "range_only_restarts": sum(p.hyp.n_restarts for p in ps),
            "range_only_extensions": sum(p.hyp.n_extensions for p in ps),
            "range_only_point_mirrors": sum(p.hyp.n_mirrors_taken_up for p in ps),
            "range_only_alternatives": sum(len(p.alts) for p in ps),
            "ranges_acquiring": sum(len(p.hyp.window.range_m) for p in ps if p.hyp.window is not None),
            "reinit": sum(f.n_reinit for f in fs),
            "bias_resets": sum(f.n_bias_resets for f in fs),
            "unknown_peer_msgs": self.n_unknown_msgs,
            "other_part_msgs": self.n_other_part_msgs,
            "no_clock": self.n_no_clock,
            "pending": len(self.order),
            "hold_s": round(self.order.hold_s, 1),
            "stale": self.order.n_stale + sum(p.outputs.n_stale for p in ps),
            "time_outliers": self.n_time_outliers,
            "budget_deferred": self.n_budget_deferred,
            "gap_reinit": self.n_gap_reinit,
            "gap_skipped": self.n_gap_skipped + sum(p.n_gap_skipped + p.outputs.n_skipped for p in ps),
            "outputs_decimated": sum(p.outputs.n_decimated for p in ps),
        }
