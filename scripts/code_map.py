"""Map of the code: the import graph of flight/ and ground/, import cycles, the layer rules,
module sizes and the largest functions and classes.

    .venv/bin/python scripts/code_map.py                 # flight/ and ground/
    .venv/bin/python scripts/code_map.py flight --check  # exit 1 if flight/ has an import cycle
    .venv/bin/python scripts/code_map.py --top 40        # longer lists of the largest

Reads the sources (``ast``), imports nothing of them.  An edge ``a -> b`` means module ``a``
imports project module ``b``; ``b*`` marks a *deferred* import (inside a function, run when
called).  An import-time cycle (module-level imports only) can break at start-up; a cycle
that needs a deferred import runs, but hides a dependency loop.  ``--check`` exits 1 on an
import-time cycle, and with ``--strict`` on a deferred one too.  Imports under ``if
TYPE_CHECKING:`` are not followed.  Sizes are physical lines.

Layer rules (:data:`LAYER_RULES`, checked by ``--check`` too, deferred imports included):
estimation and formats never import processors or tasks, formats never drivers (a pure
numeric core or codec knows nothing of who calls it), processors never tasks nor the batch
writer's codec (an estimator is given the downlink's schedule: :mod:`pygnc.downlink_schedule`),
and flight never imports ground (the Pi has no ground/).
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Tree -> (directory holding the top-level package, package name).
TREES = {"flight": (REPO / "flight", "pygnc"), "ground": (REPO, "ground")}
#: (importing package, packages it may never import), by module-name prefix.
LAYER_RULES = (
    ("pygnc.estimation", ("pygnc.processors", "pygnc.tasks")),
    ("pygnc.formats", ("pygnc.processors", "pygnc.tasks", "pygnc.drivers")),
    ("pygnc.processors", ("pygnc.tasks", "pygnc.formats.batch")),
    ("pygnc", ("ground",)),
)


@dataclass
class Module:
    name: str
    path: Path
    lines: int
    is_package: bool
    imports: dict[str, bool] = field(default_factory=dict)  # project module -> deferred only
    #: Every imported module of a tree's package (scanned or not: flight alone still shows
    #: an import of ground), as written.
    targets: set[str] = field(default_factory=set)
    blocks: list[tuple[str, int]] = field(default_factory=list)  # (qualified name, lines)


def _module_name(base: Path, path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(base).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.Module, mod: Module) -> list[tuple[str, list[str], bool]]:
    """(absolute module, names imported from it, deferred) for every import statement."""
    package = mod.name if mod.is_package else mod.name.rpartition(".")[0]
    out = []

    def visit(node: ast.AST, deferred: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, deferred)
            return
        if isinstance(node, ast.Import):
            out.extend((alias.name, [], deferred) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((target, [alias.name for alias in node.names], deferred))
        inner = deferred or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return out


def _blocks(tree: ast.Module, prefix: str) -> list[tuple[str, int]]:
    """Every function and class with its length in lines, nested ones included."""
    out = []

    def visit(node: ast.AST, qual: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{qual}.{child.name}" if qual else child.name
                start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                out.append((f"{prefix}:{name}", child.end_lineno - start + 1))
                visit(child, name)
            else:
                visit(child, qual)

    visit(tree, "")
    return out


def scan(roots=None) -> dict[str, Module]:
    """Every module of the packages *roots* ((directory holding the package, package name)
    pairs), with its imports of their modules and its functions and classes."""
    roots = tuple(TREES.values()) if roots is None else roots
    modules: dict[str, Module] = {}
    parsed = {}
    for base, package in roots:
        for path in sorted((base / package).rglob("*.py")):
            name, is_package = _module_name(base, path)
            text = path.read_text(encoding="utf-8")
            tree = ast.parse(text, filename=str(path))
            modules[name] = Module(name, path, len(text.splitlines()), is_package)
            parsed[name] = tree
    packages = {package for _, package in roots}
    known = packages | {package for _, package in TREES.values()}
    for name, tree in parsed.items():
        mod = modules[name]
        mod.blocks = _blocks(tree, name)
        for target, names, deferred in _imported_names(tree, mod):
            if target.split(".")[0] in known:
                mod.targets.update([target] + [f"{target}.{n}" for n in names])
            if target.split(".")[0] not in packages:
                continue
            hits = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            if not names or len(hits) < len(names):  # a name defined in the target itself
                hits.append(target)
            for hit in hits:
                while hit not in modules and "." in hit:  # a name defined in a package's __init__
                    hit = hit.rpartition(".")[0]
                if hit in modules and hit != name:
                    mod.imports[hit] = mod.imports.get(hit, True) and deferred
    return modules


def cycles(modules: dict[str, Module], include_deferred: bool) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each as one cycle
    through all of it where one exists, else its members sorted."""
    graph = {n: sorted(t for t, d in m.imports.items() if include_deferred or not d) for n, m in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    sccs: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return [_cycle_path(graph, comp) for comp in sorted(sccs)]


def _cycle_path(graph: dict[str, list[str]], comp: list[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first), closed."""
    members = set(comp)
    start = comp[0]
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in graph[v]:
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return path[::-1] + [start]
            if w in members and w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def layer_breaks(modules: dict[str, Module], rules=LAYER_RULES) -> list[tuple[str, str]]:
    """(importer, imported) for every import that breaks a layer rule of *rules*."""
    out = []
    for name, m in sorted(modules.items()):
        for importer, forbidden in rules:
            if not _within(name, importer):
                continue
            for target in sorted(m.targets | set(m.imports)):
                if any(_within(target, f) for f in forbidden) and (name, target) not in out:
                    out.append((name, target))
    return out


def _fmt_cycle(c: list[str], modules: dict[str, Module]) -> str:
    parts = [c[0]]
    for a, b in zip(c, c[1:]):
        parts.append(b + ("*" if modules[a].imports.get(b) else ""))
    return " -> ".join(parts)


def report(modules: dict[str, Module], top: int, out=sys.stdout) -> tuple[list, list, list]:
    hard = cycles(modules, include_deferred=False)
    every = cycles(modules, include_deferred=True)
    soft = [c for c in every if not any(set(c) <= set(h) for h in hard)]
    w = out.write
    w("import graph (module [lines] -> project modules it imports; * deferred, inside a function)\n")
    for name in sorted(modules):
        m = modules[name]
        deps = ", ".join(t + ("*" if d else "") for t, d in sorted(m.imports.items()))
        w(f"  {name} [{m.lines}] -> {deps or '-'}\n")
    w("\nimport-time cycles: " + ("none\n" if not hard else "\n"))
    for c in hard:
        w(f"  CYCLE {_fmt_cycle(c, modules)}\n")
    w("cycles through deferred imports: " + ("none\n" if not soft else "\n"))
    for c in soft:
        w(f"  cycle {_fmt_cycle(c, modules)}\n")
    breaks = layer_breaks(modules)
    w("layer rules (" + "; ".join(f"{a} never imports {', '.join(b)}" for a, b in LAYER_RULES) + "): ")
    w("kept\n" if not breaks else "\n")
    for a, b in breaks:
        w(f"  LAYER BREAK {a} -> {b}\n")
    total = sum(m.lines for m in modules.values())
    w(f"\nmodules: {len(modules)}, {total} lines; the {min(top, len(modules))} largest:\n")
    for m in sorted(modules.values(), key=lambda m: (-m.lines, m.name))[:top]:
        w(f"  {m.lines:6d}  {m.name}\n")
    blocks = [b for m in modules.values() for b in m.blocks]
    sizes = sorted(n for _, n in blocks)
    median = sizes[len(sizes) // 2] if sizes else 0
    w(f"\nfunctions and classes: {len(blocks)} (median {median} lines); the {min(top, len(blocks))} largest:\n")
    for name, n in sorted(blocks, key=lambda b: (-b[1], b[0]))[:top]:
        w(f"  {n:6d}  {name}\n")
    return hard, soft, breaks


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trees", nargs="*", metavar="TREE", help="flight and/or ground (default: both)")
    p.add_argument("--top", type=int, default=20, help="how many of the largest modules and functions to list")
    p.add_argument(
        "--check", action="store_true", help="exit 1 if there is an import-time cycle or a broken layer rule"
    )
    p.add_argument("--strict", action="store_true", help="with --check: a cycle through deferred imports fails too")
    args = p.parse_args(argv)
    unknown = [t for t in args.trees if t not in TREES]
    if unknown:
        p.error(f"unknown tree {unknown[0]!r}: expected flight or ground")
    modules = scan(tuple(TREES[t] for t in (args.trees or TREES)))
    hard, soft, breaks = report(modules, args.top)
    if args.check and (hard or (args.strict and soft) or breaks):
        print(
            f"code_map: {len(hard)} import-time cycle(s)"
            + (f", {len(soft)} through deferred imports" if args.strict else "")
            + f", {len(breaks)} layer break(s)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
