"""Crafted input for every argument and input type of the schema, against the real `account-gateway serve`.

Generated from the schema the running gateway publishes (introspection), in two ways:
- every field that takes arguments, wherever it is (a root field, or one reached from the root
  through fields that need none), gets each of its arguments through a variable, with values of
  every shape that has broken a server before: IDs and cursors of every shape (valid base64 of
  wrong types, of huge numbers, of another type's name, of the other organization's objects,
  garbage, empty), strings with NUL, lone UTF-16 surrogates (sent as the JSON escape "\\ud800")
  or 100,000 characters, integers and dates at and past their extremes, values of the wrong JSON
  type, unknown input fields;
- `hypothesis-graphql` documents for every root query and mutation, whose scalars are the same
  crafted values, some as literals in the document and some as variables.
Each runs as anonymous, a member, an admin, staff and a service token, one after another.
The subscription root's fields get theirs over a WebSocket (graphql-transport-ws), one socket per
principal (anonymous is refused at `connection_init`, so it sends none).

Whatever is sent, every answer must be: not a 5xx; no INTERNAL_SERVER_ERROR; no exception text
(no traceback, no SQL, no Python or driver exception names) in any message. After all of it the
server still answers `{ __typename }` and /healthz.

The principals' own accounts are kept out of the IDs drawn, so that no generated mutation (an
email change, a removal) ends the session the next requests use; `logout` runs last for each.

`CRAFTED_EXAMPLES` sets the examples per field, way and principal (default 6: about 2,300 requests,
under a minute on two cores; CRAFTED_EXAMPLES=500 for a long run); the seed is fixed, so a run
is repeatable.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import graphql
import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import mutations as graphql_mutations
from hypothesis_graphql import queries as graphql_queries

from auth import principals as tokens
from datasources.postgres import service_tokens
from tests.conftest import service_directory
from tests.test_fuzz import DASHBOARD, INVITATIONS, ids_in
from tests.test_serve import Served, login, start, stop
from tests.test_serve import graphql as post_graphql
from tests.test_staff import make_staff

EXAMPLES = int(os.environ.get("CRAFTED_EXAMPLES", "6"))
SEED = 20_261_414
TIMEOUT = 30
MEMBER, ADMIN, OTHER_ADMIN = "member1@northwind.example", "admin@northwind.example", "admin@globex.example"
STAFF = "crafted-staff@vendor.example"
PRINCIPALS = ("anonymous", "member", "admin", "staff", "service")
LAST = {"logout"}  # ends the session the principal's requests use
CURSORS = """
query Cursors { viewer { organization {
  members(first: 2) { edges { cursor } } invitations(first: 2) { edges { cursor } }
  auditLog(first: 2) { edges { cursor } } invoices(first: 2) { edges { cursor } }
  licenses { allocations(first: 2) { edges { cursor } } } } } }
"""
# What an answer must never show: the text of an exception the code did not expect.
LEAKS = re.compile(
    r"Traceback|File \"|asyncpg|psycopg|SQLSTATE|invalid input syntax|surrogates not allowed|codec can't"
    r"|\b(ValueError|TypeError|KeyError|IndexError|AttributeError|OverflowError|RecursionError|AssertionError"
    r"|UnicodeEncodeError|UnicodeDecodeError|ZeroDivisionError|DataError|PostgresError|CancelledError"
    r"|InvalidRequestError|StripeError)\b"
    r"|\bSELECT\b.*\bFROM\b|\bINSERT INTO\b|\bUPDATE\b.*\bSET\b|\bDELETE FROM\b")


# --- the crafted values ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """Real values read from the running gateway: both organizations' IDs, and cursors."""

    ids: tuple[str, ...]
    keys: tuple[str, ...]  # the object keys inside those IDs (uuids, provider ids)
    type_names: tuple[str, ...]
    cursors: tuple[str, ...]


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()


