"""``python -m ground decode`` on downlinked batch files: CSVs in the replay's layout, plots,
and every gap, missing file, reused sequence number and interleaved run reported."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from flight_harness import REPO
from hypothesis import given, settings
from hypothesis import strategies as st
from test_batch_writer import _recorder, published_with_health

from ground.decode import batch_files as G
from ground.outputs import tables as tb
from pygnc import batch_store as bs
from pygnc.config import Config
from pygnc.formats import batch as B


def _ground(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ground", "decode", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


#: The writer's cadence here: 20 s for every periodic kind.
PERIODS = {k.name: 20.0 for k in B.current_kinds() if k.period_s}  # (the others: on change, their default)


@pytest.fixture(scope="module")
def stream20() -> list[tuple[str, dict]]:
    """What the process tree publishes on the sample scenario with the writer at 20 s (the
    estimators are configured with the same cadence, as in flight: during a batch they
    publish what the writer records)."""
    return published_with_health(Config(batch_period_s=PERIODS))


@pytest.fixture(scope="module")
def downlink(tmp_path_factory, stream20):
    """A pass's downlink: the sample scenario recorded at a 20-s cadence into ~1.2 kB files."""
    d = tmp_path_factory.mktemp("downlink")
    rec, store = _recorder(d, periods=PERIODS, run=12, key="r12", max_file_bytes=1200)
    for t, b in stream20:
        rec.handle(t, b)
    rec.finish()
    store.close()
    return d


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_decode_a_pass_in_one_command(downlink, tmp_path):
    out = tmp_path / "pass"
    p = _ground(downlink, "--out", out)
    assert p.returncode == 0, p.stderr
    assert "batch files:" in p.stdout and "!" not in p.stdout, p.stdout
    records = [r for f in sorted(downlink.glob("batch_*.bin")) for r in B.decode_batch(f.read_bytes()).records]
    for kind in ("orbit", "attitude", "formation"):
        rows = _rows(out / f"{kind}.csv")
        assert list(rows[0]) == [c for c, _ in tb.COLUMNS[kind]] + list(G.EXTRA_COLUMNS[kind])
        assert len(rows) == sum(r.kind.name == kind for r in records)
        assert all(r["run"] == "12" for r in rows)
    orbit = _rows(out / "orbit.csv")
    first = next(r for r in records if r.kind.name == "orbit")
    assert float(orbit[0]["t_sc_s"]) == first.t_sc_s
    assert float(orbit[0]["x_ecef_m"]) == first.values()["r_ecef_m"][0]
    assert orbit[0]["t_gps_s"] not in ("", "nan")  # the run's clock map maps the times
    for kind in ("gps_fix", "range", "sensor", "clock_map", "ingest", "batch_summary", "health", "files"):
        assert (out / f"{kind}.csv").exists(), kind
    files = _rows(out / "files.csv")
    assert [int(f["sequence"]) for f in files] == list(range(1, len(files) + 1)) and len(files) > 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problems"] == [] and summary["runs"] == [12] and summary["duplicate_records"] == 0
    plots = {p.name for p in (out / "plots").iterdir()}
    assert {
        "orbit_sigma.png",
        "attitude_sigma.png",
        "gyro_bias.png",
        "body_rate.png",
        "gps_fix_residuals.png",
    } <= plots and any(n.startswith("formation_0x") for n in plots)


def test_csv_option_and_single_file(downlink, tmp_path):
    one = sorted(downlink.glob("batch_*.bin"))[1]
    p = _ground(one, "--csv", tmp_path / "b.csv")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "b.csv").exists() and (tmp_path / "b_orbit.csv").exists()
    assert len(_rows(tmp_path / "b.csv")) == 1


def test_usage_and_unreadable(tmp_path):
    (tmp_path / "sense.bin").write_bytes(b"\0" * 251)
    p = _ground(tmp_path / "sense.bin", "--out", tmp_path / "o")
    assert p.returncode == 2 and "--out is for batch files" in p.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    p = _ground(empty, "--kind", "batch")
    assert p.returncode == 1 and "no batch files" in p.stderr


