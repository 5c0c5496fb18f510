"""What moto 5.2.5 lacks to stand in for AWS under concurrent clients and weeks of use.

Measured (research notes: moto internals): moto's DynamoDB has no locking, so two conditional
writers can both succeed, transactions roll back by swapping in a stale copy of whole tables (losing
other clients' acknowledged writes) and iterating a table while another thread writes raises
`RuntimeError: dictionary changed size during iteration`; every model object ever created, deep
copies included, is kept alive for moto's dashboard; a Query walks and sorts the whole table.

`install()` (idempotent) fixes these, for the local stack and the tests alike:

1. One lock around every DynamoDB request (`DynamoHandler.call_action`: the backend's work and the
   serialisation of live items), as DynamoDB itself makes each request atomic and isolated. The lock
   is re-entrant per thread and suspended while moto delivers stream records to a Lambda (none of
   Agora's tables has a stream today; the rule keeps a future one from deadlocking). `DYNAMODB_LOCK`
   is also what the local stack's persistence holds while it reads a consistent state.
2. Transactions undo item by item (the items they touched), instead of copying every table they
   name once per action item: the same outcome, without O(table) copies or lost writes.
3. Model instances are no longer tracked (only moto's dashboard read the list).
4. A Query on a table's own key reads its partition, not the whole table (index queries still scan).
5. Observers (`dynamodb_observers`, `s3_observers`) are told, under the lock, which items and
   objects a request changed (the local stack's persistence journals them).
6. Step Functions forgets executions that ended more than `KEEP_ENDED_EXECUTIONS_SECONDS` ago
   (moto keeps every one with its whole history, about 1 MB each): a new execution prunes them.
   Agora asks Step Functions about an execution only while its simulation is under way.
7. A browser POST upload must satisfy its policy (expiry, exact fields such as the key and the
   content type, `starts-with`, `content-length-range`), as S3 checks it; moto never reads the
   policy. The signature is not verified (moto checks no signature anywhere).
8. The answers of item requests (GetItem, Query, BatchWriteItem ...) are written as JSON directly: they are
   DynamoDB's wire format already, and moto's generic, shape-driven serialiser took most of a large
   Query's time (measured: 6.7 of 14 s listing 500 runs). Binary values are base64, as the serialiser
   writes them; errors and every other action still go through moto's serialiser
   (tests/test_moto_hardening.py compares the two).
9. Projecting an item onto top-level attributes (what an index with INCLUDE or KEYS_ONLY projection
   does to every item it returns) converts the item once, not once per attribute.
"""
from __future__ import annotations

import base64
import copy
import functools
import json
import threading
from datetime import UTC, datetime
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape

from moto.awslambda.models import LambdaBackend
from moto.core.common_models import BaseModel
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.s3.models import S3Backend

KEEP_ENDED_EXECUTIONS_SECONDS = 600
WRITE_ACTIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
DynamoKey = tuple[str, dict[str, Any]]  # (table name, key attributes in DynamoDB JSON)