def b64_json(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


ODD_TEXT = ["", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "\ud83d", "é", "😀", "x" * 100_000, "'; --",
            "²", "%s", "{}", "null", "-1", "9" * 40]
ODD_INTS = [0, 1, -1, 2**31 - 1, -(2**31), 2**31, -(2**31) - 1, 2**53 + 1, 2**63, -(2**63) - 1, 10**40]
ODD_DAYS = ["0001-01-01", "9999-12-31", "1970-01-01", "1969-12-31", "9998-12-31", "2026-02-30", "2026-1-1",
            "20260101", "", "yesterday", "2026-05-01T00:00:00Z"]
ODD_MOMENTS = ["0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00", "9999-12-31T23:59:59-14:00",
               "9999-12-31T23:59:59.999999+00:00", "1970-01-01T00:00:00Z", "2026-05-01T12:00:00+23:59",
               "2026-05-01T12:00:00+24:00", "2026-05-01", "2026-05-01T25:00:00Z", "", "now"]
WRONG_JSON = st.sampled_from([[], {}, True, 1.5, [None], {"a": 1}])


def texts() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(ODD_TEXT), st.text(max_size=30),
                     st.text(st.characters(codec="utf-8", exclude_categories=()), max_size=10),
                     st.emails().map(str))


def ids(known: Known) -> st.SearchStrategy[Any]:
    key = st.one_of(st.sampled_from(known.keys), st.sampled_from(ODD_TEXT[:-1]),
                    st.integers().map(str), st.uuids().map(str))
    typed = st.builds(lambda t, k: b64(f"{t}:{k}"), st.sampled_from([*known.type_names, "Nope", ""]), key)
    return st.one_of(st.sampled_from(known.ids), typed, texts(), st.integers(min_value=-(2**70), max_value=2**70))


def cursors(known: Known) -> st.SearchStrategy[Any]:
    part = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
                     st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(ODD_TEXT[:-1]),
                     st.uuids().map(str), st.sampled_from(ODD_MOMENTS), st.just({}), st.just([]))
    return st.one_of(st.sampled_from(known.cursors), st.lists(part, max_size=3).map(b64_json),
                     st.sampled_from(["", "=", "!!!", b64("[1"), b64_json({"a": 1})]), texts())


def scalar_values(name: str, argument: str, known: Known) -> st.SearchStrategy[Any]:
    """Python values for a variable of scalar `name` (an argument called `argument`)."""
    if name == "String" and argument in ("after", "before"):
        values = cursors(known)
    elif name == "String":
        values = texts()
    elif name == "ID":
        values = ids(known)
    elif name == "Int":
        values = st.one_of(st.sampled_from(ODD_INTS), st.integers(min_value=-(2**31), max_value=2**31 - 1))
    elif name == "Float":
        values = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(ODD_INTS))
    elif name == "Boolean":
        values = st.booleans()
    elif name == "Date":
        values = st.one_of(st.sampled_from(ODD_DAYS), st.dates().map(lambda d: d.isoformat()))
    elif name == "DateTime":
        values = st.one_of(st.sampled_from(ODD_MOMENTS), st.datetimes().map(lambda d: d.isoformat()),
                           st.datetimes().map(lambda d: d.isoformat() + "Z"))
    else:
        raise AssertionError(f"scalar {name} has no crafted values: add them here")
    return st.one_of(*[values] * 9, WRONG_JSON)  # mostly of the right JSON type


def input_values(type_: graphql.GraphQLInputType, argument: str, known: Known) -> st.SearchStrategy[Any]:
    """Python values for a variable of any input type, nulls and unknown fields included."""
    nullable = not isinstance(type_, graphql.GraphQLNonNull)
    inner = graphql.get_nullable_type(type_)
    if isinstance(inner, graphql.GraphQLScalarType):
        values = scalar_values(inner.name, argument, known)
    elif isinstance(inner, graphql.GraphQLEnumType):
        values = st.one_of(st.sampled_from(list(inner.values)), st.sampled_from(["NOT_A_VALUE", "", "\ud800"]))
    elif isinstance(inner, graphql.GraphQLList):
        item = st.deferred(lambda: input_values(inner.of_type, argument, known))
        values = st.one_of(st.lists(item, max_size=4), item, st.lists(item, min_size=101, max_size=101))
    elif isinstance(inner, graphql.GraphQLInputObjectType):
        fields = {name: st.deferred(lambda f=f, n=name: input_values(f.type, n, known))
                  for name, f in inner.fields.items()}
        required = {n: s for n, s in fields.items() if isinstance(inner.fields[n].type, graphql.GraphQLNonNull)}
        optional = {n: s for n, s in fields.items() if n not in required}
        well_formed = st.fixed_dictionaries(required, optional=optional)
        values = st.one_of(*[well_formed] * 5, st.fixed_dictionaries({**required, "\ud800unknown": st.just(1)}),
                           st.fixed_dictionaries({**required, "unknown": st.just(1)}))
    else:
        raise AssertionError(f"input type {inner} is not handled")
    return st.one_of(st.none(), values) if nullable else values


