"""Simulation data, packed: one item per instant (every agent), one item per agent per step batch.

Two reads stay one query each however long the run: all agents at one instant (one tick item),
and one agent's whole history (its own partition). A step of T ticks with N agents writes
T tick items, N agent items (each holding the agent's statuses, dialogs and survey answers of the
step) and one log entry, in BatchWriteItem requests of 25: not N x T rows, and no item per dialog.

Blobs are zlib-compressed JSON. The statuses of one instant are stored as columns (every agent's
value of one field together: smaller, and cheaper to write and to compress than one object per
agent); an agent's statuses of a step as rows without the field names. Both decode to the status
objects the engine reported. Items written before these layouts (one list of status objects per
blob, one item per dialog or survey answer, the log as one item) are still read.
"""
from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Sequence

from chalicelib.domain.clock import new_id, now_iso
from chalicelib.store import keys
from chalicelib.store.expressions import Condition, SortRange, Update

if TYPE_CHECKING:
    from chalicelib.store.dynamo import Table
    from chalicelib.store.objects import ObjectStore

INLINE_LIMIT = 300_000  # bytes of compressed agent states kept in the tick item; above, in S3
CHUNK_LIMIT = 300_000  # bytes of one agent item's blob (DynamoDB's item limit is 400 KB): more goes in parts
LOG_LINES = 1_000
STREAM_PAGE = 16  # instants per page when streaming: memory holds at most this many, whatever the run's length
LEVEL = 3  # zlib level of the per-instant blobs: a third of level 6's time for 10% more bytes
_PROMPT_ATTRIBUTES = ("day", "t", "prompt", "created_at")
_INSTANT_KEYS = frozenset({"day", "t", "status"})


def pack(value: Any, level: int = 6) -> bytes:
    return zlib.compress(json.dumps(value, separators=(",", ":")).encode(), level)


def unpack(blob: bytes) -> Any:
    return json.loads(zlib.decompress(blob))


@dataclass(frozen=True)
class StatusSchema:
    """The shape every status object of an instant shares: its keys in order, and those of its `status` object.

    A row holds the values of `row_keys` (the keys without `day`, `t` and `status`: the instant has
    those) followed by the values of `status_keys`.
    """

    keys: tuple[str, ...]
    status_keys: tuple[str, ...] = ()

    @property
    def row_keys(self) -> tuple[str, ...]:
        return tuple(k for k in self.keys if k not in _INSTANT_KEYS)

    def to_json(self) -> list:
        return [list(self.keys), list(self.status_keys)]

    @classmethod
    def of_json(cls, value: Sequence[Sequence[str]]) -> StatusSchema:
        return cls(tuple(value[0]), tuple(value[1]))

    def decoder(self, agent: Any = None) -> Callable[[Any, Any, Sequence[Any]], dict]:
        """A function (day, t, row) -> the status object; with `agent`, rows leave out the `id` (it is `agent`)."""
        if self == DEFAULT_SCHEMA:  # the built-in engine's: one dict display, several times faster than the loop
            names = self.status_keys
            if agent is None:
                return lambda day, t, r: {"id": r[0], "day": day, "t": t, "lng": r[1], "lat": r[2], "parent_id": r[3],
                                          "action": r[4], "status": dict(zip(names, r[5:], strict=True))}
            return lambda day, t, r: {"id": agent, "day": day, "t": t, "lng": r[0], "lat": r[1], "parent_id": r[2],
                                      "action": r[3], "status": dict(zip(names, r[4:], strict=True))}
        plan: list[tuple[str, Any]] = []
        index = 0
        for key in self.keys:
            if key in _INSTANT_KEYS or (key == "id" and agent is not None):
                plan.append((key, key))
            else:
                plan.append((key, index))
                index += 1
        status_keys, first_status = self.status_keys, index

        def decode(day: Any, t: Any, row: Sequence[Any]) -> dict:
            fixed = {"day": day, "t": t, "id": agent}
            out = {}
            for key, source in plan:
                if source == "status":
                    out[key] = dict(zip(status_keys, row[first_status:], strict=True))
                else:
                    out[key] = row[source] if isinstance(source, int) else fixed[source]
            return out

        return decode


