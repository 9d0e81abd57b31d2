"""Subscriptions in localstripe billed per seat as Stripe bills them (emulator child only).

localstripe 1.15 keeps a subscription's period at one interval from its start for ever, prorates
a quantity change by crediting the whole previous invoice, and has no subscription schedules.
The gateway's seat changes need what Stripe does for these calls, so that `PaymentsClient`
speaks plain Stripe:

- **Explicit periods.** `POST /v1/subscriptions` with `backdate_start_date`,
  `billing_cycle_anchor` and `proration_behavior=none` (a period already paid, moved to the
  provider): no invoice now, status `active`, the current period from the backdated start to
  the anchor. Plans' `interval_count` counts (a three-year plan is `year` x 3).
- **Quantity by time.** `POST /v1/subscriptions/{id}` with `items=[{id, quantity}]`,
  `proration_behavior=always_invoice` and `proration_date`: one invoice at once for
  (new - old) x unit x (period end - proration date) / period length, rounded, finalized and
  charged to the default card (`billing_reason` `subscription_update`). With
  `payment_behavior=error_if_incomplete` a refused charge is a 402 `card_error` and the update is
  not applied: the subscription and the customer's invoices are left as they were. `proration_behavior=none` changes the
  quantity without an invoice.
- **Free time.** `trial_end` on update moves the period's end there (status `trialing`): Stripe's
  way to push the next bill later without charging.
- **`customer.subscription.updated`** after every update (localstripe sends none).
- **Subscription schedules**, the part Stripe uses for a change at period end:
  `POST /v1/subscription_schedules` (`from_subscription`), `GET`/`POST
  /v1/subscription_schedules/{id}` (`phases`, `end_behavior`), `POST .../release`; the
  subscription carries `schedule`.
- **Preview invoices.** `POST /v1/invoices/create_preview` for a subscription with
  `subscription_details` (`items`, `proration_behavior`, `proration_date`): with
  `always_invoice`, the invoice such an update would charge now; otherwise the next renewal
  invoice at the quantity given (or the schedule's next phase). Nothing is stored.
- **Time passing, for tests only**: `POST /_config/subscriptions/{id}/renew` (localstripe's own
  `/_config/` namespace, like its webhook setup) ends the current period now: a subscription
  canceled at period end ends (`customer.subscription.deleted`); otherwise the schedule's next
  phase applies, a renewal invoice (`subscription_cycle`) is charged to the default card, and
  the subscription is `active` when paid or `past_due` with `invoice.payment_failed` when not.

Must run after `localstripe.resources` is imported and BEFORE `localstripe.server` is.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from dateutil.relativedelta import relativedelta
from localstripe import resources
from localstripe.errors import UserError, json_response
from localstripe.resources import Event, Invoice, InvoiceItem, Subscription, SubscriptionItem
from localstripe.webhooks import schedule_webhook

_original_init = Subscription.__init__
_original_update = Subscription._update
_original_item_period = SubscriptionItem._current_period
_original_preview = Invoice._api_create_preview_invoice.__func__


def _int(value: Any) -> int | None:
    converted = resources.try_convert_to_int(value)
    if converted is not None and type(converted) is not int:
        raise UserError(400, "Bad request")
    return converted


def _bad(condition: bool, message: str = "Bad request") -> None:
    if condition:
        raise UserError(400, message)


def _period(sub: Any) -> tuple[int, int]:
    period = getattr(sub, "_period", None)
    if period is None:
        found = _original_item_period(sub.items._list[0])
        return found["start"], found["end"]
    return period


def _next_end(sub: Any, start: int) -> int:
    plan = sub.plan
    count = plan.interval_count or 1
    step = {"day": relativedelta(days=count), "week": relativedelta(weeks=count),
            "month": relativedelta(months=count), "year": relativedelta(years=count)}[plan.interval]
    return int((datetime.fromtimestamp(start, timezone.utc) + step).timestamp())


def _init(self: Any, customer: Any = None, items: Any = None, backdate_start_date: Any = None,
          billing_cycle_anchor: Any = None, proration_behavior: Any = None, cancel_at_period_end: Any = None,
          **kwargs: Any) -> None:
    anchor = _int(billing_cycle_anchor)
    cancel = resources.try_convert_to_bool(cancel_at_period_end) if cancel_at_period_end is not None else False
    _bad(type(cancel) is not bool)
    if anchor is None:
        _original_init(self, customer=customer, items=items, backdate_start_date=backdate_start_date,
                       proration_behavior=proration_behavior, **kwargs)
    else:
        # Only the paid-period case is reproduced: anything else would owe a first proration.
        start = _int(backdate_start_date) or int(time.time())
        _bad(proration_behavior != "none", "Only proration_behavior=none is supported with billing_cycle_anchor")
        _bad(not start < anchor or anchor <= time.time(), "billing_cycle_anchor must be in the future")
        # A trial until the anchor skips localstripe's first invoice; it is then not a trial.
        _original_init(self, customer=customer, items=items, trial_end=anchor, backdate_start_date=start, **kwargs)
        self.trial_end = None
        self.status = "active"
        self._period = (start, anchor)
    self.cancel_at_period_end = cancel
    self.schedule = None


def _item_period(self: Any) -> dict[str, int]:
    if self._subscription:
        sub = Subscription._api_retrieve(self._subscription)
        if getattr(sub, "_period", None) is not None:
            start, end = sub._period
            return {"start": start, "end": end}
    return _original_item_period(self)


def _set_quantity(sub: Any, quantity: int) -> None:
    item = sub.items._list[0]
    sub.quantity = quantity
    item.quantity = quantity


def _proration(sub: Any, quantity: int, at: int) -> int:
    """Stripe's proration of a quantity change: the seats' price for the period's unused part."""
    start, end = _period(sub)
    at = min(max(at, start), end)
    return round((quantity - sub.quantity) * sub.plan.amount * (end - at) / (end - start))


