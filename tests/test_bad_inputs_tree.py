"""Bad inputs through the real process tree (issue 39 items 4, 8 and 9): a flipped time bit,
huge input files, batch sequence numbers at the end of their range."""

from __future__ import annotations

import json
import time

import psutil
import pytest
from flight_harness import REPO, FlightRun, make_home

from pygnc.bus.messages import DecodeCounters, decode
from pygnc.config import Config, Paths
from pygnc.formats import batch as B
from pygnc.formats import status as S
from pygnc.formats.buslog import decode_frames
from pygnc.formats.sense import RECORD_SIZE, SENSOR_SEGMENT_SIZE
from pygnc.tasks.ingest import build_message_stream
from pygnc.tasks.table import TASKS_BY_NAME, process_name

SAMPLE = REPO / "data" / "sample_5min"


def _bus_messages(run: FlightRun, msg_type: str) -> list[dict]:
    bus = decode_frames((run.log_dir() / "bus.log").read_bytes())
    msgs = (decode(fr.message, DecodeCounters()) for fr in bus.frames)
    return [m.body for m in msgs if m is not None and m.type == msg_type]


def _span_without_sample(sample: int) -> tuple[float, float]:
    """First and last measurement time of the sample batch without sensor sample *sample*."""
    times, k = [], 0
    for t, b in build_message_stream(Paths(SAMPLE), Config()).messages:
        if t == "sensor":
            k += 1
            if k - 1 == sample:
                continue
        if t in ("sensor", "gps_fix", "range"):
            times.append(b["t_sc_s"])
    return min(times), max(times)


def _shift_sample_time(data: bytes, sample: int, shift_s: int) -> bytes:
    """sense.bin with one sensor sample's stamp (uint32, big-endian) moved by *shift_s*."""
    rec, k = divmod(sample, Config().sensors_per_record)
    off = rec * RECORD_SIZE + k * SENSOR_SEGMENT_SIZE
    out = bytearray(data)
    t = int.from_bytes(out[off : off + 4], "big") + shift_s
    out[off : off + 4] = t.to_bytes(4, "big")
    return bytes(out)


@pytest.mark.parametrize("sample", [29, 59], ids=["middle", "last"])
def test_one_flipped_time_bit_spoils_nothing(tmp_path, sample):
    """Issue 39 item 4: one sample moved +8192 s (bit 13; inside the 2-day admission window)
    left orbit and attitude `ahead` for the whole run and `batch_t_sc_last_s` at the corrupt
    time.  Ingest drops it as a time outlier: the span is the data's, the estimates current."""
    first, last = _span_without_sample(sample)
    n_sensor = next(b for t, b in build_message_stream(Paths(SAMPLE), Config()).messages if t == "batch_end")[
        "n_sensor"
    ]
    home = make_home(tmp_path, SAMPLE)
    (home / "sense.bin").write_bytes(_shift_sample_time((SAMPLE / "sense.bin").read_bytes(), sample, 8192))
    with FlightRun(home, spacecraft_time_s=last + 1.0) as run:
        st = run.wait_status(
            lambda s: (
                s["flags"] & S.FLAG_BATCH_DONE
                and s["flags"] & S.FLAG_ORBIT_VALID
                and s["flags"] & S.FLAG_ATTITUDE_VALID
            ),
            timeout_s=60,
        )
        assert (st["batch_t_sc_first_s"], st["batch_t_sc_last_s"]) == (first, last)
        for _ in range(3):  # and they stay current (the attitude, on the gyro alone after the
            # 5-min batch, may grow `uncertain` within ~10 s: that is its sigma, not its time)
            st = run.wait_status(lambda s, seq=st["seq"]: s["seq"] > seq + 3)
            assert S.ESTIMATE_QUALITY[st["orbit_quality"]] == "ok", st
            assert S.ESTIMATE_QUALITY[st["att_quality"]] in ("ok", "uncertain"), st
            assert abs(st["orbit_t_sc_s"] - st["t_sc_s"]) < 5 and abs(st["att_t_sc_s"] - st["t_sc_s"]) < 5
        run.ctrl_c()
        assert run.wait_exit(10) == 0
        sense_stats = [b for b in _bus_messages(run, "ingest_stats") if b["source"] == "sense"]
        assert sense_stats and all(b["time_outliers"] == 1 for b in sense_stats)
        assert "1 time outliers dropped" in sense_stats[0]["note"]
        (end,) = {json.dumps(b, sort_keys=True) for b in _bus_messages(run, "batch_end")}
        assert json.loads(end)["n_sensor"] == n_sensor - 1
        assert "time outliers dropped" in (run.log_dir() / "ingest.log").read_text()


