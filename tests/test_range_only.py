"""Range-only relative navigation: the batch fit, the processor on a simulated scenario, and
what real range files and bad ranges do to it."""

from __future__ import annotations

import copy
import dataclasses
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import PY4_DATA
from formation_support import relative_errors, side_resolved_errors, sides_from

from ground.replay.in_process import IN_PROCESS_OVERRIDES
from ground.simulate import scenario as scn
from ground.simulate.simulator import simulate, write_scenario
from pygnc.config import Config, Paths, config_for_home, load_config, parse_peer_prior
from pygnc.estimation import orbit_dynamics as OD
from pygnc.estimation import range_only as RO
from pygnc.estimation import range_only_mirrors as ROM
from pygnc.estimation import range_only_prior as ROP
from pygnc.estimation import range_only_window as ROW
from pygnc.estimation.formation_filter import FormationFilter, FormationFilterConfig, rtn_matrix, rtn_to_gcrs
from pygnc.estimation.range_only_iod import IodOptions, IodPrior, IodWindow, partner_trajectory, solve_relative_orbit
from pygnc.processors.formation import FormationProcessor, filter_config_from, range_only_config_from
from pygnc.tasks.ingest import build_message_stream


def _run(messages, config, proc=None):
    """(processor, outputs) of *messages* fed to *proc* (default: a new FormationProcessor)."""
    proc = proc or FormationProcessor(config)
    out = []
    for t, b in messages:
        if t in proc.consumes:
            out += proc.handle(t, b)
    return proc, out


@pytest.fixture(scope="module")
def range_only_3h(tmp_path_factory):
    """The default two-spacecraft formation (3 km along-track), 3 h, range-only with the
    simulator's uplinked prior (1 km / 1 m/s per axis)."""
    out = tmp_path_factory.mktemp("range_only")
    s = scn.ScenarioSettings(seed=3, duration_s=3 * 3600.0)
    s.attitude.max_step_s = 30.0
    s.environment.albedo = 0.0
    write_scenario(simulate(s), out)
    config = dataclasses.replace(config_for_home(out), **IN_PROCESS_OVERRIDES)  # every estimate: judged
    return out, config, dict(np.load(out / "truth.npz"))


def test_the_simulator_uplinks_a_prior_and_the_own_source(range_only_3h):
    out, config, truth = range_only_3h
    assert config.range_gps_source == "own"
    prior = config.formation_peer_priors[0x4B]
    assert prior["frame"] == "ecef" and prior["sigma_pos_m"] == 1000.0
    err = np.linalg.norm(np.array(prior["pos_ecef_m"]) - truth["r_ecef_m"][1][0])
    assert 100.0 < err < 5000.0  # a real prior: wrong by about its sigma


def test_ingest_publishes_no_range_file_fix_as_own_or_peer(range_only_3h):
    out, config, _ = range_only_3h
    msgs = build_message_stream(Paths(out), config).messages
    assert not [b for t, b in msgs if t == "gps_fix" and b["peer_id"] != 0]
    note = next(b["note"] for t, b in msgs if t == "ingest_stats" and b["source"] == "range")
    assert "own GPS packets" in note
    peer = build_message_stream(Paths(out), Config(range_gps_source="peer")).messages
    pf = [b for t, b in peer if t == "gps_fix" and b["peer_id"] == 0x4B]
    assert pf and all(b["t_sc_s"] == int(b["t_sc_s"]) for b in pf)  # the next range's whole second


def test_range_only_converges_from_the_uplinked_prior(range_only_3h):
    """3 km along-track with a 550-m cross-track swing, a prior trusted about the side
    (wrong_side_probability 0): the ranges fix the relative orbit to metres but not on
    which side of the own orbit plane it lies (the mirror image keeps every range); the
    prior cannot tell either.  Both sides are kept, the published estimate is their mixture
    (error about the cross-track offset, and says so: NEES consistent), and the side nearer
    the truth is within metres."""
    out, config, truth = range_only_3h
    config = dataclasses.replace(config, range_only={"wrong_side_probability": 0.0})
    proc = FormationProcessor(config)
    res = []
    for t, b in build_message_stream(Paths(out), config).messages:
        if t in proc.consumes:
            res += proc.handle(t, b)
    sides = sides_from(res)
    c = proc.counters()
    assert c["range_only_starts"] == 1 and c["ranges_fitted"] > 100 and c["peer_fixes_used"] == 0
    notes = [b for t, b in res if t == "estimator_note"]
    assert [n["code"] for n in notes] == ["range_only_mirror", "range_only_start"]
    assert c["range_only_alternatives"] >= 1  # the other side is still open after 3 h
    est = [b for t, b in res if t == "formation_estimate" and not b["propagated"]]
    e = relative_errors(truth, est, 5400.0)  # from 1.5 h: the fit ended at ~0.8 h
    assert np.mean(e["nees"]) < 12.0 and e["rms_r"] < 1500.0
    side3, side_los, _ = side_resolved_errors(truth, 1, sides, 0x4B, 5400.0)
    assert np.sqrt(np.mean(side3**2)) < 20.0 and np.sqrt(np.mean(side_los**2)) < 5.0
    # Before the fit the estimate is the prior propagated, and says so.
    early = [b for b in est if b["t_gps_s"] - truth["t_gps_s"][0] < 1800.0]
    assert early and min(np.linalg.norm(b["sigma_dr_m"]) for b in early) > 500.0
    # Propagated to "now" after the batch: the mixture of the filter's cursor and, for the
    # other side, the cursor's reflection (no second propagation); its cross-track sigma
    # spans both sides.
    p = proc.peers[0x4B]
    prop = [
        b for t, b in proc.propagate_to_sc(proc.clock.sc_from_gps(p.filter.t_gps_s + 60.0)) if t == "formation_estimate"
    ]
    assert len(prop) == 1 and prop[0]["propagated"] and p.cursor.alts == [None]
    c, (w0, (w1,)) = p.cursor.filter, p.hyp.weights()
    np.testing.assert_allclose(prop[0]["dr_gcrs_m"], w0 * c.x[9:12] + w1 * ROM.reflected(c).x[9:12], atol=1e-6)
    n_c = c.relative_rtn()[0][2]  # the cursor's cross-track offset: the sides are +-n_c
    assert prop[0]["sigma_dr_rtn_m"][2] >= 2.0 * math.sqrt(w0 * w1) * abs(n_c) > 10.0


def test_bad_ranges_are_counted_never_fatal(range_only_3h):
    """Wrong partner ids, raw results that are no distance, outliers of hundreds of metres
    and absurd times: counted, the estimate still converges."""
    out, config, truth = range_only_3h
    msgs = build_message_stream(Paths(out), config).messages
    rng = np.random.default_rng(5)
    bad, n_out, n_id, n_inv = [], 0, 0, 0
    for t, b in msgs:
        bad.append((t, b))
        if t == "range" and rng.random() < 0.06:
            kind = rng.integers(0, 4)
            if kind == 0:
                bad.append((t, {**b, "peer_id": 0x21}))
                n_id += 1
            elif kind == 1:
                bad.append((t, {**b, "range_raw": (1 << 23) - 1, "valid": False}))
                n_inv += 1
            elif kind == 2 and b["t_sc_s"] - msgs[0][1].get("t_sc_s", 0) > 0:
                bad[-1] = (t, {**b, "range_m": b["range_m"] + rng.choice([-1, 1]) * rng.uniform(200, 900)})
                n_out += 1
            else:
                bad.append((t, {**b, "t_sc_s": b["t_sc_s"] + 10 * 86400.0}))
    proc, res = _run(bad, config)
    sides = sides_from(res)
    c = proc.counters()
    assert c["unknown_peer_msgs"] == n_id and c["ranges_invalid"] == n_inv
    assert c["time_outliers"] > 0 and c["ranges_rejected"] + (c["ranges_fitted"] < 300) >= 1
    est = [b for t, b in res if t == "formation_estimate" and not b["propagated"]]
    assert np.mean(relative_errors(truth, est, 5400.0)["nees"]) < 12.0
    side3, _, _ = side_resolved_errors(truth, 1, sides, 0x4B, 5400.0)
    assert np.sqrt(np.mean(side3**2)) < 30.0
    assert "unknown_peer" in [b["code"] for t, b in res if t == "estimator_note"]