class SuspendableLock:
    """Re-entrant per thread; `suspended()` releases it fully for a nested call made on another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()

    def __enter__(self) -> SuspendableLock:
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            self._lock.acquire()
        self._local.depth = depth + 1
        return self

    def __exit__(self, *exc: Any) -> None:
        self._local.depth -= 1
        if self._local.depth == 0:
            self._lock.release()

    def suspended(self) -> _Suspension:
        return _Suspension(self)


class _Suspension:
    def __init__(self, lock: SuspendableLock) -> None:
        self.lock, self.depth = lock, 0

    def __enter__(self) -> None:
        self.depth = getattr(self.lock._local, "depth", 0)
        if self.depth:
            self.lock._local.depth = 0
            self.lock._lock.release()

    def __exit__(self, *exc: Any) -> None:
        if self.depth:
            self.lock._lock.acquire()
            self.lock._local.depth = self.depth


DYNAMODB_LOCK = SuspendableLock()
dynamodb_observers: list[Callable[[list[DynamoKey]], None]] = []
s3_observers: list[Callable[[str, str], None]] = []
_partition = threading.local()  # the (table, hash key) a base-table Query reads
_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    BaseModel.__new__ = staticmethod(lambda cls, *args, **kwargs: object.__new__(cls))  # type: ignore[method-assign]
    _wrap_dynamodb_requests()
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    _read_partitions_only()
    _observe_s3()
    _forget_ended_executions()
    _enforce_post_policies()
    _serialize_item_answers_directly()
    _project_once()


# 1 and 5: the lock, and the observers of writes ------------------------------------------------------
def _wrap_dynamodb_requests() -> None:
    original = DynamoHandler.call_action

    @functools.wraps(original)
    def call_action(self: DynamoHandler) -> Any:
        with DYNAMODB_LOCK:
            response = original(self)
            action = self._get_action()
            if dynamodb_observers and action in WRITE_ACTIONS and _succeeded(response):
                changed = _written_keys(self.dynamodb_backend, action, getattr(self, "body", {}) or {})
                for observer in dynamodb_observers:
                    observer(changed)
            return response

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    send = LambdaBackend.send_dynamodb_items

    @functools.wraps(send)
    def send_dynamodb_items(self: LambdaBackend, *args: Any, **kwargs: Any) -> Any:
        with DYNAMODB_LOCK.suspended():
            return send(self, *args, **kwargs)

    LambdaBackend.send_dynamodb_items = send_dynamodb_items  # type: ignore[method-assign]


def _succeeded(response: Any) -> bool:
    status = response[0] if isinstance(response, tuple) else 200
    return isinstance(status, int) and status < 300


def _key_of(backend: DynamoDBBackend, table_name: str, attrs: dict[str, Any]) -> Optional[DynamoKey]:
    table = backend.tables.get(table_name)
    if table is None or table.hash_key_attr not in attrs:
        return None
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None and table.range_key_attr in attrs:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return table_name, key


def _written_keys(backend: DynamoDBBackend, action: str, body: dict[str, Any]) -> list[DynamoKey]:
    """The items a successful write request may have changed (a failed condition changes none)."""
    found: list[Optional[DynamoKey]] = []
    if action == "PutItem":
        found.append(_key_of(backend, body.get("TableName", ""), body.get("Item", {})))
    elif action in ("UpdateItem", "DeleteItem"):
        found.append((body.get("TableName", ""), body.get("Key", {})))
    elif action == "BatchWriteItem":
        for table_name, requests in (body.get("RequestItems") or {}).items():
            for request in requests:
                if "PutRequest" in request:
                    found.append(_key_of(backend, table_name, request["PutRequest"].get("Item", {})))
                elif "DeleteRequest" in request:
                    found.append((table_name, request["DeleteRequest"].get("Key", {})))
    elif action == "TransactWriteItems":
        for entry in body.get("TransactItems") or []:
            for op_type, op in entry.items():
                if op_type == "Put":
                    found.append(_key_of(backend, op.get("TableName", ""), op.get("Item", {})))
                elif op_type in ("Update", "Delete"):
                    found.append((op.get("TableName", ""), op.get("Key", {})))
    return [k for k in found if k is not None and k[1]]


# 2: transactions that undo the items they touched ---------------------------------------------------
def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """moto 5.2.5's transact_write_items with an item-level undo instead of whole-table copies."""
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    undo: list[tuple[Table, DynamoType, Optional[DynamoType], Any]] = []

    def remember(table: Table, key: dict[str, Any]) -> None:
        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        current = table.items.get(hash_key, {}).get(range_key) if range_key is not None \
            else table.items.get(hash_key)
        undo.append((table, hash_key, range_key, copy.deepcopy(current)))

    def rollback() -> None:
        for table, hash_key, range_key, previous in reversed(undo):
            if range_key is not None:
                if previous is None:
                    table.items.get(hash_key, {}).pop(range_key, None)
                else:
                    table.items[hash_key][range_key] = previous
            elif previous is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = previous

    targets: set[tuple[str, str]] = set()
    errors: list[tuple[Any, Any, Any]] = []
    for item in transact_items:
        original_item = None
        if len(item) > 1:
            raise TransactWriteSingleOpException
        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            condition = op.get("ConditionExpression")
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            table = self.get_table(table_name)
            if op_type == "Put":
                key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = op["Item"][table.range_key_attr]
            else:
                key = op["Key"]
            target = (str(table_name), str(dict(sorted(key.items()))))
            if target in targets:
                raise MultipleTransactionsException()
            targets.add(target)
            current = self.get_item(table_name, key)
            if condition is not None and not get_filter_expression(condition, names, values).expr(current):
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    original_item = current.to_json()["Attributes"]
                raise ConditionalCheckFailed(item=original_item)
            if op_type != "ConditionCheck":
                remember(table, key)
            if op_type == "Put":
                self.put_item(table_name, op["Item"], condition_expression=condition,
                              expression_attribute_names=names, expression_attribute_values=values)
            elif op_type == "Delete":
                self.delete_item(table_name, key, condition_expression=condition,
                                 expression_attribute_names=names, expression_attribute_values=values)
            elif op_type == "Update":
                self.update_item(table_name, key, update_expression=op["UpdateExpression"],
                                 condition_expression=condition, expression_attribute_names=names,
                                 expression_attribute_values=values)
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            rollback()
            raise
        except ConditionalCheckFailed as exc:
            errors.append(("ConditionalCheckFailed", str(exc.message), original_item))
        except Exception as exc:  # noqa: BLE001 - as moto: any other failure cancels the transaction, with its reason
            errors.append((type(exc).__name__, str(exc), original_item))
    if any(code is not None for code, _, _ in errors):
        rollback()
        raise TransactionCanceledException(errors)


