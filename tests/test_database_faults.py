"""PostgreSQL faults with real processes: stopped, crashed and restarted under the running app.

The module runs its own embedded PostgreSQL (not the session-wide one, which other tests
share), seeded like the product's: the tests stop it (`pg_ctl -m fast`), crash it
(`-m immediate`) and start it again on the same data directory, while one app instance keeps
running. A client must then get DATABASE_UNAVAILABLE quickly (never a hang, never an internal
error), `/readyz` must follow the database, the app must recover without a restart, and a
crash in the middle of mutations must leave each of them all done or not done at all.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from datasources.errors import DatabaseUnavailable
from datasources.postgres.database import UNAVAILABLE_MESSAGE, Database
from datasources.postgres.embedded import EmbeddedPostgres
from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import Gateway, service_directory, migrate_and_seed
from tests.conftest import TestServices as Services  # not collected as a test class

ACQUIRE_TIMEOUT = 1.0
# What "quickly" means for a client while the database is away: the pool's wait plus slack.
FAIL_FAST_SECONDS = ACQUIRE_TIMEOUT + 1.0
RECOVERY_SECONDS = 10.0
NORTHWIND = "northwind.example"
VIEWER = "{ viewer { customerNumber organization { name } } }"
LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(input: {email: $email, password: $password}) { token userErrors { code } }
}
"""
ALLOCATE = """
mutation Allocate($input: AllocateLicenseInput!) {
  allocateLicense(input: $input) { allocations { id } userErrors { field code } }
}
"""
INVITE = """
mutation Invite($input: InviteMembersInput!) {
  inviteMembers(input: $input) { results { email invitation { id } } userErrors { code } }
}
"""


@dataclass
class Dedicated:
    postgres: EmbeddedPostgres
    dsn: str

    async def stop(self, mode: str = "fast") -> None:
        await asyncio.to_thread(self.postgres.stop, mode)

    async def start(self) -> None:
        await asyncio.to_thread(self.postgres.start)


@pytest.fixture(scope="module")
def dedicated(services: Services) -> Iterator[Dedicated]:
    with service_directory("faults") as root:
        postgres = EmbeddedPostgres(root / "postgres")
        postgres.start()
        try:
            dsn = asyncio.run(_prepare(postgres, services.stripe_api_base))
            yield Dedicated(postgres, dsn)
        finally:
            postgres.stop()


async def _prepare(postgres: EmbeddedPostgres, stripe_api_base: str) -> str:
    dsn = await postgres.ensure_database()
    await migrate_and_seed(dsn, stripe_api_base)
    return dsn


@pytest.fixture
async def server(dedicated: Dedicated) -> Dedicated:
    """The dedicated server, running (a failed earlier test may have left it stopped)."""
    if not dedicated.postgres.running:
        await dedicated.start()
    return dedicated


@dataclass
class Running:
    app: Starlette
    gateway: Gateway

    @property
    def db(self) -> Database:
        return self.app.state.services.db

    async def get(self, path: str) -> httpx.Response:
        return await asyncio.wait_for(self.gateway.http.get(path), 15)

    async def post(self, query: str, variables: dict[str, Any] | None = None, *,
                   token: str | None = None) -> httpx.Response:
        # A hang fails the test instead of stalling the suite.
        return await asyncio.wait_for(self.gateway.post(query, variables, token=token), 15)


@contextlib.asynccontextmanager
async def running_app(server: Dedicated, services: Services, tmp_path: Path, *,
                      pool_size: int = 4, stripe_api_base: str | None = None) -> AsyncIterator[Running]:
    settings = Settings(env="development", data_dir=tmp_path, database_url=server.dsn,
                        stripe_api_base=stripe_api_base or services.stripe_api_base,
                        secret_key="test-secret-" + "x" * 40,
                        db_pool_max_size=pool_size, provider_timeout_seconds=5,
                        db_acquire_timeout_seconds=ACQUIRE_TIMEOUT)
    app = create_app(settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    try:
        db: Database = app.state.services.db
        assert db.acquire_timeout == ACQUIRE_TIMEOUT, "Settings.db_acquire_timeout_seconds does not reach the pool"
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://gateway.test") as http:
            yield Running(app, Gateway(http))
    finally:
        await lifespan.__aexit__(None, None, None)


async def login(running: Running, email: str) -> str:
    response = await running.post(LOGIN, {"email": email, "password": "demo-password"})
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]["login"]["token"]


def error_codes(response: httpx.Response) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in response.json().get("errors", [])]


