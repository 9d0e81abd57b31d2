"""Live events attacked from outside: a careless client, a hostile one and a hostile tenant
against a real `account-gateway serve`, with a plain WebSocket client (the `websockets`
package) so that the test, not a well-behaved library, decides every frame.

Each test is a defect found that way, or a probe kept so that it stays fixed; every test
also requires that the server logged no traceback.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import LOGIN, copy_template, drop_database
from tests.test_serve import Served, start, stop

pytestmark = pytest.mark.asyncio(loop_scope="module")

PER_CONNECTION, PER_VIEWER = 5, 8
FOLLOW = "subscription { organizationEvents { id type } }"
_DSNS: dict[int, str] = {}  # the served process's database, for what a test writes directly


def served_dsn(served: Served) -> str:
    return _DSNS[id(served)]


@pytest.fixture(scope="module")
def served(services, tmp_path_factory) -> Iterator[Served]:
    name = asyncio.run(copy_template(services))
    env = {"DATABASE_URL": services.dsn(name), "SECRET_KEY": "live-attacks-secret-" + "x" * 40,
           "STRIPE_API_BASE": services.stripe_api_base, "MAX_SUBSCRIPTIONS_PER_CONNECTION": str(PER_CONNECTION),
           "MAX_SUBSCRIPTIONS_PER_VIEWER": str(PER_VIEWER)}
    root = tmp_path_factory.mktemp("live-attacks")
    process = start(root / "data", root / "serve.log", env)
    _DSNS[id(process)] = env["DATABASE_URL"]
    try:
        yield process
    finally:
        if process.process.poll() is None:
            stop(process)
        asyncio.run(drop_database(services, name))


@pytest.fixture(autouse=True)
def no_traceback(served: Served) -> Iterator[None]:
    logged = len(served.output())
    yield
    assert "Traceback" not in served.output()[logged:], served.output()[logged:]


async def login(served: Served, email: str = "owner@northwind.example") -> str:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{served.url}/graphql", json={"query": LOGIN, "variables": {
            "email": email, "password": "demo-password"}})
    return response.json()["data"]["login"]["token"]


async def connect(served: Served, token: str) -> Any:
    ws = await websockets.connect(served.url.replace("http://", "ws://") + "/graphql",
                                  subprotocols=["graphql-transport-ws"])
    await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
    assert json.loads(await ws.recv()) == {"type": "connection_ack"}
    return ws


def subscribe(id_: str, query: str = FOLLOW, **payload: Any) -> str:
    return json.dumps({"type": "subscribe", "id": id_, "payload": {"query": query, **payload}})


async def answers(ws: Any, quiet: float = 1.0) -> list[dict[str, Any]]:
    """Every message until the server has been quiet for `quiet` seconds."""
    received = []
    with pytest.raises(TimeoutError):
        while True:
            received.append(json.loads(await asyncio.wait_for(ws.recv(), quiet)))
    return received


def refusals(received: list[dict[str, Any]]) -> list[str]:
    return [m["payload"][0]["extensions"]["code"] for m in received if m["type"] == "error"]


def cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


async def test_a_burst_over_several_connections_admits_exactly_the_per_viewer_limit(served: Served):
    # Found: the count went up only once the subscription ran, after the checks' awaits, so 4
    # connections subscribing 3 times at once were all admitted: 12 with a limit of 8.
    token = await login(served)
    sockets = [await connect(served, token) for _ in range(4)]
    try:
        await asyncio.gather(*(ws.send(subscribe(f"s{i}")) for ws in sockets for i in range(3)))
        refused = [code for got in await asyncio.gather(*(answers(ws) for ws in sockets)) for code in refusals(got)]
        assert refused == ["TOO_MANY_SUBSCRIPTIONS"] * (4 * 3 - PER_VIEWER)
    finally:
        for ws in sockets:
            await ws.close()


async def test_slots_come_back_after_completes_refusals_and_dropped_connections(served: Served):
    token = await login(served, "admin@northwind.example")
    for round_ in range(20):  # dropped mid-subscribe: closed politely, or cut off
        ws = await connect(served, token)
        for i in range(3):
            await ws.send(subscribe(str(i)))
        if round_ % 2:
            await ws.close()
        else:
            ws.transport.abort()
    ws = await connect(served, token)
    await asyncio.gather(*(ws.send(subscribe(str(i), "subscription {")) for i in range(PER_CONNECTION)))
    assert refusals(await answers(ws)) == ["GRAPHQL_PARSE_FAILED"] * PER_CONNECTION  # refused: no slot kept
    for i in range(PER_CONNECTION):
        await ws.send(subscribe(f"a{i}"))
        await ws.send(json.dumps({"type": "complete", "id": f"a{i}"}))
    second = await connect(served, token)
    try:
        await asyncio.sleep(0.5)
        await asyncio.gather(*(w.send(subscribe(f"b{i}")) for w in (ws, second) for i in range(PER_VIEWER // 2)))
        assert refusals(await answers(ws)) + refusals(await answers(second, 0.1)) == []
    finally:
        await ws.close()
        await second.close()


async def test_an_operation_name_the_document_lacks_is_bad_request_not_an_internal_error(served: Served):
    # Found: INTERNAL_SERVER_ERROR ("Can't get GraphQL operation type") and a traceback in the log.
    ws = await connect(served, await login(served))
    try:
        await ws.send(subscribe("1", "subscription A { viewerEvents { id } }", operationName="B"))
        [error] = await answers(ws)
        assert error["type"] == "error" and error["payload"] == [{
            "message": "Pick the operation to run with 'operationName'.", "extensions": {"code": "BAD_REQUEST"}}]
        await ws.send(json.dumps({"type": "ping"}))  # the connection lives on
        assert await answers(ws) == [{"type": "pong"}]
    finally:
        await ws.close()


async def test_a_cursor_past_the_newest_event_is_refused_rather_than_followed_in_silence(served: Served):
    # Found: a well-formed cursor with an id the log has not reached (another deployment's, or
    # made up) was accepted and then held back every event until the ids caught up.
    ws = await connect(served, await login(served))
    now = int(time.time())
    try:
        for i, query in enumerate(("subscription($a: String) { organizationEvents(after: $a) { id } }",
                                   "subscription($a: String) { viewerEvents(after: $a) { id } }")):
            await ws.send(subscribe(str(i), query, variables={"a": cursor(f"event:{2**62}:{now}")}))
            [error] = await answers(ws)
            assert error["type"] == "error", error
            assert error["payload"][0]["extensions"] == {"field": "after", "code": "BAD_USER_INPUT"}
            assert "not a cursor of this gateway's events" in error["payload"][0]["message"]
    finally:
        await ws.close()


@pytest.mark.parametrize(("messages", "code"), [
    (['{"type": "subscribe"'], 4400),  # invalid JSON
    (["[" * 10000 + "]" * 10000], 4400),  # nested past the JSON depth limit
    ([b'{"type": "ping"}'], 4400),  # a binary frame
    (['{"type": "start", "id": "1"}'], 4400),  # the legacy protocol's message
    ([subscribe("1"), subscribe("1")], 4409),  # an id already in use
    (['{"type": "subscribe", "id": 7, "payload": {"query": "{ __typename }"}}'], 4400),  # an id that is no string
    ([subscribe("1", variables=[1])], 4400),
    (['{"type": "connection_init"}'], 4429),  # a second connection_init
    ([json.dumps({"type": "ping", "payload": "x" * 1_100_000})], 1009),  # past MAX_BODY_BYTES
])
async def test_protocol_abuse_closes_with_the_protocols_code(served: Served, messages: list[Any], code: int):
    ws = await connect(served, await login(served))
    for message in messages:
        await ws.send(message)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await answers(ws, 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code


async def test_what_a_careless_client_sends_is_answered_and_the_connection_lives_on(served: Served):
    ws = await connect(served, await login(served))
    try:
        await ws.send(json.dumps({"type": "complete", "id": "never-subscribed"}))
        await ws.send(json.dumps({"type": "complete", "id": {"an": "object"}}))
        await ws.send(subscribe("two", "subscription A { viewerEvents { id } } subscription B { viewerEvents { id } }"))
        await ws.send(subscribe("vars", "subscription($a: String) { viewerEvents(after: $a) { id } }",
                                variables={"a": [1]}))
        await ws.send(subscribe("query", "{ viewer { email } }"))
        for _ in range(500):
            await ws.send(json.dumps({"type": "ping"}))
        got = await answers(ws)
        assert [m for m in got if m["type"] == "pong"] == [{"type": "pong"}] * 500
        assert {m.get("id"): m["type"] for m in got if m["type"] != "pong"} == {
            "two": "error", "vars": "error", "query": "complete"}
        assert refusals(got) == ["GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT"]
    finally:
        await ws.close()


async def test_a_staff_member_whose_role_is_revoked_is_closed_with_4401_at_the_next_check(
        resolver_settings, database_url, monkeypatch):
    """Found: revoking a staff role left the staff member's subscription to another
    organization's events running for as long as the socket lived (HTTP refuses them from the
    next request). Revoking reports no event: the credentials check (RECHECK_SECONDS,
    shortened here) now compares the staff role too."""
    import asyncpg

    from datasources.postgres import staff
    from gateway import websocket
    from gateway.app import create_app
    from gateway.demo import demo_id
    from strawberry.relay import to_base64
    from tests import asgi_websocket

    monkeypatch.setattr(websocket, "RECHECK_SECONDS", 0.3)
    email = "member6@northwind.example"
    conn = await asyncpg.connect(database_url)
    app = create_app(resolver_settings)
    try:
        await staff.grant_role(conn, demo_id("account", email), "SUPPORT")
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as c:
                response = await c.post("/graphql", json={"query": LOGIN, "variables": {
                    "email": email, "password": "demo-password"}})
            token = response.json()["data"]["login"]["token"]
            async with asgi_websocket.connected(app) as socket:
                await socket.send({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
                assert (await socket.receive())["type"] == "connection_ack"
                await socket.send({"id": "1", "type": "subscribe", "payload": {
                    "query": "subscription($o: ID) { organizationEvents(organizationId: $o) { id } }",
                    "variables": {"o": to_base64("Organization", demo_id("organization", "globex"))}}})
                await asyncio.sleep(0.5)  # checked once: still live
                await staff.revoke_role(conn, demo_id("account", email))
                closed = await socket.receive(timeout=5)
    finally:
        await conn.close()
    assert (closed["type"], closed["code"]) == ("websocket.close", 4401), closed


async def test_persisted_operations_only_holds_over_websocket_too(resolver_settings):
    """Found: with PERSISTED_OPERATIONS_ONLY, HTTP refused any text but a registered
    operation's, while the same socket path ran any query, mutation or subscription."""
    from pathlib import Path

    from gateway.app import create_app
    from tests import asgi_websocket

    operations = Path(__file__).parent.parent / "operations"
    app = create_app(resolver_settings.with_(persisted_operations_only=True))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as c:
            response = await c.post("/graphql", json={"query": (operations / "login.graphql").read_text(), "variables": {
                "input": {"email": "admin@northwind.example", "password": "demo-password"}}})
        token = response.json()["data"]["login"]["token"]
        async with asgi_websocket.connected(app) as socket:
            await socket.send({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
            assert (await socket.receive())["type"] == "connection_ack"
            for i, text in enumerate(("{ viewer { email } }", 'mutation { updateProfile(input: {name: "Other"}) { '
                                      "userErrors { code } } }", "subscription { viewerEvents { id } }")):
                await socket.send({"id": str(i), "type": "subscribe", "payload": {"query": text}})
                refused = await socket.receive()
                assert (refused["type"], refused["payload"][0]["extensions"]["code"]) == (
                    "error", "PERSISTED_QUERY_REQUIRED"), refused
            await socket.send({"id": "registered", "type": "subscribe", "payload": {
                "query": (operations / "account.graphql").read_text()}})
            ran = await socket.receive()
            assert ran["type"] == "next" and ran["payload"]["data"]["viewer"] is not None, ran


async def graphql(served: Served, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(f"{served.url}/graphql", json={"query": query, "variables": variables},
                                   headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


async def test_concurrent_preference_and_alert_changes_of_one_account_all_succeed_consistently(served: Served):
    # Found: two updateNotificationPreferences of one account at once could end in PostgreSQL's
    # "deadlock detected", answered as INTERNAL_SERVER_ERROR.
    admin, owner = await login(served, "admin@globex.example"), await login(served, "owner@globex.example")
    update = """mutation($m: [NotificationPreferenceInput!]!) {
      updateNotificationPreferences(input: {mail: $m}) { userErrors { code } } }"""
    kinds = ["LICENSE_EXPIRING", "LICENSE_EXPIRED", "INVOICE_PAYMENT_FAILED", "CREDIT_POOL_LOW", "INVITATION_ACCEPTED"]
    for round_ in range(4):
        answers_ = await asyncio.gather(*(graphql(served, update, {"m": [
            {"kind": kind, "mail": bool(i % 2)} for kind in (kinds if i % 2 else kinds[::-1])]}, admin)
            for i in range(24)))
        assert [a.get("errors") for a in answers_] == [None] * 24, [a["errors"] for a in answers_ if "errors" in a]
        now = await graphql(served, "{ notificationPreferences { kind mail } }", {}, admin)
        assert len({p["mail"] for p in now["data"]["notificationPreferences"] if p["kind"] in kinds}) == 1, now
    alert = "mutation($t: Int) { setCreditPoolAlert(input: {threshold: $t}) { userErrors { code } } }"
    answers_ = await asyncio.gather(*(graphql(served, alert, {"t": 100 + i}, admin if i % 2 else owner)
                                      for i in range(24)))
    assert [a.get("errors") for a in answers_] == [None] * 24
    pool = await graphql(served, "{ viewer { organization { creditPool { lowBalanceThreshold } } } }", {}, admin)
    assert pool["data"]["viewer"]["organization"]["creditPool"]["lowBalanceThreshold"] in range(100, 124)


async def test_asking_only_for_kinds_one_may_not_read_is_forbidden_not_silence(served: Served):
    # Found: a BILLING staff member asking only for people events got a subscription that
    # stayed open and could never deliver anything.
    import asyncpg

    from datasources.postgres import staff
    from gateway.demo import demo_id
    from strawberry.relay import to_base64

    email = "member6@globex.example"
    conn = await asyncpg.connect(served_dsn(served))
    try:
        await staff.grant_role(conn, demo_id("account", email), "BILLING")
    finally:
        await conn.close()
    ws = await connect(served, await login(served, email))
    follow = "subscription($o: ID, $t: [OrganizationEventType!]) { organizationEvents(organizationId: $o, types: $t) { id } }"
    northwind = to_base64("Organization", demo_id("organization", "northwind"))
    try:
        await ws.send(subscribe("people", follow, variables={"o": northwind, "t": ["MEMBER_JOINED", "MEMBER_LEFT"]}))
        await ws.send(subscribe("billing", follow, variables={"o": northwind, "t": ["MEMBER_JOINED", "INVOICE_PAID"]}))
        got = await answers(ws)
        assert [(m["id"], m["type"]) for m in got] == [("people", "error")], got
        assert got[0]["payload"][0]["extensions"]["code"] == "FORBIDDEN"
    finally:
        await ws.close()
