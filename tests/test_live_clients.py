"""Live events through a real client against `account-gateway serve` (issue 17): the npm `graphql-ws`
client under node, as a web or node app runs it, subscribed with the portal's own operation
(operations/organization_events.graphql) while a manager changes something over HTTP.

The client (tests/client_tools/subscribe.mjs) and its packages (graphql-ws, and ws: node 20 has no
global WebSocket) are installed once into the client tools' cache (CLIENT_TOOLS_DIR or
~/.cache/account-gateway-client-tools). Without node and npm, or without the registry, these skip
and say why. GraphiQL's subscription is in tests/test_browser.py.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.test_printed_forms import node_tool
from tests.test_serve import Served, graphql, login, serving

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).parent / "client_tools" / "subscribe.mjs"
OPERATION = (ROOT / "operations" / "organization_events.graphql").read_text()
PACKAGES = {"graphql-ws": "6.4.2", "ws": "8.23.1", "graphql": "16.15.0"}
ADMIN = "admin@northwind.example"
MEMBER = "member1@northwind.example"
WAIT_SECONDS = 30

MEMBER_ACCOUNT = """
query Member($search: String!) {
  viewer { organization { members(first: 1, search: $search) { edges { node { role account { id } } } } } }
}
"""
CHANGE_ROLE = """
mutation ChangeRole($accountId: ID!, $role: OrganizationRole!) {
  changeMemberRole(input: {accountId: $accountId, role: $role}) { member { role } userErrors { code message } }
}
"""
LOGOUT = "mutation { logout(input: {}) { revoked userErrors { code } } }"


@pytest.fixture(scope="module")
def graphql_ws() -> Path:
    workdir = node_tool("graphql-ws", PACKAGES, "to run the npm graphql-ws client")
    shutil.copy(SCRIPT, workdir / SCRIPT.name)  # ES modules resolve packages from their own folder
    return workdir


@pytest.fixture(scope="module")
def served(graphql_ws: Path) -> Iterator[Served]:  # after the install: no gateway for a skipped module
    with serving("live-clients") as served:
        yield served


class NodeSubscriber:
    """subscribe.mjs under node: one subscription, its output lines read as they come."""

    def __init__(self, workdir: Path, served: Served, token: str, query: str = OPERATION) -> None:
        self.process = subprocess.Popen(["node", SCRIPT.name], cwd=workdir, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"url": served.url.replace("http://", "ws://") + "/graphql",
                                             "token": token, "query": query, "variables": {}}))
        self.process.stdin.close()
        self.lines: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def next_line(self, timeout: float = WAIT_SECONDS) -> dict | None:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait_for(self, key: str, timeout: float = WAIT_SECONDS) -> dict:
        deadline = time.monotonic() + timeout
        seen = []
        while (left := deadline - time.monotonic()) > 0:
            line = self.next_line(left)
            if line is None:
                break
            seen.append(line)
            if key in line:
                return line
        pytest.fail(f"the graphql-ws client printed no {key!r} in {timeout:g} s; it printed {seen}; "
                    f"stderr: {self.stop()}")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        assert self.process.stderr is not None
        return self.process.stderr.read()[-2000:]


def member_account(served: Served, token: str, email: str) -> tuple[str, str]:
    edges = graphql(served, MEMBER_ACCOUNT, {"search": email}, token)["data"]["viewer"]["organization"]["members"]
    node = edges["edges"][0]["node"]
    return node["account"]["id"], node["role"]


def test_graphql_ws_client_receives_a_role_change_made_over_http(served, graphql_ws):
    token = login(served, ADMIN)
    account_id, role = member_account(served, token, MEMBER)
    client = NodeSubscriber(graphql_ws, served, token)
    try:
        client.wait_for("connected")
        # A subscription is not acknowledged: change the role until the event arrives (the first
        # change may commit before the server has registered the subscription).
        made: list[tuple[str, str]] = []
        received = None
        for _ in range(10):
            new = "ADMIN" if role == "MEMBER" else "MEMBER"
            changed = graphql(served, CHANGE_ROLE, {"accountId": account_id, "role": new}, token)
            assert changed["data"]["changeMemberRole"] == {"member": {"role": new}, "userErrors": []}, changed
            made.append((role, new))
            role = new
            received = client.next_line(2)
            if received is not None:
                break
        assert received is not None and "next" in received, (received, client.stop())
        result = received["next"]
        assert "errors" not in result, result
        event = result["data"]["organizationEvents"]
        assert event["__typename"] == "MemberRoleChangedEvent"
        assert event["type"] == "MEMBER_ROLE_CHANGED"
        assert (event["oldRole"], event["newRole"]) in made
        assert event["member"]["email"] == MEMBER and event["member"]["account"]["id"] == account_id
        assert event["actor"]["email"] == ADMIN
        assert event["cursor"] and event["id"]
        assert abs(datetime.fromisoformat(event["occurredAt"]).timestamp() - time.time()) < 60
    finally:
        client.stop()
        graphql(served, CHANGE_ROLE, {"accountId": account_id, "role": "MEMBER"}, token)


def _ending(client: NodeSubscriber) -> dict:
    """What the client printed when the server refused it: the close code and its reason."""
    line = client.wait_for("closed")
    client.process.wait(timeout=WAIT_SECONDS)  # and it ends: no retry
    return line


def test_a_wrong_token_closes_the_socket_with_4401(served, graphql_ws):
    client = NodeSubscriber(graphql_ws, served, "not-a-token")
    try:
        closed = _ending(client)
    finally:
        client.stop()
    assert closed["closed"] == 4401, closed
    assert closed["reason"], closed  # one sentence saying why


def test_a_signed_out_token_closes_the_socket_with_4401(served, graphql_ws):
    token = login(served, ADMIN)
    assert graphql(served, LOGOUT, token=token)["data"]["logout"] == {"revoked": 1, "userErrors": []}
    client = NodeSubscriber(graphql_ws, served, token)
    try:
        closed = _ending(client)
    finally:
        client.stop()
    assert closed["closed"] == 4401, closed


def test_a_member_is_refused_the_organizations_events_with_forbidden(served, graphql_ws):
    client = NodeSubscriber(graphql_ws, served, login(served, MEMBER))
    try:
        refused = client.wait_for("error")
    finally:
        client.stop()
    errors = refused["error"]
    assert isinstance(errors, list) and errors, refused  # the subscription's errors; the socket stays usable
    assert errors[0]["extensions"]["code"] == "FORBIDDEN", refused
