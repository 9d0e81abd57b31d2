"""Where a request's time goes: the gateway in this process, a profiler around sequential requests.

    .venv/bin/python -m bench.profile [--operation dashboard] [--tenant normal] [--requests 200]

Loads the quick data set into its own embedded PostgreSQL (as `python -m bench --quick`
does), builds the production app in process and sends the operation through ASGI, with no
network and no load generator in the way. Prints the mean time per request, then
pyinstrument's call tree when pyinstrument is installed (`pip install pyinstrument`).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

from bench import dataset, servers
from bench.__main__ import OPERATIONS, OPERATIONS_DIR, TENANTS
from gateway.app import create_app
from gateway.settings import from_env


async def run(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="account-gateway-profile-"))
    root.chmod(0o755)  # the embedded server runs as its own system user when we are root
    postgres = servers.Postgres(root)
    postgres.start()
    try:
        admin = await asyncpg.connect(postgres.admin_uri())
        for name, value in servers.POSTGRES_SETTINGS.items():
            await admin.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        await admin.execute(f'CREATE DATABASE "{servers.DATABASE}"')
        await admin.close()
        postgres.restart()  # the benchmark's settings, pg_stat_statements loaded
        conn = await asyncpg.connect(postgres.dsn())
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        loaded = await dataset.create(conn, dataset.QUICK)
        settings = from_env({
            "DATABASE_URL": postgres.dsn(), "GATEWAY_ENV": "production", "SECRET_KEY": secrets.token_urlsafe(36),
            "SEED_DEMO": "0", "STRIPE_API_BASE": "http://127.0.0.1:9", "MAX_QUERY_COST": "100000000",
            "COST_BUDGET": "1000000000", "COST_RESTORE_RATE": "1000000000", "GATEWAY_DATA_DIR": str(root / "data")})
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway.bench") as http:
                tenant = loaded.tenants[args.tenant]
                login = await http.post("/graphql", json={
                    "query": "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) "
                             "{ token } }", "variables": {"e": tenant.admin_email, "p": dataset.PASSWORD}})
                token = login.json()["data"]["login"]["token"]
                body = {"query": (OPERATIONS_DIR / f"gateway_{args.operation}.graphql").read_text()}
                headers = {"authorization": f"Bearer {token}"}

                async def requests(n: int) -> float:
                    started = time.perf_counter()
                    for _ in range(n):
                        response = await http.post("/graphql", json=body, headers=headers)
                        assert response.status_code == 200 and "errors" not in response.json(), response.text[:500]
                    return (time.perf_counter() - started) / n * 1000

                await requests(10)
                await conn.execute("SELECT pg_stat_statements_reset()")
                print(f"profile: {args.operation} ({args.tenant}): {await requests(args.requests):.2f} ms per request "
                      f"over {args.requests} sequential requests, in process", flush=True)
                rows = await conn.fetch("SELECT calls, mean_exec_time, left(regexp_replace(query, '\\s+', ' ', 'g'), $2::int) AS q "
                                        "FROM pg_stat_statements WHERE calls >= $1 ORDER BY total_exec_time DESC LIMIT 5",
                                        args.requests, args.statement_chars)
                print("profile: the statements with the most time in PostgreSQL:")
                for row in rows:
                    print(f"  {row['calls']:>6} calls {row['mean_exec_time']:8.2f} ms mean  {row['q']}")
                if args.cprofile:
                    # Own time per function: where the interpreter spends it, whoever called.
                    import cProfile
                    import pstats
                    profile = cProfile.Profile()
                    profile.enable()
                    await requests(args.requests)
                    profile.disable()
                    stats = pstats.Stats(profile).sort_stats("tottime")
                    stats.print_stats(args.cprofile)
                    stats.print_callers("visitor.py.*\\(visit\\)|_complete_objects|get_arguments|gather")
                    return
                try:
                    from pyinstrument import Profiler
                except ImportError:
                    print("profile: pyinstrument is not installed: no call tree")
                    return
                profiler = Profiler(async_mode="enabled")
                with profiler:
                    await requests(args.requests)
                print(profiler.output_text(unicode=False, color=False, show_all=False))
    finally:
        await conn.close()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--operation", choices=OPERATIONS, default="dashboard")
    p.add_argument("--tenant", choices=TENANTS, default="normal")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--statement-chars", type=int, default=160, help="how much of each statement to print")
    p.add_argument("--cprofile", type=int, default=0, metavar="N",
                   help="print cProfile's N functions with the most own time instead of pyinstrument's tree")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
