"""``python -m ground uplink`` and the TLE machinery behind it: TEME -> ECEF against astropy
and a published example, SGP4 against the sgp4 package's verification vectors, the TLE
covariance's linear map against SGP4 itself, the simulator's TLE fit, the commands of
docs/uplink.md end to end on a simulated formation (priors against the truth, covered by
their covariance), and every refusal."""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from flight_harness import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

from ground.__main__ import main as ground_main
from ground.simulate import published_tles as stle
from ground.simulate import scenario as scn
from ground.uplink import tle as tl
from ground.uplink import tle_covariance as tc
from pygnc import frames, timebase
from pygnc.config import load_config

DOC = REPO / "docs" / "uplink.md"
#: chi-square 99.9 % bound, 6 degrees of freedom.
CHI2_6_999 = 22.458
R_LEO_M = 7.0e6


# --------------------------------------------------------------------------- TEME -> ITRS
def _astropy_itrs(r, v, t):
    from astropy import units as u
    from astropy.coordinates import ITRS, TEME, CartesianDifferential, CartesianRepresentation
    from astropy.time import Time
    from astropy.utils import iers

    iers.conf.auto_download = False  # no network: the bundled IERS-B
    ob = Time(float(timebase.utc_unix_from_gps(t)), format="unix", scale="utc")
    rep = CartesianRepresentation(np.asarray(r) * u.m, differentials=CartesianDifferential(np.asarray(v) * u.m / u.s))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = TEME(rep, obstime=ob).transform_to(ITRS(obstime=ob))
        dut1 = float(ob.delta_ut1_utc)
        xp, yp = iers.earth_orientation_table.get().pm_xy(ob)
    return (
        it.cartesian.xyz.to_value(u.m),
        it.velocity.d_xyz.to_value(u.m / u.s),
        dut1,
        float(xp.to_value(u.arcsec)),
        float(yp.to_value(u.arcsec)),
    )


def _random_states(n, seed):
    rng = np.random.default_rng(seed)
    t = timebase.gps_from_utc_unix(rng.uniform(1.581e9, 1.739e9, n))  # 2020-02 .. 2025-02 (IERS-B)
    r = rng.normal(size=(n, 3))
    r *= R_LEO_M / np.linalg.norm(r, axis=1)[:, None]
    v = np.cross(r, rng.normal(size=(n, 3)))
    v *= 7500.0 / np.linalg.norm(v, axis=1)[:, None]
    return t, r, v


def test_teme_to_itrs_matches_astropy_with_its_earth_orientation():
    """Astropy's TEME -> ITRS (erfa's GMST82 and polar motion, velocity by finite
    differences) with its own DUT1 and pole passed in: < 5 mm and < 0.1 mm/s."""
    t, r, v = _random_states(12, seed=3)
    for i in range(t.size):
        r_a, v_a, dut1, xp, yp = _astropy_itrs(r[i], v[i], t[i])
        r_e, v_e = tl.teme_to_itrs(r[i], v[i], t[i], dut1, xp, yp)
        assert np.linalg.norm(r_e - r_a) < 5e-3
        assert np.linalg.norm(v_e - v_a) < 1e-4
        # The defaults (UT1 = UTC, no polar motion) are off by what the docstring says.
        r0, v0 = tl.teme_to_itrs(r[i], v[i], t[i])
        bound = (abs(dut1) * tl.OMEGA_EARTH_TEME_RAD_S + math.hypot(xp, yp) * math.pi / 648000.0) * R_LEO_M
        assert np.linalg.norm(r0 - r_a) <= bound + 5e-3
        assert np.linalg.norm(v0 - v_a) <= bound / R_LEO_M * 8000.0 + 1e-4


def test_teme_to_itrs_reproduces_the_published_example():
    """Vallado, Crawford, Hujsak & Kelso 2006 (AIAA 2006-6753), TEME -> ITRF example:
    2004-04-06 07:51:28.386009 UTC, dUT1 -0.4399619 s, xp -0.140682", yp 0.333309"."""
    t = float(timebase.gps_from_utc_unix(1081237888.386009))
    r = np.array([5094.18016210, 6127.64465050, 6380.34453270]) * 1e3
    v = np.array([-4.746131487, 0.785818041, 5.531931288]) * 1e3
    r_e, v_e = tl.teme_to_itrs(r, v, t, -0.4399619, -0.140682, 0.333309)
    assert np.allclose(r_e, np.array([-1033.4793830, 7901.2952754, 6380.3565958]) * 1e3, atol=0.01, rtol=0)
    assert np.allclose(v_e, np.array([-3.225636520, -2.872451450, 5.531924446]) * 1e3, atol=1e-4, rtol=0)
    r_b, v_b = tl.itrs_to_teme(r_e, v_e, t, -0.4399619, -0.140682, 0.333309)
    assert np.allclose(r_b, r, atol=1e-6, rtol=0) and np.allclose(v_b, v, atol=1e-9, rtol=0)


# --------------------------------------------------------------------------- SGP4 and TLE files
def _verification_sets():
    import sgp4

    d = Path(sgp4.__file__).parent
    lines = (d / "SGP4-VER.TLE").read_text().splitlines()
    sets = {}
    for i, ln in enumerate(lines):
        if ln.startswith("1 ") and i + 1 < len(lines):
            try:
                s = tl.parse_tle_text(ln[:69] + "\n" + lines[i + 1][:69] + "\n", "SGP4-VER.TLE")[0]
            except tl.TleError:  # the file's deliberately broken cases
                continue
            if s.satrec.no_kozai * 1440.0 / (2.0 * math.pi) > 6.4:  # near-Earth (period < 225 min)
                sets[s.norad] = s
    ref, cur = {}, None
    for ln in (d / "tcppver.out").read_text().splitlines():
        p = ln.split()
        if len(p) == 2 and p[1] == "xx":
            cur = int(p[0])
            ref[cur] = []
        elif cur is not None and len(p) >= 7:
            try:
                ref[cur].append([float(x) for x in p[:7]])
            except ValueError:
                pass
    return sets, ref


