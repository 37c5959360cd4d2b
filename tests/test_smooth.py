"""The formation smoother (``python -m ground smooth``, issue 47): its core against a simulated
formation with known truth (consistency of its sigmas, the information bound of the same
data, outliers left out), and the command as a user types it - refusals in one line with
exit 2, a real two-spacecraft run from host files and from downlinks alone."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from flight_harness import REPO
from smooth_support import homes, make_scenario, write_downlink

from ground.__main__ import main
from ground.outputs import tables as tb
from ground.outputs.tables import COLUMNS
from ground.smooth.core import EDITED, FIX, RANGE, REJECTED, USED, SmoothConfig, smooth
from ground.smooth.evaluate import bound_stats, truth_for, truth_stats
from ground.smooth.inputs import assemble, read_spacecraft
from ground.smooth.products import QUALITY

#: Each spacecraft's range bias in make_scenario: 1.5 - 1.2 k.
BIAS = (1.5, 0.3)


@pytest.fixture(scope="module")
def formation(tmp_path_factory):
    """A 60-min two-spacecraft scenario with 1 % of fixes 1 km off and 1 % of ranges invalid,
    and the smoother's result on its host files: (dir, truth, input, result)."""
    d = tmp_path_factory.mktemp("smooth") / "scn"
    truth = make_scenario(d, minutes=60.0, seed=11, gps_outlier_fraction=0.01, range_invalid_fraction=0.01)
    ids = [int(r) for r in truth["radio_id"]]
    datas = [read_spacecraft(h, sid) for h, sid in zip(homes(d, truth), ids)]
    inp, notes = assemble(datas)
    assert notes == []
    return d, truth, inp, smooth(inp, SmoothConfig())


def test_the_smoothed_formation_is_consistent_with_the_truth(formation):
    """The relative position's line-of-sight error within 3 sigma at every epoch, each orbit's
    NEES near 3; the residuals as noisy as the measurements."""
    _, truth, _, res = formation
    st = truth_stats(res, truth_for(truth, [int(r) for r in truth["radio_id"]]), settle_s=600.0)
    pair = st["pairs"][(0, 1)]
    assert pair["los_inside_3sigma"] >= 0.95, pair
    assert pair["nees_mean"] < 12.0 and pair["rms3d_m"] < 3.0, pair
    for o in st["orbit"].values():
        assert o["nees_mean"] < 6.0 and o["inside_3sigma"] >= 0.8 and o["rms3d_m"] < 3.0, o
    used_r = (res.meas_kind == RANGE) & (res.meas_state == USED)
    norm = res.meas_residual[used_r] / res.meas_sigma[used_r]
    assert 0.8 < float(np.sqrt(np.mean(norm**2))) < 1.25
    used_f = (res.meas_kind == FIX) & (res.meas_state == USED)
    assert 5.0 < float(np.mean(res.meas_residual[used_f])) < 7.0  # chi-square, 6 dof


def test_the_smoother_is_at_the_information_bound_of_its_data(formation):
    """Its line-of-sight sigma is the bound's (every orbit's dynamics exact) within 50 %, and
    its error that of the exact-dynamics estimator on the same measurements within half a
    sigma: what is left is the data's, not the smoother's."""
    _, truth, inp, res = formation
    ids = [int(r) for r in truth["radio_id"]]
    tr = truth_for(truth, ids)
    st = truth_stats(res, tr, settle_s=600.0)["pairs"][(0, 1)]
    bd = bound_stats(res, tr, inp, SmoothConfig(), BIAS, settle_s=600.0)[(0, 1)]
    assert 0.95 * bd["sigma_los_m"] <= st["sigma_los_m"] <= 1.5 * bd["sigma_los_m"], (st, bd)
    assert abs(st["rms_los_m"] - bd["rms_los_m"]) <= 0.5 * st["sigma_los_m"], (st, bd)


