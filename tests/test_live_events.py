"""Live events over GraphQL over WebSocket, with the Python `gql` client against two real
`account-gateway serve` processes on one database.

Events are written the way the product writes them: `resolvers.events.publish` inside a
transaction (committed, or rolled back), on a connection of the test's own, which is neither
of the two processes. A subscriber on process A therefore receives only what came through
PostgreSQL (LISTEN/NOTIFY and the log), as a subscriber on another machine would. The module
shares one database copy and the two processes; each test follows its own events by their
ids and data, so the tests do not see each other's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportConnectionFailed, TransportQueryError
from gql.transport.websockets import WebsocketsTransport
from strawberry.relay import to_base64

from auth import tokens
from gateway.demo import demo_id
from resolvers import events
from tests.conftest import LOGIN, copy_template, drop_database
from tests.test_serve import Served, start, stop

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = "live-events-secret-" + "x" * 40
NORTHWIND, GLOBEX = demo_id("organization", "northwind"), demo_id("organization", "globex")
ADMIN, MEMBER = "admin@northwind.example", "member1@northwind.example"
GLOBEX_ADMIN = "admin@globex.example"
MEMBER2 = demo_id("account", "member2@northwind.example")

ORGANIZATION_EVENTS = """
subscription Follow($types: [OrganizationEventType!], $after: String) {
  organizationEvents(types: $types, after: $after) {
    id type cursor occurredAt
    ... on MemberRoleChangedEvent { oldRole newRole member { email role } account { email } }
    ... on LicenseQuantityChangedEvent { oldQuantity newQuantity license { quantity } }
  }
}"""
VIEWER_EVENTS = """
subscription Mine($after: String) {
  viewerEvents(after: $after) { id type cursor ... on CreditAccessChangedEvent { account { email } } }
}"""


@dataclass
class Live:
    a: Served
    b: Served
    dsn: str
    env: dict[str, str]

    def ws(self, served: Served) -> str:
        return served.url.replace("http://", "ws://") + "/graphql"


@pytest.fixture(scope="module")
def live(services, tmp_path_factory) -> Iterator[Live]:
    name = asyncio.run(copy_template(services))
    dsn = services.dsn(name)
    env = {"DATABASE_URL": dsn, "SECRET_KEY": SECRET, "STRIPE_API_BASE": services.stripe_api_base,
           "MAX_SUBSCRIPTIONS_PER_CONNECTION": "3", "MAX_SUBSCRIPTIONS_PER_VIEWER": "5"}
    root = tmp_path_factory.mktemp("live")
    started: list[Served] = []
    try:
        for label in ("a", "b"):  # one after the other: the first applies what migrations there are
            started.append(start(root / label, root / f"serve-{label}.log", env))
        yield Live(started[0], started[1], dsn, env)
    finally:
        for served in started:
            if served.process.poll() is None:
                stop(served)
        asyncio.run(drop_database(services, name))


async def login(served: Served, email: str) -> str:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{served.url}/graphql", json={"query": LOGIN, "variables": {
            "email": email, "password": "demo-password"}})
    return response.json()["data"]["login"]["token"]


@asynccontextmanager
async def connected(live: Live, served: Served, token: str | None) -> AsyncIterator[Any]:
    transport = WebsocketsTransport(url=live.ws(served), subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
                                    init_payload={"authorization": f"Bearer {token}"} if token else {})
    async with Client(transport=transport) as session:
        yield session


@asynccontextmanager
async def following(live: Live, served: Served, token: str, query: str = ORGANIZATION_EVENTS,
                    variables: dict[str, Any] | None = None) -> AsyncIterator[Received]:
    """A subscription running (registered at the server) for the body."""
    async with connected(live, served, token) as session:
        received = Received(session, query, variables)
        await received.settle()
        try:
            yield received
        finally:
            await received.stop()


async def publish(live: Live, kind: str, *, commit: bool = True, **fields: Any) -> int | None:
    conn = await asyncpg.connect(live.dsn)
    try:
        transaction = conn.transaction()
        await transaction.start()
        event = await events.publish(conn, kind, **fields)
        await (transaction.commit() if commit else transaction.rollback())
        return event.id if event and commit else None
    finally:
        await conn.close()


def role_changed(old: str = "MEMBER", new: str = "ADMIN", account_id: uuid.UUID = MEMBER2) -> dict[str, Any]:
    return {"organization_id": NORTHWIND, "account_id": account_id,
            "data": {"account_id": str(account_id), "old_role": old, "new_role": new}}


class Received:
    """A subscription read in the background, so that the test can emit while it waits."""

    def __init__(self, session: Any, query: str, variables: dict[str, Any] | None = None) -> None:
        self.items: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self._new = asyncio.Event()
        self.task = asyncio.create_task(self._run(session, GraphQLRequest(query, variable_values=variables)))

    async def _run(self, session: Any, request: GraphQLRequest) -> None:
        try:
            async for result in session.subscribe(request):
                self.items.append(next(iter(result.values())))
                self._new.set()
        except Exception as exc:  # noqa: BLE001 - what the test asserts on
            self.error = exc
            self._new.set()

    async def wait_for(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        async def enough() -> None:
            while len(self.items) < count and self.error is None:
                self._new.clear()
                await self._new.wait()

        await asyncio.wait_for(enough(), timeout)
        if len(self.items) < count:
            raise AssertionError(f"the subscription ended after {self.items}: {self.error!r}")
        return self.items

    async def ended(self, timeout: float = 10) -> BaseException | None:
        await asyncio.wait_for(asyncio.shield(self.task), timeout)
        return self.error

    async def settle(self) -> None:
        """Gives the server time to register the subscription before the test emits."""
        await asyncio.sleep(0.5)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def refusal(session: Any, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one error a subscription is refused with (an `error` message: gql raises it)."""
    with pytest.raises(TransportQueryError) as refused:
        async for _ in session.subscribe(GraphQLRequest(query, variable_values=variables)):
            pass
    [error] = refused.value.errors
    return error


