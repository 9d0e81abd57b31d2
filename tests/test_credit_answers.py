"""Credit requests answered: approve (setting the requester's access) or decline, once.

Seeded per organization (gateway/demo.py): member3 has a QUOTA of 500 and one pending request
for 1,000 credits.
"""

from __future__ import annotations

import asyncio

import pytest
from strawberry.relay import to_base64

from gateway.demo import demo_id
from tests.conftest import production_executor_only
from tests.test_credit_mutations import (NORTHWIND, access_in_db, add_account_without_organization, audit_rows, codes,
                                         m, mail_to, request_credits)

# About what the mutations write and refuse: run by the production executor only, as the event log's
# tests are (the executors differ in reads, which test_paths_agree compares both ways).
pytestmark = production_executor_only

RAW_ID = demo_id("credit-request", "northwind")
REQUEST_ID = to_base64("CloudCreditRequest", str(RAW_ID))
FIELDS = "request { id status resolvedAt answerNote amount } userErrors { field message code }"
APPROVE = f"""
mutation Approve($input: ApproveCreditRequestInput!) {{ approveCreditRequest(input: $input) {{ {FIELDS} }} }}"""
DECLINE = f"""
mutation Decline($input: DeclineCreditRequestInput!) {{ declineCreditRequest(input: $input) {{ {FIELDS} }} }}"""
MINE = """{ viewer { creditRequests(first: 10) { totalCount nodes { amount status answerNote } } } }"""
PENDING = "{ viewer { organization { creditPool { pendingRequests { id } } } } }"
OWN_EVENTS = "SELECT type, data->>'outcome' AS outcome FROM event_log WHERE type = 'CREDIT_REQUEST_RESOLVED'"


async def outcome(db) -> str | None:
    return await db.fetchval("SELECT outcome FROM credit_requests WHERE id = $1", RAW_ID)


async def approve(gateway, token, access, note=None, request_id=REQUEST_ID):
    body = await gateway.execute(APPROVE, {"input": {"requestId": request_id, "access": access,
                                                     **({"note": note} if note is not None else {})}}, token=token)
    return body


async def decline(gateway, token, note="", request_id=REQUEST_ID):
    return await gateway.execute(DECLINE, {"input": {"requestId": request_id, "note": note}}, token=token)


async def test_an_approval_sets_the_quota_and_the_member_sees_it_and_is_mailed(gateway, db):
    admin = await gateway.login(f"admin@{NORTHWIND}")
    body = await approve(gateway, admin, {"mode": "QUOTA", "quota": 1500}, note="Go ahead.")
    payload = body["data"]["approveCreditRequest"]
    assert payload["userErrors"] == [] and payload["request"]["status"] == "APPROVED", body
    assert payload["request"]["resolvedAt"] and payload["request"]["answerNote"] == "Go ahead."
    assert await access_in_db(db, m(3)) == ("QUOTA", 1500)
    member = await gateway.login(m(3))
    mine = (await gateway.execute(MINE, token=member))["data"]["viewer"]["creditRequests"]
    assert mine == {"totalCount": 1, "nodes": [{"amount": 1000, "status": "APPROVED", "answerNote": "Go ahead."}]}
    [mail] = [x for x in await mail_to(db, m(3)) if "request" in x["subject"]]
    assert mail["subject"] == "Your request for 1,000 cloud credits was approved"
    assert "quota of 1,500 credits" in mail["body"] and "Go ahead." in mail["body"]
    assert [dict(r) for r in await db.fetch(OWN_EVENTS)] == [{"type": "CREDIT_REQUEST_RESOLVED", "outcome": "APPROVED"}]
    assert await db.fetchval("SELECT count(*) FROM event_log WHERE type = 'CREDIT_ACCESS_CHANGED'") == 1
    pending = await gateway.execute(PENDING, token=admin)
    assert pending["data"]["viewer"]["organization"]["creditPool"]["pendingRequests"] == []
    [row] = await audit_rows(db, "credits.answer_request")
    assert (row["outcome"], row["actor"], row["details"]["outcome"]) == ("SUCCESS", f"admin@{NORTHWIND}", "APPROVED")


async def test_a_decline_changes_no_access_and_tells_the_member_why(gateway, db):
    owner = await gateway.login(f"owner@{NORTHWIND}")
    body = await decline(gateway, owner, note="  Not this quarter.  ")
    assert body["data"]["declineCreditRequest"]["request"]["status"] == "DECLINED", body
    assert await access_in_db(db, m(3)) == ("QUOTA", 500)
    [mail] = [x for x in await mail_to(db, m(3)) if "request" in x["subject"]]
    assert mail["subject"] == "Your request for 1,000 cloud credits was declined"
    assert "Not this quarter." in mail["body"]
    member = await gateway.login(m(3))
    mine = (await gateway.execute(MINE, token=member))["data"]["viewer"]["creditRequests"]["nodes"]
    assert mine == [{"amount": 1000, "status": "DECLINED", "answerNote": "Not this quarter."}]


