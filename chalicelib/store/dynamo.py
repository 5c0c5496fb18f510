"""DynamoDB primitives: a table wrapper and errors translated once (the item codec is store/items.py, the
expressions built from named parts store/expressions.py).

Every store talks to DynamoDB through `Table` (`Table.transact` for transactions, which may span tables); no
store calls the low-level client itself. A `ClientError` is translated here, by its error code:
`ConditionFailed` and `TransactionCancelled` for the stores to interpret, the domain's `Throttled`
when capacity ran out after botocore's own retries; anything else is a bug or an outage and
propagates unchanged.
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.domain.errors import PayloadTooLarge, Throttled, Unavailable
from chalicelib.store.aws import is_transient
from chalicelib.store.expressions import (
    Condition,
    Index,
    SortRange,
    Update,
    key_condition,
    with_expressions,
)
from chalicelib.store.items import Item, from_item, item_size, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_WRITE_LIMIT = 25  # DynamoDB's limits, enforced here because moto does not enforce them
TRANSACTION_LIMIT = 100
MAX_ITEM_BYTES = 400 * 1024
UNPROCESSED_ATTEMPTS = 8
BATCH_GET_LIMIT = 100
CONFLICT_ATTEMPTS = 8
THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException",
                              "RequestLimitExceeded", "InternalServerError"})


# --- errors ---------------------------------------------------------------------------------------
class ConditionFailed(Exception):
    """A conditional write found the item in another state; `item` is what it found (None if absent)."""

    def __init__(self, item: Optional[Item] = None) -> None:
        super().__init__("condition failed")
        self.item = item


class TransactionCancelled(Exception):
    """A transaction was cancelled; `reasons[i]` is the cancellation code of action i (or None)."""

    def __init__(self, reasons: list[Optional[str]]) -> None:
        super().__init__(f"transaction cancelled: {reasons}")
        self.reasons = reasons

    def failed(self, index: int) -> bool:
        """Whether action `index` was the one whose condition did not hold."""
        return index < len(self.reasons) and self.reasons[index] == "ConditionalCheckFailed"

    @property
    def conflicted(self) -> bool:
        """Cancelled because another transaction was writing the same items: worth retrying."""
        return "TransactionConflict" in self.reasons


def translate(exc: ClientError) -> Exception:
    """The store's exception for a DynamoDB error code; other errors are returned unchanged."""
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    if code == "ConditionalCheckFailedException":
        old: Any = exc.response.get("Item")
        return ConditionFailed(from_item(old) if old else None)
    if code == "TransactionCanceledException":
        reasons = exc.response.get("CancellationReasons", [])
        return TransactionCancelled([r.get("Code") if r.get("Code") not in (None, "None") else None
                                     for r in reasons])
    if code in THROTTLING_CODES:
        return Throttled("the database is busy; retry in a moment")
    if is_transient(exc):
        return Unavailable("the database is briefly unavailable; retry in a moment")
    return exc


def _check_size(values: Mapping[str, Any]) -> None:
    if item_size(values) > MAX_ITEM_BYTES:
        raise PayloadTooLarge("the record would exceed DynamoDB's 400 KB item limit; store large values as artifacts")


