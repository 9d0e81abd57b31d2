"""Generated GraphQL against the real `account-gateway serve` (issue 5).

schemathesis (GraphQL mode) reads the running gateway's schema by introspection and
generates queries and mutations for every root field: valid ones (positive mode) and ones
that break the schema (negative mode). Each operation gets at most `EXAMPLES` of each, from a
fixed Hypothesis seed, sent once as the demo admin and once without a token.

What every answer must be, whoever asks and whatever they send:
- not a 5xx, and no error masked as INTERNAL_SERVER_ERROR (an exception the code did not expect);
- a GraphQL response: a JSON object with only `data`, `errors` and `extensions`, at least one of
  `data` and `errors`, `errors` a non-empty list of objects with a `message` string;
- true to the schema the gateway publishes (schemathesis' own response check: no null in a
  non-null field, well-formed JSON).
After both runs the same server still answers `{ __typename }` and `/healthz`.

Nothing is shrunk or retried: a run sends its generated cases, collects every finding and
fails once at the end, listing each query with the response it got.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure
from schemathesis.graphql import nodes
from schemathesis.specs.graphql.scalars import CUSTOM_SCALARS

from tests.conftest import service_directory
from tests.test_serve import Served, graphql, login, start, stop

# Generated cases per operation, per generation mode, per viewer (an upper bound); CI runs 10,
# FUZZ_EXAMPLES=200 a deeper search.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
SEED = 20_260_505
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
REQUEST_TIMEOUT = 30
ADMIN = "admin@northwind.example"
OTHER_ADMIN = "admin@globex.example"
DASHBOARD = Path(__file__).parent.parent / "operations" / "dashboard.graphql"
INVITATIONS = "{ viewer { organization { invitations(first: 100) { nodes { id } } } } }"
RESPONSE_KEYS = {"data", "errors", "extensions"}
# Last in a run, so that the admin's token is not revoked (`logout(allSessions: true)`) before
# the other operations have been sent with it.
LAST = ("Mutation.logout",)


@dataclass
class Finding:
    operation: str
    mode: str
    problem: str
    request: str
    status: int | None
    response: str

    def __str__(self) -> str:
        return (f"{self.operation} ({self.mode}): {self.problem}\n"
                f"  request:  {self.request}\n"
                f"  response: {self.status} {self.response}")


@dataclass
class Run:
    viewer: str
    sent: int = 0
    per_operation: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    def report(self) -> str:
        kinds = sorted({(f.operation, f.problem.split(":")[0]) for f in self.findings})
        lines = [f"{len(self.findings)} finding(s) in {self.sent} requests as {self.viewer}:"]
        lines += [f"- {op}: {kind}" for op, kind in kinds]
        lines += ["", *(str(f) for f in self.findings[:40])]
        return "\n".join(lines)


def shape_problems(body: Any) -> list[str]:
    """What keeps `body` from being a GraphQL response (GraphQL spec, section 7 'Response')."""
    if not isinstance(body, dict):
        return [f"not a JSON object but {type(body).__name__}"]
    problems = []
    if extra := sorted(set(body) - RESPONSE_KEYS):
        problems.append(f"unexpected top-level keys {extra}")
    if "data" not in body and "errors" not in body:
        problems.append("neither 'data' nor 'errors'")
    if "data" in body and body["data"] is not None and not isinstance(body["data"], dict):
        problems.append(f"'data' is a {type(body['data']).__name__}")
    if "extensions" in body and not isinstance(body["extensions"], dict):
        problems.append(f"'extensions' is a {type(body['extensions']).__name__}")
    if "errors" in body:
        errors = body["errors"]
        if not isinstance(errors, list) or not errors:
            problems.append("'errors' is not a non-empty list")
        else:
            for index, error in enumerate(errors):
                if not isinstance(error, dict):
                    problems.append(f"errors[{index}] is not an object")
                elif not isinstance(error.get("message"), str):
                    problems.append(f"errors[{index}] has no 'message' string")
    return problems


def problems_of(case: Any, response: Any) -> list[str]:
    problems = []
    if response.status_code >= 500:
        problems.append(f"status {response.status_code}")
    try:
        body = json.loads(response.content)
    except ValueError:
        return [*problems, "the body is not JSON"]
    problems += [f"shape: {p}" for p in shape_problems(body)]
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        for error in body["errors"]:
            extensions = error.get("extensions") if isinstance(error, dict) else None
            if isinstance(extensions, dict) and extensions.get("code") == "INTERNAL_SERVER_ERROR":
                problems.append(f"INTERNAL_SERVER_ERROR at {error.get('path')}: {error.get('message')}")
    try:
        case.operation.validate_response(response, case=case)
    except Failure as failure:
        problems.append(f"schema: {failure.title}: {failure.message}")
    return problems


def ordered(schema: Any) -> list[Any]:
    operations = []
    for result in schema.get_all_operations():
        operations.append(result.ok())  # raises on a root field schemathesis cannot build
    return sorted(operations, key=lambda op: op.label in LAST)  # stable: schema order otherwise


class ServerGone(Exception):
    """The gateway stopped answering: the run ends with what it has found."""


def fuzz(schema: Any, served: Served, *, viewer: str, token: str | None = None) -> Run:
    run = Run(viewer)
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    started = time.monotonic()
    for operation in ordered(schema):
        for mode in MODES:
            strategy = operation.as_strategy(generation_mode=mode)

            @seed(SEED)
            @settings(max_examples=EXAMPLES, database=None, deadline=None,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck),
                      print_blob=False)
            @given(case=strategy)
            def send(case: Any) -> None:
                query = json.dumps(case.body) if not isinstance(case.body, str) else case.body
                try:
                    response = case.call(session=session, headers=headers, timeout=REQUEST_TIMEOUT)
                except requests.RequestException as exc:
                    run.findings.append(Finding(operation.label, mode.value, f"no response: {exc!r}",
                                                query, None, ""))
                    raise ServerGone from exc
                run.sent += 1
                run.per_operation[operation.label] = run.per_operation.get(operation.label, 0) + 1
                for problem in problems_of(case, response):
                    run.findings.append(Finding(operation.label, mode.value, problem, query,
                                                response.status_code, response.content[:600].decode(errors="replace")))

            try:
                send()
            except ServerGone:
                run.seconds = time.monotonic() - started
                return run
    run.seconds = time.monotonic() - started
    return run


def ids_in(value: Any, found: dict[str, None]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "id" and isinstance(item, str):
                found.setdefault(item)
            else:
                ids_in(item, found)
    elif isinstance(value, list):
        for item in value:
            ids_in(item, found)


def known_ids(served: Served, tokens: list[str]) -> list[str]:
    """Global IDs of both demo organizations' objects, read the way the portal reads them.

    In the order the responses list them (the provider's IDs are random, their order is not),
    so that a seed draws the same objects every run.
    """
    found: dict[str, None] = {}
    for token in tokens:
        for query in (DASHBOARD.read_text(), INVITATIONS):
            body = graphql(served, query, token=token)
            assert "errors" not in body, body
            ids_in(body["data"], found)
    return list(found)


def id_values(known: list[str]) -> st.SearchStrategy:
    """`ID` arguments: the gateway's own IDs (this organization's and the other's) or anything at all.

    Random strings alone would only ever reach NOT_FOUND; real IDs let the mutations act.
    """
    return st.one_of(st.sampled_from(known).map(nodes.String), st.text().map(nodes.String),
                     st.integers().map(nodes.Int))


@dataclass
class Fuzzed:
    served: Served
    admin_token: str
    schema: Any


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[Fuzzed]:
    with service_directory("fuzz") as root:
        served = start(root / "data", root / "serve.log")
        try:
            # Signed in before any generated `login` fills the address' sign-in throttle.
            token = login(served, ADMIN)
            schemathesis.graphql.scalar("ID", id_values(known_ids(served, [token, login(served, OTHER_ADMIN)])))
            schema = schemathesis.graphql.from_url(f"{served.url}/graphql", config=SchemathesisConfig(),
                                                   timeout=REQUEST_TIMEOUT)
            yield Fuzzed(served, token, schema)
        finally:
            CUSTOM_SCALARS.pop("ID", None)
            if served.process.poll() is None:
                stop(served)


def log_errors(served: Served) -> str:
    """The server log without uvicorn's access lines: what the gateway logged about the findings."""
    lines = [line for line in served.output().splitlines() if not line.startswith("INFO:")]
    return "\n".join(lines)[-4000:]


def check(run: Run, fuzzed: Fuzzed) -> None:
    print(f"\n{run.viewer}: {run.sent} requests over {len(run.per_operation)} operations in {run.seconds:.1f} s")
    assert run.sent > 0
    assert run.findings == [], run.report() + "\n\nserver log (errors, tail):\n" + log_errors(fuzzed.served)
    # Every root field of the schema was exercised.
    assert set(run.per_operation) == {op.label for op in ordered(fuzzed.schema)}


def test_generated_operations_as_admin(fuzzed: Fuzzed) -> None:
    # The token works before the run: the run is really an admin's.
    viewer = httpx.post(f"{fuzzed.served.url}/graphql", json={"query": "{ viewer { role } }"},
                        headers={"authorization": f"Bearer {fuzzed.admin_token}"}, timeout=10).json()
    assert viewer["data"]["viewer"]["role"] == "ADMIN", viewer
    check(fuzz(fuzzed.schema, fuzzed.served, viewer="admin", token=fuzzed.admin_token), fuzzed)


def test_generated_operations_anonymously(fuzzed: Fuzzed) -> None:
    check(fuzz(fuzzed.schema, fuzzed.served, viewer="anonymous"), fuzzed)


def test_the_server_is_alive_after_the_runs(fuzzed: Fuzzed) -> None:
    served = fuzzed.served
    assert served.process.poll() is None, served.output()[-3000:]
    response = httpx.post(f"{served.url}/graphql", json={"query": "{ __typename }"}, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"] == {"__typename": "Query"} and "errors" not in body, body
    assert httpx.get(f"{served.url}/healthz", timeout=10).status_code == 200