async def test_a_request_is_answered_once_and_the_second_answer_changes_nothing(gateway, db):
    admin = await gateway.login(f"admin@{NORTHWIND}")
    assert (await decline(gateway, admin))["data"]["declineCreditRequest"]["userErrors"] == []
    body = await approve(gateway, admin, {"mode": "UNLIMITED"})
    payload = body["data"]["approveCreditRequest"]
    assert codes(payload) == [(["input", "requestId"], "ALREADY_ANSWERED")]
    assert "DECLINED" in payload["userErrors"][0]["message"] and payload["request"]["status"] == "DECLINED"
    assert await access_in_db(db, m(3)) == ("QUOTA", 500)


async def test_concurrent_answers_give_one_outcome(gateway, db):
    owner, admin = await gateway.login(f"owner@{NORTHWIND}"), await gateway.login(f"admin@{NORTHWIND}")
    answers = await asyncio.gather(*(
        approve(gateway, owner, {"mode": "QUOTA", "quota": 2000 + i}) if i % 2 else decline(gateway, admin, f"no {i}")
        for i in range(8)))
    payloads = [b["data"].get("approveCreditRequest") or b["data"]["declineCreditRequest"] for b in answers]
    won = [p for p in payloads if p["userErrors"] == []]
    assert len(won) == 1, payloads
    assert all(codes(p) == [(["input", "requestId"], "ALREADY_ANSWERED")] for p in payloads if p not in won)
    assert await outcome(db) == won[0]["request"]["status"]
    assert await db.fetchval("SELECT count(*) FROM event_log WHERE type = 'CREDIT_REQUEST_RESOLVED'") == 1
    assert len([x for x in await mail_to(db, m(3)) if "request" in x["subject"]]) == 1


@pytest.mark.parametrize("access, note, field", [
    ({"mode": "QUOTA"}, None, "quota"),
    ({"mode": "QUOTA", "quota": -1}, None, "quota"),
    ({"mode": "UNLIMITED", "quota": 5}, None, "quota"),
    ({"mode": "UNLIMITED"}, "x" * 1001, "note"),
])
async def test_a_bad_approval_is_refused_and_leaves_the_request_pending(gateway, db, access, note, field):
    admin = await gateway.login(f"admin@{NORTHWIND}")
    payload = (await approve(gateway, admin, access, note))["data"]["approveCreditRequest"]
    assert codes(payload) == [(["input", field], "INVALID")]
    assert payload["request"]["status"] == "PENDING"
    assert await outcome(db) is None
    assert await access_in_db(db, m(3)) == ("QUOTA", 500)
    assert [r["outcome"] for r in await audit_rows(db, "credits.answer_request")] == ["REFUSED"]


async def test_approving_for_someone_who_left_is_refused_but_declining_works(gateway, db):
    admin = await gateway.login(f"admin@{NORTHWIND}")
    await db.execute("DELETE FROM memberships m USING accounts a WHERE a.id = m.account_id AND a.email = $1", m(3))
    payload = (await approve(gateway, admin, {"mode": "UNLIMITED"}))["data"]["approveCreditRequest"]
    assert codes(payload) == [(["input", "requestId"], "NOT_IN_ORGANIZATION")]
    assert (await decline(gateway, admin, "You left."))["data"]["declineCreditRequest"]["userErrors"] == []


@pytest.mark.parametrize("who, code", [
    (None, "UNAUTHENTICATED"),
    (m(1), "FORBIDDEN"),  # a member of the organization, not its manager
    (m(3), "FORBIDDEN"),  # who asked cannot answer their own request
    ("admin@globex.example", "NOT_FOUND"),  # another organization's admin: as if it did not exist
    ("loner@example.com", "NOT_FOUND"),
])
async def test_only_the_organizations_managers_answer(gateway, db, who, code):
    if who == "loner@example.com":
        await add_account_without_organization(db, who)
    token = await gateway.login(who) if who else None
    for body in (await approve(gateway, token, {"mode": "UNLIMITED"}), await decline(gateway, token)):
        assert [e["extensions"]["code"] for e in body["errors"]] == [code], body
    assert await outcome(db) is None


@pytest.mark.parametrize("request_id", [
    to_base64("CloudCreditRequest", "00000000-0000-4000-8000-000000000000"), to_base64("Invoice", "x"), "%%%", ""])
async def test_an_unknown_or_malformed_request_id_is_not_found(gateway, request_id):
    admin = await gateway.login(f"admin@{NORTHWIND}")
    body = await decline(gateway, admin, request_id=request_id)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"], body


async def test_a_member_sees_only_their_own_requests_and_others_not_at_all(gateway):
    member1 = await gateway.login(m(1))
    await request_credits(gateway, member1, 50, "tests")
    mine = (await gateway.execute(MINE, token=member1))["data"]["viewer"]["creditRequests"]
    assert mine == {"totalCount": 1, "nodes": [{"amount": 50, "status": "PENDING", "answerNote": ""}]}
    # member3's request by id: theirs to see, not member1's.
    node = "query N($id: ID!) { node(id: $id) { ... on CloudCreditRequest { amount status } } }"
    assert (await gateway.execute(node, {"id": REQUEST_ID}, token=member1))["data"]["node"] is None
    member3 = await gateway.login(m(3))
    assert (await gateway.execute(node, {"id": REQUEST_ID}, token=member3))["data"]["node"] == {
        "amount": 1000, "status": "PENDING"}
