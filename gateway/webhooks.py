"""`POST /webhooks/payments`: the payment provider's events, verified, recorded once, applied.

Answers, as the provider reads them (it delivers again after anything but a 2xx):
- 200 for every verified event: new, redelivered (`duplicate`), or of a type the gateway
  does not act on (`applied: false`);
- 400 for a delivery that is not an event (not JSON, or nested deeper than the gateway
  allows, checked first) or is not verified (missing or wrong signature, a timestamp more
  than five minutes old): nothing is recorded, and a redelivery of the same bytes gets
  the same answer;
- 413 for a body over MAX_BODY_BYTES (1 MiB by default; provider events are a few KiB),
  503 while the signing secret is not configured or PostgreSQL cannot be reached (the
  provider retries later).
"""

from __future__ import annotations

import logging

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse

from datasources.errors import DatabaseUnavailable
from datasources.payments.webhooks import InvalidWebhook, verify_event
from gateway.bodies import BodyTooLarge, InvalidJSON, load_json
from gateway.services import Services
from loaders import billing
from resolvers import provider_events

log = logging.getLogger("gateway.webhooks")


async def payment_webhook(request: Request) -> JSONResponse:
    services = getattr(request.app.state, "services", None)
    if services is None or not services.settings.stripe_webhook_secret:
        return _answer(503, error="Webhooks are not configured: set STRIPE_WEBHOOK_SECRET to the endpoint's "
                                  "signing secret.")
    try:
        body = await request.body()
    except BodyTooLarge as exc:
        return _answer(413, error=str(exc))
    try:
        load_json(body, "The body")  # the SDK walks the event recursively: no deeper than the gateway allows
    except InvalidJSON as exc:
        return _answer(400, error=str(exc), reason="MALFORMED_BODY")
    try:
        event = verify_event(body, request.headers.get("stripe-signature"), services.settings.stripe_webhook_secret)
    except InvalidWebhook as refused:
        log.warning("webhook refused: %s", refused.message)
        return _answer(400, error=refused.message, reason=refused.extensions["reason"])
    try:
        receipt = await provider_events.receive(services.db, event, services.payments,
                                                services.settings.payment_grace_days)
    except DatabaseUnavailable as exc:
        return _answer(503, error=exc.message)
    log.info("provider event %s (%s): %s", event.id, event.type,
             "duplicate" if receipt.duplicate else "applied" if receipt.applied else "recorded, ignored")
    # After the answer: the provider waits for no fetch of ours, and the next screen for none either.
    refill = BackgroundTask(_refill, services, receipt.dropped) if receipt.dropped else None
    return _answer(200, refill, received=True, eventId=receipt.event_id, duplicate=receipt.duplicate,
                   applied=receipt.applied)


async def _refill(services: Services, customer_id: str) -> None:
    """The customer's billing lists fetched into the mirror again; a failure leaves them to the next read."""
    try:
        await billing.refresh(services.db, services.payments, [customer_id])
    except Exception:  # nothing waits for this: a line in the log, and the next read fetches
        log.warning("billing mirror: refill of %s after its event failed", customer_id, exc_info=True)


def _answer(status: int, background: BackgroundTask | None = None, **body: object) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"}, background=background)
