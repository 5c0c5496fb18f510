"""Operator CLI: create and revoke the API keys of a deployed stack (tenants, the platform admin).

    python -m tools.admin create-key --stack agora --tenant acme
    python -m tools.admin create-key --stack agora --admin
    python -m tools.admin revoke-key --stack agora --key <the key>   # or --key-hash <its SHA-256>

The key is printed once on stdout and stored only as its SHA-256 hash, exactly as the local stack
stores its keys (devstack/tenants.py). Needs AWS credentials allowed to DescribeStacks (with
--stack) and PutItem on the directory table.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Optional, Sequence

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.domain.principals import ADMIN, TENANT, Principal, check_tenant_id, hash_api_key, new_api_key
from chalicelib.store.directory import Directory
from chalicelib.store.dynamo import Table

DIRECTORY_OUTPUT = "DirectoryTableName"  # an output of infra/template.json


class AdminError(Exception):
    """Something the operator has to fix; printed without a traceback."""


def directory_table(session: Any, stack: Optional[str], table: Optional[str]) -> str:
    """The directory table's name: given, or read from the stack's outputs."""
    if table:
        return table
    stacks = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    if DIRECTORY_OUTPUT not in outputs:
        raise AdminError(f"stack {stack} has no output {DIRECTORY_OUTPUT}: is it an Agora stack, fully deployed?")
    return outputs[DIRECTORY_OUTPUT]


def create_key(session: Any, table_name: str, principal: Principal, label: str) -> str:
    """A new key for `principal`; only its hash reaches the table. Returns the plain key."""
    key = new_api_key()
    Directory(Table(session.client("dynamodb"), table_name)).put_api_key(hash_api_key(key), principal, label=label)
    return key


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.admin", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-key", help="create an API key for a tenant (or the platform admin)")
    revoke = commands.add_parser("revoke-key", help="revoke an API key (it stops working within the authorizer's "
                                                    "5-minute cache)")
    for command in (create, revoke):
        where = command.add_mutually_exclusive_group(required=True)
        where.add_argument("--stack", help="CloudFormation stack name; the directory table is read from its outputs")
        where.add_argument("--table", help="the directory table's name (instead of --stack)")
        command.add_argument("--region", help="AWS region (default: the AWS CLI's configuration)")
        command.add_argument("--profile", help="AWS profile (default: the AWS CLI's configuration)")
    who = create.add_mutually_exclusive_group(required=True)
    who.add_argument("--tenant", help="tenant id: 1-63 characters of a-z, 0-9, _ and -")
    who.add_argument("--admin", action="store_true", help="the platform admin (platform configs, recharges)")
    create.add_argument("--label", default="", help="a note stored with the key (who or what it is for)")
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--key", help="the key itself")
    which.add_argument("--key-hash", help="the key's SHA-256 (hex), when the key is lost")
    return parser


def main(argv: Optional[Sequence[str]] = None, session: Any = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "revoke-key":
        return _revoke(args, session)
    try:
        if args.admin:
            principal = Principal("", ADMIN)
        else:
            principal = Principal(check_tenant_id(args.tenant), TENANT)
        session = session or boto3.session.Session(region_name=args.region, profile_name=args.profile)
        table = directory_table(session, args.stack, args.table)
        key = create_key(session, table, principal, args.label or ("admin" if args.admin else f"tenant {args.tenant}"))
    except (AdminError, ValueError, ClientError, BotoCoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    who = "the platform admin" if args.admin else f"tenant {args.tenant}"
    print(f"API key for {who} (stored as its hash in {table}; shown once, keep it now):", file=sys.stderr)
    print(key)
    return 0


def _revoke(args: argparse.Namespace, session: Any) -> int:
    key_hash = hash_api_key(args.key) if args.key else args.key_hash.strip().lower()
    try:
        session = session or boto3.session.Session(region_name=args.region, profile_name=args.profile)
        table = directory_table(session, args.stack, args.table)
        found = Directory(Table(session.client("dynamodb"), table)).revoke_api_key(key_hash)
    except (AdminError, ClientError, BotoCoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not found:
        print(f"error: no API key with hash {key_hash[:12]}... in {table}", file=sys.stderr)
        return 2
    print(f"revoked the key with hash {key_hash[:12]}... in {table}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
