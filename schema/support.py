"""The Support menu: where people get help."""

from __future__ import annotations

import strawberry


@strawberry.type(description="Where to get help, including for changes only support can make (email).")
class Support:
    help_center_url: str = strawberry.field(description="The vendor's Help Center.")
