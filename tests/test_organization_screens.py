"""What an admin sees on the portal's screens: members, licenses, subscriptions, products."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest

# Nothing here changes the database but by signing in, save where a test says otherwise.
pytestmark = pytest.mark.reads_only

MEMBERS = """
query($first: Int, $after: String, $last: Int, $before: String, $search: String, $role: OrganizationRole,
      $product: ID) {
  viewer { organization { members(first: $first, after: $after, last: $last, before: $before, search: $search,
                                  role: $role, product: $product) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { email role status joinedAt invitedAt account { email } } } } } }
}
"""


async def members(gateway, token, **variables):
    body = await gateway.execute(MEMBERS, variables, token=token)
    assert "errors" not in body, body.get("errors")
    return body["data"]["viewer"]["organization"]["members"]


@pytest.fixture
async def admin(gateway):
    return await gateway.login("admin@northwind.example")


async def test_member_list_shows_members_and_pending_invitees(gateway, admin):
    found = await members(gateway, admin)
    people = {e["node"]["email"]: e["node"] for e in found["edges"]}
    assert found["totalCount"] == 9 and len(people) == 9
    assert people["invitee@northwind.example"]["status"] == "INVITED"
    assert people["invitee@northwind.example"]["account"] is None
    assert people["invitee@northwind.example"]["invitedAt"] is not None
    assert people["owner@northwind.example"] == {
        **people["owner@northwind.example"], "role": "OWNER", "status": "ACTIVE",
        "account": {"email": "owner@northwind.example"}, "invitedAt": None}
    assert [e["node"]["email"] for e in found["edges"]] == sorted(people)


async def test_member_list_pages_forward_and_back_by_cursor(gateway, admin):
    everyone = [e["node"]["email"] for e in (await members(gateway, admin))["edges"]]
    seen, after = [], None
    while True:
        page = await members(gateway, admin, first=4, after=after)
        assert page["totalCount"] == 9
        seen += [e["node"]["email"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == everyone
    last = await members(gateway, admin, last=3)
    assert [e["node"]["email"] for e in last["edges"]] == everyone[-3:]
    assert last["pageInfo"]["hasPreviousPage"] is True
    before = await members(gateway, admin, last=2, before=last["pageInfo"]["startCursor"])
    assert [e["node"]["email"] for e in before["edges"]] == everyone[-5:-3]


async def test_member_search_by_email_name_and_role(gateway, admin):
    by_email = await members(gateway, admin, search="member3@")
    assert [e["node"]["email"] for e in by_email["edges"]] == ["member3@northwind.example"]
    by_name = await members(gateway, admin, search="fischer")  # Lena Fischer, member1
    assert [e["node"]["email"] for e in by_name["edges"]] == ["member1@northwind.example"]
    by_role_word = await members(gateway, admin, search="admin")
    assert {e["node"]["email"] for e in by_role_word["edges"]} == {"admin@northwind.example"}
    admins = await members(gateway, admin, role="OWNER")
    assert [e["node"]["email"] for e in admins["edges"]] == ["owner@northwind.example"]
    nothing = await members(gateway, admin, search="%")  # a wildcard is matched literally
    assert nothing["totalCount"] == 0


async def test_member_list_filters_by_product_held(gateway, admin):
    body = await gateway.execute("{ products { id sku } }", token=admin)
    atlas = next(p["id"] for p in body["data"]["products"] if p["sku"] == "ATLAS-SCATTER")
    holders = await members(gateway, admin, product=atlas)
    assert [e["node"]["email"] for e in holders["edges"]] == [
        "admin@northwind.example", "member1@northwind.example", "owner@northwind.example"]
    bad = await gateway.execute(MEMBERS, {"product": base64.b64encode(b"License:x").decode()}, token=admin)
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize("variables,message", [
    ({"first": 101}, "0 to 100"),
    ({"first": -1}, "0 to 100"),
    ({"last": 500}, "0 to 100"),
    ({"first": 5, "last": 5}, "not both"),
    ({"after": "garbage!"}, "cursor is not valid"),
])
async def test_bad_paging_arguments_are_refused_before_any_query(gateway, admin, variables, message):
    # Only the statements that authenticate and find the organization run: no member query.
    # (The baseline goes first: a statement's first run also reads its columns' description.)
    baseline = (await gateway.post("{ viewer { organization { name } } }", token=admin)).json()
    response = await gateway.post(MEMBERS, variables, token=admin)
    body = response.json()
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and message in error["message"]
    assert body["extensions"]["io"]["sqlStatements"] <= baseline["extensions"]["io"]["sqlStatements"]


LICENSES = """
{ viewer { organization { licenses {
  product { sku } kind seatModel quantity allocatedCount availableCount expiresAt status
  allocations(first: 10) { totalCount nodes { account { email } allocatedBy { email } } }
  subscription { planInterval status } } } } }
