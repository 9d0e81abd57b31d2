"""Patches applied to localstripe inside the emulator child process only.

Two kinds: the store file (localstripe hard-codes `/tmp/localstripe.pickle`, shared by
every instance on the machine), and the few gaps between localstripe 1.15 and the Stripe
API that `PaymentsClient` needs, so that the client speaks plain Stripe and carries no
emulator special cases:

- `POST /v1/invoices` without a subscription always fails in localstripe ("No upcoming
  invoices for customer"); Stripe creates a one-off draft invoice from the customer's
  pending invoice items. We do the same.
- There is no `POST /v1/invoices/{id}/finalize`; drafts could only become `open` by
  being paid. We add it (localstripe already has the internal `_finalize`).
- `POST /v1/invoices/{id}/pay` lacks Stripe's `payment_method` (pay with one of the
  customer's methods rather than the default). We add it.
- A detached payment method can be attached again, even to another customer, and one
  attached to a customer can be moved to another by attaching it there. Stripe refuses
  both: a detached method is spent for good, and an attached one belongs to its customer.
  We refuse them with Stripe's own errors.
- Invoices never get a `number`. Stripe numbers an invoice when it is finalized
  (`PREFIX-0001`, per customer); we do the same at finalize and at pay.
- A customer's tax ID may only be `eu_vat`, `nz_gst`, `au_abn` or `es_cif`, and longer than
  ten characters; Stripe takes every type of its list (`gb_vat`, `ch_vat`, `us_ein`, ...) and
  checks each by its own format. We take every type the pinned SDK lists, with the country
  Stripe files it under; the format is checked before the call (resolvers/tax_ids.py).

Must run after `localstripe.resources` is imported and BEFORE `localstripe.server` is:
the server registers `extra_apis` routes (e.g. `/pay`) from bound methods at import time.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from localstripe import resources
from localstripe.errors import UserError

from datasources.payments.tax_ids import PROVIDER_TYPES, country_of

Invoice = resources.Invoice


def redirect_store(store_path: Path) -> None:
    """Make localstripe load and save its store at `store_path`."""

    def try_load_from_disk(self: dict) -> None:
        try:
            with open(store_path, "rb") as f:
                old = pickle.load(f)
        except FileNotFoundError:
            return
        self.clear()
        # dict.update, not self.update: __setitem__ would re-dump once per key.
        dict.update(self, old)

    def dump_to_disk(self: dict) -> None:
        # Temp file + rename: a crash or a concurrent reader never sees half a pickle.
        tmp = store_path.with_name(f".{store_path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump(dict(self), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, store_path)

    # Patch the class, not the `store` instance: Store is a dict subclass with a
    # __dict__, so instance attributes would be pickled along with the data.
    resources.Store.try_load_from_disk = try_load_from_disk
    resources.Store.dump_to_disk = dump_to_disk


def _number_invoice(invoice: Any) -> None:
    if getattr(invoice, "number", None):
        return
    customer = invoice.customer
    taken = sum(
        1
        for key, obj in resources.store.items()
        if key.startswith("invoice:") and obj.customer == customer and getattr(obj, "number", None)
    )
    # Stripe's numbers are `<customer invoice prefix>-<sequence>`; derive the prefix
    # from the customer id so it is stable across restarts without extra state.
    invoice.number = f"{customer[4:12].upper()}-{taken + 1:04d}"


_original_finalize = Invoice._finalize
_original_create = Invoice._api_create.__func__
_original_pay = Invoice._api_pay_invoice


def _finalize(self: Any) -> None:
    _original_finalize(self)
    _number_invoice(self)


def _api_create(cls: type, customer: Any = None, subscription: Any = None, tax_percent: Any = None,
                default_tax_rates: Any = None, description: Any = None, metadata: Any = None,
                pending_invoice_items_behavior: Any = None, auto_advance: Any = None) -> Any:
    if subscription is not None:
        return _original_create(cls, customer=customer, subscription=subscription,
                                tax_percent=tax_percent, default_tax_rates=default_tax_rates,
                                description=description, metadata=metadata)
    # A one-off invoice: the constructor itself sweeps the customer's pending items.
    # `auto_advance` is accepted and ignored (nothing advances drafts here).
    return cls(customer=customer, tax_percent=tax_percent, default_tax_rates=default_tax_rates,
               description=description, metadata=metadata)


def _api_finalize_invoice(id: str, **kwargs: Any) -> Any:
    obj = Invoice._api_retrieve(id)
    if obj.status != "draft":
        raise UserError(400, "This invoice is already finalized")
    obj._finalize()
    return obj


def _api_pay_invoice(id: str, payment_method: Any = None, **kwargs: Any) -> Any:
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs))
    obj = Invoice._api_retrieve(id)
    if payment_method is not None:
        # Stripe's `payment_method`: one of the invoice's customer's methods. Checked
        # before the draft is finalized, so a refused request changes nothing.
        if not isinstance(payment_method, str) or not payment_method.startswith("pm_"):
            raise UserError(400, "Bad request")
        pm = resources.PaymentMethod._api_retrieve(payment_method)
        if pm.customer != obj.customer:
            raise UserError(400, "The PaymentMethod does not belong to the invoice's customer")
    if obj.status == "draft":
        # Stripe finalizes (and numbers) a draft before paying it.
        obj._finalize()
    if payment_method is None:
        return _original_pay(id)
    return _pay_with(obj, pm)


def _pay_with(obj: Any, pm: Any) -> Any:
    """localstripe's own pay, with the given method instead of the customer's default."""
    if obj.status == "paid":
        raise UserError(400, "Invoice is already paid")
    if obj.status not in ("draft", "open"):
        raise UserError(400, "Bad request")
    obj._draft = False
    if obj.total <= 0:
        obj._on_payment_success()
        return obj
    pi = resources.PaymentIntent(amount=obj.total, currency=obj.currency, customer=obj.customer,
                                 payment_method=pm.id)
    obj.payment_intent = pi.id
    pi.invoice = obj.id
    # As localstripe's pay: a refused charge leaves the invoice open and answers 200.
    pi._confirm(on_failure_now=lambda: None)
    return obj


PaymentMethod = resources.PaymentMethod
_original_attach = PaymentMethod._api_attach.__func__
_original_detach = PaymentMethod._api_detach.__func__
# Stripe's words for both refusals (400 invalid_request_error).
_SPENT = ("The provided PaymentMethod was previously used with a PaymentIntent without Customer attachment, "
          "shared with a connected account without Customer attachment, or was detached from a Customer. It may "
          "not be used again. To use a PaymentMethod multiple times, you must attach it to a Customer first.")
_TAKEN = "The payment method you provided has already been attached to a customer."
_NOT_ATTACHED = "The payment method you provided is not attached to a customer so detachment is impossible."


def _api_attach(cls: type, id: Any, customer: Any = None, **kwargs: Any) -> Any:
    if isinstance(id, str) and id.startswith("pm_"):
        found = cls._api_retrieve(id)
        if getattr(found, "_detached", False):
            raise UserError(400, _SPENT, {"code": "payment_method_unexpected_state"})
        if found.customer is not None and found.customer != customer:
            raise UserError(400, _TAKEN, {"code": "payment_method_unexpected_state"})
    return _original_attach(cls, id, customer=customer, **kwargs)


def _api_detach(cls: type, id: Any, **kwargs: Any) -> Any:
    if isinstance(id, str) and id.startswith("pm_") and cls._api_retrieve(id).customer is None:
        raise UserError(400, _NOT_ATTACHED, {"code": "payment_method_unexpected_state"})
    detached = _original_detach(cls, id, **kwargs)
    detached._detached = True  # not exported: localstripe's JSON leaves out `_` attributes
    return detached


def _tax_id_init(self: Any, country: Any = None, customer: Any = None, type: Any = None, value: Any = None,
                 **kwargs: Any) -> None:
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    try:
        assert isinstance(customer, str) and customer.startswith("cus_")
        assert type in PROVIDER_TYPES
        assert isinstance(value, str) and 0 < len(value) <= 100
        assert country is None or isinstance(country, str)
    except AssertionError:
        raise UserError(400, "Bad request") from None
    resources.Customer._api_retrieve(customer)  # 404 for an unknown customer
    resources.StripeObject.__init__(self)
    self.country = country or country_of(type, value)
    self.customer, self.type, self.value = customer, type, value
    self.verification = {"status": "verified", "verified_name": "", "verified_address": ""}


def _api_add_tax_id(cls: type, id: Any, type: Any = None, value: Any = None, **kwargs: Any) -> Any:
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    customer = cls._api_retrieve(id)  # type: ignore[attr-defined]
    tax_id = resources.TaxId(customer=id, type=type, value=value)  # checks type and value
    customer.tax_ids._list.append(tax_id)
    return tax_id


def close_api_gaps() -> None:
    resources.TaxId.__init__ = _tax_id_init
    resources.Customer._api_add_tax_id = classmethod(_api_add_tax_id)
    Invoice._finalize = _finalize
    Invoice._api_create = classmethod(_api_create)
    PaymentMethod._api_attach = classmethod(_api_attach)
    PaymentMethod._api_detach = classmethod(_api_detach)
    replaced = {"/v1/invoices/{id}/pay": _api_pay_invoice,
                "/v1/customers/{id}/tax_ids": resources.Customer._api_add_tax_id,
                "/v1/payment_methods/{id}/attach": PaymentMethod._api_attach,
                "/v1/payment_methods/{id}/detach": PaymentMethod._api_detach}
    routes = resources.extra_apis
    for i, (method, url, _func) in enumerate(routes):
        if method == "POST" and url in replaced:
            routes[i] = (method, url, replaced[url])
    routes.append(("POST", "/v1/invoices/{id}/finalize", _api_finalize_invoice))
