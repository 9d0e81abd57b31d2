"""Service tokens: made by the CLI, shown once and stored hashed, acting as the service (never a
customer), never beyond their scopes, and dead from the request after their revocation."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path

import pytest
from strawberry import relay

from auth import principals
from datasources.postgres import service_tokens
from gateway.demo import demo_id
from tests.conftest import production_executor_only

NORTHWIND = demo_id("organization", "northwind")
CLI = str(Path(sys.executable).with_name("account-gateway"))

EXPIRING = "query Expiring { staff { service scopes licensesExpiring(withinDays: 30) { totalCount " \
           "edges { node { license { product { name } } organization { name } } } } } }"
GRANT = """mutation Grant($input: GrantCreditsInput!) {
  grantCredits(input: $input) { organization { name } userErrors { code } } }"""


def org_id() -> str:
    return relay.to_base64("Organization", str(NORTHWIND))


async def create_token(db, name: str, *scopes: str) -> str:
    token = principals.new_service_token()
    await service_tokens.create(db, name=name, scopes=scopes, token_hash=principals.hash_service_token(token))
    return token


def codes(body: dict) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def test_a_read_only_token_runs_the_expiring_report_but_cannot_grant_credits(gateway, db):
    token = await create_token(db, "licensing-dashboard", "accounts:read")
    body = await gateway.execute(EXPIRING, token=token)
    assert "errors" not in body, body
    report = body["data"]["staff"]
    assert report["service"] == "licensing-dashboard" and report["scopes"] == ["accounts:read"]
    assert {(e["node"]["license"]["product"]["name"], e["node"]["organization"]["name"])
            for e in report["licensesExpiring"]["edges"]} >= {("Atlas Scatter", "Northwind Studio"),
                                                              ("Atlas Scatter", "Globex Visuals")}
    body = await gateway.execute(GRANT, {"input": {"organizationId": org_id(), "amount": 10, "reason": "r"}},
                                 token=token)
    assert codes(body) == ["FORBIDDEN"]
    assert await db.fetchval("SELECT count(*) FROM credit_grants WHERE source = 'VENDOR'") == 0


async def test_a_service_token_never_acts_as_a_customer(gateway, db):
    token = await create_token(db, "billing-dashboard", "billing:read")
    assert codes(await gateway.execute("query Me { viewer { email } }", token=token)) == ["UNAUTHENTICATED"]
    invite = """mutation I { inviteMembers(input: {invitations: [{email: "x@example.com"}]}) {
                 userErrors { code } } }"""
    # Authenticated, but no one's account: the customers' mutations refuse it (the access table).
    assert codes(await gateway.execute(invite, token=token)) == ["FORBIDDEN"]
    assert codes(await gateway.execute("mutation L { logout(input: {}) { revoked } }", token=token)) == ["FORBIDDEN"]


async def test_a_write_scope_acts_and_the_organization_sees_the_service_the_scope_and_the_reason(gateway, db):
    token = await create_token(db, "credits-tool", "credits:write")
    body = await gateway.execute(GRANT, {"input": {"organizationId": org_id(), "amount": 250,
                                                   "reason": "outage compensation"}}, token=token)
    assert body["data"]["grantCredits"] == {"organization": {"name": "Northwind Studio"}, "userErrors": []}
    # Without a read scope the service does not reach `staff`.
    assert codes(await gateway.execute(EXPIRING, token=token)) == ["FORBIDDEN"]
    admin = await gateway.login("admin@northwind.example")
    log = await gateway.execute('query A { viewer { organization { auditLog(first: 1, action: "credits.grant") {'
                                ' nodes { actor { email } actorService scope reason } } } } }', token=admin)
    assert log["data"]["viewer"]["organization"]["auditLog"]["nodes"] == [
        {"actor": None, "actorService": "credits-tool", "scope": "credits:write", "reason": "outage compensation"}]


async def test_a_revoked_token_stops_working_on_the_next_request(gateway, db):
    token = await create_token(db, "admin-tool", "accounts:read")
    assert (await gateway.execute("query S { staff { service } }", token=token))["data"]["staff"] == {
        "service": "admin-tool"}
    assert (await service_tokens.revoke(db, "admin-tool")).name == "admin-tool"
    assert codes(await gateway.execute("query S { staff { service } }", token=token)) == ["FORBIDDEN"]


async def run_cli(database_url: str, data_dir: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        CLI, *args, "--data-dir", str(data_dir), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "DATABASE_URL": database_url, "GATEWAY_ENV": "development"})
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode, out.decode(), err.decode()


@production_executor_only  # its time goes into CLI subprocesses, which know no executor
async def test_the_cli_creates_lists_and_revokes_tokens_and_manages_staff(gateway, db, database_url, tmp_path):
    code, out, err = await run_cli(database_url, tmp_path, "service-token", "create", "--name", "dash",
                                   "--scopes", "accounts:read,billing:read")
    assert code == 0, err
    token = out.strip()
    assert token.startswith("agsvc_") and "not shown again" in err
    stored = await db.fetchrow("SELECT token_hash, scopes FROM service_tokens WHERE name = 'dash'")
    assert bytes(stored["token_hash"]) == hashlib.sha256(token.encode()).digest()  # only the hash is kept
    assert stored["scopes"] == ["accounts:read", "billing:read"]
    assert (await gateway.execute("query S { staff { service } }", token=token))["data"]["staff"] == {"service": "dash"}

    code, out, _ = await run_cli(database_url, tmp_path, "service-token", "list")
    assert code == 0 and "dash" in out and "live" in out and token not in out

    code, out, err = await run_cli(database_url, tmp_path, "service-token", "revoke", "dash")
    assert code == 0, err
    assert codes(await gateway.execute("query S { staff { service } }", token=token)) == ["FORBIDDEN"]

    code, _, err = await run_cli(database_url, tmp_path, "service-token", "create", "--name", "bad",
                                 "--scopes", "accounts:read,everything")
    assert code == 2 and "unknown scope(s) everything" in err
    assert await db.fetchval("SELECT count(*) FROM service_tokens WHERE name = 'bad'") == 0

    code, out, err = await run_cli(database_url, tmp_path, "staff", "grant", "admin@globex.example", "support")
    assert code == 0 and "now staff SUPPORT" in out, err
    staff_token = await gateway.login("admin@globex.example")
    assert (await gateway.execute("query S { staff { role } }", token=staff_token))["data"]["staff"] == {
        "role": "SUPPORT"}
    code, out, err = await run_cli(database_url, tmp_path, "staff", "revoke", "admin@globex.example")
    assert code == 0, err
    assert codes(await gateway.execute("query S { staff { role } }", token=staff_token)) == ["FORBIDDEN"]
    code, _, err = await run_cli(database_url, tmp_path, "staff", "revoke", "nobody@example.com")
    assert code == 2 and "no account" in err


@pytest.mark.parametrize("raw", ["", " , ", "accounts:read,root"])
def test_scopes_are_a_closed_list(raw):
    with pytest.raises(ValueError):
        principals.parse_scopes(raw)


async def test_a_billing_token_reads_balances_twenty_organizations_at_most_a_page(gateway, db):
    token = await create_token(db, "finance", "billing:read")
    query = "query B($n: Int) { staff { organizationsWithOutstandingBalance(first: $n) { totalCount " \
            "nodes { organization { name } outstandingBalance { amount currency } } } } }"
    body = await gateway.execute(query, {"n": 20}, token=token)
    assert "errors" not in body, body
    rows = body["data"]["staff"]["organizationsWithOutstandingBalance"]["nodes"]
    assert [r["organization"]["name"] for r in rows] == ["Globex Visuals", "Northwind Studio"]
    assert all(r["outstandingBalance"] for r in rows)  # the demo leaves open invoices at both
    assert codes(await gateway.execute(query, {"n": 21}, token=token)) == ["BAD_USER_INPUT"]
