"""Docs stay true: generated tables in sync, links land, and every command a document shows
runs as written.

Every ```bash block of docs/ carries a marker on the line before it: ``<!-- run -->`` (the
test runs its commands, in order, in a scratch directory and a scratch home laid out like
the Pi's) or ``<!-- parse: REASON -->`` (the test checks the commands against the real
argument parsers and skips running them, saying REASON: hardware, hours of CPU, a server that
runs until Ctrl-C).  Files that another test runs keep their blocks unmarked
(:data:`OTHER_TESTS`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import inspect
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flight_harness import REPO

DOCS = REPO / "docs"
#: Documents whose ```bash blocks another test runs, and the reason they are only parsed here.
OTHER_TESTS = {
    "README.md": "parse: the README's examples (tests/test_run_sample.py, tests/test_ground_host.py run some)",
    "uplink.md": "parse: tests/test_uplink.py runs these",
    "testing.md": "parse: the README's install-and-test command, which CI runs (.ci/run)",
}
#: Programs a ``run`` block may use besides Python.
SHELL_PROGRAMS = {"mkdir", "cat", "ls"}


def test_interface_tables_in_sync():
    p = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "interface_tables.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr


def test_readme_opens_with_exactly_two_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    head = readme.split("---", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", head, re.S)
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1] in ci
    assert "pytest" in commands[1] and "run_sample.py" in commands[0]


def test_performance_page_is_generated_from_the_bench_results():
    p = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "performance_page.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr


# --------------------------------------------------------------------------- links
def _doc_files() -> list[Path]:
    return (
        sorted(DOCS.rglob("*.md"))
        + [REPO / "README.md"]
        + ([REPO / "CHANGELOG.md"] if (REPO / "CHANGELOG.md").exists() else [])
    )


def _without_code(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def anchors(path: Path) -> set[str]:
    """The anchors GitHub makes of a Markdown file's headings (lower case, punctuation but
    ``-`` and ``_`` dropped, spaces to ``-``, repeats numbered)."""
    seen: dict[str, int] = {}
    out = set()
    for h in re.findall(r"^#{1,6} +(.+?) *#*$", _without_code(path.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_every_link_between_documents_lands():
    """Every relative Markdown link names a file that exists, and a heading of it when it
    has an #anchor (the README's links into docs/ included)."""
    bad = []
    for doc in _doc_files():
        for target in re.findall(r"\]\(([^)\s]+)\)", _without_code(doc.read_text())):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            dest = (doc.parent / file_part).resolve() if file_part else doc
            if not dest.exists():
                bad.append(f"{doc.relative_to(REPO)}: {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                bad.append(f"{doc.relative_to(REPO)}: {target}: no such heading")
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------- commands
@dataclass
class Block:
    doc: Path
    line: int
    mark: str  # "run" or "parse: why"
    lines: list[tuple[int, str]] = field(default_factory=list)  # (line number, command)

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


def bash_blocks(doc: Path) -> list[Block]:
    """The ```bash blocks of *doc* with their markers; continuation lines joined, comments
    and ``&&`` chains split into one command per entry."""
    text = doc.read_text()
    blocks = []
    for m in re.finditer(r"(?:<!-- *(run|parse:[^>]*?) *-->\n)?```bash\n(.*?)^```", text, re.S | re.M):
        start = text.count("\n", 0, m.start(2)) + 1
        mark = (m.group(1) or OTHER_TESTS.get(doc.name, "")).strip()
        block = Block(doc, start, mark)
        pending, first = "", None
        for i, raw in enumerate(m.group(2).splitlines()):
            line = raw.rstrip()
            if first is None:
                first = start + i
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            command, pending = (pending + line).strip(), ""
            if command and not command.startswith("#"):
                for part in re.split(r"\s&&\s", command):
                    block.lines.append((first, part.strip()))
            first = None
        blocks.append(block)
    return blocks


def all_blocks() -> list[Block]:
    """The ```bash blocks of docs/ and of the README."""
    return [b for doc in sorted(DOCS.rglob("*.md")) + [REPO / "README.md"] for b in bash_blocks(doc)]


def test_every_bash_block_says_whether_it_runs():
    unmarked = [b.where for b in all_blocks() if not b.mark]  # (the README's are parsed only)
    assert not unmarked, (
        "```bash blocks without <!-- run --> or <!-- parse: REASON --> on the line before: " + ", ".join(unmarked)
    )
    assert all(b.mark == "run" or b.mark.startswith("parse:") for b in all_blocks())


@dataclass
class Command:
    env: dict
    argv: list[str]

    @property
    def python(self) -> bool:
        return Path(self.argv[0]).name.startswith("python")


def parse_command(line: str) -> Command:
    argv = shlex.split(line, comments=True)
    env = {}
    while argv and re.match(r"[A-Z_][A-Z0-9_]*=", argv[0]):
        k, _, v = argv.pop(0).partition("=")
        env[k] = v
    if argv and argv[-1] == "&":
        argv.pop()
    return Command(env, argv)


class _Parsed(Exception):
    pass


@contextlib.contextmanager
def _parse_only():
    """ArgumentParser.parse_args parses as usual, then stops the program that called it."""
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        original(self, args, namespace)
        raise _Parsed

    argparse.ArgumentParser.parse_args = parse_then_stop
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args = original


def _check_script(path: Path, args: list[str]) -> None:
    """*args* are what *path*'s own argparse parser accepts (its main() stopped right after
    parsing); a script without argparse must name each option it is given."""
    assert path.is_file(), f"{path.relative_to(REPO)} does not exist"
    source = path.read_text()
    if "argparse" not in source:
        for a in args:
            if a.startswith("-"):
                assert f'"{a}"' in source, f"{path.name} does not take {a}"
        return
    spec = importlib.util.spec_from_file_location(f"_docs_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(path), *args]
    try:
        spec.loader.exec_module(module)
        takes_argv = bool(inspect.signature(module.main).parameters)
        with _parse_only(), pytest.raises(_Parsed):
            module.main(args) if takes_argv else module.main()
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path


def check_command(cmd: Command) -> None:
    """Raise (AssertionError, SystemExit from argparse) unless *cmd* names a command and
    options that exist."""
    argv = cmd.argv
    assert argv, "an empty command"
    if not cmd.python:
        if argv[0] == "./package_flight_code.sh":
            assert (REPO / "package_flight_code.sh").is_file() and len(argv) <= 2
        return  # a program of the system (mkdir, pip, unzip ...): nothing of ours to check
    args = argv[1:]
    if args[:2] == ["-m", "ground"]:
        from ground.__main__ import build_parser

        ns = build_parser().parse_args(args[2:])
        assert not getattr(ns, "_unavailable", None), ns._unavailable
    elif args[:2] == ["-m", "pygnc"] or args and Path(args[0]).name in ("main.py", "pygnc_main.py"):
        rest = args[2:] if args[0] == "-m" else args[1:]
        if rest[:1] == ["--check-config"]:
            assert len(rest) == 2, "--check-config takes one file"
        else:
            from pygnc.command_line import parse_args

            parse_args(rest)
    elif args[:2] == ["-m", "pytest"]:
        rest = iter(args[2:])
        for a in rest:
            if a in ("-m", "-k", "-n"):  # a marker or keyword expression, a worker count
                value = next(rest, "")
                if a == "-m":
                    words = set(re.findall(r"\w+", value)) - {"not", "and", "or"}
                    assert words <= {"slow", "system", "browser"}, f"{value}: not the suite's markers"
            elif not a.startswith("-"):
                assert (REPO / a.split("::")[0]).exists(), f"{a}: no such test"
    elif args[:2] == ["-m", "venv"]:
        pass
    elif args[:2] == ["-m", "mypy"]:
        assert not args[2:], "mypy takes its files and options from [tool.mypy] (tests/test_types.py runs it)"
    elif args and args[0].startswith(("scripts/", "bench/")):
        _check_script(REPO / args[0], args[1:])
    else:
        raise AssertionError(f"the test does not know how to check {' '.join(argv)!r}")


class Scratch:
    """A scratch directory holding the repository's data/, flight/, scripts/ and bench/ (and
    an empty out/), and a home laid out as the Pi's after a start: the flight package in
    ~/pygnc, the host's inputs, an uplinked configuration and the status files a start
    writes."""

    def __init__(self, root: Path):
        from pygnc.formats import status as st
        from pygnc.formats.info import render_info

        self.work, self.home = root / "work", root / "home"
        (self.work / "out").mkdir(parents=True)
        for name in ("data", "flight", "scripts", "bench"):
            (self.work / name).symlink_to(REPO / name)
        self.home.mkdir()
        (self.home / "pygnc").symlink_to(REPO / "flight")
        sample = REPO / "data" / "sample"
        shutil.copy(sample / "sense.bin", self.home)
        shutil.copytree(sample / "range", self.home / "range")
        shutil.copy(sample / "pygnc_config.toml", self.home)
        status = st.encode_status(st.empty_status())
        (self.home / "pygnc_status.bin").write_bytes(status)
        (self.home / "pygnc_info.txt").write_bytes(render_info(st.decode_status(status)))
        self.env = {**os.environ, "HOME": str(self.home), "PYTHONPATH": str(REPO), "PYGNC_HOME": str(self.home)}

    def expand(self, argv: list[str]) -> list[str]:
        return [str(self.home) + a[1:] if a.startswith("~/") else a for a in argv]

    def run(self, block: Block) -> None:
        for line_no, line in block.lines:
            cmd = parse_command(line)
            argv = self.expand(cmd.argv)
            if cmd.python:
                argv[0] = sys.executable
            else:
                assert argv[0] in SHELL_PROGRAMS, f"{block.where}: a run block may not use {argv[0]}"
            p = subprocess.run(
                argv,
                cwd=self.work,
                env={**self.env, **cmd.env},
                capture_output=True,
                text=True,
                timeout=300,
                stdin=subprocess.DEVNULL,
            )
            assert p.returncode == 0, (
                f"{block.doc.relative_to(REPO)}:{line_no}: {line}\nexit {p.returncode}\n{p.stderr[-3000:]}"
            )


@pytest.fixture(scope="session")
def parse_scratch(tmp_path_factory) -> Scratch:
    return Scratch(tmp_path_factory.mktemp("docs_parse"))


COMMANDS = [(b, n, line) for b in all_blocks() for n, line in b.lines]


@pytest.mark.parametrize(
    "block,line_no,line", COMMANDS, ids=[f"{b.doc.relative_to(REPO)}:{n}".removeprefix("docs/") for b, n, _ in COMMANDS]
)
def test_documented_command_names_a_command_and_options_that_exist(block, line_no, line, parse_scratch, monkeypatch):
    """Parsed where a reader would type it: from a directory like the repository's root (with
    an out/), HOME a Pi-like home."""
    monkeypatch.chdir(parse_scratch.work)
    monkeypatch.setenv("HOME", str(parse_scratch.home))
    cmd = parse_command(line)
    cmd.argv = parse_scratch.expand(cmd.argv)
    try:
        check_command(cmd)
    except SystemExit as exc:  # argparse refused it (its message is on stderr)
        pytest.fail(f"{block.doc.relative_to(REPO)}:{line_no}: {line}\nrefused by its parser (exit {exc.code})")


@pytest.mark.parametrize(
    "line",
    [
        "python -m ground no-such-command",
        "python -m ground decode data/sample/sense.bin --no-such-option",
        "python -m ground replay data/sample",  # --out is required
        ".venv/bin/python bench/bench_ctrl_c.py --no-such-option",
        ".venv/bin/python bench/no_such_bench.py",
        ".venv/bin/python scripts/interface_tables.py --no-such-option",
        "python flight/main.py ten 1700000000",
        "python ~/pygnc/main.py --check-config",
        "python -m pytest tests/test_no_such_file.py",
        "python tools/no_such_tool.py",
    ],
)
def test_the_check_refuses_a_command_or_option_that_does_not_exist(line, parse_scratch, monkeypatch):
    from pygnc.command_line import UsageError

    monkeypatch.chdir(parse_scratch.work)
    cmd = parse_command(line)
    cmd.argv = parse_scratch.expand(cmd.argv)
    with pytest.raises((SystemExit, AssertionError, UsageError)):
        check_command(cmd)


BLOCKS = all_blocks()


@pytest.fixture(scope="session")
def doc_runs(tmp_path_factory) -> dict:
    """Per document: its scratch directory and how many of its run blocks have run there."""
    return {}


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where.removeprefix("docs/") for b in BLOCKS])
def test_documented_commands_run_as_written(block, doc_runs, tmp_path_factory):
    """A ``run`` block's commands, in order, each exits 0 - after the document's earlier run
    blocks, in the same scratch directory, as a reader following the page would."""
    if block.mark != "run":
        pytest.skip(f"{block.where}: {block.mark.removeprefix('parse:').strip()}")
    runs = [b for b in BLOCKS if b.doc == block.doc and b.mark == "run"]
    state = doc_runs.setdefault(block.doc, [Scratch(tmp_path_factory.mktemp("docs_run")), 0])
    scratch, done = state
    for b in runs[done : runs.index(block) + 1]:
        state[1] += 1
        scratch.run(b)


