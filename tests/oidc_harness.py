"""A real OpenID provider for the tests (oidc-provider under node), reached through a forging proxy.

    with IdentityProvider([OidcClient("gateway", "s3cret", ["http://gateway.test/sso/callback"])]) as idp:
        idp.issuer            # "http://127.0.0.1:<proxy port>": discovery, authorize, token, JWKS all there
        idp.private_jwk       # the joserfc RSAKey that signs its ID tokens (kid idp.kid, RS256)
        idp.forge = "wrong_nonce"     # the next token response's id_token is forged (see FORGE_MODES)
        idp.token_responses   # every token endpoint answer, as the provider gave it (TokenResponse)

The provider (tests/identity_provider/provider.mjs) listens on its own loopback port, but its
issuer is the proxy's URL, so a client only ever talks to the proxy, which forwards every request
and answer verbatim -- except the token endpoint's answer while `forge` is set.

Signing in is a form: `browse` plays the browser from the gateway's `/sso/start` to its callback,
`authorization_code` stops at the redirect back to the client and returns (code, state).
The account signed in as `login` has sub "sub-<login>", email <login> (verified), name <login
before "@">. A node that is missing skips the test (tests/node_tools.py).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import os
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests import node_tools

HERE = Path(__file__).resolve().parent / "identity_provider"

FORGE_MODES = ("wrong_issuer", "wrong_audience", "wrong_nonce", "expired", "bad_signature", "alg_none",
               "unverified_email", "unverified_email_as_text")

# The origins (scheme://host:port) of the proxies of the providers running in this process: where
# `browse` is "on the provider".
_PROVIDER_ORIGINS: set[str] = set()

# Headers that belong to one connection, not to the message: never forwarded.
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
               "trailers", "transfer-encoding", "upgrade", "content-length", "proxy-connection"}


def tools_dir() -> Path:
    """oidc-provider installed from npm into a directory kept between runs (skips without node)."""
    workdir = Path(os.environ.get("IDENTITY_PROVIDER_DIR",
                                  Path.home() / ".cache" / "account-gateway-identity-provider"))
    return node_tools.installed(
        workdir, (HERE / "package.json").read_text(), "to run the OpenID provider (oidc-provider)",
        files={"provider.mjs": (HERE / "provider.mjs").read_text()},
        ready=lambda found: (found / "node_modules" / "oidc-provider" / "package.json").exists(), timeout=300)


@dataclasses.dataclass(frozen=True)
class OidcClient:
    """A client registered at the provider. Either auth method is accepted whatever is registered."""

    client_id: str
    client_secret: str
    redirect_uris: list[str]
    token_endpoint_auth_method: str = "client_secret_basic"

    @classmethod
    def of(cls, value: OidcClient | Mapping[str, Any]) -> OidcClient:
        return value if isinstance(value, OidcClient) else cls(**value)


@dataclasses.dataclass
class TokenResponse:
    """One answer of the token endpoint: what the provider sent (`status`, `body`) and, when it was
    forged, what the client got instead (`sent`) and the mode (`forged`)."""

    status: int
    body: bytes
    request_body: bytes
    forged: str | None = None
    sent: bytes | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def sent_json(self) -> Any:
        return json.loads(self.sent if self.sent is not None else self.body)


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_OTHER_KEY: RSAKey | None = None
_OTHER_KEY_LOCK = threading.Lock()


def _other_key() -> RSAKey:
    """An RSA key the provider does not hold (bad_signature), made once per process."""
    global _OTHER_KEY
    with _OTHER_KEY_LOCK:
        if _OTHER_KEY is None:
            _OTHER_KEY = RSAKey.generate_key(2048, private=True)
        return _OTHER_KEY


class IdentityProvider:
    """oidc-provider behind a forging proxy; a context manager (sync or async) starting and stopping both."""

    def __init__(self, clients: Iterable[OidcClient | Mapping[str, Any]], *, startup_timeout: float = 30):
        self.clients = [OidcClient.of(client) for client in clients]
        self.kid = f"idp-{secrets.token_hex(4)}"
        self.private_jwk: RSAKey = RSAKey.generate_key(
            2048, parameters={"kid": self.kid, "use": "sig", "alg": "RS256"}, private=True)
        self.forge: str | None = None
        self.token_responses: list[TokenResponse] = []
        self.issuer = ""
        self.metadata: dict[str, Any] = {}
        self.startup_timeout = startup_timeout
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._proxy: ThreadingHTTPServer | None = None
        self._proxy_thread: threading.Thread | None = None
        self._upstream: httpx.HTTPTransport | None = None
        self._upstream_url = ""
        self._tmp: tempfile.TemporaryDirectory | None = None

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> IdentityProvider:
        workdir = tools_dir()
        self._proxy = _ProxyServer(("127.0.0.1", 0), _ProxyHandler, self)
        self.issuer = f"http://127.0.0.1:{self._proxy.server_address[1]}"
        self._tmp = tempfile.TemporaryDirectory(prefix="idp-")
        config = Path(self._tmp.name) / "config.json"
        config.write_text(json.dumps({
            "issuer": self.issuer, "port": 0,
            "clients": [dataclasses.asdict(client) for client in self.clients],
            "jwks": {"keys": [self.private_jwk.as_dict(private=True)]},
        }))
        self._stderr = open(Path(self._tmp.name) / "stderr.log", "w+")
        try:
            self._process = subprocess.Popen(["node", str(workdir / "provider.mjs"), str(config)], cwd=workdir,
                                             stdout=subprocess.PIPE, stderr=self._stderr, text=True)
            port = self._await_ready()
            self._upstream_url = f"http://127.0.0.1:{port}"
            # A bare transport: no cookie jar of its own (a client's would mix up every browser's
            # session), no redirects, no proxy from the environment.
            self._upstream = httpx.HTTPTransport()
            self._proxy_thread = threading.Thread(target=self._proxy.serve_forever, name="idp-proxy", daemon=True)
            self._proxy_thread.start()
            _PROVIDER_ORIGINS.add(self.issuer)
            self.metadata = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10,
                                      trust_env=False).raise_for_status().json()
        except BaseException:
            self.stop()
            raise
        return self

    def _await_ready(self) -> int:
        assert self._process is not None and self._process.stdout is not None
        found: list[str] = []
        reader = threading.Thread(target=lambda: found.append(self._process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.startup_timeout)
        line = found[0] if found else ""
        if not line.startswith("READY "):
            self._process.kill()
            self._process.wait()
            raise RuntimeError(f"oidc-provider did not start ({line!r}): {self.stderr()[-2000:]}")
        return int(line.split()[1])

    def stderr(self) -> str:
        """What the node process wrote on stderr so far (warnings, server_error traces)."""
        self._stderr.flush()
        return (Path(self._tmp.name) / "stderr.log").read_text() if self._tmp else ""

    def stop(self) -> None:
        _PROVIDER_ORIGINS.discard(self.issuer)
        if self._proxy is not None:
            if self._proxy_thread is not None:
                self._proxy.shutdown()
            self._proxy.server_close()
            self._proxy = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process.stdout.close()
            self._process = None
        if self._upstream is not None:
            self._upstream.close()
            self._upstream = None
        if self._tmp is not None:
            self._stderr.close()
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> IdentityProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> IdentityProvider:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # -- conveniences -------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<IdentityProvider {self.issuer or '(not started)'}>"

    @property
    def jwks(self) -> dict[str, Any]:
        """The public key set the provider publishes."""
        return {"keys": [self.private_jwk.as_dict(private=False)]}

    def authorize_url(self, client_id: str, redirect_uri: str, *, state: str, nonce: str, code_challenge: str,
                      scope: str = "openid email profile", **extra: str) -> str:
        params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scope,
                  "state": state, "nonce": nonce, "code_challenge": code_challenge,
                  "code_challenge_method": "S256", **extra}
        return f"{self.metadata['authorization_endpoint']}?{urlencode(params)}"

    # -- forging ------------------------------------------------------------------------------

    def forge_id_token(self, id_token: str, mode: str) -> str:
        """`id_token` (one this provider signed) rewritten as `mode` says (one of FORGE_MODES)."""
        original = jwt.decode(id_token, self.private_jwk, algorithms=["RS256"])
        header, claims = dict(original.header), dict(original.claims)
        now = int(time.time())
        if mode == "wrong_issuer":
            claims["iss"] = "http://issuer.forged.test"
        elif mode == "wrong_audience":
            others = [c.client_id for c in self.clients if c.client_id != claims.get("aud")]
            claims["aud"] = others[0] if others else "another-client"
        elif mode == "wrong_nonce":
            claims["nonce"] = f"forged-{secrets.token_urlsafe(12)}"
        elif mode == "expired":
            lifetime = max(int(claims.get("exp", now)) - int(claims.get("iat", now)), 60)
            claims["exp"] = now - 600
            claims["iat"] = now - 600 - lifetime
        elif mode == "unverified_email":
            claims["email_verified"] = False
        elif mode == "unverified_email_as_text":  # as some providers send it (AWS Cognito)
            claims["email_verified"] = "false"
        elif mode == "alg_none":
            unsigned = {**header, "alg": "none"}
            return f"{_b64(json.dumps(unsigned).encode())}.{_b64(json.dumps(claims).encode())}."
        elif mode != "bad_signature":
            raise ValueError(f"unknown forge mode {mode!r}: one of {FORGE_MODES}")
        key = _other_key() if mode == "bad_signature" else self.private_jwk
        return jwt.encode(header, claims, key, algorithms=["RS256"])

    def _token_answer(self, status: int, body: bytes, request_body: bytes) -> bytes:
        """What the client gets for the token endpoint's answer `body` (forged when asked to)."""
        record = TokenResponse(status, body, request_body)
        with self._lock:
            mode = self.forge
            if mode is not None and status == 200:
                self.forge = None
            self.token_responses.append(record)
        if mode is None or status != 200:
            return body
        answer = json.loads(body)
        if "id_token" not in answer:
            return body
        answer["id_token"] = self.forge_id_token(answer["id_token"], mode)
        record.forged, record.sent = mode, json.dumps(answer).encode()
        return record.sent


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, provider: IdentityProvider):
        self.provider = provider
        super().__init__(address, handler)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self) -> None:
        provider = self.server.provider
        body = self._body()
        headers = [(name, value) for name, value in self.headers.items() if name.lower() not in _HOP_BY_HOP]
        upstream = provider._upstream
        try:
            assert upstream is not None
            request = httpx.Request(self.command, provider._upstream_url + self.path, headers=headers,
                                    content=body, extensions={"timeout": {"connect": 10, "read": 30, "write": 30,
                                                                           "pool": 30}})
            response = upstream.handle_request(request)
            try:
                payload = b"".join(response.stream)
            finally:
                response.close()
        except Exception as error:  # the provider is gone or stopping
            message = f"proxy: provider unreachable: {error}".encode()
            self.send_response(502)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(message)))
            self.end_headers()
            self.wfile.write(message)
            return
        out_headers = [(n, v) for n, v in response.headers.multi_items() if n.lower() not in _HOP_BY_HOP]
        token_path = urlsplit(provider.metadata.get("token_endpoint", "")).path or "/token"
        if self.command == "POST" and urlsplit(self.path).path == token_path:
            if response.headers.get("content-encoding"):
                payload = _decoded(response, payload)
                out_headers = [(n, v) for n, v in out_headers if n.lower() != "content-encoding"]
            forged = provider._token_answer(response.status_code, payload, body)
            payload = forged
        self.send_response(response.status_code, response.reason_phrase)
        for name, value in out_headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _forward


