"""The layering of the code, read from the source (nothing is imported, so a module that fails to import is still
checked): which layer may import what, no import cycle among the core's modules, and a reason beside every
in-function import.

Layers: ``wattgpu_core`` (the library and CLI) never imports streamlit, the pages (``pages``, ``pages.view``,
``pages.ui``) or ``app``; the view layer ``pages/view`` never imports streamlit, directly or through another page
module; ``app.py`` and ``pages/`` never import duckdb, xgboost, shap or scikit-learn (they reach them through the core);
only the tests and ``bench/`` import the test helpers ``wattgpu_core.testing``.

Every import counts, including those inside functions and ``if TYPE_CHECKING:`` blocks for the layer rules; the
cycle check counts every import that runs (inside functions too: an in-function import hides a cycle, it does not
remove it) and leaves out ``if TYPE_CHECKING:`` imports, which never run. ``from . import x`` depends on module
``x``, not on the package's ``__init__``. An import inside a function must carry ``# lazy: <reason>`` on its own
line or the line above it, and so must a dynamic import (``importlib.import_module``, ``__import__``), which counts
as a dependency where its module name is written out.

We check this with the standard library's ``ast`` rather than import-linter: the same walk gives the lazy-import
rule, which import-linter cannot express, and it costs no dependency.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = "wattgpu_core"
# Where the rules apply: the library, the Streamlit router and its pages (the view layer included).
SOURCES = (CORE, "pages", "app.py")
LAZY_TAG = "# lazy:"


@dataclass(frozen=True)
class Import:
    """One import statement's dependency: the importing module, the imported module's full name, where it is."""

    module: str
    target: str
    where: str  # file:line, the file relative to the repository root
    in_function: bool
    type_checking: bool


@dataclass
class Source:
    module: str
    path: str  # relative to the repository root
    is_package: bool
    tree: ast.Module
    comment_lines: dict[int, str] = field(default_factory=dict)


def module_name(rel: Path) -> tuple[str, bool]:
    """``wattgpu_core/formats/vllm.py`` -> ``wattgpu_core.formats.vllm``; a package's ``__init__`` is the package."""
    parts = list(rel.with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def read_sources(root: Path = ROOT, tops: Iterable[str] = SOURCES) -> dict[str, Source]:
    """Every module under ``tops`` (folders or files, relative to ``root``), parsed."""
    sources = {}
    for top in tops:
        files = [root / top] if (root / top).is_file() else sorted((root / top).rglob("*.py"))
        for path in files:
            rel = path.relative_to(root)
            if "__pycache__" in rel.parts:
                continue
            text = path.read_text(encoding="utf-8")
            name, is_package = module_name(rel)
            comments = {tok.start[0]: tok.string for tok in tokenize.generate_tokens(io.StringIO(text).readline)
                        if tok.type == tokenize.COMMENT}
            sources[name] = Source(name, rel.as_posix(), is_package, ast.parse(text, filename=str(rel)), comments)
    return sources


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, in_function: bool = False, type_checking: bool = False):
    """Yield (import node, inside a function?, under ``if TYPE_CHECKING``?) for every import below ``node``."""
    for child in ast.iter_child_nodes(node):
        yield from _visit(child, in_function, type_checking)


