"""Agent profile files: a JSON list or a CSV of people, read and checked as AgentSociety's upload does.

Records keep what the file says (a CSV gives every value as text, an `id` given as `"7"` stays
`"7"`); records without an `id` get the next free integers after the largest id in the file.
Unlike AgentSociety, a file that is not JSON, an id out of range or more than 10,000 records is a
400 that says so, never a 500.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Any

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.validation import checked_json
from chalicelib.sim.population import MAX_AGENT_ID, profile_id

MAX_RECORDS = 10_000
FORMATS = ("json", "csv")


def parse_profile_file(filename: str, data: bytes) -> list[dict[str, Any]]:
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension not in FORMATS:
        raise InvalidInput("Unsupported file format. Please upload a CSV or JSON file.")
    records = _json_records(data) if extension == "json" else _csv_records(data)
    if not 1 <= len(records) <= MAX_RECORDS:
        raise InvalidInput(f"a profile file holds 1 to {MAX_RECORDS:,} records, this one has {len(records):,}")
    return with_ids(records)


def _json_records(data: bytes) -> list[dict[str, Any]]:
    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        parsed = json.loads(data.decode("utf-8-sig"), parse_constant=no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"the file is not valid UTF-8 JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidInput("the file nests JSON too deeply") from exc
    if not isinstance(parsed, list) or not all(isinstance(r, dict) for r in parsed):
        raise InvalidInput("JSON data must be a list of objects")
    return checked_json(parsed, "the profile file")


def _csv_records(data: bytes) -> list[dict[str, Any]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the CSV file is not UTF-8 text: {exc}") from exc
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames or any(not (name or "").strip() for name in reader.fieldnames):
            raise InvalidInput("the CSV file needs a header row naming every column")
        records = []
        for line, row in enumerate(reader, start=2):
            if None in row:
                raise InvalidInput(f"CSV row {line} has more values than the header has columns")
            records.append({k: ("" if v is None else v) for k, v in row.items()})
    except csv.Error as exc:
        raise InvalidInput(f"the CSV file cannot be read: {exc}") from exc
    return records


def with_ids(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every record with an id: given ids are checked (integers, unique), missing ones filled in."""
    seen: set[int] = set()
    for index, record in enumerate(records, start=1):
        if "id" not in record:
            continue
        pid = profile_id(record)
        if pid is None:
            raise InvalidInput(f"ID must be an integer from 1 to {MAX_AGENT_ID:,} (record {index}: "
                               f"{json.dumps(record['id'])[:40]})")
        if pid in seen:
            raise InvalidInput(f"Duplicate ID found: {pid}")
        seen.add(pid)
    next_id = max(seen, default=0) + 1
    result = []
    for record in records:
        if "id" not in record:
            while next_id in seen:
                next_id += 1
            if next_id > MAX_AGENT_ID:
                raise InvalidInput(f"no free agent id is left below {MAX_AGENT_ID:,}")
            record = {**record, "id": next_id}
            seen.add(next_id)
        result.append(record)
    return result
