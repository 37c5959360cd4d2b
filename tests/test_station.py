"""The browser ground station (``python -m ground serve``): the page model, the sources, the
server as a process (traversal, disconnects, pages that stop reading, a port that goes away,
bad bytes, interrupts) and the page in a real headless Chromium against a replay, a short
two-partner replay, downlinked batch files and a live pseudo-terminal source."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from station_support import (
    ARTIFACTS,
    CHROMIUM_FLAGS,
    PEER,
    R_ORBIT_M,
    T0_SC_S,
    UTC_MINUS_SC_S,
    FakePygnc,
    Server,
    batch_file,
    chromium,
    no_browser_reason,
    stalled_client,
    terminal_line,
)

from ground.outputs import tables as tb
from ground.station import cli, model, server, sources
from pygnc.formats import batch as fmt
from pygnc.formats import stream as fs
from pygnc.formats.status import decode_status, encode_status

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample_5min"


# --------------------------------------------------------------------------- model (pure)
@st.composite
def times_with_gaps(draw):
    n = draw(st.integers(12, 400))  # gaps (at most 5) are then under half the spacings: the median is dt
    dt = draw(st.sampled_from([1.0, 5.0, 60.0]))
    t = np.cumsum(np.full(n, dt)) + 1e9
    gaps = sorted(set(draw(st.lists(st.integers(1, n - 2), max_size=5))))
    for g in gaps:
        t[g:] += draw(st.floats(3.0, 1000.0)) * dt  # spacing (1 + that) dt > GAP_FACTOR dt
    return t, gaps


@settings(max_examples=60, deadline=None)
@given(times_with_gaps(), st.integers(2, 100), st.booleans())
def test_series_keep_every_gap_and_thin_evenly(tg, max_points, with_nan):
    t, gaps = tg
    vals = np.sin(t)
    if with_nan:
        vals[len(vals) // 2] = np.nan
    s = model.make_series({"t_unix_s": t, "v": vals}, max_points)
    text = server.encode({"type": "snapshot", "series": s})  # valid JSON: no NaN
    s = json.loads(text)["series"]
    assert len(s["t_unix_s"]) == len(s["v"])
    out_t = np.array(s["t_unix_s"])
    assert np.all(np.diff(out_t) > 0)
    assert out_t[0] == t[0] and out_t[-1] == t[-1]
    kept = [x is not None for x in s["v"]]
    # one gap row (value null, time half-way) per gap; the rows beside each gap are kept
    for g in gaps:
        assert t[g - 1] in out_t and t[g] in out_t
        mid = 0.5 * (t[g - 1] + t[g])
        k = int(np.flatnonzero(np.isclose(out_t, mid, rtol=0, atol=1e-6))[0])
        assert s["v"][k] is None
    n_rows = len(out_t) - len(gaps)
    assert n_rows <= max(max_points, 2) + 2 * len(gaps) or n_rows == len(t)
    assert sum(kept) >= min(len(t), 2) - int(with_nan) - 0


def test_geodetic_matches_astropy():
    from astropy import units as u
    from astropy.coordinates import EarthLocation

    rng = np.random.default_rng(3)
    r = rng.normal(size=(20, 3))
    r = r / np.linalg.norm(r, axis=1)[:, None] * rng.uniform(6.6e6, 7.3e6, 20)[:, None]
    geo = model.geodetic_deg(r)
    loc = EarthLocation.from_geocentric(r[:, 0] * u.m, r[:, 1] * u.m, r[:, 2] * u.m).to_geodetic("WGS84")
    assert np.allclose(geo[:, 0], loc.lon.deg, atol=1e-9)
    assert np.allclose(geo[:, 1], loc.lat.deg, atol=1e-7)
    assert np.allclose(geo[:, 2], loc.height.to_value(u.m), atol=1e-3)
    assert np.isnan(model.geodetic_deg(np.array([[0.0, 0.0, 0.0], [np.nan, 1, 1]]))).all()


def test_formation_line_of_sight_sigma_from_axes():
    t = {
        "unix_time_s": np.array([2.0, 1.0]),
        "t_sc_s": np.array([2.0, 1.0]),
        "peer_id": np.array([74.0, 74.0]),
        "dx_ecef_m": np.array([3.0, 0.0]),
        "dy_ecef_m": np.array([4.0, 0.0]),
        "dz_ecef_m": np.array([0.0, 0.0]),
        "sigma_dx_m": np.array([1.0, 1.0]),
        "sigma_dy_m": np.array([2.0, 2.0]),
        "sigma_dz_m": np.array([9.0, 9.0]),
        "range_bias_m": np.zeros(2),
    }
    c = model.formation_columns(t)["0x4A"]
    assert c["t_sc_s"].tolist() == [1.0, 2.0]  # sorted
    assert c["dist_m"][1] == 5.0
    assert c["sigma_los_m"][1] == pytest.approx(math.hypot(0.6 * 1.0, 0.8 * 2.0))
    assert np.isnan(c["sigma_los_m"][0])  # no direction at zero separation: unknown, not 0
    assert c["sigma_dr_m"][1] == pytest.approx(math.sqrt(1 + 4 + 81))


def test_placeholders_carry_no_position_and_counts_are_per_partner():
    """An acquiring partner's row keeps its time and word, not its position; the counts per
    partner are the table's, whatever the thinning; a text column keeps its gap rows null."""
    t = {
        "unix_time_s": np.arange(6.0),
        "t_sc_s": np.arange(6.0),
        "peer_id": np.array([75, 75, 75, 76, 76, 76]),
        "dx_ecef_m": np.full(6, 3.0),
        "dy_ecef_m": np.full(6, 4.0),
        "dz_ecef_m": np.zeros(6),
        "sigma_dx_m": np.ones(6),
        "sigma_dy_m": np.ones(6),
        "sigma_dz_m": np.ones(6),
        "range_bias_m": np.zeros(6),
        "quality": np.array(["acquiring", "ambiguous", "ok", "ok", "uncertain", ""], dtype=object),
    }
    c = model.formation_columns(t)
    assert set(c) == {"0x4B", "0x4C"}
    b = c["0x4B"]
    assert b["quality"].tolist() == ["acquiring", "ambiguous", "ok"]
    assert np.isnan(b["dist_m"][0]) and np.isnan(b["sigma_los_m"][0]) and b["dist_m"][1] == 5.0
    assert model.row_counts({"formation": t}, None)["by_peer"]["formation"] == {"0x4B": 3, "0x4C": 3}
    cols = {"t_unix_s": np.array([0.0, 1.0, 2.0, 30.0, 31.0]), "quality": np.array(["ok", "", "ok", "ok", "x"])}
    s = model.make_series(cols)
    assert s["quality"] == ["ok", None, "ok", None, "ok", "x"]  # (a gap row after t = 2)


def test_rtn_components_of_the_relative_position():
    from pygnc.frames import OMEGA_EARTH_RAD_S

    rng = np.random.default_rng(5)
    t = np.arange(10.0)
    r = rng.normal(size=(10, 3)) * 7e6
    v = np.cross(r, rng.normal(size=(10, 3))) * 1e-3
    orbit = {
        "t_sc_s": t,
        **{f"{a}_ecef_m": r[:, k] for k, a in enumerate("xyz")},
        **{f"v{a}_ecef_m_s": v[:, k] for k, a in enumerate("xyz")},
    }
    dr = rng.normal(size=(10, 3)) * 1e3
    rtn = model.rtn_components(t, dr, orbit)
    vi = v + OMEGA_EARTH_RAD_S * np.column_stack([-r[:, 1], r[:, 0], np.zeros(10)])
    h = np.cross(r, vi)
    assert np.allclose(rtn[:, 0], np.einsum("ij,ij->i", dr, r) / np.linalg.norm(r, axis=1))
    assert np.allclose(rtn[:, 2], np.einsum("ij,ij->i", dr, h) / np.linalg.norm(h, axis=1))
    assert np.allclose(np.linalg.norm(rtn, axis=1), np.linalg.norm(dr, axis=1))
    from pygnc.estimation.formation_filter import rtn_matrix  # the flight's axes, one row at a time

    assert np.allclose(rtn, [rtn_matrix(r[i], vi[i]) @ dr[i] for i in range(10)])
    assert np.isnan(model.rtn_components(np.array([20.0]), dr[:1], orbit)).all()  # outside the orbit's span
    assert np.isnan(model.rtn_components(t, dr, None)).all()


