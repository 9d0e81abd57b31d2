"""Persisted operations: a client sends the SHA-256 of a registered operation instead of its text.

The registry holds every `operations/*.graphql` file, keyed by the hex SHA-256 of the file's
exact bytes, and is loaded once when the app starts. In development it also remembers what
clients register with Apollo's automatic persisted queries (APQ: the text and its hash in
one request, then the hash alone), in a small LRU map. Production never learns from clients.

`python -m gateway.persisted [DIRECTORY]` prints `<hash> <file>` for every registered operation.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger("gateway.persisted")

# How many client-registered (APQ) operations development remembers, and the longest text it keeps.
LEARNED_CAPACITY = 1_000
MAX_LEARNED_LENGTH = 64 * 1024


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class OperationRegistry:
    """Registered operations by hash, plus (when a caller learns them) client-registered ones."""

    def __init__(self, operations: Mapping[str, str] | None = None, files: Mapping[str, str] | None = None,
                 *, learned_capacity: int = LEARNED_CAPACITY) -> None:
        self._operations = {h.lower(): text for h, text in (operations or {}).items()}
        self._files = {h.lower(): name for h, name in (files or {}).items()}
        self._learned: OrderedDict[str, str] = OrderedDict()
        self._capacity = learned_capacity

    @classmethod
    def from_texts(cls, texts: Mapping[str, str], **kwargs: int) -> "OperationRegistry":
        """From {file name: text}."""
        operations, files = {}, {}
        for name, text in texts.items():
            digest = sha256_hex(text)
            operations[digest], files[digest] = text, name
        return cls(operations, files, **kwargs)

    @classmethod
    def from_directory(cls, path: Path | str, **kwargs: int) -> "OperationRegistry":
        """Every `*.graphql` file of the directory, hashed over its exact bytes (no newline translation).

        A directory that does not exist gives an empty registry (an installed package has no
        `operations/`); the log says so.
        """
        directory = Path(path)
        if not directory.is_dir():
            log.warning("no persisted operations: %s is not a directory", directory)
            return cls(**kwargs)
        texts = {file.name: file.read_bytes().decode("utf-8") for file in sorted(directory.glob("*.graphql"))}
        return cls.from_texts(texts, **kwargs)

    def get(self, sha256: str) -> str | None:
        """The text of a registered operation, or of one learned from a client; None when unknown."""
        key = sha256.lower()
        text = self._operations.get(key)
        if text is not None:
            return text
        text = self._learned.get(key)
        if text is not None:
            self._learned.move_to_end(key)
        return text

    def is_registered(self, sha256: str) -> bool:
        """Registered at start (from the directory), as opposed to learned from a client."""
        return sha256.lower() in self._operations

    def hashes(self) -> list[str]:
        """The registered operations' hashes (never the learned ones), sorted."""
        return sorted(self._operations)

    def file(self, sha256: str) -> str | None:
        return self._files.get(sha256.lower())

    def learn(self, sha256: str, text: str) -> bool:
        """Remember a client-registered operation (APQ). The caller has checked that the hash is
        the text's and that it may learn at all (development only). False when not kept."""
        key = sha256.lower()
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


def main(argv: list[str] | None = None) -> int:
    from gateway.settings import DEFAULT_OPERATIONS_DIR

    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print("usage: python -m gateway.persisted [DIRECTORY]   (default: the repository's operations/)")
        return 0
    directory = Path(args[0]) if args else DEFAULT_OPERATIONS_DIR
    registry = OperationRegistry.from_directory(directory)
    for digest in registry.hashes():
        print(f"{digest} {directory / (registry.file(digest) or '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
