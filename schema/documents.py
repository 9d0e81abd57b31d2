"""GraphQL documents, parsed once per text for the whole request path.

Admission, the request log, cost and execution all ask for the same text's document: one
bounded cache serves them, so a known text is a dictionary lookup (a `str` keeps its hash)
and never a walk of the document, which is what hashing a `DocumentNode` costs.
"""

from __future__ import annotations

from functools import lru_cache

from graphql import DocumentNode, parse

MAX_TOKENS = 5_000


@lru_cache(maxsize=512)
def parse_document(query: str) -> DocumentNode:
    """Raises GraphQLError for a document that does not parse or has too many tokens."""
    return parse(query, max_tokens=MAX_TOKENS)
