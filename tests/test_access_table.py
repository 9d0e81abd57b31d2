"""The access table (`auth/access.py`), tried cell by cell against the running app over HTTP.

Each principal kind (anonymous, a MEMBER and an ADMIN of Northwind, each staff role, a service
token per scope) reaches each coordinate of the table with a query or mutation, and the answer
must be what the cell says: allowed (a value, no error there) or refused (FORBIDDEN at the
field, null for an object, FORBIDDEN for a mutation, UNAUTHENTICATED for anonymous where the
row is for accounts). The cells are generated from the table, so a row or column added there
is tried here. One app and one set of principals serve the module: the reads change nothing,
and each mutation is sent so that an allowed principal changes nothing either: a staff mutation
names a target that does not exist (NOT_FOUND, learned only after authorization); a customer's
mutation names a real target of Northwind (so that a MEMBER is refused there rather than told
NOT_FOUND) with an input refused after authorization (a user error) or a part that does not
exist. `logout` gets a session of its own for each principal it allows.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from graphql import GraphQLObjectType
from strawberry import relay

from auth import access
from datasources.postgres import audit
from datasources.postgres import events as events_log
from gateway.app import create_app
from gateway.demo import demo_id
from resolvers.events import publish
from resolvers.live import cursor_of
from schema import build_schema
from tests.asgi_websocket import first_answer
from tests.conftest import Gateway, copy_template, drop_database, settings_for
from tests.test_service_tokens import create_token
from tests.test_staff import make_staff

README = Path(__file__).resolve().parents[1] / "README.md"
NORTHWIND = demo_id("organization", "northwind")
MEMBER_EMAIL, ADMIN_EMAIL = "member1@northwind.example", "admin@northwind.example"
STAFF_EMAILS = {"SUPPORT": "support@vendor.example", "BILLING": "billing@vendor.example",
                "ADMIN_TOOLING": "tools@vendor.example"}
# Objects of Northwind that MEMBER (member1) neither is nor holds: they see none of them.
OBJECTS = {
    "Account": ("Account", demo_id("account", "member2@northwind.example")),
    "Member": ("Member", f"a.{demo_id('account', 'member2@northwind.example')}"),
    "Invitation": ("Invitation", demo_id("invitation", "northwind")),
    "License": ("License", demo_id("license", "northwind", "VAPOR-FX")),
    "LicenseAllocation": ("LicenseAllocation", f"{demo_id('license', 'northwind', 'LUMEN-RENDER')}:"
                                               f"{demo_id('account', 'owner@northwind.example')}"),
    "Subscription": ("Subscription", demo_id("subscription", "northwind", "LUMEN-RENDER")),
    "CloudCredit": ("CloudCredit", demo_id("grant", "northwind", "annual")),
    "CloudCreditUsage": ("CloudCreditUsage", demo_id("usage", "northwind", "1", "0")),
    "CloudCreditRequest": ("CloudCreditRequest", demo_id("credit-request", "northwind")),
}
# Lumen Render: 4 seats, one of them member1's, who sees only that one.
LUMEN = demo_id("license", "northwind", "LUMEN-RENDER")
LUMEN_SEATS = 4
# What each Organization field is asked for.
ORGANIZATION_FIELDS = {
    "pendingOwnershipTransfer": "pendingOwnershipTransfer { expiresAt }",  # the fixture asks for one
    "members": "members(first: 1) { totalCount nodes { email } }",
    "invitations": "invitations(first: 1) { totalCount nodes { email } }",
    "auditLog": "auditLog(first: 1) { totalCount }",
    "licenses": "licenses { quantity }",
    "subscriptions": "subscriptions { status }",
    "creditPool": "creditPool { balance }",
    "invoices": "invoices(first: 1) { totalCount }",
    "outstandingBalance": "outstandingBalance { amount currency }",
    "paymentMethods": "paymentMethods { last4 }",
    "billingInfo": "billingInfo { company billingEmail }",
    "invoicesArchiveUrl": 'invoicesArchiveUrl(from: "2000-01-01", to: "2000-12-31")',
    "corporateSignIn": "corporateSignIn { issuer clientId }",  # the fixture sets it up
    "scimTokens": "scimTokens { name }",
}
STAFF_FIELDS = {
    "organizations": "organizations(first: 1) { totalCount nodes { id name } }",
    "organization": "organization(id: $org) { id name }",
    "accounts": "accounts(first: 1) { totalCount nodes { email } }",
    "licensesExpiring": "licensesExpiring(withinDays: 30) { totalCount }",
    "seatUtilization": "seatUtilization { totalCount }",
    "creditUsage": 'creditUsage(from: "2000-01-01T00:00:00Z", to: "2100-01-01T00:00:00Z") { totalCount }',
    "organizationsWithOutstandingBalance": "organizationsWithOutstandingBalance(first: 1) { totalCount }",
}
# Each staff mutation with an input naming a target that does not exist.
MUTATIONS = {
    "changeAccountEmail": {"accountId": ("Account",), "email": "nobody@example.com"},
    "staffResendInvitation": {"invitationId": ("Invitation",)},
    "grantCredits": {"organizationId": ("Organization",), "amount": 10},
    "extendLicense": {"licenseId": ("License",), "expiresAt": "2099-01-01T00:00:00Z"},
    "adjustLicenseQuantity": {"licenseId": ("License",), "quantity": 5},
    "staffTransferOwnership": {"organizationId": ("Organization",), "accountId": ("Account",)},
    "confirmEmailDomain": {"organizationId": ("Organization",), "domain": "northwind.example"},
    "rejectEmailDomain": {"organizationId": ("Organization",), "domain": "northwind.example"},
}
OWNER = demo_id("account", "owner@northwind.example")
LUMEN_SUBSCRIPTION = demo_id("subscription", "northwind", "LUMEN-RENDER")
CREDIT_REQUEST = demo_id("credit-request", "northwind")
REVOKED_INVITATION = uuid.UUID("0ac7e55e-0000-4000-8000-000000000001")  # made by the fixture
# Each customer mutation, as the module's docstring says. A value ("Type", id) is that global ID,
# ("Type",) one that names nothing.
CUSTOMER_MUTATIONS: dict[str, dict[str, Any]] = {
    "inviteMembers": {"organizationId": ("Organization", NORTHWIND), "invitations": []},
    "resendInvitation": {"invitationId": ("Invitation", REVOKED_INVITATION)},
    "revokeInvitation": {"invitationId": ("Invitation", REVOKED_INVITATION)},
    "removeMember": {"accountId": ("Account", OWNER)},
    "changeMemberRole": {"accountId": ("Account", OWNER), "role": "MEMBER"},
    # Each refused as a whole (an empty file, empty lists): nothing changes.
    "importMembers": {"csv": ""},
    "removeMembers": {"accountIds": []},
    "changeMemberRoles": {"changes": []},
    # The manager probing is the ADMIN, not the OWNER: each is refused with a user error.
    "transferOwnership": {"accountId": ("Account", OWNER)},
    "cancelOwnershipTransfer": {},
    "acceptOwnership": {"token": "not-a-token"},
    # Malformed throughout: refused before the provider is asked, nothing changes.
    "configureSignIn": {"issuer": "", "clientId": "", "domains": []},
    # The manager probing is the ADMIN: only the OWNER makes SCIM tokens (NOT_ALLOWED); a token
    # that does not exist is looked up in the viewer's organization, after authorization (NOT_FOUND).
    "createScimToken": {"name": "access table"},
    "revokeScimToken": {"tokenId": ("ScimToken",)},
    "allocateLicense": {"licenseId": ("License", LUMEN), "accountIds": []},
    "revokeLicense": {"licenseId": ("License", LUMEN), "accountIds": []},
    "setCreditAccess": {"accountIds": [], "mode": "UNLIMITED"},
    "requestCredits": {"amount": 0},
    # The demo's pending request, each answer with input it refuses: nothing changes.
    "approveCreditRequest": {"requestId": ("CloudCreditRequest", CREDIT_REQUEST), "access": {"mode": "QUOTA"}},
    "declineCreditRequest": {"requestId": ("CloudCreditRequest", CREDIT_REQUEST), "note": "x" * 1001},
    # No alert is set: switching it off changes nothing.
    "setCreditPoolAlert": {"threshold": None},
    # The fixture switches it on: switching it on again changes nothing.
    "setSubscriptionAutoRenew": {"subscriptionId": ("Subscription", LUMEN_SUBSCRIPTION), "autoRenew": True},
    # A dry run at the current count: the provider is only asked for a preview.
    "changeSeatQuantity": {"subscriptionId": ("Subscription", LUMEN_SUBSCRIPTION), "quantity": 10, "dryRun": True},
    "payInvoice": {"invoiceId": ("Invoice",), "idempotencyKey": "access-table"},
    "payOutstandingBalance": {"currency": "--", "idempotencyKey": "access-table"},
    "addPaymentMethod": {"paymentMethodToken": "not-a-token"},
    "setDefaultPaymentMethod": {"paymentMethodId": ("PaymentMethod",)},
    "removePaymentMethod": {"paymentMethodId": ("PaymentMethod",)},
    "updateBillingInfo": {"billingEmail": "not-an-email"},
    "updateProfile": {"email": "someone-else@example.com"},
    "changePassword": {"currentPassword": "not-the-password", "newPassword": "a-new-password-9"},
    "updateNotificationPreferences": {"mail": []},
    "logout": {"allSessions": False},
    "login": {"email": "", "password": ""},
    "refreshToken": {"refreshToken": ""},
    "completeSignIn": {"code": ""},
    "acceptInvitation": {"token": "", "password": ""},
}
# Allowed, it ends the session of the token it is sent with.
OWN_SESSION = {"logout"}
CUSTOMERS = {access.MEMBER: MEMBER_EMAIL, access.MANAGER: ADMIN_EMAIL}
ACCOUNTS = {**CUSTOMERS, **STAFF_EMAILS}


def gid(type_name: str, raw: object) -> str:
    return relay.to_base64(type_name, str(raw))


@dataclass(frozen=True)
class World:
    gateway: Gateway
    tokens: dict[str, str | None]  # per principal kind
    objects: dict[str, tuple[str, object]]  # OBJECTS and an audit log entry
    app: Any = None  # for the subscriptions, spoken to over an in-process WebSocket
    # A cursor just before one event of each area of Northwind and one own event per account:
    # whoever may follow a subscription gets its backlog's first event at once.
    events_after: str = ""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(services, tmp_path_factory, executor: str) -> AsyncIterator[World]:
    name = await copy_template(services)
    dsn = services.dsn(name)
    try:
        db = await asyncpg.connect(dsn)
        try:
            for role, email in STAFF_EMAILS.items():
                await make_staff(db, role, email)
            tokens: dict[str, str | None] = {access.ANONYMOUS: None}
            for scope in access.PRINCIPALS[len(access.CUSTOMER_KINDS) + len(STAFF_EMAILS):]:
                tokens[scope] = await create_token(db, "only-" + scope.replace(":", "-"), scope)
            # Northwind's audit log holds one entry to look up by id.
            await audit.record(db, organization_id=NORTHWIND, actor_account_id=None, action="test.entry",
                               target=None)
            objects = {**OBJECTS, "AuditLogEntry": ("AuditLogEntry", await db.fetchval(
                "SELECT id FROM audit_log WHERE action = 'test.entry'"))}
            await db.execute("INSERT INTO invitations (id, organization_id, email, role, token_hash, expires_at, "
                             "revoked_at) VALUES ($1, $2, 'revoked@example.com', 'MEMBER', $3, now() + interval "
                             "'7 days', now())", REVOKED_INVITATION, NORTHWIND, uuid.uuid4().bytes)
            await db.execute("UPDATE subscriptions SET auto_renew = true WHERE id = $1", LUMEN_SUBSCRIPTION)
            await db.execute("INSERT INTO ownership_transfers (id, organization_id, from_account_id, to_account_id,"
                             " token_hash, expires_at) VALUES ($1, $2, $3, $4, $5, now() + interval '7 days')",
                             uuid.uuid4(), NORTHWIND, OWNER, demo_id("account", ADMIN_EMAIL), uuid.uuid4().bytes)
            await db.execute("INSERT INTO sign_in_configs (organization_id, issuer, client_id, client_secret)"
                             " VALUES ($1, 'https://login.northwind.example', 'gateway', 'secret')", NORTHWIND)
            events_after = await _events_for_the_subscriptions(db)
        finally:
            await db.close()
        app = create_app(settings_for(services, dsn, tmp_path_factory.mktemp("access"), executor))
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://gateway.test") as http:
                gateway = Gateway(http)
                for kind, email in ACCOUNTS.items():
                    tokens[kind] = await gateway.login(email)
                yield World(gateway, tokens, objects, app, events_after)
    finally:
        await drop_database(services, name)


# --- the probes: one request per cell ------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    query: str
    variables: dict[str, Any]
    path: tuple[str | int, ...]  # where the coordinate's value is in `data`
    # Whether the principal reaches the parent of that value, so a refusal must be at the value
    # itself; otherwise it comes higher up (anonymous at `viewer`, a write scope at `staff`).
    parent_reached: bool
    kind: str  # "field", "object", "mutation", "seats"
    # False where the table allows the principal a field it never reaches: the customers' rows
    # hold in their own organization, and `staff` (across organizations) is not for them.
    reachable: bool = True


def _is_customer(kind: str) -> bool:
    return kind in access.CUSTOMER_KINDS


def _organization_field(kind: str, field: str, selection: str, tail: tuple = ()) -> Probe:
    """`viewer.organization` for a customer, `staff.organization(id:)` for the others; with a
    `tail`, the value is further down in what `field` holds."""
    if _is_customer(kind):
        reached = kind in CUSTOMERS
        path = ("viewer", "organization", field, *tail)
        query = f"query P {{ viewer {{ organization {{ {selection} }} }} }}"
        variables = {}
    else:
        reached = access.allows({kind}, "Staff.organization")
        path = ("staff", "organization", field, *tail)
        query = f"query P($org: ID!) {{ staff {{ organization(id: $org) {{ {selection} }} }} }}"
        variables = {"org": gid("Organization", NORTHWIND)}
    if tail:
        reached = reached and access.allows({kind}, f"Organization.{field}")
    return Probe(query, variables, path, reached, "field")


def _mutation(coordinate: str, fields: dict[str, Any]) -> Probe:
    values = {k: gid(v[0], v[1] if len(v) > 1 else uuid.uuid4()) if isinstance(v, tuple) else v
              for k, v in fields.items()}
    name = coordinate[0].upper() + coordinate[1:]
    return Probe(f"mutation M($input: {name}Input!) {{ {coordinate}(input: $input) {{ userErrors {{ code }} }} }}",
                 {"input": values}, (coordinate,), True, "mutation")


def probe(kind: str, coordinate: str, objects: dict[str, tuple[str, object]]) -> Probe:
    if coordinate in MUTATIONS:
        return _mutation(coordinate, {**MUTATIONS[coordinate], "reason": "access table test"})
    if coordinate in CUSTOMER_MUTATIONS:
        return _mutation(coordinate, CUSTOMER_MUTATIONS[coordinate])
    if coordinate in objects:
        type_name, raw = objects[coordinate]
        return Probe("query P($id: ID!) { node(id: $id) { id } }", {"id": gid(type_name, raw)}, ("node",), True,
                     "object")
    type_name, _, field = coordinate.partition(".")
    if coordinate == "Query.staff":
        return Probe("query P { staff { role service } }", {}, ("staff",), True, "field")
    if type_name == "Staff":
        selection = STAFF_FIELDS[field]
        uses_org = "$org" in selection
        return Probe(f"query P{'($org: ID!)' if uses_org else ''} {{ staff {{ {selection} }} }}",
                     {"org": gid("Organization", NORTHWIND)} if uses_org else {}, ("staff", field),
                     access.allows({kind}, "Query.staff"), "field", reachable=access.allows({kind}, "Query.staff"))
    if type_name == "Organization":
        return _organization_field(kind, field, ORGANIZATION_FIELDS[field])
    if coordinate == "Invoice.pdfUrl":
        return _organization_field(kind, "invoices", "invoices(first: 1) { nodes { pdfUrl } }", ("nodes", 0, "pdfUrl"))
    if coordinate == "OrganizationBalance.outstandingBalance":
        return Probe("query P { staff { organizationsWithOutstandingBalance(first: 1) { nodes { outstandingBalance "
                     "{ amount } } } } }", {}, ("staff", "organizationsWithOutstandingBalance", "nodes", 0,
                                               "outstandingBalance"), False, "field",
                     reachable=access.allows({kind}, "Query.staff"))
    if coordinate == "License.allocations":
        return Probe("query P($id: ID!) { node(id: $id) { ... on License { allocations(first: 100) { totalCount } } } }",
                     {"id": gid("License", LUMEN)}, ("node", "allocations", "totalCount"), True, "seats")
    raise AssertionError(f"no probe for {coordinate}: add one")


CELLS = [(kind, coordinate) for coordinate in access.ROW_OF for kind in access.PRINCIPALS
         if not coordinate.startswith("SubscriptionRoot.")]
SUBSCRIPTION_CELLS = [(kind, coordinate) for coordinate in access.ROW_OF for kind in access.PRINCIPALS
                      if coordinate.startswith("SubscriptionRoot.")]


def _at(data: Any, path: tuple) -> Any:
    for step in path:
        if data is None:
            return None
        data = data[step]
    return data


def _codes_above(body: dict, path: tuple) -> list[tuple[tuple, str]]:
    """(path, code) of the errors at `path` or above it."""
    found = []
    for error in body.get("errors", []):
        at = tuple(error.get("path") or ())
        if at == path[:len(at)]:
            found.append((at, error["extensions"]["code"]))
    return found


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("kind", "coordinate"), CELLS, ids=[f"{c}-{k}" for k, c in CELLS])
async def test_every_cell_of_the_access_table_over_http(world: World, kind: str, coordinate: str):
    sent = probe(kind, coordinate, world.objects)
    allowed = access.allows({kind}, coordinate) and sent.reachable
    token = world.tokens[kind]
    if allowed and coordinate in OWN_SESSION and kind in ACCOUNTS:
        token = await world.gateway.login(ACCOUNTS[kind])
    response = await world.gateway.post(sent.query, sent.variables, token=token)
    assert response.status_code == 200, response.text
    body = response.json()
    errors = _codes_above(body, sent.path)
    value = _at(body.get("data"), sent.path)
    if sent.kind == "mutation":
        # Authorized first: an allowed principal gets as far as the missing target (NOT_FOUND) or
        # the input (user errors, or nothing to change).
        if not allowed:
            assert errors == [(sent.path, access.refused_as({kind}, coordinate))], body
        elif coordinate in MUTATIONS:
            assert errors == [(sent.path, "NOT_FOUND")], body
        else:
            assert errors in ([], [(sent.path, "NOT_FOUND")]), body
            assert errors or value is not None, body
    elif sent.kind == "object":
        # Refused exactly as an ID that does not exist (anonymous: UNAUTHENTICATED, as for any ID).
        assert (value is not None) == allowed, body
        assert errors == [] if allowed else all(code == "UNAUTHENTICATED" for _, code in errors), body
    elif sent.kind == "seats":
        # Refused, a viewer sees at most their own seat (member1 holds one), never all of them.
        assert errors == [] or not allowed, body
        assert (value == LUMEN_SEATS) == allowed, body
    elif allowed:
        assert errors == [] and value is not None, body
    else:
        assert value is None and errors, body
        if sent.parent_reached:
            assert errors == [(sent.path, "FORBIDDEN")], body
        else:
            assert all(code in ("FORBIDDEN", "UNAUTHENTICATED") for _, code in errors), body


# --- the table itself --------------------------------------------------------------------


def test_the_readme_shows_the_table_the_code_applies():
    text = README.read_text()
    start = text.index("<!-- access-table")
    start = text.index("\n", start) + 1
    end = text.index("<!-- /access-table -->")
    assert text[start:end] == access.markdown(), "run `python -m auth.access` and paste it into the README"


def test_every_coordinate_of_the_table_is_in_the_schema():
    schema = build_schema()._schema
    missing = []
    for coordinate in access.ROW_OF:
        type_name, _, field = coordinate.partition(".")
        if not field:
            found = schema.type_map.get(coordinate) or schema.mutation_type.fields.get(coordinate)
        else:
            type_ = schema.type_map.get(type_name)
            found = isinstance(type_, GraphQLObjectType) and field in type_.fields
        if not found:
            missing.append(coordinate)
    assert missing == []


def test_every_mutation_is_in_exactly_one_row_and_has_a_probe():
    """So that no mutation is added without deciding who may run it. (A coordinate in two rows
    stops `auth.access` from loading at all.)"""
    mutations = set(build_schema()._schema.mutation_type.fields)
    in_rows = [c for row in access.ROWS for c in row.coordinates if c in mutations]
    assert sorted(in_rows) == sorted(mutations)
    assert set(MUTATIONS) | set(CUSTOMER_MUTATIONS) == mutations and not set(MUTATIONS) & set(CUSTOMER_MUTATIONS)


def test_every_staff_mutation_takes_a_reason_and_no_customer_mutation_is_for_staff_or_services():
    """Staff mutations are those that take a `reason` (the audit log shows it to the customer);
    the customers' own are for accounts, so staff and services change a customer's organization
    only through the staff mutations, and a service token, no one's account, runs none of them."""
    schema = build_schema()._schema
    with_reason = {name for name in schema.mutation_type.fields
                   if "reason" in schema.type_map[f"{name[0].upper()}{name[1:]}Input"].fields}
    assert with_reason == set(MUTATIONS)
    vendor = set(access.STAFF_ROLES) | set(access.SCOPES)
    for coordinate in CUSTOMER_MUTATIONS:
        row = access.ROW_OF[coordinate]
        if row.name == "signing in":  # the credential is in the input, whoever sends it
            continue
        assert row.sign_in, coordinate
        assert row.allowed & set(access.SCOPES) == set(), coordinate
        if row.name != "own account":
            assert row.allowed & vendor == set(), coordinate


