"""Money: an amount always travels with its currency."""

from __future__ import annotations

import strawberry


@strawberry.type(description="An amount of money in one currency.")
class Money:
    amount: int = strawberry.field(description="In the currency's minor unit (cents for USD and EUR).")
    currency: str = strawberry.field(description="ISO 4217 code, upper case, e.g. \"USD\".")

    @strawberry.field(description="The amount in major units as a decimal string, e.g. \"699.00\".")
    def decimal(self) -> str:
        sign = "-" if self.amount < 0 else ""
        whole, cents = divmod(abs(self.amount), 100)
        return f"{sign}{whole}.{cents:02d}"
