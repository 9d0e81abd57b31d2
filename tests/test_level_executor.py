"""The level-by-level executor answers exactly what graphql-core's own execution answers.

Each request runs twice on the same data, once by an app with each executor (the reference
app runs graphql-core's own execution alone), and the two bodies must be equal;
`extensions.executor` (development only) tells which one answered.
"""

from __future__ import annotations

import gc
import json
import re
from pathlib import Path

import pytest

from tests.conftest import production_executor_only, screens

# About the level executor itself: `gateway` runs it, `reference` graphql-core's execution.
pytestmark = [production_executor_only, pytest.mark.reads_only]

OPERATIONS = Path(__file__).resolve().parents[1] / "operations"

SHAPES = {
    "fragments, aliases and __typename": ("""
        query Shapes { viewer { __typename ...Who org: organization { ... on Organization { name __typename }
          first: members(first: 2) { edges { node { ...Person } } }
          last: members(last: 2) { edges { node { ...Person account { __typename } } } } } } }
        fragment Who on Account { id name email }
        fragment Person on Member { email role status __typename }""", {}),
    "skip and include from variables": ("""
        query Skips($withLicenses: Boolean!, $noPeople: Boolean!) { viewer { organization {
          licenses @include(if: $withLicenses) { id quantity product { name } }
          members(first: 5) @skip(if: $noPeople) { totalCount } } } }""",
                                         {"withLicenses": True, "noPeople": True}),
    "interfaces through node and nodes": ("""
        query Nodes($id: ID!, $ids: [ID!]!) {
          node(id: $id) { __typename id ... on Account { email } ... on Organization { name } }
          nodes(ids: $ids) { __typename id ... on Account { email } } }""", None),
    "arguments from variables and literals": ("""
        query Args($search: String) { viewer { organization {
          hits: members(first: 3, search: $search) { totalCount edges { node { email } } }
          admins: members(first: 3, role: ADMIN) { edges { node { email role } } } } } }""", {"search": "member"}),
    "introspection": ("""query Types { __type(name: "Money") { name fields { name type { name kind } } } }""", {}),
    "the product catalog": ("""query Catalog { products { name family downloads { platform } } }""", {}),
}


# A signed link (an invoice's pdfUrl) carries its expiry in seconds: two runs a second apart differ there.
SIGNED = re.compile(r"expires=\d+&signature=[^&\"]+")


async def both(gateway, reference, query: str, variables: dict | None, token: str) -> tuple[dict, dict]:
    """The body from each executor, without the development extensions that differ between them."""
    bodies = []
    for app in (gateway, reference):
        body = await app.execute(query, variables, token=token)
        extensions = body.pop("extensions", {})
        body = json.loads(SIGNED.sub("expires=…&signature=…", json.dumps(body)))
        bodies.append((body, extensions.get("executor")))
    (levels, used), (core, core_used) = bodies
    assert core_used == "graphql-core"
    return levels, core, used


@pytest.fixture
async def admin(gateway):
    return await gateway.login("admin@northwind.example")


async def ids(gateway, token) -> dict:
    body = await gateway.execute("{ viewer { id organization { id } } }", token=token)
    viewer = body["data"]["viewer"]
    return {"id": viewer["organization"]["id"], "ids": [viewer["id"], viewer["organization"]["id"], "bm9wZQ=="]}


@pytest.mark.parametrize("name", screens())
async def test_every_portal_operation_answers_the_same_by_levels(gateway, reference, admin, name):
    query = (OPERATIONS / f"{name}.graphql").read_text()
    levels, core, used = await both(gateway, reference, query, {}, admin)
    assert "errors" not in core, core["errors"]
    assert used == "levels"
    assert levels == core
    assert levels["data"]["viewer"] or levels["data"]


@pytest.mark.parametrize("shape", sorted(SHAPES))
async def test_graphql_features_answer_the_same_by_levels(gateway, reference, admin, shape):
    query, variables = SHAPES[shape]
    if variables is None:
        variables = await ids(gateway, admin)
    levels, core, used = await both(gateway, reference, query, variables, admin)
    assert "errors" not in core, core["errors"]
    assert used == "levels"
    assert levels == core


async def test_the_dashboard_is_the_same_with_its_order_of_keys(gateway, reference, admin):
    query = (OPERATIONS / "dashboard.graphql").read_text()
    levels, core, _ = await both(gateway, reference, query, {}, admin)
    def keys(value):
        if isinstance(value, dict):
            return [(k, keys(v)) for k, v in value.items()]
        if isinstance(value, list):
            return [keys(v) for v in value]
        return None
    assert keys(levels) == keys(core)


async def test_errors_are_reported_by_graphql_core_with_their_paths(gateway, reference):
    """A MEMBER is FORBIDDEN on the manager fields: the by-level pass gives up and the answer,
    partial data and located errors, is graphql-core's."""
    member = await gateway.login("member1@northwind.example")
    query = (OPERATIONS / "dashboard.graphql").read_text()
    levels, core, used = await both(gateway, reference, query, {}, member)
    assert used == "graphql-core"
    assert levels == core
    assert {e["extensions"]["code"] for e in core["errors"]} == {"FORBIDDEN"}
    assert levels["data"]["viewer"]["organization"]["name"] == "Northwind Studio"
    assert ["viewer", "organization", "members"] in [e["path"] for e in levels["errors"]]


async def test_a_failure_is_read_once_when_graphql_core_answers_again(gateway):
    """Anonymous: `viewer` fails; the second execution reuses what the first one read."""
    body = await gateway.execute("query Anon { viewer { id } products { name } }")
    assert body["extensions"]["executor"] == "graphql-core"
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body["data"] is None
    assert body["extensions"]["io"]["sqlStatements"] == 0


SERVING_MODULES = ("graphql.", "strawberry.", "starlette.", "asyncpg.", "auth.", "datasources.", "gateway.",
                   "loaders.", "planning.", "resolvers.", "schema.")


async def test_a_request_leaves_nothing_to_the_cyclic_collector(gateway, reference, admin):
    """What a request made is freed when it ends, by reference counting, not on the cyclic
    collector's next pass: graphql-core's executor refers to itself through its resolve-info
    helpers, and that cycle held the request's whole context (loaders, rows, plans) for the
    collector, whose passes cost the members page a tenth of its CPU under load. Both
    executors: the level one, and graphql-core's own (mutations, fallbacks)."""
    members = (OPERATIONS / "members.graphql").read_text()
    for app in (gateway, reference):
        await app.execute(members, {}, token=admin)  # caches filled once: they are not garbage
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(3):
                body = await app.execute(members, {}, token=admin)
                assert "errors" not in body
            gc.collect()
            left = sorted({f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage})
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
        # The test's own HTTP client (httpx) leaves its request and response behind: not the gateway's.
        assert [name for name in left if name.startswith(SERVING_MODULES)] == []