def test_batch_sequence_numbers_are_refused_beyond_the_header_range(tmp_path):
    """Issue 39 item 9: numbers saturated at 2**32 - 1 - two files with one header number.
    The writer writes ..._4294967295 last, then refuses (counted, `downlink_failed`)."""
    from pygnc.batch_store import STATE_FILE, STATE_FORMAT

    home = make_home(tmp_path, SAMPLE)
    (home / "pygnc_batches").mkdir()
    (home / "pygnc_batches" / STATE_FILE).write_text(
        json.dumps({"format": STATE_FORMAT, "version": 1, "next_sequence": B.MAX_SEQUENCE - 1})
    )
    cfg = tmp_path / "pygnc.toml"
    # Every orbit and attitude estimate recorded: the batch alone fills the two files at once
    # (at the default cadences the health records, 60 s apart, would take most of a minute).
    cfg.write_text("batch_file_max_bytes = 1024\n[batch_period_s]\norbit = 0\nattitude = 0\n")
    first, last = _span_without_sample(-1)
    with FlightRun(home, spacecraft_time_s=last + 1.0, env={"PYGNC_CONFIG": str(cfg)}) as run:
        run.wait_status(lambda s: s["flags"] & S.FLAG_BATCH_DONE and s["flags"] & S.FLAG_DOWNLINK_FAILED, timeout_s=60)
        run.wait_info(b" DF")
        run.ctrl_c()
        assert run.wait_exit(10) == 0
    names = sorted(p.name for p in (home / "pygnc_batches").iterdir() if not p.name.startswith("."))
    assert names == [B.file_name(B.MAX_SEQUENCE - 1), B.file_name(B.MAX_SEQUENCE)]
    headers = [B.decode_header((home / "pygnc_batches" / n).read_bytes()) for n in names]
    assert [h["sequence"] for h in headers] == [B.MAX_SEQUENCE - 1, B.MAX_SEQUENCE]
    assert "sequence numbers are exhausted" in (run.log_dir() / "batch_writer.log").read_text()
    assert S.decode_status((home / "pygnc_status.bin").read_bytes())["flags"] & S.FLAG_DOWNLINK_FAILED


INGEST_ID = TASKS_BY_NAME["ingest"].task_id


def _ingest_rss(run: FlightRun) -> int:
    comm = process_name(TASKS_BY_NAME["ingest"])
    rss = 0
    for p in run.tree():
        try:
            if p.name() == comm or "ingest" in p.cmdline():
                rss += p.memory_info().rss
        except psutil.Error:
            pass
    return rss


def test_a_huge_range_file_costs_only_its_limit(tmp_path):
    """Issue 39 item 8: a 2-GiB file in ~/range/ was read whole - ingest killed twice for not
    answering, peak memory twice the file.  Now only its newest range_file_max_bytes are
    read (the rest skipped and counted), and sense.bin likewise beyond sense_file_max_bytes."""
    home = make_home(tmp_path, SAMPLE)
    huge = 2 << 30
    with open(home / "range" / "rng00001.bin", "wb") as f:
        f.truncate(huge)  # sparse: zeros, as a runaway writer or a bad copy leaves it
    sense_size = (SAMPLE / "sense.bin").stat().st_size
    cfg = tmp_path / "pygnc.toml"
    cfg.write_text(f"sense_file_max_bytes = {8 * RECORD_SIZE + 100}\n")  # the newest 8 records
    _, last = _span_without_sample(-1)
    with FlightRun(home, spacecraft_time_s=last + 1.0, env={"PYGNC_CONFIG": str(cfg)}) as run:
        peak, t_end = 0, time.monotonic() + 10.0
        st = None
        while time.monotonic() < t_end:
            peak = max(peak, _ingest_rss(run))
            st = run.status()
            if st is not None:
                for k in range(S.MAX_TASKS):
                    if st[f"task{k}_id"] == INGEST_ID:
                        assert st[f"task{k}_restarts"] == 0, st
            time.sleep(0.05)
        assert st["flags"] & S.FLAG_BATCH_DONE
        assert peak < 512 << 20  # (the whole file would be 2 GiB, twice that at its peak)
        assert st["range_files"] == 2
        limit = Config().range_file_max_bytes
        assert st["range_bytes_skipped"] == huge  # its head not read, its zero tail skipped
        assert st["sense_bytes"] == sense_size and st["sense_records"] == 8
        assert st["sense_bytes_skipped"] == sense_size - 8 * RECORD_SIZE
        run.ctrl_c()
        assert run.wait_exit(10) == 0
    stats = {b["source"]: b for b in _bus_messages(run, "ingest_stats")}
    assert stats["range"]["bytes_over_limit"] == huge - limit and "over the limit" in stats["range"]["note"]
    assert stats["sense"]["bytes_over_limit"] == sense_size - (8 * RECORD_SIZE + 100)
    assert "over the limit" in (run.log_dir() / "ingest.log").read_text()


