"""The import structure (docs/design.md, "Who owns what"): no cycles, function-level imports included.

import-linter (pyproject, run by `make test`) checks the layer contracts; acyclic_siblings there does not
see a package importing its own child and back, so this test looks for every cycle between modules,
from grimp's graph (the same static analysis import-linter uses, independent of regspace's code).
"""

from __future__ import annotations

import grimp
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components


def module_cycles(package: str) -> list[list[str]]:
    """Strongly connected components of more than one module in ``package``'s import graph."""
    graph = grimp.build_graph(package)
    modules = sorted(graph.modules)
    index = {m: i for i, m in enumerate(modules)}
    edges = [(index[a], index[b]) for a in modules for b in graph.find_modules_directly_imported_by(a)]
    rows, cols = np.array(edges).T if edges else (np.array([], int), np.array([], int))
    matrix = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(modules), len(modules)))
    _, labels = connected_components(matrix, directed=True, connection="strong")
    groups: dict[int, list[str]] = {}
    for m, label in zip(modules, labels):
        groups.setdefault(label, []).append(m)
    return sorted(g for g in groups.values() if len(g) > 1)


def test_no_import_cycle_between_regspace_modules():
    assert module_cycles("regspace") == []
