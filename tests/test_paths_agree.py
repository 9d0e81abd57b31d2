"""Both read paths give the same answer, byte for byte, to generated queries and to the portal's
screens, for every kind of viewer, on data that sits on the boundaries they decide by.

The two paths: the level executor (`schema.execution.LevelExecutor`, which also has PostgreSQL
build whole subtrees as JSON) and graphql-core's own execution. Each query runs once with each,
over HTTP against two apps in process on one database (`Settings.executor`: levels, and the
reference app's graphql-core), and the two bodies must be the same text: data with its key
order, and errors by message, path and `extensions.code`. Left out: the development `extensions`
(what the request cost; `executor` says who answered, counted here), and a signed link's expiry
and signature, which move with the clock.

The data: the seeded demo plus `tests.boundary_data` (expiries 1 µs either side of now and of
the EXPIRING window, microsecond timestamps, empty and full licenses, nulls wherever the schema
has them). The viewers: anonymous; the OWNER, an ADMIN and a MEMBER of each demo organization;
an account in no organization (a member who left); staff of each role; a service token per read
scope.

The queries:
- hypothesis-graphql over the served schema's Query root, one root field per query;
- hypothesis-graphql selections of Account, Organization, License, Member and the rest, set at
  the end of fixed paths that go deep (licenses -> allocations -> account -> licenses, members
  -> account -> creditAccess, `node`/`nodes` with the ids of the boundary data);
- the portal's screens (operations/*.graphql).
Arguments come from the boundary data: its ids and those next to it (`ID`), cursors read from
the app, searches and actions (`String`), page sizes at and past their limits (`Int`), the
boundary instants (`DateTime`).

Every difference fails, errors and their order included. Two tests below pin the two
disagreements the generated queries once found: when the level executor gave up (an error
anywhere), graphql-core's answer after it listed other errors under a field that an error
nulled, or the same errors in another order, than its answer alone (its resolvers finished in
another order with the attempt's reads cached; the fallback now reads PostgreSQL afresh).

`PATHS_EXAMPLES` sets the queries generated per family (default 30: 47 distinct queries; with the
10 screens, 741 comparisons over 13 viewers, about 25 s on two cores; PATHS_EXAMPLES=1000 compares
1,535 queries per viewer in about 8 minutes). Generation is derandomized: every run of this file
sends the same queries.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import graphql
import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes
from hypothesis_graphql import queries as generated_queries

from auth import access
from auth.principals import SCOPES, STAFF_ROLES
from gateway.app import create_app
from gateway.limits import LimitSettings
from gateway.settings import Settings
from tests import boundary_data
from tests.conftest import (OPERATIONS, Gateway, copy_template, drop_database, production_executor_only, screens,
                            settings_for)
from tests.test_service_tokens import create_token
from tests.test_staff import make_staff

EXAMPLES = int(os.environ.get("PATHS_EXAMPLES", "30"))


# Services that reach `staff` (the access table's read scopes), one token for each.
READ_SCOPES = tuple(scope for scope in SCOPES if access.allows({scope}, "Query.staff"))
# Every kind of viewer: its sign-in email (None: anonymous; a scope: a service token).
VIEWERS: dict[str, str | None] = {
    "anonymous": None,
    "Northwind OWNER": "owner@northwind.example",
    "Northwind ADMIN": "admin@northwind.example",
    "Northwind MEMBER": boundary_data.EDGE_MEMBER,
    "Globex OWNER": "owner@globex.example",
    "Globex ADMIN": "admin@globex.example",
    "Globex MEMBER": "member1@globex.example",
    "no organization": boundary_data.REMOVED,
    **{role: f"{role.lower()}@vendor.example" for role in STAFF_ROLES},
    **{scope: scope for scope in READ_SCOPES},
}

CURSORS = """query Cursors { viewer { organization {
  members(first: 3) { edges { cursor } } invitations(first: 3) { edges { cursor } }
  auditLog(first: 3) { edges { cursor } } licenses { allocations(first: 2) { edges { cursor } } } } } }"""
SEARCHES = ("", "edge", "Edge", "northwind", "Globex", "member", "pending", "removed", "%", "_", "C-1",
            "boundary.removed-actor", "boundary.service", "members.invite", "é")


@dataclass(frozen=True)
class World:
    gateway: Gateway  # the level executor
    reference: Gateway  # graphql-core's own execution, on the same database
    tokens: dict[str, str | None]
    boundaries: boundary_data.Boundaries
    schema: graphql.GraphQLSchema  # as the app serves it
    cursors: tuple[str, ...]


async def prepare(dsn: str) -> tuple[boundary_data.Boundaries, dict[str, str | None]]:
    """The boundary data, the staff accounts, and a token per service (the others sign in later)."""
    db = await asyncpg.connect(dsn)
    try:
        boundaries = await boundary_data.build(db)
        tokens: dict[str, str | None] = {}
        for kind, email in VIEWERS.items():
            if kind in STAFF_ROLES:
                await make_staff(db, kind, email)
            elif kind in READ_SCOPES:
                tokens[kind] = await create_token(db, "paths-" + kind.replace(":", "-"), kind)
        return boundaries, tokens
    finally:
        await db.close()


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Gateway]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as http:
            yield Gateway(http)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(services, tmp_path_factory) -> AsyncIterator[World]:
    name = await copy_template(services)
    try:
        dsn = services.dsn(name)
        boundaries, tokens = await prepare(dsn)
        # The cost budget is the limiter's business, not the paths': it must not refuse one of a pair.
        settings = settings_for(services, dsn, tmp_path_factory.mktemp("paths")).with_(
            limits=LimitSettings(cost_budget=10**12, cost_restore_rate=10**9))
        async with running(settings) as gateway, running(settings.with_(executor="graphql-core")) as reference:
            for kind, email in VIEWERS.items():
                if kind not in tokens:
                    tokens[kind] = email and await gateway.login(email)
            introspection = await gateway.execute(graphql.get_introspection_query())
            schema = graphql.build_client_schema(introspection["data"])
            cursors = re.findall(r'"cursor": "([^"]+)"', json.dumps(
                (await gateway.execute(CURSORS, token=tokens["Northwind ADMIN"]))["data"]))
            yield World(gateway, reference, tokens, boundaries, schema, tuple(dict.fromkeys(cursors)))
    finally:
        await drop_database(services, name)


# --- the comparison ---------------------------------------------------------------------------------

# A signed link carries its expiry in seconds (and a signature over it): two runs a second apart differ there.
SIGNED = re.compile(r"expires=\d+&signature=[^&\"]+")


@dataclass(frozen=True)
class Answer:
    status: int
    # The body as compared: data as it came (key order included), errors by message, path and
    # code, in a fixed order: the order they come in is compared apart (see ORDER_OF_ERRORS).
    text: str
    errors_in_order: tuple[str, ...]
    executor: str  # which executor answered (extensions.executor); "none" when nothing ran


def answer_of(response: httpx.Response) -> Answer:
    body = json.loads(response.text)  # dicts keep the order of the text
    extensions = body.pop("extensions", None) or {}
    shown: dict[str, Any] = {}
    errors: list[str] = []
    for key, value in body.items():
        if key == "errors":
            errors = [json.dumps({"message": e.get("message"), "path": e.get("path"),
                                  "code": (e.get("extensions") or {}).get("code")}, ensure_ascii=False) for e in value]
            value = [json.loads(e) for e in sorted(errors)]
        shown[key] = value
    text = SIGNED.sub("expires=…&signature=…", json.dumps(shown, ensure_ascii=False))
    return Answer(response.status_code, text, tuple(errors), extensions.get("executor", "none"))


async def both(world: World, viewer: str, query: str, variables: dict[str, Any] | None = None) -> tuple[Answer, Answer]:
    """The answer by levels, then graphql-core's, to the same request."""
    answers = [answer_of(await app.post(query, variables, token=world.tokens[viewer]))
               for app in (world.gateway, world.reference)]
    return answers[0], answers[1]


