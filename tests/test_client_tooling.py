"""The tools client developers point at the contract, run as they run them: graphql-inspector
compares the committed `schema.graphql` with what the running `serve` introspects, and
graphql-codegen's typescript plugins generate from `schema.graphql` and `operations/`.

The npm packages (exact versions in tests/client_tooling/package.json) are installed once
into a cache directory outside the repository (~/.cache/account-gateway-client-tooling, or
CLIENT_TOOLING_DIR); the first install takes about 30 s, later runs reuse it. Without node
and npm, or without the registry, the tests skip and say why.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import graphql
import pytest

from tests import node_tools
from tests.test_serve import Served, serving

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(__file__).parent / "client_tooling" / "package.json"


@pytest.fixture(scope="module")
def tools() -> Path:
    """The directory whose node_modules/.bin holds the tools, installed on first use."""
    workdir = Path(os.environ.get("CLIENT_TOOLING_DIR", Path.home() / ".cache" / "account-gateway-client-tooling"))
    bins = ("graphql-inspector", "graphql-codegen")
    return node_tools.installed(workdir, PACKAGE.read_text(), "to run graphql-inspector and graphql-codegen",
                                ready=lambda found: all((found / "node_modules" / ".bin" / b).exists() for b in bins),
                                timeout=300)


def _run(tools: Path, tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(tools / "node_modules" / ".bin" / tool), *args], cwd=tools,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving("client-tooling") as served:
        yield served


# graphql-tools (under graphql-inspector, codegen and graphql-config) fills every root the
# `schema` block leaves out with the type of the conventional name: the block names
# `subscription: SubscriptionRoot`, so the domain type `Subscription` is not taken for the root.
def test_graphql_inspector_finds_no_change_between_the_committed_schema_and_the_live_one(tools, served):
    diff = _run(tools, "graphql-inspector", "diff", str(ROOT / "schema.graphql"), f"{served.url}/graphql")
    output = diff.stdout + diff.stderr
    assert diff.returncode == 0, output
    assert "No changes detected" in output, output


def test_graphql_codegen_generates_typescript_from_the_schema_and_every_operation(tools, tmp_path):
    generated = tmp_path / "operations.ts"
    config = tmp_path / "codegen.json"
    config.write_text(json.dumps({
        "schema": str(ROOT / "schema.graphql"),
        "documents": str(ROOT / "operations" / "*.graphql"),
        "generates": {str(generated): {"plugins": ["typescript", "typescript-operations"]}},
    }))
    run = _run(tools, "graphql-codegen", "--config", str(config))
    assert run.returncode == 0, run.stdout + run.stderr
    text = generated.read_text()
    # One result type per operation of the folder, named as codegen names them.
    for path in sorted((ROOT / "operations").glob("*.graphql")):
        for operation in graphql.parse(path.read_text()).definitions:
            if isinstance(operation, graphql.OperationDefinitionNode):
                name = operation.name.value + operation.operation.value.capitalize()
                assert f"export type {name} = " in text, (path.name, name)
