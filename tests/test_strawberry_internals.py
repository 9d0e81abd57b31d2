"""What the gateway takes from strawberry beyond its documented API, checked on the installed
version: the test that fails on the upgrade that changes it."""

from __future__ import annotations

from graphql import GraphQLSchema
from strawberry.schema.schema_converter import GraphQLCoreConverter

from schema import build_schema
from schema.execution import strawberry_schema_of


def test_the_graphql_core_schema_is_strawberrys_own_and_leads_back_to_it():
    schema = build_schema()
    assert isinstance(schema.graphql_schema, GraphQLSchema)
    assert schema.graphql_schema is schema._schema  # noqa: SLF001 - the one private read (GatewaySchema)
    # The level executor finds the strawberry schema through the public back-reference.
    assert schema.graphql_schema.extensions[GraphQLCoreConverter.DEFINITION_BACKREF] is schema
    assert strawberry_schema_of(schema.graphql_schema) is schema
    assert schema.exception_handlers == ()  # the executor calls resolvers directly only without them
