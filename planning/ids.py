"""Relay global ids, in Python and in SQL, from one rule: base64 of "Type:id"."""

from __future__ import annotations

from strawberry import relay


def global_id(type_name: str, node_id: object) -> str:
    """The global id of a node: strawberry's relay encoding, which the resolvers' `id` fields use."""
    return relay.to_base64(type_name, node_id)


def global_id_sql(type_name: str, expression: str, length: int = 36) -> str:
    """`global_id` in SQL, over `expression` (text of `length` ASCII characters, a uuid's by default).

    PostgreSQL breaks base64 lines after 76 characters (57 bytes); only an id that long pays
    for removing the break, which costs more than the encoding."""
    encoded = f"encode(convert_to('{type_name}:' || {expression}, 'UTF8'), 'base64')"
    return encoded if len(type_name) + 1 + length <= 57 else f"replace({encoded}, E'\\n', '')"


# A member-list row is a member (by account) or a pending invitee (by invitation): its node id
# says which. Read back by `resolvers.organizations.visible_member`.
MEMBER_PREFIX, INVITED_PREFIX = "a.", "i."


def member_key(account_id: object | None, invitation_id: object | None) -> str:
    return f"{MEMBER_PREFIX}{account_id}" if account_id else f"{INVITED_PREFIX}{invitation_id}"


def member_key_sql(t: str) -> str:
    """`member_key` over the member-list row `t`."""
    return (f"CASE WHEN {t}.account_id IS NOT NULL THEN '{MEMBER_PREFIX}' || {t}.account_id::text"
            f" ELSE '{INVITED_PREFIX}' || {t}.invitation_id::text END")
