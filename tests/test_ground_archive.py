"""Ground archive (SQLite), CSV export, and the upload queue against a local HTTP server."""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import json
import sqlite3
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from flight_harness import REPO
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ground.__main__ import main as ground_main
from ground.archive.export import export
from ground.archive.sources import READERS, Record, SourceRecords, register_reader
from ground.archive.store import Archive
from ground.archive.upload import UploadQueue
from ground.devices.housekeeping import hk_reading_bodies, synthetic_hk_buslog
from pygnc.bus.messages import SCHEMA_VERSION, Encoder
from pygnc.drivers import opc_n3_codec as on
from pygnc.formats import status as S
from pygnc.formats.buslog import encode_frame, encode_header_frame

SAMPLE = REPO / "data" / "sample_5min"
N_POLLS = 6
PER_POLL = 17 + 1  # 13 sentences, 4 of them in 2 groups (12 cells / 8), + 1 histogram


@pytest.fixture(scope="module")
def buslog(tmp_path_factory):
    p = tmp_path_factory.mktemp("bus") / "bus.log"
    p.write_bytes(synthetic_hk_buslog(N_POLLS))
    return p


def _count(db, sql="SELECT COUNT(*) FROM records", params=()):
    with sqlite3.connect(db) as c:
        return c.execute(sql, params).fetchone()[0]


def test_load_is_idempotent_and_queryable(tmp_path, buslog):
    db = tmp_path / "a.sqlite"
    with Archive(db) as a:
        r = a.load_file(buslog)
        assert (r.status, r.kind, r.records, r.duplicates) == ("loaded", "buslog", N_POLLS * PER_POLL, 0)
        assert a.load_file(buslog).status == "already loaded"
        # a longer log repeating the same readings (another file, overlapping content)
        longer = tmp_path / "bus2.log"
        longer.write_bytes(synthetic_hk_buslog(N_POLLS + 2))
        r = a.load_file(longer)
        assert (r.records, r.duplicates) == (2 * PER_POLL, N_POLLS * PER_POLL)
    assert _count(db) == (N_POLLS + 2) * PER_POLL
    want = [b["values"]["current_a"] for t, b in hk_reading_bodies(N_POLLS + 2) if b["record"] == "CV1"]
    with sqlite3.connect(db) as c:
        got = [
            v
            for (v,) in c.execute(
                "SELECT json_extract(fields_json, '$.current_a') FROM records WHERE kind = ? AND device = ?"
                " AND record = ? ORDER BY t_sc_s",
                ("hk_reading", "bms", "CV1"),
            )
        ]
        assert got == pytest.approx(want)
        raw = c.execute("SELECT raw FROM records WHERE record = 'histogram' LIMIT 1").fetchone()[0]
        assert on.decode_histogram(raw)["sampling_period_s"] >= 0  # the device bytes, re-decodable
        plan = " ".join(
            r[3]
            for r in c.execute("EXPLAIN QUERY PLAN SELECT * FROM records WHERE device = ? AND t_sc_s > ?", ("bms", 0))
        )
        assert "records_by_device_time" in plan
        assert c.execute("SELECT records, duplicates FROM sources ORDER BY source_id").fetchall() == [
            (N_POLLS * PER_POLL, 0),
            (2 * PER_POLL, N_POLLS * PER_POLL),
        ]


def test_corrupt_log_keeps_every_intact_frame(tmp_path, buslog):
    data = bytearray(buslog.read_bytes())
    for i in range(1000, len(data), 7919):
        data[i] ^= 0x40
    bad = tmp_path / "bad.log"
    bad.write_bytes(bytes(data[:-5]))  # and a torn tail
    db = tmp_path / "b.sqlite"
    with Archive(db) as a:
        r = a.load_file(bad)
    assert r.status == "loaded" and 0 < r.records < N_POLLS * PER_POLL
    with sqlite3.connect(db) as c:
        stats = json.loads(c.execute("SELECT stats_json FROM sources").fetchone()[0])
    assert stats["frames_bad"] > 0 and stats["torn_tail"] and stats["bytes_skipped"] > 0


def test_hostile_names_are_data_not_sql(tmp_path):
    evil = "x'); DROP TABLE records; --"
    enc = Encoder("housekeeping")
    body = {
        "device": evil,
        "kind": "emus_bms",
        "record": "CV1",
        "t_sc_s": 1.0,
        "values": {"current_a": 1.5, evil: None},
        "raw": b"CV1,",
        "solicited": True,
    }
    p = tmp_path / "evil.log"
    p.write_bytes(encode_header_frame(1, SCHEMA_VERSION) + encode_frame("hk", 0.0, enc.encode("hk_reading", body)))
    db = tmp_path / "e.sqlite"
    with Archive(db) as a:
        assert a.load_file(p).records == 1
    out = export(db, tmp_path / "csv", devices=[evil])
    assert list(out.values()) == [1] and _count(db) == 1


def test_status_and_decode_csv_load_and_export(tmp_path):
    out = tmp_path / "dec"
    out.mkdir()
    assert ground_main(["decode", str(SAMPLE / "sense.bin"), "--csv", str(out / "sense.csv")]) == 0
    assert ground_main(["decode", str(SAMPLE / "range"), "--csv", str(out / "range.csv")]) == 0
    st = S.empty_status()
    st["t_sc_s"], st["run"] = 1.7e9, 3
    (out / "pygnc_status.bin").write_bytes(S.encode_status(st))
    db = tmp_path / "c.sqlite"
    assert ground_main(["archive", str(db), str(out)]) == 0
    with sqlite3.connect(db) as c:
        kinds = dict(
            c.execute(
                "SELECT source || '/' || kind || '/' || device, COUNT(*) FROM records GROUP BY source, kind, device"
            ).fetchall()
        )
    # the range files' GPS packets are the own spacecraft's fixes: no peer device
    assert kinds == {
        "host_sense/sensor/": 60,
        "host_sense/gps_fix/": 12,
        "host_range/gps_fix/": 12,
        "host_range/range/peer_0x4B": 19,
        "onboard_status/status/status_reporter": 1,
    }
    assert ground_main(["archive", str(db), str(out)]) == 0  # again: nothing new
    assert _count(db) == sum(kinds.values())
    files = export(db, tmp_path / "x", kinds=["sensor"])
    ((path, n),) = files.items()
    rows = list(csv.DictReader(path.open()))
    assert path == tmp_path / "x" / "host_sense" / "sensor.csv"
    assert n == 60 and float(rows[0]["mag_ut_x"]) == 22.5
    # no clock map in these files: UTC is the spacecraft clock, and says so
    assert {r["utc_from"] for r in rows} == {"spacecraft_clock"} and rows[0]["utc"] == "2025-03-20T06:00:16.000Z"
    assert [float(r["t_sc_s"]) for r in rows] == sorted(float(r["t_sc_s"]) for r in rows)


