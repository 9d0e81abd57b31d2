"""Persisted operations: a client sends the SHA-256 of a registered operation instead of its text.

The registry is loaded once when the app starts, from two sources:
- every `operations/*.graphql` file (OPERATIONS_DIR), keyed by the SHA-256 of each text a client
  tool hashes it as (gateway/printed.py: graphql-js `print`, graphql-codegen's stable print), and
  of the file's exact bytes, which clients deployed before the printed forms still send;
- a manifest that client tooling writes (PERSISTED_OPERATIONS_MANIFEST): graphql-codegen's
  `persisted-documents.json` (`{"sha256:<hex>" or "<hex>": document}`) or Apollo's persisted
  query manifest (`{"format": "apollo-persisted-query-manifest", "operations": [{"id", "body"}]}`).
  Its keys are taken as they are, after checking that each is the SHA-256 of its document.
A hash names one text and that text runs. A source that cannot be read, a document that does
not parse, or a key that is not its document's hash stops the start with one line.

In development the registry also remembers what clients register with Apollo's automatic
persisted queries (APQ: the text and its hash in one request, then the hash alone), in a small
LRU map. Production never learns from clients.

`python -m gateway.persisted [DIRECTORY]` prints `<hash> <file> <form>` for every registered key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

from graphql import GraphQLSyntaxError, parse

from gateway.printed import printed_forms
from gateway.settings import DEFAULT_OPERATIONS_DIR, Settings, SettingsError

log = logging.getLogger("gateway.persisted")

# How many client-registered (APQ) operations development remembers, and the longest text it keeps.
LEARNED_CAPACITY = 1_000
MAX_LEARNED_LENGTH = 64 * 1024
# The GraphQL-over-HTTP spec's document identifier prefix, which graphql-codegen 6 writes.
SHA256_PREFIX = "sha256:"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
APOLLO_MANIFEST_FORMAT = "apollo-persisted-query-manifest"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def document_key(raw: str) -> str:
    """A hash as clients send it (`sha256:<hex>` or `<hex>`, any case) as the registry keys it."""
    key = raw.strip().lower()
    return key.removeprefix(SHA256_PREFIX)


class OperationRegistry:
    """Registered operations by hash, plus (when a caller learns them) client-registered ones."""

    def __init__(self, operations: Mapping[str, str] | None = None,
                 sources: Mapping[str, tuple[str, str]] | None = None,
                 *, learned_capacity: int = LEARNED_CAPACITY) -> None:
        self._operations = {document_key(h): text for h, text in (operations or {}).items()}
        # hash -> (where it came from: a file's name or the manifest's path, which text it hashes)
        self._sources = {document_key(h): source for h, source in (sources or {}).items()}
        self._learned: OrderedDict[str, str] = OrderedDict()
        self._capacity = learned_capacity

    @classmethod
    def load(cls, directory: Path | str, manifest: Path | str | None = None,
             **kwargs: int) -> "OperationRegistry":
        """The operations of the directory and of the manifest (when given), in one registry."""
        operations, sources = _from_directory(Path(directory))
        if manifest is not None:
            for digest, text in _from_manifest(Path(manifest)).items():
                operations[digest], sources[digest] = text, (str(manifest), "manifest")
        return cls(operations, sources, **kwargs)

    @classmethod
    def from_texts(cls, texts: Mapping[str, str], **kwargs: int) -> "OperationRegistry":
        """From {file name: text}."""
        return cls(*_from_texts(texts, "operations"), **kwargs)

    @classmethod
    def from_directory(cls, path: Path | str, **kwargs: int) -> "OperationRegistry":
        return cls.load(path, **kwargs)

    def get(self, sha256: str) -> str | None:
        """The text of a registered operation, or of one learned from a client; None when unknown."""
        key = document_key(sha256)
        text = self._operations.get(key)
        if text is not None:
            return text
        text = self._learned.get(key)
        if text is not None:
            self._learned.move_to_end(key)
        return text

    def is_registered(self, sha256: str) -> bool:
        """Registered at start (from the directory or the manifest), as opposed to learned from a client."""
        return document_key(sha256) in self._operations

    def hashes(self) -> list[str]:
        """The registered operations' hashes (never the learned ones), sorted."""
        return sorted(self._operations)

    def file(self, sha256: str) -> str | None:
        """Where a registered hash came from: the operation file's name, or the manifest's path."""
        source = self._sources.get(document_key(sha256))
        return source[0] if source else None

    def form(self, sha256: str) -> str | None:
        """Which text of its operation a registered hash is of (see gateway/printed.py)."""
        source = self._sources.get(document_key(sha256))
        return source[1] if source else None

    def learn(self, sha256: str, text: str) -> bool:
        """Remember a client-registered operation (APQ). The caller has checked that the hash is
        the text's and that it may learn at all (development only). False when not kept."""
        key = document_key(sha256)
        if key in self._operations or len(text) > MAX_LEARNED_LENGTH or self._capacity <= 0:
            return False
        self._learned[key] = text
        self._learned.move_to_end(key)
        while len(self._learned) > self._capacity:
            self._learned.popitem(last=False)
        return True

    def learned_count(self) -> int:
        return len(self._learned)

    def __len__(self) -> int:
        return len(self._operations)


