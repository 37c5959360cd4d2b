"""python -m ground decode: every file kind, CSV output, skipped-byte counts, exit codes."""

import csv
import subprocess
import sys

from conftest import PY4_DATA
from flight_harness import REPO

from ground.__main__ import main
from pygnc.bus.messages import Encoder
from pygnc.formats.buslog import encode_frame, encode_header_frame
from pygnc.formats.status import encode_status

SAMPLE = REPO / "data" / "sample_5min"
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
    assert len(rows) == 19 and {"t_sc_s", "peer_id", "range_m", "range_raw", "rssi_dbm", "fei_hz", "valid"} <= set(
        rows[0]
    )
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
    frames = [encode_header_frame(1, 1)] + [encode_frame("meas", float(i), enc.encode("start", {})) for i in range(5)]
    log = tmp_path / "run_00001"
    log.mkdir()
    (log / "bus.log").write_bytes(b"".join(frames)[:-3])  # power cut mid-frame
    assert main(["decode", str(log), "--csv", str(tmp_path / "b.csv")]) == 0
    out = capsys.readouterr().out
    assert "torn_tail True" in out and "start 4" in out
    assert len(_rows(tmp_path / "b.csv")) == 4


def test_missing_file_and_usage():
    p = subprocess.run(
        [sys.executable, "-m", "ground", "decode", "/nonexistent/x.bin"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert p.returncode == 1 and "no such file" in p.stderr
    p = subprocess.run([sys.executable, "-m", "ground", "decode"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert p.returncode == 2


def _random_files(d, names, size=5000, seed=7):
    import random

    rng = random.Random(seed)
    d.mkdir(exist_ok=True)
    for name in names:
        (d / name).write_bytes(bytes(rng.getrandbits(8) for _ in range(size)))
    return d


def test_a_directory_of_random_files_is_not_recognised(tmp_path):
    """Nothing decoded is an error that says what was there and what was not recognised."""
    d = _random_files(tmp_path / "junk", ["f1.dat", "f2.dat", "notes.txt", "pygnc_status.bin"])
    (d / "sub").mkdir()
    p = subprocess.run(
        [sys.executable, "-m", "ground", "decode", str(d)], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert p.returncode == 1 and "nothing decoded" in p.stderr, p.stderr
    assert "not recognised: f1.dat, f2.dat, notes.txt, sub/" in p.stderr
    assert "decode these one by one: pygnc_status.bin (status, by its name)" in p.stderr
    assert "Traceback" not in p.stderr


def test_a_random_file_named_as_a_status_file_is_an_invalid_status_file(tmp_path, capsys):
    d = _random_files(tmp_path / "d", ["pygnc_status.bin", "capture.dat"])
    assert main(["decode", str(d / "pygnc_status.bin")]) == 1
    err = capsys.readouterr().err
    assert "nothing decoded as status (recognised by its name): not a valid status file: bad magic" in err
    assert "a status file starts with b'PGNS'" in err and "sense" not in err
    assert main(["decode", str(d / "capture.dat")]) == 1
    err = capsys.readouterr().err
    assert (
        "capture.dat: nothing decoded: not recognised: no magic" in err and "no sense.bin record in 5000 bytes" in err
    )
    # a real status file with one byte changed: recognised by its magic, CRC named
    data = bytearray(encode_status(__import__("pygnc.formats.status", fromlist=["x"]).empty_status()))
    data[20] ^= 1
    (d / "copy.bin").write_bytes(bytes(data))
    assert main(["decode", str(d / "copy.bin")]) == 1
    assert (
        "nothing decoded as status (recognised by its magic): not a valid status file: CRC mismatch"
        in capsys.readouterr().err
    )


def test_random_files_named_as_batch_files_decode_nothing(tmp_path):
    d = _random_files(tmp_path / "pass", ["batch_00000001.bin", "batch_00000002.bin"])
    p = subprocess.run(
        [sys.executable, "-m", "ground", "decode", str(d)], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert p.returncode == 1, p.stdout
    assert (
        "nothing decoded as batch (recognised by the files in it): 2 batch files, none with an intact header "
        "or record" in p.stderr
    )
    assert "batch_00000001.bin: header unreadable (bad magic" in p.stdout