def test_a_consistent_estimator_leaves_a_pair_short_as_often_as_chi_square_says():
    """With the error the same at every epoch (identity transitions), a pair is inside 3 sigma
    at every epoch or at none: short with probability P(chi^2_3 > 9) = 2.93 %.  With two
    epochs whose errors are independent (one from the position, one from the velocity
    parameters), short when either is outside: 1 - (1 - 2.93 %)^2."""
    from scipy import stats

    from ground.smooth.bound import consistent_coverage

    k = 50
    same = {
        "param_cov": np.eye(12),
        "phi_at": np.broadcast_to(np.eye(6), (2, k, 6, 6)),
        "cov": np.broadcast_to(2.0 * np.eye(3), (k, 1, 3, 3)),
    }
    out = stats.chi2.sf(9.0, 3)
    p = consistent_coverage(same, [(0, 1)], np.arange(k), draws=40_000, seed=1)[0]
    assert abs(p - out) < 0.004, p
    phi = np.zeros((2, 2, 6, 6))
    phi[1, 0, 0:3, 0:3] = np.eye(3)  # spacecraft 1 at epoch 0: its position parameters
    phi[1, 1, 0:3, 3:6] = np.eye(3)  # at epoch 1: its velocity parameters
    two = {"param_cov": np.eye(12), "phi_at": phi, "cov": np.broadcast_to(np.eye(3), (2, 1, 3, 3))}
    p = consistent_coverage(two, [(0, 1)], np.arange(2), draws=40_000, seed=2)[0]
    assert abs(p - (1.0 - (1.0 - out) ** 2)) < 0.005, p


def test_the_bound_says_how_often_a_consistent_estimator_leaves_each_pair_short(formation):
    _, truth, inp, res = formation
    ids = [int(r) for r in truth["radio_id"]]
    bd = bound_stats(res, truth_for(truth, ids), inp, SmoothConfig(), BIAS, settle_s=600.0, coverage_draws=200)
    assert 0.0 < bd[(0, 1)]["p_short"] < 0.5, bd[(0, 1)]  # a few per cent: never 0 in 200 draws, never most


def test_the_own_acceleration_is_smaller_along_the_orbit_normal():
    """Its process noise: the in-plane sigma in the plane, the cross one along the normal, no
    coupling; without a cross sigma the isotropic noise of every axis."""
    from ground.smooth.core import Layout, _q_matrix
    from pygnc.estimation.orbit_dynamics import dmc_process_noise

    lay = Layout(2, [(0, 1), (1, 0)])
    normal = np.array([0.0, 0.6, 0.8])
    in_plane = np.array([1.0, 0.0, 0.0])
    h = 30.0
    cfg = SmoothConfig()
    qd_in = dmc_process_noise(h, cfg.diff_dmc_tau_s, cfg.diff_dmc_sigma_m_s2)
    qd_n = dmc_process_noise(h, cfg.diff_dmc_tau_s, cfg.diff_dmc_cross_sigma_m_s2)
    common = _q_matrix(
        lay, dataclasses.replace(cfg, diff_dmc_sigma_m_s2=0.0, diff_dmc_cross_sigma_m_s2=0.0), h, [normal] * 2
    )
    own = _q_matrix(lay, cfg, h, [normal] * 2) - common
    b = lay.sc(1)
    for a in range(3):  # r, v, w blocks
        for c in range(3):
            blk = own[b + 3 * a : b + 3 * a + 3, b + 3 * c : b + 3 * c + 3]
            assert normal @ blk @ normal == pytest.approx(qd_n[a, c], rel=1e-9)
            assert in_plane @ blk @ in_plane == pytest.approx(qd_in[a, c], rel=1e-9)
            assert abs(normal @ blk @ in_plane) <= 1e-12 * abs(qd_in[a, c])
    iso = _q_matrix(lay, dataclasses.replace(cfg, diff_dmc_cross_sigma_m_s2=None), h, [normal] * 2) - common
    want = np.kron(qd_in, np.eye(3))
    assert np.allclose(iso[b : b + 9, b : b + 9], want, rtol=1e-12, atol=0.0)


