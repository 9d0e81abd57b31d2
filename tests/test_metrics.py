"""GET /metrics: Prometheus text that moves with the requests the gateway answers."""

from __future__ import annotations

import asyncio
import secrets
import socket
import subprocess
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.limits import LimitSettings
from gateway.metrics import OTHER, OperationLabels
from gateway.settings import DEFAULT_OPERATIONS_DIR
from tests.test_serve import clean_env, command, free_port

# Nothing here changes the database but by signing in.
pytestmark = pytest.mark.reads_only

DASHBOARD = (DEFAULT_OPERATIONS_DIR / "dashboard.graphql").read_text()
INVOICES = (DEFAULT_OPERATIONS_DIR / "invoices.graphql").read_text()
VIEWER = "query WhoAmI { viewer { id name } }"
WRONG_LOGIN = """
mutation WrongLogin($email: String!) {
  login(input: {email: $email, password: "not-the-password"}) { token userErrors { code } }
}
"""


async def scrape(gateway) -> str:
    response = await gateway.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def total(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`."""
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


def between(before: str, after: str) -> Callable[..., float]:
    """How much a sample moved from one scrape to the next: `between(a, b)(name, **labels)`."""
    return lambda name, **labels: total(after, name, **labels) - total(before, name, **labels)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_named_operation_counts_each_request_once_with_its_batches_and_provider_calls(gateway, db):
    token = await gateway.login("admin@northwind.example")
    await db.execute("DELETE FROM billing_mirror")  # the first dashboard asks the provider, the next read the mirror
    before = await scrape(gateway)
    provider_calls = 0
    for _ in range(3):
        body = await gateway.execute(DASHBOARD, token=token)
        assert "errors" not in body, body["errors"]
        provider_calls += body["extensions"]["io"]["providerCalls"]
    after = await scrape(gateway)
    moved = between(before, after)

    assert moved("gateway_requests_total", operation="Dashboard", outcome="ok") == 3
    assert moved("gateway_request_duration_seconds_count", operation="Dashboard", outcome="ok") == 3
    assert moved("gateway_request_duration_seconds_sum", operation="Dashboard", outcome="ok") > 0
    assert moved("gateway_requests_total", operation="Dashboard") == 3  # no other outcome
    # Every key the loaders read went through a batch; the dashboard reads many relations.
    assert moved("gateway_dataloader_batch_size_count") >= 3
    assert moved("gateway_dataloader_batch_size_sum") >= moved("gateway_dataloader_batch_size_count")
    assert provider_calls == 3  # the dashboard shows billing: three lists, asked once, then mirrored
    assert moved("gateway_provider_request_duration_seconds_count") == provider_calls
    assert moved("gateway_provider_request_errors_total") == 0


async def test_outcomes_for_client_mistakes_refusals_and_failures(app_for, settings):
    gateway = await app_for(settings.with_(stripe_api_base=f"http://127.0.0.1:{closed_port()}",
                                           provider_max_retries=0, provider_timeout_seconds=2))
    token = await gateway.login("admin@northwind.example")
    before = await scrape(gateway)

    anonymous = await gateway.execute(VIEWER)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    syntax = await gateway.post("query Broken { viewer {")
    assert syntax.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    unreachable = await gateway.execute(INVOICES, token=token)
    assert {e["extensions"]["code"] for e in unreachable["errors"]} == {"PROVIDER_UNAVAILABLE"}
    after = await scrape(gateway)
    moved = between(before, after)

    # WhoAmI is no registered operation: one of the others.
    assert moved("gateway_requests_total", operation=OTHER, operation_type="query", outcome="user_error") == 1
    # A document that does not parse names no operation, nor its type.
    assert moved("gateway_requests_total", operation="anonymous", operation_type="unknown", outcome="refused") == 1
    assert moved("gateway_requests_total", operation="InvoicesPage", outcome="error") == 1
    assert moved("gateway_requests_total") == 3
    assert moved("gateway_provider_request_errors_total", reason="connection") >= 1
    assert moved("gateway_provider_request_errors_total") == moved("gateway_provider_request_duration_seconds_count")


async def test_rate_limit_rejections_are_counted_by_kind(app_for, settings):
    # A sign-in costs 11 and gives back what its answer did not use; the products' downloads, 110.
    limits = LimitSettings(cost_budget=20, cost_restore_rate=0.001, sign_in_attempts=2)
    gateway = await app_for(settings.with_(limits=limits))
    before = await scrape(gateway)

    over_budget = await gateway.post("query Products { products { id downloads { id } } }")
    assert over_budget.status_code == 429
    for _ in range(3):  # failures fill the account's bucket, then sign-ins are refused
        throttled = await gateway.post(WRONG_LOGIN, {"email": "member1@northwind.example"})
        if throttled.status_code == 429:
            break
    assert throttled.status_code == 429
    assert throttled.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    after = await scrape(gateway)
    moved = between(before, after)

    assert moved("gateway_rate_limit_rejections_total", kind="query_cost") == 1
    assert moved("gateway_rate_limit_rejections_total", kind="sign_in") == 1
    assert moved("gateway_requests_total", operation=OTHER, operation_type="query", outcome="refused") == 1
    assert moved("gateway_requests_total", operation=OTHER, operation_type="mutation", outcome="refused") == 1


async def test_pool_gauges_show_connections_in_use_and_requests_waiting(gateway, settings):
    token = await gateway.login("member1@northwind.example")
    idle = await scrape(gateway)
    assert total(idle, "gateway_db_pool_max_size") == settings.db_pool_max_size
    assert total(idle, "gateway_db_pool_in_use") == 0
    assert total(idle, "gateway_db_pool_waiting") == 0

    pool = gateway.http._transport.app.state.services.db.pool
    held = [await pool.acquire() for _ in range(settings.db_pool_max_size)]
    waiting = asyncio.create_task(gateway.execute(VIEWER, token=token))
    try:
        for _ in range(100):  # until the request queues for a connection
            busy = await scrape(gateway)
            if total(busy, "gateway_db_pool_waiting"):
                break
            await asyncio.sleep(0.01)
        assert total(busy, "gateway_db_pool_in_use") == settings.db_pool_max_size
        assert total(busy, "gateway_db_pool_waiting") == 1
    finally:
        for connection in held:
            await pool.release(connection)
    assert "errors" not in await waiting
    assert total(await scrape(gateway), "gateway_db_pool_waiting") == 0


async def test_breaker_state_is_exposed(gateway):
    text = await scrape(gateway)
    assert total(text, "gateway_provider_breaker_open") == 0
    assert "gateway_provider_breaker_rejections_total" in text


def test_only_registered_operation_names_are_label_values():
    labels = OperationLabels({"Dashboard"})
    assert labels("Dashboard") == "Dashboard"
    assert labels("anonymous") == "anonymous"
    assert [labels(name) for name in ("A", "dashboard", "not a name; DROP", "x" * 101)] == [OTHER] * 4


async def test_random_operation_names_add_at_most_one_label_value(gateway):
    before = operation_labels(await scrape(gateway))
    names = {f"Op{secrets.token_hex(6)}" for _ in range(50)}
    for i, name in enumerate(names):
        kind = "mutation" if i % 2 else "query"  # the type is a label of its own
        body = await gateway.execute(f"{kind} {name} {{ __typename }}")
        assert "errors" not in body, body
    after = await scrape(gateway)
    assert len(operation_labels(after) - before) <= 1
    assert not names & operation_labels(after)
    assert total(after, "gateway_requests_total", operation=OTHER) == 50
    assert {s.labels["operation_type"] for f in text_string_to_metric_families(after) for s in f.samples
            if s.name == "gateway_requests_total" and s.labels["operation"] == OTHER} == {"query", "mutation"}
    # the portal's own operations keep their names
    token = await gateway.login("admin@northwind.example")
    await gateway.execute(DASHBOARD, token=token)
    assert "Dashboard" in operation_labels(await scrape(gateway))


def operation_labels(text: str) -> set[str]:
    return {sample.labels["operation"] for family in text_string_to_metric_families(text)
            for sample in family.samples if "operation" in sample.labels}


async def test_production_serves_no_metrics_on_the_public_port(app_for, settings):
    gateway = await app_for(settings.with_(env="production"))
    assert (await gateway.http.get("/metrics")).status_code == 404
    assert (await gateway.http.get("/metrics", headers={"authorization": "Bearer anything"})).status_code == 404


async def test_with_a_metrics_token_only_a_scrape_that_sends_it_is_answered(app_for, settings):
    token = secrets.token_urlsafe(32)
    for env in ("production", "development"):
        gateway = await app_for(settings.with_(env=env, metrics_token=token))
        for refused in ({}, {"authorization": "Bearer wrong"}, {"authorization": token},
                        {"authorization": f"Basic {token}"}):
            response = await gateway.http.get("/metrics", headers=refused)
            assert response.status_code == 401, (env, refused)
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert "gateway_" not in response.text
        answered = await gateway.http.get("/metrics", headers={"authorization": f"Bearer {token}"})
        assert answered.status_code == 200 and "gateway_requests_total" in answered.text


async def test_with_a_metrics_port_the_public_port_serves_no_metrics(app_for, settings):
    gateway = await app_for(settings.with_(metrics_port=9464))  # the listener itself: tests/test_logs.py
    assert (await gateway.http.get("/metrics")).status_code == 404


@pytest.mark.parametrize("name,value", [("METRICS_PORT", "99999"), ("METRICS_PORT", "9464x"),
                                        ("METRICS_HOST", "metrics.internal"), ("METRICS_TOKEN", "short"),
                                        ("METRICS_TOKEN", "x" * 40 + " with a space")])
def test_a_bad_metrics_setting_is_a_one_line_error(tmp_path, name, value):
    run = subprocess.run([*command(), "serve", "--port", str(free_port()), "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, env={**clean_env(), name: value}, timeout=60)
    assert run.returncode == 2
    [line] = run.stderr.strip().splitlines()
    assert line.startswith(f"account-gateway: {name} ")
    assert not (tmp_path / "postgres").exists()  # nothing was started


def test_a_metrics_port_in_use_is_a_one_line_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run([*command(), "serve", "--port", str(free_port()), "--data-dir", str(tmp_path)],
                             capture_output=True, text=True, env={**clean_env(), "METRICS_PORT": str(port)},
                             timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip() == f"account-gateway: cannot listen on 127.0.0.1:{port}: address already in use"
