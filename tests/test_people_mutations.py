"""Managing an organization's people over HTTP: inviting, resending, revoking and accepting
invitations, removing members and changing their roles, who may do each, and what each writes.

The demo (gateway/demo.py): Northwind's owner, admin and member1..member6; seats of Lumen Render
held by owner, admin, member1, member2; of Atlas Scatter by owner, admin, member1; of Vapor FX and
of the Scene Cloud Viewer TRIAL by the owner. member3 has a credit QUOTA. One pending invitation
to invitee@northwind.example, whose raw token is never handed out: tests invite people themselves
and read the token from the mail in the outbox.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest

from gateway.demo import demo_id

NORTHWIND = demo_id("organization", "northwind")
GLOBEX = demo_id("organization", "globex")
DEMO_INVITATION = demo_id("invitation", "northwind")
NEW_PASSWORD = "correct horse battery"

USER_ERRORS = "userErrors { field message code }"
INVITATION_FIELDS = "id email role status expiresAt invitedBy { email }"

INVITE = f"""
mutation Invite($input: InviteMembersInput!) {{
  inviteMembers(input: $input) {{
    results {{ email invitation {{ {INVITATION_FIELDS} }} {USER_ERRORS} }}
    {USER_ERRORS}
  }}
}}
"""
RESEND = f"""
mutation Resend($input: ResendInvitationInput!) {{
  resendInvitation(input: $input) {{ invitation {{ {INVITATION_FIELDS} }} {USER_ERRORS} }}
}}
"""
REVOKE = f"""
mutation Revoke($input: RevokeInvitationInput!) {{
  revokeInvitation(input: $input) {{ invitation {{ {INVITATION_FIELDS} }} {USER_ERRORS} }}
}}
"""
ACCEPT = f"""
mutation Accept($input: AcceptInvitationInput!) {{
  acceptInvitation(input: $input) {{
    token refreshToken expiresAt refreshTokenExpiresAt account {{ id email name }} {USER_ERRORS}
  }}
}}
"""
REMOVE = f"""
mutation Remove($input: RemoveMemberInput!) {{
  removeMember(input: $input) {{
    removedMemberId removedAccountId revokedSeatCount organization {{ name }} {USER_ERRORS}
  }}
}}
"""
CHANGE_ROLE = f"""
mutation ChangeRole($input: ChangeMemberRoleInput!) {{
  changeMemberRole(input: $input) {{ member {{ id email role status }} {USER_ERRORS} }}
}}
"""
VIEWER = "query Viewer { viewer { email name role organization { name } } }"
MEMBER_EMAILS = """
query Members { viewer { organization { members(first: 100) { edges { node { email status role } } } } } }
"""


def gid(type_name: str, raw: object) -> str:
    return base64.b64encode(f"{type_name}:{raw}".encode()).decode()


def account_gid(email: str) -> str:
    return gid("Account", demo_id("account", email))


def data_of(body: dict[str, Any], field: str) -> dict[str, Any]:
    assert "errors" not in body, json.dumps(body["errors"])
    return body["data"][field]


def codes(payload: dict[str, Any]) -> list[str]:
    return [e["code"] for e in payload["userErrors"]]


def error_code(body: dict[str, Any]) -> str:
    assert body["data"] is None, body
    [error] = body["errors"]
    return error["extensions"]["code"]


def invite_input(*invitations: tuple[str, str] | str, key: str | None = None,
                 organization: UUID = NORTHWIND) -> dict[str, Any]:
    people = [{"email": i, "role": "MEMBER"} if isinstance(i, str) else {"email": i[0], "role": i[1]}
              for i in invitations]
    found: dict[str, Any] = {"organizationId": gid("Organization", organization), "invitations": people}
    if key is not None:
        found["idempotencyKey"] = key
    return {"input": found}


async def invite(gateway, token: str, *emails: str, organization: UUID = NORTHWIND) -> list[dict[str, Any]]:
    payload = data_of(await gateway.execute(INVITE, invite_input(*emails, organization=organization), token=token),
                      "inviteMembers")
    assert payload["userErrors"] == [] and all(r["userErrors"] == [] for r in payload["results"]), payload
    return [r["invitation"] for r in payload["results"]]


async def mailed_token(db, email: str) -> str:
    """The token of the latest invitation link mailed to `email`."""
    body = await db.fetchval("SELECT body FROM mail_outbox WHERE to_address = $1 ORDER BY id DESC LIMIT 1", email)
    assert body is not None, f"no mail to {email}"
    return re.search(r"/accept-invitation\?token=([A-Za-z0-9_-]+)", body).group(1)


async def accept(gateway, token: str, *, name: str | None = "New Person", password: str = NEW_PASSWORD,
                 bearer: str | None = None) -> dict[str, Any]:
    body = await gateway.execute(ACCEPT, {"input": {"token": token, "name": name, "password": password}},
                                 token=bearer)
    return data_of(body, "acceptInvitation")


async def audit_rows(db, action: str) -> list[dict[str, Any]]:
    rows = await db.fetch("SELECT organization_id, actor_account_id, target, outcome, details::text AS details"
                          " FROM audit_log WHERE action = $1 ORDER BY id", action)
    return [{**dict(r), "details": json.loads(r["details"])} for r in rows]


@pytest.fixture
async def admin(gateway) -> str:
    return await gateway.login("admin@northwind.example")


@pytest.fixture
async def owner(gateway) -> str:
    return await gateway.login("owner@northwind.example")


# --- inviteMembers ----------------------------------------------------------------------------

async def test_admin_invites_people_and_each_gets_a_mail_with_a_link_stored_only_as_a_hash(gateway, admin, db):
    payload = data_of(await gateway.execute(INVITE, invite_input("Ada@Example.com", ("bo@example.com", "ADMIN")),
                                            token=admin), "inviteMembers")
    assert payload["userErrors"] == []
    ada, bo = payload["results"]
    assert ada["email"] == "Ada@Example.com" and ada["userErrors"] == []
    assert ada["invitation"]["email"] == "ada@example.com"
    assert (ada["invitation"]["role"], bo["invitation"]["role"]) == ("MEMBER", "ADMIN")
    assert ada["invitation"]["status"] == "PENDING"
    assert ada["invitation"]["invitedBy"] == {"email": "admin@northwind.example"}
    expires = datetime.fromisoformat(ada["invitation"]["expiresAt"])
    assert abs(expires - (datetime.now(timezone.utc) + timedelta(days=7))) < timedelta(minutes=5)

    token = await mailed_token(db, "ada@example.com")
    stored = await db.fetchval("SELECT token_hash FROM invitations WHERE email = 'ada@example.com'")
    assert bytes(stored) == hashlib.sha256(token.encode()).digest()
    assert await db.fetchval("SELECT count(*) FROM invitations WHERE token_hash = $1", token.encode()) == 0
    mail = await db.fetchrow("SELECT subject, body FROM mail_outbox WHERE to_address = 'ada@example.com'")
    assert "Northwind Studio" in mail["subject"] and "Arjun Mehta" in mail["body"]
    assert f"https://portal.account-gateway.example/accept-invitation?token={token}" in mail["body"]

    members = data_of(await gateway.execute(MEMBER_EMAILS, token=admin), "viewer")["organization"]["members"]
    invited = {e["node"]["email"]: e["node"] for e in members["edges"] if e["node"]["status"] == "INVITED"}
    assert set(invited) == {"invitee@northwind.example", "ada@example.com", "bo@example.com"}

    entries = await audit_rows(db, "member.invite")
    assert [(e["target"], e["outcome"]) for e in entries] == [("ada@example.com", "SUCCESS"),
                                                              ("bo@example.com", "SUCCESS")]
    assert entries[0]["actor_account_id"] == demo_id("account", "admin@northwind.example")
    assert entries[0]["organization_id"] == NORTHWIND


async def test_each_email_is_refused_on_its_own_and_the_others_are_invited(gateway, owner, db):
    before = await db.fetchval("SELECT count(*) FROM invitations")
    payload = data_of(await gateway.execute(INVITE, invite_input(
        "new@example.com",
        "member1@northwind.example",
        "invitee@northwind.example",
        "member1@globex.example",
        "not-an-email",
        ("boss@example.com", "OWNER"),
        "NEW@example.com",
    ), token=owner), "inviteMembers")
    assert payload["userErrors"] == []
    results = payload["results"]
    assert [codes(r) for r in results] == [
        [], ["ALREADY_MEMBER"], ["ALREADY_INVITED"], ["IN_ANOTHER_ORGANIZATION"], ["INVALID"], ["INVALID"],
        ["ALREADY_INVITED"]]
    assert [r["invitation"] is not None for r in results] == [True] + [False] * 6
    assert results[1]["userErrors"][0]["field"] == ["input", "invitations", "1", "email"]
    assert results[5]["userErrors"][0]["field"] == ["input", "invitations", "5", "role"]
    assert await db.fetchval("SELECT count(*) FROM invitations") == before + 1
    assert await db.fetchval("SELECT count(*) FROM mail_outbox") == 1
    outcomes = [e["outcome"] for e in await audit_rows(db, "member.invite")]
    assert outcomes == ["SUCCESS"] + ["REFUSED"] * 6


async def test_one_good_email_and_one_member_invites_only_the_good_one(gateway, admin, db):
    payload = data_of(await gateway.execute(
        INVITE, invite_input("fresh@example.com", "member2@northwind.example"), token=admin), "inviteMembers")
    assert [codes(r) for r in payload["results"]] == [[], ["ALREADY_MEMBER"]]
    assert await db.fetchval("SELECT count(*) FROM invitations WHERE organization_id = $1", NORTHWIND) == 2


@pytest.mark.parametrize(("count", "code"), [(0, "REQUIRED"), (51, "INVALID")])
async def test_a_call_invites_1_to_50_people(gateway, admin, db, count, code):
    emails = [f"person{n}@example.com" for n in range(count)]
    payload = data_of(await gateway.execute(INVITE, invite_input(*emails), token=admin), "inviteMembers")
    assert codes(payload) == [code] and payload["results"] == []
    assert await db.fetchval("SELECT count(*) FROM invitations") == 2  # the demo's
    assert [e["outcome"] for e in await audit_rows(db, "member.invite")] == ["REFUSED"]


async def test_the_same_idempotency_key_replays_the_first_result_and_invites_once(gateway, admin, db):
    variables = invite_input("once@example.com", "member1@northwind.example", key="invite-once-1")
    first = data_of(await gateway.execute(INVITE, variables, token=admin), "inviteMembers")
    again = data_of(await gateway.execute(INVITE, variables, token=admin), "inviteMembers")
    assert again == first
    assert [codes(r) for r in again["results"]] == [[], ["ALREADY_MEMBER"]]
    assert await db.fetchval("SELECT count(*) FROM invitations WHERE email = 'once@example.com'") == 1
    assert await db.fetchval("SELECT count(*) FROM mail_outbox WHERE to_address = 'once@example.com'") == 1

    other = data_of(await gateway.execute(INVITE, invite_input("twice@example.com", key="invite-once-1"),
                                          token=admin), "inviteMembers")
    assert codes(other) == ["IDEMPOTENCY_KEY_REUSED"] and other["results"] == []
    assert other["userErrors"][0]["field"] == ["input", "idempotencyKey"]
    assert await db.fetchval("SELECT count(*) FROM invitations WHERE email = 'twice@example.com'") == 0


async def test_concurrent_invites_of_one_email_create_one_invitation(gateway, admin, owner, db):
    bodies = await asyncio.gather(*(gateway.execute(INVITE, invite_input("race@example.com"), token=t)
                                    for t in (admin, owner)))
    results = [data_of(b, "inviteMembers")["results"][0] for b in bodies]
    assert sorted(tuple(codes(r)) for r in results) == [(), ("ALREADY_INVITED",)]
    assert await db.fetchval("SELECT count(*) FROM invitations WHERE email = 'race@example.com'") == 1


# --- resendInvitation, revokeInvitation -------------------------------------------------------

async def test_resend_gives_a_new_link_and_7_more_days_and_the_old_link_stops_working(gateway, admin, db):
    [invitation] = await invite(gateway, admin, "again@example.com")
    old_token = await mailed_token(db, "again@example.com")
    await db.execute("UPDATE invitations SET expires_at = now() - interval '1 day' WHERE email = 'again@example.com'")

    payload = data_of(await gateway.execute(RESEND, {"input": {"invitationId": invitation["id"]}}, token=admin),
                      "resendInvitation")
    assert payload["userErrors"] == []
    assert payload["invitation"]["status"] == "PENDING"
    assert datetime.fromisoformat(payload["invitation"]["expiresAt"]) > datetime.now(timezone.utc) + timedelta(days=6)
    new_token = await mailed_token(db, "again@example.com")
    assert new_token != old_token
    assert await db.fetchval("SELECT count(*) FROM mail_outbox WHERE to_address = 'again@example.com'") == 2
    assert codes(await accept(gateway, old_token)) == ["INVITATION_NOT_PENDING"]
    [entry] = await audit_rows(db, "invitation.resend")
    assert (entry["target"], entry["outcome"]) == ("again@example.com", "SUCCESS")


async def test_revoked_invitation_cannot_be_accepted_resent_or_revoked_again(gateway, admin, db):
    [invitation] = await invite(gateway, admin, "gone@example.com")
    token = await mailed_token(db, "gone@example.com")
    variables = {"input": {"invitationId": invitation["id"]}}
    payload = data_of(await gateway.execute(REVOKE, variables, token=admin), "revokeInvitation")
    assert payload["userErrors"] == [] and payload["invitation"]["status"] == "REVOKED"

    assert codes(data_of(await gateway.execute(REVOKE, variables, token=admin), "revokeInvitation")) == [
        "INVITATION_NOT_PENDING"]
    resent = data_of(await gateway.execute(RESEND, variables, token=admin), "resendInvitation")
    assert codes(resent) == ["INVITATION_NOT_PENDING"] and resent["invitation"] is None
    assert codes(await accept(gateway, token)) == ["INVITATION_NOT_PENDING"]
    assert await db.fetchval("SELECT count(*) FROM accounts WHERE email = 'gone@example.com'") == 0
    assert [e["outcome"] for e in await audit_rows(db, "invitation.revoke")] == ["SUCCESS", "REFUSED"]
    assert [e["outcome"] for e in await audit_rows(db, "invitation.resend")] == ["REFUSED"]


async def test_an_expired_invitation_is_not_resent_to_someone_invited_again_since(gateway, admin, db):
    [old] = await invite(gateway, admin, "late@example.com")
    await db.execute("UPDATE invitations SET expires_at = now() - interval '1 day' WHERE email = 'late@example.com'")
    await invite(gateway, admin, "late@example.com")  # expired ones do not block a new invitation
    payload = data_of(await gateway.execute(RESEND, {"input": {"invitationId": old["id"]}}, token=admin),
                      "resendInvitation")
    assert codes(payload) == ["ALREADY_INVITED"]


# --- acceptInvitation -------------------------------------------------------------------------

async def test_accepting_creates_the_account_signs_it_in_and_it_sees_the_organization(gateway, admin, db):
    await invite(gateway, admin, "joiner@example.com")
    token = await mailed_token(db, "joiner@example.com")
    payload = await accept(gateway, token, name="Joan Iner")
    assert payload["userErrors"] == []
    assert payload["account"]["email"] == "joiner@example.com" and payload["account"]["name"] == "Joan Iner"

    viewer = data_of(await gateway.execute(VIEWER, token=payload["token"]), "viewer")
    assert viewer == {"email": "joiner@example.com", "name": "Joan Iner", "role": "MEMBER",
                      "organization": {"name": "Northwind Studio"}}
    assert await gateway.login("joiner@example.com", NEW_PASSWORD)
    status = await db.fetchval("SELECT accepted_at IS NOT NULL FROM invitations WHERE email = 'joiner@example.com'")
    assert status is True
    [entry] = await audit_rows(db, "member.join")
    assert entry["target"] == "joiner@example.com" and entry["organization_id"] == NORTHWIND
    assert entry["actor_account_id"] == await db.fetchval("SELECT id FROM accounts WHERE email = 'joiner@example.com'")
    assert entry["details"]["accountCreated"] is True

    assert codes(await accept(gateway, token)) == ["INVITATION_NOT_PENDING"]  # single use


async def test_the_accepted_sign_in_stays_signed_in_with_its_refresh_token(gateway, admin, db):
    from tests.test_refresh_tokens import REFRESH

    await invite(gateway, admin, "stays@example.com")
    payload = await accept(gateway, await mailed_token(db, "stays@example.com"), name="Stay Put")
    assert payload["userErrors"] == [] and payload["refreshToken"]
    # When each expires, as `login` says it: 15 minutes and 30 days.
    issued = {key: datetime.fromisoformat(payload[key]) - datetime.now(timezone.utc)
              for key in ("expiresAt", "refreshTokenExpiresAt")}
    assert abs(issued["expiresAt"] - timedelta(minutes=15)) < timedelta(minutes=1)
    assert abs(issued["refreshTokenExpiresAt"] - timedelta(days=30)) < timedelta(minutes=1)
    renewed = data_of(await gateway.execute(REFRESH, {"refreshToken": payload["refreshToken"]}), "refreshToken")
    assert renewed["userErrors"] == [] and renewed["token"] and renewed["refreshToken"] != payload["refreshToken"]
    assert data_of(await gateway.execute(VIEWER, token=renewed["token"]), "viewer")["email"] == "stays@example.com"
    again = data_of(await gateway.execute(REFRESH, {"refreshToken": renewed["refreshToken"]}), "refreshToken")
    assert again["userErrors"] == []
    # Its successor traded in too, the first refresh token is spent: presenting it ends the session.
    replayed = data_of(await gateway.execute(REFRESH, {"refreshToken": payload["refreshToken"]}), "refreshToken")
    assert [e["code"] for e in replayed["userErrors"]] == ["INVALID_REFRESH_TOKEN"]
    assert (await gateway.execute(VIEWER, token=again["token"]))["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_new_account_needs_a_name_and_a_strong_enough_password(gateway, admin, db):
    await invite(gateway, admin, "weak@example.com")
    token = await mailed_token(db, "weak@example.com")
    payload = await accept(gateway, token, name=" ", password="short")
    assert sorted(codes(payload)) == ["REQUIRED", "WEAK_PASSWORD"]
    assert payload["token"] is None and payload["refreshToken"] is None and payload["account"] is None
    assert payload["expiresAt"] is None and payload["refreshTokenExpiresAt"] is None
    assert await db.fetchval("SELECT count(*) FROM accounts WHERE email = 'weak@example.com'") == 0
    assert (await accept(gateway, token))["userErrors"] == []  # the invitation stayed pending


async def test_unknown_and_expired_tokens_are_not_pending(gateway, admin, db):
    assert codes(await accept(gateway, "no-such-token")) == ["INVITATION_NOT_PENDING"]
    await invite(gateway, admin, "slow@example.com")
    token = await mailed_token(db, "slow@example.com")
    await db.execute("UPDATE invitations SET expires_at = now() WHERE email = 'slow@example.com'")
    assert codes(await accept(gateway, token)) == ["INVITATION_NOT_PENDING"]


async def test_an_account_in_no_organization_joins_with_its_own_password(gateway, admin, db):
    member3 = await gateway.login("member3@northwind.example")
    removed = data_of(await gateway.execute(REMOVE, {"input": {"accountId": account_gid("member3@northwind.example")}},
                                            token=admin), "removeMember")
    assert removed["userErrors"] == []
    globex_admin = await gateway.login("admin@globex.example")
    await invite(gateway, globex_admin, ("member3@northwind.example", "ADMIN"), organization=GLOBEX)
    token = await mailed_token(db, "member3@northwind.example")

    assert codes(await accept(gateway, token, password="not-my-password")) == ["WRONG_PASSWORD"]
    payload = await accept(gateway, token, name=None, password="demo-password")
    assert payload["userErrors"] == []
    assert payload["account"]["name"] == "Mia Rossi"  # the account as it was
    viewer = data_of(await gateway.execute(VIEWER, token=member3), "viewer")  # the old session too
    assert viewer["organization"] == {"name": "Globex Visuals"} and viewer["role"] == "ADMIN"


async def test_an_account_in_another_organization_cannot_accept(gateway, admin, db):
    globex_admin = await gateway.login("admin@globex.example")
    await invite(gateway, admin, "wanted@example.com")
    northwind_token = await mailed_token(db, "wanted@example.com")
    await invite(gateway, globex_admin, "wanted@example.com", organization=GLOBEX)
    globex_token = await mailed_token(db, "wanted@example.com")
    assert (await accept(gateway, northwind_token))["userErrors"] == []
    assert codes(await accept(gateway, globex_token)) == ["IN_ANOTHER_ORGANIZATION"]
    assert await db.fetchval("SELECT organization_id FROM memberships m JOIN accounts a ON a.id = m.account_id"
                             " WHERE a.email = 'wanted@example.com'") == NORTHWIND


async def test_two_concurrent_accepts_of_one_invitation_make_one_account_and_one_membership(gateway, admin, db):
    await invite(gateway, admin, "twin@example.com")
    token = await mailed_token(db, "twin@example.com")
    first, second = await asyncio.gather(accept(gateway, token, name="Twin One"),
                                         accept(gateway, token, name="Twin Two"))
    outcomes = sorted([codes(first), codes(second)])
    assert outcomes == [[], ["INVITATION_NOT_PENDING"]]
    loser = first if codes(first) else second
    assert loser["token"] is None and loser["account"] is None
    account_ids = await db.fetch("SELECT id FROM accounts WHERE email = 'twin@example.com'")
    assert len(account_ids) == 1
    assert await db.fetchval("SELECT count(*) FROM memberships WHERE account_id = $1", account_ids[0]["id"]) == 1
    assert await db.fetchval("SELECT count(*) FROM sessions WHERE account_id = $1", account_ids[0]["id"]) == 1
    assert len(await audit_rows(db, "member.join")) == 1


@pytest.mark.parametrize("existing", [False, True], ids=["new-account", "account-in-no-organization"])
async def test_concurrent_accepts_into_two_organizations_join_only_one(gateway, admin, db, existing):
    email = "member3@northwind.example" if existing else "both@example.com"
    if existing:
        await gateway.execute(REMOVE, {"input": {"accountId": account_gid(email)}}, token=admin)
    globex_admin = await gateway.login("admin@globex.example")
    await invite(gateway, admin, email)
    tokens = [await mailed_token(db, email)]
    await invite(gateway, globex_admin, email, organization=GLOBEX)
    tokens.append(await mailed_token(db, email))
    password = "demo-password" if existing else NEW_PASSWORD
    results = await asyncio.gather(*(accept(gateway, t, password=password) for t in tokens))
    assert sorted(codes(r) for r in results) == [[], ["IN_ANOTHER_ORGANIZATION"]]
    assert await db.fetchval("SELECT count(*) FROM accounts WHERE email = $1", email) == 1
    assert await db.fetchval("SELECT count(*) FROM memberships m JOIN accounts a ON a.id = m.account_id"
                             " WHERE a.email = $1", email) == 1


async def test_an_invitation_may_carry_the_invitees_name_checked_like_any_name(gateway, admin, db):
    body = await gateway.execute(INVITE, {"input": {"invitations": [
        {"email": "named@example.com", "name": "  Named Person ", "role": "MEMBER"},
        {"email": "long@example.com", "name": "x" * 201}, {"email": "tab@example.com", "name": "a\tb"}]}},
        token=admin)
    results = data_of(body, "inviteMembers")["results"]
    assert [[(e["field"], e["code"]) for e in r["userErrors"]] for r in results] == [
        [], [(["input", "invitations", "1", "name"], "INVALID")], [(["input", "invitations", "2", "name"], "INVALID")]]
    assert await db.fetchval("SELECT name FROM invitations WHERE email = 'named@example.com'") == "Named Person"
    assert (await db.fetchval("SELECT body FROM mail_outbox WHERE to_address = 'named@example.com'")).startswith(
        "Hello Named Person,")


# --- removeMember -----------------------------------------------------------------------------

async def test_a_member_holding_seats_is_removed_only_with_revoke_seats(gateway, admin, db):
    member1 = demo_id("account", "member1@northwind.example")
    variables = {"input": {"accountId": account_gid("member1@northwind.example")}}
    refused = data_of(await gateway.execute(REMOVE, variables, token=admin), "removeMember")
    assert codes(refused) == ["HOLDS_SEATS"]
    assert refused["userErrors"][0]["field"] == ["input", "revokeSeats"]
    assert "Atlas Scatter" in refused["userErrors"][0]["message"]
    assert refused["removedMemberId"] is None
    assert await db.fetchval("SELECT count(*) FROM allocations WHERE account_id = $1", member1) == 2

    variables["input"]["revokeSeats"] = True
    payload = data_of(await gateway.execute(REMOVE, variables, token=admin), "removeMember")
    assert payload["userErrors"] == [] and payload["revokedSeatCount"] == 2
    assert payload["removedAccountId"] == account_gid("member1@northwind.example")
    assert payload["removedMemberId"] == gid("Member", f"a.{member1}")
    assert payload["organization"] == {"name": "Northwind Studio"}
    assert await db.fetchval("SELECT count(*) FROM allocations WHERE account_id = $1", member1) == 0
    assert await db.fetchval("SELECT count(*) FROM memberships WHERE account_id = $1", member1) == 0
    entries = await audit_rows(db, "member.remove")
    assert [e["outcome"] for e in entries] == ["REFUSED", "SUCCESS"]
    assert {s["product"] for s in entries[1]["details"]["revokedSeats"]} == {"Lumen Render", "Atlas Scatter"}


async def test_a_removed_member_keeps_the_session_but_no_longer_sees_the_organization(gateway, admin, db):
    member3 = demo_id("account", "member3@northwind.example")
    own_token = await gateway.login("member3@northwind.example")
    assert await db.fetchval("SELECT count(*) FROM credit_access WHERE account_id = $1", member3) == 1
    payload = data_of(await gateway.execute(
        REMOVE, {"input": {"accountId": account_gid("member3@northwind.example")}}, token=admin), "removeMember")
    assert payload["userErrors"] == [] and payload["revokedSeatCount"] == 0
    assert await db.fetchval("SELECT count(*) FROM credit_access WHERE account_id = $1", member3) == 0
    viewer = data_of(await gateway.execute(VIEWER, token=own_token), "viewer")
    assert viewer["email"] == "member3@northwind.example" and viewer["organization"] is None
    members = data_of(await gateway.execute(MEMBER_EMAILS, token=admin), "viewer")["organization"]["members"]
    assert "member3@northwind.example" not in {e["node"]["email"] for e in members["edges"]}


async def test_trial_and_beta_seats_go_with_the_person_who_leaves(gateway, admin, db):
    """A TRIAL or BETA seat is the person's, not the pool's: no revokeSeats needed, released and
    audited as such, reported as revoked."""
    member3 = demo_id("account", "member3@northwind.example")
    trial = demo_id("license", "northwind", "SCENE-VIEWER")
    await db.execute("INSERT INTO allocations (license_id, account_id) VALUES ($1, $2)", trial, member3)
    payload = data_of(await gateway.execute(REMOVE, {"input": {
        "accountId": account_gid("member3@northwind.example")}}, token=admin), "removeMember")
    assert payload["userErrors"] == [] and payload["revokedSeatCount"] == 1, payload
    assert await db.fetchval("SELECT count(*) FROM memberships WHERE account_id = $1", member3) == 0
    assert await db.fetchval("SELECT count(*) FROM allocations WHERE account_id = $1", member3) == 0
    [entry] = await audit_rows(db, "member.remove")
    assert entry["details"]["revokedSeats"] == []
    assert [(s["product"], s["kind"]) for s in entry["details"]["releasedSeats"]] == [("Scene Cloud Viewer", "TRIAL")]
    assert await db.fetchval("SELECT count(*) FROM event_log WHERE type = 'SEAT_REVOKED'"
                             " AND data->>'license_id' = $1", str(trial)) == 1


async def test_a_leaver_with_a_trial_seat_and_pool_seats_still_needs_revoke_seats_for_the_pool(gateway, admin, db):
    member1 = demo_id("account", "member1@northwind.example")
    await db.execute("INSERT INTO allocations (license_id, account_id) VALUES ($1, $2)",
                     demo_id("license", "northwind", "SCENE-VIEWER"), member1)
    variables = {"input": {"accountId": account_gid("member1@northwind.example")}}
    refused = data_of(await gateway.execute(REMOVE, variables, token=admin), "removeMember")
    assert codes(refused) == ["HOLDS_SEATS"]
    assert "Scene Cloud Viewer" not in refused["userErrors"][0]["message"]
    assert await db.fetchval("SELECT count(*) FROM allocations WHERE account_id = $1", member1) == 3
    variables["input"]["revokeSeats"] = True
    payload = data_of(await gateway.execute(REMOVE, variables, token=admin), "removeMember")
    assert payload["userErrors"] == [] and payload["revokedSeatCount"] == 3
    assert await db.fetchval("SELECT count(*) FROM allocations WHERE account_id = $1", member1) == 0


async def test_two_admins_removing_each_other_at_once_leave_one_of_them(gateway, admin, db):
    """Found by the outside attack: both removals succeeded, the second made by someone who was no
    longer a member when it took effect."""
    member2, member3 = "member2@northwind.example", "member3@northwind.example"
    await db.execute("UPDATE memberships m SET role = 'ADMIN' FROM accounts a WHERE a.id = m.account_id"
                     " AND a.email = ANY($1)", [member2, member3])
    tokens = [await gateway.login(member2), await gateway.login(member3)]
    bodies = await asyncio.gather(
        gateway.execute(REMOVE, {"input": {"accountId": account_gid(member3), "revokeSeats": True}},
                        token=tokens[0]),
        gateway.execute(REMOVE, {"input": {"accountId": account_gid(member2), "revokeSeats": True}},
                        token=tokens[1]))
    left = await db.fetchval("SELECT count(*) FROM memberships m JOIN accounts a ON a.id = m.account_id"
                             " WHERE a.email = ANY($1)", [member2, member3])
    assert left == 1, bodies  # one went first: the other, no longer a member, is refused
    refused = [b for b in bodies if "errors" in b]
    assert [[e["extensions"]["code"] for e in b["errors"]] for b in refused] == [["FORBIDDEN"]]


async def test_the_owner_cannot_be_removed_nor_leave_but_an_admin_can_leave(gateway, admin, owner, db):
    owner_id = {"input": {"accountId": account_gid("owner@northwind.example"), "revokeSeats": True}}
    assert codes(data_of(await gateway.execute(REMOVE, owner_id, token=admin), "removeMember")) == ["OWNER_PROTECTED"]
    assert codes(data_of(await gateway.execute(REMOVE, owner_id, token=owner), "removeMember")) == ["NOT_ALLOWED"]
    leave = {"input": {"accountId": account_gid("admin@northwind.example"), "revokeSeats": True}}
    assert data_of(await gateway.execute(REMOVE, leave, token=admin), "removeMember")["userErrors"] == []
    assert await db.fetchval("SELECT count(*) FROM memberships WHERE organization_id = $1", NORTHWIND) == 7


# --- changeMemberRole -------------------------------------------------------------------------

async def test_role_changes_refused_for_the_owner_for_yourself_and_to_owner(gateway, admin, owner, db):
    async def change(email: str, role: str, token: str) -> dict[str, Any]:
        body = await gateway.execute(CHANGE_ROLE, {"input": {"accountId": account_gid(email), "role": role}},
                                     token=token)
        return data_of(body, "changeMemberRole")

    assert codes(await change("owner@northwind.example", "ADMIN", admin)) == ["OWNER_PROTECTED"]
    assert codes(await change("owner@northwind.example", "MEMBER", owner)) == ["OWNER_PROTECTED"]
    assert codes(await change("admin@northwind.example", "MEMBER", admin)) == ["OWN_ROLE"]
    assert codes(await change("member1@northwind.example", "OWNER", owner)) == ["INVALID"]
    demoted = await change("admin@northwind.example", "MEMBER", owner)
    assert demoted["userErrors"] == [] and demoted["member"]["role"] == "MEMBER"
    assert await db.fetchval("SELECT role::text FROM memberships WHERE account_id = $1",
                             demo_id("account", "admin@northwind.example")) == "MEMBER"
    entries = await audit_rows(db, "member.role_change")
    assert [e["outcome"] for e in entries] == ["REFUSED"] * 4 + ["SUCCESS"]
    assert entries[-1]["details"]["from"] == "ADMIN" and entries[-1]["details"]["to"] == "MEMBER"


# --- who may call what ------------------------------------------------------------------------

async def _target_invitation(gateway, admin, email: str) -> str:
    [invitation] = await invite(gateway, admin, email)
    return invitation["id"]


async def _cases(gateway, admin, case: str) -> tuple[str, str, Any]:
    """(query, payload field, a function giving the variables for a call by `who`)."""
    if case == "inviteMembers":
        return INVITE, "inviteMembers", lambda who: invite_input(f"new-{who}@example.com")
    if case == "resendInvitation":
        invitation = gid("Invitation", DEMO_INVITATION)
        return RESEND, "resendInvitation", lambda who: {"input": {"invitationId": invitation}}
    if case == "revokeInvitation":
        ids = {who: await _target_invitation(gateway, admin, f"revoke-{who}@example.com") for who in ("admin", "owner")}
        return REVOKE, "revokeInvitation", lambda who: {"input": {"invitationId": ids.get(who, ids["admin"])}}
    targets = {"admin": "member4@northwind.example", "owner": "member5@northwind.example"}
    query, field = (REMOVE, "removeMember") if case == "removeMember" else (CHANGE_ROLE, "changeMemberRole")
    extra = {} if case == "removeMember" else {"role": "ADMIN"}
    return query, field, lambda who: {"input": {"accountId": account_gid(targets.get(who, targets["admin"])),
                                                **extra}}


@pytest.mark.parametrize("case", ["inviteMembers", "resendInvitation", "revokeInvitation", "removeMember",
                                  "changeMemberRole"])
async def test_only_the_organizations_owner_and_admins_may_manage_its_people(gateway, admin, owner, case):
    query, field, variables = await _cases(gateway, admin, case)
    member = await gateway.login("member1@northwind.example")
    globex_admin = await gateway.login("admin@globex.example")
    assert error_code(await gateway.execute(query, variables("anonymous"))) == "UNAUTHENTICATED"
    assert error_code(await gateway.execute(query, variables("member"), token=member)) == "FORBIDDEN"
    assert error_code(await gateway.execute(query, variables("globex"), token=globex_admin)) == "NOT_FOUND"
    for who, token in (("admin", admin), ("owner", owner)):
        payload = data_of(await gateway.execute(query, variables(who), token=token), field)
        assert payload["userErrors"] == [], (who, payload)


ID_FIELDS = [(RESEND, "resendInvitation", "invitationId"), (REVOKE, "revokeInvitation", "invitationId"),
             (REMOVE, "removeMember", "accountId"), (CHANGE_ROLE, "changeMemberRole", "accountId"),
             (INVITE, "inviteMembers", "organizationId")]


async def test_malformed_unknown_and_mistyped_ids_are_all_not_found(gateway, admin):
    for query, field, id_field in ID_FIELDS:
        mistyped = gid("Account", DEMO_INVITATION) if id_field == "invitationId" else gid("Invitation", DEMO_INVITATION)
        for raw in ("not-an-id", gid(field, "x"), mistyped, gid("Account", demo_id("account", "nobody"))):
            variables: dict[str, Any] = {id_field: raw}
            if query is CHANGE_ROLE:
                variables["role"] = "ADMIN"
            if query is INVITE:
                variables["invitations"] = [{"email": "x@example.com", "role": "MEMBER"}]
            body = await gateway.execute(query, {"input": variables}, token=admin)
            assert error_code(body) == "NOT_FOUND", (field, raw, body)


async def test_invite_members_defaults_to_the_viewers_organization(gateway, db):
    token = await gateway.login("admin@northwind.example")
    body = await gateway.execute(
        'mutation { inviteMembers(input: {invitations: [{email: "new.person@northwind.example", role: MEMBER}]}) '
        "{ results { email invitation { status } userErrors { code } } userErrors { code } } }", token=token)
    assert body["data"]["inviteMembers"] == {"results": [{"email": "new.person@northwind.example",
                                                         "invitation": {"status": "PENDING"}, "userErrors": []}],
                                            "userErrors": []}
    org = await db.fetchval("SELECT o.name FROM invitations i JOIN organizations o ON o.id = i.organization_id"
                            " WHERE i.email = 'new.person@northwind.example'")
    assert org == "Northwind Studio"


async def test_the_invitation_link_points_at_the_deployments_portal(app_for, settings, db):
    gateway = await app_for(settings.with_(portal_url="https://accounts.staging.example"))
    admin = await gateway.login("admin@northwind.example")
    await invite(gateway, admin, "staging@example.com")
    token = await mailed_token(db, "staging@example.com")
    body = await db.fetchval("SELECT body FROM mail_outbox WHERE to_address = 'staging@example.com'")
    assert f"https://accounts.staging.example/accept-invitation?token={token}" in body


def test_portal_url_is_read_from_the_environment_and_checked():
    from gateway.settings import DEFAULT_PORTAL_URL, SettingsError, from_env

    assert from_env({}).portal_url == DEFAULT_PORTAL_URL
    assert from_env({"PORTAL_URL": " https://portal.acme.example/ "}).portal_url == "https://portal.acme.example"
    for unusable in ("portal.acme.example", "ftp://portal.acme.example", "https://portal.acme.example/?a=1"):
        with pytest.raises(SettingsError, match="PORTAL_URL must be an http"):
            from_env({"PORTAL_URL": unusable})
