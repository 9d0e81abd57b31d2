"""The payment provider behind one small async interface: the only user of the stripe SDK.

Every call goes through `_call`, which turns stripe's exceptions into the gateway's own
errors, so nothing above this module sees a provider exception or provider wording.
Responses are converted to plain dicts at once (`to_dict`) and mapped to the frozen
records in `records.py`; missing fields are tolerated because localstripe (the emulator)
returns a subset, and sometimes an older shape, of Stripe's objects.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

import stripe

from datasources.instrumentation import count_provider_call

from datasources.errors import BadUserInput, NotFound, PaymentDeclined, ProviderUnavailable
from datasources.payments.records import (
    Address,
    Customer,
    DeclineReason,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    PaymentMethod,
)

UNAVAILABLE = "The payment provider is unavailable; try again shortly."
PAGE_SIZE = 100  # Stripe's maximum page size

T = TypeVar("T")

_DECLINE_REASONS: dict[str, DeclineReason] = {
    "card_declined": "CARD_DECLINED",
    "generic_decline": "CARD_DECLINED",
    "insufficient_funds": "INSUFFICIENT_FUNDS",
    "expired_card": "EXPIRED_CARD",
    "incorrect_cvc": "INCORRECT_CVC",
    "invalid_cvc": "INCORRECT_CVC",
    "processing_error": "PROCESSING_ERROR",
}
_DECLINE_MESSAGES: dict[DeclineReason, str] = {
    "CARD_DECLINED": "The card was declined.",
    "INSUFFICIENT_FUNDS": "The card has insufficient funds.",
    "EXPIRED_CARD": "The card has expired.",
    "INCORRECT_CVC": "The card's security code is incorrect.",
    "PROCESSING_ERROR": "The card could not be processed; try again.",
    "OTHER": "The payment was not completed.",
}
_STATUSES: dict[str, InvoiceStatus] = {
    "draft": "DRAFT",
    "open": "OPEN",
    "paid": "PAID",
    "void": "VOID",
    "uncollectible": "UNCOLLECTIBLE",
}


def declined(code: str | None, decline_code: str | None = None) -> PaymentDeclined:
    """Our PaymentDeclined for a provider (decline_)code; the provider's text is dropped."""
    # Stripe puts the specific cause in decline_code under the generic card_declined.
    reason = _DECLINE_REASONS.get(decline_code or "") or _DECLINE_REASONS.get(code or "", "OTHER")
    return PaymentDeclined(_DECLINE_MESSAGES[reason], reason=reason)


def step_key(key: str, step: str) -> str:
    """One idempotency key per provider POST of an operation, derived from the caller's.

    Stripe keys are at most 255 characters: long caller keys are hashed, not truncated,
    so two different long keys can never collide on a shared prefix.
    """
    if len(key) > 200:
        key = hashlib.sha256(key.encode()).hexdigest()
    return f"{key}:{step}"


class _HTTPXClient(stripe.HTTPXClient):
    """stripe's httpx client, minus a DeprecationWarning on every POST.

    The SDK hands its already-encoded form body to httpx as `data=`, which httpx
    deprecates for raw bytes/str in favour of `content=`. If a future SDK renames this
    hook, the override simply stops applying and only the warning comes back.
    """

    def _get_request_args_kwargs(self, method: str, url: str, headers: Any, post_data: Any) -> Any:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        if isinstance(kwargs.get("data"), (str, bytes)):
            kwargs["content"] = kwargs.pop("data")
        return args, kwargs