def _decoded(response: httpx.Response, raw: bytes) -> bytes:
    """`raw` (as received) with the response's content-encoding undone."""
    return httpx.Response(200, headers={"content-encoding": response.headers["content-encoding"]},
                          content=raw).content


# -- the browser --------------------------------------------------------------------------------


class SignInError(AssertionError):
    """The provider answered something a browser could not go on from."""


class AuthorizationDenied(SignInError):
    """The provider redirected back to the client with an error instead of a code."""

    def __init__(self, location: str, params: dict[str, str]):
        self.location, self.params = location, params
        self.error = params.get("error", "")
        super().__init__(f"{self.error}: {params.get('error_description', '')} ({location})")


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append({"action": values.get("action", ""), "method": values.get("method", "get").upper(),
                               "inputs": []})
        elif tag == "input" and self.forms and values.get("name"):
            self.forms[-1]["inputs"].append((values["name"], values.get("type", "text").lower(),
                                             values.get("value", "")))


def _origin(url: httpx.URL | str) -> str:
    url = httpx.URL(str(url))  # httpx leaves out a scheme's default port
    return f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")


def _on_provider(url: httpx.URL | str) -> bool:
    return _origin(url) in _PROVIDER_ORIGINS


def _forget_provider_session(client: httpx.AsyncClient) -> None:
    """A fresh provider session: without it a second sign-in would not ask who signs in."""
    for cookie in list(client.cookies.jar):
        if cookie.name.startswith("idp_"):
            client.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)


