"""The packages depend on each other in one direction only, and GraphQL stays above the data:
the README's layout, checked on the code itself."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# From the top: a package may import only the ones below it.
ORDER = ["gateway", "schema", "resolvers", "planning", "auth", "loaders", "datasources"]
GRAPHQL = {"strawberry", "graphql"}


def imports(package: str) -> list[tuple[str, int, str]]:
    """(file, line, module) of every absolute import in the package, those inside functions included."""
    found = []
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            found += [(str(path.relative_to(ROOT)), node.lineno, name) for name in names]
    return found


def test_nothing_imports_a_layer_above_its_own():
    upward = [(where, line, module) for i, package in enumerate(ORDER) for where, line, module in imports(package)
              if module.split(".")[0] in ORDER[:i]]
    assert upward == []


def test_only_the_schema_and_planning_know_graphql():
    """Resolvers, rights, loaders and datasources know no GraphQL types, field names or ids."""
    assert [(where, line, module) for package in ("resolvers", "auth", "loaders", "datasources")
            for where, line, module in imports(package) if module.split(".")[0] in GRAPHQL] == []


def test_the_check_sees_imports():
    """The scan is not vacuous: planning reads the access table and runs statements through loaders."""
    tops = {module.split(".")[0] for _, _, module in imports("planning")}
    assert {"auth", "loaders", "datasources", "strawberry"} <= tops
