"""Switching auto-renew: the cut-offs at their boundaries, subscriptions that do not renew,
no-op requests, the audit log, and who may.

Seeded per organization (gateway/demo.py): Lumen Render YEAR ACTIVE auto-renewing, ending in
200 days; Atlas Scatter MONTH ACTIVE auto-renewing, ending in 20 days; Vapor FX YEAR EXPIRED.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

NORTHWIND, GLOBEX = "northwind.example", "globex.example"
SUBSCRIPTION_IDS = "{ viewer { organization { subscriptions { id product { sku } } } } }"
SET_AUTO_RENEW = """
mutation SetAutoRenew($input: SetSubscriptionAutoRenewInput!) {
  setSubscriptionAutoRenew(input: $input) {
    subscription { id autoRenew status currentPeriodEnd autoRenewChangeableUntil }
    userErrors { field message code }
  }
}
"""
MARGIN = timedelta(minutes=10)  # either side of a cut-off: far more than a request takes


async def subscription_ids(gateway, domain: str = NORTHWIND) -> dict[str, str]:
    token = await gateway.login(f"admin@{domain}")
    body = await gateway.execute(SUBSCRIPTION_IDS, token=token)
    return {s["product"]["sku"]: s["id"] for s in body["data"]["viewer"]["organization"]["subscriptions"]}


def raw_uuid(global_id: str) -> uuid.UUID:
    return uuid.UUID(base64.b64decode(global_id).decode().split(":", 1)[1])


def codes(payload) -> list[tuple[list[str] | None, str]]:
    return [(e["field"], e["code"]) for e in payload["userErrors"]]


async def set_auto_renew(gateway, token, subscription_id, auto_renew):
    return await gateway.execute(SET_AUTO_RENEW, {"input": {"subscriptionId": subscription_id,
                                                            "autoRenew": auto_renew}}, token=token)


async def auto_renew_in_db(db, subscription_id: str) -> bool:
    return await db.fetchval("SELECT auto_renew FROM subscriptions WHERE id = $1", raw_uuid(subscription_id))


async def audit_rows(db) -> list[dict]:
    rows = await db.fetch("SELECT l.outcome, l.target, l.details::text AS details, a.email AS actor"
                          " FROM audit_log l LEFT JOIN accounts a ON a.id = l.actor_account_id"
                          " WHERE l.action = 'subscription.auto_renew' ORDER BY l.id")
    return [{**dict(r), "details": json.loads(r["details"])} for r in rows]


async def renews_in(db, subscription_id: str, delta: timedelta, *, interval: str | None = None,
                    auto_renew: bool | None = None, status: str | None = None) -> datetime:
    """Moves the subscription's renewal to now + delta (and sets what else is given). Its provider
    side is dropped: the next change makes it again for this period, as for a row made before the
    provider held subscriptions (resolvers/subscription_sync.py)."""
    end = (datetime.now(timezone.utc) + delta).replace(microsecond=0)  # the provider keeps whole seconds
    await db.execute(
        "UPDATE subscriptions SET current_period_end = $2::timestamptz, provider_subscription_id = NULL,"
        " current_period_start = $2::timestamptz - interval '400 days',"
        " plan_interval = coalesce($3::text, plan_interval), auto_renew = coalesce($4::boolean, auto_renew),"
        " status = coalesce($5::text, status) WHERE id = $1",
        raw_uuid(subscription_id), end, interval, auto_renew, status)
    return end


async def test_admin_switches_auto_renew_off_and_back_on(gateway, db):
    ids = await subscription_ids(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    body = await set_auto_renew(gateway, token, ids["LUMEN-RENDER"], False)
    assert "errors" not in body, body
    off = body["data"]["setSubscriptionAutoRenew"]
    assert off["userErrors"] == [] and off["subscription"]["autoRenew"] is False
    end = datetime.fromisoformat(off["subscription"]["currentPeriodEnd"])
    # Now off: it may be switched back on until a day before renewal.
    assert datetime.fromisoformat(off["subscription"]["autoRenewChangeableUntil"]) == end - timedelta(days=1)
    assert await auto_renew_in_db(db, ids["LUMEN-RENDER"]) is False
    on = (await set_auto_renew(gateway, token, ids["LUMEN-RENDER"], True))["data"]["setSubscriptionAutoRenew"]
    assert on["userErrors"] == [] and on["subscription"]["autoRenew"] is True
    assert [(e["outcome"], e["details"], e["actor"]) for e in await audit_rows(db)] == [
        ("SUCCESS", {"autoRenew": False}, f"admin@{NORTHWIND}"),
        ("SUCCESS", {"autoRenew": True}, f"admin@{NORTHWIND}")]
    assert (await audit_rows(db))[0]["target"] == f"Subscription:{raw_uuid(ids['LUMEN-RENDER'])}"


async def test_a_monthly_plan_20_days_from_renewal_may_still_be_switched_off(gateway, db):
    ids = await subscription_ids(gateway)
    token = await gateway.login(f"owner@{NORTHWIND}")
    payload = (await set_auto_renew(gateway, token, ids["ATLAS-SCATTER"], False))["data"]["setSubscriptionAutoRenew"]
    assert payload["userErrors"] == [] and payload["subscription"]["autoRenew"] is False


@pytest.mark.parametrize("interval, notice", [("YEAR", 30), ("THREE_YEARS", 30), ("MONTH", 14)])
async def test_switching_off_is_allowed_until_the_notice_period_before_renewal(gateway, db, interval, notice):
    ids = await subscription_ids(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    subscription = ids["LUMEN-RENDER"]
    await renews_in(db, subscription, timedelta(days=notice) + MARGIN, interval=interval)
    payload = (await set_auto_renew(gateway, token, subscription, False))["data"]["setSubscriptionAutoRenew"]
    assert payload["userErrors"] == [] and await auto_renew_in_db(db, subscription) is False


@pytest.mark.parametrize("interval, notice", [("YEAR", 30), ("THREE_YEARS", 30), ("MONTH", 14)])
async def test_switching_off_past_the_cutoff_names_the_cutoff(gateway, db, interval, notice):
    ids = await subscription_ids(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    subscription = ids["LUMEN-RENDER"]
    end = await renews_in(db, subscription, timedelta(days=notice) - MARGIN, interval=interval)
    payload = (await set_auto_renew(gateway, token, subscription, False))["data"]["setSubscriptionAutoRenew"]
    assert codes(payload) == [(["input", "autoRenew"], "CUTOFF_PASSED")]
    cutoff = end - timedelta(days=notice)
    assert f"{cutoff:%Y-%m-%d %H:%M}" in payload["userErrors"][0]["message"]
    assert f"{notice} days" in payload["userErrors"][0]["message"]
    assert payload["subscription"]["autoRenew"] is True and await auto_renew_in_db(db, subscription) is True
    [entry] = await audit_rows(db)
    assert entry["outcome"] == "REFUSED"
    assert entry["details"]["problems"] == [{"field": ["input", "autoRenew"], "code": "CUTOFF_PASSED"}]


@pytest.mark.parametrize("delta, allowed", [(timedelta(days=1) + MARGIN, True), (timedelta(days=1) - MARGIN, False)])
async def test_switching_back_on_is_allowed_until_a_day_before_renewal(gateway, db, delta, allowed):
    ids = await subscription_ids(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    subscription = ids["ATLAS-SCATTER"]
    await renews_in(db, subscription, delta, auto_renew=False)
    payload = (await set_auto_renew(gateway, token, subscription, True))["data"]["setSubscriptionAutoRenew"]
    if allowed:
        assert payload["userErrors"] == [] and await auto_renew_in_db(db, subscription) is True
    else:
        assert codes(payload) == [(["input", "autoRenew"], "CUTOFF_PASSED")]
        assert "1 day" in payload["userErrors"][0]["message"]
        assert await auto_renew_in_db(db, subscription) is False


@pytest.mark.parametrize("status", ["PAST_DUE", "TRIALING"])
async def test_past_due_and_trialing_subscriptions_still_renew(gateway, db, status):
    ids = await subscription_ids(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    await renews_in(db, ids["LUMEN-RENDER"], timedelta(days=100), status=status)
    payload = (await set_auto_renew(gateway, token, ids["LUMEN-RENDER"], False))["data"]["setSubscriptionAutoRenew"]
    assert payload["userErrors"] == []


async def test_an_expired_subscription_does_not_renew(gateway, db):
    ids = await subscription_ids(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    payload = (await set_auto_renew(gateway, token, ids["VAPOR-FX"], True))["data"]["setSubscriptionAutoRenew"]
    assert codes(payload) == [(["input", "autoRenew"], "NOT_RENEWABLE")]
    assert payload["subscription"]["status"] == "EXPIRED" and payload["subscription"]["autoRenew"] is False
    assert [e["outcome"] for e in await audit_rows(db)] == ["REFUSED"]


async def test_a_canceled_subscription_does_not_renew(gateway, db):
    ids = await subscription_ids(gateway)
    token = await gateway.login(f"admin@{NORTHWIND}")
    await renews_in(db, ids["LUMEN-RENDER"], timedelta(days=100), status="CANCELED", auto_renew=False)
    payload = (await set_auto_renew(gateway, token, ids["LUMEN-RENDER"], True))["data"]["setSubscriptionAutoRenew"]
    assert codes(payload) == [(["input", "autoRenew"], "NOT_RENEWABLE")]
    assert await auto_renew_in_db(db, ids["LUMEN-RENDER"]) is False


@pytest.mark.parametrize("sku, value, delta", [
    ("LUMEN-RENDER", True, None),  # already on
    ("VAPOR-FX", False, None),  # expired and already off
    ("LUMEN-RENDER", True, timedelta(days=2)),  # already on, well past the cut-off for switching off
])
async def test_asking_for_the_setting_it_already_has_succeeds_without_a_change(gateway, db, sku, value, delta):
    ids = await subscription_ids(gateway)
    if delta:
        await renews_in(db, ids[sku], delta)
    token = await gateway.login(f"admin@{NORTHWIND}")
    payload = (await set_auto_renew(gateway, token, ids[sku], value))["data"]["setSubscriptionAutoRenew"]
    assert payload["userErrors"] == [] and payload["subscription"]["autoRenew"] is value
    assert await audit_rows(db) == []


@pytest.mark.parametrize("who, code", [
    (None, "UNAUTHENTICATED"),
    (f"member1@{NORTHWIND}", "FORBIDDEN"),
    (f"admin@{GLOBEX}", "NOT_FOUND"),
    (f"owner@{GLOBEX}", "NOT_FOUND"),
])
@pytest.mark.reads_only  # refused before anything is written
async def test_only_the_organizations_owner_and_admins_switch_auto_renew(gateway, db, who, code):
    ids = await subscription_ids(gateway)
    token = await gateway.login(who) if who else None
    body = await set_auto_renew(gateway, token, ids["LUMEN-RENDER"], False)
    assert body["data"] is None and [e["extensions"]["code"] for e in body["errors"]] == [code]
    assert await auto_renew_in_db(db, ids["LUMEN-RENDER"]) is True
    assert await audit_rows(db) == []


@pytest.mark.parametrize("who", [f"owner@{NORTHWIND}", f"admin@{NORTHWIND}"])
async def test_owner_and_admin_may_switch_auto_renew(gateway, db, who):
    ids = await subscription_ids(gateway)
    token = await gateway.login(who)
    payload = (await set_auto_renew(gateway, token, ids["LUMEN-RENDER"], False))["data"]["setSubscriptionAutoRenew"]
    assert payload["userErrors"] == []
    assert (await audit_rows(db))[0]["actor"] == who


async def test_unknown_malformed_and_foreign_subscription_ids_are_the_same_not_found(gateway):
    globex = await subscription_ids(gateway, GLOBEX)
    token = await gateway.login(f"admin@{NORTHWIND}")
    licenses = (await gateway.execute("{ viewer { organization { licenses { id } } } }", token=token)
                )["data"]["viewer"]["organization"]["licenses"]
    answers = []
    for subscription_id in (globex["LUMEN-RENDER"], base64.b64encode(f"Subscription:{uuid.uuid4()}".encode()).decode(),
                            "%%%", licenses[0]["id"]):
        body = await set_auto_renew(gateway, token, subscription_id, False)
        answers.append([(e["message"], e["extensions"]["code"]) for e in body["errors"]])
    assert answers[0][0][1] == "NOT_FOUND" and all(a == answers[0] for a in answers)
