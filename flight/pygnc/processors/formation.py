"""Formation processor: own and peer GPS fixes and ranges in, relative state per peer out.

One :class:`pygnc.estimation.formation_filter.FormationFilter` per peer (own orbit +
relative state + range bias; own fixes are used by every peer's filter); range-only, also
one per other orbit the partner's acquisition window fitted about as well, until the ranges
decide between them (:meth:`FormationProcessor._fit_window`, :meth:`_prune`).

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
bias known to 0.3 m (``Config.formation_range_bias_m`` / ``_sigma_m``, e.g. from earlier
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
from ..estimation import orbit_dynamics as od
from ..estimation.orbit_ekf import OrbitFilterConfig
from ..estimation.range_only_iod import DISTINCT_M, fit_prior, orbit_distance_m, solve_relative_orbit
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
    """The filter's tunables from the flight configuration."""
    return FormationFilterConfig(
        orbit=filter_tunables(OrbitFilterConfig, config.orbit_filter, "orbit_filter"),
        peer_ballistic_coeff_kg_m2=config.formation_peer_ballistic_coeff_kg_m2,
        range_sigma_m=config.formation_range_sigma_m,
        range_bias_prior_m=config.formation_range_bias_m,
        range_bias_sigma_m=config.formation_range_bias_sigma_m,
        range_extrapolate_max_s=config.formation_range_extrapolate_max_s,
    )


class _Peer:
    """Bookkeeping of one known peer."""

    def __init__(self, peer_id: int, filter_config: FormationFilterConfig):
        self.peer_id = peer_id
        self.filter = FormationFilter(filter_config)
        self.cursor: FormationFilter | None = None
        self.version = 0  # bumped whenever the filter changes
        #: Range-only: the other orbits the window's ranges fitted about as well as the
        #: filter's (its mirror image in the own orbit plane, other minima of the fit), kept
        #: as filters while the ranges have not decided (see _fit_window, _prune).
        self.alts: list[_Alt] = []
        #: ... and of its alternatives (alts); None: the alternative is the mirror image of
        #: the filter in the own orbit plane, taken from the cursor itself (see propagate_to_sc)
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
        self.n_range_only_starts = 0
        self.n_ranges_fitted = 0
        self.n_range_only_restarts = 0
        self.n_range_only_extensions = 0  # acquisition windows lengthened (a fit that did not converge)
        self.acq: dict | None = None  # range-only acquisition window (see _start_range_only)
        self.prior: tuple | None = None  # range-only: (t_gps_s, partner state, covariance, source) it started from
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


class _Alt:
    """An alternative orbit of a range-only partner: its filter and the log-likelihood
    ratio of the peer's main filter over it (fit cost and every range since)."""

    __slots__ = ("filter", "llr")

    def __init__(self, f: FormationFilter, llr: float):
        self.filter, self.llr = f, llr