def _proration_line(sub: Any, quantity: int, at: int) -> tuple[int, str]:
    when = datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d")
    return (_proration(sub, quantity, at),
            f"Remaining time on {quantity - sub.quantity} more seat(s) of {sub.plan.nickname or sub.plan.id} after {when}")


def _discard(invoice: Any) -> None:
    """The refused update's invoice and its proration go: the customer's list is as it was."""
    for line in invoice.lines._list:
        if getattr(line, "invoice_item", None):
            resources.store.pop("invoiceitem:" + line.invoice_item, None)
    resources.store.pop("invoice:" + invoice.id, None)


def _charge_proration(sub: Any, quantity: int, at: int, error_if_incomplete: bool) -> Any:
    """The invoice for a quantity raised now, paid or (error_if_incomplete) refused with a 402."""
    amount, description = _proration_line(sub, quantity, at)
    _, end = _period(sub)
    InvoiceItem(amount=amount, currency=sub.plan.currency, customer=sub.customer, subscription=sub.id,
                plan=sub.plan.id, proration=True, description=description, period_start=max(at, 1500000001),
                period_end=end)
    invoice = Invoice(customer=sub.customer, subscription=sub.id)
    invoice.billing_reason = "subscription_update"
    status_before = sub.status
    invoice._finalize()
    try:
        if invoice.status != "paid":
            Invoice._api_pay_invoice(invoice.id)
    except UserError:
        _discard(invoice)
        raise
    if invoice.status == "paid" or not error_if_incomplete:
        return invoice
    # Stripe's error_if_incomplete: the update is not applied and the caller gets the decline.
    charge = invoice.charge
    _discard(invoice)
    sub.status = status_before
    sub.latest_invoice = getattr(sub, "_latest_before", sub.latest_invoice)
    error = UserError(402, getattr(charge, "failure_message", None) or "Your card was declined.",
                      {"code": getattr(charge, "failure_code", None) or "card_declined",
                       "decline_code": getattr(charge, "failure_code", None) or "generic_decline"})
    error.body["error"]["type"] = "card_error"
    raise error


