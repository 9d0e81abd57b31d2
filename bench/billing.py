"""python -m bench.billing [--quick] [--latency-ms 200] [--duration S] [--concurrency N]

The whole dashboard, billing included, against a payment provider as slow as the real one.
Loads the bench dataset (normal tenants only) into its own embedded PostgreSQL, gives the normal
tenant a provider customer in localstripe (a card, two open invoices and a paid one), puts a
proxy that delays every provider request by `--latency-ms` in front of localstripe, starts the
gateway (production settings, one process) on that proxy, and drives, interleaved, the portal's
full `operations/dashboard.graphql` and the same operation without its billing fields (made
from it here: `without_billing`). Prints both, the provider calls per full
dashboard in the measured phases, and the target: the full dashboard's p50 within 1.5 times
the other's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import time
from pathlib import Path

import asyncpg
from graphql import REMOVE, FieldNode, VariableDefinitionNode, Visitor, parse, print_ast, visit

from bench import dataset, load, runs, servers, session
from bench.slow_provider import SlowProvider
from datasources.payments.client import PaymentsClient
from datasources.payments.emulator import Emulator
from gateway.app import EMULATOR_API_KEY

ROOT = Path(__file__).resolve().parents[1]
FULL = ROOT / "operations" / "dashboard.graphql"
BILLING_FIELDS = frozenset({"invoices", "outstandingBalance", "paymentMethods"})  # what the provider holds
TARGET = 1.5
VISA = "4242424242424242"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.billing", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="200 organizations of 30 and short phases")
    p.add_argument("--organizations", type=int, default=None, help="organizations of 30 (default 2,000, quick 200)")
    p.add_argument("--latency-ms", type=float, default=200.0, help="delay of every provider request (default 200)")
    p.add_argument("--duration", type=float, default=None, help="measured seconds per operation (default 30, quick 9)")
    p.add_argument("--rounds", type=int, default=3, help="alternations between the two operations")
    p.add_argument("--concurrency", type=int, default=8, help="concurrent keep-alive connections")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs) at the end")
    return p


async def _bill(api_base: str, conn: asyncpg.Connection, organization_id: object) -> str:
    """The organization's provider customer, with what a billing screen shows."""
    provider = PaymentsClient(EMULATOR_API_KEY, api_base=api_base, timeout_seconds=10)
    key = secrets.token_hex(8)
    try:
        customer = await provider.create_customer(name="Bench Billing Ltd", email="billing@bench.example",
                                                  metadata={"bench": "billing"}, idempotency_key=f"{key}:customer")
        await provider.add_card(customer.id, card_number=VISA, exp_month=12, exp_year=2031, cvc="123",
                                make_default=True, idempotency_key=f"{key}:card")
        for n, (amount, pay) in enumerate(((39_900, False), (12_500, False), (69_900, True))):
            await provider.create_invoice(customer.id, currency="USD", lines=[("Seats", 3, amount)], tax_percent=None,
                                          pay=pay, idempotency_key=f"{key}:invoice:{n}")
    finally:
        await provider.close()
    await conn.execute("UPDATE organizations SET payment_customer_id = $1 WHERE id = $2", customer.id, organization_id)
    return customer.id


def without_billing(document: str) -> str:
    """The operation without the fields the payment provider holds (and the variable only they use)."""

    class Strip(Visitor):
        def enter_field(self, node: FieldNode, *_: object) -> object:
            return REMOVE if node.name.value in BILLING_FIELDS else None

        def enter_variable_definition(self, node: VariableDefinitionNode, *_: object) -> object:
            return REMOVE if node.variable.name.value == "invoices" else None

    return print_ast(visit(parse(document), Strip()))


def _clean(what: str, status: int, body: bytes, billing: bool) -> None:
    parsed = json.loads(body) if body[:1] == b"{" else None
    org = ((parsed or {}).get("data") or {}).get("viewer", {}).get("organization") or {}
    if status != 200 or not parsed or parsed.get("errors") or not org:
        raise RuntimeError(f"{what}: the answer is not clean: HTTP {status} {body[:600]!r}")
    if billing and not ((org.get("invoices") or {}).get("totalCount") and org.get("paymentMethods")):
        raise RuntimeError(f"{what}: no invoices or payment methods in the answer: {body[:600]!r}")


