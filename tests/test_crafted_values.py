"""Crafted values that once reached PostgreSQL or Python unchecked (issue 14, item 5).

Each was an INTERNAL_SERVER_ERROR, with the driver's text (SQL included) in development:
a cursor whose decoded parts have the wrong types, a global ID whose key cannot exist, a lone
UTF-16 surrogate in a string, a date at the edge of the calendar. Now each is refused where it
enters, as BAD_USER_INPUT naming what is wrong and never repeating the value, or (an ID) found
to be nothing, like any unknown ID.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from strawberry import relay

from tests.test_staff import make_staff

ADMIN = "admin@northwind.example"
STAFF = "agent@vendor.example"
UUID_TEXT = "0f0e0d0c-0b0a-4909-8807-060504030201"
CONNECTIONS = {
    # name: (query taking $after, the principal it needs)
    "members (text, uuid)": (
        "query Q($after: String) { viewer { organization { members(first: 2, after: $after) { totalCount } } } }",
        ADMIN),
    "auditLog (bigint)": (
        "query Q($after: String) { viewer { organization { auditLog(first: 2, after: $after) { totalCount } } } }",
        ADMIN),
    "invitations (timestamptz, uuid)": (
        "query Q($after: String) { viewer { organization { invitations(first: 2, after: $after) "
        "{ totalCount } } } }", ADMIN),
    "allocations (timestamptz, uuid)": (
        "query Q($after: String) { viewer { organization { licenses { allocations(first: 2, after: $after) "
        "{ totalCount } } } } }", ADMIN),
    "invoices (timestamptz, text), in memory": (
        "query Q($after: String) { viewer { organization { invoices(first: 2, after: $after) { totalCount } } } }",
        ADMIN),
    "staff creditUsage (bigint, uuid)": (
        "query Q($after: String) { staff { creditUsage(from: \"2020-01-01T00:00:00Z\", to: \"2030-01-01T00:00:00Z\","
        " first: 2, after: $after) { totalCount } } }", STAFF),
}
CURSOR_KEYS = [
    ["x"], ["x", "y"], [{}, []], [None, None], [1e300, 1e300], [2**70, UUID_TEXT], [-(2**63) - 1, UUID_TEXT],
    [True, UUID_TEXT], ["2026-01-01T00:00:00+00:00", 7], ["a\x00b", UUID_TEXT], ["\ud800", UUID_TEXT],
    [12, "\x00"], [12.5, UUID_TEXT],
]
NODE = "query Node($id: ID!) { node(id: $id) { id } }"
NODES = "query Nodes($ids: [ID!]!) { nodes(ids: $ids) { id } }"
VIEWER_ID = "query Me { viewer { id } }"
UPDATE_PROFILE = ("mutation Update($input: UpdateProfileInput!) { updateProfile(input: $input) "
                  "{ userErrors { code } } }")
LOGIN_INPUT = "mutation Login($input: LoginInput!) { login(input: $input) { token } }"
ARCHIVE = ("query Archive($from: Date!, $to: Date!) { viewer { organization { "
           "invoicesArchiveUrl(from: $from, to: $to) } } }")
INVOICES_FROM = ("query Invoices($from: DateTime) { viewer { organization { "
                 "invoices(first: 5, filter: {issuedFrom: $from}) { totalCount } } } }")
SUBSCRIPTIONS_AFTER = ("query Subscriptions($after: DateTime) { viewer { organization { "
                       "subscriptions(filter: {expiresAfter: $after}) { id } } } }")
CREDIT_USAGE = ("query Usage($from: DateTime!, $to: DateTime!) { staff { creditUsage(from: $from, to: $to, first: 5) "
                "{ totalCount } } }")
# What the driver, Python or SQL would have said: never in an answer.
LEAKS = ("Traceback", "asyncpg", "OverflowError", "ValueError", "TypeError", "UnicodeEncodeError",
         "invalid input syntax", "out of range", "surrogates not allowed", "SELECT", "codec")


def cursor(key: list[Any]) -> str:
    # json.dumps writes a lone surrogate as the escape "\ud800", as any client's encoder may.
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def gid(type_name: str, raw: str) -> str:
    return relay.to_base64(type_name, raw)


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


def assert_no_leak(body: dict[str, Any]) -> None:
    text = json.dumps(body)
    assert not [leak for leak in LEAKS if leak in text], body


async def post_raw(gateway, body: dict[str, Any], token: str | None = None):
    """The body as a client's JSON encoder writes it: lone surrogates as JSON escapes."""
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return await gateway.http.post("/graphql", content=json.dumps(body).encode(), headers=headers)