async def _walk(client: httpx.AsyncClient, url: str, login: str, password: str, max_hops: int,
                stop_before_leaving: bool) -> httpx.Response | str:
    _forget_provider_session(client)
    method, target, data = "GET", url, None
    been_on_provider = False
    for _ in range(max_hops):
        on_provider = _on_provider(target)
        if not on_provider and been_on_provider:
            if stop_before_leaving:
                return target
        been_on_provider = been_on_provider or on_provider
        request = client.build_request(method, target, data=data)
        response = await client.send(request, follow_redirects=False)
        if not on_provider:
            if been_on_provider or not response.has_redirect_location:
                return response  # the client's answer (after the provider), or its refusal to start
        elif not response.has_redirect_location:
            form = _login_form(response)
            if form is None:
                raise SignInError(f"the provider answered {response.status_code} at {response.url} "
                                  f"without a sign-in form: {response.text[:1000]}")
            fields = {}
            for name, kind, value in form["inputs"]:
                fields[name] = login if name == "login" else password if kind == "password" else value
            method, target, data = "POST", urljoin(str(response.url), form["action"]), fields
            continue
        location = urljoin(str(response.url), response.headers["location"])
        if response.status_code in (307, 308):
            target = location
        else:
            method, target, data = "GET", location, None
    raise SignInError(f"still no answer after {max_hops} hops (last: {method} {target})")


