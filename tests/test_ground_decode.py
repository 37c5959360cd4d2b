"""python -m ground decode: every file kind, CSV output, skipped-byte counts, exit codes."""

import csv
import subprocess
import sys


from flight_harness import REPO
from ground.__main__ import main
from pygnc.formats.buslog import encode_frame, encode_header_frame
from pygnc.formats.status import encode_status
from pygnc.bus.messages import Encoder
from conftest import PY4_DATA

SAMPLE = REPO / "data" / "sample"
UNITTEST = PY4_DATA / "pygnc_unittest" / "sense.bin"


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_sense_to_csv(tmp_path, capsys):
    out = tmp_path / "sense.csv"
    assert main(["decode", str(SAMPLE / "sense.bin"), "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert "60 sensor samples, 12 GPS fixes (12 valid)" in text and "bytes_skipped 0" in text
    rows = _rows(out)
    assert len(rows) == 60
    assert {"t_sc_s", "mag_ut_x", "gyro_deg_s_z", "sun_lux_5", "sun_saturated_0"} <= set(rows[0])
    gps = _rows(tmp_path / "sense_gps.csv")
    assert len(gps) == 12 and {"t_gps_s", "unix_time_s", "pos_ecef_m_x", "valid"} <= set(gps[0])


def test_accept_status_flag(capsys):
    assert main(["decode", str(UNITTEST)]) == 0
    assert "(0 valid)" in capsys.readouterr().out
    assert main(["decode", str(UNITTEST), "--accept-status", "0,1"]) == 0
    assert "(5 valid)" in capsys.readouterr().out


def test_corrupt_sense_reports_skipped_bytes(tmp_path, capsys):
    data = bytearray((SAMPLE / "sense.bin").read_bytes())
    data[300:300] = b"\x00" * 17
    p = tmp_path / "sense.bin"
    p.write_bytes(bytes(data))
    assert main(["decode", str(p)]) == 0
    out = capsys.readouterr().out
    assert "bytes_skipped 0" not in out and "11 GPS fixes" in out


def test_range_dir_and_file(tmp_path, capsys):
    assert main(["decode", str(SAMPLE / "range"), "--csv", str(tmp_path / "r.csv")]) == 0
    assert "19 ranges" in capsys.readouterr().out
    rows = _rows(tmp_path / "r.csv")
    assert len(rows) == 19 and {"t_sc_s", "peer_id", "range_m", "range_raw", "rssi_dbm", "fei_hz",
                                "valid"} <= set(rows[0])
    assert len(_rows(tmp_path / "r_gps.csv")) == 12
    one = sorted((SAMPLE / "range").glob("rng*.bin"))[0]
    assert main(["decode", str(one)]) == 0


def test_status(tmp_path, capsys):
    p = tmp_path / "pygnc_status.bin"
    p.write_bytes(encode_status({"seq": 5, "run": 2, "sense_records": 12}))
    assert main(["decode", str(p), "--csv", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    assert "run 2 seq 5" in out and "sense_records = 12" in out
    assert {r["name"] for r in _rows(tmp_path / "s.csv")} >= {"seq", "orbit_r_ecef_m", "crc32"}
    p.write_bytes(p.read_bytes()[:-1] + b"\x00")
    assert main(["decode", str(p)]) == 1
    assert "CRC" in capsys.readouterr().err


def test_buslog_with_torn_tail(tmp_path, capsys):
    enc = Encoder("ingest")
    frames = [encode_header_frame(1, 1)] + [encode_frame("meas", float(i), enc.encode("start", {}))
                                           for i in range(5)]
    log = tmp_path / "run_00001"
    log.mkdir()
    (log / "bus.log").write_bytes(b"".join(frames)[:-3])  # power cut mid-frame
    assert main(["decode", str(log), "--csv", str(tmp_path / "b.csv")]) == 0
    out = capsys.readouterr().out
    assert "torn_tail True" in out and "start 4" in out
    assert len(_rows(tmp_path / "b.csv")) == 4


def test_missing_file_and_usage():
    p = subprocess.run([sys.executable, "-m", "ground", "decode", "/nonexistent/x.bin"],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert p.returncode == 1 and "no such file" in p.stderr
    p = subprocess.run([sys.executable, "-m", "ground", "decode"], capture_output=True, text=True,
                       cwd=REPO, timeout=60)
    assert p.returncode == 2
