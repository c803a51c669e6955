"""Idempotent creates with Powertools' idempotency utility (records in their own TTL'd table)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from pydantic import Field

from conversions_core.errors import ConflictError, DatabaseBusyError, Problem

# Visible ASCII but the comma, which API Gateway uses to join a header sent twice.
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x21-\x2b\x2d-\x7e]+$")]
RECORD_LIFETIME_SECONDS = 24 * 3600
logger = Logger()


class OnceOnly:
    """Runs a create at most once per (user, Idempotency-Key); a retry gets the first result.

    The same key with a different body is a 409, as is a retry while the first is in flight.
    Powertools is imported on first use so that requests without the header don't pay for it.
    """

    def __init__(self, client: Any, table_name: str):
        self._client = client
        self._table_name = table_name
        self._context: Any = None
        self._once: Callable[..., Any] | None = None
        self._config: Any = None
        # What the current request's create made (one request at a time, as in a Lambda container).
        self._made: dict[str, Any] | None = None
        self._create: Callable[[dict[str, Any]], dict[str, Any]] = lambda fields: fields

    def register_lambda_context(self, context: Any) -> None:
        self._context = context

    def run(
        self, create: Callable[[dict[str, Any]], dict[str, Any]], user_id: int, key: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyPersistenceLayerError,
            IdempotencyValidationError,
        )

        once = self._build()
        self._create = create  # this request's create (one request at a time, as in a Lambda container)
        if self._context is not None and hasattr(self._context, "get_remaining_time_in_millis"):
            self._config.register_lambda_context(self._context)
        self._made = None
        try:
            answer: dict[str, Any] = once(request={"user_id": user_id, "key": key, "fields": fields})
            return answer
        except IdempotencyAlreadyInProgressError:
            raise ConflictError(
                Problem("A request with this Idempotency-Key is still in progress; retry shortly", "Idempotency-Key"),
                retry_after=1,
            ) from None
        except IdempotencyValidationError:
            raise ConflictError(
                Problem("This Idempotency-Key was already used with a different body", "Idempotency-Key")
            ) from None
        except IdempotencyPersistenceLayerError:
            if self._made is not None:
                # The conversion is committed; only its idempotency record could not be marked
                # done. A 503 would invite a retry that, once the record expires, makes a second.
                logger.warning("Idempotency record not saved after create; returning the conversion")
                return self._made
            raise DatabaseBusyError("The service is busy; retry shortly") from None

    def _build(self) -> Callable[..., Any]:
        if self._once is not None:
            return self._once
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        persistence = DynamoDBPersistenceLayer(table_name=self._table_name, boto3_client=self._client)
        self._config = IdempotencyConfig(
            event_key_jmespath="[user_id, key]",
            payload_validation_jmespath="fields",
            expires_after_seconds=RECORD_LIFETIME_SECONDS,
        )

        @idempotent_function(data_keyword_argument="request", persistence_store=persistence, config=self._config)
        def once(request: dict[str, Any]) -> dict[str, Any]:
            self._made = self._create(request["fields"])
            return self._made

        self._once = once
        built: Callable[..., Any] = once
        return built
