"""`serve` in production as a log pipeline reads it: every line of stdout and stderr one JSON
object, from the first line to the last after SIGTERM, in one process and with workers.

The run is what production accepts: a configured database and provider key, a strong secret,
the webhook secret; its /metrics is on the loopback METRICS_PORT only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import copy_template, drop_database, service_directory
from tests.test_serve import Served, clean_env, command, free_port, login, stop

ORGANIZATION = "query OrganizationName { viewer { id organization { name } } }"


@dataclass
class Production:
    served: Served
    database_url: str
    workers: int
    metrics_url: str

    def lines(self) -> list[str]:
        return [line for line in self.served.output().splitlines() if line.strip()]

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]


def start(root: Path, database_url: str, stripe_api_base: str, workers: int) -> Production:
    port, metrics_port = free_port(), free_port()
    env = {**clean_env(), "GATEWAY_ENV": "production", "SECRET_KEY": secrets.token_urlsafe(48),
           "DATABASE_URL": database_url, "STRIPE_API_KEY": "sk_test_" + secrets.token_hex(12),
           "STRIPE_API_BASE": stripe_api_base, "STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(16),
           "METRICS_PORT": str(metrics_port)}
    log = root / "serve.log"
    with log.open("w") as out:  # stdout and stderr both: a pipeline reads both
        process = subprocess.Popen([*command(), "serve", "--port", str(port), "--data-dir", str(root / "data"),
                                    "--workers", str(workers)], stdout=out, stderr=subprocess.STDOUT, env=env)
    served = Served(process, f"http://127.0.0.1:{port}", root / "data", log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited with {process.returncode}:\n{served.output()}")
        probe = f"start-up-probe-{secrets.token_hex(8)}"
        try:
            up = httpx.get(f"{served.url}/readyz", headers={"x-request-id": probe}, timeout=1).status_code == 200
        except httpx.TransportError:
            up = False
        # every worker up, and the probe's own line written (it comes after its answer), so that no
        # start-up line comes in between a test's request and its line
        if up and served.output().count("Application startup complete.") >= workers:
            for _ in range(50):
                if probe in served.output():
                    return Production(served, database_url, workers, f"http://127.0.0.1:{metrics_port}/metrics")
                time.sleep(0.1)
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"serve did not come up in 120 s:\n{served.output()}")


@pytest.fixture(scope="module", params=[1, 2], ids=["one-process", "two-workers"])
def production(request, services) -> Iterator[Production]:
    name = asyncio.run(copy_template(services))
    try:
        with service_directory("logs") as root:
            running = start(root, services.dsn(name), services.stripe_api_base, request.param)
            yield running
            if running.served.process.poll() is None:
                stop(running.served)
    finally:
        asyncio.run(drop_database(services, name))


def lines_naming(production: Production, text: str) -> list[str]:
    """The log lines that contain `text`, once the run has written them."""
    for _ in range(50):
        found = [line for line in production.lines() if text in line]
        if found:
            return found
        time.sleep(0.1)
    return []


def test_a_request_is_one_json_line_with_its_request_fields(production):
    request_id = f"logs-test-{secrets.token_hex(8)}"
    before = len(production.lines())
    response = httpx.post(f"{production.served.url}/graphql", json={"query": "query Ping { __typename }"},
                          headers={"x-request-id": request_id}, timeout=10)
    assert response.status_code == 200 and response.headers["x-request-id"] == request_id
    assert lines_naming(production, request_id)
    time.sleep(0.5)  # anything else the request would log (uvicorn's access line) has come by now
    # The scheduler (on its own clock) may log a pass meanwhile: not the request's.
    new = [line for line in production.lines()[before:] if json.loads(line)["logger"] != "gateway.scheduler"]
    assert len(new) == 1, "\n".join(new)
    [line] = new
    record = json.loads(line)
    assert record["logger"] == "gateway.requests" and record["level"] == "info"
    assert record["request_id"] == request_id and record["operation"] == "Ping"
    assert record["outcome"] == "ok" and record["status"] == 200 and record["method"] == "POST"
    assert record["viewer_id"] == "anonymous" and record["cost_requested"] is not None


def test_an_errors_traceback_is_inside_its_json_line(production):
    token = login(production.served, "admin@northwind.example")

    async def rename(old: str, new: str) -> None:
        conn = await asyncpg.connect(production.database_url)
        await conn.execute(f"ALTER TABLE organizations RENAME COLUMN {old} TO {new}")
        await conn.close()

    asyncio.run(rename("name", "renamed"))  # a bug rather than an outage: SQL names a missing column
    try:
        response = httpx.post(f"{production.served.url}/graphql", json={"query": ORGANIZATION},
                              headers={"authorization": f"Bearer {token}"}, timeout=10)
    finally:
        asyncio.run(rename("renamed", "name"))
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    request_id = error["extensions"]["requestId"]
    logged = [json.loads(line) for line in lines_naming(production, request_id)]
    [failure] = [r for r in logged if r["logger"] == "gateway.errors"]
    assert failure["level"] == "error" and failure["request_id"] == request_id
    assert failure["exception"].startswith("Traceback (most recent call last):")
    assert "UndefinedColumnError" in failure["exception"] and "\n" in failure["exception"]
    assert [r["outcome"] for r in logged if r["logger"] == "gateway.requests"] == ["error"]


def test_metrics_answer_on_the_metrics_port_only(production):
    assert httpx.get(f"{production.served.url}/metrics", timeout=10).status_code == 404
    scrape = httpx.get(production.metrics_url, timeout=10)
    assert scrape.status_code == 200 and "gateway_requests_total" in scrape.text
    # the metrics listener serves nothing else
    assert httpx.post(production.metrics_url.replace("/metrics", "/graphql"), timeout=10,
                      json={"query": "{ __typename }"}).status_code == 404


def test_every_line_from_start_to_sigterm_is_a_json_object(production):
    assert stop(production.served) == 0
    lines = production.lines()
    not_json = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            not_json.append(line)
            continue
        if not (isinstance(record, dict) and {"time", "level", "logger", "message", "pid"} <= record.keys()):
            not_json.append(line)
    assert not_json == [], "\n".join(not_json[:10])
    records = production.records()
    messages = [r["message"] for r in records]
    assert any(m.startswith("GraphQL at") for m in messages)  # the start-up lines, as JSON
    assert any(r["logger"] == "uvicorn.error" for r in records)  # uvicorn's own lines, as JSON
    assert "stopped serving; stopping embedded services" in messages[-1]
    assert not any(r["logger"] == "uvicorn.access" for r in records)
    if production.workers > 1:  # the supervisor's lines and each worker's
        assert len({r["pid"] for r in records}) >= 1 + production.workers


def test_a_line_holding_a_lone_surrogate_is_still_one_json_line():
    """orjson writes the lines and refuses lone surrogates, which client text can hold (a JSON
    body may escape one): such a line is still written, the surrogate as an escape."""
    from gateway.logs import JsonLines

    formatter = JsonLines()
    for message in ("plain", "name \ud800 from a client"):
        record = logging.LogRecord("gateway.errors", logging.ERROR, __file__, 1, "bad input: %s", (message,), None)
        line = formatter.format(record)
        assert "\n" not in line
        parsed = json.loads(line)
        assert parsed["message"] == f"bad input: {message}" and parsed["level"] == "error"
        assert parsed["logger"] == "gateway.errors"


def test_a_lines_time_is_the_moment_in_utc_to_the_millisecond():
    """The time of a JSON line reads as datetime's own ISO text would, rounding included (its
    second's text is kept between lines): the end of a second, the start of one, a leap of years."""
    from datetime import datetime, timezone

    from gateway.logs import utc_time

    moments = [0.0, 0.0004999, 0.0005, 0.9994999, 0.9995, 0.9999995, 1_700_000_000.4375, 1_700_000_000.9999996,
               1_700_000_001.0, 1_700_000_000.1, 2_000_000_000.5695, 4_102_444_799.9999999]
    for moment in moments + moments[::-1]:
        assert utc_time(moment) == datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="milliseconds")


async def test_request_lines_written_in_an_event_loop_reach_the_stream_by_its_next_turn(tmp_path):
    """The request lines of a turn of the event loop go out together: none is lost or held back
    once the turn is over, and outside a loop a line is written at once."""
    from gateway.logs import FlushedEachTurn

    path = tmp_path / "lines"
    with path.open("w", buffering=1 << 16) as stream:
        handler = FlushedEachTurn(stream)
        for n in range(3):
            handler.handle(logging.LogRecord("gateway.requests", logging.INFO, __file__, 1, f"line {n}", (), None))
        assert path.read_text() == ""  # still this turn: in the stream's buffer
        await asyncio.sleep(0)
        assert path.read_text().splitlines() == ["line 0", "line 1", "line 2"]
        await asyncio.to_thread(handler.handle, logging.LogRecord("x", logging.INFO, __file__, 1, "off the loop", (),
                                                                  None))
        assert path.read_text().splitlines()[-1] == "off the loop"