# --- where arguments are: every field that takes them, and how to reach it -----------------------------


@dataclass(frozen=True)
class Target:
    operation: str  # "query", "mutation" or "subscription"
    path: tuple[str, ...]  # fields from the root down to the parent of `field` (no arguments needed)
    owner: str  # the type that holds the field
    field: str

    @property
    def label(self) -> str:
        return f"{self.owner}.{self.field}"


def leaf_selection(type_: graphql.GraphQLOutputType) -> str:
    return "" if graphql.is_leaf_type(graphql.get_named_type(type_)) else " { __typename }"


def targets(schema: graphql.GraphQLSchema) -> list[Target]:
    """Every field with arguments reachable from a root through fields that need none (breadth first)."""
    found: dict[str, Target] = {}
    roots = (("query", schema.query_type), ("mutation", schema.mutation_type),
             ("subscription", schema.subscription_type))
    for operation, root in roots:
        queue: list[tuple[graphql.GraphQLObjectType, tuple[str, ...]]] = [(root, ())]
        seen = {root.name}
        while queue:
            owner, path = queue.pop(0)
            for name, f in owner.fields.items():
                if f.args and f"{owner.name}.{name}" not in found:
                    found[f"{owner.name}.{name}"] = Target(operation, path, owner.name, name)
                child = graphql.get_named_type(f.type)
                if (operation == "query" and isinstance(child, graphql.GraphQLObjectType) and child.name not in seen
                        and not any(graphql.is_non_null_type(a.type) for a in f.args.values())):
                    seen.add(child.name)
                    queue.append((child, (*path, name)))
    return list(found.values())


def document_for(schema: graphql.GraphQLSchema, target: Target) -> tuple[str, dict[str, graphql.GraphQLInputType]]:
    owner = schema.get_type(target.owner)
    f = owner.fields[target.field]
    variables = {f"a_{name}": arg.type for name, arg in f.args.items()}
    definitions = ", ".join(f"${v}: {t}" for v, t in variables.items())
    call = f"{target.field}({', '.join(f'{name}: $a_{name}' for name in f.args)}){leaf_selection(f.type)}"
    for step in reversed(target.path):
        call = f"{step} {{ {call} }}"
    return f"{target.operation} Crafted({definitions}) {{ {call} }}", variables


# --- hypothesis-graphql documents whose scalars carry the same values, some as variables -------------------


# Values of the variables hypothesis-graphql's documents hold, by the variable's (unique) name.
CRAFTED_VARIABLES: dict[str, tuple[str, Any]] = {}


def crafted_scalar(name: str, known: Known) -> st.SearchStrategy[graphql.ValueNode]:
    def variable(value: Any) -> graphql.VariableNode:
        key = f"v{len(CRAFTED_VARIABLES)}"
        CRAFTED_VARIABLES[key] = (name, value)
        return graphql.VariableNode(name=graphql.NameNode(value=key))

    # A lone surrogate in a literal makes a document that does not parse: a case worth sending too.
    literal = scalar_values(name, "", known).filter(lambda v: isinstance(v, (str, int)) and not isinstance(v, bool)).map(
        lambda v: graphql.IntValueNode(value=str(v)) if isinstance(v, int) else graphql.StringValueNode(value=v))
    return st.one_of(literal, scalar_values(name, "", known).map(variable))


def with_variables(document: graphql.DocumentNode) -> tuple[str, dict[str, Any]]:
    """The document with its crafted variables declared, and their values."""
    used: dict[str, None] = {}

    class Finder(graphql.Visitor):
        def enter_variable(self, node: graphql.VariableNode, *_: Any) -> None:
            used.setdefault(node.name.value)

    graphql.visit(document, Finder())
    [operation] = document.definitions
    definitions = tuple(  # a non-null variable fits a nullable position too
        graphql.VariableDefinitionNode(variable=graphql.VariableNode(name=graphql.NameNode(value=name)),
                                       type=graphql.NonNullTypeNode(type=graphql.NamedTypeNode(
                                           name=graphql.NameNode(value=CRAFTED_VARIABLES[name][0]))))
        for name in used)
    operation = dataclasses.replace(operation, variable_definitions=definitions)
    document = dataclasses.replace(document, definitions=(operation,))
    return graphql.print_ast(document), {name: CRAFTED_VARIABLES.pop(name)[1] for name in used}