def _login_form(response: httpx.Response) -> dict[str, Any] | None:
    if "html" not in response.headers.get("content-type", ""):
        return None
    parser = _Forms()
    parser.feed(response.text)
    return next((form for form in parser.forms if any(name == "login" for name, _, _ in form["inputs"])), None)


async def browse(client: httpx.AsyncClient, url: str, login: str, *, password: str = "any-password",
                 max_hops: int = 20) -> httpx.Response:
    """Play the browser from `url` (the gateway's /sso/start) through the provider's sign-in as `login`,
    and return the first answer from off the provider after it (the gateway's callback), unfollowed.

    Redirects are followed by hand with `client`'s cookie jar (the provider's session cookies from
    an earlier sign-in are dropped first, so every call signs in anew). A non-redirect answer before
    the provider is reached is returned as is (the gateway refused to start). `client` may carry
    httpx mounts (an ASGI app for the gateway's host): every request goes through `client.send`.
    """
    answer = await _walk(client, url, login, password, max_hops, stop_before_leaving=False)
    assert isinstance(answer, httpx.Response)
    return answer


async def authorization_redirect(client: httpx.AsyncClient, authorize_url: str, login: str, *,
                                 password: str = "any-password", max_hops: int = 20) -> str:
    """Sign in as `login` from `authorize_url` and return the provider's redirect back to the
    client (its full URL, not requested). `authorize_url` may also be the gateway's /sso/start."""
    answer = await _walk(client, authorize_url, login, password, max_hops, stop_before_leaving=True)
    if isinstance(answer, httpx.Response):
        raise SignInError(f"never left the provider towards the client: {answer.status_code} at {answer.url}")
    return answer


async def authorization_code(client: httpx.AsyncClient, authorize_url: str, login: str, *,
                             password: str = "any-password", max_hops: int = 20) -> tuple[str, str]:
    """(code, state) from the provider's redirect back to the client after signing in as `login`;
    the redirect is not followed (replay it, or exchange the code, yourself).
    Raises AuthorizationDenied when the provider sent an error back instead."""
    location = await authorization_redirect(client, authorize_url, login, password=password, max_hops=max_hops)
    params = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
    if "code" not in params:
        raise AuthorizationDenied(location, params)
    return params["code"], params.get("state", "")


__all__ = ["FORGE_MODES", "AuthorizationDenied", "IdentityProvider", "OidcClient", "SignInError", "TokenResponse",
           "authorization_code", "authorization_redirect", "browse", "pkce_pair", "tools_dir"]
