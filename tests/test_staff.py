"""The vendor's staff over HTTP: who reaches `staff`, what staff read across organizations, and
the staff mutations, each with a reason that the affected organization sees in its audit log.

Staff are accounts with a staff role (`staff_roles`); here an account outside any organization,
signed in like everyone else. The demo's Northwind Lumen Render license has 10 seats, 4 taken.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from strawberry import relay

from datasources.postgres import staff
from gateway.demo import demo_id
from tests.provider_subscriptions import billed  # noqa: F401  (a fixture)

NORTHWIND = demo_id("organization", "northwind")
LUMEN = demo_id("license", "northwind", "LUMEN-RENDER")
ATLAS = demo_id("license", "northwind", "ATLAS-SCATTER")
DEMO_INVITATION = demo_id("invitation", "northwind")
MEMBER1 = demo_id("account", "member1@northwind.example")
AGENT = "agent@vendor.example"
USER_ERRORS = "userErrors { field message code }"

STAFF_EVERYTHING = """
query Staff($org: ID!) {
  staff {
    role
    accounts(search: "northwind", first: 2) { totalCount }
    organizations(search: "globex") { totalCount }
    organization(id: $org) { name }
    licensesExpiring(withinDays: 30) { totalCount }
    seatUtilization { totalCount }
    creditUsage(from: "2000-01-01T00:00:00Z", to: "2100-01-01T00:00:00Z") { totalCount }
  }
}
"""
CHANGE_EMAIL = f"""
mutation Change($input: ChangeAccountEmailInput!) {{
  changeAccountEmail(input: $input) {{ account {{ email }} sessionsEnded {USER_ERRORS} }}
}}
"""
GRANT = f"""
mutation Grant($input: GrantCreditsInput!) {{
  grantCredits(input: $input) {{ organization {{ creditPool {{ grants {{ amount source }} }} }} {USER_ERRORS} }}
}}
"""
ADJUST = f"""
mutation Adjust($input: AdjustLicenseQuantityInput!) {{
  adjustLicenseQuantity(input: $input) {{ license {{ quantity allocatedCount }} {USER_ERRORS} }}
}}
"""
EXTEND = f"""
mutation Extend($input: ExtendLicenseInput!) {{
  extendLicense(input: $input) {{ license {{ expiresAt status }} {USER_ERRORS} }}
}}
"""
RESEND = f"""
mutation Resend($input: StaffResendInvitationInput!) {{
  staffResendInvitation(input: $input) {{ invitation {{ email status }} {USER_ERRORS} }}
}}
"""
AUDIT_LOG = """
query Audit { viewer { organization { auditLog(first: 5) { nodes {
  action target actor { email } actorService reason scope outcome } } } } }