# --- the defects the table closed, as a user met them ----------------------------------------

BILLING_OF_AN_ORGANIZATION = """
query Billing($org: ID!) { staff { organization(id: $org) {
  name
  invoices(first: 1) { totalCount nodes { number pdfUrl } }
  outstandingBalance { amount }
  paymentMethods { last4 }
  billingInfo { company vatId }
  invoicesArchiveUrl(from: "2000-01-01", to: "2000-12-31")
} } }
"""
PEOPLE_OF_AN_ORGANIZATION = """
query People($org: ID!, $account: ID!) {
  staff { organization(id: $org) { name members(first: 5) { nodes { email } } } }
  node(id: $account) { ... on Account { email } }
}
"""
BILLING_FIELDS = ("invoices", "outstandingBalance", "paymentMethods", "billingInfo", "invoicesArchiveUrl")


def _forbidden_at(body: dict) -> set[str]:
    return {str(e["path"][-1]) for e in body.get("errors", []) if e["extensions"]["code"] == "FORBIDDEN"}


@pytest.mark.asyncio(loop_scope="module")
async def test_an_accounts_read_token_reads_no_invoices_cards_billing_details_or_balances(world: World):
    body = await world.gateway.execute(BILLING_OF_AN_ORGANIZATION, {"org": gid("Organization", NORTHWIND)},
                                       token=world.tokens["accounts:read"])
    read = body["data"]["staff"]["organization"]
    assert read["name"] == "Northwind Studio"
    assert all(read[field] is None for field in BILLING_FIELDS), read
    assert _forbidden_at(body) == set(BILLING_FIELDS)
    balances = await world.gateway.execute(
        "query B { staff { organizationsWithOutstandingBalance(first: 5) { nodes { outstandingBalance { amount } } } } }",
        token=world.tokens["accounts:read"])
    assert balances["data"] == {"staff": None} and _forbidden_at(balances) == {"organizationsWithOutstandingBalance"}