def test_sgp4_through_gps_time_matches_the_verification_vectors():
    """The sgp4 package's own verification file (Vallado et al. 2006): every near-Earth case,
    each row reached through GPS time and UTC as the uplink does: < 5 mm."""
    sets, ref = _verification_sets()
    n = 0
    for norad, s in sets.items():
        for row in ref.get(norad, []):
            try:
                r, v = tl.sgp4_teme(s, s.epoch_gps_s + row[0] * 60.0)
            except tl.TleError:
                continue  # a case that decays: the file stops there too
            assert np.linalg.norm(r - np.array(row[1:4]) * 1e3) < 5e-3, (norad, row[0])
            assert np.linalg.norm(v - np.array(row[4:7]) * 1e3) < 1e-5, (norad, row[0])
            n += 1
    assert n > 100


ISS = (
    "ISS (ZARYA)\n"
    "1 25544U 98067A   08264.51782528 -.00002182  00000-0 -11606-4 0  2927\n"
    "2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.72125391563537\n"
)


def test_tle_files_are_checked_line_by_line(tmp_path):
    (s,) = tl.parse_tle_text(ISS)
    assert s.norad == 25544 and s.name == "ISS (ZARYA)"
    assert tl.utc_iso(s.epoch_gps_s) == "2008-09-20T12:25:40Z"
    two = tl.parse_tle_text(ISS.split("\n", 1)[1] + "\n" + ISS, "f")
    assert [x.name for x in two] == ["", "ISS (ZARYA)"]
    bad = ISS.replace("2927", "2928")
    with pytest.raises(tl.TleError, match=r"f:2: checksum of TLE line 1"):
        tl.parse_tle_text(bad, "f")
    with pytest.raises(tl.TleError, match="not followed by its line 2"):
        tl.parse_tle_text(ISS.split("\n")[1] + "\n", "f")
    with pytest.raises(tl.TleError, match="without its line 1"):
        tl.parse_tle_text(ISS.split("\n")[2] + "\n", "f")
    with pytest.raises(tl.TleError, match="has 68 characters"):
        tl.parse_tle_text(ISS.replace("2927\n", "927\n"), "f")
    l1 = ISS.split("\n")[1]
    other = l1[:2] + "25545" + l1[7:68]
    with pytest.raises(tl.TleError, match="different catalogue numbers"):
        tl.parse_tle_text(other + str(tl.checksum(other)) + "\n" + ISS.split("\n")[2] + "\n", "f")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(tl.TleError, match="no TLE in the file"):
        tl.load_tle_file(tmp_path / "empty.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(tl.TleError, match="not a text TLE file"):
        tl.load_tle_file(tmp_path / "bin.txt")


def test_select_tle_takes_the_epoch_nearest():
    base = tl.parse_tle_text(ISS)[0]
    sats = [base]
    for day in ("08265.51782528", "08266.51782528"):
        l1 = base.line1[:18] + day + base.line1[32:68]
        sats += tl.parse_tle_text(l1 + str(tl.checksum(l1)) + "\n" + base.line2 + "\n")
    t = base.epoch_gps_s + 1.4 * 86400.0
    assert tl.select_tle(sats, 25544, t) is sats[1]
    assert tl.select_tle(sats, 25544, base.epoch_gps_s + 3 * 86400.0) is sats[2]
    assert tl.select_tle(sats, 99999, t) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 137), st.sampled_from("0123456789 .-+AUXZ")), max_size=6),
    st.booleans(),
    st.sampled_from(["", "NAME\n", "0 NAME\n", "\n\n"]),
)
def test_tle_reader_takes_any_mutation_without_crashing(edits, fix_checksums, prefix):
    """Any characters of a valid set changed (checksums repaired or not): a TleSet or a
    TleError naming the line, nothing else."""
    text = list(ISS.split("\n", 1)[1])
    for pos, ch in edits:
        if text[pos] != "\n":
            text[pos] = ch
    lines = "".join(text).splitlines()
    if fix_checksums:
        lines = [ln[:68] + str(tl.checksum(ln)) if len(ln) >= 68 else ln for ln in lines]
    try:
        sets = tl.parse_tle_text(prefix + "\n".join(lines) + "\n", "f")
    except tl.TleError as exc:
        assert str(exc).startswith("f")
    else:
        assert all(isinstance(x, tl.TleSet) and math.isfinite(x.epoch_gps_s) for x in sets)


