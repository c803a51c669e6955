"""What a conversion was worth: an amount in a currency, exact from the request to DynamoDB.

An amount is read from its text (a JSON number is read as the text it was written with, see
conversions_core.bodies), checked against its currency's minor units (ISO 4217, currencies.py),
kept as a Decimal (DynamoDB numbers are exact decimals) and written back with the currency's
digits. No binary float is ever involved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, localcontext
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

from conversions_core.currencies import MINOR_UNITS
from conversions_core.errors import invalid
from conversions_core.values import JSON_NUMBER, contract_error

MAX_WHOLE_DIGITS = 12
MAX_MINOR_UNITS = max(MINOR_UNITS.values())
VALUE_RULE = (
    f"value must be an amount such as 19.90: up to {MAX_WHOLE_DIGITS} digits, then optionally a point and at most"
    " the currency's minor-unit digits (2 for EUR, 0 for JPY, 3 for KWD); in JSON a string or a number without exponent"
)
CURRENCY_RULE = "currency must be an active ISO 4217 currency code in capitals, such as EUR"
_VALUE_TEXT = re.compile(rf"[0-9]{{1,{MAX_WHOLE_DIGITS}}}(?:\.[0-9]*)?")
# Sums of many amounts of 12 digits and 4 decimals stay far within 38 digits (DynamoDB's own limit).
_PRECISION = 38


def value_text(raw: Any) -> str | None:
    """The text of a value as sent (None when none); the contract's 400 for anything else. The
    digits after the point are checked against the currency later (`amount`)."""
    if raw is None or raw == "":  # an empty value clears (in a form, and in JSON alike)
        return None
    if isinstance(raw, dict) and set(raw) == {JSON_NUMBER}:  # a JSON number, as written (see bodies)
        raw = raw[JSON_NUMBER]
    elif isinstance(raw, Decimal):  # a seed file's number
        raw = str(raw)
    elif isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        raw = str(raw)
    if not isinstance(raw, str) or not _VALUE_TEXT.fullmatch(raw):
        raise contract_error(VALUE_RULE)
    return raw


def currency_code(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or raw not in MINOR_UNITS:
        raise contract_error(CURRENCY_RULE)
    return raw


ValueText = Annotated[
    str | None,
    BeforeValidator(value_text),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": rf"^[0-9]{{1,{MAX_WHOLE_DIGITS}}}(\.[0-9]{{0,{MAX_MINOR_UNITS}}})?$"},
                {"type": "null"},
            ],
            "description": "What the conversion was worth, in `currency`: at most the currency's minor-unit digits"
            " after the point. A JSON number without exponent is read exactly too. Empty or null: none.",
            "examples": ["19.90"],
        }
    ),
]
# One schema for every currency field (a component of the OpenAPI document, not 165 codes inline).
Currency = StrEnum("Currency", {code: code for code in sorted(MINOR_UNITS)})  # type: ignore[misc]
Currency.__doc__ = "An active ISO 4217 currency code"
CurrencyCode = Annotated[Currency | None, BeforeValidator(currency_code)]


@dataclass(frozen=True)
class Worth:
    """An amount in a currency."""

    value: Decimal
    currency: str

    @classmethod
    def read(cls, text: str, currency: str) -> Worth:
        """The amount a value's text names in `currency`; a 400 naming value when it has more
        digits after the point than the currency has minor units."""
        currency = str(currency)  # a plain code, not the request model's Currency member
        digits = MINOR_UNITS[currency]
        if len(text.partition(".")[2]) > digits:
            if digits == 0:
                raise invalid("value", f"value must be a whole amount for {currency}, which has no minor unit")
            raise invalid("value", f"value may have at most {digits} digits after the point for {currency}")
        return cls(Decimal(text), currency)

    @classmethod
    def stored(cls, value: Any, currency: Any) -> Worth | None:
        """The worth an item holds (None when it holds none, or one this version cannot read)."""
        if currency not in MINOR_UNITS or isinstance(value, bool) or not isinstance(value, int | Decimal):
            return None
        return cls(Decimal(value), currency)

    def fits(self, currency: str) -> bool:
        """Whether the amount is written exactly with `currency`'s digits."""
        return self.value == quantized(self.value, currency)

    def text(self) -> str:
        return format_amount(self.value, self.currency)


def quantized(amount: Decimal, currency: str) -> Decimal:
    with localcontext() as context:
        context.prec = _PRECISION
        return amount.quantize(Decimal(1).scaleb(-MINOR_UNITS[currency]))


def format_amount(amount: Decimal, currency: str) -> str:
    """An amount with exactly its currency's digits: "19.90" EUR, "1200" JPY."""
    return format(quantized(amount, currency), "f")


def resolve(
    sent: dict[str, str | None], current: Worth | None, default_currency: str | None, *, creating: bool
) -> Worth | None:
    """The worth a create or an update ends with. `sent` holds the `value` and `currency` the
    client sent (None: cleared, or null); `current` is what the record has (a create: its
    goal's default); `default_currency` the currency a value sent alone takes when the record
    has none (its goal's). See the contract's Value section. A create reads a null as a field
    not sent."""
    if creating:
        sent = {name: field for name, field in sent.items() if field is not None}
    if "value" not in sent and "currency" not in sent:
        return current
    text, currency = sent.get("value"), sent.get("currency")
    if text is None and "value" in sent:
        if currency is not None:
            raise invalid("currency", "currency cannot be set while value is cleared: send both, or an empty value")
        return None
    if text is None:
        if "currency" in sent and currency is None:
            raise invalid("currency", "currency cannot be cleared alone: send an empty value to clear both")
        if current is None or creating:
            raise invalid("value", "value is required with currency")
        assert currency is not None
        if not current.fits(currency):
            raise invalid(
                "currency", f"the value {current.text()} has too many digits for {currency}: send a value too"
            )
        return Worth(current.value, str(currency))
    currency = currency or (current.currency if current and not creating else None) or default_currency
    if currency is None:
        raise invalid("currency", "currency is required with value (there is no default currency to take)")
    return Worth.read(text, currency)
