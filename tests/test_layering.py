"""The package's layering, read from the source: no import cycles, and no import from a lower layer to a higher one.

Layers, top to bottom (a module may import its own layer and those below):

    cli/                 the typer app
    experiment/          the grid, its config, cache and results table
    plots/               figures, reports and the files an analysis writes
    everything else      the library: data/, models/, scoring, unlearn/, attribution/, lens, verdict/, ...

The figure scripts (figures/) are report-layer code: they may use plots/ but not the CLI.
Every `import` counts, also those inside functions (lazy imports are imports all the same); only imports under
`if TYPE_CHECKING:` do not (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "neuronscope"
RANKS = {"cli": 3, "experiment": 2, "plots": 1}  # every other module of the package: 0
SCRIPTS = {"figures": 1}  # directories of scripts outside the package, and the layer they sit in

# Edges that other parts of the redesign remove; each entry goes when its branch lands. A new violation fails.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str, modules: set[str]) -> set[str]:
    """The package modules `path` (module `name`) imports, wherever the import statement sits."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    guarded = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from pkg import sub` imports the module pkg.sub; `from mod import name` imports mod
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
    return {m for m in found if m.split(".")[0] == PACKAGE and m != name}


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """Ids of the nodes under `if TYPE_CHECKING:`: imports there never run (they name types for annotations)."""
    return {id(m) for n in ast.walk(tree)
            if isinstance(n, ast.If) and isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING"
            for stmt in n.body for m in ast.walk(stmt)}


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, for the package and the script directories."""
    files = {module_name(p, ROOT): p for p in (ROOT / PACKAGE).rglob("*.py")}
    for d in SCRIPTS:
        files |= {module_name(p, ROOT): p for p in (ROOT / d).glob("*.py")}
    names = set(files)
    return {m: imports_of(p, m, names) for m, p in files.items()}


def rank(module: str) -> int:
    parts = module.split(".")
    if parts[0] in SCRIPTS:
        return SCRIPTS[parts[0]]
    return RANKS.get(parts[1], 0) if len(parts) > 1 else 0


def upward_edges(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(importer, imported) pairs where a lower layer imports a higher one (the package's __init__ excepted: it
    is the public face and imports lazily only what it re-exports)."""
    return {(a, b) for a, targets in graph.items() for b in targets
            if a != PACKAGE and rank(b) > rank(a) and b.split(".")[0] == PACKAGE}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted; a self-import is no cycle.

    A package's __init__ importing its own submodules (which Python resolves as the package itself importing) is
    not counted: edges from `pkg` to `pkg.x` are left out.
    """
    edges = {a: {b for b in bs if b in graph and not b.startswith(a + ".")} for a, bs in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
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
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def cycle_edges(graph: dict[str, set[str]], comp: list[str]) -> set[tuple[str, str]]:
    members = set(comp)
    return {(a, b) for a in comp for b in graph[a] if b in members and not b.startswith(a + ".")}


def test_the_graph_is_read_from_every_module() -> None:
    graph = import_graph()
    # spot checks that the walker sees top-level, relative-free and in-function imports
    assert "neuronscope.models.handle" in graph["neuronscope.scoring"]
    assert "neuronscope.plots.catalog" in graph["neuronscope.cli.figures"]  # imported inside a function
    assert len(graph) > 80


def test_no_upward_imports() -> None:
    found = upward_edges(import_graph())
    new = sorted(found - KNOWN_VIOLATIONS)
    assert not new, "lower layer imports a higher one:\n" + "\n".join(f"  {a} -> {b}" for a, b in new)


def test_no_import_cycles() -> None:
    graph = import_graph()
    bad = []
    for comp in cycles(graph):
        edges = cycle_edges(graph, comp) - KNOWN_VIOLATIONS
        # a cycle all of whose edges but known ones are removed is no longer a cycle once those land
        if cycles({m: {b for b in graph[m] if (m, b) in edges} for m in comp}):
            bad.append(f"  {' <-> '.join(comp)}: edges {sorted(edges)}")
    assert not bad, "import cycles:\n" + "\n".join(bad)


def test_known_violations_still_exist() -> None:
    """An entry whose edge is gone must be removed from KNOWN_VIOLATIONS, so the list never hides a new one."""
    graph = import_graph()
    stale = sorted((a, b) for a, b in KNOWN_VIOLATIONS if b not in graph.get(a, set()))
    assert not stale, f"remove from KNOWN_VIOLATIONS (no longer imported): {stale}"


def test_the_checks_catch_a_constructed_violation() -> None:
    graph = {"neuronscope.data.a": {"neuronscope.data.b"}, "neuronscope.data.b": {"neuronscope.data.a"},
             "neuronscope.unlearn.c": {"neuronscope.cli.app"}, "neuronscope.cli.app": set(),
             "neuronscope.plots.p": {"neuronscope.experiment.t"}, "neuronscope.experiment.t": set(),
             "figures.f": {"neuronscope.cli.app"}, "neuronscope.x": {"neuronscope.x.y"}, "neuronscope.x.y": set()}
    assert cycles(graph) == [["neuronscope.data.a", "neuronscope.data.b"]]
    assert upward_edges(graph) == {("neuronscope.unlearn.c", "neuronscope.cli.app"),
                                   ("neuronscope.plots.p", "neuronscope.experiment.t"),
                                   ("figures.f", "neuronscope.cli.app")}