@settings(max_examples=60, deadline=None)
@given(
    st.floats(14.0, 16.2),
    st.floats(0.0, 0.01),
    st.floats(0.0, 360.0),
    st.floats(0.1, 179.9),
    st.floats(0.0, 360.0),
    st.floats(0.0, 360.0),
    st.floats(-9e-3, 9e-3),
    st.integers(1, 99999),
)
def test_format_tle_round_trips(rev_day, e, argp_deg, i_deg, raan_deg, u_deg, b_star, norad):
    """The lines written for any LEO elements (perigee above ~190 km: SGP4 calls a lower one
    decayed) read back as those elements, to the fields' rounding (1e-4 deg, 1e-7 in e,
    1e-8 rev/day, 5 digits of B*)."""
    el = stle.MeanElements(
        rev_day * 2 * math.pi / 1440.0,
        e * math.cos(math.radians(argp_deg)),
        e * math.sin(math.radians(argp_deg)),
        math.radians(i_deg),
        math.radians(raan_deg),
        math.radians(u_deg),
        b_star,
    )
    jd = 2_460_754.5 + 0.123456789
    l1, l2 = stle.format_tle(el, round(jd * 1e8) / 1e8, norad)
    (s,) = tl.parse_tle_text(f"{l1}\n{l2}\n", "f")
    r = s.satrec
    assert s.norad == norad
    assert abs(r.no_kozai * 1440.0 / (2 * math.pi) - rev_day) < 1e-8
    assert abs(r.ecco - e) <= 5.1e-8
    assert abs(math.degrees(r.inclo) - i_deg) < 6e-5
    d = lambda a, b: abs((a - b + 180.0) % 360.0 - 180.0)  # noqa: E731
    assert d(math.degrees(r.nodeo), raan_deg) < 6e-5
    assert d(math.degrees(r.argpo + r.mo), u_deg) < (2e-4 if e > 1e-6 else 360.0)
    assert abs(r.bstar - b_star) <= 5e-5 * abs(b_star) + 1e-10  # 5 significant digits, >= 1e-10


# --------------------------------------------------------------------------- covariance model
def _mean_elements(s) -> stle.MeanElements:
    r = s.satrec
    return stle.MeanElements(
        r.no_kozai, r.ecco * math.cos(r.argpo), r.ecco * math.sin(r.argpo), r.inclo, r.nodeo, r.argpo + r.mo, r.bstar
    )


def _tle_of(el, jd, norad=99001):
    l1, l2 = stle.format_tle(el, jd, norad)
    return tl.parse_tle_text(l1 + "\n" + l2 + "\n")[0]


SSO = (
    "1 99001U 25001A   25079.20833333  .00000000  00000+0  49247-3 0  9994\n"
    "2 99001  97.3061  40.3024 0018963 103.8739 128.6507 15.18015748    10\n"
)


def _sso():
    text = SSO.splitlines()
    lines = [ln[:68] + str(tl.checksum(ln)) for ln in text]
    return tl.parse_tle_text("\n".join(lines) + "\n")[0]


def test_relative_element_map_matches_sgp4():
    """Each relative orbital element moved by 100 m in the TLE: the SGP4 state difference in
    RTN (position, inertial velocity) is the covariance model's linear map, to 6 % + 15 m
    (the TLE fields' rounding: 1e-4 deg is 12 m), over six hours."""
    base = _sso()
    el = _mean_elements(base)
    jd = base.satrec.jdsatepoch + base.satrec.jdsatepochF
    b0 = _tle_of(el, jd)
    for d in np.eye(6) * 100.0:
        b1 = _tle_of(stle.apply_roe(el, d), jd)
        for dt in (0.0, 3600.0, 6 * 3600.0):
            t = b0.epoch_gps_s + dt
            r0, v0 = tl.sgp4_teme(b0, t)
            r1, v1 = tl.sgp4_teme(b1, t)
            ax = tc.rtn_axes(r0, v0)
            got = np.concatenate([ax @ (r1 - r0), ax @ (v1 - v0)])
            want = tc.roe_to_rtn(b0.mean_motion_rad_s, tc._argument_of_latitude(r0, v0), dt) @ d
            assert np.all(np.abs(got[:3] - want[:3]) <= 0.06 * np.abs(want[:3]) + 15.0), (d, dt, got, want)
            assert np.all(np.abs(got[3:] - want[3:]) <= 0.06 * np.abs(want[3:]) + 0.015), (d, dt, got, want)


def test_tle_covariance_grows_with_age_and_drag():
    s = _sso()
    c0 = tc.tle_covariance_rtn(s, s.epoch_gps_s)
    sig0 = np.sqrt(np.diag(c0))
    assert np.allclose(sig0[:3], [270.0, 1137.0, 316.0], rtol=0.01)
    day = np.sqrt(np.diag(tc.tle_covariance_rtn(s, s.epoch_gps_s + 86400.0)))
    back = np.sqrt(np.diag(tc.tle_covariance_rtn(s, s.epoch_gps_s - 86400.0)))
    assert day[1] > 3.0 * sig0[1] and back[1] > 3.0 * sig0[1]
    # No drag at all (B* 0) still gets the floor; more drag, more along-track sigma.
    el = _mean_elements(s)
    jd = s.satrec.jdsatepoch + s.satrec.jdsatepochF
    import dataclasses

    for b, lo, hi in ((0.0, 0.0, math.inf), (5e-3, day[1], math.inf)):
        t = _tle_of(dataclasses.replace(el, b_star=b), jd)
        a = np.sqrt(np.diag(tc.tle_covariance_rtn(t, t.epoch_gps_s + 86400.0)))[1]
        assert lo < a < hi
    np.linalg.cholesky(c0)


def test_fit_recovers_an_sgp4_orbit_and_the_lines_round_trip():
    """SGP4 positions of a known TLE over 6 h: the fit's TLE reproduces them to the rounding
    of the TLE fields (~10 m), from a state guess of the osculating elements."""
    s = _sso()
    t = s.epoch_gps_s - np.arange(0, 6 * 3600 + 1, 120.0)[::-1]
    rv = [tl.sgp4_teme(s, tk) for tk in t]
    r = np.array([x[0] for x in rv])
    v = np.array([x[1] for x in rv])
    fit = stle.fitted_tle(t, r, v, s.epoch_gps_s, 99001, "fit")
    assert fit.fit_rms_m < 1.0
    err = max(np.linalg.norm(tl.sgp4_teme(fit.tle, tk)[0] - rk) for tk, rk in zip(t, r))
    assert err < 30.0
    assert abs(fit.tle.b_star - s.b_star) < 0.05 * abs(s.b_star)
    assert tl.parse_tle_text(stle.tle_text("x", fit.line1, fit.line2))[0].line2 == fit.line2