def test_the_fit_recovers_an_orbit_linearised_about_the_prior():
    """Synthetic, noise-free ranges from the flight dynamics: from a prior 600 m / 0.4 m/s
    off, the fit linearised about the prior's trajectory lands within the second-order
    error of the linearised dynamics (metres), and one re-linearisation about the fit
    brings it to centimetres - the relative dynamics really are that linear."""
    f = FormationFilter()
    model = f.peer_model
    t0 = 1.4e9
    own0 = np.array([6.878e6, 0.0, 0.0, 0.0, 7612.0 * 0.12, 7612.0 * 0.99])
    dr, dv = rtn_to_gcrs(own0[:3], own0[3:], (300.0, -3000.0, 500.0), (0.0, 0.2, -0.3))
    peer0 = np.concatenate((own0[:3] + dr, own0[3:] + dv))
    t_k = t0 + np.arange(0.0, 2700.0, 25.0)
    own_traj, _ = partner_trajectory(own0, t0, t_k, model)
    peer_traj, _ = partner_trajectory(peer0, t0, t_k, model)
    z = np.linalg.norm(peer_traj - own_traj, axis=1) + 2.0
    p0 = np.diag([1000.0**2] * 3 + [1.0] * 3)
    prior = peer0 + np.array([400.0, -300.0, 300.0, 0.3, -0.2, 0.2])
    ref_pos, ref_jac = partner_trajectory(prior, t0, t_k, model)
    res = solve_relative_orbit(IodWindow(prior, ref_pos, ref_jac, own_traj, z, 0.5), IodPrior(prior, p0, 0.0, 3.0))
    assert res.converged and res.rms_m < 1.0 and res.used.all()
    # noise-free, 45 min: the bias trades against the separation within its prior
    assert np.linalg.norm(res.x0[:3] - peer0[:3]) < 30.0 and abs(res.bias_m - 2.0) < 3.0
    ref_pos, ref_jac = partner_trajectory(res.x0, t0, t_k, model)
    res2 = solve_relative_orbit(IodWindow(res.x0, ref_pos, ref_jac, own_traj, z, 0.5), IodPrior(prior, p0, 0.0, 3.0))
    assert res2.converged and res2.rms_m < 0.05
    assert np.linalg.norm(res2.x0[:3] - peer0[:3]) < np.linalg.norm(res.x0[:3] - peer0[:3]) + 1.0


def test_the_trajectory_sensitivity_to_the_drag_scale_matches_a_difference():
    """The drag-scale column partner_trajectory gives on request (the bench's side check fits
    it) is the derivative of the positions: a central difference of two propagations."""
    model = FormationFilter().peer_model
    t0 = 1.4e9
    x0 = np.array([6.778e6, 0.0, 0.0, 0.0, 7668.0 * 0.12, 7668.0 * 0.99])
    t_k = t0 + np.arange(0.0, 6 * 3600.0, 600.0)
    pos, jac = partner_trajectory(x0, t0, t_k, model, drag_scale=1.5, with_scale=True)
    plain_pos, plain_jac = partner_trajectory(x0, t0, t_k, model, drag_scale=1.5)
    assert jac.shape == (t_k.size, 3, 7) and np.array_equal(jac[:, :, :6], plain_jac)
    assert np.array_equal(pos, plain_pos)
    up = partner_trajectory(x0, t0, t_k, model, drag_scale=1.6)[0]
    down = partner_trajectory(x0, t0, t_k, model, drag_scale=1.4)[0]
    diff = (up - down) / 0.2
    assert np.abs(diff[-1]).max() > 10.0  # drag moves the orbit by kilometres a day here
    assert np.allclose(jac[:, :, 6], diff, rtol=5e-3, atol=1e-3)  # the linearised Phi: 0.15 % here


def test_rtn_offsets_convert_with_the_frame_rotation():
    r = np.array([7.0e6, 0.0, 0.0])
    v = np.array([0.0, 7546.0, 0.0])
    dr, dv = rtn_to_gcrs(r, v, (0.0, 1000.0, 0.0), (0.0, 0.0, 0.0))
    np.testing.assert_allclose(dr, [0.0, 1000.0, 0.0], atol=1e-9)
    n = 7546.0 / 7.0e6
    np.testing.assert_allclose(dv, [-n * 1000.0, 0.0, 0.0], atol=1e-9)  # a point fixed in RTN
    np.testing.assert_allclose(rtn_matrix(r, v), np.eye(3), atol=1e-12)


def test_peer_prior_configuration_is_checked(tmp_path):
    assert parse_peer_prior({"dr_rtn_m": [0, -2000, 0], "dv_rtn_m_s": [0, 0, 0]})["frame"] == "rtn"
    for bad in (
        {"dr_rtn_m": [0, 1], "dv_rtn_m_s": [0, 0, 0]},
        {"t_gps_s": 1.0},
        {"pos_ecef_m": [1, 2, 3]},
        {"dr_rtn_m": [0, 0, 0], "dv_rtn_m_s": [0, 0, 0], "sigma_pos_m": -1},
        "0x4B",
        {"dr_rtn_m": [0, 0, 0], "dv_rtn_m_s": [0, 0, 0], "colour": "red"},
        {"dr_rtn_m": [0, float("nan"), 0], "dv_rtn_m_s": [0, 0, 0]},
        {"dr_rtn_m": [0, 0, 0], "dv_rtn_m_s": [0, 0, 0], "sigma_vel_m_s": float("inf")},
        {"dr_rtn_m": [0, 0, 0], "dv_rtn_m_s": [0, 0, 0], "cov_rtn": [1.0] * 36},  # singular
        {"dr_rtn_m": [0, 0, 0], "dv_rtn_m_s": [0, 0, 0], "cov_rtn": [1.0] * 35},
        {"dr_rtn_m": [0, 0, 0], "dv_rtn_m_s": [0, 0, 0], "wrong_side_probability": 0.6},
        {"dr_rtn_m": [0, 0, 0], "dv_rtn_m_s": [0, 0, 0], "source": 7},
    ):
        with pytest.raises(ValueError):
            parse_peer_prior(bad)
    cov = [0.0] * 36
    for i, v in enumerate((100.0**2, 1000.0**2, 100.0**2, 0.1**2, 0.1**2, 0.1**2)):
        cov[7 * i] = v
    cov[1] = cov[6] = 0.5 * 100.0 * 1000.0  # radial / along-track correlated
    got = parse_peer_prior(
        {
            "dr_rtn_m": [0, -2000, 0],
            "dv_rtn_m_s": [0, 0, 0],
            "cov_rtn": cov,
            "wrong_side_probability": 0.1,
            "source": "TLE 2026-11-24",
        }
    )
    assert got["cov_rtn"] == tuple(cov) and got["wrong_side_probability"] == 0.1 and got["source"] == "TLE 2026-11-24"
    assert parse_peer_prior(got) == got  # a parsed prior parses to itself (Config re-checks on replace)
    f = tmp_path / "c.toml"
    f.write_text(
        '[formation_peer_priors."0x4C"]\ndr_rtn_m = [0.0, 2500.0, 0.0]\ndv_rtn_m_s = [0.0, 0.0, 0.0]\n'
        "sigma_pos_m = 300.0\n"
    )
    c = load_config(f)
    assert c.formation_peer_priors[0x4C]["sigma_pos_m"] == 300.0
    assert c.formation_peer_priors[0x4C]["sigma_vel_m_s"] == 1.0
    f.write_text("[formation_peer_priors.sc2]\ndr_rtn_m = [0.0, 2500.0, 0.0]\ndv_rtn_m_s = [0.0, 0.0, 0.0]\n")
    with pytest.raises(ValueError, match="partner id"):
        load_config(f)
    with pytest.raises(ValueError, match="range_gps_source"):
        Config(range_gps_source="theirs")


def test_the_real_capture_alone_gives_a_clear_note_and_no_invented_state(tmp_path):
    """PY4's range capture has no sense.bin beside it: no own fix, so no relative state."""
    home = tmp_path / "home"
    (home / "range").mkdir(parents=True)
    shutil.copy(PY4_DATA / "pygnc_range_example" / "rng00000.bin", home / "range")
    msgs = build_message_stream(Paths(home), Config()).messages
    assert len([b for t, b in msgs if t == "range"]) == 20
    proc, res = _run(msgs, Config())
    assert not [b for t, b in res if t == "formation_estimate"]
    codes = [b["code"] for t, b in res if t == "estimator_note"]
    assert codes and set(codes) <= {"no_own_fix", "peer_not_initialized"}
    assert proc.counters()["ranges_before_init"] + proc.counters()["no_clock"] >= 20


def test_the_two_sides_mixture_averages_the_cross_track_offset():
    """Equal odds of a filter and its mirror image in the own orbit plane: the published
    cross-track offset is zero and its sigma covers both sides; radial, along-track and
    range are untouched.  Weight 1: the filter itself."""
    f = FormationFilter()
    own = np.array([6.878e6, 0.0, 0.0, 0.0, 7612.0, 0.0])  # orbit normal +z
    dr, dv = np.array([100.0, -3000.0, 400.0]), np.array([0.0, 0.1, -0.3])
    f.initialize_relative(1.4e9, own, np.eye(6), dr, dv, np.diag([4.0] * 3 + [1e-4] * 3))
    alt = copy.deepcopy(f)
    alt.x[11], alt.x[14] = -400.0, 0.3
    g = ROM.mixture([f, alt], (0.5, 0.5))
    np.testing.assert_allclose(g.x[9:12], [100.0, -3000.0, 0.0], atol=1e-9)
    assert math.sqrt(g.p[11, 11]) >= 400.0 and abs(np.linalg.norm(f.x[9:12]) - 3028.2) < 1.0
    np.testing.assert_allclose(g.p[9:11, 9:11], f.p[9:11, 9:11], atol=1e-9)
    np.testing.assert_array_equal(ROM.mixture([f, alt], (1.0, 0.0)).x, f.x)
    third = copy.deepcopy(f)
    third.x[10] += 30.0
    h = ROM.mixture([f, alt, third], (0.5, 0.25, 0.25))
    np.testing.assert_allclose(h.x[9:12], [100.0, -3000.0 + 7.5, 200.0], atol=1e-9)
    assert h.p[10, 10] > f.p[10, 10] + 0.25 * 0.75 * 30.0**2 - 1e-6


