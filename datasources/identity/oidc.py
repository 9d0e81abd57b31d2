"""An organization's OpenID provider: discovery, the code exchange and ID token verification.

ID tokens are verified by joserfc (signature from the provider's JWKS, the algorithms allowed,
`iss`, `aud`, `exp`, `iat`, `nonce`), never by hand. The two HTTP calls around it (read the
discovery document and the key set, post the code to the token endpoint) are plain httpx: they
are a GET and a form POST, and authlib's httpx client is deprecated in its 1.9 series.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from datasources.errors import GatewayError

# Asymmetric algorithms only: an HS256 token would be signed with the client secret, which the
# gateway shares with the provider; "none" is never allowed.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
CLOCK_SKEW_SECONDS = 60
METADATA_TTL_SECONDS = 300
# A key the set does not hold yet (the provider rotated): fetch the set again, at most this often.
KEY_REFRESH_SECONDS = 30
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_SUBJECT_LENGTH = 255  # OpenID Connect Core 2: `sub` is at most 255 ASCII characters
# What a request to a provider may fail with besides HTTP: a URL httpx cannot send to (a port out
# of range, a bad IDNA host) is the provider's configuration, not the gateway's bug.
_REQUEST_FAILURES = (httpx.HTTPError, httpx.InvalidURL, ValueError, OverflowError, UnicodeError)


class ProviderUnreachable(GatewayError):
    """The identity provider did not answer as an OpenID provider does."""

    code = "IDENTITY_PROVIDER_UNAVAILABLE"


class TokenRefused(GatewayError):
    """The provider's answer cannot be trusted or used: a forged, replayed or stale sign-in."""

    code = "SIGN_IN_REFUSED"


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in, from a verified ID token."""

    subject: str
    email: str | None
    email_verified: bool | None
    name: str | None


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> "Pkce":
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"))


@dataclass
class _Cached:
    metadata: ProviderMetadata
    keys: KeySet
    fetched_at: float
    keys_fetched_at: float


class IdentityProviders:
    """The process's client for every organization's provider, with their documents cached a while."""

    def __init__(self, *, timeout_seconds: float = 10.0, require_https: bool = True,
                 public_hosts_only: bool = True) -> None:
        self._http = httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False)
        self._require_https = require_https
        # An OWNER names the URLs the gateway fetches: in production none may reach the vendor's own
        # network (loopback, private, link-local addresses), as a request forgery would.
        self._public_hosts_only = public_hosts_only
        self._cache: dict[str, _Cached] = {}

    async def close(self) -> None:
        await self._http.aclose()

    def url_problem(self, url: str) -> str | None:
        """Why `url` cannot be an issuer or a provider endpoint, or None."""
        if any(ord(c) < 0x21 or ord(c) == 0x7f or not c.isascii() for c in url):
            return "must be ASCII without spaces or control characters"
        try:
            parts = urlsplit(url)
            parsed = httpx.URL(url)
            port = parts.port  # raises for a port out of range
        except (ValueError, httpx.InvalidURL):
            return "is not a URL"
        allowed = ("https",) if self._require_https else ("https", "http")
        if parts.scheme not in allowed or not parsed.host:
            return "must be an https:// URL" if self._require_https else "must be an http(s):// URL"
        if parts.username or parts.password or parts.fragment or port == 0:
            return "must have no credentials, fragment or port 0"
        return None

    async def _guard(self, url: str) -> None:
        """Refuses a URL the gateway must not fetch: malformed, or (in production) one whose host
        resolves to an address inside the vendor's network."""
        if why := self.url_problem(url):
            raise ProviderUnreachable(f"{url[:200]!r} {why}.")
        if not self._public_hosts_only:
            return
        host = httpx.URL(url).host
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, None)
        except (OSError, UnicodeError, ValueError):
            raise ProviderUnreachable(f"{host[:200]} cannot be resolved.") from None
        for *_, address in found:
            ip = ipaddress.ip_address(address[0])
            if not ip.is_global or ip.is_multicast:
                raise ProviderUnreachable(f"{host[:200]} is not a public address.")

    async def metadata(self, issuer: str, *, fresh: bool = False) -> ProviderMetadata:
        return (await self._provider(issuer, fresh=fresh)).metadata

    async def _provider(self, issuer: str, *, fresh: bool = False) -> _Cached:
        cached = self._cache.get(issuer)
        if cached is not None and not fresh and time.monotonic() - cached.fetched_at < METADATA_TTL_SECONDS:
            return cached
        document = await self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
        metadata = _metadata(issuer, document, self.url_problem)
        keys = await self._keys(metadata.jwks_uri)
        now = time.monotonic()
        cached = self._cache[issuer] = _Cached(metadata, keys, now, now)
        return cached

    async def _keys(self, jwks_uri: str) -> KeySet:
        document = await self._get_json(jwks_uri)
        try:
            return KeySet.import_key_set(document)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise ProviderUnreachable(f"The provider's key set at {jwks_uri} is not a JWK set: {exc}") from None

    async def _get_json(self, url: str) -> Any:
        await self._guard(url)
        try:
            response = await self._http.get(url, headers={"accept": "application/json"})
        except _REQUEST_FAILURES as exc:
            raise ProviderUnreachable(f"{url} did not answer ({type(exc).__name__}).") from None
        if response.status_code != 200:
            raise ProviderUnreachable(f"{url} answered HTTP {response.status_code}.")
        return _json(response, url)

    def authorization_url(self, metadata: ProviderMetadata, *, client_id: str, redirect_uri: str, state: str,
                          nonce: str, pkce: Pkce, login_hint: str) -> str:
        query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                           "scope": "openid email profile", "state": state, "nonce": nonce,
                           "code_challenge": pkce.challenge, "code_challenge_method": "S256",
                           "login_hint": login_hint})
        separator = "&" if "?" in metadata.authorization_endpoint else "?"
        return metadata.authorization_endpoint + separator + query

    async def sign_in(self, issuer: str, *, client_id: str, client_secret: str, code: str, code_verifier: str,
                      redirect_uri: str, nonce: str) -> Identity:
        """Trades the authorization code for tokens and returns who the verified ID token names."""
        provider = await self._provider(issuer)
        await self._guard(provider.metadata.token_endpoint)
        try:
            response = await self._http.post(
                provider.metadata.token_endpoint, auth=_basic(client_id, client_secret),
                data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                      "code_verifier": code_verifier}, headers={"accept": "application/json"})
        except _REQUEST_FAILURES as exc:
            raise ProviderUnreachable(f"The provider's token endpoint did not answer ({type(exc).__name__}).") \
                from None
        answer = _json(response, "The token endpoint")
        if response.status_code != 200:
            error = answer.get("error") if isinstance(answer, dict) else None
            if response.status_code in (400, 401) and isinstance(error, str):
                # invalid_grant: the code was used already, expired, or not issued for this verifier.
                raise TokenRefused(f"The provider refused the sign-in ({error[:100]}): start again.")
            raise ProviderUnreachable(f"The provider's token endpoint answered HTTP {response.status_code}.")
        id_token = answer.get("id_token") if isinstance(answer, dict) else None
        if not isinstance(id_token, str):
            raise TokenRefused("The provider sent no ID token.")
        return await self._verified(provider, id_token, client_id=client_id, nonce=nonce)

    async def _verified(self, provider: _Cached, id_token: str, *, client_id: str, nonce: str) -> Identity:
        try:
            token = jwt.decode(id_token, await self._key_set(provider, id_token), algorithms=ALGORITHMS)
            jwt.JWTClaimsRegistry(
                leeway=CLOCK_SKEW_SECONDS, iss={"essential": True, "value": provider.metadata.issuer},
                aud={"essential": True, "value": client_id}, sub={"essential": True},
                exp={"essential": True}, iat={"essential": True}, nonce={"essential": True, "value": nonce},
            ).validate(token.claims)
        except JoseError as exc:
            raise TokenRefused(f"The provider's ID token is not valid ({exc.error}): start again.") from None
        except ValueError:
            raise TokenRefused("The provider's ID token is malformed: start again.") from None
        claims = token.claims
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        # OpenID Connect Core 3.1.3.7: with other audiences beside this client, `azp` must name it.
        if len(audiences) > 1 and claims.get("azp") != client_id:
            raise TokenRefused("The provider's ID token is for another client: start again.")
        subject, email, name = claims["sub"], claims.get("email"), claims.get("name")
        if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT_LENGTH or not subject.isprintable():
            raise TokenRefused("The provider's ID token names no usable subject (`sub`).")
        return Identity(subject=subject, email=email if isinstance(email, str) else None,
                        email_verified=_verified_flag(claims), name=name if isinstance(name, str) else None)

    async def _key_set(self, provider: _Cached, id_token: str) -> KeySet:
        """The provider's keys, fetched again once when the token names a key the set lacks."""
        try:
            kid = jws.extract_compact(id_token.encode()).headers().get("kid")
        except (JoseError, ValueError):
            raise TokenRefused("The provider's ID token is malformed: start again.") from None
        known = {key.kid for key in provider.keys.keys}
        if kid and kid not in known and time.monotonic() - provider.keys_fetched_at > KEY_REFRESH_SECONDS:
            provider.keys = await self._keys(provider.metadata.jwks_uri)
            provider.keys_fetched_at = time.monotonic()
        return provider.keys