def _weights(p: _Peer) -> tuple:
    """(weight of *p*'s filter, weights of its alternatives): the posterior probabilities."""
    if not p.alts:
        return 1.0, ()
    e = [math.exp(-min(h.llr, 700.0)) for h in p.alts]
    w0 = 1.0 / (1.0 + sum(e))
    return w0, tuple(w0 * x for x in e)


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
        self._notes_out: list | None = None  # where a window fit's notes go (see _step_fit)

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
        p = self.peers[peer_id] = _Peer(peer_id, self.filter_config)
        p.filter.own_steps = self.own_steps
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
                if p.acq is not None and not self.queue:
                    p.acq["final"] = True  # started from, converged or not: not held back for more
                    if p.acq["job"] is None:
                        self._start_fit(p, out)  # finished by the propagation after the batch
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
        w = _weights(p)
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
            p.ready.append((t_sc, g, [_taken_at(h.filter, t_o) for h in p.alts], w))

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
            t_sc, g, alts, w = item
            f, e = g
            ests = [f.tap_estimate(e, f.t_gps_s, reported=True)]
            if self.range_only:
                ests += [h.tap_estimate(eh, h.t_gps_s, reported=True) for h, eh in alts]
            out.append(("formation_estimate", self._estimate_body(p, f, ests, w, t_sc, False)))

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
                for h in p.alts:
                    h.filter.predict_to(t)
                    h.filter.update_own_fix(t, *fix, gcrs=gcrs)
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

    def _start_range_only(self, p: _Peer, t: float, range_m: float, out: list[Output]) -> bool | None:
        """Range-only start of *p*'s filter at the range time *t* from the configured prior or
        from the range itself, opening its acquisition window (True); None when no valid own
        fix lies within ``max_init_pair_gap_s`` before."""
        own = self.last_own_fix
        if own is None or t < own[0] or t - own[0] > self.filter_config.max_init_pair_gap_s:
            return None
        f, c = p.filter, self.config
        if f.initialized:
            self._flush_outputs(p, math.inf, out)
            f.n_reinit += 1
        own_z, own_r = f.own_at(own[0], own[1], t)
        prior = c.formation_peer_priors.get(p.peer_id)
        if prior is not None and prior["frame"] == "ecef":
            z, r = f.peer_state_at(prior["t_gps_s"], prior["pos_ecef_m"], prior["vel_ecef_m_s"],
                                   prior["sigma_pos_m"], prior["sigma_vel_m_s"], t)
            f.initialize(t, own_z, own_r, z, r)
            f.range_acquired = True
            how = f"the configured state of epoch {prior['t_gps_s']:.0f} (GPS s)"
        else:
            if prior is not None:
                dr_rtn, dv_rtn = prior["dr_rtn_m"], prior["dv_rtn_m_s"]
                sp, sv = prior["sigma_pos_m"], prior["sigma_vel_m_s"]
                how = "the configured RTN offset"
            else:
                side = 1.0 if c.formation_range_only_side == "ahead" else -1.0
                dr_rtn, dv_rtn = (0.0, side * range_m, 0.0), (0.0, 0.0, 0.0)
                sp, sv = max(c.formation_prior_sigma_pos_m, 0.0), c.formation_prior_sigma_vel_m_s
                how = f"its first range, placed {c.formation_range_only_side} along-track"
            dr, dv = rtn_to_gcrs(own_z[:3], own_z[3:], dr_rtn, dv_rtn)
            f.initialize_relative(t, own_z, own_r, dr, dv, np.diag([sp * sp] * 3 + [sv * sv] * 3))
        p.gap_reset = False
        p.alts = []
        p.n_range_only_starts += 1
        # The ranges of the next window are fitted at once (range_only_iod), not filtered.
        p.acq = _window(f, t, f.p[9:15, 9:15] + f.p[0:6, 0:6], how, self.config.formation_range_only_window_s)
        p.prior = (t, p.acq["x0"].copy(), p.acq["p0"].copy(), how)
        return True

    def _restart_window(self, p: _Peer, t: float, range_m: float, out: list[Output]) -> None:
        """Range-only and the ranges keep failing the gate (the filter has lost the partner):
        no bias re-opening (with no partner fix nothing would pull a wrong bias back), but a
        new acquisition window from the prior the partner started from, carried to now."""
        f = p.filter
        self._flush_outputs(p, math.inf, out)
        f.predict_to(t)  # (the range may have been applied ahead of the filter time)
        # Until the new window's fit, the estimates are the lost filter's, propagated: its
        # covariance no longer covers its error (the ranges it rejected say by how much).
        # Scaled so that those ranges are one sigma, the line of sight is consistent with
        # them again and the rest keeps its shape (range-only campaign seed 16, 0x4C: the
        # 45 minutes of the restart window published 100-270 m errors with sigma 1-6 m,
        # NEES 1 600-27 000).
        scale = f.inflate_to_rejected_ranges()
        f.range_acquired = True
        f._range_reacquire = False
        p.alts = []
        p.n_range_only_restarts += 1
        # Not about the estimate it lost (wrong by then, and a 1-km prior about it kept the
        # fit in that estimate's basin - a point-mirror orbit on simulator seeds 9 and 16):
        # the prior it started from, carried to now along its transition matrix.
        t0, x0, p0, how = p.prior if p.prior is not None else (
            t, f.x[0:6] + f.x[9:15], np.diag([self.config.formation_prior_sigma_pos_m ** 2] * 3
                                             + [self.config.formation_prior_sigma_vel_m_s ** 2] * 3),
            "the estimate it lost")
        xs = np.zeros(10)
        xs[:6], xs[9] = x0, 1.0
        xs, phi = od.propagate(xs, t - t0, f.peer_model, t_gps_s=t0)
        a6 = phi[:6, :6]
        p.acq = _window(f, t, a6 @ p0 @ a6.T, f"{how}, carried to the restart",
                        self.config.formation_range_only_window_s)
        p.acq["x0"] = xs[:6].copy()
        p.acq["ref"][0:6] = xs[:6]
        self._acquire(p, t, range_m, out)
        if p.n_range_only_restarts == 1:
            out.append(_note("range_only_restart", f"peer 0x{p.peer_id:02X}: ranges rejected "
                                                   f"{f.config.max_consecutive_range_rejections} times in a row: "
                                                   f"its orbit is fitted again (until then its sigma is "
                                                   f"{math.sqrt(scale):.1f} times what the filter held)"))

    def _acquire(self, p: _Peer, t: float, range_m: float, out: list[Output]) -> None:
        """Collect a range of *p*'s acquisition window (filter at *t*); fit when complete."""
        a = p.acq
        _record_reference(a, t, p.filter.peer_model, p.filter.own_model)
        a["t"].append(t)
        a["own_r"].append(a["own"][0:3].copy())
        a["z"].append(range_m)
        c = self.config
        if a["job"] is not None:
            self._step_fit(p, out)
        elif t - a["t0"] >= a["window_s"] and len(a["z"]) >= c.formation_range_only_min_ranges:
            self._start_fit(p, out)

    def _start_fit(self, p: _Peer, out: list[Output]) -> None:
        """Begin fitting *p*'s window: the cheap part now, one window propagation per later
        call (:meth:`_step_fit`: the next range, or the propagation after the batch)."""
        p.acq["job"] = self._fit_window(p)
        self._step_fit(p, out)

    def _step_fit(self, p: _Peer, out: list[Output]) -> None:
        """One step of *p*'s window fit (at most one window propagation, up to ~0.2 s here)."""
        self._notes_out = out
        try:
            next(p.acq["job"])
        except StopIteration:
            pass
        finally:
            self._notes_out = None

    def _fit_window(self, p: _Peer):
        """Fit the partner's orbit to the window's ranges and start the filter from the fit
        at the filter's current time: a generator that yields after each window
        propagation, so that no call blocks the task for long (on a Pi one propagation of a
        45-min window is 1-3 s; the whole fit would be 5-10 s, past the health limit).
        Ranges arriving meanwhile join the window (each refit uses all it holds)."""
        a, f, fc = p.acq, p.filter, self.filter_config
        out = self._notes_out
        if len(a["z"]) < self.config.formation_range_only_min_ranges:
            p.acq = None
            out.append(_note("range_only_short", f"peer 0x{p.peer_id:02X}: {len(a['z'])} ranges in the window, "
                                                 f"fewer than {self.config.formation_range_only_min_ranges}: "
                                                 "relative state from the prior only"))
            return
        res = solve_relative_orbit(a["x0"], np.array(a["ref_pos"]), np.array(a["ref_jac"]), a["x0"], a["p0"],
                                   fc.range_bias_prior_m, fc.range_bias_sigma_m, np.array(a["own_r"]),
                                   np.array(a["z"]), fc.range_sigma_m)
        # Each start's fit once more, linearised about itself: the dynamics' linearisation
        # error (metres per km of prior error over the window) falls to centimetres, and
        # only then do the candidates' costs say which the ranges and the prior prefer.
        # One propagation of the window per candidate.
        hyps = []  # (cost, window, fit, (window, fit) whose range residuals stand for it)
        for x7, _ in res.candidates[:FIT_CANDIDATES]:
            yield
            b, r2 = self._refit(p, a, x7)
            hyps.append((r2.candidates[0][1], b, r2, (b, r2)))
        # The point mirror: to first order (Clohessy-Wiltshire) the relative path negated
        # keeps every range, so the best candidate's point mirror is nearly a minimum too,
        # and the multistart (from the prior, its mirrors and draws about it) does not always
        # reach that basin when the prior is far from both (range-only campaign seed 16, the
        # restart after a close approach: every candidate near the point mirror, cost 5707
        # and up; the basin 33 m from the truth, cost 4911, found only from the best one's
        # point mirror).  Refitted from there (one window propagation); a refit that slides
        # back to a minimum already held is dropped below.  (Refitting every candidate's
        # point mirror instead kept more alternatives of small weight: the published
        # mixture's median error on the campaign's 40 partners 43 m, against 31 m this way.)
        best = min(hyps, key=lambda h: h[0])[2]
        x = np.append(2.0 * a["own0"] - best.x0, best.bias_m)
        if all(orbit_distance_m(x[:6], h[2].x0) > DISTINCT_M for h in hyps):
            yield
            b2, r3 = self._refit(p, a, x)
            hyps.append((r3.candidates[0][1], b2, r3, (b2, r3)))
        # Which side of the own orbit plane: the reflection of the relative path in that
        # plane keeps every range (an isometry) and is, to first order, a solution of the
        # relative dynamics, so the ranges tell the sides apart only through what breaks the
        # symmetry (J2, drag: weak).  Each candidate's mirror image is fitted too.
        for _, b, r2, _ in list(hyps):
            yield
            hyps.append(self._mirror_fit(p, a, b, r2))
        if p.acq is not a or not f.initialized:
            return  # the window was replaced meanwhile (restart, gap): this fit is moot
        # Each refit took every range the window held when it ran, and ranges go on
        # arriving during the fit (one refit per range): later refits - the mirror images
        # above all - summed more residuals into their costs, ~1/2 of log-odds per range
        # against them.  The odds compare every hypothesis on the same ranges.
        hyps = self._common_costs(a, hyps)
        # The window's ranges often fit several orbits within a few units of cost - its
        # mirror image always, and on a close pair (seed 9: 1.4 km) minima 1.6 km apart
        # within 0.5 - so the one the cost prefers is not "the" orbit: every candidate
        # within e^SIDE_DECIDED_LLR of the best is kept as a filter with its odds, the later
        # ranges decide (a wrong one is gone within tens of minutes), estimates are their
        # mixture until then.
        hyps.sort(key=lambda h: h[0])
        c = self.config
        if not hyps[0][2].converged and not a["final"] and \
                a["window_s"] + c.formation_range_only_window_s / 3.0 <= c.formation_range_only_max_window_s + 1e-6:
            # Not converged: the cost is a long curved valley the window's ranges hardly
            # constrain along, and each start stops somewhere on it with a needle-shaped
            # covariance whose length is the valley's local curvature, not the data's; the
            # filters' range likelihoods would then favour the shortest needle, on either
            # side (range-only campaign seed 16, 1.4-3 km with close approaches: the side
            # was lost within ten ranges).  More ranges (a longer arc, new geometry) first.
            a["window_s"] += c.formation_range_only_window_s / 3.0
            a["job"] = None
            p.n_range_only_extensions += 1
            if p.n_range_only_extensions == 1:
                self._notes_out.append(_note(
                    "range_only_window_extended",
                    f"peer 0x{p.peer_id:02X}: the fit of {len(a['z'])} ranges over {a['t'][-1] - a['t0']:.0f} s did "
                    f"not converge: fitted again with the ranges of {a['window_s']:.0f} s"))
            return
        # Starts that the refits brought to the same minimum are that minimum once (its
        # weight is its cost's, not times the starts that found it).  Same position at the
        # window start is not enough: a partner crossing the own orbit plane then has its
        # mirror image there too (seed 14, 3.2 km: the side was lost that way).
        distinct = []
        for h in hyps:
            if all(orbit_distance_m(h[2].x0, d[2].x0) > DISTINCT_M for d in distinct):
                distinct.append(h)
        hyps = distinct
        p.acq = None
        out = self._notes_out
        self._flush_outputs(p, math.inf, out)
        cost0, a, res, _ = hyps[0]
        p.n_ranges_fitted += int(res.used.sum())
        cov_peer = _start_from_fit(f, a, res)
        p.version += 1
        p.alts = []
        for cost, b, r2, _ in hyps[1:]:
            if (cost - cost0) / 2.0 < SIDE_DECIDED_LLR:
                alt = copy.deepcopy(f)
                _start_from_fit(alt, b, r2)
                p.alts.append(_Alt(alt, (cost - cost0) / 2.0))
        self._prune(p, out, noted=False)
        w0 = _weights(p)[0]
        if w0 < 0.99 and f"range_only_mirror:{p.peer_id}" not in self.notes_sent:
            self.notes_sent.add(f"range_only_mirror:{p.peer_id}")
            out.append(_note("range_only_mirror",
                             f"peer 0x{p.peer_id:02X}: the window's ranges fit {len(p.alts) + 1} orbits about as "
                             f"well (at least the two sides of the own orbit plane; {w0:.2f} for the best): "
                             "all are kept, estimates are their mixture (its sigma covers them) until the "
                             "ranges decide"))
        if p.n_range_only_starts == 1 or not res.converged:
            sig = math.sqrt(max(0.0, float(np.trace(cov_peer[:3, :3]))))
            out.append(_note("range_only_start" if res.converged else "range_only_poor_fit",
                             f"peer 0x{p.peer_id:02X}: no partner fix (range GPS source 'own'); orbit fitted to "
                             f"{int(res.used.sum())} of {len(a['z'])} ranges over {a['t'][-1] - a['t0']:.0f} s "
                             f"from {a['how']}: residual rms {res.rms_m:.2f} m, sigma {sig:.1f} m 3D"
                             + ("" if res.converged else " (did not converge)")))

    def _mirror_fit(self, p: _Peer, a: dict, b: dict, r2) -> tuple:
        """(cost, window, fit, (window, fit) whose range residuals stand for it) of the
        mirror image in the own orbit plane of the fit *r2* (window *b*) of window *a*'s
        ranges: fitted again from the reflected start (one window propagation) if that
        keeps a distinct minimum on the other side; else (the mirror slid back: the ranges
        cannot tell the sides apart at all, the cross-track offset is within the valley's
        width) the exact mirror image, whose range cost is the fit's (*b*, *r2*), so the
        prior alone sets the odds (the cost returned is the fit's until :meth:`_common_costs`
        takes every hypothesis' again)."""
        o = a["own0"]
        m3 = _plane_mirror(o)
        x = np.append(o + _block_mirror(6, m3) @ (r2.x0 - o), r2.bias_m)
        bm, rm = self._refit(p, a, x)
        h = np.cross(o[0:3], o[3:6])
        if float(np.linalg.norm(rm.x0[0:3] - r2.x0[0:3])) > DISTINCT_M and \
                float((rm.x0[0:3] - o[0:3]) @ h) * float((r2.x0[0:3] - o[0:3]) @ h) < 0.0:
            return rm.candidates[0][1], bm, rm, (bm, rm)
        rm = dataclasses.replace(r2, x0=x[0:6], cov=_mirror_cov(r2.cov, m3))
        return r2.candidates[0][1], b, rm, (b, r2)  # (its cost with its own prior: _common_costs)

    def _common_costs(self, a: dict, hyps: list) -> list:
        """*hyps* (cost, window, fit, (window, fit) whose range residuals stand for it) of
        window *a* with each cost taken again on the same ranges: the first n, which every
        refit held (ranges the window gained during the fit are left out of the
        comparison), each squared normalised residual counted up to RANGE_LL_NIS_CAP (an
        outlier that no hypothesis explains costs them all the same, and no hypothesis
        leaves out the ranges that speak against it, as a fit's own outlier test would);
        plus each one's prior term.  Each hypothesis' residuals come from the linearisation
        it was refitted about (the exact mirror image of a fit: that fit's residuals - the
        reflection keeps every range to first order, see _mirror_fit)."""
        fc = self.filter_config
        n = min(len(h[3][0]["ref_pos"]) for h in hyps)
        z = np.asarray(a["z"][:n], dtype=float)
        own_r = np.asarray(a["own_r"][:n], dtype=float)
        prior, _, info = fit_prior(a["x0"], a["p0"], fc.range_bias_prior_m, fc.range_bias_sigma_m)
        w = 1.0 / fc.range_sigma_m ** 2
        out = []
        for _, b, r2, (bw, fit) in hyps:
            ref_pos = np.asarray(bw["ref_pos"][:n], dtype=float)
            ref_jac = np.asarray(bw["ref_jac"][:n], dtype=float)
            d = ref_pos + ref_jac @ (fit.x0 - bw["x0"]) - own_r
            res = z - (np.linalg.norm(d, axis=1) + fit.bias_m)
            chi2 = float(np.minimum(w * res * res, RANGE_LL_NIS_CAP).sum())
            dx = np.append(r2.x0, r2.bias_m) - prior
            out.append((chi2 + float(dx @ info @ dx), b, r2, (bw, fit)))
        return out

    def _alts_range(self, p: _Peer, t: float, range_m: float, out: list[Output]) -> None:
        """The range on every alternative's filter too; each one's likelihood against the
        filter's moves its odds (see _prune)."""
        mv = self.config.formation_side_model_sigma_m ** 2
        ll0 = _range_ll(p.filter, mv)
        for h in p.alts:
            h.filter.predict_to(h.filter.range_base_time(t))
            h.filter.update_range(t, range_m)
            d = ll0 - _range_ll(h.filter, mv)
            if math.isfinite(d):
                h.llr += d
        self._prune(p, out)

    def _prune(self, p: _Peer, out: list[Output], noted: bool = True) -> None:
        """Keep *p*'s hypotheses (filter and alternatives) within e^SIDE_DECIDED_LLR of the
        most likely one that still tracks the ranges, merge those that have come together
        (their relative states within MERGE_D2 of each other: the heavier one takes the
        pair's mean, covariance and weight), and make the most likely the filter.  A filter
        that has lost the ranges is dropped while an alternative still holds them (else the
        caller restarts)."""
        if not p.alts:
            return
        f = p.filter
        hyps = [(f, 0.0)] + [(h.filter, -h.llr) for h in p.alts]  # (filter, log weight)
        alive = [(g, lw) for g, lw in hyps if g.range_acquired]
        if not alive:
            p.alts = []
            return
        top = max(lw for _, lw in alive)
        kept: list[list] = []
        for g, lw in sorted(alive, key=lambda h: -h[1]):
            if top - lw >= SIDE_DECIDED_LLR:
                break
            for k in kept:
                if _same_orbit(k[0], g):
                    _merge_into(k[0], 1.0 / (1.0 + math.exp(lw - k[1])), g)
                    k[1] = float(np.logaddexp(k[1], lw))
                    break
            else:
                kept.append([g, lw])
        main, lw0 = kept[0]
        if main is not f or len(kept) < len(hyps):
            self._flush_outputs(p, math.inf, out)  # estimates still waiting go out first
            p.version += 1  # the cursors (propagate_to_sc) are copied again
        p.filter = main
        p.alts = [_Alt(g, lw0 - lw) for g, lw in kept[1:]]
        if noted and not p.alts:
            out.append(_note("range_only_side", f"peer 0x{p.peer_id:02X}: the ranges have decided between the "
                                                "orbits its window fitted (and on which side of the own orbit "
                                                "plane it flies)"))

    def _refit(self, p: _Peer, a: dict, x7: np.ndarray):
        """Window *a*'s ranges fitted from the start *x7* ([partner state at the window
        start, bias]) linearised about *x7*'s own trajectory (one propagation of the
        window): (that window, the fit)."""
        f, fc = p.filter, self.filter_config
        b = _window(f, a["t0"], a["p0"], a["how"], a["window_s"])
        b["ref"][0:6] = x7[:6]
        for t in a["t"]:
            _record_reference(b, t, f.peer_model)
        r2 = solve_relative_orbit(x7[:6], np.array(b["ref_pos"]), np.array(b["ref_jac"]), a["x0"], a["p0"],
                                  fc.range_bias_prior_m, fc.range_bias_sigma_m, np.array(a["own_r"]),
                                  np.array(a["z"]), fc.range_sigma_m, starts=[x7])
        b["x0"], b["t"], b["z"], b["own"], b["t_own"] = x7[:6], a["t"], a["z"], a["own"], a["t_own"]
        b["own0"] = a["own0"]
        return b, r2

    def _process_range(self, t: float, pid: int, range_m: float, seq: int, budget: admission.Budget,
                       out: list[Output]) -> bool:
        p = self.peers[pid]
        f = p.filter
        if self.range_only and (not f.initialized or p.gap_reset or f.needs_reinit):
            started = self._start_range_only(p, t, range_m, out)
            if started is None:
                p.n_ranges_before_init += 1
                return True
            self._applied(p, t, seq)
            self._acquire(p, t, range_m, out)
            return True
        if not f.initialized or p.gap_reset:
            p.n_ranges_before_init += 1
            return True
        if admission.gap_needs_reinit(f.t_gps_s, t, self.config.max_gap_propagation_s):
            self.n_gap_skipped += 1
            return True
        # Outside an acquisition window a range close ahead of the filter is applied there,
        # carried to its time in closed form: the filter steps between own fixes only.
        t_to = t if p.acq is not None else f.range_base_time(t)
        reached = self._reach(p, t, seq, budget, out, t_to)
        if reached:
            if p.acq is not None:
                self._acquire(p, t, range_m, out)
            else:
                f.update_range(t, range_m)
                if p.alts:
                    self._alts_range(p, t, range_m, out)
                if self.range_only and not p.filter.range_acquired:
                    self._restart_window(p, t, range_m, out)
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
        w = _weights(p)
        for h in p.alts:
            if h.filter.t_gps_s < t - 1e-6:
                h.filter.predict_to(t)
        alts = [_taken_at(h.filter, t) for h in p.alts]
        if any(a is None for a in alts):
            return False
        p.held = (t_sc_s, _taken_at(f, t), alts, w)
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
            alts, w = [], _weights(p)
            for h in p.alts:
                if h.filter.t_gps_s < t - 1e-6:
                    h.filter.predict_to(t)
                alts.append(h.filter)
        ests = [(f.x, reported_block(f.p))]
        if alts and self.range_only:
            ests += [(g.x, reported_block(g.p)) for g in alts]
        return self._estimate_body(p, f, ests, w, t_sc_s, propagated)

    def _estimate_body(self, p: _Peer, f: FormationFilter, ests: list, w: tuple | None, t_sc_s: float,
                       propagated: bool) -> dict:
        """The ``formation_estimate`` body of *p* at *f*'s time from *ests*: (state (n,), its
        covariance's I_REPORTED block (7, 7)) of *f* and, range-only, of its alternatives,
        published as their mixture with the weights *w* (weight of *f*, weights of the
        others); *f* gives the counters."""
        t = f.t_gps_s
        x, pr = ests[0]
        range_m = math.sqrt(float(x[9] * x[9] + x[10] * x[10] + x[11] * x[11]))  # the filter's own
        if len(ests) > 1:
            x, pr = _mix(ests, (w[0],) + tuple(w[1]), I_REPORTED)
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
            if p.acq is not None and p.acq["job"] is not None:
                self._step_fit(p, out)
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
                p.cursor_alts = [None if _same_orbit(_reflected(f), h.filter, MIRROR_D2) else copy.deepcopy(h.filter)
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
                    a = _reflected(c)
                elif a.t_gps_s != c.t_gps_s:
                    a.predict_to(c.t_gps_s)
                alts.append(a)
            out.append(("formation_estimate", self._body(p, c, float(t_sc_s), True, alts=alts, w=_weights(p))))
        return out

    # ------------------------------------------------------------------ notes
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
            "range_only_starts": sum(p.n_range_only_starts for p in ps),
            "ranges_fitted": sum(p.n_ranges_fitted for p in ps),
            "range_only_restarts": sum(p.n_range_only_restarts for p in ps),
            "range_only_extensions": sum(p.n_range_only_extensions for p in ps),
            "range_only_alternatives": sum(len(p.alts) for p in ps),
            "ranges_acquiring": sum(len(p.acq["z"]) for p in ps if p.acq is not None),
            "reinit": sum(f.n_reinit for f in fs), "bias_resets": sum(f.n_bias_resets for f in fs),
            "unknown_peer_msgs": self.n_unknown_msgs, "other_part_msgs": self.n_other_part_msgs,
            "no_clock": self.n_no_clock,
            "pending": len(self.queue), "hold_s": round(self.hold_s, 1),
            "stale": self.n_stale, "time_outliers": self.n_time_outliers,
            "budget_deferred": self.n_budget_deferred, "gap_reinit": self.n_gap_reinit,
            "gap_skipped": self.n_gap_skipped, "outputs_decimated": self.n_outputs_decimated,
        }