def _hypothesis(dr_m) -> FormationFilter:
    """A range-only hypothesis holding the ranges: relative position *dr_m* (GCRS, m) from an
    own orbit whose normal is +z, at rest relative to it, 5 m sigma."""
    g = FormationFilter()
    g.initialize_relative(
        1.4e9,
        np.array([6.878e6, 0.0, 0.0, 0.0, 7612.0, 0.0]),
        np.eye(6),
        np.array(dr_m, float),
        np.zeros(3),
        np.diag([25.0] * 3 + [1e-4] * 3),
    )
    g.range_acquired = True
    return g


def test_alternatives_are_merged_promoted_and_dropped_by_their_odds():
    """The bookkeeping of a range-only partner's hypotheses (PartnerHypotheses.prune): one
    far less likely than the best is dropped; one that has come to agree with another is
    merged into it (the pair's mean, weights added); the most likely becomes the filter,
    and one that has lost the ranges goes while another still holds them."""
    hyp = RO.PartnerHypotheses(FormationFilterConfig(), peer_id=0x4B)
    changes = []
    hyp.on_change = lambda: changes.append(1)
    main, near, far, other = (
        _hypothesis(dr) for dr in ([0, -3000, 400], [0, -3000, 402], [0, -3000, -400], [0, 3000, 0])
    )
    hyp.filter = main
    hyp.alts = [RO.Hypothesis(near, 0.0), RO.Hypothesis(far, 1.0), RO.Hypothesis(other, ROM.SIDE_DECIDED_LLR + 1.0)]
    hyp.prune()
    assert hyp.filter is main and [h.filter for h in hyp.alts] == [far] and changes
    np.testing.assert_allclose(main.x[9:12], [0, -3000, 401], atol=1e-9)  # merged: the pair's mean
    assert main.p[11, 11] > 25.0
    w0, (w1,) = hyp.weights()
    assert abs(w0 - 2.0 / (2.0 + math.exp(-1.0))) < 1e-12 and abs(w0 + w1 - 1.0) < 1e-12
    assert not hyp.notes  # an alternative is still open
    hyp.alts[0].llr = -ROM.SIDE_DECIDED_LLR - 0.5  # the ranges prefer the other side decisively
    hyp.prune()
    assert hyp.filter is far and not hyp.alts and [code for code, _ in hyp.notes] == ["range_only_side"]
    hyp.filter, hyp.alts = main, [RO.Hypothesis(far, 5.0)]
    main.range_acquired = False  # the filter lost the ranges, the other side holds them
    hyp.prune()
    assert hyp.filter is far and not hyp.alts


def test_a_side_whose_orbits_lost_the_ranges_is_kept_as_the_point_mirror():
    """The point mirror of the most likely orbit keeps every range to first order: when the
    hypotheses on its side lose the ranges (or the ranges they reject prune them) while that
    orbit holds them, the side is kept as that point mirror, with the weight the lost ones
    had while they held the ranges (PartnerHypotheses.prune); not when a kept orbit is there
    already, when the lost one lies on the kept orbit's own side, or when its weight was
    negligible anyway."""

    def setup(lost_dr, llr, rejected_nats, acquired=False, extra=()):
        hyp = RO.PartnerHypotheses(FormationFilterConfig(), peer_id=0x4B)
        hyp.filter = _hypothesis([0, -3000, 400])
        lost = _hypothesis(lost_dr)
        lost.range_acquired = acquired
        lost.range_rejections_in_row = 6 if acquired else 0  # (reset when the ranges are lost)
        lost.range_rejected_nu_m = [300.0] * 6
        hyp.alts = [RO.Hypothesis(lost, llr, RO.Track(rejected_nats=rejected_nats))]
        hyp.alts += [RO.Hypothesis(_hypothesis(dr), 1.0) for dr in extra]
        hyp.prune()
        return hyp

    hyp = setup([0, 3300, -350], 3.0, 1.0)  # 300 m off the main orbit's point mirror, lost
    (image,) = hyp.alts
    np.testing.assert_allclose(image.filter.x[9:12], [0, 3000, -400], atol=1e-9)
    np.testing.assert_allclose(image.filter.p[9:12, 9:12], hyp.filter.p[9:12, 9:12], atol=1e-12)
    assert image.filter is not hyp.filter and image.filter.range_acquired
    assert abs(image.llr - 2.0) < 1e-12 and image.track == RO.Track()
    assert [code for code, _ in hyp.notes] == ["range_only_point_mirror"]
    # Pruned by the ranges it rejected (still acquired), its weight before them given back.
    (image,) = setup([0, 3300, -350], ROM.SIDE_DECIDED_LLR + 4.0, 6.0, acquired=True).alts
    assert abs(image.llr - (ROM.SIDE_DECIDED_LLR - 2.0)) < 1e-9
    assert len(setup([0, 3300, -350], 3.0, 1.0, extra=([0, 3000, -401],)).alts) == 1  # there already
    assert not setup([0, -3100, 350], 3.0, 1.0).alts  # on the main orbit's side
    assert not setup([0, 3300, -350], ROM.SIDE_DECIDED_LLR + 5.0, 1.0).alts  # negligible


def test_a_side_that_loses_the_ranges_gets_back_the_weight_it_had():
    """The same through the ranges: an alternative near the most likely orbit's point mirror
    but 300 m off rejects the next range and loses the ranges at once (one rejection allowed
    here); its side comes back as the point mirror with about the odds it had before."""
    hyp = RO.PartnerHypotheses(FormationFilterConfig(), peer_id=0x4B)
    hyp.filter = _hypothesis([0, -3000, 400])
    lost = _hypothesis([0, 3300, -350])
    lost.config = dataclasses.replace(lost.config, max_consecutive_range_rejections=1)
    hyp.alts = [RO.Hypothesis(lost, 1.0)]
    t = hyp.filter.t_gps_s + 20.0
    hyp.filter.predict_to(t)
    z, _ = hyp.filter.range_model()
    assert hyp.filter.update_range(t, z).decision == "used"
    hyp.range_on_alternatives(t, z)
    assert not lost.range_acquired and lost.range_rejections_in_row == 0
    (image,) = hyp.alts
    assert image.filter is not lost and abs(image.llr - 1.0) < 0.5
    np.testing.assert_allclose(image.filter.x[9:12], -hyp.filter.x[9:12], atol=1e-9)
    assert image.track.model_error_m == hyp.track.model_error_m and not image.filter.tapped
    assert [code for code, _ in hyp.notes] == ["range_only_point_mirror"]


def test_the_ambiguity_is_how_far_apart_the_kept_orbits_come():
    """orbit_ambiguity_m: the largest amplitude over an orbit of a kept orbit's relative
    motion less the published one's, sqrt(|dr|^2 + (|dv| / n)^2): mirror images in the own
    orbit plane where the partner crosses it meet in position but not as orbits."""
    x = np.zeros(18)
    x[0:6] = [6.878e6, 0.0, 0.0, 0.0, 7612.0, 0.0]
    n = 7612.0 / 6.878e6
    up, down = x.copy(), x.copy()
    up[9:15] = [0.0, -3000.0, 0.0, 0.0, 0.0, 0.4]  # crossing the own orbit plane, 0.4 m/s across
    down[9:15] = [0.0, -3000.0, 0.0, 0.0, 0.0, -0.4]
    mid = ROM.mix([(up, np.eye(18)), (down, np.eye(18))], (0.5, 0.5))[0]
    assert abs(ROM.orbit_ambiguity_m([up, down], (0.5, 0.5), mid) - 0.4 / n) < 1e-6
    assert ROM.orbit_ambiguity_m([up], (1.0,), up) == 0.0
    assert ROM.orbit_ambiguity_m([up, down], (1.0 - 1e-4, 1e-4), up) == 0.0  # too light to count
    down[9:15] = [0.0, -3000.0, 30.0, 0.0, 0.0, 0.0]
    assert abs(ROM.orbit_ambiguity_m([up, down], (1.0, 1.0), up) - math.hypot(30.0, 0.4 / n)) < 1e-6
    down[9] = math.nan
    assert ROM.orbit_ambiguity_m([up, down], (1.0, 1.0), up) == math.inf  # nothing agrees with NaN
    still = up.copy()
    still[3:6] = 0.0
    assert ROM.orbit_ambiguity_m([up], (1.0,), still) == 0.0 and math.isfinite(
        ROM.orbit_ambiguity_m([up, down[:9].tolist() + [0.0] * 9], (1.0, 1.0), still)
    )