def difference(query: str, viewer: str, levels: Answer, core: Answer) -> str | None:
    if (levels.status, levels.text) == (core.status, core.text):
        return None
    return (f"as {viewer}:\n  query: {query}\n  levels ({levels.executor}, {levels.status}): {levels.text[:3000]}\n"
            f"  graphql-core ({core.status}): {core.text[:3000]}")


async def compare_all(world: World, viewer: str, queries: list[str]) -> Counter[str]:
    """Runs each query both ways and fails with every disagreement. Counts who answered."""
    found, used = [], Counter[str]()
    for query in queries:
        levels, core = await both(world, viewer, query)
        # "none": refused before execution (over the cost limit, say), the same way on both.
        assert core.executor in ("graphql-core", "none"), core
        used[levels.executor] += 1
        if "INTERNAL_SERVER_ERROR" in core.text or levels.status >= 500 or core.status >= 500:
            found.append(f"an internal error as {viewer}:\n  query: {query}\n  answer: {core.text[:2000]}")
        if (diff := difference(query, viewer, levels, core)) is not None:
            found.append(diff)
    assert not found, f"{len(found)} of {len(queries)} queries answered differently:\n" + "\n".join(found[:5])
    return used


# --- the generated queries ------------------------------------------------------------------------------


def scalars(world: World) -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
    """Argument values from the boundary data, so that queries find what was built."""
    b = world.boundaries
    instants = [t.isoformat() for t in b.timestamps] + ["2000-01-01T00:00:00Z", "2100-01-01T00:00:00.000001Z"]
    days = [(b.now + timedelta(days=n)).date().isoformat() for n in (-400, -30, 0, 30)]
    return {
        "ID": st.sampled_from(b.ids).map(nodes.String),
        "String": st.sampled_from(SEARCHES + world.cursors).map(nodes.String),
        # Page sizes mostly within the limits, and sometimes just past them.
        "Int": st.sampled_from((0, 1, 2, 3, 5, 10, 100, 101, -1, 30, 31)).map(nodes.Int),
        "DateTime": st.sampled_from(instants).map(nodes.String),
        "Date": st.sampled_from(days).map(nodes.String),
    }


