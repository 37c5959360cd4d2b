"""Formation processor: own and peer GPS fixes and ranges in, relative state per peer out.

One :class:`pygnc.estimation.formation_filter.FormationFilter` per peer (own orbit +
relative state + range bias; own fixes are used by every peer's filter); range-only, also
one per other orbit the partner may fly - its prior's mirror image, the other minima and
mirror images its acquisition window fitted about as well - until the ranges or the prior
decide between them (:class:`pygnc.estimation.range_only.PartnerHypotheses`).

Inputs
* ``clock_map``: own spacecraft clock -> GPS time (sensor samples and range packets carry
  only the own spacecraft clock).
* ``gps_fix`` with ``peer_id`` 0: own fix; ``peer_id`` > 0: the peer's fix from a range
  file.  A fix's GPS time is authoritative.  An invalid fix is counted, never used.
* ``range``: measured range to ``peer_id`` at own spacecraft time ``t_sc_s``; packets
  without the valid flag are counted and dropped.
* ``sensor``: a ``formation_estimate`` is due for every initialised peer at the sample's
  time.  It is not a propagation step: the estimate waits (``_Peer.outs``) until the
  filter's step to the next measurement passes its time and is interpolated inside that
  step (:meth:`FormationFilter.tap`) - a day's 5-s outputs would otherwise triple the
  filter's steps (and the range-only alternatives').  An estimate that has waited
  :data:`OUTPUT_DEFER_MAX_S` of stream, or is still waiting when the filter is about to be
  re-initialised or replaced, at the batch's end or before propagating to now, is
  predicted to instead; either way estimates go out per peer in time order.
* ``batch_end``: everything still held is processed; notes are issued (below).

Decimation (``Config.batch_decimate_estimates``, on by default; :class:`admission.BatchDecimation`).
During a batch the processor publishes, per peer, only what the host and the downlink use:
the first estimate in each bin of the batch writer's formation period
(``Config.batch_period_s`` "formation", default 60 s; the writer's own bins, so it records
exactly what it recorded before) and the newest one before ``batch_end`` (held, published
at ``batch_end`` or at stop: :meth:`flush_held`); everything after ``batch_end`` -
the batch's last hold of samples, the live stream, propagation to now - goes out in full.
The filters are stepped exactly as without it (taps never step a filter); a left-out
estimate costs no interpolation, no message body and nothing in the sinks (counter
``outputs_decimated``).  Off: an estimate at every sensor sample (ground replays).

Partners in two processes (``Config.formation_split``, on by default).  The partners'
filters share nothing but the own fixes, and on a 24-h batch this processor is the
critical path of the process tree; so two processes run it (tasks ``formation_estimator``
and ``formation_estimator_2``, channels ``formation`` and ``formation_2``), each with
``part`` (k, 2): the known partners, in the order they first appear in the stream (which
every process sees in the same order), go to the processes in turn - the 1st, 3rd ... to
part 0, the 2nd, 4th ... to part 1 - and each process ignores the others' (counter
``other_part_msgs``).  The batch-wide notes (``unknown_peer``, ``no_range_data``,
``no_own_fix``) come from part 0 only.  A partner's estimates are the same as from one
process to ~1e-4 m (the own steps two partners' filters share in one process are
first-order carries of a full propagation: :func:`pygnc.estimation.formation_filter.own_step`;
tests/test_formation_processor.py).

Time order.  Ingest merges messages by spacecraft time, but a peer fix is stamped with the
**peer's** clock, which may be tens of seconds (or years, if unset) off the own clock, so
peer fixes arrive early or late relative to the own measurements of the same instant.
Every event is therefore held in a GPS-time-ordered queue and processed only once the
stream (own-clock messages mapped to GPS time) has moved ``hold`` seconds past it:
``hold`` = max(``Config.formation_hold_s``, the largest peer-fix lateness seen so far + 5
s), capped at ``Config.formation_max_hold_s``.  Outputs are thus computed with every
measurement up to their own time and published in time order, ``hold`` seconds of
stream behind; ``batch_end`` flushes the queue.  A peer fix that still arrives after the
filter has passed its time is dropped, counted, and reported once per peer
(``peer_fix_late``).

A peer's filter starts at its first valid fix that has a valid own fix at most
``max_init_pair_gap_s`` (60 s) before it; outputs for it begin there.

Notes (``estimator_note``, estimator ``formation``), never fatal:
* ``unknown_peer``: a fix or range names an id not in ``Config.formation_peer_ids``
  (once per id; its data are ignored);
* ``no_range_data``: the batch has no peer fix and no range (missing/empty range files);
* ``peer_no_valid_fix``: a peer was heard (fixes or ranges) but sent no valid fix, so no
  estimate exists for it;
* ``peer_not_initialized``: a peer sent valid fixes but never near a valid own fix;
* ``no_own_fix``: no valid own fix, so no relative state at all;
* ``peer_fix_late``: see above.

Replay.  A restarted ingest replays the whole stream: an event at or before the time
already processed (own fix, range, sensor sample), a peer fix not newer (peer clock) than
one already received from that peer, or a duplicate of an event still held, is dropped and
counted (``stale``); outputs per peer strictly increase in epoch, so a replay publishes
nothing again and changes no other counter.

Admission (the shared policy, :mod:`pygnc.processors.admission`).  An own fix whose GPS
time disagrees with its clock-mapped stamp, a sample or range more than
``Config.max_propagation_s`` after the last measurement, and a peer fix more than
``Config.formation_max_hold_s`` beyond the newest own-clock time are corrupt times:
skipped and counted (``time_outliers``), they neither advance the stream nor make a filter
propagate.  A filter is not propagated across more than ``Config.max_gap_propagation_s``
to reach an event: an own or peer fix after such a gap re-initialises the peer's filter
from the next pair (``gap_reinit``), a range or sample is skipped for that peer
(``gap_skipped``).  Every handler call predicts within ``Config.handler_budget_s``:
events it cannot finish stay queued and the next call (or :meth:`propagate_to_sc`) goes
on from there (``budget_deferred``).

:meth:`propagate_to_sc` advances a persistent per-peer copy of the filter (the cursor,
re-seeded only when the filter has changed) toward "now" within a CPU budget, peers in
turn, and publishes the epoch reached (``propagated``); later calls go on from there.  Not
beyond ``Config.max_propagation_s`` after the peer's last measurement (one
``propagation_horizon`` note).

Accuracy (``bench/bench_formation.py``: 8 seeded 3-h simulator scenarios, ~3 km apart, GPS
10 m / 0.01 m/s per axis on each spacecraft, ranges sigma 0.5 m with a 1-m bias; after 30
min): relative position 0.97 m 3D RMS median, worst 1.34 m (differencing the fixes: ~24
m); line of sight 0.37 m median, worst 0.80 m - 6 of 8 seeds within 0.5 m; velocity 1.1
mm/s; NEES (3 dof) 2.1 on average (slightly conservative).  That line of sight is the
information bound's: the optimal filter with the truth's exact dynamics gets 0.34 m
median, worst 0.82 m on the same data.  A constant range bias and the mean along-track
separation look alike to the ranges, so only the GPS fixes separate them (10 m /
sqrt(n): 1.05 m after 30 min, 0.45 m after 3 h), and a run's line-of-sight RMS is <= 0.5
m in only ~53 % of runs for any estimator (see the filter's module docstring).  With the
bias known to 0.3 m (``[formation_filter]`` ``range_bias_prior_m`` / ``range_bias_sigma_m``, from earlier
batches) every seed is within 0.33 m.  10 km apart: the same figures.  Cost: ~0.45 ms per
5-s step per peer (3-h batch in ~1 s per peer) before estimates were interpolated between
measurements; the 24-h range-only batch of two partners now takes ~31 s of CPU (65-74 s
before).  Re-measured with the truth propagated by
brahe (seeds 1-3): 3D 0.97 / 1.35 / 0.98 m, line of sight 0.34 / 0.40 / 0.45 m (bound
0.31 / 0.36 / 0.45 m), velocity ~1 mm/s, NEES mean 2.8.
"""