def _update(self: Any, items: Any = None, proration_behavior: Any = None, payment_behavior: Any = None,
            proration_date: Any = None, trial_end: Any = None, cancel_at_period_end: Any = None,
            metadata: Any = None, **kwargs: Any) -> None:
    if kwargs:
        return _original_update(self, items=items, proration_date=proration_date, trial_end=trial_end,
                                cancel_at_period_end=cancel_at_period_end, metadata=metadata, **kwargs)
    quantity = None
    if items is not None:
        _bad(type(items) is not list or len(items) != 1 or type(items[0]) is not dict)
        item = items[0]
        _bad(item.get("id") not in (None, self.items._list[0].id), "No such subscription item")
        _bad(item.get("plan") not in (None, self.plan.id) or item.get("price") not in (None, self.plan.id),
             "Changing the price is not reproduced")
        quantity = _int(item.get("quantity"))
        _bad(quantity is None or quantity < 1)
    _bad(proration_behavior not in (None, "none", "create_prorations", "always_invoice"))
    _bad(payment_behavior not in (None, "allow_incomplete", "error_if_incomplete", "default_incomplete"))
    at = _int(proration_date) or int(time.time())
    trial_end = _int(trial_end)
    _bad(trial_end is not None and trial_end <= time.time(), "trial_end must be in the future")
    cancel = resources.try_convert_to_bool(cancel_at_period_end) if cancel_at_period_end is not None else None
    _bad(cancel is not None and type(cancel) is not bool)
    _bad(metadata is not None and type(metadata) is not dict)
    if quantity is not None and quantity != self.quantity:
        if proration_behavior == "always_invoice":
            _bad(quantity < self.quantity, "Credits for fewer seats are not reproduced: schedule the decrease")
            self._latest_before = self.latest_invoice
            _charge_proration(self, quantity, at, payment_behavior == "error_if_incomplete")
        else:
            _bad(proration_behavior != "none", "Only always_invoice or none prorations are reproduced")
        _set_quantity(self, quantity)
    if trial_end is not None:
        start, _ = _period(self)
        self._period = (start, trial_end)
        self.trial_end = trial_end
        self.status = "trialing"
    if cancel is not None:
        self.cancel_at_period_end = cancel
    if metadata:
        self.metadata = {**(self.metadata or {}), **metadata}
    schedule_webhook(Event("customer.subscription.updated", self))


# --- subscription schedules -----------------------------------------------------------------


