"""devstack/moto_hardening.py's direct answers to item requests are what moto's own serialiser writes."""
from __future__ import annotations

import json
from typing import Any, Iterator

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.responses import DynamoHandler

from devstack import moto_hardening


@pytest.fixture
def compared(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Any, Any]]]:
    """Every DynamoDB answer written twice, by the direct path (installed) and by moto's serialiser."""
    direct = DynamoHandler.serialized
    moto_own = direct.__wrapped__  # type: ignore[attr-defined]
    pairs: list[tuple[str, Any, Any]] = []

    def both(self: DynamoHandler, action_result: Any) -> Any:
        answer = direct(self, action_result)
        pairs.append((self._get_action(), json.loads(answer[2] or "{}"), json.loads(moto_own(self, action_result)[2]
                                                                                    or "{}")))
        return answer

    monkeypatch.setattr(DynamoHandler, "serialized", both)
    with mock_aws():
        yield pairs


def test_item_answers_are_moto_serialisers_own(compared):
    client = boto3.client("dynamodb")
    client.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                   {"AttributeName": "sk", "KeyType": "RANGE"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                              {"AttributeName": "sk", "AttributeType": "S"}])
    item = {"pk": {"S": "a"}, "sk": {"S": "1"}, "n": {"N": "1.5"}, "b": {"B": bytes(range(256))},
            "l": {"L": [{"S": "q"}, {"N": "2"}]}, "m": {"M": {"x": {"BOOL": True}, "y": {"NULL": True}}},
            "ss": {"SS": ["p", "q"]}, "bs": {"BS": [b"\x00", b"\xff"]}}
    key = {"pk": {"S": "a"}, "sk": {"S": "1"}}
    client.put_item(TableName="t", Item=item)
    client.put_item(TableName="t", Item={**item, "sk": {"S": "2"}}, ReturnValues="ALL_OLD")
    client.get_item(TableName="t", Key=key)
    client.get_item(TableName="t", Key={"pk": {"S": "a"}, "sk": {"S": "9"}})
    client.query(TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "a"}},
                 Limit=1, ReturnConsumedCapacity="TOTAL")
    client.scan(TableName="t", Select="COUNT")
    client.batch_get_item(RequestItems={"t": {"Keys": [key], "ProjectionExpression": "b, l"}})
    client.batch_write_item(RequestItems={"t": [{"PutRequest": {"Item": {"pk": {"S": "a"}, "sk": {"S": "3"}}}}]})
    client.update_item(TableName="t", Key=key, UpdateExpression="SET x = :v", ReturnValues="ALL_NEW",
                       ExpressionAttributeValues={":v": {"B": b"\x01\x02"}})
    client.transact_write_items(TransactItems=[{"Put": {"TableName": "t",
                                                        "Item": {"pk": {"S": "b"}, "sk": {"S": "1"}}}}])
    client.transact_get_items(TransactItems=[{"Get": {"TableName": "t", "Key": key}}])
    client.delete_item(TableName="t", Key=key, ReturnValues="ALL_OLD")
    with pytest.raises(client.exceptions.ConditionalCheckFailedException):
        client.put_item(TableName="t", Item={"pk": {"S": "a"}, "sk": {"S": "2"}},
                        ConditionExpression="attribute_not_exists(pk)")

    answered = {action for action, _, _ in compared}
    assert answered >= moto_hardening.ITEM_ACTIONS
    for action, direct, moto_own in compared:
        if action in moto_hardening.ITEM_ACTIONS:
            assert direct == moto_own, action


def test_a_top_level_projection_is_moto_own():
    from moto.dynamodb.models.dynamo_type import Item

    item = Item(hash_key=None, range_key=None, attrs={
        "pk": {"S": "a"}, "n": {"N": "1.5"}, "b": {"B": b"\x00\xff"},
        "l": {"L": [{"S": "q"}, {"M": {"x": {"N": "2"}}}]},
        "m": {"M": {"x": {"BOOL": True}, "y": {"NULL": True}}}, "ss": {"SS": ["p", "q"]}})
    moto_own = Item.project.__wrapped__  # type: ignore[attr-defined]
    for names in (["pk"], ["pk", "l", "m"], ["missing"], ["b", "ss", "n"]):
        expressions = [[name] for name in names]
        assert item.project(expressions).to_regular_json() == moto_own(item, expressions).to_regular_json(), names
    nested = [["m", "x"]]
    assert item.project(nested).to_regular_json() == moto_own(item, nested).to_regular_json()
    projected = item.project([["l"]])
    projected.attrs["l"].value.append(projected.attrs["l"].value[0])
    assert len(item.attrs["l"].value) == 2, "a projection is a copy"
