"""Tax IDs on invoices: which shape each of the provider's types takes.

A value is checked against its type's shape, written from the example the provider documents for
it (https://docs.stripe.com/billing/customer/tax-ids), after spaces, dots, dashes, slashes and
commas are taken out: "CHE-123.456.789 MWST" is checked as CHE123456789MWST. It goes to the
provider as the person typed it (trimmed), since that is how it prints on invoices; the provider
then checks it again and may refuse it (INVALID too). Types without a shape here are checked
for length and characters only, and by the provider; the README says which.
No checksum is computed: the provider's own checks (and, for EU VAT, its VIES verification)
are the authority, and a checksum the provider does not apply would refuse numbers it accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from datasources.payments.tax_ids import PROVIDER_TYPES
from resolvers.user_errors import Problem

MAX_LENGTH = 40
_SEPARATORS = re.compile(r"[ .\-/,]")
_ANY = re.compile(r"[0-9A-Z]{2,30}", re.ASCII)
# EU VAT numbers: member state prefix (EL: Greece, XI: Northern Ireland), 8 to 12 characters.
EU_PREFIXES = "AT BE BG CY CZ DE DK EE EL ES FI FR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK XI".split()

# type: (shape of the compact value, the provider's example)
SHAPES: dict[str, tuple[str, str]] = {
    "ad_nrt": (r"[A-Z]\d{6}[A-Z]", "A-123456-Z"),
    "ae_trn": (r"\d{15}", "123456789012345"),
    "ar_cuit": (r"\d{11}", "12-3456789-01"),
    "au_abn": (r"\d{11}", "12345678912"),
    "au_arn": (r"\d{12}", "123456789123"),
    "bg_uic": (r"\d{9}", "123456789"),
    "bh_vat": (r"\d{15}", "123456789012345"),
    "br_cnpj": (r"\d{14}", "01.234.456/5432-10"),
    "br_cpf": (r"\d{11}", "123.456.789-87"),
    "ca_bn": (r"\d{9}", "123456789"),
    "ca_gst_hst": (r"\d{9}RT\d{4}", "123456789RT0002"),
    "ca_pst_bc": (r"PST\d{8}", "PST-1234-5678"),
    "ca_pst_mb": (r"\d{7}", "123456-7"),
    "ca_pst_sk": (r"\d{7}", "1234567"),
    "ca_qst": (r"\d{10}TQ\d{4}", "1234567890TQ1234"),
    "ch_uid": (r"CHE\d{9}", "CHE-123.456.789"),
    "ch_vat": (r"CHE\d{9}(?:MWST|TVA|IVA)", "CHE-123.456.789 MWST"),
    "cl_tin": (r"\d{7,8}[0-9K]", "12.345.678-K"),
    "cn_tin": (r"[0-9A-Z]{18}", "123456789012345678"),
    "co_nit": (r"\d{10}", "123.456.789-0"),
    "de_stn": (r"\d{10,13}", "1234567890"),
    "ec_ruc": (r"\d{13}", "1234567890001"),
    "eg_tin": (r"\d{9}", "123456789"),
    "es_cif": (r"[A-Z]\d{7}[0-9A-Z]", "A12345678"),
    "eu_oss_vat": (r"EU\d{9}", "EU123456789"),
    "eu_vat": (rf"(?:{'|'.join(EU_PREFIXES)})[0-9A-Z]{{8,12}}", "DE123456789"),
    "gb_vat": (r"GB(?:\d{9}|\d{12}|GD\d{3}|HA\d{3})", "GB123456789"),
    "ge_vat": (r"\d{9}", "123456789"),
    "hk_br": (r"\d{8}", "12345678"),
    "hr_oib": (r"\d{11}", "12345678901"),
    "hu_tin": (r"\d{11}", "12345678-1-23"),
    "id_npwp": (r"\d{15,16}", "012.345.678.9-012.345"),
    "il_vat": (r"\d{9}", "000012345"),
    "in_gst": (r"\d{2}[A-Z]{5}\d{4}[A-Z][0-9A-Z]Z[0-9A-Z]", "12ABCDE3456FGZH"),
    "is_vat": (r"\d{5,6}", "123456"),
    "jp_cn": (r"\d{13}", "1234567891234"),
    "jp_rn": (r"\d{5}", "12345"),
    "jp_trn": (r"T\d{13}", "T1234567891234"),
    "ke_pin": (r"[A-Z]\d{9}[A-Z]", "P000111111A"),
    "kr_brn": (r"\d{10}", "123-45-67890"),
    "kz_bin": (r"\d{12}", "123456789012"),
    "li_uid": (r"CHE\d{9}", "CHE123456789"),
    "li_vat": (r"\d{5}", "12345"),
    "mx_rfc": (r"[A-Z&Ñ]{3,4}\d{6}[0-9A-Z]{3}", "ABC010203AB9"),
    "my_frp": (r"\d{8}", "12345678"),
    "my_itn": (r"C?\d{10,11}", "C 1234567890"),
    "my_sst": (r"[A-Z]\d{14}", "A12-3456-78912345"),
    "ng_tin": (r"\d{12}", "12345678-0001"),
    "no_vat": (r"\d{9}MVA", "123456789MVA"),
    "no_voec": (r"\d{7}", "1234567"),
    "nz_gst": (r"\d{8,9}", "123456789"),
    "om_vat": (r"OM\d{10}", "OM1234567890"),
    "pe_ruc": (r"\d{11}", "12345678901"),
    "ph_tin": (r"\d{12}", "123456789012"),
    "pl_nip": (r"\d{10}", "1234567890"),
    "ro_tin": (r"\d{13}", "1234567890123"),
    "rs_pib": (r"\d{9}", "123456789"),
    "ru_inn": (r"\d{10}|\d{12}", "1234567891"),
    "ru_kpp": (r"\d{9}", "123456789"),
    "sa_vat": (r"\d{15}", "123456789012345"),
    "sg_gst": (r"M\d{8}[A-Z]", "M12345678X"),
    "sg_uen": (r"\d{8,9}[A-Z]|[TSR]\d{2}[A-Z]{2}\d{4}[A-Z]", "123456789F"),
    "si_tin": (r"\d{8}", "12345678"),
    "sv_nit": (r"\d{14}", "1234-567890-123-4"),
    "th_vat": (r"\d{13}", "1234567891234"),
    "tr_tin": (r"\d{10}", "0123456789"),
    "tw_vat": (r"\d{8}", "12345678"),
    "ua_vat": (r"\d{9,12}", "123456789"),
    "us_ein": (r"\d{9}", "12-3456789"),
    "uy_ruc": (r"\d{12}", "123456789012"),
    "ve_rif": (r"[A-Z]\d{9}", "A-12345678-9"),
    "vn_tin": (r"\d{10}(?:\d{3})?", "1234567890"),
    "za_vat": (r"4\d{9}", "4123456789"),
}
# ASCII: \d would take any script's digits (fullwidth, Arabic-Indic), which no tax office issues.
_COMPILED = {t: re.compile(shape, re.ASCII) for t, (shape, _) in SHAPES.items()}
assert set(SHAPES) <= set(PROVIDER_TYPES), set(SHAPES) - set(PROVIDER_TYPES)


@dataclass(frozen=True)
class TaxIdChange:
    """A tax ID to set; an empty value removes the one set."""

    type: str
    value: str


def compact(value: str) -> str:
    return _SEPARATORS.sub("", value).upper()


def problem(change: TaxIdChange, field: tuple[str, ...]) -> Problem | None:
    """INVALID unless `change.value` takes its type's shape (an empty value is a removal)."""
    value = change.value.strip()
    if not value:
        return None
    if change.type not in PROVIDER_TYPES:
        return Problem((*field, "type"), "Choose one of the payment provider's tax ID types.", "INVALID")
    known = change.type in SHAPES
    if len(value) <= MAX_LENGTH and (_COMPILED[change.type] if known else _ANY).fullmatch(compact(value)):
        return None
    example = f", such as \"{SHAPES[change.type][1]}\"" if known else ""
    return Problem((*field, "value"), f"This is not a {change.type} tax ID{example}.", "INVALID")


def stored_value(change: TaxIdChange) -> str | None:
    """What goes to the provider: EU VAT numbers compact (as before, so an unchanged one stays
    equal), every other type as typed; None removes."""
    value = change.value.strip()
    if not value:
        return None
    return compact(value) if change.type == "eu_vat" else " ".join(value.split())
