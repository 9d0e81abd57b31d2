"""GraphiQL in a real browser (issue 7): Debian's headless Chromium against `account-gateway serve`.

Opt-in: the browser test runs where `/usr/bin/chromium` and `/usr/bin/chromedriver` are installed
(`apt-get install chromium chromium-driver`; CHROMIUM and CHROMEDRIVER name other paths) and
skips, saying which is missing, where they are not. It follows the README's "A first query":
run the `login` mutation in GraphiQL, put the token in the Headers pane, run the README's query
and read the answer in the result pane. GraphiQL's files come from the gateway itself: the
browser may fetch nothing from anywhere else. And a web front end on another origin calls the
API with fetch(): allowed through CORS_ORIGINS, refused by the browser otherwise.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gateway import graphiql
from tests.test_live_clients import CHANGE_ROLE, MEMBER, member_account
from tests.test_serve import Served, graphql, login, serving

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
ADMIN = "admin@northwind.example"
HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
# The query the README tells a GraphiQL user to run once the token is in the Headers pane.
README_QUERY = re.search(r"In GraphiQL, run the `login` mutation.*?```graphql\n(.*?)```",
                         (Path(__file__).parent.parent / "README.md").read_text(), re.S)
QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
HEADERS_EDITOR = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
RESULT = ".result-window .CodeMirror"
WAIT_SECONDS = 20


def _missing_browser() -> str | None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        return (f"{' and '.join(missing)} not installed: the browser check needs Debian's "
                "`apt-get install chromium chromium-driver` (or CHROMIUM / CHROMEDRIVER set)")
    return None


needs_chromium = pytest.mark.skipif(_missing_browser() is not None, reason=_missing_browser() or "")


async def test_graphiql_page_loads_its_files_from_the_gateway(gateway):
    page = await gateway.http.get("/graphql", headers=HTML)
    assert page.status_code == 200
    assert "unpkg.com" not in page.text
    for name, media_type in graphiql.ASSETS.items():
        assert f'"{graphiql.ASSET_PATH}/{name}"' in page.text
        packed = await gateway.http.get(f"{graphiql.ASSET_PATH}/{name}", headers={"accept-encoding": "gzip"})
        assert packed.status_code == 200
        assert packed.headers["content-encoding"] == "gzip"
        assert packed.headers["content-type"] == media_type
        # A client that does not take gzip gets the plain file.
        plain = await gateway.http.get(f"{graphiql.ASSET_PATH}/{name}", headers={"accept-encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.content == gzip.decompress((graphiql.STATIC_DIR / f"{name}.gz").read_bytes())
        assert plain.content == packed.content  # httpx decoded the gzip one
    for name in ("README.md", "graphiql.min.js.gz", "..%2F..%2Fapp.py", "other.js"):
        assert (await gateway.http.get(f"{graphiql.ASSET_PATH}/{name}")).status_code == 404, name


async def test_production_serves_neither_graphiql_nor_its_files(app_for, settings):
    production = await app_for(replace(settings, env="production"))
    page = await production.http.get("/graphql", headers=HTML)
    assert "<html" not in page.text
    assert (await production.http.get(f"{graphiql.ASSET_PATH}/graphiql.min.js")).status_code == 404


@dataclass(frozen=True)
class Pages:
    """Two web front ends on origins of their own: one named in CORS_ORIGINS, one not."""

    allowed: str
    refused: str


class _QuietPages(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Iterator[Pages]:
    reason = _missing_browser()
    if reason:  # before starting servers the tests would not use
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("front-end")
    (root / "index.html").write_text("<!doctype html><title>Portal front end</title>")
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietPages, directory=str(root)))
               for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Pages(*(f"http://127.0.0.1:{server.server_address[1]}" for server in servers))
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def served(pages: Pages) -> Iterator[Served]:
    with serving("browser", {"CORS_ORIGINS": pages.allowed}) as served:
        yield served


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # for the failure message
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def editor_text(driver, selector: str) -> str:
    return driver.execute_script("const e = document.querySelector(arguments[0]);"
                                 "return e ? e.CodeMirror.getValue() : null;", selector) or ""


def wait_for(driver, check: Callable[[], bool], what: str) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.1).until(lambda _: check())
    except TimeoutException:
        pytest.fail(f"GraphiQL did not show {what} in {WAIT_SECONDS} s; result pane: "
                    f"{editor_text(driver, RESULT)!r}; browser log: {driver.get_log('browser')}")


def type_into(driver, selector: str, text: str) -> None:
    """Clears a GraphiQL editor and types `text` into it, key by key, as a user would."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.find_element(By.CSS_SELECTOR, selector).click()
    keyboard = driver.find_element(By.CSS_SELECTOR, f"{selector} textarea")
    keyboard.send_keys(Keys.CONTROL, "a")
    keyboard.send_keys(Keys.DELETE)
    # One line: Enter would accept an open autocompletion. The editor closes brackets and quotes
    # itself and types over them when the closing one is typed, so the text comes out as typed.
    keyboard.send_keys(" ".join(text.split()))
    assert editor_text(driver, selector) == " ".join(text.split())


def run(driver) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, ".graphiql-execute-button").click()


