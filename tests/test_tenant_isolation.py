"""Nothing of another organization is reachable, and a MEMBER sees only their own standing."""

from __future__ import annotations

import base64
import uuid

import pytest

# Nothing here changes the database but by signing in, save where a test says otherwise.
pytestmark = pytest.mark.reads_only

EVERY_ID = """
{
  viewer {
    id
    organization {
      id
      members(first: 100) { edges { cursor node { id account { id } } } }
      invitations(first: 100) { nodes { id } }
      licenses { id allocations(first: 100) { nodes { id } } subscription { id } }
      subscriptions { id }
      auditLog(first: 100) { nodes { id } }
      creditPool { grants { id } usage(first: 100) { nodes { id } } pendingRequests { id } }
      invoices(first: 100) { nodes { id } }
      paymentMethods { id }
    }
  }
}
"""

MANAGER_FIELDS = {
    "members": "members(first: 5) { totalCount }",
    "invitations": "invitations(first: 5) { totalCount }",
    "licenses": "licenses { id }",
    "subscriptions": "subscriptions { id }",
    "creditPool": "creditPool { balance }",
    "invoices": "invoices(first: 5) { totalCount }",
    "outstandingBalance": "outstandingBalance { amount }",
    "paymentMethods": "paymentMethods { id }",
    "billingInfo": "billingInfo { company }",
    "auditLog": "auditLog(first: 5) { totalCount }",
}
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"
NODE = "query($id: ID!) { node(id: $id) { __typename id } }"


def ids_in(value) -> set[str]:
    """Every `id` anywhere in a response."""
    found = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "id" and isinstance(item, str):
                found.add(item)
            else:
                found |= ids_in(item)
    elif isinstance(value, list):
        for item in value:
            found |= ids_in(item)
    return found


async def all_ids_of(gateway, email: str) -> set[str]:
    body = await gateway.execute(EVERY_ID, token=await gateway.login(email))
    assert "errors" not in body, body["errors"]
    return ids_in(body["data"])


@pytest.fixture
async def globex_ids(gateway, db) -> set[str]:
    # An audit entry, so that the audit log's IDs are tried too.
    org_id = await db.fetchval("SELECT id FROM organizations WHERE name = 'Globex Visuals'")
    await db.execute("INSERT INTO audit_log (organization_id, action, target) VALUES ($1, 'test.entry', 'x')", org_id)
    ids = await all_ids_of(gateway, "admin@globex.example")
    kinds = {base64.b64decode(i).decode().split(":")[0] for i in ids}
    assert kinds >= {"Account", "Organization", "Member", "Invitation", "License", "LicenseAllocation",
                     "Subscription", "AuditLogEntry", "CloudCredit", "CloudCreditUsage", "CloudCreditRequest", "Invoice",
                     "PaymentMethod"}, kinds
    return ids


@pytest.mark.parametrize("email", ["admin@northwind.example", "owner@northwind.example", "member1@northwind.example"])
@pytest.mark.reads_only(False)  # it writes
async def test_no_id_of_another_organization_resolves(gateway, globex_ids, email):
    token = await gateway.login(email)
    ids = sorted(globex_ids)
    for start in range(0, len(ids), 100):
        body = await gateway.execute(NODES, {"ids": ids[start:start + 100]}, token=token)
        assert "errors" not in body
        assert body["data"]["nodes"] == [None] * len(ids[start:start + 100])


@pytest.mark.reads_only(False)  # it writes
async def test_a_foreign_id_answers_exactly_like_an_unknown_one(gateway, globex_ids):
    token = await gateway.login("admin@northwind.example")
    for foreign in sorted(globex_ids):
        type_name = base64.b64decode(foreign).decode().split(":")[0]
        unknown = base64.b64encode(f"{type_name}:{uuid.uuid4()}".encode()).decode()
        answers = [await gateway.execute(NODE, {"id": i}, token=token) for i in (foreign, unknown)]
        # The development-only `extensions.io` counts differ; what a client is told does not.
        assert [(a["data"], a.get("errors")) for a in answers] == [({"node": None}, None)] * 2


@pytest.mark.reads_only(False)  # it writes
async def test_nested_fields_and_connections_stay_inside_the_organization(gateway, globex_ids):
    northwind = await all_ids_of(gateway, "admin@northwind.example")
    assert northwind.isdisjoint(globex_ids)
    # A cursor taken from Globex's member list pages Northwind's list, never Globex's.
    token = await gateway.login("admin@globex.example")
    body = await gateway.execute("{ viewer { organization { members(first: 2) { pageInfo { endCursor } } } } }",
                                 token=token)
    cursor = body["data"]["viewer"]["organization"]["members"]["pageInfo"]["endCursor"]
    token = await gateway.login("admin@northwind.example")
    body = await gateway.execute(
        "query($after: String) { viewer { organization { members(first: 100, after: $after) "
        "{ nodes { email } } } } }", {"after": cursor}, token=token)
    emails = [n["email"] for n in body["data"]["viewer"]["organization"]["members"]["nodes"]]
    assert emails and all(e.endswith("@northwind.example") for e in emails)


@pytest.mark.parametrize("field", sorted(MANAGER_FIELDS))
async def test_a_member_is_forbidden_the_organization_screens(gateway, field):
    token = await gateway.login("member1@northwind.example")
    body = await gateway.execute(f"{{ viewer {{ organization {{ name {MANAGER_FIELDS[field]} }} }} }}", token=token)
    assert body["data"]["viewer"]["organization"] == {"name": "Northwind Studio", field: None}
    [error] = body["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"] == ["viewer", "organization", field]


async def test_a_member_sees_their_own_seats_credit_access_and_downloads(gateway):
    token = await gateway.login("member1@northwind.example")
    body = await gateway.execute("""
        { viewer { organization { viewerRole }
                   licenses { product { name } allocations { totalCount nodes { account { email } } } }
                   creditAccess { mode remaining }
                   downloadableProducts { name downloads { platform } } } }""", token=token)
    assert "errors" not in body, body["errors"]
    viewer = body["data"]["viewer"]
    assert viewer["organization"]["viewerRole"] == "MEMBER"
    assert [lic["product"]["name"] for lic in viewer["licenses"]] == ["Atlas Scatter", "Lumen Render"]
    # Only their own seat of each license, though others hold seats too.
    for lic in viewer["licenses"]:
        assert lic["allocations"]["totalCount"] == 1
        assert [n["account"]["email"] for n in lic["allocations"]["nodes"]] == ["member1@northwind.example"]
    assert viewer["creditAccess"]["mode"] == "UNLIMITED"
    assert {p["name"] for p in viewer["downloadableProducts"]} == {"Atlas Scatter", "Lumen Render",
                                                                 "Lumen Render Batch"}


async def test_a_member_cannot_open_other_members_by_id(gateway):
    admin = await gateway.login("admin@northwind.example")
    body = await gateway.execute("{ viewer { organization { members(first: 100) { nodes { id account { id } } } } } }",
                                 token=admin)
    ids = ids_in(body["data"])
    member = await gateway.login("member1@northwind.example")
    me = (await gateway.execute("{ viewer { id } }", token=member))["data"]["viewer"]["id"]
    others = sorted(ids - {me})
    body = await gateway.execute(NODES, {"ids": others}, token=member)
    assert body["data"]["nodes"] == [None] * len(others)
