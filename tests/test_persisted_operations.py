"""Persisted operations: the hash of a registered operation instead of its text (Apollo's shape)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from graphql import OperationDefinitionNode, OperationType, parse, print_ast, validate

from strawberry import relay

from datasources.payments.client import PaymentsClient
from gateway import persisted
from gateway.app import EMULATOR_API_KEY
from schema.documents import parse_cache_info
from gateway.persisted import OperationRegistry
from gateway.printed import printed_forms, stable_print
from gateway.settings import DEFAULT_OPERATIONS_DIR, SettingsError, from_env
from schema import build_schema
from tests.conftest import LOGIN
from tests.test_billing_mutations import make_customer
from tests.test_serve import clean_env, command, free_port, start, stop

GRAPHQL_RESPONSE = "application/graphql-response+json"
OPERATIONS = Path(__file__).resolve().parents[1] / "operations"
NOT_FOUND = {"errors": [{"message": "PersistedQueryNotFound",
                         "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]}


def text_of(name: str) -> str:
    return (OPERATIONS / name).read_bytes().decode("utf-8")  # the exact text, as the registry hashes it


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def persisted_query(digest: str) -> dict:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


async def post_hash(gateway, digest: str, variables: dict | None = None, *, query: str | None = None,
                    token: str | None = None, accept: str = "application/json", operation_name: str | None = None):
    body: dict = {"extensions": persisted_query(digest)}
    if query is not None:
        body["query"] = query
    if variables is not None:
        body["variables"] = variables
    if operation_name is not None:
        body["operationName"] = operation_name
    headers = {"accept": accept, **({"authorization": f"Bearer {token}"} if token else {})}
    return await gateway.http.post("/graphql", json=body, headers=headers)


async def get_hash(gateway, digest: str, variables: dict | None = None, *, token: str | None = None,
                   accept: str = "application/json"):
    params = {"extensions": json.dumps(persisted_query(digest))}
    if variables is not None:
        params["variables"] = json.dumps(variables)
    headers = {"accept": accept, **({"authorization": f"Bearer {token}"} if token else {})}
    return await gateway.http.get("/graphql", params=params, headers=headers)


# The registry


def test_the_registry_holds_every_operation_file_by_its_printed_forms_and_exact_text():
    registry = OperationRegistry.from_directory(OPERATIONS)
    files = sorted(OPERATIONS.glob("*.graphql"))
    expected = {}
    for file in files:
        text = file.read_bytes().decode("utf-8")
        forms = {text, *printed_forms(parse(text))}
        assert stable_print(parse(text)) in forms and print_ast(parse(text)) in forms
        expected.update({sha(form): (form, file.name) for form in forms})
    assert registry.hashes() == sorted(expected) and len(registry) == len(expected) >= 3 * len(files)
    for digest, (text, name) in expected.items():
        assert registry.get(digest) == text  # a hash runs the very text it is the hash of
        assert registry.get(digest.upper()) == registry.get(f"sha256:{digest}") == text
        assert registry.file(digest) == name
        assert registry.is_registered(digest)
    assert registry.form(sha(text_of("dashboard.graphql"))) == "file"
    assert registry.get("0" * 64) is None


def test_reformatting_an_operation_keeps_its_printed_hashes_and_reordering_its_stable_one():
    """Comments and layout change the file's bytes, not what a client tool hashes; field order
    changes graphql-js `print` but not graphql-codegen's stable print."""
    text = text_of("payInvoice.graphql")
    reformatted = "# another comment\n" + text.replace("    paymentPending\n", "    paymentPending,\n\n")
    reordered = text.replace("    paymentPending\n    declineReason\n", "    declineReason\n    paymentPending\n")
    assert len({text, reformatted, reordered}) == 3
    original, *changed = (set(OperationRegistry.from_texts({"op.graphql": t}).hashes())
                          for t in (text, reformatted, reordered))
    assert original - changed[0] == {sha(text)}
    assert original & changed[1] == {sha(stable_print(parse(text)))}


