"""One fixture file that starts the real services once per test session.

PostgreSQL: the embedded server the product itself starts (or TEST_DATABASE_URL), with
a template database holding the migrations and the demo data; each test gets its own
copy of it, so tests are isolated; tests marked `reads_only` share one copy instead,
which refuses every write but a sign-in's (see `shared_database_url`). The payment
provider: one localstripe emulator, holding the demo organizations' customers and invoices.

The template's demo accounts keep argon2id hashes of the demo password, made with the
smallest work factor instead of argon2-cffi's default: every sign-in still verifies a real
hash, in well under a millisecond instead of half a second of both cores. The hashes the
seed itself made are kept in `TestServices.seeded_password_hashes` for the test of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import queue
import shutil
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from argon2 import PasswordHasher
from graphql import OperationDefinitionNode, OperationType, parse

from datasources.payments.client import PaymentsClient
from datasources.payments.emulator import Emulator
from datasources.postgres.database import Database
from datasources.postgres.embedded import EmbeddedPostgres
from gateway import startup
from gateway.app import EMULATOR_API_KEY, create_app
from gateway.settings import Settings

DEMO_PASSWORD = "demo-password"
OPERATIONS = Path(__file__).resolve().parents[1] / "operations"


def screens() -> list[str]:
    """The portal's screens: the query operations of operations/ by file stem (the rest are mutations)."""
    return sorted(path.stem for path in OPERATIONS.glob("*.graphql")
                  if all(isinstance(d, OperationDefinitionNode) and d.operation == OperationType.QUERY
                         for d in parse(path.read_text()).definitions))


LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(input: {email: $email, password: $password}) { token userErrors { field message code } }
}
"""

def login_outcome(response) -> str:
    """A refused login's code: its user error's, or the top-level error's (RATE_LIMITED)."""
    body = response.json()
    if body.get("errors"):
        return body["errors"][0]["extensions"]["code"]
    return body["data"]["login"]["userErrors"][0]["code"]


@dataclass(frozen=True)
class TestServices:
    server_url: str  # a DSN to the server's maintenance database, for CREATE DATABASE
    template: str
    stripe_api_base: str
    # The demo accounts' password hashes as the seed made them (the template holds cheaper ones).
    seeded_password_hashes: tuple[str, ...] = ()
    # The run's own server (not TEST_DATABASE_URL): nothing else uses it, and nothing on it need last.
    disposable: bool = False

    def dsn(self, database: str) -> str:
        """The server DSN with another database name (works for socket and TCP DSNs)."""
        base, sep, query = self.server_url.partition("?")
        return f"{base.rsplit('/', 1)[0]}/{database}{sep}{query}"