@pytest.fixture
async def tokens(gateway, db) -> dict[str, str]:
    await make_staff(db, "SUPPORT", STAFF)
    return {ADMIN: await gateway.login(ADMIN), STAFF: await gateway.login(STAFF)}


# --- cursors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("connection", CONNECTIONS)
async def test_a_cursor_whose_parts_have_the_wrong_types_is_bad_user_input(gateway, tokens, connection):
    query, who = CONNECTIONS[connection]
    for key in CURSOR_KEYS:
        body = (await post_raw(gateway, {"query": query, "variables": {"after": cursor(key)}}, tokens[who])).json()
        assert codes(body) == ["BAD_USER_INPUT"], (key, body)
        assert "cursor is not valid" in body["errors"][0]["message"]
        assert_no_leak(body)


async def test_a_genuine_cursor_still_pages(gateway, tokens):
    query = ("query Q($after: String) { viewer { organization { members(first: 1, after: $after) "
             "{ edges { cursor node { id } } } } } }")
    first = await gateway.execute(query, {"after": None}, token=tokens[ADMIN])
    [edge] = first["data"]["viewer"]["organization"]["members"]["edges"]
    second = await gateway.execute(query, {"after": edge["cursor"]}, token=tokens[ADMIN])
    assert "errors" not in second, second
    assert second["data"]["viewer"]["organization"]["members"]["edges"][0]["node"]["id"] != edge["node"]["id"]


# --- global IDs ------------------------------------------------------------------------------------

IMPOSSIBLE_IDS = [
    gid("AuditLogEntry", "99999999999999999999"),  # past bigint
    gid("AuditLogEntry", "²"),  # a digit to str.isdigit, not to int()
    gid("AuditLogEntry", "-1"), gid("AuditLogEntry", ""), gid("AuditLogEntry", "1e3"),
    gid("Account", "not-a-uuid"), gid("Member", "a.12"), gid("Member", "x." + UUID_TEXT),
    gid("LicenseAllocation", "::"), gid("Invoice", "\x00"), gid("NoSuchType", "1"),
    "not base64 at all", "", base64.b64encode(b"\xff\xfe").decode(),
]


async def test_a_global_id_that_cannot_exist_answers_null_like_any_unknown_id(gateway, tokens):
    for raw in IMPOSSIBLE_IDS:
        body = (await post_raw(gateway, {"query": NODE, "variables": {"id": raw}}, tokens[ADMIN])).json()
        if "\x00" in raw:  # refused where it enters, as every string holding NUL is
            assert codes(body) == ["BAD_USER_INPUT"], body
        else:
            assert body["data"] == {"node": None} and "errors" not in body, (raw, body)


async def test_one_bad_id_in_nodes_nulls_that_entry_only(gateway, tokens):
    real = (await gateway.execute(VIEWER_ID, token=tokens[ADMIN]))["data"]["viewer"]
    ids = [real["id"], *[i for i in IMPOSSIBLE_IDS if "\x00" not in i], real["id"]]
    body = await gateway.execute(NODES, {"ids": ids}, token=tokens[ADMIN])
    assert "errors" not in body, body
    assert body["data"]["nodes"] == [real, *[None] * (len(ids) - 2), real]


# --- strings ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["x\ud800y", "\udfff", "a\x00b"])
async def test_text_no_database_can_hold_is_bad_user_input_naming_the_variable(gateway, db, tokens, bad):
    cases = [
        (UPDATE_PROFILE, {"input": {"name": bad}}, "'$input' at name"),
        (LOGIN_INPUT, {"input": {"email": ADMIN, "password": bad}}, "'$input' at password"),
        (LOGIN_INPUT, {"input": {"email": bad, "password": "x"}}, "'$input' at email"),
        (NODES, {"ids": ["QWNjb3VudDox", bad]}, "'$ids' at [1]"),
        (LOGIN_INPUT, {"input": {bad: 1, "email": ADMIN, "password": "x"}}, "'$input'"),
        (UPDATE_PROFILE, {"input": {"k" * 100_000: bad}}, "'$input' at kkk"),  # a name, shortened
    ]
    for query, variables, named in cases:
        response = await post_raw(gateway, {"query": query, "variables": variables}, tokens[ADMIN])
        assert response.status_code == 200, response.text
        body = response.json()
        assert codes(body) == ["BAD_USER_INPUT"], body
        message = body["errors"][0]["message"]
        assert named in message and bad not in message and len(message) < 300, message[:300]
    assert await db.fetchval("SELECT name FROM accounts WHERE email = $1", ADMIN) == "Arjun Mehta"


