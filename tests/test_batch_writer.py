"""The batch writer's recorder on the real message stream of the sample scenario: what it
records, at which cadence, and that a replayed stream or a restart adds nothing."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import pytest
from flight_harness import REPO

from ground.replay.in_process import published_messages
from pygnc import batch_store as bs
from pygnc.config import Config, load_config
from pygnc.formats import batch as B
from pygnc.tasks.batch_writer import BatchRecorder, kind_selection

SAMPLE = REPO / "data" / "sample_5min"


@pytest.fixture(scope="module")
def stream() -> list[tuple[str, dict]]:
    """meas messages and every estimator output, in the order the writer would see them."""
    return published_with_health(Config())


def published_with_health(config: Config) -> list[tuple[str, dict]]:
    """What the process tree publishes on the sample scenario under *config*, and a health
    message an hour after it."""
    messages = published_messages(SAMPLE, config)
    health = {
        "tasks": [{"name": "ingest", "state": "running", "restarts": 0}],
        "uptime_s": 1.0,
        "t_sc_s": next(b for t, b in messages if t == "batch_end")["t_sc_first_s"] + 3600.0,
        "stopping": False,
    }
    messages.append(("health", health))
    return messages


class _Now:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        self.t += 0.001
        return self.t


def _recorder(d: Path, periods=None, kinds=None, run=1, key="k", **store_kw):
    kinds = kinds or list(B.current_kinds())
    periods = {k.name: k.period_s for k in kinds} if periods is None else periods
    rec = None
    store = bs.BatchStore(d, run, key, 0x4A, context=lambda: rec.context_records(), **store_kw)
    report = store.open()
    rec = BatchRecorder(kinds, periods, store, _Now(1.8e9))
    if report.restarted:
        rec.seed(store.run_records())
    rec.seed_spans(store.spans)
    return rec, store


def _decoded(d: Path) -> list[B.Record]:
    return [r for p in sorted(d.glob("batch_*.bin")) for r in B.decode_batch(p.read_bytes()).records]


def test_every_message_round_trips_through_the_files(tmp_path, stream):
    """Period 0 for every kind: each message becomes a record whose values match the body
    within the layout's precision (an independent check of every encoder)."""
    rec, store = _recorder(tmp_path, periods={k.name: 0.0 for k in B.current_kinds()}, max_file_bytes=4000)
    for t, b in stream:
        rec.handle(t, b)
    store.close()
    records = _decoded(tmp_path)
    by_kind: dict[str, list] = {}
    for r in records:
        by_kind.setdefault(r.kind.name, []).append(r)
    counts = {}
    for t, _ in stream:
        counts[t] = counts.get(t, 0) + 1
    ctx_copies = len(list(tmp_path.glob("batch_*.bin"))) - 1  # context records repeated per file
    assert len(by_kind["orbit"]) == counts["orbit_estimate"]
    assert len(by_kind["attitude"]) == counts["attitude_estimate"]
    assert len(by_kind["formation"]) == counts["formation_estimate"]
    assert len(by_kind["sensor"]) == counts["sensor"] and len(by_kind["range"]) == counts["range"]
    assert len(by_kind["gps_fix"]) == counts["gps_fix"]
    assert len(by_kind["clock_map"]) == 1 + ctx_copies and len(by_kind["ingest"]) == 2 * (1 + ctx_copies)
    assert len(by_kind["note"]) == counts.get("estimator_note", 0)

    orbits = [b for t, b in stream if t == "orbit_estimate"]
    for r, b in zip(by_kind["orbit"], orbits):
        v = r.values()
        assert r.t_sc_s == pytest.approx(b["t_sc_s"], abs=5e-4)
        assert np.allclose(v["r_ecef_m"], b["r_ecef_m"], atol=0.005, rtol=0)
        assert np.allclose(v["v_ecef_m_s"], b["v_ecef_m_s"], atol=5e-6, rtol=0)
        assert np.allclose(v["sigma_r_m"], b["sigma_r_m"], rtol=2**-11)
        assert (v["n_used"], v["flags"]) == (b["n_used"], int(b["propagated"]))
    atts = [b for t, b in stream if t == "attitude_estimate"]
    for r, b in zip(by_kind["attitude"], atts):
        v = r.values()
        assert np.allclose(v["q_body_to_gcrs"], b["q_body_to_gcrs"], atol=1.6e-5)
        assert np.allclose(v["gyro_bias_rad_s"], b["gyro_bias_rad_s"], rtol=2**-11, atol=6e-8)
        assert np.allclose(v["sigma_att_rad"], b["sigma_att_rad"], rtol=2**-11)
        assert v["flags"] == (
            b["propagated"] | b["valid_attitude"] << 1 | b["has_position"] << 2 | b["in_eclipse"] << 3
        )
    forms = [b for t, b in stream if t == "formation_estimate"]
    for r, b in zip(by_kind["formation"], forms):
        v = r.values()
        assert v["peer_id"] == b["peer_id"]
        assert np.allclose(v["dr_ecef_m"], b["dr_ecef_m"], atol=5e-4, rtol=0)
        assert np.allclose(v["dv_ecef_m_s"], b["dv_ecef_m_s"], atol=5e-7, rtol=0)
        assert math.isclose(v["range_bias_m"], b["range_bias_m"], rel_tol=2**-11, abs_tol=1e-7)
    fixes = [b for t, b in stream if t == "gps_fix"]
    for r, b in zip(by_kind["gps_fix"], fixes):
        v = r.values()
        assert v["t_gps_s"] == b["t_gps_s"] and v["peer_id"] == b["peer_id"] and v["flags"] == int(b["valid"])
        assert np.allclose(v["pos_ecef_m"], b["pos_ecef_m"], atol=0.005, rtol=0)
    ranges = [b for t, b in stream if t == "range"]
    for r, b in zip(by_kind["range"], ranges):
        v = r.values()
        assert abs(v["range_m"] - b["range_m"]) <= 5e-4 and r.t_sc_s == pytest.approx(b["t_sc_s"], abs=5e-4)
    sensors = [b for t, b in stream if t == "sensor"]
    for r, b in zip(by_kind["sensor"], sensors):
        v = r.values()
        assert np.allclose(v["sun_lux"], b["sun_lux"], rtol=2**-11, atol=1e-3)
        assert np.allclose(v["mag_ut"], b["mag_ut"], rtol=2**-11)
    (cm,) = [b for t, b in stream if t == "clock_map"]
    v = by_kind["clock_map"][0].values()
    assert v["gps_minus_sc_s"] == cm["gps_minus_sc_s"] and v["t_ref_sc_s"] == cm["t_ref_sc_s"]
    h = by_kind["health"][0].values()
    assert h["n_tasks"] == 1 and h["task_id"][0] == 2 and h["task_state"][0] == 2


