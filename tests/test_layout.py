"""The layout a newcomer reads: docs/architecture.md's module table and the tree agree, few loose
modules, one folder per architecture, lower layers that never import a job, short functions.
(No import cycle: tests/test_imports.py.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import remaster
from tests.test_imports import import_graph, module_files

ROOT = Path(remaster.__file__).parent
DOC = ROOT.parent / "docs" / "architecture.md"
ENTRY = {"__init__.py", "__main__.py", "cli.py"}
# The layers below the jobs, lowest first: each may import itself and those before it, never a job.
LAYERS = ("core", "media", "architectures", "models", "engines")


def documented_modules(text: str) -> set[str]:
    """The paths in the first column of the tables under `## Modules`, relative to remaster/."""
    section = text.split("\n## Modules", 1)[1].split("\n## ", 1)[0]
    paths: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            paths.update(re.findall(r"`([\w/]+\.py)`", line.split(" | ")[0]))
    return paths


def holds_code(path: Path) -> bool:
    """Any statement but a docstring."""
    body = ast.parse(path.read_text()).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


def tree_modules() -> set[str]:
    """Every module file, less package __init__.py files that hold no code (a docstring at most)."""
    return {
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*.py")
        if path.name != "__init__.py" or path.parent == ROOT or holds_code(path)
    }


def test_the_module_table_lists_every_module_and_no_other():
    documented, tree = documented_modules(DOC.read_text()), tree_modules()
    assert sorted(tree - documented) == [], "modules missing from docs/architecture.md's table"
    assert sorted(documented - tree) == [], "rows in docs/architecture.md's table with no module"


def test_the_table_reader_sees_a_missing_and_an_extra_row():
    """The control: a table with one row dropped and one made up is caught both ways."""
    text = DOC.read_text()
    dropped = "\n".join(line for line in text.splitlines() if not line.startswith("| `video/concat.py`"))
    header = "| module | its one job |\n|---|---|\n"
    invented = dropped.replace(header, header + "| `video/nothing.py` | x |\n", 1)
    documented = documented_modules(invented)
    assert "video/concat.py" not in documented and "video/nothing.py" in documented


def test_few_loose_modules_at_the_top():
    loose = {p.name for p in ROOT.glob("*.py")} - ENTRY
    assert len(loose) <= 6, sorted(loose)


def test_every_architecture_is_one_folder_with_its_network_and_its_detection():
    folders = [p for p in (ROOT / "architectures").iterdir() if p.is_dir() and p.name != "__pycache__"]
    assert len(folders) >= 6
    for folder in folders:
        assert (folder / "detection.py").is_file(), folder
        # A community model's network is spandrel's: that folder alone has no network of its own.
        assert (folder / "network.py").is_file() or folder.name == "community", folder
    registry = (ROOT / "architectures" / "registry.py").read_text()
    for folder in folders:
        assert f"remaster.architectures.{folder.name} import detection" in registry, folder.name


def test_the_lower_layers_never_import_a_job():
    graph = import_graph()
    for index, layer in enumerate(LAYERS):
        allowed = {f"remaster.{name}" for name in LAYERS[: index + 1]} | {"remaster"}
        for module, targets in graph.items():
            if not module.startswith(f"remaster.{layer}."):
                continue
            above = {t for t in targets if ".".join(t.split(".")[:2]) not in allowed}
            assert not above, f"{module} imports {sorted(above)}"


def test_no_function_over_80_lines():
    long = []
    for name, path in module_files().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long.append(f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert long == []