# --------------------------------------------------------------------------- the documented commands
def doc_blocks() -> list[list[str]]:
    """The ```bash blocks of docs/uplink.md, as lists of command lines."""
    text = DOC.read_text()
    return [[ln for ln in b.strip().splitlines() if ln.strip()] for b in re.findall(r"```bash\n(.*?)```", text, re.S)]


def run_line(line: str, cwd: Path) -> subprocess.CompletedProcess:
    """A documented command line in *cwd* (a directory laid out like the repository's root:
    ``flight/`` and ``.venv/`` in it, :func:`clone_layout`): ``python``, the documents' name
    for the environment's interpreter, is this one; the rest runs as written (the Pi's
    ``--python .venv/bin/python`` is the layout's)."""
    argv = shlex.split(line)
    assert argv[0] in ("python", "mkdir"), line
    if argv[0] == "python":
        argv[0] = sys.executable
    return subprocess.run(
        argv,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def clone_layout(d: Path) -> None:
    """*d* laid out like a clone's root as the README sets it up: ``flight/`` and
    ``.venv/bin/python`` - the repository's .venv when it has one (CI's checkout), else a
    wrapper of this interpreter - so that the documents' ``--python .venv/bin/python`` runs
    as written (the system's ``python3`` may lack pyzmq, msgpack and pyserial)."""
    (d / "flight").symlink_to(REPO / "flight")
    if (REPO / ".venv" / "bin" / "python").exists():
        (d / ".venv").symlink_to(REPO / ".venv")
    else:
        (d / ".venv" / "bin").mkdir(parents=True)
        wrapper = d / ".venv" / "bin" / "python"
        wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
        wrapper.chmod(0o755)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The doc's simulated formation (its first command, as written) and the downlinks of
    0x4B and 0x4C as the doc makes them (80 minutes of their files through the flight
    software behind a local shell: issue 45 item 14, the doc did not say how), also as
    ``downlink/sc1`` and ``downlink/sc2`` for the other tests."""
    d = tmp_path_factory.mktemp("uplink")
    clone_layout(d)
    lines = doc_blocks()[0] + doc_blocks()[2][:-1]
    hosts = [line for line in lines if "ground host" in line]
    for line in lines:
        if "ground host" in line:
            continue
        p = run_line(line, d)
        assert p.returncode == 0, (line, p.stdout, p.stderr)
    # The two partners' runs side by side, as two hosts would.
    with ThreadPoolExecutor(len(hosts)) as pool:
        for line, p in zip(hosts, pool.map(lambda line: run_line(line, d), hosts)):
            assert p.returncode == 0, (line, p.stdout, p.stderr)
            assert "result: ok" in p.stdout and "stop: ctrl-c, exit status 0" in p.stdout, p.stdout
            assert "pygnc has processed everything" in p.stdout, p.stdout
    (d / "downlink").mkdir()
    for name in ("sc1", "sc2"):
        (d / "downlink" / name).symlink_to(d / "out" / f"pi_{name}" / "pygnc_batches")
    return d


def _prior_nees(cfg_path: Path, truth: dict) -> dict[int, tuple[float, np.ndarray, np.ndarray]]:
    """peer id -> (NEES of the prior against the truth, RTN error (6,), sigmas (6,))."""
    cfg = load_config(cfg_path)
    ids = [int(i) for i in truth["radio_id"]]
    out = {}
    for peer, p in cfg.formation_peer_priors.items():
        k = ids.index(peer)
        j = int(round(p["t_gps_s"] - truth["t_gps_s"][0]))
        rg, vg = frames.itrs_to_gcrs(np.array(p["pos_ecef_m"]), np.array(p["vel_ecef_m_s"]), p["t_gps_s"])
        rt, vt = frames.itrs_to_gcrs(truth["r_ecef_m"][k, j], truth["v_ecef_m_s"][k, j], p["t_gps_s"])
        ax = tc.rtn_axes(rg, vg)
        e = np.concatenate([ax @ (rg - rt), ax @ (vg - vt)])
        c = np.array(p["cov_rtn"]).reshape(6, 6)
        out[peer] = (float(e @ np.linalg.solve(c, e)), e, np.sqrt(np.diag(c)))
    return out


def test_simulated_tles_are_tle_class_and_reproducible(demo):
    text = (demo / "out" / "demo" / "tle.txt").read_text()
    sets = tl.parse_tle_text(text)
    assert [(s.name, s.norad) for s in sets] == [("sc0", 90074), ("sc1", 90075), ("sc2", 90076)]
    settings = scn.resolve(scn.load_settings(demo / "out" / "demo" / "scenario.toml"))
    t0 = float(timebase.gps_from_utc_unix(1742450400.0))  # 2025-03-20T06:00:00Z
    assert all(s.epoch_gps_s == pytest.approx(t0 - 3600.0, abs=1e-3) for s in sets)
    from ground.simulate import simulator as sim

    assert sim._tles(settings, t0, lambda m: None) == text  # the seed decides every byte
    # The errors drawn: the exact fit differs from the written TLE by TLE-class amounts.
    exact = scn.resolve(scn.set_dotted(settings, "tle.error_scale", 0.0))
    exact_sets = tl.parse_tle_text(sim._tles(exact, t0, lambda m: None))
    d = [np.linalg.norm(tl.sgp4_teme(a, t0)[0] - tl.sgp4_teme(b, t0)[0]) for a, b in zip(sets, exact_sets)]
    assert all(100.0 < x < 10_000.0 for x in d), d


def test_doc_tle_uplink_covers_the_truth(demo):
    before = (demo / "out" / "demo" / "pygnc_config.toml").read_text()
    (line,) = doc_blocks()[1]
    p = run_line(line, demo)
    assert p.returncode == 0, p.stderr
    assert "0x4B  TLE of NORAD 90075 (sc1)" in p.stdout and "predicted range from the own spacecraft" in p.stdout
    cfg = load_config(demo / "out" / "demo" / "pygnc_config.toml")
    assert cfg.range_gps_source == "own" and cfg.spacecraft_id == 0x4A and "spacecraft_id = 74" in before
    truth = scn.load_truth(demo / "out" / "demo" / "truth.npz")
    res = _prior_nees(demo / "out" / "demo" / "pygnc_config.toml", truth)
    assert set(res) == {0x4B, 0x4C}
    for peer, (nees, e, sig) in res.items():
        prior = cfg.formation_peer_priors[peer]
        assert prior["source"].startswith("TLE 9007") and prior["wrong_side_probability"] == 0.2
        # The simulator draws a TLE's error from the core covariance or, with the tail's
        # probability, from it times the tail's scale squared: the mixture covers it.
        assert prior["tail_probability"] > 0.0
        assert nees < CHI2_6_999 or nees / prior["tail_scale"] ** 2 < CHI2_6_999, (peer, nees, e, sig)
        assert prior["sigma_pos_m"] >= sig[:3].max() - 1e-6 and prior["sigma_vel_m_s"] >= sig[3:].max() - 1e-9
    # The printed range is the TLE pair's, within its sigma of the true one.
    got = {
        int(m.group(1), 16): float(m.group(2))
        for m in re.finditer(r"0x(4[BC]) .*?predicted range from the own spacecraft ([\d.]+) km", p.stdout, re.S)
    }
    j = int(round(cfg.formation_peer_priors[0x4B]["t_gps_s"] - truth["t_gps_s"][0]))
    for peer, k in ((0x4B, 1), (0x4C, 2)):
        true_km = np.linalg.norm(truth["r_ecef_m"][k, j] - truth["r_ecef_m"][0, j]) / 1e3
        assert abs(got[peer] - true_km) < 5.0, (peer, got[peer], true_km)


def test_doc_downlink_uplink_covers_the_truth(demo):
    line = doc_blocks()[2][-1]
    p = run_line(line, demo)
    assert p.returncode == 0, p.stderr
    assert re.search(r"0x4B  downlink out/pi_sc1/pygnc_batches: 81 orbit estimates in \d+ files?;", p.stdout), p.stdout
    assert "kept from the earlier file" not in p.stdout
    cfg = load_config(demo / "out" / "demo" / "pygnc_config.toml")
    assert cfg.range_gps_source == "own"
    res = _prior_nees(demo / "out" / "demo" / "pygnc_config.toml", scn.load_truth(demo / "out" / "demo" / "truth.npz"))
    for peer, (nees, e, sig) in res.items():
        assert cfg.formation_peer_priors[peer]["source"].startswith(f"downlink 0x{peer:02X}")
        assert cfg.formation_peer_priors[peer]["wrong_side_probability"] == 0.0
        assert nees < CHI2_6_999, (peer, nees, e, sig)
        assert np.linalg.norm(e[:3]) < 200.0 and sig[1] < 500.0  # half an hour after the last estimate


def test_doc_decoded_downlink_checked_against_the_tle(demo):
    lines = doc_blocks()[3]
    for line in lines:
        p = run_line(line, demo)
        assert p.returncode == 0, (line, p.stderr)
    assert "TLE of NORAD 90075 (sc1) agrees" in p.stdout
    # The decoded files give the same prior as the batch files themselves.
    new = load_config(demo / "out" / "sc0_config.toml")  # issue 45 item 9: a new file is a whole configuration
    assert new.spacecraft_id == 0x4A and new.range_gps_source == "own"
    assert "a new configuration: spacecraft_id = 74 (0x4A), range_gps_source = 'own'" in p.stdout
    q = run_line(lines[1].replace("out/decoded/sc1", "downlink/sc1").replace("out/sc0_config.toml", "raw.toml"), demo)
    assert q.returncode == 0, q.stderr
    a = load_config(demo / "out" / "sc0_config.toml").formation_peer_priors[0x4B]
    b = load_config(demo / "raw.toml").formation_peer_priors[0x4B]
    assert np.allclose(a["pos_ecef_m"], b["pos_ecef_m"], rtol=0, atol=1e-6)
    assert np.allclose(a["cov_rtn"], b["cov_rtn"], rtol=1e-9, atol=0)


# --------------------------------------------------------------------------- output file handling
def _uplink(demo: Path, *args) -> int:
    cwd = os.getcwd()
    os.chdir(demo)
    try:
        return ground_main(["uplink", *map(str, args)])
    finally:
        os.chdir(cwd)


TLE_ARGS = ("--tle", "out/demo/tle.txt", "--self", "90074", "--epoch-utc", "2025-03-20T06:30:00Z")


def test_existing_file_merge_keeps_other_keys_force_replaces(demo, capsys):
    out = demo / "merge.toml"
    out.write_text(
        'orbit_filter = { tesseral_degree = 6 }\n[formation_peer_priors."0x4D"]\n'
        "dr_rtn_m = [0.0, -3000.0, 0.0]\ndv_rtn_m_s = [0.0, 0.0, 0.0]\n"
    )
    assert _uplink(demo, *TLE_ARGS, "--partner", "0x4B=90075", "--out", out) == 2
    assert "exists: --merge" in capsys.readouterr().err
    assert _uplink(demo, *TLE_ARGS, "--partner", "0x4B=90075", "--out", out, "--merge") == 0
    assert "kept from the earlier file: priors of 0x4D" in capsys.readouterr().out
    cfg = load_config(out)
    assert cfg.orbit_filter == {"tesseral_degree": 6} and set(cfg.formation_peer_priors) == {0x4B, 0x4D}
    assert _uplink(demo, *TLE_ARGS, "--partner", "0x4C=90076", "--out", out, "--force", "--spacecraft-id", "74") == 0
    cfg = load_config(out)
    assert cfg.orbit_filter == {} and set(cfg.formation_peer_priors) == {0x4C}
    out.write_text("this is not = = toml\n")
    assert _uplink(demo, *TLE_ARGS, "--partner", "0x4B=90075", "--out", out, "--merge") == 2
    assert "cannot be read as TOML" in capsys.readouterr().err


def test_a_merge_the_flight_would_refuse_is_not_written(demo, capsys):
    """A configuration just under the flight's 256-KiB bound, merged with one more prior,
    was written over it - a file the flight refuses whole; the result is now put through the
    flight's own loader (``parse_config``: its size bound too) and refused, the file kept."""
    from pygnc.config import MAX_CONFIG_BYTES

    one = demo / "one.toml"
    assert _uplink(demo, *TLE_ARGS, "--partner", "0x4B=90075", "--spacecraft-id", "0x4A", "--out", one) == 0
    body = re.split(r"\[formation_peer_priors\.\W?0x4B\W?\]", one.read_text(), maxsplit=1)[1]
    text = "spacecraft_id = 74\n"
    for pid in (k for k in range(1, 256) if k not in (0x4A, 0x4C)):
        block = f'[formation_peer_priors."0x{pid:02X}"]' + body
        if len((text + block).encode()) > MAX_CONFIG_BYTES - 200:
            break
        text += block
    out = demo / "full.toml"
    out.write_text(text)
    load_config(out)  # the flight takes it as it is
    capsys.readouterr()
    assert _uplink(demo, *TLE_ARGS, "--partner", "0x4C=90076", "--out", out, "--merge") == 2
    err = capsys.readouterr().err
    assert "rejects the result" in err and "bytes" in err and "nothing written" in err and "--force" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert out.read_text() == text


def _uplink_command(demo: Path, *args) -> subprocess.CompletedProcess:
    """``python -m ground uplink ARGS`` as a user types it, in *demo*."""
    return run_line(shlex.join(["python", "-m", "ground", "uplink", *map(str, args)]), demo)


def test_a_new_file_is_a_whole_configuration(demo, tmp_path):
    """Issue 45 item 9: the new-file route wrote only the priors (no spacecraft_id, no
    range_gps_source: the spacecraft's batches then carry id 0 and are refused later as a
    prior source).  Now it needs --spacecraft-id and writes both; a merge keeps a file's id and
    refuses another spacecraft's; the written file passes the flight's check."""
    out = tmp_path / "new.toml"
    p = _uplink_command(demo, *TLE_ARGS, "--partner", "0x4B=90075", "--out", out)
    assert p.returncode == 2 and "a new file needs --spacecraft-id ID" in p.stderr and not out.exists()
    p = _uplink_command(demo, *TLE_ARGS, "--partner", "0x4B=90075", "--spacecraft-id", "0x4A", "--out", out)
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    assert 'spacecraft_id = 74\nrange_gps_source = "own"\n\n[formation_peer_priors' in text
    assert "a key written below a header belongs to that table" in text
    check = subprocess.run(
        [sys.executable, str(REPO / "flight" / "main.py"), "--check-config", str(out)], capture_output=True, text=True
    )
    assert check.returncode == 0 and check.stderr.endswith(f"{out}: accepted\n"), check.stderr
    p = _uplink_command(demo, *TLE_ARGS, "--partner", "0x4C=90076", "--spacecraft-id", "0x4C", "--out", out, "--merge")
    assert p.returncode == 2 and "is the configuration of spacecraft_id 74, not of --spacecraft-id 0x4C" in p.stderr
    p = _uplink_command(demo, *TLE_ARGS, "--partner", "0x4A=90075", "--spacecraft-id", "0x4A", "--out", out, "--merge")
    assert p.returncode == 2 and "partner 0x4A is the spacecraft this file is for" in p.stderr
    p = _uplink_command(demo, *TLE_ARGS, "--partner", "0x4C=90076", "--out", out, "--merge")  # its id is kept
    assert p.returncode == 0 and load_config(out).spacecraft_id == 0x4A, p.stderr
    # A key appended below the prior table, and a typo of a prior key: the check says what happened.
    out.write_text(out.read_text() + "status_period_s = 0.5\n")
    check = subprocess.run(
        [sys.executable, str(REPO / "flight" / "main.py"), "--check-config", str(out)], capture_output=True, text=True
    )
    assert check.returncode == 2
    assert "status_period_s is not a key of a partner prior: it is a top-level key - write it before the first" in (
        check.stderr
    )
    out.write_text(out.read_text().replace("status_period_s = 0.5\n", "").replace("sigma_vel_m_s =", "sigma_vel ="))
    check = subprocess.run(
        [sys.executable, str(REPO / "flight" / "main.py"), "--check-config", str(out)], capture_output=True, text=True
    )
    assert check.returncode == 2 and "sigma_vel is not a key of a partner prior (did you mean sigma_vel_m_s?)" in (
        check.stderr
    )


@pytest.mark.parametrize(
    "content, message",
    [
        (bytes(range(256)), "is not a text file (byte 128 is not UTF-8)"),
        (b"status_period_s = " + b"1" * 400 + b"\n", "status_period_s is an integer of 400 digits"),
        (b"x = " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "cannot be read as TOML"),
    ],
    ids=["binary", "400-digit integer", "deep nesting"],
)
def test_merge_into_a_file_that_is_not_a_configuration_is_refused(demo, tmp_path, content, message):
    """Issue 45 item 5, issue 48 item 9: --merge into a binary file, one with a 400-digit
    integer or one nested 100 000 deep gave tracebacks; now exit 2, one line, file untouched."""
    out = tmp_path / "bad.toml"
    out.write_bytes(content)
    p = _uplink_command(demo, *TLE_ARGS, "--partner", "0x4B=90075", "--out", out, "--merge")
    assert p.returncode == 2 and "Traceback" not in p.stderr and message in p.stderr, p.stderr
    assert len(p.stderr.splitlines()) == 1 and out.read_bytes() == content


@pytest.mark.parametrize("line", [1, 4], ids=["own TLE", "partner's TLE"])
def test_a_tle_whose_b_star_is_letters_is_refused(demo, tmp_path, line):
    """Issue 48 item 9: B* of letters with the checksum recomputed gave 'nan km' and no
    separation check (own TLE) or a LinAlgError traceback (a partner's)."""
    lines = (demo / "out" / "demo" / "tle.txt").read_text().splitlines()
    bad = lines[line][:53] + "ABCDEFGH" + lines[line][61:68]
    lines[line] = bad + str(tl.checksum(bad))
    f = tmp_path / "tle.txt"
    f.write_text("\n".join(lines) + "\n")
    args = ("--tle", f, "--self", "90074", "--epoch-utc", "2025-03-20T06:30:00Z", "--spacecraft-id", "0x4A")
    p = _uplink_command(demo, *args, "--partner", "0x4B=90075", "--out", tmp_path / "out.toml")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert f"{f}:{line + 1}: B* (line 1, columns 54-61) is not a number: 'ABCDEFGH'" in p.stderr
    assert not (tmp_path / "out.toml").exists()


# --------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "args, message",
    [
        (("--partner", "0x4B=90075", "--max-tle-age-h", "1"), "older than --max-tle-age-h 1"),
        (("--partner", "0x4B=12345"), "no TLE of NORAD 12345 (partner 0x4B); the file has [90074, 90075, 90076]"),
        (("--partner", "0x4B=90074"), "NORAD 90074 is the own spacecraft's"),
        (("--partner", "0x4B=90075", "--max-separation-km", "1"), "more than --max-separation-km 1"),
        (("--partner", "0x4B=90075", "--partner", "0x4B=90076"), "partner 0x4B given twice"),
        (("--partner", "0x4B"), "needs ID=VALUE"),
        (("--partner", "0x100=90075"), "outside 1..255"),
        (("--partner", "0x4B=sc1"), "not a NORAD catalogue number"),
        (("--partner", "0x4B=90075", "--wrong-side-probability", "0.7"), "must be in [0, 0.5]"),
        ((), "no partner"),
    ],
)
def test_tle_refusals(demo, capsys, args, message):
    assert _uplink(demo, *TLE_ARGS, *args, "--out", "refused.toml") == 2
    assert message in capsys.readouterr().err
    assert not (demo / "refused.toml").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (("--tle", "out/demo/tle.txt", "--partner", "0x4B=90075"), "--tle needs --self"),
        (("--self", "90074", "--partner", "0x4B=90075"), "need --tle FILE"),
        (("--tle", "nowhere.txt", "--self", "90074", "--partner", "0x4B=90075"), "nowhere.txt"),
    ],
)
def test_argument_refusals(demo, capsys, args, message):
    assert _uplink(demo, *args, "--epoch-utc", "2025-03-20T06:30:00Z", "--out", "refused.toml") == 2
    assert message in capsys.readouterr().err


