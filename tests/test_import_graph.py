"""The house plan, checked: imports flow pages → ui → core → storage; core and storage never
import Streamlit, ui or pages; nothing but tests imports tests; storage takes from core only its
error type and plain records; and no module imports itself through others, lazy imports and
TYPE_CHECKING ones included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("core", "ui", "pages", "storage", "tests", "bench", "devtools", "app")
# What storage/ may take from core/: the error, the operator's Actor, Dataset and Example.
STORAGE_MAY_USE = {"core", "core.errors", "core.policy", "core.datasets", "core.datasets.data"}
# What each package of core/ may import from core/ (each __init__.py says the same in words);
# errors and policy are open to all. Together they run one way: no package cycle.
CORE_MAY_USE = {
    "core.datasets": set(),
    "core.prompting": {"core.datasets"},
    "core.models": {"core.prompting"},
    "core.generation": {"core.models", "core.prompting"},
    "core.served": {"core.generation", "core.prompting"},
    "core.reporting": set(),
    "core.evaluation": {"core.prompting", "core.reporting"},  # prompting: its embeddings
    "core.library": {"core.datasets", "core.prompting", "core.generation", "core.evaluation"},
    "core.runs": {
        *("core.datasets", "core.prompting", "core.models", "core.generation", "core.served"),
        *("core.evaluation", "core.reporting", "core.library"),
    },
    "core.search": {
        *("core.datasets", "core.prompting", "core.models", "core.generation"),
        *("core.evaluation", "core.reporting", "core.library", "core.runs"),
    },
}
NO_STORAGE = {"core.datasets", "core.prompting", "core.models", "core.generation", "core.served"}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The first-party modules `path` imports anywhere in it, resolved to modules that exist
    (`from core.runs import jobs` is core.runs.jobs; `from core.runs.jobs import Job` too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                for a in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def graph(root: Path) -> dict[str, set[str]]:
    files = [p for top in FIRST_PARTY for p in sorted(root.glob(f"{top}/**/*.py"))]
    files += [root / "app.py"] if (root / "app.py").exists() else []
    modules = {module_name(p, root): p for p in files if ".venv" not in p.parts}
    names = set(modules)
    return {m: imports_of(p, names) - {m} for m, p in modules.items()}


def third_party(root: Path, prefix: str) -> dict[str, set[str]]:
    """Top-level third-party names each module under `prefix` imports."""
    found: dict[str, set[str]] = {}
    for path in sorted(root.glob(f"{prefix}/**/*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                tops = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = {node.module.split(".")[0]}
            else:
                continue
            found.setdefault(module_name(path, root), set()).update(tops)
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(groups)


def top(module: str) -> str:
    return module.split(".")[0]


def package(module: str) -> str:
    """core.runs.jobs → core.runs; core.errors stays; anything else → its top name."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "core" else parts[0]


def package_violations(edges: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(edges.items()):
        own = package(module)
        if own not in CORE_MAY_USE:
            continue
        for target in sorted(targets):
            theirs = package(target)
            if theirs.startswith("core.") and theirs != own:
                if theirs not in CORE_MAY_USE[own] | {"core.errors", "core.policy"}:
                    found.append(f"{module} imports {target}: {own} may not use {theirs}")
            if theirs == "storage" and own in NO_STORAGE:
                found.append(f"{module} imports {target}: {own} may not use storage")
    return found


def violations(edges: dict[str, set[str]], libraries: dict[str, set[str]]) -> list[str]:
    """Every broken rule of the house plan, as a sentence."""
    found = [f"import cycle: {' → '.join(group)}" for group in cycles(edges)]
    found += package_violations(edges)
    allowed = {
        "core": {"core", "storage"},
        "storage": {"storage", "core"},
        "ui": {"ui", "core", "storage"},
        "pages": {"pages", "ui", "core", "storage"},
        "app": {"ui"},
        "bench": {"bench", "core", "storage", "ui", "devtools"},
        "devtools": {"devtools", "core"},
    }
    for module, targets in sorted(edges.items()):
        for target in sorted(targets):
            if top(module) in allowed and top(target) not in allowed[top(module)]:
                found.append(f"{module} imports {target}")
            if top(module) == "storage" and top(target) == "core":
                if target not in STORAGE_MAY_USE:
                    found.append(f"{module} imports {target}: storage takes only plain records")
    for module, names in sorted(libraries.items()):
        if top(module) in ("core", "storage") and "streamlit" in names:
            found.append(f"{module} imports streamlit")
    return found


def test_the_house_plan_holds() -> None:
    libraries = third_party(ROOT, "core") | third_party(ROOT, "storage")
    assert violations(graph(ROOT), libraries) == []


def test_every_core_package_says_what_it_owns() -> None:
    packages = sorted(p for p in (ROOT / "core").iterdir() if p.is_dir() and p.name[0] != "_")
    assert {f"core.{p.name}" for p in packages} == set(CORE_MAY_USE) | {"core.cli"}
    for folder in packages:
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text(encoding="utf-8")))
        assert doc and 1 <= len(doc.splitlines()) <= 3, folder


def test_a_package_importing_against_the_plan_is_named(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/models/__init__.py": "",
            "core/models/registry.py": "from core.runs import jobs\n",
            "core/runs/__init__.py": "",
            "core/runs/jobs.py": "from core.models import registry\nfrom core import errors\n",
            "core/errors.py": "",
            "core/served/__init__.py": "",
            "core/served/client.py": "from storage import queries\n",
            "storage/__init__.py": "",
            "storage/queries.py": "",
        },
    )
    assert violations(graph(root), {}) == [
        "import cycle: core.models.registry → core.runs.jobs",
        "core.models.registry imports core.runs.jobs: core.models may not use core.runs",
        "core.served.client imports storage.queries: core.served may not use storage",
    ]


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize("lazy", [False, True])
def test_a_cycle_is_found_even_through_a_lazy_import(tmp_path: Path, lazy: bool) -> None:
    # within one package, so that the cycle is the only thing wrong
    back = "from core.runs import experiments\n"
    if lazy:
        back = "def f():\n    " + back
    root = _tree(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/runs/__init__.py": "",
            "core/runs/experiments.py": "from core.runs import served\n",
            "core/runs/served.py": back,
        },
    )
    assert violations(graph(root), {}) == ["import cycle: core.runs.experiments → core.runs.served"]


def test_wrong_directions_are_named(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/a.py": "import ui.views\n",
            "ui/__init__.py": "",
            "ui/views.py": "from pages import home\n",
            "pages/home.py": "",
            "storage/__init__.py": "",
            "storage/q.py": "from core import a\n",
            "bench/b.py": "from tests import helpers\n",
            "tests/__init__.py": "",
            "tests/helpers.py": "",
        },
    )
    libraries = {"core.a": {"streamlit"}}
    assert violations(graph(root), libraries) == [
        "bench.b imports tests.helpers",
        "core.a imports ui.views",
        "storage.q imports core.a: storage takes only plain records",
        "ui.views imports pages.home",
        "core.a imports streamlit",
    ]