def test_a_missing_directory_registers_nothing(tmp_path):
    registry = OperationRegistry.from_directory(tmp_path / "absent")
    assert len(registry) == 0 and registry.hashes() == []


def test_learned_operations_are_bounded_least_recently_used_first():
    registry = OperationRegistry(learned_capacity=2)
    a, b, c = "{ a }", "{ b }", "{ c }"
    for text in (a, b):
        assert registry.learn(sha(text), text)
    assert registry.get(sha(a)) == a  # a is now the most recently used
    registry.learn(sha(c), c)
    assert registry.learned_count() == 2
    assert registry.get(sha(b)) is None
    assert registry.get(sha(a)) == a and registry.get(sha(c)) == c
    assert sha(a) not in registry.hashes()  # learned, never registered


def test_the_cli_prints_hash_file_and_form(capsys):
    assert persisted.main([str(OPERATIONS)]) == 0
    lines = capsys.readouterr().out.splitlines()
    dashboard = sha(text_of("dashboard.graphql"))
    assert f"{dashboard} {OPERATIONS / 'dashboard.graphql'} file" in lines
    codegen = sha(stable_print(parse(text_of("login.graphql"))))
    assert f"{codegen} {OPERATIONS / 'login.graphql'} graphql-js 17 stable print (graphql-codegen)" in lines
    assert len(lines) == len(OperationRegistry.from_directory(OPERATIONS))


def test_settings_read_from_the_environment(tmp_path):
    assert from_env({}).persisted_operations_only is False
    assert from_env({}).operations_dir == DEFAULT_OPERATIONS_DIR
    for raw, expected in (("1", True), ("true", True), ("TRUE", True), ("0", False), ("false", False)):
        assert from_env({"PERSISTED_OPERATIONS_ONLY": raw}).persisted_operations_only is expected
    assert from_env({"OPERATIONS_DIR": str(tmp_path)}).operations_dir == tmp_path
    assert from_env({}).persisted_operations_manifest is None
    manifest = tmp_path / "pd.json"
    manifest.write_text("{}")
    assert from_env({"PERSISTED_OPERATIONS_MANIFEST": str(manifest)}).persisted_operations_manifest == manifest


# Over HTTP


async def test_the_dashboards_hash_answers_like_its_text(gateway):
    token = await gateway.login("admin@northwind.example")
    text = text_of("dashboard.graphql")
    for _ in range(2):  # the first requests do extra SQL of their own: new pool connections, the billing mirror filled
        await gateway.post(text, token=token)
    by_text = (await gateway.post(text, token=token)).json()
    response = await post_hash(gateway, sha(text), token=token)
    assert response.status_code == 200
    by_hash = response.json()
    assert "errors" not in by_hash, by_hash["errors"]
    assert by_hash["data"] == by_text["data"]
    assert by_hash["data"]["viewer"]["organization"]["name"] == "Northwind Studio"
    assert by_hash["extensions"]["io"] == by_text["extensions"]["io"]
    assert by_hash["extensions"]["cost"]["requested"] == by_text["extensions"]["cost"]["requested"]


async def test_a_hash_hits_the_parse_cache_of_its_text(gateway):
    token = await gateway.login("admin@northwind.example")
    text = text_of("licenses.graphql")
    await gateway.post(text, token=token)
    before = parse_cache_info()
    response = await post_hash(gateway, sha(text), token=token)
    assert "errors" not in response.json()
    after = parse_cache_info()
    assert after.misses == before.misses and after.hits > before.hits


async def test_a_query_by_hash_over_get_with_variables(gateway):
    token = await gateway.login("admin@northwind.example")
    response = await get_hash(gateway, sha(text_of("members.graphql")), {"first": 2}, token=token)
    assert response.status_code == 200, response.text
    members = response.json()["data"]["viewer"]["organization"]["members"]
    assert len(members["edges"]) == 2
    assert members["pageInfo"]["hasNextPage"] is True


async def test_a_hash_over_get_is_not_mistaken_for_a_browser_asking_for_graphiql(gateway):
    response = await get_hash(gateway, sha(text_of("downloads.graphql")), accept="text/html, application/json")
    assert response.headers["content-type"].startswith("application/json")