# --- the run -----------------------------------------------------------------------------------------


@dataclass
class Crafted:
    served: Served
    schema: graphql.GraphQLSchema
    known: Known
    tokens: dict[str, str | None]
    findings: dict[str, list[str]] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    answers: dict[str, Counter[str]] = field(default_factory=dict)  # per principal: "executed", error codes


def problems(response: httpx.Response) -> list[str]:
    found = [f"status {response.status_code}"] if response.status_code >= 500 else []
    try:
        body = response.json()
    except ValueError:
        return [*found, f"not JSON: {response.text[:200]!r}"]
    for error in body.get("errors") or [] if isinstance(body, dict) else []:
        message = str(error.get("message"))
        if (error.get("extensions") or {}).get("code") == "INTERNAL_SERVER_ERROR":
            found.append(f"INTERNAL_SERVER_ERROR at {error.get('path')}: {message[:200]}")
        if leak := LEAKS.search(message):
            found.append(f"exception text {leak.group(0)!r} in: {message[:300]}")
    return found


def outcomes(response: httpx.Response) -> list[str]:
    try:
        body = response.json()
    except ValueError:
        return ["not JSON"]
    found = ["executed"] if isinstance(body, dict) and "data" in body else []
    for error in body.get("errors") or [] if isinstance(body, dict) else []:
        found.append(str((error.get("extensions") or {}).get("code")))
    return found


def send(crafted: Crafted, http: httpx.Client, principal: str, label: str, query: str,
         variables: dict[str, Any]) -> None:
    token = crafted.tokens[principal]
    headers = {"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})}
    # json.dumps keeps a lone surrogate as the escape "\ud800", as a client's encoder would send it.
    body = json.dumps({"query": query, "variables": variables, "operationName": None}).encode()
    crafted.sent[principal] = crafted.sent.get(principal, 0) + 1
    try:
        response = http.post("/graphql", content=body, headers=headers)
    except httpx.TransportError as exc:  # an answer that broke off: the server may be gone
        assert crafted.served.process.poll() is None, f"the server died at {label}: {body[:600]!r}"
        found = [f"no answer: {exc!r}"]
    else:
        crafted.answers.setdefault(principal, Counter()).update(outcomes(response))
        found = problems(response)
    for problem in found:
        shown = json.dumps(variables)[:400]
        crafted.findings.setdefault(principal, []).append(
            f"{label}: {problem}\n    query: {query[:3000]}\n    variables: {shown}")


def phase(operation: str, field_name: str) -> int:
    """Queries, then mutations, then what ends the principal's session."""
    return 2 if field_name in LAST else int(operation == "mutation")


def run_targets(crafted: Crafted, principal: str, step: int) -> None:
    with httpx.Client(base_url=crafted.served.url, timeout=TIMEOUT) as http, Socket(crafted, principal) as socket:
        for target in (t for t in targets(crafted.schema) if phase(t.operation, t.field) == step):
            if target.operation == "subscription" and crafted.tokens[principal] is None:
                continue  # anonymous: refused at connection_init (tests/test_live_events.py)
            query, variables = document_for(crafted.schema, target)
            strategy = st.fixed_dictionaries({v: input_values(t, v.removeprefix("a_"), crafted.known)
                                              for v, t in variables.items()})

            @seed(SEED)
            @settings(max_examples=EXAMPLES, database=None, deadline=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck), print_blob=False)
            @given(values=strategy)
            def one(values: dict[str, Any]) -> None:
                if target.operation == "subscription":
                    socket.send(target.label, query, values)
                else:
                    send(crafted, http, principal, target.label, query, values)

            one()


# How long a crafted subscription is given to answer: a refusal comes at once; silence means it
# is running (waiting for events), and it is completed.
SUBSCRIBED_SECONDS = 0.3


