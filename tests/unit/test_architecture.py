"""The import structure: the floors declared as import-linter contracts in pyproject.toml hold,
and no module of the project reaches itself through its imports. Imports inside functions count
like those at the top of a module: a lazy import is still a dependency, and a loop through one
still ties the modules together.

The probes below build small packages in a temporary folder, so each check is shown to fail on
the kind of import it is there to catch."""

from collections import deque
from pathlib import Path
from textwrap import dedent

import grimp
import pytest
from importlinter import configuration
from importlinter.application.use_cases import lint_imports

# The library's entry point, not the command's: the command reconfigures logging (dictConfig),
# which would silence every logger the other tests read their messages from.
configuration.configure()

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = ("footfall", "models", "edge_agent", "aggregator", "infra", "tests")


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """One loop (``a -> b -> ... -> a``) for each group of modules that import one another,
    directly or around a loop; empty when the graph has none."""
    modules = sorted(graph.modules)
    imports = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    # Tarjan's strongly connected components, iteratively (no recursion limit to hit).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in modules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            module, i = work.pop()
            if i == 0:
                index[module] = low[module] = len(index)
                stack.append(module)
                on_stack.add(module)
            targets = imports[module]
            if i < len(targets):
                work.append((module, i + 1))
                target = targets[i]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[module] = min(low[module], index[target])
                continue
            if low[module] == index[module]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == module:
                        break
                if len(group) > 1 or module in imports[module]:
                    groups.append(sorted(group))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
    return [_loop(group, imports) for group in sorted(groups)]


def _loop(group: list[str], imports: dict[str, list[str]]) -> list[str]:
    """The shortest loop from the group's first module back to itself."""
    members = set(group)
    start = group[0]
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for target in imports[module]:
            if target == start:
                path = [module]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if target in members and target not in came_from:
                came_from[target] = module
                queue.append(target)
    raise AssertionError(f"no loop found in {group}")  # a group always has one


def _write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text), encoding="utf-8")


def test_the_floors_hold(capsys: pytest.CaptureFixture[str]) -> None:
    passed = lint_imports(str(ROOT / "pyproject.toml"), cache_dir=None, no_logo=True)
    report = capsys.readouterr().out
    assert passed, report


def test_no_module_of_the_project_imports_itself_around_a_loop() -> None:
    graph = grimp.build_graph(*PROJECT_PACKAGES, cache_dir=None)
    loops = import_cycles(graph)
    assert loops == [], "import loops:\n" + "\n".join(" -> ".join(loop) for loop in loops)


@pytest.mark.parametrize(
    "back_arrow",
    ["import probe_app\n", "def later() -> None:\n    import probe_app\n"],
    ids=["module-level", "inside-a-function"],
)
def test_an_arrow_back_up_breaks_the_floors(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    back_arrow: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _write_package(
        tmp_path,
        {
            "probe_core/__init__.py": "",
            "probe_core/settings.py": back_arrow,
            "probe_app/__init__.py": "from probe_core import settings\n",
            "pyproject.toml": """
                [tool.importlinter]
                root_packages = ["probe_core", "probe_app"]

                [[tool.importlinter.contracts]]
                name = "floors"
                type = "layers"
                layers = ["probe_app", "probe_core"]
            """,
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    passed = lint_imports(str(tmp_path / "pyproject.toml"), cache_dir=None, no_logo=True)
    report = capsys.readouterr().out
    assert not passed
    assert "probe_core.settings -> probe_app" in report


@pytest.mark.parametrize(
    ("files", "loops"),
    [
        (
            {
                "a.py": "from probe_loop import b\n",
                "b.py": "def later() -> None:\n    from probe_loop import a\n",
            },
            [["probe_loop.a", "probe_loop.b", "probe_loop.a"]],
        ),
        (
            {
                "a.py": "import probe_loop.b\n",
                "b.py": "import probe_loop.c\n",
                "c.py": "def later() -> None:\n    import probe_loop.a\n",
                "d.py": "import probe_loop.a\n",
            },
            [["probe_loop.a", "probe_loop.b", "probe_loop.c", "probe_loop.a"]],
        ),
        (
            {"a.py": "import probe_loop.b\n", "b.py": "import probe_loop.c\n", "c.py": ""},
            [],
        ),
    ],
    ids=["two-modules-one-lazy-import", "three-module-loop", "no-loop"],
)
def test_the_loop_finder_sees_imports_inside_functions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], loops: list[list[str]]
) -> None:
    _write_package(
        tmp_path, {"probe_loop/__init__.py": "", **{f"probe_loop/{n}": t for n, t in files.items()}}
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles(grimp.build_graph("probe_loop", cache_dir=None)) == loops