def _copy(src: Path, dst: Path, skip=()) -> Path:
    dst.mkdir()
    for f in sorted(src.glob("batch_*.bin")):
        if B.sequence_of(f.name) not in skip:
            shutil.copy(f, dst / f.name)
    return dst


def test_missing_file_is_a_sequence_break_and_a_gap(downlink, tmp_path):
    d = _copy(downlink, tmp_path / "d", skip={3})
    bset = G.read_batches(d)
    assert "missing batch files (sequence numbers): 3" in " ".join(bset.problems)
    assert any(g["kind"] == "orbit" for g in bset.gaps)
    p = _ground(d)
    assert p.returncode == 0 and "missing batch files (sequence numbers): 3" in p.stdout and "gap: orbit" in p.stdout


def test_duplicate_and_corrupt_files(downlink, tmp_path):
    d = _copy(downlink, tmp_path / "d")
    files = sorted(d.glob("batch_*.bin"))
    shutil.copy(files[0], d / "copy_of_first.bin")  # downlinked twice, renamed on the ground
    data = bytearray(files[1].read_bytes())
    data[-5] ^= 0x04  # a flipped bit in the last record of the second file
    files[1].write_bytes(bytes(data))
    bset = G.read_batches(d)
    text = " ".join(bset.problems)
    assert "identical to" in text and "1 corrupt records" in text
    clean = G.read_batches(downlink)
    assert len(bset.rows) == len(clean.rows) - 1 and bset.duplicate_records == 0


def test_two_runs_interleaved_after_a_state_reset(downlink, stream20, tmp_path):
    """The state file and every file lost between runs: the second run starts again at 1.
    Both runs' files decode, each record keeps its run, and the reuse is reported."""
    d = _copy(downlink, tmp_path / "d")
    other = tmp_path / "other"
    rec, store = _recorder(other, periods=PERIODS, run=13, key="r13", max_file_bytes=1200)
    for t, b in stream20[: len(stream20) // 3]:
        rec.handle(t, b)
    store.close()
    for f in other.glob("batch_*.bin"):
        shutil.copy(f, d / f"run13_{f.name}")
    bset = G.read_batches(d)
    text = " ".join(bset.problems)
    assert "appears in 2 different files" in text and "runs 12 and 13 interleave" in text
    tables = G.build_tables(bset)
    runs = set(tables["orbit"]["run"].tolist())
    assert runs == {12, 13}
    assert bset.duplicate_records == 0  # same data in two runs is kept per run


def _smash_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:20] = bytes(20)
    path.write_bytes(bytes(data))


def test_a_smashed_header_is_named_and_counts_as_no_other_spacecraft(downlink, tmp_path):
    """Files 2 and the last with their header zeroed: their records are kept in their run,
    no file is missing, no spacecraft -1 appears, and each damaged file is named."""
    d = _copy(downlink, tmp_path / "d")
    files = sorted(d.glob("batch_*.bin"))
    _smash_header(files[1])
    _smash_header(files[-1])
    bset = G.read_batches(d)
    text = "\n".join(bset.problems)
    assert "missing" not in text and "spacecraft -1" not in text and "interleave" not in text, text
    assert (
        f"{files[1].name}: header unreadable (bad magic b'\\x00\\x00\\x00\\x00'): spacecraft 74, run 12 taken "
        f"from its neighbours ({files[0].name}, {files[2].name})"
    ) in text
    assert f"{files[-1].name}: header unreadable (bad magic" in text and f"({files[-2].name})" in text
    clean = G.read_batches(downlink)
    assert len(bset.rows) == len(clean.rows) and bset.gaps == clean.gaps
    assert {r.file.run for r in bset.rows} == {12}
    p = _ground(d, "--out", tmp_path / "o", "--no-plots")
    assert p.returncode == 0 and "header unreadable" in p.stdout and "missing" not in p.stdout, p.stdout
    rows = _rows(tmp_path / "o" / "files.csv")
    assert [r["run_from"] for r in rows] == ["header", "neighbours"] + ["header"] * (len(rows) - 3) + ["neighbours"]
    assert rows[1]["header_problem"].startswith("bad magic") and rows[1]["run"] == "12"