def assert_database_unavailable(response: httpx.Response) -> None:
    """What a client sees while the database is away: 503 when authentication itself needs
    the database, else 200 with top-level errors; in both cases DATABASE_UNAVAILABLE only."""
    assert response.status_code in (200, 503), response.text
    body = response.json()
    assert body["errors"], body
    for error in body["errors"]:
        assert error["extensions"]["code"] == "DATABASE_UNAVAILABLE", body
        assert error["message"] == UNAVAILABLE_MESSAGE, body


async def timed(call) -> tuple[Any, float]:
    started = time.monotonic()
    result = await call
    return result, time.monotonic() - started


async def wait_until_serving(running: Running, token: str) -> float:
    """Seconds until the same app answers an authenticated query normally again."""
    started = time.monotonic()
    while True:
        response = await running.post(VIEWER, token=token)
        if response.status_code == 200 and "errors" not in response.json():
            return time.monotonic() - started
        assert_database_unavailable(response)  # in the gap: the clear error, nothing else
        assert time.monotonic() - started < RECOVERY_SECONDS, "the app did not recover"
        await asyncio.sleep(0.1)


def gid(type_name: str, raw: uuid.UUID) -> str:
    return base64.b64encode(f"{type_name}:{raw}".encode()).decode()


# --- the Database boundary --------------------------------------------------------------------

