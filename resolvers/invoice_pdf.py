"""An invoice rendered as a PDF (fpdf2), for providers that have no PDF of their own.

The PDF shows what the portal shows: the same statuses, the same amounts in the same
decimal notation as `Money.decimal`, so a customer comparing the screen with the paper
finds the same figures.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from datasources.payments.records import Customer, Invoice

# The built-in PDF fonts carry one 8-bit code page; Windows-1252 also has "€" and typographic
# quotes. Embedding a Unicode TTF would make the output depend on fonts found on the host.
ENCODING = "windows-1252"
FONT = "Helvetica"
HEADINGS = FontFace(emphasis="BOLD", fill_color=(235, 235, 235))


@dataclass(frozen=True)
class InvoiceDocument:
    """Everything a rendered invoice shows."""

    vendor: str
    invoice: Invoice
    status: str  # as the portal shows it (resolvers.billing.portal_status)
    customer: Customer | None  # the billing details at the provider; None when it has none
    organization_name: str  # printed when the customer has no company name


def decimal(amount: int) -> str:
    """Minor units as the API's `Money.decimal` writes them: "-1234.50"."""
    sign = "-" if amount < 0 else ""
    whole, cents = divmod(abs(amount), 100)
    return f"{sign}{whole}.{cents:02d}"


def money(amount: int, currency: str) -> str:
    return f"{decimal(amount)} {currency}"


def render_invoice_pdf(document: InvoiceDocument) -> bytes:
    invoice = document.invoice
    pdf = FPDF(format="A4")
    pdf.core_fonts_encoding = ENCODING
    title = f"Invoice {invoice.number or invoice.id}"
    pdf.set_title(_text(title))
    pdf.set_author(_text(document.vendor))
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()
    width = pdf.epw

    pdf.set_font(FONT, style="B", size=18)
    pdf.cell(width / 2, 10, _text(document.vendor))
    pdf.cell(width / 2, 10, "INVOICE", align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)

    top = pdf.get_y()
    _block(pdf, "Bill to", _bill_to(document), x=pdf.l_margin, width=width * 0.55)
    bottom = pdf.get_y()
    pdf.set_y(top)
    _block(pdf, "Invoice", [
        f"Number: {invoice.number or 'not yet issued'}",
        f"Issued: {_date(invoice.created)}",
        f"Due: {_date(invoice.due_date) if invoice.due_date else 'no due date'}",
        f"Status: {document.status}",
        f"Currency: {invoice.currency}",
    ], x=pdf.l_margin + width * 0.6, width=width * 0.4)
    pdf.set_y(max(bottom, pdf.get_y()) + 6)

    pdf.set_font(FONT, size=10)
    with pdf.table(col_widths=(6, 1, 2), text_align=("LEFT", "RIGHT", "RIGHT"),
                   headings_style=HEADINGS) as table:
        table.row(("Description", "Quantity", "Amount"))
        for line in invoice.lines:
            table.row((_text(line.description), str(line.quantity), money(line.amount, line.currency)))
    pdf.ln(4)

    for label, amount, bold in (("Subtotal", invoice.subtotal, False), ("Tax", invoice.tax, False),
                                ("Total", invoice.total, True), ("Amount due", invoice.amount_due, True)):
        pdf.set_font(FONT, style="B" if bold else "", size=11)
        pdf.cell(width * 0.75, 7, label, align="R")
        pdf.cell(width * 0.25, 7, money(amount, invoice.currency), align="R",
                 new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    pdf.ln(8)
    pdf.set_font(FONT, style="I", size=8)
    pdf.multi_cell(width, 4, _text(f"Amounts in {invoice.currency}. Issued by {document.vendor}; "
                                   f"provider reference {invoice.id}."))
    return bytes(pdf.output())



def _bill_to(document: InvoiceDocument) -> list[str]:
    customer = document.customer
    lines = [customer.name if customer and customer.name else document.organization_name]
    address = customer.address if customer else None
    if address:
        lines += [part for part in (address.line1, address.line2) if part]
        lines.append(" ".join(p for p in (address.postal_code, address.city) if p))
        lines += [part for part in (address.state, address.country) if part]
    if customer and customer.vat_id:
        vat = (customer.tax_id_type or "eu_vat").endswith("_vat")
        lines.append(f"{'VAT ID' if vat else 'Tax ID'}: {customer.vat_id}")
    if customer and customer.email:
        lines.append(customer.email)
    return [line for line in lines if line]


def _block(pdf: FPDF, heading: str, lines: list[str], *, x: float, width: float) -> None:
    pdf.set_x(x)
    pdf.set_font(FONT, style="B", size=11)
    pdf.cell(width, 6, heading, new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font(FONT, size=10)
    for line in lines:
        pdf.set_x(x)
        pdf.multi_cell(width, 5, _text(line), new_x=XPos.LEFT, new_y=YPos.NEXT)


def _date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def _text(value: str) -> str:
    """`value` in the fonts' code page: letters outside it lose their accents, or become "?"."""
    try:
        value.encode(ENCODING)
        return value
    except UnicodeEncodeError:
        pass
    out = []
    for char in value:
        try:
            char.encode(ENCODING)
            out.append(char)
        except UnicodeEncodeError:
            base = unicodedata.normalize("NFKD", char).encode(ENCODING, "ignore").decode(ENCODING)
            out.append(base or "?")
    return "".join(out)