# The shape of the built-in engine's statuses (AgentStatus.to_json); agent items leave it out when it is this one
DEFAULT_SCHEMA = StatusSchema(("id", "day", "t", "lng", "lat", "parent_id", "action", "status"),
                              ("happiness", "hunger", "energy", "health", "money", "consumption", "employment",
                               "place"))


@dataclass(frozen=True)
class Instant:
    """Every agent's status at one instant as rows of one schema (what write_step packs)."""

    day: int
    t: float
    schema: StatusSchema
    rows: Sequence[Sequence[Any]]

    @classmethod
    def of_statuses(cls, day: int, t: float, statuses: Sequence[dict]) -> Optional[Instant]:
        """The statuses as rows, if they share one shape and carry this instant (else None: stored as they are)."""
        if not statuses:
            return cls(day, t, DEFAULT_SCHEMA, [])
        first = statuses[0]
        top = tuple(first)
        nested = first.get("status")
        inner = tuple(nested) if isinstance(nested, dict) else ()
        if "id" not in top or ("status" in top and not isinstance(nested, dict)):
            return None
        schema = StatusSchema(top, inner)
        row_keys = schema.row_keys
        has_day, has_t, has_status = "day" in top, "t" in top, "status" in top
        rows = []
        for s in statuses:
            if tuple(s) != top:
                return None
            if has_day and (type(s["day"]) is not type(day) or s["day"] != day):
                return None
            if has_t and (type(s["t"]) is not type(t) or s["t"] != t):
                return None
            values = [s[k] for k in row_keys]
            if has_status:
                status = s["status"]
                if not isinstance(status, dict) or tuple(status) != inner:
                    return None
                values.extend(status.values())
            rows.append(values)
        if not (has_day and has_t):
            return None  # a status without its instant: kept as it came
        return cls(day, t, schema, rows)

    def blob(self) -> bytes:
        columns = [list(column) for column in zip(*self.rows, strict=True)] if self.rows else []
        return pack({"v": 2, "day": self.day, "t": self.t, "schema": self.schema.to_json(), "n": len(self.rows),
                     "columns": columns}, LEVEL)


def _statuses_of_blob(value: Any) -> list[dict]:
    """The status objects of a tick blob: a list of them (first layout) or columns (Instant.blob)."""
    if isinstance(value, list):
        return value
    if not value["n"]:
        return []
    decode = StatusSchema.of_json(value["schema"]).decoder()
    day, t = value["day"], value["t"]
    return [decode(day, t, row) for row in zip(*value["columns"], strict=True)]


class _AgentStep:
    """What one agent gets from one step: its statuses (as rows, or as objects), dialogs and survey answers."""

    __slots__ = ("rows", "statuses", "dialogs", "surveys")

    def __init__(self) -> None:
        self.rows: list[list[Any]] = []
        self.statuses: list[dict] = []  # of instants whose statuses do not share a shape
        self.dialogs: list[dict] = []
        self.surveys: list[dict] = []


