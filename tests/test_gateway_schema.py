"""GatewaySchema.execute answers as strawberry's own execute does with the schema's extensions."""

from __future__ import annotations

import pytest
import strawberry
from strawberry.types.graphql import OperationType

from schema import build_schema

DEEP = "{ viewer { " + "organization { members(first: 1) { nodes { account { " * 4 + "id" + " } } } }" * 4 + " } }"
CASES = [
    ("{ __typename }", None, None, None),
    ("query A { __typename } query B { b: __typename }", None, "B", None),
    ("query A { __typename } query B { b: __typename }", None, None, None),  # several, no name
    ("query A { __typename }", None, "C", None),  # no such operation
    ("mutation { __typename }", None, None, {OperationType.QUERY}),
    ("mutation { __typename }", None, None, None),
    ("fragment F on Query { __typename }", None, None, None),  # no operation at all
    ("{ viewer {", None, None, None),
    ("{ nope }", None, None, None),
    ("{ viewer { nme } }", None, None, None),
    (DEEP, None, None, None),
    ("{ " + "__typename " * 500 + "}", None, None, None),
    ("{ __schema { queryType { name } } }", None, None, None),
    ("query Q($id: ID!) { node(id: $id) { id } }", {"id": {"not": "an id"}}, None, None),
    ("query Q($id: ID!) { node(id: $id) { id } }", None, None, None),
    # HTTP runs queries and mutations only: a subscription is refused before it runs.
    ("subscription { viewerEvents { id } }", None, None, {OperationType.QUERY, OperationType.MUTATION}),
]


def _outcome(call):
    async def run():
        try:
            result = await call()
        except Exception as exc:  # noqa: BLE001 - the exception is the outcome compared
            return type(exc).__name__, str(exc)
        return (type(result).__name__, result.data, result.extensions,
                [_without_variable_wording(error.formatted) for error in result.errors or ()])
    return run()


def _without_variable_wording(error: dict) -> dict:
    """A variable's coercion error names the variable in both; the wording is the gateway's own
    on purpose (no value repeated: tests/test_variable_errors.py), so only the name is compared."""
    message = error["message"]
    if message.startswith("Variable '$"):
        return {**error, "message": message.split("'")[1]}
    return error


@pytest.mark.parametrize("production", [False, True])
@pytest.mark.parametrize("query,variables,operation_name,allowed", CASES)
async def test_execute_answers_as_strawberry_does(production, query, variables, operation_name, allowed):
    schema = build_schema(production=production)
    kwargs = {"variable_values": variables, "operation_name": operation_name, "allowed_operation_types": allowed}
    ours = await _outcome(lambda: schema.execute(query, **kwargs))
    theirs = await _outcome(lambda: strawberry.Schema.execute(schema, query, **kwargs))
    assert ours == theirs
    assert await _outcome(lambda: schema.execute(query, **kwargs)) == ours  # and again, from the caches


def test_extensions_are_refused_as_they_would_not_run():
    with pytest.raises(TypeError):
        type(build_schema())(query=build_schema().query, extensions=[lambda: None])