def test_bad_epoch_and_bad_tle_file_are_refused(demo, capsys, tmp_path):
    assert (
        _uplink(
            demo,
            "--tle",
            "out/demo/tle.txt",
            "--self",
            "90074",
            "--partner",
            "0x4B=90075",
            "--epoch-utc",
            "yesterday",
            "--out",
            "refused.toml",
        )
        == 2
    )
    assert "not an ISO 8601 time: 'yesterday'" in capsys.readouterr().err
    text = (demo / "out" / "demo" / "tle.txt").read_text().splitlines()
    text[4] = text[4][:20] + ("1" if text[4][20] != "1" else "2") + text[4][21:]
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(text) + "\n")
    assert (
        _uplink(
            demo,
            "--tle",
            bad,
            "--self",
            "90074",
            "--partner",
            "0x4B=90075",
            "--epoch-utc",
            "2025-03-20T06:30:00Z",
            "--out",
            "refused.toml",
        )
        == 2
    )
    assert f"{bad}:5: checksum of TLE line 1" in capsys.readouterr().err


DL_ARGS = ("--epoch-utc", "2025-03-20T07:50:00Z")


def test_downlink_from_another_spacecraft_is_refused(demo, capsys):
    assert _uplink(demo, "--downlink", "0x4C=downlink/sc1", *DL_ARGS, "--out", "refused.toml") == 2
    assert "written by spacecraft id 0x4B, not 0x4C" in capsys.readouterr().err


