"""Webhook deliveries from the payment provider: verified with the stripe SDK, then plain values.

A delivery is trusted only when its `Stripe-Signature` header carries an HMAC-SHA256, by the
endpoint's signing secret, of `<timestamp>.<raw body>`, and the timestamp is at most
`TOLERANCE_SECONDS` old (Stripe's own default): a captured delivery cannot be replayed
later. The SDK's `WebhookSignature.verify_header` does both checks; which one failed is
told apart by asking it again without the age limit, never by reading its message. The SDK
does not refuse a timestamp in the future (a delivery signed ahead, to be replayed until
then): that is checked here, with the same tolerance for clock skew.

Only a verified body is parsed. What the gateway acts on is taken out of the event here
(its object's id, customer, invoice, amount, decline reason), so nothing above this module
reads a provider payload; `payload` keeps the event as it came, for the record.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import stripe

from datasources.errors import BadUserInput
from datasources.payments.client import declined
from datasources.payments.records import DeclineReason
from datasources.values import storable

TOLERANCE_SECONDS = 300
MAX_ID_LENGTH = 255
# No event of the provider is older than the provider.
EARLIEST_EVENT = int(datetime(2010, 1, 1, tzinfo=timezone.utc).timestamp())


class InvalidWebhook(BadUserInput):
    """A delivery that is not a verified, well-formed event; `reason` says which check failed."""


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """One provider event, as far as the gateway reads it. Amounts in minor units."""

    id: str  # the provider's event id (evt_...): unique per event, repeated on redelivery
    type: str  # e.g. "invoice.paid"
    created: datetime  # when the provider created the event (UTC)
    object_type: str | None  # "invoice", "payment_intent", ...
    object_id: str | None
    customer_id: str | None
    invoice_id: str | None  # the invoice itself, or the one a payment intent pays
    amount: int | None  # an invoice's amount paid, a payment intent's amount
    amount_due: int | None  # an invoice's amount due (None for other objects)
    currency: str | None  # upper-case ISO 4217
    decline_reason: DeclineReason | None  # a failed payment intent's, in the gateway's terms
    subscription_id: str | None  # the subscription itself, or the one an invoice bills
    billing_reason: str | None  # an invoice's: "subscription_cycle" for a renewal
    payload: dict[str, Any]  # the whole event, as delivered


def verify_event(body: bytes, signature_header: str | None, secret: str,
                 tolerance_seconds: int = TOLERANCE_SECONDS) -> ProviderEvent:
    """The event in `body`, once its signature and age are verified; InvalidWebhook otherwise."""
    if not signature_header:
        raise InvalidWebhook("The Stripe-Signature header is missing.", reason="MISSING_SIGNATURE")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidWebhook("The body is not UTF-8 text.", reason="MALFORMED_BODY") from None
    try:
        stripe.WebhookSignature.verify_header(text, signature_header, secret, tolerance_seconds)
    except stripe.SignatureVerificationError:
        try:
            stripe.WebhookSignature.verify_header(text, signature_header, secret, None)
        except stripe.SignatureVerificationError:
            raise InvalidWebhook("The Stripe-Signature header does not match the body and the signing secret.",
                                 reason="BAD_SIGNATURE") from None
        raise InvalidWebhook(f"The signature's timestamp is more than {tolerance_seconds} seconds old.",
                             reason="STALE_TIMESTAMP") from None
    now = time.time()
    if _signed_at(signature_header) > now + tolerance_seconds:
        raise InvalidWebhook(f"The signature's timestamp is more than {tolerance_seconds} seconds in the future.",
                             reason="FUTURE_TIMESTAMP")
    return _event(_parsed(text, latest=now + tolerance_seconds))


def _signed_at(header: str) -> int:
    """The `t=` of a header the SDK has verified (so it is there, and a whole number): its first, as the SDK reads."""
    return next(int(value) for name, _, value in (item.partition("=") for item in header.split(",")) if name == "t")


def _parsed(text: str, *, latest: float) -> dict[str, Any]:
    try:
        event = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
        raise _malformed("the body is not JSON") from None
    if not isinstance(event, dict) or event.get("object") != "event":
        raise _malformed("the body is not an event object")
    for name in ("id", "type"):
        value = event.get(name)
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_LENGTH or not storable(value):
            raise _malformed(f"`{name}` must be a string of 1 to {MAX_ID_LENGTH} characters")
    created = event.get("created")
    if isinstance(created, bool) or not isinstance(created, int) or not EARLIEST_EVENT <= created <= latest:
        raise _malformed("`created` must be the Unix time the provider made the event: after 2010, and not "
                         "in the future")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise _malformed("`data.object` is missing")
    return event


def _malformed(why: str) -> InvalidWebhook:
    return InvalidWebhook(f"The body is not a provider event: {why}.", reason="MALFORMED_BODY")


def _event(event: dict[str, Any]) -> ProviderEvent:
    obj: dict[str, Any] = event["data"]["object"]
    object_type = _text(obj.get("object"))
    is_invoice = object_type == "invoice"
    error = obj.get("last_payment_error")
    reason: DeclineReason | None = None
    if event["type"] == "payment_intent.payment_failed":
        error = error if isinstance(error, dict) else {}
        reason = declined(_text(error.get("code")), _text(error.get("decline_code"))).extensions["reason"]
    amount = obj.get("amount_paid" if is_invoice else "amount")
    amount_due = obj.get("amount_due") if is_invoice else None
    currency = _text(obj.get("currency"))
    # Stripe moved an invoice's subscription under `parent` in 2025; older shapes have it on top.
    parent = obj.get("parent") if isinstance(obj.get("parent"), dict) else {}
    details = parent.get("subscription_details") if isinstance(parent.get("subscription_details"), dict) else {}
    subscription = (_id(obj) if object_type == "subscription"
                    else _id(obj.get("subscription")) or _id(details.get("subscription")) if is_invoice else None)
    return ProviderEvent(
        id=event["id"],
        type=event["type"],
        created=datetime.fromtimestamp(event["created"], timezone.utc),
        object_type=object_type,
        object_id=_id(obj),
        customer_id=_customer_of(event, obj, object_type),
        invoice_id=_id(obj) if is_invoice else _id(obj.get("invoice")),
        amount=_whole(amount),
        amount_due=_whole(amount_due),
        currency=currency.upper() if currency else None,
        decline_reason=reason,
        subscription_id=subscription,
        billing_reason=_text(obj.get("billing_reason")) if is_invoice else None,
        payload=event,
    )


def _customer_of(event: dict[str, Any], obj: dict[str, Any], object_type: str | None) -> str | None:
    """The customer the event is about: the object itself for `customer.*`; for a payment method
    just detached (its `customer` now null), the one it had, from `previous_attributes`."""
    if object_type == "customer":
        return _id(obj)
    previous = event["data"].get("previous_attributes")
    return _id(obj.get("customer")) or (_id(previous.get("customer")) if isinstance(previous, dict) else None)


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _id(value: Any) -> str | None:
    """An object's id, whether the event holds the object (expanded) or only its id."""
    if isinstance(value, dict):
        value = value.get("id")
    text = _text(value)
    # The provider's ids are short; a longer one (only a signed event can carry it) names nothing.
    return text if text is not None and len(text) <= MAX_ID_LENGTH else None


def _text(value: Any) -> str | None:
    """A string the gateway reads out of the event; one that text cannot hold is as good as none."""
    return value if isinstance(value, str) and value and storable(value) else None