async def test_an_unknown_hash_is_persisted_query_not_found(gateway):
    response = await post_hash(gateway, "0" * 64)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == NOT_FOUND
    over_get = await get_hash(gateway, "f" * 64)
    assert over_get.status_code == 200 and over_get.json() == NOT_FOUND
    # graphql-response+json may not answer 2xx without data: 404, as the Apollo Router does.
    strict = await post_hash(gateway, "0" * 64, accept=GRAPHQL_RESPONSE)
    assert strict.status_code == 404
    assert strict.json() == NOT_FOUND


@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE])
async def test_a_hash_that_is_not_the_texts_is_400(gateway, accept):
    response = await post_hash(gateway, sha("{ __typename }"), query="{ support { helpCenterUrl } }", accept=accept)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["message"] == "provided sha does not match query"
    assert "data" not in response.json()


@pytest.mark.parametrize("extensions,message", [
    ({"persistedQuery": {"version": 2, "sha256Hash": "0" * 64}}, "Unsupported persisted query version"),
    ({"persistedQuery": {"version": 1}}, "sha256Hash"),
    ({"persistedQuery": {"version": 1, "sha256Hash": 42}}, "sha256Hash"),
    ({"persistedQuery": "abc"}, "must be a JSON object"),
    ({"other": 1}, "'query' must be a non-empty string"),
])
@pytest.mark.reads_only  # refused before anything is written
async def test_malformed_persisted_query_extensions_are_400(gateway, extensions, message):
    response = await gateway.http.post("/graphql", json={"extensions": extensions})
    assert response.status_code == 400
    assert message in response.json()["errors"][0]["message"]


async def test_development_learns_a_client_registered_operation(gateway):
    query = "query Help { support { helpCenterUrl } }"
    digest = sha(query)
    assert (await post_hash(gateway, digest)).json() == NOT_FOUND
    registered = await post_hash(gateway, digest, query=query)  # what Apollo's link sends next
    assert registered.status_code == 200
    assert registered.json()["data"]["support"]["helpCenterUrl"].startswith("https://")
    by_hash = await post_hash(gateway, digest)
    assert by_hash.json()["data"] == registered.json()["data"]
    assert (await get_hash(gateway, digest)).json()["data"] == registered.json()["data"]


async def test_development_does_not_learn_a_document_that_does_not_validate(gateway):
    query = "{ nope }"
    response = await post_hash(gateway, sha(query), query=query)
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert (await post_hash(gateway, sha(query))).json() == NOT_FOUND


async def test_production_runs_registered_hashes_but_learns_nothing_from_clients(app_for, settings):
    gateway = await app_for(settings.with_(env="production"))
    query = "query Help { support { helpCenterUrl } }"
    sent = await post_hash(gateway, sha(query), query=query)
    assert sent.status_code == 200 and sent.json()["data"]["support"]["helpCenterUrl"]
    assert (await post_hash(gateway, sha(query))).json() == NOT_FOUND
    mismatch = await post_hash(gateway, sha("{ __typename }"), query=query)
    assert mismatch.status_code == 400
    token = await gateway.login("admin@northwind.example")
    dashboard = await post_hash(gateway, sha(text_of("dashboard.graphql")), token=token)
    assert "errors" not in dashboard.json()
    assert dashboard.json()["data"]["viewer"]["organization"]["name"] == "Northwind Studio"


@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE])
async def test_persisted_operations_only_refuses_other_text(app_for, settings, accept):
    strict = await app_for(settings.with_(persisted_operations_only=True))
    for query in ("{ __typename }", "mutation { logout { success } }"):
        response = await strict.post(query, accept=accept)
        assert response.status_code == 400
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
    # Nor may a client register its own text, even with the right hash; nothing is learned.
    query = "query Help { support { helpCenterUrl } }"
    refused = await post_hash(strict, sha(query), query=query, accept=accept)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
    assert (await post_hash(strict, sha(query))).json() == NOT_FOUND