async def limit_refusal(sessions: list[Any], extra: Any) -> dict[str, Any]:
    """Holds one subscription on each of `sessions`, then asks for one more on `extra`."""
    held = [Received(session, ORGANIZATION_EVENTS) for session in sessions]
    await held[0].settle()
    try:
        return await refusal(extra, ORGANIZATION_EVENTS)
    finally:
        for received in held:
            await received.stop()


def close_of(error: BaseException | None) -> tuple[int | None, str]:
    """The close code and reason the server sent, from under gql's wrapping of websockets' error."""
    while error is not None:
        received = getattr(error, "rcvd", None)
        if received is not None:
            return received.code, received.reason
        error = error.__cause__ or error.__context__
    return None, ""


async def test_an_admin_receives_an_event_committed_through_another_process(live: Live):
    token = await login(live.a, ADMIN)
    async with following(live, live.a, token) as received:
        # The other process emits (an HTTP mutation there would do the same): A hears it from PostgreSQL.
        emitted = await publish(live, "MEMBER_ROLE_CHANGED", **role_changed())
        [event] = await received.wait_for(1)
    assert int(event["id"]) == emitted
    assert event["type"] == "MEMBER_ROLE_CHANGED"
    assert (event["oldRole"], event["newRole"]) == ("MEMBER", "ADMIN")
    # The changed objects, resolved as they are now through the gateway's own types.
    assert event["account"]["email"] == "member2@northwind.example"
    assert event["member"]["email"] == "member2@northwind.example"


async def test_a_rolled_back_change_emits_nothing(live: Live):
    token = await login(live.b, ADMIN)
    async with following(live, live.b, token) as received:
        assert await publish(live, "MEMBER_ROLE_CHANGED", commit=False, **role_changed("MEMBER", "OWNER")) is None
        committed = await publish(live, "MEMBER_ROLE_CHANGED", **role_changed("ADMIN", "MEMBER"))
        items = await received.wait_for(1)
        await asyncio.sleep(0.3)
    assert [(int(i["id"]), i["newRole"]) for i in items] == [(committed, "MEMBER")]


