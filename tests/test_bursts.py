"""Bursts: every limiter and every once-only action, attacked with concurrent requests.

Limiters: the same attempts sent all at once (asyncio.gather) to one gateway and one after
another to a second gateway with fresh buckets are limited exactly alike: the sign-in throttles
(login per account and per address, invitation and refresh token guessing, changePassword),
in process and in Redis, and the query-cost budget.

Once-only actions: concurrent duplicates of each idempotent mutation (one idempotency key),
of each single-use token and of a provider event happen once. Those whose concurrency test
sits with the rest of their mutation's tests are listed here, each tested there once:

- allocateLicense, one key: tests/test_seat_mutations.py::test_concurrent_retries_with_one_key_allocate_once
- payInvoice, one key (charged once at the emulator):
  tests/test_billing_mutations.py::test_concurrent_requests_with_the_same_key_pay_once
- payOutstandingBalance, one key:
  tests/test_billing_mutations.py::test_concurrent_balance_payments_with_the_same_key_pay_once
- acceptInvitation, one token:
  tests/test_people_mutations.py::test_two_concurrent_accepts_of_one_invitation_make_one_account_and_one_membership
- refreshToken, one refresh token (one rotation; every request gets its one successor):
  tests/test_refresh_tokens.py::test_concurrent_refreshes_with_one_token_all_get_the_same_successor
- grantCredits, one key: below
- a provider webhook event: tests/test_webhooks.py::test_concurrent_deliveries_of_one_event_apply_it_once
"""

from __future__ import annotations

import asyncio
import importlib
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from gateway.limits import LimitSettings
from tests.conftest import DEMO_PASSWORD, LOGIN, Gateway
from tests.test_people_mutations import INVITE, codes, data_of, invite_input
from tests.test_query_limits import redis_url
from tests.test_staff import GRANT, NORTHWIND, gid, make_staff

BURST = 25
MEMBER = "member1@northwind.example"
NEW_PASSWORD = "a-new-passphrase-42"
CHANGE_PASSWORD = """
mutation($current: String!, $new: String!) {
  changePassword(input: {currentPassword: $current, newPassword: $new}) { userErrors { code } }
}
"""
REFRESH = "mutation($t: String!) { refreshToken(input: {refreshToken: $t}) { token userErrors { code } } }"
ACCEPT = """
mutation($t: String!) {
  acceptInvitation(input: {token: $t, name: "Guess", password: "a-new-passphrase-42"}) { token userErrors { code } }
}
"""
CHEAP = "{ viewer { name organization { name } } }"  # costs 2, and the answer holds 2: nothing given back

Attempt = Callable[[int], Awaitable[httpx.Response]]


def outcome(response: httpx.Response) -> str:
    """A refusal's code, the first user error's code, or OK; a refusal must also be HTTP 429."""
    body = response.json()
    if body.get("errors"):
        code = body["errors"][0]["extensions"]["code"]
        if code == "RATE_LIMITED":
            assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1
        return code
    [payload] = body["data"].values()
    errors = payload.get("userErrors") or [] if isinstance(payload, dict) else []
    return errors[0]["code"] if errors else "OK"


@pytest.fixture(params=["in-process", "redis"])
def store(request) -> Callable[[], dict[str, Any]]:
    """Settings for fresh, empty buckets: in the process, or in Redis under a key prefix of their own."""
    if request.param == "in-process":
        return dict
    url = redis_url()
    if url is None:
        pytest.skip("no Redis on 127.0.0.1:6379: shared buckets need one")
    return lambda: {"redis_url": url, "redis_key_prefix": f"test-bursts:{uuid.uuid4().hex}:"}


Prepare = Callable[[Gateway], Awaitable[Attempt]]


async def burst_and_sequence(app_for, settings, store, limits: LimitSettings,
                             prepare: Prepare) -> tuple[Counter[str], Counter[str], Gateway]:
    """The outcomes of BURST attempts at once, and of the same attempts in turn (on a second
    gateway with empty buckets of its own), and the gateway the burst went to."""
    burst_gateway = await app_for(settings.with_(limits=limits, **store()))
    attempt = await prepare(burst_gateway)
    burst = Counter(map(outcome, await asyncio.gather(*(attempt(i) for i in range(BURST)))))
    sequence_gateway = await app_for(settings.with_(limits=limits, **store()))
    attempt = await prepare(sequence_gateway)
    sequence = Counter([outcome(await attempt(i)) for i in range(BURST)])
    return burst, sequence, burst_gateway


def sign_in_limits(**limits: Any) -> LimitSettings:
    # The default window (300 s): nothing drains while a test runs.
    return LimitSettings(**{"sign_in_attempts_per_address": 1000, **limits})


def login(gateway: Gateway, email: str, password: str) -> Awaitable[httpx.Response]:
    return gateway.post(LOGIN, {"email": email, "password": password})


# --- limiters ----------------------------------------------------------------------------------


async def test_wrong_passwords_for_one_account_at_once_are_limited_like_in_turn(app_for, settings, store):
    async def prepare(gateway: Gateway) -> Attempt:
        return lambda i: login(gateway, MEMBER, f"wrong-{i}")

    burst, sequence, gateway = await burst_and_sequence(
        app_for, settings, store, sign_in_limits(sign_in_attempts=5), prepare)
    assert burst == sequence == {"INVALID_CREDENTIALS": 5, "RATE_LIMITED": BURST - 5}
    assert outcome(await login(gateway, MEMBER, DEMO_PASSWORD)) == "RATE_LIMITED"  # until the bucket drains
    assert outcome(await login(gateway, "member2@northwind.example", DEMO_PASSWORD)) == "OK"  # others are not


