"""DynamoDB primitives: item codec, a small table wrapper, and ClientError translation done once."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Optional

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from chalicelib.domain.errors import PayloadTooLarge

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
BATCH_WRITE_LIMIT = 25  # DynamoDB's limit, enforced here because moto does not enforce it


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


class ConditionFailed(Exception):
    """A conditional write found the item in another state; `item` is what it found, if asked for."""

    def __init__(self, item: Optional[dict[str, Any]] = None) -> None:
        super().__init__("condition failed")
        self.item = item


class TransactionCancelled(Exception):
    """A transaction was cancelled; `reasons[i]` is the cancellation code of action i (or None)."""

    def __init__(self, reasons: list[Optional[str]]) -> None:
        super().__init__(f"transaction cancelled: {reasons}")
        self.reasons = reasons


def _translate(exc: ClientError) -> Exception:
    code = exc.response.get("Error", {}).get("Code", "")
    message = exc.response.get("Error", {}).get("Message", "")
    if code == "ConditionalCheckFailedException":
        old = exc.response.get("Item")
        return ConditionFailed(from_item(old) if old else None)
    if code == "TransactionCanceledException":
        reasons = [r.get("Code") if r.get("Code") not in (None, "None") else None for r in exc.response.get("CancellationReasons", [])]
        return TransactionCancelled(reasons)
    if code == "ValidationException" and "size" in message.lower() and "exceed" in message.lower():
        return PayloadTooLarge("the record would exceed DynamoDB's 400 KB item limit; store large values as artifacts")
    return exc


@dataclass
class Table:
    """One DynamoDB table through the low-level client; values in and out are plain Python."""

    client: DynamoDBClient
    name: str

    def get(self, key: dict[str, Any], consistent: bool = True, projection: Optional[str] = None,
            names: Optional[dict[str, str]] = None) -> Optional[dict[str, Any]]:
        kwargs: dict[str, Any] = {"TableName": self.name, "Key": to_item(key), "ConsistentRead": consistent}
        if projection:
            kwargs["ProjectionExpression"] = projection
        if names:
            kwargs["ExpressionAttributeNames"] = names
        item = self.client.get_item(**kwargs).get("Item")
        return from_item(item) if item else None

    def put(self, values: dict[str, Any], condition: Optional[str] = None, names: Optional[dict[str, str]] = None,
            params: Optional[dict[str, Any]] = None) -> None:
        kwargs: dict[str, Any] = {"TableName": self.name, "Item": to_item(values)}
        _add_expression(kwargs, condition, names, params)
        if condition:
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            self.client.put_item(**kwargs)
        except ClientError as exc:
            raise _translate(exc) from exc

    def update(self, key: dict[str, Any], update: str, condition: Optional[str] = None,
               names: Optional[dict[str, str]] = None, params: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"TableName": self.name, "Key": to_item(key), "UpdateExpression": update,
                                  "ReturnValues": "ALL_NEW"}
        _add_expression(kwargs, condition, names, params)
        if condition:
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            return from_item(self.client.update_item(**kwargs)["Attributes"])
        except ClientError as exc:
            raise _translate(exc) from exc

    def delete(self, key: dict[str, Any]) -> None:
        self.client.delete_item(TableName=self.name, Key=to_item(key))

    def query(self, key_condition: str, names: dict[str, str], params: dict[str, Any], *,
              index: Optional[str] = None, forward: bool = True, filter_expression: Optional[str] = None,
              projection: Optional[str] = None, consistent: bool = False,
              limit: Optional[int] = None, page_size: Optional[int] = None) -> Iterator[dict[str, Any]]:
        """Every matching item, page by page (at most `limit` items if given; pages of `page_size` items)."""
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": key_condition,
            "ScanIndexForward": forward,
        }
        if index:
            kwargs["IndexName"] = index
        elif consistent:
            kwargs["ConsistentRead"] = True
        if filter_expression:
            kwargs["FilterExpression"] = filter_expression
        if projection:
            kwargs["ProjectionExpression"] = projection
        _add_expression(kwargs, None, names, params)
        if limit is not None or page_size is not None:
            kwargs["Limit"] = limit if limit is not None else page_size
        while True:
            page = self.client.query(**kwargs)
            for item in page.get("Items", []):
                yield from_item(item)
            if "LastEvaluatedKey" not in page or limit is not None:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def batch_put(self, items: list[dict[str, Any]]) -> None:
        self._batch_write([{"PutRequest": {"Item": to_item(i)}} for i in items])

    def batch_delete(self, keys: list[dict[str, Any]]) -> None:
        self._batch_write([{"DeleteRequest": {"Key": to_item(k)}} for k in keys])

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), BATCH_WRITE_LIMIT):
            pending = requests[start : start + BATCH_WRITE_LIMIT]
            for attempt in range(8):
                result = self.client.batch_write_item(RequestItems={self.name: pending})
                pending = result.get("UnprocessedItems", {}).get(self.name, [])
                if not pending:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise RuntimeError(f"{len(pending)} writes to {self.name} stayed unprocessed")

    # transaction action builders: the caller assembles actions across tables and runs them at once
    def put_action(self, values: dict[str, Any], condition: Optional[str] = None,
                   names: Optional[dict[str, str]] = None, params: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        action: dict[str, Any] = {"TableName": self.name, "Item": to_item(values)}
        _add_expression(action, condition, names, params)
        return {"Put": action}

    def update_action(self, key: dict[str, Any], update: str, condition: Optional[str] = None,
                      names: Optional[dict[str, str]] = None, params: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        action: dict[str, Any] = {"TableName": self.name, "Key": to_item(key), "UpdateExpression": update}
        _add_expression(action, condition, names, params)
        return {"Update": action}

    def delete_action(self, key: dict[str, Any], condition: Optional[str] = None,
                      names: Optional[dict[str, str]] = None, params: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        action: dict[str, Any] = {"TableName": self.name, "Key": to_item(key)}
        _add_expression(action, condition, names, params)
        return {"Delete": action}

    def check_action(self, key: dict[str, Any], condition: str, names: Optional[dict[str, str]] = None,
                     params: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        action: dict[str, Any] = {"TableName": self.name, "Key": to_item(key)}
        _add_expression(action, condition, names, params)
        return {"ConditionCheck": action}


def transact(client: DynamoDBClient, actions: list[dict[str, Any]]) -> None:
    try:
        client.transact_write_items(TransactItems=actions)
    except ClientError as exc:
        raise _translate(exc) from exc


def _add_expression(kwargs: dict[str, Any], condition: Optional[str], names: Optional[dict[str, str]],
                    params: Optional[dict[str, Any]]) -> None:
    if condition:
        kwargs["ConditionExpression"] = condition
    if names:
        kwargs["ExpressionAttributeNames"] = names
    if params:
        kwargs["ExpressionAttributeValues"] = to_item(params)