def test_the_range_tag_lateness_prior_is_where_the_clock_chain_puts_it(formation):
    """A range's whole-second stamp mapped to GPS time by a clock map fitted on the fixes'
    whole-second stamps is late by the fixes' fraction of a second minus the range's: centred
    on zero.  Over many clocks (the simulator's offsets and drifts, its fixes on whole GPS
    seconds and its ranges a random delay after them) the mean lateness is the smoother's
    prior mean within a tenth of a second and every one is within 2 of its sigmas; in the
    scenario, as ingest maps its tags, the same (a prior of +0.5 s made every long arc's
    line-of-sight error too large for its sigma)."""
    from ground.simulate import scenario as scn
    from ground.simulate import sensors as sen
    from ground.smooth.evaluate import match_truth_ranges
    from pygnc.timebase import fit_clock_map

    cfg = SmoothConfig()
    s = scn.ScenarioSettings()
    rng = np.random.default_rng(47)
    t0 = 1.4e9
    t_fix = t0 + 25.0 * np.arange(3456)  # a day of fixes, whole GPS seconds
    late = []
    for _ in range(200):
        off = rng.uniform(-s.clock.offset_max_s, s.clock.offset_max_s)
        drift = rng.uniform(-s.clock.drift_max_ppm, s.clock.drift_max_ppm)
        cm = fit_clock_map(sen.stamp_s(sen.spacecraft_clock_s(t_fix, t0, off, drift)), t_fix)
        t_r = t_fix + rng.uniform(s.ranging.delay_min_s, s.ranging.delay_max_s, t_fix.size)
        tag = cm.gps_from_sc(np.floor(sen.spacecraft_clock_s(t_r, t0, off, drift)))
        late.append(float(np.mean(tag - t_r)))
    late = np.array(late)
    assert abs(float(np.mean(late)) - cfg.time_offset_prior_s) < 0.1, np.mean(late)
    assert np.all(np.abs(late - cfg.time_offset_prior_s) < 2.0 * cfg.time_offset_sigma_s), late
    _, truth, inp, _ = formation
    tr = truth_for(truth, [int(r) for r in truth["radio_id"]])
    rg = match_truth_ranges(tr, inp, tr["index"], BIAS)
    for o in (0, 1):
        sel = rg["observer"] == o
        mean = float(np.mean(rg["t_gps_s"][sel] - rg["t_true_gps_s"][sel]))
        assert abs(mean - cfg.time_offset_prior_s) < 2.0 * cfg.time_offset_sigma_s, (o, mean)


def test_outliers_are_left_out(formation):
    """Every fix the simulator put 1 km off is left out, and so is a range 30 m off: the result
    is that of the same data without it."""
    _, truth, inp, res = formation
    fault_t = truth["gps_t_gps_s"]
    n_out = 0
    for k in range(2):
        bad_t = fault_t[truth["gps_fault"][k] == 3]
        sel = (res.meas_kind == FIX) & (res.meas_sc == k) & np.isin(np.round(res.meas_t_gps_s), np.round(bad_t))
        assert np.all(np.isin(res.meas_state[sel], (REJECTED, EDITED))), res.meas_state[sel]
        n_out += int(sel.sum())
    assert n_out > 0
    rg = {k: np.asarray(v) for k, v in inp.ranges.items()}
    q = int(np.argmin(np.abs(rg["t_gps_s"] - np.median(rg["t_gps_s"]))))
    with_outlier = dict(rg, range_m=rg["range_m"].copy())
    with_outlier["range_m"][q] += 30.0
    without = {k: np.delete(v, q) for k, v in rg.items()}
    bad = smooth(type(inp)(inp.ids, inp.fixes, with_outlier), SmoothConfig())
    ref = smooth(type(inp)(inp.ids, inp.fixes, without), SmoothConfig())
    n_fix = sum(len(f["t_gps_s"]) for f in inp.fixes)
    assert bad.meas_state[n_fix + q] in (REJECTED, EDITED)
    assert float(np.max(np.abs(bad.relative(0, 1)[0] - ref.relative(0, 1)[0]))) < 1e-3