@pytest.mark.parametrize(
    "args, status",
    [
        (["decode", "missing.bin"], 1),
        (["replay", "missing", "--out", "out/r"], 1),
        (["archive", "out/a.sqlite", "missing.bin"], 1),
        (["export", "missing.sqlite", "out/csv"], 1),
        (["simulate", "out/s", "--settings", "missing.toml"], 2),
        (
            [
                "uplink",
                "--tle",
                "missing.txt",
                "--self",
                "1",
                "--partner",
                "0x4B=2",
                "--epoch-utc",
                "2025-03-20T06:00:00Z",
                "--out",
                "out/u.toml",
                "--spacecraft-id",
                "0x4A",
            ],
            2,
        ),  # fmt: skip
        (["host", "--shell", "--upload", "missing"], 2),
        (["serve", "missing"], 2),
        (["montecarlo", "missing.toml"], 2),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else str(v),
)
def test_a_missing_input_exits_as_ground_tools_md_says(args, status, tmp_path):
    """Issue 45 item 14: ground_tools.md said 2 for every usage error and 1 for failed work,
    while a missing input is 1 for some commands and 2 for others; it now says which."""
    text = " ".join((DOCS / "ground_tools.md").read_text().split())
    assert "as the work failing (1) for `decode`, `replay`, `archive` and `export`, as a usage error (2)" in text
    (tmp_path / "out").mkdir()
    p = subprocess.run(
        [sys.executable, "-m", "ground", *args], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert p.returncode == status and "Traceback" not in p.stderr, p.stderr


def test_the_upload_queue_exit_statuses_are_as_documented(tmp_path):
    """Issue 45 item 14: ground_tools.md said exit 1 while anything is pending, but `--list`
    (and `--add`) exit 0; only `--send` does."""
    q = tmp_path / "q.sqlite"
    (tmp_path / "f.bin").write_bytes(b"x")
    for args in (["--add", str(tmp_path / "f.bin")], ["--list"]):
        p = subprocess.run(
            [sys.executable, "-m", "ground", "upload", str(q), *args], capture_output=True, text=True, timeout=60,
            cwd=REPO,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
    assert "pending" in p.stdout
    assert "`--send` exits 1 while anything is still pending" in (DOCS / "ground_tools.md").read_text()
