"""Why an input value does not fit its type, said from the type and names only, never the value.

Shared by variables that do not coerce (schema/variable_errors.py) and values written in the
document (schema/literal_errors.py): the client reads the same words for both, and neither
can repeat what was sent (a password among them). Suggestions only when asked for (development).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from graphql import GraphQLEnumType, GraphQLInputObjectType, GraphQLInputType
from graphql.pyutils import did_you_mean, suggestion_list

_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")

Path = tuple[str | int, ...]


def where(path: Path) -> str:
    if not path:
        return ""
    return " at " + "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path)


def non_null(type_: GraphQLInputType, *, given: bool) -> str:
    return f"expected a value of non-null type '{type_}', " + ("not null." if given else "none was given.")


def leaf(type_: GraphQLInputType, typed: object, hide_suggestions: bool) -> str:
    """`typed`: what was written, used only to suggest an enum value's name (never repeated)."""
    if not isinstance(type_, GraphQLEnumType):
        return f"expected a value of type '{type_}'."
    hint = ""
    if isinstance(typed, str) and not hide_suggestions:
        hint = did_you_mean(suggestion_list(typed, list(type_.values)), "the enum value")
    return f"expected a value of enum '{type_}'.{hint}"


def not_an_object(type_: GraphQLInputObjectType) -> str:
    return f"expected an object of type '{type_}'."


def missing_field(type_: GraphQLInputObjectType, name: str) -> str:
    return f"the required field '{name}' of '{type_}' was not given."


def unknown_field(type_: GraphQLInputObjectType, key: object, fields: Iterable[str], hide_suggestions: bool) -> str:
    """A name is repeated only when it is one (a variable's keys may be anything)."""
    if not (isinstance(key, str) and _NAME.fullmatch(key)):
        return f"'{type_}' has no field of that name."
    hint = "" if hide_suggestions else did_you_mean(suggestion_list(key, list(fields)))
    return f"'{type_}' has no field '{key}'.{hint}"


def one_of(type_: GraphQLInputObjectType) -> str:
    return f"exactly one field of '{type_}' must be given, and not null."
