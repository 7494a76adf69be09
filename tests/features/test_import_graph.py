"""The package's import graph, read from the source (every import, inside functions too: a lazy
import hides a circle, it does not remove it; type-only imports under TYPE_CHECKING left out):
no module reaches itself through its imports, in the whole package or any subpackage."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "ddcodec"
CIRCLE_FREE = ("ddcodec", "ddcodec.bitstream", "ddcodec.codec", "ddcodec.distillation",
               "ddcodec.labels", "ddcodec.sets", "ddcodec.data", "ddcodec.training")

# The pipeline's layers, bottom first: a module imports only from its own layer or lower ones.
# Top-level modules are the shared utilities at the bottom, except those named higher up.
LAYERS = (
    ("devices", "errors", "events", "fileio", "fixedpoint", "limits", "memory", "names",
     "options", "progress", "registry", "seeds", "spent", "units", "version"),
    ("data", "codec", "coding"),  # images in and out; the image model; entropy coding
    ("training",),  # networks and the protocol that trains them
    ("labels",),  # teacher, ladder, labelling
    ("sets",),  # set types
    ("bitstream",),  # the .ddz format
    ("distillation",),
    ("evaluation",),  # measure, ranking
    ("api", "reader"),  # the verbs, as Python functions; training straight from a .ddz
    ("reports", "audit"),  # jobs built from the verbs
    ("cli", "__main__"),
)


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


class _Imports(ast.NodeVisitor):
    def __init__(self) -> None:
        self.names: list[str] = []

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.names += [alias.name for alias in node.names]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        self.names += [f"{base}.{alias.name}" for alias in node.names]


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a `from pkg import name` of a module counts
    as that module; of anything else, as the package)."""
    known = modules()
    graph = {name: set() for name in known}
    for name, path in known.items():
        visitor = _Imports()
        visitor.visit(ast.parse(path.read_text()))
        for target in visitor.names:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(root: str) -> None:
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_circle_finder_finds_a_circle_and_nothing_else():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("subpackage", CIRCLE_FREE)
def test_no_import_circle(subpackage):
    graph = import_graph()
    inside = {m: {t for t in ts if t.startswith(subpackage)}
              for m, ts in graph.items() if m.startswith(subpackage)}
    assert len(inside) > 3
    assert circles(inside) == []


def layer(module: str) -> int:
    part = module.split(".")[1]
    for rank, names in enumerate(LAYERS):
        if part in names:
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def test_every_module_has_a_layer():
    for module in import_graph():
        if module != "ddcodec":
            layer(module)


def test_no_import_runs_up_the_layers():
    graph = import_graph()
    upward = sorted(f"{m} -> {t}" for m, ts in graph.items() if m != "ddcodec"
                    for t in ts if t != "ddcodec" and layer(t) > layer(m))
    assert upward == []


def test_the_readmes_map_names_every_module():
    """README's Development section draws the package; a module it does not name is missing
    from the map a contributor reads first."""
    text = (PACKAGE.parent / "README.md").read_text()
    tree = text[text.index("```text\nddcodec/"):]
    tree = tree[:tree.index("\n```", 8)]
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", tree))
    missing = [name for name, path in modules().items()
               if path.stem != "__init__" and path.stem not in words]
    assert missing == [], f"README's module map lacks {missing}"
