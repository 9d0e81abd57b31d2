"""The payment provider behind one small async interface: the only user of the stripe SDK.

Every request goes through `_read` or `_write`, which time-box it, retry it where that is
safe, run it behind the client's circuit breaker (`breaker.py`), and turn stripe's
exceptions into the gateway's own errors, so nothing above this module sees a provider
exception or provider wording.

Faults (see `_attempts`):
- Time box: one request, retries and back-off included, takes at most `timeout_seconds`;
  each attempt at most `attempt_timeout_seconds` of it (default: the whole box, so a
  provider that hangs costs one attempt and a fast failure leaves room for retries).
- Retries (at most `max_retries`, with short jittered back-off) on connection errors,
  timeouts, 5xx, 409 and 429: always for reads; for writes only when they carry an
  idempotency key, which is then the SAME key on every attempt (`_write` owns the
  options); an unkeyed write only when the failed attempt never left (connect failure).
  Declines and other 4xx are answers, never retried.
- Circuit breaker: one request (after its retries) is one success or failure.
- A write that was sent and got no answer ends in `OutcomeUnknown` (a ProviderUnavailable):
  the provider may have applied it. `pay_invoice` re-reads the invoice before each retry,
  so an answer lost on the way back is found PAID instead of being paid again.
Responses are converted to plain dicts at once (`to_dict`) and mapped to the frozen
records in `records.py`; missing fields are tolerated because localstripe (the emulator)
returns a subset, and sometimes an older shape, of Stripe's objects.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

import httpx
import stripe

from datasources.errors import BadUserInput, NotFound, PaymentDeclined, ProviderUnavailable
from datasources.instrumentation import count_provider_call, provider_call
from datasources.payments.breaker import CircuitBreaker
from datasources.payments.records import (
    Address,
    Customer,
    DeclineReason,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    PaymentMethod,
)
from datasources.payments.subscriptions import SubscriptionCalls

UNAVAILABLE = "The payment provider is unavailable; try again shortly."
PAGE_SIZE = 100  # Stripe's maximum page size

T = TypeVar("T")
log = logging.getLogger("gateway.payments")


class OutcomeUnknown(ProviderUnavailable):
    """A write reached (or may have reached) the provider and no answer came back in time:
    it may or may not have been applied. Retrying with the same idempotency key is safe."""

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


class PaymentsClient(SubscriptionCalls):
    """One per process: it holds the connection pool and the circuit breaker.

    `timeout_seconds` bounds each request, retries included; `attempt_timeout_seconds`
    (default: all of it) bounds one attempt. `max_retries` retries, `retry_backoff_seconds`
    the first back-off (doubled per retry, jittered ±50 %). The breaker opens after
    `breaker_failure_threshold` failed requests in a row and lets a trial through after
    `breaker_cooldown_seconds`.
    """

    def __init__(self, api_key: str, api_base: str | None = None, timeout_seconds: float = 10.0, *,
                 attempt_timeout_seconds: float | None = None, max_retries: int = 2,
                 retry_backoff_seconds: float = 0.1, breaker_failure_threshold: int = 5,
                 breaker_cooldown_seconds: float = 10.0) -> None:
        if timeout_seconds <= 0 or max_retries < 0 or retry_backoff_seconds < 0:
            raise ValueError("timeouts must be positive, retries and back-off not negative")
        self._timeout = float(timeout_seconds)
        self._attempt_timeout = min(float(attempt_timeout_seconds or timeout_seconds), self._timeout)
        self._max_retries = max_retries
        self._backoff = retry_backoff_seconds
        self.breaker = CircuitBreaker(failure_threshold=breaker_failure_threshold,
                                      cooldown_seconds=breaker_cooldown_seconds, unavailable_message=UNAVAILABLE)
        self._http = _HTTPXClient(timeout=self._attempt_timeout)
        # No SDK retries: ours (`_attempts`) keep the key and respect the time box.
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
        obj = await self._write(lambda o: self._v1.customers.create_async(params, o),
                                step_key(idempotency_key, "customer"))
        return _customer(obj)

    async def get_customer(self, customer_id: str) -> Customer | None:
        """None when the provider does not know the customer or it was deleted."""
        try:
            obj = await self._read(lambda: self._v1.customers.retrieve_async(
                customer_id, {"expand": ["tax_ids"]}
            ))
        except NotFound:
            return None
        # Stripe answers a deleted customer with a stub; localstripe forgets it (404).
        if obj.get("deleted"):
            return None
        return _customer(obj)

    async def set_tax_id(self, customer_id: str, tax_type: str, value: str | None, *,
                         idempotency_key: str | None = None) -> None:
        """Make (`tax_type`, `value`) the customer's one tax id (value None: no tax id).

        The new tax id is added before the old ones are removed, so a value the provider
        refuses (BadUserInput) changes nothing.
        """
        current = await self._read(lambda: self._v1.customers.retrieve_async(customer_id, {"expand": ["tax_ids"]}))
        tax_ids = (current.get("tax_ids") or {}).get("data") or []
        keep = next((t for t in tax_ids if value and (t.get("type"), t.get("value")) == (tax_type, value)), None)
        if value and keep is None:
            keep = await self._write(lambda o: self._v1.customers.tax_ids.create_async(
                customer_id, {"type": tax_type, "value": value}, o
            ), _key(idempotency_key, "tax_id"))
        for stale in tax_ids:
            if keep is None or stale.get("id") != keep.get("id"):
                await self._write(lambda o, t=stale["id"]: self._v1.customers.tax_ids.delete_async(
                    customer_id, t, None, o), None)

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

        `vat_id`, an EU VAT number, goes to metadata only (where `create_customer`'s callers keep
        it too, for providers that refuse the tax id): set the tax id itself with `set_tax_id` first.
        """
        # Stripe clears a value sent as "".
        params: dict[str, Any] = {
            "name": name or "",
            "email": email or "",
            "address": {k: v or "" for k, v in _address_params(address).items()} if address else "",
            "metadata": {"vat_id": vat_id or ""},
        }
        await self._write(lambda o: self._v1.customers.update_async(customer_id, params, o),
                          _key(idempotency_key, "update"))
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
        pm = await self._write(lambda o: self._v1.payment_methods.create_async(
            {"type": "card",
             "card": {"number": card_number, "exp_month": exp_month, "exp_year": exp_year, "cvc": cvc}}, o,
        ), step_key(idempotency_key, "payment_method"))
        # The emulator declines its decline-test cards here, at attach (402 card_declined).
        await self._write(lambda o: self._v1.payment_methods.attach_async(
            pm["id"], {"customer": customer_id}, o,
        ), step_key(idempotency_key, "attach"))
        if make_default:
            await self._write(lambda o: self._v1.customers.update_async(
                customer_id, {"invoice_settings": {"default_payment_method": pm["id"]}}, o,
            ), step_key(idempotency_key, "default"))
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
        found = await self._read(lambda: self._v1.payment_methods.retrieve_async(payment_method_id))
        owner = found.get("customer")
        if isinstance(owner, dict):
            owner = owner.get("id")
        if owner not in (None, customer_id) or found.get("type") != "card":
            raise NotFound("The payment provider has no such payment method.")
        pm = found
        if owner is None:
            pm = await self._write(lambda o: self._v1.payment_methods.attach_async(
                payment_method_id, {"customer": customer_id}, o,
            ), step_key(idempotency_key, "attach"))
        if make_default:
            # No key of ours: setting the default is idempotent, and a replayed answer from
            # an earlier, identical request would skip a change made since.
            await self.set_default_payment_method(customer_id, pm["id"])
            return _payment_method(pm, default_id=pm["id"])
        customer = await self._read(lambda: self._v1.customers.retrieve_async(customer_id))
        return _payment_method(pm, default_id=_default_payment_method_id(customer))

    async def set_default_payment_method(
        self, customer_id: str, payment_method_id: str | None, *, idempotency_key: str | None = None
    ) -> None:
        """The method invoices are paid with unless another is chosen; None clears it."""
        await self._write(lambda o: self._v1.customers.update_async(
            customer_id, {"invoice_settings": {"default_payment_method": payment_method_id or ""}}, o,
        ), _key(idempotency_key, "default"))

    async def detach_payment_method(self, payment_method_id: str, *, idempotency_key: str | None = None) -> None:
        """Remove a method from its customer (permanent at Stripe). The caller replaces or
        clears the customer's default first: the emulator would keep charging a detached
        default."""
        await self._write(lambda o: self._v1.payment_methods.detach_async(payment_method_id, None, o),
                          _key(idempotency_key, "detach"))

    async def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        # /v1/payment_methods?customer= rather than /v1/customers/{id}/payment_methods:
        # both are Stripe, only the former exists in the emulator.
        # Both run to their end (return_exceptions): a failure of one must not leave the
        # other retrying in the background after the caller has moved on.
        customer, methods = await asyncio.gather(
            self._read(lambda: self._v1.customers.retrieve_async(customer_id)),
            self._list_all(
                lambda params: self._v1.payment_methods.list_async(params),
                {"customer": customer_id, "type": "card"},
            ),
            return_exceptions=True,
        )
        for outcome in (customer, methods):
            if isinstance(outcome, BaseException):
                raise outcome
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
            rate = await self._write(lambda o: self._v1.tax_rates.create_async(
                {"display_name": "VAT", "percentage": float(tax_percent), "inclusive": False}, o,
            ), step_key(idempotency_key, "tax_rate"))
            tax_rates = [rate["id"]]
        for i, (description, quantity, unit_amount) in enumerate(lines):
            # One amount per item (quantity × unit): the emulator's items have no
            # quantity, so the quantity travels in metadata and is read back from there.
            await self._write(lambda o: self._v1.invoice_items.create_async(
                {"customer": customer_id, "currency": cur, "amount": quantity * unit_amount,
                 "description": description,
                 "metadata": {"quantity": str(quantity), "unit_amount": str(unit_amount)}}, o,
            ), step_key(idempotency_key, f"item{i}"))
        params: dict[str, Any] = {"customer": customer_id, "pending_invoice_items_behavior": "include"}
        if tax_rates:
            params["default_tax_rates"] = tax_rates
        invoice = await self._write(lambda o: self._v1.invoices.create_async(params, o),
                                    step_key(idempotency_key, "invoice"))
        if pay:
            return await self.pay_invoice(invoice["id"], idempotency_key=idempotency_key)
        invoice = await self._write(lambda o: self._v1.invoices.finalize_invoice_async(invoice["id"], None, o),
                                    step_key(idempotency_key, "finalize"))
        return _invoice(invoice)

    async def pay_invoice(
        self, invoice_id: str, *, idempotency_key: str, payment_method_id: str | None = None
    ) -> Invoice:
        """Pay with the customer's default method, or `payment_method_id` (one of the
        customer's). PaymentDeclined when the card is refused: the invoice stays OPEN.

        Never charges twice for one key: every attempt carries the same derived key, and
        before a retry of an attempt that may have reached the provider the invoice is read
        again; if it is PAID by now, that attempt paid it and its answer was lost, so that
        is the answer. OutcomeUnknown when no attempt got an answer and one may have
        reached the provider: the caller records the payment as pending (the invoice's
        status at the provider tells the truth later). The caller holds the customer's
        lock, so nothing else pays the invoice meanwhile.
        """
        params = {"payment_method": payment_method_id} if payment_method_id else None

        async def paid_meanwhile() -> Any:
            current = await self._v1.invoices.retrieve_async(invoice_id)
            return current if current.to_dict().get("status") == "paid" else None

        invoice = await self._write(lambda o: self._v1.invoices.pay_async(invoice_id, params, o),
                                    step_key(idempotency_key, "pay"), before_retry=paid_meanwhile)
        if invoice.get("status") != "paid":
            # Stripe answers a refused card with a 402 (see `_translate`); the emulator
            # answers 200 with the invoice still open and the failed charge inside it.
            charge = invoice.get("charge")
            code = charge.get("failure_code") if isinstance(charge, dict) else None
            raise declined(code)
        return _invoice(invoice)

    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        """One invoice as the provider has it now; None when it does not know the id."""
        try:
            inv = await self._read(lambda: self._v1.invoices.retrieve_async(invoice_id))
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
            page = await self._read(lambda: fetch(page_params))
            data = page.get("data") or []
            items.extend(data)
            if not page.get("has_more") or not data:
                return items
            page_params = {**page_params, "starting_after": data[-1]["id"]}

    # --- the boundary: time box, retries, breaker; errors in, plain dicts out -------------

    async def _read(self, request: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        """A GET: retried on transient failures (reading twice changes nothing)."""
        return await self.breaker.call(lambda: self._attempts(request, retry=True, write=False))

    async def _write(self, request: Callable[[dict[str, Any]], Awaitable[Any]], key: str | None, *,
                     before_retry: Callable[[], Awaitable[Any]] | None = None) -> dict[str, Any]:
        """A POST or DELETE, given its request options. With an idempotency key it is retried,
        and every attempt sends that same key (the options are made here, once); without one
        the SDK would make a new random key per attempt, so it is retried only when the failed
        attempt never left this process.

        `before_retry` runs before retrying an attempt that may have reached the provider; an
        answer (not None) from it ends the request as if the write had answered it.
        """
        options = {"idempotency_key": key} if key else {}
        return await self.breaker.call(lambda: self._attempts(
            lambda: request(dict(options)), retry=key is not None, write=True, before_retry=before_retry))

    async def _attempts(self, send: Callable[[], Awaitable[Any]], *, retry: bool, write: bool,
                        before_retry: Callable[[], Awaitable[Any]] | None = None) -> dict[str, Any]:
        """One request: at most 1 + max_retries attempts, all within `timeout_seconds`.

        Transient failures (connection errors, timeouts, 5xx, 409, 429) are retried while
        allowed and while the box has room for the back-off; anything else the provider
        answers is translated at once (`_translate`) and never retried.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        may_have_applied = False  # a write attempt reached (or may have reached) the provider
        attempt = 0
        while True:
            attempt += 1
            writing = False
            try:
                # Outside the time box, so that a timed-out attempt is seen as a TimeoutError.
                with provider_call("write" if write else "read", _failure):
                    async with asyncio.timeout_at(min(deadline, loop.time() + self._attempt_timeout)):
                        if before_retry is not None and may_have_applied:
                            count_provider_call()
                            found = await before_retry()
                            if found is not None:
                                return found.to_dict()
                        count_provider_call()
                        writing = write
                        obj = await send()
                return obj.to_dict()
            except TimeoutError:
                reached = True  # the box ran out mid-request: it may have arrived
            except stripe.APIConnectionError as exc:
                # Refused or unreachable: the request never left. Anything later (reset,
                # read timeout, a half answer): it may have arrived.
                reached = not isinstance(exc.__cause__, (httpx.ConnectError, httpx.ConnectTimeout,
                                                          httpx.PoolTimeout))
            except stripe.RateLimitError:
                reached = False  # refused before any work: Stripe applies nothing on a 429
            except stripe.APIError as exc:
                if exc.http_status is not None and exc.http_status < 500 and exc.http_status != 409:
                    raise _translate(exc) from None
                reached = True  # 5xx, a conflict, or a body that is not Stripe's: unknown
            except stripe.StripeError as exc:
                raise _translate(exc) from None
            may_have_applied = may_have_applied or (writing and reached)
            backoff = self._backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
            if (attempt <= self._max_retries and (retry or not may_have_applied)
                    and loop.time() + backoff < deadline):
                log.info("payment provider: attempt %d failed; retrying in %.2f s", attempt, backoff)
                await asyncio.sleep(backoff)
                continue
            if may_have_applied:
                log.warning("payment provider: a write got no answer after %d attempt(s); "
                            "its outcome is unknown", attempt)
                raise OutcomeUnknown(UNAVAILABLE)
            raise ProviderUnavailable(UNAVAILABLE)


def _failure(exc: BaseException) -> str | None:
    """What a failed attempt says about the provider, for the metrics; None for an answer
    (a decline, a 404, a refused value), which says the provider is working."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, stripe.APIConnectionError):
        return "connection"
    if isinstance(exc, stripe.RateLimitError):
        return "rate_limited"
    if isinstance(exc, (stripe.AuthenticationError, stripe.PermissionError)):
        return "auth"  # our key is refused: every request will fail alike
    if isinstance(exc, stripe.APIError):
        status = exc.http_status
        return "server_error" if status is None or status >= 500 or status == 409 else None
    if isinstance(exc, stripe.StripeError):
        return None
    return "other"


def _translate(exc: stripe.StripeError) -> Exception:
    """The gateway's error for an answer from the provider (not for its silence)."""
    if isinstance(exc, stripe.CardError):
        return declined(exc.code, _decline_code(exc))
    if isinstance(exc, stripe.InvalidRequestError):
        if exc.http_status == 404:
            return NotFound("The payment provider has no such object.")
        return BadUserInput("The payment provider rejected the request.")
    if isinstance(exc, stripe.IdempotencyError):
        return BadUserInput("This request key was already used for a different request.")
    # Our own misconfiguration (authentication, permission) and anything unexpected:
    # nothing the user can fix.
    return ProviderUnavailable(UNAVAILABLE)


def _key(idempotency_key: str | None, step: str) -> str | None:
    """Our derived key when the caller has one; else None (the SDK makes a random one)."""
    return step_key(idempotency_key, step) if idempotency_key else None


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
    tax_id = next((t for t in tax_ids if t.get("value")), None)
    vat_id = tax_id.get("value") if tax_id else None
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
        # The metadata copy is an EU VAT number (update_billing_details keeps only that kind).
        tax_id_type=tax_id.get("type") if tax_id else ("eu_vat" if metadata.get("vat_id") else None),
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