def test_export_flattens_device_records(tmp_path, buslog):
    db = tmp_path / "d.sqlite"
    with Archive(db) as a:
        a.load_file(buslog)
    assert ground_main(["export", str(db), str(tmp_path / "csv"), "--device", "bms", "--device", "opc"]) == 0
    bv2 = list(csv.DictReader((tmp_path / "csv" / "onboard_buslog" / "hk_reading__bms__BV2.csv").open()))
    assert len(bv2) == 2 * N_POLLS and {r["group_size"] for r in bv2} == {"8", "4"}
    assert 3.0 < float(bv2[0]["cell_voltage_v_7"]) < 4.2 and bv2[1]["cell_voltage_v_7"] == ""
    hist = list(csv.DictReader((tmp_path / "csv" / "onboard_buslog" / "hk_reading__opc__histogram.csv").open()))
    assert len(hist) == N_POLLS and "bin_counts_23" in hist[0]
    assert hist[0]["bin_conc_per_ml_0"] == ""  # first histogram: period 0, no concentration
    st1 = list(csv.DictReader((tmp_path / "csv" / "onboard_buslog" / "hk_reading__bms__ST1.csv").open()))
    assert st1[0]["pins"] == "charger_enable;contactor"


def test_a_new_source_plugs_in_through_the_reader_hook(tmp_path):
    """How the batch-file reader joins: detect + read returning records."""

    def detect(path, head):
        return head[:4] == b"TEST"

    def read(path, data):
        n = int(data[4:].decode())
        return SourceRecords(
            [Record("hk_reading", float(i), {"v": i}, "dev", "X") for i in range(n)],
            {"bytes_total": len(data)},
            {"run": 1},
        )

    register_reader("test_batch", detect, read)
    try:
        f = tmp_path / "b0001.bin"
        f.write_bytes(b"TEST5")
        db = tmp_path / "h.sqlite"
        assert ground_main(["archive", str(db), str(f)]) == 0
        assert _count(db, "SELECT COUNT(*) FROM records WHERE device = ?", ("dev",)) == 5
    finally:
        READERS.pop("test_batch")