from __future__ import annotations

import copy
import dataclasses
import heapq
import math
from collections import deque

import numpy as np

from ..config import Config, filter_tunables
from ..estimation.formation_filter import (
    I_DRAG_SCALE,
    I_R_OWN,
    I_RANGE_BIAS,
    I_RANGE_DT,
    I_REPORTED,
    I_V_OWN,
    FormationFilter,
    FormationFilterConfig,
    ecef_jacobian,
    line_of_sight_sigma,
    reported_block,
    rtn_matrix,
    rtn_to_gcrs,
)
from ..estimation.orbit_ekf import OrbitFilterConfig
from ..estimation.range_only import (
    AMBIGUITY_MIN_WEIGHT,
    MIRROR_D2,
    PRIOR_RANGE_GATE,
    PartnerHypotheses,
    PriorCarry,
    RangeOnlyConfig,
    absolute_prior,
    mix,
    reflected,
    rtn_covariance_to_gcrs,
    same_orbit,
)
from ..timebase import ClockMap, utc_unix_from_gps
from . import Output, Processor, admission, clock_map_from_body

_OWN, _PEER, _RANGE, _OUT = 0, 1, 2, 3
#: Margin added to the largest peer-fix lateness seen [s].
HOLD_MARGIN_S = 5.0
#: Propagation step of a cursor between budget checks [s] (6 filter steps, ~1-3 ms).
PROPAGATION_CHUNK_S = 30.0
#: An output waits for the filter's propagation to the next measurement to pass it (and is
#: then interpolated, FormationFilter.tap) until the processed stream is this much past it;
#: then the filter is predicted to it [s].
OUTPUT_DEFER_MAX_S = 30.0
#: Interpolated outputs published per peer and handler call: the ~5 a measurement's step
#: passes go out over the next calls (sensor samples, ranges), so the call that steps the
#: filters does not also build every estimate (all are out by the batch's end).
READY_PER_CALL = 2


def filter_config_from(config: Config) -> FormationFilterConfig:
    """The filter's tunables from the flight configuration (``[formation_filter]``, its
    own-orbit model from ``[orbit_filter]``)."""
    f = filter_tunables(FormationFilterConfig, config.formation_filter, "formation_filter")
    return dataclasses.replace(f, orbit=filter_tunables(OrbitFilterConfig, config.orbit_filter, "orbit_filter"))


def range_only_config_from(config: Config) -> RangeOnlyConfig:
    """The range-only tunables from the flight configuration (``[range_only]``)."""
    return filter_tunables(RangeOnlyConfig, config.range_only, "range_only")


def _prior_agrees(x_rel: np.ndarray, rel_cov: np.ndarray, range_m: float, fc: FormationFilterConfig) -> bool:
    """A prior's relative state *x_rel* (6,) with covariance *rel_cov* agrees with a
    measured range: the predicted range (plus the bias prior) within sqrt(PRIOR_RANGE_GATE)
    sigmas of it."""
    rho = float(np.linalg.norm(x_rel[:3]))
    if not rho > 0.0:
        return True
    u = x_rel[:3] / rho
    s = float(u @ rel_cov[:3, :3] @ u) + fc.range_sigma_m ** 2 + fc.range_bias_sigma_m ** 2
    nu = range_m - rho - fc.range_bias_prior_m
    return nu * nu <= PRIOR_RANGE_GATE * s


class _Peer:
    """Bookkeeping of one known peer: its hypotheses (the filter and, range-only, the other
    orbits it may fly), the cursors propagated to "now", outputs waiting for the filter."""

    def __init__(self, peer_id: int, filter_config: FormationFilterConfig, range_only: RangeOnlyConfig):
        self.peer_id = peer_id
        self.hyp = PartnerHypotheses(filter_config, range_only, peer_id)
        #: the configured prior being carried to the first range (_start_range_only)
        self.start_carry: PriorCarry | None = None
        self.cursor: FormationFilter | None = None
        self.version = 0  # bumped whenever the filter changes
        #: the alternatives' cursors; None: the alternative is the mirror image of the filter
        #: in the own orbit plane, taken from the cursor itself (see propagate_to_sc)
        self.cursor_alts: list[FormationFilter | None] = []
        self.cursor_version = -1  # the filter version the cursor was copied from
        self.t_meas_gps_s = -math.inf  # last measurement applied to the filter
        self.t_last_out_gps_s = -math.inf  # epoch of the last (non-propagated) output
        self.t_last_prop_gps_s = -math.inf  # epoch of the last propagated output
        self.heard = False
        self.n_fixes = 0
        self.n_fixes_valid = 0
        self.n_fixes_late = 0
        self.n_ranges_invalid = 0
        self.n_ranges_before_init = 0
        self.n_outputs = 0
        self.late_noted = False
        self.gap_reset = False  # a gap beyond max_gap_propagation_s: re-initialise from the next pair
        self.last_seq = -1  # sequence number of the last queued event applied to this peer
        #: outputs waiting for the filter to pass their time: (t_gps_s, t_sc_s), ascending
        self.outs: list[tuple[float, float]] = []
        #: ... passed, with their states, to publish: (t_sc_s, filter at t, other side at t
        #: or None, side weight), ascending
        self.ready: deque = deque()
        #: decimation (admission.BatchDecimation): the newest left-out entry of ready,
        #: published at batch_end or at stop
        self.held: tuple | None = None

    @property
    def filter(self) -> FormationFilter:
        """The most likely orbit's filter."""
        return self.hyp.filter

    @property
    def alts(self):
        return self.hyp.alts