def _is_dynamic_import(node: ast.AST) -> bool:
    """``importlib.import_module(...)`` or ``__import__(...)``."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id in ("import_module", "__import__"))


def _visit(node: ast.AST, in_function: bool, type_checking: bool):
    if isinstance(node, ast.Import | ast.ImportFrom) or _is_dynamic_import(node):
        yield node, in_function, type_checking
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        yield from _walk(node, True, type_checking)
    elif isinstance(node, ast.If) and _is_type_checking(node.test):
        for stmt in node.body:
            yield from _visit(stmt, in_function, True)
        for stmt in node.orelse:
            yield from _visit(stmt, in_function, type_checking)
    else:
        yield from _walk(node, in_function, type_checking)


def imports_of(src: Source, known: set[str]) -> list[tuple[Import, ast.stmt]]:
    """Every dependency of one module, with the statement it comes from. ``from pkg import name`` depends on module
    ``pkg.name`` where that is a module of ours, else on ``pkg`` itself."""
    found = []
    for node, in_function, type_checking in _walk(src.tree):
        targets: list[str] = []
        if isinstance(node, ast.Call):  # a dynamic import counts where its module is written out
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and not arg.value.startswith("."):
                targets = [arg.value]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = src.module.split(".") if src.is_package else src.module.split(".")[:-1]
                if node.level > 1:
                    base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                targets.append(sub if sub in known else mod)
        for target in dict.fromkeys(targets):
            if target != src.module:
                found.append((Import(src.module, target, f"{src.path}:{node.lineno}", in_function, type_checking),
                              node))
    return found


def dependencies(sources: dict[str, Source]) -> list[Import]:
    known = set(sources)
    return [imp for src in sources.values() for imp, _ in imports_of(src, known)]


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


# ---------------------------------------------------------------------------------------------------------------
# Layer rules: (who, what it must never import, through which of our own modules an indirect import counts)
@dataclass(frozen=True)
class Rule:
    name: str
    importers: tuple[str, ...]
    forbidden: tuple[str, ...]
    # indirect imports through these modules of ours count too (an importer on the way is reported for itself)
    through: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()  # importers the rule leaves out



RULES = (
    Rule("the core never imports streamlit or the UI", (CORE,), ("streamlit", "pages", "app")),
    Rule("the view layer never imports streamlit", ("pages.view",), ("streamlit",), ("pages", "app")),
    Rule("the UI never imports duckdb, xgboost, shap or scikit-learn", ("pages", "app"),
         ("duckdb", "xgboost", "shap", "sklearn")),
    Rule("only tests and bench/ import the test helpers", (CORE, "pages", "app"), (f"{CORE}.testing",),
         exempt=(f"{CORE}.testing",)),
)


def violations(rule: Rule, deps: list[Import]) -> list[str]:
    """Each import chain from one of ``rule.importers`` to a forbidden module, as 'a -> b -> streamlit (file:line)'."""
    by_module: dict[str, list[Import]] = {}
    for imp in deps:
        by_module.setdefault(imp.module, []).append(imp)
    found = []
    for start in sorted(m for m in by_module if _within(m, rule.importers) and not _within(m, rule.exempt)):
        # breadth-first through allowed modules of ours, so each report is a shortest chain
        seen = {start}
        queue: list[tuple[str, list[Import]]] = [(start, [])]
        while queue:
            module, chain = queue.pop(0)
            for imp in by_module.get(module, []):
                if _within(imp.target, rule.forbidden):
                    path = " -> ".join([start, *(i.target for i in [*chain, imp])])
                    found.append(f"{path} ({imp.where})")
                elif (_within(imp.target, rule.through) and not _within(imp.target, rule.importers)
                      and imp.target not in seen):
                    seen.add(imp.target)
                    queue.append((imp.target, [*chain, imp]))
    return found


# ---------------------------------------------------------------------------------------------------------------
# Cycles
def cycle_groups(deps: list[Import], scope: str = CORE) -> list[tuple[list[str], list[Import]]]:
    """Every strongly connected group of modules within ``scope`` (each imports each other, maybe through others),
    with one import cycle through it (its edges in order), counting every import that runs (module level and
    in-function, not ``if TYPE_CHECKING:``)."""
    graph: dict[str, dict[str, Import]] = {}
    for imp in deps:
        if imp.type_checking or not (_within(imp.module, [scope]) and _within(imp.target, [scope])):
            continue
        graph.setdefault(imp.module, {}).setdefault(imp.target, imp)
        graph.setdefault(imp.target, {})
    return [(group, _one_cycle(graph, group)) for group in _strongly_connected(graph) if len(group) > 1]


def cycles(deps: list[Import], scope: str = CORE) -> list[list[Import]]:
    return [cycle for _, cycle in cycle_groups(deps, scope)]


def _strongly_connected(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit to hit on a long chain)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(sorted(group))
    return groups


def _one_cycle(graph: dict[str, dict[str, Import]], group: list[str]) -> list[Import]:
    """The shortest cycle through the group's first module (breadth-first inside the group)."""
    members = set(group)
    start = group[0]
    previous: dict[str, Import] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target, imp in sorted(graph[node].items()):
            if target == start:
                chain = [imp]
                while chain[0].module != start:
                    chain.insert(0, previous[chain[0].module])
                return chain
            if target in members and target not in previous:
                previous[target] = imp
                queue.append(target)
    raise AssertionError(f"no cycle found in strongly connected group {group}")


