"""Range-only relative navigation (no partner fix reaches the Pi) against its information bound.

Seeded simulator scenarios: three spacecraft (partners 1-10 km away, random along-track,
radial and cross-track offsets), ranges every ~25 s with sigma 0.5 m and a bias of a few
metres, whole-second time tags, partner priors of 1 km / 1 m/s per axis uplinked in the
spacecraft's pygnc_config.toml.  The flight FormationProcessor runs on each; its relative
position error is compared with the **posterior Cramer-Rao bound** on the same data: the
information of the prior plus every range up to each time, with the range Jacobians
evaluated on the truth and the partner's transition matrix from the flight dynamics model
(own positions exact, no process noise: a lower bound for any estimator).

Ranges cannot tell on which side of the own orbit plane the partner flies (the mirror
image of the relative path keeps every range), and a window's ranges can fit other
orbits about as well; the processor keeps every such orbit as a filter until the ranges
decide and publishes their mixture.  So two errors are printed per seed and partner
after the first ``--settle-h`` hours: the **published** estimate's (3D RMS, NEES: what an
operator gets, honest about the ambiguity) and the **side-resolved** one (of the kept
orbits, the one nearest the truth: what the ranges determine), the latter against the
bound (3D and line of sight); how many alternatives were still kept at the end
(``n_alt``: 1 is the other side); and whether it diverged (final side-resolved 3D error >
100 m).  Then the error vs time (median).

    python bench/bench_range_only.py [--seeds 20] [--hours 6] [--prior-pos-m 100 --prior-vel-m-s 0.1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "flight"), str(REPO), str(REPO / "tests")]

from formation_support import record_sides, relative_errors, side_resolved_errors  # noqa: E402
from pygnc.config import Paths, config_for_home  # noqa: E402
from pygnc.estimation.formation_filter import FormationFilter  # noqa: E402
from pygnc.estimation.range_only_iod import partner_trajectory  # noqa: E402
from pygnc.processors.formation import FormationProcessor, filter_config_from  # noqa: E402
from pygnc.tasks.ingest import build_message_stream  # noqa: E402

from ground.sim import scenario as scn  # noqa: E402
from ground.simulate import _extra_spacecraft, simulate, write_scenario  # noqa: E402

DIVERGED_M = 100.0


def make_scenario(seed: int, out: Path, hours: float, prior_sigma_pos_m=1000.0, prior_sigma_vel_m_s=1.0):
    rng = np.random.default_rng(1000 + seed)
    s = scn.ScenarioSettings(seed=seed, duration_s=hours * 3600.0)
    s.spacecraft = s.spacecraft + [_extra_spacecraft(2)]
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


def run(out: Path):
    config = config_for_home(out)
    msgs = build_message_stream(Paths(out), config).messages
    proc = FormationProcessor(config)
    proc.sides = record_sides(proc)
    res = []
    t0 = time.perf_counter()
    for t, b in msgs:
        if t in proc.consumes:
            res += proc.handle(t, b)
    return res, time.perf_counter() - t0, proc, config


def bound(truth, k: int, config, t_out):
    """(sigma 3D, sigma LOS) of the posterior CRB at times *t_out* for partner *k*."""
    fc = filter_config_from(config)
    f = FormationFilter(fc)
    model = f.peer_model
    obs = (truth["range_observer"] == 0) & (truth["range_peer"] == k) & truth["range_valid"]
    t_r = truth["range_t_gps_s"][obs]
    order = np.argsort(t_r)
    t_r = t_r[order]
    tt = truth["t_gps_s"]
    i0 = int(np.searchsorted(tt, t_r[0]))
    t0 = tt[i0]
    x0 = np.concatenate((truth["r_gcrs_m"][k][i0], truth["v_gcrs_m_s"][k][i0]))
    pos, jac = partner_trajectory(x0, t0, t_r, model)
    own = np.stack([np.interp(t_r, tt, truth["r_gcrs_m"][0][:, a]) for a in range(3)], 1)
    d = pos - own
    u = d / np.linalg.norm(d, axis=1)[:, None]
    h = np.concatenate((np.einsum("ni,nij->nj", u, jac), np.ones((t_r.size, 1))), axis=1)
    prior = np.zeros((7, 7))
    prior[:3, :3] = np.eye(3) * config.formation_prior_sigma_pos_m ** 2
    pri = config.formation_peer_priors.get(int(truth["radio_id"][k]))
    sp, sv = (pri["sigma_pos_m"], pri["sigma_vel_m_s"]) if pri else (1000.0, 1.0)
    prior[:3, :3] = np.eye(3) * sp ** 2
    prior[3:6, 3:6] = np.eye(3) * sv ** 2
    prior[6, 6] = fc.range_bias_sigma_m ** 2
    info = np.linalg.inv(prior)
    sig_r2 = fc.range_sigma_m ** 2
    cum = np.cumsum(np.einsum("ni,nj->nij", h, h), axis=0) / sig_r2
    out3, outl = [], []
    pos_o, jac_o = partner_trajectory(x0, t0, np.maximum(np.asarray(t_out), t0), model)
    own_o = np.stack([np.interp(t_out, tt, truth["r_gcrs_m"][0][:, a]) for a in range(3)], 1)
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--settle-h", type=float, default=2.0)
    ap.add_argument("--prior-pos-m", type=float, default=1000.0, help="uplinked prior sigma per axis, m")
    ap.add_argument("--prior-vel-m-s", type=float, default=1.0, help="uplinked prior sigma per axis, m/s")
    args = ap.parse_args()
    settle = args.settle_h * 3600.0
    rows, curves = [], []
    print(f"== range-only: {args.seeds} seeds x 2 partners, {args.hours:.0f} h, prior {args.prior_pos_m:.0f} m / "
          f"{args.prior_vel_m_s:g} m/s, RMS after {args.settle_h:.0f} h vs the posterior CRB ==")
    print("  seed partner  sep_km  pub3d_m  nees  | side3d_m  crb3d_m  ratio  los_m  crblos_m  ratio  "
          "n_alt  diverged  ms/range")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.seeds + 1):
            out = Path(tmp) / f"s{seed}"
            truth = make_scenario(seed, out, args.hours, args.prior_pos_m, args.prior_vel_m_s)
            res, cpu_s, proc, config = run(out)
            n_r = proc.counters()["ranges_used"] + proc.counters()["ranges_fitted"]
            for k in (1, 2):
                pid = int(truth["radio_id"][k])
                est = [b for t, b in res if t == "formation_estimate" and b["peer_id"] == pid and not b["propagated"]]
                if not est:
                    print(f"  {seed:4d}  0x{pid:02X}   no estimate")
                    continue
                e = relative_errors(truth, est, settle)
                tg = np.array([b["t_gps_s"] for b in est])
                keep = tg - truth["t_gps_s"][0] >= settle
                b3, bl = bound(truth, k, config, tg[keep])
                crb3 = float(np.sqrt(np.mean(b3 ** 2)))
                crbl = float(np.sqrt(np.mean(bl ** 2)))
                side_err, side_los, both_open = side_resolved_errors(truth, k, proc.sides, pid, settle)
                side3 = float(np.sqrt(np.mean(side_err ** 2)))
                sidel = float(np.sqrt(np.mean(side_los ** 2)))
                div = float(side_err[-1]) > DIVERGED_M
                sep = float(np.mean(np.linalg.norm(e["dr_true"], axis=1))) / 1e3
                rows.append((seed, pid, sep, side3, crb3, sidel, crbl, float(np.mean(e["nees"])), div, e["rms_r"],
                             both_open))
                print(f"  {seed:4d}  0x{pid:02X}   {sep:6.1f}  {e['rms_r']:7.1f}  {np.mean(e['nees']):5.1f} | "
                      f"{side3:8.2f}  {crb3:7.2f}  {side3 / crb3:5.2f}  {sidel:5.2f}  {crbl:8.2f}  {sidel / crbl:5.2f}  "
                      f"{both_open:6d}  {'YES' if div else 'no':8s}  "
                      f"{1e3 * cpu_s / max(n_r, 1):.2f}", flush=True)
                err = np.linalg.norm(relative_errors(truth, est, 0)["er"], axis=1)
                t_rel = tg - truth["t_gps_s"][0]
                curves.append([float(np.interp(h * 3600.0, t_rel, err)) for h in (1, 2, 3, 4, 6)])
    ok = [r for r in rows if not r[8]]
    print(f"  diverged (side-resolved final error > {DIVERGED_M:.0f} m): {sum(r[8] for r in rows)} of {len(rows)}; "
          f"alternatives still kept at the end: {sum(r[10] > 0 for r in rows)} of {len(rows)} "
          f"(most {max(r[10] for r in rows)})")
    print(f"  published: 3D RMS median {np.median([r[9] for r in rows]):.1f} m, worst {max(r[9] for r in rows):.1f} m; "
          f"NEES mean over runs: median {np.median([r[7] for r in rows]):.1f}, worst {max(r[7] for r in rows):.1f}")
    if ok:
        r3 = np.array([r[3] / r[4] for r in ok])
        rl = np.array([r[5] / r[6] for r in ok])
        worst = max(ok, key=lambda r: r[3] / r[4])
        print(f"  side-resolved, converged runs: 3D/CRB median {np.median(r3):.2f}, worst {r3.max():.2f} "
              f"(seed {worst[0]} 0x{worst[1]:02X}); LOS/CRB median {np.median(rl):.2f}, worst {rl.max():.2f}")
    if curves:
        med = np.median(np.array(curves), axis=0)
        print("  3D error vs time (median over runs): " + ", ".join(
            f"{h} h {m:.1f} m" for h, m in zip((1, 2, 3, 4, 6), med)))


if __name__ == "__main__":
    main()