class FormationProcessor(Processor):
    consumes = frozenset({"clock_map", "gps_fix", "range", "sensor", "batch_end"})

    def __init__(self, config: Config | None = None, filter_config: FormationFilterConfig | None = None,
                 part: tuple[int, int] = (0, 1)):
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
        self.peers: dict[int, _Peer] = {}
        self.own_steps: dict = {}  # the own orbit's steps its filters share (formation_filter.own_step)
        self.clock: ClockMap | None = None
        self.queue: list[tuple] = []
        self.seq = 0
        self.t_stream_gps_s = -math.inf
        self.t_done_gps_s = -math.inf  # events up to here have been processed
        self.max_lateness_s = 0.0
        self.pending: set[tuple] = set()  # keys of the events held in the queue
        self.peer_sc_seen: dict[int, float] = {}  # newest peer-clock stamp of a fix, per id
        self.anonymous_seen: set[tuple] = set()  # (t_sc_s, t_gps_s) of fixes without a peer id
        self.t_meas_rx_gps_s = -math.inf  # newest own fix / range received
        self.t_meas_done_gps_s = -math.inf  # newest measurement processed
        self.n_stale = 0
        self.n_time_outliers = 0
        self.n_budget_deferred = 0
        self.n_gap_reinit = 0
        self.n_gap_skipped = 0
        self.last_own_fix: tuple | None = None  # (t_gps_s, (pos, vel, pos_sigma, vel_sigma))
        self.unknown_ids: set[int] = set()
        self.n_unknown_msgs = 0
        self.n_own_valid = 0
        self.n_own_invalid = 0
        self.n_peer_fix_anonymous = 0
        self.n_no_clock = 0
        self.n_outputs = 0
        self.n_outputs_decimated = 0
        self.decimation = admission.BatchDecimation(c, "formation")
        self.batch_ended = False
        self.notes_sent: set[str] = set()
        self._out: list | None = None  # where a hypotheses' change flushes estimates (see _hypotheses)

    # ------------------------------------------------------------------ helpers
    @property
    def hold_s(self) -> float:
        c = self.config
        return min(c.formation_max_hold_s, max(c.formation_hold_s, self.max_lateness_s + HOLD_MARGIN_S))

    def _peer(self, peer_id: int, out: list[Output]) -> _Peer | None:
        """The known peer *peer_id*, or None (an unknown id is reported once)."""
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
                    out.append(_note("unknown_peer", f"peer id 0x{peer_id:02X} is not in formation_peer_ids: "
                                                     "its fixes and ranges are ignored"))
            return None
        self.appeared.append(peer_id)
        if (len(self.appeared) - 1) % self.n_parts != self.part:
            self.other_part_ids.add(peer_id)  # another formation process's partner
            self.n_other_part_msgs += 1
            return None
        p = self.peers[peer_id] = _Peer(peer_id, self.filter_config, self.range_only_config)
        p.filter.own_steps = self.own_steps

        def changing(p=p):  # the hypotheses are about to change: what waits on them goes first
            self._flush_outputs(p, math.inf, self._out)
            p.version += 1

        p.hyp.on_change = changing
        return p

    def _push(self, t_gps_s: float, kind: int, payload, key: tuple) -> None:
        self.seq += 1
        self.pending.add(key)
        heapq.heappush(self.queue, (t_gps_s, kind, self.seq, payload, key))

    def _stale(self, t_gps_s: float, key: tuple | None = None) -> bool:
        """True (and counted) for an event at or before the time processed, or already held."""
        if t_gps_s <= self.t_done_gps_s or (key is not None and key in self.pending):
            self.n_stale += 1
            return True
        return False

    def _advance_stream(self, t_gps_s: float) -> None:
        self.t_stream_gps_s = max(self.t_stream_gps_s, t_gps_s)

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
            if self.clock is None:
                self.n_no_clock += 1
            else:
                t = admission.gps_from_own_clock(self.clock, body["t_sc_s"])
                if t is None or not admission.within_horizon(t, self.t_meas_rx_gps_s, self.config.max_propagation_s):
                    self.n_time_outliers += 1  # absurdly far ahead of the data: a corrupt stamp
                elif not self._stale(t, (t, _OUT)):
                    self._push(t, _OUT, float(body["t_sc_s"]), (t, _OUT))
                    if math.isfinite(self.t_meas_rx_gps_s):
                        self._advance_stream(t)
                    # else: nothing measured yet to judge it by: held, but it does not move the stream.
        elif msg_type == "batch_end":
            self.batch_ended = True
            for p in self.peers.values():  # the newest left out (older than all still to come)
                self._publish_held(p, out)
            if self._release(self._flush_limit(), out, self._budget(), final=True):
                for p in self.peers.values():
                    self._flush_outputs(p, math.inf, out)
                    self._publish_ready(p, out)
            for p in self.peers.values():  # windows the batch ended in: fit what they hold
                if p.hyp.window is not None and not self.queue:
                    # started from, converged or not: not held back for more; finished by the
                    # propagation after the batch
                    self._hypotheses(p, out, p.hyp.finish_window)
            self._batch_notes(body, out)
            return out
        self._release(self.t_stream_gps_s - self.hold_s, out, self._budget())
        for p in self.peers.values():
            if p.ready:
                self._publish_ready(p, out, READY_PER_CALL)
        return out

    def _budget(self) -> admission.Budget:
        return admission.Budget(self.config.handler_budget_s)

    def _flush_limit(self) -> float:
        """After batch_end: everything up to the newest own-clock time + the longest hold
        (a peer fix further ahead is a corrupt time, counted when it is reached)."""
        return self.t_stream_gps_s + self.config.formation_max_hold_s

    def _on_fix(self, b: dict, out: list[Output]) -> None:
        pid = int(b["peer_id"])
        t = float(b["t_gps_s"])
        if pid == 0 and bool(b["valid"]) and not admission.own_fix_time_ok(
                self.clock, t, b["t_sc_s"], self.config.fix_time_tolerance_s):
            self.n_time_outliers += 1  # its week/ms disagrees with its stamp: a corrupt time
            return
        fix = (np.asarray(b["pos_ecef_m"], float), np.asarray(b["vel_ecef_m_s"], float),
               np.asarray(b["pos_sigma_m"], float), np.asarray(b["vel_sigma_m_s"], float))
        valid = bool(b["valid"]) and math.isfinite(t) and admission.fix_plausible(self.config, fix[0], fix[1])
        if pid == 0:
            t_key = t
            if not valid and self.clock is not None:
                t_key = float(self.clock.gps_from_sc(float(b["t_sc_s"])))  # its own GPS time may be garbage
            if math.isfinite(t_key) and self._stale(t_key, (t_key, _OWN) if valid else None):
                return
            if not valid:
                self.n_own_invalid += 1
                return
            self.n_own_valid += 1
            self.t_meas_rx_gps_s = max(self.t_meas_rx_gps_s, t)
            self._push(t, _OWN, fix, (t, _OWN))
            self._advance_stream(t)
            return
        t_peer_sc = float(b["t_sc_s"])
        if pid < 0:  # a peer fix whose group had no ranges: whose it is, is unknown
            if (t_peer_sc, t) in self.anonymous_seen:
                self.n_stale += 1
                return
            self.anonymous_seen.add((t_peer_sc, t))
            self.n_peer_fix_anonymous += 1
            return
        # A peer's fixes come in its clock's order: one not newer than the newest already
        # received from that id is a replay.
        if t_peer_sc <= self.peer_sc_seen.get(pid, -math.inf):
            self.n_stale += 1
            return
        self.peer_sc_seen[pid] = t_peer_sc
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
            lateness = float(self.clock.gps_from_sc(float(b["t_sc_s"]))) - t
            self.max_lateness_s = max(self.max_lateness_s, lateness)
        if t < self.t_done_gps_s:
            p.n_fixes_late += 1
            if not p.late_noted:
                p.late_noted = True
                out.append(_note("peer_fix_late", f"peer 0x{pid:02X}: fix arrived {self.t_done_gps_s - t:.0f} s "
                                                  "after the filter passed its time (peer clock ahead?): dropped"))
            return
        if (t, _PEER, pid) in self.pending:
            self.n_stale += 1
            return
        self._push(t, _PEER, (pid, fix), (t, _PEER, pid))

    def _on_range(self, b: dict, out: list[Output]) -> None:
        pid = int(b["peer_id"])
        t = admission.gps_from_own_clock(self.clock, b["t_sc_s"])
        valid = bool(b["valid"]) and admission.range_plausible(self.config, b["range_m"])
        if valid and t is not None and not admission.within_horizon(t, self.t_meas_rx_gps_s,
                                                                      self.config.max_propagation_s):
            self.n_time_outliers += 1  # absurdly far ahead of the data: a corrupt stamp
            return
        if t is not None and self._stale(t, (t, _RANGE, pid) if valid else None):
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
        self._advance_stream(t)
        self._push(t, _RANGE, (pid, float(b["range_m"])), (t, _RANGE, pid))

    # ------------------------------------------------------------------ event processing
    def _release(self, t_until_gps_s: float, out: list[Output], budget: admission.Budget,
                 final: bool = False) -> bool:
        """Process held events up to *t_until_gps_s* while *budget* lasts; False if some
        are left for a later call (the event under way is put back and resumed).  *final*
        (the flush after batch_end): events beyond *t_until_gps_s* are corrupt times, dropped."""
        q = self.queue
        while q and q[0][0] <= t_until_gps_s:
            if budget.spent():
                self.n_budget_deferred += 1
                return False
            event = heapq.heappop(q)
            t, kind, seq, payload, key = event
            self.pending.discard(key)
            self.t_done_gps_s = max(self.t_done_gps_s, t)
            for p in self.peers.values():
                if p.outs and p.outs[0][0] < t - OUTPUT_DEFER_MAX_S:
                    self._flush_outputs(p, t - OUTPUT_DEFER_MAX_S, out)
            if kind == _OWN:
                done = self._process_own(t, payload, seq, budget, out)
            elif kind == _PEER:
                done = self._process_peer(t, *payload, seq, budget, out)
            elif kind == _RANGE:
                done = self._process_range(t, *payload, seq, budget, out)
            elif math.isfinite(self.t_meas_done_gps_s) and \
                    t > self.t_meas_done_gps_s + self.config.max_propagation_s:
                self.n_time_outliers += 1  # held before any measurement, and far beyond them
                done = True
            else:
                done = self._output_all(t, payload, out, seq, budget)
            if not done:  # out of budget part-way: resume this event next call
                heapq.heappush(q, event)
                self.pending.add(key)
                self.n_budget_deferred += 1
                return False
        if final:
            # What is left after the flush is beyond the own data: corrupt peer-fix times.
            while q and q[0][0] > t_until_gps_s:
                _, _, _, _, key = heapq.heappop(q)
                self.pending.discard(key)
                self.n_time_outliers += 1
        return True

    @staticmethod
    def _t_reached(p: _Peer) -> float:
        """The time *p*'s estimates have reached: its filter's, or its last waiting output's."""
        return p.outs[-1][0] if p.outs else p.filter.t_gps_s

    def _reach(self, p: _Peer, t: float, seq: int, budget: admission.Budget, out: list[Output],
               t_to: float | None = None) -> bool | None:
        """Predict *p*'s filter to *t* (or to *t_to* <= *t*: a range applied ahead of the
        filter time, FormationFilter.range_base_time) for the event *seq* and publish the
        outputs it passed: True when there, None when this event must skip the peer (not
        initialised, already applied, older than the filter, or beyond the gap limit),
        False when the budget ran out on the way."""
        f = p.filter
        if not f.initialized or p.gap_reset or p.last_seq == seq or t < f.t_gps_s - 1e-6:
            return None
        if admission.gap_needs_reinit(self._t_reached(p), t, self.config.max_gap_propagation_s):
            return None
        if not admission.predict_within(f, t if t_to is None else t_to, budget):
            p.version += 1
            return False
        if not admission.finite(f.x, f.p):  # never carry a non-finite state on
            self._drop_outputs(p)
            p.gap_reset = True
            return None
        self._emit_outputs(p, out)
        return True

    # ------------------------------------------------------------------ outputs between measurements
    def _emit_outputs(self, p: _Peer, out: list[Output]) -> None:
        """Take *p*'s waiting outputs that its filter has passed (interpolated within the
        steps, FormationFilter.tap; the range-only alternatives brought to the same time) into
        its ready queue, with the side weight of their time; published by
        :meth:`_publish_ready`."""
        if not p.outs:
            return
        f = p.filter
        for h in p.alts:
            if h.filter.t_gps_s < f.t_gps_s - 1e-9:
                h.filter.predict_to(f.t_gps_s)
        w = p.hyp.weights()
        while p.outs and p.outs[0][0] <= f.t_gps_s + 1e-6:
            t_o, t_sc = p.outs.pop(0)
            g = _taken_at(f, t_o)
            if g is None:  # cannot happen: every waiting output is tapped
                self.n_gap_skipped += 1
                continue
            if t_o <= p.t_last_out_gps_s:
                self.n_stale += 1  # published already (a replay)
                continue
            p.t_last_out_gps_s = t_o
            p.ready.append((t_sc, g, [_taken_at(h.filter, t_o) for h in p.alts], w, _acquisition(p)))

    def _publish_ready(self, p: _Peer, out: list[Output], limit: int | None = None, held: bool = False) -> None:
        """Publish up to *limit* (all: None) of *p*'s ready outputs, oldest first (their
        interpolation is done here, see _taken_at); *held*: the first is the held one, never
        left out again."""
        ready = p.ready
        n = len(ready) if limit is None else min(limit, len(ready))
        for _ in range(n):
            item = ready.popleft()
            if not held and self.decimation.left_out(p.peer_id, item[0], self.batch_ended):
                p.held = item
                self.n_outputs_decimated += 1
                continue
            p.held = None
            t_sc, g, alts, w, acq = item
            f, e = g
            ests = [f.tap_estimate(e, f.t_gps_s, reported=True)]
            if self.range_only:
                ests += [h.tap_estimate(eh, h.t_gps_s, reported=True) for h, eh in alts]
            out.append(("formation_estimate", self._estimate_body(p, f, ests, w, t_sc, False, acq)))

    def _flush_outputs(self, p: _Peer, t_until_gps_s: float, out: list[Output]) -> None:
        """Publish *p*'s waiting outputs up to *t_until_gps_s* by predicting its filter to
        each (before the filter is re-initialised or replaced, at the batch's end, before
        propagating to now, or when one has waited OUTPUT_DEFER_MAX_S)."""
        f = p.filter
        while p.outs and p.outs[0][0] <= t_until_gps_s:
            f.predict_to(p.outs[0][0])
            p.version += 1
            if not admission.finite(f.x, f.p):
                self._drop_outputs(p)
                p.gap_reset = True
                return
            self._emit_outputs(p, out)

    def _drop_outputs(self, p: _Peer) -> None:
        self.n_gap_skipped += len(p.outs)
        p.outs.clear()

    def _applied(self, p: _Peer, t: float, seq: int, measurement: bool = True) -> None:
        p.version += 1
        p.last_seq = seq
        if measurement:
            p.t_meas_gps_s = t
            self.t_meas_done_gps_s = max(self.t_meas_done_gps_s, t)

    def _gap_check(self, p: _Peer, t: float, out: list[Output]) -> None:
        """A fix beyond the gap limit: the peer's filter re-initialises from the next pair."""
        f = p.filter
        if f.initialized and not p.gap_reset and t >= f.t_gps_s and \
                admission.gap_needs_reinit(self._t_reached(p), t, self.config.max_gap_propagation_s):
            self._flush_outputs(p, math.inf, out)
            p.gap_reset = True
            self.n_gap_reinit += 1

    def _process_own(self, t: float, fix, seq: int, budget: admission.Budget, out: list[Output]) -> bool:
        self.last_own_fix = (t, fix)
        self.t_meas_done_gps_s = max(self.t_meas_done_gps_s, t)
        gcrs = None  # the fix in GCRS, converted once for every filter (they share the sigma rules)
        for p in self.peers.values():
            self._gap_check(p, t, out)
            if p.filter.initialized and p.filter.needs_reinit:
                continue
            reached = self._reach(p, t, seq, budget, out)
            if reached is False:
                return False
            if reached:
                if gcrs is None:
                    gcrs = p.filter.fix_gcrs(t, *fix)
                p.filter.update_own_fix(t, *fix, gcrs=gcrs)
                p.hyp.own_fix(t, fix, gcrs)
                self._applied(p, t, seq)
        return True

    def _process_peer(self, t: float, pid: int, fix, seq: int, budget: admission.Budget,
                      out: list[Output]) -> bool:
        p = self.peers[pid]
        f = p.filter
        self._gap_check(p, t, out)
        if not f.initialized or f.needs_reinit or p.gap_reset:
            own = self.last_own_fix
            if own is None or t - own[0] > self.filter_config.max_init_pair_gap_s or t < own[0]:
                return True
            if f.initialized:
                self._flush_outputs(p, math.inf, out)
                f.n_reinit += 1
            f.initialize_from_fixes(own[0], *own[1], t, *fix)
            p.gap_reset = False
            f.n_own_used += 1
            f.n_peer_used += 1
            self._applied(p, t, seq)
            return True
        if t < f.t_gps_s - 1e-6:
            p.n_fixes_late += 1
            return True
        reached = self._reach(p, t, seq, budget, out)
        if reached:
            f.update_peer_fix(t, *fix)
            self._applied(p, t, seq)
        return reached is not False

    def _start_range_only(self, p: _Peer, t: float, range_m: float, out: list[Output],
                          budget: admission.Budget) -> bool | None:
        """Range-only start of *p*'s filter at the range time *t* from the configured prior
        (carried to *t*) or from the range itself, opening its acquisition window: True;
        None when no valid own fix lies within ``max_init_pair_gap_s`` before; False when
        *budget* ran out carrying the prior (the next call goes on)."""
        own = self.last_own_fix
        if own is None or t < own[0] or t - own[0] > self.filter_config.max_init_pair_gap_s:
            return None
        f, c, ro = p.filter, self.config, self.range_only_config
        prior = c.formation_peer_priors.get(p.peer_id)
        carried = None
        if prior is not None and prior["frame"] == "ecef":
            age_s = t - prior["t_gps_s"]
            if abs(age_s) > ro.prior_max_age_s:
                self._note_once(out, f"range_only_prior_refused:{p.peer_id}", "range_only_prior_refused",
                                f"peer 0x{p.peer_id:02X}: the configured prior's epoch is {abs(age_s) / 3600.0:.1f} h "
                                f"from the data, more than [range_only] prior_max_age_s "
                                f"({ro.prior_max_age_s / 3600.0:.0f} h): not used")
                prior = None
            else:
                carry = p.start_carry
                if carry is None or carry.t_target != t:
                    carry = p.start_carry = PriorCarry(absolute_prior(
                        prior["t_gps_s"], prior["pos_ecef_m"], prior["vel_ecef_m_s"], prior["sigma_pos_m"],
                        prior["sigma_vel_m_s"], prior["cov_rtn"]), t, f.peer_model)
                if not carry.advance(budget.spent):
                    return False
                carried = carry.result().components[0]
                p.start_carry = None
        if f.initialized:
            self._flush_outputs(p, math.inf, out)
            f.n_reinit += 1
        own_z, own_r = f.own_at(own[0], own[1], t)
        eps = ro.wrong_side_probability
        if prior is not None and prior["wrong_side_probability"] is not None:
            eps = prior["wrong_side_probability"]
        source = f" ({prior['source']})" if prior is not None and prior["source"] else ""
        start = None  # (partner z (6,), relative covariance, how)
        if carried is not None:
            how = f"the configured state of epoch {prior['t_gps_s']:.0f} (GPS s){source}"
            start = (carried.x0, carried.p0 + own_r, how)
        elif prior is not None:
            dr, dv = rtn_to_gcrs(own_z[:3], own_z[3:], prior["dr_rtn_m"], prior["dv_rtn_m_s"])
            if prior["cov_rtn"] is not None:
                rel_cov = rtn_covariance_to_gcrs(prior["cov_rtn"], own_z)
            else:
                sp, sv = prior["sigma_pos_m"], prior["sigma_vel_m_s"]
                rel_cov = np.diag([sp * sp] * 3 + [sv * sv] * 3)
            start = (own_z + np.concatenate((dr, dv)), rel_cov, f"the configured RTN offset{source}")
        if start is not None and not _prior_agrees(start[0] - own_z, start[1], range_m, self.filter_config):
            self._note_once(out, f"range_only_prior_inconsistent:{p.peer_id}", "range_only_prior_inconsistent",
                            f"peer 0x{p.peer_id:02X}: the configured prior puts it "
                            f"{np.linalg.norm(start[0][:3] - own_z[:3]):.0f} m away, the first range says "
                            f"{range_m:.0f} m: prior not used")
            start = None
        if start is not None:
            z, rel_cov, how = start
            others = ((eps, 2.0 * own_z - z, "the prior's point mirror"),) if eps > 0.0 else ()
            main_w, label = 1.0 - eps, "prior"
        else:
            side = ro.placement
            sp, sv = ro.prior_sigma_pos_m, ro.prior_sigma_vel_m_s
            rel_cov = np.diag([sp * sp] * 3 + [sv * sv] * 3)
            ahead, behind = (own_z + np.concatenate(rtn_to_gcrs(own_z[:3], own_z[3:], (0.0, k * range_m, 0.0),
                                                                (0.0, 0.0, 0.0))) for k in (1.0, -1.0))
            if side == "both":
                z, main_w, label = ahead, 0.5, "ahead along-track"
                others = ((0.5, behind, "behind along-track"),)
                how = "its first range, placed ahead and behind along-track"
            else:
                z, other = (ahead, behind) if side == "ahead" else (behind, ahead)
                main_w, label = 1.0 - eps, f"{side} along-track"
                others = ((eps, other, "the other side"),) if eps > 0.0 else ()
                how = f"its first range, placed {side} along-track"
        if start is not None and carried is not None:
            # an absolute state: independent of the own one, so the relative state's
            # covariance is the sum and its correlation with the own state -own_r
            f.initialize(t, own_z, own_r, z, carried.p0)
            f.range_acquired = True
        else:
            f.initialize_relative(t, own_z, own_r, z[:3] - own_z[:3], z[3:] - own_z[3:], rel_cov)
        p.gap_reset = False
        p.hyp.start(t, how, main_w, label, others)
        return True

    def _hypotheses(self, p: _Peer, out: list[Output], call, *args) -> None:
        """Call a method of *p*'s hypotheses: estimates their changes flush go to *out*,
        and so do their notes after it."""
        self._out = out
        try:
            call(*args)
        finally:
            self._out = None
            for code, text in p.hyp.notes:
                out.append(_note(code, text))
            p.hyp.notes.clear()

    def _process_range(self, t: float, pid: int, range_m: float, seq: int, budget: admission.Budget,
                       out: list[Output]) -> bool:
        p = self.peers[pid]
        f = p.filter
        if self.range_only and (not f.initialized or p.gap_reset or f.needs_reinit):
            started = self._start_range_only(p, t, range_m, out, budget)
            if started is None:
                p.n_ranges_before_init += 1
                return True
            if started is False:
                return False  # the prior is being carried to the data: resumed next call
            self._applied(p, t, seq)
            self._hypotheses(p, out, p.hyp.add_window_range, t, range_m)
            return True
        if not f.initialized or p.gap_reset:
            p.n_ranges_before_init += 1
            return True
        if admission.gap_needs_reinit(f.t_gps_s, t, self.config.max_gap_propagation_s):
            self.n_gap_skipped += 1
            return True
        # Outside an acquisition window a range close ahead of the filter is applied there,
        # carried to its time in closed form: the filter steps between own fixes only.
        t_to = t if p.hyp.window is not None else f.range_base_time(t)
        reached = self._reach(p, t, seq, budget, out, t_to)
        if reached:
            if p.hyp.window is not None:
                self._hypotheses(p, out, p.hyp.add_window_range, t, range_m)
            elif p.hyp.carry is not None:  # a restart waits for its prior, carried to the data
                p.hyp.carry.retarget(t)
                if not p.hyp.carry.advance(budget.spent):
                    return False
                self._hypotheses(p, out, p.hyp.open_restart_window, t, range_m)
            else:
                f.update_range(t, range_m)
                if p.alts:
                    self._hypotheses(p, out, p.hyp.range_on_alternatives, t, range_m)
                if self.range_only and not p.filter.range_acquired:
                    self._hypotheses(p, out, p.hyp.lose, t)
                    if p.hyp.carry.advance(budget.spent):
                        self._hypotheses(p, out, p.hyp.open_restart_window, t, range_m)
            self._applied(p, t, seq)
        return reached is not False

    # ------------------------------------------------------------------ outputs
    def _output_all(self, t_gps_s: float, t_sc_s: float, out: list[Output], seq: int,
                    budget: admission.Budget) -> bool:
        for p in self.peers.values():
            f = p.filter
            if not f.initialized or p.gap_reset or p.last_seq == seq:
                continue
            if admission.gap_needs_reinit(self._t_reached(p), t_gps_s, self.config.max_gap_propagation_s):
                self.n_gap_skipped += 1  # no estimate invented across the gap
                continue
            p.last_seq = seq
            if t_gps_s > f.t_gps_s:
                # Published when the filter's next propagation passes it (interpolated).
                f.tap(t_gps_s)
                for h in p.alts:
                    if h.filter.t_gps_s < t_gps_s:
                        h.filter.tap(t_gps_s)
                p.outs.append((t_gps_s, t_sc_s))
                continue
            self._publish_ready(p, out)  # what is older goes first
            if f.t_gps_s <= p.t_last_out_gps_s:
                self.n_stale += 1  # published already (a replay)
                continue
            p.t_last_out_gps_s = f.t_gps_s
            if self.decimation.left_out(p.peer_id, t_sc_s, self.batch_ended) and self._hold_now(p, t_sc_s):
                continue
            p.held = None
            out.append(("formation_estimate", self._body(p, f, t_sc_s, False)))
        return True

    def _hold_now(self, p: _Peer, t_sc_s: float) -> bool:
        """Keep *p*'s left-out estimate at its filter's time as the newest held one (what
        _body would publish: the alternatives brought to that time); False if an
        alternative is already past it (then it is published after all)."""
        f = p.filter
        t = f.t_gps_s
        w = p.hyp.weights()
        alts = [_taken_at(g, t) for g in p.hyp.alternatives_at(t)]
        if any(a is None for a in alts):
            return False
        p.held = (t_sc_s, _taken_at(f, t), alts, w, _acquisition(p))
        self.n_outputs_decimated += 1
        return True

    def flush_held(self) -> list[Output]:
        out: list[Output] = []
        for p in self.peers.values():
            self._publish_held(p, out)
        return out

    def _publish_held(self, p: _Peer, out: list[Output]) -> None:
        """Publish *p*'s newest left-out estimate (at batch_end; everything after is newer)."""
        if p.held is not None:
            p.ready.appendleft(p.held)
            p.held = None
            self.n_outputs_decimated -= 1  # published after all
            self._publish_ready(p, out, 1, held=True)

    def _body(self, p: _Peer, f: FormationFilter, t_sc_s: float, propagated: bool,
              alts: list | None = None, w: tuple | None = None) -> dict:
        """The estimate of *p* from the filter *f* and, range-only, its alternatives' filters
        *alts* at the same time with the weights *w* (_weights) of that time (None: *p*'s
        alternatives now, brought to *f*'s time)."""
        t = f.t_gps_s
        if alts is None and p.alts:
            alts, w = p.hyp.alternatives_at(t), p.hyp.weights()
        ests = [(f.x, reported_block(f.p))]
        if alts and self.range_only:
            ests += [(g.x, reported_block(g.p)) for g in alts]
        return self._estimate_body(p, f, ests, w, t_sc_s, propagated, _acquisition(p))

    def _estimate_body(self, p: _Peer, f: FormationFilter, ests: list, w: tuple | None, t_sc_s: float,
                       propagated: bool, acq: tuple | None) -> dict:
        """The ``formation_estimate`` body of *p* at *f*'s time from *ests*: (state (n,), its
        covariance's I_REPORTED block (7, 7)) of *f* and, range-only, of its alternatives,
        published as their mixture with the weights *w* (weight of *f*, weights of the
        others); *f* gives the counters; *acq*: (seconds of ranges, window length) of an
        acquisition under way (the estimate is then the prior's), else None."""
        t = f.t_gps_s
        x, pr = ests[0]
        range_m = math.sqrt(float(x[9] * x[9] + x[10] * x[10] + x[11] * x[11]))  # the filter's own
        ws = (1.0,)
        if len(ests) > 1:
            ws = (w[0],) + tuple(w[1])
            x, pr = mix(ests, ws, I_REPORTED)
        hyp_dr = [e[0][9:12] for e in ests]
        ambiguity = max((float(np.linalg.norm(d - x[9:12])) for d, wk in zip(hyp_dr, ws)
                         if wk >= AMBIGUITY_MIN_WEIGHT), default=0.0)
        j = ecef_jacobian(t)
        x_rel = x[9:15]
        p6 = pr[:6, :6]
        x_e = j @ x_rel
        p_e = j @ p6 @ j.T
        sig_e = np.sqrt(np.clip(np.diag(p_e), 0.0, None))
        a = rtn_matrix(x[I_R_OWN], x[I_V_OWN])
        p_rr = pr[:3, :3]
        p_rtn = a @ p_rr @ a.T
        if self.clock is not None and abs(float(self.clock.gps_from_sc(t_sc_s)) - t) > 1e-3:
            t_sc_s = float(self.clock.sc_from_gps(t))  # the filter is later than asked: report its epoch
        p.n_outputs += 1
        self.n_outputs += 1
        return {
            "t_sc_s": float(t_sc_s), "unix_time_s": float(utc_unix_from_gps(t)), "peer_id": p.peer_id,
            "dr_ecef_m": x_e[0:3].tolist(), "dv_ecef_m_s": x_e[3:6].tolist(),
            "sigma_dr_m": sig_e[:3].tolist(), "sigma_dv_m_s": sig_e[3:].tolist(),
            "range_bias_m": float(x[I_RANGE_BIAS]), "n_ranges_used": int(f.n_ranges_used),
            "n_ranges_rejected": int(f.n_ranges_rejected), "propagated": bool(propagated),
            "t_gps_s": float(t),
            "dr_gcrs_m": x[9:12].tolist(), "dv_gcrs_m_s": x[12:15].tolist(), "cov_rel_gcrs": p6.ravel().tolist(),
            "dr_rtn_m": (a @ x[9:12]).tolist(), "sigma_dr_rtn_m": np.sqrt(np.clip(np.diag(p_rtn), 0.0, None)).tolist(),
            "range_m": range_m, "sigma_los_m": line_of_sight_sigma(x[9:12], p_rr),
            "sigma_range_bias_m": float(math.sqrt(max(0.0, pr[6, 6]))),
            "range_time_offset_s": float(x[I_RANGE_DT]), "peer_drag_scale": float(x[I_DRAG_SCALE]),
            "n_peer_fixes_used": int(f.n_peer_used), "n_peer_fixes_rejected": int(f.n_peer_rejected),
            "n_own_fixes_used": int(f.n_own_used), "n_own_fixes_rejected": int(f.n_own_rejected),
            "acquiring": acq is not None, "acquired_s": float(acq[0]) if acq else 0.0,
            "window_s": float(acq[1]) if acq else 0.0,
            "hyp_weights": [float(v) for v in ws], "hyp_dr_gcrs_m": [d.tolist() for d in hyp_dr],
            "ambiguity_m": ambiguity, "ambiguous": ambiguity > self.config.formation_valid_max_sigma_m,
        }

    def propagate_to_sc(self, t_sc_s: float, budget_s: float = math.inf) -> list[Output]:
        """Estimates propagated toward spacecraft time *t_sc_s* (``propagated``).

        Each peer's cursor advances in :data:`PROPAGATION_CHUNK_S` steps, peers in turn,
        until it reaches the target or ``time.perf_counter()`` passes the call's start +
        *budget_s* (every cursor advances at least one step per call); the estimate is
        published at the epoch reached (its ``t_sc_s`` from the clock map unless the target
        was reached), and the next call goes on from there.  Never beyond
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
        if self.batch_ended and self.queue and not self._release(self._flush_limit(), out, budget, final=True):
            return out  # events held back by a handler's budget come first
        for p in self.peers.values():
            self._flush_outputs(p, math.inf, out)
            self._publish_ready(p, out)
        for p in self.peers.values():  # a window fit under way: one more step per call
            if p.hyp.window is not None and p.hyp.window.job is not None:
                self._hypotheses(p, out, p.hyp.step_fit)
        work = []  # (peer, cursor, target)
        for p in self.peers.values():
            f = p.filter
            if not f.initialized or p.gap_reset:
                continue
            target = t_target
            horizon = p.t_meas_gps_s + self.config.max_propagation_s
            if target > horizon:
                target = horizon
                if "propagation_horizon" not in self.notes_sent:
                    self.notes_sent.add("propagation_horizon")
                    out.append(_note("propagation_horizon",
                                     f"not propagated beyond {self.config.max_propagation_s:.0f} s after the "
                                     "last measurement"))
            c = p.cursor
            if c is None or p.cursor_version != p.version or target < c.t_gps_s - 1e-6:
                c = p.cursor = copy.deepcopy(f)  # only when the filter has changed
                p.cursor_alts = [None if same_orbit(reflected(f), h.filter, MIRROR_D2) else copy.deepcopy(h.filter)
                                 for h in p.alts]
                p.cursor_version = p.version
            work.append((p, c, target))
        n_round, over = 0, False
        while not over:
            moving = [(c, tt) for p, c0, tt in work for c in [c0] + p.cursor_alts
                      if c is not None and c.t_gps_s < tt - 1e-6]
            if not moving:
                break
            for c, tt in moving:  # one chunk each per round: the budget is shared fairly
                if n_round and budget.spent():
                    over = True
                    break
                c.predict_to(min(tt, c.t_gps_s + PROPAGATION_CHUNK_S))
            n_round += 1
        for p, c, _ in work:
            if c.t_gps_s <= p.t_last_prop_gps_s:
                continue  # no progress since the last call: nothing new to publish
            p.t_last_prop_gps_s = c.t_gps_s
            alts = []
            for a in p.cursor_alts:  # the alternatives' cursors, at the filter's
                if a is None:
                    a = reflected(c)
                elif a.t_gps_s != c.t_gps_s:
                    a.predict_to(c.t_gps_s)
                alts.append(a)
            out.append(("formation_estimate", self._body(p, c, float(t_sc_s), True, alts=alts, w=p.hyp.weights())))
        return out

    # ------------------------------------------------------------------ notes
    def _note_once(self, out: list[Output], key: str, code: str, text: str) -> None:
        if key not in self.notes_sent:
            self.notes_sent.add(key)
            out.append(_note(code, text))

    def _batch_notes(self, b: dict, out: list[Output]) -> None:
        def once(code, text, key=None):
            key = key or code
            if key not in self.notes_sent:
                self.notes_sent.add(key)
                out.append(_note(code, text))

        if self.part == 0 and int(b["n_peer_fix"]) == 0 and int(b["n_range"]) == 0:
            once("no_range_data", "no peer fix and no range in the batch (range files missing or empty): "
                                  "no formation estimate")
        if self.part == 0 and self.n_own_valid == 0 and self.appeared:
            once("no_own_fix", "no valid own GPS fix: no relative state for any peer")
        for pid, p in sorted(self.peers.items()):
            if p.filter.initialized or not p.heard:
                continue
            if self.range_only:
                if self.n_own_valid:
                    once("peer_not_initialized",
                         f"peer 0x{pid:02X}: ranges heard, but none within "
                         f"{self.filter_config.max_init_pair_gap_s:.0f} s after a valid own fix: no estimate",
                         key=f"peer_not_initialized:{pid}")
            elif p.n_fixes_valid == 0:
                once("peer_no_valid_fix", f"peer 0x{pid:02X}: {p.n_fixes} fixes, none valid: no estimate",
                     key=f"peer_no_valid_fix:{pid}")
            elif self.n_own_valid:
                once("peer_not_initialized",
                     f"peer 0x{pid:02X}: no valid own fix within {self.filter_config.max_init_pair_gap_s:.0f} s "
                     "before any of its fixes: no estimate", key=f"peer_not_initialized:{pid}")

    def counters(self) -> dict:
        ps = self.peers.values()
        fs = [p.filter for p in ps]
        return {
            "peers": sum(f.initialized for f in fs), "outputs": self.n_outputs,
            "own_fixes_valid": self.n_own_valid, "own_fixes_invalid": self.n_own_invalid,
            "peer_fixes_anonymous": self.n_peer_fix_anonymous,
            "peer_fixes_used": sum(f.n_peer_used for f in fs),
            "peer_fixes_rejected": sum(f.n_peer_rejected for f in fs),
            "peer_fixes_invalid": sum(p.n_fixes - p.n_fixes_valid for p in ps),
            "peer_fixes_late": sum(p.n_fixes_late for p in ps),
            "ranges_used": sum(f.n_ranges_used for f in fs), "ranges_rejected": sum(f.n_ranges_rejected for f in fs),
            "ranges_invalid": sum(p.n_ranges_invalid for p in ps),
            "ranges_before_init": sum(p.n_ranges_before_init for p in ps),
            "range_only_starts": sum(p.hyp.n_starts for p in ps),
            "ranges_fitted": sum(p.hyp.n_ranges_fitted for p in ps),
            "range_only_restarts": sum(p.hyp.n_restarts for p in ps),
            "range_only_extensions": sum(p.hyp.n_extensions for p in ps),
            "range_only_alternatives": sum(len(p.alts) for p in ps),
            "ranges_acquiring": sum(len(p.hyp.window.range_m) for p in ps if p.hyp.window is not None),
            "reinit": sum(f.n_reinit for f in fs), "bias_resets": sum(f.n_bias_resets for f in fs),
            "unknown_peer_msgs": self.n_unknown_msgs, "other_part_msgs": self.n_other_part_msgs,
            "no_clock": self.n_no_clock,
            "pending": len(self.queue), "hold_s": round(self.hold_s, 1),
            "stale": self.n_stale, "time_outliers": self.n_time_outliers,
            "budget_deferred": self.n_budget_deferred, "gap_reinit": self.n_gap_reinit,
            "gap_skipped": self.n_gap_skipped, "outputs_decimated": self.n_outputs_decimated,
        }


def _acquisition(p: _Peer) -> tuple | None:
    """(seconds of ranges in the open acquisition window, its length) of *p*, or (0, 0)
    while a restart's prior is being carried to the data; None when neither."""
    w = p.hyp.window
    if w is not None:
        return w.span_s, w.window_s
    return (0.0, p.hyp.config.window_s) if p.hyp.carry is not None else None


def _taken_at(f: FormationFilter, t_gps_s: float) -> tuple | None:
    """(a shallow copy of *f*: its counters as they are now, the entry for its estimate at
    *t_gps_s*: the tapped one, taken from *f*, or a copy of its own state if it is at that
    time), for :func:`_filled`; None if it has neither."""
    e = f.tapped.pop(t_gps_s, None)
    if e is None:
        if abs(f.t_gps_s - t_gps_s) > 1e-6:
            return None
        e = (f.x.copy(), f.p.copy())
    g = copy.copy(f)
    g.t_gps_s = t_gps_s
    return g, e


def _note(code: str, text: str) -> Output:
    return ("estimator_note", {"estimator": "formation", "code": code, "text": text})
