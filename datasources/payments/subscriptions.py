"""Subscriptions at the provider: a per-seat price, quantity = seats, changes as Stripe makes them.

The provider is the source of what is sold: seats (the subscription item's quantity), whether it
renews (`cancel_at_period_end`), its status and period. How each change is asked for:

- more seats now: `proration_behavior=always_invoice` (one invoice for the rest of the period,
  charged at once) with `payment_behavior=error_if_incomplete` (a refused card changes nothing);
- fewer seats at the period's end: a subscription schedule whose next phase has the new quantity
  (no credit, nothing changes until then);
- a staff extension: `trial_end` with no proration (Stripe's way to move the next bill later for
  free), marked in metadata so that it reads as ACTIVE, not as a trial;
- previews: `invoices.create_preview` with the same subscription details, so every amount the
  gateway shows is the provider's own arithmetic.

`SubscriptionCalls` is mixed into `PaymentsClient`, whose `_read`/`_write` boundary it uses.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from datasources.errors import BadUserInput, NotFound
from datasources.payments.records import Invoice, ProviderSubscription, SeatChangePreview

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

EXTENDED = "gateway_extended_until"  # metadata: the trial is a staff extension, not a trial
_INTERVALS = {("month", 1): "MONTH", ("year", 1): "YEAR", ("year", 3): "THREE_YEARS"}
_PLAN_INTERVALS = {v: k for k, v in _INTERVALS.items()}
_STATUSES = {"active": "ACTIVE", "trialing": "TRIALING", "past_due": "PAST_DUE", "unpaid": "PAST_DUE",
             "incomplete": "PAST_DUE", "canceled": "EXPIRED", "incomplete_expired": "EXPIRED", "paused": "PAST_DUE"}


def _at(seconds: Any) -> datetime:
    return datetime.fromtimestamp(int(seconds), timezone.utc)


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def subscription_from_payload(d: dict[str, Any], schedule: dict[str, Any] | None = None) -> ProviderSubscription:
    """The provider's subscription object (and its schedule, when it has one) in the gateway's terms."""
    item = ((d.get("items") or {}).get("data") or [{}])[0]
    plan = item.get("plan") or item.get("price") or d.get("plan") or {}
    recurring = plan.get("recurring") or {}
    interval = (plan.get("interval") or recurring.get("interval"),
                int(plan.get("interval_count") or recurring.get("interval_count") or 1))
    metadata = dict(d.get("metadata") or {})
    status = _STATUSES.get(d.get("status") or "", "PAST_DUE")
    if status == "TRIALING" and metadata.get(EXTENDED):
        status = "ACTIVE"
    start = d.get("current_period_start") or item.get("current_period_start")
    end = d.get("current_period_end") or item.get("current_period_end")
    scheduled_quantity = scheduled_at = None
    if schedule is not None and schedule.get("status") == "active":
        for phase in schedule.get("phases") or []:
            quantity = int(((phase.get("items") or [{}])[0]).get("quantity") or 0)
            if phase.get("start_date") == end and quantity and quantity != int(d.get("quantity") or item["quantity"]):
                scheduled_quantity, scheduled_at = quantity, _at(end)
    return ProviderSubscription(
        id=d["id"], customer_id=d["customer"], item_id=item.get("id") or "", status=status,
        quantity=int(item.get("quantity") or d.get("quantity") or 1),
        price_id=plan.get("id") or "", unit_amount=int(plan.get("amount") or plan.get("unit_amount") or 0),
        currency=(plan.get("currency") or "").upper(), interval=_INTERVALS.get(interval, "YEAR"),
        cancel_at_period_end=bool(d.get("cancel_at_period_end")),
        current_period_start=_at(start), current_period_end=_at(end),
        scheduled_quantity=scheduled_quantity, scheduled_at=scheduled_at,
        schedule_id=d.get("schedule") if isinstance(d.get("schedule"), str) else None,
        latest_invoice_id=d.get("latest_invoice") if isinstance(d.get("latest_invoice"), str) else None,
        metadata=metadata)


class SubscriptionCalls:
    """The subscription half of `PaymentsClient` (see the module docstring)."""

    _v1: Any
    _read: Callable[..., Awaitable[dict[str, Any]]]
    _write: Callable[..., Awaitable[dict[str, Any]]]

    async def ensure_price(self, *, product_key: str, product_name: str, interval: str, currency: str,
                           unit_amount: int) -> str:
        """The per-seat price for these terms; its id is derived from them, so it is made once."""
        unit, count = _PLAN_INTERVALS[interval]
        price_id = f"seat_{product_key}_{interval}_{currency}_{unit_amount}".lower()
        try:
            await self._read(lambda: self._v1.plans.retrieve_async(price_id))
            return price_id
        except NotFound:
            pass
        await self._write(lambda o: self._v1.plans.create_async(
            {"id": price_id, "amount": unit_amount, "currency": currency.lower(), "interval": unit,
             "interval_count": count, "nickname": f"{product_name} seat", "product": {"name": product_name}}, o),
            f"price:{price_id}")
        return price_id

    async def create_subscription(self, customer_id: str, *, price_id: str, quantity: int, period_start: datetime,
                                  period_end: datetime, cancel_at_period_end: bool, metadata: dict[str, str],
                                  idempotency_key: str) -> ProviderSubscription:
        """A subscription whose current period (start to end) is already paid: nothing is charged
        now and the provider bills from `period_end` (backdated start, anchor, no proration)."""
        created = await self._write(lambda o: self._v1.subscriptions.create_async(
            {"customer": customer_id, "items": [{"plan": price_id, "quantity": quantity}],
             "backdate_start_date": _seconds(period_start), "billing_cycle_anchor": _seconds(period_end),
             "proration_behavior": "none", "cancel_at_period_end": cancel_at_period_end,
             "metadata": metadata}, o), idempotency_key)
        return subscription_from_payload(created)

    async def get_subscription(self, subscription_id: str) -> ProviderSubscription | None:
        """As the provider has it now, with a decrease its schedule holds; None when unknown."""
        try:
            found = await self._read(lambda: self._v1.subscriptions.retrieve_async(subscription_id))
        except NotFound:
            return None
        return await self._with_schedule(found)

    async def _with_schedule(self, found: dict[str, Any]) -> ProviderSubscription:
        schedule = found.get("schedule")
        if isinstance(schedule, str):
            schedule = await self._read(lambda: self._v1.subscription_schedules.retrieve_async(found["schedule"]))
        return subscription_from_payload(found, schedule if isinstance(schedule, dict) else None)

    async def preview_seat_change(self, subscription_id: str, quantity: int, *, at: datetime) -> SeatChangePreview:
        """What changing to `quantity` seats would charge now and at renewal; changes nothing."""
        current = await self._required(subscription_id)
        details = {"items": [{"id": current.item_id, "quantity": quantity}], "proration_date": _seconds(at)}
        now_amount = 0
        if quantity > current.quantity:
            now = await self._read(lambda: self._v1.invoices.create_preview_async(
                {"subscription": subscription_id,
                 "subscription_details": {**details, "proration_behavior": "always_invoice"}}))
            now_amount = int(now.get("amount_due") or 0)
        renewal = await self._read(lambda: self._v1.invoices.create_preview_async(
            {"subscription": subscription_id, "subscription_details": {**details, "proration_behavior": "none"}}))
        return SeatChangePreview(
            quantity=quantity, amount_due_now=now_amount, next_invoice_total=int(renewal.get("total") or 0),
            next_invoice_at=_at(renewal.get("next_payment_attempt") or renewal.get("created")),
            effective_at=at if quantity > current.quantity else current.current_period_end,
            currency=current.currency)

    async def add_seats(self, subscription_id: str, quantity: int, *, at: datetime,
                        idempotency_key: str) -> tuple[ProviderSubscription, Invoice]:
        """Raises the seats now and charges the rest of the period at once to the default card.
        PaymentDeclined when the card is refused: the provider then changed nothing."""
        # Imported here: client.py builds PaymentsClient from this class.
        from datasources.payments.client import _invoice, step_key

        current = await self._required(subscription_id)
        if quantity == current.quantity and current.latest_invoice_id:
            # An earlier attempt of this change went through and its answer was lost: that is
            # the answer (the emulator keeps no idempotency keys; Stripe would replay it).
            invoice = await self._read(lambda: self._v1.invoices.retrieve_async(current.latest_invoice_id))
            return current, _invoice(invoice)
        if quantity <= current.quantity:
            raise BadUserInput("Adding seats needs more seats than the subscription has.")
        if current.schedule_id:
            # A scheduled decrease would undo the purchase at the period's end.
            await self._release(current.schedule_id, step_key(idempotency_key, "release"))
        updated = await self._write(lambda o: self._v1.subscriptions.update_async(subscription_id, {
            "items": [{"id": current.item_id, "quantity": quantity}], "proration_behavior": "always_invoice",
            "payment_behavior": "error_if_incomplete", "proration_date": _seconds(at)}, o),
            step_key(idempotency_key, "seats"))
        invoice = await self._read(lambda: self._v1.invoices.retrieve_async(updated["latest_invoice"]))
        return await self._with_schedule(updated), _invoice(invoice)

    async def schedule_seat_decrease(self, subscription_id: str, quantity: int, *,
                                     idempotency_key: str) -> ProviderSubscription:
        """Fewer seats from the period's end (a schedule's next phase); the current quantity
        cancels a scheduled decrease. Nothing is credited."""
        from datasources.payments.client import step_key

        current = await self._required(subscription_id)
        if quantity > current.quantity:
            raise BadUserInput("A decrease needs fewer seats than the subscription has.")
        if quantity == current.quantity:
            if current.schedule_id:
                await self._release(current.schedule_id, step_key(idempotency_key, "release"))
            return await self._required(subscription_id)
        schedule_id = current.schedule_id
        if schedule_id is None:
            created = await self._write(lambda o: self._v1.subscription_schedules.create_async(
                {"from_subscription": subscription_id}, o), step_key(idempotency_key, "schedule"))
            schedule_id = created["id"]
        start, end = _seconds(current.current_period_start), _seconds(current.current_period_end)
        await self._write(lambda o: self._v1.subscription_schedules.update_async(schedule_id, {
            "end_behavior": "release", "phases": [
                {"start_date": start, "end_date": end,
                 "items": [{"price": current.price_id, "quantity": current.quantity}]},
                {"start_date": end, "items": [{"price": current.price_id, "quantity": quantity}]}]}, o),
            step_key(idempotency_key, "phases"))
        return await self._required(subscription_id)

    async def set_cancel_at_period_end(self, subscription_id: str, cancel: bool, *,
                                       idempotency_key: str) -> ProviderSubscription:
        updated = await self._write(lambda o: self._v1.subscriptions.update_async(
            subscription_id, {"cancel_at_period_end": cancel}, o), idempotency_key)
        return await self._with_schedule(updated)

    async def extend_period(self, subscription_id: str, until: datetime, *,
                            idempotency_key: str) -> ProviderSubscription:
        """Free time until `until`: the next bill moves there (a trial end, no proration)."""
        updated = await self._write(lambda o: self._v1.subscriptions.update_async(subscription_id, {
            "trial_end": _seconds(until), "proration_behavior": "none",
            "metadata": {EXTENDED: until.isoformat()}}, o), idempotency_key)
        return await self._with_schedule(updated)

    async def _required(self, subscription_id: str) -> ProviderSubscription:
        found = await self.get_subscription(subscription_id)
        if found is None:
            raise NotFound("The payment provider has no such subscription.")
        return found

    async def _release(self, schedule_id: str, key: str) -> None:
        await self._write(lambda o: self._v1.subscription_schedules.release_async(schedule_id, None, o), key)