def _window(f: FormationFilter, t: float, p0: np.ndarray, how: str, window_s: float) -> dict:
    """A range-only acquisition window opened at *t* from the filter's partner estimate
    (prior covariance *p0*): the ranges it collects, the own positions at their times, and
    the reference partner trajectory (propagated range by range, with its transition
    matrix from the window start) that the fit linearises about.  The own positions are
    the own estimate at the window start *propagated*, not the filter's updated estimate:
    the ranges see the relative motion, and an own trajectory that jumps at each GPS fix
    (metres) would put those jumps into the ranges' residuals (measured: the fit then
    prefers a mirror image 4 km off)."""
    ref = np.zeros(10)
    ref[0:6] = f.x[0:6] + f.x[9:15]
    ref[9] = f.x[I_DRAG_SCALE] if f.x[I_DRAG_SCALE] > 0 else 1.0
    return {"t0": t, "x0": ref[0:6].copy(), "p0": p0, "how": how, "ref": ref, "t_ref": t, "phi": np.eye(10),
            "own": f.x[0:9].copy(), "own0": f.x[0:6].copy(), "t_own": t, "job": None, "t": [], "own_r": [], "z": [],
            "ref_pos": [], "ref_jac": [], "window_s": window_s, "final": False}


def _advance_reference(a: dict, t: float, model, own_model=None) -> None:
    """Propagate window *a*'s reference trajectory to *t* (a few ms per range interval)."""
    if own_model is not None and t > a["t_own"]:
        a["own"], _ = od.propagate(a["own"], t - a["t_own"], own_model, t_gps_s=a["t_own"])
        a["t_own"] = t
    if t > a["t_ref"]:
        a["ref"], step = od.propagate(a["ref"], t - a["t_ref"], model, t_gps_s=a["t_ref"])
        a["phi"] = step @ a["phi"]
        a["t_ref"] = t


