"""The conversions API's models: requests, responses and the records behind them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from conversions_core.money import CURRENCY_RULE, VALUE_RULE, CurrencyCode, ValueText, format_amount
from conversions_core.repository.items import REFERENCE_FIELDS, ListRequest, Page, StoredConversion, User
from conversions_core.values import (
    MAX_ID,
    RESULTS_PER_PAGE,
    ListBody,
    PositiveId,
    RequestBody,
    contract_error,
)

__all__ = [
    "GOAL_ATTRIBUTES",
    "LIST_PARAMETERS",
    "PARAMETER_RULES",
    "REFERENCE_FIELDS",
    "Conversion",
    "ConversionBody",
    "ConversionCreate",
    "ConversionListBody",
    "ConversionUpdate",
    "DatetimeField",
    "ListRequest",
    "OrderBy",
    "OrderType",
    "Page",
    "User",
]

GOAL_ATTRIBUTES = ("website_id", "type", "name", "path", "key", "is_enabled")
# The list's parameters that its links carry (with `page`).
LIST_PARAMETERS = (
    "goal_id",
    "website_id",
    "datetime_field",
    "datetime_start",
    "datetime_end",
    "order_by",
    "order_type",
    "results_per_page",
)
WORTH_FIELDS = ("value", "currency")
IDEMPOTENCY_KEY_RULE = "Idempotency-Key must be 1 to 255 visible ASCII characters other than a comma"
_DATETIME_RULE = "a UTC datetime as YYYY-MM-DD HH:MM:SS or YYYY-MM-DDTHH:MM[:SS]"
# Titles of the 400 for a value that breaks a parameter's rule.
PARAMETER_RULES = {
    "conversion_id": "conversion_id must be a positive integer",
    "goal_id": "goal_id must be a positive integer",
    "website_id": "website_id must be a positive integer",
    "visitor_id": "visitor_id must be a positive integer, or empty to clear it",
    "session_id": "session_id must be a positive integer, or empty to clear it",
    "event_id": "event_id must be a positive integer, or empty to clear it",
    "datetime_field": "datetime_field must be datetime",
    "datetime_start": f"datetime_start must be {_DATETIME_RULE}",
    "datetime_end": f"datetime_end must be {_DATETIME_RULE}",
    "order_by": "order_by must be one of conversion_id, datetime",
    "order_type": "order_type must be ASC or DESC",
    "page": "page must be a whole number of 1 or more, in digits",
    "results_per_page": "results_per_page must be one of " + ", ".join(map(str, RESULTS_PER_PAGE)),
    "value": VALUE_RULE,
    "currency": CURRENCY_RULE,
    "Idempotency-Key": IDEMPOTENCY_KEY_RULE,
}


def _refuse_goal_attribute(value: Any, info: Any) -> Any:
    raise contract_error(f"{info.field_name} is an attribute of the goal, not of the conversion: change it on the goal")


OrderBy = Literal["conversion_id", "datetime"]
OrderType = Literal["ASC", "DESC"]
DatetimeField = Literal["datetime"]
ClearableId = PositiveId | None
# Read so that sending one is the contract's 400 naming it, but left out of the documented model,
# whose property names exclude them: a client offers no field that can only be refused.
GoalAttribute = SkipJsonSchema[Annotated[Any, AfterValidator(_refuse_goal_attribute)]]


class ConversionCreate(RequestBody):
    """Body of POST /api/goals-conversions (multipart, urlencoded or JSON)."""

    goal_id: PositiveId
    visitor_id: ClearableId = None
    session_id: ClearableId = None
    event_id: ClearableId = None
    value: ValueText = None
    currency: CurrencyCode = None

    def worth(self) -> dict[str, str | None]:
        """The value and currency the client sent (a null as not sent)."""
        return {name: getattr(self, name) for name in WORTH_FIELDS if getattr(self, name) is not None}


class ConversionUpdate(RequestBody):
    """Body of POST /api/goals-conversions/{conversion_id}: only the fields sent are changed. The
    goal's attributes (website_id, type, name, path, key, is_enabled) are changed on the goal."""

    model_config = ConfigDict(json_schema_extra={"propertyNames": {"not": {"enum": list(GOAL_ATTRIBUTES)}}})

    # None reaches the repository, which says why a goal cannot be cleared; documented as not nullable.
    goal_id: Annotated[PositiveId | None, WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_ID})] = None
    visitor_id: ClearableId = None
    session_id: ClearableId = None
    event_id: ClearableId = None
    value: ValueText = None
    currency: CurrencyCode = None
    website_id: GoalAttribute = None
    type: GoalAttribute = None
    name: GoalAttribute = None
    path: GoalAttribute = None
    key: GoalAttribute = None
    is_enabled: GoalAttribute = None

    def changes(self) -> dict[str, Any]:
        """The conversion fields the client sent, with None meaning 'clear'."""
        fields = ("goal_id", *REFERENCE_FIELDS, *WORTH_FIELDS)
        return {name: getattr(self, name) for name in fields if name in self.model_fields_set}


class Conversion(BaseModel):
    """A conversion as the API returns it: every field always present, references null when
    not recorded."""

    id: int
    goal_id: int
    website_id: int
    user_id: int
    visitor_id: int | None
    session_id: int | None
    event_id: int | None
    datetime: str
    value: str | None = Field(description="A decimal with exactly the currency's minor-unit digits", examples=["19.90"])
    currency: str | None = Field(description="ISO 4217 code; null exactly when value is null", examples=["EUR"])

    @classmethod
    def from_stored(cls, stored: StoredConversion) -> Conversion:
        fields = stored.fields()
        if stored.value is not None and stored.currency is not None:
            fields["value"] = format_amount(stored.value, stored.currency)
        return cls.model_validate(fields)


class ConversionBody(BaseModel):
    """Response of get, create and update."""

    data: Conversion


class ConversionListBody(ListBody):
    """Response of the list endpoint."""

    data: list[Conversion]
