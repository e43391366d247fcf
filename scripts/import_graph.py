"""Print GridShift's package-level import graph, and fail on any package loop or file-level import cycle.

    python scripts/import_graph.py          # graph, loops and cycles; exit 1 if there is a loop or a cycle

Every import counts, including imports inside functions (grimp reads them all), so a cycle hidden behind a
function-level import is found too. The layer contract itself is checked by ``lint-imports`` (pyproject.toml).
"""

from __future__ import annotations

import sys
from collections import defaultdict

import grimp


def package_of(module: str) -> str:
    """``gridshift.plan.mpc`` -> ``gridshift.plan``; the root's own modules stay as they are."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for m in graph.modules:
        for d in graph.find_modules_directly_imported_by(m):
            if package_of(m) != package_of(d):
                edges[package_of(m)].add(package_of(d))
    return edges


def strongly_connected(nodes, edges_of) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components with more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges_of(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges_of(w)))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
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
    return out


def main() -> int:
    graph = grimp.build_graph("gridshift")
    packages = package_graph(graph)
    for pkg in sorted(packages):
        print(f"{pkg} -> {', '.join(sorted(d.removeprefix('gridshift.') for d in packages[pkg]))}")
    # the root package imports its public surface from the layers; it is not a layer itself
    loops = strongly_connected([p for p in packages if p != "gridshift"],
                               lambda p: {d for d in packages.get(p, ()) if d != "gridshift"})
    cycles = strongly_connected(graph.modules, graph.find_modules_directly_imported_by)
    print(f"\npackage loops: {len(loops)}")
    for comp in loops:
        print("  " + " <-> ".join(comp))
    print(f"file-level import cycles: {len(cycles)}")
    for comp in cycles:
        print("  " + " <-> ".join(comp))
    return 1 if loops or cycles else 0


if __name__ == "__main__":
    sys.exit(main())
