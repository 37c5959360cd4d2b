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
