"""The provider's own PDF of an invoice (Stripe's `invoice_pdf`), as bytes.

Stripe hands out the PDF as a URL on its own hosts that answers without our API key (it
redirects to the file), so it is fetched over plain HTTPS rather than through the SDK, but
behind the same circuit breaker as every other provider request: a provider that is down
fails fast here too. The emulator never has a PDF; callers render one then.
"""

from __future__ import annotations

import asyncio

import httpx

from datasources.errors import ProviderUnavailable
from datasources.instrumentation import count_provider_call
from datasources.payments.client import UNAVAILABLE, PaymentsClient
from datasources.payments.records import Invoice

# Stripe's invoice PDFs are tens of kilobytes; anything this large is not one.
MAX_PDF_BYTES = 20 * 1024 * 1024
PDF_MAGIC = b"%PDF-"


async def provider_invoice_pdf(payments: PaymentsClient, invoice: Invoice, *,
                               timeout_seconds: float = 10.0) -> bytes | None:
    """The PDF the provider made for the invoice; None when it has none.

    ProviderUnavailable when it has one but it cannot be fetched within `timeout_seconds`,
    or what comes back is not a PDF: serving a PDF of our own instead would give the
    customer a second, different document for the same invoice.
    """
    url = invoice.pdf_url
    if not url:
        return None
    if not url.startswith(("https://", "http://")):
        raise ProviderUnavailable(UNAVAILABLE)

    async def fetch() -> bytes:
        count_provider_call()
        try:
            async with asyncio.timeout(timeout_seconds), httpx.AsyncClient(
                    follow_redirects=True, timeout=timeout_seconds) as http:
                async with http.stream("GET", url) as response:
                    if response.status_code != 200:
                        raise ProviderUnavailable(UNAVAILABLE)
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_PDF_BYTES:
                            raise ProviderUnavailable(UNAVAILABLE)
        except (httpx.HTTPError, TimeoutError):
            raise ProviderUnavailable(UNAVAILABLE) from None
        if not body.startswith(PDF_MAGIC):
            raise ProviderUnavailable(UNAVAILABLE)
        return bytes(body)

    return await payments.breaker.call(fetch)
