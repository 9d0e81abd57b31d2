"""Invoice downloads: `GET /invoices/{id}.pdf` and `GET /invoices.zip`, opened by signed links.

The links come from `Invoice.pdfUrl` and `Organization.invoicesArchiveUrl`, which hand
them out only to the organization's OWNER and ADMINs; here the link alone is the
authorization (a browser following it sends no bearer token). A link that was changed,
is incomplete or has expired gets 403 and a one-sentence reason, nothing more.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from auth.signed_links import ExpiredLink, InvalidLink
from datasources.errors import GatewayError
from gateway.services import Services, request_context
from resolvers import invoice_documents as documents

EXPIRED = "This link has expired; request a new one."
INVALID = "This link is not valid."
NO_INVOICE = "There is no such invoice."
# The files are a customer's billing records: no shared cache may keep them, and the
# signed URL must not travel on in a Referer.
PRIVATE = {"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer",
           "X-Content-Type-Options": "nosniff"}


async def invoice_pdf(request: Request) -> Response:
    invoice_id = request.path_params["invoice_id"]
    return await _download(request, lambda secret, now: documents.read_pdf_link(
        secret, invoice_id, request.query_params, now=now))


async def invoices_zip(request: Request) -> Response:
    return await _download(request, lambda secret, now: documents.read_archive_link(
        secret, request.query_params, now=now))


Link = documents.PdfLink | documents.ArchiveLink


async def _download(request: Request, read_link: Callable[[str, float], Link]) -> Response:
    """`read_link(secret, now)` checks the link and tells what it opens."""
    services: Services = request.app.state.services
    request_id = uuid.uuid4().hex
    try:
        link = read_link(services.settings.secret_key, time.time())
    except ExpiredLink:
        return _error(403, "FORBIDDEN", EXPIRED, request_id)
    except InvalidLink:
        return _error(403, "FORBIDDEN", INVALID, request_id)
    try:
        file = await link.download(request_context(services, request, request_id),
                                   timeout_seconds=services.settings.provider_timeout_seconds)
    except GatewayError as exc:
        return _failed(exc, request_id)
    if file is None:
        return _error(404, "NOT_FOUND", NO_INVOICE, request_id)
    return Response(file.content, media_type=file.media_type, headers={
        **PRIVATE, "Content-Disposition": f'attachment; filename="{file.name}"', "X-Request-Id": request_id})


def _failed(exc: GatewayError, request_id: str) -> Response:
    """The gateway's own errors: provider or database unavailable, too many invoices by now."""
    status = {"BAD_USER_INPUT": 400, "NOT_FOUND": 404}.get(exc.code, 503 if exc.code.endswith("_UNAVAILABLE") else 500)
    return _error(status, exc.code, exc.message, request_id)


def _error(status: int, code: str, message: str, request_id: str) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return Response(json.dumps(body), status_code=status, media_type="application/json",
                    headers={**PRIVATE, "X-Request-Id": request_id})