async def test_another_organizations_admin_receives_nothing_and_cannot_name_it(live: Live):
    token = await login(live.a, GLOBEX_ADMIN)
    async with following(live, live.a, token) as received:
        northwind = await publish(live, "MEMBER_ROLE_CHANGED", **role_changed())
        globex = await publish(live, "LICENSE_QUANTITY_CHANGED", organization_id=GLOBEX,
                               data={"license_id": str(demo_id("license", "globex", "LUMEN-RENDER")),
                                     "old_quantity": 10, "new_quantity": 12})
        items = await received.wait_for(1)
        await asyncio.sleep(0.3)
    assert [int(i["id"]) for i in items] == [globex] and northwind not in [int(i["id"]) for i in items]
    assert (items[0]["oldQuantity"], items[0]["newQuantity"]) == (10, 12)
    async with connected(live, live.a, token) as session:
        # Naming Northwind: NOT_FOUND, as node(id:) answers for another organization's objects.
        error = await refusal(session, "subscription F($org: ID) { organizationEvents(organizationId: $org) { id } }",
                              {"org": to_base64("Organization", str(NORTHWIND))})
    assert error["extensions"]["code"] == "NOT_FOUND"


async def test_a_member_is_refused_organization_events(live: Live):
    token = await login(live.a, MEMBER)
    async with connected(live, live.a, token) as session:
        error = await refusal(session, ORGANIZATION_EVENTS)
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert "organization events" in error["message"]


async def test_viewer_events_deliver_only_ones_own(live: Live):
    member1 = demo_id("account", MEMBER)
    token = await login(live.a, MEMBER)
    async with following(live, live.a, token, VIEWER_EVENTS) as received:
        other = await publish(live, "CREDIT_ACCESS_CHANGED", organization_id=NORTHWIND, account_id=MEMBER2,
                              data={"account_id": str(MEMBER2)})
        own = await publish(live, "CREDIT_ACCESS_CHANGED", organization_id=NORTHWIND, account_id=member1,
                            data={"account_id": str(member1)})
        items = await received.wait_for(1)
        await asyncio.sleep(0.3)
    assert [int(i["id"]) for i in items] == [own] and other not in [int(i["id"]) for i in items]
    assert items[0]["account"]["email"] == MEMBER


async def test_resuming_after_a_dropped_connection_loses_nothing_and_repeats_nothing(live: Live):
    token = await login(live.a, ADMIN)
    async with following(live, live.a, token, ORGANIZATION_EVENTS, {"types": ["MEMBER_ROLE_CHANGED"]}) as received:
        first = await publish(live, "MEMBER_ROLE_CHANGED", **role_changed())
        [seen] = await received.wait_for(1)
    # Disconnected: three changes happen meanwhile, through the other process's database.
    missed = [await publish(live, "MEMBER_ROLE_CHANGED", **role_changed()) for _ in range(3)]
    async with connected(live, live.b, token) as session:
        received = Received(session, ORGANIZATION_EVENTS, {"types": ["MEMBER_ROLE_CHANGED"], "after": seen["cursor"]})
        backlog = await received.wait_for(3)
        live_one = await publish(live, "MEMBER_ROLE_CHANGED", **role_changed())
        items = await received.wait_for(4)
        await asyncio.sleep(0.3)
        await received.stop()
    assert int(seen["id"]) == first
    assert [int(i["id"]) for i in backlog[:3]] == missed
    assert [int(i["id"]) for i in items] == [*missed, live_one]


async def test_a_cursor_that_is_not_one_is_bad_user_input_and_an_old_one_says_refetch(live: Live):
    import base64
    token = await login(live.a, ADMIN)
    old = base64.urlsafe_b64encode(b"event:1:1000000000").decode().rstrip("=")
    async with connected(live, live.a, token) as session:
        for cursor, words in (("not-a-cursor", "not an event cursor"), (old, "Refetch")):
            error = await refusal(session, ORGANIZATION_EVENTS, {"after": cursor})
            assert error["extensions"]["code"] == "BAD_USER_INPUT" and words in error["message"]


