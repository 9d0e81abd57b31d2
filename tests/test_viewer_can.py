"""`Organization.viewerCan…`: a client asks what the viewer may read and change before it
selects, so a MEMBER's dashboard meets no FORBIDDEN error (and Apollo's default error policy
keeps the response). Each answer must be what the server then does."""

from __future__ import annotations

from pathlib import Path

import pytest
from strawberry import relay

from auth import access
from gateway.demo import demo_id
from tests.test_service_tokens import create_token
from tests.test_staff import make_staff

# Nothing here changes the database but by signing in, save where a test says otherwise.
pytestmark = pytest.mark.reads_only

MEMBER_DASHBOARD = (Path(__file__).resolve().parents[1] / "operations" / "member_dashboard.graphql").read_text()
NORTHWIND = relay.to_base64("Organization", demo_id("organization", "northwind"))
READS = {  # each viewerCanRead… and a field it answers for
    "viewerCanReadMembers": "members(first: 1) { totalCount }",
    "viewerCanReadAuditLog": "auditLog(first: 1) { totalCount }",
    "viewerCanReadLicenses": "licenses { id }",
    "viewerCanReadCredits": "creditPool { balance }",
    "viewerCanReadBilling": "invoices(first: 1) { totalCount }",
}
MANAGES = ("viewerCanManageMembers", "viewerCanManageLicenses", "viewerCanManageCredits", "viewerCanManageBilling")
ASKED = " ".join([*READS, *MANAGES])
INVITE = """mutation Invite($input: InviteMembersInput!) { inviteMembers(input: $input) { userErrors { code } } }"""
# Who is asked, and what each answers. Customers read through `viewer`, the others through `staff`.
EXPECTED_READS = {
    "MEMBER": set(),
    "ADMIN": set(READS),
    "OWNER": set(READS),
    "SUPPORT": {"viewerCanReadMembers", "viewerCanReadAuditLog", "viewerCanReadLicenses", "viewerCanReadCredits"},
    "BILLING": {"viewerCanReadLicenses", "viewerCanReadCredits", "viewerCanReadBilling"},
    "billing:read": {"viewerCanReadBilling"},
}


def _organization(body: dict, customer: bool) -> dict:
    return body["data"]["viewer" if customer else "staff"]["organization"]


async def _principals(gateway, db) -> dict[str, tuple[str, bool]]:
    """Token and whether it is a customer's, per principal."""
    await make_staff(db, "SUPPORT", "support@vendor.example")
    await make_staff(db, "BILLING", "billing@vendor.example")
    found = {role: (await gateway.login(f"{role.lower()}@northwind.example" if role != "MEMBER"
                                        else "member1@northwind.example"), True)
             for role in ("MEMBER", "ADMIN", "OWNER")}
    for role in ("SUPPORT", "BILLING"):
        found[role] = (await gateway.login(f"{role.lower()}@vendor.example"), False)
    found["billing:read"] = (await create_token(db, "finance-dashboard", "billing:read"), False)
    return found


def _asking(selection: str, customer: bool) -> tuple[str, dict]:
    if customer:
        return f"query Ask {{ viewer {{ organization {{ {selection} }} }} }}", {}
    return f"query Ask($org: ID!) {{ staff {{ organization(id: $org) {{ {selection} }} }} }}", {"org": NORTHWIND}


@pytest.mark.reads_only(False)  # it writes
async def test_viewer_can_answers_follow_the_access_table_for_every_kind_of_viewer(gateway, db):
    for principal, (token, customer) in (await _principals(gateway, db)).items():
        query, variables = _asking(ASKED, customer)
        body = await gateway.execute(query, variables, token=token)
        assert "errors" not in body, (principal, body)
        answers = _organization(body, customer)
        assert {f for f in READS if answers[f]} == EXPECTED_READS[principal], principal
        manager = principal in ("ADMIN", "OWNER")
        assert {f: answers[f] for f in MANAGES} == {f: manager for f in MANAGES}, principal


@pytest.mark.reads_only(False)  # it writes
async def test_each_read_answer_is_what_selecting_the_field_then_gets(gateway, db):
    for principal, (token, customer) in (await _principals(gateway, db)).items():
        for asked, selection in READS.items():
            query, variables = _asking(f"{asked} {selection}", customer)
            body = await gateway.execute(query, variables, token=token)
            forbidden = [e for e in body.get("errors", []) if e["extensions"]["code"] == "FORBIDDEN"]
            may = _organization(body, customer)[asked]
            assert may == (not forbidden), (principal, asked, body)


@pytest.mark.reads_only(False)  # it writes
async def test_the_manage_answer_is_what_a_mutation_then_gets(gateway):
    for email, manager in (("member1@northwind.example", False), ("admin@northwind.example", True)):
        token = await gateway.login(email)
        asked = await gateway.execute(*_asking("viewerCanManageMembers", True), token=token)
        assert _organization(asked, True)["viewerCanManageMembers"] is manager
        invited = await gateway.execute(INVITE, {"input": {"invitations": [
            {"email": "new-colleague@northwind.example", "role": "MEMBER"}]}}, token=token)
        codes = [e["extensions"]["code"] for e in invited.get("errors", [])]
        assert codes == ([] if manager else ["FORBIDDEN"]), invited


async def test_a_member_runs_the_member_dashboard_without_errors(gateway):
    token = await gateway.login("member1@northwind.example")
    body = await gateway.execute(MEMBER_DASHBOARD, token=token)
    assert "errors" not in body, body["errors"]
    viewer = body["data"]["viewer"]
    assert viewer["role"] == "MEMBER" and viewer["creditAccess"]["mode"] and viewer["licenses"]
    organization = viewer["organization"]
    assert organization["name"] == "Northwind Studio"
    assert not any(organization[f] for f in (*READS, *MANAGES))
    assert "members" not in organization and "invoices" not in organization


@pytest.mark.parametrize("email", ["member1@northwind.example", "admin@northwind.example", "owner@northwind.example"])
async def test_the_member_dashboard_with_its_own_answers_as_variables_never_errs(gateway, email):
    """The two-step pattern the README shows: ask first, then include what the answers allow."""
    token = await gateway.login(email)
    first = (await gateway.execute(MEMBER_DASHBOARD, token=token))["data"]["viewer"]["organization"]
    variables = {"people": first["viewerCanReadMembers"], "licenses": first["viewerCanReadLicenses"],
                 "credits": first["viewerCanReadCredits"], "billing": first["viewerCanReadBilling"]}
    body = await gateway.execute(MEMBER_DASHBOARD, variables, token=token)
    assert "errors" not in body, body["errors"]
    organization = body["data"]["viewer"]["organization"]
    manager = email != "member1@northwind.example"
    assert ("members" in organization and organization["members"]["totalCount"] > 1) == manager
    assert ("invoices" in organization) == manager
