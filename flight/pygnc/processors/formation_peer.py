"""One partner of the formation processor: its filter's lifecycle.

A partner's filter starts at its first valid fix with a valid own fix at most
``max_init_pair_gap_s`` before it (partner fixes relayed), or - range-only - at a range
with such an own fix: from the configured prior carried to the range (refused when its
epoch is too far from the data or it disagrees with the range) or from the range itself,
placed along-track, with the other orbits the partner may fly as alternatives
(:class:`pygnc.estimation.range_only.PartnerHypotheses`).  Before each event the filter is
predicted to its time (:meth:`PeerTrack.reach`); it re-initialises after a gap beyond
``max_gap_propagation_s`` or a non-finite state.  Whatever changes the filters first
publishes the estimates waiting on them (:class:`~.formation_outputs.PeerOutputs`) and has
the cursor to "now" copied again (:class:`~.now_cursor.NowCursor`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Literal

import numpy as np

from ..config import Config, filter_tunables, orbit_state_problem
from ..estimation.formation_filter import FormationFilter, FormationFilterConfig, rtn_to_gcrs
from ..estimation.gps_fix import GpsFix
from ..estimation.orbit_ekf import OrbitFilterConfig
from ..estimation.range_only import Hypothesis, PartnerHypotheses, RangeOnlyConfig
from ..estimation.range_only_prior import (
    PRIOR_RANGE_GATE,
    PriorCarry,
    PriorComponent,
    absolute_prior,
    rtn_covariance_to_gcrs,
)
from . import admission
from .formation_outputs import PeerOutputs
from .now_cursor import NowCursor


class PeerTrack:
    """A known partner: :attr:`hyp` (its filter and alternatives), :attr:`outputs`,
    :attr:`cursor`, and what the processor counts and notes about it.  *prior*: its entry of
    ``Config.formation_peer_priors`` (None: none configured)."""

    def __init__(
        self,
        peer_id: int,
        filter_config: FormationFilterConfig,
        range_only: RangeOnlyConfig,
        prior: dict | None,
        own_steps: dict,
        decimation: admission.BatchDecimation,
    ):
        self.peer_id = peer_id
        self.prior = prior
        self.hyp = PartnerHypotheses(filter_config, range_only, peer_id)
        self.hyp.filter.own_steps = own_steps  # the own orbit's steps the filters share
        self.hyp.on_change = self._changing
        self.outputs = PeerOutputs(peer_id, decimation)
        self.cursor = NowCursor()
        #: the configured prior being carried to the first range (start_range_only)
        self.start_carry: PriorCarry | None = None
        #: (code, text) notes for the operator, taken by the processor after each call
        self.notes: list[tuple[str, str]] = []
        self.noted: set[str] = set()
        self.t_meas_gps_s = -math.inf  # last measurement applied to the filter
        self.gap_reset = False  # a gap beyond max_gap_propagation_s: re-initialise from the next pair
        self.last_seq = -1  # sequence number of the last queued event applied to this peer
        self.heard = False
        self.late_noted = False
        self.n_fixes = 0
        self.n_fixes_valid = 0
        self.n_fixes_late = 0
        self.n_ranges_invalid = 0
        self.n_ranges_before_init = 0
        self.n_gap_skipped = 0
        self.n_outputs = 0

    @property
    def filter(self) -> FormationFilter:
        """The most likely orbit's filter."""
        return self.hyp.filter

    @property
    def alts(self) -> list[Hypothesis]:
        return self.hyp.alts

    @property
    def t_reached(self) -> float:
        """The time the estimates have reached: the filter's, or its last waiting estimate's
        (of an initialised filter)."""
        return self.outputs.t_reached(admission.epoch(self.filter))

    def _changing(self) -> None:
        """The hypotheses are about to change: what waits on them goes first."""
        self.flush_outputs(math.inf)
        self.cursor.filters_changed = True

    def _note_once(self, key: str, code: str, text: str) -> None:
        if key not in self.noted:
            self.noted.add(key)
            self.notes.append((code, text))

    def _hypotheses(self, call: Callable[..., object], *args: object) -> None:
        """Call a method of :attr:`hyp`; its notes join :attr:`notes`."""
        try:
            call(*args)
        finally:
            self.notes += self.hyp.notes
            self.hyp.notes.clear()

    # ------------------------------------------------------------------ outputs waiting on the filter
    def flush_outputs(self, t_until_gps_s: float) -> None:
        """Predict the filter to each estimate waiting up to *t_until_gps_s* (before it is
        re-initialised or replaced, at the batch's end, before propagating to now, or when
        one has waited too long)."""
        done = self.outputs.flush(self.hyp, t_until_gps_s)
        if done is not None:
            self.cursor.filters_changed = True
        if done is False:
            self.gap_reset = True

    def flush_overdue(self, t_gps_s: float) -> None:
        """The estimates that have waited too long with the stream at *t_gps_s*."""
        limit = self.outputs.overdue(t_gps_s)
        if limit is not None:
            self.flush_outputs(limit)

    # ------------------------------------------------------------------ events
    def reach(
        self, t: float, seq: int, budget: admission.Budget, max_gap_s: float, t_to: float | None = None
    ) -> bool | None:
        """Predict the filter to *t* (or to *t_to* <= *t*: a range applied ahead of the
        filter time, FormationFilter.range_base_time) for the event *seq*, taking the
        estimates it passed: True when there, None when this event must skip the peer (not
        initialised, already applied, older than the filter, or beyond the gap limit),
        False when the budget ran out on the way."""
        f = self.filter
        if not f.initialized or self.gap_reset or self.last_seq == seq or t < admission.epoch(f) - 1e-6:
            return None
        if admission.gap_needs_reinit(self.t_reached, t, max_gap_s):
            return None
        if not admission.predict_within(f, t if t_to is None else t_to, budget):
            self.cursor.filters_changed = True
            return False
        if not admission.finite(f.x, f.p):  # never carry a non-finite state on
            self.outputs.drop()
            self.gap_reset = True
            return None
        self.outputs.take_passed(self.hyp)
        return True

    def applied(self, t: float, seq: int) -> None:
        """A measurement at *t* (event *seq*) has changed the filter."""
        self.cursor.filters_changed = True
        self.last_seq = seq
        self.t_meas_gps_s = t

    def gap_exceeded(self, t: float, max_gap_s: float) -> bool:
        """A fix at *t* beyond the gap limit: True, and the filter re-initialises from the
        next pair."""
        f = self.filter
        if (
            f.initialized
            and not self.gap_reset
            and t >= admission.epoch(f)
            and admission.gap_needs_reinit(self.t_reached, t, max_gap_s)
        ):
            self.flush_outputs(math.inf)
            self.gap_reset = True
            return True
        return False

    def start_from_fixes(self, own: GpsFix, fix: GpsFix) -> None:
        """(Re-)initialise the filter from the own fix *own* and this partner's fix *fix*."""
        f = self.filter
        # The fixes left the state (not a gap): the new one must outlive that run - and, when
        # they left a confirmed track, hold for minutes (a glitch's track is no orbit); a
        # start refused before it was confirmed passes its own span on.
        lost = f.initialized and f.needs_reinit and not self.gap_reset
        span_s = f.config.orbit.restart_confirm_min_span_s if f.confirmed else f.confirm_span_s
        if f.initialized:
            self.flush_outputs(math.inf)
            f.count_reinit()
        if lost:
            f.start_from_fixes(own, fix, f.config.max_consecutive_rejections + 1, span_s)
        else:
            f.start_from_fixes(own, fix)
        self.gap_reset = False

    def range(
        self,
        t: float,
        range_m: float,
        seq: int,
        budget: admission.Budget,
        max_gap_s: float,
        range_only: bool,
        own: GpsFix | None,
    ) -> bool:
        """A range at *t* (*own*: the last own fix, for a range-only start): applied, or
        started from, or counted; False when the budget ran out (the event is resumed)."""
        f = self.filter
        if range_only and (not f.initialized or self.gap_reset or f.needs_reinit):
            started = self.start_range_only(t, range_m, own, budget)
            if started is None:
                self.n_ranges_before_init += 1
                return True
            if started is False:
                return False  # the prior is being carried to the data: resumed next call
            self.applied(t, seq)
            self._hypotheses(self.hyp.add_window_range, t, range_m)
            return True
        if not f.initialized or self.gap_reset:
            self.n_ranges_before_init += 1
            return True
        if admission.gap_needs_reinit(admission.epoch(f), t, max_gap_s):
            self.n_gap_skipped += 1
            return True
        # Outside an acquisition window a range close ahead of the filter is applied there,
        # carried to its time in closed form: the filter steps between own fixes only.
        hyp = self.hyp
        t_to = t if hyp.window is not None else f.range_base_time(t)
        reached = self.reach(t, seq, budget, max_gap_s, t_to)
        if reached:
            if hyp.window is not None:
                self._hypotheses(hyp.add_window_range, t, range_m)
            elif hyp.carry is not None:  # a restart waits for its prior, carried to the data
                hyp.carry.retarget(t)
                if not hyp.carry.advance(budget.spent):
                    return False
                self._hypotheses(hyp.open_restart_window, t, range_m)
            else:
                # (a lost track whose restart window closed unfitted - a batch ended - is
                # restarted on its next range, not tracked on: nothing has fitted it again)
                relost = range_only and hyp.lost_range_m is not None
                if not relost:
                    f.update_range(t, range_m)
                    if hyp.alts:
                        self._hypotheses(hyp.range_on_alternatives, t, range_m)
                if relost or range_only and not self.filter.range_acquired:
                    self._hypotheses(hyp.lose, t)
                    carry = hyp.carry
                    assert carry is not None  # lose() starts one
                    if carry.advance(budget.spent):
                        self._hypotheses(hyp.open_restart_window, t, range_m)
            self.applied(t, seq)
        return reached is not False

    def finish_window(self) -> None:
        """No more ranges will come (the batch ended): fit what the open window holds."""
        self._hypotheses(self.hyp.finish_window)

    def step_fit(self) -> None:
        """One more step of a window fit under way."""
        self._hypotheses(self.hyp.step_fit)

    # ------------------------------------------------------------------ range-only start
    def _refuse_prior(self, why: str) -> None:
        """The configured prior is not used (once said): the partner starts as without one."""
        pid = self.peer_id
        self._note_once(
            f"range_only_prior_refused:{pid}", "range_only_prior_refused", f"peer 0x{pid:02X}: {why}: not used"
        )

    def _carry_prior(self, prior: dict, t: float, budget: admission.Budget) -> PriorComponent | Literal[False]:
        """The configured absolute prior carried to *t* (its first component), or False when
        *budget* ran out on the way (the next call goes on)."""
        carry = self.start_carry
        if carry is None or carry.t_target != t:
            carry = self.start_carry = PriorCarry(
                absolute_prior(
                    prior["t_gps_s"],
                    prior["pos_ecef_m"],
                    prior["vel_ecef_m_s"],
                    prior["sigma_pos_m"],
                    prior["sigma_vel_m_s"],
                    prior["cov_rtn"],
                ),
                t,
                self.filter.peer_model,
            )
        if not carry.advance(budget.spent):
            return False
        self.start_carry = None
        return carry.result().components[0]

    def start_range_only(self, t: float, range_m: float, own: GpsFix | None, budget: admission.Budget) -> bool | None:
        """Range-only start of the filter at the range time *t* from the configured prior
        (carried to *t*) or from the range itself, opening its acquisition window: True;
        None when no valid own fix (*own*) lies within ``max_init_pair_gap_s`` before; False
        when *budget* ran out carrying the prior (the next call goes on)."""
        fc, ro = self.hyp.filter_config, self.hyp.config
        if own is None or t < own.t_gps_s or t - own.t_gps_s > fc.max_init_pair_gap_s:
            return None
        f, pid = self.filter, self.peer_id
        prior = self.prior
        carried: PriorComponent | None = None
        if prior is not None and prior["frame"] == "ecef":
            age_s = t - prior["t_gps_s"]
            if abs(age_s) > ro.prior_max_age_s:
                self._refuse_prior(
                    f"the configured prior's epoch is {abs(age_s) / 3600.0:.1f} h from the data, more than "
                    f"[range_only] prior_max_age_s ({ro.prior_max_age_s / 3600.0:.0f} h)"
                )
                prior = None
            else:
                try:
                    got = self._carry_prior(prior, t, budget)
                except Exception as exc:  # noqa: BLE001 - never lose a partner to one bad prior
                    self.start_carry = None
                    self._refuse_prior(f"the configured prior cannot be carried to the data ({_reason(exc)})")
                    prior = None
                else:
                    if got is False:
                        return False
                    carried = got
        if f.initialized:
            self.flush_outputs(math.inf)
            f.count_reinit()
        own_z, own_r = f.own_at(own, t)
        eps = ro.wrong_side_probability
        if prior is not None and prior["wrong_side_probability"] is not None:
            eps = prior["wrong_side_probability"]
        source = f" ({prior['source']})" if prior is not None and prior["source"] else ""
        start = None  # (partner z (6,), relative covariance, how)
        tail = prior.get("tail_probability", 0.0) if prior is not None else 0.0
        scale = prior.get("tail_scale", 1.0) if prior is not None else 1.0
        tail_cov = None
        try:
            if carried is not None:
                assert prior is not None  # carried from it
                how = f"the configured state of epoch {prior['t_gps_s']:.0f} (GPS s){source}"
                start = (carried.x0, carried.p0 + own_r, how)
                tail_cov = carried.p0 * scale**2 + own_r
            elif prior is not None:
                dr, dv = rtn_to_gcrs(own_z[:3], own_z[3:], prior["dr_rtn_m"], prior["dv_rtn_m_s"])
                if prior["cov_rtn"] is not None:
                    rel_cov = rtn_covariance_to_gcrs(prior["cov_rtn"], own_z)
                else:
                    sp, sv = prior["sigma_pos_m"], prior["sigma_vel_m_s"]
                    rel_cov = np.diag([sp * sp] * 3 + [sv * sv] * 3)
                start = (own_z + np.concatenate((dr, dv)), rel_cov, f"the configured RTN offset{source}")
                tail_cov = rel_cov * scale**2
            why = None if start is None else _start_problem(start[0], start[1])
        except Exception as exc:  # noqa: BLE001 - never lose a partner to one bad prior
            why = f"it cannot be used ({_reason(exc)})"
        if why:
            self._refuse_prior(f"the configured prior {why}")
            start = carried = None
        if tail > 0.0 and scale > 1.0 and tail_cov is not None:
            check_cov = tail_cov  # (the widest component: a range its tail explains is no gross error)
        else:
            tail, check_cov = 0.0, start[1] if start is not None else None
        if start is not None and not prior_agrees(start[0] - own_z, check_cov, range_m, fc):
            self._note_once(
                f"range_only_prior_inconsistent:{pid}",
                "range_only_prior_inconsistent",
                f"peer 0x{pid:02X}: the configured prior puts it "
                f"{np.linalg.norm(start[0][:3] - own_z[:3]):.0f} m away, the first range says "
                f"{range_m:.0f} m: prior not used",
            )
            start = None
        if start is not None:
            z, rel_cov, how = start
            others: tuple[tuple, ...] = ((eps, 2.0 * own_z - z, "the prior's point mirror"),) if eps > 0.0 else ()
            if tail > 0.0:
                others += ((tail, z, "the prior's tail", tail_cov),)
            main_w, label = 1.0 - eps - tail, "prior"
        else:
            side = ro.placement
            sp, sv = ro.prior_sigma_pos_m, ro.prior_sigma_vel_m_s
            rel_cov = np.diag([sp * sp] * 3 + [sv * sv] * 3)
            ahead, behind = (
                own_z + np.concatenate(rtn_to_gcrs(own_z[:3], own_z[3:], (0.0, k * range_m, 0.0), (0.0, 0.0, 0.0)))
                for k in (1.0, -1.0)
            )
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
            f.initialize(t, own_z, own_r, z, carried.p0, ranges_acquired=True)
        else:
            f.initialize_relative(t, own_z, own_r, z[:3] - own_z[:3], z[3:] - own_z[3:], rel_cov)
        self.gap_reset = False
        self.hyp.start(t, how, main_w, label, others)
        return True


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:80]


