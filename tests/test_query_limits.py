"""What a query may cost: refused before any I/O when too big, and a budget per viewer."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid

import pytest

from gateway.cost import actual_cost, operation_cost, query_cost
from gateway.limits import LimitSettings
from schema import build_schema
from schema.documents import document_of
from tests.conftest import login_outcome

# Nothing here changes the database but by signing in, save where a test says otherwise.
pytestmark = pytest.mark.reads_only

GRAPHQL_RESPONSE = "application/graphql-response+json"
HUGE = """{ viewer { organization { members(first: 100) { nodes { account { licenses {
  allocations(first: 100) { nodes { account { id } } } } } } } } } }"""


async def test_every_response_reports_its_cost(gateway):
    token = await gateway.login("admin@northwind.example")
    body = (await gateway.post("{ viewer { organization { licenses { id product { name } } } } }",
                               token=token)).json()
    cost = body["extensions"]["cost"]
    assert cost["requested"] == 1 + 1 + 10 + 10  # viewer, organization, ~10 licenses, their products
    assert cost["actual"] == 1 + 1 + 5 + 5  # what came back: 5 licenses
    assert cost["budget"]["maximum"] == LimitSettings.cost_budget
    assert 0 < cost["budget"]["remaining"] <= cost["budget"]["maximum"]


def test_the_actual_cost_counts_every_object_below_the_root():
    data = {"viewer": {"id": "1", "organization": {"members": {"edges": [{"node": {"id": "a", "tags": ["x", {}]}},
                                                                          {"node": None}], "total": 2}},
                       "licenses": [[{"id": 1}], [], None, 3.5, True]},
            "typename": "Query", "nothing": None}
    # viewer, organization, members, 2 edges, 1 node, the {} in a list, and the nested list's license
    assert actual_cost(data) == 8
    assert actual_cost(None) == 0 and actual_cost({}) == 0 and actual_cost({"x": 1}) == 0


async def test_a_query_over_the_cost_limit_is_refused_before_any_io(gateway):
    token = await gateway.login("admin@northwind.example")
    response = await gateway.post(HUGE, token=token, accept=GRAPHQL_RESPONSE)
    assert response.status_code == 400
    body = response.json()
    [error] = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["extensions"]["cost"]["requested"] > error["extensions"]["cost"]["limit"]
    assert "data" not in body and "extensions" not in body  # nothing ran, not even the session lookup


async def test_the_cost_follows_the_page_sizes_asked_for(gateway):
    token = await gateway.login("admin@northwind.example")
    small = HUGE.replace("first: 100", "first: 5")
    body = (await gateway.post(small, token=token)).json()
    assert "errors" not in body
    assert body["extensions"]["cost"]["requested"] < 2_000


async def test_a_spent_budget_is_429_with_retry_after(app_for, settings):
    gateway = await app_for(settings.with_(limits=LimitSettings(cost_budget=30, cost_restore_rate=1)))
    token = await gateway.login("admin@northwind.example")
    query = "{ viewer { organization { licenses { id product { name } } } } }"  # costs 22
    assert (await gateway.post(query, token=token)).status_code == 200
    refused = await gateway.post(query, token=token)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    [error] = refused.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED" and error["extensions"]["retryAfter"] >= 1
    # Another viewer has a bucket of their own.
    other = await gateway.login("admin@globex.example")
    assert (await gateway.post(query, token=other)).status_code == 200


PAGED = """query A($n: Int, $m: Int = 3, $after: String) {
  viewer { organization {
    members(first: $n, after: $after) { nodes { id account { licenses { id } } } }
    licenses { allocations(first: $n, last: $m) { nodes { id } } } } } }
