"""People in bulk: importMembers (a CSV, dry run first), removeMembers and changeMemberRoles.

The demo (gateway/demo.py): Northwind's owner, admin and member1..member6; Globex's people; one
pending invitation to invitee@northwind.example.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from strawberry.relay import to_base64

from gateway.demo import demo_id
from tests.test_credit_mutations import audit_rows
from tests.conftest import production_executor_only

# About what the mutations write and refuse: run by the production executor only, as the event log's
# tests are (the executors differ in reads, which test_paths_agree compares both ways).
pytestmark = production_executor_only

ACCEPT = """mutation A($input: AcceptInvitationInput!) { acceptInvitation(input: $input) {
  account { name } userErrors { code } } }"""
IMPORT = """mutation I($input: ImportMembersInput!) { importMembers(input: $input) {
  rows { line email role invitation { email role } userErrors { field code message } }
  invitedCount userErrors { field code message } } }"""
REMOVE = """mutation R($input: RemoveMembersInput!) { removeMembers(input: $input) {
  results { accountId done userErrors { field code } } userErrors { field code } } }"""
ROLES = """mutation C($input: ChangeMemberRolesInput!) { changeMemberRoles(input: $input) {
  results { accountId done userErrors { field code } } userErrors { field code } } }"""
ADMIN = "admin@northwind.example"
GOOD = "email,name,role\nada@example.com,Ada Lovelace,ADMIN\ngrace@example.com,\"Hopper, Grace\",\n"
MIXED = ("email,name,role\n"
         "new1@example.com,New One,member\n"         # line 2: fine (role in any case)
         "not-an-email,Bad,MEMBER\n"                  # 3: INVALID email
         "member1@northwind.example,Member,MEMBER\n"  # 4: ALREADY_MEMBER
         "invitee@northwind.example,Invitee,MEMBER\n"  # 5: ALREADY_INVITED
         "member1@globex.example,Globex,MEMBER\n"     # 6: IN_ANOTHER_ORGANIZATION
         "new2@example.com,New Two,OWNER\n"           # 7: INVALID role
         "NEW1@example.com,Again,MEMBER\n"            # 8: twice in the file
         "new3@example.com,Short\n"                   # 9: a value missing
         "\n"                                         # 10: blank, skipped
         "new4@example.com,New Four,ADMIN\n")         # 11: fine


def account(email: str) -> str:
    return to_base64("Account", str(demo_id("account", email)))


async def run(gateway, token, query, **input):
    body = await gateway.execute(query, {"input": input}, token=token)
    assert "errors" not in body, body
    [payload] = body["data"].values()
    return payload


def row_codes(payload) -> dict[int, list[str]]:
    return {r["line"]: [e["code"] for e in r["userErrors"]] for r in payload["rows"]}


async def invitations(db) -> int:
    return await db.fetchval("SELECT count(*) FROM invitations")


async def test_a_dry_run_checks_every_row_and_writes_nothing_then_the_import_invites_the_good_ones(gateway, db):
    admin = await gateway.login(ADMIN)
    before = (await invitations(db), await db.fetchval("SELECT count(*) FROM mail_outbox"),
              await db.fetchval("SELECT count(*) FROM audit_log"), await db.fetchval("SELECT count(*) FROM event_log"))
    dry = await run(gateway, admin, IMPORT, csv=MIXED, dryRun=True)
    expected = {2: [], 3: ["INVALID"], 4: ["ALREADY_MEMBER"], 5: ["ALREADY_INVITED"], 6: ["IN_ANOTHER_ORGANIZATION"],
                7: ["INVALID"], 8: ["INVALID"], 9: ["INVALID"], 11: []}
    assert row_codes(dry) == expected and dry["invitedCount"] == 0, dry
    assert all(e["field"][:3] == ["input", "csv", str(r["line"])] for r in dry["rows"] for e in r["userErrors"])
    assert (await invitations(db), await db.fetchval("SELECT count(*) FROM mail_outbox"),
            await db.fetchval("SELECT count(*) FROM audit_log"),
            await db.fetchval("SELECT count(*) FROM event_log")) == before

    done = await run(gateway, admin, IMPORT, csv=MIXED)
    assert row_codes(done) == expected and done["invitedCount"] == 2
    invited = {r["line"]: r["invitation"] for r in done["rows"] if r["invitation"]}
    assert invited == {2: {"email": "new1@example.com", "role": "MEMBER"},
                       11: {"email": "new4@example.com", "role": "ADMIN"}}
    assert await invitations(db) == before[0] + 2
    body = await db.fetchval("SELECT body FROM mail_outbox WHERE to_address = 'new4@example.com'")
    assert body.startswith("Hello New Four,")
    assert await db.fetchval("SELECT count(*) FROM event_log WHERE type = 'INVITATION_SENT'") == 2
    entries = await audit_rows(db, "member.invite")
    # Lines 3 to 7 reach the database and are audited as refused; a row of the wrong shape, or twice
    # in the file, is refused before it.
    assert sorted(e["outcome"] for e in entries) == ["REFUSED"] * 5 + ["SUCCESS"] * 2
    # Again: the two are invited now, every row is refused, nothing more is sent.
    again = await run(gateway, admin, IMPORT, csv=MIXED)
    assert again["invitedCount"] == 0 and row_codes(again)[2] == ["ALREADY_INVITED"]


async def test_a_quoted_name_with_a_comma_and_a_default_role(gateway, db):
    payload = await run(gateway, await gateway.login(ADMIN), IMPORT, csv=GOOD)
    assert [(r["email"], r["invitation"]) for r in payload["rows"]] == [
        ("ada@example.com", {"email": "ada@example.com", "role": "ADMIN"}),
        ("grace@example.com", {"email": "grace@example.com", "role": "MEMBER"})]
    assert (await db.fetchval("SELECT body FROM mail_outbox WHERE to_address = 'grace@example.com'")).startswith(
        "Hello Hopper, Grace,")
    # The name goes with the invitation: accepted without one, it is the new account's name.
    body = await db.fetchval("SELECT body FROM mail_outbox WHERE to_address = 'ada@example.com'")
    token = re.search(r"/accept-invitation\?token=([A-Za-z0-9_-]+)", body).group(1)
    accepted = await gateway.execute(ACCEPT, {"input": {"token": token, "password": "correct horse battery"}})
    assert accepted["data"]["acceptInvitation"]["account"] == {"name": "Ada Lovelace"}, accepted


@pytest.mark.parametrize("csv, code", [
    ("", "REQUIRED"),
    ("email,name,role\n", "REQUIRED"),
    ("name,role\nAda,ADMIN\n", "INVALID"),  # no email column
    ("email,phone\na@example.com,123\n", "INVALID"),  # unknown column
    ("email,email\na@example.com,b@example.com\n", "INVALID"),
    ('email,name\na@example.com,"unclosed\n', "INVALID"),  # not CSV
    ("email\n" + "".join(f"p{i}@example.com\n" for i in range(1001)), "INVALID"),
])
async def test_a_file_refused_as_a_whole_invites_no_one(gateway, db, csv, code):
    before = await invitations(db)
    payload = await run(gateway, await gateway.login(ADMIN), IMPORT, csv=csv)
    assert payload["rows"] == [] and [e["code"] for e in payload["userErrors"]] == [code], payload
    assert await invitations(db) == before


async def test_crafted_names_and_addresses_are_refused_per_row(gateway, db):
    """The addresses were found by the outside attack: each was invited (one with a right-to-left
    override, a look-alike of another address)."""
    bad = ["<script>@example.com", ".a@example.com", "a..b@example.com", "fake\u202e@example.com",
           "zero\u200bwidth@example.com", "q\"\"1@example.com"]
    csv = ("email,name\na@example.com," + "x" * 201 + "\nb@example.com,\"two\nlines\"\nc@example.com,Fine\n"
           + "".join(f"\"{e}\",X\n" for e in bad))
    payload = await run(gateway, await gateway.login(ADMIN), IMPORT, csv=csv)
    assert [[e["code"] for e in r["userErrors"]] for r in payload["rows"]] == [["INVALID"]] * 2 + [[]] + [
        ["INVALID"]] * len(bad)
    assert payload["invitedCount"] == 1


async def test_a_header_error_names_columns_by_position_never_by_what_was_sent(gateway):
    payload = await run(gateway, await gateway.login(ADMIN), IMPORT, csv="email,<b>secret</b>\na@example.com,1\n")
    [error] = payload["userErrors"]
    assert "column 2" in error["message"] and "secret" not in error["message"]


async def test_concurrent_imports_of_the_same_file_invite_each_person_once(gateway, db):
    admin = await gateway.login(ADMIN)
    before = await invitations(db)
    results = await asyncio.gather(*(run(gateway, admin, IMPORT, csv=GOOD) for _ in range(4)))
    assert sum(r["invitedCount"] for r in results) == 2
    assert await invitations(db) == before + 2


@pytest.mark.parametrize("who, code", [(None, "UNAUTHENTICATED"), ("member1@northwind.example", "FORBIDDEN")])
async def test_only_managers_import(gateway, db, who, code):
    body = await gateway.execute(IMPORT, {"input": {"csv": GOOD}}, token=await gateway.login(who) if who else None)
    assert [e["extensions"]["code"] for e in body["errors"]] == [code]
    other = await gateway.execute(IMPORT, {"input": {"csv": GOOD, "organizationId": to_base64(
        "Organization", str(demo_id("organization", "globex")))}}, token=await gateway.login(ADMIN))
    assert [e["extensions"]["code"] for e in other["errors"]] == ["NOT_FOUND"]
    assert await db.fetchval("SELECT count(*) FROM invitations WHERE email = 'ada@example.com'") == 0


async def test_removals_in_a_list_each_succeed_or_fail_alone(gateway, db):
    admin = await gateway.login(ADMIN)
    ids = [account("member3@northwind.example"), account("owner@northwind.example"),
           account("member1@globex.example"), account("member1@northwind.example"), "%%%"]
    payload = await run(gateway, admin, REMOVE, accountIds=ids)
    assert [(r["done"], [(e["field"], e["code"]) for e in r["userErrors"]]) for r in payload["results"]] == [
        (True, []),
        (False, [(["input", "accountIds", "1"], "OWNER_PROTECTED")]),
        (False, [(["input", "accountIds", "2"], "NOT_FOUND")]),  # another organization's: as unknown
        (False, [(["input", "accountIds", "3"], "HOLDS_SEATS")]),  # seats, and revokeSeats not given
        (False, [(["input", "accountIds", "4"], "NOT_FOUND")]),
    ]
    remaining = {r["email"] for r in await db.fetch(
        "SELECT a.email FROM memberships m JOIN accounts a ON a.id = m.account_id WHERE a.email = ANY($1)",
        ["member3@northwind.example", "owner@northwind.example", "member1@northwind.example"])}
    assert remaining == {"owner@northwind.example", "member1@northwind.example"}
    assert [e["outcome"] for e in await audit_rows(db, "member.remove")] == ["SUCCESS", "REFUSED", "REFUSED"]


async def test_role_changes_in_a_list_and_limits(gateway, db):
    admin = await gateway.login(ADMIN)
    payload = await run(gateway, admin, ROLES, changes=[
        {"accountId": account("member2@northwind.example"), "role": "ADMIN"},
        {"accountId": account(ADMIN), "role": "MEMBER"},
        {"accountId": account("member4@northwind.example"), "role": "OWNER"}])
    assert [(r["done"], [(e["field"], e["code"]) for e in r["userErrors"]]) for r in payload["results"]] == [
        (True, []), (False, [(["input", "changes", "1", "accountId"], "OWN_ROLE")]),
        (False, [(["input", "changes", "2", "role"], "INVALID")])]
    assert await db.fetchval("SELECT role::text FROM memberships WHERE account_id = $1",
                             demo_id("account", "member2@northwind.example")) == "ADMIN"
    for query, field, value in ((ROLES, "changes", []), (REMOVE, "accountIds", []),
                                (REMOVE, "accountIds", [account("member5@northwind.example")] * 101)):
        refused = await run(gateway, admin, query, **{field: value})
        assert refused["results"] == [] and [e["code"] for e in refused["userErrors"]] == ["INVALID"]
    member = await gateway.login("member1@northwind.example")
    body = await gateway.execute(REMOVE, {"input": {"accountIds": [account("member5@northwind.example")]}},
                                 token=member)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