def _bins(times, period):
    first = {}
    for t in times:
        first.setdefault(int(round(t * 1000)) // int(period * 1000), t)
    return sorted(first.values())


def test_default_cadence_takes_the_first_message_of_every_bin(tmp_path, stream):
    rec, store = _recorder(tmp_path)
    for t, b in stream:
        rec.handle(t, b)
    n_final = rec.finish()
    store.close()
    records = _decoded(tmp_path)
    orbit_t = [r.t_sc_s for r in records if r.kind.name == "orbit"]
    est_t = [b["t_sc_s"] for t, b in stream if t == "orbit_estimate"]
    expected = _bins(est_t, 60.0)
    if est_t[-1] not in expected:  # the run's last estimate is recorded at stop
        expected.append(est_t[-1])
    assert orbit_t == expected and n_final >= 1
    for peer in {b["peer_id"] for t, b in stream if t == "formation_estimate"}:
        got = [r.t_sc_s for r in records if r.kind.name == "formation" and r.values()["peer_id"] == peer]
        want = _bins([b["t_sc_s"] for t, b in stream if t == "formation_estimate" and b["peer_id"] == peer], 60.0)
        assert got[: len(want)] == want
    sensors = [b["t_sc_s"] for t, b in stream if t == "sensor"]
    assert [r.t_sc_s for r in records if r.kind.name == "sensor"] == _bins(sensors, 600.0)


def test_a_replayed_stream_adds_nothing(tmp_path, stream):
    rec, store = _recorder(tmp_path)
    for t, b in stream:
        rec.handle(t, b)
    n = store.counters.records_written
    for t, b in stream:  # a restarted consumer made ingest publish again; estimators repeat too
        rec.handle(t, b)
    assert store.counters.records_written == n
    store.close()


def test_a_restarted_writer_seeds_from_its_run_and_adds_nothing(tmp_path, stream):
    rec, store = _recorder(tmp_path, run=3, key="run3")
    half = len(stream) // 2
    for t, b in stream[:half]:
        rec.handle(t, b)
    before = [r.raw for r in B.decode_batch(store.file.part.read_bytes()).records]
    os.close(store.file.fd)  # killed: the .part stays behind
    rec2, store2 = _recorder(tmp_path, run=3, key="run3")  # same run: recover, then seed
    for t, b in stream:  # ingest replays everything to the restarted writer
        rec2.handle(t, b)
    rec2.finish()
    store2.close()
    raws = [r.raw for r in _decoded(tmp_path)]
    assert raws[: len(before)] == before
    data = [r for r in raws if B.KINDS_BY_CODE[r[1]].name not in ("clock_map", "ingest", "batch_summary")]
    assert len(data) == len(set(data))  # not one record twice


def _measured(records) -> list[tuple]:
    """(kind, key, time) of the records a series writes once (batch_store.span_key)."""
    out = []
    for r in records:
        mark = bs.span_key(r.kind, r.values())
        if mark is not None:
            out.append((*mark, B.record_time_ms(r.t_sc_s)))
    return out


@pytest.mark.parametrize("cut_at", [0.1, 0.5, 0.97])
def test_the_run_after_a_power_cut_writes_only_what_the_cut_run_had_not(tmp_path, stream, cut_at):
    """Issue 48 item 12: after a power cut the next start wrote again every record the cut
    run had written.  The cut run's files (those the host took, its recovered .part) and the
    next run's hold every record of a clean run once - and the next run's only the rest."""
    periods = {k.name: 5.0 if k.period_s else k.period_s for k in B.KINDS}  # (the sample is 5 min)
    clean, store = _recorder(tmp_path / "clean", periods, series="s")
    for t, b in stream:
        clean.handle(t, b)
    clean.finish()
    store.close()
    want = _measured(_decoded(tmp_path / "clean"))
    assert len(want) == len(set(want)) > 100

    d, taken = tmp_path / "home", tmp_path / "downlinked"
    taken.mkdir()
    rec, store = _recorder(d, periods, run=1, key="cut", series="s", max_file_bytes=1500)
    for t, b in stream[: int(cut_at * len(stream))]:
        rec.handle(t, b)
    for p in d.glob("batch_*.bin"):  # the host took the complete files
        p.rename(taken / p.name)
    if store.file is not None:
        os.close(store.file.fd)  # the power cut: a .part stays behind

    rec2, store2 = _recorder(d, periods, run=2, key="next", series="s")
    for t, b in stream:
        rec2.handle(t, b)
    rec2.finish()
    store2.close()
    got = _measured(_decoded(taken)) + _measured(_decoded(d))
    assert sorted(got) == sorted(want)  # each once, none missing
    assert rec2.counters()["written_before"] > 0


def _kept_two(t_sc_s: float, propagated: bool = False) -> dict:
    """A range-only partner's formation estimate keeping two orbits (a mirror pair)."""
    return {
        "t_sc_s": t_sc_s,
        "peer_id": 0x4B,
        "dr_ecef_m": [0.0, 4000.0, 0.0],
        "dv_ecef_m_s": [0.0] * 3,
        "sigma_dr_m": [200.0] * 3,
        "sigma_dv_m_s": [0.1] * 3,
        "propagated": propagated,
        "ambiguous": True,
        "ambiguity_m": 600.0,
        "quality": "ambiguous",
        "hyp_weights": [0.6, 0.4],
        "hyp_dr_ecef_m": [[0.0, 4000.0, 300.0], [0.0, 4000.0, -300.0]],
        "hyp_dv_ecef_m_s": [[0.0] * 3] * 2,
        "hyp_sigma_dr_m": [[3.0] * 3] * 2,
        "hyp_sigma_dv_m_s": [[0.01] * 3] * 2,
    }


def test_kept_orbits_are_written_once_per_series_like_the_formation_records(tmp_path):
    """partner_orbit records (a group per formation estimate: each kept orbit) come from
    estimates at measured times, so a later run of the series - the start after a power cut -
    writes none of those written before; a group is kept or dropped whole, and one propagated
    to "now" is the run's own."""
    kinds = [B.KINDS_BY_NAME["formation"], B.KINDS_BY_NAME["partner_orbit"]]
    periods = {"formation": 60.0, "partner_orbit": 600.0}
    t0 = 1.8e9
    first = [("formation_estimate", _kept_two(t0 + 600.0 * k)) for k in range(4)]

    def names(d):
        return [(r.kind.name, r.t_sc_s) for r in _decoded(d)]

    rec, store = _recorder(tmp_path, periods, kinds, run=1, key="cut", series="s")
    for t, b in first:
        rec.handle(t, b)
    store.close()
    before = names(tmp_path)
    assert [n for n, _ in before].count("partner_orbit") == 8  # two per estimate

    rec2, store2 = _recorder(tmp_path, periods, kinds, run=2, key="next", series="s")
    later = [
        ("formation_estimate", _kept_two(t0 + 1210.0, propagated=True)),  # inside the span, at "now"
        ("formation_estimate", _kept_two(t0 + 2400.0)),  # past it
    ]
    for t, b in [*first, *later]:
        rec2.handle(t, b)
    rec2.finish()
    store2.close()
    assert names(tmp_path)[len(before) :] == [
        ("formation", t0 + 1210.0),
        ("partner_orbit", t0 + 1210.0),
        ("partner_orbit", t0 + 1210.0),
        ("formation", t0 + 2400.0),
        ("partner_orbit", t0 + 2400.0),
        ("partner_orbit", t0 + 2400.0),
    ]
    assert rec2.counters()["written_before"] == 4 + 8  # every formation record and kept orbit of run 1


def test_another_configuration_is_a_new_series(tmp_path, stream):
    """A run on another configuration (an uplink) writes its estimates whatever was
    written before; on the same one, nothing of what was."""
    for series, again in (("a", False), ("b", True)):
        d = tmp_path / series
        written = []
        for run, s in ((1, "a"), (2, series)):
            rec, store = _recorder(d, run=run, key=f"run{run}", series=s)
            for t, b in stream:
                rec.handle(t, b)
            store.close()
            written.append(store.counters.records_written)
        assert (written[1] > written[0] / 2) is again, (series, written)


def test_health_changes_are_recorded_at_once(tmp_path):
    rec, store = _recorder(tmp_path, kinds=[B.KINDS_BY_NAME["health"]])

    def health(t, state, stopping=False):
        return {
            "tasks": [{"name": "orbit_estimator", "state": state, "restarts": 0}],
            "t_sc_s": t,
            "uptime_s": t - 1e9,
            "stopping": stopping,
        }

    t0 = 60.0 * 16_666_667  # a bin boundary
    for k in range(240):  # 2 Hz for two minutes, a restart in the middle
        rec.handle("health", health(t0 + 0.5 * k, "restarting" if 100 <= k < 104 else "running"))
    rec.handle("health", health(t0 + 120.2, "stopped", stopping=True))
    rec.finish()
    store.close()
    got = [(r.t_sc_s, r.values()["task_state"][0], r.values()["flags"]) for r in _decoded(tmp_path)]
    assert got == [(t0, 2, 0), (t0 + 50, 4, 0), (t0 + 52, 2, 0), (t0 + 60, 2, 0), (t0 + 120.2, 5, 1)]


def test_final_estimate_recorded_at_stop(tmp_path):
    orbit = B.KINDS_BY_NAME["orbit"]
    rec, store = _recorder(tmp_path, kinds=[orbit])
    body = {
        "r_ecef_m": [7e6, 0, 0],
        "v_ecef_m_s": [0, 7e3, 0],
        "sigma_r_m": [1, 1, 1],
        "sigma_v_m_s": [1, 1, 1],
        "n_used": 1,
        "n_rejected": 0,
        "n_invalid": 0,
        "propagated": True,
    }
    for k in range(10):
        rec.handle("orbit_estimate", {**body, "t_sc_s": 1e9 + k})
    assert rec.finish() == 1 and rec.finish() == 0
    store.close()
    assert [r.t_sc_s for r in _decoded(tmp_path)] == [1e9, 1e9 + 9]


def test_bad_bodies_and_times_are_counted_not_fatal(tmp_path):
    rec, store = _recorder(tmp_path, kinds=[B.KINDS_BY_NAME["range"], B.KINDS_BY_NAME["orbit"]])
    rec.handle("range", {"t_sc_s": -5.0, "peer_id": 1, "range_m": 1.0, "valid": True, "filtered": False})
    rec.handle("range", {"t_sc_s": 1e9})  # missing fields
    rec.handle("orbit_estimate", {"t_sc_s": 1e9, "r_ecef_m": [1, 2]})  # wrong length
    rec.handle("range", {"t_sc_s": 1e9, "peer_id": 1, "range_m": 1.0, "valid": True, "filtered": False})
    store.close()
    assert rec.time_errors == 1 and rec.encode_errors == 2 and len(_decoded(tmp_path)) == 1


def test_configuration_selects_kinds_and_cadence(tmp_path):
    cfg = dataclasses.replace(
        Config(), batch_kinds=("orbit", "health"), batch_period_s={"orbit": 10, "health": math.inf}
    )
    kinds, periods = kind_selection(cfg)
    assert [k.name for k in kinds] == ["orbit", "health"] and periods == {"orbit": 10.0, "health": math.inf}
    kinds, periods = kind_selection(Config())
    assert [k.name for k in kinds] == list(B.default_kinds()) and periods["orbit"] == 60.0
    p = tmp_path / "c.toml"
    p.write_text('batch_kinds = ["orbit", "orbitt"]\n')
    with pytest.raises(ValueError, match="orbitt"):
        load_config(p)
    p.write_text("[batch_period_s]\norbit = -1\n")
    with pytest.raises(ValueError, match="orbit"):
        load_config(p)
    p.write_text("spacecraft_id = 75\nbatch_period_s = { orbit = 30, sensor = inf }\n")
    c = load_config(p)
    assert c.spacecraft_id == 75 and kind_selection(c)[1]["sensor"] == math.inf
