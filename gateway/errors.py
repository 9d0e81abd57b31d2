"""GraphQL errors as clients see them: one `extensions.code` per error, unexpected ones masked."""

from __future__ import annotations

import logging
import re
from typing import Any

from graphql import GraphQLError

from datasources.errors import GatewayError

log = logging.getLogger("gateway.errors")
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def is_request_error(error: GraphQLError) -> bool:
    """Raised before execution (parse, validation, variables): such errors carry no path."""
    return error.path is None and not isinstance(error.original_error, GatewayError)


def format_error(error: GraphQLError, *, pre_execution: bool, production: bool,
                 request_id: str) -> dict[str, Any]:
    formatted = error.formatted
    original = error.original_error
    if isinstance(original, GatewayError):
        formatted["message"] = original.message
        formatted["extensions"] = {**original.extensions, "code": original.code}
    elif original is not None and not isinstance(original, GraphQLError):
        log.error("unexpected error in request %s at %s", request_id, error.path,
                  exc_info=(type(original), original, original.__traceback__), extra={"request_id": request_id})
        if production:
            formatted["message"] = f"Internal server error (request id {request_id})."
        formatted["extensions"] = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
    elif pre_execution:
        code = "GRAPHQL_PARSE_FAILED" if error.message.startswith("Syntax Error") else "GRAPHQL_VALIDATION_FAILED"
        formatted["extensions"] = {"code": code}
        if production:  # suggestions would map out the schema that introspection hides
            formatted["message"] = _SUGGESTION.sub("", formatted["message"])
    elif error.path is None:
        formatted["extensions"] = {"code": "BAD_USER_INPUT"}  # variables that do not coerce
    else:
        formatted["extensions"] = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
    return formatted
