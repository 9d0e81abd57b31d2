"""A staff change needs a reason the customer can read in their audit log, and every refused
staff change is in that audit log too (issue 14, item 11)."""

from __future__ import annotations

import pytest

from tests.test_staff import (ADJUST, CHANGE_EMAIL, DEMO_INVITATION, EXTEND, GRANT, LUMEN, MEMBER1, NORTHWIND,
                              RESEND, gid, make_staff)

ADMIN_TOOLING = "tools@vendor.example"
# (mutation, its payload's name, input without the reason, the audit action it records)
STAFF_MUTATIONS = [
    (CHANGE_EMAIL, "changeAccountEmail", {"accountId": gid("Account", MEMBER1), "email": "x@example.com"},
     "account.email_change"),
    (GRANT, "grantCredits", {"organizationId": gid("Organization", NORTHWIND), "amount": 5}, "credits.grant"),
    (ADJUST, "adjustLicenseQuantity", {"licenseId": gid("License", LUMEN), "quantity": 50}, "license.quantity"),
    (EXTEND, "extendLicense", {"licenseId": gid("License", LUMEN), "expiresAt": "2099-01-01T00:00:00Z"},
     "license.extend"),
    (RESEND, "staffResendInvitation", {"invitationId": gid("Invitation", DEMO_INVITATION)}, "invitation.resend"),
]
BLANK_REASONS = {
    "zero-width space": "\u200b",
    "spaces and joiners": " \u200c\u200d\u2060 ",
    "byte order mark": "\ufeff",
    "no-break and ideographic spaces": "\u00a0\u3000",
    "line breaks and tabs": "\n\t\r\n",
    "soft hyphen": "\u00ad",
    "Hangul fillers and blank Braille": "\u3164\u2800\u115f\uffa0",
    "musical null notehead": "\U0001d159",
}


@pytest.fixture
async def tooling(gateway, db) -> str:
    await make_staff(db, "ADMIN_TOOLING", ADMIN_TOOLING)
    return await gateway.login(ADMIN_TOOLING)


async def _state(db) -> tuple:
    """What the staff mutations would change: email, grants, the license, the invitation, mail."""
    return tuple([await db.fetchval("SELECT email FROM accounts WHERE id = $1", MEMBER1),
                  await db.fetchval("SELECT count(*) FROM credit_grants"),
                  tuple(await db.fetchrow("SELECT quantity, expires_at FROM licenses WHERE id = $1", LUMEN)),
                  await db.fetchval("SELECT token_hash FROM invitations WHERE id = $1", DEMO_INVITATION),
                  await db.fetchval("SELECT count(*) FROM mail_outbox")])


@pytest.mark.parametrize("reason", BLANK_REASONS.values(), ids=BLANK_REASONS.keys())
async def test_a_reason_with_nothing_to_read_is_required_and_changes_nothing(gateway, tooling, db, reason):
    before = await _state(db)
    for query, payload, fields, _ in STAFF_MUTATIONS:
        body = await gateway.execute(query, {"input": {**fields, "reason": reason}}, token=tooling)
        assert "errors" not in body, body
        assert [(e["field"], e["code"]) for e in body["data"][payload]["userErrors"]] == [
            (["input", "reason"], "REQUIRED")], payload
    assert await _state(db) == before
    reasons = await db.fetch("SELECT reason FROM audit_log WHERE outcome = 'SUCCESS' AND reason IS NOT NULL")
    assert [r["reason"] for r in reasons] == []


async def test_a_reason_keeps_its_text_without_the_blanks_around_it(gateway, tooling, db):
    body = await gateway.execute(GRANT, {"input": {"organizationId": gid("Organization", NORTHWIND), "amount": 5,
                                                   "reason": "\u200b Goodwill: ticket 12 \u00e9\u0301\ufeff"}},
                                 token=tooling)
    assert body["data"]["grantCredits"]["userErrors"] == []
    assert await db.fetchval("SELECT reason FROM audit_log WHERE action = 'credits.grant'") == \
        "Goodwill: ticket 12 \u00e9\u0301"


@pytest.mark.parametrize("reason", ["ticket\x1b[31m 12", "ticket\x07 12"], ids=["escape", "bell"])
async def test_a_reason_with_control_characters_is_refused(gateway, tooling, db, reason):
    before = await _state(db)
    body = await gateway.execute(GRANT, {"input": {"organizationId": gid("Organization", NORTHWIND), "amount": 5,
                                                   "reason": reason}}, token=tooling)
    assert [e["code"] for e in body["data"]["grantCredits"]["userErrors"]] == ["INVALID"]
    assert await _state(db) == before


@pytest.mark.parametrize("query,payload,fields,action", STAFF_MUTATIONS, ids=[m[1] for m in STAFF_MUTATIONS])
async def test_every_refused_staff_change_is_in_the_organizations_audit_log(gateway, tooling, db, query, payload,
                                                                            fields, action):
    body = await gateway.execute(query, {"input": {**fields, "reason": "\u200b"}}, token=tooling)
    assert body["data"][payload]["userErrors"], body
    entries = await db.fetch("SELECT organization_id, outcome, scope FROM audit_log WHERE action = $1", action)
    assert [dict(e) for e in entries] == [{"organization_id": NORTHWIND, "outcome": "REFUSED",
                                           "scope": "ADMIN_TOOLING"}]