def test_status_view_names_tasks_and_quality():
    st_ = decode_status(
        encode_status(
            {
                "t_sc_s": 5.0,
                "flags": 1 | 1 << 7,
                "orbit_quality": 1,
                "att_quality": 2,
                "peer0_id": 0x4A,
                "peer0_quality": 5,
                "task0_id": 3,
                "task0_state": 6,
                "task0_restarts": 4,
                "clock_utc_minus_sc_s": math.nan,
            }
        )
    )
    v = model.status_view(status=st_, counters={"bad_crc": 2})
    assert v["quality"] == {"orbit": "ok", "attitude": "behind", "partner 0x4A": "uncertain"}
    assert v["tasks"] == [{"name": "orbit_estimator", "state": "failed", "restarts": 4}]
    assert "orbit_valid" in v["flags"] and "clock_mapped" in v["flags"]
    assert v["utc_minus_sc_s"] is None and v["counters"]["stream_bad_crc"] == 2
    server.encode({"type": "status", "status": v})


def test_safe_file_refuses_everything_outside(tmp_path):
    root = tmp_path / "src"
    (root / "plots").mkdir(parents=True)
    (root / "orbit.csv").write_text("x\n")
    (root / "plots" / "a.png").write_bytes(b"png")
    (tmp_path / "secret.txt").write_text("secret")
    (root / "link_out").symlink_to(tmp_path / "secret.txt")
    (root / "link_in").symlink_to(root / "orbit.csv")
    assert server.safe_file(root, "orbit.csv") == (root / "orbit.csv").resolve()
    assert server.safe_file(root, "plots/a.png") is not None
    assert server.safe_file(root, "link_in") is not None
    for bad in (
        "../secret.txt",
        "plots/../../secret.txt",
        "/etc/passwd",
        "link_out",
        "plots",
        "",
        ".",
        "..\\secret.txt",
        "nul\0l",
        "missing.csv",
    ):
        assert server.safe_file(root, bad) is None, bad
    assert server.list_files(root) == ["orbit.csv", "plots/a.png"]  # link_out never listed


def test_only_what_the_listing_shows_is_served(tmp_path):
    """`/files/` served any regular file of the directory, hidden ones too (`.env`,
    `.git/config`), that the listing never showed: now exactly what it shows."""
    root = tmp_path / "src"
    (root / ".git").mkdir(parents=True)
    (root / "orbit.csv").write_text("x\n")
    (root / ".env").write_text("TOKEN=1\n")
    (root / ".hidden.csv").write_text("x\n")
    (root / ".git" / "config.txt").write_text("[core]\n")
    (root / "pygnc_config.toml").write_text("a = 1\n")
    (root / "alias.csv").symlink_to(root / ".hidden.csv")
    assert server.list_files(root) == ["orbit.csv"]
    assert server.offered(root, "orbit.csv") == (root / "orbit.csv").resolve()
    for hidden in (".env", ".hidden.csv", ".git/config.txt", "pygnc_config.toml", "alias.csv"):
        assert server.offered(root, hidden) is None, hidden
    assert server.offered(root, ".env", frozenset({"orbit.csv"})) is None