@contextlib.contextmanager
def service_directory(name: str) -> Iterator[Path]:
    """A directory outside pytest's own temp tree for servers run as another user.

    pytest makes its temp root private (0700) at every session start, which would lock the
    embedded server's system user out of its data directory while another run is going.
    """
    path = Path(tempfile.mkdtemp(prefix=f"account-gateway-{name}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def services() -> Iterator[TestServices]:
    with service_directory("services") as root:
        yield from _services(root)


def _services(root: Path) -> Iterator[TestServices]:
    postgres = None
    server_url = os.environ.get("TEST_DATABASE_URL")
    if not server_url:
        postgres = EmbeddedPostgres(root / "postgres")
        postgres.start()
        server_url = postgres.uri()
        asyncio.run(_disposable(server_url))
    emulator = Emulator.start(root / "localstripe.pickle")
    template = f"gateway_template_{uuid.uuid4().hex[:8]}"
    try:
        found = TestServices(server_url, template, emulator.api_base, disposable=postgres is not None)
        found = dataclasses.replace(found, seeded_password_hashes=asyncio.run(_build_template(found)))
        yield found
        asyncio.run(drop_database(found, template))
    finally:
        emulator.stop()
        if postgres:
            postgres.stop()


# argon2id at its smallest work factor: a real hash, verified by the product's own `verify_password`.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


async def _disposable(server_url: str) -> None:
    """This server's data dies with the run: it need not reach the disk. Without fsync the
    checkpoint each test's DROP DATABASE waits for costs about half as much (measured)."""
    admin = await asyncpg.connect(server_url)
    try:
        for setting in ("fsync", "full_page_writes", "synchronous_commit"):
            await admin.execute(f"ALTER SYSTEM SET {setting} = off")
        await admin.execute("SELECT pg_reload_conf()")
    finally:
        await admin.close()


async def _build_template(services: TestServices) -> tuple[str, ...]:
    """The seeded template; returns the password hashes the seed made, before they are made cheap."""
    admin = await asyncpg.connect(services.server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{services.template}"')
    finally:
        await admin.close()
    await migrate_and_seed(services.dsn(services.template), services.stripe_api_base)
    template = await asyncpg.connect(services.dsn(services.template))
    try:
        rows = await template.fetch("SELECT id, password_hash FROM accounts WHERE password_hash IS NOT NULL")
        await template.executemany("UPDATE accounts SET password_hash = $2 WHERE id = $1",
                                   [(r["id"], CHEAP_HASHER.hash(DEMO_PASSWORD)) for r in rows])
    finally:
        await template.close()
    return tuple(r["password_hash"] for r in rows)


async def migrate_and_seed(dsn: str, stripe_api_base: str) -> None:
    """What `serve` does to an empty database: the schema, then the demo at both ends."""
    db = await Database.connect(dsn, max_size=2)
    payments = PaymentsClient(EMULATOR_API_KEY, api_base=stripe_api_base, timeout_seconds=5)
    try:
        await startup.apply_migrations(db)
        await startup.seed_demo(db, payments)
    finally:
        await payments.close()
        await db.close()


async def drop_database(services: TestServices, name: str) -> None:
    admin = await asyncpg.connect(services.server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def copy_template(services: TestServices) -> str:
    """A fresh copy of the seeded template: its name (drop it with `drop_database`)."""
    name = _copy_name()
    admin = await asyncpg.connect(services.server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{services.template}"')
    finally:
        await admin.close()
    return name


def _copy_name() -> str:
    return f"gateway_test_{uuid.uuid4().hex[:12]}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reads_only: the test changes nothing in the database but by signing in, "
                                       "so it runs on the copy shared by every such test; "
                                       "reads_only(False) on a test undoes it for a module's mark")


# What signing in writes, and the billing mirror, which reads fill; every other table of the
# shared copy refuses writes.
SIGN_IN_TABLES = ("sessions", "refresh_tokens", "billing_mirror")
WRITE_GUARD = """
CREATE FUNCTION refuse_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'a test marked reads_only wrote to %', TG_TABLE_NAME;
END $$;
DO $$
DECLARE t text;
BEGIN
  FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> ALL($1) LOOP
    EXECUTE format('CREATE TRIGGER refuse_write BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION refuse_write()', t);
  END LOOP;
END $$;
"""


@pytest.fixture(scope="session")
def shared_database_url(services: TestServices) -> Iterator[str]:
    """One copy of the template for every `reads_only` test: a copy costs a test more than all
    else it does (CREATE DATABASE, and DROP DATABASE's checkpoint). A write to anything but the
    sign-in tables fails, so a test marked by mistake fails instead of changing its neighbours'
    data."""
    name = asyncio.run(copy_template(services))

    async def guard() -> None:
        conn = await asyncpg.connect(services.dsn(name))
        try:
            await conn.execute(WRITE_GUARD.replace("$1", "ARRAY" + repr(list(SIGN_IN_TABLES))))
        finally:
            await conn.close()

    asyncio.run(guard())
    yield services.dsn(name)
    asyncio.run(drop_database(services, name))


class CopiesAhead:
    """Copies of the template made ahead and dropped behind by a thread of its own, one statement
    at a time, so that a test waits for neither.

    Only on the run's own server: there, without fsync, the checkpoint each DROP DATABASE waits
    for is cheap. On a shared server it would write out the copies made ahead (on disk, with
    fsync) and cost more than it saves; there each test makes and drops its copy itself.
    """

    AHEAD = 2

    def __init__(self, services: TestServices) -> None:
        self._services = services
        self._jobs: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._ready: queue.Queue[str | BaseException] = queue.Queue()
        for _ in range(self.AHEAD):
            self._jobs.put(("create", _copy_name()))
        self._thread = threading.Thread(target=asyncio.run, args=(self._work(),), name="template-copies")
        self._thread.start()

    def take(self) -> str:
        """A fresh copy's name; another is started in its place."""
        self._jobs.put(("create", _copy_name()))
        name = self._ready.get(timeout=120)
        if isinstance(name, BaseException):
            raise name
        return name

    def give_back(self, name: str) -> None:
        self._jobs.put(("drop", name))

    def close(self) -> None:
        """Drops what was given back, then what is still ready, and stops the thread."""
        self._jobs.put(None)
        self._thread.join()

    async def _work(self) -> None:
        admin = await asyncpg.connect(self._services.server_url)
        try:
            # Waiting on the queue blocks only this thread's own loop, which has nothing else to run.
            while (job := self._jobs.get()) is not None:
                kind, name = job
                try:
                    if kind == "create":
                        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._services.template}"')
                        self._ready.put(name)
                    else:
                        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                except Exception as error:  # noqa: BLE001 - the test that takes the copy reports it
                    self._ready.put(error)
            while not self._ready.empty():
                if isinstance(name := self._ready.get(), str):
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="session")
def copies_ahead(services: TestServices) -> Iterator[CopiesAhead | None]:
    if not services.disposable:
        yield None
        return
    copies = CopiesAhead(services)
    yield copies
    copies.close()


@pytest.fixture
async def database_url(request: pytest.FixtureRequest, services: TestServices, shared_database_url: str,
                       copies_ahead: CopiesAhead | None) -> AsyncIterator[str]:
    """A fresh copy of the seeded template for this test alone, or the shared one for `reads_only`."""
    marker = request.node.get_closest_marker("reads_only")
    if marker is not None and marker.args[:1] != (False,):
        yield shared_database_url
    elif copies_ahead is not None:
        name = await asyncio.to_thread(copies_ahead.take)
        yield services.dsn(name)
        copies_ahead.give_back(name)
    else:
        name = await copy_template(services)
        yield services.dsn(name)
        await drop_database(services, name)


def settings_for(services: TestServices, database_url: str, data_dir: Path, executor: str = "levels") -> Settings:
    return Settings(env="development", data_dir=data_dir, database_url=database_url,
                    stripe_api_base=services.stripe_api_base, secret_key="test-secret-" + "x" * 40,
                    db_pool_max_size=4, provider_timeout_seconds=5, executor=executor,
                    # Tests that want the scheduler start it themselves (tests/test_scheduler.py).
                    run_scheduler=False)


# The production executor first: `-x` stops on its failures before the reference's.
EXECUTORS = ("levels", "graphql-core")
PRODUCTION_EXECUTOR = EXECUTORS[0]
# For a test about one executor: it runs under the production one only, and its id still says so.
production_executor_only = pytest.mark.parametrize("executor", [PRODUCTION_EXECUTOR])


# Module scope: a module's apps of one executor run together, and a module-wide app (the access
# table's) can take it too.
@pytest.fixture(scope="module", params=EXECUTORS)
def executor(request: pytest.FixtureRequest) -> str:
    """Which executor answers the queries of the apps this test builds (`Settings.executor`).

    The root of every in-process app: `settings` carries it, and so do `gateway` and every app
    a test builds from `settings` with `app_for` (and the access table's module-wide app), so
    each behavioural test runs once by levels (the production executor, schema/execution.py)
    and once by graphql-core's own execution, and its id says which. Module scope: a module's
    tests of one executor run together.

    One executor, the production one, for:
    - tests that run `account-gateway serve` (or another CLI command) as a subprocess: the served
      app is production's own, its executor is not a setting, and each start costs seconds;
    - counts that are the production path's figures, as a benchmark's are (statements and batches
      as an organization grows: `production_executor_only`);
    - tests about the executors themselves (test_level_executor, test_projections): they run the
      production app and, beside it on the same database, the `reference` app, and compare.
    Tests that call datasources, loaders or resolvers directly run no executor: `resolver_settings`.
    """
    return request.param


@pytest.fixture
def settings(services: TestServices, database_url: str, tmp_path: Path, executor: str) -> Settings:
    return settings_for(services, database_url, tmp_path, executor)


@pytest.fixture
def resolver_settings(services: TestServices, database_url: str, tmp_path: Path) -> Settings:
    """Settings for a test that calls datasources, loaders or resolvers itself: no GraphQL
    executor runs, so it is not run once per executor."""
    return settings_for(services, database_url, tmp_path)


class Gateway:
    """Talks to the app the way clients do: JSON over HTTP."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def post(self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None,
                   accept: str = "application/json") -> httpx.Response:
        headers = {"accept": accept}
        if token:
            headers["authorization"] = f"Bearer {token}"
        return await self.http.post("/graphql", json={"query": query, "variables": variables},
                                    headers=headers)

    async def execute(self, query: str, variables: dict[str, Any] | None = None, *,
                      token: str | None = None) -> dict[str, Any]:
        response = await self.post(query, variables, token=token)
        assert response.status_code == 200, response.text
        return response.json()

    async def login(self, email: str, password: str = DEMO_PASSWORD) -> str:
        body = await self.execute(LOGIN, {"email": email, "password": password})
        assert "errors" not in body and body["data"]["login"]["userErrors"] == [], json.dumps(body)
        return body["data"]["login"]["token"]


@pytest.fixture
async def app_for(services: TestServices, database_url: str):
    """Builds and starts an app for given settings; stops it after the test.

    It depends on `database_url` so that its pool closes before the database is dropped.
    """
    started = []

    async def start(settings: Settings) -> Gateway:
        app = create_app(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test")
        started.append((lifespan, http))
        gateway = Gateway(http)
        gateway.app = app  # for a test that mounts it beside other servers (a browser's sign-in)
        return gateway

    yield start
    for lifespan, http in reversed(started):
        await http.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def gateway(app_for, settings: Settings) -> Gateway:
    return await app_for(settings)


@pytest.fixture
async def reference(app_for, settings: Settings) -> Gateway:
    """Beside `gateway`, on the same database: an app that answers by graphql-core's execution alone."""
    return await app_for(settings.with_(executor="graphql-core"))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to this test's database, for checking what was stored."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()
