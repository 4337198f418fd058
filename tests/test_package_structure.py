"""The package's shape, read from its source (issue 23): imports run one way, private names stay in
their module, and decoding methods are rows of ``dysco/methods.py``, never names spelled elsewhere.

Both checks parse ``headscope/**/*.py`` with :mod:`ast` (nothing is imported), so they see function-level
imports too: a circle closed inside a function still couples two modules. Imports under
``if TYPE_CHECKING:`` are skipped: they never run. The allow-lists below name what is known and not yet
fixed; an entry that no longer occurs fails ``test_the_allow_lists_hold_only_what_still_occurs``, so the
lists only shrink.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from headscope.dysco.methods import METHODS

PACKAGE = Path(__file__).resolve().parents[1] / "headscope"

# Import circles not yet broken (each a set of modules that import each other). Remove an entry
# when its circle is gone.
ALLOWED_CIRCLES: set[frozenset[str]] = set()  # none left: keep it that way
# Private names imported from another module, not yet made public: (importer, module, name).
ALLOWED_PRIVATE: set[tuple[str, str, str]] = set()  # none left: keep it that way
# String literals equal to a method name that are not a method: (the string, what it names there) ->
# the files where it may appear.
ALLOWED_METHOD_LITERALS = {
    ("dysco", "the subpackage headscope.dysco, in the lazy-import table"): {"headscope/__init__.py"},
    ("dysco", "the ablation config's 'dysco' section (warm-ups, templates)"): {"headscope/ablate/config.py"},
    # heads.py's formats move to head_formats.py (issue 23, item 3): either holds the format's name
    ("dysco", "the DySCO authors' head-file format"): {"headscope/heads.py", "headscope/head_formats.py",
                                                       "headscope/commands/heads.py"},
}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path) -> dict[str, Path]:
    return {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (imports for the type checker only)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return (n for n in ast.walk(tree) if id(n) not in skip)


def _source_module(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name of the module a ``from ... import`` reads."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(root: Path) -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """(module -> modules of the package it imports, [(importer, module, private name)]) for the
    package at ``root``; a ``from pkg import sub`` of a submodule is an import of ``pkg.sub``."""
    modules = _modules(root)
    top = root.name
    edges: dict[str, set[str]] = {m: set() for m in modules}
    private: list[tuple[str, str, str]] = []
    for module, path in modules.items():
        for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges[module].update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                source = _source_module(module, path.name == "__init__.py", node)
                if source != top and not source.startswith(top + "."):
                    continue
                for alias in node.names:
                    if f"{source}.{alias.name}" in modules:  # a submodule (a private one is fine)
                        edges[module].add(f"{source}.{alias.name}")
                        continue
                    if source in modules:
                        edges[module].add(source)
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        private.append((module, source, alias.name))
    return edges, private


def circles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module, or of one importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

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
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(frozenset(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def method_literals(root: Path, methods: tuple[str, ...]) -> list[tuple[str, int, str]]:
    """(file, line, string) of every string literal equal to a method name, outside ``dysco/methods.py``
    and outside ``help=`` texts (the CLI's help may name methods)."""
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        if rel == f"{root.name}/dysco/methods.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        help_texts = {id(n) for kw in ast.walk(tree) if isinstance(kw, ast.keyword) and kw.arg == "help"
                      for n in ast.walk(kw.value)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in methods
                    and id(node) not in help_texts):
                out.append((rel, node.lineno, node.value))
    return out


# -- the checks on headscope ----------------------------------------------------------------------
def _allowed_literal(path: str, value: str) -> bool:
    return any(value == v and path in files for (v, _), files in ALLOWED_METHOD_LITERALS.items())


def test_no_import_circle_in_the_package():
    edges, _ = import_graph(PACKAGE)
    new = [sorted(c) for c in set(circles(edges)) - ALLOWED_CIRCLES]
    assert not new, f"import circles (break them: move the shared code to a module both import): {new}"


def test_no_private_name_crosses_a_module():
    _, private = import_graph(PACKAGE)
    new = sorted(set(private) - ALLOWED_PRIVATE)
    assert not new, f"private names imported from another module (make them public, or move them): {new}"


def test_method_names_are_spelled_only_in_the_method_table():
    bad = [hit for hit in method_literals(PACKAGE, METHODS) if not _allowed_literal(hit[0], hit[2])]
    assert not bad, ("a decoding method's name written outside dysco/methods.py: read its row instead "
                     f"(method_spec, method_with_role, the row's step / role / flags): {bad}")


def test_the_allow_lists_hold_only_what_still_occurs():
    """Housekeeping: once a listed circle, private import or literal is gone, its entry goes too."""
    edges, private = import_graph(PACKAGE)
    stale: list[object] = [sorted(c) for c in ALLOWED_CIRCLES - set(circles(edges))]
    stale += sorted(ALLOWED_PRIVATE - set(private))
    found = method_literals(PACKAGE, METHODS)
    stale += [key for key, files in ALLOWED_METHOD_LITERALS.items()
              if not any(value == key[0] and path in files for path, _, value in found)]
    assert not stale, f"remove these entries from the allow-lists above, they no longer occur: {stale}"


# -- the checks themselves, on small packages written here -----------------------------------------
def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_circle_closed_inside_a_function_is_found(tmp_path):
    root = _package(tmp_path, {"a.py": "from .b import f\n",
                               "b.py": "def f():\n    from . import a\n    return a\n",
                               "c.py": "from .a import f\n"})
    edges, _ = import_graph(root)
    assert circles(edges) == [frozenset({"pkg.a", "pkg.b"})]


def test_type_checking_imports_and_one_way_imports_are_no_circle(tmp_path):
    root = _package(tmp_path, {"a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import f\n",
                               "b.py": "import pkg.a\ndef f():\n    return pkg.a\n"})
    edges, _ = import_graph(root)
    assert edges["pkg.b"] == {"pkg.a"} and circles(edges) == []


@pytest.mark.parametrize("text, expected", [
    ("from .b import _hidden\n", [("pkg.a", "pkg.b", "_hidden")]),
    ("def g():\n    from pkg.b import _hidden\n", [("pkg.a", "pkg.b", "_hidden")]),
    ("from ._util import helper\n", []),  # a public name of a private module
    ("from . import _util\n", []),  # a private module itself
    ("from .b import public\n", []),
])
def test_private_names_from_another_module_are_found(tmp_path, text, expected):
    root = _package(tmp_path, {"a.py": text, "b.py": "_hidden = public = 1\n", "_util.py": "helper = 1\n"})
    assert import_graph(root)[1] == expected


def test_method_literals_are_found_except_in_help_and_docstrings(tmp_path):
    root = _package(tmp_path, {
        "dysco/methods.py": 'TABLE = ("vanilla",)\n',
        "report.py": '"""Compare with vanilla."""\nimport click\n'
                     'def f(m):\n    return m == "vanilla"\n'
                     '@click.option("--method", help="vanilla")\ndef g():\n    pass\n',
    })
    assert method_literals(root, ("vanilla",)) == [("pkg/report.py", 4, "vanilla")]