async def test_persisted_operations_only_runs_registered_text_and_hashes(app_for, settings):
    open_gateway = await app_for(settings)  # logs in: the login mutation is not registered here
    token = await open_gateway.login("admin@northwind.example")
    strict = await app_for(settings.with_(persisted_operations_only=True))
    text = text_of("subscriptions.graphql")
    by_text = await strict.post(text, token=token)
    assert by_text.status_code == 200, by_text.text
    assert "errors" not in by_text.json()
    by_hash = await post_hash(strict, sha(text), token=token)
    assert by_hash.json()["data"] == by_text.json()["data"]
    both = await post_hash(strict, sha(text), query=text, token=token)
    assert both.json()["data"] == by_text.json()["data"]
    over_get = await get_hash(strict, sha(text_of("members.graphql")), {"first": 1}, token=token)
    assert len(over_get.json()["data"]["viewer"]["organization"]["members"]["edges"]) == 1


async def test_a_registered_mutation_still_needs_post(app_for, settings, tmp_path):
    operations = tmp_path / "operations"
    operations.mkdir()
    mutation = "mutation Touch { __typename }\n"
    (operations / "touch.graphql").write_text(mutation)
    gateway = await app_for(settings.with_(operations_dir=operations, persisted_operations_only=True))
    over_get = await get_hash(gateway, sha(mutation), accept=GRAPHQL_RESPONSE)
    assert over_get.status_code == 405
    assert over_get.headers["allow"] == "POST"
    over_post = await post_hash(gateway, sha(mutation))
    assert over_post.json()["data"] == {"__typename": "Mutation"}


# operations/: every operation the portal sends


def operation_files() -> list[Path]:
    return sorted(OPERATIONS.glob("*.graphql"))


def readme_mutations() -> set[str]:
    """The mutations of the README's table under "Changing things: mutations"."""
    readme = (OPERATIONS.parent / "README.md").read_text()
    table = readme.split("| area | mutations |", 1)[1].split("\n\n", 1)[0]
    return {name for row in table.splitlines()[2:] for name in re.findall(r"`(\w+)`", row.split("|")[2])}


@pytest.mark.parametrize("file", operation_files(), ids=lambda f: f.name)
def test_each_operation_is_one_named_operation_that_validates_against_the_schema(file):
    document = parse(file.read_text())
    [operation] = document.definitions
    assert isinstance(operation, OperationDefinitionNode) and operation.name is not None
    assert operation.name.value.lower().startswith(file.stem.lower().replace("_", "")), \
        "named for what it does, as its file"
    assert validate(build_schema(production=True)._schema, document) == []


def test_operations_hold_every_mutation_the_portal_sends():
    sent = set()
    for file in operation_files():
        [operation] = parse(file.read_text()).definitions
        if operation.operation == OperationType.MUTATION:
            sent |= {field.name.value for field in operation.selection_set.selections}
    assert {"login", "refreshToken", "logout", "acceptInvitation"} <= readme_mutations()
    assert len(readme_mutations()) >= 22
    assert readme_mutations() - sent == set()


# The manifest client tooling writes


def codegen_manifest(path: Path, texts: list[str], *, prefix: str = "sha256:") -> Path:
    """graphql-codegen's client preset `persisted-documents.json`: {"sha256:<hex>": stable print}."""
    documents = {stable_print(parse(text)) for text in texts}
    path.write_text(json.dumps({f"{prefix}{sha(d)}": d for d in documents}, indent=2))
    return path


def test_a_codegen_manifest_registers_its_keys_as_they_are(tmp_path):
    texts = ["query Help { support { helpCenterUrl } }", text_of("login.graphql")]
    manifest = codegen_manifest(tmp_path / "persisted-documents.json", texts)
    registry = OperationRegistry.load(tmp_path / "no-operations-dir", manifest)
    for key, document in json.loads(manifest.read_text()).items():
        assert registry.get(key) == registry.get(key.removeprefix("sha256:")) == document
        assert registry.file(key) == str(manifest) and registry.form(key) == "manifest"
    assert len(registry) == 2
    bare = codegen_manifest(tmp_path / "bare.json", texts, prefix="")  # codegen before 6, hashAlgorithm sha256
    assert OperationRegistry.load(tmp_path, bare).hashes() == registry.hashes()