def _record_reference(a: dict, t: float, model, own_model=None) -> None:
    """Advance window *a*'s reference to *t* and keep its position and d position / d x0."""
    _advance_reference(a, t, model, own_model)
    a["ref_pos"].append(a["ref"][0:3].copy())
    a["ref_jac"].append(a["phi"][0:3, 0:6].copy())


#: Range-only: the two sides of the own orbit plane are both kept until the log-likelihood
#: ratio of one over the other exceeds this (posterior odds of e^20).
SIDE_DECIDED_LLR = 20.0
#: Candidates of a window fit refitted about themselves (each with its mirror image).
FIT_CANDIDATES = 3
#: Estimates propagated to "now" take an alternative that is the filter's mirror image in
#: the own orbit plane to this Mahalanobis distance squared (6 dof, 99 %) as the cursor's
#: reflection instead of propagating its own copy (the other side is kept all day on a
#: range-only partner: one propagation to "now" per partner instead of two).
MIRROR_D2 = 16.8
#: A hypothesis' range log-likelihood counts its NIS up to this (5 sigma).
RANGE_LL_NIS_CAP = 25.0
#: Two hypotheses merge below this Mahalanobis distance squared of their relative states
#: under the sum of their covariances (about 1 sigma: two sides of the orbit plane whose
#: cross-track offsets differ by 2 sigma stay apart, candidates that both found the same
#: orbit merge once they agree to their sigma).
MERGE_D2 = 1.0