@pytest.mark.asyncio(loop_scope="module")
async def test_a_billing_read_token_reads_no_account_or_member_email(world: World):
    token = world.tokens["billing:read"]
    body = await world.gateway.execute(PEOPLE_OF_AN_ORGANIZATION, {
        "org": gid("Organization", NORTHWIND), "account": gid("Account", demo_id("account", MEMBER_EMAIL))},
        token=token)
    assert body["data"] == {"staff": {"organization": {"name": "Northwind Studio", "members": None}}, "node": None}
    assert _forbidden_at(body) == {"members"}
    search = await world.gateway.execute("query S { staff { accounts(search: \"northwind\") { nodes { email } } } }",
                                         token=token)
    assert search["data"] == {"staff": None} and _forbidden_at(search) == {"accounts"}
    # It still reads what it is for: the organization's billing.
    billing = await world.gateway.execute(BILLING_OF_AN_ORGANIZATION, {"org": gid("Organization", NORTHWIND)},
                                          token=token)
    assert "errors" not in billing, billing


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("kind", access.PRINCIPALS)
async def test_pdf_links_and_the_archive_link_go_to_the_same_principals(world: World, kind: str):
    """Both links open invoices without a token: whoever gets one gets the other, and no one else."""
    customer = _is_customer(kind)
    query = (BILLING_OF_AN_ORGANIZATION.replace("query Billing($org: ID!) { staff { organization(id: $org) {",
                                                "query Billing { viewer { organization {")
             if customer else BILLING_OF_AN_ORGANIZATION)
    body = await world.gateway.execute(query, {} if customer else {"org": gid("Organization", NORTHWIND)},
                                       token=world.tokens[kind])
    read = _at(body.get("data"), ("viewer" if customer else "staff", "organization")) or {}
    invoices = read.get("invoices")
    pdf = invoices["nodes"][0]["pdfUrl"] if invoices else None
    archive = read.get("invoicesArchiveUrl")
    expected = kind == access.MANAGER or (not customer and access.allows({kind}, "Query.staff")
                                           and access.allows({kind}, "Organization.invoicesArchiveUrl"))
    assert (pdf is not None, archive is not None) == (expected, expected), body
    if pdf is not None and kind == "BILLING":
        # Minted for staff, the link opens the invoice of the organization it was listed for.
        response = await world.gateway.http.get(pdf)
        assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"