def test_an_apollo_manifest_registers_its_operations(tmp_path):
    body = "query Help {\n  support {\n    helpCenterUrl\n    __typename\n  }\n}"
    manifest = tmp_path / "persisted-query-manifest.json"
    manifest.write_text(json.dumps({"format": "apollo-persisted-query-manifest", "version": 1, "operations": [
        {"id": sha(body), "name": "Help", "type": "query", "body": body}]}))
    registry = OperationRegistry.load(OPERATIONS, manifest)
    assert registry.get(sha(body)) == body
    assert len(registry) == len(OperationRegistry.from_directory(OPERATIONS)) + 1


@pytest.mark.parametrize("content,message", [
    (None, "cannot read it: No such file or directory"),
    ("{not json", "not JSON"),
    ('["query A { a }"]', "expected an object of hash to document"),
    (json.dumps({sha("query { a "): "query { a "}), "does not parse: Syntax Error: Expected Name, found <EOF>."),
    (json.dumps({"sha256:" + sha("{ b }"): "{ a }"}), "is not the SHA-256 of its document"),
    (json.dumps({hashlib.sha1(b"{ a }").hexdigest(): "{ a }"}), "set persistedDocuments.hashAlgorithm to 'sha256'"),
    (json.dumps({sha("{ a }"): 42}), "every hash and document must be a string"),
    (json.dumps({"format": "apollo-persisted-query-manifest", "operations": {}}), "'operations' must be a list"),
])
def test_a_bad_manifest_is_one_line_naming_the_setting(tmp_path, content, message):
    manifest = tmp_path / "persisted-documents.json"
    if content is not None:
        manifest.write_text(content)
    with pytest.raises(SettingsError) as refused:
        OperationRegistry.load(OPERATIONS, manifest)
    line = str(refused.value)
    assert line.startswith(f"PERSISTED_OPERATIONS_MANIFEST {manifest}: ") and message in line
    assert "\n" not in line


def test_an_operation_file_that_does_not_parse_is_one_line(tmp_path):
    (tmp_path / "broken.graphql").write_text("query Broken {\n  viewer {\n")
    with pytest.raises(SettingsError) as refused:
        OperationRegistry.from_directory(tmp_path)
    assert str(refused.value) == (f"OPERATIONS_DIR {tmp_path}: broken.graphql does not parse: "
                                  "Syntax Error: Expected Name, found <EOF>. (line 3, column 1)")


# Allowlist mode as a client built with graphql-codegen uses it


def codegen_hash(name: str) -> str:
    """What graphql-codegen 6's client preset sends for an operation file (tests/test_printed_forms.py
    checks stable_print against the real tool)."""
    return "sha256:" + sha(stable_print(parse(text_of(name))))


async def test_a_manifest_alone_feeds_allowlist_mode(app_for, settings, tmp_path):
    manifest = codegen_manifest(tmp_path / "persisted-documents.json",
                                [text_of("login.graphql"), text_of("account.graphql")])
    empty = tmp_path / "operations"
    empty.mkdir()
    strict = await app_for(settings.with_(persisted_operations_only=True, operations_dir=empty,
                                          persisted_operations_manifest=manifest))
    signed_in = await post_hash(strict, codegen_hash("login.graphql"),
                                {"input": {"email": "admin@northwind.example", "password": "demo-password"}})
    token = signed_in.json()["data"]["login"]["token"]
    account = await post_hash(strict, codegen_hash("account.graphql"), token=token)
    assert account.json()["data"]["viewer"]["email"] == "admin@northwind.example"
    # Only what the manifest lists: the folder's operations are not registered here.
    assert (await post_hash(strict, codegen_hash("dashboard.graphql"), token=token)).json() == NOT_FOUND
    refused = await strict.post(text_of("dashboard.graphql"), token=token)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"