def test_a_third_pass_changes_nothing(formation):
    """The second pass (linearised about the first's smoothed arc, outliers edited) has
    converged: a third moves no relative position by a millimetre, and keeps the edits (an
    edited measurement's residual is judged again each pass, not forgotten)."""
    _, _, inp, res = formation
    three = smooth(inp, SmoothConfig(passes=3))
    assert three.pass_change < 1e-3
    assert np.array_equal(three.meas_state, res.meas_state)
    edited = res.meas_state == EDITED
    assert edited.any() and np.all(np.isfinite(res.meas_residual[edited]))


# --------------------------------------------------------------------------- the command
def ground(*args):
    """``python -m ground ARGS`` in this process: (exit status, stdout, stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in args])
        except SystemExit as exc:
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def test_a_bad_spacecraft_directory_is_refused_in_one_line_as_typed(tmp_path):
    """As a user types it: a directory that holds neither host files nor batch files."""
    (tmp_path / "notes.txt").write_text("x")
    p = subprocess.run(
        [sys.executable, "-m", "ground", "smooth", "--spacecraft", f"0x4A={tmp_path}", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("smooth: --spacecraft 0x4A=") and "notes.txt" in lines[0]
    assert "Traceback" not in p.stderr and not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args,says",
    [
        (["--spacecraft", "0x14A={scn}"], "not a radio id"),
        (["--spacecraft", "{scn}"], "give ID=DIR"),
        (["--spacecraft", "0x4A={scn}/nowhere"], "no such directory"),
        (["--spacecraft", "0x4A={scn}", "--spacecraft", "74={scn}/sc1"], "given twice"),
        (["--spacecraft", "0x4A={scn}", "--onboard", "0x4C={scn}"], "not one of the --spacecraft"),
        (["--spacecraft", "0x4A={scn}", "--truth", "{scn}/nothing.npz"], "no such file"),
        (["--spacecraft", "0x4A={scn}", "--step-s", "600"], "must be in (0, 60]"),
        (["--spacecraft", "0x4A={scn}", "--range-bias-walk", "-1"], "must be in [0, 1]"),
        (["--spacecraft", "0x4A={scn}/sc1/range"], "neither host files"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(formation, tmp_path, args, says):
    scn = formation[0]
    rc, out, err = ground("smooth", *[a.format(scn=scn) for a in args], "--out", tmp_path / "o")
    assert rc == 2 and says in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


def test_out_an_existing_file_is_refused(formation, tmp_path):
    f = tmp_path / "out"
    f.write_text("x")
    rc, _, err = ground("smooth", "--spacecraft", f"0x4A={formation[0]}", "--out", f)
    assert rc == 2 and "exists and is not a directory" in err


def _read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_a_two_spacecraft_run_as_typed(formation, tmp_path):
    """``python -m ground smooth`` on both spacecraft's host files with the truth: every
    product, both directions of the pair (each other's negative), the quality column, a
    bias per direction near the truth's, the report's sections."""
    scn = formation[0]
    out = tmp_path / "out"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "ground",
            "smooth",
            "--spacecraft",
            f"0x4A={scn}",
            "--spacecraft",
            f"0x4B={scn / 'sc1'}",
            "--out",
            str(out),
            "--truth",
            str(scn / "truth.npz"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert "relative 3D RMS" in p.stdout
    header, rows = _read(out / "formation.csv")
    assert header == [c for c, _ in COLUMNS["smoothed_formation"]]
    col = {c: i for i, c in enumerate(header)}
    ab = [r for r in rows if r[col["own_id"]] == "0x4A" and r[col["peer_id"]] == "0x4B"]
    ba = [r for r in rows if r[col["own_id"]] == "0x4B" and r[col["peer_id"]] == "0x4A"]
    assert len(ab) == len(ba) > 100 and len(rows) == 2 * len(ab)
    for a, b in zip(ab, ba):
        assert a[col["t_gps_s"]] == b[col["t_gps_s"]]
        for c in ("dx_ecef_m", "dy_ecef_m", "dz_ecef_m"):
            assert abs(float(a[col[c]]) + float(b[col[c]])) < 1e-6
    assert {r[col["quality"]] for r in rows} <= set(QUALITY)
    assert sum(r[col["quality"]] == "ok" for r in rows) > 0.9 * len(rows)
    # The bias of each direction is its observer radio's (1.5 m and 0.3 m), within 3 sigma.
    for own, bias in (("0x4A", BIAS[0]), ("0x4B", BIAS[1])):
        last = [r for r in rows if r[col["own_id"]] == own][-1]
        b, s = float(last[col["range_bias_m"]]), float(last[col["sigma_range_bias_m"]])
        assert abs(b - bias) < 3 * s + 0.05, (own, b, s)
    for sid in ("0x4A", "0x4B"):
        h, orows = _read(out / f"orbit_{sid}.csv")
        assert h == [c for c, _ in COLUMNS["smoothed_orbit"]] and len(orows) == len(ab)
    h, mrows = _read(out / "measurements.csv")
    assert h == [c for c, _ in COLUMNS["smoothed_measurements"]]
    assert {r[h.index("state")] for r in mrows} <= {"used", "rejected", "held", "edited", "unused"}
    report = (out / "report.md").read_text()
    assert f"`python -m ground smooth --spacecraft 0x4A={scn} --spacecraft 0x4B={scn / 'sc1'} --out {out}" in report
    for section in ("## Inputs", "### Range links", "### Pairs", "## On-board estimates", "## Against the truth"):
        assert section in report
    summary = json.loads((out / "summary.json").read_text())
    assert summary["truth"]["pairs"]["0x4A-0x4B"]["los_inside_3sigma"] >= 0.95


def test_downlinks_alone(formation, tmp_path):
    """From each spacecraft's downlinked batch files only (a fix and a range per partner
    every 5 min): the smoother uses them, compares the downlinked orbit estimates, its sigmas
    wider than from the host files and still covering the truth; a downlink given under
    another spacecraft's id is refused."""
    scn, truth, _, res_host = formation
    for name, sid in (("sc0", 0x4A), ("sc1", 0x4B)):
        write_downlink(scn if name == "sc0" else scn / name, sid, tmp_path / "downlink" / name)
    out = tmp_path / "out"
    rc, stdout, err = ground(
        "smooth",
        "--spacecraft",
        f"0x4A={tmp_path / 'downlink' / 'sc0'}",
        "--spacecraft",
        f"0x4B={tmp_path / 'downlink' / 'sc1'}",
        "--out",
        out,
        "--truth",
        scn / "truth.npz",
    )
    assert rc == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["spacecraft"]["0x4A"]["source"] == "downlink"
    assert set(summary["compare"]["orbit"]) == {"0x4A", "0x4B"}
    pair = summary["truth"]["pairs"]["0x4A-0x4B"]
    assert pair["los_inside_3sigma"] >= 0.95
    host_sigma = float(np.sqrt(np.mean(res_host.p_rel[:, 0, 0, 0])))
    assert pair["sigma3d_m"] > host_sigma
    assert "downlink" in (out / "report.md").read_text()
    rc, _, err = ground("smooth", "--spacecraft", f"0x4A={tmp_path / 'downlink' / 'sc1'}", "--out", tmp_path / "o2")
    assert rc == 2 and "written by spacecraft 0x4B, not 0x4A" in err