async def test_a_lone_surrogate_in_a_get_query_string_or_operation_name_is_bad_user_input(gateway, tokens):
    answer = await gateway.http.get("/graphql", params={
        "query": "query Q($s: String) { viewer { organization { auditLog(first: 1, action: $s) { totalCount } } } }",
        "variables": json.dumps({"s": "\ud800"})}, headers={"authorization": f"Bearer {tokens[ADMIN]}"})
    assert codes(answer.json()) == ["BAD_USER_INPUT"], answer.text
    named = await post_raw(gateway, {"query": "query Q { __typename }", "operationName": "Q\ud800"})
    assert codes(named.json()) == ["BAD_USER_INPUT"], named.text


# --- dates and times --------------------------------------------------------------------------------


@pytest.mark.parametrize("query,variables,who", [
    (ARCHIVE, {"from": "9999-12-31", "to": "9999-12-31"}, ADMIN),
    (ARCHIVE, {"from": "0001-01-01", "to": "0001-01-02"}, ADMIN),
    (INVOICES_FROM, {"from": "9999-12-31T23:59:59-14:00"}, ADMIN),
    (INVOICES_FROM, {"from": "0001-01-01T00:00:00+14:00"}, ADMIN),
    (SUBSCRIPTIONS_AFTER, {"after": "0001-01-01T00:00:00"}, ADMIN),
    (SUBSCRIPTIONS_AFTER, {"after": "9999-12-31T23:59:59.999999+00:00"}, ADMIN),
    (CREDIT_USAGE, {"from": "0001-01-01T00:00:00+14:00", "to": "2030-01-01T00:00:00Z"}, STAFF),
    (CREDIT_USAGE, {"from": "2020-01-01T00:00:00Z", "to": "9999-12-31T23:59:59-14:00"}, STAFF),
    (SUBSCRIPTIONS_AFTER, {"after": "2026-13-01T00:00:00Z"}, ADMIN),
    (ARCHIVE, {"from": 20260101, "to": "2026-01-02"}, ADMIN),
])
async def test_a_date_at_the_edge_of_the_calendar_is_bad_user_input(gateway, tokens, query, variables, who):
    body = await gateway.execute(query, variables, token=tokens[who])
    assert set(codes(body)) == {"BAD_USER_INPUT"}, body
    assert "up to, not including, 9999-01-01" in body["errors"][0]["message"], body
    assert_no_leak(body)
    for value in variables.values():
        assert str(value) not in body["errors"][0]["message"]


async def test_a_time_without_an_offset_is_utc_and_compares_with_one_that_has_it(gateway, tokens):
    naive = await gateway.execute(CREDIT_USAGE, {"from": "2020-01-01T00:00:00", "to": "2030-01-01T00:00:00Z"},
                                  token=tokens[STAFF])
    aware = await gateway.execute(CREDIT_USAGE, {"from": "2020-01-01T00:00:00+00:00", "to": "2030-01-01T00:00:00Z"},
                                  token=tokens[STAFF])
    assert "errors" not in naive, naive
    assert naive["data"] == aware["data"]


# --- numbers ----------------------------------------------------------------------------------------


async def test_a_page_size_past_any_integer_is_refused_not_a_server_error(gateway, tokens):
    # Its cost, a product of page sizes, was past what JSON numbers hold: the refusal itself failed.
    query = ("query Huge { viewer { organization { invitations(first: 10000000000000000000000000000000000000000) "
             "{ nodes { id } } } } }")
    response = await gateway.post(query, token=tokens[ADMIN])
    assert response.status_code == 200, response.text
    body = response.json()
    assert codes(body) == ["QUERY_TOO_COMPLEX"], body
    assert body["errors"][0]["extensions"]["cost"]["requested"] <= 2**53