@pytest.fixture
async def provider(services) -> AsyncIterator[PaymentsClient]:
    client = PaymentsClient(EMULATOR_API_KEY, api_base=services.stripe_api_base, timeout_seconds=5)
    yield client
    await client.close()


async def test_allowlist_mode_on_serve_signs_in_reads_the_dashboard_and_pays_an_invoice_by_hash(
        services, database_url, db, provider, tmp_path):
    """The real `serve` with PERSISTED_OPERATIONS_ONLY=1, used as a codegen-built portal uses it:
    hashes only, never text. Northwind's provider customer is this test's own (nothing shared is paid)."""
    fresh = await make_customer(provider, db)
    served = start(tmp_path / "data", tmp_path / "serve.log", {
        "DATABASE_URL": database_url, "STRIPE_API_BASE": services.stripe_api_base, "PERSISTED_OPERATIONS_ONLY": "1"})

    def by_hash(name: str, variables: dict | None = None, token: str | None = None) -> dict:
        response = httpx.post(f"{served.url}/graphql", timeout=30, headers={
            "accept": GRAPHQL_RESPONSE, **({"authorization": f"Bearer {token}"} if token else {})}, json={
            "extensions": persisted_query(codegen_hash(name)), "variables": variables or {}})
        assert response.status_code == 200, response.text
        assert "errors" not in response.json(), response.text
        return response.json()["data"]

    try:
        signed_in = by_hash("login.graphql", {"input": {"email": "admin@northwind.example",
                                                         "password": "demo-password"}})["login"]
        assert signed_in["userErrors"] == [] and signed_in["refreshToken"]
        token = signed_in["token"]
        organization = by_hash("dashboard.graphql", token=token)["viewer"]["organization"]
        assert organization["name"] == "Northwind Studio"
        invoice_id = relay.to_base64("Invoice", fresh.usd_open[0])
        invoices = {e["node"]["id"]: e["node"] for e in organization["invoices"]["edges"]}
        assert invoices[invoice_id]["status"] == "OPEN"

        paid = by_hash("payInvoice.graphql", {"input": {"invoiceId": invoice_id, "idempotencyKey": "e2e-pay-1"}},
                       token=token)["payInvoice"]
        assert paid["userErrors"] == [] and paid["declineReason"] is None
        assert paid["invoice"] == {"id": invoice_id, "status": "PAID", "amountDue": {"amount": 0, "currency": "USD"}}
        again = by_hash("dashboard.graphql", token=token)["viewer"]["organization"]["invoices"]["edges"]
        assert {e["node"]["id"]: e["node"]["status"] for e in again}[invoice_id] == "PAID"

        # Text not in the list is refused, a portal operation's text in another layout included.
        for text in ("{ __typename }", LOGIN):
            refused = httpx.post(f"{served.url}/graphql", timeout=30, headers={"accept": GRAPHQL_RESPONSE},
                                 json={"query": text, "variables": {"email": "a@b.example", "password": "x"}})
            assert refused.status_code == 400, refused.text
            assert refused.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
        assert by_hash("logout.graphql", {"input": {"allSessions": False}}, token=token)["logout"]["revoked"] == 1
    finally:
        stop(served)


@pytest.mark.parametrize("content,message", [
    (None, "must be an existing file"),
    (json.dumps({sha("query {"): "query {"}), "does not parse"),
    (json.dumps({sha("{ b }"): "{ a }"}), "is not the SHA-256 of its document"),
])
def test_serve_refuses_a_bad_manifest_in_one_line_before_starting_anything(tmp_path, content, message):
    manifest = tmp_path / "persisted-documents.json"
    if content is not None:
        manifest.write_text(content)
    env = {**clean_env(), "PERSISTED_OPERATIONS_MANIFEST": str(manifest)}
    run = subprocess.run([*command(), "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "d")],
                         capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 2
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("account-gateway: PERSISTED_OPERATIONS_MANIFEST ") and message in line
    assert not (tmp_path / "d" / "postgres").exists()  # nothing was started