@dataclass
class AgentDataStore:
    table: Table
    objects: ObjectStore

    # writes -------------------------------------------------------------------------------------
    def write_step(self, tenant_id: str, experiment_id: str, *, ticks: Sequence[dict], dialogs: Sequence[dict],
                   surveys: Sequence[dict], profiles: Optional[list[dict]] = None,
                   log_lines: Sequence[str] = ()) -> int:
        """Write one step's records; every key is deterministic, so a retried step overwrites itself.

        A tick is {day, t, prompt} with either `statuses` (a list of status objects) or `rows` (and
        their `schema`, DEFAULT_SCHEMA if left out): the built-in engine's rows need no object per agent.
        Its log lines go in one log entry (a new one each time: a retried step logs its lines again,
        as appending always did). Returns the number of items written (the cost of the step, in writes).
        """
        written_at = now_iso()
        items: list[dict[str, Any]] = []
        for profile in profiles or []:
            agent_id = int(profile["id"])
            items.append({**keys.profile_key(tenant_id, experiment_id, agent_id), "agent_id": agent_id,
                          "body": json.dumps(profile)})
        per_agent: dict[int, _AgentStep] = {}
        schema: Optional[StatusSchema] = None  # of the rows kept per agent: the step's first shape
        for tick in ticks:
            instant = self._instant_of(tick)
            if instant is None:  # statuses of different shapes: stored as they came
                blob = pack(tick["statuses"], LEVEL)
                self._collect_statuses(per_agent, tick["statuses"])
            else:
                blob = instant.blob()
                if instant.rows and schema is None:
                    schema = instant.schema
                if instant.schema == schema:
                    self._collect_rows(per_agent, instant)
                elif instant.rows:  # a second shape in one step (an external engine's): kept as objects
                    self._collect_statuses(per_agent, tick.get("statuses") or _statuses_of_blob(unpack(blob)))
            item = {**keys.tick_key(tenant_id, experiment_id, tick["day"], tick["t"]), "day": tick["day"],
                    "t": str(tick["t"]), "prompt": tick.get("prompt", ""), "created_at": written_at}
            if len(blob) > INLINE_LIMIT:
                object_key = keys.tick_statuses_object_key(tenant_id, experiment_id, tick["day"], tick["t"])
                self.objects.put_bytes(object_key, blob)
                item["agents_key"] = object_key
            else:
                item["agents"] = blob
            items.append(item)
        for name, events in (("dialogs", dialogs), ("surveys", surveys)):
            for event in events:
                step = per_agent.get(int(event["id"]))
                if step is None:
                    step = per_agent[int(event["id"])] = _AgentStep()
                getattr(step, name).append({**event, "created_at": event.get("created_at") or written_at})
        first = (ticks[0]["day"], ticks[0]["t"]) if ticks else None
        for agent_id, step in per_agent.items():
            items.extend(self._agent_items(tenant_id, experiment_id, agent_id, step, first, schema))
        if log_lines:
            items.append({**keys.log_entry_key(tenant_id, experiment_id, new_id()),
                          "lines": json.dumps(list(log_lines))})
        self.table.batch_put(items)
        return len(items)

    @staticmethod
    def _instant_of(tick: dict) -> Optional[Instant]:
        if "rows" in tick:
            return Instant(tick["day"], tick["t"], tick.get("schema", DEFAULT_SCHEMA), tick["rows"])
        return Instant.of_statuses(tick["day"], tick["t"], tick["statuses"])

    @staticmethod
    def _collect_rows(per_agent: dict[int, _AgentStep], instant: Instant) -> None:
        id_at = instant.schema.row_keys.index("id")
        day, t = instant.day, instant.t
        for row in instant.rows:
            agent_id = int(row[id_at])
            step = per_agent.get(agent_id)
            if step is None:
                step = per_agent[agent_id] = _AgentStep()
            step.rows.append([day, t, *row[:id_at], *row[id_at + 1:]])

    @staticmethod
    def _collect_statuses(per_agent: dict[int, _AgentStep], statuses: Iterable[dict]) -> None:
        for status in statuses:
            agent_id = int(status["id"])
            step = per_agent.get(agent_id)
            if step is None:
                step = per_agent[agent_id] = _AgentStep()
            step.statuses.append(status)

    def _agent_items(self, tenant_id: str, experiment_id: str, agent_id: int, step: _AgentStep,
                     first: Optional[tuple[int, float]], schema: Optional[StatusSchema]) -> list[dict]:
        """The agent's item of the step (and parts, if its dialogs do not fit in one item)."""
        body: dict[str, Any] = {"v": 2, "id": agent_id}
        if step.rows:
            body["rows"] = step.rows
            if schema is not None and schema != DEFAULT_SCHEMA:
                body["schema"] = schema.to_json()
        if step.statuses:
            body["statuses"] = step.statuses
        events = {name: getattr(step, name) for name in ("dialogs", "surveys") if getattr(step, name)}
        if first is not None:
            day, t, part = first[0], first[1], ""
        else:  # no instant in this batch (an engine answering its inbox between ticks): named by its content
            event = next(e for found in events.values() for e in found)
            day, t = event["day"], event["t"]
            part = "E" + hashlib.sha256(json.dumps(events, sort_keys=True, default=str).encode()).hexdigest()[:16]
        blob = pack({**body, **events})
        if len(blob) <= CHUNK_LIMIT:
            return [{**keys.agent_statuses_key(tenant_id, experiment_id, agent_id, day, t, part), "data": blob}]
        # too many words for one item: the statuses, then the events in as many parts as they need
        items = [{**keys.agent_statuses_key(tenant_id, experiment_id, agent_id, day, t, part), "data": pack(body)}]
        flat = [(name, event) for name, found in events.items() for event in found]
        for number, piece in enumerate(_pieces(agent_id, flat), start=1):
            suffix = f"{part}.{number:03d}" if part else f"{number:03d}"
            items.append({**keys.agent_statuses_key(tenant_id, experiment_id, agent_id, day, t, suffix),
                          "data": piece})
        return items

    def append_log(self, tenant_id: str, experiment_id: str, lines: list[str]) -> None:
        """Lines at the end of the run's log: one new entry, nothing read first."""
        if not lines:
            return
        self.table.put({**keys.log_entry_key(tenant_id, experiment_id, new_id()), "lines": json.dumps(lines)})

    # reads --------------------------------------------------------------------------------------
    def log(self, tenant_id: str, experiment_id: str) -> list[str]:
        """The last LOG_LINES lines: one query, newest entries first (each entry holds one or more lines)."""
        found: list[list[str]] = []
        count = 0
        for item in self.table.query(keys.simulation_pk(tenant_id, experiment_id), SortRange.prefix(keys.LOG_SK),
                                     forward=False, limit=LOG_LINES, attributes=("lines",)):
            lines = json.loads(item["lines"])
            found.append(lines)
            count += len(lines)
            if count >= LOG_LINES:
                break
        return [line for lines in reversed(found) for line in lines][-LOG_LINES:]

    def timeline(self, tenant_id: str, experiment_id: str) -> list[dict]:
        items = self.table.query(keys.simulation_pk(tenant_id, experiment_id), SortRange.prefix(keys.TICK_SK),
                                 attributes=("day", "t"))
        return [{"day": int(i["day"]), "t": float(i["t"])} for i in items]

    def instant(self, tenant_id: str, experiment_id: str, day: Optional[int] = None, t: Optional[float] = None,
                *, with_agents: bool = True) -> Optional[dict]:
        """Every agent's status and the global prompt at one instant (the latest without day and t): one request.

        Without agents only the prompt and the instant are read: no blob to decompress or fetch from S3.
        """
        attributes = None if with_agents else _PROMPT_ATTRIBUTES
        if day is None or t is None:
            latest = list(self.table.query(keys.simulation_pk(tenant_id, experiment_id),
                                           SortRange.prefix(keys.TICK_SK), forward=False, limit=1,
                                           attributes=attributes))
            return self._instant(latest[0]) if latest else None
        item = self.table.get(keys.tick_key(tenant_id, experiment_id, day, t), attributes=attributes)
        return self._instant(item) if item else None

    def instants(self, tenant_id: str, experiment_id: str, *, with_agents: bool = True) -> Iterator[dict]:
        """Every instant in time order, one at a time (exports stream through this)."""
        for item in self.table.query(keys.simulation_pk(tenant_id, experiment_id), SortRange.prefix(keys.TICK_SK),
                                     page_size=STREAM_PAGE, attributes=None if with_agents else _PROMPT_ATTRIBUTES):
            yield self._instant(item)

    def _instant(self, item: dict) -> dict:
        instant = {"day": int(item["day"]), "t": float(item["t"]), "prompt": item.get("prompt", ""),
                   "created_at": item.get("created_at")}
        if "agents_key" in item:
            instant["statuses"] = _statuses_of_blob(unpack(self.objects.get(item["agents_key"])))
        elif "agents" in item:
            instant["statuses"] = _statuses_of_blob(unpack(item["agents"]))
        return instant

    def profiles(self, tenant_id: str, experiment_id: str) -> list[dict]:
        items = self.table.query(keys.simulation_pk(tenant_id, experiment_id), SortRange.prefix(keys.PROFILE_SK))
        return [json.loads(i["body"]) for i in items]

    def profile(self, tenant_id: str, experiment_id: str, agent_id: int) -> Optional[dict]:
        item = self.table.get(keys.profile_key(tenant_id, experiment_id, agent_id))
        return json.loads(item["body"]) if item else None

    def agent_statuses(self, tenant_id: str, experiment_id: str, agent_id: int) -> list[dict]:
        """One agent's statuses over the whole run, in time order: one query."""
        found: list[dict] = []
        for item in self.table.query(keys.agent_pk(tenant_id, experiment_id, agent_id),
                                     SortRange.prefix(keys.AGENT_STATUS_SK)):
            if "statuses" in item:  # the first layout: a list of status objects
                found.extend(unpack(item["statuses"]))
                continue
            body = unpack(item["data"])
            if "rows" in body:
                schema = StatusSchema.of_json(body["schema"]) if "schema" in body else DEFAULT_SCHEMA
                decode = schema.decoder(agent=body["id"])
                found.extend(decode(row[0], row[1], row[2:]) for row in body["rows"])
            found.extend(body.get("statuses", ()))
        return found

    def agent_dialogs(self, tenant_id: str, experiment_id: str, agent_id: int) -> list[dict]:
        return self._agent_events(tenant_id, experiment_id, agent_id, "dialogs", keys.AGENT_DIALOG_SK)

    def agent_surveys(self, tenant_id: str, experiment_id: str, agent_id: int) -> list[dict]:
        return self._agent_events(tenant_id, experiment_id, agent_id, "surveys", keys.AGENT_SURVEY_SK)

    def _agent_events(self, tenant_id: str, experiment_id: str, agent_id: int, name: str,
                      old_prefix: str) -> list[dict]:
        """Dialogs or survey answers of one agent in time order: one query of its partition (its step items
        hold them; items of the first layout, one per event, are read too)."""
        found: list[dict] = []
        for item in self.table.query(keys.agent_pk(tenant_id, experiment_id, agent_id)):
            if item["sk"].startswith(old_prefix):
                found.append(json.loads(item["body"]))
            elif "data" in item:
                found.extend(unpack(item["data"]).get(name, ()))
        found.sort(key=lambda e: (e["day"], e["t"]))  # stable: events of one instant keep the engine's order
        return found

    def delete_all(self, tenant_id: str, experiment_id: str, agent_ids: Iterable[int]) -> int:
        """Remove every item of the simulation: its own partition, its inbox and each agent's. Returns the count."""
        partitions = [keys.simulation_pk(tenant_id, experiment_id), keys.inbox_pk(tenant_id, experiment_id)]
        partitions += [keys.agent_pk(tenant_id, experiment_id, a) for a in agent_ids]
        removed = 0
        for pk in partitions:
            found = [{"pk": i["pk"], "sk": i["sk"]} for i in self.table.query(pk, attributes=("pk", "sk"))]
            self.table.batch_delete(found)
            removed += len(found)
        return removed

    # inbox: messages and surveys queued for a running agent ---------------------------------------
    def enqueue(self, tenant_id: str, experiment_id: str, kind: str, body: dict) -> str:
        message_id = new_id()
        self.table.put({**keys.inbox_key(tenant_id, experiment_id, message_id), "message_id": message_id,
                        "kind": kind, "body": json.dumps(body), "processed": False})
        return message_id

    def pending(self, tenant_id: str, experiment_id: str) -> list[dict]:
        items = self.table.query(keys.inbox_pk(tenant_id, experiment_id), SortRange.prefix(keys.INBOX_SK),
                                 filter=Condition.equals("processed", False), consistent=True)
        return [{"id": i["message_id"], "kind": i["kind"], **json.loads(i["body"])} for i in items]

    def mark_processed(self, tenant_id: str, experiment_id: str, message_ids: list[str]) -> None:
        for message_id in message_ids:
            self.table.update(keys.inbox_key(tenant_id, experiment_id, message_id), Update().set("processed", True))


def _pieces(agent_id: int, events: list[tuple[str, dict]]) -> Iterator[bytes]:
    """Blobs of consecutive events, each under CHUNK_LIMIT (halved until they fit; one event alone is
    never split: the API refuses bodies large enough to need it)."""
    body: dict[str, Any] = {"v": 2, "id": agent_id}
    for name, event in events:
        body.setdefault(name, []).append(event)
    blob = pack(body)
    if len(blob) <= CHUNK_LIMIT or len(events) == 1:
        yield blob
        return
    middle = len(events) // 2
    yield from _pieces(agent_id, events[:middle])
    yield from _pieces(agent_id, events[middle:])
