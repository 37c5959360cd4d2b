"""Orbit processor: own GPS fixes in, an orbit estimate at every sensor sample time out.

Measurements are admitted by the shared policy (:mod:`pygnc.processors.admission`).

* ``clock_map`` gives spacecraft time -> GPS time (sensor samples carry only t_sc_s);
* own ``gps_fix`` (peer_id 0): a valid fix whose GPS time agrees with its clock-mapped
  stamp initialises or updates the EKF (:class:`pygnc.estimation.orbit_ekf.OrbitEKF`) at
  the fix's own GPS time; an invalid one is skipped and counted; a fix not newer than the
  filter's last fix is counted as out of order (never applied twice); a fix more than
  ``Config.max_gap_propagation_s`` after the filter re-initialises it (``reinit``; when the
  last confirmed track, carried there, refuses it, the new state must hold as after refused
  fixes: ``gap_doubted``); until a second fix confirms a start (after the fixes left a
  state: until the new one has outlived that run) the estimates say ``acquiring`` (a fix the
  gate refuses then starts the filter again in its place: ``start_refused``, see the EKF);
* ``sensor``: an ``orbit_estimate`` at the sample's time, from the latest filter state
  carried forward by a separate *output cursor* - the filter itself only moves from fix to
  fix, so an output never pushes it past a later fix.  The cursor steps ahead a whole
  step at a time, as long as the last fix interval (at most the model's 30-s max step), and
  a sample inside a step is interpolated in it
  (:meth:`~pygnc.estimation.orbit_ekf.OrbitEKF.estimate_in`: ~2 mm, 5e-5 m/s, covariance
  ~1e-4); the next fix, arriving at the step's end, starts from the step's end instead of
  propagating that span again - one propagation per fix interval where stepping from
  sample to sample took five.  A sample older than the filter
  epoch or than the last sample estimate (a restarted ingest replaying the batch) gets no
  estimate and is counted; one the cursor cannot reach within the handler budget gets none
  either (``budget_deferred``: the cursor keeps the epoch it reached and the next sample
  goes on from there).  Sample estimates strictly increase in epoch; an estimate
  propagated to "now" does not hold them back (a live stream's samples may arrive after
  it - the host stamps them with whole seconds), it only has to be newer than every
  estimate before it;
* ``batch_end`` with no valid fix at all: one ``estimator_note`` (code ``no_fix``), and no
  estimate is ever invented.

Decimation (``Config.batch_decimate_estimates``, :class:`admission.BatchDecimation`): during
the batch (until ``batch_end``) a sample estimate goes out in full only when the batch
writer records it - the first of each bin of its orbit period (60 s by default) - and
otherwise as an ``orbit_position`` (the same epoch and interpolated state, the position
alone: what the attitude estimator needs), without the covariance interpolation, the
ECEF covariance and the 36-number covariance on the bus; the newest of those goes out in
full at ``batch_end`` (or at stop).  After the batch every estimate is full.

:meth:`propagate_to_sc` moves the cursor on to "now" after the batch (``propagated``).
"""

from __future__ import annotations

import math

import numpy as np

from .. import frames
from ..config import Config, filter_tunables
from ..estimation.gps_fix import GpsFix
from ..estimation.orbit_ekf import OrbitEKF, OrbitFilterConfig, StepSpan
from ..timebase import ClockMap, utc_unix_from_gps
from ..validity import orbit_word
from . import Output, Processor, admission, clock_map_from_body

#: The longest gap [s] over which a restart asks the track before it whether the new fix is
#: where that track says (its copy propagated there: ~30 ms of CPU for three hours).
GAP_CHECK_MAX_S = 3 * 3600.0