def test_measurements_at_corrupt_times_are_left_out_and_the_grid_is_bounded(formation, monkeypatch):
    """One CRC-valid fix stamped ten years on stretched the grid over ten years (memory
    exhausted): fixes more than 2 days from the bulk of all fixes, and ranges that far
    outside their span, are left out and said; a span whose grid would not fit is refused
    with the longest that would."""
    import ground.smooth.core as core

    scn, truth, inp0, _ = formation
    ids = [int(r) for r in truth["radio_id"]]
    datas = [read_spacecraft(h, sid) for h, sid in zip(homes(scn, truth), ids)]
    n_fix, n_rng = datas[0].fixes["t_gps_s"].size, datas[1].ranges["t_gps_s"].size
    datas[0].fixes["t_gps_s"][5] += 10 * 365.25 * 86400.0
    datas[1].ranges["t_gps_s"][3] -= 5 * 86400.0
    inp, notes = assemble(datas)
    assert len(notes) == 2 and "1 fixes more than 2 days" in notes[0] and "1 ranges more than 2 days" in notes[1]
    assert inp.fixes[0]["t_gps_s"].size == n_fix - 1 and np.sum(inp.ranges["observer"] == 1) == n_rng - 1
    t_all = np.concatenate([f["t_gps_s"] for f in inp.fixes] + [inp.ranges["t_gps_s"]])
    assert t_all.max() - t_all.min() < 2 * 3600.0
    monkeypatch.setattr(core, "MAX_GRID_BYTES", 2**20)
    with pytest.raises(ValueError, match="smooth at most"):
        smooth(inp0, SmoothConfig())
    assert list(tb.iso_utc([1e308, np.nan, 0.0])) == ["", "", "1970-01-01T00:00:00.000Z"]


