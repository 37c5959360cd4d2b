"""Range-only navigation beyond the benches' geometries: a partner 30 km along-track, where
the ranges hardly see the cross-track offset, from TLE priors (with and without a gross
cross-track error) and from none.  Whatever it publishes, it is never `ok` while wrong."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import tomllib

import numpy as np
import pytest
from formation_support import relative_errors

from ground.__main__ import main as ground_main
from ground.replay.in_process import IN_PROCESS_OVERRIDES
from ground.simulate import scenario as scn
from ground.simulate.simulator import simulate, write_scenario
from pygnc.config import Paths, config_for_home, with_overrides
from pygnc.processors.formation import FormationProcessor
from pygnc.tasks.ingest import build_message_stream
from pygnc.timebase import utc_unix_from_gps

#: 99.9 % point of chi-square with 3 degrees of freedom.
NEES_999_3DOF = 16.266


@pytest.fixture(scope="module")
def far_pair(tmp_path_factory):
    """Two spacecraft, the partner 29.6 km behind with 1.2 km of cross-track swing (0.01 deg
    of inclination) and a ballistic coefficient 20 % under the own one's, 3 h, with TLEs."""
    out = tmp_path_factory.mktemp("far_pair")
    s = scn.ScenarioSettings(seed=4, duration_s=3 * 3600.0)
    s.spacecraft[0].ballistic_coeff_kg_m2 = 50.0
    p = s.spacecraft[1]
    p.dlambda_m, p.dex_m, p.dey_m, p.dix_m, p.diy_m, p.ballistic_coeff_kg_m2 = -29600.0, 0.0, 0.0, 1200.0, 0.0, 40.0
    s.ranging.bias_m = 2.0
    s.attitude.max_step_s = 30.0
    s.environment.albedo = 0.0
    s.tle.enabled = True
    s.tle.fit_span_s = 6 * 3600.0  # (the docs' examples' span: a day's arc was 60 % of the fixture's time)
    s.tle.error_scale = 0.0  # (the exact fit: each test sets the error it is about)
    write_scenario(simulate(s), out)
    return out, dict(np.load(out / "truth.npz"))


