"""The kinds of value a setting takes: how its text is read, and what a good value is.

Each kind has `accepts` (what a good value looks like, for the error message, the README
and `serve --help`), `parse` (the text to a value, ValueError when it is not good) and
`bad` (texts it refuses: the settings test tries every one of them). A kind holding a
secret sets `refused` (how its refusal reads), so the message never repeats the value.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

TRUE_WORDS = ("1", "true", "yes")
FALSE_WORDS = ("0", "false", "no")


def _number_text(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
MIN_SECONDS = 0.001


@dataclass(frozen=True)
class Integer:
    low: int
    high: int

    @property
    def accepts(self) -> str:
        return f"an integer from {self.low} to {self.high}"

    @property
    def bad(self) -> tuple[str, ...]:
        return (str(self.low - 1), str(self.high + 1), "ten", "1.5", "1_000", "\u0669\u0660\u0660")

    def parse(self, raw: str) -> int:
        # Plain ASCII digits: int() also takes "1_000" and other scripts' digits ("٩٠٠").
        if not _INTEGER.fullmatch(raw):
            raise ValueError(raw)
        value = int(raw)
        if not self.low <= value <= self.high:
            raise ValueError(raw)
        return value


@dataclass(frozen=True)
class Seconds:
    """A duration (or a rate): more than 0, at most `high`; with `zero_is_off`, 0 turns it off (None)."""

    high: float
    zero_is_off: bool = False

    @property
    def accepts(self) -> str:
        off = "0 (no limit) or " if self.zero_is_off else ""
        return f"{off}a number from {MIN_SECONDS} to {_number_text(self.high)}"

    @property
    def bad(self) -> tuple[str, ...]:
        return (*(() if self.zero_is_off else ("0",)), "-5", str(self.high * 2), "soon", "nan", "1e-320",
                "0.0001")

    def parse(self, raw: str) -> float | None:
        # Decimal notation, to the millisecond: float() also takes "1e-320", "inf" and "1_0".
        if not _DECIMAL.fullmatch(raw):
            raise ValueError(raw)
        value = float(raw)
        if self.zero_is_off and value == 0:
            return None
        if not MIN_SECONDS <= value <= self.high:
            raise ValueError(raw)
        return value


@dataclass(frozen=True)
class Flag:
    accepts: str = f"{', '.join(TRUE_WORDS)} (on); {', '.join(FALSE_WORDS)} (off)"
    bad: tuple[str, ...] = ("maybe", "2")

    def parse(self, raw: str) -> bool:
        word = raw.lower()
        if word not in TRUE_WORDS + FALSE_WORDS:
            raise ValueError(raw)
        return word in TRUE_WORDS


@dataclass(frozen=True)
class Choice:
    options: tuple[str, ...]

    @property
    def accepts(self) -> str:
        return "one of " + ", ".join(self.options)

    @property
    def bad(self) -> tuple[str, ...]:
        return ("staging-" + self.options[0],)

    def parse(self, raw: str) -> str:
        if raw.lower() not in self.options:
            raise ValueError(raw)
        return raw.lower()


@dataclass(frozen=True)
class Url:
    """An absolute address with one of `schemes`; `base`: paths are appended to it (no query,
    no fragment, the trailing slash dropped)."""

    schemes: tuple[str, ...]
    example: str
    base: bool = False

    @property
    def accepts(self) -> str:
        starts = " or ".join(f"{scheme}://" for scheme in self.schemes)
        article = "an" if starts[0] in "hs" else "a"  # said "aitch", "ess"
        return f"{article} {starts} address such as {self.example}"

    @property
    def bad(self) -> tuple[str, ...]:
        return ("example.com", f"gopher://{urlsplit(self.example).hostname or 'example.com'}")

    def shown(self, raw: str) -> str:
        """The value as an error message may repeat it: without a password in it."""
        head, at, tail = raw.rpartition("@")
        return f"{head.split('://', 1)[0]}://…@{tail}" if at and "://" in head else raw

    def parse(self, raw: str) -> str:
        try:
            parts = urlsplit(raw)
            parts.port  # noqa: B018  (a port that is not a number raises here)
        except ValueError:
            raise ValueError(raw) from None
        located = parts.netloc or (parts.scheme == "unix" and parts.path)
        if parts.scheme not in self.schemes or not located or (self.base and (parts.query or parts.fragment)):
            raise ValueError(raw)
        return raw.rstrip("/") if self.base else raw


@dataclass(frozen=True)
class Prefixed:
    """A key or secret the provider issues, recognised by how it starts."""

    prefixes: tuple[str, ...]
    refused: str = "is not a key of the expected kind (value not shown)"

    @property
    def accepts(self) -> str:
        return "a key starting with " + " or ".join(self.prefixes)

    @property
    def bad(self) -> tuple[str, ...]:
        return ("pk_live_publishable", "secret")

    def parse(self, raw: str) -> str:
        if not raw.startswith(self.prefixes) or any(c.isspace() for c in raw):
            raise ValueError(raw)
        return raw


@dataclass(frozen=True)
class Text:
    """Free text of a given shape (`pattern`, matched whole)."""

    pattern: str
    accepts: str
    bad: tuple[str, ...]

    def parse(self, raw: str) -> str:
        if not re.fullmatch(self.pattern, raw):
            raise ValueError(raw)
        return raw


@dataclass(frozen=True)
class Directory:
    """A directory; `exists`: it must be there already, else it is made when needed (but a
    file in its place is refused at once)."""

    exists: bool = False

    @property
    def accepts(self) -> str:
        return "an existing directory" if self.exists else "a directory (made if missing)"

    @property
    def bad(self) -> tuple[str, ...]:
        return ("/dev/null", "/nonexistent/operations") if self.exists else ("/dev/null",)

    def parse(self, raw: str) -> Path:
        path = Path(raw).expanduser()
        if (self.exists or path.exists()) and not path.is_dir():
            raise ValueError(raw)
        return path


@dataclass(frozen=True)
class File:
    """An existing file (read at start)."""

    accepts: str = "an existing file"
    bad: tuple[str, ...] = ("/nonexistent/persisted-documents.json", "/")

    def parse(self, raw: str) -> Path:
        path = Path(raw).expanduser()
        if not path.is_file():
            raise ValueError(raw)
        return path


@dataclass(frozen=True)
class Proxies:
    """A comma list of IP addresses or networks (CIDR), or `*` for any peer."""

    accepts: str = "a comma list of proxy IP addresses or networks (such as 10.0.0.5,10.1.0.0/16), or *"
    bad: tuple[str, ...] = ("127.0.0.1,proxy.internal", "10.0.0.0/33")

    def parse(self, raw: str) -> tuple[str, ...]:
        if raw == "*":
            return ("*",)
        found = tuple(item.strip() for item in raw.split(",") if item.strip())
        for item in found:
            ipaddress.ip_network(item, strict=False) if "/" in item else ipaddress.ip_address(item)
        return found


@dataclass(frozen=True)
class Address:
    """An IP address to listen on."""

    accepts: str = "an IP address to listen on, such as 127.0.0.1 or 0.0.0.0"
    bad: tuple[str, ...] = ("localhost:9000", "300.1.1.1")

    def parse(self, raw: str) -> str:
        return str(ipaddress.ip_address(raw))


_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"[a-z0-9.-]+|[0-9a-f:.]+")  # a DNS name or IPv4 address, or an IPv6 one (urlsplit lower-cases)


@dataclass(frozen=True)
class Origins:
    """A comma list of web origins (scheme://host[:port], no path), written as a browser sends
    them in `Origin` (lower case, no default port); `*` for any (production refuses it)."""

    accepts: str = ("a comma list of origins such as https://portal.example.com,http://localhost:5173 "
                    "(scheme, host and port; no path), or *")
    bad: tuple[str, ...] = ("portal.example.com", "https://portal.example.com/app", "ftp://x.example",
                            "https://user@x.example", "https://x.example:99999")

    def parse(self, raw: str) -> tuple[str, ...]:
        if raw == "*":
            return ("*",)
        found = []
        for item in (part.strip().removesuffix("/") for part in raw.split(",")):
            if not item:
                continue
            parts = urlsplit(item)
            port = parts.port  # a port that is not a number, or out of range, raises ValueError here
            scheme = parts.scheme.lower()
            if (scheme not in _DEFAULT_PORTS or not _HOST.fullmatch(parts.hostname or "") or parts.username
                    or parts.password or parts.path or parts.query or parts.fragment or item.endswith(("?", "#"))):
                raise ValueError(item)
            host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
            found.append(f"{scheme}://{host}" + (f":{port}" if port not in (None, _DEFAULT_PORTS[scheme]) else ""))
        return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class StrongSecret:
    """A signing key: at least `length` characters, not a repeated pattern (no period of half its
    length or less), and at least `bits` bits by the estimate length x (Shannon entropy of its
    own characters). 32 random hex digits estimate at 90 bits or more, all but never below 85."""

    length: int = 32
    bits: int = 80
    refused: str = "is too weak (value not shown)"

    @property
    def accepts(self) -> str:
        return (f"a random key: at least {self.length} characters, no spaces, no repeated pattern, at least {self.bits} bits "
                "by the README's estimate (for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')")

    @property
    def bad(self) -> tuple[str, ...]:
        return ("short", "a" * 48, "changeme-" * 4, "0123456789abcdef" * 2, "aAbB" * 4 + "a" * 16 + "b" * 16,
                "x" * 40 + " with a space")

    def parse(self, raw: str) -> str:
        periodic = any(raw[p:] == raw[:-p] for p in range(1, len(raw) // 2 + 1))
        # No spaces or controls: a key or token goes into headers and shell variables as one word.
        if len(raw) < self.length or periodic or not raw.isprintable() or any(c.isspace() for c in raw) \
                or estimated_bits(raw) < self.bits:
            raise ValueError(raw)
        return raw


def estimated_bits(secret: str) -> float:
    """Length x the Shannon entropy of the secret's character frequencies: 0 for one repeated
    character, ~122 for 32 random hex digits, ~260 for `secrets.token_urlsafe(48)`."""
    counts = Counter(secret)
    n = len(secret)
    return n * -sum(c / n * math.log2(c / n) for c in counts.values())


class Kind(Protocol):
    accepts: str
    bad: tuple[str, ...]

    def parse(self, raw: str) -> object: ...