def test_downlink_far_from_the_epoch_is_refused(demo, capsys):
    assert (
        _uplink(demo, "--downlink", "0x4B=downlink/sc1", "--epoch-utc", "2025-03-23T07:50:00Z", "--out", "refused.toml")
        == 2
    )
    assert "further than --max-downlink-age-h 48" in capsys.readouterr().err


def test_downlink_with_a_non_finite_estimate_is_refused(demo, capsys, tmp_path):
    from pygnc.formats import batch as B

    d = tmp_path / "nan"
    shutil.copytree(demo / "downlink" / "sc1", d)
    files = sorted(d.glob("batch_*.bin"))
    # an estimate from measurements (flag bit 0: propagated), the latest
    orbit = [r for f in files for r in B.decode_batch(f.read_bytes()).records if r.kind.name == "orbit"]
    orbit = [r for r in orbit if not r.values()["flags"] & 1][-1]
    v = orbit.values()
    v["r_ecef_m"] = [math.nan, v["r_ecef_m"][1], v["r_ecef_m"][2]]
    seq = B.sequence_of(files[-1].name) + 1
    rec = B.encode_record(B.KINDS_BY_NAME["orbit"], orbit.t_sc_s + 1.0, v)
    header = B.encode_header(1, seq, 0x4B, B.FILE_CLOSED_STOP, orbit.t_sc_s + 1.0, orbit.t_sc_s + 1.0, 1)
    (d / f"batch_{seq:08d}.bin").write_bytes(header + rec)
    args = ("--downlink", f"0x4B={d}", *DL_ARGS, "--spacecraft-id", "0x4A", "--out", "refused.toml")
    assert _uplink(demo, *args) == 2
    err = capsys.readouterr().err
    assert "has non-finite r_ecef_m" in err and f"batch file {seq:08d}" in err


