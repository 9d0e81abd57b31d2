"""The dashboard costs the same I/O for an organization of 10 members as for one of 200."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from graphql import parse, validate

from schema import build_schema

OPERATIONS = Path(__file__).resolve().parents[1] / "operations"
DASHBOARD = (OPERATIONS / "dashboard.graphql").read_text()
NORTHWIND = "Northwind Studio"


def test_every_named_operation_validates_against_the_schema():
    schema = build_schema()._schema
    for path in OPERATIONS.glob("*.graphql"):
        assert validate(schema, parse(path.read_text())) == [], path.name


@pytest.mark.parametrize("operation", sorted(p.stem for p in OPERATIONS.glob("*.graphql")))
async def test_every_named_operation_answers_an_admin_without_errors(gateway, operation):
    token = await gateway.login("admin@northwind.example")
    body = await gateway.execute((OPERATIONS / f"{operation}.graphql").read_text(), token=token)
    assert "errors" not in body, body["errors"]
    assert body["data"]["viewer"] is not None


async def grow_to(db, members: int) -> None:
    """Adds members to Northwind until it has `members`, each with a seat, usage and a quota."""
    org_id = await db.fetchval("SELECT id FROM organizations WHERE name = $1", NORTHWIND)
    have = await db.fetchval("SELECT count(*) FROM memberships WHERE organization_id = $1", org_id)
    license_id = await db.fetchval(
        "SELECT l.id FROM licenses l JOIN products p ON p.id = l.product_id "
        "WHERE l.organization_id = $1 AND p.sku = 'LUMEN-RENDER'", org_id)
    await db.execute("UPDATE licenses SET quantity = 1000 WHERE id = $1", license_id)
    for n in range(have, members):
        account_id = uuid.uuid4()
        await db.execute("INSERT INTO accounts (id, email, name) VALUES ($1, $2, $3)",
                         account_id, f"extra{n}@northwind.example", f"Extra Member {n}")
        await db.execute("INSERT INTO memberships (account_id, organization_id, role) VALUES ($1, $2, 'MEMBER')",
                         account_id, org_id)
        await db.execute("INSERT INTO allocations (license_id, account_id) VALUES ($1, $2)", license_id, account_id)
        await db.execute("INSERT INTO credit_usage (id, organization_id, account_id, amount, description)"
                         " VALUES ($1, $2, $3, 5, 'job')", uuid.uuid4(), org_id, account_id)
        await db.execute("INSERT INTO credit_access (account_id, organization_id, mode, quota)"
                         " VALUES ($1, $2, 'QUOTA', 100)", account_id, org_id)


async def dashboard_io(gateway, token: str) -> tuple[dict, dict]:
    response = await gateway.post(DASHBOARD, token=token)
    body = response.json()
    assert "errors" not in body, body.get("errors")
    return body["data"], body["extensions"]["io"]


async def test_dashboard_io_does_not_grow_with_the_organization(gateway, db):
    token = await gateway.login("admin@northwind.example")
    await dashboard_io(gateway, token)  # warm up: new pool connections introspect types once
    await grow_to(db, 10)
    small, small_io = await dashboard_io(gateway, token)
    await grow_to(db, 200)
    large, large_io = await dashboard_io(gateway, token)

    assert small["viewer"]["organization"]["members"]["totalCount"] == 10 + 1  # and the pending invitee
    assert large["viewer"]["organization"]["members"]["totalCount"] == 200 + 1
    assert len(large["viewer"]["organization"]["members"]["edges"]) == 100
    assert len(large["viewer"]["organization"]["creditPool"]["members"]) == 200
    assert large_io == small_io
    # One statement per relation and depth at which the query reaches it, whatever the number
    # of parents. Some relations are reached twice: for the viewer near the top, and for the
    # members and seat holders further down (the viewer's own rows are cached, the others not).
    relations = [
        "session", "viewer account", "viewer membership", "viewer credit access", "viewer usage total",
        "organization", "licenses", "subscriptions", "member page", "credit grants", "organization usage",
        "organization members (credits)", "pending credit requests", "products", "allocation counts",
        "allocation pages", "members' memberships", "members' accounts", "viewer's seats (cached account)",
        "members' seats", "members' credit access", "members' usage totals",
    ]
    assert small_io["sqlStatements"] <= len(relations), small_io
    # Those statements go out in rounds, each round's at once on the pool's connections:
    # one round per level of the query at most (viewer, organization, its lists, their
    # items, the accounts, their seats, products: 8 levels).
    assert small_io["loaderRounds"] <= 8, small_io
    # The provider: the invoice list once (the connection and the balance share it), and the
    # payment methods, which need the customer to know the default: 3 calls.
    assert small_io["providerCalls"] <= 3, small_io