def _start_problem(z: np.ndarray, cov: np.ndarray) -> str | None:
    """Why a prior's start state *z* (GCRS, 6) with covariance *cov* cannot start a filter
    (None: it can)."""
    if not (np.isfinite(z).all() and np.isfinite(cov).all()):
        return "is not finite at the data's time"
    why = orbit_state_problem(z[:3], z[3:], inertial=True)
    return None if why is None else f"{why} at the data's time"


def prior_agrees(x_rel: np.ndarray, rel_cov: np.ndarray, range_m: float, fc: FormationFilterConfig) -> bool:
    """A prior's relative state *x_rel* (6,) with covariance *rel_cov* agrees with a
    measured range: the predicted range (plus the bias prior) within sqrt(PRIOR_RANGE_GATE)
    sigmas of it."""
    rho = float(np.linalg.norm(x_rel[:3]))
    if not rho > 0.0:
        return True
    u = x_rel[:3] / rho
    s = float(u @ rel_cov[:3, :3] @ u) + fc.range_sigma_m**2 + fc.range_bias_sigma_m**2
    nu = range_m - rho - fc.range_bias_prior_m
    return nu * nu <= PRIOR_RANGE_GATE * s


def filter_config_from(config: Config) -> FormationFilterConfig:
    """The filter's tunables from the flight configuration (``[formation_filter]``, its
    own-orbit model from ``[orbit_filter]``)."""
    f = filter_tunables(FormationFilterConfig, config.formation_filter, "formation_filter")
    return dataclasses.replace(f, orbit=filter_tunables(OrbitFilterConfig, config.orbit_filter, "orbit_filter"))