def _start_from_fit(f: FormationFilter, a: dict, res) -> np.ndarray:
    """Restart *f* at its current time from the fit *res* of window *a* (carried along the
    window's reference trajectory); returns the partner's position-velocity covariance."""
    _advance_reference(a, f.t_gps_s, f.peer_model, f.own_model)
    a6 = a["phi"][:6, :6]
    peer_now = f.x[0:6] + (a["ref"][:6] + a6 @ (res.x0 - a["x0"]) - a["own"][0:6])
    cov_peer = a6 @ res.cov[:6, :6] @ a6.T
    f.initialize(f.t_gps_s, f.x[0:6].copy(), f.p[0:6, 0:6].copy(), peer_now, cov_peer)
    f.x[I_RANGE_BIAS] = res.bias_m
    f.p[I_RANGE_BIAS, I_RANGE_BIAS] = res.cov[6, 6]
    cross = a6 @ res.cov[:6, 6]
    f.p[9:15, I_RANGE_BIAS] = cross
    f.p[I_RANGE_BIAS, 9:15] = cross
    f.range_acquired = True
    return cov_peer


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


def _mix(ests: list, ws, idx=None) -> tuple:
    """(mean (n,), covariance) of the mixture of *ests* ((state (n,), covariance) each, at
    the same time) with weights *ws* (summing to 1); with *idx*, the covariances given are
    the *idx* rows and columns of each (e.g. I_REPORTED) and so is the result's."""
    xm = sum(w * x for (x, _), w in zip(ests, ws))
    pm = np.zeros_like(ests[0][1])
    for (x, pc), w in zip(ests, ws):
        d = x - xm if idx is None else x[idx] - xm[idx]
        pm += w * (pc + np.outer(d, d))
    return xm, pm