def test_a_downlink_failure_at_the_writers_stop_is_in_the_final_status(tmp_path):
    """The batch writer records its final messages at its stop, after the status reporter's
    last status: a failure then (here the numbers run out when the host's FLU closed the
    last file) still ends in the final status (`downlink_failed`)."""
    from pygnc.batch_store import STATE_FILE, STATE_FORMAT
    from pygnc.formats import stream as fs

    home = make_home(tmp_path, SAMPLE)
    (home / "pygnc_batches").mkdir()
    (home / "pygnc_batches" / STATE_FILE).write_text(
        json.dumps({"format": STATE_FORMAT, "version": 1, "next_sequence": B.MAX_SEQUENCE})
    )
    _, last = _span_without_sample(-1)
    with FlightRun(home, spacecraft_time_s=last + 1.0) as run:
        run.wait_status(lambda s: s["flags"] & S.FLAG_BATCH_DONE)
        mark = len(run.output)
        run.send(fs.encode_frame(fs.FLUSH, 7))  # the host closes the open file: the last number
        run.wait_frame(lambda f: f.tag == fs.ACK_TAG and fs.ACK.unpack(f.payload)[0] == 7, 10, mark)
        final = home / "pygnc_batches" / B.file_name(B.MAX_SEQUENCE)
        t_end = time.monotonic() + 10
        while not final.exists() and time.monotonic() < t_end:
            time.sleep(0.05)
        run.ctrl_c()
        assert run.wait_exit(10) == 0
    st = S.decode_status((home / "pygnc_status.bin").read_bytes())
    assert st["flags"] & S.FLAG_STOPPING and st["flags"] & S.FLAG_DOWNLINK_FAILED, st["flag_names"]
    assert b" DF" in (home / "pygnc_info.txt").read_bytes()
    assert sorted(p.name for p in (home / "pygnc_batches").glob("batch_*")) == [final.name]


# --------------------------------------------------------------------------- issue 48
def _sample_config_with_prior(prior: str) -> str:
    """The sample's uplink with its partner prior (0x4B) replaced by *prior* (TOML lines)."""
    text = (SAMPLE / "pygnc_config.toml").read_text()
    head = text[: text.index("[formation_peer_priors.")]
    return head + '[formation_peer_priors."0x4B"]\n' + prior


def test_a_partner_prior_inside_the_earth_is_refused_at_load(tmp_path):
    """Issue 48 item 5: a prior inside the Earth (or at the origin with no velocity) was
    accepted and the partner disappeared (`frm 0/0 -`, a traceback per range).  It is
    refused when the file is checked, saying why; the run goes on the defaults."""
    home = make_home(tmp_path, SAMPLE)
    up = home / "pygnc_config.toml"
    up.write_text(
        _sample_config_with_prior(
            "t_gps_s = 1426485618.0\npos_ecef_m = [0.0, 0.0, 0.0]\nvel_ecef_m_s = [0.0, 0.0, 0.0]\n"
        )
    )
    import subprocess
    import sys

    from flight_harness import FLIGHT_MAIN

    p = subprocess.run([sys.executable, str(FLIGHT_MAIN), "--check-config", str(up)], capture_output=True, text=True)
    assert p.returncode == 2 and "puts the partner inside the Earth" in p.stderr, p.stderr
    _, last = _span_without_sample(-1)
    with FlightRun(home, spacecraft_time_s=last + 1.0) as run:
        run.wait_status(lambda s: s["run"] >= 1 and s["flags"] & S.FLAG_CONFIG_REJECTED)
        assert b"cfg rejected pygnc_config.toml:9 formation_peer_priors.0x4B.pos_ecef_m" in run.wait_info(b"cfg")
        run.ctrl_c()
        assert run.wait_exit(10) == 0


def test_a_partner_is_never_lost_to_a_prior_that_fails_at_the_data(tmp_path):
    """Issue 48 item 5: a prior that passes the load but cannot start a filter at the data's
    time (here an RTN offset that puts the partner inside the Earth) made every range raise.
    Now it is refused with a note (`range_only_prior_refused`) and the partner starts from its
    ranges as without a prior."""
    home = make_home(tmp_path, SAMPLE)
    (home / "pygnc_config.toml").write_text(
        _sample_config_with_prior("dr_rtn_m = [-6500000.0, 0.0, 0.0]\ndv_rtn_m_s = [0.0, 0.0, 0.0]\n")
    )
    _, last = _span_without_sample(-1)
    with FlightRun(home, spacecraft_time_s=last + 1.0) as run:
        st = run.wait_status(
            lambda s: s["flags"] & S.FLAG_BATCH_DONE and s["peer0_id"] == 0x4B and s["peer0_t_sc_s"] > last,
            timeout_s=60,
        )
        assert not st["flags"] & S.FLAG_CONFIG_REJECTED
        run.ctrl_c()
        assert run.wait_exit(10) == 0
    notes = [b for b in _bus_messages(run, "estimator_note") if b["code"] == "range_only_prior_refused"]
    assert notes and "inside the Earth" in notes[0]["text"], notes
    log = "".join(p.read_text() for p in run.log_dir().glob("formation_estimator*.log"))
    assert "Traceback" not in log and "failed" not in log