# 4: a base-table Query reads its partition ------------------------------------------------------------
def _read_partitions_only() -> None:
    all_items, query = Table.all_items, Table.query

    @functools.wraps(all_items)
    def partition_or_all(self: Table) -> list[Any]:
        hint = getattr(_partition, "value", None)
        if hint is not None and hint[0] is self:
            found = self.items.get(hint[1])
            if found is None:
                return []
            return list(found.values()) if self.range_key_attr else [found]
        return all_items(self)

    @functools.wraps(query)
    def partition_query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if index_name is not None or hash_key is None:
            return query(self, hash_key, *args, **kwargs)
        _partition.value = (self, hash_key)
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _partition.value = None

    Table.all_items = partition_or_all  # type: ignore[method-assign]
    Table.query = partition_query  # type: ignore[method-assign]


# 8: item answers as JSON, without moto's serialiser ---------------------------------------------------------
ITEM_ACTIONS = frozenset({"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem",
                          "BatchWriteItem", "TransactGetItems", "TransactWriteItems"})


def _wire_value(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not part of an item answer")


@functools.cache
def _answer_fields(action: str) -> frozenset[str]:
    """The top-level fields of the action's answer in DynamoDB's API (moto's results carry a few more)."""
    from moto.core.utils import get_service_model

    return frozenset(get_service_model("dynamodb").operation_model(action).output_shape.members)


def item_answer_body(action: str, result: dict[str, Any]) -> str:
    """The JSON body of a successful item request's result (`ActionResult.result`)."""
    fields = _answer_fields(action)
    return json.dumps({k: v for k, v in result.items() if k in fields and v is not None}, default=_wire_value)


def _serialize_item_answers_directly() -> None:
    serialized = DynamoHandler.serialized

    @functools.wraps(serialized)
    def direct(self: DynamoHandler, action_result: Any) -> Any:
        result = action_result.result
        action = self._get_action()
        if isinstance(result, dict) and action in ITEM_ACTIONS:
            try:
                body = item_answer_body(action, result)
            except TypeError:
                return serialized(self, action_result)
            return 200, {"Content-Type": "application/x-amz-json-1.0", **self.response_headers}, body
        return serialized(self, action_result)

    DynamoHandler.serialized = direct  # type: ignore[method-assign]


# 9: a projection onto top-level attributes converts the item once ----------------------------------------
def _project_once() -> None:
    project = Item.project

    @functools.wraps(project)
    def project_top_level(self: Item, projection_expressions: list[list[str]]) -> Item:
        if not all(len(expr) == 1 for expr in projection_expressions):
            return project(self, projection_expressions)
        names = {expr[0] for expr in projection_expressions}
        return Item(hash_key=self.hash_key, range_key=self.range_key,
                    attrs={name: copy.deepcopy(value) for name, value in self.attrs.items() if name in names})

    Item.project = project_top_level  # type: ignore[method-assign]


# 5: which objects S3 requests changed -----------------------------------------------------------------
def _observe_s3() -> None:
    put, delete = S3Backend.put_object, S3Backend.delete_object

    @functools.wraps(put)
    def put_object(self: S3Backend, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        key = put(self, bucket_name, key_name, *args, **kwargs)
        for observer in s3_observers:
            observer(bucket_name, key_name)
        return key

    @functools.wraps(delete)
    def delete_object(self: S3Backend, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        result = delete(self, bucket_name, key_name, *args, **kwargs)
        for observer in s3_observers:
            observer(bucket_name, key_name)
        return result

    S3Backend.put_object = put_object  # type: ignore[method-assign]
    S3Backend.delete_object = delete_object  # type: ignore[method-assign]


# 6: ended executions are forgotten after a while ------------------------------------------------------
def _forget_ended_executions() -> None:
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    start = StepFunctionsParserBackend.start_execution

    @functools.wraps(start)
    def start_execution(self: Any, state_machine_arn: str, *args: Any, **kwargs: Any) -> Any:
        now = datetime.now(tz=UTC)
        for machine in self.state_machines:
            machine.executions[:] = [e for e in machine.executions if e.stop_date is None
                                     or (now - e.stop_date).total_seconds() < KEEP_ENDED_EXECUTIONS_SECONDS]
        return start(self, state_machine_arn, *args, **kwargs)

    StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign]


# 7: browser POST uploads keep to their policy -----------------------------------------------------
_UNCHECKED_FIELDS = {"policy", "x-amz-signature", "signature", "file", "awsaccesskeyid"}


def _enforce_post_policies() -> None:
    from moto.s3.responses import S3Response

    original = S3Response._bucket_response_post

    @functools.wraps(original)
    def checked(self: Any, request: Any, bucket_name: str) -> Any:
        if "delete" not in parse_qs(urlparse(self._get_path(request)).query, keep_blank_values=True) \
                and "key" in self.querystring:
            fields = {name: value for name, value in self.form_data.items()}  # the form as the browser sent it
            problem = post_policy_problem(fields, bucket_name, len(self.body or b""))
            if problem is not None:
                return 403, {"Content-Type": "application/xml"}, (
                    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                    f"<Message>{escape(problem)}</Message></Error>")
        return original(self, request, bucket_name)

    S3Response._bucket_response_post = checked


def post_policy_problem(fields: dict[str, str], bucket: str, size: int) -> Optional[str]:
    """Why S3 would refuse this POST upload under its policy, or None."""
    if "policy" not in fields:
        return "Bucket POST must contain a field named 'policy'"
    try:
        policy = json.loads(base64.b64decode(fields["policy"]))
        expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError):
        return "Invalid Policy: the policy is not base64 JSON with an expiration"
    if expires < datetime.now(tz=UTC):
        return "Invalid according to Policy: Policy expired."
    values = {name.lower(): value for name, value in fields.items()} | {"bucket": bucket}
    covered = {"bucket"}
    for condition in policy.get("conditions", []):
        if isinstance(condition, dict):
            ((name, wanted),) = condition.items()
            operator, name = "eq", name.lower()
        elif condition[0] == "content-length-range":
            if not int(condition[1]) <= size <= int(condition[2]):
                return "Your proposed upload exceeds the maximum allowed size" if size > int(condition[2]) \
                    else "Your proposed upload is smaller than the minimum allowed size"
            continue
        else:
            operator, name, wanted = condition[0].lower(), condition[1].lstrip("$").lower(), condition[2]
        covered.add(name)
        got = values.get(name)
        if got is None or (operator == "eq" and got != wanted) or (operator == "starts-with"
                                                                   and not got.startswith(wanted)):
            return f"Invalid according to Policy: Policy Condition failed: {json.dumps(condition)}"
    extra = sorted(name for name in values if name not in covered and name not in _UNCHECKED_FIELDS
                   and not name.startswith("x-ignore-"))
    return f"Invalid according to Policy: Extra input fields: {extra[0]}" if extra else None