"""


def gid(type_name: str, raw: object) -> str:
    return relay.to_base64(type_name, str(raw))


async def make_staff(db, role: str, email: str = AGENT) -> None:
    """An account in no organization (with the demo password), holding a staff role."""
    account_id = uuid.uuid4()
    await db.execute("INSERT INTO accounts (id, email, name, password_hash) SELECT $1, $2, 'Sam Agent', password_hash"
                     " FROM accounts WHERE email = 'owner@globex.example'", account_id, email)
    async with db.transaction():
        await staff.grant_role(db, account_id, role)


@pytest.fixture
async def support(gateway, db) -> str:
    await make_staff(db, "SUPPORT")
    return await gateway.login(AGENT)


@pytest.fixture
async def billing(gateway, db) -> str:
    await make_staff(db, "BILLING", "billing@vendor.example")
    return await gateway.login("billing@vendor.example")


def codes(body: dict) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def test_support_changes_a_customers_email_and_both_addresses_and_the_organization_are_told(
        gateway, support, db):
    member_token = await gateway.login("member1@northwind.example")
    body = await gateway.execute(CHANGE_EMAIL, {"input": {
        "accountId": gid("Account", MEMBER1), "email": "Ada.New@Example.com", "reason": "Ticket 4711: new domain"}},
        token=support)
    assert "errors" not in body, body
    assert body["data"]["changeAccountEmail"] == {"account": {"email": "ada.new@example.com"},
                                                  "sessionsEnded": 1, "userErrors": []}
    mailed = {r["to_address"] for r in await db.fetch("SELECT to_address FROM mail_outbox WHERE subject LIKE"
                                                       " 'Your account''s email address was changed'")}
    assert mailed == {"member1@northwind.example", "ada.new@example.com"}
    # Every session of the account ended: its old token is anonymous now.
    assert codes(await gateway.execute("query Me { viewer { email } }", token=member_token)) == ["UNAUTHENTICATED"]

    admin = await gateway.login("admin@northwind.example")
    entry = (await gateway.execute(AUDIT_LOG, token=admin))["data"]["viewer"]["organization"]["auditLog"]["nodes"][0]
    assert entry == {"action": "account.email_change", "target": "ada.new@example.com", "actor": None,
                     "actorService": None, "reason": "Ticket 4711: new domain", "scope": "SUPPORT",
                     "outcome": "SUCCESS"}
    assert await db.fetchval("SELECT a.email FROM audit_log l JOIN accounts a ON a.id = l.actor_account_id"
                             " WHERE l.action = 'account.email_change'") == AGENT


async def test_a_staff_change_needs_a_reason_and_changes_nothing_without_one(gateway, support, db):
    body = await gateway.execute(CHANGE_EMAIL, {"input": {
        "accountId": gid("Account", MEMBER1), "email": "other@example.com", "reason": "  "}}, token=support)
    assert body["data"]["changeAccountEmail"]["userErrors"] == [
        {"field": ["input", "reason"], "message": body["data"]["changeAccountEmail"]["userErrors"][0]["message"],
         "code": "REQUIRED"}]
    assert await db.fetchval("SELECT email FROM accounts WHERE id = $1", MEMBER1) == "member1@northwind.example"
    assert await db.fetchval("SELECT count(*) FROM mail_outbox WHERE to_address = 'other@example.com'") == 0


async def test_an_email_of_another_account_is_refused(gateway, support, db):
    body = await gateway.execute(CHANGE_EMAIL, {"input": {
        "accountId": gid("Account", MEMBER1), "email": "owner@globex.example", "reason": "ticket"}}, token=support)
    assert body["data"]["changeAccountEmail"]["userErrors"][0]["code"] == "INVALID"
    assert await db.fetchval("SELECT email FROM accounts WHERE id = $1", MEMBER1) == "member1@northwind.example"


async def test_a_customer_admin_gets_forbidden_on_staff_and_on_every_staff_mutation(gateway):
    admin = await gateway.login("admin@northwind.example")
    body = await gateway.execute(STAFF_EVERYTHING, {"org": gid("Organization", NORTHWIND)}, token=admin)
    assert body["data"]["staff"] is None and codes(body) == ["FORBIDDEN"]
    for query, variables in [
        (CHANGE_EMAIL, {"accountId": gid("Account", MEMBER1), "email": "x@example.com", "reason": "r"}),
        (GRANT, {"organizationId": gid("Organization", NORTHWIND), "amount": 5, "reason": "r"}),
        (ADJUST, {"licenseId": gid("License", LUMEN), "quantity": 50, "reason": "r"}),
        (EXTEND, {"licenseId": gid("License", LUMEN), "expiresAt": "2099-01-01T00:00:00Z", "reason": "r"}),
        (RESEND, {"invitationId": gid("Invitation", DEMO_INVITATION), "reason": "r"}),
    ]:
        assert codes(await gateway.execute(query, {"input": variables}, token=admin)) == ["FORBIDDEN"], query
    assert codes(await gateway.execute(STAFF_EVERYTHING, {"org": gid("Organization", NORTHWIND)})) == ["FORBIDDEN"]


async def test_staff_search_and_read_any_organization_through_the_customers_types(gateway, support):
    body = await gateway.execute(STAFF_EVERYTHING, {"org": gid("Organization", NORTHWIND)}, token=support)
    assert "errors" not in body, body
    found = body["data"]["staff"]
    assert found["role"] == "SUPPORT"
    assert found["accounts"]["totalCount"] == 8  # Northwind's owner, admin and member1..6
    assert found["organizations"]["totalCount"] == 1
    assert found["organization"] == {"name": "Northwind Studio"}
    assert found["licensesExpiring"]["totalCount"] >= 2  # Atlas Scatter of each organization
    assert found["seatUtilization"]["totalCount"] >= 1

    org = await gateway.execute("""query Org($id: ID!) { staff { organization(id: $id) {
        members(first: 3) { totalCount } licenses { quantity allocatedCount allocations(first: 1) { totalCount } }
        auditLog(first: 1) { totalCount } } } }""", {"id": gid("Organization", NORTHWIND)}, token=support)
    assert "errors" not in org, org
    read = org["data"]["staff"]["organization"]
    assert read["members"]["totalCount"] >= 8
    assert any(lic["allocatedCount"] == 4 and lic["allocations"]["totalCount"] == 4 for lic in read["licenses"])


async def test_search_pages_at_most_100(gateway, support):
    body = await gateway.execute("query S { staff { accounts(first: 101) { totalCount } } }", token=support)
    assert codes(body) == ["BAD_USER_INPUT"]


async def test_quantity_below_the_allocated_seats_is_refused_and_nothing_changes(gateway, billing, db, billed):
    body = await gateway.execute(ADJUST, {"input": {"licenseId": gid("License", LUMEN), "quantity": 3,
                                                    "reason": "customer downsized"}}, token=billing)
    result = body["data"]["adjustLicenseQuantity"]
    assert result["license"] is None and [e["code"] for e in result["userErrors"]] == ["SEATS_ALLOCATED"]
    assert await db.fetchval("SELECT quantity FROM licenses WHERE id = $1", LUMEN) == 10
    refused = await db.fetchrow("SELECT outcome, scope, reason FROM audit_log WHERE action = 'subscription.seats'")
    assert dict(refused) == {"outcome": "REFUSED", "scope": "BILLING", "reason": "customer downsized"}

    # The provider bills these seats: fewer apply at the end of the period, as for the customer.
    body = await gateway.execute(ADJUST, {"input": {"licenseId": gid("License", LUMEN), "quantity": 4,
                                                    "reason": "customer downsized"}}, token=billing)
    assert body["data"]["adjustLicenseQuantity"] == {"license": {"quantity": 10, "allocatedCount": 4}, "userErrors": []}
    assert await db.fetchval("SELECT scheduled_seats FROM subscriptions WHERE id = $1",
                             demo_id("subscription", "northwind", "LUMEN-RENDER")) == 4
    assert (await billed.subscription(db)).scheduled_quantity == 4


async def test_billing_grants_credits_and_extends_a_license_but_cannot_change_emails(gateway, billing, db):
    body = await gateway.execute(GRANT, {"input": {"organizationId": gid("Organization", NORTHWIND), "amount": 500,
                                                   "reason": "goodwill", "idempotencyKey": "g-1"}}, token=billing)
    assert body["data"]["grantCredits"]["userErrors"] == []
    again = await gateway.execute(GRANT, {"input": {"organizationId": gid("Organization", NORTHWIND), "amount": 500,
                                                    "reason": "goodwill", "idempotencyKey": "g-1"}}, token=billing)
    assert again["data"]["grantCredits"]["userErrors"] == []
    assert await db.fetchval("SELECT count(*) FROM credit_grants WHERE source = 'VENDOR'") == 1

    later = datetime.now(timezone.utc) + timedelta(days=400)
    body = await gateway.execute(EXTEND, {"input": {"licenseId": gid("License", ATLAS), "expiresAt": later.isoformat(),
                                                    "reason": "renewal agreed by phone"}}, token=billing)
    assert body["data"]["extendLicense"]["license"]["status"] == "ACTIVE", body
    earlier = await gateway.execute(EXTEND, {"input": {"licenseId": gid("License", ATLAS),
                                                       "expiresAt": (later - timedelta(days=1)).isoformat(),
                                                       "reason": "oops"}}, token=billing)
    assert earlier["data"]["extendLicense"]["userErrors"][0]["code"] == "INVALID"

    forbidden = await gateway.execute(CHANGE_EMAIL, {"input": {"accountId": gid("Account", MEMBER1),
                                                               "email": "x@example.com", "reason": "r"}}, token=billing)
    assert codes(forbidden) == ["FORBIDDEN"]


async def test_support_resends_an_invitation_for_the_organization(gateway, support, db):
    body = await gateway.execute(RESEND, {"input": {"invitationId": gid("Invitation", DEMO_INVITATION),
                                                    "reason": "invitee lost the mail"}}, token=support)
    assert body["data"]["staffResendInvitation"] == {
        "invitation": {"email": "invitee@northwind.example", "status": "PENDING"}, "userErrors": []}
    assert await db.fetchval("SELECT count(*) FROM mail_outbox WHERE to_address = 'invitee@northwind.example'") == 1
    entry = await db.fetchrow("SELECT organization_id, scope, reason FROM audit_log WHERE action = 'invitation.resend'")
    assert dict(entry) == {"organization_id": NORTHWIND, "scope": "SUPPORT", "reason": "invitee lost the mail"}


async def test_a_revoked_staff_role_stops_working_on_the_next_request(gateway, support, db):
    assert (await gateway.execute("query R { staff { role } }", token=support))["data"]["staff"] == {"role": "SUPPORT"}
    account_id = await staff.account_id_by_email(db, AGENT)
    assert await staff.revoke_role(db, account_id) == "SUPPORT"
    assert codes(await gateway.execute("query R { staff { role } }", token=support)) == ["FORBIDDEN"]