class SubscriptionSchedule(resources.StripeObject):
    object = "subscription_schedule"
    _id_prefix = "sub_sched_"

    def __init__(self, from_subscription: Any = None, **kwargs: Any) -> None:
        _bad(bool(kwargs), "Only from_subscription is reproduced")
        _bad(type(from_subscription) is not str or not from_subscription.startswith("sub_"))
        sub = Subscription._api_retrieve(from_subscription)
        _bad(getattr(sub, "schedule", None) is not None,
             "You cannot migrate a subscription that is already attached to a schedule")
        super().__init__()
        start, end = _period(sub)
        self.customer = sub.customer
        self.subscription = sub.id
        self.status = "active"
        self.end_behavior = "release"
        self.released_subscription = None
        self.metadata = {}
        self.phases = [{"start_date": start, "end_date": end,
                        "items": [{"plan": sub.plan.id, "price": sub.plan.id, "quantity": sub.quantity}]}]
        sub.schedule = self.id

    def _update(self, phases: Any = None, end_behavior: Any = None, proration_behavior: Any = None,
                metadata: Any = None, **kwargs: Any) -> None:
        _bad(bool(kwargs), "Unexpected " + ", ".join(kwargs))
        _bad(self.status != "active", "This schedule is not active")
        sub = Subscription._api_retrieve(self.subscription)
        if phases is not None:
            _bad(type(phases) is not list or not phases)
            parsed = []
            previous_end = None
            for phase in phases:
                _bad(type(phase) is not dict)
                items = phase.get("items")
                _bad(type(items) is not list or len(items) != 1 or type(items[0]) is not dict)
                plan = items[0].get("price") or items[0].get("plan")
                _bad(plan != sub.plan.id, "Changing the price is not reproduced")
                quantity = _int(items[0].get("quantity"))
                _bad(quantity is None or quantity < 1)
                start = _int(phase.get("start_date")) or previous_end
                end = _int(phase.get("end_date"))
                _bad(start is None or (end is not None and end <= start))
                parsed.append({"start_date": start, "end_date": end,
                               "items": [{"plan": plan, "price": plan, "quantity": quantity}]})
                previous_end = end
            _bad(parsed[0]["start_date"] != _period(sub)[0], "The first phase must be the current one")
            self.phases = parsed
        if end_behavior is not None:
            _bad(end_behavior not in ("release", "cancel"))
            self.end_behavior = end_behavior
        if metadata:
            self.metadata = {**self.metadata, **metadata}

    def _release(self) -> None:
        self.status = "released"
        self.released_subscription = self.subscription
        Subscription._api_retrieve(self.subscription).schedule = None

    def _phase_from(self, moment: int) -> dict[str, Any] | None:
        """The phase that starts at `moment` (a period's end), if any."""
        return next((p for p in self.phases if p["start_date"] == moment), None)


def _schedule_release(id: Any, **kwargs: Any) -> Any:
    schedule = SubscriptionSchedule._api_retrieve(id)
    _bad(schedule.status != "active", "This schedule is not active")
    schedule._release()
    return schedule


def _schedule_update(id: Any, **data: Any) -> Any:
    return SubscriptionSchedule._api_update(id, **data)


def _schedule_retrieve(id: Any, **data: Any) -> Any:
    return SubscriptionSchedule._api_retrieve(id)


def _schedule_create(**data: Any) -> Any:
    return SubscriptionSchedule(**data)


# --- previews ---------------------------------------------------------------------------------


class _Preview:
    """An invoice that is computed and shown, never stored (Stripe keeps previews 72 h at most)."""

    def __init__(self, sub: Any, lines: list[tuple[int, int, str, bool, int, int]], date: int) -> None:
        total = sum(amount for amount, *_ in lines)
        self.body = {
            "id": f"upcoming_{sub.id}", "object": "invoice", "customer": sub.customer, "subscription": sub.id,
            "currency": sub.plan.currency, "subtotal": total, "total": total, "amount_due": total,
            "status": "draft", "created": date, "next_payment_attempt": date,
            "period_start": lines[0][4] if lines else date, "period_end": lines[0][5] if lines else date,
            "lines": {"object": "list", "has_more": False, "data": [
                {"object": "line_item", "amount": amount, "quantity": quantity, "description": description,
                 "proration": proration, "currency": sub.plan.currency, "period": {"start": start, "end": end}}
                for amount, quantity, description, proration, start, end in lines]},
        }

    def _export(self, expand: Any = None) -> dict[str, Any]:
        return self.body