async def test_one_address_guessing_many_accounts_at_once_is_limited_like_in_turn(app_for, settings, store):
    async def prepare(gateway: Gateway) -> Attempt:
        return lambda i: login(gateway, f"nobody{i}@northwind.example", "guess")

    burst, sequence, gateway = await burst_and_sequence(
        app_for, settings, store, sign_in_limits(sign_in_attempts_per_address=5), prepare)
    assert burst == sequence == {"INVALID_CREDENTIALS": 5, "RATE_LIMITED": BURST - 5}
    assert outcome(await login(gateway, MEMBER, DEMO_PASSWORD)) == "RATE_LIMITED"


async def test_wrong_current_passwords_at_once_are_limited_like_in_turn(app_for, settings, store):
    """changePassword is a password check like login: it counts in the account's bucket."""
    tokens = {}

    async def prepare(gateway: Gateway) -> Attempt:
        tokens[gateway] = token = await gateway.login(MEMBER)
        return lambda i: gateway.post(CHANGE_PASSWORD, {"current": f"wrong-{i}", "new": NEW_PASSWORD}, token=token)

    burst, sequence, gateway = await burst_and_sequence(
        app_for, settings, store, sign_in_limits(sign_in_attempts=5), prepare)
    assert burst == sequence == {"WRONG_PASSWORD": 5, "RATE_LIMITED": BURST - 5}
    right = await gateway.post(CHANGE_PASSWORD, {"current": DEMO_PASSWORD, "new": NEW_PASSWORD},
                               token=tokens[gateway])
    assert outcome(right) == "RATE_LIMITED"
    assert outcome(await login(gateway, MEMBER, DEMO_PASSWORD)) == "RATE_LIMITED"  # one bucket per account


@pytest.mark.parametrize("mutation,refused", [(REFRESH, "INVALID_REFRESH_TOKEN"), (ACCEPT, "INVITATION_NOT_PENDING")],
                         ids=["refresh token", "invitation token"])
async def test_guessed_tokens_at_once_are_limited_like_in_turn(app_for, settings, store, mutation, refused):
    async def prepare(gateway: Gateway) -> Attempt:
        return lambda i: gateway.post(mutation, {"t": f"guess-{i}"})

    burst, sequence, _ = await burst_and_sequence(
        app_for, settings, store, sign_in_limits(sign_in_attempts_per_address=5), prepare)
    assert burst == sequence == {refused: 5, "RATE_LIMITED": BURST - 5}


async def test_queries_at_once_spend_the_cost_budget_like_in_turn(app_for, settings, store):
    async def prepare(gateway: Gateway) -> Attempt:
        token = await gateway.login(MEMBER)
        return lambda i: gateway.post(CHEAP, token=token)

    burst, sequence, _ = await burst_and_sequence(
        app_for, settings, store, LimitSettings(cost_budget=20, cost_restore_rate=0.001), prepare)
    assert burst == sequence == {"OK": 10, "RATE_LIMITED": BURST - 10}


# --- once-only actions ------------------------------------------------------------------------


async def test_concurrent_invitations_with_one_key_invite_once(gateway, db):
    admin = await gateway.login("admin@northwind.example")
    variables = invite_input("burst@example.com", "burst2@example.com", key=f"burst-{uuid.uuid4()}")
    bodies = await asyncio.gather(*(gateway.execute(INVITE, variables, token=admin) for _ in range(BURST)))
    payloads = [data_of(b, "inviteMembers") for b in bodies]
    assert all(p == payloads[0] for p in payloads)  # every duplicate answered with the first result
    assert [codes(r) for r in payloads[0]["results"]] == [[], []]
    assert await db.fetchval("SELECT count(*) FROM invitations WHERE email LIKE 'burst%@example.com'") == 2
    assert await db.fetchval("SELECT count(*) FROM mail_outbox WHERE to_address LIKE 'burst%@example.com'") == 2


async def test_concurrent_credit_grants_with_one_key_grant_once(gateway, db):
    await make_staff(db, "BILLING", "billing@vendor.example")
    staff = await gateway.login("billing@vendor.example")
    variables = {"input": {"organizationId": gid("Organization", NORTHWIND), "amount": 500,
                           "reason": "goodwill, ticket 9", "idempotencyKey": f"grant-{uuid.uuid4()}"}}
    before = await db.fetchval("SELECT count(*) FROM credit_grants")
    bodies = await asyncio.gather(*(gateway.execute(GRANT, variables, token=staff) for _ in range(BURST)))
    payloads = [body["data"]["grantCredits"] for body in bodies]
    assert all(p == payloads[0] for p in payloads) and payloads[0]["userErrors"] == []
    assert await db.fetchval("SELECT count(*) FROM credit_grants") == before + 1
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'credits.grant'") == 1


def test_every_once_only_action_listed_above_has_its_concurrency_test():
    listed = re.findall(r"tests/(\w+)\.py::(\w+)", __doc__ or "")
    assert len(listed) == 6
    for module, test in listed:
        assert callable(getattr(importlib.import_module(f"tests.{module}"), test, None)), f"{module}::{test}"
