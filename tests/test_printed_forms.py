"""The printed forms the registry hashes, compared byte for byte with the client tools themselves.

graphql-js (16 and 17) and @graphql-tools/documents print every operation and a set of awkward
documents; graphql-codegen's client preset writes its `persisted-documents.json` for operations/,
and every hash in it must be registered. These run where node and npm are installed (packages go
to a cache directory outside the repository, CLIENT_TOOLS_DIR or ~/.cache) and skip otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from graphql import parse, print_ast

from gateway.persisted import OperationRegistry
from gateway.printed import print_graphql_js_16, stable_print
from tests import node_tools

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = ROOT / "operations"
PRINT_SCRIPT = Path(__file__).parent / "client_tools" / "print.mjs"
GRAPHQL_JS = {"16": (print_graphql_js_16, "16.15.0"), "17": (print_ast, "17.1.0")}
DOCUMENTS_VERSION = "1.0.2"  # @graphql-tools/documents

AWKWARD = [
    "{ b a { d c } }",
    "query Q($z: Int = 1, $a: [String!] = [\"x\", \"y\"], $o: SubscriptionOrder = {field: EXPIRES_AT, dir: ASC}) "
    "{ f(o: {b: 1, a: {c: [1, 2]}}, list: [1, 2, 3]) }",
    "query Long { field(argumentNumberOne: \"a long string value\", argumentNumberTwo: 123456789, three: true) }",
    "query Lists { f(l: [\"aaaaaaaaaaaaaaaa\", \"bbbbbbbbbbbbbbbbbb\", \"cccccccccccccccccc\", \"dddddddddddddddd\"]) }",
    "query Block { f(text: \"\"\"\n  two\n    lines  and  spaces\n\"\"\") g(s: \"tab\\there  é ☃\") }",
    "query D @z(b: 1, a: 2) @a { f @skip(if: false) @include(if: true) { x(b: 1, a: 2) } }",
    "query WithFragments { ...B ... on Query { z y } ... on Query { a } ...A } "
    "fragment B on Query @b @a(y: 1, x: 2) { c b } fragment A on Query { a }",
    "mutation M($b: Int, $a: Int) { zeta(x: $b) { b a } alpha(y: $a) { d c } ... on Mutation { k j } }",
    "query Aliases { b: field(x: 1) a: field(x: 2) field }",
    "query { anonymous } query Named { n }",
    "subscription S { event { b a } }",
]


def node_tool(name: str, dependencies: dict[str, str],
              purpose: str = "to compare with graphql-js and graphql-codegen") -> Path:
    """A directory with `dependencies` installed from npm, kept between runs."""
    root = Path(os.environ.get("CLIENT_TOOLS_DIR", Path.home() / ".cache" / "account-gateway-client-tools"))
    package = json.dumps({"name": f"account-gateway-{name}", "private": True, "type": "module",
                          "dependencies": dependencies}, indent=2)
    return node_tools.installed(root / name, package, purpose)


def corpus() -> list[str]:
    return [file.read_text() for file in sorted(OPERATIONS.glob("*.graphql"))] + AWKWARD


@pytest.mark.parametrize("major", sorted(GRAPHQL_JS))
def test_print_and_stable_print_match_graphql_js_byte_for_byte(major):
    printer, version = GRAPHQL_JS[major]
    workdir = node_tool(f"graphql{major}", {"graphql": version, "@graphql-tools/documents": DOCUMENTS_VERSION})
    shutil.copy(PRINT_SCRIPT, workdir / PRINT_SCRIPT.name)  # ES modules resolve packages from their own folder
    texts = corpus()
    run = subprocess.run(["node", PRINT_SCRIPT.name], cwd=workdir, input=json.dumps(texts),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    printed = json.loads(run.stdout)
    assert len(printed) == len(texts)
    for text, js in zip(texts, printed):
        document = parse(text)
        assert printer(document) == js["print"], text
        assert stable_print(document, printer) == js["stable"], text


def test_every_hash_graphql_codegen_writes_for_operations_is_registered(tmp_path):
    workdir = node_tool("codegen", {"graphql": GRAPHQL_JS["16"][1], "@graphql-codegen/cli": "7.4.3",
                                    "@graphql-codegen/client-preset": "6.2.0"})
    config = {"schema": str(ROOT / "schema.graphql"), "documents": [str(OPERATIONS / "*.graphql")],
              "generates": {f"{tmp_path}/gql/": {"preset": "client", "presetConfig": {"persistedDocuments": True}}}}
    (tmp_path / "codegen.json").write_text(json.dumps(config))
    run = subprocess.run([str(workdir / "node_modules" / ".bin" / "graphql-codegen"), "--config",
                          str(tmp_path / "codegen.json")], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    manifest = tmp_path / "gql" / "persisted-documents.json"
    written = json.loads(manifest.read_text())
    assert len(written) == len(list(OPERATIONS.glob("*.graphql")))
    registry = OperationRegistry.from_directory(OPERATIONS)
    for key, document in written.items():
        assert key.startswith("sha256:")
        assert registry.get(key) == document, f"{key} ({document[:60]}…) is not registered"
    # And the manifest itself is a source the gateway accepts as it is.
    assert OperationRegistry.load(tmp_path / "none", manifest).hashes() == sorted(k[7:] for k in written)