def test_downlink_file_without_a_header_and_empty_directories_are_refused(demo, capsys, tmp_path):
    d = tmp_path / "torn"
    shutil.copytree(demo / "downlink" / "sc1", d)
    first = sorted(d.glob("batch_*.bin"))[0]
    first.write_bytes(b"\0" * 48 + first.read_bytes()[48:])
    assert _uplink(demo, "--downlink", f"0x4B={d}", *DL_ARGS, "--out", "refused.toml") == 2
    assert "no valid header" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert _uplink(demo, "--downlink", f"0x4B={tmp_path / 'empty'}", *DL_ARGS, "--out", "refused.toml") == 2
    assert "no batch files" in capsys.readouterr().err
    dec = tmp_path / "decoded"
    dec.mkdir()
    (dec / "orbit.csv").write_text("t_sc_s\n")
    assert _uplink(demo, "--downlink", f"0x4B={dec}", *DL_ARGS, "--out", "refused.toml") == 2
    assert "without files.csv" in capsys.readouterr().err


def _renumbered(line: str, norad: int, mean_anomaly_shift_deg: float = 0.0) -> str:
    line = line[:2] + f"{norad:05d}" + line[7:]
    if line.startswith("2 ") and mean_anomaly_shift_deg:
        line = line[:43] + f"{(float(line[43:51]) + mean_anomaly_shift_deg) % 360.0:8.4f}" + line[51:]
    return line[:68] + str(tl.checksum(line))


