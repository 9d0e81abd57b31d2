"""Handing an organization over: the OWNER asks an ADMIN, the ADMIN confirms with the mailed
token; staff hand over with a reason when the OWNER has left. Never two OWNERs, never none.

The demo (gateway/demo.py): Northwind's owner, admin and member1..member6.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from strawberry.relay import to_base64

from gateway.demo import demo_id
from tests.test_credit_mutations import audit_rows
from tests.test_staff import make_staff
from tests.conftest import production_executor_only

# About what the mutations write and refuse: run by the production executor only, as the event log's
# tests are (the executors differ in reads, which test_paths_agree compares both ways).
pytestmark = production_executor_only

NORTHWIND = demo_id("organization", "northwind")
OWNER, ADMIN = "owner@northwind.example", "admin@northwind.example"
ERRORS = "userErrors { field message code }"
TRANSFER = f"""mutation T($input: TransferOwnershipInput!) {{
  transferOwnership(input: $input) {{ transfer {{ expiresAt to {{ email }} requestedBy {{ email }} }} {ERRORS} }} }}"""
ACCEPT = f"""mutation A($input: AcceptOwnershipInput!) {{
  acceptOwnership(input: $input) {{ organization {{ name viewerRole }} {ERRORS} }} }}"""
CANCEL = f"""mutation C($input: CancelOwnershipTransferInput!) {{
  cancelOwnershipTransfer(input: $input) {{ transfer {{ to {{ email }} }} {ERRORS} }} }}"""
STAFF = f"""mutation S($input: StaffTransferOwnershipInput!) {{
  staffTransferOwnership(input: $input) {{ organization {{ name }} {ERRORS} }} }}"""
PENDING = "{ viewer { organization { pendingOwnershipTransfer { to { email } requestedBy { email } } } } }"


def account(email: str) -> str:
    return to_base64("Account", str(demo_id("account", email)))


def codes(payload) -> list[str]:
    return [e["code"] for e in payload["userErrors"]]


async def roles(db) -> dict[str, str]:
    rows = await db.fetch("SELECT a.email, m.role::text AS role FROM memberships m JOIN accounts a ON a.id = m.account_id"
                          " WHERE m.organization_id = $1 AND m.role IN ('OWNER', 'ADMIN')", NORTHWIND)
    return {r["email"]: r["role"] for r in rows}


async def mailed_token(db, email: str) -> str:
    body = await db.fetchval("SELECT body FROM mail_outbox WHERE to_address = $1 ORDER BY id DESC LIMIT 1", email)
    return re.search(r"/accept-ownership\?token=([A-Za-z0-9_-]+)", body).group(1)


async def ask(gateway, token, email=ADMIN):
    return (await gateway.execute(TRANSFER, {"input": {"accountId": account(email)}}, token=token))[
        "data"]["transferOwnership"]


async def accept(gateway, token, mailed):
    return (await gateway.execute(ACCEPT, {"input": {"token": mailed}}, token=token))["data"]["acceptOwnership"]


BEFORE = {OWNER: "OWNER", ADMIN: "ADMIN"}
AFTER = {OWNER: "ADMIN", ADMIN: "OWNER"}


async def test_the_owner_asks_an_admin_who_confirms_and_the_roles_swap(gateway, db):
    owner, admin = await gateway.login(OWNER), await gateway.login(ADMIN)
    payload = await ask(gateway, owner)
    assert payload["userErrors"] == [] and payload["transfer"]["to"] == {"email": ADMIN}, payload
    assert await roles(db) == BEFORE  # nothing changes until they confirm
    pending = await gateway.execute(PENDING, token=admin)
    assert pending["data"]["viewer"]["organization"]["pendingOwnershipTransfer"] == {
        "to": {"email": ADMIN}, "requestedBy": {"email": OWNER}}
    mailed = await mailed_token(db, ADMIN)
    accepted = await accept(gateway, admin, mailed)
    assert accepted == {"organization": {"name": "Northwind Studio", "viewerRole": "OWNER"}, "userErrors": []}
    assert await roles(db) == AFTER
    events = await db.fetch("SELECT data->>'old_role' AS old, data->>'new_role' AS new FROM event_log"
                            " WHERE type = 'MEMBER_ROLE_CHANGED' ORDER BY id")
    assert [(e["old"], e["new"]) for e in events] == [("OWNER", "ADMIN"), ("ADMIN", "OWNER")]
    assert await db.fetchval("SELECT subject FROM mail_outbox WHERE to_address = $1 ORDER BY id DESC LIMIT 1",
                             OWNER) == "Your organization has a new OWNER"
    assert [r["outcome"] for r in await audit_rows(db, "organization.ownership_accept")] == ["SUCCESS"]
    # Used once: the same token again is refused, and the new OWNER's pending view is empty.
    assert codes(await accept(gateway, admin, mailed)) == ["TRANSFER_NOT_PENDING"]
    again = await gateway.execute(PENDING, token=admin)
    assert again["data"]["viewer"]["organization"]["pendingOwnershipTransfer"] is None


@pytest.mark.parametrize("who, to, code", [
    (ADMIN, OWNER, "NOT_ALLOWED"),  # only the OWNER asks
    (OWNER, OWNER, "INVALID"),  # not to themselves
    (OWNER, "member1@northwind.example", "NOT_ALLOWED"),  # to an ADMIN only
])
async def test_only_the_owner_asks_and_only_for_an_admin(gateway, db, who, to, code):
    payload = await ask(gateway, await gateway.login(who), to)
    assert codes(payload) == [code] and payload["transfer"] is None
    assert await db.fetchval("SELECT count(*) FROM ownership_transfers") == 0
    assert [r["outcome"] for r in await audit_rows(db, "organization.ownership_transfer")] == ["REFUSED"]


@pytest.mark.parametrize("who, code", [(None, "UNAUTHENTICATED"), ("member1@northwind.example", "FORBIDDEN"),
                                       ("owner@globex.example", "NOT_FOUND")])
async def test_others_cannot_ask(gateway, db, who, code):
    body = await gateway.execute(TRANSFER, {"input": {"accountId": account(ADMIN)}},
                                 token=await gateway.login(who) if who else None)
    assert [e["extensions"]["code"] for e in body["errors"]] == [code], body
    assert await db.fetchval("SELECT count(*) FROM ownership_transfers") == 0


async def test_a_token_works_only_for_the_admin_named_and_only_while_pending(gateway, db):
    owner, admin = await gateway.login(OWNER), await gateway.login(ADMIN)
    await db.execute("UPDATE memberships SET role = 'ADMIN' WHERE account_id = $1",
                     demo_id("account", "member2@northwind.example"))
    other_admin = await gateway.login("member2@northwind.example")
    await ask(gateway, owner)
    first = await mailed_token(db, ADMIN)
    assert codes(await accept(gateway, other_admin, first)) == ["TRANSFER_NOT_PENDING"]
    assert codes(await accept(gateway, admin, first + "x")) == ["TRANSFER_NOT_PENDING"]
    assert codes(await accept(gateway, admin, "   ")) == ["REQUIRED"]
    # A new request replaces the first; the first token is dead.
    await ask(gateway, owner, "member2@northwind.example")
    assert codes(await accept(gateway, admin, first)) == ["TRANSFER_NOT_PENDING"]
    # Cancelled: the second is dead too.
    second = await mailed_token(db, "member2@northwind.example")
    canceled = (await gateway.execute(CANCEL, {"input": {}}, token=owner))["data"]["cancelOwnershipTransfer"]
    assert canceled == {"transfer": {"to": {"email": "member2@northwind.example"}}, "userErrors": []}
    assert codes(await accept(gateway, other_admin, second)) == ["TRANSFER_NOT_PENDING"]
    # Expired.
    await ask(gateway, owner)
    await db.execute("UPDATE ownership_transfers SET expires_at = now() WHERE accepted_at IS NULL"
                     " AND canceled_at IS NULL")
    assert codes(await accept(gateway, admin, await mailed_token(db, ADMIN))) == ["TRANSFER_NOT_PENDING"]
    assert (await roles(db))[OWNER] == "OWNER"


async def test_an_admin_cannot_cancel_and_a_member_cannot_accept(gateway, db):
    owner, admin = await gateway.login(OWNER), await gateway.login(ADMIN)
    await ask(gateway, owner)
    refused = (await gateway.execute(CANCEL, {"input": {}}, token=admin))["data"]["cancelOwnershipTransfer"]
    assert codes(refused) == ["NOT_ALLOWED"]
    body = await gateway.execute(ACCEPT, {"input": {"token": await mailed_token(db, ADMIN)}},
                                 token=await gateway.login("member1@northwind.example"))
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    assert await roles(db) == BEFORE


async def test_a_transfer_is_void_once_the_roles_it_was_asked_under_changed(gateway, db):
    owner, admin = await gateway.login(OWNER), await gateway.login(ADMIN)
    await ask(gateway, owner)
    mailed = await mailed_token(db, ADMIN)
    # Support makes member2 the OWNER meanwhile: the owner who asked no longer owns anything.
    await make_staff(db, "SUPPORT", "agent@vendor.example")
    staff = await gateway.login("agent@vendor.example")
    done = (await gateway.execute(STAFF, {"input": {"organizationId": to_base64("Organization", str(NORTHWIND)),
                                                    "accountId": account("member2@northwind.example"),
                                                    "reason": "Ticket 4711: the owner left the company"}},
                                  token=staff))["data"]["staffTransferOwnership"]
    assert done["userErrors"] == []
    assert codes(await accept(gateway, admin, mailed)) == ["TRANSFER_NOT_PENDING"]  # replaced by the staff change
    assert await roles(db) == {OWNER: "ADMIN", ADMIN: "ADMIN", "member2@northwind.example": "OWNER"}


async def test_concurrent_confirmations_make_one_owner(gateway, db):
    owner, admin = await gateway.login(OWNER), await gateway.login(ADMIN)
    await ask(gateway, owner)
    mailed = await mailed_token(db, ADMIN)
    results = await asyncio.gather(*(accept(gateway, admin, mailed) for _ in range(6)))
    assert sorted(tuple(codes(r)) for r in results) == [()] + [("TRANSFER_NOT_PENDING",)] * 5
    assert await roles(db) == AFTER
    assert await db.fetchval("SELECT count(*) FROM event_log WHERE type = 'MEMBER_ROLE_CHANGED'") == 2


async def test_an_owner_handing_over_while_staff_hand_over_leaves_one_owner(gateway, db):
    owner, admin = await gateway.login(OWNER), await gateway.login(ADMIN)
    await make_staff(db, "SUPPORT", "agent@vendor.example")
    staff = await gateway.login("agent@vendor.example")
    await ask(gateway, owner)
    mailed = await mailed_token(db, ADMIN)
    staff_input = {"input": {"organizationId": to_base64("Organization", str(NORTHWIND)),
                             "accountId": account("member3@northwind.example"), "reason": "Ticket 4712"}}
    await asyncio.gather(accept(gateway, admin, mailed), gateway.execute(STAFF, staff_input, token=staff))
    owners = [e for e, r in (await roles(db)).items() if r == "OWNER"]
    assert len(owners) == 1


async def test_staff_hand_overs_to_different_members_at_once_leave_one_owner(gateway, db):
    """Found by the outside attack: each waited on the old OWNER's row and then saw no OWNER at
    all, so the second made a second OWNER (a unique violation, answered as an internal error)."""
    await make_staff(db, "SUPPORT", "agent@vendor.example")
    staff = await gateway.login("agent@vendor.example")
    organization = to_base64("Organization", str(NORTHWIND))
    bodies = await asyncio.gather(*(gateway.execute(STAFF, {"input": {
        "organizationId": organization, "accountId": account(f"member{n}@northwind.example"),
        "reason": f"Ticket {n}"}}, token=staff) for n in range(1, 7) for _ in range(2)))
    assert all("errors" not in b and b["data"]["staffTransferOwnership"]["userErrors"] == [] for b in bodies), bodies
    owners = [e for e, r in (await roles(db)).items() if r == "OWNER"]
    assert len(owners) == 1


async def test_staff_hand_over_with_a_reason_to_a_member_when_the_owner_is_gone(gateway, db):
    await make_staff(db, "SUPPORT", "agent@vendor.example")
    staff = await gateway.login("agent@vendor.example")
    await db.execute("DELETE FROM accounts WHERE email = $1", OWNER)  # the owner's account is gone
    variables = {"input": {"organizationId": to_base64("Organization", str(NORTHWIND)),
                           "accountId": account("member1@northwind.example"), "reason": "  "}}
    refused = (await gateway.execute(STAFF, variables, token=staff))["data"]["staffTransferOwnership"]
    assert codes(refused) == ["REQUIRED"]
    variables["input"]["reason"] = "Ticket 4713: owner deleted"
    variables["input"]["accountId"] = account("member1@globex.example")
    assert codes((await gateway.execute(STAFF, variables, token=staff))["data"]["staffTransferOwnership"]) == [
        "NOT_IN_ORGANIZATION"]
    variables["input"]["accountId"] = account("member1@northwind.example")
    done = (await gateway.execute(STAFF, variables, token=staff))["data"]["staffTransferOwnership"]
    assert done == {"organization": {"name": "Northwind Studio"}, "userErrors": []}
    assert (await roles(db))["member1@northwind.example"] == "OWNER"
    [entry] = [r for r in await audit_rows(db, "organization.ownership_staff_transfer") if r["outcome"] == "SUCCESS"]
    assert entry["details"]["fromRole"] == "MEMBER"
    assert await db.fetchval("SELECT count(*) FROM event_log WHERE type = 'STAFF_ACTION_TAKEN'") == 1
    # Again: already theirs, nothing more happens.
    assert (await gateway.execute(STAFF, variables, token=staff))["data"]["staffTransferOwnership"]["userErrors"] == []
    assert await db.fetchval("SELECT count(*) FROM event_log WHERE type = 'MEMBER_ROLE_CHANGED'") == 1


@pytest.mark.parametrize("who", [OWNER, ADMIN, "member1@northwind.example"])
async def test_customers_cannot_use_the_staff_hand_over(gateway, db, who):
    body = await gateway.execute(STAFF, {"input": {"organizationId": to_base64("Organization", str(NORTHWIND)),
                                                   "accountId": account(ADMIN), "reason": "mine now"}},
                                 token=await gateway.login(who))
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    assert await roles(db) == BEFORE