@needs_chromium
def test_graphiql_signs_in_and_runs_the_readme_query(served, browser):
    assert README_QUERY, "the README's GraphiQL steps moved: update README_QUERY"
    from selenium.webdriver.common.by import By

    browser.get(f"{served.url}/graphql")
    wait_for(browser, lambda: "mutation" in editor_text(browser, QUERY_EDITOR), "its editor with the login mutation")
    assert ADMIN in editor_text(browser, QUERY_EDITOR)  # the README's first step, ready to run

    run(browser)
    wait_for(browser, lambda: '"token"' in editor_text(browser, RESULT), "the login result")
    login_result = json.loads(editor_text(browser, RESULT))
    assert login_result["data"]["login"]["userErrors"] == []
    token = login_result["data"]["login"]["token"]

    type_into(browser, HEADERS_EDITOR, json.dumps({"Authorization": f"Bearer {token}"}))
    type_into(browser, QUERY_EDITOR, README_QUERY.group(1))
    run(browser)
    wait_for(browser, lambda: "Northwind Studio" in editor_text(browser, RESULT), "the viewer")

    viewer = json.loads(editor_text(browser, RESULT))["data"]["viewer"]
    expected = graphql(served, "{ viewer { customerNumber } }", token=login(served, ADMIN))
    customer_number = expected["data"]["viewer"]["customerNumber"]
    assert viewer["customerNumber"] == customer_number
    assert viewer["email"] == ADMIN and viewer["role"] == "ADMIN"
    shown = browser.find_element(By.CSS_SELECTOR, ".result-window").text  # what the user sees
    assert "Northwind Studio" in shown and customer_number in shown

    # Everything the page loaded came from the gateway: no CDN.
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert {url.rsplit("/", 1)[1] for url in loaded if "/graphiql/static/" in url} == set(graphiql.ASSETS)
    assert [url for url in loaded if not url.startswith(served.url)] == []


# What a web front end does: POST a query with its bearer token, and read the answer and a header.
FETCH = """
const [url, token, done] = arguments;
fetch(url, {method: "POST", body: JSON.stringify({query: "{ viewer { email } }"}),
            headers: {"content-type": "application/json", "authorization": "Bearer " + token}})
  .then(r => r.json().then(body => done({status: r.status, requestId: r.headers.get("x-request-id"), body})))
  .catch(e => done({error: String(e)}));
"""


@needs_chromium
def test_a_page_on_an_allowed_origin_calls_the_api(served, pages, browser):
    token = login(served, ADMIN)
    browser.set_script_timeout(WAIT_SECONDS)
    browser.get(f"{pages.allowed}/")
    answer = browser.execute_async_script(FETCH, f"{served.url}/graphql", token)
    assert answer.get("status") == 200, answer
    assert answer["body"]["data"] == {"viewer": {"email": ADMIN}}
    assert re.fullmatch(r"[0-9a-f]{32}", answer["requestId"] or "")  # an exposed header the page can read

    browser.get(f"{pages.refused}/")
    refused = browser.execute_async_script(FETCH, f"{served.url}/graphql", token)
    assert refused == {"error": "TypeError: Failed to fetch"}


# What a manager types to watch the member list change (issue 17), on one line as type_into sends it.
SUBSCRIPTION = ("subscription { organizationEvents(types: [MEMBER_ROLE_CHANGED]) { type cursor"
                " ... on MemberRoleChangedEvent { oldRole newRole member { email } } } }")


PARSE_PAUSE_SECONDS = 1.0


def result_shows(driver, text: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if text in editor_text(driver, RESULT):
            return True
        time.sleep(0.1)
    return False


@needs_chromium
def test_graphiql_subscribes_and_shows_an_event_as_it_is_committed(served, browser):
    from selenium.webdriver.common.by import By

    token = login(served, ADMIN)
    browser.get(f"{served.url}/graphql")
    # Any text: GraphiQL shows what the editor held last in this browser (another test's query).
    wait_for(browser, lambda: editor_text(browser, QUERY_EDITOR) != "", "its editor")
    # The Headers pane is connection_init's payload on the WebSocket (gateway/graphiql.py).
    type_into(browser, HEADERS_EDITOR, json.dumps({"Authorization": f"Bearer {token}"}))
    type_into(browser, QUERY_EDITOR, SUBSCRIPTION)
    # GraphiQL parses the editor's text after a pause in typing and picks the transport from that
    # parse: run at once, it would still see the last query and POST the subscription. A person
    # never runs faster than the pause; the test waits as long.
    time.sleep(PARSE_PAUSE_SECONDS)
    run(browser)
    account_id, role = member_account(served, token, MEMBER)
    made = []
    try:
        # The subscription has no acknowledgement: change the role until GraphiQL shows the event.
        for _ in range(10):
            role = "ADMIN" if role == "MEMBER" else "MEMBER"
            changed = graphql(served, CHANGE_ROLE, {"accountId": account_id, "role": role}, token)
            assert changed["data"]["changeMemberRole"]["userErrors"] == [], changed
            made.append(role)
            if result_shows(browser, "MEMBER_ROLE_CHANGED", 2):
                break
        wait_for(browser, lambda: "MEMBER_ROLE_CHANGED" in editor_text(browser, RESULT), "the event")
        event = json.loads(editor_text(browser, RESULT))["data"]["organizationEvents"]
        assert event["member"] == {"email": MEMBER}
        assert event["newRole"] in made and event["oldRole"] != event["newRole"]
        assert event["cursor"]
        assert MEMBER in browser.find_element(By.CSS_SELECTOR, ".result-window").text  # what the user sees
        run(browser)  # the same button stops the subscription
    finally:
        graphql(served, CHANGE_ROLE, {"accountId": account_id, "role": "MEMBER"}, token)