"""


async def test_licenses_show_seats_expiry_and_status(gateway, admin):
    body = await gateway.execute(LICENSES, token=admin)
    by_sku = {lic["product"]["sku"]: lic for lic in body["data"]["viewer"]["organization"]["licenses"]}
    lumen, atlas, vapor = by_sku["LUMEN-RENDER"], by_sku["ATLAS-SCATTER"], by_sku["VAPOR-FX"]
    assert (lumen["quantity"], lumen["allocatedCount"], lumen["availableCount"], lumen["status"]) == (10, 4, 6, "ACTIVE")
    assert (atlas["allocatedCount"], atlas["availableCount"], atlas["status"]) == (3, 0, "EXPIRING")
    assert vapor["status"] == "EXPIRED" and vapor["subscription"] == {"planInterval": "YEAR", "status": "EXPIRED"}
    floating = by_sku["LUMEN-BATCH"]
    assert (floating["seatModel"], floating["kind"], floating["expiresAt"], floating["availableCount"]) == \
        ("FLOATING", "PERPETUAL", None, 5)
    assert by_sku["SCENE-VIEWER"]["kind"] == "TRIAL" and by_sku["SCENE-VIEWER"]["subscription"] is None
    assert atlas["allocations"]["totalCount"] == 3
    assert {n["allocatedBy"]["email"] for n in atlas["allocations"]["nodes"]} == {"admin@northwind.example"}


SUBSCRIPTIONS = """
query($filter: SubscriptionFilter, $order: SubscriptionOrder) {
  viewer { organization { subscriptions(filter: $filter, orderBy: $order) {
    product { name family } planInterval status autoRenew currentPeriodEnd autoRenewChangeableUntil
    unitPrice { amount currency decimal } } } }
}
"""


async def subscriptions(gateway, token, **variables):
    body = await gateway.execute(SUBSCRIPTIONS, variables, token=token)
    assert "errors" not in body, body.get("errors")
    return body["data"]["viewer"]["organization"]["subscriptions"]


async def test_subscriptions_filter_and_order(gateway, admin):
    everything = await subscriptions(gateway, admin)
    ends = [s["currentPeriodEnd"] for s in everything]
    assert ends == sorted(ends) and len(everything) == 3
    by_name = await subscriptions(gateway, admin, order={"field": "PRODUCT_NAME", "direction": "DESC"})
    assert [s["product"]["name"] for s in by_name] == ["Vapor FX", "Lumen Render", "Atlas Scatter"]
    expired = await subscriptions(gateway, admin, filter={"status": ["EXPIRED"]})
    assert [s["product"]["name"] for s in expired] == ["Vapor FX"]
    lumen = await subscriptions(gateway, admin, filter={"productFamily": "Lumen"})
    assert [s["product"]["family"] for s in lumen] == ["Lumen"]
    soon = datetime.now(timezone.utc) + timedelta(days=60)
    window = await subscriptions(gateway, admin, filter={"expiresAfter": datetime.now(timezone.utc).isoformat(),
                                                         "expiresBefore": soon.isoformat()})
    assert [s["product"]["name"] for s in window] == ["Atlas Scatter"]
    assert await subscriptions(gateway, admin, filter={"currency": "eur"}) == []
    assert len(await subscriptions(gateway, admin, filter={"currency": "usd"})) == 3


async def test_subscriptions_bring_their_products_in_the_same_statement(gateway, admin):
    plain_query = "{ viewer { organization { subscriptions { id } } } }"
    products_query = "{ viewer { organization { subscriptions { id product { id sku name family description } } } } }"
    # Each once first: the session's first query checks it apart, and a statement seen for the
    # first time in the process has its columns read (prepared) once.
    for query in (plain_query, products_query):
        await gateway.execute(query, token=admin)
    plain = await gateway.execute(plain_query, token=admin)
    with_products = await gateway.execute(products_query, token=admin)
    products = [s["product"] for s in with_products["data"]["viewer"]["organization"]["subscriptions"]]
    assert sorted(p["name"] for p in products) == ["Atlas Scatter", "Lumen Render", "Vapor FX"]
    assert all(p["sku"] and p["family"] and p["description"] for p in products)
    assert with_products["extensions"]["io"]["sqlStatements"] == plain["extensions"]["io"]["sqlStatements"]


async def test_auto_renew_cut_off_follows_the_plan(gateway, admin):
    by_name = {s["product"]["name"]: s for s in await subscriptions(gateway, admin)}
    yearly, monthly, expired = by_name["Lumen Render"], by_name["Atlas Scatter"], by_name["Vapor FX"]

    def days_before_end(s):
        end = datetime.fromisoformat(s["currentPeriodEnd"])
        return (end - datetime.fromisoformat(s["autoRenewChangeableUntil"])).days

    assert yearly["autoRenew"] and days_before_end(yearly) == 30
    assert monthly["autoRenew"] and days_before_end(monthly) == 14
    assert expired["autoRenewChangeableUntil"] is None
    assert yearly["unitPrice"] == {"amount": 69900, "currency": "USD", "decimal": "699.00"}


async def test_downloads_only_for_products_the_viewer_may_use(gateway):
    token = await gateway.login("member5@northwind.example")  # holds no seat
    body = await gateway.execute("{ products { sku canDownload downloads { sha256 sizeBytes } "
                                 "learningResources { kind url } } }", token=token)
    by_sku = {p["sku"]: p for p in body["data"]["products"]}
    assert by_sku["LUMEN-BATCH"]["canDownload"] is True  # the organization's floating pool
    assert len(by_sku["LUMEN-BATCH"]["downloads"]) == 6
    assert by_sku["LUMEN-RENDER"] == {**by_sku["LUMEN-RENDER"], "canDownload": False, "downloads": []}
    assert by_sku["VAPOR-FX"]["canDownload"] is False
    assert all(len(p["learningResources"]) == 4 for p in by_sku.values())
    holder = await gateway.login("member1@northwind.example")
    body = await gateway.execute("{ viewer { downloadableProducts { sku } } }", token=holder)
    assert {p["sku"] for p in body["data"]["viewer"]["downloadableProducts"]} == {
        "ATLAS-SCATTER", "LUMEN-RENDER", "LUMEN-BATCH"}


@pytest.mark.reads_only(False)  # it writes
async def test_invitations_and_audit_log(gateway, admin, db):
    body = await gateway.execute("""{ viewer { organization {
        invitations(first: 10) { totalCount nodes { email role status invitedBy { email } } }
        auditLog(first: 10) { totalCount nodes { action actor { email } reason } } } } }""", token=admin)
    org = body["data"]["viewer"]["organization"]
    assert org["invitations"]["nodes"] == [{"email": "invitee@northwind.example", "role": "MEMBER",
                                            "status": "PENDING", "invitedBy": {"email": "admin@northwind.example"}}]
    assert org["auditLog"] == {"totalCount": 0, "nodes": []}
    org_id = await db.fetchval("SELECT id FROM organizations WHERE name = 'Northwind Studio'")
    actor = await db.fetchval("SELECT id FROM accounts WHERE email = 'owner@northwind.example'")
    for action in ("license.allocate", "member.invite"):
        await db.execute("INSERT INTO audit_log (organization_id, actor_account_id, action, reason)"
                         " VALUES ($1, $2, $3, 'because')", org_id, actor, action)
    body = await gateway.execute("{ viewer { organization { auditLog(first: 1) { totalCount nodes { action actor "
                                 "{ email } } } } } }", token=admin)
    log = body["data"]["viewer"]["organization"]["auditLog"]
    assert log == {"totalCount": 2, "nodes": [{"action": "member.invite", "actor": {"email": "owner@northwind.example"}}]}


async def test_production_responses_carry_no_io_counts(app_for, settings):
    gateway = await app_for(settings.with_(env="production"))
    response = await gateway.post("{ __typename }")
    assert "io" not in response.json()["extensions"]
    assert "cost" in response.json()["extensions"]


@pytest.mark.reads_only(False)  # it writes
async def test_audit_log_filters_by_action_and_actor(gateway, admin, db):
    org_id = await db.fetchval("SELECT id FROM organizations WHERE name = 'Northwind Studio'")
    owner = await db.fetchval("SELECT id FROM accounts WHERE email = 'owner@northwind.example'")
    admin_id = await db.fetchval("SELECT id FROM accounts WHERE email = 'admin@northwind.example'")
    for actor, action, outcome in ((owner, "license.allocate", "SUCCESS"), (admin_id, "license.allocate", "PARTIAL"),
                                   (admin_id, "member.invite", "REFUSED")):
        await db.execute("INSERT INTO audit_log (organization_id, actor_account_id, action, outcome)"
                         " VALUES ($1, $2, $3, $4)", org_id, actor, action, outcome)
    ids = await gateway.execute("{ viewer { id } }", token=admin)
    query = """query($action: String, $actor: ID) { viewer { organization {
        auditLog(first: 10, action: $action, actor: $actor) { totalCount nodes { action outcome actor { email } } } } } }"""
    by_action = await gateway.execute(query, {"action": "license.allocate"}, token=admin)
    log = by_action["data"]["viewer"]["organization"]["auditLog"]
    assert log["totalCount"] == 2 and {n["outcome"] for n in log["nodes"]} == {"SUCCESS", "PARTIAL"}
    by_actor = await gateway.execute(query, {"actor": ids["data"]["viewer"]["id"]}, token=admin)
    assert [n["action"] for n in by_actor["data"]["viewer"]["organization"]["auditLog"]["nodes"]] == [
        "member.invite", "license.allocate"]