class Socket:
    """One principal's WebSocket for the subscription targets, opened on first use."""

    def __init__(self, crafted: Crafted, principal: str) -> None:
        self.crafted, self.principal = crafted, principal
        self.connection: ClientConnection | None = None
        self.opened = contextlib.ExitStack()  # websockets wants connect() used as a context manager
        self.ids = 0

    def __enter__(self) -> "Socket":
        return self

    def __exit__(self, *_: object) -> None:
        self.opened.close()

    def _open(self) -> ClientConnection:
        if self.connection is None:
            url = self.crafted.served.url.replace("http://", "ws://") + "/graphql"
            self.connection = self.opened.enter_context(
                connect(url, subprotocols=["graphql-transport-ws"], open_timeout=TIMEOUT))
            token = self.crafted.tokens[self.principal]
            self.connection.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
            assert json.loads(self.connection.recv(TIMEOUT))["type"] == "connection_ack"
        return self.connection

    def send(self, label: str, query: str, variables: dict[str, Any]) -> None:
        crafted, principal = self.crafted, self.principal
        crafted.sent[principal] = crafted.sent.get(principal, 0) + 1
        self.ids += 1
        sub = str(self.ids)
        connection = self._open()
        found: list[str] = []
        try:
            # json.dumps keeps a lone surrogate as the escape "\ud800", as a client's encoder would send it.
            connection.send(json.dumps({"id": sub, "type": "subscribe",
                                        "payload": {"query": query, "variables": variables}}))
            try:
                message = json.loads(connection.recv(SUBSCRIBED_SECONDS))
            except TimeoutError:  # running: waiting for events
                crafted.answers.setdefault(principal, Counter()).update(["executed"])
                connection.send(json.dumps({"id": sub, "type": "complete"}))
            else:
                errors = message.get("payload") if message.get("type") == "error" else \
                    (message.get("payload") or {}).get("errors") or []
                codes = [str((e.get("extensions") or {}).get("code")) for e in errors]
                crafted.answers.setdefault(principal, Counter()).update(
                    ["executed"] if message.get("type") == "next" else codes)
                for error in errors:
                    message_text = str(error.get("message"))
                    if (error.get("extensions") or {}).get("code") == "INTERNAL_SERVER_ERROR":
                        found.append(f"INTERNAL_SERVER_ERROR: {message_text[:200]}")
                    if leak := LEAKS.search(message_text):
                        found.append(f"exception text {leak.group(0)!r} in: {message_text[:300]}")
        except ConnectionClosed as closed:
            self.connection = None  # a crafted subscription never closes the socket
            found.append(f"socket closed: {closed.rcvd.code if closed.rcvd else None} "
                         f"{closed.rcvd.reason if closed.rcvd else ''}")
        for problem in found:
            crafted.findings.setdefault(principal, []).append(
                f"{label}: {problem}\n    query: {query[:3000]}\n    variables: {json.dumps(variables)[:400]}")


def run_documents(crafted: Crafted, principal: str, step: int) -> None:
    scalars = {name: crafted_scalar(name, crafted.known)
               for name in ("String", "ID", "Int", "Date", "DateTime")}
    roots = [("query", name) for name in crafted.schema.query_type.fields] + \
            [("mutation", name) for name in crafted.schema.mutation_type.fields]
    with httpx.Client(base_url=crafted.served.url, timeout=TIMEOUT) as http:
        for operation, name in (r for r in roots if phase(*r) == step):
            make = graphql_queries if operation == "query" else graphql_mutations
            strategy = make(crafted.schema, fields=[name], custom_scalars=scalars, print_ast=lambda doc: doc)

            @seed(SEED)
            @settings(max_examples=EXAMPLES, database=None, deadline=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck), print_blob=False)
            @given(document=strategy)
            def one(document: graphql.DocumentNode) -> None:
                query, variables = with_variables(document)
                send(crafted, http, principal, f"{operation} {name}", query, variables)

            one()


# --- the server and its principals --------------------------------------------------------------------


async def add_staff_and_service(served: Served) -> str:
    """A staff account (ADMIN_TOOLING) and a service token with every scope, as the CLI makes them."""
    conn = await asyncpg.connect(f"postgresql://postgres@/account_gateway?host={served.data_dir / 'postgres'}")
    try:
        await make_staff(conn, "ADMIN_TOOLING", STAFF)
        token = tokens.new_service_token()
        await service_tokens.create(conn, name="crafted-inputs", scopes=tokens.SCOPES,
                                    token_hash=tokens.hash_service_token(token))
        return token
    finally:
        await conn.close()