def test_window_hypotheses_are_weighed_on_the_same_ranges():
    """The refits of a window run one per arriving range, so each holds a different number
    of ranges: their odds are taken on the ranges all of them held, each squared normalised
    residual counted up to 25 (an outlier costs every hypothesis the same), plus each one's
    prior term.  Two fits of the same orbit - one holding 10 ranges, linearised about it,
    one holding 14, linearised about a point 80 m / 0.05 m/s away - weigh the same; an
    exact mirror image counts its source's range residuals with its own prior term."""
    from types import SimpleNamespace

    fc = FormationFilterConfig()
    rng = np.random.default_rng(5)
    n_all = 14
    t = np.arange(n_all) * 20.0
    x_ref = np.array([7.0e6, 3000.0, 500.0, 0.0, 7600.0, 0.0])
    own_r = np.stack([np.zeros(n_all), 7600.0 * t, np.zeros(n_all)], axis=1)
    ref_pos = own_r + np.array([7.0e6, 3000.0, 500.0]) + np.stack([t * 0.1, np.zeros(n_all), np.zeros(n_all)], 1)
    ref_jac = np.array([np.hstack((np.eye(3), ti * np.eye(3))) for ti in t])
    bias = 2.0
    z = np.linalg.norm(ref_pos - own_r, axis=1) + bias + 0.5 * rng.standard_normal(n_all)
    z[7] += 400.0  # an outlier: counted at the cap for every hypothesis
    a = SimpleNamespace(range_m=list(z), own_r_m=list(own_r), x0=x_ref + 50.0, p0=np.eye(6) * 1e6, prior=None)
    shift = np.array([80.0, -40.0, 20.0, 0.05, 0.0, -0.02])

    def window(n, about):  # a refit's window: the reference trajectory from *about* (linear here)
        return SimpleNamespace(
            ref_pos=list(ref_pos[:n] + ref_jac[:n] @ (about - x_ref)), ref_jac=list(ref_jac[:n]), x0=about.copy()
        )

    def fit(x0, n, used=None):
        return SimpleNamespace(x0=x0, bias_m=bias, used=np.ones(n, dtype=bool) if used is None else used)

    short, long_ = window(10, x_ref), window(n_all, x_ref + shift)
    f10 = fit(x_ref, 10)
    used14 = np.ones(n_all, dtype=bool)
    used14[7] = False  # (its own outlier test dropped it: no matter here)
    f14 = fit(x_ref.copy(), n_all, used14)
    mirror = fit(x_ref + np.array([0, 0, -1000.0, 0, 0, 0]), 10, np.zeros(10, dtype=bool))
    raw = [
        ROW.WindowFit(123.0, short, f10, (short, f10)),
        ROW.WindowFit(456.0, long_, f14, (long_, f14)),
        ROW.WindowFit(789.0, short, mirror, (short, f10)),
    ]
    c = ROW.common_costs(a, raw, fc)
    assert [h[1] for h in c] == [short, long_, short] and c[2][3] == (short, f10)
    assert abs(c[0][0] - c[1][0]) < 1e-6  # the same orbit weighs the same, however its fit was made
    chi2 = np.square(z[:10] - (np.linalg.norm(ref_pos[:10] - own_r[:10], axis=1) + bias)) / fc.range_sigma_m**2
    assert chi2[7] > ROW.RANGE_LL_NIS_CAP and np.delete(chi2, 7).max() < 36.0
    info = np.diag([1e-6] * 6 + [1.0 / fc.range_bias_sigma_m**2])
    dx = np.append(x_ref - a.x0, bias - fc.range_bias_prior_m)
    assert abs(c[0][0] - (float(np.minimum(chi2, ROW.RANGE_LL_NIS_CAP).sum()) + dx @ info @ dx)) < 1e-6
    dxm = np.append(mirror.x0 - a.x0, bias - fc.range_bias_prior_m)
    assert abs((c[2][0] - c[0][0]) - (dxm @ info @ dxm - dx @ info @ dx)) < 1e-6  # the prior alone
    # The dynamics' error counts in each range's variance, as in the running odds.
    cm = ROW.common_costs(a, raw, fc, model_var_m2=1.0)
    scaled = np.square(z[:10] - (np.linalg.norm(ref_pos[:10] - own_r[:10], axis=1) + bias)) / (
        fc.range_sigma_m**2 + 1.0
    )
    assert abs(cm[0][0] - (float(np.minimum(scaled, ROW.RANGE_LL_NIS_CAP).sum()) + dx @ info @ dx)) < 1e-6


def test_the_window_odds_come_from_the_common_costs(range_only_3h, monkeypatch):
    """The acquisition keeps each alternative at half its common cost above the best one's
    (range_only.common_costs, wired into the window fit)."""
    out, config, _ = range_only_3h
    seen = []
    common = ROW.common_costs

    def spy(a, hyps, fc, model_var_m2=0.0):
        r = common(a, hyps, fc, model_var_m2)
        seen.append(sorted(h[0] for h in r))
        return r

    monkeypatch.setattr(ROW, "common_costs", spy)
    proc = FormationProcessor(config)
    for t, b in build_message_stream(Paths(out), config).messages:
        if t in proc.consumes:
            proc.handle(t, b)
        p = proc.peers.get(0x4B)
        if p is not None and p.hyp.window is None and p.filter.range_acquired and p.alts:
            break
    assert seen, "the window fit did not weigh its hypotheses"
    costs = seen[-1]
    expected = [(c - costs[0]) / 2.0 for c in costs[1:] if (c - costs[0]) / 2.0 < ROM.SIDE_DECIDED_LLR]
    # (hypotheses within 50 m of each other as orbits count once: some expected odds go)
    assert 1 <= len(p.alts) <= len(expected)
    assert all(any(abs(h.llr - e) < 1e-9 for e in expected) for h in p.alts)


