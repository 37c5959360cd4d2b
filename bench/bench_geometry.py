"""Range-only navigation over a sweep of formation geometries and priors: is it ever `ok` while wrong?

The range-only benches (``bench_range_only``, ``bench_operations``) draw partners 0.8-16 km
apart, mostly along-track.  This bench sweeps the geometry wider, on the simulator's truth
(EGM2008 40x40, NRLMSISE-00 drag, SRP, Sun and Moon; the partners' ballistic coefficients
20 % under the own one's, each spacecraft's density drawn apart):

* **along-track** separations 0.5-60 km, coplanar (no cross-track) and not (1 km of
  cross-track by RAAN);
* **radial / eccentric** separations: relative eccentricity a|de| of 690 m, 2.1 km and 3.4 km
  (de 1e-4 to 5e-4) with no along-track offset;
* **cross-track** by inclination and by RAAN, 1 and 3 km, 3 km along-track;
* **drifting** apart: semi-major axes 100 m, 300 m and 1 km apart (2.6-9 km more along-track
  every orbit: 3 km to 6-40 km over the run), with some radial and cross-track motion;

each under four priors uplinked in the own spacecraft's ``pygnc_config.toml``: none; the TLEs
through ``python -m ground uplink --tle`` with its defaults (``tle``) and with the identities
confirmed (``--wrong-side-probability 0``: ``tle_confirmed``); and a prior from the partner's
downlinked orbit estimates (``downlink``: the ground's ``fit_and_predict`` on records of the
truth plus orbit-filter-sized errors, wrong-side probability 0, as ``uplink --downlink``
makes it).  Each scenario (one group of partners) runs through the flight
FormationProcessor in this process.  Per cell (partner x prior), after the partner's
acquisition: the epochs whose NEES is inside its 99.9 % bound (goal >= 99 %), the epochs
reported `ok` (not acquiring, not ambiguous, 3D sigma within ``formation_valid_max_sigma_m``)
and of those how many with the NEES past its bound (**confidently wrong**: goal 0), the
published estimate's 3D RMS, that of the kept orbit nearest the truth, and the posterior
Cramer-Rao bound of the same ranges with the uplinked prior (``bench_range_only.bound``: the
flight dynamics taken as exact, so a lower bound the model error keeps any filter above);
the same bound under the range-only filter's own model of what it does not know
(``bench_range_only.bound_with_process_noise``, "with Q": its differential process noise,
the partner's drag scale, the range lateness and tag resolution - what an estimator that
needs that model to stay consistent can reach); that bound again with **the own orbit
estimated** from its GPS fixes as the flight does (``bench_range_only.bound_with_own_orbit``,
"with own": the two bounds before take the own orbit as known, so a partner's cross-track,
which no range sees, seems known to the prior's sigma, where the own estimate's error at the
prior's epoch is in it too); the published 3D sigma; and the mean NEES (3 where the sigma is
exact: the 99.9 % coverage alone would not see a sigma a third small).

Each cell is also run by a **consistent twin** (``bench_range_only.consistent_twin``,
``--twin-draws`` runs): the same recursion as the own-orbit bound carrying errors drawn as
its covariance says (prior, process noise, fix and range noise), so an estimator whose sigma
is right, with errors as correlated in time as its model makes them.  On the flight's own
`ok` epochs it shows how many cells such an estimator would be expected to leave `ok` while
wrong (a right sigma puts 0.1 % of epochs past the 99.9 % bound, and a run's errors come in
long correlated stretches, so some cells rather than a few epochs everywhere), the sigma
inflation at which it would expect half a cell, how many identifiable cells it would bring
within 1.2x the own-orbit bound, and where the flight's RMS falls among its runs - the last
two again with the twin given the flight's draws (the prior's actual error, the own fixes'
actual noise).

    .venv/bin/python bench/bench_geometry.py [--seeds 1] [--hours 6] [--scenarios DIR] [--jobs 2]
                                             [--groups along,along_xt,radial,cross,drift] [--priors ...] [--record]

``--scenarios DIR`` keeps the simulated scenarios (and reuses them); ``--jobs`` runs
scenarios in parallel processes.  About 4 min of simulation per group and seed, then about a
minute per prior.

``--forces`` asks what the flight dynamics miss in each geometry, on truths propagated from
the scenario's initial states: the differential acceleration of gravity beyond the flight's
8x8 field (EGM2008 40x40 less 8x8 at each spacecraft, RMS per R/T/N axis), and the **model
error in range** - the residual RMS of the flight model's best fit (partner state, drag
scale, range bias) to the noise-free ranges of the whole run - with the two spacecraft's
drag the same (what gravity and the altitude difference leave), with the ballistic
coefficients 20 % apart, and with each spacecraft's density drawn apart as in the sweep.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import io
import math
import sys
import tempfile
import tomllib
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "flight"), str(REPO), str(REPO / "tests"), str(REPO / "bench")]

from bench_range_only import (  # noqa: E402
    NEES_999_3DOF,
    bound,
    bound_with_own_orbit,
    bound_with_process_noise,
    consistency,
    consistent_twin,
    feed,
    own_fix_errors,
)
from formation_support import relative_errors, side_resolved_errors, sides_from  # noqa: E402
from results import figure, record  # noqa: E402

from ground.replay.in_process import IN_PROCESS_OVERRIDES  # noqa: E402
from ground.simulate import scenario as scn  # noqa: E402
from ground.simulate.simulator import simulate, write_scenario  # noqa: E402
from pygnc.config import Config, Paths, config_for_home, with_overrides  # noqa: E402
from pygnc.tasks.ingest import build_message_stream  # noqa: E402

A_M = scn.OrbitSettings().semi_major_axis_m

#: The partners of each scenario: (name, relative orbital elements in metres, as
#: ground.simulate.scenario.SpacecraftSettings takes them).
GROUPS: dict[str, list[tuple[str, dict]]] = {
    "along": [
        ("at0.5", {"dlambda_m": -500.0}),
        ("at2", {"dlambda_m": 2000.0}),
        ("at8", {"dlambda_m": -8000.0}),
        ("at30", {"dlambda_m": -29500.0}),
        ("at60", {"dlambda_m": 60000.0}),
    ],
    "along_xt": [
        ("at0.5_xt1", {"dlambda_m": 500.0, "diy_m": 1000.0}),
        ("at2_xt1", {"dlambda_m": -2000.0, "diy_m": -1000.0}),
        ("at8_xt1", {"dlambda_m": 8000.0, "diy_m": 1000.0}),
        ("at30_xt1", {"dlambda_m": -29600.0, "diy_m": 1000.0}),
        ("at60_xt1", {"dlambda_m": -60000.0, "diy_m": -1000.0}),
    ],
    "radial": [
        ("e1e-4", {"dey_m": 1e-4 * A_M}),
        ("e3e-4", {"dey_m": 3e-4 * A_M}),
        ("e5e-4", {"dex_m": 5e-4 * A_M}),
    ],
    "cross": [
        ("inc1", {"dlambda_m": -3000.0, "dix_m": 1000.0}),
        ("inc3", {"dlambda_m": 3000.0, "dix_m": 3000.0}),
        ("raan1", {"dlambda_m": 3000.0, "diy_m": 1000.0}),
        ("raan3", {"dlambda_m": -3000.0, "diy_m": -3000.0}),
    ],
    "drift": [
        ("da100", {"dlambda_m": -3000.0, "da_m": 100.0, "dey_m": 200.0, "diy_m": 300.0}),
        ("da300", {"dlambda_m": 3000.0, "da_m": -300.0, "dex_m": 200.0, "diy_m": -300.0}),
        ("da1000", {"dlambda_m": -3000.0, "da_m": 1000.0, "dey_m": -200.0, "dix_m": 300.0}),
    ],
}
PRIORS = ("none", "tle", "tle_confirmed", "downlink")
OWN_BALLISTIC_KG_M2 = 50.0
PARTNER_BALLISTIC_KG_M2 = 40.0


def make_scenario(group: str, seed: int, out: Path, hours: float) -> dict:
    """The own spacecraft and the partners of *group*, *hours* long, with TLEs; returns the truth."""
    rng = np.random.default_rng(7000 + seed)
    s = scn.ScenarioSettings(seed=seed, duration_s=hours * 3600.0)
    own = dataclasses.replace(s.spacecraft[0], ballistic_coeff_kg_m2=OWN_BALLISTIC_KG_M2)
    partners = [
        scn.SpacecraftSettings(name=name, radio_id=0x4B + k, ballistic_coeff_kg_m2=PARTNER_BALLISTIC_KG_M2, **roe)
        for k, (name, roe) in enumerate(GROUPS[group])
    ]
    s.spacecraft = [own, *partners]
    s.ranging.bias_m = float(rng.uniform(-5.0, 5.0))
    s.ranging.sigma_m = 0.5
    s.attitude.max_step_s = 30.0
    s.environment.albedo = 0.0
    s.tle.enabled = True
    write_scenario(simulate(s), out)
    return dict(np.load(out / "truth.npz"))


def _uplink(args: list[str]) -> str:
    """``python -m ground uplink ARGS`` in this process; its output (raises if refused)."""
    from ground.__main__ import main as ground_main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            rc = ground_main(["uplink", *args])
        except SystemExit as exc:
            rc = int(exc.code or 0)
    if rc != 0:
        raise RuntimeError(f"ground uplink {' '.join(args)} failed ({rc}):\n{buf.getvalue()}")
    return buf.getvalue()


def _iso_utc(t_gps_s: float) -> str:
    import datetime as dt

    from pygnc.timebase import utc_unix_from_gps

    return dt.datetime.fromtimestamp(utc_unix_from_gps(t_gps_s), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tle_priors(out: Path, truth, wrong_side_probability: float | None) -> dict:
    """The partners' priors from the scenario's TLEs at its start, as ``ground uplink --tle``."""
    t0 = float(truth["t_gps_s"][0])
    ids = [int(r) for r in truth["radio_id"]]
    with tempfile.TemporaryDirectory() as tmp:  # (not in the scenario: runs may share it)
        return _tle_priors(out, t0, ids, wrong_side_probability, Path(tmp) / "priors.toml")


def _tle_priors(out: Path, t0: float, ids: list[int], wrong_side_probability: float | None, path: Path) -> dict:
    cmd = ["--tle", str(out / "tle.txt"), "--self", str(90000 + ids[0]), "--epoch-utc", _iso_utc(t0)]
    cmd += ["--out", str(path), "--spacecraft-id", f"0x{ids[0]:02X}"]
    for p in ids[1:]:
        cmd += ["--partner", f"0x{p:02X}={90000 + p}"]
    if wrong_side_probability is not None:
        cmd += ["--wrong-side-probability", str(wrong_side_probability)]
    _uplink(cmd)
    return tomllib.loads(path.read_text())


def downlink_priors(truth, seed: int) -> dict:
    """Each partner's prior as ``ground uplink --downlink`` makes it: its own orbit estimates
    (the truth every 60 s for 2 h from the start, plus errors of the orbit filter's size,
    correlated over 20 min) carried to the start by ``ground.uplink.orbit_prediction``."""
    from ground.uplink import orbit_prediction as op
    from ground.uplink.cli import PartnerPrior, _prior_table

    rng = np.random.default_rng(9000 + seed)
    t = truth["t_gps_s"]
    sel = np.arange(0, min(t.size, 7201), 60)
    sigma = np.array([3.0] * 3 + [0.005] * 3)
    priors = {}
    for k in range(1, truth["radio_id"].size):
        noise = np.zeros((sel.size, 6))
        e = rng.normal(size=6) * sigma
        phi = math.exp(-60.0 / 1200.0)
        for j in range(sel.size):
            noise[j] = e
            e = phi * e + math.sqrt(1.0 - phi * phi) * rng.normal(size=6) * sigma
        p = op.fit_and_predict(
            t[sel],
            truth["r_ecef_m"][k][sel] + noise[:, :3],
            truth["v_ecef_m_s"][k][sel] + noise[:, 3:],
            np.full((sel.size, 3), 3.0),
            np.full((sel.size, 3), 0.005),
            float(t[0]),
            op.PredictionModel(fit_span_s=7200.0),
        )
        pid = int(truth["radio_id"][k])
        prior = PartnerPrior(pid, float(t[0]), p.r_ecef_m, p.v_ecef_m_s, p.cov_rtn, 0.0, "downlink (bench)", 0.0, "")
        priors[f"0x{pid:02X}"] = _prior_table(prior)
    return {"formation_peer_priors": priors}


def prior_overrides(condition: str, out: Path, truth, seed: int) -> dict:
    if condition == "none":
        return {"formation_peer_priors": {}}
    if condition == "tle":
        return tle_priors(out, truth, None)
    if condition == "tle_confirmed":
        return tle_priors(out, truth, 0.0)
    if condition == "downlink":
        return downlink_priors(truth, seed)
    raise ValueError(condition)


def run_condition(out: Path, overrides: dict, extra: dict, ids: list[int]):
    config = dataclasses.replace(config_for_home(out), **IN_PROCESS_OVERRIDES)  # every estimate: judged
    config = with_overrides(config, {**overrides, "formation_peer_ids": ids}, "prior")
    if extra:
        config = with_overrides(config, extra, "--set")
    return (*feed(out, config), config)


def evaluate_cell(
    truth, k: int, est: list[dict], sides: list, config, twin_draws: int = 0, twin_seed: int = 0, fix_errors=None
) -> dict:
    """The figures of one partner under one prior (see the module docstring); with
    *twin_draws*, those of the consistent twin too (:func:`twin_figures`; *fix_errors*: the
    own fixes' errors, ``bench_range_only.own_fix_errors``)."""
    pid = int(truth["radio_id"][k])
    c = consistency(truth, est, config)
    tg = np.array([b["t_gps_s"] for b in est])
    acq = np.array([b["acquiring"] for b in est])
    after = np.flatnonzero(~acq)
    row = {
        "peer": pid,
        "n": c["n"],
        "nees_in": c["inside"] / c["n"] if c["n"] else math.nan,
        "ok": c["n_valid"] / c["n"] if c["n"] else math.nan,
        "ok_wrong": c["n_valid_wrong"],
        "t_acq_min": c["t_acq_s"] / 60.0,
        "rms_m": math.nan,
        "side_rms_m": math.nan,
        "crb_m": math.nan,
        "pcrb_m": math.nan,
        "obound_m": math.nan,
        "sigma_m": math.nan,
        "nees_mean": math.nan,
        "ok_wrong_worst_m": 0.0,
    }
    if not after.size:
        return row
    e = relative_errors(truth, est, 0.0)
    sel = slice(after[0], None)
    err = np.linalg.norm(e["er"], axis=1)
    row["rms_m"] = float(np.sqrt(np.mean(err[sel] ** 2)))
    sig_all = np.array([np.linalg.norm(b["sigma_dr_m"]) for b in est])
    row["sigma_m"] = float(np.sqrt(np.mean(sig_all[sel] ** 2)))
    row["nees_mean"] = float(np.mean(e["nees"][sel]))
    row["sep_km"] = float(np.mean(np.linalg.norm(e["dr_true"], axis=1))) / 1e3
    amb = np.array([b["ambiguity_m"] for b in est])
    sig = np.array([np.linalg.norm(b["sigma_dr_m"]) for b in est])
    lim = config.formation_valid_max_sigma_m
    wrong = (~acq) & (amb <= lim) & (sig <= lim) & (e["nees"] > NEES_999_3DOF)
    if wrong.any():
        row["ok_wrong_worst_m"] = float(err[wrong].max())
    side, _, _ = side_resolved_errors(truth, k, sides, pid, tg[after[0]] - truth["t_gps_s"][0])
    if side.size:
        row["side_rms_m"] = float(np.sqrt(np.mean(side**2)))
    t_b = tg[after[0] :: 20]
    b3, _ = bound(truth, k, config, t_b, prior_rtn=True)
    row["crb_m"] = float(np.sqrt(np.mean(b3**2)))
    b3q, _ = bound_with_process_noise(truth, k, config, t_b, prior_rtn=True)
    row["pcrb_m"] = float(np.sqrt(np.mean(b3q**2)))
    b3o, _ = bound_with_own_orbit(truth, k, config, t_b, prior_rtn=True)
    row["obound_m"] = float(np.sqrt(np.mean(b3o**2)))
    row["final_ambiguous"] = bool(est[-1]["ambiguity_m"] > lim)
    if twin_draws:
        ok = (~acq) & (amb <= lim) & (sig <= lim)
        row.update(twin_figures(truth, k, config, tg[sel], ok[sel], row, twin_draws, twin_seed, fix_errors))
    return row


def twin_figures(truth, k: int, config, t_after, ok, row: dict, draws: int, seed: int, fix_errors=None) -> dict:
    """What an estimator exactly consistent with the flight filter's model would show on the
    same cell (``bench_range_only.consistent_twin``, *draws* runs, its error drawn with the
    statistics its sigma claims): at the epochs after acquisition *t_after* of which *ok*
    were reported ok, the chance of a run with an ok epoch past the NEES bound
    (``twin_wrong_p``) and the epochs it then has; each run's largest NEES over the ok
    epochs (``twin_max_nees``: what a sigma inflation would need to clear them); each run's
    3D RMS against the own-orbit bound (the chance of <= 1.2: ``twin_rms12_p``) and the share of
    its runs with an RMS below the flight's (``rms_percentile``: uniform over cells if the flight
    were as good as the twin); and the last two again with the twin given the flight's draws
    - every run starting from the prior's own error and its own fixes carrying the scenario's
    noise (*fix_errors*), so only the ranges' noise and the dynamics drawn (``given_*``)."""
    nees, err2 = consistent_twin(truth, k, config, t_after, draws=draws, seed=seed, prior_rtn=True)
    rms = np.sqrt(np.mean(err2, axis=1))
    max_nees = nees[:, ok].max(axis=1) if ok.any() else np.zeros(draws)
    past = (nees[:, ok] > NEES_999_3DOF).sum(axis=1)
    out = {
        "twin_wrong_p": float(np.mean(past > 0)),
        "twin_wrong_epochs": float(past[past > 0].mean()) if (past > 0).any() else 0.0,
        "twin_max_nees": max_nees,
        "twin_rms_m": float(np.sqrt(np.mean(rms**2))),
        "twin_rms12_p": float(np.mean(rms <= 1.2 * row["obound_m"])),
        "rms_percentile": float(np.mean(rms <= row["rms_m"])),
    }
    pri = config.formation_peer_priors.get(int(truth["radio_id"][k]))
    if pri and pri.get("pos_ecef_m") is not None:
        # the same given the flight's draws: this prior's own error, the own fixes' noise
        state = (pri["t_gps_s"], pri["pos_ecef_m"], pri["vel_ecef_m_s"])
        _, err2 = consistent_twin(
            truth,
            k,
            config,
            t_after,
            draws=draws,
            seed=seed,
            prior_rtn=True,
            prior_state=state,
            own_fix_errors=fix_errors,
        )
        rms = np.sqrt(np.mean(err2, axis=1))
        out["given_rms12_p"] = float(np.mean(rms <= 1.2 * row["obound_m"]))
        out["given_percentile"] = float(np.mean(rms <= row["rms_m"]))
    return out


def evaluate_scenario(job) -> list[dict]:
    """Simulate (or reuse) one group's scenario for one seed and run every prior on it."""
    group, seed, out, args = job
    out.mkdir(parents=True, exist_ok=True)
    if (out / "truth.npz").is_file():
        truth = dict(np.load(out / "truth.npz"))
    else:
        truth = make_scenario(group, seed, out, args.hours)
    extra = {}
    for kv in args.set:
        key, value = kv.split("=", 1)
        extra[key] = tomllib.loads(f"v = {value}")["v"]
    names = [n for n, _ in GROUPS[group]]
    rows = []
    runs = [(c, 0) for c in args.priors]
    if "downlink" in args.priors:
        runs += [("downlink", d) for d in range(1, args.prior_draws)]
    fix_errors = None
    for condition, draw in runs:
        overrides = prior_overrides(condition, out, truth, seed + DRAW_SEED_STEP * draw)
        res, cpu_s, proc, config = run_condition(out, overrides, extra, [int(r) for r in truth["radio_id"]])
        if fix_errors is None and args.twin_draws:
            fix_errors = own_fix_errors(truth, build_message_stream(Paths(out), config).messages)
        sides = sides_from(res)
        for k in range(1, truth["radio_id"].size):
            pid = int(truth["radio_id"][k])
            est = [b for t, b in res if t == "formation_estimate" and b["peer_id"] == pid and not b["propagated"]]
            row = {"group": group, "geometry": names[k - 1], "prior": condition, "seed": seed, "cpu_s": cpu_s}
            row["draw"] = draw
            if not est:
                row.update(n=0, missing=True)
            else:
                row.update(
                    evaluate_cell(
                        truth,
                        k,
                        est,
                        sides,
                        config,
                        args.twin_draws,
                        _twin_seed(group, seed, condition, draw, k),
                        fix_errors,
                    )
                )
            rows.append(row)
            if args.progress:
                print(f"  {row['geometry']:11s} s{seed} {_label(row):14s} {_fmt(row)}  ({cpu_s:.0f} s)", flush=True)
    return rows


def _twin_seed(group: str, seed: int, prior: str, draw: int, k: int) -> int:
    """The consistent twin's seed of one cell: its own for every group, seed, prior, draw and
    partner (cells that shared one would share their Monte Carlo error)."""
    return zlib.crc32(f"{group}/{seed}/{prior}/{draw}/{k}".encode())


#: The downlinked prior's draw d > 0 (``--prior-draws``) is made with seed + d x this.
DRAW_SEED_STEP = 100


def _label(r: dict) -> str:
    return r["prior"] + (f" d{r['draw']}" if r.get("draw") else "")


def forces(group: str, hours: float) -> list[str]:
    """The --forces lines of *group*'s partners (see the module docstring)."""
    from bench_range_only import _fit_run

    from ground.simulate import orbits
    from ground.simulate.simulator import deputy_elements
    from pygnc import frames
    from pygnc.estimation import orbit_dynamics as od
    from pygnc.estimation.formation_filter import FormationFilter, rtn_matrix
    from pygnc.estimation.range_only_iod import partner_trajectory
    from pygnc.processors.formation import filter_config_from

    bh = orbits.brahe_setup()
    field = bh.GravityModel.from_model_type(bh.GravityModelType.EGM2008_120)
    s = scn.ScenarioSettings(seed=1)
    fc = filter_config_from(Config())
    pmodel = FormationFilter(fc).peer_model
    omodel = dataclasses.replace(pmodel, ballistic_coeff_kg_m2=fc.orbit.ballistic_coeff_kg_m2)
    t0 = 1426485600.0

    def truth(roe: dict, bc: float, seed: int) -> dict:
        el = deputy_elements(s.orbit, scn.SpacecraftSettings(**roe))
        r0, v0 = orbits.initial_state_from_elements(*el)
        return orbits.propagate_truth(r0, v0, t0, hours * 3600.0, step_s=1.0, ballistic_coeff_kg_m2=bc, seed=seed)

    def beyond_8x8(tr, idx) -> np.ndarray:
        out = []
        for j in idx:
            m = frames.gcrs_from_itrs_matrix(tr["t_gps_s"][j]).T
            r = tr["r_gcrs_m"][j]
            out.append(
                np.asarray(bh.accel_gravity_spherical_harmonics(r, m, field, 40, 40))
                - np.asarray(bh.accel_gravity_spherical_harmonics(r, m, field, 8, 8))
            )
        return np.array(out)

    def drag_residual(tr0, tr1, bc0: float, bc1: float) -> np.ndarray:
        """Along-track differential drag (NRLMSISE-00, each truth's density factor and
        ballistic coefficient) less the flight model's partner drag times the best constant
        scale, m/s^2 (what a drag scale leaves of it)."""
        d, m1, m0 = [], [], []
        for j in idx:
            t = tr0["t_gps_s"][j]
            m = frames.gcrs_from_itrs_matrix(t).T
            a = rtn_matrix(tr0["r_gcrs_m"][j], tr0["v_gcrs_m_s"][j])[1]
            acc = []
            for tr, bc in ((tr0, bc0), (tr1, bc1)):
                r, v = tr["r_gcrs_m"][j], tr["v_gcrs_m_s"][j]
                rho = bh.density_nrlmsise00(orbits.brahe_epoch(t), m @ r) * tr["density_factor"]
                vr = v - np.cross([0.0, 0.0, 7.292115e-5], r)
                acc.append(-0.5 * rho / bc * np.linalg.norm(vr) * vr)
            d.append(a @ (acc[1] - acc[0]))
            m1.append(a @ np.asarray(od.drag_acceleration(tr1["r_gcrs_m"][j], tr1["v_gcrs_m_s"][j], 50.0)))
            m0.append(a @ np.asarray(od.drag_acceleration(tr0["r_gcrs_m"][j], tr0["v_gcrs_m_s"][j], 50.0)))
        x = np.stack([np.array(m1), np.ones(len(m1))], axis=1)
        y = np.array(d) + np.array(m0)
        return y - x @ np.linalg.lstsq(x, y, rcond=None)[0]

    def range_error(tr0, tr1) -> float:
        idx = np.arange(0, tr0["t_gps_s"].size, 20)
        t_r = tr0["t_gps_s"][idx]
        x0o = np.concatenate((tr0["r_gcrs_m"][0], tr0["v_gcrs_m_s"][0]))
        x1 = np.concatenate((tr1["r_gcrs_m"][0], tr1["v_gcrs_m_s"][0]))
        own = partner_trajectory(x0o, t_r[0], t_r, omodel)[0]
        rho = np.linalg.norm(tr1["r_gcrs_m"][idx] - tr0["r_gcrs_m"][idx], axis=1)
        return _fit_run(x1, t_r[0], t_r, own, rho, pmodel, fc.range_bias_sigma_m)[0]

    own = truth({}, OWN_BALLISTIC_KG_M2, 11)
    idx = np.arange(0, own["t_gps_s"].size, 60)
    g0 = beyond_8x8(own, idx)
    lines = []
    for name, roe in GROUPS[group]:
        same = truth(roe, OWN_BALLISTIC_KG_M2, 11)
        bc = truth(roe, PARTNER_BALLISTIC_KG_M2, 11)
        apart = truth(roe, PARTNER_BALLISTIC_KG_M2, 12)
        d = beyond_8x8(same, idx) - g0
        rtn = np.array([rtn_matrix(own["r_gcrs_m"][j], own["v_gcrs_m_s"][j]) @ d[i] for i, j in enumerate(idx)])
        sep = np.mean(np.linalg.norm(same["r_gcrs_m"] - own["r_gcrs_m"], axis=1)) / 1e3
        dh = np.abs(np.linalg.norm(same["r_gcrs_m"], axis=1) - np.linalg.norm(own["r_gcrs_m"], axis=1)).max()
        g_rms = np.sqrt(np.mean(rtn**2, axis=0)) * 1e9
        lines.append(
            f"  {name:11s} separation {sep:5.1f} km (altitude difference up to {dh:5.0f} m):"
            f" gravity beyond 8x8 R/T/N {g_rms[0]:6.0f} {g_rms[1]:6.0f} {g_rms[2]:6.0f} nm/s2;"
            f" model error in range: same drag {range_error(own, same):.2f} m,"
            f" ballistic 20 % apart {range_error(own, bc):.2f} m,"
            f" densities drawn apart {range_error(own, apart):.2f} m"
        )
        res = drag_residual(own, apart, OWN_BALLISTIC_KG_M2, PARTNER_BALLISTIC_KG_M2)
        lines.append(
            f"  {'':11s} differential drag along-track after a fitted scale (densities x{own['density_factor']:.2f} / "
            f"x{apart['density_factor']:.2f}): {np.sqrt(np.mean(res**2)) * 1e9:.0f} nm/s2 RMS, "
            f"{np.abs(res).max() * 1e9:.0f} at most"
        )
    return lines


def _fmt(r: dict) -> str:
    if r.get("missing"):
        return "no estimate"
    return (
        f"{100.0 * r['nees_in']:5.1f}% {100.0 * r['ok']:5.1f}% {r['ok_wrong']:4d} "
        f"{r['rms_m']:9.1f} {r['side_rms_m']:7.1f} {r['crb_m']:6.1f} {r['pcrb_m']:6.1f} {r['obound_m']:6.1f} "
        f"{r['sigma_m']:7.1f} {r['nees_mean']:6.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--groups", default=",".join(GROUPS), help="comma-separated groups of partners")
    ap.add_argument("--priors", default=",".join(PRIORS), help="comma-separated priors")
    ap.add_argument("--scenarios", type=Path, help="keep (and reuse) the simulated scenarios here")
    ap.add_argument("--jobs", type=int, default=1, help="scenarios evaluated in parallel (processes)")
    ap.add_argument(
        "--prior-draws",
        type=int,
        default=1,
        help="the downlinked prior drawn this many times per scenario: the RMS over the draws against the "
        "bounds (the first draw is the table's)",
    )
    ap.add_argument(
        "--twin-draws",
        type=int,
        default=300,
        help="runs of the consistent twin per cell (0: none): what a sigma that is right would show there",
    )
    ap.add_argument("--record", action="store_true", help="record the table in bench/results (the performance page)")
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="flight configuration override (TOML value)"
    )
    ap.add_argument("--forces", action="store_true", help="what the flight dynamics miss in each geometry (see above)")
    ap.add_argument("--progress", action="store_true", help="print each cell as it is done (then the table again)")
    args = ap.parse_args()
    args.priors = [p for p in args.priors.split(",") if p]
    groups = [g for g in args.groups.split(",") if g]
    for g in groups:
        if g not in GROUPS:
            ap.error(f"unknown group {g!r} (groups: {', '.join(GROUPS)})")
    for p in args.priors:
        if p not in PRIORS:
            ap.error(f"unknown prior {p!r} (priors: {', '.join(PRIORS)})")
    if args.forces:
        print(f"== what the flight dynamics miss, {args.hours:g} h ==")
        for g in groups:
            for line in forces(g, args.hours):
                print(line, flush=True)
        return
    print(
        f"== range-only geometry sweep: {len(groups)} groups x {args.seeds} seeds, {args.hours:g} h, priors "
        f"{', '.join(args.priors)}" + (f"; overrides {', '.join(args.set)}" if args.set else "") + " =="
    )
    print(
        "   per cell: NEES inside its 99.9 % bound, epochs ok, ok-while-wrong, published 3D RMS m, nearest kept "
        "orbit 3D RMS m, CRB m, the bound under the filter's model m, the same with the own orbit estimated m, "
        "published 3D sigma RMS m, mean NEES "
        "(after acquisition)"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = args.scenarios or Path(tmp)
        jobs = [(g, seed, base / f"{g}_s{seed}", args) for seed in range(1, args.seeds + 1) for g in groups]
        if args.jobs > 1:
            with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
                results = list(pool.map(evaluate_scenario, jobs))
        else:
            results = map(evaluate_scenario, jobs)
        for got in results:
            for r in got:
                print(f"  {r['geometry']:11s} s{r['seed']} {_label(r):14s} {_fmt(r)}", flush=True)
            rows += got
    summarise(rows, args)


def summarise(rows: list[dict], args) -> None:
    draws = [r for r in rows if r.get("draw", 0) == 0 or r["prior"] != "downlink"]
    over_draws = _summarise_draws(rows) if len(draws) < len(rows) else None
    rows = draws
    good = [r for r in rows if not r.get("missing") and r["n"]]
    wrong_cells = [r for r in good if r["ok_wrong"] > 0]
    nees = np.array([r["nees_in"] for r in good])
    print(
        f"  cells: {len(rows)} ({len(rows) - len(good)} without an estimate after acquisition); "
        f"with an epoch ok while wrong: {len(wrong_cells)}"
        + (
            " (" + ", ".join(f"{r['geometry']}/{r['prior']} {r['ok_wrong']}" for r in wrong_cells) + ")"
            if wrong_cells
            else ""
        )
    )
    if good:
        print(
            f"  NEES inside its bound: median cell {100.0 * np.median(nees):.1f} %, worst {100.0 * nees.min():.1f} % "
            f"({min(good, key=lambda r: r['nees_in'])['geometry']}/{min(good, key=lambda r: r['nees_in'])['prior']}); "
            f"cells at >= 99 %: {int(np.sum(nees >= 0.99))} of {nees.size}"
        )
        ident = identifiable(good)
        if ident:
            ratio = np.array([r["rms_m"] / r["crb_m"] for r in ident])
            print(
                f"  identifiable cells (prior confirms the side, not ambiguous at the end): published RMS / CRB "
                f"median {np.median(ratio):.2f}, worst {ratio.max():.2f}; cells <= 1.2: {int(np.sum(ratio <= 1.2))} "
                f"of {ratio.size}"
            )
            ratio_q = np.array([r["rms_m"] / r["pcrb_m"] for r in ident])
            print(
                f"  the same against the bound with the filter's process noise: median {np.median(ratio_q):.2f}, "
                f"worst {ratio_q.max():.2f}; cells <= 1.2: {int(np.sum(ratio_q <= 1.2))} of {ratio_q.size}"
            )
            ratio_o = np.array([r["rms_m"] / r["obound_m"] for r in ident])
            print(
                f"  the same against that bound with the own orbit estimated: median {np.median(ratio_o):.2f}, "
                f"worst {ratio_o.max():.2f}; cells <= 1.2: {int(np.sum(ratio_o <= 1.2))} of {ratio_o.size}"
            )
            anees = np.array([r["nees_mean"] for r in ident])
            print(
                f"  their mean NEES (3 if the sigma were exact): median {np.median(anees):.2f}, worst {anees.max():.2f}"
            )
    twin = twin_summary(good, "cells") if good and "twin_wrong_p" in good[0] else None
    if args.record and good:
        _record(rows, args, over_draws, twin)


def twin_summary(rows: list[dict], what: str) -> dict:
    """The consistent twin's figures over *rows* beside the flight's (see :func:`twin_figures`),
    printed; returned for the record."""
    rows = [r for r in rows if "twin_wrong_p" in r]
    p = np.array([r["twin_wrong_p"] for r in rows])
    flight = sum(r["ok_wrong"] > 0 for r in rows)
    max_nees = [r["twin_max_nees"] for r in rows]
    # The sigma inflation f at which a consistent estimator would expect at most half a cell
    # past the bound f^2: then no cell at all in at least half of all sweeps, however the
    # cells depend on each other (they share scenarios, draws and the own orbit; Markov's
    # inequality).  (The same `ok` epochs: an inflated sigma would also be `ok` less often.)
    inflation = math.nan
    for f in np.arange(1.0, 4.0, 0.01):
        if sum(float(np.mean(m > NEES_999_3DOF * f * f)) for m in max_nees) <= 0.5:
            inflation = float(f)
            break
    epochs = [r["twin_wrong_epochs"] for r in rows if r["twin_wrong_p"] > 0]
    out = {
        "n": len(rows),
        "flight_wrong": int(flight),
        "twin_wrong": float(p.sum()),
        "twin_epochs": float(np.median(epochs)) if epochs else 0.0,
        "inflation": inflation,
    }
    print(
        f"  {what}: with an epoch ok while wrong {flight} of {len(rows)}; an estimator whose sigma is right "
        f"(the consistent twin) would have {out['twin_wrong']:.1f} on the same epochs (expected; such a run has "
        f"{out['twin_epochs']:.0f} of them, median cell); half a cell expected would take its sigma x {inflation:.2f}"
    )
    ident = [r for r in identifiable(rows) if math.isfinite(r.get("rms_percentile", math.nan))]
    if ident:
        q = np.array([r["twin_rms12_p"] for r in ident])
        ratio_o = np.array([r["rms_m"] / r["obound_m"] for r in ident])
        pct = np.array([r["rms_percentile"] for r in ident])
        out.update(
            ident=len(ident),
            flight_rms12=int(np.sum(ratio_o <= 1.2)),
            twin_rms12=float(q.sum()),
            percentile_median=float(np.median(pct)),
        )
        print(
            f"  {what}, identifiable: RMS <= 1.2 x the bound with the own orbit estimated in {out['flight_rms12']} "
            f"of {len(ident)}; the twin would be in {out['twin_rms12']:.1f}; the flight's RMS among the twin's "
            f"runs: median percentile {100.0 * out['percentile_median']:.0f} (50 if as good as the twin)"
        )
        given = [r for r in ident if "given_rms12_p" in r]
        if given:
            out.update(
                given=len(given),
                given_flight_rms12=int(sum(r["rms_m"] <= 1.2 * r["obound_m"] for r in given)),
                given_rms12=float(sum(r["given_rms12_p"] for r in given)),
                given_percentile_median=float(np.median([r["given_percentile"] for r in given])),
            )
            print(
                f"  {what}, identifiable, the twin given the flight's draws (prior error, own fix noise): within 1.2x"
                f" in {out['given_rms12']:.1f} of {len(given)} (the flight {out['given_flight_rms12']}); the flight's "
                f"median percentile among its runs {100.0 * out['given_percentile_median']:.0f}"
            )
    return out


def identifiable(rows: list[dict]) -> list[dict]:
    """The cells whose prior confirms the side and that end unambiguous, with an estimate
    after acquisition (the bounds' comparisons; a cell without one has no RMS)."""
    return [
        r
        for r in rows
        if r["prior"] in ("downlink", "tle_confirmed") and not r.get("final_ambiguous") and math.isfinite(r["rms_m"])
    ]


def _summarise_draws(rows: list[dict]) -> dict:
    """Per geometry and seed, the downlinked prior's draws together: a run keeps its prior's
    error where the ranges do not see (the cross-track of a partner along-track), so one
    draw's RMS against the bound is that draw's luck as much as the filter's; the RMS over
    the draws is what the bound speaks of.  Returns the draws' figures for the record."""
    every = [r for r in rows if r["prior"] == "downlink" and not r.get("missing") and r["n"]]
    # (against the bounds only the draws that end unambiguous, with an estimate after acquisition)
    dl = [r for r in every if not r.get("final_ambiguous") and math.isfinite(r["rms_m"])]
    keys = sorted({(r["geometry"], r["seed"]) for r in dl}, key=lambda k: (k[1], k[0]))
    print(
        "  downlinked priors, every draw: RMS over the draws / CRB, / the bound under the filter's model, / with the "
        "own orbit estimated; mean NEES"
    )
    ratios = []
    for geo, seed in keys:
        rr = [r for r in dl if (r["geometry"], r["seed"]) == (geo, seed)]
        rms = math.sqrt(np.mean([r["rms_m"] ** 2 for r in rr]))
        crb = math.sqrt(np.mean([r["crb_m"] ** 2 for r in rr]))
        pcrb = math.sqrt(np.mean([r["pcrb_m"] ** 2 for r in rr]))
        obound = math.sqrt(np.mean([r["obound_m"] ** 2 for r in rr]))
        ratios.append((rms / crb, rms / pcrb, rms / obound))
        print(
            f"  {geo:11s} s{seed} {len(rr)} draws: {rms:6.2f} m: {rms / crb:5.2f} / {rms / pcrb:5.2f} / "
            f"{rms / obound:5.2f}; "
            f"{np.mean([r['nees_mean'] for r in rr]):5.2f}"
        )
    if not ratios:
        return {}
    a = np.array(ratios)
    print(
        f"  over the draws, cells <= 1.2 x CRB: {int(np.sum(a[:, 0] <= 1.2))} of {len(a)} (median "
        f"{np.median(a[:, 0]):.2f}); <= 1.2 x the bound under the filter's model: {int(np.sum(a[:, 1] <= 1.2))} "
        f"(median {np.median(a[:, 1]):.2f}); <= 1.2 x that bound with the own orbit estimated: "
        f"{int(np.sum(a[:, 2] <= 1.2))} (median {np.median(a[:, 2]):.2f})"
    )
    wrong = [r for r in every if r["ok_wrong"] > 0]
    print(
        f"  every draw: cells with an epoch ok while wrong: {len(wrong)} of {len(every)}"
        + (
            " (" + ", ".join(f"{r['geometry']} s{r['seed']} d{r['draw']} {r['ok_wrong']}" for r in wrong) + ")"
            if wrong
            else ""
        )
    )
    twin = twin_summary(every, "every draw") if every and "twin_wrong_p" in every[0] else None
    return {
        "twin": twin,
        "n": len(a),
        "draws": max(r["draw"] for r in every) + 1,
        "ratios": a,
        "wrong_cells": len(wrong),
        "wrong_epochs": sum(r["ok_wrong"] for r in wrong),
        "draw_cells": len(every),
    }


def _twin_figures(tw: dict, key: str, what: str) -> list:
    """The record's figures of a :func:`twin_summary`."""
    figs = [
        figure(
            f"{key}twin_ok_wrong",
            f"{what}: with an epoch ok while wrong, flight / an estimator whose sigma is right (expected)",
            f"{tw['flight_wrong']} / {tw['twin_wrong']:.1f} of {tw['n']}",
        ),
        figure(
            f"{key}twin_epochs",
            f"{what}: epochs ok while wrong in such a run of that estimator, median cell",
            tw["twin_epochs"],
        ),
        figure(
            f"{key}twin_inflation",
            f"{what}: sigma inflation at which that estimator expects half a cell (none in >= half of all sweeps)",
            tw["inflation"],
            "x",
        ),
    ]
    if "ident" in tw:
        figs += [
            figure(
                f"{key}twin_rms12",
                f"{what}, identifiable: RMS <= 1.2 x the own-orbit bound, flight / right-sigma estimator (expected)",
                f"{tw['flight_rms12']} / {tw['twin_rms12']:.1f} of {tw['ident']}",
            ),
            figure(
                f"{key}twin_percentile",
                f"{what}, identifiable: the flight's RMS among that estimator's runs, median percentile (50: as good)",
                100.0 * tw["percentile_median"],
                "%",
            ),
        ]
    if "given" in tw:
        figs += [
            figure(
                f"{key}given_rms12",
                f"{what}, identifiable: ... the same, that estimator given the flight's draws (the prior's "
                "error, the own fixes' noise)",
                f"{tw['given_flight_rms12']} / {tw['given_rms12']:.1f} of {tw['given']}",
            ),
            figure(
                f"{key}given_percentile",
                f"{what}, identifiable: the flight's RMS among those runs, median percentile",
                100.0 * tw["given_percentile_median"],
                "%",
            ),
        ]
    return figs


def _record(rows: list[dict], args, over_draws: dict | None = None, twin: dict | None = None) -> None:
    good = [r for r in rows if not r.get("missing") and r["n"]]
    nees = np.array([r["nees_in"] for r in good])
    figs = [
        figure("cells", "cells (partner geometry x prior x seed)", len(rows)),
        figure(
            "ok_wrong_cells",
            "cells with an epoch ok while its NEES is past the bound",
            sum(r["ok_wrong"] > 0 for r in good),
        ),
        figure("ok_wrong_epochs", "epochs ok while wrong, all cells", sum(r["ok_wrong"] for r in good)),
        figure("nees_inside_median", "NEES inside its 99.9 % bound, median cell", 100.0 * float(np.median(nees)), "%"),
        figure("nees_inside_worst", "... worst cell", 100.0 * float(nees.min()), "%"),
        figure(
            "cells_99",
            "cells with NEES inside its bound at >= 99 % of their epochs",
            f"{int(np.sum(nees >= 0.99))} of {nees.size}",
        ),
    ]
    ident = identifiable(good)
    if ident:
        ratio = np.array([r["rms_m"] / r["crb_m"] for r in ident])
        ratio_q = np.array([r["rms_m"] / r["pcrb_m"] for r in ident])
        anees = np.array([r["nees_mean"] for r in ident])
        figs += [
            figure(
                "identifiable_cells",
                "identifiable cells (prior confirms the side, not ambiguous at the end)",
                len(ident),
            ),
            figure(
                "rms_over_crb_median",
                "identifiable cells: published RMS / CRB (dynamics exact), median",
                float(np.median(ratio)),
                "x",
            ),
            figure(
                "cells_rms_crb_12",
                "identifiable cells with published RMS <= 1.2 CRB",
                f"{int(np.sum(ratio <= 1.2))} of {ratio.size}",
            ),
            figure(
                "rms_over_pcrb_median",
                "identifiable cells: published RMS / the bound under the filter's model (process noise, drag "
                "scale, lateness), median",
                float(np.median(ratio_q)),
                "x",
            ),
            figure(
                "cells_rms_pcrb_12",
                "identifiable cells with published RMS <= 1.2 x the bound under the filter's model",
                f"{int(np.sum(ratio_q <= 1.2))} of {ratio_q.size}",
            ),
            figure(
                "anees_median",
                "identifiable cells: mean NEES after acquisition (3 if the sigma is exact), median",
                float(np.median(anees)),
            ),
            figure("anees_worst", "... worst cell", float(anees.max())),
        ]
        ratio_o = np.array([r["rms_m"] / r["obound_m"] for r in ident])
        figs += [
            figure(
                "rms_over_obound_median",
                "identifiable cells: published RMS / the bound under the filter's model with the own orbit "
                "estimated, median",
                float(np.median(ratio_o)),
                "x",
            ),
            figure(
                "cells_rms_obound_12",
                "identifiable cells with published RMS <= 1.2 x that bound",
                f"{int(np.sum(ratio_o <= 1.2))} of {ratio_o.size}",
            ),
        ]
    if over_draws:
        a = over_draws["ratios"]
        d = over_draws["draws"]
        figs += [
            figure("draw_cells", f"downlinked prior drawn {d} times per scenario: cells (partner x seed)", len(a)),
            figure(
                "draws_rms_over_crb_median",
                "... RMS over the draws / CRB, median",
                float(np.median(a[:, 0])),
                "x",
            ),
            figure(
                "draws_cells_crb_12",
                "... cells with RMS over the draws <= 1.2 x CRB",
                f"{int(np.sum(a[:, 0] <= 1.2))} of {len(a)}",
            ),
            figure(
                "draws_rms_over_pcrb_median",
                "... RMS over the draws / the bound under the filter's model, median",
                float(np.median(a[:, 1])),
                "x",
            ),
            figure(
                "draws_cells_pcrb_12",
                "... cells with RMS over the draws <= 1.2 x that bound",
                f"{int(np.sum(a[:, 1] <= 1.2))} of {len(a)}",
            ),
            figure(
                "draws_rms_over_obound_median",
                "... RMS over the draws / the bound with the own orbit estimated, median",
                float(np.median(a[:, 2])),
                "x",
            ),
            figure(
                "draws_cells_obound_12",
                "... cells with RMS over the draws <= 1.2 x that bound",
                f"{int(np.sum(a[:, 2] <= 1.2))} of {len(a)}",
            ),
            figure("draws_worst_obound", "... worst cell against that bound", float(np.max(a[:, 2])), "x"),
            figure(
                "draws_ok_wrong",
                "... draws (of every cell) with an epoch ok while its NEES is past the bound",
                f"{over_draws['wrong_cells']} of {over_draws['draw_cells']} ({over_draws['wrong_epochs']} epochs)",
            ),
        ]
    if twin:
        figs += _twin_figures(twin, "", "cells")
    if over_draws and over_draws.get("twin"):
        figs += _twin_figures(over_draws["twin"], "draws_", "every draw of the downlinked prior")
    cells = {(r["geometry"], r["seed"], r["prior"]): r for r in rows}
    keys = sorted({(r["group"], r["geometry"], r["seed"]) for r in rows}, key=lambda k: (list(GROUPS).index(k[0]), k))
    table = {
        "header": ["geometry", "seed", "separation km"]
        + [f"{p}: NEES in / ok / ok-wrong / RMS (CRB; with Q; with own) m / mean NEES" for p in args.priors],
        "rows": [],
    }
    for _group, geo, seed in keys:
        seps = [c.get("sep_km") for p in args.priors if (c := cells.get((geo, seed, p))) and c.get("sep_km")]
        line = [geo, str(seed), f"{seps[0]:.1f}" if seps else "-"]
        for p in args.priors:
            c = cells.get((geo, seed, p))
            if c is None or c.get("missing") or not c["n"]:
                line.append("-")
            else:
                line.append(
                    f"{100.0 * c['nees_in']:.1f} % / {100.0 * c['ok']:.0f} % / {c['ok_wrong']} / "
                    f"{c['rms_m']:.3g} ({c['crb_m']:.2g}; {c['pcrb_m']:.2g}; {c['obound_m']:.2g}) / "
                    f"{c['nees_mean']:.2g}"
                )
        table["rows"].append(line)
    record(
        "range_only_geometry",
        f"Range-only geometry sweep: {len(rows)} cells, {args.hours:g} h",
        figs,
        notes=(
            "Partners along-track 0.5-60 km (coplanar and with 1 km of cross-track), radial / eccentric "
            "(a de 0.7-3.4 km), cross-track by inclination and RAAN (1-3 km), drifting apart (semi-major "
            "axes 0.1-1 km apart); priors none, TLE "
            "(ground uplink --tle defaults), TLE with identities confirmed (wrong-side probability 0), "
            "downlinked.  'ok' is the status file's word: not acquiring, not ambiguous, 3D sigma within "
            "the validity bound.  CRB: the Cramer-Rao bound of the same ranges with the dynamics exact; "
            "with Q: under the range-only filter's model of what it does not know (its process noise, the "
            "partner's drag scale, the range lateness and tag resolution); with own: that bound with the own "
            "orbit estimated from its GPS fixes, as the flight does.  Mean NEES: 3 if the published "
            "sigma were exact.  The table has one row per cell."
        ),
        table=table,
    )


if __name__ == "__main__":
    main()