def _verified_flag(claims: dict[str, Any]) -> bool | None:
    """`email_verified`: None when absent; True for JSON true (or the string "true", as some
    providers send it); False for anything else, "false", 0 and "no" included."""
    if "email_verified" not in claims:
        return None
    value = claims["email_verified"]
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _json(response: httpx.Response, what: str) -> Any:
    if len(response.content) > MAX_DOCUMENT_BYTES:
        raise ProviderUnreachable(f"{what} sent more than {MAX_DOCUMENT_BYTES // 1024} KiB.")
    try:
        return response.json()
    except ValueError:
        raise ProviderUnreachable(f"{what} did not answer with JSON (HTTP {response.status_code}).") from None


def _metadata(issuer: str, document: Any, url_problem: Callable[[str], str | None]) -> ProviderMetadata:
    if not isinstance(document, dict):
        raise ProviderUnreachable("The discovery document is not a JSON object.")
    # OpenID Connect Discovery 4.3: the issuer in the document is exactly the one configured.
    if document.get("issuer") != issuer:
        raise ProviderUnreachable(f"The discovery document names the issuer {str(document.get('issuer'))[:200]!r}, "
                                  f"not {issuer!r}: enter the issuer exactly as the provider writes it.")
    fields = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = document.get(name)
        if not isinstance(value, str) or url_problem(value):
            raise ProviderUnreachable(f"The discovery document has no usable {name}"
                                      f"{': it ' + str(url_problem(value)) if isinstance(value, str) else ''}.")
        fields[name] = value
    methods = document.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise ProviderUnreachable("The provider does not support PKCE with S256.")
    return ProviderMetadata(issuer=issuer, **fields)


def _basic(client_id: str, client_secret: str) -> tuple[str, str]:
    # RFC 6749 2.3.1: both are form-urlencoded before they go into the Basic header.
    return quote(client_id, safe=""), quote(client_secret, safe="")