def read_known(served: Served, principal_tokens: dict[str, str | None], schema: graphql.GraphQLSchema) -> Known:
    """Both organizations' IDs and cursors, without the principals' own accounts (see the docstring)."""
    found: dict[str, None] = {}
    cursors: dict[str, None] = {}
    for token in (principal_tokens["admin"], login(served, OTHER_ADMIN)):
        for query in (DASHBOARD.read_text(), INVITATIONS):
            body = post_graphql(served, query, token=token)
            assert "errors" not in body, body
            ids_in(body["data"], found)
        body = post_graphql(served, CURSORS, token=token)
        for cursor in re.findall(r'"cursor": "([^"]+)"', json.dumps(body["data"])):
            cursors.setdefault(cursor)
    own = {post_graphql(served, "{ viewer { id } }", token=principal_tokens[p])["data"]["viewer"]["id"]
           for p in ("member", "admin")}
    own_keys = {base64.b64decode(i).decode().partition(":")[2] for i in own}
    keys = {base64.b64decode(i).decode().partition(":")[2]: i for i in found}
    kept = [i for k, i in keys.items() if not any(o in k for o in own_keys)]
    names = sorted(t.name for t in schema.type_map.values()
                   if isinstance(t, graphql.GraphQLObjectType) and "Node" in {i.name for i in t.interfaces})
    return Known(tuple(kept), tuple(k for k in keys if not any(o in k for o in own_keys)), tuple(names),
                 tuple(cursors))


@pytest.fixture(scope="module")
def crafted() -> Iterator[Crafted]:
    with service_directory("crafted") as root:
        served = start(root / "data", root / "serve.log")
        try:
            service = asyncio.run(add_staff_and_service(served))
            # Signed in before any generated `login` fills the address' sign-in throttle.
            principal_tokens: dict[str, str | None] = {
                "anonymous": None, "member": login(served, MEMBER), "admin": login(served, ADMIN),
                "staff": login(served, STAFF), "service": service}
            introspection = post_graphql(served, graphql.get_introspection_query(descriptions=False))
            schema = graphql.build_client_schema(introspection["data"])
            yield Crafted(served, schema, read_known(served, principal_tokens, schema), principal_tokens)
        finally:
            if served.process.poll() is None:
                stop(served)


def test_every_argument_is_reached(crafted: Crafted) -> None:
    """Each field that takes arguments is a target, except where none reaches it without an ID."""
    reached = {t.label for t in targets(crafted.schema)}
    with_arguments = {f"{t.name}.{n}" for t in crafted.schema.type_map.values()
                      if isinstance(t, graphql.GraphQLObjectType) and not t.name.startswith("__")
                      for n, f in t.fields.items() if f.args}
    assert with_arguments - reached == set(), "fields with arguments no target reaches"
    assert {"Query.node", "Query.nodes", "Mutation.login", "Organization.invoicesArchiveUrl",
            "Staff.creditUsage", "License.allocations", "SubscriptionRoot.organizationEvents"} <= reached


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_crafted_input_never_fails_the_server(crafted: Crafted, principal: str) -> None:
    started = time.monotonic()
    token = crafted.tokens[principal]
    if token is not None:  # the run is really this principal's
        me = post_graphql(crafted.served, "{ staff { role scopes } viewer { id } }", token=token)
        assert me["data"]["staff"] is not None or me["data"]["viewer"] is not None, me
    for step in range(3):
        run_targets(crafted, principal, step)
        run_documents(crafted, principal, step)
    findings = crafted.findings.get(principal, [])
    answers = crafted.answers.get(principal, Counter())
    sent = crafted.sent.get(principal, 0)
    print(f"\n{principal}: {sent} requests in {time.monotonic() - started:.1f} s; answers: {dict(answers.most_common())}")
    # Crafted values that only ever bounced off the request's own checks would test those alone.
    assert answers["executed"] >= sent // 3, answers
    log = "\n".join(line for line in crafted.served.output().splitlines() if not line.startswith("INFO:"))
    assert findings == [], (f"{len(findings)} finding(s) as {principal}:\n" + "\n".join(findings[:30])
                            + "\n\nserver log (tail):\n" + log[-3000:])


def test_the_server_is_alive_after(crafted: Crafted) -> None:
    served = crafted.served
    assert served.process.poll() is None, served.output()[-3000:]
    body = post_graphql(served, "{ __typename }")
    assert body["data"] == {"__typename": "Query"} and "errors" not in body, body
    assert httpx.get(f"{served.url}/healthz", timeout=10).status_code == 200
