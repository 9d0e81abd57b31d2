"""A provider customer of a test's own for Northwind, and its subscriptions at the provider.

The session shares one emulator store, while each test has its own copy of the database: a test
that changes what the provider holds (seats, invoices, schedules) gives Northwind a customer of
its own and unlinks Northwind's subscriptions from the shared provider ones, so the first change
makes its provider subscription under that customer (the path of rows made before the provider
held subscriptions) and nothing leaks into other tests.
"""

from __future__ import annotations

from dataclasses import dataclass
import uuid
from typing import Any

import httpx
import pytest

from datasources.payments.client import PaymentsClient
from gateway.app import EMULATOR_API_KEY
from gateway.demo import demo_id

NORTHWIND = demo_id("organization", "northwind")
LUMEN_SUBSCRIPTION = demo_id("subscription", "northwind", "LUMEN-RENDER")  # YEAR, 10 seats, 4 allocated
VISA = "4242424242424242"
DECLINES_AT_CHARGE = "4000000000000341"  # attaches fine; every charge on it is refused


@dataclass(frozen=True)
class Billed:
    customer_id: str
    provider: PaymentsClient
    api_base: str

    async def subscription(self, db) -> Any:
        provider_id = await db.fetchval("SELECT provider_subscription_id FROM subscriptions WHERE id = $1",
                                        LUMEN_SUBSCRIPTION)
        return await self.provider.get_subscription(provider_id) if provider_id else None

    async def invoices(self) -> list[Any]:
        return await self.provider.list_invoices(self.customer_id)

    async def renew(self, db) -> None:
        """The period ends now at the provider (the emulator's clock)."""
        provider_id = await db.fetchval("SELECT provider_subscription_id FROM subscriptions WHERE id = $1",
                                        LUMEN_SUBSCRIPTION)
        async with httpx.AsyncClient(base_url=self.api_base) as http:
            answer = await http.post(f"/_config/subscriptions/{provider_id}/renew")
        assert answer.status_code == 200, answer.text

    async def events(self, type_: str) -> list[dict[str, Any]]:
        """The provider's events of this type about this customer, oldest first."""
        async with httpx.AsyncClient(base_url=self.api_base,
                                     headers={"authorization": f"Bearer {EMULATOR_API_KEY}"}) as http:
            answer = await http.get("/v1/events", params={"type": type_, "limit": 100})
        found = [e for e in answer.json()["data"] if e["data"]["object"].get("customer") == self.customer_id]
        return sorted(found, key=lambda e: e["created"])


async def _billed(services, db, card: str) -> Billed:
    provider = PaymentsClient(EMULATOR_API_KEY, api_base=services.stripe_api_base, timeout_seconds=5)
    customer = await provider.create_customer(name="Northwind Studio", email="billing@northwind.example",
                                              metadata={"test": "seat-changes"}, idempotency_key=f"test-{uuid.uuid4()}")
    await provider.add_card(customer.id, card_number=card, exp_month=12, exp_year=2031, cvc="123",
                            make_default=True, idempotency_key=f"test-{uuid.uuid4()}")
    await db.execute("UPDATE organizations SET payment_customer_id = $1 WHERE id = $2", customer.id, NORTHWIND)
    await db.execute("UPDATE subscriptions SET provider_subscription_id = NULL WHERE organization_id = $1", NORTHWIND)
    return Billed(customer.id, provider, services.stripe_api_base)


@pytest.fixture
async def billed(services, db):
    found = await _billed(services, db, VISA)
    yield found
    await found.provider.close()


@pytest.fixture
async def refusing(services, db):
    found = await _billed(services, db, DECLINES_AT_CHARGE)
    yield found
    await found.provider.close()