query B { viewer { organization { members(first: 7) { nodes { id } } } } }"""


@pytest.mark.parametrize("variables", [
    {"n": 5}, {"n": 50}, {"n": 5.0}, {"n": True}, {"n": "5"}, {"n": None}, {"n": [5]}, {"n": {"x": 5}}, {},
    None, {"m": 40}, {"m": None}, {"n": None, "m": 40}, {"n": 5, "after": "x"}, {"other": 1}])
def test_a_cached_cost_is_the_cost_of_the_variables_sent(variables):
    schema = build_schema()._schema
    for name in ("A", "B", None, "C"):
        for _ in range(2):  # the second time from the cache
            assert query_cost(schema, document_of(PAGED), name, variables) == operation_cost(
                schema, document_of(PAGED).node, name, variables), (name, variables)


def test_page_sizes_sent_in_variables_change_the_cached_cost():
    schema = build_schema()._schema
    costs = [query_cost(schema, document_of(PAGED), "A", {"n": n}) for n in (5, 50, 5, 5.0, True)]
    assert costs[0] == costs[2] < costs[1] and costs[3] != costs[0] and costs[4] < costs[0]


NODES = "query N($ids: [ID!]!) { nodes(ids: $ids) { id ... on Account { licenses { id } } } }"


def test_nodes_costs_as_many_objects_as_the_ids_sent():
    """Each id may return an object, with everything selected below it."""
    schema = build_schema()._schema
    each = 1 + 10  # the node, and an account's ~10 licenses
    for count in (1, 7, 100):
        ids = [f"id-{i}" for i in range(count)]
        assert query_cost(schema, document_of(NODES), None, {"ids": ids}) == count * each
        literal = "{ nodes(ids: [%s]) { id ... on Account { licenses { id } } } }" % ", ".join(f'"{i}"' for i in ids)
        assert query_cost(schema, document_of(literal), None, None) == count * each
    assert query_cost(schema, document_of(NODES), None, {"ids": "one"}) == each  # a single value is a list of one


def test_lists_that_grow_with_the_organization_count_a_full_page():
    schema = build_schema()._schema
    query = "{ viewer { organization { creditPool { members { account { id } } pendingRequests { id } } } } }"
    assert query_cost(schema, document_of(query), None, None) == 1 + 1 + 1 + 2 * 100 + 100


@pytest.mark.reads_only(False)  # it writes
async def test_an_answer_larger_than_its_estimate_is_charged_in_full(app_for, settings, db):
    """150 members: the credit list holds more than the page it was estimated at, and the
    viewer pays for every object returned; the budget then refuses the next such query."""
    organization = await db.fetchval("SELECT organization_id FROM memberships m JOIN accounts a ON a.id ="
                                     " m.account_id WHERE a.email = 'admin@northwind.example'")
    for i in range(150):
        account = uuid.uuid4()
        await db.execute("INSERT INTO accounts (id, email, name) VALUES ($1, $2, 'Extra')", account,
                         f"extra{i}@northwind.example")
        await db.execute("INSERT INTO memberships (account_id, organization_id, role) VALUES ($1, $2, 'MEMBER')",
                         account, organization)
    gateway = await app_for(settings.with_(limits=LimitSettings(cost_budget=400, cost_restore_rate=1)))
    token = await gateway.login("admin@northwind.example")
    query = "{ viewer { organization { creditPool { members { account { id } access { mode } } } } } }"
    body = (await gateway.post(query, token=token)).json()
    members = body["data"]["viewer"]["organization"]["creditPool"]["members"]
    assert len(members) == 158
    cost = body["extensions"]["cost"]
    assert cost["requested"] == 3 + 3 * 100
    assert cost["actual"] == 3 + 3 * 158 > cost["requested"]
    assert cost["budget"]["remaining"] == 0  # 477 of a budget of 400: owed, not forgiven
    refused = await gateway.post(query, token=token)
    assert refused.status_code == 429


async def test_too_many_tokens_is_refused(gateway):
    query = "{ " + " ".join(f"a{i}: __typename" for i in range(3000)) + " }"
    response = await gateway.post(query, accept=GRAPHQL_RESPONSE)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


@pytest.mark.parametrize("query,fragment", [
    ("{ " + " ".join(f"a{i}: __typename" for i in range(100)) + " }", "aliases"),
    ("{ viewer { " + "organization { members(first: 1) { nodes { account { " * 4 + "id" + " } } } }" * 4 + " } }",
     "exceeds maximum operation depth"),
    ("{ __typename " + "@include(if: true) " * 100 + "}", "directives"),
    ("{ " + "__typename " * 500 + "}", "more than 10 times"),
    ("query { viewer { ...A } } fragment A on Account { ...B } fragment B on Account { ...A }", "Cannot spread"),
])
async def test_abusive_documents_are_refused_by_validation(gateway, query, fragment):
    response = await gateway.post(query, accept=GRAPHQL_RESPONSE)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert any(fragment in e["message"] for e in errors), errors
    assert all(e["extensions"]["code"] in ("GRAPHQL_VALIDATION_FAILED", "QUERY_TOO_COMPLEX") for e in errors)


async def test_batched_operations_are_refused(gateway):
    response = await gateway.http.post("/graphql", json=[{"query": "{ __typename }"}] * 10,
                                       headers={"accept": GRAPHQL_RESPONSE})
    assert response.status_code == 400
    assert "JSON object" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data"])
@pytest.mark.reads_only(False)  # it writes
async def test_csrf_simple_requests_cannot_run_mutations(gateway, content_type):
    response = await gateway.http.post("/graphql", content=b'{"query": "mutation { logout(input: {}) { revoked } }"}',
                                       headers={"content-type": content_type})
    assert response.status_code == 415


async def test_cookies_are_not_an_authentication_path(gateway):
    token = await gateway.login("admin@northwind.example")
    gateway.http.cookies.set("Authorization", f"Bearer {token}")
    body = (await gateway.post("{ viewer { id } }")).json()
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_production_hides_the_schema(app_for, settings):
    gateway = await app_for(settings.with_(env="production"))
    suggestion = (await gateway.post("{ viewer { nme } }")).json()
    assert "Did you mean" not in suggestion["errors"][0]["message"]
    introspection = (await gateway.post("{ __schema { queryType { name } } }")).json()
    assert introspection.get("data") is None and introspection["errors"]
    circular = "{ __type(name: \"Account\") { fields { type { fields { type { fields { name } } } } } } }"
    assert (await gateway.post(circular)).json()["errors"]
    page = await gateway.http.get("/graphql", headers={"accept": "text/html"})
    assert "graphiql" not in page.text.lower()


async def test_development_keeps_suggestions(gateway):
    body = (await gateway.post("{ viewer { nme } }")).json()
    assert "Did you mean 'name'" in body["errors"][0]["message"]


@pytest.mark.reads_only(False)  # it writes
def test_unexpected_errors_are_masked_in_production_and_logged_in_full(caplog):
    from graphql import GraphQLError

    from gateway.errors import format_error

    try:
        raise RuntimeError("secret connection string postgres://u:p@db")
    except RuntimeError as exc:
        error = GraphQLError("boom", original_error=exc, path=["viewer"])
    formatted = format_error(error, pre_execution=False, production=True, request_id="req-42")
    assert formatted["message"] == "Internal server error (request id req-42)."
    assert formatted["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-42"}
    assert "secret connection string" in caplog.text and "req-42" in caplog.text


LOGIN = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token userErrors { code } } }"


async def test_fifty_wrong_passwords_are_throttled_and_the_right_one_works_after_the_window(app_for, settings):
    # 10 failures per 20 s: one more attempt every 2 s once the bucket is full.
    gateway = await app_for(settings.with_(limits=LimitSettings(sign_in_attempts=10, sign_in_window_seconds=20)))
    codes = []
    started = time.monotonic()
    for _ in range(50):
        response = await gateway.post(LOGIN, {"e": "member1@northwind.example", "p": "wrong"})
        codes.append(login_outcome(response))
    elapsed = time.monotonic() - started
    assert codes[:10] == ["INVALID_CREDENTIALS"] * 10
    # Once the bucket is full, one more guess every 2 s slips through as it drains, no more
    # (each guess costs argon2's ~50 ms, far more on a loaded machine).
    assert codes[10:].count("INVALID_CREDENTIALS") <= 1 + elapsed / 2
    throttled = await gateway.post(LOGIN, {"e": "member1@northwind.example", "p": "demo-password"})
    assert throttled.status_code == 429
    retry_after = int(throttled.headers["retry-after"])
    assert 1 <= retry_after <= 2
    # Another account is not locked out by someone guessing member1's password.
    assert await gateway.login("member2@northwind.example")
    await asyncio.sleep(retry_after)
    assert await gateway.login("member1@northwind.example")


async def test_one_address_guessing_many_accounts_is_throttled(app_for, settings):
    gateway = await app_for(settings.with_(limits=LimitSettings(sign_in_attempts_per_address=15)))
    codes = []
    for i in range(20):
        response = await gateway.post(LOGIN, {"e": f"nobody{i}@northwind.example", "p": "guess"})
        codes.append(login_outcome(response))
    assert codes.count("INVALID_CREDENTIALS") == 15 and codes[15:] == ["RATE_LIMITED"] * 5


def redis_url() -> str | None:
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return url
    except OSError:
        return None


@pytest.mark.reads_only(False)  # it writes
async def test_buckets_in_redis_are_shared_by_several_gateway_processes(app_for, settings):
    url = redis_url()
    if url is None:
        pytest.skip("no Redis on 127.0.0.1:6379: shared buckets need one")
    shared = settings.with_(redis_url=url, limits=LimitSettings(sign_in_attempts=3, sign_in_window_seconds=60))
    first, second = await app_for(shared), await app_for(shared)
    email = f"shared-{uuid.uuid4().hex[:8]}@northwind.example"  # a fresh bucket in a shared Redis
    for gateway in (first, second, first):
        assert login_outcome(await gateway.post(LOGIN, {"e": email, "p": "x"})) == "INVALID_CREDENTIALS"
    assert login_outcome(await second.post(LOGIN, {"e": email, "p": "x"})) == "RATE_LIMITED"


@pytest.mark.parametrize("query,variables", [
    ('mutation { updateProfile(input: {name: "A\\u0000B"}) { userErrors { code } } }', None),
    ('mutation($n: String) { updateProfile(input: {name: $n}) { userErrors { code } } }', {"n": "A\x00B"}),
    ('mutation($e: String!) { login(input: {email: $e, password: "p"}) { token } }', {"e": "a\x00@x.example"}),
])
@pytest.mark.reads_only(False)  # it writes
async def test_nul_characters_are_bad_input_and_change_nothing(gateway, db, query, variables):
    token = await gateway.login("member1@northwind.example")
    response = await gateway.post(query, variables, token=token, accept=GRAPHQL_RESPONSE)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await db.fetchval("SELECT name FROM accounts WHERE email = 'member1@northwind.example'") == "Lena Fischer"


@pytest.mark.parametrize("store", ["process", "redis"])
async def test_a_cost_owed_after_the_answer_is_added_past_the_budget_in_either_store(store):
    from gateway.ratelimit import LocalBuckets, RedisBuckets  # noqa: PLC0415

    if store == "redis":
        url = redis_url()
        if url is None:
            pytest.skip("no Redis on 127.0.0.1:6379: shared buckets need one")
        buckets = RedisBuckets(url, prefix=f"test-{uuid.uuid4().hex}:")
    else:
        buckets = LocalBuckets()
    try:
        assert (await buckets.take("v", 80, 100, 0.001)).allowed
        await buckets.add("v", 70, 100, 0.001)  # the answer held 70 more than was charged
        refused = await buckets.take("v", 1, 100, 0.001)
        assert not refused.allowed and refused.available < -49  # 150 of 100: owed until it drains
        await buckets.give_back("v", 100, 100, 0.001)
        assert (await buckets.take("v", 40, 100, 0.001)).allowed
    finally:
        await buckets.close()


async def test_redis_buckets_never_fill_when_callers_times_arrive_out_of_order():
    """Each caller reads Redis' TIME, then runs the script: two at once may run their scripts with
    the later time first. The earlier time must not count as time running backwards (which
    filled the bucket: 4 guesses allowed in a burst where 5 were in turn)."""
    from gateway.ratelimit import RedisBuckets  # noqa: PLC0415

    url = redis_url()
    if url is None:
        pytest.skip("no Redis on 127.0.0.1:6379: shared buckets need one")
    buckets = RedisBuckets(url, prefix=f"test-{uuid.uuid4().hex}:")
    try:
        first = await buckets._script(keys=[buckets._prefix + "v"], args=[1, 2, 10, 1000.0, 0])
        late = await buckets._script(keys=[buckets._prefix + "v"], args=[1, 2, 10, 999.9, 0])
        assert (first[0], late[0]) == (1, 1), late  # 2 of 2 taken: both allowed
    finally:
        await buckets.close()
