"""Allocating and revoking license seats: who may, the domain rules, idempotency, and never more
allocations than seats, also when 25 admins allocate at once.

Seeded per organization (gateway/demo.py): Lumen Render (NAMED, 10 seats, held by owner, admin,
member1, member2), Atlas Scatter (3 of 3, expiring), Vapor FX (expired, held by the owner), Lumen
Render Batch (FLOATING) and Scene Cloud Viewer (TRIAL, 2 seats, held by the owner).
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import pytest

NORTHWIND, GLOBEX = "northwind.example", "globex.example"

IDS = """
{
  viewer {
    organization {
      licenses { id product { sku } }
      members(first: 100) { nodes { account { id email } } }
    }
  }
}
"""
ALLOCATE = """
mutation Allocate($input: AllocateLicenseInput!) {
  allocateLicense(input: $input) {
    license { id quantity allocatedCount availableCount }
    allocations { id account { email } allocatedBy { email } allocatedAt }
    userErrors { field message code }
  }
}
"""
REVOKE = """
mutation Revoke($input: RevokeLicenseInput!) {
  revokeLicense(input: $input) {
    license { id allocatedCount availableCount }
    revokedAccountIds
    userErrors { field message code }
  }
}
"""


async def ids_of(gateway, domain: str = NORTHWIND) -> tuple[dict[str, str], dict[str, str]]:
    """(license ID by SKU, account ID by email) of an organization, as its admin reads them."""
    token = await gateway.login(f"admin@{domain}")
    body = await gateway.execute(IDS, token=token)
    assert "errors" not in body, body
    org = body["data"]["viewer"]["organization"]
    return ({lic["product"]["sku"]: lic["id"] for lic in org["licenses"]},
            {m["account"]["email"]: m["account"]["id"] for m in org["members"]["nodes"] if m["account"]})


def raw_uuid(global_id: str) -> uuid.UUID:
    return uuid.UUID(base64.b64decode(global_id).decode().split(":", 1)[1])


def codes(payload) -> list[tuple[list[str] | None, str]]:
    return [(e["field"], e["code"]) for e in payload["userErrors"]]


async def holders(db, license_gid: str) -> set[str]:
    rows = await db.fetch("SELECT a.email FROM allocations al JOIN accounts a ON a.id = al.account_id"
                          " WHERE al.license_id = $1", raw_uuid(license_gid))
    return {r["email"] for r in rows}


async def audit_rows(db, action: str) -> list[dict]:
    rows = await db.fetch("SELECT l.outcome, l.target, l.details::text AS details, a.email AS actor"
                          " FROM audit_log l LEFT JOIN accounts a ON a.id = l.actor_account_id"
                          " WHERE l.action = $1 ORDER BY l.id", action)
    return [{**dict(r), "details": json.loads(r["details"])} for r in rows]


async def allocate(gateway, token, license_id, account_ids, key=None):
    variables = {"input": {"licenseId": license_id, "accountIds": account_ids, "idempotencyKey": key}}
    return await gateway.execute(ALLOCATE, variables, token=token)


async def revoke(gateway, token, license_id, account_ids):
    return await gateway.execute(REVOKE, {"input": {"licenseId": license_id, "accountIds": account_ids}},
                                 token=token)


def m(n: int, domain: str = NORTHWIND) -> str:
    return f"member{n}@{domain}"


# --- allocating -------------------------------------------------------------------------------------

async def test_admin_allocates_free_seats_to_members(gateway, db):
    licenses, accounts = await ids_of(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    body = await allocate(gateway, token, licenses["LUMEN-RENDER"], [accounts[m(3)], accounts[m(4)]])
    assert "errors" not in body, body
    payload = body["data"]["allocateLicense"]
    assert payload["userErrors"] == []
    assert [a["account"]["email"] for a in payload["allocations"]] == [m(3), m(4)]
    assert {a["allocatedBy"]["email"] for a in payload["allocations"]} == {f"admin@{NORTHWIND}"}
    # The payload reads the state after the write.
    assert payload["license"] == {"id": licenses["LUMEN-RENDER"], "quantity": 10, "allocatedCount": 6,
                                  "availableCount": 4}
    assert {m(3), m(4)} <= await holders(db, licenses["LUMEN-RENDER"])
    [entry] = await audit_rows(db, "license.allocate")
    assert entry["outcome"] == "SUCCESS" and entry["actor"] == f"admin@{NORTHWIND}"
    assert entry["target"] == f"License:{raw_uuid(licenses['LUMEN-RENDER'])}"
    assert entry["details"]["accounts"] == [str(raw_uuid(accounts[m(3)])), str(raw_uuid(accounts[m(4)]))]


async def test_new_seat_shows_on_the_members_own_licenses(gateway):
    licenses, accounts = await ids_of(gateway)
    admin = await gateway.login(f"admin@{NORTHWIND}")
    await allocate(gateway, admin, licenses["LUMEN-RENDER"], [accounts[m(5)]])
    member = await gateway.login(m(5))
    body = await gateway.execute("{ viewer { licenses { product { sku } } } }", token=member)
    assert {"sku": "LUMEN-RENDER"} in [lic["product"] for lic in body["data"]["viewer"]["licenses"]]


async def test_each_account_that_cannot_get_a_seat_has_its_own_error_and_the_rest_get_one(gateway, db):
    licenses, accounts = await ids_of(gateway)
    _, globex_accounts = await ids_of(gateway, GLOBEX)
    token = await gateway.login(f"owner@{NORTHWIND}")
    requested = [accounts[m(3)], accounts[m(1)], globex_accounts[m(3, GLOBEX)], "not-a-global-id",
                 licenses["ATLAS-SCATTER"], base64.b64encode(f"Account:{uuid.uuid4()}".encode()).decode(),
                 accounts[m(4)]]
    body = await allocate(gateway, token, licenses["LUMEN-RENDER"], requested)
    payload = body["data"]["allocateLicense"]
    assert codes(payload) == [
        (["input", "accountIds", "1"], "ALREADY_ALLOCATED"),
        # Another organization's member, a malformed ID, another type's ID, an unknown account: one answer.
        (["input", "accountIds", "2"], "NOT_IN_ORGANIZATION"),
        (["input", "accountIds", "3"], "NOT_IN_ORGANIZATION"),
        (["input", "accountIds", "4"], "NOT_IN_ORGANIZATION"),
        (["input", "accountIds", "5"], "NOT_IN_ORGANIZATION"),
    ]
    assert len({e["message"] for e in payload["userErrors"][1:]}) == 1
    assert [a["account"]["email"] for a in payload["allocations"]] == [m(3), m(4)]
    assert payload["license"]["allocatedCount"] == 6
    [entry] = await audit_rows(db, "license.allocate")
    assert entry["outcome"] == "PARTIAL" and len(entry["details"]["problems"]) == 5


async def test_seats_run_out_in_the_order_the_accounts_are_listed(gateway, db):
    licenses, accounts = await ids_of(gateway)
    await db.execute("UPDATE licenses SET quantity = 5 WHERE id = $1", raw_uuid(licenses["LUMEN-RENDER"]))
    token = await gateway.login(f"admin@{NORTHWIND}")
    body = await allocate(gateway, token, licenses["LUMEN-RENDER"], [accounts[m(4)], accounts[m(3)], accounts[m(5)]])
    payload = body["data"]["allocateLicense"]
    assert codes(payload) == [(["input", "accountIds", "1"], "NO_SEATS_AVAILABLE"),
                              (["input", "accountIds", "2"], "NO_SEATS_AVAILABLE")]
    assert [a["account"]["email"] for a in payload["allocations"]] == [m(4)]
    assert payload["license"]["availableCount"] == 0


async def test_a_full_license_refuses_every_account_and_writes_nothing(gateway, db):
    licenses, accounts = await ids_of(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    before = await holders(db, licenses["ATLAS-SCATTER"])
    body = await allocate(gateway, token, licenses["ATLAS-SCATTER"], [accounts[m(3)], accounts[m(4)]])
    payload = body["data"]["allocateLicense"]
    assert [c for _, c in codes(payload)] == ["NO_SEATS_AVAILABLE", "NO_SEATS_AVAILABLE"]
    assert payload["allocations"] == [] and payload["license"]["allocatedCount"] == 3
    assert await holders(db, licenses["ATLAS-SCATTER"]) == before
    [entry] = await audit_rows(db, "license.allocate")
    assert entry["outcome"] == "REFUSED"
    assert entry["details"]["problems"][0] == {"field": ["input", "accountIds", "0"], "code": "NO_SEATS_AVAILABLE"}


async def test_an_expired_license_cannot_be_allocated(gateway, db):
    licenses, accounts = await ids_of(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    payload = (await allocate(gateway, token, licenses["VAPOR-FX"], [accounts[m(3)]]))["data"]["allocateLicense"]
    assert codes(payload) == [(["input", "licenseId"], "LICENSE_EXPIRED")]
    assert payload["allocations"] == []
    assert m(3) not in await holders(db, licenses["VAPOR-FX"])
    assert [e["outcome"] for e in await audit_rows(db, "license.allocate")] == ["REFUSED"]


async def test_a_floating_pool_has_no_seats_to_allocate_or_revoke(gateway):
    licenses, accounts = await ids_of(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    allocated = (await allocate(gateway, token, licenses["LUMEN-BATCH"], [accounts[m(3)]]))["data"]["allocateLicense"]
    revoked = (await revoke(gateway, token, licenses["LUMEN-BATCH"], [accounts[m(3)]]))["data"]["revokeLicense"]
    assert codes(allocated) == codes(revoked) == [(["input", "licenseId"], "FLOATING_LICENSE")]


async def test_a_free_trial_seat_can_be_allocated_but_then_not_revoked(gateway, db):
    """The decision: allocating a free TRIAL seat is its first assignment, not a reassignment."""
    licenses, accounts = await ids_of(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    allocated = (await allocate(gateway, token, licenses["SCENE-VIEWER"], [accounts[m(3)]]))["data"]["allocateLicense"]
    assert allocated["userErrors"] == [] and allocated["license"]["availableCount"] == 0
    revoked = (await revoke(gateway, token, licenses["SCENE-VIEWER"], [accounts[m(3)]]))["data"]["revokeLicense"]
    assert codes(revoked) == [(["input", "licenseId"], "SEAT_LOCKED")]
    assert revoked["revokedAccountIds"] == []
    assert {f"owner@{NORTHWIND}", m(3)} == await holders(db, licenses["SCENE-VIEWER"])


async def test_beta_seats_cannot_be_revoked(gateway, db):
    licenses, accounts = await ids_of(gateway)
    await db.execute("UPDATE licenses SET kind = 'BETA' WHERE id = $1", raw_uuid(licenses["LUMEN-RENDER"]))
    token = await gateway.login(f"owner@{NORTHWIND}")
    revoked = (await revoke(gateway, token, licenses["LUMEN-RENDER"], [accounts[m(1)]]))["data"]["revokeLicense"]
    assert codes(revoked) == [(["input", "licenseId"], "SEAT_LOCKED")]
    assert m(1) in await holders(db, licenses["LUMEN-RENDER"])
    [entry] = await audit_rows(db, "license.revoke")
    assert entry["outcome"] == "REFUSED"


@pytest.mark.parametrize("count", [0, 101])
async def test_a_request_names_1_to_100_accounts(gateway, count):
    licenses, accounts = await ids_of(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    named = [accounts[m(3)]] * count
    allocated = (await allocate(gateway, token, licenses["LUMEN-RENDER"], named))["data"]["allocateLicense"]
    revoked = (await revoke(gateway, token, licenses["LUMEN-RENDER"], named))["data"]["revokeLicense"]
    assert codes(allocated) == codes(revoked) == [(["input", "accountIds"], "INVALID")]


async def test_an_account_listed_twice_gets_one_seat(gateway):
    licenses, accounts = await ids_of(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    payload = (await allocate(gateway, token, licenses["LUMEN-RENDER"], [accounts[m(3)], accounts[m(3)]]
                              ))["data"]["allocateLicense"]
    assert codes(payload) == [(["input", "accountIds", "1"], "ALREADY_ALLOCATED")]
    assert len(payload["allocations"]) == 1 and payload["license"]["allocatedCount"] == 5


# --- revoking -----------------------------------------------------------------------------------

async def test_admin_revokes_seats_and_accounts_without_one_are_told(gateway, db):
    licenses, accounts = await ids_of(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    requested = [accounts[m(1)], accounts[m(5)], "garbage", accounts[m(2)]]
    body = await revoke(gateway, token, licenses["LUMEN-RENDER"], requested)
    assert "errors" not in body, body
    payload = body["data"]["revokeLicense"]
    assert payload["revokedAccountIds"] == [accounts[m(1)], accounts[m(2)]]
    assert codes(payload) == [(["input", "accountIds", "1"], "NOT_ALLOCATED"),
                              (["input", "accountIds", "2"], "NOT_ALLOCATED")]
    assert payload["license"]["allocatedCount"] == 2
    assert await holders(db, licenses["LUMEN-RENDER"]) == {f"owner@{NORTHWIND}", f"admin@{NORTHWIND}"}
    [entry] = await audit_rows(db, "license.revoke")
    assert entry["outcome"] == "PARTIAL" and entry["actor"] == f"admin@{NORTHWIND}"


async def test_revoking_from_no_holder_writes_nothing(gateway, db):
    licenses, accounts = await ids_of(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    payload = (await revoke(gateway, token, licenses["LUMEN-RENDER"], [accounts[m(6)]]))["data"]["revokeLicense"]
    assert codes(payload) == [(["input", "accountIds", "0"], "NOT_ALLOCATED")]
    assert payload["revokedAccountIds"] == [] and payload["license"]["allocatedCount"] == 4
    assert [e["outcome"] for e in await audit_rows(db, "license.revoke")] == ["REFUSED"]


async def test_a_seat_of_an_expired_license_can_still_be_revoked(gateway, db):
    licenses, accounts = await ids_of(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    payload = (await revoke(gateway, token, licenses["VAPOR-FX"], [accounts[f"owner@{NORTHWIND}"]]
                            ))["data"]["revokeLicense"]
    assert payload["userErrors"] == [] and payload["license"]["allocatedCount"] == 0


async def test_a_revoked_seat_can_be_allocated_to_someone_else(gateway):
    licenses, accounts = await ids_of(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    atlas = licenses["ATLAS-SCATTER"]
    assert (await revoke(gateway, token, atlas, [accounts[m(1)]]))["data"]["revokeLicense"]["userErrors"] == []
    payload = (await allocate(gateway, token, atlas, [accounts[m(4)]]))["data"]["allocateLicense"]
    assert payload["userErrors"] == [] and payload["license"]["availableCount"] == 0


# --- who may ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mutation", ["allocateLicense", "revokeLicense"])
@pytest.mark.parametrize("who, code", [
    (None, "UNAUTHENTICATED"),
    (f"member1@{NORTHWIND}", "FORBIDDEN"),
    (f"member3@{NORTHWIND}", "FORBIDDEN"),
    (f"admin@{GLOBEX}", "NOT_FOUND"),
    (f"owner@{GLOBEX}", "NOT_FOUND"),
])
@pytest.mark.reads_only  # refused before anything is written
async def test_only_the_organizations_owner_and_admins_change_its_seats(gateway, db, mutation, who, code):
    licenses, accounts = await ids_of(gateway)
    token = await gateway.login(who) if who else None
    query = ALLOCATE if mutation == "allocateLicense" else REVOKE
    variables = {"input": {"licenseId": licenses["LUMEN-RENDER"], "accountIds": [accounts[m(1)], accounts[m(3)]]}}
    body = await gateway.execute(query, variables, token=token)
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == [code]
    assert await holders(db, licenses["LUMEN-RENDER"]) == {f"owner@{NORTHWIND}", f"admin@{NORTHWIND}", m(1), m(2)}
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action LIKE 'license.%'") == 0


@pytest.mark.parametrize("who", [f"owner@{NORTHWIND}", f"admin@{NORTHWIND}"])
async def test_owner_and_admin_may_both_allocate_and_revoke(gateway, who):
    licenses, accounts = await ids_of(gateway)
    token = await gateway.login(who)
    allocated = (await allocate(gateway, token, licenses["LUMEN-RENDER"], [accounts[m(3)]]))["data"]["allocateLicense"]
    revoked = (await revoke(gateway, token, licenses["LUMEN-RENDER"], [accounts[m(3)]]))["data"]["revokeLicense"]
    assert allocated["userErrors"] == revoked["userErrors"] == []
    assert revoked["revokedAccountIds"] == [accounts[m(3)]]


async def test_another_organizations_license_and_an_unknown_one_are_the_same_not_found(gateway):
    _, accounts = await ids_of(gateway)
    globex_licenses, _ = await ids_of(gateway, GLOBEX)
    token = await gateway.login(f"admin@{NORTHWIND}")
    answers = []
    for license_id in (globex_licenses["LUMEN-RENDER"], base64.b64encode(f"License:{uuid.uuid4()}".encode()).decode(),
                       "not-an-id", accounts[m(1)]):
        body = await allocate(gateway, token, license_id, [accounts[m(3)]])
        answers.append([(e["message"], e["extensions"]["code"]) for e in body["errors"]])
    assert answers[0][0][1] == "NOT_FOUND"
    assert all(a == answers[0] for a in answers)


# --- idempotency ----------------------------------------------------------------------------------

async def test_the_same_idempotency_key_replays_the_first_result(gateway, db):
    licenses, accounts = await ids_of(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    named = [accounts[m(3)], accounts[m(1)]]
    first = (await allocate(gateway, token, licenses["LUMEN-RENDER"], named, key="retry-1"))["data"]["allocateLicense"]
    again = (await allocate(gateway, token, licenses["LUMEN-RENDER"], named, key="retry-1"))["data"]["allocateLicense"]
    assert first == again
    assert codes(again) == [(["input", "accountIds", "1"], "ALREADY_ALLOCATED")]
    assert again["license"]["allocatedCount"] == 5
    assert await db.fetchval("SELECT count(*) FROM allocations WHERE license_id = $1",
                             raw_uuid(licenses["LUMEN-RENDER"])) == 5
    assert len(await audit_rows(db, "license.allocate")) == 1


async def test_an_idempotency_key_reused_with_another_input_is_refused(gateway, db):
    licenses, accounts = await ids_of(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    await allocate(gateway, token, licenses["LUMEN-RENDER"], [accounts[m(3)]], key="k")
    payload = (await allocate(gateway, token, licenses["LUMEN-RENDER"], [accounts[m(4)]], key="k")
               )["data"]["allocateLicense"]
    assert codes(payload) == [(["input", "idempotencyKey"], "IDEMPOTENCY_KEY_REUSED")]
    assert payload["allocations"] == []
    assert m(4) not in await holders(db, licenses["LUMEN-RENDER"])
    # Keys belong to the account that sent them: the owner's "k" is a different key.
    owner = await gateway.login(f"owner@{NORTHWIND}")
    mine = (await allocate(gateway, owner, licenses["LUMEN-RENDER"], [accounts[m(4)]], key="k")
            )["data"]["allocateLicense"]
    assert mine["userErrors"] == []


async def test_a_refused_request_stores_nothing_under_its_key(gateway, db):
    licenses, accounts = await ids_of(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    atlas = licenses["ATLAS-SCATTER"]
    refused = (await allocate(gateway, token, atlas, [accounts[m(4)]], key="later"))["data"]["allocateLicense"]
    assert [c for _, c in codes(refused)] == ["NO_SEATS_AVAILABLE"]
    await revoke(gateway, token, atlas, [accounts[m(1)]])
    retried = (await allocate(gateway, token, atlas, [accounts[m(4)]], key="later"))["data"]["allocateLicense"]
    assert retried["userErrors"] == [] and len(retried["allocations"]) == 1


async def test_concurrent_retries_with_one_key_allocate_once(gateway, db):
    licenses, accounts = await ids_of(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    bodies = await asyncio.gather(*(allocate(gateway, token, licenses["LUMEN-RENDER"], [accounts[m(3)]], key="same")
                                    for _ in range(5)))
    payloads = [b["data"]["allocateLicense"] for b in bodies]
    assert all(p == payloads[0] for p in payloads)
    assert payloads[0]["userErrors"] == []
    assert await db.fetchval("SELECT count(*) FROM allocations WHERE license_id = $1",
                             raw_uuid(licenses["LUMEN-RENDER"])) == 5


@pytest.mark.parametrize("key", ["", "x" * 201])
async def test_an_idempotency_key_has_1_to_200_characters(gateway, key):
    licenses, accounts = await ids_of(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    payload = (await allocate(gateway, token, licenses["LUMEN-RENDER"], [accounts[m(3)]], key=key)
               )["data"]["allocateLicense"]
    assert codes(payload) == [(["input", "idempotencyKey"], "INVALID")]


# --- concurrency ----------------------------------------------------------------------------------

async def test_concurrent_allocations_never_exceed_quantity(gateway, db):
    """25 requests at once, each for another member, at a license with exactly 5 free seats."""
    org_id = await db.fetchval("SELECT organization_id FROM memberships m JOIN accounts a ON a.id = m.account_id"
                               " WHERE a.email = $1", f"owner@{NORTHWIND}")
    product_id = await db.fetchval("SELECT id FROM products WHERE sku = 'LUMEN-RENDER'")
    license_id = uuid.uuid4()
    await db.execute("INSERT INTO licenses (id, organization_id, product_id, kind, seat_model, quantity)"
                     " VALUES ($1, $2, $3, 'PERPETUAL', 'NAMED', 8)", license_id, org_id, product_id)
    await db.execute("INSERT INTO allocations (license_id, account_id) SELECT $1, a.id FROM accounts a"
                     " WHERE a.email = ANY($2::text[])", license_id,
                     [f"owner@{NORTHWIND}", f"admin@{NORTHWIND}", m(1)])
    for n in range(25):
        account = uuid.uuid4()
        await db.execute("INSERT INTO accounts (id, email, name) VALUES ($1, $2, $3)",
                         account, f"crowd{n}@{NORTHWIND}", f"Crowd {n}")
        await db.execute("INSERT INTO memberships (account_id, organization_id, role) VALUES ($1, $2, 'MEMBER')",
                         account, org_id)
    license_gid = base64.b64encode(f"License:{license_id}".encode()).decode()
    _, accounts = await ids_of(gateway)
    crowd = [accounts[f"crowd{n}@{NORTHWIND}"] for n in range(25)]
    token = await gateway.login(f"admin@{NORTHWIND}")

    bodies = await asyncio.gather(*(allocate(gateway, token, license_gid, [a]) for a in crowd))

    assert all("errors" not in b for b in bodies), [b for b in bodies if "errors" in b][:1]
    payloads = [b["data"]["allocateLicense"] for b in bodies]
    succeeded = [p for p in payloads if p["userErrors"] == []]
    refused = [p for p in payloads if p["userErrors"]]
    assert len(succeeded) == 5 and all(len(p["allocations"]) == 1 for p in succeeded)
    assert len(refused) == 20
    assert all(codes(p) == [(["input", "accountIds", "0"], "NO_SEATS_AVAILABLE")] for p in refused)
    assert await db.fetchval("SELECT count(*) FROM allocations WHERE license_id = $1", license_id) == 8
    outcomes = [e["outcome"] for e in await audit_rows(db, "license.allocate")]
    assert sorted(outcomes) == ["REFUSED"] * 20 + ["SUCCESS"] * 5
