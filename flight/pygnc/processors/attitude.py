"""Attitude processor: sensor samples and orbit estimates in, an attitude estimate per sample out.

Measurements are admitted by the shared policy (:mod:`pygnc.processors.admission`): a
sample whose stamp is not finite, or more than ``Config.max_propagation_s`` after the last
sample processed (a corrupt stamp), or whose gyro, magnetometer or lux reading is not finite or beyond
the sensor's range, is skipped and counted (``time_outliers``, ``bad_samples``); an orbit estimate with a
non-finite time, or a position whose radius is outside ``Config.min/max_fix_radius_m``, is ignored and
counted (``bad_orbit_estimates``).

* ``clock_map``: spacecraft time -> GPS time (the filter's time base; without it the
  spacecraft clock is used, which only matters for the step lengths).  Its residual RMS
  (the floored stamps' scatter about the map) is the 1-sigma of each sample's stated epoch
  (``Config.attitude_time_tag_*``), which the published covariance carries.
* ``sensor``: IMU-frame gyro (deg/s) and magnetometer (µT) are scaled
  (``Config.gyro_scale``, ``mag_scale``) and rotated into body axes (``imu_to_body``); the six
  faces' lux and saturation flags go in as they are.
* ``orbit_estimate`` (not ``propagated``) or ``orbit_position`` (what the orbit
  estimator publishes instead during a batch at the samples the downlink does not record)
  for the same ``t_sc_s`` gives the position for the field, sun, shadow and albedo models.  In flight the two
  arrive on different
  channels in either order, so samples wait (in time order, at most
  ``Config.attitude_max_pending_sensors``) until their orbit estimate arrives.  An orbit
  estimate for a later time releases the earlier samples (they never get one: processed
  without position); an orbit estimate that arrives first waits for its sample.
* ``estimator_note`` from ``orbit`` with code ``no_fix``: there is no position; waiting
  samples and all later ones are processed without position.  ``batch_end`` overtakes the
  last orbit estimates in flight (another channel), so the samples keep waiting for them;
  only after :data:`IDLE_CALLS_BEFORE_FLUSH` calls of :meth:`propagate_to_sc` (one a second
  after the batch) without an orbit estimate (any: a restarted orbit estimator catching up
  publishes the samples done already first) are they processed without position:
  the MEKF (if it ever started) propagates on the gyro, and the attitude-independent
  calibrator provides rates and gyro bias (``has_position`` False, and one
  ``estimator_note`` with code ``no_position``).  A sample estimate of the orbit arriving
  later (live data after the batch: the host's stream) ends that: later samples wait for
  their orbit estimates again.
* A sample or orbit estimate whose time is not after the last sample processed (a
  restarted ingest or orbit estimator publishes its batch again) is counted
  (``out_of_order``) and ignored: it takes no place among those waiting for each other.

Decimation (``Config.batch_decimate_estimates``, :class:`admission.BatchDecimation`): of
the batch's samples (those admitted before ``batch_end``, whenever they are processed -
they wait for their orbit estimates, which ``batch_end`` overtakes) only the estimates the batch
writer records are published - the first of each bin of its attitude period (60 s by
default) - and the batch's last (the newest left out is published once nothing of the
batch is waiting any more); live samples after it, every one.  Every sample is still
processed (counter ``outputs_decimated``).

* ``imu_samples`` (a live IMU, task ``imu_ingest``): rates rotated into body axes
  (``Config.imu_device_to_body``), kept (at most ``attitude_imu_max_samples``) until the
  sensor samples they span are processed.  A step they cover (no gap over
  ``attitude_imu_max_gap_s``, the last at most ``attitude_imu_max_hold_s`` before its end) is
  propagated on them (:meth:`AttitudeMEKF.propagate_imu`, with the IMU's own gyro-bias
  estimate and its calibration errors as consider parameters); any other step on the
  BMX160, so an unplugged IMU costs only its accuracy.  Blocks of another ``connection``
  (the IMU plugged in again) make its bias unknown again (``imu_reconnections``).  Samples
  with a non-finite or implausible rate (beyond 2000 deg/s), or not after the previous one,
  are dropped and counted (``imu_rejected``).  The IMU's time tags are on
  the spacecraft clock (the Pi's clock, set from the host's start argument) and go through
  the clock map like the sensor stamps; the offset between the two clocks, its rate and
  its jumps at stamp wraps are estimated (:class:`~pygnc.estimation.imu_alignment.ImuTimeAlignment`)
  and the IMU's times shifted by it (docs/design/imu_time_alignment.md).

:meth:`propagate_to_sc` moves the latest estimate to "now" with the last rate held.

Ground: with ``record_history`` on (replay ``--smooth``),
``ground.replay.attitude_smoother.smoothed_messages`` returns the fixed-interval RTS-smoothed
estimate of every processed sample.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

import numpy as np

from .. import frames
from ..config import Config, filter_tunables
from ..estimation.attitude_environment import Environment, environment_at, environments_at
from ..estimation.attitude_mekf import AttitudeEstimator, AttitudeFilterConfig, AttitudeOutput
from ..estimation.imu_alignment import ImuTimeAlignment
from ..estimation.step_regularity import StepRegularity
from ..timebase import ClockMap, utc_unix_from_gps
from ..validity import attitude_word
from . import Output, Processor, admission, clock_map_from_body

#: After batch_end, calls of propagate_to_sc (1 s apart in flight) without any orbit
#: estimate after which the waiting samples are processed without position.
IDLE_CALLS_BEFORE_FLUSH = 5
#: IMU rates beyond this are not a spacecraft's (the IMU380's full scale is 200-400 deg/s), rad/s.
IMU_MAX_RATE_RAD_S = math.radians(2000.0)
#: The IMU's rate refused by the time alignment (it and the BMX160's disagree) at this many
#: samples in a row: its next IMU_DISTRUST_STEPS steps run on the BMX160 (a stuck gyro
#: integrated for 30 s was 8-32 deg off while the attitude said `ok`; waiting for a second
#: refusal still let one step of it through on some seeds).
IMU_DISAGREEMENTS = 1
IMU_DISTRUST_STEPS = 12
#: From this many samples with a position the models are computed together
#: (:func:`environments_at`; below it the per-point functions are faster).
BATCH_MODELS_MIN = 12
#: Messages that may leave samples deferred (Config.attitude_batch_samples); any other
#: message first processes those, and leaves none.
_DEFERRING = frozenset({"sensor", "orbit_estimate", "orbit_position"})
_SAMPLE_TYPES = frozenset({"sensor"})
_ORBIT_TYPES = frozenset({"orbit_estimate", "orbit_position"})


def attitude_filter_config(config: Config) -> AttitudeFilterConfig:
    """The attitude filter's tunables: defaults overridden by ``Config.attitude_filter``
    (``ValueError`` naming an unknown key)."""
    return filter_tunables(AttitudeFilterConfig, config.attitude_filter, "attitude_filter")


class AttitudeProcessor(Processor):
    consumes = frozenset(
        {"clock_map", "sensor", "orbit_estimate", "orbit_position", "estimator_note", "batch_end", "imu_samples"}
    )

    def __init__(
        self,
        config: Config | None = None,
        filter_config: AttitudeFilterConfig | None = None,
        record_history: bool = False,
    ):
        self.config = config or Config()
        c = self.config
        rib = np.asarray(c.imu_to_body, dtype=float).reshape(3, 3)
        self._gyro_to_body = rib * np.radians(1.0) * np.asarray(c.gyro_scale, dtype=float)[None, :]
        self._mag_to_body = rib * np.asarray(c.mag_scale, dtype=float)[None, :]
        self.est = AttitudeEstimator(filter_config or attitude_filter_config(c))
        self.clock: ClockMap | None = None
        self.pending: OrderedDict[float, dict] = OrderedDict()  # t_sc_s -> sensor body
        self.orbit_waiting: OrderedDict[float, dict] = OrderedDict()  # t_sc_s -> orbit body
        self.no_position = False  # orbit declared no fix, or the batch ended and nothing waits
        self.batch_ended = False
        self.n_orbit_seen = 0
        self.idle_calls = 0
        self.note_sent = False
        self.last_t_sc_s: float | None = None
        self.last_has_position = False
        self.n_with_position = 0
        self.n_without_position = 0
        self.n_overflow = 0
        self.n_out_of_order = 0
        self.n_time_outliers = 0
        self.n_bad_samples = 0
        self.n_bad_orbit = 0
        self.n_outputs = 0
        self.n_outputs_decimated = 0
        self.decimation = admission.BatchDecimation(self.config, "attitude")
        #: the newest estimate left out: (output, t_sc, t_gps, has_position)
        self.held: tuple[AttitudeOutput, float, float, bool] | None = None
        #: the newest sample admitted before batch_end: samples up to it are the batch's (not
        #: batch_end's t_sc_last_s: that is the newest record of any kind, a peer's clock or
        #: a corrupt stamp included)
        self.batch_last_sc_s = math.inf
        self.newest_sample_sc_s = -math.inf
        self._steps: list[tuple[float, float, bool]] = []  # (t_sc, t_gps, has_position) per step, when recording
        self._imu_to_body = np.asarray(c.imu_device_to_body, dtype=float).reshape(3, 3)
        # Blocks of IMU samples as they came: (t_sc_s (k,), body rates (k, 3)), oldest first.
        self._imu_blocks: deque[tuple[np.ndarray, np.ndarray]] = deque()
        self._imu_count = 0  # samples in _imu_blocks
        self._imu_last_t_sc = -math.inf
        self.n_imu_samples = 0
        self.n_imu_reconnections = 0  # IMU connections after the first (each: its bias unknown again)
        self._imu_connection: int | None = None
        self.n_imu_rejected = 0
        self.n_imu_uncovered = 0  # steps with IMU samples around that did not cover them
        self.n_imu_distrusted = 0  # steps the IMU covered but was not used: it disagreed with the BMX160
        self._imu_distrusted_left = 0
        self.imu_align = ImuTimeAlignment()
        # The sensor samples' steps, for the IMU alignment (a wrap moves the offset).
        self._sample_steps = StepRegularity(self.est.cfg.irregular_step_threshold_s, self.est.cfg.step_history)
        self._last_sample_t_s: float | None = None
        self._align_chain: list[tuple] = []  # (t_s, IMU rate at t_s, BMX160 rate, its variance)
        self.record_history = record_history
        #: Samples admitted and in order, not yet processed: (sensor body, orbit body or None).
        self._deferred: list[tuple[dict, dict | None]] = []
        #: Outputs of processed samples held back by a failure in the same call (returned first next time).
        self._carry: list[Output] = []

    @property
    def record_history(self) -> bool:
        """Record what the ground smoother needs (off in flight: memory; replay switches it
        on before the first message)."""
        return self.est.record_history

    @record_history.setter
    def record_history(self, on: bool) -> None:
        self.est.record_history = bool(on)

    # -- inputs -------------------------------------------------------------------------
    def handle(self, msg_type: str, body: dict) -> list[Output]:
        if msg_type in _DEFERRING:
            return self._handle(msg_type, body)
        # Any other message: after the samples deferred before it, and none left deferred;
        # handled even if one of those samples failed (that failure is raised after it).
        failed = None
        try:
            self._carry = self._run_deferred()
        except Exception as exc:  # noqa: BLE001 - re-raised below, for the task to count
            failed = exc
        self._carry += self._handle(msg_type, body)
        out = self._run_deferred()
        if failed is not None:
            self._carry = out
            raise failed
        return out

    def _handle(self, msg_type: str, body: dict) -> list[Output]:
        if msg_type == "clock_map":
            self.clock = clock_map_from_body(body)
            return []
        if msg_type == "sensor":
            return self._on_sensor(body)
        if msg_type == "imu_samples":
            self._on_imu(body)
            return []
        if msg_type in ("orbit_estimate", "orbit_position"):
            if body.get("propagated"):
                return []
            self.n_orbit_seen += 1
            self.no_position = False  # an orbit exists (again): samples wait for their estimates
            out = self._on_orbit(body)
            if self.batch_ended and not self.pending:
                out += self._publish_held()  # (the newest processed: after all of out)
            return out
        if msg_type == "estimator_note":
            if body.get("estimator") == "orbit" and body.get("code") == "no_fix":
                self.no_position = True
                return self._flush()
            return []
        if msg_type == "batch_end":
            # In flight batch_end (channel meas) overtakes the orbit estimates of the last
            # samples (channel orbit): keep waiting for them, or for the orbit's no_fix note;
            # propagate_to_sc gives up after IDLE_CALLS_BEFORE_FLUSH calls without progress.
            if not self.batch_ended:
                self.batch_last_sc_s = self.newest_sample_sc_s
            self.batch_ended = True
            if not self.pending and not self.n_orbit_seen:
                self.no_position = True  # no orbit so far: live samples do not wait for one
            return self._publish_held()  # (every sample still waiting is newer)
        return []

    def saturated(self) -> frozenset[str]:
        """The samples, or the orbit estimates, once half the waiting room is taken by them
        (the other half is their replay's slack: a task turn reads a few hundred): a
        restarted attitude estimator is replayed both by two producers at their own pace."""
        half = max(1, int(self.config.attitude_max_pending_sensors) // 2)
        samples, orbits = len(self.pending) >= half, len(self.orbit_waiting) >= half
        if samples == orbits:  # (both: they are not each other's, holding would not help)
            return frozenset()
        return _SAMPLE_TYPES if samples else _ORBIT_TYPES

    def _admit_sample(self, b: dict) -> bool:
        t = b["t_sc_s"]
        if not admission.is_time(t) or (self.clock is not None and admission.gps_from_own_clock(self.clock, t) is None):
            self.n_time_outliers += 1
            return False
        if self.last_t_sc_s is not None and not admission.within_horizon(
            float(t), self.last_t_sc_s, self.config.max_propagation_s
        ):
            self.n_time_outliers += 1  # absurdly far ahead of the data: a corrupt stamp
            return False
        if not admission.sensor_plausible(b["gyro_deg_s"], b["mag_ut"], b["sun_lux"]):
            self.n_bad_samples += 1
            return False
        return True

    def _on_sensor(self, b: dict) -> list[Output]:
        if not self._admit_sample(b):
            return []
        t = float(b["t_sc_s"])
        if self.last_t_sc_s is not None and t <= self.last_t_sc_s:  # processed already (a restarted ingest)
            self.n_out_of_order += 1
            return []
        if not self.batch_ended:
            self.newest_sample_sc_s = max(self.newest_sample_sc_s, t)
        orbit = self.orbit_waiting.pop(t, None)
        if orbit is not None:
            out = self._release_before(t)
            return out + self._process(b, orbit)
        if self.no_position and not self.pending:
            return self._process(b, None)
        self.pending[t] = b
        out = []
        while len(self.pending) > max(1, int(self.config.attitude_max_pending_sensors)):
            self.n_overflow += 1
            _, old = self.pending.popitem(last=False)
            out += self._process(old, None)
        return out

    def _on_imu(self, b: dict) -> None:
        if not self.config.attitude_use_imu:
            return
        try:
            t = np.asarray(b["t_sc_s"], dtype=float).ravel()
            w = np.asarray(b["rate_imu_rad_s"], dtype=float).reshape(-1, 3)
        except (KeyError, TypeError, ValueError):
            self.n_imu_rejected += 1
            return
        if t.size != len(w):
            self.n_imu_rejected += max(t.size, len(w))
            return
        conn = b.get("connection")
        if isinstance(conn, int) and not isinstance(conn, bool):
            if self._imu_connection is not None and conn != self._imu_connection:
                self.est.imu_reconnected()  # a new turn-on bias
                self.n_imu_reconnections += 1
            self._imu_connection = conn
        ok = np.isfinite(t) & np.isfinite(w).all(axis=1) & (np.abs(w) <= IMU_MAX_RATE_RAD_S).all(axis=1)
        # Kept: plausible and after every sample kept before it (times strictly increase).
        before = np.maximum.accumulate(np.concatenate(([self._imu_last_t_sc], np.where(ok, t, -math.inf))))[:-1]
        keep = ok & (t > before)
        n = int(keep.sum())
        self.n_imu_samples += n
        self.n_imu_rejected += t.size - n
        if n:
            self._imu_blocks.append((t[keep], w[keep] @ self._imu_to_body.T))
            self._imu_count += n
            self._imu_last_t_sc = float(t[keep][-1])
            while self._imu_count - len(self._imu_blocks[0][0]) >= max(2, int(self.config.attitude_imu_max_samples)):
                self._imu_count -= len(self._imu_blocks.popleft()[0])

    def _align_imu(self, tt: np.ndarray, ww: np.ndarray, t_s: float, w_b: np.ndarray) -> None:
        """Update the IMU time-offset estimate (:mod:`pygnc.estimation.imu_alignment`).

        The IMU's rate at the sample's epoch *t_s* is the intercept of a straight line fitted
        to its samples (mapped tags *tt*, body rates *ww*) over the window before it; the
        rate change is the central difference of the neighbouring samples' intercepts (over
        two steps, ~10 s: a slope fitted inside the 2-s window is six times noisier and, as
        a noisy regressor, biases the offset towards zero - measured).  So the update for a
        sample comes one step late, on the middle one of the last three."""
        c = self.config
        sel = (tt >= t_s - c.attitude_imu_align_window_s) & (tt <= t_s)
        n = int(sel.sum())
        if n < 10 or tt[sel][-1] < t_s - 0.1 or tt[sel][0] > t_s - 0.5 * c.attitude_imu_align_window_s:
            self._align_chain.clear()  # the IMU does not reach this sample: start the chain again
            return
        x = tt[sel] - t_s
        a = np.vstack([np.ones(n), x]).T
        coef, res, *_ = np.linalg.lstsq(a, ww[sel], rcond=None)
        resid_var = float(res.sum()) / (3 * max(n - 2, 1)) if res.size else 0.0
        intercept_var = resid_var * (1.0 / n + float(x.mean() ** 2 / max(((x - x.mean()) ** 2).sum(), 1e-12)))
        chain = self._align_chain
        if chain and not 0.0 < t_s - chain[-1][0] <= c.attitude_imu_align_max_step_s:
            chain.clear()
        chain.append((t_s, coef[0], np.asarray(w_b, dtype=float), intercept_var))
        if len(chain) < 3:
            return
        (t0, w0, _, _), (t1, w1, b1, v1), (t2, w2, _, v2) = chain[-3], chain[-2], chain[-1]
        del chain[:-2]
        w_dot = (w2 - w0) / (t2 - t0)
        w_dot_var = 2.0 * max(v1, v2) / (t2 - t0) ** 2
        al = self.imu_align
        noise = self.est.cfg.gyro_noise_rad_s**2 + v1 + w_dot_var * (al.offset_s**2 + al.sigma_s**2)
        al.update(t1, w1 - b1, w_dot, noise)

    def _imu_for_step(self, t_sc: float, t_s: float, w_b: np.ndarray) -> tuple | None:
        """Update the IMU's time-offset estimate with the sample at *t_s* (BMX160 rate *w_b*),
        then return the IMU samples (aligned filter times, body rates, the offset's sigma,
        the step's start on their axis) covering the step from the filter's last epoch to
        *t_s*, or None; blocks older than this step's are dropped."""
        jump_s = 0.0
        if self._last_sample_t_s is not None and t_s > self._last_sample_t_s:
            jump_s = self._sample_steps.observe(t_s - self._last_sample_t_s)
        self._last_sample_t_s = t_s
        if not self._imu_blocks:
            return None
        f = self.est.mekf
        c = self.config
        out = None
        tt = np.concatenate([b[0] for b in self._imu_blocks])
        if self.clock is not None:
            tt = np.asarray(self.clock.gps_from_sc(tt), dtype=float)
        ww = np.concatenate([b[1] for b in self._imu_blocks])
        sigma_t = 0.0
        if c.attitude_imu_align:
            self._align_imu(tt, ww, t_s, w_b)  # (the update for the sample before this one)
            if jump_s:
                self.imu_align.stamps_stepped(jump_s)
            offset_s, sigma_t = self.imu_align.offset_at(t_s)
            tt = tt - offset_s
        if f.initialized and f.t_s is not None and t_s > f.t_s:
            # The offset moved over the step by its rate and any stamp wrap: the step's
            # start on the IMU's axis moves with it, so the IMU covers the samples' true
            # interval rather than their stamp difference.
            t0 = f.t_s
            if c.attitude_imu_align:
                moved = self.imu_align.rate * (t_s - f.t_s) - jump_s
                if abs(moved) < 0.5 * (t_s - f.t_s):
                    t0 = f.t_s - moved
            lo = max(int(np.searchsorted(tt, t0, side="right")) - 1, 0)
            hi = min(int(np.searchsorted(tt, t_s, side="left")) + 1, tt.size)
            span = tt[lo:hi]
            edges = (
                np.concatenate(([t0], span[(span > t0) & (span < t_s)], [min(t_s, span[-1])]))
                if span.size
                else np.empty(0)
            )
            if (
                span.size >= 2
                and span[-1] >= t_s - c.attitude_imu_max_hold_s
                and np.diff(edges).max(initial=0.0) <= c.attitude_imu_max_gap_s
            ):
                out = (span, ww[lo:hi], sigma_t, t0, self._imu_to_body)
            else:
                self.n_imu_uncovered += 1
        if c.attitude_imu_align and self.imu_align.rejections_in_row >= IMU_DISAGREEMENTS:
            self._imu_distrusted_left = IMU_DISTRUST_STEPS
        if out is not None and self._imu_distrusted_left > 0:
            # The IMU's rate and the BMX160's disagree beyond their noise (a stuck or
            # spiking IMU, a bias step): the step runs on the BMX160 for a while.
            self._imu_distrusted_left -= 1
            self.n_imu_distrusted += 1
            out = None
        # Blocks that ended 2 s before this sample's stamp are not needed again (the next
        # step interpolates from the last sample before its start).
        while len(self._imu_blocks) > 1 and self._imu_blocks[0][0][-1] <= t_sc - 2.0:
            self._imu_count -= len(self._imu_blocks.popleft()[0])
        return out

    def _on_orbit(self, o: dict) -> list[Output]:
        if not (
            admission.is_time(o["t_sc_s"])
            and admission.is_time(o["t_gps_s"])
            and admission.radius_plausible(self.config, o["r_ecef_m"])
            and admission.radius_plausible(self.config, o["r_gcrs_m"])
        ):
            self.n_bad_orbit += 1
            return []
        t = float(o["t_sc_s"])
        self.idle_calls = 0  # the orbit estimator is alive: the waiting samples' estimates may come
        if self.last_t_sc_s is not None and t <= self.last_t_sc_s:
            # Its sample is processed already (a restarted orbit estimator publishes the batch
            # again, catching up): it must not push out the estimates waiting for their samples.
            self.n_out_of_order += 1
            return []
        if t in self.pending:
            out = self._release_before(t)
            return out + self._process(self.pending.pop(t), o)
        if self.pending and t > next(reversed(self.pending)):
            # Its sample is still to come: everything waiting is older and gets no orbit.
            out = self._release_before(t)
        else:
            out = []
        self.orbit_waiting[t] = o
        # In the process tree the orbit task can run far ahead of this one: keep as many
        # waiting orbit estimates as waiting samples.
        while len(self.orbit_waiting) > max(1, int(self.config.attitude_max_pending_sensors)):
            self.orbit_waiting.popitem(last=False)
        return out

    def _release_before(self, t: float) -> list[Output]:
        out = []
        while self.pending and next(iter(self.pending)) < t:
            _, b = self.pending.popitem(last=False)
            out += self._process(b, None)
        return out

    def _flush(self) -> list[Output]:
        out = []
        while self.pending:
            t, b = self.pending.popitem(last=False)
            out += self._process(b, self.orbit_waiting.pop(t, None))
        return out

    # -- processing ---------------------------------------------------------------------
    def _filter_time(self, t_sc_s: float, orbit: dict | None) -> tuple[float, float]:
        """(filter time s, GPS time or NaN)."""
        if orbit is not None:
            return float(orbit["t_gps_s"]), float(orbit["t_gps_s"])
        if self.clock is not None:
            t = float(self.clock.gps_from_sc(t_sc_s))
            return t, t
        return float(t_sc_s), math.nan

    def time_tag_sigma_s(self) -> float:
        """1-sigma uncertainty of a sample's stated GPS epoch, s: the clock map's residual
        (the floored stamps' scatter about it) when it has enough pairs, else the config's."""
        c = self.config
        if (
            c.attitude_time_tag_from_clock_map
            and self.clock is not None
            and self.clock.n_pairs >= c.attitude_time_tag_min_pairs
            and math.isfinite(self.clock.residual_rms_s)
        ):
            return float(self.clock.residual_rms_s)
        return float(c.attitude_time_tag_sigma_s)

    def _process(self, b: dict, orbit: dict | None) -> list[Output]:
        """Take a sample (with its orbit estimate, or None): processed now, or during a batch
        deferred (``Config.attitude_batch_samples``) - in the same order either way."""
        t_sc = float(b["t_sc_s"])
        if self.last_t_sc_s is not None and t_sc <= self.last_t_sc_s:  # old, or a replay
            self.n_out_of_order += 1
            return []
        self.last_t_sc_s = t_sc
        limit = int(self.config.attitude_batch_samples)
        if limit > 0 and not self.batch_ended:
            self._deferred.append((b, orbit))
            return self._run_deferred() if len(self._deferred) >= limit else []
        self._carry = self._run_deferred()  # (kept if this sample fails)
        out = self._step(b, orbit, self._environments([orbit])[0] if orbit is not None else None)
        out, self._carry = self._carry + out, []
        return out

    def flush_deferred(self) -> list[Output]:
        return self._run_deferred()

    def _run_deferred(self) -> list[Output]:
        """Process the deferred samples in order, the models of those with a position
        together; return their outputs (after any carried from a call that failed).  A
        sample whose processing raises is lost alone, as it would have been on its own: the
        others are processed, their outputs carried to the next call, and the first failure
        raised (the task counts and logs it).  When the owner stops (:attr:`interrupt`), the
        samples not yet processed stay deferred."""
        out, self._carry = self._carry, []
        if not self._deferred:
            return out
        items, self._deferred = self._deferred, []
        try:
            envs = self._environments([o for _, o in items if o is not None])
        except Exception:  # noqa: BLE001 - then one at a time: only the sample that fails is lost
            envs = None
        failed = None
        k = 0
        for i, (b, orbit) in enumerate(items):
            if self.interrupt is not None and self.interrupt():
                self._deferred = items[i:] + self._deferred
                break
            try:
                env = None
                if orbit is not None:
                    k += 1
                    env = envs[k - 1] if envs is not None else self._environments([orbit])[0]
                out += self._step(b, orbit, env)
            except Exception as exc:  # noqa: BLE001 - re-raised below
                failed = failed or exc
        if failed is not None:
            self._carry = out
            raise failed
        return out

    def _environments(self, orbits: list[dict]) -> list:
        """The field, sun, shadow and albedo models at each orbit estimate's position."""
        c = self.config
        t_gps = [float(o["t_gps_s"]) for o in orbits]
        ms = [frames.gcrs_from_itrs_matrix(t) for t in t_gps]
        if len(orbits) < BATCH_MODELS_MIN:
            return [
                environment_at(t, o["r_ecef_m"], o["r_gcrs_m"], m, c.sun_lux_at_1au, c.albedo_reflectivity)
                for t, o, m in zip(t_gps, orbits, ms)
            ]
        return environments_at(
            t_gps,
            [o["r_ecef_m"] for o in orbits],
            [o["r_gcrs_m"] for o in orbits],
            ms,
            c.sun_lux_at_1au,
            c.albedo_reflectivity,
        )

    def _step(self, b: dict, orbit: dict | None, env: Environment | None) -> list[Output]:
        """One admitted sample, in order, with the models at its position (*env*) or none."""
        t_sc = float(b["t_sc_s"])
        t_s, t_gps = self._filter_time(t_sc, orbit)
        w_b = self._gyro_to_body @ np.asarray(b["gyro_deg_s"], dtype=float)
        m_b = self._mag_to_body @ np.asarray(b["mag_ut"], dtype=float)
        if env is not None:
            self.n_with_position += 1
        else:
            self.n_without_position += 1
        imu = self._imu_for_step(t_sc, t_s, w_b)
        out = self.est.step(t_s, w_b, m_b, b["sun_lux"], b["sun_saturated"], env, self.time_tag_sigma_s(), imu)
        self.last_has_position = env is not None
        if self.est.record_history:
            self._steps.append((t_sc, t_gps, env is not None))
        msgs: list[Output] = []
        if env is None and not self.note_sent:
            self.note_sent = True
            msgs.append(
                (
                    "estimator_note",
                    {
                        "estimator": "attitude",
                        "peer_id": 0,
                        "code": "no_position",
                        "text": "no orbit estimate: no field or sun model; rates and gyro bias only",
                    },
                )
            )
        in_batch = t_sc < self.batch_last_sc_s  # (the batch's last sample is always published)
        if in_batch and self.decimation.left_out(None, t_sc, False):
            self.held = (out, t_sc, t_gps, env is not None)
            self.n_outputs_decimated += 1
        else:
            self.held = None
            msgs.append(self._message(out, t_sc, t_gps, env is not None, propagated=False))
        return msgs

    def flush_held(self) -> list[Output]:
        return self._run_deferred() + self._publish_held()

    def _publish_held(self) -> list[Output]:
        """The newest estimate left out, published (at batch_end: everything after is newer)."""
        if self.held is None:
            return []
        held, self.held = self.held, None
        self.n_outputs_decimated -= 1
        return [self._message(*held, propagated=False)]

    def _message(
        self, o: AttitudeOutput, t_sc_s: float, t_gps_s: float, has_position: bool, propagated: bool
    ) -> Output:
        sig = np.sqrt(np.clip(np.diag(o.cov), 0.0, None))
        if math.isnan(t_gps_s):
            unix = float(t_sc_s)  # spacecraft clock: unix seconds as the PyCubed keeps them
        else:
            unix = float(utc_unix_from_gps(t_gps_s))
        self.n_outputs += 1
        return (
            "attitude_estimate",
            {
                "t_sc_s": float(t_sc_s),
                "unix_time_s": unix,
                "t_gps_s": float(t_gps_s),
                "q_body_to_gcrs": o.q_body_to_gcrs.tolist(),
                "rate_body_rad_s": o.rate_body_rad_s.tolist(),
                "gyro_bias_rad_s": o.gyro_bias_rad_s.tolist(),
                "sigma_att_rad": sig[:3].tolist(),
                "sigma_bias_rad_s": sig[3:6].tolist(),
                "mag_bias_body_ut": o.mag_bias_ut.tolist(),
                "sigma_mag_bias_ut": sig[6:].tolist(),
                "cov": o.cov.ravel().tolist(),
                "has_position": bool(has_position),
                "in_eclipse": bool(o.in_eclipse),
                "valid_attitude": bool(o.valid_attitude),
                "sun_faces_used": int(o.sun_faces_used),
                "propagated": propagated,
                "quality": attitude_word(sig[:3], o.valid_attitude, self.config),
                "mag_misalignment_rad": o.mag_misalignment_rad.tolist(),
                "sigma_mag_misalignment_rad": o.sigma_mag_misalignment_rad.tolist(),
                "gyro_misalignment_rad": o.gyro_misalignment_rad.tolist(),
                "sigma_gyro_misalignment_rad": o.sigma_gyro_misalignment_rad.tolist(),
            },
        )

    def propagate_to_sc(self, t_sc_s: float, budget_s: float = math.inf) -> list[Output]:
        # One constant-rate step whatever the gap: cheap, so the budget is never an issue.
        out: list[Output] = self._run_deferred()
        if self.batch_ended and self.pending:
            self.idle_calls += 1
            if self.idle_calls < IDLE_CALLS_BEFORE_FLUSH:
                return out  # the orbit estimates of the last samples may still be coming
            self.no_position = True
            out += self._flush()
        if self.batch_ended and not self.pending:
            out += self._publish_held()  # the batch's newest estimate, if it was left out
        if self.last_t_sc_s is None or not admission.is_time(t_sc_s) or t_sc_s <= self.last_t_sc_s:
            return out  # nothing to move forward (samples streamed ahead of "now")
        if self.clock is not None:
            t_gps = float(self.clock.gps_from_sc(t_sc_s))
            t_s = t_gps
        else:
            t_gps, t_s = math.nan, float(t_sc_s)
        o = self.est.propagated_output(t_s)
        return out + [self._message(o, t_sc_s, t_gps, self.last_has_position, propagated=True)]

    def counters(self) -> dict:
        f = self.est.mekf
        return {
            "steps": self.est.n_steps,
            "with_position": self.n_with_position,
            "without_position": self.n_without_position,
            "pending": len(self.pending),
            "deferred": len(self._deferred),
            "overflow": self.n_overflow,
            "out_of_order": self.n_out_of_order,
            "outputs": self.n_outputs,
            "outputs_decimated": self.n_outputs_decimated,
            "time_outliers": self.n_time_outliers,
            "bad_samples": self.n_bad_samples,
            "bad_orbit_estimates": self.n_bad_orbit,
            "inits": self.est.n_init,
            "start_waits": self.est.n_start_waits,
            "lost": self.est.n_lost,
            "restarts": self.est.n_restarts,
            "start_implausible": self.est.n_start_implausible,
            "gyro_spikes": f.n_gyro_spikes,
            "calib_updates": self.est.calib.n_updates,
            "calib_rejected": self.est.calib.n_rejected,
            "calib_magnitudes": self.est.calib.n_magnitudes,
            "calib_magnitudes_rejected": self.est.calib.n_magnitudes_rejected,
            "calib_hard_iron_reopened": self.est.calib.n_hard_iron_reopened,
            "rest_updates": self.est.calib.n_zero_rate,
            "mag_rejected": f.n_mag_rejected,
            "mag_bias_reopened": f.n_mag_bias_reopened,
            "sun_rejected": f.n_sun_rejected,
            "last_nis_mag": None if math.isnan(f.last_nis_mag) else round(f.last_nis_mag, 3),
            "imu_samples": self.n_imu_samples,
            "imu_reconnections": self.n_imu_reconnections,
            "imu_rejected": self.n_imu_rejected,
            "imu_steps": self.est.n_imu_steps,
            "imu_uncovered": self.n_imu_uncovered,
            "imu_distrusted": self.n_imu_distrusted,
            "gyro_switches": self.est.n_source_switches,
            "imu_offset_s": round(self.imu_align.offset_s, 4),
            "imu_offset_sigma_s": round(self.imu_align.sigma_s, 4),
            "imu_align_updates": self.imu_align.n_updates,
            "imu_align_rejected": self.imu_align.n_rejected,
            "imu_align_stamp_steps": self.imu_align.n_stamp_steps,
            # the mounting errors as last estimated (deg, body rotation vectors; zeros: not estimated)
            **{
                f"{name}_misalignment{part}_deg": [round(math.degrees(float(v)), 3) for v in vec]
                for name in ("mag", "gyro")
                for part, vec in zip(("", "_sigma"), f.misalignment(name))
            },
        }