def test_the_side_odds_take_the_configured_model_error():
    """range_on_alternatives weighs every range with the configured model error ([range_only]
    side_model_sigma_m and side_model_tau_s) for the filter and each alternative alike, each
    one's estimate of it kept with it."""
    from pygnc.processors.formation import range_only_config_from

    cfg = Config(range_only={"side_model_sigma_m": 0.7, "side_model_tau_s": 900.0})
    hyp = RO.PartnerHypotheses(FormationFilterConfig(), range_only_config_from(cfg), 0x4B)
    assert (hyp.model_error.sigma_m, hyp.model_error.tau_s) == (0.7, 900.0)
    hyp.filter, hyp.alts = _hypothesis([0, -3000, 400]), [RO.Hypothesis(_hypothesis([0, -3000, -400]), 0.5)]
    hyp.filter.update_range(1.4e9, 3030.0)
    hyp.range_on_alternatives(1.4e9, 3030.0)
    # Both see an innovation of about +3 m: each estimate moves towards it, the odds hardly.
    assert 0.0 < hyp.track.model_error_m < 3.0 and 0.0 < hyp.alts[0].track.model_error_m < 3.0
    assert abs(hyp.alts[0].llr - 0.5) < 1e-3
    assert hyp.model_error.t_gps_s == 1.4e9 and hyp.model_error.var_m2 < 0.49
    assert range_only_config_from(Config()).side_model_sigma_m == 1.0
    assert range_only_config_from(Config()).side_model_tau_s == 1800.0
    for bad in ({"side_model_sigma_m": math.nan}, {"side_model_tau_s": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Config(range_only=bad)


def _innovation(nu, s):
    from types import SimpleNamespace

    return SimpleNamespace(last_nu_m=nu, last_s=np.array([[s]]))


def test_the_side_likelihood_judges_innovations_on_one_variance():
    """Each range's log-likelihoods for the side odds judge every hypothesis' innovation on
    one variance: the largest of theirs plus the model error's.  White (tau 0) that is
    sigma_m^2; hypotheses whose covariances differ (mirror images linearised apart) but whose
    innovations agree keep their odds - the narrower one gains nothing (a day-1 TLE start
    lost its true side that way); a squared residual counts up to RANGE_LL_NIS_CAP and then
    does not move the model error's estimate."""
    cap = ROW.RANGE_LL_NIS_CAP

    def lls(fs, sigma_m=1.0):
        return RO.RangeModelError(sigma_m, 0.0).log_likelihoods(1.4e9, fs, [0.0] * len(fs))[0]

    a, b = _innovation(0.3, 0.3), _innovation(1.5, 0.3)
    d0 = lls([a, b], 0.0)[0] - lls([a, b], 0.0)[1]
    d1 = lls([a, b])[0] - lls([a, b])[1]
    assert abs(d0 - 0.5 * (1.5**2 - 0.3**2) / 0.3) < 1e-12
    assert abs(d1 - 0.5 * (1.5**2 - 0.3**2) / 1.3) < 1e-12 and 0.0 < d1 < d0
    narrow, broad = _innovation(0.5, 0.8), _innovation(0.5, 4.0)  # the same innovation, variances 5x apart
    assert lls([narrow, broad])[0] == lls([narrow, broad])[1]
    assert lls([_innovation(100.0, 0.3), a], 0.0)[0] == -0.5 * cap
    assert lls([_innovation(2.0, 0.3)])[0] == -0.5 * 4.0 / 1.3
    out = lls([_innovation(math.nan, 0.3), a])
    assert math.isnan(out[0]) and math.isfinite(out[1])
    assert all(math.isnan(x) for x in lls([_innovation(math.nan, 0.3)]))
    m = RO.RangeModelError(1.0, 1800.0)
    _, est = m.log_likelihoods(1.4e9, [a, a], [0.0, 0.0])
    phi = math.exp(-60.0 / 1800.0)
    _, est2 = m.log_likelihoods(1.4e9 + 60.0, [_innovation(100.0, 0.3), a], est)
    assert est2[0] == phi * est[0] and phi * est[1] < est2[1] < 0.3  # the outlier leaves its estimate alone
    out = lls([_innovation(1.0, 0.0), a])  # no innovation variance: not usable
    assert math.isnan(out[0]) and math.isfinite(out[1])
    m = RO.RangeModelError(1.0, 1800.0)
    m.log_likelihoods(1.4e9, [_innovation(100.0, 0.3)], [0.0])
    assert m.var_m2 == 1.0  # nothing learnt from an outlier alone
    m.log_likelihoods(1.4e9 - 60.0, [a], [0.0])  # (a range older than the last)
    assert m.t_gps_s == 1.4e9


def test_the_model_error_is_evidence_once_not_in_every_range():
    """Two hypotheses whose innovations stay 0.4 m apart (a fraction of the dynamics' 1 m
    error) for 10 hours of ranges a minute apart: counted white, the odds pass e^20 and the
    true one would be dropped; with the error correlated along the orbit (30 min) they stay
    within a nat or two.  Innovations 5 m apart still decide within the hour."""
    rng = np.random.default_rng(3)

    def odds(offset_m, tau_s, n):
        m = RO.RangeModelError(1.0, tau_s)
        est, llr = [0.0, 0.0], 0.0
        for k in range(n):
            nu = 0.5 * float(rng.standard_normal()) + 0.4 * math.sin(k * 60.0 / 900.0)
            lls, est = m.log_likelihoods(1.4e9 + 60.0 * k, [_innovation(nu, 0.3), _innovation(nu + offset_m, 0.3)], est)
            llr += lls[0] - lls[1]
        return llr

    assert odds(0.4, 0.0, 600) > ROM.SIDE_DECIDED_LLR
    assert abs(odds(0.4, 1800.0, 600)) < 2.0
    assert odds(5.0, 1800.0, 60) > ROM.SIDE_DECIDED_LLR


def _tracking(out, config):
    """(processor, peer 0x4B) fed the scenario in *out* until that partner's window is
    fitted and its filter has used a few ranges."""
    proc = FormationProcessor(config)
    for t, b in build_message_stream(Paths(out), config).messages:
        if t in proc.consumes:
            proc.handle(t, b)
        p = proc.peers.get(0x4B)
        if p is not None and p.hyp.window is None and p.filter.range_acquired and p.filter.n_ranges_used > 5:
            return proc, p
    raise AssertionError("0x4B never tracked")


def test_a_restart_refits_from_the_prior_it_started_from(range_only_3h):
    """A partner lost after its fit is fitted again from the uplinked prior carried to the
    restart along its transition matrix - not from the estimate it lost (a wrong estimate
    with a 1-km prior about it kept the fit in its basin)."""
    out, config, _ = range_only_3h
    proc, p = _tracking(out, config)
    prior = p.hyp.prior
    t0, x0, p0 = prior.t_gps_s, prior.x0, prior.p0
    f = p.filter
    t = f.t_gps_s
    f.x[9:12] += 3000.0  # as lost as an estimate gets
    p.hyp.lose(t)
    assert p.hyp.carry.advance(lambda: False)  # (in flight: within the handler's budget, over calls)
    p.hyp.open_restart_window(t, 3000.0)
    from pygnc.estimation import orbit_dynamics as od

    xs, phi = od.propagate(np.append(x0, [0.0, 0.0, 0.0, 1.0]), t - t0, f.peer_model, t_gps_s=t0)
    w = p.hyp.window
    np.testing.assert_allclose(w.x0, xs[:6], rtol=0, atol=0.05)  # (carried in 10-min steps)
    np.testing.assert_allclose(w.p0, phi[:6, :6] @ p0 @ phi[:6, :6].T, rtol=1e-4)
    assert "carried to the restart" in w.how and not p.alts
    assert len(w.prior.components) == len(prior.components)  # the point mirror too, if kept
    assert proc.counters()["range_only_restarts"] == 1


def test_a_lost_partner_is_published_with_a_covariance_its_rejected_ranges_agree_with(range_only_3h):
    """Until the restart's window is fitted (45 min) the estimates are the lost filter's,
    propagated: its relative covariance is scaled (P -> D P D) so that the ranges it
    rejected in a row are one sigma under it (their median squared innovation), and the
    note says by how much."""
    out, config, _ = range_only_3h
    proc, p = _tracking(out, config)
    f = p.filter
    t = f.t_gps_s
    for k in range(f.config.max_consecutive_range_rejections):
        t += 20.0
        f.predict_to(t)
        pred, _ = f.range_model()
        assert f.update_range(t, pred + 300.0 + 10.0 * k).decision == "rejected"  # a partner lost by 300 m
    assert not f.range_acquired and len(f.range_rejected_nu_m) == f.config.max_consecutive_range_rejections
    nu2 = float(np.median(np.square(f.range_rejected_nu_m)))
    p_lost = f.p.copy()
    p.hyp.lose(t)
    notes = p.hyp.notes
    scale = f.p[9, 9] / p_lost[9, 9]
    assert scale > 100.0 and f.range_rejected_nu_m == []
    d = np.ones(f.p.shape[0])
    d[9:15] = math.sqrt(scale)
    np.testing.assert_allclose(f.p, p_lost * np.outer(d, d), rtol=1e-12)
    assert np.all(np.linalg.eigvalsh(0.5 * (f.p + f.p.T)) > -1e-9 * np.abs(f.p).max())
    _, h = f.range_model()
    h = np.ravel(h)
    assert float(h @ f.p @ h) + f.config.range_sigma_m**2 == pytest.approx(nu2, rel=0.05)  # 1 sigma now
    assert any(code == "range_only_restart" and f"{math.sqrt(scale):.1f} times" in text for code, text in notes)


def test_a_lost_partner_is_published_as_only_what_the_range_says_until_it_is_fitted_again(range_only_3h):
    """A lost track's estimate - the lost filter's, propagated until the restart's window is
    fitted - says only what the latest range does: the relative position anywhere within it,
    as for a filter losing its ranges (the scaled covariance alone was published with 3D
    sigmas of 7-50 m while the estimate, drifting, was 2.5-8 km off: the geometry sweep's
    radial cells without a prior).  The quality word says acquiring throughout."""
    from pygnc.processors import admission

    out, config, _ = range_only_3h
    proc, p = _tracking(out, config)
    f = p.filter
    t = f.t_gps_s
    rho = float(np.linalg.norm(f.x[9:12]))
    f.x[9:12] *= 0.2  # drifted in: the ranges still say where it is
    for _ in range(f.config.max_consecutive_range_rejections):
        t += 20.0
        f.predict_to(t)
        assert f.update_range(t, rho).decision == "rejected"
    p.hyp.lose(t)
    assert p.hyp.lost_range_m == rho

    def sigma_3d() -> float:
        body = proc._body(p, f, t, True)
        assert body["acquiring"] and body["quality"] == "acquiring"
        return float(np.linalg.norm(body["sigma_dr_m"]))

    assert sigma_3d() >= rho  # (the scaled covariance: metres)
    assert p.hyp.carry.advance(lambda: False)
    p.hyp.open_restart_window(t, 2.0 * rho)  # the window's ranges keep it current
    assert p.hyp.lost_range_m == 2.0 * rho and sigma_3d() >= 2.0 * rho
    # an estimate taken now and published after the window's fit keeps what it was
    p.outputs.defer(p.hyp, t + 10.0, t + 10.0)
    f.predict_to(t + 20.0)
    p.outputs.take_passed(p.hyp)
    ready = p.outputs.ready[-1]  # (the newest: this one)
    p.hyp.lost_range_m = None  # (as the fit that starts the filters leaves it)
    body = proc._ready_estimate(p, ready)[1]
    assert ready.lost_range_m == 2.0 * rho and np.linalg.norm(body["sigma_dr_m"]) >= 2.0 * rho
    # a restart window that closes unfitted (the batch ended): the next range restarts it
    p.hyp.lost_range_m, p.hyp.window = rho, None
    n = p.hyp.n_restarts
    assert p.range(t + 30.0, rho, 10**9, admission.Budget(math.inf), 1e9, True, None)
    assert p.hyp.n_restarts == n + 1 and (p.hyp.window is not None or p.hyp.carry is not None)


def test_an_ambiguous_estimate_spans_its_kept_orbits_spread():
    """An estimate whose kept orbits come farther apart than the validity bound (ambiguous)
    publishes a covariance that spans that spread (their mixture alone missed the truth by
    NEES 1e5 where none of them was its orbit: a partner circling the own spacecraft), and
    one that holds a continuum of orbits with the same ranges spans the continuum's spread;
    one orbit alone publishes its own covariance - unless it is a lost track's (a restart's
    window closed unfitted when the batch ended): then what the range says."""
    from types import SimpleNamespace

    from pygnc.estimation.formation_filter import I_DRAG_SCALE, I_RANGE_BIAS, N_STATES
    from pygnc.processors.formation_estimate import estimate_body

    config = Config()
    fc = FormationFilterConfig()
    x = np.zeros(N_STATES)
    x[0:6] = [6.878e6, 0.0, 0.0, 0.0, 7612.0, 0.0]
    x[9:15] = [0.0, -3000.0, 0.0, 0.0, 0.0, 0.0]
    x[I_DRAG_SCALE], x[I_RANGE_BIAS] = 1.0, fc.range_bias_prior_m
    up, down = x.copy(), x.copy()
    up[11], down[11] = 400.0, -400.0
    pr = np.diag([4.0] * 3 + [1e-6] * 3 + [1.0])
    hyp = SimpleNamespace(image_odds=(0.0, 0.0, 0.0), unresolved_m=0.0)
    peer = SimpleNamespace(peer_id=0x4B, hyp=hyp)
    f = FormationFilter(fc)
    f.x, f.p, f.t_gps_s = x.copy(), np.eye(N_STATES), 1.4e9
    f.range_acquired = True

    def body(ests, w, lost_range_m=None):
        return estimate_body(
            peer,
            f,
            ests,
            w,
            0.0,
            False,
            None,
            lost_range_m=lost_range_m,
            range_only=True,
            clock=None,
            config=config,
            filter_config=fc,
        )

    one = body([(up, pr)], None)
    assert one["quality"] == "ok" and np.linalg.norm(one["sigma_dr_m"]) == pytest.approx(math.sqrt(12.0), rel=1e-6)
    two = body([(up, pr), (down, pr)], (0.5, (0.5,)))
    assert two["quality"] == "ambiguous" and two["ambiguity_m"] == pytest.approx(400.0, rel=1e-6)
    cov = np.reshape(two["cov_rel_gcrs"], (6, 6))[:3, :3]
    assert np.all(np.linalg.eigvalsh(cov) >= 400.0**2 / 3.0)  # each direction, not only across the two
    hyp.unresolved_m = 30.0  # within the bound: not ambiguous, the continuum's spread in its sigma
    cont = body([(up, pr)], None)
    assert cont["quality"] == "ok" and np.linalg.norm(cont["sigma_dr_m"]) == pytest.approx(
        math.sqrt(12.0 + 30.0**2), rel=1e-6
    )
    hyp.unresolved_m = 0.0
    lost = body([(up, pr)], None, lost_range_m=5000.0)  # a restart's window closed unfitted
    assert lost["quality"] == "uncertain" and np.linalg.norm(lost["sigma_dr_m"]) >= 5000.0


def test_a_window_fit_never_blocks_a_call_for_more_than_one_propagation(range_only_3h):
    """The fit of a 45-min window needs six propagations of it (three candidates and their
    mirror images; 2-4 s each on a Pi): they are spread over the calls that follow, one
    per call; the result is the same fit (the filter starts, ranges join the window).  (The
    last call also replays the window along each kept orbit: the stop and the pings are
    looked at between its ranges:
    test_a_window_fit_looks_at_the_stop_between_every_two_ranges_it_propagates.)"""
    out, config, _ = range_only_3h
    config = dataclasses.replace(config, range_only={"wrong_side_probability": 0.0})
    proc = FormationProcessor(config)
    refit, per_call = ROW.AcquisitionWindow.relinearised, []

    def counting_refit(*args):
        per_call[-1] += 1
        return refit(*args)

    ROW.AcquisitionWindow.relinearised = counting_refit
    try:
        _feed_counting(proc, out, config, per_call)
    finally:
        ROW.AcquisitionWindow.relinearised = refit
    assert sum(per_call) >= 6 and max(per_call) == 1
    assert proc.counters()["range_only_starts"] == 1 and proc.counters()["ranges_fitted"] > 100


def _feed_counting(proc, out, config, per_call):
    for t, b in build_message_stream(Paths(out), config).messages:
        if t in proc.consumes:
            per_call.append(0)
            proc.handle(t, b)


@pytest.fixture(scope="module")
def campaign_seed16(tmp_path_factory):
    """The range-only campaign's seed 16 (data/campaigns/range_only_6h.toml), its first
    2.5 h: partner 0x4C 1.4-3 km away with close approaches (130 m once an orbit), its
    uplinked prior 3.3 km off."""
    from ground.montecarlo.campaign import load_campaign, run_spec

    out = tmp_path_factory.mktemp("seed16")
    repo = Path(__file__).resolve().parents[1]
    spec = run_spec(load_campaign(repo / "data" / "campaigns" / "range_only_6h.toml"), 16).as_dict()["scenario"]
    spec["duration_s"] = 9000.0
    spec["environment"]["albedo"] = 0.0
    write_scenario(simulate(scn.settings_from_dict(spec)), out)
    config = dataclasses.replace(config_for_home(out), **IN_PROCESS_OVERRIDES)  # every estimate: judged
    return config, dict(np.load(out / "truth.npz")), build_message_stream(Paths(out), config).messages


def test_a_window_whose_fit_does_not_converge_is_extended_and_the_side_kept(campaign_seed16):
    """Seed 16's 45-min window fit does not converge (the cost is a long curved valley):
    the filters started from it each held a needle-shaped covariance, and the range
    likelihoods chose the shortest needle, on the point mirror - the side was lost within
    ten ranges (2-5 km error).  Now the window grows by a third until the fit converges
    (counted, noted once), and from the start on the most probable orbit is on the
    truth's side, not its point mirror's."""
    config, truth, messages = campaign_seed16
    proc, out = _run(messages, config)
    sides = sides_from(out)
    notes = [b["text"] for k, b in out if k == "estimator_note" and b["code"] == "range_only_window_extended"]
    assert len(notes) == 1 and "0x4C" in notes[0]
    assert proc.peers[0x4C].hyp.n_extensions >= 1
    assert proc.counters()["range_only_extensions"] == proc.peers[0x4C].hyp.n_extensions
    k = int(np.flatnonzero(truth["radio_id"] == 0x4C)[0])
    tt = truth["t_gps_s"]
    started = [(t, dr) for pid, t, dr, _, _ in sides if pid == 0x4C and t - tt[0] > 4800.0]
    assert len(started) > 50
    for t, dr in started:
        i = min(int(np.searchsorted(tt, t)), tt.size - 1)
        rel = truth["r_gcrs_m"][k][i] - truth["r_gcrs_m"][0][i]
        assert np.linalg.norm(dr - rel) < np.linalg.norm(dr + rel) and np.linalg.norm(dr - rel) < 1000.0, t - tt[0]


def test_a_lengthened_window_is_fitted_with_what_it_holds_when_the_batch_ends(campaign_seed16):
    """A batch that ends before a lengthened window is complete: at batch_end the window is
    fitted with the ranges it holds, and started from whether that fit converges or not
    (no further lengthening: no more ranges may come), so the partner is not left on its
    prior."""
    config, _, messages = campaign_seed16
    t0 = next(b["t_sc_s"] for t, b in messages if t == "sensor")
    head = [(t, b) for t, b in messages if t != "batch_end" and b.get("t_sc_s", t0) - t0 < 3100.0]
    proc, out = _run(head + [m for m in messages if m[0] == "batch_end"], config)
    p = proc.peers[0x4C]
    assert p.hyp.n_extensions == 1 and p.hyp.window is not None
    t_sc = max(b["t_sc_s"] for t, b in head if "t_sc_s" in b)
    for _ in range(12):
        out += proc.propagate_to_sc(t_sc)
    assert p.hyp.window is None and p.filter.range_acquired
    assert any(
        k == "estimator_note" and b["code"] in ("range_only_start", "range_only_poor_fit") and "0x4C" in b["text"]
        for k, b in out
    )
    assert any(k == "formation_estimate" and b["peer_id"] == 0x4C and b["propagated"] for k, b in out)


def test_fitted_minima_are_told_apart_as_orbits_not_positions():
    """Two partner states at one position with velocities 0.1 m/s apart are different
    orbits (~90 m of relative-orbit amplitude apart): a partner crossing the own orbit
    plane at the window start has its mirror image there."""
    from pygnc.estimation.range_only_iod import DISTINCT_M, MEAN_MOTION_RAD_S, orbit_distance_m

    x = np.array([7.0e6, 1.0e3, -2.0e3, 10.0, 7500.0, 1.0])
    y = x.copy()
    y[5] += 0.1
    assert orbit_distance_m(x, y) == pytest.approx(0.1 / MEAN_MOTION_RAD_S) and orbit_distance_m(x, y) > DISTINCT_M
    y = x.copy()
    y[0] += 30.0
    assert orbit_distance_m(x, y) == pytest.approx(30.0) and orbit_distance_m(x, y) < DISTINCT_M


def test_a_fit_from_a_start_with_no_finite_cost_returns_not_converged():
    """A prior whose trajectory is not finite (an epoch hours off, propagated to garbage)
    gives a start whose cost is NaN: the fit says it did not converge instead of raising
    (it raised 'Input must be 1- or 2-d' from the damping step)."""
    n = 12
    t = np.arange(n) * 25.0
    own = np.stack([np.zeros(n), 7600.0 * t, np.zeros(n)], axis=1) + [7.0e6, 0.0, 0.0]
    ref_pos = own + [0.0, -3000.0, 0.0]
    ref_jac = np.array([np.hstack((np.eye(3), ti * np.eye(3))) for ti in t])
    ref_pos[:] = np.nan  # every start's cost is NaN
    x0 = np.array([7.0e6, -3000.0, 0.0, 0.0, 7600.0, 0.0])
    res = solve_relative_orbit(
        IodWindow(x0, ref_pos, ref_jac, own, np.full(n, 3000.0), 0.5),
        IodPrior(x0, np.eye(6) * 1e6, 0.0, 3.0),
        options=IodOptions(n_random_starts=2),
    )
    assert not res.converged


# ---------------------------------------------------------------------- priors and ambiguity
NEES_999_3DOF = 16.266


def _prior_at_point_mirror(truth, k, sigma_pos_m=1000.0, sigma_vel_m_s=1.0, seed=11, **extra):
    """A partner prior placed at the point mirror of the truth's relative state (plus noise of
    its sigmas): confidently on the wrong side."""
    rng = np.random.default_rng(seed)
    own_r, own_v = truth["r_ecef_m"][0][0], truth["v_ecef_m_s"][0][0]
    pos = 2.0 * own_r - truth["r_ecef_m"][k][0] + sigma_pos_m * rng.normal(size=3)
    vel = 2.0 * own_v - truth["v_ecef_m_s"][k][0] + sigma_vel_m_s * rng.normal(size=3)
    return {
        "t_gps_s": float(truth["t_gps_s"][0]),
        "pos_ecef_m": pos.tolist(),
        "vel_ecef_m_s": vel.tolist(),
        "sigma_pos_m": sigma_pos_m,
        "sigma_vel_m_s": sigma_vel_m_s,
        **extra,
    }


def _after_acquisition(res, peer_id):
    est = [b for t, b in res if t == "formation_estimate" and b["peer_id"] == peer_id and not b["propagated"]]
    first = next(i for i, b in enumerate(est) if not b["acquiring"])
    assert all(b["acquiring"] for b in est[:first]) and first > 0
    return est, first


@pytest.mark.parametrize("case", ["none", "wrong_side"])
def test_without_a_trusted_prior_the_published_estimate_covers_the_truth(range_only_3h, case):
    """No prior (the partner placed ahead and behind along-track, equally likely) or a prior
    on the wrong side (kept at its default wrong-side probability, 0.2): the ranges cannot
    tell the point mirror apart, so both sides stay as hypotheses and the published mixture's
    sigma covers the truth - NEES inside its 99.9 % bound at >= 95 % of the epochs after
    acquisition - while every estimate says it is ambiguous (never valid)."""
    out, config, truth = range_only_3h
    priors = {} if case == "none" else {"0x4B": _prior_at_point_mirror(truth, 1)}
    config = dataclasses.replace(config, formation_peer_priors=priors)
    proc, res = _run(build_message_stream(Paths(out), config).messages, config)
    est, first = _after_acquisition(res, 0x4B)
    e = relative_errors(truth, est[first:], 0.0)
    assert np.mean(e["nees"] <= NEES_999_3DOF) >= 0.95
    assert all(b["ambiguous"] and b["ambiguity_m"] > 1000.0 for b in est[first:])
    last = est[-1]
    along = [
        (rtn_matrix(truth["r_gcrs_m"][0][-1], truth["v_gcrs_m_s"][0][-1]) @ np.array(d))[1]
        for d in last["hyp_dr_gcrs_m"]
    ]
    assert min(along) < -2000.0 and max(along) > 2000.0  # both sides along-track are still kept
    w = dict(zip(np.sign(along), np.zeros(2)))
    for a, wk in zip(np.sign(along), last["hyp_weights"]):
        w[a] = w.get(a, 0.0) + wk
    truth_side = -1.0  # the scenario's partner flies 3 km behind
    assert w[truth_side] >= (0.3 if case == "none" else 0.05)
    codes = [b["code"] for t, b in res if t == "estimator_note"]
    assert "range_only_mirror" in codes and "range_only_start" in codes
    sides = sides_from(res)
    side3, _, _ = side_resolved_errors(truth, 1, sides, 0x4B, 5400.0)
    assert np.sqrt(np.mean(side3**2)) < 30.0  # the kept orbit on the truth's side is right


def _start_only(out, config, minutes=20.0):
    """The first *minutes* of the scenario's messages (the partner's start)."""
    msgs = build_message_stream(Paths(out), config).messages
    t0 = next(b["t_sc_s"] for t, b in msgs if t == "sensor")
    return [(t, b) for t, b in msgs if t != "batch_end" and b.get("t_sc_s", t0) - t0 < 60.0 * minutes]


def test_a_prior_too_old_is_refused_with_a_note(range_only_3h):
    out, config, truth = range_only_3h
    prior = dict(config.formation_peer_priors[0x4B])
    prior["t_gps_s"] -= 3 * 86400.0
    config = dataclasses.replace(config, formation_peer_priors={"0x4B": prior})
    proc, res = _run(_start_only(out, config), config)
    notes = [b["text"] for t, b in res if t == "estimator_note" and b["code"] == "range_only_prior_refused"]
    assert len(notes) == 1 and "0x4B" in notes[0] and "72.0 h" in notes[0]
    prior_used = proc.peers[0x4B].hyp.prior
    assert "ahead and behind" in prior_used.how and len(prior_used.components) == 2


def test_a_prior_at_odds_with_the_first_range_is_not_used(range_only_3h):
    """A prior 9 km off along the line of sight (a wrong partner, epoch or frame): its
    predicted range misses the measured one by far more than its sigma allows."""
    out, config, truth = range_only_3h
    prior = dict(config.formation_peer_priors[0x4B])
    d = np.array(truth["r_ecef_m"][1][0]) - np.array(truth["r_ecef_m"][0][0])
    prior["pos_ecef_m"] = (np.array(prior["pos_ecef_m"]) + 3.0 * d).tolist()
    config = dataclasses.replace(config, formation_peer_priors={"0x4B": prior})
    proc, res = _run(_start_only(out, config), config)
    assert [b["code"] for t, b in res if t == "estimator_note"] == ["range_only_prior_inconsistent"]
    assert "ahead and behind" in proc.peers[0x4B].hyp.prior.how


def test_a_prior_a_day_from_the_data_is_carried_within_the_handler_budget(range_only_3h):
    """A day's propagation of the prior (seconds on a Pi) is spread over calls of at most
    the handler budget (the range waits, counted budget_deferred), and ends where one
    propagation would."""
    out, config, truth = range_only_3h
    prior = dict(config.formation_peer_priors[0x4B])
    prior["t_gps_s"] -= 86400.0
    prior["pos_ecef_m"], prior["vel_ecef_m_s"] = _state_a_day_before(truth, 1, prior["t_gps_s"])
    config = dataclasses.replace(config, formation_peer_priors={"0x4B": prior}, handler_budget_s=0.002)
    proc, res = _run(_start_only(out, config, 20.0), config)
    assert proc.counters()["budget_deferred"] > 3  # spread over calls (how many depends on the machine)
    hyp = proc.peers[0x4B].hyp
    t_start = hyp.prior.t_gps_s
    whole = ROP.absolute_prior(prior["t_gps_s"], prior["pos_ecef_m"], prior["vel_ecef_m_s"], 1000.0, 1.0)
    whole = whole.carried_to(t_start, hyp.filter.peer_model)
    np.testing.assert_allclose(hyp.window.x0, whole.x0, rtol=0, atol=0.05)
    assert np.linalg.norm(hyp.window.x0[:3] - truth["r_gcrs_m"][1][int(t_start - truth["t_gps_s"][0])]) < 5000.0


def _state_a_day_before(truth, k, t_gps_s):
    """Partner *k*'s ECEF state at *t_gps_s* (before the scenario): its truth at the start
    propagated back with the flight dynamics (what a day-old uplink would have said)."""
    from pygnc import frames
    from pygnc.estimation import orbit_dynamics as od
    from pygnc.estimation.gps_fix import GpsFix, fix_to_gcrs

    t0 = float(truth["t_gps_s"][0])
    z, _ = fix_to_gcrs(GpsFix(t0, truth["r_ecef_m"][k][0], truth["v_ecef_m_s"][k][0]), [1.0] * 3, [1.0] * 3)
    xs = np.append(z, [0.0, 0.0, 0.0, 1.0])
    xs, _ = od.propagate(xs, t_gps_s - t0, FormationFilter().peer_model, want_phi=False, t_gps_s=t0)
    r, v = frames.rv_gcrs_to_ecef_floats(t_gps_s, xs[:3], xs[3:6])
    return r, v


def test_the_formation_and_range_only_tunables_are_tables_checked_at_load(tmp_path):
    """[formation_filter] and [range_only] override FormationFilterConfig and RangeOnlyConfig
    (declared once, in pygnc.estimation.tunables), checked when the file is loaded; the
    formation filter's own-orbit model takes [orbit_filter]."""
    f = tmp_path / "c.toml"
    f.write_text(
        "[orbit_filter]\ntesseral_degree = 0\n[formation_filter]\nrange_sigma_m = 0.8\n"
        '[range_only]\nplacement = "behind"\nwindow_s = 1800\n'
    )
    c = load_config(f)
    fc = filter_config_from(c)
    assert fc.range_sigma_m == 0.8 and fc.orbit.tesseral_degree == 0 and fc.own_model().tesseral_degree == 0
    ro = range_only_config_from(c)
    assert ro.placement == "behind" and ro.window_s == 1800.0 and ro.min_ranges == 8
    for text, key in (
        ("[formation_filter]\nrange_sigma_m = -1\n", "range_sigma_m"),
        ("[formation_filter]\norbit = 1\n", "orbit"),
        ('[range_only]\nplacement = "left"\n', "placement"),
        ("[range_only]\nwrong_side_probability = 0.7\n", "wrong_side_probability"),
        ("formation_range_sigma_m = 0.8\n", "formation_range_sigma_m"),
    ):
        f.write_text(text)
        with pytest.raises(ValueError, match=key):
            load_config(f)


def test_range_only_partners_take_their_own_lateness_prior(tmp_path):
    """The range tags' lateness prior: 0 +- 0.4 s with relayed partner fixes (the mapped tags
    are centred near 0; the fixes pin the along-track offset it trades against),
    ``[range_only]``'s 0.5 +- 0.4 s for range-only partners (the geometry sweep's radial cells
    stay honest with it) - each settable in its own table."""
    relayed = FormationProcessor(Config(range_gps_source="peer")).filter_config
    ranged = FormationProcessor(Config(range_gps_source="own")).filter_config
    assert (relayed.range_time_offset_s, relayed.range_time_offset_sigma_s) == (0.0, 0.4)
    assert (ranged.range_time_offset_s, ranged.range_time_offset_sigma_s) == (0.5, 0.4)
    f = tmp_path / "c.toml"
    f.write_text(
        'range_gps_source = "own"\n[formation_filter]\nrange_time_offset_s = 0.2\n'
        "[range_only]\nrange_time_offset_s = 0.3\nrange_time_offset_sigma_s = 0.1\n"
    )
    c = load_config(f)
    assert filter_config_from(c).range_time_offset_s == 0.2
    ranged = FormationProcessor(c).filter_config
    assert (ranged.range_time_offset_s, ranged.range_time_offset_sigma_s) == (0.3, 0.1)


def test_a_stop_gives_up_a_window_fit_under_way(range_only_3h):
    """Issue 48 item 14: a window fit's multistart (~0.1 s of CPU here, seconds on a Pi) held
    a stopping formation estimator.  A fit whose result is not wanted any more (the
    processor's ``interrupt``: the task stops) gives up before its next start and leaves
    the window, with its ranges, to be fitted again."""
    out, config, _ = range_only_3h
    proc = FormationProcessor(config)
    messages = [(t, b) for t, b in build_message_stream(Paths(out), config).messages if t in proc.consumes]
    asked = []
    for i in range(len(messages)):
        proc.handle(*messages[i])
        p = proc.peers.get(0x4B)
        if p is not None and p.hyp.window is not None and p.hyp.window.job is not None:
            break  # a fit is under way (it goes on with the next ranges)
    assert p.hyp.abandon is not None and not p.hyp.abandon()
    proc.interrupt = lambda: asked.append(1) or True  # the task stops
    n_ranges = len(p.hyp.window.range_m)
    p.hyp.step_fit()  # the fit's next step (a multistart about its first fit) gives up
    assert asked and p.hyp.window.job is None and len(p.hyp.window.range_m) == n_ranges
    proc.interrupt = None  # (had it not stopped) the window is fitted again, and converges
    for t, b in messages[i + 1 :]:
        proc.handle(t, b)
    c = proc.counters()
    assert c["range_only_starts"] == 1 and c["ranges_fitted"] > 100


def test_a_window_fit_looks_at_the_stop_between_every_two_ranges_it_propagates(range_only_3h, monkeypatch):
    """A window fit's steps propagate the window (a refit's reference, each kept orbit's
    replay when the filters start: seconds each on a Pi, several in the step that starts
    them).  Between any two ranges it propagates, the processor's ``interrupt`` is asked
    (the task answers pings there and sees a stop), so neither a ping nor a stop waits for
    a whole window."""
    out, config, _ = range_only_3h
    proc = FormationProcessor(config)
    since_look, worst = [0], [0]

    def interrupt():
        since_look[0] = 0
        return False

    def counted(method):
        def wrapper(self, *args, **kwargs):
            since_look[0] += 1
            worst[0] = max(worst[0], since_look[0])
            return method(self, *args, **kwargs)

        return wrapper

    steps_since, worst_steps = [0], [0]
    one_step = OD._one_step

    def counted_step(*args):
        steps_since[0] += 1
        worst_steps[0] = max(worst_steps[0], steps_since[0])
        return one_step(*args)

    def interrupt_steps():
        steps_since[0] = 0
        return interrupt()

    monkeypatch.setattr(ROW.AcquisitionWindow, "record_reference", counted(ROW.AcquisitionWindow.record_reference))
    monkeypatch.setattr(FormationFilter, "absorb_range_covariance", counted(FormationFilter.absorb_range_covariance))
    monkeypatch.setattr(OD, "_one_step", counted_step)
    proc.interrupt = interrupt_steps
    _run(build_message_stream(Paths(out), config).messages, config, proc)
    assert proc.counters()["range_only_starts"] == 1 and proc.counters()["ranges_fitted"] > 100
    assert worst[0] <= 2  # (a range joining the window, then the next event's look; or one replayed range)
    # Nor a whole window propagated in one go (90 steps of 30 s): only a range's few filter steps.
    assert worst_steps[0] <= 30


def test_a_stop_while_the_filters_start_from_the_fit_changes_nothing(range_only_3h, monkeypatch):
    """The last step of a window fit replays the window along each kept orbit before the
    filters start from them; a stop during the last of those replays (the main orbit's done,
    an alternative's under way) gives the fit up with nothing started (the window, its
    ranges, the filter, the alternatives and what the odds keep as they were), and without
    the stop the window is fitted again and the filters start."""
    out, config, _ = range_only_3h
    proc = FormationProcessor(config)
    messages = [(t, b) for t, b in build_message_stream(Paths(out), config).messages if t in proc.consumes]
    replays, asked = [0, False], []
    replay = RO.replay_window

    def flagged_replay(*args, **kwargs):
        replays[0] += 1
        replays[1] = True
        try:
            return replay(*args, **kwargs)
        finally:
            replays[1] = False

    def interrupt():
        if replays[1] and replays[0] >= 2:
            asked.append(1)
            return True  # the task stops while an alternative's window is replayed
        return False

    monkeypatch.setattr(RO, "replay_window", flagged_replay)
    proc.interrupt = interrupt
    for i in range(len(messages)):
        p = proc.peers.get(0x4B)
        before = None
        if p is not None and p.hyp.window is not None and p.hyp.window.job is not None:
            h = p.hyp
            before = (h.window, h.filter, list(h.alts), h.track, h.unresolved_m, h.n_starts, h.image_odds)
        replays[0] = 0
        proc.handle(*messages[i])
        if asked:
            break
    assert asked and before is not None and replays[0] >= 2  # (the main orbit's replay was done)
    h = proc.peers[0x4B].hyp
    window = before[0]
    assert h.window is window and window.job is None  # given up, to be fitted again
    assert (h.window, h.filter, h.alts, h.track, h.unresolved_m, h.n_starts) == before[:6]
    assert proc.counters()["ranges_fitted"] == 0  # (no filter started from a fit yet)
    proc.interrupt = None
    for t, b in messages[i + 1 :]:
        proc.handle(t, b)
    assert proc.counters()["range_only_starts"] == 1 and proc.counters()["ranges_fitted"] > 100