# Fixed paths into the graph, each ending in a selection generated for its type: `{sel}` is
# that selection, `{id}` one id of the data, `{ids}` several, `{org}` an organization's id.
ENTRIES: tuple[tuple[str, str], ...] = (
    ("Account", "viewer {sel}"),
    ("Account", "node(id: {id}) {{ ... on Account {sel} }}"),
    ("Account", "staff {{ accounts(first: 5, search: \"edge\") {{ nodes {sel} }} }}"),
    ("Organization", "viewer {{ organization {sel} }}"),
    ("Organization", "staff {{ organization(id: {org}) {sel} }}"),
    ("License", "viewer {{ licenses {sel} }}"),
    ("License", "viewer {{ organization {{ licenses {sel} }} }}"),
    ("License", "staff {{ organization(id: {org}) {{ licenses {sel} }} }}"),
    ("License", "viewer {{ organization {{ licenses {{ allocations(first: 5) {{ nodes {{ account {{ licenses {sel}"
                " }} }} }} }} }} }}"),
    ("License", "staff {{ organization(id: {org}) {{ licenses {{ allocations(first: 3) {{ edges {{ node {{"
                " account {{ licenses {sel} }} }} }} }} }} }} }}"),
    ("CloudCreditAccess", "viewer {{ organization {{ members(first: 10) {{ nodes {{ account {{ creditAccess {sel}"
                          " }} }} }} }} }}"),
    ("CloudCreditAccess", "staff {{ organization(id: {org}) {{ members(first: 10) {{ edges {{ node {{ account {{"
                          " creditAccess {sel} }} }} }} }} }} }}"),
    ("Member", "viewer {{ organization {{ members(first: 10) {{ nodes {sel} }} }} }}"),
    ("LicenseAllocation", "viewer {{ organization {{ licenses {{ allocations(first: 4) {{ nodes {sel} }} }} }} }}"),
    ("Node", "nodes(ids: {ids}) {sel}"),
    ("Node", "node(id: {id}) {sel}"),
)