def range_only_filter_config(fc: FormationFilterConfig, ro: RangeOnlyConfig) -> FormationFilterConfig:
    """The formation filter's tunables for range-only partners: the differential acceleration
    and its growth with the semi-major axis difference at least ``[range_only]``'s (their dynamics carry the
    directions the ranges hardly see), and ``[range_only]``'s range time-tag lateness prior,
    atmosphere and relative-drag noise."""
    return dataclasses.replace(
        fc,
        atmosphere=ro.atmosphere,
        diff_dmc_relative_drag_fraction=ro.diff_dmc_relative_drag_fraction,
        diff_dmc_sigma_m_s2=max(fc.diff_dmc_sigma_m_s2, ro.diff_dmc_sigma_m_s2),
        diff_dmc_sigma_per_km_da_m_s2=max(fc.diff_dmc_sigma_per_km_da_m_s2, ro.diff_dmc_sigma_per_km_da_m_s2),
        range_time_offset_s=ro.range_time_offset_s,
        range_time_offset_sigma_s=ro.range_time_offset_sigma_s,
    )


def range_only_config_from(config: Config) -> RangeOnlyConfig:
    """The range-only tunables from the flight configuration (``[range_only]``)."""
    return filter_tunables(RangeOnlyConfig, config.range_only, "range_only")
