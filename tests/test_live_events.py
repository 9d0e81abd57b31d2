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
        yield Live(started[0], started[1], dsn)
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
    async with connected(live, live.a, token) as session:
        received = Received(session, ORGANIZATION_EVENTS)
        await received.settle()
        # The other process emits (an HTTP mutation there would do the same): A hears it from PostgreSQL.
        emitted = await publish(live, "MEMBER_ROLE_CHANGED", **role_changed())
        [event] = await received.wait_for(1)
        await received.stop()
    assert int(event["id"]) == emitted
    assert event["type"] == "MEMBER_ROLE_CHANGED"
    assert (event["oldRole"], event["newRole"]) == ("MEMBER", "ADMIN")
    # The changed objects, resolved as they are now through the gateway's own types.
    assert event["account"]["email"] == "member2@northwind.example"
    assert event["member"]["email"] == "member2@northwind.example"


async def test_a_rolled_back_change_emits_nothing(live: Live):
    token = await login(live.b, ADMIN)
    async with connected(live, live.b, token) as session:
        received = Received(session, ORGANIZATION_EVENTS)
        await received.settle()
        assert await publish(live, "MEMBER_ROLE_CHANGED", commit=False, **role_changed("MEMBER", "OWNER")) is None
        committed = await publish(live, "MEMBER_ROLE_CHANGED", **role_changed("ADMIN", "MEMBER"))
        items = await received.wait_for(1)
        await asyncio.sleep(0.3)
        await received.stop()
    assert [(int(i["id"]), i["newRole"]) for i in items] == [(committed, "MEMBER")]


async def test_another_organizations_admin_receives_nothing_and_cannot_name_it(live: Live):
    token = await login(live.a, GLOBEX_ADMIN)
    async with connected(live, live.a, token) as session:
        received = Received(session, ORGANIZATION_EVENTS)
        await received.settle()
        northwind = await publish(live, "MEMBER_ROLE_CHANGED", **role_changed())
        globex = await publish(live, "LICENSE_QUANTITY_CHANGED", organization_id=GLOBEX,
                               data={"license_id": str(demo_id("license", "globex", "LUMEN-RENDER")),
                                     "old_quantity": 10, "new_quantity": 12})
        items = await received.wait_for(1)
        await asyncio.sleep(0.3)
        await received.stop()
        assert [int(i["id"]) for i in items] == [globex] and northwind not in [int(i["id"]) for i in items]
        assert (items[0]["oldQuantity"], items[0]["newQuantity"]) == (10, 12)
        # Naming Northwind: NOT_FOUND, as node(id:) answers for another organization's objects.
        from strawberry.relay import to_base64
        with pytest.raises(TransportQueryError) as refused:
            async for _ in session.subscribe(GraphQLRequest(
                    "subscription { organizationEvents(organizationId: $org) { id } }".replace(
                        "$org", json.dumps(to_base64("Organization", str(NORTHWIND)))))):
                pass
    assert refused.value.errors[0]["extensions"]["code"] == "NOT_FOUND"


async def test_a_member_is_refused_organization_events(live: Live):
    token = await login(live.a, MEMBER)
    async with connected(live, live.a, token) as session:
        with pytest.raises(TransportQueryError) as refused:
            async for _ in session.subscribe(GraphQLRequest(ORGANIZATION_EVENTS)):
                pass
    [error] = refused.value.errors
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert "organization events" in error["message"]


async def test_viewer_events_deliver_only_ones_own(live: Live):
    member1 = demo_id("account", MEMBER)
    token = await login(live.a, MEMBER)
    async with connected(live, live.a, token) as session:
        received = Received(session, VIEWER_EVENTS)
        await received.settle()
        other = await publish(live, "CREDIT_ACCESS_CHANGED", organization_id=NORTHWIND, account_id=MEMBER2,
                              data={"account_id": str(MEMBER2)})
        own = await publish(live, "CREDIT_ACCESS_CHANGED", organization_id=NORTHWIND, account_id=member1,
                            data={"account_id": str(member1)})
        items = await received.wait_for(1)
        await asyncio.sleep(0.3)
        await received.stop()
    assert [int(i["id"]) for i in items] == [own] and other not in [int(i["id"]) for i in items]
    assert items[0]["account"]["email"] == MEMBER


async def test_resuming_after_a_dropped_connection_loses_nothing_and_repeats_nothing(live: Live):
    token = await login(live.a, ADMIN)
    async with connected(live, live.a, token) as session:
        received = Received(session, ORGANIZATION_EVENTS, {"types": ["MEMBER_ROLE_CHANGED"]})
        await received.settle()
        first = await publish(live, "MEMBER_ROLE_CHANGED", **role_changed())
        [seen] = await received.wait_for(1)
        await received.stop()
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
            with pytest.raises(TransportQueryError) as refused:
                async for _ in session.subscribe(GraphQLRequest(ORGANIZATION_EVENTS, variable_values={"after": cursor})):
                    pass
            [error] = refused.value.errors
            assert error["extensions"]["code"] == "BAD_USER_INPUT" and words in error["message"]


async def test_too_many_subscriptions_on_one_connection_are_refused_naming_the_limit(live: Live):
    token = await login(live.a, ADMIN)
    async with connected(live, live.a, token) as session:
        held = [Received(session, ORGANIZATION_EVENTS) for _ in range(3)]
        await held[0].settle()
        with pytest.raises(TransportQueryError) as refused:
            async for _ in session.subscribe(GraphQLRequest(ORGANIZATION_EVENTS)):
                pass
        for received in held:
            await received.stop()
    [error] = refused.value.errors
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
