"""Answers shared by the subscribers of one event (gateway/live_answers.py): what each
subscriber receives is what executing its operation for it alone answers, and subscribers
whose rights differ are never answered together.

One app in process, spoken to over in-process WebSockets (tests/asgi_websocket.py). Each
principal follows Northwind twice on one socket: with the portal's operation as every client
sends it (`shared`: one text for all, so those with equal rights share an execution), and with
the same operation and a comment naming the principal (`alone`: a text no one else sends,
executed for it alone). Then one event of every organization kind is committed, and each
principal's two answers to each event must be equal, errors included. The count of deliveries
answered by another subscriber's execution must be exactly what the groups of equal rights
allow: the three managers (OWNER and two ADMINs) share, two tokens of one scope share, and
no one else shares with anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from strawberry import relay

from auth import access
from gateway.app import create_app
from gateway.demo import demo_id
from resolvers.events import ORGANIZATION_KINDS, publish
from resolvers.live import READ_BY
from schema.documents import document_of
from schema.live_sharing import reads_viewer
from tests.asgi_websocket import Socket, connected
from tests.conftest import Gateway, copy_template, drop_database, settings_for
from tests.test_service_tokens import create_token
from tests.test_staff import make_staff

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[1]
PORTAL = (ROOT / "operations" / "organization_events.graphql").read_text()
VIEWER_EVENTS = """subscription Mine {
  viewerEvents { __typename id type cursor
    ... on ViewerSeatAllocatedEvent { account { id email } license { id allocatedCount availableCount } }
    ... on CreditAccessChangedEvent { account { id email creditAccess { mode used } } } } }"""
NORTHWIND = demo_id("organization", "northwind")
MEMBER1, MEMBER2, MEMBER3 = (demo_id("account", f"member{n}@northwind.example") for n in (1, 2, 3))
OWNER, ADMIN = demo_id("account", "owner@northwind.example"), demo_id("account", "admin@northwind.example")
LUMEN, ATLAS = demo_id("license", "northwind", "LUMEN-RENDER"), demo_id("license", "northwind", "ATLAS-SCATTER")
LUMEN_SUBSCRIPTION = demo_id("subscription", "northwind", "LUMEN-RENDER")
LATER = (datetime.now(timezone.utc) + timedelta(days=7)).isoformat()


@dataclass
class Principal:
    label: str
    group: str  # principals of one group have equal rights: they may share
    kinds: frozenset[str]  # what the access table gives them in Northwind
    token: str = ""
    query: str = PORTAL
    socket: Socket | None = None
    answers: dict[str, dict[int, Any]] = field(default_factory=lambda: {"shared": {}, "alone": {}})

    @property
    def follows_organization(self) -> bool:
        return self.query is PORTAL

    def expected(self, published: dict[int, str]) -> set[int]:
        if not self.follows_organization:
            return {i for i, kind in published.items() if kind in ("SEAT_ALLOCATED", "CREDIT_ACCESS_CHANGED")}
        return {i for i, kind in published.items()
                if kind in ORGANIZATION_KINDS and access.allows(self.kinds, READ_BY[kind])}


def _principals() -> list[Principal]:
    manager = frozenset({access.MANAGER})
    return [
        Principal("owner", "manager", manager), Principal("admin", "manager", manager),
        Principal("another admin", "manager", manager),
        Principal("staff SUPPORT", "SUPPORT", frozenset({"SUPPORT"})),
        Principal("staff BILLING", "BILLING", frozenset({"BILLING"})),
        Principal("accounts:read", "accounts:read", frozenset({"accounts:read"})),
        Principal("another accounts:read", "accounts:read", frozenset({"accounts:read"})),
        Principal("billing:read", "billing:read", frozenset({"billing:read"})),
        Principal("member", "member1", frozenset({access.MEMBER}), query=VIEWER_EVENTS),
    ]


@dataclass
class World:
    app: Any
    gateway: Gateway
    dsn: str
    invoice: str  # a provider invoice id of Northwind


async def _another_admin_and_two_staff(dsn: str) -> None:
    db = await asyncpg.connect(dsn)
    try:
        await db.execute("UPDATE memberships SET role = 'ADMIN' WHERE account_id = $1", MEMBER3)
        for role in ("SUPPORT", "BILLING"):
            await make_staff(db, role, f"{role.lower()}@vendor.example")
    finally:
        await db.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(services, tmp_path_factory, executor: str) -> AsyncIterator[World]:
    name = await copy_template(services)
    dsn = services.dsn(name)
    try:
        await _another_admin_and_two_staff(dsn)
        app = create_app(settings_for(services, dsn, tmp_path_factory.mktemp("grouping"), executor))
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as http:
                gateway = Gateway(http)
                token = await gateway.login("admin@northwind.example")
                body = await gateway.execute("{ viewer { organization { invoices(first: 1) { nodes { id } } } } }",
                                             token=token)
                [invoice] = body["data"]["viewer"]["organization"]["invoices"]["nodes"]
                yield World(app, gateway, dsn, relay.from_base64(invoice["id"])[1])
    finally:
        await drop_database(services, name)


async def _sign_in(world: World, principals: list[Principal]) -> None:
    emails = {"owner": "owner@northwind.example", "admin": "admin@northwind.example",
              "another admin": "member3@northwind.example", "staff SUPPORT": "support@vendor.example",
              "staff BILLING": "billing@vendor.example", "member": "member1@northwind.example"}
    db = await asyncpg.connect(world.dsn)
    try:
        for p in principals:
            if p.label in emails:
                p.token = await world.gateway.login(emails[p.label])
            else:
                p.token = await create_token(db, f"grouping-{uuid.uuid4().hex[:8]}", p.label.split()[-1])
    finally:
        await db.close()


def _every_kind(invoice: str) -> list[tuple[str, dict[str, Any]]]:
    """One event of each organization kind (and two that are member1's own events too), about
    Northwind's real objects, with an actor where a person makes the change."""
    org = {"organization_id": NORTHWIND}
    person = {**org, "actor_account_id": ADMIN}
    invitation = str(demo_id("invitation", "northwind"))
    request = str(demo_id("credit-request", "northwind"))
    money = {"invoice_id": invoice, "currency": "usd"}
    return [
        ("MEMBER_JOINED", {**person, "data": {"account_id": str(MEMBER2), "role": "MEMBER"}}),
        ("MEMBER_LEFT", {**person, "data": {"account_id": str(MEMBER2), "email": "member2@northwind.example",
                                            "role": "MEMBER"}}),
        ("MEMBER_ROLE_CHANGED", {**person, "account_id": MEMBER2,
                                 "data": {"account_id": str(MEMBER2), "old_role": "MEMBER", "new_role": "MEMBER"}}),
        ("INVITATION_SENT", {**person, "data": {"invitation_id": invitation, "email": "invitee@northwind.example",
                                                "role": "MEMBER", "resent": False}}),
        ("INVITATION_ACCEPTED", {**org, "actor_account_id": MEMBER2,
                                 "data": {"invitation_id": invitation, "account_id": str(MEMBER2)}}),
        ("INVITATION_EXPIRED", {**org, "data": {"invitation_id": invitation, "email": "invitee@northwind.example"}}),
        ("SEAT_ALLOCATED", {**person, "account_id": MEMBER1,
                            "data": {"license_id": str(LUMEN), "account_id": str(MEMBER1)}}),
        ("SEAT_REVOKED", {**person, "data": {"license_id": str(LUMEN), "account_id": str(OWNER)}}),
        ("LICENSE_EXPIRING", {**org, "data": {"license_id": str(ATLAS), "days_left": 7, "expires_at": LATER}}),
        ("LICENSE_EXPIRED", {**org, "data": {"license_id": str(demo_id("license", "northwind", "VAPOR-FX")),
                                             "expired_at": LATER}}),
        ("LICENSE_QUANTITY_CHANGED", {**org, "data": {"license_id": str(LUMEN), "old_quantity": 10,
                                                      "new_quantity": 10}}),
        ("SUBSCRIPTION_RENEWED", {**person, "data": {"subscription_id": str(LUMEN_SUBSCRIPTION), "renews_at": LATER}}),
        ("SUBSCRIPTION_ENDING", {**person, "data": {"subscription_id": str(LUMEN_SUBSCRIPTION), "ends_at": LATER}}),
        ("SEATS_DECREASE_SCHEDULED", {**person, "data": {"subscription_id": str(LUMEN_SUBSCRIPTION),
                                                         "license_id": str(LUMEN), "seats": 8, "effective_at": LATER,
                                                         "canceled": False}}),
        ("SUBSCRIPTION_PAST_DUE", {**org, "data": {"subscription_id": str(LUMEN_SUBSCRIPTION),
                                                   "license_id": str(LUMEN), "invoice_id": invoice,
                                                   "grace_until": LATER}}),
        ("SUBSCRIPTION_RESTORED", {**person, "data": {"subscription_id": str(LUMEN_SUBSCRIPTION),
                                                      "license_id": str(LUMEN), "invoice_id": invoice}}),
        ("LICENSE_SUSPENDED", {**org, "data": {"license_id": str(LUMEN), "suspended_at": LATER}}),
        ("INVOICE_CREATED", {**org, "data": {**money, "amount_due": 1200}}),
        ("INVOICE_PAID", {**person, "data": {**money, "amount_paid": 1200}}),
        ("INVOICE_PAYMENT_FAILED", {**person, "data": {**money, "amount_due": 1200, "reason": "CARD_DECLINED"}}),
        ("CREDIT_POOL_LOW", {**org, "data": {"pool_id": str(NORTHWIND), "balance": 10, "threshold": 100}}),
        ("CREDIT_REQUEST_MADE", {**org, "actor_account_id": MEMBER3,
                                 "data": {"request_id": request, "account_id": str(MEMBER3), "amount": 50}}),
        ("CREDIT_REQUEST_RESOLVED", {**person, "data": {"request_id": request, "account_id": str(MEMBER3),
                                                        "outcome": "DECLINED"}}),
        ("STAFF_ACTION_TAKEN", {**org, "data": {"action": "grantCredits", "target": str(NORTHWIND),
                                                "scope": "SUPPORT", "reason": "goodwill"}}),
        ("CREDIT_ACCESS_CHANGED", {**org, "account_id": MEMBER1,
                                   "data": {"account_id": str(MEMBER1), "mode": "UNLIMITED", "quota": None}}),
    ]


async def _subscribe(p: Principal, socket: Socket) -> None:
    await socket.send({"type": "connection_init", "payload": {"authorization": f"Bearer {p.token}"}})
    # As long as `_read` waits: with the whole suite on two cores, one ack once took 10 s.
    assert (await socket.receive(timeout=30))["type"] == "connection_ack"
    variables = {"organizationId": relay.to_base64("Organization", str(NORTHWIND))} if p.follows_organization else {}
    for id_, query in (("shared", p.query), ("alone", f"{p.query}\n# for {p.label} alone\n")):
        await socket.send({"id": id_, "type": "subscribe", "payload": {"query": query, "variables": variables}})


async def _read(p: Principal, socket: Socket, expected: set[int]) -> None:
    while any(set(answers) != expected for answers in p.answers.values()):
        message = await socket.receive(timeout=30)
        assert message["type"] == "next", (p.label, message)
        payload = message["payload"]
        node = next(iter(payload["data"].values()))
        p.answers[message["id"]][int(node["id"])] = payload


async def test_every_grouped_answer_is_the_subscribers_own_and_only_equal_rights_share(world: World):
    principals = _principals()
    await _sign_in(world, principals)
    live = world.app.state.live
    registered = sum(2 + (not p.label.endswith(":read")) for p in principals)  # and a session watcher each
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(connected(world.app)) for _ in principals]
        for p, socket in zip(principals, sockets, strict=True):
            p.socket = socket
            await _subscribe(p, socket)
        for _ in range(200):  # a subscription has no acknowledgement: the hub's registrations say it runs
            if live.hub.subscriber_count >= registered:
                break
            await asyncio.sleep(0.05)
        assert live.hub.subscriber_count == registered
        reused_before = live.answers.reused
        published: dict[int, str] = {}
        db = await asyncpg.connect(world.dsn)
        try:
            async with db.transaction():  # committed together: the hub hands each to all at once
                for kind, fields in _every_kind(world.invoice):
                    event = await publish(db, kind, **fields)
                    assert event is not None
                    published[event.id] = kind
        finally:
            await db.close()
        await asyncio.gather(*(_read(p, s, p.expected(published)) for p, s in zip(principals, sockets, strict=True)))
    for p in principals:
        assert p.answers["shared"] == p.answers["alone"], p.label
    by_id = {p.label: p for p in principals}
    # The answers differ where the rights do: a manager reads the member, BILLING does not get the event.
    joined = next(i for i, kind in published.items() if kind == "MEMBER_JOINED")
    assert by_id["owner"].answers["shared"][joined]["data"]["organizationEvents"]["member"]["email"] == \
        "member2@northwind.example"
    assert joined not in by_id["staff BILLING"].answers["shared"]
    groups: dict[str, list[Principal]] = {}
    for p in principals:
        if p.follows_organization:
            groups.setdefault(p.group, []).append(p)
    allowed = sum(max(0, sum(event_id in p.answers["shared"] for p in members) - 1)
                  for members in groups.values() for event_id in published)
    assert allowed == 2 * len(ORGANIZATION_KINDS) + sum(
        access.allows({"accounts:read"}, READ_BY[kind]) for kind in published.values() if kind in READ_BY)
    assert live.answers.reused - reused_before == allowed


async def test_a_document_that_reads_the_viewers_own_role_is_never_shared(world: World):
    schema = world.app.state.services.schema.graphql_schema
    assert not reads_viewer(schema, document_of(PORTAL))
    assert reads_viewer(schema, document_of(
        "subscription { organizationEvents { ... on MemberJoinedEvent { member { account { "
        "organization { viewerRole { role } } } } } } }"))
    assert reads_viewer(schema, document_of(
        "subscription { organizationEvents { ...F } } fragment F on LicenseExpiringEvent { "
        "license { product { canDownload } } }"))