def test_downlink_and_a_tle_of_another_object_are_refused(demo, capsys, tmp_path):
    """The TLE given for 0x4B is of an object 0.3 deg (~36 km) ahead of it."""
    lines = (demo / "out" / "demo" / "tle.txt").read_text().splitlines()
    other = ["other", _renumbered(lines[4], 90077), _renumbered(lines[5], 90077, 0.3)]
    f = tmp_path / "tle.txt"
    f.write_text("\n".join(lines + other) + "\n")
    assert (
        _uplink(
            demo,
            "--tle",
            f,
            "--self",
            "90074",
            "--partner",
            "0x4B=90077",
            "--downlink",
            "0x4B=downlink/sc1",
            *DL_ARGS,
            "--out",
            "refused.toml",
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "its downlinked orbit and the TLE of NORAD 90077 (other) disagree" in err


def test_downlink_records_of_two_orbits_are_refused(demo, capsys, tmp_path):
    """0x4C's files relabelled as 0x4B's next to 0x4B's own: no single orbit fits them."""
    from pygnc.formats import batch as B

    d = tmp_path / "mixed"
    shutil.copytree(demo / "downlink" / "sc1", d)
    for f in sorted((demo / "downlink" / "sc2").glob("batch_*.bin")):
        data = f.read_bytes()
        h = B.decode_batch(data).header
        seq = h["sequence"] + 100
        header = B.encode_header(
            h["run"], seq, 0x4B, h["flags"], h["t_first_sc_s"], h["t_last_sc_s"], h["records"], h["skipped_bytes"]
        )
        (d / f"batch_{seq:08d}.bin").write_bytes(header + data[B.HEADER_SIZE :])
    assert _uplink(demo, "--downlink", f"0x4B={d}", *DL_ARGS, "--out", "refused.toml") == 2
    assert (
        "km RMS (more than 1 km): a reset, a manoeuvre or records of more than one spacecraft"
        in capsys.readouterr().err
    )


def test_an_arc_whose_last_estimate_is_just_past_the_epoch_reaches_back():
    """The anchor nearest the epoch may lie a few seconds after it (an estimate propagated to
    'now' at the end of a run): the drag fit still takes the day before it, not the anchor
    alone (that was a singular fit)."""
    from ground.uplink import orbit_prediction as op

    sel, anchor = op.select_arc(np.arange(0.0, 3600.0, 60.0) + 10.0, 3550.0, 86400.0)
    assert anchor == 59 and len(sel) == 60
    sel, anchor = op.select_arc(np.arange(0.0, 3600.0, 60.0) + 10.0, -100.0, 86400.0)
    assert anchor == 0 and len(sel) == 60  # the epoch before the records: their future