def _tle_priors(out, truth, *extra) -> dict:
    """``python -m ground uplink --tle`` for the own spacecraft at the scenario start."""
    import datetime as dt

    t0 = float(truth["t_gps_s"][0])
    epoch = dt.datetime.fromtimestamp(utc_unix_from_gps(t0), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = out / "priors.toml"
    path.unlink(missing_ok=True)
    args = ["uplink", "--tle", str(out / "tle.txt"), "--self", "90074", "--partner", "0x4B=90075"]
    args += ["--epoch-utc", epoch, "--out", str(path), "--spacecraft-id", "0x4A", *extra]
    with contextlib.redirect_stdout(io.StringIO()):
        assert ground_main(args) == 0
    return tomllib.loads(path.read_text())


def _run(out, overrides):
    config = dataclasses.replace(config_for_home(out), **IN_PROCESS_OVERRIDES)
    config = with_overrides(config, overrides, "test")
    proc = FormationProcessor(config)
    res = []
    for t, b in build_message_stream(Paths(out), config).messages:
        if t in proc.consumes:
            res += proc.handle(t, b)
    est = [b for t, b in res if t == "formation_estimate" and not b["propagated"]]
    return proc, res, est, config


def _judged(truth, est, config) -> dict:
    """After acquisition: NEES inside its bound (fraction), epochs ok, ok with the NEES past it."""
    acq = np.array([b["acquiring"] for b in est])
    e = relative_errors(truth, est, 0.0)
    after = ~acq
    lim = config.formation_valid_max_sigma_m
    amb = np.array([b["ambiguity_m"] for b in est])
    sig = np.array([np.linalg.norm(b["sigma_dr_m"]) for b in est])
    ok = after & (amb <= lim) & (sig <= lim)
    return {
        "inside": float(np.mean(e["nees"][after] <= NEES_999_3DOF)),
        "ok": int(ok.sum()),
        "ok_wrong": int(np.sum(ok & (e["nees"] > NEES_999_3DOF))),
        "err": np.linalg.norm(e["er"], axis=1)[after],
    }


def test_a_far_partner_from_its_tle_is_tracked_with_an_honest_sigma(far_pair):
    """The window's fit claims the along-track drift to microns per second (it takes the
    dynamics and the drag as exact); a filter started from that covariance read the drift's
    wander as cross-track geometry and was published ok 20-50 m off under a 3-m sigma.
    Started from the covariance of a filter run along the fit, it is ok and right."""
    out, truth = far_pair
    proc, _, est, config = _run(out, _tle_priors(out, truth, "--wrong-side-probability", "0"))
    j = _judged(truth, est, config)
    assert j["ok_wrong"] == 0
    assert j["inside"] >= 0.99
    assert j["ok"] > 0.5 * len(est)  # (usable, not merely honest)
    assert np.sqrt(np.mean(j["err"][-200:] ** 2)) < 25.0


def _moved_to_the_plane_mirror(table: dict, truth) -> None:
    """The prior *table* (ECEF) moved by the truth's plane mirror less the truth at its
    epoch: a TLE whose cross-track error puts the partner on the other side (2.4 km here)."""
    from pygnc import frames

    t0 = table["t_gps_s"]
    i = int(np.searchsorted(truth["t_gps_s"], t0))
    ro, vo = truth["r_gcrs_m"][0][i], truth["v_gcrs_m_s"][0][i]
    rp, vp = truth["r_gcrs_m"][1][i], truth["v_gcrs_m_s"][1][i]
    h = np.cross(ro, vo) / np.linalg.norm(np.cross(ro, vo))
    m = np.eye(3) - 2.0 * np.outer(h, h)
    r_m, v_m = frames.gcrs_to_itrs(ro + m @ (rp - ro), vo + m @ (vp - vo), truth["t_gps_s"][i])
    r_t, v_t = frames.gcrs_to_itrs(rp, vp, truth["t_gps_s"][i])
    table["pos_ecef_m"] = (np.array(table["pos_ecef_m"]) + np.asarray(r_m) - np.asarray(r_t)).tolist()
    table["vel_ecef_m_s"] = (np.array(table["vel_ecef_m_s"]) + np.asarray(v_m) - np.asarray(v_t)).tolist()


def test_a_tle_error_the_core_sigma_excludes_but_the_tail_explains_keeps_the_true_side(far_pair):
    """A TLE prior whose cross-track error (2.4 km: 7.6 sigma of the core covariance) puts
    the partner on the other side of the own orbit plane.  Without the tail the window
    fitted that side alone and the true orbit was gone; the prior's tail, fitted as a
    component of its own, keeps it among the orbits - and nothing is ok while wrong."""
    out, truth = far_pair
    pri = _tle_priors(out, truth)
    table = pri["formation_peer_priors"]["0x4B"]
    assert table["tail_probability"] > 0.0 and table["tail_scale"] > 1.0
    _moved_to_the_plane_mirror(table, truth)
    kept = {}
    for tail in (table["tail_probability"], 0.0):
        table["tail_probability"] = tail
        proc, _, est, config = _run(out, pri)
        assert _judged(truth, est, config)["ok_wrong"] == 0
        dr_t = relative_errors(truth, est, 0.0)["dr_true"]
        kept[tail] = min(np.linalg.norm(np.array(h) - dr_t[-1]) for h in est[-1]["hyp_dr_gcrs_m"])
        if tail:
            assert "the prior's tail" in [c.label for c in proc.peers[0x4B].hyp.prior.components]
    assert kept[0.0] > 1000.0  # (without the tail the true side is lost)
    assert min(kept.values()) < 100.0  # with it, kept


def test_with_no_prior_a_far_partner_keeps_both_sides(far_pair):
    """No prior: placed ahead and behind.  Each placement's prior is carried back to the
    window's start along its own orbit (along the other one, 60 km away, it came back
    hundreds of metres off and its side lost to the prior's cost), so the side the ranges
    cannot tell stays open: the true orbit is kept with a weight, and nothing is ok."""
    out, truth = far_pair
    proc, _, est, config = _run(out, {"formation_peer_priors": {}})
    j = _judged(truth, est, config)
    assert j["ok"] == 0 and j["inside"] >= 0.99
    dr_t = relative_errors(truth, est, 0.0)["dr_true"]
    last = est[-1]
    d = [np.linalg.norm(np.array(h) - dr_t[-1]) for h in last["hyp_dr_gcrs_m"]]
    assert min(d) < 100.0
    assert last["hyp_weights"][int(np.argmin(d))] > 0.05
    assert math.isfinite(last["ambiguity_m"]) and last["ambiguity_m"] > config.formation_valid_max_sigma_m


def test_the_mirror_images_join_the_published_mixture_unless_a_kept_orbit_stands_for_them():
    """with_mirror_images: the best orbit's images (in the own orbit plane, its point mirror,
    both) are added at the fit's odds (the best orbit's weight shared among them) when no kept
    orbit is within MIRROR_D2 of one; a coplanar best orbit's plane image is itself, so the
    mixture's mean crosses the plane and its cross-track sigma spans both sides."""
    from pygnc.estimation import range_only_mirrors as ROM
    from pygnc.estimation.formation_filter import I_REPORTED, N_STATES, rtn_to_gcrs

    r = np.array([6878e3, 0.0, 0.0])
    v = np.array([0.0, 7612.0 * math.cos(1.7), 7612.0 * math.sin(1.7)])
    x = np.zeros(N_STATES)
    x[0:3], x[3:6] = r, v
    dr, dv = rtn_to_gcrs(r, v, (0.0, -3000.0, 120.0), (0.0, 0.0, 0.0))
    x[9:12], x[12:15] = dr, dv
    p = np.diag([4.0] * 3 + [1e-4] * 3 + [1.0])
    ests, ws = ROM.with_mirror_images([(x, p)], (1.0,), (0.25, 0.0, 0.0))
    assert len(ests) == 2 and ws == pytest.approx((0.8, 0.2))
    cross = ROM.plane_mirror(x[0:6])
    np.testing.assert_allclose(ests[1][0][9:12], cross @ x[9:12])
    np.testing.assert_allclose(ests[1][1], p, atol=1e-9)  # (a diagonal isotropic block: unchanged)
    xm, pm = ROM.mix(ests, ws, I_REPORTED)
    n_hat = np.cross(r, v) / np.linalg.norm(np.cross(r, v))
    assert abs(float(n_hat @ xm[9:12])) == pytest.approx(0.6 * 120.0, rel=1e-3)  # 0.8 * 120 - 0.2 * 120
    assert math.sqrt(float(n_hat @ pm[:3, :3] @ n_hat)) > 90.0  # spans both sides
    # All three images: the point mirror 3 km ahead, the weights shared at the odds.
    ests3, ws3 = ROM.with_mirror_images([(x, p)], (1.0,), (0.25, 0.5, 0.25))
    assert len(ests3) == 4 and ws3 == pytest.approx((0.5, 0.125, 0.25, 0.125))
    np.testing.assert_allclose(ests3[2][0][9:15], -x[9:15])
    np.testing.assert_allclose(ests3[3][0][9:12], -(cross @ x[9:12]))
    # A kept orbit standing for an image, or odds 0: that image is not added.
    assert len(ROM.with_mirror_images([(x, p), ests[1]], (0.7, 0.3), (0.25, 0.0, 0.0))[0]) == 2
    assert ROM.with_mirror_images([(x, p)], (1.0,), (0.0, 0.0, 0.0)) == ([(x, p)], (1.0,))


def test_a_mirror_image_keeps_the_odds_its_prior_gave_it():
    """image_odds: the images' odds against the fitted orbit are the prior's alone (the
    ranges cannot tell them apart) - even for a prior centred on the image - and 0 for one
    the prior excludes; without a prior, none."""
    from pygnc.estimation import range_only_mirrors as ROM
    from pygnc.estimation.formation_filter import rtn_to_gcrs

    r = np.array([6878e3, 0.0, 0.0])
    v = np.array([0.0, 7612.0 * math.cos(1.7), 7612.0 * math.sin(1.7)])
    own = np.concatenate([r, v])

    class Prior:  # a Gaussian prior on the partner's position, centred on *centre*
        def __init__(self, centre, sigma_m):
            self.centre, self.sigma_m = centre, sigma_m

        def cost(self, xp):
            d = (xp[0:3] - self.centre) / self.sigma_m
            return float(d @ d)

    class Window:
        own0 = own

        def __init__(self, prior):
            self.prior = prior

    dr, _ = rtn_to_gcrs(r, v, (0.0, -3000.0, 60.0), (0.0, 0.0, 0.0))
    x0 = own.copy()
    x0[0:3] += dr
    wide = ROM.image_odds(Window(Prior(r + dr, 1e5)), x0)  # a prior far wider than the separation
    assert all(0.9 < o <= 1.0 for o in wide)
    narrow = ROM.image_odds(Window(Prior(r + dr, 50.0)), x0)  # 120 m across the plane: e^-2.9
    assert narrow[0] == pytest.approx(math.exp(-(120.0**2) / 50.0**2 / 2.0), rel=1e-6)
    assert narrow[1] == 0.0 and narrow[2] == 0.0  # 6 km away: excluded
    assert ROM.image_odds(Window(None), x0) == (0.0, 0.0, 0.0)


def test_a_window_keeps_the_spread_of_the_minima_within_reach_of_the_best():
    """spread_candidates: the three best, then up to three more within FIT_SPREAD_COST of the
    best, each the farthest from those taken; none past that cost."""
    from pygnc.estimation import range_only_window as ROW

    def cand(along_m, cost):
        x = np.zeros(7)
        x[0], x[1] = 6878e3, along_m
        return (x, cost)

    close = [cand(10.0 * k, 100.0 + 0.1 * k) for k in range(10)]  # a cluster within 100 m
    far = [cand(900.0, 104.0), cand(-700.0, 108.0), cand(5000.0, 130.0)]
    got = ROW.spread_candidates(close + far)
    along = [c[0][1] for c in got]
    assert along[:3] == [0.0, 10.0, 20.0]
    assert 900.0 in along and -700.0 in along and 5000.0 not in along
    assert len(got) <= ROW.FIT_CANDIDATES + ROW.FIT_SPREAD_CANDIDATES


def test_range_only_filters_allow_the_differential_drag_a_scale_leaves():
    """[range_only] diff_dmc_sigma_m_s2 is a floor on the range-only filters' differential
    acceleration; with partner fixes the [formation_filter] value stands."""
    from pygnc.config import Config

    own = FormationProcessor(Config(range_gps_source="own")).filter_config.diff_dmc_sigma_m_s2
    fix = FormationProcessor(Config(range_gps_source="peer")).filter_config.diff_dmc_sigma_m_s2
    assert own == pytest.approx(4.0e-7) and fix == pytest.approx(7.5e-8)
    c = Config(range_gps_source="own", formation_filter={"diff_dmc_sigma_m_s2": 6e-7})
    assert FormationProcessor(c).filter_config.diff_dmc_sigma_m_s2 == pytest.approx(6e-7)
    # ... and so is its growth with the orbits' drift (none with partner fixes)
    assert FormationProcessor(Config(range_gps_source="own")).filter_config.diff_dmc_sigma_per_km_da_m_s2 == 5e-6
    assert FormationProcessor(Config(range_gps_source="peer")).filter_config.diff_dmc_sigma_per_km_da_m_s2 == 0.0
    c = Config(range_gps_source="own", range_only={"diff_dmc_sigma_per_km_da_m_s2": 8e-6})
    assert FormationProcessor(c).filter_config.diff_dmc_sigma_per_km_da_m_s2 == 8e-6
    # ... while the atmosphere and the growth with the relative drag are [range_only]'s own
    own = FormationProcessor(Config(range_gps_source="own")).filter_config
    fix = FormationProcessor(Config(range_gps_source="peer")).filter_config
    assert (own.atmosphere, own.diff_dmc_relative_drag_fraction) == ("exponential", 0.0)
    assert (fix.atmosphere, fix.diff_dmc_relative_drag_fraction) == ("harris_priester", 0.25)


def test_a_window_no_orbit_fits_is_not_started_on_but_acquired_again(far_pair):
    """Ranges the dynamics cannot explain (here 5 m of a 15-min wave on every range): the
    window's best orbit fits them to metres, not to the noise - it is not started on (note
    range_only_poor_fit), the partner is acquired again and again, and never published as
    anything but acquiring."""
    out, truth = far_pair
    config = dataclasses.replace(config_for_home(out), **IN_PROCESS_OVERRIDES)
    config = with_overrides(config, _tle_priors(out, truth, "--wrong-side-probability", "0"), "test")
    msgs = build_message_stream(Paths(out), config).messages
    t0 = next(b["t_sc_s"] for t, b in msgs if t == "range")
    wave = [
        (t, {**b, "range_m": b["range_m"] + 5.0 * math.sin(2.0 * math.pi * (b["t_sc_s"] - t0) / 900.0)})
        if t == "range" and b["valid"]
        else (t, b)
        for t, b in msgs
    ]
    proc = FormationProcessor(config)
    res = []
    for t, b in wave:
        if t in proc.consumes:
            res += proc.handle(t, b)
    notes = [b for t, b in res if t == "estimator_note"]
    poor = [n["text"] for n in notes if n["code"] == "range_only_poor_fit"]
    assert poor and "acquired again" in poor[0]
    assert not any(n["code"] == "range_only_start" for n in notes)
    est = [b for t, b in res if t == "formation_estimate" and not b["propagated"]]
    assert est and all(b["acquiring"] for b in est)


def _hill_state(r, v, hill6):
    from pygnc.estimation.formation_filter import rtn_to_gcrs

    dr, dv = rtn_to_gcrs(r, v, hill6[:3], hill6[3:])
    return np.concatenate([r + dr, v + dv])


def _cw_ranges(r, v, x6, t_s):
    """Ranges of partner state *x6* over *t_s* under the Hill-Clohessy-Wiltshire motion."""
    from pygnc.estimation.formation_filter import rtn_matrix

    n = math.sqrt(3.986004418e14 / float(r @ r) ** 1.5)
    a3 = rtn_matrix(r, v)
    w = np.cross(r, v) / float(r @ r)
    d = x6[0:3] - r
    x, y, z = a3 @ d
    xd, yd, zd = a3 @ (x6[3:6] - v - np.cross(w, d))
    s, c = np.sin(n * t_s), np.cos(n * t_s)
    px = (4 - 3 * c) * x + s / n * xd + 2 * (1 - c) / n * yd
    py = 6 * (s - n * t_s) * x + y - 2 * (1 - c) / n * xd + (4 * s - 3 * n * t_s) / n * yd
    pz = c * z + s / n * zd
    return np.sqrt(px * px + py * py + pz * pz)


def test_a_circling_partner_is_fitted_from_the_whole_continuum_its_ranges_allow():
    """continuum_starts: a partner circling the own spacecraft (no along-track offset, no
    drift) has a family of relative orbits with its ranges - each start keeps every range
    (linear relative motion), lies away from the partner and its mirror images, and they
    spread; a partner 8 km behind has none (its ranges' first harmonic decides)."""
    from pygnc.estimation.range_only_iod import continuum_starts, orbit_distance_m

    r = np.array([6878e3, 0.0, 0.0])
    v = np.array([0.0, 7612.0 * math.cos(1.7), 7612.0 * math.sin(1.7)])
    own = np.concatenate([r, v])
    n = math.sqrt(3.986004418e14 / 6878e3**3)
    a, b, th, ph = 2000.0, 500.0, 0.3, 0.7
    hill = np.array(
        [
            a * math.cos(th),
            -2 * a * math.sin(th),
            b * math.cos(ph),
            -n * a * math.sin(th),
            -2 * n * a * math.cos(th),
            -n * b * math.sin(ph),
        ]
    )
    x0 = _hill_state(r, v, hill)
    t = np.arange(0.0, 6 * 3600.0, 60.0)
    starts = continuum_starts(own, x0)
    assert len(starts) == 4
    for xs in starts:
        assert np.abs(_cw_ranges(r, v, xs, t) - _cw_ranges(r, v, x0, t)).max() < 0.01
        assert orbit_distance_m(xs, x0) > 200.0
        point = 2.0 * own - x0
        assert orbit_distance_m(xs, point) > 200.0
    assert min(orbit_distance_m(p, q) for i, p in enumerate(starts) for q in starts[i + 1 :]) > 200.0
    behind = hill.copy()
    behind[1] -= 8000.0
    assert continuum_starts(own, _hill_state(r, v, behind)) == []


def test_orbits_the_ranges_cannot_tell_apart_keep_the_estimate_ambiguous():
    """unresolved_spread_m: fitted orbits that are not mirror images of the best count (how
    far the farthest is), its mirror images do not."""
    from pygnc.estimation import range_only_mirrors as ROM

    r = np.array([6878e3, 0.0, 0.0])
    v = np.array([0.0, 7612.0 * math.cos(1.7), 7612.0 * math.sin(1.7)])
    own = np.concatenate([r, v])
    best = _hill_state(r, v, np.array([0.0, -3000.0, 120.0, 0.0, 0.0, 0.0]))
    images = [own + ROM.block_mirror(6, m3) @ (best - own) for m3 in ROM.image_transforms(own)]
    assert ROM.unresolved_spread_m(own, best, images) == 0.0
    other = _hill_state(r, v, np.array([0.0, -3000.0, 120.0 + 900.0, 0.0, 0.0, 0.0]))
    assert ROM.unresolved_spread_m(own, best, [*images, other]) == pytest.approx(900.0, rel=1e-3)
    assert ROM.unresolved_spread_m(own, best, []) == 0.0


def test_a_filter_its_own_data_contradict_publishes_only_the_range():
    """implausible / losing_the_ranges / with_the_range_only: a range bias or a partner drag
    scale past 5 sigma of its prior, or two ranges in a row failing the gate, and the
    published covariance says only what the range does (a partner circling the own
    spacecraft was published ok 2.7 km off under a 2-m sigma, its bias at -38 m)."""
    from pygnc.estimation import range_only_mirrors as RO
    from pygnc.estimation.formation_filter import I_DRAG_SCALE, I_RANGE_BIAS, N_STATES, FormationFilter

    fc = FormationFilter().config
    x = np.zeros(N_STATES)
    x[9:12] = (0.0, -3000.0, 400.0)
    x[I_DRAG_SCALE] = 1.0
    assert not RO.implausible(x, fc)
    x[I_RANGE_BIAS] = fc.range_bias_prior_m + 5.1 * fc.range_bias_sigma_m
    assert RO.implausible(x, fc)
    x[I_RANGE_BIAS] = fc.range_bias_prior_m
    x[I_DRAG_SCALE] = 1.0 - 5.1 * fc.peer_drag_scale_sigma
    assert RO.implausible(x, fc)
    pr = np.diag([4.0] * 3 + [1e-4] * 3 + [1.0])
    wide = RO.with_the_range_only(x, pr)
    rng = math.hypot(3000.0, 400.0)
    assert math.sqrt(float(np.trace(wide[:3, :3]))) == pytest.approx(math.sqrt(rng**2 + 12.0), rel=1e-9)
    assert wide[6, 6] == pr[6, 6]
    f = FormationFilter()
    f.range_acquired = True
    f.range_rejected_nu_m = [40.0]
    assert not RO.losing_the_ranges(f)
    f.range_rejected_nu_m = [40.0, 41.0]
    assert RO.losing_the_ranges(f)
    f.range_rejected_nu_m = []
    f.range_acquired = False
    assert RO.losing_the_ranges(f)


def test_the_mirror_image_check_gives_the_answers_of_whole_mirrored_filters():
    """images_among (one batched solve over every alternative and image) and same_orbit
    (with its trace bound) answer as same_orbit on the whole mirror_images filters, solved
    pair by pair, for alternatives near an image, near none, and far off."""
    from pygnc.estimation import range_only_mirrors as RO
    from pygnc.estimation.formation_filter import FormationFilter

    rng = np.random.default_rng(46)

    def a_filter(x, scale):
        f = FormationFilter()
        f.x = x.copy()
        a = rng.normal(size=(21, 21))
        f.p = a @ a.T * scale
        return f

    def solved(f, g):  # same_orbit without its bound
        d = g.x[9:15] - f.x[9:15]
        return float(d @ np.linalg.solve(f.p[9:15, 9:15] + g.p[9:15, 9:15], d)) < RO.MIRROR_D2

    answers = set()
    for _ in range(200):
        x = np.zeros(21)
        x[0:6] = [6878e3, 1e3, 2e3, 1.0, 7600.0 * math.cos(1.7), 7600.0 * math.sin(1.7)]
        x[9:15] = rng.normal(size=6) * [3e3, 3e3, 3e3, 3.0, 3.0, 3.0]
        f = a_filter(x, rng.uniform(0.1, 100.0))
        images = RO.mirror_images(f)
        alts = []
        for _ in range(int(rng.integers(1, 5))):
            y = images[int(rng.integers(0, 3))].x.copy()
            y[9:15] += rng.normal(size=6) * rng.uniform(0.1, 3e3)
            alts.append(a_filter(y, rng.uniform(0.1, 100.0)))
        want = [any(solved(g, h) for g in images) for h in alts]
        assert RO.images_among(RO.mirror_image_blocks(f), alts, RO.MIRROR_D2) == want
        assert [any(RO.same_orbit(g, h, RO.MIRROR_D2) for g in images) for h in alts] == want
        answers.update(want)
    assert answers == {True, False}