def _mixture(fs: list, ws) -> FormationFilter:
    """A shallow copy of the first of the filters *fs* (at the same time) holding the mean and
    covariance of their mixture with weights *ws* (summing to 1)."""
    out = copy.copy(fs[0])
    out.x, out.p = _mix([(g.x, g.p) for g in fs], ws)
    return out


def _range_ll(f: FormationFilter, model_var_m2: float = 0.0) -> float:
    """Log-likelihood of *f*'s last range with its NIS capped at RANGE_LL_NIS_CAP: a range
    the filter's gate rejected still counts against it, an outlier (hundreds of metres,
    rejected by every hypothesis) no more than that.  *model_var_m2*: added to the
    innovation variance (the dynamics' error the filter's own variance leaves out, see
    ``Config.formation_side_model_sigma_m``)."""
    if not math.isfinite(f.last_nis):
        return math.nan
    s = float(f.last_s[0, 0])
    if model_var_m2 > 0.0:
        s2 = s + model_var_m2
        return -0.5 * (min(f.last_nis * s / s2, RANGE_LL_NIS_CAP) + math.log(s2))
    return -0.5 * (min(f.last_nis, RANGE_LL_NIS_CAP) + math.log(s))


def _merge_into(f: FormationFilter, w: float, g: FormationFilter) -> None:
    """*f* (weight *w* of the pair) takes the mean and covariance of itself and *g*."""
    m = _mixture([f, g], (w, 1.0 - w))
    f.x, f.p = m.x, m.p


