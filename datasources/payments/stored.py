"""The payment records as JSON text and back, for the mirror in PostgreSQL (loaders/billing.py).

orjson writes the frozen dataclasses as they are (datetimes in RFC 3339); reading builds them
again field by field, so a record read from the mirror equals the one the provider's answer made.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from datasources.payments.records import Address, Customer, Invoice, InvoiceLine, PaymentMethod


def dumps(value: Customer | list[Invoice] | list[PaymentMethod] | None) -> str:
    return orjson.dumps(value).decode()


def customer(text: str) -> Customer | None:
    raw = orjson.loads(text)
    if raw is None:
        return None
    address = raw["address"]
    return Customer(**{**raw, "address": Address(**address) if address is not None else None})


def invoices(text: str) -> list[Invoice]:
    return [_invoice(raw) for raw in orjson.loads(text)]


def payment_methods(text: str) -> list[PaymentMethod]:
    return [PaymentMethod(**raw) for raw in orjson.loads(text)]


def _invoice(raw: dict[str, Any]) -> Invoice:
    due = raw["due_date"]
    return Invoice(**{**raw, "created": datetime.fromisoformat(raw["created"]),
                      "due_date": datetime.fromisoformat(due) if due is not None else None,
                      "lines": tuple(InvoiceLine(**line) for line in raw["lines"])})
