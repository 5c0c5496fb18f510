"""Direct table access for tests: arranging states an API cannot make (a deletion 40 days ago) and
reading what is stored. Through boto3's resource API, not Agora's own store code."""
from __future__ import annotations

import os
from typing import Any

import boto3
from boto3.dynamodb.conditions import Attr, Key

TABLES = {"experiments": "AGORA_EXPERIMENTS_TABLE", "runs": "AGORA_RUNS_TABLE", "metrics": "AGORA_METRICS_TABLE",
          "directory": "AGORA_DIRECTORY_TABLE", "simulations": "AGORA_SIMULATIONS_TABLE",
          "agent_data": "AGORA_AGENT_DATA_TABLE"}


def table(name: str) -> Any:
    return boto3.resource("dynamodb").Table(os.environ[TABLES[name]])


def set_attribute(name: str, key: dict[str, str], attribute: str, value: Any) -> None:
    table(name).update_item(Key=key, UpdateExpression="SET #a = :v", ExpressionAttributeNames={"#a": attribute},
                            ExpressionAttributeValues={":v": value})


def remove_attribute(name: str, key: dict[str, str], attribute: str) -> None:
    table(name).update_item(Key=key, UpdateExpression="REMOVE #a", ExpressionAttributeNames={"#a": attribute})


def partition(name: str, pk: str) -> list[dict[str, Any]]:
    return table(name).query(KeyConditionExpression=Key("pk").eq(pk))["Items"]


def scan_sort_prefix(name: str, prefix: str) -> list[dict[str, Any]]:
    return table(name).scan(FilterExpression=Attr("sk").begins_with(prefix))["Items"]