def _same_orbit(f: FormationFilter, g: FormationFilter, d2_max: float = MERGE_D2) -> bool:
    """Two hypotheses that have come together: their relative states within *d2_max*
    (Mahalanobis, 6 dof) of each other under the sum of their covariances."""
    d = g.x[9:15] - f.x[9:15]
    try:
        return float(d @ np.linalg.solve(f.p[9:15, 9:15] + g.p[9:15, 9:15], d)) < d2_max
    except np.linalg.LinAlgError:
        return False


def _reflected(f: FormationFilter) -> FormationFilter:
    """A shallow copy of *f* with its relative position, velocity and differential
    acceleration reflected in the own orbit plane (mean and covariance): the other side's
    hypothesis to first order."""
    t = _block_mirror(f.x.size, _plane_mirror(f.x[0:6]), at=(9, 12, 15))
    g = copy.copy(f)
    g.x, g.p = t @ f.x, t @ f.p @ t.T
    return g


def _block_mirror(n: int, m3: np.ndarray, at=(0, 3)) -> np.ndarray:
    """n x n identity with the reflection *m3* on the 3x3 diagonal blocks starting at *at*."""
    t = np.eye(n)
    for i in at:
        t[i:i + 3, i:i + 3] = m3
    return t


def _mirror_cov(cov: np.ndarray, m3: np.ndarray) -> np.ndarray:
    """Covariance of [partner r, v, (more)] after reflecting r and v with *m3*."""
    t = _block_mirror(cov.shape[0], m3)
    return t @ cov @ t.T


def _plane_mirror(own6: np.ndarray) -> np.ndarray:
    """3x3 reflection in the orbit plane of the own state *own6* (GCRS r, v)."""
    h = np.cross(own6[0:3], own6[3:6])
    h /= np.linalg.norm(h)
    return np.eye(3) - 2.0 * np.outer(h, h)


def _note(code: str, text: str) -> Output:
    return ("estimator_note", {"estimator": "formation", "code": code, "text": text})
