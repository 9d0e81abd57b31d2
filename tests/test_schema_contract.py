"""schema.graphql is the contract with every client: it must match the code, described throughout."""

from __future__ import annotations

from pathlib import Path

import graphql
import pytest
from graphql import GraphQLEnumType, GraphQLInputObjectType, GraphQLInterfaceType, GraphQLObjectType

from schema import build_schema

# Nothing here changes the database but by signing in, save where a test says otherwise.
pytestmark = pytest.mark.reads_only

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"


def test_committed_schema_matches_the_code():
    exported = build_schema().as_str() + "\n"
    assert SCHEMA_FILE.read_text() == exported, (
        "schema.graphql differs from the code: run `account-gateway export-schema -o schema.graphql` "
        "and review the diff as a client would (a removed or renamed field breaks them)")


def test_every_type_field_argument_and_enum_value_has_a_description():
    schema = build_schema()._schema
    missing = []
    for name, type_ in schema.type_map.items():
        if name.startswith("__") or name in {"String", "Boolean", "Int", "Float", "ID"}:
            continue
        if not type_.description:
            missing.append(name)
        if isinstance(type_, (GraphQLObjectType, GraphQLInterfaceType, GraphQLInputObjectType)):
            for field_name, field in type_.fields.items():
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                for arg_name, arg in getattr(field, "args", {}).items():
                    if not arg.description:
                        missing.append(f"{name}.{field_name}({arg_name})")
        if isinstance(type_, GraphQLEnumType):
            missing += [f"{name}.{v}" for v, value in type_.values.items() if not value.description]
    assert missing == []


def test_names_clients_rely_on_are_present():
    schema = build_schema()._schema
    assert {"viewer", "node", "nodes", "support"} <= set(schema.query_type.fields)
    assert {"login", "logout"} <= set(schema.mutation_type.fields)
    account = schema.type_map["Account"]
    assert {"id", "customerNumber", "email", "name", "country", "role", "organization"} <= set(account.fields)
    assert {"token", "account", "userErrors"} <= set(schema.type_map["LoginPayload"].fields)
    assert set(schema.type_map["UserError"].fields) == {"field", "message", "code"}


def test_every_mutation_takes_one_input_and_returns_a_payload_with_user_errors():
    from graphql import GraphQLNonNull, GraphQLObjectType, GraphQLInputObjectType

    schema = build_schema()._schema
    wrong = []
    for name, field in schema.mutation_type.fields.items():
        expected = name[0].upper() + name[1:]
        arg = field.args.get("input")
        payload = field.type.of_type if isinstance(field.type, GraphQLNonNull) else None
        if (list(field.args) != ["input"] or not isinstance(arg.type, GraphQLNonNull)
                or not isinstance(arg.type.of_type, GraphQLInputObjectType)
                or arg.type.of_type.name != f"{expected}Input"
                or not isinstance(payload, GraphQLObjectType) or payload.name != f"{expected}Payload"
                or "userErrors" not in payload.fields):
            wrong.append(name)
    assert wrong == []


ROOTS = "query Roots { __schema { queryType { name } mutationType { name } subscriptionType { name } } }"


async def test_the_committed_schema_declares_the_roots_the_server_serves(gateway):
    """graphql-js, graphql-inspector and codegen read the roots from the file: without a `schema`
    block they took the domain type `Subscription` for the subscription root."""
    committed = graphql.build_schema(SCHEMA_FILE.read_text())
    live = (await gateway.execute(ROOTS))["data"]["__schema"]

    def name(root: GraphQLObjectType | None) -> dict[str, str] | None:
        return {"name": root.name} if root else None

    assert {"queryType": name(committed.query_type), "mutationType": name(committed.mutation_type),
            "subscriptionType": name(committed.subscription_type)} == live
    # What a client that validates against the file is told, the server says too.
    subscription = graphql.parse("subscription S { status }")
    assert graphql.validate(committed, subscription)
