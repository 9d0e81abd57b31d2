"""What the gateway takes from strawberry beyond its documented API, checked on the installed
version: the test that fails on the upgrade that changes it."""

from __future__ import annotations

from types import SimpleNamespace

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


def test_an_info_is_made_as_strawberry_makes_it():
    """The level executor makes one `Info` per field and level with the keywords strawberry
    itself uses (its dataclass fields), rather than one per object through its wrapper."""
    schema = build_schema()
    field = schema.graphql_schema.query_type.fields["viewer"].extensions[GraphQLCoreConverter.DEFINITION_BACKREF]
    raw = SimpleNamespace(context="the request's context", field_name="viewer")
    info = schema.config.info_class(_raw_info=raw, _field=field)
    assert (info.context, info.field_name, info._field) == ("the request's context", "viewer", field)  # noqa: SLF001