def rooted_at(schema: graphql.GraphQLSchema, type_name: str) -> graphql.GraphQLSchema:
    """The schema seen from one type: hypothesis-graphql generates selections of its query root."""
    root = schema.type_map[type_name]
    if isinstance(root, graphql.GraphQLInterfaceType):
        # An interface is no root type: a root with one field of it (printed without that field below).
        root = graphql.GraphQLObjectType("Holder", {"value": graphql.GraphQLField(root)})
    types = [t for name, t in schema.type_map.items() if not name.startswith("__")]
    return graphql.GraphQLSchema(query=root, types=types)


def selection(document: graphql.DocumentNode, interface: bool) -> str:
    selections = document.definitions[0].selection_set  # type: ignore[attr-defined]
    if interface:
        [holder] = selections.selections
        selections = holder.selection_set
    return graphql.print_ast(selections)


def spliced(world: World, custom: dict[str, st.SearchStrategy[graphql.ValueNode]],
            entries: tuple[tuple[str, str], ...] = ENTRIES) -> st.SearchStrategy[str]:
    """Queries along `entries`, each path's end generated by hypothesis-graphql."""
    by_type = {}
    for type_name in {t for t, _ in entries}:
        interface = isinstance(world.schema.type_map[type_name], graphql.GraphQLInterfaceType)
        by_type[type_name] = generated_queries(rooted_at(world.schema, type_name), custom_scalars=custom,
                                               print_ast=lambda d, i=interface: selection(d, i))
    ids = world.boundaries.ids
    literal = json.dumps
    organizations = [boundary_data.gid("Organization", o) for o in (boundary_data.NORTHWIND, boundary_data.GLOBEX)]

    @st.composite
    def one(draw: st.DrawFn) -> str:
        type_name, template = draw(st.sampled_from(entries))
        fields = template.format(sel=draw(by_type[type_name]), id=literal(draw(st.sampled_from(ids))),
                                 ids=literal(draw(st.lists(st.sampled_from(ids), min_size=1, max_size=6))),
                                 org=literal(draw(st.sampled_from(organizations))))
        return f"query Spliced {{ {fields} }}"

    return one()


def from_root(world: World, custom: dict[str, st.SearchStrategy[graphql.ValueNode]]) -> st.SearchStrategy[str]:
    """hypothesis-graphql over the Query root, one root field at a time (a query with a root field
    that refuses the viewer is graphql-core's on both paths, so mixing roots would test less)."""
    roots = sorted(world.schema.query_type.fields)  # type: ignore[union-attr]
    return st.sampled_from(roots).flatmap(
        lambda root: generated_queries(world.schema, fields=[root], custom_scalars=custom))