def describe(cycle: list[Import]) -> str:
    modules = " -> ".join([cycle[0].module, *(imp.target for imp in cycle)])
    edges = "".join(f"\n    {imp.where}: {imp.module} imports {imp.target}"
                    f"{' (in a function)' if imp.in_function else ''}" for imp in cycle)
    return f"{modules}{edges}"


# ---------------------------------------------------------------------------------------------------------------
# In-function imports without a reason
def unexplained_lazy_imports(sources: dict[str, Source]) -> list[str]:
    missing = []
    for src in sources.values():
        for node, in_function, _ in _walk(src.tree):
            if not (in_function or _is_dynamic_import(node)):
                continue
            lines = range(node.lineno - 1, (node.end_lineno or node.lineno) + 1)
            reasons = [src.comment_lines[n].partition(LAZY_TAG)[2].strip() for n in lines
                       if LAZY_TAG in src.comment_lines.get(n, "")]
            if not any(reasons):
                text = ast.unparse(node)
                missing.append(f"{src.path}:{node.lineno}: {text}")
    return missing


# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sources() -> dict[str, Source]:
    return read_sources()


@pytest.fixture(scope="module")
def deps(sources) -> list[Import]:
    return dependencies(sources)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_layer_rule(rule, deps):
    found = violations(rule, deps)
    if found:
        pytest.fail(f"{rule.name}; broken by:\n" + "\n".join(found), pytrace=False)


def test_no_import_cycle_in_the_core(deps):
    found = cycle_groups(deps)
    if found:
        pytest.fail(f"{len(found)} group(s) of {CORE} modules import each other (in-function imports count); "
                    "each group and one cycle through it:\n"
                    + "\n".join(f"[{', '.join(group)}]\n  {describe(cycle)}" for group, cycle in found),
                    pytrace=False)


def test_every_in_function_import_says_why(sources):
    missing = unexplained_lazy_imports(sources)
    if missing:
        pytest.fail(f"{len(missing)} in-function import(s) without a '{LAZY_TAG} <reason>' comment on the same or "
                    "the previous line:\n" + "\n".join(missing), pytrace=False)


# ---------------------------------------------------------------------------------------------------------------
# The checker itself, on small trees written here: each rule must catch what it is for.
def _tree(tmp_path: Path, files: dict[str, str]) -> dict[str, Source]:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return read_sources(tmp_path, [top for top in SOURCES if (tmp_path / top).exists()])


def test_checker_finds_a_cycle_hidden_in_a_function(tmp_path):
    srcs = _tree(tmp_path, {
        f"{CORE}/__init__.py": "",
        f"{CORE}/a.py": "from . import b\n",
        f"{CORE}/b.py": "def f():\n    from .c import g  # lazy: test\n    return g\n",
        f"{CORE}/c.py": "from .a import x\n",
        f"{CORE}/d.py": "from . import a\n",
        "pages/p.py": "from wattgpu_core import a\n",
        "app.py": "",
    })
    found = cycles(dependencies(srcs))
    assert [[imp.module for imp in c] for c in found] == [[f"{CORE}.a", f"{CORE}.b", f"{CORE}.c"]]
    assert found[0][1].in_function and found[0][1].where == f"{CORE}/b.py:2"


