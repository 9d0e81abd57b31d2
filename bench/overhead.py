"""The gateway's fixed CPU cost per request, outside the data: small operations in process.

    PYTHONPATH=. .venv/bin/python -m bench.overhead [--requests 100] [--rounds 10] [--cprofile N]

Loads the quick data set into its own embedded PostgreSQL, builds the production app in
process (as bench.profile does) and sends, with a Bearer token and one after the other:
`GET /healthz` (the floor: the HTTP client, the ASGI transport and Starlette), `{ __typename }`,
`{ viewer { id name } }` and the bench dashboard. Prints the CPU time of this process per
request (`time.process_time`: client and gateway, not PostgreSQL) and the wall time. The
request log is written as in production, to /dev/null.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import dataset, servers
from bench.__main__ import OPERATIONS_DIR
from gateway.app import create_app
from gateway.settings import from_env

LOGIN = ("mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token } }")


@contextlib.asynccontextmanager
async def in_process_gateway() -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The production app over the quick data set, and a Bearer token of a normal tenant's admin."""
    root = Path(tempfile.mkdtemp(prefix="account-gateway-overhead-"))
    root.chmod(0o755)  # the embedded server runs as its own system user when we are root
    postgres = servers.Postgres(root)
    postgres.start()
    try:
        admin = await asyncpg.connect(postgres.admin_uri())
        await admin.execute(f'CREATE DATABASE "{servers.DATABASE}"')
        await admin.close()
        conn = await asyncpg.connect(postgres.dsn())
        try:
            loaded = await dataset.create(conn, dataset.QUICK)
        finally:
            await conn.close()
        settings = from_env({
            "DATABASE_URL": postgres.dsn(), "GATEWAY_ENV": "production", "SECRET_KEY": secrets.token_urlsafe(36),
            "SEED_DEMO": "0", "STRIPE_API_BASE": "http://127.0.0.1:9", "MAX_QUERY_COST": "100000000",
            "COST_BUDGET": "1000000000", "COST_RESTORE_RATE": "1000000000", "GATEWAY_DATA_DIR": str(root / "data")})
        app = create_app(settings)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://gateway.bench") as http:
            tenant = loaded.tenants["normal"]
            login = await http.post("/graphql", json={
                "query": LOGIN, "variables": {"e": tenant.admin_email, "p": dataset.PASSWORD}})
            yield http, login.json()["data"]["login"]["token"]
    finally:
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


async def measure(send: Callable[[], Awaitable[Any]], n: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per request over `n` sequential requests."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        await send()
    return (time.process_time() - cpu) / n * 1000, (time.perf_counter() - wall) / n * 1000


async def run(args: argparse.Namespace) -> None:
    async with in_process_gateway() as (http, token):
        headers = {"authorization": f"Bearer {token}"}

        def graphql(query: str) -> Callable[[], Awaitable[None]]:
            async def send() -> None:
                response = await http.post("/graphql", json={"query": query}, headers=headers)
                assert response.status_code == 200 and "errors" not in response.json(), response.text[:500]
            return send

        async def healthz() -> None:
            assert (await http.get("/healthz")).status_code == 200

        cases = {"healthz": healthz, "typename": graphql("{ __typename }"),
                 "viewer": graphql("{ viewer { id name } }"),
                 "dashboard": graphql((OPERATIONS_DIR / "gateway_dashboard.graphql").read_text())}
        report = sys.stdout
        devnull = open(os.devnull, "w")  # noqa: ASYNC230, SIM115 - the request log goes here
        with devnull, contextlib.redirect_stdout(devnull):
            for send in cases.values():
                await measure(send, args.warmup)
            best: dict[str, float] = {}
            for round_ in range(args.rounds):
                for name, send in cases.items():
                    cpu, wall = await measure(send, args.requests)
                    best[name] = min(cpu, best.get(name, cpu))
                    print(f"overhead: round {round_ + 1} {name:<10} {cpu:7.3f} ms CPU  {wall:7.3f} ms wall "
                          f"per request ({args.requests} requests)", file=report, flush=True)
            # On a shared machine the least CPU of several rounds is the figure that repeats.
            print("overhead: least CPU ms per request over the rounds: "
                  + "  ".join(f"{name}={cpu:.3f}" for name, cpu in best.items()), file=report, flush=True)
            if args.cprofile:
                import cProfile
                import pstats
                for name in args.cprofile_cases.split(","):
                    profile = cProfile.Profile()
                    profile.enable()
                    await measure(cases[name], args.requests)
                    profile.disable()
                    print(f"\noverhead: cProfile of {name}", file=report)
                    pstats.Stats(profile, stream=report).sort_stats(args.sort).print_stats(args.cprofile)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    # Many short rounds: on a shared machine the least of ten repeats within a few percent where
    # the least of three 300-request rounds still moved by a third from run to run.
    p.add_argument("--requests", type=int, default=100)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--cprofile", type=int, default=0, metavar="N", help="then print cProfile's top N functions")
    p.add_argument("--cprofile-cases", default="typename", help="comma-separated: healthz,typename,viewer,dashboard")
    p.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative)")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
