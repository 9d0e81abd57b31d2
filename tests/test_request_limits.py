"""What a request may weigh before any GraphQL runs: body size, JSON nesting, HEAD reading nothing.

The memory side of the body limit (a 100 MB body never held) is measured against the real
`serve` process in tests/test_serve.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from gateway.bodies import MAX_JSON_DEPTH
from gateway.settings import DEFAULT_MAX_BODY_BYTES, SettingsError, from_env
from tests.test_webhooks import SECRET, WEBHOOK, event, recorded, signature

GRAPHQL_RESPONSE = "application/graphql-response+json"
LIMIT = 4096
VIEWER = "{ viewer { name } }"
RENAME = 'mutation { updateProfile(input: {name: "Renamed By Head"}) { account { name } } }'
LOGOUT = "mutation { logout(input: {}) { revoked } }"


def padded(size: int) -> bytes:
    """A well-formed GraphQL request of exactly `size` bytes."""
    head, tail = b'{"query": "{ __typename }", "extensions": {"pad": "', b'"}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


async def chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    yield b'{"query": "{ __typename }", "extensions": {"pad": "'
    for _ in range(total // size):
        yield b"x" * size


@pytest.fixture
async def small(app_for, settings):
    return await app_for(settings.with_(max_body_bytes=LIMIT))


# --- MAX_BODY_BYTES ------------------------------------------------------------------------------


async def test_a_body_at_the_limit_runs(small):
    response = await small.http.post("/graphql", content=padded(LIMIT), headers={"content-type": "application/json"})
    assert response.status_code == 200
    assert response.json()["data"] == {"__typename": "Query"}


@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE])
async def test_a_declared_length_over_the_limit_is_413_with_a_graphql_error(small, accept):
    response = await small.http.post("/graphql", content=padded(LIMIT + 1),
                                     headers={"content-type": "application/json", "accept": accept})
    assert response.status_code == 413
    body = response.json()
    assert body == {"errors": [{"message": f"The request body is larger than the limit of {LIMIT} bytes.",
                                "extensions": {"code": "PAYLOAD_TOO_LARGE"}}]}
    assert response.headers["content-type"].startswith(accept)


async def test_a_chunked_body_is_refused_once_it_passes_the_limit(small):
    response = await small.http.post("/graphql", content=chunks(10 * 1024 * 1024),
                                     headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_the_default_limit_is_one_mebibyte(gateway):
    assert DEFAULT_MAX_BODY_BYTES == 1 << 20
    headers = {"content-type": "application/json"}
    assert (await gateway.http.post("/graphql", content=padded(1 << 20), headers=headers)).status_code == 200
    assert (await gateway.http.post("/graphql", content=padded((1 << 20) + 1), headers=headers)).status_code == 413


async def test_the_webhook_has_the_same_limit(app_for, settings, db):
    hooked = await app_for(settings.with_(stripe_webhook_secret=SECRET, max_body_bytes=LIMIT))
    body = event("invoice.paid", {"id": "in_1", "object": "invoice", "pad": "x" * LIMIT})
    response = await hooked.http.post(WEBHOOK, content=body, headers={
        "content-type": "application/json", "stripe-signature": signature(body)})
    assert response.status_code == 413
    assert response.json()["error"] == f"The request body is larger than the limit of {LIMIT} bytes."
    assert await recorded(db) == []


@pytest.mark.parametrize("raw", ["0", "-5", "1023", str(64 * 1024 * 1024 + 1), "1MB", "1e6"])
def test_max_body_bytes_must_be_a_sane_number_of_bytes(raw):
    with pytest.raises(SettingsError, match=r"^MAX_BODY_BYTES must be an integer from 1024 to 67108864, not "):
        from_env({"MAX_BODY_BYTES": raw})


def test_max_body_bytes_is_read_from_the_environment():
    assert from_env({}).max_body_bytes == 1 << 20
    assert from_env({"MAX_BODY_BYTES": "65536"}).max_body_bytes == 65536


# --- JSON nesting --------------------------------------------------------------------------------


@pytest.mark.reads_only  # refused before anything is written
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE])
async def test_a_body_nested_too_deeply_is_400(gateway, depth, accept):
    body = '{"query": "{ __typename }", "variables": {"x": %s}}' % deep(depth - 2)
    response = await gateway.http.post("/graphql", content=body,
                                       headers={"content-type": "application/json", "accept": accept})
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["message"] == f"The request body is nested more than {MAX_JSON_DEPTH} levels deep."
    assert error["extensions"]["code"] == "BAD_REQUEST"


async def test_nesting_up_to_the_limit_is_accepted(gateway):
    body = '{"query": "{ __typename }", "variables": {"x": %s}}' % deep(MAX_JSON_DEPTH - 2)
    response = await gateway.http.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200
    assert response.json()["data"] == {"__typename": "Query"}


@pytest.mark.parametrize("name", ["variables", "extensions"])
async def test_get_parameters_nested_too_deeply_are_400(gateway, name):
    response = await gateway.http.get("/graphql", params={"query": "{ __typename }", name: '{"x": %s}' % deep(5000)})
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == f"'{name}' is nested more than {MAX_JSON_DEPTH} levels deep."


async def test_a_webhook_body_nested_too_deeply_is_400(app_for, settings, db):
    hooked = await app_for(settings.with_(stripe_webhook_secret=SECRET))
    body = json.dumps({"id": "evt_deep", "object": "event", "type": "invoice.paid", "created": 1,
                       "data": {"object": {"id": "in_1"}}})[:-1].encode() + b', "x": ' + deep(100_000).encode() + b"}"
    response = await hooked.http.post(WEBHOOK, content=body, headers={
        "content-type": "application/json", "stripe-signature": signature(body)})
    assert response.status_code == 400
    assert response.json()["reason"] == "MALFORMED_BODY"
    assert "nested more than" in response.json()["error"]
    assert await recorded(db) == []


@pytest.mark.parametrize("document", [
    "{" + "a{" * 100_000 + "b" + "}" * 100_000 + "}",
    "{ node(id: " + "[" * 4_000 + "1" + "]" * 4_000 + ") { id } }",
    "{ node(id: " + "{a: " * 3_000 + "1" + "}" * 3_000 + ") { id } }",
    "query($x: " + "[" * 4_000 + "ID" + "]" * 4_000 + ") { node(id: $x) { id } }",
])
@pytest.mark.reads_only  # refused before anything is written
async def test_a_document_nested_too_deeply_is_400(gateway, document):
    response = await gateway.post(document, accept=GRAPHQL_RESPONSE)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] in ("GRAPHQL_PARSE_FAILED", "QUERY_TOO_COMPLEX")


# --- HEAD ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/json", None])
async def test_head_with_a_mutation_in_its_body_changes_nothing(gateway, db, content_type):
    token = await gateway.login("member1@northwind.example")
    headers = {"authorization": f"Bearer {token}", **({"content-type": content_type} if content_type else {})}
    for mutation in (RENAME, LOGOUT):
        response = await gateway.http.request("HEAD", "/graphql", content=json.dumps({"query": mutation}),
                                               headers=headers)
        assert response.status_code == 400  # no query in the query string
        assert response.content == b""
    body = await gateway.execute(VIEWER, token=token)  # not logged out
    assert body["data"]["viewer"]["name"] == "Lena Fischer"
    assert await db.fetchval("SELECT name FROM accounts WHERE email = 'member1@northwind.example'") == "Lena Fischer"


async def test_head_of_a_mutation_in_the_query_string_is_405(gateway):
    token = await gateway.login("member1@northwind.example")
    response = await gateway.http.request("HEAD", "/graphql", params={"query": LOGOUT},
                                          headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.content == b""
    assert (await gateway.execute(VIEWER, token=token))["data"]["viewer"]["name"] == "Lena Fischer"


async def test_head_of_a_query_answers_like_get_without_a_body(gateway):
    token = await gateway.login("member1@northwind.example")
    headers = {"authorization": f"Bearer {token}"}
    get = await gateway.http.get("/graphql", params={"query": VIEWER}, headers=headers)
    head = await gateway.http.request("HEAD", "/graphql", params={"query": VIEWER}, headers=headers)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert int(head.headers["content-length"]) > 0


async def test_head_of_the_webhook_is_405_and_records_nothing(app_for, settings, db):
    hooked = await app_for(settings.with_(stripe_webhook_secret=SECRET))
    body = event("invoice.paid", {"id": "in_1", "object": "invoice", "customer": "cus_1"})
    response = await hooked.http.request("HEAD", WEBHOOK, content=body, headers={
        "content-type": "application/json", "stripe-signature": signature(body)})
    assert response.status_code == 405
    assert await recorded(db) == []