async def test_connect_timeout_notices_a_server_that_never_answers():
    """A host that accepts TCP but never speaks (a hung server, a black hole) costs the
    connect timeout, not asyncpg's default of a minute."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable):
            await Database.connect(f"postgresql://nobody@127.0.0.1:{port}/none", connect_timeout=0.5)
        assert time.monotonic() - started < 2.0


async def test_errors_that_are_not_outages_pass_through(server: Dedicated):
    db = await Database.connect(server.dsn, max_size=1, acquire_timeout=ACQUIRE_TIMEOUT)
    try:
        assert db.acquire_timeout == ACQUIRE_TIMEOUT
        with pytest.raises(asyncpg.DataError):  # an InterfaceError subclass, on a live connection
            await db.fetchval("SELECT $1::int", "not a number")
        with pytest.raises(asyncpg.DivisionByZeroError):
            await db.fetchval("SELECT 1 / 0")
        with pytest.raises(asyncpg.UndefinedTableError):
            async with db.transaction() as conn:
                await conn.execute("SELECT * FROM no_such_table")
        with pytest.raises(ZeroDivisionError):
            async with db.transaction():
                1 / 0  # noqa: B018
        assert await db.fetchval("SELECT 1") == 1
    finally:
        await db.close()


async def test_a_terminated_connection_inside_a_transaction_is_unavailable_then_replaced(server: Dedicated):
    """57P01 (pg_terminate_backend, like a fast shutdown) inside the `async with` body."""
    db = await Database.connect(server.dsn, max_size=1, acquire_timeout=ACQUIRE_TIMEOUT)
    admin = await asyncpg.connect(server.dsn)
    try:
        with pytest.raises(DatabaseUnavailable) as raised:
            async with db.transaction() as conn:
                await conn.execute("CREATE TEMP TABLE scratch (n int)")
                pid = await conn.fetchval("SELECT pg_backend_pid()")
                assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
                await asyncio.sleep(0.1)
                await conn.execute("INSERT INTO scratch VALUES (1)")
        assert raised.value.code == "DATABASE_UNAVAILABLE"
        assert raised.value.message == UNAVAILABLE_MESSAGE
        # The pool replaced the dead connection: the next call simply works.
        assert await db.fetchval("SELECT 1") == 1
        assert await db.ping() is True
    finally:
        await admin.close()
        await db.close()


# --- (a) + (b): the database goes away and comes back under a running app -----------------------

async def test_while_the_database_is_down_requests_fail_fast_and_the_app_recovers(
        server: Dedicated, services: Services, tmp_path: Path):
    async with running_app(server, services, tmp_path) as running:
        token = await login(running, f"admin@{NORTHWIND}")
        ready = await running.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready", "database": True, "paymentProvider": True}
        assert (await running.post(VIEWER, token=token)).json()["data"]["viewer"]["organization"]

        # A second pool, mid-transaction when the server goes: every kind of call must say so.
        direct = await Database.connect(server.dsn, max_size=2, acquire_timeout=ACQUIRE_TIMEOUT)
        try:
            with pytest.raises(DatabaseUnavailable):
                async with direct.transaction() as conn:
                    await conn.execute("SELECT 1")
                    await server.stop()  # -m fast: sessions are told 57P01 and closed
                    await conn.execute("SELECT 1")
            for call in (direct.fetch("SELECT 1"), direct.fetchrow("SELECT 1"), direct.fetchval("SELECT 1"),
                         direct.execute("SELECT 1")):
                with pytest.raises(DatabaseUnavailable):
                    await asyncio.wait_for(call, FAIL_FAST_SECONDS)
            with pytest.raises(DatabaseUnavailable):
                async with direct.transaction() as conn:
                    await conn.execute("SELECT 1")
            assert await direct.ping() is False

            # What clients see: the clear error, quickly; never a hang or an internal error.
            response, elapsed = await timed(running.post(VIEWER, token=token))
            assert response.status_code == 503  # authentication itself needs the database
            assert_database_unavailable(response)
            assert elapsed < FAIL_FAST_SECONDS
            response, elapsed = await timed(running.post(LOGIN, {"email": f"admin@{NORTHWIND}",
                                                                 "password": "demo-password"}))
            assert response.status_code == 200  # no token: the failure is the login field's
            assert_database_unavailable(response)
            assert response.json()["errors"][0]["path"] == ["login"]
            assert elapsed < FAIL_FAST_SECONDS

            not_ready, elapsed = await timed(running.get("/readyz"))
            assert not_ready.status_code == 503, not_ready.text
            assert not_ready.json() == {"status": "unavailable", "database": False, "paymentProvider": True}
            assert elapsed < 2.0
            assert (await running.get("/healthz")).status_code == 200  # alive: no restart wanted

            # Back on the same data directory: the same app serves again, not rebuilt.
            await server.start()
            assert await wait_until_serving(running, token) < RECOVERY_SECONDS
            ready = await running.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json() == {"status": "ready", "database": True, "paymentProvider": True}
            assert await direct.fetchval("SELECT 1") == 1
            async with direct.transaction() as conn:
                assert await conn.fetchval("SELECT count(*) FROM accounts") > 0
        finally:
            await direct.close()


# --- (c): a crash in the middle of mutations ---------------------------------------------------

async def test_a_crash_mid_mutation_leaves_each_one_all_or_nothing(
        server: Dedicated, services: Services, tmp_path: Path):
    """Allocations of 3 seats (3 allocations + an audit row) and invitations of 3 people
    (3 invitations + 3 mails + 3 audit rows) stream in while the server is killed."""
    run = uuid.uuid4().hex[:8]
    admin = await asyncpg.connect(server.dsn)
    try:
        org_id = await admin.fetchval("SELECT organization_id FROM memberships m JOIN accounts a"
                                      " ON a.id = m.account_id WHERE a.email = $1", f"owner@{NORTHWIND}")
        product_id = await admin.fetchval("SELECT id FROM products WHERE sku = 'LUMEN-RENDER'")
        license_id = uuid.uuid4()
        await admin.execute("INSERT INTO licenses (id, organization_id, product_id, kind, seat_model, quantity)"
                            " VALUES ($1, $2, $3, 'PERPETUAL', 'NAMED', 1000)", license_id, org_id, product_id)
        crowd = [uuid.uuid4() for _ in range(120)]
        await admin.executemany("INSERT INTO accounts (id, email, name) VALUES ($1, $2, $3)",
                                [(a, f"crowd{n}-{run}@{NORTHWIND}", f"Crowd {n}") for n, a in enumerate(crowd)])
        await admin.executemany("INSERT INTO memberships (account_id, organization_id, role)"
                                " VALUES ($1, $2, 'MEMBER')", [(a, org_id) for a in crowd])
    finally:
        await admin.close()

    async with running_app(server, services, tmp_path) as running:
        token = await login(running, f"admin@{NORTHWIND}")
        allocations: list[list[uuid.UUID]] = []
        invitations: list[list[str]] = []
        requests: list[tuple[str, int, asyncio.Task]] = []

        def fire() -> None:
            n = len(requests)
            if n % 2 == 0:
                accounts = crowd[3 * len(allocations):3 * len(allocations) + 3]
                allocations.append(accounts)
                variables = {"input": {"licenseId": gid("License", license_id),
                                       "accountIds": [gid("Account", a) for a in accounts]}}
                requests.append(("allocate", len(allocations) - 1,
                                 asyncio.create_task(running.post(ALLOCATE, variables, token=token))))
            else:
                emails = [f"invitee{len(invitations)}-{i}-{run}@example.org" for i in range(3)]
                invitations.append(emails)
                variables = {"input": {"invitations": [{"email": e} for e in emails]}}
                requests.append(("invite", len(invitations) - 1,
                                 asyncio.create_task(running.post(INVITE, variables, token=token))))

        # A stream of mutations, a new one every 10 ms; the crash lands at a random moment
        # once some have completed (however slow the machine), with others inside their
        # transactions.
        def some_completed() -> bool:
            return any(task.done() for _, _, task in requests)

        crash_at = None
        while len(allocations) < len(crowd) // 3 - 5:
            fire()
            await asyncio.sleep(0.01)
            if crash_at is None and some_completed():
                crash_at = asyncio.get_running_loop().time() + random.uniform(0.05, 0.25)
            if crash_at is not None and asyncio.get_running_loop().time() >= crash_at:
                break
        await server.stop("immediate")
        for _ in range(4):  # and a few into the outage
            fire()
        responses = await asyncio.gather(*(task for _, _, task in requests))

        succeeded = failed = 0
        for response in responses:
            if response.status_code == 200 and "errors" not in response.json():
                succeeded += 1
            else:
                assert_database_unavailable(response)
                failed += 1
        assert succeeded and failed, (succeeded, failed)

        await server.start()  # crash recovery replays the WAL
        await wait_until_serving(running, token)

    check = await asyncpg.connect(server.dsn)
    try:
        for (kind, index, _), response in zip(requests, responses):
            ok = response.status_code == 200 and "errors" not in response.json()
            if kind == "allocate":
                accounts = allocations[index]
                rows = await check.fetchval("SELECT count(*) FROM allocations WHERE license_id = $1"
                                            " AND account_id = ANY($2::uuid[])", license_id, accounts)
                audit = await check.fetchval(
                    "SELECT count(*) FROM audit_log WHERE action = 'license.allocate' AND outcome = 'SUCCESS'"
                    " AND details -> 'accounts' @> to_jsonb($1::text[])", [str(a) for a in accounts])
                assert (rows, audit) in ((0, 0), (3, 1)), (kind, index, rows, audit, response.text)
                if ok:
                    assert (rows, audit) == (3, 1), "a committed allocation was lost"
            else:
                emails = invitations[index]
                rows = await check.fetchval("SELECT count(*) FROM invitations WHERE email = ANY($1::text[])",
                                            emails)
                mails = await check.fetchval("SELECT count(*) FROM mail_outbox WHERE to_address = ANY($1::text[])",
                                             emails)
                audit = await check.fetchval("SELECT count(*) FROM audit_log WHERE action = 'member.invite'"
                                             " AND outcome = 'SUCCESS' AND target = ANY($1::text[])", emails)
                assert (rows, mails, audit) in ((0, 0, 0), (3, 3, 3)), (kind, index, rows, mails, audit)
                if ok:
                    assert (rows, mails, audit) == (3, 3, 3), "a committed invitation was lost"
    finally:
        await check.close()


# --- (d): the pool's acquire timeout ------------------------------------------------------------

async def test_a_request_waits_at_most_the_acquire_timeout_for_a_connection(
        server: Dedicated, services: Services, tmp_path: Path):
    async with running_app(server, services, tmp_path, pool_size=1) as running:
        token = await login(running, f"admin@{NORTHWIND}")
        async with running.db.transaction() as held:  # the pool's only connection
            await held.execute("SELECT 1")
            response, elapsed = await timed(running.post(VIEWER, token=token))
            assert_database_unavailable(response)
            assert ACQUIRE_TIMEOUT * 0.9 <= elapsed < FAIL_FAST_SECONDS, elapsed
            response, elapsed = await timed(running.post(LOGIN, {"email": f"owner@{NORTHWIND}",
                                                                 "password": "demo-password"}))
            assert response.status_code == 200
            assert_database_unavailable(response)
            assert elapsed < FAIL_FAST_SECONDS
        # Released: the same request goes through.
        response = await running.post(VIEWER, token=token)
        assert response.status_code == 200 and "errors" not in response.json(), response.text


# --- readiness and the payment provider ----------------------------------------------------------

async def test_an_unreachable_provider_is_reported_but_does_not_make_the_gateway_unready(
        server: Dedicated, services: Services, tmp_path: Path):
    """The provider serves every gateway alike: taking them all out of rotation for it would turn
    a billing-only degradation into a full outage (gateway/health.py)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        async with running_app(server, services, tmp_path, stripe_api_base=f"http://127.0.0.1:{port}") as running:
            ready, elapsed = await timed(running.get("/readyz"))
            assert ready.status_code == 200, ready.text
            assert ready.json() == {"status": "degraded", "database": True, "paymentProvider": False}
            assert elapsed < 2.0
            assert (await running.get("/healthz")).json() == {"status": "ok"}
