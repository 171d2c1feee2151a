"""No import circles inside qvac_nb (counting imports inside functions and under TYPE_CHECKING too), and light
imports where they matter.

Run alone: `python -m pytest tests/test_imports.py` or `python tests/test_imports.py` (prints the graph's cycles).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = "qvac_nb"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE
# Compiled submodules (src_native/): `from . import _engine` imports them, not the package's __init__.
EXTENSIONS = ("_engine",)


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _nodes(tree: ast.AST, type_checking: bool) -> list[ast.AST]:
    """Every node; without `type_checking`, not those under `if TYPE_CHECKING:` (never imported at run time)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if not type_checking and isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
                and node.test.id == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def import_graph(root: Path = ROOT, *, type_checking: bool = True) -> dict[str, set[str]]:
    """module -> the qvac_nb modules it imports anywhere in its source (top level, in functions and, with
    `type_checking`, for annotations only)."""
    files = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in [*files, *(f"{PACKAGE}.{ext}" for ext in EXTENSIONS)]}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        for node in _nodes(ast.parse(path.read_text(encoding="utf-8")), type_checking):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                # `from . import models` imports the module qvac_nb.models; `from .x import y` imports qvac_nb.x.
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in graph else module for a in node.names]
            for target in targets:
                while target and target not in graph and "." in target:
                    target = target.rsplit(".", 1)[0]  # `import qvac_nb.widgets.display` -> the deepest module known
                if target in graph and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), i.e. each import circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_circles() -> None:
    assert cycles(import_graph()) == []


def test_the_checker_finds_a_circle(tmp_path: Path) -> None:
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .sub.c import x\n")  # inside a function: still an edge
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from ..a import y\n")
    assert cycles(import_graph(pkg)) == [[f"{PACKAGE}.a", f"{PACKAGE}.b", f"{PACKAGE}.sub.c"]]
    # An import for annotations only closes a circle too (the design still ties the two modules).
    (pkg / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import e\n")
    (pkg / "e.py").write_text("from . import d\n")
    assert [f"{PACKAGE}.d", f"{PACKAGE}.e"] in cycles(import_graph(pkg))
    assert [f"{PACKAGE}.d", f"{PACKAGE}.e"] not in cycles(import_graph(pkg, type_checking=False))


def test_the_core_does_not_import_its_views() -> None:
    graph = import_graph()
    core = [m for m in graph if not m.startswith(f"{PACKAGE}.widgets") and m != PACKAGE]
    assert {m: sorted(t for t in graph[m] if t.startswith(f"{PACKAGE}.widgets")) for m in core} == dict.fromkeys(
        core, []
    )


HEAVY = ("numpy", "PIL", "asyncio", "anywidget", "qvac_nb.models", "qvac_nb.generation", "qvac_nb.hub",
         "qvac_nb.catalog")


def _imported_after(code: str) -> list[str]:
    """Which HEAVY modules a fresh interpreter has after running `code` (the installed qvac_nb)."""
    probe = f"import sys\n{code}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def test_a_worker_starts_without_the_kernel_side_api() -> None:
    # Every model load starts a worker: its interpreter must not pay for numpy, the hub or the widgets
    # before it reports ready (the generation side's imports run on a thread while the engine opens).
    assert _imported_after("import qvac_nb.worker.server") == []
    # `from qvac_nb import engine` (as the worker's server does) is a submodule, not a catalogue name.
    assert _imported_after("from qvac_nb import _engine, engine") == []


def test_first_load_validates_without_waiting_for_a_worker() -> None:
    # The first load_model checks its model_config while its worker starts: until a worker has said
    # hello the names come from the pinned release, and asking for them starts no process.
    probe = ("import psutil\nfrom qvac_nb import engine\nfrom qvac_nb.engine_types import ENUMS, values\n"
             "assert engine.enum_names() == {key: list(values(key)) for key in ENUMS}\n"
             "print(len(psutil.Process().children()))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0"  # no worker was started to ask


def test_import_qvac_nb_is_light_and_names_load_on_use() -> None:
    assert _imported_after("import qvac_nb") == []
    used = _imported_after("import qvac_nb\nqvac_nb.load_model\nassert 'SD_V2_1_1B_Q8_0' in qvac_nb.__all__")
    assert "qvac_nb.models" in used and "anywidget" not in used


def test_no_public_name_is_shadowed_by_a_submodule() -> None:
    # Importing qvac_nb.X binds the submodule as the package's attribute X, so a public function named
    # like a submodule (qvac_nb.grid once) turns into that module after any `from qvac_nb.X import ...`.
    probe = ("import importlib, pkgutil, types, qvac_nb\n"
             "for m in pkgutil.walk_packages(qvac_nb.__path__, 'qvac_nb.'):\n"
             "    if '_engine' not in m.name and 'worker.__main__' not in m.name and m.name != 'qvac_nb.__main__':\n"
             "        importlib.import_module(m.name)\n"
             "print([n for n in qvac_nb.__all__ if isinstance(getattr(qvac_nb, n), types.ModuleType)])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


if __name__ == "__main__":
    found = cycles(import_graph())
    for component in found:
        print(" <-> ".join(component))
    print(f"{len(found)} import circle(s)")
    sys.exit(1 if found else 0)