def load_operations(settings: Settings) -> OperationRegistry:
    """The registry the settings name: OPERATIONS_DIR and PERSISTED_OPERATIONS_MANIFEST."""
    return OperationRegistry.load(settings.operations_dir, settings.persisted_operations_manifest)


def _from_directory(directory: Path) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Every `*.graphql` file, read as its exact bytes (no newline translation).

    A directory that does not exist gives nothing (an installed package has no `operations/`);
    the log says so.
    """
    if not directory.is_dir():
        log.warning("no persisted operations: %s is not a directory", directory)
        return {}, {}
    texts = {}
    for file in sorted(directory.glob("*.graphql")):
        try:
            texts[file.name] = file.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"OPERATIONS_DIR {directory}: cannot read {file.name}: {exc}") from None
    return _from_texts(texts, f"OPERATIONS_DIR {directory}")


def _from_texts(texts: Mapping[str, str], where: str) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Each text under its own hash, and each printed form under the form's hash."""
    operations: dict[str, str] = {}
    sources: dict[str, tuple[str, str]] = {}
    for name, text in texts.items():
        document = _parsed(text, f"{where}: {name}")
        for form_text, form in {text: "file", **printed_forms(document)}.items():
            digest = sha256_hex(form_text)
            if digest not in operations:
                operations[digest], sources[digest] = form_text, (name, form)
    return operations, sources


def _from_manifest(path: Path) -> dict[str, str]:
    """{hash: document} from graphql-codegen's `persisted-documents.json` or Apollo's manifest."""
    where = f"PERSISTED_OPERATIONS_MANIFEST {path}"
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise SettingsError(f"{where}: cannot read it: {exc.strerror}") from None
    except ValueError as exc:
        raise SettingsError(f"{where}: not JSON: {exc}") from None
    if isinstance(data, dict) and data.get("format") == APOLLO_MANIFEST_FORMAT:
        entries = data.get("operations")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise SettingsError(f"{where}: 'operations' must be a list of objects with 'id' and 'body'")
        pairs = [(e.get("id"), e.get("body")) for e in entries]
    elif isinstance(data, dict):
        pairs = list(data.items())
    else:
        raise SettingsError(f"{where}: expected an object of hash to document "
                            "(graphql-codegen's persisted-documents.json) or an Apollo persisted query manifest")
    documents = {}
    for key, text in pairs:
        if not isinstance(key, str) or not isinstance(text, str):
            raise SettingsError(f"{where}: every hash and document must be a string, not {key!r}")
        digest = document_key(key)
        if not _SHA256_HEX.fullmatch(digest):
            raise SettingsError(f"{where}: {key!r} is not a SHA-256 hash (64 hex digits, optionally after "
                                "'sha256:'); with graphql-codegen, set persistedDocuments.hashAlgorithm to 'sha256'")
        _parsed(text, f"{where}: {key}")
        if sha256_hex(text) != digest:
            raise SettingsError(f"{where}: {key} is not the SHA-256 of its document ({sha256_hex(text)})")
        documents[digest] = text
    return documents


def _parsed(text: str, where: str) -> object:
    try:
        return parse(text)
    except GraphQLSyntaxError as exc:
        line, column = (exc.locations[0].line, exc.locations[0].column) if exc.locations else (0, 0)
        raise SettingsError(f"{where} does not parse: {exc.message} (line {line}, column {column})") from None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print("usage: python -m gateway.persisted [DIRECTORY]   (default: the repository's operations/)")
        return 0
    directory = Path(args[0]) if args else DEFAULT_OPERATIONS_DIR
    try:
        registry = OperationRegistry.from_directory(directory)
    except SettingsError as exc:
        print(f"python -m gateway.persisted: {exc}", file=sys.stderr)
        return 2
    for digest in sorted(registry.hashes(), key=lambda d: (registry.file(d) or "", registry.form(d) or "")):
        print(f"{digest} {directory / (registry.file(digest) or '')} {registry.form(digest)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