def drawn(strategy: st.SearchStrategy[str], count: int) -> list[str]:
    """`count` examples of `strategy`, the same ones on every run (derandomized)."""
    found: list[str] = []

    @settings(max_examples=count, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(strategy)
    def collect(query: str) -> None:
        found.append(query)

    collect()
    return list(dict.fromkeys(found))


@pytest.fixture(scope="module")
def generated(world: World) -> list[str]:
    custom = scalars(world)
    # Besides the sampled entries, one query along each: which entries a derandomized draw picks
    # shifts with every change to the schema, and the deep ones must always be there.
    queries = (drawn(from_root(world, custom), EXAMPLES) + drawn(spliced(world, custom), EXAMPLES)
               + [q for entry in ENTRIES for q in drawn(spliced(world, custom, (entry,)), 1)])
    queries = list(dict.fromkeys(queries))
    for query in queries:
        errors = graphql.validate(world.schema, graphql.parse(query))
        assert not errors, f"generated an invalid query: {query}\n{errors}"
    return queries


# --- the tests ----------------------------------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("viewer", VIEWERS)
async def test_generated_queries_answer_the_same_both_ways(world: World, generated: list[str], viewer: str):
    used = await compare_all(world, viewer, generated)
    print(f"\n{viewer}: {len(generated)} generated queries compared, {used['levels']} answered by levels,"
          f" {used['none']} refused before execution")
    # Where the level executor never answers, the comparison would prove nothing.
    assert used["levels"] > 0, used


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("viewer", VIEWERS)
async def test_the_portals_screens_answer_the_same_both_ways(world: World, viewer: str):
    operations = [(OPERATIONS / f"{name}.graphql").read_text() for name in screens()]
    used = await compare_all(world, viewer, operations)
    print(f"\n{viewer}: {len(operations)} screens compared, {used['levels']} answered by levels")


# Which side of its boundary each license is on when a query runs: every instant built around
# `now` is in the past by then, so the EXPIRING window's three are all inside it.
STATUS_WHEN_READ = {
    "expired 1 µs before now": "EXPIRED", "expires exactly now": "EXPIRED", "expires 1 µs after now": "EXPIRED",
    "expires 1 µs inside the EXPIRING window": "EXPIRING", "expires at the end of the EXPIRING window": "EXPIRING",
    "expires 1 µs past the EXPIRING window": "EXPIRING", "FLOATING, 1 µs past the EXPIRING window": "EXPIRING",
    "perpetual, full": "ACTIVE",
}
BOUNDARIES = """query Boundaries { viewer { organization {
  licenses { id seatModel quantity expiresAt status allocatedCount availableCount
    allocations(first: 5) { totalCount nodes { allocatedAt account { email country } allocatedBy { email } } } }
  members(first: 30) { nodes { email joinedAt invitedAt account { country creditAccess { mode limit used } } } } } } }"""


@pytest.mark.asyncio(loop_scope="module")
async def test_the_boundary_data_is_read_by_levels_on_the_side_of_each_boundary(world: World):
    """The comparisons above prove something only if the fast path reads this data: it must
    answer by levels, on each side of each boundary, with its microseconds and its nulls."""
    levels, core = await both(world, "Northwind ADMIN", BOUNDARIES)
    assert levels.executor == "levels", levels.text
    assert levels.text == core.text
    organization = json.loads(levels.text)["data"]["viewer"]["organization"]
    read = {lic["id"]: lic for lic in organization["licenses"]}
    built = {i: v for i, v in world.boundaries.licenses.items() if not v[0].startswith("Globex")}
    assert set(built) <= set(read)
    for license_id, (what, expires_at) in built.items():
        lic = read[license_id]
        assert (lic["status"], lic["expiresAt"]) == (
            STATUS_WHEN_READ[what], expires_at and expires_at.isoformat()), what
        if lic["seatModel"] == "FLOATING":
            assert (lic["allocatedCount"], lic["availableCount"]) == (0, lic["quantity"]), what
        else:
            assert lic["allocatedCount"] + lic["availableCount"] == lic["quantity"], what
    counts = {built[i][0]: read[i]["allocatedCount"] for i in built}
    assert counts["expires exactly now"] == 0 and counts["perpetual, full"] == 3  # empty and full
    seats = [seat for lic in read.values() for seat in lic["allocations"]["nodes"]]
    assert None in [s["allocatedBy"] for s in seats] and None in [s["account"] for s in seats]
    members = organization["members"]["nodes"]
    assert None in [m["account"] for m in members]  # pending invitations
    assert None in [m["account"]["country"] for m in members if m["account"]]
    stamps = [s["allocatedAt"] for s in seats] + [m["joinedAt"] or m["invitedAt"] for m in members]
    for fraction in (".000001+", ".120000+", ".999999+"):
        assert any(fraction in stamp for stamp in stamps), fraction
    assert any(re.fullmatch(r"[-\dT:]+\+00:00", stamp) for stamp in stamps)  # a whole second: no fraction


# graphql-core listed the same errors in another order when it answered after the level executor
# had given up than when it answered alone. Found by the generated queries.
ORDER_OF_ERRORS = """query OrderOfErrors { viewer { organization { members(first: 4) { nodes { email
  account { licenses { allocations(first: 1, last: 1) { totalCount } } } } } } } }"""


@production_executor_only  # `gateway` runs levels, `reference` graphql-core's execution
async def test_errors_come_in_the_same_order_both_ways(gateway, reference):
    admin = await gateway.login("admin@northwind.example")
    answers = [answer_of(await app.post(ORDER_OF_ERRORS, token=admin)) for app in (gateway, reference)]
    by_levels, by_core = answers
    assert (by_levels.executor, by_core.executor) == ("graphql-core", "graphql-core")
    assert by_levels.text == by_core.text  # the same data, the same set of errors...
    assert by_levels.errors_in_order == by_core.errors_in_order  # ...in the same order


OTHER_ERRORS = """query OtherErrors($id: ID!) { node(id: $id) { ... on Account { licenses {
  allocations(first: 1, last: 1) { totalCount } subscription { product { canDownload } } } } } }"""


@production_executor_only  # `gateway` runs levels, `reference` graphql-core's execution
async def test_the_same_errors_are_reported_under_a_nulled_field_both_ways(gateway, reference, db):
    token = await create_token(db, "paths-other-errors", "accounts:read")  # no account: canDownload refuses it
    owner = boundary_data.gid("Account", boundary_data.demo_account("owner@northwind.example"))
    answers = [answer_of(await app.post(OTHER_ERRORS, {"id": owner}, token=token)) for app in (gateway, reference)]
    by_levels, by_core = answers
    assert (by_levels.executor, by_core.executor) == ("graphql-core", "graphql-core")
    assert json.loads(by_core.text)["data"] == {"node": None}
    assert by_levels.text == by_core.text


def field_paths(document: graphql.DocumentNode) -> list[tuple[str, ...]]:
    """Every path of field names from the root to a leaf, through fragments, without the
    connections' plumbing (edges, node, nodes)."""
    paths: list[tuple[str, ...]] = []

    def walk(selection_set: graphql.SelectionSetNode | None, path: tuple[str, ...]) -> None:
        if selection_set is None:
            paths.append(path)
            return
        for node in selection_set.selections:
            if isinstance(node, graphql.FieldNode):
                name = node.name.value
                walk(node.selection_set, path if name in ("edges", "node", "nodes") and path else (*path, name))
            elif isinstance(node, graphql.InlineFragmentNode):
                walk(node.selection_set, path)

    walk(document.definitions[0].selection_set, ())  # type: ignore[attr-defined]
    return paths


DEEP = {
    "licenses -> allocations -> account -> licenses": ("licenses", "allocations", "account", "licenses"),
    "members -> account -> creditAccess": ("members", "account", "creditAccess"),
}


def reaches(paths: list[tuple[str, ...]], chain: tuple[str, ...]) -> bool:
    return any(path[i:i + len(chain)] == chain for path in paths for i in range(len(path)))


def test_the_generated_queries_reach_deep_and_name_the_boundary_data(world: World, generated: list[str]):
    documents = [graphql.parse(query) for query in generated]
    reached = {name: sum(reaches(field_paths(d), chain) for d in documents) for name, chain in DEEP.items()}
    built = world.boundaries.built
    by_ids = sum(bool(re.search(r"\bnodes\(ids:", q)) and any(i in q for i in built) for q in generated)
    depth = max(len(p) for d in documents for p in field_paths(d))
    print(f"\n{len(generated)} generated queries: {reached}, nodes(ids:) with built ids: {by_ids}, deepest path: "
          f"{depth} fields (connections' edges/node/nodes not counted)")
    assert all(reached.values()) and by_ids, (reached, by_ids)
