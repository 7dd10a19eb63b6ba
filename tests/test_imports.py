"""How the modules of remaster import each other: no cycle, the command line kept to `remaster.cli` and
`remaster.commands`, the demo's sample generator kept out of the runtime, and every module importable.

The graph is read from the source with `ast`: every import statement, at the top of a module or inside
a function (an import inside a function is still run, only later), except those under
`if TYPE_CHECKING:`, which never run."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import remaster

ROOT = Path(remaster.__file__).parent

# Domain modules that still import argparse, and why. Anything else outside the command layer fails.
ARGPARSE_ALLOWED = {
    # `export` keeps its options until the media-layer work on export/job.py (issue 11, item 3) is merged.
    "remaster.export.job": "add_export_arguments / run_export_command",
    # --max-pixels and $REMASTER_MAX_PIXELS share one parser, which says no as argparse's type error.
    "remaster.core.limits": "parse_max_pixels raises argparse.ArgumentTypeError",
}


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by the name of its __init__)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import that can run: a walk that skips the bodies of `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return found


def _with_packages(name: str) -> list[str]:
    """`a.b.c` -> a, a.b, a.b.c: importing a module runs each package above it first."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of the package that importing `name` can run, directly."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:  # relative: from the package, one level up per dot after the first
            anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            base = ".".join([*anchor, *([base] if base else [])])
        targets.add(base)
        targets.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    edges = {module for target in targets for module in _with_packages(target) if module in modules}
    # Its own packages ran before it; an edge back to them is not a cycle of its making.
    return edges - set(_with_packages(name))


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = module_files(root)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking(tmp_path):
    """The reader itself, on a package made here: the cycle that remaster had (cli -> queue command ->
    queue plan -> cli, closed by an import inside a function) is found; a TYPE_CHECKING import is not
    an edge; relative imports resolve."""
    package = tmp_path / "pkg"
    (package / "queue").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "queue" / "__init__.py").write_text("")
    (package / "cli.py").write_text("from pkg.queue.command import run\n")
    (package / "queue" / "command.py").write_text("from .plan import plan\n")
    (package / "queue" / "plan.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import typed\n"
        "def plan():\n    from pkg.cli import build_parser\n"
    )
    (package / "typed.py").write_text("import pkg.queue.plan\n")
    graph = import_graph(package)
    assert graph["pkg.queue.plan"] == {"pkg.cli"}
    assert graph["pkg.queue.command"] == {"pkg.queue.plan"}
    assert cycles(graph) == [["pkg.cli", "pkg.queue.command", "pkg.queue.plan"]]


def test_no_import_cycle_inside_remaster():
    assert cycles(import_graph()) == []


def test_only_the_command_layer_imports_the_cli_and_argparse():
    graph = import_graph()
    command_layer = {"remaster.cli", "remaster.__main__"} | {m for m in graph if m.startswith("remaster.commands")}
    assert sorted(m for m, targets in graph.items() if "remaster.cli" in targets) == ["remaster.__main__"]
    uses_argparse = set()
    for name, path in module_files().items():
        nodes = _import_nodes(ast.parse(path.read_text()))
        if any(isinstance(n, ast.Import) and any(a.name == "argparse" for a in n.names) for n in nodes) or any(
            isinstance(n, ast.ImportFrom) and n.module == "argparse" for n in nodes
        ):
            uses_argparse.add(name)
    assert sorted(uses_argparse - command_layer) == sorted(ARGPARSE_ALLOWED)


def test_the_demo_samples_stay_out_of_the_runtime():
    """Only the demo command runs the sample generator; the pipeline and the other commands never do."""
    graph = import_graph()
    demo = {m for m in graph if m == "remaster.demo.episode" or m.startswith("remaster.demo.episode.")}
    importers = {m for m, targets in graph.items() if targets & demo} - demo
    assert importers == {"remaster.commands.demo"}


def test_every_module_imports_in_a_fresh_interpreter():
    names = sorted(n for n in module_files() if not n.endswith("__main__"))  # __main__ runs the program
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


# What runs, or is read, in a process that must not pay for PyTorch's import (1.2-1.7 s): the
# command line and its options, a prepared picture run, the ncnn side of benchmarks/ncnn_compare.py.
WITHOUT_TORCH = [
    "remaster.cli",
    "remaster.engines.settings",
    "remaster.engines.host_frames",
    "remaster.engines.openvino_engine.prepared",
    "remaster.image.batch",
    "remaster.engines.ncnn_engine.reference",
    "remaster.engines.ncnn_engine.net",
]


def test_what_runs_without_torch_imports_none():
    imports = "; ".join(f"import {module}" for module in WITHOUT_TORCH)
    code = f"import sys; {imports}; print('torch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"