async def run(args: argparse.Namespace) -> int:
    organizations = args.organizations or (200 if args.quick else 2_000)
    sizes = dataset.Sizes(organizations=organizations, members_per_org=30, big_organizations=0, big_members=0)
    duration = args.duration if args.duration is not None else (9.0 if args.quick else 30.0)
    rounds = max(1, args.rounds)
    latency = args.latency_ms / 1000
    async with runs.workspace("bench.billing", args.keep) as workspace:
        print(f"bench.billing: {organizations:,} organizations of 30 on {os.cpu_count()} cores, provider latency "
              f"{args.latency_ms:g} ms, concurrency {args.concurrency}, {duration:g} s per operation in {rounds} "
              "interleaved rounds", flush=True)
        postgres = await workspace.start_postgres()
        conn = await asyncpg.connect(postgres.dsn())
        emulator = Emulator.start(workspace.root / "localstripe.pickle")
        slow = SlowProvider(emulator.api_base, latency)
        try:
            loaded = await dataset.create(conn, sizes)
            tenant = loaded.tenants["normal"]
            customer = await _bill(emulator.api_base, conn, tenant.organization_id)
            print(f"bench.billing: loaded in {loaded.seconds:.1f} s; the normal tenant bills as {customer} at "
                  f"localstripe {emulator.api_base}", flush=True)
            await slow.start()
            # In a thread: the wait for the gateway sleeps, and the proxy in this loop must answer
            # the provider calls the gateway makes while it starts (subscriptions it puts there).
            gateway = await asyncio.to_thread(servers.start_gateway, postgres.dsn(), workspace.root,
                                              workspace.started, {"STRIPE_API_BASE": slow.url})
            token = await session.login(gateway.url, tenant.admin_email)
            full = load.build_request(f"{gateway.url}/graphql", {"query": FULL.read_text()}, token)
            plain = load.build_request(f"{gateway.url}/graphql", {"query": without_billing(FULL.read_text())}, token)

            began, calls = time.monotonic(), slow.forwarded
            _clean("the first full dashboard", *await load.one(gateway.url, full), billing=True)
            print(f"bench.billing: first full dashboard (billing mirror empty): "
                  f"{(time.monotonic() - began) * 1000:,.0f} ms, {slow.forwarded - calls} provider calls", flush=True)
            _clean("the dashboard without billing", *await load.one(gateway.url, plain), billing=False)
            await session.settled(conn, gateway.process.pid)

            tallies = {"without billing": load.Tally(), "full (billing)": load.Tally()}
            requests = {"without billing": plain, "full (billing)": full}
            for name, request in requests.items():  # warm-up
                await load.drive(gateway.url, request, args.concurrency, 2.0, None)
            calls = slow.forwarded
            for _ in range(rounds):
                for name, request in requests.items():
                    await load.drive(gateway.url, request, args.concurrency, duration / rounds, tallies[name])
            per_request = (slow.forwarded - calls) / max(1, tallies["full (billing)"].requests)
            _clean("the last full dashboard", *await load.one(gateway.url, full), billing=True)
        finally:
            await slow.stop()
            emulator.stop()
            await conn.close()
    return _summary(tallies, per_request, args.latency_ms)


def _summary(tallies: dict[str, load.Tally], provider_calls: float, latency_ms: float) -> int:
    print(f"\n{'dashboard':<18} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failures':>8}")
    for name, t in tallies.items():
        print(f"{name:<18} {t.requests:>9,} {t.rps:>8,.0f} {t.percentile(50):>8.1f} {t.percentile(99):>8.1f} "
              f"{t.failures:>8}")
    print(f"provider calls per full dashboard in the measured phases: {provider_calls:.3f} "
          f"(each takes {latency_ms:g} ms or more)")
    plain, full = tallies["without billing"], tallies["full (billing)"]
    for p in (50, 99):
        ratio = full.percentile(p) / plain.percentile(p) if plain.percentile(p) else math.nan
        verdict = "PASS" if ratio <= TARGET else "FAIL"
        print(f"billing: full dashboard p{p} {full.percentile(p):.1f} ms vs without billing "
              f"{plain.percentile(p):.1f} ms: ratio {ratio:.2f} (target <= {TARGET}): {verdict}")
    return 0


def main() -> None:
    runs.main("bench.billing", _parser(), run)


if __name__ == "__main__":
    main()
