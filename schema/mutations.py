"""The root Mutation type, assembled from each domain's mutations."""

from __future__ import annotations

import strawberry
from strawberry.utils.str_converters import to_camel_case

from auth.access import who
from schema import (billing_mutations, corporate_sign_in, credit_mutations, member_import, notifications, ownership,
                    people_mutations, profile_mutations, scim, seat_mutations, sessions, staff_mutations,
                    subscription_mutations)

# Each module exports MUTATIONS: a strawberry type whose fields are its mutations (or None
# while it has none); the root type inherits them all.
_DOMAINS = (sessions, corporate_sign_in, profile_mutations, notifications, people_mutations, member_import, ownership,
            scim, seat_mutations, credit_mutations,
            subscription_mutations, billing_mutations, staff_mutations)

Mutation = strawberry.type(
    type("Mutation", tuple(m.MUTATIONS for m in _DOMAINS if m.MUTATIONS is not None), {}),
    description="Everything a client can change. Each mutation takes one `input` and returns a payload with "
                "what changed and `userErrors` for expected failures.",
)

# Who may run each mutation, in words from the access table (auth/access.py): said here once,
# for every mutation, rather than by hand in each description.
for _field in Mutation.__strawberry_definition__.fields:
    _field.description = f"{_field.description} For {who(_field.graphql_name or to_camel_case(_field.python_name))}."
