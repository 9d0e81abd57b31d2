"""Subtrees built by PostgreSQL (`planning.compile`, from the fields' declarations) answer exactly what the
resolvers answer, for every kind of viewer, in fewer statements.

Each request runs with the level executor, which hands licenses and accounts to SQL, and
with graphql-core's own execution, which never does; the bodies must be equal.
"""

from __future__ import annotations

import pytest

from tests.conftest import production_executor_only
from tests.test_level_executor import both

# About the SQL subtrees of the level executor: `gateway` runs it, `reference` graphql-core's execution.
pytestmark = [production_executor_only, pytest.mark.reads_only]
from tests.test_staff import CHANGE_EMAIL, MEMBER1, gid, make_staff

LICENSE_TREE = """
  __typename id kind seatModel quantity expiresAt status allocatedCount availableCount
  product { __typename id sku name family description }
  seats: allocations(first: $first) {
    __typename totalCount
    pageInfo { hasNextPage hasPreviousPage __typename }
    nodes { __typename id allocatedAt holder: account { id email name customerNumber country }
            allocatedBy { ...Who } }
  }
"""
WHO = "fragment Who on Account { id email __typename }"

ORGANIZATION = f"""
query Org($first: Int) {{ viewer {{ organization {{ licenses {{ {LICENSE_TREE} }}
  members(first: 50) {{ edges {{ node {{ email account {{ id name licenses {{ id status product {{ name }} }}
    creditAccess {{ mode limit used }} }} }} }} }}
}} }} }}
{WHO}
"""
OWN = f"query Own($first: Int) {{ viewer {{ email licenses {{ {LICENSE_TREE} }} }} }} {WHO}"


async def statements(gateway, query: str, variables: dict, token: str) -> int:
    body = await gateway.execute(query, variables, token=token)
    assert "errors" not in body, body["errors"]
    return body["extensions"]["io"]["sqlStatements"]


@pytest.mark.parametrize("first", [0, 2, 100, None])
async def test_an_admin_sees_every_seat_of_every_license_the_same_both_ways(gateway, reference, first):
    admin = await gateway.login("admin@northwind.example")
    levels, core, used = await both(gateway, reference, ORGANIZATION, {"first": first}, admin)
    assert "errors" not in core, core["errors"]
    assert used == "levels"
    assert levels == core
    licenses = levels["data"]["viewer"]["organization"]["licenses"]
    seats = [s for lic in licenses for s in lic["seats"]["nodes"]]
    assert len(seats) == sum(min(lic["seats"]["totalCount"], 50 if first is None else first) for lic in licenses)
    if first == 2:
        assert any(lic["seats"]["pageInfo"]["hasNextPage"] for lic in licenses)
    modes = {n["node"]["account"]["creditAccess"]["mode"] for n in levels["data"]["viewer"]["organization"]["members"]["edges"]
             if n["node"]["account"]}
    assert len(modes) > 1  # the demo data sets quotas and disables some members
    if first not in (0, None):
        assert {s["holder"]["email"] for s in seats} > {"admin@northwind.example"}  # other members' seats


async def test_a_member_sees_only_their_own_seat_the_same_both_ways(gateway, reference):
    member = await gateway.login("member1@northwind.example")
    levels, core, used = await both(gateway, reference, OWN, {"first": 10}, member)
    assert "errors" not in core, core["errors"]
    assert used == "levels"
    assert levels == core
    licenses = levels["data"]["viewer"]["licenses"]
    assert licenses
    for lic in licenses:
        if lic["seatModel"] == "NAMED":
            assert lic["seats"]["totalCount"] == 1
            assert [s["holder"]["email"] for s in lic["seats"]["nodes"]] == ["member1@northwind.example"]


@pytest.mark.reads_only(False)  # it writes
async def test_staff_read_an_organization_the_same_both_ways(gateway, reference, db):
    await make_staff(db, "SUPPORT")
    support = await gateway.login("agent@vendor.example")
    admin = await gateway.login("admin@northwind.example")
    org = (await gateway.execute("{ viewer { organization { id } } }", token=admin))["data"]["viewer"]["organization"]
    query = f"""query Staff($id: ID!, $first: Int) {{ staff {{ organization(id: $id) {{ name
      licenses {{ {LICENSE_TREE} }} }} }} }} {WHO}"""
    levels, core, used = await both(gateway, reference, query, {"id": org["id"], "first": 5}, support)
    assert "errors" not in core, core["errors"]
    assert used == "levels"
    assert levels == core
    assert levels["data"]["staff"]["organization"]["licenses"]


# Seconds only, trailing zeros in the microseconds, one microsecond before the epoch.
MOMENTS = {"2026-01-02 03:04:05+00": "2026-01-02T03:04:05+00:00",
           "2026-01-02 03:04:05.5+00": "2026-01-02T03:04:05.500000+00:00",
           "1969-12-31 23:59:59.999999+00": "1969-12-31T23:59:59.999999+00:00"}


