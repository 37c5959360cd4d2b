"""Range-only relative navigation (no partner fix reaches the Pi) against its information bound.

Seeded simulator scenarios: three spacecraft (partners 1-10 km away, random along-track,
radial and cross-track offsets), ranges every ~25 s with sigma 0.5 m and a bias of a few
metres, whole-second time tags, partner priors of 1 km / 1 m/s per axis uplinked in the
spacecraft's pygnc_config.toml.  The flight FormationProcessor runs on each; its relative
position error is compared with the **posterior Cramer-Rao bound** on the same data: the
information of the prior plus every range up to each time, with both spacecraft propagated
from the truth's start with the flight dynamics model, the range Jacobians and the partner's
transition matrix evaluated along it (own positions exact, no process noise: a lower bound
for any estimator).

Ranges cannot tell on which side of the own orbit plane the partner flies (the mirror
image of the relative path keeps every range), and a window's ranges can fit other
orbits about as well; the processor keeps every such orbit as a filter until the ranges
decide and publishes their mixture.  So two errors are printed per seed and partner
after the first ``--settle-h`` hours: the **published** estimate's (3D RMS, NEES: what an
operator gets, honest about the ambiguity) and the **side-resolved** one (of the kept
orbits, the one nearest the truth: what the ranges determine), the latter against the
bound (3D and line of sight); how many alternatives were still kept at the end
(``n_alt``: 1 is the other side); the weight the last published mixture gives the kept
orbit nearest the truth (``w_true``); and whether it diverged (final side-resolved 3D error >
100 m).  Then the error vs time (median), and whether the side weights are calibrated: a
mixture's NEES says little when one of its orbits is wrong (it is heavy-tailed by nature:
a 97:3 mixture whose 3 % side is the true one has a NEES near 30 however right its weights
are), so the bench counts the runs whose mixture favours the wrong side at the end against
the number its own weights expect (the sum over runs of 1 - the largest weight).

``--side-check`` asks why the side stays open: for each partner, the simulator's noise-free
ranges of the whole run are fitted with the flight dynamics model (partner state at the
first range, drag scale, range bias: Levenberg-Marquardt, re-propagating every iteration)
from the truth and from its two mirror images (plane: cross-track flipped; point: the
relative state negated), the own spacecraft propagated with the same model from its
truth.  Printed: the **signature** of each mirror - its residual RMS after the same fit
to ranges made by the flight model itself (what would tell the sides apart if the flight
dynamics were the truth) - and the **model error** - the residual RMS of each start's fit
to the simulator's ranges (EGM2008 40x40, NRLMSISE-00 drag, SRP: the
differential forces the flight model lacks).  A side is decidable only where the
signature stands well above both the noise and the model error.

    python bench/bench_range_only.py [--seeds 20] [--hours 6] [--prior-pos-m 100 --prior-vel-m-s 0.1]
                                     [--side-check] [--scenarios DIR] [--jobs 2] [--set KEY=VALUE ...]

``--scenarios DIR`` keeps the simulated scenarios (and reuses them: compare configurations,
``--set``, on the same data); ``--jobs`` evaluates seeds in parallel processes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import math
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "flight"), str(REPO), str(REPO / "tests"), str(REPO / "bench")]

from formation_support import relative_errors, side_resolved_errors, sides_from, true_side_weight  # noqa: E402
from results import figure, record  # noqa: E402

from ground.replay.in_process import IN_PROCESS_OVERRIDES  # noqa: E402
from ground.simulate import scenario as scn  # noqa: E402
from ground.simulate.simulator import _extra_spacecraft, simulate, write_scenario  # noqa: E402
from pygnc.config import Paths, config_for_home, with_overrides  # noqa: E402
from pygnc.estimation import orbit_dynamics as od  # noqa: E402
from pygnc.estimation.formation_filter import FormationFilter, rtn_matrix, rtn_to_gcrs  # noqa: E402
from pygnc.estimation.range_only_iod import orbit_distance_m, partner_trajectory  # noqa: E402
from pygnc.estimation.range_only_prior import rtn_covariance_to_gcrs  # noqa: E402
from pygnc.processors.formation import FormationProcessor, filter_config_from  # noqa: E402
from pygnc.processors.formation_peer import range_only_config_from, range_only_filter_config  # noqa: E402
from pygnc.tasks.ingest import build_message_stream  # noqa: E402

DIVERGED_M = 100.0


def make_scenario(
    seed: int, out: Path, hours: float, prior_sigma_pos_m=1000.0, prior_sigma_vel_m_s=1.0, partners: int = 2
):
    rng = np.random.default_rng(1000 + seed)
    s = scn.ScenarioSettings(seed=seed, duration_s=hours * 3600.0)
    s.spacecraft = s.spacecraft + [_extra_spacecraft(k) for k in range(2, partners + 1)]
    for sc in s.spacecraft[1:]:
        sep = rng.uniform(1000.0, 10000.0)
        sc.dlambda_m = float(rng.choice([-1, 1]) * sep)
        sc.dey_m = float(rng.uniform(-0.2, 0.2) * sep)
        sc.diy_m = float(rng.uniform(-0.3, 0.3) * sep)
        sc.da_m = float(rng.uniform(-20.0, 20.0))
    s.ranging.bias_m = float(rng.uniform(-5.0, 5.0))
    s.ranging.sigma_m = 0.5
    s.ranging.prior_sigma_pos_m = prior_sigma_pos_m
    s.ranging.prior_sigma_vel_m_s = prior_sigma_vel_m_s
    s.attitude.max_step_s = 30.0
    s.environment.albedo = 0.0
    write_scenario(simulate(s), out)
    return dict(np.load(out / "truth.npz"))


def condition_overrides(condition: str, truth, config, rng) -> dict:
    """Flight configuration overrides of a prior condition: "uplinked" (the simulator's prior:
    the truth + its sigma's noise), "none" (no prior), "wrong_side" (the point mirror of the
    truth's relative state + the same noise: a prior that is confidently wrong about the side)."""
    if condition == "uplinked":
        return {}
    if condition == "none":
        return {"formation_peer_priors": {}}
    priors = {}
    for k in range(1, truth["radio_id"].size):
        pid = int(truth["radio_id"][k])
        pri = config.formation_peer_priors[pid]
        own_r, own_v = truth["r_ecef_m"][0][0], truth["v_ecef_m_s"][0][0]
        pos = 2.0 * own_r - truth["r_ecef_m"][k][0] + pri["sigma_pos_m"] * rng.normal(size=3)
        vel = 2.0 * own_v - truth["v_ecef_m_s"][k][0] + pri["sigma_vel_m_s"] * rng.normal(size=3)
        priors[f"0x{pid:02X}"] = {
            "t_gps_s": float(truth["t_gps_s"][0]),
            "pos_ecef_m": pos.tolist(),
            "vel_ecef_m_s": vel.tolist(),
            "sigma_pos_m": pri["sigma_pos_m"],
            "sigma_vel_m_s": pri["sigma_vel_m_s"],
        }
    return {"formation_peer_priors": priors}


def run(out: Path, overrides: dict | None = None, condition: str = "uplinked", seed: int = 0):
    config = dataclasses.replace(config_for_home(out), **IN_PROCESS_OVERRIDES)  # every estimate: judged
    if condition != "uplinked":
        truth = dict(np.load(out / "truth.npz"))
        config = with_overrides(
            config, condition_overrides(condition, truth, config, np.random.default_rng(77 + seed)), condition
        )
    if overrides:
        config = with_overrides(config, overrides, "--set")
    res, cpu_s, proc = feed(out, config)
    proc.sides = sides_from(res)
    return res, cpu_s, proc, config


def feed(out: Path, config) -> tuple[list, float, FormationProcessor]:
    """Scenario *out*'s messages through a formation processor of *config* in process:
    (its outputs, the seconds it took, the processor)."""
    msgs = build_message_stream(Paths(out), config).messages
    proc = FormationProcessor(config)
    res = []
    t0 = time.perf_counter()
    for t, b in msgs:
        if t in proc.consumes:
            res += proc.handle(t, b)
    return res, time.perf_counter() - t0, proc


def _prior_covariance(truth, k: int, config, x0: np.ndarray, prior_rtn: bool) -> np.ndarray:
    """The (r, v) covariance (6, 6) the bounds start partner *k* from at its state *x0*: the
    uplinked prior's ``cov_rtn`` (*prior_rtn*), else its sigmas (1 km, 1 m/s without one)."""
    pri = config.formation_peer_priors.get(int(truth["radio_id"][k]))
    if prior_rtn and pri and pri.get("cov_rtn") is not None:
        return rtn_covariance_to_gcrs(pri["cov_rtn"], x0)
    sp, sv = (pri["sigma_pos_m"], pri["sigma_vel_m_s"]) if pri else (1000.0, 1.0)
    return np.diag([sp**2] * 3 + [sv**2] * 3)


def own_on_model(truth, observer: int, i0: int, t_k, model: od.DynamicsModel) -> tuple[np.ndarray, np.ndarray]:
    """The observer's (positions, velocities) at the times *t_k* propagated with the flight
    model *model* from its truth at sample *i0*: the own trajectory the bounds pair with the
    partner's, which they propagate with the flight model too.  The truth's own positions
    would not do: over hours the flight model's orbit drifts from the truth's by hundreds of
    metres, so a partner propagated with it less the truth's own position is a relative
    geometry off by that much (a partner 0.7 km away: a line of sight tens of degrees wrong).
    The model's own relative trajectory departs from the truth's less (the differential
    forces: up to ~560 m in 6 h for the radial pair 0.7 km apart, most of it late), so a
    bound along it is that of a nearby, consistent geometry."""
    t_k = np.asarray(t_k, dtype=float)
    xs = np.zeros(9)
    xs[:3], xs[3:6] = truth["r_gcrs_m"][observer][i0], truth["v_gcrs_m_s"][observer][i0]
    t = float(truth["t_gps_s"][i0])
    r, v = np.empty((t_k.size, 3)), np.empty((t_k.size, 3))
    for j in np.argsort(t_k, kind="stable"):
        if t_k[j] != t:
            xs, _ = od.propagate(xs, float(t_k[j] - t), model, want_phi=False, t_gps_s=t)
            t = float(t_k[j])
        r[j], v[j] = xs[:3], xs[3:6]
    return r, v


def bound(truth, k: int, config, t_out, observer: int = 0, t_span=None, prior_rtn=False):
    """(sigma 3D, sigma LOS) of the posterior CRB at times *t_out* for partner *k* ranged by
    spacecraft *observer* (truth indices): the partner's state at its first range and the
    range bias from the ranges in *t_span* ((from, to) GPS s; default all) with the uplinked
    prior's sigmas (*prior_rtn*: its ``cov_rtn``, taken in the truth's RTN axes), the
    observer's own trajectory known exactly and the flight dynamics model taken as exact
    (both spacecraft propagated with it from the truth: :func:`own_on_model`): a lower
    bound."""
    fc = filter_config_from(config)
    f = FormationFilter(fc)
    model = f.peer_model
    obs = (truth["range_observer"] == observer) & (truth["range_peer"] == k) & truth["range_valid"]
    if t_span is not None:
        obs &= (truth["range_t_gps_s"] >= t_span[0]) & (truth["range_t_gps_s"] <= t_span[1])
    t_r = truth["range_t_gps_s"][obs]
    order = np.argsort(t_r)
    t_r = t_r[order]
    tt = truth["t_gps_s"]
    i0 = int(np.searchsorted(tt, t_r[0]))
    t0 = tt[i0]
    x0 = np.concatenate((truth["r_gcrs_m"][k][i0], truth["v_gcrs_m_s"][k][i0]))
    pos, jac = partner_trajectory(x0, t0, t_r, model)
    own, _ = own_on_model(truth, observer, i0, t_r, f.own_model)
    d = pos - own
    u = d / np.linalg.norm(d, axis=1)[:, None]
    h = np.concatenate((np.einsum("ni,nij->nj", u, jac), np.ones((t_r.size, 1))), axis=1)
    prior = np.zeros((7, 7))
    prior[:6, :6] = _prior_covariance(truth, k, config, x0, prior_rtn)
    prior[6, 6] = fc.range_bias_sigma_m**2
    info = np.linalg.inv(prior)
    sig_r2 = fc.range_sigma_m**2
    cum = np.cumsum(np.einsum("ni,nj->nij", h, h), axis=0) / sig_r2
    out3, outl = [], []
    t_out = np.asarray(t_out, dtype=float)
    by_time = np.argsort(t_out, kind="stable")  # (the partner propagated forward only)
    pos_o, jac_o = np.empty((t_out.size, 3)), np.empty((t_out.size, 3, 6))
    pos_o[by_time], jac_o[by_time] = partner_trajectory(x0, t0, np.maximum(t_out[by_time], t0), model)
    own_o, _ = own_on_model(truth, observer, i0, np.maximum(t_out, t0), f.own_model)
    for j, t in enumerate(t_out):
        n = int(np.searchsorted(t_r, t, side="right"))
        cov = np.linalg.inv(info + (cum[n - 1] if n else 0.0))
        a = jac_o[j][:, :6]
        p3 = a @ cov[:6, :6] @ a.T
        uu = pos_o[j] - own_o[j]
        uu /= np.linalg.norm(uu)
        out3.append(np.sqrt(np.trace(p3)))
        outl.append(np.sqrt(uu @ p3 @ uu))
    return np.array(out3), np.array(outl)


def bound_with_process_noise(truth, k: int, config, t_out, observer: int = 0, prior_rtn: bool = False):
    """(sigma 3D, sigma LOS) at *t_out* of the posterior CRB of partner *k* ranged by
    *observer* under the range-only filter's own model of what it does not know: the
    differential Gauss-Markov acceleration (sigma sqrt(s0^2 + (k da_km)^2), da the pair's
    semi-major-axis difference at the first range, correlation time tau), the partner's drag
    scale (its prior sigma and correlation time), the range bias, the range time tags'
    lateness (its prior sigma; the ranges' rate times it) and their whole-second resolution.
    A Riccati recursion along the flight model's trajectory from the truth's state at the
    first range, the own orbit known, the prior and range sigma as in :func:`bound`.
    :func:`bound` takes the dynamics as exact and knows the rest; this is what an estimator
    that needs the filter's model to stay consistent can reach.  Results in *t_out*'s order."""
    fc = range_only_filter_config(filter_config_from(config), range_only_config_from(config))
    filt = FormationFilter(fc)
    model = filt.peer_model
    obs = (truth["range_observer"] == observer) & (truth["range_peer"] == k) & truth["range_valid"]
    t_r = np.sort(truth["range_t_gps_s"][obs])
    tt = truth["t_gps_s"]
    i0 = int(np.searchsorted(tt, t_r[0]))
    t0 = float(tt[i0])
    x_own = np.concatenate((truth["r_gcrs_m"][observer][i0], truth["v_gcrs_m_s"][observer][i0]))
    x_peer = np.concatenate((truth["r_gcrs_m"][k][i0], truth["v_gcrs_m_s"][k][i0]))
    da_km = 1e-3 * od.semi_major_axis_difference_m(x_own[:3], x_own[3:], x_peer[:3] - x_own[:3], x_peer[3:] - x_own[3:])
    sigma_w = math.hypot(fc.diff_dmc_sigma_m_s2, fc.diff_dmc_sigma_per_km_da_m_s2 * da_km)
    tau, tau_k = fc.diff_dmc_tau_s, fc.peer_drag_scale_tau_s
    # states: r (0-2), v (3-5), differential acceleration (6-8), drag scale (9), bias (10), lateness (11)
    p = np.zeros((12, 12))
    p[:6, :6] = _prior_covariance(truth, k, config, x_peer, prior_rtn)
    p[6:9, 6:9] = np.eye(3) * sigma_w**2
    p[9, 9] = fc.peer_drag_scale_sigma**2 if fc.estimate_peer_drag_scale else 0.0
    p[10, 10] = fc.range_bias_sigma_m**2
    p[11, 11] = fc.range_time_offset_sigma_s**2 if fc.estimate_range_time_offset else 0.0
    xs = np.zeros(10)
    xs[:6], xs[9] = x_peer, 1.0
    t = t0
    t_out = np.asarray(t_out, dtype=float)
    events = sorted([(float(x), 0, 0) for x in t_r] + [(max(float(x), t0), 1, j) for j, x in enumerate(t_out)])
    te_all = [e[0] for e in events]
    own_r, own_v = own_on_model(truth, observer, i0, te_all, filt.own_model)
    out3, outl = np.zeros(t_out.size), np.zeros(t_out.size)
    for j, (te, kind, jo) in enumerate(events):
        h = te - t
        if h != 0.0:  # (the first range is up to a truth sample before t0: a step back)
            xs, step = od.propagate(xs, h, model, t_gps_s=t)
            f = np.eye(12)
            f[:6, :6] = step[:6, :6]
            if fc.estimate_peer_drag_scale:
                f[:6, 9], f[9, 9] = step[:6, 9], math.exp(-h / tau_k)
            decay = math.exp(-h / tau)
            c_v = tau * (1.0 - decay)
            c_r = tau * (h - c_v)
            for a in range(3):
                f[a, 6 + a], f[3 + a, 6 + a], f[6 + a, 6 + a] = c_r, c_v, decay
            q = np.zeros((12, 12))
            q3 = od.dmc_process_noise(abs(h), tau, sigma_w)
            for ii in range(3):
                for jj in range(3):
                    for a in range(3):
                        q[3 * ii + a, 3 * jj + a] = q3[ii, jj]
            if fc.estimate_peer_drag_scale:
                q[9, 9] = fc.peer_drag_scale_sigma**2 * (1.0 - math.exp(-2.0 * abs(h) / tau_k))
            q[10, 10] = fc.range_bias_walk_m_sqrt_s**2 * abs(h)
            p = f @ p @ f.T + q
            t = te
        d = xs[:3] - own_r[j]
        u = d / np.linalg.norm(d)
        if kind == 0:
            rate = float(u @ (xs[3:6] - own_v[j]))
            hv = np.zeros(12)
            hv[:3], hv[10], hv[11] = u, 1.0, -rate
            ph = p @ hv
            r = fc.range_sigma_m**2 + rate * rate * fc.range_tag_resolution_s**2 / 12.0
            p = p - np.outer(ph, ph) / (hv @ ph + r)
            p = 0.5 * (p + p.T)
        else:
            out3[jo] = math.sqrt(max(0.0, float(np.trace(p[:3, :3]))))
            outl[jo] = math.sqrt(max(0.0, float(u @ p[:3, :3] @ u)))
    return out3, outl


def bound_with_own_orbit(truth, k: int, config, t_out, observer: int = 0, prior_rtn: bool = False, axes=False):
    """(sigma 3D, sigma LOS) at *t_out* of the posterior CRB of partner *k* ranged by
    *observer* under the range-only filter's own model, **the own orbit estimated from its
    GPS fixes**: the formation filter's covariance recursion itself (:class:`FormationFilter`,
    every state and process noise of it) run along the flight model's trajectory from the
    truth at the first range - the own state starting from a fix's covariance (the
    configured sigma), the partner's absolute prior (the uplinked one's sigmas,
    *prior_rtn*: its ``cov_rtn``) made relative as the flight makes it (its covariance plus
    the own one's, correlated), then every own fix (the scenario's, but faulted ones) and
    range taken with a zero innovation, the own-relative correlation kept throughout (the
    flight drops it when a window fit restarts the filter).  So it is what this filter's
    model and the flight's data allow, not a bound for every estimator.
    :func:`bound_with_process_noise` takes the own orbit as known: a relative state the
    ranges do not see (a partner's cross-track) then seems known to the prior's sigma,
    where the own estimate's error at the prior's epoch is in it too - and the common
    empirical acceleration (``own_dmc_*``) lets later fixes tell little of that epoch's own
    state.  Results in *t_out*'s order; *axes*: the sigmas along the own orbit's radial,
    along-track and cross-track axes (n, 3) too."""
    fc = range_only_filter_config(filter_config_from(config), range_only_config_from(config))
    t_out = np.asarray(t_out, dtype=float)
    out3, outl, out_rtn = np.zeros(t_out.size), np.zeros(t_out.size), np.zeros((t_out.size, 3))

    def at_output(f, j):
        u = f.x[9:12] / np.linalg.norm(f.x[9:12])
        p3 = f.p[9:12, 9:12]
        out3[j] = math.sqrt(max(0.0, float(np.trace(p3))))
        outl[j] = math.sqrt(max(0.0, float(u @ p3 @ u)))
        a = rtn_matrix(f.x[0:3], f.x[3:6])
        out_rtn[j] = np.sqrt(np.maximum(0.0, np.diag(a @ p3 @ a.T)))

    _own_orbit_recursion(FormationFilter(fc), truth, k, config, t_out, observer, prior_rtn, at_output)
    return (out3, outl, out_rtn) if axes else (out3, outl)


def _own_orbit_recursion(
    f, truth, k: int, config, t_out, observer: int, prior_rtn: bool, at_output, t_span=None
) -> None:
    """Run formation filter *f*'s covariance recursion as :func:`bound_with_own_orbit`
    describes, calling ``at_output(f, j)`` at each ``t_out[j]``; only the ranges and fixes in
    *t_span* ((from, to) GPS s; default all)."""
    from pygnc.estimation.gps_fix import GpsFix

    fc = f.config
    obs = (truth["range_observer"] == observer) & (truth["range_peer"] == k) & truth["range_valid"]
    t_fix = truth["gps_t_gps_s"][~truth["gps_fault"][observer].astype(bool)]
    if t_span is not None:
        obs &= (truth["range_t_gps_s"] >= t_span[0]) & (truth["range_t_gps_s"] <= t_span[1])
        t_fix = t_fix[(t_fix >= t_span[0]) & (t_fix <= t_span[1])]
    t_r = np.sort(truth["range_t_gps_s"][obs])
    tt = truth["t_gps_s"]
    i0 = max(0, int(np.searchsorted(tt, t_r[0], side="right")) - 1)  # (the truth's sample at or before it)
    t0 = float(tt[i0])
    own0 = np.concatenate((truth["r_gcrs_m"][observer][i0], truth["v_gcrs_m_s"][observer][i0]))
    peer0 = np.concatenate((truth["r_gcrs_m"][k][i0], truth["v_gcrs_m_s"][k][i0]))
    r_fix = np.diag([fc.orbit.pos_sigma_m**2] * 3 + [fc.orbit.vel_sigma_m_s**2] * 3)
    f.initialize(t0, own0, r_fix, peer0, _prior_covariance(truth, k, config, peer0, prior_rtn), ranges_acquired=True)
    events = sorted(
        [(float(x), 0, 0) for x in t_r if x >= t0]
        + [(float(x), 1, 0) for x in t_fix if x > t0]
        + [(max(float(x), t0), 2, j) for j, x in enumerate(t_out)]
    )
    zero = np.zeros(3)
    for te, kind, j in events:
        if kind == 0:
            f.predict_to(f.range_base_time(te))
            f.absorb_range_covariance(te)
            continue
        f.predict_to(te)
        if kind == 1:
            f.update_own_fix(GpsFix(te, zero, zero, None, None), gcrs=(f.x[0:6].copy(), r_fix))
            continue
        at_output(f, j)


def _draws(cov: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """*n* draws (columns) from N(0, *cov*) for a covariance that may be singular."""
    w, v = np.linalg.eigh(0.5 * (cov + cov.T))
    return (v * np.sqrt(np.maximum(w, 0.0))) @ rng.standard_normal((w.size, n))


class _ErrorTwin(FormationFilter):
    """A formation filter whose covariance recursion also carries *draws* error vectors of an
    estimator that is exactly consistent with it: drawn from its starting covariance, carried
    through each step's transition with a draw of the step's process noise, and through each
    update's gain with a draw of the measurement's noise (the update of an own fix or a range
    that :func:`_own_orbit_recursion` takes with zero innovation)."""

    def __init__(
        self, config, draws: int, rng: np.random.Generator, prior_state=None, own_fix_errors: dict | None = None
    ) -> None:
        super().__init__(config)
        self.draws, self.rng, self.err, self.prior_state = draws, rng, None, prior_state
        self.own_fix_errors = own_fix_errors
        self._phi = self._q_step = None

    def initialize(self, t_gps_s, own_z, own_r, peer_z, peer_r, ranges_acquired=False) -> None:
        super().initialize(t_gps_s, own_z, own_r, peer_z, peer_r, ranges_acquired)
        self.err = _draws(self.p, self.draws, self.rng)
        if self.own_fix_errors:
            # the own state starts as a fix would: the error of the last one in the minute up
            # to the start (the relative error, the partner's less the own, moves with it)
            before = [t for t in self.own_fix_errors if float(t_gps_s) - 60.0 <= t <= float(t_gps_s)]
            if before:
                own = np.asarray(self.own_fix_errors[max(before)], dtype=float)[:, None]
                self.err[9:15] += self.err[0:6] - own
                self.err[0:6] = own
        if self.prior_state is not None:
            # the partner's error the prior actually has, carried to the start with the model;
            # the own one as drawn (the relative state is the partner's less the own)
            from pygnc.estimation.gps_fix import GpsFix, fix_to_gcrs

            t_p, pos_ecef_m, vel_ecef_m_s = self.prior_state
            z, _ = fix_to_gcrs(GpsFix(t_p, pos_ecef_m, vel_ecef_m_s), np.ones(3), np.ones(3))
            xs = np.concatenate((z, np.zeros(3), [1.0]))
            if float(t_gps_s) != float(t_p):
                xs, _ = od.propagate(xs, float(t_gps_s) - float(t_p), self.peer_model, want_phi=False, t_gps_s=t_p)
            e_peer = xs[:6] - np.asarray(peer_z, dtype=float)
            self.err[9:15] = e_peer[:, None] - self.err[0:6]

    def transition(self, h: float):
        xn, phi = super().transition(h)
        self._phi = phi
        return xn, phi

    def _q(self, h: float, reported: bool = False) -> np.ndarray:
        q = super()._q(h, reported)
        if not reported:
            self._q_step = q
        return q

    def _step(self, h: float) -> None:
        super()._step(h)
        self.err = self._phi @ self.err + _draws(self._q_step, self.draws, self.rng)

    def _gain_update(self, p0: np.ndarray, h: np.ndarray, r: np.ndarray, noise: np.ndarray | None = None) -> None:
        """The errors through the update of a measurement z = H x + v, v ~ N(0, *r*) (or the
        given *noise*, every run's), the gain from *p0*, the covariance before it."""
        ph = p0 @ h.T
        k = ph @ np.linalg.inv(h @ ph + r)
        v = _draws(r, self.draws, self.rng) if noise is None else np.asarray(noise, dtype=float)[:, None]
        self.err = self.err - k @ (h @ self.err) + k @ v

    def update_own_fix(self, fix, gcrs=None):
        gcrs = gcrs if gcrs is not None else self.fix_gcrs(fix)
        p0 = self.p
        result = super().update_own_fix(fix, gcrs)
        if self.p is not p0:  # (a rejected fix leaves the covariance, and the errors, as they were)
            h = np.zeros((6, self.x.size))
            h[:, 0:6] = np.eye(6)
            self._gain_update(p0, h, gcrs[1], (self.own_fix_errors or {}).get(round(fix.t_gps_s, 3)))
        return result

    def absorb_range_covariance(self, t_gps_s: float, sigma_m: float | None = None) -> None:
        # The range's variance is the one the filter took: its update is P - P h h^T P / s,
        # so with u = P h, u^T (P - P') u = |u|^4 / s (the state, and so h, does not change).
        p0 = self.p
        h = self._range_terms(self.range_ahead_s(float(t_gps_s)))[1]
        super().absorb_range_covariance(t_gps_s, sigma_m)
        u = p0 @ h[0]
        d = float(u @ (p0 - self.p) @ u)
        if d > 0.0:
            s = float(u @ u) ** 2 / d
            self._gain_update(p0, h, np.array([[s - float(h[0] @ u)]]))


def consistent_twin(
    truth,
    k: int,
    config,
    t_out,
    draws: int = 200,
    seed: int = 0,
    observer: int = 0,
    prior_rtn: bool = False,
    t_span=None,
    prior_state=None,
    own_fix_errors: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(NEES, squared 3D error [m^2]), each (draws, len(t_out)), of the relative position at
    *t_out* in *draws* runs of an estimator exactly consistent with the range-only filter's
    model on this scenario's own fixes and ranges (:class:`_ErrorTwin` on
    :func:`bound_with_own_orbit`'s recursion, whose sigmas it has): how often a sigma that is
    right leaves an epoch past its 99.9 % bound, and how a run's RMS spreads about the
    bound, with the errors as correlated in time as the model makes them.  *t_span*: only the
    ranges and fixes in it ((from, to) GPS s), as :func:`bound` takes it.  *prior_state*: the
    partner's prior (t_gps_s, pos_ecef_m, vel_ecef_m_s), whose error against the truth every
    run then starts from instead of a draw (what a right sigma makes of this very prior);
    *own_fix_errors*: {t_gps_s to the ms: the own fix's GCRS [r, v] error (6,)}, the noise every run's
    own fixes then have (:func:`own_fix_errors`)."""
    fc = range_only_filter_config(filter_config_from(config), range_only_config_from(config))
    t_out = np.asarray(t_out, dtype=float)
    nees, err2 = np.zeros((draws, t_out.size)), np.zeros((draws, t_out.size))

    def at_output(f, j):
        e = f.err[9:12]
        nees[:, j] = np.sum(e * np.linalg.solve(f.p[9:12, 9:12], e), axis=0)
        err2[:, j] = np.sum(e * e, axis=0)

    twin = _ErrorTwin(fc, draws, np.random.default_rng(seed), prior_state, own_fix_errors)
    _own_orbit_recursion(twin, truth, k, config, t_out, observer, prior_rtn, at_output, t_span)
    return nees, err2


def own_fix_errors(truth, messages, observer: int = 0) -> dict:
    """{t_gps_s (to the ms): GCRS [r, v] error (6,)} of the observer's valid own GPS fixes in a
    message stream (``build_message_stream``; the fixes fall on the truth's samples), but
    those the truth marks faulted."""
    from pygnc.estimation.gps_fix import GpsFix, fix_to_gcrs

    tt = truth["t_gps_s"]
    faulted = {round(float(t), 3) for t in truth["gps_t_gps_s"][truth["gps_fault"][observer].astype(bool)]}
    out = {}
    for kind, b in messages:
        if kind != "gps_fix" or b.get("peer_id", 0) != 0 or not b.get("valid", True):
            continue
        t = float(b["t_gps_s"])
        if round(t, 3) in faulted:  # (an outlier the scenario made: the recursion takes no faulted fix)
            continue
        i = int(np.searchsorted(tt, t))
        if i >= tt.size or abs(tt[i] - t) > 1e-6:
            continue
        z, _ = fix_to_gcrs(GpsFix(t, b["pos_ecef_m"], b["vel_ecef_m_s"]), np.ones(3), np.ones(3))
        out[round(t, 3)] = z - np.concatenate((truth["r_gcrs_m"][observer][i], truth["v_gcrs_m_s"][observer][i]))
    return out


def _fit_run(x, t0, t_r, own, rho, model, bias_sigma_m):
    """Levenberg-Marquardt fit of (partner state at *t0*, drag scale, bias) to the ranges
    *rho* from *x*; the residual RMS [m] and the fitted state."""

    def evaluate(p8):
        pos, jac = partner_trajectory(p8[:6], t0, t_r, model, drag_scale=p8[6], with_scale=True)
        d = pos - own
        rr = np.linalg.norm(d, axis=1)
        return rho - rr - p8[7], np.einsum("ni,nij->nj", d / rr[:, None], jac)

    p8 = np.concatenate((x, [1.0, 0.0]))
    lam, best = 1e-3, None
    for _ in range(30):
        res, hu = evaluate(p8)
        cost = float(res @ res) + (p8[7] / bias_sigma_m) ** 2
        if best is not None and not cost < best[0]:
            p8, lam = best[1], lam * 10.0
            if lam > 1e6:
                break
            res, hu = evaluate(p8)
        else:
            best, lam = (cost, p8.copy()), max(lam / 3.0, 1e-8)
        h = np.concatenate((hu, np.ones((t_r.size, 1))), axis=1)
        normal = h.T @ h
        normal[7, 7] += 1.0 / bias_sigma_m**2
        g = h.T @ res
        g[7] -= p8[7] / bias_sigma_m**2
        step = np.linalg.solve(normal + lam * np.diag(np.diag(normal)), g)
        p8 = p8 + step
        if float(np.linalg.norm(step[:3])) < 0.01:
            break
    return float(np.sqrt(best[0] / t_r.size)), best[1]


def side_check(truth, k: int, config) -> dict:
    """Mirror signature and model error of partner *k* over the whole run (see --side-check):
    {start: (signature RMS m, model-error RMS m, the latter fit's orbit distance from the
    truth m)} for the truth and its two mirrors."""
    fc = filter_config_from(config)
    model = FormationFilter(fc).peer_model
    obs = (truth["range_observer"] == 0) & (truth["range_peer"] == k) & truth["range_valid"]
    order = np.argsort(truth["range_t_gps_s"][obs])
    t_r = truth["range_t_gps_s"][obs][order]
    sim_rho = truth["range_true_m"][obs][order]
    tt = truth["t_gps_s"]
    i0 = int(np.searchsorted(tt, t_r[0]))
    t0 = tt[i0]
    ro, vo = truth["r_gcrs_m"][0][i0], truth["v_gcrs_m_s"][0][i0]
    x_true = np.concatenate((truth["r_gcrs_m"][k][i0], truth["v_gcrs_m_s"][k][i0]))
    # Both spacecraft in the flight model: the own one too (its model errors mostly cancel
    # in the relative motion, as in the filter, which propagates both with that model).
    own = partner_trajectory(
        np.concatenate((ro, vo)),
        t0,
        t_r,
        dataclasses.replace(model, ballistic_coeff_kg_m2=fc.orbit.ballistic_coeff_kg_m2),
    )[0]
    model_rho = np.linalg.norm(partner_trajectory(x_true, t0, t_r, model)[0] - own, axis=1)
    a = rtn_matrix(ro, vo)
    omega = np.cross(ro, vo) / float(ro @ ro)
    dr, dv = x_true[:3] - ro, x_true[3:] - vo
    dr_rtn, dv_rot = a @ dr, a @ (dv - np.cross(omega, dr))
    out = {}
    for name, flip in (("truth", np.ones(3)), ("plane", np.array([1.0, 1.0, -1.0])), ("point", -np.ones(3))):
        r_m, v_m = rtn_to_gcrs(ro, vo, flip * dr_rtn, flip * dv_rot)
        x = np.concatenate((ro + r_m, vo + v_m))
        sig, _ = _fit_run(x, t0, t_r, own, model_rho, model, fc.range_bias_sigma_m)
        err, fitted = _fit_run(x, t0, t_r, own, sim_rho, model, fc.range_bias_sigma_m)
        out[name] = (sig, err, orbit_distance_m(fitted[:6], x_true))
    return out


def evaluate_seed(seed: int, out: Path, args) -> dict:
    """Simulate seed *seed* into *out* (unless it holds a scenario already), run the flight
    processor on it and compare with the truth and the bound: the rows, curves and side
    checks of its two partners, and their printed lines."""
    if (out / "truth.npz").is_file():
        truth = dict(np.load(out / "truth.npz"))
    else:
        truth = make_scenario(seed, out, args.hours, args.prior_pos_m, args.prior_vel_m_s, args.partners)
    overrides = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        overrides[k] = tomllib.loads(f"v = {v}")["v"]
    res, cpu_s, proc, config = run(out, overrides, args.condition, seed)
    settle = args.settle_h * 3600.0
    n_r = proc.counters()["ranges_used"] + proc.counters()["ranges_fitted"]
    got = {"rows": [], "curves": [], "side_rows": [], "lines": [], "consistency": []}
    for k in range(1, truth["radio_id"].size):
        pid = int(truth["radio_id"][k])
        est = [b for t, b in res if t == "formation_estimate" and b["peer_id"] == pid and not b["propagated"]]
        if not est:
            got["lines"].append(f"  {seed:4d}  0x{pid:02X}   no estimate")
            continue
        e = relative_errors(truth, est, settle)
        tg = np.array([b["t_gps_s"] for b in est])
        keep = tg - truth["t_gps_s"][0] >= settle
        b3, bl = bound(truth, k, config, tg[keep])
        crb3 = float(np.sqrt(np.mean(b3**2)))
        crbl = float(np.sqrt(np.mean(bl**2)))
        side_err, side_los, both_open = side_resolved_errors(truth, k, proc.sides, pid, settle)
        side3 = float(np.sqrt(np.mean(side_err**2)))
        sidel = float(np.sqrt(np.mean(side_los**2)))
        div = float(side_err[-1]) > DIVERGED_M
        last_w = [sd[4] for sd in proc.sides if sd[0] == pid][-1]
        w_true = true_side_weight(truth, k, proc.sides, pid)
        sep = float(np.mean(np.linalg.norm(e["dr_true"], axis=1))) / 1e3
        got["rows"].append(
            (
                seed,
                pid,
                sep,
                side3,
                crb3,
                sidel,
                crbl,
                float(np.mean(e["nees"])),
                div,
                e["rms_r"],
                both_open,
                w_true,
                max(last_w),
            )
        )
        line_index = len(got["lines"])
        got["lines"].append(
            f"  {seed:4d}  0x{pid:02X}   {sep:6.1f}  {e['rms_r']:7.1f}  {np.mean(e['nees']):5.1f} | "
            f"{side3:8.2f}  {crb3:7.2f}  {side3 / crb3:5.2f}  {sidel:5.2f}  {crbl:8.2f}  {sidel / crbl:5.2f}  "
            f"{both_open:6d}  {w_true:6.3f}  {'YES' if div else 'no':8s}  "
            f"{1e3 * cpu_s / max(n_r, 1):.2f}"
        )
        if args.side_check:
            sc = side_check(truth, k, config)
            got["side_rows"].append(sc)
            got["lines"].append(
                "        side check: "
                + "; ".join(
                    f"{n} start: signature {v[0]:.2f} m, model error {v[1]:.1f} m (fit {v[2]:.0f} m from truth)"
                    for n, v in sc.items()
                )
            )
        cons = consistency(truth, est, config)
        got["consistency"].append(cons)
        got["lines"][line_index] += f"  {100.0 * cons['inside'] / max(cons['n'], 1):9.1f}"
        err = np.linalg.norm(relative_errors(truth, est, 0)["er"], axis=1)
        t_rel = tg - truth["t_gps_s"][0]
        # (NaN past the run's end: np.interp would hold the last value there)
        got["curves"].append(
            [float(np.interp(h * 3600.0, t_rel, err)) if h * 3600.0 <= t_rel[-1] else math.nan for h in (1, 2, 3, 4, 6)]
        )
    return got


#: 99.9 % point of chi-square with 3 degrees of freedom: the NEES bound of issue 36.
NEES_999_3DOF = 16.266


def consistency(truth, est: list[dict], config) -> dict:
    """After the partner's acquisition (its first estimate not ``acquiring``): the NEES of
    every published estimate against the 99.9 % bound, the seconds from the window's opening
    to the acquisition, and the time from the opening after which the kept orbits agree
    within the validity bound for good (``ambiguity_m``; NaN: never); and how many epochs
    were reported valid, and of those how many with the NEES past its bound (confidently
    wrong)."""
    tg = np.array([b["t_gps_s"] for b in est])
    acq = np.array([b["acquiring"] for b in est])
    after = np.flatnonzero(~acq)
    out = {
        "t_acq_s": float(tg[after[0]] - tg[0]) if after.size else math.nan,
        "n": 0,
        "inside": 0,
        "t_decided_s": math.nan,
        "n_valid": 0,
        "n_valid_wrong": 0,
    }
    if not after.size:
        return out
    e = relative_errors(truth, est, 0.0)
    sel = tg >= tg[after[0]]
    nees = e["nees"][sel]
    out["n"], out["inside"] = int(nees.size), int(np.sum(nees <= NEES_999_3DOF))
    amb = np.array([b["ambiguity_m"] for b in est])
    open_ = np.flatnonzero(amb > config.formation_valid_max_sigma_m)
    last_open = open_[-1] if open_.size else -1
    if last_open < tg.size - 1:
        out["t_decided_s"] = float(tg[last_open + 1] - tg[0])
    sig = np.array([np.linalg.norm(b["sigma_dr_m"]) for b in est])
    valid = sel & ~acq & (amb <= config.formation_valid_max_sigma_m) & (sig <= config.formation_valid_max_sigma_m)
    out["n_valid"] = int(np.sum(valid))
    out["n_valid_wrong"] = int(np.sum(valid & (e["nees"] > NEES_999_3DOF)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--settle-h", type=float, default=2.0)
    ap.add_argument("--prior-pos-m", type=float, default=1000.0, help="uplinked prior sigma per axis, m")
    ap.add_argument("--prior-vel-m-s", type=float, default=1.0, help="uplinked prior sigma per axis, m/s")
    ap.add_argument(
        "--side-check",
        action="store_true",
        help="also fit each partner's whole run from the truth and its mirrors (see above)",
    )
    ap.add_argument(
        "--scenarios",
        type=Path,
        help="keep the simulated scenarios in this directory (s1, s2 ...) and reuse those already "
        "there (they must have been made with the same --hours and prior options)",
    )
    ap.add_argument("--jobs", type=int, default=1, help="seeds evaluated in parallel (processes)")
    ap.add_argument("--partners", type=int, default=2, help="partners per scenario (spacecraft - 1)")
    ap.add_argument(
        "--condition",
        choices=("uplinked", "none", "wrong_side"),
        default="uplinked",
        help="the partners' priors: the simulator's (truth + noise), none, or the truth's point mirror "
        "+ noise (confidently on the wrong side)",
    )
    ap.add_argument("--record", action="store_true", help="record the summary in bench/results (the performance page)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="flight configuration override (TOML value), e.g. --set 'range_only={side_model_sigma_m = 0}'",
    )
    args = ap.parse_args()
    if not 0 <= args.settle_h < args.hours:
        ap.error(
            f"--settle-h ({args.settle_h:g}) must be shorter than --hours ({args.hours:g}): nothing would be judged"
        )
    rows, curves, side_rows, cons = [], [], [], []
    print(
        f"== range-only: {args.seeds} seeds x {args.partners} partners, {args.hours:.0f} h, prior {args.condition} "
        f"({args.prior_pos_m:.0f} m / {args.prior_vel_m_s:g} m/s), RMS after {args.settle_h:.0f} h vs the posterior CRB"
        + (f"; overrides {', '.join(args.set)}" if args.set else "")
        + " =="
    )
    print(
        "  seed partner  sep_km  pub3d_m  nees  | side3d_m  crb3d_m  ratio  los_m  crblos_m  ratio  "
        "n_alt  w_true  diverged  ms/range  nees_in_%"
    )
    with tempfile.TemporaryDirectory() as tmp:
        base = args.scenarios or Path(tmp)
        seeds = range(1, args.seeds + 1)
        outs = [base / f"s{seed}" for seed in seeds]
        if args.jobs > 1:
            with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
                results = list(pool.map(evaluate_seed, seeds, outs, [args] * len(outs)))
        else:
            results = map(evaluate_seed, seeds, outs, [args] * len(outs))
        for got in results:
            for line in got["lines"]:
                print(line, flush=True)
            rows += got["rows"]
            curves += got["curves"]
            side_rows += got["side_rows"]
            cons += got["consistency"]
    ok = [r for r in rows if not r[8]]
    print(
        f"  diverged (side-resolved final error > {DIVERGED_M:.0f} m): {sum(r[8] for r in rows)} of {len(rows)}; "
        f"alternatives still kept at the end: {sum(r[10] > 0 for r in rows)} of {len(rows)} "
        f"(most {max(r[10] for r in rows)})"
    )
    print(
        f"  published: 3D RMS median {np.median([r[9] for r in rows]):.1f} m, worst {max(r[9] for r in rows):.1f} m; "
        f"NEES mean over runs: median {np.median([r[7] for r in rows]):.1f}, worst {max(r[7] for r in rows):.1f}"
    )
    wt = np.array([r[11] for r in rows])
    doubt = np.array([1.0 - r[12] for r in rows])
    n_wrong, expect = int(np.sum(wt < 0.5)), float(doubt.sum())
    calibrated = abs(n_wrong - expect) <= 3.0 * math.sqrt(max(expect, 1.0))
    print(
        f"  side weights at the end: the published mixture favours the wrong side in "
        f"{n_wrong} of {len(rows)} runs, where its weights expect {expect:.1f} "
        f"(sum of 1 - largest weight): {'within' if calibrated else 'NOT within'} 3 sigma of their Poisson scatter"
        + ("" if calibrated or args.condition != "wrong_side" else " (the prior is on the wrong side by construction)")
        + f"; weight of the true side median {np.median(wt):.3f}, least {wt.min():.3f}"
    )
    if ok:
        r3 = np.array([r[3] / r[4] for r in ok])
        rl = np.array([r[5] / r[6] for r in ok])
        worst = max(ok, key=lambda r: r[3] / r[4])
        print(
            f"  side-resolved, converged runs: 3D/CRB median {np.median(r3):.2f}, worst {r3.max():.2f} "
            f"(seed {worst[0]} 0x{worst[1]:02X}); LOS/CRB median {np.median(rl):.2f}, worst {rl.max():.2f}"
        )
    if side_rows:
        sig = np.array([[r[n][0] for n in ("plane", "point")] for r in side_rows])
        err = np.array([[r[n][1] for n in ("truth", "plane", "point")] for r in side_rows])
        print(
            f"  side check ({len(side_rows)} partners): mirror signature under the flight model (plane / point) "
            f"median {np.median(sig[:, 0]):.2f} / {np.median(sig[:, 1]):.2f} m, smallest {sig[:, 0].min():.2f} / "
            f"{sig[:, 1].min():.2f} m; model error on the simulator's ranges (truth / plane / point start) median "
            f"{np.median(err[:, 0]):.1f} / {np.median(err[:, 1]):.1f} / {np.median(err[:, 2]):.1f} m; "
            "a mirror fits as well as the truth (within 5 %) in "
            f"{int(np.sum(err[:, 1:].min(axis=1) < 1.05 * err[:, 0]))} "
            f"of {len(side_rows)}"
        )
    if cons:
        n = sum(c["n"] for c in cons)
        inside = sum(c["inside"] for c in cons)
        per_run = [c["inside"] / c["n"] for c in cons if c["n"]]
        acq = np.array([c["t_acq_s"] for c in cons]) / 60.0
        dec = np.array([c["t_decided_s"] for c in cons]) / 3600.0
        print(
            f"  consistency after acquisition: NEES <= {NEES_999_3DOF} (chi-square 3 dof, 99.9 %) in "
            f"{100.0 * inside / max(n, 1):.1f} % of {n} epochs (runs: median {100.0 * np.median(per_run):.1f} %, "
            f"worst {100.0 * min(per_run):.1f} %; runs at >= 95 %: {sum(r >= 0.95 for r in per_run)} of "
            f"{len(per_run)}); acquisition after {np.nanmedian(acq):.0f} min median (max {np.nanmax(acq):.0f})"
        )
        decided = dec[np.isfinite(dec)]
        print(
            f"  the kept orbits agree within the validity bound ({config_bound(args)} m) for good in "
            f"{decided.size} of {dec.size} runs"
            + (f", after {np.median(decided):.1f} h median (max {decided.max():.1f} h)" if decided.size else "")
            + f"; valid epochs {sum(c['n_valid'] for c in cons)} of {n}, with the NEES past its bound "
            f"{sum(c['n_valid_wrong'] for c in cons)} (in {sum(c['n_valid_wrong'] > 0 for c in cons)} runs)"
        )
    if curves:
        c = np.array(curves)
        shown = [(h, float(np.median(c[:, k]))) for k, h in enumerate((1, 2, 3, 4, 6)) if np.isfinite(c[:, k]).all()]
        if shown:
            print("  3D error vs time (median over runs): " + ", ".join(f"{h} h {m:.1f} m" for h, m in shown))
    if args.record and rows:
        _record(args, rows, cons, ok)


def _record(args, rows, cons, ok) -> None:
    """The summary figures, for docs/performance.md."""
    n = sum(c["n"] for c in cons)
    per_run = [c["inside"] / c["n"] for c in cons if c["n"]]
    dec = np.array([c["t_decided_s"] for c in cons])
    figs = [
        figure("runs", "runs (seeds x partners)", len(rows)),
        figure(
            "nees_inside",
            "epochs after acquisition with NEES inside its 99.9 % bound",
            100.0 * sum(c["inside"] for c in cons) / max(n, 1),
            "%",
        ),
        figure("nees_inside_worst_run", "... in the worst run", 100.0 * min(per_run), "%"),
        figure(
            "runs_95",
            "runs with NEES inside its bound at >= 95 % of their epochs",
            f"{sum(r >= 0.95 for r in per_run)} of {len(per_run)}",
        ),
        figure(
            "acquired_min",
            "acquisition (window fitted) after, median",
            float(np.nanmedian([c["t_acq_s"] for c in cons])) / 60.0,
            "min",
        ),
        figure(
            "decided",
            "runs whose kept orbits come to agree within the validity bound",
            f"{int(np.sum(np.isfinite(dec)))} of {dec.size}",
        ),
        figure(
            "valid_epochs",
            "epochs reported valid after acquisition",
            100.0 * sum(c["n_valid"] for c in cons) / max(n, 1),
            "%",
        ),
        figure(
            "valid_wrong_epochs",
            "epochs reported valid with the NEES past its bound (confidently wrong)",
            sum(c["n_valid_wrong"] for c in cons),
        ),
        figure(
            "published_median_m",
            "published estimate, 3D RMS after the settling time: median",
            float(np.median([r[9] for r in rows])),
            "m",
        ),
        figure("published_worst_m", "... worst run", float(max(r[9] for r in rows)), "m"),
        figure(
            "diverged",
            "runs whose orbit nearest the truth is > 100 m off at the end",
            f"{sum(r[8] for r in rows)} of {len(rows)}",
        ),
    ]
    if ok:
        figs += [
            figure(
                "side_resolved_crb_median",
                "orbit nearest the truth: 3D RMS / information bound, median",
                float(np.median([r[3] / r[4] for r in ok])),
            ),
            figure("side_resolved_crb_worst", "... worst", float(max(r[3] / r[4] for r in ok))),
            figure(
                "side_resolved_los_crb_median",
                "... line of sight / its bound, median",
                float(np.median([r[5] / r[6] for r in ok])),
            ),
        ]
    title = (
        f"Range-only navigation: {args.seeds} seeds x {args.partners} partners, {args.hours:g} h, "
        f"prior {args.condition}"
    )
    record(
        f"range_only_{args.partners}p_{args.condition}",
        title,
        figs,
        notes=(
            "Seeded 4-spacecraft scenarios (partners 1-10 km ahead or behind, random radial / cross-track "
            "offsets and drift), ranges every ~25 s with sigma 0.5 m and a few metres of bias.  Prior "
            "'uplinked': the truth plus 1 km / 1 m/s noise (its wrong-side probability the default); 'none': "
            "no prior; 'wrong_side': the truth's point mirror plus the same noise.  NEES is the published "
            "mixture's (3 dof); 'valid' means not acquiring, not ambiguous and sigma under the bound."
        ),
    )


def config_bound(args) -> float:
    from pygnc.config import Config

    return Config().formation_valid_max_sigma_m


if __name__ == "__main__":
    main()
