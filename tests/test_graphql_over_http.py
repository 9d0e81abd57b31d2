"""GraphQL over HTTP as the spec asks: media types, status codes, malformed requests."""

from __future__ import annotations

import pytest

# Nothing here changes the database but by signing in, save where a test says otherwise.
pytestmark = pytest.mark.reads_only

GRAPHQL_RESPONSE = "application/graphql-response+json"
TYPENAME = "{ __typename }"


async def test_post_json_answers_in_json(gateway):
    response = await gateway.post(TYPENAME)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json()["data"] == {"__typename": "Query"}
    assert len(response.headers["x-request-id"]) == 32


async def test_graphql_response_media_type_when_the_client_accepts_it(gateway):
    response = await gateway.post(TYPENAME, accept=f"{GRAPHQL_RESPONSE}, application/json;q=0.9")
    assert response.headers["content-type"] == f"{GRAPHQL_RESPONSE}; charset=utf-8"
    assert response.json()["data"] == {"__typename": "Query"}


@pytest.mark.parametrize("accept,expected", [
    ("*/*", "application/json"),
    ("application/json", "application/json"),
    (f"application/json, {GRAPHQL_RESPONSE};q=0.5", "application/json"),
    (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
])
async def test_content_negotiation_follows_accept(gateway, accept, expected):
    response = await gateway.post(TYPENAME, accept=accept)
    assert response.headers["content-type"].split(";")[0] == expected


async def test_unacceptable_media_type_is_406(gateway):
    response = await gateway.post(TYPENAME, accept="text/csv")
    assert response.status_code == 406


@pytest.mark.parametrize("body,message", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b"{}", "'query' must be a non-empty string"),
    (b'{"query": 42}', "'query' must be a non-empty string"),
    (b'{"query": "{ __typename }", "variables": "x"}', "'variables' must be a JSON object"),
    (b'{"query": "{ __typename }", "operationName": 1}', "'operationName' must be a string"),
])
@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE])
async def test_malformed_requests_are_400_with_a_graphql_error(gateway, body, message, accept):
    response = await gateway.http.post("/graphql", content=body,
                                       headers={"content-type": "application/json", "accept": accept})
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert message in error["message"]
    assert "data" not in response.json()


async def test_post_without_json_content_type_is_refused(gateway):
    response = await gateway.http.post("/graphql", content=b'{"query": "{ __typename }"}',
                                       headers={"content-type": "text/plain"})
    assert response.status_code == 415


async def test_parse_and_validation_failures_are_400_for_graphql_response_clients(gateway):
    for query, code in (("{ viewer {", "GRAPHQL_PARSE_FAILED"), ("{ nope }", "GRAPHQL_VALIDATION_FAILED")):
        response = await gateway.post(query, accept=GRAPHQL_RESPONSE)
        assert response.status_code == 400
        assert "data" not in response.json()
        assert response.json()["errors"][0]["extensions"]["code"] == code


async def test_parse_and_validation_failures_are_200_for_json_clients(gateway):
    response = await gateway.post("{ nope }")
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_variables_that_do_not_coerce_are_bad_user_input(gateway):
    query = "query Q($id: ID!) { node(id: $id) { id } }"
    response = await gateway.post(query, {"id": {"not": "an id"}}, accept=GRAPHQL_RESPONSE)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_queries_run_over_get(gateway):
    response = await gateway.http.get("/graphql", params={"query": TYPENAME})
    assert response.status_code == 200
    assert response.json()["data"] == {"__typename": "Query"}


@pytest.mark.reads_only(False)  # it writes
async def test_mutations_over_get_are_405(gateway):
    response = await gateway.http.get("/graphql", params={"query": "mutation { __typename }"},
                                      headers={"accept": GRAPHQL_RESPONSE})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_graphiql_for_browsers_in_development(gateway):
    response = await gateway.http.get("/graphql", headers={"accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_no_graphiql_and_no_introspection_in_production(app_for, settings):
    gateway = await app_for(settings.with_(env="production"))
    page = await gateway.http.get("/graphql", headers={"accept": "text/html"})
    assert "graphiql" not in page.text.lower()
    body = (await gateway.post("{ __schema { types { name } } }")).json()
    assert "data" not in body or body["data"] is None
    assert body["errors"]


async def test_several_operations_need_an_operation_name(gateway):
    document = "query A { __typename } query B { support { helpCenterUrl } }"
    response = await gateway.post(document, accept=GRAPHQL_RESPONSE)
    assert response.status_code == 400
    named = await gateway.http.post("/graphql", json={"query": document, "operationName": "B"})
    assert named.json()["data"]["support"]["helpCenterUrl"].startswith("https://")
