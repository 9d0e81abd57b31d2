"""node(id:) and nodes(ids:): opaque global IDs, and no data across tenants."""

from __future__ import annotations

import base64

import pytest

# Nothing here changes the database but by signing in, save where a test says otherwise.
pytestmark = pytest.mark.reads_only

IDS = "{ viewer { id organization { id } } }"
NODE = """
query Node($id: ID!) {
  node(id: $id) {
    __typename id
    ... on Account { email role }
    ... on Organization { name }
  }
}
"""
NODES = "query Nodes($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"


async def ids_of(gateway, email: str) -> tuple[str, str, str]:
    token = await gateway.login(email)
    viewer = (await gateway.execute(IDS, token=token))["data"]["viewer"]
    return token, viewer["id"], viewer["organization"]["id"]


async def test_node_fetches_the_viewer_and_their_organization(gateway):
    token, account_id, organization_id = await ids_of(gateway, "member1@northwind.example")
    account = (await gateway.execute(NODE, {"id": account_id}, token=token))["data"]["node"]
    assert account == {"__typename": "Account", "id": account_id,
                       "email": "member1@northwind.example", "role": "MEMBER"}
    organization = (await gateway.execute(NODE, {"id": organization_id}, token=token))["data"]["node"]
    assert organization == {"__typename": "Organization", "id": organization_id, "name": "Northwind Studio"}


async def test_ids_are_opaque_not_database_keys(gateway):
    _, account_id, _ = await ids_of(gateway, "member1@northwind.example")
    assert "-" not in account_id  # not a bare UUID
    assert base64.b64decode(account_id).decode().startswith("Account:")


async def test_admin_can_open_a_member_of_their_organization(gateway):
    _, member_id, _ = await ids_of(gateway, "member2@northwind.example")
    admin = await gateway.login("admin@northwind.example")
    node = (await gateway.execute(NODE, {"id": member_id}, token=admin))["data"]["node"]
    assert node["email"] == "member2@northwind.example"


async def test_member_cannot_open_another_member(gateway):
    _, other_id, _ = await ids_of(gateway, "member2@northwind.example")
    member = await gateway.login("member1@northwind.example")
    assert (await gateway.execute(NODE, {"id": other_id}, token=member))["data"]["node"] is None


async def test_no_account_or_organization_across_tenants(gateway):
    _, globex_owner_id, globex_org_id = await ids_of(gateway, "owner@globex.example")
    northwind_owner = await gateway.login("owner@northwind.example")
    body = await gateway.execute(NODES, {"ids": [globex_owner_id, globex_org_id]}, token=northwind_owner)
    assert body["data"]["nodes"] == [None, None]
    assert "errors" not in body


async def test_nodes_keeps_the_order_given_and_nulls_unknown_ids(gateway):
    token, account_id, organization_id = await ids_of(gateway, "admin@globex.example")
    unknown = base64.b64encode(b"Account:00000000-0000-0000-0000-000000000000").decode()
    garbage = ["not-base64!", base64.b64encode(b"Nope:1").decode(), base64.b64encode(b"Account:xyz").decode()]
    body = await gateway.execute(NODES, {"ids": [organization_id, unknown, account_id, *garbage]}, token=token)
    assert [n and n["__typename"] for n in body["data"]["nodes"]] == [
        "Organization", None, "Account", None, None, None]


async def test_node_needs_a_signed_in_viewer(gateway):
    token, account_id, _ = await ids_of(gateway, "member1@northwind.example")
    body = await gateway.execute(NODE, {"id": account_id})
    assert body["data"]["node"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_nodes_refuses_more_than_100_ids(gateway):
    token = await gateway.login("member1@northwind.example")
    body = await gateway.execute(NODES, {"ids": ["x"] * 101}, token=token)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