class PaymentsClient:
    def __init__(self, api_key: str, api_base: str | None = None, timeout_seconds: float = 10.0) -> None:
        self._http = _HTTPXClient(timeout=timeout_seconds)
        # No SDK retries: a retry belongs to the caller, which owns the idempotency key.
        self._stripe = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            http_client=self._http,
            max_network_retries=0,
        )
        self._v1 = self._stripe.v1

    async def close(self) -> None:
        await self._http.close_async()

    # --- customers ------------------------------------------------------------------

    async def create_customer(
        self,
        *,
        name: str,
        email: str,
        metadata: dict[str, str],
        idempotency_key: str,
        address: Address | None = None,
        vat_id: str | None = None,
    ) -> Customer:
        params: dict[str, Any] = {"name": name, "email": email, "metadata": dict(metadata)}
        if address is not None:
            # The emulator rejects null address fields: send only those that are set.
            params["address"] = {k: v for k, v in _address_params(address).items() if v is not None}
        if vat_id:
            params["tax_id_data"] = [{"type": "eu_vat", "value": vat_id}]
        obj = await _call(lambda: self._v1.customers.create_async(
            params, {"idempotency_key": step_key(idempotency_key, "customer")}
        ))
        return _customer(obj)

    async def get_customer(self, customer_id: str) -> Customer | None:
        """None when the provider does not know the customer or it was deleted."""
        try:
            obj = await _call(lambda: self._v1.customers.retrieve_async(
                customer_id, {"expand": ["tax_ids"]}
            ))
        except NotFound:
            return None
        # Stripe answers a deleted customer with a stub; localstripe forgets it (404).
        if obj.get("deleted"):
            return None
        return _customer(obj)

    async def set_vat_id(self, customer_id: str, vat_id: str | None, *, idempotency_key: str | None = None) -> None:
        """Make `vat_id` the customer's one `eu_vat` tax id (None: no tax id).

        The new tax id is added before the old ones are removed, so a value the provider
        refuses (BadUserInput) changes nothing.
        """
        current = await _call(lambda: self._v1.customers.retrieve_async(customer_id, {"expand": ["tax_ids"]}))
        tax_ids = (current.get("tax_ids") or {}).get("data") or []
        keep = next((t for t in tax_ids if vat_id and t.get("value") == vat_id), None)
        if vat_id and keep is None:
            keep = await _call(lambda: self._v1.customers.tax_ids.create_async(
                customer_id, {"type": "eu_vat", "value": vat_id}, _options(idempotency_key, "tax_id")
            ))
        for stale in tax_ids:
            if keep is None or stale.get("id") != keep.get("id"):
                await _call(lambda t=stale["id"]: self._v1.customers.tax_ids.delete_async(customer_id, t))

    async def update_billing_details(
        self,
        customer_id: str,
        *,
        name: str | None,
        email: str | None,
        address: Address | None,
        vat_id: str | None,
        idempotency_key: str | None = None,
    ) -> Customer:
        """Replace the details printed on invoices; None clears a value.

        `vat_id` goes to metadata only (where `create_customer`'s callers keep it too, for
        providers that refuse the tax id): set the tax id itself with `set_vat_id` first.
        """
        # Stripe clears a value sent as "".
        params: dict[str, Any] = {
            "name": name or "",
            "email": email or "",
            "address": {k: v or "" for k, v in _address_params(address).items()} if address else "",
            "metadata": {"vat_id": vat_id or ""},
        }
        await _call(lambda: self._v1.customers.update_async(customer_id, params, _options(idempotency_key, "update")))
        updated = await self.get_customer(customer_id)
        if updated is None:
            raise NotFound("The payment provider has no such object.")
        return updated

    async def find_customers(self, *, email: str) -> list[Customer]:
        """Live customers with this email (Stripe does not make emails unique)."""
        found = await self._list_all(
            lambda params: self._v1.customers.list_async(params), {"email": email}
        )
        return [_customer(c) for c in found if not c.get("deleted")]

    # --- payment methods --------------------------------------------------------------

    async def add_card(
        self,
        customer_id: str,
        *,
        card_number: str,
        exp_month: int,
        exp_year: int,
        cvc: str,
        make_default: bool,
        idempotency_key: str,
    ) -> PaymentMethod:
        """Attach a card given as raw test numbers: for the emulator, tests and seeding.

        Real Stripe refuses raw card numbers from servers (cards are tokenized by
        Stripe.js in the browser); production code attaches a `pm_...` id instead.
        """
        pm = await _call(lambda: self._v1.payment_methods.create_async(
            {"type": "card",
             "card": {"number": card_number, "exp_month": exp_month, "exp_year": exp_year, "cvc": cvc}},
            {"idempotency_key": step_key(idempotency_key, "payment_method")},
        ))
        # The emulator declines its decline-test cards here, at attach (402 card_declined).
        await _call(lambda: self._v1.payment_methods.attach_async(
            pm["id"], {"customer": customer_id},
            {"idempotency_key": step_key(idempotency_key, "attach")},
        ))
        if make_default:
            await _call(lambda: self._v1.customers.update_async(
                customer_id,
                {"invoice_settings": {"default_payment_method": pm["id"]}},
                {"idempotency_key": step_key(idempotency_key, "default")},
            ))
        return _payment_method(pm, default_id=pm["id"] if make_default else None)

    async def attach_payment_method(
        self, customer_id: str, payment_method_id: str, *, make_default: bool, idempotency_key: str
    ) -> PaymentMethod:
        """Attach a `pm_...` created client-side (Stripe.js, or the emulator in tests).

        NotFound when the provider does not know the method, or when it belongs to another
        customer: Stripe refuses to attach such a method, the emulator would silently move
        it, so it is checked here. Attaching a method the customer already has is a no-op
        (apart from `make_default`). PaymentDeclined when the card is refused at attach.
        """
        found = await _call(lambda: self._v1.payment_methods.retrieve_async(payment_method_id))
        owner = found.get("customer")
        if isinstance(owner, dict):
            owner = owner.get("id")
        if owner not in (None, customer_id) or found.get("type") != "card":
            raise NotFound("The payment provider has no such payment method.")
        pm = found
        if owner is None:
            pm = await _call(lambda: self._v1.payment_methods.attach_async(
                payment_method_id, {"customer": customer_id},
                {"idempotency_key": step_key(idempotency_key, "attach")},
            ))
        if make_default:
            # No key of ours: setting the default is idempotent, and a replayed answer from
            # an earlier, identical request would skip a change made since.
            await self.set_default_payment_method(customer_id, pm["id"])
            return _payment_method(pm, default_id=pm["id"])
        customer = await _call(lambda: self._v1.customers.retrieve_async(customer_id))
        return _payment_method(pm, default_id=_default_payment_method_id(customer))

    async def set_default_payment_method(
        self, customer_id: str, payment_method_id: str | None, *, idempotency_key: str | None = None
    ) -> None:
        """The method invoices are paid with unless another is chosen; None clears it."""
        await _call(lambda: self._v1.customers.update_async(
            customer_id,
            {"invoice_settings": {"default_payment_method": payment_method_id or ""}},
            _options(idempotency_key, "default"),
        ))

    async def detach_payment_method(self, payment_method_id: str, *, idempotency_key: str | None = None) -> None:
        """Remove a method from its customer (permanent at Stripe). The caller replaces or
        clears the customer's default first: the emulator would keep charging a detached
        default."""
        await _call(lambda: self._v1.payment_methods.detach_async(
            payment_method_id, None, _options(idempotency_key, "detach")
        ))

    async def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        # /v1/payment_methods?customer= rather than /v1/customers/{id}/payment_methods:
        # both are Stripe, only the former exists in the emulator.
        customer, methods = await asyncio.gather(
            _call(lambda: self._v1.customers.retrieve_async(customer_id)),
            self._list_all(
                lambda params: self._v1.payment_methods.list_async(params),
                {"customer": customer_id, "type": "card"},
            ),
        )
        default_id = _default_payment_method_id(customer)
        return [_payment_method(pm, default_id=default_id) for pm in methods]

    # --- invoices -----------------------------------------------------------------------

    async def create_invoice(
        self,
        customer_id: str,
        *,
        currency: str,
        lines: list[tuple[str, int, int]],
        tax_percent: float | None,
        pay: bool,
        idempotency_key: str,
    ) -> Invoice:
        """A one-off invoice from (description, quantity, unit_amount) lines.

        Finalized (OPEN) when `pay` is false; paid with the default payment method when
        true, raising PaymentDeclined if the card is refused (the invoice stays OPEN).
        Pending invoice items are swept into the new invoice, so do not create two
        invoices for one customer concurrently.
        """
        if not lines:
            raise BadUserInput("An invoice needs at least one line.")
        if any(q <= 0 or a < 0 for _, q, a in lines):
            raise BadUserInput("Invoice lines need a positive quantity and a non-negative amount.")
        cur = currency.lower()
        tax_rates: list[str] = []
        if tax_percent:
            # Tax rates rather than the removed `tax_percent` parameter: Stripe dropped it,
            # the emulator supports both.
            rate = await _call(lambda: self._v1.tax_rates.create_async(
                {"display_name": "VAT", "percentage": float(tax_percent), "inclusive": False},
                {"idempotency_key": step_key(idempotency_key, "tax_rate")},
            ))
            tax_rates = [rate["id"]]
        for i, (description, quantity, unit_amount) in enumerate(lines):
            # One amount per item (quantity × unit): the emulator's items have no
            # quantity, so the quantity travels in metadata and is read back from there.
            await _call(lambda: self._v1.invoice_items.create_async(
                {"customer": customer_id, "currency": cur, "amount": quantity * unit_amount,
                 "description": description,
                 "metadata": {"quantity": str(quantity), "unit_amount": str(unit_amount)}},
                {"idempotency_key": step_key(idempotency_key, f"item{i}")},
            ))
        params: dict[str, Any] = {"customer": customer_id, "pending_invoice_items_behavior": "include"}
        if tax_rates:
            params["default_tax_rates"] = tax_rates
        invoice = await _call(lambda: self._v1.invoices.create_async(
            params, {"idempotency_key": step_key(idempotency_key, "invoice")}
        ))
        if pay:
            return await self.pay_invoice(invoice["id"], idempotency_key=idempotency_key)
        invoice = await _call(lambda: self._v1.invoices.finalize_invoice_async(
            invoice["id"], None, {"idempotency_key": step_key(idempotency_key, "finalize")}
        ))
        return _invoice(invoice)

    async def pay_invoice(
        self, invoice_id: str, *, idempotency_key: str, payment_method_id: str | None = None
    ) -> Invoice:
        """Pay with the customer's default method, or `payment_method_id` (one of the
        customer's). PaymentDeclined when the card is refused: the invoice stays OPEN."""
        params = {"payment_method": payment_method_id} if payment_method_id else None
        invoice = await _call(lambda: self._v1.invoices.pay_async(
            invoice_id, params, {"idempotency_key": step_key(idempotency_key, "pay")}
        ))
        if invoice.get("status") != "paid":
            # Stripe answers a refused card with a 402 (handled in _call); the emulator
            # answers 200 with the invoice still open and the failed charge inside it.
            charge = invoice.get("charge")
            code = charge.get("failure_code") if isinstance(charge, dict) else None
            raise declined(code)
        return _invoice(invoice)

    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        """One invoice as the provider has it now; None when it does not know the id."""
        try:
            inv = await _call(lambda: self._v1.invoices.retrieve_async(invoice_id))
        except NotFound:
            return None
        return await self._with_all_lines(inv)

    async def list_invoices(self, customer_id: str) -> list[Invoice]:
        """All the customer's invoices, newest first."""
        raw = await self._list_all(
            lambda params: self._v1.invoices.list_async(params), {"customer": customer_id}
        )
        return [await self._with_all_lines(inv) for inv in raw]

    async def _with_all_lines(self, inv: dict[str, Any]) -> Invoice:
        lines = inv.get("lines") or {}
        if lines.get("has_more"):
            # Embedded lines stop at 10; fetch the rest (rare: large invoices only).
            inv["lines"] = {"data": await self._list_all(
                lambda params, i=inv["id"]: self._v1.invoices.line_items.list_async(i, params), {}
            )}
        return _invoice(inv)

    async def _list_all(
        self, fetch: Callable[[dict[str, Any]], Awaitable[Any]], params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page_params = {**params, "limit": PAGE_SIZE}
        while True:
            page = await _call(lambda: fetch(page_params))
            data = page.get("data") or []
            items.extend(data)
            if not page.get("has_more") or not data:
                return items
            page_params = {**page_params, "starting_after": data[-1]["id"]}


# --- the boundary: errors in, plain dicts out -------------------------------------------


async def _call(request: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    """Run one SDK request; return its body as a plain dict; translate every failure."""
    count_provider_call()
    try:
        obj = await request()
    except stripe.CardError as exc:
        raise declined(exc.code, _decline_code(exc)) from None
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            raise NotFound("The payment provider has no such object.") from None
        raise BadUserInput("The payment provider rejected the request.") from None
    except stripe.IdempotencyError:
        raise BadUserInput("This request key was already used for a different request.") from None
    except stripe.StripeError:
        # Connection failures and timeouts, 5xx, rate limits, and our own
        # misconfiguration (authentication, permission): nothing the user can fix.
        raise ProviderUnavailable(UNAVAILABLE) from None
    return obj.to_dict()


def _options(idempotency_key: str | None, step: str) -> dict[str, Any]:
    """Request options: our derived key when the caller has one; else the SDK's random one."""
    return {"idempotency_key": step_key(idempotency_key, step)} if idempotency_key else {}


def _default_payment_method_id(customer: dict[str, Any]) -> str | None:
    default_id = (customer.get("invoice_settings") or {}).get("default_payment_method")
    if isinstance(default_id, dict):  # expanded
        default_id = default_id.get("id")
    return default_id or None


def _decline_code(exc: stripe.CardError) -> str | None:
    body = exc.json_body or {}
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("decline_code") if isinstance(error, dict) else None


def _address_params(address: Address) -> dict[str, str | None]:
    return {"line1": address.line1, "line2": address.line2, "city": address.city,
            "postal_code": address.postal_code, "state": address.state, "country": address.country}


def _customer(d: dict[str, Any]) -> Customer:
    addr = d.get("address")
    # Stripe deletes a metadata key set to ""; the emulator keeps it empty.
    metadata = {str(k): str(v) for k, v in (d.get("metadata") or {}).items() if v not in ("", None)}
    tax_ids = (d.get("tax_ids") or {}).get("data") or []
    vat_id = next((t.get("value") for t in tax_ids if t.get("value")), None)
    address = Address(**{k: addr.get(k) or None for k in _address_params(Address())}) if addr else None
    return Customer(
        id=d["id"],
        # A value cleared with "" reads back as "" from the emulator (Stripe: null).
        name=d.get("name") or None,
        email=d.get("email") or None,
        address=address if address != Address() else None,
        vat_id=vat_id or metadata.get("vat_id") or None,
        default_payment_method_id=_default_payment_method_id(d),
        metadata=metadata,
    )


def _payment_method(d: dict[str, Any], *, default_id: str | None) -> PaymentMethod:
    card = d.get("card") or {}
    return PaymentMethod(
        id=d["id"],
        brand=str(card.get("brand") or "unknown").lower(),
        last4=str(card.get("last4") or ""),
        exp_month=int(card.get("exp_month") or 0),
        exp_year=int(card.get("exp_year") or 0),
        is_default=d["id"] == default_id,
    )


def _invoice_status(d: dict[str, Any]) -> InvoiceStatus:
    status = _STATUSES.get(d.get("status") or "", "DRAFT")
    # Stores written by unpatched localstripe (no finalize) keep unpaid invoices in
    # "draft" until paid. From the portal's side such an invoice is owed money, so a
    # draft with something due counts as OPEN; a 0-amount draft stays DRAFT.
    if status == "DRAFT" and int(d.get("amount_due") or 0) > 0:
        return "OPEN"
    return status


def _invoice(d: dict[str, Any]) -> Invoice:
    currency = str(d.get("currency") or "").upper()
    subtotal = int(d.get("subtotal") or 0)
    total = int(d.get("total") or 0)
    tax = d.get("tax")
    if tax is None:  # newer Stripe API versions: only total_taxes
        tax = sum(int(t.get("amount") or 0) for t in d.get("total_taxes") or [])
    status = _invoice_status(d)
    # Stripe keeps amount_due unchanged after payment; callers want what is still owed.
    if "amount_remaining" in d:
        remaining = int(d["amount_remaining"] or 0)
    else:
        remaining = int(d.get("amount_due") or 0) - int(d.get("amount_paid") or 0)
    if status in ("PAID", "VOID"):
        remaining = 0
    lines = tuple(
        InvoiceLine(
            description=str(line.get("description") or ""),
            quantity=int((line.get("metadata") or {}).get("quantity") or line.get("quantity") or 1),
            amount=int(line.get("amount") or 0),
            currency=str(line.get("currency") or currency).upper(),
        )
        for line in (d.get("lines") or {}).get("data") or []
    )
    due = d.get("due_date")
    return Invoice(
        id=d["id"],
        number=d.get("number"),
        customer_id=d["customer"] if isinstance(d.get("customer"), str) else d["customer"]["id"],
        status=status,
        created=datetime.fromtimestamp(int(d["created"]), tz=timezone.utc),
        due_date=datetime.fromtimestamp(int(due), tz=timezone.utc) if due else None,
        currency=currency,
        subtotal=subtotal,
        tax=int(tax),
        total=total,
        amount_due=max(remaining, 0),
        lines=lines,
        pdf_url=d.get("invoice_pdf"),
    )
