"""Lists: a page of one scope's conversions and their total, read from the count buckets.

The total is summed from the buckets of the range (`buckets.signed_cover`). A page after the
first is found by walking the buckets from the side the list starts on: the bucket holding the
page's first conversion is opened into its finer buckets, down to minutes, so that at most one
minute's conversions are read past before the page, whatever its number.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from conversions_core.repository import buckets
from conversions_core.repository.buckets import Run
from conversions_core.repository.dynamo import Table, from_dynamo, to_dynamo
from conversions_core.repository.items import StoredConversion
from conversions_core.repository.keys import LISTED_FIELDS, Scope, count_partition, sort_bounds

_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class Span:
    """`count` conversions from `start` to `end` (exclusive), from a bucket of `level` (None: a
    part-minute counted on the conversions)."""

    start: datetime
    end: datetime
    count: int
    level: int | None


Memo = list[tuple[Run, list[Span]]]


def _stamp(moment: datetime) -> str:
    return moment.isoformat(sep=" ")


class Listing:
    def __init__(self, table: Table):
        self.table = table

    def page(
        self,
        user_id: int,
        scope: Scope,
        low: datetime | None,
        high: datetime | None,
        ascending: bool,
        skip: int,
        wanted: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """`wanted` conversion items after `skip`, between `low` and `high` (inclusive, naive UTC),
        and how many there are in all."""
        # Conversions are stored to the second: a bound inside a second is rounded inwards, and a
        # range that holds no whole second is empty, read or not (DynamoDB refuses a Query whose
        # BETWEEN has its low above its high; moto answers it with nothing).
        if low is not None and low.microsecond:
            low = low.replace(microsecond=0) + _SECOND
        if high is not None:
            high = high.replace(microsecond=0)
        if low is not None and high is not None and low > high:
            return [], 0
        start = max(low or buckets.EARLIEST, buckets.EARLIEST)
        end = min(high + _SECOND if high else buckets.LATEST, buckets.LATEST)
        memo: list[tuple[Run, list[Span]]] = []  # the bucket runs read, for the page's search to reuse
        # A later page walks the range's additive cover: the total is taken from the same runs.
        total = self.count(user_id, scope, start, end, memo, additive=bool(skip))
        bounds = sort_bounds(_stamp(low) if low else None, _stamp(high) if high else None)
        first = skip
        if skip:  # the first page is read as it is; a later one is found from the counts
            if skip >= total:
                return [], total
            span, skip = self._locate(user_id, scope, start, end, ascending, skip, memo)
            if span is None:  # the buckets moved under us (a write settling): nothing there
                return [], total
            if ascending:
                bounds = (max(bounds[0], f"{_stamp(span.start)}#"), bounds[1])
            else:
                bounds = (bounds[0], min(bounds[1], f"{_stamp(span.end - _SECOND)}#~"))
        items = self._read_range(scope, bounds, ascending, skip, wanted)
        # Counts may lag a write by the stream's delay; they never say less than what was read.
        return items, max(total, first + len(items))

    def count(
        self,
        user_id: int,
        scope: Scope,
        start: datetime,
        end: datetime,
        memo: Memo | None = None,
        additive: bool = False,
    ) -> int:
        """Conversions of the scope from `start` to `end` (exclusive): from the fewest buckets
        (`signed_cover`), or from the runs a page's search reads (`cover`, with `additive`)."""
        runs = buckets.cover(start, end) if additive else buckets.signed_cover(start, end)
        return sum(run.sign * span.count for run in runs for span in self.spans(user_id, scope, run, memo))

    def spans(self, user_id: int, scope: Scope, run: Run, memo: Memo | None = None) -> list[Span]:
        """The counted spans of a run, in time order, empty ones left out. With a memo, a run
        inside one already read (or, for a part-minute, the same part-minute) is not read again."""
        for read, found in memo or []:
            if read.level != run.level or not (read.start <= run.start and run.end <= read.end):
                continue
            if run.level is not None:
                return [span for span in found if run.start <= span.start and span.end <= run.end]
            if (read.start, read.end) == (run.start, run.end):  # a part-minute is one count, not divisible
                return found
        spans = self._read_spans(user_id, scope, run)
        if memo is not None:
            memo.append((run, spans))
        return spans

    def conversions_between(self, user_id: int, scope: Scope, start: datetime, end: datetime) -> list[StoredConversion]:
        """The scope's conversions from `start` to `end` (exclusive), at most a minute apart:
        one Query reading what counts of them (statistics' part-minutes)."""
        low, high = sort_bounds(_stamp(start), _stamp(end - _SECOND))
        owner = user_id if scope.kind == "WEBSITE" else None  # a website's partition: the user's own only
        pages = self._listed_query(scope, low, high, LISTED_FIELDS, owner=owner)
        return [StoredConversion.from_item(from_dynamo(item)) for page in pages for item in page["Items"]]

    def _read_spans(self, user_id: int, scope: Scope, run: Run) -> list[Span]:
        if run.level is None:
            low, high = sort_bounds(_stamp(run.start), _stamp(run.end - _SECOND))
            # A website's listing partition is shared by whoever claims the website: count only
            # the user's own (a filter costs no more read units), so no caller learns another's.
            owner = user_id if scope.kind == "WEBSITE" else None
            count = sum(page["Count"] for page in self._listed_query(scope, low, high, owner=owner, Select="COUNT"))
            return [Span(run.start, run.end, count, None)] if count else []
        attribute = scope.count_attribute
        spans = []
        for page in self.table.query(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
            ExpressionAttributeValues=to_dynamo(
                {
                    ":pk": count_partition(user_id),
                    ":low": buckets.label(run.level, run.start),
                    ":high": buckets.label(run.level, run.last_unit),
                }
            ),
            ProjectionExpression="sk, #count",
            ExpressionAttributeNames={"#count": attribute},
        ):
            for item in map(from_dynamo, page["Items"]):
                level, unit = buckets.parse_label(item["sk"])
                if item.get(attribute):
                    spans.append(Span(unit, buckets.following(level, unit), item[attribute], level))
        return spans

    def _locate(
        self, user_id: int, scope: Scope, start: datetime, end: datetime, ascending: bool, skip: int, memo: Memo
    ) -> tuple[Span | None, int]:
        """The finest span holding the `skip`-th conversion from the list's start, and how many of
        the span's conversions come before it."""
        runs = _ordered(buckets.cover(start, end), ascending)
        spans = (s for run in runs for s in self._ordered_spans(user_id, scope, run, ascending, memo))
        span, skip = self._walk(spans, skip)
        while span is not None and skip and span.level is not None and span.level < buckets.FINEST:
            finer = buckets.children(span.level, span.start)
            span, skip = self._walk(iter(self._ordered_spans(user_id, scope, finer, ascending, memo)), skip)
        return span, skip

    def _ordered_spans(self, user_id: int, scope: Scope, run: Run, ascending: bool, memo: Memo) -> list[Span]:
        spans = self.spans(user_id, scope, run, memo)
        return spans if ascending else spans[::-1]

    @staticmethod
    def _walk(spans: Iterator[Span], skip: int) -> tuple[Span | None, int]:
        for span in spans:
            if skip < span.count:
                return span, skip
            skip -= span.count
        return None, skip

    def _listed_query(
        self,
        scope: Scope,
        low: str,
        high: str,
        fields: tuple[str, ...] = (),
        owner: int | None = None,
        **kwargs: Any,
    ) -> Iterator[dict[str, Any]]:
        if scope.index:
            kwargs["IndexName"] = scope.index
        else:
            kwargs["ConsistentRead"] = True  # the website's own list is never stale
        projected = {f"#f{n}": field for n, field in enumerate(fields)}
        if projected:  # fewer attributes to send and parse (the read units are the same)
            kwargs["ProjectionExpression"] = ", ".join(projected)
        values: dict[str, Any] = {":p": scope.partition, ":low": low, ":high": high}
        names = {"#p": scope.key_attribute, **projected}
        if owner is not None:
            kwargs["FilterExpression"], names["#owner"], values[":owner"] = "#owner = :owner", "user_id", owner
        return self.table.query(
            KeyConditionExpression="#p = :p AND sk BETWEEN :low AND :high",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_dynamo(values),
            **kwargs,
        )

    def _read_range(
        self, scope: Scope, bounds: tuple[str, str], ascending: bool, skip: int, wanted: int
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in self._listed_query(scope, *bounds, LISTED_FIELDS, ScanIndexForward=ascending, Limit=skip + wanted):
            items += page["Items"]
            if len(items) >= skip + wanted:
                break
        return [from_dynamo(i) for i in items[skip : skip + wanted]]


def _ordered(runs: list[Run], ascending: bool) -> list[Run]:
    return runs if ascending else runs[::-1]