def _spanning(inp, span_s: float):
    """*inp* with spacecraft 0's last fix repeated *span_s* after its first: a grid that long."""
    f = {k: np.concatenate([v, v[-1:]]) for k, v in inp.fixes[0].items()}
    f["t_gps_s"][-1] = f["t_gps_s"][0] + span_s
    return dataclasses.replace(inp, fixes=[f, *inp.fixes[1:]])


def test_the_grid_bound_bounds_what_a_run_holds(formation, monkeypatch):
    """MAX_GRID_BYTES bounds what a run holds for its grid: over the longest span a 4-MiB
    bound accepts, what each step adds to the traced peak, times the steps, is within it.
    It counted only each step's covariance and transition, and two passes were held at
    once: about 3x that."""
    import re
    import tracemalloc

    import ground.smooth.core as core

    _, _, inp, _ = formation
    bound = 4 * 2**20
    monkeypatch.setattr(core, "MAX_GRID_BYTES", bound)
    with pytest.raises(ValueError, match="smooth at most") as refused:
        smooth(_spanning(inp, 30 * 86400.0), SmoothConfig())
    most_days = float(re.search(r"smooth at most ([0-9.e+-]+) days", str(refused.value)).group(1))

    def peak(inp_) -> tuple[int, int]:
        tracemalloc.start()
        try:
            res = smooth(inp_, SmoothConfig())
            return res.t_gps_s.size, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    k_short, short = peak(inp)
    k_long, long = peak(_spanning(inp, 0.98 * most_days * 86400.0))
    per_step = (long - short) / (k_long - k_short)
    assert k_long > 2 * k_short and per_step * k_long <= bound, (per_step, k_long)


# --------------------------------------------------------------------------- corrupt times
@pytest.fixture(scope="module")
def downlinks(formation, tmp_path_factory):
    """Each spacecraft's downlinked batch files of the formation scenario: {name: dir}."""
    scn = formation[0]
    out = tmp_path_factory.mktemp("downlinks")
    for name, sid in (("sc0", 0x4A), ("sc1", 0x4B)):
        write_downlink(scn if name == "sc0" else scn / name, sid, out / name)
    return {"sc0": out / "sc0", "sc1": out / "sc1"}