# --- the table ----------------------------------------------------------------------------------------
@dataclass
class Table:
    """One DynamoDB table through the low-level client; values in and out are plain Python."""

    client: DynamoDBClient
    name: str

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            raise translate(exc) from exc
        except BotoCoreError as exc:  # a dropped connection, a timeout
            if is_transient(exc):
                raise Unavailable("the database is briefly unavailable; retry in a moment") from exc
            raise

    def get(self, key: Mapping[str, Any], *, consistent: bool = True,
            attributes: Optional[Sequence[str]] = None) -> Optional[Item]:
        kwargs = with_expressions({"TableName": self.name, "Key": to_item(key), "ConsistentRead": consistent},
                                   projection=attributes)
        item = self._call("get_item", **kwargs).get("Item")
        return from_item(item) if item else None

    def put(self, values: Mapping[str, Any], *, condition: Optional[Condition] = None) -> None:
        """Write a whole item; with a condition that does not hold, ConditionFailed carries the stored item."""
        _check_size(values)
        kwargs = with_expressions({"TableName": self.name, "Item": to_item(values)}, condition=condition)
        if condition is not None:
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        self._call("put_item", **kwargs)

    def update(self, key: Mapping[str, Any], update: Update, *, condition: Optional[Condition] = None) -> Item:
        """Apply an update; returns the item as it is afterwards."""
        kwargs = with_expressions({"TableName": self.name, "Key": to_item(key), "ReturnValues": "ALL_NEW"},
                                   condition=condition, update=update)
        if condition is not None:
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return from_item(self._call("update_item", **kwargs)["Attributes"])

    def delete(self, key: Mapping[str, Any], *, condition: Optional[Condition] = None) -> Optional[Item]:
        """Delete one item; returns it as it was (None if there was none). A failed condition raises."""
        kwargs = with_expressions({"TableName": self.name, "Key": to_item(key), "ReturnValues": "ALL_OLD"},
                                   condition=condition)
        old = self._call("delete_item", **kwargs).get("Attributes")
        return from_item(old) if old else None

    def query(self, partition: str, sort: Optional[SortRange] = None, *, index: Optional[Index] = None,
              forward: bool = True, filter: Optional[Condition] = None,
              attributes: Optional[Sequence[str]] = None, consistent: bool = False, limit: Optional[int] = None,
              page_size: Optional[int] = None, start: Optional[Mapping[str, Any]] = None) -> Iterator[Item]:
        """Every matching item, page by page; at most `limit` items (one request) if given."""
        while True:
            items, start = self.query_page(partition, sort, index=index, forward=forward, filter=filter,
                                           attributes=attributes, consistent=consistent,
                                           limit=limit if limit is not None else page_size, start=start)
            yield from items
            if start is None or limit is not None:
                return

    def query_page(self, partition: str, sort: Optional[SortRange] = None, *, index: Optional[Index] = None,
                   forward: bool = True, filter: Optional[Condition] = None,
                   attributes: Optional[Sequence[str]] = None, consistent: bool = False,
                   limit: Optional[int] = None,
                   start: Optional[Mapping[str, Any]] = None) -> tuple[list[Item], Optional[Item]]:
        """One Query request: the items and where the next page starts (None after the last)."""
        partition_attr, sort_attr = (index.partition_key, index.sort_key) if index else ("pk", "sk")
        kwargs = with_expressions({"TableName": self.name, "ScanIndexForward": forward},
                                   key=key_condition(partition_attr, partition, sort_attr, sort),
                                   filter=filter, projection=attributes)
        if index is not None:
            kwargs["IndexName"] = index.name
        elif consistent:
            kwargs["ConsistentRead"] = True
        if limit is not None:
            kwargs["Limit"] = limit
        if start is not None:
            kwargs["ExclusiveStartKey"] = to_item(start)
        page = self._call("query", **kwargs)
        following = page.get("LastEvaluatedKey")
        return [from_item(i) for i in page.get("Items", [])], from_item(following) if following else None

    def count(self, partition: str, sort: Optional[SortRange] = None, *, filter: Optional[Condition] = None,
              consistent: bool = True) -> int:
        """How many items match, without reading them back (Select=COUNT, every page)."""
        kwargs = with_expressions({"TableName": self.name, "Select": "COUNT", "ConsistentRead": consistent},
                                   key=key_condition("pk", partition, "sk", sort), filter=filter)
        total = 0
        while True:
            page = self._call("query", **kwargs)
            total += page.get("Count", 0)
            if "LastEvaluatedKey" not in page:
                return total
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def scan_page(self, *, filter: Optional[Condition] = None, attributes: Optional[Sequence[str]] = None,
                  limit: Optional[int] = None,
                  start: Optional[Mapping[str, Any]] = None) -> tuple[list[Item], Optional[Item]]:
        """One Scan request over the whole table (the purge's daily sweep)."""
        kwargs = with_expressions({"TableName": self.name}, filter=filter, projection=attributes)
        if limit is not None:
            kwargs["Limit"] = limit
        if start:
            kwargs["ExclusiveStartKey"] = to_item(start)
        page = self._call("scan", **kwargs)
        following = page.get("LastEvaluatedKey")
        return [from_item(i) for i in page.get("Items", [])], from_item(following) if following else None

    def batch_put(self, items: Sequence[Mapping[str, Any]]) -> None:
        for values in items:
            _check_size(values)
        self._batch_write([{"PutRequest": {"Item": to_item(i)}} for i in items])

    def batch_delete(self, keys: Sequence[Mapping[str, Any]]) -> None:
        self._batch_write([{"DeleteRequest": {"Key": to_item(k)}} for k in keys])

    def batch_get(self, keys: Sequence[Mapping[str, Any]], *, attributes: Optional[Sequence[str]] = None,
                  consistent: bool = True) -> list[Item]:
        """The items of these keys that exist (any order), 100 keys a request; unprocessed keys are asked again."""
        found: list[Item] = []
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            part = keys[start:start + BATCH_GET_LIMIT]
            projection = [*attributes, *part[0].keys()] if attributes else None  # the keys tell items apart
            request = with_expressions({"Keys": [to_item(k) for k in part], "ConsistentRead": consistent},
                                        projection=projection)
            for attempt in range(UNPROCESSED_ATTEMPTS):
                result = self._call("batch_get_item", RequestItems={self.name: request})
                found += [from_item(i) for i in result.get("Responses", {}).get(self.name, [])]
                pending = result.get("UnprocessedKeys", {}).get(self.name)
                if not pending:
                    break
                request = pending
                _back_off(attempt)
            else:
                raise Throttled(f"{len(request.get('Keys', []))} reads of {self.name} stayed unprocessed")
        return found

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), BATCH_WRITE_LIMIT):
            pending = requests[start:start + BATCH_WRITE_LIMIT]
            for attempt in range(UNPROCESSED_ATTEMPTS):
                result = self._call("batch_write_item", RequestItems={self.name: pending})
                pending = result.get("UnprocessedItems", {}).get(self.name, [])
                if not pending:
                    break
                _back_off(attempt)
            else:
                raise Throttled(f"{len(pending)} writes to {self.name} stayed unprocessed")

    def transact(self, actions: Sequence[dict[str, Any]]) -> None:
        """All actions at once or none (at most 100, DynamoDB's limit); they may name other tables too."""
        if len(actions) > TRANSACTION_LIMIT:
            raise ValueError(f"a transaction holds at most {TRANSACTION_LIMIT} actions, got {len(actions)}")
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                self._call("transact_write_items", TransactItems=list(actions))
                return
            except TransactionCancelled as exc:
                # another transaction on the same items: DynamoDB asks to retry; a failed condition is the caller's
                if not exc.conflicted or "ConditionalCheckFailed" in exc.reasons:
                    raise
                if attempt == CONFLICT_ATTEMPTS - 1:
                    raise Throttled("the records are being written by another request; retry in a moment") from exc
                _back_off(attempt)

    # transaction actions: the caller assembles them across tables and runs them with `transact`
    def put_action(self, values: Mapping[str, Any], condition: Optional[Condition] = None) -> dict[str, Any]:
        _check_size(values)
        return {"Put": with_expressions({"TableName": self.name, "Item": to_item(values)}, condition=condition)}

    def update_action(self, key: Mapping[str, Any], update: Update,
                      condition: Optional[Condition] = None) -> dict[str, Any]:
        return {"Update": with_expressions({"TableName": self.name, "Key": to_item(key)}, condition=condition,
                                            update=update)}

    def delete_action(self, key: Mapping[str, Any], condition: Optional[Condition] = None) -> dict[str, Any]:
        return {"Delete": with_expressions({"TableName": self.name, "Key": to_item(key)}, condition=condition)}

    def check_action(self, key: Mapping[str, Any], condition: Condition) -> dict[str, Any]:
        return {"ConditionCheck": with_expressions({"TableName": self.name, "Key": to_item(key)},
                                                    condition=condition)}


def _back_off(attempt: int) -> None:
    time.sleep(min(0.05 * 2**attempt, 1.0))