def test_cli_errors_are_messages_not_tracebacks(tmp_path, capsys):
    db = tmp_path / "f.sqlite"
    assert ground_main(["archive", str(db), str(tmp_path / "missing.log")]) == 1
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00garbage")
    assert ground_main(["archive", str(db), str(junk)]) == 1
    notdb = tmp_path / "notdb.sqlite"
    notdb.write_bytes(b"this is not sqlite" * 100)
    assert ground_main(["archive", str(notdb), str(junk)]) == 1
    assert ground_main(["export", str(tmp_path / "none.sqlite"), str(tmp_path / "o")]) == 1
    with pytest.raises(SystemExit) as e:
        ground_main(["archive"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no such file" in err and "no reader" in err


# -- malformed CSV: refused whole ---------------------------------------------------------------------

_BUSLOG_HEADER = "offset,channel,t_rx_mono_s,type,src,seq,body_json"


def _layout_header(source, kind):
    from ground.archive.sources import csv_layouts

    return ",".join(sorted(next(cols for cols, sk in csv_layouts().items() if sk == (source, kind))))


def _archive_quietly(*argv):
    """(exit status, stdout, stderr) of ``ground archive ARGV``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = ground_main(["archive", *map(str, argv)])
    return rc, out.getvalue(), err.getvalue()


_json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["values", "device", "record", "state", "t_sc_s", "spacecraft_id", "run", "peer_id"])
            | st.text(max_size=4),
            inner,
            max_size=4,
        )
    ),
    max_leaves=8,
)
_cells = st.one_of(
    st.text(max_size=12),
    _json_values.map(json.dumps),
    st.integers(0, 3000).map(lambda n: "[" * n + "]" * n),  # nesting past any parser's depth
    st.sampled_from(["", "0x4B", str(2**70), "9" * 400, "NaN", "-inf", '"', '"unterminated']),
)


@st.composite
def _csv_bodies(draw, width):
    """Arbitrary bytes, arbitrary text, or rows of JSON, text and numbers (mostly of the
    header's width, as the writer would quote them) - then perhaps cut short."""
    kind = draw(st.sampled_from(["bytes", "text", "rows"]))
    if kind == "bytes":
        return draw(st.binary(max_size=400))
    if kind == "text":
        return draw(st.text(max_size=400)).encode("utf-8", "surrogatepass")
    row = st.one_of(st.lists(_cells, min_size=width, max_size=width), st.lists(_cells, max_size=width + 2))
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(draw(st.lists(row, max_size=4)))
    body = buf.getvalue().encode("utf-8", "surrogatepass")
    return body[: draw(st.integers(0, len(body)))] if draw(st.booleans()) else body


_HEADERS = [
    _BUSLOG_HEADER,
    "name,value",
    "orbit",  # the decoded downlink's orbit table
    "hk",  # the decoded downlink's housekeeping table
    "a,b,c",  # no layout the archive knows
]


@st.composite
def _csv_files(draw):
    header = draw(st.sampled_from(_HEADERS))
    if header in ("orbit", "hk"):
        header = _layout_header("onboard_downlink", header)
    return header.encode() + b"\r\n" + draw(_csv_bodies(header.count(",") + 1))


_GOOD_CSV = b"name,value\r\nrun,3\r\nt_sc_s,1700000000.0\r\n"


@settings(max_examples=150, deadline=None)
@given(_csv_files())
@example((_BUSLOG_HEADER + '\r\n1,2,3,hk_reading,x,1,"[1,2]"\r\n').encode())  # the review's: AttributeError
@example((_BUSLOG_HEADER + '\r\n1,2,3,orbit_estimate,x,1,"[1]"\r\n').encode())  # AttributeError
@example((_BUSLOG_HEADER + '\r\n1,2,3,hk_reading,x,1,"{""values"": 5}"\r\n').encode())  # TypeError
@example((_BUSLOG_HEADER + "\r\n1,2,3,orbit_estimate,x,1," + "[" * 50_000 + "\r\n").encode())  # RecursionError
@example(b"name,value\r\nx," + b"[" * 100_000 + b"\r\n")  # csv.Error: a field past the CSV limit
@example(b'name,value\r\n"unterminated\r\n')  # a torn quote: a status of no fields was stored
@example((_layout_header("onboard_downlink", "orbit") + "\r\n" + ",".join([str(2**70)] * 31) + "\r\n").encode())
def test_any_csv_body_is_loaded_or_refused_whole(data):
    """Whatever a CSV's body holds, ``ground archive`` loads it or refuses it in one line
    naming the file (exit 2) - never a traceback - and a refused run leaves no new archive
    and an existing one byte for byte as it was (a good file in the same run is not kept)."""
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        f, good, again = d / "x.csv", d / "good.csv", d / "again.csv"
        f.write_bytes(data)
        good.write_bytes(_GOOD_CSV)
        again.write_bytes(_GOOD_CSV.replace(b"run,3", b"run,4"))
        new_dir = d / "new"
        new_dir.mkdir()
        rc, _, err = _archive_quietly(new_dir / "a.sqlite", "--kind", "csv", f)
        if rc == 2:
            assert len(err.splitlines()) == 1 and f"archive: {f}: refused, a malformed csv file: " in err, err
            assert list(new_dir.iterdir()) == []  # nothing left behind, no journal either
        else:
            assert rc == 0 and "Traceback" not in err and (new_dir / "a.sqlite").exists(), err
        old = d / "old.sqlite"
        assert _archive_quietly(old, good)[0] == 0
        before = old.read_bytes()
        rc2, _, err = _archive_quietly(old, "--kind", "csv", again, f)
        assert rc2 == rc, err
        if rc == 2:
            assert old.read_bytes() == before
            assert sorted(p.name for p in d.iterdir()) == ["again.csv", "good.csv", "new", "old.sqlite", "x.csv"]


def test_an_interrupted_run_leaves_no_new_archive_and_an_old_one_as_it_was(tmp_path):
    """Ctrl-C in the second file of a run: the first file's records are not kept either."""

    def read(path, data):
        if data.startswith(b"TESTSTOP"):
            raise KeyboardInterrupt
        return SourceRecords([Record("x", 1.0, {"v": data.decode()})])

    register_reader("test_stop", lambda path, head: head.startswith(b"TEST"), read)
    try:
        (tmp_path / "in").mkdir()
        (tmp_path / "in" / "1.bin").write_bytes(b"TEST1")
        (tmp_path / "in" / "2.bin").write_bytes(b"TESTSTOP")
        new = tmp_path / "new"
        new.mkdir()
        with pytest.raises(KeyboardInterrupt):
            ground_main(["archive", str(new / "a.sqlite"), str(tmp_path / "in")])
        assert list(new.iterdir()) == []
        old = tmp_path / "old.sqlite"
        (tmp_path / "0.bin").write_bytes(b"TEST0")
        assert ground_main(["archive", str(old), str(tmp_path / "0.bin")]) == 0
        before = old.read_bytes()
        with pytest.raises(KeyboardInterrupt):
            ground_main(["archive", str(old), str(tmp_path / "in")])
        assert old.read_bytes() == before
    finally:
        READERS.pop("test_stop")


def test_export_into_an_existing_file_is_refused_before_any_work(tmp_path, buslog):
    """``ground export DB FILE`` (it was a NotADirectoryError traceback after the query) and
    an OUT_DIR under a file: a message each, as the user types them."""
    import subprocess
    import sys

    db = tmp_path / "a.sqlite"
    assert ground_main(["archive", str(db), str(buslog)]) == 0
    f = tmp_path / "out.csv"
    f.write_text("keep me")
    for out, rc, says in (
        (f, 2, f"export: OUT_DIR {f} exists and is not a directory"),
        (f / "sub", 1, "Not a directory"),
    ):
        p = subprocess.run(
            [sys.executable, "-m", "ground", "export", str(db), str(out)], capture_output=True, text=True, cwd=REPO
        )
        assert p.returncode == rc and says in p.stderr and "Traceback" not in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1
    assert f.read_text() == "keep me"


# -- upload queue -----------------------------------------------------------------------------------


class _Server:
    """A loopback HTTP receiver whose answers follow a script: a list of actions, one per POST
    ('503', 'drop' = close without answering, '400', 'wrongsum', 'ok', 'lost_reply' = store
    the file, then close without answering).  It stores a file once per Idempotency-Key
    (``stored``: key -> body), as the protocol asks of a receiver."""

    def __init__(self, script):
        self.script = list(script)
        self.received: list[tuple[str, bytes, dict]] = []
        self.stored: dict[str, bytes] = {}
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                action = outer.script.pop(0) if outer.script else "ok"
                outer.received.append((action, body, self.headers))
                if action in ("ok", "lost_reply"):
                    outer.stored.setdefault(self.headers["Idempotency-Key"], body)
                if action in ("drop", "lost_reply"):
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                code = {"503": 503, "400": 400}.get(action, 200)
                sha = hashlib.sha256(body).hexdigest() if action != "wrongsum" else "0" * 64
                data = json.dumps({"sha256": sha}).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/batches"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def files(tmp_path):
    out = []
    for i in range(3):
        p = tmp_path / f"batch_{i:05d}.bin"
        p.write_bytes(bytes([i]) * (1000 + i))
        out.append(p)
    return out


def test_upload_retries_with_backoff_and_marks_sent_only_on_success(tmp_path, files):
    srv = _Server(["503", "drop", "wrongsum", "ok", "ok", "ok"])
    sleeps = []
    q = UploadQueue(tmp_path / "q.sqlite")
    try:
        assert [q.add(f) for f in files] == ["queued"] * 3
        assert q.add(files[0]) == "already queued"
        sent, left = q.send(
            srv.url,
            token="s3cret",
            attempts=5,
            backoff_s=0.2,
            max_backoff_s=0.4,
            timeout_s=5,
            log=lambda *_: None,
            sleep=lambda s: (sleeps.append(s), time.sleep(s)),
        )
        assert (sent, left) == (3, 0)
        assert [a for a, _, _ in srv.received] == ["503", "drop", "wrongsum", "ok", "ok", "ok"]
        for _action, body, headers in srv.received:
            d = hashlib.sha256(body).digest()
            assert headers["X-Pygnc-SHA256"] == d.hex()
            assert headers["Repr-Digest"] == f"sha-256=:{base64.b64encode(d).decode()}:"
            assert headers["Authorization"] == "Bearer s3cret"
        ok_bodies = sorted(b for a, b, _ in srv.received if a == "ok")
        assert ok_bodies == sorted(f.read_bytes() for f in files)  # each once, intact
        assert sleeps and all(0 <= s <= 0.4 for s in sleeps)  # backoff honoured, bounded
        rows = q.rows()
        assert [(r[1], r[2]) for r in rows] == [("sent", 2)] * 3  # each failed once, then went
        n = len(srv.received)
        assert q.send(srv.url, log=lambda *_: None) == (0, 0) and len(srv.received) == n  # nothing resent
        assert q.add(files[0]) == "already sent"
    finally:
        q.close()
        srv.close()


def test_a_lost_reply_sends_the_file_again_under_the_same_key_and_it_is_stored_once(tmp_path, files):
    """At least once: the receiver stored the first file but its reply was lost, so the file
    goes again - with the same Idempotency-Key, in this run and from another queue later -
    and a receiver that de-duplicates on the key keeps one copy of each file."""
    import urllib.parse

    odd = tmp_path / "батч 1%.bin"  # a name no header could carry as it is
    odd.write_bytes(b"odd name")
    srv = _Server(["lost_reply", "ok", "ok", "ok"])
    q = UploadQueue(tmp_path / "q.sqlite")
    try:
        for f in (files[0], files[1], odd):
            q.add(f)
        assert q.send(srv.url, backoff_s=0.0, timeout_s=5, log=lambda *_: None, sleep=lambda s: None) == (3, 0)
    finally:
        q.close()
    assert [a for a, _, _ in srv.received] == ["lost_reply", "ok", "ok", "ok"]
    first = [h["Idempotency-Key"] for _, b, h in srv.received if b == files[0].read_bytes()]
    assert first == [f'"{hashlib.sha256(files[0].read_bytes()).hexdigest()}/{files[0].name}"'] * 2  # sent twice
    odd_headers = next(h for _, b, h in srv.received if b == odd.read_bytes())
    assert urllib.parse.unquote(odd_headers["X-Pygnc-Name"]) == odd.name
    assert odd_headers["Idempotency-Key"].endswith('/%D0%B1%D0%B0%D1%82%D1%87%201%25.bin"')
    assert sorted(srv.stored.values()) == sorted(f.read_bytes() for f in (files[0], files[1], odd))
    # the same file from another queue (another operator, a rebuilt queue): the same key
    q2 = UploadQueue(tmp_path / "q2.sqlite")
    try:
        q2.add(files[0])
        assert q2.send(srv.url, timeout_s=5, log=lambda *_: None) == (1, 0)
    finally:
        q2.close()
        srv.close()
    assert srv.received[-1][2]["Idempotency-Key"] == first[0] and len(srv.stored) == 3


def test_upload_rejection_and_unreachable_server(tmp_path, files):
    srv = _Server(["400"])
    q = UploadQueue(tmp_path / "q.sqlite")
    try:
        q.add(files[0])
        assert q.send(srv.url, attempts=3, backoff_s=0.0, log=lambda *_: None) == (0, 0)
        assert q.rows()[0][1] == "rejected" and len(srv.received) == 1  # not retried
        assert q.add(files[0]) == "queued again"
        url = srv.url
    finally:
        srv.close()
    try:  # nobody listens any more: every attempt fails, the file stays pending
        sent, left = q.send(url, attempts=2, backoff_s=0.0, timeout_s=2, log=lambda *_: None, sleep=lambda s: None)
        assert (sent, left) == (0, 1)
        path, state, tries, err, _ = q.rows()[0]
        assert state == "pending" and tries == 2 and "network" in err
    finally:
        q.close()
    assert ground_main(["upload", str(tmp_path / "q.sqlite"), "--send", "ftp://x"]) == 2
    assert ground_main(["upload", str(tmp_path / "q.sqlite"), "--list"]) == 0


def test_batch_files_with_housekeeping_records_load_decoded(tmp_path):
    """The batch writer's hk records carry the device bytes; the archive decodes them again
    with the driver's codec (one codec, no second layout) and loads a file once."""
    from pygnc.drivers import emus_bms_codec as eb
    from pygnc.drivers import opc_n3_codec as on
    from pygnc.formats import batch as B

    hk = B.KINDS_BY_NAME["hk"]
    line = eb.encode_sentence("BV1", ["0C", "A5", "A8", "AA", "0000", "07E5", "00"]).rstrip(b"\r\n")
    hist = on.encode_histogram(list(range(24)))
    readings = [
        ("bms", "emus_bms", "BV1", line),
        ("opc", "opc_n3", "histogram", hist),
        ("bms", "emus_bms", "BV1", b"BV1,garbage*00"),
    ]
    recs = [
        B.encode_record(
            hk,
            1.7e9 + k,
            B._enc_hk(
                "hk_reading",
                {"t_sc_s": 1.7e9 + k, "device": d, "kind": kind, "record": r, "raw": raw, "solicited": True},
            ),
        )
        for k, (d, kind, r, raw) in enumerate(readings)
    ]
    path = tmp_path / "b00001.bin"
    path.write_bytes(B.encode_header(1, 1, 0x4A, 0, 1.7e9, 1.7e9 + 2, len(recs)) + b"".join(recs))
    db = tmp_path / "a.sqlite"
    assert ground_main(["archive", str(db), str(path)]) == 0
    assert ground_main(["archive", str(db), str(path)]) == 0  # idempotent
    with sqlite3.connect(db) as c:
        rows = c.execute(
            "SELECT device, record, fields_json, raw FROM records WHERE kind = 'hk_reading' ORDER BY t_sc_s"
        ).fetchall()
    assert len(rows) == 3
    bv1 = json.loads(rows[0][2])
    assert rows[0][:2] == ("bms", "BV1") and bytes(rows[0][3]) == line
    assert bv1 == json.loads(
        json.dumps(eb.decode_sentence(eb.parse_line(line)) | {"solicited": True, "raw_cut": False})
    )
    opc = json.loads(rows[1][2])
    assert rows[1][:2] == ("opc", "histogram") and opc["bin_counts"] == list(range(24))
    assert "undecoded" in json.loads(rows[2][2])  # a bad sentence is kept, with why, never fatal


# -- sources, UTC, what is not recognised -------------------------------------------------------------


@pytest.fixture(scope="module")
def pass_files(tmp_path_factory):
    """A replay of the sample scenario and a pass's downlink of the same data (the batch
    files and what `decode --out` writes from them): (replay dir, batch dir, decoded dir)."""
    from test_batch_writer import _recorder, published_with_health
    from test_ground_batches import PERIODS

    from pygnc.config import Config

    d = tmp_path_factory.mktemp("pass")
    rec, store = _recorder(d / "batches", periods=PERIODS, run=12, key="r12", max_file_bytes=1200)
    for t, b in published_with_health(Config(batch_period_s=PERIODS)):
        rec.handle(t, b)
    rec.finish()
    store.close()
    assert ground_main(["replay", str(SAMPLE), "--out", str(d / "replay"), "--no-plots", "--quiet"]) == 0
    assert ground_main(["decode", str(d / "batches"), "--out", str(d / "decoded"), "--no-plots"]) == 0
    return d / "replay", d / "batches", d / "decoded"


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_replay_and_downlink_rows_keep_their_source_apart_with_utc(tmp_path, pass_files):
    """The ground's and the spacecraft's orbit tables, loaded together, stay two tables; the
    own GPS fixes are own fixes; every exported row has UTC, from the data's clock map."""
    replay, batches, decoded = pass_files
    db = tmp_path / "a.sqlite"
    assert ground_main(["archive", str(db), str(replay), str(decoded), str(batches)]) == 0
    with sqlite3.connect(db) as c:
        counts = dict(
            ((s, k, d), n)
            for s, k, d, n in c.execute(
                "SELECT source, kind, device, COUNT(*) FROM records GROUP BY source, kind, device"
            )
        )
    n_replay = len(_csv_rows(replay / "orbit.csv"))
    n_board = len(_csv_rows(decoded / "orbit.csv"))
    assert counts[("ground_replay", "orbit", "")] == n_replay and counts[("onboard_downlink", "orbit", "")] == n_board
    assert counts[("onboard_downlink", "batch_orbit", "")] == n_board  # the batch files' own records
    assert not [k for k in counts if k[1] in ("table", "peer_gps_fix") or k[2] == "peer_0"], counts
    fixes = _csv_rows(decoded / "gps_fix.csv")
    assert counts[("onboard_downlink", "gps_fix", "")] == sum(r["peer_id"] == "own" for r in fixes) > 0

    out = tmp_path / "csv"
    assert ground_main(["export", str(db), str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"ground_replay", "onboard_downlink"}
    ground, board = _csv_rows(out / "ground_replay" / "orbit.csv"), _csv_rows(out / "onboard_downlink" / "orbit.csv")
    assert len(ground) == n_replay and len(board) == n_board
    assert {r["source"] for r in ground} == {"ground_replay"} and {r["source"] for r in board} == {"onboard_downlink"}
    assert list(ground[0])[:8] == ["t_sc_s", "utc", "utc_from", "source", "spacecraft_id", "run", "device", "record"]
    assert {(r["spacecraft_id"], r["run"]) for r in board} == {("74", "12")}  # the batch files' header
    # UTC: the decoded rows' own GPS time, the batch records' through run 12's clock map: the same instants
    by_t = {r["t_sc_s"]: r["utc"] for r in _csv_rows(decoded / "orbit.csv")}
    assert all(r["utc"] == by_t[str(float(r["t_sc_s"]))] and r["utc_from"] == "gps_time" for r in board)
    raw = _csv_rows(out / "onboard_downlink" / "batch_orbit.csv")
    assert {r["utc_from"] for r in raw} == {"clock_map_0x4A_run_12"}
    assert [r["utc"] for r in raw] == [r["utc"] for r in board]
    assert {r["utc_from"] for r in ground} == {"gps_time"}
    # one source only, and its filter
    assert ground_main(["export", str(db), str(tmp_path / "only"), "--source", "ground_replay"]) == 0
    assert [p.name for p in (tmp_path / "only").iterdir()] == ["ground_replay"]


def test_export_utc_from_a_bus_logs_clock_map_and_without_one(tmp_path):
    """A bus log of run 7 with a clock map, and one of run 8 without: run 7's sensor rows in
    UTC through the map, run 8's on the spacecraft clock, each saying which."""
    from pygnc.timebase import ClockMap, utc_unix_from_gps

    cm = {
        "gps_minus_sc_s": -16.0,
        "drift": 1e-6,
        "t_ref_sc_s": 1.7e9,
        "n_pairs": 9,
        "residual_rms_s": 0.3,
        "utc_minus_sc_s": -34.0,
    }
    sensor = {
        "t_sc_s": 1.7e9 + 100.0,
        "mag_ut": [1.0, 2.0, 3.0],
        "gyro_deg_s": [0.0, 0.0, 0.0],
        "sun_lux": [0.0] * 6,
        "sun_saturated": [False] * 6,
        "record": 1,
    }
    enc = Encoder("ingest")
    for run, with_map in ((7, True), (8, False)):
        frames = [encode_header_frame(run, SCHEMA_VERSION)]
        if with_map:
            frames.append(encode_frame("meas", 0.0, enc.encode("clock_map", cm)))
        frames.append(encode_frame("meas", 0.1, enc.encode("sensor", dict(sensor, t_sc_s=1.7e9 + 100.0 * (run - 6)))))
        (tmp_path / f"run{run}").mkdir()
        (tmp_path / f"run{run}" / "bus.log").write_bytes(b"".join(frames))
    db = tmp_path / "a.sqlite"
    assert ground_main(["archive", str(db), str(tmp_path / "run7"), str(tmp_path / "run8")]) == 0
    files = export(db, tmp_path / "csv", kinds=["sensor"])
    ((path, n),) = files.items()
    rows = _csv_rows(path)
    # (these logs' headers say spacecraft_id 0: not set on board)
    assert n == 2 and [r["utc_from"] for r in rows] == ["clock_map_0x00_run_7", "spacecraft_clock"]
    want = utc_unix_from_gps(ClockMap(-16.0, 1e-6, 1.7e9, 9, 0.3).gps_from_sc(1.7e9 + 100.0))
    from ground.outputs.tables import iso_utc

    assert rows[0]["utc"] == iso_utc([want])[0] and rows[1]["utc"] == iso_utc([1.7e9 + 200.0])[0]


def _two_spacecraft_downlinks(d):
    """The sample's published messages as the batch files of two spacecraft, both run 1:
    0x4A's, and 0x4B's whose clock map says its clock is 29 s further from GPS time (every
    other record the same bytes)."""
    from test_batch_writer import _Now, published_with_health
    from test_ground_batches import PERIODS

    from pygnc import batch_store as bs
    from pygnc.config import Config
    from pygnc.formats import batch as B
    from pygnc.tasks.batch_writer import BatchRecorder

    messages = published_with_health(Config(batch_period_s=PERIODS))

    def write(sc: int, shift_s: float) -> None:
        rec = None
        store = bs.BatchStore(d / f"sc{sc:02X}", 1, "r1", sc, context=lambda: rec.context_records())
        store.open()
        rec = BatchRecorder(list(B.current_kinds()), PERIODS, store, _Now(1.8e9))
        for t, b in messages:
            if t == "clock_map":
                shifted = {k: b[k] + shift_s for k in ("gps_minus_sc_s", "utc_minus_sc_s")}
                b = {**b, **shifted}
            rec.handle(t, b)
        rec.finish()
        store.close()

    write(0x4A, 0.0)
    write(0x4B, 29.0)
    return d / "sc4A", d / "sc4B"


def test_two_spacecraft_are_told_apart_in_the_archive_and_the_decode(tmp_path, capsys):
    """Issue 45 item 10: no archived or exported row named its spacecraft, clock maps were
    chosen by run number alone (one spacecraft's rows timed with the other's map: 29 s wrong
    in UTC) and the duplicate check credited one spacecraft's identical records to the
    other's file.  Now every row carries its spacecraft and run, a row is timed with its own
    spacecraft's map, and identical records of two spacecraft are two records."""
    a, b = _two_spacecraft_downlinks(tmp_path)
    db = tmp_path / "a.sqlite"
    assert ground_main(["archive", str(db), str(a)]) == 0
    n_a = _count(db)
    assert ground_main(["archive", str(db), str(b)]) == 0
    assert "0x4B  onboard_downlink" in capsys.readouterr().out
    assert _count(db) == 2 * n_a  # nothing of 0x4B's counted as 0x4A's
    assert _count(db, "SELECT COUNT(*) FROM records WHERE spacecraft_id = 75 AND run = 1") == n_a
    assert ground_main(["export", str(db), str(tmp_path / "csv")]) == 0
    rows = _csv_rows(tmp_path / "csv" / "onboard_downlink" / "batch_orbit.csv")
    assert {r["spacecraft_id"] for r in rows} == {"74", "75"} and all(r["run"] == "1" for r in rows)
    by = {(r["spacecraft_id"], r["t_sc_s"]): r for r in rows}
    pairs = [(by[("74", t)], by[("75", t)]) for sc, t in by if sc == "74"]
    assert pairs and all(
        r4a["utc_from"] == "clock_map_0x4A_run_1" and r4b["utc_from"] == "clock_map_0x4B_run_1" for r4a, r4b in pairs
    )
    import datetime as dt

    def t(text):
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    assert all(abs(t(r4b["utc"]) - t(r4a["utc"]) - 29.0) < 1e-3 for r4a, r4b in pairs)
    # every exported row says whose it is
    for f in (tmp_path / "csv").rglob("*.csv"):
        assert all(r["spacecraft_id"] in ("74", "75") for r in _csv_rows(f)), f
    # one spacecraft's rows only
    assert ground_main(["export", str(db), str(tmp_path / "only"), "--spacecraft", "0x4B"]) == 0
    rows = _csv_rows(tmp_path / "only" / "onboard_downlink" / "batch_orbit.csv")
    assert rows and {r["spacecraft_id"] for r in rows} == {"75"}
    # `ground decode` of both at once: each row with its spacecraft, timed with its own map
    both = tmp_path / "both"
    both.mkdir()
    for d in (a, b):
        for f in d.glob("batch_*.bin"):
            (both / f"{d.name}_{f.name}").write_bytes(f.read_bytes())
    assert ground_main(["decode", str(both), "--out", str(tmp_path / "dec"), "--no-plots"]) == 0
    orbit = _csv_rows(tmp_path / "dec" / "orbit.csv")
    by = {(r["spacecraft_id"], r["t_sc_s"]): float(r["unix_time_s"]) for r in orbit}
    diffs = [by[("75", t)] - by[("74", t)] for sc, t in by if sc == "74" and ("75", t) in by]
    assert diffs and all(abs(d - 29.0) < 1e-3 for d in diffs)


def test_a_file_that_names_no_spacecraft_takes_the_operators(tmp_path, capsys):
    """A status file does not say whose it is: `--spacecraft` names it; a file that says
    another spacecraft is refused; without either, the summary says how many are unknown."""
    st = S.empty_status()
    st["t_sc_s"], st["run"] = 1.7e9, 3
    f = tmp_path / "pygnc_status.bin"
    f.write_bytes(S.encode_status(st))
    db = tmp_path / "a.sqlite"
    assert ground_main(["archive", str(db), str(f)]) == 0
    assert "1 records of no known spacecraft" in capsys.readouterr().out
    st["t_sc_s"] += 1.0
    f.write_bytes(S.encode_status(st))
    assert ground_main(["archive", str(db), str(f), "--spacecraft", "0x4C"]) == 0
    assert _count(db, "SELECT COUNT(*) FROM records WHERE spacecraft_id = 76 AND run = 3") == 1
    a, _ = _two_spacecraft_downlinks(tmp_path)
    first = sorted(a.glob("batch_*.bin"))[0]
    assert ground_main(["archive", str(db), str(first), "--spacecraft", "0x4C"]) == 1
    assert "the file is spacecraft 0x4A's, not --spacecraft 0x4C's" in capsys.readouterr().err
    assert ground_main(["archive", str(db), str(f), "--spacecraft", "x"]) == 2


def test_a_directory_of_random_files_says_what_it_found_and_creates_nothing(tmp_path, capsys):
    import random

    rng = random.Random(3)
    junk = tmp_path / "junk"
    junk.mkdir()
    for name in ("f1.dat", "f2.dat", "pygnc_status.bin", "table.csv", "bus.log"):
        (junk / name).write_bytes(bytes(rng.getrandbits(8) for _ in range(3000)))
    (junk / "batch_00000001.bin").write_bytes(b"PGNB" + bytes(rng.getrandbits(8) for _ in range(3000)))
    db = tmp_path / "a.sqlite"
    assert ground_main(["archive", str(db), str(junk)]) == 1
    err = capsys.readouterr().err
    assert "files not recognised by any reader" in err and "f1.dat, f2.dat" in err and "table.csv" in err
    assert "batch_00000001.bin: unreadable: no intact batch header or record" in err
    assert "nothing loaded" in err and f"{db} not created" in err and not db.exists()
    # with one usable file beside them: loaded, the rest named, exit 0
    st = S.empty_status()
    st["t_sc_s"] = 1.7e9
    (junk / "pygnc_status.bin").write_bytes(S.encode_status(st))
    assert ground_main(["archive", str(db), str(junk)]) == 0
    captured = capsys.readouterr()
    assert "pygnc_status.bin: status: 1 records stored" in captured.out and "f1.dat" in captured.err
    # a status file that fails its CRC is unreadable, not loaded empty
    bad = bytearray(S.encode_status(st))
    bad[30] ^= 1
    (tmp_path / "pygnc_status.bin").write_bytes(bytes(bad))
    assert ground_main(["archive", str(db), str(tmp_path / "pygnc_status.bin")]) == 1
    assert "not a valid status file: CRC mismatch" in capsys.readouterr().err


def test_an_archive_of_schema_1_is_brought_to_schema_5(tmp_path, pass_files):
    """Records of schema 1 (no source; a downlink's own fixes as peer_gps_fix / peer_0, its
    orbit table as table / orbit) get their source, kind and device (schema 2), their
    spacecraft and run (schema 3) and the keys of schema 5: loading the same rows again adds
    nothing."""
    import shutil

    _, _, decoded = pass_files
    v1 = """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE sources (source_id INTEGER PRIMARY KEY, kind TEXT NOT NULL, path TEXT NOT NULL,
        sha256 TEXT NOT NULL UNIQUE, size_bytes INTEGER NOT NULL, loaded_utc TEXT NOT NULL, records INTEGER NOT NULL,
        duplicates INTEGER NOT NULL, stats_json TEXT NOT NULL, meta_json TEXT NOT NULL);
    CREATE TABLE records (record_id INTEGER PRIMARY KEY, source_id INTEGER NOT NULL REFERENCES sources(source_id),
        kind TEXT NOT NULL, device TEXT NOT NULL, record TEXT NOT NULL, t_sc_s REAL, key BLOB NOT NULL UNIQUE,
        fields_json TEXT NOT NULL, raw BLOB);
    CREATE INDEX records_by_time ON records(t_sc_s);
    CREATE INDEX records_by_device_time ON records(device, t_sc_s);
    CREATE INDEX records_by_kind_time ON records(kind, record, t_sc_s);
    INSERT INTO meta VALUES ('schema_version', '1');
    """
    from ground.archive.sources import _cell

    def old_key(kind, device, t, fj):
        h = hashlib.sha256(f"{kind}\0{device}\0\0{t!r}\0".encode())
        h.update(fj.encode() + b"\0")
        return h.digest()[:16]

    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as c:
        c.executescript(v1)
        for sid, (name, kind) in enumerate([("gps_fix.csv", "peer_gps_fix"), ("orbit.csv", "table")], 1):
            c.execute(
                "INSERT INTO sources VALUES (?, 'csv', ?, ?, 0, '', 0, 0, '{}', ?)",
                (sid, str(decoded / name), f"sha{sid}", json.dumps({"csv": kind})),
            )
            for row in _csv_rows(decoded / name):
                fields = {k: _cell(v) for k, v in row.items()}
                device = f"peer_{fields['peer_id']}" if kind == "peer_gps_fix" else "orbit"
                fj = json.dumps(fields, sort_keys=True, separators=(",", ":"))
                c.execute(
                    "INSERT INTO records (source_id, kind, device, record, t_sc_s, key, fields_json)"
                    " VALUES (?, ?, ?, '', ?, ?, ?)",
                    (sid, kind, device, fields["t_sc_s"], old_key(kind, device, fields["t_sc_s"], fj), fj),
                )
    n = _count(db)
    with Archive(db) as a:
        kinds = a.conn.execute("SELECT DISTINCT source, kind, device FROM records ORDER BY kind").fetchall()
        assert a.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("5",)
        assert a.conn.execute("SELECT DISTINCT spacecraft_id, run FROM records").fetchall() == [(0x4A, 12)]
        # the same rows from other files (other bytes): every one already there
        for name in ("gps_fix.csv", "orbit.csv"):
            copy = tmp_path / name
            shutil.copy(decoded / name, copy)
            copy.write_bytes(copy.read_bytes() + b"\r\n")
            r = a.load_file(copy)
            assert r.records == 0 and r.duplicates > 0, r
    assert kinds == [("onboard_downlink", "gps_fix", ""), ("onboard_downlink", "orbit", "")]
    assert _count(db) == n


@pytest.mark.parametrize("version, origin", [(2, False), (3, True), (3, False)])
def test_an_older_archive_spells_its_partners_as_everywhere_else(tmp_path, pass_files, version, origin):
    """Schemas 2 and 3 named a partner's device by its decimal id (``peer_75``); opened, the
    archive writes it ``peer_0x4B`` as every file does (schema 4), one without ``spacecraft_id``
    and ``run`` (schema 2, or a development build's schema 3) also getting them, with the keys
    that go with them: the same records loaded again from other bytes add nothing (issue 43
    item 5)."""
    import shutil

    from ground.archive.store import record_key

    _, batches, _ = pass_files
    db = tmp_path / f"v{version}.sqlite"
    assert ground_main(["archive", str(db), str(batches)]) == 0
    n = _count(db)
    with sqlite3.connect(db) as c:  # as that schema left it
        rows = c.execute(
            "SELECT record_id, source, kind, device, record, t_sc_s, fields_json, raw, spacecraft_id, run"
            " FROM records WHERE device != ''"
        ).fetchall()
        assert {r[3] for r in rows} == {"peer_0x4B"}
        for rid, source, kind, _, record, t, fj, raw, sc, run in rows:
            key = record_key(source, kind, "peer_75", record, t, fj, raw, *((sc, run) if origin else ()))
            c.execute("UPDATE records SET device = 'peer_75', key = ? WHERE record_id = ?", (key, rid))
        if not origin:
            for rid, source, kind, device, record, t, fj, raw in c.execute(
                "SELECT record_id, source, kind, device, record, t_sc_s, fields_json, raw FROM records"
            ).fetchall():
                c.execute(
                    "UPDATE records SET key = ? WHERE record_id = ?",
                    (record_key(source, kind, device, record, t, fj, raw), rid),
                )
            c.execute("DROP INDEX records_by_spacecraft_run")
            c.execute("ALTER TABLE records DROP COLUMN spacecraft_id")
            c.execute("ALTER TABLE records DROP COLUMN run")
        c.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    with Archive(db) as a:
        assert a.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("5",)
        devices = {d for (d,) in a.conn.execute("SELECT DISTINCT device FROM records")}
        assert devices == {"", "peer_0x4B"}
        assert a.conn.execute("SELECT COUNT(*) FROM records WHERE spacecraft_id IS NULL OR run IS NULL").fetchone() == (
            0,
        )
        again = tmp_path / "again"
        again.mkdir()
        for p in sorted(batches.glob("batch_*.bin")):
            shutil.copy(p, again / p.name)
            (again / p.name).write_bytes(p.read_bytes() + b"\0")  # other bytes, same records
        for p in sorted(again.iterdir()):
            a.load_file(p)
    assert _count(db) == n
    cells = set()
    for path in export(db, tmp_path / "x"):
        for r in _csv_rows(path):
            cells.add(r.get("peer_id"))
    assert cells - {None} <= {"own", "0x4B"} and "0x4B" in cells  # exported as every file writes it


def test_an_estimates_quality_is_its_word_from_batch_files_and_from_their_csv(tmp_path, pass_files):
    """The same downlinked estimates loaded from the batch files (``batch_orbit``, ...) and
    from the CSV decode writes of them (``orbit``, ...) carry the same quality, the status
    file's word - stored and exported (the batch records had the code: 1 for ``ok``)."""
    _, batches, decoded = pass_files
    db = tmp_path / "a.sqlite"
    assert ground_main(["archive", str(db), str(decoded), str(batches)]) == 0
    words = set()
    with sqlite3.connect(db) as c:
        for kind in ("orbit", "attitude", "formation"):
            got = {}
            for k in (kind, f"batch_{kind}"):
                got[k] = {
                    (t, device): json.loads(fj)["quality"]
                    for t, device, fj in c.execute(
                        "SELECT t_sc_s, device, fields_json FROM records"
                        " WHERE source = 'onboard_downlink' AND kind = ?",
                        (k,),
                    )
                }
            assert got[kind] and got[kind] == got[f"batch_{kind}"], kind
            words |= set(got[kind].values())
    assert "ok" in words and words <= set(S.ESTIMATE_QUALITY) | {None}
    assert ground_main(["export", str(db), str(tmp_path / "csv"), "--source", "onboard_downlink"]) == 0
    out = tmp_path / "csv" / "onboard_downlink"
    for kind in ("orbit", "attitude", "formation"):
        quality = {
            k: {
                (r["t_sc_s"], r["device"]): r["quality"]
                for f in [*out.glob(f"{k}.csv"), *out.glob(f"{k}__*.csv")]
                for r in _csv_rows(f)
            }
            for k in (kind, f"batch_{kind}")
        }
        assert quality[kind] and quality[kind] == quality[f"batch_{kind}"], kind
        assert set(quality[kind].values()) <= set(S.ESTIMATE_QUALITY) | {""}


def test_an_archive_of_schema_4_gets_its_batch_qualities_as_words(tmp_path, pass_files):
    """Schema 4 stored a batch record's quality as its code: opened, the archive writes the
    word (schema 5) with the key that goes with it, so the same records loaded again from
    other bytes add nothing; a refused run leaves a schema-4 archive byte for byte as it was
    (the conversion is part of the run's transaction).  Two records that differ only in codes
    of no word (0: not recorded, 250: unknown) become one."""
    import shutil

    from ground.archive.store import record_key
    from pygnc.formats.batch import quality_code

    _, batches, _ = pass_files
    db = tmp_path / "v4.sqlite"
    assert ground_main(["archive", str(db), str(batches)]) == 0
    n = _count(db)
    with sqlite3.connect(db) as c:  # as schema 4 left it
        rows = c.execute(
            "SELECT record_id, source, kind, device, record, t_sc_s, fields_json, raw, spacecraft_id, run"
            " FROM records WHERE json_type(fields_json, '$.quality') IS NOT NULL"
        ).fetchall()
        assert {r[2] for r in rows} == {"batch_orbit", "batch_attitude", "batch_formation"}
        for rid, source, kind, device, record, t, fj, raw, sc, run in rows:
            fields = json.loads(fj)
            fields["quality"] = quality_code(fields["quality"])
            fj = json.dumps(fields, sort_keys=True, separators=(",", ":"))
            key = record_key(source, kind, device, record, t, fj, raw, sc, run)
            c.execute("UPDATE records SET fields_json = ?, key = ? WHERE record_id = ?", (fj, key, rid))
        rid, source, kind, device, record, t, fj, raw, sc, run = rows[0]
        sid = c.execute("SELECT source_id FROM records WHERE record_id = ?", (rid,)).fetchone()[0]
        for code in (0, 250):
            fj = json.dumps({**json.loads(fj), "quality": code}, sort_keys=True, separators=(",", ":"))
            c.execute(
                "INSERT INTO records (source_id, source, kind, device, record, t_sc_s, key, fields_json, raw,"
                " spacecraft_id, run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sid, source, kind, device, record, t, record_key(source, kind, device, record, t, fj, raw, sc, run))
                + (fj, raw, sc, run),
            )
        c.execute("UPDATE sources SET records = records + 2 WHERE source_id = ?", (sid,))
        stored, dups = c.execute("SELECT SUM(records), SUM(duplicates) FROM sources").fetchone()
        c.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    schema_4 = db.read_bytes()
    bad = tmp_path / "bad.csv"
    bad.write_text(_BUSLOG_HEADER + '\r\n1,2,3,orbit_estimate,x,1,"[1]"\r\n')
    assert _archive_quietly(db, batches, bad)[0] == 2
    assert db.read_bytes() == schema_4
    with Archive(db) as a:
        assert a.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("5",)
        qualities = a.conn.execute(
            "SELECT DISTINCT json_extract(fields_json, '$.quality') FROM records"
            " WHERE json_type(fields_json, '$.quality') IS NOT NULL"
        ).fetchall()
        assert ("ok",) in qualities and {q for (q,) in qualities} <= set(S.ESTIMATE_QUALITY) | {None}
        assert a.conn.execute("SELECT SUM(records), SUM(duplicates) FROM sources").fetchone() == (stored - 1, dups + 1)
        again = tmp_path / "again"
        again.mkdir()
        for p in sorted(batches.glob("batch_*.bin")):
            shutil.copy(p, again / p.name)
            (again / p.name).write_bytes(p.read_bytes() + b"\0")  # other bytes, same records
            assert a.load_file(again / p.name).records == 0
    assert _count(db) == n + 1


def test_a_bus_log_and_its_decoded_csv_are_one_set_of_records(tmp_path):
    """operations.md decodes a run's bus log to CSV beside it; archiving the run directory
    then stored every message twice (the CSV named no spacecraft or run, a partner's
    estimate was filed under its task, a reading lost its bytes): the same records now."""
    from test_batch_writer import published_with_health
    from test_ground_batches import PERIODS

    from pygnc.config import Config

    run = tmp_path / "run_00003"
    run.mkdir()
    frames = [encode_header_frame(3, SCHEMA_VERSION, spacecraft_id=0x4A)]
    frames += _frames_of(synthetic_hk_buslog(2))[1:]  # (its own header left out)
    for i, (mtype, body) in enumerate(published_with_health(Config(batch_period_s=PERIODS))):
        frames.append(encode_frame("est", 1.0 + i * 0.01, Encoder(f"{mtype}_task").encode(mtype, body)))
    frames.append(encode_frame("est", 9.0, b"\x93not a message"))  # undecodable: a blank row in the CSV
    (run / "bus.log").write_bytes(b"".join(frames))
    assert ground_main(["decode", str(run), "--csv", str(run / "run3.csv")]) == 0
    db = tmp_path / "a.sqlite"
    assert ground_main(["archive", str(db), str(run / "bus.log")]) == 0
    n = _count(db)
    assert n > 2 * PER_POLL and _count(db, "SELECT COUNT(*) FROM records WHERE device LIKE 'peer_0x%'") > 0
    assert ground_main(["archive", str(db), str(run)]) == 0  # the CSV beside it
    assert _count(db) == n
    assert _count(db, "SELECT COUNT(*) FROM records WHERE spacecraft_id IS NOT 74 OR run IS NOT 3") == 0
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT records, duplicates FROM sources ORDER BY source_id").fetchall() == [(n, 0), (0, n)]


def _frames_of(log: bytes) -> list[bytes]:
    """A bus log's frames, each as its bytes."""
    from pygnc.formats.buslog import decode_frames

    d = decode_frames(log)
    ends = [f.offset for f in d.frames[1:]] + [len(log)]
    return [log[f.offset : e] for f, e in zip(d.frames, ends)]


def test_an_export_that_matches_nothing_lists_the_archives_kinds(tmp_path, buslog, capsys):
    """A mistyped ``--kind`` says what the archive holds - read-only, whatever the name
    (a '?' in it once opened another file read-write and left it behind)."""
    db = tmp_path / "pass?2#.sqlite"
    assert ground_main(["archive", str(db), str(buslog)]) == 0
    capsys.readouterr()
    assert ground_main(["export", str(db), str(tmp_path / "x"), "--kind", "hk_readin"]) == 0
    err = capsys.readouterr().err
    assert "no records match (the archive's kinds: hk_reading)" in err, err
    assert not (tmp_path / "pass").exists()
