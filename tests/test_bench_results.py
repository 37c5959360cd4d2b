"""The benches can record what they measure for the generated performance page, and every
figure the page and the README's headline table take is one some bench records.

A bench records with ``results.record(name, title, [results.figure(key, ...), ...])``
(bench/results.py); names and keys are string literals or f-strings in the bench's source,
read here from its syntax tree (an f-string's fields match any text).
"""

import ast
import functools
import json
import re
import subprocess
import sys

import pytest
from flight_harness import REPO

sys.path.insert(0, str(REPO / "scripts"))
from performance_page import BOUNDS, HEADLINE, RESULTS  # noqa: E402

BENCHES = sorted((REPO / "bench").glob("bench_*.py"))


def _pattern(node: ast.expr) -> str:
    """A regular expression for a name or key argument: a literal as itself, an f-string's
    fields as any text (empty too), anything else (e.g. ``args.record``: a name the user gives)
    as any."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(re.escape(v.value) if isinstance(v, ast.Constant) else ".*" for v in node.values)
    return ".+"


def _first_args(tree: ast.Module, func: str) -> list[ast.expr]:
    """First arguments of the calls ``func(...)`` / ``x.func(...)`` (a module's own ``def
    func`` shadows the bare name: bench_batch_writer's local ``record``)."""
    own = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and (n.args or n.keywords):
            f = n.func
            if (isinstance(f, ast.Name) and f.id == func and func not in own) or (
                isinstance(f, ast.Attribute) and f.attr == func
            ):
                out.append(n.args[0] if n.args else n.keywords[0].value)
    return out


@functools.cache
def recorders() -> dict[str, tuple[list[str], list[str]]]:
    """{bench file name: (patterns of the names it records under, patterns of its figure keys)}."""
    out = {}
    for path in BENCHES:
        tree = ast.parse(path.read_text(), str(path))
        out[path.name] = (
            [_pattern(a) for a in _first_args(tree, "record")],
            [_pattern(a) for a in _first_args(tree, "figure")],
        )
    return out


def benches_recording(bench: str, key: str) -> list[str]:
    """The bench files that record *key* under the name *bench*."""
    return [
        f
        for f, (names, keys) in recorders().items()
        if any(re.fullmatch(n, bench) for n in names) and any(re.fullmatch(k, key) for k in keys)
    ]


@pytest.mark.parametrize("path", BENCHES, ids=lambda p: p.name)
def test_every_bench_offers_record(path):
    p = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert "--record" in p.stdout
    names, keys = recorders()[path.name]
    assert names and keys, f"{path.name} offers --record but calls no record(...) / figure(...)"


def test_the_source_reader_sees_literal_and_formatted_keys():
    rec = recorders()
    assert "range_only_.*p_.*" in rec["bench_range_only.py"][0]  # f"range_only_{args.partners}p_{args.condition}"
    assert "day.*_rms_median_m" in rec["bench_operations.py"][1]  # f"day{day}_rms_median_m"
    assert rec["bench_batch.py"][0] == [".+"]  # record(args.record, ...): the name given on the command line
    assert "nees_inside" in rec["bench_range_only.py"][1]
    assert benches_recording("batch_day_4sc", "all_done_s") == ["bench_batch.py"]
    assert benches_recording("orbit", "no_such_key") == []


@pytest.mark.parametrize("bench,key,label", HEADLINE, ids=[f"{b}:{k}" for b, k, _ in HEADLINE])
def test_every_headline_figure_is_one_a_bench_records(bench, key, label):
    assert label
    assert benches_recording(bench, key), f"no bench records {key!r} under the name {bench!r}"
    result = RESULTS / f"{bench}.json"
    if result.is_file():  # recorded already: the key is there
        assert key in {f["key"] for f in json.loads(result.read_text())["figures"]}


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_every_recorded_result_comes_from_a_bench(path):
    r = json.loads(path.read_text())
    assert r["bench"] == path.stem
    assert (REPO / r["command"].split()[1]).is_file(), r["command"]
    for f in r["figures"]:
        assert set(f) == {"key", "what", "value", "unit"} and f["what"], f
        assert benches_recording(r["bench"], f["key"]), f"no bench records {f['key']!r} as {r['bench']!r}"


@pytest.mark.parametrize("label,bench,filt,bound,goal", BOUNDS, ids=[f"{b}:{f}" for _, b, f, _, _ in BOUNDS])
def test_every_bound_row_is_of_figures_a_bench_records(label, bench, filt, bound, goal):
    assert label
    for key in (filt, bound):
        assert benches_recording(bench, key), f"no bench records {key!r} under the name {bench!r}"


def test_a_share_short_of_100_percent_is_never_recorded_or_shown_as_100():
    """99.998 % of epochs inside a bound, rounded to 4 digits, read "100 %" beside a count of
    epochs outside it: a percentage short of 100 keeps the digits that show it."""
    sys.path.insert(0, str(REPO / "bench"))
    import results
    from performance_page import _value

    assert results.figure("k", "w", 99.99823, "%")["value"] == 99.998
    assert results.figure("k", "w", 100.0, "%")["value"] == 100.0
    assert results.figure("k", "w", 99.1234, "%")["value"] == 99.12
    assert results.figure("k", "w", 1234.567, "m")["value"] == 1235.0
    assert _value(99.998, "%") == "99.998 %"
    assert _value(100.0, "%") == "100 %"
    assert _value(99.98, "%") == "99.98 %"


def test_the_batch_bench_counts_the_cores_a_run_kept_busy():
    sys.path.insert(0, str(REPO / "bench"))
    from bench_batch import busy_cores, usable_cpus_of

    runs = [
        {"t_done_s": 10.0, "cpu_s": {"a": 12.0, "b": 4.0}, "cpus": 2},  # 1.6 cores busy
        {"t_done_s": 20.0, "cpu_s": {"a": 20.0}, "cpus": 2},  # 1.0
        {"t_done_s": 8.0, "cpu_s": {"a": 8.0, "b": 8.0}, "cpus": 2},  # 2.0
    ]
    assert busy_cores(runs) == pytest.approx(1.6)
    assert usable_cpus_of(runs) == 2
