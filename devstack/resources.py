"""Creates Agora's tables and bucket from infra/template.json (the deploy's own definitions)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.json"

_TABLE_ARGS = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")


def load_template() -> dict[str, Any]:
    return json.loads(TEMPLATE.read_text())


def local_names() -> dict[str, str]:
    """Environment variable -> local resource name, from each resource's `agora:*` metadata."""
    return {res["Metadata"]["agora:env"]: res["Metadata"]["agora:local-name"]
            for res in load_template()["Resources"].values() if "agora:env" in res.get("Metadata", {})}


def create_resources(session: Any, prefix: str = "") -> dict[str, str]:
    """Create every table and bucket of the template; returns the environment the app needs."""
    dynamodb = session.client("dynamodb")
    s3 = session.client("s3")
    kms = session.client("kms")
    env: dict[str, str] = {}
    for resource in load_template()["Resources"].values():
        meta = resource.get("Metadata", {})
        if "agora:env" not in meta:
            continue
        name = prefix + meta["agora:local-name"]
        props = resource["Properties"]
        if resource["Type"] == "AWS::DynamoDB::Table":
            args = {k: props[k] for k in _TABLE_ARGS if k in props}
            dynamodb.create_table(TableName=name, **args)
            ttl = props.get("TimeToLiveSpecification")
            if ttl:
                dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        elif resource["Type"] == "AWS::S3::Bucket":
            s3.create_bucket(Bucket=name)
            if "EventBridgeConfiguration" in props.get("NotificationConfiguration", {}):
                s3.put_bucket_notification_configuration(
                    Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}})
        elif resource["Type"] == "AWS::KMS::Key":
            key_id = kms.create_key(Description=props.get("Description", ""))["KeyMetadata"]["KeyId"]
            kms.create_alias(AliasName=name, TargetKeyId=key_id)
        env[meta["agora:env"]] = name
    return env
