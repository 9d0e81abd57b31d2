"""`POST /webhooks/payments`: the payment provider's events, verified, recorded once, applied.

Answers, as the provider reads them (it delivers again after anything but a 2xx):
- 200 for every verified event: new, redelivered (`duplicate`), or of a type the gateway
  does not act on (`applied: false`);
- 400 for a delivery that is not verified (missing or wrong signature, a timestamp more
  than five minutes old) or not an event: nothing is recorded, and a redelivery of the
  same bytes gets the same answer;
- 413 for a body over 1 MiB, 503 while the signing secret is not configured or PostgreSQL
  cannot be reached (the provider retries later).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from datasources.errors import DatabaseUnavailable
from datasources.payments.webhooks import InvalidWebhook, verify_event
from resolvers import provider_events

MAX_BODY_BYTES = 1 << 20  # provider events are a few KiB; an invoice with many lines stays far below this

log = logging.getLogger("gateway.webhooks")


class _TooLarge(Exception):
    pass


async def payment_webhook(request: Request) -> JSONResponse:
    services = getattr(request.app.state, "services", None)
    if services is None or not services.settings.stripe_webhook_secret:
        return _answer(503, error="Webhooks are not configured: set STRIPE_WEBHOOK_SECRET to the endpoint's "
                                  "signing secret.")
    try:
        body = await _body(request)
    except _TooLarge:
        return _answer(413, error=f"The body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        event = verify_event(body, request.headers.get("stripe-signature"), services.settings.stripe_webhook_secret)
    except InvalidWebhook as refused:
        log.warning("webhook refused: %s", refused.message)
        return _answer(400, error=refused.message, reason=refused.extensions["reason"])
    try:
        receipt = await provider_events.receive(services.db, event)
    except DatabaseUnavailable as exc:
        return _answer(503, error=exc.message)
    log.info("provider event %s (%s): %s", event.id, event.type,
             "duplicate" if receipt.duplicate else "applied" if receipt.applied else "recorded, ignored")
    return _answer(200, received=True, eventId=receipt.event_id, duplicate=receipt.duplicate,
                   applied=receipt.applied)


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(status: int, **body: object) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