async def test_too_many_subscriptions_on_one_connection_are_refused_naming_the_limit(live: Live):
    token = await login(live.a, ADMIN)
    async with connected(live, live.a, token) as session:
        error = await limit_refusal([session] * 3, session)
    assert error["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
    assert "MAX_SUBSCRIPTIONS_PER_CONNECTION" in error["message"]


async def test_an_expired_token_closes_the_socket_with_4401(live: Live):
    claims = tokens.decode(SECRET, await login(live.a, ADMIN))
    assert claims is not None
    short, _ = tokens.issue(SECRET, session_id=claims.session_id, account_id=claims.account_id, ttl_seconds=2)
    async with connected(live, live.a, short) as session:
        received = Received(session, ORGANIZATION_EVENTS)
        error = await received.ended(timeout=10)
    assert isinstance(error, TransportConnectionFailed), repr(error)
    code, reason = close_of(error)
    assert code == 4401 and "expired" in reason, (code, reason)


async def test_no_token_closes_the_socket_with_4401(live: Live):
    with pytest.raises(Exception) as closed:  # noqa: PT011 - gql raises its closing error
        async with connected(live, live.a, None):
            pass
    code, reason = close_of(closed.value)
    assert code == 4401 and "access token" in reason, (code, reason)


async def test_a_subscription_over_http_is_refused_with_a_clear_message(live: Live):
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{live.a.url}/graphql", json={"query": "subscription { viewerEvents { id } }"})
    assert response.status_code == 400
    assert "WebSocket" in response.json()["errors"][0]["message"]


async def test_too_many_subscriptions_of_one_viewer_across_connections_are_refused(live: Live):
    token = await login(live.b, "owner@northwind.example")
    async with connected(live, live.b, token) as first, connected(live, live.b, token) as second:
        error = await limit_refusal([first, first, first, second, second], second)
    assert error["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
    assert "MAX_SUBSCRIPTIONS_PER_VIEWER" in error["message"]


async def test_each_event_is_resolved_as_things_are_now_not_from_an_earlier_events_loaders(live: Live):
    license_id = demo_id("license", "northwind", "ATLAS-SCATTER")
    token = await login(live.a, ADMIN)

    async def change_quantity(new: int) -> int | None:
        conn = await asyncpg.connect(live.dsn)
        try:
            async with conn.transaction():
                old = await conn.fetchval("UPDATE licenses SET quantity = $2 WHERE id = $1 RETURNING quantity",
                                          license_id, new)
                event = await events.publish(conn, "LICENSE_QUANTITY_CHANGED", organization_id=NORTHWIND,
                                             data={"license_id": str(license_id), "old_quantity": old,
                                                   "new_quantity": new})
            return event.id if event else None
        finally:
            await conn.close()

    async with following(live, live.a, token, ORGANIZATION_EVENTS, {"types": ["LICENSE_QUANTITY_CHANGED"]}) as received:
        # The second change waits for the first event: each is answered at its delivery, as things are then.
        await change_quantity(5)
        await received.wait_for(1)
        await change_quantity(7)
        items = await received.wait_for(2)
    assert [(i["newQuantity"], i["license"]["quantity"]) for i in items] == [(5, 5), (7, 7)]


async def test_a_service_token_follows_one_organization_with_what_its_scope_reads(live: Live):
    from tests.test_service_tokens import create_token

    conn = await asyncpg.connect(live.dsn)
    try:
        token = await create_token(conn, "live-reader", "accounts:read")
    finally:
        await conn.close()
    follow = ("subscription F($org: ID) { organizationEvents(organizationId: $org) { id type "
              "... on MemberRoleChangedEvent { account { email } } } }")
    async with connected(live, live.a, token) as session:
        unnamed = await refusal(session, follow)  # staff and services name the organization
        received = Received(session, follow, {"org": to_base64("Organization", str(NORTHWIND))})
        await received.settle()
        invoice = await publish(live, "INVOICE_PAID", organization_id=NORTHWIND,
                                data={"invoice_id": "in_x", "amount_paid": 100, "currency": "usd"})
        people = await publish(live, "MEMBER_ROLE_CHANGED", **role_changed())
        items = await received.wait_for(1)
        await asyncio.sleep(0.3)
        await received.stop()
    assert unnamed["extensions"]["code"] == "BAD_USER_INPUT"
    # accounts:read reads people, not invoices (billing:read does): the same rows as the queries.
    assert [int(i["id"]) for i in items] == [people] and invoice not in [int(i["id"]) for i in items]
    assert items[0]["account"]["email"] == "member2@northwind.example"


async def test_an_admin_demoted_while_subscribed_is_ended_with_forbidden(live: Live):
    member3 = demo_id("account", "member3@northwind.example")
    conn = await asyncpg.connect(live.dsn)
    try:
        await conn.execute("UPDATE memberships SET role = 'ADMIN' WHERE account_id = $1", member3)
        token = await login(live.a, "member3@northwind.example")
        async with following(live, live.a, token) as received:
            async with conn.transaction():
                await conn.execute("UPDATE memberships SET role = 'MEMBER' WHERE account_id = $1", member3)
                await events.publish(conn, "MEMBER_ROLE_CHANGED", organization_id=NORTHWIND, account_id=member3,
                                     data={"account_id": str(member3), "old_role": "ADMIN", "new_role": "MEMBER"})
            error = await received.ended()
    finally:
        await conn.close()
    assert isinstance(error, TransportQueryError), repr(error)
    assert error.errors[0]["extensions"]["code"] == "FORBIDDEN"
    assert "role in the organization changed" in error.errors[0]["message"]


async def test_the_sessions_end_closes_the_socket_with_4401(live: Live):
    email = "member4@northwind.example"
    token = await login(live.a, email)
    claims = tokens.decode(SECRET, token)
    assert claims is not None
    async with following(live, live.a, token, VIEWER_EVENTS) as received:
        await publish(live, "SESSION_ENDED", account_id=claims.account_id, data={"session_id": str(uuid.uuid4())})
        [elsewhere] = await received.wait_for(1)  # another session of the same account: told, not closed
        await publish(live, "SESSION_ENDED", account_id=claims.account_id, data={"session_id": str(claims.session_id)})
        error = await received.ended()
    assert elsewhere["type"] == "SESSION_ENDED"
    code, reason = close_of(error)
    assert code == 4401 and "session ended" in reason, (code, reason, repr(error))


async def test_a_lost_listener_connection_reconnects_and_delivers_what_was_committed_meanwhile(live: Live):
    from datasources.postgres.listener import APPLICATION_NAME

    token = await login(live.a, ADMIN)
    async with following(live, live.a, token, ORGANIZATION_EVENTS, {"types": ["MEMBER_ROLE_CHANGED"]}) as received:
        conn = await asyncpg.connect(live.dsn)
        try:  # both processes lose their LISTEN connection (a restart of PostgreSQL's side of it)
            killed = await conn.fetchval("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                         "WHERE application_name = $1 AND datname = current_database()",
                                         APPLICATION_NAME)
        finally:
            await conn.close()
        meanwhile = [await publish(live, "MEMBER_ROLE_CHANGED", **role_changed()) for _ in range(3)]
        items = await received.wait_for(3, timeout=20)
        after = await publish(live, "MEMBER_ROLE_CHANGED", **role_changed())
        items = await received.wait_for(4, timeout=20)
    assert killed == 2
    assert [int(i["id"]) for i in items] == [*meanwhile, after]


async def test_a_slow_subscriber_is_ended_with_a_clear_error_instead_of_buffering_without_bound():
    from datetime import datetime, timezone

    from datasources.postgres.events import Event
    from resolvers import live as resolve_live
    from resolvers.event_hub import QUEUE_SIZE, Hub, Key

    async def nothing():
        return
        yield

    hub = Hub(None)  # type: ignore[arg-type] - fan-out only: no listener
    key = Key(organization_id=NORTHWIND)
    with hub.subscribed(key, frozenset({"MEMBER_JOINED"})) as subscriber:
        for n in range(1, QUEUE_SIZE + 2):  # one more than the queue holds, none read
            hub._fan_out(Event(n, "MEMBER_JOINED", NORTHWIND, None, None, {}, datetime.now(timezone.utc)))
        assert subscriber.waiting <= QUEUE_SIZE
        with pytest.raises(resolve_live.SubscriberTooSlow) as ended:
            async for _ in resolve_live._delivered(subscriber, nothing(), 0):
                pass
    assert f"fell more than {QUEUE_SIZE} events behind" in ended.value.message
    assert "'after'" in ended.value.message
    assert hub.subscriber_count == 0


async def test_the_hub_stops_when_cancelled_as_a_notification_arrives(database_url):
    """The app's shutdown cancels the hub; a notification landing in the same moment must not eat
    the cancel (it did with asyncio.wait_for on Python 3.11, and teardown then hung for good)."""
    from datasources.postgres.listener import listening

    for _ in range(20):
        async with listening(database_url, connect_timeout=5) as listener:
            waiting = asyncio.create_task(listener.wait(30))
            await asyncio.sleep(0)  # it is now waiting for a notification
            listener._on_notify()
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting


async def test_serve_stops_cleanly_with_a_subscription_open(live: Live, tmp_path: Path):
    served = start(tmp_path / "c", tmp_path / "serve-c.log", live.env)
    try:
        token = await login(served, ADMIN)
        async with following(live, served, token) as received:
            returncode = await asyncio.to_thread(stop, served)
            error = await received.ended()
    finally:
        if served.process.poll() is None:
            served.process.kill()
    assert returncode == 0, served.output()
    code, _ = close_of(error)
    assert code in (1001, 1012), (code, repr(error))
    assert "Traceback" not in served.output(), served.output()


async def test_the_protocols_close_codes_for_messages_out_of_place(live: Live):
    """graphql-transport-ws's own codes, with a raw WebSocket: the gql client never sends these."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    token = await login(live.a, ADMIN)
    init = json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
    subscribe = json.dumps({"id": "1", "type": "subscribe", "payload": {"query": ORGANIZATION_EVENTS}})

    async def closed_by(*messages: str, init_first: bool = True) -> tuple[int | None, str]:
        async with connect(live.ws(live.a), subprotocols=["graphql-transport-ws"]) as ws:
            if init_first:
                await ws.send(init)
                assert json.loads(await ws.recv())["type"] == "connection_ack"
            for message in messages:
                await ws.send(message)
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None, closed.rcvd.reason if closed.rcvd else ""

    assert await closed_by(subscribe, init_first=False) == (4401, "Unauthorized")
    assert await closed_by(init) == (4429, "Too many initialisation requests")
    assert await closed_by(subscribe, subscribe) == (4409, "Subscriber for 1 already exists")
    assert (await closed_by("{not json"))[0] == 4400
    assert (await closed_by(json.dumps({"type": "nonsense"})))[0] == 4400
    assert (await closed_by(json.dumps({"type": "ping", "payload": "x" * (2 << 20)})))[0] == 1009
    # A query over the socket answers once (next, then complete), with the HTTP path's validation.
    async with connect(live.ws(live.a), subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(init)
        await ws.recv()
        await ws.send(json.dumps({"id": "q", "type": "subscribe", "payload": {"query": "{ viewer { email } }"}}))
        answered = [json.loads(await ws.recv()) for _ in range(2)]
        deep = "subscription D { viewerEvents { " + "... on SessionEndedEvent { id } " + "} }"
        too_deep = "{ viewer { " + "organization { members(first: 1) { nodes { account { " * 4 + "id" + \
            " } } } }" * 4 + " } }"
        await ws.send(json.dumps({"id": "d", "type": "subscribe", "payload": {"query": too_deep}}))
        refused = json.loads(await ws.recv())
        await ws.send(json.dumps({"id": "ok", "type": "subscribe", "payload": {"query": deep}}))
        await ws.send(json.dumps({"id": "ok", "type": "complete"}))
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}
    assert answered == [{"id": "q", "type": "next", "payload": {"data": {"viewer": {"email": ADMIN}}}},
                        {"id": "q", "type": "complete"}]
    assert refused["type"] == "error" and refused["id"] == "d"
    assert refused["payload"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", refused


CRAFTED_CURSORS = ["", "=", "\u0000", "event:1:1", "ZXZlbnQ6", "ZXZlbnQ6LTE6MQ",  # "event:", "event:-1:1"
                   "ZXZlbnQ6OTIyMzM3MjAzNjg1NDc3NTgwODox",  # "event:9223372036854775808:1", past bigint
                   "ZXZlbnQ6MTo5OTk5OTk5OTk5OTk5OTk5OTk5", "x" * 10_000, "\ud800"]
CRAFTED_ORGANIZATIONS = ["", "\u0000", "T3JnYW5pemF0aW9uOm5vdC1hLXV1aWQ", to_base64("Account", str(MEMBER2)),
                         to_base64("Organization", str(uuid.uuid4())), "x" * 10_000]


async def test_crafted_cursors_and_organization_ids_are_refused_with_a_clear_code(live: Live):
    token = await login(live.a, ADMIN)
    follow = ("subscription F($org: ID, $after: String) { organizationEvents(organizationId: $org, after: $after) "
              "{ id } }")
    async with connected(live, live.a, token) as session:
        codes = [(await refusal(session, follow, {"after": cursor}))["extensions"]["code"]
                 for cursor in CRAFTED_CURSORS]
        codes += [(await refusal(session, follow, {"org": org}))["extensions"]["code"]
                  for org in CRAFTED_ORGANIZATIONS]
    assert set(codes[:len(CRAFTED_CURSORS)]) == {"BAD_USER_INPUT"}, codes
    # As over HTTP: a NUL is refused before anything runs (admission: PostgreSQL stores none).
    assert codes[len(CRAFTED_CURSORS):] == ["NOT_FOUND", "BAD_USER_INPUT", "NOT_FOUND", "NOT_FOUND", "NOT_FOUND",
                                            "NOT_FOUND"], codes


CHANGE_ROLE = "mutation C($input: ChangeMemberRoleInput!) { changeMemberRole(input: $input) { userErrors { code } } }"
WITH_ACTOR = """
subscription Follow($types: [OrganizationEventType!]) {
  organizationEvents(types: $types) {
    id type actor { email } ... on MemberRoleChangedEvent { oldRole newRole member { email role } }
  }
}"""


async def http(served: Served, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{served.url}/graphql", json={"query": query, "variables": variables},
                                     headers={"authorization": f"Bearer {token}"})
    return response.json()


async def test_a_mutation_over_http_on_one_process_reaches_a_subscriber_on_the_other(live: Live):
    member5 = to_base64("Account", str(demo_id("account", "member5@northwind.example")))
    owner = await login(live.b, "owner@northwind.example")
    token = await login(live.a, ADMIN)
    async with following(live, live.a, token, WITH_ACTOR, {"types": ["MEMBER_ROLE_CHANGED"]}) as received:
        for role in ("ADMIN", "MEMBER"):
            body = await http(live.b, CHANGE_ROLE, {"input": {"accountId": member5, "role": role}}, owner)
            assert body["data"]["changeMemberRole"]["userErrors"] == [], body
        items = await received.wait_for(2)
        # The admin signs out elsewhere (over HTTP, on the other process): this socket closes.
        assert (await http(live.b, "mutation L { logout(input: {}) { revoked } }", {}, token))["data"]["logout"] == {
            "revoked": 1}
        error = await received.ended()
    assert [(i["oldRole"], i["newRole"], i["actor"]["email"]) for i in items] == [
        ("MEMBER", "ADMIN", "owner@northwind.example"), ("ADMIN", "MEMBER", "owner@northwind.example")]
    # Each event's objects as they are when it is delivered.
    assert items[1]["member"] == {"email": "member5@northwind.example", "role": "MEMBER"}
    assert close_of(error)[0] == 4401


async def test_serve_with_two_workers_delivers_to_subscribers_on_each(live: Live, tmp_path: Path):
    from tests.test_workers import start_workers, workers_of

    # The per-viewer limit counts in each process, and the kernel may give one worker all six
    # connections: room for six here, so the test is about delivery, not about the spread.
    served = start_workers(tmp_path / "w", tmp_path / "serve-w.log", 2,
                           {**live.env, "MAX_SUBSCRIPTIONS_PER_VIEWER": "6"})
    try:
        assert len(workers_of(served)) == 2
        token = await login(served, ADMIN)
        async with contextlib.AsyncExitStack() as stack:
            # Six connections, which the kernel spreads over the workers (each with its own hub).
            sessions = [await stack.enter_async_context(connected(live, served, token)) for _ in range(6)]
            received = [Received(session, ORGANIZATION_EVENTS, {"types": ["MEMBER_ROLE_CHANGED"]})
                        for session in sessions]
            await received[0].settle()
            emitted = await publish(live, "MEMBER_ROLE_CHANGED", **role_changed())
            delivered = [[int(i["id"]) for i in await r.wait_for(1)] for r in received]
            for r in received:
                await r.stop()
    finally:
        await asyncio.to_thread(stop, served)
    assert delivered == [[emitted]] * 6


ALLOCATE = "mutation A($input: AllocateLicenseInput!) { allocateLicense(input: $input) { userErrors { code } } }"
MY_SEATS = """
subscription Mine { viewerEvents { id type ... on ViewerSeatAllocatedEvent { license { product { name } } } } }"""


async def test_a_member_is_told_of_the_seat_an_admin_gives_them_on_another_process(live: Live):
    member6 = demo_id("account", "member6@northwind.example")
    admin = await login(live.b, ADMIN)
    token = await login(live.a, "member6@northwind.example")
    async with following(live, live.a, token, MY_SEATS) as received:
        body = await http(live.b, ALLOCATE, {"input": {
            "licenseId": to_base64("License", str(demo_id("license", "northwind", "LUMEN-RENDER"))),
            "accountIds": [to_base64("Account", str(member6))]}}, admin)
        assert body["data"]["allocateLicense"]["userErrors"] == [], body
        [event] = await received.wait_for(1)
    assert event["type"] == "SEAT_ALLOCATED"
    assert event["license"] == {"product": {"name": "Lumen Render"}}


async def test_no_connection_init_in_time_closes_with_4408_and_the_app_stops_with_sockets_open(
        resolver_settings, monkeypatch):
    """In process (the timeout shortened): the close code, then the lifespan's end with a socket
    still open, which tells its client the server is going away (1001)."""
    from gateway import websocket
    from gateway.app import create_app
    from tests import asgi_websocket

    monkeypatch.setattr(websocket, "CONNECTION_INIT_TIMEOUT", 0.2)
    app = create_app(resolver_settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    stopped = False
    try:
        async with asgi_websocket.connected(app) as socket:
            closed = await socket.receive()
        token = await login_in_process(app)
        async with asgi_websocket.connected(app) as socket:
            await socket.send({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
            assert (await socket.receive())["type"] == "connection_ack"
            await socket.send({"id": "1", "type": "subscribe", "payload": {"query": VIEWER_EVENTS}})
            await asyncio.sleep(0.2)
            stopped = True
            await asyncio.wait_for(lifespan.__aexit__(None, None, None), 10)
            going_away = await socket.receive()
    finally:
        if not stopped:
            await lifespan.__aexit__(None, None, None)
    assert (closed["code"], closed["reason"]) == (4408, "Connection initialisation timeout")
    assert going_away["code"] == 1001


async def login_in_process(app) -> str:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
        response = await client.post("/graphql", json={"query": LOGIN, "variables": {
            "email": ADMIN, "password": "demo-password"}})
    return response.json()["data"]["login"]["token"]


async def test_a_revoked_service_token_is_closed_with_4401_at_the_next_check(resolver_settings, database_url,
                                                                              monkeypatch):
    """Revoking a token reports no event: each connection checks its credentials again
    (every RECHECK_SECONDS, shortened here)."""
    from datasources.postgres import service_tokens
    from gateway import websocket
    from gateway.app import create_app
    from tests import asgi_websocket
    from tests.test_service_tokens import create_token

    monkeypatch.setattr(websocket, "RECHECK_SECONDS", 0.3)
    conn = await asyncpg.connect(database_url)
    app = create_app(resolver_settings)
    try:
        token = await create_token(conn, "live-revoked", "accounts:read")
        async with app.router.lifespan_context(app), asgi_websocket.connected(app) as socket:
            await socket.send({"type": "connection_init", "payload": {"token": token}})
            assert (await socket.receive())["type"] == "connection_ack"
            await asyncio.sleep(0.5)  # checked once: still live
            await service_tokens.revoke(conn, "live-revoked")
            closed = await socket.receive(timeout=5)
    finally:
        await conn.close()
    assert (closed["code"], closed["reason"]) == (4401, "Unauthorized: the token was revoked.")


async def test_variables_that_do_not_coerce_are_refused_without_repeating_the_value(live: Live):
    token = await login(live.a, ADMIN)
    async with connected(live, live.a, token) as session:
        error = await refusal(session, ORGANIZATION_EVENTS, {"types": ["NOT_A_KIND_secret-value"]})
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert "secret-value" not in error["message"], error
