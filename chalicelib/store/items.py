"""The item codec: plain values to DynamoDB's typed attributes and back, and an item's size as DynamoDB counts it."""
from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
Item = dict[str, Any]


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def from_item(item: Mapping[str, Any]) -> Item:
    values = {k: _deserializer.deserialize(v) for k, v in item.items()}
    return {k: (v.value if isinstance(v, Binary) else v) for k, v in values.items()}  # type: ignore[attr-defined]


def item_size(values: Mapping[str, Any]) -> int:
    """The size DynamoDB counts for an item: attribute names plus values (UTF-8 strings, binary, numbers)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in values.items() if value is not None)


def _value_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, (int, float, Decimal)):
        return len(str(value)) // 2 + 2
    if isinstance(value, Mapping):
        return 3 + sum(len(str(k).encode()) + _value_size(v) + 1 for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return 3 + sum(_value_size(v) + 1 for v in value)
    return len(str(value).encode())