def test_a_damaged_header_between_two_runs_is_nobodys_file_but_not_missing(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    for seq, run in [(1, 5), (2, 5), (3, 6), (4, 6)]:
        (d / B.file_name(seq)).write_bytes(_synthetic_file(seq, run, 2))
    (d / B.file_name(3)).write_bytes(b"\x00" * 10 + (d / B.file_name(3)).read_bytes()[10:])
    bset = G.read_batches(d)
    text = " ".join(bset.problems)
    assert (
        "batch_00000003.bin: header unreadable (bad magic b'\\x00\\x00\\x00\\x00'): its spacecraft and run "
        "unknown (sequence from its name); 2 intact records kept" in text
    )
    assert "missing" not in text and "spacecraft" not in text.replace("its spacecraft", "")
    assert len(bset.rows) == 8


# ------------------------------------------------------------------------- property
def _synthetic_file(seq: int, run: int, n: int) -> bytes:
    kind = B.KINDS_BY_NAME["range"]
    recs = [
        B.encode_record(kind, 1.7e9 + 100 * seq + k, {"peer_id": 75, "range_m": 1000.0 + seq, "flags": 1})
        for k in range(n)
    ]
    return B.encode_header(run, seq, 0x4A, B.FILE_CLOSED_SIZE, 0, 0, n) + b"".join(recs)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 40), st.integers(1, 3), st.booleans()),
        min_size=1,
        max_size=15,
        unique_by=lambda x: x[0],
    ),
    st.integers(1, 4),
)
def test_sequence_checks_on_any_set_of_files(tmp_path_factory, files, n_rec):
    """Missing sequence numbers are exactly those no file carries, whatever headers are
    smashed (a damaged file keeps its number from its name and its intact records)."""
    d = tmp_path_factory.mktemp("prop")
    for seq, run, smashed in files:
        data = _synthetic_file(seq, run, n_rec)
        (d / B.file_name(seq)).write_bytes(bytes(12) + data[12:] if smashed else data)
    bset = G.read_batches(d)
    seqs = sorted(s for s, _, _ in files)
    missing = sorted(set(range(seqs[0], seqs[-1] + 1)) - set(seqs))
    text = [p for p in bset.problems if "missing" in p]
    how = "sequence numbers" if any(not smashed for _, _, smashed in files) else "sequence numbers, from the names"
    assert text == ([f"missing batch files ({how}): {B.ranges_text(missing)}"] if missing else [])
    assert len(bset.rows) == n_rec * len(files)
    assert not any("spacecraft -1" in p for p in bset.problems)
    if any(smashed for _, _, smashed in files):
        return  # a damaged file's run is inferred: the interleave test below is for intact files
    files = [(s, r) for s, r, _ in files]
    spans = {}
    for s, r in files:
        lo, hi = spans.get(r, (s, s))
        spans[r] = (min(lo, s), max(hi, s))
    ordered = sorted((lo, hi, r) for r, (lo, hi) in spans.items())
    interleaved = any(b0 <= a1 for (a0, a1, _), (b0, b1, _) in zip(ordered, ordered[1:]))
    assert interleaved == any("interleave" in p for p in bset.problems)


def test_store_and_ground_agree_on_names():
    assert B.sequence_of(B.file_name(123)) == 123 and bs.STATE_FILE.startswith(".")


def test_a_name_far_beyond_the_others_costs_its_text_not_a_list_of_its_gap(tmp_path):
    """A damaged file's number comes from its name: ``batch_99999999.bin`` beside file 1 puts
    about 1e8 numbers in the gap, which the text gives by its ends (it listed every one of
    them, and a larger name exhausted the memory)."""
    import subprocess
    import sys

    (tmp_path / B.file_name(1)).write_bytes(_synthetic_file(1, 1, 2))
    data = _synthetic_file(2, 1, 2)
    (tmp_path / B.file_name(99_999_999)).write_bytes(bytes(12) + data[12:])  # its header smashed
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))\n"  # (a list of the gap: ~3 GB)
        "from ground.decode import batch_files as G\n"
        "print('\\n'.join(G.read_batches(sys.argv[1]).problems))\n"
    )
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "missing batch files (sequence numbers): 2-99999998" in p.stdout, p.stdout