# --- the subscriptions, over the WebSocket transport --------------------------------------


async def _events_for_the_subscriptions(db: asyncpg.Connection) -> str:
    """One organization event of each area (people, entitlements, billing) and one own event per
    account; the cursor of the event before them."""
    before = await events_log.last_id(db)
    async with db.transaction():
        await publish(db, "MEMBER_ROLE_CHANGED", organization_id=NORTHWIND, data={
            "account_id": str(demo_id("account", "member2@northwind.example")), "old_role": "MEMBER",
            "new_role": "ADMIN"})
        await publish(db, "LICENSE_QUANTITY_CHANGED", organization_id=NORTHWIND, data={
            "license_id": str(LUMEN), "old_quantity": 10, "new_quantity": 11})
        await publish(db, "INVOICE_PAID", organization_id=NORTHWIND, data={
            "invoice_id": "in_none", "amount_paid": 100, "currency": "usd"})
        for email in ACCOUNTS.values():
            account_id = await db.fetchval("SELECT id FROM accounts WHERE email = $1", email)
            await publish(db, "CREDIT_ACCESS_CHANGED", account_id=account_id, data={"account_id": str(account_id)})
    return cursor_of(events_log.Event(before, "", None, None, None, {}, datetime.now(timezone.utc)))


SUBSCRIPTION_PROBES = {
    "SubscriptionRoot.organizationEvents": "subscription S($org: ID, $after: String) { organizationEvents("
                                           "organizationId: $org, after: $after) { id type } }",
    "SubscriptionRoot.viewerEvents": "subscription S($after: String) { viewerEvents(after: $after) { id type } }",
}


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("kind", "coordinate"), SUBSCRIPTION_CELLS, ids=[f"{c}-{k}" for k, c in SUBSCRIPTION_CELLS])
async def test_every_subscription_cell_of_the_access_table_over_websocket(world: World, kind: str, coordinate: str):
    """Allowed: the backlog's first event. Refused: an `error` with the query's code; anonymous
    never gets as far as subscribing (4401 at connection_init: the rows are for those who sign in)."""
    variables = {"after": world.events_after}
    if coordinate == "SubscriptionRoot.organizationEvents":
        variables["org"] = gid("Organization", NORTHWIND)
    answer, payload = await first_answer(world.app, world.tokens[kind], SUBSCRIPTION_PROBES[coordinate], variables)
    if access.allows({kind}, coordinate):
        assert answer == "next" and payload.get("errors") is None, payload
    elif kind == access.ANONYMOUS:
        assert (answer, payload) == ("close", 4401)
    else:
        assert answer == "error" and [e["extensions"]["code"] for e in payload] == ["FORBIDDEN"], payload
