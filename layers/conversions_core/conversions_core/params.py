"""Path parameters as the API declares them: ids in digits, described in the OpenAPI document.

Kept apart from the models so that code without an HTTP route (the counting function, the
seed import) does not import Powertools' event handler.
"""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import BeforeValidator

from conversions_core.values import PositiveId, text_id

__all__ = ["ConversionIdPath", "GoalIdPath"]

ConversionIdPath = Annotated[PositiveId, BeforeValidator(text_id), Path(description="The conversion's id")]
GoalIdPath = Annotated[PositiveId, BeforeValidator(text_id), Path(description="The goal's id")]