def _create_preview(customer: Any = None, subscription: Any = None, subscription_details: Any = None,
                    **kwargs: Any) -> Any:
    if subscription is None:
        return _original_preview(Invoice, customer=customer, subscription=subscription,
                                 subscription_details=subscription_details, **kwargs)
    _bad(bool(kwargs), "Unexpected " + ", ".join(kwargs))
    sub = Subscription._api_retrieve(subscription)
    _bad(customer not in (None, sub.customer))
    details = subscription_details or {}
    _bad(type(details) is not dict)
    behavior = details.get("proration_behavior", "create_prorations")
    at = _int(details.get("proration_date")) or int(time.time())
    quantity = None
    if details.get("items") is not None:
        items = details["items"]
        _bad(type(items) is not list or len(items) != 1 or type(items[0]) is not dict)
        quantity = _int(items[0].get("quantity"))
        _bad(quantity is None or quantity < 1)
    start, end = _period(sub)
    if behavior == "always_invoice":
        amount, description = _proration_line(sub, quantity or sub.quantity, at)
        lines = [(amount, (quantity or sub.quantity) - sub.quantity, description, True, at, end)] if amount > 0 else []
        return _Preview(sub, lines, at)
    if quantity is None:
        schedule = SubscriptionSchedule._api_retrieve(sub.schedule) if getattr(sub, "schedule", None) else None
        phase = schedule._phase_from(end) if schedule else None
        quantity = phase["items"][0]["quantity"] if phase else sub.quantity
    next_end = _next_end(sub, end)
    return _Preview(sub, [(quantity * sub.plan.amount, quantity, f"{quantity} x {sub.plan.nickname or sub.plan.id}",
                           False, end, next_end)], end)


# --- time passing (tests) ---------------------------------------------------------------------


def renew(sub: Any) -> Any:
    """The current period ends now: what Stripe does at a renewal."""
    start, end = _period(sub)
    if sub.cancel_at_period_end or sub.status == "canceled":
        sub.status = "canceled"
        sub.ended_at = end
        schedule_webhook(Event("customer.subscription.deleted", sub))
        return sub
    schedule = SubscriptionSchedule._api_retrieve(sub.schedule) if getattr(sub, "schedule", None) else None
    if schedule is not None:
        phase = schedule._phase_from(end)
        if phase is not None:
            _set_quantity(sub, phase["items"][0]["quantity"])
        if not any(p["start_date"] > end for p in schedule.phases):
            schedule._release()
    sub._period = (end, _next_end(sub, end))
    sub.trial_end = None
    sub.status = "active"
    invoice = Invoice(customer=sub.customer, subscription=sub.id, items=list(sub.items._list))
    invoice.billing_reason = "subscription_cycle"
    invoice._finalize()
    if invoice.status != "paid":
        try:
            Invoice._api_pay_invoice(invoice.id)
        except UserError:
            pass  # no card at all: the renewal is owed all the same
    if invoice.status == "paid":
        sub.status = "active"
    else:
        # localstripe's pay leaves a refused invoice open without telling anyone: Stripe sends
        # invoice.payment_failed and the subscription becomes past_due.
        invoice._on_payment_failure_now()
    schedule_webhook(Event("customer.subscription.updated", sub))
    return sub


async def _renew_route(request: Any) -> Any:
    return json_response(renew(Subscription._api_retrieve(request.match_info["id"]))._export())


def close_subscription_gaps(app_router: Any = None) -> None:
    """Patches the classes and registers the routes; `app_router` (after the server is imported)
    gets the test-only renewal route."""
    if app_router is not None:
        app_router.add_post("/_config/subscriptions/{id}/renew", _renew_route)
        return
    Subscription.__init__ = _init
    Subscription._update = _update
    Subscription.current_period_start = property(lambda self: _period(self)[0])
    Subscription.current_period_end = property(lambda self: _period(self)[1])
    SubscriptionItem._current_period = _item_period
    routes = resources.extra_apis
    for i, (method, url, _func) in enumerate(routes):
        if method == "POST" and url == "/v1/invoices/create_preview":
            routes[i] = (method, url, _create_preview)
    routes.extend((
        ("POST", "/v1/subscription_schedules", _schedule_create),
        ("GET", "/v1/subscription_schedules/{id}", _schedule_retrieve),
        ("POST", "/v1/subscription_schedules/{id}", _schedule_update),
        ("POST", "/v1/subscription_schedules/{id}/release", _schedule_release),
    ))