def test_open_source_says_what_it_cannot_use(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        sources.open_source(str(tmp_path / "nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="--kind batches"):
        sources.open_source(str(tmp_path / "empty"))
    assert isinstance(sources.open_source(str(tmp_path / "empty"), "batches"), sources.BatchSource)


def test_a_scenario_directory_is_refused_saying_to_replay_it(tmp_path):
    """A replay's input (sense.bin, range/) is no batch directory: refused, not an empty page."""
    from ground.__main__ import main

    d = tmp_path / "scenario"
    (d / "range").mkdir(parents=True)
    (d / "sense.bin").write_bytes(bytes(64))
    (d / "pygnc_status.bin").write_bytes(bytes(64))  # a .bin that is no batch file either
    for kind in ("auto", "batches"):
        with pytest.raises(ValueError, match=r"replay it first \(python -m ground replay"):
            sources.open_source(str(d), kind)
    assert main(["serve", str(d)]) == 2
    batch_file(d, 1, [("orbit", T0_SC_S, {"r_ecef_m": [7e6, 0, 0], "v_ecef_m_s": [0, 7e3, 0]})])
    assert isinstance(sources.open_source(str(d)), sources.BatchSource)  # downlinked batches beside it: served


def _serve_refused(*args) -> str:
    """``python -m ground serve ARGS`` as typed, refused: its one-line message."""
    p = subprocess.run(
        [sys.executable, "-m", "ground", "serve", *map(str, args), "--port", "0"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert p.returncode == 2 and p.stdout == "" and "Traceback" not in p.stderr, (p.returncode, p.stderr)
    assert len(p.stderr.splitlines()) == 1, p.stderr
    return p.stderr


def test_a_file_that_is_no_batch_file_is_refused(tmp_path):
    """``serve photo.jpg`` was taken for a batch source and offered its whole directory."""
    f = tmp_path / "photo.jpg"
    f.write_bytes(bytes(range(256)) * 4)
    for kind in ("auto", "batches"):
        assert "photo.jpg: not a batch file" in _serve_refused(f, "--kind", kind)


def test_a_batch_file_offers_only_itself_for_download(tmp_path):
    d = tmp_path / "home"
    d.mkdir()
    (d / "secrets.txt").write_text("not for the page")
    f = batch_file(d, 1, [("orbit", T0_SC_S, {"r_ecef_m": [7e6, 0, 0], "v_ecef_m_s": [0, 7e3, 0]})])
    srv = Server(str(f))
    try:
        msgs = asyncio.run(_ws_session(srv.url, 10.0, _has("hello", "snapshot")))
        assert {m["type"]: m for m in msgs}["hello"]["files"] == [f.name]
        with urllib.request.urlopen(srv.url + "files/" + f.name, timeout=10) as r:
            assert r.read() == f.read_bytes()
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(srv.url + "files/secrets.txt", timeout=10)
        assert e.value.code == 404
    finally:
        rc, out, err = srv.stop()
    assert rc == 0 and "Traceback" not in err, err


def test_a_downlink_directory_per_spacecraft_names_what_to_serve(tmp_path):
    """``serve downlink/`` with ``sc1/`` and ``sc2/`` of batch files (docs/uplink.md's layout)
    said "read 0 files" (--kind batches) or that it held no batch files."""
    d = tmp_path / "downlink"
    for sc in ("sc1", "sc2"):
        (d / sc).mkdir(parents=True)
        batch_file(d / sc, 1, [("orbit", T0_SC_S, {"r_ecef_m": [7e6, 0, 0], "v_ecef_m_s": [0, 7e3, 0]})])
    for kind in ("auto", "batches"):
        err = _serve_refused(d, "--kind", kind)
        assert "one per spacecraft (sc1/, sc2/): serve one at a time" in err, err
        assert f"python -m ground serve {d / 'sc1'}" in err
    assert isinstance(sources.open_source(str(d / "sc2")), sources.BatchSource)


def test_status_lists_problems_gaps_and_marks_cut_notes():
    v = model.status_view(
        problems=[f"p{k}" for k in range(model.MAX_PROBLEMS_LISTED + 3)],
        gaps=["g"],
        notes=[
            model.note_received({"estimator": "formation", "code": "c", "flags": 1, "text": "x" * 61 + "…"}),
            model.note_received({"estimator": "formation", "code": "c", "flags": 0, "text": "short"}),
        ],
    )
    assert v["problems"][0] == "p0" and len(v["problems"]) == model.MAX_PROBLEMS_LISTED
    assert v["problems_more"] == 3 and v["gaps"] == ["g"] and v["gaps_more"] == 0
    assert [n["cut"] for n in v["notes"]] == [True, False]
    gap = {"kind": "orbit", "key": None, "run": 1, "from_t_sc_s": 100.0, "gap_s": 600.0, "median_spacing_s": 60.0}
    assert model.gap_text(gap) == "gap: orbit run 1: 600 s without records from t_sc 100 (median spacing 60 s)"
    assert "1970-01-01T00:01:56Z" in model.gap_text(gap, lambda t: t + 16.0)


# --------------------------------------------------------------------------- sources
@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory):
    """The bundled sample replayed once (in-process, no plots)."""
    from ground.__main__ import main

    out = tmp_path_factory.mktemp("station") / "replay"
    assert main(["replay", str(SAMPLE), "--out", str(out), "--no-plots"]) == 0
    return out


def _messages(src) -> dict:
    return {m["type"]: m for m in src.current()}


def test_replay_source_serves_the_replay(replay_dir):
    src = sources.ReplaySource(replay_dir)
    m = _messages(src)
    orbit = tb.read_csv(replay_dir / "orbit.csv")
    s = m["snapshot"]["series"]["orbit"]
    assert m["snapshot"]["rows"]["orbit"] == orbit["t_sc_s"].size == sum(x is not None for x in s["t_sc_s"])
    assert src.time_scale == "utc" and m["source"]["state"] == "open"
    peers = set(s for s in m["snapshot"]["series"]["formation"])
    assert peers == {f"0x{int(p):02X}" for p in np.unique(tb.read_csv(replay_dir / "formation.csv")["peer_id"])}
    assert m["snapshot"]["series"]["residuals"], "range_residuals.csv is served"
    counters = m["status"]["status"]["counters"]
    assert counters["rows_orbit"] == orbit["t_sc_s"].size
    assert counters["handle_errors_formation"] == counters["handle_errors_orbit"] == 0
    src.check_s = 0.0
    assert src.poll() == []  # nothing changed: nothing sent


def test_batch_source_rereads_as_files_arrive(tmp_path):
    from pygnc.formats import batch as fmt

    d = tmp_path / "downlink"
    d.mkdir()
    src = sources.BatchSource(d)
    src.check_s = 0.0
    assert _messages(src)["snapshot"]["rows"]["orbit"] == 0
    orbit = fmt.KINDS_BY_NAME["orbit"]
    recs = b"".join(
        fmt.encode_record(
            orbit,
            T0_SC_S + 60.0 * k,
            {"r_ecef_m": [7e6, 0, 0], "v_ecef_m_s": [0, 7e3, 0], "sigma_r_m": [1, 1, 1], "sigma_v_m_s": [0.1] * 3},
        )
        for k in range(5)
    )
    hdr = fmt.encode_header(
        run=1,
        sequence=1,
        spacecraft_id=1,
        flags=fmt.FILE_CLOSED_STOP,
        t_first_sc_s=T0_SC_S,
        t_last_sc_s=T0_SC_S + 240.0,
        records=5,
    )
    (d / fmt.file_name(1)).write_bytes(hdr + recs + b"\xc7garbage")
    msgs = {m["type"]: m for m in src.poll()}
    assert msgs["snapshot"]["rows"]["orbit"] == 5
    assert src.time_scale == "spacecraft"  # no clock map downlinked
    assert msgs["status"]["status"]["counters"]["files"] == 1
    (d / "pygnc_status.bin").write_bytes(b"not a status")
    msgs = {m["type"]: m for m in src.poll()}
    assert "unreadable" in msgs["status"]["status"]["counters"]["status_file"]
    batch_file(
        d,
        3,
        [("orbit", T0_SC_S + 600.0 + 60.0 * k, {"r_ecef_m": [7e6, 0, 0], "v_ecef_m_s": [0, 7e3, 0]}) for k in range(3)],
    )
    status = {m["type"]: m for m in src.poll()}["status"]["status"]
    assert status["problems"] == [
        "batch_00000001.bin: 8 bytes skipped, 0 corrupt records, torn tail",
        "missing batch files (sequence numbers): 2",
    ]  # the text, not a count
    assert status["gaps"] and status["gaps"][0].startswith("gap: orbit run 1: 360 s without records")


# --------------------------------------------------------------------------- the server, as a process
def _get(url: str, path: str) -> tuple[int, bytes]:
    """GET *path* exactly as given (no client-side normalisation of ``..``)."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_server_refuses_paths_outside_its_source(replay_dir, tmp_path):
    (replay_dir / "escape").unlink(missing_ok=True)
    (replay_dir / "escape").symlink_to("/etc/passwd")
    srv = Server(str(replay_dir))
    try:
        assert srv.url.startswith("http://127.0.0.1:")
        code, body = _get(srv.url, "/files/orbit.csv")
        assert code == 200 and body.startswith(b"unix_time_s,")
        for path in (
            "/files/../../../../etc/passwd",
            "/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
            "/files/..%2f..%2f..%2fetc%2fpasswd",
            "/files//etc/passwd",
            "/files/escape",
            "/files/%2fetc%2fpasswd",
            "/static/../server.py",
            "/static/%2e%2e/server.py",
            "/static/..%2fserver.py",
            "/files/summary.json%00.png",
        ):
            code, body = _get(srv.url, path)
            assert code in (400, 403, 404), (path, code)
            assert b"root:" not in body and b"aiohttp" not in body, path
        code, body = _get(srv.url, "/static/vendor/uPlot.iife.min.js")
        assert code == 200 and len(body) > 40_000
        api = json.loads(urllib.request.urlopen(srv.url + "api/current", timeout=10).read())
        assert [m["type"] for m in api][:2] == ["hello", "snapshot"]
        assert "escape" not in api[0]["files"] and "orbit.csv" in api[0]["files"]
    finally:
        rc, out, err = srv.stop()
        (replay_dir / "escape").unlink()
    assert rc == 0 and "Traceback" not in err


def test_cli_errors(tmp_path):
    from ground.__main__ import main

    assert main(["serve", str(tmp_path / "nothing")]) == 2
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        (tmp_path / "e").mkdir()
        assert main(["serve", str(tmp_path / "e"), "--kind", "batches", "--port", str(busy.getsockname()[1])]) == 1
    finally:
        busy.close()


async def _ws_session(url: str, seconds: float = 1.0, until=None) -> list[dict]:
    """The messages a page gets in *seconds* (or until *until(messages)* holds)."""
    import aiohttp

    out = []
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url.replace("http", "ws") + "ws")
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            try:
                msg = await asyncio.wait_for(ws.receive(), 0.5)
            except TimeoutError:
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            out.append(json.loads(msg.data))
            if until is not None and until(out):
                break
        await ws.close()
    return out


def _has(*types):
    return lambda msgs: set(types) <= {m["type"] for m in msgs}


def _current(url: str) -> dict:
    """The server's latest message of each type (``api/current``), by type."""
    with urllib.request.urlopen(url + "api/current", timeout=10) as r:
        return {m["type"]: m for m in json.loads(r.read())}


def _until(url: str, pred, timeout_s: float = 15.0) -> dict:
    """:func:`_current` once *pred* holds of it, or at *timeout_s*."""
    t_end = time.monotonic() + timeout_s
    while not pred(c := _current(url)) and time.monotonic() < t_end:
        time.sleep(0.05)
    return c


def _wait_open(url: str) -> None:
    """Wait until the server's stream source has opened its port: pyserial's open discards
    what is waiting there (as a serial port drops what arrives while nobody has it open), so
    a test writes its frames only after that."""
    state = _until(url, lambda c: c.get("source", {}).get("state") == "open", 120.0).get("source")
    assert state and state["state"] == "open", state


def _ws_vanish(url: str) -> bytes:
    """Open a WebSocket by hand, read the start of the stream, and drop the TCP connection
    without a close frame (a browser tab killed mid-stream)."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(
        f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    data = s.recv(4096)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
    s.close()
    return data


def test_live_source_survives_bad_bytes_disconnects_and_unplugging():
    dev = FakePygnc()
    srv = Server(dev.path)
    try:
        _wait_open(srv.url)
        dev.hello()
        dev.status(T0_SC_S)
        t = T0_SC_S
        for _ in range(5):
            dev.estimates(t)
            t += 1.0
        # corrupt frames, garbage, an estimate that is not a record, a status of the wrong size
        dev.raw(b"$EST,1,AAAA*00000000\n\x00\xff\xfe garbage\n$STS,9,QUJD*DEADBEEF\n")
        dev.send(fs.ESTIMATE, b"\xc7\x04")
        dev.send(fs.STATUS_FILE, b"short")
        dev.send(fs.HELLO_TAG, bytes(23))  # a hello of another length (a newer protocol)
        assert _ws_vanish(srv.url).startswith(b"HTTP/1.1 101")
        for _ in range(5):
            dev.estimates(t)
            t += 1.0
        t_end = time.monotonic() + 120.0  # (a page gets the state of the source's last poll, every 0.2 s; a
        while True:  # busy machine's server can be seconds behind the writes: a deadline, not a count of polls)
            msgs = asyncio.run(_ws_session(srv.url, 5.0, _has("snapshot", "status", "source")))
            by = {m["type"]: m for m in msgs}
            if by["snapshot"]["rows"]["orbit"] == 10 or time.monotonic() > t_end:
                break
            time.sleep(0.1)
        assert by["snapshot"]["rows"]["orbit"] == 10
        counters = by["status"]["status"]["counters"]
        assert counters["station_frame_errors"] >= 2 and counters["station_bad_records"] >= 3
        dev.close()  # unplugged: a pseudo-terminal that closed is not reopened (its number is reused)
        t_end = time.monotonic() + 120.0
        while True:
            msgs = asyncio.run(_ws_session(srv.url, 5.0, _has("snapshot", "status", "source")))
            if [m for m in msgs if m["type"] == "source"][-1]["state"] == "closed" or time.monotonic() > t_end:
                break
            time.sleep(0.1)
        assert [m for m in msgs if m["type"] == "source"][-1]["state"] == "closed"
        assert {m["type"]: m for m in msgs}["snapshot"]["rows"]["orbit"] == 10  # nothing lost
    finally:
        rc, out, err = srv.stop()
    assert rc == 0 and "Traceback" not in err, err


def test_a_pseudo_terminal_that_went_away_is_not_reopened_when_its_number_comes_back():
    """``serve /dev/pts/N`` after the host's tap ended reopened the path every second, and
    read the next terminal given that number - another user's.  Now the source closes, says
    so, and never opens the path again, whoever owns what is there."""
    import psutil

    def until(pred, timeout_s=15.0) -> dict:
        return _until(srv.url, pred, timeout_s)

    dev = FakePygnc()
    path = dev.path
    srv = Server(path)
    others = []
    try:
        _wait_open(srv.url)
        dev.hello()
        dev.estimates(T0_SC_S)
        assert until(lambda c: c["snapshot"]["rows"]["orbit"] == 1)["snapshot"]["rows"]["orbit"] == 1
        dev.close()
        state = until(lambda c: c["source"]["state"] == "closed")["source"]
        assert state["state"] == "closed" and "pseudo-terminal" in state["detail"], state
        for _ in range(64):  # the next terminals opened on this machine: one gets the number back
            others.append(FakePygnc())
            if others[-1].path == path:
                break
        for o in others:
            o.hello()
            o.estimates(T0_SC_S + 1.0)
        t_end = time.monotonic() + 3 * sources.REOPEN_S  # the old code reopened within REOPEN_S
        while time.monotonic() < t_end:
            assert _current(srv.url)["snapshot"]["rows"]["orbit"] == 1
            assert path not in [f.path for f in psutil.Process(srv.proc.pid).open_files()]
            time.sleep(0.1)
    finally:
        for o in others:
            o.close()
        rc, out, err = srv.stop()
    assert rc == 0 and "Traceback" not in err, err
    assert f"ground serve: {path}: lost (" in err and "not reopened" in err


def test_a_local_port_is_reopened_only_as_the_same_device(tmp_path):
    """The decision behind the reopen: the path names the same device (number and owner)
    again - reopen; another device - never; nothing yet - wait."""
    link = tmp_path / "ttyX"
    link.symlink_to("/dev/null")
    st = os.stat(link)
    first = sources.DeviceIdentity(st.st_rdev, st.st_uid)
    assert not first.pseudo_terminal
    assert first.not_back(str(link)) is None
    link.unlink()
    assert first.not_back(str(link)) is None  # unplugged: wait for it
    link.symlink_to("/dev/zero")
    assert "now another device (device 1:5" in first.not_back(str(link))
    link.unlink()
    link.write_bytes(b"")
    assert "not a character device" in first.not_back(str(link))
    master, slave = os.openpty()
    try:
        st = os.fstat(slave)
        assert sources.DeviceIdentity(st.st_rdev, st.st_uid).pseudo_terminal
    finally:
        os.close(master)
        os.close(slave)


def _established(pid: int) -> int:
    import psutil

    return sum(c.status == psutil.CONN_ESTABLISHED for c in psutil.Process(pid).net_connections("tcp"))


def test_stalled_pages_are_dropped_while_the_source_is_idle(replay_dir):
    """Pages that never read, on a source with nothing new to send: reset within
    SEND_TIMEOUT_S (+ the watchdog's period), what was queued for them freed; a page that
    reads stays."""
    srv = Server(str(replay_dir))
    stalled = []
    try:
        stalled = [stalled_client(srv.url, rcvbuf=4096) for _ in range(4)]
        msgs = asyncio.run(_ws_session(srv.url, server.SEND_TIMEOUT_S + 3 * server.WATCHDOG_S + 1.0))
        assert {"hello", "snapshot", "status", "source"} <= {m["type"] for m in msgs}  # the reading page
        for s in stalled:  # reset, not closed politely: nothing left queued for them
            with pytest.raises(ConnectionResetError):
                while s.recv(1 << 20):
                    pass
        t_end = time.monotonic() + 5
        while _established(srv.proc.pid) and time.monotonic() < t_end:
            time.sleep(0.1)
        assert _established(srv.proc.pid) == 0
    finally:
        for s in stalled:
            s.close()
        rc, out, err = srv.stop()
    assert rc == 0 and "Traceback" not in err, err


def test_bind_to_every_interface_prints_a_url_that_works(replay_dir):
    lines = cli.listen_lines("0.0.0.0", 8765)
    assert lines[0].split()[:2] == ["open", "http://127.0.0.1:8765/"]
    assert "every interface (0.0.0.0)" in lines[1] and "no login" in lines[2]
    assert cli.listen_lines("::", 80)[0].split()[1] == "http://[::1]:80/"
    assert cli.listen_lines("127.0.0.1", 80) == ["  open http://127.0.0.1:80/   (Ctrl-C stops)"]
    srv = Server(str(replay_dir), "--bind", "0.0.0.0")
    try:
        assert srv.url.startswith("http://127.0.0.1:") and "0.0.0.0:" not in srv.url
        assert "listening on every interface (0.0.0.0)" in srv.proc.stdout.readline()
        assert urllib.request.urlopen(srv.url, timeout=10).status == 200
    finally:
        rc, out, err = srv.stop()
    assert rc == 0


def test_a_second_interrupt_during_the_stop_is_quiet(replay_dir):
    """Ctrl-C twice (as `timeout -s INT` after a Ctrl-C, or an impatient operator), the second
    while the server stops (here a source that takes a second to close, as a serial port's
    reader may): no traceback, the stop completes, the exit status says it was interrupted."""
    script = (
        "import sys, time\n"
        "from ground.station import sources\n"
        "sources.ReplaySource.close = lambda self: time.sleep(1.0)\n"
        "from ground.__main__ import main\n"
        f"sys.exit(main(['serve', {str(replay_dir)!r}, '--port', '0']))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert "open http://" in proc.stdout.readline() + proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert proc.returncode == 128 + signal.SIGINT and "SIGINT again during the stop" in out


def test_host_tap_copies_pygnc_frames_and_ranges():
    """The host emulator's --tap: what pygnc sends and the RNG frames the host sends."""
    import serial

    from ground.host.session import ShellSession
    from ground.host.tap import Tap

    pi = FakePygnc()
    link = serial.serial_for_url(pi.path, timeout=0.1)
    session = ShellSession(link)
    session.tap = tap = Tap()
    reader = serial.serial_for_url(tap.path, timeout=0.5)
    try:
        pi.hello()
        pi.estimates(T0_SC_S)
        t_end = time.monotonic() + 5
        while len(session.received) < 4 and time.monotonic() < t_end:
            session.pump(0.1)
        session.send_frame(fs.RANGE, 1, b"\x4a" + bytes(11))
        session.send_frame(fs.SENSOR, 2, bytes(30))  # sensor data is not copied
        got = fs.FrameReader(fs.PYGNC_TAGS | {fs.RANGE}).feed(reader.read(8192))
        assert [f.tag for f in got] == [fs.HELLO_TAG, fs.ESTIMATE, fs.ESTIMATE, fs.ESTIMATE, fs.RANGE]
    finally:
        reader.close()
        link.close()
        tap.close()
        pi.close()
    tap.write(b"after close")  # never raises


# --------------------------------------------------------------------------- the page in Chromium
def _pytest_without_chromium(tmp_path, **env_extra) -> subprocess.CompletedProcess:
    """One browser test in a pytest of its own, on a PATH with no Chromium and a fake apt-get
    that installs nothing (it says what it was asked)."""
    import os
    import shutil

    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    if not (bindir / "bash").exists():
        (bindir / "bash").symlink_to(shutil.which("bash"))
        (bindir / "apt-get").write_text('#!/bin/sh\necho "fake apt-get $*"\n')
        (bindir / "apt-get").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYGNC_NO_BROWSER_INSTALL"}
    env.update(PATH=str(bindir), PYGNC_TEST_ARTIFACTS=str(tmp_path / "artifacts"), **env_extra)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "tests/test_station.py",
            "-k",
            "test_page_shows_a_replay",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_the_browser_install_is_said_logged_and_can_be_refused(tmp_path):
    import os

    if os.geteuid() == 0:  # only root installs: the terminal says what, why and where the log is
        p = _pytest_without_chromium(tmp_path)
        log = tmp_path / "artifacts" / "chromium-install.log"
        assert "installing Debian's chromium package in the background" in p.stdout, p.stdout
        assert f"log: {log}" in p.stdout and "PYGNC_NO_BROWSER_INSTALL=1" in p.stdout
        assert "fake apt-get install -y -q --no-install-recommends chromium" in log.read_text()
        assert "1 skipped" in p.stdout and "chromium install failed" in p.stdout  # fake: nothing installed
    p = _pytest_without_chromium(tmp_path, PYGNC_NO_BROWSER_INSTALL="1")
    assert "installing" not in p.stdout and "1 skipped" in p.stdout, p.stdout
    assert (
        "PYGNC_NO_BROWSER_INSTALL is set so none was installed; to run the browser tests: apt-get install"
        in " ".join(p.stdout.split())
    )


@pytest.fixture(scope="module")
def browser(pytestconfig):
    path = chromium(terminal_line(pytestconfig))
    if path is None:
        pytest.skip(no_browser_reason())
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield b
        b.close()


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1300, "height": 1700})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.goto(url)
    return page, errors


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_page_shows_a_replay(browser, replay_dir):
    orbit = tb.read_csv(replay_dir / "orbit.csv")
    form = tb.read_csv(replay_dir / "formation.csv")
    srv = Server(str(replay_dir))
    try:
        page, errors = _open(browser, srv.url)
        page.wait_for_function(
            f"document.getElementById('orbit-points').textContent === '{orbit['t_sc_s'].size}'", timeout=20_000
        )
        page.wait_for_function("window.__station.redraws > 0 && window.__station.byType.status > 0")
        lon, lat, _ = model.geodetic_deg(np.array([[orbit[f"{a}_ecef_m"][-1] for a in "xyz"]]))[0]
        assert page.inner_text("#orbit-lat") == f"{lat:.2f}" and page.inner_text("#orbit-lon") == f"{lon:.2f}"
        assert page.inner_text("#last-utc").startswith(str(orbit["utc"][-1])[:10])
        assert page.inner_text("#source-kind") == "replay"
        peer = f"0x{int(form['peer_id'][-1]):02X}"
        li = page.inner_text(f"#peer-{peer}")
        # the sample's 5 minutes of ranges never fill the acquisition window: the partner's rows
        # are the prior's placeholder, said so and not drawn as an estimate
        assert set(form["quality"]) == {"acquiring"}
        assert (
            li.startswith(f"partner {peer} (acquiring): no estimate yet") and f"· {form['t_sc_s'].size} estimates" in li
        )
        dist = page.evaluate(_PLOT_JS, "peerDist")["data"][1:]
        assert dist and not [v for v in sum(dist, []) if isinstance(v, (int, float))]
        assert int(page.inner_text("#res-points")) == tb.read_csv(replay_dir / "range_residuals.csv")["t_sc_s"].size
        assert "orbit.csv" in page.inner_text("#files")
        assert (
            page.locator("#plot-orbit-sigma canvas").count() >= 1 and page.locator("#plot-att-bias canvas").count() >= 1
        )
        assert page.locator("#counters tr[data-counter='rows_orbit'] td").nth(1).inner_text() == str(
            orbit["t_sc_s"].size
        )
        _shot(page, "station_replay.png")
        assert errors == []
    finally:
        srv.stop()


def test_page_follows_a_live_source_with_gaps(browser):
    dev = FakePygnc()
    srv = Server(dev.path)
    try:
        _wait_open(srv.url)
        page, errors = _open(browser, srv.url)
        page.wait_for_function("window.__station.connected && window.__station.byType.source > 0", timeout=20_000)
        dev.hello()
        t = T0_SC_S
        for _ in range(20):
            dev.estimates(t)
            t += 1.0
        page.wait_for_function("document.getElementById('orbit-points').textContent === '20'", timeout=60_000)
        assert "SC " in page.inner_text("#last-utc")  # no clock map yet: spacecraft time, said so
        assert "spacecraft clock" in page.inner_text("#time-scale")
        dev.status(t)  # a clock map: times become UTC
        dev.range(t - 5.0, 1000.0 + 0.5 + 0.3)  # 0.3 m residual after the 0.5 m bias
        t += 600.0  # a 10-minute outage
        for _ in range(10):
            dev.estimates(t)
            t += 1.0
            time.sleep(0.05)
        page.wait_for_function("document.getElementById('orbit-points').textContent === '30'", timeout=10_000)
        page.wait_for_function("document.querySelectorAll('#tasks tbody tr').length === 2")
        utc = page.inner_text("#last-utc")
        assert utc == time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(t - 1.0 + UTC_MINUS_SC_S)), utc
        assert page.inner_text("#time-scale") == ""
        rows = page.locator("#tasks tbody tr")
        assert rows.nth(1).inner_text().split() == ["orbit_estimator", "running", "1"]
        assert page.inner_text(f"#peer-0x{PEER:02X}").startswith("partner 0x4A (ok): |Δr| 1000.0 m")
        rtn = page.evaluate(
            f"['radial_m', 'along_m', 'cross_m'].map(k => window.__stationState.formation['0x{PEER:02X}'][k].at(-1))"
        )
        assert math.hypot(*rtn) == pytest.approx(1000.0, abs=0.01) and abs(rtn[2]) < 1e-6  # equatorial orbit
        page.wait_for_function("document.getElementById('res-points').textContent === '1'")
        # the outage is a gap in what the page draws: a row of nulls in the orbit series
        lat = page.evaluate("window.__stationState.orbit.lat_deg")
        assert lat.count(None) == 1 and len(lat) == 31
        res = page.evaluate("window.__stationState.residuals['0x4A'].residual_m")
        assert res[0] == pytest.approx(0.3, abs=0.2)  # raw range resolution ~0.1 m
        _shot(page, "station_live.png")
        assert errors == []
    finally:
        srv.stop()
        dev.close()


@pytest.fixture(scope="module")
def two_partner_replay(tmp_path_factory):
    """The 24-h two-partner day's settings (data/scenarios/formation_24h.toml), its first 15
    minutes simulated and replayed once."""
    from ground.__main__ import main

    d = tmp_path_factory.mktemp("two_partners")
    assert (
        main(
            [
                "simulate",
                str(d / "scenario"),
                "--settings",
                str(REPO / "data" / "scenarios" / "formation_24h.toml"),
                "--duration",
                "15m",
                "--quiet",
            ]
        )
        == 0
    )
    # (the partners' relayed fixes used: both are estimated from the first minutes, where
    # range-only they would still be acquiring - placeholders the page does not draw)
    (d / "peer.toml").write_text('range_gps_source = "peer"\n')
    cmd = ["replay", str(d / "scenario"), "--out", str(d / "replay"), "--config", str(d / "peer.toml")]
    assert main([*cmd, "--no-plots", "--quiet"]) == 0
    # the second partner's estimates at every other sample only: not all at the first's times
    f = tb.read_csv(d / "replay" / "formation.csv")
    second = f["peer_id"] == max(f["peer_id"])
    keep = ~second | (np.cumsum(second) % 2 == 0)
    tb.write_csv({k: v[keep] for k, v in f.items()}, d / "replay" / "formation.csv")
    return d / "replay"


_PLOT_JS = """(name) => {
  const u = window.__stationPlots[name].u;
  if (!u) return null;
  const text = (v) => v === undefined ? "undefined" : v === null ? null : Number.isNaN(v) ? "NaN" : v;
  return {data: u.data.map((s) => Array.from(s, text)),
          scales: Object.fromEntries(Object.entries(u.scales).map(([k, s]) => [k, [s.min, s.max, s.distr]])),
          xticks: u.axes[0]._values};
}"""

_INK_JS = """([id, rgb]) => {   // pixels of the plot's canvas in a series' colour
  const c = document.querySelector("#" + id + " canvas"), d = c.getContext("2d").getImageData(0, 0, c.width,
  c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4)
    if (Math.abs(d[i] - rgb[0]) < 30 && Math.abs(d[i + 1] - rgb[1]) < 30 && Math.abs(d[i + 2] - rgb[2]) < 30 && d[i
    + 3] > 200) n++;
  return n;
}"""
_BLUE, _RED = (0x1F, 0x77, 0xB4), (0xD6, 0x27, 0x28)  # app.js COLORS[0], COLORS[1]


def test_page_with_two_partners_draws_every_plot_on_utc_axes(browser, two_partner_replay):
    """Two partners whose estimates are not all at the same times: the line-of-sight 3σ plot
    is drawn (no NaN), the attitude 3σ is on a log axis, time axes read 24-hour UTC with
    seconds, and a replay's notes are shown whole."""
    form = tb.read_csv(two_partner_replay / "formation.csv")
    peers = sorted({int(p) for p in form["peer_id"]})
    assert len(peers) == 2
    t = {p: set(form["unix_time_s"][form["peer_id"] == p].tolist()) for p in peers}
    assert t[peers[0]] ^ t[peers[1]], "the partners must have estimates at different times"
    srv = Server(str(two_partner_replay))
    try:
        page, errors = _open(browser, srv.url)
        page.wait_for_function(
            "window.__station.redraws > 0 && window.__stationPlots.peerLos.u !== null"
            " && window.__stationPlots.attSigma.u !== null",
            timeout=20_000,
        )
        page.wait_for_timeout(500)
        los = page.evaluate(_PLOT_JS, "peerLos")
        assert len(los["data"]) == 5 and "NaN" not in sum(los["data"], [])  # x, then each partner ok and not ok
        assert "undefined" in sum(los["data"][1:], [])  # uPlot.join's "no row here" kept as it is
        lo, hi, _ = los["scales"]["y"]
        assert lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi) and hi > lo
        assert page.evaluate(_INK_JS, ["plot-peer-los", _BLUE]) > 50
        assert page.evaluate(_INK_JS, ["plot-peer-los", _RED]) > 50
        att = page.evaluate(_PLOT_JS, "attSigma")
        lo, hi, distr = att["scales"]["y"]
        assert distr == 3 and 0 < lo < hi  # log axis
        sig = [v for v in sum(att["data"][1:], []) if isinstance(v, (int, float))]
        assert lo <= min(sig) and max(sig) <= hi and max(sig) / min(sig) > 10
        for name in ("attSigma", "peerLos", "orbitSigma"):
            ticks = [x for x in page.evaluate(_PLOT_JS, name)["xticks"] if x]
            assert ticks and all(re.fullmatch(r"\d\d:\d\d:\d\d(\n\d{4}-\d\d-\d\d)?", x) for x in ticks), ticks
            assert re.search(r"\n2025-06-21$", ticks[0]), ticks  # the date on the first tick
        summary = json.loads((two_partner_replay / "summary.json").read_text())
        notes = page.inner_text("#notes")
        for n in summary["notes"]:
            assert n["text"] in notes  # whole, wrapped, never cut
        assert "…" not in notes
        _shot(page, "station_two_partners.png")
        assert errors == []
    finally:
        srv.stop()


def _orbit(t: float) -> tuple[str, float, dict]:
    return (
        "orbit",
        t,
        {"r_ecef_m": [7e6, 0, 0], "v_ecef_m_s": [0, 7e3, 0], "sigma_r_m": [1, 1, 1], "sigma_v_m_s": [0.1] * 3},
    )


def test_page_shows_problems_gaps_whole_words_and_arriving_files(browser, tmp_path):
    """Downlinked batch files: a missing file and a gap are shown as text, a note cut at 64
    bytes on board ends at a whole word (the text as received in its tooltip), and the Files
    panel lists files as they arrive."""
    d = tmp_path / "downlink"
    d.mkdir()
    long = "peer 0x4B: the window's ranges fit 4 orbits about as well (at least the two sides of the plane)"
    note = {"estimator": "formation", "code": "range_only_mirror", "peer_id": 0x4B, "text": long}
    batch_file(d, 1, [_orbit(T0_SC_S + 60.0 * k) for k in range(4)])
    batch_file(
        d,
        2,
        [_orbit(T0_SC_S + 240.0 + 60.0 * k) for k in range(3)]
        + [("note", T0_SC_S + 300.0, fmt.KINDS_BY_NAME["note"].encode("estimator_note", note))],
    )
    batch_file(d, 3, [_orbit(T0_SC_S + 2000.0 + 60.0 * k) for k in range(3)])
    srv = Server(str(d))
    try:
        page, errors = _open(browser, srv.url)
        page.wait_for_function("document.getElementById('orbit-points').textContent === '10'", timeout=20_000)
        page.wait_for_function("document.querySelectorAll('#problems li').length > 0")
        assert page.is_visible("#problems")
        assert page.inner_text("#problems") == (
            "gap: orbit run 1: 1640 s without records from t_sc 742000360 (median spacing 60 s)"
        )  # no clock map: no UTC
        note = page.locator("#notes li.cut")
        assert note.count() == 1
        received = note.get_attribute("title").split(" (the note as downlinked")[0]
        assert len(received.encode()) <= 64 and received.endswith("…") and long.startswith(received[:-1])
        shown = note.inner_text()
        assert shown == "formation: peer 0x4B: the window's ranges fit 4 orbits about as well … [range_only_mirror]"
        assert "batch_00000003.bin" in page.inner_text("#files")
        batch_file(d, 5, [_orbit(T0_SC_S + 2180.0 + 60.0 * k) for k in range(3)])  # file 4 never arrives
        page.wait_for_function(
            "document.getElementById('files').textContent.includes('batch_00000005.bin')", timeout=10_000
        )
        page.wait_for_function(
            "document.getElementById('problems').textContent.includes('missing batch files (sequence numbers): 4')",
            timeout=10_000,
        )
        _shot(page, "station_batches.png")
        assert errors == []
    finally:
        srv.stop()


# --------------------------------------------------------------------------- what the spacecraft knows
def _pass_with_two_partners(d: Path) -> dict:
    """Downlinked batch files of two partners as the flight encodes them: 0x4B acquiring (the
    prior's placeholder), then ok, then ambiguous with two kept orbits; 0x4C ok and then
    uncertain, 4500 estimates (more than a snapshot keeps); the orbit uncertain for a while.
    Returns the spans and counts to expect."""
    kinds = fmt.KINDS_BY_NAME
    recs = []
    t0 = T0_SC_S
    for k in range(4500):
        t = t0 + k
        if k % 10 == 0:
            bad = 1000 <= k < 2000
            o = {
                "t_sc_s": t,
                "r_ecef_m": [7e6, 0.0, 0.0],
                "v_ecef_m_s": [0.0, 7.5e3, 0.0],
                "sigma_r_m": [900.0 if bad else 3.0] * 3,
                "sigma_v_m_s": [0.1] * 3,
                "quality": "uncertain" if bad else "ok",
            }
            recs.append(("orbit", t, kinds["orbit"].encode("orbit_estimate", o)))
        c = {
            "t_sc_s": t,
            "peer_id": 0x4C,
            "dr_ecef_m": [0.0, -6000.0 - k * 0.01, 0.0],
            "dv_ecef_m_s": [0.0, 0.0, 0.0],
            "sigma_dr_m": [2.0] * 3,
            "sigma_dv_m_s": [0.01] * 3,
            "quality": "uncertain" if k >= 4000 else "ok",
        }
        recs.append(("formation", t, kinds["formation"].encode("formation_estimate", c)))
        if k % 60 == 0:
            phase = "acquiring" if k < 1500 else "ok" if k < 3000 else "ambiguous"
            ws = [0.6, 0.4] if phase == "ambiguous" else [0.8, 0.2] if phase == "acquiring" else [1.0]
            hyps = [[0.0, 4000.0, 300.0], [0.0, 4000.0, -300.0]][: len(ws)]
            b = {
                "t_sc_s": t,
                "peer_id": 0x4B,
                "dr_ecef_m": [0.0, 4000.0, 0.0],
                "dv_ecef_m_s": [0.0, 0.0, 0.0],
                "sigma_dr_m": [200.0 if phase == "ambiguous" else 3.0] * 3,
                "sigma_dv_m_s": [0.1] * 3,
                "acquiring": phase == "acquiring",
                "ambiguous": phase == "ambiguous",
                "ambiguity_m": 600.0 if phase == "ambiguous" else 0.0,
                "quality": phase,
                "hyp_weights": ws,
                "hyp_dr_ecef_m": hyps,
                "hyp_dv_ecef_m_s": [[0.0] * 3] * len(ws),
                "hyp_sigma_dr_m": [[3.0] * 3] * len(ws),
                "hyp_sigma_dv_m_s": [[0.01] * 3] * len(ws),
            }
            recs.append(("formation", t, kinds["formation"].encode("formation_estimate", b)))
            for v in kinds["partner_orbit"].encode("formation_estimate", b) or ():
                recs.append(("partner_orbit", t, v))
    for j in range(0, len(recs), 2000):
        batch_file(d, j // 2000 + 1, recs[j : j + 2000])
    return {"orbit_bad": (t0 + 1000.0, t0 + 1990.0), "rows_4c": 4500, "rows_4b": 75}


def test_page_draws_quality_partners_kept_orbits_and_real_counts(browser, tmp_path):
    """Issue 43 item 5, on the page: an ok estimate is drawn bold, an ambiguous or uncertain
    one faint; a partner still acquiring is not drawn (its placeholder is no estimate); each
    partner has its own colour and dash; each kept orbit is drawn (dots) and listed; the
    counts are the source's, not a snapshot's thinned rows; the orbit's uncertain span is
    shaded; a partner reads 0x4B everywhere."""
    d = tmp_path / "downlink"
    d.mkdir()
    want = _pass_with_two_partners(d)
    srv = Server(str(d))
    try:
        page, errors = _open(browser, srv.url)
        page.wait_for_function(
            "document.querySelectorAll('#peer-list li').length === 2 && window.__stationPlots.peerDist.u !== null",
            timeout=30_000,
        )
        page.wait_for_timeout(500)
        assert page.evaluate("window.__stationState.peers") == ["0x4B", "0x4C"]
        li_b, li_c = page.inner_text("#peer-0x4B"), page.inner_text("#peer-0x4C")
        # the real counts, though the snapshot thinned 0x4C's series
        assert page.evaluate("window.__stationState.formation['0x4C'].t_sc_s.length") < want["rows_4c"]
        assert f"· {want['rows_4c']} estimates" in li_c and f"· {want['rows_4b']} estimates" in li_b
        assert li_c.startswith("partner 0x4C (uncertain): |Δr|")
        assert li_b.startswith("partner 0x4B (ambiguous): |Δr|")
        assert "kept orbits at" in li_b and "#0 w 0.600" in li_b and "#1 w 0.400" in li_b
        style = page.evaluate(
            """() => window.__stationPlots.peerDist.u.series.slice(1).map((s) =>
                   [s.label, typeof s.stroke === "function" ? s.stroke() : s.stroke, s.dash || [], s.width])"""
        )
        labels = [s[0] for s in style]
        assert labels[:4] == ["0x4B", "0x4B (not ok)", "0x4C", "0x4C (not ok)"]
        assert labels[4:] == ["0x4B kept orbit 0", "0x4B kept orbit 1"]
        (lb, sb, db, wb), (_, sb2, db2, wb2), (_, sc, dc, wc), (_, sc2, dc2, _) = style[:4]
        assert sb == "#1f77b4" and sc == "#d62728"  # a colour each
        assert db != dc and db == db2 and dc == dc2  # a dash each, ok or not
        assert wb > wb2 and sb2.startswith("rgba(31, 119, 180, 0.35")  # not ok: the colour, faint and thin
        data = page.evaluate(_PLOT_JS, "peerDist")["data"]
        x, ok_b, bad_b = data[0], data[1], data[2]
        t0 = page.evaluate("window.__stationState.formation['0x4B'].t_unix_s[0]")
        num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
        acq = [i for i, t in enumerate(x) if t is not None and t0 <= t < t0 + 1500]
        okr = [i for i, t in enumerate(x) if t is not None and t0 + 1500 <= t < t0 + 3000 and num(ok_b[i])]
        amb = [i for i, t in enumerate(x) if t is not None and t >= t0 + 3000 and num(bad_b[i])]
        assert acq and not [i for i in acq if num(ok_b[i]) or num(bad_b[i])]  # acquiring: not drawn
        assert len(okr) == 25 and not [i for i in okr if num(bad_b[i])]  # ok: the bold series only
        assert len(amb) == 25 and not [i for i in amb if num(ok_b[i])]  # ambiguous: the faint one only
        kept0, kept1 = data[5], data[6]
        assert [i for i, v in enumerate(kept0) if num(v)] == amb == [i for i, v in enumerate(kept1) if num(v)]
        bands = page.evaluate("window.__stationPlots.orbitSigma.u.__bands")
        t_unix0 = page.evaluate("window.__stationState.orbit.t_unix_s[0]")
        (b0, b1), *rest = bands
        assert not rest and (b0 - t_unix0, b1 - t_unix0) == pytest.approx((1000.0, 1990.0))
        assert "partner 0x4B" in page.inner_text("#peer-list") and "0x4b" not in page.content()
        _shot(page, "station_quality.png")
        assert errors == []
    finally:
        srv.stop()


#: Every drawn plot's axes, as uPlot laid them out: what is wrong with their labels.
_AXIS_PROBLEMS_JS = """() => {
  const out = [], dpr = devicePixelRatio;
  for (const [name, p] of Object.entries(window.__stationPlots)) {
    const u = p.u;
    if (!u) continue;
    u.axes.forEach((a, i) => {
      if (!a._show || !a._values) return;
      u.ctx.font = a.font[0];
      const width = (v) => Math.max(...String(v).split("\\n").map((s) => u.ctx.measureText(s).width)) / dpr;
      const shown = a._values.map((v, k) => [v, a._splits[k]])
        .filter(([v]) => v !== null && v !== undefined && v !== "");
      if (i > 0) {   // a y axis: its labels clear of its unit, none repeated
        const widest = Math.max(0, ...shown.map(([v]) => width(v)));
        if (a._size < a.ticks.size + a.gap + widest)
          out.push(`${name} y${i}: ${a._size} px for labels ${widest.toFixed(0)} px wide`);
        const texts = shown.map(([v]) => String(v));
        if (new Set(texts).size !== texts.length) out.push(`${name} y${i}: repeated labels ${texts.join(" | ")}`);
        return;
      }
      let right = -Infinity;   // the time axis: every label inside the canvas, none on another
      for (const [v, t] of shown) {
        const x = u.valToPos(t, "x") + u.bbox.left / dpr, half = width(v) / 2;
        if (x - half < 0 || x + half > u.width)
          out.push(`${name}: time label ${v} cut at ${(x - half).toFixed(0)}..${(x + half).toFixed(0)} of ${u.width}`);
        if (x - half < right + 2) out.push(`${name}: time label ${v} touches the one before`);
        right = x + half;
      }
    });
  }
  return out;
}"""


def test_page_axis_labels_are_clear_of_units_distinct_and_inside(browser):
    """Six-character tick labels ran into the axis's unit, the orbit plot's m/s axis read
    "0.053 0.053" (3 decimals at most) and time labels touched or were cut at the edge:
    checked on every plot, with values that need wide labels and many decimals."""
    dev = FakePygnc()
    srv = Server(dev.path)
    try:
        _wait_open(srv.url)
        page, errors = _open(browser, srv.url)
        page.wait_for_function("window.__station.connected && window.__station.byType.source > 0", timeout=20_000)
        dev.hello()
        dev.status(T0_SC_S)
        n = 300
        w = 2 * math.pi / 5677.0
        for k in range(n):
            t = T0_SC_S + k
            a = w * k
            r = [R_ORBIT_M * math.cos(a), R_ORBIT_M * math.sin(a), 0.0]
            v = [-R_ORBIT_M * w * math.sin(a), R_ORBIT_M * w * math.cos(a), 0.0]
            sig_v = 0.0101 + 1e-7 * k  # 3-sigma 0.05248 .. 0.05264 m/s
            dev.record(
                "orbit", t, {"r_ecef_m": r, "v_ecef_m_s": v, "sigma_r_m": [700.0 + k] * 3, "sigma_v_m_s": [sig_v] * 3}
            )
            dev.record(
                "attitude",
                t,
                {
                    "q_body_to_gcrs": [1.0, 0.0, 0.0, 0.0],
                    "rate_body_rad_s": [0.01, 0.0, 0.0],
                    "gyro_bias_rad_s": [1e-4 + 1e-8 * k] * 3,
                    "sigma_att_rad": [0.01] * 3,
                    "sigma_bias_rad_s": [1e-6] * 3,
                    "valid_attitude": True,
                },
            )
            dev.record(
                "formation",
                t,
                {
                    "peer_id": PEER,
                    "dr_ecef_m": [-123456.0 + 10.0 * k, 0.0, 0.0],
                    "sigma_dr_m": [3.0] * 3,
                    "sigma_los_m": 2.0,
                },
            )
        page.wait_for_function(f"document.getElementById('orbit-points').textContent === '{n}'", timeout=20_000)
        page.wait_for_function(  # every row drawn
            f"['orbitSigma', 'attBias', 'peerRadial', 'peerDist'].every(k => window.__stationPlots[k].u"
            f" && window.__stationPlots[k].u.data[0].length === {n})"
        )
        problems = page.evaluate(_AXIS_PROBLEMS_JS)
        _shot(page, "station_axes.png")
        assert problems == []
        right = page.evaluate("window.__stationPlots.orbitSigma.u.axes[2]._values.filter(v => v)")
        assert len(right) >= 2 and all(v.startswith("0.052") for v in right), right
        assert errors == []
    finally:
        srv.stop()
        dev.close()


def test_a_range_with_no_estimate_near_it_is_counted_not_raised():
    """The live source looks for a range's estimates among the newest (from the right): when
    the newest formation estimate is another partner's, older than the range by more than
    its window (estimates out of order), there is none - it raised TypeError and broke the
    feed; now the range is counted as unresolved."""
    from ground.station.sources import StreamSource

    src = StreamSource("loop://")
    src._bodies["formation"].extend([{"peer_id": 0x4B, "t_sc_s": 1000.0}, {"peer_id": 0x4C, "t_sc_s": 10.0}])
    src._last_t = {0x4B: 1000.0, 0x4C: 10.0}
    src._ranges_pending = [{"t_sc_s": 995.0, "peer_id": 0x4B, "range_m": 3000.0, "valid": True}]
    src._resolve_ranges()
    assert src._ranges_pending == [] and list(src._residuals) == [] and src._stats["ranges_unresolved"] == 1


def test_the_live_feed_goes_on_past_a_range_with_no_estimate_near_it():
    """Through the frames and polls the server makes: a range whose partner's estimates are
    older than the window of the newest (an older estimate of another partner came last)
    raised TypeError at every poll from then on; now it is counted in the status
    (``station_ranges_unresolved``), the estimates are sent, and a later range is resolved."""
    from pygnc.formats.range_packet import encode_packet, raw_from_range_m

    src = sources.StreamSource("loop://")
    try:

        def estimate(peer: int, t: float) -> None:
            v = {"peer_id": peer, "dr_ecef_m": [0.0, 3000.0, 0.0], "dv_ecef_m_s": [0.0] * 3, "quality": 1}
            src._handle([fs.Frame(fs.ESTIMATE, 0, fmt.encode_record(fmt.KINDS_BY_NAME["formation"], t, v))])

        def range_at(t: int) -> None:
            src._handle([fs.Frame(fs.RANGE, 0, encode_packet(0x4B, t, raw_from_range_m(3000.0)))])

        for t in (1000.0, 1002.0):
            estimate(0x4B, t)
        estimate(0x4C, 10.0)  # out of order: the newest estimate is far older than the range
        range_at(1001)
        first = {m["type"]: m for m in src.poll()}  # (and the port's state, as it opens)
        assert first["append"]["rows"]["formation"] == 3
        for t in (1004.0, 1006.0):
            estimate(0x4B, t)
        range_at(1005)
        second = {m["type"]: m for m in src.poll()}
        assert second["append"]["rows"]["residuals"] == 1
        assert src.current()[1]["status"]["counters"]["station_ranges_unresolved"] == 1
    finally:
        src.close()


def test_ranges_waiting_for_estimates_that_never_come_are_bounded(monkeypatch):
    """A partner that never gets a formation estimate: its ranges waited for ever (a list
    growing through a long session); the oldest beyond LIVE_MAX_ROWS are dropped and counted."""
    from pygnc.formats.range_packet import encode_packet, raw_from_range_m

    monkeypatch.setattr(sources, "LIVE_MAX_ROWS", 5)
    src = sources.StreamSource("loop://")
    try:
        for t in range(1000, 1008):
            src._handle([fs.Frame(fs.RANGE, 0, encode_packet(0x4B, t, raw_from_range_m(3000.0)))])
        assert [r["t_sc_s"] for r in src._ranges_pending] == [1003.0, 1004.0, 1005.0, 1006.0, 1007.0]
        assert src._stats["ranges_unresolved"] == 3
    finally:
        src.close()