def test_checker_ignores_type_checking_imports_for_cycles_only(tmp_path):
    srcs = _tree(tmp_path, {
        f"{CORE}/__init__.py": "",
        f"{CORE}/a.py": "from . import b\n",
        f"{CORE}/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\n"
                        "    import streamlit\n",
        "app.py": "",
    })
    deps = dependencies(srcs)
    assert cycles(deps) == []
    assert violations(RULES[0], deps) == [f"{CORE}.b -> streamlit ({CORE}/b.py:4)"]


def test_checker_resolves_from_package_import_module(tmp_path):
    srcs = _tree(tmp_path, {
        f"{CORE}/__init__.py": "from .a import x\n",
        f"{CORE}/a.py": "x = 1\n",
        f"{CORE}/sub/__init__.py": "",
        f"{CORE}/sub/m.py": "from .. import a\nfrom wattgpu_core import x\nfrom . import n\n",
        f"{CORE}/sub/n.py": "",
        "app.py": "",
    })
    targets = {(d.module, d.target) for d in dependencies(srcs)}
    assert targets == {(CORE, f"{CORE}.a"), (f"{CORE}.sub.m", f"{CORE}.a"), (f"{CORE}.sub.m", CORE),
                       (f"{CORE}.sub.m", f"{CORE}.sub.n")}
    assert cycles(dependencies(srcs)) == []  # the package __init__ importing a is not a cycle with sub.m -> a


def test_checker_layer_rules(tmp_path):
    srcs = _tree(tmp_path, {
        f"{CORE}/__init__.py": "",
        f"{CORE}/core.py": "def f():\n    from pages.view import fmt  # lazy: test\n",
        "pages/view/__init__.py": "",
        "pages/view/fmt.py": "from pages.ui import widgets\n",
        "pages/ui/widgets.py": "import streamlit as st\n",
        "pages/home.py": "import streamlit as st\nfrom sklearn.linear_model import Ridge\n",
        "app.py": "import xgboost\n",
        f"{CORE}/testing/browser.py": "from . import postgres\n",
        f"{CORE}/testing/postgres.py": "",
        f"{CORE}/cli.py": "from .testing.postgres import cluster\n",
    })
    deps = dependencies(srcs)
    assert violations(RULES[0], deps) == [f"{CORE}.core -> pages.view.fmt ({CORE}/core.py:2)"]
    assert violations(RULES[1], deps) == [
        "pages.view.fmt -> pages.ui.widgets -> streamlit (pages/ui/widgets.py:1)"]
    assert violations(RULES[2], deps) == ["app -> xgboost (app.py:1)",
                                          "pages.home -> sklearn.linear_model (pages/home.py:2)"]
    assert violations(RULES[3], deps) == [f"{CORE}.cli -> {CORE}.testing.postgres ({CORE}/cli.py:1)"]


def test_checker_wants_a_reason_per_in_function_import(tmp_path):
    srcs = _tree(tmp_path, {
        f"{CORE}/__init__.py": "",
        f"{CORE}/m.py": ("def f():\n"
                         "    # lazy: shap takes a second to import\n"
                         "    import shap\n"
                         "    import json  # lazy: \n"
                         "    from .n import (\n        x,  # lazy: cycle-free but slow\n    )\n"
                         "    class K:\n        def g(self):\n            import csv\n"),
        f"{CORE}/n.py": ("x = 1\nimport importlib\nM = {'a': 'wattgpu_core.m'}\nimportlib.import_module(M['a'])\n"
                         "__import__('wattgpu_core.m')  # lazy: registers itself\n"),
        "app.py": "",
    })
    assert unexplained_lazy_imports(srcs) == [f"{CORE}/m.py:4: import json", f"{CORE}/m.py:10: import csv",
                                              f"{CORE}/n.py:4: importlib.import_module(M['a'])"]
    assert [d.target for d in dependencies(srcs) if d.module == f"{CORE}.n"] == ["importlib", f"{CORE}.m"]
