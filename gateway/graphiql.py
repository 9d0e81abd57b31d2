"""GraphiQL served by the gateway itself, so that it works where no CDN can be reached.

strawberry's page loads GraphiQL and React from unpkg.com; ours loads the same builds from
`gateway/static/graphiql/` (versions and licenses in the README there). The files are kept
gzip-compressed, which is how browsers fetch them anyway and keeps the package small.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from strawberry.http.ides import get_graphql_ide_html

STATIC_DIR = Path(__file__).parent / "static" / "graphiql"
ASSET_PATH = "/graphiql/static"
# The only names the asset route answers: nothing else in (or outside) the directory is served.
ASSETS = {
    "react.production.min.js": "text/javascript; charset=utf-8",
    "react-dom.production.min.js": "text/javascript; charset=utf-8",
    "graphiql.min.js": "text/javascript; charset=utf-8",
    "graphiql.min.css": "text/css; charset=utf-8",
}
# The README's first step, so that a new user can press Run straight away.
DEFAULT_QUERY = """\
# Sign in, then put {"Authorization": "Bearer <token>"} in the Headers pane below.
mutation {
  login(input: {email: "admin@northwind.example", password: "demo-password"}) {
    token
    expiresAt
    userErrors { field message code }
  }
}
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Account Gateway · GraphiQL</title>
  <style>body {{ margin: 0; }} #graphiql {{ height: 100vh; }}</style>
  <link rel="stylesheet" href="{assets}/graphiql.min.css">
  <script src="{assets}/react.production.min.js"></script>
  <script src="{assets}/react-dom.production.min.js"></script>
  <script src="{assets}/graphiql.min.js"></script>
</head>
<body>
  <div id="graphiql">Loading…</div>
  <script>
    // Queries and mutations: plain JSON over POST (the gateway has no @defer). Subscriptions: the
    // graphql-ws client bundled in GraphiQL, on this same path; the Headers pane's Authorization
    // goes into connection_init, which the gateway reads as it reads the HTTP header.
    const wsUrl = (window.location.protocol === "https:" ? "wss://" : "ws://") + window.location.host
      + window.location.pathname;
    const fetcher = GraphiQL.createFetcher({{url: window.location.pathname, subscriptionUrl: wsUrl,
                                             enableIncrementalDelivery: false}});
    ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(GraphiQL, {{
      fetcher,
      defaultQuery: {default_query},
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      defaultEditorToolsVisibility: "headers",
    }}));
  </script>
</body>
</html>
"""


def vendored() -> bool:
    return all((STATIC_DIR / f"{name}.gz").is_file() for name in ASSETS)


def page(root_path: str = "") -> str:
    """The GraphiQL page; strawberry's CDN page when the vendored files are missing."""
    if not vendored():
        return get_graphql_ide_html("graphiql")
    # json.dumps makes a JS string literal; "</" escaped so the text cannot close the <script>.
    default_query = json.dumps(DEFAULT_QUERY).replace("</", "<\\/")
    return PAGE.format(assets=root_path + ASSET_PATH, default_query=default_query)


@cache
def _compressed(name: str) -> bytes:
    return (STATIC_DIR / f"{name}.gz").read_bytes()


async def asset(request: Request) -> Response:
    """GET /graphiql/static/{name}: one of the vendored files, gzip-encoded when the client accepts it."""
    name = request.path_params["name"]
    production = request.app.state.services.settings.production  # no GraphiQL there, so no files for it
    if production or name not in ASSETS or not (STATIC_DIR / f"{name}.gz").is_file():
        return PlainTextResponse("Not found.", status_code=404)
    body = _compressed(name)
    headers = {"Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        headers["Content-Encoding"] = "gzip"
    else:
        body = gzip.decompress(body)
    return Response(body, media_type=ASSETS[name], headers=headers)