def test_a_backlog_of_range_files_is_read_while_ingest_answers(tmp_path):
    """Issue 48 item 6: 20 000 range files in ~/range/ - the merge was quadratic in the file
    count (22.7 s at 20 000) and answered no health ping: ingest was killed three times and the
    intact sense.bin never used.  With 10 000 files and a 2-s health limit (the old merge:
    ~6 s silent), ingest is never restarted, every file is read and the orbit from sense.bin
    becomes valid.  bench/bench_range_backlog.py measures the 20 000."""
    import os

    home = make_home(tmp_path, SAMPLE)
    one = home / "range" / "rng00000.bin"
    n_files = 10_000
    for k in range(1, n_files):
        os.link(one, home / "range" / f"rng{k:05d}.bin")
    cfg = tmp_path / "pygnc.toml"
    cfg.write_text("health_fatal_s = 2.0\nhealth_warn_s = 1.0\n")
    _, last = _span_without_sample(-1)

    def ingest_restarts(s) -> int:
        return next((s[f"task{k}_restarts"] for k in range(S.MAX_TASKS) if s[f"task{k}_id"] == INGEST_ID), 0)

    def done(s) -> bool:
        assert ingest_restarts(s) == 0, s
        return bool(s["flags"] & S.FLAG_BATCH_DONE and s["flags"] & S.FLAG_ORBIT_VALID)

    with FlightRun(home, spacecraft_time_s=last + 1.0, env={"PYGNC_CONFIG": str(cfg)}) as run:
        st = run.wait_status(done, timeout_s=240)
        assert st["range_files"] == n_files and st["sense_records"] == 12
        run.ctrl_c()
        assert run.wait_exit(10) == 0
    (stats,) = {b["files"] for b in _bus_messages(run, "ingest_stats") if b["source"] == "range"}
    assert stats == n_files


def _shift_records(data: bytes, records, shift_s: int) -> bytes:
    """sense.bin with every stamp (samples and fix) of *records* moved by *shift_s*."""
    per = Config().sensors_per_record
    out = bytearray(data)
    for r in records:
        for off in [r * RECORD_SIZE + k * SENSOR_SEGMENT_SIZE for k in range(per + 1)]:
            t = int.from_bytes(out[off : off + 4], "big") + shift_s
            out[off : off + 4] = t.to_bytes(4, "big")
    return bytes(out)


@pytest.mark.parametrize("records", [(5, 6), (10, 11)], ids=["middle", "last"])
def test_two_records_a_day_off_spoil_nothing(tmp_path, records):
    """Issue 48 item 7: two adjacent records stamped a day late left orbit and attitude
    `ahead 24.0h` for the rest of the run (islands were one record at most, and at the end
    there was no neighbour to return to).  Judged against their neighbours and the clock
    map (their own fixes' GPS times), they are dropped: the span is the data's, the
    estimates current."""
    per = Config().sensors_per_record
    stream = [
        (t, b)
        for t, b in build_message_stream(Paths(SAMPLE), Config()).messages
        if t in ("sensor", "gps_fix", "range")
        and not (t == "sensor" and b["record"] in records or t == "gps_fix" and b["record"] in records)
    ]
    first, last = min(b["t_sc_s"] for _, b in stream), max(b["t_sc_s"] for _, b in stream)
    home = make_home(tmp_path, SAMPLE)
    (home / "sense.bin").write_bytes(_shift_records((SAMPLE / "sense.bin").read_bytes(), records, 86_400))
    with FlightRun(home, spacecraft_time_s=last + 1.0) as run:
        st = run.wait_status(lambda s: s["flags"] & S.FLAG_BATCH_DONE and s["flags"] & S.FLAG_ORBIT_VALID, timeout_s=60)
        assert (st["batch_t_sc_first_s"], st["batch_t_sc_last_s"]) == (first, last)
        st = run.wait_status(lambda s, seq=st["seq"]: s["seq"] > seq + 3)
        assert S.ESTIMATE_QUALITY[st["orbit_quality"]] == "ok", st
        assert S.ESTIMATE_QUALITY[st["att_quality"]] in ("ok", "uncertain"), st
        assert b"ahead" not in run.wait_info(b"orb ok")
        run.ctrl_c()
        assert run.wait_exit(10) == 0
    (sense,) = {json.dumps(b, sort_keys=True) for b in _bus_messages(run, "ingest_stats") if b["source"] == "sense"}
    assert json.loads(sense)["time_outliers"] == len(records) * (per + 1)
