"""The tax ID types the payment provider knows, as the pinned `stripe` SDK lists them.

Read from the SDK's own type hints rather than copied: the list grows with Stripe's API (new
countries are added a few times a year), and the SDK we pin is the API version we speak.
"""

from __future__ import annotations

import typing

from stripe.params._customer_tax_id_create_params import CustomerTaxIdCreateParams


def _literal_values(hint: object) -> tuple[str, ...]:
    for arg in typing.get_args(hint):
        if typing.get_origin(arg) is typing.Literal:
            return tuple(typing.get_args(arg))
    raise RuntimeError("the stripe SDK no longer lists tax ID types as a Literal: update datasources/payments/tax_ids.py")


PROVIDER_TYPES: tuple[str, ...] = _literal_values(typing.get_type_hints(CustomerTaxIdCreateParams)["type"])


def country_of(tax_type: str, value: str) -> str | None:
    """The country the provider files a tax ID under: an EU VAT number's prefix (EL is Greece,
    XI Northern Ireland), the type's prefix otherwise; None for the EU's one-stop shop."""
    if tax_type == "eu_vat":
        prefix = value[:2].upper()
        return {"EL": "GR", "XI": "GB"}.get(prefix, prefix)
    if tax_type == "eu_oss_vat":
        return None
    return tax_type.split("_", 1)[0].upper()