def _restamp_fixes(src, dst, shift_s: float, n: int | None = None) -> list[float]:
    """*src*'s batch files copied to *dst* with the GPS time of its first *n* own fixes (None:
    all) moved by *shift_s*, framed again with valid CRCs (as a corrupt downlink can be): the
    times they now carry."""
    import shutil

    from pygnc.formats import batch as B

    shutil.copytree(src, dst)
    moved: list[float] = []
    for path in sorted(dst.glob("batch_*.bin")):
        data = bytearray(path.read_bytes())
        for rec in B.decode_batch(bytes(data)).records:
            kind = rec.kind
            if kind is None or kind.name != "gps_fix" or (n is not None and len(moved) >= n):
                continue
            v = rec.values()
            if int(v["peer_id"]) != 0:
                continue
            v["t_gps_s"] += shift_s
            data[rec.offset : rec.offset + len(rec.raw)] = B.encode_record(kind, rec.t_sc_s, v)
            moved.append(v["t_gps_s"])
        path.write_bytes(bytes(data))
    return moved


def _smooth_in_2_gib(*args) -> subprocess.CompletedProcess:
    """``python -m ground smooth ARGS`` in a child whose address space is 2 GiB (a grid over
    years fails there instead of taking the machine's memory)."""
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))\n"
        "from ground.__main__ import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    cmd = [sys.executable, "-c", code, "smooth", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)


def test_a_downlinked_fix_stamped_years_off_is_left_out_and_said(downlinks, tmp_path):
    """The review's case as typed: one CRC-valid downlinked fix stamped ten years on made the
    grid span ten years and exhausted memory.  It is left out and said - how many, when - on
    the terminal and in the report; the grid spans the rest."""
    from pygnc.timebase import utc_unix_from_gps

    (t_bad,) = _restamp_fixes(downlinks["sc0"], tmp_path / "sc0", 10 * 365.25 * 86400.0, n=1)
    out = tmp_path / "out"
    p = _smooth_in_2_gib(
        "--spacecraft", f"0x4A={tmp_path / 'sc0'}", "--spacecraft", f"0x4B={downlinks['sc1']}", "--out", out
    )
    assert p.returncode == 0, p.stderr[-2000:]
    said = f"0x4A: 1 fixes more than 2 days from the bulk of the data (at {tb.iso_utc([utc_unix_from_gps(t_bad)])[0]})"
    assert said.startswith("0x4A: 1 fixes more than 2 days from the bulk of the data (at 2035-")
    assert said in p.stdout and said in (out / "report.md").read_text()
    _, rows = _read(out / "measurements.csv")
    t_meas = np.array([float(r[0]) for r in rows])
    t_grid = np.array([float(r[2]) for r in _read(out / "orbit_0x4A.csv")[1]])
    assert t_meas.max() - t_meas.min() < 2 * 3600.0 and t_grid[-1] - t_grid[0] < 2 * 3600.0


def test_a_spacecraft_whose_fixes_are_all_years_off_is_left_out(downlinks, tmp_path):
    """A spacecraft whose every downlinked fix is years from the other's (a GPS week gone
    wrong) took the whole run with it (exit 1, 'has no usable GPS fix'): it is left out and
    said, as one without a usable fix, with its ranges and those to it; the other is smoothed."""
    _restamp_fixes(downlinks["sc0"], tmp_path / "sc0", 5 * 365.25 * 86400.0)
    n_moved = read_spacecraft(tmp_path / "sc0", 0x4A).fixes["t_gps_s"].size
    assert 0 < n_moved <= read_spacecraft(downlinks["sc1"], 0x4B).fixes["t_gps_s"].size  # (0x4B's the bulk)
    out = tmp_path / "out"
    p = _smooth_in_2_gib(
        "--spacecraft", f"0x4A={tmp_path / 'sc0'}", "--spacecraft", f"0x4B={downlinks['sc1']}", "--out", out
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "0x4A" in p.stderr and "left out" in p.stderr and "Traceback" not in p.stderr
    report = (out / "report.md").read_text()
    assert f"0x4A: {n_moved} fixes more than 2 days from the bulk of the data (at 2030-" in report
    assert "0x4A: no fix left: left out" in report and "ranges to 0x4A, which is left out: not used" in report
    assert sorted(p.name for p in out.glob("orbit_*.csv")) == ["orbit_0x4B.csv"]
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["spacecraft"]) == ["0x4B"] and summary["spacecraft"]["0x4B"]["used"] > 0
