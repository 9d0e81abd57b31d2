"""`account-gateway serve` as a new user runs it: embedded PostgreSQL, local provider, demo data.

These tests start the real command in a subprocess, talk to it over real HTTP, and stop
it with SIGTERM, checking that nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from datasources.postgres.migrations import available
from tests import node_tools
from tests.conftest import LOGIN, drop_database, login_outcome, service_directory

AUDIT_DIR = Path(__file__).parent / "http_audit"
VIEWER = "{ viewer { customerNumber organization { name } } }"


def command() -> list[str]:
    script = Path(sys.executable).with_name("account-gateway")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from gateway.cli import main; main()"]


def clean_env() -> dict[str, str]:
    """No configured services: the command must start its own."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "STRIPE_API_KEY", "STRIPE_API_BASE", "SECRET_KEY", "GATEWAY_ENV",
                        "GATEWAY_DATA_DIR"}}
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    process: subprocess.Popen
    url: str
    data_dir: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text()

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def postgres_pid(self) -> int:
        return int((self.data_dir / "postgres" / "postmaster.pid").read_text().split()[0])


def start(data_dir: Path, log: Path, env: dict[str, str] | None = None, port: int | None = None) -> Served:
    port = port or free_port()
    with log.open("w") as out:
        process = subprocess.Popen([*command(), "serve", "--port", str(port), "--data-dir", str(data_dir)],
                                   stdout=out, stderr=subprocess.STDOUT, env={**clean_env(), **(env or {})})
    served = Served(process, f"http://127.0.0.1:{port}", data_dir, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited with {process.returncode}:\n{served.output()}")
        try:
            if httpx.get(f"{served.url}/healthz", timeout=1).status_code == 200:
                return served
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    pytest.fail(f"serve did not come up in 90 s:\n{served.output()}")


@contextlib.contextmanager
def serving(name: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """`serve` in a service directory of its own, for a module's tests; stopped at the end."""
    with service_directory(name) as root:
        served = start(root / "data", root / "serve.log", env)
        try:
            yield served
        finally:
            if served.process.poll() is None:
                stop(served)


def gone(pid: int, timeout: float = 10) -> bool:
    """True once the process has exited (a zombie awaiting its reaper counts as exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def stop(served: Served) -> int:
    served.process.send_signal(signal.SIGTERM)
    return served.process.wait(timeout=60)


def graphql(served: Served, query: str, variables: dict | None = None, token: str | None = None) -> dict:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(f"{served.url}/graphql", json={"query": query, "variables": variables},
                          headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def login(served: Served, email: str) -> str:
    body = graphql(served, LOGIN, {"email": email, "password": "demo-password"})
    return body["data"]["login"]["token"]


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    with service_directory("serve") as root:
        yield root / "data"


@pytest.fixture(scope="module")
def served(data_dir: Path) -> Iterator[Served]:
    served = start(data_dir, data_dir.parent / "serve-1.log")
    yield served
    if served.process.poll() is None:
        stop(served)


def test_admin_logs_in_and_reads_viewer_over_http(served):
    token = login(served, "admin@northwind.example")
    body = graphql(served, VIEWER, token=token)
    assert body["data"]["viewer"]["organization"]["name"] == "Northwind Studio"
    assert body["data"]["viewer"]["customerNumber"].startswith("C-")
    output = served.output()
    assert "seeded the demo organizations" in output
    # Development logs readable lines, one per request: no uvicorn access line beside the gateway's.
    assert " POST Login ok 200 " in output and '"POST /graphql HTTP/1.1"' not in output
    assert not [line for line in output.splitlines() if line.startswith("{")]


def test_a_100_mb_body_is_refused_without_being_held(served):
    process = psutil.Process(served.process.pid)  # one worker: the app runs in this process
    before = process.memory_info().rss
    hundred_mb = 100 * 1024 * 1024

    start = b'{"query": "{ __typename }", "variables": {"pad": "'

    def chunked():
        yield start
        for _ in range(hundred_mb // (1 << 16)):
            yield b"x" * (1 << 16)

    headers = {"content-type": "application/json"}
    for extra, content in (({}, chunked()), ({"content-length": str(hundred_mb + len(start))}, chunked())):
        response = httpx.post(f"{served.url}/graphql", content=content, headers={**headers, **extra}, timeout=60)
        assert response.status_code == 413, response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    grown = process.memory_info().rss - before
    assert grown < 20 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MiB for two refused 100 MB bodies"
    assert graphql(served, "{ __typename }")["data"] == {"__typename": "Query"}


TYPENAME_GET = b"GET /graphql?query=%7B__typename%7D HTTP/1.1\r\nhost: gateway\r\n"
TYPENAME_POST = b'{"query": "{ __typename }"}'


def read_response(reader) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length from a socket's file: its status and body."""
    status = int(reader.readline().split()[1])
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, reader.read(length)


def answered(response: tuple[int, bytes]) -> bool:
    status, body = response
    return status == 200 and json.loads(body)["data"] == {"__typename": "Query"}


def typename_post(extra: bytes = b"") -> bytes:
    return (b"POST /graphql HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n" % len(TYPENAME_POST) + extra + b"\r\n" + TYPENAME_POST)


def test_a_2_mb_header_is_refused_with_431_without_being_held(served):
    process = psutil.Process(served.process.pid)  # one worker: the app runs in this process
    before = process.memory_info().rss
    with socket.create_connection(("127.0.0.1", int(served.url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(TYPENAME_GET + b"x-big: ")
        for _ in range(32):  # the head is never finished: a server that buffers it holds all 2 MB now
            sock.sendall(b"a" * (1 << 16))
        held = process.memory_info().rss - before
        status, body = read_response(sock.makefile("rb"))
        assert sock.recv(1) == b"", "the connection is closed after the 431"
    assert status == 431 and b"limit of 65536 bytes" in body
    assert held < 1 << 20, f"RSS grew by {held / 2**20:.1f} MiB while a 2 MB header was being sent"
    assert graphql(served, "{ __typename }")["data"] == {"__typename": "Query"}


def test_headers_just_under_the_limit_are_answered(served):
    # the request line and headers come to ~65,300 bytes of the 65,536 allowed
    headers = {f"x-pad-{n}": "p" * 8000 for n in range(8)} | {"cookie": "c=" + "k" * 1000}
    response = httpx.get(f"{served.url}/graphql", params={"query": "{ __typename }"}, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"__typename": "Query"}


def test_keep_alive_and_pipelined_requests_each_get_the_whole_header_limit(served):
    near_limit = b"x-pad: " + b"p" * 60_000 + b"\r\n"
    with socket.create_connection(("127.0.0.1", int(served.url.rsplit(":", 1)[1])), timeout=10) as sock:
        reader = sock.makefile("rb")
        for _ in range(2):  # one after another on one connection
            sock.sendall(TYPENAME_GET + near_limit + b"\r\n")
            assert answered(read_response(reader))
        # pipelined: a body, then a near-limit head, arriving in one piece
        sock.sendall(typename_post() + TYPENAME_GET + near_limit + b"\r\n" + typename_post(near_limit))
        for _ in range(3):
            assert answered(read_response(reader))
        # pipelined behind a request being answered: that one is answered, then 431 and closed
        sock.sendall(typename_post() + TYPENAME_GET + b"x-big: ")
        for _ in range(32):
            sock.sendall(b"a" * (1 << 16))
        assert answered(read_response(reader))
        assert read_response(reader)[0] == 431
        assert reader.read(1) == b""


def test_head_answers_headers_only(served):
    get = httpx.get(f"{served.url}/graphql", params={"query": "{ __typename }"}, timeout=10)
    head = httpx.head(f"{served.url}/graphql", params={"query": "{ __typename }"}, timeout=10)
    assert head.status_code == get.status_code == 200
    assert head.content == b"" and head.headers["content-length"] == get.headers["content-length"]


def test_graphql_over_http_audit_passes_strictly(served, tmp_path_factory):
    workdir = node_tools.installed(
        Path(os.environ.get("GRAPHQL_HTTP_AUDIT_DIR", Path.home() / ".cache" / "account-gateway-http-audit")),
        (AUDIT_DIR / "package.json").read_text(), "for the graphql-http audit suite",
        files={"audit.mjs": (AUDIT_DIR / "audit.mjs").read_text()},
        ready=lambda found: (found / "node_modules" / "graphql-http").exists(), timeout=300)
    run = subprocess.run(["node", "audit.mjs", f"{served.url}/graphql"], cwd=workdir,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(results) >= 60
    # --strict: no MUST errors and no SHOULD warnings (MAY notices are optional, but none here either)
    assert [r for r in results if r["status"] != "ok"] == []


def test_sigterm_finishes_in_flight_requests_then_stops_everything_it_started(served):
    postgres_pid = served.postgres_pid()
    children = served.children()
    assert psutil.pid_exists(postgres_pid)
    assert any("datasources.payments.emulator" in " ".join(c.cmdline()) for c in children)

    # A request whose body is still arriving when SIGTERM comes is in flight: it must be answered.
    body = json.dumps({"query": "{ support { helpCenterUrl } }"}).encode()
    port = int(served.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:10])
        time.sleep(0.3)
        served.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        conn.sendall(body[10:])
        answer = b"".join(iter(lambda: conn.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b"helpCenterUrl" in answer

    assert served.process.wait(timeout=60) == 0
    assert gone(postgres_pid), "embedded PostgreSQL still running"
    assert [c.pid for c in children if not gone(c.pid)] == []
    assert "stopped serving; stopping embedded services" in served.output()


def test_restart_reuses_the_data_directory(served, data_dir):
    assert served.process.poll() is not None, "runs after the SIGTERM test"
    again = start(data_dir, data_dir.parent / "serve-2.log")
    try:
        token = login(again, "owner@globex.example")
        body = graphql(again, VIEWER, token=token)
        assert body["data"]["viewer"]["organization"]["name"] == "Globex Visuals"
        assert "seeded the demo" not in again.output()
        assert "created the provider side" not in again.output()  # the emulator's store was kept
    finally:
        assert stop(again) == 0


def test_two_serves_on_one_data_directory_keep_the_database_until_the_last_stops(tmp_path):
    first = start(tmp_path / "data", tmp_path / "first.log")
    second = start(tmp_path / "data", tmp_path / "second.log")
    postgres_pid = first.postgres_pid()
    try:
        assert "using the embedded PostgreSQL already running" in second.output()
        assert stop(first) == 0
        token = login(second, "owner@globex.example")  # the database is still there for the second
        assert graphql(second, VIEWER, token=token)["data"]["viewer"]["organization"]["name"] == "Globex Visuals"
        assert psutil.pid_exists(postgres_pid) and second.postgres_pid() == postgres_pid
        assert "left running for the other processes" in first.output()
    finally:
        for served in (first, second):
            if served.process.poll() is None:
                stop(served)
    assert gone(postgres_pid), "the last serve to stop leaves the embedded PostgreSQL running"


def test_a_port_in_use_is_a_one_line_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run([*command(), "serve", "--port", str(port), "--data-dir", str(tmp_path / "d")],
                             capture_output=True, text=True, env=clean_env(), timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip() == f"account-gateway: cannot listen on 127.0.0.1:{port}: address already in use"
    assert not (tmp_path / "d" / "postgres").exists()  # nothing was started


def test_an_unwritable_data_directory_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    run = subprocess.run([*command(), "serve", "--port", str(free_port()), "--data-dir", str(blocker / "data")],
                         capture_output=True, text=True, env=clean_env(), timeout=60)
    assert run.returncode == 2
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("account-gateway: data directory") and "not writable" in line


def test_production_refuses_to_start_without_a_strong_secret_key(tmp_path):
    env = {**clean_env(), "GATEWAY_ENV": "production", "SECRET_KEY": "short"}
    run = subprocess.run([*command(), "serve", "--port", str(free_port()), "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 2
    assert "SECRET_KEY is too weak" in run.stderr


@pytest.mark.parametrize("value", ["0", "lots", str(1 << 30)])
def test_a_bad_max_body_bytes_is_a_one_line_error(tmp_path, value):
    env = {**clean_env(), "MAX_BODY_BYTES": value}
    run = subprocess.run([*command(), "serve", "--port", str(free_port()), "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip() == (f"account-gateway: MAX_BODY_BYTES must be an integer from 1024 to 67108864, "
                                  f"not {value!r}")


def test_migrate_and_seed_commands_against_a_configured_database(services, tmp_path):
    import asyncio
    import uuid

    import asyncpg

    name = f"gateway_cli_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        conn = await asyncpg.connect(services.server_url)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

    asyncio.run(create())
    env = {**clean_env(), "DATABASE_URL": services.dsn(name), "STRIPE_API_BASE": services.stripe_api_base}

    def run(*args: str) -> str:
        done = subprocess.run([*command(), *args, "--data-dir", str(tmp_path)], capture_output=True,
                              text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert run("migrate") == f"applied {len(available())} migration(s)"
    assert run("migrate") == "database is up to date"
    assert run("seed") == "seeded the demo data"
    assert run("seed") == "demo data already present; provider side checked"
    assert not (tmp_path / "postgres").exists()  # a configured database: nothing embedded started
    asyncio.run(drop_database(services, name))


async def test_accepted_connections_send_without_nagle_delay():
    """A keep-alive client's next request waited ~40 ms for its delayed ACK when the listening
    socket left its protocol 0: asyncio then skips TCP_NODELAY on what it accepts, and Nagle
    holds a response's body behind its headers. `serve` hands uvicorn this socket."""
    from gateway.cli import _bind

    sock = _bind("127.0.0.1", 0)
    accepted: list[asyncio.BaseTransport] = []

    class Keep(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.append(transport)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Keep, sock=sock)
    try:
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        for _ in range(100):
            if accepted:
                break
            await asyncio.sleep(0.01)
        peer = accepted[0].get_extra_info("socket")
        assert peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("proxies,fresh_buckets", [(None, False), ("127.0.0.1", True)],
                         ids=["forwarded-headers-ignored-by-default", "named-proxy-trusted"])
def test_a_client_picks_its_own_address_only_through_a_named_proxy(services, database_url, tmp_path, proxies,
                                                                   fresh_buckets):
    """uvicorn's own default trusts X-Forwarded-For from loopback: a client there would get a
    fresh per-address sign-in bucket with every made-up header."""
    env = {"DATABASE_URL": database_url, "STRIPE_API_BASE": services.stripe_api_base,
           "SIGN_IN_ATTEMPTS_PER_ADDRESS": "3", **({"FORWARDED_ALLOW_IPS": proxies} if proxies else {})}
    served = start(tmp_path / "data", tmp_path / "serve.log", env)
    try:
        codes = []
        for i in range(5):
            response = httpx.post(f"{served.url}/graphql", timeout=10, headers={"x-forwarded-for": f"203.0.113.{i}"},
                                  json={"query": LOGIN, "variables": {"email": f"nobody{i}@example.com",
                                                                      "password": "guess"}})
            codes.append(login_outcome(response))
    finally:
        stop(served)
    expected = ["INVALID_CREDENTIALS"] * 5 if fresh_buckets else ["INVALID_CREDENTIALS"] * 3 + ["RATE_LIMITED"] * 2
    assert codes == expected


def test_an_unusable_forwarded_allow_ips_is_a_one_line_error(tmp_path):
    env = {**clean_env(), "FORWARDED_ALLOW_IPS": "127.0.0.1,proxy.internal"}
    run = subprocess.run([*command(), "serve", "--port", str(free_port()), "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 2
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("account-gateway: FORWARDED_ALLOW_IPS must be")