@pytest.mark.reads_only(False)  # it writes
@pytest.mark.parametrize("moment", MOMENTS)
async def test_timestamps_are_written_the_same_both_ways(gateway, reference, db, moment):
    """PostgreSQL writes a DateTime as Python's isoformat() does: microseconds only when there are any."""
    await db.execute(f"UPDATE allocations SET allocated_at = '{moment}'")
    admin = await gateway.login("admin@northwind.example")
    levels, core, used = await both(gateway, reference, ORGANIZATION, {"first": 100}, admin)
    assert used == "levels" and levels == core
    shown = {s["allocatedAt"] for lic in levels["data"]["viewer"]["organization"]["licenses"]
             for s in lic["seats"]["nodes"]}
    assert shown == {MOMENTS[moment]}


async def test_a_subtree_with_a_field_sql_does_not_build_still_answers_the_same(gateway, reference):
    """`subscription` and cursors are left to the resolvers, and the answer is unchanged."""
    admin = await gateway.login("admin@northwind.example")
    query = """{ viewer { organization { licenses { id subscription { id status }
      allocations(first: 3) { edges { cursor node { id } } } } } } }"""
    levels, core, used = await both(gateway, reference, query, {}, admin)
    assert "errors" not in core, core["errors"]
    assert used == "levels"
    assert levels == core


async def test_sql_builds_the_licenses_in_fewer_statements_than_the_resolvers(gateway, reference):
    admin = await gateway.login("admin@northwind.example")
    counts = {}
    for name, app in (("levels", gateway), ("graphql-core", reference)):
        # The second run: a new statement's first run also counts the description of its columns.
        await statements(app, ORGANIZATION, {"first": 100}, admin)
        counts[name] = await statements(app, ORGANIZATION, {"first": 100}, admin)
    assert counts["levels"] < counts["graphql-core"]


MEMBERS = """query Page($first: Int, $after: String) { viewer { organization { members(first: $first, after: $after) {
  totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor __typename }
  edges { __typename cursor at: cursor node { id email role status joinedAt invitedAt account { id email } } } } } } }"""


@pytest.mark.parametrize("first", [0, 3, None])
async def test_a_first_page_of_members_is_the_same_both_ways_cursors_included(gateway, reference, first):
    admin = await gateway.login("admin@northwind.example")
    levels, core, used = await both(gateway, reference, MEMBERS, {"first": first}, admin)
    assert "errors" not in core, core["errors"]
    assert used == "levels"
    assert levels == core
    page = levels["data"]["viewer"]["organization"]["members"]
    assert page["totalCount"] > 3
    assert {e["node"]["status"] for e in page["edges"]} <= {"ACTIVE", "INVITED"}