def _to_ecef(t_gps_s: float, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(d x_ecef / d x_gcrs (6, 6), [r_ecef, v_ecef] (6,)) of the GCRS state *x* at *t_gps_s*."""
    j = frames.rv_gcrs_to_ecef_matrix(frames.gcrs_from_itrs_matrix(t_gps_s))
    r, v = frames.rv_gcrs_to_ecef_floats(t_gps_s, x[0:3], x[3:6])  # the positions' arithmetic
    return j, np.array(r + v)


def orbit_filter_config(config: Config) -> OrbitFilterConfig:
    """The orbit filter's tunables: defaults overridden by ``Config.orbit_filter``.

    Raises ``ValueError`` naming any key that is not an ``OrbitFilterConfig`` field.
    """
    return filter_tunables(OrbitFilterConfig, config.orbit_filter, "orbit_filter")


class OrbitProcessor(Processor):
    consumes = frozenset({"clock_map", "gps_fix", "sensor", "batch_end"})

    def __init__(self, config: Config | None = None, filter_config: OrbitFilterConfig | None = None):
        self.config = config or Config()
        if filter_config is None:
            filter_config = orbit_filter_config(self.config)
        self.filter = OrbitEKF(filter_config)
        self.cursor = OrbitEKF(filter_config)
        self.cursor_valid = False
        self.span: StepSpan | None = None  # the cursor's last step (StepSpan): it ends at cursor.t_gps_s
        self.fix_interval_s = math.inf  # between the last two fixes used (the cursor's step length)
        self.t_prev_fix = -math.inf
        self.clock: ClockMap | None = None
        self.n_out_of_order = 0
        self.n_outputs = 0
        self.n_no_clock = 0
        self.n_stale = 0
        self.t_last_output = -math.inf  # epoch of the last sample (not propagated) estimate
        self.t_last_propagated = -math.inf  # epoch of the last estimate propagated to "now"
        self.n_time_outliers = 0
        self.n_budget_deferred = 0
        self.n_gap_reinit = 0
        self.n_gap_doubted = 0
        #: (t_gps_s, x, P) of the last confirmed state before a gap's restart, until a new
        #: start is confirmed (OrbitEKF.kept_track).
        self.kept: tuple[float, np.ndarray, np.ndarray] | None = None
        self.horizon_noted = False
        self.note_sent = False
        self.batch_ended = False
        self.decimation = admission.BatchDecimation(self.config, "orbit")
        self.n_positions_only = 0
        #: the newest sample estimate published as a position only: (t_sc_s, t_gps_s, span or
        #: None, x, P) - the span's arrays, or the cursor's (never changed in place)
        self.held: tuple[float, float, StepSpan | None, np.ndarray, np.ndarray] | None = None

    # -- inputs -------------------------------------------------------------------------
    def handle(self, msg_type: str, body: dict) -> list[Output]:
        if msg_type == "clock_map":
            self.clock = clock_map_from_body(body)
            return []
        if msg_type == "gps_fix":
            if body["peer_id"] == 0:
                self._fix(body)
            return []
        if msg_type == "sensor":
            return self._output(body["t_sc_s"], propagated=False, budget_s=self.config.handler_budget_s)
        if msg_type == "batch_end":
            self.batch_ended = True
            out = self._publish_held()
            if not self.filter.initialized and not self.note_sent:
                self.note_sent = True
                out.append(
                    (
                        "estimator_note",
                        {
                            "estimator": "orbit",
                            "peer_id": 0,
                            "code": "no_fix",
                            "text": "no valid GPS fix in the batch: no orbit estimate",
                        },
                    )
                )
            return out
        return []

    def _fix(self, b: dict) -> None:
        f = self.filter
        if not b["valid"]:
            f.skip_invalid()
            return
        c = self.config
        if not admission.own_fix_time_ok(self.clock, b["t_gps_s"], b["t_sc_s"], c.fix_time_tolerance_s):
            # Its GPS time disagrees with its own spacecraft time stamp (a corrupt week/ms):
            # using it would drag the filter to a wrong epoch.
            f.skip_invalid()
            self.n_time_outliers += 1
            return
        fix = GpsFix(b["t_gps_s"], b["pos_ecef_m"], b["vel_ecef_m_s"], b["pos_sigma_m"], b["vel_sigma_m_s"])
        t = fix.t_gps_s
        if not admission.fix_plausible(c, fix.pos_ecef_m, fix.vel_ecef_m_s):
            f.skip_invalid()
            return
        if f.initialized and t <= admission.epoch(f) + 1e-3:  # older than, or a repeat of, a fix already used
            self.n_out_of_order += 1
            return
        if f.initialized and admission.gap_needs_reinit(admission.epoch(f), t, c.max_gap_propagation_s):
            self.n_gap_reinit += 1  # re-initialise rather than propagate across the gap
            if f.confirmed:  # the last confirmed track, kept until a new start is confirmed
                self.kept = f.kept_track()
            f.reset()
        if not f.initialized:
            f.start(fix)
            self._ask_kept_track(fix)
        else:
            refused_starts = f.n_start_refused
            cur, span = self.cursor, self.span
            if self.cursor_valid and admission.epoch(f) <= admission.epoch(cur) <= t + 1e-6:
                # The output cursor has carried this very filter state (no fix since it was
                # seeded) to the end of its last step, at or before the fix (usually exactly
                # at it: the step's length is the fix interval): go on from there rather
                # than propagate the same span a second time.
                f.adopt(t if abs(admission.epoch(cur) - t) <= 1e-6 else admission.epoch(cur), cur.x, cur.p)
            elif self.cursor_valid and span is not None and admission.epoch(f) <= span.t0_gps_s <= t:
                f.adopt(span.t0_gps_s, span.x0, span.p0)
            f.predict_to(t)  # at most max_gap_propagation_s: bounded
            f.update_gps(fix)
            if not admission.finite(f.x, f.p):  # never keep a non-finite state
                need = (f.confirm_fixes, f.confirm_span_s)  # (a restart's own requirement kept)
                f.reset()
                f.initialize_from_fix(fix, *need)
            elif f.n_start_refused > refused_starts:  # started again from this fix
                self._ask_kept_track(fix)
        if f.confirmed:
            self.kept = None
        if t - self.t_prev_fix > 0.0:
            self.fix_interval_s = t - self.t_prev_fix
        self.t_prev_fix = t
        self.cursor_valid = False  # re-seed the output cursor from the new filter state

    def _ask_kept_track(self, fix: GpsFix) -> None:
        """A state just started from *fix*, with a track kept from before a gap: when that
        track, carried to the fix, refuses it, the new state must hold for minutes as after
        refused fixes (a glitched window); when it agrees, two fixes confirm it."""
        if self.kept is None:
            return
        f = self.filter
        agrees = f.agrees_with(fix, self.kept, GAP_CHECK_MAX_S)
        if agrees is False:
            self.n_gap_doubted += 1
            f.confirm_fixes, f.confirm_span_s = (
                f.config.max_consecutive_rejections + 2,
                f.config.restart_confirm_min_span_s,
            )
        elif agrees:
            f.confirm_fixes, f.confirm_span_s = 2, 0.0

    # -- outputs ------------------------------------------------------------------------
    def _output(self, t_sc_s: float, propagated: bool, budget_s: float = math.inf) -> list[Output]:
        if not self.filter.initialized:
            return []
        if self.clock is None:
            self.n_no_clock += 1
            return []
        t_gps = admission.gps_from_own_clock(self.clock, t_sc_s)
        if t_gps is None:
            self.n_time_outliers += 1
            return []
        f, c = self.filter, self.cursor
        horizon = admission.epoch(f) + self.config.max_propagation_s
        out: list[Output] = []
        if t_gps > horizon:
            if not propagated:  # a sample absurdly far ahead of the data: a corrupt stamp
                self.n_time_outliers += 1
                return []
            if not self.horizon_noted:
                self.horizon_noted = True
                out.append(
                    (
                        "estimator_note",
                        {
                            "estimator": "orbit",
                            "peer_id": 0,
                            "code": "propagation_horizon",
                            "text": f"not propagated beyond {self.config.max_propagation_s:.0f} s after the last fix",
                        },
                    )
                )
            t_gps = horizon
        if propagated and t_gps <= max(self.t_last_output, self.t_last_propagated):
            return out  # nothing newer than what was published: no news
        if t_gps < admission.epoch(f) - 1e-3 or t_gps <= self.t_last_output:
            # Older than the filter or than the last output (e.g. a restarted ingest
            # replaying the batch): published already, or never can be.  Output times
            # strictly increase.
            self.n_stale += 1
            return []
        span = self.span
        moved = False  # the cursor's state changed in this call (checked finite below)
        if not self.cursor_valid or t_gps < (admission.epoch(c) if span is None else span.t0_gps_s) - 1e-6:
            c.t_gps_s, c.x, c.p = f.t_gps_s, f.x.copy(), f.p.copy()
            self.cursor_valid = moved = True
            self.span = span = None
        # The cursor steps ahead in whole steps, each as long as the fix interval (at most
        # the model's max step): the next fix's prediction is then the step's end, and
        # every sample inside a step is interpolated in it instead of propagated to.  A
        # long gap is covered over several calls, each within its budget.
        budget = admission.Budget(budget_s)
        while admission.epoch(c) < t_gps - 1e-6 and not budget.spent():
            h = self._cursor_step_s(admission.epoch(c), t_gps)
            self.span = span = c.predict_step(h)
            moved = True
        reached = admission.epoch(c) >= t_gps - 1e-6
        if moved and not admission.finite(c.x, c.p):
            self.cursor_valid = False
            self.span = None
            return out
        if not reached and not propagated:
            self.n_budget_deferred += 1  # the next sample goes on from the epoch reached
            return out
        # The step the sample falls inside (interpolated in it), or None: at the cursor's epoch.
        in_span = span if reached and span is not None and t_gps < admission.epoch(c) - 1e-6 else None
        inside = in_span is not None
        t_est = t_gps if inside else admission.epoch(c)
        if t_est <= (max(self.t_last_output, self.t_last_propagated) if propagated else self.t_last_output):
            return out
        t_sc_est = float(t_sc_s) if t_est == t_gps else float(self.clock.sc_from_gps(t_est))
        if propagated:
            self.t_last_propagated = t_est
        else:
            self.t_last_output = t_est
        if not propagated and self.decimation.left_out(None, t_sc_est, self.batch_ended):
            # Left out of the batch's estimates: the position alone, for the attitude.
            x = c.state_in(in_span, t_gps) if in_span is not None else c.x
            self.held = (t_sc_est, t_est, in_span, c.x, c.p)
            self.n_positions_only += 1
            r_e, _ = frames.rv_gcrs_to_ecef_floats(t_est, x[0:3])  # (as the full estimate: the same numbers to the bit)
            return out + [
                ("orbit_position", {"t_sc_s": t_sc_est, "t_gps_s": t_est, "r_ecef_m": r_e, "r_gcrs_m": x[:3].tolist()})
            ]
        self.held = None
        if in_span is not None:
            x, p = c.estimate_in(in_span, t_gps)
        else:
            x, p = c.x, c.p
        return out + [self._estimate(t_sc_est, t_est, x, p, propagated)]

    def _estimate(self, t_sc_s: float, t_gps_s: float, x: np.ndarray, p: np.ndarray, propagated: bool) -> Output:
        r_i, v_i = x[:3], x[3:6]
        j, x_e = _to_ecef(t_gps_s, x)
        r_e, v_e = x_e[:3], x_e[3:6]
        p6 = p[:6, :6]
        p_e = j @ p6 @ j.T
        sig_e = np.sqrt(np.clip(np.diag(p_e), 0.0, None))
        self.n_outputs += 1
        return (
            "orbit_estimate",
            {
                "t_sc_s": t_sc_s,
                "t_gps_s": t_gps_s,
                "unix_time_s": float(utc_unix_from_gps(t_gps_s)),
                "r_ecef_m": r_e.tolist(),
                "v_ecef_m_s": v_e.tolist(),
                "r_gcrs_m": r_i.tolist(),
                "v_gcrs_m_s": v_i.tolist(),
                "sigma_r_m": sig_e[:3].tolist(),
                "sigma_v_m_s": sig_e[3:].tolist(),
                "cov_gcrs": p6.ravel().tolist(),
                "n_used": int(self.filter.n_used),
                "n_rejected": self.filter.n_rejected,
                "n_invalid": self.filter.n_invalid,
                "propagated": propagated,
                "quality": orbit_word(sig_e[:3], self.config, self.filter.confirmed),
            },
        )

    def flush_held(self) -> list[Output]:
        return self._publish_held()

    def _publish_held(self) -> list[Output]:
        """The newest sample estimate published as a position only, in full (at batch_end,
        or at stop)."""
        if self.held is None:
            return []
        (t_sc, t_gps, span, x, p), self.held = self.held, None
        self.n_positions_only -= 1
        if span is not None:
            x, p = self.cursor.estimate_in(span, t_gps)
        return [self._estimate(t_sc, t_gps, x, p, False)]

    def _cursor_step_s(self, t_cursor_s: float, t_gps_s: float) -> float:
        """Length of the cursor's next step from *t_cursor_s* toward a sample at *t_gps_s*:
        to the next fix expected (the last fix plus the last fix interval) when that is
        still ahead and not before the sample - so the next fix finds its prediction
        done - else the model's max step."""
        h_max = self.cursor.model.max_step_s
        if math.isfinite(self.fix_interval_s):
            t_next_fix = self.t_prev_fix + self.fix_interval_s
            if t_cursor_s + 1e-3 < t_next_fix and t_gps_s <= t_next_fix + 1e-6:
                return min(h_max, t_next_fix - t_cursor_s)
        return h_max

    def propagate_to_sc(self, t_sc_s: float, budget_s: float = math.inf) -> list[Output]:
        return self._output(t_sc_s, propagated=True, budget_s=budget_s)

    def counters(self) -> dict:
        f = self.filter
        return {
            "fixes_used": f.n_used,
            "fixes_rejected": f.n_rejected,
            "fixes_invalid": f.n_invalid,
            "reinit": f.n_reinit,
            "out_of_order": self.n_out_of_order,
            "outputs": self.n_outputs,
            "no_clock": self.n_no_clock,
            "stale_requests": self.n_stale,
            "time_outliers": self.n_time_outliers,
            "budget_deferred": self.n_budget_deferred,
            "gap_reinit": self.n_gap_reinit,
            "gap_doubted": self.n_gap_doubted,
            "start_refused": f.n_start_refused,
            "positions_only": self.n_positions_only,
            "last_nis": None if math.isnan(f.last_nis) else round(f.last_nis, 3),
        }
