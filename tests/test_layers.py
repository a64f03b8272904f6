"""The house's shape: the ``glitchnet`` package's import graph has no loop and points only down its layers, and the
app's pages use Streamlit's public API only.

Every import counts, wherever it is written: at the top of a module, inside a function, under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "glitchnet"

LAYERS: list[tuple[str, set[str]]] = [
    ("foundations: settings, errors, safe text, files, taxonomies (no torch)",
     {"glitchnet", "errors", "names", "files", "workers", "architectures", "classes", "config", "scores"}),
    ("pixels: image rules and the Omega scan",
     {"images", "imagestats", "omega", "omega.qtransform", "omega.whiten", "omega.png", "omega.render"}),
    ("data: datasets, glitches, augmentation, simulated and real strain",
     {"data", "glitches", "augment", "realpool", "strain", "simulate", "simulate.dataset", "simulate.morphologies",
      "simulate.noise", "simulate.realnoise"}),
    ("model: the network and its checkpoints",
     {"model", "syncbn", "checkpoint", "shipped"}),
    ("compute: training, evaluation, prediction, similarity",
     {"distributed", "engine", "evaluate", "inference", "export", "train", "crossval", "similar", "bulk"}),
    ("services: what the app calls (queue and budgets, background jobs, summaries, the web server)",
     {"serving", "appsession", "jobs", "explore", "webapp"}),
    ("interface: the command line",
     {"cli", "__main__"}),
]
"""The package's layers, bottom first (module names without ``glitchnet.``; ``glitchnet`` is the package itself). A
module imports only modules of its own layer or below."""

PUBLIC_STREAMLIT = {"streamlit", "streamlit.components.v1"}
"""What the app may import of Streamlit: its public namespace and the components API."""


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (``glitchnet.omega.render``; a package by its own name)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imported(path: Path, package: str) -> Iterator[str]:
    """Every module name an import statement of the file names (``from a import b`` gives ``a.b`` and ``a``),
    relative imports resolved against ``package``."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                full = ".".join(base + ([node.module] if node.module else []))
            else:
                full = node.module or ""
            yield full
            yield from (f"{full}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a name resolves to the deepest module that holds it)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for imported in _imported(path, package):
            if not imported.startswith("glitchnet"):
                continue
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported:
                targets.add(imported)
        targets.discard(name)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import loop (``[a, b, ..., a]``), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (loop := visit(target)) is not None:
                return loop
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (loop := visit(node)) is not None:
            return loop
    return None


def _short(module: str) -> str:
    return module if module == "glitchnet" else module.removeprefix("glitchnet.")


def layer_of() -> dict[str, int]:
    return {f"glitchnet.{m}" if m != "glitchnet" else m: i for i, (_, names) in enumerate(LAYERS) for m in names}


def test_every_module_has_one_layer() -> None:
    placed = [m for _, names in LAYERS for m in names]
    assert len(placed) == len(set(placed)), "a module is in two layers"
    unplaced = sorted(_short(m) for m in _modules() if m not in layer_of())
    gone = sorted(_short(m) for m in layer_of() if m not in _modules())
    assert not unplaced, f"modules in no layer of tests/test_layers.py: {', '.join(unplaced)}"
    assert not gone, f"layers name modules that do not exist: {', '.join(gone)}"


def test_the_package_has_no_import_loop() -> None:
    loop = find_cycle(import_graph())
    assert loop is None, "import loop: " + " -> ".join(_short(m) for m in loop)


def test_no_module_imports_a_higher_layer() -> None:
    layer = layer_of()
    upward = sorted(f"{_short(a)} ({LAYERS[layer[a]][0].split(':')[0]}) imports {_short(b)} "
                    f"({LAYERS[layer[b]][0].split(':')[0]})"
                    for a, targets in import_graph().items() for b in targets
                    if a in layer and b in layer and layer[b] > layer[a])
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def name_clashes(modules: dict[str, Path]) -> list[str]:
    """Names that mean two things in the package: two modules with one last name (``glitches`` and
    ``simulate.glitches``), or a top-level function, class or constant named after another module (``train.evaluate``
    beside the ``evaluate`` module). A module's own name inside it (``train.train``) is no clash."""
    by_last: dict[str, list[str]] = {}
    for name in modules:
        by_last.setdefault(name.rpartition(".")[2], []).append(name)
    clashes = [f"modules {' and '.join(sorted(names))}" for last, names in sorted(by_last.items()) if len(names) > 1]
    for name, path in sorted(modules.items()):
        own = name.rpartition(".")[2]
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined = [node.name]
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                defined = [t.id for t in targets if isinstance(t, ast.Name)]
            else:
                continue
            clashes += [f"{_short(name)}.{d} beside the module {', '.join(_short(m) for m in by_last[d])}"
                        for d in defined if d in by_last and d != own]
    return clashes


def test_no_name_means_two_things() -> None:
    assert name_clashes(_modules()) == []


def test_name_clashes_are_found(tmp_path: Path) -> None:
    (tmp_path / "sim").mkdir()
    (tmp_path / "glitches.py").write_text("X = 1\n")
    (tmp_path / "sim" / "glitches.py").write_text("def glitches():\n    pass\n")
    (tmp_path / "evaluate.py").write_text("def evaluate():\n    pass\n")
    (tmp_path / "train.py").write_text("def train():\n    pass\n\n\ndef evaluate():\n    pass\n")
    modules = {"glitchnet.glitches": tmp_path / "glitches.py", "glitchnet.sim.glitches": tmp_path / "sim/glitches.py",
               "glitchnet.evaluate": tmp_path / "evaluate.py", "glitchnet.train": tmp_path / "train.py"}
    assert name_clashes(modules) == ["modules glitchnet.glitches and glitchnet.sim.glitches",
                                     "train.evaluate beside the module evaluate"]


def test_the_graph_sees_nested_and_type_checking_imports(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .inference import Prediction\n"
                      "def f():\n    from . import serving\n    import glitchnet.train\n")
    assert set(_imported(source, "glitchnet")) >= {"glitchnet.inference", "glitchnet.serving", "glitchnet.train"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def _streamlit_internals(path: Path) -> list[str]:
    """Streamlit modules below its public namespace that the file imports: ``import streamlit.x``, ``from
    streamlit.x import y`` or ``from streamlit import x`` where ``x`` is a module (not ``streamlit.components.v1``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            modules = [node.module]
            if node.module in PUBLIC_STREAMLIT:  # a name of the public namespace, unless it is a submodule
                modules += [f"{node.module}.{alias.name}" for alias in node.names
                            if importlib.util.find_spec(f"{node.module}.{alias.name}") is not None]
        else:
            continue
        found |= {m for m in modules if m.startswith("streamlit.") and m not in PUBLIC_STREAMLIT}
    return sorted(found)


STREAMLIT_INTERNALS_ALLOWED = {"appsession"}
"""The one library module that reaches past Streamlit's public API (freeing uploads early), behind a pinned range."""


def test_the_library_keeps_streamlit_internals_in_one_module() -> None:
    using = sorted(_short(m) for m, path in _modules().items() if _streamlit_internals(path))
    assert set(using) <= STREAMLIT_INTERNALS_ALLOWED, f"Streamlit internals imported by {', '.join(using)}"


@pytest.mark.parametrize("path", [ROOT / "streamlit_app.py", *sorted((ROOT / "pages").glob("*.py"))],
                         ids=lambda p: p.name)
def test_the_app_uses_public_streamlit_only(path: Path) -> None:
    internals = _streamlit_internals(path)
    assert not internals, f"{path.name} imports Streamlit internals: {', '.join(internals)}"


def test_streamlit_internals_are_recognised(tmp_path: Path) -> None:
    source = tmp_path / "page.py"
    source.write_text("import streamlit as st\nfrom streamlit import columns, runtime\n"
                      "import streamlit.components.v1 as c\ndef f():\n"
                      "    from streamlit.runtime.scriptrunner import get_script_run_ctx\n")
    assert _streamlit_internals(source) == ["streamlit.runtime", "streamlit.runtime.scriptrunner"]


def drawn_strings(path: Path) -> list[int]:
    """Lines of the bare strings Streamlit's "magic" would draw when it runs ``path`` as a page: every string
    expression statement but the module's docstring, functions' and classes' docstrings (not drawn) excluded."""
    tree = ast.parse(path.read_text(), str(path))
    skip = {id(tree.body[0])} if tree.body else set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            skip |= {id(n) for n in ast.walk(node)}  # magic draws nothing inside a function or class
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str) and id(node) not in skip]


@pytest.mark.parametrize("path", [ROOT / "streamlit_app.py",
                                  *sorted(p for p in (ROOT / "pages").glob("*.py") if not p.name.startswith("_"))],
                         ids=lambda p: p.name)
def test_no_page_draws_a_stray_string(path: Path) -> None:
    assert drawn_strings(path) == [], f"{path.name}: a bare string Streamlit would draw on the page (use a comment)"


def test_stray_strings_are_found(tmp_path: Path) -> None:
    page = tmp_path / "page.py"
    page.write_text('"""Doc."""\nX = 1\n"""About X."""\nif X:\n    "drawn too"\n\n\ndef f():\n    """Doc."""\n')
    assert drawn_strings(page) == [3, 5]
