"""The gateway's own errors: one flat hierarchy every layer may raise.

It lives at the bottom of the layers so that datasources can translate driver and
provider exceptions into it at their boundary, and the HTTP layer maps each class
to one `extensions.code` in a single place.
"""


class GatewayError(Exception):
    """An expected failure the client is told about, with a stable code."""

    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: object) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions


class Unauthenticated(GatewayError):
    """No valid credentials: missing, wrong, malformed, expired or revoked."""

    code = "UNAUTHENTICATED"


class Forbidden(GatewayError):
    """The viewer is known but may not do this."""

    code = "FORBIDDEN"


class NotFound(GatewayError):
    """The object does not exist or is not visible to the viewer."""

    code = "NOT_FOUND"


class BadUserInput(GatewayError):
    """The request is well-formed GraphQL but its values are unusable."""

    code = "BAD_USER_INPUT"


class ProviderUnavailable(GatewayError):
    """The payment provider could not be reached or answered with a server error."""

    code = "PROVIDER_UNAVAILABLE"


class PaymentDeclined(GatewayError):
    """The provider refused a card or payment; `reason` is one of our enum values."""

    code = "PAYMENT_DECLINED"


class DatabaseUnavailable(GatewayError):
    """PostgreSQL could not be reached in time."""

    code = "DATABASE_UNAVAILABLE"