async def test_the_cursors_of_a_projected_page_lead_through_the_whole_list(gateway):
    """The first page comes from SQL, the next ones (with `after`) from the resolvers."""
    admin = await gateway.login("admin@northwind.example")
    seen, after = [], None
    while True:
        body = await gateway.execute(MEMBERS, {"first": 3, "after": after}, token=admin)
        page = body["data"]["viewer"]["organization"]["members"]
        seen += [e["node"]["email"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]
    everyone = await gateway.execute(MEMBERS, {"first": 100}, token=admin)
    assert seen == [e["node"]["email"] for e in everyone["data"]["viewer"]["organization"]["members"]["edges"]]
    assert len(seen) == everyone["data"]["viewer"]["organization"]["members"]["totalCount"]


@pytest.mark.reads_only(False)  # it writes
async def test_the_member_list_follows_an_account_email_change(gateway, reference, db):
    """Memberships keep a copy of the account's email for the list's order (migration 0008)."""
    await make_staff(db, "SUPPORT")
    support = await gateway.login("agent@vendor.example")
    body = await gateway.execute(CHANGE_EMAIL, {"input": {
        "accountId": gid("Account", MEMBER1), "email": "aaa.first@example.com", "reason": "Ticket 1: renamed"}},
        token=support)
    assert "errors" not in body, body
    admin = await gateway.login("admin@northwind.example")
    levels, core, used = await both(gateway, reference, MEMBERS, {"first": 2}, admin)
    assert used == "levels"
    assert levels == core
    [first, _] = levels["data"]["viewer"]["organization"]["members"]["edges"]
    assert first["node"]["email"] == "aaa.first@example.com"
    assert await db.fetchval("SELECT email FROM memberships WHERE account_id = $1", MEMBER1) == "aaa.first@example.com"


PLANNED_ONCE = """
query Planned($first: Int, $seats: Boolean!, $cursors: Boolean!) { viewer { organization {
  members(first: $first) { totalCount pageInfo { hasNextPage endCursor startCursor @include(if: $cursors) }
    edges { cursor @include(if: $cursors) again: cursor @include(if: $cursors) node { email } } }
  licenses { id seats: allocations(first: $first) @include(if: $seats) { totalCount nodes { id } } }
} } }
"""


async def test_one_document_with_other_variables_is_planned_for_them(gateway, reference):
    """A projection's plan is kept per document and variables (`planning.plan`): the same text
    with another page size or another @include answers for those, with cursors in their slots."""
    admin = await gateway.login("admin@northwind.example")
    for first, seats, cursors in [(2, True, True), (3, False, True), (2, True, False), (0, True, True), (2, True, True)]:
        variables = {"first": first, "seats": seats, "cursors": cursors}
        levels, core, used = await both(gateway, reference, PLANNED_ONCE, variables, admin)
        assert used == "levels" and levels == core, variables
        members = levels["data"]["viewer"]["organization"]["members"]
        assert len(members["edges"]) == min(first, members["totalCount"])
        assert all(("cursor" in e) == cursors and e.get("again") == e.get("cursor") for e in members["edges"])
        if cursors and first:
            assert members["pageInfo"]["startCursor"] == members["edges"][0]["cursor"]
            assert members["pageInfo"]["endCursor"] == members["edges"][-1]["cursor"]
        if first == 0:
            assert members["pageInfo"]["endCursor"] is None
        assert all(("seats" in lic) == seats for lic in levels["data"]["viewer"]["organization"]["licenses"])


# Names that look like what `planning.fragments` looks for in PostgreSQL's JSON: a cursor slot,
# the page's keyset values, the start of an object.
SLOT_LIKE_NAMES = ['"$c0" : null', '"$c0" : null}, "cursor keys" : [["x"]]}', '{"a" : {"b" : 1}}', '\\"$c1\\" : null',
                   '", "cursor keys" : ', 'x\\']


@pytest.mark.reads_only(False)
@pytest.mark.parametrize("name", SLOT_LIKE_NAMES)
async def test_names_that_look_like_slots_are_answered_as_names(gateway, reference, name):
    """Cursors are spliced into PostgreSQL's JSON, not parsed out of it: a member whose name
    looks like a slot keeps it, the cursors stay where they belong, and the actual cost counts
    objects, not braces in names."""
    member = await gateway.login("member1@northwind.example")
    changed = await gateway.execute("mutation($n: String!) { updateProfile(input: {name: $n}) { userErrors { code } } }",
                                    {"n": name}, token=member)
    assert changed["data"]["updateProfile"]["userErrors"] == []
    admin = await gateway.login("admin@northwind.example")
    query = """query($first: Int) { viewer { organization { members(first: $first) {
      pageInfo { startCursor endCursor } edges { cursor node { email account { name } } } } } } }"""
    levels, core, used = await both(gateway, reference, query, {"first": 50}, admin)
    assert used == "levels" and levels == core
    edges = levels["data"]["viewer"]["organization"]["members"]["edges"]
    assert name.strip() in [e["node"]["account"]["name"] for e in edges if e["node"]["account"]]
    assert len({e["cursor"] for e in edges}) == len(edges)
    body = (await gateway.post(query, {"first": 50}, token=admin)).json()
    objects = 2 + 1 + 1 + 2 * len(edges) + sum(1 for e in edges if e["node"]["account"])  # viewer, org, page, info
    assert body["extensions"]["cost"]["actual"] == objects


@pytest.mark.reads_only(False)  # it writes
async def test_licenses_shared_by_a_pages_members_are_listed_the_same_both_ways(gateway, reference, db):
    """Members holding several licenses of one product, and licenses held by many members: each
    account lists its own by product name then id, ties and all, as the resolvers do."""
    await db.execute("""
        WITH source AS (SELECT * FROM licenses WHERE organization_id = (SELECT organization_id FROM memberships m
                        JOIN accounts a ON a.id = m.account_id WHERE a.email = 'admin@northwind.example') LIMIT 1),
             copies AS (INSERT INTO licenses (id, organization_id, product_id, kind, seat_model, quantity, expires_at)
                        SELECT gen_random_uuid(), organization_id, product_id, kind, seat_model, 500, expires_at
                        FROM source CROSS JOIN generate_series(1, 3) RETURNING id, organization_id)
        INSERT INTO allocations (license_id, account_id)
        SELECT c.id, m.account_id FROM copies c JOIN memberships m ON m.organization_id = c.organization_id""")
    admin = await gateway.login("admin@northwind.example")
    levels, core, used = await both(gateway, reference, ORGANIZATION, {"first": 100}, admin)
    assert used == "levels" and levels == core
    members = levels["data"]["viewer"]["organization"]["members"]["edges"]
    held = [m["node"]["account"]["licenses"] for m in members if m["node"]["account"]]
    assert len(held) > 1 and all(len(licenses) >= 3 for licenses in held)
    for licenses in held:
        names = [lic["product"]["name"] for lic in licenses]
        assert names == sorted(names)
